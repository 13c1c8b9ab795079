"""The reports: cash flow, spending by category, the period's key figures, top merchants, net worth by day, and how
fresh the data is. Aggregation happens in SQL; only small results reach pandas.

Totals are always per currency: nothing here adds BRL to USD.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from finance.store.db import arg_min, frame
from finance.store.transactions import EFFECTIVE_TRANSACTIONS

EFFECTIVE_CATEGORY = "t.effective_category"
LIVE = "t.deleted_at IS NULL"
# How a row counts, from its category's kind `k.kind`: transfers are neither; `other` goes by sign (PIX to people).
# Spending sums are negated: a refund (a positive amount in an expense category) nets off spending.
IS_INCOME = "(k.kind = 'income' OR (k.kind = 'other' AND t.amount > 0))"
IS_SPENDING = "(k.kind = 'expense' OR (k.kind = 'other' AND t.amount < 0))"


def net_worth_by_day(conn: sa.Connection, start: date, end: date,
                     account_types: Sequence[str] = ()) -> pd.DataFrame:
    """End-of-day net worth per currency (of the accounts of `account_types`; empty: all); an account counts from its
    first known balance onward, and one a reconnect continued (account_links) only until its successor begins."""
    # Each day's latest known balance: DuckDB's ASOF join, PostgreSQL's lateral lookup on the (account, day) key.
    latest = ("ASOF JOIN balance_history h ON g.account_id = h.account_id AND g.day >= h.day"
              if conn.dialect.name == "duckdb" else
              "JOIN LATERAL (SELECT b.balance FROM balance_history b WHERE b.account_id = g.account_id "
              "AND b.day <= g.day ORDER BY b.day DESC LIMIT 1) h ON TRUE")
    statement = sa.text(f"""
        WITH days AS (
            SELECT CAST(d AS DATE) AS day
            FROM generate_series(CAST(:start AS TIMESTAMP), CAST(:end AS TIMESTAMP), INTERVAL '1 day') AS g(d)
        ), grid AS (
            SELECT a.id AS account_id, a.currency, days.day FROM accounts a CROSS JOIN days
            -- an anti-join (one link per old account at most): DuckDB ran NOT EXISTS here 100x slower on some stores
            LEFT JOIN account_links k ON k.old_account_id = a.id AND days.day >= k.since
            WHERE k.old_account_id IS NULL AND (:all_types OR a.type IN :types)
        )
        SELECT g.day, g.currency,
               SUM(CASE WHEN h.balance >= 0 THEN h.balance ELSE 0 END) AS assets,
               -SUM(CASE WHEN h.balance < 0 THEN h.balance ELSE 0 END) AS liabilities,
               SUM(h.balance) AS net_worth
        FROM grid g {latest}
        GROUP BY g.day, g.currency
        ORDER BY g.day, g.currency
    """).bindparams(sa.bindparam("types", expanding=True))
    return frame(conn, statement, {"start": start, "end": end, "all_types": not account_types,
                                   "types": list(account_types) or [""]})


def _flows(conn: sa.Connection, period: str, start: date, end: date, include_pending: bool) -> pd.DataFrame:
    """Income and spending per `period` (a SELECT expression naming its column) and currency. Transfers count as
    neither; refunds net off spending."""
    return frame(conn, f"""
        SELECT {period}, t.currency,
               SUM(CASE WHEN {IS_INCOME} THEN t.amount ELSE 0 END) AS income,
               -SUM(CASE WHEN {IS_SPENDING} THEN t.amount ELSE 0 END) AS spending
        FROM {EFFECTIVE_TRANSACTIONS} t JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        WHERE {LIVE} AND t.booked_date BETWEEN :start AND :end
          AND (:pending OR t.status = 'posted')
        GROUP BY 1, 2 ORDER BY 1, 2
    """, {"start": start, "end": end, "pending": include_pending})


def monthly_cashflow(conn: sa.Connection, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
    """Income and spending per month and currency."""
    return _flows(conn, "CAST(date_trunc('month', t.booked_date) AS DATE) AS month", start, end, include_pending)


def spending_by_category(conn: sa.Connection, start: date, end: date, *,
                         include_pending: bool = True) -> pd.DataFrame:
    """Net spending per top-level category and currency, largest first."""
    return frame(conn, f"""
        SELECT COALESCE(p.id, k.id) AS category_id, COALESCE(p.name, k.name) AS category, t.currency,
               -SUM(t.amount) AS spending, COUNT(*) AS transactions
        FROM {EFFECTIVE_TRANSACTIONS} t
        JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        LEFT JOIN categories p ON p.id = k.parent_id
        WHERE {LIVE} AND t.booked_date BETWEEN :start AND :end
          AND (:pending OR t.status = 'posted')
          AND {IS_SPENDING}
        GROUP BY 1, 2, 3
        HAVING -SUM(t.amount) > 0
        ORDER BY t.currency, spending DESC
    """, {"start": start, "end": end, "pending": include_pending})


def daily_flows(conn: sa.Connection, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
    """Income and spending per day and currency (the Money page converts each day at its own rate)."""
    return _flows(conn, "t.booked_date AS day", start, end, include_pending)


def period_figures(conn: sa.Connection, start: date, end: date, previous_start: date, *,
                   include_pending: bool = True) -> pd.DataFrame:
    """Per currency, for the period (`current`, start..end) and the one before it (`previous`, previous_start up
    to the day before start): income, spending and the largest single expense. One scan for both periods."""
    largest = f"FILTER (WHERE {IS_SPENDING} AND t.amount < 0)"
    return frame(conn, f"""
        SELECT t.currency, CASE WHEN t.booked_date >= :start THEN 'current' ELSE 'previous' END AS period,
               SUM(CASE WHEN {IS_INCOME} THEN t.amount ELSE 0 END) AS income,
               -SUM(CASE WHEN {IS_SPENDING} THEN t.amount ELSE 0 END) AS spending,
               -MIN(t.amount) {largest} AS largest_expense,
               {arg_min(conn, "t.description", "t.amount", largest)} AS largest_description,
               {arg_min(conn, "t.booked_date", "t.amount", largest)} AS largest_day
        FROM {EFFECTIVE_TRANSACTIONS} t JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        WHERE {LIVE} AND t.booked_date BETWEEN :previous_start AND :end
          AND (:pending OR t.status = 'posted')
        GROUP BY 1, 2 ORDER BY 1, 2
    """, {"start": start, "end": end, "previous_start": previous_start, "pending": include_pending})


def top_merchants(conn: sa.Connection, start: date, end: date, *, include_pending: bool = True,
                  limit: int = 10) -> pd.DataFrame:
    """Per currency, the merchants with the most net spending in the period, with their share of all spending
    in that currency (rows without a merchant count in the whole but are not listed)."""
    return frame(conn, f"""
        WITH spend AS (
            SELECT t.currency, NULLIF(TRIM(t.merchant), '') AS merchant, -SUM(t.amount) AS spending,
                   COUNT(*) AS transactions
            FROM {EFFECTIVE_TRANSACTIONS} t JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
            WHERE {LIVE} AND t.booked_date BETWEEN :start AND :end
              AND (:pending OR t.status = 'posted') AND {IS_SPENDING}
            GROUP BY 1, 2
        ), ranked AS (
            SELECT *, SUM(spending) OVER (PARTITION BY currency) AS currency_spending,
                   ROW_NUMBER() OVER (PARTITION BY currency, merchant IS NULL
                                      ORDER BY spending DESC, merchant) AS rank
            FROM spend
        )
        SELECT currency, merchant, spending, transactions,
               CASE WHEN currency_spending > 0 THEN CAST(spending / currency_spending AS DOUBLE PRECISION) END AS share
        FROM ranked
        WHERE merchant IS NOT NULL AND spending > 0 AND rank <= :limit
        ORDER BY currency, spending DESC, merchant
    """, {"start": start, "end": end, "pending": include_pending, "limit": limit})


def data_as_of(conn: sa.Connection) -> datetime | None:
    """When the store last received data from any provider."""
    return conn.execute(sa.text("SELECT MAX(last_success_at) FROM connections")).scalar()


def as_of_by_currency(conn: sa.Connection) -> dict[str, datetime | None]:
    """Per currency, when its data was last refreshed: the oldest last successful sync among the connections
    holding accounts in it (a figure is only as fresh as its stalest part)."""
    rows = conn.execute(sa.text("""
        SELECT a.currency, MIN(c.last_success_at) AS as_of, COUNT(c.last_success_at) < COUNT(*) AS never
        FROM accounts a JOIN connections c ON c.id = a.connection_id
        GROUP BY a.currency ORDER BY a.currency
    """)).all()
    return {r.currency: None if r.never else r.as_of for r in rows}
