"""The Alerts entry of the navigation, which every page draws: its title carries the unread count."""

from __future__ import annotations

from finance.i18n import _
from finance.ui.context import services

ALERTS_PAGE = "pages/alerts.py"


def nav_title() -> str:
    """`Alerts`, or `Alerts (3)` while three alerts are unread."""
    unread = services().alerts.unread_count()
    return _("Alerts ({count})").format(count=unread) if unread else _("Alerts")
