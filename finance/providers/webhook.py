"""What every provider's webhook reading shares: the verified event, the plan it leads to, and the rejection.

Each provider verifies and parses its own deliveries and says what each event means (`read_webhook`,
`plan_webhook` on the provider); the receiver (finance.webhooks) stores the event and hands the plan to the worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from finance.model import ConnectionStatus

MAX_ID_LENGTH = 200
"""The longest id a webhook may name (ids are tens of characters)."""
MAX_LISTED_IDS = 10_000
"""The most transaction ids one event may list."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of arrays and objects a body may have (real payloads nest three or four levels): checked
before parsing, because Python's json recurses and fails with RecursionError near a thousand levels."""
SYNC_NOTE = "sync requested"
PORTFOLIO = "portfolio"
"""A `Plan.refetch` entry: the connection's investments, loans or bills changed, so its sync reads the portfolio even
within finance.portfolio.PORTFOLIO_INTERVAL of the last read. It names no transactions: those are fetched as they
would be without it (a plan with only this entry asks for a whole sync)."""


def transactions_named(refetch: Iterable[str]) -> list[str]:
    """The entries of `refetch` that name transactions (all but PORTFOLIO): empty means a whole fetch."""
    return sorted(set(refetch) - {PORTFOLIO})


class WebhookRejected(Exception):
    """A request that is not a genuine, well-formed webhook: answered with `status`, nothing stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified delivery: `id` is unique per event (the provider's event id, or a digest of what it signed)."""

    id: str
    provider: str
    type: str  # the provider's event name, e.g. "item/updated" or "TRANSACTIONS/SYNC_UPDATES_AVAILABLE"
    item_id: str | None
    payload: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one event: record a status or a signal on its connection now, and/or sync it."""

    note: str
    sync: bool = False
    removed: tuple[str, ...] = ()
    refetch: tuple[str, ...] = ()  # exactly what changed, as the provider describes it (opaque here): a sync with
    # only this to do hands it to the provider's `fetch_transactions(..., refetch=...)` instead of a whole fetch
    status: str | None = None
    detail: str | None = None
    error_code: str | None = None
    signal: str | None = None
    signal_until: datetime | None = None
    clear_signal: bool = False
    needs_connection: bool = True
    known: bool = True


def error_plan(code: str, message: str, reauth: bool, note: str) -> Plan:
    """An error the provider reported for a connection: recorded now, and a sync to confirm it."""
    status = ConnectionStatus.NEEDS_RECONNECT if reauth else ConnectionStatus.FAILED
    return Plan(note=note, sync=True, status=status.value, detail=message, error_code=code)


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects of a JSON body nest more than `limit` deep (brackets inside strings do not
    count), with bytes operations that run in C whatever the body: escaped backslashes and quotes are dropped, then
    everything but quotes and brackets, then what lies between quotes. Each pass over the brackets left then removes
    the innermost pairs, one level of nesting; brackets that never pair up are not JSON and count as too deep."""
    marks = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_MARKS)
    structure = b"".join(marks.split(b'"')[::2]).translate(_SQUARE)
    for _level in range(limit):
        inner = structure.replace(b"[]", b"")
        if not inner:
            return False
        if inner == structure:
            return True
        structure = inner
    return True


_NOT_MARKS = bytes(b for b in range(256) if b not in b'"[]{}')
_SQUARE = bytes.maketrans(b"{}", b"[]")


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or WebhookRejected (400): not UTF-8, not JSON, nested deeper than MAX_JSON_DEPTH
    (refused before parsing) or not an object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "The body is not JSON.") from None
    if nests_deeper_than(body, MAX_JSON_DEPTH):
        raise WebhookRejected(400, "The body nests too deeply.")
    try:
        payload = json.loads(text)
    except ValueError:
        raise WebhookRejected(400, "The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "The body is not a JSON object.")
    return payload


def text_field(payload: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    """A non-empty string of at most MAX_ID_LENGTH characters, or WebhookRejected (400)."""
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise WebhookRejected(400, f"The body has no usable {key}.")
    return value


def instant(value: Any) -> datetime | None:
    """An ISO 8601 time from a payload (UTC when it carries no offset); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
