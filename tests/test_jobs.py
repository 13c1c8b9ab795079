"""Background work on a PostgreSQL store through the job queue (issue 14, part 4): webhook routes enqueue, workers
sync; events coalesce; one sync per connection across processes; retries with backoff; the reaper; scheduled
syncs that respect the provider's refresh interval; the Sync status page's queue; `python -m finance worker`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from finance import jobs
from finance.config import load_settings
from finance.formatting import escape_markdown
from finance.providers import registry
from finance.services import Services, open_services
from finance.store import jobs as job_tables
from finance.store import locks, migrate, webhook_events
from finance.store.db import create_engine
from finance.sync import INTERRUPTED_MESSAGE, sync_lock_name
from finance.webhooks import WebhookReceiver
from tests.conftest import connect, upgraded

REPO = Path(__file__).resolve().parents[1]
SECRET = "queue-test-secret"


def queue_services(url: str, data_dir: Path, **extra: str) -> Services:
    """Services on a PostgreSQL store after `db upgrade` (which creates the job queue), offline sandbox banks in
    `data_dir`."""
    settings = load_settings({"FINANCE_DATA_DIR": str(data_dir), "FINANCE_DATABASE_URL": upgraded(url),
                              "FINANCE_SANDBOX_SETTLE_SECONDS": "0", "FINANCE_WEBHOOK_SECRET": SECRET, **extra},
                             secrets_file=data_dir / "none.toml")
    return open_services(settings)


@pytest.fixture
def svc(postgres_server, tmp_path: Path) -> Iterator[Services]:
    services = queue_services(postgres_server(), tmp_path)
    yield services
    services.engine.dispose()


@pytest.fixture
def queue(svc: Services) -> Iterator[jobs.JobQueue]:
    opened = jobs.JobQueue(svc).open()
    yield opened
    opened.close()


def synced_connection(svc: Services) -> tuple[str, str]:
    """Pluggy Bank connected and synced once: (connection id, item id)."""
    connection_id = connect(svc.providers["pluggy"], svc.sync)  # type: ignore[arg-type]
    assert svc.sync.sync_connection(connection_id, trigger="connect").outcome == "success"
    with svc.engine.connect() as conn:
        item = conn.execute(sa.text("SELECT external_id FROM connections WHERE id = :c"), {"c": connection_id})
        return connection_id, item.scalar_one()


def deliver(receiver: WebhookReceiver, event: str, event_id: str, item_id: str, **extra: object) -> int:
    body = json.dumps({"event": event, "eventId": event_id, "itemId": item_id, **extra}).encode()
    return receiver.receive("pluggy", {"X-Webhook-Secret": SECRET}, body, None).status


def run_jobs(queue: jobs.JobQueue) -> None:
    """Run every job that is due, in this process, until none is left (a worker with wait=False)."""
    queue.app.run_worker(queues=[jobs.QUEUE], wait=False, concurrency=1, install_signal_handlers=False,
                         listen_notify=False)


async def reap(queue: jobs.JobQueue) -> None:
    """One run of the reaper, as the worker's periodic job runs it (on the worker's async pool)."""
    async with queue.app.open_async():
        await queue.reap()


def take_waiting_sync(svc: Services) -> None:
    """Take the waiting sync job off the queue (the test then runs the sync itself, as the job would)."""
    with svc.engine.begin() as conn:
        conn.execute(sa.text("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE status = 'todo' "
                             "AND task_name = 'finance.sync'"))


def runs(svc: Services, trigger: str | None = None) -> list[sa.Row]:
    with svc.engine.connect() as conn:
        query = "SELECT trigger, outcome, started_at, finished_at, error_code FROM sync_runs"
        rows = conn.execute(sa.text(query + (" WHERE trigger = :t" if trigger else "") + " ORDER BY started_at"),
                            {"t": trigger}).all()
    return list(rows)


def outcomes(svc: Services) -> dict[str, int]:
    with svc.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT outcome, count(*) FROM webhook_events GROUP BY outcome")).all())


def test_webhook_routes_enqueue_and_a_storm_of_events_costs_one_sync(svc: Services, queue: jobs.JobQueue) -> None:
    _connection_id, item_id = synced_connection(svc)
    receiver = WebhookReceiver(svc, jobs.QueueSink(queue))
    assert [deliver(receiver, "transactions/created", f"e-{n}", item_id) for n in range(30)] == [200] * 30
    assert deliver(receiver, "transactions/created", "e-0", item_id) == 200  # a replay: acknowledged, ignored
    with svc.engine.connect() as conn:
        waiting = job_tables.queue_counts(conn)
    assert (waiting.waiting, waiting.running) == (30, 0)  # the route only enqueued: nothing ran in this process
    assert runs(svc, "webhook") == []
    run_jobs(queue)
    assert [(r.trigger, r.outcome) for r in runs(svc, "webhook")] == [("webhook", "success")]
    assert outcomes(svc) == {"processed": 30}
    with svc.engine.connect() as conn:
        assert job_tables.queue_counts(conn).waiting == 0
        assert job_tables.active_syncs(conn) == set()


def test_a_second_request_while_one_waits_joins_it(svc: Services, queue: jobs.JobQueue) -> None:
    assert queue.request_sync("pluggy:x", jobs.WEBHOOK) is True
    assert queue.request_sync("pluggy:x", jobs.SCHEDULE) is False  # coalesced into the waiting one
    assert queue.request_sync("pluggy:y", jobs.WEBHOOK) is True  # another connection queues on its own
    with svc.engine.connect() as conn:
        assert job_tables.active_syncs(conn) == {"pluggy:x", "pluggy:y"}


def test_a_connection_synced_elsewhere_is_tried_again_shortly(svc: Services, queue: jobs.JobQueue) -> None:
    connection_id, _ = synced_connection(svc)
    other = sa.create_engine(svc.engine.url)  # another process's session, holding the connection's sync lock
    try:
        with locks.hold(other, sync_lock_name(connection_id)) as held:
            assert held
            result = queue.sync(connection_id, jobs.WEBHOOK)
            assert result.outcome == "skipped"
            with svc.engine.connect() as conn:
                (job,) = job_tables.queue_counts(conn).jobs
            assert (job.task, job.connection_id, job.status) == (jobs.SYNC, connection_id, "todo")
            assert job.scheduled_at is not None and job.scheduled_at > datetime.now(UTC)
        with svc.engine.begin() as conn:  # due now
            conn.execute(sa.text("UPDATE procrastinate_jobs SET scheduled_at = now()"))
        run_jobs(queue)
        assert [r.outcome for r in runs(svc, "webhook")] == ["success"]
    finally:
        other.dispose()


def test_a_failed_sync_is_retried_with_backoff_and_keeps_the_removals_it_carries(svc: Services,
                                                                               queue: jobs.JobQueue) -> None:
    connection_id, item_id = synced_connection(svc)
    emulator = registry.emulator("pluggy", svc.settings)
    emulator.advance(days=2)  # later syncs reread only the last days: an old row's deletion needs the webhook
    assert svc.sync.sync_connection(connection_id).outcome == "success"
    with svc.engine.connect() as conn:
        victim = conn.execute(sa.text("SELECT external_id FROM transactions WHERE booked_date < current_date - 60 "
                                      "ORDER BY booked_date LIMIT 1")).scalar_one()
    receiver = WebhookReceiver(svc, jobs.QueueSink(queue))
    assert deliver(receiver, "transactions/deleted", "d-1", item_id, transactionIds=[victim]) == 200
    emulator.faults.add("server_error", path="/items", times=-1)
    try:
        queue.apply_event("pluggy:d-1")
        take_waiting_sync(svc)  # as a worker does: the job runs, it no longer waits
        with pytest.raises(jobs.SyncFailed):
            queue.sync(connection_id, jobs.WEBHOOK)
    finally:
        emulator.faults.clear()
    assert outcomes(svc) == {"queued": 1}  # still waiting: its removal goes with the retry
    with svc.engine.connect() as conn:
        retry = conn.execute(sa.text(
            "SELECT args, scheduled_at FROM procrastinate_jobs WHERE task_name = 'finance.sync' AND status = 'todo' "
            "ORDER BY id DESC LIMIT 1")).one()
    assert retry.args["attempt"] == 1
    assert retry.scheduled_at > datetime.now(UTC) + timedelta(seconds=jobs.BACKOFF[0] - 5)
    take_waiting_sync(svc)
    assert queue.sync(connection_id, jobs.WEBHOOK, attempt=1).outcome == "success"
    assert outcomes(svc) == {"processed": 1}
    with svc.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM transactions WHERE external_id = :e"), {"e": victim})
        assert left.scalar_one() == 0


def test_after_the_last_retry_events_are_answered_but_removals_wait(svc: Services, queue: jobs.JobQueue) -> None:
    connection_id, item_id = synced_connection(svc)
    receiver = WebhookReceiver(svc, jobs.QueueSink(queue))
    assert deliver(receiver, "transactions/created", "c-1", item_id) == 200
    assert deliver(receiver, "transactions/deleted", "d-1", item_id, transactionIds=["nope"]) == 200
    queue.apply_event("pluggy:c-1")
    queue.apply_event("pluggy:d-1")
    take_waiting_sync(svc)
    emulator = registry.emulator("pluggy", svc.settings)
    emulator.faults.add("unavailable", path="/items", times=-1)
    try:
        with pytest.raises(jobs.SyncFailed):
            queue.sync(connection_id, jobs.WEBHOOK, attempt=len(jobs.BACKOFF))
    finally:
        emulator.faults.clear()
    with svc.engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, outcome FROM webhook_events")).all())
        assert job_tables.active_syncs(conn) == set()  # no further retry
        later = datetime.now(UTC) + timedelta(hours=1)
        assert webhook_events.orphaned_events(conn, later) == []  # the reaper does not ask for one either
        assert [e.id for e in webhook_events.awaiting_sync(conn, connection_id)] == ["pluggy:d-1"]  # the next does
    assert rows == {"pluggy:c-1": "failed", "pluggy:d-1": "queued"}


def test_the_reaper_closes_abandoned_runs_and_hands_back_jobs_of_dead_workers(svc: Services,
                                                                             queue: jobs.JobQueue) -> None:
    connection_id, _ = synced_connection(svc)
    now = datetime.now(UTC)
    with svc.engine.begin() as conn:
        for run_id, process in (("abandoned", "another-host/4242/x"), ("alive", "another-host/4343/x")):
            conn.execute(sa.text(
                "INSERT INTO sync_runs (id, connection_id, trigger, started_at, outcome, added, modified, removed, "
                "merged, accounts, requests, process) VALUES (:id, :c, 'webhook', :now, 'running', 0, 0, 0, 0, 0, "
                "0, :p)"), {"id": run_id, "c": connection_id if run_id == "abandoned" else "pluggy:other",
                            "now": now, "p": process})
        worker_id = conn.execute(sa.text(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '5 minutes') RETURNING id"
        )).scalar_one()
    assert queue.request_sync(connection_id, jobs.WEBHOOK)
    with svc.engine.begin() as conn:  # a worker took it, then stopped heartbeating (killed)
        conn.execute(sa.text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w"), {"w": worker_id})
    other = sa.create_engine(svc.engine.url)
    try:
        with locks.hold(other, sync_lock_name("pluggy:other")):  # that sync is alive on another host
            asyncio.run(reap(queue))
    finally:
        other.dispose()
    with svc.engine.connect() as conn:
        states = dict(conn.execute(sa.text("SELECT id, outcome FROM sync_runs WHERE id IN ('abandoned', 'alive')"))
                      .all())
        message = conn.execute(sa.text("SELECT message FROM sync_runs WHERE id = 'abandoned'")).scalar_one()
        jobs_now = conn.execute(sa.text("SELECT status::text, args ->> 'connection_id' FROM procrastinate_jobs "
                                        "ORDER BY id")).all()
    assert states == {"abandoned": "interrupted", "alive": "running"}
    assert message == INTERRUPTED_MESSAGE
    assert [tuple(j) for j in jobs_now] == [("failed", connection_id), ("todo", connection_id)]


def test_scheduled_syncs_never_come_sooner_than_the_provider_refreshes(svc: Services, queue: jobs.JobQueue) -> None:
    connection_id, _ = synced_connection(svc)
    provider = svc.providers["pluggy"]
    assert provider.min_sync_interval() > svc.settings.sync_interval  # 8 h against the default 6 h
    start = datetime.now(UTC)
    assert queue.schedule(start + timedelta(hours=7)) == []
    assert queue.schedule(start + provider.min_sync_interval() + timedelta(minutes=1)) == [connection_id]
    assert queue.schedule(start + timedelta(hours=9)) == []  # already waiting: not twice


def test_sync_status_shows_the_queue_and_warns_without_workers(svc: Services, queue: jobs.JobQueue,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from tests.test_status_explore_pages import app, goto

    connection_id, _ = synced_connection(svc)
    queue.request_sync(connection_id, jobs.WEBHOOK)
    with svc.engine.begin() as conn:  # bank text is hostile: it must show as text in the queue's lines
        conn.execute(sa.text("UPDATE connections SET institution_name = :n"), {"n": "Evil [x](javascript:alert(1))**"})
    monkeypatch.setenv("FINANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINANCE_DATABASE_URL", svc.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FINANCE_SANDBOX_SETTLE_SECONDS", "0")
    at = goto(app(tmp_path), "sync_status")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Waiting": "1", "Running": "0", "Failed (24 h)": "0", "Workers alive": "0"}
    assert any("No worker is running" in w.value for w in at.warning)
    line = next(m.value for m in at.markdown if m.value.startswith("- Waiting: sync of"))
    assert line == f"- Waiting: sync of **{escape_markdown('Evil [x](javascript:alert(1))**')}**"


def test_the_worker_command_runs_jobs_until_terminated(svc: Services, queue: jobs.JobQueue, tmp_path: Path) -> None:
    _connection_id, item_id = synced_connection(svc)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "FINANCE_DATA_DIR": str(tmp_path),
           "FINANCE_DATABASE_URL": svc.engine.url.render_as_string(hide_password=False),
           "FINANCE_SANDBOX_SETTLE_SECONDS": "0", "FINANCE_WEBHOOK_SECRET": SECRET}
    worker = subprocess.Popen([sys.executable, "-m", "finance", "worker", "--concurrency", "2"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert worker.stdout is not None
        assert b"Worker running jobs of" in worker.stdout.readline()
        receiver = WebhookReceiver(svc, jobs.QueueSink(queue))
        assert deliver(receiver, "transactions/created", "w-1", item_id) == 200
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while outcomes(svc) != {"processed": 1} and datetime.now(UTC) < deadline:
            time.sleep(0.2)
        assert outcomes(svc) == {"processed": 1}
        with svc.engine.connect() as conn:
            assert job_tables.queue_counts(conn).workers == 1
    finally:
        worker.terminate()
        assert worker.wait(timeout=60) == 0
        worker.stdout.close()  # type: ignore[union-attr]
    with svc.engine.connect() as conn:
        assert job_tables.queue_counts(conn).workers == 0  # it unregistered on its way out
    assert [r.outcome for r in runs(svc, "webhook")] == ["success"]


def test_the_worker_command_on_duckdb_says_none_is_needed(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "FINANCE_DATA_DIR": str(tmp_path),
           "FINANCE_SANDBOX_SETTLE_SECONDS": "0"}
    done = subprocess.run([sys.executable, "-m", "finance", "worker"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "no worker is needed" in done.stderr


@pytest.mark.engines
def test_db_upgrade_creates_the_queue_on_postgresql_only_and_downgrade_removes_it(database_url, db_kind):
    engine = create_engine(database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert job_tables.has_queue(conn) == (db_kind == "postgresql")
        migrate.upgrade(engine)  # again: nothing to do
        with migrate.without_household(engine).begin() as conn:  # as an administrator would
            command.downgrade(migrate._config(conn), "0002_pg_transaction_indexes")
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT count(*) FROM information_schema.tables "
                                        "WHERE table_name LIKE 'procrastinate%'")).scalar_one()
        assert left == 0 and migrate.current_revision(engine) == "0002_pg_transaction_indexes"
        migrate.upgrade(engine)  # and back
        with engine.connect() as conn:
            assert job_tables.has_queue(conn) == (db_kind == "postgresql")
    finally:
        engine.dispose()


@pytest.mark.parametrize("value", ["0", "-3", "four", "1e9x"])
def test_the_worker_command_refuses_a_concurrency_that_is_not_a_positive_number(value: str,
                                                                                capsys: pytest.CaptureFixture[str]):
    from finance.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["worker", "--concurrency", value])
    assert stopped.value.code == 2
    assert "must be a whole number of at least 1" in capsys.readouterr().err
