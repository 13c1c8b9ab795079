"""Wires settings, the store, the providers and the sync engine together (for the CLI and the app)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from finance.config import Settings, load_settings
from finance.crypto import SecretBox, load_or_create_key
from finance.providers.base import ConnectableProvider
from finance.providers.registry import build_providers
from finance.store.db import create_engine, init_schema
from finance.store.secrets import SecretStore
from finance.sync import SyncEngine


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: sa.Engine
    providers: dict[str, ConnectableProvider]
    sync: SyncEngine
    secrets: SecretStore


def open_services(settings: Settings | None = None) -> Services:
    settings = settings or load_settings()
    engine = create_engine(settings.database_url)
    init_schema(engine)
    secrets = SecretStore(engine, SecretBox(load_or_create_key(settings.encryption_key, settings.data_dir)))
    providers = build_providers(settings, secrets)
    sync = SyncEngine(engine, providers, secrets=secrets)
    return Services(settings=settings, engine=engine, providers=providers, sync=sync, secrets=secrets)
