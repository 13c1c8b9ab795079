"""The SQL behind webhooks and background work: the `webhook_events` log, provider signals on connections, and the
reads the worker, the banner, the Sync status page and the status route need."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.store.schema import connections, transactions, webhook_events

QUEUED, PROCESSED, IGNORED, FAILED = "queued", "processed", "ignored", "failed"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of `webhook_events` as the worker reads it back."""

    id: str
    provider: str
    event_type: str
    item_id: str | None
    received_at: datetime
    payload: dict[str, Any]


def record_event(engine: sa.Engine, *, id: str, provider: str, event_type: str, item_id: str | None,
                 received_at: datetime, payload: Mapping[str, Any]) -> bool:
    """Store a verified event as queued, in its own transaction. False when its id is already stored (a replay):
    then nothing changes."""
    try:
        with engine.begin() as conn:
            if conn.execute(sa.select(webhook_events.c.id).where(webhook_events.c.id == id)).first() is not None:
                return False
            conn.execute(webhook_events.insert().values(
                id=id, provider=provider, event_type=event_type, item_id=item_id, received_at=received_at,
                outcome=QUEUED, payload=json.dumps(payload, separators=(",", ":"))))
    except sa.exc.IntegrityError:  # the same event arriving twice at once: the other insert won
        return False
    return True


def queued_events(conn: sa.Connection, ids: Iterable[str] | None = None) -> list[StoredEvent]:
    """Events still waiting to be processed (all of them, or those among `ids`), oldest first."""
    query = sa.select(webhook_events).where(webhook_events.c.outcome == QUEUED)
    if ids is not None:
        query = query.where(webhook_events.c.id.in_(list(ids)))
    rows = conn.execute(query.order_by(webhook_events.c.received_at, webhook_events.c.id)).all()
    return [StoredEvent(r.id, r.provider, r.event_type, r.item_id, r.received_at, json.loads(r.payload or "{}"))
            for r in rows]


def finish_event(conn: sa.Connection, event_id: str, *, outcome: str, detail: str | None, error: str | None,
                 connection_id: str | None, now: datetime) -> None:
    conn.execute(webhook_events.update().where(webhook_events.c.id == event_id).values(
        outcome=outcome, detail=detail, error=error, connection_id=connection_id, processed_at=now))


def finish_events(conn: sa.Connection, ids: Iterable[str], *, outcome: str, detail: str, error: str | None,
                  connection_id: str, now: datetime) -> None:
    """Close the events a sync of their connection answered, all with that sync's outcome and message."""
    rows = [{"event_id": i, "outcome": outcome, "detail": detail[:500], "error": error, "connection": connection_id,
             "now": now} for i in ids]
    if rows:
        conn.execute(webhook_events.update().where(webhook_events.c.id == sa.bindparam("event_id")).values(
            outcome=sa.bindparam("outcome"), detail=sa.bindparam("detail"), error=sa.bindparam("error"),
            connection_id=sa.bindparam("connection"), processed_at=sa.bindparam("now")), rows)


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


def recent_events(conn: sa.Connection, limit: int = 50) -> pd.DataFrame:
    """The newest webhook events with the institution they concern (no payloads)."""
    result = conn.execute(sa.select(
        webhook_events.c.received_at, webhook_events.c.provider, webhook_events.c.event_type,
        sa.func.coalesce(connections.c.institution_name, webhook_events.c.item_id).label("concerns"),
        webhook_events.c.outcome, webhook_events.c.detail, webhook_events.c.error,
        webhook_events.c.processed_at,
    ).select_from(webhook_events.outerjoin(connections, connections.c.id == webhook_events.c.connection_id))
        .order_by(webhook_events.c.received_at.desc()).limit(limit))
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def summary(conn: sa.Connection) -> dict[str, Any]:
    """Counts for the status route and the benchmark: transactions, connections per status, events per outcome."""
    statuses = dict(conn.execute(sa.select(connections.c.status, sa.func.count()).group_by(connections.c.status))
                    .all())
    outcomes = dict(conn.execute(sa.select(webhook_events.c.outcome, sa.func.count())
                                 .group_by(webhook_events.c.outcome)).all())
    count = conn.execute(sa.select(sa.func.count()).select_from(transactions)
                         .where(transactions.c.deleted_at.is_(None))).scalar_one()
    signals = conn.execute(sa.select(sa.func.count()).select_from(connections)
                           .where(connections.c.signal_code.is_not(None))).scalar_one()
    return {"transactions": int(count), "connections": {str(k): int(v) for k, v in statuses.items()},
            "signals": int(signals), "webhook_events": {str(k): int(v) for k, v in outcomes.items()}}
