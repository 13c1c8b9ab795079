"""The analysts' read-only SQL console, the documented schema and saved queries.

How a query runs, and why it cannot change the store or touch the file system:

1. **Validation with DuckDB's own parser** (on a shared, empty, locked in-memory instance that only parses).
   Exactly one statement, of type SELECT (``WITH``, ``VALUES``,
   ``FROM t``, ``DESCRIBE``, ``SUMMARIZE`` are SELECTs too). Its syntax tree (``json_serialize_sql``) is walked:
   data-modifying CTEs (``WITH d AS (DELETE … RETURNING *) SELECT …``, which DuckDB accepts as a SELECT),
   table functions outside a short allow-list (``read_csv``, ``read_text``, ``glob``, ``query`` …), file
   names used as tables (``FROM 'x.csv'``), ``getenv``/``current_setting`` and any mention of
   ``encrypted_secret`` are refused with a message saying why.
2. **Isolation.** The query never runs on the app's read-write connection, nor in the app's process. A consistent
   snapshot of the documented tables (one read transaction; ``encrypted_secret`` left out) is handed as Arrow
   tables to a fresh in-memory DuckDB instance per query, started with external access disabled (no files, no ATTACH,
   COPY, EXPORT, INSTALL/LOAD), no extension autoloading, no Python replacement scans, no temp directory
   (nothing spills to disk), a memory cap, and then a locked configuration (``SET`` cannot undo any of it).
   The tables there are read-only views over the Arrow copy, queried inside a transaction that is rolled
   back before the instance is closed: even a statement that slipped past step 1 could not reach the store.
3. **Limits** (finance.store.console_process). The query runs in a child process whose address space may grow by
   ``MEMORY_BYTES`` at most once the tables are loaded (DuckDB's own ``memory_limit``, set below it, does not
   bound every operator), which is killed when the query runs longer than ``TIMEOUT_SECONDS``, and whose
   result is cut at ``MAX_ROWS`` rows and ``MAX_RESULT_BYTES`` bytes before it reaches this process. Errors are
   one line: DuckDB's own message with file paths removed, or what the limit was.

The app cannot instead open the DuckDB file a second time read-only: DuckDB refuses a second connection to
the same file with a different configuration in the same process, and settings such as
``enable_external_access=false`` on the app's own instance would be global and permanent.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from finance.errors import ConsoleError
from finance.i18n import N_, Messages, _
from finance.store import console_process
from finance.store.console_process import SANDBOX_CONFIG, Limits, QueryFailed

if TYPE_CHECKING:  # imported where used: `python -m finance query` validates and runs without them (start-up time)
    import pandas as pd
    import sqlalchemy as sa

MAX_ROWS = 10_000
MAX_RESULT_BYTES = 32 * 2**20
TIMEOUT_SECONDS = 10.0
MEMORY_BYTES = 2**30
MAX_SQL_CHARS = 20_000
HIDDEN_COLUMNS = frozenset({"encrypted_secret"})
SAVED_QUERIES_FILE = "saved_queries.json"

SECRET_MESSAGE = N_("The column encrypted_secret holds provider access tokens and is never available in the "
                    "console. Leave it out of the query.")
READ_ONLY_HINT = N_("The console is read-only: write one SELECT (or WITH … SELECT) query.")
NESTING_MESSAGE = N_("The query is nested too deeply (brackets, subqueries or expressions inside one another). "
                     "Simplify it.")

ALLOWED_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree", "duckdb_tables", "duckdb_views",
    "duckdb_columns", "duckdb_constraints", "duckdb_types", "duckdb_functions", "duckdb_keywords",
    "duckdb_schemas", "duckdb_indexes", "pragma_table_info",
})
BLOCKED_FUNCTIONS = frozenset({"getenv", "current_setting"})

STATEMENT_MESSAGES = Messages({
    "INSERT": N_("Changing data (INSERT) is not allowed"),
    "UPDATE": N_("Changing data (UPDATE) is not allowed"),
    "DELETE": N_("Changing data (DELETE) is not allowed"),
    "MERGE_INTO": N_("Changing data (MERGE) is not allowed"),
    "CREATE": N_("Creating objects (CREATE) is not allowed"),
    "CREATE_FUNC": N_("Creating functions is not allowed"),
    "DROP": N_("Dropping objects (DROP) is not allowed"),
    "ALTER": N_("Changing the schema (ALTER) is not allowed"),
    "ATTACH": N_("Attaching databases is not allowed"),
    "DETACH": N_("Detaching databases is not allowed"),
    "COPY": N_("COPY is not allowed: the console cannot read or write files"),
    "COPY_DATABASE": N_("COPY is not allowed: the console cannot read or write files"),
    "EXPORT": N_("EXPORT is not allowed: the console cannot write files"),
    "LOAD": N_("Installing or loading extensions is not allowed"),
    "UPDATE_EXTENSIONS": N_("Updating extensions is not allowed"),
    "PRAGMA": N_("PRAGMA statements are not allowed"),
    "SET": N_("Changing settings (SET/RESET/USE) is not allowed"),
    "VARIABLE_SET": N_("Changing settings (SET) is not allowed"),
    "CALL": N_("CALL and CHECKPOINT are not allowed"),
    "TRANSACTION": N_("Transactions are managed by the console"),
    "VACUUM": N_("VACUUM is not allowed"),
    "ANALYZE": N_("ANALYZE is not allowed"),
    "EXPLAIN": N_("EXPLAIN is not supported"),
    "PREPARE": N_("Prepared statements are not supported"),
    "EXECUTE": N_("Prepared statements are not supported"),
    "MULTI": N_("This statement (for example a bare PIVOT) is not supported; wrap it as SELECT * FROM (…)"),
})

_PATH = re.compile(r"(?<![\w)\]])(?:[A-Za-z]:)?[\\/](?:[^\s\"'\\/]+[\\/])+[^\s\"'\\/]*")


# --------------------------------------------------------------------------------------------
# The documented schema
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ColumnDoc:
    """One documented column; `hidden` columns are never available in the console."""

    name: str
    type: str
    nullable: bool
    primary_key: bool
    comment: str
    hidden: bool


@dataclass(frozen=True, slots=True)
class TableDoc:
    """One documented table."""

    name: str
    description: str
    columns: tuple[ColumnDoc, ...]



def schema_doc(meta: sa.MetaData | None = None, dialect: sa.Dialect | None = None) -> list[TableDoc]:
    """Tables, columns, DuckDB types and column comments, read from the SQLAlchemy metadata."""
    from duckdb_engine import Dialect as DuckDBDialect

    from finance.store.schema import metadata

    meta = meta if meta is not None else metadata
    dialect = dialect or DuckDBDialect()
    return [
        TableDoc(
            name=table.name,
            description=table.comment or "",
            columns=tuple(ColumnDoc(name=col.name, type=str(col.type.compile(dialect=dialect)),
                                    nullable=bool(col.nullable), primary_key=col.primary_key,
                                    comment=col.comment or "", hidden=col.name in HIDDEN_COLUMNS)
                          for col in table.columns),
        )
        for table in meta.tables.values()
    ]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def clean_error(exc: BaseException | str) -> str:
    """DuckDB's message without file-system paths, trimmed to a readable length."""
    text = _PATH.sub("<path>", str(exc)).strip()
    return text if len(text) <= 1500 else text[:1500] + "…"


def _duckdb_message(exc: BaseException) -> str:
    """DuckDB's message for the analyst: paths removed; its depth limit said without advice the console refuses."""
    if "max expression depth" in str(exc).lower():
        return str(NESTING_MESSAGE)
    return clean_error(exc)


def _walk(tree: Any) -> Iterator[Mapping[str, Any]]:
    """Every object in a syntax tree, without recursion (a tree is as deep as the query is nested)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _check_tree(tree: Mapping[str, Any]) -> None:
    for node in _walk(tree.get("statements", [])):
        kind = node.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE") and kind not in ALLOWED_QUERY_NODES:
            verb = kind.removesuffix("_NODE").removesuffix("_QUERY").replace("_", " ")
            raise ConsoleError(_("Changing data ({verb} inside the query) is not allowed.").format(verb=verb) + " " +
                               READ_ONLY_HINT)
        if kind == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS:
                raise ConsoleError(_("The table function {name}() is not available: the console cannot read files, "
                                     "other databases or settings. Query the store's tables instead.").format(
                                         name=name))
        if node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in BLOCKED_FUNCTIONS:
            raise ConsoleError(_("The function {name}() is not available in the console.").format(
                name=node["function_name"]))
        if kind == "BASE_TABLE" and re.search(r"[./\\:*?]", str(node.get("table_name", ""))):
            raise ConsoleError(_("Reading files is not allowed ({name} is not a table). Query the store's tables "
                                 "instead.").format(name=repr(node["table_name"])))
        if node.get("class") == "COLUMN_REF" and any(
                str(part).lower() in HIDDEN_COLUMNS for part in node.get("column_names", [])):
            raise ConsoleError(str(SECRET_MESSAGE))


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _parse(text: str) -> tuple[list[Any], dict[str, Any] | None]:
    """DuckDB's statements for `text` and the syntax tree of the first (on a shared, empty, locked instance)."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:", config={**SANDBOX_CONFIG, "lock_configuration": True})
        cursor = _parser.cursor()
        try:
            statements = cursor.extract_statements(text)
            if len(statements) != 1 or statements[0].type.name != "SELECT":
                return statements, None
            tree = cursor.execute("SELECT json_serialize_sql(?)", [statements[0].query]).fetchall()[0][0]
            try:
                return statements, json.loads(tree)
            except RecursionError:  # deeper than Python's JSON reader goes
                raise ConsoleError(str(NESTING_MESSAGE)) from None
        finally:
            cursor.close()


def validate_sql(sql: str) -> str:
    """The single SELECT statement in `sql`, or ConsoleError saying why it is refused."""
    text = sql.strip()
    if not text:
        raise ConsoleError(_("Write a SELECT query first."))
    if len(text) > MAX_SQL_CHARS:
        raise ConsoleError(_("The query is longer than {max} characters.").format(max=f"{MAX_SQL_CHARS:,}"))
    if any(name in text.lower() for name in HIDDEN_COLUMNS):
        raise ConsoleError(str(SECRET_MESSAGE))
    try:
        statements, tree = _parse(text)
    except duckdb.Error as exc:
        raise ConsoleError(_duckdb_message(exc)) from None
    if not statements:
        raise ConsoleError(_("Write a SELECT query first (the text holds only comments)."))
    if len(statements) > 1:
        raise ConsoleError(_("Only one statement at a time: found {count}.").format(count=len(statements)) + " " +
                           READ_ONLY_HINT)
    statement = statements[0]
    kind = statement.type.name
    if kind != "SELECT":
        what = STATEMENT_MESSAGES.get(kind) or _("{kind} statements are not allowed").format(kind=kind)
        raise ConsoleError(f"{what}. {READ_ONLY_HINT}")
    if tree is None or tree.get("error"):
        detail = _duckdb_message(tree.get("error_message", "")) if tree else _("it could not be analysed")
        raise ConsoleError(_("This query cannot be run in the console: {detail}.").format(detail=detail))
    _check_tree(tree)
    return statement.query


# --------------------------------------------------------------------------------------------
# Running a query on a snapshot
# --------------------------------------------------------------------------------------------

def _visible_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [c for c in table.columns if c.name not in HIDDEN_COLUMNS]


def snapshot_tables(engine: sa.Engine, meta: sa.MetaData | None = None) -> dict[str, pa.Table]:
    """Every documented table of a household as Arrow, read in one transaction, without hidden columns; never the
    directory's tables (they name other households and their members)."""
    import sqlalchemy as sa

    from finance.store.db import duckdb_connection, frame
    from finance.store.schema import DIRECTORY_TABLES, metadata

    meta = meta if meta is not None else metadata
    chosen = [table for table in meta.tables.values() if table.name not in DIRECTORY_TABLES]
    tables: dict[str, pa.Table] = {}
    with engine.connect() as conn:
        conn.begin()
        if conn.dialect.name == "duckdb":
            duck = duckdb_connection(conn)
            for table in chosen:
                columns = ", ".join(f'"{c.name}"' for c in _visible_columns(table))
                tables[table.name] = duck.sql(f'SELECT {columns} FROM "{table.name}"').to_arrow_table()
        else:  # PostgreSQL: a read-only snapshot, bounded in time, typed as DuckDB types the same columns
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(TIMEOUT_SECONDS * 1000)}")
            for table in chosen:
                columns = _visible_columns(table)
                rows = frame(conn, sa.select(*columns))
                schema = pa.schema([(c.name, _arrow_type(c.type)) for c in columns])
                tables[table.name] = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
        conn.rollback()
    return tables


def _arrow_type(kind: sa.types.TypeEngine[Any]) -> pa.DataType:
    """The Arrow type DuckDB gives a column of this schema type (so a query answers alike on either engine)."""
    import sqlalchemy as sa

    if isinstance(kind, sa.Numeric):
        return pa.decimal128(kind.precision or 18, kind.scale or 0)
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if kind.timezone else None)
    if isinstance(kind, sa.Date):
        return pa.date32()
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):
        return pa.int32()
    return pa.string()


@dataclass(frozen=True)
class QueryResult:
    """A console result: at most MAX_ROWS rows and MAX_RESULT_BYTES bytes; `truncated` says whether more were
    available."""

    table: pa.Table
    truncated: bool
    elapsed_ms: int

    @property
    def rows(self) -> int:
        """How many rows the result holds."""
        return self.table.num_rows

    def frame(self) -> pd.DataFrame:
        """The result as pandas."""
        return self.table.to_pandas()


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count + 1}")
    return out


def size_text(count: int) -> str:
    """A number of bytes as the console's messages say it: 1 GiB, 32 MiB."""
    return f"{count / 2**30:g} GiB" if count >= 2**30 else f"{count / 2**20:g} MiB"


def _failure(exc: QueryFailed, limits: Limits) -> ConsoleError:
    """One line for the analyst saying why the query process gave no result."""
    narrow = _("Narrow it down (filters, fewer columns, LIMIT) and run it again.")
    if exc.kind == "timeout":
        return ConsoleError(_("The query ran longer than {seconds} s and was stopped.").format(
            seconds=f"{limits.timeout:g}") + " " + narrow)
    if exc.kind == "memory":
        return ConsoleError(_("The query needed more than {limit} of memory and was stopped.").format(
            limit=size_text(limits.memory)) + " " + narrow)
    if exc.kind == "permission":
        return ConsoleError(_("That needs access to files or settings, which the console does not allow."))
    if exc.kind == "sql":
        return ConsoleError(_duckdb_message(exc.detail))
    if exc.kind == "open":
        return ConsoleError(_("The analytics snapshot cannot be opened: {error}").format(
            error=clean_error(exc.detail)))
    if exc.kind == "not_query":
        return ConsoleError(str(READ_ONLY_HINT))
    return ConsoleError(_("The query stopped unexpectedly (it may have needed more than {limit} of memory).").format(
        limit=size_text(limits.memory)) + " " + narrow)


def _limits(max_rows: int, timeout: float) -> Limits:
    return Limits(max_rows=max_rows, max_bytes=MAX_RESULT_BYTES, timeout=timeout, memory=MEMORY_BYTES)


def run_query(engine: sa.Engine, sql: str, *, max_rows: int = MAX_ROWS, timeout: float = TIMEOUT_SECONDS,
              keep_warm: bool = False) -> QueryResult:
    """Validate `sql`, then run it on an isolated snapshot of the store, in a query process (`keep_warm`: leave one
    started for the next query, as the app does). Raises ConsoleError."""
    started = time.perf_counter()
    limits = _limits(max_rows, timeout)
    with console_process.start(keep_warm=keep_warm) as process:  # its start-up overlaps the validation and the copy
        statement = validate_sql(sql)
        try:
            table, truncated = process.run(statement, limits, tables=snapshot_tables(engine))
        except QueryFailed as exc:
            raise _failure(exc, limits) from None
    return _result(table, truncated, max_rows, started)


def run_query_on_file(path: Path, sql: str, *, max_rows: int = MAX_ROWS,
                      timeout: float = TIMEOUT_SECONDS) -> QueryResult:
    """Validate `sql`, then run it on an analytics snapshot file (finance.store.snapshot: the documented tables
    without hidden columns, and its views), opened read-only with the console's configuration in a query process.
    The same rules and limits as `run_query`, without copying the store first. Raises ConsoleError."""
    started = time.perf_counter()
    limits = _limits(max_rows, timeout)
    with console_process.start() as process:
        statement = validate_sql(sql)
        try:
            table, truncated = process.run(statement, limits, database=path)
        except QueryFailed as exc:
            raise _failure(exc, limits) from None
    return _result(table, truncated, max_rows, started)


def _result(table: pa.Table, truncated: bool, max_rows: int, started: float) -> QueryResult:
    """The result as the console shows it: unique column names, hidden columns dropped, at most `max_rows`."""
    names = _unique_names(table.column_names)
    table = table.rename_columns(names)
    keep = [n for n in names if n.lower() not in HIDDEN_COLUMNS]
    table = table.select(keep).slice(0, max_rows)
    return QueryResult(table=table, truncated=truncated, elapsed_ms=int((time.perf_counter() - started) * 1000))


def to_csv_bytes(table: pa.Table) -> bytes:
    """A result as UTF-8 CSV with a header row; text cells that a spreadsheet would run as formulas are
    neutralised (finance.spreadsheet)."""
    from finance.spreadsheet import neutralise_table  # pyarrow.compute: only CSV needs it (query start-up time)

    return neutralise_table(table).to_pandas().to_csv(index=False).encode("utf-8")


def to_parquet_bytes(table: pa.Table) -> bytes:
    """A result as a Parquet file, in memory."""
    for index, field in enumerate(table.schema):
        if pa.types.is_interval(field.type) or pa.types.is_null(field.type):  # no Parquet equivalent: as text
            text = pa.array([None if v is None else str(v) for v in table.column(index).to_pylist()], pa.string())
            table = table.set_column(index, field.name, text)
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Saved queries: a JSON file in the data folder
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SavedQuery:
    """A named query; `example` marks the built-in ones, which cannot be replaced or deleted."""

    name: str
    sql: str
    example: bool = False


EXAMPLE_QUERIES: tuple[SavedQuery, ...] = (
    SavedQuery(N_("Example: spending per month (BRL)").message, """\
SELECT date_trunc('month', booked_date) AS month, -SUM(amount) AS spending
FROM transactions t JOIN categories c ON c.id = COALESCE(t.user_category, t.category)
WHERE t.deleted_at IS NULL AND t.currency = 'BRL' AND c.kind = 'expense'
GROUP BY 1 ORDER BY 1""", example=True),
    SavedQuery(N_("Example: largest expenses").message, """\
SELECT t.booked_date, a.name AS account, t.description, t.amount, t.currency,
       COALESCE(t.user_category, t.category) AS category
FROM transactions t JOIN accounts a ON a.id = t.account_id
WHERE t.deleted_at IS NULL AND t.amount < 0
ORDER BY t.amount LIMIT 50""", example=True),
    SavedQuery(N_("Example: balances per account").message, """\
SELECT c.institution_name, a.name, a.type, a.currency, a.current_balance, a.balance_as_of
FROM accounts a JOIN connections c ON c.id = a.connection_id
ORDER BY c.institution_name, a.type""", example=True),
    SavedQuery(N_("Example: failed sync runs").message, """\
SELECT r.started_at, c.institution_name, r.trigger, r.error_code, r.message
FROM sync_runs r LEFT JOIN connections c ON c.id = r.connection_id
WHERE r.outcome = 'failed' ORDER BY r.started_at DESC""", example=True),
)

_saved_lock = threading.Lock()


def saved_queries_path(data_dir: Path) -> Path:
    """Where the saved queries live: a JSON file in the data folder."""
    return data_dir / SAVED_QUERIES_FILE


def _read_saved(path: Path) -> list[SavedQuery]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [SavedQuery(str(q["name"]), str(q["sql"])) for q in data["queries"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConsoleError(_("The saved queries file {name} is not readable ({error}); fix or remove it to save "
                             "queries again.").format(name=path.name, error=type(exc).__name__)) from None


def load_saved_queries(path: Path) -> list[SavedQuery]:
    """The user's saved queries, by name."""
    return sorted(_read_saved(path), key=lambda q: q.name.lower())


def _write_saved(path: Path, queries: list[SavedQuery]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": 1, "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "queries": [{"name": q.name, "sql": q.sql} for q in sorted(queries, key=lambda q: q.name.lower())]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".saved_queries.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_query(path: Path, name: str, sql: str) -> SavedQuery:
    """Save (or replace) a query under `name`; it must pass validation. Raises ConsoleError."""
    name = " ".join(name.split())
    if not name:
        raise ConsoleError(_("Give the query a name."))
    if len(name) > 80:
        raise ConsoleError(_("Keep the name under 80 characters."))
    if any(q.name == name for q in EXAMPLE_QUERIES):
        raise ConsoleError(_("That name belongs to an example; choose another."))
    validate_sql(sql)
    query = SavedQuery(name, sql.strip())
    with _saved_lock:
        queries = [q for q in _read_saved(path) if q.name != name]
        _write_saved(path, [*queries, query])
    return query


def delete_saved_query(path: Path, name: str) -> bool:
    """Remove a saved query; False when there was none of that name."""
    with _saved_lock:
        queries = _read_saved(path)
        kept = [q for q in queries if q.name != name]
        if len(kept) == len(queries):
            return False
        _write_saved(path, kept)
    return True
