"""Budgets (pure): a monthly amount per spending category (a parent covers its children) per currency, the
rollover chain that carries what was left — or overspent — into the next month, the allowance per day for the
rest of a month, and the validation of what the user typed.

Rollover: a budget marked `rollover` hands what is left at the end of its month (budget + carried − spent, negative
when overspent) to the budget of the same category and currency in the next month. A month without a budget ends
the chain. Over any run of rollover months, what is left is therefore the cumulative budget minus the cumulative
spending (tests/test_budgets.py checks it for any sequence).

No SQL and no Streamlit here: finance.store.budgets reads the budgets and the actuals, finance.services joins them
through `budget_lines`.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from babel.numbers import list_currencies

from finance.categories import CATEGORIES
from finance.i18n import N_, _, format_month

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("1e15")
"""Budgets are stored as DECIMAL(18,2); a monthly budget of a quadrillion is a typo."""
EARLIEST_YEARS = 30
LATEST_YEARS = 5
CURRENCIES = frozenset(list_currencies())
"""ISO 4217 codes (Babel's CLDR data), as the sync's screening uses."""
SPENDING_KINDS = ("expense", "other")
"""Categories that hold spending: income and transfers count as neither, so a budget on them would never move."""
REFUSED = N_("Nothing was changed.")


class BudgetError(ValueError):
    """Budget input the store refused, with a message for the user. Nothing was changed."""


@dataclass(frozen=True, slots=True)
class Budget:
    """The amount set for one category and currency in one month (`month` is its first day)."""

    month: date
    category: str
    currency: str
    amount: Decimal
    rollover: bool = False
    id: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """Budget against actual for one category and currency in a month (or the year to date).

    `budget` is the amount set, `carried` what the rollover chain brought in (negative after overspending), `actual`
    the net spending (refunds net off; transfers excluded), `left` = budget + carried − actual, `over` when left < 0.
    `per_day` is what may still be spent per remaining day of the month (None for a past month or the year view).
    """

    category: str
    category_name: str
    currency: str
    budget: Decimal
    actual: Decimal
    left: Decimal
    over: bool
    carried: Decimal = ZERO
    rollover: bool = False
    per_day: Decimal | None = None
    budget_id: str | None = None

    @property
    def available(self) -> Decimal:
        """What could be spent this month: the budget and what was carried in."""
        return self.budget + self.carried


# --------------------------------------------------------------------------------------------------------------------
# Months
# --------------------------------------------------------------------------------------------------------------------

def first_of_month(day: date) -> date:
    return date(day.year, day.month, 1)


def last_of_month(month: date) -> date:
    return date(month.year, month.month, calendar.monthrange(month.year, month.month)[1])


def add_months(month: date, count: int) -> date:
    """The first day of the month `count` months after (negative: before) `month`."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def clean_month(value: object, today: date) -> date:
    """The first day of a sane month (30 years back to 5 ahead), or BudgetError."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise BudgetError(_("Choose the month of the budget.") + " " + REFUSED)
    if not today.year - EARLIEST_YEARS <= value.year <= today.year + LATEST_YEARS:
        raise BudgetError(_("A budget's month must fall between {first} and {last} (got {month}).").format(
            first=today.year - EARLIEST_YEARS, last=today.year + LATEST_YEARS, month=format_month(value)) + " " +
            REFUSED)
    return first_of_month(value)


# --------------------------------------------------------------------------------------------------------------------
# Validation of what the user typed
# --------------------------------------------------------------------------------------------------------------------

def parse_amount(text: str | Decimal | float | int | None) -> Decimal:
    """A positive amount with at most two decimals, from "1500", "1500.50" or "1500,50" (no thousands separators)."""
    if text is None or (isinstance(text, float) and not math.isfinite(text)):
        raise BudgetError(_("The budget must be an amount like 1500.00.") + " " + REFUSED)
    raw = str(text).strip().replace(" ", "")
    if raw.count(",") + raw.count(".") > 1:
        raise BudgetError(_("Write the amount with one decimal sign and no thousands separators (like 1500.50), "
                            "not {raw}.").format(raw=repr(raw[:40])) + " " + REFUSED)
    try:
        value = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        raise BudgetError(_("The budget must be an amount like 1500.00 (got {raw}).").format(raw=repr(raw[:40])) +
                          " " + REFUSED) from None
    if not value.is_finite() or value <= 0:
        raise BudgetError(_("The budget must be an amount above zero.") + " " + REFUSED)
    if value >= MAX_AMOUNT:
        raise BudgetError(_("A budget of {raw} is too large (at most {max}).").format(
            raw=raw[:40], max=f"{MAX_AMOUNT:,.0f}") + " " + REFUSED)
    if value != value.quantize(CENT):
        raise BudgetError(_("A budget has at most two decimals (got {raw}).").format(raw=raw[:40]) + " " + REFUSED)
    return value.quantize(CENT)


def parse_currency(code: str | None) -> str:
    """A known ISO 4217 code ("usd " → "USD")."""
    value = (code or "").strip().upper()
    if value not in CURRENCIES:
        raise BudgetError(_("The currency must be an ISO code like BRL or USD (got {code}).").format(
            code=repr(str(code)[:20])) + " " + REFUSED)
    return value


def parse_category(category: str | None) -> str:
    """A known spending category id (a parent covers its children)."""
    found = CATEGORIES.get(category or "")
    if found is None:
        raise BudgetError(_("Unknown category {category}.").format(category=repr(str(category)[:60])) + " " +
                          REFUSED)
    if found.kind not in SPENDING_KINDS:
        raise BudgetError(_("{category} is not spending: budgets are for spending categories.").format(
            category=found.label) + " " + REFUSED)
    return found.id


def clean_budget(month: object, category: str | None, currency: str | None, amount: str | Decimal | float | int | None,
                 *, rollover: bool = False, today: date) -> Budget:
    """A validated `Budget` from the form's values, or BudgetError with what to fix."""
    return Budget(clean_month(month, today), parse_category(category), parse_currency(currency),
                  parse_amount(amount), bool(rollover))


# --------------------------------------------------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------------------------------------------------

def rollover_left(months: Iterable[tuple[Decimal, Decimal, bool]]) -> list[tuple[Decimal, Decimal]]:
    """For consecutive months of one category and currency, each as (budget, actual, rollover): what each month
    carried in and what it left. A rollover month hands its left (even negative) to the next one."""
    carried = ZERO
    out: list[tuple[Decimal, Decimal]] = []
    for budget, actual, rollover in months:
        left = budget + carried - actual
        out.append((carried, left))
        carried = left if rollover else ZERO
    return out


def chain_start(months_with_rollover: Mapping[date, bool], month: date) -> date:
    """The first month of the rollover chain ending in `month`: walk back while the month before has a rollover
    budget (`months_with_rollover` maps each month with a budget to its rollover flag)."""
    start = month
    while months_with_rollover.get(add_months(start, -1)):
        start = add_months(start, -1)
    return start


def per_day_allowance(left: Decimal, month: date, today: date) -> Decimal | None:
    """What may be spent per day for the rest of `month` (today included), rounded down to the cent; zero once the
    budget is used up; None for a month already over."""
    last = last_of_month(month)
    if today > last:
        return None
    days = (last - max(today, month)).days + 1
    if left <= 0:
        return ZERO
    return (left / days).quantize(CENT, rounding=ROUND_DOWN)


Key = tuple[str, str]
"""(category, currency)"""


def budget_lines(budgets: Sequence[Budget], actuals: Mapping[tuple[str, str, date], Decimal], month: date,
                 today: date, names: Mapping[str, str]) -> list[BudgetLine]:
    """The month's lines: each budget of `month` with its rollover chain (from the budgets of earlier months) and its
    actual spending; `actuals` maps (category, currency, month) to net spending (missing: nothing spent)."""
    by_key: dict[Key, dict[date, Budget]] = {}
    for b in budgets:
        by_key.setdefault((b.category, b.currency), {})[b.month] = b
    lines: list[BudgetLine] = []
    for (category, currency), months in by_key.items():
        current = months.get(month)
        if current is None:
            continue
        flags = {m: b.rollover for m, b in months.items()}
        start = chain_start(flags, month)
        chain: list[tuple[Decimal, Decimal, bool]] = []
        step = start
        while step <= month:
            b = months[step]
            chain.append((b.amount, actuals.get((category, currency, step), ZERO), b.rollover))
            step = add_months(step, 1)
        carried, left = rollover_left(chain)[-1]
        actual = chain[-1][1]
        lines.append(BudgetLine(category, names.get(category, category), currency, current.amount, actual, left,
                                left < 0, carried, current.rollover, per_day_allowance(left, month, today),
                                current.id))
    return sorted(lines, key=lambda line: (line.currency, line.category_name))


def year_lines(budgets: Sequence[Budget], actuals: Mapping[tuple[str, str, date], Decimal], month: date,
               names: Mapping[str, str]) -> list[BudgetLine]:
    """The year to date (January through `month`): per category and currency, the budgets set and the spending in
    the months that have a budget; left = budget − actual (rollover moves money between months, not in or out)."""
    first = date(month.year, 1, 1)
    budget: dict[Key, Decimal] = {}
    actual: dict[Key, Decimal] = {}
    for b in budgets:
        if first <= b.month <= month:
            key = (b.category, b.currency)
            budget[key] = budget.get(key, ZERO) + b.amount
            actual[key] = actual.get(key, ZERO) + actuals.get((b.category, b.currency, b.month), ZERO)
    lines = [BudgetLine(category, names.get(category, category), currency, amount, actual[(category, currency)],
                        amount - actual[(category, currency)], amount < actual[(category, currency)])
             for (category, currency), amount in budget.items()]
    return sorted(lines, key=lambda line: (line.currency, line.category_name))


def needed_from(budgets: Sequence[Budget], month: date) -> date:
    """The first month whose spending the month and year views of `month` need: January, or the start of an earlier
    rollover chain."""
    flags: dict[Key, dict[date, bool]] = {}
    for b in budgets:
        flags.setdefault((b.category, b.currency), {})[b.month] = b.rollover
    starts = [chain_start(months, month) for months in flags.values() if month in months]
    return min([date(month.year, 1, 1), *starts])
