"""The store's schema version, kept by Alembic (finance/store/migrations): one history for DuckDB and PostgreSQL.

`upgrade` brings a store to the newest revision (creating it when empty, adopting a store made before migrations
existed); the app and the CLI do that by themselves for an embedded DuckDB file. A PostgreSQL database is shared by
several processes, so it is upgraded on purpose (`python -m finance db upgrade`), and `check_current` refuses one
that is behind the code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from finance.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
UPGRADE_COMMAND = "python -m finance db upgrade"
UPGRADE_LOCK = 0x66696E616E6365  # PostgreSQL advisory lock: one upgrade at a time across processes


class DuckDBImpl(DefaultImpl):
    """Alembic's operations on DuckDB (duckdb_engine ships none): the default SQL, with transactional DDL."""

    __dialect__ = "duckdb"
    transactional_ddl = True


def _config(conn: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


@cache
def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@cache
def known_revisions() -> frozenset[str]:
    """Every revision in this code's history."""
    return frozenset(r.revision for r in ScriptDirectory.from_config(_config()).walk_revisions())


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the store is at; None for an empty store or one made before migrations."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _refuse_newer(current: str | None) -> None:
    """Raise when `current` is a revision of a newer version of the app (this code cannot use or upgrade it)."""
    if current is not None and current not in known_revisions():
        raise StoreError(f"The database is at schema revision {current}, which a newer version of the app made; this "
                         "version cannot use it. Update the app (every process on this database) to the newest "
                         "version.", code="STORE_AHEAD")


def upgrade(engine: sa.Engine) -> str:
    """Bring the store to the newest revision (nothing to do when it is there); returns that revision."""
    current = current_revision(engine)
    if current == head_revision():
        return current
    _refuse_newer(current)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
        command.upgrade(_config(conn), "head")
    return head_revision()


def check_current(engine: sa.Engine) -> None:
    """Raise a StoreError naming the upgrade command when the store is not at this code's revision."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    _refuse_newer(current)
    where = f"at schema revision {current}" if current else "empty (or made before versioned migrations)"
    raise StoreError(f"The database is {where}, and this version of the app needs revision {head}. Run "
                     f"`{UPGRADE_COMMAND}` once with the same FINANCE_DATABASE_URL, then start the app again.",
                     code="STORE_BEHIND")


def prepare(engine: sa.Engine) -> None:
    """At start-up: upgrade an embedded DuckDB store; refuse a PostgreSQL store that is behind the code."""
    if engine.dialect.name == "duckdb":
        upgrade(engine)
    else:
        check_current(engine)
