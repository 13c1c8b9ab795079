"""Households (issue 15): every household's row says which household it belongs to, and the directory of households,
their members and which household each connection is in.

Rows already in the store belong to 'local', the installation's first household (its single user's until sign-in
is configured; the first person to sign in then owns it, and sign-in writes its `households` row).

Revision ID: 0007_households
Revises: 0006_preferences
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_households"
down_revision: str | None = "0006_preferences"
branch_labels = None
depends_on = None

UtcTime = sa.DateTime(timezone=True)
LOCAL = "local"

HOUSEHOLD_DATA = (
    "connections", "accounts", "transactions", "balance_history", "sync_runs", "webhook_events", "audit_log",
    "category_rules", "alerts", "alert_settings", "recurring_choices", "exchange_rates", "budgets",
    "balance_thresholds", "securities", "holdings", "investment_transactions", "liabilities", "loan_payments",
    "card_bills", "portfolio_status", "account_links", "import_batches", "import_mappings", "import_reviews",
    "preferences",
)
"""The tables whose rows belong to a household (all but the category taxonomy and the directory)."""


def _with_household() -> set[str]:
    """The tables that already have the column (a store made with `create_all` by newer code keeps what it has)."""
    rows = op.get_bind().execute(sa.text("SELECT table_name FROM information_schema.columns "
                                         "WHERE table_schema = current_schema() AND column_name = 'household_id'"))
    return {str(name) for (name,) in rows}


def upgrade() -> None:
    present = _with_household()
    for table in (t for t in HOUSEHOLD_DATA if t not in present):
        op.add_column(table, sa.Column(
            "household_id", sa.String(), nullable=False, server_default=LOCAL,
            comment="households.id of the household the row belongs to (see households)"))
    tables = {str(n) for (n,) in op.get_bind().execute(sa.text(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))}
    if "households" not in tables:
        _create_directory()
    op.execute(sa.text("INSERT INTO connection_directory (connection_id, household_id) "
                       "SELECT id, household_id FROM connections "
                       "WHERE id NOT IN (SELECT connection_id FROM connection_directory)"))


def _create_directory() -> None:
    """The directory's three tables (created together)."""
    op.create_table(
        "households",
        sa.Column("id", sa.String(), primary_key=True,
                  comment="a random id; 'local' is the installation's first household"),
        sa.Column("name", sa.String(), nullable=False, comment="shown to its members"),
        sa.Column("created_at", UtcTime, nullable=False, comment="when it was created"),
        sa.Column("created_by", sa.String(), comment="the e-mail of who created it; NULL for 'local'"),
        comment="Households: the people who share one set of connections and data.",
    )
    op.create_table(
        "members",
        sa.Column("email", sa.String(), primary_key=True,
                  comment="the lower-case e-mail address the person signs in with"),
        sa.Column("household_id", sa.String(), nullable=False, comment="households.id: a person belongs to one"),
        sa.Column("role", sa.String(), nullable=False,
                  comment="owner, member or viewer (a viewer cannot connect, disconnect or edit)"),
        sa.Column("invited_by", sa.String(), comment="the owner who invited them; NULL for who created the household"),
        sa.Column("invited_at", UtcTime, nullable=False, comment="when the invitation (or the household) was made"),
        sa.Column("joined_at", UtcTime, comment="their first sign-in; NULL while the invitation is open"),
        sa.Column("subject", sa.String(), comment="the identity provider's issuer and subject of their first sign-in"),
        comment="Who belongs to which household, with which role; an open invitation is a row not yet joined.",
    )
    op.create_table(
        "connection_directory",
        sa.Column("connection_id", sa.String(), primary_key=True, comment="connections.id"),
        sa.Column("household_id", sa.String(), nullable=False, comment="households.id of the connection"),
        comment="Which household each connection is in, so a webhook or a scheduled sync reaches the right store.",
    )


def downgrade() -> None:
    for table in ("connection_directory", "members", "households"):
        op.drop_table(table)
    for table in HOUSEHOLD_DATA:
        op.drop_column(table, "household_id")
