"""Accounts: each sandbox user's account layout, custom users' `override_accounts`, /accounts/get and
/accounts/balance/get.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from finance.providers.plaid.sandbox.base import (
    PlaidApiError,
    PlaidBase,
    _Call,
    _invalid,
    _iso_date,
    _money,
    _object,
    _string,
    _strings,
    plaid_id,
)
from finance.providers.plaid.sandbox.household import US_ACCOUNT_KINDS, US_CARD_LAST4

_ISO_CURRENCIES = frozenset({"USD", "CAD", "EUR", "GBP", "JPY", "MXN", "BRL", "CHF", "AUD", "CNY", "INR", "SEK", "NOK",
                             "DKK", "PLN", "NZD", "HKD", "SGD", "KRW", "ZAR"})
LAYOUTS: dict[str, tuple[str, ...]] = {
    "full": US_ACCOUNT_KINDS,
    "dynamic": ("checking", "savings", "card"),
}
"""The accounts of each sandbox user's household: `user_good` → full, `user_transactions_dynamic` → dynamic."""
_KIND_META: dict[str, tuple[str, str, str, str | None, str, float | None]] = {
    "checking": ("depository", "checking", "Plaid Checking", "Plaid Gold Standard 0% Interest Checking", "0000", None),
    "savings": ("depository", "savings", "Plaid Saving", "Plaid Silver Standard 0.1% Interest Saving", "1111", None),
    "cd": ("depository", "cd", "Plaid CD", "Plaid Bronze Standard 0.2% Interest CD", "2222", None),
    "card": ("credit", "credit card", "Plaid Credit Card", "Plaid Diamond 12.5% APR Interest Credit Card",
             US_CARD_LAST4, 10_000.0),
    "money_market": ("depository", "money market", "Plaid Money Market",
                     "Plaid Platinum Standard 1.85% Interest Money Market", "4444", None),
    "ira": ("investment", "ira", "Plaid IRA", None, "5555", None),
    "401k": ("investment", "401k", "Plaid 401k", None, "6666", None),
    "student": ("loan", "student", "Plaid Student Loan", None, "7777", None),
    "mortgage": ("loan", "mortgage", "Plaid Mortgage", None, "8888", None),
    "brokerage": ("investment", "brokerage", "Plaid Brokerage", "Plaid Self-Directed Brokerage Account", "9999", None),
    "installment": ("loan", "installment", "Plaid Installment Loan", "Plaid Fixed-Rate Personal Loan", "1212", None),
}
"""(type, subtype, name, official name, mask, credit limit) of each household account kind."""
_CUSTOM_TYPES = {"depository": "checking", "credit": "credit card", "loan": "student", "investment": "brokerage",
                 "other": "other", "payroll": "payroll"}
"""`override_accounts[].type` values a custom user may use, with the subtype each defaults to."""


@dataclass(frozen=True, slots=True)
class _AccountMeta:
    """What Plaid says about one account besides its balance."""

    account_id: str
    type: str
    subtype: str | None
    name: str
    official_name: str | None
    mask: str | None
    limit: float | None
    currency: str = "USD"
    force_available: float | None = None

    @property
    def syncs(self) -> bool:
        """Whether /transactions/sync carries this account's transactions (depository, credit, student loans)."""
        return self.type in ("depository", "credit") or (self.type == "loan" and self.subtype == "student")

    @property
    def owed(self) -> bool:
        return self.type in ("credit", "loan")


def _custom_accounts(raw: object) -> list[dict[str, Any]]:
    """A custom user's `override_accounts`, validated and normalized (what the item keeps)."""
    if not isinstance(raw, list) or not raw:
        raise _invalid("override_accounts must be a non-empty array")
    accounts = []
    for i, account in enumerate(raw):
        if not isinstance(account, dict) or account.get("type") not in _CUSTOM_TYPES:
            raise _invalid(f"override_accounts[{i}].type must be one of {', '.join(_CUSTOM_TYPES)}")
        kind = account["type"]
        subtype = account.get("subtype") or _CUSTOM_TYPES[kind]
        meta = account.get("meta") or {}
        balance = account.get("starting_balance", 10_000)
        forced = account.get("force_available_balance")
        limit = meta.get("limit") if isinstance(meta, dict) else None
        currency = account.get("currency") or "USD"
        if not isinstance(meta, dict) or not isinstance(subtype, str) or not isinstance(currency, str):
            raise _invalid(f"override_accounts[{i}] has an invalid meta, subtype or currency")
        if not all(isinstance(v, int | float) and not isinstance(v, bool)
                   for v in (balance, *(x for x in (forced, limit) if x is not None))):
            raise _invalid(f"override_accounts[{i}] balances and limit must be numbers")
        rows = account.get("transactions") or []
        if not isinstance(rows, list):
            raise _invalid(f"override_accounts[{i}].transactions must be an array")
        transactions = []
        for row in rows:
            if not isinstance(row, dict) or isinstance(row.get("amount"), bool) or not isinstance(
                    row.get("amount"), int | float) or not isinstance(row.get("description"), str):
                raise _invalid(f"override_accounts[{i}].transactions need amount and description")
            transacted = _iso_date(row.get("date_transacted"), "date_transacted")
            posted = _iso_date(row.get("date_posted"), "date_posted")
            if posted < transacted:
                raise _invalid("date_posted cannot be before date_transacted")
            transactions.append({"date_transacted": transacted.isoformat(), "date_posted": posted.isoformat(),
                                 "amount": round(float(row["amount"]), 2), "description": row["description"]})
        accounts.append({
            "type": "other" if kind == "payroll" else kind, "subtype": subtype,
            "name": str(meta.get("name") or f"Plaid {subtype.title()}"), "official_name": meta.get("official_name"),
            "mask": str(meta.get("mask") or f"{i:04d}"), "limit": float(limit) if limit is not None else None,
            "currency": currency.upper(), "starting_balance": float(balance),
            "force_available": float(forced) if forced is not None else None, "transactions": transactions,
        })
    return accounts


class AccountsMixin(PlaidBase):
    """Account layouts and the /accounts/* endpoints."""

    def _layout(self, item: dict[str, Any]) -> list[_AccountMeta]:
        item_id = item["item_id"]
        if item["layout"] == "custom":
            return [_AccountMeta(plaid_id(self.seed, item_id, "account", i), a["type"], a["subtype"], a["name"],
                                 a["official_name"], a["mask"], a["limit"], a["currency"], a["force_available"])
                    for i, a in enumerate(item["custom"])]
        metas = []
        for i, kind in enumerate(LAYOUTS[item["layout"]]):
            kind_type, subtype, name, official, mask, limit = _KIND_META[kind]
            metas.append(_AccountMeta(plaid_id(self.seed, item_id, "account", i), kind_type, subtype, name, official,
                                      mask, limit))
        return metas

    def _selected_accounts(self, item: dict[str, Any], options: dict[str, Any]) -> list[int]:
        metas = self._layout(item)
        wanted = _strings(options, "account_ids")
        if wanted is None:
            return list(range(len(metas)))
        known = {meta.account_id: i for i, meta in enumerate(metas)}
        if any(account_id not in known for account_id in wanted):
            raise PlaidApiError("INVALID_ACCOUNT_ID")
        return sorted({known[account_id] for account_id in wanted})

    def _accounts_get(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        indexes = self._selected_accounts(item, _object(call.body, "options"))
        view, metas = self._view(item, self._snapshot(item, call.now)), self._layout(item)
        return {"accounts": [self._account_json(metas[i], view.balances[i]) for i in indexes],
                "item": self._item_json(item)}

    def _accounts_balance_get(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        options = _object(call.body, "options")
        _string(options, "min_last_updated_datetime")
        indexes = self._selected_accounts(item, options)
        view, metas = self._view(item, call.now), self._layout(item)
        return {"accounts": [self._account_json(metas[i], view.balances[i]) for i in indexes],
                "item": self._item_json(item)}

    def _account_json(self, meta: _AccountMeta, balance: tuple[float, float]) -> dict[str, Any]:
        posted, pending = balance
        current = _money(-posted if meta.owed else posted)
        available: float | None = None
        if meta.type == "depository" and meta.subtype != "cd":
            available = _money(posted + pending if meta.force_available is None else meta.force_available)
        elif meta.type == "credit" and meta.limit is not None:
            available = _money(meta.limit - current + pending)
        iso = meta.currency in _ISO_CURRENCIES
        body = {
            "account_id": meta.account_id,
            "balances": {"available": available, "current": current, "limit": meta.limit,
                         "iso_currency_code": meta.currency if iso else None,
                         "unofficial_currency_code": None if iso else meta.currency},
            "mask": meta.mask, "name": meta.name, "official_name": meta.official_name, "type": meta.type,
            "subtype": meta.subtype, "holder_category": "personal",
        }
        if int(meta.account_id[-2:], 36) % 3 == 0:  # seeded by the id: Plaid sends it for some institutions only
            body["persistent_account_id"] = hashlib.sha256(f"persistent/{meta.account_id}".encode()).hexdigest()[:56]
        return body
