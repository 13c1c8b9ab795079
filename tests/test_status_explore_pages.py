"""The Sync status and Explore pages through Streamlit's AppTest, on a sandbox store connected through the
Connections page. The pages run under a small entry script with st.navigation (as app.py does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from finance.store import console
from tests.conftest import store_engine
from tests.test_pages import button, connect

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[1]
PAGES = {"overview": "Overview", "connections": "Connections", "sync_status": "Sync status", "explore": "Explore"}


def app(tmp: Path) -> AppTest:
    """An app whose navigation holds the repo's pages, opened on Connections."""
    folder = tmp / "entry"
    folder.mkdir(exist_ok=True)
    if not (folder / "pages").exists():
        (folder / "pages").symlink_to(REPO / "pages", target_is_directory=True)
    entries = ", ".join(f"st.Page('pages/{name}.py', title={title!r}, default={name == 'connections'})"
                        for name, title in PAGES.items())
    (folder / "app.py").write_text(f"import streamlit as st\n\nst.navigation([{entries}]).run()\n")
    at = AppTest.from_file(str(folder / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table_counts(tmp: Path) -> dict[str, int]:
    engine = store_engine()
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                  for t in ("transactions", "accounts", "connections", "sync_runs")}
    engine.dispose()
    return counts


def test_sync_status_without_connections_points_to_connections(offline):
    at = goto(app(offline), "sync_status")
    assert "No banks connected yet" in at.info[0].value


def test_sync_status_shows_health_timeline_runs_and_the_fix_for_a_failure(offline):
    at = connect(app(offline), "user-ok")
    assert "Pluggy Bank connected" in at.success[0].value

    at = goto(at, "sync_status")
    assert any("Pluggy Bank" in m.value and "Connected" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 1
    runs = at.dataframe[0].value
    assert runs["Trigger"].tolist() == ["connect"] and runs["Outcome"].tolist() == ["Success"]
    assert runs["Added"].iloc[0] > 0
    assert "No open errors" in at.success[0].value

    at = goto(at, "connections")
    at.selectbox(key="pluggy_fault_kind").select("malformed_json")  # not retried by the client: a fast failure
    at.selectbox(key="pluggy_fault_path").select("/v2/transactions")
    button(at, "Inject fault").click()
    at.run()
    button(at, "Sync now").click()
    at.run()

    at = goto(at, "sync_status")
    assert any("Pluggy Bank" in m.value and "Failed" in m.value for m in at.markdown)
    assert "not valid JSON" in at.error[0].value
    assert any("Will retry on the next sync; press Sync now on Connections" in m.value for m in at.markdown)
    assert sorted(at.dataframe[0].value["Outcome"]) == ["Failed", "Success"]

    at.selectbox(key="status_connection").select_index(1)
    at.run()
    assert not at.exception and len(at.dataframe[0].value) == 2


def test_explore_runs_queries_shows_errors_offers_downloads_and_saves(offline):
    at = goto(connect(app(offline), "user-ok"), "explore")
    before = table_counts(offline)

    at.text_area(key="explore_sql").input("SELECT currency, COUNT(*) AS n FROM transactions GROUP BY currency")
    button(at, "Run").click()
    at.run()
    assert not at.exception and not at.error
    result = at.dataframe[0].value
    assert result["currency"].tolist() == ["BRL"] and result["n"].iloc[0] == before["transactions"]
    assert [d.label for d in at.download_button] == ["Download CSV", "Download Parquet"]
    assert any(c.value.startswith("1 row in ") for c in at.caption)

    at.text_area(key="explore_sql").input("SELCT * FROM transactions")
    button(at, "Run").click()
    at.run()
    assert 'syntax error at or near "SELCT"' in at.error[0].value.replace("\\", "").replace("\u2060", "")
    assert not at.download_button

    for attack, expected in (("DROP TABLE transactions", "not allowed"),
                             ("SELECT encrypted_secret FROM connections", "never available"),
                             ("SELECT * FROM read_csv('/etc/passwd')", "cannot read files")):
        at.text_area(key="explore_sql").input(attack)
        button(at, "Run").click()
        at.run()
        assert expected in at.error[0].value
    assert table_counts(offline) == before

    at.text_area(key="explore_sql").input("SELECT id, institution_name FROM connections")
    at.text_input(key="explore_save_name").input("My connections")
    button(at, "Save").click()
    at.run()
    assert "Saved “My connections”" in at.success[0].value
    assert [q.name for q in console.load_saved_queries(console.saved_queries_path(offline))] == ["My connections"]

    at.selectbox(key="explore_saved").select(console.EXAMPLE_QUERIES[1].name)
    at.run()
    assert at.text_area(key="explore_sql").value == console.EXAMPLE_QUERIES[1].sql
    at.selectbox(key="explore_saved").select("My connections")
    at.run()
    assert at.text_area(key="explore_sql").value == "SELECT id, institution_name FROM connections"
    button(at, "Delete saved").click()
    at.run()
    assert "Deleted “My connections”" in at.success[0].value
    assert console.load_saved_queries(console.saved_queries_path(offline)) == []


def test_explore_documents_the_schema_with_the_text_of_docs_schema_md(offline):
    from finance.store import schema_doc
    from finance.store.snapshot import SNAPSHOT_VIEWS

    at = goto(app(offline), "explore")
    labels = [e.label for e in at.expander]
    assert [label.split("`")[1] for label in labels] == [doc.name for doc in console.schema_doc()] + list(
        SNAPSHOT_VIEWS)
    connections_doc = next(e.markdown[0].value for e in at.expander if "`connections`" in e.label)
    secret = next(line for line in connections_doc.splitlines() if line.startswith("| `encrypted_secret`"))
    assert "never available" in secret
    shown = [m.value.strip() for m in at.markdown]
    assert schema_doc.INTRO.strip() in shown
    for section in schema_doc.sections():  # docs/schema.md holds the same text (tests/test_schema_doc.py)
        assert section.markdown in shown


def test_sync_status_shows_background_work_schedule_and_webhooks(offline, monkeypatch, db_kind):
    if db_kind == "postgresql":
        pytest.skip("the in-process worker is DuckDB's; the page's PostgreSQL queue is tested in tests/test_jobs.py")
    import json
    from datetime import timedelta

    import finance.worker
    from finance.config import load_settings
    from finance.services import shared_services
    from finance.webhooks import WebhookReceiver

    at = connect(app(offline), "user-ok")
    svc = shared_services(load_settings())
    worker = finance.worker.Worker(svc, interval=timedelta(hours=6), debounce=0.0)
    monkeypatch.setattr(finance.worker, "current", lambda household="local": worker)  # as the app server's
    with svc.engine.connect() as conn:
        item_id = conn.execute(sa.text("SELECT external_id FROM connections")).scalar_one()
    receiver = WebhookReceiver(svc, worker)
    body = json.dumps({"event": "transactions/created", "eventId": "e-1", "itemId": item_id}).encode()
    assert receiver.receive("pluggy", {"X-Webhook-Secret": svc.webhook_secret}, body, None).status == 200
    assert receiver.receive("pluggy", {"X-Webhook-Secret": "forged"}, body, None).status == 401
    worker.check_schedule()
    assert worker.run_until_idle() == 1

    at = goto(at, "sync_status")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Queued syncs": "0", "Webhooks received": "1", "Webhooks rejected": "1",
                       "Workers alive": "0"}  # its thread was not started: the test runs its work
    # every 6 h asked, but Pluggy updates a bank at most every 8 h: the card says the interval it really follows
    assert any("Next scheduled sync in 8 h (every 8 h)." in c.value for c in at.caption)
    assert any(":green-badge[active]" in m.value for m in at.markdown)
    assert any("Syncs run by the worker: 1 webhook." in m.value for m in at.markdown)
    events = next(d.value for d in at.dataframe if "Event" in d.value.columns)
    assert events[["Provider", "Event", "Concerns", "Outcome"]].values.tolist() == [
        ["pluggy", "transactions/created", "Pluggy Bank", "processed"]]
    assert "Up to date" in events["What happened"].iloc[0] or "Synced" in events["What happened"].iloc[0]
