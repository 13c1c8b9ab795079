"""The Investments, Loans and Card bills pages (issue 19) through AppTest, on a store synced from the fake bank of
tests/portfolio_fake.py: what they show, their empty states, and bank text kept as text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from finance.config import load_settings
from finance.formatting import escape_markdown
from finance.model import AccountType
from finance.services import open_services
from finance.sync import SyncEngine
from tests.conftest import ok
from tests.portfolio_fake import HOSTILE, NOW, FakeBank, connect

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(f"pages/{page}.py")
    return ok(at.run())


def synced(bank: FakeBank) -> None:
    services = open_services(load_settings())
    try:
        sync = SyncEngine(services.engine, {"fake": bank}, now=lambda: NOW)
        assert sync.sync_connection(connect(sync, bank)).outcome == "success"
    finally:
        services.engine.dispose()


@pytest.fixture
def bank(offline: Path) -> FakeBank:
    bank = FakeBank()
    accounts = bank.accounts["item-1"]
    bank.accounts["item-1"] = [replace(a, name=HOSTILE) if a.type is AccountType.CREDIT_CARD else a
                               for a in accounts]
    synced(bank)
    return bank



def test_investments_show_each_holding_with_value_cost_and_gain(bank):
    at = open_page("investments")
    holdings = at.dataframe[0].value
    stock = holdings[holdings["Ticker"] == "PETR4"].iloc[0]
    assert stock["Security"] == HOSTILE  # a cell: shown as text
    assert (stock["Quantity"], stock["Price"], stock["Value"], stock["Cost basis"], stock["Gain"]) == (
        "200", "R$ 40,00", "R$ 8.000,00", "R$ 7.000,00", "R$ 1.000,00")
    assert [m.value for m in at.metric][:3] == ["R$ 12.500,00", "R$ 11.000,00", "R$ 1.500,00"]
    assert len(at.get("plotly_chart")) == 1
    assert "Compra PETR4" in at.dataframe[-1].value["Description"].tolist()
    assert not any(HOSTILE in m.value for m in at.markdown)


def test_loans_show_rate_next_payment_and_installments(bank):
    at = open_page("loans")
    table = at.dataframe[0].value
    loan = table[table["Kind"] == "Personal"].iloc[0]
    assert loan["Balance"] == "-R$ 8.000,00"
    assert loan["Rate (% a year)"] == pytest.approx(23.4)
    assert loan["Next amount"] == "R$ 610,00"
    assert loan["Installments paid"] == "7 of 24"
    assert loan["Original principal"] == "R$ 12.000,00"
    card = table[table["Kind"] == "Credit"].iloc[0]
    assert card["Loan"] == f"{HOSTILE} ••9876" and card["Minimum"] == "R$ 124,00"
    assert at.metric[0].value == "R$ 9.240,00"  # the loan and the card


def test_card_bills_show_current_and_next_bill_and_future_installments(bank):
    at = open_page("card_bills")
    assert at.subheader[0].value == escape_markdown(f"{HOSTILE} ••9876")
    assert [m.value for m in at.metric] == ["R$ 1.240,00", "R$ 206,67"]
    assert any("R$ 826,68 over the next 4 months" in m.value for m in at.markdown)
    months = at.dataframe[0].value
    assert list(months["Installments"]) == ["R$ 206,67"] * 4


def test_a_failing_resource_is_named_with_its_reason_escaped(offline):
    bank = FakeBank(failing={"bills"})
    synced(bank)
    bank.failing = set()
    at = open_page("card_bills")
    assert "could not be read" in at.warning[0].value
    assert "No card bills yet" in at.info[0].value


@pytest.mark.parametrize("page", ["investments", "loans", "card_bills"])
def test_empty_pages_say_where_the_data_comes_from(offline, page):
    at = open_page(page)
    assert "Connections page" in at.info[0].value
