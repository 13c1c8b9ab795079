"""Recurring payments, subscriptions and card installments, detected from a transaction history (pure: no SQL, no
Streamlit).

A series is the same merchant or counterparty on one account, in one currency, at a regular cadence (weekly,
monthly, yearly) with a similar amount. Detection works per group of rows (account, normalised merchant,
currency, direction) and tolerates what real histories do:

- date jitter (a charge due on a Saturday lands on Monday): each payment may be a few days off its scheduled date
  (the same day of the month, clamped to short months), and up to `MAX_SKIPPED` scheduled dates in a row may go
  unpaid (a skipped month);
- amount drift and price changes: rows are first tried as one group, then in clusters of similar amounts (sorted
  neighbours within `AMOUNT_GAP` of each other), then of nearly equal ones (`TIGHT_AMOUNT_GAP`), so a subscription
  and unrelated purchases at the same merchant separate; a step of a stable amount to another stable amount is a
  `PriceChange`;
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
import functools
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from finance.i18n import N_, _

Cadence = Literal["weekly", "monthly", "yearly"]
Kind = Literal["subscription", "recurring", "installment"]
Status = Literal["detected", "confirmed", "dismissed"]

CADENCES: tuple[Cadence, ...] = ("monthly", "weekly", "yearly")
CADENCE_LABELS = {"monthly": N_("monthly"), "weekly": N_("weekly"), "yearly": N_("yearly")}
"""Tried in this order: a monthly chain through weekly rows leaves most rows out, so it is refused first."""
PERIOD_DAYS: dict[str, float] = {"weekly": 7.0, "monthly": 365.25 / 12, "yearly": 365.25}
TOLERANCE_DAYS: dict[str, int] = {"weekly": 2, "monthly": 4, "yearly": 10}
"""How far a payment may be off its scheduled date (weekends, holidays)."""
MAX_SKIPPED = 2
"""Periods in a row that may pass without a payment inside one series (a skipped month)."""
MIN_OCCURRENCES = 3
SHORT_CHAIN = 5
"""A series of fewer payments must have paid one amount twice to the cent: a new subscription charges a fixed price,
while three similar restaurant bills a month apart can be chance."""
AMOUNT_GAP = 0.15
"""Sorted amounts further apart than this (relative) start a new amount cluster."""
TIGHT_AMOUNT_GAP = 0.02
"""The same, for the second, finer clustering of a cluster that holds no series as a whole."""
STABLE_SPREAD = 0.25
"""A series whose amounts stay within this (relative to the median) has a fixed price: a subscription when it is an
outflow outside the bill categories below."""
BILL_CATEGORIES = ("housing", "fees", "taxes", "services.insurance", "transfer", "people")
"""Category ids (and their children) whose regular payments are bills, not subscriptions."""
EPOCH = date(1970, 1, 1).toordinal()
"""Dates travel as days since 1970-01-01."""
REQUIRED_COLUMNS = ("id", "account_id", "merchant", "currency", "booked_date")
STATUSES: tuple[Status, ...] = ("detected", "confirmed", "dismissed")
MAX_NAME_LENGTH = 80
MAX_AMOUNT = Decimal("1000000000")
REFUSED = N_("Nothing was changed.")


class RecurringError(ValueError):
    """A choice about a series the app refused, with a message for the user. Nothing was changed."""


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
    Strings are only read for the rows of series found, so Arrow-backed columns stay cheap at a million rows.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return []
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"detect needs the columns {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    cents = _cents(frame)
    days = _days(frame["booked_date"])
    total = _whole_numbers(frame, "installment_total")
    number = _whole_numbers(frame, "installment_number")
    labels = _Labels(frame)
    named = labels.folded_merchants()
    usable = (named >= 0) & (cents != 0)
    is_installment = usable & (total > 1) & (number > 0)
    group = (labels.codes("account_id"), named, labels.codes("currency"))
    found = _installment_series(labels, np.flatnonzero(is_installment), group, days, cents, number, total, today)
    found += _open_series(labels, np.flatnonzero(usable & ~is_installment), group, days, cents, today)
    return sorted(found, key=lambda s: (s.currency, s.next_date or date.max, s.merchant.casefold(), s.key))


def _days(column: pd.Series) -> np.ndarray:
    """Dates as days since 1970-01-01 (int64); an Arrow date column is read without a detour through Python."""
    if isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_date32(column.dtype.pyarrow_dtype):
        return pa.array(column).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
    return pd.to_datetime(column).to_numpy(dtype="datetime64[D]").astype(np.int64)


def _whole_numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A nullable integer column as int64, 0 where empty or absent."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.nan_to_num(values, nan=0).astype(np.int64)


class _Labels:
    """The text columns as integer codes and their distinct values, so a row's text is read without pandas and
    only the distinct values are ever cleaned."""

    COLUMNS = ("account_id", "merchant", "currency", "category")

    def __init__(self, frame: pd.DataFrame) -> None:
        self.ids = frame["id"]
        self._columns: dict[str, tuple[np.ndarray, list[str]]] = {}
        for column in self.COLUMNS:
            if column in frame.columns:
                codes, uniques = pd.factorize(frame[column])
                self._columns[column] = (codes, [str(u).strip() for u in uniques])
            else:
                self._columns[column] = (np.full(len(frame), -1, dtype=np.int64), [])

    def codes(self, column: str) -> np.ndarray:
        return self._columns[column][0]

    def text(self, column: str, row: int) -> str:
        """One cell, trimmed ('' when empty)."""
        codes, values = self._columns[column]
        return values[codes[row]] if codes[row] >= 0 else ""

    def folded_merchants(self) -> np.ndarray:
        """Each row's merchant as a code that ignores case and surrounding spaces (-1 when empty)."""
        codes, values = self._columns["merchant"]
        folded, _codes = pd.factorize(pd.Series([v.casefold() for v in values], dtype=object))
        folded = np.where(np.array([v == "" for v in values], dtype=bool), -1, folded) if values else folded
        return np.where(codes >= 0, folded[codes] if len(folded) else codes, -1)


def _open_series(labels: _Labels, rows: np.ndarray, group: tuple[np.ndarray, ...], days: np.ndarray,
                 cents: np.ndarray, today: date) -> list[Series]:
    """Weekly, monthly and yearly series among rows that are not installments (`rows`: their positions)."""
    account, name, currency = (codes[rows] for codes in group)
    inflow = cents[rows] > 0
    order = rows[np.lexsort((days[rows], inflow, currency, name, account))]
    keys = np.stack([c[order] for c in group] + [(cents[order] > 0).astype(np.int64)])
    starts = np.flatnonzero(np.r_[True, (keys[:, 1:] != keys[:, :-1]).any(axis=0)]) if len(order) else []
    bounds = np.append(starts, len(order))
    found: list[Series] = []
    for lo, hi in itertools.pairwise(bounds):
        if hi - lo < MIN_OCCURRENCES:
            continue
        members_of_group = order[lo:hi]
        first = int(members_of_group[0])
        base = "|".join((labels.text("account_id", first), labels.text("merchant", first).casefold(),
                         labels.text("currency", first)))
        used: set[str] = set()
        for members, cadence in _chains(days[members_of_group], cents[members_of_group]):
            index = members_of_group[members]
            key = f"{base}|{cadence}" + ("|in" if cents[first] > 0 else "")
            if key in used:  # a second series of the same merchant and cadence, told apart by its amount
                key = f"{key}|{_money(int(np.median(cents[index])))}"
            used.add(key)
            series = _open_one(labels, key, cadence, index, days, cents, today)
            if series is not None:
                found.append(series)
    return found


def _chains(days: np.ndarray, cents: np.ndarray) -> list[tuple[np.ndarray, Cadence]]:
    """The regular chains in one group (positions into it): the whole group if it is one, else one per cluster of
    similar amounts that is, else one per cluster of nearly equal amounts inside it (a fixed price among many
    purchases of similar size, like a membership among a store's orders)."""
    everything = np.arange(len(days))
    whole = _regular(days, cents, everything)
    if whole is not None:
        return [whole]
    out = []
    for cluster in _amount_clusters(cents, everything, AMOUNT_GAP):
        if len(cluster) < MIN_OCCURRENCES:
            continue
        chain = _regular(days, cents, cluster) if len(cluster) < len(days) else None
        if chain is not None:
            out.append(chain)
            continue
        for tight in _amount_clusters(cents, cluster, TIGHT_AMOUNT_GAP):
            if MIN_OCCURRENCES <= len(tight) < len(cluster):
                chain = _regular(days, cents, tight)
                if chain is not None:
                    out.append(chain)
    return out


def _amount_clusters(cents: np.ndarray, positions: np.ndarray, gap: float) -> list[np.ndarray]:
    """`positions` grouped by similar amount: sorted by size, split where a neighbour is more than `gap` apart
    (relative); each cluster in date order."""
    order = positions[np.argsort(np.abs(cents[positions]), kind="stable")]
    sizes = np.abs(cents[order]).astype(float)
    bounds = [0, *(np.flatnonzero(sizes[1:] > sizes[:-1] * (1 + gap)) + 1).tolist(), len(order)]
    return [np.sort(order[lo:hi]) for lo, hi in itertools.pairwise(bounds)]


def _repeats_a_price(cents: np.ndarray) -> bool:
    """Some amount was paid more than once, to the cent."""
    return len(np.unique(cents)) < len(cents)


def _regular(days: np.ndarray, cents: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, Cadence] | None:
    """A chain at some cadence among `positions` (sorted by date) that is a series: at least MIN_OCCURRENCES rows,
    at most a third as many rows left out of it, skipped periods at most half its rows, and a price paid twice
    when it is shorter than SHORT_CHAIN. Anchored on each of the three latest dates in turn; the first that makes
    a series wins."""
    chosen = days[positions]
    listed = chosen.tolist()
    for cadence in CADENCES:
        reach = (listed[-1] - listed[0] + TOLERANCE_DAYS[cadence]) / PERIOD_DAYS[cadence] + 1
        if reach * 4 < len(listed) * 3:
            continue  # even a payment every period would leave more than a third of the rows out
        for start in range(len(listed) - 1, max(len(listed) - 4, -1), -1):
            chain = _chain(listed, start, cadence)
            if len(chain) < MIN_OCCURRENCES or (len(listed) - len(chain)) * 3 > len(chain):
                continue
            if len(chain) < SHORT_CHAIN and not _repeats_a_price(cents[positions[chain]]):
                continue
            spans = np.diff(chosen[chain]) / PERIOD_DAYS[cadence]
            if np.rint(spans).sum() - len(spans) > len(chain) // 2:
                continue
            return positions[np.array(chain, dtype=np.int64)], cadence
    return None


def _chain(listed: list[int], start: int, cadence: Cadence) -> list[int]:
    """The chain of dates on the schedule anchored at `listed[start]` (positions, oldest first): each earlier
    payment is the date nearest its scheduled date (anchor minus whole periods, on the calendar for months and
    years) within the cadence's tolerance; the chain stops after MAX_SKIPPED scheduled dates in a row left unpaid.
    Anchoring on the schedule, not on the previous payment, keeps an unrelated purchase near a due date from pulling
    the chain off course; the tolerance windows never overlap, so no row is picked twice."""
    tolerance = TOLERANCE_DAYS[cadence]
    chain, unpaid = [start], 0
    for expected in _schedule(listed[start], cadence):
        if unpaid > MAX_SKIPPED or expected + tolerance < listed[0]:
            break
        right = bisect.bisect_left(listed, expected, 0, chain[-1])
        nearest = right if right < chain[-1] and (right == 0 or listed[right] - expected
                                                   < expected - listed[right - 1]) else right - 1
        if nearest >= 0 and abs(listed[nearest] - expected) <= tolerance:
            chain.append(nearest)
            unpaid = 0
        else:
            unpaid += 1
    return chain[::-1]


def _schedule(anchor: int, cadence: Cadence) -> Iterator[int]:
    """The scheduled dates before `anchor` (days since 1970-01-01), latest first and without end: whole weeks, or
    the anchor's day of the month clamped to each month's length."""
    if cadence == "weekly":
        yield from itertools.count(anchor - 7, -7)
        return
    step = 1 if cadence == "monthly" else 12
    cached = _calendar_schedule(anchor, step)
    yield from cached
    day = _day(anchor)
    for periods in itertools.count(len(cached) + 1):
        yield add_months(day, -step * periods).toordinal() - EPOCH


@functools.lru_cache(maxsize=16384)
def _calendar_schedule(anchor: int, step: int) -> tuple[int, ...]:
    """The first 36 scheduled dates `step` months apart before `anchor`: histories share their due dates, so
    these are computed once per anchor."""
    day = _day(anchor)
    return tuple(add_months(day, -step * periods).toordinal() - EPOCH for periods in range(1, 37))


def _open_one(labels: _Labels, key: str, cadence: Cadence, index: np.ndarray, days: np.ndarray,
              cents: np.ndarray, today: date) -> Series | None:
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
    category = labels.text("category", int(index[-1]))
    is_bill = any(category == c or category.startswith(c + ".") for c in BILL_CATEGORIES)
    kind: Kind = "subscription" if amounts[-1] < 0 and stable and not is_bill else "recurring"
    # A fixed price is paid again as last time; a varying bill or income is expected near its recent median.
    expected = amounts[-1] if kind == "subscription" else int(np.median(amounts[-MIN_OCCURRENCES:]))
    return Series(
        key=key, account_id=labels.text("account_id", int(index[0])),
        merchant=labels.text("merchant", int(index[-1])), currency=labels.text("currency", int(index[0])),
        kind=kind, cadence=cadence, amount=_money(amounts[-1]), first_date=first, last_date=last,
        next_date=next_date, next_amount=_money(expected), occurrences=len(index), remaining=None,
        price_changes=_price_changes([_day(d) for d in days[index]], amounts),
        missed=overdue > TOLERANCE_DAYS[cadence], is_new=_is_new(first, len(index), cadence, today),
        transaction_ids=tuple(str(i) for i in labels.ids.take(index).tolist()))


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
    return date.fromordinal(int(value) + EPOCH)


def _installment_series(labels: _Labels, rows: np.ndarray, group: tuple[np.ndarray, ...], days: np.ndarray,
                        cents: np.ndarray, number: np.ndarray, total: np.ndarray, today: date) -> list[Series]:
    """One series per installment plan: its rows share account, merchant, currency, number of installments and
    the month the plan began (booked month minus the installments before it)."""
    if not len(rows):
        return []
    month = days[rows].astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    plans = pd.DataFrame({"row": rows, "account": group[0][rows], "name": group[1][rows], "currency": group[2][rows],
                          "total": total[rows], "start": month - (number[rows] - 1), "number": number[rows],
                          "day": days[rows]})
    found = []
    for (*_plan, plan_total, start), plan in plans.groupby(["account", "name", "currency", "total", "start"]):
        plan = plan.sort_values(["number", "day"])
        index = plan["row"].to_numpy()
        first, last = _day(plan["day"].iloc[0]), _day(plan["day"].iloc[-1])
        remaining = max(int(plan_total) - int(plan["number"].max()), 0)
        next_date = add_months(last, 1) if remaining else None
        amount = _money(int(cents[index[-1]]))
        start_month = f"{1970 + int(start) // 12}-{int(start) % 12 + 1:02d}"
        account, merchant, currency = (labels.text(c, int(index[-1]))
                                       for c in ("account_id", "merchant", "currency"))
        found.append(Series(
            key=f"{account}|{merchant.casefold()}|{currency}|installment {int(plan_total)}x {start_month}",
            account_id=account, merchant=merchant, currency=currency, kind="installment", cadence="monthly",
            amount=amount, first_date=first, last_date=last, next_date=next_date, next_amount=amount,
            occurrences=len(plan), remaining=remaining, price_changes=(),
            missed=next_date is not None and (today - next_date).days > TOLERANCE_DAYS["monthly"],
            is_new=int(plan["number"].min()) == 1 and (today - first).days <= 2 * PERIOD_DAYS["monthly"],
            transaction_ids=tuple(str(i) for i in labels.ids.take(index).tolist())))
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


def clean_choice(key: str, status: str, *, name: str | None = None, amount: str | None = None,
                 cadence: str | None = None, outflow: bool = True) -> Choice:
    """A validated `Choice` from the form's values, or RecurringError with what to fix. `amount` is typed as a
    positive number (44.90); it is stored signed like the series (negative for an outflow)."""
    if not key or len(key) > 1000:
        raise RecurringError(_("That series is unknown.") + " " + REFUSED)
    if status not in STATUSES:
        raise RecurringError(_("Unknown choice {choice}: confirm, dismiss or keep as detected.").format(
            choice=repr(str(status)[:20])) + " " + REFUSED)
    if cadence is not None and cadence not in CADENCES:
        raise RecurringError(_("The cadence must be weekly, monthly or yearly (got {cadence}).").format(
            cadence=repr(str(cadence)[:20])) + " " + REFUSED)
    clean_name = " ".join((name or "").split()) or None
    if clean_name is not None and (len(clean_name) > MAX_NAME_LENGTH or not clean_name.isprintable()):
        raise RecurringError(_("A name has at most {max} printable characters.").format(max=MAX_NAME_LENGTH) + " " +
                             REFUSED)
    return Choice(key, status, clean_name, _clean_amount(amount, outflow), cadence)  # type: ignore[arg-type]


def _clean_amount(text: str | None, outflow: bool) -> Decimal | None:
    """The typed amount (None when blank), signed as the series, or RecurringError."""
    raw = (text or "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw.lstrip("+"))
    except ArithmeticError:
        raise RecurringError(_("The amount must be a number like 44.90 (got {raw}).").format(raw=repr(raw[:40])) +
                             " " + REFUSED) from None
    if not value.is_finite() or value <= 0:
        raise RecurringError(_("The amount must be a number above zero, like 44.90.") + " " + REFUSED)
    if value > MAX_AMOUNT:
        raise RecurringError(_("An amount of {raw} is too large.").format(raw=raw[:40]) + " " + REFUSED)
    if value != value.quantize(Decimal("0.01")):
        raise RecurringError(_("An amount has at most two decimals (got {raw}).").format(raw=raw[:40]) + " " +
                             REFUSED)
    value = value.quantize(Decimal("0.01"))
    return -value if outflow else value


def remaining_total(series: Series) -> Decimal:
    """What an installment plan still commits the user to (signed), zero for open-ended series."""
    return series.next_amount * series.remaining if series.remaining else Decimal(0)
