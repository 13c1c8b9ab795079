"""Builds each provider for the current settings: the real API when credentials are set, else the emulator."""

from __future__ import annotations

import threading

import httpx

from finance.config import Settings
from finance.providers.pluggy import PluggyClient, PluggyProvider
from finance.sandbox.pluggy import PluggyEmulator

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


def pluggy_provider(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> PluggyProvider:
    if transport is None and settings.pluggy_offline:
        transport = pluggy_emulator(settings).transport()
    client = PluggyClient(
        settings.pluggy_client_id or OFFLINE_CLIENT_ID,
        settings.pluggy_client_secret or OFFLINE_CLIENT_SECRET,
        base_url=settings.pluggy_base_url,
        transport=transport,
    )
    return PluggyProvider(client)


def build_providers(settings: Settings) -> dict[str, PluggyProvider]:
    return {"pluggy": pluggy_provider(settings)}
