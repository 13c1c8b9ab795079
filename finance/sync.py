"""The sync engine: fetch from a provider into staging, then apply everything in one database transaction.

- Single-flight per connection; one failing connection never stops the others.
- Concurrent: `sync_all` fetches every connection at once (the providers' client-side rate limiters keep
  the published limits), and their applies may overlap: each touches only its own connection's rows, which
  DuckDB's optimistic concurrency lets transactions of one process write side by side.
- All or nothing: accounts, transactions, removals, balance history, the run row and the new cursor
  commit together. A failed run changes no data; it is recorded with a message a person can act on.
- Idempotent: a second run with nothing new adds, modifies and removes nothing.
- Streaming: mapped pages go to a staging file as they arrive, so memory does not grow with the sync's size.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from finance.http import counting_requests
from finance.model import NEEDS_USER, Account, ConnectionState, ConnectionStatus
from finance.providers.base import NotFound, Provider, ProviderError, ReauthRequired
from finance.store.events import clear_signal
from finance.store.ingest import ApplyCounts, StagedTransactions, apply_sync, configure_store, upsert_connection
from finance.store.schema import accounts, balance_history, connections, sync_runs, transactions
from finance.store.secrets import SecretStore

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]

LOCAL_ZONES = {"pluggy": ZoneInfo("America/Sao_Paulo"), "plaid": ZoneInfo("America/New_York")}

MAX_CONCURRENT_SYNCS = 8
"""Connections `sync_all` fetches at once (each Pluggy connection also reads up to 4 accounts at once)."""

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _connection_lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


@dataclass(frozen=True, slots=True)
class SyncResult:
    connection_id: str
    run_id: str | None
    outcome: str  # success, failed, skipped
    counts: ApplyCounts
    message: str
    error_code: str | None = None
    duration_ms: int = 0
    requests: int = 0




def _describe(counts: ApplyCounts, accounts: int) -> str:
    if not (counts.added or counts.modified or counts.removed or counts.merged):
        return f"Up to date: {accounts} accounts checked, no changes."
    parts = [f"{counts.added} new", f"{counts.modified} updated", f"{counts.removed} removed"]
    if counts.merged:
        parts.append(f"{counts.merged} pending merged into posted")
    return f"Synced {accounts} accounts: " + ", ".join(parts) + "."


def _error_message(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ProviderError):
        return exc.code or type(exc).__name__, exc.message
    # Unexpected bugs: say so plainly, keep details (which could hold data) out of the message.
    return "INTERNAL", f"The sync failed unexpectedly ({type(exc).__name__}). Nothing was changed; see the logs."


class SyncEngine:
    def __init__(self, engine: sa.Engine, providers: Mapping[str, Provider], *,
                 now: Callable[[], datetime] | None = None, secrets: SecretStore | None = None,
                 max_concurrent: int = MAX_CONCURRENT_SYNCS) -> None:
        self.engine = engine
        self.providers = providers
        self.secrets = secrets
        self.max_concurrent = max_concurrent
        self._now = now or (lambda: datetime.now(UTC))
        configure_store(engine)  # a big sync spills to disk rather than growing the process

    def _today(self, provider: str) -> date:
        return self._now().astimezone(LOCAL_ZONES.get(provider, UTC)).date()

    def register(self, state: ConnectionState, *, owner: str | None = None, secret: str | None = None) -> str:
        """Record a newly connected (or reconnected) item so it can be synced; its secret is stored encrypted."""
        secret = secret if secret is not None else state.secret
        if secret is not None and self.secrets is None:
            raise ValueError("Storing a provider secret needs a SecretStore")
        with self.engine.begin() as conn:
            upsert_connection(conn, state, now=self._now(), owner=owner)
            clear_signal(conn, state.id)  # a reconnect answers the provider's earlier warning (webhooks)
            if secret is not None and self.secrets is not None:
                conn.execute(connections.update().where(connections.c.id == state.id).values(
                    encrypted_secret=self.secrets.seal(secret)))
        return state.id

    def sync_all(self, trigger: str = "manual", on_progress: Progress | None = None) -> list[SyncResult]:
        """Sync every connection, concurrently; a failure is recorded and the others still run.

        Results come in the connections' order. `on_progress` is called on the calling thread (Streamlit
        widgets can only be updated there) with the latest stage and the mean fraction done.
        """
        with self.engine.connect() as conn:
            ids = [r.id for r in conn.execute(
                sa.select(connections.c.id).where(connections.c.status != ConnectionStatus.REVOKED.value)
                .order_by(connections.c.created_at))]
        if not ids:
            return []
        events: queue.SimpleQueue[tuple[int, str, float]] = queue.SimpleQueue()
        done = [0.0] * len(ids)

        def report() -> None:
            while not events.empty():
                index, stage, fraction = events.get()
                done[index] = fraction
                if on_progress:
                    on_progress(stage, sum(done) / len(ids))

        def run(index: int, connection_id: str) -> SyncResult:
            return self.sync_connection(connection_id, trigger=trigger,
                                        on_progress=lambda stage, fraction: events.put((index, stage, fraction)))

        with ThreadPoolExecutor(max_workers=max(1, min(len(ids), self.max_concurrent)),
                                thread_name_prefix="sync") as pool:
            futures = [pool.submit(contextvars.copy_context().run, run, i, cid) for i, cid in enumerate(ids)]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                report()
        report()
        return [future.result() for future in futures]

    def sync_connection(self, connection_id: str, *, trigger: str = "manual",
                        on_progress: Progress | None = None, removed: Collection[str] = ()) -> SyncResult:
        """Sync one connection. `removed`: provider transaction ids known to be gone (a webhook said so), applied
        with the fetch like the provider's own removals."""
        lock = _connection_lock(f"{self.engine.url}|{connection_id}")
        if not lock.acquire(blocking=False):
            return SyncResult(connection_id, None, "skipped", ApplyCounts(),
                              "A sync of this connection is already running.")
        try:
            return self._sync(connection_id, trigger, on_progress or (lambda _s, _f: None), removed)
        finally:
            lock.release()

    def _sync(self, connection_id: str, trigger: str, progress: Progress, removed: Collection[str] = ()) -> SyncResult:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(connections).where(connections.c.id == connection_id)).first()
        if row is None:
            return SyncResult(connection_id, None, "failed", ApplyCounts(), "No such connection.", "NOT_FOUND")
        provider = self.providers.get(row.provider)
        if provider is None:
            return SyncResult(connection_id, None, "failed", ApplyCounts(),
                              f"The {row.provider} provider is not configured.", "NO_PROVIDER")

        run_id = uuid.uuid4().hex
        started = self._now()
        clock = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(sync_runs.insert().values(
                id=run_id, connection_id=connection_id, trigger=trigger, started_at=started, outcome="running",
                added=0, modified=0, removed=0, merged=0, accounts=0, requests=0))
        state: ConnectionState | None = None
        try:
            with counting_requests() as sent, StagedTransactions() as staged:
                progress("Checking the connection", 0.05)
                state, accounts = provider.fetch_connection(row.external_id)
                if state.status in NEEDS_USER:
                    raise ReauthRequired(state.status_detail or "This connection needs you to reconnect.",
                                         code=state.error_code or state.status.value, provider=row.provider)
                progress("Fetching transactions", 0.25)
                changes = provider.fetch_transactions(row.external_id, accounts, row.sync_cursor, sink=staged.append)
                changes.removed.extend(sorted(set(removed) - set(changes.removed)))
                requests = sent.value
                progress("Saving", 0.85)
                finished = self._now()
                duration = int((time.monotonic() - clock) * 1000)
                with self.engine.begin() as conn:
                    counts = apply_sync(conn, state=state, accounts=accounts, changes=changes, now=finished,
                                        today=self._today(row.provider), staged=staged)
                    self._record_success(conn, run_id, state, accounts, changes.cursor, changes.windows,
                                         counts, finished, duration, requests)
            message = _describe(counts, len(accounts))
            progress("Done", 1.0)
            return SyncResult(connection_id, run_id, "success", counts, message, duration_ms=duration,
                              requests=requests)
        except Exception as exc:  # every failure is recorded; none escapes to other connections
            code, message = _error_message(exc)
            if isinstance(exc, ProviderError):
                log.warning("sync of %s failed: %s", connection_id, code)
            else:
                log.exception("sync of %s failed unexpectedly", connection_id)
            duration = int((time.monotonic() - clock) * 1000)
            self._record_failure(run_id, connection_id, exc, code, message, duration, state)
            return SyncResult(connection_id, run_id, "failed", ApplyCounts(), message, code, duration)

    @staticmethod
    def _record_success(conn: sa.Connection, run_id: str, state: ConnectionState, accounts: list[Account],
                        cursor: str | None, windows: list[tuple[str, date]], counts: ApplyCounts,
                        finished: datetime, duration: int, requests: int) -> None:
        """The connection's new state and cursor, and the run's row, in the apply's transaction."""
        upsert_connection(conn, state, now=finished, cursor=cursor, success=True)
        starts = [start for _, start in windows]
        conn.execute(sync_runs.update().where(sync_runs.c.id == run_id).values(
            finished_at=finished, duration_ms=duration, outcome="success", added=counts.added,
            modified=counts.modified, removed=counts.removed, merged=counts.merged, accounts=len(accounts),
            requests=requests, window_start=min(starts) if starts else None,
            message=_describe(counts, len(accounts))))

    def _record_failure(self, run_id: str, connection_id: str, exc: Exception, code: str, message: str,
                        duration: int, state: ConnectionState | None) -> None:
        now = self._now()
        with self.engine.begin() as conn:
            conn.execute(sync_runs.update().where(sync_runs.c.id == run_id).values(
                finished_at=now, duration_ms=duration, outcome="failed", error_code=code, message=message))
            values: dict[str, object] = {"last_attempt_at": now}
            if isinstance(exc, ReauthRequired):
                status = state.status if state and state.status in NEEDS_USER else ConnectionStatus.NEEDS_RECONNECT
                values |= {"status": status.value, "status_detail": message, "error_code": code}
            elif isinstance(exc, NotFound):
                values |= {"status": ConnectionStatus.REVOKED.value, "status_detail": message, "error_code": code}
            conn.execute(connections.update().where(connections.c.id == connection_id).values(**values))

    def delete_connection(self, connection_id: str, *, keep_history: bool) -> None:
        """Forget a connection locally; with keep_history its accounts and transactions stay for reports."""
        with self.engine.begin() as conn:
            if not keep_history:
                account_ids = sa.select(accounts.c.id).where(accounts.c.connection_id == connection_id)
                conn.execute(balance_history.delete().where(balance_history.c.account_id.in_(account_ids)))
                conn.execute(transactions.delete().where(transactions.c.connection_id == connection_id))
                conn.execute(accounts.delete().where(accounts.c.connection_id == connection_id))
                conn.execute(sync_runs.delete().where(sync_runs.c.connection_id == connection_id))
                conn.execute(connections.delete().where(connections.c.id == connection_id))
            else:
                conn.execute(connections.update().where(connections.c.id == connection_id).values(
                    status=ConnectionStatus.REVOKED.value, status_detail="Disconnected; history kept.",
                    encrypted_secret=None, sync_cursor=None, updated_at=self._now()))
