"""The Import files page through AppTest on the two sandbox banks: upload a Brazilian CSV into the synced BRL
account, map its columns (guessed, then remembered), preview what becomes of each row (already synced, new, a
possible duplicate to decide), import, see the rows in the store, undo; a bad file names its line and stores
nothing; bank text stays text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.file_import import FileImports
from finance.imports.csv_reader import ColumnMapping
from tests.conftest import ok, store_engine

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/import_files.py"


@pytest.fixture
def page(demo_copy: Path) -> AppTest:
    """The Import files page on a private copy of the demo's store (Pluggy Bank in BRL, First Platypus Bank in USD)."""
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page(PAGE)
    return ok(at.run())


def query(sql: str, **params: object) -> list[sa.Row]:
    engine = store_engine()
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    engine.dispose()
    return rows


def brl_rows() -> tuple[str, list[sa.Row]]:
    """The BRL checking account and its first two posted outflows of different amounts."""
    rows = query("""
        SELECT t.account_id, t.booked_date, t.amount, t.description FROM transactions t
        JOIN accounts a ON a.id = t.account_id
        WHERE a.currency = 'BRL' AND a.type = 'checking' AND t.status = 'posted' AND t.amount < 0
        ORDER BY t.booked_date, t.id""")
    first = rows[0]
    second = next(r for r in rows if r.amount != first.amount)
    return first.account_id, [first, second]


def brazilian(amount: Decimal) -> str:
    whole, cents = f"{abs(amount):.2f}".split(".")
    groups = f"{int(whole):,}".replace(",", ".")
    return f"{'-' if amount < 0 else ''}{groups},{cents}"


def choose_account(at: AppTest, account_id: str) -> AppTest:
    at.selectbox(key="imp_account").set_value(account_id)
    return ok(at.run())


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_upload_map_preview_import_and_undo(page: AppTest, offline: Path):
    account_id, (synced, other) = brl_rows()
    text = synced.description
    ambiguous_text = "LOJA QUE NINGUEM CONHECE"
    content = (
        "Extrato de conta corrente\n\n"
        "Data;Descrição;Valor;Saldo\n"
        f"{synced.booked_date:%d/%m/%Y};{text};{brazilian(synced.amount)};\n"  # already synced: left out
        f"{other.booked_date:%d/%m/%Y};{ambiguous_text};{brazilian(other.amount)};\n"  # same amount and day
        "03/01/2020;**Padaria** <b>São João</b> [x](http://evil.example);-1.234,56;10,00\n"
        "04/01/2020;=cmd|' /C calc'!A0;2.000,00;\n"
    ).encode("cp1252")
    at = choose_account(page, account_id)
    at.file_uploader[0].set_value(("extrato.csv", content, "text/csv"))
    at = ok(at.run())
    # The guess from the Brazilian headers: columns, dd/mm/yyyy, decimal comma, cp1252.
    assert at.selectbox(key=next(k for k in at.session_state if str(k).endswith("_date"))).value == "Data"
    assert any("The header row is line 3" in c.value for c in at.caption)
    assert metrics(at) == {"New": "2", "Already synced": "1", "Imported before": "0", "Possible duplicates": "1"}
    # Bank text is shown as text: in a dataframe and st.text, never in Markdown.
    preview = next(d.value for d in at.dataframe if "Outcome" in d.value.columns)
    assert "**Padaria** <b>São João</b> [x](http://evil.example)" in set(preview["Description"])
    assert not any("evil.example" in m.value for m in at.markdown)
    importing = at.button(key="imp_commit")
    assert importing.disabled  # the possible duplicate is undecided
    decide = next(r for r in at.radio if str(r.key).startswith("imp_decide_"))
    decide.set_value("keep")
    at = ok(at.run())
    assert not at.button(key="imp_commit").disabled
    at.button(key="imp_commit").click()
    at = ok(at.run())
    assert any("Imported 3 of 4 rows" in s.value for s in at.success), [s.value for s in at.success]

    rows = query("SELECT description, amount, import_batch_id, provider FROM transactions "
                          "WHERE import_batch_id IS NOT NULL ORDER BY booked_date, description")
    assert {r.description for r in rows} == {ambiguous_text, "**Padaria** <b>São João</b> [x](http://evil.example)",
                                             "=cmd|' /C calc'!A0"}
    assert {r.provider for r in rows} == {"import"} and len({r.import_batch_id for r in rows}) == 1
    assert query("SELECT COUNT(*) FROM transactions WHERE account_id = :a AND description = :d AND "
                          "booked_date = :b AND amount = :m", a=account_id, d=text, b=synced.booked_date,
                 m=synced.amount)[0][0] == 1  # the synced row only: the provider's row wins
    # The mapping is remembered: the same file again is recognised, and adds nothing.
    at.file_uploader[0].set_value(("extrato.csv", content, "text/csv"))
    at = ok(at.run())
    assert any("mapping saved for this account" in c.value for c in at.caption)
    assert metrics(at)["Imported before"] == "3" and metrics(at)["New"] == "0"

    before = query("SELECT COUNT(*) FROM transactions")[0][0]
    at.button(key="imp_undo").click()
    at = ok(at.run())
    assert any("3 rows removed" in s.value.replace("\\", "") for s in at.success)
    assert query("SELECT COUNT(*) FROM transactions")[0][0] == before - 3
    assert query("SELECT COUNT(*) FROM transactions WHERE import_batch_id IS NOT NULL")[0][0] == 0


def test_a_bad_line_is_named_and_nothing_is_stored(page: AppTest, offline: Path):
    account_id, _ = brl_rows()
    before = query("SELECT COUNT(*) FROM transactions")[0][0]
    at = choose_account(page, account_id)
    content = "Data;Descrição;Valor\n01/02/2021;OK;-10,00\n31/02/2021;_bad_ *date*;-5,00\n".encode()
    at.file_uploader[0].set_value(("bad.csv", content, "text/csv"))
    at = ok(at.run())
    [error] = at.error
    shown = error.value.replace("\\", "").replace("\u2060", "")  # shown literally: escaped for Markdown
    assert "Line 3" in shown and "Data" in shown and "31/02/2021" in shown
    assert all(b.key != "imp_commit" for b in at.button)  # no preview, nothing to import
    assert query("SELECT COUNT(*) FROM transactions")[0][0] == before


def test_an_ofx_file_into_a_new_manual_account(page: AppTest, offline: Path):
    at = page
    at.text_input(key="imp_new_name").input("Banco Local *conta*")
    at.text_input(key="imp_new_currency").input("BRL")
    at.text_input(key="imp_new_balance").input("1000,00")
    next(b for b in at.button if b.label == "Create account").click()
    at = ok(at.run())
    [(account_id,)] = query("SELECT id FROM accounts WHERE provider = 'manual'")
    at = choose_account(at, account_id)
    ofx = (Path(__file__).parent / "fixtures" / "imports" / "itau.ofx").read_bytes()
    at.file_uploader[0].set_value(("extrato.ofx", ofx, "application/x-ofx"))
    at = ok(at.run())
    assert metrics(at)["New"] == "3"
    at.button(key="imp_commit").click()
    at = ok(at.run())
    assert any("Imported 3 of 3 rows" in s.value for s in at.success)
    [(count, total)] = query("SELECT COUNT(*), SUM(amount) FROM transactions WHERE account_id = :a",
                             a=account_id)
    assert count == 3 and total == Decimal("-1234.56") + Decimal("5000.00") + Decimal("-89.90")
    history = query("SELECT COUNT(*) FROM balance_history WHERE account_id = :a", a=account_id)
    assert history[0][0] > 1  # the manual account's balance counted back over the imported days


def test_a_row_a_later_sync_may_repeat_is_shown_until_the_user_decides(page: AppTest, offline: Path):
    account_id, _ = brl_rows()
    engine = store_engine()
    imports = FileImports(engine)
    preview = imports.preview(account_id, "old.csv", "Data;Descrição;Valor\n10/05/2020;PIX JOAO *ok*;-90,00\n"
                              .encode(), ColumnMapping(date="Data", description="Descrição", amount="Valor"))
    imports.commit(preview, {}, actor="test")
    now = datetime.now(UTC) + timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO transactions (id, account_id, connection_id, provider, external_id, booked_date, amount,
                                      currency, description, category, status, first_seen_at, last_seen_at)
            VALUES ('bank:x', :a, 'bank:1', 'bank', 'x', :d, -90.00, 'BRL', 'TRANSF [MARIA](http://evil.example)',
                    'uncategorized', 'posted', :now, :now)"""), {"a": account_id, "d": date(2020, 5, 11), "now": now})
    engine.dispose()
    at = ok(page.run())
    assert any(h.value == "Imported rows a sync may repeat" for h in at.subheader)
    assert any("PIX JOAO *ok*" in t.value and "TRANSF [MARIA](http://evil.example)" in t.value for t in at.text)
    next(b for b in at.button if b.label == "Keep both").click()
    at = ok(at.run())
    assert any("Both kept" in s.value for s in at.success)
    assert not any(h.value == "Imported rows a sync may repeat" for h in at.subheader)
