"""The balance forecast: each account's balance for the next days, from its current balance plus the payments and
income its recurring series expect (subscriptions, bills, salary, and card installments still to come — the
installment plans of finance.recurring, counted down by `remaining`), and a warning naming the first day a balance
is expected to go below its floor.

An account's floor is the threshold the user set for it, else zero for a bank account (checking, savings) and the
credit limit for a card with a known limit (its balance is the debt, negative). Other accounts warn only with a
threshold. Dismissed series and series with no next date count for nothing. No Streamlit, no SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd

from finance.recurring import Series, add_months

HORIZONS = (30, 90)
BANK_TYPES = ("checking", "savings")
MAX_THRESHOLD = Decimal("1e15")
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
        below = f"below your threshold of {floor}" if self.threshold_set else (
            "below zero" if self.floor == 0 else f"past its credit limit of {floor}")
        return f"{self.account}: expected {below} on {self.day:%Y-%m-%d} ({money})."


@dataclass(frozen=True, slots=True)
class Outlook:
    """The forecast as the page shows it: the accounts, their projected balances, the warnings, the thresholds."""

    accounts: tuple[AccountStart, ...]
    projection: pd.DataFrame
    warnings: tuple[BalanceWarning, ...]
    thresholds: Mapping[str, Decimal]


def outlook(accounts: Sequence[AccountStart], series: Iterable[Series], thresholds: Mapping[str, Decimal],
            today: date, days: int) -> Outlook:
    """Project every account `days` ahead and find where each goes below its floor."""
    projection = project(accounts, series, today, days)
    return Outlook(tuple(accounts), projection, tuple(warnings(accounts, projection, thresholds)), dict(thresholds))


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


def project(accounts: Sequence[AccountStart], series: Iterable[Series], today: date, days: int) -> pd.DataFrame:
    """One row per account and day from today to today + `days`: day, account_id, account, currency and the
    expected end-of-day balance (Decimal)."""
    end = today + timedelta(days=days)
    changes: dict[tuple[str, date], Decimal] = {}
    known = {a.id for a in accounts}
    for one in series:
        if one.account_id in known:
            for day, amount in occurrences(one, today, end):
                changes[(one.account_id, day)] = changes.get((one.account_id, day), Decimal(0)) + amount
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
        raise ThresholdError("Type the threshold as a plain number with at most two decimals, e.g. 500 or -1500.50.")
    amount = Decimal(value)
    if abs(amount) >= MAX_THRESHOLD:
        raise ThresholdError("That threshold is too large.")
    return amount
