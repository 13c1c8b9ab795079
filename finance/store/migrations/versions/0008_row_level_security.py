"""Row-level security (issue 15): on PostgreSQL the database itself keeps households apart.

Every table whose rows belong to a household gets a policy: a transaction sees, changes and adds only the rows of the
household it set (`finance.household`, set by finance.store.db at the start of each of the app's transactions). FORCE
makes the policy bind the tables' owner too; a login that could still bypass it (a superuser, BYPASSRLS) has its
transactions switch to the role finance_app, which finance.store.migrate creates and grants at every upgrade. A
transaction that set no household sees none of these rows, and a row written without one fails (its household_id
default is then NULL, which the column refuses).

Keys that a household chooses (an alert's key, a setting's name, a recurring series, a preference, a month's
budget of a category) and the provider's security ids (the same security held in two households) would collide
between households in one table: their primary and unique keys now begin with household_id. An index on
(household_id, booked_date) serves a household's transactions by day.

Nothing on DuckDB: each household has a store file of its own there, so a file's rows are all one household's and
no key can collide.

Revision ID: 0008_row_level_security
Revises: 0007_households
"""

from __future__ import annotations

from alembic import op

revision = "0008_row_level_security"
down_revision: str | None = "0007_households"
branch_labels = None
depends_on = None

HOUSEHOLD_DATA = (
    "connections", "accounts", "transactions", "balance_history", "sync_runs", "webhook_events", "audit_log",
    "category_rules", "alerts", "alert_settings", "recurring_choices", "exchange_rates", "budgets",
    "balance_thresholds", "securities", "holdings", "investment_transactions", "liabilities", "loan_payments",
    "card_bills", "portfolio_status", "account_links", "import_batches", "import_mappings", "import_reviews",
    "preferences",
)
"""The tables whose rows belong to a household (0007's; the directory tables `members` and `connection_directory`
also name a household but are read across households, by sign-in and the routing of webhooks, so have no policy)."""

HOUSEHOLD = "nullif(current_setting('finance.household', true), '')"
"""The transaction's household; NULL when none is set (a connection that once set one reads '' afterwards)."""

PRIMARY_KEYS = {"alerts": ("key",), "alert_settings": ("name",), "recurring_choices": ("series_key",),
                "preferences": ("user_id", "name"), "securities": ("id",)}
"""The primary keys that could collide between households, as they were."""

BUDGETS_UNIQUE = "budgets_month_category_currency"
BUDGETS_KEY = ("month", "category", "currency")
INDEX = "transactions_household_day"


def _primary_key(table: str) -> str:
    return str(op.get_bind().exec_driver_sql(
        f"SELECT conname FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype = 'p'").scalar_one())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in HOUSEHOLD_DATA:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN household_id SET DEFAULT {HOUSEHOLD}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY household ON {table} USING (household_id = {HOUSEHOLD}) "
                   f"WITH CHECK (household_id = {HOUSEHOLD})")
    for table, columns in PRIMARY_KEYS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_primary_key(table)}, "
                   f"ADD PRIMARY KEY (household_id, {', '.join(columns)})")
    op.execute(f"ALTER TABLE budgets DROP CONSTRAINT {BUDGETS_UNIQUE}, "
               f"ADD CONSTRAINT {BUDGETS_UNIQUE} UNIQUE (household_id, {', '.join(BUDGETS_KEY)})")
    op.create_index(INDEX, "transactions", ["household_id", "booked_date"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="transactions")
    op.execute(f"ALTER TABLE budgets DROP CONSTRAINT {BUDGETS_UNIQUE}, "
               f"ADD CONSTRAINT {BUDGETS_UNIQUE} UNIQUE ({', '.join(BUDGETS_KEY)})")
    for table, columns in PRIMARY_KEYS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_primary_key(table)}, ADD PRIMARY KEY ({', '.join(columns)})")
    for table in HOUSEHOLD_DATA:
        op.execute(f"DROP POLICY household ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN household_id SET DEFAULT 'local'")
