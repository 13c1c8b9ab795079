"""The job queue of background work on PostgreSQL (issue 14): procrastinate's tables, types and functions, as the
pinned procrastinate (requirements.txt) defines them. Nothing on DuckDB, where the app's own worker runs the
background work.

A later procrastinate that changes its schema ships migration files (procrastinate/sql/migrations/): upgrading it
means a revision of ours that runs the files between the two versions, in order.

Revision ID: 0003_job_queue
Revises: 0002_pg_transaction_indexes
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0003_job_queue"
down_revision: str | None = "0002_pg_transaction_indexes"
branch_labels = None
depends_on = None

TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs", "procrastinate_workers")
TYPES = ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))  # no parameters: every `%` is literal


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE")
    bind.exec_driver_sql("""
        DO $$ DECLARE routine record; BEGIN
            FOR routine IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                           JOIN pg_namespace n ON n.oid = p.pronamespace
                           WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%%' LOOP
                EXECUTE 'DROP ROUTINE IF EXISTS ' || routine.signature || ' CASCADE';
            END LOOP;
        END $$""")
    bind.exec_driver_sql(f"DROP TYPE IF EXISTS {', '.join(TYPES)} CASCADE")
