"""Process-wide resources for the Streamlit pages, and small shared widgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finance.config import load_settings
from finance.health import format_age, status_label
from finance.i18n import _, format_timestamp
from finance.model import ConnectionStatus
from finance.services import Services
from finance.ui.auth import household_services

STATUS_COLORS = {
    ConnectionStatus.ACTIVE.value: "green", ConnectionStatus.SYNCING.value: "blue",
    ConnectionStatus.NEEDS_INPUT.value: "orange", ConnectionStatus.NEEDS_RECONNECT.value: "red",
    ConnectionStatus.CONSENT_EXPIRING.value: "orange", ConnectionStatus.REVOKED.value: "gray",
    ConnectionStatus.FAILED.value: "red",
}


def services() -> Services:
    """The store, providers and sync engine of the signed-in person's household (the one household without
    sign-in): one set per household and process, shared with the webhook routes and the background worker."""
    return household_services()


def status_badge(status: str) -> str:
    return f":{STATUS_COLORS.get(status, 'gray')}-badge[{status_label(status)}]"


def as_of_caption(when: datetime | None, *, stale_after: timedelta | None = None,
                  now: datetime | None = None) -> str:
    """"Data as of …" for a caption; a warning (orange, with what to do) when the data is older than
    `stale_after` (default: twice the sync schedule, FINANCE_SYNC_INTERVAL)."""
    if when is None:
        return _("No data synced yet.")
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    age = (now or datetime.now(UTC)) - when
    text = _("Data as of {when} ({age} ago).").format(when=format_timestamp(when.astimezone()), age=format_age(age))
    limit = stale_after if stale_after is not None else load_settings().stale_after
    if age > limit:
        return ":orange[⚠️ " + text + " " + _("**Stale**: older than {age}, so syncs are not getting through. See "
                                              "**Sync status** for what to do.").format(age=format_age(limit)) + "]"
    return text
