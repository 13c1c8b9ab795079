"""The browser edge: an ASGI middleware in front of every route of `st.App` (pages, the websocket, webhooks).

- **Host check (DNS rebinding)**: a page on another site can point its own name at 127.0.0.1 and then read this app
  as same-origin. Every HTTP request and websocket handshake must therefore name this app in its `Host` header:
  127.0.0.1, localhost or [::1] with the port the request arrived on, the host of FINANCE_PUBLIC_URL, or one of
  FINANCE_ALLOWED_HOSTS. Anything else gets 403 and one line of text. (Streamlit's own `server.allowedHosts` checks
  the websocket only, ignores ports and is empty by default.)
- **Secure cookies over HTTPS**: Streamlit marks its XSRF and session cookies `Secure` only when it terminates TLS
  itself (`server.sslCertFile`), and its sign-in cookies never. Here every cookie of a response gets `Secure` when
  the browser's request was HTTPS: the request's scheme is https (TLS on the server, or `X-Forwarded-Proto: https`
  from a proxy uvicorn trusts: FORWARDED_ALLOW_IPS, loopback by default), or it came for the host of an https
  FINANCE_PUBLIC_URL (a TLS-terminating proxy in front).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from finance.config import Settings
from finance.i18n import N_

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
WRONG_HOST = N_("This address is not one this app answers to. Open the app at its own address, or add this one to "
                "FINANCE_ALLOWED_HOSTS.")


def _host_and_port(host: str) -> tuple[str, int | None] | None:
    """The lower-cased name and the port of a Host header, or None when it is not a plain host[:port]."""
    try:
        parts = urlsplit(f"//{host}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    return parts.hostname.rstrip("."), port


class BrowserEdge:
    """Refuses requests whose Host is not this app's, and marks cookies Secure on HTTPS requests (module docstring).
    Pure ASGI, so it sees the websocket handshake too."""

    def __init__(self, app: ASGIApp, *, public_url: str | None = None, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.public: tuple[str, int] | None = None
        self.public_https = False
        if public_url:
            parts = urlsplit(public_url)
            assert parts.hostname is not None  # config checked it
            self.public = (parts.hostname.lower(), parts.port or DEFAULT_PORTS[parts.scheme])
            self.public_https = parts.scheme == "https"
        self.allowed = [found for found in map(_host_and_port, allowed_hosts) if found]

    def allows(self, host: str | None, scheme: str, server_port: int | None) -> bool:
        """`host` (the Host header) names this app, for a request in `scheme` that arrived on `server_port`."""
        parsed = _host_and_port(host) if host else None
        if parsed is None:
            return False
        name, port = parsed
        if name in LOOPBACK_NAMES and server_port is not None and (port or DEFAULT_PORTS.get(scheme)) == server_port:
            return True
        if self.public is not None and name == self.public[0] and port in (None, self.public[1]):
            return True  # no port: the proxy in front answers on the public URL's default port
        return any(name == allowed and (allowed_port is None or port == allowed_port)
                   for allowed, allowed_port in self.allowed)

    def is_https(self, scope: Scope, host: str | None) -> bool:
        """The browser made this request over HTTPS (directly, through a trusted proxy, or at an https public URL)."""
        if scope.get("scheme") in ("https", "wss"):
            return True
        parsed = _host_and_port(host) if host else None
        return self.public_https and parsed is not None and self.public is not None and parsed[0] == self.public[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        server = scope.get("server")
        if not self.allows(host, scope.get("scheme", "http"), server[1] if server else None):
            await _refuse(scope, receive, send, str(WRONG_HOST))
            return
        if scope["type"] == "http" and self.is_https(scope, host):
            send = _secure_cookies(send)
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    return values[0].decode("latin-1") if len(values) == 1 else None  # none, or two Host headers: no host


def _secure_cookies(send: Send) -> Send:
    """`send`, adding the `Secure` attribute to every Set-Cookie header that lacks it."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                (key, value + b"; Secure") if key.lower() == b"set-cookie" and not _has_secure(value) else (key, value)
                for key, value in message.get("headers", ())]
        await send(message)

    return sending


def _has_secure(cookie: bytes) -> bool:
    return any(part.strip().lower() == b"secure" for part in cookie.split(b";")[1:])


async def _refuse(scope: Scope, receive: Receive, send: Send, text: str) -> None:
    """403 with one line of text; for a websocket, as the handshake's answer where the server can send one."""
    if scope["type"] == "websocket":
        await receive()  # the handshake's websocket.connect, which comes before any answer
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})  # the server answers the handshake with 403


def middleware(settings: Settings) -> Any:
    """The Starlette `Middleware` entry for `st.App(middleware=[...])`, configured from `settings`."""
    from starlette.middleware import Middleware

    return Middleware(BrowserEdge, public_url=settings.public_url, allowed_hosts=settings.allowed_hosts)
