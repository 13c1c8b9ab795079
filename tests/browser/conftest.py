"""Browser fixtures: `streamlit run app.py` on a free loopback port (one server per test module, on a fresh data
folder, offline emulators, instant sandbox bank), and Debian's Chromium driven by Playwright (one per module).

Without /usr/bin/chromium (or Playwright) the tests skip on a developer machine, but FAIL when the CI
environment variable is set: CI installs the browser (.ci/run), so a missing one is a broken pipeline.
Pages may only reach 127.0.0.1: every other request is aborted, so no test ever touches the network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from finance.config import load_settings

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROVIDER_VARIABLES = ("PLUGGY_CLIENT_ID", "PLUGGY_CLIENT_SECRET", "PLUGGY_BASE_URL", "PLAID_CLIENT_ID", "PLAID_SECRET",
                      "PLAID_BASE_URL", "FINANCE_DATABASE_URL", "FINANCE_ENCRYPTION_KEY")
STARTUP_SECONDS = 60


def unavailable(reason: str) -> None:
    """Skip on a developer machine; fail in CI, where the browser must be installed."""
    if os.environ.get("CI"):
        pytest.fail(f"Browser tests cannot run in CI: {reason}. .ci/run installs Debian's chromium "
                    "(apt-get install -y chromium) before `make test`.", pytrace=False)
    pytest.skip(f"{reason} (install it with: sudo apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module's tests. Not session-wide: Playwright's sync API keeps an asyncio loop on the main
    thread while it runs, which would break later tests that start their own loop (asyncio.run, anyio)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served by `streamlit run` on 127.0.0.1, offline, on an empty data folder; stopped afterwards."""
    data = tmp_path_factory.mktemp("browser-data")
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARIABLES}
    env.update(FINANCE_DATA_DIR=str(data), FINANCE_SANDBOX_SETTLE_SECONDS="0")
    settings = load_settings(env)
    if not (settings.pluggy_offline and settings.plaid_offline):
        pytest.skip("provider credentials are set in .streamlit/secrets.toml; the browser tests use the emulators")
    port = free_port()
    log = (data / "streamlit.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--server.runOnSave", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with {server.returncode}:\n{(data / 'streamlit.log').read_text()}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start in {STARTUP_SECONDS} s:\n{(data / 'streamlit.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _loopback_only(route: Any) -> None:
    host = urlsplit(route.request.url).hostname
    if host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.route("**/*", _loopback_only)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()
