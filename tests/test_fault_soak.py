"""A long random-fault run: hundreds of syncs of both providers while their banks change (new, modified, removed,
pending→posted) and their APIs fail at random (429, 5xx, timeouts, malformed pages), then the store must equal what
the emulators list — nothing lost, duplicated or resurrected (issue 12); on DuckDB and on PostgreSQL (issue 14).

The full run (100 rounds, 200 syncs per engine) is marked slow: `pytest -m "not slow"` runs a short one instead.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from finance.crypto import SecretBox
from finance.providers.plaid.client import PlaidClient, transactions_sync_all
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.mapping import local_date
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from finance.store.db import create_engine, init_schema
from finance.store.secrets import SecretStore
from finance.sync import SyncEngine
from tests.conftest import START, connect

pytestmark = pytest.mark.engines
FAULT_KINDS = ("server_error", "unavailable", "timeout", "malformed_json", "rate_limit")
PATHS = {"pluggy": ("/items", "/accounts", "/v2/transactions"),
         "plaid": ("/item/get", "/accounts/get", "/transactions/sync")}


@pytest.fixture
def banks(database_url: str) -> Iterator[tuple[SyncEngine, dict[str, object], dict[str, str], sa.Engine, SecretStore]]:
    pluggy_emulator = PluggyEmulator(clock=Clock(start=START), seed=23)
    plaid_emulator = PlaidEmulator(clock=Clock(start=START), seed=29)
    engine = create_engine(database_url)
    init_schema(engine)
    secrets = SecretStore(engine, SecretBox(Fernet.generate_key()))
    pluggy_client = PluggyClient("id", "secret", transport=pluggy_emulator.transport(), sleep=lambda _s: None,
                                 now=pluggy_emulator.clock.now)
    plaid_client = PlaidClient("id", "secret", transport=plaid_emulator.transport(), sleep=lambda _s: None,
                               now=plaid_emulator.clock.now)
    pluggy = PluggyProvider(pluggy_client, now=pluggy_emulator.clock.now)
    plaid = PlaidProvider(plaid_client, lambda item_id: secrets.get("plaid", item_id), now=plaid_emulator.clock.now)
    sync = SyncEngine(engine, {"pluggy": pluggy, "plaid": plaid}, now=pluggy_emulator.clock.now, secrets=secrets)
    ids = {"pluggy": connect(pluggy, sync)}
    state = plaid.create_connection("ins_109508", {"username": "user_transactions_dynamic", "password": "x"})
    ids["plaid"] = sync.register(state)
    try:
        yield sync, {"pluggy": pluggy_emulator, "plaid": plaid_emulator}, ids, engine, secrets
    finally:
        pluggy_client.close()
        plaid_client.close()
        engine.dispose()


def pluggy_matches(sync: SyncEngine, engine: sa.Engine, connection_id: str) -> bool:
    """The store holds exactly Pluggy's rows of the connection's accounts inside the synced window."""
    provider = sync.providers["pluggy"]
    assert isinstance(provider, PluggyProvider)
    with engine.connect() as conn:
        accounts = [r.external_id for r in conn.execute(
            # the accounts Pluggy lists transactions for (investments and loans come from their own endpoints)
            sa.text("SELECT external_id FROM accounts WHERE connection_id = :c AND type NOT IN ('investment', 'loan')"),
            {"c": connection_id})]
        ids = [r.id for r in conn.execute(sa.text("SELECT id FROM transactions WHERE connection_id = :c"),
                                          {"c": connection_id})]
        first = conn.execute(sa.text("SELECT MIN(window_start) FROM sync_runs WHERE outcome = 'success' "
                                     "AND connection_id = :c"), {"c": connection_id}).scalar()
    expected = {f"pluggy:{raw.id}" for account in accounts
                for raw in provider.client.transactions(account, date_from=first) if local_date(raw.date) >= first}
    return len(ids) == len(set(ids)) and set(ids) == expected


def plaid_matches(sync: SyncEngine, secrets: SecretStore, engine: sa.Engine, connection_id: str) -> bool:
    """The store holds exactly the rows a fresh walk of Plaid's /transactions/sync lists for the Item."""
    provider = sync.providers["plaid"]
    assert isinstance(provider, PlaidProvider)
    item_id = connection_id.removeprefix("plaid:")
    walk = transactions_sync_all(provider.client, secrets.get("plaid", item_id) or "", None)
    expected = {f"plaid:{t['transaction_id']}" for t in [*walk.added, *walk.modified]} - {
        f"plaid:{t}" for t in walk.removed}
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.text("SELECT id FROM transactions WHERE connection_id = :c"),
                                          {"c": connection_id})]
    return len(ids) == len(set(ids)) and set(ids) == expected


@pytest.mark.parametrize("rounds", [pytest.param(100, marks=pytest.mark.slow), 12])  # each round syncs both banks
def test_hundreds_of_syncs_under_random_faults_end_equal_to_the_banks(banks, rounds, db_kind):
    sync, emulators, ids, engine, secrets = banks
    rng = random.Random(20261207)
    outcomes: Counter[str] = Counter()
    for _ in range(rounds):
        days = rng.choice((0, 0, 0.5, 1, 2))
        for emulator in emulators.values():
            emulator.advance(days=days)  # type: ignore[attr-defined]
        for name, connection_id in ids.items():
            faults = emulators[name].faults  # type: ignore[attr-defined]
            if rng.random() < 0.5:
                faults.add(rng.choice(FAULT_KINDS), path=rng.choice(PATHS[name]), after=rng.randint(0, 3),
                           times=rng.choice((1, -1, -1)))
            result = sync.sync_connection(connection_id, trigger="schedule")
            faults.clear()
            outcomes[f"{name} {result.outcome}"] += 1
            assert result.outcome in ("success", "failed"), result
            assert result.message
    for connection_id in ids.values():
        assert sync.sync_connection(connection_id).outcome == "success"
    print(f"\nfault soak on {db_kind}: {sum(outcomes.values())} syncs tried — {dict(sorted(outcomes.items()))}; "
          "every one ended success or failed with a message, and the store equals the banks")
    assert outcomes["pluggy success"] and outcomes["pluggy failed"] and outcomes["plaid success"]
    assert pluggy_matches(sync, engine, ids["pluggy"])
    assert plaid_matches(sync, secrets, engine, ids["plaid"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sync_runs WHERE outcome = 'running'")).scalar() == 0
