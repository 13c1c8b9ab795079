"""Background work on a PostgreSQL store: a job queue in the database (procrastinate) shared by every app process
and every `python -m finance worker`.

- App processes only enqueue: a verified webhook is stored and an `apply_event` job deferred; the answer goes out at
  once. Workers run the jobs: they apply events, run the syncs those ask for, the scheduled syncs (`schedule`, each
  minute) and the reaper (`reap`, each minute).
- One sync per connection at a time across all processes: sync jobs carry the connection's job lock (procrastinate
  runs one job of a lock at a time) and the sync engine holds the connection's advisory lock (so a sync from a page
  or the CLI counts too). A sync that finds its connection busy is deferred again a few seconds later.
- Events coalesce: sync jobs carry the connection's queueing lock, so a connection has at most one waiting sync;
  events arriving meanwhile join it. The events themselves wait in `webhook_events` until a sync of their
  connection answers them, so the removals they carry are never lost to coalescing.
- Retries with backoff: a sync that failed for a reason a retry can fix is deferred again after 30 s, 1, 2, 4, 8 min;
  `apply_event` jobs use procrastinate's retry strategy.
- The reaper closes sync runs a crashed process left "running" (nobody holds their connection's lock), gives the
  jobs of workers that stopped heartbeating back to the queue, and deletes old finished jobs.
- Households: every job carries the household whose store it works on (an event's: where the receiver recorded it;
  a sync's: its connection's, from the directory), and runs on that household's services (row-level security scopes
  each transaction); the schedule and the reaper go through every household in the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import procrastinate
import sqlalchemy as sa
from procrastinate.exceptions import AlreadyEnqueued

from finance import health
from finance.config import LOCAL_HOUSEHOLD
from finance.i18n import N_, Messages
from finance.providers.webhook import PORTFOLIO, transactions_named
from finance.store import jobs as job_tables
from finance.store import webhook_events
from finance.store.connections import schedule_rows
from finance.sync import schedule_interval
from finance.webhooks import WebhookEvent, apply_event, plan_event, register_webhooks

if TYPE_CHECKING:
    from finance.services import Services
    from finance.sync import SyncResult

log = logging.getLogger(__name__)

QUEUE = "finance"
APPLY_EVENT, SYNC, SCHEDULE_TASK, REAP = "finance.apply_event", "finance.sync", "finance.schedule", "finance.reap"
WEBHOOK, SCHEDULE = "webhook", "schedule"
POLL_SECONDS = 1.0
"""How often an idle worker looks for jobs that became due (retries, deferred syncs); new jobs wake it at once
(LISTEN/NOTIFY)."""
BUSY_RETRY = timedelta(seconds=2)
MAX_BUSY = 60
"""Times a sync that found its connection busy (a sync from a page or the CLI) is deferred again."""
BACKOFF = (30, 60, 120, 240, 480)
"""Seconds before each retry of a sync that failed for a reason a retry can fix."""
ORPHAN_AFTER = timedelta(minutes=1)
"""An event still queued this long after it arrived, with no job on it (its app process died), is submitted again."""
KEEP_SUCCEEDED_HOURS, KEEP_FAILED_HOURS = 24, 24 * 7
DEFAULT_CONCURRENCY = 4
JOB_LABELS = Messages({SYNC: N_("sync"), APPLY_EVENT: N_("webhook event"), SCHEDULE_TASK: N_("schedule check"),
                       REAP: N_("clean-up")})


def job_label(task: str) -> str:
    """What a queued job does, in words (the Sync status page's queue)."""
    return JOB_LABELS.get(task) or task


def conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (`postgresql+psycopg://…`)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def uses_queue(engine: sa.Engine) -> bool:
    """Whether background work goes through the job queue: a PostgreSQL store (DuckDB runs it in-process)."""
    return engine.dialect.name == "postgresql"


class SyncFailed(Exception):
    """The sync failed (recorded on its run); the job shows as failed in the queue."""


class JobQueue:
    """The queue of one PostgreSQL store. An app process opens it to defer jobs; a worker (`run_worker`) also runs
    them, on its `Services`."""

    def __init__(self, services: Services, *, pool_size: int = 4) -> None:
        self.services = services
        dsn = conninfo(services.engine.url.render_as_string(hide_password=False))
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1,
                                                                             max_size=pool_size))
        # Deferring goes through a synchronous pool of its own: the pages, the webhook routes and the tasks (which
        # run in threads beside the worker's event loop) all defer from plain threads.
        self._deferrer = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=dsn, min_size=1,
                                                                                       max_size=pool_size))
        self._define_tasks()
        self._open = False

    # -- deferring (any process) --------------------------------------------------------------
    def open(self) -> JobQueue:
        if not self._open:
            self._deferrer.open()
            self._open = True
        return self

    def close(self) -> None:
        if self._open:
            self._deferrer.close()
            self._open = False

    def submit_event(self, event_id: str, household: str = LOCAL_HOUSEHOLD) -> None:
        """A webhook event stored in `household`'s store, for a worker to apply."""
        self._deferrer.configure_task(APPLY_EVENT, queue=QUEUE, queueing_lock=f"event:{event_id}").defer(
            event_id=event_id, household=household)

    def request_sync(self, connection_id: str, trigger: str, *, delay: timedelta = timedelta(0), attempt: int = 0,
                     busy: int = 0) -> bool:
        """Queue a sync of the connection, in its household (the directory's; the local one for a connection it
        does not know); False when one is already waiting (this request joins it). No debounce: events arriving while
        the sync runs coalesce into the one waiting behind it."""
        directory = self.services.directory
        household = (directory.household_of(connection_id) if directory is not None else None) or LOCAL_HOUSEHOLD
        try:
            self._deferrer.configure_task(
                SYNC, queue=QUEUE, lock=f"sync:{connection_id}", queueing_lock=f"sync:{connection_id}",
                schedule_in={"seconds": delay.total_seconds()},
            ).defer(connection_id=connection_id, trigger=trigger, attempt=attempt, busy=busy, household=household)
        except AlreadyEnqueued:
            return False
        return True

    def household(self, household: str) -> Services:
        """The services a job of `household` runs on."""
        from finance.services import household_services

        return household_services(self.services, household)

    def households(self) -> list[Services]:
        """The services of every household in the directory, the local one first."""
        directory = self.services.directory
        return [self.household(h) for h in directory.households()] if directory is not None else [self.services]

    # -- the tasks ------------------------------------------------------------------------------
    def _define_tasks(self) -> None:
        app = self.app

        @app.task(name=APPLY_EVENT, queue=QUEUE, retry=procrastinate.RetryStrategy(max_attempts=5, wait=2,
                                                                                   exponential_wait=2))
        def apply_event_job(event_id: str, household: str = LOCAL_HOUSEHOLD) -> None:
            self.apply_event(event_id, household=household)

        @app.task(name=SYNC, queue=QUEUE)
        def sync_job(connection_id: str, trigger: str, attempt: int = 0, busy: int = 0,
                     household: str = LOCAL_HOUSEHOLD) -> None:
            self.sync(connection_id, trigger, attempt=attempt, busy=busy, household=household)

        @app.periodic(cron="* * * * *", periodic_id="schedule")
        @app.task(name=SCHEDULE_TASK, queue=QUEUE)
        def schedule_job(timestamp: int) -> None:
            self.schedule(datetime.fromtimestamp(timestamp, UTC))

        @app.periodic(cron="* * * * *", periodic_id="reap")
        @app.task(name=REAP, queue=QUEUE)
        async def reap_job(timestamp: int) -> None:
            await self.reap()

    def apply_event(self, event_id: str, now: datetime | None = None, *, household: str = LOCAL_HOUSEHOLD) -> None:
        """Record what an event stored in `household`'s store says; when it asks for a sync, it waits for one
        (assigned to its connection)."""
        services = self.household(household)
        now = now or datetime.now(UTC)
        with services.engine.begin() as conn:
            stored = webhook_events.queued_events(conn, [event_id])
            if not stored:
                return  # answered already (a job run twice)
            request, _ = apply_event(services, conn, stored[0], now)
            if request is not None:
                webhook_events.assign_event(conn, event_id, request[0])
        if request is not None:
            self.request_sync(request[0], WEBHOOK)

    def sync(self, connection_id: str, trigger: str, *, attempt: int = 0, busy: int = 0,
             household: str = LOCAL_HOUSEHOLD) -> SyncResult:
        """Run one sync of the connection, in `household`'s store, with the removals its waiting events carry, then
        answer those events."""
        services = self.household(household)
        with services.engine.connect() as conn:
            events = webhook_events.awaiting_sync(conn, connection_id)
        plans = [plan_event(services, _event(e)) for e in events]
        removed = sorted({r for plan in plans for r in plan.removed})
        # Only what the events named, when every one of them named it and nothing else asked for this sync.
        precise = trigger == WEBHOOK and bool(plans) and all(transactions_named(plan.refetch) for plan in plans)
        named = {r for plan in plans for r in plan.refetch}
        refetch = sorted(named) if precise else sorted(named & {PORTFOLIO})  # a portfolio change is read anyway
        result = services.sync.sync_connection(connection_id, trigger=trigger, removed=removed, refetch=refetch)
        if result.outcome == "skipped":
            if busy + 1 < MAX_BUSY:
                self.request_sync(connection_id, trigger, delay=BUSY_RETRY, attempt=attempt, busy=busy + 1)
                return result
            log.warning("sync of %s: another sync kept running; giving up until the next request", connection_id)
            return result
        ids = [e.id for e in events]
        if result.outcome == "success":
            self._finish(services, connection_id, ids, webhook_events.PROCESSED, result)
        elif result.retryable and attempt < len(BACKOFF):
            self.request_sync(connection_id, trigger, delay=timedelta(seconds=BACKOFF[attempt]), attempt=attempt + 1)
        else:  # final: answer the events, except those whose removals wait for the connection's next good sync
            carried = [e.id for e in events if _removals(services, e)]
            self._finish(services, connection_id, [e.id for e in events if e.id not in carried], webhook_events.FAILED,
                         result)
            self._finish(services, connection_id, carried, webhook_events.QUEUED, result)  # the reaper leaves them
        services.alerts.after_sync()
        if result.outcome != "success":
            raise SyncFailed(f"{result.error_code}: {result.message}")
        return result

    @staticmethod
    def _finish(services: Services, connection_id: str, ids: list[str], outcome: str, result: SyncResult) -> None:
        if ids:
            with services.engine.begin() as conn:
                webhook_events.finish_events(conn, ids, outcome=outcome, detail=result.message,
                                             error=result.error_code, connection_id=connection_id,
                                             now=datetime.now(UTC))

    def schedule(self, now: datetime) -> list[str]:
        """Queue the connections of every household whose scheduled sync is due: the settings' interval, never
        shorter than what the connection's provider refreshes at; returns the ones queued."""
        queued = []
        for services in self.households():
            with services.engine.connect() as conn:
                rows = [r for r in schedule_rows(conn) if r["id"] not in job_tables.active_syncs(conn)]
            for row in rows:
                provider = services.providers.get(row["provider"])
                interval = schedule_interval(provider, services.settings.sync_interval)
                if provider is None or interval is None:
                    continue
                due = health.next_sync_at(row, interval)
                if due is not None and due <= now and self.request_sync(row["id"], SCHEDULE):
                    queued.append(row["id"])
        return queued

    async def reap(self) -> None:
        """Close runs a crashed process left running, hand back the jobs of dead workers, resubmit orphaned events
        and delete old finished jobs."""
        manager = self.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=job_tables.ALIVE_WITHIN.total_seconds()):
            log.warning("job %s (%s) of a worker that stopped: run again", job.id, job.task_name)
            await manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
            await asyncio.to_thread(self._requeue, job.task_name, job.task_kwargs)
        await asyncio.to_thread(self._reap_store)
        await manager.delete_old_jobs(nb_hours=KEEP_SUCCEEDED_HOURS, queue=QUEUE)
        await manager.delete_old_jobs(nb_hours=KEEP_FAILED_HOURS, queue=QUEUE, include_failed=True)

    def _requeue(self, task: str, kwargs: dict[str, Any]) -> None:
        if task == SYNC:
            self.request_sync(str(kwargs["connection_id"]), str(kwargs.get("trigger", SCHEDULE)))
        elif task == APPLY_EVENT:
            self.submit_event(str(kwargs["event_id"]), str(kwargs.get("household", LOCAL_HOUSEHOLD)))

    def _reap_store(self) -> None:
        for services in self.households():
            self._reap_household(services)

    def _reap_household(self, services: Services) -> None:
        closed = services.sync.close_interrupted_runs()
        if closed:
            log.warning("closed %d sync runs left running by a stopped process", closed)
        with services.engine.connect() as conn:
            orphans = webhook_events.orphaned_events(conn, datetime.now(UTC) - ORPHAN_AFTER)
            active = job_tables.active_events(conn)
        for event_id, connection_id in orphans:
            if connection_id is not None:
                self.request_sync(connection_id, WEBHOOK)  # joins a waiting sync if there is one
            elif event_id not in active:
                with contextlib.suppress(AlreadyEnqueued):
                    self.submit_event(event_id, services.household)

    # -- running (a worker process) -------------------------------------------------------------
    def run_worker(self, *, concurrency: int = DEFAULT_CONCURRENCY, register: bool = True) -> None:
        """Run jobs until SIGINT/SIGTERM (procrastinate finishes the running ones first)."""
        if register and self.services.settings.public_url:
            try:
                for services in self.households():  # each household's items point at this app
                    for line in register_webhooks(services):
                        log.info("%s", line)
            except Exception:  # a provider being down must not stop the worker
                log.exception("webhook registration failed")
        self.open()
        try:
            self.app.run_worker(queues=[QUEUE], concurrency=concurrency, wait=True, install_signal_handlers=True,
                                fetch_job_polling_interval=POLL_SECONDS, update_heartbeat_interval=10.0,
                                stalled_worker_timeout=job_tables.ALIVE_WITHIN.total_seconds())
        finally:
            self.close()


def _event(stored: webhook_events.StoredEvent) -> WebhookEvent:
    return WebhookEvent(stored.id, stored.provider, stored.event_type, stored.item_id, stored.payload,
                        stored.received_at)


def _removals(services: Services, stored: webhook_events.StoredEvent) -> bool:
    return bool(plan_event(services, _event(stored)).removed)


# --------------------------------------------------------------------------------------------
# An app process's side: the webhook routes enqueue
# --------------------------------------------------------------------------------------------

class QueueSink:
    """Where an app process's webhook receiver hands verified events on PostgreSQL: the job queue. Keeps this
    process's counts for the status route."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.last_rejection: str | None = None

    def submit(self, event_id: str, household: str = LOCAL_HOUSEHOLD) -> None:
        with contextlib.suppress(AlreadyEnqueued):  # the reaper resubmitted it meanwhile
            self.queue.submit_event(event_id, household)

    def note_received(self, event: WebhookEvent, *, duplicate: bool, household: str = LOCAL_HOUSEHOLD) -> None:
        with self._lock:
            self.counts["duplicates" if duplicate else "received"] += 1

    def note_rejected(self, provider: str, reason: str) -> None:
        with self._lock:
            self.counts["rejected"] += 1
            self.last_rejection = f"{provider}: {reason}"
