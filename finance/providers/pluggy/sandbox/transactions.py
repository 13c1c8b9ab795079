"""Transactions: GET /v2/transactions (cursor pages), GET /transactions (numbered pages), GET and PATCH
/transactions/{id} (a user's re-categorization).
"""

from __future__ import annotations

import base64
import bisect
import re
from collections import OrderedDict
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from finance.providers.pluggy.sandbox.base import _UUID, PluggyBase, _bad_request, _Call, _not_found, _page, _parse_time
from finance.providers.pluggy.sandbox.categories import PLUGGY_CATEGORIES
from finance.sandbox.ledger import iso_z

V2_PAGE_SIZE = 500
"""Rows per /v2/transactions page (tests monkeypatch it small)."""
V1_DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
MAX_IDS = 500
MATCH_CACHE_SIZE = 64
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_CURSOR_PREFIX = "v1~"
"""Cursors are base64 of "v1~<date ISO>|<transaction id>" (plain "<date ISO>|<id>" is accepted too). The prefix
puts a '+' in every cursor (base64 of plain ASCII dates and ids never has one), so clients' URL encoding is tested."""


class TransactionsMixin(PluggyBase):
    """The transaction endpoints, over the account views of `accounts`."""

    _matches: OrderedDict[tuple[object, ...], tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]]

    @staticmethod
    def _ids_filter(raw: str | None) -> set[str] | None:
        if not raw:
            return None
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if len(ids) > MAX_IDS:
            raise _bad_request(f"The ids parameter cannot have more than {MAX_IDS} transaction ids",
                               codeDescription="IDS_PARAMETER_EXCEEDS_MAX_LENGTH")
        if not all(_UUID.match(i) for i in ids):
            raise _bad_request("each value in ids must be a UUID")
        return set(ids)

    @staticmethod
    def _date_bound(raw: str | None, name: str) -> str | None:
        """A date filter as a comparable prefix: 'YYYY-MM-DD' compares the UTC day, an ISO time the full instant."""
        if not raw:
            return None
        try:
            if _ISO_DATE.match(raw):
                date.fromisoformat(raw)
                return raw
            return iso_z(_parse_time(raw))
        except ValueError as exc:
            raise _bad_request(f"{name} must be a valid ISO 8601 date string") from exc

    @classmethod
    def _filtered(cls, rows: list[dict[str, Any]], *, ids: set[str] | None, start: str | None, end: str | None,
                  created_from: str | None, bill_id: str | None = None) -> list[dict[str, Any]]:
        out = []
        for tx in rows:
            if ids is not None and tx["id"] not in ids:
                continue
            if start is not None and tx["date"][: len(start)] < start:
                continue
            if end is not None and tx["date"][: len(end)] > end:
                continue
            if created_from is not None and tx["createdAt"] < created_from:
                continue
            if bill_id is not None and (tx["creditCardMetadata"] or {}).get("billId") != bill_id:
                continue
            out.append(tx)
        return out

    def _account_rows(self, call: _Call) -> tuple[str, list[dict[str, Any]]]:
        account_id = call.params.get("accountId") or ""
        if not _UUID.match(account_id):
            raise _bad_request("accountId should not be null or undefined, accountId must be a UUID")
        found = self._find_account(account_id)
        return account_id, found[1].rows if found else []

    def _transactions_v2(self, call: _Call) -> tuple[int, Any]:
        params = call.params
        account_id, rows = self._account_rows(call)
        ids = self._ids_filter(params.get("ids"))
        if params.get("dateFrom") and params.get("createdAtFrom"):
            raise _bad_request("dateFrom and createdAtFrom cannot be used together")
        created_from = self._date_bound(params.get("createdAtFrom"), "createdAtFrom")
        if created_from is not None and len(created_from) == 10:
            created_from += "T00:00:00.000Z"
        start = self._date_bound(params.get("dateFrom"), "dateFrom")
        end = self._date_bound(params.get("dateTo"), "dateTo")
        matching, keys = self._v2_matching(account_id, rows, ids, start, end, created_from)
        first = 0
        after = params.get("after")
        if after is not None:
            first = bisect.bisect_right(keys, _read_cursor(after))
        page_size = V2_PAGE_SIZE
        page = matching[first: first + page_size]
        next_query = None
        if first + page_size < len(matching):
            last = page[-1]
            cursor = base64.b64encode(f"{_CURSOR_PREFIX}{last['date']}|{last['id']}".encode()).decode()
            query = [("accountId", account_id)]
            query += [(k, params[k]) for k in ("ids", "dateFrom", "dateTo", "createdAtFrom") if params.get(k)]
            query.append(("after", cursor))
            next_query = "?" + urlencode(query, quote_via=quote, safe="")
        return 200, self.v2_page_body(page, next_query)

    def _v2_matching(self, account_id: str, rows: list[dict[str, Any]], ids: set[str] | None, start: str | None,
                     end: str | None, created_from: str | None) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """The rows a /v2/transactions query matches and their (date, id) cursor keys, kept per query and account
        snapshot so that walking a large account costs O(page) a page rather than a scan of the whole account."""
        key = (account_id, id(rows), None if ids is None else frozenset(ids), start, end, created_from)
        cached = self._matches.get(key)
        if cached is not None and cached[0] is rows:  # the same snapshot, not a new list that reused an old id
            self._matches.move_to_end(key)
            return cached[1], cached[2]
        matching = self._filtered(rows, ids=ids, start=start, end=end, created_from=created_from)
        keys = [(t["date"], t["id"]) for t in matching]
        self._matches[key] = (rows, matching, keys)
        while len(self._matches) > MATCH_CACHE_SIZE:
            self._matches.popitem(last=False)
        return matching, keys

    def v2_page_body(self, results: list[dict[str, Any]], next_query: str | None) -> dict[str, Any]:
        """The JSON body of one /v2/transactions page.

        A seam for load benchmarks: `handle` runs under the emulator's lock, so a subclass may answer a placeholder
        here and put the rows in (encoded beforehand) once `handle` has returned, as bench.emulator does.
        """
        return {"results": results, "next": next_query}

    def _transactions_v1(self, call: _Call) -> tuple[int, Any]:
        params = call.params
        _, rows = self._account_rows(call)
        try:
            page = int(params.get("page") or 1)
            page_size = int(params.get("pageSize") or V1_DEFAULT_PAGE_SIZE)
        except ValueError as exc:
            raise _bad_request("page and pageSize must be numbers") from exc
        if page < 1:
            raise _bad_request("page must not be less than 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _bad_request(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
        ids = self._ids_filter(params.get("ids"))
        created_from = self._date_bound(params.get("createdAtFrom"), "createdAtFrom")
        if created_from is not None and len(created_from) == 10:
            created_from += "T00:00:00.000Z"
        matching = self._filtered(
            rows, ids=ids, start=None if ids else self._date_bound(params.get("from"), "from"),
            end=None if ids else self._date_bound(params.get("to"), "to"), created_from=created_from,
            bill_id=params.get("billId"))
        matching.reverse()
        return 200, _page(matching[(page - 1) * page_size: page * page_size], page, page_size, len(matching))

    def _find_transaction(self, tx_id: str) -> dict[str, Any]:
        for item in self._items.values():
            for view in self._views_of(item):
                for tx in view.rows:
                    if tx["id"] == tx_id:
                        return tx
        raise _not_found("TRANSACTION", "Transaction not found")

    def _get_transaction(self, call: _Call) -> tuple[int, Any]:
        return 200, self._find_transaction(call.match["id"])

    def _update_transaction(self, call: _Call) -> tuple[int, Any]:
        tx_id = call.match["id"]
        if not _UUID.match(tx_id):
            raise _bad_request("Transaction Id should not be null or undefined, transactionId must be a UUID")
        category_id = call.body().get("categoryId")
        if not isinstance(category_id, str) or category_id not in PLUGGY_CATEGORIES:
            raise _not_found("CATEGORY", "category not found")
        self._find_transaction(tx_id)
        self._patches[tx_id] = {"categoryId": category_id, "updatedAt": iso_z(call.now)}
        self._patch_version += 1
        self._save()
        return 200, self._find_transaction(tx_id)


def _read_cursor(after: str) -> tuple[str, str]:
    """(date, id) out of an `after` cursor; 400 Invalid cursor otherwise (a '+' that arrived as a space, say)."""
    try:
        text = base64.b64decode(after, validate=True).decode()
        date_part, tx_id = text.removeprefix(_CURSOR_PREFIX).split("|")
    except ValueError as exc:
        raise _bad_request("Invalid cursor") from exc
    if not _ISO_MS.match(date_part) or not _UUID.match(tx_id):
        raise _bad_request("Invalid cursor")
    return date_part, tx_id
