"""The Budgets page through AppTest on the two sandbox banks: set a budget and see it against actual (the same
figure the Overview's rules give), over-budget highlighting, the pending toggle, copy last month's budgets, the
hand-off to Transactions, removing a budget, and hostile input refused with a reason and nothing changed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.budgets import add_months, first_of_month, last_of_month
from finance.formatting import format_money
from finance.services import Budgets
from finance.store import reports
from tests.conftest import ok, store_engine

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/budgets.py"
MONTH = first_of_month(date.today())


@pytest.fixture
def page(demo_copy: Path, offline: Path) -> AppTest:
    """The Budgets page on a private copy of a store with Pluggy Bank (BRL) and First Platypus Bank (USD)."""
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page(PAGE)
    return ok(at.run())


def engine_of(folder: Path) -> sa.Engine:
    return store_engine()


def set_budget(at: AppTest, category: str, currency: str, amount: str, *, rollover: bool = False) -> AppTest:
    at.selectbox(key="budgets_category").select(category)
    at.text_input(key="budgets_currency").input(currency)
    at.text_input(key="budgets_amount").input(amount)
    at.checkbox(key="budgets_rollover").check() if rollover else at.checkbox(key="budgets_rollover").uncheck()
    next(b for b in at.button if b.label == "Save budget").click()
    return ok(at.run())


def month_table(at: AppTest, currency: str) -> pd.DataFrame:
    """The month's table of one currency (the year's has no "Per day left"), told apart by how its money reads."""
    symbol = format_money(0, currency).rstrip("0,. ")
    return next(d.value for d in at.dataframe if "Per day left" in d.value.columns
                and d.value["Budget"].str.replace("-", "").str.startswith(symbol).all())


def rows_of(table: pd.DataFrame) -> list[dict]:
    return table.to_dict("records")


def budget_count(folder: Path) -> int:
    engine = engine_of(folder)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM budgets")).scalar_one()
    engine.dispose()
    return count


def test_a_budget_set_on_the_page_shows_against_what_the_overview_counts_as_spending(page: AppTest, offline: Path):
    at = page
    assert any("No budgets for" in i.value for i in at.info)
    at = set_budget(at, "food", "BRL", "1.500,00")  # refused: a thousands separator
    assert any("one decimal sign" in e.value for e in at.error)
    at = set_budget(at, "food", "brl", "1500,00")
    assert any("Budget set" in s.value for s in at.success)

    engine = engine_of(offline)
    with engine.connect() as conn:
        spent = reports.spending_by_category(conn, MONTH, last_of_month(MONTH))
    engine.dispose()
    food = spent[(spent["category_id"] == "food") & (spent["currency"] == "BRL")]["spending"].sum()
    [row] = rows_of(month_table(at, "BRL"))
    assert row["Category"] == "Food and drink" and row["Budget"] == format_money(1500, "BRL")
    assert row["Spent"] == format_money(food, "BRL")
    assert row["Left"] == format_money(1500 - food, "BRL")
    assert row["Per day left"] != "—"


def test_over_budget_is_highlighted_and_the_pending_toggle_changes_the_actuals(page: AppTest, offline: Path):
    at = set_budget(page, "food", "USD", "0.01")
    assert any("Over budget in USD: Food and drink" in e.value for e in at.error)
    assert rows_of(month_table(at, "USD"))[0]["Status"] == "🔴 Over budget"
    at.toggle(key="budgets_pending").set_value(False)
    ok(at.run())
    engine = engine_of(offline)
    lines = Budgets(engine).month_view(MONTH, include_pending=False)
    engine.dispose()
    [row] = rows_of(month_table(at, "USD"))
    assert row["Spent"] == format_money(lines[0].actual, "USD")
    assert any("Pending transactions excluded" in c.value for c in at.caption)


def test_copy_last_month_then_remove_a_budget(page: AppTest, offline: Path):
    previous = add_months(MONTH, -1)
    at = page
    at.selectbox(key="budgets_month").select(previous)
    ok(at.run())
    at = set_budget(at, "housing", "BRL", "2000", rollover=True)
    at = set_budget(at, "transport", "USD", "100")
    at.selectbox(key="budgets_month").select(MONTH)
    ok(at.run())
    at.button(key="budgets_copy").click()
    ok(at.run())
    assert any("Copied 2 budget(s)" in s.value for s in at.success)
    assert {r["Category"] for r in rows_of(month_table(at, "BRL"))} == {"Housing"}
    assert rows_of(month_table(at, "BRL"))[0]["Carried in"] != ""  # a rollover budget shows what came in

    at.selectbox(key="budgets_remove").select_index(0)
    ok(at.run())
    at.button(key="budgets_delete").click()
    ok(at.run())
    assert any("Budget removed" in s.value for s in at.success)
    assert budget_count(offline) == 3


def test_each_line_opens_its_transactions_on_the_transactions_page(page: AppTest, offline: Path):
    at = set_budget(page, "food", "BRL", "100")
    at.selectbox(key="budgets_drill").select(("food", "BRL"))
    ok(at.run())
    at.button(key="budgets_open_month").click()
    ok(at.run())
    assert at.multiselect(key="txn_categories").value == ["food"]
    accounts = at.multiselect(key="txn_accounts").value
    assert accounts and all(a.startswith("pluggy:") for a in accounts)  # the BRL accounts only
    assert at.date_input(key="txn_period").value == (MONTH, last_of_month(MONTH))


@pytest.mark.parametrize(("currency", "amount", "why"), [
    ("BRL", "-50", "above zero"),
    ("BRL", "12.345", "two decimals"),
    ("BRL", "<script>alert(1)</script>", "amount like"),
    ("BRL", "=HYPERLINK(\"x\")", "amount like"),
    ("BRL", "9" * 40, "too large"),
    ("BRL", "", "amount like"),
    ("Z;-", "10", "ISO code"),
    ("XXY", "10", "ISO code"),
])
def test_hostile_input_is_refused_with_a_reason_and_changes_nothing(page: AppTest, offline: Path, currency, amount,
                                                                    why):
    at = set_budget(page, "food", currency, amount)
    assert any(why in e.value and "Nothing was changed" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.success
    assert budget_count(offline) == 0


def test_the_page_works_before_any_bank_is_connected(offline: Path):
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page(PAGE)
    ok(at.run())
    assert any("No budgets for" in i.value for i in at.info)
    at = set_budget(at, "health", "EUR", "80")
    assert any(s.value.startswith("Budget set") and "for Health in" in s.value for s in at.success)
    assert rows_of(month_table(at, "EUR"))[0]["Spent"] == format_money(0, "EUR")
