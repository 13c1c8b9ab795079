"""`accounts`: every account with its institution, and the balances now per currency."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from finance.store.db import frame

MANUAL_PROVIDER = "manual"
"""`accounts.provider` and `connection_id` of accounts the user made for banks no aggregator reaches (file import)."""
INSTITUTION = f"COALESCE(c.institution_name, CASE WHEN a.provider = '{MANUAL_PROVIDER}' THEN 'Manual' END)"
"""An account's institution in a query of `accounts a LEFT JOIN connections c`: a manual account's is "Manual"."""


def accounts_summary(conn: sa.Connection) -> pd.DataFrame:
    """Every account with its connection's institution and provider, by institution, type and name; an account the
    user made for file imports (no connection) is the institution "Manual"."""
    return frame(conn, f"""
        SELECT a.id, a.connection_id, {INSTITUTION} AS institution, COALESCE(c.provider, a.provider) AS provider,
               a.name, a.type, a.mask, a.currency, a.current_balance, a.available_balance, a.credit_limit,
               a.balance_as_of
        FROM accounts a LEFT JOIN connections c ON c.id = a.connection_id
        ORDER BY institution, a.type, a.name
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
