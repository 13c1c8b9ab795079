"""Balance history reconstructed from today's balance and what led to it: transactions, loan payments, trades."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


def loan_history(current: Decimal, as_of: date, payments: Iterable[tuple[date, Decimal]],
                 start: date) -> list[tuple[date, Decimal]]:
    """End-of-day balances of a loan (owed is negative) from `start` to `as_of`: before each payment (a positive
    amount) more was owed by that much. Flat where no payment is known, so the line never starts "today"."""
    paid: dict[date, Decimal] = defaultdict(Decimal)
    for day, amount in payments:
        paid[day] += amount
    return reconstruct_balances(current, as_of, paid, start=min(start, as_of))


@dataclass(frozen=True, slots=True)
class Position:
    """One holding today, for `investment_history`: a cash position (a cash sweep) is the account's cash."""

    security_id: str
    quantity: Decimal
    value: Decimal
    is_cash: bool = False


@dataclass(frozen=True, slots=True)
class Trade:
    """One investment transaction, for `investment_history` (finance.model.InvestmentTransaction's sign)."""

    day: date
    amount: Decimal
    security_id: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None


def _interpolate(points: list[tuple[date, Decimal]], day: date) -> Decimal:
    """The price on `day`, linear between known prices (sorted), the first known before them, the last after."""
    if day <= points[0][0]:
        return points[0][1]
    for (d0, p0), (d1, p1) in itertools.pairwise(points):
        if d0 <= day <= d1:
            if d1 == d0:
                return p1
            return p0 + (p1 - p0) * Decimal((day - d0).days) / Decimal((d1 - d0).days)
    return points[-1][1]


def investment_history(balance: Decimal, positions: Sequence[Position], trades: Sequence[Trade], as_of: date,
                       start: date) -> list[tuple[date, Decimal]]:
    """End-of-day value of an investment account from `start` to `as_of`, ending at `balance` today.

    Each security's units go back through its trades (a buy on day d: fewer units before d), priced between the
    trades' prices and today's price (linear, so the line never jumps on the last day). The account's cash
    (its cash positions plus what the balance holds beyond them) goes back through every trade's cash amount, when
    the account holds cash at all; an account of positions only (paid for from elsewhere) has none to track.
    """
    invested = {p.security_id: p for p in positions if not p.is_cash}
    cash_now = balance - sum((p.value for p in invested.values()), Decimal(0))
    tracks_cash = any(p.is_cash for p in positions) or cash_now != 0
    units: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    prices: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    cash_flow: dict[date, Decimal] = defaultdict(Decimal)
    cash_ids = {p.security_id for p in positions if p.is_cash}
    for trade in trades:
        if trade.day > as_of:
            continue
        if trade.security_id is not None and trade.security_id not in cash_ids:
            if trade.quantity is not None:
                units[trade.security_id][trade.day] += trade.quantity
            if trade.price is not None and trade.price > 0:
                prices[trade.security_id].append((trade.day, trade.price))
        cash_flow[trade.day] += trade.amount
    series: dict[date, Decimal] = defaultdict(Decimal)
    days = [day for day, _ in reconstruct_balances(Decimal(0), as_of, {}, start=start)]
    for security_id in invested.keys() | units.keys():
        held = invested.get(security_id)
        today_units = held.quantity if held else Decimal(0)
        points = sorted(prices[security_id])
        if held is not None and held.quantity:
            points.append((as_of, held.value / held.quantity))
        if not points:  # no price known at all: its value today stands for every day
            for day in days:
                series[day] += held.value if held else Decimal(0)
            continue
        for day, count in reconstruct_balances(today_units, as_of, units[security_id], start=start):
            series[day] += max(count, Decimal(0)) * _interpolate(points, day)
    cash = reconstruct_balances(cash_now, as_of, cash_flow if tracks_cash else {}, start=start)
    return [(day, (series[day] + money).quantize(Decimal("0.01"))) for day, money in cash]
