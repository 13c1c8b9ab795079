"""Engine creation and schema set-up. DuckDB is the embedded default; the schema is plain SQLAlchemy Core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from finance.categories import CATEGORIES
from finance.store.schema import categories, metadata


class DatabaseBusy(RuntimeError):
    """Another process holds the DuckDB file (DuckDB allows one writer process per file)."""


def create_engine(url: str) -> sa.Engine:
    """An engine for the store; creates the folder of a DuckDB file. Raises DatabaseBusy on a held lock."""
    if url.startswith("duckdb:///") and not url.startswith("duckdb:///:memory:"):
        Path(url.removeprefix("duckdb:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        if "lock" in str(exc).lower():
            raise DatabaseBusy(
                "The database file is in use by another process (probably the running app). Stop it, or "
                "use the app's own Sync button, or point FINANCE_DATABASE_URL at another file."
            ) from None
        raise
    return engine


def init_schema(engine: sa.Engine) -> None:
    """Create missing tables and keep the category taxonomy in step with finance.categories."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        existing = {row.id for row in conn.execute(sa.select(categories.c.id))}
        rows = [{"id": c.id, "name": c.name, "parent_id": c.parent_id, "kind": c.kind}
                for c in CATEGORIES.values() if c.id not in existing]
        if rows:
            conn.execute(categories.insert(), rows)


def duckdb_connection(conn: sa.Connection) -> Any:
    """The DuckDB connection under a SQLAlchemy connection, for Arrow registration (bulk paths)."""
    if conn.dialect.name != "duckdb":
        raise NotImplementedError("Bulk ingest is implemented for DuckDB; other databases are not supported yet.")
    return conn.connection.dbapi_connection
