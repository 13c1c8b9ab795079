"""`import_batches`, `import_mappings` and the imported rows of `transactions`: the SQL of file import.

An imported row is an ordinary transaction (categories, rules, reports and budgets read it like any other) with
provider 'import', connection 'import' and its batch in `import_batch_id`; the sync's removal of rows a provider no
longer lists is scoped to that provider's connection, so it never touches them. Undo deletes exactly the rows whose
`import_batch_id` is the batch's. Plain SQLAlchemy Core (DuckDB and PostgreSQL); rows are inserted set-based
(`_insert`), never one by one. A sync calls `replace_with_synced` in its transaction: the provider's row wins.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from finance.balances import reconstruct_balances
from finance.errors import EditError
from finance.i18n import _, format_timestamp
from finance.imports.matching import DATE_WINDOW, Incoming, Stored, Verdict, place
from finance.model import MONEY
from finance.store import audit
from finance.store.accounts import MANUAL_PROVIDER
from finance.store.db import duckdb_connection, frame
from finance.store.schema import (
    accounts,
    balance_history,
    import_batches,
    import_mappings,
    import_reviews,
    transactions,
)

IMPORT_PROVIDER = "import"
"""`transactions.provider` and `connection_id` of imported rows."""
CHUNK = 1_000
_ARROW_TYPES = {"amount": MONEY, "balance": MONEY, "booked_date": pa.date32(), "day": pa.date32(),
                "first_seen_at": pa.timestamp("us", tz="UTC"), "last_seen_at": pa.timestamp("us", tz="UTC")}


@dataclass(frozen=True, slots=True)
class NewRow:
    """An imported transaction to insert."""

    id: str
    key: str
    booked_date: date
    amount: Decimal
    description: str


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` set-based: on DuckDB as one INSERT … SELECT from an Arrow table (its multi-row VALUES binds
    every parameter one by one: 80 s for 50,000 rows), elsewhere as executemany (batched multi-row VALUES)."""
    if not rows:
        return
    if conn.dialect.name != "duckdb":
        conn.execute(table.insert(), rows)
        return
    names = list(rows[0])
    arrow = pa.table({name: pa.array([row[name] for row in rows], _ARROW_TYPES.get(name)) for name in names})
    duck = duckdb_connection(conn)
    duck.register("import_rows", arrow)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(names)} FROM import_rows")
    duck.unregister("import_rows")  # after success only: on failure the rollback drops it (as in ingest.apply_sync)


def row_id(account_id: str, key: str) -> str:
    """The transaction id of the file row `key` in this account: the same row imported again gets the same id."""
    return "import:" + hashlib.sha256(f"{account_id}\x00{key}".encode()).hexdigest()[:32]


def account(conn: sa.Connection, account_id: str) -> sa.Row[Any] | None:
    return conn.execute(sa.select(accounts.c.id, accounts.c.name, accounts.c.currency, accounts.c.type,
                                  accounts.c.provider, accounts.c.current_balance, accounts.c.balance_as_of)
                        .where(accounts.c.id == account_id)).first()


def create_manual_account(conn: sa.Connection, *, name: str, currency: str, type_: str, actor: str,
                          now: datetime, balance: Decimal | None = None) -> str:
    """A new account of no connection, for a bank no aggregator reaches (validated by the caller)."""
    external = uuid.uuid4().hex
    account_id = f"{MANUAL_PROVIDER}:{external}"
    conn.execute(accounts.insert().values(
        id=account_id, connection_id=MANUAL_PROVIDER, provider=MANUAL_PROVIDER, external_id=external, type=type_,
        name=name, currency=currency, current_balance=balance, balance_as_of=now if balance is not None else None,
        first_seen_at=now, last_seen_at=now))
    audit.record(conn, actor=actor, action="account.create", object_id=account_id,
                 detail={"name": name, "currency": currency, "type": type_, "balance": balance}, now=now)
    return account_id


def stored_rows(conn: sa.Connection, account_id: str, start: date, end: date, ids: Iterable[str]) -> list[Stored]:
    """The account's rows that a file spanning start..end could repeat: booked within DATE_WINDOW days of it, or
    imported before under one of `ids` (deleted rows too: a row the user deleted stays deleted, it is not brought
    back by a file). One scan of the account's rows."""
    window = timedelta(days=DATE_WINDOW)
    low, high = start - window, end + window
    rows = conn.execute(sa.select(transactions.c.id, transactions.c.booked_date, transactions.c.amount,
                                  transactions.c.description, transactions.c.import_batch_id).where(
        transactions.c.account_id == account_id,
        transactions.c.booked_date.between(low, high) | transactions.c.import_batch_id.is_not(None))).all()
    wanted = set(ids)
    return [Stored(r.id, r.booked_date, Decimal(r.amount), r.description, r.import_batch_id is not None)
            for r in rows if low <= r.booked_date <= high or r.id in wanted]


def save_import(conn: sa.Connection, *, batch: dict[str, Any], account_row: sa.Row[Any], rows: list[NewRow],
                actor: str, now: datetime) -> None:
    """Insert the batch and its rows (set-based) with its audit row, in the caller's transaction."""
    conn.execute(import_batches.insert().values(**batch, imported_at=now, actor=actor))
    _insert(conn, transactions, [{
        "id": r.id, "account_id": account_row.id, "connection_id": IMPORT_PROVIDER, "provider": IMPORT_PROVIDER,
        "external_id": r.key, "booked_date": r.booked_date, "amount": r.amount, "currency": account_row.currency,
        "description": r.description, "merchant": r.description, "category": "uncategorized",
        "status": "posted", "first_seen_at": now, "last_seen_at": now, "import_batch_id": batch["id"],
    } for r in rows])
    audit.record(conn, actor=actor, action="import.add", object_id=batch["id"],
                 detail={k: batch[k] for k in ("account_id", "file_name", "kind", "added", "duplicates",
                                               "already_imported", "ambiguous_kept", "ambiguous_skipped")}, now=now)


def set_import_balance(conn: sa.Connection, batch_id: str, account_id: str, day: date, balance: Decimal) -> None:
    """A manual account without a balance takes the file's closing balance (undo clears it again)."""
    as_of = datetime.combine(day, time(23, 59, 59), UTC)
    conn.execute(accounts.update().where(accounts.c.id == account_id, accounts.c.current_balance.is_(None))
                 .values(current_balance=balance, balance_as_of=as_of))
    conn.execute(import_batches.update().where(import_batches.c.id == batch_id)
                 .values(set_balance=balance, set_balance_as_of=as_of))


def undo_import(conn: sa.Connection, batch_id: str, *, actor: str, now: datetime) -> tuple[str, int]:
    """Delete every row the batch added (and nothing else) and mark it undone; (account id, rows removed).
    EditError when there is no such import or it was undone already."""
    batch = conn.execute(sa.select(import_batches).where(import_batches.c.id == batch_id)).first()
    if batch is None:
        raise EditError(_("There is no such import. Nothing was changed."))
    if batch.undone_at is not None:
        raise EditError(_("This import was undone already, on {when}. Nothing was changed.").format(
            when=format_timestamp(batch.undone_at)))
    conn.execute(import_reviews.delete().where(import_reviews.c.transaction_id.in_(
        sa.select(transactions.c.id).where(transactions.c.import_batch_id == batch_id))))
    removed = conn.execute(transactions.delete().where(transactions.c.import_batch_id == batch_id)).rowcount
    if batch.set_balance is not None:  # the balance this import gave a manual account, unless changed since
        conn.execute(accounts.update().where(
            accounts.c.id == batch.account_id, accounts.c.current_balance == batch.set_balance,
            accounts.c.balance_as_of == batch.set_balance_as_of).values(current_balance=None, balance_as_of=None))
        conn.execute(balance_history.delete().where(balance_history.c.account_id == batch.account_id))
    conn.execute(import_batches.update().where(import_batches.c.id == batch_id).values(undone_at=now))
    audit.record(conn, actor=actor, action="import.undo", object_id=batch_id,
                 detail={"account_id": batch.account_id, "file_name": batch.file_name, "removed": removed}, now=now)
    return batch.account_id, int(removed)


def import_history(conn: sa.Connection) -> pd.DataFrame:
    """Every import, newest first, with its account's name and the rows it still has."""
    return frame(conn, """
        SELECT b.id, b.imported_at, b.file_name, b.kind, b.account_id, a.name AS account, b.rows_in_file, b.added,
               b.duplicates, b.already_imported, b.ambiguous_kept, b.ambiguous_skipped, b.first_date, b.last_date,
               b.undone_at, b.actor,
               (SELECT COUNT(*) FROM transactions t WHERE t.import_batch_id = b.id) AS rows_now
        FROM import_batches b LEFT JOIN accounts a ON a.id = b.account_id
        ORDER BY b.imported_at DESC, b.id
    """)


def saved_mapping(conn: sa.Connection, account_id: str, headers: list[str]) -> str | None:
    """The mapping (JSON) saved for this account when its file has the same header row; else one saved for another
    account whose file had exactly these headers (the same bank's export), newest first."""
    encoded = json.dumps(headers, ensure_ascii=False)
    rows = conn.execute(sa.select(import_mappings.c.account_id, import_mappings.c.mapping).where(
        import_mappings.c.headers == encoded).order_by(import_mappings.c.updated_at.desc())).all()
    own = [r.mapping for r in rows if r.account_id == account_id]
    return (own or [r.mapping for r in rows] or [None])[0]


def save_mapping(conn: sa.Connection, account_id: str, headers: list[str], mapping: str, now: datetime) -> None:
    """Keep the account's mapping for next time (one per account: the latest confirmed)."""
    conn.execute(import_mappings.delete().where(import_mappings.c.account_id == account_id))
    conn.execute(import_mappings.insert().values(account_id=account_id, mapping=mapping, updated_at=now,
                                                 headers=json.dumps(headers, ensure_ascii=False)))


def refresh_balance_history(conn: sa.Connection, account_id: str, today: date) -> None:
    """Rebuild the account's reconstructed end-of-day balances from its balance and all its rows (imported history
    included), as a sync does: snapshot days are kept; an account without a balance has no history to rebuild."""
    row = account(conn, account_id)
    if row is None or row.current_balance is None:
        return
    as_of = min(row.balance_as_of.date(), today) if row.balance_as_of else today
    daily: dict[date, Decimal] = defaultdict(Decimal)
    for day, net in conn.execute(sa.select(transactions.c.booked_date, sa.func.sum(transactions.c.amount))
                                 .where(transactions.c.account_id == account_id)
                                 .group_by(transactions.c.booked_date)):
        daily[day] += Decimal(net)
    snapshots = {d for (d,) in conn.execute(sa.select(balance_history.c.day).where(
        balance_history.c.account_id == account_id, balance_history.c.source == "snapshot"))}
    conn.execute(balance_history.delete().where(balance_history.c.account_id == account_id,
                                                balance_history.c.source == "reconstructed"))
    _insert(conn, balance_history, [
        {"account_id": account_id, "day": day, "balance": balance, "currency": row.currency,
         "source": "snapshot" if day == as_of else "reconstructed"}
        for day, balance in reconstruct_balances(Decimal(row.current_balance), as_of, daily) if day not in snapshots])


def replace_with_synced(conn: sa.Connection, account_ids: list[str], since: datetime, today: date) -> int:
    """After a sync, in its transaction: an imported row that a row the sync just brought (first seen at or after
    `since`) describes is removed — the provider's row wins — and the user's category, note and deletion move to
    that row (where it has none). Pairs as at import (finance.imports.matching); an unlike description is left
    alone (both rows stay). The accounts' balance history is rebuilt without the replaced rows. Returns how many
    imported rows were replaced."""
    if not account_ids:
        return 0
    columns = (transactions.c.id, transactions.c.account_id, transactions.c.booked_date, transactions.c.amount,
               transactions.c.description)
    imported = conn.execute(sa.select(*columns).where(transactions.c.account_id.in_(account_ids),
                                                      transactions.c.import_batch_id.is_not(None))).all()
    if not imported:
        return 0
    window = timedelta(days=DATE_WINDOW)
    fresh = conn.execute(sa.select(*columns).where(
        transactions.c.account_id.in_({r.account_id for r in imported}), transactions.c.import_batch_id.is_(None),
        transactions.c.first_seen_at >= since,
        transactions.c.booked_date.between(min(r.booked_date for r in imported) - window,
                                           max(r.booked_date for r in imported) + window))).all()
    pairs: list[tuple[str, str]] = []
    for account_id in {r.account_id for r in fresh}:
        mine = [r for r in imported if r.account_id == account_id]
        theirs = [Stored(r.id, r.booked_date, Decimal(r.amount), r.description, False)
                  for r in fresh if r.account_id == account_id]
        placements = place([Incoming(r.id, r.booked_date, Decimal(r.amount), r.description) for r in mine], theirs)
        pairs += [(row.id, p.match.id) for row, p in zip(mine, placements, strict=True)
                  if p.verdict is Verdict.DUPLICATE and p.match is not None]
    if not pairs:
        return 0
    old = transactions.alias("old")
    for field in ("user_category", "note", "deleted_at"):
        carried = sa.select(old.c[field]).where(old.c.id == sa.bindparam("imported")).scalar_subquery()
        conn.execute(transactions.update().where(transactions.c.id == sa.bindparam("synced"),
                                                 transactions.c[field].is_(None)).values({field: carried}),
                     [{"imported": i, "synced": s} for i, s in pairs])
    for chunk in range(0, len(pairs), CHUNK):
        gone = [imported_id for imported_id, _synced in pairs[chunk:chunk + CHUNK]]
        conn.execute(transactions.delete().where(transactions.c.id.in_(gone)))
    for account_id in {r.account_id for r in imported if r.id in {i for i, _synced in pairs}}:
        refresh_balance_history(conn, account_id, today)
    return len(pairs)


def overlaps(conn: sa.Connection) -> list[sa.Row[Any]]:
    """Imported rows that a row synced after their import may repeat — same account and amount, booked within
    DATE_WINDOW days — unless the user kept them already; oldest first. (A sync replaces the ones whose descriptions
    are alike, so these are the pairs whose descriptions differ: the user decides.)"""
    imported, synced = transactions.alias("i"), transactions.alias("s")
    window = sa.literal(DATE_WINDOW, sa.Integer)
    return conn.execute(sa.select(
        imported.c.id, imported.c.account_id, imported.c.booked_date, imported.c.amount, imported.c.currency,
        imported.c.description, synced.c.id.label("synced_id"), synced.c.booked_date.label("synced_date"),
        synced.c.description.label("synced_description"),
    ).select_from(imported.join(import_batches, import_batches.c.id == imported.c.import_batch_id).join(
        synced, (synced.c.account_id == imported.c.account_id) & (synced.c.amount == imported.c.amount)
        & synced.c.import_batch_id.is_(None) & (synced.c.first_seen_at > import_batches.c.imported_at)
        & synced.c.booked_date.between(imported.c.booked_date - window, imported.c.booked_date + window)
    )).where(
        imported.c.deleted_at.is_(None), synced.c.deleted_at.is_(None),
        ~sa.exists().where(import_reviews.c.transaction_id == imported.c.id),
    ).order_by(imported.c.booked_date, imported.c.id, synced.c.id)).all()


def _imported_row(conn: sa.Connection, transaction_id: str) -> sa.Row[Any]:
    row = conn.execute(sa.select(transactions.c.id, transactions.c.account_id, transactions.c.description,
                                 transactions.c.import_batch_id).where(transactions.c.id == transaction_id)).first()
    if row is None or row.import_batch_id is None:
        raise EditError(_("That is not an imported transaction (it may have been removed already). Nothing was "
                          "changed."))

    return row


def keep_both(conn: sa.Connection, transaction_id: str, synced_id: str, *, actor: str, now: datetime) -> None:
    """The user says the imported row and the synced one are two transactions: stop asking."""
    _imported_row(conn, transaction_id)
    conn.execute(import_reviews.delete().where(import_reviews.c.transaction_id == transaction_id))
    conn.execute(import_reviews.insert().values(transaction_id=transaction_id, synced_id=synced_id,
                                                decided_at=now, actor=actor))
    audit.record(conn, actor=actor, action="import.keep_both", object_id=transaction_id,
                 detail={"synced_id": synced_id}, now=now)


def remove_imported(conn: sa.Connection, transaction_id: str, *, actor: str, now: datetime) -> str:
    """Delete one imported row the user says a synced row repeats; returns its account id."""
    row = _imported_row(conn, transaction_id)
    conn.execute(transactions.delete().where(transactions.c.id == transaction_id))
    audit.record(conn, actor=actor, action="import.remove_row", object_id=transaction_id,
                 detail={"batch": row.import_batch_id, "description": row.description}, now=now)
    return str(row.account_id)
