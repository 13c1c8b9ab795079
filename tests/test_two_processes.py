"""Two processes triggering the same connection at once run one sync (issue 14, part 5), on both engines.

The first process is frozen (SIGSTOP) in the middle of its sync, holding the connection: whatever the others try
while it is frozen must not start a second sync of it. On DuckDB the file lock keeps every other process out; on
PostgreSQL the connection's advisory lock (the CLI, the app) and the job lock (workers) do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from finance import jobs
from finance.errors import DatabaseBusy
from finance.services import Services, open_services
from finance.store import jobs as job_tables
from tests.test_store_faults import _env, _set_up

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[1]


def _connection_id() -> str:
    services = open_services()
    try:
        with services.engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT id FROM connections")).scalar_one())
    finally:
        services.engine.dispose()


@pytest.fixture
def frozen_sync(offline: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m finance sync` of the one connection (its first: a year of rows), stopped mid-sync."""
    _set_up(1, synced=False)
    connection_id = _connection_id()
    process = subprocess.Popen([sys.executable, "-m", "finance", "sync", "--connection", connection_id], cwd=REPO,
                               env=_env(offline), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        seen = b""
        while b"Checking the connection" not in seen:  # drawn once its run's row is in the store
            chunk = process.stdout.read1(256)
            assert chunk, seen.decode()
            seen += chunk
        process.send_signal(signal.SIGSTOP)
        yield process, connection_id
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]


def _finish(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGCONT)
    assert process.wait(timeout=120) == 0
    assert process.stdout is not None
    return process.stdout.read().decode()


def _runs(services: Services, connection_id: str) -> list[sa.Row]:
    with services.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT outcome, started_at, finished_at FROM sync_runs "
                                         "WHERE connection_id = :c ORDER BY started_at"), {"c": connection_id}))


def test_the_cli_and_the_app_syncing_one_connection_at_once_run_one_sync(frozen_sync, offline, db_kind):
    first, connection_id = frozen_sync
    second = subprocess.run([sys.executable, "-m", "finance", "sync", "--connection", connection_id], cwd=REPO,
                            env=_env(offline), capture_output=True, text=True, timeout=120, check=False)
    if db_kind == "duckdb":  # the frozen process holds the file: nobody else can even open it
        assert second.returncode == 2 and "in use by another process" in second.stderr
        with pytest.raises(DatabaseBusy):
            open_services()
        tried = 2
    else:
        assert second.returncode == 0, second.stderr
        assert f"{connection_id}: Skipped — A sync of this connection is already running." in second.stdout
        app = open_services()  # the app's Sync now, in this process
        try:
            assert app.sync.sync_connection(connection_id, trigger="manual").outcome == "skipped"
        finally:
            app.engine.dispose()
        tried = 3
    assert ": Success — " in _finish(first)
    services = open_services()
    try:
        runs = _runs(services, connection_id)
    finally:
        services.engine.dispose()
    assert [r.outcome for r in runs] == ["success"]
    print(f"\n{db_kind}: {tried} processes triggered one connection at once: 1 sync ran")


def _worker(offline: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "finance", "worker", "--concurrency", "2"], cwd=REPO,
                            env=_env(offline), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(what: str, check: object, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_two_workers_never_sync_one_connection_at_once(offline, db_kind):
    if db_kind == "duckdb":
        pytest.skip("DuckDB runs background work inside the app process: there are no worker processes")
    from tests.test_jobs import queue_services

    services = queue_services(os.environ["FINANCE_DATABASE_URL"], offline)
    _set_up(1, synced=False)
    connection_id = _connection_id()
    queue = jobs.JobQueue(services).open()
    workers = [_worker(offline), _worker(offline)]
    try:
        _wait("two workers", lambda: _counts(services).workers == 2)
        assert queue.request_sync(connection_id, jobs.WEBHOOK)
        _wait("a running sync", lambda: [r.outcome for r in _runs(services, connection_id)] == ["running"])
        with services.engine.connect() as conn:
            owner = conn.execute(sa.text("SELECT process FROM sync_runs WHERE outcome = 'running'")).scalar_one()
        busy = next(w for w in workers if f"/{w.pid}/" in owner)
        busy.send_signal(signal.SIGSTOP)  # frozen mid-sync, its job still "doing"
        try:
            requests = [queue.request_sync(connection_id, jobs.WEBHOOK) for _ in range(5)]
            assert requests == [True, False, False, False, False]  # one waits; the others join it
            time.sleep(3)  # the idle worker polls every second: it must leave the waiting job alone
            assert [r.outcome for r in _runs(services, connection_id)] == ["running"]
            assert (_counts(services).waiting, _counts(services).running) == (1, 1)
        finally:
            busy.send_signal(signal.SIGCONT)
        _wait("the queue to drain", lambda: (_counts(services).waiting, _counts(services).running) == (0, 0))
        runs = _runs(services, connection_id)
    finally:
        queue.close()
        for worker in workers:
            worker.send_signal(signal.SIGCONT)
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        services.engine.dispose()
    assert [r.outcome for r in runs] == ["success", "success"]
    assert runs[0].finished_at <= runs[1].started_at  # one after the other, never side by side
    print("\npostgresql: 6 sync requests for one connection from two workers' queue while one sync ran: "
          "1 ran, 1 waited and ran after it")


def _counts(services: Services) -> job_tables.QueueCounts:
    with services.engine.connect() as conn:
        return job_tables.queue_counts(conn)
