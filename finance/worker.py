"""The app process's background worker: it applies webhook events, runs the syncs they ask for, and runs the
scheduled syncs (every FINANCE_SYNC_INTERVAL, default 6 h).

- One worker per household in the app process (`HouseholdWorkers`), started by the `st.App` lifespan
  (`start_background`), each on the same `Services` as that household's pages (DuckDB admits one process per file).
  Webhook events reach the worker of their connection's household; every household in the directory gets a worker,
  so its scheduled syncs run even while nobody has it open.
- Single flight per connection: the sync engine's lock; a sync skipped because another is running is retried.
- Storms coalesce: a connection has at most one pending sync; events arriving while it is queued or running join
  it, so hundreds of events for one item cost a bounded number of syncs (one running, one pending).
- Scheduled syncs pause for a connection that needs the user (reconnect, a code, revoked) and resume once a
  reconnect made it active again (`health.next_sync_at`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import sqlalchemy as sa

from finance import health, jobs
from finance.config import LOCAL_HOUSEHOLD
from finance.providers.webhook import PORTFOLIO, transactions_named
from finance.store import connections, webhook_events
from finance.store import jobs as job_tables
from finance.sync import schedule_interval
from finance.webhooks import WebhookEvent, WebhookReceiver, apply_event, register_webhooks

if TYPE_CHECKING:
    from starlette.routing import Route

    from finance.control_server import ControlServer
    from finance.services import Services
    from finance.sync import SyncResult

log = logging.getLogger(__name__)
T = TypeVar("T")

WEBHOOK, SCHEDULE = "webhook", "schedule"
DEBOUNCE = 0.5
"""Seconds a webhook-triggered sync waits for more events of the same connection before it starts."""
SKIPPED_RETRY = 2.0
MAX_SKIPPED = 30
CHECK_EVERY = 30.0


@dataclass(slots=True)
class _Pending:
    trigger: str
    due: float
    removed: set[str] = field(default_factory=set)
    events: list[str] = field(default_factory=list)
    attempts: int = 0
    refetch: set[str] = field(default_factory=set)
    full: bool = True  # False: only what `refetch` names needs fetching (every request joined was that precise)


@dataclass(frozen=True, slots=True)
class QueuedSync:
    connection_id: str
    trigger: str
    due_in: float
    events: int
    removals: int


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What the Sync status page shows about background work."""

    running: bool
    started_at: datetime | None
    interval: timedelta | None
    current: str | None
    queue: tuple[QueuedSync, ...]
    next_runs: dict[str, datetime]
    intervals: dict[str, timedelta]  # per connection: the schedule's interval, never below its provider's minimum
    paused: tuple[str, ...]
    last_webhook: tuple[str, str, datetime] | None
    received: int
    duplicates: int
    rejected: int
    last_rejection: str | None
    syncs: dict[str, int]
    registration: tuple[str, ...]
    data_version: int
    last_error: str | None


class Worker:
    """Background work on one thread. `start()` runs it; tests may instead call `run_until_idle()`."""

    def __init__(self, services: Services, *, interval: timedelta | Literal["settings"] | None = "settings",
                 debounce: float = DEBOUNCE, skipped_retry: float = SKIPPED_RETRY, check_every: float = CHECK_EVERY,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic, register: bool = True,
                 on_schedule: Callable[[], None] | None = None) -> None:
        self.services = services
        self._on_schedule = on_schedule  # called at each schedule check (HouseholdWorkers finds new households)
        self.interval = services.settings.sync_interval if interval == "settings" else interval
        self._debounce = debounce
        self._skipped_retry = skipped_retry
        self._check_every = check_every
        self._now = now
        self._mono = monotonic
        self._register = register
        self._cond = threading.Condition()
        self._events: deque[str] = deque()
        self._pending: dict[str, _Pending] = {}
        self._carry: dict[str, set[str]] = {}
        self._current: str | None = None
        self._next_check = 0.0
        self._next_runs: dict[str, datetime] = {}
        self._intervals: dict[str, timedelta] = {}
        self._paused: tuple[str, ...] = ()
        self._scheduled_tries: dict[str, datetime] = {}
        self._thread: threading.Thread | None = None
        self._stop = False
        self._started_at: datetime | None = None
        self._last_webhook: tuple[str, str, datetime] | None = None
        self._counts: Counter[str] = Counter()
        self._syncs: Counter[str] = Counter()
        self._last_rejection: str | None = None
        self._registration: tuple[str, ...] = ()
        self._last_error: str | None = None
        self.data_version = 0

    # -- feeding it --------------------------------------------------------------------------
    def submit(self, event_id: str, household: str | None = None) -> None:
        """A stored webhook event to process (stored in this worker's household's store)."""
        with self._cond:
            self._events.append(event_id)
            self._cond.notify_all()

    def note_received(self, event: WebhookEvent, *, duplicate: bool, household: str | None = None) -> None:
        with self._cond:
            self._counts["duplicates" if duplicate else "received"] += 1
            self._last_webhook = (event.provider, event.type, event.received_at)

    def note_rejected(self, provider: str, reason: str) -> None:
        with self._cond:
            self._counts["rejected"] += 1
            self._last_rejection = f"{provider}: {reason}"

    def request_sync(self, connection_id: str, trigger: str, *, removed: Iterable[str] = (),
                     events: Iterable[str] = (), delay: float | None = None, refetch: Iterable[str] = ()) -> None:
        """Queue a sync; one already queued for the connection absorbs this one (the storm coalesces). refetch: what
        changed (a webhook's transaction ids): the sync fetches only that, unless a request for a whole sync joins."""
        refetch = set(refetch)
        whole = not transactions_named(refetch)  # a PORTFOLIO entry alone still asks for every transaction
        with self._cond:
            due = self._mono() + (self._debounce if delay is None else delay)
            pending = self._pending.get(connection_id)
            if pending is None:
                pending = self._pending[connection_id] = _Pending(trigger, due, full=whole)
            else:
                pending.full |= whole
                if trigger == WEBHOOK:
                    pending.trigger = WEBHOOK  # a webhook's reason outranks the schedule's
            pending.removed.update(removed)
            pending.refetch |= refetch
            pending.events.extend(events)
            self._cond.notify_all()

    # -- running it --------------------------------------------------------------------------
    def start(self) -> Worker:
        with self._cond:
            if self._thread is not None:
                return self
            self._stop = False
            self._started_at = self._now()
            self._thread = threading.Thread(target=self._main, name="finance-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None

    def _main(self) -> None:
        self._startup()
        while True:
            work = self._take(block=True)
            if work is None:
                return
            self._do(work)

    def _startup(self) -> None:
        """Register our webhook URLs (when FINANCE_PUBLIC_URL is set) and pick up events a stop left queued."""
        if self._register and self.services.settings.public_url:
            try:
                self._registration = tuple(register_webhooks(self.services))
            except Exception as exc:  # a provider being down must not stop background work
                log.exception("webhook registration failed")
                self._registration = (f"Webhook registration failed ({type(exc).__name__}).",)
        with self.services.engine.connect() as conn:
            left = [e.id for e in webhook_events.queued_events(conn)]
        with self._cond:
            self._events.extend(left)

    def run_until_idle(self, *, max_steps: int = 10_000, wait_for_due: bool = True) -> int:
        """Do everything queued now, on the calling thread (tests, benchmarks); returns the syncs run. wait_for_due:
        also run syncs whose debounce has not elapsed yet (sleeping until they are due)."""
        before = sum(self._syncs.values())
        for _ in range(max_steps):
            work = self._take(block=False, include_schedule=False)
            if work is None:
                with self._cond:
                    waits = [p.due for p in self._pending.values()]
                if not (wait_for_due and waits):
                    break
                time.sleep(max(0.0, min(waits) - self._mono()))
                continue
            self._do(work)
        return sum(self._syncs.values()) - before

    def check_schedule(self) -> None:
        """Queue the connections whose scheduled sync is due (the thread does this every half minute)."""
        self._do(("schedule",))

    def _take(self, *, block: bool, include_schedule: bool = True) -> tuple[Any, ...] | None:
        with self._cond:
            while not self._stop:
                if self._events:
                    ids = list(self._events)
                    self._events.clear()
                    return ("events", ids)
                now = self._mono()
                due = [(p.due, cid) for cid, p in self._pending.items() if p.due <= now and cid != self._current]
                if due:
                    _, cid = min(due)
                    self._current = cid
                    return ("sync", cid, self._pending.pop(cid))
                if include_schedule and now >= self._next_check:
                    self._next_check = now + self._check_every
                    return ("schedule",)
                if not block:
                    return None
                wake = [self._next_check] + [p.due for c, p in self._pending.items() if c != self._current]
                self._cond.wait(max(0.01, min(wake) - now))
            return None

    def _do(self, work: tuple[Any, ...]) -> None:
        try:
            if work[0] == "events":
                self._process_events(work[1])
            elif work[0] == "sync":
                self._run_sync(work[1], work[2])
            else:
                self._schedule()
        except Exception as exc:  # background work must survive anything; the page shows the last error
            log.exception("background work failed")
            self._last_error = f"{type(exc).__name__} while handling {work[0]}"
        finally:
            if work[0] == "sync":
                with self._cond:
                    self._current = None
                    self._cond.notify_all()

    # -- events -------------------------------------------------------------------------------
    def _process_events(self, ids: list[str]) -> None:
        engine = self.services.engine
        with engine.connect() as conn:
            stored = webhook_events.queued_events(conn, ids)
        now = self._now()

        def apply() -> tuple[list[tuple[str, tuple[str, ...], tuple[str, ...], str]], bool]:
            syncs, changed = [], False
            with engine.begin() as conn:
                for event in stored:
                    request, touched = apply_event(self.services, conn, event, now)
                    changed |= touched
                    if request is not None:
                        syncs.append(request)
            return syncs, changed

        syncs, changed = _retrying(apply)
        if changed:
            self._bump()
        for connection_id, removed, refetch, event_id in syncs:
            self.request_sync(connection_id, WEBHOOK, removed=removed, events=[event_id], refetch=refetch)

    # -- syncs --------------------------------------------------------------------------------
    def _run_sync(self, connection_id: str, pending: _Pending) -> None:
        removed = pending.removed | self._carry.get(connection_id, set())
        refetch = sorted(pending.refetch) if not pending.full else sorted(pending.refetch & {PORTFOLIO})
        result: SyncResult = self.services.sync.sync_connection(connection_id, trigger=pending.trigger,
                                                                removed=sorted(removed), refetch=refetch)
        if result.outcome == "skipped":
            pending.attempts += 1
            if pending.attempts < MAX_SKIPPED:
                with self._cond:
                    again = self._pending.get(connection_id)
                    if again is None:
                        again = self._pending[connection_id] = _Pending(pending.trigger, 0.0, full=pending.full)
                    again.full |= pending.full
                    again.due = self._mono() + self._skipped_retry
                    again.removed |= pending.removed
                    again.refetch |= pending.refetch
                    again.events[:0] = pending.events
                    again.attempts = max(again.attempts, pending.attempts)
                return
            self._finish_events(connection_id, pending.events, webhook_events.IGNORED,
                                "another sync of the connection kept running", None)
            return
        with self._cond:
            self._syncs[pending.trigger] += 1
        if result.outcome == "success":
            self._carry.pop(connection_id, None)
            self._finish_events(connection_id, pending.events, webhook_events.PROCESSED, result.message, None)
        else:
            if removed:
                self._carry[connection_id] = removed  # the next sync of this connection applies them
            self._finish_events(connection_id, pending.events, webhook_events.FAILED, result.message, result.error_code)
        self.services.after_sync()  # alerts, and the analysts' snapshot
        self._bump()

    def _finish_events(self, connection_id: str, ids: list[str], outcome: str, detail: str,
                       error: str | None) -> None:
        if not ids:
            return

        def finish() -> None:
            with self.services.engine.begin() as conn:
                webhook_events.finish_events(conn, ids, outcome=outcome, detail=detail, error=error,
                                    connection_id=connection_id, now=self._now())

        _retrying(finish)

    # -- schedule -----------------------------------------------------------------------------
    def _schedule(self) -> None:
        if self._on_schedule is not None:
            self._on_schedule()
        now = self._now()
        with self.services.engine.connect() as conn:
            rows = connections.schedule_rows(conn)
        next_runs: dict[str, datetime] = {}
        intervals: dict[str, timedelta] = {}
        paused = []
        for row in rows:
            interval = schedule_interval(self.services.providers.get(row["provider"]), self.interval)
            if interval is not None:
                intervals[row["id"]] = interval
            due = health.next_sync_at(row, interval)
            if due is None:
                if self.interval is not None and health.is_paused(row):
                    paused.append(row["id"])
                continue
            tried = self._scheduled_tries.get(row["id"])
            if tried is not None and interval is not None:
                due = max(due, tried + interval)  # a sync that failed without recording still waits its turn
            next_runs[row["id"]] = due
            if due <= now:
                self._scheduled_tries[row["id"]] = now
                self.request_sync(row["id"], SCHEDULE, delay=0.0)
        with self._cond:
            self._next_runs, self._paused, self._intervals = next_runs, tuple(paused), intervals
            upcoming = [d for d in next_runs.values() if d > now]
            if upcoming:
                seconds = (min(upcoming) - now).total_seconds()
                self._next_check = min(self._next_check, self._mono() + max(1.0, seconds))

    # -- reporting ----------------------------------------------------------------------------
    def data_changed(self) -> None:
        """Something outside the worker changed the store (a CLI job): the pages redraw."""
        self._bump()

    def _bump(self) -> None:
        with self._cond:
            self.data_version += 1

    def snapshot(self) -> WorkerState:
        with self._cond:
            now = self._mono()
            pending = sorted(self._pending.items(), key=lambda kv: kv[1].due)
            return WorkerState(queue=tuple(QueuedSync(c, p.trigger, max(0.0, p.due - now), len(p.events),
                                                      len(p.removed)) for c, p in pending),
                running=self._thread is not None and self._thread.is_alive(), started_at=self._started_at,
                interval=self.interval, current=self._current, next_runs=dict(self._next_runs),
                intervals=dict(self._intervals), paused=self._paused, last_webhook=self._last_webhook,
                received=self._counts["received"], duplicates=self._counts["duplicates"],
                rejected=self._counts["rejected"], last_rejection=self._last_rejection, syncs=dict(self._syncs),
                registration=self._registration, data_version=self.data_version, last_error=self._last_error)


def _retrying(write: Callable[[], T], attempts: int = 5, pause: float = 0.2) -> T:
    """Run a write transaction again when it lost a race: DuckDB refuses a commit that conflicts with another
    thread's (a sync started from a page updating the same connection row)."""
    for attempt in range(attempts):
        try:
            return write()
        except sa.exc.DBAPIError as exc:
            if attempt == attempts - 1 or "conflict" not in str(exc).lower():
                raise
            time.sleep(pause * (attempt + 1))
    raise AssertionError("unreachable")


class HouseholdWorkers:
    """The app process's background work on DuckDB: one `Worker` per household, each on its household's shared
    services (its own store file). As the webhook receiver's sink it hands each event to the worker of the household
    that recorded it; at each of the local worker's schedule checks it starts a worker for every household the
    directory knows, so scheduled syncs cover households nobody has open."""

    def __init__(self, services: Services, **options: Any) -> None:
        self.services = services  # the local household's
        self._options = options  # for each Worker (tests: interval, debounce, clocks)
        self._lock = threading.Lock()
        self._workers: dict[str, Worker] = {}
        self._started = False

    def worker(self, household: str) -> Worker:
        """The household's worker, opened (and started, when the others run) the first time it is needed."""
        from finance.services import household_services

        with self._lock:
            found = self._workers.get(household)
            if found is not None:
                return found
            services = household_services(self.services, household)
            local = household == self.services.household
            found = self._workers[household] = Worker(services, on_schedule=self.discover if local else None,
                                                      **self._options)
            start = self._started
        if start:
            self._start(found)
        return found

    def discover(self) -> None:
        """A worker for every household in the directory (a household's store is opened once, then kept)."""
        if self.services.directory is not None:
            for household in self.services.directory.households():
                self.worker(household)

    def workers(self) -> dict[str, Worker]:
        with self._lock:
            return dict(self._workers)

    def _start(self, worker: Worker) -> None:
        worker.start()
        worker.services.analytics.refresh(only_if_stale=True)  # the analysts' snapshot is current from the start

    def start(self) -> Worker:
        """Start the local household's worker (it finds the others at its first schedule check); returns it."""
        local = self.worker(self.services.household)
        with self._lock:
            self._started = True
        self._start(local)
        return local

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._started = False
        for worker in self.workers().values():
            worker.stop(timeout)

    def check_schedule(self) -> None:
        """Every household's schedule check now (tests; the threads do this every half minute)."""
        self.discover()
        for worker in self.workers().values():
            worker.check_schedule()

    def run_until_idle(self) -> int:
        """Every household's queued work, on the calling thread (tests); returns the syncs run."""
        return sum(worker.run_until_idle() for worker in self.workers().values())

    # -- the webhook receiver's sink ------------------------------------------------------------------
    def submit(self, event_id: str, household: str) -> None:
        self.worker(household).submit(event_id)

    def note_received(self, event: WebhookEvent, *, duplicate: bool, household: str) -> None:
        self.worker(household).note_received(event, duplicate=duplicate)

    def note_rejected(self, provider: str, reason: str) -> None:
        self.worker(self.services.household).note_rejected(provider, reason)  # no household: it was never read


# --------------------------------------------------------------------------------------------
# The process's background work (started by the st.App lifespan in app.py)
# --------------------------------------------------------------------------------------------

_lock = threading.Lock()
_workers: HouseholdWorkers | None = None
_receiver: WebhookReceiver | None = None
_queue: jobs.QueueSink | None = None
_control: ControlServer | None = None


def current(household: str = LOCAL_HOUSEHOLD) -> Worker | None:
    """The household's worker in this process, if the app server started background work (not under AppTest or the
    CLI, nor on PostgreSQL, where `python -m finance worker` processes do it)."""
    workers = _workers
    return workers.worker(household) if workers is not None else None


def current_receiver() -> WebhookReceiver | None:
    return _receiver


def start_background(services: Services | None = None) -> Worker | None:
    """Start background work on the process's shared services; with FINANCE_PUBLIC_URL set, the in-process sandbox
    emulators start delivering their webhooks to this app. On DuckDB the worker, the webhook receiver and the CLI's
    control server (finance.control_server) run here (the worker is returned); on PostgreSQL the webhook routes only
    enqueue, for `python -m finance worker` processes (None)."""
    global _workers, _receiver, _queue, _control
    from finance.control_server import ControlServer
    from finance.providers.registry import offline_emulators
    from finance.services import shared_services

    services = services or shared_services()
    with _lock:
        if _receiver is not None:
            return current(services.household)
        if services.settings.public_url:
            for emulator in offline_emulators(services.settings).values():
                emulator.deliver_webhooks(time_scale=services.settings.sandbox_webhook_time_scale)
        if jobs.uses_queue(services.engine):
            _queue = jobs.QueueSink(jobs.JobQueue(services).open())
            _receiver = WebhookReceiver(services, _queue)
            return None
        _workers = HouseholdWorkers(services)
        _receiver = WebhookReceiver(services, _workers)
        worker = _workers.start()
        _control = ControlServer(services, after_job=lambda: (services.after_sync(), worker.data_changed())).start()
        return worker


def stop_background() -> None:
    global _workers, _receiver, _queue, _control
    from finance.providers.registry import offline_emulators

    with _lock:
        receiver, workers, queue, control = _receiver, _workers, _queue, _control
        _workers, _receiver, _queue, _control = None, None, None, None
    if control is not None:
        control.stop()
    if workers is not None:
        workers.stop()
    if queue is not None:
        queue.queue.close()
    if receiver is not None:
        for emulator in offline_emulators(receiver.services.settings).values():
            emulator.stop_webhook_delivery()


def status_route() -> Route:
    """`GET /api/status`: counts only (transactions, connections per status, webhook events per outcome) and the
    worker's queue, for monitoring and the end-to-end test. Answered to loopback clients only."""
    import anyio.to_thread
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def read() -> dict[str, Any]:
        worker, receiver, queue = current(), current_receiver(), _queue
        if receiver is None:
            return {"worker": None}
        with receiver.services.engine.connect() as conn:
            body = webhook_events.summary(conn)
            if queue is not None:
                counts = job_tables.queue_counts(conn, limit=0)
                body["queue"] = {"waiting": counts.waiting, "running": counts.running, "failed": counts.failed,
                                 "workers": counts.workers, **queue.counts}
        if worker is None:
            return body | {"worker": None}
        state = worker.snapshot()
        body["worker"] = {"running": state.running, "queue": len(state.queue), "syncing": state.current is not None,
                          "received": state.received, "duplicates": state.duplicates, "rejected": state.rejected,
                          "syncs": state.syncs, "data_version": state.data_version}
        return body

    async def status(request: Request) -> Response:
        host = request.client.host if request.client else ""
        proxied = any(name in request.headers for name in ("x-forwarded-for", "forwarded", "x-real-ip"))
        if host not in ("127.0.0.1", "::1", "localhost") or proxied:  # a reverse proxy on this machine is loopback
            return JSONResponse({"error": "Not found."}, status_code=404)
        return JSONResponse(await anyio.to_thread.run_sync(read))

    return Route("/api/status", status, methods=["GET"], name="finance_status")
