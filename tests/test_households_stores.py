"""Households' stores (issue 15): settings scoped to a household, each household's DuckDB file and folder, the
directory that routes webhooks and scheduled syncs, and the analysts' tools per household."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from finance import cli_analyst, jobs
from finance import services as services_module
from finance.config import Settings, load_settings
from finance.errors import ConsoleError, EditError
from finance.filters import TransactionFilter
from finance.money import Rate
from finance.services import Services, shared_services
from finance.store import migrate
from finance.store.directory import HOUSEHOLD_TABLES
from finance.store.schema import DIRECTORY_TABLES, LOCAL_HOUSEHOLD, metadata
from finance.webhooks import WebhookReceiver
from finance.worker import SCHEDULE, WEBHOOK, HouseholdWorkers
from tests.conftest import OFFLINE_UNSET, upgraded


def _settings(tmp_path: Path, **env: str):
    return load_settings({"FINANCE_DATA_DIR": str(tmp_path), **env}, secrets_file=tmp_path / "none.toml")


def test_settings_default_to_the_local_household_and_its_store(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.household == LOCAL_HOUSEHOLD
    assert settings.for_household(LOCAL_HOUSEHOLD) is settings
    assert settings.household_dir == tmp_path


def test_a_household_on_duckdb_has_its_own_file_and_private_folder(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    other = settings.for_household("b-2")
    assert other.household == "b-2"
    assert other.database_url == f"duckdb:///{tmp_path / 'households' / 'b-2' / 'finance.duckdb'}"
    assert other.data_dir == settings.data_dir  # the key file and the emulators' state stay shared
    folder = other.household_dir
    assert folder == tmp_path / "households" / "b-2"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert other.for_household(LOCAL_HOUSEHOLD) == settings
    assert other.for_household("c").database_url.endswith("/households/c/finance.duckdb")


def test_a_custom_duckdb_file_keeps_its_households_beside_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, FINANCE_DATABASE_URL=f"duckdb:///{tmp_path / 'db' / 'money.duckdb'}")
    expected = tmp_path / "db" / "households" / "b" / "money.duckdb"
    assert settings.for_household("b").database_url == f"duckdb:///{expected}"


def test_a_household_on_postgresql_shares_the_database(tmp_path: Path) -> None:
    url = "postgresql+psycopg://finance@localhost/finance"
    settings = _settings(tmp_path, FINANCE_DATABASE_URL=url)
    assert settings.for_household("b").database_url == url
    assert settings.for_household("b") != settings  # its own shared_services


@pytest.mark.parametrize("bad", ["", "../local", "B", "a/b", "a b", "x" * 41, "..", "a\n", "é"])
def test_a_household_id_never_names_a_path(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="household id"):
        _settings(tmp_path).for_household(bad)


# -- two households on the services layer ------------------------------------------------------------------------------

SECRET = {"X-Webhook-Secret": "households-test-secret"}
LATER = datetime(2099, 1, 1, tzinfo=UTC)  # every scheduled sync is due by then


@dataclass
class Home:
    """One household's services and what it connected: the ids nobody else may ever see."""

    svc: Services
    connection_id: str
    item_id: str
    marks: frozenset[str]  # connection, account and transaction ids


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[Settings, Services]]:
    """The process's shared services, empty for this test and closed after it."""
    cache: dict[Settings, Services] = {}
    monkeypatch.setattr(services_module, "_shared", cache)
    yield cache
    for svc in cache.values():
        svc.engine.dispose()


ROW_LEVEL_SECURITY = any(p.name.startswith("0008") for p in (migrate.MIGRATIONS / "versions").glob("*.py"))


@pytest.fixture
def settings(tmp_path: Path, shared: dict[Settings, Services], db_kind: str,
             request: pytest.FixtureRequest) -> Settings:
    """The local household's settings on the engine under test (a test marked `engines` runs on both)."""
    env = {"FINANCE_SANDBOX_SETTLE_SECONDS": "0", "FINANCE_WEBHOOK_SECRET": SECRET["X-Webhook-Secret"]}
    if db_kind == "postgresql":
        if not ROW_LEVEL_SECURITY:
            pytest.skip("needs 0008 row-level security")
        env["FINANCE_DATABASE_URL"] = upgraded(request.getfixturevalue("database_url"))
    return _settings(tmp_path, **env)


def connect_bank(svc: Services, user: str) -> Home:
    """Connect Pluggy Bank on the sandbox as the connect flow does (register, then the first sync)."""
    provider = svc.providers["pluggy"]
    state = provider.create_connection("0", {"user": user, "password": "password-ok"})
    state = provider.wait_until_settled(state.external_id, sleep=lambda _s: None)
    connection_id = svc.sync.register(state)
    assert svc.connections.sync(connection_id, trigger="connect").outcome == "success"
    with svc.engine.connect() as conn:
        accounts = conn.execute(sa.text("SELECT id FROM accounts")).scalars().all()
        transactions = conn.execute(sa.text("SELECT id FROM transactions")).scalars().all()
    assert accounts and transactions
    return Home(svc, connection_id, state.external_id, frozenset({connection_id, *accounts, *transactions}))


@pytest.fixture
def homes(settings: Settings) -> tuple[Home, Home]:
    """Households a and b, each with a sandbox bank connected (the local store holds only the directory)."""
    return (connect_bank(shared_services(settings.for_household("a")), "user-ok"),
            connect_bank(shared_services(settings.for_household("b")), "user-ok"))


def text_of(value: object) -> str:
    """Whatever a read returned, as text to search for another household's ids."""
    if isinstance(value, pd.DataFrame):
        return value.to_csv()
    if isinstance(value, pa.Table):
        return value.to_pandas().to_csv()
    return repr(value)


def leaked(value: object, home: Home) -> set[str]:
    text = text_of(value)
    return {mark for mark in home.marks if mark in text}


def test_each_household_has_its_own_private_file_whose_rows_carry_it(homes: tuple[Home, Home]) -> None:
    for home in homes:
        path = Path(home.svc.settings.database_url.removeprefix("duckdb:///"))
        assert path.parent.name == home.svc.household
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        with home.svc.engine.connect() as conn:
            for table in HOUSEHOLD_TABLES:
                owners = set(conn.execute(sa.text(f'SELECT DISTINCT household_id FROM "{table}"')).scalars())
                assert owners <= {home.svc.household}, (table, owners)
            assert conn.execute(sa.text("SELECT COUNT(*) FROM transactions WHERE household_id = :h"),
                                {"h": home.svc.household}).scalar_one() > 0


def test_the_directory_knows_each_connection_and_forgets_a_deleted_one(settings: Settings,
                                                                      homes: tuple[Home, Home]) -> None:
    a, b = homes
    local = shared_services(settings)
    assert local.directory is not None
    assert local.directory.household_of(a.connection_id) == "a"
    assert local.directory.household_of(b.connection_id) == "b"
    assert local.directory.households() == [LOCAL_HOUSEHOLD, "a", "b"]
    with a.svc.engine.connect() as conn:  # a household's own file holds no directory
        assert conn.execute(sa.text("SELECT COUNT(*) FROM connection_directory")).scalar_one() == 0
    b.svc.sync.delete_connection(b.connection_id, keep_history=True)
    assert local.directory.household_of(b.connection_id) == "b"  # history kept: its webhooks still reach b
    b.svc.sync.delete_connection(b.connection_id, keep_history=False)
    assert local.directory.household_of(b.connection_id) is None


@pytest.mark.engines
def test_no_services_read_of_one_household_returns_the_others_rows(homes: tuple[Home, Home]) -> None:
    a, b = homes
    start, end, today = date(2000, 1, 1), date(2100, 1, 1), date(2026, 12, 7)
    a.svc.rates.add(Rate("USD", "BRL", Decimal("5.1"), date(2026, 1, 1)), actor="a")
    a.svc.budgets.set(date(2026, 12, 1), "food", "BRL", "100", actor="a")
    a.svc.preferences.set("a@example.com", "language", "pt_BR")
    for svc, other in ((b.svc, a), (a.svc, b)):
        reads = [
            svc.accounts.summary(), svc.accounts.totals(), svc.reports.net_worth_by_day(start, end),
            svc.reports.monthly_cashflow(start, end), svc.reports.spending_by_category(start, end),
            svc.reports.top_merchants(start, end), svc.transactions.account_options(),
            svc.transactions.page(TransactionFilter(start=start, end=end), limit=10_000),
            svc.transactions.export(TransactionFilter(start=start, end=end), "csv").decode(),
            svc.rules.all(), svc.rates.all(), svc.connections.status(), svc.connections.schedule_rows(),
            svc.holdings.positions(), svc.holdings.loans(), svc.holdings.card_bills(today), svc.status.read(),
            svc.events.recent(), svc.alerts.list(), svc.budgets.of_month(date(2026, 12, 1)),
            svc.recurring.series(today), svc.forecast.outlook(today, 90), svc.imports.history(),
            svc.preferences.get("a@example.com", "language"),
        ]
        assert [leaked(r, other) for r in reads if leaked(r, other)] == []
    assert b.svc.rates.all() == [] and b.svc.preferences.get("a@example.com", "language") is None


@pytest.mark.engines
def test_another_households_ids_change_nothing(homes: tuple[Home, Home]) -> None:
    """Attack: household b names a's transaction and connection in edits and syncs."""
    a, b = homes
    with a.svc.engine.connect() as conn:
        txn = conn.execute(sa.text("SELECT id FROM transactions ORDER BY id LIMIT 1")).scalar_one()
        before = conn.execute(sa.text("SELECT * FROM transactions ORDER BY id")).all()
    with pytest.raises(EditError):
        b.svc.transactions.set_category(txn, "food", actor="b")
    with pytest.raises(EditError):
        b.svc.transactions.delete(txn, actor="b")
    assert b.svc.connections.sync(a.connection_id, trigger="manual").outcome != "success"
    with a.svc.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT * FROM transactions ORDER BY id")).all() == before


CATALOG_QUERIES = [
    "SELECT * FROM duckdb_tables()", "SELECT * FROM duckdb_views()", "SELECT * FROM duckdb_columns()",
    "SELECT * FROM duckdb_schemas()", "SELECT * FROM duckdb_indexes()", "SELECT * FROM duckdb_constraints()",
    "SELECT * FROM duckdb_databases()", "SELECT * FROM duckdb_settings()", "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM information_schema.tables", "SELECT * FROM information_schema.columns",
    "SELECT * FROM information_schema.schemata", "SELECT * FROM pg_catalog.pg_class",
    "SELECT * FROM pg_catalog.pg_tables", "SELECT * FROM pg_catalog.pg_database", "SELECT * FROM sqlite_master",
    "SELECT * FROM pragma_database_list()", "SELECT current_database(), current_schema()",
    "PRAGMA database_list", "SHOW DATABASES", "SHOW ALL TABLES",
]


def file_attacks(a: Home) -> list[str]:
    """Queries that would read household a's store file (or its snapshot) directly."""
    store = str(a.svc.settings.household_dir / "finance.duckdb")
    snapshot = str(a.svc.analytics.path)
    return [
        f"SELECT * FROM read_csv('{store}')", f"SELECT * FROM read_parquet('{snapshot}')",
        f"SELECT * FROM read_text('{store}')", f"SELECT * FROM read_blob('{store}')", f"SELECT * FROM '{store}'",
        f"ATTACH '{store}' AS a", f"ATTACH '{snapshot}' AS a (READ_ONLY)", f"SELECT * FROM glob('{store}')",
        f"SELECT * FROM query_table('{store}')", f"SELECT * FROM query('ATTACH ''{store}'' AS a')",
        f"COPY (SELECT 1) TO '{store}.csv'", f"SELECT * FROM sniff_csv('{store}')",
        f"SELECT * FROM read_json_auto('{store}')", f"SELECT * FROM duckdb_databases() WHERE path = '{store}'",
    ]


def console_answer(svc: Services, sql: str) -> str:
    """What the console shows for `sql`: the result as text, or the refusal."""
    try:
        return text_of(svc.console.run(sql).table)
    except ConsoleError as refused:
        return f"refused: {refused.message}"


@pytest.mark.engines
@pytest.mark.slow
def test_household_bs_console_reaches_nothing_of_a_by_any_sql(settings: Settings, homes: tuple[Home, Home]) -> None:
    a, b = homes
    local = shared_services(settings)
    tables = [t.name for t in metadata.sorted_tables]
    for sql in [f'SELECT * FROM "{t}"' for t in tables] + CATALOG_QUERIES + file_attacks(a):
        answer = console_answer(b.svc, sql)
        assert not leaked(answer, a), (sql, leaked(answer, a))
        assert answer.startswith("refused: ") or "households/a" not in answer, (sql, answer[:300])
    own = b.svc.console.run("SELECT DISTINCT household_id FROM transactions").table
    assert own.column(0).to_pylist() == ["b"]
    for svc in (b.svc, local):  # the directory names other households and their members: never in a console
        for table in DIRECTORY_TABLES:
            assert "does not exist" in console_answer(svc, f"SELECT * FROM {table}")
        assert not set(DIRECTORY_TABLES) & set(console_answer(svc, "SELECT table_name FROM duckdb_tables()").split())


def test_the_snapshot_of_a_household_is_its_own_and_holds_no_directory(settings: Settings,
                                                                        homes: tuple[Home, Home]) -> None:
    a, b = homes
    local = shared_services(settings)
    for svc in (a.svc, b.svc, local):
        svc.analytics.refresh()
        assert svc.analytics.path.parent == svc.settings.household_dir
        con = duckdb.connect(str(svc.analytics.path), read_only=True)
        try:
            names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            assert not names & DIRECTORY_TABLES
            dump = "".join(str(con.execute(f'SELECT * FROM "{n}"').fetchall()) for n in sorted(names))
        finally:
            con.close()
        for other in (home for home in homes if home.svc is not svc):
            assert not leaked(dump, other)
    b.svc.console.save("mine", "SELECT 1")
    assert [q.name for q in b.svc.console.saved()] == ["mine"] and a.svc.console.saved() == []


def deliver(receiver: WebhookReceiver, event: str, event_id: str, item_id: str) -> int:
    body = json.dumps({"event": event, "eventId": event_id, "itemId": item_id}).encode()
    return receiver.receive("pluggy", SECRET, body, None).status


def runs(svc: Services, trigger: str) -> int:
    with svc.engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM sync_runs WHERE trigger = :t"), {"t": trigger}).scalar_one()


def events(svc: Services) -> list[tuple[str, str]]:
    with svc.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT id, outcome FROM webhook_events ORDER BY id"))]


def run_jobs(queue: jobs.JobQueue) -> None:
    """Every job that is due, in this process, until none is left."""
    queue.app.run_worker(queues=[jobs.QUEUE], wait=False, concurrency=1, install_signal_handlers=False,
                         listen_notify=False)


@pytest.mark.engines
def test_a_webhook_for_as_connection_syncs_as_store_only(settings: Settings, homes: tuple[Home, Home]) -> None:
    """On DuckDB the app's household workers, on PostgreSQL the job queue: the event and its sync stay in a's."""
    a, b = homes
    local = shared_services(settings)
    workers = HouseholdWorkers(local, interval=None, debounce=0.0, register=False)
    queue = jobs.JobQueue(local).open() if jobs.uses_queue(local.engine) else None
    receiver = WebhookReceiver(local, jobs.QueueSink(queue) if queue is not None else workers)
    assert deliver(receiver, "transactions/created", "ev-a", a.item_id) == 200
    assert deliver(receiver, "transactions/created", "ev-a", a.item_id) == 200  # a replay: recorded once
    assert deliver(receiver, "transactions/created", "ev-x", "no-such-item") == 200
    if queue is not None:
        run_jobs(queue)
        queue.close()
    else:
        assert workers.run_until_idle() == 1
        assert set(workers.workers()) == {LOCAL_HOUSEHOLD, "a"}
    assert events(a.svc) == [("pluggy:ev-a", "processed")] and runs(a.svc, WEBHOOK) == 1
    assert events(b.svc) == [] and runs(b.svc, WEBHOOK) == 0
    assert events(local) == [("pluggy:ev-x", "ignored")]  # an unknown connection: ignored, as before households


@pytest.mark.engines
def test_a_scheduled_run_syncs_every_household_even_one_nobody_has_open(
        settings: Settings, homes: tuple[Home, Home], shared: dict[Settings, Services]) -> None:
    a, b = homes
    shared.pop(b.svc.settings).engine.dispose()  # nobody has b open
    local = shared_services(settings)
    if jobs.uses_queue(local.engine):
        queue = jobs.JobQueue(local).open()
        assert sorted(queue.schedule(LATER)) == sorted([a.connection_id, b.connection_id])
        run_jobs(queue)
        queue.close()
    else:
        workers = HouseholdWorkers(local, interval=timedelta(hours=1), debounce=0.0, register=False,
                                   now=lambda: LATER)
        workers.check_schedule()
        assert set(workers.workers()) == {LOCAL_HOUSEHOLD, "a", "b"}
        assert workers.run_until_idle() == 2
    reopened = shared_services(settings.for_household("b"))
    assert runs(a.svc, SCHEDULE) == 1 and runs(reopened, SCHEDULE) == 1


def test_finance_query_and_export_read_one_household(settings: Settings, homes: tuple[Home, Home],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    a, b = homes
    monkeypatch.setenv("FINANCE_DATA_DIR", str(settings.data_dir))
    for name in OFFLINE_UNSET:
        monkeypatch.delenv(name, raising=False)
    assert cli_analyst.main(["query", "--household", "b", "--format", "csv",
                             "SELECT id, household_id FROM transactions"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert b.connection_id.split(":")[0] in out and not leaked(out, a) and ",b" in out
    assert cli_analyst.main(["export", "transactions", "--household", "a"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert not leaked(out, b) and out.count("\n") > 1
    assert cli_analyst.main(["query", "--household", "nobody", "SELECT 1"]) == 1
    assert "no household nobody" in capsysbinary.readouterr().err.decode()
    with pytest.raises(SystemExit):
        cli_analyst.main(["query", "--household", "../a", "SELECT 1"])
    assert not (settings.data_dir / "households" / "nobody").exists()
