"""Issue 16: the analysts' snapshot, `python -m finance query` and `python -m finance export` (the CLI through
subprocesses where start-up and exit codes matter), and attacks on each."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from finance import analytics
from finance.config import load_settings
from finance.filters import TransactionFilter
from finance.services import open_services
from finance.store.snapshot import SNAPSHOT_VIEWS, refresh_snapshot
from tests.conftest import OFFLINE_UNSET

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo's data folder, as the app's (FINANCE_DATA_DIR), without a snapshot yet."""
    folder = tmp_path / "data"
    shutil.copytree(demo_store, folder, ignore=shutil.ignore_patterns(analytics.SNAPSHOT_FILE))
    for name in OFFLINE_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINANCE_DATA_DIR", str(folder))
    return folder


def cli(folder: Path, *args: str, database_url: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_UNSET}
    env.update(FINANCE_DATA_DIR=str(folder), PYTHONPATH=str(REPO))
    if database_url:
        env["FINANCE_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "finance", *args], capture_output=True, env=env, timeout=120,
                          cwd=REPO)


def change_store(folder: Path, sql: str) -> None:
    """Change the store as a sync would (the CLI process is not running)."""
    con = duckdb.connect(str(folder / "finance.duckdb"))
    try:
        con.execute(sql)
    finally:
        con.close()


def store_count(folder: Path, sql: str) -> int:
    con = duckdb.connect(str(folder / "finance.duckdb"), read_only=True)
    try:
        return int(con.execute(sql).fetchall()[0][0])
    finally:
        con.close()


# ---- the snapshot -------------------------------------------------------------------------------------------------

def test_snapshot_holds_the_tables_without_tokens_and_the_documented_views(store):
    services = open_services(load_settings())
    try:
        assert services.analytics.refresh() is not None
        with services.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar()
    finally:
        services.engine.dispose()
    con = analytics.connect()
    try:
        assert con.execute("SELECT COUNT(*) FROM transactions").fetchall()[0][0] == stored
        columns = {r[0] for r in con.sql("DESCRIBE connections").fetchall()}
        assert "encrypted_secret" not in columns and "status" in columns
        for view in SNAPSHOT_VIEWS:
            assert con.execute(f"SELECT COUNT(*) FROM {view}").fetchall()[0][0] > 0, view
        with pytest.raises(duckdb.Error):  # read-only: an outside tool cannot change it
            con.execute("DELETE FROM transactions")
        spending = con.execute("SELECT SUM(spending) FROM monthly_spending_by_category "
                               "WHERE currency = 'BRL'").fetchall()
        direct = con.execute("""SELECT -SUM(t.amount) FROM effective_transactions t
                                JOIN categories k ON k.id = t.category
                                WHERE t.currency = 'BRL' AND (k.kind = 'expense' OR (k.kind = 'other' AND t.amount < 0))
                         """).fetchall()
        assert spending == direct
    finally:
        con.close()
    assert not list(store.glob(".analytics.duckdb.*"))  # no temporary file left behind



def test_the_snapshot_has_the_stores_columns_types_and_rows(store):
    """The snapshot's tables are declared column by column (keys stored uncompressed): each has the store's columns
    with the store's types, tokens left out, and the same rows."""
    services = open_services(load_settings())
    try:
        services.analytics.refresh()
    finally:
        services.engine.dispose()
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{store / 'finance.duckdb'}' AS store (READ_ONLY)")
        con.execute(f"ATTACH '{analytics.snapshot_path(store)}' AS snap (READ_ONLY)")
        columns = """SELECT table_name, column_name, data_type FROM duckdb_columns()
                     WHERE database_name = ? AND schema_name = 'main' AND column_name <> 'encrypted_secret'
                       AND table_name IN (SELECT table_name FROM duckdb_tables()
                                          WHERE database_name = 'snap' AND table_name <> '_snapshot')
                     ORDER BY table_name, column_name"""
        copied = con.execute(columns, ["snap"]).fetchall()
        assert copied == con.execute(columns, ["store"]).fetchall()
        assert {"transactions", "accounts", "connections"} <= {row[0] for row in copied}
        kept = ", ".join(f'"{row[1]}"' for row in copied if row[0] == "transactions")
        assert con.execute(f"SELECT COUNT(*) FROM (SELECT {kept} FROM store.transactions "
                           f"EXCEPT ALL SELECT {kept} FROM snap.transactions)").fetchall() == [(0,)]
        assert con.execute("SELECT DISTINCT column_name, compression FROM pragma_storage_info('snap.transactions') "
                           "WHERE column_name IN ('id', 'external_id') AND segment_type = 'VARCHAR' "
                           "ORDER BY 1").fetchall() == [("external_id", "Uncompressed"), ("id", "Uncompressed")]
    finally:
        con.close()

def test_the_snapshot_is_as_private_as_the_store(store):
    (store / "finance.duckdb").chmod(0o600)
    services = open_services(load_settings())
    try:
        services.analytics.refresh()
    finally:
        services.engine.dispose()
    assert analytics.snapshot_path(store).stat().st_mode & 0o777 == 0o600


def test_a_missing_snapshot_says_how_to_get_one(tmp_path):
    with pytest.raises(analytics.SnapshotMissing, match="after every sync"):
        analytics.connect(tmp_path / "none.duckdb")


READER = textwrap.dedent("""
    import sys, duckdb
    seen = set()
    for _ in range(int(sys.argv[2])):
        con = duckdb.connect(sys.argv[1], read_only=True)
        seen.add(con.execute("SELECT COUNT(*) FROM transactions").fetchall()[0][0])
        con.close()
    print(sorted(seen))
""")


@pytest.mark.slow
def test_readers_never_see_a_half_written_snapshot(store):
    """Attack: a reader opens the snapshot over and over while it is rewritten with changing data; every open works
    and sees a whole snapshot: one of the counts the store had at a refresh."""
    services = open_services(load_settings())
    path = services.analytics.path
    try:
        services.analytics.refresh()
        valid = set()
        reader = subprocess.Popen([sys.executable, "-c", READER, str(path), "400"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        for _ in range(8):
            with services.engine.begin() as conn:
                valid.add(conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar())
                conn.execute(sa.text("DELETE FROM transactions WHERE id IN (SELECT id FROM transactions LIMIT 5)"))
                valid.add(conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar())
            refresh_snapshot(services.engine, path)
        out, err = reader.communicate(timeout=120)
    finally:
        services.engine.dispose()
    assert reader.returncode == 0, err.decode()
    assert set(json.loads(out)) <= valid


# ---- query --------------------------------------------------------------------------------------------------------

def test_query_prints_a_table_and_writes_csv_json_and_parquet(store, tmp_path):
    done = cli(store, "query", "SELECT currency, COUNT(*) AS n FROM transactions GROUP BY 1 ORDER BY 1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0].split() == ["currency", "n"] and lines[2].split()[0] == "BRL" and lines[3].split()[0] == "USD"
    count = store_count(store, "SELECT COUNT(*) FROM transactions WHERE currency = 'BRL'")
    assert int(lines[2].split()[1]) == count

    sql = "SELECT booked_date, amount, description FROM transactions ORDER BY id LIMIT 5"
    as_csv = cli(store, "query", sql, "--format", "csv").stdout
    assert pa_csv.read_csv(io.BytesIO(as_csv)).num_rows == 5
    rows = json.loads(cli(store, "query", sql, "--format", "json").stdout)
    assert len(rows) == 5 and isinstance(rows[0]["amount"], str)  # exact decimals, never floats
    assert cli(store, "query", sql, "--format", "parquet", "--output", str(tmp_path / "r.parquet")).returncode == 0
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 5 and [str(v) for v in table.column("amount").to_pylist()] == [r["amount"] for r in rows]


@pytest.mark.parametrize(("sql", "why"), [
    ("DELETE FROM transactions", "DELETE"),
    ("SELECT 1; DROP TABLE transactions", "one statement"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
    ("SELECT encrypted_secret FROM connections", "encrypted_secret"),
    ("ATTACH 'x.duckdb' AS x", "Attaching"),
    ("SELECT FROM WHERE", "syntax error"),
    ("SELECT length(repeat(repeat('x', 1000000), 3000))", "more than 1 GiB of memory"),  # past DuckDB's own limit
    ("SELECT " + "abs(" * 990 + "1" + ")" * 990, "nested too deeply"),
    ("SELECT 1 IN (" + ", ".join(["1"] * 30_000) + ")", "longer than 20,000 characters"),  # argv holds 128 KiB
])
def test_a_refused_query_exits_non_zero_with_one_line(store, sql, why):
    """Attack: anything but one SELECT is refused as the Explore page refuses it, a query past the console's limits
    is stopped, each with one line and no traceback, and the store is unchanged."""
    before = store_count(store, "SELECT COUNT(*) FROM transactions")
    done = cli(store, "query", sql)
    assert done.returncode == 1 and done.stdout == b""
    err = done.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("error: ") and why in err, err
    assert "Traceback" not in err and str(REPO) not in err
    assert store_count(store, "SELECT COUNT(*) FROM transactions") == before
    assert not (store / "x.duckdb").exists()


def test_query_never_shows_tokens_even_through_a_whole_row(store):
    """Attack: `SELECT *` and a row turned into text cannot reach a provider token: the snapshot has none."""
    secret = store_count(store, "SELECT COUNT(*) FROM connections WHERE encrypted_secret IS NOT NULL")
    assert secret > 0
    done = cli(store, "query", "SELECT c::VARCHAR AS row_text, * FROM connections c", "--format", "json")
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(store / "finance.duckdb"), read_only=True)
    tokens = [r[0] for r in con.execute("SELECT encrypted_secret FROM connections "
                                        "WHERE encrypted_secret IS NOT NULL").fetchall()]
    con.close()
    assert all(token not in done.stdout.decode() for token in tokens)


def test_query_reads_a_store_changed_since_the_last_snapshot_and_escapes_terminal_codes(store):
    """The app is not running: a query brings the snapshot up to date first. Attack: bank text with terminal escape
    sequences is printed escaped, never as raw control characters."""
    assert cli(store, "query", "SELECT 1").returncode == 0  # writes the first snapshot
    change_store(store, "UPDATE transactions SET description = chr(27) || ']0;pwned' || chr(7) || chr(27) || "
                        "'[2J=HYPERLINK(1)' WHERE id = (SELECT MIN(id) FROM transactions)")
    done = cli(store, "query", "SELECT description FROM transactions WHERE description LIKE '%pwned%'")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "pwned" in out and "\x1b" not in out and "\x07" not in out and "\\x1b" in out


def test_query_starts_without_the_heavy_libraries(store):
    """`finance query` stays on its light path: no Streamlit, plotly, pandas or SQLAlchemy (measured start-up:
    bench/RESULTS.md)."""
    assert cli(store, "query", "SELECT 1").returncode == 0  # the snapshot exists
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "finance", "query", "SELECT 42"], capture_output=True,
        env={**os.environ, "FINANCE_DATA_DIR": str(store), "PYTHONPATH": str(REPO)}, cwd=REPO, timeout=120)
    assert done.returncode == 0 and "42" in done.stdout.decode()
    modules = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert "duckdb" in modules
    assert not {"streamlit", "plotly", "pandas", "sqlalchemy", "finance.services"} & modules


# ---- export -------------------------------------------------------------------------------------------------------

def test_export_writes_the_transactions_pages_file_with_period_and_account_filters(store, tmp_path):
    services = open_services(load_settings())
    try:
        with services.engine.connect() as conn:
            account = conn.execute(sa.text("SELECT account_id FROM transactions GROUP BY 1 ORDER BY COUNT(*) DESC "
                                           "LIMIT 1")).scalar()
        filters = TransactionFilter(start=date(2026, 3, 1), end=date(2026, 5, 31), account_ids=(account,))
        page_csv = services.transactions.export(filters, "csv")
        page_parquet = pq.read_table(io.BytesIO(services.transactions.export(filters, "parquet")))
    finally:
        services.engine.dispose()
    out = tmp_path / "t.csv"
    done = cli(store, "export", "transactions", "--from", "2026-03-01", "--to", "2026-05-31", "--account", account,
               "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == page_csv and page_parquet.num_rows > 0
    done = cli(store, "export", "transactions", "--from", "2026-03-01", "--to", "2026-05-31", "--account", account,
               "--format", "parquet", "--output", str(tmp_path / "t.parquet"))
    assert pq.read_table(tmp_path / "t.parquet").equals(page_parquet)


@pytest.mark.parametrize("what", ["accounts", "balances", "categories"])
def test_export_of_accounts_balances_and_categories(store, what):
    done = cli(store, "export", what)
    assert done.returncode == 0, done.stderr
    table = pa_csv.read_csv(io.BytesIO(done.stdout))
    assert table.num_rows > 0
    assert "encrypted_secret" not in table.column_names


def test_exported_csv_cells_never_run_as_formulas(store):
    """Attack: bank text that a spreadsheet would evaluate gets a leading apostrophe in every CSV export."""
    change_store(store, """UPDATE transactions SET description = '=HYPERLINK("http://evil.example","x")',
                           merchant = '@SUM(1+1)', note = '+1-1' WHERE id = (SELECT MIN(id) FROM transactions)""")
    change_store(store, "UPDATE accounts SET name = '-2+3' WHERE id = (SELECT MIN(id) FROM accounts)")
    text = cli(store, "export", "transactions").stdout.decode()
    assert "\"'=HYPERLINK(" in text and "\"'@SUM(1+1)\"" in text and "\"'+1-1\"" in text
    assert "\"=HYPERLINK" not in text
    assert "\"'-2+3\"" in cli(store, "export", "accounts").stdout.decode()
    query = cli(store, "query", "SELECT description, -12.5 AS amount FROM transactions "
                                "WHERE description LIKE '%HYPERLINK%'", "--format", "csv").stdout.decode()
    assert query.splitlines()[1].lstrip('"').startswith("'=HYPERLINK") and query.rstrip().endswith(",-12.5")


def test_export_refuses_a_reversed_period(store):
    done = cli(store, "export", "transactions", "--from", "2026-05-01", "--to", "2026-04-01")
    assert done.returncode == 1 and b"--from" in done.stderr


def test_query_keeps_the_consoles_row_limit(store):
    done = cli(store, "query", "SELECT range AS n FROM range(20000)", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.decode().splitlines()) == 10_000 + 1
    assert "only the first 10,000 rows" in done.stderr.decode()


def test_query_and_export_read_postgresql_directly(demo_store_postgresql, postgres_server, tmp_path):
    """On PostgreSQL there is no single writer to work around: the CLI reads the store itself, with the same rules."""
    folder, template = demo_store_postgresql
    url = postgres_server.create_database(template=template)
    data = tmp_path / "data"
    shutil.copytree(folder, data, ignore=shutil.ignore_patterns(analytics.SNAPSHOT_FILE))
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar()
    finally:
        engine.dispose()
    done = cli(data, "query", "SELECT COUNT(*) AS n FROM transactions", "--format", "json", database_url=url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": stored}]
    refused = cli(data, "query", "DELETE FROM transactions", database_url=url)
    assert refused.returncode == 1 and b"DELETE" in refused.stderr
    exported = cli(data, "export", "transactions", database_url=url)
    assert exported.returncode == 0, exported.stderr
    assert pa_csv.read_csv(io.BytesIO(exported.stdout)).num_rows == stored
    assert not analytics.snapshot_path(data).exists()
