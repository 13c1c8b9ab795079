"""The Overview through AppTest: the one-click demo from the empty state, key figures against the period before,
top merchants, credit-card use, the category drill-down and its hand-off to Transactions, the pending toggle."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance import money
from finance.categories import CATEGORIES
from finance.formatting import format_money
from finance.store import reports
from tests.conftest import ok, store_engine

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def metrics(at: AppTest, label: str) -> list[str]:
    """The values of every metric with this label, in page order (BRL first, then USD)."""
    return [m.value for m in at.metric if m.label == label]


def frame_with(at: AppTest, column: str) -> list:
    return [d.value for d in at.dataframe if column in d.value.columns]


def engine_of(folder: Path) -> sa.Engine:
    return store_engine()


@pytest.fixture
def overview(demo_copy: Path, offline: Path) -> AppTest:
    """The Overview on a private copy of a store with Pluggy Bank (BRL) and First Platypus Bank (USD)."""
    return ok(AppTest.from_file(APP, default_timeout=60).run())


def test_one_click_demo_from_the_empty_state_to_a_dashboard_with_two_banks(offline: Path):
    at = ok(AppTest.from_file(APP, default_timeout=60).run())
    assert "No banks connected yet" in at.info[0].value
    demo = next(b for b in at.button if b.key == "overview_demo")
    assert demo.label == "Try the demo: connect two sandbox banks"

    demo.click()
    ok(at.run())

    assert "Pluggy Bank connected" in at.success[0].value
    assert "First Platypus Bank connected" in at.success[0].value
    assert metrics(at, "Net worth (BRL)") and metrics(at, "Net worth (USD)")
    assert any("Pluggy Bank" in m.value and "Connected" in m.value for m in at.markdown)
    assert any("First Platypus Bank" in m.value and "Connected" in m.value for m in at.markdown)
    assert not [b for b in at.button if b.key == "overview_demo"]  # the empty state is gone


def test_key_figures_per_currency_against_the_period_before(overview: AppTest, offline: Path):
    at = overview
    at.selectbox(key="period_preset").select("Last 30 days")
    ok(at.run())
    start, end = money.preset_period("Last 30 days", date.today())
    before_start, before_end = money.previous_period(start, end)
    engine = engine_of(offline)
    with engine.connect() as conn:  # the monthly query (another code path) over the same days
        now = reports.monthly_cashflow(conn, start, end).groupby("currency")[["income", "spending"]].sum()
        before = reports.monthly_cashflow(conn, before_start, before_end).groupby("currency")[
            ["income", "spending"]].sum()
        largest = dict(conn.execute(sa.text("""
            SELECT t.currency, -MIN(t.amount) FROM transactions t JOIN categories k ON k.id = t.category
            WHERE t.deleted_at IS NULL AND t.booked_date BETWEEN :s AND :e AND t.amount < 0
              AND (k.kind = 'expense' OR k.kind = 'other') GROUP BY 1"""), {"s": start, "e": end}).all())
    engine.dispose()

    for i, currency in enumerate(["BRL", "USD"]):
        income, spending = now.loc[currency, "income"], now.loc[currency, "spending"]
        assert metrics(at, "Income in period")[i] == format_money(income, currency)
        assert metrics(at, "Spending in period")[i] == format_money(spending, currency)
        assert metrics(at, "Income − spending")[i] == format_money(income - spending, currency)
        assert metrics(at, "Savings rate")[i] == f"{float((income - spending) / income):.0%}"
        assert metrics(at, "Largest expense")[i] == format_money(largest[currency], currency)
        change = spending - before.loc[currency, "spending"]
        delta = next(m.delta for m in at.metric if m.label == "Spending in period" and currency in m.help)
        assert delta == ("+" if change > 0 else "") + format_money(change, currency)
    assert all("Data as of" in m.help for m in at.metric)
    assert any(c.value.startswith("BRL: ") and "Compared with" in c.value for c in at.caption)


def test_no_comparison_when_the_data_does_not_cover_the_period_before(overview: AppTest):
    # Default: the last 12 months; the sandbox history is about 13 months, so the year before is not covered.
    assert all(not m.delta for m in overview.metric)
    assert any("No comparison with the period before" in c.value for c in overview.caption)


def test_top_merchants_and_credit_card_use(overview: AppTest, offline: Path):
    merchants = frame_with(overview, "Merchant")
    assert len(merchants) == 2  # one table per currency, never mixed
    for table, symbol in zip(merchants, ("R$", "$"), strict=True):
        assert 0 < len(table) <= 10
        assert all(v.startswith(symbol) for v in table["Spending"])
        shares = table["Share of spending"].tolist()
        assert shares == sorted(shares, reverse=True) and all(0 < s <= 1 for s in shares)

    engine = engine_of(offline)
    with engine.connect() as conn:
        cards = conn.execute(sa.text("SELECT currency, current_balance, credit_limit FROM accounts "
                                     "WHERE type = 'credit_card' ORDER BY currency")).all()
    engine.dispose()
    tables = frame_with(overview, "Use")
    assert [len(t) for t in tables] == [1, 1]
    for table, card in zip(tables, cards, strict=True):
        owed = max(Decimal(0), -card.current_balance)
        assert table["Owed"].iloc[0] == format_money(owed, card.currency)
        assert table["Limit"].iloc[0] == format_money(card.credit_limit, card.currency)
        assert table["Use"].iloc[0] == pytest.approx(float(owed / card.credit_limit))
    assert len(metrics(overview, "Credit card use")) == 2


def test_category_drill_down_lists_its_transactions_and_opens_transactions_filtered(overview: AppTest):
    at = overview
    assert "Food and drink" in at.selectbox(key="overview_category").options
    at.selectbox(key="overview_category").select("food")
    ok(at.run())

    counts = {}
    for line in (m.value for m in at.markdown if m.value.startswith("**Food and drink** in ")):
        currency = line.split(" in ")[1][:3]
        counts[currency] = int(line.split(": ")[1].split(" transactions")[0].replace(",", ""))
    assert set(counts) == {"BRL", "USD"}
    rows = at.dataframe[-1].value
    assert len(rows) == min(200, sum(counts.values()))
    food = {c.name for c in CATEGORIES.values() if c.id == "food" or c.parent_id == "food"}
    assert set(rows["Category"]) <= food

    next(b for b in at.button if b.key == "overview_open_transactions").click()
    ok(at.run())
    assert at.multiselect(key="txn_categories").value == ["food"]
    shown = {m.label: m.value for m in at.metric if m.label.startswith("Transactions (")}
    assert shown == {f"Transactions ({c})": f"{n:,}" for c, n in counts.items()}


def test_pending_toggle_excludes_pending_transactions_everywhere(overview: AppTest, offline: Path):
    at = overview
    at.toggle(key="period_pending").set_value(False)
    at.selectbox(key="overview_category").select("food")
    ok(at.run())
    start, end = money.preset_period("Last 12 months", date.today())
    engine = engine_of(offline)
    with engine.connect() as conn:
        posted = reports.monthly_cashflow(conn, start, end, include_pending=False).groupby("currency")[
            "spending"].sum()
        pending = conn.execute(sa.text("SELECT COUNT(*) FROM transactions WHERE status = 'pending'")).scalar_one()
    engine.dispose()
    assert metrics(at, "Spending in period") == [format_money(posted["BRL"], "BRL"), format_money(posted["USD"], "USD")]
    assert pending > 0  # the sandboxes do have pending rows to leave out
    assert "⏳ Pending" not in set(at.dataframe[-1].value["Status"])
    assert any("Pending transactions excluded" in c.value for c in at.caption)
