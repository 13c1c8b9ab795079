"""Shared fixtures: an emulator on a fixed clock, the real Pluggy client wired to it, a fresh DuckDB store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance import i18n
from finance.config import load_settings
from finance.demo import run_demo
from finance.model import ConnectionState, ConnectionStatus
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from finance.services import open_services
from finance.store.db import create_engine, init_schema
from finance.sync import SyncEngine
from tests.postgres import PostgresServer, postgres_server  # noqa: F401  (postgres_server: a session fixture)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


OFFLINE_UNSET = ("PLUGGY_CLIENT_ID", "PLUGGY_CLIENT_SECRET", "PLUGGY_BASE_URL", "PLAID_CLIENT_ID", "PLAID_SECRET",
                 "PLAID_BASE_URL", "FINANCE_DATABASE_URL", "FINANCE_ENCRYPTION_KEY")
"""The settings that would take the app off its offline sandboxes."""


@pytest.fixture
def emulator() -> PluggyEmulator:
    return PluggyEmulator(clock=Clock(start=START), seed=7)


@pytest.fixture
def provider(emulator: PluggyEmulator) -> Iterator[PluggyProvider]:
    client = PluggyClient("test-id", "test-secret", transport=emulator.transport(), sleep=lambda _s: None,
                          now=emulator.clock.now)
    yield PluggyProvider(client, now=emulator.clock.now)
    client.close()


ENGINES = ("duckdb", "postgresql")
"""The store's engines: a module marked `pytest.mark.engines` runs each test that uses the store on each of them."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker("engines"):
        metafunc.parametrize("db_kind", ENGINES, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with long tests (marked slow, then browser) first, each file's tests in their order: `make test` hands
    whole files to its workers (pytest-xdist, --dist loadfile), and a long file handed out last would keep one
    worker busy long after the other has finished."""
    weight: dict[Path, int] = {}
    for item in items:
        own = 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("browser") else 2
        weight[item.path] = min(weight.get(item.path, 2), own)
    items.sort(key=lambda item: weight[item.path])


@pytest.fixture
def db_kind(request: pytest.FixtureRequest) -> str:
    """The engine under test: DuckDB, unless the module is marked `engines` (then each in turn)."""
    return str(getattr(request, "param", "duckdb"))


@pytest.fixture
def database_url(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store's URL on the engine under test (a new database on the tests' PostgreSQL server)."""
    if db_kind == "postgresql":
        return str(request.getfixturevalue("postgres_server")())
    return f"duckdb:///{tmp_path / 'test.duckdb'}"


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_kind: str,
            request: pytest.FixtureRequest) -> Path:
    """The app's settings on an empty data folder: no credentials, an instant sandbox bank; the store is the data
    folder's DuckDB file, or a fresh PostgreSQL database when the engine under test is PostgreSQL."""
    for name in OFFLINE_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINANCE_SANDBOX_SETTLE_SECONDS", "0")
    if db_kind == "postgresql":  # upgraded, as `python -m finance db upgrade` would (the app refuses an empty one)
        monkeypatch.setenv("FINANCE_DATABASE_URL", upgraded(request.getfixturevalue("database_url")))
    return tmp_path


def upgraded(url: str) -> str:
    """`url`, after bringing its store to the newest schema revision."""
    engine = create_engine(url)
    try:
        init_schema(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = create_engine(database_url)
    init_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sync(engine: sa.Engine, provider: PluggyProvider, emulator: PluggyEmulator) -> SyncEngine:
    return SyncEngine(engine, {"pluggy": provider}, now=emulator.clock.now)


def connect(provider: PluggyProvider, sync: SyncEngine, user: str = "user-ok") -> str:
    """Connect Pluggy Bank as a user would and register it; returns the connection id."""
    state: ConnectionState = provider.create_connection("0", {"user": user, "password": "password-ok"})
    state = provider.wait_until_settled(state.external_id, sleep=lambda _s: None)
    if state.status is ConnectionStatus.NEEDS_INPUT:
        state = provider.submit_mfa(state.external_id, {"token": "123456"})
        state = provider.wait_until_settled(state.external_id, sleep=lambda _s: None)
    assert state.status is ConnectionStatus.ACTIVE, state
    return sync.register(state)


def store_engine() -> sa.Engine:
    """An engine on the store the app's settings name: the data folder's DuckDB file, or FINANCE_DATABASE_URL (the
    PostgreSQL database of a test on that engine)."""
    return create_engine(load_settings().database_url)


def build_demo_store(folder: Path, database_url: str | None = None) -> Path:
    """A data folder with the demo's two sandbox banks synced (Pluggy Bank in BRL, First Platypus Bank in USD),
    for page tests to copy instead of connecting again; the store is the folder's DuckDB file, or `database_url`."""
    with pytest.MonkeyPatch.context() as mp:
        for name in OFFLINE_UNSET:
            mp.delenv(name, raising=False)
        if database_url:
            mp.setenv("FINANCE_DATABASE_URL", database_url)
        mp.setenv("FINANCE_DATA_DIR", str(folder))
        mp.setenv("FINANCE_SANDBOX_SETTLE_SECONDS", "0")
        services = open_services(load_settings())
        try:
            results = run_demo(services, interval=0)
        finally:
            services.engine.dispose()
    assert [r.outcome for r in results] == ["success", "success"], [r.message for r in results]
    return folder


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's store, built once per test module (copy it before changing it, with `demo_copy`)."""
    return build_demo_store(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_store_postgresql(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """The demo's data folder and its PostgreSQL database (a template to clone), built once per session."""
    url = upgraded(request.getfixturevalue("postgres_server")())
    folder = build_demo_store(tmp_path_factory.mktemp("demo-pg"), url)
    return folder, sa.engine.make_url(url).database or ""


@pytest.fixture
def demo_copy(offline: Path, db_kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's store as this test's own, on the engine under test: its data folder copied into `offline`'s,
    and on PostgreSQL its database cloned."""
    if db_kind == "postgresql":
        folder, template = request.getfixturevalue("demo_store_postgresql")
        server: PostgresServer = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("FINANCE_DATABASE_URL", server.create_database(template=template))
    else:
        folder = request.getfixturevalue("demo_store")
    shutil.copytree(folder, offline, dirs_exist_ok=True)
    return offline


def ok(at: AppTest) -> AppTest:
    """The app after a run that raised nothing (else the exceptions it showed)."""
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(autouse=True)
def english_by_default() -> Iterator[None]:
    """Each test starts with English as the process's language (a page run in pt-BR makes it the worker's)."""
    yield
    i18n.set_default(None)
