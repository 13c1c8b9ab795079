"""Builds each provider for the current settings: the real API when credentials are set, else the emulator."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx

from finance.config import Settings
from finance.providers.base import ConnectableProvider
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.pluggy import PluggyClient, PluggyProvider
from finance.sandbox.pluggy import PluggyEmulator
from finance.store.secrets import SecretStore

OFFLINE_CLIENT_ID = "offline-sandbox"
OFFLINE_CLIENT_SECRET = "offline-sandbox"  # the emulators accept any non-empty pair

Emulator = PluggyEmulator | PlaidEmulator
E = TypeVar("E", PluggyEmulator, PlaidEmulator)

_emulators: dict[str, Emulator] = {}
_emulators_lock = threading.Lock()


def _emulator(path: Path, make: Callable[[Path], E]) -> E:
    """One emulator per state file and process, so the app, its pages and its syncs share one sandbox."""
    with _emulators_lock:
        if str(path) not in _emulators:
            path.parent.mkdir(parents=True, exist_ok=True)
            _emulators[str(path)] = make(path)
        return _emulators[str(path)]  # type: ignore[return-value]


def pluggy_emulator(settings: Settings) -> PluggyEmulator:
    return _emulator(settings.sandbox_state_dir / "pluggy.json",
                     lambda path: PluggyEmulator(state_path=path, settle_delay=settings.sandbox_settle_seconds))


def plaid_emulator(settings: Settings) -> PlaidEmulator:
    return _emulator(settings.sandbox_state_dir / "plaid.json", lambda path: PlaidEmulator(state_path=path))


def _offline_wiring(emulator: Emulator) -> tuple[httpx.BaseTransport, Callable[[], datetime]]:
    return emulator.transport(), lambda: emulator.clock.now()


def pluggy_provider(settings: Settings) -> PluggyProvider:
    """Pluggy over the network, or through the in-process emulator (and on its clock) when offline."""
    transport, now = _offline_wiring(pluggy_emulator(settings)) if settings.pluggy_offline else (None, None)
    client = PluggyClient(
        settings.pluggy_client_id or OFFLINE_CLIENT_ID,
        settings.pluggy_client_secret or OFFLINE_CLIENT_SECRET,
        base_url=settings.pluggy_base_url,
        transport=transport,
        now=now,
    )
    return PluggyProvider(client, now=now)


def plaid_provider(settings: Settings, secrets: SecretStore) -> PlaidProvider:
    """Plaid over the network, or through the in-process emulator when offline; tokens come from the store."""
    transport, now = _offline_wiring(plaid_emulator(settings)) if settings.plaid_offline else (None, None)
    client = PlaidClient(
        settings.plaid_client_id or OFFLINE_CLIENT_ID,
        settings.plaid_secret or OFFLINE_CLIENT_SECRET,
        environment="sandbox" if settings.plaid_offline else settings.plaid_env,
        base_url=settings.plaid_url,
        transport=transport,
        now=now,
    )
    return PlaidProvider(client, lambda item_id: secrets.get("plaid", item_id), now=now,
                         webhook_url=settings.webhook_url("plaid"))


def build_providers(settings: Settings, secrets: SecretStore) -> dict[str, ConnectableProvider]:
    """Every provider, keyed by name."""
    return {"pluggy": pluggy_provider(settings), "plaid": plaid_provider(settings, secrets)}


def offline_emulators(settings: Settings) -> dict[str, Emulator]:
    """The in-process emulators of the providers that run offline with these settings."""
    emulators: dict[str, Emulator] = {}
    if settings.pluggy_offline:
        emulators["pluggy"] = pluggy_emulator(settings)
    if settings.plaid_offline:
        emulators["plaid"] = plaid_emulator(settings)
    return emulators
