"""Apply one sync's results to the store, inside the caller's database transaction.

Mapped rows arrive as Arrow batches (finance.model.TRANSACTION_SCHEMA): kept in memory for small syncs, or
appended page by page to a staging file (`StagedTransactions`) while the fetch runs, so a sync of a million
rows holds one buffer of them at a time. The apply merges them with set-based SQL that DuckDB runs over the
staged rows: no row-by-row inserts, only new rows inserted and only changed rows rewritten. User fields
(category override, note, tombstone) are never overwritten by provider data.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as upsert  # DuckDB speaks its ON CONFLICT

from finance.balances import reconstruct_balances
from finance.dedupe import Candidate, pair_pending_with_posted
from finance.errors import TransientError
from finance.model import MONEY, TRANSACTION_SCHEMA, Account, ConnectionState, TransactionChanges, money, stable_id
from finance.store.db import load_arrow, unload_arrow
from finance.store.schema import accounts as accounts_t
from finance.store.schema import balance_history, connections

# Provider-owned columns a re-sync may change; their change is what counts as "modified".
MATERIAL_COLUMNS = (
    "booked_date", "authorized_date", "amount", "currency", "original_amount", "original_currency",
    "description", "merchant", "category", "provider_category", "provider_category_id", "status",
    "payment_method", "installment_number", "installment_total", "bill_id", "merchant_category_code",
    "counterparty_account",
)
STAGED_COLUMNS = (
    "id", "account_id", "connection_id", "provider", "external_id", *MATERIAL_COLUMNS, "pending_id",
    "provider_created_at",
)
STAGING_SCHEMA = TRANSACTION_SCHEMA.append(pa.field("seq", pa.int64(), nullable=False))
"""Staged rows: the mapping's columns plus their arrival order (the latest word on an id wins)."""
FILTERED_COLUMNS = ("external_id", "account_external_id", "pending_external_id", "status", "seq")
"""The staged columns the merge joins or filters on: the only ones PostgreSQL's planner needs statistics of."""
STAGING_FLUSH_ROWS = 16_384
"""Rows buffered before a write: DuckDB scans a few large batches much faster than thousands of pages."""


STORE_MEMORY_LIMIT_MB = 192
"""DuckDB's memory cap for a store file. Past it, a big sync's temporary tables and buffers spill to the
database's temporary directory instead of growing the process (a 1M-row sync peaks near 0.5 GiB, not 1 GiB)."""


def configure_store(engine: sa.Engine, *, memory_limit_mb: int = STORE_MEMORY_LIMIT_MB) -> None:
    """Cap DuckDB's memory for a file-backed store (a database-wide setting); other databases are left alone."""
    database = engine.url.database or ""
    if engine.dialect.name != "duckdb" or not database or database.startswith(":memory:"):
        return
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET memory_limit = '{int(memory_limit_mb)}MB'")


@dataclass(frozen=True, slots=True)
class ApplyCounts:
    added: int = 0
    modified: int = 0
    removed: int = 0
    merged: int = 0


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else money(value)


class StagedTransactions:
    """One sync's mapped transactions, appended as the fetch produces them to an Arrow file on disk.

    Thread-safe (`append` is the provider's sink). `apply_sync` scans the file a few times (DuckDB reads it in
    batches); only rows already stored are copied into DuckDB, new rows go straight from the file into the
    table. Appending pages to a DuckDB table instead costs several times more (each filled row group is
    compressed as it closes), and holding them in Python would cost the memory this avoids.
    Use as a context manager: the file is removed on exit, even when writing or closing it fails (a full disk).
    """

    def __init__(self, directory: str | Path | None = None, *, flush_rows: int = STAGING_FLUSH_ROWS) -> None:
        handle, name = tempfile.mkstemp(prefix="finance-staging-", suffix=".arrow", dir=directory)
        self.path = Path(name)
        self._sink = os.fdopen(handle, "wb")
        try:
            self._writer: pa.ipc.RecordBatchFileWriter | None = pa.ipc.new_file(self._sink, STAGING_SCHEMA)
        except BaseException:
            self._sink.close()
            self.path.unlink(missing_ok=True)
            raise
        self._flush_rows = flush_rows
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0
        self._lock = threading.Lock()

    def append(self, batch: pa.RecordBatch) -> None:
        """Stage one mapped batch (any size)."""
        if not batch.schema.equals(TRANSACTION_SCHEMA):
            raise ValueError("a staged batch must have finance.model.TRANSACTION_SCHEMA")
        if not batch.num_rows:
            return
        with self._lock:
            if self._writer is None:
                raise RuntimeError("rows were staged after the staging file was read")
            seq = pa.array(range(self.rows, self.rows + batch.num_rows), pa.int64())
            self._pending.append(pa.RecordBatch.from_arrays([*batch.columns, seq], schema=STAGING_SCHEMA))
            self.rows += batch.num_rows
            self._pending_rows += batch.num_rows
            if self._pending_rows >= self._flush_rows:
                self._flush()

    def _flush(self) -> None:
        if self._pending and self._writer is not None:
            self._writer.write_batch(pa.concat_batches(self._pending))
        self._pending, self._pending_rows = [], 0

    def _finish(self) -> None:
        """Write what is pending and close the file; once only, even when a write fails (the file is then
        unusable, and `close` still removes it)."""
        with self._lock:
            if self._writer is None:
                return
            try:
                self._flush()
                self._writer.close()
            finally:
                self._writer = None
                self._pending, self._pending_rows = [], 0
                self._sink.close()

    def reader(self) -> pa.RecordBatchReader:
        """Finish writing; the staged rows for one scan, read from disk a batch at a time (no read-ahead)."""
        self._finish()
        source = pa.ipc.open_file(pa.OSFile(str(self.path), "rb"))
        return pa.RecordBatchReader.from_batches(
            STAGING_SCHEMA, (source.get_batch(i) for i in range(source.num_record_batches)))

    def read_all(self) -> pa.Table:
        """Finish writing; every staged row (for tests and small checks)."""
        return self.reader().read_all()

    def close(self) -> None:
        """Remove the staging file; it is gone even when finishing it raises (the error still propagates)."""
        try:
            self._finish()
        finally:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> StagedTransactions:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Remove the file; a failure to close it does not hide the error that ended the block (it becomes a note)."""
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as problem:
            exc.add_note(f"Closing the staging file failed too ({type(problem).__name__}).")


def _batches_table(batches: list[pa.RecordBatch]) -> pa.Table:
    """In-memory batches as staged rows (the path of small syncs and tests)."""
    staged, seq = [], 0
    for batch in batches:
        numbers = pa.array(range(seq, seq + batch.num_rows), pa.int64())
        staged.append(pa.RecordBatch.from_arrays([*batch.columns, numbers], schema=STAGING_SCHEMA))
        seq += batch.num_rows
    return pa.Table.from_batches(staged, STAGING_SCHEMA)


Scan = Callable[[], pa.RecordBatchReader | pa.Table]
"""Opens the staged rows for one more scan."""


def upsert_connection(conn: sa.Connection, state: ConnectionState, *, now: datetime,
                      cursor: str | None = None, success: bool = False, owner: str | None = None) -> None:
    """Insert or refresh a connection row from the provider's view of it."""
    values = {
        "provider": state.provider, "external_id": state.external_id,
        "status": state.status.value, "provider_status": state.provider_status,
        "status_detail": state.status_detail, "error_code": state.error_code,
        "consent_expires_at": state.consent_expires_at, "last_attempt_at": now, "updated_at": now,
        "successor_institution_id": state.successor_institution_id,
    }
    if state.institution is not None:
        values |= {"institution_id": state.institution.id, "institution_name": state.institution.name,
                   "institution_logo_url": state.institution.logo_url, "is_sandbox": state.institution.is_sandbox}
    if success:
        values |= {"last_success_at": now, "sync_cursor": cursor}
    exists = conn.execute(sa.select(connections.c.id).where(connections.c.id == state.id)).first()
    if exists:
        conn.execute(connections.update().where(connections.c.id == state.id).values(**values))
    else:
        conn.execute(connections.insert().values(id=state.id, created_at=now, owner=owner,
                                                 is_sandbox=values.pop("is_sandbox", False), **values))


def upsert_accounts(conn: sa.Connection, accounts: list[Account], now: datetime) -> None:
    """Every account of the fetch inserted or refreshed in one statement (first_seen_at kept)."""
    if not accounts:
        return
    rows = [{
        "id": account.id, "connection_id": account.connection_id, "provider": account.provider,
        "external_id": account.external_id, "type": account.type.value, "subtype": account.subtype,
        "name": account.name, "mask": account.mask, "currency": account.currency,
        "current_balance": _money(account.current_balance), "available_balance": _money(account.available_balance),
        "credit_limit": _money(account.credit_limit), "balance_as_of": account.balance_as_of or now,
        "first_seen_at": now, "last_seen_at": now,
    } for account in accounts]
    statement = upsert(accounts_t).values(rows)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[accounts_t.c.id],
        set_={name: statement.excluded[name] for name in rows[0] if name not in ("id", "first_seen_at")}))


def _distinct(a: str, b: str) -> str:
    return " OR ".join(f"{a}.{c} IS DISTINCT FROM {b}.{c}" for c in MATERIAL_COLUMNS)


def apply_sync(conn: sa.Connection, *, state: ConnectionState, accounts: list[Account],
               changes: TransactionChanges, now: datetime, today: date,
               staged: StagedTransactions | None = None) -> ApplyCounts:
    """Merge one fetch into the store. Call inside a transaction: it is all or nothing with the caller's writes.

    The rows are `staged` (when the fetch streamed them there) followed by `changes.batches`.
    """
    upsert_accounts(conn, accounts, now)
    scan: Scan
    if staged is not None:
        for batch in changes.batches:
            staged.append(batch)
        scan = staged.reader
    else:
        table = _batches_table(changes.batches)
        scan = lambda: table  # noqa: E731 - an in-memory table can be scanned again as is
    load_arrow(conn, "incoming_windows", pa.table({
        "account_id": pa.array([stable_id(state.provider, a) for a, _ in changes.windows], pa.string()),
        "start_date": pa.array([d for _, d in changes.windows], pa.date32()),
    }))
    load_arrow(conn, "incoming_removed", pa.table({
        "id": pa.array([stable_id(state.provider, r) for r in changes.removed], pa.string())}))
    load_arrow(conn, "incoming_set_aside", pa.table({
        "external_id": pa.array([row.external_id for row in changes.set_aside], pa.string())}))
    incoming = Incoming(state.provider, state.id, scan, copied=conn.dialect.name != "duckdb")
    if incoming.copied:  # PostgreSQL reads the staged rows from one COPY into a temporary table
        load_arrow(conn, "incoming_raw", scan(), statistics=FILTERED_COLUMNS)
    counts = _merge(conn, incoming, accounts, now, today)
    # Only after success: a failed statement aborts the transaction, where unregistering raises and would hide
    # the failure; the rollback drops the registrations (and PostgreSQL's temporary tables) with it.
    for view in ("incoming_raw", "incoming_windows", "incoming_removed", "incoming_set_aside"):
        unload_arrow(conn, view)
    return counts


@dataclass(frozen=True, slots=True)
class Incoming:
    """The fetched rows as store rows: `select()` reads them from `incoming_raw` with the parameters `params`.

    On DuckDB the staged rows are read afresh for each statement that scans them (`open` before it): a reader
    streams them from disk a batch at a time, so no statement holds them all in memory. On PostgreSQL they were
    `copied` once into a temporary table, and `open` has nothing to do.
    """

    provider: str
    connection_id: str
    scan: Scan
    superseded: bool = False  # some ids were staged twice: only each id's latest version counts
    copied: bool = False

    @property
    def params(self) -> dict[str, str]:
        return {"prefix": f"{self.provider}:", "connection_id": self.connection_id, "provider": self.provider}

    def open(self, conn: sa.Connection) -> None:
        if not self.copied:
            load_arrow(conn, "incoming_raw", self.scan())

    def select(self) -> str:
        latest = " WHERE seq NOT IN (SELECT seq FROM superseded)" if self.superseded else ""
        return f"""(
            SELECT :prefix || external_id AS id, :prefix || account_external_id AS account_id,
                   :connection_id AS connection_id, :provider AS provider, external_id, {", ".join(MATERIAL_COLUMNS)},
                   CASE WHEN pending_external_id IS NOT NULL THEN :prefix || pending_external_id END AS pending_id,
                   provider_created_at
            FROM incoming_raw{latest})"""


def _merge(conn: sa.Connection, incoming: Incoming, accounts: list[Account], now: datetime,
           today: date) -> ApplyCounts:
    def x(sql: str, params: dict[str, object] | None = None) -> sa.CursorResult[Any]:
        return conn.execute(sa.text(sql), params or {})

    def create(table: str, query: str, params: dict[str, object] | None = None) -> None:
        x(f"DROP TABLE IF EXISTS {table}")
        x(f"CREATE TEMP TABLE {table} AS {query}", params)

    incoming.open(conn)
    # A cheap test first (DuckDB: 64-bit hashes; PostgreSQL: bytes, not the locale's slower order; an id is equal
    # to another in both or in neither); the exact search only when it finds a repeat.
    key = "hash(external_id)" if conn.dialect.name == "duckdb" else 'external_id COLLATE "C"'
    staged = x(f"SELECT count(*) - count(DISTINCT {key}), count(*) FROM incoming_raw").one()
    if staged[0]:
        incoming.open(conn)
        create("repeats", "SELECT external_id, max(seq) AS seq FROM incoming_raw GROUP BY external_id "
                          "HAVING count(*) > 1")
        incoming.open(conn)
        create("superseded", "SELECT i.seq FROM incoming_raw i JOIN repeats r ON r.external_id = i.external_id "
                             "WHERE i.seq < r.seq")
        incoming = Incoming(incoming.provider, incoming.connection_id, incoming.scan, superseded=True,
                            copied=incoming.copied)
    rows = incoming.select()
    params = incoming.params
    # Rows already stored: the only ones copied into DuckDB (new rows go from the staged rows into the table).
    incoming.open(conn)
    create("stg", f"""
        SELECT i.*, ({_distinct('i', 't')}) AS changed
        FROM {rows} i JOIN transactions t ON t.id = i.id
    """, params)
    known, modified = x("SELECT count(*), count(*) FILTER (WHERE changed) FROM stg").one()
    superseded = x("SELECT count(*) FROM superseded").scalar_one() if incoming.superseded else 0
    added = staged[1] - superseded - known

    # Rows the provider no longer lists: explicitly removed, or absent from an authoritative window. A row the
    # provider did send, but that was set aside as impossible, is not absent: its stored version stays.
    create("scope", """
        SELECT t.id, t.external_id, t.account_id, t.amount, t.booked_date, t.status, t.merchant, t.description
        FROM transactions t JOIN incoming_windows w ON w.account_id = t.account_id
        WHERE t.connection_id = :connection_id AND t.booked_date >= w.start_date
          AND t.external_id NOT IN (SELECT external_id FROM incoming_set_aside)
        UNION
        SELECT t.id, t.external_id, t.account_id, t.amount, t.booked_date, t.status, t.merchant, t.description
        FROM transactions t WHERE t.connection_id = :connection_id AND t.id IN (SELECT id FROM incoming_removed)
    """, {"connection_id": incoming.connection_id})
    gone: list[sa.Row] = []
    if x("SELECT count(*) FROM scope").scalar_one():
        incoming.open(conn)
        create("gone", """
            SELECT id, account_id, amount, booked_date, status, merchant, description FROM scope s
            WHERE NOT EXISTS (SELECT 1 FROM incoming_raw i WHERE i.external_id = s.external_id)
        """)
        gone = x("SELECT id, account_id, amount, booked_date, status, merchant, description FROM gone").all()
    # Only new rows that could replace a vanished pending row come back to Python for pairing.
    if gone:
        incoming.open(conn)
    candidates = x(f"""
        SELECT i.id, i.account_id, i.amount, i.booked_date, i.status, i.pending_id, i.merchant, i.description
        FROM {rows} i WHERE NOT EXISTS (SELECT 1 FROM stg s WHERE s.id = i.id)
          AND (i.pending_id IN (SELECT id FROM gone)
               OR (i.status = 'posted' AND i.account_id IN (SELECT account_id FROM gone WHERE status = 'pending')))
    """, params).all() if gone else []

    # Pending → posted: the provider's explicit link first, then a scored match (providers that give none).
    gone_ids = {g.id for g in gone}
    pairs = [(a.pending_id, a.id) for a in candidates if a.pending_id and a.pending_id in gone_ids]
    linked_old = {old for old, _ in pairs}
    linked_new = {new for _, new in pairs}
    pending = [Candidate(g.id, g.account_id, g.amount, g.booked_date, g.merchant or g.description)
               for g in gone if g.status == "pending" and g.id not in linked_old]
    posted = [Candidate(a.id, a.account_id, a.amount, a.booked_date, a.merchant or a.description)
              for a in candidates if a.status == "posted" and a.id not in linked_new]
    pairs += pair_pending_with_posted(pending, posted)

    # Rewrite only rows whose provider data changed; new rows are inserted; the rest only get seen again.
    columns = ", ".join(STAGED_COLUMNS)
    if modified:
        updates = ", ".join(f"{c} = s.{c}" for c in (*MATERIAL_COLUMNS, "provider_created_at"))
        x(f"""
            UPDATE transactions SET {updates}, pending_id = COALESCE(s.pending_id, transactions.pending_id)
            FROM stg s WHERE transactions.id = s.id AND s.changed
        """)
    if known:
        x("UPDATE transactions SET last_seen_at = :now WHERE id IN (SELECT id FROM stg)", {"now": now})
    if added:
        incoming.open(conn)
        x(f"""
            INSERT INTO transactions ({columns}, first_seen_at, last_seen_at)
            SELECT {columns}, :now, :now FROM {rows} i WHERE NOT EXISTS (SELECT 1 FROM stg s WHERE s.id = i.id)
        """, {**params, "now": now})
    if pairs:
        load_arrow(conn, "merge_pairs", pa.table({"old_id": pa.array([p[0] for p in pairs], pa.string()),
                                               "new_id": pa.array([p[1] for p in pairs], pa.string())}))
        postgres = conn.dialect.name != "duckdb"
        if postgres:  # wait for edits in flight, hold new ones back until the commit (see _claim_merged_...)
            x("SELECT id FROM transactions WHERE id IN (SELECT old_id FROM merge_pairs) FOR UPDATE")
        # The user's category, note and deletion follow the purchase to its posted row...
        x("""
            UPDATE transactions SET pending_id = m.old_id,
                user_category = COALESCE(transactions.user_category, o.user_category),
                note = COALESCE(transactions.note, o.note),
                deleted_at = COALESCE(transactions.deleted_at, o.deleted_at)
            FROM merge_pairs m JOIN transactions o ON o.id = m.old_id
            WHERE transactions.id = m.new_id
        """)
        if not postgres:
            _claim_merged_pending_rows(conn, now)  # ...as they are now, not as this apply first read them
        unload_arrow(conn, "merge_pairs")  # on failure, the rollback drops it (see apply_sync)
    if gone:
        x("DELETE FROM transactions WHERE id IN (SELECT id FROM gone)")
    _rebuild_balance_history(conn, accounts, now, today)
    for table in ("stg", "scope", "gone", "superseded", "repeats"):
        x(f"DROP TABLE IF EXISTS {table}")
    return ApplyCounts(added=int(added), modified=int(modified), removed=len(gone) - len(pairs), merged=len(pairs))


class EditedDuringSync(TransientError):
    """A pending row this apply merges was edited after the apply read it: nothing was saved, the edit is kept."""


EDITED_DURING_SYNC = ("A pending purchase this sync was merging into its posted transaction was edited while the "
                      "sync was saving, so nothing from this sync was saved and the edit is kept. Sync again: the "
                      "next sync carries the edit over to the posted transaction.")


def is_write_conflict(exc: BaseException) -> bool:
    """`exc` is a write that lost to another transaction's write of the same row, which a new transaction may
    retry: DuckDB's "Conflict on update", PostgreSQL's serialization failure or deadlock (SQLSTATE 40001, 40P01)."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state in ("40001", "40P01") or (type(orig).__name__ == "TransactionException"
                                           and "conflict" in str(orig).lower())


def _claim_merged_pending_rows(conn: sa.Connection, now: datetime) -> None:
    """Write the user columns of the pending rows in `merge_pairs`, so that an edit of them and this merge conflict.

    The copy to the posted rows reads the apply's snapshot, taken when its transaction began, and DuckDB's DELETE
    never conflicts with an UPDATE of the row it deletes. DuckDB does make the second writer of one column of one
    row fail ("Conflict on update"), whether the first has committed since the second's snapshot or not. So each
    user column of each merged pending row is changed (NULL to a value, a value to NULL: DuckDB does not reliably
    count a write of the value already there), just before the rows are deleted in this same transaction:
    - an edit committed since the apply began makes this write fail: the apply stops with EditedDuringSync and
      saves nothing (the edit stays on the pending row; the next sync carries it over);
    - an edit from now until the commit fails instead: the edit is retried and, once this apply has committed,
      follows the pending row to its posted row through `pending_id` (finance.store.explorer).
    On PostgreSQL, `_merge` runs `SELECT ... FROM transactions WHERE id IN (<old ids>) FOR UPDATE` before the copy
    instead, which does both jobs under READ COMMITTED without failing the apply: it waits for an edit in flight,
    the copy then reads the committed values, and edits are held back until the commit, after which they find
    the row gone and follow it to its posted row (finance.store.transactions, `_edit`).
    """
    try:
        conn.execute(sa.text("""
            UPDATE transactions SET user_category = CASE WHEN user_category IS NULL THEN '' END,
                note = CASE WHEN note IS NULL THEN '' END, deleted_at = CASE WHEN deleted_at IS NULL THEN :now END
            WHERE id IN (SELECT old_id FROM merge_pairs)
        """), {"now": now})
    except sa.exc.DBAPIError as exc:
        if is_write_conflict(exc):
            raise EditedDuringSync(EDITED_DURING_SYNC, code="EDITED_DURING_SYNC") from exc
        raise


def _rebuild_balance_history(conn: sa.Connection, accounts: list[Account], now: datetime, today: date) -> None:
    """Today's snapshot per account, and the days before it reconstructed from transactions."""
    ids = [a.id for a in accounts if a.current_balance is not None]
    if not ids:
        return
    daily: dict[str, dict[date, Decimal]] = defaultdict(dict)
    rows = conn.execute(sa.text(
        "SELECT account_id, booked_date, SUM(amount) AS net FROM transactions "
        "WHERE account_id IN :ids GROUP BY account_id, booked_date"
    ).bindparams(sa.bindparam("ids", expanding=True)), {"ids": ids})
    for row in rows:
        daily[row.account_id][row.booked_date] = Decimal(row.net)
    snapshot_days = {(r.account_id, r.day) for r in conn.execute(
        sa.select(balance_history.c.account_id, balance_history.c.day)
        .where(balance_history.c.account_id.in_(ids), balance_history.c.source == "snapshot"))}
    conn.execute(balance_history.delete().where(balance_history.c.account_id.in_(ids),
                                                (balance_history.c.source == "reconstructed")
                                                | (balance_history.c.day == today)))
    # Every account's history starts on the first day its connection has history: one without transactions (a loan,
    # an investment) keeps today's balance back to it, one whose rows begin later keeps its opening balance back to
    # it, so net worth over time never jumps on the day an account's own history happens to begin.
    active = [day for days in daily.values() for day in days if day <= today]
    connection_start = min(active) if active else None
    history: dict[str, list[object]] = {"account_id": [], "day": [], "balance": [], "currency": [], "source": []}
    for account in accounts:
        if account.current_balance is None:
            continue
        own = daily.get(account.id, {})
        for day, balance in reconstruct_balances(_money(account.current_balance) or Decimal(0), today, own,
                                                 start=connection_start):
            is_today = day == today
            if not is_today and (account.id, day) in snapshot_days:
                continue
            history["account_id"].append(account.id)
            history["day"].append(day)
            history["balance"].append(balance)
            history["currency"].append(account.currency)
            history["source"].append("snapshot" if is_today else "reconstructed")
    load_arrow(conn, "incoming_history", pa.table({
        "account_id": pa.array(history["account_id"], pa.string()), "day": pa.array(history["day"], pa.date32()),
        "balance": pa.array(history["balance"], MONEY), "currency": pa.array(history["currency"], pa.string()),
        "source": pa.array(history["source"], pa.string()),
    }))
    try:
        conn.exec_driver_sql("INSERT INTO balance_history (account_id, day, balance, currency, source) "
                             "SELECT account_id, day, balance, currency, source "
                             "FROM incoming_history")
    finally:
        unload_arrow(conn, "incoming_history")
