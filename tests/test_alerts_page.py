"""The Alerts page through AppTest on the demo banks: the list (bank text drawn as text), mark read, mark all read,
the settings form and its refusal of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.formatting import escape_markdown
from tests.conftest import ok, store_engine
from tests.test_alerts import HOSTILE

pytestmark = pytest.mark.engines

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/alerts.py"


@pytest.fixture
def page(demo_copy: Path, offline: Path) -> AppTest:
    """The Alerts page on a copy of the demo store whose newest BRL expense is a R$ 5.000,00 purchase today from a
    merchant named like markup."""
    engine = store_engine()
    with engine.begin() as conn:
        conn.execute(sa.text("""
            UPDATE transactions SET amount = -5000, merchant = :m, booked_date = current_date, category = 'shopping'
            WHERE id = (SELECT id FROM transactions WHERE amount < 0 AND status = 'posted' AND currency = 'BRL'
                        ORDER BY booked_date DESC, id LIMIT 1)"""), {"m": HOSTILE})
    engine.dispose()
    at = AppTest.from_file(APP, default_timeout=60)
    ok(at.run())
    at.switch_page(PAGE)
    return ok(at.run())


def unread(at: AppTest) -> int:
    return int(next(m.value for m in at.metric if m.label == "Unread"))


def test_opening_the_page_raises_the_alerts_and_shows_bank_text_as_text(page: AppTest):
    at = page
    assert "new alert" in at.success[0].value
    titles = [t.value for t in at.text]
    assert f"Large transaction: R$ 5.000,00 at {HOSTILE}" in titles
    assert not any("<img" in m.value for m in at.markdown)  # never Markdown or HTML
    assert unread(at) >= 1


def test_mark_read_and_mark_all_read(page: AppTest):
    at = page
    before = unread(at)
    next(b for b in at.button if b.key and b.key.startswith("alert_read_large_transaction:")).click()
    ok(at.run())
    assert at.success[0].value == escape_markdown("Marked as read.")  # flash messages are shown literally
    assert unread(at) == before - 1
    if before > 1:
        next(b for b in at.button if b.key == "alerts_mark_all").click()
        ok(at.run())
        assert unread(at) == 0
    at.toggle(key="alerts_unread_only").set_value(True)
    ok(at.run())
    assert at.info[0].value == "No unread alerts."


def test_settings_turn_a_kind_off_and_a_hostile_threshold_changes_nothing(page: AppTest, offline: Path):
    at = page
    at.text_input(key="alert_threshold_BRL").set_value(HOSTILE)
    at.button(key="FormSubmitter:alert_settings-Save alert settings").click()
    ok(at.run())
    assert escape_markdown("The BRL threshold must be an amount") in at.error[0].value
    at.toggle(key="alert_kind_large_transaction").set_value(False)
    at.text_input(key="alert_threshold_BRL").set_value("2500,50")
    at.button(key="FormSubmitter:alert_settings-Save alert settings").click()
    ok(at.run())
    assert at.success[0].value == escape_markdown("Alert settings saved.")
    engine = store_engine()
    with engine.connect() as conn:
        saved = dict(conn.execute(sa.text("SELECT name, value FROM alert_settings")).all())
    engine.dispose()
    assert saved == {"off:large_transaction": "true", "threshold:BRL": "2500.50"}
