"""Pending→posted reconciliation: pair pending rows that vanished with the posted rows that replaced them.

A provider may give a posted transaction a new id (and sometimes a different amount, e.g. a tip), with no
link to its pending version. We pair them by score so the user's category and note carry over,
and never pair one row twice, so two identical real purchases stay two rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

AMOUNT_TOLERANCE = Decimal("0.30")  # tips and currency conversion move the amount by up to ~30 %
MIN_TOLERANCE = Decimal("1.00")
DAYS_BEFORE = 3
DAYS_AFTER = 10


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    account_id: str
    amount: Decimal
    booked_date: date
    merchant: str | None = None


def _normalize(text: str | None) -> str:
    return "".join(ch for ch in (text or "").lower() if ch.isalnum())[:12]


def match_score(pending: Candidate, posted: Candidate) -> float | None:
    """Lower is a better match; None when the two cannot be the same purchase."""
    if pending.account_id != posted.account_id:
        return None
    if (pending.amount < 0) != (posted.amount < 0):
        return None
    days = (posted.booked_date - pending.booked_date).days
    if days < -DAYS_BEFORE or days > DAYS_AFTER:
        return None
    diff = abs(posted.amount - pending.amount)
    if diff > max(abs(pending.amount) * AMOUNT_TOLERANCE, MIN_TOLERANCE):
        return None
    relative = float(diff / abs(pending.amount)) if pending.amount else float(diff)
    score = relative + 0.02 * abs(days)
    merchant = _normalize(pending.merchant)
    if merchant and merchant == _normalize(posted.merchant):
        score -= 0.5
    return score


def pair_pending_with_posted(pending: list[Candidate], posted: list[Candidate]) -> list[tuple[str, str]]:
    """(pending id, posted id) pairs, best scores first, each row used at most once."""
    scored = sorted(
        (score, p.id, q.id)
        for p in pending
        for q in posted
        if (score := match_score(p, q)) is not None
    )
    used_pending: set[str] = set()
    used_posted: set[str] = set()
    pairs: list[tuple[str, str]] = []
    for _score, pending_id, posted_id in scored:
        if pending_id in used_pending or posted_id in used_posted:
            continue
        used_pending.add(pending_id)
        used_posted.add(posted_id)
        pairs.append((pending_id, posted_id))
    return pairs
