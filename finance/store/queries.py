"""Read queries behind the pages. Aggregation happens in SQL; only small results reach pandas.

Totals are always per currency: nothing here adds BRL to USD.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

# The latest rule per merchant (category_rules), applied at query time so it covers past and future rows.
RULES_IN_FORCE = """(
    SELECT merchant, category FROM (
        SELECT merchant, category,
               ROW_NUMBER() OVER (PARTITION BY merchant ORDER BY created_at DESC, id DESC) AS rn
        FROM category_rules) ranked
    WHERE rn = 1)"""
# `transactions` with the category the user sees: their own choice, else the merchant's rule, else the provider's.
EFFECTIVE_TRANSACTIONS = f"""(
    SELECT tx.*, rl.category AS rule_category,
           COALESCE(tx.user_category, rl.category, tx.category) AS effective_category,
           CASE WHEN tx.user_category IS NOT NULL THEN 'user'
                WHEN rl.category IS NOT NULL THEN 'rule' ELSE 'provider' END AS category_source
    FROM transactions tx LEFT JOIN {RULES_IN_FORCE} rl ON rl.merchant = tx.merchant)"""
EFFECTIVE_CATEGORY = "t.effective_category"
LIVE = "t.deleted_at IS NULL"


def _frame(conn: sa.Connection, sql: str, params: dict[str, object] | None = None) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def accounts_summary(conn: sa.Connection) -> pd.DataFrame:
    return _frame(conn, """
        SELECT a.id, a.connection_id, c.institution_name AS institution, c.provider, a.name, a.type, a.mask,
               a.currency, a.current_balance, a.available_balance, a.credit_limit, a.balance_as_of
        FROM accounts a JOIN connections c ON c.id = a.connection_id
        ORDER BY c.institution_name, a.type, a.name
    """)


def balance_totals(conn: sa.Connection) -> pd.DataFrame:
    """Assets, liabilities and net worth now, one row per currency."""
    return _frame(conn, """
        SELECT currency,
               SUM(CASE WHEN current_balance >= 0 THEN current_balance ELSE 0 END) AS assets,
               -SUM(CASE WHEN current_balance < 0 THEN current_balance ELSE 0 END) AS liabilities,
               SUM(current_balance) AS net_worth,
               MIN(balance_as_of) AS as_of
        FROM accounts WHERE current_balance IS NOT NULL
        GROUP BY currency ORDER BY currency
    """)


def net_worth_by_day(conn: sa.Connection, start: date, end: date) -> pd.DataFrame:
    """End-of-day net worth per currency; an account counts from its first known balance onward."""
    return _frame(conn, """
        WITH days AS (
            SELECT CAST(d AS DATE) AS day
            FROM generate_series(CAST(:start AS TIMESTAMP), CAST(:end AS TIMESTAMP), INTERVAL 1 DAY) AS g(d)
        ), grid AS (
            SELECT a.id AS account_id, a.currency, days.day FROM accounts a CROSS JOIN days
        )
        SELECT g.day, g.currency,
               SUM(CASE WHEN h.balance >= 0 THEN h.balance ELSE 0 END) AS assets,
               -SUM(CASE WHEN h.balance < 0 THEN h.balance ELSE 0 END) AS liabilities,
               SUM(h.balance) AS net_worth
        FROM grid g ASOF JOIN balance_history h ON g.account_id = h.account_id AND g.day >= h.day
        GROUP BY g.day, g.currency
        ORDER BY g.day, g.currency
    """, {"start": start, "end": end})


def monthly_cashflow(conn: sa.Connection, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
    """Income and spending per month and currency. Transfers count as neither; refunds net off spending."""
    return _frame(conn, f"""
        SELECT CAST(date_trunc('month', t.booked_date) AS DATE) AS month, t.currency,
               SUM(CASE WHEN k.kind = 'income' OR (k.kind = 'other' AND t.amount > 0)
                        THEN t.amount ELSE 0 END) AS income,
               -SUM(CASE WHEN k.kind = 'expense' OR (k.kind = 'other' AND t.amount < 0)
                         THEN t.amount ELSE 0 END) AS spending
        FROM {EFFECTIVE_TRANSACTIONS} t JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        WHERE {LIVE} AND t.booked_date BETWEEN :start AND :end
          AND (:pending OR t.status = 'posted')
        GROUP BY 1, 2 ORDER BY 1, 2
    """, {"start": start, "end": end, "pending": include_pending})


def spending_by_category(conn: sa.Connection, start: date, end: date, *,
                         include_pending: bool = True) -> pd.DataFrame:
    """Net spending per top-level category and currency, largest first."""
    return _frame(conn, f"""
        SELECT COALESCE(p.id, k.id) AS category_id, COALESCE(p.name, k.name) AS category, t.currency,
               -SUM(t.amount) AS spending, COUNT(*) AS transactions
        FROM {EFFECTIVE_TRANSACTIONS} t
        JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        LEFT JOIN categories p ON p.id = k.parent_id
        WHERE {LIVE} AND t.booked_date BETWEEN :start AND :end
          AND (:pending OR t.status = 'posted')
          AND (k.kind = 'expense' OR (k.kind = 'other' AND t.amount < 0))
        GROUP BY 1, 2, 3
        HAVING -SUM(t.amount) > 0
        ORDER BY t.currency, spending DESC
    """, {"start": start, "end": end, "pending": include_pending})


def connections_status(conn: sa.Connection) -> pd.DataFrame:
    """Every connection with its accounts count and its latest sync run."""
    return _frame(conn, """
        WITH latest AS (
            SELECT r.*, ROW_NUMBER() OVER (PARTITION BY connection_id ORDER BY started_at DESC) AS rn
            FROM sync_runs r
        )
        SELECT c.id, c.provider, c.external_id, c.institution_name, c.is_sandbox, c.status, c.status_detail,
               c.error_code, c.consent_expires_at, c.last_success_at, c.last_attempt_at, c.created_at,
               (SELECT COUNT(*) FROM accounts a WHERE a.connection_id = c.id) AS accounts,
               l.outcome AS last_outcome, l.message AS last_message, l.error_code AS last_error_code,
               l.finished_at AS last_finished_at, l.added AS last_added, l.modified AS last_modified,
               l.removed AS last_removed, l.merged AS last_merged
        FROM connections c LEFT JOIN latest l ON l.connection_id = c.id AND l.rn = 1
        ORDER BY c.created_at
    """)


def recent_sync_runs(conn: sa.Connection, limit: int = 50) -> pd.DataFrame:
    return _frame(conn, """
        SELECT r.started_at, c.institution_name, r.trigger, r.outcome, r.added, r.modified, r.removed, r.merged,
               r.accounts, r.requests, r.duration_ms, r.error_code, r.message, r.connection_id
        FROM sync_runs r LEFT JOIN connections c ON c.id = r.connection_id
        ORDER BY r.started_at DESC LIMIT :limit
    """, {"limit": limit})


def data_as_of(conn: sa.Connection) -> datetime | None:
    """When the store last received data from any provider."""
    return conn.execute(sa.text("SELECT MAX(last_success_at) FROM connections")).scalar()


def transaction_date_range(conn: sa.Connection) -> tuple[date | None, date | None]:
    row = conn.execute(sa.text(
        "SELECT MIN(booked_date), MAX(booked_date) FROM transactions t WHERE t.deleted_at IS NULL")).one()
    return row[0], row[1]
