"""Where an ingest spends its time and memory: cProfile, per-SQL-statement timings and RSS at each step.

Run: `.venv/bin/python -m bench.profile_ingest --rows 1000000` (one ingest on a fresh store, as bench.ingest
times it; `--postgres` on a throwaway PostgreSQL server instead of DuckDB), or add `--resync` to profile instead a
no-change re-sync's apply: the rows of the provider's 14-day re-read window applied again onto the stored rows.
Prints each SQL statement of apply_sync with its duration and the RSS after it, then the top functions by own time.
Not part of `python -m bench`: a tool for finding what to fix.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

import finance.store.db as db_module
import finance.store.ingest as ingest_module
from bench.common import DataSet, fresh_engine, ingest, log, peak_rss_mb, rss_mb
from finance.model import TransactionChanges
from finance.providers.pluggy.mapping import map_transactions, page_chunks, read_transactions
from finance.providers.pluggy.provider import REREAD_DAYS
from finance.store.db import create_engine, init_schema
from finance.store.ingest import apply_sync
from tests.postgres import PostgresServer, find_bindir


def _first_line(sql: str) -> str:
    return " ".join(sql.split())[:90]


class StepLog:
    """Records every wrapped call: label, start, end, nesting depth and the RSS after it."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float, float, int, float]] = []
        self._depth = 0

    def wrap(self, label: Callable[..., str], call: Callable[..., Any]) -> Callable[..., Any]:
        """`call`, logging its duration under `label(*args)` and the RSS after it."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            self._depth += 1
            try:
                return call(*args, **kwargs)
            finally:
                self._depth -= 1
                self.steps.append((label(*args, **kwargs), started, time.perf_counter(), self._depth, rss_mb()))
        return timed

    def report(self, begin: float, end: float, minimum: float = 0.01) -> list[str]:
        """The steps in order, with the untracked Python time between top-level steps shown as its own line."""
        lines, cursor = [], begin
        for label, started, finished, depth, rss in sorted(self.steps, key=lambda s: (s[1], s[3])):
            if depth == 0 and started - cursor >= minimum:
                lines.append(f"{'python between steps (mapping, fetching results into Python, pairing)':100s} "
                             f"{started - cursor:8.2f}")
            if finished - started >= minimum:
                lines.append(f"{'  ' * depth + label:100s} {finished - started:8.2f} {rss:8.0f}")
            if depth == 0:
                cursor = max(cursor, finished)
        if end - cursor >= minimum:
            lines.append(f"{'python after the last step':100s} {end - cursor:8.2f}")
        return lines


def resync_apply(engine: sa.Engine, data: DataSet) -> dict[str, Any]:
    """Apply again what a no-change re-sync fetches: every row of the last 14 days, with those windows."""
    now = datetime.now(UTC)
    window_start = data.today - timedelta(days=REREAD_DAYS)
    accounts = data.accounts(now)
    started = time.perf_counter()
    first = (window_start - timedelta(days=1)).isoformat()  # raw dates are UTC; booked dates are São Paulo's
    batches = []
    for i, account in enumerate(accounts):
        recent = [raw for raw in data.account_rows(i) if raw["date"] >= first]
        for rows in page_chunks([read_transactions(recent)]):
            batch = map_transactions(rows, account)
            batches.append(batch.filter(pc.greater_equal(batch.column("booked_date"),
                                                         pa.scalar(window_start, pa.date32()))))
    map_seconds = time.perf_counter() - started
    changes = TransactionChanges(provider="pluggy", batches=batches,
                                 windows=[(a.external_id, window_start) for a in accounts])
    started = time.perf_counter()
    with engine.begin() as conn:
        counts = apply_sync(conn, state=data.state(), accounts=accounts, changes=changes, now=now, today=data.today)
    if counts.added or counts.modified or counts.removed:
        raise RuntimeError(f"a no-change re-sync changed rows: {counts}")
    return {"rows": changes.rows, "map_s": map_seconds, "apply_s": time.perf_counter() - started}


def main() -> None:
    """Profile one ingest (or re-sync apply) and print the steps and hot functions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--resync", action="store_true", help="profile a no-change re-sync's apply instead")
    parser.add_argument("--no-cprofile", action="store_true", help="only the step timings, without cProfile's cost")
    parser.add_argument("--postgres", action="store_true",
                        help="on a throwaway PostgreSQL server (durable, as bench.postgres starts it), not DuckDB")
    args = parser.parse_args()

    steps = StepLog()
    original_sql = sa.Connection.exec_driver_sql
    original_execute = sa.Connection.execute
    sa.Connection.exec_driver_sql = steps.wrap(  # type: ignore[method-assign]
        lambda _conn, sql, *_a, **_k: "SQL " + _first_line(str(sql)), original_sql)
    sa.Connection.execute = steps.wrap(  # type: ignore[method-assign]
        lambda _conn, stmt, *_a, **_k: "SQLAlchemy " + _first_line(str(stmt)), original_execute)
    sa.Connection._commit_impl = steps.wrap(  # type: ignore[method-assign]
        lambda _conn: "COMMIT", sa.Connection._commit_impl)
    db_module.copy_into = steps.wrap(  # type: ignore[assignment]  # load_arrow's COPY on PostgreSQL
        lambda _conn, table, *_a, **_k: f"COPY {table}", db_module.copy_into)
    for name in ("_merge", "_rebuild_balance_history", "upsert_accounts"):
        setattr(ingest_module, name, steps.wrap(lambda *_a, _n=name, **_k: f"python {_n}",
                                                getattr(ingest_module, name)))
    original_pair = ingest_module.pair_pending_with_posted
    ingest_module.pair_pending_with_posted = steps.wrap(  # type: ignore[assignment]
        lambda pending, posted: f"python pair_pending_with_posted ({len(pending)} x {len(posted)})", original_pair)

    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    server = None
    try:
        if args.postgres:
            bindir = find_bindir()
            if bindir is None:
                raise SystemExit("PostgreSQL's binaries are missing: `apt-get install postgresql`.")
            server = PostgresServer(bindir, durable=True)
            engine = create_engine(server())
            init_schema(engine)
        else:
            engine = fresh_engine(work / "profile.duckdb")
        data = DataSet(args.rows)
        if args.resync:
            log(f"storing {args.rows:,} rows first (not profiled)")
            ingest(engine, data)
        log(f"profiling {'a re-sync apply' if args.resync else 'one ingest'} of {args.rows:,} rows; "
            f"RSS now {rss_mb():.0f} MiB")
        steps.steps.clear()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        if not args.no_cprofile:
            profiler.enable()
        result = resync_apply(engine, data) if args.resync else ingest(engine, data)
        profiler.disable()
        finished = time.perf_counter()
        engine.dispose()
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(work, ignore_errors=True)

    under = "" if args.no_cprofile else "under cProfile, "
    print(f"{result['rows']:,} rows: map {result['map_s']:.2f}s, apply {result['apply_s']:.2f}s "
          f"({under}wall {finished - started:.1f}s); peak RSS {peak_rss_mb():.0f} MiB\n")
    print(f"{'step (nested steps indented)':100s} {'seconds':>8s} {'RSS MiB':>8s}")
    print("\n".join(steps.report(started, finished)))
    if not args.no_cprofile:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
