"""The balance forecast's pure part: projection from hand-made series (cadences, installments counting down,
dismissed and missed series), floors and warnings, threshold validation (hostile input included), Markdown escaping.
Through the services and the page: tests/test_forecast_page.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from finance.forecast import AccountStart, ThresholdError, clean_threshold, occurrences, outlook
from finance.formatting import escape_markdown
from finance.recurring import Series

TODAY = date(2026, 1, 10)


def series(account: str, next_date: date | None, amount: str, *, cadence: str = "monthly", kind: str = "recurring",
           remaining: int | None = None, status: str = "detected", missed: bool = False) -> Series:
    value = Decimal(amount)
    return Series(key=f"{account}|{next_date}|{amount}", account_id=account, merchant="M", currency="BRL", kind=kind,
                  cadence=cadence, amount=value, first_date=date(2025, 1, 1), last_date=date(2025, 12, 1),
                  next_date=next_date, next_amount=value, occurrences=12, remaining=remaining, price_changes=(),
                  missed=missed, is_new=False, status=status)


CHECKING = AccountStart("a", "Checking", "checking", "BRL", Decimal("1000.00"))
CARD = AccountStart("c", "Card", "credit_card", "BRL", Decimal("-900.00"), Decimal("1000.00"))


def test_cadences_installments_and_dismissed_series():
    end = TODAY + timedelta(days=90)
    assert [d for d, _ in occurrences(series("a", date(2026, 1, 31), "-10", cadence="monthly"), TODAY, end)] == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]
    assert len(occurrences(series("a", TODAY, "-5", cadence="weekly"), TODAY, end)) == 13
    assert len(occurrences(series("a", date(2026, 2, 1), "-5", cadence="yearly"), TODAY, end)) == 1
    assert len(occurrences(series("c", date(2026, 1, 15), "-50", kind="installment", remaining=2), TODAY, end)) == 2
    assert occurrences(series("c", None, "-50", kind="installment", remaining=0), TODAY, end) == []
    assert occurrences(series("a", TODAY, "-50", status="dismissed"), TODAY, end) == []
    late = series("a", TODAY - timedelta(days=2), "3000")
    assert occurrences(late, TODAY, end)[0] == (TODAY, Decimal("3000"))
    assert occurrences(replace(late, missed=True), TODAY, end)[0][0] == date(2026, 2, 8)


def test_the_forecast_names_the_first_day_below_zero_and_past_a_card_limit():
    found = outlook([CHECKING, CARD], [series("a", date(2026, 1, 15), "-600"), series("a", date(2026, 1, 20), "300"),
                                       series("c", date(2026, 1, 12), "-120", kind="installment", remaining=3)],
                    {}, TODAY, 30)
    balances = found.projection[found.projection["account_id"] == "a"].set_index("day")["balance"]
    assert balances[TODAY] == Decimal("1000.00") and balances[date(2026, 1, 15)] == Decimal("400.00")
    assert balances[date(2026, 2, 9)] == Decimal("700.00")  # one of each series so far
    assert [(w.account, w.day, w.balance) for w in found.warnings] == [("Card", date(2026, 1, 12), Decimal("-1020.00"))]
    longer = outlook([CHECKING], [series("a", date(2026, 1, 15), "-600")], {}, TODAY, 60)
    warning = longer.warnings[0]
    assert (warning.day, warning.balance) == (date(2026, 2, 15), Decimal("-200.00"))
    assert warning.text("R$ -200,00", "R$ 0,00") == "Checking: expected below zero on Feb 15, 2026 (R$ -200,00)."


def test_a_threshold_overrides_the_floor_and_covers_any_account():
    loan = AccountStart("l", "Loan", "loan", "BRL", Decimal("-5000.00"))
    found = outlook([CHECKING, loan], [], {"a": Decimal("1500"), "l": Decimal("-4000")}, TODAY, 30)
    assert [(w.account, w.day, w.threshold_set) for w in found.warnings] == [("Checking", TODAY, True),
                                                                            ("Loan", TODAY, True)]
    assert outlook([loan], [], {}, TODAY, 30).warnings == ()


@pytest.mark.parametrize(("text", "expected"), [("500", Decimal("500")), (" -1500.50 ", Decimal("-1500.50")),
                                                ("1500,5", Decimal("1500.5")), ("", None), ("   ", None)])
def test_clean_threshold(text, expected):
    assert clean_threshold(text) == expected


@pytest.mark.parametrize("text", ["abc", "1e9", "NaN", "Infinity", "1.234", "1.000,50", "=1+1", "<b>5</b>",
                                  "9" * 19, "12.", "--5", "5\x00", "١٢٣"])
def test_hostile_thresholds_are_refused(text):
    with pytest.raises(ThresholdError):
        clean_threshold(text)


def test_escape_markdown_shows_bank_text_literally():
    assert escape_markdown("[x](javascript:alert) **R$ 5** <b>") == \
        "\\[x\\]\\(javascript\\:\u2060alert\\) \\*\\*R\\$ 5\\*\\* \\<b\\>"
