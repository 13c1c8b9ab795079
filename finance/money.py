"""Money in several currencies (pure): dated exchange rates the user enters, conversion to a base currency that
never adds an unconverted amount at face value, and the figures of the Overview (key figures, card use).

A rate says 1 `from_currency` = `rate` `to_currency` and is in force from `valid_from` until the next rate of
the same pair, in either direction. An amount in currency X dated d converts to the base currency B with the
latest rate dated on or before d among X→B and B→X (the latter inverted; on the same date the direct one wins).
When there is none, the amount is *unconverted*: it is reported with its currency and dates (a `Gap`) and left
out of every base-currency total, so a total in the base currency is never a silent mix of face values.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import pandas as pd

from finance.formatting import format_money
from finance.i18n import N_, _, format_short_day

CURRENCY_CODE = re.compile(r"[A-Z]{3}")
RATE_PLACES = 12
"""Decimals a rate keeps (exchange_rates.rate is DECIMAL(24, 12))."""
MAX_RATE = Decimal("1e12")
MAX_NOTE_LENGTH = 200
CENT = Decimal("0.01")
_ONE = Decimal(1)


class RateError(ValueError):
    """A rate the store refused, with a message for the user. Nothing was changed."""


@dataclass(frozen=True, slots=True)
class Rate:
    """1 `from_currency` = `rate` `to_currency`, in force from `valid_from`."""

    from_currency: str
    to_currency: str
    rate: Decimal
    valid_from: date
    note: str | None = None
    id: str | None = None


# --------------------------------------------------------------------------------------------------------------------
# Validation of what the user typed
# --------------------------------------------------------------------------------------------------------------------

def parse_rate(text: str | Decimal | float | int) -> Decimal:
    """A positive rate from "5.4321" or "5,4321" (a comma is read as the decimal sign; no thousands separators)."""
    if isinstance(text, float) and not math.isfinite(text):
        raise RateError(_("The rate must be a number, like 5.4321. Nothing was changed."))
    raw = str(text).strip().replace(" ", "")
    if raw.count(",") + raw.count(".") > 1:
        raise RateError(_("Write the rate with one decimal sign and no thousands separators (like 5.4321), not "
                          "{raw}. Nothing was changed.").format(raw=repr(raw)))
    try:
        value = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        raise RateError(_("The rate must be a number, like 5.4321 (got {raw}). Nothing was changed.").format(
            raw=repr(raw))) from None
    if not value.is_finite() or value <= 0:
        raise RateError(_("The rate must be a number above zero. Nothing was changed."))
    if value >= MAX_RATE:
        raise RateError(_("A rate of {raw} is too large (at most {max}). Nothing was changed.").format(
            raw=raw, max=f"{MAX_RATE:,.0f}"))
    kept = value.quantize(_ONE.scaleb(-RATE_PLACES), rounding=ROUND_HALF_EVEN)
    if kept == 0:
        raise RateError(_("A rate of {raw} is too small to store ({places} decimals are kept): enter the reverse "
                          "pair instead. Nothing was changed.").format(raw=raw, places=RATE_PLACES))
    return kept


def parse_currency(code: str | None, what: str | None = None) -> str:
    """An ISO 4217-style code ("usd " → "USD")."""
    value = (code or "").strip().upper()
    if not CURRENCY_CODE.fullmatch(value):
        raise RateError(_("{what} must be a three-letter code like BRL or USD (got {code}). Nothing was changed.")
                        .format(what=what or _("Currency"), code=repr(code)))
    return value


def clean_rate(from_currency: str, to_currency: str, rate: str | Decimal | float | int, valid_from: date | None,
               note: str | None = None, *, rate_id: str | None = None) -> Rate:
    """A validated `Rate` from the form's values, or RateError with what to fix."""
    source, target = parse_currency(from_currency, _("From")), parse_currency(to_currency, _("To"))
    if source == target:
        raise RateError(_("A rate converts between two different currencies ({currency} → {currency} is always 1). "
                          "Nothing was changed.").format(currency=source))
    if not isinstance(valid_from, date) or isinstance(valid_from, datetime):
        raise RateError(_("Choose the date from which the rate is valid. Nothing was changed."))
    text = (note or "").strip()
    if len(text) > MAX_NOTE_LENGTH:
        raise RateError(_("A note can have at most {max} characters (this one has {length}). Nothing was changed.")
                        .format(max=MAX_NOTE_LENGTH, length=len(text)))
    if any(ord(ch) < 32 for ch in text):
        raise RateError(_("The note contains control characters. Nothing was changed."))
    return Rate(source, target, parse_rate(rate), valid_from, text or None, rate_id)


# --------------------------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------------------------

class RateBook:
    """The rates in force on each date, for conversion in both directions of every pair."""

    def __init__(self, rates: Iterable[Rate]) -> None:
        table: dict[tuple[str, str], list[tuple[date, int, Decimal]]] = {}
        for r in rates:
            if r.rate <= 0:
                raise ValueError(f"rate must be positive: {r}")
            table.setdefault((r.from_currency, r.to_currency), []).append((r.valid_from, 1, r.rate))
            table.setdefault((r.to_currency, r.from_currency), []).append((r.valid_from, 0, _ONE / r.rate))
        self._entries = {pair: sorted(entries, key=lambda e: (e[0], e[1])) for pair, entries in table.items()}
        self._keys = {pair: [(e[0], e[1]) for e in entries] for pair, entries in self._entries.items()}

    def rate(self, currency: str, base: str, day: date) -> Decimal | None:
        """Units of `base` per unit of `currency` on `day`, or None when no rate is in force then."""
        if currency == base:
            return _ONE
        keys = self._keys.get((currency, base))
        if not keys:
            return None
        index = bisect.bisect_right(keys, (day, 2))
        return self._entries[(currency, base)][index - 1][2] if index else None

    def first_day(self, currency: str, base: str) -> date | None:
        """The first date from which `currency` converts to `base` (None: never)."""
        keys = self._keys.get((currency, base))
        return keys[0][0] if keys else None


def convert(amount: Decimal, currency: str, day: date, base: str, book: RateBook) -> Decimal | None:
    """`amount` in `base` at the rate in force on `day`, unrounded; None when it cannot be converted."""
    rate = book.rate(currency, base, day)
    return None if rate is None else amount * rate


@dataclass(frozen=True, slots=True)
class Gap:
    """Amounts of one currency that have no rate to the base currency in force on their dates: left out."""

    currency: str
    base: str
    first_day: date
    last_day: date
    amounts: Mapping[str, Decimal]  # per measure, the face value (in `currency`) that was not added in
    rate_from: date | None  # from when the pair has a rate (None: no rate at all)


@dataclass(frozen=True, slots=True)
class BaseTotals:
    """Sums in the base currency of what could be converted, and the gaps that were left out."""

    base: str
    totals: Mapping[str, Decimal]  # per measure, rounded to cents
    gaps: tuple[Gap, ...]

    @property
    def complete(self) -> bool:
        return not self.gaps


def _decimal(value: object) -> Decimal | None:
    """A Decimal from a store value; None for None, NaN and pandas' NA."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else Decimal(str(value))
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _day(value: object) -> date:
    if isinstance(value, pd.Timestamp | datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"not a date: {value!r}")


def to_base(rows: Iterable[Mapping[str, object]], measures: Sequence[str], base: str, book: RateBook, *,
            day: str = "day", currency: str = "currency") -> BaseTotals:
    """Sum `measures` of `rows` (each with a currency and a date) in `base`, each at the rate in force on its
    date. A row with no rate in force is not added in: its face values go into the currency's `Gap`."""
    totals = {m: Decimal(0) for m in measures}
    missing: dict[str, tuple[date, date, dict[str, Decimal]]] = {}
    for row in rows:
        values = {m: _decimal(row.get(m)) for m in measures}
        if all(v is None or v == 0 for v in values.values()):
            continue
        code, when = str(row[currency]), _day(row[day])
        rate = book.rate(code, base, when)
        if rate is not None:
            for m, v in values.items():
                if v is not None:
                    totals[m] += v * rate
            continue
        first, last, face = missing.get(code, (when, when, {m: Decimal(0) for m in measures}))
        for m, v in values.items():
            if v is not None:
                face[m] += v
        missing[code] = (min(first, when), max(last, when), face)
    gaps = tuple(Gap(code, base, first, last, face, book.first_day(code, base))
                 for code, (first, last, face) in sorted(missing.items()))
    return BaseTotals(base, {m: v.quantize(CENT, rounding=ROUND_HALF_EVEN) for m, v in totals.items()}, gaps)


def series_to_base(frame: pd.DataFrame, measure: str, base: str, book: RateBook, *, day: str = "day",
                   currency: str = "currency") -> tuple[pd.DataFrame, tuple[Gap, ...]]:
    """A per-day, per-currency series (e.g. net worth) in `base`: one row per day with each currency's converted
    value (column = currency code, NaN where it has no rate) and `total`, which is NaN on every day where some
    currency with a non-zero value could not be converted — a gap in the line, never a face-value sum."""
    records = frame.to_dict("records")
    totals = to_base(records, [measure], base, book, day=day, currency=currency)
    per_day: dict[date, dict[str, float]] = {}
    incomplete: set[date] = set()
    for row in records:
        when, code, value = _day(row[day]), str(row[currency]), _decimal(row.get(measure))
        entry = per_day.setdefault(when, {})
        if value is None:
            continue
        converted = convert(value, code, when, base, book)
        if converted is None:
            entry[code] = math.nan
            if value != 0:
                incomplete.add(when)
        else:
            entry[code] = float(converted)
    codes = sorted({str(c) for c in frame[currency]}) if not frame.empty else []
    out = pd.DataFrame([{"day": d, **{c: v.get(c, math.nan) for c in codes}} for d, v in sorted(per_day.items())],
                       columns=["day", *codes])
    out["total"] = [math.nan if d in incomplete else sum(v for v in per_day[d].values() if not math.isnan(v))
                    for d in out["day"]]
    return out, totals.gaps


def describe_gap(gap: Gap, measures: Mapping[str, str]) -> str:
    """What was left out of a base-currency total and how to include it, in words; `measures` names the measures
    whose face values to list ("income" → "income"; none for a series, where a sum of days means nothing)."""
    first, last = format_short_day(gap.first_day), format_short_day(gap.last_day)
    period = first if gap.first_day == gap.last_day else f"{first} – {last}"
    since = (_("the first {currency}/{base} rate is dated {day}").format(
        currency=gap.currency, base=gap.base, day=format_short_day(gap.rate_from)) if gap.rate_from else
        _("there is no {currency}/{base} rate").format(currency=gap.currency, base=gap.base))
    left_out = ", ".join(f"{label} {format_money(gap.amounts[m], gap.currency)}" for m, label in measures.items()
                         if gap.amounts.get(m))
    listed = " " + _("Left out: {amounts}.").format(amounts=left_out) if left_out else ""
    return _("{currency} amounts dated {period} are not converted to {base} and not included: {since}.").format(
        currency=gap.currency, period=period, base=gap.base, since=since) + listed + " " + _(
        "Add a {currency} → {base} rate dated on or before {day} to include them.").format(
        currency=gap.currency, base=gap.base, day=first)


# --------------------------------------------------------------------------------------------------------------------
# Overview figures
# --------------------------------------------------------------------------------------------------------------------

ACCOUNT_TYPES = {"checking": N_("Checking"), "savings": N_("Savings"), "credit_card": N_("Credit card"),
                 "loan": N_("Loan"), "investment": N_("Investment"), "other": N_("Other")}


def account_type_label(kind: str) -> str:
    """"Credit card" for credit_card, in the interface language; an unknown type as it came."""
    label = ACCOUNT_TYPES.get(kind)
    return str(label) if label is not None else kind.replace("_", " ").capitalize()


_PERIOD_NAMES = (N_("Last 30 days"), N_("Last 90 days"), N_("Last 12 months"), N_("This year"), N_("Custom"))
PERIODS = tuple(name.message for name in _PERIOD_NAMES)
"""The named periods, in English (they are ids too); shown through the catalogs."""


def preset_period(name: str, today: date) -> tuple[date, date]:
    """The dates of a named period ending `today` (both days included); "Custom" is the caller's to choose."""
    if name == "Last 30 days":
        return today - timedelta(days=29), today
    if name == "Last 90 days":
        return today - timedelta(days=89), today
    if name == "Last 12 months":
        return today - timedelta(days=364), today
    if name == "This year":
        return date(today.year, 1, 1), today
    raise ValueError(f"unknown period {name!r}; choose one of {', '.join(PERIODS[:-1])}")


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of the same length that ends the day before `start`."""
    length = (end - start).days
    previous_end = start - timedelta(days=1)
    return previous_end - timedelta(days=length), previous_end


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Income, spending and the largest expense of one period in one currency."""

    income: Decimal = Decimal(0)
    spending: Decimal = Decimal(0)
    largest_expense: Decimal | None = None  # its size (positive)
    largest_description: str | None = None
    largest_day: date | None = None

    @property
    def net(self) -> Decimal:
        return self.income - self.spending

    @property
    def savings_rate(self) -> Decimal | None:
        """The share of income not spent; None without income (a rate of nothing is not 0 %)."""
        return self.net / self.income if self.income > 0 else None


@dataclass(frozen=True, slots=True)
class KeyFigures:
    """One currency's figures for the chosen period and, when the data covers it, the period before."""

    currency: str
    current: PeriodFigures
    previous: PeriodFigures | None

    def change(self, name: str) -> Decimal | None:
        """Current minus previous for `income`, `spending`, `net`, `savings_rate`, `largest_expense`."""
        if self.previous is None:
            return None
        now, before = getattr(self.current, name), getattr(self.previous, name)
        return None if now is None or before is None else now - before


def _period_figures(row: Mapping[str, object] | None) -> PeriodFigures:
    if row is None:
        return PeriodFigures()
    largest = _decimal(row.get("largest_expense"))
    description = row.get("largest_description")
    largest_day = row.get("largest_day")
    return PeriodFigures(income=_decimal(row.get("income")) or Decimal(0),
                         spending=_decimal(row.get("spending")) or Decimal(0),
                         largest_expense=largest if largest and largest > 0 else None,
                         largest_description=str(description) if largest and isinstance(description, str) else None,
                         largest_day=_day(largest_day) if largest and largest_day is not None and
                         not pd.isna(largest_day) else None)


def key_figures(frame: pd.DataFrame, *, previous_covered: bool) -> dict[str, KeyFigures]:
    """Per currency, from `queries.period_figures` rows (`period` = current/previous). The previous period is
    compared only when the data covers all of it (`previous_covered`): a half-synced month is not "less spending"."""
    rows = {(str(r["currency"]), str(r["period"])): r for r in frame.to_dict("records")}
    figures = {}
    for code in sorted({c for c, _period in rows}):
        previous = _period_figures(rows.get((code, "previous"))) if previous_covered else None
        figures[code] = KeyFigures(code, _period_figures(rows.get((code, "current"))), previous)
    return figures


def card_use(accounts: pd.DataFrame) -> pd.DataFrame:
    """Credit cards with a limit: what is owed (`used`, a card's debt is a negative balance), the limit, what is
    left and `share` = used / limit, per card; one currency per card, never summed across currencies."""
    columns = ["id", "institution", "name", "mask", "currency", "used", "credit_limit", "available", "share",
               "balance_as_of"]
    if accounts.empty:
        return pd.DataFrame(columns=columns)
    limits = [_decimal(v) for v in accounts["credit_limit"]]
    chosen = [t == "credit_card" and lim is not None and lim > 0 for t, lim in zip(accounts["type"], limits,
                                                                                  strict=True)]
    cards = accounts[chosen]
    rows = []
    for card in cards.to_dict("records"):
        limit = _decimal(card["credit_limit"]) or Decimal(0)
        balance = _decimal(card["current_balance"]) or Decimal(0)
        used = max(Decimal(0), -balance)
        rows.append({**{c: card.get(c) for c in ("id", "institution", "name", "mask", "currency", "balance_as_of")},
                     "used": used, "credit_limit": limit, "available": limit - used,
                     "share": float(used / limit)})
    return pd.DataFrame(rows, columns=columns)


def card_use_totals(cards: pd.DataFrame) -> pd.DataFrame:
    """Per currency: the cards' combined use, limit and share."""
    rows = []
    for code in sorted(set(cards["currency"])):
        group = cards[cards["currency"] == code]
        used, limit = sum(group["used"], Decimal(0)), sum(group["credit_limit"], Decimal(0))
        rows.append({"currency": code, "cards": len(group), "used": used, "credit_limit": limit,
                     "share": float(used / limit) if limit else math.nan})
    return pd.DataFrame(rows, columns=["currency", "cards", "used", "credit_limit", "share"])
