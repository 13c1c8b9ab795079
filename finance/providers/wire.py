"""Reading values off a provider's wire: exact decimals and timestamps, or BadData naming the provider."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from finance.providers.base import BadData


def wire_decimal(value: Any, field: str, *, provider: str, label: str) -> Decimal:
    """A finite Decimal from a JSON number (already a Decimal when parsed with parse_float=Decimal)."""
    if isinstance(value, bool) or value is None:
        raise BadData(f"{label} sent no usable {field}.", code="BAD_AMOUNT", provider=provider)
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise BadData(f"{label} sent an unreadable {field}: {str(value)[:40]!r}", code="BAD_AMOUNT",
                      provider=provider) from exc
    if not result.is_finite():
        raise BadData(f"{label} sent an unreadable {field}: {str(value)[:40]!r}", code="BAD_AMOUNT",
                      provider=provider)
    return result


def wire_instant(value: Any, *, provider: str, label: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (UTC when it carries no offset); None when absent."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadData(f"{label} sent an unreadable date: {str(value)[:40]!r}", code="BAD_DATE",
                      provider=provider) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
