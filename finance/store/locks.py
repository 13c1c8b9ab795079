"""Database-wide locks: one sync per connection across every process on a PostgreSQL store (app processes, workers,
the CLI), as session advisory locks.

A lock is held by a database session for as long as the sync runs; PostgreSQL releases it when that session ends,
so a process killed mid-sync (SIGKILL, a lost machine) never leaves it held. On DuckDB one process holds the file,
so the sync engine's in-process lock is enough and these calls say so (`held` always true).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

NAMESPACE = 0x46494E  # "FIN": the first key of every advisory lock this app takes (the second hashes the name)


def shared_across_processes(engine: sa.Engine) -> bool:
    """Whether other processes may use the store at once (a server database), so locks must live in it."""
    return engine.dialect.name == "postgresql"


@contextmanager
def hold(engine: sa.Engine, name: str) -> Iterator[bool]:
    """Try to take the lock `name` without waiting; yields whether it is ours. Held until the block ends, by a
    database session of its own outside the engine's pool (a sync holding it must not starve the pool the sync
    itself draws from); closing that session releases the lock, even when the database went away meanwhile."""
    if not shared_across_processes(engine):
        yield True
        return
    with _session_engine(engine).connect() as conn:
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"),
                                {"ns": NAMESPACE, "name": name}).scalar())
        conn.commit()  # the lock is the session's, not the transaction's: end the transaction, keep the lock
        yield got


_session_engines: dict[str, sa.Engine] = {}
_guard = threading.Lock()


def _session_engine(engine: sa.Engine) -> sa.Engine:
    """An engine on the same database that opens a fresh session per lock and closes it after (no pool)."""
    key = engine.url.render_as_string(hide_password=False)
    with _guard:
        found = _session_engines.get(key)
        if found is None:
            found = _session_engines[key] = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
        return found


def is_free(conn: sa.Connection, name: str) -> bool:
    """Whether nobody holds `name` right now (checked by taking and releasing it on `conn`)."""
    if conn.dialect.name != "postgresql":
        return True
    got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"),
                            {"ns": NAMESPACE, "name": name}).scalar())
    if got:
        conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, hashtext(:name))"), {"ns": NAMESPACE, "name": name})
    return got
