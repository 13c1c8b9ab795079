"""Provider webhooks received: the thin Starlette routes (`POST /webhooks/<provider>`), storing each verified event
once, handing it to the worker, and registering our URL with the providers.

Each provider verifies and parses its own deliveries and says what each event means (`read_webhook`,
`plan_webhook`): a secret header we set when registering, or a signature of the body, per the provider's rules.
A request that fails any check is answered 4xx with the bare HTTP reason (what failed is logged, in bounded lines,
and shown on the Sync status page) and changes nothing. A verified event is stored in `webhook_events` of the
household holding its connection (finance.store.directory; a replayed id is acknowledged and ignored) and handed to
the background worker; the answer goes out at once. `plan_event` says, without touching anything, what an event
means for its connection. The sender's address is the connection's peer unless that peer is a trusted proxy
(FINANCE_TRUSTED_PROXIES), see `client_address`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from finance.config import LOOPBACK
from finance.logs import BoundedLines
from finance.model import stable_id
from finance.providers import registry
from finance.providers.webhook import (
    Plan,
    WebhookEvent,
    WebhookRejected,
)
from finance.store import connections, webhook_events

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from finance.services import Services

log = logging.getLogger(__name__)
log.addFilter(BoundedLines())  # every rejection is logged: a flood of forged requests must not fill the disk

MAX_BODY_BYTES = 64 * 1024
"""Larger requests are refused (413) before they are read to the end: real webhook bodies are a few hundred bytes."""
SECRET_HEADER = "X-Webhook-Secret"
NEW_CONNECTION_GRACE = timedelta(minutes=10)
"""A connection younger than this that never synced is left to its connect flow, which runs the first sync."""


def plan_event(services: Services, event: WebhookEvent) -> Plan:
    """What an event means for its connection, as its provider reads it (no side effects)."""
    provider = services.providers.get(event.provider)
    if provider is None:
        return Plan(note=f"no {event.provider} provider in this app: recorded only", needs_connection=False,
                    known=False)
    return provider.plan_webhook(event)


def apply_event(services: Services, conn: sa.Connection, stored: webhook_events.StoredEvent,
                now: datetime) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...], str] | None, bool]:
    """Record what one stored event says, as its provider reads it; (the sync it asks for — connection, removed ids,
    ids to refetch, event —, whether a connection changed)."""
    event = WebhookEvent(stored.id, stored.provider, stored.event_type, stored.item_id, stored.payload,
                         stored.received_at)
    plan = plan_event(services, event)
    row = connections.connection_for_item(conn, event.provider, event.item_id)

    def finish(outcome: str, detail: str) -> None:
        webhook_events.finish_event(conn, event.id, outcome=outcome, detail=detail, error=None,
                                    connection_id=row["id"] if row else None, now=now)

    if not plan.known:
        finish(webhook_events.IGNORED, plan.note)
        return None, False
    if row is None:
        finish(webhook_events.PROCESSED if not plan.needs_connection else webhook_events.IGNORED,
               plan.note if not plan.needs_connection else "not a connection of this app: ignored")
        return None, False
    if row["status"] == "revoked" and not plan.clear_signal:
        finish(webhook_events.IGNORED, "the connection is disconnected here: ignored")
        return None, False
    touched = False
    if plan.status is not None:
        connections.set_status(conn, row["id"], status=plan.status, detail=plan.detail,
                               error_code=plan.error_code, now=now)
        touched = True
    if plan.signal is not None:
        connections.set_signal(conn, row["id"], code=plan.signal, detail=plan.detail or plan.note, at=now,
                               until=plan.signal_until)
        touched = True
    if plan.clear_signal:
        connections.clear_signal(conn, row["id"])
        touched = True
    if not plan.sync:
        finish(webhook_events.PROCESSED, plan.note)
        return None, touched
    created = row["created_at"]
    created = created.replace(tzinfo=UTC) if created is not None and created.tzinfo is None else created
    if row["last_success_at"] is None and created is not None and now - created < NEW_CONNECTION_GRACE:
        finish(webhook_events.IGNORED, "the connection's first sync (run by the connect flow) fetches everything")
        return None, touched
    return (row["id"], plan.removed, plan.refetch, event.id), touched


# --------------------------------------------------------------------------------------------
# Receiving: verify, store, hand over (the routes call this in a worker thread)
# --------------------------------------------------------------------------------------------

class EventSink(Protocol):
    """Where verified events go (the background worker), with the household whose store recorded them."""

    def submit(self, event_id: str, household: str) -> None: ...

    def note_received(self, event: WebhookEvent, *, duplicate: bool, household: str) -> None: ...

    def note_rejected(self, provider: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]


class WebhookReceiver:
    """Verifies a delivery, stores it once, and hands it to the worker. Everything here is fast: no syncing."""

    def __init__(self, services: Services, sink: EventSink | None = None, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.services = services
        self.sink = sink
        self._now = now

    def receive(self, provider: str, headers: Mapping[str, str], body: bytes, client_ip: str | None) -> Reply:
        now = self._now()
        try:
            if len(body) > MAX_BODY_BYTES:
                raise WebhookRejected(413, "The body is too large.")
            found = self.services.providers.get(provider)
            if found is None:
                raise WebhookRejected(404, "No such webhook.")
            event = found.read_webhook(headers, body, client_ip, now, secret=self.services.webhook_secret,
                                       allowed_networks=self.services.settings.webhook_allowed_ips)
        except WebhookRejected as rejected:
            log.warning("%s webhook rejected (%s): %s", provider, rejected.status, rejected.reason)
            if self.sink is not None:
                self.sink.note_rejected(provider, rejected.reason)
            return Reply(rejected.status, {"error": HTTPStatus(rejected.status).phrase})
        target = self.household_of(event)
        stored = webhook_events.record_event(target.engine, id=event.id, provider=event.provider,
                                    event_type=event.type, item_id=event.item_id, received_at=event.received_at,
                                    payload=event.payload)
        if self.sink is not None:
            self.sink.note_received(event, duplicate=not stored, household=target.household)
            if stored:
                self.sink.submit(event.id, target.household)
        return Reply(200, {"status": "accepted" if stored else "duplicate"})

    def household_of(self, event: WebhookEvent) -> Services:
        """The services of the household whose connection a verified event concerns (the directory says); the
        receiving household's own when the directory does not know the connection (recorded and ignored there)."""
        from finance.services import household_services

        directory = self.services.directory
        household = directory.household_of(stable_id(event.provider, event.item_id)) \
            if directory is not None and event.item_id else None
        return household_services(self.services, household or self.services.household)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused (413) as soon as it passes `limit` bytes, whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise WebhookRejected(413, "The body is too large.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, "The body is too large.")
        chunks.append(chunk)
    return b"".join(chunks)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[str],
                   server_trusted: Sequence[str] = LOOPBACK) -> str | None:
    """The sender's address: the peer, unless the peer is a trusted proxy (`trusted`, FINANCE_TRUSTED_PROXIES); then
    the right-most X-Forwarded-For address that is not itself a trusted proxy. None when it cannot be known (an
    allow-list then refuses the request).

    The ASGI server may already have put an address from the header in the peer's place: uvicorn, as Streamlit runs
    it, does so for peers in its FORWARDED_ALLOW_IPS (`server_trusted`; loopback by default), taking the right-most
    address not in that list. So when the peer we are given is the one uvicorn would have taken from the header, the
    real peer may be any address uvicorn trusts: the header is followed then only if we trust every one of those
    too, and the address is unknown otherwise."""
    hops = [_host(hop) for value in forwarded_for for hop in value.split(",")]
    if not hops:
        return _address(peer)
    if peer is None:
        return None
    if peer == _server_pick(hops, server_trusted):
        if not _covers(trusted, server_trusted):
            return None
    elif not _within(peer, trusted):
        return _address(peer)
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return _address(hop)
    return None


def _host(hop: str) -> str:
    """The address of one X-Forwarded-For entry without a port, as uvicorn reads it (`[::1]:80`, `10.0.0.1:80`)."""
    hop = hop.strip()
    if hop.startswith("[") and "]" in hop:
        return hop[1:hop.index("]")]
    return hop.rsplit(":", 1)[0] if hop.count(":") == 1 else hop


def _address(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(text or ""))
    except ValueError:
        return None


def _within(host: str, networks: Sequence[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n) for n in networks)


def _server_pick(hops: Sequence[str], server_trusted: Sequence[str]) -> str:
    """The address uvicorn puts in a trusted peer's place: the right-most entry it does not trust, else the first."""
    return next((hop for hop in reversed(hops) if not _within(hop, server_trusted)), hops[0])


def _covers(trusted: Sequence[str], server_trusted: Sequence[str]) -> bool:
    """Whether every network in `server_trusted` lies inside one of `trusted`."""
    ours = [ipaddress.ip_network(n) for n in trusted]
    return all(any(net.version == mine.version and net.subnet_of(mine) for mine in ours)  # type: ignore[arg-type]
               for net in (ipaddress.ip_network(n) for n in server_trusted))


def routes(receiver: Callable[[], WebhookReceiver | None]) -> list[Route]:
    """`POST /webhooks/<provider>` for each provider: read the body (bounded), work out the sender's address, then
    hand both to the receiver in a thread (it touches the database) and answer with its reply."""
    import anyio.to_thread
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def endpoint(provider: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            current = receiver()
            if current is None:
                return JSONResponse({"error": HTTPStatus.SERVICE_UNAVAILABLE.phrase}, status_code=503)
            try:
                body = await read_body(request)
            except WebhookRejected as rejected:
                return JSONResponse({"error": HTTPStatus(rejected.status).phrase}, status_code=rejected.status)
            settings = current.services.settings
            client_ip = client_address(request.client.host if request.client else None,
                                       request.headers.getlist("x-forwarded-for"), settings.trusted_proxies,
                                       settings.server_trusted_proxies)
            reply = await anyio.to_thread.run_sync(current.receive, provider, dict(request.headers), body, client_ip)
            return JSONResponse(reply.body, status_code=reply.status)
        return handle

    return [Route(f"/webhooks/{name}", endpoint(name), methods=["POST"], name=f"webhook_{name}")
            for name in registry.names()]


# --------------------------------------------------------------------------------------------
# Registering our URL with the providers
# --------------------------------------------------------------------------------------------

def register_webhooks(services: Services) -> list[str]:
    """Point each provider at this app's webhook route (FINANCE_PUBLIC_URL set): one line per provider saying what
    was done, for the Sync status page."""
    done: list[str] = []
    for name, provider in services.providers.items():
        url = services.settings.webhook_url(name)
        if not url:
            continue
        with services.engine.connect() as conn:
            items = connections.live_items(conn, name)
        done.append(provider.register_webhook(url, secret=services.webhook_secret, items=items))
    return done
