"""`python -m finance`: connect (with MFA), sync, status, sandbox advance and sandbox serve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from finance.cli import main
from finance.config import load_settings
from finance.services import open_services
from tests.conftest import connect

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[1]


def test_connect_sync_status_and_advance(offline, capsys):
    assert main(["connect", "--institution", "0", "--user", "user-ok", "--password", "password-ok"]) == 0
    out = capsys.readouterr().out
    assert "Connected Pluggy Bank" in out and "Synced 2 accounts" in out

    assert main(["sync"]) == 0
    assert "Up to date" in capsys.readouterr().out

    assert main(["sandbox", "advance", "--days", "3"]) == 0
    capsys.readouterr()
    assert main(["sync"]) == 0
    assert "new" in capsys.readouterr().out

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "Pluggy Bank [pluggy] active — 4 accounts" in out  # checking, card, investments, financing
    assert "Net worth (BRL): " in out


def test_connect_answers_mfa_from_the_prompt(offline, monkeypatch, capsys):
    answers = iter(["123456"])
    monkeypatch.setattr("finance.cli._ask", lambda prompt, secret=False: next(answers))
    assert main(["connect", "--institution", "0", "--user", "user-ok-mfa", "--password", "password-ok"]) == 0
    assert "Connected" in capsys.readouterr().out


def test_connect_reports_a_wrong_password(offline, capsys):
    assert main(["connect", "--institution", "0", "--user", "user-ok", "--password", "bad"]) == 1
    assert "username or password" in capsys.readouterr().out


def test_sync_with_no_connections_says_how_to_start(offline, capsys):
    assert main(["sync"]) == 0
    assert "python -m finance connect" in capsys.readouterr().out


def test_sandbox_serve_over_loopback(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "finance", "sandbox", "serve", "--provider", "pluggy", "--port", "0",
         "--state", str(tmp_path / "state.json")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        base_url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        response = httpx.post(f"{base_url}/auth", json={"clientId": "a", "clientSecret": "b"}, timeout=5)
        assert response.status_code == 200 and response.json()["apiKey"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def _one_error_line(err: str) -> str:
    """stderr holds one line, an error, and no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_corrupt_store_is_one_clear_line_for_every_command(offline, capsys, db_kind):
    if db_kind != "duckdb":
        pytest.skip("a damaged DuckDB file; PostgreSQL going away is in test_postgres_faults")
    (offline / "finance.duckdb").write_bytes(os.urandom(64 * 1024))
    for command in (["status"], ["sync"], ["connect", "--institution", "0", "--user", "user-ok", "--password", "x"]):
        assert main(command) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "damaged" in line and "backup" in line


def test_a_read_only_store_can_be_read_but_a_sync_says_it_cannot_write(offline, monkeypatch, capsys, db_kind):
    if db_kind != "duckdb":
        pytest.skip("DuckDB's read-only file mode")
    services = open_services()
    connect(services.providers["pluggy"], services.sync)  # type: ignore[arg-type]
    services.engine.dispose()
    monkeypatch.setenv("FINANCE_DATABASE_URL", f"{load_settings().database_url}?access_mode=read_only")
    capsys.readouterr()

    assert main(["status"]) == 0
    assert "Pluggy Bank [pluggy]" in capsys.readouterr().out
    assert main(["sync"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "cannot be written" in line and "permissions" in line


def test_an_unreadable_key_file_is_one_clear_line(offline, capsys):
    (offline / "secret.key").mkdir()
    assert main(["status"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "secret.key cannot be read" in line


def test_the_cli_prints_no_traceback_for_a_corrupt_store(offline):
    (offline / "finance.duckdb").write_bytes(os.urandom(64 * 1024))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGGY_", "PLAID_", "FINANCE_"))}
    done = subprocess.run([sys.executable, "-m", "finance", "status"], cwd=REPO, capture_output=True, text=True,
                          env=env | {"FINANCE_DATA_DIR": str(offline), "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 2
    assert "damaged" in _one_error_line(done.stderr)
    assert (offline / "finance.duckdb").stat().st_size == 64 * 1024  # left as it was, for the user to restore
