"""`connections`: each bank connection's state as the pages, the worker and the webhooks read and change it (the
sync engine and finance.store.ingest write the rest; finance.store.secrets keeps its access token)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.store.db import frame
from finance.store.schema import connections


def connections_status(conn: sa.Connection) -> pd.DataFrame:
    """Every connection with its accounts count and its latest sync run."""
    return frame(conn, """
        WITH latest AS (
            SELECT r.*, ROW_NUMBER() OVER (PARTITION BY connection_id ORDER BY started_at DESC) AS rn
            FROM sync_runs r
        )
        SELECT c.id, c.provider, c.external_id, c.institution_id, c.institution_name, c.is_sandbox, c.status,
               c.status_detail, c.error_code, c.consent_expires_at, c.successor_institution_id, c.last_success_at,
               c.last_attempt_at, c.created_at,
               (SELECT COUNT(*) FROM accounts a WHERE a.connection_id = c.id) AS accounts,
               l.outcome AS last_outcome, l.message AS last_message, l.error_code AS last_error_code,
               l.finished_at AS last_finished_at, l.added AS last_added, l.modified AS last_modified,
               l.removed AS last_removed, l.merged AS last_merged
        FROM connections c LEFT JOIN latest l ON l.connection_id = c.id AND l.rn = 1
        ORDER BY c.created_at
    """)


def connection_for_item(conn: sa.Connection, provider: str, item_id: str | None) -> Mapping[str, Any] | None:
    """The connection of a provider's item, or None when this app does not hold it."""
    if not item_id:
        return None
    row = conn.execute(sa.select(
        connections.c.id, connections.c.status, connections.c.signal_code, connections.c.last_success_at,
        connections.c.created_at, connections.c.institution_name,
    ).where(connections.c.provider == provider, connections.c.external_id == item_id)).first()
    return row._asdict() if row is not None else None


def set_status(conn: sa.Connection, connection_id: str, *, status: str, detail: str | None,
               error_code: str | None, now: datetime) -> None:
    """Record what a webhook says about a connection until the next sync re-reads the provider."""
    conn.execute(connections.update().where(connections.c.id == connection_id).values(
        status=status, status_detail=detail, error_code=error_code, updated_at=now))


def set_signal(conn: sa.Connection, connection_id: str, *, code: str, detail: str, at: datetime,
               until: datetime | None) -> None:
    """Remember a webhook the provider will not repeat on a re-read (until the user reconnects)."""
    conn.execute(connections.update().where(connections.c.id == connection_id).values(
        signal_code=code, signal_detail=detail, signal_at=at, signal_until=until))


def clear_signal(conn: sa.Connection, connection_id: str) -> None:
    """Forget the provider's signal: the user reconnected, or the provider said the login was repaired."""
    conn.execute(connections.update().where(connections.c.id == connection_id).values(
        signal_code=None, signal_detail=None, signal_at=None, signal_until=None))


def schedule_rows(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every connection with what its health and schedule are derived from (no secrets)."""
    rows = conn.execute(sa.select(
        connections.c.id, connections.c.provider, connections.c.institution_name, connections.c.status,
        connections.c.status_detail, connections.c.error_code, connections.c.consent_expires_at,
        connections.c.last_success_at, connections.c.last_attempt_at, connections.c.created_at,
        connections.c.signal_code, connections.c.signal_detail, connections.c.signal_at,
        connections.c.signal_until,
    ).order_by(connections.c.created_at)).all()
    return [r._asdict() for r in rows]


def live_items(conn: sa.Connection, provider: str) -> list[str]:
    """The provider's item ids of every connection not disconnected."""
    return [r.external_id for r in conn.execute(sa.select(connections.c.external_id).where(
        connections.c.provider == provider, connections.c.status != "revoked"))]
