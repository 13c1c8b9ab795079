"""The Pluggy emulator serving bulk generated data, and an instrumented httpx transport.

`BulkPluggyEmulator` is the unchanged `PluggyEmulator` (auth, items, accounts, cursors, errors, rate limits) plugged
through its public seams, with these benchmark-only differences:
- every item's accounts hold `rows_per_account` rows from `generate_transactions` instead of the household ledger
  (the emulator's `accounts` source);
- the per-minute rate limits can be switched off for the bulk scenarios (`rate_limits`; on for the latency one);
- after `encode_rows()`, pages are assembled from rows encoded once, outside the emulator's lock (`v2_page_body`):
  the base emulator answers one request at a time, which would queue ten concurrent page requests behind each
  other's JSON encoding (7-10 ms a page) where a provider's servers answer them in parallel.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx

from bench.common import SEED, account_kinds, data_window, raw_rows, today_sp
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.providers.pluggy.sandbox.accounts import AccountView
from finance.providers.pluggy.sandbox.base import rate_limit_group
from finance.sandbox.common import Clock
from finance.sandbox.ledger import iso_z


class BulkPluggyEmulator(PluggyEmulator):
    """A Pluggy emulator whose items each hold `accounts_per_item` accounts of `rows_per_account` generated rows."""

    def __init__(self, *, rows_per_account: int, accounts_per_item: int, enforce_rate_limits: bool,
                 clock: Clock | None = None, seed: int = SEED) -> None:
        self.rows_per_account = rows_per_account
        self.kinds = account_kinds(accounts_per_item)
        self._bulk: dict[str, list[AccountView]] = {}
        self._originals: dict[str, str] = {}
        self._bulk_lock = threading.Lock()
        self.encoded = False
        self._encoded: dict[int, bytes] = {}
        self._spliced = threading.local()
        super().__init__(clock=clock or Clock(), seed=seed, settle_delay=0.0, rate_limits=enforce_rate_limits,
                         accounts=self.bulk_accounts)

    # -- data ------------------------------------------------------------------------------------
    def bulk_accounts(self, item_id: str) -> list[AccountView]:
        """The item's generated accounts, made on first use (the emulator's `accounts` source)."""
        with self._bulk_lock:
            views = self._bulk.get(item_id)
            if views is None:
                views = self._bulk[item_id] = self._generate(item_id)
            return views

    def _generate(self, item_id: str) -> list[AccountView]:
        start, end = data_window(today_sp())
        views = []
        for index, kind in enumerate(self.kinds):
            account_id = self.account_id(item_id, index)
            rows = list(raw_rows(self.seed, account_id, kind, self.rows_per_account, start, end))
            rows.sort(key=lambda t: (t["date"], t["id"]))
            user_side = -1.0 if kind == "card" and self.card_sign == "purchase_positive" else 1.0
            total = round(user_side * sum(r["amount"] for r in rows), 2)
            views.append(AccountView(account_id, index, kind, rows, total, 0.0 if kind == "card" else 5000.0))
        return views

    def modify(self, count: int, variant: int, days: int = 10) -> int:
        """Change the description of `count` rows dated in the last `days` days, spread over every account."""
        now = self.clock.now()
        cutoff = iso_z(now - timedelta(days=days))
        changed = 0
        with self._bulk_lock:
            views = [view for found in self._bulk.values() for view in found]
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
                    row["updatedAt"] = iso_z(now)
                    self._encoded.pop(id(row), None)
                    changed += 1
        return changed

    # -- requests --------------------------------------------------------------------------------
    def v2_page_body(self, results: list[dict[str, Any]], next_query: str | None) -> dict[str, Any]:
        """With encoded rows, a placeholder the lock-holding emulator encodes in no time; `handle` splices the
        rows in, from their encodings made at warm-up, once the emulator's lock is released."""
        if not self.encoded:
            return super().v2_page_body(results, next_query)
        self._spliced.page = (results, next_query)
        return super().v2_page_body([], next_query)

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
    return rate_limit_group(method, path) or "other"


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
