"""The sync engine: fetch from a provider into staging, then apply everything in one database transaction.

- Single-flight per connection, across every process of a PostgreSQL store (an advisory lock held for the sync);
  one failing connection never stops the others.
- Concurrent: `sync_all` fetches every connection at once (the providers' client-side rate limiters keep
  the published limits), and their applies may overlap: each touches only its own connection's rows, which
  DuckDB's optimistic concurrency lets transactions of one process write side by side.
- All or nothing: accounts, transactions, removals, balance history, the run row and the new cursor
  commit together. A failed run changes no data; it is recorded with a message a person can act on.
- Idempotent: a second run with nothing new adds, modifies and removes nothing.
- Streaming: mapped pages go to a staging file as they arrive, so memory does not grow with the sync's size.
- The portfolio (investments, loans, card bills) is read alongside the transactions and saved after them, in a
  transaction of its own: when it fails, the transactions are still saved and the failure is recorded per
  resource (`portfolio_status`), its stored rows left as they were. It is read at most once per
  finance.portfolio.PORTFOLIO_INTERVAL, unless a webhook says it changed (`finance.providers.webhook.PORTFOLIO`).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from finance import screening
from finance.errors import EditError, NotFound, ProviderError, ReauthRequired
from finance.http import counting_requests
from finance.i18n import N_, _, ngettext
from finance.model import (
    NEEDS_USER,
    Account,
    ConnectionState,
    ConnectionStatus,
    Portfolio,
    SetAside,
    TransactionChanges,
)
from finance.portfolio import portfolio_due, resource_label
from finance.providers.base import Provider, at_once
from finance.providers.webhook import PORTFOLIO, transactions_named
from finance.store import locks
from finance.store.account_links import link_accounts, linked_successors, predecessors, refresh_since
from finance.store.accounts import stored_accounts
from finance.store.connections import clear_signal
from finance.store.db import store_error
from finance.store.directory import Directory
from finance.store.imports import replace_with_synced
from finance.store.ingest import ApplyCounts, StagedTransactions, apply_sync, configure_store, upsert_connection
from finance.store.portfolio import (
    apply_portfolio,
    delete_portfolio,
    investments_since,
    last_portfolio_read,
    rebuild_portfolio_history,
    record_status,
)
from finance.store.schema import accounts, balance_history, connections, sync_runs, transactions
from finance.store.secrets import SecretStore

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


MAX_CONCURRENT_SYNCS = 8
"""Connections `sync_all` fetches at once (a provider may also read several accounts of one connection at once)."""

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _connection_lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


@dataclass(frozen=True, slots=True)
class SyncResult:
    connection_id: str
    run_id: str | None
    outcome: str  # success, failed, skipped (a run row's outcome may also be running or interrupted)
    counts: ApplyCounts
    message: str
    error_code: str | None = None
    duration_ms: int = 0
    requests: int = 0
    retryable: bool = False  # failed for a reason a later try can fix (rate limit, provider or database down)




def _describe(counts: ApplyCounts, accounts: int, set_aside: Sequence[SetAside] = ()) -> str:
    aside = " " + screening.summary(set_aside) if set_aside else ""
    if not (counts.added or counts.modified or counts.removed or counts.merged):
        return ngettext("Up to date: {count} account checked, no changes.",
                        "Up to date: {count} accounts checked, no changes.", accounts).format(count=accounts) + aside
    parts = [_("{count} new").format(count=counts.added), _("{count} updated").format(count=counts.modified),
             _("{count} removed").format(count=counts.removed)]
    if counts.merged:
        parts.append(_("{count} pending merged into posted").format(count=counts.merged))
    return ngettext("Synced {count} account: {changes}.", "Synced {count} accounts: {changes}.", accounts).format(
        count=accounts, changes=", ".join(parts)) + aside


VALUE_OUT_OF_RANGE = N_("The provider sent a value the store cannot hold (an amount or a date out of range); "
                        "nothing was changed. The next sync tries again; if it keeps failing, the logs name the field.")
_UNSTORABLE_DRIVER_ERRORS = frozenset({"ConversionException", "OutOfRangeException"})


def _unstorable(exc: BaseException) -> bool:
    """A value the store's types cannot hold (an amount past DECIMAL(18,2), a date before year 1 in a time zone):
    bad data from the provider, not a bug of ours."""
    return isinstance(exc, OverflowError | pa.ArrowInvalid) or type(exc).__name__ in _UNSTORABLE_DRIVER_ERRORS or (
        isinstance(getattr(exc, "orig", None), BaseException) and _unstorable(exc.orig))  # type: ignore[attr-defined]


def _error_message(exc: Exception) -> tuple[str, str]:
    """(error code, message for a person) of a failed sync, from the error taxonomy: a provider's error, a store
    problem (disk full, read-only, damaged), a value the store cannot hold, or a bug."""
    if isinstance(exc, ProviderError):
        return exc.code or type(exc).__name__, exc.message
    problem = store_error(exc)
    if problem is not None:
        return problem.code, problem.message
    if _unstorable(exc):
        return "VALUE_OUT_OF_RANGE", str(VALUE_OUT_OF_RANGE)
    # Unexpected bugs: say so plainly, keep details (which could hold data) out of the message.
    return "INTERNAL", _("The sync failed unexpectedly ({error}). Nothing was changed; see the logs.").format(
        error=type(exc).__name__)


# --------------------------------------------------------------------------------------------
# Runs left running by a process that no longer exists
# --------------------------------------------------------------------------------------------

RUNNING, INTERRUPTED = "running", "interrupted"
INTERRUPTED_MESSAGE = N_("Interrupted: the app stopped during this sync; nothing from it was saved. The next sync "
                         "fetches it again.")
UNRECORDED_MESSAGE = N_("Interrupted: how this sync ended could not be recorded (the database failed); nothing from "
                        "it was saved. The next sync fetches it again.")


def _start_token(pid: int) -> str:
    """When process `pid` started, as `<boot id>:<start ticks>` (Linux /proc): a pid reused by a later process, or
    after a restart of the machine or container, gives another token. Empty where it cannot be read."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{boot[:8]}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, starttime


@functools.cache
def _process_of(pid: int) -> str:
    return f"{socket.gethostname()}/{pid}/{_start_token(pid)}"


def this_process() -> str:
    """`host/pid/start token` of the running process, recorded on its sync runs."""
    return _process_of(os.getpid())


def process_gone(owner: str | None, *, exclusive: bool) -> bool:
    """Whether the process that recorded a run (`host/pid/start token`) no longer exists. `exclusive`: this process
    holds the database alone (DuckDB locks its file), so a row of any other process is stale. Otherwise only a
    process of this host can be checked; another host's, or an unknown one, is taken as alive."""
    if owner == this_process():
        return False
    if exclusive:
        return True
    host, _, rest = (owner or "").partition("/")
    pid, _, token = rest.partition("/")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        pass
    return bool(token) and _start_token(int(pid)) not in ("", token)


def sync_lock_name(connection_id: str) -> str:
    """The database lock a sync of the connection holds (PostgreSQL: across processes)."""
    return f"sync:{connection_id}"


def _already_running(connection_id: str) -> SyncResult:
    return SyncResult(connection_id, None, "skipped", ApplyCounts(),
                      _("A sync of this connection is already running."))


def save_portfolio(engine: sa.Engine, connection_id: str, provider_name: str,
                   portfolio: Portfolio | Exception | None, rebuilt: Sequence[str], *, now: datetime,
                   today: date) -> str:
    """Store a connection's portfolio read (or its failure; None: not read this time) after its transactions were
    saved (`rebuilt`: the accounts whose balance history that rewrote); a sentence for the sync's message when
    something could not be read or saved, else ''."""
    failure: tuple[str, str] | None = None
    if portfolio is None:  # the stored portfolio stands; the loan and investment history the apply rewrote is redone
        with engine.begin() as conn:
            rebuild_portfolio_history(conn, connection_id, today, only=rebuilt)
        return ""
    if isinstance(portfolio, Exception):
        failure = _error_message(portfolio)
    else:
        try:
            with engine.begin() as conn:
                apply_portfolio(conn, connection_id, provider_name, portfolio, now=now, today=today, rebuilt=rebuilt)
        except Exception as exc:  # the transactions are saved; this part is recorded as failed
            failure = _error_message(exc)
    if failure is not None:
        log.warning("portfolio of %s not saved: %s", connection_id, failure[0])
        try:
            with engine.begin() as conn:
                record_status(conn, connection_id, None, now=now, code=failure[0], message=failure[1])
                rebuild_portfolio_history(conn, connection_id, today)  # over the sync's
        except Exception as exc:
            log.warning("recording the portfolio failure of %s failed: %s", connection_id, type(exc).__name__)
        return " " + _("Investments, loans and bills were not updated: {reason}").format(reason=failure[1])
    assert isinstance(portfolio, Portfolio)
    if portfolio.failures:
        return " " + _("Not updated this time: {failures}").format(failures="; ".join(
            f"{resource_label(f.resource)} ({f.message})" for f in portfolio.failures))
    return ""


def _utc(moment: datetime | None) -> datetime | None:
    """A stored instant as an aware UTC datetime (a driver may hand it back naive)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def schedule_interval(provider: Provider | None, interval: timedelta | None) -> timedelta | None:
    """The schedule's interval for a provider's connections: never shorter than the provider's own minimum (how often
    its data can change at all), so scheduled syncs never ask for what cannot be new yet."""
    least = provider.min_sync_interval() if provider is not None and interval is not None else None
    return max(interval, least) if interval is not None and least is not None else interval


def _record_success(conn: sa.Connection, run_id: str, state: ConnectionState, accounts: list[Account],
                    changes: TransactionChanges, counts: ApplyCounts,
                    finished: datetime, duration: int, requests: int) -> None:
    """The connection's new state and cursor, and the run's row, in the apply's transaction."""
    upsert_connection(conn, state, now=finished, cursor=changes.cursor, success=True)
    starts = [start for _, start in changes.windows]
    if changes.set_aside:
        log.warning("sync of %s: %s", state.id, screening.summary(changes.set_aside))
    conn.execute(sync_runs.update().where(sync_runs.c.id == run_id).values(
        finished_at=finished, duration_ms=duration, outcome="success", added=counts.added,
        modified=counts.modified, removed=counts.removed, merged=counts.merged, accounts=len(accounts),
        requests=requests, window_start=min(starts) if starts else None, set_aside=len(changes.set_aside),
        message=_describe(counts, len(accounts), changes.set_aside)))


class SyncEngine:
    def __init__(self, engine: sa.Engine, providers: Mapping[str, Provider], *,
                 now: Callable[[], datetime] | None = None, secrets: SecretStore | None = None,
                 max_concurrent: int = MAX_CONCURRENT_SYNCS, directory: Directory | None = None) -> None:
        self.engine = engine
        self.providers = providers
        self.secrets = secrets
        self.directory = directory  # where connecting and deleting tell which household a connection is in
        self.max_concurrent = max_concurrent
        self._now = now or (lambda: datetime.now(UTC))
        configure_store(engine)  # a big sync spills to disk rather than growing the process

    def _today(self, provider: Provider) -> date:
        """Today on the provider's calendar (the day its accounts' rows are booked on)."""
        return self._now().astimezone(provider.local_zone).date()

    def register(self, state: ConnectionState, *, owner: str | None = None, secret: str | None = None) -> str:
        """Record a newly connected (or reconnected) item so it can be synced; its secret is stored encrypted."""
        secret = secret if secret is not None else state.secret
        if secret is not None and self.secrets is None:
            raise ValueError("Storing a provider secret needs a SecretStore")
        if self.directory is not None:  # first: a directory entry without its connection routes nothing anywhere
            self.directory.connected(state.id)
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
                        on_progress: Progress | None = None, removed: Collection[str] = (),
                        refetch: Collection[str] = ()) -> SyncResult:
        """Sync one connection. `removed`: provider transaction ids known to be gone (a webhook said so), applied
        with the fetch like the provider's own removals. `refetch`: exactly what changed, in the provider's words (a
        webhook's batch of ids): the provider fetches only that instead of everything since its cursor."""
        lock = _connection_lock(f"{self.engine.url}|{connection_id}")
        if not lock.acquire(blocking=False):
            return _already_running(connection_id)
        try:
            with locks.hold(self.engine, sync_lock_name(connection_id)) as ours:
                if not ours:
                    return _already_running(connection_id)
                return self._sync(connection_id, trigger, on_progress or (lambda _s, _f: None), removed,
                                  refetch)
        except Exception as exc:  # taking the database lock failed: the store is unreachable
            return self._failed(connection_id, None, exc, None, 0)
        finally:
            lock.release()

    def _sync(self, connection_id: str, trigger: str, progress: Progress, removed: Collection[str] = (),
              refetch: Collection[str] = ()) -> SyncResult:
        clock = time.monotonic()
        run_id: str | None = None
        state: ConnectionState | None = None
        try:  # from the first read of the store: a store that fails fails this connection only
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(connections).where(connections.c.id == connection_id)).first()
            if row is None:
                return SyncResult(connection_id, None, "failed", ApplyCounts(), _("No such connection."), "NOT_FOUND")
            provider = self.providers.get(row.provider)
            if provider is None:
                return SyncResult(connection_id, None, "failed", ApplyCounts(),
                                  _("The {provider} provider is not configured.").format(provider=row.provider),
                                  "NO_PROVIDER")
            run_id = self._start_run(connection_id, trigger)
            with counting_requests() as sent, StagedTransactions() as staged:
                progress(_("Checking the connection"), 0.05)
                state, accounts = provider.fetch_connection(row.external_id)
                if state.status in NEEDS_USER:
                    raise ReauthRequired(state.status_detail or _("This connection needs you to reconnect."),
                                         code=state.error_code or state.status.value, provider=row.provider)
                with self.engine.connect() as conn:
                    since = investments_since(conn, connection_id)
                    last_read = last_portfolio_read(conn, connection_id)
                named = {"refetch": transactions_named(refetch)} if transactions_named(refetch) else {}

                def transactions() -> TransactionChanges:  # all since the cursor, or what a webhook named
                    return provider.fetch_transactions(row.external_id, accounts, row.sync_cursor,
                                                       sink=staged.append, **named)

                portfolio: Portfolio | Exception | None = None
                if PORTFOLIO in refetch or portfolio_due(_utc(last_read), self._now()):
                    progress(_("Fetching transactions, investments, loans and bills"), 0.25)
                    changes, portfolio = at_once(
                        transactions, lambda: provider.fetch_portfolio(row.external_id, accounts, since=since))
                else:
                    progress(_("Fetching transactions"), 0.25)
                    changes = transactions()
                changes.removed.extend(sorted(set(removed) - set(changes.removed)))
                requests = sent.value
                progress(_("Saving"), 0.85)
                finished = self._now()
                duration = int((time.monotonic() - clock) * 1000)
                with self.engine.begin() as conn:
                    counts = apply_sync(conn, state=state, accounts=accounts, changes=changes, now=finished,
                                        today=self._today(provider), staged=staged)
                    # an imported row this sync's new rows describe gives way: the provider's row wins
                    replace_with_synced(conn, [a.id for a in accounts], finished, self._today(provider))
                    _record_success(conn, run_id, state, accounts, changes, counts, finished, duration, requests)
            message = _describe(counts, len(accounts), changes.set_aside)
            message += save_portfolio(self.engine, connection_id, provider.name, portfolio, [a.id for a in accounts],
                                      now=self._now(), today=self._today(provider))
            message += self._continue_predecessors(connection_id, state)
            progress(_("Done"), 1.0)
            return SyncResult(connection_id, run_id, "success", counts, message, duration_ms=duration,
                              requests=requests)
        except Exception as exc:  # every failure is recorded; none escapes to other connections
            return self._failed(connection_id, run_id, exc, state, int((time.monotonic() - clock) * 1000))

    def _continue_predecessors(self, connection_id: str, state: ConnectionState) -> str:
        """After a sync: a connection to the institution a retired connection named as its successor continues
        that connection's accounts (once: already linked accounts are left alone). A sentence when it did."""
        if state.institution is None:
            return ""
        try:
            with self.engine.begin() as conn:
                refresh_since(conn, linked_successors(conn, connection_id))
                olds = predecessors(conn, state.provider, state.institution.id, connection_id)
            linked = sum(len(self.continue_history(old, connection_id, actor="sync")) for old in olds)
        except Exception as exc:  # the sync itself succeeded; linking can be done again from the Connections page
            log.warning("continuing the history of %s failed: %s", connection_id, type(exc).__name__)
            return ""
        return " " + ngettext("{count} account continues the retired connection's history.",
                              "{count} accounts continue the retired connection's history.", linked).format(
            count=linked) if linked else ""

    def _start_run(self, connection_id: str, trigger: str) -> str:
        """Insert the run's `running` row, owned by this process; runs of this connection left running by a dead
        process, or by this one when recording their end failed, are closed first (we hold its lock)."""
        run_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            self._close_stale(conn, connection_id)
            conn.execute(sync_runs.insert().values(
                id=run_id, connection_id=connection_id, trigger=trigger, started_at=self._now(), outcome=RUNNING,
                added=0, modified=0, removed=0, merged=0, accounts=0, requests=0, process=this_process()))
        return run_id

    def close_interrupted_runs(self) -> int:
        """Close the runs a process that no longer exists left `running` (killed mid-sync) as interrupted, with a
        message; returns how many. On PostgreSQL a run nobody holds the connection's sync lock for is such a run
        too, whatever host started it. Run at start-up (`open_services`: the app, its worker and the CLI) and by
        the queue's reaper."""
        with self.engine.begin() as conn:
            return self._close_stale(conn)

    def _close_stale(self, conn: sa.Connection, connection_id: str | None = None) -> int:
        """Close stale running rows (of one connection, or all); with a connection, this process's own running rows
        of it are stale too (its sync lock is held, so none of them is in progress)."""
        query = sa.select(sync_runs.c.id, sync_runs.c.process).where(sync_runs.c.outcome == RUNNING)
        if connection_id is not None:
            query = query.where(sync_runs.c.connection_id == connection_id)
        exclusive = self.engine.dialect.name == "duckdb"
        stale: dict[str, list[str]] = {INTERRUPTED_MESSAGE: [], UNRECORDED_MESSAGE: []}
        for run in conn.execute(query.add_columns(sync_runs.c.connection_id)).all():
            if run.process == this_process():
                if connection_id is not None:
                    stale[UNRECORDED_MESSAGE].append(run.id)
            elif connection_id is not None and locks.shared_across_processes(self.engine):
                stale[INTERRUPTED_MESSAGE].append(run.id)  # we hold its database lock: no sync of it is alive
            elif process_gone(run.process, exclusive=exclusive) or (
                    not exclusive and locks.is_free(conn, sync_lock_name(run.connection_id))):
                stale[INTERRUPTED_MESSAGE].append(run.id)  # its process is gone, or nobody holds its sync's lock
        for message, ids in stale.items():
            if ids:
                conn.execute(sync_runs.update().where(sync_runs.c.id.in_(ids), sync_runs.c.outcome == RUNNING)
                             .values(outcome=INTERRUPTED, error_code="INTERRUPTED", message=str(message)))
                log.warning("closed %d sync runs as interrupted: %s", len(ids), message)
        return sum(map(len, stale.values()))

    def _failed(self, connection_id: str, run_id: str | None, exc: Exception, state: ConnectionState | None,
                duration: int) -> SyncResult:
        """Record a failed sync and say why; when the store cannot record it either, the result says so too."""
        code, message = _error_message(exc)
        if isinstance(exc, ProviderError) or code.startswith("STORE_"):  # explained by its code: no traceback
            log.warning("sync of %s failed: %s (%s)", connection_id, code, type(exc).__name__)
        else:
            log.exception("sync of %s failed (%s)", connection_id, code)
        try:
            self._record_failure(run_id, connection_id, exc, code, message, duration, state)
        except Exception as problem:
            unrecorded = store_error(problem)
            if unrecorded is None:
                log.exception("recording the failed sync of %s failed", connection_id)
            else:
                log.warning("recording the failed sync of %s failed: %s", connection_id, unrecorded.code)
                if unrecorded.code != code:
                    message = f"{message} " + _("It could not be recorded either: {message}").format(
                        message=unrecorded.message)
        retryable = (isinstance(exc, ProviderError) and exc.retryable) or code == "STORE_UNAVAILABLE"
        return SyncResult(connection_id, run_id, "failed", ApplyCounts(), message, code, duration,
                          retryable=retryable)

    def _record_failure(self, run_id: str | None, connection_id: str, exc: Exception, code: str, message: str,
                        duration: int, state: ConnectionState | None) -> None:
        """The run's end and the connection's new status; without a run row (inserting it failed) only the latter."""
        now = self._now()
        with self.engine.begin() as conn:
            if run_id is not None:
                conn.execute(sync_runs.update().where(sync_runs.c.id == run_id).values(
                    finished_at=now, duration_ms=duration, outcome="failed", error_code=code, message=message))
            values: dict[str, object] = {"last_attempt_at": now}
            if isinstance(exc, ReauthRequired):
                status = state.status if state and state.status in NEEDS_USER else ConnectionStatus.NEEDS_RECONNECT
                values |= {"status": status.value, "status_detail": message, "error_code": code}
            elif isinstance(exc, NotFound):
                values |= {"status": ConnectionStatus.REVOKED.value, "status_detail": message, "error_code": code}
            conn.execute(connections.update().where(connections.c.id == connection_id).values(**values))

    def continue_history(self, old_connection_id: str, new_connection_id: str, *, actor: str) -> dict[str, str]:
        """Link the accounts of `new_connection_id` that continue accounts of the retired `old_connection_id` (the
        new connection's provider says which: `Provider.match_accounts`), so their history is one line. Returns
        {old account id: new account id}; accounts it cannot pair stay apart."""
        found = {}
        with self.engine.connect() as conn:
            for connection_id in (old_connection_id, new_connection_id):
                row = conn.execute(sa.select(connections.c.provider).where(connections.c.id == connection_id)).first()
                if row is None:
                    raise EditError(_("No connection {id}: nothing was linked.").format(id=repr(connection_id[:80])))
                found[connection_id] = (row.provider, stored_accounts(conn, connection_id))
        provider = self.providers.get(found[new_connection_id][0])
        if provider is None:
            raise EditError(_("The {provider} provider is not configured: nothing was linked.").format(
                provider=found[new_connection_id][0]))
        old, new = found[old_connection_id][1], found[new_connection_id][1]
        by_external = {a.external_id: a for a in old}
        pairs = {by_external[old_id].id: next(a.id for a in new if a.external_id == new_id)
                 for new_id, old_id in provider.match_accounts(old, new).items()
                 if old_id in by_external and any(a.external_id == new_id for a in new)}
        with self.engine.begin() as conn:
            link_accounts(conn, pairs, now=self._now(), actor=actor)
        return pairs

    def delete_connection(self, connection_id: str, *, keep_history: bool) -> None:
        """Forget a connection locally; with keep_history its accounts and transactions stay for reports."""
        with self.engine.begin() as conn:
            if not keep_history:
                account_ids = sa.select(accounts.c.id).where(accounts.c.connection_id == connection_id)
                conn.execute(balance_history.delete().where(balance_history.c.account_id.in_(account_ids)))
                delete_portfolio(conn, connection_id)
                conn.execute(transactions.delete().where(transactions.c.connection_id == connection_id))
                conn.execute(accounts.delete().where(accounts.c.connection_id == connection_id))
                conn.execute(sync_runs.delete().where(sync_runs.c.connection_id == connection_id))
                conn.execute(connections.delete().where(connections.c.id == connection_id))
            else:
                conn.execute(connections.update().where(connections.c.id == connection_id).values(
                    status=ConnectionStatus.REVOKED.value, status_detail=_("Disconnected; history kept."),
                    encrypted_secret=None, sync_cursor=None, updated_at=self._now()))
        if self.directory is not None and not keep_history:
            self.directory.deleted(connection_id)
