"""Initial sync against the emulator with 100 ms of latency on every request: 5 items x 2 accounts x 5,000 rows.

The product's own entry point syncs every connection (`SyncEngine.sync_all`) through the real Pluggy client, with
its client-side rate limiter on. The emulator (rate limits on, real-time clock) runs in its own process on loopback
(bench.server), as a provider's servers would, so its CPU does not compete with the client's; an httpx transport
sleeps `latency` before each request.

The best schedule the rate limits allow, computed from what the run did:
- a dependency bound: an account's /v2/transactions pages form a chain (each cursor comes from the page before),
  after the requests any client must make first (POST /auth for a key, then GET /accounts for the account ids;
  the item's state, GET /items/{id}, can be read alongside); with unlimited concurrency across accounts and items,
  the sync cannot take less than (that chain's length) x latency;
- a rate bound per limit group: Pluggy counts fixed one-minute windows per IP, so n requests of a group limited
  to L per minute need at least floor((n - 1) / L) minutes, plus one latency;
- best = the larger of the two. The sequential lower bound is simply requests x latency.

Run: `.venv/bin/python -m bench.latency --repeat 3`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import Server, emit, fresh_engine, log, median, union_seconds
from bench.emulator import TimedTransport
from finance.model import ConnectionState
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox.base import RATE_LIMITS
from finance.sync import SyncEngine

PRE_TRANSACTION_REQUESTS = ("POST /auth", "GET /accounts")
"""What must precede an account's first page; the engine reads GET /items/{id} before GET /accounts (one more)."""


def best_schedule(transport: TimedTransport, latency: float) -> dict[str, Any]:
    """The dependency and rate-limit bounds of what the run requested (see the module docstring)."""
    chain = len(PRE_TRANSACTION_REQUESTS) + max(transport.pages_per_account.values())
    rate = {group: (n - 1) // RATE_LIMITS[group] * 60.0 + latency
            for group, n in transport.groups.items() if group in RATE_LIMITS}
    return {"chain_requests": chain, "chain_s": chain * latency, "rate_bound_s": max(rate.values()),
            "best_s": max(chain * latency, *rate.values())}


def one_run(items: int, accounts: int, rows: int, latency: float, work: Path) -> dict[str, Any]:
    """A fresh emulator process and store, items connected without latency, then one timed sync of everything."""
    server = Server(rows, accounts, rate_limits=True)
    try:
        setup = PluggyProvider(PluggyClient("bench", "bench", base_url=server.url, transport=httpx.HTTPTransport()))
        states: list[ConnectionState] = []
        for _ in range(items):
            state = setup.create_connection("0", {"user": "user-ok", "password": "password-ok"})
            states.append(setup.wait_until_settled(state.external_id, interval=0.05))
        setup.client.close()
        server.command("warm encode")  # generates (and encodes) every item's data now, outside the timed sync

        transport = TimedTransport(httpx.HTTPTransport(), latency=latency)
        client = PluggyClient("bench", "bench", base_url=server.url, transport=transport, rate_limited=True)
        engine = fresh_engine(work / "latency.duckdb")
        sync = SyncEngine(engine, {"pluggy": PluggyProvider(client)})
        for state in states:
            sync.register(state)
        transport.reset()
        started = time.perf_counter()
        results = sync.sync_all()
        wall = time.perf_counter() - started
        engine.dispose()
        client.close()
    finally:
        server.stop()
    failed = [r for r in results if r.outcome != "success"]
    if failed:
        raise RuntimeError(f"{len(failed)} syncs failed: {failed[0].error_code} {failed[0].message}")
    added = sum(r.counts.added for r in results)
    if added != items * accounts * rows:
        raise RuntimeError(f"the sync added {added} rows, expected {items * accounts * rows}")
    requests = transport.requests
    fetch = max(r.duration_ms for r in results) / 1000  # a run's duration stops before its apply
    return {"wall_s": wall, "requests": requests, "sequential_s": requests * latency, "added": added,
            "fetch_s": fetch, "apply_s": wall - fetch, "in_flight_s": union_seconds(transport.intervals),
            "statuses": dict(transport.statuses), "groups": dict(transport.groups),
            "pages_per_account": max(transport.pages_per_account.values()),
            "rate_limited": transport.statuses.get(429, 0), **best_schedule(transport, latency)}


def main() -> None:
    """Run the timed sync `--repeat` times and emit the medians and bounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=2, help="accounts per item")
    parser.add_argument("--rows", type=int, default=5_000, help="transactions per account")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every request")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        runs = []
        for i in range(args.repeat):
            run = one_run(args.items, args.accounts, args.rows, args.latency, work)
            log(f"latency sync {i + 1}/{args.repeat}: {run['wall_s']:.2f}s, {run['requests']} requests "
                f"(sequential {run['sequential_s']:.1f}s, best {run['best_s']:.1f}s), {run['rate_limited']} x 429")
            runs.append(run)
        wall = median(r["wall_s"] for r in runs)
        last = runs[-1]
        statuses: Counter[str] = Counter()
        for run in runs:
            statuses.update({str(k): v for k, v in run["statuses"].items()})
        emit({"items": args.items, "accounts": args.items * args.accounts, "rows_per_account": args.rows,
              "latency_s": args.latency, "repeat": args.repeat, "wall_s": wall,
              "requests": median(r["requests"] for r in runs), "sequential_s": median(r["sequential_s"] for r in runs),
              "best_s": median(r["best_s"] for r in runs), "chain_requests": last["chain_requests"],
              "fetch_s": median(r["fetch_s"] for r in runs), "apply_s": median(r["apply_s"] for r in runs),
              "in_flight_s": median(r["in_flight_s"] for r in runs),
              "rate_bound_s": last["rate_bound_s"], "groups": last["groups"], "statuses": dict(statuses),
              "ratio_vs_sequential": wall / median(r["sequential_s"] for r in runs),
              "ratio_vs_best": wall / median(r["best_s"] for r in runs), "runs": runs})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
