"""Pieces shared by the emulators: an advanceable clock, switchable faults, a loopback HTTP server, and the delivery
of their webhooks over loopback with the provider's retry schedule."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from finance.private_files import write_private

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
OUTBOX_LIMIT = 1000
DELIVERY_LOG_LIMIT = 1000


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs and JWKs carry bytes (both emulators sign with it)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Clock:
    """The emulator's idea of "now": real time (or a fixed start) plus an offset testers can advance.

    Advancing the clock is how new transactions arrive and pending ones post between syncs.
    """

    def __init__(self, start: datetime | None = None, offset: timedelta = timedelta(0)) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("Clock start must be timezone-aware")
        self._start = start
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> datetime:
        base = self._start if self._start is not None else datetime.now(UTC)
        with self._lock:
            return base + self._offset

    def advance(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
        step = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if step < timedelta(0):
            raise ValueError("The sandbox clock only moves forward")
        with self._lock:
            self._offset += step
        return self.now()

    @property
    def offset(self) -> timedelta:
        return self._offset

    def to_state(self) -> dict[str, object]:
        return {
            "start": self._start.isoformat() if self._start else None,
            "offset_seconds": self._offset.total_seconds(),
        }

    def load_state(self, state: dict[str, object]) -> None:
        """Take over a saved state in place, so every holder of this Clock sees what another process stored."""
        other = Clock.from_state(state)
        with self._lock:
            self._start, self._offset = other._start, other._offset

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Clock:
        start = state.get("start")
        return cls(
            start=datetime.fromisoformat(str(start)) if start else None,
            offset=timedelta(seconds=float(state.get("offset_seconds", 0) or 0)),  # type: ignore[arg-type]
        )


@dataclass
class Fault:
    """One injected failure.

    kind: a fault name the emulator understands. Every emulator renders the generic ones:
      "rate_limit" (429 with the provider's headers), "server_error" (500), "unavailable" (503),
      "timeout" (the transport raises httpx.ReadTimeout; served mode stalls), "malformed_json"
      (200 with a truncated body). Emulators add their own (e.g. an institution being down).
    path: only requests whose path starts with this are affected (None: every request).
    method: only this HTTP method (None: any).
    after: let this many matching requests through first (e.g. fail in the middle of a cursor walk).
    times: how many matching requests fail after that (-1: until cleared).
    """

    kind: str
    path: str | None = None
    method: str | None = None
    after: int = 0
    times: int = 1
    seen: int = field(default=0, repr=False)


class Faults:
    """A thread-safe list of pending faults, consulted by the emulator before handling each request."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, *, path: str | None = None, method: str | None = None,
            after: int = 0, times: int = 1) -> Fault:
        fault = Fault(kind=kind, path=path, method=method.upper() if method else None, after=after, times=times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [Fault(**asdict(f)) for f in self._faults]

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that applies to this request, if any, counting it as used."""
        with self._lock:
            for fault in self._faults:
                if fault.method and fault.method != method.upper():
                    continue
                if fault.path and not path.startswith(fault.path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                if fault.times != -1 and fault.seen > fault.after + fault.times:
                    continue
                return fault
        return None


Handler = Callable[[httpx.Request], httpx.Response]


class LoopbackServer:
    """Serves an emulator's handler over HTTP on 127.0.0.1, so other tools can point at it."""

    def __init__(self, handler: Handler, port: int = 0, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("The sandbox server only binds to loopback")
        self._handler = handler
        self._httpd = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        handler = self._handler

        class _Adapter(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                host = self.headers.get("Host") or "127.0.0.1"
                request = httpx.Request(
                    self.command, f"http://{host}{self.path}",
                    headers=[(k, v) for k, v in self.headers.items()], content=body,
                )
                try:
                    response = handler(request)
                except httpx.TimeoutException:
                    # A stalled upstream: close without answering, as a hung server would look.
                    self.close_connection = True
                    return
                content = response.content
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: object) -> None:
                return  # request lines may carry ids; keep them out of logs

        return _Adapter

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sandbox-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WebhookSender:
    """Delivers an emulator's outbox on a background thread: POSTs each webhook to its URL (loopback only: the
    emulators are offline), retrying failures on the provider's schedule (`retry_delays` seconds after each failed
    attempt, times `time_scale`, so tests can compress hours into milliseconds).

    The outbox lives in the emulator's state file, so a webhook another process queued (the CLI advancing the
    sandbox clock) is delivered by the process that runs the sender, which also applies whatever fell due (auto-syncs,
    refreshes) every `poll` seconds."""

    def __init__(self, emulator: EmulatorBase, *, time_scale: float = 1.0, poll: float = 0.25,
                 timeout: float = 10.0) -> None:
        self._emulator = emulator
        self._scale = time_scale
        self._poll = poll
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=15)
        self._http.close()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                for entry in self._emulator._due_webhooks():
                    if self._stopped.is_set():
                        break
                    self._attempt(entry)
            except Exception:  # a broken state file or a bug must not kill delivery for good
                log.exception("sandbox webhook delivery failed")
            self._wake.wait(self._poll)
            self._wake.clear()

    def _attempt(self, entry: dict[str, Any]) -> None:
        body = entry["body"].encode()
        status: int | None = None
        if urlsplit(entry["url"]).hostname not in LOOPBACK_HOSTS:
            outcome = "not sent: the offline emulator delivers only to 127.0.0.1/localhost"
        else:
            headers = {"Content-Type": "application/json", **entry["headers"], **self._emulator._sign_webhook(body)}
            try:
                status = self._http.post(entry["url"], content=body, headers=headers).status_code
                outcome = f"HTTP {status}"
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
        self._emulator._delivered(entry["id"], status, outcome, self._scale)


class EmulatorBase:
    """What every emulator shares: its clock, its transport and server, its state file and its webhook outbox.

    The state file holds only small facts (items, tokens, the clock, undelivered webhooks); it is written atomically
    and re-read whenever another process (the CLI, say) changed it. Subclasses set `_clock`, `_lock` and
    `state_path`, answer requests in `handle`, and say what their state is in `_state_to_dict`/`_state_from_dict`.
    """

    _clock: Clock
    _lock: threading.RLock
    state_path: Path | None
    _state_signature: tuple[int, int, int] | None = None
    _outbox: list[dict[str, Any]]
    _sender: WebhookSender | None = None
    WEBHOOK_RETRY_DELAYS: Sequence[float] = ()
    """Seconds to wait after each failed delivery before the next attempt; attempts = len + 1."""
    WEBHOOK_FINAL_STATUSES: frozenset[int] = frozenset()
    """Answers after which the provider does not retry."""
    request_log: list[tuple[str, str]]
    REQUEST_LOG_LIMIT = 10_000

    def _log_request(self, request: httpx.Request) -> None:
        """Remember (method, raw path) for tests and the UI; a long-running server must not grow without bound."""
        self.request_log.append((request.method.upper(), request.url.raw_path.decode("ascii", "replace")))
        if len(self.request_log) > self.REQUEST_LOG_LIMIT:
            del self.request_log[: self.REQUEST_LOG_LIMIT // 2]

    # -- webhooks ----------------------------------------------------------------------------------------------
    def _init_webhooks(self) -> None:
        """Call in __init__ before the state is opened."""
        self._outbox = []
        self.delivery_log: list[dict[str, Any]] = []
        """Every delivery attempt this process made (newest last): event, url, attempt, status, outcome, final."""

    def pending_webhooks(self) -> list[dict[str, Any]]:
        """The webhooks waiting to be delivered (or retried), oldest first: event, url, attempt, body."""
        with self._lock:
            self._reload_if_changed()
            return [dict(entry) for entry in self._outbox]

    def deliver_webhooks(self, *, time_scale: float = 1.0, poll: float = 0.25) -> None:
        """Start delivering this emulator's webhooks in the background (see WebhookSender)."""
        with self._lock:
            if self._sender is None:
                self._sender = WebhookSender(self, time_scale=time_scale, poll=poll).start()

    def stop_webhook_delivery(self) -> None:
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender.stop()

    def _enqueue_webhook(self, url: str, payload: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        """Queue one webhook (the caller holds the lock and saves the state). The body is serialized once here, so
        what is signed is exactly what is sent."""
        event = str(payload.get("event") or f"{payload.get('webhook_type')}/{payload.get('webhook_code')}")
        self._outbox.append({"id": uuid.uuid4().hex, "url": url, "headers": dict(headers or {}), "event": event,
                             "body": json.dumps(payload, indent=2, ensure_ascii=False), "attempt": 0,
                             "due": time.time()})
        del self._outbox[:-OUTBOX_LIMIT]
        if self._sender is not None:
            self._sender.wake()

    def _tick(self) -> bool:
        """Apply what fell due by the clock (auto-syncs, refreshes); True when the state changed."""
        return False

    def _sign_webhook(self, body: bytes) -> dict[str, str]:
        """Headers that authenticate one delivery of `body` (a signature, or headers registered with the webhook)."""
        return {}

    def _due_webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            self._reload_if_changed()
            if self._tick():
                self._save()
            now = time.time()
            return [dict(entry) for entry in self._outbox if entry["due"] <= now]

    def _delivered(self, entry_id: str, status: int | None, outcome: str, time_scale: float) -> None:
        with self._lock:
            self._reload_if_changed()
            entry = next((e for e in self._outbox if e["id"] == entry_id), None)
            if entry is None:  # another process delivered it meanwhile
                return
            entry["attempt"] += 1
            ok = status is not None and 200 <= status < 300
            final = ok or status in self.WEBHOOK_FINAL_STATUSES or entry["attempt"] > len(self.WEBHOOK_RETRY_DELAYS)
            final = final or outcome.startswith("not sent")
            self.delivery_log.append({"event": entry["event"], "url": entry["url"], "attempt": entry["attempt"],
                                      "status": status, "outcome": outcome, "final": final, "at": time.time()})
            del self.delivery_log[:-DELIVERY_LOG_LIMIT]
            if final:
                self._outbox.remove(entry)
            else:
                entry["due"] = time.time() + self.WEBHOOK_RETRY_DELAYS[entry["attempt"] - 1] * time_scale
            self._save()

    def handle(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def _state_to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _state_from_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _prune(self) -> None:
        """Drop what has expired before the state is written (nothing by default)."""

    @property
    def clock(self) -> Clock:
        """The emulator's clock, first brought up to date if another process moved it in the state file."""
        with self._lock:
            self._reload_if_changed()
        return self._clock

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers every request with this emulator."""
        return httpx.MockTransport(self.handle)

    def serve(self, port: int = 0) -> LoopbackServer:
        """A loopback HTTP server for this emulator (not started: use `.start()` or `with`)."""
        return LoopbackServer(self.handle, port=port)

    def _open_state(self) -> None:
        """Load the state file if there is one, else create it."""
        if self.state_path is not None:
            if self._signature() is not None:
                self._load()
            else:
                self._save()

    def _signature(self) -> tuple[int, int, int] | None:
        assert self.state_path is not None
        try:
            stat = os.stat(self.state_path)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _reload_if_changed(self) -> None:
        if self.state_path is None:
            return
        signature = self._signature()
        if signature is not None and signature != self._state_signature:
            self._load()

    def _load(self) -> None:
        assert self.state_path is not None
        self._state_signature = self._signature()
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        self._clock.load_state(state["clock"])
        self._outbox = list(state.get("outbox", []))
        self._state_from_dict(state)

    def _save(self) -> None:
        """Write the state atomically (temporary file + rename), so another process never reads half a file, and
        privately (0600 in a 0700 folder: it holds the sandbox logins and tokens)."""
        self._prune()
        if self.state_path is None:
            return
        state = {"version": 1, "clock": self._clock.to_state(), "outbox": self._outbox, **self._state_to_dict()}
        write_private(self.state_path, json.dumps(state, ensure_ascii=False, indent=1).encode())
        self._state_signature = self._signature()


class Emulator(Protocol):
    """What the app and the CLI use of an offline emulator, whichever provider it stands in for."""

    faults: Faults

    @property
    def clock(self) -> Clock: ...

    def transport(self) -> httpx.MockTransport: ...

    def serve(self, port: int = 0) -> LoopbackServer: ...

    def advance(self, *, days: float = 0, hours: float = 0) -> None:
        """Move the sandbox clock: new transactions arrive, pending ones post."""
        ...

    def deliver_webhooks(self, *, time_scale: float = 1.0, poll: float = 0.25) -> None: ...

    def stop_webhook_delivery(self) -> None: ...

    def item_ids(self) -> list[str]:
        """The ids of the items (bank logins) the sandbox holds."""
        ...

    def break_login(self, item_id: str) -> None:
        """Make the bank ask for a new login, as after a password change (KeyError for an unknown item)."""
        ...
