"""Run every benchmark and print one table: `.venv/bin/python -m bench` (or `--quick` for 100k transactions).

Each scenario runs in its own subprocess (bench.ingest, bench.sync1m, bench.latency, bench.dashboard,
bench.recurring); every ratio compares figures measured in the same subprocess, in the same run. Figures are medians
over the runs shown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, ChildFailed, log, run_child

SECTIONS = ("ingest", "sync", "latency", "dashboard", "webhooks", "recurring")
MB = 1_000_000 / 2**20
"""One MB (10^6 bytes) in MiB: the memory target is 600 MB = 572 MiB."""


@dataclass(frozen=True)
class Figure:
    """One line of the table."""

    name: str
    value: str
    target: str = "—"
    met: bool | None = None


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import duckdb

    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as fh:
        total_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True,
                           check=False).stdout.count("\n")
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cores": str(len(os.sched_getaffinity(0))), "cpu": cpu,
            "ram": f"{total_kb / 2**20:.1f} GiB", "python": platform.python_version(), "duckdb": duckdb.__version__,
            "os": platform.platform(), "commit": f"{git or 'unknown'} ({dirty} uncommitted paths)",
            "load_before": _load()}


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def _n(rows: float) -> str:
    return f"{rows / 1e6:g}M" if rows >= 1e6 else f"{rows / 1e3:g}k"


def _met(ok: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: ""}[ok]


def ingest_figures(r: dict[str, Any]) -> list[Figure]:
    """Lines of section 1 from bench.ingest's result."""
    rows = r["rows"]
    return [
        Figure(f"Ingest end to end, {_n(rows)} rows (JSON pages of 500 → decode → map → apply_sync, one transaction), "
               f"median of {r['repeat']}",
               f"{r['rows_per_s']:,.0f} rows/s ({r['total_s']:.1f} s = decode and map {r['map_s']:.1f} s, of which "
               f"decoding {r['decode_s']:.1f} s, + apply "
               f"{r['apply_s']:.1f} s)", "≥ 250,000 rows/s", r["rows_per_s"] >= 250_000),
        Figure(f"… vs row-by-row SQLAlchemy insert ({r['sample']:,} rows, extrapolated to {_n(rows)})",
               f"{r['ratio_vs_row_by_row']:.0f}× faster (baseline {r['row_by_row_rows_per_s']:,.0f} rows/s = "
               f"{r['row_by_row_extrapolated_s']:,.0f} s)", "≥ 100×", r["ratio_vs_row_by_row"] >= 100),
        Figure("… vs DuckDB appending a ready Arrow table of the final rows",
               f"{r['ratio_vs_arrow']:.1f}× the Arrow append ({r['arrow_append_s']:.2f} s)", "≤ 4×",
               r["ratio_vs_arrow"] <= 4),
    ]


def sync_figures(r: dict[str, Any]) -> list[Figure]:
    """Lines of section 2 from bench.sync1m's result."""
    rows, initial, same, changed = r["rows"], r["initial"], r["unchanged"], r["modified"]
    return [
        Figure(f"Initial sync of {_n(rows)} rows through the client (emulator over loopback HTTP)",
               f"{initial['wall_s']:.1f} s, {initial['requests']:,} requests ({initial['in_flight_s']:.1f} s with a "
               f"request in flight; fetch {initial['fetch_s']:.1f} s, apply {initial['apply_s']:.1f} s)"),
        Figure(f"Re-sync of {_n(rows)} stored, nothing new, median of {r['repeat']}",
               f"{same['wall_s']:.2f} s, {same['requests']:.0f} requests; {same['beyond_s']:.2f} s beyond the "
               f"requests (apply {same['apply_s']:.2f} s)", "< 1 s beyond the requests", same["beyond_s"] < 1),
        Figure(f"Re-sync with 1% modified ({r['modified_rows']:,} rows), median of {r['repeat']}",
               f"{changed['wall_s']:.2f} s, {changed['requests']:.0f} requests; {changed['beyond_s']:.2f} s beyond "
               f"the requests (apply {changed['apply_s']:.2f} s)"),
    ]


def memory_figures(sync: dict[str, Any] | None, pages: dict[int, dict[str, Any]], top: int) -> list[Figure]:
    """Lines of section 5: the sync's and the Overview's peak RSS."""
    figures = []
    if sync:
        figures.append(Figure(f"Peak RSS of the {_n(sync['rows'])}-transaction initial sync (client process)",
                              f"{sync['peak_rss_mb']:.0f} MiB (before the sync {sync['rss_before_sync_mb']:.0f} MiB)",
                              "< 600 MB (572 MiB)", sync["peak_rss_mb"] < 600 * MB))
    if top in pages:
        figures.append(Figure(f"Peak RSS of the Overview at {_n(top)} (AppTest process)",
                              f"{pages[top]['overview_peak_rss_mb']:.0f} MiB (after imports "
                              f"{pages[top]['rss_before_mb']:.0f} MiB)"))
    return figures


def latency_figures(r: dict[str, Any]) -> list[Figure]:
    """Lines of section 3 from bench.latency's result."""
    return [
        Figure(f"Initial sync, {r['items']} items × {r['accounts'] // r['items']} accounts × "
               f"{r['rows_per_account']:,} rows, {r['latency_s'] * 1000:.0f} ms per request, median of {r['repeat']}",
               f"{r['wall_s']:.2f} s (connections concurrently: the slowest fetch took {r['fetch_s']:.2f} s, then "
               f"{r['apply_s']:.2f} s to the last commit), {r['requests']:.0f} requests, "
               f"{r['statuses'].get('429', 0)} × 429"),
        Figure("… vs the sequential lower bound (requests × latency)",
               f"{r['ratio_vs_sequential']:.2f}× ({r['sequential_s']:.1f} s)"),
        Figure("… vs the best schedule the rate limits allow",
               f"{r['ratio_vs_best']:.1f}× ({r['best_s']:.1f} s = chain of {r['chain_requests']} requests; "
               f"rate bound {r['rate_bound_s']:.1f} s)", "≤ 1.5×", r["ratio_vs_best"] <= 1.5),
    ]


PAGE_TARGETS = {"overview": 0.5, "filter": 0.3, "budgets": 0.5}


def dashboard_figures(r: dict[int, dict[str, Any]], top: int) -> list[Figure]:
    """Lines of section 4 from bench.dashboard's results per store size."""
    scales = sorted(r)
    figures = []
    labels = {"overview": "Overview", "transactions": "Transactions (unfiltered)",
              "filter": "Transactions, text filter", "sync_status": "Sync status", "money": "Money",
              "explore": "Explore", "connections": "Connections", "budgets": "Budgets"}

    def entry(result: dict[str, Any], page: str) -> dict[str, Any]:
        if page == "filter":
            return result.get("transactions", {}).get("filter", {"status": "not built yet"}) if (
                result.get("transactions", {}).get("status") == "ok") else result.get("transactions", {})
        return result.get(page, {})

    for page, label in labels.items():
        cells = []
        for scale in scales:
            e = entry(r[scale], page)
            cells.append(f"{_n(scale)}: {e['median_s']:.2f} s" if "median_s" in e else f"{_n(scale)}: "
                         f"{e.get('status', 'failed')}")
        limit = PAGE_TARGETS.get(page)
        top_entry = entry(r[top], page) if top in r else {}
        met = None if limit is None or "median_s" not in top_entry else top_entry["median_s"] < limit
        target = f"< {limit} s at {_n(top)}" if limit is not None else "—"
        figures.append(Figure(f"{label} render time (AppTest, median)", "; ".join(cells), target, met))
        times = [entry(r[scale], page).get("median_s") for scale in scales]
        if len(scales) > 1 and None not in times:
            steps = [f"{b / a:.1f}× {_n(x)} → {_n(y)}" for a, b, x, y in zip(times, times[1:], scales, scales[1:],
                                                                         strict=False)]
            growth = times[-1] / times[0]
            figures.append(Figure(f"… growth {_n(scales[0])} → {_n(scales[-1])}",
                                  f"{growth:.1f}×" + (f" ({', '.join(steps)})" if len(steps) > 1 else ""), "< 3×",
                                  growth < 3))
    return figures


def recurring_figures(r: dict[int, dict[str, Any]], top: int) -> list[Figure]:
    """Lines of section 7 from bench.recurring's results per store size."""
    scales = sorted(r)
    store, planted = r[top]["store"], r[top]["planted"]
    return [
        Figure(f"Recurring detection, svc.recurring.series on {_n(top)} rows (SQL pre-filter + detection), median",
               f"{store['median_s']:.2f} s (SQL {store['sql_s']:.2f} s, detection {store['detect_s']:.2f} s; "
               f"{store['candidate_rows']:,} candidate rows, {store['series']} series)", "< 2 s",
               store["median_s"] < 2),
        Figure(f"… detection alone, {_n(planted['rows'])} generated rows with {planted['planted']:,} planted series",
               f"{planted['median_s']:.2f} s ({planted['found']:,} found)", "< 2 s", planted["median_s"] < 2),
        Figure("Recurring page render time (AppTest, median)",
               "; ".join(f"{_n(scale)}: {r[scale]['page']['median_s']:.2f} s" for scale in scales)),
    ]


def webhook_figures(r: dict[str, Any]) -> list[Figure]:
    """Lines of section 6 from bench.webhooks's result."""
    return [
        Figure(f"Webhook → new transactions committed, `streamlit run app.py`, Pluggy, median of {r['rounds']}",
               f"{r['pluggy_median_s']:.2f} s (max {r['pluggy_max_s']:.2f} s; {r['debounce_s']:.1f} s of it is the "
               f"worker's debounce); a page open shows it at its next check, ≤ {r['refresh_s']:.0f} s later"),
        Figure(f"… Plaid (signed SYNC_UPDATES_AVAILABLE), median of {r['rounds']}",
               f"{r['plaid_median_s']:.2f} s (max {r['plaid_max_s']:.2f} s)"),
        Figure(f"Webhook route's answer, {r['posts']} signed posts",
               f"median {r['answer_median_s'] * 1000:.0f} ms, p95 {r['answer_p95_s'] * 1000:.0f} ms, max "
               f"{r['answer_max_s'] * 1000:.0f} ms", "< 1 s", r["answer_max_s"] < 1),
    ]


def table(figures: list[tuple[str, list[Figure]]]) -> str:
    """The figures as one Markdown table."""
    lines = ["| Figure | Value | Target | Met? |", "|---|---|---|---|"]
    for section, rows in figures:
        lines.append(f"| **{section}** | | | |")
        lines += [f"| {f.name} | {f.value} | {f.target} | {_met(f.met)} |" for f in rows]
    return "\n".join(lines)


def main() -> None:
    """Run the scenarios (each in a subprocess) and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k transactions instead of 1M, fewer runs")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--json", type=Path, help="also write every raw figure to this JSON file")
    args = parser.parse_args()

    rows = 100_000 if args.quick else 1_000_000
    scales = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    big_repeat, small_repeat = (2, 3) if args.quick else (3, 5)
    info = machine()
    print(f"Machine: {info['cores']} cores, {info['cpu']}, {info['ram']} RAM; Python {info['python']}, DuckDB "
          f"{info['duckdb']}; {info['date']}", flush=True)
    print(f"Code: commit {info['commit']}; load average (1/5/15 min) {info['load_before']}", flush=True)
    print(f"Data: {_n(rows)} transactions (one connection, 9 checking accounts + 1 card); {big_repeat} runs at "
          f"{_n(rows)}, {small_repeat} at smaller sizes; medians.", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    results: dict[str, Any] = {"machine": info, "rows": rows}
    figures: list[tuple[str, list[Figure]]] = []
    started = time.perf_counter()
    failures: list[str] = []

    def attempt(section: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        try:
            return call()
        except ChildFailed as exc:
            log(f"{section} failed: {exc}")
            failures.append(section)
            figures.append((section, [Figure("failed", str(exc))]))
            return None

    try:
        if "ingest" in args.only:
            log(f"ingest: {_n(rows)} rows × {big_repeat}")
            keep = work / f"dash-{rows}" / "finance.duckdb"
            r = attempt("Ingest", lambda: run_child("ingest", "--rows", str(rows), "--repeat", str(big_repeat),
                                                    "--keep", str(keep)))
            if r:
                results["ingest"] = r
                figures.append(("1. Ingest", ingest_figures(r)))
        if "sync" in args.only:
            log(f"sync through the client: {_n(rows)} rows, re-syncs × {big_repeat}")
            r = attempt("Re-sync", lambda: run_child("sync1m", "--rows", str(rows), "--repeat", str(big_repeat)))
            if r:
                results["sync"] = r
                figures.append(("2. Re-sync", sync_figures(r)))
        if "latency" in args.only:
            log("initial sync with 100 ms latency")
            r = attempt("Latency", lambda: run_child("latency", "--repeat", str(small_repeat if args.quick else 3)))
            if r:
                results["latency"] = r
                figures.append(("3. Initial sync with 100 ms latency", latency_figures(r)))
        pages: dict[int, dict[str, Any]] = {}
        if "dashboard" in args.only:
            for scale in scales:
                folder = work / f"dash-{scale}"
                if not (folder / "finance.duckdb").is_file():
                    log(f"dashboard: building a store of {_n(scale)} rows")
                    if attempt("Dashboard", lambda f=folder, s=scale: run_child(
                            "dashboard", "build", "--rows", str(s), "--dir", str(f))) is None:
                        continue
                log(f"dashboard: rendering at {_n(scale)}")
                repeat = big_repeat if scale >= 1_000_000 else small_repeat
                r = attempt("Dashboard", lambda f=folder, n=repeat: run_child(
                    "dashboard", "render", "--dir", str(f), "--repeat", str(n)))
                if r:
                    pages[scale] = r
            results["dashboard"] = {str(k): v for k, v in pages.items()}
            if pages:
                figures.append(("4. Dashboard", dashboard_figures(pages, scales[-1])))
        if "webhooks" in args.only:
            log("webhooks: latency from a webhook to the data, with streamlit run")
            r = attempt("Webhooks", lambda: run_child("webhooks", "--rounds", "3" if args.quick else "5"))
            if r:
                results["webhooks"] = r
                figures.append(("6. Webhooks", webhook_figures(r)))
        recurring: dict[int, dict[str, Any]] = {}
        if "recurring" in args.only:
            for scale in scales:
                log(f"recurring: detection and the page at {_n(scale)}")
                repeat = big_repeat if scale >= 1_000_000 else small_repeat
                r = attempt("Recurring", lambda s=scale, n=repeat: run_child(
                    "recurring", "--rows", str(s), "--dir", str(work / f"dash-{s}"), "--repeat", str(n)))
                if r:
                    recurring[scale] = r
            results["recurring"] = {str(k): v for k, v in recurring.items()}
            if scales[-1] in recurring:
                figures.append(("7. Recurring", recurring_figures(recurring, scales[-1])))
        memory = memory_figures(results.get("sync"), pages, scales[-1])
        if memory:
            figures.append(("5. Memory", memory))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(table(figures))
    missed = [f for _, rows_ in figures for f in rows_ if f.met is False]
    results["machine"]["load_after"] = _load()
    print(f"\n{len(missed)} target(s) missed. Total time {time.perf_counter() - started:.0f} s; load average "
          f"(1/5/15 min) at the end {results['machine']['load_after']}.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
