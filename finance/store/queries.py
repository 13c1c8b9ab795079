"""Read queries behind the pages. Aggregation happens in SQL; only small results reach pandas.

Totals are always per currency: nothing here adds BRL to USD.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.money import Rate, RateError
from finance.store.schema import exchange_rates as exchange_rates_table

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
# How a row counts, from its category's kind `k.kind`: transfers are neither; `other` goes by sign (PIX to people).
# Spending sums are negated: a refund (a positive amount in an expense category) nets off spending.
IS_INCOME = "(k.kind = 'income' OR (k.kind = 'other' AND t.amount > 0))"
IS_SPENDING = "(k.kind = 'expense' OR (k.kind = 'other' AND t.amount < 0))"


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


def _flows(conn: sa.Connection, period: str, start: date, end: date, include_pending: bool) -> pd.DataFrame:
    """Income and spending per `period` (a SELECT expression naming its column) and currency. Transfers count as
    neither; refunds net off spending."""
    return _frame(conn, f"""
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
    return _frame(conn, f"""
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


def connections_status(conn: sa.Connection) -> pd.DataFrame:
    """Every connection with its accounts count and its latest sync run."""
    return _frame(conn, """
        WITH latest AS (
            SELECT r.*, ROW_NUMBER() OVER (PARTITION BY connection_id ORDER BY started_at DESC) AS rn
            FROM sync_runs r
        )
        SELECT c.id, c.provider, c.external_id, c.institution_id, c.institution_name, c.is_sandbox, c.status,
               c.status_detail, c.error_code, c.consent_expires_at, c.last_success_at, c.last_attempt_at, c.created_at,
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


def as_of_by_currency(conn: sa.Connection) -> dict[str, datetime | None]:
    """Per currency, when its data was last refreshed: the oldest last successful sync among the connections
    holding accounts in it (a figure is only as fresh as its stalest part)."""
    rows = conn.execute(sa.text("""
        SELECT a.currency, MIN(c.last_success_at) AS as_of, COUNT(c.last_success_at) < COUNT(*) AS never
        FROM accounts a JOIN connections c ON c.id = a.connection_id
        GROUP BY a.currency ORDER BY a.currency
    """)).all()
    return {r.currency: None if r.never else r.as_of for r in rows}


def daily_flows(conn: sa.Connection, start: date, end: date, *, include_pending: bool = True) -> pd.DataFrame:
    """Income and spending per day and currency (the Money page converts each day at its own rate)."""
    return _flows(conn, "t.booked_date AS day", start, end, include_pending)


def period_figures(conn: sa.Connection, start: date, end: date, previous_start: date, *,
                   include_pending: bool = True) -> pd.DataFrame:
    """Per currency, for the period (`current`, start..end) and the one before it (`previous`, previous_start up
    to the day before start): income, spending and the largest single expense. One scan for both periods."""
    return _frame(conn, f"""
        SELECT t.currency, CASE WHEN t.booked_date >= :start THEN 'current' ELSE 'previous' END AS period,
               SUM(CASE WHEN {IS_INCOME} THEN t.amount ELSE 0 END) AS income,
               -SUM(CASE WHEN {IS_SPENDING} THEN t.amount ELSE 0 END) AS spending,
               -MIN(t.amount) FILTER (WHERE {IS_SPENDING} AND t.amount < 0) AS largest_expense,
               arg_min(t.description, t.amount) FILTER (WHERE {IS_SPENDING} AND t.amount < 0)
                   AS largest_description,
               arg_min(t.booked_date, t.amount) FILTER (WHERE {IS_SPENDING} AND t.amount < 0) AS largest_day
        FROM {EFFECTIVE_TRANSACTIONS} t JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        WHERE {LIVE} AND t.booked_date BETWEEN :previous_start AND :end
          AND (:pending OR t.status = 'posted')
        GROUP BY 1, 2 ORDER BY 1, 2
    """, {"start": start, "end": end, "previous_start": previous_start, "pending": include_pending})


def top_merchants(conn: sa.Connection, start: date, end: date, *, include_pending: bool = True,
                  limit: int = 10) -> pd.DataFrame:
    """Per currency, the merchants with the most net spending in the period, with their share of all spending
    in that currency (rows without a merchant count in the whole but are not listed)."""
    return _frame(conn, f"""
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
               CASE WHEN currency_spending > 0 THEN CAST(spending / currency_spending AS DOUBLE) END AS share
        FROM ranked
        WHERE merchant IS NOT NULL AND spending > 0 AND rank <= :limit
        ORDER BY currency, spending DESC, merchant
    """, {"start": start, "end": end, "pending": include_pending, "limit": limit})


# --------------------------------------------------------------------------------------------------------------------
# Exchange rates the user enters (Money page): every change in one transaction with its audit_log row
# --------------------------------------------------------------------------------------------------------------------

def exchange_rates(conn: sa.Connection) -> list[Rate]:
    """Every rate, newest date first."""
    rows = conn.execute(sa.text("""
        SELECT id, from_currency, to_currency, rate, valid_from, note FROM exchange_rates
        ORDER BY valid_from DESC, from_currency, to_currency, id
    """)).all()
    return [Rate(r.from_currency, r.to_currency, Decimal(r.rate), r.valid_from, r.note, r.id) for r in rows]


def _rate_row(conn: sa.Connection, rate_id: str) -> sa.Row[Any]:
    row = conn.execute(sa.text("SELECT * FROM exchange_rates WHERE id = :id"), {"id": rate_id}).first()
    if row is None:
        raise RateError("That rate no longer exists. Nothing was changed.")
    return row


def _refuse_same_day(conn: sa.Connection, rate: Rate, except_id: str | None = None) -> None:
    """One rate per pair and date, in either direction: a second one would make the day's rate ambiguous."""
    clash = conn.execute(sa.text("""
        SELECT from_currency, to_currency FROM exchange_rates
        WHERE valid_from = :day AND id IS DISTINCT FROM :except_id
          AND ((from_currency = :a AND to_currency = :b) OR (from_currency = :b AND to_currency = :a))
    """), {"day": rate.valid_from, "a": rate.from_currency, "b": rate.to_currency, "except_id": except_id}).first()
    if clash is not None:
        raise RateError(f"There is already a {clash.from_currency} → {clash.to_currency} rate dated "
                        f"{rate.valid_from:%Y-%m-%d} (it converts both ways): edit that one instead. "
                        "Nothing was changed.")


def _rate_detail(rate: Rate | sa.Row[Any]) -> dict[str, object]:
    return {"from_currency": rate.from_currency, "to_currency": rate.to_currency,
            "rate": f"{Decimal(rate.rate).normalize():f}", "valid_from": rate.valid_from.isoformat(), "note": rate.note}


def _audit_rate(conn: sa.Connection, *, actor: str, action: str, rate_id: str, detail: dict[str, object],
                now: datetime) -> None:
    # explorer writes audit rows for every user edit; it imports this module, hence the late import.
    from finance.store.explorer import _audit

    _audit(conn, actor=actor, action=action, object_id=rate_id, detail=detail, now=now)


def add_exchange_rate(engine: sa.Engine, rate: Rate, *, actor: str = "user", now: datetime | None = None) -> str:
    """Store a validated rate (money.clean_rate); returns its id. RateError when the pair has one that day."""
    moment = now or datetime.now(UTC)
    rate_id = uuid.uuid4().hex
    with engine.begin() as conn:
        _refuse_same_day(conn, rate)
        conn.execute(exchange_rates_table.insert().values(
            id=rate_id, from_currency=rate.from_currency, to_currency=rate.to_currency, rate=rate.rate,
            valid_from=rate.valid_from, note=rate.note, entered_at=moment))
        _audit_rate(conn, actor=actor, action="add_rate", rate_id=rate_id, detail=_rate_detail(rate), now=moment)
    return rate_id


def update_exchange_rate(engine: sa.Engine, rate_id: str, rate: Rate, *, actor: str = "user",
                         now: datetime | None = None) -> bool:
    """Replace a rate's values; False (and no audit row) when nothing differs."""
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        before = _rate_row(conn, rate_id)
        if _rate_detail(before) == _rate_detail(rate):
            return False
        _refuse_same_day(conn, rate, except_id=rate_id)
        conn.execute(exchange_rates_table.update().where(exchange_rates_table.c.id == rate_id).values(
            from_currency=rate.from_currency, to_currency=rate.to_currency, rate=rate.rate,
            valid_from=rate.valid_from, note=rate.note, entered_at=moment))
        _audit_rate(conn, actor=actor, action="edit_rate", rate_id=rate_id,
                    detail={"from": _rate_detail(before), "to": _rate_detail(rate)}, now=moment)
    return True


def delete_exchange_rate(engine: sa.Engine, rate_id: str, *, actor: str = "user", now: datetime | None = None) -> Rate:
    """Remove a rate; returns what was removed."""
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        before = _rate_row(conn, rate_id)
        conn.execute(exchange_rates_table.delete().where(exchange_rates_table.c.id == rate_id))
        _audit_rate(conn, actor=actor, action="delete_rate", rate_id=rate_id, detail=_rate_detail(before),
                    now=moment)
    return Rate(before.from_currency, before.to_currency, Decimal(before.rate), before.valid_from, before.note,
                rate_id)
