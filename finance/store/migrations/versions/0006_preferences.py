"""Each person's settings (issue 18): the interface language a user chose, kept per user.

Like the baseline, it adopts what is already there: a store made by the i18n code before this revision existed
(which created the table with `create_all`) keeps it as it is.

Revision ID: 0006_preferences
Revises: 0005_file_import
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_preferences"
down_revision: str | None = "0005_file_import"
branch_labels = None
depends_on = None

UtcTime = sa.DateTime(timezone=True)


def _tables() -> set[str]:
    """The tables the store has (information_schema: DuckDB and PostgreSQL both have it)."""
    rows = op.get_bind().execute(sa.text("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = current_schema()")).all()
    return {str(name) for (name,) in rows}


def upgrade() -> None:
    if "preferences" in _tables():
        return
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(), primary_key=True, comment="who: the signed-in e-mail, or \"user\""),
        sa.Column("name", sa.String(), primary_key=True, comment="which setting, e.g. language"),
        sa.Column("value", sa.String(), nullable=False, comment="the setting's value, e.g. pt_BR"),
        sa.Column("updated_at", UtcTime, nullable=False, comment="when it was last chosen"),
        comment="Per-user settings such as the interface language (finance/i18n.py).",
    )


def downgrade() -> None:
    op.drop_table("preferences")
