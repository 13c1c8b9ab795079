"""`accounts`: every account with its institution, the balances now per currency, and the balance history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
import sqlalchemy as sa

from finance.store.db import frame


def accounts_summary(conn: sa.Connection) -> pd.DataFrame:
    """Every account with its connection's institution and provider, by institution, type and name."""
    return frame(conn, """
        SELECT a.id, a.connection_id, c.institution_name AS institution, c.provider, a.name, a.type, a.mask,
               a.currency, a.current_balance, a.available_balance, a.credit_limit, a.balance_as_of
        FROM accounts a JOIN connections c ON c.id = a.connection_id
        ORDER BY c.institution_name, a.type, a.name
    """)


def balance_totals(conn: sa.Connection) -> pd.DataFrame:
    """Assets, liabilities and net worth now, one row per currency."""
    return frame(conn, """
        SELECT currency,
               SUM(CASE WHEN current_balance >= 0 THEN current_balance ELSE 0 END) AS assets,
               -SUM(CASE WHEN current_balance < 0 THEN current_balance ELSE 0 END) AS liabilities,
               SUM(current_balance) AS net_worth,
               MIN(balance_as_of) AS as_of
        FROM accounts WHERE current_balance IS NOT NULL
        GROUP BY currency ORDER BY currency
    """)


def balance_history_table(conn: sa.Connection, *, start: date | None = None, end: date | None = None,
                          account_ids: Sequence[str] = ()) -> pd.DataFrame:
    """End-of-day balances (snapshots and reconstructed days) with the account's name, oldest first; optionally
    within a period and for some accounts."""
    where = ["(:start IS NULL OR h.day >= :start)", "(:end IS NULL OR h.day <= :end)"]
    params: dict[str, object] = {"start": start, "end": end}
    statement = sa.text(f"""
        SELECT h.day, h.account_id, c.institution_name AS institution, a.name AS account, a.type AS account_type,
               h.balance, h.currency, h.source
        FROM balance_history h
        LEFT JOIN accounts a ON a.id = h.account_id
        LEFT JOIN connections c ON c.id = a.connection_id
        WHERE {' AND '.join(where)} {'AND h.account_id IN :ids' if account_ids else ''}
        ORDER BY h.day, c.institution_name, a.name
    """)
    if account_ids:
        statement = statement.bindparams(sa.bindparam("ids", expanding=True))
        params["ids"] = list(account_ids)
    return frame(conn, statement, params)
