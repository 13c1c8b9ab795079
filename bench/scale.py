"""Many users' data, a user being a household (issue 15): one household's Overview and filtered Transactions page on
PostgreSQL (every household in one database, row-level security) and on DuckDB (a file per household), then
`--sessions` households rendering the Overview at once in one process.

Building the data: `--templates` households are made as the app makes them on DuckDB, each its own file
(`Settings.for_household`: `households/<id>/finance.duckdb`) holding one connection of four accounts (three checking
accounts and a card) and `--rows / --users` transactions, through the ingest path of bench.common (Pluggy JSON pages
-> decode -> map -> apply_sync). `finance db copy` (finance.store.copy) moves each file into a throwaway PostgreSQL
server (initdb in a temporary folder, loopback, as the tests start one). There the templates are copied set-based
(`INSERT ... SELECT`, as the tables' owner, a batch of households per statement) until there are `--users`
households: each copy has its own household_id and its own connection, account, transaction and sync-run ids (the
template's suffixed with the copy's number); `households` and `connection_directory` get their rows as sign-up and
connecting write them. ANALYZE then gives the planner its statistics, as autovacuum would after the load. On DuckDB
the first `--sessions` households get their files too (a template's file copied, its rows given the household).

Measuring: a child process per engine and step (its memory is the app's, not the builder's) opens each household's
services the way the app does (`shared_services(settings.for_household(h))`: on PostgreSQL one pool for the URL,
shared by every household, each transaction scoped to its household) and times what the pages call, in the pages'
order, with their default widgets:
- one household's Overview (pages/overview.py; the "Last 12 months" period, pending included, no category drilled
  into) and its Transactions page (pages/transactions.py) filtered to its card account, one month and "ifood";
  on PostgreSQL a copy near the end of the table, on DuckDB its template's file (the same rows on both);
- `--sessions` threads (as Streamlit runs sessions: threads of one process), each a different household, each
  rendering its Overview `--rounds` times, all starting together; p95 over every render, the renders that failed,
  and the process's peak RSS. That is VmHWM: Linux keeps ru_maxrss across fork and exec, so a child's ru_maxrss
  starts at the builder's peak (it is emitted beside).

Run: `.venv/bin/python -m bench.scale` (defaults: 1,000 households of 10,000 transactions, 10M in all);
smaller: `--users 50 --rows 500000`.
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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import ChildFailed, DataSet, emit, fresh_engine, ingest, log, median, peak_rss_mb, run_child
from finance import money
from finance.config import Settings, load_settings
from finance.filters import TransactionFilter
from finance.store.copy import copy_store
from finance.store.db import create_engine
from finance.store.directory import HOUSEHOLD_TABLES, claim_file
from finance.store.schema import (
    accounts,
    balance_history,
    connection_directory,
    connections,
    households,
    sync_runs,
    transactions,
)
from tests.postgres import PostgresServer, find_bindir

ACCOUNTS_PER_USER = 4
SEARCH_TEXT = "ifood"
"""A merchant of the card accounts (about 2% of their rows), typed in lower case as a person would."""
SUFFIXED = {connections: ("id", "external_id"), accounts: ("id", "connection_id", "external_id"),
            transactions: ("id", "account_id", "connection_id", "external_id", "pending_id"),
            balance_history: ("account_id",), sync_runs: ("id", "connection_id")}
"""Per table a template household has rows in, the id columns each copy suffixes (every other column is copied as
it is, household_id excepted)."""
COPY_BATCH = 100
"""Households copied per statement on PostgreSQL (1M transactions at the default size): progress, bounded WAL."""
TARGETS = {"overview_s": 0.5, "transactions_s": 0.3, "concurrent_p95_s": 1.5}
"""The issue's targets on PostgreSQL, in seconds."""


def household(n: int) -> str:
    """The id of the n-th household (1-based)."""
    return f"user-{n:05d}"


def settings_of(work: Path, url: str | None) -> Settings:
    """The app's settings for a data folder and, on PostgreSQL, a database URL (nothing else from the
    environment: no provider credentials, no secrets file)."""
    env = {"FINANCE_DATA_DIR": str(work), **({"FINANCE_DATABASE_URL": url} if url else {})}
    return load_settings(env, secrets_file=work / "no-secrets.toml")


def measured_household(users: int, templates: int) -> int:
    """The household whose own pages are timed on PostgreSQL: the last copy of the first template (its rows are the
    DuckDB household 1's), so it sits behind (users - 1) other households in every table."""
    return users - (users - 1) % templates


def burst_households(users: int, sessions: int, engine: str) -> list[int]:
    """The households of the concurrent sessions: on PostgreSQL spread over the whole store, on DuckDB the first
    `sessions` (the households that have files)."""
    if engine == "DuckDB":
        return list(range(1, sessions + 1))
    return [1 + i * users // sessions for i in range(sessions)]


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

def build_templates(work: Path, users: int, rows: int, templates: int) -> tuple[list[Path], float]:
    """The first `templates` households' DuckDB files, each one ingested connection; and the seconds it took."""
    settings = settings_of(work, None)
    started = time.perf_counter()
    files = []
    for i in range(templates):
        h = household(i + 1)
        path = Path(settings.for_household(h).database_url.removeprefix("duckdb:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = fresh_engine(path)
        try:
            claim_file(engine, path, h)  # as the app opens a household's file: its rows say whose they are
            ingest(engine, DataSet(rows // users, ACCOUNTS_PER_USER, seed=20240501 + i, item_id=f"bench-item-{i}"))
        finally:
            engine.dispose()
        files.append(path)
    seconds = time.perf_counter() - started
    log(f"ingested {templates} households of {rows // users:,} transactions in {seconds:.1f}s")
    return files, seconds


def duckdb_households(work: Path, files: list[Path], count: int) -> None:
    """Households 1..count on DuckDB: beyond the templates, a template's file copied and its rows relabelled."""
    settings = settings_of(work, None)
    for n in range(len(files) + 1, count + 1):
        h = household(n)
        path = Path(settings.for_household(h).database_url.removeprefix("duckdb:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[(n - 1) % len(files)], path)
        engine = create_engine(f"duckdb:///{path}")
        try:
            with engine.begin() as conn:
                for table in HOUSEHOLD_TABLES:
                    conn.exec_driver_sql(f'UPDATE "{table}" SET household_id = ?', (h,))
            claim_file(engine, path, h)
        finally:
            engine.dispose()


def to_postgres(files: list[Path], url: str) -> float:
    """Seconds to move the template households' files into the empty database at `url` (db copy, one by one)."""
    started = time.perf_counter()
    target = create_engine(url)
    try:
        for path in files:
            source = create_engine(f"duckdb:///{path}")
            try:
                copy_store(source, target)
            finally:
                source.dispose()
    finally:
        target.dispose()
    return time.perf_counter() - started


def _template_rows(table: sa.Table) -> str:
    """A WHERE clause: the table's rows of the template connection `:connection` (its household's)."""
    if table is connections:
        return "t.id = :connection"
    if "connection_id" in table.c:
        return "t.connection_id = :connection"
    return "t.account_id IN (SELECT id FROM accounts WHERE connection_id = :connection)"


def spread(url: str, users: int, templates: int) -> dict[str, Any]:
    """Copy the template households inside PostgreSQL until there are `users`, set-based, as the tables' owner
    (row-level security does not bind the bench's superuser); then the directory's rows and ANALYZE. Each statement
    writes its households one after the other, as each household's first sync writes its rows together: the plan
    of the copy would otherwise decide whether a household's rows share pages or lie one to a page among others'."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            template_connections = [str(c) for c in conn.execute(
                sa.select(connections.c.id).order_by(connections.c.household_id)).scalars()]
            filled = {name for name in HOUSEHOLD_TABLES
                      if conn.exec_driver_sql(f'SELECT EXISTS (SELECT 1 FROM "{name}")').scalar()}
        unknown = filled - {table.name for table in SUFFIXED}
        if unknown or len(template_connections) != templates:
            raise SystemExit(f"unexpected template rows: tables {sorted(unknown)}, connections {template_connections}")
        started = time.perf_counter()
        for low in range(templates + 1, users + 1, COPY_BATCH):
            high = min(low + COPY_BATCH - 1, users)
            with engine.begin() as conn:
                for table, ids in SUFFIXED.items():
                    columns = ", ".join(f"t.\"{c.name}\" || '~' || n" if c.name in ids
                                        else "'user-' || lpad(n::text, 5, '0')" if c.name == "household_id"
                                        else f't."{c.name}"' for c in table.columns)
                    names = ", ".join(f'"{c.name}"' for c in table.columns)
                    for index, connection in enumerate(template_connections):
                        first = low + (index - low + 1) % templates  # the first n in [low, high] of this template
                        conn.execute(sa.text(
                            f'INSERT INTO "{table.name}" ({names}) SELECT {columns} FROM "{table.name}" t, '
                            f"generate_series(CAST(:first AS integer), CAST(:high AS integer), "
                            f"CAST(:step AS integer)) AS copies(n) WHERE {_template_rows(table)} ORDER BY n"),
                            {"first": first, "high": high, "step": templates, "connection": connection})
            log(f"copied households {low:,}..{high:,} in {time.perf_counter() - started:.1f}s so far")
        copy_s = time.perf_counter() - started
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(households.insert(), [{"id": household(n), "name": f"User {n}", "created_at": now,
                                                "created_by": f"user{n}@example.com"} for n in range(1, users + 1)])
            conn.execute(connection_directory.insert().from_select(
                ["connection_id", "household_id"], sa.select(connections.c.id, connections.c.household_id)))
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
            stored = conn.execute(sa.select(sa.func.count()).select_from(transactions)).scalar_one()
            stored_households = conn.execute(
                sa.select(sa.func.count(sa.distinct(transactions.c.household_id)))).scalar_one()
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
        log(f"{stored_households:,} households, {stored:,} transactions, copied in {copy_s:.1f}s; database "
            f"{size / 2**20:,.0f} MiB")
        return {"spread_s": copy_s, "analyze_s": time.perf_counter() - started, "transactions": stored,
                "households": stored_households, "database_mb": size / 2**20}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# Measuring (in a child process per engine and step)
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


def card_account(svc: Any) -> str:
    """The household's card account (the first by id), read as the household sees its accounts."""
    with svc.engine.connect() as conn:
        return str(conn.execute(sa.select(accounts.c.id).where(accounts.c.type == "credit_card")
                                .order_by(accounts.c.id).limit(1)).scalar_one())


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


def concurrent(sessions: list[Any], rounds: int) -> tuple[list[float], list[BaseException]]:
    """Every Overview's seconds when one thread per household's services renders it `rounds` times, all starting
    together, and the errors of the renders that failed (a session stops at its first)."""
    times: list[float] = []
    errors: list[BaseException] = []
    lock, gate = threading.Lock(), threading.Barrier(len(sessions))

    def session(svc: Any) -> None:
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

    threads = [threading.Thread(target=session, args=(svc,)) for svc in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, errors


def explain(svc: Any, account: str) -> None:
    """Print PostgreSQL's plan (EXPLAIN ANALYZE, in a transaction of the household, under row-level security) of
    every query one household's Overview and filtered Transactions page run, the slowest first."""
    statements: dict[tuple[str, str], tuple[str, Any]] = {}

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.setdefault((statement, repr(parameters)), (statement, parameters))

    sa.event.listen(svc.engine, "before_cursor_execute", record)
    try:
        overview(svc)
        transactions_page(svc, account)
    finally:
        sa.event.remove(svc.engine, "before_cursor_execute", record)
    plans = []
    with svc.engine.begin() as conn:
        for statement, parameters in statements.values():
            lines = [str(line) for line in conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars()]
            seconds = float(lines[-1].split(":")[1].split()[0]) / 1000  # "Execution Time: 1.234 ms"
            plans.append((seconds, statement, lines))
    for seconds, statement, lines in sorted(plans, key=lambda plan: -plan[0]):
        print(f"\n--- {seconds:.3f} s\n{statement}\n" + "\n".join(lines))


def measure(args: argparse.Namespace) -> None:
    """The child: open households' services as the app does and time one step (`--step`): one household's filtered
    Transactions page, its Overview, or the concurrent Overviews of `--sessions` households (whose process's peak
    RSS is the app's under that load)."""
    from finance.services import shared_services

    settings = settings_of(args.dir, args.url)
    engine = "PostgreSQL" if args.url else "DuckDB"
    result: dict[str, Any] = {"load_before": os.getloadavg()}
    if args.step == "concurrent":
        started = time.perf_counter()
        sessions = [shared_services(settings.for_household(household(n)))
                    for n in burst_households(args.users, args.sessions, engine)]
        result["open_s"] = time.perf_counter() - started
        started = time.perf_counter()
        runs, errors = concurrent(sessions, args.rounds)
        result.update(concurrent_wall_s=time.perf_counter() - started, concurrent_renders=len(runs),
                      concurrent_failed=len(errors), concurrent_error=repr(errors[0]) if errors else None,
                      peak_rss_mb=peak_rss_mb(), pool_size=sessions[0].engine.pool.size(),
                      ru_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if len(runs) >= 2:  # a failed render has no time: the p95 of the others, the failures said beside it
            result.update(concurrent_median_s=median(runs), concurrent_p95_s=p95(runs))
    else:
        n = measured_household(args.users, args.templates) if args.url else 1
        svc = shared_services(settings.for_household(household(n)))
        result["household"] = household(n)
        if args.step == "explain":
            explain(svc, card_account(svc))
            return
        if args.step == "transactions":
            account = card_account(svc)
            result["matches"] = transactions_page(svc, account)
            runs = timed(lambda: transactions_page(svc, account), args.repeat)
            result.update(transactions_s=median(runs), transactions_runs=runs)
        else:
            runs = timed(lambda: overview(svc), args.repeat)
            result.update(overview_s=median(runs), overview_runs=runs)
    result["load_after"] = os.getloadavg()
    emit(result)


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
    print(f"\n{built['households']:,} households of {args.rows // args.users:,} transactions, "
          f"{built['transactions']:,} in all on PostgreSQL {pg.get('version', '?')} ({built['database_mb']:,.0f} "
          f"MiB; {args.templates} households ingested, the rest copied set-based); DuckDB: one file per household "
          f"({args.sessions} built)")
    print(f"{'figure':<44}{'DuckDB':>12}{'PostgreSQL':>12}  target (PostgreSQL)")
    rows = [(f"Overview of one household, median of {args.repeat}", "overview_s"),
            (f"Transactions filtered, median of {args.repeat}", "transactions_s"),
            (f"{args.sessions} households x {args.rounds} Overviews: median", "concurrent_median_s"),
            (f"{args.sessions} households x {args.rounds} Overviews: p95", "concurrent_p95_s"),
            ("  wall time of the whole burst", "concurrent_wall_s"),
            ("  opening the households' services first", "open_s"),
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
    print(f"{'household timed alone':<44}{duck.get('household', 'n/a'):>12}{pg.get('household', 'n/a'):>12}")
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
    """Build the households, move them to PostgreSQL and copy them there, measure both engines in child processes,
    print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("run", "measure"), default="run")
    parser.add_argument("--users", type=int, default=1000, help="households (one connection each)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="transactions in all")
    parser.add_argument("--templates", type=int, default=4, help="households ingested (the rest are copies)")
    parser.add_argument("--repeat", type=int, default=5, help="timed renders per page")
    parser.add_argument("--sessions", type=int, default=20, help="households rendering the Overview at once")
    parser.add_argument("--rounds", type=int, default=3, help="Overviews per concurrent session")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed to each measuring step")
    parser.add_argument("--explain", action="store_true",
                        help="then print PostgreSQL's plan of every query of one household's pages")
    parser.add_argument("--step", choices=("transactions", "overview", "concurrent", "explain"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.command == "measure":
        measure(args)
        return
    args.templates = min(args.templates, args.users)
    if args.sessions > args.users:
        raise SystemExit(f"--sessions ({args.sessions}) needs as many households (--users {args.users})")

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's binaries are missing: `apt-get install postgresql`.")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server = PostgresServer(bindir, durable=True)
    try:
        log(f"load average {os.getloadavg()}; building {args.users:,} households, {args.rows:,} transactions")
        files, ingest_s = build_templates(work, args.users, args.rows, args.templates)
        duckdb_households(work, files, args.sessions)
        url = server()
        built: dict[str, Any] = {"ingest_s": ingest_s, "to_postgres_s": to_postgres(files, url)}
        log(f"moved {len(files)} households into PostgreSQL in {built['to_postgres_s']:.1f}s")
        built |= spread(url, args.users, args.templates)
        common = ["--dir", str(work), "--users", str(args.users), "--templates", str(args.templates),
                  "--repeat", str(args.repeat), "--sessions", str(args.sessions), "--rounds", str(args.rounds)]
        pg = measure_engine("PostgreSQL", [*common, "--url", url], args.timeout)
        duck = measure_engine("DuckDB", common, args.timeout)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            pg["version"] = conn.exec_driver_sql("SHOW server_version").scalar()
        engine.dispose()
        report(built, duck, pg, args)
        emit({"built": built, "duckdb": duck, "postgresql": pg, "args": vars(args) | {"dir": None}})
        if args.explain:
            subprocess.run([sys.executable, "-m", "bench.scale", "measure", "--step", "explain", *common,
                            "--url", url], check=True, timeout=args.timeout)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
