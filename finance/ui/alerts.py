"""The Alerts entry of the navigation, which every page draws: its title carries the unread count."""

from __future__ import annotations

from finance.ui.context import services

ALERTS_PAGE = "pages/alerts.py"


def nav_title() -> str:
    """`Alerts`, or `Alerts (3)` while three alerts are unread."""
    unread = services().alerts.unread_count()
    return f"Alerts ({unread})" if unread else "Alerts"
