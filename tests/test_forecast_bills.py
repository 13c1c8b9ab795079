"""Scheduled card bills in the forecast: the due day inferred from past payments, the next due date, the projection
(the payer pays what the card owes, later bills estimated from its spending), a card never paid, and the store finding
the payer by its mirror rows. On the sandbox banks: tests/test_forecast_page.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from finance.forecast import AccountStart, CardHistory, card_bills, due_day, next_due_date, outlook
from finance.store import forecast as forecast_store

pytestmark = pytest.mark.engines

TODAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
CHECKING = AccountStart("a", "Checking", "checking", "BRL", Decimal("1000.00"))
CARD = AccountStart("c", "Card", "credit_card", "BRL", Decimal("-900.00"), Decimal("5000.00"))
PAID_ON_THE_10TH = tuple(date(2025, month, 10) for month in range(6, 13))


def test_payments_on_the_10th_make_the_10th_the_due_day():
    assert due_day(PAID_ON_THE_10TH) == 10
    assert due_day((*PAID_ON_THE_10TH, date(2025, 11, 12), date(2025, 8, 11))) == 10  # a late month or two
    assert due_day((date(2025, 10, 10), date(2025, 11, 12))) == 12  # as common: the latest payment's day
    assert due_day(()) is None


@pytest.mark.parametrize(("day", "today", "last", "expected"), [
    (10, date(2026, 1, 5), date(2025, 12, 10), date(2026, 1, 10)),
    (10, date(2026, 1, 10), date(2025, 12, 10), date(2026, 2, 10)),  # after today, not today
    (10, date(2026, 1, 5), date(2026, 1, 2), date(2026, 2, 10)),  # this month's bill already paid early
    (10, date(2025, 12, 20), None, date(2026, 1, 10)),  # into the next year
    (31, date(2026, 2, 1), None, date(2026, 2, 28)),  # shortened for a short month
    (31, date(2026, 2, 28), None, date(2026, 3, 31)),
])
def test_next_due_date(day: int, today: date, last: date | None, expected: date):
    assert next_due_date(day, today, last) == expected


def test_the_payer_pays_the_card_off_on_the_due_date_then_estimated_bills():
    history = [CardHistory("c", "a", PAID_ON_THE_10TH, Decimal("400.00"))]
    found = outlook([CHECKING, CARD], [], {}, TODAY, 90, card_history=history)
    assert [(b.day, b.amount, b.estimated, b.payer) for b in found.bills] == [
        (date(2026, 1, 10), Decimal("900.00"), False, "Checking"),
        (date(2026, 2, 10), Decimal("400.00"), True, "Checking"),
        (date(2026, 3, 10), Decimal("400.00"), True, "Checking")]
    balances = {(r.account_id, r.day): r.balance for r in found.projection.itertuples()}
    assert balances[("a", date(2026, 1, 9))] == Decimal("1000.00")
    assert balances[("a", date(2026, 1, 10))] == Decimal("100.00")
    assert balances[("c", date(2026, 1, 9))] == Decimal("-900.00")
    assert balances[("c", date(2026, 1, 10))] == Decimal("0.00")  # back to zero
    assert balances[("a", date(2026, 2, 10))] == Decimal("-300.00")
    assert balances[("c", date(2026, 4, 5))] == Decimal("0.00")  # later spending and its bills cancel on the card
    assert [(w.account, w.day) for w in found.warnings] == [("Checking", date(2026, 2, 10))]
    assert found.cards_without_due_day == ()
    assert len(outlook([CHECKING, CARD], [], {}, TODAY, 30, card_history=history).bills) == 1


def test_no_bill_for_a_card_never_paid_or_owing_nothing():
    new_card = AccountStart("n", "New card", "credit_card", "BRL", Decimal("-50.00"))
    paid_off = AccountStart("p", "Paid off", "credit_card", "BRL", Decimal("0.00"))
    history = [CardHistory("n", None, (), Decimal("50.00")), CardHistory("p", "a", PAID_ON_THE_10TH, Decimal("9"))]
    found = outlook([CHECKING, new_card, paid_off], [], {}, TODAY, 90, card_history=history)
    assert found.bills == () and found.cards_without_due_day == ("New card",)
    assert set(found.projection[found.projection["account_id"] == "a"]["balance"]) == {Decimal("1000.00")}


def test_a_bill_paid_from_an_account_not_in_the_app_only_pays_the_card():
    bills, unknown = card_bills([CARD], [CardHistory("c", None, PAID_ON_THE_10TH, Decimal(0))], TODAY, 90)
    assert [(b.day, b.payer_id, b.payer) for b in bills] == [(date(2026, 1, 10), None, None)]  # no later estimate
    assert unknown == []


# ---- The store -----------------------------------------------------------------------------------------------------

def add_accounts(engine: sa.Engine, *accounts: tuple[str, str, str]) -> None:
    with engine.begin() as conn:
        for account_id, kind, currency in accounts:
            conn.execute(sa.text("""
                INSERT INTO accounts (id, connection_id, provider, external_id, type, name, currency,
                                      current_balance, first_seen_at, last_seen_at)
                VALUES (:id, 'k', 'test', :id, :type, :id, :currency, -1, :now, :now)
            """), {"id": account_id, "type": kind, "currency": currency, "now": NOW})


def add_rows(engine: sa.Engine, *rows: tuple[str, date, str, str] | dict[str, Any]) -> None:
    """(account, day, amount, category) rows in BRL, or dicts overriding any column."""
    with engine.begin() as conn:
        for i, row in enumerate(rows):
            values = row if isinstance(row, dict) else dict(zip(("account", "day", "amount", "category"), row,
                                                                strict=True))
            conn.execute(sa.text("""
                INSERT INTO transactions (id, account_id, connection_id, provider, external_id, booked_date, amount,
                    currency, description, category, status, user_category, deleted_at, first_seen_at, last_seen_at)
                VALUES (:id, :account, 'k', 'test', :id, :day, :amount, :currency, 'x', :category, :status,
                        :user_category, :deleted_at, :now, :now)
            """), {"id": f"t{i}", "currency": "BRL", "status": "posted", "user_category": None, "deleted_at": None,
                   "now": NOW, **values})


def test_the_store_finds_the_payer_by_its_mirror_rows(engine: sa.Engine):
    """The payer mirrors one payment; the decoys, whose ids sort first and would win a tie, miss by one rule each."""
    pay = "transfer.credit_card_payment"
    add_accounts(engine, ("card", "credit_card", "BRL"), ("payer", "checking", "BRL"), ("near", "savings", "BRL"),
                 ("dollars", "checking", "USD"), ("new", "credit_card", "BRL"))
    add_rows(engine,
             ("card", date(2025, 10, 10), "500.00", pay), ("payer", date(2025, 10, 11), "-500.01", pay),
             ("near", date(2025, 10, 13), "-500.00", pay),  # a mirror too, but farther: the nearest one counts
             ("card", date(2025, 11, 10), "620.00", pay), ("near", date(2025, 11, 14), "-620.00", pay),  # 4 days
             ("card", date(2025, 12, 10), "700.00", pay), ("near", date(2025, 12, 10), "-700.02", pay),  # 2 cents
             ("card", date(2025, 9, 10), "300.00", pay),
             {"account": "dollars", "day": date(2025, 9, 10), "amount": "-300.00", "category": pay,
              "currency": "USD"},  # another currency
             ("card", date(2025, 8, 10), "310.00", "food"), ("near", date(2025, 8, 10), "-310.00", pay),
             {"account": "card", "day": date(2025, 7, 10), "amount": "99.00", "category": pay, "status": "pending"},
             {"account": "card", "day": date(2025, 6, 10), "amount": "98.00", "category": pay, "deleted_at": NOW},
             {"account": "card", "day": date(2025, 5, 10), "amount": "97.00", "category": "food",
              "user_category": pay},  # the user's category counts
             ("card", date(2025, 10, 3), "-300.00", "food"), ("card", date(2025, 11, 3), "-450.00", "food"),
             ("card", date(2025, 12, 3), "-390.00", "food"), ("card", date(2025, 12, 4), "90.00", "food"),  # refund
             ("card", date(2026, 1, 3), "-999.00", "food"),  # this month is not closed yet
             ("card", date(2025, 9, 3), "-999.00", "food"),  # before the last 3 closed months
             ("card", date(2025, 11, 20), "-5000.00", "transfer.own_accounts"))  # transfers are not spending
    with engine.connect() as conn:
        found = {h.card_id: h for h in forecast_store.card_histories(conn, TODAY)}
    assert set(found) == {"card", "new"}
    assert found["card"].payer_id == "payer"
    assert found["card"].payments == (date(2025, 5, 10), date(2025, 9, 10), date(2025, 10, 10), date(2025, 11, 10),
                                      date(2025, 12, 10))
    assert found["card"].monthly_spending == Decimal("350.00")  # (300 + 450 + 390 - 90) / 3
    assert found["new"] == CardHistory("new", None, (), Decimal(0))
