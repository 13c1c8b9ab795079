"""Plaid's investments and liabilities mapped into the normalized portfolio records (pure): securities, holdings,
investment transactions, and one liability per card, student loan, mortgage and other loan.

Signs: an investment transaction's Plaid `amount` is positive when cash leaves the account (a buy), so it is negated
(a buy is negative in the model); quantities keep Plaid's sign (+ units bought, − sold). A liability's balance is its
account's (owed is negative); every other amount stays positive, as the lender prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from finance.errors import BadData
from finance.model import (
    Account,
    Holding,
    InvestmentTransaction,
    InvestmentTxnType,
    Liability,
    LiabilityKind,
    LoanPayment,
    Security,
    SecurityType,
)
from finance.providers.plaid.mapping import NAME, currency_of, negate, parse_date, to_decimal

SECURITY_TYPES = {
    "equity": SecurityType.EQUITY, "etf": SecurityType.ETF, "mutual fund": SecurityType.MUTUAL_FUND,
    "fixed income": SecurityType.FIXED_INCOME, "derivative": SecurityType.DERIVATIVE, "cash": SecurityType.CASH,
    "cryptocurrency": SecurityType.CRYPTO,
}
"""Plaid's security `type` → ours; anything else (loan, other, a type Plaid adds later) is OTHER."""
DIVIDEND_SUBTYPES = frozenset({
    "dividend", "qualified dividend", "non-qualified dividend", "interest", "interest receivable",
    "long-term capital gain", "short-term capital gain", "distribution", "return of principal",
})
FEE_SUBTYPES = frozenset({"tax", "tax withheld", "non-resident tax"})
LOAN_KINDS = {
    "installment": LiabilityKind.PERSONAL, "consumer": LiabilityKind.PERSONAL, "loan": LiabilityKind.PERSONAL,
    "auto": LiabilityKind.FINANCING, "student": LiabilityKind.STUDENT, "mortgage": LiabilityKind.MORTGAGE,
    "home equity": LiabilityKind.MORTGAGE, "home equity loan": LiabilityKind.MORTGAGE,
    "overdraft": LiabilityKind.OVERDRAFT,
}
"""A `loan` liability's kind by its account's subtype (Plaid's `installment` loans are personal loans)."""


def _amount(raw: dict[str, Any], key: str) -> Decimal | None:
    value = raw.get(key)
    return None if value is None else to_decimal(value, key.replace("_", " "))


def _day(raw: dict[str, Any], key: str) -> date | None:
    value = raw.get(key)
    return None if value in (None, "") else parse_date(value, key.replace("_", " "))


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value.strip()[:200] if isinstance(value, str) and value.strip() else None


def _required(raw: Any, key: str, what: str) -> str:
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, str) or not value:
        raise BadData(f"Plaid sent {what} without {key}.", code="BAD_PORTFOLIO", provider=NAME)
    return value


def map_security(raw: dict[str, Any], fallback_currency: str = "USD") -> Security:
    """A Plaid Security; a fixed-income one brings its maturity and coupon rate."""
    security_id = _required(raw, "security_id", "a security")
    fixed = raw.get("fixed_income") if isinstance(raw.get("fixed_income"), dict) else {}
    rate = fixed.get("yield_rate") if isinstance(fixed.get("yield_rate"), dict) else {}
    kind = raw.get("type")
    return Security(
        provider=NAME, external_id=security_id,
        name=_text(raw, "name") or _text(raw, "ticker_symbol") or security_id,
        type=SECURITY_TYPES.get(kind.lower(), SecurityType.OTHER) if isinstance(kind, str) else SecurityType.OTHER,
        currency=currency_of(raw) or fallback_currency, ticker=_text(raw, "ticker_symbol"), isin=_text(raw, "isin"),
        close_price=_amount(raw, "close_price"), close_price_as_of=_day(raw, "close_price_as_of"),
        maturity_date=_day(fixed, "maturity_date"), annual_rate=_amount(rate, "percentage"),
    )


def map_holding(raw: dict[str, Any], account: Account) -> Holding:
    """A Plaid Holding in `account`: quantity × institution price = institution value."""
    quantity, value = _amount(raw, "quantity"), _amount(raw, "institution_value")
    if quantity is None or value is None:
        raise BadData("Plaid sent a holding without its quantity or value.", code="BAD_PORTFOLIO", provider=NAME)
    return Holding(provider=NAME, account_external_id=account.external_id,
                   security_external_id=_required(raw, "security_id", "a holding"), quantity=quantity, value=value,
                   currency=currency_of(raw) or account.currency, price=_amount(raw, "institution_price"),
                   cost_basis=_amount(raw, "cost_basis"), as_of=_day(raw, "institution_price_as_of"))


def investment_type(kind: Any, subtype: Any) -> InvestmentTxnType:
    """Our type for Plaid's (type, subtype): cash dividends and interest are DIVIDEND, taxes withheld are FEE."""
    kind = kind.lower() if isinstance(kind, str) else ""
    subtype = subtype.lower() if isinstance(subtype, str) else ""
    if kind in ("buy", "sell", "fee", "transfer"):
        return InvestmentTxnType(kind)
    if subtype in DIVIDEND_SUBTYPES:
        return InvestmentTxnType.DIVIDEND
    if subtype in FEE_SUBTYPES:
        return InvestmentTxnType.FEE
    return InvestmentTxnType.CASH if kind == "cash" else InvestmentTxnType.OTHER


def map_investment_transaction(raw: dict[str, Any], account: Account) -> InvestmentTransaction:
    """A Plaid InvestmentTransaction in `account`, its cash amount in the model's sign."""
    amount = _amount(raw, "amount")
    day = _day(raw, "date")
    if amount is None or day is None:
        raise BadData("Plaid sent an investment transaction without its amount or date.", code="BAD_PORTFOLIO",
                      provider=NAME)
    kind = investment_type(raw.get("type"), raw.get("subtype"))
    trade = kind in (InvestmentTxnType.BUY, InvestmentTxnType.SELL, InvestmentTxnType.TRANSFER)
    quantity, price, fees = _amount(raw, "quantity"), _amount(raw, "price"), _amount(raw, "fees")
    return InvestmentTransaction(
        provider=NAME, external_id=_required(raw, "investment_transaction_id", "an investment transaction"),
        account_external_id=account.external_id, date=day, type=kind, amount=negate(amount),
        currency=currency_of(raw) or account.currency,
        description=_text(raw, "name") or str(raw.get("subtype") or raw.get("type") or "Investment transaction"),
        security_external_id=_text(raw, "security_id"), quantity=quantity if trade or quantity else None,
        price=price if trade or price else None, fees=fees if fees else None,
    )


def _payments(raw: dict[str, Any]) -> tuple[LoanPayment, ...]:
    day, amount = _day(raw, "last_payment_date"), _amount(raw, "last_payment_amount")
    return (LoanPayment(day, amount),) if day is not None and amount is not None and amount > 0 else ()


def _card(raw: dict[str, Any]) -> dict[str, Any]:
    aprs = [a for a in raw.get("aprs") or [] if isinstance(a, dict)]
    purchase = next((a for a in aprs if a.get("apr_type") == "purchase_apr"), aprs[0] if aprs else {})
    return {"kind": LiabilityKind.CREDIT, "interest_rate": _amount(purchase, "apr_percentage"),
            "minimum_payment": _amount(raw, "minimum_payment_amount"),
            "next_payment_date": _day(raw, "next_payment_due_date")}


def _student(raw: dict[str, Any]) -> dict[str, Any]:
    return {"kind": LiabilityKind.STUDENT, "name": _text(raw, "loan_name"),
            "interest_rate": _amount(raw, "interest_rate_percentage"),
            "minimum_payment": _amount(raw, "minimum_payment_amount"),
            "next_payment_amount": _amount(raw, "minimum_payment_amount"),
            "next_payment_date": _day(raw, "next_payment_due_date"),
            "original_principal": _amount(raw, "origination_principal_amount"),
            "origination_date": _day(raw, "origination_date"), "maturity_date": _day(raw, "expected_payoff_date")}


def _rate(raw: dict[str, Any]) -> dict[str, Any]:
    rate = raw.get("interest_rate") if isinstance(raw.get("interest_rate"), dict) else {}
    return {"interest_rate": _amount(rate, "percentage"), "rate_type": _text(rate, "type")}


def _mortgage(raw: dict[str, Any]) -> dict[str, Any]:
    term = " ".join(filter(None, (_text(raw, "loan_term"), _text(raw, "loan_type_description"))))
    return {"kind": LiabilityKind.MORTGAGE, "name": f"Mortgage ({term})" if term else "Mortgage", **_rate(raw),
            "next_payment_amount": _amount(raw, "next_monthly_payment"),
            "next_payment_date": _day(raw, "next_payment_due_date"),
            "original_principal": _amount(raw, "origination_principal_amount"),
            "origination_date": _day(raw, "origination_date"), "maturity_date": _day(raw, "maturity_date")}


def _loan(raw: dict[str, Any], account: Account) -> dict[str, Any]:
    count = raw.get("payment_count")
    return {"kind": LOAN_KINDS.get((account.subtype or "").lower(), LiabilityKind.OTHER), **_rate(raw),
            "next_payment_amount": _amount(raw, "next_payment_amount"),
            "next_payment_date": _day(raw, "next_payment_due_date"),
            "original_principal": _amount(raw, "origination_principal_amount"),
            "origination_date": _day(raw, "origination_date"), "maturity_date": _day(raw, "maturity_date"),
            "installments_total": count if isinstance(count, int) and not isinstance(count, bool) else None}


def _line_of_credit(raw: dict[str, Any]) -> dict[str, Any]:
    return {"kind": LiabilityKind.OTHER, "name": "Line of credit", **_rate(raw),
            "minimum_payment": _amount(raw, "minimum_payment_amount"),
            "next_payment_amount": _amount(raw, "next_payment_amount"),
            "next_payment_date": _day(raw, "next_payment_due_date")}


LIABILITY_READERS: dict[str, Callable[[dict[str, Any], Account], dict[str, Any]]] = {
    "credit": lambda raw, _: _card(raw), "student": lambda raw, _: _student(raw),
    "mortgage": lambda raw, _: _mortgage(raw), "loan": _loan, "line_of_credit": lambda raw, _: _line_of_credit(raw),
}
"""The `liabilities` lists we read (Plaid 1.778 added `loan` and `line_of_credit`), each to Liability fields."""


def map_liabilities(liabilities: dict[str, Any], accounts: Mapping[str, Account]) -> list[Liability]:
    """One Liability per entry of Plaid's `liabilities` lists whose account is in `accounts` (by external id); the
    balance is the account's, the rest the lender's figures."""
    found = []
    for key, read in LIABILITY_READERS.items():
        entries = liabilities.get(key)
        for raw in entries if isinstance(entries, list) else []:
            account = accounts.get(str(raw.get("account_id"))) if isinstance(raw, dict) else None
            if account is None:
                continue
            overdue = raw.get("is_overdue")
            fields = read(raw, account)
            fields["name"] = fields.get("name") or account.name
            found.append(Liability(
                provider=NAME, account_external_id=account.external_id, currency=account.currency,
                balance=account.current_balance, last_payment_date=_day(raw, "last_payment_date"),
                last_payment_amount=_amount(raw, "last_payment_amount"), payments=_payments(raw),
                is_overdue=overdue if isinstance(overdue, bool) else None, **fields))
    return found
