"""The database going away in the middle of a sync (issue 14): PostgreSQL is stopped while the sync fetches, or
inside the apply's transaction, then started again. The sync fails with a reason a person can act on, nothing of
it is half-applied, and the next sync completes with the store equal to the emulator's ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import finance.store.ingest as ingest
from finance.store.db import STORE_GONE, create_engine
from finance.sync import SyncEngine
from tests.conftest import connect, upgraded
from tests.postgres import PostgresServer
from tests.test_sync import _store_matches_provider, snapshot


@pytest.fixture
def server(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's server, running again after the test whatever happened."""
    yield postgres_server
    if not postgres_server.running():
        postgres_server.start()


@pytest.mark.parametrize("moment", ["fetching", "applying"])
def test_the_database_going_away_mid_sync_fails_readably_and_the_next_sync_completes(server, provider, emulator,
                                                                                     monkeypatch, moment):
    engine = create_engine(upgraded(server()))
    try:
        sync = SyncEngine(engine, {"pluggy": provider}, now=emulator.clock.now)
        connection_id = connect(provider, sync)
        assert sync.sync_connection(connection_id).outcome == "success"
        emulator.advance(days=3)  # new purchases, pending ones posted: a sync with work to do
        before = snapshot(engine)

        if moment == "fetching":
            fetch = provider.fetch_transactions

            def fetch_then_stop(*args: Any, **kwargs: Any) -> Any:
                changes = fetch(*args, **kwargs)
                server.stop()
                return changes

            monkeypatch.setattr(provider, "fetch_transactions", fetch_then_stop)
        else:
            rebuild = ingest._rebuild_balance_history

            def rebuild_then_stop(*args: Any, **kwargs: Any) -> None:
                rebuild(*args, **kwargs)  # rows merged, history rebuilt, nothing committed
                server.stop()

            monkeypatch.setattr(ingest, "_rebuild_balance_history", rebuild_then_stop)

        failed = sync.sync_connection(connection_id)
        assert (failed.outcome, failed.error_code) == ("failed", "STORE_GONE"), failed.message
        assert failed.message.startswith(STORE_GONE)
        assert "PostgreSQL is running" in failed.message and "postgresql+psycopg" not in failed.message

        monkeypatch.undo()
        server.start()
        assert snapshot(engine) == before  # nothing of the failed sync was saved
        again = sync.sync_connection(connection_id)
        assert again.outcome == "success", again.message
        assert again.counts.added > 0
        assert _store_matches_provider(provider, engine)
        with engine.connect() as conn:
            outcomes = conn.execute(sa.text("SELECT outcome, count(*) FROM sync_runs GROUP BY 1 ORDER BY 1")).all()
        assert dict(outcomes) == {"interrupted": 1, "success": 2}  # the unrecorded failure closed, none running
    finally:
        engine.dispose()
