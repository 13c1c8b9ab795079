"""Balance history reconstructed from today's balance and the transactions that led to it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal


def reconstruct_balances(current: Decimal, as_of: date, daily_net: Mapping[date, Decimal],
                         start: date | None = None) -> list[tuple[date, Decimal]]:
    """End-of-day balances from `start` (default: the first day with activity) to `as_of`.

    The balance at the end of day d is today's balance minus everything booked after d.
    Rows dated after `as_of` (rare: future-dated entries) are ignored.
    """
    days_with_activity = [d for d in daily_net if d <= as_of]
    first = start or (min(days_with_activity) if days_with_activity else as_of)
    if first > as_of:
        return []
    series: list[tuple[date, Decimal]] = []
    balance = current
    day = as_of
    while day >= first:
        series.append((day, balance))
        balance -= daily_net.get(day, Decimal(0))
        day -= timedelta(days=1)
    series.reverse()
    return series
