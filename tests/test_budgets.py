"""Budgets: the pure arithmetic (rollover chains as property tests, the allowance per day), validation of hostile
input, the store's actuals (refunds net, transfers excluded, pending on request, deleted never, per currency, a
parent covering its children) and the services' views with their audit rows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from finance import budgets
from finance.budgets import Budget, BudgetError
from finance.services import Budgets
from finance.store import budgets as budget_store

pytestmark = pytest.mark.engines

TODAY = date(2026, 12, 7)
DEC, NOV, OCT = date(2026, 12, 1), date(2026, 11, 1), date(2026, 10, 1)
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
spent = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("200000"), places=2)

# --------------------------------------------------------------------------------------------------------------------
# Pure arithmetic
# --------------------------------------------------------------------------------------------------------------------


@given(st.lists(st.tuples(money, spent), min_size=1, max_size=24))
def test_rollover_over_any_months_leaves_the_cumulative_budget_minus_cumulative_spending(months):
    chain = budgets.rollover_left([(b, a, True) for b, a in months])
    for i, (_carried, left) in enumerate(chain):
        assert left == sum(b for b, _ in months[: i + 1]) - sum(a for _, a in months[: i + 1])


@given(st.lists(st.tuples(money, spent, st.booleans()), min_size=1, max_size=24))
def test_a_month_without_rollover_starts_the_next_one_afresh(months):
    chain = budgets.rollover_left(months)
    for i in range(1, len(months)):
        previous_rollover = months[i - 1][2]
        assert chain[i][0] == (chain[i - 1][1] if previous_rollover else 0)
        assert chain[i][1] == months[i][0] + chain[i][0] - months[i][1]


@given(st.lists(st.tuples(money, spent), min_size=1, max_size=14), st.integers(min_value=0, max_value=11))
def test_budget_lines_follow_the_chain_from_stored_budgets(months, start_index):
    start = budgets.add_months(date(2025, 1, 1), start_index)
    stored = [Budget(budgets.add_months(start, i), "food", "BRL", b, rollover=True) for i, (b, _) in enumerate(months)]
    actuals = {("food", "BRL", budgets.add_months(start, i)): a for i, (_, a) in enumerate(months)}
    last = budgets.add_months(start, len(months) - 1)
    [line] = budgets.budget_lines(stored, actuals, last, TODAY, {"food": "Food and drink"})
    assert line.left == sum(b for b, _ in months) - sum(a for _, a in months)
    assert line.over == (line.left < 0)
    assert line.available == line.budget + line.carried
    assert budgets.needed_from(stored, last) == min(start, date(last.year, 1, 1))


def test_a_gap_month_ends_the_rollover_chain():
    stored = [Budget(OCT, "food", "BRL", Decimal("100"), True), Budget(DEC, "food", "BRL", Decimal("100"), True)]
    [line] = budgets.budget_lines(stored, {("food", "BRL", OCT): Decimal("10")}, DEC, TODAY, {})
    assert (line.carried, line.left, line.over) == (0, Decimal("100"), False)


def test_overspending_with_rollover_is_carried_as_a_debt():
    stored = [Budget(NOV, "food", "BRL", Decimal("100"), True), Budget(DEC, "food", "BRL", Decimal("100"), False)]
    actuals = {("food", "BRL", NOV): Decimal("150"), ("food", "BRL", DEC): Decimal("40")}
    [line] = budgets.budget_lines(stored, actuals, DEC, TODAY, {"food": "Food and drink"})
    assert (line.carried, line.actual, line.left, line.over) == (Decimal("-50"), Decimal("40"), Decimal("10"), False)
    assert line.category_name == "Food and drink"


@pytest.mark.parametrize(("left", "month", "today", "allowance"), [
    (Decimal("250.00"), DEC, date(2026, 12, 7), Decimal("10.00")),  # 25 days left, today included
    (Decimal("100.00"), DEC, date(2026, 12, 31), Decimal("100.00")),
    (Decimal("10.00"), DEC, date(2026, 12, 29), Decimal("3.33")),  # rounded down: never allows more than is left
    (Decimal("-5.00"), DEC, date(2026, 12, 7), Decimal("0.00")),
    (Decimal("310.00"), date(2027, 1, 1), date(2026, 12, 7), Decimal("10.00")),  # a future month: all its days
    (Decimal("100.00"), NOV, date(2026, 12, 7), None),  # a month already over
])
def test_allowance_per_day_for_the_rest_of_the_month(left, month, today, allowance):
    assert budgets.per_day_allowance(left, month, today) == allowance


def test_year_view_sums_the_months_with_a_budget():
    stored = [Budget(date(2025, 12, 1), "food", "BRL", Decimal("999")), Budget(NOV, "food", "BRL", Decimal("100")),
              Budget(DEC, "food", "BRL", Decimal("100")), Budget(DEC, "food", "USD", Decimal("20"))]
    actuals = {("food", "BRL", NOV): Decimal("90"), ("food", "BRL", DEC): Decimal("130"),
               ("food", "BRL", OCT): Decimal("500"), ("food", "USD", DEC): Decimal("5")}
    lines = {(x.category, x.currency): x for x in budgets.year_lines(stored, actuals, DEC, {})}
    assert (lines["food", "BRL"].budget, lines["food", "BRL"].actual, lines["food", "BRL"].left) == (
        Decimal("200"), Decimal("220"), Decimal("-20"))
    assert lines["food", "BRL"].over and not lines["food", "USD"].over


# --------------------------------------------------------------------------------------------------------------------
# Validation: refused input says why
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("month", "category", "currency", "amount", "why"), [
    (DEC, "food", "BRL", "0", "above zero"),
    (DEC, "food", "BRL", "-10", "above zero"),
    (DEC, "food", "BRL", "10.005", "two decimals"),
    (DEC, "food", "BRL", "1.000,50", "one decimal sign"),
    (DEC, "food", "BRL", "NaN", "above zero"),
    (DEC, "food", "BRL", "Infinity", "above zero"),
    (DEC, "food", "BRL", "1e20", "too large"),
    (DEC, "food", "BRL", "=1+1", "amount like"),
    (DEC, "food", "BRL", "", "amount like"),
    (DEC, "food", "BRL", None, "amount like"),
    (DEC, "food", "BRL", float("nan"), "amount like"),
    (DEC, "no.such", "BRL", "10", "Unknown category"),
    (DEC, "'; DROP TABLE budgets; --", "BRL", "10", "Unknown category"),
    (DEC, "income.salary", "BRL", "10", "not spending"),
    (DEC, "transfer.own_accounts", "BRL", "10", "not spending"),
    (DEC, "food", "XYZ", "10", "ISO code"),
    (DEC, "food", "<b>R$</b>", "10", "ISO code"),
    (DEC, "food", "", "10", "ISO code"),
    (date(1900, 1, 1), "food", "BRL", "10", "between"),
    (date(9999, 12, 1), "food", "BRL", "10", "between"),
    (None, "food", "BRL", "10", "month"),
    (datetime(2026, 12, 1), "food", "BRL", "10", "month"),
])
def test_hostile_budget_input_is_refused_with_a_reason(month, category, currency, amount, why):
    with pytest.raises(BudgetError, match=why) as refused:
        budgets.clean_budget(month, category, currency, amount, today=TODAY)
    assert "Nothing was changed." in str(refused.value)


def test_clean_budget_reads_what_people_type():
    budget = budgets.clean_budget(date(2026, 12, 17), "food", " brl ", "1500,5", rollover=True, today=TODAY)
    assert budget == Budget(DEC, "food", "BRL", Decimal("1500.50"), True)


# --------------------------------------------------------------------------------------------------------------------
# The store and the services
# --------------------------------------------------------------------------------------------------------------------


def add_transactions(engine: sa.Engine, *rows: dict[str, Any]) -> None:
    """Minimal transactions: (day, amount, category) plus what a row needs to be stored."""
    with engine.begin() as conn:
        for i, row in enumerate(rows):
            conn.execute(sa.text("""
                INSERT INTO transactions (id, account_id, connection_id, provider, external_id, booked_date, amount,
                    currency, description, category, status, user_category, deleted_at, first_seen_at, last_seen_at)
                VALUES (:id, 'a', 'c', 'test', :id, :day, :amount, :currency, 'x', :category, :status,
                        :user_category, :deleted_at, :now, :now)
            """), {"id": f"t{i}", "currency": "BRL", "status": "posted", "user_category": None, "deleted_at": None,
                   "now": NOW, **row})


@pytest.fixture
def svc_budgets(engine: sa.Engine) -> Budgets:
    return Budgets(engine, today=lambda: TODAY)


def audit_rows(engine: sa.Engine) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, detail FROM audit_log ORDER BY occurred_at, action")).all()
    return [(r.action, json.loads(r.detail)) for r in rows]


def test_actuals_follow_the_rules_of_every_figure(engine: sa.Engine, svc_budgets: Budgets):
    add_transactions(
        engine,
        {"day": date(2026, 12, 2), "amount": Decimal("-100.00"), "category": "food.groceries"},  # a child of food
        {"day": date(2026, 12, 3), "amount": Decimal("-50.00"), "category": "food"},
        {"day": date(2026, 12, 4), "amount": Decimal("20.00"), "category": "food.groceries"},  # a refund nets off
        {"day": date(2026, 12, 5), "amount": Decimal("-30.00"), "category": "food", "status": "pending"},
        {"day": date(2026, 12, 5), "amount": Decimal("-999.00"), "category": "food", "deleted_at": NOW},
        {"day": date(2026, 12, 5), "amount": Decimal("-7.00"), "category": "food", "currency": "USD"},
        {"day": date(2026, 12, 6), "amount": Decimal("-500.00"), "category": "transfer.credit_card_payment"},
        {"day": date(2026, 12, 6), "amount": Decimal("-40.00"), "category": "shopping",
         "user_category": "food.restaurants"},  # the user's category wins
        {"day": date(2026, 11, 30), "amount": Decimal("-1000.00"), "category": "food"},  # another month
    )
    svc_budgets.set(DEC, "food", "BRL", "200", actor="tester")
    svc_budgets.set(DEC, "food.groceries", "BRL", "50", actor="tester")
    svc_budgets.set(DEC, "transport", "BRL", "100", actor="tester")
    svc_budgets.set(DEC, "food", "USD", "5", actor="tester")

    posted = {(x.category, x.currency): x for x in svc_budgets.month_view(DEC, include_pending=False)}
    assert posted["food", "BRL"].actual == Decimal("170.00")  # 100 + 50 − 20 + 40
    assert posted["food.groceries", "BRL"].actual == Decimal("80.00")
    assert posted["food.groceries", "BRL"].over and posted["food.groceries", "BRL"].left == Decimal("-30.00")
    assert posted["transport", "BRL"].actual == 0 and posted["transport", "BRL"].per_day == Decimal("4.00")
    assert posted["food", "USD"].actual == Decimal("7.00") and posted["food", "USD"].over
    assert posted["food", "BRL"].category_name == "Food and drink"

    with_pending = {(x.category, x.currency): x for x in svc_budgets.month_view(DEC, include_pending=True)}
    assert with_pending["food", "BRL"].actual == Decimal("200.00")
    assert with_pending["food", "BRL"].left == 0 and not with_pending["food", "BRL"].over


def test_rollover_and_year_view_through_the_store(engine: sa.Engine, svc_budgets: Budgets):
    add_transactions(engine, {"day": date(2026, 11, 10), "amount": Decimal("-80.00"), "category": "health"},
                     {"day": date(2026, 12, 10), "amount": Decimal("-150.00"), "category": "health"})
    svc_budgets.set(NOV, "health", "BRL", "100", rollover=True, actor="tester")
    svc_budgets.set(DEC, "health", "BRL", "100", actor="tester")
    [line] = svc_budgets.month_view(DEC, include_pending=True)
    assert (line.budget, line.carried, line.actual, line.left, line.over) == (
        Decimal("100.00"), Decimal("20.00"), Decimal("150.00"), Decimal("-30.00"), True)
    [year] = svc_budgets.year_view(DEC, include_pending=True)
    assert (year.budget, year.actual, year.left) == (Decimal("200.00"), Decimal("230.00"), Decimal("-30.00"))


def test_set_replaces_copy_keeps_and_delete_removes_each_audited(engine: sa.Engine, svc_budgets: Budgets):
    assert svc_budgets.set(NOV, "food", "BRL", "100", actor="ana").startswith("Budget set")
    assert svc_budgets.set(NOV, "food", "BRL", "120.50", rollover=True, actor="ana").startswith("Budget changed")
    assert "Nothing was changed" in svc_budgets.set(NOV, "food", "BRL", "120.5", rollover=True, actor="ana")
    svc_budgets.set(NOV, "health", "USD", "30", actor="ana")
    svc_budgets.set(DEC, "health", "USD", "45", actor="ana")

    assert svc_budgets.copy_last_month(DEC, actor="ana") == \
        "Copied 1 budget(s) from 2026-11 to 2026-12; 1 already set there were kept."
    december = {(b.category, b.currency): b for b in svc_budgets.of_month(DEC)}
    assert december["food", "BRL"].amount == Decimal("120.50") and december["food", "BRL"].rollover
    assert december["health", "USD"].amount == Decimal("45.00")
    assert "already set" in svc_budgets.copy_last_month(DEC, actor="ana")

    assert svc_budgets.delete(december["health", "USD"].id, actor="ana").startswith("Budget removed")
    with pytest.raises(BudgetError, match="no longer exists"):
        svc_budgets.delete(december["health", "USD"].id, actor="ana")
    actions = [action for action, _ in audit_rows(engine)]
    assert actions.count("add_budget") == 3 and actions.count("edit_budget") == 1
    assert actions.count("copy_budget") == 1 and actions.count("delete_budget") == 1
    edit = next(detail for action, detail in audit_rows(engine) if action == "edit_budget")
    assert edit["from"]["amount"] == "100.00" and edit["to"]["amount"] == "120.50"


def test_refused_input_changes_nothing(engine: sa.Engine, svc_budgets: Budgets):
    svc_budgets.set(DEC, "food", "BRL", "100", actor="ana")
    before = audit_rows(engine)
    for month, category, currency, amount in [(DEC, "food", "BRL", "-1"), (DEC, "nope", "BRL", "1"),
                                              (DEC, "food", "ZZZ", "1"), (date(1800, 1, 1), "food", "BRL", "1")]:
        with pytest.raises(BudgetError):
            svc_budgets.set(month, category, currency, amount, actor="ana")
    with pytest.raises(BudgetError, match="no budgets in 2026-11"):
        svc_budgets.copy_last_month(DEC, actor="ana")
    assert audit_rows(engine) == before
    [kept] = svc_budgets.of_month(DEC)
    assert kept.amount == Decimal("100.00")
    with engine.connect() as conn:
        assert budget_store.budgets_until(conn, date(2030, 1, 1)) == [kept]
