"""PostgreSQL: index transactions by id, by (connection, day) and by (account, day).

A shared PostgreSQL store holds many connections' rows in one table: without these, every sync's merge and every
page's filter would scan all of them. DuckDB keeps none (it scans its row groups faster than it maintains them).

Revision ID: 0002_pg_transaction_indexes
Revises: 0001_baseline
"""

from __future__ import annotations

from alembic import op

revision = "0002_pg_transaction_indexes"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None

INDEXES = (("transactions_id", ["id"]), ("transactions_connection_day", ["connection_id", "booked_date"]),
           ("transactions_account_day", ["account_id", "booked_date"]))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, columns in INDEXES:
        op.create_index(name, "transactions", columns)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _ in INDEXES:
        op.drop_index(name, table_name="transactions")
