"""Recurring detection (finance.recurring), pure: known cadences with noise are found, irregular identical purchases
are not, installments are plans with an end, and the user's choices lay over what was detected."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finance.recurring import Choice, Series, add_months, apply_choices, detect, remaining_total

pytestmark = pytest.mark.engines

TODAY = date(2026, 12, 7)


def history(dates: list[date], cents: list[int], merchant: str = "Netflix", **extra: object) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"t{i}" for i in range(len(dates))], "account_id": "acc", "merchant": merchant, "currency": "BRL",
        "booked_date": dates, "amount_cents": cents, **extra})


def only(found: list[Series]) -> Series:
    assert len(found) == 1, found
    return found[0]


def test_a_monthly_subscription_with_a_price_change_and_weekend_jitter():
    dates = [add_months(date(2026, 1, 7), i) for i in range(11)]
    dates[2] += timedelta(days=2)  # a Saturday charge booked on Monday
    cents = [-3990] * 6 + [-4490] * 5
    series = only(detect(history(dates, cents), TODAY))
    assert (series.kind, series.cadence, series.occurrences) == ("subscription", "monthly", 11)
    assert series.amount == series.next_amount == Decimal("-44.90")
    assert series.next_date == date(2026, 12, 7) and not series.missed and not series.is_new
    [change] = series.price_changes
    assert (change.on, change.before, change.after) == (date(2026, 7, 7), Decimal("-39.90"), Decimal("-44.90"))
    assert series.key == "acc|netflix|BRL|monthly"
    assert series.transaction_ids == tuple(f"t{i}" for i in range(11))


def test_a_missed_payment_a_new_subscription_and_an_ended_one():
    last = add_months(TODAY, -1) - timedelta(days=10)
    missed = only(detect(history([add_months(last, -i) for i in range(5, -1, -1)], [-1000] * 6), TODAY))
    assert missed.missed and missed.next_date == add_months(last, 1)
    new = only(detect(history([add_months(TODAY, -i) for i in (2, 1, 0)], [-1000] * 3), TODAY))
    assert new.is_new and not new.missed
    assert detect(history([date(2025, 1, 5) + timedelta(days=30 * i) for i in range(5)], [-1000] * 5), TODAY) == []


def test_installments_are_plans_with_an_end_and_never_subscriptions():
    dates = [add_months(date(2026, 7, 19), i) for i in range(5)] + [add_months(date(2026, 1, 18), i) for i in range(10)]
    rows = history(dates, [-48344] * 5 + [-9787] * 10, merchant="Mercado Livre",
                   installment_number=[*range(1, 6), *range(1, 11)], installment_total=[6] * 5 + [10] * 10)
    open_plan, finished = detect(rows, TODAY)
    assert open_plan.kind == finished.kind == "installment"
    assert (open_plan.remaining, open_plan.next_date, open_plan.occurrences) == (1, date(2026, 12, 19), 5)
    assert remaining_total(open_plan) == Decimal("-483.44")
    assert open_plan.key == "acc|mercado livre|BRL|installment 6x 2026-07"
    assert (finished.remaining, finished.next_date, remaining_total(finished)) == (0, None, Decimal(0))


def test_a_subscription_among_unrelated_purchases_at_the_same_merchant():
    subscription = [add_months(date(2026, 3, 15), i) for i in range(9)]
    purchases = [date(2026, 4, 2), date(2026, 6, 21), date(2026, 6, 29), date(2026, 9, 3)]
    rows = history(subscription + purchases, [-1490] * 9 + [-8990, -23450, -4599, -31200], merchant="Amazon")
    series = only(detect(rows, TODAY))
    assert series.occurrences == 9 and series.amount == Decimal("-14.90")


def test_a_membership_among_many_orders_of_similar_size():
    rng = random.Random(3)
    membership = [add_months(date(2026, 1, 12), i) for i in range(11)]
    orders = [date(2026, 1, 1) + timedelta(days=rng.randint(0, 330)) for _ in range(40)]
    rows = history(membership + orders, [-1490] * 11 + [-rng.randint(1000, 6000) for _ in orders], merchant="Amazon")
    series = only(detect(rows.sort_values("booked_date"), TODAY))
    assert (series.occurrences, series.amount, series.kind) == (11, Decimal("-14.90"), "subscription")


def test_salary_is_recurring_and_bills_are_not_subscriptions():
    days = [add_months(date(2026, 1, 5), i) for i in range(11)]
    salary = history(days, [650650] * 11, merchant="ACME LTDA")
    rent = history(days, [-260600] * 11, merchant="Imobiliaria", category=["housing.rent"] * 11)
    assert only(detect(salary, TODAY)).kind == "recurring"
    assert only(detect(rent, TODAY)).kind == "recurring"
    assert only(detect(history(days, [-2190] * 11, category=["entertainment.streaming"] * 11), TODAY)).kind \
        == "subscription"


def test_the_users_choices_survive_and_dismissed_series_are_hidden():
    series = only(detect(history([add_months(date(2026, 1, 7), i) for i in range(11)], [-4490] * 11), TODAY))
    edited = apply_choices([series], {series.key: Choice(series.key, "confirmed", name="Netflix family",
                                                         amount=Decimal("-55.90"), cadence="yearly")})
    assert (edited[0].status, edited[0].merchant, edited[0].next_amount) == ("confirmed", "Netflix family",
                                                                             Decimal("-55.90"))
    assert edited[0].next_date == date(2027, 11, 7)
    dismissed = {series.key: Choice(series.key, "dismissed")}
    assert apply_choices([series], dismissed) == []
    assert apply_choices([series], dismissed, include_dismissed=True)[0].status == "dismissed"


# --------------------------------------------------------------------------------------------------------------------
# Properties: known cadences with noise are found; irregular identical purchases are not
# --------------------------------------------------------------------------------------------------------------------

STEP = {"weekly": lambda start, i: start + timedelta(days=7 * i),
        "monthly": lambda start, i: add_months(start, i), "yearly": lambda start, i: add_months(start, 12 * i)}


@st.composite
def noisy_series(draw: st.DrawFn) -> tuple[str, int, pd.DataFrame]:
    """A history of one cadence (jittered dates, a skipped period, drifting or changed amounts) plus identical
    unrelated purchases; returns the cadence, how many of its payments were kept, and the rows."""
    cadence = draw(st.sampled_from(["weekly", "monthly", "yearly"]))
    count = draw(st.integers(6, 30) if cadence == "weekly" else st.integers(4, 14) if cadence == "monthly"
                 else st.integers(3, 5))
    start = TODAY - timedelta(days=draw(st.integers(1, 6)))
    dates = [STEP[cadence](start, -i) for i in range(count)][::-1]
    late = 1 if cadence == "weekly" else 3
    dates = [d + timedelta(days=draw(st.integers(0, late))) for d in dates]  # booked a business day or two late
    if count >= 6 and draw(st.booleans()):
        del dates[draw(st.integers(1, count - 2))]  # a skipped period
    base = draw(st.integers(500, 500_000))
    # Fewer than five payments are a series only with a price paid twice (finance.recurring.SHORT_CHAIN).
    drift = draw(st.sampled_from(["fixed", "drift", "change"] if len(dates) >= 5 + len(dates) // 4 else
                                 ["fixed", "change"]))
    cents = [-base] * len(dates)
    if drift == "drift":
        cents = [-round(base * (1 + draw(st.integers(-5, 5)) / 100)) for _ in dates]
    elif drift == "change":
        at = draw(st.integers(1, len(dates) - 1))
        cents = [-base] * at + [-round(base * 1.12)] * (len(dates) - at)
    unrelated = draw(st.integers(0, len(dates) // 4))
    span = (dates[-1] - dates[0]).days
    extra = [dates[0] + timedelta(days=draw(st.integers(0, span))) for _ in range(unrelated)]
    rows = history(dates + extra, cents + [cents[-1]] * unrelated)
    return cadence, len(dates), rows.sort_values("booked_date").reset_index(drop=True)


@settings(max_examples=150, deadline=None)
@given(noisy_series())
def test_known_cadences_are_found_through_the_noise(case: tuple[str, int, pd.DataFrame]):
    cadence, kept, rows = case
    series = only(detect(rows, TODAY))
    assert series.cadence == cadence
    unrelated = len(rows) - kept
    assert kept - unrelated <= series.occurrences <= len(rows)
    assert not series.missed and series.kind == "subscription"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(40, 50), min_size=2, max_size=12), st.integers(100, 100_000))
def test_identical_purchases_at_irregular_dates_are_no_series(gaps: list[int], cents: int):
    dates = [TODAY - timedelta(days=3)]
    for gap in gaps:
        dates.insert(0, dates[0] - timedelta(days=gap))
    assert detect(history(dates, [-cents] * len(dates)), TODAY) == []


def test_daily_commutes_of_one_fare_are_no_series():
    dates = [TODAY - timedelta(days=d) for d in range(300) if d % 7 not in (5, 6) for _ in range(2)]
    assert detect(history(dates, [-520] * len(dates), merchant="Metro"), TODAY) == []
