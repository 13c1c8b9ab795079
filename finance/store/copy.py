"""`python -m finance db copy --to URL`: move a whole DuckDB store into an empty PostgreSQL database.

The target is brought to the newest schema revision first; every table of the schema is streamed across in Arrow
batches and appended with COPY (the access tokens travel as the ciphertext they are: the same encryption key must be
used with the new database); the row counts of both sides are compared at the end. A target that holds any row is
refused before anything is written, so a copy never mixes two stores.
"""

from __future__ import annotations

import sqlalchemy as sa

from finance.errors import StoreError
from finance.store import migrate
from finance.store.db import copy_into, duckdb_connection
from finance.store.schema import metadata

BATCH_ROWS = 100_000


def _counts(conn: sa.Connection, names: list[str]) -> dict[str, int]:
    return {name: int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one()) for name in names}


def _existing(conn: sa.Connection) -> set[str]:
    rows = conn.execute(sa.text("SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = current_schema()")).scalars()
    return {str(name) for name in rows}


def copy_store(source: sa.Engine, target: sa.Engine) -> dict[str, int]:
    """Copy every table of `source` (DuckDB) into `target` (PostgreSQL, empty); returns the rows per table."""
    if source.dialect.name != "duckdb" or target.dialect.name != "postgresql":
        raise StoreError("db copy moves a DuckDB store (FINANCE_DATABASE_URL or the data folder's file) into a "
                         "PostgreSQL database (--to postgresql+psycopg://…).", code="COPY_REFUSED")
    names = [table.name for table in metadata.sorted_tables]
    with target.connect() as conn:
        held = _counts(conn, sorted(set(names) & _existing(conn)))
    full = {name: n for name, n in held.items() if n}
    if full:
        listed = ", ".join(f"{n} in {name}" for name, n in sorted(full.items()))
        raise StoreError(f"The target database is not empty ({listed} rows), so nothing was copied: db copy only "
                         "fills an empty database. Create a new database and copy into it.", code="COPY_REFUSED")
    migrate.upgrade(source)
    migrate.upgrade(target)
    with source.connect() as read, target.begin() as write:
        duck = duckdb_connection(read)
        for table in metadata.sorted_tables:
            columns = ", ".join(f'"{c.name}"' for c in table.columns)
            reader = duck.sql(f'SELECT {columns} FROM "{table.name}"').to_arrow_reader(BATCH_ROWS)
            copy_into(write, table.name, reader)
        expected = _counts(read, names)
        copied = _counts(write, names)
        if copied != expected:
            wrong = ", ".join(f"{name}: {copied[name]} of {expected[name]}" for name in names
                              if copied[name] != expected[name])
            raise StoreError(f"The copy does not match the source ({wrong} rows), so it was rolled back and the "
                             "target is empty again.", code="COPY_MISMATCH")
    return copied
