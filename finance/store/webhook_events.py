"""`webhook_events`: the log of every verified webhook, queued until the worker processes it, and the reads the Sync
status page and the status route need."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.store.db import frame
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


def recent_events(conn: sa.Connection, limit: int = 50) -> pd.DataFrame:
    """The newest webhook events with the institution they concern (no payloads)."""
    return frame(conn, sa.select(
        webhook_events.c.received_at, webhook_events.c.provider, webhook_events.c.event_type,
        sa.func.coalesce(connections.c.institution_name, webhook_events.c.item_id).label("concerns"),
        webhook_events.c.outcome, webhook_events.c.detail, webhook_events.c.error,
        webhook_events.c.processed_at,
    ).select_from(webhook_events.outerjoin(connections, connections.c.id == webhook_events.c.connection_id))
        .order_by(webhook_events.c.received_at.desc()).limit(limit))


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


def assign_event(conn: sa.Connection, event_id: str, connection_id: str) -> None:
    """An applied event that asks for a sync: it stays queued, now waiting for a sync of its connection."""
    conn.execute(webhook_events.update().where(webhook_events.c.id == event_id)
                 .values(connection_id=connection_id))


def awaiting_sync(conn: sa.Connection, connection_id: str) -> list[StoredEvent]:
    """The queued events waiting for a sync of the connection (what the next sync answers), oldest first."""
    rows = conn.execute(sa.select(webhook_events).where(webhook_events.c.outcome == QUEUED,
                                                        webhook_events.c.connection_id == connection_id)
                        .order_by(webhook_events.c.received_at, webhook_events.c.id)).all()
    return [StoredEvent(r.id, r.provider, r.event_type, r.item_id, r.received_at, json.loads(r.payload or "{}"))
            for r in rows]


def orphaned_events(conn: sa.Connection, received_before: datetime) -> list[tuple[str, str | None]]:
    """Events still queued that arrived before `received_before` and no failed sync answered yet: (id, the
    connection whose sync they wait for, or None while not applied yet). Those a sync failed for ride with the
    connection's next sync (scheduled or asked for by a webhook) rather than asking for one of their own."""
    rows = conn.execute(sa.select(webhook_events.c.id, webhook_events.c.connection_id).where(
        webhook_events.c.outcome == QUEUED, webhook_events.c.received_at < received_before,
        webhook_events.c.processed_at.is_(None))).all()
    return [(r.id, r.connection_id) for r in rows]
