"""Server-side render time of the pages (Streamlit AppTest) on a store of N transactions, and the Overview's memory.

`build` writes a store (the ingest path of bench.common) into `<dir>/finance.duckdb`; `render` points the app at that
folder (FINANCE_DATA_DIR) and times each page's script run: the Overview, the Transactions page unfiltered and with a
text filter, and the Sync status, Money, Explore, Connections and Budgets pages (the store has a few budgets, some
rolling over from earlier months). Pages that do not exist yet are reported as
"not built yet", pages the app's navigation does not list yet as "not reachable".
Each timed run is a full rerun of the page script (the widgets keep their state), after one warm-up run.

Run: `.venv/bin/python -m bench.dashboard build --rows 100000 --dir /tmp/d`, then `... render --dir /tmp/d`.
"""

from __future__ import annotations

import argparse
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bench.common import REPO, DataSet, emit, fresh_engine, ingest, log, median, peak_rss_mb, rss_mb, today_sp
from finance.budgets import Budget, add_months, first_of_month
from finance.store.budgets import set_budget

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest
    from streamlit.testing.v1.element_tree import TextInput

PAGES = {"overview": "pages/overview.py", "transactions": "pages/transactions.py",
         "sync_status": "pages/sync_status.py", "money": "pages/money.py", "explore": "pages/explore.py",
         "connections": "pages/connections.py", "budgets": "pages/budgets.py", "cash_flow": "pages/cash_flow.py"}
FILTER_TEXT = "ifood"
"""A merchant of the card account (about 2% of the rows), typed in lower case."""
FILTER_WORDS = ("search", "filter", "text", "description", "merchant", "busca")


def build(rows: int, folder: Path) -> dict[str, Any]:
    """A store with `rows` generated transactions of one connection, as a sync would leave it, and a few budgets."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = fresh_engine(folder / "finance.duckdb")
    try:
        built = ingest(engine, DataSet(rows))
        set_budgets(engine)
        return built
    finally:
        engine.dispose()


BUDGETS = {"food": ("1500", True), "food.groceries": ("900", False), "transport": ("600", True),
           "shopping": ("800", False), "housing": ("2500", False), "entertainment.streaming": ("100", True)}
"""Category → (monthly BRL amount, rollover): parents and children, some carried over from month to month."""


def set_budgets(engine: sa.Engine, months: int = 6) -> None:
    """The budgets of `BUDGETS` in each of the last `months` months, this one included (the Budgets page's
    rollover chains reach back to the first)."""
    this_month = first_of_month(today_sp())
    for back in range(months):
        for category, (amount, rollover) in BUDGETS.items():
            set_budget(engine, Budget(add_months(this_month, -back), category, "BRL", Decimal(amount), rollover),
                       actor="bench")


def _timed_runs(at: AppTest, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        _check(at)
    return times


def _check(at: AppTest) -> None:
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")


def _filter_box(at: AppTest) -> TextInput | None:
    boxes = list(at.text_input)
    for box in boxes:
        words = f"{box.label} {box.key or ''}".lower()
        if any(word in words for word in FILTER_WORDS):
            return box
    return boxes[0] if boxes else None


def _rows_shown(at: AppTest) -> int | None:
    frames = list(at.dataframe)
    return max(len(frame.value) for frame in frames) if frames else None


def _matches(at: AppTest) -> str | None:
    """The page's own count of matching transactions (its "Transactions (...)" figure), if it shows one."""
    return next((str(m.value) for m in at.metric if str(m.label).startswith("Transactions")), None)


def render(folder: Path, repeat: int) -> dict[str, Any]:
    """Time every page that exists, Overview first (its peak RSS is read before any other page runs)."""
    os.environ["FINANCE_DATA_DIR"] = str(folder)
    os.environ["FINANCE_SANDBOX_SETTLE_SECONDS"] = "0"
    for name in ("FINANCE_DATABASE_URL", "PLUGGY_CLIENT_ID", "PLUGGY_CLIENT_SECRET", "PLUGGY_BASE_URL",
                 "PLAID_CLIENT_ID", "PLAID_SECRET", "PLAID_BASE_URL"):
        os.environ.pop(name, None)
    from streamlit.testing.v1 import AppTest

    result: dict[str, Any] = {"rss_before_mb": rss_mb()}
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    started = time.perf_counter()
    at.run()
    result["overview_cold_s"] = time.perf_counter() - started
    _check(at)
    if not list(at.metric):
        raise RuntimeError("the Overview shows no figures: is the store empty?")
    result["overview"] = {"runs": _timed_runs(at, repeat)}
    result["overview_peak_rss_mb"] = peak_rss_mb()

    for page in (p for p in PAGES if p != "overview"):
        if not (REPO / PAGES[page]).is_file():
            result[page] = {"status": "not built yet"}
            continue
        try:
            at.switch_page(PAGES[page])
        except ValueError as exc:
            result[page] = {"status": f"not reachable: {exc}"}
            continue
        started = time.perf_counter()
        at.run()
        first = time.perf_counter() - started
        _check(at)
        entry: dict[str, Any] = {"status": "ok", "first_s": first, "runs": _timed_runs(at, repeat),
                                 "rows_shown": _rows_shown(at), "matches": _matches(at)}
        if page == "transactions":
            box = _filter_box(at)
            if box is None:
                entry["filter"] = {"status": "no text input on the page"}
            else:
                box.input(FILTER_TEXT)
                entry["filter"] = {"status": "ok", "widget": box.label, "text": FILTER_TEXT,
                                   "runs": _timed_runs(at, repeat), "rows_shown": _rows_shown(at),
                                   "matches": _matches(at)}
        result[page] = entry
    for entry in (*(result[page] for page in PAGES), result["transactions"].get("filter", {})):
        if "runs" in entry:
            entry["median_s"] = median(entry["runs"])
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    """`build` a store or `render` the pages on one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "render"))
    parser.add_argument("--dir", type=Path, required=True, help="the data folder (FINANCE_DATA_DIR)")
    parser.add_argument("--rows", type=int, default=100_000, help="transactions to build")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per page")
    args = parser.parse_args()
    if args.command == "build":
        built = build(args.rows, args.dir)
        log(f"built a store of {built['rows']:,} rows in {args.dir}")
        emit(built)
    else:
        emit(render(args.dir, args.repeat))


if __name__ == "__main__":
    main()
