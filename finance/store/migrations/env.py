"""Alembic's entry point for the store's migrations: runs them on the connection finance.store.migrate hands over
(in its transaction), on DuckDB or PostgreSQL alike."""

from __future__ import annotations

from alembic import context

from finance.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
