"""Investments: the securities the household holds, /investments/holdings/get and /investments/transactions/get.

Holdings follow each investment account's balance as of the item's last refresh: the account's value is split across
its securities by a fixed allocation, at that day's price (a smooth deterministic path per security), so the holdings
add up to the balance /accounts/get shows. Investment transactions come from the ledger (the 401k's payroll
contributions and the brokerage account's monthly deposits, each invested in the account's core fund the same day),
with quarterly dividends and the IRA's quarterly account fee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from finance.providers.plaid.sandbox.accounts import _AccountMeta
from finance.providers.plaid.sandbox.base import (
    PlaidApiError,
    PlaidBase,
    _Call,
    _int,
    _invalid,
    _iso_date,
    _money,
    _object,
    _strings,
    plaid_id,
)
from finance.providers.plaid.sandbox.household import NEW_YORK
from finance.sandbox.ledger import business_day

INVESTMENTS_COUNT_DEFAULT = 100
INVESTMENTS_COUNT_MAX = 500
_PRICE_EPOCH = date(2024, 1, 1)


@dataclass(frozen=True, slots=True)
class _Security:
    """One security: its identifiers, kind, and the path its price follows (`price` on 2024-01-01, a yearly `drift`,
    a swing of `swing` over `period` days)."""

    key: str
    name: str
    ticker: str | None
    type: str
    subtype: str | None
    price: float
    drift: float = 0.0
    swing: float = 0.0
    period: int = 1
    isin: str | None = None
    cusip: str | None = None
    figi: str | None = None
    mic: str | None = None
    sector: str | None = None
    industry: str | None = None
    dividend_yield: float = 0.0
    fixed_income: tuple[float, str, str] | None = None  # coupon %, issue date, maturity date

    @property
    def security_id(self) -> str:
        return plaid_id("security", self.key)

    def price_on(self, day: date) -> float:
        years = (day - _PRICE_EPOCH).days / 365
        wave = self.swing * math.sin(2 * math.pi * (day - _PRICE_EPOCH).days / self.period + len(self.key))
        return round(self.price * (1 + self.drift * years + wave), 2)


CASH = _Security("cash", "U S Dollar", "CUR:USD", "cash", "cash", 1.0)
SECURITIES = {s.key: s for s in (
    CASH,
    _Security("vti", "Vanguard Total Stock Market ETF", "VTI", "etf", "etf", 237.0, 0.14, 0.05, 131,
              isin="US9229087690", cusip="922908769", mic="ARCX", dividend_yield=0.013),
    _Security("vxus", "Vanguard Total International Stock ETF", "VXUS", "etf", "etf", 57.0, 0.07, 0.04, 97,
              isin="US9219097683", cusip="921909768", mic="XNAS", dividend_yield=0.03),
    _Security("agg", "iShares Core U.S. Aggregate Bond ETF", "AGG", "etf", "etf", 99.0, 0.01, 0.015, 173,
              isin="US4642872265", cusip="464287226", mic="ARCX", dividend_yield=0.037),
    _Security("aapl", "Apple Inc.", "AAPL", "equity", "common stock", 185.0, 0.12, 0.08, 89,
              isin="US0378331005", cusip="037833100", figi="BBG000B9XRY4", mic="XNAS",
              sector="Electronic Technology", industry="Telecommunications Equipment", dividend_yield=0.005),
    _Security("vffvx", "Vanguard Target Retirement 2055 Fund", "VFFVX", "mutual fund", "mutual fund", 49.0, 0.11,
              0.04, 113, isin="US92202E8065", cusip="92202E806"),
    _Security("ust", "United States Treasury Note 4.25% 05/15/2034", None, "fixed income", "treasury", 98.5, 0.0,
              0.01, 211, isin="US91282CKQ32", cusip="91282CKQ3", fixed_income=(4.25, "2024-05-15", "2034-05-15")),
)}
"""The securities the sandbox household holds, by key."""
ALLOCATIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "brokerage": (("vti", 0.45), ("aapl", 0.15), ("vxus", 0.15), ("ust", 0.15), ("cash", 0.10)),
    "ira": (("vti", 0.50), ("vxus", 0.20), ("agg", 0.25), ("cash", 0.05)),
    "401k": (("vffvx", 0.90), ("agg", 0.10)),
}
"""How each investment account's value is split across securities (by account subtype)."""
CORE_FUND = {"brokerage": "vti", "ira": "vti", "401k": "vffvx"}
"""Where each account's new money is invested."""
GAINS = (0.31, -0.04, 0.12, 0.22, 0.07, 0.18, 0.0)
"""Unrealised gains drawn per holding (by a digest of its account and security), for its cost basis."""
IRA_QUARTERLY_FEE = 6.25


def _quarter_ends(start: date, end: date) -> list[date]:
    """The last business day of each calendar quarter between `start` and `end`."""
    days = []
    for year in range(start.year, end.year + 1):
        for month in (3, 6, 9, 12):
            last = date(year, month, 30 if month in (6, 9) else 31)
            while last.weekday() >= 5:
                last -= timedelta(days=1)
            if start <= last <= end:
                days.append(last)
    return days


class InvestmentsMixin(PlaidBase):
    """/investments/holdings/get and /investments/transactions/get."""

    def _investment_accounts(self, call: _Call) -> tuple[dict[str, Any], list[tuple[int, _AccountMeta]]]:
        """The item and its investment accounts (those `options.account_ids` names, if it does); the product is added
        to the item on first use, as Plaid does for an Item whose institution offers it."""
        item = self._item_for(call, healthy=True)
        institution = self._institution(item["institution_id"])
        if "investments" not in institution["products"]:
            raise PlaidApiError("PRODUCTS_NOT_SUPPORTED", f"{institution['name']} does not support investments")
        accounts = [(i, meta) for i, meta in enumerate(self._layout(item)) if meta.type == "investment"]
        if not accounts:
            raise PlaidApiError("NO_INVESTMENT_ACCOUNTS")
        wanted = _strings(_object(call.body, "options"), "account_ids")
        if wanted is not None:
            known = {meta.account_id for _, meta in accounts}
            if not wanted or any(account_id not in known for account_id in wanted):
                raise PlaidApiError("INVALID_ACCOUNT_ID")
            accounts = [(i, meta) for i, meta in accounts if meta.account_id in wanted]
        if "investments" not in item["products"]:
            item["products"] = [*item["products"], "investments"]
            self._save()
        return item, accounts

    def _investment_account_json(self, meta: _AccountMeta, balance: tuple[float, float]) -> dict[str, Any]:
        body = self._account_json(meta, balance)
        body["balances"].update(available=None, margin_loan_amount=0.0 if meta.subtype == "brokerage" else None)
        return body

    def _investments_holdings_get(self, call: _Call) -> dict[str, Any]:
        item, accounts = self._investment_accounts(call)
        moment = self._snapshot(item, call.now)
        day = moment.astimezone(NEW_YORK).date()
        view = self._view(item, moment)
        holdings, used = [], {}
        for index, meta in accounts:
            value = max(view.balances[index][0], 0.0)
            for key, weight in ALLOCATIONS.get(meta.subtype or "", (("cash", 1.0),)):
                security = SECURITIES[key]
                price = security.price_on(day)
                quantity = round(value * weight / price, 4 if key != "cash" else 2)
                worth = _money(quantity * price)
                gain = GAINS[int(plaid_id(meta.account_id, key)[:3], 36) % len(GAINS)] if key != "cash" else 0.0
                holdings.append({
                    "account_id": meta.account_id, "security_id": security.security_id,
                    "institution_price": price, "institution_price_as_of": day.isoformat(),
                    "institution_price_datetime": None, "institution_value": worth,
                    "cost_basis": _money(worth / (1 + gain)), "quantity": quantity, "iso_currency_code": "USD",
                    "unofficial_currency_code": None, "vested_quantity": None, "vested_value": None,
                })
                used[key] = security
        return {"accounts": [self._investment_account_json(meta, view.balances[i]) for i, meta in accounts],
                "holdings": holdings, "securities": [self._security_json(s, day) for s in used.values()],
                "item": self._item_json(item), "is_investments_fallback_item": False}

    def _investments_transactions_get(self, call: _Call) -> dict[str, Any]:
        start = _iso_date(call.body.get("start_date"), "start_date")
        end = _iso_date(call.body.get("end_date"), "end_date")
        if start > end:
            raise _invalid("start_date must be on or before end_date")
        options = _object(call.body, "options")
        count = _int(options, "count", INVESTMENTS_COUNT_DEFAULT, 1, INVESTMENTS_COUNT_MAX)
        offset = _int(options, "offset", 0, 0, 2**31 - 1)
        if not isinstance(options.get("async_update", False), bool):
            raise _invalid("async_update must be a boolean")
        item, accounts = self._investment_accounts(call)
        moment = self._snapshot(item, call.now)
        view = self._view(item, moment)
        rows = []
        for index, meta in accounts:
            rows += self._investment_rows(item, index, meta, moment, max(view.balances[index][0], 0.0))
        rows = sorted((r for r in rows if start.isoformat() <= r["date"] <= end.isoformat()),
                      key=lambda r: (r["date"], r["investment_transaction_id"]), reverse=True)
        page = rows[offset: offset + count]
        day = moment.astimezone(NEW_YORK).date()
        used = {r["security_id"]: r["security_id"] for r in page if r["security_id"]}
        securities = [self._security_json(s, day) for s in SECURITIES.values() if s.security_id in used]
        return {"item": self._item_json(item),
                "accounts": [self._investment_account_json(meta, view.balances[i]) for i, meta in accounts],
                "securities": securities, "investment_transactions": page,
                "total_investment_transactions": len(rows), "is_investments_fallback_item": False}

    def _investment_rows(self, item: dict[str, Any], index: int, meta: _AccountMeta, moment: datetime,
                         value: float) -> list[dict[str, Any]]:
        """Every investment transaction of one account visible at `moment`."""
        subtype = meta.subtype or ""
        core = SECURITIES[CORE_FUND.get(subtype, "vti")]
        rows = []

        def row(key: str, day: date, kind: str, sub: str, name: str, amount: float, security: _Security | None,
                quantity: float = 0.0, price: float = 0.0) -> None:
            rows.append({
                "investment_transaction_id": plaid_id(self.seed, item["item_id"], "investment", key),
                "cancel_transaction_id": None, "account_id": meta.account_id,
                "security_id": security.security_id if security else None, "date": day.isoformat(),
                "transaction_datetime": None, "name": name, "quantity": quantity, "amount": _money(amount),
                "price": price, "fees": 0.0, "type": kind, "subtype": sub, "iso_currency_code": "USD",
                "unofficial_currency_code": None})

        for entry, pending, _ in self._ledger(item).view(index, moment):
            if pending or entry.kind != "contribution":
                continue
            day = entry.when.astimezone(NEW_YORK).date()
            price = core.price_on(day)
            row(f"{entry.id}/cash", day, "cash", "contribution" if subtype != "brokerage" else "deposit",
                entry.description, -entry.amount, None)
            row(f"{entry.id}/buy", day, "buy", "buy", f"BUY {core.name}", entry.amount, core,
                round(entry.amount / price, 4), price)
        first = self._ledger(item).profile.start
        last = moment.astimezone(NEW_YORK).date()
        for quarter_end in _quarter_ends(first, last):
            for key, weight in ALLOCATIONS.get(subtype, ()):
                security = SECURITIES[key]
                if security.dividend_yield:
                    row(f"{meta.account_id}/{key}/{quarter_end}", quarter_end, "cash", "dividend",
                        f"DIVIDEND {security.name}", -value * weight * security.dividend_yield / 4, security)
            if subtype == "ira":
                fee_day = business_day(quarter_end + timedelta(days=1))
                if fee_day <= last:
                    row(f"{meta.account_id}/fee/{quarter_end}", fee_day, "fee", "account fee",
                        "QUARTERLY ACCOUNT FEE", IRA_QUARTERLY_FEE, None)
        return rows

    @staticmethod
    def _security_json(security: _Security, day: date) -> dict[str, Any]:
        fixed = None
        if security.fixed_income is not None:
            coupon, issued, matures = security.fixed_income
            fixed = {"yield_rate": {"percentage": coupon, "type": "coupon"}, "maturity_date": matures,
                     "issue_date": issued, "face_value": 1000.0}
        cash = security.type == "cash"
        return {
            "security_id": security.security_id, "isin": security.isin, "cusip": security.cusip, "sedol": None,
            "institution_security_id": None, "institution_id": None, "proxy_security_id": None,
            "name": security.name, "ticker_symbol": security.ticker, "is_cash_equivalent": cash,
            "type": security.type, "subtype": security.subtype, "close_price": security.price_on(day),
            "close_price_as_of": day.isoformat(), "update_datetime": None, "iso_currency_code": "USD",
            "unofficial_currency_code": None, "market_identifier_code": security.mic, "sector": security.sector,
            "industry": security.industry, "cfi_code": None, "figi": security.figi, "option_contract": None,
            "fixed_income": fixed,
        }
