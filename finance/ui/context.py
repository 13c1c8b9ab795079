"""Process-wide resources for the Streamlit pages, and small shared widgets."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from finance.config import Settings, load_settings
from finance.model import ConnectionStatus
from finance.services import Services, open_services

STATUS_BADGES = {
    ConnectionStatus.ACTIVE.value: ("Connected", "green"),
    ConnectionStatus.SYNCING.value: ("Syncing", "blue"),
    ConnectionStatus.NEEDS_INPUT.value: ("Needs your input", "orange"),
    ConnectionStatus.NEEDS_RECONNECT.value: ("Needs reconnect", "red"),
    ConnectionStatus.CONSENT_EXPIRING.value: ("Consent expiring", "orange"),
    ConnectionStatus.REVOKED.value: ("Disconnected", "gray"),
    ConnectionStatus.FAILED.value: ("Failed", "red"),
}


@st.cache_resource(show_spinner=False)
def _services_for(settings: Settings) -> Services:
    return open_services(settings)


def services() -> Services:
    """The store, providers and sync engine for the current settings (one set per process)."""
    return _services_for(load_settings())


def status_badge(status: str) -> str:
    label, color = STATUS_BADGES.get(status, (status, "gray"))
    return f":{color}-badge[{label}]"


def as_of_caption(when: datetime | None) -> str:
    if when is None:
        return "No data synced yet."
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    age = datetime.now(UTC) - when
    hours = age.total_seconds() / 3600
    ago = f"{int(age.total_seconds() // 60)} min ago" if hours < 1 else (
        f"{hours:.0f} h ago" if hours < 48 else f"{hours / 24:.0f} days ago")
    return f"Data as of {when.astimezone():%Y-%m-%d %H:%M} ({ago})."
