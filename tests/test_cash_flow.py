"""The cash-flow Sankey: the model balances on random flows (hypothesis) and on the sandbox banks, follows the rules
of every figure (per currency, transfers out, refunds net, pending only when asked, deleted rows never), lists the
transactions behind each flow, escapes bank text, and the Cash flow page through AppTest."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from finance import charts
from finance.cashflow import FROM_SAVINGS, MIDDLE, OTHER_SPENDING, SAVINGS, build_cash_flow
from finance.config import load_settings
from finance.store import cashflow, reports
from finance.store.db import create_engine
from tests.conftest import ok

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[1]
YEAR_START, YEAR_END = date.today() - timedelta(days=365), date.today()


def row(side: str, group: str, amount: str, payer: str | None = None, transactions: int = 1) -> dict:
    key = f"{side}:{group}:{payer or ''}"
    return {"flow_key": key, "side": side, "group_id": group, "group_name": group.title(), "payer": payer,
            "amount": Decimal(amount), "transactions": transactions}


flow_rows = st.lists(
    st.tuples(st.sampled_from(["in", "out"]), st.sampled_from(["salary", "food", "rent", "people", "travel"]),
              st.one_of(st.none(), st.sampled_from(["Ana", "Bob", "Food"])),
              st.decimals(min_value=-50_000, max_value=50_000, places=2, allow_nan=False),
              st.integers(min_value=1, max_value=40)),
    max_size=30, unique_by=lambda r: (r[0], r[1], r[2]))


def assert_balanced(flow, rows: list[dict]) -> None:
    assert flow.inflow == flow.outflow
    assert flow.income == sum((r["amount"] for r in rows if r["side"] == "in"), Decimal(0))
    assert flow.spending == -sum((r["amount"] for r in rows if r["side"] == "out"), Decimal(0))
    assert flow.inflow - sum((f.amount for f in flow.flows if f.kind == "spending"), Decimal(0)) \
        - sum((f.amount for f in flow.flows if f.target == SAVINGS), Decimal(0)) == 0
    assert all(f.amount > 0 for f in flow.flows)
    keys = [k for f in flow.flows for k in f.flow_keys]
    assert sorted(keys) == sorted(r["flow_key"] for r in rows if r["amount"] != 0)


@given(flow_rows)
def test_the_sankey_balances_on_any_flows(generated):
    rows = [row(side, group, str(amount), payer, n) for side, group, payer, amount, n in generated]
    flow = build_cash_flow(rows, "BRL")
    assert_balanced(flow, rows)
    savings = flow.income - flow.spending
    assert sum((f.amount for f in flow.flows if f.target == SAVINGS), Decimal(0)) == max(savings, Decimal(0))
    assert sum((f.amount for f in flow.flows if f.source == FROM_SAVINGS), Decimal(0)) == max(-savings, Decimal(0))
    figure = charts.sankey_figure(flow).data[0]
    assert len(figure.link.value) == len(flow.flows)
    assert len(figure.node.label) == len(flow.nodes())


def test_refunds_small_flows_and_spending_beyond_income():
    rows = [row("in", "salary", "3000.00"), row("in", "people", "50.00", payer="Ana"),
            row("out", "housing", "-4000.00"), row("out", "food", "120.00"),  # food refunds beat its purchases
            row("out", "travel", "-30.00"), row("out", "health", "-20.00"), row("out", "pets", "-0.00")]
    flow = build_cash_flow(rows, "BRL")
    assert {(f.source, f.target): f.amount for f in flow.flows} == {
        (FROM_SAVINGS, MIDDLE): Decimal("880.00"), ("Salary", MIDDLE): Decimal("3000.00"),
        ("Refunds: Food", MIDDLE): Decimal("120.00"), ("Ana", MIDDLE): Decimal("50.00"),
        (MIDDLE, "Housing"): Decimal("4000.00"), (MIDDLE, OTHER_SPENDING): Decimal("50.00")}
    assert flow.spending == Decimal("3930.00") and flow.savings == Decimal("-880.00")
    other = next(f for f in flow.flows if f.target == OTHER_SPENDING)
    assert set(other.flow_keys) == {"out:travel:", "out:health:"}


def test_savings_take_what_income_leaves():
    flow = build_cash_flow([row("in", "salary", "1000.00"), row("out", "rent", "-600.00")], "USD")
    assert flow.flows[-1].target == SAVINGS and flow.flows[-1].amount == Decimal("400.00")
    assert flow.inflow == flow.outflow == Decimal("1000.00")


def test_bank_text_in_node_labels_is_escaped():
    payer = '<a href="https://evil.example">Pay</a><img src=x onerror=alert(1)>'
    flow = build_cash_flow([row("in", "people", "10.00", payer=payer)], "BRL")
    labels = charts.sankey_figure(flow).data[0].node.label
    assert not any("<" in label for label in labels)
    assert '&lt;a href="https://evil.example"&gt;Pay&lt;/a&gt;' in labels[0]  # plotly draws no tag from quotes


# ---- On the sandbox banks ------------------------------------------------------------------------------------------

@pytest.fixture
def store(demo_copy: Path, offline: Path) -> sa.Engine:
    """A private copy of the demo store (Pluggy Bank in BRL, First Platypus Bank in USD)."""
    engine = create_engine(load_settings().database_url)
    yield engine
    engine.dispose()


def sandbox_flow(conn: sa.Connection, currency: str, *, include_pending: bool = True):
    rows = cashflow.cash_flow(conn, YEAR_START, YEAR_END, currency, include_pending=include_pending)
    return rows, build_cash_flow(rows.to_dict("records"), currency)


@pytest.mark.parametrize("currency", ["BRL", "USD"])
def test_the_sandbox_sankey_balances_and_agrees_with_the_other_figures(store: sa.Engine, currency: str):
    with store.connect() as conn:
        rows, flow = sandbox_flow(conn, currency)
        figures = reports.period_figures(conn, YEAR_START, YEAR_END, YEAR_START)
        listed = [cashflow.flow_transactions(conn, YEAR_START, YEAR_END, currency, f.flow_keys, limit=100_000)
                  for f in flow.flows if f.flow_keys]
    assert_balanced(flow, rows.to_dict("records"))
    current = figures[(figures["currency"] == currency) & (figures["period"] == "current")].iloc[0]
    assert (flow.income, flow.spending) == (current["income"], current["spending"])
    assert flow.income > 0 and flow.spending > 0
    assert not rows["group_id"].str.startswith("transfer").any()
    links = [f for f in flow.flows if f.flow_keys]
    for link, (found, total) in zip(links, listed, strict=True):
        assert len(found) == total == link.transactions
        assert set(found["currency"]) == {currency}
        assert abs(found["amount"].sum()) == link.amount


def test_deleted_rows_never_count_and_pending_only_when_asked(store: sa.Engine):
    with store.begin() as conn:
        _, before = sandbox_flow(conn, "BRL")
        _, posted_only = sandbox_flow(conn, "BRL", include_pending=False)
        biggest = conn.execute(sa.text("""
            SELECT id, amount FROM transactions WHERE currency = 'BRL' AND status = 'posted'
              AND category = 'housing.rent' ORDER BY booked_date DESC LIMIT 1""")).one()
        conn.execute(sa.text("UPDATE transactions SET deleted_at = :now WHERE id = :id"),
                     {"now": datetime.now(UTC), "id": biggest.id})
        _, after = sandbox_flow(conn, "BRL")
        pending = conn.execute(sa.text("""SELECT COUNT(*) FROM transactions
                                          WHERE currency = 'BRL' AND status = 'pending'""")).scalar()
    assert after.spending == before.spending + biggest.amount
    assert after.inflow == after.outflow
    if pending:
        assert posted_only.flows != before.flows


# ---- The page ------------------------------------------------------------------------------------------------------

@pytest.fixture
def page(store: sa.Engine) -> AppTest:
    return ok(AppTest.from_file(str(REPO / "pages" / "cash_flow.py"), default_timeout=60).run())


def test_the_page_shows_a_balanced_sankey_per_currency_and_the_transactions_of_a_flow(page: AppTest):
    at = page
    assert at.radio(key="cash_flow_currency").options == ["BRL", "USD"]
    assert [m.label for m in at.metric][:2] == ["Income (BRL)", "Spending (BRL)"]
    assert [m.label for m in at.metric][2] in ("Savings", "From savings")
    flows = at.selectbox(key="cash_flow_link")
    assert "Salary → Money in" in flows.options
    rent = next(o for o in flows.options if o.startswith(f"{MIDDLE} → Housing"))
    flows.select(rent)
    ok(at.run())
    shown = next(d.value for d in at.dataframe if "Merchant" in d.value.columns)
    assert len(shown) > 0 and set(shown["Category"]) <= {"Rent", "Utilities", "Home and garden", "Housing"}
    assert any(t.value.startswith(rent) for t in at.text)

    at.radio(key="cash_flow_currency").set_value("USD")
    ok(at.run())
    assert next(m.label for m in at.metric) == "Income (USD)"


def test_the_page_on_an_empty_store_points_to_connections(offline: Path):
    """Under the app's navigation, so its link to the Connections page resolves."""
    at = ok(AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run())
    at.switch_page("pages/cash_flow.py")
    ok(at.run())
    assert "No transactions yet" in at.info[0].value
    assert [p.proto.label for p in at.get("page_link")] == ["Connect a bank"]
