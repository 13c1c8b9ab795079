"""Investments, loans and card bills (issue 19): securities, holdings, investment transactions, liabilities, loan
payments, card bills and how each portfolio read went; account_links for reconnects; and the nullable columns
transactions (bill id, merchant category code, counterparty account) and connections (successor institution) gained.

Revision ID: 0003_portfolio_and_reconnects
Revises: 0002_pg_transaction_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_portfolio_and_reconnects"
down_revision: str | None = "0002_pg_transaction_indexes"
branch_labels = None
depends_on = None

Money = sa.Numeric(18, 2)
Quantity = sa.Numeric(28, 10)
Price = sa.Numeric(24, 8)
Rate = sa.Numeric(12, 6)
UtcTime = sa.DateTime(timezone=True)

NEW_COLUMNS = {
    "transactions": [
        sa.Column("bill_id", sa.String(), comment="a card row's bill (card_bills.id), when the provider says which"),
        sa.Column("merchant_category_code", sa.String(), comment="ISO 18245 merchant category code, verbatim"),
        sa.Column("counterparty_account", sa.String(),
                  comment="the other side's account number, as the provider sends it"),
    ],
    "connections": [
        sa.Column("successor_institution_id", sa.String(),
                  comment="the institution to reconnect through: this connection's own is being retired"),
    ],
}


def tables(meta: sa.MetaData) -> None:
    """This revision's tables, on `meta`."""
    sa.Table(
        "securities", meta,
        sa.Column("id", sa.String(), primary_key=True, comment="provider:provider's security id"),
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False,
                  comment="equity, etf, mutual_fund, fixed_income, cash, crypto, ..."),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("ticker", sa.String()),
        sa.Column("isin", sa.String()),
        sa.Column("close_price", Price, comment="latest price per unit the provider knows"),
        sa.Column("close_price_as_of", sa.Date()),
        sa.Column("maturity_date", sa.Date()),
        sa.Column("annual_rate", Rate, comment="fixed income: contracted rate, % a year"),
        sa.Column("updated_at", UtcTime, nullable=False),
        comment="What holdings are of; replaced per connection at each successful investments fetch.",
    )
    sa.Table(
        "holdings", meta,
        sa.Column("account_id", sa.String(), primary_key=True),
        sa.Column("security_id", sa.String(), primary_key=True),
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("quantity", Quantity, nullable=False),
        sa.Column("price", Price, comment="per unit"),
        sa.Column("value", Money, nullable=False, comment="positive"),
        sa.Column("cost_basis", Money, comment="what the position cost in total; NULL when unknown"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False, comment="the price's date"),
        comment="Positions now; replaced per connection at each successful investments fetch.",
    )
    sa.Table(
        "investment_transactions", meta,
        sa.Column("id", sa.String(), primary_key=True, comment="provider:provider's id"),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("security_id", sa.String()),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("type", sa.String(), nullable=False, comment="buy, sell, dividend, fee, transfer, cash, other"),
        sa.Column("amount", Money, nullable=False, comment="cash moved, model sign: a buy is negative"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("quantity", Quantity, comment="units gained (+) or given up (-)"),
        sa.Column("price", Price),
        sa.Column("fees", Money),
        sa.Column("first_seen_at", UtcTime, nullable=False),
        comment="Buys, sells, dividends and fees of investment accounts; upserted from each read (a window of them).",
    )
    sa.Table(
        "liabilities", meta,
        sa.Column("account_id", sa.String(), primary_key=True),
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False, comment="credit, student, mortgage, personal, financing, ..."),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance", Money, comment="signed like accounts.current_balance: owed is negative"),
        sa.Column("name", sa.String()),
        sa.Column("interest_rate", Rate, comment="% a year"),
        sa.Column("rate_type", sa.String()),
        sa.Column("next_payment_date", sa.Date()),
        sa.Column("next_payment_amount", Money),
        sa.Column("minimum_payment", Money),
        sa.Column("last_payment_date", sa.Date()),
        sa.Column("last_payment_amount", Money),
        sa.Column("original_principal", Money),
        sa.Column("origination_date", sa.Date()),
        sa.Column("maturity_date", sa.Date()),
        sa.Column("installments_total", sa.Integer()),
        sa.Column("installments_paid", sa.Integer()),
        sa.Column("is_overdue", sa.Boolean()),
        sa.Column("updated_at", UtcTime, nullable=False),
        comment="Loan, mortgage and card terms; replaced per connection at each successful liabilities fetch.",
    )
    sa.Table(
        "loan_payments", meta,
        sa.Column("account_id", sa.String(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, comment="order among the loan's payments"),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount", Money, nullable=False, comment="positive"),
        comment="Known payments of each loan (its balance history is rebuilt from them).",
    )
    sa.Table(
        "card_bills", meta,
        sa.Column("id", sa.String(), primary_key=True, comment="provider:provider's bill id"),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("closing_date", sa.Date()),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("total", Money, nullable=False, comment="positive: what the bill asks for"),
        sa.Column("minimum_payment", Money),
        sa.Column("paid_amount", Money),
        sa.Column("is_paid", sa.Boolean()),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("updated_at", UtcTime, nullable=False),
        comment="Card statements (faturas); upserted at each successful bills fetch.",
    )
    sa.Table(
        "portfolio_status", meta,
        sa.Column("connection_id", sa.String(), primary_key=True),
        sa.Column("resource", sa.String(), primary_key=True, comment="investments, investment_transactions, ..."),
        sa.Column("checked_at", UtcTime, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String()),
        sa.Column("message", sa.String(), comment="why the last read failed, for a person"),
        sa.Column("last_success_at", UtcTime),
        sa.Column("digest", sa.String(), comment="fingerprint of what the last successful read stored"),
        comment="How the last read of each portfolio resource went, per connection.",
    )
    sa.Table(
        "account_links", meta,
        sa.Column("old_account_id", sa.String(), primary_key=True, comment="an account of a retired connection"),
        sa.Column("new_account_id", sa.String(), nullable=False, comment="the account that continues its history"),
        sa.Column("linked_at", UtcTime, nullable=False),
        sa.Column("since", sa.Date(), comment="the day the new account's history begins; the old counts before it"),
        comment="Reconnects: the new account's history continues the old one's (charts count them as one).",
    )


def upgrade() -> None:
    """The new tables and columns; those already there (a store the issue's branch made before this revision
    existed) are left as they are."""
    bind = op.get_bind()
    meta = sa.MetaData()
    tables(meta)
    meta.create_all(bind)  # skips existing tables
    rows = bind.execute(sa.text("SELECT table_name, column_name FROM information_schema.columns "
                                "WHERE table_schema = current_schema()")).all()
    present = {(str(table), str(column)) for table, column in rows}
    for table, columns in NEW_COLUMNS.items():
        for column in columns:
            if (table, column.name) not in present:
                op.add_column(table, sa.Column(column.name, column.type, comment=column.comment))


def downgrade() -> None:
    for table, columns in NEW_COLUMNS.items():
        for column in columns:
            op.drop_column(table, column.name)
    meta = sa.MetaData()
    tables(meta)
    meta.drop_all(op.get_bind())
