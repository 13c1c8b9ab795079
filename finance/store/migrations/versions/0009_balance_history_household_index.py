"""PostgreSQL: index balance_history by (household, account, day), so a household's net worth by day looks each
account's balance up without reading other households' rows.

The Overview's net worth asks, for each account and day, the latest balance on or before it (a lateral lookup,
newest first, one row). Under row-level security (revision 0008) the household's predicate is a filter the primary
key (account_id, day) cannot check, and the planner, expecting most of an account's rows to fail it once many
households share the table, read every earlier row of each account and sorted them instead: 1,460 lookups of ~180
rows each, 0.3–0.75 s of a 1.4–2 s Overview with 200 households (bench.scale; bench/RESULTS.md "Many users' data").
With the household in the index each lookup is one index probe (net worth 0.1 s in the same runs).

Nothing on DuckDB: a household's file holds its rows only, and DuckDB reads balance_history with an ASOF join.

Revision ID: 0009_balance_history_household
Revises: 0008_row_level_security
"""

from __future__ import annotations

from alembic import op

revision = "0009_balance_history_household"
down_revision: str | None = "0008_row_level_security"
branch_labels = None
depends_on = None

INDEX = "balance_history_household_account_day"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index(INDEX, "balance_history", ["household_id", "account_id", "day"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="balance_history")
