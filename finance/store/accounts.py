"""`accounts`: every account with its institution, the balances now per currency, and the balance history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
import sqlalchemy as sa

from finance.model import Account, AccountType
from finance.store.account_links import CONTINUED
from finance.store.db import frame
from finance.store.schema import accounts

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
        WHERE a.id NOT IN {CONTINUED}
        ORDER BY institution, a.type, a.name
    """)


def stored_accounts(conn: sa.Connection, connection_id: str) -> list[Account]:
    """A connection's accounts as the store last saw them (for matching them against another connection's)."""
    rows = conn.execute(sa.select(accounts).where(accounts.c.connection_id == connection_id)
                        .order_by(accounts.c.id)).all()
    return [Account(r.provider, r.external_id, r.connection_id.split(":", 1)[1], AccountType(r.type), r.name,
                    r.currency, r.current_balance, r.available_balance, r.credit_limit, r.mask, r.subtype,
                    r.balance_as_of) for r in rows]


def balance_totals(conn: sa.Connection) -> pd.DataFrame:
    """Assets, liabilities and net worth now, one row per currency."""
    return frame(conn, f"""
        SELECT currency,
               SUM(CASE WHEN current_balance >= 0 THEN current_balance ELSE 0 END) AS assets,
               -SUM(CASE WHEN current_balance < 0 THEN current_balance ELSE 0 END) AS liabilities,
               SUM(current_balance) AS net_worth,
               MIN(balance_as_of) AS as_of
        FROM accounts WHERE current_balance IS NOT NULL AND id NOT IN {CONTINUED}
        GROUP BY currency ORDER BY currency
    """)


def balance_history_table(conn: sa.Connection, *, start: date | None = None, end: date | None = None,
                          account_ids: Sequence[str] = ()) -> pd.DataFrame:
    """End-of-day balances (snapshots and reconstructed days) with the account's name, oldest first; optionally
    within a period and for some accounts."""
    where = ["TRUE"]  # a bound parameter compared only with NULL has no type on PostgreSQL: filter what is given
    params: dict[str, object] = {}
    if start is not None:
        where.append("h.day >= :start")
        params["start"] = start
    if end is not None:
        where.append("h.day <= :end")
        params["end"] = end
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
