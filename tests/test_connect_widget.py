"""The connect widget: its pure flow (finance/connect_flow.py), and its Python side through AppTest with the
widget's events injected exactly as the browser sends them (a trigger on the component's event widget).

The hosted widgets (Pluggy Connect, Plaid Link) run with credentials set and api.pluggy.ai / sandbox.plaid.com
answered by the emulators through respx; the test plays the hosted widget's part (creating the item, or
finishing Link) and injects its success callback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from finance import connect_flow as cf
from finance.config import PLUGGY_API_URL, Settings, load_settings
from finance.connect_flow import Choice, Field, Finish, Flow, Login, MintToken, SendMfa, Step
from finance.model import ConnectionState, ConnectionStatus, Institution, MfaPrompt
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.providers.registry import kit
from finance.services import open_services

PLUGGY, PLAID = kit("pluggy"), kit("plaid")
APP = str(Path(__file__).resolve().parents[1] / "app.py")
PLUGGY_BANK = Institution(id="0", name="Pluggy Bank", primary_color="ef294b", is_sandbox=True,
                          logo_url="https://cdn.pluggy.ai/assets/connector-icons/sandbox.svg")
ITAU = Institution(id="601", name="Itaú", primary_color="EC7000")
FIELDS = [{"name": "user", "label": "User", "type": "text", "placeholder": "user-ok"},
          {"name": "password", "label": "Password", "type": "password"}]


# -- AppTest helpers (also used by the page tests) ------------------------------------------------------------

def widget(at: AppTest, key: str) -> dict[str, Any]:
    """The data the page last sent to the widget mounted under `key`."""
    node = _node(at, key)
    proto = node.proto
    return json.loads(proto.json if proto.WhichOneof("data") == "json" else proto.mixed.json)


def has_widget(at: AppTest, key: str) -> bool:
    return any(e.key == key for e in at.get("bidi_component"))


def _node(at: AppTest, key: str) -> Any:
    nodes = [e for e in at.get("bidi_component") if e.key == key]
    assert nodes, f"no connect widget {key!r} among {[e.key for e in at.get('bidi_component')]}"
    return nodes[0]


def send(at: AppTest, key: str, kind: str, *, step_id: int | None = None, **payload: Any) -> dict[str, Any]:
    """Send one widget event (as the browser's setTriggerValue does), rerun, and return the widget's new data."""
    node = _node(at, key)
    event = {"type": kind, "step_id": widget(at, key)["step_id"] if step_id is None else step_id, **payload}
    states = at._tree.get_widget_states()
    trigger = WidgetState(id=f"$$STREAMLIT_INTERNAL_KEY_{node.proto.id}__events")
    trigger.json_trigger_value = json.dumps({"event": "event", "value": event})
    states.widgets.append(trigger)
    at._run(states)
    assert not at.exception, [e.value for e in at.exception]
    return widget(at, key) if has_widget(at, key) else {}


def open_connections(app: str = APP) -> AppTest:
    at = AppTest.from_file(app, default_timeout=60)
    at.run()
    at.switch_page("pages/connections.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- the pure flow ----------------------------------------------------------------------------------------------

def settings(**values: Any) -> Settings:
    return Settings(data_dir=Path("/tmp/x"), database_url="duckdb:///:memory:", **values)


def test_the_hosted_widget_is_used_only_against_the_real_apis():
    pluggy, plaid = PLUGGY.uses_hosted_widget, PLAID.uses_hosted_widget
    assert not pluggy(settings()) and not plaid(settings())
    assert pluggy(settings(pluggy_client_id="a", pluggy_client_secret="b"))
    assert plaid(settings(plaid_client_id="a", plaid_secret="b"))
    # An emulator served over HTTP has no hosted widget: the offline widget drives it.
    assert not pluggy(settings(pluggy_client_id="a", pluggy_client_secret="b", pluggy_base_url="http://127.0.0.1:8765"))
    assert not plaid(settings(plaid_client_id="a", plaid_secret="b", plaid_base_url="http://127.0.0.1:8766"))
    assert settings().pluggy_base_url == PLUGGY_API_URL


def offline_flow() -> Flow:
    return cf.with_institutions(cf.start("pluggy", "Pluggy", None, hint=PLUGGY.sandbox_hint), [ITAU, PLUGGY_BANK])


def at_credentials() -> Flow:
    flow, effect = cf.handle(offline_flow(), {"type": "choose", "institution_id": "0", "step_id": 0})
    assert effect is None
    return cf.with_fields(flow, FIELDS)


def test_offline_flow_lists_sandbox_banks_first_and_never_a_remote_logo():
    flow = offline_flow()
    assert flow.step is Step.CHOOSE and not cf.needs_institutions(flow)
    assert [c.name for c in flow.institutions or ()] == ["Pluggy Bank", "Itaú"]
    bank = flow.institutions[0]
    assert bank.color == "#ef294b" and bank.logo is None  # an https logo would be fetched from the internet
    data_logo = Choice.of(dataclasses.replace(PLUGGY_BANK, logo_url="data:image/png;base64,AAAA"))
    assert data_logo.logo == "data:image/png;base64,AAAA"
    assert cf.needs_institutions(cf.start("pluggy", "Pluggy", None))


def test_a_provider_without_banks_says_so():
    flow = cf.with_institutions(cf.start("plaid", "Plaid", None), [])
    assert flow.step is Step.ERROR and "listed no banks" in (flow.error or "")


def test_choosing_a_bank_asks_for_its_login_fields():
    flow, _ = cf.handle(offline_flow(), {"type": "choose", "institution_id": "0", "step_id": 0})
    assert flow.step is Step.CREDENTIALS and flow.step_id == 1
    assert flow.institution and flow.institution.name == "Pluggy Bank"
    assert cf.needs_fields(flow)
    flow = cf.with_fields(flow, FIELDS)
    assert not cf.needs_fields(flow)
    assert [f.type for f in flow.fields or ()] == ["text", "password"]


def test_an_unknown_bank_is_refused_with_a_message():
    flow, effect = cf.handle(offline_flow(), {"type": "choose", "institution_id": "999", "step_id": 0})
    assert effect is None and flow.step is Step.CHOOSE and flow.step_id == 1
    assert "not in the list" in (flow.error or "")


@pytest.mark.parametrize("event", [
    None, "choose", [], {"type": "choose", "institution_id": "0"},  # no step_id
    {"type": "choose", "institution_id": "0", "step_id": 5},  # from a screen that is gone
    {"type": 3, "step_id": 0}, {"type": "submit", "step_id": 0}, {"type": "explode", "step_id": 0},
])
def test_stale_or_malformed_events_change_nothing(event: object):
    flow = offline_flow()
    assert cf.handle(flow, event) == (flow, None)


def test_credentials_are_checked_before_the_bank_is_called():
    flow = at_credentials()
    same, effect = cf.handle(flow, {"type": "submit", "step_id": flow.step_id, "values": {"user": " user-ok "}})
    assert effect is None and same.error == "Fill in: Password." and same.step_id == flow.step_id + 1
    _, effect = cf.handle(flow, {"type": "submit", "step_id": flow.step_id, "values": "nope"})
    assert effect is None
    too_long = {"user": "x" * (cf.MAX_VALUE_LENGTH + 1), "password": "p"}
    refused, effect = cf.handle(flow, {"type": "submit", "step_id": flow.step_id, "values": too_long})
    assert effect is None and "too long" in (refused.error or "")

    unchanged, effect = cf.handle(flow, {"type": "submit", "step_id": flow.step_id,
                                         "values": {"user": " user-ok ", "password": "password-ok", "extra": "x"}})
    assert unchanged == flow
    assert effect == Login("0", {"user": "user-ok", "password": "password-ok"})


def test_field_validation_and_optional_fields():
    fields = (Field("cpf", "CPF", validation=r"\d{11}", validation_message="CPF has 11 digits."),
              Field("branch", "Branch", optional=True))
    assert cf.check_values(fields, {"cpf": "123"}) == ({}, "CPF has 11 digits.")
    assert cf.check_values(fields, {"cpf": "12345678901"}) == ({"cpf": "12345678901"}, None)
    assert cf.check_values((Field("x", "X", validation="("),), {"x": "a"}) == ({"x": "a"}, None)  # broken regex


def connection(status: ConnectionStatus, **extra: Any) -> ConnectionState:
    return ConnectionState(provider="pluggy", external_id="item-1", status=status, provider_status="S",
                           institution=PLUGGY_BANK, **extra)


def test_the_bank_asking_for_a_code_leads_to_mfa_then_send_mfa():
    prompt = MfaPrompt(name="token", label="Token", instructions="Sandbox: 123456")
    flow = cf.settled(at_credentials(), connection(ConnectionStatus.NEEDS_INPUT, mfa_prompt=prompt))
    assert flow.step is Step.MFA and flow.external_id == "item-1" and flow.prompt and flow.prompt.label == "Token"
    blank, effect = cf.handle(flow, {"type": "mfa", "step_id": flow.step_id, "values": {"token": " "}})
    assert effect is None and blank.step is Step.MFA and "Token" in (blank.error or "")
    _, effect = cf.handle(flow, {"type": "mfa", "step_id": flow.step_id, "values": {"token": "123456"}})
    assert effect == SendMfa("item-1", {"token": "123456"})
    back, _ = cf.handle(flow, {"type": "cancel", "step_id": flow.step_id})
    assert back.step is Step.CHOOSE and back.institutions  # the bank list is kept


def test_connected_goes_to_the_first_sync_then_done():
    flow = cf.settled(at_credentials(), connection(ConnectionStatus.ACTIVE))
    assert flow.step is Step.SYNCING and flow.external_id == "item-1"
    done = cf.synced(flow, ok=True, message="Synced 2 accounts.")
    assert done.step is Step.DONE and done.ok and done.message == "Pluggy Bank connected. Synced 2 accounts."
    broken = cf.synced(flow, ok=False, message="Pluggy had a server error.")
    assert not broken.ok
    assert "connected, but the first sync failed: Pluggy had a server error." in (broken.message or "")
    again, _ = cf.handle(done, {"type": "restart", "step_id": done.step_id})
    assert again.step is Step.CHOOSE and again.institution is None and again.step_id > done.step_id


def test_a_refused_login_says_why_and_retry_returns_to_the_login():
    flow = cf.settled(at_credentials(), connection(ConnectionStatus.NEEDS_RECONNECT,
                                                   status_detail="The bank did not accept the username or password."))
    assert flow.step is Step.ERROR and not flow.ok
    assert flow.error == "Could not connect: The bank did not accept the username or password."
    retry, _ = cf.handle(flow, {"type": "retry", "step_id": flow.step_id})
    assert retry.step is Step.CREDENTIALS and retry.fields and retry.error is None and retry.external_id is None
    other, _ = cf.handle(flow, {"type": "back", "step_id": flow.step_id})
    assert other.step is Step.CHOOSE
    failed = cf.failed(at_credentials(), "Pluggy had a server error.")
    assert failed.error == "Could not connect: Pluggy had a server error."


def test_reconnect_offline_asks_for_the_login_of_the_same_bank():
    flow = cf.start_reconnect("pluggy", "Pluggy", None, connection_id="pluggy:item-1", external_id="item-1",
                              institution=Choice.of(PLUGGY_BANK))
    assert flow.step is Step.CREDENTIALS and flow.reconnecting and cf.needs_fields(flow)
    flow = cf.with_fields(flow, FIELDS)
    _, effect = cf.handle(flow, {"type": "submit", "step_id": 0, "values": {"user": "u", "password": "p"}})
    assert effect == Login("0", {"user": "u", "password": "p"})
    failed = cf.settled(flow, connection(ConnectionStatus.NEEDS_RECONNECT, status_detail="Wrong password."))
    assert failed.error == "Could not reconnect: Wrong password." and failed.external_id == "item-1"
    retry, _ = cf.handle(failed, {"type": "retry", "step_id": failed.step_id})
    assert retry.step is Step.CREDENTIALS and retry.external_id == "item-1"
    done = cf.synced(cf.settled(flow, connection(ConnectionStatus.ACTIVE)), ok=True, message="Up to date.")
    assert done.message == "Pluggy Bank reconnected. Up to date."
    for kind in ("back", "cancel"):
        closed, _ = cf.handle(flow, {"type": kind, "step_id": flow.step_id})
        assert closed.step is Step.CLOSED
    no_bank = cf.start_reconnect("pluggy", "Pluggy", None, connection_id="c", external_id="e", institution=None)
    assert no_bank.step is Step.ERROR and "Disconnect it" in (no_bank.error or "")


def test_hosted_pluggy_connect_opens_with_a_fresh_token_and_finishes_with_the_item():
    flow = cf.start("pluggy", "Pluggy", PLUGGY.hosted_widget)
    assert flow.step is Step.READY and "launch" not in cf.widget_data(flow)
    same, effect = cf.handle(flow, {"type": "open", "step_id": 0})
    assert same == flow and effect == MintToken()
    flow = cf.launched(flow, "connect-token")
    data = cf.widget_data(flow)
    assert data["launch"] == {"script": PLUGGY.hosted_widget.script, "token": "connect-token", "include_sandbox": True,
                              "update_item": None}
    assert data["hint"] is None  # hosted: real banks, no sandbox hint
    shown, effect = cf.handle(flow, {"type": "error", "step_id": flow.step_id, "error": {"message": "Bad login"}})
    assert effect is None and shown.step_id == flow.step_id and shown.error == "Pluggy Connect: Bad login"
    _, effect = cf.handle(shown, {"type": "success", "step_id": flow.step_id, "item_id": "item-9"})
    assert effect == Finish(item_id="item-9")
    missing, _ = cf.handle(flow, {"type": "success", "step_id": flow.step_id})
    assert missing.step is Step.ERROR


def test_hosted_pluggy_update_mode_names_the_item_and_refuses_another():
    flow = cf.launched(cf.start_reconnect("pluggy", "Pluggy", PLUGGY.hosted_widget, connection_id="pluggy:item-1",
                                          external_id="item-1", institution=None), "token")
    assert cf.widget_data(flow)["launch"]["update_item"] == "item-1"
    wrong, effect = cf.handle(flow, {"type": "success", "step_id": flow.step_id, "item_id": "item-2"})
    assert effect is None and wrong.step is Step.ERROR
    _, effect = cf.handle(flow, {"type": "success", "step_id": flow.step_id, "item_id": "item-1"})
    assert effect == Finish(item_id="item-1")


def test_plaid_link_success_exit_and_script_errors():
    flow = cf.launched(cf.start("plaid", "Plaid", PLAID.hosted_widget), "link-sandbox-1")
    assert cf.widget_data(flow)["launch"]["script"] == PLAID.hosted_widget.script
    _, effect = cf.handle(flow, {"type": "success", "step_id": flow.step_id, "public_token": "public-1"})
    assert effect == Finish(public_token="public-1")
    error = {"error_code": "INSTITUTION_DOWN", "error_message": "internal", "display_message": "The bank is down."}
    failed, _ = cf.handle(flow, {"type": "exit", "step_id": flow.step_id, "error": error})
    assert failed.step is Step.ERROR and failed.error == "Plaid Link: The bank is down. (INSTITUTION_DOWN)"
    expired, _ = cf.handle(flow, {"type": "exit", "step_id": flow.step_id,
                                  "error": {"error_code": "INVALID_LINK_TOKEN"}})
    assert expired.error == "Plaid Link: the session expired. Open it again."
    closed, _ = cf.handle(flow, {"type": "exit", "step_id": flow.step_id, "error": None})
    assert closed.step is Step.READY and "closed before" in (closed.message or "") and closed.token is None
    blocked, _ = cf.handle(flow, {"type": "script_error", "step_id": flow.step_id})
    assert blocked.step is Step.ERROR and "cdn.plaid.com" in (blocked.error or "")
    retry, _ = cf.handle(blocked, {"type": "retry", "step_id": blocked.step_id})
    assert retry.step is Step.READY
    update = cf.launched(cf.start_reconnect("plaid", "Plaid", PLAID.hosted_widget, connection_id="plaid:i",
                                            external_id="i", institution=None), "link-update")
    _, effect = cf.handle(update, {"type": "success", "step_id": update.step_id, "public_token": None})
    assert effect == Finish(public_token=None)  # update mode: nothing to exchange


def test_widget_data_is_json_and_carries_only_the_current_screen():
    flow = at_credentials()
    data = cf.widget_data(flow)
    json.dumps(data)
    assert data["step"] == "credentials" and [f["name"] for f in data["fields"]] == ["user", "password"]
    assert "institutions" not in data and "launch" not in data
    assert "user-ok" in data["hint"]
    assert "institutions" in cf.widget_data(offline_flow())


# -- the Python side, through AppTest ---------------------------------------------------------------------------

@pytest.fixture
def hosted(offline: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PluggyEmulator, PlaidEmulator]]:
    """Real-provider settings, with api.pluggy.ai and sandbox.plaid.com answered by emulators (never the network)."""
    monkeypatch.setenv("PLUGGY_CLIENT_ID", "id")
    monkeypatch.setenv("PLUGGY_CLIENT_SECRET", "secret")
    monkeypatch.setenv("PLAID_CLIENT_ID", "id")
    monkeypatch.setenv("PLAID_SECRET", "secret")
    pluggy, plaid = PluggyEmulator(settle_delay=0), PlaidEmulator()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.pluggy.ai").mock(side_effect=pluggy.handle)
        router.route(host="sandbox.plaid.com").mock(side_effect=plaid.handle)
        yield pluggy, plaid


def test_pluggy_connect_token_then_success_registers_and_syncs(hosted):
    pluggy, _ = hosted
    at = open_connections()
    data = widget(at, "connect_widget_pluggy")
    assert data["kind"] == "pluggy_connect" and data["step"] == "ready"

    data = send(at, "connect_widget_pluggy", "open")
    assert data["step"] == "launch" and data["launch"]["script"] == PLUGGY.hosted_widget.script
    token = data["launch"]["token"]
    assert token and data["launch"]["include_sandbox"] is True
    # What Pluggy Connect does with that token when the user logs in to Pluggy Bank.
    api = httpx.Client(transport=pluggy.transport(), base_url="https://api.pluggy.ai", headers={"X-API-KEY": token})
    item = api.post("/items", json={"connectorId": 0, "parameters": {"user": "user-ok", "password": "password-ok"}})
    assert item.status_code == 200, item.text

    data = send(at, "connect_widget_pluggy", "success", item_id=item.json()["id"])
    assert data["step"] == "done" and data["ok"], data
    assert data["message"].startswith("Pluggy Bank connected. Synced 2 accounts")
    assert any("Pluggy Bank" in m.value for m in at.markdown)


def test_plaid_link_public_token_is_exchanged_and_the_access_token_stored_encrypted(hosted):
    _, plaid = hosted
    at = open_connections()
    at.radio(key="provider").set_value("plaid")
    at.run()
    assert widget(at, "connect_widget_plaid")["kind"] == "plaid_link"

    data = send(at, "connect_widget_plaid", "open")
    assert data["launch"]["script"] == PLAID.hosted_widget.script
    public_token = plaid.complete_link(data["launch"]["token"])  # the user finishes Plaid Link
    data = send(at, "connect_widget_plaid", "success", public_token=public_token)
    assert data["step"] == "done" and data["ok"], data
    assert data["message"].startswith("First Platypus Bank connected.")

    engine = sa.create_engine(load_settings().database_url)
    with engine.connect() as conn:
        secret = conn.execute(sa.text("SELECT encrypted_secret FROM connections WHERE provider = 'plaid'")).scalar()
    engine.dispose()
    assert secret and "access-sandbox" not in str(secret)
    assert "access-sandbox" not in json.dumps(widget(at, "connect_widget_plaid"))  # the browser never sees it


def test_plaid_link_exit_with_an_error_is_shown_and_the_user_can_retry(hosted):
    at = open_connections()
    at.radio(key="provider").set_value("plaid")
    at.run()
    send(at, "connect_widget_plaid", "open")
    data = send(at, "connect_widget_plaid", "exit", error={"error_code": "INSTITUTION_NOT_RESPONDING",
                                                            "display_message": "The bank is not responding."})
    assert data["step"] == "error" and "The bank is not responding." in data["error"]
    assert send(at, "connect_widget_plaid", "retry")["step"] == "ready"


def test_plaid_link_update_mode_repairs_the_item_without_an_exchange(hosted):
    _, plaid = hosted
    at = open_connections()
    at.radio(key="provider").set_value("plaid")
    at.run()
    send(at, "connect_widget_plaid", "open")
    data = send(at, "connect_widget_plaid", "success",
                public_token=plaid.complete_link(widget(at, "connect_widget_plaid")["launch"]["token"]))
    assert data["ok"]
    item_id = plaid.list_items()[0]["item_id"]
    svc = open_services(load_settings())  # the bank asks for a new login (Plaid's sandbox reset)
    svc.providers["plaid"].client.sandbox_reset_login(svc.secrets.get("plaid", item_id))
    svc.engine.dispose()

    at.session_state["reconnect_connection_id"] = f"plaid:{item_id}"  # what the banner's Reconnect button sets
    at.run()
    data = widget(at, "reconnect_widget")
    assert data["mode"] == "reconnect" and data["kind"] == "plaid_link" and data["step"] == "ready"
    data = send(at, "reconnect_widget", "open")
    plaid.complete_link(data["launch"]["token"])  # update mode: the user logs in again; no new item
    data = send(at, "reconnect_widget", "success", public_token="")
    assert data["step"] == "done" and data["message"].startswith("First Platypus Bank reconnected."), data
    assert len(plaid.list_items()) == 1
    assert "reconnect_connection_id" not in at.session_state
    assert send(at, "reconnect_widget", "cancel") == {}  # Close: the update-mode widget goes away


def test_pluggy_update_mode_uses_a_connect_token_for_the_item(hosted):
    pluggy, _ = hosted
    at = open_connections()
    token = send(at, "connect_widget_pluggy", "open")["launch"]["token"]
    api = httpx.Client(transport=pluggy.transport(), base_url="https://api.pluggy.ai", headers={"X-API-KEY": token})
    item_id = api.post("/items", json={"connectorId": 0,
                                       "parameters": {"user": "user-ok", "password": "password-ok"}}).json()["id"]
    send(at, "connect_widget_pluggy", "success", item_id=item_id)
    pluggy.set_item_status(item_id, "LOGIN_ERROR", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS")

    at.session_state["reconnect_connection_id"] = f"pluggy:{item_id}"
    at.run()
    data = send(at, "reconnect_widget", "open")
    assert data["launch"]["update_item"] == item_id and data["launch"]["token"] != token
    # What Pluggy Connect does in update mode: the item's login again, with the token made for that item.
    update = httpx.Client(transport=pluggy.transport(), base_url="https://api.pluggy.ai",
                          headers={"X-API-KEY": data["launch"]["token"]})
    patched = update.patch(f"/items/{item_id}", json={"parameters": {"user": "user-ok", "password": "password-ok"}})
    assert patched.status_code == 200, patched.text
    data = send(at, "reconnect_widget", "success", item_id=item_id)
    assert data["step"] == "done" and data["ok"] and "reconnected" in data["message"], data["error"]
    engine = sa.create_engine(load_settings().database_url)
    with engine.connect() as conn:
        status, trigger = conn.execute(sa.text(
            "SELECT c.status, r.trigger FROM connections c JOIN sync_runs r ON r.connection_id = c.id "
            "ORDER BY r.started_at DESC LIMIT 1")).one()
    engine.dispose()
    assert (status, trigger) == ("active", "reconnect")
