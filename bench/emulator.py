"""The Pluggy emulator serving bulk generated data, and an instrumented httpx transport.

`BulkPluggyEmulator` is the unchanged `PluggyEmulator` (auth, items, accounts, cursors, errors, rate limits) with
four benchmark-only differences, all in this subclass:
- every item's accounts hold `rows_per_account` rows from `generate_transactions` instead of the household ledger;
- `/v2/transactions` memoizes the filtered, sorted match list per query, so a page costs O(page) rather than a scan
  of the whole account (the emulator's linear scan per page makes a 100k-row account quadratic; answers are equal);
- the per-minute rate limits can be switched off for the bulk scenarios (they stay on for the latency one);
- after `encode_rows()`, pages are assembled from rows encoded once, outside the emulator's lock: the base emulator
  answers one request at a time, which would queue ten concurrent page requests behind each other's JSON encoding
  (7-10 ms a page) where a provider's servers answer them in parallel.
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
import time
from collections import Counter, OrderedDict
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from bench.common import SEED, account_kinds, data_window, raw_rows, today_sp
from finance.sandbox import pluggy as emu
from finance.sandbox.common import Clock
from finance.sandbox.ledger import Ledger, brazilian_ledger, iso_z


class BulkPluggyEmulator(emu.PluggyEmulator):
    """A Pluggy emulator whose items each hold `accounts_per_item` accounts of `rows_per_account` generated rows."""

    def __init__(self, *, rows_per_account: int, accounts_per_item: int, enforce_rate_limits: bool,
                 clock: Clock | None = None, seed: int = SEED) -> None:
        super().__init__(clock=clock or Clock(), seed=seed, settle_delay=0.0)
        self.rows_per_account = rows_per_account
        self.kinds = account_kinds(accounts_per_item)
        self.enforce_rate_limits = enforce_rate_limits
        self._bulk: dict[str, list[emu._AccountView]] = {}
        self._matches: OrderedDict[tuple[Any, ...], tuple[list[dict[str, Any]], list[tuple[str, str]]]] = (
            OrderedDict())
        self._originals: dict[str, str] = {}
        self._bulk_lock = threading.Lock()
        self.encoded = False
        self._encoded: dict[int, bytes] = {}
        self._spliced = threading.local()

    # -- data ------------------------------------------------------------------------------------
    def _ledger(self, item: dict[str, Any]) -> Ledger:
        # Only the card's bill fields of GET /accounts read it; its layout matches the generated accounts.
        return brazilian_ledger(self.seed, item["id"], emu._parse_time(item["createdAt"]),
                                checking_accounts=len(self.kinds) - 1, card=True)

    def _views_of(self, item: dict[str, Any]) -> list[emu._AccountView]:
        if not item["syncs"]:
            return []
        with self._bulk_lock:
            views = self._bulk.get(item["id"])
            if views is None:
                views = self._bulk[item["id"]] = self._generate(item["id"])
            return views

    def _generate(self, item_id: str) -> list[emu._AccountView]:
        start, end = data_window(today_sp())
        views = []
        for index, kind in enumerate(self.kinds):
            account_id = self._account_id(item_id, index)
            rows = list(raw_rows(self.seed, account_id, kind, self.rows_per_account, start, end))
            rows.sort(key=lambda t: (t["date"], t["id"]))
            user_side = -1.0 if kind == "card" and self.card_sign == "purchase_positive" else 1.0
            total = round(user_side * sum(r["amount"] for r in rows), 2)
            views.append(emu._AccountView(account_id, index, kind, rows, total, 0.0 if kind == "card" else 5000.0))
        return views

    def modify(self, count: int, variant: int, days: int = 10) -> int:
        """Change the description of `count` rows dated in the last `days` days, spread over every account."""
        views = [view for found in self._bulk.values() for view in found]
        cutoff = iso_z(self._clock.now() - timedelta(days=days))
        changed = 0
        with self._lock:
            for i, view in enumerate(views):
                share = count // len(views) + (1 if i < count % len(views) else 0)
                recent = [row for row in view.rows if row["date"] >= cutoff]
                if len(recent) < share:
                    raise ValueError(f"only {len(recent)} rows in the last {days} days; cannot modify {share}")
                step = len(recent) / share if share else 1
                for k in range(share):
                    row = recent[int(k * step)]
                    original = self._originals.setdefault(row["id"], row["description"])
                    row["description"] = f"{original} (rev {variant})"
                    row["updatedAt"] = iso_z(self._clock.now())
                    self._encoded.pop(id(row), None)
                    changed += 1
        return changed

    # -- requests --------------------------------------------------------------------------------
    def _count_request(self, method: str, path: str) -> dict[str, str]:
        return super()._count_request(method, path) if self.enforce_rate_limits else {}

    def _transactions_v2(self, call: emu._Call) -> tuple[int, Any]:
        """The emulator's /v2/transactions with the match list memoized per query (same answers)."""
        params = call.params
        account_id, rows = self._account_rows(call)
        ids = self._ids_filter(params.get("ids"))
        if params.get("dateFrom") and params.get("createdAtFrom"):
            raise emu._bad_request("dateFrom and createdAtFrom cannot be used together")
        created_from = self._date_bound(params.get("createdAtFrom"), "createdAtFrom")
        if created_from is not None and len(created_from) == 10:
            created_from += "T00:00:00.000Z"
        start = self._date_bound(params.get("dateFrom"), "dateFrom")
        end = self._date_bound(params.get("dateTo"), "dateTo")
        key = (account_id, id(rows), params.get("ids"), start, end, created_from)
        cached = self._matches.get(key)
        if cached is None:
            matching = self._filtered(rows, ids=ids, start=start, end=end, created_from=created_from)
            cached = self._matches[key] = (matching, [(t["date"], t["id"]) for t in matching])
            while len(self._matches) > 64:
                self._matches.popitem(last=False)
        matching, keys = cached
        first = 0
        after = params.get("after")
        if after is not None:
            first = bisect.bisect_right(keys, emu._read_cursor(after))
        page_size = emu.V2_PAGE_SIZE
        page = matching[first: first + page_size]
        next_query = None
        if first + page_size < len(matching):
            last = page[-1]
            cursor = base64.b64encode(f"{emu._CURSOR_PREFIX}{last['date']}|{last['id']}".encode()).decode()
            query = [("accountId", account_id)]
            query += [(k, params[k]) for k in ("ids", "dateFrom", "dateTo", "createdAtFrom") if params.get(k)]
            query.append(("after", cursor))
            next_query = "?" + urlencode(query, quote_via=quote, safe="")
        if self.encoded:
            # Answer with a placeholder the lock-holding base class encodes in no time; `handle` splices the
            # rows in, from their encodings made at warm-up, once the emulator's lock is released.
            self._spliced.page = (page, next_query)
            return 200, {"results": [], "next": next_query}
        return 200, {"results": page, "next": next_query}

    def encode_rows(self) -> None:
        """Encode every generated row now (warm-up), so pages are served by joining bytes (see `handle`)."""
        with self._bulk_lock:
            for views in self._bulk.values():
                for view in views:
                    for row in view.rows:
                        self._encoded[id(row)] = _encode(row)
        self.encoded = True

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The emulator's answer; a /v2/transactions page from encoded rows is assembled outside its lock.

        The base emulator answers one request at a time (its lock covers encoding the JSON); a provider's
        servers answer concurrent requests in parallel, so the benchmark must not queue ten pages behind it.
        """
        self._spliced.page = None
        response = super().handle(request)
        spliced, self._spliced.page = self._spliced.page, None
        if spliced is None or response.status_code != 200:
            return response
        rows, next_query = spliced
        if response.content != _encode({"results": [], "next": next_query}):
            return response  # a fault altered the answer: leave it as the base emulator made it
        encoded = self._encoded
        content = b'{"results":[' + b",".join(encoded.get(id(r)) or _encode(r) for r in rows) + b'],"next":' + (
            _encode(next_query) + b"}")
        return httpx.Response(200, content=content, headers=response.headers)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def limit_group(method: str, path: str) -> str:
    """The emulator's rate-limit group of a request ("other" when it has none)."""
    return emu.PluggyEmulator._limit_group(method, path) or "other"


class TimedTransport(httpx.BaseTransport):
    """Wraps a transport: optional added latency per request, and a record of every request's interval and status.

    The body is read inside the wrapper, so an interval covers the whole exchange (latency, server, transfer).
    """

    def __init__(self, inner: httpx.BaseTransport, *, latency: float = 0.0) -> None:
        self.inner = inner
        self.latency = latency
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget what was recorded so far."""
        with self._lock:
            self.intervals: list[tuple[float, float]] = []
            self.statuses: Counter[int] = Counter()
            self.groups: Counter[str] = Counter()
            self.pages_per_account: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the inner transport (after the latency) and record the exchange."""
        started = time.perf_counter()
        if self.latency:
            time.sleep(self.latency)
        response = self.inner.handle_request(request)
        response.read()
        finished = time.perf_counter()
        with self._lock:
            self.intervals.append((started, finished))
            self.statuses[response.status_code] += 1
            self.groups[limit_group(request.method, request.url.path)] += 1
            if request.url.path == "/v2/transactions":
                self.pages_per_account[request.url.params.get("accountId", "")] += 1
        return response

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()

    @property
    def requests(self) -> int:
        """Requests recorded since the last reset."""
        return len(self.intervals)
