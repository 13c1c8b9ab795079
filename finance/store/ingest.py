"""Apply one sync's results to the store, inside the caller's database transaction.

Rows arrive as Arrow tables registered with DuckDB and are merged with set-based SQL: no row-by-row
inserts. User fields (category override, note, tombstone) are never overwritten by provider data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pyarrow as pa
import sqlalchemy as sa

from finance.balances import reconstruct_balances
from finance.dedupe import Candidate, pair_pending_with_posted
from finance.model import Account, ConnectionState, Transaction, TransactionChanges, stable_id
from finance.store.db import duckdb_connection
from finance.store.schema import accounts as accounts_t
from finance.store.schema import balance_history, connections

CENT = Decimal("0.01")
MONEY = pa.decimal128(18, 2)

# Provider-owned columns a re-sync may change; their change is what counts as "modified".
MATERIAL_COLUMNS = (
    "booked_date", "authorized_date", "amount", "currency", "original_amount", "original_currency",
    "description", "merchant", "category", "provider_category", "provider_category_id", "status",
    "payment_method", "installment_number", "installment_total",
)
STAGED_COLUMNS = (
    "id", "account_id", "connection_id", "provider", "external_id", *MATERIAL_COLUMNS, "pending_id",
    "provider_created_at",
)


@dataclass(frozen=True, slots=True)
class ApplyCounts:
    added: int = 0
    modified: int = 0
    removed: int = 0
    merged: int = 0


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def transactions_table(rows: list[Transaction], connection_id: str) -> pa.Table:
    """The staged rows as an Arrow table with the store's column names and types."""
    unique = {t.id: t for t in rows}  # a provider listing the same id twice is one row
    txns = list(unique.values())
    return pa.table({
        "id": pa.array([t.id for t in txns], pa.string()),
        "account_id": pa.array([t.account_id for t in txns], pa.string()),
        "connection_id": pa.array([connection_id] * len(txns), pa.string()),
        "provider": pa.array([t.provider for t in txns], pa.string()),
        "external_id": pa.array([t.external_id for t in txns], pa.string()),
        "booked_date": pa.array([t.booked_date for t in txns], pa.date32()),
        "authorized_date": pa.array([t.authorized_date for t in txns], pa.date32()),
        "amount": pa.array([_money(t.amount) for t in txns], MONEY),
        "currency": pa.array([t.currency for t in txns], pa.string()),
        "original_amount": pa.array([_money(t.original_amount) for t in txns], MONEY),
        "original_currency": pa.array([t.original_currency for t in txns], pa.string()),
        "description": pa.array([t.description for t in txns], pa.string()),
        "merchant": pa.array([t.merchant for t in txns], pa.string()),
        "category": pa.array([t.category for t in txns], pa.string()),
        "provider_category": pa.array([t.provider_category for t in txns], pa.string()),
        "provider_category_id": pa.array([t.provider_category_id for t in txns], pa.string()),
        "status": pa.array([t.status.value for t in txns], pa.string()),
        "payment_method": pa.array([t.payment_method for t in txns], pa.string()),
        "installment_number": pa.array([t.installment_number for t in txns], pa.int32()),
        "installment_total": pa.array([t.installment_total for t in txns], pa.int32()),
        "pending_id": pa.array([stable_id(t.provider, t.pending_external_id) if t.pending_external_id else None
                                for t in txns], pa.string()),
        "provider_created_at": pa.array([t.provider_created_at for t in txns], pa.timestamp("us", tz="UTC")),
    })


def upsert_connection(conn: sa.Connection, state: ConnectionState, *, now: datetime,
                      cursor: str | None = None, success: bool = False, owner: str | None = None) -> None:
    """Insert or refresh a connection row from the provider's view of it."""
    values = {
        "provider": state.provider, "external_id": state.external_id,
        "status": state.status.value, "provider_status": state.provider_status,
        "status_detail": state.status_detail, "error_code": state.error_code,
        "consent_expires_at": state.consent_expires_at, "last_attempt_at": now, "updated_at": now,
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


def _upsert_accounts(conn: sa.Connection, accounts: list[Account], now: datetime) -> None:
    for account in accounts:
        values = {
            "connection_id": account.connection_id, "provider": account.provider,
            "external_id": account.external_id, "type": account.type.value, "subtype": account.subtype,
            "name": account.name, "mask": account.mask, "currency": account.currency,
            "current_balance": _money(account.current_balance), "available_balance": _money(account.available_balance),
            "credit_limit": _money(account.credit_limit), "balance_as_of": account.balance_as_of or now,
            "last_seen_at": now,
        }
        updated = conn.execute(accounts_t.update().where(accounts_t.c.id == account.id).values(**values))
        if updated.rowcount == 0:
            conn.execute(accounts_t.insert().values(id=account.id, first_seen_at=now, **values))


def _distinct(a: str, b: str) -> str:
    return " OR ".join(f"{a}.{c} IS DISTINCT FROM {b}.{c}" for c in MATERIAL_COLUMNS)


def apply_sync(conn: sa.Connection, *, state: ConnectionState, accounts: list[Account],
               changes: TransactionChanges, now: datetime, today: date) -> ApplyCounts:
    """Merge one fetch into the store. Call inside a transaction: it is all or nothing with the caller's writes."""
    duck = duckdb_connection(conn)
    connection_id = state.id
    _upsert_accounts(conn, accounts, now)

    duck.register("incoming_txn", transactions_table(changes.upserts, connection_id))
    windows = pa.table({
        "account_id": pa.array([stable_id(state.provider, a) for a, _ in changes.windows], pa.string()),
        "start_date": pa.array([d for _, d in changes.windows], pa.date32()),
    })
    duck.register("incoming_windows", windows)
    duck.register("incoming_removed", pa.table({
        "id": pa.array([stable_id(state.provider, r) for r in changes.removed], pa.string())}))
    try:
        return _merge(conn, connection_id, accounts, now, today)
    finally:
        for view in ("incoming_txn", "incoming_windows", "incoming_removed"):
            duck.unregister(view)


def _merge(conn: sa.Connection, connection_id: str, accounts: list[Account], now: datetime,
           today: date) -> ApplyCounts:
    x = conn.exec_driver_sql
    x("CREATE OR REPLACE TEMP TABLE stg AS SELECT * FROM incoming_txn")
    # Rows the provider no longer lists: explicitly removed, or absent from an authoritative window.
    x("""
        CREATE OR REPLACE TEMP TABLE gone AS
        SELECT t.id, t.account_id, t.amount, t.booked_date, t.status, t.merchant, t.description
        FROM transactions t
        WHERE t.connection_id = $1
          AND NOT EXISTS (SELECT 1 FROM stg s WHERE s.id = t.id)
          AND (t.id IN (SELECT id FROM incoming_removed)
               OR EXISTS (SELECT 1 FROM incoming_windows w
                          WHERE w.account_id = t.account_id AND t.booked_date >= w.start_date))
    """, (connection_id,))
    is_new = "NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = s.id)"
    added = x(f"SELECT count(*) FROM stg s WHERE {is_new}").scalar_one()
    modified = x(f"SELECT count(*) FROM stg s JOIN transactions t ON t.id = s.id WHERE {_distinct('s', 't')}"
                 ).scalar_one()
    gone = x("SELECT id, account_id, amount, booked_date, status, merchant, description FROM gone").all()
    # Only new rows that could replace a vanished pending row come back to Python for pairing.
    candidates = x(f"""
        SELECT s.id, s.account_id, s.amount, s.booked_date, s.status, s.pending_id, s.merchant, s.description
        FROM stg s WHERE {is_new}
          AND (s.pending_id IN (SELECT id FROM gone)
               OR (s.status = 'posted' AND s.account_id IN (SELECT account_id FROM gone WHERE status = 'pending')))
    """).all() if gone else []

    # Pending → posted: the provider's explicit link first (Plaid), then a scored match (Pluggy).
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
    updates = ", ".join(f"{c} = s.{c}" for c in (*MATERIAL_COLUMNS, "provider_created_at"))
    x(f"""
        UPDATE transactions SET {updates}, pending_id = COALESCE(s.pending_id, transactions.pending_id)
        FROM stg s WHERE transactions.id = s.id AND ({_distinct('s', 'transactions')})
    """)
    x("UPDATE transactions SET last_seen_at = $1 WHERE id IN (SELECT id FROM stg)", (now,))
    x(f"INSERT INTO transactions ({columns}, first_seen_at, last_seen_at) "
      f"SELECT {columns}, $1, $1 FROM stg s WHERE {is_new}", (now,))
    if pairs:
        duck = duckdb_connection(conn)
        duck.register("merge_pairs", pa.table({"old_id": pa.array([p[0] for p in pairs], pa.string()),
                                               "new_id": pa.array([p[1] for p in pairs], pa.string())}))
        try:
            # The user's category, note and deletion follow the purchase to its posted row.
            x("""
                UPDATE transactions SET pending_id = m.old_id,
                    user_category = COALESCE(transactions.user_category, o.user_category),
                    note = COALESCE(transactions.note, o.note),
                    deleted_at = COALESCE(transactions.deleted_at, o.deleted_at)
                FROM merge_pairs m JOIN transactions o ON o.id = m.old_id
                WHERE transactions.id = m.new_id
            """)
        finally:
            duck.unregister("merge_pairs")
    x("DELETE FROM transactions WHERE id IN (SELECT id FROM gone)")
    _rebuild_balance_history(conn, accounts, now, today)
    x("DROP TABLE IF EXISTS stg")
    x("DROP TABLE IF EXISTS gone")
    return ApplyCounts(added=int(added), modified=int(modified), removed=len(gone) - len(pairs), merged=len(pairs))


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
    history: dict[str, list[object]] = {"account_id": [], "day": [], "balance": [], "currency": [], "source": []}
    for account in accounts:
        if account.current_balance is None:
            continue
        for day, balance in reconstruct_balances(_money(account.current_balance) or Decimal(0), today,
                                                 daily.get(account.id, {})):
            is_today = day == today
            if not is_today and (account.id, day) in snapshot_days:
                continue
            history["account_id"].append(account.id)
            history["day"].append(day)
            history["balance"].append(balance)
            history["currency"].append(account.currency)
            history["source"].append("snapshot" if is_today else "reconstructed")
    duck = duckdb_connection(conn)
    duck.register("incoming_history", pa.table({
        "account_id": pa.array(history["account_id"], pa.string()), "day": pa.array(history["day"], pa.date32()),
        "balance": pa.array(history["balance"], MONEY), "currency": pa.array(history["currency"], pa.string()),
        "source": pa.array(history["source"], pa.string()),
    }))
    try:
        conn.exec_driver_sql("INSERT INTO balance_history SELECT account_id, day, balance, currency, source "
                             "FROM incoming_history")
    finally:
        duck.unregister("incoming_history")
