"""Pluggy's webhooks: verification (a secret header we set when registering, plus an optional allow-list of source
addresses), parsing, what each event means, and registering our URL as the application webhook."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from finance.errors import ProviderError
from finance.model import ConnectionStatus
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.mapping import ERROR_MESSAGES, LABEL, NAME, REAUTH_CODES
from finance.providers.webhook import (
    MAX_ID_LENGTH,
    MAX_LISTED_IDS,
    PORTFOLIO,
    SYNC_NOTE,
    Plan,
    WebhookEvent,
    WebhookRejected,
    error_plan,
    instant,
    json_object,
    lower_headers,
    text_field,
)

SECRET_HEADER = "X-Webhook-Secret"
ITEM_DELETED = ("Pluggy deleted this connection (idle sandbox items and retired connectors are removed). "
                "Connect the bank again to resume syncing; the history here is kept.")


def verify(headers: Mapping[str, str], client_ip: str | None, *, secret: str,
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


def parse(body: bytes, received_at: datetime) -> WebhookEvent:
    """A Pluggy event from its body: `event` and `eventId` are required; `itemId` names the connection."""
    payload = json_object(body)
    event = text_field(payload, "event")
    event_id = text_field(payload, "eventId")
    item_id = text_field(payload, "itemId", required=False)
    ids = payload.get("transactionIds")
    if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_LISTED_IDS
                            or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH for i in ids)):
        raise WebhookRejected(400, "transactionIds is not a list of ids.")
    return WebhookEvent(f"{NAME}:{event_id}", NAME, str(event), item_id, payload, received_at)


def refetch_ids(account_id: str, ids: Sequence[str]) -> tuple[str, ...]:
    """The `Plan.refetch` entries for transactions of an account to fetch again by id."""
    return tuple(f"ids:{account_id}:{i}" for i in ids)


def read_refetch(entries: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, datetime], set[str]]:
    """`Plan.refetch` entries back as (ids per account, createdAt instant per account, accounts named at all).

    Entries: "ids:<account>:<transaction id>" (fetch that row), "created:<account>:<ISO instant>" (fetch the rows
    created since), "account:<account>" (nothing to fetch: a deletion, applied through `Plan.removed`)."""
    ids: dict[str, list[str]] = {}
    created: dict[str, datetime] = {}
    accounts: set[str] = set()
    for entry in entries:
        kind, _, rest = entry.partition(":")
        account, _, value = rest.partition(":")
        accounts.add(account)
        if kind == "ids" and value:
            ids.setdefault(account, []).append(value)
        elif kind == "created" and (moment := instant(value)) is not None:
            created[account] = min(moment, created.get(account, moment))
    return ids, created, accounts


def _transactions_plan(kind: str, payload: Mapping[str, Any]) -> Plan:
    """transactions/created|updated|deleted: fetch exactly what the event names (its account's rows created since
    `transactionsCreatedAtFrom`, or its `transactionIds`), and apply deletions; a whole sync without an account."""
    account = payload.get("accountId")
    if not isinstance(account, str) or not account or len(account) > MAX_ID_LENGTH or ":" in account:
        removed = tuple(payload.get("transactionIds") or ()) if kind == "transactions/deleted" else ()
        return Plan(note=f"{kind} without an account: {SYNC_NOTE}", sync=True, removed=removed)
    ids = tuple(payload.get("transactionIds") or ())
    if kind == "transactions/deleted":
        return Plan(note=f"{len(ids)} transactions deleted at Pluggy: removed", sync=True, removed=ids,
                    refetch=(f"account:{account}",))
    if kind == "transactions/updated":
        return Plan(note=f"{len(ids)} transactions updated at Pluggy: fetched by id", sync=True,
                    refetch=refetch_ids(account, ids) or (f"account:{account}",))
    since = instant(payload.get("transactionsCreatedAtFrom"))
    if since is None:
        return Plan(note=f"{kind}: {SYNC_NOTE}", sync=True)
    count = payload.get("transactionsCount")
    what = f"{count} new transactions" if isinstance(count, int) else "new transactions"
    return Plan(note=f"{what} at Pluggy: fetched", sync=True,
                refetch=(f"created:{account}:{since.isoformat()}",))


def plan(event: WebhookEvent) -> Plan:
    """What a Pluggy event means for its connection (no side effects)."""
    payload, kind = event.payload, event.type
    if kind in ("item/created", "item/updated"):  # Pluggy read every product again: the portfolio too
        return Plan(note=f"{kind}: {SYNC_NOTE}", sync=True, refetch=(PORTFOLIO,))
    if kind == "item/login_succeeded":  # collecting is under way; item/updated follows
        return Plan(note=f"{kind}: {SYNC_NOTE}", sync=True)
    if kind in ("transactions/created", "transactions/updated", "transactions/deleted"):
        return _transactions_plan(kind, payload)
    if kind == "item/error":
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        code = str(error.get("code") or "UNEXPECTED_ERROR")[:MAX_ID_LENGTH]
        message = ERROR_MESSAGES.get(code) or f"The bank connection failed ({code})."
        return error_plan(code, message, code in REAUTH_CODES, f"item error {code}: sync requested")
    if kind in ("item/waiting_user_input", "item/waiting_user_action"):
        detail = ("The bank asks for a security code: reconnect on Connections to enter it."
                  if kind.endswith("input") else "The bank needs you to act in its app; then reconnect.")
        return Plan(note=kind, status=ConnectionStatus.NEEDS_INPUT.value, detail=detail,
                    error_code="USER_ACTION_REQUIRED")
    if kind == "item/deleted":
        return Plan(note="the item was deleted at Pluggy", status=ConnectionStatus.REVOKED.value,
                    detail=ITEM_DELETED, error_code="ITEM_DELETED")
    if kind == "connector/status_updated":
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        connector = payload.get("connectorId", payload.get("id"))
        return Plan(note=f"connector {connector} is {data.get('status') or 'in an unknown state'}",
                    needs_connection=False)
    return Plan(note=f"unknown Pluggy event {kind!r}: recorded only", needs_connection=False, known=False)


def register(client: PluggyClient, url: str, secret: str) -> str:
    """Pluggy's application webhook for every event at `url`, carrying our secret header (created, or updated and
    re-enabled); one line saying what was done."""
    headers = {SECRET_HEADER: secret}
    try:
        ours = [w for w in client.webhooks() if w.get("url") == url]
        if ours:
            client.update_webhook(str(ours[0]["id"]), event="all", headers=headers, enabled=True)
            return f"{LABEL}: webhook {url} updated."
        client.create_webhook(url, "all", headers)
        return f"{LABEL}: webhook {url} registered."
    except ProviderError as exc:
        return f"{LABEL}: could not register the webhook ({exc.message})"
