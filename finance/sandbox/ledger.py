"""Deterministic synthetic ledgers for the offline emulators: the generic machinery each emulator's household builds on.

A ledger is a pure function of its inputs (seed, connection id, account layout, the connection's creation time) and of
the moment it is looked at: history is generated day by day from a fixed start, so extending it never changes the
past, and a point-in-time view decides which rows exist yet and which are still pending.

Here: stable ids, `Entry`, the day-by-day `Ledger` with running balances, pending→posted views and the ledger cache.
Each emulator brings its own profile (the household: accounts, calendar, merchants) and its own wire shape.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

_NAMESPACE = uuid.UUID("5b0e1f0a-8c1d-4f7e-9a57-3f1f2c6a9d10")


def stable_uuid(*parts: object) -> str:
    """A UUID that depends only on `parts`, so ids survive restarts and match across emulator instances."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def iso_z(moment: datetime) -> str:
    """`2024-05-03T03:00:00.000Z`: the UTC, millisecond form the providers put on the wire."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def add_months(day: date, months: int) -> date:
    """The same day-of-month `months` later, clamped to the month's last day."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    next_first = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day.day, (next_first - timedelta(days=1)).day))


def business_day(day: date) -> date:
    """`day`, or the Monday after it when it falls on a weekend (bank holidays are not modelled)."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@dataclass(frozen=True, slots=True)
class Party:
    """A payer or receiver of a transfer."""

    name: str
    document_type: str | None = None
    document: str | None = None
    bank_code: str | None = None
    branch: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Merchant:
    """Where a purchase was made; `category_id` is the provider taxonomy id the profile assigns."""

    name: str
    business_name: str
    tax_id: str
    industry_code: str
    category_id: str
    descriptor: str
    mcc: int


@dataclass(frozen=True, slots=True)
class Installment:
    """Installment n of m of a purchase ("parcelado"), with the whole purchase's amount and date."""

    number: int
    total: int
    total_amount: float
    purchase_date: datetime


@dataclass(slots=True)
class Entry:
    """One money movement on one account, before a provider shapes it.

    `amount` is in the account's currency and signed from the user's side: negative means money leaves the user
    (a card purchase is negative too). `when` is a timezone-aware local time; `exact_time` False means the institution
    only knows the day, and `when` is local midnight. Lifecycle: a row appears `lag` after `when`; if `pending_for` is
    set it first shows as pending and posts (with a new id, and `posted_amount` if that differs) at local midnight of
    `when` plus `pending_for`. The ledger fills `seq`, `order`, `id`, `pending_id` and `balance`.
    """

    account: int
    when: datetime
    amount: float
    description: str
    category_id: str
    kind: str
    exact_time: bool = False
    description_raw: str | None = None
    merchant: Merchant | None = None
    method: str | None = None
    operation: str | None = None
    counterparty: Party | None = None
    outgoing: bool = True
    reason: str | None = None
    boleto: tuple[str, str] | None = None
    installment: Installment | None = None
    foreign: tuple[str, float] | None = None
    fee_type: str | None = None
    bill_id: str | None = None
    provider_code: str | None = None
    lag: timedelta = timedelta(hours=8)
    pending_for: timedelta | None = None
    posted_amount: float | None = None
    seq: str = ""
    order: int = 0
    id: str = ""
    pending_id: str | None = None
    balance: float = 0.0

    @property
    def final_amount(self) -> float:
        """The amount once posted."""
        return self.amount if self.posted_amount is None else self.posted_amount

    @property
    def posts_at(self) -> datetime | None:
        """When a pending entry's posted row replaces it (None: it never pends)."""
        if self.pending_for is None:
            return None
        return datetime.combine(self.when.date(), time(0), self.when.tzinfo) + self.pending_for

    def state_at(self, moment: datetime) -> tuple[bool, datetime] | None:
        """(pending?, when this row appeared) as seen at `moment`, or None while the row does not exist yet."""
        appears = self.when + self.lag
        if appears > moment:
            return None
        posts = self.posts_at
        if posts is None:
            return False, appears
        if posts <= moment:
            return False, posts
        return True, appears


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One account of a connection: its kind ("checking" or "card"), position and balance at the ledger's start."""

    kind: str
    index: int
    opening_balance: float


class Profile(Protocol):
    """Decides what happens on each day of a connection's life."""

    start: date
    accounts: tuple[AccountSpec, ...]

    def day(self, day: date, ledger: Ledger) -> list[Entry]:
        """The entries dated `day`; may `ledger.schedule` later ones (installments)."""
        ...


class Ledger:
    """Every entry of one connection's accounts from the profile's start, generated day by day on demand.

    Days are generated strictly in order, each from its own seeded RNG and the balances so far, so extending the ledger
    to a later day yields exactly what a fresh ledger would: the past never changes.
    """

    def __init__(self, key: str, profile: Profile) -> None:
        self.key = key
        self.profile = profile
        self.entries: list[list[Entry]] = [[] for _ in profile.accounts]
        self.balances = [spec.opening_balance for spec in profile.accounts]
        self._scheduled: dict[date, list[Entry]] = {}
        self._next_day = profile.start
        self._lock = threading.Lock()

    def schedule(self, entry: Entry) -> None:
        """Queue an entry for a later day (e.g. the next installments of a purchase)."""
        day = entry.when.date()
        if day < self._next_day:
            raise ValueError("Only future days can be scheduled")
        self._scheduled.setdefault(day, []).append(entry)

    def extend_to(self, day: date) -> None:
        """Generate every day up to and including `day`."""
        with self._lock:
            while self._next_day <= day:
                self._generate(self._next_day)
                self._next_day += timedelta(days=1)

    def _generate(self, day: date) -> None:
        todays = self._scheduled.pop(day, [])
        todays += self.profile.day(day, self)
        for i, entry in enumerate(todays):
            entry.seq = f"{day.isoformat()}#{i}"
        todays.sort(key=lambda e: e.when)
        orders = [0] * len(self.entries)
        for entry in todays:
            account = entry.account
            entry.order = orders[account]
            orders[account] += 1
            entry.id = stable_uuid(self.key, account, entry.seq)
            if entry.pending_for is not None:
                entry.pending_id = stable_uuid(self.key, account, entry.seq, "pending")
            self.balances[account] = round(self.balances[account] + entry.final_amount, 2)
            entry.balance = self.balances[account]
            self.entries[account].append(entry)

    def view(self, account: int, moment: datetime) -> Iterator[tuple[Entry, bool, datetime]]:
        """(entry, pending?, appeared at) for every row of `account` that exists at `moment`."""
        self.extend_to((moment.astimezone(UTC) + timedelta(days=1)).date())
        for entry in self.entries[account]:
            if entry.when > moment:
                break
            state = entry.state_at(moment)
            if state is not None:
                yield entry, state[0], state[1]


_LEDGERS: OrderedDict[tuple[object, ...], Ledger] = OrderedDict()
_LEDGERS_LOCK = threading.Lock()
_LEDGER_CACHE_SIZE = 64


def cached_ledger(key: tuple[object, ...], factory: Callable[[], Ledger]) -> Ledger:
    """The ledger for `key`, built once and kept (ledgers are pure functions of their key)."""
    with _LEDGERS_LOCK:
        ledger = _LEDGERS.get(key)
        if ledger is None:
            ledger = _LEDGERS[key] = factory()
            while len(_LEDGERS) > _LEDGER_CACHE_SIZE:
                _LEDGERS.popitem(last=False)
        else:
            _LEDGERS.move_to_end(key)
        return ledger
