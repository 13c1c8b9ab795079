"""Builds each provider for the current settings: the real API when credentials are set, else the emulator."""

from __future__ import annotations

import threading

import httpx

from finance.config import Settings
from finance.providers.base import ConnectableProvider
from finance.providers.pluggy import PluggyClient, PluggyProvider
from finance.sandbox.pluggy import PluggyEmulator
from finance.store.secrets import SecretStore

OFFLINE_CLIENT_ID = "offline-sandbox"
OFFLINE_CLIENT_SECRET = "offline-sandbox"  # the emulator accepts any non-empty pair

_emulators: dict[str, PluggyEmulator] = {}
_emulators_lock = threading.Lock()


def pluggy_emulator(settings: Settings) -> PluggyEmulator:
    """The process-wide offline Pluggy emulator, its state kept under the data folder."""
    path = settings.sandbox_state_dir / "pluggy.json"
    with _emulators_lock:
        if str(path) not in _emulators:
            path.parent.mkdir(parents=True, exist_ok=True)
            _emulators[str(path)] = PluggyEmulator(state_path=path, settle_delay=settings.sandbox_settle_seconds)
        return _emulators[str(path)]


def pluggy_provider(settings: Settings) -> PluggyProvider:
    """Pluggy over the network, or through the in-process emulator (and on its clock) when offline."""
    transport: httpx.BaseTransport | None = None
    now = None
    if settings.pluggy_offline:
        emulator = pluggy_emulator(settings)
        transport = emulator.transport()
        now = lambda: emulator.clock.now()  # noqa: E731 - the emulator may swap its clock on reload
    client = PluggyClient(
        settings.pluggy_client_id or OFFLINE_CLIENT_ID,
        settings.pluggy_client_secret or OFFLINE_CLIENT_SECRET,
        base_url=settings.pluggy_base_url,
        transport=transport,
        now=now,
    )
    return PluggyProvider(client, now=now)


def build_providers(settings: Settings, secrets: SecretStore) -> dict[str, ConnectableProvider]:
    """Every provider, keyed by name; Plaid looks up each item's access token in the secret store."""
    return {"pluggy": pluggy_provider(settings)}


def offline_emulators(settings: Settings) -> dict[str, PluggyEmulator]:
    """The in-process emulators of the providers that run offline with these settings."""
    emulators: dict[str, PluggyEmulator] = {}
    if settings.pluggy_offline:
        emulators["pluggy"] = pluggy_emulator(settings)
    return emulators
