"""Plaid's investments and liabilities through the sync engine and the store, against the offline emulator: what a
user_good household shows, a bank without them, a failing resource, and how many requests a sync costs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from finance.crypto import SecretBox
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.webhook import PORTFOLIO, WebhookEvent
from finance.sandbox.common import Clock
from finance.store.db import create_engine, init_schema
from finance.store.secrets import SecretStore
from finance.sync import SyncEngine
from tests.conftest import START

D = Decimal


@dataclass
class Stack:
    """A Plaid emulator, our client and provider on its transport, and a sync engine on a fresh store."""

    emulator: PlaidEmulator
    client: PlaidClient
    provider: PlaidProvider
    sync: SyncEngine
    engine: sa.Engine

    def connect(self, username: str = "user_good", password: str = "pass_good",
                institution: str = "ins_109508") -> str:
        state = self.provider.create_connection(institution, {"username": username, "password": password})
        return self.sync.register(state)

    def rows(self, sql: str, **params: object) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))


@contextmanager
def plaid_stack(folder: Path, seed: int) -> Iterator[Stack]:
    emulator = PlaidEmulator(clock=Clock(start=START), seed=seed)
    engine = create_engine(f"duckdb:///{folder / 'store.duckdb'}")
    init_schema(engine)
    secrets = SecretStore(engine, SecretBox(Fernet.generate_key()))
    client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None,
                         now=emulator.clock.now)
    provider = PlaidProvider(client, lambda item_id: secrets.get("plaid", item_id), now=emulator.clock.now)
    try:
        yield Stack(emulator, client, provider, SyncEngine(engine, {"plaid": provider}, now=emulator.clock.now,
                                                           secrets=secrets), engine)
    finally:
        client.close()
        engine.dispose()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with plaid_stack(tmp_path, 11) as built:
        yield built


def test_the_household_shows_its_investments_and_loans(stack: Stack) -> None:
    cid = stack.connect()
    result = stack.sync.sync_connection(cid)
    assert result.outcome == "success" and "not updated" not in result.message, result.message
    accounts = {r.subtype: r for r in stack.rows("SELECT id, subtype, type, current_balance FROM accounts")}
    held = stack.rows("SELECT account_id, SUM(value) AS value, COUNT(*) AS n FROM holdings GROUP BY 1")
    assert {r.account_id for r in held} == {accounts[s].id for s in ("ira", "401k", "brokerage")}
    for row in held:  # the positions add up to the account's balance
        balance = next(a.current_balance for a in accounts.values() if a.id == row.account_id)
        assert abs(D(row.value) - D(balance)) <= D("0.05")
    assert stack.rows("SELECT COUNT(*) AS n FROM holdings WHERE cost_basis IS NULL")[0].n == 0
    kinds = {r.account_id: r for r in stack.rows("SELECT * FROM liabilities")}
    assert {kinds[accounts[s].id].kind for s in ("credit card", "student", "mortgage", "installment")} == {
        "credit", "student", "mortgage", "personal"}
    assert accounts["installment"].type == "loan" and D(accounts["installment"].current_balance) < 0
    card = kinds[accounts["credit card"].id]
    assert D(card.interest_rate) == D("12.5") and card.next_payment_date is not None
    assert all(D(r.balance) < 0 for r in kinds.values())  # owed, in the accounts' sign
    trades = stack.rows("SELECT type, COUNT(*) AS n, SUM(amount) AS total FROM investment_transactions GROUP BY 1")
    by_type = {r.type: r for r in trades}
    assert {"buy", "cash", "dividend", "fee"} <= set(by_type)
    assert D(by_type["buy"].total) < 0 < D(by_type["dividend"].total)  # a buy spends cash; a dividend brings it
    assert {(r.resource, r.ok) for r in stack.rows("SELECT resource, ok FROM portfolio_status")} >= {
        ("investments", True), ("investment_transactions", True), ("liabilities", True)}
    again = stack.sync.sync_connection(cid)
    assert again.outcome == "success" and (again.counts.added, again.counts.removed) == (0, 0)
    assert stack.rows("SELECT COUNT(*) AS n FROM investment_transactions")[0].n == sum(r.n for r in trades)


def test_a_household_without_investments_sends_no_investment_request(stack: Stack) -> None:
    cid = stack.connect("user_transactions_dynamic", "any")
    stack.emulator.request_log.clear()
    assert stack.sync.sync_connection(cid).outcome == "success"
    paths = [path for _, path in stack.emulator.request_log]
    assert "/liabilities/get" in paths and not any(p.startswith("/investments/") for p in paths)
    assert [r.kind for r in stack.rows("SELECT kind FROM liabilities")] == ["credit"]


def test_a_bank_without_the_products_is_empty_not_failing(stack: Stack) -> None:
    cid = stack.connect(institution="ins_109512")  # Houndstooth Bank: no investments, no liabilities
    result = stack.sync.sync_connection(cid)
    assert result.outcome == "success" and "not updated" not in result.message, result.message
    assert stack.rows("SELECT COUNT(*) AS n FROM holdings")[0].n == 0
    assert stack.rows("SELECT COUNT(*) AS n FROM liabilities")[0].n == 0
    status = {r.resource: r.ok for r in stack.rows("SELECT resource, ok FROM portfolio_status")}
    assert status["investments"] and status["liabilities"] and status["investment_transactions"]
    assert ("POST", "/investments/holdings/get") in stack.emulator.request_log  # asked, and told "not here"


def test_a_failing_resource_is_recorded_and_the_rest_stored(stack: Stack) -> None:
    cid = stack.connect()
    stack.emulator.faults.add("server_error", path="/liabilities/get", times=10)
    result = stack.sync.sync_connection(cid)
    assert result.outcome == "success" and stack.rows("SELECT COUNT(*) AS n FROM transactions")[0].n > 0
    status = {r.resource: r for r in stack.rows("SELECT * FROM portfolio_status")}
    assert not status["liabilities"].ok and status["liabilities"].error_code == "INTERNAL_SERVER_ERROR"
    assert status["investments"].ok and stack.rows("SELECT COUNT(*) AS n FROM holdings")[0].n > 0
    stack.emulator.faults.clear()
    stack.emulator.advance(hours=1)  # the next read of the portfolio
    assert stack.sync.sync_connection(cid).outcome == "success"
    assert stack.rows("SELECT COUNT(*) AS n FROM liabilities")[0].n == 4


def test_a_sync_costs_three_more_requests_at_most(stack: Stack) -> None:
    cid = stack.connect()
    stack.sync.sync_connection(cid)
    stack.emulator.advance(days=1)
    stack.emulator.request_log.clear()
    assert stack.sync.sync_connection(cid).outcome == "success"
    portfolio = [p for _, p in stack.emulator.request_log if p.startswith(("/investments/", "/liabilities/"))]
    assert sorted(portfolio) == ["/investments/holdings/get", "/investments/transactions/get", "/liabilities/get"]


def test_a_second_item_of_the_same_household_continues_the_first(stack: Stack) -> None:
    first = stack.provider.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
    second = stack.provider.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
    old = stack.provider.fetch_accounts(first.external_id)
    new = stack.provider.fetch_accounts(second.external_id)
    pairs = stack.provider.match_accounts(old, new)
    by_id = {a.external_id: a for a in old}
    assert len(pairs) == len(new) == len(old)  # every account found again, by mask and kind
    assert all(by_id[old_id].mask == next(a.mask for a in new if a.external_id == new_id)
               for new_id, old_id in pairs.items())


def _portfolio_requests(stack: Stack) -> list[str]:
    return sorted(p for _, p in stack.emulator.request_log if p.startswith(("/investments/", "/liabilities/")))


def test_a_sync_within_the_hour_of_the_last_portfolio_read_sends_no_portfolio_request(stack: Stack) -> None:
    cid = stack.connect()
    assert stack.sync.sync_connection(cid).outcome == "success"
    holdings = stack.rows("SELECT * FROM holdings ORDER BY 1, 2")
    stack.emulator.advance(hours=0.9)
    stack.emulator.request_log.clear()
    result = stack.sync.sync_connection(cid)
    assert result.outcome == "success" and "not updated" not in result.message.lower()
    assert _portfolio_requests(stack) == [] and "/transactions/sync" in {p for _, p in stack.emulator.request_log}
    assert stack.rows("SELECT * FROM holdings ORDER BY 1, 2") == holdings  # what was read stays
    investment = stack.rows("SELECT id FROM accounts WHERE type = 'investment'")[0].id
    assert stack.rows("SELECT COUNT(*) AS n FROM balance_history WHERE account_id = :a AND source = 'reconstructed'",
                      a=investment)[0].n > 1  # its history is still rebuilt, not left flat by the transactions' apply


def test_a_sync_an_hour_after_the_last_portfolio_read_reads_it_again(stack: Stack) -> None:
    cid = stack.connect()
    stack.sync.sync_connection(cid)
    stack.emulator.advance(hours=1)
    stack.emulator.request_log.clear()
    assert stack.sync.sync_connection(cid).outcome == "success"
    assert _portfolio_requests(stack) == [
        "/investments/holdings/get", "/investments/transactions/get", "/liabilities/get"]


@pytest.mark.parametrize("kind", ["HOLDINGS", "INVESTMENTS_TRANSACTIONS", "LIABILITIES"])
def test_a_webhook_saying_the_portfolio_changed_reads_it_within_the_hour(stack: Stack, kind: str) -> None:
    cid = stack.connect()
    stack.sync.sync_connection(cid)
    stack.emulator.advance(hours=0.1)
    stack.emulator.request_log.clear()
    event = WebhookEvent(f"plaid:{kind}", "plaid", f"{kind}/DEFAULT_UPDATE", cid.partition(":")[2],
                         {"webhook_type": kind, "webhook_code": "DEFAULT_UPDATE"}, START)
    plan = stack.provider.plan_webhook(event)
    assert plan.sync and plan.refetch == (PORTFOLIO,)
    assert stack.sync.sync_connection(cid, trigger="webhook", refetch=plan.refetch).outcome == "success"
    assert _portfolio_requests(stack) == [
        "/investments/holdings/get", "/investments/transactions/get", "/liabilities/get"]
    assert "/transactions/sync" in {p for _, p in stack.emulator.request_log}  # and every transaction, as before
