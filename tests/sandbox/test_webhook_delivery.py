"""The emulators' webhooks: Pluggy's webhook resource and events, Plaid's signed deliveries and
SYNC_UPDATES_AVAILABLE, delivery over loopback with each provider's retry schedule (compressed), and webhooks queued
by another process (the CLI) delivered by the one that runs the sender."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.plaid.webhooks import PlaidKeys, parse_plaid, verify_plaid
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock, LoopbackServer
from tests.sandbox.test_plaid_emulator import assert_valid as assert_plaid_valid
from tests.sandbox.test_pluggy_emulator import CREDENTIALS, advance, assert_valid, create_item, make_client

START = datetime(2025, 6, 15, 15, 0, tzinfo=UTC)
FAST = 0.0001  # Pluggy's one- and two-hour waits become 0.36 s and 0.72 s


class Receiver:
    """A loopback HTTP server that records webhooks and answers with scripted statuses (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[httpx.Request] = []
        self.arrived = threading.Condition()
        self.server = LoopbackServer(self._handle).start()
        self.url = f"{self.server.base_url}/webhooks"

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self.arrived:
            self.requests.append(request)
            self.arrived.notify_all()
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200, json={})

    def wait_for(self, count: int, timeout: float = 30.0) -> list[httpx.Request]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, timeout), self.requests
            return list(self.requests)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.stop()


@pytest.fixture
def pluggy() -> Iterator[PluggyEmulator]:
    emulator = PluggyEmulator(clock=Clock(start=START), seed=7)
    yield emulator
    emulator.stop_webhook_delivery()


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        done.wait(0.02)
    raise AssertionError("condition not met in time")


# -- Pluggy: the webhook resource ----------------------------------------------------------------------------------

def test_pluggy_webhook_resource(pluggy: PluggyEmulator) -> None:
    client = make_client(pluggy)
    assert client.get("/webhooks").json()["results"] == []
    created = client.post("/webhooks", json={"url": "https://example.com/pluggy", "event": "item/updated",
                                              "headers": {"X-Webhook-Secret": "s"}})
    assert created.status_code == 201
    hook = created.json()
    assert set(hook) == {"id", "event", "url", "disabledAt", "createdAt", "updatedAt"}  # headers are not echoed
    assert client.post("/webhooks", json={"url": "http://127.0.0.1:8501/webhooks/pluggy", "event": "all"}) \
        .status_code == 201  # the offline emulator accepts loopback
    for body, message in [
        ({"url": "https://example.com/pluggy", "event": "item/updated"}, "already exists"),
        ({"url": "http://example.com/hook", "event": "all"}, "https"),
        ({"url": "https://10.0.0.1/hook", "event": "all"}, "private"),
        ({"url": "https://box.internal/hook", "event": "all"}, "private"),
        ({"url": "https://example.com/x", "event": "item/nope"}, "Invalid event type"),
        ({"url": "https://example.com/x", "event": "all", "headers": {"a": 1}}, "headers"),
    ]:
        answer = client.post("/webhooks", json=body)
        assert answer.status_code == 400 and message in answer.json()["message"], body
    for n in range(4):
        assert client.post("/webhooks", json={"url": f"https://example.com/{n}", "event": "item/updated"}) \
            .status_code == 201
    assert "at most 5" in client.post("/webhooks", json={"url": "https://example.com/6", "event": "item/updated"}) \
        .json()["message"]
    patched = client.patch(f"/webhooks/{hook['id']}", json={"event": "all", "headers": None, "enabled": True})
    assert patched.json()["event"] == "all" and patched.json()["disabledAt"] is None
    assert client.get(f"/webhooks/{hook['id']}").json()["event"] == "all"
    assert client.delete(f"/webhooks/{hook['id']}").json() == {"count": 1}
    missing = client.get(f"/webhooks/{hook['id']}")
    assert (missing.status_code, missing.json()["codeDescription"]) == (404, "WEBHOOK_NOT_FOUND")
    assert httpx.Client(base_url="https://api.pluggy.ai", transport=pluggy.transport()).get("/webhooks") \
        .status_code == 401  # the API key is required


# -- Pluggy: events ----------------------------------------------------------------------------------------------------

def test_pluggy_events_follow_the_item_and_its_data(pluggy: PluggyEmulator) -> None:
    client = make_client(pluggy)
    client.post("/webhooks", json={"url": "http://127.0.0.1:1/hook", "event": "all",
                                   "headers": {"X-Webhook-Secret": "s"}})
    item = create_item(client, webhookUrl="http://127.0.0.1:1/hook")
    sent = pluggy.pending_webhooks()
    assert all(e["url"] == "http://127.0.0.1:1/hook" and e["headers"] == {"X-Webhook-Secret": "s"} for e in sent)
    assert [e["event"] for e in sent][:2] == ["item/login_succeeded", "item/created"]
    created = [json.loads(e["body"]) for e in sent if e["event"] == "transactions/created"]
    assert len(created) == 2 and all(p["itemId"] == item["id"] and p["transactionsCount"] > 0 for p in created)
    for entry in sent:
        assert_valid("PluggyWebhookEventPayload", json.loads(entry["body"]))
    assert len({json.loads(e["body"])["eventId"] for e in sent}) == len(sent)

    pluggy._outbox.clear()
    advance(pluggy, client, days=3)  # an auto-sync: new rows, and pending card purchases posted under new ids
    events = [json.loads(e["body"]) for e in pluggy.pending_webhooks()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "item/updated" and events[0]["triggeredBy"] == "SYNC"
    assert "transactions/created" in kinds and "transactions/deleted" in kinds
    deleted = next(e for e in events if e["event"] == "transactions/deleted")
    assert deleted["transactionIds"] and deleted["transactionsCount"] == len(deleted["transactionIds"])
    for payload in events:
        assert_valid("PluggyWebhookEventPayload", payload)

    pluggy._outbox.clear()
    pluggy.set_item_status(item["id"], "LOGIN_ERROR", "ERROR", "INVALID_CREDENTIALS")
    client.delete(f"/items/{item['id']}")
    pluggy.set_connector_status(0, "UNSTABLE")
    events = [json.loads(e["body"]) for e in pluggy.pending_webhooks()]
    assert [e["event"] for e in events] == ["item/error", "item/deleted", "connector/status_updated"]
    assert events[0]["error"]["code"] == "INVALID_CREDENTIALS"
    assert events[2]["data"] == {"status": "UNSTABLE"} and events[2]["connectorId"] == 0


def test_pluggy_mfa_waits_are_announced(pluggy: PluggyEmulator) -> None:
    client = make_client(pluggy)
    client.post("/webhooks", json={"url": "http://127.0.0.1:1/hook", "event": "item/all"})
    item = create_item(client, user="user-ok-mfa")
    assert [e["event"] for e in pluggy.pending_webhooks()] == ["item/waiting_user_input"]
    advance(pluggy, client, hours=1)  # the code was never sent
    last = json.loads(pluggy.pending_webhooks()[-1]["body"])
    assert (last["event"], last["error"]["code"], last["itemId"]) == ("item/error", "USER_INPUT_TIMEOUT", item["id"])


def test_no_destination_no_events(pluggy: PluggyEmulator) -> None:
    create_item(make_client(pluggy))
    pluggy.advance(days=2)
    assert pluggy.pending_webhooks() == []


# -- delivery ------------------------------------------------------------------------------------------------------

def test_pluggy_delivers_with_its_retry_schedule(pluggy: PluggyEmulator) -> None:
    failing = Receiver([500] * 4)
    try:
        pluggy._preset_webhook(failing.url, {"X-Webhook-Secret": "s"})
        pluggy.set_connector_status(0, "OFFLINE")
        pluggy.deliver_webhooks(time_scale=FAST, poll=0.01)
        requests = failing.wait_for(5)
        wait_until(lambda: pluggy.pending_webhooks() == [])
    finally:
        failing.server.stop()
    assert [r.headers["X-Webhook-Secret"] for r in requests] == ["s"] * 5
    assert len({r.content for r in requests}) == 1  # the same body every time
    log = pluggy.delivery_log
    assert [(e["attempt"], e["status"], e["final"]) for e in log] == [
        (1, 500, False), (2, 500, False), (3, 500, False), (4, 500, False), (5, 200, True)]
    assert log[3]["at"] - log[2]["at"] >= 3600 * FAST  # the hour's wait, compressed


def test_pluggy_gives_up_after_nine_attempts_and_never_retries_a_401(pluggy: PluggyEmulator) -> None:
    failing = Receiver([503] * 9 + [401])
    try:
        pluggy._preset_webhook(failing.url, {})
        pluggy.set_connector_status(0, "OFFLINE")
        pluggy.deliver_webhooks(time_scale=FAST, poll=0.01)
        failing.wait_for(9)
        wait_until(lambda: pluggy.pending_webhooks() == [])
        pluggy.set_connector_status(0, "ONLINE")
        failing.wait_for(10)
        wait_until(lambda: pluggy.pending_webhooks() == [])
    finally:
        failing.server.stop()
    assert [e["attempt"] for e in pluggy.delivery_log] == [*range(1, 10), 1]
    assert pluggy.delivery_log[8]["final"] and pluggy.delivery_log[9]["status"] == 401


def test_only_loopback_destinations_are_contacted(pluggy: PluggyEmulator) -> None:
    client = make_client(pluggy)
    client.post("/webhooks", json={"url": "https://example.com/hook", "event": "all"})
    pluggy.set_connector_status(0, "OFFLINE")
    pluggy.deliver_webhooks(poll=0.01)
    wait_until(lambda: pluggy.pending_webhooks() == [])
    assert pluggy.delivery_log[0]["outcome"].startswith("not sent") and pluggy.delivery_log[0]["final"]


def test_plaid_signs_each_delivery_as_plaid_does(receiver: Receiver) -> None:
    emulator = PlaidEmulator(clock=Clock(start=START), seed=7, webhook_url=receiver.url)
    client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None)
    try:
        token = client.exchange_public_token(client.sandbox_public_token_create("ins_109508"))[0]
        client.transactions_sync(token, None)  # from now on, refreshes are announced
        client.sandbox_reset_login(token)
        client._post("/sandbox/item/fire_webhook", {"access_token": token, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"})
        emulator.deliver_webhooks(poll=0.01)
        requests = receiver.wait_for(2)
        keys = PlaidKeys(client.webhook_verification_key_get)
        payloads = []
        for request in requests:
            verified = verify_plaid(dict(request.headers), request.content, keys, datetime.now(UTC))
            payloads.append(parse_plaid(request.content, verified, datetime.now(UTC)).payload)
        assert [(p["webhook_type"], p["webhook_code"]) for p in payloads] == [
            ("ITEM", "ERROR"), ("ITEM", "NEW_ACCOUNTS_AVAILABLE")]
        assert_plaid_valid("ItemErrorWebhook", payloads[0])
        assert payloads[0]["error"]["error_code"] == "ITEM_LOGIN_REQUIRED"
    finally:
        emulator.stop_webhook_delivery()
        client.close()


def test_plaid_announces_refreshes_with_changes_once_synced() -> None:
    emulator = PlaidEmulator(clock=Clock(start=START), seed=7)
    client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None)
    token = client.exchange_public_token(client.sandbox_public_token_create(
        "ins_109508", username="user_transactions_dynamic", password="pass_good", webhook="http://127.0.0.1:1/h"))[0]
    emulator.advance(days=1)
    assert emulator.pending_webhooks() == []  # /transactions/sync never called: Plaid stays quiet
    client.transactions_sync(token, None)
    emulator.advance(hours=1)
    assert emulator.pending_webhooks() == []  # no refresh yet
    emulator.advance(days=1)
    sent = [json.loads(e["body"]) for e in emulator.pending_webhooks()]
    assert [(p["webhook_type"], p["webhook_code"]) for p in sent] == [("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")]
    assert_plaid_valid("SyncUpdatesAvailableWebhook", sent[0])
    client.close()


def test_plaid_retries_thirty_seconds_then_four_times_longer(receiver: Receiver) -> None:
    receiver.statuses = [500, 500]
    emulator = PlaidEmulator(clock=Clock(start=START), seed=7, webhook_url=receiver.url)
    client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None)
    try:
        token = client.exchange_public_token(client.sandbox_public_token_create("ins_109508"))[0]
        client.sandbox_reset_login(token)
        emulator.deliver_webhooks(time_scale=0.01, poll=0.01)
        receiver.wait_for(3)
        wait_until(lambda: emulator.pending_webhooks() == [])
    finally:
        emulator.stop_webhook_delivery()
        client.close()
    log = emulator.delivery_log
    assert [(e["attempt"], e["status"]) for e in log] == [(1, 500), (2, 500), (3, 200)]
    assert log[1]["at"] - log[0]["at"] >= 0.3 and log[2]["at"] - log[1]["at"] >= 1.2


def test_webhooks_queued_by_another_process_are_delivered(tmp_path: Path, receiver: Receiver) -> None:
    """The app's in-process emulator delivers what `python -m finance sandbox advance` queued in the state file."""
    path = tmp_path / "pluggy.json"
    app_side = PluggyEmulator(state_path=path, seed=7)
    client = make_client(app_side)
    client.post("/webhooks", json={"url": receiver.url, "event": "all", "headers": {"X-Webhook-Secret": "s"}})
    create_item(client)
    app_side._outbox.clear()
    app_side._save()
    app_side.deliver_webhooks(poll=0.01)
    try:
        PluggyEmulator(state_path=path, seed=7).advance(days=2)  # the CLI, in its own process
        requests = receiver.wait_for(1)
        wait_until(lambda: app_side.pending_webhooks() == [])
    finally:
        app_side.stop_webhook_delivery()
    kinds = [json.loads(r.content)["event"] for r in receiver.requests]
    assert kinds[0] == "item/updated" and "transactions/created" in kinds
    assert requests[0].headers["X-Webhook-Secret"] == "s"
    assert json.loads(path.read_text())["outbox"] == []
    assert app_side.clock.now() >= datetime.now(UTC) + timedelta(days=2) - timedelta(minutes=5)
    assert CREDENTIALS["clientSecret"] not in path.read_text()


# -- the CLI's sandbox commands ------------------------------------------------------------------------------------

def test_cli_reset_login_and_a_refused_webhook_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finance.cli import main

    assert main(["sandbox", "serve", "--webhook-url", "https://example.com/hook", "--port", "0"]) == 2
    assert "loopback only" in capsys.readouterr().err
    path = tmp_path / "plaid.json"
    emulator = PlaidEmulator(state_path=path, webhook_url="http://127.0.0.1:1/hook")
    client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None)
    token = client.exchange_public_token(client.sandbox_public_token_create("ins_109508"))[0]
    assert main(["sandbox", "reset-login", "--provider", "plaid", "--state", str(path)]) == 0
    assert "asks for a new login" in capsys.readouterr().out
    assert client.item_get(token)["item"]["error"]["error_code"] == "ITEM_LOGIN_REQUIRED"
    assert [e["event"] for e in emulator.pending_webhooks()] == ["ITEM/ERROR"]
    assert main(["sandbox", "reset-login", "--provider", "plaid", "--item", "nope", "--state", str(path)]) == 1
    client.close()
    pluggy_path = tmp_path / "pluggy.json"
    create_item(make_client(PluggyEmulator(state_path=pluggy_path)))
    assert main(["sandbox", "reset-login", "--provider", "pluggy", "--state", str(pluggy_path)]) == 0
    assert PluggyEmulator(state_path=pluggy_path).list_items()[0]["status"] == "LOGIN_ERROR"
