"""The background worker: webhook storms coalesce into a bounded number of syncs, single flight, scheduled syncs that
pause for connections needing the user and resume after a reconnect, removals from webhooks, and restarts."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from finance.config import load_settings
from finance.model import ConnectionStatus
from finance.providers import registry
from finance.providers.webhook import PORTFOLIO
from finance.services import Services, open_services
from finance.store.ingest import ApplyCounts
from finance.sync import SyncResult
from finance.webhooks import WebhookReceiver, register_webhooks
from finance.worker import SCHEDULE, WEBHOOK, Worker

SECRET = {"X-Webhook-Secret": "worker-test-secret"}


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings({"FINANCE_DATA_DIR": str(tmp_path), "FINANCE_SANDBOX_SETTLE_SECONDS": "0",
                              "FINANCE_WEBHOOK_SECRET": SECRET["X-Webhook-Secret"],
                              "FINANCE_PUBLIC_URL": "http://127.0.0.1:9"}, secrets_file=tmp_path / "none.toml")
    services = open_services(settings)
    yield services
    services.engine.dispose()


def connect(svc: Services, user: str = "user-ok") -> tuple[str, str]:
    """Connect Pluggy Bank on the in-process emulator and run its first sync: (connection id, item id)."""
    provider = svc.providers["pluggy"]
    state = provider.create_connection("0", {"user": user, "password": "password-ok"})
    state = provider.wait_until_settled(state.external_id, sleep=lambda _s: None)
    connection_id = svc.sync.register(state)
    assert svc.sync.sync_connection(connection_id, trigger="connect").outcome == "success"
    return connection_id, state.external_id


def body(event: str, event_id: str, item_id: str, **extra: Any) -> bytes:
    return json.dumps({"event": event, "eventId": event_id, "itemId": item_id, **extra}).encode()


class StubSync:
    """Stands in for the sync engine: records each call, optionally blocking the first one, scripted outcomes."""

    def __init__(self, outcomes: list[str] | None = None, block_first: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.outcomes = outcomes or []
        self.started = threading.Event()
        self.release = threading.Event()
        if not block_first:
            self.release.set()

    def sync_connection(self, connection_id: str, *, trigger: str = "manual", on_progress: Any = None,
                        removed: Any = (), refetch: Any = ()) -> SyncResult:
        self.calls.append({"connection_id": connection_id, "trigger": trigger, "removed": sorted(removed),
                           **({"refetch": sorted(refetch)} if refetch else {})})
        self.started.set()
        self.release.wait(30)
        outcome = self.outcomes.pop(0) if self.outcomes else "success"
        message = {"skipped": "A sync of this connection is already running."}.get(outcome, f"{outcome}.")
        return SyncResult(connection_id, "run", outcome, ApplyCounts(), message,
                          "TRANSIENT" if outcome == "failed" else None)


def outcomes(svc: Services) -> dict[str, int]:
    with svc.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT outcome, COUNT(*) FROM webhook_events GROUP BY 1")).all())


def status_of(svc: Services, connection_id: str) -> tuple[str, str | None]:
    with svc.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, signal_code FROM connections WHERE id = :id"),
                           {"id": connection_id}).one()
    return row.status, row.signal_code


# -- storms and single flight ------------------------------------------------------------------------------------------

def test_a_storm_of_events_for_one_item_costs_one_sync(svc: Services) -> None:
    connection_id, item_id = connect(svc)
    stub = StubSync()
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0)
    receiver = WebhookReceiver(svc, worker)
    for n in range(300):
        assert receiver.receive("pluggy", SECRET, body("transactions/created", f"e{n}", item_id), None).status == 200
    assert worker.run_until_idle() == 1
    assert stub.calls == [{"connection_id": connection_id, "trigger": WEBHOOK, "removed": []}]
    assert outcomes(svc) == {"processed": 300}


def test_webhook_batches_of_ids_sync_exactly_those_rows(svc: Services) -> None:
    """transactions/updated fetches the ids it names (no window re-read), transactions/deleted removes its ids."""
    connection_id, item_id = connect(svc)
    with svc.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT t.id, a.external_id AS account FROM transactions t JOIN accounts a ON a.id = t.account_id "
            "WHERE a.type = 'checking' ORDER BY t.booked_date DESC LIMIT 4")).all()
    account = rows[0].account
    updated = [r.id.removeprefix("pluggy:") for r in rows[:3]]
    gone = rows[3].id.removeprefix("pluggy:")
    emulator = registry.offline_emulators(svc.settings)["pluggy"]
    before = len(emulator.request_log)
    worker = Worker(svc, interval=None, debounce=0.0)
    receiver = WebhookReceiver(svc, worker)
    for kind, event_id, ids in (("transactions/updated", "u1", updated), ("transactions/deleted", "d1", [gone])):
        assert receiver.receive("pluggy", SECRET, body(kind, event_id, item_id, accountId=account,
                                                       transactionIds=ids, transactionsCount=len(ids)),
                                None).status == 200
    assert worker.run_until_idle() == 1
    assert outcomes(svc) == {"processed": 2}
    sent = [path for _, path in emulator.request_log[before:] if path.startswith("/v2/transactions")]
    assert len(sent) == 1 and "ids=" in sent[0] and "dateFrom" not in sent[0] and "createdAtFrom" not in sent[0]
    with svc.engine.connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM sync_runs WHERE connection_id = :c ORDER BY started_at DESC "
                                   "LIMIT 1"), {"c": connection_id}).one()
        deleted = conn.execute(sa.text("SELECT deleted_at FROM transactions WHERE id = :id"),
                               {"id": f"pluggy:{gone}"}).all()
    assert (run.outcome, run.trigger, run.removed, run.window_start) == ("success", WEBHOOK, 1, None)
    assert deleted == [] or deleted[0].deleted_at is not None


def test_a_whole_sync_joining_a_batch_of_ids_makes_the_sync_whole(svc: Services) -> None:
    connection_id, item_id = connect(svc)
    stub = StubSync()
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0)
    receiver = WebhookReceiver(svc, worker)
    ids = ["6ec156fe-e8ac-4d9a-a4b3-7770529ab01c"]
    receiver.receive("pluggy", SECRET, body("transactions/updated", "u1", item_id, accountId="acc",
                                            transactionIds=ids), None)
    assert worker.run_until_idle() == 1
    assert stub.calls[-1]["refetch"] == [f"ids:acc:{ids[0]}"]
    receiver.receive("pluggy", SECRET, body("transactions/updated", "u2", item_id, accountId="acc",
                                            transactionIds=ids), None)
    receiver.receive("pluggy", SECRET, body("item/updated", "i1", item_id), None)
    assert worker.run_until_idle() == 1
    # whole: no transaction named; item/updated's word that Pluggy read the portfolio again is kept
    assert stub.calls[-1].get("refetch") == [PORTFOLIO] and stub.calls[-1]["connection_id"] == connection_id


def test_a_storm_during_a_running_sync_adds_exactly_one_more(svc: Services) -> None:
    """Events that arrive while a sync of their connection runs join one pending sync: two in all."""
    connection_id, item_id = connect(svc)
    stub = StubSync(block_first=True)
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0).start()
    receiver = WebhookReceiver(svc, worker)
    try:
        receiver.receive("pluggy", SECRET, body("item/updated", "first", item_id), None)
        assert stub.started.wait(30)
        for n in range(300):
            receiver.receive("pluggy", SECRET, body("transactions/created", f"storm-{n}", item_id), None)
        stub.release.set()
        for _ in range(600):
            if outcomes(svc) == {"processed": 301}:
                break
            threading.Event().wait(0.05)
    finally:
        worker.stop()
    assert outcomes(svc) == {"processed": 301}
    assert [c["connection_id"] for c in stub.calls] == [connection_id, connection_id]
    state = worker.snapshot()
    assert (state.received, state.syncs, state.queue) == (301, {WEBHOOK: 2}, ())


def test_a_sync_skipped_because_another_runs_is_retried(svc: Services) -> None:
    _, item_id = connect(svc)
    stub = StubSync(["skipped", "success"])
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0, skipped_retry=0.0)
    WebhookReceiver(svc, worker).receive("pluggy", SECRET, body("item/updated", "e1", item_id), None)
    assert worker.run_until_idle() == 1
    assert len(stub.calls) == 2 and outcomes(svc) == {"processed": 1}


# -- what events do ----------------------------------------------------------------------------------------------------

def test_deleted_transactions_older_than_the_reread_window_are_removed(svc: Services) -> None:
    """Pluggy has no removal feed: without the webhook a row deleted long after it was booked would stay forever."""
    connection_id, item_id = connect(svc)
    registry.emulator("pluggy", svc.settings).advance(days=2)  # later syncs read what is new, plus the last 14 days
    assert svc.sync.sync_connection(connection_id).outcome == "success"
    with svc.engine.connect() as conn:
        old = conn.execute(sa.text("SELECT external_id FROM transactions WHERE booked_date < current_date - 60 "
                                   "ORDER BY booked_date LIMIT 2")).scalars().all()
        total = conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar_one()
    assert len(old) == 2
    worker = Worker(svc, interval=None, debounce=0.0)
    receiver = WebhookReceiver(svc, worker)
    receiver.receive("pluggy", SECRET, body("transactions/deleted", "d1", item_id, accountId="a", clientId="c",
                                            transactionIds=old, transactionsCount=2), None)
    assert worker.run_until_idle() == 1
    with svc.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar_one() == total - 2
        left = conn.execute(sa.text("SELECT COUNT(*) FROM transactions WHERE external_id IN :ids")
                            .bindparams(sa.bindparam("ids", expanding=True)), {"ids": old}).scalar_one()
        detail = conn.execute(sa.text("SELECT detail FROM webhook_events")).scalar_one()
    assert left == 0 and "2 removed" in detail


def test_removals_whose_sync_failed_go_with_the_next_sync(svc: Services) -> None:
    _, item_id = connect(svc)
    stub = StubSync(["failed", "success"])
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0)
    receiver = WebhookReceiver(svc, worker)
    receiver.receive("pluggy", SECRET, body("transactions/deleted", "d1", item_id, transactionIds=["t1", "t2"]),
                     None)
    worker.run_until_idle()
    receiver.receive("pluggy", SECRET, body("item/updated", "u1", item_id), None)
    worker.run_until_idle()
    assert [c["removed"] for c in stub.calls] == [["t1", "t2"], ["t1", "t2"]]
    assert outcomes(svc) == {"failed": 1, "processed": 1}


def test_events_for_unknown_or_disconnected_items_are_recorded_and_ignored(svc: Services) -> None:
    connection_id, item_id = connect(svc)
    stub = StubSync()
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0)
    receiver = WebhookReceiver(svc, worker)
    receiver.receive("pluggy", SECRET, body("item/updated", "e1", "not-ours"), None)
    svc.sync.delete_connection(connection_id, keep_history=True)
    receiver.receive("pluggy", SECRET, body("item/updated", "e2", item_id), None)
    receiver.receive("pluggy", SECRET, json.dumps({"event": "connector/status_updated", "eventId": "c1", "id": "0",
                                                   "connectorId": 0, "data": {"status": "UNSTABLE"}}).encode(), None)
    assert worker.run_until_idle() == 0 and stub.calls == []
    with svc.engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, outcome || ': ' || detail FROM webhook_events")).all())
    assert rows == {"pluggy:e1": "ignored: not a connection of this app: ignored",
                    "pluggy:e2": "ignored: the connection is disconnected here: ignored",
                    "pluggy:c1": "processed: connector 0 is UNSTABLE"}


def test_a_new_connection_is_left_to_its_first_sync(svc: Services) -> None:
    provider = svc.providers["pluggy"]
    state = provider.wait_until_settled(provider.create_connection("0", {"user": "user-ok",
                                                                         "password": "password-ok"}).external_id)
    svc.sync.register(state)  # registered, first sync not run yet: the connect flow is about to run it
    stub = StubSync()
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0)
    WebhookReceiver(svc, worker).receive("pluggy", SECRET, body("item/updated", "e1", state.external_id), None)
    assert worker.run_until_idle() == 0 and outcomes(svc) == {"ignored": 1}


def test_events_a_stop_left_queued_are_processed_at_the_next_start(svc: Services) -> None:
    _, item_id = connect(svc)
    WebhookReceiver(svc, None).receive("pluggy", SECRET, body("item/updated", "left", item_id), None)
    assert outcomes(svc) == {"queued": 1}
    stub = StubSync()
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=None, debounce=0.0, register=False)
    worker._startup()
    assert worker.run_until_idle() == 1 and outcomes(svc) == {"processed": 1}


# -- consent lifecycle through the worker, on the real emulator and sync engine ---------------------------------------

def test_a_login_error_pauses_the_schedule_and_a_reconnect_resumes_it(svc: Services) -> None:
    connection_id, item_id = connect(svc)
    assert register_webhooks(svc)[0].startswith("Pluggy: webhook http://127.0.0.1:9/webhooks/pluggy registered")
    emulator = registry.emulator("pluggy", svc.settings)
    clock = [datetime.now(UTC)]
    worker = Worker(svc, interval=timedelta(hours=6), debounce=0.0, now=lambda: clock[0])
    receiver = WebhookReceiver(svc, worker)

    def deliver() -> None:
        for entry in emulator.pending_webhooks():
            assert receiver.receive("pluggy", entry["headers"], entry["body"].encode(), None).status == 200
        emulator._outbox.clear()

    emulator.set_item_status(item_id, "LOGIN_ERROR", "ERROR", "INVALID_CREDENTIALS")
    deliver()
    worker.run_until_idle()
    assert status_of(svc, connection_id)[0] == ConnectionStatus.NEEDS_RECONNECT.value

    clock[0] += timedelta(hours=7)
    worker.check_schedule()
    assert worker.snapshot().paused == (connection_id,) and worker.run_until_idle() == 0

    provider = svc.providers["pluggy"]  # the user reconnects (update mode), the connect flow re-registers
    state = provider.wait_until_settled(provider.reconnect(item_id, {"user": "user-ok",
                                                                    "password": "password-ok"}).external_id)
    svc.sync.register(state)
    assert svc.sync.sync_connection(connection_id, trigger="connect").outcome == "success"
    assert status_of(svc, connection_id) == (ConnectionStatus.ACTIVE.value, None)
    clock[0] += timedelta(hours=7)
    worker.check_schedule()
    assert worker.snapshot().paused == () and worker.run_until_idle() == 1
    with svc.engine.connect() as conn:
        triggers = conn.execute(sa.text("SELECT trigger, outcome FROM sync_runs ORDER BY started_at")).all()
    assert [tuple(t) for t in triggers][-1] == (SCHEDULE, "success")
    assert (WEBHOOK, "failed") in [tuple(t) for t in triggers]  # the item/error's sync confirmed it


def test_scheduled_syncs_follow_the_interval_but_never_below_the_providers_minimum(svc: Services) -> None:
    connection_id, _ = connect(svc)
    assert svc.providers["pluggy"].min_sync_interval() == timedelta(hours=8)  # Pluggy's data changes no faster
    clock = [datetime.now(UTC)]
    stub = StubSync()
    worker = Worker(dataclasses.replace(svc, sync=stub), interval=timedelta(hours=6), now=lambda: clock[0])
    worker.check_schedule()
    assert worker.run_until_idle() == 0
    assert connection_id in worker.snapshot().next_runs
    clock[0] += timedelta(hours=6, minutes=1)
    worker.check_schedule()
    assert worker.run_until_idle() == 0 and stub.calls == []  # 6 h is below Pluggy's 8 h
    clock[0] += timedelta(hours=2)
    worker.check_schedule()
    worker.check_schedule()  # checking twice queues it once
    assert worker.run_until_idle() == 1 and stub.calls[0]["trigger"] == SCHEDULE
    worker.check_schedule()  # the stub recorded nothing: the worker still waits a whole interval
    assert worker.run_until_idle() == 0
    off = Worker(dataclasses.replace(svc, sync=stub), interval=None, now=lambda: clock[0] + timedelta(days=30))
    off.check_schedule()
    assert off.run_until_idle() == 0 and off.snapshot().next_runs == {}


def test_plaid_pending_disconnect_is_remembered_until_the_user_reconnects(svc: Services) -> None:
    plaid = svc.providers["plaid"]
    state = plaid.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
    connection_id = svc.sync.register(state)
    assert svc.sync.sync_connection(connection_id).outcome == "success"
    worker = Worker(svc, interval=None, debounce=0.0)
    when = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    payload = {"webhook_type": "ITEM", "webhook_code": "PENDING_DISCONNECT", "item_id": state.external_id,
               "reason": "INSTITUTION_TOKEN_EXPIRATION", "disconnect_time": when, "environment": "sandbox"}
    from finance.store import webhook_events

    webhook_events.record_event(svc.engine, id="plaid:pd", provider="plaid",
                                event_type="ITEM/PENDING_DISCONNECT", item_id=state.external_id,
                                received_at=datetime.now(UTC), payload=payload)
    worker.submit("plaid:pd")
    worker.run_until_idle()
    assert status_of(svc, connection_id) == ("active", "PENDING_DISCONNECT")
    assert svc.sync.sync_connection(connection_id).outcome == "success"  # a re-read does not forget it
    assert status_of(svc, connection_id)[1] == "PENDING_DISCONNECT"
    svc.sync.register(plaid.connection_state(state.external_id))  # reconnecting answers it
    assert status_of(svc, connection_id)[1] is None


def test_a_write_that_lost_a_race_is_tried_again() -> None:
    from finance.worker import _retrying

    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError("UPDATE connections", {}, Exception("TransactionContext Error: Conflict"))
        return "done"

    assert _retrying(write, pause=0.0) == "done" and len(calls) == 3

    def broken() -> None:
        raise sa.exc.OperationalError("UPDATE connections", {}, Exception("disk full"))

    with pytest.raises(sa.exc.OperationalError):
        _retrying(broken, pause=0.0)
