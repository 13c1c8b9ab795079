"""The analysts' figures (issue 16): the snapshot's refresh after a sync of 1M transactions, and `finance query`.

1. A store with `--rows` transactions is built through the ingest path (bench.common.ingest, as a sync writes it),
   then the snapshot is refreshed `--repeat` times (finance.store.snapshot.refresh_snapshot: copy, views, fsync,
   rename), as the app does after every sync. Target: < 2 s at 1M.
2. `python -m finance query` in a fresh process, against that store's fresh snapshot (what the CLI does while the
   app runs): wall time of `SELECT 1`, and of a monthly aggregate over all rows, against `python -c pass` and
   `python -c "import duckdb, pyarrow"` (the floor of any DuckDB tool in Python).
   Target: well under a second beyond Python's own start-up.

Run: `.venv/bin/python -m bench.analyst --rows 1000000 --repeat 5`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, DataSet, emit, fresh_engine, ingest, log, median
from finance.analytics import snapshot_path
from finance.store.snapshot import refresh_snapshot

AGGREGATE = "SELECT month, currency, SUM(spending) FROM monthly_spending_by_category GROUP BY 1, 2 ORDER BY 1, 2"


def timed_process(command: list[str], env: dict[str, str], repeat: int) -> list[float]:
    """Wall seconds of `repeat` runs of a command (each must succeed)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    """Build the store, time the refreshes and the CLI, emit the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-analyst-"))
    try:
        engine = fresh_engine(work / "finance.duckdb")
        synced = ingest(engine, DataSet(args.rows))
        log(f"store: {synced['added']:,} transactions (ingest apply {synced['apply_s']:.2f} s, the yardstick of how "
            "busy the machine is: 1.2 s in the quiet full run of bench/RESULTS.md)")
        path = snapshot_path(work)
        refreshes = []
        for i in range(args.repeat):
            refreshes.append(refresh_snapshot(engine, path))
            log(f"refresh {i + 1}/{args.repeat}: {refreshes[-1]:.2f} s ({path.stat().st_size / 2**20:.0f} MiB)")
        engine.dispose()
        os.utime(path)  # newer than the store: the CLI reads it as it stands, as while the app runs

        env = {**os.environ, "FINANCE_DATA_DIR": str(work), "PYTHONPATH": str(REPO)}
        python = timed_process([sys.executable, "-c", "pass"], env, args.repeat)
        floor = timed_process([sys.executable, "-c", "import duckdb, pyarrow"], env, args.repeat)
        select_one = timed_process([sys.executable, "-m", "finance", "query", "SELECT 1"], env, args.repeat)
        aggregate = timed_process([sys.executable, "-m", "finance", "query", AGGREGATE], env, args.repeat)
        log(f"python -c pass {median(python):.3f} s; query SELECT 1 {median(select_one):.3f} s; "
            f"monthly aggregate over {args.rows:,} rows {median(aggregate):.3f} s")
        result: dict[str, Any] = {
            "rows": synced["added"], "repeat": args.repeat, "refresh_s": median(refreshes), "runs_refresh_s": refreshes,
            "ingest_apply_s": synced["apply_s"], "load": os.getloadavg(),
            "snapshot_mib": path.stat().st_size / 2**20, "python_s": median(python),
            "query_select1_s": median(select_one), "query_aggregate_s": median(aggregate),
            "query_beyond_python_s": median(select_one) - median(python), "runs_query_s": select_one,
            "import_duckdb_pyarrow_s": median(floor),
        }
        emit(result)
        print(f"Snapshot refresh after a sync of {result['rows']:,} transactions: {result['refresh_s']:.2f} s median "
              f"of {args.repeat} (target < 2 s: {'met' if result['refresh_s'] < 2 else 'NOT met'}); "
              f"{result['snapshot_mib']:.0f} MiB; ingest apply in the same run {result['ingest_apply_s']:.2f} s, load "
              f"{result['load'][0]:.1f}")
        print(f"finance query start-up: {result['query_select1_s']:.2f} s for SELECT 1 = "
              f"{result['query_beyond_python_s']:.2f} s beyond Python's own {result['python_s']:.2f} s (importing "
              f"duckdb and pyarrow alone: {result['import_duckdb_pyarrow_s']:.2f} s); "
              f"a monthly aggregate over every row: {result['query_aggregate_s']:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
