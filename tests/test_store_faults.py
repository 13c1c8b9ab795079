"""The store failing under a sync, and syncs killed half-way (issue 12, defects 3 and 4).

A full disk (a small file-size limit in a subprocess), a store that fails to apply or to record a failure, a staging
file that cannot be closed, and SIGKILL at random points: one connection's failure never stops the others and always
says what to do, no staging file is left behind, nothing half-applied is stored, and a killed run is closed as
interrupted at the next start-up instead of showing as running forever.
"""

from __future__ import annotations

import errno
import os
import random
import resource
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

import finance.sync as sync_module
from finance import health
from finance.config import load_settings
from finance.providers import registry
from finance.services import open_services
from finance.store.db import create_engine, init_schema, store_error
from finance.store.ingest import StagedTransactions
from finance.store.sync_runs import read_status
from finance.sync import INTERRUPTED_MESSAGE, SyncEngine, process_gone, this_process
from tests.conftest import connect
from tests.test_sync import _store_matches_provider, snapshot

REPO = Path(__file__).resolve().parents[1]
RUN_COLUMNS = ("id", "connection_id", "trigger", "started_at", "outcome", "added", "modified", "removed", "merged",
               "accounts", "requests")


def _store_full() -> sa.exc.OperationalError:
    """What SQLAlchemy raises when DuckDB cannot write its file on a full disk."""
    return sa.exc.OperationalError("COMMIT", {}, duckdb.IOException(
        'IO Error: Could not write file "finance.duckdb.wal": No space left on device'))


# --------------------------------------------------------------------------------------------
# Defect 3: a store failure is one connection's failed result, with a reason
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), _store_full()])
def test_a_full_disk_fails_that_connection_with_advice_and_the_others_still_sync(provider, sync, engine, emulator,
                                                                                   monkeypatch, failure):
    full, good = connect(provider, sync), connect(provider, sync)
    original_apply, original_record = sync_module.apply_sync, SyncEngine._record_failure

    def apply(conn: sa.Connection, **kwargs: object) -> object:
        if kwargs["state"].id == full:  # type: ignore[attr-defined]
            raise failure
        return original_apply(conn, **kwargs)

    def record(self: SyncEngine, run_id: str | None, connection_id: str, *args: object) -> None:
        if connection_id == full:  # the disk is still full when the failure is recorded
            raise _store_full()
        original_record(self, run_id, connection_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(sync_module, "apply_sync", apply)
    monkeypatch.setattr(SyncEngine, "_record_failure", record)

    results = {r.connection_id: r for r in sync.sync_all()}

    assert results[good].outcome == "success"
    assert (results[full].outcome, results[full].error_code) == ("failed", "STORE_FULL")
    assert "disk is full" in results[full].message and "Free some disk space" in results[full].message
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM transactions WHERE connection_id = :c"),
                            {"c": full}).scalar() == 0


def test_a_failure_the_store_cannot_record_says_both(provider, sync, engine, emulator, monkeypatch):
    connection_id = connect(provider, sync)
    emulator.faults.add("server_error", path="/v2/transactions", times=-1)

    def record(*_args: object) -> None:
        raise _store_full()

    monkeypatch.setattr(SyncEngine, "_record_failure", record)
    result = sync.sync_connection(connection_id)

    assert result.outcome == "failed" and not result.error_code.startswith("STORE_")  # type: ignore[union-attr]
    assert "server error" in result.message and "could not be recorded either: The disk is full" in result.message


def test_a_run_row_that_cannot_be_inserted_fails_only_its_connection(provider, sync, engine, monkeypatch):
    stuck, good = connect(provider, sync), connect(provider, sync)
    original = SyncEngine._start_run

    def start(self: SyncEngine, connection_id: str, trigger: str) -> str:
        if connection_id == stuck:
            raise _store_full()
        return original(self, connection_id, trigger)

    monkeypatch.setattr(SyncEngine, "_start_run", start)
    results = {r.connection_id: r for r in sync.sync_all()}

    assert results[good].outcome == "success"
    assert (results[stuck].outcome, results[stuck].error_code, results[stuck].run_id) == ("failed", "STORE_FULL", None)


@pytest.mark.parametrize("failure", [OverflowError("date value out of range"),
                                     pa.ArrowInvalid("Decimal value does not fit in precision")])
def test_a_value_the_store_cannot_hold_is_bad_data_not_an_internal_error(provider, sync, engine, monkeypatch, failure):
    connection_id = connect(provider, sync)

    def apply(*_args: object, **_kwargs: object) -> object:
        raise failure

    monkeypatch.setattr(sync_module, "apply_sync", apply)
    result = sync.sync_connection(connection_id)

    assert (result.outcome, result.error_code) == ("failed", "VALUE_OUT_OF_RANGE")
    assert "cannot hold" in result.message and "nothing was changed" in result.message


@pytest.mark.parametrize(("error", "code"), [
    (OSError(errno.EFBIG, "File too large"), "STORE_FULL"),
    (OSError(errno.EROFS, "Read-only file system"), "STORE_READ_ONLY"),
    (duckdb.IOException('IO Error: Cannot open file "x.duckdb": Permission denied'), "STORE_READ_ONLY"),
    (duckdb.InvalidInputException('Cannot execute statement of type "INSERT" on database "x" which is attached in '
                                  'read-only mode!'), "STORE_READ_ONLY"),
    (duckdb.IOException('IO Error: The file "x.duckdb" exists, but it is not a valid DuckDB database file!'),
     "STORE_CORRUPT"),
    (duckdb.FatalException("FATAL Error: database has been invalidated because of a previous fatal error"),
     "STORE_UNAVAILABLE"),
])
def test_store_errors_are_typed_with_advice_and_no_path(error, code):
    problem = store_error(sa.exc.OperationalError("INSERT", {}, error))
    assert problem is not None and problem.code == code
    assert "x.duckdb" not in problem.message
    assert store_error(ValueError("No space left in the form")) is None  # not a store error, whatever its text


def test_a_staging_file_whose_close_fails_is_removed_anyway(tmp_path):
    class FailingWriter:
        def __init__(self, inner: pa.ipc.RecordBatchFileWriter) -> None:
            self.inner = inner

        def write_batch(self, batch: pa.RecordBatch) -> None:
            self.inner.write_batch(batch)

        def close(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    staged = StagedTransactions(tmp_path)
    staged._writer = FailingWriter(staged._writer)  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space left"):
        staged.close()
    assert list(tmp_path.iterdir()) == []

    staged = StagedTransactions(tmp_path)
    staged._writer = FailingWriter(staged._writer)  # type: ignore[assignment]
    with pytest.raises(KeyError) as info, staged:  # the error that ended the block is the one raised
        raise KeyError("the provider's answer")
    assert any("Closing the staging file failed too" in note for note in info.value.__notes__)
    assert list(tmp_path.iterdir()) == []


def _env(data_dir: Path) -> dict[str, str]:
    """The environment of a `python -m finance` subprocess on `data_dir`, offline, its temp folder inside."""
    (data_dir / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGGY_", "PLAID_", "FINANCE_"))}
    return env | {"FINANCE_DATA_DIR": str(data_dir), "FINANCE_SANDBOX_SETTLE_SECONDS": "0",
                  "TMPDIR": str(data_dir / "tmp"), "PYTHONPATH": str(REPO)}


def _set_up(connections: int, *, synced: bool, advance_days: float = 0) -> None:
    """Connect the sandbox bank `connections` times in the app's store (and sync them), then let go of the file."""
    services = open_services()
    try:
        for _ in range(connections):
            connect(services.providers["pluggy"], services.sync)  # type: ignore[arg-type]
        if synced:
            assert all(r.outcome == "success" for r in services.sync.sync_all())
    finally:
        services.engine.dispose()
    if advance_days:
        registry.emulator("pluggy", load_settings()).advance(days=advance_days)


def _disk_full_at(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("limit", [64 * 1024, 300 * 1024])  # the staging file fills up first; the database file does
def test_cli_sync_on_a_full_disk_fails_with_advice_and_changes_nothing(offline, limit):
    _set_up(2, synced=True, advance_days=3)
    engine = create_engine(load_settings().database_url)
    before = snapshot(engine, ignore=("last_attempt_at",))
    engine.dispose()

    done = subprocess.run([sys.executable, "-m", "finance", "sync"], cwd=REPO, env=_env(offline), capture_output=True,
                          text=True, timeout=120, preexec_fn=lambda: _disk_full_at(limit))

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "disk is full" in done.stderr + done.stdout and "Free some disk space" in done.stderr + done.stdout
    assert list((offline / "tmp").glob("finance-staging-*")) == []
    services = open_services()
    try:
        assert snapshot(services.engine, ignore=("last_attempt_at",)) == before  # its failure may be recorded
        assert all(r.outcome == "success" for r in services.sync.sync_all())  # space freed: the sync goes through
        with services.engine.connect() as conn:
            outcomes = conn.execute(sa.text("SELECT outcome, COUNT(*) FROM sync_runs GROUP BY 1")).all()
        assert "running" not in dict(outcomes)
    finally:
        services.engine.dispose()


# --------------------------------------------------------------------------------------------
# Defect 4: a killed sync is closed as interrupted at the next start-up
# --------------------------------------------------------------------------------------------

def _running_row(conn: sa.Connection, run_id: str, process: str | None, connection_id: str = "pluggy:x") -> None:
    conn.execute(sa.text(f"INSERT INTO sync_runs ({', '.join(RUN_COLUMNS)}, process) VALUES "
                         f"(:id, :c, 'manual', :t, 'running', 0, 0, 0, 0, 0, 0, :p)"),
                 {"id": run_id, "c": connection_id, "t": datetime.now(UTC), "p": process})


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_runs_of_dead_processes_are_closed_as_interrupted_and_ours_are_left(engine):
    dead = f"{socket.gethostname()}/{_dead_pid()}/x"
    with engine.begin() as conn:
        _running_row(conn, "killed", dead)
        _running_row(conn, "legacy", None)  # left by a version that did not record its process
        _running_row(conn, "ours", this_process())
    sync = SyncEngine(engine, {})

    assert sync.close_interrupted_runs() == 2

    with engine.connect() as conn:
        runs = {r.id: r for r in conn.execute(sa.text("SELECT * FROM sync_runs"))}
    assert {k: r.outcome for k, r in runs.items()} == {"killed": "interrupted", "legacy": "interrupted",
                                                       "ours": "running"}
    assert (runs["killed"].error_code, runs["killed"].message) == ("INTERRUPTED", INTERRUPTED_MESSAGE)


def test_which_owners_are_gone():
    me = this_process()
    host, pid, token = me.split("/")
    parent = f"{host}/{os.getppid()}/{sync_module._start_token(os.getppid())}"
    assert not process_gone(me, exclusive=True) and not process_gone(me, exclusive=False)
    assert process_gone(parent, exclusive=True)  # DuckDB: only this process can be writing the file
    assert not process_gone(parent, exclusive=False)
    assert process_gone(f"{host}/{_dead_pid()}/{token}", exclusive=False)
    assert process_gone(f"{host}/{pid}/an-earlier-start", exclusive=False)  # our pid, reused after a restart
    assert not process_gone(f"elsewhere.example/{_dead_pid()}/x", exclusive=False)  # another host: cannot tell
    assert not process_gone(None, exclusive=False) and not process_gone(f"{host}/0/x", exclusive=False)


def test_a_run_whose_end_could_not_be_recorded_is_closed_by_the_next_sync(provider, sync, engine, monkeypatch):
    connection_id = connect(provider, sync)
    with engine.begin() as conn:
        _running_row(conn, "unrecorded", this_process(), connection_id)
    assert sync.sync_connection(connection_id).outcome == "success"
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM sync_runs WHERE id = 'unrecorded'")).one()
    assert (run.outcome, run.error_code) == ("interrupted", "INTERRUPTED")
    assert "nothing from it was saved" in run.message


def test_an_older_store_gets_the_process_column(engine):
    with engine.begin() as conn:  # a store made before migrations, before sync_runs had the process column
        conn.execute(sa.text("ALTER TABLE sync_runs DROP COLUMN process"))
        conn.execute(sa.text("DROP TABLE alembic_version"))
    init_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(process) FROM sync_runs")).scalar() == 0
    assert SyncEngine(engine, {}).close_interrupted_runs() == 0


def test_an_interrupted_run_needs_attention_until_a_later_sync_succeeds():
    now = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    connection = {"id": "c", "status": "active", "last_success_at": now - timedelta(hours=3)}
    interrupted = {"connection_id": "c", "institution": "Bank", "trigger": "manual", "started_at": now - timedelta(
        hours=1), "outcome": "interrupted", "error_code": "INTERRUPTED", "message": INTERRUPTED_MESSAGE}
    succeeded = {**interrupted, "started_at": now - timedelta(minutes=5), "outcome": "success", "error_code": None,
                 "message": "Up to date."}

    state = health.connection_health(connection, [interrupted], now)
    assert (state.level, state.label, state.reason) == (health.ATTENTION, "Sync interrupted", INTERRUPTED_MESSAGE)
    assert "Sync now" in state.action
    errors = health.open_errors(pd.DataFrame([interrupted]))
    assert [(e.error_code, e.action) for e in errors] == [("INTERRUPTED", health.INTERRUPTED_ACTION)]
    assert health.open_errors(pd.DataFrame([interrupted, succeeded])) == []
    assert health.connection_health(connection | {"last_success_at": now}, [interrupted, succeeded],
                                    now).level == health.CONNECTED


def _kill_mid_sync(data_dir: Path, rng: random.Random) -> bool:
    """`python -m finance sync`, SIGKILLed at a random moment after its first run started (the whole sync takes
    about 0.4 s from there); whether the kill landed before it ended."""
    process = subprocess.Popen([sys.executable, "-m", "finance", "sync"], cwd=REPO, env=_env(data_dir),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        seen = b""
        while b"Checking the connection" not in seen:  # drawn once the run's row is in the store
            chunk = process.stdout.read1(256)
            assert chunk, "the sync ended before it started"
            seen += chunk
        try:
            process.wait(timeout=rng.uniform(0, 0.3))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        return process.wait(timeout=30) == -signal.SIGKILL
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]


def _after_kills(data_dir: Path, kills: int, seed: int) -> None:
    _set_up(2, synced=False)  # first syncs: a year of rows each, so the kill lands in the middle of real work
    rng = random.Random(seed)
    landed = sum(_kill_mid_sync(data_dir, rng) for _ in range(kills))
    services = open_services()  # start-up closes what the killed process left running
    try:
        with services.engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT outcome, error_code, message FROM sync_runs")).all()
        assert runs and "running" not in {r.outcome for r in runs}
        assert landed and "interrupted" in {r.outcome for r in runs}
        for run in runs:
            if run.outcome == "interrupted":
                assert (run.error_code, run.message) == ("INTERRUPTED", INTERRUPTED_MESSAGE)
        with services.engine.connect() as conn:
            data = read_status(conn)
        assert all(h.level != health.SYNCING for h in health.health_by_connection(data, datetime.now(UTC)).values())
        assert all(r.outcome == "success" for r in services.sync.sync_all())
        assert _store_matches_provider(services.providers["pluggy"], services.engine)  # type: ignore[arg-type]
    finally:
        services.engine.dispose()


def test_a_sync_killed_at_a_random_point_is_interrupted_and_the_next_sync_recovers(offline):
    _after_kills(offline, kills=1, seed=12)


@pytest.mark.slow
def test_many_kills_leave_no_phantom_sync(offline):
    _after_kills(offline, kills=6, seed=1212)
