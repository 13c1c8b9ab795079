"""Bring an existing store up to the current schema: add the columns newer versions introduced.

`metadata.create_all` creates missing tables but never alters existing ones, so a DuckDB file made by an older
version would lack columns added since (e.g. the webhook columns). Only additive, nullable columns are handled;
nothing is dropped or rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import CreateColumn

from finance.store.schema import metadata


def missing_columns(engine: sa.Engine) -> list[tuple[str, sa.Column]]:
    """(table, column) for every column of the schema the database's existing tables lack (read from
    information_schema, which DuckDB and PostgreSQL both have; SQLAlchemy's reflection does not work on DuckDB)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT table_name, column_name FROM information_schema.columns "
                                    "WHERE table_schema = current_schema()")).all()
    present: dict[str, set[str]] = {}
    for table_name, column_name in rows:
        present.setdefault(str(table_name), set()).add(str(column_name))
    return [(table.name, column) for table in metadata.sorted_tables if table.name in present
            for column in table.columns if column.name not in present[table.name]]


def add_missing_columns(engine: sa.Engine) -> list[str]:
    """ALTER TABLE … ADD COLUMN for each missing column (nullable, no default); returns `table.column` names."""
    added = []
    for table, column in missing_columns(engine):
        if not column.nullable or column.primary_key:
            raise RuntimeError(f"Cannot add the required column {table}.{column.name} to an existing store; "
                               "export your data and start from a new database file.")
        ddl = CreateColumn(column).compile(dialect=engine.dialect)
        with engine.begin() as conn:
            conn.execute(sa.text(f'ALTER TABLE "{table}" ADD COLUMN {ddl}'))
        added.append(f"{table}.{column.name}")
    return added
