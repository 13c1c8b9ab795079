"""The analysts' snapshot: a read-only DuckDB copy of the store, refreshed atomically after every sync.

DuckDB lets one process hold a database file for writing, so while the app runs nobody else can open the store.
The snapshot is a second file (`data/analytics.duckdb`) that the duckdb CLI, pandas, Polars, Jupyter and
`python -m finance query|export|status` open read-only, any number at once, without stopping anything.

A refresh copies the documented tables (never `connections.encrypted_secret`) in one read transaction of the
store into a new file beside the snapshot, adds the documented views (`SNAPSHOT_VIEWS`), checkpoints and closes
it, gives it the store file's permissions, fsyncs it and renames it over the old one (then fsyncs the folder):
a reader opens either the previous complete file or the new complete one, never a half-written one, and a reader
that has the old file open keeps reading it until it closes.

Incremental: the new file starts as a copy of the previous snapshot (a file copy: ~0.05 s for 1M transactions),
and a big table (`INCREMENTAL_ROWS` rows or more) gets only the rows whose key changed: per key, the count of rows
and the sum of their rows' 64-bit hashes are compared between the store and the previous snapshot (one scan of
each, no copy of unchanged rows; a change is missed only if a row's new hash collides with its old one, odds of
2^-64). Rows of a changed or deleted key are deleted, those the store has inserted. Small tables, tables whose
columns changed, and tables where more than `REWRITE_SHARE` of the keys changed are copied whole, as is everything
when there is no readable previous snapshot. Patched row groups are rewritten and the space of the old ones is
reused only by later writes, so a previous snapshot grown larger than the store file is not reused either: the
snapshot never grows past about the store's size.
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
from finance.store.console import HIDDEN_COLUMNS
from finance.store.db import duckdb_connection
from finance.store.reports import IS_INCOME, IS_SPENDING
from finance.store.schema import metadata
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

INCREMENTAL_ROWS = 50_000
"""Tables with fewer rows in the store are copied whole: a handful of statements cost more than the copy."""
REWRITE_SHARE = 0.25
"""When more than this share of a table's keys changed, the table is copied whole rather than patched."""
INCREMENTAL_KEYS: dict[str, tuple[str, ...]] = {"transactions": ("id",)}
"""The key of a table without a declared primary key (ids are unique by construction; duplicates are still copied
exactly: rows are compared per key as a multiset)."""

_lock = threading.Lock()


def _columns(table: sa.Table) -> str:
    return ", ".join(f'"{c.name}"' for c in table.columns if c.name not in HIDDEN_COLUMNS)


def _key(table: sa.Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.primary_key.columns) or INCREMENTAL_KEYS.get(table.name, ())


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
            store_file = Path(str(engine.url.database))
            limit = store_file.stat().st_size if store_file.is_file() else 0
            _attach(duck, alias, temp, previous=path if path.is_file() and path.stat().st_size <= limit else None)
            try:
                duck.execute("BEGIN TRANSACTION")  # one read transaction: every table as of the same moment
                kept = _shapes(duck, alias)
                wanted = {table.name for table in metadata.sorted_tables}
                for name in sorted(set(kept) - wanted - {"_snapshot"}):  # a table the schema no longer has
                    duck.execute(f'DROP TABLE {alias}."{name}"')
                main = _shapes(duck, duck.execute("SELECT current_database()").fetchall()[0][0])
                for table in metadata.sorted_tables:
                    shape = [c for c in main[table.name] if c[0] not in HIDDEN_COLUMNS]
                    if kept.get(table.name) != shape or not _patch(duck, alias, table):
                        duck.execute(f'DROP TABLE IF EXISTS {alias}."{table.name}"')
                        duck.execute(f'CREATE TABLE {alias}."{table.name}" AS SELECT {_columns(table)} '
                                     f'FROM main."{table.name}"')
                duck.execute(f"DROP TABLE IF EXISTS {alias}._snapshot")
                duck.execute(f"CREATE TABLE {alias}._snapshot AS SELECT CAST(? AS TIMESTAMP) AS refreshed_at",
                             [refreshed_at])
                duck.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    duck.execute("ROLLBACK")
                raise
            finally:
                duck.execute(f"DETACH {alias}")
        _add_views(temp)
        if store_file.is_file():  # readable by whoever may read the store, no one else
            shutil.copymode(store_file, temp)
        _fsync(temp)
        os.replace(temp, path)
        _fsync(path.parent)
    finally:
        for leftover in (temp, temp.with_name(temp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return time.perf_counter() - started


def _attach(duck: duckdb.DuckDBPyConnection, alias: str, temp: Path, *, previous: Path | None) -> None:
    """Attach `temp` as `alias`: a copy of the `previous` snapshot when it is given and readable, else a new file."""
    if previous is not None:
        shutil.copyfile(previous, temp)
        try:
            duck.execute(f"ATTACH '{_quote(temp)}' AS {alias}")
            return
        except duckdb.Error:  # damaged, or written by another DuckDB: start afresh
            for leftover in (temp, temp.with_name(temp.name + ".wal")):
                leftover.unlink(missing_ok=True)
    duck.execute(f"ATTACH '{_quote(temp)}' AS {alias}")


def _shapes(duck: duckdb.DuckDBPyConnection, database: str) -> dict[str, list[tuple[str, str]]]:
    """Each table of `database` (of its main schema) as its [(column, type)] in order."""
    shapes: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in duck.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() JOIN duckdb_tables() "
            "USING (database_name, schema_name, table_name) WHERE database_name = ? AND schema_name = 'main' "
            "ORDER BY table_name, column_index",
            [database]).fetchall():
        shapes.setdefault(table, []).append((column, kind))
    return shapes


def _patch(duck: duckdb.DuckDBPyConnection, alias: str, table: sa.Table) -> bool:
    """Bring the snapshot's copy of `table` (same columns as the store's) up to date by key; False when it is
    better copied whole (small, no key, or too much changed)."""
    key = _key(table)
    total = duck.execute(f'SELECT COUNT(*) FROM main."{table.name}"').fetchall()[0][0]
    if not key or total < INCREMENTAL_ROWS:
        return False
    keys, columns = ", ".join(f'"{k}"' for k in key), _columns(table)
    changes = f'{alias}."_changed_{table.name}"'

    def digest(database: str) -> str:  # per key: how many rows, and the sum of their hashes
        return (f'SELECT {keys}, COUNT(*) AS n, SUM(hash({columns})::HUGEINT) AS h FROM {database}."{table.name}" '
                f"GROUP BY {keys}")

    duck.execute(f"CREATE TABLE {changes} AS SELECT {keys} FROM ({digest('main')}) m "
                 f"FULL JOIN ({digest(alias)}) s USING ({keys}) "
                 "WHERE m.n IS DISTINCT FROM s.n OR m.h IS DISTINCT FROM s.h")
    changed = duck.execute(f"SELECT COUNT(*) FROM {changes}").fetchall()[0][0]
    if changed > REWRITE_SHARE * total:
        duck.execute(f"DROP TABLE {changes}")
        return False
    if changed:
        match = " AND ".join(f'c."{k}" = t."{k}"' for k in key)
        duck.execute(f'DELETE FROM {alias}."{table.name}" t WHERE EXISTS (SELECT 1 FROM {changes} c WHERE {match})')
        duck.execute(f'INSERT INTO {alias}."{table.name}" SELECT {columns} FROM main."{table.name}" t '
                     f"WHERE EXISTS (SELECT 1 FROM {changes} c WHERE {match})")
    duck.execute(f"DROP TABLE {changes}")
    return True


def _add_views(file: Path) -> None:
    """The documented views, created on the new file itself so their names resolve inside it."""
    con = duckdb.connect(str(file))
    try:
        for name, (_meaning, sql) in SNAPSHOT_VIEWS.items():
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {sql}')
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_engine(path: Path) -> sa.Engine:
    """A read-only engine on a snapshot, for the store's read functions (the CLI's `status` and `export` while the
    app runs). Raises SnapshotMissing when there is none yet."""
    if not path.is_file():
        raise SnapshotMissing(f"No analytics snapshot yet at {path}: the running app writes it after its next sync "
                              "(or start a sync: python -m finance sync).")
    return sa.create_engine(f"duckdb:///{path}", connect_args={"read_only": True})
