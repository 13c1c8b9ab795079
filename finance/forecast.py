"""The balance forecast: each account's balance for the next days, from its current balance plus the payments and
income its recurring series expect (subscriptions, bills, salary, and card installments still to come — the
installment plans of finance.recurring, counted down by `remaining`) and the scheduled card bills, and a warning
naming the first day a balance is expected to go below its floor.

A card bill is scheduled only for a card that owes something now and was paid before: its due day is the day of
month its past bill payments usually landed on, its payer the account whose rows mirrored those payments. On the next
due date the payer pays what the card owes today and the card goes back to zero. The bills after that are not known
yet: each is estimated as the card's average monthly spending over the last 3 closed months and taken from the payer
only (the card's new spending, which the forecast does not project, and its payment cancel out on the card).

An account's floor is the threshold the user set for it, else zero for a bank account (checking, savings) and the
credit limit for a card with a known limit (its balance is the debt, negative). Other accounts warn only with a
threshold. Dismissed series and series with no next date count for nothing. No Streamlit, no SQL.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd

from finance.i18n import _, format_short_day
from finance.recurring import Series, add_months

HORIZONS = (30, 90)
BANK_TYPES = ("checking", "savings")
MAX_THRESHOLD = Decimal("1e15")
SPENDING_MONTHS = 3  # the closed months a card's later bills are estimated from
PAID_THIS_CYCLE_DAYS = 20  # a bill paid this many days or fewer before a due date was that due date's bill
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?")


class ThresholdError(ValueError):
    """A threshold the user typed that cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class AccountStart:
    """An account as the forecast starts from it: its balance now (signed: a card's debt is negative)."""

    id: str
    name: str
    type: str
    currency: str
    balance: Decimal
    credit_limit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BalanceWarning:
    """The first day an account's balance is expected below its floor."""

    account_id: str
    account: str
    currency: str
    day: date
    balance: Decimal
    floor: Decimal
    threshold_set: bool  # the floor is the user's threshold (else zero, or the card's limit)

    def text(self, money: str, floor: str) -> str:
        """The warning in words, with the amounts already formatted."""
        day = format_short_day(self.day)
        if self.threshold_set:
            template = _("{account}: expected below your threshold of {floor} on {day} ({balance}).")
        elif self.floor == 0:
            template = _("{account}: expected below zero on {day} ({balance}).")
        else:
            template = _("{account}: expected past its credit limit of {floor} on {day} ({balance}).")
        return template.format(account=self.account, floor=floor, day=day, balance=money)


@dataclass(frozen=True, slots=True)
class CardHistory:
    """What the store knows of a card's bills: the dates of its posted bill payments, the account that paid them
    (None when no account's rows mirror them) and its average monthly spending over the last closed months."""

    card_id: str
    payer_id: str | None
    payments: tuple[date, ...]
    monthly_spending: Decimal


@dataclass(frozen=True, slots=True)
class CardBill:
    """One scheduled card bill: `amount` (positive) leaves the payer on `day`; `estimated` when it is a later bill
    guessed from the card's spending rather than what the card owes now."""

    card_id: str
    card: str
    payer_id: str | None
    payer: str | None
    currency: str
    day: date
    amount: Decimal
    estimated: bool


@dataclass(frozen=True, slots=True)
class Outlook:
    """The forecast as the page shows it: the accounts, their projected balances, the warnings, the thresholds, the
    scheduled card bills and the names of the indebted cards with no known due day."""

    accounts: tuple[AccountStart, ...]
    projection: pd.DataFrame
    warnings: tuple[BalanceWarning, ...]
    thresholds: Mapping[str, Decimal]
    bills: tuple[CardBill, ...] = ()
    cards_without_due_day: tuple[str, ...] = ()


def outlook(accounts: Sequence[AccountStart], series: Iterable[Series], thresholds: Mapping[str, Decimal],
            today: date, days: int, *, card_history: Iterable[CardHistory] = ()) -> Outlook:
    """Project every account `days` ahead, card bills included, and find where each goes below its floor."""
    bills, unknown = card_bills(accounts, card_history, today, days)
    projection = project(accounts, series, today, days, bills)
    return Outlook(tuple(accounts), projection, tuple(warnings(accounts, projection, thresholds)), dict(thresholds),
                   tuple(bills), tuple(unknown))


def due_day(payments: Sequence[date]) -> int | None:
    """The day of month a card's bill payments usually land on: the most common; among equally common days, the
    latest payment's. None without payments."""
    if not payments:
        return None
    counts = Counter(day.day for day in payments)
    most = max(counts.values())
    return next(day.day for day in sorted(payments, reverse=True) if counts[day.day] == most)


def _on_day(year: int, month: int, day: int) -> date:
    """`day` of that month, shortened to the month's last day (the 31st in February is the 28th or 29th)."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def next_due_date(day: int, today: date, last_payment: date | None = None) -> date:
    """The first date after `today` on the due `day` (shortened for short months), a month later when the last
    payment already paid that date's bill (made fewer than PAID_THIS_CYCLE_DAYS days before it)."""
    candidate = _on_day(today.year, today.month, day)
    if candidate <= today:
        candidate = _month_after(today, day)
    if last_payment is not None and (candidate - last_payment).days <= PAID_THIS_CYCLE_DAYS:
        candidate = _month_after(candidate, day)
    return candidate


def _month_after(when: date, day: int) -> date:
    """The due `day` in the month after `when`'s."""
    return _on_day(when.year + 1, 1, day) if when.month == 12 else _on_day(when.year, when.month + 1, day)


def card_bills(accounts: Sequence[AccountStart], history: Iterable[CardHistory], today: date,
               days: int) -> tuple[list[CardBill], list[str]]:
    """The bills of every card that owes something now, from today to `days` ahead (the first for what it owes, the
    later ones estimated from its monthly spending), and the names of the indebted cards never paid before."""
    end = today + timedelta(days=days)
    names = {a.id: a.name for a in accounts}
    known = {h.card_id: h for h in history}
    bills: list[CardBill] = []
    unknown: list[str] = []
    for card in accounts:
        if card.type != "credit_card" or card.balance >= 0:
            continue
        found = known.get(card.id)
        day = due_day(found.payments) if found else None
        if found is None or day is None:
            unknown.append(card.name)
            continue
        payer = found.payer_id if found.payer_id in names else None
        due, amount, estimated = next_due_date(day, today, max(found.payments)), -card.balance, False
        while due <= end and amount > 0:
            bills.append(CardBill(card.id, card.name, payer, names.get(payer or ""), card.currency, due, amount,
                                  estimated))
            due, amount, estimated = _month_after(due, day), found.monthly_spending, True
    return sorted(bills, key=lambda b: (b.day, b.card)), unknown


def occurrences(series: Series, today: date, end: date) -> list[tuple[date, Decimal]]:
    """The dates and amounts `series` expects from `today` to `end`; an installment plan stops after `remaining`.
    A date already past is expected today while the series is within its tolerance, and dropped once it is `missed`
    (it still counts against `remaining`)."""
    if series.status == "dismissed" or series.next_date is None:
        return []
    found: list[tuple[date, Decimal]] = []
    step = 0
    while series.remaining is None or step < series.remaining:
        if series.cadence == "weekly":
            day = series.next_date + timedelta(days=7 * step)
        else:
            day = add_months(series.next_date, step * (12 if series.cadence == "yearly" else 1))
        if day > end:
            break
        if day >= today:
            found.append((day, series.next_amount))
        elif not series.missed:  # due and not booked yet, still within the series' tolerance: expected today
            found.append((today, series.next_amount))
        step += 1
    return found


def project(accounts: Sequence[AccountStart], series: Iterable[Series], today: date, days: int,
            bills: Iterable[CardBill] = ()) -> pd.DataFrame:
    """One row per account and day from today to today + `days`: day, account_id, account, currency and the
    expected end-of-day balance (Decimal). A bill leaves its payer; only a bill for what the card owes now (not an
    estimated one) also pays the card off."""
    end = today + timedelta(days=days)
    changes: dict[tuple[str, date], Decimal] = {}
    known = {a.id for a in accounts}

    def add(account_id: str | None, day: date, amount: Decimal) -> None:
        if account_id in known:
            changes[(account_id, day)] = changes.get((account_id, day), Decimal(0)) + amount

    for one in series:
        for day, amount in occurrences(one, today, end):
            add(one.account_id, day, amount)
    for bill in bills:
        add(bill.payer_id, bill.day, -bill.amount)
        if not bill.estimated:
            add(bill.card_id, bill.day, bill.amount)
    rows = []
    for account in accounts:
        balance = account.balance
        for offset in range(days + 1):
            day = today + timedelta(days=offset)
            balance += changes.get((account.id, day), Decimal(0))
            rows.append((day, account.id, account.name, account.currency, balance))
    return pd.DataFrame(rows, columns=["day", "account_id", "account", "currency", "balance"])


def floor_of(account: AccountStart, thresholds: Mapping[str, Decimal]) -> tuple[Decimal | None, bool]:
    """The balance an account should stay at or above, and whether it is the user's own threshold."""
    if account.id in thresholds:
        return thresholds[account.id], True
    if account.type in BANK_TYPES:
        return Decimal(0), False
    if account.type == "credit_card" and account.credit_limit:
        return -abs(account.credit_limit), False
    return None, False


def warnings(accounts: Sequence[AccountStart], projection: pd.DataFrame,
             thresholds: Mapping[str, Decimal]) -> list[BalanceWarning]:
    """Per account, the first projected day below its floor (none when it stays at or above it), earliest first."""
    found = []
    for account in accounts:
        floor, own = floor_of(account, thresholds)
        if floor is None:
            continue
        mine = projection[projection["account_id"] == account.id]
        below = mine[[balance < floor for balance in mine["balance"]]]
        if not below.empty:
            first = below.iloc[0]
            found.append(BalanceWarning(account.id, account.name, account.currency, first["day"], first["balance"],
                                        floor, own))
    return sorted(found, key=lambda w: (w.day, w.account))


def clean_threshold(text: str) -> Decimal | None:
    """The threshold the user typed ("-500", "1500.50", "1500,50"); empty means remove it. ThresholdError says
    what is wrong."""
    value = text.strip().replace(" ", "")
    if not value:
        return None
    if "," in value and "." not in value:
        value = value.replace(",", ".")
    if len(value) > 20 or not _NUMBER.fullmatch(value):
        raise ThresholdError(_("Type the threshold as a plain number with at most two decimals, e.g. 500 or "
                               "-1500.50."))
    amount = Decimal(value)
    if abs(amount) >= MAX_THRESHOLD:
        raise ThresholdError(_("That threshold is too large."))
    return amount
