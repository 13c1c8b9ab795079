"""Pluggy's investments, loans and card bills mapped into the normalized portfolio records (pure).

Pluggy has no investment account: one INVESTMENT `Account` per item ("investments-<item id>") holds every position,
and each Pluggy investment is both its own `Security` and one `Holding`. A loan contract is not an account either:
each becomes a LOAN `Account` ("loan-<loan id>", owed balance negative) with its `Liability`. Open Finance rates are
fractions (0.1941 = 19.41 %); the model's are annual percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from finance.errors import BadData
from finance.model import (
    Account,
    AccountType,
    CardBill,
    Holding,
    InvestmentTransaction,
    InvestmentTxnType,
    Liability,
    LiabilityKind,
    LoanPayment,
    Security,
    SecurityType,
)
from finance.providers.pluggy.mapping import NAME, SAO_PAULO, parse_instant, to_decimal
from finance.recurring import add_months

SECURITY_TYPES = {
    "EQUITY": SecurityType.EQUITY, "ETF": SecurityType.ETF, "MUTUAL_FUND": SecurityType.MUTUAL_FUND,
    "FIXED_INCOME": SecurityType.FIXED_INCOME, "COE": SecurityType.OTHER, "SECURITY": SecurityType.OTHER,
}
TRADE_TYPES = {"BUY": InvestmentTxnType.BUY, "SELL": InvestmentTxnType.SELL, "TAX": InvestmentTxnType.FEE,
               "TRANSFER": InvestmentTxnType.TRANSFER}
LOAN_KINDS = {"FINANCING": LiabilityKind.FINANCING, "LOAN": LiabilityKind.PERSONAL,
              "UNARRANGED_ACCOUNT_OVERDRAFT": LiabilityKind.OVERDRAFT}
MONTHLY_PERIODS = {"MONTHLY": 1, "BIMONTHLY": 2, "QUARTERLY": 3, "SEMESTERLY": 6, "YEARLY": 12}


def investment_account_id(item_id: str) -> str:
    return f"investments-{item_id}"


def loan_account_id(loan_id: str) -> str:
    return f"loan-{loan_id}"


def _money(value: Any, field: str) -> Decimal | None:
    return None if value is None else to_decimal(value, field)


def _day(value: Any) -> date | None:
    """The São Paulo day of a Pluggy instant (date-only and midnight-UTC values are the day they name)."""
    moment = parse_instant(value) if isinstance(value, str) else None
    if moment is None:
        return None
    if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.date()
    return moment.astimezone(SAO_PAULO).date()


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return str(value) if value not in (None, "") else None


def _require(raw: dict[str, Any], key: str, what: str) -> Any:
    if raw.get(key) in (None, ""):
        raise BadData(f"Pluggy sent {what} without {key}.", code="BAD_PORTFOLIO", provider=NAME)
    return raw[key]


# -- investments ----------------------------------------------------------------------------------------------------

def map_investment(raw: dict[str, Any], item_id: str) -> tuple[Security, Holding]:
    """One Pluggy investment: the security it is of, and the position (value = its balance, cost = amountOriginal)."""
    investment_id = str(_require(raw, "id", "an investment"))
    currency = str(raw.get("currencyCode") or "BRL")
    kind = SECURITY_TYPES.get(str(raw.get("type") or ""), SecurityType.OTHER)
    price = _money(raw.get("value"), "investment value")
    as_of = _day(raw.get("date"))
    balance = _money(raw.get("balance"), "investment balance")
    if balance is None:
        balance = _money(raw.get("amount"), "investment amount") or Decimal(0)
    quantity = _money(raw.get("quantity"), "investment quantity")
    security = Security(
        provider=NAME, external_id=investment_id, name=str(raw.get("name") or raw.get("code") or "Investment"),
        type=kind, currency=currency,
        ticker=_text(raw, "code") if kind in (SecurityType.EQUITY, SecurityType.ETF) else None,
        isin=_text(raw, "isin"), close_price=price, close_price_as_of=as_of, maturity_date=_day(raw.get("dueDate")),
        annual_rate=_money(raw.get("fixedAnnualRate"), "investment rate"))
    holding = Holding(
        provider=NAME, account_external_id=investment_account_id(item_id), security_external_id=investment_id,
        quantity=quantity if quantity is not None else Decimal(1), value=balance, currency=currency, price=price,
        cost_basis=_money(raw.get("amountOriginal"), "investment cost"), as_of=as_of)
    return security, holding


def investment_account(item_id: str, holdings: Sequence[Holding], as_of: datetime | None) -> Account:
    """The item's investment account: every position's value together, named as Pluggy names accounts (in
    Portuguese, like "Conta Corrente")."""
    currencies = {h.currency for h in holdings}
    total = sum((h.value for h in holdings), Decimal(0))
    return Account(provider=NAME, external_id=investment_account_id(item_id), connection_external_id=item_id,
                   type=AccountType.INVESTMENT, name="Investimentos",
                   currency=currencies.pop() if len(currencies) == 1 else "BRL", current_balance=total,
                   subtype="INVESTMENTS", balance_as_of=as_of)


def _fees(expenses: Any) -> Decimal | None:
    if not isinstance(expenses, dict):
        return None
    values = [to_decimal(v, "investment expense") for v in expenses.values() if isinstance(v, int | float)]
    total = sum(values, Decimal(0))
    return total if total else None


def map_investment_transaction(raw: dict[str, Any], item_id: str, investment_id: str,
                               currency: str) -> InvestmentTransaction:
    """A trade: a buy moves cash out (negative) and units in; a sale the reverse; a tax is a fee."""
    kind = TRADE_TYPES.get(str(raw.get("type") or ""), InvestmentTxnType.OTHER)
    day = _day(raw.get("tradeDate")) or _day(_require(raw, "date", "an investment transaction"))
    assert day is not None
    amount = _money(raw.get("netAmount"), "trade amount")
    if amount is None:
        amount = _money(raw.get("amount"), "trade amount") or Decimal(0)
    quantity = _money(raw.get("quantity"), "trade quantity")
    incoming = kind is InvestmentTxnType.BUY or (kind is InvestmentTxnType.TRANSFER
                                                  and raw.get("movementType") == "CREDIT")
    return InvestmentTransaction(
        provider=NAME, external_id=str(_require(raw, "id", "an investment transaction")),
        account_external_id=investment_account_id(item_id), date=day, type=kind,
        amount=-abs(amount) if kind in (InvestmentTxnType.BUY, InvestmentTxnType.FEE) else abs(amount),
        currency=currency, description=str(raw.get("description") or kind.value),
        security_external_id=investment_id,
        quantity=None if quantity is None else (abs(quantity) if incoming else -abs(quantity)),
        price=_money(raw.get("value"), "trade price"), fees=_fees(raw.get("expenses")))


# -- loans -----------------------------------------------------------------------------------------------------------

def _annual_percent(rate: dict[str, Any]) -> Decimal | None:
    value = rate.get("preFixedRate")
    if value is None:
        value = rate.get("postFixedRate")
    if value is None:
        return None
    fraction = to_decimal(value, "loan rate")
    if rate.get("taxPeriodicity") == "MONTHLY":
        fraction = (1 + fraction) ** 12 - 1
    return (fraction * 100).quantize(Decimal("0.01"))


def map_loan(raw: dict[str, Any], as_of: datetime | None) -> tuple[Account, Liability]:
    """A loan contract as a LOAN account (what is still owed, negative) and its liability."""
    loan_id = str(_require(raw, "id", "a loan"))
    item_id = str(_require(raw, "itemId", "a loan"))
    currency = str(raw.get("currencyCode") or "BRL")
    payments = raw.get("payments") or {}
    installments = raw.get("installments") or {}
    outstanding = _money(payments.get("contractOutstandingBalance"), "loan balance")
    releases = sorted((r for r in payments.get("releases") or () if isinstance(r, dict) and r.get("paidDate")),
                      key=lambda r: str(r["paidDate"]))
    paid = tuple(LoanPayment(d, to_decimal(r.get("paidAmount") or 0, "loan payment"))
                 for r in releases if (d := _day(r["paidDate"])) is not None)
    kind = LOAN_KINDS.get(str(raw.get("kind") or ""), LiabilityKind.OTHER)
    if "IMOBILIARIO" in str(raw.get("type") or "").upper() or "HOME" in str(raw.get("type") or "").upper():
        kind = LiabilityKind.MORTGAGE
    rates = [r for r in raw.get("interestRates") or () if isinstance(r, dict)]
    total = installments.get("totalNumberOfInstallments")
    count = installments.get("paidInstallments")
    first_due = _day(raw.get("firstInstallmentDueDate"))
    step = MONTHLY_PERIODS.get(str(raw.get("installmentPeriodicity") or ""))
    next_due = None
    if first_due is not None and step and isinstance(count, int | float) and (total is None or count < total):
        next_due = add_months(first_due, int(count) * step)
    name = str(raw.get("productName") or raw.get("type") or "Loan")
    balance = -outstanding if outstanding is not None else None
    account = Account(provider=NAME, external_id=loan_account_id(loan_id), connection_external_id=item_id,
                      type=AccountType.LOAN, name=name, currency=currency, current_balance=balance,
                      mask=(_text(raw, "contractNumber") or "")[-4:] or None, subtype=str(raw.get("kind") or "LOAN"),
                      balance_as_of=as_of)
    liability = Liability(
        provider=NAME, account_external_id=account.external_id, kind=kind, currency=currency, balance=balance,
        name=name, interest_rate=_annual_percent(rates[0]) if rates else None,
        rate_type=("fixed" if rates and rates[0].get("postFixedRate") is None else "variable") if rates else None,
        next_payment_date=next_due, next_payment_amount=paid[-1].amount if paid and next_due else None,
        last_payment_date=paid[-1].date if paid else None, last_payment_amount=paid[-1].amount if paid else None,
        original_principal=_money(raw.get("contractAmount"), "loan amount"),
        origination_date=_day(raw.get("contractDate")), maturity_date=_day(raw.get("dueDate")),
        installments_total=int(total) if isinstance(total, int | float) else None,
        installments_paid=int(count) if isinstance(count, int | float) else None,
        is_overdue=bool(installments.get("pastDueInstallments")) if "pastDueInstallments" in installments else None,
        payments=paid)
    return account, liability


# -- card bills ------------------------------------------------------------------------------------------------------

def map_bill(raw: dict[str, Any], account: Account) -> CardBill:
    """A closed card bill: what it asks for (positive), what was paid towards it, and whether that settles it."""
    total = to_decimal(_require(raw, "totalAmount", "a card bill"), "bill total")
    total = max(total, Decimal(0))  # a negative total is a credit: the bill asks for nothing
    payments = [p for p in raw.get("payments") or () if isinstance(p, dict)]
    paid = sum((abs(to_decimal(p.get("amount") or 0, "bill payment")) for p in payments), Decimal(0))
    due = _day(_require(raw, "dueDate", "a card bill"))
    assert due is not None
    return CardBill(provider=NAME, external_id=str(_require(raw, "id", "a card bill")),
                    account_external_id=account.external_id, due_date=due, total=total,
                    currency=str(raw.get("totalAmountCurrencyCode") or account.currency),
                    closing_date=_day(raw.get("billClosingDate")),
                    minimum_payment=_money(raw.get("minimumPaymentAmount"), "minimum payment"),
                    paid_amount=paid, is_paid=paid >= total)


def card_liability(account: Account, bills: Sequence[CardBill], today: date) -> Liability:
    """A card as a liability: its balance, and the latest bill as the next payment while it is unpaid."""
    latest = max(bills, key=lambda b: b.due_date, default=None)
    unpaid = latest is not None and not latest.is_paid and latest.due_date >= today
    return Liability(provider=NAME, account_external_id=account.external_id, kind=LiabilityKind.CREDIT,
                     currency=account.currency, balance=account.current_balance, name=account.name,
                     next_payment_date=latest.due_date if unpaid and latest else None,
                     next_payment_amount=latest.total if unpaid and latest else None,
                     minimum_payment=latest.minimum_payment if unpaid and latest else None,
                     last_payment_date=max((b.due_date for b in bills if b.is_paid), default=None),
                     last_payment_amount=next((b.paid_amount for b in sorted(bills, key=lambda b: b.due_date,
                                                                            reverse=True) if b.is_paid), None))
