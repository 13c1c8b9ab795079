"""The aggregators this app knows (their kits), and each one's provider for the current settings: the real API when
credentials are set, else its offline emulator. Shared code asks here, never a provider by name.

Adding an aggregator: a package under finance/providers/ with its kit (see finance/providers/base.py ProviderKit),
listed in KITS below, and its settings in finance/config.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

from finance.config import Settings
from finance.private_files import private_dir
from finance.providers.base import ConnectableProvider, EmulatorOptions, ProviderKit
from finance.providers.plaid.kit import KIT as PLAID
from finance.providers.pluggy.kit import KIT as PLUGGY
from finance.sandbox.common import Emulator
from finance.store.secrets import SecretStore

KITS: tuple[ProviderKit, ...] = (PLUGGY, PLAID)
"""Every aggregator, in the order the pages list them."""

_emulators: dict[str, Emulator] = {}
_emulators_lock = threading.Lock()


def kit(name: str) -> ProviderKit:
    """The kit of the aggregator called `name`; KeyError for one this app does not know."""
    for found in KITS:
        if found.name == name:
            return found
    raise KeyError(name)


def names() -> list[str]:
    return [k.name for k in KITS]


def emulator(name: str, settings: Settings, state_path: Path | None = None) -> Emulator:
    """The offline emulator of `name` on its state file (under the data folder unless `state_path` is given): one per
    file and process, so the app, its pages and its syncs share one sandbox."""
    found = kit(name)
    path = state_path or settings.sandbox_state_dir / f"{name}.json"
    with _emulators_lock:
        if str(path) not in _emulators:
            private_dir(path.parent)
            _emulators[str(path)] = found.make_emulator(
                EmulatorOptions(state_path=path, settle_seconds=settings.sandbox_settle_seconds))
        return _emulators[str(path)]


def offline_emulators(settings: Settings) -> dict[str, Emulator]:
    """The in-process emulators of the aggregators that run offline with these settings, by name."""
    return {k.name: emulator(k.name, settings) for k in KITS if k.is_offline(settings)}


def build_providers(settings: Settings, secrets: SecretStore) -> dict[str, ConnectableProvider]:
    """Every aggregator's provider, by name: through its in-process emulator (and on its clock) when offline."""
    return {k.name: k.make_provider(settings, secrets, emulator(k.name, settings) if k.is_offline(settings) else None)
            for k in KITS}
