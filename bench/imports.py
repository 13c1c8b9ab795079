"""File import at size, and what it adds to every sync.

- A generated Brazilian CSV of N rows (a few hundred shops, fees repeated daily) into a manual account: the preview
  (read, key and place every row), the commit (placed again in the write transaction, rows inserted, balance
  history rebuilt), the preview of the same file again (every row "imported before") and the undo.
- The step every sync now runs in its transaction (`replace_with_synced`: imported rows that the sync's new rows
  describe give way) on a store of M synced rows (bench.dashboard's), with no imported rows and with N.

Run: `.venv/bin/python -m bench.imports --rows 50000 [--store-rows 1000000 --dir /tmp/d] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.common import log, median
from bench.dashboard import build
from finance.file_import import FileImports
from finance.imports.csv_reader import ColumnMapping
from finance.store.db import create_engine, init_schema
from finance.store.imports import replace_with_synced

MAPPING = ColumnMapping(date="Data", description="Descrição", amount="Valor")


def statement(rows: int, seed: int = 7) -> bytes:
    """`rows` lines of a Brazilian export over the years before today: shops, a daily fee, a monthly salary."""
    rng = random.Random(seed)
    start = date.today() - timedelta(days=rows // 12 + 400)
    lines = ["Data;Descrição;Valor"]
    for i in range(rows):
        day = start + timedelta(days=i // 12)
        kind = i % 12
        if kind == 0:
            text, cents = "TARIFA PACOTE SERVICOS", -1990
        elif kind == 1 and day.day == 5:
            text, cents = "SALARIO ACME LTDA", 850_000
        else:
            text, cents = f"COMPRA CARTAO LOJA {rng.randint(1, 400)}", -rng.randint(100, 90_000)
        lines.append(f"{day:%d/%m/%Y};{text};{'-' if cents < 0 else ''}{abs(cents) // 100},{abs(cents) % 100:02d}")
    return "\n".join(lines).encode()


def one_import(data: bytes) -> dict[str, float]:
    """Seconds of preview, commit, preview again and undo of `data` into a new manual account of a new store."""
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"duckdb:///{folder}/import.duckdb")
        init_schema(engine)
        imports = FileImports(engine)
        account = imports.create_account("Bench", "BRL", "checking", "1000,00", actor="bench")
        started = time.perf_counter()
        preview = imports.preview(account, "bench.csv", data, MAPPING)
        seconds["preview"] = time.perf_counter() - started
        started = time.perf_counter()
        imports.commit(preview, {}, actor="bench")
        seconds["commit"] = time.perf_counter() - started
        started = time.perf_counter()
        imports.preview(account, "bench.csv", data, MAPPING)
        seconds["again"] = time.perf_counter() - started
        batch = imports.history()["id"][0]
        started = time.perf_counter()
        imports.undo(batch, actor="bench")
        seconds["undo"] = time.perf_counter() - started
        engine.dispose()
    return seconds


def time_import(rows: int, repeat: int) -> dict[str, float]:
    """Median seconds of preview, commit, preview again and undo of one file of `rows` rows."""
    data = statement(rows)
    runs = [one_import(data) for _ in range(repeat)]
    return {name: median(run[name] for run in runs) for name in runs[0]}


def time_sync_step(store_rows: int, folder: Path, imported: int, repeat: int) -> dict[str, float]:
    """Median seconds of `replace_with_synced` over every account of a store of `store_rows` synced rows, with no
    imported rows and with `imported` of them in its first account (none of which a synced row describes)."""
    if not (folder / "finance.duckdb").is_file():
        log(f"imports: building a store of {store_rows:,} rows")
        build(store_rows, folder)
    engine = create_engine(f"duckdb:///{folder / 'finance.duckdb'}")
    with engine.connect() as conn:
        accounts = [r[0] for r in conn.execute(sa.text("SELECT id FROM accounts ORDER BY id"))]
    since, today = datetime.now(UTC) - timedelta(minutes=5), date.today()

    def step() -> float:
        with engine.begin() as conn:
            started = time.perf_counter()
            replace_with_synced(conn, accounts, since, today)
            return time.perf_counter() - started

    figures = {"none": median(step() for _ in range(repeat))}
    imports = FileImports(engine)
    preview = imports.preview(accounts[0], "bench.csv", statement(imported), MAPPING)
    imports.commit(preview, dict.fromkeys(preview.ambiguous(), "keep"), actor="bench")
    figures["with_imported"] = median(step() for _ in range(repeat))
    imports.undo(imports.history()["id"][0], actor="bench")
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--store-rows", type=int, help="also time the sync's step on a store of this many rows")
    parser.add_argument("--dir", type=Path, help="where the store of --store-rows is built (kept for reruns)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    log(f"imports: a file of {args.rows:,} rows")
    figures = time_import(args.rows, args.repeat)
    print(f"File of {args.rows:,} rows: preview {figures['preview']:.2f} s, commit {figures['commit']:.2f} s, "
          f"preview again {figures['again']:.2f} s, undo {figures['undo']:.2f} s")
    if args.store_rows:
        folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-imports-"))
        step = time_sync_step(args.store_rows, folder, args.rows, args.repeat)
        print(f"Sync step on {args.store_rows:,} synced rows: {step['none'] * 1000:.1f} ms without imported rows, "
              f"{step['with_imported'] * 1000:.1f} ms with {args.rows:,}")


if __name__ == "__main__":
    main()
