"""The `audit_log` writer: every change a person makes (a category, a note, a rule, a rate, a deletion) is recorded
in the same database transaction as the change itself."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
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
