"""Issue 16: the CLI while the app runs. The app's worker and control server run in this process on a DuckDB store
(so no other process can open it); `python -m finance sync|connect|status|query|export` run as subprocesses and go
through the app or read its snapshot. Attacks: forged and missing tokens, browsers, foreign Host names, big bodies,
a leaked control file."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from finance import control, worker
from finance.cli import main
from finance.config import load_settings
from finance.providers import registry
from finance.services import Services, open_services
from tests.conftest import OFFLINE_UNSET

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(offline: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Services]:
    """A connected Pluggy Bank, then the app's background work (worker, control server) running on the store."""
    assert main(["connect", "--institution", "0", "--user", "user-ok", "--password", "password-ok"]) == 0
    capsys.readouterr()
    services = open_services(load_settings())
    worker.start_background(services)
    try:
        yield services
    finally:
        worker.stop_background()
        services.engine.dispose()


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_UNSET}
    env.update(FINANCE_DATA_DIR=str(folder), FINANCE_SANDBOX_SETTLE_SECONDS="0", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "finance", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=REPO)


def count(services: Services, sql: str) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar() or 0)


@pytest.mark.slow
def test_the_cli_syncs_connects_and_reads_through_the_running_app(app, offline):
    control_file = control.control_path(offline)
    assert control_file.stat().st_mode & 0o777 == 0o600

    advanced = cli(offline, "sandbox", "advance", "--days", "3")
    assert advanced.returncode == 0, advanced.stderr
    before = count(app, "SELECT COUNT(*) FROM transactions")
    synced = cli(offline, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "The app is running" in synced.stdout and ": Success — " in synced.stdout and "new" in synced.stdout
    assert "stop the app" not in synced.stdout + synced.stderr
    after = count(app, "SELECT COUNT(*) FROM transactions")
    assert after > before
    assert count(app, "SELECT COUNT(*) FROM sync_runs WHERE trigger = 'cli' AND outcome = 'success'") == 1

    queried = cli(offline, "query", "SELECT COUNT(*) AS n FROM transactions", "--format", "json")
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout) == [{"n": after}]  # the snapshot the app rewrote after the sync
    exported = cli(offline, "export", "transactions")
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == after + 1
    status = cli(offline, "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"Pluggy Bank \[pluggy\] Connected — \d+ accounts", status.stdout)

    bank = registry.kit("plaid").sandbox_bank
    connected = cli(offline, "connect", "--provider", "plaid", "--institution", bank.institution_id,
                    "--user", bank.credentials["username"], "--password", bank.credentials["password"])
    assert connected.returncode == 0, connected.stdout + connected.stderr
    assert f"Connected {bank.name}" in connected.stdout and "Synced" in connected.stdout
    shown = app.connections.status()  # what the Connections page shows
    assert set(shown["institution_name"]) == {"Pluggy Bank", bank.name}
    assert worker.current() is not None and worker.current().snapshot().data_version > 0


def test_a_connect_prompt_is_answered_from_the_terminal(app, offline):
    asked: list[tuple[str, bool]] = []
    running = control.running_app(offline)
    assert running is not None and running.token not in repr(running)

    def ask(prompt: str, secret: bool) -> str:
        asked.append((prompt, secret))
        return "123456"

    lines: list[str] = []
    code = control.run_job(running, "connect", {"provider": "pluggy", "institution": "0", "user": "user-ok-mfa",
                                                "password": "password-ok", "unknown": "ignored"},
                           say=lines.append, progress=lambda _label, _fraction: None, ask=ask)
    assert code == 0, lines
    assert len(asked) == 1 and not asked[0][1]
    assert any(line.startswith("Connected Pluggy Bank") for line in lines)


def _post(app_url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    port = int(app_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_the_control_server_refuses_forged_tokens_browsers_and_junk(app, offline):
    """Attack: without the exact token, from a web page (Origin), under a foreign Host name (DNS rebinding), with a
    huge body or an unknown job, nothing runs."""
    running = control.running_app(offline)
    assert running is not None
    job = json.dumps({"op": "sync", "args": {}}).encode()
    good = {"Authorization": f"Bearer {running.token}", "Content-Type": "application/json"}
    forged = "A" * len(running.token)
    runs = count(app, "SELECT COUNT(*) FROM sync_runs")
    for headers, status in [
        ({}, 401),
        ({"Authorization": f"Bearer {forged}"}, 401),
        ({"Authorization": f"Bearer {running.token[:-1]}"}, 401),
        ({"Authorization": running.token[:8]}, 401),
        ({**good, "Origin": "http://127.0.0.1:8501"}, 403),
        ({**good, "Host": "evil.example:80"}, 403),
    ]:
        assert _post(running.url, "/v1/jobs", job, headers)[0] == status, headers
    assert _post(running.url, "/v1/jobs", b"x" * (control.MAX_BODY_BYTES + 1), good)[0] == 413
    assert _post(running.url, "/v1/jobs", b"[1, 2]", good)[0] == 400
    assert _post(running.url, "/v1/jobs", json.dumps({"op": "shell", "args": {}}).encode(), good)[0] == 400
    assert _post(running.url, "/v1/jobs", json.dumps({"op": "sync", "args": {"connection": 5}}).encode(),
                 good)[0] == 400
    assert _post(running.url, "/v1/jobs/nope/answer", b'{"answer": "1"}', good)[0] == 404
    assert _post(running.url, "/v1/admin", b"{}", good)[0] == 404
    assert count(app, "SELECT COUNT(*) FROM sync_runs") == runs

    forged_app = control.RunningApp(running.url, forged, running.pid)
    with pytest.raises(control.ControlError, match="token"):
        control.run_job(forged_app, "sync", {}, say=print, progress=lambda *_: None, ask=lambda *_: "")


def test_a_leaked_or_stale_control_file_is_not_used(offline):
    path = control.control_path(offline)
    control.write_control_file(path, control.RunningApp("http://127.0.0.1:9", "t" * 43, os.getpid()))
    assert control.running_app(offline) == control.RunningApp("http://127.0.0.1:9", "t" * 43, os.getpid())
    path.chmod(0o644)
    with pytest.raises(control.ControlError, match="other users"):
        control.running_app(offline)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    control.write_control_file(path, control.RunningApp("http://127.0.0.1:9", "t" * 43, int(dead.stdout)))
    assert control.running_app(offline) is None  # the app that wrote it is gone: the CLI opens the store itself
    control.write_control_file(path, control.RunningApp("http://10.0.0.1:9", "t" * 43, os.getpid()))
    assert control.running_app(offline) is None  # never anything but loopback


def test_stopping_the_app_removes_its_control_file(offline):
    services = open_services(load_settings())
    try:
        worker.start_background(services)
        assert control.running_app(offline) is not None
        assert (offline / "analytics.duckdb").is_file()  # the snapshot exists from the start
    finally:
        worker.stop_background()
        services.engine.dispose()
    assert not control.control_path(offline).exists()


def test_the_snapshot_follows_the_workers_and_the_pages_syncs(app, offline):
    """A webhook's or the schedule's sync (the worker) and a page's Sync now both rewrite the snapshot."""
    from finance import analytics

    def snapshot_count() -> int:
        con = analytics.connect(analytics.snapshot_path(offline))
        try:
            return int(con.execute("SELECT COUNT(*) FROM transactions").fetchall()[0][0])
        finally:
            con.close()

    connection_id = str(app.connections.status()["id"].iloc[0])
    assert cli(offline, "sandbox", "advance", "--days", "4").returncode == 0
    running = worker.current()
    assert running is not None
    running.request_sync(connection_id, worker.WEBHOOK, delay=0.0)
    deadline = time.monotonic() + 120
    while snapshot_count() != count(app, "SELECT COUNT(*) FROM transactions") or count(
            app, "SELECT COUNT(*) FROM sync_runs WHERE trigger = 'webhook'") == 0:
        assert time.monotonic() < deadline, "the worker's sync did not reach the snapshot"
        time.sleep(0.2)

    assert cli(offline, "sandbox", "advance", "--days", "4").returncode == 0
    result = app.connections.sync(connection_id, trigger="manual")
    assert result.outcome == "success" and result.counts.added > 0
    assert snapshot_count() == count(app, "SELECT COUNT(*) FROM transactions")
