"""Reconnect continuity (issue 19, item 5): the accounts of a new connection (the Open Finance successor of a retired
direct connector) continue the old connection's accounts, so charts and totals count each account once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from finance.errors import EditError
from finance.model import Account, AccountType, ConnectionStatus
from finance.providers.base import match_by_identity
from finance.store import accounts as accounts_store
from finance.store import reports
from finance.sync import SyncEngine
from tests.portfolio_fake import NOW, TODAY, FakeBank, Row, connect, table

D = Decimal

pytestmark = pytest.mark.engines  # each test on DuckDB and on PostgreSQL


def account(external_id: str, kind: AccountType = AccountType.CHECKING, *, mask: str | None = "1234",
            name: str = "Conta", currency: str = "BRL") -> Account:
    return Account("fake", external_id, "item", kind, name, currency, D(0), mask=mask)


def test_accounts_match_on_kind_currency_and_last_digits() -> None:
    old = [account("a"), account("b", AccountType.CREDIT_CARD, mask="9876", name="Gold"),
           account("c", AccountType.SAVINGS, mask="5555", name="Poupança")]
    new = [account("x", mask="001234"), account("y", AccountType.CREDIT_CARD, mask="9876", name="Gold"),
           account("z", AccountType.CHECKING, mask="5555", name="poupança"), account("w", mask="0000")]
    assert match_by_identity(old, new) == {"x": "a", "y": "b", "z": "c"}


def test_accounts_never_match_across_currencies_or_kinds_or_when_ambiguous() -> None:
    assert match_by_identity([account("a")], [account("x", currency="USD")]) == {}
    assert match_by_identity([account("a")], [account("x", AccountType.CREDIT_CARD)]) == {}
    assert match_by_identity([account("a"), account("b")], [account("x")]) == {}  # two candidates: no guess
    assert match_by_identity([account("a", mask=None, name="Conta  Corrente")],
                             [account("x", mask=None, name="conta corrente")]) == {"x": "a"}


@pytest.fixture
def reconnected(engine: sa.Engine) -> tuple[SyncEngine, FakeBank, str, str]:
    """The fake bank's item-1 synced, then retired and reconnected as item-2: same accounts under new ids, whose
    rows repeat the old connection's last 100 days."""
    bank = FakeBank(portfolio=None)
    sync = SyncEngine(engine, {"fake": bank}, now=lambda: NOW)
    old_id = connect(sync, bank)
    assert sync.sync_connection(old_id).outcome == "success"
    bank.accounts["item-2"] = [replace(a, external_id=f"new-{a.external_id}", connection_external_id="item-2")
                               for a in bank.accounts["item-1"] if a.type is not AccountType.INVESTMENT]
    bank.rows += [Row(f"new-{r.external_id}", f"new-{r.account}", r.day, r.amount, r.description, r.category)
                  for r in bank.rows if r.day >= TODAY - timedelta(days=100) and r.account in ("chk", "card")]
    new_id = connect(sync, bank, "item-2")
    assert sync.sync_connection(new_id).outcome == "success"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE connections SET status = :s WHERE id = :id"),
                     {"s": ConnectionStatus.REVOKED.value, "id": old_id})
    return sync, bank, old_id, new_id


def test_continue_history_links_the_matching_accounts_and_audits_it(engine, reconnected):
    sync, _, old_id, new_id = reconnected
    pairs = sync.continue_history(old_id, new_id, actor="tester")
    assert pairs == {"fake:chk": "fake:new-chk", "fake:card": "fake:new-card"}
    assert {(r.old_account_id, r.new_account_id) for r in table(engine, "SELECT * FROM account_links")} == {
        ("fake:chk", "fake:new-chk"), ("fake:card", "fake:new-card")}
    assert len(table(engine, "SELECT * FROM audit_log WHERE action = 'link_account' AND actor = 'tester'")) == 2


def test_a_continued_account_counts_once_in_net_worth_totals_and_spending(engine, reconnected):
    sync, _, old_id, new_id = reconnected
    start = TODAY - timedelta(days=300)
    with engine.connect() as conn:
        doubled = reports.net_worth_by_day(conn, start, TODAY)
        doubled_spending = reports.spending_by_category(conn, start, TODAY)["spending"].sum()
    sync.continue_history(old_id, new_id, actor="tester")
    with engine.connect() as conn:
        once = reports.net_worth_by_day(conn, start, TODAY)
        totals = accounts_store.balance_totals(conn)
        summary = accounts_store.accounts_summary(conn)
        spending = reports.spending_by_category(conn, start, TODAY)["spending"].sum()
    today_worth = D("5000.00") - D("1240.00") + D("12500.00") - D("8000.00")  # checking, card, brokerage, loan
    assert D(once.iloc[-1]["net_worth"]) == today_worth
    assert D(doubled.iloc[-1]["net_worth"]) == today_worth + D("5000.00") - D("1240.00")
    assert D(totals.iloc[0]["net_worth"]) == today_worth
    assert "fake:chk" not in set(summary["id"])
    old_only = sum(D(r.amount) for r in table(engine, "SELECT amount FROM transactions WHERE account_id IN "
                                                      "('fake:chk', 'fake:card') AND category NOT LIKE 'transfer%'"))
    assert D(spending) == -old_only  # the repeated 100 days once; the bill payment is no spending at all
    assert D(doubled_spending) > D(spending)
    worth = {day: D(v) for day, v in zip(once["day"], once["net_worth"], strict=True)}
    doubled_worth = {day: D(v) for day, v in zip(doubled["day"], doubled["net_worth"], strict=True)}
    handover = min(r.booked_date for r in table(engine, "SELECT booked_date FROM transactions "
                                                        "WHERE connection_id = 'fake:item-2'"))
    assert {r.since for r in table(engine, "SELECT since FROM account_links")} == {handover}
    before = handover - timedelta(days=1)
    assert worth[before] == doubled_worth[before]  # the old accounts alone until then
    assert abs(worth[handover] - worth[before]) < D("100.00")  # a purchase and a price move: no cliff there


def test_continuing_an_unknown_connection_is_refused_and_changes_nothing(engine, reconnected):
    sync, _, old_id, _ = reconnected
    with pytest.raises(EditError, match="nothing was linked"):
        sync.continue_history(old_id, "fake:nope", actor="tester")
    assert table(engine, "SELECT * FROM account_links") == []


def test_a_connection_to_the_named_successor_continues_the_retired_one_by_itself(engine):
    bank = FakeBank(successors={"item-1": "bank-of"}, institutions={"item-2": "bank-of"})
    sync = SyncEngine(engine, {"fake": bank}, now=lambda: NOW)
    old_id = connect(sync, bank)
    assert sync.sync_connection(old_id).outcome == "success"
    bank.accounts["item-2"] = [replace(a, external_id=f"of-{a.external_id}", connection_external_id="item-2")
                               for a in bank.accounts["item-1"] if a.type is AccountType.CHECKING]
    new_id = connect(sync, bank, "item-2")
    result = sync.sync_connection(new_id)
    assert "1 account continues the retired connection's history." in result.message
    assert [(r.old_account_id, r.new_account_id) for r in table(engine, "SELECT * FROM account_links")] == [
        ("fake:chk", "fake:of-chk")]
    assert "continue" not in sync.sync_connection(new_id).message  # once


def test_the_balance_history_table_with_and_without_a_period(engine, reconnected):
    """Every day of every account when no period is given (PostgreSQL cannot type a parameter only compared with
    NULL, so an unset bound is left out, not bound); a period and accounts narrow it."""
    with engine.connect() as conn:
        everything = accounts_store.balance_history_table(conn)
        period = accounts_store.balance_history_table(conn, start=TODAY - timedelta(days=30), end=TODAY,
                                                      account_ids=["fake:chk"])
    assert len(everything) == len(table(engine, "SELECT day FROM balance_history"))
    assert set(period["account_id"]) == {"fake:chk"}
    assert min(period["day"]) >= TODAY - timedelta(days=30) and max(period["day"]) <= TODAY
    assert len(period) == len(table(engine, f"SELECT day FROM balance_history WHERE account_id = 'fake:chk' "
                                            f"AND day >= '{TODAY - timedelta(days=30)}' AND day <= '{TODAY}'"))
