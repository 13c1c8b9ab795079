"""The browser edge (finance.edge) on a real `streamlit run app.py`: a request naming another host — what a DNS
rebinding page sends — is refused on the pages and on the websocket; cookies are Secure over HTTPS; XSRF stays on."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from finance.config import load_settings
from finance.edge import BrowserEdge
from tests.test_e2e_webhooks import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
PUBLIC = "finance.example.test"


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:<port>
    data: Path  # its data folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`streamlit run app.py` on a free loopback port, public at an https URL (nothing is ever sent there), started
    under a umask that lets group and others read (as a careless service manager may)."""
    tmp = tmp_path_factory.mktemp("edge")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGGY_", "PLAID_", "FINANCE_", "STREAMLIT_"))}
    env |= {"FINANCE_DATA_DIR": str(tmp / "data"), "FINANCE_PUBLIC_URL": f"https://{PUBLIC}",
            "FINANCE_ALLOWED_HOSTS": "finance.lan:9000", "FINANCE_SYNC_INTERVAL": "off", "PYTHONPATH": str(REPO)}
    with (tmp / "app.log").open("wb") as log:
        app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true",
                                "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, preexec_fn=lambda: os.umask(0o022))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the app", lambda: httpx.get(f"{base}/_stcore/health", timeout=2).status_code == 200)
        yield Served(base, tmp / "data")
    finally:
        app.terminate()
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait(timeout=10)


@pytest.fixture(scope="module")
def server(served: Served) -> str:
    return served.base


def get(base: str, path: str, host: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{base}{path}", headers={"Host": host, **headers}, timeout=10)


def websocket_status(base: str, host: str) -> int:
    """The HTTP status the server answers a websocket handshake on /_stcore/stream with (101: accepted)."""
    port = int(base.rsplit(":", 1)[1])
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: streamlit\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_a_rebound_host_is_refused_with_one_line(server: str) -> None:
    for path in ("/", "/_stcore/health", "/webhooks/pluggy", "/api/status"):
        refused = get(server, path, "evil.example")
        assert refused.status_code == 403, path
        assert refused.text.count("\n") == 1 and "FINANCE_ALLOWED_HOSTS" in refused.text
    port = server.rsplit(":", 1)[1]
    assert get(server, "/", f"evil.example:{port}").status_code == 403  # the right port is not enough
    assert get(server, "/", "127.0.0.1:1").status_code == 403  # nor is a loopback name with another port


def test_the_status_route_answers_loopback_but_never_a_proxied_request(server: str) -> None:
    """A reverse proxy on this machine connects from loopback: what it forwards is someone else's request."""
    port = server.rsplit(":", 1)[1]
    assert get(server, "/api/status", f"127.0.0.1:{port}").status_code == 200
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        refused = get(server, "/api/status", f"127.0.0.1:{port}", **{header: "203.0.113.9"})
        assert refused.status_code == 404 and "transactions" not in refused.text, header


def test_this_apps_own_names_are_served(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", PUBLIC, f"{PUBLIC}:443",
                 "finance.lan:9000"):
        assert get(server, "/_stcore/health", host).status_code == 200, host
    assert get(server, "/_stcore/health", "finance.lan:9001").status_code == 403


def test_the_websocket_refuses_a_rebound_host(server: str) -> None:
    assert websocket_status(server, "evil.example") == 403
    assert websocket_status(server, f"127.0.0.1:{server.rsplit(':', 1)[1]}") == 101


def xsrf_cookie(response: httpx.Response) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith("_streamlit_xsrf="))


def test_cookies_are_secure_over_https_only(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    assert "Secure" not in xsrf_cookie(get(server, "/_stcore/health", f"127.0.0.1:{port}"))
    # a TLS-terminating proxy on loopback says so in X-Forwarded-Proto (uvicorn trusts loopback proxies)
    proxied = get(server, "/_stcore/health", f"127.0.0.1:{port}", **{"X-Forwarded-Proto": "https"})
    assert xsrf_cookie(proxied).endswith("; Secure")
    assert xsrf_cookie(get(server, "/_stcore/health", PUBLIC)).endswith("; Secure")  # the https public URL's host


def test_xsrf_protection_stays_on() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"].get("enableXsrfProtection", True) is True
    assert config["server"].get("enableCORS", True) is True


def test_a_request_without_exactly_one_host_is_refused() -> None:
    sent: list[dict[str, object]] = []

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("reached the app")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    edge = BrowserEdge(app)  # type: ignore[arg-type]
    for headers in ([], [(b"host", b"127.0.0.1:8501"), (b"host", b"evil.example")], [(b"host", b"a b")]):
        scope = {"type": "http", "scheme": "http", "server": ("127.0.0.1", 8501), "headers": headers}
        asyncio.run(edge(scope, None, send))  # type: ignore[arg-type]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [403, 403, 403]


def test_allowed_hosts_setting_is_checked() -> None:
    assert load_settings({"FINANCE_ALLOWED_HOSTS": " Finance.LAN , 192.168.1.20:8501"}, Path("/nonexistent")
                         ).allowed_hosts == ("finance.lan", "192.168.1.20:8501")
    with pytest.raises(ValueError, match="FINANCE_ALLOWED_HOSTS"):
        load_settings({"FINANCE_ALLOWED_HOSTS": "http://finance.lan/x"}, Path("/nonexistent"))
