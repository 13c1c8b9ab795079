"""Money in several currencies: rates, conversion to a base currency (property tests), the rate store with its
audit rows, money formatting, the Overview's figures, and the Money page through AppTest."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from finance import money
from finance.formatting import escape_markdown, format_money, format_rate
from finance.i18n import format_short_day
from finance.money import Rate, RateBook, RateError
from finance.store import rates as rate_store
from tests.conftest import ok, store_engine

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[1]
DAY0 = date(2026, 1, 1)

# --------------------------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (Decimal("1234.56"), "BRL", "R$ 1.234,56"),
    (Decimal("-1234.56"), "BRL", "-R$ 1.234,56"),
    (Decimal("1234.56"), "USD", "$1,234.56"),
    (Decimal("-0.005"), "USD", "$0.00"),  # banker's rounding to the cent: no "-$0.00"
    (Decimal("1234567.891"), "USD", "$1,234,567.89"),
    (Decimal("12.5"), "GBP", "£12.50"),
    (Decimal("12.5"), "CHF", "CHF 12.50"),
    (None, "BRL", "—"),
    (float("nan"), "USD", "—"),
])
def test_format_money(amount, currency, shown):
    assert format_money(amount, currency) == shown


@pytest.mark.parametrize(("rate", "pair", "shown"), [
    (Decimal("5.432100000000"), ("USD", "BRL"), "1 USD = R$ 5,4321"),
    (Decimal("1234.5"), ("USD", "BRL"), "1 USD = R$ 1.234,50"),
    (Decimal("0.184093456789"), ("BRL", "USD"), "1 BRL = $0.184093"),
    (Decimal("0.0000001"), ("IDR", "USD"), "1 IDR = $0.0000001"),
    (Decimal("1"), ("EUR", "USD"), "1 EUR = $1.00"),
])
def test_format_rate_reads_like_the_target_currency(rate, pair, shown):
    assert format_rate(rate, *pair) == shown


# --------------------------------------------------------------------------------------------------------------------
# What the user types
# --------------------------------------------------------------------------------------------------------------------


def test_clean_rate_normalises_what_the_form_holds():
    rate = money.clean_rate(" usd", "brl ", "5,25", DAY0, "  PTAX  ")
    assert rate == Rate("USD", "BRL", Decimal("5.25"), DAY0, "PTAX")
    assert money.clean_rate("USD", "BRL", "0.1234567890123", DAY0).rate == Decimal("0.123456789012")


@pytest.mark.parametrize(("args", "message"), [
    (("US", "BRL", "5", DAY0), "three-letter code"),
    (("USD", "R$", "5", DAY0), "three-letter code"),
    (("USD", "usd", "5", DAY0), "two different currencies"),
    (("USD", "BRL", "0", DAY0), "above zero"),
    (("USD", "BRL", "-5", DAY0), "above zero"),
    (("USD", "BRL", "NaN", DAY0), "above zero"),
    (("USD", "BRL", "Infinity", DAY0), "above zero"),
    (("USD", "BRL", "five", DAY0), "must be a number"),
    (("USD", "BRL", "", DAY0), "must be a number"),
    (("USD", "BRL", "1,234.5", DAY0), "one decimal sign"),
    (("USD", "BRL", "1e13", DAY0), "too large"),
    (("USD", "BRL", "0.0000000000001", DAY0), "too small"),
    (("USD", "BRL", "5", None), "Choose the date"),
    (("USD", "BRL", "5", datetime(2026, 1, 1, tzinfo=UTC)), "Choose the date"),
])
def test_clean_rate_refuses_bad_input_with_what_to_fix(args, message):
    with pytest.raises(RateError, match=message) as info:
        money.clean_rate(*args)
    assert "Nothing was changed" in str(info.value)


def test_clean_rate_refuses_long_or_control_character_notes():
    with pytest.raises(RateError, match="at most"):
        money.clean_rate("USD", "BRL", "5", DAY0, "x" * (money.MAX_NOTE_LENGTH + 1))
    with pytest.raises(RateError, match="control characters"):
        money.clean_rate("USD", "BRL", "5", DAY0, "a\x00b")


# --------------------------------------------------------------------------------------------------------------------
# Conversion: properties
# --------------------------------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2, allow_nan=False,
                      allow_infinity=False)
days = st.integers(min_value=0, max_value=400).map(lambda n: DAY0 + timedelta(days=n))
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("10000"), places=4, allow_nan=False,
                    allow_infinity=False).filter(lambda r: r > 0)
row = st.fixed_dictionaries({"currency": st.sampled_from(["BRL", "USD", "EUR"]), "day": days, "amount": amounts})
rate_entry = st.builds(lambda pair, r, d: Rate(pair[0], pair[1], r, d),
                       st.sampled_from([("USD", "BRL"), ("BRL", "USD"), ("EUR", "BRL"), ("BRL", "EUR")]), rates, days)


def rate_lists(max_size: int) -> st.SearchStrategy[list[Rate]]:
    """Rates as the store keeps them: at most one per pair (either direction) and date."""
    return st.lists(rate_entry, max_size=max_size,
                    unique_by=lambda r: (frozenset((r.from_currency, r.to_currency)), r.valid_from))


def oracle_rate(book_rates: list[Rate], currency: str, base: str, day: date) -> Decimal | None:
    """The rate in force, by brute force: the latest dated on or before `day`, either direction, direct on a tie."""
    if currency == base:
        return Decimal(1)
    candidates = [(r.valid_from, 1, r.rate) for r in book_rates
                  if (r.from_currency, r.to_currency) == (currency, base) and r.valid_from <= day]
    candidates += [(r.valid_from, 0, Decimal(1) / r.rate) for r in book_rates
                   if (r.from_currency, r.to_currency) == (base, currency) and r.valid_from <= day]
    return max(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


@given(st.lists(row, max_size=40), days)
def test_rate_one_converts_at_face_value(rows, rate_day):
    for r in rows:  # the first rate predates every amount
        r["day"] = max(r["day"], rate_day)
    book = RateBook([Rate("USD", "BRL", Decimal(1), rate_day), Rate("BRL", "EUR", Decimal(1), rate_day)])
    result = money.to_base(rows, ["amount"], "BRL", book)
    assert result.complete
    assert result.totals["amount"] == sum((r["amount"] for r in rows), Decimal(0))


@given(st.lists(row, max_size=40), rate_lists(6), st.sampled_from(["BRL", "USD", "EUR"]))
def test_missing_rates_are_never_summed_and_everything_is_accounted_for(rows, entries, base):
    book = RateBook(entries)
    result = money.to_base(rows, ["amount"], base, book)

    expected = Decimal(0)
    left_out: dict[str, Decimal] = {}
    for r in rows:
        rate = oracle_rate(entries, r["currency"], base, r["day"])
        if rate is None:
            if r["amount"] != 0:
                left_out[r["currency"]] = left_out.get(r["currency"], Decimal(0)) + r["amount"]
        else:
            expected += r["amount"] * rate
    assert result.totals["amount"] == expected.quantize(money.CENT)
    assert {g.currency: g.amounts["amount"] for g in result.gaps} == left_out
    assert base not in left_out  # the base currency itself always converts
    for gap in result.gaps:
        dated = [r["day"] for r in rows if r["currency"] == gap.currency and r["amount"] != 0
                 and oracle_rate(entries, gap.currency, base, r["day"]) is None]
        assert (gap.first_day, gap.last_day) == (min(dated), max(dated))
        assert gap.rate_from is None or gap.rate_from > gap.last_day


@given(st.lists(row, min_size=1, max_size=30), rate_lists(4), amounts)
def test_an_unconverted_amount_never_changes_the_total(rows, entries, other):
    """Metamorphic: change every amount that has no rate; the base total stays the same."""
    book = RateBook(entries)
    before = money.to_base(rows, ["amount"], "BRL", book)
    changed = [{**r, "amount": other} if book.rate(r["currency"], "BRL", r["day"]) is None else r for r in rows]
    assert money.to_base(changed, ["amount"], "BRL", book).totals == before.totals


@given(rate_lists(8), st.sampled_from(["BRL", "USD", "EUR"]), st.sampled_from(["BRL", "USD", "EUR"]),
       days)
def test_the_rate_in_force_is_the_latest_on_or_before_the_date(entries, currency, base, day):
    assert RateBook(entries).rate(currency, base, day) == oracle_rate(entries, currency, base, day)


def test_a_reverse_pair_converts_by_its_inverse_and_the_direct_pair_wins_a_tie():
    book = RateBook([Rate("BRL", "USD", Decimal("0.2"), DAY0)])
    assert money.convert(Decimal("10.00"), "USD", DAY0, "BRL", book) == Decimal("50.0")
    assert money.convert(Decimal("10.00"), "USD", DAY0 - timedelta(days=1), "BRL", book) is None
    tie = RateBook([Rate("BRL", "USD", Decimal("0.2"), DAY0), Rate("USD", "BRL", Decimal("5.5"), DAY0)])
    assert tie.rate("USD", "BRL", DAY0) == Decimal("5.5")


def test_series_total_has_a_gap_where_a_currency_has_no_rate():
    frame = pd.DataFrame({
        "day": [DAY0, DAY0, DAY0 + timedelta(days=1), DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)],
        "currency": ["BRL", "USD", "BRL", "USD", "BRL"],
        "net_worth": [Decimal("100"), Decimal("10"), Decimal("100"), Decimal("10"), Decimal("90")],
    })
    book = RateBook([Rate("USD", "BRL", Decimal("5"), DAY0 + timedelta(days=1))])

    series, gaps = money.series_to_base(frame, "net_worth", "BRL", book)

    assert math.isnan(series["total"].iloc[0])  # USD had no rate yet: no line, not 100
    assert series["total"].tolist()[1:] == [150.0, 90.0]
    assert series["BRL"].tolist() == [100.0, 100.0, 90.0]
    assert [(g.currency, g.first_day, g.last_day, g.rate_from) for g in gaps] == [
        ("USD", DAY0, DAY0, DAY0 + timedelta(days=1))]
    text = money.describe_gap(gaps[0], {})
    assert "USD amounts dated Jan 1, 2026 are not converted to BRL" in text
    assert "Add a USD → BRL rate dated on or before Jan 1, 2026" in text


# --------------------------------------------------------------------------------------------------------------------
# The rate store: every change with its audit row; bad input changes nothing
# --------------------------------------------------------------------------------------------------------------------


def audit(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT action, object_id FROM audit_log ORDER BY occurred_at, action"))]


def test_rates_are_added_edited_and_deleted_with_audit_rows(engine: sa.Engine):
    rate_id = rate_store.add_exchange_rate(engine, money.clean_rate("USD", "BRL", "5.25", DAY0, "PTAX"),
                                        actor="ana", now=datetime(2026, 1, 2, tzinfo=UTC))
    with engine.connect() as conn:
        assert rate_store.exchange_rates(conn) == [Rate("USD", "BRL", Decimal("5.25"), DAY0, "PTAX", rate_id)]

    same = money.clean_rate("USD", "BRL", "5.250", DAY0, "PTAX")
    assert rate_store.update_exchange_rate(engine, rate_id, same, now=datetime(2026, 1, 3, tzinfo=UTC)) is False
    edited = money.clean_rate("USD", "BRL", "5.3", DAY0 + timedelta(days=1), None)
    assert rate_store.update_exchange_rate(engine, rate_id, edited, now=datetime(2026, 1, 4, tzinfo=UTC)) is True
    with engine.connect() as conn:
        assert rate_store.exchange_rates(conn)[0].rate == Decimal("5.3")
        detail = conn.execute(sa.text("SELECT detail, actor FROM audit_log WHERE action = 'add_rate'")).one()
    assert '"rate": "5.25"' in detail.detail and detail.actor == "ana"

    gone = rate_store.delete_exchange_rate(engine, rate_id, now=datetime(2026, 1, 5, tzinfo=UTC))
    assert gone.rate == Decimal("5.3")
    with engine.connect() as conn:
        assert rate_store.exchange_rates(conn) == []
    assert audit(engine) == [("add_rate", rate_id), ("edit_rate", rate_id), ("delete_rate", rate_id)]


def test_a_second_rate_for_the_same_pair_and_day_is_refused_in_either_direction(engine: sa.Engine):
    first = rate_store.add_exchange_rate(engine, money.clean_rate("USD", "BRL", "5.25", DAY0))
    other = rate_store.add_exchange_rate(engine, money.clean_rate("USD", "BRL", "5.30", DAY0 + timedelta(days=1)))
    before = audit(engine)
    for clash in (money.clean_rate("USD", "BRL", "6", DAY0), money.clean_rate("BRL", "USD", "0.2", DAY0)):
        with pytest.raises(RateError, match="already a USD → BRL rate dated Jan 1, 2026"):
            rate_store.add_exchange_rate(engine, clash)
    with pytest.raises(RateError, match="already"):
        rate_store.update_exchange_rate(engine, other, money.clean_rate("USD", "BRL", "5.30", DAY0))
    with pytest.raises(RateError, match="no longer exists"):
        rate_store.delete_exchange_rate(engine, "missing")
    with engine.connect() as conn:
        assert [(r.id, r.rate) for r in rate_store.exchange_rates(conn)] == [(other, Decimal("5.3")),
                                                                          (first, Decimal("5.25"))]
    assert audit(engine) == before


# --------------------------------------------------------------------------------------------------------------------
# Overview figures
# --------------------------------------------------------------------------------------------------------------------


def test_periods():
    today = date(2026, 3, 15)
    assert money.preset_period("Last 30 days", today) == (date(2026, 2, 14), today)
    assert money.preset_period("This year", today) == (date(2026, 1, 1), today)
    assert money.previous_period(date(2026, 2, 14), today) == (date(2026, 1, 15), date(2026, 2, 13))
    with pytest.raises(ValueError, match="unknown period"):
        money.preset_period("Custom", today)


def test_key_figures_compare_only_a_covered_previous_period():
    frame = pd.DataFrame([
        {"currency": "BRL", "period": "current", "income": Decimal("1000"), "spending": Decimal("800"),
         "largest_expense": Decimal("300"), "largest_description": "Aluguel", "largest_day": DAY0},
        {"currency": "BRL", "period": "previous", "income": Decimal("1000"), "spending": Decimal("900"),
         "largest_expense": None, "largest_description": None, "largest_day": None},
        {"currency": "USD", "period": "current", "income": Decimal("0"), "spending": Decimal("50"),
         "largest_expense": Decimal("50"), "largest_description": "Uber", "largest_day": DAY0},
    ])
    figures = money.key_figures(frame, previous_covered=True)
    brl, usd = figures["BRL"], figures["USD"]
    assert brl.current.net == Decimal("200") and brl.current.savings_rate == Decimal("0.2")
    assert brl.change("spending") == Decimal("-100") and brl.change("savings_rate") == Decimal("0.1")
    assert brl.change("largest_expense") is None  # nothing to compare with
    assert usd.current.savings_rate is None  # no income: no rate, not 0 %
    assert usd.change("income") == 0  # the previous period had no USD rows: zero, not missing
    assert money.key_figures(frame, previous_covered=False)["BRL"].change("income") is None


def test_card_use_per_card_and_currency():
    accounts = pd.DataFrame([
        {"id": "a", "institution": "X", "name": "Visa", "mask": "1234", "type": "credit_card", "currency": "BRL",
         "current_balance": Decimal("-3000"), "credit_limit": Decimal("12000"), "balance_as_of": None},
        {"id": "b", "institution": "X", "name": "Master", "mask": None, "type": "credit_card", "currency": "BRL",
         "current_balance": Decimal("150"), "credit_limit": Decimal("1000"), "balance_as_of": None},  # a credit
        {"id": "c", "institution": "Y", "name": "Amex", "mask": None, "type": "credit_card", "currency": "USD",
         "current_balance": Decimal("-10"), "credit_limit": None, "balance_as_of": None},  # no limit: not shown
        {"id": "d", "institution": "Y", "name": "Checking", "mask": None, "type": "checking", "currency": "USD",
         "current_balance": Decimal("-10"), "credit_limit": Decimal("500"), "balance_as_of": None},
    ])
    cards = money.card_use(accounts)
    assert cards["id"].tolist() == ["a", "b"]
    assert cards["used"].tolist() == [Decimal("3000"), Decimal("0")]
    assert cards["share"].tolist() == [0.25, 0.0]
    totals = money.card_use_totals(cards)
    assert totals.to_dict("records") == [{"currency": "BRL", "cards": 2, "used": Decimal("3000"),
                                          "credit_limit": Decimal("13000"), "share": 3000 / 13000}]


# --------------------------------------------------------------------------------------------------------------------
# The Money page (AppTest), on a store with the demo's two sandbox banks
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def money_page(demo_copy: Path, offline: Path) -> AppTest:
    """The Money page on a private copy of the demo store."""
    at = AppTest.from_file(str(REPO / "pages" / "money.py"), default_timeout=60)
    return ok(at.run())


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def store_figures(folder: Path) -> dict[str, Decimal]:
    """Balances per currency straight from the store, independent of the page's rate_store."""
    engine = store_engine()
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT currency, SUM(current_balance) FROM accounts GROUP BY 1")).all()
    engine.dispose()
    return {r[0]: r[1] for r in rows}


def add_rate(at: AppTest, source: str, target: str, rate: str, valid_from: date, note: str = "") -> AppTest:
    at.selectbox(key="money_new_from").select(source)
    at.selectbox(key="money_new_to").select(target)
    at.text_input(key="money_new_rate").input(rate)
    at.date_input(key="money_new_date").set_value(valid_from)
    at.text_input(key="money_new_note").input(note)
    next(b for b in at.button if b.label == "Add rate").click()
    return ok(at.run())


def test_money_page_empty_store_points_to_connections(offline: Path):
    """Under a navigation (as in app.py), so its link to the Connections page resolves."""
    folder = offline / "entry"
    folder.mkdir()
    (folder / "pages").symlink_to(REPO / "pages", target_is_directory=True)
    (folder / "app.py").write_text("import streamlit as st\n\nst.navigation([st.Page('pages/money.py', default=True), "
                                   "st.Page('pages/connections.py')]).run()\n")
    at = ok(AppTest.from_file(str(folder / "app.py"), default_timeout=60).run())
    assert "No accounts yet" in at.info[0].value
    assert [(p.proto.label, p.proto.page) for p in at.get("page_link")] == [("Connect a bank", "connections")]


def test_money_page_shows_each_currency_in_its_own_format_and_never_a_face_value_sum(money_page: AppTest,
                                                                                      offline: Path):
    at = money_page
    balances = store_figures(offline)
    per_currency = at.dataframe[0].value.set_index("Currency")
    assert per_currency.loc["BRL", "Net worth"] == format_money(balances["BRL"], "BRL")
    assert per_currency.loc["USD", "Net worth"] == format_money(balances["USD"], "USD")
    assert per_currency.loc["BRL", "Net worth"].lstrip("-").startswith("R$ ")
    assert per_currency.loc["USD", "Net worth"].lstrip("-").startswith("$")

    # No rate yet: the BRL view holds BRL only, and says exactly what was left out and why.
    assert metric(at, "Net worth (BRL)") == format_money(balances["BRL"], "BRL")
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Balances: USD amounts dated") and "there is no USD/BRL rate" in w
               and format_money(balances["USD"], "USD") in w for w in warnings)
    assert any(w.startswith("Income and spending: USD amounts dated") for w in warnings)
    assert all("Data as of" in m.help for m in at.metric)


def test_adding_a_rate_brings_the_other_currency_into_the_base_total(money_page: AppTest, offline: Path):
    balances = store_figures(offline)
    at = add_rate(money_page, "USD", "BRL", "5,25", date(2020, 1, 1), "PTAX")

    assert escape_markdown("Rate saved: 1 USD = R$ 5,25 from Jan 1, 2020.") in at.success[0].value  # shown literally
    expected = (balances["BRL"] + balances["USD"] * Decimal("5.25")).quantize(Decimal("0.01"))
    assert metric(at, "Net worth (BRL)") == format_money(expected, "BRL")
    assert not [w.value for w in at.warning]
    assert any("Every amount is included" in c.value for c in at.caption)

    # The same rate read the other way: everything in USD, through the inverse.
    at.selectbox(key="money_base").select("USD")
    ok(at.run())
    expected_usd = (balances["USD"] + balances["BRL"] / Decimal("5.25")).quantize(Decimal("0.01"))
    assert metric(at, "Net worth (USD)") == format_money(expected_usd, "USD")

    engine = store_engine()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT from_currency, to_currency, rate, note FROM exchange_rates")).all()
        logged = conn.execute(sa.text("SELECT action FROM audit_log")).scalars().all()
    engine.dispose()
    assert [tuple(r) for r in stored] == [("USD", "BRL", Decimal("5.25"), "PTAX")]
    assert logged == ["add_rate"]


def test_a_rate_dated_after_some_amounts_leaves_exactly_those_out(money_page: AppTest):
    start = date.today() - timedelta(days=30)
    at = add_rate(money_page, "USD", "BRL", "5", start)
    flows = [w.value for w in at.warning if w.value.startswith("Income and spending")]
    assert len(flows) == 1
    assert f"the first USD/BRL rate is dated {format_short_day(start)}" in flows[0]
    # The range named is that of the amounts actually left out: it ends on the last day with USD amounts before the
    # rate (not always the day before: the ledger has days without USD transactions).
    match = re.search(r"dated (\w{3} \d+, \d{4}) – (\w{3} \d+, \d{4}) are not converted", flows[0])
    assert match, flows[0]
    first, last = (datetime.strptime(day, "%b %d, %Y").date() for day in match.groups())
    assert first <= last < start


def test_bad_rate_is_refused_and_nothing_is_stored(money_page: AppTest, offline: Path):
    at = add_rate(money_page, "USD", "BRL", "1,234.5", date(2020, 1, 1))
    assert "one decimal sign" in at.error[0].value
    at = add_rate(at, "USD", "USD", "2", date(2020, 1, 1))
    assert "two different currencies" in at.error[0].value
    engine = store_engine()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM exchange_rates")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_log")).scalar_one() == 0
    engine.dispose()


def test_edit_and_delete_a_rate_from_the_page(money_page: AppTest, offline: Path):
    at = add_rate(money_page, "USD", "BRL", "5", date(2020, 1, 1))
    [rate_id] = _rate_ids(offline)
    at.selectbox(key="money_edit_id").set_value(rate_id)
    ok(at.run())
    assert at.text_input(key="money_edit_rate").value == "5"  # the chosen rate fills the form
    at.text_input(key="money_edit_rate").input("6")
    next(b for b in at.button if b.label == "Save changes").click()
    ok(at.run())
    assert escape_markdown("Rate updated.") in at.success[0].value
    assert at.selectbox(key="money_edit_id").options == ["Jan 1, 2020 · 1 USD = R$ 6,00"]

    next(b for b in at.button if b.label == "Delete this rate").click()
    ok(at.run())
    assert "Rate deleted" in at.success[0].value
    assert _rate_ids(offline) == []
    engine = store_engine()
    with engine.connect() as conn:
        actions = conn.execute(sa.text("SELECT action FROM audit_log ORDER BY occurred_at")).scalars().all()
    engine.dispose()
    assert actions == ["add_rate", "edit_rate", "delete_rate"]


def _rate_ids(folder: Path) -> list[str]:
    engine = store_engine()
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM exchange_rates")).scalars().all()
    engine.dispose()
    return list(ids)
