"""The store's schema version, kept by Alembic (finance/store/migrations): one history for DuckDB and PostgreSQL.

`upgrade` brings a store to the newest revision (creating it when empty, adopting a store made before migrations
existed); the app and the CLI do that by themselves for an embedded DuckDB file. A PostgreSQL database is shared by
several processes, so it is upgraded on purpose (`python -m finance db upgrade`), and `check_current` refuses one
that is behind the code.

On PostgreSQL every upgrade also keeps APP_ROLE, the role that row-level security (revision 0008) cannot be bypassed
by: created when the migrating login may create roles, granted what the app uses on every table, sequence and
routine of the schema (the job queue's too, and those of later revisions), and granted to the migrating login so that
its transactions may switch to it (finance.store.db). Migrations and these checks run with no household set
(`without_household`).
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from finance.errors import StoreError
from finance.i18n import _

MIGRATIONS = Path(__file__).with_name("migrations")
UPGRADE_COMMAND = "python -m finance db upgrade"
UPGRADE_LOCK = 0x66696E616E6365  # PostgreSQL advisory lock: one upgrade at a time across processes
APP_ROLE = "finance_app"
"""PostgreSQL: the role (NOLOGIN, NOBYPASSRLS) a transaction switches to when the login role could bypass row-level
security (a superuser, or a role with BYPASSRLS)."""

log = logging.getLogger(__name__)


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


def without_household(engine: sa.Engine) -> sa.Engine:
    """The same store with no household: for the schema's migrations and checks. On PostgreSQL its transactions set
    none and keep the login role, so reads of households' rows return nothing (unless the login bypasses row-level
    security) and writes of them fail."""
    return engine.execution_options(household=None)


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the store is at; None for an empty store or one made before migrations."""
    with without_household(engine).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _refuse_newer(current: str | None) -> None:
    """Raise when `current` is a revision of a newer version of the app (this code cannot use or upgrade it)."""
    if current is not None and current not in known_revisions():
        raise StoreError(_("The database is at schema revision {revision}, which a newer version of the app made; "
                           "this version cannot use it. Update the app (every process on this database) to the "
                           "newest version.").format(revision=current), code="STORE_AHEAD")


def upgrade(engine: sa.Engine) -> str:
    """Bring the store to the newest revision (nothing to do when it is there); returns that revision."""
    current = current_revision(engine)
    if current == head_revision() and engine.dialect.name != "postgresql":
        return current
    _refuse_newer(current)
    with without_household(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
        if current != head_revision():
            command.upgrade(_config(conn), "head")
        if conn.dialect.name == "postgresql":
            grant_app_role(conn)
    return head_revision()


APP_PRIVILEGES = (
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    "GRANT EXECUTE ON ALL ROUTINES IN SCHEMA {schema} TO {role}",
    "GRANT TEMPORARY ON DATABASE {database} TO {role}",
)
"""What the app's transactions use: the tables' rows (not their definitions; the schema version is only read), the
job queue's sequences and functions, and temporary tables (bulk syncs COPY into them)."""


def grant_app_role(conn: sa.Connection) -> bool:
    """PostgreSQL: create APP_ROLE when missing and allowed, grant it what the app uses, and grant it to the
    migrating login; False (and a warning naming what an administrator must run) when the role cannot be made. A
    login without superuser or BYPASSRLS needs none of it: FORCE ROW LEVEL SECURITY holds it to the policies."""
    role = conn.execute(sa.text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :role"),
                        {"role": APP_ROLE}).first()
    if role is None:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"CREATE ROLE {APP_ROLE} NOLOGIN NOBYPASSRLS")
        except sa.exc.ProgrammingError:
            log.warning("The role %s does not exist and this login may not create it. That is fine while the app "
                        "connects as the owner of the tables without superuser rights; a login that is a superuser "
                        "or has BYPASSRLS needs it: as a superuser run `CREATE ROLE %s NOLOGIN NOBYPASSRLS; GRANT %s "
                        "TO <the app's login>;`, then `%s` again.", APP_ROLE, APP_ROLE, APP_ROLE, UPGRADE_COMMAND)
            return False
    elif role[0]:
        raise StoreError(_("The role {role} can bypass row-level security (it is a superuser or has BYPASSRLS), so "
                           "it cannot keep households apart. As a superuser run: ALTER ROLE {role} NOSUPERUSER "
                           "NOBYPASSRLS; then `{command}` again.").format(role=APP_ROLE, command=UPGRADE_COMMAND),
                         code="STORE_APP_ROLE_BYPASSES")
    names = conn.execute(sa.text("SELECT quote_ident(current_schema()), quote_ident(current_database()), "
                                 "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")).one()
    for statement in APP_PRIVILEGES:
        conn.exec_driver_sql(statement.format(schema=names[0], database=names[1], role=APP_ROLE))
    if not names[2]:  # a superuser may switch to any role; anyone else must be a member
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"GRANT {APP_ROLE} TO CURRENT_USER")
        except sa.exc.ProgrammingError:
            log.warning("This login may not grant itself the role %s: if it has BYPASSRLS, a superuser must run "
                        "`GRANT %s TO <the app's login>;`.", APP_ROLE, APP_ROLE)
    return True


def check_current(engine: sa.Engine) -> None:
    """Raise a StoreError naming the upgrade command when the store is not at this code's revision."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    _refuse_newer(current)
    where = (_("The database is at schema revision {revision}").format(revision=current) if current
             else _("The database is empty (or made before versioned migrations)"))
    raise StoreError(where + _(", and this version of the app needs revision {head}. Run `{command}` once with the "
                               "same FINANCE_DATABASE_URL, then start the app again.").format(
        head=head, command=UPGRADE_COMMAND), code="STORE_BEHIND")



def prepare(engine: sa.Engine) -> None:
    """At start-up: upgrade an embedded DuckDB store; refuse a PostgreSQL store that is behind the code."""
    if engine.dialect.name == "duckdb":
        upgrade(engine)
    else:
        check_current(engine)
