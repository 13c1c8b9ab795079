"""Reads of `holdings`, `securities` and `investment_transactions` for the Investments page."""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from finance.store.account_links import CONTINUED
from finance.store.db import frame


def holdings_frame(conn: sa.Connection) -> pd.DataFrame:
    """Every position now with its account, institution and security: quantity, price, value, cost basis and gain
    (NULL when the cost basis is unknown), by currency and value, largest first."""
    return frame(conn, f"""
        SELECT h.account_id, a.name AS account, c.institution_name AS institution, h.security_id,
               COALESCE(s.name, h.security_id) AS security, s.ticker, s.type AS security_type, h.quantity,
               COALESCE(h.price, CASE WHEN h.quantity <> 0 THEN h.value / h.quantity END) AS price, h.value,
               h.cost_basis, h.value - h.cost_basis AS gain, h.currency, h.as_of, s.maturity_date, s.annual_rate
        FROM holdings h JOIN accounts a ON a.id = h.account_id JOIN connections c ON c.id = a.connection_id
        LEFT JOIN securities s ON s.id = h.security_id
        WHERE h.account_id NOT IN {CONTINUED}
        ORDER BY h.currency, h.value DESC, security
    """)


def investment_transactions_frame(conn: sa.Connection, start: date, end: date) -> pd.DataFrame:
    """Investment transactions between `start` and `end` (inclusive), newest first."""
    return frame(conn, """
        SELECT t.date, a.name AS account, COALESCE(s.name, t.security_id) AS security, t.type, t.quantity,
               t.price, t.amount, t.currency, t.description
        FROM investment_transactions t JOIN accounts a ON a.id = t.account_id
        LEFT JOIN securities s ON s.id = t.security_id
        WHERE t.date BETWEEN :start AND :end
        ORDER BY t.date DESC, t.id
    """, {"start": start, "end": end})
