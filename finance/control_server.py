"""The running app's control server: the CLI's `connect` and `sync` run here while the app holds the store.

Started with the background worker (finance.worker.start_background) on 127.0.0.1 and an ephemeral port; it
announces itself in `data/control.json` (finance.control: 0600, a fresh 256-bit token per start) and removes the
file when it stops. A request is answered only when it comes from loopback, names a loopback Host (no DNS
rebinding), carries no Origin (no web page), carries the token (compared in constant time) and a small JSON body.
A job runs the CLI's own command (finance.cli) on the app's services, on the request's thread, relaying what it
prints, its prompts and its progress as JSON lines; after it, the app's after-sync work runs (alerts, the analysts'
snapshot) and the pages see the change.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import queue
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from finance import cli, control
from finance.crypto import SecretError
from finance.errors import ProviderError, StoreError
from finance.i18n import _
from finance.store.db import store_error

if TYPE_CHECKING:
    from finance.services import Services

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
Flow = Callable[["Services", argparse.Namespace, cli.Terminal], int]
FLOWS: dict[str, Flow] = {"connect": cli.connect_flow, "sync": cli.sync_flow}
DEFAULTS = {"connect": {"provider": None, "institution": None, "user": None, "password": None, "mfa": None},
            "sync": {"connection": None}}


class RelayTerminal(cli.Terminal):
    """A command's terminal in the app: every line, prompt and progress step goes to the CLI as a JSON line."""

    def __init__(self, write: Callable[[dict[str, Any]], None], job_id: str, timeout: float) -> None:
        self._write = write
        self.job_id = job_id
        self._timeout = timeout
        self.answers: queue.Queue[str] = queue.Queue(maxsize=1)

    def say(self, text: str) -> None:
        self._write({"say": text})

    def ask(self, prompt: str, secret: bool = False) -> str:
        self._write({"ask": prompt, "secret": secret, "job": self.job_id})
        try:
            return self.answers.get(timeout=self._timeout)
        except queue.Empty:
            raise ProviderError(_("No answer came from the terminal in time; nothing more was done.")) from None

    def progress(self, label: str, fraction: float) -> None:
        self._write({"progress": label, "fraction": fraction})


class ControlServer:
    """Serves the CLI's jobs on loopback for the app's process (one per process, like the worker)."""

    def __init__(self, services: Services, *, after_job: Callable[[], None] = lambda: None,
                 answer_timeout: float = control.ANSWER_TIMEOUT) -> None:
        self.services = services
        self.token = control.new_token()
        self.path = control.control_path(services.settings.data_dir)
        self._after_job = after_job
        self._answer_timeout = answer_timeout
        self._jobs: dict[str, RelayTerminal] = {}
        self._jobs_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((LOOPBACK, 0), _handler(self))
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> ControlServer:
        control.write_control_file(self.path, control.RunningApp(self.url, self.token, os.getpid()))
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="finance-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        try:  # only our own announcement: another app may have started on the same folder since
            if json.loads(self.path.read_text(encoding="utf-8")).get("token") == self.token:
                self.path.unlink()
        except (OSError, ValueError):
            pass
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- requests (on the server's threads) ---------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        given = (header or "").removeprefix("Bearer ").strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def run_job(self, op: str, args: dict[str, Any], write: Callable[[dict[str, Any]], None]) -> None:
        job_id = secrets.token_urlsafe(12)
        terminal = RelayTerminal(write, job_id, self._answer_timeout)
        with self._jobs_lock:
            self._jobs[job_id] = terminal
        try:
            code = self._run(op, args, terminal, write)
        finally:
            with self._jobs_lock:
                self._jobs.pop(job_id, None)
        write({"done": code})

    def _run(self, op: str, args: dict[str, Any], terminal: RelayTerminal,
             write: Callable[[dict[str, Any]], None]) -> int:
        namespace = argparse.Namespace(**{**DEFAULTS[op], **{k: v for k, v in args.items() if k in DEFAULTS[op]}})
        if op == "connect" and namespace.provider not in self.services.providers:
            write({"error": _("No provider {name} in this app.").format(name=repr(namespace.provider))})
            return 2
        try:
            return FLOWS[op](self.services, namespace, terminal)
        except (StoreError, SecretError) as exc:
            write({"error": str(exc)})
            return 2
        except ProviderError as exc:
            write({"error": exc.message})
            return 1
        except Exception as exc:
            problem = store_error(exc)
            log.exception("a job from the CLI failed")
            write({"error": problem.message if problem else _("The app failed running the {command} ({error}); see "
                                                              "its log.").format(command=op,
                                                                                 error=type(exc).__name__)})
            return 2
        finally:
            self._after_job()

    def answer(self, job_id: str, text: str) -> bool:
        with self._jobs_lock:
            terminal = self._jobs.get(job_id)
        if terminal is None:
            return False
        try:
            terminal.answers.put_nowait(text)
        except queue.Full:
            return False
        return True


def _handler(server: ControlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "finance-control"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("control: " + format, *args)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any] | None:
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > control.MAX_BODY_BYTES:
                self._reply(413, {"error": _("The request body is missing or too large.")})
                return None
            try:
                body = json.loads(self.rfile.read(int(length)))
            except ValueError:
                body = None
            if not isinstance(body, dict):
                self._reply(400, {"error": _("The body must be a JSON object.")})
                return None
            return body

        def _allowed(self) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if self.client_address[0] != LOOPBACK or host not in (LOOPBACK, "localhost"):
                self._reply(403, {"error": _("Loopback only.")})
                return False
            if self.headers.get("Origin") is not None:
                self._reply(403, {"error": _("Not from a web page.")})
                return False
            if not server.authorized(self.headers.get("Authorization")):
                log.warning("control request with a wrong token refused")
                self._reply(401, {"error": _("Wrong or missing control token.")})
                return False
            return True

        def do_GET(self) -> None:
            self._reply(405, {"error": _("POST only.")})


        def do_POST(self) -> None:
            if not self._allowed():
                return
            body = self._body()
            if body is None:
                return
            parts = self.path.strip("/").split("/")
            if parts == ["v1", "jobs"]:
                self._job(body)
            elif len(parts) == 4 and parts[:2] == ["v1", "jobs"] and parts[3] == "answer":
                answered = server.answer(parts[2], str(body.get("answer", "")))
                self._reply(200 if answered else 404, {"status": "answered"} if answered else
                            {"error": "No job waiting for an answer."})
            else:
                self._reply(404, {"error": "Not found."})

        def _job(self, body: dict[str, Any]) -> None:
            op, args = body.get("op"), body.get("args", {})
            if op not in control.JOB_OPS or not isinstance(args, dict) or not all(
                    isinstance(v, str | None) for v in args.values()):
                self._reply(400, {"error": f"Unknown job; one of {', '.join(control.JOB_OPS)} with text arguments."})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Connection", "close")
            self.end_headers()
            lock = threading.Lock()
            gone = threading.Event()

            def write(event: dict[str, Any]) -> None:
                """Relay one event; once the CLI has gone (Ctrl+C), the job still finishes, without prompting."""
                if gone.is_set():
                    if "ask" in event:
                        raise ProviderError(_("The terminal went away; nothing more was done."))

                    return
                with lock:
                    try:
                        self.wfile.write(json.dumps(event).encode() + b"\n")
                        self.wfile.flush()
                    except OSError:
                        gone.set()

            server.run_job(str(op), args, write)

    return Handler

