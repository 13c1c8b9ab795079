"""The Brazilian household's investments, vehicle financing and card bills, as Pluggy's `Investment`,
`InvestmentTransaction`, `Loan` and `CreditCardBills` objects (pluggy-sdk 0.92.0) as of an item's last sync.

Everything is a pure function of (seed, household key, the connection's creation time, the moment looked at): prices
follow smooth made-up curves, contributions and installments fall on fixed days, so a later sync only adds to the past.
Four holdings — a CDB at 110% of the CDI, a multimarket fund with monthly contributions, Petrobras shares bought in two
lots, Tesouro IPCA+ 2035 — and a 48-month vehicle financing (PRICE table) with its paid installments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from random import Random
from typing import Any

from finance.providers.pluggy.sandbox.household import (
    HOLDER,
    SAO_PAULO,
    bill_total,
    due_date_for,
    latest_close,
)
from finance.sandbox.ledger import Entry, add_months, business_day, iso_z, stable_uuid

INSTITUTION = {"name": "PLUGGY BANK S.A.", "number": "999"}
ISSUER_CNPJ = "08.050.608/0001-32"
LOAN_MONTHS = 48
LOAN_MONTHLY_RATE = 0.0149


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), SAO_PAULO)


def _wave(day: date, seed: str, drift: float, swing: float) -> float:
    """A smooth, made-up price index for `day` (1.0 on 2020-01-01), growing `drift` a year with seeded wiggles."""
    rng = Random(seed)
    phases = [rng.uniform(0, math.tau) for _ in range(3)]
    x = (day - date(2020, 1, 1)).days
    wiggle = swing * (math.sin(x / 37 + phases[0]) + 0.6 * math.sin(x / 11.3 + phases[1])
                      + 0.4 * math.sin(x / 151 + phases[2]))
    return math.exp(drift * x / 365 + wiggle)


@dataclass(frozen=True, slots=True)
class _Trade:
    day: date
    kind: str  # BUY, SELL, TAX
    quantity: float
    price: float

    @property
    def value(self) -> float:
        return round(self.quantity * self.price, 2)


@dataclass(frozen=True, slots=True)
class _Holding:
    """One investment: its static fields, its unit price curve and its trades."""

    slot: str
    fields: dict[str, Any]
    price: Callable[[date], float]
    trades: tuple[_Trade, ...]


class Wealth:
    """A household's investments, financing and card bills (`key` as its ledger's, `created_at` the connection's)."""

    def __init__(self, seed: int, key: str, created_at: datetime) -> None:
        self.key = f"{seed}/{key}"
        self.created = created_at.astimezone(SAO_PAULO).date()
        rng = Random(f"{self.key}/wealth")
        self.loan_start = add_months(self.created.replace(day=rng.randint(5, 20)), -rng.randint(10, 20))
        self.loan_principal = float(rng.randrange(45_000, 80_000, 500))
        self._holdings = self._build(rng)

    # -- investments -------------------------------------------------------------------------------------------------

    def _build(self, rng: Random) -> tuple[_Holding, ...]:
        start = add_months(self.created, -13)
        cdb_day = start + timedelta(days=rng.randint(0, 40))
        cdb_rate = 0.105 * 1.10

        def cdb_price(day: date) -> float:
            return 1000.0 * (1 + cdb_rate) ** (max(0, (day - cdb_day).days) / 365)

        def fund_price(day: date) -> float:
            return round(2.1 * _wave(day, f"{self.key}/fund", 0.11, 0.012), 6)

        def stock_price(day: date) -> float:
            return round(36.0 * _wave(day, f"{self.key}/petr4", 0.08, 0.05), 2)

        def treasury_price(day: date) -> float:
            return round(2900.0 * _wave(day, f"{self.key}/ipca", 0.115, 0.015), 2)

        fund_trades = []
        day = business_day(start.replace(day=10))
        while day <= add_months(self.created, 120):
            fund_trades.append(_Trade(day, "BUY", round(500.0 / fund_price(day), 6), fund_price(day)))
            day = business_day(add_months(day.replace(day=10), 1))
        lot1 = start + timedelta(days=rng.randint(10, 60))
        lot2 = lot1 + timedelta(days=rng.randint(90, 200))
        treasury_day = start + timedelta(days=rng.randint(0, 90))
        return (
            _Holding("cdb", {"type": "FIXED_INCOME", "subtype": "CDB", "name": "CDB PLUGGY BANK 110% CDI",
                             "code": "CDB-PB-110", "isin": None, "issuer": "PLUGGY BANK S.A.", "rate": 110.0,
                             "rateType": "CDI", "fixedAnnualRate": None, "dueDate": add_months(cdb_day, 36),
                             "taxExempt": False, "incomeTax": 0.175},
                     cdb_price, (_Trade(cdb_day, "BUY", 10.0, cdb_price(cdb_day)),)),
            _Holding("fund", {"type": "MUTUAL_FUND", "subtype": "MULTIMARKET_FUND",
                              "name": "PLUGGY MACRO FIC FIM", "code": "PLUGGY-MACRO", "isin": "BRPLGMCTF007",
                              "issuer": "PLUGGY ASSET LTDA", "rate": None, "rateType": None,
                              "fixedAnnualRate": None, "dueDate": None, "taxExempt": False, "incomeTax": 0.15},
                     fund_price, tuple(fund_trades)),
            _Holding("petr4", {"type": "EQUITY", "subtype": "STOCK", "name": "PETROBRAS PN", "code": "PETR4",
                               "isin": "BRPETRACNPR6", "issuer": "PETROLEO BRASILEIRO S.A. PETROBRAS",
                               "rate": None, "rateType": None, "fixedAnnualRate": None, "dueDate": None,
                               "taxExempt": False, "incomeTax": 0.15},
                     stock_price, (_Trade(lot1, "BUY", 100.0, stock_price(lot1)),
                                   _Trade(lot2, "BUY", 100.0, stock_price(lot2)))),
            _Holding("tesouro", {"type": "FIXED_INCOME", "subtype": "TREASURY", "name": "TESOURO IPCA+ 2035",
                                 "code": "NTN-B PRINC 2035", "isin": "BRSTNCNTB4W2", "issuer": "TESOURO NACIONAL",
                                 "rate": None, "rateType": "IPCA", "fixedAnnualRate": 6.21,
                                 "dueDate": date(2035, 5, 15), "taxExempt": False, "incomeTax": 0.15},
                     treasury_price, (_Trade(treasury_day, "BUY", 1.5, treasury_price(treasury_day)),)),
        )

    def investment_id(self, slot: str) -> str:
        return stable_uuid(self.key, "investment", slot)

    def _trades(self, holding: _Holding, cutoff: datetime) -> list[_Trade]:
        last = cutoff.astimezone(SAO_PAULO).date()
        return [t for t in holding.trades if t.day <= last]

    def investments(self, item_id: str, cutoff: datetime) -> list[dict[str, Any]]:
        """Every holding bought by `cutoff`, valued at its price that day."""
        out = []
        for holding in self._holdings:
            trades = self._trades(holding, cutoff)
            if trades:
                out.append(self._investment_json(item_id, holding, trades, cutoff))
        return out

    def _investment_json(self, item_id: str, holding: _Holding, trades: list[_Trade],
                         cutoff: datetime) -> dict[str, Any]:
        today = cutoff.astimezone(SAO_PAULO).date()
        fields = holding.fields
        quantity = round(sum(t.quantity if t.kind == "BUY" else -t.quantity for t in trades), 6)
        price = holding.price(today)
        balance = round(quantity * price, 2)
        invested = round(sum(t.value for t in trades if t.kind == "BUY"), 2)
        profit = round(balance - invested, 2)
        taxes = round(max(0.0, profit) * fields["incomeTax"], 2)
        first = trades[0].day
        month_ago = holding.price(add_months(today, -1))
        year_ago = holding.price(add_months(today, -12))
        return {
            "id": self.investment_id(holding.slot), "itemId": item_id, "type": fields["type"],
            "subtype": fields["subtype"], "name": fields["name"], "code": fields["code"], "isin": fields["isin"],
            "number": f"{INSTITUTION['number']}-{holding.slot.upper()}", "issuer": fields["issuer"],
            "issuerCNPJ": ISSUER_CNPJ if fields["type"] == "FIXED_INCOME" and fields["subtype"] == "CDB" else None,
            "currencyCode": "BRL", "date": iso_z(_midnight(today)), "value": round(price, 6),
            "quantity": quantity, "amount": balance, "balance": balance, "amountOriginal": invested,
            "amountProfit": profit, "amountWithdrawal": round(balance - taxes, 2), "taxes": taxes, "taxes2": 0.0,
            "dueDate": iso_z(_midnight(fields["dueDate"])) if fields["dueDate"] else None,
            "issueDate": iso_z(_midnight(first)), "purchaseDate": iso_z(_midnight(first)),
            "rate": fields["rate"], "rateType": fields["rateType"], "fixedAnnualRate": fields["fixedAnnualRate"],
            "lastMonthRate": round((price / month_ago - 1) * 100, 4) if month_ago else None,
            "lastTwelveMonthsRate": round((price / year_ago - 1) * 100, 4) if year_ago else None,
            "annualRate": round((price / year_ago - 1) * 100, 4) if year_ago else None,
            "status": "ACTIVE", "transactions": None, "owner": HOLDER.name, "institution": dict(INSTITUTION),
            "metadata": {"taxRegime": "REGRESSIVO" if fields["type"] == "MUTUAL_FUND" else None,
                         "proposalNumber": None, "processNumber": None},
            "taxExempt": fields["taxExempt"], "priceFactor": None, "gracePeriodDate": None, "couponPayment": None,
        }

    @property
    def holdings(self) -> tuple[_Holding, ...]:
        return self._holdings

    def investment_transactions(self, holding: _Holding, cutoff: datetime) -> list[dict[str, Any]]:
        """The trades of one holding up to `cutoff`, newest first (as Pluggy lists them)."""
        out = []
        for n, trade in enumerate(self._trades(holding, cutoff)):
            moment = iso_z(_midnight(trade.day))
            out.append({
                "id": stable_uuid(self.key, "investment", holding.slot, "trade", n),
                "investmentId": self.investment_id(holding.slot), "type": trade.kind,
                "movementType": "CREDIT" if trade.kind == "BUY" else "DEBIT",
                "description": f"{'APLICACAO' if trade.kind == 'BUY' else 'RESGATE'} {holding.fields['name']}",
                "quantity": trade.quantity, "value": round(trade.price, 6), "amount": trade.value,
                "netAmount": trade.value, "date": moment, "tradeDate": moment, "brokerageNumber": None,
                "agreedRate": holding.fields["rate"], "expenses": None,
            })
        out.reverse()
        return out

    # -- the vehicle financing ---------------------------------------------------------------------------------------

    @property
    def loan_id(self) -> str:
        return stable_uuid(self.key, "loan", "vehicle")

    def installment_due(self, n: int) -> date:
        """When installment `n` (1-based) is due."""
        return business_day(add_months(self.loan_start, n))

    @property
    def installment_amount(self) -> float:
        r = LOAN_MONTHLY_RATE
        return round(self.loan_principal * r / (1 - (1 + r) ** -LOAN_MONTHS), 2)

    def outstanding_after(self, paid: int) -> float:
        """The principal still owed after `paid` installments (PRICE table)."""
        r, pmt = LOAN_MONTHLY_RATE, self.installment_amount
        owed = self.loan_principal * (1 + r) ** paid - pmt * ((1 + r) ** paid - 1) / r
        return round(max(0.0, owed), 2)

    def loan(self, item_id: str, cutoff: datetime) -> dict[str, Any]:
        today = cutoff.astimezone(SAO_PAULO).date()
        paid = sum(1 for n in range(1, LOAN_MONTHS + 1) if self.installment_due(n) <= today)
        releases = [{"installmentId": stable_uuid(self.key, "loan", "installment", n), "isOverParcelPayment": False,
                     "paidDate": iso_z(_midnight(self.installment_due(n))), "currencyCode": "BRL",
                     "paidAmount": self.installment_amount, "overParcel": None} for n in range(1, paid + 1)]
        contract = iso_z(_midnight(self.loan_start))
        yearly = round((1 + LOAN_MONTHLY_RATE) ** 12 - 1, 6)  # Open Finance rates are fractions: 0.1941 = 19.41 %
        return {
            "id": self.loan_id, "itemId": item_id, "contractNumber": f"FIN-{self.loan_id[:8].upper()}",
            "ipocCode": f"99999999{self.loan_id[:8].upper()}", "productName": "FINANCIAMENTO DE VEICULO",
            "type": "FINANCIAMENTO_AQUISICAO_BENS_VEICULOS_AUTOMOTORES", "kind": "FINANCING", "date": contract,
            "contractDate": contract, "disbursementDates": [contract], "settlementDate": None,
            "contractAmount": self.loan_principal, "currencyCode": "BRL",
            "dueDate": iso_z(_midnight(self.installment_due(LOAN_MONTHS))),
            "installmentPeriodicity": "MONTHLY", "installmentPeriodicityAdditionalInfo": None,
            "firstInstallmentDueDate": iso_z(_midnight(self.installment_due(1))),
            "CET": round(yearly + 0.024, 6), "amortizationScheduled": "PRICE",
            "amortizationScheduledAdditionalInfo": None, "cnpjConsignee": None,
            "interestRates": [{"taxType": "EFFECTIVE", "interestRateType": "COMPOUND", "taxPeriodicity": "YEARLY",
                               "calculation": "30/360", "referentialRateIndexerType": "PRE_FIXADO",
                               "referentialRateIndexerSubType": None, "referentialRateIndexerAdditionalInfo": None,
                               "preFixedRate": yearly, "postFixedRate": None, "additionalInfo": None}],
            "contractedFees": [{"name": "TARIFA DE CADASTRO", "code": "CADASTRO", "chargeType": "UNIQUE",
                                "charge": "FIXED", "amount": 850.0, "rate": None}],
            "contractedFinanceCharges": [{"type": "JUROS_REMUNERATORIOS_POR_ATRASO", "additionalInfo": None,
                                          "rate": 0.01}],
            "warranties": [{"currencyCode": "BRL", "type": "ALIENACAO_FIDUCIARIA", "subtype": "VEICULOS",
                            "amount": round(self.loan_principal * 1.25, 2)}],
            "installments": {"typeNumberOfInstallments": "MONTH", "totalNumberOfInstallments": LOAN_MONTHS,
                             "typeContractRemaining": "MONTH", "contractRemainingNumber": LOAN_MONTHS - paid,
                             "paidInstallments": paid, "dueInstallments": LOAN_MONTHS - paid,
                             "pastDueInstallments": 0, "balloonPayments": None},
            "payments": {"contractOutstandingBalance": self.outstanding_after(paid), "releases": releases},
        }

    # -- card bills --------------------------------------------------------------------------------------------------

    def bills(self, card_entries: list[Entry], bill_id: Callable[[date], str], first_day: date,
              cutoff: datetime, *, sign: float) -> list[dict[str, Any]]:
        """The card's closed bills up to `cutoff`, newest first: each with its total, minimum, IOF and the payment
        made on its due date once that day has come. `sign` is how the card's amounts go on the wire (+1: owed is
        positive)."""
        today = cutoff.astimezone(SAO_PAULO).date()
        close = latest_close(cutoff)
        out = []
        while close >= first_day:
            out.append(self._bill_json(card_entries, bill_id(close), close, today, sign))
            close = add_months(close, -1)
        return out

    @staticmethod
    def _bill_json(card_entries: list[Entry], bill_id: str, close: date, today: date,
                   sign: float) -> dict[str, Any]:
        total = bill_total(card_entries, close)
        due = due_date_for(close)
        opened = add_months(close, -1)
        iof = round(-sum(e.final_amount for e in card_entries if e.kind == "iof" and opened < e.when.date() <= close),
                     2)
        payments = []
        if due <= today and total > 0:
            payments.append({"id": stable_uuid(bill_id, "payment"), "valueType": "FULL_PAYMENT",
                             "paymentDate": iso_z(_midnight(due)), "paymentMode": "DEBIT_ACCOUNT",
                             "amount": total, "currencyCode": "BRL"})
        closed_at = iso_z(_midnight(close))
        return {
            "id": bill_id, "dueDate": iso_z(_midnight(due)), "billClosingDate": closed_at,
            "totalAmount": round(sign * total, 2), "totalAmountCurrencyCode": "BRL",
            "minimumPaymentAmount": round(max(0.0, total) * 0.15, 2), "allowsInstallments": total > 200,
            "financeCharges": [{"id": stable_uuid(bill_id, "iof"), "type": "IOF", "amount": iof,
                                "currencyCode": "BRL", "additionalInfo": None}] if iof else [],
            "payments": payments, "createdAt": closed_at, "updatedAt": closed_at,
        }
