"""The cash-flow aggregate behind the Sankey: one currency's income and spending of a period, grouped into flows, and
the transactions behind any of those flows.

A flow is a group of rows that count the same way: income by its category (and by payer where the category says
little, e.g. a PIX from a person or "Other income"), spending by its top-level category. Each flow has a `flow_key`,
computed by the same SQL expression in both queries, so the transactions listed under a flow are exactly the ones
that made it. Transfers count as neither; refunds net off spending; deleted rows never count; pending rows only
when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
import sqlalchemy as sa

from finance.store.db import frame
from finance.store.reports import EFFECTIVE_CATEGORY, IS_INCOME, IS_SPENDING, LIVE
from finance.store.transactions import EFFECTIVE_TRANSACTIONS

# Income categories that name no source: their flows go by payer (the merchant field) when one is known.
VAGUE_INCOME = ("income", "income.other", "uncategorized")

_FLOW_ROWS = f"""
    SELECT t.*, k.name AS category_name,
           CASE WHEN {IS_INCOME} THEN 'in' ELSE 'out' END AS side,
           CASE WHEN {IS_INCOME} THEN k.id ELSE COALESCE(p.id, k.id) END AS group_id,
           CASE WHEN {IS_INCOME} THEN k.name ELSE COALESCE(p.name, k.name) END AS group_name,
           CASE WHEN {IS_INCOME} AND (k.kind = 'other' OR k.id IN {VAGUE_INCOME})
                THEN NULLIF(TRIM(t.merchant), '') END AS payer
    FROM {EFFECTIVE_TRANSACTIONS} t
    JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
    LEFT JOIN categories p ON p.id = k.parent_id
    WHERE {LIVE} AND t.currency = :currency AND t.booked_date BETWEEN :start AND :end
      AND (:pending OR t.status = 'posted') AND ({IS_INCOME} OR {IS_SPENDING})
"""
_FLOW_KEY = "f.side || ':' || f.group_id || ':' || COALESCE(f.payer, '')"


def cash_flow(conn: sa.Connection, start: date, end: date, currency: str, *,
              include_pending: bool = True) -> pd.DataFrame:
    """One row per flow of `currency` in start..end: flow_key, side (`in` income, `out` spending), group_id and
    group_name (the income category, or the top-level spending category), payer (or None), amount (the signed net:
    income positive, spending negative, so a refund-heavy category can come out positive) and transactions."""
    return frame(conn, f"""
        SELECT {_FLOW_KEY} AS flow_key, f.side, f.group_id, MIN(f.group_name) AS group_name, f.payer,
               SUM(f.amount) AS amount, COUNT(*) AS transactions
        FROM ({_FLOW_ROWS}) f
        GROUP BY f.side, f.group_id, f.payer
        ORDER BY f.side, ABS(SUM(f.amount)) DESC, f.group_id, f.payer
    """, {"start": start, "end": end, "currency": currency, "pending": include_pending})


def flow_transactions(conn: sa.Connection, start: date, end: date, currency: str, flow_keys: Sequence[str], *,
                      include_pending: bool = True, limit: int = 200) -> tuple[pd.DataFrame, int]:
    """The newest `limit` transactions behind the flows `flow_keys` (keys from `cash_flow`), and how many there
    are in all."""
    if limit < 1:
        raise ValueError("limit must be positive")
    params = {"start": start, "end": end, "currency": currency, "pending": include_pending,
              "keys": list(flow_keys) or [""], "limit": limit}
    statement = sa.text(f"""
        SELECT f.id, f.booked_date, f.description, f.merchant, f.amount, f.currency, f.category_name, f.status,
               a.name AS account_name, COUNT(*) OVER () AS total
        FROM ({_FLOW_ROWS}) f LEFT JOIN accounts a ON a.id = f.account_id
        WHERE {_FLOW_KEY} IN :keys
        ORDER BY f.booked_date DESC, f.id DESC
        LIMIT :limit
    """).bindparams(sa.bindparam("keys", expanding=True))
    rows = frame(conn, statement, params)
    total = int(rows["total"].iloc[0]) if not rows.empty else 0
    return rows.drop(columns="total"), total


def flow_currencies(conn: sa.Connection, start: date, end: date, *, include_pending: bool = True) -> list[str]:
    """The currencies with income or spending in start..end."""
    return list(frame(conn, f"""
        SELECT DISTINCT t.currency FROM {EFFECTIVE_TRANSACTIONS} t JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        WHERE {LIVE} AND t.booked_date BETWEEN :start AND :end AND (:pending OR t.status = 'posted')
          AND ({IS_INCOME} OR {IS_SPENDING})
        ORDER BY 1
    """, {"start": start, "end": end, "pending": include_pending})["currency"])
