"""Webhook latency: from a provider's webhook to the new data in the store, with the real app server.

`python -m bench.webhooks --rounds 5` (or `python -m bench --only webhooks`). Both emulators are served on loopback
from this process and deliver their webhooks to `streamlit run app.py` (a subprocess, FINANCE_PUBLIC_URL set, a
temporary data folder). Each round advances a sandbox clock by a day, which makes the emulator send its webhooks
(Pluggy: item/updated and transactions/*; Plaid: a signed SYNC_UPDATES_AVAILABLE); the figure is the time from the
first delivery to the moment `GET /api/status` reports the new transactions committed (the worker's debounce, the
sync over HTTP and the apply). A page open in a browser shows them at its next refresh check (every
finance.ui.banner.REFRESH_SECONDS). It also times the webhook routes' answers (the providers want 2xx fast).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, emit, log, median
from finance.config import load_settings
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.services import open_services
from finance.ui.banner import REFRESH_SECONDS
from finance.worker import DEBOUNCE

POLL = 0.01


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, check: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, OSError, KeyError, ValueError):
            found = None
        if found:
            return found
        time.sleep(POLL)
    raise RuntimeError(f"timed out waiting for {what}")


def _connect(env: dict[str, str]) -> None:
    """Connect Pluggy Bank and First Platypus Bank (and sync them) before the app holds the store."""
    svc = open_services(load_settings(env))
    pluggy = svc.providers["pluggy"]
    state = pluggy.wait_until_settled(pluggy.create_connection("0", {"user": "user-ok", "password": "password-ok"})
                                      .external_id, sleep=time.sleep, interval=0.05)
    svc.sync.sync_connection(svc.sync.register(state), trigger="connect")
    plaid = svc.providers["plaid"]
    state = plaid.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
    svc.sync.sync_connection(svc.sync.register(state), trigger="connect")
    svc.engine.dispose()


def advance_until_webhook(emulator: PluggyEmulator | PlaidEmulator) -> int:
    """Advance the emulator a day (again, until a day brings a webhook); the index of its first new delivery in
    `delivery_log`."""
    seen = len(emulator.delivery_log)
    for _ in range(10):
        emulator.advance(days=1)
        try:
            _wait("a webhook", lambda: len(emulator.delivery_log) > seen, timeout=2)
            break
        except RuntimeError:
            continue  # a quiet day at the bank: nothing new, no webhook
    return seen


def _round(emulator: PluggyEmulator | PlaidEmulator, status: Any) -> float:
    """Seconds from a day's first webhook delivery to the sync it asked for committed."""
    before = status()
    seen = advance_until_webhook(emulator)
    # A day may only post pending rows (the count stays): wait for the sync the webhook asked for, not for more rows.
    synced = sum(before["worker"]["syncs"].values())
    _wait("the webhook's sync", lambda: sum((s := status())["worker"]["syncs"].values()) > synced
          and not s["worker"]["syncing"] and s["worker"]["queue"] == 0)
    visible = time.time()
    sent = [e["at"] for e in emulator.delivery_log[seen:]]
    if not sent:
        raise RuntimeError("the data arrived without a webhook")
    return visible - min(sent)


def served_banks(prefix: str) -> tuple[Path, int, tuple[PluggyEmulator, PlaidEmulator], list[Any], dict[str, str]]:
    """A temporary folder, a free port for the app, both emulators served over HTTP, and the app's environment
    pointing at them (webhooks on, offline banks off)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    app_port = _free_port()
    pluggy = PluggyEmulator(state_path=work / "pluggy.json")
    plaid = PlaidEmulator(state_path=work / "plaid.json")
    servers = [pluggy.serve().start(), plaid.serve().start()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGGY_", "PLAID_", "FINANCE_"))} | {
        "FINANCE_DATA_DIR": str(work / "data"), "FINANCE_PUBLIC_URL": f"http://127.0.0.1:{app_port}",
        "FINANCE_SANDBOX_SETTLE_SECONDS": "0", "PLUGGY_BASE_URL": servers[0].base_url, "PLUGGY_CLIENT_ID": "bench",
        "PLUGGY_CLIENT_SECRET": "bench", "PLAID_BASE_URL": servers[1].base_url, "PLAID_CLIENT_ID": "bench",
        "PLAID_SECRET": "bench"}
    return work, app_port, (pluggy, plaid), servers, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--posts", type=int, default=200, help="webhooks posted to time the routes' answers")
    args = parser.parse_args()

    work, app_port, (pluggy, plaid), servers, env = served_banks("bench-webhooks-")
    app: subprocess.Popen[bytes] | None = None
    try:
        log("webhooks: connecting the sandbox banks")
        _connect(env)
        for emulator in (pluggy, plaid):
            emulator.deliver_webhooks(poll=POLL)
        log("webhooks: starting streamlit run app.py")
        with (work / "app.log").open("wb") as out:
            app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(app_port),
                                    "--server.headless", "true"], cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{app_port}"
        http = httpx.Client(base_url=base, timeout=10)

        def status() -> dict[str, Any]:
            return dict(http.get("/api/status").json())

        _wait("the app", lambda: (status().get("worker") or {}).get("running"))
        _wait("the Pluggy webhook registration", lambda: pluggy._webhooks)
        _round(pluggy, status)  # warm-up: first requests, imports, the Plaid key fetch
        _round(plaid, status)
        pluggy_s = [_round(pluggy, status) for _ in range(args.rounds)]
        plaid_s = [_round(plaid, status) for _ in range(args.rounds)]
        log(f"webhooks: timing {args.posts} answers")
        item_id = next(iter(plaid._items))
        answers = []
        for n in range(args.posts):
            body = json.dumps({"webhook_type": "ITEM", "webhook_code": "WEBHOOK_UPDATE_ACKNOWLEDGED",
                               "item_id": item_id, "new_webhook_url": f"{base}/webhooks/plaid?{n}", "error": None,
                               "environment": "sandbox"}).encode()
            headers = {"Content-Type": "application/json", **plaid._sign_webhook(body)}
            started = time.perf_counter()
            answer = http.post("/webhooks/plaid", content=body, headers=headers)
            answers.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"the app answered {answer.status_code}")
        answers.sort()
        emit({"rounds": args.rounds, "pluggy_s": pluggy_s, "plaid_s": plaid_s,
              "pluggy_median_s": median(pluggy_s), "plaid_median_s": median(plaid_s),
              "pluggy_max_s": max(pluggy_s), "plaid_max_s": max(plaid_s), "debounce_s": DEBOUNCE,
              "refresh_s": REFRESH_SECONDS, "posts": args.posts, "answer_median_s": median(answers),
              "answer_p95_s": answers[int(0.95 * (len(answers) - 1))], "answer_max_s": answers[-1],
              "final": status()})
        http.close()
    finally:
        stop_all([app] if app is not None else [], (pluggy, plaid), servers)


def stop_all(processes: list[subprocess.Popen[bytes]], emulators: tuple[PluggyEmulator, PlaidEmulator],
             servers: list[Any]) -> None:
    """Stop the app (and worker) processes, the emulators' webhook deliveries and their HTTP servers."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    for emulator in emulators:
        emulator.stop_webhook_delivery()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()
