"""Many users' data on DuckDB and PostgreSQL side by side, in one run: the Overview and a filtered Transactions page
on a store of `--users` connections and `--rows` transactions in all, then `--sessions` concurrent Overviews.

Building the data: `--templates` distinct connections (four accounts each: three checking accounts and a card) go
through the ingest path of bench.common (Pluggy JSON pages -> decode -> map -> apply_sync); they are then copied,
set-based inside DuckDB, until there are `--users` connections (every id suffixed with the copy's number, so each
copy is its own connection, accounts and transactions). `finance db copy` (finance.store.copy) then moves the whole
DuckDB store into a throwaway PostgreSQL server (initdb in a temporary folder, loopback, as the tests start one),
and ANALYZE gives the planner its statistics, as autovacuum would after the load.

Measuring: a child process per engine (its memory is the app's, not the builder's) opens the store the way the app
does (`open_services`) and times what the pages call, in the pages' order, with their default widgets:
- the Overview (pages/overview.py; the "Last 12 months" period, pending included, no category drilled into);
- the Transactions page (pages/transactions.py) filtered to one card account, one month and the text "ifood";
- `--sessions` threads (as Streamlit runs sessions: threads of one process) each rendering the Overview `--rounds`
  times, all starting together; p95 over every render, and the process's peak RSS. That is VmHWM: Linux keeps
  ru_maxrss across fork and exec, so a child's ru_maxrss starts at the builder's peak (it is emitted beside).
The app has no per-user view: the Overview sums every connection of the store, so on this store it reads all rows.

Run: `.venv/bin/python -m bench.scale` (defaults: 1,000 users, 10M rows); smaller: `--users 200 --rows 2000000`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import ChildFailed, DataSet, emit, fresh_engine, ingest, log, median, peak_rss_mb, run_child
from finance import money
from finance.filters import TransactionFilter
from finance.store.copy import copy_store
from finance.store.db import create_engine
from finance.store.schema import accounts, balance_history, connections, sync_runs, transactions
from tests.postgres import PostgresServer, find_bindir

ACCOUNTS_PER_USER = 4
SEARCH_TEXT = "ifood"
"""A merchant of the card accounts (about 2% of their rows), typed in lower case as a person would."""
SUFFIXED = {connections: ("id", "external_id"), accounts: ("id", "connection_id", "external_id"),
            transactions: ("id", "account_id", "connection_id", "external_id", "pending_id"),
            balance_history: ("account_id",), sync_runs: ("id", "connection_id")}
"""Per table copied, the id columns each copy suffixes (every other column is copied as it is)."""
TARGETS = {"overview_s": 0.5, "transactions_s": 0.3, "concurrent_p95_s": 1.5}
"""The issue's targets on PostgreSQL, in seconds."""


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

def build(path: Path, users: int, rows: int, templates: int) -> dict[str, Any]:
    """A DuckDB store of `users` connections and `rows` transactions: `templates` ingested, the rest copies."""
    templates = min(templates, users)
    if users % templates:
        raise SystemExit(f"--users ({users}) must be a multiple of --templates ({templates})")
    engine = fresh_engine(path)
    try:
        started = time.perf_counter()
        for i in range(templates):
            data = DataSet(rows // users, ACCOUNTS_PER_USER, seed=20240501 + i, item_id=f"bench-item-{i}")
            ingest(engine, data)
        ingest_s = time.perf_counter() - started
        log(f"ingested {templates} connections of {rows // users:,} rows in {ingest_s:.1f}s")
        started = time.perf_counter()
        copies = users // templates
        with engine.begin() as conn:
            for table, ids in SUFFIXED.items():
                columns = ", ".join(f"\"{c.name}\" || '~' || n" if c.name in ids else f'"{c.name}"'
                                    for c in table.columns)
                names = ", ".join(f'"{c.name}"' for c in table.columns)
                conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) SELECT {columns} '
                                     f'FROM "{table.name}", range(1, {copies}) AS copies(n)')
        copy_s = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(transactions)).scalar_one()
            users_stored = conn.execute(sa.select(sa.func.count()).select_from(connections)).scalar_one()
            card = conn.execute(sa.select(accounts.c.id).where(accounts.c.type == "credit_card")
                                .order_by(accounts.c.id).limit(1)).scalar_one()
        log(f"copied them to {users_stored:,} connections, {stored:,} transactions, in {copy_s:.1f}s")
        return {"ingest_s": ingest_s, "copy_s": copy_s, "transactions": stored, "connections": users_stored,
                "card_account": card}
    finally:
        engine.dispose()


def to_postgres(duck: Path, url: str) -> float:
    """Seconds to move the DuckDB store into the empty database at `url` (db copy, then ANALYZE)."""
    source, target = create_engine(f"duckdb:///{duck}"), create_engine(url)
    try:
        started = time.perf_counter()
        copy_store(source, target)
        with target.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        return time.perf_counter() - started
    finally:
        source.dispose()
        target.dispose()


# --------------------------------------------------------------------------------------------
# Measuring (in a child process per engine)
# --------------------------------------------------------------------------------------------

def overview(svc: Any) -> None:
    """What pages/overview.py asks the store for, in its order, with its default widgets."""
    svc.connections.status()
    svc.reports.data_as_of()
    first_day, _ = svc.transactions.date_range()
    start, end = money.preset_period("Last 12 months", date.today())  # the period picker's default
    previous_start, _ = money.previous_period(start, end)
    svc.accounts.totals()
    summary = svc.accounts.summary()
    svc.reports.as_of_by_currency()
    svc.reports.net_worth_by_day(start, end)
    svc.reports.monthly_cashflow(start, end, include_pending=True)
    svc.reports.spending_by_category(start, end, include_pending=True)
    money.key_figures(svc.reports.period_figures(start, end, previous_start, include_pending=True),
                      previous_covered=first_day is not None and first_day <= previous_start)
    svc.reports.top_merchants(start, end, include_pending=True)
    money.card_use_totals(money.card_use(summary))


def transactions_page(svc: Any, account: str) -> int:
    """What pages/transactions.py asks for when filtered to one account, last month and a search text; the
    number of matching rows."""
    svc.reports.data_as_of()
    svc.transactions.date_range()
    svc.transactions.account_options()
    svc.transactions.category_options()
    month_end = date.today().replace(day=1) - timedelta(days=1)
    filters = TransactionFilter(start=month_end.replace(day=1), end=month_end, account_ids=(account,),
                                text=SEARCH_TEXT)
    result = svc.transactions.page(filters, limit=50)
    svc.rules.all()
    return int(result.total)


def timed(call: Any, repeat: int) -> list[float]:
    """Seconds of `repeat` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def p95(values: list[float]) -> float:
    """The 95th percentile (inclusive method)."""
    return float(statistics.quantiles(values, n=20, method="inclusive")[18])


def concurrent(svc: Any, sessions: int, rounds: int) -> tuple[list[float], list[BaseException]]:
    """Every Overview's seconds when `sessions` threads each render it `rounds` times, all starting together, and
    the errors of the renders that failed (a session stops at its first)."""
    times: list[float] = []
    errors: list[BaseException] = []
    lock, gate = threading.Lock(), threading.Barrier(sessions)

    def session() -> None:
        gate.wait()
        for _ in range(rounds):
            started = time.perf_counter()
            try:
                overview(svc)
            except Exception as exc:  # counted and reported: a page that errors is a failed render
                with lock:
                    errors.append(exc)
                return
            with lock:
                times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, errors


def measure(args: argparse.Namespace) -> None:
    """The child: open the store as the app does and time one step (`--step`): the filtered Transactions page, the
    Overview, or the concurrent Overviews (whose process's peak RSS is the app's under that load)."""
    from finance.services import open_services

    os.environ["FINANCE_DATA_DIR"] = str(args.dir)
    for name in ("PLUGGY_CLIENT_ID", "PLUGGY_CLIENT_SECRET", "PLAID_CLIENT_ID", "PLAID_SECRET"):
        os.environ.pop(name, None)
    if args.url:
        os.environ["FINANCE_DATABASE_URL"] = args.url
    else:
        os.environ.pop("FINANCE_DATABASE_URL", None)
    svc = open_services()
    try:
        result: dict[str, Any] = {"pool_size": svc.engine.pool.size(), "load_before": os.getloadavg()}
        if args.step == "transactions":
            result["matches"] = transactions_page(svc, args.account)
            runs = timed(lambda: transactions_page(svc, args.account), args.repeat)
            result.update(transactions_s=median(runs), transactions_runs=runs)
        elif args.step == "overview":
            runs = timed(lambda: overview(svc), args.repeat)
            result.update(overview_s=median(runs), overview_runs=runs)
        else:
            started = time.perf_counter()
            runs, errors = concurrent(svc, args.sessions, args.rounds)
            result.update(concurrent_wall_s=time.perf_counter() - started, concurrent_renders=len(runs),
                          concurrent_failed=len(errors), concurrent_error=repr(errors[0]) if errors else None,
                          peak_rss_mb=peak_rss_mb(),
                          ru_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            if len(runs) >= 2:  # a failed render has no time: the p95 of the others, the failures said beside it
                result.update(concurrent_median_s=median(runs), concurrent_p95_s=p95(runs))
        result["load_after"] = os.getloadavg()
        emit(result)
    finally:
        svc.engine.dispose()


def measure_engine(name: str, common: list[str], timeout: float) -> dict[str, Any]:
    """Each step of one engine in its own child process; a step over `timeout` seconds is reported as such (and
    the concurrent Overviews are then not tried: twenty of them would take longer still)."""
    figures: dict[str, Any] = {"engine": name, "loads": {}}
    for step in ("transactions", "overview", "concurrent"):
        if step == "concurrent" and "overview_s" not in figures:
            figures["missing_concurrent"] = "not tried: one Overview did not finish in time"
            continue
        try:
            result = run_child("scale", "measure", "--step", step, *common, timeout=timeout)
        except subprocess.TimeoutExpired:
            figures[f"missing_{step}"] = f"did not finish within {timeout:.0f} s (warm-up and repeats)"
            log(f"{name}: {step} did not finish within {timeout:.0f}s")
            continue
        except ChildFailed as exc:
            figures[f"missing_{step}"] = f"failed: {exc}"
            continue
        figures["loads"][step] = (result.pop("load_before"), result.pop("load_after"))
        figures.update(result)
        log(f"{name}: {step} " + ", ".join(f"{k} {v:.3f}" for k, v in result.items() if k.endswith("_s")))
    return figures


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def report(built: dict[str, Any], duck: dict[str, Any], pg: dict[str, Any], args: argparse.Namespace) -> None:
    """The figures side by side, with each PostgreSQL target met or not."""
    print(f"\n{built['connections']:,} connections, {built['transactions']:,} transactions "
          f"({args.templates} ingested, copied set-based); PostgreSQL {pg.get('version', '?')}")
    print(f"{'figure':<44}{'DuckDB':>12}{'PostgreSQL':>12}  target (PostgreSQL)")
    rows = [(f"Overview, median of {args.repeat}", "overview_s"),
            (f"Transactions filtered, median of {args.repeat}", "transactions_s"),
            (f"{args.sessions} sessions x {args.rounds} Overviews: median", "concurrent_median_s"),
            (f"{args.sessions} sessions x {args.rounds} Overviews: p95", "concurrent_p95_s"),
            ("  wall time of the whole burst", "concurrent_wall_s"),
            ("peak RSS of that process, VmHWM (MiB)", "peak_rss_mb")]

    def cell(run: dict[str, Any], key: str) -> str:
        return "n/a" if key not in run else f"{run[key]:.0f}" if key == "peak_rss_mb" else f"{run[key]:.3f}s"

    for label, key in rows:
        target = TARGETS.get(key)
        failed = key.startswith("concurrent") and pg.get("concurrent_failed")
        verdict = "" if target is None else f"< {target} s: " + (
            "not measured" if key not in pg else "NOT met (renders failed)" if failed
            else "met" if pg[key] < target else "NOT met")
        print(f"{label:<44}{cell(duck, key):>12}{cell(pg, key):>12}  {verdict}")
    print(f"{'rows matching the filter':<44}{duck.get('matches', 'n/a'):>12}{pg.get('matches', 'n/a'):>12}")
    print(f"{'Overviews that failed in the burst':<44}{duck.get('concurrent_failed', 'n/a'):>12}"
          f"{pg.get('concurrent_failed', 'n/a'):>12}")
    for run in (duck, pg):
        if run.get("concurrent_error"):
            print(f"{run['engine']}: first failure in the burst: {run['concurrent_error']}")
    print(f"{'connection pool size':<44}{duck.get('pool_size', 'n/a'):>12}{pg.get('pool_size', 'n/a'):>12}")
    for run in (duck, pg):
        for key, why in run.items():
            if key.startswith("missing_"):
                print(f"{run['engine']}, {key[8:]}: {why}")
        for step, (before, after) in run["loads"].items():
            print(f"load average, {run['engine']} {step}: before {'/'.join(f'{x:.1f}' for x in before)}, "
                  f"after {'/'.join(f'{x:.1f}' for x in after)}")


def main() -> None:
    """Build the store, copy it to PostgreSQL, measure both engines in child processes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("run", "measure"), default="run")
    parser.add_argument("--users", type=int, default=1000, help="connections in the store")
    parser.add_argument("--rows", type=int, default=10_000_000, help="transactions in all")
    parser.add_argument("--templates", type=int, default=4, help="connections ingested (the rest are copies)")
    parser.add_argument("--repeat", type=int, default=5, help="timed renders per page")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="Overviews per concurrent session")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed to each measuring step")
    parser.add_argument("--step", choices=("transactions", "overview", "concurrent"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--account", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.command == "measure":
        measure(args)
        return

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's binaries are missing: `apt-get install postgresql`.")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server = PostgresServer(bindir, durable=True)
    try:
        log(f"load average {os.getloadavg()}; building {args.users:,} users, {args.rows:,} transactions")
        built = build(work / "finance.duckdb", args.users, args.rows, args.templates)
        url = server()
        built["to_postgres_s"] = to_postgres(work / "finance.duckdb", url)
        log(f"copied into PostgreSQL in {built['to_postgres_s']:.1f}s")
        common = ["--dir", str(work), "--account", built["card_account"], "--repeat", str(args.repeat),
                  "--sessions", str(args.sessions), "--rounds", str(args.rounds)]
        pg = measure_engine("PostgreSQL", [*common, "--url", url], args.timeout)
        duck = measure_engine("DuckDB", common, args.timeout)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            pg["version"] = conn.exec_driver_sql("SHOW server_version").scalar()
        engine.dispose()
        report(built, duck, pg, args)
        emit({"built": built, "duckdb": duck, "postgresql": pg, "args": vars(args) | {"dir": None}})
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
