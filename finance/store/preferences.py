"""`preferences`: a person's settings (the interface language), one row per user and setting."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from finance.store.schema import preferences


def get_preference(conn: sa.Connection, user_id: str, name: str) -> str | None:
    """The user's value for a setting, or None when they never chose one."""
    return conn.execute(sa.select(preferences.c.value).where(
        preferences.c.user_id == user_id, preferences.c.name == name)).scalar()


def set_preference(conn: sa.Connection, user_id: str, name: str, value: str) -> None:
    """Keep the user's value for a setting (replacing the previous one)."""
    conn.execute(sa.delete(preferences).where(preferences.c.user_id == user_id, preferences.c.name == name))
    conn.execute(sa.insert(preferences).values(user_id=user_id, name=name, value=value,
                                               updated_at=datetime.now(UTC)))
