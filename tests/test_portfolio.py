"""Card bills and installment commitments as the Card bills page shows them, and when a sync reads the portfolio
(finance.portfolio, pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from finance.portfolio import (
    PORTFOLIO_INTERVAL,
    Bill,
    card_bills,
    commitment_sentence,
    committed_installments,
    portfolio_due,
)
from finance.recurring import Series

D = Decimal
TODAY = date(2026, 12, 7)
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def bill(bill_id: str, due: date, closing: date | None = None, *, paid: bool | None = None,
         account: str = "card") -> Bill:
    return Bill(bill_id, account, "Gold", due, D("100.00"), "BRL", closing, is_paid=paid)


def test_the_current_bill_is_the_first_not_yet_due_and_the_next_follows_it() -> None:
    bills = [bill("nov", date(2026, 11, 15), date(2026, 11, 5), paid=True), bill("jan", date(2027, 1, 15)),
             bill("dec", date(2026, 12, 15), date(2026, 12, 5))]
    [card] = card_bills(bills, TODAY)
    assert (card.current.id, card.next.id if card.next else None) == ("dec", "jan")
    assert card.current.state(TODAY) == "closed"
    assert bill("x", date(2027, 1, 15), date(2027, 1, 5)).state(TODAY) == "open"
    assert bill("y", date(2026, 12, 1), date(2026, 11, 20), paid=False).state(TODAY) == "overdue"
    assert bills[0].state(TODAY) == "paid"


def test_a_card_without_a_bill_ahead_shows_its_latest() -> None:
    [card] = card_bills([bill("oct", date(2026, 10, 15)), bill("nov", date(2026, 11, 15))], TODAY)
    assert card.current.id == "nov" and card.next is None


def plan(remaining: int, amount: str, next_date: date | None, *, currency: str = "BRL",
         kind: str = "installment") -> Series:
    return Series(key=f"k{remaining}{amount}", account_id="card", merchant="Loja", currency=currency,
                  kind=kind, cadence="monthly", amount=D(amount), first_date=TODAY, last_date=TODAY,  # type: ignore[arg-type]
                  next_date=next_date, next_amount=D(amount), occurrences=1, remaining=remaining,
                  price_changes=(), missed=False, is_new=False)


def test_future_installments_add_up_month_by_month() -> None:
    months = committed_installments([plan(4, "-206.67", date(2027, 1, 5)), plan(2, "-100.00", date(2027, 1, 20)),
                                     plan(3, "-50.00", date(2027, 1, 5), kind="subscription"),
                                     plan(2, "30.00", date(2027, 1, 5)), plan(0, "-10.00", None)], TODAY)
    assert [(m.month, m.amount, m.plans) for m in months] == [
        (date(2027, 1, 1), D("306.67"), 2), (date(2027, 2, 1), D("306.67"), 2),
        (date(2027, 3, 1), D("206.67"), 1), (date(2027, 4, 1), D("206.67"), 1)]
    assert commitment_sentence(months, "BRL") == "R$ 1.026,68 over the next 4 months"
    assert commitment_sentence(months, "USD") == ""


def test_an_overdue_installment_counts_in_this_month() -> None:
    [month] = committed_installments([plan(1, "-80.00", date(2026, 11, 5))], TODAY)
    assert month.month == date(2026, 12, 1)
    assert commitment_sentence([month], "BRL") == "R$ 80,00 over the next 1 month"


@pytest.mark.parametrize(("ago", "due"), [
    (None, True),  # never read
    (timedelta(0), False), (timedelta(minutes=59, seconds=59), False),
    (PORTFOLIO_INTERVAL, True), (timedelta(days=3), True),
    (-timedelta(minutes=5), True),  # read "in the future": the clock went back, the interval means nothing
])
def test_the_portfolio_is_read_at_most_once_an_hour(ago: timedelta | None, due: bool) -> None:
    assert portfolio_due(None if ago is None else NOW - ago, NOW) is due
