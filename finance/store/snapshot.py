"""The analysts' snapshot: a read-only DuckDB copy of the store, refreshed atomically after every sync.

DuckDB lets one process hold a database file for writing, so while the app runs nobody else can open the store.
The snapshot is a second file (`data/analytics.duckdb`) that the duckdb CLI, pandas, Polars, Jupyter and
`python -m finance query|export|status` open read-only, any number at once, without stopping anything.

A refresh copies the documented tables (never `connections.encrypted_secret`) in one read transaction of the
store into a new file beside the snapshot, adds the documented views (`SNAPSHOT_VIEWS`), checkpoints and closes
it, gives it the store file's permissions, fsyncs it and renames it over the old one (then fsyncs the folder):
a reader opens either the previous complete file or the new complete one, never a half-written one, and a reader
that has the old file open keeps reading it until it closes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa

from finance.analytics import SnapshotMissing
from finance.private_files import fsync_path
from finance.store.console import HIDDEN_COLUMNS
from finance.store.db import duckdb_connection
from finance.store.reports import IS_INCOME, IS_SPENDING
from finance.store.schema import DIRECTORY_TABLES, metadata
from finance.store.transactions import EFFECTIVE_TRANSACTIONS

SNAPSHOT_VIEWS: dict[str, tuple[str, str]] = {
    "effective_transactions": (
        "The transactions the pages count: deleted rows left out, the effective category (the user's choice, else "
        "the merchant's rule, else the provider's) with its name, top-level category and kind, and the account "
        "and institution. amount < 0 when money leaves the user, in the account's currency.",
        f"""SELECT t.id, t.booked_date, t.authorized_date, t.account_id, a.name AS account, a.type AS account_type,
       c.institution_name AS institution, t.description, t.merchant, t.amount, t.currency, t.status,
       t.effective_category AS category, k.name AS category_name,
       COALESCE(p.id, k.id) AS top_category, COALESCE(p.name, k.name) AS top_category_name, k.kind,
       t.category_source, t.payment_method, t.note
FROM {EFFECTIVE_TRANSACTIONS} t
LEFT JOIN accounts a ON a.id = t.account_id
LEFT JOIN connections c ON c.id = a.connection_id
LEFT JOIN categories k ON k.id = t.effective_category
LEFT JOIN categories p ON p.id = k.parent_id
WHERE t.deleted_at IS NULL"""),
    "monthly_cash_flow": (
        "Income and spending per month and currency, as the Overview counts them: transfers are neither, refunds "
        "net off spending, pending rows included. net = income - spending.",
        f"""SELECT CAST(date_trunc('month', t.booked_date) AS DATE) AS month, t.currency,
       SUM(CASE WHEN {IS_INCOME} THEN t.amount ELSE 0 END) AS income,
       -SUM(CASE WHEN {IS_SPENDING} THEN t.amount ELSE 0 END) AS spending,
       SUM(CASE WHEN {IS_INCOME} THEN t.amount ELSE 0 END)
         + SUM(CASE WHEN {IS_SPENDING} THEN t.amount ELSE 0 END) AS net
FROM effective_transactions t JOIN categories k ON k.id = t.category
GROUP BY 1, 2"""),
    "monthly_spending_by_category": (
        "Net spending (positive) per month, currency and top-level category; refunds net off.",
        f"""SELECT CAST(date_trunc('month', t.booked_date) AS DATE) AS month, t.currency, t.top_category AS category,
       t.top_category_name AS category_name, -SUM(t.amount) AS spending, COUNT(*) AS transactions
FROM effective_transactions t JOIN categories k ON k.id = t.category
WHERE {IS_SPENDING}
GROUP BY 1, 2, 3, 4"""),
    "merchant_monthly": (
        "Spending (positive) and number of purchases per month, currency and merchant (rows without a merchant "
        "left out).",
        f"""SELECT CAST(date_trunc('month', t.booked_date) AS DATE) AS month, t.currency, t.merchant,
       -SUM(t.amount) AS spending, COUNT(*) AS transactions
FROM effective_transactions t JOIN categories k ON k.id = t.category
WHERE {IS_SPENDING} AND t.merchant IS NOT NULL
GROUP BY 1, 2, 3"""),
    "snapshot_info": (
        "One row: when this snapshot was written (UTC) and the end of the last successful sync it holds.",
        "SELECT refreshed_at, (SELECT MAX(last_success_at) FROM connections) AS last_sync_at FROM _snapshot"),
}
"""The views every snapshot holds, by name: (what it means, its SQL over the snapshot's tables)."""

UNCOMPRESSED_COLUMNS = frozenset({"id", "external_id"})
"""Text columns written uncompressed: keys whose every value differs, so DuckDB's dictionary and FSST compression
save half their size and cost a fifth of a 1M-transaction refresh (bench/RESULTS.md, issue 16)."""

_lock = threading.Lock()


def _columns(table: sa.Table) -> str:
    return ", ".join(f'"{c.name}"' for c in table.columns if c.name not in HIDDEN_COLUMNS)


def _store_types(duck: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """The store's column types by (table, column), as `CREATE TABLE AS` would copy them."""
    return {(table, column): kind for table, column, kind in duck.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main'").fetchall()}


def _definition(table: sa.Table, types: dict[tuple[str, str], str]) -> str:
    """The snapshot's columns of a store table: the store's types without constraints, UNCOMPRESSED_COLUMNS
    uncompressed."""
    columns = []
    for column in table.columns:
        if column.name in HIDDEN_COLUMNS:
            continue
        kind = types[(table.name, column.name)]
        keyed = column.name in UNCOMPRESSED_COLUMNS and kind == "VARCHAR"
        columns.append(f'"{column.name}" {kind}' + (" USING COMPRESSION uncompressed" if keyed else ""))
    return ", ".join(columns)


def refresh_snapshot(engine: sa.Engine, path: Path, *, now: datetime | None = None) -> float:
    """Write a new snapshot of a DuckDB store and put it in place atomically; returns the seconds it took.
    Refreshes in one process run one at a time; each writes its own temporary file."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    alias = f"finance_snapshot_{secrets.token_hex(4)}"
    refreshed_at = (now or datetime.now(UTC)).replace(tzinfo=None)
    try:
        with _lock, engine.connect() as conn:
            duck = duckdb_connection(conn)
            duck.execute(f"ATTACH '{_quote(temp)}' AS {alias}")
            # Rows are copied in whatever order the threads finish them (no reader depends on a table's physical
            # order): the copy then runs on every core, ~1.5x faster on two (bench/RESULTS.md, issue 16). This
            # connection's session only; the pool's next user gets it back as it was.
            try:
                duck.execute("SET SESSION preserve_insertion_order = false")
                duck.execute("BEGIN TRANSACTION")  # one read transaction: every table as of the same moment
                types = _store_types(duck)
                for table in metadata.sorted_tables:
                    if table.name in DIRECTORY_TABLES:  # they name other households and their members
                        continue
                    duck.execute(f'CREATE TABLE {alias}."{table.name}" ({_definition(table, types)})')
                    duck.execute(f'INSERT INTO {alias}."{table.name}" SELECT {_columns(table)} '
                                 f'FROM main."{table.name}"')
                duck.execute(f"CREATE TABLE {alias}._snapshot AS SELECT CAST(? AS TIMESTAMP) AS refreshed_at",
                             [refreshed_at])
                duck.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    duck.execute("ROLLBACK")
                raise
            finally:
                duck.execute("RESET SESSION preserve_insertion_order")
                duck.execute(f"DETACH {alias}")
        _add_views(temp)
        store_file = Path(str(engine.url.database))
        if store_file.is_file():  # readable by whoever may read the store, no one else
            shutil.copymode(store_file, temp)
        fsync_path(temp)
        os.replace(temp, path)
        fsync_path(path.parent)
    finally:
        for leftover in (temp, temp.with_name(temp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return time.perf_counter() - started


def _add_views(file: Path) -> None:
    """The documented views, created on the new file itself so their names resolve inside it."""
    con = duckdb.connect(str(file))
    try:
        for name, (_meaning, sql) in SNAPSHOT_VIEWS.items():
            con.execute(f'CREATE VIEW "{name}" AS {sql}')
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def snapshot_engine(path: Path) -> sa.Engine:
    """A read-only engine on a snapshot, for the store's read functions (the CLI's `status` and `export` while the
    app runs). Raises SnapshotMissing when there is none yet."""
    if not path.is_file():
        raise SnapshotMissing(f"No analytics snapshot yet at {path}: the running app writes it after its next sync "
                              "(or start a sync: python -m finance sync).")
    return sa.create_engine(f"duckdb:///{path}", connect_args={"read_only": True})
