"""Connection health (every case), the status read, open errors, the runs table and the timeline figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from finance import health
from finance.health import ATTENTION, CONNECTED, FAILED, SYNCING, Health, connection_health
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.store.sync_runs import read_status
from finance.sync import SyncEngine
from tests.conftest import connect

pytestmark = pytest.mark.engines

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def conn(**values: Any) -> dict[str, Any]:
    row = {"status": "active", "status_detail": None, "error_code": None, "consent_expires_at": None,
           "last_success_at": NOW - timedelta(hours=3)}
    return row | values


def run(outcome: str = "success", ago: timedelta = timedelta(hours=3), **values: Any) -> dict[str, Any]:
    return {"trigger": "manual", "started_at": NOW - ago, "outcome": outcome, "error_code": None,
            "message": None} | values


def check(h: Health, level: str, label: str, action: str = "") -> None:
    assert (h.level, h.label) == (level, label), h
    assert action in h.action, h.action


def test_connected():
    h = connection_health(conn(), [run()], NOW)
    check(h, CONNECTED, "Connected")
    assert h.action == "" and "3 h ago" in h.reason
    assert (h.level_label, h.color) == ("Connected", "green")


def test_syncing_while_a_run_is_running():
    h = connection_health(conn(), [run(), run("running", timedelta(minutes=2), trigger="webhook")], NOW)
    check(h, SYNCING, "Syncing", "Nothing to do")
    assert "webhook sync started 2 min ago" in h.reason
    assert (h.level_label, h.color) == ("Syncing", "blue")


def test_syncing_when_the_bank_is_updating():
    check(connection_health(conn(status="syncing"), [], NOW), SYNCING, "Syncing")


def test_a_run_that_never_finished_needs_attention():
    h = connection_health(conn(), [run("running", timedelta(hours=2))], NOW)
    check(h, ATTENTION, "Sync interrupted", "press Sync now on Connections")
    assert "never finished" in h.reason


def test_needs_reconnect():
    h = connection_health(conn(status="needs_reconnect", status_detail="The bank rejected the password."),
                          [run("failed", error_code="INVALID_CREDENTIALS")], NOW)
    check(h, ATTENTION, "Reconnect needed", "Reconnect")
    assert h.reason == "The bank rejected the password."
    assert (h.level_label, h.color) == ("Needs attention", "orange")


def test_needs_input():
    check(connection_health(conn(status="needs_input"), [], NOW), ATTENTION, "Needs your input", "Reconnect")


def test_revoked():
    h = connection_health(conn(status="revoked", status_detail="Disconnected; history kept."), [run()], NOW)
    check(h, ATTENTION, "Disconnected", "Connect the bank again")
    assert h.reason == "Disconnected; history kept."


def test_consent_expired_even_while_status_says_active():
    h = connection_health(conn(consent_expires_at=NOW - timedelta(days=1)), [run()], NOW)
    check(h, ATTENTION, "Consent expired", "Reconnect")
    assert "2026-11-01" in h.reason


@pytest.mark.parametrize("row", [
    conn(consent_expires_at=NOW + timedelta(days=5)),
    conn(status="consent_expiring", consent_expires_at=NOW + timedelta(days=30)),
])
def test_consent_expiring(row: dict[str, Any]):
    check(connection_health(row, [run()], NOW), ATTENTION, "Consent expiring", "Reconnect")


def test_consent_far_away_is_fine():
    check(connection_health(conn(consent_expires_at=NOW + timedelta(days=60)), [run()], NOW), CONNECTED, "Connected")


@pytest.mark.parametrize("code", ["HTTP_500", "TIMEOUT", "RATE_LIMITED", "MALFORMED_RESPONSE", "INSTITUTION_DOWN",
                                  "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION", None])
def test_failed_transient(code: str | None):
    h = connection_health(conn(), [run(), run("failed", timedelta(minutes=5), error_code=code,
                                              message="Pluggy had a server error (HTTP 500).")], NOW)
    check(h, FAILED, "Sync failed", "Will retry on the next sync; press Sync now on Connections")
    assert h.reason == "Pluggy had a server error (HTTP 500)."
    assert (h.level_label, h.color) == ("Failed", "red")


def test_failed_run_that_needs_a_new_login():
    h = connection_health(conn(), [run("failed", error_code="ITEM_LOGIN_REQUIRED")], NOW)
    check(h, ATTENTION, "Reconnect needed", "Reconnect")


@pytest.mark.parametrize(("code", "action"), [
    ("NO_CREDENTIALS", "client id and secret"),
    ("NO_PROVIDER", "client id and secret"),
    ("INVALID_API_KEYS", "client id and secret"),
    ("INTERNAL", "server logs"),
    ("ITEM_NOT_FOUND", "connect the bank again"),
    ("NOT_FOUND", "delete it on Connections"),
])
def test_failed_with_a_specific_fix(code: str, action: str):
    check(connection_health(conn(), [run("failed", error_code=code)], NOW), FAILED, "Sync failed", action)


def test_failed_status_without_runs():
    h = connection_health(conn(status="failed", status_detail="The bank is down.", error_code="OUTDATED"), [], NOW)
    check(h, FAILED, "Sync failed", "Will retry on the next sync")
    assert h.reason == "The bank is down."


def test_a_success_after_a_failure_clears_it():
    runs = [run("failed", timedelta(hours=5), error_code="HTTP_500"), run("success", timedelta(hours=1))]
    check(connection_health(conn(), runs, NOW), CONNECTED, "Connected")


def test_never_synced():
    h = connection_health(conn(last_success_at=None), [], NOW)
    check(h, ATTENTION, "Never synced", "press Sync now on Connections")


def test_stale_data_after_two_days():
    h = connection_health(conn(last_success_at=NOW - timedelta(days=3)), [run(ago=timedelta(days=3))], NOW)
    check(h, ATTENTION, "Data is stale", "Sync now")
    assert "3 days ago" in h.reason
    fresh = conn(last_success_at=NOW - timedelta(days=2) + timedelta(minutes=1))
    check(connection_health(fresh, [run()], NOW), CONNECTED, "Connected")


def test_precedence_syncing_over_reconnect_over_failure():
    running = run("running", timedelta(minutes=1))
    check(connection_health(conn(status="needs_reconnect"), [running], NOW), SYNCING, "Syncing")
    expired = conn(status="needs_reconnect", consent_expires_at=NOW - timedelta(days=2))
    check(connection_health(expired, [run("failed", error_code="HTTP_500")], NOW), ATTENTION, "Consent expired")


def test_pandas_values_naive_times_and_missing_values():
    row = {"status": "active", "status_detail": float("nan"), "error_code": None, "consent_expires_at": pd.NaT,
           "last_success_at": pd.Timestamp("2026-11-02 12:00")}  # naive: read as UTC
    runs = [{"trigger": "schedule", "started_at": pd.Timestamp("2026-11-02 12:00", tz="UTC"), "outcome": "success",
             "error_code": float("nan"), "message": None}]
    check(connection_health(row, runs, NOW.replace(tzinfo=None)), CONNECTED, "Connected")


def test_format_age():
    assert health.format_age(timedelta(minutes=5)) == "5 min"
    assert health.format_age(timedelta(hours=30)) == "30 h"
    assert health.format_age(timedelta(days=4)) == "4 days"
    assert health.format_age(timedelta(seconds=-5)) == "under a minute"


def runs_frame() -> pd.DataFrame:
    rows = [
        {"connection_id": "a", "institution": "Bank A", "trigger": "manual", "started_at": NOW - timedelta(hours=h),
         "duration_ms": 1500, "outcome": outcome, "added": 1, "modified": 0, "removed": 0, "merged": 0,
         "requests": 4, "error_code": code, "message": msg}
        for h, outcome, code, msg in [(1, "failed", "HTTP_503", "Down."), (2, "failed", "TIMEOUT", None),
                                      (3, "success", None, "Synced."), (4, "failed", "HTTP_500", "Old.")]
    ] + [{"connection_id": "b", "institution": "Bank B", "trigger": "connect", "started_at": NOW,
          "duration_ms": None, "outcome": "running", "added": 0, "modified": 0, "removed": 0, "merged": 0,
          "requests": 0, "error_code": None, "message": None}]
    return pd.DataFrame(rows)


def test_open_errors_are_failures_since_the_last_success():
    errors = health.open_errors(runs_frame())
    assert [(e.institution, e.error_code) for e in errors] == [("Bank A", "HTTP_503"), ("Bank A", "TIMEOUT")]
    assert errors[0].action == health.RETRY and errors[0].message == "Down."
    assert errors[1].message == "The sync failed."
    assert health.open_errors(runs_frame().iloc[0:0]) == []


def test_runs_table_and_timeline():
    frame = runs_frame()
    table = health.runs_table(frame)
    assert list(table.columns) == ["Connection", "Trigger", "Started", "Duration (s)", "Added", "Modified",
                                   "Removed", "Merged", "Requests", "Outcome", "Message"]
    assert table["Duration (s)"].iloc[0] == 1.5 and pd.isna(table["Duration (s)"].iloc[4])
    fig = health.timeline_figure(frame)
    assert [t.name for t in fig.data] == ["Success", "Failed", "Running"]
    assert len(fig.data[1].x) == 3 and list(fig.data[1].y) == [1.5, 1.5, 1.5]
    assert fig.data[1].marker.color == health.OUTCOME_COLORS["failed"]
    assert health.timeline_figure(frame.iloc[0:0]).data == ()


def test_read_status_from_a_synced_store(engine: sa.Engine, provider: PluggyProvider, sync: SyncEngine,
                                         emulator: PluggyEmulator):
    connection_id = connect(provider, sync)
    sync.sync_connection(connection_id, trigger="connect")
    emulator.clock.advance(minutes=10)
    emulator.faults.add("server_error", path="/v2/transactions", times=-1)
    failed = sync.sync_connection(connection_id)
    assert failed.outcome == "failed"

    with engine.connect() as conn_:
        data = read_status(conn_)

    assert data.connections["id"].tolist() == [connection_id]
    assert "encrypted_secret" not in data.connections.columns
    assert data.runs["outcome"].tolist() == ["failed", "success"]
    assert data.runs["institution"].tolist() == ["Pluggy Bank", "Pluggy Bank"]
    h = health.health_by_connection(data, emulator.clock.now())[connection_id]
    check(h, FAILED, "Sync failed", "Will retry on the next sync; press Sync now on Connections")
    [error] = health.open_errors(data.runs)
    assert error.error_code == failed.error_code and "server error" in error.message

    emulator.faults.clear()
    emulator.clock.advance(minutes=10)
    sync.sync_connection(connection_id)
    with engine.connect() as conn_:
        data = read_status(conn_, limit=1, per_connection=2)
    assert len(data.runs) == 2
    check(health.health_by_connection(data, emulator.clock.now())[connection_id], CONNECTED, "Connected")
