"""Engine creation, schema set-up and the one way a query becomes a DataFrame. DuckDB is the embedded default; the
schema is plain SQLAlchemy Core."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from finance.categories import CATEGORIES
from finance.errors import DatabaseBusy, StoreError
from finance.i18n import N_, _
from finance.private_files import make_private, private_dir
from finance.store import migrate
from finance.store.migrate import APP_ROLE
from finance.store.schema import LOCAL_HOUSEHOLD, categories

STORE_FULL = N_("The disk is full (or the app's file size limit is reached): the database could not be written, so "
                "nothing was changed. Free some disk space, then try again.")
STORE_READ_ONLY = N_("The database cannot be written: it is read-only or the app lacks permission, so nothing was "
                     "changed. Check the permissions of the database file and its folder (and that "
                     "FINANCE_DATABASE_URL does not open it read-only), then try again.")
STORE_CORRUPT = N_("The database file is damaged or is not a database this app can read. Restore it from a backup, "
                   "or move it aside to start a new one (the banks then sync again from scratch).")
STORE_GONE = N_("The database server went away (the connection was lost or refused), so nothing from this operation "
                "was saved. Check that PostgreSQL is running and reachable at the address in FINANCE_DATABASE_URL, "
                "then try again.")
STORE_UNAVAILABLE = N_("The database failed ({kind}); nothing was changed. Restart the app and try again; if it keeps "
                       "failing, check the disk and restore the database from a backup.")

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_TEXT = ("no space left", "file too large", "disk quota", "disk full")
_READ_ONLY_TEXT = ("read-only", "read only", "permission denied", "readonly")
_CORRUPT_TEXT = ("not a valid duckdb database", "corrupt", "checksum", "malformed")
_GONE_SQLSTATES = ("57P01", "57P02", "57P03", "08")
"""PostgreSQL's "admin shutdown", "crash shutdown", "cannot connect now", and the connection exceptions (08xxx)."""
_GONE_TEXT = ("server closed the connection", "connection refused", "connection is lost", "the connection is closed",
              "terminating connection", "connection failed", "consuming input failed", "could not receive data",
              "could not send data", "no connection to the server")
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
        if _connection_lost(cause):
            return StoreError(str(STORE_GONE), code="STORE_GONE")
    for cause in _causes(exc):
        if isinstance(cause, sa.exc.OperationalError | sa.exc.InternalError) or (
                _is_database_error(cause) and type(cause).__name__ in _UNAVAILABLE_TYPES):
            return StoreError(STORE_UNAVAILABLE.format(kind=type(cause).__name__), code="STORE_UNAVAILABLE")
    return None


def _connection_lost(exc: BaseException) -> bool:
    """`exc` says the database server is gone or unreachable (PostgreSQL stopped, restarted, or the network)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if type(exc).__module__.split(".")[0] != "psycopg":
        return False
    state = getattr(exc, "sqlstate", None) or ""
    return state.startswith(_GONE_SQLSTATES) or any(t in str(exc).lower() for t in _GONE_TEXT)


def _is_database_error(exc: BaseException) -> bool:
    """An error of SQLAlchemy or of the database driver (DuckDB, psycopg), not of the app."""
    return isinstance(exc, sa.exc.DBAPIError) or type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb",
                                                                                          "psycopg", "psycopg2")


STORE_NO_APP_ROLE = N_("The database login bypasses row-level security (it is a superuser or has BYPASSRLS), and the "
                       "role finance_app that the app then switches to is missing or not granted to it, so nothing "
                       "was read or changed. As a superuser run: CREATE ROLE finance_app NOLOGIN NOBYPASSRLS; GRANT "
                       "finance_app TO <the login in FINANCE_DATABASE_URL>; then `python -m finance db upgrade`. Or "
                       "connect as the owner of the tables without superuser rights.")


def create_engine(url: str, *, pool_size: int = 5, household: str = LOCAL_HOUSEHOLD) -> sa.Engine:
    """An engine for the store; creates the folder of a DuckDB file (0700) and narrows the file to 0600 (its WAL,
    re-created at every checkpoint, is private by the entry points' umask: finance.private_files). Raises
    DatabaseBusy on a held lock and a StoreError when the file cannot be opened (damaged, unreadable, on a full disk)
    or the server cannot be reached.

    On PostgreSQL, sessions run in UTC and without JIT (SESSION_OPTIONS), a pooled connection is checked before use
    (a server restart costs one failed operation, not a broken pool), and each process keeps `pool_size`
    connections (plus as many again at peak) per URL, shared by every household's engine. Each transaction
    belongs to `household`: row-level security (revision 0008) shows it only that household's rows and refuses a
    write of another's. On DuckDB each household has a file of its own, so `household` changes nothing."""
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        base, created = _pooled_engine(url, pool_size)
        engine = base.execution_options(household=household)
    else:
        engine = base = sa.create_engine(url)
        created = True
    path = Path(url.removeprefix("duckdb:///").split("?", 1)[0]) \
        if url.startswith("duckdb:///") and not url.startswith("duckdb:///:memory:") else None
    try:
        if path is not None:
            private_dir(path.parent)
        with engine.connect():
            pass
    except Exception as exc:
        if created:
            _forget(url, pool_size, base)
            base.dispose()
        if isinstance(exc, sa.exc.OperationalError) and "lock" in str(exc).lower():
            raise DatabaseBusy(_(
                "The database file is in use by another process (probably the running app). Stop it, or "
                  "use the app's own Sync button, or point FINANCE_DATABASE_URL at another file."
            )) from None
        problem = store_error(exc)
        if problem is None:
            raise
        raise problem from exc
    if path is not None:  # DuckDB created the file (and its WAL) with the umask's mode: the owner's only
        make_private(path)
        make_private(path.with_name(path.name + ".wal"))
    return engine


def household_of(engine: sa.Engine | sa.Connection) -> str | None:
    """The household an engine's (or connection's) transactions belong to on PostgreSQL; None for an administrative
    one (finance.store.migrate.without_household)."""
    return engine.get_execution_options().get("household")


SESSION_OPTIONS = "-c timezone=UTC -c jit=off"
"""Every app session on PostgreSQL: times come back in UTC (as on DuckDB), and no JIT compilation. A household's
queries read thousands of rows, not millions, but the planner's estimates for some (net_worth_by_day's lookup of
each account's balance on each day) pass jit_above_cost, and compiling then took 1.7 of a query's 1.73 s: the
Overview of one household of 10,000 transactions, among 50 in one database, took 2.9 s with JIT and 0.66 s without
(bench.scale, bench/RESULTS.md "Many users' data")."""

_pooled: dict[tuple[str, int], sa.Engine] = {}
_pooled_lock = threading.Lock()


def _pooled_engine(url: str, pool_size: int) -> tuple[sa.Engine, bool]:
    """The process's one pooled PostgreSQL engine for `url` (households' engines share its pool), and whether it
    was made now. Disposing any of them closes the pool's idle connections and leaves a fresh pool in place, so it
    never breaks another household's engine."""
    with _pooled_lock:
        found = _pooled.get((url, pool_size))
        if found is not None:
            return found, False
        engine = _pooled[(url, pool_size)] = sa.create_engine(
            url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
            connect_args={"options": SESSION_OPTIONS})
        sa.event.listen(engine, "connect", _remember_login)
        sa.event.listen(engine, "begin", _enter_household)
        return engine, True


def _forget(url: str, pool_size: int, engine: sa.Engine) -> None:
    with _pooled_lock:
        if _pooled.get((url, pool_size)) is engine:
            del _pooled[(url, pool_size)]


def _forget_all_in_child() -> None:
    """After fork: the parent's pooled connections are not the child's to use (a child opens its own)."""
    for engine in list(_pooled.values()):
        engine.dispose(close=False)
    _pooled.clear()


os.register_at_fork(after_in_child=_forget_all_in_child)


def _remember_login(dbapi_connection: Any, record: Any) -> None:
    """On each new PostgreSQL connection: whether its login bypasses row-level security, and the schemas it
    resolves names in (kept for when a transaction switches to APP_ROLE, whose "$user" schema differs)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT r.rolsuper OR r.rolbypassrls, array_to_string(ARRAY(SELECT quote_ident(s) FROM "
                       "unnest(current_schemas(false)) AS s), ', ') FROM pg_roles r WHERE r.rolname = current_user")
        bypasses, schemas = cursor.fetchone()
    finally:
        cursor.close()
    dbapi_connection.rollback()
    record.info["bypasses_rls"] = bool(bypasses)
    record.info["search_path"] = schemas or "public"


def _enter_household(conn: sa.Connection) -> None:
    """At the start of every PostgreSQL transaction (autobegun ones too): its household, as the transaction-local
    setting `finance.household` that the row-level security policies read, and APP_ROLE when the login would bypass
    them. Both end with the transaction, so a pooled connection never carries one household's setting into another's.

    `SET LOCAL` through the driver's own cursor: SQLAlchemy's view of the transaction is untouched, and (unlike a
    SELECT of set_config) no snapshot is taken, so the transaction may still set its isolation level."""
    household = household_of(conn)
    if household is None:
        return
    from psycopg import sql

    pooled = conn.connection
    statements = [sql.SQL("SET LOCAL finance.household = {}").format(sql.Literal(household))]
    if pooled.info.get("bypasses_rls"):
        statements += [sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(APP_ROLE)),
                       sql.SQL("SET LOCAL search_path = " + pooled.info["search_path"])]
    dbapi = pooled.dbapi_connection
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql.SQL("; ").join(statements))
    except Exception as exc:
        dbapi.rollback()
        if getattr(exc, "sqlstate", None) in ("42704", "42501", "22023"):  # no such role; not a member of it
            raise StoreError(str(STORE_NO_APP_ROLE), code="STORE_NO_APP_ROLE") from exc
        raise
    finally:
        cursor.close()


def init_schema(engine: sa.Engine, *, upgrade: bool = True) -> None:
    """Bring the schema to the newest revision (finance.store.migrate) and keep the category taxonomy in step with
    finance.categories. With `upgrade=False`, as at start-up: a DuckDB file upgrades itself, a PostgreSQL database
    that is behind the code is refused (a StoreError naming the upgrade command)."""
    if upgrade:
        migrate.upgrade(engine)
    else:
        migrate.prepare(engine)
    with engine.begin() as conn:
        existing = {row.id for row in conn.execute(sa.select(categories.c.id))}
        rows = [{"id": c.id, "name": c.name, "parent_id": c.parent_id, "kind": c.kind}
                for c in CATEGORIES.values() if c.id not in existing]
        if rows:
            conn.execute(categories.insert(), rows)


def duckdb_connection(conn: sa.Connection) -> Any:
    """The DuckDB connection under a SQLAlchemy connection, for Arrow registration (bulk paths)."""
    if conn.dialect.name != "duckdb":
        raise NotImplementedError("This path needs DuckDB; use `load_arrow` for rows every engine can read.")
    return conn.connection.dbapi_connection


_PG_TYPES = {pa.string(): "text", pa.large_string(): "text", pa.date32(): "date", pa.int64(): "bigint",
             pa.int32(): "integer", pa.bool_(): "boolean", pa.float64(): "double precision"}


def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_decimal(kind):
        return f"numeric({kind.precision}, {kind.scale})"
    if pa.types.is_timestamp(kind):
        return "timestamptz" if kind.tz else "timestamp"
    return _PG_TYPES[kind]


def load_arrow(conn: sa.Connection, name: str, rows: pa.Table | pa.RecordBatchReader, *,
               statistics: Sequence[str] | None = None) -> None:
    """Make Arrow rows readable by SQL as the relation `name` on this connection, in bulk: DuckDB registers them
    (no copy); PostgreSQL gets a temporary table filled by one COPY (CSV written by Arrow, never row by row),
    dropped at the end of the transaction or by `unload_arrow`, and analyzed for the planner: only the columns named
    in `statistics` when some are (the ones queries filter or join on; sampling every text column of a large table
    costs more than the statements it plans)."""
    if conn.dialect.name == "duckdb":
        duckdb_connection(conn).register(name, rows)
        return
    columns = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in rows.schema)
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    conn.exec_driver_sql(f'CREATE TEMP TABLE "{name}" ({columns}) ON COMMIT DROP')
    copy_into(conn, name, rows)
    only = " (" + ", ".join(f'"{column}"' for column in statistics) + ")" if statistics else ""
    conn.exec_driver_sql(f'ANALYZE "{name}"{only}')  # temporary tables get no statistics otherwise


COPY_CHUNK_ROWS = 65_536
"""Rows written as one CSV buffer to COPY: large enough to stream fast, small enough to keep memory flat."""


def copy_into(conn: sa.Connection, table: str, rows: pa.Table | pa.RecordBatchReader) -> int:
    """PostgreSQL: append Arrow rows to `table` (its columns named like theirs) with one COPY, as CSV that Arrow
    writes a batch at a time; returns the rows copied."""
    batches = rows.to_batches() if isinstance(rows, pa.Table) else rows
    names = ", ".join(f'"{f.name}"' for f in rows.schema)
    options = pacsv.WriteOptions(include_header=False)
    copied = 0
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN (FORMAT csv)') as copy:
            for batch in batches:
                for offset in range(0, batch.num_rows, COPY_CHUNK_ROWS):  # bounded buffers, whatever the batch
                    chunk = batch.slice(offset, COPY_CHUNK_ROWS)
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(_utc_text(chunk), sink, options)  # NULL: an empty field; "" stays ""
                    copy.write(memoryview(sink.getvalue()))
                    copied += chunk.num_rows
    finally:
        cursor.close()
    return copied


def _utc_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with each time zone-aware timestamp column as the text Arrow's CSV writer gives it ("2026-01-02
    03:04:05.000000Z": UTC, marked so whatever the session's time zone), made by a cast instead: the writer
    formats zoned times one by one through the time zone database, 20× slower, most of a COPY's Python time."""
    zoned = [i for i, f in enumerate(batch.schema) if pa.types.is_timestamp(f.type) and f.type.tz]
    if not zoned:
        return batch
    columns = list(batch.columns)
    for i in zoned:
        naive = columns[i].cast(pa.timestamp(batch.schema.field(i).type.unit))  # the same instants, as UTC
        columns[i] = pc.binary_join_element_wise(naive.cast(pa.string()), pa.scalar("Z"), "")
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def unload_arrow(conn: sa.Connection, name: str) -> None:
    """Forget rows `load_arrow` made readable as `name`."""
    if conn.dialect.name == "duckdb":
        duckdb_connection(conn).unregister(name)
    else:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')


def arg_min(conn: sa.Connection, value: str, key: str, where: str = "") -> str:
    """SQL for the `value` of the row with the smallest `key` in a group, on either engine:
    DuckDB's arg_min, PostgreSQL's first element of an ordered array_agg. `where` is a FILTER (WHERE …) clause."""
    if conn.dialect.name == "duckdb":
        return f"arg_min({value}, {key}) {where}"
    return f"(array_agg({value} ORDER BY {key}) {where})[1]"


def frame(conn: sa.Connection, sql: str | sa.Executable, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The rows of a query (SQL text, or a statement) as a DataFrame with the query's column names."""
    result = conn.execute(sa.text(sql) if isinstance(sql, str) else sql, dict(params or {}))
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
