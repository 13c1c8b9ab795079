"""Ingest on PostgreSQL beside DuckDB, in one run: Pluggy's JSON pages -> decode -> map -> apply_sync committed on
a fresh store of each engine, and the limit on PostgreSQL: a bare COPY of the same final rows into an unindexed
table (CSV written by Arrow, as the app's COPY path writes it).

The PostgreSQL server is a throwaway one (initdb in a temporary folder, loopback, as the tests start it), with the
durability settings of a real one (fsync and synchronous_commit on), unless --url names an existing empty database.

Run: `.venv/bin/python -m bench.postgres --rows 1000000 --repeat 3`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import DataSet, emit, ingest, log, median, peak_rss_mb
from bench.ingest import end_to_end, final_rows
from finance.store import migrate
from finance.store.db import copy_into, create_engine, init_schema
from tests.postgres import PostgresServer, find_bindir


def pg_ingest(data: DataSet, url: str) -> dict[str, Any]:
    """One full ingest into a fresh PostgreSQL store."""
    engine = create_engine(url)
    try:
        init_schema(engine)
        return ingest(engine, data)
    finally:
        engine.dispose()


def bare_copy(url: str, rows: Any) -> float:
    """Seconds to COPY the final rows into a new unindexed table shaped like `transactions` (commit included), as
    the owner of the tables with no household (the limit: no row-level security either)."""
    engine = create_engine(url)
    try:
        admin = migrate.without_household(engine)
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bare_copy")
            conn.exec_driver_sql("CREATE TABLE bare_copy (LIKE transactions)")
        started = time.perf_counter()
        with admin.begin() as conn:
            copied = copy_into(conn, "bare_copy", rows)
        elapsed = time.perf_counter() - started
        if copied != rows.num_rows:
            raise RuntimeError(f"COPY stored {copied} of {rows.num_rows} rows")
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP TABLE bare_copy")
        return elapsed
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="an existing PostgreSQL server's database (default: a throwaway server)")
    args = parser.parse_args()

    data = DataSet(args.rows)
    work = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    server = None
    if args.url is None:
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL's binaries are missing: `apt-get install postgresql`, or pass --url.")
        server = PostgresServer(bindir, durable=True)
    try:
        duck, pg, copies = [], [], []
        for i in range(args.repeat):
            run = end_to_end(data, work / "ingest.duckdb")
            duck.append(run["map_s"] + run["apply_s"])
            log(f"DuckDB ingest {i + 1}/{args.repeat}: {args.rows / duck[-1]:,.0f} rows/s")
            url = server() if server else args.url
            run = pg_ingest(data, url)
            if run["added"] != args.rows:
                raise RuntimeError(f"PostgreSQL ingest added {run['added']} rows, expected {args.rows}")
            pg.append(run["map_s"] + run["apply_s"])
            log(f"PostgreSQL ingest {i + 1}/{args.repeat}: map {run['map_s']:.2f}s, apply {run['apply_s']:.2f}s, "
                f"{args.rows / pg[-1]:,.0f} rows/s")
            rows = final_rows(work / "ingest.duckdb")
            copies.append(bare_copy(url, rows))
            log(f"bare COPY {i + 1}/{args.repeat}: {copies[-1]:.2f}s, {args.rows / copies[-1]:,.0f} rows/s")
            if server is None:
                break  # an existing database is used once: the next ingest would not start from empty
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        engine.dispose()
        emit({
            "rows": args.rows, "repeat": len(pg), "postgresql": version,
            "duckdb_s": median(duck), "duckdb_rows_per_s": args.rows / median(duck),
            "pg_s": median(pg), "pg_rows_per_s": args.rows / median(pg),
            "copy_s": median(copies), "copy_rows_per_s": args.rows / median(copies),
            "pg_vs_copy": median(pg) / median(copies), "runs_pg_s": pg, "runs_copy_s": copies, "runs_duckdb_s": duck,
            "peak_rss_mb": peak_rss_mb(),
        })
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
