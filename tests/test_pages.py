"""The pages through Streamlit's AppTest: connect through the connect widget (with MFA), sync, faults, delete,
and the Overview. Widget events are injected as the browser sends them (tests/test_connect_widget.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.config import load_settings
from finance.providers import registry
from tests.conftest import store_engine
from tests.test_connect_widget import send, widget

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in at.button]}"
    return matches[0]


PLUGGY = "connect_widget_pluggy"
PLAID = "connect_widget_plaid"


def connect(at: AppTest, user: str, password: str = "password-ok") -> AppTest:
    """On the Connections page: pick Pluggy Bank in the connect widget and log in as `user`."""
    send(at, PLUGGY, "choose", institution_id="0")
    send(at, PLUGGY, "submit", values={"user": user, "password": password})
    return at


def store(tmp: Path) -> sa.Engine:
    return store_engine()


def test_empty_overview_leads_to_a_first_connection(offline):
    at = open_page("overview")
    assert "No banks connected yet" in at.info[0].value
    assert "user-ok" in at.info[0].value


def test_connect_sandbox_bank_then_second_sync_reports_no_changes(offline):
    at = connect(open_page("connections"), "user-ok")

    done = widget(at, PLUGGY)
    assert done["step"] == "done" and done["ok"]
    assert done["message"].startswith("Pluggy Bank connected. Synced 2 accounts")
    assert any("Pluggy Bank" in m.value for m in at.markdown)

    button(at, "Sync now").click()
    at.run()
    assert "Up to date" in at.success[0].value


def test_mfa_path_asks_for_the_code(offline):
    at = connect(open_page("connections"), "user-ok-mfa")
    asked = widget(at, PLUGGY)
    assert asked["step"] == "mfa" and asked["prompt"]["label"] == "Token"

    done = send(at, PLUGGY, "mfa", values={"token": "123456"})
    assert done["step"] == "done" and "Pluggy Bank connected" in done["message"]


def test_wrong_mfa_code_explains_what_to_do(offline):
    at = connect(open_page("connections"), "user-ok-mfa")
    refused = send(at, PLUGGY, "mfa", values={"token": "000000"})
    assert refused["step"] == "error" and "code was not accepted" in refused["error"]


def test_wrong_password_is_reported(offline):
    refused = widget(connect(open_page("connections"), "user-ok", password="nope"), PLUGGY)
    assert refused["step"] == "error" and "username or password" in refused["error"]


def test_injected_server_error_leaves_data_unchanged_and_says_so(offline):
    at = connect(open_page("connections"), "user-ok")
    engine = store(offline)
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT COUNT(*), SUM(amount) FROM transactions")).one()
    engine.dispose()

    at.selectbox(key="pluggy_fault_kind").select("server_error")
    at.selectbox(key="pluggy_fault_path").select("/v2/transactions")
    button(at, "Inject fault").click()
    at.run()
    registry.emulator("pluggy", load_settings()).advance(days=3)  # new data the failed sync must not half-apply
    button(at, "Sync now").click()
    at.run()

    assert "server error" in at.error[0].value
    assert "Nothing was changed" in at.error[0].value
    engine = store(offline)
    with engine.connect() as conn:
        after = conn.execute(sa.text("SELECT COUNT(*), SUM(amount) FROM transactions")).one()
        outcome = conn.execute(sa.text("SELECT outcome FROM sync_runs ORDER BY started_at DESC LIMIT 1")).scalar()
    engine.dispose()
    assert tuple(after) == tuple(before)
    assert outcome == "failed"


def test_overview_shows_balances_charts_and_sync_status(offline):
    connect(open_page("connections"), "user-ok")
    at = open_page("overview")

    labels = [m.label for m in at.metric]
    assert "Net worth (BRL)" in labels and "Spending in period" in labels
    net_worth = next(m.value for m in at.metric if m.label == "Net worth (BRL)")
    assert net_worth.startswith(("R$", "-R$"))
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # net worth, income vs spending, spending by category
    accounts = at.dataframe[0].value  # then one top-merchants and one credit-card table for BRL
    assert len(accounts) == 4 and list(accounts.columns[:2]) == ["Institution", "Account"]  # + investments, loan
    assert [d.value.columns[0] for d in at.dataframe[1:]] == ["Merchant", "Card"]
    assert any("Pluggy Bank" in m.value and "Connected" in m.value for m in at.markdown)

    at.toggle(key="period_pending").set_value(False)
    at.run()
    assert not at.exception


def test_disconnect_can_keep_or_drop_history(offline):
    at = connect(open_page("connections"), "user-ok")
    at.checkbox(key=next(c.key for c in at.checkbox if c.key.startswith("keep_"))).uncheck()
    button(at, "Disconnect").click()
    at.run()
    assert "disconnected and its data deleted" in at.success[0].value
    engine = store(offline)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM transactions")).scalar() == 0
        assert conn.execute(sa.text("SELECT COUNT(*) FROM connections")).scalar() == 0
    engine.dispose()


def test_connect_a_plaid_sandbox_bank_beside_pluggy(offline):
    at = connect(open_page("connections"), "user-ok")
    at.radio(key="provider").set_value("plaid")
    at.run()
    send(at, PLAID, "choose", institution_id="ins_109508")
    done = send(at, PLAID, "submit", values={"username": "user_good", "password": "pass_good"})
    assert done["step"] == "done" and "First Platypus Bank connected" in done["message"]

    at = open_page("overview")
    labels = [m.label for m in at.metric]
    assert "Net worth (BRL)" in labels and "Net worth (USD)" in labels
    assert len(at.get("plotly_chart")) == 6  # three figures per currency, never a mixed total
