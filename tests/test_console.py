"""The read-only SQL console: attacks refused with a clear message and the store unchanged, limits, errors,
downloads, saved queries and the documented schema."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from finance.errors import ConsoleError
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from finance.store import console
from finance.store.console import run_query
from finance.store.console_process import open_sandbox
from finance.store.db import create_engine, init_schema
from finance.store.schema import connections, metadata
from finance.sync import SyncEngine
from tests.conftest import START, connect

pytestmark = pytest.mark.engines

SECRET = "gAAAAA-sealed-token-that-must-never-leak"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A synced sandbox store whose connection holds an encrypted secret (shared: every test leaves it as is)."""
    emulator = PluggyEmulator(clock=Clock(start=START), seed=7)
    client = PluggyClient("test-id", "test-secret", transport=emulator.transport(), sleep=lambda _s: None,
                          now=emulator.clock.now)
    provider = PluggyProvider(client, now=emulator.clock.now)
    engine = create_engine(f"duckdb:///{tmp_path_factory.mktemp('console') / 'store.duckdb'}")
    init_schema(engine)
    sync = SyncEngine(engine, {"pluggy": provider}, now=emulator.clock.now)
    assert sync.sync_connection(connect(provider, sync)).outcome == "success"
    with engine.begin() as conn:
        conn.execute(connections.update().values(encrypted_secret=SECRET))
    yield engine
    client.close()
    engine.dispose()


def checksum(engine: sa.Engine) -> str:
    """A digest of every table's name, columns and rows (in a stable order), computed by DuckDB."""
    with engine.connect() as conn:
        tables = conn.execute(sa.text(
            "SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_schema = 'main' GROUP BY 1 ORDER BY 1")).all()
        parts = [f"{name}({columns})" for name, columns in tables]
        for name, _ in tables:
            count, digest = conn.execute(sa.text(
                f"SELECT COUNT(*), md5(COALESCE(string_agg(CAST(x AS VARCHAR), '|' ORDER BY CAST(x AS VARCHAR)), ''))"
                f' FROM "{name}" x')).one()
            parts.append(f"{name}:{count}:{digest}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def files_under(*folders: Path) -> set[Path]:
    return {p for folder in folders if folder.exists() for p in folder.rglob("*")}


ATTACKS = [
    ("DROP TABLE transactions", "DROP"),
    ("DELETE FROM transactions", "DELETE"),
    ("UPDATE transactions SET amount = 0", "UPDATE"),
    ("INSERT INTO categories VALUES ('x', 'x', NULL, 'expense')", "INSERT"),
    ("CREATE TABLE t AS SELECT * FROM transactions", "CREATE"),
    ("CREATE VIEW v AS SELECT 1", "CREATE"),
    ("ALTER TABLE transactions ADD COLUMN x INT", "ALTER"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "Attaching"),
    ("COPY transactions TO '{tmp}/leak.csv'", "COPY"),
    ("COPY (SELECT * FROM connections) TO '{tmp}/leak.parquet' (FORMAT parquet)", "COPY"),
    ("EXPORT DATABASE '{tmp}/export'", "EXPORT"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto()"),
    ("SELECT * FROM read_text('/etc/passwd')", "read_text()"),
    ("SELECT * FROM read_blob('/etc/hostname')", "read_blob()"),
    ("SELECT * FROM read_parquet('{tmp}/x.parquet')", "read_parquet()"),
    ("SELECT * FROM read_json('/etc/passwd')", "read_json()"),
    ("SELECT * FROM glob('/')", "glob()"),
    ("SELECT * FROM glob('/*')", "glob()"),
    ("SELECT * FROM '/etc/passwd'", "Reading files"),
    ("SELECT * FROM 'data.csv'", "Reading files"),
    ("SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))", "read_csv()"),
    ("SELECT * FROM transactions JOIN read_parquet(['x.parquet']) USING (id)", "read_parquet()"),
    ("SELECT * FROM query('SELECT 1')", "query()"),
    ("SELECT * FROM query_table('transactions')", "query_table()"),
    ("SELECT * FROM duckdb_settings()", "duckdb_settings()"),
    ("SELECT getenv('FINANCE_ENCRYPTION_KEY')", "getenv()"),
    ("SELECT current_setting('temp_directory')", "current_setting()"),
    ("PRAGMA table_info('transactions')", "PRAGMA"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("SET enable_external_access = true", "SET"),
    ("SET threads = 1", "SET"),
    ("RESET memory_limit", "SET"),
    ("INSTALL httpfs", "extensions"),
    ("LOAD httpfs", "extensions"),
    ("CALL pragma_version()", "CALL"),
    ("CHECKPOINT", "CHECKPOINT"),
    ("BEGIN TRANSACTION", "Transactions"),
    ("VACUUM", "VACUUM"),
    ("DETACH memory", "Detaching"),
    ("SELECT 1; DROP TABLE transactions", "one statement"),
    ("SELECT 1; -- harmless?\nDELETE FROM transactions", "one statement"),
    ("SELECT 1 /* hidden */; /* more */ DROP TABLE transactions", "one statement"),
    ("/* SELECT 1 */ DROP TABLE transactions -- SELECT", "DROP"),
    ("WITH d AS (DELETE FROM transactions RETURNING *) SELECT count(*) FROM d", "DELETE inside"),
    ("WITH u AS (UPDATE accounts SET current_balance = 0 RETURNING id) SELECT * FROM u", "UPDATE inside"),
    ("WITH i AS (INSERT INTO categories VALUES ('x', 'x', NULL, 'expense') RETURNING id) SELECT * FROM i",
     "INSERT inside"),
    ("MERGE INTO categories USING categories c ON categories.id = c.id WHEN MATCHED THEN DELETE", "MERGE"),
    ("SELECT encrypted_secret FROM connections", "encrypted_secret"),
    ('SELECT "ENCRYPTED_SECRET" FROM connections', "encrypted_secret"),
    ("SELECT * FROM connections WHERE encrypted_secret IS NOT NULL", "encrypted_secret"),
    ("SELECT COLUMNS('encrypted_secret') FROM connections", "encrypted_secret"),
    ("", "Write a SELECT"),
    ("-- only a comment", "only comments"),
]


@pytest.mark.parametrize(("sql", "expected"), ATTACKS, ids=[a[0][:40] for a in ATTACKS])
def test_attacks_are_refused_and_change_nothing(store: sa.Engine, tmp_path: Path, sql: str, expected: str):
    sql = sql.replace("{tmp}", str(tmp_path))
    before, files = checksum(store), files_under(tmp_path, Path.cwd() / ".tmp")

    with pytest.raises(ConsoleError) as caught:
        run_query(store, sql)

    assert expected.lower() in caught.value.message.lower(), caught.value.message
    assert str(tmp_path) not in caught.value.message
    assert checksum(store) == before
    assert files_under(tmp_path, Path.cwd() / ".tmp") == files


def test_the_sandbox_itself_blocks_files_and_writes_even_past_validation(store: sa.Engine, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    """Defence in depth: with the validator switched off, the isolated instance still refuses files and settings,
    and the tables it sees are read-only views of a throw-away Arrow copy."""
    monkeypatch.setattr(console, "validate_sql", lambda sql: sql)
    before = checksum(store)

    for sql in ("WITH d AS (DELETE FROM transactions RETURNING *) SELECT count(*) FROM d",  # views over Arrow
                "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM glob('/*')",
                f"COPY (SELECT 1) TO '{tmp_path}/x.csv'", f"ATTACH '{tmp_path}/y.duckdb'",
                "SET enable_external_access = true", "LOAD httpfs", "SELECT * FROM store"):
        with pytest.raises(ConsoleError):
            run_query(store, sql)

    assert checksum(store) == before
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.duckdb").exists()


def test_the_sandbox_does_not_scan_python_variables():
    leak = pd.DataFrame({"secret": [SECRET]})  # DuckDB's Python client would otherwise find `FROM leak`
    sandbox = open_sandbox()
    try:
        with pytest.raises(duckdb.CatalogException):
            sandbox.sql("SELECT * FROM leak").fetchall()
        with pytest.raises(duckdb.PermissionException):
            sandbox.sql("SELECT * FROM read_text('/etc/hostname')").fetchall()
    finally:
        sandbox.close()
    assert len(leak) == 1


def test_a_select_reads_a_snapshot_of_the_store(store: sa.Engine):
    with store.connect() as conn:
        count, total = conn.execute(sa.text("SELECT COUNT(*), SUM(amount) FROM transactions")).one()

    result = run_query(store, "SELECT COUNT(*) AS n, SUM(amount) AS total FROM transactions;")

    assert result.frame().to_dict("records") == [{"n": count, "total": total}]
    assert not result.truncated and result.rows == 1 and result.elapsed_ms >= 0


def test_connections_are_readable_without_the_secret(store: sa.Engine):
    result = run_query(store, "SELECT * FROM connections")
    assert result.rows == 1
    assert "encrypted_secret" not in result.table.column_names
    assert "institution_name" in result.table.column_names
    assert SECRET not in console.to_csv_bytes(result.table).decode()
    everything = run_query(store, "SELECT string_agg(c::VARCHAR, '|') AS s FROM connections c")
    assert SECRET not in everything.table.column("s")[0].as_py()


@pytest.mark.parametrize("sql", [
    "WITH m AS (SELECT date_trunc('month', booked_date) AS month, SUM(amount) AS s FROM transactions GROUP BY 1) "
    "SELECT * FROM m ORDER BY month",
    "FROM transactions SELECT id LIMIT 3",
    "DESCRIBE transactions",
    "SUMMARIZE accounts",
    "SHOW TABLES",
    "SELECT * FROM range(3)",
    "SELECT * FROM duckdb_columns() WHERE table_name = 'transactions'",
    "SELECT * FROM information_schema.columns WHERE table_name = 'accounts'",
    "VALUES (1, 'a'), (2, 'b')",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "SELECT a.type, COUNT(*) FROM accounts a GROUP BY ALL  -- a comment ; with a semicolon",
    "SELECT * EXCLUDE (sync_cursor) FROM connections",
])
def test_analyst_queries_run(store: sa.Engine, sql: str):
    assert run_query(store, sql).rows > 0


def test_row_limit_truncates(store: sa.Engine):
    result = run_query(store, "SELECT * FROM range(25) ORDER BY 1", max_rows=10)
    assert result.rows == 10 and result.truncated
    assert result.table.column(0).to_pylist() == list(range(10))
    assert not run_query(store, "SELECT * FROM range(10)", max_rows=10).truncated
    assert run_query(store, "SELECT * FROM transactions").rows <= console.MAX_ROWS


def test_a_runaway_query_is_interrupted(store: sa.Engine):
    with pytest.raises(ConsoleError, match=r"ran longer than 0\.5 s"):
        run_query(store, "SELECT COUNT(*) FROM range(1000000000000)", timeout=0.5)
    assert run_query(store, "SELECT 1 AS one").rows == 1  # and the next query runs normally


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELCT * FROM transactions", 'syntax error at or near "SELCT"'),
    ("SELECT nope FROM transactions", 'column "nope" not found'),
    ("SELECT * FROM transaction", "Table with name transaction does not exist"),
    ("SELECT 'a'::INTEGER", "Could not convert string 'a'"),
])
def test_bad_sql_gives_duckdbs_message(store: sa.Engine, sql: str, expected: str):
    with pytest.raises(ConsoleError) as caught:
        run_query(store, sql)
    assert expected.lower() in caught.value.message.lower(), caught.value.message


def test_error_messages_hide_paths():
    text = console.clean_error('IO Error: Cannot open file "/work/main/data/finance.duckdb": at C:\\Users\\me\\x.db')
    assert "/work" not in text and "Users" not in text
    assert text.count("<path>") == 2
    assert console.clean_error("Binder Error: SELECT 1/2/3 failed") == "Binder Error: SELECT 1/2/3 failed"


def test_duplicate_column_names_are_made_unique(store: sa.Engine):
    assert run_query(store, "SELECT 1 AS a, 2 AS a").table.column_names == ["a", "a_2"]


def test_downloads_round_trip(store: sa.Engine):
    result = run_query(store, "SELECT id, booked_date, amount, first_seen_at FROM transactions ORDER BY id")
    csv = pd.read_csv(io.BytesIO(console.to_csv_bytes(result.table)))
    assert list(csv.columns) == ["id", "booked_date", "amount", "first_seen_at"]
    assert len(csv) == result.rows
    parquet = pq.read_table(io.BytesIO(console.to_parquet_bytes(result.table)))
    assert parquet.equals(result.table)

    odd = run_query(store, "SELECT INTERVAL 1 DAY AS i, NULL AS n, [1, 2] AS l, {'k': 1} AS s")
    assert pq.read_table(io.BytesIO(console.to_parquet_bytes(odd.table))).num_rows == 1


def test_postgresql_is_snapshotted_through_sqlalchemy(postgres_server):
    engine = create_engine(postgres_server())
    init_schema(engine)
    result = run_query(engine, "SELECT kind, COUNT(*) AS n FROM categories GROUP BY kind ORDER BY kind")
    assert {r["kind"] for r in result.frame().to_dict("records")} >= {"income", "expense", "transfer"}
    assert run_query(engine, "SELECT COUNT(*) AS n FROM connections").table.column("n")[0].as_py() == 0
    engine.dispose()


def test_validate_sql_returns_the_statement():
    assert console.validate_sql("  SELECT 1;  ") == "SELECT 1;"
    with pytest.raises(ConsoleError, match="read-only"):
        console.validate_sql("DROP TABLE transactions")


def test_saved_queries_round_trip(tmp_path: Path):
    path = console.saved_queries_path(tmp_path)
    assert console.load_saved_queries(path) == []

    console.save_query(path, "  Monthly   spend ", "SELECT 1")
    console.save_query(path, "accounts", "SELECT * FROM accounts")
    console.save_query(path, "Monthly spend", "SELECT 2")  # same name replaces

    assert [(q.name, q.sql) for q in console.load_saved_queries(path)] == [
        ("accounts", "SELECT * FROM accounts"), ("Monthly spend", "SELECT 2")]
    assert json.loads(path.read_text())["version"] == 1
    assert console.delete_saved_query(path, "accounts")
    assert not console.delete_saved_query(path, "accounts")
    assert [q.name for q in console.load_saved_queries(path)] == ["Monthly spend"]
    assert not list(tmp_path.glob(".saved_queries.*"))  # no temporary files left behind


@pytest.mark.parametrize(("name", "sql", "expected"), [
    ("", "SELECT 1", "name"),
    ("x" * 81, "SELECT 1", "80 characters"),
    (console.EXAMPLE_QUERIES[0].name, "SELECT 1", "example"),
    ("bad", "DELETE FROM transactions", "not allowed"),
    ("secret", "SELECT encrypted_secret FROM connections", "encrypted_secret"),
])
def test_saving_refuses_bad_queries(tmp_path: Path, name: str, sql: str, expected: str):
    path = console.saved_queries_path(tmp_path)
    with pytest.raises(ConsoleError, match=expected):
        console.save_query(path, name, sql)
    assert not path.exists()


def test_a_corrupt_saved_queries_file_is_reported_not_overwritten(tmp_path: Path):
    path = console.saved_queries_path(tmp_path)
    path.write_text("{not json")
    with pytest.raises(ConsoleError, match="not readable"):
        console.load_saved_queries(path)
    with pytest.raises(ConsoleError, match="not readable"):
        console.save_query(path, "x", "SELECT 1")
    assert path.read_text() == "{not json"


def test_examples_are_valid_and_run(store: sa.Engine):
    for example in console.EXAMPLE_QUERIES:
        assert example.example
        run_query(store, example.sql)


def test_schema_doc_is_the_sqlalchemy_metadata():
    docs = {d.name: d for d in console.schema_doc()}
    assert list(docs) == list(metadata.tables)
    for table in metadata.tables.values():
        doc = docs[table.name]
        assert doc.description
        assert [c.name for c in doc.columns] == [c.name for c in table.columns]
        assert [c.comment for c in doc.columns] == [c.comment or "" for c in table.columns]
    amount = next(c for c in docs["transactions"].columns if c.name == "amount")
    assert amount.type == "NUMERIC(18, 2)" and not amount.nullable
    assert "negative = money leaves the user" in amount.comment
    secret = next(c for c in docs["connections"].columns if c.name == "encrypted_secret")
    assert secret.hidden
    first = docs["connections"].columns[0]
    assert (first.name, first.primary_key) == ("id", True)


def test_the_app_file_stays_open_read_write_alongside_the_console(tmp_path: Path):
    """Why the console does not open the store file itself: DuckDB refuses a differently configured second
    connection to a file this process already holds."""
    path = tmp_path / "held.duckdb"
    engine = create_engine(f"duckdb:///{path}")
    init_schema(engine)
    with engine.connect(), pytest.raises(duckdb.ConnectionException, match="different configuration"):
        duckdb.connect(str(path), read_only=True)
    assert run_query(engine, "SELECT COUNT(*) AS n FROM categories").rows == 1
    with engine.begin() as conn:  # and the app can still write
        conn.execute(sa.text("INSERT INTO category_rules (id, merchant, category, created_at) "
                             "VALUES ('r', 'm', 'c', now())"))
    engine.dispose()
