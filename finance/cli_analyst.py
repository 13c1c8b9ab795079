"""The analysts' commands: `python -m finance query "SQL"` and `python -m finance export …`.

`query` is the Explore page's console in the terminal: the same validation, sandbox, limits and refusals
(finance.store.console), run on the analysts' snapshot (finance.store.snapshot) — the one the running app rewrites
after every sync, or, when the app is not running, one brought up to date from the store first. It imports neither
pandas nor SQLAlchemy on that path, so it starts fast. `export` writes the files the Transactions page downloads
(and accounts, balances, categories), from the store, or from the snapshot while the app holds the store. On
PostgreSQL both read the store itself.

Output is for a terminal, a file or a pipe: a table with control characters shown escaped (bank text could carry
terminal escape sequences), CSV with formula cells neutralised, JSON, or Parquet (to a file or a pipe only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finance import analytics, control
from finance.config import LOCAL_HOUSEHOLD, Settings, load_settings, valid_household
from finance.errors import ConsoleError, StoreError
from finance.i18n import _, using

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy as sa

    from finance.store.console import QueryResult

FORMATS = ("table", "csv", "json", "parquet")
EXPORTS = ("transactions", "accounts", "balances", "categories")
MAX_CELL = 60


# --------------------------------------------------------------------------------------------
# query
# --------------------------------------------------------------------------------------------

def _duckdb_file(settings: Settings) -> Path | None:
    """The store's DuckDB file, or None when the store is elsewhere (PostgreSQL) or in memory."""
    url = settings.database_url
    if not url.startswith("duckdb:///") or url == "duckdb:///:memory:":
        return None
    return Path(url.removeprefix("duckdb:///").split("?", 1)[0])


def app_holding_store(settings: Settings) -> control.RunningApp | None:
    """The running app that holds this DuckDB store file, to hand writes to and read the snapshot of; None when
    none runs, or when the store is PostgreSQL (any number of processes use it: the CLI opens it itself)."""
    return control.running_app(settings.data_dir) if _duckdb_file(settings) is not None else None


def current_snapshot(settings: Settings) -> Path:
    """The snapshot to read: the running app keeps its own current; otherwise it is brought up to date from the
    store when the store changed since (a busy store leaves the last one, with a note on stderr)."""
    store_file = _duckdb_file(settings)
    path = analytics.snapshot_path(settings.household_dir)
    if store_file is None or app_holding_store(settings) is not None:
        return path
    if analytics.is_stale(store_file, path):
        from finance.errors import DatabaseBusy
        from finance.store.db import create_engine
        from finance.store.snapshot import refresh_snapshot

        try:
            engine = create_engine(settings.database_url, household=settings.household)
        except DatabaseBusy:
            if not path.is_file():
                raise
            print(_("note: the store is in use by another process; reading the snapshot of its last sync."),
                  file=sys.stderr)
            return path
        try:
            refresh_snapshot(engine, path)
        finally:
            engine.dispose()
    return path


def household_settings(household: str) -> Settings:
    """The settings of one household's store (`--household`); ConsoleError for a household this installation does
    not have (on DuckDB: no store file of its own), rather than an empty store made for it."""
    settings = load_settings().for_household(household)
    store_file = _duckdb_file(settings)
    if settings.household != LOCAL_HOUSEHOLD and store_file is not None and not store_file.is_file():
        raise ConsoleError(_("There is no household {household} here.").format(household=household))
    return settings


def run_query(settings: Settings, sql: str) -> QueryResult:
    """One console query from the terminal: on the snapshot (DuckDB), or on the store (PostgreSQL)."""
    from finance.store import console

    if _duckdb_file(settings) is None:
        from finance.store.db import create_engine

        console.validate_sql(sql)  # refused before the store is even opened
        engine = create_engine(settings.database_url, household=settings.household)
        try:
            return console.run_query(engine, sql)
        finally:
            engine.dispose()
    path = current_snapshot(settings)
    if not path.is_file():
        raise analytics.SnapshotMissing(_("No analytics snapshot yet: the running app writes it after its next "
                                          "sync."))
    return console.run_query_on_file(path, sql)


def _text(value: Any) -> str:
    """A cell as one line of printable text: control characters (escape sequences, newlines) shown escaped."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, date) else str(value)
    return "".join(ch if unicodedata.category(ch)[0] != "C" else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def render_table(table: pa.Table) -> str:
    """A plain-text table: a header, a rule, one line per row; numbers right-aligned, long cells cut."""
    import pyarrow as pa

    names = [_text(n) for n in table.column_names]
    columns = [[_text(v) for v in table.column(i).to_pylist()] for i in range(table.num_columns)]
    columns = [[c if len(c) <= MAX_CELL else c[: MAX_CELL - 1] + "…" for c in col] for col in columns]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)
               for f in table.schema]
    widths = [max([len(n), *map(len, col)]) for n, col in zip(names, columns, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if right else c.ljust(w)
                         for c, w, right in zip(cells, widths, numeric, strict=True)).rstrip()

    rows = [line(names), "  ".join("-" * w for w in widths)]
    rows += [line([col[r] for col in columns]) for r in range(table.num_rows)]
    return "\n".join(rows) + "\n"


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: a float would round amounts
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def encode(table: pa.Table, fmt: str) -> bytes:
    """A result in one of FORMATS."""
    from finance.store import console

    if fmt == "csv":
        return console.to_csv_bytes(table)
    if fmt == "parquet":
        return console.to_parquet_bytes(table)
    if fmt == "json":
        rows = [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]
        return (json.dumps(rows, ensure_ascii=True, indent=1) + "\n").encode()
    return render_table(table).encode("utf-8")


def _write(data: bytes, output: str | None, fmt: str) -> None:
    if output:
        Path(output).write_bytes(data)
        return
    if fmt == "parquet" and sys.stdout.isatty():
        raise ConsoleError(_("Parquet is binary: write it to a file with --output FILE (or pipe it)."))
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def cmd_query(args: argparse.Namespace) -> int:
    """Run one read-only query; a refused or failed one is one line on stderr and exit code 1."""
    try:
        result = run_query(household_settings(args.household), args.sql)
        _write(encode(result.table, args.format), args.output, args.format)
    except ConsoleError as exc:
        print(_("error: {message}").format(message=" ".join(exc.message.split())), file=sys.stderr)
        return 1
    if result.truncated:
        print(_("note: only the first {count} rows (the console's limit); narrow the query down.").format(
            count=f"{result.rows:,}"), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------

def export_table(conn: sa.Connection, what: str, start: date | None, end: date | None,
                 account_ids: tuple[str, ...]) -> pa.Table:
    """The rows of one export: transactions as the Transactions page exports them (its filter), the others
    from the store's own read functions."""
    import pyarrow as pa

    from finance.filters import TransactionFilter
    from finance.store import accounts, transactions

    if what == "transactions":
        return transactions.export_table(conn, TransactionFilter(start=start, end=end, account_ids=account_ids))
    if what == "accounts":
        rows = accounts.accounts_summary(conn)
        if account_ids:
            rows = rows[rows["id"].isin(account_ids)]
    elif what == "balances":
        rows = accounts.balance_history_table(conn, start=start, end=end, account_ids=account_ids)
    else:
        rows = transactions.category_options(conn)
    return pa.Table.from_pandas(rows, preserve_index=False)


def _read_engine(settings: Settings) -> tuple[sa.Engine, bool]:
    """(engine, is it the snapshot): the snapshot while the app holds a DuckDB store, else the store itself."""
    if app_holding_store(settings) is not None:
        from finance.store.snapshot import snapshot_engine

        return snapshot_engine(analytics.snapshot_path(settings.household_dir)), True
    from finance.services import open_services

    return open_services(settings).engine, False


def cmd_export(args: argparse.Namespace) -> int:
    """Write one export as CSV (formula cells neutralised) or Parquet, to --output or standard output."""
    from finance.store import transactions

    if args.start and args.end and args.start > args.end:
        print(_("error: --from must not be after --to."), file=sys.stderr)
        return 1
    try:
        settings = household_settings(args.household)
    except ConsoleError as exc:
        print(_("error: {message}").format(message=exc.message), file=sys.stderr)
        return 1
    engine, from_snapshot = _read_engine(settings)
    try:
        with engine.connect() as conn:
            table = export_table(conn, args.what, args.start, args.end, tuple(args.account or ()))
    finally:
        engine.dispose()
    data = transactions.to_csv(table) if args.format == "csv" else transactions.to_parquet(table)
    try:
        _write(data, args.output, args.format)
    except ConsoleError as exc:
        print(_("error: {message}").format(message=exc.message), file=sys.stderr)
        return 1
    if args.output:
        note = " " + _("(the app is running: as of its last sync)") if from_snapshot else ""
        print(_("Wrote {count} {what} rows to {file}{note}.").format(
            count=f"{table.num_rows:,}", what=args.what, file=args.output, note=note), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------------

def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("{text} is not a date like 2026-01-31").format(text=repr(text))) from None


def _household(text: str) -> str:
    try:
        return valid_household(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("{text} is not a household id (lower-case letters, digits and dashes)")
                                         .format(text=repr(text))) from None


def add_commands(sub: Any) -> None:
    """Add `query` and `export` to the CLI's subcommands."""
    household_help = _("the household whose data to read (default: local, the installation's first)")
    query = sub.add_parser("query", help=_("run one read-only SQL query (the Explore console) and print the result"),
                           description=_("One SELECT (DuckDB dialect) on the analysts' snapshot, with the Explore "
                                         "console's rules and limits. Tables and views: docs/schema.md."))
    query.add_argument("sql", help=_('the query, e.g. "SELECT * FROM monthly_cash_flow ORDER BY month"'))
    query.add_argument("--format", choices=FORMATS, default="table")
    query.add_argument("--output", "-o", help=_("write to this file instead of standard output"))
    query.add_argument("--household", type=_household, default=LOCAL_HOUSEHOLD, help=household_help)
    query.set_defaults(func=cmd_query)

    export = sub.add_parser("export", help=_("export transactions, accounts, balances or categories (CSV/Parquet)"))
    export.add_argument("what", choices=EXPORTS)
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--output", "-o", help=_("write to this file instead of standard output"))
    export.add_argument("--from", dest="start", type=_day, help=_("first day (transactions, balances)"))
    export.add_argument("--to", dest="end", type=_day, help=_("last day (transactions, balances)"))
    export.add_argument("--account", action="append", help=_("an account id (repeat for more); default: all"))
    export.add_argument("--household", type=_household, default=LOCAL_HOUSEHOLD, help=household_help)
    export.set_defaults(func=cmd_export)


def main(argv: list[str]) -> int:
    """`query` without the rest of the CLI's imports (start-up time); the same errors and language as
    finance.cli.main."""
    with using(os.environ.get("FINANCE_LANG") or os.environ.get("LANG") or "en"):
        return _run(argv)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m finance")
    parser.add_argument("--verbose", "-v", action="store_true")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (StoreError, control.ControlError) as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2
