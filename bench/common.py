"""Shared pieces of the benchmarks: deterministic data, the ingest path, timing, memory and child processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from finance.model import Account, ConnectionState, ConnectionStatus, Institution, Transaction, TransactionChanges
from finance.providers.pluggy.mapping import (
    SAO_PAULO,
    RawTransaction,
    map_account,
    map_transactions,
    page_chunks,
    read_transaction_page,
)
from finance.providers.pluggy.sandbox.wire import generate_transactions
from finance.sandbox.ledger import stable_uuid
from finance.store.db import create_engine, init_schema
from finance.store.ingest import ApplyCounts, StagedTransactions, apply_sync, configure_store, upsert_connection
from finance.store.schema import sync_runs

REPO = Path(__file__).resolve().parents[1]
SEED = 20240501
PAGE_SIZE = 500
"""Rows per /v2/transactions page, as the API (and the emulator's V2_PAGE_SIZE) sends them."""
HISTORY_DAYS = 365
ACCOUNTS = 10
"""Accounts of the 1M data set: one connection, nine checking accounts and one credit card."""
RESULT_PREFIX = "BENCH_RESULT "


def log(message: str) -> None:
    """Progress on stderr (stdout carries the child's result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float:
    """The median of the values (raises on an empty list)."""
    return float(statistics.median(list(values)))


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def _status_kb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (VmHWM), in MiB."""
    return _status_kb("VmHWM") / 1024


def rss_mb() -> float:
    """This process's resident set size now (VmRSS), in MiB."""
    return _status_kb("VmRSS") / 1024


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------

def emit(result: dict[str, Any]) -> None:
    """Hand a child's result to the parent (one JSON line on stdout)."""
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


class ChildFailed(RuntimeError):
    """A benchmark subprocess exited with an error."""


def run_child(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run `python -m bench.<module> args` in a fresh process and return the result it emitted."""
    command = [sys.executable, "-m", f"bench.{module}", *args]
    proc = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            if proc.returncode != 0:
                break
            return dict(json.loads(line[len(RESULT_PREFIX):]))
    raise ChildFailed(f"{' '.join(command[1:])} exited with {proc.returncode}")


class Server:
    """The bench.server child process: the bulk emulator on loopback, its CPU and memory not ours."""

    def __init__(self, rows_per_account: int, accounts: int, *, rate_limits: bool = False) -> None:
        command = [sys.executable, "-m", "bench.server", "--rows-per-account", str(rows_per_account),
                   "--accounts", str(accounts), *(["--rate-limits"] if rate_limits else [])]
        self.proc = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._line()
        if not ready.startswith("READY "):
            raise RuntimeError(f"bench.server did not start: {ready!r}")
        self.url = f"http://127.0.0.1:{int(ready.split()[1])}"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def command(self, text: str) -> str:
        """Send one command line and return the server's OK answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self._line()
        if not answer.startswith("OK"):
            raise RuntimeError(f"bench.server answered {answer!r} to {text!r}")
        return answer

    def stop(self) -> None:
        """Close the server's input (it stops) and wait for it."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --------------------------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------------------------

def today_sp() -> date:
    """Today in São Paulo (the local date Pluggy rows are booked on)."""
    return datetime.now(SAO_PAULO).date()


def data_window(today: date | None = None) -> tuple[date, date]:
    """(first day, day after the last) of the generated history: the 365 days ending today."""
    end = (today or today_sp()) + timedelta(days=1)
    return end - timedelta(days=HISTORY_DAYS), end


def account_kinds(count: int) -> list[str]:
    """Account kinds of a connection with `count` accounts: checking accounts, then one credit card."""
    if count < 2:
        raise ValueError("A benchmark connection has at least a checking account and a card")
    return ["checking"] * (count - 1) + ["card"]


def raw_rows(seed: int, account_id: str, kind: str, rows: int, start: date, end: date) -> Iterator[dict[str, Any]]:
    """Exactly `rows` Pluggy-shaped posted transactions of one account, evenly over [start, end), in date order."""
    per_month = (rows + 0.5) * 30.4375 / (end - start).days  # the generator counts per 30.4375 days
    return islice(generate_transactions(seed, account_id, kind, start, end, per_month), rows)  # type: ignore[arg-type]


def pages(rows: Iterable[dict[str, Any]], size: int = PAGE_SIZE) -> Iterator[list[dict[str, Any]]]:
    """The rows in API pages of `size`."""
    iterator = iter(rows)
    while page := list(islice(iterator, size)):
        yield page


def raw_account(item_id: str, account_id: str, index: int, kind: str) -> dict[str, Any]:
    """A Pluggy `Account` object for a generated account."""
    common = {"id": account_id, "itemId": item_id, "currencyCode": "BRL", "owner": "John Doe",
              "createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": "2025-01-01T00:00:00.000Z"}
    if kind == "card":
        return {**common, "type": "CREDIT", "subtype": "CREDIT_CARD", "number": "xxxx4242", "name": "Mastercard",
                "marketingName": "BENCH MASTERCARD", "balance": 2500.0, "bankData": None,
                "creditData": {"availableCreditLimit": 9500.0, "creditLimit": 12000.0}}
    return {**common, "type": "BANK", "subtype": "CHECKING_ACCOUNT", "number": f"0001/{index:05d}-1",
            "name": f"Conta Corrente {index + 1}", "marketingName": "BENCH CONTA CORRENTE", "balance": 5000.0,
            "creditData": None, "bankData": None}


class DataSet:
    """One connection of generated accounts: ids, raw account objects and their raw transaction pages."""

    def __init__(self, rows: int, accounts: int = ACCOUNTS, *, seed: int = SEED, item_id: str = "bench-item-0",
                 today: date | None = None) -> None:
        self.rows, self.seed, self.item_id = rows, seed, item_id
        self.today = today or today_sp()
        self.start, self.end = data_window(self.today)
        kinds = account_kinds(accounts)
        per_account = [rows // accounts + (1 if i < rows % accounts else 0) for i in range(accounts)]
        self.specs = [(stable_uuid(seed, item_id, "account", i), kind, n)
                      for i, (kind, n) in enumerate(zip(kinds, per_account, strict=True))]

    @property
    def connection_id(self) -> str:
        """Our id of the connection."""
        return f"pluggy:{self.item_id}"

    def state(self) -> ConnectionState:
        """The connection as the provider reports it."""
        return ConnectionState(provider="pluggy", external_id=self.item_id, status=ConnectionStatus.ACTIVE,
                               provider_status="UPDATED",
                               institution=Institution(id="0", name="Pluggy Bank", is_sandbox=True))

    def accounts(self, as_of: datetime) -> list[Account]:
        """The connection's accounts, mapped as the provider maps them."""
        return [map_account(raw_account(self.item_id, account_id, i, kind), as_of=as_of)
                for i, (account_id, kind, _) in enumerate(self.specs)]

    def account_rows(self, index: int) -> Iterator[dict[str, Any]]:
        """The raw transactions of one account, in date order."""
        account_id, kind, rows = self.specs[index]
        return raw_rows(self.seed, account_id, kind, rows, self.start, self.end)

    def account_pages(self, index: int) -> Iterator[list[dict[str, Any]]]:
        """The raw transaction pages of one account."""
        return pages(self.account_rows(index))

    def account_bodies(self, index: int) -> Iterator[bytes]:
        """The /v2/transactions answers of one account as Pluggy sends them: JSON bytes, a cursor link to the next."""
        account_id = self.specs[index][0]
        pending: bytes | None = None
        for number, page in enumerate(self.account_pages(index)):
            if pending is not None:
                yield pending + f'"?accountId={account_id}&after=cursor-{number}"}}'.encode()
            pending = json.dumps({"results": page}, ensure_ascii=False, separators=(",", ":"))[:-1].encode()
            pending += b',"next":'
        if pending is not None:
            yield pending + b"null}"


# --------------------------------------------------------------------------------------------
# The ingest path: JSON pages -> decode -> map -> apply_sync, in one transaction
# --------------------------------------------------------------------------------------------

def fresh_engine(path: Path) -> sa.Engine:
    """A new, empty store (schema and categories) in a DuckDB file."""
    path.unlink(missing_ok=True)
    engine = create_engine(f"duckdb:///{path}")
    init_schema(engine)
    configure_store(engine)  # as the sync engine configures the app's store
    return engine


def register(engine: sa.Engine, data: DataSet, now: datetime) -> None:
    """Record the connection, as connecting it does before the first sync."""
    with engine.begin() as conn:
        upsert_connection(conn, data.state(), now=now)


def ingest(engine: sa.Engine, data: DataSet) -> dict[str, Any]:
    """Decode and map every page and apply the whole sync in one transaction, as the sync engine does.

    Each page arrives as the JSON bytes Pluggy sends; it is decoded and shape-checked as the client does
    (`read_transaction_page`), mapped page by page into Arrow batches and appended to the sync's staging file
    (what the engine's sink does during a fetch); then apply_sync loads the staged rows and merges them in
    one transaction. Generating the pages (the provider's side) is not timed; decoding, mapping, staging and
    applying are. Returns the seconds spent decoding, mapping and staging (map_s; decode_s of it decoding), and
    applying, and the apply counts.
    """
    now = datetime.now(UTC)
    register(engine, data, now)
    accounts = data.accounts(now)
    map_seconds = decode_seconds = 0.0

    def decoded(bodies: list[bytes]) -> Iterator[list[RawTransaction]]:
        nonlocal decode_seconds
        for body in bodies:
            started = time.perf_counter()
            rows = read_transaction_page(body).results
            decode_seconds += time.perf_counter() - started
            yield rows

    with StagedTransactions() as staged:
        for index, account in enumerate(accounts):
            bodies = list(data.account_bodies(index))  # what the provider sends, made before the clock starts
            started = time.perf_counter()
            for rows in page_chunks(decoded(bodies)):  # as PluggyProvider.fetch_transactions maps them
                staged.append(map_transactions(rows, account))
            map_seconds += time.perf_counter() - started
            del bodies
        changes = TransactionChanges(provider="pluggy", windows=[(a.external_id, data.start) for a in accounts],
                                     staged=staged.rows)
        started = time.perf_counter()
        with engine.begin() as conn:
            counts = apply_sync(conn, state=data.state(), accounts=accounts, changes=changes, now=now,
                                today=data.today, staged=staged)
            upsert_connection(conn, data.state(), now=now, success=True)
            _record_run(conn, data, now, counts, len(accounts))
        apply_seconds = time.perf_counter() - started
    return {"rows": changes.rows, "map_s": map_seconds, "decode_s": decode_seconds, "apply_s": apply_seconds,
            "added": counts.added, "modified": counts.modified, "removed": counts.removed}


def _record_run(conn: sa.Connection, data: DataSet, now: datetime, counts: ApplyCounts, accounts: int) -> None:
    conn.execute(sync_runs.insert().values(
        id=f"bench-{now.timestamp()}", connection_id=data.connection_id, trigger="manual", started_at=now,
        finished_at=now, duration_ms=0, outcome="success", added=counts.added, modified=counts.modified,
        removed=counts.removed, merged=counts.merged, accounts=accounts, requests=0, window_start=data.start,
        message=f"Synced {accounts} accounts: {counts.added} new (benchmark data)."))


CENT = Decimal("0.01")


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def transaction_row(t: Transaction, connection_id: str, now: datetime) -> dict[str, Any]:
    """A mapped transaction as a row of the `transactions` table (for the row-by-row baseline)."""
    return {
        "id": t.id, "account_id": t.account_id, "connection_id": connection_id, "provider": t.provider,
        "external_id": t.external_id, "booked_date": t.booked_date, "authorized_date": t.authorized_date,
        "amount": _money(t.amount), "currency": t.currency, "original_amount": _money(t.original_amount),
        "original_currency": t.original_currency, "description": t.description, "merchant": t.merchant,
        "category": t.category, "provider_category": t.provider_category,
        "provider_category_id": t.provider_category_id, "status": t.status.value,
        "pending_id": f"{t.provider}:{t.pending_external_id}" if t.pending_external_id else None,
        "payment_method": t.payment_method, "installment_number": t.installment_number,
        "installment_total": t.installment_total, "provider_created_at": t.provider_created_at,
        "first_seen_at": now, "last_seen_at": now,
    }


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of (start, end) intervals: the time at least one request was in flight."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total
