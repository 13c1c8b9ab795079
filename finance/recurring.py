"""Recurring payments, subscriptions and card installments, detected from a transaction history (pure: no SQL, no
Streamlit).

A series is the same merchant or counterparty on one account, in one currency, at a regular cadence (weekly,
monthly, yearly) with a similar amount. Detection works per group of rows (account, normalised merchant,
currency, direction) and tolerates what real histories do:

- date jitter (a charge due on a Saturday lands on Monday; months have 28 to 31 days): each step may be off by a
  few days, and a step may span up to `MAX_SKIPPED + 1` periods (a skipped month);
- amount drift and price changes: rows are first tried as one group, then in clusters of similar amounts (sorted
  neighbours within `AMOUNT_GAP` of each other), so a subscription and unrelated purchases at the same merchant
  separate; a step of a stable amount to another stable amount is a `PriceChange`;
- identical unrelated purchases: the series is the longest chain of rows at the cadence, and the rows outside the
  chain may be at most a third of it, so a coffee bought at random dates never becomes a series.

Card installments ("parcela 3/10": `installment_number`/`installment_total`) are commitments with an end, never
subscriptions: one `installment` series per plan (account, merchant, currency, number of installments and the month
the plan began), with the installments still to come in `remaining`.

The user's choices (confirm, dismiss, edit name/amount/cadence) are keyed by `Series.key`, which stays the same
across re-syncs; `apply_choices` lays them over what was detected.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd

Cadence = Literal["weekly", "monthly", "yearly"]
Kind = Literal["subscription", "recurring", "installment"]
Status = Literal["detected", "confirmed", "dismissed"]

CADENCES: tuple[Cadence, ...] = ("monthly", "weekly", "yearly")
"""Tried in this order: a monthly chain through weekly rows leaves most rows out, so it is refused first."""
PERIOD_DAYS: dict[str, float] = {"weekly": 7.0, "monthly": 365.25 / 12, "yearly": 365.25}
TOLERANCE_DAYS: dict[str, int] = {"weekly": 2, "monthly": 5, "yearly": 10}
"""How far one step may be off its period (weekends, holidays, month lengths)."""
MAX_SKIPPED = 2
"""Periods in a row that may pass without a payment inside one series (a skipped month)."""
MIN_OCCURRENCES = 3
AMOUNT_GAP = 0.15
"""Sorted amounts further apart than this (relative) start a new amount cluster."""
STABLE_SPREAD = 0.25
"""A series whose amounts stay within this (relative to the median) has a fixed price: a subscription when it is an
outflow outside the bill categories below."""
BILL_CATEGORIES = ("housing", "fees", "taxes", "services.insurance", "transfer", "people")
"""Category ids (and their children) whose regular payments are bills, not subscriptions."""
REQUIRED_COLUMNS = ("id", "account_id", "merchant", "currency", "booked_date")


@dataclass(frozen=True, slots=True)
class PriceChange:
    """The amount of a series went from `before` to `after` on `on` (signed as stored: negative = out)."""

    on: date
    before: Decimal
    after: Decimal


@dataclass(frozen=True, slots=True)
class Series:
    """One recurring payment, subscription or installment plan (see the module docstring)."""

    key: str
    account_id: str
    merchant: str
    currency: str
    kind: Kind
    cadence: Cadence
    amount: Decimal
    first_date: date
    last_date: date
    next_date: date | None
    next_amount: Decimal
    occurrences: int
    remaining: int | None
    price_changes: tuple[PriceChange, ...]
    missed: bool
    is_new: bool
    status: Status = "detected"
    transaction_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    """What the user decided about a series: its status, and optionally their own name, amount or cadence."""

    key: str
    status: Status = "detected"
    name: str | None = None
    amount: Decimal | None = None
    cadence: Cadence | None = None


# --------------------------------------------------------------------------------------------------------------------
# Dates and money
# --------------------------------------------------------------------------------------------------------------------

def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def next_due(last: date, cadence: Cadence) -> date:
    """The date one period after `last`."""
    if cadence == "weekly":
        return last + timedelta(days=7)
    return add_months(last, 1 if cadence == "monthly" else 12)


def _money(cents: int) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def _cents(frame: pd.DataFrame) -> np.ndarray:
    """Amounts in cents as int64, from `amount_cents` (fast path) or a Decimal/float `amount` column."""
    if "amount_cents" in frame.columns:
        return frame["amount_cents"].to_numpy(dtype=np.int64)
    return np.array([round(Decimal(str(a)) * 100) for a in frame["amount"]], dtype=np.int64)


# --------------------------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------------------------

def detect(rows: pd.DataFrame | Sequence[Mapping[str, Any]], today: date) -> list[Series]:
    """Every series in `rows`, sorted by currency, next date and merchant.

    `rows` has one row per live transaction (transfers already left out) with `id`, `account_id`, `merchant` (the
    normalised merchant or counterparty), `currency`, `booked_date`, and `amount_cents` (int) or `amount`
    (signed), and optionally `installment_number`, `installment_total` and `category` (the effective category id).
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return []
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"detect needs the columns {', '.join(missing)}")
    cents = _cents(frame)
    days = pd.to_datetime(frame["booked_date"]).to_numpy(dtype="datetime64[D]").astype(np.int64)
    total = (frame["installment_total"].to_numpy(dtype=float, na_value=np.nan)
             if "installment_total" in frame.columns else np.full(len(frame), np.nan))
    number = (frame["installment_number"].to_numpy(dtype=float, na_value=np.nan)
              if "installment_number" in frame.columns else np.full(len(frame), np.nan))
    is_installment = ~np.isnan(total) & ~np.isnan(number) & (total > 1)
    table = pd.DataFrame({
        "id": frame["id"].astype(str).to_numpy(), "account_id": frame["account_id"].astype(str).to_numpy(),
        "merchant": frame["merchant"].fillna("").astype(str).str.strip().to_numpy(),
        "currency": frame["currency"].astype(str).to_numpy(), "day": days, "cents": cents,
        "category": (frame["category"].fillna("").astype(str).to_numpy() if "category" in frame.columns
                     else np.full(len(frame), "")),
        "total": np.where(is_installment, total, 0).astype(np.int64),
        "number": np.where(is_installment, number, 0).astype(np.int64),
    })
    table = table[(table["merchant"] != "") & (table["cents"] != 0)]
    found: list[Series] = []
    found += _installment_series(table[table["total"] > 0], today)
    found += _open_series(table[table["total"] == 0], today)
    return sorted(found, key=lambda s: (s.currency, s.next_date or date.max, s.merchant.casefold(), s.key))


def _open_series(table: pd.DataFrame, today: date) -> list[Series]:
    """Weekly, monthly and yearly series among rows that are not installments."""
    table = table.assign(inflow=table["cents"] > 0, name=table["merchant"].str.casefold())
    table = table.sort_values(["account_id", "name", "currency", "inflow", "day"], kind="stable")
    keys = table[["account_id", "name", "currency", "inflow"]]
    starts = np.flatnonzero((keys != keys.shift()).any(axis=1).to_numpy())
    bounds = np.append(starts, len(table))
    ids, accounts, merchants = table["id"].to_numpy(), table["account_id"].to_numpy(), table["merchant"].to_numpy()
    currencies, days, cents = table["currency"].to_numpy(), table["day"].to_numpy(), table["cents"].to_numpy()
    categories, names = table["category"].to_numpy(), table["name"].to_numpy()
    found: list[Series] = []
    for lo, hi in itertools.pairwise(bounds):
        if hi - lo < MIN_OCCURRENCES:
            continue
        used: set[str] = set()
        for members, cadence in _chains(days[lo:hi], cents[lo:hi]):
            index = lo + members
            key = f"{accounts[lo]}|{names[lo]}|{currencies[lo]}|{cadence}" + ("|in" if cents[lo] > 0 else "")
            if key in used:  # a second series of the same merchant and cadence, told apart by its amount
                key = f"{key}|{_money(int(np.median(cents[index])))}"
            used.add(key)
            series = _open_one(key, cadence, index, ids, accounts, merchants, currencies, days, cents,
                               categories, today)
            if series is not None:
                found.append(series)
    return found


def _chains(days: np.ndarray, cents: np.ndarray) -> list[tuple[np.ndarray, Cadence]]:
    """The regular chains in one group (positions into it): the whole group if it is one, else one per cluster of
    similar amounts that is."""
    whole = _regular(days, np.arange(len(days)))
    if whole is not None:
        return [whole]
    out = []
    for cluster in _amount_clusters(cents):
        if len(cluster) >= MIN_OCCURRENCES and len(cluster) < len(days):
            chain = _regular(days, cluster)
            if chain is not None:
                out.append(chain)
    return out


def _amount_clusters(cents: np.ndarray) -> list[np.ndarray]:
    """Positions grouped by similar amount: sorted by size, split where a neighbour is more than AMOUNT_GAP apart;
    each cluster in date order."""
    order = np.argsort(np.abs(cents), kind="stable")
    sizes = np.abs(cents[order]).astype(float)
    breaks = np.flatnonzero(sizes[1:] > sizes[:-1] * (1 + AMOUNT_GAP)) + 1
    return [np.sort(part) for part in np.split(order, breaks)]


def _regular(days: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, Cadence] | None:
    """The longest chain at some cadence among `positions` (sorted by date), if it is a series: at least
    MIN_OCCURRENCES rows, at most a third as many rows left out of it, and no more skipped periods than rows."""
    chosen = days[positions]
    for cadence in CADENCES:
        chain = _longest_chain(chosen, cadence)
        if len(chain) < MIN_OCCURRENCES or (len(chosen) - len(chain)) * 3 > len(chain):
            continue
        spans = np.diff(chosen[chain]) / PERIOD_DAYS[cadence]
        if np.rint(spans).sum() - len(spans) > len(chain) // 2:
            continue
        return positions[chain], cadence
    return None


def _longest_chain(days: np.ndarray, cadence: Cadence) -> np.ndarray:
    """The longest backward chain of dates one to MAX_SKIPPED + 1 periods apart (each step within the
    cadence's tolerance, a day more per skipped period), starting from one of the three latest dates."""
    period, tolerance = PERIOD_DAYS[cadence], TOLERANCE_DAYS[cadence]
    listed = days.tolist()
    best: list[int] = []
    for start in range(len(listed) - 1, max(len(listed) - 4, -1), -1):
        chain = [start]
        while True:
            current = listed[chain[-1]]
            step = None
            for periods in range(1, MAX_SKIPPED + 2):
                expected = current - period * periods
                slack = tolerance + periods - 1
                lo = bisect.bisect_left(listed, expected - slack, 0, chain[-1])
                hi = bisect.bisect_right(listed, expected + slack, 0, chain[-1])
                if lo < hi:
                    step = min(range(lo, hi), key=lambda i: abs(listed[i] - expected))
                    break
            if step is None:
                break
            chain.append(step)
        if len(chain) > len(best):
            best = chain
    return np.array(best[::-1], dtype=np.int64)


def _open_one(key: str, cadence: Cadence, index: np.ndarray, ids: np.ndarray, accounts: np.ndarray,
              merchants: np.ndarray, currencies: np.ndarray, days: np.ndarray, cents: np.ndarray,
              categories: np.ndarray, today: date) -> Series | None:
    """The series of the rows at `index`, or None when it has ended (no payment for MAX_SKIPPED + 1 periods after
    the one expected)."""
    amounts = cents[index].tolist()
    first, last = _day(days[index[0]]), _day(days[index[-1]])
    next_date = next_due(last, cadence)
    overdue = (today - next_date).days
    period = PERIOD_DAYS[cadence]
    if overdue > period * (MAX_SKIPPED + 1):
        return None
    median = float(np.median(np.abs(amounts)))
    stable = max(abs(abs(a) - median) for a in amounts) <= median * STABLE_SPREAD
    category = str(categories[index[-1]])
    is_bill = any(category == c or category.startswith(c + ".") for c in BILL_CATEGORIES)
    kind: Kind = "subscription" if amounts[-1] < 0 and stable and not is_bill else "recurring"
    # A fixed price is paid again as last time; a varying bill or income is expected near its recent median.
    expected = amounts[-1] if kind == "subscription" else int(np.median(amounts[-MIN_OCCURRENCES:]))
    return Series(
        key=key, account_id=str(accounts[index[0]]), merchant=str(merchants[index[-1]]),
        currency=str(currencies[index[0]]), kind=kind, cadence=cadence, amount=_money(amounts[-1]),
        first_date=first, last_date=last, next_date=next_date, next_amount=_money(expected),
        occurrences=len(index), remaining=None,
        price_changes=_price_changes([_day(d) for d in days[index]], amounts),
        missed=overdue > TOLERANCE_DAYS[cadence], is_new=_is_new(first, len(index), cadence, today),
        transaction_ids=tuple(str(i) for i in ids[index]))


def _price_changes(days: list[date], amounts: list[int]) -> tuple[PriceChange, ...]:
    """Steps from one steady amount to another: the new amount differs from the one before, which had been paid
    at least twice (or from the start), and holds at the next payment (or is the latest). Drifting amounts that
    never repeat are no price change."""
    changes = []
    for i in range(1, len(amounts)):
        before, after = amounts[i - 1], amounts[i]
        steady_before = i == 1 or amounts[i - 2] == before
        holds = i == len(amounts) - 1 or amounts[i + 1] == after
        if before != after and steady_before and holds:
            changes.append(PriceChange(on=days[i], before=_money(before), after=_money(after)))
    return tuple(changes)


def _is_new(first: date, occurrences: int, cadence: Cadence, today: date) -> bool:
    """First seen recently: no more than the minimum number of payments, the first within that many periods."""
    window = PERIOD_DAYS[cadence] * MIN_OCCURRENCES + TOLERANCE_DAYS[cadence]
    return occurrences <= MIN_OCCURRENCES and (today - first).days <= window


def _day(value: int | np.integer) -> date:
    return date.fromordinal(int(value) + date(1970, 1, 1).toordinal())


def _installment_series(table: pd.DataFrame, today: date) -> list[Series]:
    """One series per installment plan: its rows share account, merchant, currency, number of installments and
    the month the plan began (booked month minus the installments before it)."""
    if table.empty:
        return []
    booked = table["day"].to_numpy().astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    table = table.assign(start=booked - (table["number"].to_numpy() - 1), name=table["merchant"].str.casefold())
    found = []
    for (account, name, currency, total, start), plan in table.groupby(
            ["account_id", "name", "currency", "total", "start"], sort=True):
        plan = plan.sort_values(["number", "day"])
        first, last = _day(plan["day"].iloc[0]), _day(plan["day"].iloc[-1])
        paid = int(plan["number"].max())
        remaining = max(int(total) - paid, 0)
        next_date = add_months(last, 1) if remaining else None
        amount = int(plan["cents"].iloc[-1])
        start_month = f"{1970 + int(start) // 12}-{int(start) % 12 + 1:02d}"
        found.append(Series(
            key=f"{account}|{name}|{currency}|installment {int(total)}x {start_month}", account_id=str(account),
            merchant=str(plan["merchant"].iloc[-1]), currency=str(currency), kind="installment", cadence="monthly",
            amount=_money(amount), first_date=first, last_date=last, next_date=next_date, next_amount=_money(amount),
            occurrences=len(plan), remaining=remaining, price_changes=(),
            missed=next_date is not None and (today - next_date).days > TOLERANCE_DAYS["monthly"],
            is_new=int(plan["number"].min()) == 1 and (today - first).days <= 2 * PERIOD_DAYS["monthly"],
            transaction_ids=tuple(plan["id"].tolist())))
    return found


# --------------------------------------------------------------------------------------------------------------------
# The user's choices
# --------------------------------------------------------------------------------------------------------------------

def apply_choices(found: Iterable[Series], choices: Mapping[str, Choice], *,
                  include_dismissed: bool = False) -> list[Series]:
    """The detected series with the user's choices laid over them (status, name, amount, cadence); dismissed ones
    only when asked for. An edited cadence moves the next expected date; an edited amount is the next amount."""
    out = []
    for series in found:
        choice = choices.get(series.key)
        if choice is not None:
            cadence = choice.cadence or series.cadence
            next_date = (next_due(series.last_date, cadence) if choice.cadence and series.next_date is not None
                         else series.next_date)
            series = replace(series, status=choice.status, merchant=choice.name or series.merchant,
                             cadence=cadence, next_date=next_date,
                             amount=choice.amount if choice.amount is not None else series.amount,
                             next_amount=choice.amount if choice.amount is not None else series.next_amount)
        if include_dismissed or series.status != "dismissed":
            out.append(series)
    return out


def remaining_total(series: Series) -> Decimal:
    """What an installment plan still commits the user to (signed), zero for open-ended series."""
    return series.next_amount * series.remaining if series.remaining else Decimal(0)
