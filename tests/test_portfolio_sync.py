"""Investments, loans and card bills through the sync engine and the store (issue 19), with a fake provider."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
import sqlalchemy as sa

from finance.errors import TransientError
from finance.portfolio import PORTFOLIO_INTERVAL
from finance.providers.webhook import PORTFOLIO
from finance.sync import SyncEngine
from tests.portfolio_fake import NOW, TODAY, FakeBank, connect, table

D = Decimal

pytestmark = pytest.mark.engines  # each test on DuckDB and on PostgreSQL


@pytest.fixture
def bank() -> FakeBank:
    return FakeBank()


@pytest.fixture
def fake_sync(engine: sa.Engine, bank: FakeBank) -> SyncEngine:
    return SyncEngine(engine, {"fake": bank}, now=lambda: NOW)


def test_a_sync_stores_holdings_trades_loans_and_bills(engine, bank, fake_sync):
    cid = connect(fake_sync, bank)
    result = fake_sync.sync_connection(cid)
    assert result.outcome == "success", result.message
    assert "not updated" not in result.message
    held = table(engine, "SELECT security_id, quantity, value, cost_basis FROM holdings ORDER BY 1")
    assert [(h.security_id, D(h.quantity), D(h.value), D(h.cost_basis)) for h in held] == [
        ("fake:cdb", D(1), D("4500.00"), D("4000.00")), ("fake:petr4", D(200), D("8000.00"), D("7000.00"))]
    assert [r.id for r in table(engine, "SELECT id FROM investment_transactions ORDER BY 1")] == [
        "fake:it-1", "fake:it-2"]
    loans = {r.account_id: r for r in table(engine, "SELECT * FROM liabilities")}
    assert loans["fake:loan-1"].kind == "personal" and D(loans["fake:loan-1"].balance) == D("-8000.00")
    assert table(engine, "SELECT type, current_balance FROM accounts WHERE id = 'fake:loan-1'")[0].type == "loan"
    assert len(table(engine, "SELECT * FROM loan_payments WHERE account_id = 'fake:loan-1'")) == 7
    assert [r.id for r in table(engine, "SELECT id FROM card_bills ORDER BY due_date")] == [
        "fake:bill-old", "fake:bill-now", "fake:bill-next"]
    assert table(engine, "SELECT bill_id FROM transactions WHERE id = 'fake:inst-1'")[0].bill_id == "bill-now"
    assert {(r.resource, r.ok) for r in table(engine, "SELECT resource, ok FROM portfolio_status")} == {
        ("investments", True), ("investment_transactions", True), ("liabilities", True), ("bills", True)}
    assert bank.calls == [("item-1", None)]  # first read: as far back as the provider goes


def test_the_next_sync_reads_investment_transactions_from_the_latest_stored_less_an_overlap(bank, fake_sync):
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    fake_sync._now = lambda: NOW + PORTFOLIO_INTERVAL  # type: ignore[method-assign]
    fake_sync.sync_connection(cid)
    assert bank.calls[-1] == ("item-1", TODAY - timedelta(days=60) - timedelta(days=30))


def test_a_sync_within_the_hour_leaves_the_portfolio_unread_and_as_it_was(engine, bank, fake_sync):
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    stored = {t: sorted(map(tuple, table(engine, f"SELECT * FROM {t}"))) for t in ("holdings", "balance_history")}
    fake_sync._now = lambda: NOW + PORTFOLIO_INTERVAL - timedelta(seconds=1)  # type: ignore[method-assign]
    assert fake_sync.sync_connection(cid).outcome == "success"
    assert len(bank.calls) == 1
    assert {t: sorted(map(tuple, table(engine, f"SELECT * FROM {t}"))) for t in stored} == stored
    fake_sync.sync_connection(cid, refetch=[PORTFOLIO])  # a webhook said it changed
    assert len(bank.calls) == 2


def test_a_second_sync_changes_nothing(engine, bank, fake_sync):
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    tables = ("holdings", "securities", "liabilities", "loan_payments", "card_bills", "investment_transactions",
              "balance_history")
    before = {t: sorted(map(tuple, table(engine, f"SELECT * FROM {t}"))) for t in tables}
    fake_sync.sync_connection(cid)
    after = {t: sorted(map(tuple, table(engine, f"SELECT * FROM {t}"))) for t in tables}
    for name in ("securities", "liabilities", "card_bills"):  # refreshed: only their updated_at may move
        before.pop(name), after.pop(name)
    assert before == after


def test_a_failing_resource_keeps_its_stored_rows_and_the_others_update(engine, bank, fake_sync):
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    bank.failing = {"bills"}
    bank.portfolio = None
    fake_sync._now = lambda: NOW + PORTFOLIO_INTERVAL  # type: ignore[method-assign]
    result = fake_sync.sync_connection(cid)
    assert result.outcome == "success"
    assert "bills (The bank's bills are unavailable right now.)" in result.message
    assert len(table(engine, "SELECT * FROM card_bills")) == 3
    status = {r.resource: r for r in table(engine, "SELECT * FROM portfolio_status")}
    assert not status["bills"].ok and status["bills"].error_code == "UNAVAILABLE"
    assert status["bills"].last_success_at is not None  # when it last worked stays known
    assert status["investments"].ok


def test_a_failing_portfolio_never_fails_the_transactions(engine, bank, fake_sync):
    bank.portfolio = TransientError("Investments are down.", code="DOWN")
    cid = connect(fake_sync, bank)
    result = fake_sync.sync_connection(cid)
    assert result.outcome == "success"
    assert result.counts.added == len(bank.rows)
    assert "Investments, loans and bills were not updated: Investments are down." in result.message
    assert {r.ok for r in table(engine, "SELECT ok FROM portfolio_status")} == {False}


def test_a_portfolio_the_store_refuses_leaves_the_transactions_saved(engine, bank, fake_sync):
    from dataclasses import replace

    from tests.portfolio_fake import default_portfolio
    broken = default_portfolio()
    broken.bills[0] = replace(broken.bills[0], total=D("1e20"))  # past DECIMAL(18,2)
    bank.portfolio = broken
    cid = connect(fake_sync, bank)
    result = fake_sync.sync_connection(cid)
    assert result.outcome == "success"
    assert "not updated" in result.message
    assert len(table(engine, "SELECT * FROM transactions")) == len(bank.rows)
    assert table(engine, "SELECT * FROM card_bills") == []


def test_loan_and_investment_histories_reach_back_without_a_cliff(engine, bank, fake_sync):
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    first = min(r.booked_date for r in table(engine, "SELECT booked_date FROM transactions"))
    loan = table(engine, "SELECT day, balance FROM balance_history WHERE account_id = 'fake:loan-1' ORDER BY day")
    assert loan[0].day == first and loan[-1].day == TODAY
    assert D(loan[-1].balance) == D("-8000.00")
    assert D(loan[0].balance) == D("-8000.00") - 7 * D("500.00")  # before its seven payments
    assert max(abs(D(b.balance) - D(a.balance)) for a, b in pairwise(loan)) == D("500.00")
    brokerage = table(engine, "SELECT day, balance FROM balance_history WHERE account_id = 'fake:brokerage' "
                              "ORDER BY day")
    assert brokerage[-1].balance == D("12500.00")
    assert brokerage[0].day == first
    assert brokerage[0].balance == D("4500.00")  # before the stock was bought: the fixed-income title alone
    steps = [D(b.balance) - D(a.balance) for a, b in pairwise(brokerage)]
    assert abs(steps[-1]) < D("100")  # the last day moves like any other day


def test_deleting_a_connection_forgets_its_portfolio(engine, bank, fake_sync):
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    fake_sync.delete_connection(cid, keep_history=False)
    for name in ("holdings", "securities", "liabilities", "loan_payments", "card_bills", "investment_transactions",
                 "portfolio_status"):
        assert table(engine, f"SELECT * FROM {name}") == [], name


def test_an_unchanged_resource_is_not_written_again_and_a_changed_one_is(engine, bank, fake_sync):
    from dataclasses import replace

    from tests.portfolio_fake import default_portfolio
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    written = {r.id: r.updated_at for r in table(engine, "SELECT id, updated_at FROM securities")}
    changed = default_portfolio()
    changed.bills[1] = replace(changed.bills[1], total=D("1300.00"))
    bank.portfolio = changed
    fake_sync._now = lambda: NOW + timedelta(minutes=5)  # type: ignore[method-assign]
    fake_sync.sync_connection(cid, refetch=[PORTFOLIO])  # a webhook said the bills changed
    assert {r.id: r.updated_at for r in table(engine, "SELECT id, updated_at FROM securities")} == written
    assert D(table(engine, "SELECT total FROM card_bills WHERE id = 'fake:bill-now'")[0].total) == D("1300.00")
    assert table(engine, "SELECT checked_at FROM portfolio_status WHERE resource = 'investments'")[0].checked_at \
        > min(written.values())


def test_every_account_of_a_connection_has_history_from_its_first_day(engine, bank, fake_sync):
    """The card's own rows begin days ago, the checking account's months ago: the card still counts (at its opening
    balance) from the connection's first day, so net worth does not jump the day the card's rows begin."""
    cid = connect(fake_sync, bank)
    fake_sync.sync_connection(cid)
    first = {r.account_id: r.first for r in table(engine, "SELECT account_id, MIN(day) AS first FROM balance_history "
                                                          "GROUP BY account_id")}
    assert len(set(first.values())) == 1, first
    card = table(engine, "SELECT day, balance FROM balance_history WHERE account_id = 'fake:card' ORDER BY day")
    assert D(card[0].balance) == D("-1240.00") + D("206.67") - D("900.00")  # before its purchase and its payment
