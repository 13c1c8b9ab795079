"""Recurring payments on the two sandbox banks: the store's candidate rows, the sandbox's Netflix/Spotify found as
subscriptions and its card installments as plans with an end, the user's choices kept by series key across a
re-sync and audited, and the Recurring page through AppTest (price changes, confirm, dismiss, edit, transactions on
demand, hostile input refused with nothing changed)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.recurring import RecurringError, Series
from finance.services import open_services
from finance.store import recurring as recurring_store
from tests.conftest import ok, store_engine

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/recurring.py"
TODAY = date.today()


@pytest.fixture
def store(demo_copy: Path, offline: Path) -> Path:
    """A private copy of a store with Pluggy Bank (BRL) and First Platypus Bank (USD)."""
    return offline


@pytest.fixture
def page(store: Path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page(PAGE)
    return ok(at.run())


def engine_of(folder: Path) -> sa.Engine:
    return store_engine()


def named(found: list[Series], merchant: str, currency: str = "BRL") -> list[Series]:
    return [s for s in found if s.merchant == merchant and s.currency == currency]


def choice_rows(folder: Path) -> tuple[int, int]:
    """How many choices and recurring audit rows the store holds."""
    engine = engine_of(folder)
    try:
        with engine.connect() as conn:
            return (conn.execute(sa.text("SELECT COUNT(*) FROM recurring_choices")).scalar_one(),
                    conn.execute(sa.text("SELECT COUNT(*) FROM audit_log WHERE action = 'recurring_choice'"))
                    .scalar_one())
    finally:
        engine.dispose()


def test_the_sandbox_subscriptions_and_installments_are_found_and_labelled(store: Path):
    svc = open_services()
    try:
        found = svc.recurring.series(TODAY)
        with svc.engine.connect() as conn:
            parceled_in = {(row.account_id, row.merchant) for row in conn.execute(sa.text(
                # purchases in installments (a financed bill's installments have no merchant: no purchase plan)
                "SELECT DISTINCT account_id, merchant FROM transactions WHERE installment_total > 1 "
                "AND merchant IS NOT NULL"))}
    finally:
        svc.engine.dispose()
    parceled = {merchant for _, merchant in parceled_in}
    for merchant, currency, amount in (("Netflix", "BRL", "-44.90"), ("Spotify", "BRL", "-21.90"),
                                       ("Netflix", "USD", "-15.49"), ("Spotify", "USD", "-11.99")):
        [series] = named(found, merchant, currency)
        assert (series.kind, series.cadence, series.amount) == ("subscription", "monthly", Decimal(amount))
        assert series.occurrences >= 12 and not series.missed
    plans = [s for s in found if s.kind == "installment"]
    assert parceled and {s.merchant for s in plans} == parceled  # every card installment is in a plan
    assert all(s.cadence == "monthly" and s.remaining is not None for s in plans)
    assert all((s.next_date is None) == (s.remaining == 0) for s in plans)
    # A card's installment plans are never its subscriptions (the same shop elsewhere may well be one).
    assert not [s for s in found if s.kind == "subscription" and (s.account_id, s.merchant) in parceled_in]
    assert {s.kind for s in named(found, "IMOBILIARIA LAR PAULISTA LTDA")} == {"recurring"}  # rent: a bill
    # Irregular purchases of one fare, rides and groceries are no series.
    assert not [s for s in found if s.merchant in {"Metrô SP", "MTA", "Uber", "iFood", "Starbucks"}]
    assert not [s for s in found if s.kind != "installment" and "PARC" in s.merchant]


def test_candidate_rows_leave_out_transfers_deleted_rows_and_small_groups(store: Path):
    engine = engine_of(store)
    try:
        with engine.begin() as conn:
            rows = recurring_store.candidate_rows(conn)
            netflix = conn.execute(sa.text("SELECT id FROM transactions WHERE merchant = 'Netflix' "
                                           "AND currency = 'BRL' ORDER BY booked_date DESC LIMIT 1")).scalar_one()
            conn.execute(sa.text("UPDATE transactions SET deleted_at = now() WHERE id = :id"), {"id": netflix})
            after = recurring_store.candidate_rows(conn)
    finally:
        engine.dispose()
    assert not rows["merchant"].str.contains("PAGAMENTO FATURA|TRANSF ENTRE CONTAS", regex=True).any()
    assert netflix in set(rows["id"]) and netflix not in set(after["id"])
    assert rows.groupby(["account_id", "merchant", "currency"]).size().min() >= 1
    assert "MERCADOLIVRE*MLIVRE PARC 01/10" not in set(rows["merchant"])  # merchant names win over descriptions


def test_a_choice_survives_a_resync_and_is_audited(store: Path):
    svc = open_services()
    try:
        [netflix] = named(svc.recurring.series(TODAY), "Netflix")
        assert svc.recurring.choose(netflix, "dismissed", actor="tester") == "Netflix: dismissed; it stays hidden."
        [spotify] = named(svc.recurring.series(TODAY), "Spotify")
        svc.recurring.choose(spotify, "confirmed", name="Spotify family", amount="34.90", cadence="monthly",
                             actor="tester")
        for connection_id in svc.connections.status()["id"]:
            assert svc.connections.sync(connection_id, trigger="manual").outcome == "success"
        found = svc.recurring.series(TODAY)
        assert not named(found, "Netflix")
        assert [s.status for s in named(svc.recurring.series(TODAY, include_dismissed=True), "Netflix")] == \
            ["dismissed"]
        [edited] = named(found, "Spotify family")
        assert (edited.status, edited.next_amount, edited.key) == ("confirmed", Decimal("-34.90"), spotify.key)
        assert svc.recurring.choose(edited, "confirmed", name="Spotify family", amount="34.90",
                                    cadence="monthly", actor="tester") == "Nothing to change."
    finally:
        svc.engine.dispose()
    assert choice_rows(store) == (2, 2)


def test_the_page_lists_each_currency_with_subscriptions_and_installments(page: AppTest):
    assert [h.value for h in page.subheader] == ["BRL", "USD"]
    tables = [d.value for d in page.dataframe]
    brl = tables[0]
    netflix = brl[brl["Name"] == "Netflix"].iloc[0]
    assert (netflix["Kind"], netflix["Cadence"], netflix["Amount"]) == ("Subscription", "monthly", "R$ 44,90")
    plans = next(t for t in tables if "Still to pay" in t.columns)
    assert plans["Still to pay"].str.match(r"R\$ [\d.]+,\d\d over the next \d+ months?$").all()
    assert any(m.label == "Installments still to pay (BRL)" for m in page.metric)
    assert any(m.label == "Subscriptions (USD)" for m in page.metric)


def said(elements) -> list[str]:
    """What messages say, without the backslashes that keep bank text literal in Markdown."""
    return [e.value.replace("\\", "").replace("\u2060", "") for e in elements]


def open_series(at: AppTest, merchant: str) -> AppTest:
    box = at.selectbox(key="recurring_series")
    key = next(option for option in box.options if option.startswith(f"{merchant} ·"))
    box.select(key)
    return ok(at.run())


def test_confirm_dismiss_and_restore_from_the_page(page: AppTest, store: Path):
    at = open_series(page, "Spotify")
    at.button(key="recurring_confirm").click()
    ok(at.run())
    assert "Spotify: confirmed." in said(at.success)
    at = open_series(at, "Spotify")
    assert any("Confirmed" in t.value for t in at.text)
    at.button(key="recurring_dismiss").click()
    ok(at.run())
    assert "Spotify: dismissed; it stays hidden." in said(at.success)
    assert "Spotify" not in set(at.dataframe[0].value["Name"])
    at.toggle(key="recurring_show_dismissed").set_value(True)
    at = open_series(ok(at.run()), "Spotify")
    at.button(key="recurring_restore").click()
    ok(at.run())
    assert "Spotify" in set(at.dataframe[0].value["Name"])
    assert choice_rows(store) == (1, 3)


def test_edit_a_series_and_see_its_transactions(page: AppTest):
    at = open_series(page, "Netflix")
    at.text_input(key="recurring_edit_name").input("Netflix <b>premium</b>")
    at.text_input(key="recurring_edit_amount").input("55.90")
    next(b for b in at.button if b.label == "Save changes").click()
    ok(at.run())
    brl = at.dataframe[0].value
    row = brl[brl["Name"] == "Netflix <b>premium</b>"].iloc[0]
    assert row["Next amount"] == "R$ 55,90"
    at = open_series(at, "Netflix <b>premium</b>")
    at.toggle(key="recurring_show_transactions").set_value(True)
    ok(at.run())
    shown = at.dataframe[-1].value
    assert len(shown) >= 12 and set(shown["Description"]) == {"NETFLIX.COM"}


@pytest.mark.parametrize(("name", "amount", "why"), [
    ("Netflix", "abc", "number like 44.90"),
    ("Netflix", "-5", "above zero"),
    ("Netflix", "1e400", "too large"),
    ("Netflix", "4.999", "two decimals"),
    ("Netflix", "NaN", "above zero"),
    ("Net\u0000flix", "", "printable"),
])
def test_hostile_input_is_refused_with_a_reason_and_changes_nothing(page: AppTest, store: Path, name, amount, why):
    at = open_series(page, "Netflix")
    at.text_input(key="recurring_edit_name").input(name)
    at.text_input(key="recurring_edit_amount").input(amount)
    next(b for b in at.button if b.label == "Save changes").click()
    ok(at.run())
    assert any(why in e and "Nothing was changed" in e for e in said(at.error)), said(at.error)
    assert choice_rows(store) == (0, 0)


def test_a_refused_choice_raises_before_touching_the_store(store: Path):
    svc = open_services()
    try:
        [netflix] = named(svc.recurring.series(TODAY), "Netflix")
        for status, cadence, name in (("deleted", None, None), ("confirmed", "daily", None),
                                      ("confirmed", None, "x" * 81)):  # the page's box stops at 80 characters
            with pytest.raises(RecurringError, match="Nothing was changed"):
                svc.recurring.choose(netflix, status, cadence=cadence, name=name, actor="tester")
    finally:
        svc.engine.dispose()
    assert choice_rows(store) == (0, 0)


def test_the_page_works_before_any_bank_is_connected(offline: Path):
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page(PAGE)
    ok(at.run())
    assert any("No recurring payments found yet" in i.value for i in at.info)
