"""The console's hard limits (issue 15, hardening): a query that builds huge values is stopped in its own process
without the app's memory growing, one that computes too long is cancelled at the time limit, results are cut at the
row and byte limits before they reach the app, and pathological SQL gets one line — never a traceback or a path."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from finance.analysts import Console
from finance.errors import ConsoleError
from finance.store import console, console_process
from finance.store.db import create_engine, init_schema

STARTUP_MARGIN = 15.0
"""Seconds a query process may take to start on a busy test machine (duckdb and pyarrow imports: 0.2 s when quiet)."""
APP_GROWTH_KIB = 150 * 1024
"""How much the app's peak memory may grow while a query runs (the result and the copy of the store; the query
itself is elsewhere)."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = create_engine(f"duckdb:///{tmp_path_factory.mktemp('limits') / 'store.duckdb'}")
    init_schema(engine)
    yield engine
    engine.dispose()


def peak_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def reset_peak() -> None:
    """Start this process's peak resident memory (VmHWM) from its current size again."""
    Path("/proc/self/clear_refs").write_text("5")


def query_processes() -> set[int]:
    """This process's children that are console query processes."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"console_process" in cmdline:
            found.add(int(stat.parent.name))
    return found


def assert_one_clean_line(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert "/" not in message.replace("N/A", ""), message  # no file-system path, no module path
    assert "console_process" not in message and ".py" not in message, message


MEMORY_BOMBS = [
    "SELECT length(string_agg(repeat('x', 1000000), '')) FROM range(5000)",  # past DuckDB's memory_limit
    "SELECT length(repeat(repeat('x', 1000000), 3000))",  # one 3 GB value: ignores memory_limit, uninterruptible
    "SELECT len(list_resize([1], 500000000))",  # a 500-million-element list: hours of work in one call
]


@pytest.mark.parametrize("sql", MEMORY_BOMBS)
def test_a_memory_bomb_is_stopped_in_its_own_process(store: sa.Engine, sql: str):
    processes = query_processes()  # the app's warm one, if an earlier test left it
    reset_peak()
    before = peak_kib()
    started = time.monotonic()

    with pytest.raises(ConsoleError) as caught:
        console.run_query(store, sql)

    assert time.monotonic() - started < console.TIMEOUT_SECONDS + STARTUP_MARGIN
    assert peak_kib() - before < APP_GROWTH_KIB
    assert "more than 1 GiB of memory" in caught.value.message
    assert_one_clean_line(caught.value.message)
    assert query_processes() <= processes  # none left behind
    assert console.run_query(store, "SELECT 42 AS n").table.column("n")[0].as_py() == 42  # the next one runs


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM range(1000000) a, range(1000000) b",  # a huge join
    "SELECT levenshtein(repeat('a', 100000), repeat('b', 100000))",  # 10^10 steps in one uninterruptible call
])
def test_a_cpu_bomb_is_cancelled_at_the_time_limit(store: sa.Engine, sql: str):
    processes = query_processes()
    started = time.monotonic()

    with pytest.raises(ConsoleError, match=r"ran longer than 1 s and was stopped") as caught:
        console.run_query(store, sql, timeout=1)

    assert time.monotonic() - started < 1 + STARTUP_MARGIN
    assert_one_clean_line(caught.value.message)
    assert query_processes() <= processes


def nested(opening: str, inner: str, closing: str, depth: int) -> str:
    return "SELECT " + opening * depth + inner + closing * depth


@pytest.mark.parametrize(("sql", "expected"), [
    (nested("(", "1", ")", 10_000), "longer than 20,000 characters"),
    ("SELECT 1 IN (" + ", ".join(["1"] * 1_000_000) + ")", "longer than 20,000 characters"),
    (nested("(", "1", ")", 5_000), "nested too deeply"),
    (nested("abs(", "1", ")", 990), "nested too deeply"),
    (nested("[", "1", "]", 990), "nested too deeply"),
    (nested("(SELECT ", "1", ")", 300), "nested too deeply"),
    (nested("CASE WHEN true THEN ", "1", " END", 500), "nested too deeply"),
    ("SELECT " + " + ".join(["1"] * 3000), "nested too deeply"),
    ("SELECT * FROM " + "(SELECT * FROM " * 900 + "range(1)" + ")" * 900, "nested too deeply"),
], ids=["parens-10k", "in-list-1e6", "parens-5k", "functions", "lists", "subqueries", "case",
        "sum-of-3000", "derived-tables"])
def test_pathological_sql_gets_one_line(store: sa.Engine, sql: str, expected: str):
    with pytest.raises(ConsoleError) as caught:
        console.run_query(store, sql)
    assert expected in caught.value.message, caught.value.message
    assert "SET max_expression_depth" not in caught.value.message  # advice the console would refuse
    assert_one_clean_line(caught.value.message)


def test_long_but_reasonable_queries_still_run(store: sa.Engine):
    assert console.run_query(store, "SELECT 1 IN (" + ", ".join(map(str, range(3000))) + ") AS x").rows == 1
    assert console.run_query(store, nested("(", "1", ")", 500)).rows == 1


def test_a_result_is_cut_at_the_byte_limit_before_it_reaches_the_app(store: sa.Engine,
                                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(console, "MAX_RESULT_BYTES", 2**20)
    reset_peak()
    before = peak_kib()

    result = console.run_query(store, "SELECT range AS n, repeat('x', 10000) AS s FROM range(3000)")

    assert result.truncated and 0 < result.rows < 3000
    assert result.table.nbytes <= 2**20
    assert result.table.column("n").to_pylist() == list(range(result.rows))  # the first rows, in order
    assert peak_kib() - before < 30 * 1024  # never the whole 30 MB
    assert not console.run_query(store, "SELECT repeat('x', 100) FROM range(100)").truncated


def test_a_snapshot_file_is_queried_under_the_same_limits(tmp_path: Path):
    """`finance query` reads the analysts' snapshot file: the same process, limits and messages."""
    import duckdb

    path = tmp_path / "analytics.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(ConsoleError, match="more than 1 GiB of memory") as caught:
        console.run_query_on_file(path, MEMORY_BOMBS[1])
    assert_one_clean_line(caught.value.message)
    assert console.run_query_on_file(path, "SELECT 7 AS n").table.column("n")[0].as_py() == 7
    with pytest.raises(ConsoleError, match="cannot be opened") as missing:
        console.run_query_on_file(tmp_path / "missing" / "analytics.duckdb", "SELECT 1")
    assert str(tmp_path) not in missing.value.message


def test_the_app_keeps_one_query_process_started_for_the_next_query(store: sa.Engine, tmp_path: Path):
    """The app's queries skip the query process's start-up: one waits, holding no data, for the next query."""
    app_console = Console(store, tmp_path)
    try:
        assert app_console.run("SELECT 1 AS n").rows == 1
        waiting = query_processes()
        assert len(waiting) == 1

        assert app_console.run("SELECT 2 AS n").table.column("n")[0].as_py() == 2
        after = query_processes()
        assert len(after) == 1 and after != waiting  # the waiting one ran the query and ended; another waits

        with pytest.raises(ConsoleError, match="DROP"):
            app_console.run("DROP TABLE transactions")  # refused before the process was asked anything
        assert query_processes() == after  # so it still waits
    finally:
        with console_process._warm_lock:
            warm, console_process._warm = console_process._warm, None
        if warm is not None:
            warm.close()
