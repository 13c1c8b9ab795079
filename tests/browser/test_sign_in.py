"""Two people sign in through a real OpenID Connect provider (tests/oidc/server.mjs, node's oidc-provider, on
127.0.0.1) into one `streamlit run app.py` with an `[auth]` section: the first owns the 'local' household, the second
gets one of their own; each connects a sandbox bank and neither sees the other's, by any page, URL parameter or by
signing out and in as the other in the same browser; a viewer the owner invited sees no edit controls.

Without tests/oidc/node_modules the tests skip on a developer machine (`cd tests/oidc && npm ci`) and fail in CI.
"""

from __future__ import annotations

import os
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

from finance.config import load_settings
from tests.browser.conftest import PROVIDER_VARIABLES, REPO, STARTUP_SECONDS, free_port
from tests.browser.test_dashboard import SLOW, connect_plaid, connect_pluggy_with_mfa, expect

pytestmark = pytest.mark.browser

OIDC = REPO / "tests" / "oidc"


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


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The OIDC provider and the app (its [auth] pointing at it), both on free loopback ports; stopped after."""
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
    """The app's sign-out, then the provider's own (its end-session page asks to confirm)."""
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=SLOW)


def connections(page: Any, app_url: str) -> Any:
    page.goto(f"{app_url}/connections")
    expect(page.get_by_role("heading", name="Connections", exact=True)).to_be_visible(timeout=SLOW)
    return page.locator("[data-testid=stMain]")


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    from tests.browser.conftest import _loopback_only

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", _loopback_only)
    context.set_default_timeout(30_000)
    yield context
    context.close()


def test_nothing_but_the_sign_in_page_before_signing_in(context: Any, app_url: str) -> None:
    page = context.new_page()
    for path in ("", "transactions", "connections", "members", "audit"):
        page.goto(f"{app_url}/{path}")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=SLOW)
        expect(page.get_by_role("heading", name="Transactions")).to_have_count(0)
        expect(page.get_by_text("Connect a bank")).to_have_count(0)


def test_two_households_never_see_each_other(browser: Any, context: Any, app_url: str) -> None:
    alice = context.new_page()
    sign_in(alice, app_url, "alice")  # the first person: owner of the local household
    expect(alice.get_by_text("Signed in as alice@example.com (Owner)")).to_be_visible()
    connections(alice, app_url)
    connect_pluggy_with_mfa(alice)

    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        bob = other.new_page()
        sign_in(bob, app_url, "bob")  # no invitation: a household of his own
        main = connections(bob, app_url)
        expect(main.get_by_text("No banks connected yet")).to_be_visible()
        connect_plaid(bob)
        for path, heading in (("", "Overview"), ("transactions", "Transactions"), ("connections", "Connections"),
                              ("transactions?household=local&lang=en", "Transactions"), ("explore", "Explore")):
            bob.goto(f"{app_url}/{path}")
            expect(bob.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=SLOW)
            expect(bob.locator("[data-testid=stMain] h3").filter(has_text="Pluggy Bank")).to_have_count(0)
            expect(bob.get_by_text("Pluggy Bank ·")).to_have_count(0)
            expect(bob.get_by_text("BRL")).to_have_count(0)
        bob.goto(f"{app_url}/members")  # the owner of his own household, alone in it
        expect(bob.get_by_role("heading", name="Members", exact=True)).to_be_visible(timeout=SLOW)
        expect(bob.get_by_text("alice@example.com")).to_have_count(0)
    finally:
        other.close()

    for path, heading in (("", "Overview"), ("transactions", "Transactions"), ("connections", "Connections")):
        alice.goto(f"{app_url}/{path}")
        expect(alice.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=SLOW)
        expect(alice.get_by_text("First Platypus Bank")).to_have_count(0)
        expect(alice.get_by_text("USD")).to_have_count(0)

    # Alice signs out and Bob signs in in the same browser: none of Alice's figures stay.
    sign_out(alice)
    sign_in(alice, app_url, "bob")
    for path, heading in (("", "Overview"), ("connections", "Connections")):
        alice.goto(f"{app_url}/{path}")
        expect(alice.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=SLOW)
        expect(alice.get_by_text("First Platypus Bank").first).to_be_visible(timeout=SLOW)
        expect(alice.get_by_text("Pluggy Bank")).to_have_count(0)
        expect(alice.get_by_text("BRL")).to_have_count(0)


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

    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        viewer = other.new_page()
        sign_in(viewer, app_url, "grandma")
        expect(viewer.get_by_text("Signed in as grandma@example.com (Viewer)")).to_be_visible()
        main = connections(viewer, app_url)
        expect(main.get_by_text("Pluggy Bank").first).to_be_visible(timeout=SLOW)  # the household's connection
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
