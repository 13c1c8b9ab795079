"""Wires settings, the store, the providers and the sync engine together (for the CLI and the app)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from finance.config import Settings, load_settings
from finance.providers.pluggy import PluggyProvider
from finance.providers.registry import build_providers
from finance.store.db import create_engine, init_schema
from finance.sync import SyncEngine


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: sa.Engine
    providers: dict[str, PluggyProvider]
    sync: SyncEngine


def open_services(settings: Settings | None = None) -> Services:
    settings = settings or load_settings()
    engine = create_engine(settings.database_url)
    init_schema(engine)
    providers = build_providers(settings)
    return Services(settings=settings, engine=engine, providers=providers, sync=SyncEngine(engine, providers))
