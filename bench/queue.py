"""Webhook to rows visible on a PostgreSQL store with two workers: `python -m bench.queue --rounds 5`.

A throwaway PostgreSQL server (initdb in a temporary folder, loopback only; tests/postgres.py), both emulators
served over HTTP from this process, `streamlit run app.py` on the database (its webhook routes enqueue) and two
`python -m finance worker` processes. Each round advances a sandbox clock by a day, which makes the emulator post
its webhooks to the app; the figure runs from the emulator's delivery (the app's 200 received) to the moment the
Transactions page's query (`Services.transactions.page`, as the page runs it) returns after the sync that webhook
asked for committed: the apply job, the sync job (over HTTP) and the page's read. Target: < 2 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import REPO, emit, log, median
from bench.webhooks import POLL, _connect, _wait, advance_until_webhook, served_banks, stop_all
from finance import jobs
from finance.config import load_settings
from finance.filters import TransactionFilter
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.services import Services, open_services
from finance.store import migrate
from finance.store.db import create_engine
from tests.postgres import PostgresServer, find_bindir, server_available

WORKERS = 2


def _webhook_syncs(svc: Services, after: datetime) -> int:
    """Webhook-triggered syncs finished (successfully) after `after`."""
    with svc.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM sync_runs WHERE trigger = 'webhook' AND "
                                        "outcome = 'success' AND finished_at > :t"), {"t": after}).scalar_one())


def _round(emulator: PluggyEmulator | PlaidEmulator, svc: Services) -> float:
    """Advance the emulator a day (again, until a day brings a webhook); seconds from its first delivery to the
    Transactions page's query answering after the sync it asked for."""
    seen = advance_until_webhook(emulator)
    delivered = min(e["at"] for e in emulator.delivery_log[seen:])
    since = datetime.fromtimestamp(delivered, UTC)
    _wait("the webhook's sync", lambda: _webhook_syncs(svc, since) > 0)
    page = svc.transactions.page(TransactionFilter(), limit=50)
    visible = time.time()
    if page.total == 0:
        raise RuntimeError("the page shows no transactions")
    return visible - delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    problem = server_available()
    if problem:
        raise SystemExit(problem)
    server = PostgresServer(find_bindir())  # type: ignore[arg-type]
    work, app_port, (pluggy, plaid), servers, env = served_banks("bench-queue-")
    env["FINANCE_DATABASE_URL"] = server()
    processes: list[subprocess.Popen[bytes]] = []
    svc: Services | None = None
    try:
        engine = create_engine(env["FINANCE_DATABASE_URL"])
        log(f"queue: database at schema revision {migrate.upgrade(engine)} (as `db upgrade` does: with the queue)")
        engine.dispose()
        svc = open_services(load_settings(env))
        log("queue: connecting the sandbox banks")
        _connect(env)
        for emulator in (pluggy, plaid):
            emulator.deliver_webhooks(poll=POLL)
        log(f"queue: starting streamlit run app.py and {WORKERS} workers on PostgreSQL")
        with (work / "app.log").open("wb") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(app_port),
                 "--server.headless", "true"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
        for n in range(WORKERS):
            with (work / f"worker{n}.log").open("wb") as out:
                processes.append(subprocess.Popen([sys.executable, "-m", "finance", "worker"], cwd=REPO, env=env,
                                                  stdout=out, stderr=subprocess.STDOUT))
        http = httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=10)

        def status() -> dict[str, Any]:
            return dict(http.get("/api/status").json())

        _wait("the app and both workers", lambda: (status().get("queue") or {}).get("workers") == WORKERS)
        _wait("the Pluggy webhook registration", lambda: pluggy._webhooks)
        _round(pluggy, svc)  # warm-up: first requests, imports, the Plaid key fetch
        _round(plaid, svc)
        pluggy_s = [_round(pluggy, svc) for _ in range(args.rounds)]
        plaid_s = [_round(plaid, svc) for _ in range(args.rounds)]
        counts = svc.status.queue()
        emit({"rounds": args.rounds, "workers": WORKERS, "pluggy_s": pluggy_s, "plaid_s": plaid_s,
              "pluggy_median_s": median(pluggy_s), "plaid_median_s": median(plaid_s),
              "pluggy_max_s": max(pluggy_s), "plaid_max_s": max(plaid_s), "poll_s": jobs.POLL_SECONDS,
              "failed_jobs": counts.failed if counts else None, "final": status()})
        http.close()
        line = (f"webhook → rows on the Transactions page, PostgreSQL, {WORKERS} workers: Pluggy median "
                f"{median(pluggy_s):.2f} s (max {max(pluggy_s):.2f}), Plaid median {median(plaid_s):.2f} s "
                f"(max {max(plaid_s):.2f}); target < 2 s")
        log(line)
    finally:
        stop_all(processes, (pluggy, plaid), servers)
        if svc is not None:
            svc.engine.dispose()
        server.close()


if __name__ == "__main__":
    main()
