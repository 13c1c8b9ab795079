"""`sync_runs`: the record of every sync, read with the connections for the Sync status page (the sync engine writes
the runs)."""

from __future__ import annotations

import sqlalchemy as sa

from finance.health import StatusData
from finance.store.db import frame


def read_status(conn: sa.Connection, *, limit: int = 500, per_connection: int = 20) -> StatusData:
    """Connections and their sync runs: the newest `limit` overall plus the newest `per_connection` of each."""
    connections = frame(conn, """
        SELECT c.id, c.provider, c.institution_name, c.is_sandbox, c.status, c.status_detail, c.error_code,
               c.consent_expires_at, c.last_success_at, c.last_attempt_at, c.created_at, c.signal_code,
               c.signal_detail, c.signal_at, c.signal_until,
               (SELECT COUNT(*) FROM accounts a WHERE a.connection_id = c.id) AS accounts
        FROM connections c ORDER BY c.created_at
    """)
    runs = frame(conn, """
        WITH ranked AS (
            SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.connection_id ORDER BY r.started_at DESC) AS rn_connection,
                   ROW_NUMBER() OVER (ORDER BY r.started_at DESC) AS rn_all
            FROM sync_runs r
        )
        SELECT r.id, r.connection_id, COALESCE(c.institution_name, r.connection_id) AS institution, r.trigger,
               r.started_at, r.finished_at, r.duration_ms, r.window_start, r.outcome, r.added, r.modified,
               r.removed, r.merged, r.accounts, r.requests, r.error_code, r.message
        FROM ranked r LEFT JOIN connections c ON c.id = r.connection_id
        WHERE r.rn_connection <= :per_connection OR r.rn_all <= :limit
        ORDER BY r.started_at DESC
    """, {"per_connection": per_connection, "limit": limit})
    return StatusData(connections=connections, runs=runs)


def data_version(conn: sa.Connection) -> str:
    """A token that changes whenever a sync ends or a webhook event is answered (by any process sharing the store)."""
    row = conn.execute(sa.text("""
        SELECT (SELECT MAX(finished_at) FROM sync_runs) AS synced,
               (SELECT COUNT(*) FROM sync_runs WHERE finished_at IS NOT NULL) AS runs,
               (SELECT MAX(processed_at) FROM webhook_events) AS answered
    """)).one()
    return f"{row.synced}|{row.runs}|{row.answered}"
