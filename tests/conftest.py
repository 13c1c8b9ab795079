"""Shared fixtures: an emulator on a fixed clock, the real Pluggy client wired to it, a fresh DuckDB store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from finance.model import ConnectionState, ConnectionStatus
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from finance.store.db import create_engine, init_schema
from finance.sync import SyncEngine

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


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
    for name in ("PLUGGY_CLIENT_ID", "PLUGGY_CLIENT_SECRET", "PLUGGY_BASE_URL", "PLAID_CLIENT_ID", "PLAID_SECRET",
                 "PLAID_BASE_URL", "FINANCE_DATABASE_URL", "FINANCE_ENCRYPTION_KEY"):
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
