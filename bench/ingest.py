"""Ingest: Pluggy's JSON pages -> decode -> map -> apply_sync committed on a fresh DuckDB file, with two baselines.

- end to end: every page of 500 transactions, as the JSON bytes Pluggy sends, decoded and mapped as the client
  does, then the sync engine's apply path in one transaction;
- row by row: the usual integration code, `json.loads` of each page and SQLAlchemy Core
  `conn.execute(transactions.insert(), row)` per row, on a sample (decoding and mapping included), extrapolated to
  the full size;
- Arrow append: DuckDB appending an already-built Arrow table of the final rows (what the database can do at best).

Run: `.venv/bin/python -m bench.ingest --rows 1000000 --repeat 3`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.common import PAGE_SIZE, DataSet, emit, fresh_engine, ingest, log, median, peak_rss_mb, transaction_row
from finance.providers.pluggy.mapping import map_transaction
from finance.store.db import create_engine, duckdb_connection
from finance.store.schema import transactions


def end_to_end(data: DataSet, path: Path) -> dict[str, Any]:
    """One full ingest on a fresh store; the engine is disposed afterwards."""
    engine = fresh_engine(path)
    try:
        return ingest(engine, data)
    finally:
        engine.dispose()


def row_by_row(data: DataSet, path: Path, sample: int) -> float:
    """Seconds to decode, map and insert `sample` rows one at a time (one transaction, commit included)."""
    engine = fresh_engine(path)
    now = datetime.now(UTC)
    accounts = data.accounts(now)
    per_account = max(1, sample // len(accounts))
    bodies = [(body, account) for index, account in enumerate(accounts)
              for body in islice(data.account_bodies(index), -(-per_account // PAGE_SIZE))]
    try:
        started = time.perf_counter()
        inserted = 0
        with engine.begin() as conn:
            for body, account in bodies:
                for raw in json.loads(body)["results"][:per_account]:
                    conn.execute(transactions.insert(), transaction_row(map_transaction(raw, account),
                                                                        data.connection_id, now))
                    inserted += 1
        return (time.perf_counter() - started) / inserted * sample
    finally:
        engine.dispose()


def final_rows(path: Path) -> pa.Table:
    """Every stored transaction of a store, as Arrow."""
    engine = create_engine(f"duckdb:///{path}")
    try:
        with engine.connect() as conn:
            return duckdb_connection(conn).sql("SELECT * FROM transactions").to_arrow_table()
    finally:
        engine.dispose()


def arrow_append(table: pa.Table, path: Path) -> float:
    """Seconds for DuckDB to append a ready Arrow table into the schema's `transactions` (commit included)."""
    engine = fresh_engine(path)
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            duck = duckdb_connection(conn)
            duck.register("arrow_table", table)
            conn.exec_driver_sql("INSERT INTO transactions BY NAME SELECT * FROM arrow_table")
        elapsed = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM transactions").scalar_one()
        if stored != table.num_rows:
            raise RuntimeError(f"Arrow append stored {stored} of {table.num_rows} rows")
        return elapsed
    finally:
        engine.dispose()


def main() -> None:
    """Time the three ways of storing the rows and emit the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sample", type=int, default=5_000, help="rows of the row-by-row baseline")
    parser.add_argument("--keep", type=Path, help="copy the last ingested store to this file (for the dashboard)")
    args = parser.parse_args()

    data = DataSet(args.rows)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        runs = []
        for i in range(args.repeat):
            run = end_to_end(data, work / "ingest.duckdb")
            run["total_s"] = run["map_s"] + run["apply_s"]
            log(f"ingest {i + 1}/{args.repeat}: {run['rows']:,} rows, map {run['map_s']:.2f}s, "
                f"apply {run['apply_s']:.2f}s, {run['rows'] / run['total_s']:,.0f} rows/s")
            if run["added"] != args.rows:
                raise RuntimeError(f"ingest added {run['added']} rows, expected {args.rows}")
            runs.append(run)
        table = final_rows(work / "ingest.duckdb")
        if args.keep:
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "ingest.duckdb", args.keep)
        baseline = []
        for i in range(args.repeat):
            seconds = row_by_row(data, work / "rows.duckdb", args.sample)
            baseline.append(seconds)
            log(f"row by row {i + 1}/{args.repeat}: {args.sample / seconds:,.0f} rows/s")
        arrow = []
        for i in range(args.repeat):
            seconds = arrow_append(table, work / "arrow.duckdb")
            arrow.append(seconds)
            log(f"Arrow append {i + 1}/{args.repeat}: {seconds:.2f}s for {table.num_rows:,} rows")
        total = median(r["total_s"] for r in runs)
        row_rate = args.sample / median(baseline)
        emit({
            "rows": args.rows, "repeat": args.repeat, "sample": args.sample,
            "total_s": total, "map_s": median(r["map_s"] for r in runs), "apply_s": median(r["apply_s"] for r in runs),
            "decode_s": median(r["decode_s"] for r in runs),
            "rows_per_s": args.rows / total, "runs_total_s": [r["total_s"] for r in runs],
            "row_by_row_rows_per_s": row_rate, "row_by_row_extrapolated_s": args.rows / row_rate,
            "arrow_append_s": median(arrow), "runs_arrow_s": arrow,
            "ratio_vs_row_by_row": (args.rows / total) / row_rate, "ratio_vs_arrow": total / median(arrow),
            "peak_rss_mb": peak_rss_mb(),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
