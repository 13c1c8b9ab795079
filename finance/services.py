"""Wires settings, the store, the providers and the sync engine together (for the CLI and the app).

DuckDB lets one process hold a database file, so inside the app process everything — the pages, the webhook
routes and the background worker — must use the same engine: `shared_services` keeps one `Services` per settings
for the life of the process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass, field

import sqlalchemy as sa

from finance.config import Settings, load_settings
from finance.crypto import SecretBox, load_or_create_key
from finance.providers.base import ConnectableProvider
from finance.providers.registry import build_providers
from finance.store.db import create_engine, init_schema, store_error
from finance.store.migrate import add_missing_columns
from finance.store.secrets import SecretStore
from finance.sync import SyncEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: sa.Engine
    providers: dict[str, ConnectableProvider]
    sync: SyncEngine
    secrets: SecretStore
    webhook_secret: str = field(default="", repr=False)  # the header secret Pluggy webhooks must carry


def webhook_secret(settings: Settings, key: bytes) -> str:
    """FINANCE_WEBHOOK_SECRET, else a secret derived from the encryption key (stable across restarts, never stored
    on its own; it changes when the key does, and the app then registers the new one at start-up)."""
    if settings.webhook_secret:
        return settings.webhook_secret
    return hmac.new(key, b"finance/pluggy-webhook-secret/v1", hashlib.sha256).hexdigest()


def open_services(settings: Settings | None = None) -> Services:
    """Open the store (bringing its schema up to date), the providers and the sync engine, and close the sync runs
    a killed process left running. A store that cannot be opened raises StoreError (finance.store.db), a key that
    cannot be read SecretError (finance.crypto): each says what to do."""
    settings = settings or load_settings()
    engine = create_engine(settings.database_url)
    try:
        init_schema(engine)
        add_missing_columns(engine)
    except Exception as exc:
        engine.dispose()
        problem = store_error(exc)
        if problem is None:
            raise
        raise problem from exc
    key = load_or_create_key(settings.encryption_key, settings.data_dir)
    secrets = SecretStore(engine, SecretBox(key))
    providers = build_providers(settings, secrets)
    sync = SyncEngine(engine, providers, secrets=secrets)
    try:
        sync.close_interrupted_runs()
    except Exception as exc:  # a full or read-only store can still be read: its runs are closed next time
        problem = store_error(exc)
        if problem is None:
            raise
        log.warning("could not close interrupted sync runs: %s", problem.code)
    return Services(settings=settings, engine=engine, providers=providers, sync=sync, secrets=secrets,
                    webhook_secret=webhook_secret(settings, key))


_shared: dict[Settings, Services] = {}
_shared_lock = threading.Lock()


def shared_services(settings: Settings | None = None) -> Services:
    """The process's one `Services` for these settings (the app's pages, webhook routes and worker share it)."""
    settings = settings or load_settings()
    with _shared_lock:
        found = _shared.get(settings)
        if found is None:
            found = _shared[settings] = open_services(settings)
        return found
