"""Recurring detection and the Recurring page on stores of N transactions.

Three figures per store (built like bench.dashboard's, `<dir>/finance.duckdb`, when missing):
- `svc.recurring.series`: the SQL pre-filter plus detection, as every page and the forecast and alerts call it;
- detection alone on N generated rows with planted series (one group of 50 rows per account and merchant: a
  monthly subscription, sometimes with a price change or a skipped month, among identical unrelated purchases), the
  case with the most groups to walk — the store's generated history has few, large groups;
- the Recurring page's render time (AppTest, a full rerun after a warm-up run).

Run: `.venv/bin/python -m bench.recurring --rows 1000000 --dir /tmp/d --repeat 3`.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import REPO, emit, log, median
from bench.dashboard import build
from finance.recurring import add_months

PAGE = "pages/recurring.py"
ROWS_PER_GROUP = 50


def planted_rows(rows: int, today: date, seed: int = 7) -> tuple[pd.DataFrame, int]:
    """`rows` transactions in groups of ROWS_PER_GROUP: in each, a monthly series of 12 to 24 payments (a price
    change in a third, a skipped month in a fifth) and identical unrelated purchases at random dates filling the
    rest; every fourth group is all noise. Returns the rows and how many series were planted."""
    rng = random.Random(seed)
    ids, accounts, merchants, days, cents = [], [], [], [], []
    planted = 0
    for group in range(rows // ROWS_PER_GROUP):
        price = -rng.randint(500, 50_000)
        dates: list[date] = []
        amounts: list[int] = []
        if group % 4:
            planted += 1
            count = rng.randint(12, 24)
            change = rng.randint(1, count - 1) if rng.random() < 1 / 3 else count
            skip = rng.randint(2, count - 3) if rng.random() < 0.2 else -1
            for i in range(count):
                if i != skip:
                    due = add_months(date(today.year, today.month, 5), i - count)
                    dates.append(due + timedelta(days=rng.randint(0, 2)))
                    amounts.append(price if i < change else round(price * 1.1))
        while len(dates) < ROWS_PER_GROUP:
            dates.append(today - timedelta(days=rng.randint(1, 730)))
            amounts.append(-rng.randint(500, 50_000) if group % 4 else price)
        ids += [f"t{group}-{i}" for i in range(len(dates))]
        accounts += [f"account-{group % 10}"] * len(dates)
        merchants += [f"Merchant {group}"] * len(dates)
        days += dates
        cents += amounts
    frame = pd.DataFrame({"id": ids, "account_id": accounts, "merchant": merchants, "currency": "BRL",
                          "booked_date": pd.to_datetime(days), "amount_cents": np.array(cents, dtype=np.int64)})
    return frame, planted


def time_planted(rows: int, repeat: int) -> dict[str, Any]:
    """Detection alone on generated rows with planted series."""
    from finance.recurring import detect

    today = date.today()
    frame, planted = planted_rows(rows, today)
    runs, found = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        found = len(detect(frame, today))
        runs.append(time.perf_counter() - started)
    return {"rows": len(frame), "planted": planted, "found": found, "runs": runs, "median_s": median(runs)}


def time_store(folder: Path, repeat: int) -> dict[str, Any]:
    """`svc.recurring.series` on the store: the SQL pre-filter and detection, each timed."""
    from finance.recurring import detect
    from finance.services import open_services
    from finance.store.recurring import candidate_rows

    svc = open_services()
    try:
        today = date.today()
        svc.recurring.series(today)  # warm-up: the first query reads the file
        runs, sql, detection, found, candidates = [], [], [], 0, 0
        for _ in range(repeat):
            started = time.perf_counter()
            found = len(svc.recurring.series(today))
            runs.append(time.perf_counter() - started)
            with svc.engine.connect() as conn:
                started = time.perf_counter()
                rows = candidate_rows(conn)
                sql.append(time.perf_counter() - started)
            started = time.perf_counter()
            detect(rows, today)
            detection.append(time.perf_counter() - started)
            candidates = len(rows)
    finally:
        svc.engine.dispose()
    return {"runs": runs, "median_s": median(runs), "sql_s": median(sql), "detect_s": median(detection),
            "candidate_rows": candidates, "series": found}


def time_page(repeat: int) -> dict[str, Any]:
    """The Recurring page's render time, after one warm-up run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.run()
    at.switch_page(PAGE)
    at.run()
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - started)
    return {"runs": runs, "median_s": median(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recurring", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (args.dir / "finance.duckdb").is_file():
        log(f"recurring: building a store of {args.rows:,} rows")
        build(args.rows, args.dir)
    os.environ["FINANCE_DATA_DIR"] = str(args.dir)
    os.environ["FINANCE_SANDBOX_SETTLE_SECONDS"] = "0"
    for name in ("FINANCE_DATABASE_URL", "PLUGGY_CLIENT_ID", "PLUGGY_CLIENT_SECRET", "PLUGGY_BASE_URL",
                 "PLAID_CLIENT_ID", "PLAID_SECRET", "PLAID_BASE_URL"):
        os.environ.pop(name, None)
    result: dict[str, Any] = {"rows": args.rows}
    log(f"recurring: svc.recurring.series on {args.rows:,} rows")
    result["store"] = time_store(args.dir, args.repeat)
    log(f"recurring: detection on {args.rows:,} generated rows with planted series")
    result["planted"] = time_planted(args.rows, args.repeat)
    log("recurring: the Recurring page")
    result["page"] = time_page(args.repeat)
    emit(result)


if __name__ == "__main__":
    main()
