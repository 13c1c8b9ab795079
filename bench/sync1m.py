"""A 1M-transaction connection synced through the real client over HTTP: initial sync, then re-syncs.

The emulator runs in another process (bench.server) on loopback, as a remote API would, so this process's peak
RSS is the client's alone: it is the memory figure of the initial sync. Then the same connection is synced again
with nothing new, and with 1% of the rows modified (inside the provider's re-read window, where changes happen).
"Beyond the requests" is the sync's wall time minus the time at least one HTTP request was in flight.

Run: `.venv/bin/python -m bench.sync1m --rows 1000000 --repeat 3`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ACCOUNTS, Server, emit, fresh_engine, log, median, peak_rss_mb, rss_mb, union_seconds
from bench.emulator import TimedTransport
from finance.model import Account, ConnectionState, TransactionChanges
from finance.providers.base import TransactionSink
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.sync import SyncEngine


class TimedProvider:
    """Delegates to a provider and times the two fetch phases the sync engine calls."""

    def __init__(self, inner: PluggyProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.client = inner.client
        self.phases: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _timed(self, phase: str, call: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started

    def fetch_connection(self, external_id: str) -> tuple[ConnectionState, list[Account]]:
        """Timed `fetch_connection`."""
        return self._timed("fetch_connection", self.inner.fetch_connection, external_id)

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account], cursor: str | None,
                           *, sink: TransactionSink | None = None) -> TransactionChanges:
        """Timed `fetch_transactions` (mapping and staging each page included, as they happen during the fetch)."""
        return self._timed("fetch_transactions", lambda: self.inner.fetch_transactions(
            connection_external_id, accounts, cursor, sink=sink))


def timed_sync(sync: SyncEngine, connection_id: str, transport: TimedTransport,
               provider: TimedProvider) -> dict[str, Any]:
    """One sync of the connection: wall time, requests, time with a request in flight, phases and counts."""
    transport.reset()
    provider.phases = {}
    started = time.perf_counter()
    result = sync.sync_connection(connection_id)
    wall = time.perf_counter() - started
    if result.outcome != "success":
        raise RuntimeError(f"sync failed: {result.error_code}: {result.message}")
    in_flight = union_seconds(transport.intervals)
    fetch = sum(provider.phases.values())
    return {"wall_s": wall, "requests": transport.requests, "in_flight_s": in_flight, "beyond_s": wall - in_flight,
            "fetch_s": fetch, "apply_s": wall - fetch, "phases": provider.phases, "statuses": dict(transport.statuses),
            "added": result.counts.added, "modified": result.counts.modified, "removed": result.counts.removed}


def main() -> None:
    """Initial sync (timed, peak RSS), then no-change and 1%-modified re-syncs; emit the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modified", type=float, default=0.01, help="share of rows modified")
    args = parser.parse_args()

    server = Server(args.rows // ACCOUNTS, ACCOUNTS)
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        transport = TimedTransport(httpx.HTTPTransport())
        client = PluggyClient("bench", "bench", base_url=server.url, transport=transport)
        provider = TimedProvider(PluggyProvider(client))
        state = provider.create_connection("0", {"user": "user-ok", "password": "password-ok"})
        state = provider.wait_until_settled(state.external_id, interval=0.05)
        log(f"generating {args.rows:,} rows in the emulator process")
        server.command("warm")
        engine = fresh_engine(work / "sync.duckdb")
        sync = SyncEngine(engine, {"pluggy": provider})  # type: ignore[dict-item]
        connection_id = sync.register(state)
        rss_before = rss_mb()

        initial = timed_sync(sync, connection_id, transport, provider)
        peak = peak_rss_mb()
        log(f"initial sync: {initial['added']:,} rows, {initial['wall_s']:.1f}s, {initial['requests']} requests, "
            f"peak RSS {peak:.0f} MiB")
        if initial["added"] != args.rows:
            raise RuntimeError(f"initial sync added {initial['added']} rows, expected {args.rows}")

        unchanged = []
        for i in range(args.repeat):
            run = timed_sync(sync, connection_id, transport, provider)
            log(f"no-change re-sync {i + 1}/{args.repeat}: {run['wall_s']:.2f}s, {run['requests']} requests, "
                f"{run['beyond_s']:.2f}s beyond them ({run['added']}/{run['modified']}/{run['removed']})")
            if run["added"] or run["modified"] or run["removed"]:
                raise RuntimeError(f"a no-change re-sync changed rows: {run}")
            unchanged.append(run)

        count = int(args.rows * args.modified)
        modified = []
        for i in range(args.repeat):
            changed = int(server.command(f"modify {count} {i + 1}").split()[1])
            run = timed_sync(sync, connection_id, transport, provider)
            log(f"{args.modified:.0%} modified re-sync {i + 1}/{args.repeat}: {run['wall_s']:.2f}s, "
                f"{run['requests']} requests, {run['beyond_s']:.2f}s beyond them, {run['modified']:,} modified")
            if run["modified"] != changed:
                raise RuntimeError(f"re-sync saw {run['modified']} modified rows, the emulator changed {changed}")
            modified.append(run)

        def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
            keys = ("wall_s", "requests", "in_flight_s", "beyond_s", "fetch_s", "apply_s", "modified")
            return {key: median(r[key] for r in runs) for key in keys} | {"runs": runs}

        emit({"rows": args.rows, "repeat": args.repeat, "modified_rows": count, "initial": initial,
              "rss_before_sync_mb": rss_before, "peak_rss_mb": peak,
              "unchanged": summary(unchanged), "modified": summary(modified)})
        engine.dispose()
        client.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
