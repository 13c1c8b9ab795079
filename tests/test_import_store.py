"""File import against a real store and a real sync (the Pluggy emulator): history is added without duplicating
synced rows, later syncs leave imported rows alone, an import undoes as a whole and nothing else, a bad file or an
undecided or stale preview stores nothing, and categories via rules, reports and balance history count imported
rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from finance.errors import BadFile, EditError
from finance.file_import import FileImports
from finance.imports.csv_reader import ColumnMapping
from finance.providers.pluggy.provider import PluggyProvider
from finance.store import reports, rules
from finance.store.db import create_engine, init_schema
from finance.store.transactions import set_note
from finance.sync import SyncEngine
from tests.conftest import connect

pytestmark = pytest.mark.engines

MAPPING = ColumnMapping(date="Data", description="Descrição", amount="Valor", date_format="%Y-%m-%d")


def csv(*rows: tuple[date, str, Decimal | str]) -> bytes:
    lines = ["Data;Descrição;Valor"] + [
        f"{d:%Y-%m-%d};{text};{str(amount).replace('.', ',') if isinstance(amount, Decimal) else amount}"
        for d, text, amount in rows]
    return "\n".join(lines).encode()


def count(engine: sa.Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def snapshot(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.text(
            "SELECT id, account_id, booked_date, amount, description, import_batch_id FROM transactions")))


@pytest.fixture
def synced(engine: sa.Engine, provider: PluggyProvider, sync: SyncEngine) -> tuple[str, str, sa.Row]:
    """A synced connection; its checking account and that account's oldest posted row."""
    connection_id = connect(provider, sync)
    assert sync.sync_connection(connection_id).outcome == "success"
    with engine.connect() as conn:
        row = conn.execute(sa.text("""
            SELECT t.account_id, t.booked_date, t.amount, t.description FROM transactions t
            JOIN accounts a ON a.id = t.account_id
            WHERE a.type = 'checking' AND t.status = 'posted' ORDER BY t.booked_date, t.id LIMIT 1""")).one()
    return connection_id, row.account_id, row


def test_history_before_the_window_is_added_and_synced_rows_are_not_repeated(engine, sync, synced):
    connection_id, account_id, oldest = synced
    imports = FileImports(engine)
    old = oldest.booked_date - timedelta(days=400)
    data = csv((oldest.booked_date + timedelta(days=1), oldest.description.upper() + " *", oldest.amount),
               (old, "ALUGUEL JANEIRO", Decimal("-2500.00")), (old, "ALUGUEL JANEIRO", Decimal("-2500.00")))
    preview = imports.preview(account_id, "old.csv", data, MAPPING)
    assert [p.verdict.value for p in preview.placements] == ["duplicate", "new", "new"]
    before = count(engine, "SELECT COUNT(*) FROM transactions")
    message = imports.commit(preview, {}, actor="test")
    assert "Imported 2 of 3 rows" in message
    assert count(engine, "SELECT COUNT(*) FROM transactions") == before + 2  # two identical rents stay two rows

    # A later sync (and its authoritative window) leaves the imported rows alone; a second one changes nothing.
    rows = snapshot(engine)
    assert sync.sync_connection(connection_id).outcome == "success"
    assert [r for r in snapshot(engine) if r[5]] == [r for r in rows if r[5]]
    # Importing the same file again adds nothing and records no batch.
    again = imports.preview(account_id, "old.csv", data, MAPPING)
    assert [p.verdict.value for p in again.placements] == ["duplicate", "already imported", "already imported"]
    assert imports.commit(again, {}, actor="test").startswith("Nothing to import")
    assert count(engine, "SELECT COUNT(*) FROM import_batches") == 1


def test_undo_removes_exactly_the_rows_of_one_import(engine, synced):
    _, account_id, _ = synced
    imports = FileImports(engine)
    first = imports.preview(account_id, "a.csv", csv((date(2020, 1, 5), "A", "-1,00"), (date(2020, 1, 6), "B",
                                                                                        "-2,00")), MAPPING)
    imports.commit(first, {}, actor="test")
    before_second = snapshot(engine)
    second = imports.preview(account_id, "b.csv", csv((date(2019, 1, 5), "C", "-3,00")), MAPPING)
    imports.commit(second, {}, actor="test")
    batches = imports.history()
    assert list(batches["added"]) == [1, 2]  # newest first
    assert imports.undo(batches["id"][0], actor="test") == "Import undone: 1 row removed."
    assert snapshot(engine) == before_second  # the first import and every synced row untouched
    with pytest.raises(EditError, match="undone already"):
        imports.undo(batches["id"][0], actor="test")
    with pytest.raises(EditError, match="no such import"):
        imports.undo("nope", actor="test")
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(sa.text(
            "SELECT action FROM audit_log WHERE action LIKE 'import.%' ORDER BY occurred_at"))]
    assert actions == ["import.add", "import.add", "import.undo"]


def test_a_bad_file_stores_nothing_not_even_its_mapping(engine, synced):
    _, account_id, _ = synced
    imports = FileImports(engine)
    before = snapshot(engine)
    bad = csv((date(2020, 1, 5), "A", "-1,00")) + b"\n2020-13-01;B;-2,00\n"
    with pytest.raises(BadFile, match="Line 3"):
        imports.preview(account_id, "bad.csv", bad, MAPPING)
    assert snapshot(engine) == before
    assert count(engine, "SELECT COUNT(*) FROM import_mappings") == 0
    assert count(engine, "SELECT COUNT(*) FROM import_batches") == 0


def test_ambiguous_rows_wait_for_the_user_and_a_stale_preview_is_refused(engine, synced):
    _, account_id, oldest = synced
    imports = FileImports(engine)
    data = csv((oldest.booked_date, "SOMETHING ELSE ENTIRELY", oldest.amount), (date(2018, 2, 1), "X", "-9,00"))
    preview = imports.preview(account_id, "amb.csv", data, MAPPING)
    [ambiguous] = preview.ambiguous()
    with pytest.raises(EditError, match="choose keep or skip"):
        imports.commit(preview, {}, actor="test")
    # The store changes under the preview (an earlier import brings the 2018 row): the preview is refused.
    imports.commit(imports.preview(account_id, "other.csv", csv((date(2018, 2, 1), "X", "-9,00")), MAPPING), {},
                   actor="test")
    with pytest.raises(EditError, match="changed since this preview"):
        imports.commit(preview, {ambiguous: "keep"}, actor="test")
    fresh = imports.preview(account_id, "amb.csv", data, MAPPING)
    assert "Imported 1 of 2 rows" in imports.commit(fresh, {ambiguous: "keep"}, actor="test")


def test_rules_reports_and_balance_history_count_imported_rows(engine):
    imports = FileImports(engine)
    today = datetime.now(UTC).date()
    account_id = imports.create_account("Banco Local", "brl", "checking", "1000,00", actor="test")
    day = today - timedelta(days=10)
    preview = imports.preview(account_id, "x.csv", csv((day, "SUPERMERCADO BOM PRECO", "-200,00"),
                                                       (day + timedelta(days=1), "SALARIO", "3.000,00")), MAPPING)
    imports.commit(preview, {}, actor="test")
    with engine.begin() as conn:
        rules.save_rule(conn, "SUPERMERCADO BOM PRECO", "food.groceries", actor="test", now=datetime.now(UTC))
    with engine.connect() as conn:
        spending = reports.spending_by_category(conn, day, today)
        history = dict(conn.execute(sa.text("SELECT day, balance FROM balance_history WHERE account_id = :a"),
                                    {"a": account_id}).all())
    assert spending[spending["currency"] == "BRL"][["category_id", "spending"]].values.tolist() == [
        ["food", Decimal("200.00")]]  # groceries, under its parent
    assert history[today] == Decimal("1000.00")
    assert history[day] == Decimal("1000.00") - Decimal("3000.00")  # before the salary, after the groceries


def test_a_manual_account_is_validated(engine):
    imports = FileImports(engine)
    for name, currency, type_, balance, says in [
        ("", "BRL", "checking", "", "name"), ("x" * 81, "BRL", "checking", "", "name"),
        ("Conta\x00", "BRL", "checking", "", "name"), ("Conta", "REAL", "checking", "", "three-letter"),
        ("Conta", "BRL", "piggy", "", "type"), ("Conta", "BRL", "checking", "lots", "an amount like"),
    ]:
        with pytest.raises(EditError, match=says):
            imports.create_account(name, currency, type_, balance, actor="test")
    assert count(engine, "SELECT COUNT(*) FROM accounts") == 0
    account_id = imports.create_account("  Conta   Local ", "usd", "savings", actor="test")
    assert imports.accounts().set_index("id").loc[account_id, "label"] == "Manual · Conta Local (USD)"


def test_a_sync_that_brings_an_imported_row_replaces_it_and_keeps_the_user_s_note(
        engine, provider, emulator, sync, synced, tmp_path):
    connection_id, account_id, _ = synced
    imports = FileImports(engine)
    # The bank moves on; its file has the new rows before the aggregator does (a scratch store syncs them to
    # learn what the provider will send).
    emulator.advance(days=10)
    scratch = create_engine(f"duckdb:///{tmp_path / 'scratch.duckdb'}")
    init_schema(scratch)
    later = SyncEngine(scratch, {"pluggy": provider}, now=emulator.clock.now)
    later.register(provider.fetch_connection(connection_id.split(":", 1)[1])[0])
    assert later.sync_connection(connection_id).outcome == "success"
    with engine.connect() as conn:
        known = {r[0] for r in conn.execute(sa.text("SELECT id FROM transactions"))}
    with scratch.connect() as conn:
        coming = [r for r in conn.execute(sa.text(
            "SELECT id, booked_date, description, amount FROM transactions WHERE account_id = :a AND "
            "status = 'posted' ORDER BY id"), {"a": account_id}) if r.id not in known]
    scratch.dispose()
    assert coming, "the emulator posts new transactions within ten days"
    preview = imports.preview(account_id, "ahead.csv", csv(*[(r.booked_date, r.description, r.amount)
                                                             for r in coming]), MAPPING)
    # (a pending row the main store holds may already describe one: that one is left out, as it should be)
    new = [(row, i) for row, i, p in zip(coming, preview.ids, preview.placements, strict=True)
           if p.verdict.value == "new"]
    assert new
    imports.commit(preview, {}, actor="test")
    coming, noted = [row for row, _ in new], new[0][1]
    set_note(engine, noted, "mine", actor="test")

    assert sync.sync_connection(connection_id).outcome == "success"
    assert count(engine, "SELECT COUNT(*) FROM transactions WHERE import_batch_id IS NOT NULL") == 0
    for row in coming:  # each once: the provider's row
        assert count(engine, "SELECT COUNT(*) FROM transactions WHERE id = :i", i=row.id) == 1
    assert count(engine, "SELECT COUNT(*) FROM transactions WHERE id = :i AND note = 'mine'", i=coming[0].id) == 1


def test_a_manual_account_without_a_balance_takes_the_file_s_and_undo_gives_it_back(engine):
    imports = FileImports(engine)
    account_id = imports.create_account("Itaú (manual)", "BRL", "checking", actor="test")
    ofx = (Path(__file__).parent / "fixtures" / "imports" / "itau.ofx").read_bytes()
    message = imports.commit(imports.preview(account_id, "itau.ofx", ofx), {}, actor="test")
    assert "Its balance is now R$ 3.675,54 as of Jan 31, 2024, from the file." in message
    with engine.connect() as conn:
        balance = conn.execute(sa.text("SELECT current_balance FROM accounts WHERE id = :a"), {"a": account_id})
        assert balance.scalar_one() == Decimal("3675.54")
        history = dict(conn.execute(sa.text("SELECT day, balance FROM balance_history WHERE account_id = :a"),
                                    {"a": account_id}).all())
    assert history[date(2024, 1, 31)] == Decimal("3675.54")
    assert history[date(2024, 1, 30)] == Decimal("3675.54") + Decimal("89.90")  # before the PIX of the 31st
    assert history[date(2024, 1, 5)] == Decimal("3675.54") + Decimal("89.90") - Decimal("5000.00")

    imports.undo(imports.history()["id"][0], actor="test")
    assert count(engine, "SELECT COUNT(*) FROM accounts WHERE id = :a AND current_balance IS NULL", a=account_id) == 1
    assert count(engine, "SELECT COUNT(*) FROM balance_history WHERE account_id = :a", a=account_id) == 0


def add_synced(engine: sa.Engine, account_id: str, id_: str, day: date, amount: str, text: str) -> None:
    """A row as a sync would leave it, first seen now (after any import)."""
    now = datetime.now(UTC) + timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO transactions (id, account_id, connection_id, provider, external_id, booked_date, amount,
                                      currency, description, category, status, first_seen_at, last_seen_at)
            VALUES (:id, :a, 'bank:1', 'bank', :id, :d, :m, 'BRL', :t, 'uncategorized', 'posted', :now, :now)"""),
            {"id": id_, "a": account_id, "d": day, "m": Decimal(amount), "t": text, "now": now})


def test_rows_a_later_sync_may_repeat_are_for_the_user_to_decide(engine):
    imports = FileImports(engine)
    account_id = imports.create_account("Conta", "BRL", "checking", actor="test")
    day = date(2024, 5, 10)
    preview = imports.preview(account_id, "a.csv", csv((day, "PIX ENVIADO JOAO", "-90,00"),
                                                       (day, "MERCADO CENTRAL", "-45,00")), MAPPING)
    imports.commit(preview, {}, actor="test")
    pix, market = preview.ids
    add_synced(engine, account_id, "bank:1", day + timedelta(days=1), "-90.00", "TRANSF PIX MARIA")
    add_synced(engine, account_id, "bank:2", day, "-45.00", "MERCADO CENTRAL LTDA")  # alike: a sync replaces these
    add_synced(engine, account_id, "bank:3", day, "-45.00", "FARMACIA")
    found = imports.overlaps()
    assert set(zip(found["id"], found["synced_id"], strict=True)) == {(pix, "bank:1"), (market, "bank:3")}

    assert imports.keep_both(pix, "bank:1", actor="test") == "Both kept."
    assert list(imports.overlaps()["id"]) == [market]
    imports.remove_imported(market, actor="test")
    assert imports.overlaps().empty
    assert count(engine, "SELECT COUNT(*) FROM transactions WHERE id IN (:a, :b)", a=pix, b=market) == 1
    with pytest.raises(EditError, match="not an imported transaction"):
        imports.remove_imported("bank:3", actor="test")
    assert count(engine, "SELECT COUNT(*) FROM transactions WHERE id = 'bank:3'") == 1
    assert count(engine, "SELECT COUNT(*) FROM audit_log WHERE action IN ('import.keep_both', 'import.remove_row')") \
        == 2
