"""Two people sign in through a real OpenID Connect provider (tests/oidc/server.mjs, node's oidc-provider, on
127.0.0.1) into one `streamlit run app.py` with an `[auth]` section: the first owns the 'local' household, the second
gets one of their own; each connects a sandbox bank and neither sees the other's, by any page, URL parameter, CSV
export, SQL console query or by signing out and in as the other in the same browser; a viewer the owner invited sees
no edit controls. Every test runs on a DuckDB store (a file per household) and on a PostgreSQL one (one database,
row-level security).

Without tests/oidc/node_modules the tests skip on a developer machine (`cd tests/oidc && npm ci`) and fail in CI.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from finance.config import load_settings
from tests.browser.conftest import PROVIDER_VARIABLES, REPO, STARTUP_SECONDS, _loopback_only, free_port
from tests.browser.test_dashboard import SLOW, connect_plaid, connect_pluggy_with_mfa, expect, open_page

pytestmark = pytest.mark.browser

OIDC = REPO / "tests" / "oidc"
BRL, USD = re.compile(r"\bBRL\b"), re.compile(r"\bUSD\b")
"""The currency codes as words: a text match is otherwise case-insensitive and finds "usd" in "StatusDirection"."""


def _wait(url: str, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start in {STARTUP_SECONDS} s:\n{log.read_text()}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def store_environment(engine: str, request: pytest.FixtureRequest, env: dict[str, str]) -> dict[str, str]:
    """What the app's environment `env` adds for its store: nothing on DuckDB (the data folder's file); on PostgreSQL a
    fresh database on the tests' server, upgraded with `python -m finance db upgrade` as README "Running on PostgreSQL"
    says, and the encryption key every process of that store shares. The tests' login is a superuser, so the app's
    transactions switch to the role finance_app (finance/store/db.py): row-level security keeps households apart."""
    if engine == "duckdb":
        return {}
    store = {"FINANCE_DATABASE_URL": request.getfixturevalue("postgres_server")(),
             "FINANCE_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    done = subprocess.run([sys.executable, "-m", "finance", "db", "upgrade"], cwd=REPO, env=env | store,
                          capture_output=True, text=True, timeout=STARTUP_SECONDS, check=False)
    if done.returncode != 0:
        pytest.fail(f"`finance db upgrade` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return store


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def app_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """The OIDC provider and the app (its [auth] pointing at it) on a store of each engine, both on free loopback
    ports; stopped after."""
    node = shutil.which("node")
    if node is None or not (OIDC / "node_modules" / "oidc-provider").is_dir():
        reason = "the test OpenID Connect provider is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: .ci/run installs it (cd tests/oidc && npm ci).", pytrace=False)
        pytest.skip(f"{reason} (cd tests/oidc && npm ci)")
    data = tmp_path_factory.mktemp("sign-in")
    app_port, oidc_port = free_port(), free_port()
    client_id, client_secret = "finance-tests", secrets.token_urlsafe(24)
    redirect = f"http://127.0.0.1:{app_port}/oauth2callback"
    oidc_log = data / "oidc.log"
    with oidc_log.open("w") as log:
        oidc = subprocess.Popen([node, "server.mjs", str(oidc_port), client_id, client_secret, redirect], cwd=OIDC,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{oidc_port}/.well-known/openid-configuration", oidc, oidc_log, "the OIDC provider")
        secrets_file = data / "secrets.toml"
        secrets_file.write_text(f"""[auth]
redirect_uri = "{redirect}"
cookie_secret = "{secrets.token_urlsafe(32)}"
client_id = "{client_id}"
client_secret = "{client_secret}"
server_metadata_url = "http://127.0.0.1:{oidc_port}/.well-known/openid-configuration"
client_kwargs = {{ prompt = "login" }}
""")
        env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARIABLES}
        env.update(FINANCE_DATA_DIR=str(data / "data"), FINANCE_SANDBOX_SETTLE_SECONDS="0")
        if not (load_settings(env).pluggy_offline and load_settings(env).plaid_offline):
            pytest.skip("provider credentials are set in .streamlit/secrets.toml; the browser tests use the emulators")
        env.update(store_environment(request.param, request, env))
        app_log = data / "streamlit.log"
        with app_log.open("w") as log:
            app = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                 "--server.port", str(app_port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                 "--server.fileWatcherType", "none", "--server.runOnSave", "false",
                 "--secrets.files", str(secrets_file)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(f"http://127.0.0.1:{app_port}/_stcore/health", app, app_log, "streamlit")
            yield f"http://127.0.0.1:{app_port}"
        finally:
            _stop(app)
    finally:
        _stop(oidc)


def sign_in(page: Any, app_url: str, name: str) -> None:
    """Through the provider's own login form and consent page, back to the app."""
    page.goto(app_url)
    page.get_by_role("button", name="Sign in").click()
    page.locator("input[name=login]").fill(name)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text(f"Signed in as {name}@example.com")).to_be_visible(timeout=SLOW)


def sign_out(page: Any) -> None:
    """The app's sign-out, then the provider's own (its end-session page asks to confirm). The button is pressed
    once the page's script has finished (a press during a rerun can be lost), and the provider's page may take as
    long as any other step on a loaded machine."""
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning", timeout=SLOW)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click(timeout=SLOW)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=SLOW)


def opened(page: Any, app_url: str, path: str, heading: str) -> None:
    """The page at `path` shows its heading and no error (an exception, an error message): no page fails on either
    engine, e.g. for a grant or a row-level security policy the app's PostgreSQL role lacks."""
    open_page(page, app_url, path, heading)
    # Only once the page's script has finished is what it shows complete: a check for what must not be there could
    # otherwise pass on a half-drawn page.
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning", timeout=SLOW)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)


def connections(page: Any, app_url: str) -> Any:
    opened(page, app_url, "connections", "Connections")
    return page.locator("[data-testid=stMain]")


def downloaded_csv(page: Any, button: str) -> list[dict[str, str]]:
    """The rows of the CSV file the page's download button gives."""
    with page.expect_download(timeout=SLOW) as download:
        page.get_by_role("button", name=button).click()
    return list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))


def exported_transactions(page: Any, app_url: str) -> list[dict[str, str]]:
    """The Transactions page's "Export CSV" of its default view (every transaction that is not deleted)."""
    opened(page, app_url, "transactions", "Transactions")
    return downloaded_csv(page, "Export CSV")


def console_answer(page: Any, app_url: str, sql: str) -> dict[str, str]:
    """The one row the Explore console's query gives, as its "Download CSV" holds it."""
    opened(page, app_url, "explore", "Explore")
    area = page.get_by_label("SQL", exact=True)
    area.fill(sql)
    area.press("Control+Enter")  # commits the text before Run reads it
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_text("1 row in")).to_be_visible(timeout=SLOW)
    (row,) = downloaded_csv(page, "Download CSV")
    return row


def new_context(browser: Any) -> Any:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.route("**/*", _loopback_only)
    context.set_default_timeout(30_000)
    return context


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = new_context(browser)
    yield context
    context.close()


@pytest.mark.slow
def test_nothing_but_the_sign_in_page_before_signing_in(context: Any, app_url: str) -> None:
    page = context.new_page()
    for path in ("", "transactions", "connections", "members", "audit"):
        page.goto(f"{app_url}/{path}")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=SLOW)
        expect(page.get_by_role("heading", name="Transactions")).to_have_count(0)
        expect(page.get_by_text("Connect a bank")).to_have_count(0)


@pytest.mark.slow
def test_two_households_never_see_each_other(browser: Any, context: Any, app_url: str) -> None:
    alice = context.new_page()
    sign_in(alice, app_url, "alice")  # the first person: owner of the local household
    expect(alice.get_by_text("Signed in as alice@example.com (Owner)")).to_be_visible()
    connections(alice, app_url)
    connect_pluggy_with_mfa(alice)
    alices = exported_transactions(alice, app_url)
    alices_accounts = sorted({row["account_id"] for row in alices})
    assert alices and alices_accounts

    other = new_context(browser)
    try:
        bob = other.new_page()
        sign_in(bob, app_url, "bob")  # no invitation: a household of his own
        main = connections(bob, app_url)
        expect(main.get_by_text("No banks connected yet")).to_be_visible()
        connect_plaid(bob)
        bobs = exported_transactions(bob, app_url)  # his export: his bank's rows, none of Alice's
        assert bobs and {row["institution"] for row in bobs} == {"First Platypus Bank"}
        assert not {row["id"] for row in bobs} & {row["id"] for row in alices}
        assert not {row["account_id"] for row in bobs} & set(alices_accounts)
        # His console counts his rows only, and neither the tables nor the catalogs name Alice's accounts.
        listed = ", ".join(f"'{account}'" for account in alices_accounts)
        named = " OR ".join(f"contains(text, '{account}')" for account in alices_accounts)
        assert console_answer(bob, app_url, f"""
            SELECT (SELECT count(*) FROM transactions WHERE deleted_at IS NULL) AS transactions,
                   (SELECT count(DISTINCT household_id) FROM transactions) AS households,
                   (SELECT count(*) FROM accounts WHERE id IN ({listed}))
                   + (SELECT count(*) FROM transactions WHERE account_id IN ({listed})) AS alices_rows,
                   (SELECT count(*) FROM (SELECT sql AS text FROM duckdb_views() UNION ALL
                                          SELECT sql FROM duckdb_tables() UNION ALL
                                          SELECT table_name FROM information_schema.tables)
                    WHERE {named}) AS alices_in_catalogs""") == {
            "transactions": str(len(bobs)), "households": "1", "alices_rows": "0", "alices_in_catalogs": "0"}
        # His pages (the Explore page's example query and schema name BRL: the console query above is its proof).
        for path, heading in (("", "Overview"), ("transactions", "Transactions"), ("connections", "Connections"),
                              ("transactions?household=local&lang=en", "Transactions")):
            opened(bob, app_url, path, heading)
            expect(bob.locator("[data-testid=stMain] h3").filter(has_text="Pluggy Bank")).to_have_count(0)
            expect(bob.get_by_text("Pluggy Bank ·")).to_have_count(0)
            expect(bob.get_by_text(BRL)).to_have_count(0)
        opened(bob, app_url, "members", "Members")  # the owner of his own household, alone in it
        expect(bob.get_by_text("alice@example.com")).to_have_count(0)
    finally:
        other.close()

    for path, heading in (("", "Overview"), ("transactions", "Transactions"), ("connections", "Connections")):
        opened(alice, app_url, path, heading)
        expect(alice.get_by_text("First Platypus Bank")).to_have_count(0)
        expect(alice.get_by_text(USD)).to_have_count(0)

    # Alice signs out and Bob signs in in the same browser: none of Alice's figures stay.
    sign_out(alice)
    sign_in(alice, app_url, "bob")
    for path, heading in (("", "Overview"), ("connections", "Connections")):
        opened(alice, app_url, path, heading)
        # .filter(visible=True): the data grid's accessible copy of a cell is in the page too, hidden, and came first
        expect(alice.get_by_text("First Platypus Bank").filter(visible=True).first).to_be_visible(timeout=SLOW)
        # Alice's bank as a connection or an account's institution; the connect widget may list the sandbox's
        # "Pluggy Bank (sandbox)" to connect, as it does for anyone (a CI run matched it once it had drawn)
        expect(alice.locator("[data-testid=stMain] h3").filter(has_text="Pluggy Bank")).to_have_count(0)
        expect(alice.get_by_test_id("stMarkdownContainer").filter(has_text="Pluggy Bank")).to_have_count(0)
        expect(alice.get_by_text(BRL)).to_have_count(0)


@pytest.mark.slow
def test_an_invited_viewer_sees_the_household_but_no_controls(browser: Any, context: Any, app_url: str) -> None:
    owner = context.new_page()
    sign_in(owner, app_url, "alice")
    owner.goto(f"{app_url}/members")
    expect(owner.get_by_role("heading", name="Members", exact=True)).to_be_visible(timeout=SLOW)
    owner.get_by_label("E-mail address").fill("grandma@example.com")
    owner.get_by_test_id("stSelectbox").filter(has_text="Role").first.click()
    owner.get_by_role("option", name="Viewer").click()
    owner.get_by_role("button", name="Invite").click()
    # The flash message is shown literally (an e-mail address never becomes a link: finance.formatting), so the
    # invitation is read off the members list.
    expect(owner.get_by_text("grandma@example.com · invitation open")).to_be_visible(timeout=SLOW)

    other = new_context(browser)
    try:
        viewer = other.new_page()
        sign_in(viewer, app_url, "grandma")
        expect(viewer.get_by_text("Signed in as grandma@example.com (Viewer)")).to_be_visible()
        main = connections(viewer, app_url)
        expect(main.get_by_text("Pluggy Bank").filter(visible=True).first).to_be_visible(timeout=SLOW)  # its bank
        for control in ("Sync now", "Reconnect", "Disconnect"):
            expect(main.get_by_role("button", name=control)).to_have_count(0)
        expect(main.get_by_text("Connect a bank")).to_have_count(0)
        viewer.goto(f"{app_url}/members")  # not an owner: no Members page at all
        expect(viewer.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=SLOW)
        expect(viewer.get_by_role("heading", name="Members", exact=True)).to_have_count(0)
        viewer.goto(f"{app_url}/import_files")
        expect(viewer.get_by_text("Importing files changes the household's data")).to_be_visible(timeout=SLOW)
    finally:
        other.close()

    owner.goto(f"{app_url}/audit")
    expect(owner.get_by_role("heading", name="Audit log", exact=True)).to_be_visible(timeout=SLOW)
    table = owner.get_by_test_id("stDataFrame")
    expect(table).to_be_visible(timeout=SLOW)
