"""PostgreSQL's plans for one household's pages when many households share the database: a household's rows are
found through an index that begins with its household, not by reading other households' rows and filtering them
out under row-level security (bench.scale measures the times at 10M transactions; this checks the plan at a size a
test can build)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from finance import money
from finance.store import reports
from finance.store.db import create_engine, init_schema
from tests.conftest import START
from tests.postgres import PostgresServer
from tests.test_row_level_security import sync_household

OTHERS = 300
"""Households beside the one whose pages are planned: four accounts each, a balance a day for a year."""


@pytest.fixture(scope="module")
def crowded(postgres_server: PostgresServer) -> Iterator[sa.Engine]:
    """One household synced from a sandbox bank, among OTHERS households' balance history; statistics gathered."""
    url = postgres_server()
    engine = create_engine(url, household="h1")
    init_schema(engine)
    sync_household(engine, 7)
    admin = sa.create_engine(url)  # the tests' superuser: bypasses row-level security
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO balance_history (household_id, account_id, day, balance, currency, source) "
                "SELECT 'other-' || h, 'pluggy:other-' || h || '-' || a, d::date, 100, 'BRL', 'reconstructed' "
                "FROM generate_series(1, :others) h, generate_series(1, 4) a, "
                "generate_series(CAST(:start AS date) - 365, CAST(:start AS date), interval '1 day') d"),
                {"others": OTHERS, "start": START.date()})
        with admin.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    finally:
        admin.dispose()
    yield engine
    engine.dispose()


def plan(engine: sa.Engine, read: Any) -> str:
    """PostgreSQL's plan (EXPLAIN ANALYZE, in the household's transaction) of the one query `read(conn)` runs."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", record)
        read(conn)
        sa.event.remove(conn, "before_cursor_execute", record)
        (statement, parameters), = statements
        return "\n".join(conn.exec_driver_sql("EXPLAIN (ANALYZE) " + statement, parameters).scalars())


def test_net_worth_looks_each_balance_up_by_household_account_and_day(crowded):
    start, end = money.preset_period("Last 12 months", START.date())
    found = plan(crowded, lambda conn: reports.net_worth_by_day(conn, start, end))
    assert "balance_history_household_account_day" in found, found
    assert "Bitmap Heap Scan on balance_history" not in found
