"""The Connections page through AppTest: the offline connect widget's paths, per-connection details, and
reconnect in update mode (from the card's button and from the banner's `reconnect_connection_id`)."""

from __future__ import annotations

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.config import load_settings
from finance.providers import registry
from finance.services import open_services
from tests.test_connect_widget import has_widget, send, widget
from tests.test_pages import PLAID, PLUGGY, button, connect, open_page, store

RECONNECT = "reconnect_widget"


def only_connection(tmp) -> tuple[str, str, str]:
    """(id, external id, status) of the single connection in the store."""
    engine = store(tmp)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT id, external_id, status FROM connections")).one()
    engine.dispose()
    return row.id, row.external_id, row.status


def last_run(tmp) -> tuple[str, str]:
    engine = store(tmp)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT trigger, outcome FROM sync_runs ORDER BY started_at DESC LIMIT 1")).one()
    engine.dispose()
    return row.trigger, row.outcome


def sync_now(at: AppTest) -> AppTest:
    button(at, "Sync now").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_page_leads_to_the_sandbox_bank_and_lists_banks_sandbox_first(offline):
    at = open_page("connections")
    assert "No banks connected yet" in at.info[0].value and "user-ok" in at.info[0].value
    data = widget(at, PLUGGY)
    assert data["kind"] == "offline" and data["step"] == "choose"
    assert data["institutions"][0]["name"] == "Pluggy Bank" and data["institutions"][0]["sandbox"]
    assert all(b["logo"] is None for b in data["institutions"])  # offline: nothing fetched from the internet
    assert "123456" in data["hint"]


def test_a_stale_event_from_a_screen_that_is_gone_changes_nothing(offline):
    at = open_page("connections")
    send(at, PLUGGY, "choose", institution_id="0")
    after = send(at, PLUGGY, "choose", institution_id="0", step_id=0)  # a double click's second event
    assert after["step"] == "credentials" and after["step_id"] == 1


def test_login_fields_come_from_the_bank_and_are_checked(offline):
    at = open_page("connections")
    data = send(at, PLUGGY, "choose", institution_id="0")
    assert [(f["name"], f["type"]) for f in data["fields"]] == [("user", "text"), ("password", "password")]
    data = send(at, PLUGGY, "submit", values={"user": "user-ok"})
    assert data["step"] == "credentials" and data["error"] == "Fill in: Password."
    assert only_connections_count(offline) == 0


def only_connections_count(tmp) -> int:
    engine = store(tmp)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM connections")).scalar_one()
    engine.dispose()
    return count


def test_after_a_wrong_password_try_again_returns_to_the_same_bank(offline):
    at = connect(open_page("connections"), "user-ok", password="nope")
    data = send(at, PLUGGY, "retry")
    assert data["step"] == "credentials" and data["institution"]["name"] == "Pluggy Bank" and data["error"] is None
    data = send(at, PLUGGY, "submit", values={"user": "user-ok", "password": "password-ok"})
    assert data["step"] == "done" and data["ok"]
    assert "Pluggy Bank connected" in at.success[0].value
    assert send(at, PLUGGY, "restart")["step"] == "choose"  # "Connect another bank"


def test_cancelling_mfa_goes_back_to_the_bank_list(offline):
    at = connect(open_page("connections"), "user-ok-mfa")
    assert widget(at, PLUGGY)["step"] == "mfa"
    assert send(at, PLUGGY, "cancel")["step"] == "choose"
    assert only_connections_count(offline) == 0


def test_each_connection_shows_its_accounts_with_balances(offline):
    at = connect(open_page("connections"), "user-ok")
    lines = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert len(lines) == 4  # checking, card, the investments and the vehicle financing
    assert not any("··nan" in line for line in lines)  # the investment account has no mask
    assert any("(checking)" in line and "R$" in line for line in lines)
    assert any("(credit card)" in line and "-R$" in line for line in lines)  # a card's debt is negative
    assert any("(loan)" in line and "-R$" in line for line in lines)
    assert any("(investment)" in line and "**R$" in line for line in lines)
    assert any("Pluggy" in c.value and "4 accounts" in c.value for c in at.caption)


def test_reconnect_offline_logs_in_again_with_mfa_and_resyncs(offline):
    at = connect(open_page("connections"), "user-ok-mfa")
    send(at, PLUGGY, "mfa", values={"token": "123456"})
    connection_id, item_id, _ = only_connection(offline)
    registry.emulator("pluggy", load_settings()).set_item_status(item_id, "LOGIN_ERROR", "INVALID_CREDENTIALS",
                                                     "INVALID_CREDENTIALS")
    sync_now(at)
    assert only_connection(offline)[2] == "needs_reconnect"
    assert not has_widget(at, RECONNECT)

    button(at, "Reconnect").click()
    at.run()
    data = widget(at, RECONNECT)
    assert (data["mode"], data["step"], data["institution"]["name"]) == ("reconnect", "credentials", "Pluggy Bank")
    data = send(at, RECONNECT, "submit", values={"user": "user-ok-mfa", "password": "password-ok"})
    assert data["step"] == "mfa"
    data = send(at, RECONNECT, "mfa", values={"token": "123456"})
    assert data["step"] == "done" and data["message"].startswith("Pluggy Bank reconnected."), data
    assert only_connection(offline) == (connection_id, item_id, "active")  # the same item, renewed
    assert last_run(offline) == ("reconnect", "success")
    assert send(at, RECONNECT, "cancel") == {}  # Close


def test_the_banner_contract_opens_plaid_update_mode_and_a_wrong_password_can_be_retried(offline):
    at = open_page("connections")
    at.radio(key="provider").set_value("plaid")
    at.run()
    send(at, PLAID, "choose", institution_id="ins_109508")
    send(at, PLAID, "submit", values={"username": "user_good", "password": "pass_good"})
    connection_id, item_id, _ = only_connection(offline)
    svc = open_services(load_settings())  # Plaid's sandbox reset: the bank now wants a new login
    svc.providers["plaid"].client.sandbox_reset_login(svc.secrets.get("plaid", item_id))
    svc.engine.dispose()
    sync_now(at)
    assert only_connection(offline)[2] == "needs_reconnect"

    at.session_state["reconnect_connection_id"] = connection_id  # what the banner's Reconnect button sets
    at.run()
    assert "reconnect_connection_id" not in at.session_state  # consumed once
    data = widget(at, RECONNECT)
    assert (data["provider"], data["mode"], data["step"]) == ("plaid", "reconnect", "credentials")
    assert [f["name"] for f in data["fields"]] == ["username", "password"]
    data = send(at, RECONNECT, "submit", values={"username": "user_good", "password": "wrong"})
    assert data["step"] == "error" and "username or password" in data["error"]
    send(at, RECONNECT, "retry")
    data = send(at, RECONNECT, "submit", values={"username": "user_good", "password": "pass_good"})
    assert data["step"] == "done" and data["ok"] and "reconnected" in data["message"], data
    assert only_connection(offline) == (connection_id, item_id, "active")
    assert last_run(offline) == ("reconnect", "success")


def test_a_reconnect_request_for_a_gone_connection_says_so(offline):
    at = open_page("connections")
    at.session_state["reconnect_connection_id"] = "pluggy:nope"
    at.run()
    assert "no longer exists" in at.error[0].value
    assert not has_widget(at, RECONNECT)


def test_cancel_closes_update_mode_and_disconnect_closes_it_too(offline):
    at = connect(open_page("connections"), "user-ok")
    button(at, "Reconnect").click()
    at.run()
    assert send(at, RECONNECT, "back") == {}  # Cancel on the login screen
    button(at, "Reconnect").click()
    at.run()
    assert has_widget(at, RECONNECT)
    button(at, "Disconnect").click()
    at.run()
    assert not has_widget(at, RECONNECT)
    assert "disconnected" in at.success[0].value


def test_the_empty_page_offers_the_one_click_demo(offline):
    at = open_page("connections")
    button(at, "Try the demo: connect two sandbox banks").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Pluggy Bank connected" in at.success[0].value and "First Platypus Bank connected" in at.success[0].value
    headings = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert len(headings) == 2
    assert not any(b.label.startswith("Try the demo") for b in at.button)  # gone once there are connections
