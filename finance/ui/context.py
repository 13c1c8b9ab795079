"""Process-wide resources for the Streamlit pages, and small shared widgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finance.config import load_settings
from finance.health import format_age
from finance.model import ConnectionStatus
from finance.services import Services, shared_services

STATUS_BADGES = {
    ConnectionStatus.ACTIVE.value: ("Connected", "green"),
    ConnectionStatus.SYNCING.value: ("Syncing", "blue"),
    ConnectionStatus.NEEDS_INPUT.value: ("Needs your input", "orange"),
    ConnectionStatus.NEEDS_RECONNECT.value: ("Needs reconnect", "red"),
    ConnectionStatus.CONSENT_EXPIRING.value: ("Consent expiring", "orange"),
    ConnectionStatus.REVOKED.value: ("Disconnected", "gray"),
    ConnectionStatus.FAILED.value: ("Failed", "red"),
}


def services() -> Services:
    """The store, providers and sync engine for the current settings: one set per process, shared with the
    webhook routes and the background worker (DuckDB admits one process per file)."""
    return shared_services(load_settings())


def status_badge(status: str) -> str:
    label, color = STATUS_BADGES.get(status, (status, "gray"))
    return f":{color}-badge[{label}]"


def as_of_caption(when: datetime | None, *, stale_after: timedelta | None = None,
                  now: datetime | None = None) -> str:
    """"Data as of …" for a caption; a warning (orange, with what to do) when the data is older than
    `stale_after` (default: twice the sync schedule, FINANCE_SYNC_INTERVAL)."""
    if when is None:
        return "No data synced yet."
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    age = (now or datetime.now(UTC)) - when
    hours = age.total_seconds() / 3600
    ago = f"{int(age.total_seconds() // 60)} min ago" if hours < 1 else (
        f"{hours:.0f} h ago" if hours < 48 else f"{hours / 24:.0f} days ago")
    text = f"Data as of {when.astimezone():%Y-%m-%d %H:%M} ({ago})."
    limit = stale_after if stale_after is not None else load_settings().stale_after
    if age > limit:
        return (f":orange[⚠️ {text} **Stale**: older than {format_age(limit)}, so syncs are not getting through. "
                "See **Sync status** for what to do.]")
    return text
