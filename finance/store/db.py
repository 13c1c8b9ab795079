"""Engine creation, schema set-up and the one way a query becomes a DataFrame. DuckDB is the embedded default; the
schema is plain SQLAlchemy Core."""

from __future__ import annotations

import errno
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.categories import CATEGORIES
from finance.errors import DatabaseBusy, StoreError
from finance.i18n import N_, _
from finance.store.schema import categories, metadata

STORE_FULL = N_("The disk is full (or the app's file size limit is reached): the database could not be written, so "
                "nothing was changed. Free some disk space, then try again.")
STORE_READ_ONLY = N_("The database cannot be written: it is read-only or the app lacks permission, so nothing was "
                     "changed. Check the permissions of the database file and its folder (and that "
                     "FINANCE_DATABASE_URL does not open it read-only), then try again.")
STORE_CORRUPT = N_("The database file is damaged or is not a database this app can read. Restore it from a backup, "
                   "or move it aside to start a new one (the banks then sync again from scratch).")
STORE_UNAVAILABLE = N_("The database failed ({kind}); nothing was changed. Restart the app and try again; if it keeps "
                       "failing, check the disk and restore the database from a backup.")

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_TEXT = ("no space left", "file too large", "disk quota", "disk full")
_READ_ONLY_TEXT = ("read-only", "read only", "permission denied", "readonly")
_CORRUPT_TEXT = ("not a valid duckdb database", "corrupt", "checksum", "malformed")
_UNAVAILABLE_TYPES = ("IOException", "FatalException", "OperationalError", "InternalError", "ConnectionException")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the driver error under a SQLAlchemy one, and what caused each (each once)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        orig = getattr(item, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, item.__cause__, item.__context__]


def store_error(exc: BaseException) -> StoreError | None:
    """The store problem behind `exc` (a full disk, a read-only or damaged file, a failed database), typed and
    explained; None when `exc` is not one."""
    for cause in _causes(exc):
        if isinstance(cause, StoreError):
            return cause
        if not (isinstance(cause, OSError) or _is_database_error(cause)):
            continue
        text = str(cause).lower()
        number = cause.errno if isinstance(cause, OSError) else None
        if number in _FULL_ERRNOS or any(t in text for t in _FULL_TEXT):
            return StoreError(str(STORE_FULL), code="STORE_FULL")
        if number in _READ_ONLY_ERRNOS or any(t in text for t in _READ_ONLY_TEXT):
            return StoreError(str(STORE_READ_ONLY), code="STORE_READ_ONLY")
        if _is_database_error(cause) and any(t in text for t in _CORRUPT_TEXT):
            return StoreError(str(STORE_CORRUPT), code="STORE_CORRUPT")
    for cause in _causes(exc):
        if isinstance(cause, sa.exc.OperationalError | sa.exc.InternalError) or (
                _is_database_error(cause) and type(cause).__name__ in _UNAVAILABLE_TYPES):
            return StoreError(STORE_UNAVAILABLE.format(kind=type(cause).__name__), code="STORE_UNAVAILABLE")
    return None


def _is_database_error(exc: BaseException) -> bool:
    """An error of SQLAlchemy or of the database driver (DuckDB, psycopg), not of the app."""
    return isinstance(exc, sa.exc.DBAPIError) or type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb",
                                                                                          "psycopg", "psycopg2")


def create_engine(url: str) -> sa.Engine:
    """An engine for the store; creates the folder of a DuckDB file. Raises DatabaseBusy on a held lock and a
    StoreError when the file cannot be opened (damaged, unreadable, on a full disk)."""
    engine = sa.create_engine(url)
    try:
        if url.startswith("duckdb:///") and not url.startswith("duckdb:///:memory:"):
            Path(url.removeprefix("duckdb:///")).parent.mkdir(parents=True, exist_ok=True)
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        if isinstance(exc, sa.exc.OperationalError) and "lock" in str(exc).lower():
            raise DatabaseBusy(_(
                "The database file is in use by another process (probably the running app). Stop it, or "
                  "use the app's own Sync button, or point FINANCE_DATABASE_URL at another file."
            )) from None
        problem = store_error(exc)
        if problem is None:
            raise
        raise problem from exc
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


def frame(conn: sa.Connection, sql: str | sa.Executable, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The rows of a query (SQL text, or a statement) as a DataFrame with the query's column names."""
    result = conn.execute(sa.text(sql) if isinstance(sql, str) else sql, dict(params or {}))
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
