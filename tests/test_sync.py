"""The sync engine against the Pluggy emulator: idempotence, atomicity under faults, merges, user edits,
concurrent syncs with serialized applies, and streaming through a staging file."""

from __future__ import annotations

import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import finance.providers.pluggy.sandbox.transactions as pluggy_emulator_transactions
import finance.sync as sync_module
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.mapping import local_date
from finance.providers.pluggy.provider import FIRST_SYNC_DAYS, PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from finance.store.db import create_engine, init_schema
from finance.store.ingest import STORE_MEMORY_LIMIT_MB
from finance.sync import SyncEngine, _connection_lock
from tests.conftest import START, connect

pytestmark = pytest.mark.engines

DATA_TABLES = ("accounts", "transactions", "balance_history")


def snapshot(engine: sa.Engine, *, ignore: tuple[str, ...] = ()) -> dict[str, list[tuple[object, ...]]]:
    """Every data row of the store (minus the `ignore` columns), for before/after comparisons."""
    out: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for table in (*DATA_TABLES, "connections"):
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            keep = [i for i, name in enumerate(result.keys()) if name not in ignore]
            out[table] = sorted((tuple(row[i] for i in keep) for row in result), key=repr)
    return out


def live_transactions(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM transactions WHERE deleted_at IS NULL")).all()


def test_first_sync_stores_accounts_transactions_and_history(provider, sync, engine):
    connection_id = connect(provider, sync)
    result = sync.sync_connection(connection_id)

    assert result.outcome == "success", result.message
    assert result.counts.added > 500  # 12 months of a checking account and a card
    assert result.counts.modified == result.counts.removed == result.counts.merged == 0
    with engine.connect() as conn:
        types = sorted(r.type for r in conn.execute(sa.text("SELECT type FROM accounts")))
        assert types == ["checking", "credit_card", "investment", "loan"]  # positions and a financing too
        assert conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar() == result.counts.added
        days = conn.execute(sa.text("SELECT COUNT(DISTINCT day) FROM balance_history")).scalar()
        assert days >= 300
        run = conn.execute(sa.text("SELECT * FROM sync_runs")).one()
        assert (run.outcome, run.added, run.accounts) == ("success", result.counts.added, 2)
        assert run.message.startswith("Synced 2 accounts")
        connection = conn.execute(sa.text("SELECT * FROM connections")).one()
        assert connection.status == "active" and connection.sync_cursor and connection.last_success_at


def test_second_sync_changes_nothing(provider, sync, engine):
    connection_id = connect(provider, sync)
    sync.sync_connection(connection_id)
    before_strict = snapshot(engine, ignore=("last_seen_at", "last_success_at", "last_attempt_at", "updated_at"))

    again = sync.sync_connection(connection_id)

    assert again.outcome == "success"
    assert (again.counts.added, again.counts.modified, again.counts.removed, again.counts.merged) == (0, 0, 0, 0)
    assert again.message.startswith("Up to date")
    seen_times = ("last_seen_at", "last_success_at", "last_attempt_at", "updated_at")
    assert snapshot(engine, ignore=seen_times) == before_strict


def test_clock_advance_brings_new_rows_and_merges_pending_keeping_user_edits(provider, sync, engine, emulator):
    connection_id = connect(provider, sync)
    sync.sync_connection(connection_id)
    with engine.begin() as conn:
        pending = conn.execute(sa.text(
            "SELECT id FROM transactions WHERE status = 'pending' ORDER BY booked_date, id")).all()
        assert pending, "the sandbox ledger always has recent pending card purchases"
        conn.execute(sa.text("UPDATE transactions SET user_category = 'travel', note = 'team dinner' "
                             "WHERE id IN (SELECT id FROM transactions WHERE status = 'pending')"))

    emulator.advance(days=6)
    result = sync.sync_connection(connection_id)

    assert result.outcome == "success"
    assert result.counts.added > 0 and result.counts.merged >= 1
    with engine.connect() as conn:
        still = conn.execute(sa.text("SELECT COUNT(*) FROM transactions WHERE id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": [p.id for p in pending]}).scalar()
        merged = conn.execute(sa.text(
            "SELECT * FROM transactions WHERE pending_id IS NOT NULL AND status = 'posted'")).all()
    assert still == len(pending) - result.counts.merged - result.counts.removed
    assert len(merged) == result.counts.merged
    assert all(m.user_category == "travel" and m.note == "team dinner" for m in merged)
    assert {m.pending_id for m in merged} <= {p.id for p in pending}

    quiet = sync.sync_connection(connection_id)
    assert (quiet.counts.added, quiet.counts.modified, quiet.counts.removed, quiet.counts.merged) == (0, 0, 0, 0)


def test_identical_real_purchases_stay_two_rows(provider, sync, engine):
    sync.sync_connection(connect(provider, sync))
    with engine.connect() as conn:
        twins = conn.execute(sa.text("""
            SELECT account_id, booked_date, amount, description, COUNT(*) AS n
            FROM transactions GROUP BY account_id, booked_date, amount, description HAVING COUNT(*) > 1
        """)).all()
    assert twins, "the sandbox ledger contains identical legitimate purchases"
    assert all(t.n == 2 for t in twins)


def test_user_deleted_row_is_not_resurrected_and_edits_survive(provider, sync, engine, emulator):
    connection_id = connect(provider, sync)
    sync.sync_connection(connection_id)
    with engine.begin() as conn:
        victim, edited = conn.execute(sa.text(
            "SELECT id FROM transactions WHERE status = 'posted' ORDER BY booked_date DESC, id LIMIT 2")).all()
        conn.execute(sa.text("UPDATE transactions SET deleted_at = now() WHERE id = :id"), {"id": victim.id})
        conn.execute(sa.text("UPDATE transactions SET user_category = 'health', note = 'checked' WHERE id = :id"),
                     {"id": edited.id})
    emulator.advance(days=2)
    sync.sync_connection(connection_id)
    sync.sync_connection(connection_id)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.text("SELECT * FROM transactions WHERE id IN (:a, :b)"),
                                              {"a": victim.id, "b": edited.id})}
    assert rows[victim.id].deleted_at is not None
    assert (rows[edited.id].user_category, rows[edited.id].note) == ("health", "checked")
    assert victim.id not in {r.id for r in live_transactions(engine)}


def test_one_failing_connection_does_not_stop_the_others(provider, sync, engine, emulator):
    good = connect(provider, sync)
    bad = connect(provider, sync)
    emulator.set_item_status(bad.split(":", 1)[1], "LOGIN_ERROR", "INVALID_CREDENTIALS",
                             error_code="INVALID_CREDENTIALS")

    results = {r.connection_id: r for r in sync.sync_all()}

    assert results[good].outcome == "success"
    assert results[bad].outcome == "failed"
    assert "password" in results[bad].message.lower()
    with engine.connect() as conn:
        status = dict(conn.execute(sa.text("SELECT id, status FROM connections")).all())
    assert status == {good: "active", bad: "needs_reconnect"}


def test_concurrent_sync_of_the_same_connection_is_single_flight(provider, sync):
    connection_id = connect(provider, sync)
    lock = _connection_lock(f"{sync.engine.url}|{connection_id}")
    with lock:
        skipped = sync.sync_connection(connection_id)
    assert skipped.outcome == "skipped"
    assert sync.sync_connection(connection_id).outcome == "success"


# Where a fault can strike in one sync: GET /items once (its state also dates the accounts), /accounts once,
# /v2/transactions on every page of four cursor walks (so `after` lands in the middle of a walk).
REQUESTS_PER_SYNC = {"/items": 1, "/accounts": 1, "/v2/transactions": 4}
FAULTS = st.tuples(
    st.sampled_from(["server_error", "unavailable", "timeout", "malformed_json", "rate_limit"]),
    st.sampled_from(sorted(REQUESTS_PER_SYNC)),
).flatmap(lambda kp: st.tuples(st.just(kp[0]), st.just(kp[1]),
                               st.integers(min_value=0, max_value=REQUESTS_PER_SYNC[kp[1]] - 1)))


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pluggy_emulator_transactions, "V2_PAGE_SIZE", 40)  # several pages per walk


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fault=FAULTS)
def test_a_failed_sync_changes_no_data_and_says_why(small_pages, provider, sync, engine, emulator, fault):
    kind, path, after = fault
    connection_id = _connected_once(provider, sync, engine, emulator)
    before = snapshot(engine, ignore=("last_attempt_at",))
    emulator.faults.add(kind, path=path, after=after, times=-1)
    try:
        result = sync.sync_connection(connection_id)
    finally:
        emulator.faults.clear()

    assert result.outcome == "failed"
    assert result.error_code and result.message
    assert "secret" not in result.message.lower()
    assert snapshot(engine, ignore=("last_attempt_at",)) == before
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM sync_runs WHERE id = :id"), {"id": result.run_id}).one()
    assert (run.outcome, run.error_code, run.message) == ("failed", result.error_code, result.message)


def _connected_once(provider, sync, engine, emulator) -> str:
    """One connected, synced store per test run, with changes waiting at the provider."""
    with engine.connect() as conn:
        existing = conn.execute(sa.text("SELECT id FROM connections")).scalar()
    if existing:
        return existing
    connection_id = connect(provider, sync)
    assert sync.sync_connection(connection_id).outcome == "success"
    emulator.advance(days=5)
    return connection_id


def test_after_a_failure_the_next_sync_applies_everything(small_pages, provider, sync, engine, emulator):
    connection_id = connect(provider, sync)
    sync.sync_connection(connection_id)
    emulator.advance(days=5)
    emulator.faults.add("server_error", path="/v2/transactions", after=2, times=-1)
    assert sync.sync_connection(connection_id).outcome == "failed"
    emulator.faults.clear()
    recovered = sync.sync_connection(connection_id)
    assert recovered.outcome == "success" and recovered.counts.added > 0
    assert _store_matches_provider(provider, engine)


def _store_matches_provider(provider: PluggyProvider, engine: sa.Engine) -> bool:
    """The store holds exactly the provider's rows inside the synced window: none lost, none doubled."""
    with engine.connect() as conn:
        accounts = conn.execute(sa.text(  # investment and loan accounts have no transactions at Pluggy
            "SELECT external_id, type FROM accounts WHERE type NOT IN ('investment', 'loan')")).all()
        ids = [r.id for r in conn.execute(sa.text("SELECT id FROM transactions"))]
    stored = set(ids)
    if len(stored) != len(ids):
        return False  # no key constraint: the merge alone keeps ids unique
    with engine.connect() as conn:
        first_window = conn.execute(sa.text("SELECT MIN(window_start) FROM sync_runs WHERE outcome = 'success'")
                                    ).scalar()
    expected: set[str] = set()
    for account in accounts:
        for raw in provider.client.transactions(account.external_id, date_from=first_window):
            if local_date(raw.date) >= first_window:  # dateFrom is UTC; the window starts on a São Paulo day
                expected.add(f"pluggy:{raw.id}")
    return stored == expected


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.integers(min_value=0, max_value=6), st.booleans()), min_size=1, max_size=5))
@pytest.mark.slow
def test_any_schedule_of_syncs_loses_and_doubles_nothing(tmp_path_factory, steps):
    emulator = PluggyEmulator(clock=Clock(start=START), seed=11)
    client = PluggyClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None,
                          now=emulator.clock.now)
    provider = PluggyProvider(client, now=emulator.clock.now)
    path: Path = tmp_path_factory.mktemp("schedule") / "store.duckdb"
    engine = create_engine(f"duckdb:///{path}")
    init_schema(engine)
    try:
        sync = SyncEngine(engine, {"pluggy": provider}, now=emulator.clock.now)
        connection_id = connect(provider, sync)
        assert sync.sync_connection(connection_id).outcome == "success"
        for days, do_sync in steps:
            emulator.advance(days=days)
            if do_sync:
                assert sync.sync_connection(connection_id).outcome == "success"
        assert sync.sync_connection(connection_id).outcome == "success"
        assert _store_matches_provider(provider, engine)
        idle = sync.sync_connection(connection_id)
        assert (idle.counts.added, idle.counts.modified, idle.counts.removed) == (0, 0, 0)
    finally:
        engine.dispose()
        client.close()


def test_first_sync_window_is_twelve_months(provider, sync, engine, emulator):
    sync.sync_connection(connect(provider, sync))
    with engine.connect() as conn:
        oldest = conn.execute(sa.text("SELECT MIN(booked_date) FROM transactions")).scalar()
        window = conn.execute(sa.text("SELECT window_start FROM sync_runs")).scalar()
    today_in_sao_paulo = emulator.clock.now().astimezone(ZoneInfo("America/Sao_Paulo")).date()
    assert window == today_in_sao_paulo - timedelta(days=FIRST_SYNC_DAYS)
    assert oldest >= window


# --------------------------------------------------------------------------------------------
# Concurrency, streaming and the apply
# --------------------------------------------------------------------------------------------

def test_a_sync_reads_the_item_once(provider, sync, engine, emulator):
    connection_id = connect(provider, sync)
    before = len(emulator.request_log)
    assert sync.sync_connection(connection_id).outcome == "success"
    paths = [path.split("?")[0] for _, path in emulator.request_log[before:]]
    assert paths.count(f"/items/{connection_id.split(':', 1)[1]}") == 1
    assert paths.count("/accounts") == 1


class MeetingProvider:
    """A provider whose fetches wait for each other: connections fetched one after another would never meet."""

    def __init__(self, inner: PluggyProvider, parties: int) -> None:
        self.inner, self.name, self.client = inner, inner.name, inner.client
        self.barrier = threading.Barrier(parties, timeout=10)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def fetch_transactions(self, *args: object, **kwargs: object) -> object:
        self.barrier.wait()
        return self.inner.fetch_transactions(*args, **kwargs)


def test_sync_all_fetches_and_applies_connections_at_once(provider, engine, emulator, monkeypatch):
    meeting = MeetingProvider(provider, parties=3)
    sync = SyncEngine(engine, {"pluggy": meeting}, now=emulator.clock.now)  # type: ignore[dict-item]
    ids = [connect(provider, sync) for _ in range(3)]
    together = threading.Barrier(3, timeout=10)  # times out unless the three applies run at the same time
    original = sync_module.apply_sync

    def apply_together(*args: object, **kwargs: object) -> object:
        together.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(sync_module, "apply_sync", apply_together)
    progress_threads: set[str] = set()
    before = len(emulator.request_log)

    results = sync.sync_all(on_progress=lambda _stage, _f: progress_threads.add(threading.current_thread().name))

    assert [r.connection_id for r in results] == ids  # in the connections' order
    assert all(r.outcome == "success" for r in results), [r.message for r in results]
    assert progress_threads == {threading.current_thread().name}  # Streamlit can draw it
    with engine.connect() as conn:
        counted = conn.execute(sa.text("SELECT SUM(requests) FROM sync_runs WHERE outcome = 'success'")).scalar()
        per_connection = conn.execute(sa.text("SELECT connection_id, COUNT(*) FROM transactions GROUP BY 1")).all()
    assert counted == len(emulator.request_log) - before  # each run counted its own requests, none twice
    assert sorted(c for c, _ in per_connection) == sorted(ids)
    assert _store_matches_provider(provider, engine)  # every row of every connection, none doubled

    emulator.clock.advance(days=3)  # new, posted and vanished pending rows, applied side by side again
    assert all(r.outcome == "success" for r in sync.sync_all())
    assert _store_matches_provider(provider, engine)


def test_the_staging_file_is_removed_after_a_sync_that_succeeds_or_fails(provider, sync, emulator, tmp_path,
                                                                         monkeypatch):
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    connection_id = connect(provider, sync)
    assert sync.sync_connection(connection_id).outcome == "success"
    emulator.faults.add("server_error", path="/v2/transactions", after=1, times=-1)
    assert sync.sync_connection(connection_id).outcome == "failed"
    assert list(staging.iterdir()) == []


def test_the_sync_engine_caps_the_memory_of_its_database_file(sync, engine, db_kind):
    if db_kind != "duckdb":
        pytest.skip("a DuckDB setting: PostgreSQL's memory is the server's (work_mem, shared_buffers)")
    with engine.connect() as conn:
        limit = conn.exec_driver_sql("SELECT current_setting('memory_limit')").scalar()
    assert limit == f"{STORE_MEMORY_LIMIT_MB * 10**6 / 2**20:.1f} MiB"  # DuckDB reports MB in MiB
