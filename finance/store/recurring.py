"""`recurring_choices` and the reads recurring detection needs: the candidate rows, the user's choices, and the
transactions of one series.

`candidate_rows` does the heavy part in SQL: it reads the live, non-transfer rows (pending ones only when asked),
names each row's counterparty (the merchant, else the description without installment marks, digits and extra
spaces: `CLEAN_DESCRIPTION`), and keeps only the groups that can hold a series — an account, counterparty, currency
and direction with at least three rows — plus every installment row. Detection itself is finance.recurring (pure).
Every change of a choice runs in one database transaction with its `audit_log` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.recurring import MIN_OCCURRENCES, Choice
from finance.store import audit
from finance.store.db import duckdb_connection, frame
from finance.store.reports import EFFECTIVE_CATEGORY, LIVE
from finance.store.schema import recurring_choices
from finance.store.transactions import EFFECTIVE_TRANSACTIONS

UNNAMED = "NULLIF(TRIM(t.merchant), '') IS NULL"
CLEAN_DESCRIPTION = r"""NULLIF(TRIM(regexp_replace(regexp_replace(UPPER(description),
    'PARC(ELA)?\s*\d+\s*/\s*\d+', '', 'g'), '[\d\s]+', ' ', 'g')), '')"""
"""A description as a counterparty: without "PARC 03/10", digits (card numbers, dates, document numbers) and repeated
spaces. Applied once per distinct description of the rows without a merchant."""


def candidate_rows(conn: sa.Connection, *, include_pending: bool = True) -> pd.DataFrame:
    """The rows recurring detection looks at, in the columns `finance.recurring.detect` takes: each row's
    counterparty is its merchant, else its cleaned description. On DuckDB the result travels as Arrow, its text
    columns staying Arrow-backed (a million rows in a fraction of a second)."""
    sql = f"""
        WITH described AS (
            SELECT description, {CLEAN_DESCRIPTION} AS counterparty
            FROM (SELECT DISTINCT description FROM transactions t WHERE {UNNAMED}) AS distinct_descriptions
        ), live AS (
            SELECT t.id, t.account_id, CASE WHEN {UNNAMED} THEN d.counterparty ELSE TRIM(t.merchant) END AS merchant,
                   t.currency, t.booked_date, CAST(ROUND(t.amount * 100) AS BIGINT) AS amount_cents,
                   t.installment_number, t.installment_total, {EFFECTIVE_CATEGORY} AS category
            FROM {EFFECTIVE_TRANSACTIONS} t JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
            LEFT JOIN described d ON {UNNAMED} AND d.description = t.description
            WHERE {LIVE} AND k.kind <> 'transfer' AND t.amount <> 0
              AND ({'TRUE' if include_pending else "t.status = 'posted'"})
        ), sized AS (
            SELECT *, COUNT(*) OVER (PARTITION BY account_id, LOWER(merchant), currency, amount_cents > 0) AS n
            FROM live WHERE merchant IS NOT NULL
        )
        SELECT id, account_id, merchant, currency, booked_date, amount_cents, installment_number,
               installment_total, category
        FROM sized WHERE n >= {int(MIN_OCCURRENCES)} OR installment_total > 1
    """  # no parameters: the only values are a boolean and a constant, written as SQL literals
    if conn.dialect.name == "duckdb":
        return duckdb_connection(conn).sql(sql).to_arrow_table().to_pandas(types_mapper=pd.ArrowDtype)
    return frame(conn, sql)


def _choice(row: sa.Row[Any]) -> Choice:
    return Choice(row.series_key, row.status, row.name, None if row.amount is None else Decimal(row.amount),
                  row.cadence)


def choices(conn: sa.Connection) -> dict[str, Choice]:
    """Every series choice the user made, by series key."""
    return {r.series_key: _choice(r) for r in conn.execute(sa.select(recurring_choices)).all()}


def _detail(choice: Choice | None) -> dict[str, object] | None:
    if choice is None:
        return None
    return {"status": choice.status, "name": choice.name, "cadence": choice.cadence,
            "amount": None if choice.amount is None else str(choice.amount)}


def save_choice(engine: sa.Engine, choice: Choice, *, actor: str = audit.DEFAULT_ACTOR,
                now: datetime | None = None) -> bool:
    """Store the user's choice for a series (replacing the one before); False (and no audit row) when nothing
    differs."""
    moment = now or datetime.now(UTC)
    table = recurring_choices
    with engine.begin() as conn:
        before = choices_of(conn, [choice.key]).get(choice.key)
        if _detail(before) == _detail(choice):
            return False
        values = {"status": choice.status, "name": choice.name, "amount": choice.amount, "cadence": choice.cadence,
                  "updated_at": moment}
        if before is None:
            conn.execute(table.insert().values(series_key=choice.key, **values))
        else:
            conn.execute(table.update().where(table.c.series_key == choice.key).values(**values))
        audit.record(conn, actor=actor, action="recurring_choice", object_id=choice.key,
                     detail={"from": _detail(before), "to": _detail(choice)}, now=moment)
    return True


def choices_of(conn: sa.Connection, keys: Sequence[str]) -> dict[str, Choice]:
    """The choices of these series keys."""
    rows = conn.execute(sa.select(recurring_choices).where(recurring_choices.c.series_key.in_(list(keys)))).all()
    return {r.series_key: _choice(r) for r in rows}


def series_transactions(conn: sa.Connection, ids: Sequence[str]) -> pd.DataFrame:
    """The transactions of one series, newest first (date, description, amount, status)."""
    if not ids:
        return pd.DataFrame(columns=["booked_date", "description", "amount", "currency", "status"])
    return frame(conn, sa.text("""
        SELECT t.booked_date, t.description, t.amount, t.currency, t.status
        FROM transactions t WHERE t.id IN :ids AND t.deleted_at IS NULL
        ORDER BY t.booked_date DESC, t.id DESC
    """).bindparams(sa.bindparam("ids", list(ids), expanding=True)))
