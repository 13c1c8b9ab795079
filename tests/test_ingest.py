"""The apply step on its own: the staging file, an id listed twice in one fetch, staged and in-memory rows alike."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from finance.model import (
    TRANSACTION_SCHEMA,
    Account,
    AccountType,
    ConnectionState,
    ConnectionStatus,
    TransactionChanges,
)
from finance.providers.pluggy.mapping import RawTransaction, map_transactions, read_transactions
from finance.store.db import create_engine, init_schema, load_arrow
from finance.store.ingest import StagedTransactions, apply_sync, upsert_connection

pytestmark = pytest.mark.engines

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
STATE = ConnectionState(provider="pluggy", external_id="item-1", status=ConnectionStatus.ACTIVE,
                        provider_status="UPDATED/SUCCESS")
ACCOUNT = Account(provider="pluggy", external_id="acc-1", connection_external_id="item-1", type=AccountType.CHECKING,
                  name="Conta", currency="BRL", current_balance=Decimal("100.00"))


def raw(txn_id: str, description: str, amount: float = -10.0, day: int = 10) -> RawTransaction:
    return read_transactions([{
        "id": txn_id, "date": f"2026-10-{day:02d}T15:00:00.000Z", "description": description, "amount": amount,
        "currencyCode": "BRL", "status": "POSTED", "createdAt": f"2026-10-{day:02d}T15:00:01.000Z"}])[0]


@pytest.fixture
def engine(database_url: str):
    eng = create_engine(database_url)
    init_schema(eng)
    with eng.begin() as conn:
        upsert_connection(conn, STATE, now=NOW)
    yield eng
    eng.dispose()


def apply(engine: sa.Engine, batches: list[pa.RecordBatch], *, staged: bool) -> tuple[int, int]:
    changes = TransactionChanges(provider="pluggy")
    with engine.begin() as conn:
        if staged:
            with StagedTransactions() as staging:
                for batch in batches:
                    staging.append(batch)
                counts = apply_sync(conn, state=STATE, accounts=[ACCOUNT], changes=changes, now=NOW,
                                    today=date(2026, 11, 2), staged=staging)
        else:
            changes.batches = batches
            counts = apply_sync(conn, state=STATE, accounts=[ACCOUNT], changes=changes, now=NOW,
                                today=date(2026, 11, 2))
    return counts.added, counts.modified


def rows(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT id, description FROM transactions")).all())


@pytest.mark.parametrize("staged", [True, False])
def test_an_id_listed_twice_in_one_fetch_is_one_row_with_its_latest_version(engine: sa.Engine, staged: bool) -> None:
    first = map_transactions([raw("t1", "first"), raw("t2", "other")], ACCOUNT)
    later = map_transactions([raw("t1", "second")], ACCOUNT)
    assert apply(engine, [first, later], staged=staged) == (2, 0)
    assert rows(engine) == [("pluggy:t1", "second"), ("pluggy:t2", "other")]
    assert apply(engine, [map_transactions([raw("t1", "third"), raw("t1", "fourth")], ACCOUNT)],
                 staged=staged) == (0, 1)
    assert rows(engine) == [("pluggy:t1", "fourth"), ("pluggy:t2", "other")]


def test_staged_and_in_memory_rows_make_the_same_store(postgres_server, tmp_path: Path) -> None:
    batches = [map_transactions([raw(f"t{i}", f"purchase {i}", -i - 0.5, 1 + i % 28) for i in range(j, j + 50)],
                                ACCOUNT) for j in range(0, 200, 50)]
    stores = []
    for url, staged in [(f"duckdb:///{tmp_path / f'{s}.duckdb'}", s) for s in (True, False)] + [
            (postgres_server(), s) for s in (True, False)]:  # the same store on both engines, too
        engine = create_engine(url)
        init_schema(engine)
        with engine.begin() as conn:
            upsert_connection(conn, STATE, now=NOW)
        apply(engine, batches, staged=staged)
        with engine.connect() as conn:
            stores.append(sorted(conn.execute(sa.text("SELECT * FROM transactions")).all()))
        engine.dispose()
    assert stores[0] == stores[1] == stores[2] == stores[3] and len(stores[0]) == 200


def test_staging_takes_batches_from_many_threads_and_cleans_up(tmp_path: Path) -> None:
    batch = map_transactions([raw(f"t{i}", "x") for i in range(7)], ACCOUNT)
    with StagedTransactions(tmp_path, flush_rows=20) as staging:
        workers = [threading.Thread(target=lambda: [staging.append(batch) for _ in range(10)]) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        table = staging.read_all()
        assert staging.rows == table.num_rows == 280
        assert sorted(table.column("seq").to_pylist()) == list(range(280))
        assert table.schema.remove(table.schema.get_field_index("seq")).equals(TRANSACTION_SCHEMA)
        with pytest.raises(RuntimeError):
            staging.append(batch)  # the file has been read: nothing may be added unseen
    assert list(tmp_path.iterdir()) == []


def test_staging_refuses_a_batch_of_another_shape(tmp_path: Path) -> None:
    with StagedTransactions(tmp_path) as staging, pytest.raises(ValueError):
        staging.append(pa.record_batch({"id": ["x"]}))


def test_accounts_are_inserted_then_refreshed_keeping_when_they_were_first_seen(engine: sa.Engine) -> None:
    later = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    moved = dataclasses.replace(ACCOUNT, current_balance=Decimal("250.555"), name="Conta renomeada")
    for when, account in ((NOW, ACCOUNT), (later, moved)):
        with engine.begin() as conn:
            apply_sync(conn, state=STATE, accounts=[account], changes=TransactionChanges(provider="pluggy"),
                       now=when, today=when.date())
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT name, current_balance, first_seen_at, last_seen_at FROM accounts")).all()
    assert stored == [("Conta renomeada", Decimal("250.56"), NOW, later)]


def test_times_copied_to_postgresql_keep_their_instant_whatever_the_time_zones(postgres_server) -> None:
    """The COPY writes zoned times as UTC text marked 'Z' (finance.store.db._utc_text): neither the Arrow column's
    zone nor the session's shifts them, and a missing time stays NULL."""
    instants = [datetime(2026, 10, 5, 23, 30, 0, 123000, tzinfo=UTC), None, datetime(1999, 12, 31, 23, 59, tzinfo=UTC)]
    table = pa.table({"utc": pa.array(instants, pa.timestamp("us", tz="UTC")),
                      "tokyo": pa.array(instants, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("ms", "Asia/Tokyo")),
                      "n": pa.array([1, 2, 3], pa.int64())})
    engine = create_engine(postgres_server())
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL TimeZone = 'America/Sao_Paulo'")
            load_arrow(conn, "times", table)
            stored = conn.exec_driver_sql("SELECT utc, tokyo FROM times ORDER BY n").all()
    finally:
        engine.dispose()
    assert [row.utc for row in stored] == instants
    assert [row.tokyo for row in stored] == instants
