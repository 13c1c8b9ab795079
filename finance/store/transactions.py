"""`transactions`: the filtered and paged reads of the Transactions page, per-currency totals, exports, the filter
options, and the user's edits.

Reads filter, sort and page in SQL with bound parameters only: the WHERE clause is assembled from fixed
fragments, and every value the user typed travels as a parameter (free text as ILIKE with `%`, `_` and `\\`
escaped). Nothing here reads `connections.encrypted_secret` or `sync_cursor`.

Category rules ("every transaction from this merchant is X") are resolved when reading, not copied into rows.
The effective category of a transaction is

    COALESCE(user_category, <the category of the rule for its merchant>, category)

so a category the user set on one row always wins over a rule; a rule covers past rows and every row a later
sync brings without the sync engine doing anything; changing or deleting a rule takes effect everywhere at
once; and `user_category` only ever holds what the user chose for that very row (the rules themselves live in
finance.store.rules). `EFFECTIVE_TRANSACTIONS` is `transactions` plus `effective_category`, `category_source`
(user, rule, provider) and `rule_category`: use it as `FROM {EFFECTIVE_TRANSACTIONS} t` in any query that needs
the category (a join, ~4 ms at a million rows).

Every edit runs in one database transaction together with its `audit_log` row; bad input raises `EditError`
and changes nothing. An edit of a pending row that a sync is merging into its posted row waits for the sync
and lands on the posted row (see `_edit`).
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa

from finance.errors import EditError
from finance.filters import TransactionFilter
from finance.store import audit
from finance.store.db import frame
from finance.store.ingest import is_write_conflict
from finance.store.rules import RULES_IN_FORCE, category_name, save_rule

# `transactions` with the category the user sees: their own choice, else the merchant's rule, else the provider's;
# an account continued by a newer connection's (a reconnect) keeps only its rows from before the new one's begin
# (a LEFT JOIN: a NOT EXISTS there costs DuckDB its top-N and 10x on a page of the newest rows).
EFFECTIVE_TRANSACTIONS = f"""(
    SELECT tx.*, rl.category AS rule_category,
           COALESCE(tx.user_category, rl.category, tx.category) AS effective_category,
           CASE WHEN tx.user_category IS NOT NULL THEN 'user'
                WHEN rl.category IS NOT NULL THEN 'rule' ELSE 'provider' END AS category_source
    FROM transactions tx LEFT JOIN {RULES_IN_FORCE} rl ON rl.merchant = tx.merchant
    LEFT JOIN account_links lk ON lk.old_account_id = tx.account_id
    WHERE lk.since IS NULL OR tx.booked_date < lk.since)"""

MAX_NOTE_LENGTH = 500
MAX_SEARCH_WORDS = 8
STATUSES = ("pending", "posted")
EDIT_WAIT_SECONDS = 15.0
"""How long an edit waits for a sync that is merging its row to commit (a merge of a big sync takes seconds)."""
SYNC_BUSY = "A sync is saving this transaction right now. Nothing was changed; try again in a moment."
POSTED = "This pending purchase has posted, so the change was made on the posted transaction. "

_ORDER = "t.booked_date DESC, t.provider_created_at DESC NULLS LAST, t.id DESC"


@dataclass(frozen=True, slots=True)
class TransactionPage:
    rows: pd.DataFrame  # one page, newest first; columns as in `transaction_page`
    total: int  # rows in the whole filtered view
    totals: pd.DataFrame  # per currency: transactions, deleted, money_in, money_out, net (deleted rows excluded)
    offset: int
    limit: int


# --------------------------------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------------------------------

def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE/ILIKE pattern with ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(f: TransactionFilter) -> tuple[str, dict[str, Any], list[str]]:
    """The WHERE clause (fixed fragments only), its parameters, and which of them are lists."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    lists: list[str] = []
    if not f.include_deleted:
        clauses.append("t.deleted_at IS NULL")
    if f.start is not None:
        clauses.append("t.booked_date >= :start")
        params["start"] = f.start
    if f.end is not None:
        clauses.append("t.booked_date <= :end")
        params["end"] = f.end
    if f.account_ids:
        clauses.append("t.account_id IN :account_ids")
        params["account_ids"] = list(f.account_ids)
        lists.append("account_ids")
    if f.statuses:
        unknown = set(f.statuses) - set(STATUSES)
        if unknown:
            raise ValueError(f"Unknown status: {', '.join(sorted(unknown))}")
        clauses.append("t.status IN :statuses")
        params["statuses"] = list(f.statuses)
        lists.append("statuses")
    if f.categories:
        clauses.append("t.effective_category IN (SELECT k.id FROM categories k "
                       "WHERE k.id IN :categories OR k.parent_id IN :parent_categories)")
        params["categories"] = params["parent_categories"] = list(f.categories)
        lists += ["categories", "parent_categories"]
    if f.direction == "in":
        clauses.append("t.amount > 0")
    elif f.direction == "out":
        clauses.append("t.amount < 0")
    elif f.direction is not None:
        raise ValueError(f"direction must be 'in', 'out' or None, not {f.direction!r}")
    if f.min_amount is not None:
        clauses.append("ABS(t.amount) >= :min_amount")
        params["min_amount"] = Decimal(str(f.min_amount))
    if f.max_amount is not None:
        clauses.append("ABS(t.amount) <= :max_amount")
        params["max_amount"] = Decimal(str(f.max_amount))
    for i, word in enumerate(f.text.split()[:MAX_SEARCH_WORDS]):
        name = f"text_{i}"  # a parameter name from a counter; the word itself is bound
        either = " OR ".join(f"t.{column} ILIKE :{name} ESCAPE '\\'" for column in ("description", "merchant", "note"))
        clauses.append(f"({either})")
        params[name] = f"%{escape_like(word)}%"
    return (" AND ".join(clauses) or "TRUE"), params, lists


def _statement(sql: str, lists: Iterable[str]) -> sa.TextClause:
    return sa.text(sql).bindparams(*(sa.bindparam(name, expanding=True) for name in lists))


def transaction_page(conn: sa.Connection, filters: TransactionFilter, *, limit: int = 50,
                     offset: int = 0) -> TransactionPage:
    """One page of the filtered view (newest first), the view's row count, and its totals per currency."""
    if limit < 1 or offset < 0:
        raise ValueError("limit must be positive and offset not negative")
    where, params, lists = _where(filters)
    # Sort and page on a narrow row (the sort key and id), then fetch the page's rows: deep pages stay cheap.
    rows = frame(conn, _statement(f"""
        WITH hits AS (
            SELECT t.id, t.booked_date, t.provider_created_at
            FROM {EFFECTIVE_TRANSACTIONS} t
            WHERE {where}
            ORDER BY {_ORDER}
            LIMIT :limit OFFSET :offset
        )
        SELECT t.id, t.booked_date, t.authorized_date, t.account_id, a.name AS account_name, a.mask AS account_mask,
               a.type AS account_type, c.institution_name AS institution, t.description, t.merchant, t.amount,
               t.currency, t.original_amount, t.original_currency, t.status, t.payment_method,
               t.installment_number, t.installment_total, t.effective_category AS category,
               k.name AS category_name, t.category_source, t.category AS provider_category, t.user_category,
               t.rule_category, t.note, t.deleted_at
        FROM hits h
        JOIN {EFFECTIVE_TRANSACTIONS} t ON t.id = h.id
        LEFT JOIN accounts a ON a.id = t.account_id
        LEFT JOIN connections c ON c.id = a.connection_id
        LEFT JOIN categories k ON k.id = t.effective_category
        ORDER BY {_ORDER}
    """, lists), params | {"limit": limit, "offset": offset})
    totals = frame(conn, _statement(f"""
        SELECT t.currency, COUNT(*) AS transactions,
               COUNT(t.deleted_at) AS deleted,
               COALESCE(SUM(CASE WHEN t.deleted_at IS NULL AND t.amount > 0 THEN t.amount END), 0) AS money_in,
               -COALESCE(SUM(CASE WHEN t.deleted_at IS NULL AND t.amount < 0 THEN t.amount END), 0) AS money_out,
               COALESCE(SUM(CASE WHEN t.deleted_at IS NULL THEN t.amount END), 0) AS net
        FROM {EFFECTIVE_TRANSACTIONS} t
        WHERE {where}
        GROUP BY t.currency ORDER BY t.currency
    """, lists), params)
    return TransactionPage(rows=rows, total=int(totals["transactions"].sum()) if not totals.empty else 0,
                           totals=totals, offset=offset, limit=limit)


EXPORT_COLUMNS = (
    "id", "booked_date", "authorized_date", "institution", "account_id", "account", "account_type", "description",
    "merchant", "amount", "currency", "original_amount", "original_currency", "status", "category",
    "category_name", "category_source", "provider_category", "payment_method", "installment_number",
    "installment_total", "pending_id", "note", "deleted_at",
)


def export_table(conn: sa.Connection, filters: TransactionFilter) -> pa.Table:
    """The whole filtered view (not one page) as an Arrow table, newest first. No connection secrets."""
    where, params, lists = _where(filters)
    result = conn.execute(_statement(f"""
        SELECT t.id, t.booked_date, t.authorized_date, c.institution_name AS institution, t.account_id,
               a.name AS account, a.type AS account_type, t.description, t.merchant, t.amount, t.currency,
               t.original_amount, t.original_currency, t.status, t.effective_category AS category,
               k.name AS category_name, t.category_source, t.provider_category, t.payment_method,
               t.installment_number, t.installment_total, t.pending_id, t.note, t.deleted_at
        FROM {EFFECTIVE_TRANSACTIONS} t
        LEFT JOIN accounts a ON a.id = t.account_id
        LEFT JOIN connections c ON c.id = a.connection_id
        LEFT JOIN categories k ON k.id = t.effective_category
        WHERE {where}
        ORDER BY {_ORDER}
    """, lists), params)
    if conn.dialect.name == "duckdb":  # columnar straight from DuckDB: about a second for a million rows
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
            return result.cursor.to_arrow_table()
    return pa.Table.from_pylist([dict(row._mapping) for row in result])


def to_csv(table: pa.Table) -> bytes:
    """CSV (UTF-8, header row, ISO dates, amounts with a dot) built in memory."""
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink)
    return sink.getvalue()


def to_parquet(table: pa.Table) -> bytes:
    """Parquet (amounts as DECIMAL(18,2)) built in memory: no file is written on the server."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def category_options(conn: sa.Connection) -> pd.DataFrame:
    """Every category with a readable label ("Food and drink › Groceries"), parents before their children."""
    return frame(conn, """
        SELECT k.id, k.name, k.kind, k.parent_id,
               CASE WHEN p.name IS NULL THEN k.name ELSE p.name || ' › ' || k.name END AS label
        FROM categories k LEFT JOIN categories p ON p.id = k.parent_id
        ORDER BY k.id
    """)


def account_options(conn: sa.Connection) -> pd.DataFrame:
    """Accounts that have transactions, labelled "Institution · Name ••1234 (BRL)"."""
    options = frame(conn, """
        SELECT a.id, c.institution_name AS institution, a.name, a.mask, a.type, a.currency
        FROM accounts a LEFT JOIN connections c ON c.id = a.connection_id
        ORDER BY c.institution_name, a.type, a.name
    """)
    options["label"] = [f"{i if isinstance(i, str) else '?'} · {n}{f' ••{m}' if isinstance(m, str) and m else ''} ({c})"
                        for i, n, m, c in zip(options["institution"], options["name"], options["mask"],
                                              options["currency"], strict=True)]
    return options


def transaction_date_range(conn: sa.Connection) -> tuple[date | None, date | None]:
    """The first and last booked date of the live transactions (None, None without any)."""
    row = conn.execute(sa.text(
        "SELECT MIN(booked_date), MAX(booked_date) FROM transactions t WHERE t.deleted_at IS NULL")).one()
    return row[0], row[1]


# --------------------------------------------------------------------------------------------------------------------
# Edits: one database transaction each, with its audit_log rows
# --------------------------------------------------------------------------------------------------------------------

def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _transaction(conn: sa.Connection, transaction_id: str) -> sa.Row[Any]:
    """The row to edit: the transaction, or the posted row a sync merged it into (`followed_from` says so)."""
    row = conn.execute(sa.text(f"""
        SELECT t.id, t.merchant, t.user_category, t.effective_category, t.note, t.deleted_at,
               CASE WHEN t.id <> :id THEN :id END AS followed_from
        FROM {EFFECTIVE_TRANSACTIONS} t WHERE t.id = :id OR t.pending_id = :id
        ORDER BY t.id = :id DESC, t.id LIMIT 1
    """), {"id": transaction_id}).first()
    if row is None:
        raise EditError("That transaction no longer exists (a sync may have removed it). Nothing was changed.")
    return row


def _edit(engine: sa.Engine, transaction_id: str, change: Callable[[sa.Connection, sa.Row[Any]], str | None],
          unchanged: str) -> str:
    """Apply `change` to the transaction's row in one database transaction; the sentence for the user.

    A sync merging a pending row writes the row's user columns before deleting it (finance.store.ingest,
    `_claim_merged_pending_rows`), so an edit of it while that merge is uncommitted, or committed since this
    edit's transaction began, fails with a write conflict instead of being saved onto a row that disappears. The
    edit is then retried in a new transaction (for up to EDIT_WAIT_SECONDS; then SYNC_BUSY): once the merge has
    committed, `_transaction` follows the pending row to its posted row through `pending_id`, and the edit is
    made there. On PostgreSQL the merge locks the pending rows (`FOR UPDATE`): the edit locks its row first,
    waiting up to EDIT_WAIT_SECONDS (lock_timeout), and once the merge has committed its next statement reads the
    posted row.
    """
    deadline, delay = time.monotonic() + EDIT_WAIT_SECONDS, 0.02
    while True:
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                    conn.execute(sa.text("SELECT id FROM transactions WHERE id = :id FOR UPDATE"),
                                 {"id": transaction_id})
                row = _transaction(conn, transaction_id)
                message = change(conn, row) or unchanged
            return POSTED + message if row.followed_from else message
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # PostgreSQL: the merge held the row past lock_timeout
                raise EditError(SYNC_BUSY) from None
            if not is_write_conflict(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise EditError(SYNC_BUSY) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _row_detail(row: sa.Row[Any], detail: dict[str, Any]) -> dict[str, Any]:
    """An audit detail of an edit of `row`, naming the pending row the user edited when it had posted."""
    return detail | {"pending_id": row.followed_from} if row.followed_from else detail


def _clean_note(note: str | None) -> str | None:
    text = (note or "").strip()
    if len(text) > MAX_NOTE_LENGTH:
        raise EditError(f"A note can have at most {MAX_NOTE_LENGTH} characters (this one has {len(text)}). "
                        "Nothing was changed.")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise EditError("The note contains control characters. Nothing was changed.")
    return text or None


def _apply_category(conn: sa.Connection, row: sa.Row[Any], category: str | None, *, as_rule: bool, actor: str,
                    now: datetime) -> str | None:
    """Set (None: clear) the row's own category, or turn it into its merchant's rule. None when nothing changed."""
    if as_rule:
        if category is None:
            raise EditError("Choose the category the rule should give. Nothing was changed.")
        if not (row.merchant or "").strip():
            raise EditError("This transaction has no merchant, so no rule can match it: change only this "
                            "transaction instead. Nothing was changed.")
        category_name(conn, category)  # validate before touching the row
        if row.user_category is not None:  # this row now follows the rule like the merchant's other rows
            conn.execute(sa.text("UPDATE transactions SET user_category = NULL WHERE id = :id"), {"id": row.id})
            audit.record(conn, actor=actor, action="set_category", object_id=row.id, now=now, detail=_row_detail(
                row, {"from": row.user_category, "to": None, "reason": "follows the merchant's rule"}))
        return save_rule(conn, row.merchant, category, actor=actor, now=now, from_transaction=row.id)
    name = category_name(conn, category) if category is not None else None
    if row.user_category == category:
        return None
    conn.execute(sa.text("UPDATE transactions SET user_category = :c WHERE id = :id"), {"c": category, "id": row.id})
    audit.record(conn, actor=actor, action="set_category", object_id=row.id,
                 detail=_row_detail(row, {"from": row.user_category, "to": category}), now=now)
    return f"Category set to {name}." if name else "Your category was removed: the rule's or the bank's applies."


def _apply_note(conn: sa.Connection, row: sa.Row[Any], note: str | None, *, actor: str, now: datetime) -> str | None:
    if row.note == note:
        return None
    conn.execute(sa.text("UPDATE transactions SET note = :note WHERE id = :id"), {"note": note, "id": row.id})
    audit.record(conn, actor=actor, action="set_note", object_id=row.id,
                 detail=_row_detail(row, {"from": row.note, "to": note}), now=now)
    return "Note saved." if note else "Note removed."


def set_category(engine: sa.Engine, transaction_id: str, category: str | None, *, as_rule: bool = False,
                 actor: str = audit.DEFAULT_ACTOR, now: datetime | None = None) -> str:
    """Set the user's own category of one transaction (None removes it), or with `as_rule` make it the rule for
    the transaction's merchant: the rule is created or replaced, this row's own category is cleared so it
    follows the rule, and rows where the user chose a category keep theirs. Returns a sentence for the user."""
    category = (category or "").strip() or None
    moment = _now(now)
    return _edit(engine, transaction_id, lambda conn, row: _apply_category(
        conn, row, category, as_rule=as_rule, actor=actor, now=moment), "The category is unchanged.")


def set_note(engine: sa.Engine, transaction_id: str, note: str | None, *, actor: str = audit.DEFAULT_ACTOR,
             now: datetime | None = None) -> str:
    """Set the note of one transaction (blank removes it); at most MAX_NOTE_LENGTH characters."""
    value = _clean_note(note)
    moment = _now(now)
    return _edit(engine, transaction_id, lambda conn, row: _apply_note(conn, row, value, actor=actor, now=moment),
                 "The note is unchanged.")


def save_edits(engine: sa.Engine, transaction_id: str, *, category: str, note: str | None, as_rule: bool = False,
               actor: str = audit.DEFAULT_ACTOR, now: datetime | None = None) -> str:
    """What the edit form holds, in one transaction: the category the row should show (a change becomes the
    user's own category, or with `as_rule` the merchant's rule) and its note. Only what differs is written."""
    value = _clean_note(note)
    category = (category or "").strip()
    if not category:
        raise EditError("Choose a category. Nothing was changed.")
    moment = _now(now)

    def change(conn: sa.Connection, row: sa.Row[Any]) -> str:
        messages = []
        if as_rule or category != row.effective_category:
            messages.append(_apply_category(conn, row, category, as_rule=as_rule, actor=actor, now=moment))
        messages.append(_apply_note(conn, row, value, actor=actor, now=moment))
        return " ".join(m for m in messages if m)

    return _edit(engine, transaction_id, change, "Nothing to save: the category and note are unchanged.")


def delete_transaction(engine: sa.Engine, transaction_id: str, *, actor: str = audit.DEFAULT_ACTOR,
                       now: datetime | None = None) -> str:
    """Tombstone a transaction: hidden from every view and report, and no re-sync brings it back."""
    moment = _now(now)

    def change(conn: sa.Connection, row: sa.Row[Any]) -> str:
        if row.deleted_at is not None:
            raise EditError("This transaction is already deleted. Nothing was changed.")
        conn.execute(sa.text("UPDATE transactions SET deleted_at = :now WHERE id = :id"), {"now": moment, "id": row.id})
        audit.record(conn, actor=actor, action="delete", object_id=row.id, detail=_row_detail(row, {}), now=moment)
        return "Transaction deleted. Turn on “Show deleted” to see or restore it."

    return _edit(engine, transaction_id, change, "")


def restore_transaction(engine: sa.Engine, transaction_id: str, *, actor: str = audit.DEFAULT_ACTOR,
                        now: datetime | None = None) -> str:
    """Undo a deletion."""
    moment = _now(now)

    def change(conn: sa.Connection, row: sa.Row[Any]) -> str:
        if row.deleted_at is None:
            raise EditError("This transaction is not deleted. Nothing was changed.")
        conn.execute(sa.text("UPDATE transactions SET deleted_at = NULL WHERE id = :id"), {"id": row.id})
        audit.record(conn, actor=actor, action="restore", object_id=row.id,
                     detail=_row_detail(row, {"deleted_at": row.deleted_at}), now=moment)
        return "Transaction restored."

    return _edit(engine, transaction_id, change, "")
