"""The SQL behind the Transactions page, on stores filled by real sandbox syncs: filters, paging, totals, text
escaping, edits with their audit rows, category rules on past and future rows, tombstones, exports."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from finance.crypto import SecretBox
from finance.errors import EditError
from finance.filters import TransactionFilter
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from finance.store import rules, transactions
from finance.store.db import create_engine, init_schema
from finance.store.secrets import SecretStore
from finance.sync import SyncEngine
from tests.conftest import START, connect

pytestmark = pytest.mark.engines

EDIT_TIME = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def synced(provider, sync, engine) -> str:
    """Pluggy Bank (user-ok) connected and synced once, for tests that sync again later."""
    connection_id = connect(provider, sync)
    assert sync.sync_connection(connection_id).outcome == "success"
    return connection_id


def _build(path: Path, *, plaid: bool) -> Path:
    """A store filled by real sandbox syncs: Pluggy Bank (BRL: checking and card, 13 months) and optionally
    First Platypus Bank (USD, Plaid sandbox, its access token stored encrypted)."""
    engine = create_engine(f"duckdb:///{path}")
    init_schema(engine)
    pluggy_emulator = PluggyEmulator(clock=Clock(start=START), seed=7)
    pluggy_client = PluggyClient("test-id", "test-secret", transport=pluggy_emulator.transport(),
                                 sleep=lambda _s: None, now=pluggy_emulator.clock.now)
    pluggy = PluggyProvider(pluggy_client, now=pluggy_emulator.clock.now)
    pluggy_sync = SyncEngine(engine, {"pluggy": pluggy}, now=pluggy_emulator.clock.now)
    assert pluggy_sync.sync_connection(connect(pluggy, pluggy_sync)).outcome == "success"
    pluggy_client.close()
    if plaid:
        emulator = PlaidEmulator(clock=Clock(start=START), seed=5)
        secrets = SecretStore(engine, SecretBox(Fernet.generate_key()))
        client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None,
                             now=emulator.clock.now)
        provider = PlaidProvider(client, lambda item_id: secrets.get("plaid", item_id), now=emulator.clock.now)
        plaid_sync = SyncEngine(engine, {"plaid": provider}, now=emulator.clock.now, secrets=secrets)
        state = provider.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
        assert plaid_sync.sync_connection(plaid_sync.register(state)).outcome == "success"
        client.close()
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """Each kind of store is synced once per module; every test gets its own copy of the file."""
    folder = tmp_path_factory.mktemp("templates")
    return {"brl": _build(folder / "brl.duckdb", plaid=False), "mixed": _build(folder / "mixed.duckdb", plaid=True)}


def _copy(template: Path, tmp_path: Path) -> Iterator[sa.Engine]:
    target = tmp_path / "store.duckdb"
    shutil.copyfile(template, target)
    engine = create_engine(f"duckdb:///{target}")
    yield engine
    engine.dispose()


@pytest.fixture
def store(templates, tmp_path) -> Iterator[sa.Engine]:
    """Pluggy Bank synced: BRL only."""
    yield from _copy(templates["brl"], tmp_path)


@pytest.fixture
def mixed(templates, tmp_path) -> Iterator[sa.Engine]:
    """Pluggy Bank (BRL) and First Platypus Bank (USD) synced side by side."""
    yield from _copy(templates["mixed"], tmp_path)


def everything(engine: sa.Engine) -> pd.DataFrame:
    """Every stored transaction with its effective category, computed here in Python (the test's oracle)."""
    with engine.connect() as conn:
        result = conn.execute(sa.text("SELECT * FROM transactions"))
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))  # amounts stay Decimal
        rules = dict(conn.execute(sa.text("SELECT merchant, category FROM category_rules")).all())
    frame["effective"] = [u if isinstance(u, str) else rules.get(m, c) for u, m, c in
                          zip(frame["user_category"], frame["merchant"], frame["category"], strict=True)]
    return frame


def view_ids(engine: sa.Engine, filters: TransactionFilter) -> list[str]:
    with engine.connect() as conn:
        return transactions.export_table(conn, filters).column("id").to_pylist()


def page(engine: sa.Engine, filters: TransactionFilter | None = None, **kw) -> transactions.TransactionPage:
    with engine.connect() as conn:
        return transactions.transaction_page(conn, filters or TransactionFilter(), **kw)


def audit(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM audit_log ORDER BY occurred_at, action")).all()


def effective(engine: sa.Engine, transaction_id: str) -> tuple[str, str]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(
            f"SELECT t.effective_category, t.category_source FROM {transactions.EFFECTIVE_TRANSACTIONS} t "
            "WHERE t.id = :id"), {"id": transaction_id}).one())


# ---- Reads ---------------------------------------------------------------------------------------------------------

def test_pages_cover_the_view_once_newest_first_with_totals_per_currency(store):
    all_rows = everything(store)
    first = page(store, limit=50)
    assert first.total == len(all_rows) and len(first.rows) == 50

    seen: list[str] = []
    for offset in range(0, first.total, 400):
        chunk = page(store, limit=400, offset=offset).rows
        seen += list(chunk["id"])
        assert list(chunk["booked_date"]) == sorted(chunk["booked_date"], reverse=True)
    assert len(seen) == len(set(seen)) == first.total
    assert page(store, limit=50, offset=first.total).rows.empty  # past the end: no rows, same count
    assert page(store, limit=50, offset=first.total).total == first.total

    (brl,) = first.totals.itertuples()
    amounts = all_rows["amount"]
    assert (brl.currency, brl.transactions, brl.deleted) == ("BRL", len(all_rows), 0)
    assert brl.money_in == sum(a for a in amounts if a > 0)
    assert brl.money_out == -sum(a for a in amounts if a < 0)
    assert brl.net == sum(amounts) == brl.money_in - brl.money_out


def test_page_rows_carry_what_the_table_shows(store):
    rows = page(store, limit=2000).rows
    assert {"pending", "posted"} <= set(rows["status"])
    foreign = rows[rows["original_currency"].notna()]
    assert not foreign.empty and (foreign["original_currency"] != foreign["currency"]).all()
    installments = rows[rows["installment_total"].notna()]
    assert not installments.empty and (installments["installment_number"] <= installments["installment_total"]).all()
    assert rows["account_name"].notna().all() and rows["institution"].eq("Pluggy Bank").all()
    assert rows["category_name"].notna().all() and rows["category_source"].eq("provider").all()


def test_totals_are_per_currency_never_mixed(mixed):
    all_rows = everything(mixed)
    totals = page(mixed).totals.set_index("currency")
    assert list(totals.index) == ["BRL", "USD"]
    for currency, row in totals.iterrows():
        mine = all_rows[all_rows["currency"] == currency]["amount"]
        assert (row["transactions"], row["net"]) == (len(mine), sum(mine))
    usd_account = all_rows[all_rows["currency"] == "USD"]["account_id"].iloc[0]
    only_usd = page(mixed, TransactionFilter(account_ids=(usd_account,))).totals
    assert list(only_usd["currency"]) == ["USD"]


def oracle_cases(frame: pd.DataFrame) -> dict[str, tuple[TransactionFilter, pd.Series]]:
    card = frame["account_id"].value_counts().index[-1]  # the smaller of the two accounts: the card
    start, end = date(2026, 6, 1), date(2026, 8, 31)
    desc, merchant = frame["description"].str.lower(), frame["merchant"].fillna("").str.lower()
    size = frame["amount"].abs()
    return {
        "date range": (TransactionFilter(start=start, end=end),
                       (frame["booked_date"] >= start) & (frame["booked_date"] <= end)),
        "account": (TransactionFilter(account_ids=(card,)), frame["account_id"] == card),
        "parent category": (TransactionFilter(categories=("food",)), frame["effective"].str.startswith("food")),
        "child category": (TransactionFilter(categories=("food.groceries", "people")),
                           frame["effective"].isin(["food.groceries", "people"])),
        "status": (TransactionFilter(statuses=("pending",)), frame["status"] == "pending"),
        "money in": (TransactionFilter(direction="in"), frame["amount"] > 0),
        "money out": (TransactionFilter(direction="out"), frame["amount"] < 0),
        "amount range": (TransactionFilter(min_amount=Decimal("20"), max_amount=Decimal("80.50")),
                         (size >= Decimal("20")) & (size <= Decimal("80.50"))),
        "text": (TransactionFilter(text="UBER"), desc.str.contains("uber") | merchant.str.contains("uber")),
        "two words": (TransactionFilter(text="drogasil 2231"),
                      (desc + " " + merchant).str.contains("drogasil") & (desc + " " + merchant).str.contains("2231")),
    }


def test_each_filter_alone_and_all_combined_match_an_independent_oracle(store):
    frame = everything(store)
    cases = oracle_cases(frame)
    for name, (filters, mask) in cases.items():
        expected = set(frame[mask]["id"])
        assert expected, f"{name}: the sandbox data should have rows for this case"
        ids = view_ids(store, filters)
        assert set(ids) == expected, name
        assert page(store, filters).total == len(expected), name

    combined = TransactionFilter(start=date(2025, 12, 1), end=date(2026, 10, 31), statuses=("posted",),
                                 direction="out", categories=("transport",), min_amount=Decimal("10"), text="uber")
    mask = ((frame["booked_date"] >= date(2025, 12, 1)) & (frame["booked_date"] <= date(2026, 10, 31))
            & (frame["status"] == "posted") & (frame["amount"] < 0) & frame["effective"].str.startswith("transport")
            & (frame["amount"].abs() >= 10) & frame["merchant"].fillna("").str.lower().str.contains("uber"))
    assert 0 < mask.sum() < len(frame)
    assert set(view_ids(store, combined)) == set(frame[mask]["id"])
    result = page(store, combined, limit=10)
    assert result.total == mask.sum() and len(result.rows) == 10
    assert result.totals["money_out"].sum() == -frame[mask]["amount"].sum()


def test_bad_filters_are_refused(store):
    with pytest.raises(ValueError, match="status"):
        page(store, TransactionFilter(statuses=("cleared",)))
    with pytest.raises(ValueError, match="direction"):
        page(store, TransactionFilter(direction="sideways"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        page(store, limit=0)


def test_free_text_is_literal_case_insensitive_and_searches_notes(store):
    ids = list(page(store, limit=4).rows["id"])
    transactions.set_note(store, ids[0], "50% off at the fair")
    transactions.set_note(store, ids[1], "code a_b")
    transactions.set_note(store, ids[2], r"path C:\temp")
    transactions.set_note(store, ids[3], "5000 off")

    assert view_ids(store, TransactionFilter(text="50%")) == [ids[0]]  # % is not a wildcard
    assert view_ids(store, TransactionFilter(text="%")) == [ids[0]]
    assert view_ids(store, TransactionFilter(text="a_b")) == [ids[1]]  # _ is not a wildcard
    assert view_ids(store, TransactionFilter(text="_")) == [ids[1]]
    assert view_ids(store, TransactionFilter(text="C:\\temp")) == [ids[2]]
    assert view_ids(store, TransactionFilter(text="\\")) == [ids[2]]
    assert view_ids(store, TransactionFilter(text="'; DROP TABLE transactions; --")) == []
    assert set(view_ids(store, TransactionFilter(text="FAIR"))) == {ids[0]}
    assert page(store).total == len(everything(store))  # nothing was harmed


def test_escape_like():
    assert transactions.escape_like(r"50%_a\b") == r"50\%\_a\\b"


# ---- Edits ---------------------------------------------------------------------------------------------------------

def test_category_change_validates_and_writes_one_audit_row(store):
    row = page(store, TransactionFilter(text="uber"), limit=1).rows.iloc[0]
    message = transactions.set_category(store, row["id"], "travel", actor="ana", now=EDIT_TIME)
    assert message == "Category set to Travel."
    assert effective(store, row["id"]) == ("travel", "user")
    (entry,) = audit(store)
    assert (entry.actor, entry.action, entry.object_id) == ("ana", "set_category", row["id"])
    assert json.loads(entry.detail) == {"from": None, "to": "travel"}
    assert entry.occurred_at == EDIT_TIME

    before = everything(store)
    for bad in (lambda: transactions.set_category(store, row["id"], "not-a-category"),
                lambda: transactions.set_category(store, "pluggy:nope", "travel"),
                lambda: transactions.set_category(store, row["id"], None, as_rule=True)):
        with pytest.raises(EditError, match="Nothing was changed"):
            bad()
    pd.testing.assert_frame_equal(everything(store), before)
    assert len(audit(store)) == 1

    assert "removed" in transactions.set_category(store, row["id"], None)
    assert effective(store, row["id"]) == ("transport.rideshare", "provider")
    assert [a.action for a in audit(store)] == ["set_category", "set_category"]


def test_note_is_length_limited_and_audited(store):
    tid = page(store, limit=1).rows.iloc[0]["id"]
    assert transactions.set_note(store, tid, "  dinner with Ana  ", now=EDIT_TIME) == "Note saved."
    assert transactions.set_note(store, tid, "dinner with Ana") == "The note is unchanged."
    with pytest.raises(EditError, match="at most 500"):
        transactions.set_note(store, tid, "x" * 501)
    with pytest.raises(EditError, match="control characters"):
        transactions.set_note(store, tid, "bad\x00note")
    assert page(store, limit=1).rows.iloc[0]["note"] == "dinner with Ana"
    assert transactions.set_note(store, tid, "   ") == "Note removed."
    assert [(a.action, json.loads(a.detail)) for a in audit(store)] == [
        ("set_note", {"from": None, "to": "dinner with Ana"}), ("set_note", {"from": "dinner with Ana", "to": None})]


def test_save_edits_writes_only_what_changed_in_one_transaction(store):
    row = page(store, TransactionFilter(text="ifood"), limit=1).rows.iloc[0]
    assert transactions.save_edits(store, row["id"], category=row["category"], note="") == (
        "Nothing to save: the category and note are unchanged.")
    with pytest.raises(EditError):  # the note is refused, so the category change is not applied either
        transactions.save_edits(store, row["id"], category="travel", note="y" * 600)
    assert effective(store, row["id"]) == (row["category"], "provider") and audit(store) == []
    assert transactions.save_edits(store, row["id"], category="travel", note="late lunch") == (
        "Category set to Travel. Note saved.")
    assert [a.action for a in audit(store)] == ["set_category", "set_note"]


def test_delete_hides_restore_brings_back_and_both_are_audited(store):
    before = page(store)
    victim = before.rows.iloc[3]
    transactions.delete_transaction(store, victim["id"], now=EDIT_TIME)
    after = page(store)
    assert after.total == before.total - 1 and victim["id"] not in set(view_ids(store, TransactionFilter()))
    assert after.totals["net"].iloc[0] == before.totals["net"].iloc[0] - victim["amount"]
    with pytest.raises(EditError, match="already deleted"):
        transactions.delete_transaction(store, victim["id"])

    shown = page(store, TransactionFilter(include_deleted=True))
    assert shown.total == before.total
    assert shown.totals["deleted"].iloc[0] == 1
    assert shown.totals["net"].iloc[0] == after.totals["net"].iloc[0]  # deleted rows never count in money totals
    assert shown.rows.set_index("id").loc[victim["id"], "deleted_at"] == EDIT_TIME

    transactions.restore_transaction(store, victim["id"])
    assert page(store).total == before.total
    with pytest.raises(EditError, match="not deleted"):
        transactions.restore_transaction(store, victim["id"])
    assert [a.action for a in audit(store)] == ["delete", "restore"]


def test_tombstone_survives_resyncs_and_follows_a_pending_row_to_its_posted_row(engine, synced, sync, emulator):
    rows = page(engine, limit=2000).rows
    posted = rows[rows["status"] == "posted"].iloc[0]["id"]
    pending = list(rows[rows["status"] == "pending"]["id"])
    transactions.delete_transaction(engine, posted)
    for tid in pending:
        transactions.delete_transaction(engine, tid)
    live = page(engine).total

    assert sync.sync_connection(synced).outcome == "success"  # same data again
    assert page(engine).total == live
    emulator.advance(days=6)  # pending rows post under new ids; new rows arrive
    result = sync.sync_connection(synced)
    assert result.outcome == "success" and result.counts.merged >= 1

    with engine.connect() as conn:
        merged = conn.execute(sa.text("SELECT id, deleted_at FROM transactions WHERE pending_id IN :ids")
                              .bindparams(sa.bindparam("ids", expanding=True)), {"ids": pending}).all()
        still = conn.execute(sa.text("SELECT deleted_at FROM transactions WHERE id = :id"), {"id": posted}).scalar()
    assert still is not None
    assert len(merged) == result.counts.merged and all(m.deleted_at is not None for m in merged)
    visible = set(view_ids(engine, TransactionFilter()))
    assert posted not in visible and not visible & {m.id for m in merged}


# ---- Category rules ------------------------------------------------------------------------------------------------

def test_rule_applies_to_past_rows_but_a_users_own_category_wins(store):
    ubers = list(page(store, TransactionFilter(text="uber"), limit=500).rows["id"])
    mine, via_rule = ubers[0], ubers[1]
    transactions.set_category(store, mine, "health")

    message = transactions.set_category(store, via_rule, "transport.public", as_rule=True, actor="ana")
    assert message.startswith(f"Rule saved: Uber is now Public transport for {len(ubers) - 1} transactions")
    assert "1 with a category you set yourself keep it" in message

    view = page(store, TransactionFilter(text="uber"), limit=500).rows.set_index("id")
    assert view.loc[mine, ["category", "category_source"]].tolist() == ["health", "user"]
    others = view.drop(index=mine)
    assert (others["category"] == "transport.public").all() and (others["category_source"] == "rule").all()
    public = set(view_ids(store, TransactionFilter(categories=("transport.public",))))
    assert set(others.index) <= public and mine not in public  # beside the bank's own public-transport rows
    with store.connect() as conn:  # rules never write into user_category: it only holds the user's own choices
        owned = conn.execute(sa.text("SELECT COUNT(*) FROM transactions WHERE user_category IS NOT NULL")).scalar()
        in_force = rules.list_rules(conn)
    assert owned == 1
    assert in_force[["merchant", "category", "transactions"]].values.tolist() == [
        ["Uber", "transport.public", len(ubers) - 1]]
    entry = audit(store)[-1]
    assert (entry.action, entry.actor, entry.object_id) == ("create_rule", "ana", in_force["id"].iloc[0])
    assert json.loads(entry.detail) == {"merchant": "Uber", "category": "transport.public",
                                             "transactions": len(ubers) - 1, "kept_own_category": 1,
                                             "from_transaction": via_rule}


def test_replacing_and_deleting_a_rule_takes_effect_everywhere(store):
    tid = page(store, TransactionFilter(text="ifood"), limit=1).rows.iloc[0]["id"]
    rules.create_rule(store, "iFood", "food.restaurants")
    rules.create_rule(store, "iFood", "travel")
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT merchant, category FROM category_rules")).all() == [("iFood", "travel")]
        rule_id = rules.list_rules(conn)["id"].iloc[0]
    assert effective(store, tid) == ("travel", "rule")
    assert "replaced" in json.loads(audit(store)[-1].detail)

    rules.delete_rule(store, rule_id)
    assert effective(store, tid) == ("food.delivery", "provider")
    with pytest.raises(EditError):
        rules.delete_rule(store, rule_id)
    with pytest.raises(EditError, match="Unknown category"):
        rules.create_rule(store, "iFood", "nope")
    with pytest.raises(EditError, match="merchant"):
        rules.create_rule(store, "  ", "travel")
    assert [a.action for a in audit(store)] == ["create_rule", "create_rule", "delete_rule"]


def test_rule_needs_a_merchant(store):
    rows = page(store, limit=2000).rows
    nameless = rows[rows["merchant"].isna()].iloc[0]["id"]
    with pytest.raises(EditError, match="no merchant"):
        transactions.set_category(store, nameless, "travel", as_rule=True)
    assert audit(store) == []


def test_rule_covers_rows_a_later_sync_brings_with_no_help_from_the_engine(engine, synced, sync, emulator):
    rules.create_rule(engine, "Uber", "travel")
    known = set(view_ids(engine, TransactionFilter(text="uber")))

    emulator.advance(days=20)
    assert sync.sync_connection(synced).outcome == "success"  # the engine is untouched: no rule step in it

    rows = page(engine, TransactionFilter(text="uber"), limit=1000).rows
    new = rows[~rows["id"].isin(known)]
    assert not new.empty, "20 days of sandbox life bring new Uber rides"
    assert (new["category"] == "travel").all() and (new["category_source"] == "rule").all()
    assert (new["provider_category"] == "transport.rideshare").all()  # the provider's own value is kept as is


# ---- Export --------------------------------------------------------------------------------------------------------

def test_export_is_the_whole_filtered_view_in_csv_and_parquet_without_secrets(mixed):
    with mixed.begin() as conn:
        conn.execute(sa.text("UPDATE connections SET sync_cursor = 'CURSOR-SENTINEL'"))
        secret = conn.execute(sa.text("SELECT encrypted_secret FROM connections WHERE provider = 'plaid'")).scalar()
    assert secret, "the Plaid access token is stored (encrypted)"
    tid = page(mixed, TransactionFilter(text="uber"), limit=1).rows.iloc[0]["id"]
    transactions.set_note(mixed, tid, 'said "thanks", 10% tip')
    rules.create_rule(mixed, "Uber", "travel")
    filters = TransactionFilter(text="uber")
    expected = page(mixed, filters)
    assert expected.total > 50  # more than one page

    with mixed.connect() as conn:
        table = transactions.export_table(conn, filters)
        everything_table = transactions.export_table(conn, TransactionFilter())
    csv_bytes, parquet_bytes = transactions.to_csv(table), transactions.to_parquet(table)

    back = pa_csv.read_csv(io.BytesIO(csv_bytes)).to_pandas()
    assert tuple(back.columns) == transactions.EXPORT_COLUMNS
    assert len(back) == expected.total and list(back["id"]) == table.column("id").to_pylist()
    assert set(back["category"]) == {"travel"} and set(back["category_source"]) == {"rule"}
    assert back.set_index("id").loc[tid, "note"] == 'said "thanks", 10% tip'
    assert Decimal(str(round(back["amount"].sum(), 2))) == expected.totals["net"].sum()

    parquet = pq.read_table(io.BytesIO(parquet_bytes))
    assert parquet.equals(table)
    assert parquet.schema.field("amount").type == pa.decimal128(18, 2)
    assert parquet.schema.field("booked_date").type == pa.date32()
    assert sum(parquet.column("amount").to_pylist()) == expected.totals["net"].sum()

    assert everything_table.num_rows == page(mixed).total
    assert set(everything_table.column("currency").to_pylist()) == {"BRL", "USD"}
    everything = (transactions.to_csv(everything_table), transactions.to_parquet(everything_table))
    for blob in (csv_bytes, parquet_bytes, *everything):
        assert secret.encode() not in blob and b"CURSOR-SENTINEL" not in blob
    assert not {"encrypted_secret", "sync_cursor", "connection_id"} & set(everything_table.column_names)


def test_export_of_an_empty_view_is_a_header_only_csv(store):
    with store.connect() as conn:
        table = transactions.export_table(conn, TransactionFilter(text="no such thing"))
    assert table.num_rows == 0
    assert transactions.to_csv(table).decode().strip().split(",")[0] == '"id"'
    assert pq.read_table(io.BytesIO(transactions.to_parquet(table))).num_rows == 0


def test_options_for_the_filters(mixed):
    with mixed.connect() as conn:
        accounts = transactions.account_options(conn)
        categories = transactions.category_options(conn)
    assert accounts["currency"].value_counts().to_dict().keys() == {"BRL", "USD"}
    assert accounts["label"].str.contains(r" · .* \((?:BRL|USD)\)$").all()
    assert categories.set_index("id").loc["food.groceries", "label"] == "Food and drink › Groceries"
    assert list(categories["id"]) == sorted(categories["id"])
