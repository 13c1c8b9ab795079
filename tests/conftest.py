"""Shared fixtures: an emulator on a fixed clock, the real Pluggy client wired to it, a fresh DuckDB store."""

from __future__ import annotations

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


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's settings on an empty data folder: no credentials, an instant sandbox bank."""
    for name in OFFLINE_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINANCE_SANDBOX_SETTLE_SECONDS", "0")
    return tmp_path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"duckdb:///{tmp_path / 'test.duckdb'}")
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


def build_demo_store(folder: Path) -> Path:
    """A data folder with the demo's two sandbox banks synced (Pluggy Bank in BRL, First Platypus Bank in USD),
    for page tests to copy instead of connecting again."""
    with pytest.MonkeyPatch.context() as mp:
        for name in OFFLINE_UNSET:
            mp.delenv(name, raising=False)
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
    """The demo's store, built once per test module (copy it before changing it)."""
    return build_demo_store(tmp_path_factory.mktemp("demo"))


def ok(at: AppTest) -> AppTest:
    """The app after a run that raised nothing (else the exceptions it showed)."""
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(autouse=True)
def english_by_default() -> Iterator[None]:
    """Each test starts with English as the process's language (a page run in pt-BR makes it the worker's)."""
    yield
    i18n.set_default(None)
