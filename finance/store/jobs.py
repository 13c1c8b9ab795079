"""The job queue's tables (procrastinate's, on PostgreSQL), read for the Sync status page: what waits, what runs,
what failed lately, and which workers are alive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

ALIVE_WITHIN = timedelta(seconds=30)
"""A worker whose last heartbeat is older than this is taken as gone (procrastinate's own stalled-worker timeout)."""
FAILED_WITHIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """One job waiting or running: its task, the connection it concerns (if any) and when it is due or started."""

    task: str
    connection_id: str | None
    status: str
    attempts: int
    scheduled_at: datetime | None


@dataclass(frozen=True, slots=True)
class QueueCounts:
    waiting: int
    running: int
    failed: int  # in the last FAILED_WITHIN
    workers: int  # alive: a heartbeat within ALIVE_WITHIN
    jobs: tuple[QueuedJob, ...]  # the waiting and running ones, running first
    last_failure: tuple[str, str | None, datetime] | None  # (task, connection, when)


def has_queue(conn: sa.Connection) -> bool:
    """Whether the store holds the job queue's tables (PostgreSQL after `db upgrade`)."""
    return conn.dialect.name == "postgresql" and sa.inspect(conn).has_table("procrastinate_jobs")


def queue_counts(conn: sa.Connection, *, limit: int = 50) -> QueueCounts:
    """The queue as the Sync status page shows it."""
    counts = conn.execute(sa.text("""
        SELECT count(*) FILTER (WHERE status = 'todo') AS waiting,
               count(*) FILTER (WHERE status = 'doing') AS running
        FROM procrastinate_jobs WHERE status IN ('todo', 'doing')
    """)).one()
    failed = conn.execute(sa.text("""
        SELECT j.task_name, j.args ->> 'connection_id' AS connection_id, e.at
        FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id
        WHERE e.type = 'failed' AND e.at > now() - make_interval(secs => :within)
        ORDER BY e.at DESC
    """), {"within": FAILED_WITHIN.total_seconds()}).all()
    workers = conn.execute(sa.text(
        "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => :within)"),
        {"within": ALIVE_WITHIN.total_seconds()}).scalar_one()
    jobs = conn.execute(sa.text("""
        SELECT task_name, args ->> 'connection_id' AS connection_id, status::text AS status, attempts, scheduled_at
        FROM procrastinate_jobs WHERE status IN ('todo', 'doing')
        ORDER BY status = 'doing' DESC, coalesce(scheduled_at, '-infinity'), id LIMIT :limit
    """), {"limit": limit}).all()
    return QueueCounts(
        waiting=int(counts.waiting), running=int(counts.running), failed=len(failed), workers=int(workers),
        jobs=tuple(QueuedJob(r.task_name, r.connection_id, r.status, int(r.attempts), r.scheduled_at) for r in jobs),
        last_failure=(failed[0].task_name, failed[0].connection_id, failed[0].at) if failed else None)


def active_syncs(conn: sa.Connection) -> set[str]:
    """Connections with a sync job waiting or running."""
    return {r[0] for r in conn.execute(sa.text(
        "SELECT DISTINCT args ->> 'connection_id' FROM procrastinate_jobs "
        "WHERE task_name = 'finance.sync' AND status IN ('todo', 'doing')"))}


def active_events(conn: sa.Connection) -> set[str]:
    """Webhook events with an apply job waiting or running."""
    return {r[0] for r in conn.execute(sa.text(
        "SELECT args ->> 'event_id' FROM procrastinate_jobs "
        "WHERE task_name = 'finance.apply_event' AND status IN ('todo', 'doing')"))}
