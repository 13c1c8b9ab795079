"""`alerts` and `alert_settings`: the alerts raised (once per dedupe key), read or unread, their e-mail state, the
user's alert settings, and the facts the large-transaction rule reads. Every change the user makes (marking read,
settings) is recorded in `audit_log` in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.alerts import KINDS, Alert, AlertSettings
from finance.store import audit
from finance.store.db import frame
from finance.store.reports import EFFECTIVE_CATEGORY, IS_SPENDING, LIVE
from finance.store.schema import alerts as alerts_table
from finance.store.transactions import EFFECTIVE_TRANSACTIONS

PENDING, SENT = "pending", "sent"
_OFF, _THRESHOLD = "off:", "threshold:"


def large_transaction_facts(conn: sa.Connection, since: date, floor: Decimal) -> list[dict[str, Any]]:
    """Live posted expenses (transfers excluded) booked since `since` of at least `floor`, with their account's
    name: what the large-transaction rule looks at. Pending rows wait until they post (a posted row may get a new
    id, and one purchase must raise one alert)."""
    rows = conn.execute(sa.text(f"""
        SELECT t.id, t.booked_date, t.amount, t.currency, t.description, t.merchant, a.name AS account
        FROM {EFFECTIVE_TRANSACTIONS} t
        JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        JOIN accounts a ON a.id = t.account_id
        WHERE {LIVE} AND t.status = 'posted' AND {IS_SPENDING}
          AND t.amount <= -CAST(:floor AS DECIMAL(18, 2)) AND t.booked_date >= :since
        ORDER BY t.booked_date, t.id
    """), {"since": since, "floor": floor}).all()
    return [r._asdict() for r in rows]


def raise_alerts(conn: sa.Connection, alerts: Sequence[Alert], *, email: bool, now: datetime) -> list[str]:
    """Store the alerts whose key is new (an alert is raised once); the keys stored. With `email`, they wait to be
    e-mailed; without (no SMTP configured), they are never e-mailed, even once SMTP is set up later."""
    if not alerts:
        return []
    known = set(conn.execute(sa.select(alerts_table.c.key).where(
        alerts_table.c.key.in_([a.key for a in alerts]))).scalars())
    new = [a for a in alerts if a.key not in known]
    for alert in new:
        conn.execute(sa.text("""
            INSERT INTO alerts (key, kind, title, detail, created_at, email_state, email_attempts)
            VALUES (:key, :kind, :title, :detail, :now, :email_state, 0)
            ON CONFLICT DO NOTHING
        """), {"key": alert.key, "kind": alert.kind, "title": alert.title, "detail": alert.detail, "now": now,
               "email_state": PENDING if email else None})
    return [a.key for a in new]


def list_alerts(conn: sa.Connection, *, unread_only: bool = False, limit: int = 200) -> pd.DataFrame:
    """The newest alerts first: key, kind, title, detail, created_at, read_at, email_state, email_error."""
    return frame(conn, """
        SELECT key, kind, title, detail, created_at, read_at, email_state, email_error
        FROM alerts WHERE NOT :unread_only OR read_at IS NULL
        ORDER BY created_at DESC, key LIMIT :limit
    """, {"unread_only": unread_only, "limit": limit})


def unread_count(conn: sa.Connection) -> int:
    """How many alerts are unread."""
    return int(conn.execute(sa.text("SELECT COUNT(*) FROM alerts WHERE read_at IS NULL")).scalar_one())


def mark_read(engine: sa.Engine, keys: Iterable[str] | None, *, actor: str, now: datetime) -> int:
    """Mark these alerts (None: every unread one) read; how many were unread."""
    unread_rows = sa.select(alerts_table.c.key).where(alerts_table.c.read_at.is_(None))
    if keys is not None:
        unread_rows = unread_rows.where(alerts_table.c.key.in_(list(keys)))
    with engine.begin() as conn:
        unread = [r.key for r in conn.execute(unread_rows)]
        if not unread:
            return 0
        conn.execute(alerts_table.update().where(alerts_table.c.key.in_(unread)).values(read_at=now))
        audit.record(conn, actor=actor, action="mark_alerts_read", object_id="all" if keys is None else unread[0],
                     detail={"alerts": unread}, now=now)
    return len(unread)


def read_settings(conn: sa.Connection) -> AlertSettings:
    """The user's alert settings (every kind on and the default thresholds until changed)."""
    rows = conn.execute(sa.text("SELECT name, value FROM alert_settings")).all()
    disabled = frozenset(r.name.removeprefix(_OFF) for r in rows if r.name.startswith(_OFF) and r.value == "true")
    thresholds = {r.name.removeprefix(_THRESHOLD): Decimal(r.value) for r in rows if r.name.startswith(_THRESHOLD)}
    return AlertSettings(disabled=disabled, thresholds=thresholds)


def _values(settings: AlertSettings) -> dict[str, str]:
    values = {f"{_OFF}{kind}": "true" for kind in sorted(settings.disabled)}
    values.update({f"{_THRESHOLD}{currency}": f"{amount:f}" for currency, amount in settings.thresholds.items()})
    return values


def save_settings(engine: sa.Engine, settings: AlertSettings, *, actor: str, now: datetime) -> bool:
    """Replace the alert settings (validated by the caller: kinds from KINDS, thresholds from clean_threshold);
    False (and no audit row) when nothing differs."""
    assert settings.disabled <= set(KINDS), settings.disabled
    with engine.begin() as conn:
        before = _values(read_settings(conn))
        after = _values(settings)
        if before == after:
            return False
        conn.execute(sa.text("DELETE FROM alert_settings"))
        for name, value in after.items():
            conn.execute(sa.text("INSERT INTO alert_settings (name, value, updated_at) VALUES (:name, :value, :now)"),
                         {"name": name, "value": value, "now": now})
        audit.record(conn, actor=actor, action="alert_settings", object_id="alerts",
                     detail={"from": before, "to": after}, now=now)
    return True


def emails_due(conn: sa.Connection, now: datetime, retry_after: timedelta) -> list[Alert]:
    """Alerts waiting to be e-mailed whose last attempt (if any) is older than `retry_after`, oldest first."""
    rows = conn.execute(sa.text("""
        SELECT key, kind, title, detail FROM alerts
        WHERE email_state = :pending AND (email_last_attempt_at IS NULL OR email_last_attempt_at <= :due)
        ORDER BY created_at, key
    """), {"pending": PENDING, "due": now - retry_after}).all()
    return [Alert(r.key, r.kind, r.title, r.detail) for r in rows]


def record_email(conn: sa.Connection, keys: Sequence[str], *, error: str | None, now: datetime) -> None:
    """An e-mail attempt for these alerts: sent (error None), or failed and to be retried."""
    if not keys:
        return
    sent = {"email_state": SENT} if error is None else {}
    conn.execute(alerts_table.update().where(alerts_table.c.key.in_(list(keys))).values(
        email_attempts=alerts_table.c.email_attempts + 1, email_last_attempt_at=now, email_error=error, **sent))


def account_currencies(conn: sa.Connection) -> list[str]:
    """The currencies of the accounts held."""
    return list(conn.execute(sa.text("SELECT DISTINCT currency FROM accounts ORDER BY 1")).scalars())
