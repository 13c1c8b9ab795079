"""Shown on every page (app.py draws it before the page): a banner for each connection that needs the user, with a
one-click Reconnect, and a watcher that reruns the page when background work changed the data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from finance import health, worker
from finance.formatting import escape_markdown
from finance.households import Permission
from finance.i18n import _
from finance.ui.auth import can
from finance.ui.context import services

RECONNECT_KEY = "reconnect_connection_id"
"""The connection the Connections page opens in update mode (set by the banner's Reconnect button)."""
CONNECTIONS_PAGE = "pages/connections.py"
REFRESH_SECONDS = 3.0
_SEEN_VERSION = "_finance_seen_data_version"
_GO = "_finance_banner_reconnect"


def render_banner(connections_page: st.Page | str = CONNECTIONS_PAGE) -> Callable[[], None]:
    """One line per connection that needs the user (reconnect needed, consent expiring, access revoked), each with
    a Reconnect button that opens the Connections page (`connections_page`) in update mode for it.

    Call it before the page runs (so a page that stops early still shows it); call the function it returns after the
    page ran: it redraws the banner if the page changed what it says (a reconnect or a sync done there)."""
    if st.session_state.pop(_GO, False):  # a Reconnect button was pressed in the previous run
        st.switch_page(connections_page)
    top, redrawn = st.empty(), st.empty()  # the second stays empty unless the page changed the banner
    before = _items()
    _draw(top, before, "top")
    _watch_background_work()

    def after_page() -> None:
        now = _items()
        if now != before:
            top.empty()
            _draw(redrawn, now, "after")
    return after_page


def _items() -> list[health.BannerItem]:
    return health.banner_items(services().connections.schedule_rows(), datetime.now(UTC))


def _reconnect(connection_id: str) -> None:
    """The button's callback: hand the connection to the Connections page and go there at the next run."""
    st.session_state[RECONNECT_KEY] = connection_id
    st.session_state[_GO] = True


def _draw(slot: Any, items: list[health.BannerItem], place: str) -> None:
    with slot.container():
        for item in items:
            text, button = st.columns([6, 1], vertical_alignment="center")
            template = {health.CONSENT_EXPIRING: _("**{institution}** consent is expiring: {message}"),
                        health.REVOKED: _("**{institution}** access was revoked: {message}")}.get(
                item.state, _("**{institution}** needs you to reconnect: {message}"))
            message = template.format(institution=escape_markdown(item.institution),
                                      message=escape_markdown(item.message))
            if item.urgent:
                text.error(message, icon="🔌")
            else:
                text.warning(message, icon="⏳")
            if can(Permission.CONNECT):  # a viewer is told, but reconnecting is for the household's members
                button.button(_("Reconnect"), key=f"banner_reconnect_{place}_{item.connection_id}", type="primary",
                              width="stretch", on_click=_reconnect, args=(item.connection_id,))


@st.fragment(run_every=REFRESH_SECONDS)
def _watch_background_work() -> None:
    """Rerun the whole page when background work changed something (a webhook's sync brought new transactions, a
    connection's status changed), so new data appears without anyone pressing anything. On PostgreSQL the work
    runs in worker processes: the store says what changed."""
    current = worker.current()
    if current is not None:
        version: object = current.data_version
    elif worker.current_receiver() is not None:  # the app enqueues; workers elsewhere sync
        version = services().status.data_version()
    else:  # no background work in this process (AppTest, or the app failed to start it)
        return
    seen = st.session_state.setdefault(_SEEN_VERSION, version)
    if version != seen:
        st.session_state[_SEEN_VERSION] = version
        st.rerun(scope="app")
