"""Plaid through the same sync engine and store: side by side with Pluggy, churn, encryption at rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finance.config import load_settings
from finance.model import ConnectionStatus
from finance.providers import registry
from finance.services import Services, open_services
from finance.store import migrate
from tests.test_plaid_portfolio_sync import plaid_stack

pytestmark = pytest.mark.engines


@pytest.fixture
def services(offline: Path) -> Iterator[Services]:
    svc = open_services(load_settings())
    yield svc
    svc.engine.dispose()


def connect_plaid(svc: Services, username: str = "user_good", password: str = "pass_good") -> str:
    provider = svc.providers["plaid"]
    state = provider.create_connection("ins_109508", {"username": username, "password": password})
    state = provider.wait_until_settled(state.external_id)
    assert state.status is ConnectionStatus.ACTIVE
    return svc.sync.register(state)


def test_plaid_and_pluggy_side_by_side_with_the_same_sign_rules(services: Services, offline: Path):
    plaid_id = connect_plaid(services)
    pluggy = services.providers["pluggy"]
    state = pluggy.wait_until_settled(
        pluggy.create_connection("0", {"user": "user-ok", "password": "password-ok"}).external_id)
    pluggy_id = services.sync.register(state)

    results = {r.connection_id: r for r in services.sync.sync_all()}
    assert results[plaid_id].outcome == results[pluggy_id].outcome == "success"
    again = services.sync.sync_all()
    assert all((r.counts.added, r.counts.modified, r.counts.removed) == (0, 0, 0) for r in again)

    with services.engine.connect() as conn:
        cards = conn.execute(sa.text("""
            SELECT a.provider, SUM(CASE WHEN t.amount < 0 THEN 1 ELSE 0 END) AS outflows, COUNT(*) AS n
            FROM transactions t JOIN accounts a ON a.id = t.account_id
            WHERE a.type = 'credit_card' AND COALESCE(t.user_category, t.category) NOT LIKE 'transfer%'
            GROUP BY a.provider
        """)).all()
        payments = conn.execute(sa.text("""
            SELECT a.provider, a.type, MIN(t.amount) AS low, MAX(t.amount) AS high FROM transactions t
            JOIN accounts a ON a.id = t.account_id
            WHERE t.category = 'transfer.credit_card_payment' GROUP BY a.provider, a.type
        """)).all()
        currencies = dict(conn.execute(sa.text("SELECT provider, MIN(currency) FROM accounts GROUP BY 1")).all())
    # Card purchases are spending (negative) on both providers; payments move money onto the card (positive).
    assert {c.provider for c in cards} == {"plaid", "pluggy"}
    assert all(c.outflows / c.n > 0.9 for c in cards)
    on_card = {p.provider: p for p in payments if p.type == "credit_card"}
    assert on_card["plaid"].low > 0 and on_card["pluggy"].low > 0
    assert currencies == {"plaid": "USD", "pluggy": "BRL"}


def test_access_token_is_never_stored_in_plaintext(services: Services, offline: Path):
    plaid_id = connect_plaid(services)
    assert services.sync.sync_connection(plaid_id).outcome == "success"
    token = services.secrets.get("plaid", plaid_id.split(":", 1)[1])
    assert token.startswith("access-sandbox-")
    with services.engine.connect() as conn:
        sealed = conn.execute(sa.text("SELECT encrypted_secret FROM connections WHERE id = :id"),
                              {"id": plaid_id}).scalar()
    with migrate.without_household(services.engine).connect() as conn:  # CHECKPOINT is the tables' owner's
        conn.exec_driver_sql("CHECKPOINT")
    assert sealed and token not in sealed
    for path in offline.glob("finance.duckdb*"):
        assert token.encode() not in path.read_bytes()


def test_reset_login_needs_reconnect_and_stops_nothing_else(services: Services):
    plaid_id = connect_plaid(services)
    token = services.secrets.get("plaid", plaid_id.split(":", 1)[1])
    services.providers["plaid"].client.sandbox_reset_login(token)

    result = services.sync.sync_connection(plaid_id)

    assert result.outcome == "failed"
    with services.engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM connections WHERE id = :id"), {"id": plaid_id}).scalar()
    assert status == "needs_reconnect"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.integers(min_value=0, max_value=5), st.booleans()), min_size=1, max_size=5))
@pytest.mark.slow
def test_dynamic_pending_churn_loses_and_doubles_nothing(tmp_path_factory, steps):
    with plaid_stack(tmp_path_factory.mktemp("plaid"), 5) as stack:
        emulator, client, provider, sync, engine = stack.emulator, stack.client, stack.provider, stack.sync, \
            stack.engine
        state = provider.create_connection("ins_109508", {"username": "user_transactions_dynamic",
                                                          "password": "pass_good"})
        token = state.secret or ""
        connection_id = sync.register(state)
        assert sync.sync_connection(connection_id).outcome == "success"
        for days, do_sync in steps:
            emulator.advance(days=days)
            if do_sync:
                assert sync.sync_connection(connection_id).outcome == "success"
        assert sync.sync_connection(connection_id).outcome == "success"

        with engine.connect() as conn:
            stored = {r.external_id for r in conn.execute(sa.text("SELECT external_id FROM transactions"))}
        fresh: set[str] = set()
        cursor = None
        while True:
            page = client.transactions_sync(token, cursor)
            fresh |= {t["transaction_id"] for t in page["added"]}
            fresh -= {t["transaction_id"] for t in page["removed"]}
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        assert stored == fresh
        idle = sync.sync_connection(connection_id)
        assert (idle.counts.added, idle.counts.modified, idle.counts.removed) == (0, 0, 0)


def test_mutation_during_pagination_restarts_and_applies_once(services: Services, offline: Path, monkeypatch):
    from finance.providers.plaid.sandbox import transactions as plaid_transactions

    monkeypatch.setattr(plaid_transactions, "SYNC_PAGE_SIZE_CAP", 50)  # several pages per walk
    plaid_id = connect_plaid(services)
    emulator = registry.emulator("plaid", load_settings())
    emulator.faults.add("mutation_during_pagination", path="/transactions/sync", after=1, times=1)

    result = services.sync.sync_connection(plaid_id)

    assert result.outcome == "success", result.message
    assert emulator.faults.active()[0].seen >= 2, "the second page failed and the walk restarted"
    with services.engine.connect() as conn:
        rows, distinct = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM transactions")).one()
    assert rows == distinct == result.counts.added > 0
    again = services.sync.sync_connection(plaid_id)
    assert (again.counts.added, again.counts.modified, again.counts.removed) == (0, 0, 0)


def test_loans_without_transactions_have_history_so_net_worth_has_no_cliff(services: Services):
    """A mortgage or student loan has a balance but no transactions: its history reaches back as far as its
    connection's, so net worth over time does not plunge on the day the bank was connected."""
    connect_plaid(services)
    assert services.sync.sync_all()[0].outcome == "success"
    with services.engine.connect() as conn:
        spans = {r.type: (r.first, r.days) for r in conn.execute(sa.text(
            "SELECT a.type, MIN(h.day) AS first, COUNT(*) AS days FROM balance_history h "
            "JOIN accounts a ON a.id = h.account_id GROUP BY a.type"))}
        start = conn.execute(sa.text("SELECT MIN(booked_date) FROM transactions")).scalar_one()
    assert spans["loan"][0] == start and spans["loan"][1] > 300  # mortgage and student loan: a year of history
    worth = services.reports.net_worth_by_day(start, services.reports.data_as_of().date())
    usd = worth[worth["currency"] == "USD"]["net_worth"].astype(float).tolist()
    assert abs(usd[-1] - usd[-2]) < 10_000  # the loans (over $350,000 owed) were there the day before too
