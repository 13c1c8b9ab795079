"""File import (issue 19, item 4): the batches, the saved CSV mappings, the keep-both choices, and each imported
transaction's batch.

Like the baseline, it adopts what is already there: a store made by code that created these tables before
migrations existed (with `create_all`) keeps them as they are.

Revision ID: 0005_file_import
Revises: 0004_portfolio_and_reconnects
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_file_import"
down_revision: str | None = "0004_portfolio_and_reconnects"
branch_labels = None
depends_on = None

Money = sa.Numeric(18, 2)
UtcTime = sa.DateTime(timezone=True)


def _present() -> dict[str, set[str]]:
    """The columns of every table the store has (information_schema: DuckDB and PostgreSQL both have it)."""
    rows = op.get_bind().execute(sa.text("SELECT table_name, column_name FROM information_schema.columns "
                                         "WHERE table_schema = current_schema()")).all()
    present: dict[str, set[str]] = {}
    for table_name, column_name in rows:
        present.setdefault(str(table_name), set()).add(str(column_name))
    return present


def upgrade() -> None:
    present = _present()
    if "import_batch_id" not in present.get("transactions", set()):
        op.add_column("transactions", sa.Column(
            "import_batch_id", sa.String(), nullable=True,
            comment="the file import that added this row (import_batches.id); NULL for rows a provider synced"))
    if "import_batches" not in present:
        _import_batches()
    if "import_mappings" not in present:
        _import_mappings()
    if "import_reviews" not in present:
        _import_reviews()


def _import_batches() -> None:
    op.create_table(
        "import_batches",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("file_name", sa.String(), nullable=False, comment="as uploaded; shown as text"),
        sa.Column("file_sha256", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False, comment="csv or ofx"),
        sa.Column("imported_at", UtcTime, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("rows_in_file", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False, comment="rows this import added (undo removes exactly these)"),
        sa.Column("duplicates", sa.Integer(), nullable=False, comment="file rows a synced row already describes"),
        sa.Column("already_imported", sa.Integer(), nullable=False, comment="file rows an earlier import brought"),
        sa.Column("ambiguous_kept", sa.Integer(), nullable=False),
        sa.Column("ambiguous_skipped", sa.Integer(), nullable=False),
        sa.Column("first_date", sa.Date()),
        sa.Column("last_date", sa.Date()),
        sa.Column("set_balance", Money, comment="the closing balance the file gave a manual account that had none"),
        sa.Column("set_balance_as_of", UtcTime),
        sa.Column("undone_at", UtcTime, comment="when the import was undone (its rows removed)"),
        comment="One row per file import; the import and its undo are also in audit_log.",
    )


def _import_mappings() -> None:
    op.create_table(
        "import_mappings",
        sa.Column("account_id", sa.String(), primary_key=True),
        sa.Column("headers", sa.String(), nullable=False, comment="the CSV header row, as JSON"),
        sa.Column("mapping", sa.String(), nullable=False,
                  comment="finance.imports.csv_reader.ColumnMapping, as JSON"),
        sa.Column("updated_at", UtcTime, nullable=False),
        comment="The CSV column mapping confirmed for each account, reused by its next import.",
    )


def _import_reviews() -> None:
    op.create_table(
        "import_reviews",
        sa.Column("transaction_id", sa.String(), primary_key=True, comment="an imported row the user chose to keep"),
        sa.Column("synced_id", sa.String(), nullable=False, comment="the synced row it looked like"),
        sa.Column("decided_at", UtcTime, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        comment="Imported rows the user kept beside a synced row that a later sync brought with the same amount and "
                "dates but another description (Import files page); also in audit_log.",
    )


def downgrade() -> None:
    op.drop_table("import_reviews")
    op.drop_table("import_mappings")
    op.drop_table("import_batches")
    op.drop_column("transactions", "import_batch_id")
