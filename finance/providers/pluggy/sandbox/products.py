"""Investments, loans and card bills: GET /investments (+ /{id}, /{id}/transactions), GET /loans (+ /{id}) and
GET /bills?accountId= (+ /{id}), served from the household's `wealth` as of the item's last sync.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from finance.providers.pluggy.sandbox.accounts import AccountsMixin
from finance.providers.pluggy.sandbox.base import _UUID, ApiError, _bad_request, _Call, _not_found, _page, _parse_time
from finance.providers.pluggy.sandbox.wealth import Wealth

MAX_PAGE_SIZE = 500
INVESTMENT_TYPES = frozenset({"COE", "EQUITY", "ETF", "FIXED_INCOME", "MUTUAL_FUND", "SECURITY", "OTHER"})


def _paged(call: _Call, results: list[dict[str, Any]], default_size: int = 20) -> dict[str, Any]:
    """Pluggy's numbered page of `results` for the call's page and pageSize."""
    try:
        page = int(float(call.params.get("page") or 1))
        size = int(float(call.params.get("pageSize") or default_size))
    except ValueError as exc:
        raise _bad_request("page and pageSize must be numbers") from exc
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        raise _bad_request(f"page must be at least 1 and pageSize between 1 and {MAX_PAGE_SIZE}")
    return _page(results[(page - 1) * size: page * size], page, size, len(results))


class ProductsMixin(AccountsMixin):
    """The product endpoints beyond accounts and transactions."""

    def _wealth(self, item: dict[str, Any]) -> Wealth:
        key, created = self._household(item)
        return Wealth(self.seed, key, created)

    def _item_named(self, call: _Call, key: str = "itemId") -> dict[str, Any]:
        item_id = call.params.get(key) or ""
        if not _UUID.match(item_id):
            raise _bad_request(f"{key} should not be null or undefined, {key} must be a UUID")
        item = self._items.get(item_id)
        if item is None:
            raise _not_found("ITEM", "item not found")
        return item

    def _has(self, item: dict[str, Any], product: str) -> bool:
        """The item synced and collected this product."""
        return bool(item["syncs"]) and bool(item.get("layout")) and product in (item.get("products") or ())

    @staticmethod
    def _cutoff(item: dict[str, Any]) -> datetime:
        return _parse_time(item["syncs"][-1])

    # -- investments ---------------------------------------------------------------------------------------------

    def _item_investments(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if not self._has(item, "INVESTMENTS"):
            return []
        return [{**i, "id": self._item_id_of(item, i["id"])}
                for i in self._wealth(item).investments(item["id"], self._cutoff(item))]

    def _list_investments(self, call: _Call) -> tuple[int, Any]:
        item = self._item_named(call)
        wanted = (call.params.get("type") or "").upper()
        if wanted and wanted not in INVESTMENT_TYPES:
            raise _bad_request(f"type must be one of {', '.join(sorted(INVESTMENT_TYPES))}")
        found = [i for i in self._item_investments(item) if not wanted or i["type"] == wanted]
        return 200, _paged(call, found)

    def _find_investment(self, investment_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for item in self._items.values():
            for investment in self._item_investments(item):
                if investment["id"] == investment_id:
                    return item, investment
        raise _not_found("INVESTMENT", "investment not found")

    def _get_investment(self, call: _Call) -> tuple[int, Any]:
        return 200, self._find_investment(call.match["id"])[1]

    def _investment_transactions(self, call: _Call) -> tuple[int, Any]:
        item, investment = self._find_investment(call.match["id"])
        wealth = self._wealth(item)
        holding = next(h for h in wealth.holdings if self._item_id_of(item, wealth.investment_id(h.slot))
                       == investment["id"])
        rows = [] if "INVESTMENTS_TRANSACTIONS" not in (item.get("products") or ()) else [
            {**t, "id": self._item_id_of(item, t["id"]), "investmentId": investment["id"]}
            for t in wealth.investment_transactions(holding, self._cutoff(item))]
        return 200, _paged(call, rows)

    # -- loans -------------------------------------------------------------------------------------------------------

    def _item_loans(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if not self._has(item, "LOANS"):
            return []
        loan = self._wealth(item).loan(item["id"], self._cutoff(item))
        return [{**loan, "id": self._item_id_of(item, loan["id"])}]

    def _list_loans(self, call: _Call) -> tuple[int, Any]:
        return 200, _paged(call, self._item_loans(self._item_named(call)))

    def _get_loan(self, call: _Call) -> tuple[int, Any]:
        for item in self._items.values():
            for loan in self._item_loans(item):
                if loan["id"] == call.match["id"]:
                    return 200, loan
        raise _not_found("LOAN", "loan not found")

    # -- card bills --------------------------------------------------------------------------------------------------

    def _card_bills(self, item: dict[str, Any], account_id: str) -> list[dict[str, Any]] | None:
        """The closed bills of a card account (None: not a card of this item)."""
        for view in self._views_of(item):
            if view.account_id != account_id:
                continue
            ledger = self._ledger(item)
            if view.kind != "card" or view.index >= len(ledger.entries):
                return []  # not a card, or a card of a custom account source (the bench's) with no ledger behind it
            profile: Any = ledger.profile
            first_day: date = profile.start
            sign = 1.0 if self.card_sign == "purchase_positive" else -1.0
            return [{**bill, "id": self._item_id_of(item, bill["id"])}
                    for bill in self._wealth(item).bills(ledger.entries[view.index], profile.bill_id_for_close,
                                                         first_day, self._cutoff(item), sign=sign)]
        return None

    def _list_bills(self, call: _Call) -> tuple[int, Any]:
        account_id = call.params.get("accountId") or ""
        if not _UUID.match(account_id):
            raise _bad_request("accountId should not be null or undefined, accountId must be a UUID")
        for item in self._items.values():
            bills = self._card_bills(item, account_id)
            if bills is not None:
                return 200, _paged(call, bills)
        raise _not_found("ACCOUNT", "account not found")

    def _get_bill(self, call: _Call) -> tuple[int, Any]:
        for item in self._items.values():
            for view in self._views_of(item):
                for bill in self._card_bills(item, view.account_id) or []:
                    if bill["id"] == call.match["id"]:
                        return 200, bill
        raise ApiError(404, {"code": 404, "codeDescription": "CREDIT_CARD_BILL_NOT_FOUND", "message": "Bill not found"})
