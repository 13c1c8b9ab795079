"""End to end over loopback, as a new user would run it: both emulators served with `python -m finance sandbox serve`,
banks connected from the CLI, then `streamlit run app.py` with FINANCE_PUBLIC_URL pointing at itself. From there on
nothing is clicked: advancing the sandbox clocks brings new transactions into the store through signed webhooks and
the background worker; `/sandbox/item/reset_login` (and a Pluggy login error) make connections need a reconnect, the
banner shows them, and a reconnect at the bank clears it. Every process binds 127.0.0.1 and is stopped at the end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Poll until `check()` returns something truthy (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Stack:
    """The emulators, the app and their shared environment."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pluggy_port, self.plaid_port, self.app_port = free_port(), free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PLUGGY_", "PLAID_", "FINANCE_", "STREAMLIT_"))}
        self.env |= {
            "FINANCE_DATA_DIR": str(tmp / "data"), "FINANCE_PUBLIC_URL": f"http://127.0.0.1:{self.app_port}",
            "FINANCE_SANDBOX_SETTLE_SECONDS": "0", "PYTHONPATH": str(REPO),
            "PLUGGY_BASE_URL": f"http://127.0.0.1:{self.pluggy_port}", "PLUGGY_CLIENT_ID": "e2e",
            "PLUGGY_CLIENT_SECRET": "e2e", "PLAID_BASE_URL": f"http://127.0.0.1:{self.plaid_port}",
            "PLAID_CLIENT_ID": "e2e", "PLAID_SECRET": "e2e",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.app: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        handle = (self.tmp / f"{log}.log").open("wb")
        process = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def cli(self, *args: str) -> str:
        done = subprocess.run([PYTHON, "-m", "finance", *args], cwd=REPO, env=self.env, capture_output=True,
                              timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        return done.stdout.decode()

    def serve(self, provider: str, port: int) -> None:
        self.start(PYTHON, "-m", "finance", "sandbox", "serve", "--provider", provider, "--port", str(port),
                   "--state", str(self.tmp / f"{provider}.json"), "--settle-seconds", "0",
                   "--webhook-time-scale", "0.001", log=provider)
        wait_for(f"the {provider} emulator", lambda: socket.create_connection(("127.0.0.1", port), timeout=1))

    def start_app(self) -> None:
        self.app = self.start(PYTHON, "-m", "streamlit", "run", "app.py", "--server.port", str(self.app_port),
                              "--server.headless", "true", "--browser.gatherUsageStats", "false", log="app")
        wait_for("the app's worker", lambda: (self.status().get("worker") or {}).get("running"))

    def status(self) -> dict[str, Any]:
        return httpx.get(f"http://127.0.0.1:{self.app_port}/api/status", timeout=5).json()

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def login(client: httpx.Client) -> httpx.Client:
    """A fresh Pluggy API key on the client."""
    client.headers["X-API-KEY"] = client.post("/auth", json={"clientId": "e2e", "clientSecret": "e2e"}).json()["apiKey"]
    return client


def needing_reconnect(stack: Stack) -> int:
    return int(stack.status()["connections"].get("needs_reconnect", 0))


@pytest.mark.slow
def test_webhooks_bring_data_and_consent_changes_without_a_click(stack: Stack, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    stack.serve("pluggy", stack.pluggy_port)
    stack.serve("plaid", stack.plaid_port)
    assert "Synced" in stack.cli("connect", "--provider", "pluggy", "--institution", "0", "--user", "user-ok",
                                 "--password", "password-ok")
    assert "Synced" in stack.cli("connect", "--provider", "plaid", "--institution", "ins_109508", "--user",
                                 "user_good", "--password", "pass_good")
    stack.start_app()
    pluggy_api = login(httpx.Client(base_url=stack.env["PLUGGY_BASE_URL"], timeout=10))
    wait_for("the app to register its Pluggy webhook", lambda: [
        w for w in pluggy_api.get("/webhooks").json()["results"]
        if w["url"] == f"{stack.env['FINANCE_PUBLIC_URL']}/webhooks/pluggy"])
    start = stack.status()
    assert start["connections"] == {"active": 2} and start["webhook_events"] == {}

    # New Pluggy transactions arrive: the CLI advances the sandbox clock a week (a single day can be quiet at the bank);
    # the served emulator sends the webhooks.
    stack.cli("sandbox", "advance", "--provider", "pluggy", "--days", "7", "--state", str(stack.tmp / "pluggy.json"))
    after_pluggy = wait_for("Pluggy's new transactions", lambda: (
        s := stack.status())["transactions"] > start["transactions"] and s["worker"]["queue"] == 0 and s)
    # Plaid: a refresh with changes → a signed SYNC_UPDATES_AVAILABLE → a sync.
    stack.cli("sandbox", "advance", "--provider", "plaid", "--days", "7", "--state", str(stack.tmp / "plaid.json"))
    wait_for("Plaid's new transactions", lambda: (
        s := stack.status())["transactions"] > after_pluggy["transactions"] and s["worker"]["queue"] == 0)

    # /sandbox/item/reset_login over HTTP, as a tester would: ITEM ERROR webhook → the connection needs a reconnect.
    state = json.loads((stack.tmp / "plaid.json").read_text())
    access_token = next(iter(state["items"].values()))["access_token"]
    answer = httpx.post(f"{stack.env['PLAID_BASE_URL']}/sandbox/item/reset_login",
                        json={"client_id": "e2e", "secret": "e2e", "access_token": access_token}, timeout=10)
    assert answer.json()["reset_login"] is True
    wait_for("the Plaid connection to need a reconnect", lambda: needing_reconnect(stack) == 1)

    # Pluggy: the bank starts refusing the login (item/error), then the user logs in again at the bank (update).
    stack.cli("sandbox", "reset-login", "--provider", "pluggy", "--state", str(stack.tmp / "pluggy.json"))
    wait_for("the Pluggy connection to need a reconnect", lambda: needing_reconnect(stack) == 2)
    item_id = next(iter(json.loads((stack.tmp / "pluggy.json").read_text())["items"]))
    login(pluggy_api)  # API keys live two hours of the (advanced) sandbox clock
    assert pluggy_api.patch(f"/items/{item_id}", json={"parameters": {"user": "user-ok", "password": "password-ok"}}
                            ).status_code == 200
    wait_for("the Pluggy reconnect to clear its warning", lambda: needing_reconnect(stack) == 1)
    final = wait_for("the worker to finish", lambda: (s := stack.status())["webhook_events"].get("queued", 0) == 0
                     and not s["worker"]["syncing"] and s["worker"]["queue"] == 0 and s)
    assert final["worker"]["rejected"] == 0
    pluggy_api.close()
    stack.stop()

    # What the webhooks left in the store, and the banner the next page view shows.
    engine = sa.create_engine(f"duckdb:///{stack.tmp / 'data' / 'finance.duckdb'}")
    with engine.connect() as conn:
        kinds = {tuple(r) for r in conn.execute(sa.text(
            "SELECT provider, event_type FROM webhook_events WHERE outcome IN ('processed', 'failed')"))}
        triggers = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT trigger FROM sync_runs"))}
        statuses = dict(conn.execute(sa.text("SELECT provider, status FROM connections")).all())
    engine.dispose()
    assert {("pluggy", "item/updated"), ("pluggy", "transactions/created"), ("pluggy", "item/error"),
            ("plaid", "TRANSACTIONS/SYNC_UPDATES_AVAILABLE"), ("plaid", "ITEM/ERROR")} <= kinds
    assert "webhook" in triggers
    assert statuses == {"pluggy": "active", "plaid": "needs_reconnect"}
    for key, value in stack.env.items():
        if key.startswith(("FINANCE_", "PLUGGY_", "PLAID_")):
            monkeypatch.setenv(key, value)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    banners = [e.value for e in at.error if "needs you to reconnect" in e.value]
    assert len(banners) == 1 and "First Platypus Bank" in banners[0]
