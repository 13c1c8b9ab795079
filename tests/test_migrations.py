"""Versioned migrations (Alembic, finance/store/migrations): one history for DuckDB and PostgreSQL.

After `upgrade head` a database matches finance/store/schema.py column for column on both engines (a schema change
without a revision fails here); `db upgrade` is idempotent and prints the revision; a DuckDB store made by earlier
code (main at 90f02f4, and an older one from before the webhook columns) upgrades in place with nothing lost; a
PostgreSQL store behind the code is refused with the command to run; `db copy` moves a whole DuckDB store into an
empty PostgreSQL database and gives the same console answers there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa

from finance.cli import main
from finance.config import load_settings
from finance.errors import StoreError
from finance.services import open_services
from finance.store import console, migrate
from finance.store.copy import copy_store
from finance.store.db import create_engine, init_schema
from finance.store.schema import metadata
from tests.conftest import store_engine
from tests.fixtures.schemas import schema_90f02f4, schema_before_webhooks

pytestmark = pytest.mark.engines

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def _family(data_type: str, precision: object, scale: object) -> str:
    """A column type as both engines' information_schema name it, reduced to what the schema decides."""
    kind = data_type.lower()
    if kind.startswith(("decimal", "numeric")):
        return f"numeric({precision},{scale})"
    for family, names in {"text": ("varchar", "character varying", "text"), "timestamptz": ("timestamp with",),
                          "date": ("date",), "boolean": ("boolean",), "integer": ("integer", "int4")}.items():
        if kind.startswith(names):
            return family
    return kind


def _expected(column: sa.Column) -> str:
    kind = column.type
    if isinstance(kind, sa.Numeric):
        return f"numeric({kind.precision},{kind.scale})"
    if isinstance(kind, sa.DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    return {sa.String: "text", sa.Date: "date", sa.Boolean: "boolean", sa.Integer: "integer"}[type(kind)]


def database_columns(engine: sa.Engine) -> dict[str, dict[str, tuple[str, bool]]]:
    """Per table, per column: (type family, nullable), read from information_schema (both engines have it)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("""
            SELECT table_name, column_name, data_type, numeric_precision, numeric_scale, is_nullable
            FROM information_schema.columns WHERE table_schema = current_schema()""")).all()
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, kind, precision, scale, nullable in rows:
        out.setdefault(table, {})[column] = (_family(kind, precision, scale), nullable == "YES")
    out.pop("alembic_version", None)
    return {table: columns for table, columns in out.items() if _ours(table)}


def _ours(table: object) -> bool:
    """A table of schema.py, not the job queue's (procrastinate's own schema, revision 0003; tests/test_jobs.py)."""
    return not str(table).startswith("procrastinate_")


def schema_columns() -> dict[str, dict[str, tuple[str, bool]]]:
    return {t.name: {c.name: (_expected(c), bool(c.nullable) and not c.primary_key) for c in t.columns}
            for t in metadata.sorted_tables}


def database_indexes(engine: sa.Engine) -> set[tuple[str, str]]:
    """(table, index) for every index that is not a primary key or unique constraint's."""
    with engine.connect() as conn:
        if engine.dialect.name == "duckdb":
            rows = conn.execute(sa.text("SELECT table_name, index_name FROM duckdb_indexes()")).all()
        else:
            rows = conn.execute(sa.text("""
                SELECT i.tablename, i.indexname FROM pg_indexes i WHERE i.schemaname = current_schema()
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""")).all()
    return {(str(t), str(i)) for t, i in rows if _ours(t)}


def schema_indexes(dialect: str) -> set[tuple[str, str]]:
    """The schema's indexes that are created on `dialect` (some are PostgreSQL's only)."""
    return {(t.name, str(ix.name)) for t in metadata.sorted_tables for ix in t.indexes
            if ix._ddl_if is None or ix._ddl_if.dialect in (None, dialect)}


def test_upgrade_head_makes_exactly_the_schema_and_repeats_as_a_no_op(database_url):
    engine = create_engine(database_url)
    try:
        assert migrate.current_revision(engine) is None
        assert migrate.upgrade(engine) == migrate.head_revision() == migrate.current_revision(engine)
        assert database_columns(engine) == schema_columns()
        assert database_indexes(engine) == schema_indexes(engine.dialect.name)
        assert migrate.upgrade(engine) == migrate.head_revision()  # nothing left to do
    finally:
        engine.dispose()


def test_db_upgrade_prints_the_revision_and_is_idempotent(offline, capsys):
    for _ in range(2):
        assert main(["db", "upgrade"]) == 0
        assert f"schema revision {migrate.head_revision()}" in capsys.readouterr().out


def test_a_postgresql_store_behind_the_code_is_refused_with_the_command(postgres_server, monkeypatch, tmp_path):
    monkeypatch.setenv("FINANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINANCE_DATABASE_URL", postgres_server())
    with pytest.raises(StoreError, match="python -m finance db upgrade") as caught:
        open_services(load_settings())
    assert caught.value.code == "STORE_BEHIND"
    assert main(["db", "upgrade"]) == 0
    services = open_services(load_settings())
    with migrate.without_household(services.engine).begin() as conn:  # as a newer version of the app would leave it
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    services.engine.dispose()
    with pytest.raises(StoreError, match="newer version of the app") as caught:
        open_services(load_settings())
    assert caught.value.code == "STORE_AHEAD"


def _old_store(path: Path, schema: ModuleType) -> sa.Engine:
    """A DuckDB store made by earlier code: its schema, a connection with an account and two transactions."""
    engine = sa.create_engine(f"duckdb:///{path}")
    schema.metadata.create_all(engine)
    base = {"created_at": NOW, "updated_at": NOW}
    with engine.begin() as conn:
        conn.execute(schema.connections.insert().values(id="pluggy:1", provider="pluggy", external_id="1",
                                                        status="active", encrypted_secret="gAAAA-cipher", **base))
        conn.execute(schema.accounts.insert().values(
            id="pluggy:a", connection_id="pluggy:1", provider="pluggy", external_id="a", type="checking", name="Conta",
            currency="BRL", current_balance=Decimal("10.50"), first_seen_at=NOW, last_seen_at=NOW))
        conn.execute(schema.transactions.insert(), [{
            "id": f"pluggy:t{i}", "account_id": "pluggy:a", "connection_id": "pluggy:1", "provider": "pluggy",
            "external_id": f"t{i}", "booked_date": date(2026, 10, i), "amount": Decimal(f"-{i}.25"), "currency": "BRL",
            "description": f"Padaria {i}", "category": "food", "status": "posted", "note": "mine" if i == 1 else None,
            "first_seen_at": NOW, "last_seen_at": NOW} for i in (1, 2)])
    return engine


@pytest.mark.parametrize("schema", [schema_90f02f4, schema_before_webhooks], ids=["main-90f02f4", "before-webhooks"])
def test_a_duckdb_store_made_by_earlier_code_upgrades_in_place_with_nothing_lost(tmp_path, schema, db_kind):
    if db_kind != "duckdb":
        pytest.skip("DuckDB files are what earlier code made")
    old = _old_store(tmp_path / "old.duckdb", schema)
    with old.connect() as conn:
        before = {t: sorted(conn.execute(sa.text(f"SELECT * FROM {t}")).all(), key=repr)
                  for t in ("connections", "accounts", "transactions")}
    old.dispose()
    engine = create_engine(f"duckdb:///{tmp_path / 'old.duckdb'}")
    try:
        init_schema(engine, upgrade=False)  # as the app and the CLI do at start
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert database_columns(engine) == schema_columns()
        assert database_indexes(engine) == schema_indexes("duckdb")
        with engine.connect() as conn:
            for table, rows in before.items():
                result = conn.execute(sa.text(f"SELECT * FROM {table}"))
                names = list(result.keys())
                after = [dict(zip(names, row, strict=True)) for row in result]
                old_names = list(before_columns(schema, table))
                assert sorted((tuple(r[n] for n in old_names) for r in after), key=repr) == rows
            assert conn.execute(sa.text("SELECT count(*) FROM categories")).scalar() > 0
    finally:
        engine.dispose()


def before_columns(schema: ModuleType, table: str) -> list[str]:
    return [c.name for c in schema.metadata.tables[table].columns]


def test_db_copy_moves_every_table_into_an_empty_postgresql_database(demo_copy, postgres_server, capsys, db_kind):
    if db_kind != "duckdb":
        pytest.skip("db copy reads a DuckDB store")
    target = postgres_server()
    assert main(["db", "copy", "--to", target]) == 0
    out = capsys.readouterr().out
    assert "every table's count matches" in out
    source, copied = store_engine(), create_engine(target)
    try:
        with source.connect() as a, copied.connect() as b:
            for table in metadata.sorted_tables:
                query = sa.select(table).order_by(*table.columns)
                assert a.execute(query).all() == b.execute(query).all(), table.name
            secrets = b.execute(sa.text("SELECT encrypted_secret FROM connections")).scalars().all()
            tokens = [s for s in secrets if s]
            assert tokens and all(t.startswith("gAAAA") for t in tokens)  # still Fernet ciphertext
        for sql in ("SELECT currency, SUM(amount) AS total, COUNT(*) AS n FROM transactions GROUP BY 1 ORDER BY 1",
                    "SELECT date_trunc('month', booked_date) AS month, MAX(first_seen_at) AS seen, "
                    "BOOL_OR(status = 'pending') AS pending FROM transactions GROUP BY 1 ORDER BY 1",
                    # columns that hold only NULLs keep their types on PostgreSQL's snapshot too
                    "SELECT count(*) FILTER (WHERE deleted_at > TIMESTAMPTZ '2000-01-01') AS gone, "
                    "SUM(installment_total) + 0 AS parts, MAX(note) AS note FROM transactions"):
            assert (console.run_query(source, sql).frame().to_dict()
                    == console.run_query(copied, sql).frame().to_dict()), sql
        # A second copy into the now full database is refused, and changes nothing.
        with copied.connect() as b:
            rows = b.execute(sa.text("SELECT count(*) FROM transactions")).scalar()
        assert main(["db", "copy", "--to", target]) == 2
        assert "not empty" in capsys.readouterr().err
        with copied.connect() as b:
            assert b.execute(sa.text("SELECT count(*) FROM transactions")).scalar() == rows
        with pytest.raises(StoreError, match="DuckDB store"):
            copy_store(copied, copied)
    finally:
        source.dispose()
        copied.dispose()
