"""The `audit_log` writer: every change a person makes (a category, a note, a rule, a rate, a deletion) is recorded
in the same database transaction as the change itself."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

DEFAULT_ACTOR = "user"


def record(conn: sa.Connection, *, actor: str, action: str, object_id: str, detail: dict[str, Any],
           now: datetime) -> None:
    """Append one audit row inside the caller's transaction (`detail` is stored as sorted JSON)."""
    conn.execute(sa.text("""
        INSERT INTO audit_log (id, occurred_at, actor, action, object_id, detail)
        VALUES (:id, :occurred_at, :actor, :action, :object_id, :detail)
    """), {"id": uuid.uuid4().hex, "occurred_at": now, "actor": actor or DEFAULT_ACTOR, "action": action,
           "object_id": object_id, "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)})


def log(engine: sa.Engine, *, actor: str, action: str, object_id: str, detail: dict[str, Any],
        now: datetime | None = None) -> None:
    """Record an event that changes nothing in this store (a sign-in, an export, a console query, a change of the
    directory) in a transaction of its own."""
    with engine.begin() as conn:
        record(conn, actor=actor, action=action, object_id=object_id, detail=detail,
               now=now or datetime.now(UTC))


def entries(engine: sa.Engine, *, actor: str | None = None, action: str | None = None,
            since: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The store's audit rows, newest first, optionally of one actor, one action, or from `since` on."""
    clauses, params = [], {"limit": limit}
    for column, value in (("actor", actor), ("action", action)):
        if value:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if since is not None:
        clauses.append("occurred_at >= :since")
        params["since"] = since
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT occurred_at, actor, action, object_id, detail FROM audit_log {where} "
                                    "ORDER BY occurred_at DESC, id LIMIT :limit"), params).mappings().all()
    return [dict(row) for row in rows]


def actions(engine: sa.Engine) -> list[str]:
    """The distinct actions the store's audit log holds (for the Audit page's filter)."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT DISTINCT action FROM audit_log ORDER BY action"))]
