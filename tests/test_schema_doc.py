"""Issue 16: docs/schema.md is generated from the schema and the snapshot's views, and says what every column
means; the Explore page shows the same text."""

from __future__ import annotations

from pathlib import Path

from finance.store import schema_doc
from finance.store.schema import metadata
from finance.store.snapshot import SNAPSHOT_VIEWS

REPO = Path(__file__).resolve().parents[1]


def test_docs_schema_md_is_up_to_date():
    written = (REPO / schema_doc.DOC_PATH).read_text(encoding="utf-8")
    assert written == schema_doc.render(), (
        f"docs/schema.md is out of date with finance/store/schema.py: regenerate it with `{schema_doc.REGENERATE}`")


def test_every_table_and_column_says_what_it_means():
    undocumented = [f"{t.name}.{c.name}" for t in metadata.tables.values() for c in t.columns if not c.comment]
    assert not undocumented, f"add comment= to these columns in finance/store/schema.py: {undocumented}"
    assert all(t.comment for t in metadata.tables.values())


def test_the_document_states_signs_currencies_times_and_every_view():
    text = schema_doc.render()
    assert "negative when money leaves the user" in text and "UTC" in text and "DECIMAL(18,2)" in text
    for table in metadata.tables:
        assert f"## `{table}`" in text
    for view in SNAPSHOT_VIEWS:
        assert f"## `{view}` (view)" in text
    secret = next(line for line in text.splitlines() if line.startswith("| `encrypted_secret`"))
    assert "never available" in secret


def test_a_pipe_in_a_comment_does_not_break_the_markdown_table():
    assert schema_doc._cell("a | b\nc") == "a \\| b c"


def test_the_postgresql_read_only_role_never_gets_the_tokens():
    sql = schema_doc.read_only_role_sql()
    assert "encrypted_secret" not in sql and "default_transaction_read_only = on" in sql
    granted = sql.split("GRANT SELECT (", 1)[1].split(")", 1)[0].split(", ")
    assert granted == [c.name for c in metadata.tables["connections"].columns if c.name != "encrypted_secret"]
    assert "REVOKE SELECT ON connections" in sql.split("GRANT SELECT (")[0]
