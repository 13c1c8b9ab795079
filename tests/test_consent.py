"""The consent lifecycle: states derived from provider signals, the schedule that pauses for connections needing the
user, the stale-data warning, and the banner on every page with its one-click Reconnect (AppTest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from finance import health
from finance.config import load_settings
from finance.formatting import escape_markdown
from finance.health import (
    ACTIVE,
    CONSENT_EXPIRING,
    FAILED_STATE,
    NEEDS_RECONNECT,
    REVOKED,
    SYNCING_STATE,
    banner_items,
    lifecycle_state,
    next_sync_at,
)
from finance.model import ConnectionState, ConnectionStatus, Institution
from finance.services import shared_services
from finance.ui.context import as_of_caption

pytestmark = pytest.mark.engines

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def row(**values: Any) -> dict[str, Any]:
    base = {"id": "pluggy:1", "institution_name": "Pluggy Bank", "status": "active", "status_detail": None,
            "error_code": None, "consent_expires_at": None, "last_success_at": NOW - timedelta(hours=1),
            "last_attempt_at": NOW - timedelta(hours=1), "created_at": NOW - timedelta(days=30),
            "signal_code": None, "signal_detail": None, "signal_until": None}
    return base | values


def run(outcome: str, ago: timedelta = timedelta(minutes=1), **values: Any) -> dict[str, Any]:
    return {"trigger": "webhook", "started_at": NOW - ago, "outcome": outcome, "error_code": None} | values


@pytest.mark.parametrize(("connection", "runs", "state"), [
    (row(), [run("success")], ACTIVE),
    (row(status="syncing"), [], SYNCING_STATE),
    (row(), [run("running")], SYNCING_STATE),
    (row(status="needs_reconnect"), [], NEEDS_RECONNECT),
    (row(status="needs_input"), [], NEEDS_RECONNECT),
    (row(), [run("failed", error_code="ITEM_LOGIN_REQUIRED")], NEEDS_RECONNECT),
    (row(consent_expires_at=NOW - timedelta(minutes=1)), [], NEEDS_RECONNECT),
    (row(consent_expires_at=NOW + timedelta(days=3)), [], CONSENT_EXPIRING),
    (row(status="consent_expiring"), [], CONSENT_EXPIRING),
    (row(signal_code="PENDING_DISCONNECT", signal_until=NOW + timedelta(days=7)), [], CONSENT_EXPIRING),
    (row(signal_code="PENDING_EXPIRATION", signal_until=NOW - timedelta(days=1)), [], NEEDS_RECONNECT),
    (row(status="revoked"), [], REVOKED),
    (row(status="revoked", signal_code="USER_PERMISSION_REVOKED"), [], REVOKED),
    (row(status="failed"), [], FAILED_STATE),
    (row(), [run("failed", error_code="HTTP_503")], FAILED_STATE),
    (row(consent_expires_at=NOW + timedelta(days=300)), [run("success")], ACTIVE),
    (row(signal_code="NEW_ACCOUNTS_AVAILABLE"), [run("success")], ACTIVE),
])
def test_lifecycle_states(connection: dict[str, Any], runs: list[dict[str, Any]], state: str) -> None:
    assert lifecycle_state(connection, runs, NOW) == state


def test_the_banner_lists_the_connections_that_need_the_user() -> None:
    rows = [
        row(id="a", status="needs_reconnect", status_detail="Log in again."),
        row(id="b", signal_code="PENDING_DISCONNECT", signal_detail="It stops on Friday.",
            signal_until=NOW + timedelta(days=5)),
        row(id="c", status="revoked", signal_code="USER_PERMISSION_REVOKED", signal_detail="Revoked at the bank."),
        row(id="d", status="revoked", status_detail="Disconnected; history kept."),  # the user's own choice
        row(id="e"), row(id="f", status="failed"), row(id="g", status="syncing"),
    ]
    items = banner_items(rows, NOW)
    assert [(i.connection_id, i.state, i.message, i.urgent) for i in items] == [
        ("a", NEEDS_RECONNECT, "Log in again.", True),
        ("b", CONSENT_EXPIRING, "It stops on Friday.", False),
        ("c", REVOKED, "Revoked at the bank.", True),
    ]


def test_scheduled_syncs_pause_for_connections_that_need_the_user() -> None:
    six = timedelta(hours=6)
    assert next_sync_at(row(), six) == NOW + timedelta(hours=5)
    assert next_sync_at(row(last_success_at=None, last_attempt_at=None), six) == NOW - timedelta(days=30) + six
    for paused in (row(status="needs_reconnect"), row(status="needs_input"), row(status="revoked"),
                   row(signal_code="USER_PERMISSION_REVOKED")):
        assert next_sync_at(paused, six) is None and health.is_paused(paused)
    assert next_sync_at(row(), None) is None
    assert "paused until you reconnect" in health.schedule_line(row(status="needs_reconnect"), six, NOW)
    assert health.schedule_line(row(), six, NOW) == "Next scheduled sync in 5 h (every 6 h)."
    assert "off" in health.schedule_line(row(), None, NOW)


def test_signals_show_on_the_health_card() -> None:
    expiring = health.connection_health(row(signal_code="PENDING_EXPIRATION", signal_detail="Ends Friday.",
                                            signal_until=NOW + timedelta(days=4)), [], NOW)
    assert (expiring.label, expiring.reason) == ("Consent expiring", "Ends Friday.")
    revoked = health.connection_health(row(status="revoked", signal_code="USER_PERMISSION_REVOKED",
                                           signal_detail="Revoked."), [], NOW)
    assert revoked.label == "Access revoked" and "Reconnect" in revoked.action
    accounts = health.connection_health(row(signal_code="NEW_ACCOUNTS_AVAILABLE", signal_detail="New ones."),
                                        [run("success")], NOW)
    assert accounts.label == "New accounts available"


def test_data_as_of_turns_into_a_warning_when_stale() -> None:
    fresh = as_of_caption(NOW - timedelta(hours=3), stale_after=timedelta(hours=12), now=NOW)
    assert fresh.startswith("Data as of") and "Stale" not in fresh
    stale = as_of_caption(NOW - timedelta(hours=13), stale_after=timedelta(hours=12), now=NOW)
    assert stale.startswith(":orange[⚠️ Data as of") and "older than 12 h" in stale and "Sync status" in stale
    assert as_of_caption(None) == "No data synced yet."
    assert load_settings({"FINANCE_SYNC_INTERVAL": "2h"}, secrets_file=Path("/nonexistent")).stale_after == \
        timedelta(hours=4)


# -- the banner on every page (AppTest) -------------------------------------------------------------------------------

def register(status: ConnectionStatus, detail: str, external_id: str = "item-1") -> str:
    """A connection in the app's store (the one AppTest's pages open), as the sync engine records it."""
    svc = shared_services(load_settings())
    state = ConnectionState(provider="pluggy", external_id=external_id, status=status, provider_status="LOGIN_ERROR",
                            institution=Institution(id="0", name="Pluggy Bank", is_sandbox=True),
                            status_detail=detail, error_code="INVALID_CREDENTIALS")
    return svc.sync.register(state)


def open_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_no_banner_while_every_connection_is_fine(offline: Path) -> None:
    register(ConnectionStatus.ACTIVE, "")
    at = open_app()
    assert not [b for b in at.button if b.label == "Reconnect"] and not at.error


def test_app_py_draws_the_banner(offline: Path) -> None:
    register(ConnectionStatus.NEEDS_RECONNECT, "The bank rejected the password. Reconnect.")
    at = open_app()
    assert at.title[0].value == "Overview"
    assert [e.value for e in at.error if "Pluggy Bank" in e.value] == [  # bank text shown literally, in bold
        f"**{escape_markdown('Pluggy Bank')}** needs you to reconnect: "
        f"{escape_markdown('The bank rejected the password. Reconnect.')}"]
    assert [b.label for b in at.button if b.key and b.key.startswith("banner_reconnect_")] == ["Reconnect"]


PAGES = {"overview": "Overview", "transactions": "Transactions", "money": "Money", "connections": "Connections",
         "sync_status": "Sync status", "explore": "Explore"}


@pytest.fixture
def navigation_like_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest forgets between runs that app.py uses st.navigation and, because the pages sit in a folder named
    `pages`, runs only the page file after a page switch (the old multipage mode). The server remembers; so do we, to
    see app.py (and its banner) run before every page as it does for users."""
    original = PagesManager.__init__

    def init(self: PagesManager, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def test_the_banner_is_on_every_page_and_reconnect_opens_update_mode(offline: Path,
                                                                     navigation_like_the_server: None) -> None:
    connection_id = register(ConnectionStatus.NEEDS_RECONNECT, "Log in again.")
    at = open_app()
    for page, title in PAGES.items():
        at.switch_page(f"pages/{page}.py")
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.title[0].value == title
        shown = [e.value.replace("\\", "").replace("\u2060", "") for e in at.error]  # bank text is shown literally
        assert any("Pluggy Bank** needs you to reconnect: Log in again." in text for text in shown), page
    at.switch_page("pages/overview.py")
    at.run()
    next(b for b in at.button if b.key == f"banner_reconnect_top_{connection_id}").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Connections"
    # The Connections page took the hand-off key to open its connect widget in update mode for this connection.
    assert "reconnect_connection_id" not in at.session_state


def test_the_banner_clears_once_reconnected(offline: Path) -> None:
    connection_id = register(ConnectionStatus.NEEDS_RECONNECT, "Log in again.")
    at = open_app()
    assert any("needs you to reconnect" in e.value for e in at.error)
    svc = shared_services(load_settings())
    with svc.engine.begin() as conn:  # what a successful reconnect and sync record
        conn.execute(sa.text("UPDATE connections SET status = 'active', status_detail = NULL WHERE id = :id"),
                     {"id": connection_id})
    at.run()
    assert not any("needs you to reconnect" in e.value for e in at.error)


def test_the_banner_follows_what_the_page_did(offline: Path) -> None:
    """A reconnect (or sync) on the page changes the banner in the same run: it is redrawn after the page."""
    connection_id = register(ConnectionStatus.NEEDS_RECONNECT, "Log in again.")
    folder = offline / "entry"
    (folder / "views").mkdir(parents=True)
    (folder / "views" / "fix.py").write_text(
        "import sqlalchemy as sa\nimport streamlit as st\nfrom finance.ui.context import services\n\n"
        "st.title('Fix')\nwith services().engine.begin() as conn:\n"
        "    conn.execute(sa.text(\"UPDATE connections SET status = 'active'\"))\n")
    (folder / "app.py").write_text(
        "import streamlit as st\nfrom finance.ui.banner import render_banner\n\n"
        "fix = st.Page('views/fix.py', title='Fix', default=True)\n"
        "navigation = st.navigation([fix])\nredraw = render_banner(fix)\nnavigation.run()\nredraw()\n")
    at = AppTest.from_file(str(folder / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Fix" and connection_id
    assert not [e for e in at.error if "needs you to reconnect" in e.value]
    assert not [b for b in at.button if b.label == "Reconnect"]
