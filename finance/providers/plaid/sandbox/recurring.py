"""/transactions/recurring/get: the streams Plaid finds in an item's posted transactions (payroll, rent, utilities,
loan payments, subscriptions), as of its last refresh, with categories in the taxonomy the request asks for.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from finance.providers.plaid.sandbox.base import (
    PlaidApiError,
    PlaidBase,
    _Call,
    _invalid,
    _money,
    _object,
    _strings,
    _wire_time,
)
from finance.providers.plaid.sandbox.categories import PFC_VERSIONS, personal_finance_category
from finance.providers.plaid.sandbox.history import _Row
from finance.providers.plaid.sandbox.household import NEW_YORK, UsMerchant
from finance.sandbox.ledger import add_months, stable_uuid

RECURRING_KINDS = frozenset({"payroll", "rent", "utility", "loan_payment"})
"""Ledger row kinds that recur on a calendar; card subscriptions are found by their merchant's channel."""


def _recurs(row: _Row) -> bool:
    entry = row.entry
    if entry.kind in RECURRING_KINDS:
        return True
    merchant = entry.merchant
    return isinstance(merchant, UsMerchant) and merchant.channel == "online" and merchant.kind == "merchant" \
        and entry.category_id.startswith(("ENTERTAINMENT_", "PERSONAL_CARE_GYMS", "RENT_AND_UTILITIES_"))


class RecurringMixin(PlaidBase):
    """/transactions/recurring/get."""

    def _transactions_recurring_get(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        if item["transactions_since"] is None:
            raise PlaidApiError("PRODUCT_NOT_READY")
        options = _object(call.body, "options")
        version = options.get("personal_finance_category_version")
        if version is not None and version not in PFC_VERSIONS:
            raise _invalid("personal_finance_category_version must be v1 or v2")
        metas = {m.account_id: m for m in self._layout(item) if m.syncs}
        wanted = _strings(call.body, "account_ids")
        if wanted is not None and any(account_id not in metas for account_id in wanted):
            raise PlaidApiError("INVALID_ACCOUNT_ID")
        moment = self._snapshot(item, call.now)
        today = moment.astimezone(NEW_YORK).date()
        streams: dict[tuple[str, str], list[tuple[str, _Row]]] = {}
        for tx_id, row in self._view(item, moment).rows.items():
            if row.pending or not _recurs(row) or (wanted is not None and row.account.account_id not in wanted):
                continue
            name = row.entry.merchant.name if row.entry.merchant else row.entry.description
            streams.setdefault((row.account.account_id, name), []).append((tx_id, row))
        inflow, outflow = [], []
        for (account_id, name), rows in sorted(streams.items()):
            stream = self._stream(item["item_id"], account_id, name, rows, today, version)
            (inflow if stream["average_amount"]["amount"] < 0 else outflow).append(stream)
        return {"inflow_streams": inflow, "outflow_streams": outflow, "updated_datetime": _wire_time(moment),
                "personal_finance_category_version": version or "v1"}

    @staticmethod
    def _stream(item_id: str, account_id: str, name: str, rows: list[tuple[str, _Row]], today: date,
                version: str | None) -> dict[str, Any]:
        rows.sort(key=lambda pair: pair[1].entry.when)
        days = [row.entry.when.astimezone(NEW_YORK).date() for _, row in rows]
        amounts = [-row.entry.final_amount for _, row in rows]  # Plaid's sign: positive leaves the account
        last = rows[-1][1].entry
        biweekly = last.kind == "payroll"
        following = days[-1] + timedelta(days=14) if biweekly else add_months(days[-1], 1)
        primary, detailed = personal_finance_category(last.category_id, last.kind, version)
        merchant = last.merchant.name if last.merchant else None
        return {
            "account_id": account_id, "stream_id": stable_uuid(item_id, "stream", account_id, name).replace("-", ""),
            "category": None, "category_id": None, "description": last.description, "merchant_name": merchant,
            "first_date": days[0].isoformat(), "last_date": days[-1].isoformat(),
            "predicted_next_date": following.isoformat(), "frequency": "BIWEEKLY" if biweekly else "MONTHLY",
            "transaction_ids": [tx_id for tx_id, _ in rows],
            "average_amount": {"amount": _money(sum(amounts) / len(amounts)), "iso_currency_code": "USD",
                               "unofficial_currency_code": None},
            "last_amount": {"amount": _money(amounts[-1]), "iso_currency_code": "USD",
                            "unofficial_currency_code": None},
            "is_active": (today - days[-1]).days <= (21 if biweekly else 45),
            "status": "MATURE" if len(rows) >= 3 else "EARLY_DETECTION",
            "personal_finance_category": {"primary": primary, "detailed": detailed, "confidence_level": "HIGH",
                                          "version": version or "v1"},
            "is_user_modified": False,
        }
