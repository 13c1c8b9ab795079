"""Provider webhooks: verification, parsing, what each event means, registration, and the thin Starlette routes.

- Pluggy authenticates with a shared secret in a header we set when registering the webhook (`POST /webhooks`
  with `headers`), compared in constant time, plus an optional allow-list of source addresses.
- Plaid signs each delivery (finance.providers.plaid.webhooks).

A request that fails any check is answered 4xx and changes nothing. A verified event is stored in `webhook_events`
(a replayed id is acknowledged and ignored) and handed to the background worker; the answer goes out at once.
`plan_event` says, without touching anything, what an event means for its connection.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from finance.errors import ProviderError
from finance.model import ConnectionStatus
from finance.providers import pluggy as pluggy_provider
from finance.providers.plaid import webhooks as plaid_webhooks
from finance.providers.plaid.webhooks import PlaidKeys, no_keys, parse_plaid, verify_plaid
from finance.providers.webhook import (
    MAX_ID_LENGTH,
    MAX_LISTED_IDS,
    SYNC_NOTE,
    Plan,
    WebhookEvent,
    WebhookRejected,
    error_plan,
    json_object,
    lower_headers,
    text_field,
)
from finance.store import connections, webhook_events

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from finance.services import Services

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""Larger requests are refused (413) before they are read to the end: real webhook bodies are a few hundred bytes."""
SECRET_HEADER = "X-Webhook-Secret"


# --------------------------------------------------------------------------------------------
# Pluggy
# --------------------------------------------------------------------------------------------

def verify_pluggy(headers: Mapping[str, str], client_ip: str | None, *, secret: str,
                  allowed_networks: Sequence[str] = ()) -> None:
    """Raise WebhookRejected unless the request comes from an allowed address and carries our secret header."""
    if allowed_networks:
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            raise WebhookRejected(403, "The sender's address is not allowed.") from None
        if not any(address in ipaddress.ip_network(n) for n in allowed_networks):
            raise WebhookRejected(403, "The sender's address is not allowed.")
    provided = lower_headers(headers).get(SECRET_HEADER.lower())
    if not secret or provided is None or not hmac.compare_digest(provided.encode(), secret.encode()):
        raise WebhookRejected(401, "The webhook secret is missing or wrong.")


def parse_pluggy(body: bytes, received_at: datetime) -> WebhookEvent:
    """A Pluggy event from its body: `event` and `eventId` are required; `itemId` names the connection."""
    payload = json_object(body)
    event = text_field(payload, "event")
    event_id = text_field(payload, "eventId")
    item_id = text_field(payload, "itemId", required=False)
    ids = payload.get("transactionIds")
    if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_LISTED_IDS
                            or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH for i in ids)):
        raise WebhookRejected(400, "transactionIds is not a list of ids.")
    return WebhookEvent(f"pluggy:{event_id}", "pluggy", str(event), item_id, payload, received_at)


# --------------------------------------------------------------------------------------------
# What an event means (pure)
# --------------------------------------------------------------------------------------------

SIGNAL_MESSAGES = {
    "ITEM_DELETED": "Pluggy deleted this connection (idle sandbox items and retired connectors are removed). "
                    "Connect the bank again to resume syncing; the history here is kept.",
}


def _plan_pluggy(event: WebhookEvent) -> Plan:
    payload, kind = event.payload, event.type
    if kind in ("item/created", "item/updated", "item/login_succeeded", "transactions/created",
                "transactions/updated"):
        return Plan(note=f"{kind}: {SYNC_NOTE}", sync=True)
    if kind == "transactions/deleted":
        ids = tuple(payload.get("transactionIds") or ())
        return Plan(note=f"{len(ids)} transactions deleted at Pluggy: removed with a sync", sync=True, removed=ids)
    if kind == "item/error":
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        code = str(error.get("code") or "UNEXPECTED_ERROR")[:MAX_ID_LENGTH]
        message = pluggy_provider.ERROR_MESSAGES.get(code) or f"The bank connection failed ({code})."
        return error_plan(code, message, code in pluggy_provider.REAUTH_CODES, f"item error {code}: sync requested")
    if kind in ("item/waiting_user_input", "item/waiting_user_action"):
        detail = ("The bank asks for a security code: reconnect on Connections to enter it."
                  if kind.endswith("input") else "The bank needs you to act in its app; then reconnect.")
        return Plan(note=kind, status=ConnectionStatus.NEEDS_INPUT.value, detail=detail,
                    error_code="USER_ACTION_REQUIRED")
    if kind == "item/deleted":
        return Plan(note="the item was deleted at Pluggy", status=ConnectionStatus.REVOKED.value,
                    detail=SIGNAL_MESSAGES["ITEM_DELETED"], error_code="ITEM_DELETED")
    if kind == "connector/status_updated":
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        connector = payload.get("connectorId", payload.get("id"))
        return Plan(note=f"connector {connector} is {data.get('status') or 'in an unknown state'}",
                    needs_connection=False)
    return Plan(note=f"unknown Pluggy event {kind!r}: recorded only", needs_connection=False, known=False)


def plan_event(event: WebhookEvent) -> Plan:
    """What an event means for its connection (no side effects)."""
    return _plan_pluggy(event) if event.provider == "pluggy" else plaid_webhooks.plan(event)


# --------------------------------------------------------------------------------------------
# Receiving: verify, store, hand over (the routes call this in a worker thread)
# --------------------------------------------------------------------------------------------

class EventSink(Protocol):
    """Where verified events go (the background worker)."""

    def submit(self, event_id: str) -> None: ...

    def note_received(self, event: WebhookEvent, *, duplicate: bool) -> None: ...

    def note_rejected(self, provider: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]


class WebhookReceiver:
    """Verifies a delivery, stores it once, and hands it to the worker. Everything here is fast: no syncing."""

    def __init__(self, services: Services, sink: EventSink | None = None, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), plaid_keys: PlaidKeys | None = None) -> None:
        self.services = services
        self.sink = sink
        self._now = now
        if plaid_keys is None:
            plaid = services.providers.get("plaid")
            client = getattr(plaid, "client", None)
            plaid_keys = PlaidKeys(client.webhook_verification_key_get if client is not None else no_keys)
        self.plaid_keys = plaid_keys

    def receive(self, provider: str, headers: Mapping[str, str], body: bytes, client_ip: str | None) -> Reply:
        now = self._now()
        try:
            if len(body) > MAX_BODY_BYTES:
                raise WebhookRejected(413, "The body is too large.")
            if provider == "pluggy":
                settings = self.services.settings
                verify_pluggy(headers, client_ip, secret=self.services.webhook_secret,
                              allowed_networks=settings.webhook_allowed_ips)
                event = parse_pluggy(body, now)
            elif provider == "plaid":
                event = parse_plaid(body, verify_plaid(headers, body, self.plaid_keys, now), now)
            else:
                raise WebhookRejected(404, "No such webhook.")
        except WebhookRejected as rejected:
            log.warning("%s webhook rejected (%s): %s", provider, rejected.status, rejected.reason)
            if self.sink is not None:
                self.sink.note_rejected(provider, rejected.reason)
            return Reply(rejected.status, {"error": rejected.reason})
        stored = webhook_events.record_event(self.services.engine, id=event.id, provider=event.provider,
                                    event_type=event.type, item_id=event.item_id, received_at=event.received_at,
                                    payload=event.payload)
        if self.sink is not None:
            self.sink.note_received(event, duplicate=not stored)
            if stored:
                self.sink.submit(event.id)
        return Reply(200, {"status": "accepted" if stored else "duplicate"})


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


def routes(receiver: Callable[[], WebhookReceiver | None]) -> list[Route]:
    """`POST /webhooks/pluggy` and `POST /webhooks/plaid`: read the body (bounded), then hand it to the receiver in
    a thread (it touches the database) and answer with its reply."""
    import anyio.to_thread
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def endpoint(provider: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            current = receiver()
            if current is None:
                return JSONResponse({"error": "The app is starting; try again."}, status_code=503)
            try:
                body = await read_body(request)
            except WebhookRejected as rejected:
                return JSONResponse({"error": rejected.reason}, status_code=rejected.status)
            client_ip = request.client.host if request.client else None
            reply = await anyio.to_thread.run_sync(current.receive, provider, dict(request.headers), body, client_ip)
            return JSONResponse(reply.body, status_code=reply.status)
        return handle

    return [Route(f"/webhooks/{name}", endpoint(name), methods=["POST"], name=f"webhook_{name}")
            for name in ("pluggy", "plaid")]


# --------------------------------------------------------------------------------------------
# Registering our URL with the providers
# --------------------------------------------------------------------------------------------

def register_webhooks(services: Services) -> list[str]:
    """Point the providers at this app's webhook routes (FINANCE_PUBLIC_URL): Pluggy's application webhook for every
    event, carrying our secret header (created, or updated and re-enabled), and each Plaid Item's webhook URL.
    Returns what was done, one line per provider, for the Sync status page."""
    done: list[str] = []
    settings = services.settings
    pluggy_url = settings.webhook_url("pluggy")
    pluggy = services.providers.get("pluggy")
    if pluggy_url and pluggy is not None:
        try:
            client = pluggy.client  # type: ignore[attr-defined]
            headers = {SECRET_HEADER: services.webhook_secret}
            ours = [w for w in client.webhooks() if w.get("url") == pluggy_url]
            if ours:
                client.update_webhook(str(ours[0]["id"]), event="all", headers=headers, enabled=True)
                done.append(f"Pluggy: webhook {pluggy_url} updated.")
            else:
                client.create_webhook(pluggy_url, "all", headers)
                done.append(f"Pluggy: webhook {pluggy_url} registered.")
        except ProviderError as exc:
            done.append(f"Pluggy: could not register the webhook ({exc.message})")
    plaid_url = settings.webhook_url("plaid")
    plaid = services.providers.get("plaid")
    if plaid_url and plaid is not None:
        with services.engine.connect() as conn:
            items = connections.live_items(conn, "plaid")
        done.append(plaid.register_webhook(plaid_url, secret=services.webhook_secret,  # type: ignore[attr-defined]
                                           items=items))
    return done
