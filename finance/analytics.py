"""Read access for analysts' own tools: `finance.analytics.connect()` opens the snapshot read-only.

The snapshot (`data/analytics.duckdb`) is a DuckDB copy of the store that the app rewrites atomically after every
sync, so it can be read while the app runs, from Python as below or from the duckdb CLI
(`duckdb -readonly data/analytics.duckdb`). It holds the tables of docs/schema.md (without provider tokens) and
the documented views `effective_transactions`, `monthly_cash_flow`, `monthly_spending_by_category`,
`merchant_monthly` and `snapshot_info`::

    from finance import analytics
    con = analytics.connect()
    con.sql("SELECT * FROM monthly_cash_flow ORDER BY month").df()    # pandas
    con.sql("SELECT * FROM merchant_monthly").pl()                     # Polars

This module stays light (no pandas, SQLAlchemy or Streamlit) so `python -m finance query` starts fast.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from finance.errors import StoreError
from finance.i18n import _

SNAPSHOT_FILE = "analytics.duckdb"


class SnapshotMissing(StoreError):
    """There is no snapshot yet: nothing was synced since the app wrote its first one."""

    code = "SNAPSHOT_MISSING"


def snapshot_path(folder: Path | None = None) -> Path:
    """Where the snapshot of a data folder (default: the app's) lives."""
    from finance.config import load_settings  # light: the standard library only

    return (folder or load_settings().data_dir) / SNAPSHOT_FILE


def connect(path: Path | str | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection to the snapshot (default: the app's data folder). Close it when done: it keeps
    reading the file it opened, even after the app puts a newer snapshot in place. Raises SnapshotMissing."""
    file = Path(path) if path is not None else snapshot_path()
    if not file.is_file():
        raise SnapshotMissing(_("No analytics snapshot at {file}: the app writes it after every sync (or run "
                                "`python -m finance sync` once).").format(file=file))

    con = duckdb.connect(str(file), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def is_stale(database_file: Path, snapshot: Path) -> bool:
    """True when the store file (or its write-ahead log) changed after the snapshot was written, or there is none."""
    try:
        written = snapshot.stat().st_mtime
    except FileNotFoundError:
        return True
    sources = [database_file, database_file.with_name(database_file.name + ".wal")]
    return any(s.exists() and s.stat().st_mtime > written for s in sources)
