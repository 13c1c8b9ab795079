"""The Transactions page through Streamlit's AppTest: search, category (and rule), note, delete/restore, exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from tests.conftest import ok
from tests.test_pages import button, connect, store

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[1]
PAGE = "pages/transactions.py"

# Until app.py lists the page, the tests drive it through the same navigation with the page added.
NAVIGATION = """
import streamlit as st

st.set_page_config(page_title="Open Finance dashboard", page_icon="💰", layout="wide")
st.navigation([
    st.Page("pages/overview.py", title="Overview", icon="📊", default=True),
    st.Page("pages/connections.py", title="Connections", icon="🏦"),
    st.Page("pages/transactions.py", title="Transactions", icon="🧾"),
]).run()
"""


def app_script(tmp: Path) -> str:
    app = REPO / "app.py"
    if PAGE in app.read_text():
        return str(app)
    folder = tmp / "app"
    folder.mkdir(exist_ok=True)
    if not (folder / "pages").exists():
        (folder / "pages").symlink_to(REPO / "pages")
    (folder / "app.py").write_text(NAVIGATION)
    return str(folder / "app.py")


def connected_transactions_page(tmp: Path) -> AppTest:
    """Pluggy Bank connected through the Connections page, then the Transactions page."""
    at = AppTest.from_file(app_script(tmp), default_timeout=60)
    ok(at.run())
    at.switch_page("pages/connections.py")
    connect(ok(at.run()), "user-ok")
    at.switch_page(PAGE)
    return ok(at.run())


def select_row(at: AppTest, index: int = 0) -> AppTest:
    at.session_state["txn_table"] = {"selection": {"rows": [index], "columns": [], "cells": []}}
    return ok(at.run())


def count(tmp: Path, where: str = "TRUE") -> int:
    """Rows in the store (the app's sandbox runs on the real clock, so counts come from the data, not constants)."""
    engine = store(tmp)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM transactions WHERE {where}")).scalar_one()
    engine.dispose()
    return int(n)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def rows_of(at: AppTest):
    return at.dataframe(key="txn_table").value


def test_empty_store_points_to_connections(offline):
    at = AppTest.from_file(app_script(offline), default_timeout=60)
    ok(at.run())
    at.switch_page(PAGE)
    ok(at.run())
    assert "No transactions yet" in at.info[0].value


def test_search_filters_and_shows_amounts_status_and_exports(offline):
    at = connected_transactions_page(offline)

    assert at.caption[0].value.startswith("Data as of")
    assert metric(at, "Transactions (BRL)") == f"{count(offline):,}"
    table = rows_of(at)
    assert len(table) == 50
    assert table["Amount"].str.match(r"^-?R\$ \d").all()
    exports = {b.label: b for b in at.get("download_button")}
    assert set(exports) == {"Export CSV", "Export Parquet"}
    assert not any(b.proto.disabled for b in exports.values())

    at.multiselect(key="txn_status").select("pending")
    ok(at.run())
    pending = count(offline, "status = 'pending'")
    assert pending > 0  # the sandbox always has card purchases waiting to post
    assert metric(at, "Transactions (BRL)") == f"{pending:,}"
    assert (rows_of(at)["Status"] == "⏳ Pending").all()
    at.multiselect(key="txn_status").unselect("pending")

    at.text_input(key="txn_text").input("uber")
    ok(at.run())
    table = rows_of(at)
    ubers = count(offline, "merchant = 'Uber'")
    assert metric(at, "Transactions (BRL)") == f"{ubers:,}"
    assert (table["Merchant"] == "Uber").all()
    assert at.number_input(key="txn_page").value == 1

    at.text_input(key="txn_text").input("100%")  # % is a literal, not a wildcard
    ok(at.run())
    assert "No transactions match" in at.info[0].value
    assert all(b.proto.disabled for b in at.get("download_button"))


def test_change_category_as_rule_add_note_delete_and_restore(offline):
    at = connected_transactions_page(offline)
    at.text_input(key="txn_text").input("uber")
    ok(at.run())
    select_row(at, 0)
    uber_id = at.session_state["txn_selected"]
    assert at.selectbox(key="txn_category").value == "transport.rideshare"

    at.selectbox(key="txn_category").select("travel")
    at.checkbox(key="txn_as_rule").check()
    at.text_area(key="txn_note").input("work trip")
    button(at, "Save").click()
    ok(at.run())
    shown = at.success[0].value.replace("\\", "").replace("\u2060", "")  # messages are shown literally
    assert "Rule saved: Uber is now Travel" in shown
    assert "Note saved" in shown
    assert set(rows_of(at)["Category"]) == {"Travel (rule)"}
    assert rows_of(at)["Note"].iloc[0] == "work trip"

    select_row(at, 0)
    button(at, "Delete").click()
    ok(at.run())
    assert "Transaction deleted" in at.success[0].value
    ubers = count(offline, "merchant = 'Uber'")
    assert metric(at, "Transactions (BRL)") == f"{ubers - 1:,}"

    at.toggle(key="txn_show_deleted").set_value(True)
    ok(at.run())
    assert rows_of(at)["Status"].iloc[0] == "🗑️ Deleted"
    select_row(at, 0)
    button(at, "Restore").click()
    ok(at.run())
    assert "restored" in at.success[0].value

    engine = store(offline)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT user_category, note, deleted_at FROM transactions WHERE id = :id"),
                           {"id": uber_id}).one()
        rule = conn.execute(sa.text("SELECT merchant, category FROM category_rules")).one()
        audit = conn.execute(sa.text("SELECT action, detail FROM audit_log WHERE action <> 'connect' "
                                     "ORDER BY occurred_at, action")).all()
    engine.dispose()
    assert tuple(row) == (None, "work trip", None)  # the row follows the rule; it has no override of its own
    assert tuple(rule) == ("Uber", "travel")
    assert [a.action for a in audit] == ["create_rule", "set_note", "delete", "restore"]
    assert json.loads(audit[0].detail)["transactions"] == ubers
