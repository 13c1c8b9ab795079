"""Reads of `liabilities`, `card_bills` and `portfolio_status` for the Loans and Card bills pages."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from finance.store.account_links import CONTINUED
from finance.store.db import frame


def loans_frame(conn: sa.Connection) -> pd.DataFrame:
    """Every loan, mortgage and card with its terms: the account's balance (owed is negative) and available amount,
    rate, next payment, original principal and installments; loan accounts without terms are listed too."""
    return frame(conn, f"""
        SELECT a.id AS account_id, a.name AS account, a.mask, c.institution_name AS institution, a.type,
               COALESCE(l.kind, CASE WHEN a.type = 'credit_card' THEN 'credit' ELSE 'other' END) AS kind,
               l.name AS product, COALESCE(a.current_balance, l.balance) AS balance, a.available_balance,
               a.credit_limit, a.currency, l.interest_rate, l.rate_type, l.next_payment_date,
               l.next_payment_amount, l.minimum_payment, l.last_payment_date, l.last_payment_amount,
               l.original_principal, l.origination_date, l.maturity_date, l.installments_total,
               l.installments_paid, l.is_overdue
        FROM accounts a JOIN connections c ON c.id = a.connection_id
        LEFT JOIN liabilities l ON l.account_id = a.id
        WHERE (a.type = 'loan' OR l.account_id IS NOT NULL) AND a.id NOT IN {CONTINUED}
        ORDER BY a.currency, kind, a.name
    """)


def bills_frame(conn: sa.Connection) -> pd.DataFrame:
    """Every stored card bill with its card, oldest due date first."""
    return frame(conn, f"""
        SELECT b.id, b.account_id, a.name AS card, a.mask, b.closing_date, b.due_date, b.total, b.minimum_payment,
               b.paid_amount, b.is_paid, b.currency
        FROM card_bills b JOIN accounts a ON a.id = b.account_id
        WHERE b.account_id NOT IN {CONTINUED}
        ORDER BY a.name, b.account_id, b.due_date
    """)


def portfolio_problems(conn: sa.Connection) -> pd.DataFrame:
    """The portfolio resources whose last read failed, per connection, with why and when they last worked."""
    return frame(conn, """
        SELECT c.institution_name AS institution, p.resource, p.checked_at, p.error_code, p.message,
               p.last_success_at
        FROM portfolio_status p JOIN connections c ON c.id = p.connection_id
        WHERE NOT p.ok ORDER BY c.institution_name, p.resource
    """)
