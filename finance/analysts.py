"""The analysts' operations on Services: the read-only SQL console of the Explore page (with the saved queries and
the schema reference) and the analysts' snapshot the app rewrites after every sync."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from finance import analytics
from finance.store import console
from finance.store import schema_doc as schema_text
from finance.store.snapshot import refresh_snapshot

log = logging.getLogger(__name__)


class Console:
    """The read-only SQL console and the user's saved queries (a file in the data folder)."""

    MAX_ROWS = console.MAX_ROWS
    MAX_RESULT_SIZE = console.size_text(console.MAX_RESULT_BYTES)
    MEMORY = console.size_text(console.MEMORY_BYTES)
    TIMEOUT_SECONDS = console.TIMEOUT_SECONDS
    EXAMPLES = console.EXAMPLE_QUERIES

    def __init__(self, engine: sa.Engine, data_dir: Path) -> None:
        self._engine = engine
        self._saved_path = console.saved_queries_path(data_dir)

    def run(self, sql: str) -> console.QueryResult:
        """Validate and run one query on a snapshot of the store, in a query process (one is kept started for the
        next query); ConsoleError says why not."""
        return console.run_query(self._engine, sql, keep_warm=True)

    def saved(self) -> list[console.SavedQuery]:
        """The user's saved queries, by name."""
        return console.load_saved_queries(self._saved_path)

    def save(self, name: str, sql: str) -> console.SavedQuery:
        """Save (or replace) a query under `name`."""
        return console.save_query(self._saved_path, name, sql)

    def delete(self, name: str) -> bool:
        """Remove a saved query; False when there was none of that name."""
        return console.delete_saved_query(self._saved_path, name)

    def schema(self) -> tuple[str, list[schema_text.Section]]:
        """The documented schema as docs/schema.md has it: the conventions, then one section per table and view."""
        return schema_text.INTRO, schema_text.sections()

    def csv(self, table: pa.Table) -> bytes:
        """A result as CSV."""
        return console.to_csv_bytes(table)

    def parquet(self, table: pa.Table) -> bytes:
        """A result as Parquet."""
        return console.to_parquet_bytes(table)


class Analytics:
    """The analysts' snapshot (finance.store.snapshot), rewritten after every sync so outside tools read current
    data while the app holds the store. Only a DuckDB file store has one: PostgreSQL is read directly."""

    def __init__(self, engine: sa.Engine, data_dir: Path) -> None:
        self._engine = engine
        self.path = analytics.snapshot_path(data_dir)

    @property
    def enabled(self) -> bool:
        """True for a DuckDB file store."""
        url = self._engine.url
        return url.get_backend_name() == "duckdb" and url.database not in (None, "", ":memory:")

    def refresh(self, *, only_if_stale: bool = False) -> float | None:
        """Rewrite the snapshot (`only_if_stale`: unless it is newer than the store file); the seconds it took, or
        None when there is none or it failed (logged: a sync that worked never fails because of it, and the next
        sync writes it again)."""
        if not self.enabled or (only_if_stale and not analytics.is_stale(Path(str(self._engine.url.database)),
                                                                          self.path)):
            return None
        try:
            return refresh_snapshot(self._engine, self.path)
        except Exception:
            log.exception("the analytics snapshot was not refreshed; the next sync tries again")
            return None
