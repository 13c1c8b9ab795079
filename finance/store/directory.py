"""The directory of households' stores: which household each connection is in (`connection_directory`), so a webhook
or a scheduled sync reaches the store that holds the connection, and the households background work covers.

The directory lives in the local household's store (on PostgreSQL: the one database, outside row-level security):
`Directory` is handed a way to reach that store's engine. A household's own DuckDB file is set up here too: after
its migrations, every `household_id` column defaults to the household, so each row it writes says whose it is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from finance.config import LOCAL_HOUSEHOLD, Settings, private_folder, valid_household
from finance.store.schema import DIRECTORY_TABLES, connection_directory, households, metadata


def record(conn: sa.Connection, connection_id: str, household: str) -> None:
    """`connection_id` is in `household` (a reconnect, or a connection that moved, overwrites the old entry)."""
    conn.execute(connection_directory.delete().where(connection_directory.c.connection_id == connection_id))
    conn.execute(connection_directory.insert().values(connection_id=connection_id, household_id=household))


def forget(conn: sa.Connection, connection_id: str) -> None:
    """`connection_id` is gone: webhooks for it are ignored like those of any unknown connection."""
    conn.execute(connection_directory.delete().where(connection_directory.c.connection_id == connection_id))


def household_of(conn: sa.Connection, connection_id: str) -> str | None:
    """The household holding `connection_id`, or None when the directory does not know it."""
    return conn.execute(sa.select(connection_directory.c.household_id).where(
        connection_directory.c.connection_id == connection_id)).scalar_one_or_none()


def known_households(conn: sa.Connection) -> list[str]:
    """Every household background work covers: the local one, each signed-up household and each holding a
    connection, local first, then by id."""
    rows = conn.execute(sa.union(sa.select(households.c.id),
                                 sa.select(connection_directory.c.household_id))).scalars()
    return [LOCAL_HOUSEHOLD, *sorted({h for h in rows if h != LOCAL_HOUSEHOLD})]


class Directory:
    """The directory as one household's services use it: `local_engine` reaches the local household's store (opened
    on first use, so a household's services can be opened without it), `household` is whose connections these
    services register."""

    def __init__(self, local_engine: Callable[[], sa.Engine], household: str) -> None:
        self._local_engine = local_engine
        self.household = household

    @property
    def engine(self) -> sa.Engine:
        return self._local_engine()

    def connected(self, connection_id: str) -> None:
        """A connection of this household was connected (or reconnected)."""
        with self.engine.begin() as conn:
            record(conn, connection_id, self.household)

    def deleted(self, connection_id: str) -> None:
        """A connection of this household was deleted."""
        with self.engine.begin() as conn:
            forget(conn, connection_id)

    def household_of(self, connection_id: str) -> str | None:
        with self.engine.connect() as conn:
            return household_of(conn, connection_id)

    def households(self) -> list[str]:
        with self.engine.connect() as conn:
            return known_households(conn)


HOUSEHOLD_TABLES = tuple(t.name for t in metadata.sorted_tables
                         if "household_id" in t.columns and t.name not in DIRECTORY_TABLES)
"""The tables whose rows belong to a household (every table but the shared taxonomy and the directory)."""


def household_file(settings: Settings) -> Path | None:
    """The DuckDB file of a household other than the local one, its folder made private (0700) before the file is
    created in it; None for the local store and on PostgreSQL (one database, row-level security)."""
    url = settings.database_url
    if settings.household == LOCAL_HOUSEHOLD or not url.startswith("duckdb:///") or url == "duckdb:///:memory:":
        return None
    path = Path(url.removeprefix("duckdb:///"))
    private_folder(path.parent)
    return path


def claim_file(engine: sa.Engine, path: Path, household: str) -> None:
    """After a household's DuckDB file is migrated: readable by this user only, and every `household_id` column
    defaults to `household` (checked at each open, written only when a migration left another default), so rows the
    app writes there carry their household."""
    path.chmod(0o600)
    wanted = f"'{valid_household(household)}'"  # it is written into DDL below
    with engine.begin() as conn:
        defaults = dict(conn.execute(sa.text(
            "SELECT table_name, column_default FROM information_schema.columns "
            "WHERE column_name = 'household_id' AND table_schema = 'main'")).all())
        for table in HOUSEHOLD_TABLES:
            if table in defaults and defaults[table] != wanted:
                conn.exec_driver_sql(f'ALTER TABLE "{table}" ALTER COLUMN household_id SET DEFAULT {wanted}')
