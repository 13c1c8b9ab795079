"""Database-wide locks: one sync per connection across every process on a PostgreSQL store (app processes, workers,
the CLI), as session advisory locks.

A lock is held by a database session for as long as the sync runs; PostgreSQL releases it when that session ends,
so a process killed mid-sync (SIGKILL, a lost machine) never leaves it held. On DuckDB one process holds the file,
so the sync engine's in-process lock is enough and these calls say so (`held` always true).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

log = logging.getLogger(__name__)

NAMESPACE = 0x46494E  # "FIN": the first key of every advisory lock this app takes (the second hashes the name)


def shared_across_processes(engine: sa.Engine) -> bool:
    """Whether other processes may use the store at once (a server database), so locks must live in it."""
    return engine.dialect.name == "postgresql"


@contextmanager
def hold(engine: sa.Engine, name: str) -> Iterator[bool]:
    """Try to take the lock `name` without waiting; yields whether it is ours. Held until the block ends, on a
    session of its own (never one the pool hands out while the lock is held)."""
    if not shared_across_processes(engine):
        yield True
        return
    conn = engine.connect()
    got = False
    try:
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"),
                                {"ns": NAMESPACE, "name": name}).scalar())
        conn.commit()  # the lock is the session's, not the transaction's: end the transaction, keep the lock
        yield got
    finally:
        _release(conn, name, got=got)


def _release(conn: sa.Connection, name: str, *, got: bool) -> None:
    """Unlock and give the session back; when unlocking fails (the database went away) the session is thrown
    away instead, which ends the lock with it."""
    try:
        if got:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, hashtext(:name))"), {"ns": NAMESPACE, "name": name})
            conn.commit()
    except Exception:  # the session is dropped below, which releases the lock server-side
        log.warning("releasing the lock %s failed; dropping its database session", name)
        conn.invalidate()
    finally:
        conn.close()


def is_free(conn: sa.Connection, name: str) -> bool:
    """Whether nobody holds `name` right now (checked by taking and releasing it on `conn`)."""
    if conn.dialect.name != "postgresql":
        return True
    got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"),
                            {"ns": NAMESPACE, "name": name}).scalar())
    if got:
        conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, hashtext(:name))"), {"ns": NAMESPACE, "name": name})
    return got
