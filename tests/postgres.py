"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, a free port on 127.0.0.1, stopped and
removed at the end of the session.

The binaries are looked up on PATH, then in Debian's /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run
as root, so under root (CI) every server command runs as the `postgres` user (`runuser -u postgres --`) in a folder
that user owns. Without the binaries the PostgreSQL tests skip with a message saying how to install them, except
with CI=true, where they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = ("PostgreSQL's server binaries (initdb, pg_ctl) were not found on PATH or in /usr/lib/postgresql/*/bin,"
                " so the PostgreSQL tests cannot run. Install them with `sudo apt-get install postgresql` (Debian/"
                "Ubuntu), or put their folder on PATH.")
SERVER_USER = "postgres"
"""The account the server runs as when the tests run as root."""


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then the newest of Debian's versioned folders."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    return next((p for p in versions if (p / "initdb").exists() and (p / "pg_ctl").exists()), None)


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only, with trust authentication for its
    one superuser (nothing else can reach it). Calling it creates a fresh database and returns its SQLAlchemy URL."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="finance-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = SERVER_USER if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        if self.as_root:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "--encoding=UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        settings = {  # loopback only, quiet; a test server also without durability (the cluster is thrown away)
            "listen_addresses": "'127.0.0.1'", "port": str(self.port), "unix_socket_directories": f"'{self.root}'",
            "max_connections": "200", "shared_buffers": "128MB", "logging_collector": "off",
            "log_min_messages": "warning",
        }
        if not durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.start()

    def _run(self, program: str, *args: str) -> None:
        """Run one of the server's programs (as `postgres` under root); raise with its output when it fails."""
        command = [str(self.bindir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        # From the server's own folder: the `postgres` user may not be allowed into the checkout's (e.g. under /root).
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}\n{done.stderr}")

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" ends every session (the database going away), "immediate" is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def dsn(self, database: str = "postgres", user: str | None = None) -> str:
        return f"postgresql+psycopg://{user or self.user}@127.0.0.1:{self.port}/{database}"

    def execute(self, statement: str) -> None:
        """Run one statement as the superuser on the `postgres` database (roles, databases)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # the tests' own statements

    def create_role(self, options: str = "") -> str:
        """A new login role (e.g. `options="BYPASSRLS"`; by default no superuser, no CREATEROLE); returns its name.
        Authentication is `trust`: it logs in with no password."""
        name = f"role_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE ROLE "{name}" LOGIN {options}')
        return name

    def create_database(self, name: str | None = None, *, template: str | None = None,
                        owner: str | None = None) -> str:
        """A new database, empty or a copy of the database `template` (nobody may be connected to it), owned by the
        superuser or by `owner` (and reached as that role); returns its SQLAlchemy URL (postgresql+psycopg://…)."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        clone = f' TEMPLATE "{template}"' if template else ""
        owned = f' OWNER "{owner}"' if owner else ""
        self.execute(f'CREATE DATABASE "{name}"{clone}{owned}')
        return self.dsn(name, owner)

    __call__ = create_database

    def close(self) -> None:
        """Stop the server if it runs and remove its folder."""
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def unavailable(reason: str) -> None:
    """Skip the test (a developer's machine without PostgreSQL), or fail it under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the PostgreSQL tests must run in CI, not skip)", pytrace=False)
    pytest.skip(reason)


def server_available() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if find_bindir() is None:
        return INSTALL_HINT
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return (f"Running as root, the tests start PostgreSQL as the `{SERVER_USER}` user, which does not exist. "
                    "Installing Debian's package creates it: `apt-get install postgresql`.")
        if shutil.which("runuser") is None:
            return "Running as root, the tests need `runuser` (util-linux) to start PostgreSQL as `postgres`."
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; `postgres_server()` creates a fresh database and returns its URL. Skips
    (fails under CI=true) when PostgreSQL is not installed."""
    reason = server_available()
    if reason is not None:
        unavailable(reason)
    bindir = find_bindir()
    assert bindir is not None
    server = PostgresServer(bindir)
    try:
        yield server
    finally:
        server.close()
