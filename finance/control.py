"""The terminal alongside the running app: how the CLI finds the app and hands it a write (connect, sync).

DuckDB admits one process per store file, and the running app is that process. So while it runs, the CLI does not
open the store: writes go to the app (finance.control_server runs them on the app's own services and streams
progress back), reads come from the analysts' snapshot the app rewrites after every sync (finance.analytics).

The app announces itself in `data/control.json` (mode 0600, written atomically): the loopback URL of its control
server, a random token, and its process id. Every request carries the token as `Authorization: Bearer …`. On
PostgreSQL there is no single-writer limit: the CLI opens the store itself and this channel is not used.

Protocol (JSON over HTTP on 127.0.0.1): `POST /v1/jobs` with `{"op": "connect"|"sync", "args": {…}}` answers with
one JSON object per line, as the job runs: `{"say": text}`, `{"progress": label, "fraction": f}`,
`{"ask": prompt, "secret": bool, "job": id}` (answered by `POST /v1/jobs/<id>/answer` `{"answer": text}`),
`{"error": text}`, and last `{"done": exit code}`.

Light on purpose (the standard library and finance.i18n only): `python -m finance query` imports it to decide where
to read.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from finance.i18n import _

CONTROL_FILE = "control.json"
MAX_BODY_BYTES = 16 * 1024
ANSWER_TIMEOUT = 300.0
"""Seconds a job waits for the terminal to answer a prompt (an MFA code) before it gives up."""
JOB_OPS = ("connect", "sync")
JOB_ARGS = frozenset({"provider", "institution", "user", "password", "mfa", "connection"})
"""The only command arguments a job accepts (the rest of the CLI's options mean nothing to the app)."""


class ControlError(RuntimeError):
    """The running app could not be reached or refused the request; the message says what to do."""


@dataclass(frozen=True, slots=True)
class RunningApp:
    """How to reach the running app's control server."""

    url: str
    token: str = ""
    pid: int = 0

    def __repr__(self) -> str:  # the token never reaches a log or a traceback
        return f"RunningApp(url={self.url!r}, pid={self.pid})"


def control_path(data_dir: Path) -> Path:
    """Where the running app announces its control server."""
    return data_dir / CONTROL_FILE


def new_token() -> str:
    """A fresh control token (256 bits)."""
    return secrets.token_urlsafe(32)


def write_control_file(path: Path, app: RunningApp) -> None:
    """Announce the app: a 0600 file, written to a temporary name and renamed, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".control.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"url": app.url, "token": app.token, "pid": app.pid}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_app(data_dir: Path) -> RunningApp | None:
    """The app running on this data folder, from its control file; None when there is none, or the process that
    wrote it is gone (a killed app leaves its file behind). A file others may read is refused: its token leaked."""
    path = control_path(data_dir)
    try:
        if path.stat().st_mode & 0o077:
            raise ControlError(_("{path} can be read by other users, so its token is not secret: stop the app, "
                                 "delete the file and start the app again.").format(path=path))
        data = json.loads(path.read_text(encoding="utf-8"))
        app = RunningApp(url=str(data["url"]), token=str(data["token"]), pid=int(data["pid"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if urlsplit(app.url).hostname != "127.0.0.1" or not _alive(app.pid):
        return None
    return app


def run_job(app: RunningApp, op: str, args: Mapping[str, Any], *, say: Callable[[str], None],
            progress: Callable[[str, float], None], ask: Callable[[str, bool], str],
            timeout: float = 3600.0) -> int:
    """Run a job in the app, showing what it says as it runs; returns its exit code. Raises ControlError."""
    body = {"op": op, "args": {k: v for k, v in args.items() if k in JOB_ARGS}}
    for event in _stream(app, "/v1/jobs", body, timeout):
        if "say" in event:
            say(str(event["say"]))
        elif "progress" in event:
            progress(str(event["progress"]), float(event.get("fraction", 0.0)))
        elif "ask" in event:
            answer = ask(str(event["ask"]), bool(event.get("secret")))
            _post(app, f"/v1/jobs/{event['job']}/answer", {"answer": answer}, 30.0)
        elif "error" in event:
            raise ControlError(str(event["error"]))
        elif "done" in event:
            return int(event["done"])
    raise ControlError(_("The app stopped answering before the job finished; see the app's Sync status page."))


def _connection(app: RunningApp, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(app.url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)


def _request(app: RunningApp, path: str, body: Mapping[str, Any], timeout: float) -> http.client.HTTPResponse:
    conn = _connection(app, timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {app.token}",
                                                      "Content-Type": "application/json"})
        response = conn.getresponse()
    except OSError as exc:
        conn.close()
        raise ControlError(_("The running app (pid {pid}) did not answer at {url} ({error}). If it was stopped, run "
                             "the command again.").format(pid=app.pid, url=app.url, error=type(exc).__name__)) \
            from None
    if response.status != 200:
        try:
            reason = json.loads(response.read() or b"{}").get("error") or response.reason
        except ValueError:
            reason = response.reason
        conn.close()
        raise ControlError(_("The running app refused the request: {reason}").format(reason=reason))
    return response


def _post(app: RunningApp, path: str, body: Mapping[str, Any], timeout: float) -> None:
    _request(app, path, body, timeout).read()


def _stream(app: RunningApp, path: str, body: Mapping[str, Any], timeout: float) -> Iterator[dict[str, Any]]:
    response = _request(app, path, body, timeout)
    try:
        while line := response.readline():
            if line.strip():
                yield json.loads(line)
    except (OSError, ValueError) as exc:
        raise ControlError(_("The connection to the running app broke ({error}).").format(
            error=type(exc).__name__)) from None

    finally:
        response.close()
