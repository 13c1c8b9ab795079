"""`python -m finance db copy --to URL`: move a DuckDB store (one household's file) into a PostgreSQL database.

The target is brought to the newest schema revision first. A DuckDB file holds one household's rows (every row has
the same household_id); the copy runs as that household under row-level security (revision 0008), so the rows keep
their household and the target may already hold other households': several households' files can be moved into one
database, one after the other. Every table is streamed across in Arrow batches, COPYed into a temporary table and
inserted from there in one statement (PostgreSQL refuses COPY straight into a table under row-level security); the
access tokens travel as the ciphertext they are (the same encryption key must be used with the new database). The
category taxonomy and the directory (households, members, which household each connection is in) are shared by
every household: their rows already in the target are kept. At the end the row counts are compared, as the
household sees them. A target that holds any row of the household is refused before anything is written, so a copy
never mixes two stores of one household.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from finance.errors import StoreError
from finance.i18n import _
from finance.store import migrate
from finance.store.db import duckdb_connection, load_arrow, unload_arrow
from finance.store.schema import LOCAL_HOUSEHOLD, SHARED_TABLES, metadata

BATCH_ROWS = 100_000
COMMON_TABLES = frozenset({*SHARED_TABLES, "households", "members", "connection_directory"})
"""Read by every household alike (no row-level security): rows the target already has are kept."""


def _counts(conn: sa.Connection, names: list[str]) -> dict[str, int]:
    return {name: int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one()) for name in names}


def _existing(conn: sa.Connection) -> set[str]:
    rows = conn.execute(sa.text("SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = current_schema()")).scalars()
    return {str(name) for name in rows}


def source_household(source: sa.Engine) -> str:
    """The household whose rows a DuckDB store holds ('local' for a store with none); StoreError when its rows
    name several (a store this app never makes)."""
    tables = [t.name for t in metadata.sorted_tables if "household_id" in t.c and t.name not in COMMON_TABLES]
    union = " UNION ".join(f'SELECT DISTINCT household_id FROM "{name}"' for name in tables)
    with source.connect() as conn:
        found = sorted(str(h) for h in conn.execute(sa.text(union)).scalars())
    if len(found) > 1:
        raise StoreError(_("The store holds rows of several households ({households}), so nothing was copied: a "
                           "DuckDB store is one household's.").format(households=", ".join(found)),
                         code="COPY_REFUSED")
    return found[0] if found else LOCAL_HOUSEHOLD


def _kept_apart(conn: sa.Connection) -> bool:
    """The target keeps households apart (row-level security, revision 0008 or later): its rows of other
    households are no reason to refuse, and the household's own are checked as the household sees them."""
    return bool(conn.execute(sa.text("SELECT coalesce((SELECT relrowsecurity FROM pg_class "
                                     "WHERE oid = to_regclass('transactions')), false)")).scalar_one())


def _refuse_if_held(conn: sa.Connection, names: list[str], household: str) -> None:
    full = {name: n for name, n in _counts(conn, names).items() if n}
    if full:
        listed = ", ".join(f"{name}: {n}" for name, n in sorted(full.items()))
        raise StoreError(_("The target database is not empty for the household {household} (rows: {listed}), so "
                           "nothing was copied: db copy only fills a database that holds none of the household's "
                           "rows. Create a new database and copy into it.").format(household=household,
                                                                                    listed=listed),
                         code="COPY_REFUSED")


def copy_store(source: sa.Engine, target: sa.Engine) -> dict[str, int]:
    """Copy every table of `source` (DuckDB, one household's) into `target` (PostgreSQL, holding none of that
    household's rows); returns the source's rows per table."""
    if source.dialect.name != "duckdb" or target.dialect.name != "postgresql":
        raise StoreError(_("db copy moves a DuckDB store (FINANCE_DATABASE_URL or the data folder's file) into a "
                           "PostgreSQL database (--to postgresql+psycopg://…)."), code="COPY_REFUSED")
    names = [table.name for table in metadata.sorted_tables]
    own = [name for name in names if name not in COMMON_TABLES]
    migrate.upgrade(source)
    household = source_household(source)
    with migrate.without_household(target).connect() as conn:
        if not _kept_apart(conn):  # before revision 0008: every row the target holds would be the household's
            _refuse_if_held(conn, sorted(set(own) & _existing(conn)), household)
    migrate.upgrade(target)
    scoped = target.execution_options(household=household)
    with source.connect() as read, scoped.begin() as write:
        _refuse_if_held(write, own, household)
        duck = duckdb_connection(read)
        present = {table.name: _copy_table(duck, write, table) for table in metadata.sorted_tables}
        expected = _counts(read, names)
        copied = {name: n for name, n in present.items() if n is not None} | _counts(write, own)
        if copied != expected:
            wrong = ", ".join(f"{name}: {copied[name]} of {expected[name]}" for name in names
                              if copied[name] != expected[name])
            raise StoreError(_("The copy does not match the source (rows: {wrong}), so it was rolled back and the "
                               "target is as it was.").format(wrong=wrong), code="COPY_MISMATCH")
    return expected


STAGED = "copy_staged"


def _copy_table(duck: Any, write: sa.Connection, table: sa.Table) -> int | None:
    """One table: COPYed into a temporary table, inserted from it. A common table gets the rows whose key the target
    lacks, and the count is of the source's rows whose key the target has (then None for the others)."""
    columns = ", ".join(f'"{c.name}"' for c in table.columns)
    load_arrow(write, STAGED, duck.sql(f'SELECT {columns} FROM "{table.name}"').to_arrow_reader(BATCH_ROWS))
    present = None
    if table.name in COMMON_TABLES:
        write.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{STAGED}" '
                              "ON CONFLICT DO NOTHING")
        key = " AND ".join(f's."{c.name}" = t."{c.name}"' for c in table.primary_key.columns)
        present = int(write.execute(sa.text(f'SELECT count(*) FROM "{STAGED}" s WHERE EXISTS '
                                            f'(SELECT 1 FROM "{table.name}" t WHERE {key})')).scalar_one())
    else:
        write.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{STAGED}"')
    unload_arrow(write, STAGED)
    return present
