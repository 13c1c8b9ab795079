"""The console's query process: every console query runs in a child Python process with hard limits.

DuckDB's ``memory_limit`` bounds its buffer-managed operators only: string functions (``repeat``), ``string_agg``
and list building allocate past it, and some of them cannot be interrupted, so a query run inside the app could take
gigabytes and tens of seconds. Here the query runs in ``python -m finance.store.console_process``, which:

- imports only the standard library, duckdb and pyarrow, and starts with an environment of its own (no secrets,
  no settings: ``getenv`` would find nothing) and no core dumps;
- reads its request from standard input: one JSON line (the statement, the limits, a snapshot file to open
  read-only or the names of the tables that follow), then each table as a length-prefixed Arrow IPC stream;
- opens the console's sandbox (`open_sandbox`), then limits its own address space to what it uses by then plus
  the query's memory allowance (``RLIMIT_AS``: an allocation past it fails inside DuckDB, which reports it) and its
  CPU time (``RLIMIT_CPU``: a backstop should the parent be gone);
- writes `READY`, runs the query, and answers with one JSON line, then the result as an Arrow IPC stream cut at the
  row and byte limits.

The parent (`QueryProcess`) starts the child before it validates the query or copies the store, so the child's
imports overlap that work; it kills the child when the query runs past its time limit, reads at most the byte
limit back, and turns every way the child can end into a `QueryFailed` with a kind (the console words it).
The child's limits are set by the child itself rather than in a ``preexec_fn``, which is unsafe in a threaded
parent such as the Streamlit server.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa

READY = b"R"
STARTUP_SECONDS = 60.0
"""How long the child may take to start and load the tables before the query runs (a busy machine, a large store)."""
BATCH_ROWS = 2048
IPC_SLACK = 1 << 20
"""What the Arrow IPC framing may add to the result's own bytes (schema and batch headers)."""

SANDBOX_CONFIG: dict[str, str | bool | int] = {
    "enable_external_access": False,  # no files, ATTACH, COPY, EXPORT, INSTALL, LOAD, HTTP
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,  # `FROM some_python_variable` must not reach the process's memory
    "temp_directory": "",  # never spill to disk
    "threads": 2,
}

CHILD_ENVIRONMENT = {
    "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB of address space per thread's arena otherwise
    "ARROW_DEFAULT_MEMORY_POOL": "system",  # Arrow's own allocators reserve address space up front
    "OPENBLAS_NUM_THREADS": "1",  # numpy (loaded by pyarrow) would start a thread pool per core
    "LANG": "C.UTF-8",
}


class QueryFailed(Exception):
    """The child did not return a result; `kind` is one of timeout, memory, permission, sql, open, not_query,
    crashed; `detail` is DuckDB's own message where there is one (it may hold paths: clean it before showing)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Limits:
    """A query's bounds: rows and bytes kept, seconds of running, bytes of memory beyond the loaded tables."""

    max_rows: int
    max_bytes: int
    timeout: float
    memory: int


def open_sandbox(database: str = ":memory:", memory_limit: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB instance with the console's configuration: in memory, or a snapshot file opened read-only."""
    config: dict[str, str | bool | int] = dict(SANDBOX_CONFIG)
    if memory_limit is not None:
        config["memory_limit"] = f"{memory_limit // 2**20}MB"
    con = duckdb.connect(database, read_only=database != ":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")  # times in results are UTC, as in the store
    return con


# --------------------------------------------------------------------------------------------
# The parent's side
# --------------------------------------------------------------------------------------------

def _ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


class QueryProcess:
    """One child process, started at once and used for one query (`run`); `close` ends it whatever happened.
    Use `start` to get one: it may hand out the process kept warm for the app."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**CHILD_ENVIRONMENT, "PATH": os.environ.get("PATH", ""), "PYTHONPATH": package_root}
        self._proc = subprocess.Popen([sys.executable, "-m", __spec__.name if __spec__ else __name__],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env=env, cwd="/", close_fds=True)
        self._writer: threading.Thread | None = None
        self.keep_warm = False

    def __enter__(self) -> QueryProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc.poll() is None

    def close(self) -> None:
        """Kill the child if it still runs, reap it and let go of the pipes. With `keep_warm`, leave a process
        started for the next query: this one itself when it was never asked anything."""
        warm, self.keep_warm = self.keep_warm, False
        if warm and self._writer is None and self.alive and _offer(self):
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._writer is not None:
            self._writer.join()  # ends at once: the child's end of the pipe is closed
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):  # unsent request bytes of a child that is gone
                    pipe.close()
        if warm:
            _offer(None)

    def run(self, statement: str, limits: Limits, *, tables: Mapping[str, pa.Table] | None = None,
            database: Path | None = None) -> tuple[pa.Table, bool]:
        """Run `statement` on `tables` (registered by name) or on the snapshot file `database`: (result, cut at
        a limit). Raises QueryFailed."""
        request = {"sql": statement, "max_rows": limits.max_rows, "max_bytes": limits.max_bytes,
                   "memory": limits.memory,
                   "cpu_seconds": limits.timeout * int(SANDBOX_CONFIG["threads"]) + 2,
                   "database": str(database.resolve()) if database is not None else None,
                   "tables": list(tables or {})}
        self._writer = threading.Thread(target=self._send, args=(request, tables or {}), daemon=True)
        self._writer.start()
        try:
            reply = self._receive(limits)
        finally:
            self.close()
        return _decode(reply)

    def _send(self, request: dict[str, Any], tables: Mapping[str, pa.Table]) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            for table in tables.values():
                data = _ipc(table)
                stdin.write(data.size.to_bytes(8, "big"))
                stdin.write(memoryview(data))
            stdin.close()
        except (BrokenPipeError, ValueError):  # the child ended (or was killed) before reading everything
            pass

    def _receive(self, limits: Limits) -> bytes:
        """Everything the child wrote after READY, within the time and byte limits."""
        stdout = self._proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        chunks: list[bytes] = []
        size = 0
        running = False
        deadline = time.monotonic() + STARTUP_SECONDS
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise QueryFailed("timeout")
                if not selector.select(remaining):
                    continue
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                if not running:
                    running, data = data.startswith(READY), data[len(READY):]
                    if not running:
                        raise QueryFailed("crashed")
                    deadline = time.monotonic() + limits.timeout
                chunks.append(data)
                size += len(data)
                if size > limits.max_bytes + IPC_SLACK:
                    raise QueryFailed("crashed")
        if self._proc.wait() == -signal.SIGXCPU:  # the CPU-time backstop
            raise QueryFailed("timeout")
        if not running:
            raise QueryFailed("crashed")
        return b"".join(chunks)


_warm_lock = threading.Lock()
_warm: QueryProcess | None = None


def start(*, keep_warm: bool = False) -> QueryProcess:
    """A query process for one query: the one kept warm when it is alive, else a new one. `keep_warm` (the app)
    leaves another started for the next query once this one is closed, so the app's queries skip the child's
    start-up (the imports of duckdb and pyarrow); it waits for its request holding no data and ends with the app."""
    global _warm
    with _warm_lock:
        process, _warm = _warm, None
    if process is None or not process.alive:
        if process is not None:
            process.close()
        process = QueryProcess()
    process.keep_warm = keep_warm
    return process


def _offer(process: QueryProcess | None) -> bool:
    """Keep `process` (None: a new one) as the warm process unless a live one is kept already; True if kept."""
    global _warm
    with _warm_lock:
        if _warm is not None and _warm.alive:
            return False
        if _warm is not None:
            _warm.close()
        _warm = process or QueryProcess()
        return True


def _decode(reply: bytes) -> tuple[pa.Table, bool]:
    line, _, rest = reply.partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        raise QueryFailed("crashed") from None
    if header.get("error"):
        raise QueryFailed(str(header["error"]), str(header.get("detail", "")))
    try:
        table = pa.ipc.open_stream(pa.py_buffer(rest)).read_all()
    except (pa.ArrowInvalid, OSError):  # the child died while writing the result
        raise QueryFailed("crashed") from None
    return table, bool(header.get("truncated"))


# --------------------------------------------------------------------------------------------
# The child's side
# --------------------------------------------------------------------------------------------

def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def _read_table(stream: IO[bytes]) -> pa.Table:
    size = int.from_bytes(_read_exactly(stream, 8), "big")
    return pa.ipc.open_stream(pa.py_buffer(_read_exactly(stream, size))).read_all()


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def _limit_self(memory: int, cpu_seconds: float) -> None:
    """The address space this process has now plus `memory`; CPU seconds used so far plus `cpu_seconds`."""
    allowed = _address_space() + memory
    resource.setrlimit(resource.RLIMIT_AS, (allowed, allowed))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime + cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _collect(con: duckdb.DuckDBPyConnection, statement: str, max_rows: int,
             max_bytes: int) -> tuple[pa.Table, bool]:
    """The result's first batches, at most `max_rows` rows and `max_bytes` bytes; True when more were left."""
    relation = con.sql(statement)
    if relation is None:
        raise QueryFailed("not_query")
    reader = relation.to_arrow_reader(BATCH_ROWS)
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    truncated = False
    for batch in reader:
        if rows + batch.num_rows > max_rows:
            batch, truncated = batch.slice(0, max_rows - rows), True
        if size + batch.nbytes > max_bytes:
            low, high = 0, batch.num_rows  # the most rows that fit: nbytes grows with the rows kept
            while low < high:
                middle = (low + high + 1) // 2
                low, high = (middle, high) if size + batch.slice(0, middle).nbytes <= max_bytes else (low, middle - 1)
            batch, truncated = batch.slice(0, low), True
        batches.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if truncated:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    reader.close()
    return table, truncated


def _answer(con: duckdb.DuckDBPyConnection, request: dict[str, Any]) -> tuple[bytes, pa.Buffer | None]:
    """The reply: a JSON line, and the result as an Arrow IPC stream when there is one."""
    try:
        table, truncated = _collect(con, request["sql"], request["max_rows"], request["max_bytes"])
        payload = _ipc(table)
    except QueryFailed as exc:
        return _header({"error": exc.kind}), None
    except (duckdb.OutOfMemoryException, MemoryError):
        return _header({"error": "memory"}), None
    except duckdb.PermissionException:
        return _header({"error": "permission"}), None
    except duckdb.Error as exc:
        return _header({"error": "sql", "detail": str(exc)[:4000]}), None
    return _header({"truncated": truncated}), payload


def _header(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def main() -> int:
    """The child: read the request, open the sandbox, limit itself, answer."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    stdin, out = sys.stdin.buffer, sys.stdout.buffer
    line = stdin.readline()
    if not line:  # a warm process whose parent ended
        return 0
    request = json.loads(line)
    tables = {name: _read_table(stdin) for name in request["tables"]}
    try:
        con = open_sandbox(request["database"] or ":memory:", memory_limit=request["memory"] * 3 // 4)
    except duckdb.Error as exc:
        out.write(READY + _header({"error": "open", "detail": str(exc)[:4000]}))
        return 0
    for name, table in tables.items():
        con.register(name, table)
    con.execute("SET lock_configuration = true")
    con.execute("BEGIN TRANSACTION")  # never committed: the process ends with the query
    _limit_self(request["memory"], request["cpu_seconds"])
    out.write(READY)
    out.flush()
    header, payload = _answer(con, request)
    out.write(header)
    if payload is not None:
        out.write(memoryview(payload))
    out.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip the interpreter's and DuckDB's teardown: nothing here needs it
