"""`python -m finance`: connect (with MFA), sync, status, sandbox advance and sandbox serve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from finance.cli import main

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
    assert "Pluggy Bank [pluggy] active — 2 accounts" in out
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
