"""Rows that cannot be real never reach the store, and never cost a real row (issue: "Nothing lost, ever", defect 1).

Each bad kind is sent by a tampered answer on top of the emulators: the sync applies the rest, says what it set
aside, and the store keeps every real row — also on the syncs after, when the tampering stops.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from finance import screening
from finance.crypto import SecretBox
from finance.model import SetAside
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.mapping import map_transactions, read_transactions
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from finance.store.db import create_engine, init_schema
from finance.store.secrets import SecretStore
from finance.sync import SyncEngine
from tests.conftest import START, connect

Rows = list[dict[str, Any]]


class Tamper:
    """An httpx transport answering with `emulator`, rewriting the rows of one endpoint's answers while `edit`."""

    def __init__(self, handle: Callable[[httpx.Request], httpx.Response], path: str, key: str) -> None:
        self.handle, self.path, self.key = handle, path, key
        self.edit: Callable[[Rows], Rows] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self.handle(request)
        if self.edit is None or request.url.path != self.path or response.status_code != 200:
            return response
        body = json.loads(response.read())
        body[self.key] = self.edit(body[self.key])
        return httpx.Response(200, json=body)


def stored(engine: sa.Engine) -> dict[str, tuple[date, str]]:
    with engine.connect() as conn:
        return {r.external_id: (r.booked_date, str(r.amount)) for r in conn.execute(sa.text(
            "SELECT external_id, booked_date, amount FROM transactions"))}


@pytest.fixture
def pluggy(tmp_path: Path) -> Iterator[tuple[SyncEngine, PluggyEmulator, Tamper, sa.Engine]]:
    emulator = PluggyEmulator(clock=Clock(start=START), seed=7)
    tamper = Tamper(emulator.handle, "/v2/transactions", "results")
    client = PluggyClient("id", "secret", transport=httpx.MockTransport(tamper), sleep=lambda _s: None,
                          now=emulator.clock.now)
    engine = create_engine(f"duckdb:///{tmp_path / 'store.duckdb'}")
    init_schema(engine)
    try:
        yield SyncEngine(engine, {"pluggy": PluggyProvider(client, now=emulator.clock.now)},
                         now=emulator.clock.now), emulator, tamper, engine
    finally:
        client.close()
        engine.dispose()


def replace(external_id: str, **fields: Any) -> Callable[[Rows], Rows]:
    return lambda rows: [{**row, **fields} if row["id"] == external_id else row for row in rows]


BAD_PLUGGY_ROWS = [
    ({"date": "9999-12-31T00:00:00.000Z"}, "date 9999-12-31 out of range"),
    ({"date": "0001-01-01T00:00:00.000Z"}, "out of range"),
    ({"date": "1900-01-01T00:00:00.000Z"}, "date 1900-01-01 out of range"),
    ({"currencyCode": "ZZZ", "amountInAccountCurrency": 10.0}, "original currency 'ZZZ' unknown"),
    ({"amount": 1e20}, "the store cannot hold"),
    ({"createdAt": "9999-01-01T00:00:00.000Z"}, "creation time 9999-01-01 00:00:00+00:00 in the future"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD_PLUGGY_ROWS, ids=[r for _, r in BAD_PLUGGY_ROWS])
def test_a_bad_version_of_a_real_row_is_set_aside_and_the_real_row_survives(pluggy, fields, reason):
    sync, emulator, tamper, engine = pluggy
    connection = connect(sync.providers["pluggy"], sync)
    assert sync.sync_connection(connection).outcome == "success"
    before = stored(engine)
    today = START.date()
    recent = max((eid for eid, (day, _) in before.items() if day < today - timedelta(days=2)),
                 key=lambda eid: before[eid][0])  # inside the next sync's re-read window

    tamper.edit = replace(recent, **fields)
    result = sync.sync_connection(connection)
    assert result.outcome == "success", result.message
    assert "1 row set aside:" in result.message and reason in result.message
    after = stored(engine)
    assert after[recent] == before[recent]  # neither overwritten nor removed as absent
    assert set(before) == set(after) and result.counts.removed == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT set_aside FROM sync_runs WHERE id = :id"),
                            {"id": result.run_id}).scalar() == 1

    tamper.edit = None
    emulator.advance(days=20)  # the row is now outside the re-read window
    clean = sync.sync_connection(connection)
    assert clean.outcome == "success" and "set aside" not in clean.message
    assert stored(engine)[recent] == before[recent]


@pytest.mark.parametrize("bad_id", ["", "x" * 10_000, "id with spaces"], ids=["empty", "10k", "spaces"])
def test_rows_with_impossible_ids_are_set_aside_on_the_first_sync(pluggy, bad_id):
    sync, _emulator, tamper, engine = pluggy
    connection = connect(sync.providers["pluggy"], sync)
    victims: list[str] = []

    def spoil(rows: Rows) -> Rows:
        if not victims and rows:
            victims.append(rows[0]["id"])
            return [{**rows[0], "id": bad_id}, *rows[1:]]
        return rows

    tamper.edit = spoil
    result = sync.sync_connection(connection)
    assert result.outcome == "success", result.message
    assert "1 row set aside: id " in result.message
    ids = set(stored(engine))
    assert bad_id not in ids and f"pluggy:{bad_id}" not in ids
    tamper.edit = None
    again = sync.sync_connection(connection)
    assert again.outcome == "success" and victims[0] in stored(engine)  # read again: createdAt mark held back


def test_a_row_set_aside_on_the_first_sync_arrives_once_corrected(pluggy):
    sync, _emulator, tamper, engine = pluggy
    connection = connect(sync.providers["pluggy"], sync)
    spoiled: list[str] = []

    def spoil(rows: Rows) -> Rows:
        old = [r for r in rows if r["date"] < "2026-06-01"]
        if not spoiled and old:
            spoiled.append(old[0]["id"])
        return [{**r, "date": "9999-12-31T00:00:00.000Z"} if r["id"] in spoiled else r for r in rows]

    tamper.edit = spoil
    first = sync.sync_connection(connection)
    assert "1 row set aside: date 9999-12-31 out of range" in first.message
    assert spoiled[0] not in stored(engine)
    tamper.edit = None
    second = sync.sync_connection(connection)
    assert second.outcome == "success" and second.counts.removed == 0
    assert stored(engine)[spoiled[0]][0] < date(2026, 6, 1)


@pytest.fixture
def plaid(tmp_path: Path) -> Iterator[tuple[SyncEngine, PlaidProvider, Tamper, sa.Engine]]:
    emulator = PlaidEmulator(clock=Clock(start=START), seed=5)
    tamper = Tamper(emulator.handle, "/transactions/sync", "added")
    engine = create_engine(f"duckdb:///{tmp_path / 'store.duckdb'}")
    init_schema(engine)
    secrets = SecretStore(engine, SecretBox(Fernet.generate_key()))
    client = PlaidClient("id", "secret", transport=httpx.MockTransport(tamper), sleep=lambda _s: None,
                         now=emulator.clock.now)
    provider = PlaidProvider(client, lambda item_id: secrets.get("plaid", item_id), now=emulator.clock.now)
    try:
        yield SyncEngine(engine, {"plaid": provider}, now=emulator.clock.now, secrets=secrets), provider, tamper, engine
    finally:
        client.close()
        engine.dispose()


def test_plaid_id_twice_in_one_page_with_different_amounts_stores_neither(plaid):
    sync, provider, tamper, engine = plaid
    state = provider.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
    connection = sync.register(state)
    twice: list[str] = []

    def double(rows: Rows) -> Rows:
        if twice or not rows:  # the first page only
            return rows
        twice.append(rows[0]["transaction_id"])
        return [*rows, {**rows[0], "amount": rows[0]["amount"] + 1000}, {**rows[1]}]  # row 1: an exact repeat

    tamper.edit = double
    result = sync.sync_connection(connection)
    assert result.outcome == "success", result.message
    assert f"1 row set aside: id {twice[0]} sent twice in one answer with different values." in result.message
    rows = stored(engine)
    assert twice[0] not in rows
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) - count(DISTINCT id) FROM transactions")).scalar() == 0


def test_screen_names_every_kind_and_keeps_the_rest():
    account = _account()
    raws = [_raw("ok-1"), _raw("ok-2"), _raw("future", date="9999-12-31T00:00:00.000Z"), _raw(""),
            _raw("dup", amount=1.0), _raw("dup", amount=2.0), _raw("same"), _raw("same"),
            _raw("foreign", currencyCode="XQZ", amountInAccountCurrency=5.0)]
    batch = map_transactions(read_transactions(raws), account)
    kept, aside = screening.screen(batch, screening.Limits.around(date(2026, 11, 2)))
    assert kept.column("external_id").to_pylist() == ["ok-1", "ok-2", "same"]
    assert [(a.external_id, a.reason) for a in aside] == [
        ("future", "date 9999-12-31 out of range"),
        ("", "id empty"),
        ("dup", "id dup sent twice in one answer with different values"),
        ("dup", "id dup sent twice in one answer with different values"),
        ("foreign", "original currency 'XQZ' unknown"),
    ]


def test_map_screened_isolates_the_rows_the_mapping_cannot_read():
    account = _account()
    raws = read_transactions([_raw("a"), _raw("huge", amount=1e20), _raw("b"),
                              _raw("no-rate", currencyCode="USD")])  # foreign, without the converted amount
    batch, aside = screening.map_screened(raws, lambda rows: map_transactions(rows, account),
                                          lambda raw: (raw.id, account.external_id),
                                          screening.Limits.around(date(2026, 11, 2)))
    assert batch is not None and batch.column("external_id").to_pylist() == ["a", "b"]
    assert [a.external_id for a in aside] == ["huge", "no-rate"]
    assert "cannot hold" in aside[0].reason and "amount in the account currency" in aside[1].reason
    none, all_aside = screening.map_screened(raws[1:2], lambda rows: map_transactions(rows, account),
                                             lambda raw: (raw.id, account.external_id),
                                             screening.Limits.around(date(2026, 11, 2)))
    assert none is None and len(all_aside) == 1


def test_screening_an_empty_or_clean_batch_returns_it_unchanged():
    account = _account()
    batch = map_transactions(read_transactions([_raw("a"), _raw("b")]), account)
    kept, aside = screening.screen(batch, screening.Limits.around(date(2026, 11, 2)))
    assert kept is batch and aside == []
    empty = batch.slice(0, 0)
    assert screening.screen(empty, screening.Limits.around(date(2026, 11, 2))) == (empty, [])
    assert isinstance(kept, pa.RecordBatch)


def test_summary_reads_as_a_sentence_and_bounds_its_length():
    aside = [SetAside("a", "acc", "date 9999-12-31 out of range"), SetAside("b", "acc", "id empty"),
             SetAside("c", "acc", "id empty"), SetAside("d", "acc", "r3"), SetAside("e", "acc", "r4"),
             SetAside("f", "acc", "r5")]
    assert screening.summary(aside[:1]) == "1 row set aside: date 9999-12-31 out of range."
    assert screening.summary(aside[:3]) == "3 rows set aside: date 9999-12-31 out of range; id empty."
    assert screening.summary(aside).endswith("r3; and 2 more reasons.")
    assert screening.summary([]) == ""
    assert screening.short("x" * 10_000) == "x" * 40 + "… (10,000 characters)"
    assert screening.short("a\nb\x00") == "a b "


def _account():
    from finance.providers.pluggy.mapping import map_account
    return map_account({"id": "acc", "itemId": "item", "type": "BANK", "subtype": "CHECKING_ACCOUNT",
                        "balance": 100.0, "currencyCode": "BRL", "name": "Conta"})


def _raw(external_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": external_id, "amount": -12.5, "date": "2026-10-30T12:00:00.000Z", "description": "Padaria",
            "currencyCode": "BRL", "status": "POSTED", "createdAt": "2026-10-30T12:05:00.000Z", **fields}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    st.one_of(st.text(alphabet="abcdef0123456789-", min_size=1, max_size=40),  # mostly usable ids
              st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x24F), max_size=140)),
    st.one_of(st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 6, 30)),  # mostly near today
              st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))),
    st.sampled_from(["BRL", "BRL", "USD", "ZZZ", "brl", ""])), min_size=1, max_size=8))
def test_the_quick_whole_column_check_never_passes_a_row_the_row_checks_refuse(rows):
    account = _account()
    raws = [_raw(external_id, date=f"{day.isoformat()}T12:00:00.000Z") for external_id, day, _ in rows]
    try:
        batch = map_transactions(read_transactions(raws), account)
    except Exception:
        return
    batch = batch.set_column(batch.schema.get_field_index("currency"), "currency",
                             pa.array([currency for _, _, currency in rows], pa.string()))
    limits = screening.Limits.around(date(2026, 11, 2))
    refused = any(mask.to_pylist().count(True) for _, mask in screening._checks(batch, limits))
    assert not (screening._plainly_fine(batch, limits) and refused)
