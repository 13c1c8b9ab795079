"""Households on one PostgreSQL database are kept apart by the database (row-level security, revision 0008).

Two households are synced from their own sandbox banks into one database; each household's engine
(`create_engine(url, household=…)`) must read exactly what a database holding that household alone gives, write
nothing into the other, and its SQL console must show nothing of the other. The login the tests use is a superuser
(which bypasses row-level security, so the app switches to the role finance_app); a non-superuser owner of the
tables is held by FORCE ROW LEVEL SECURITY; a login with BYPASSRLS but no finance_app is refused with a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command

from finance.alerts import Alert, AlertSettings
from finance.budgets import Budget
from finance.errors import StoreError
from finance.filters import TransactionFilter
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.recurring import Choice
from finance.sandbox.common import Clock
from finance.store import (
    accounts,
    alerts,
    budgets,
    cashflow,
    connections,
    console,
    migrate,
    preferences,
    recurring,
    reports,
    transactions,
)
from finance.store.copy import copy_store
from finance.store.db import create_engine, init_schema
from finance.store.schema import DIRECTORY_TABLES, LOCAL_HOUSEHOLD, metadata
from finance.sync import SyncEngine
from tests.conftest import START, connect
from tests.postgres import PostgresServer

OTHER = "h2"
HOUSEHOLD_TABLES = [t.name for t in metadata.sorted_tables if "household_id" in t.c and t.name not in DIRECTORY_TABLES]
SEEDS = {LOCAL_HOUSEHOLD: 7, OTHER: 8}
"""Each household's sandbox bank: another seed, so other ids and ledgers."""


def sync_household(engine: sa.Engine, seed: int) -> None:
    """Connect and sync a sandbox bank (its own emulator, on the tests' fixed clock) into `engine`'s household."""
    emulator = PluggyEmulator(clock=Clock(start=START), seed=seed)
    client = PluggyClient("test-id", "test-secret", transport=emulator.transport(), sleep=lambda _s: None,
                          now=emulator.clock.now)
    try:
        provider = PluggyProvider(client, now=emulator.clock.now)
        sync = SyncEngine(engine, {"pluggy": provider}, now=emulator.clock.now)
        result = sync.sync_connection(connect(provider, sync))
        assert result.outcome == "success", result.message
    finally:
        client.close()


@dataclass
class Database:
    url: str
    engines: dict[str, sa.Engine]

    def admin(self) -> sa.Engine:
        """The superuser with no household: bypasses row-level security, so it sees every household's rows."""
        return migrate.without_household(self.engines[LOCAL_HOUSEHOLD])


def open_database(server: PostgresServer, households: tuple[str, ...]) -> Database:
    url = server()
    engines = {h: create_engine(url, household=h) for h in households}
    init_schema(engines[households[0]])
    for household in households:
        sync_household(engines[household], SEEDS[household])
    return Database(url, engines)


@pytest.fixture(scope="module")
def shared(postgres_server: PostgresServer) -> Iterator[Database]:
    """Both households synced into one database."""
    database = open_database(postgres_server, (LOCAL_HOUSEHOLD, OTHER))
    yield database
    for engine in database.engines.values():
        engine.dispose()


@pytest.fixture(scope="module")
def alone(postgres_server: PostgresServer) -> Iterator[dict[str, Database]]:
    """Each household synced into a database of its own, as the same banks on the same clock."""
    databases = {h: open_database(postgres_server, (h,)) for h in (LOCAL_HOUSEHOLD, OTHER)}
    yield databases
    for database in databases.values():
        for engine in database.engines.values():
            engine.dispose()


def test_every_household_table_has_a_forced_policy(shared):
    with shared.admin().connect() as conn:
        rows = conn.execute(sa.text("""
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, count(p.polname) AS policies
            FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
            WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
            GROUP BY 1, 2, 3""")).all()
    secured = {name for name, enabled, forced, policies in rows if enabled and forced and policies == 1}
    assert set(HOUSEHOLD_TABLES) <= secured, set(HOUSEHOLD_TABLES) - secured
    assert secured.isdisjoint(DIRECTORY_TABLES | {"categories"})


def test_every_view_runs_with_the_rights_of_who_queries_it(shared):
    """A view runs as its owner unless security_invoker is set, which would skip the policies of the tables under
    it. The app defines none on PostgreSQL today (its views are the DuckDB snapshot's); one added later must set it."""
    with shared.admin().connect() as conn:
        conn.execute(sa.text("CREATE VIEW leaky AS SELECT id FROM transactions"))  # within this transaction only
        views = conn.execute(sa.text("""
            SELECT c.relname, coalesce('security_invoker=true' = ANY(c.reloptions), false) FROM pg_class c
            WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('v', 'm')""")).all()
        conn.rollback()
    assert dict(views) == {"leaky": False}  # the check sees a view that would leak …
    with shared.admin().connect() as conn:
        views = conn.execute(sa.text("""
            SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
              AND c.relkind IN ('v', 'm') AND NOT coalesce('security_invoker=true' = ANY(c.reloptions), false)
        """)).scalars().all()
    assert views == []  # … and the schema has none


def test_each_household_reads_only_its_own_rows(shared):
    with shared.admin().connect() as conn:
        everyone = {t: dict(conn.execute(sa.text(f"SELECT household_id, count(*) FROM {t} GROUP BY 1")).all())
                    for t in HOUSEHOLD_TABLES}
    assert everyone["transactions"].keys() == {LOCAL_HOUSEHOLD, OTHER}  # both live in the one table
    for household, engine in shared.engines.items():
        with engine.connect() as conn:
            for table in HOUSEHOLD_TABLES:
                seen = dict(conn.execute(sa.text(f"SELECT household_id, count(*) FROM {table} GROUP BY 1")).all())
                mine = everyone[table].get(household)
                assert seen == ({household: mine} if mine else {}), table


def _reads(conn: sa.Connection) -> dict[str, Any]:
    """What the pages read from the store, for one household."""
    start, end = date(2020, 1, 1), date(2027, 1, 1)
    currencies = cashflow.flow_currencies(conn, start, end)
    page = transactions.transaction_page(conn, TransactionFilter(), limit=10_000)
    return {
        "accounts_summary": accounts.accounts_summary(conn), "balance_totals": accounts.balance_totals(conn),
        "balance_history": accounts.balance_history_table(conn, start=start, end=end),
        "connections": connections.connections_status(conn).drop(columns=["last_attempt_at"], errors="ignore"),
        "page": page.rows, "page_total": page.total, "page_totals": page.totals,
        "export": transactions.export_table(conn, TransactionFilter()).to_pandas(),
        "categories": transactions.category_options(conn), "account_options": transactions.account_options(conn),
        "date_range": transactions.transaction_date_range(conn),
        "net_worth": reports.net_worth_by_day(conn, start, end),
        "cashflow": reports.monthly_cashflow(conn, start, end),
        "spending": reports.spending_by_category(conn, start, end),
        "daily": reports.daily_flows(conn, start, end),
        "figures": reports.period_figures(conn, date(2026, 10, 1), end, date(2026, 9, 1)),
        "merchants": reports.top_merchants(conn, start, end), "as_of": reports.as_of_by_currency(conn),
        "currencies": currencies, "flows": [cashflow.cash_flow(conn, start, end, c) for c in currencies],
        "budgets": budgets.budgets_until(conn, end),
        "recurring": recurring.candidate_rows(conn).sort_values("id"),  # in no particular order
        "alerts": alerts.list_alerts(conn), "alert_settings": alerts.read_settings(conn),
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame):
        return a.reset_index(drop=True).equals(b.reset_index(drop=True))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("household", [LOCAL_HOUSEHOLD, OTHER])
def test_every_read_of_a_household_is_what_a_database_of_its_own_gives(shared, alone, household):
    with shared.engines[household].connect() as conn:
        together = _reads(conn)
    with alone[household].engines[household].connect() as conn:
        by_itself = _reads(conn)
    assert together["page_total"] > 0 and len(together["accounts_summary"]) > 0
    different = [name for name in by_itself if not _same(together[name], by_itself[name])]
    assert different == []


def _ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return {str(i) for t in ("connections", "accounts", "transactions")
                for i in conn.execute(sa.text(f"SELECT id FROM {t}")).scalars()}


def test_a_write_naming_or_touching_the_other_household_is_refused(shared):
    theirs = sorted(_ids(shared.engines[LOCAL_HOUSEHOLD]))
    engine = shared.engines[OTHER]
    now = datetime(2026, 11, 2, tzinfo=UTC)
    refusals = [
        ("INSERT INTO alerts (key, kind, title, detail, created_at, email_attempts, household_id) "
         "VALUES ('k', 'reconnect', 't', 'd', :now, 0, 'local')"),
        "UPDATE transactions SET household_id = 'local'",
        "UPDATE connections SET household_id = 'local'",
    ]
    for statement in refusals:
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), engine.begin() as conn:
            conn.execute(sa.text(statement), {"now": now})
    with engine.begin() as conn:  # their rows are not there to change or delete
        assert conn.execute(sa.text("UPDATE transactions SET note = 'x' WHERE id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": theirs}).rowcount == 0
        assert conn.execute(sa.text("DELETE FROM accounts WHERE id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": theirs}).rowcount == 0
    assert set(theirs) <= _ids(shared.engines[LOCAL_HOUSEHOLD])


CATALOG_QUERIES = (
    "SELECT * FROM information_schema.tables", "SELECT * FROM information_schema.columns",
    "SELECT * FROM pg_catalog.pg_class", "SELECT * FROM pg_catalog.pg_namespace",
    "SELECT * FROM duckdb_tables()", "SELECT * FROM duckdb_columns()", "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_constraints()", "SELECT * FROM duckdb_indexes()",
)


@pytest.mark.slow
def test_the_console_of_one_household_shows_nothing_of_the_other(shared):
    theirs = _ids(shared.engines[LOCAL_HOUSEHOLD])
    mine = _ids(shared.engines[OTHER])
    assert theirs and mine and theirs.isdisjoint(mine)
    seen: set[str] = set()
    tables = [t.name for t in console.schema_doc() if t.name not in DIRECTORY_TABLES]  # the console has no directory
    for sql in (*(f'SELECT * FROM "{name}"' for name in tables), *CATALOG_QUERIES):
        result = console.run_query(shared.engines[OTHER], sql, max_rows=1_000_000)
        cells = {str(v) for column in result.table.columns for v in column.to_pylist() if v is not None}
        text = "\n".join(cells)
        assert not result.truncated and not [i for i in theirs if i in text], sql
        seen |= cells
    assert mine <= seen  # the household's own rows are all there
    assert LOCAL_HOUSEHOLD not in seen and OTHER in seen


def test_the_same_keys_a_household_chooses_coexist_in_two_households(shared):
    month = date(2026, 12, 1)
    now = datetime(2026, 11, 2, tzinfo=UTC)
    for household, amount in ((LOCAL_HOUSEHOLD, Decimal("100.00")), (OTHER, Decimal("250.00"))):
        engine = shared.engines[household]
        budgets.set_budget(engine, Budget(month, "food", "BRL", amount), now=now)
        recurring.save_choice(engine, Choice(key="series:same", status="confirmed", name=household), now=now)
        alerts.save_settings(engine, AlertSettings(thresholds={"BRL": amount}), actor="user", now=now)
        with engine.begin() as conn:
            alerts.raise_alerts(conn, [Alert("over_budget:2026-12:food:BRL", "over_budget", household, "d")],
                                email=False, now=now)
            preferences.set_preference(conn, "user", "language", household)
            conn.execute(sa.text("INSERT INTO securities (id, connection_id, name, type, currency, updated_at) "
                                 "VALUES ('plaid:same', 'c', :name, 'equity', 'USD', :now)"),
                         {"name": household, "now": now})
    for household, amount in ((LOCAL_HOUSEHOLD, Decimal("100.00")), (OTHER, Decimal("250.00"))):
        with shared.engines[household].connect() as conn:
            assert [b.amount for b in budgets.budgets_of_month(conn, month)] == [amount]
            assert recurring.choices_of(conn, ["series:same"])["series:same"].name == household
            assert alerts.read_settings(conn).thresholds == {"BRL": amount}
            assert alerts.list_alerts(conn)["title"].tolist() == [household]
            assert preferences.get_preference(conn, "user", "language") == household
            assert conn.execute(sa.text("SELECT name FROM securities WHERE id = 'plaid:same'")).scalars().all() \
                == [household]


RULE = "INSERT INTO category_rules (id, merchant, category, created_at) VALUES ('r', 'm', 'food', now())"
"""A write that names no household."""


def _session(conn: sa.Connection) -> tuple[int, str | None, str]:
    return tuple(conn.execute(sa.text("SELECT pg_backend_pid(), current_setting('finance.household', true), "
                                      "current_user")).one())


def test_a_pooled_connection_carries_no_household_after_a_rollback_or_a_commit(shared):
    engine = create_engine(shared.url, pool_size=1, household=OTHER)
    admin = migrate.without_household(engine)
    try:
        with admin.connect() as conn:
            pid, household, login = _session(conn)
        assert household is None and login != migrate.APP_ROLE  # the superuser, as it logged in
        for end in ("rollback", "commit"):
            with engine.connect() as conn:
                assert _session(conn) == (pid, OTHER, migrate.APP_ROLE)
                getattr(conn, end)()
                assert _session(conn) == (pid, OTHER, migrate.APP_ROLE)  # the next transaction sets it again
                conn.rollback()
            with admin.connect() as conn:
                assert _session(conn) in ((pid, "", login), (pid, None, login))
                assert conn.execute(sa.text("SELECT count(*) FROM transactions")).scalar_one() > 0  # superuser
                conn.execute(sa.text(f"SET LOCAL ROLE {migrate.APP_ROLE}"))
                assert conn.execute(sa.text("SELECT count(*) FROM transactions")).scalar_one() == 0  # fail closed
        with pytest.raises(sa.exc.IntegrityError, match="household_id"), admin.begin() as conn:
            conn.execute(sa.text(RULE))  # even the superuser cannot write a row of no household
    finally:
        engine.dispose()


def test_a_households_queries_run_in_utc_and_are_never_jit_compiled(shared):
    """A household's queries are small, but some are estimated costly enough to be JIT-compiled, which then took
    longer than running them (bench.scale): the app's sessions turn JIT off."""
    for engine in (shared.engines[OTHER], migrate.without_household(shared.engines[OTHER])):
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW jit")).scalar_one() == "off"
            assert conn.execute(sa.text("SHOW timezone")).scalar_one() == "UTC"
            plan = "\n".join(conn.execute(sa.text(  # 1,000 rows, estimated at a billion: compiled if JIT is on
                "EXPLAIN (ANALYZE) SELECT count(*) FROM generate_series(1, (SELECT 10)) a, "
                "generate_series(1, (SELECT 10)) b, generate_series(1, (SELECT 10)) c")).scalars())
            assert "Execution Time" in plan and "JIT" not in plan


def test_disposing_one_households_engine_leaves_the_others_working(shared):
    mine, theirs = create_engine(shared.url, household=OTHER), create_engine(shared.url)
    assert mine.pool is theirs.pool  # one pool per database for every household
    with theirs.connect() as busy:
        mine.dispose()
        assert busy.execute(sa.text("SELECT count(*) FROM accounts")).scalar_one() > 0
    for engine in (mine, theirs):
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM accounts")).scalar_one() > 0
        engine.dispose()


def test_a_non_superuser_owner_is_held_to_the_policies_and_reads_nothing_without_a_household(
        postgres_server, caplog):
    owner = postgres_server.create_role()
    url = postgres_server.create_database(owner=owner)
    engines = {h: create_engine(url, household=h) for h in (LOCAL_HOUSEHOLD, OTHER)}
    admin = migrate.without_household(engines[LOCAL_HOUSEHOLD])
    try:
        with caplog.at_level(logging.WARNING, logger="finance.store.migrate"):
            init_schema(engines[LOCAL_HOUSEHOLD])  # migrations as the owner, with no household
        assert "may not grant itself" in caplog.text
        for household, engine in engines.items():
            sync_household(engine, SEEDS[household])
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT current_user")).scalar_one() == owner  # no switch needed
                assert set(conn.execute(sa.text("SELECT DISTINCT household_id FROM transactions")).scalars()) \
                    == {household}
        with admin.connect() as conn:
            assert all(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() == 0 for t in HOUSEHOLD_TABLES)
            assert conn.execute(sa.text("SELECT count(*) FROM categories")).scalar_one() > 0  # shared: readable
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), admin.begin() as conn:
            conn.execute(sa.text(RULE))
    finally:
        for engine in engines.values():
            engine.dispose()


def test_a_login_that_bypasses_the_policies_without_the_app_role_is_refused(postgres_server, shared):
    bypasser = postgres_server.create_role("BYPASSRLS")
    database = sa.engine.make_url(shared.url).database
    postgres_server.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{bypasser}"')
    with migrate.without_household(create_engine(shared.url)).begin() as conn:
        conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{bypasser}"'))
    engine = create_engine(postgres_server.dsn(database, bypasser), household=OTHER)
    try:
        with pytest.raises(StoreError, match="finance_app") as refused, engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM transactions"))
        assert refused.value.code == "STORE_NO_APP_ROLE"
        postgres_server.execute(f'GRANT {migrate.APP_ROLE} TO "{bypasser}"')  # as the message says
        with engine.connect() as conn:
            assert set(conn.execute(sa.text("SELECT DISTINCT household_id FROM transactions")).scalars()) == {OTHER}
    finally:
        engine.dispose()


def _household_file(path: Path, household: str) -> sa.Engine:
    """A DuckDB store holding one household's synced bank (as a household's own file does)."""
    engine = create_engine(f"duckdb:///{path}")
    init_schema(engine)
    sync_household(engine, 9)
    with engine.begin() as conn:
        for table in HOUSEHOLD_TABLES:
            conn.execute(sa.text(f"UPDATE {table} SET household_id = :h"), {"h": household})
    return engine


def test_db_copy_moves_a_households_file_beside_the_others(shared, tmp_path):
    source = _household_file(tmp_path / "h3.duckdb", "h3")
    target = create_engine(shared.url)
    before = {h: _ids(e) for h, e in shared.engines.items()}
    with migrate.without_household(target).begin() as conn:  # as a previous version left it: upgraded by the copy
        command.downgrade(migrate._config(conn), "0008_row_level_security")
    try:
        counts = copy_store(source, target)
        with source.connect() as conn:
            ids = _ids(source)
            expected = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in HOUSEHOLD_TABLES}
        assert counts["transactions"] == expected["transactions"] > 0
        third = create_engine(shared.url, household="h3")
        with third.connect() as conn:
            assert {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in HOUSEHOLD_TABLES} \
                == expected
        assert _ids(third) == ids
        assert {h: _ids(e) for h, e in shared.engines.items()} == before  # the others are untouched
        with pytest.raises(StoreError, match="not empty for the household h3"):
            copy_store(source, target)  # that household is there now
        third.dispose()
    finally:
        source.dispose()
        target.dispose()

