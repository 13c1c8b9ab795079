"""The schema as a document: docs/schema.md and the Explore page's Schema tab, from one source.

Tables and columns come from the SQLAlchemy metadata (finance/store/schema.py: each table's and column's
`comment=`), the views from the analysts' snapshot (finance.store.snapshot.SNAPSHOT_VIEWS). Regenerate the file
after changing either: `python -m finance.store.schema_doc` (tests/test_schema_doc.py fails until then).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from finance.store.console import HIDDEN_COLUMNS, TableDoc, schema_doc
from finance.store.snapshot import SNAPSHOT_VIEWS

REGENERATE = "python -m finance.store.schema_doc"
DOC_PATH = Path("docs") / "schema.md"

INTRO = """\
Where to read it: the Explore page's SQL console, `python -m finance query "…"`, and — while the app runs, from
the duckdb CLI, pandas, Polars or Jupyter — the analysts' snapshot `data/analytics.duckdb`
(`finance.analytics.connect()`), rewritten after every sync. The views exist in the snapshot (and so in
`finance query`), not on the Explore page.

Conventions:

- **Money** is `DECIMAL(18,2)` in the row's account currency (the `currency` column next to it); nothing adds
  amounts of different currencies. **Signs**: an amount is negative when money leaves the user (a purchase, a
  transfer out, a card bill paid from checking) and positive when it arrives (salary, a refund). A card's balance
  owed is negative. Spending figures in the views are positive (`-SUM(amount)`), and refunds net
  them off.
- **Times** are UTC (`TIMESTAMP WITH TIME ZONE`); `booked_date` and `day` are the local calendar day of the
  account's country.
- **Ids** are `provider:provider's id`, stable across syncs.
- **The category a person sees** is their own (`user_category`), else their merchant rule's, else the provider's
  (`category`): the view `effective_transactions` has it. Rows with `deleted_at` set were deleted by the user:
  the pages and the views leave them out.
- **Never available**: provider access tokens (`connections.encrypted_secret`) are in neither the console nor the
  snapshot.
"""


@dataclass(frozen=True, slots=True)
class Section:
    """One table or view: a title (`name` — what it is) and its Markdown body."""

    title: str
    markdown: str


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table_section(doc: TableDoc) -> Section:
    rows = ["| Column | Type | Key | Null | Meaning |", "|---|---|---|---|---|"]
    for col in doc.columns:
        meaning = col.comment + (" (never available: not in the console or the snapshot)" if col.hidden else "")
        rows.append(f"| `{col.name}` | {col.type} | {'PK' if col.primary_key else ''} | "
                    f"{'yes' if col.nullable else 'no'} | {_cell(meaning)} |")
    return Section(f"`{doc.name}` — {doc.description}", "\n".join(rows))


def _view_section(name: str, meaning: str, sql: str) -> Section:
    return Section(f"`{name}` (view) — {meaning}", f"```sql\n{sql.strip()}\n```")


def sections() -> list[Section]:
    """The tables, then the snapshot's views."""
    return [*map(_table_section, schema_doc()),
            *(_view_section(name, meaning, sql) for name, (meaning, sql) in SNAPSHOT_VIEWS.items())]


def read_only_role_sql(role: str = "finance_reader") -> str:
    """PostgreSQL: a role that can read every table but never the provider tokens, and cannot write (run it as the
    role that owns the tables, so tables added by later migrations are readable too)."""
    from finance.store.schema import metadata

    visible = ", ".join(c.name for c in metadata.tables["connections"].columns if c.name not in HIDDEN_COLUMNS)
    return f"""\
CREATE ROLE {role} LOGIN PASSWORD 'choose-a-password';
ALTER ROLE {role} SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE finance TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role};
-- every column of connections but the provider tokens
REVOKE SELECT ON connections FROM {role};
GRANT SELECT ({visible}) ON connections TO {role};"""


def render() -> str:
    """The whole of docs/schema.md."""
    parts = ["# The store's schema", "",
             f"<!-- Generated from finance/store/schema.py and finance/store/snapshot.py by `{REGENERATE}`; "
             "do not edit by hand. -->", "", INTRO]
    for section in sections():
        name, _, about = section.title.partition(" — ")
        parts += [f"## {name}", "", about, "", section.markdown, ""]
    parts += ["## Read-only access on PostgreSQL", "",
              "With the store on PostgreSQL, analysts connect with a role of their own that reads every table, never "
              "the provider tokens, and cannot write (the views above are in the DuckDB snapshot only). Run as the "
              "owner of the tables:", "",
              f"```sql\n{read_only_role_sql()}\n```", "",
              "Row-level security shows a session a household's rows only once it names the household: "
              "`SET finance.household = 'local';` (the installation's first household; `SELECT id, name FROM "
              "households` lists them). A role that can read the tables can name any household, so give one only to "
              "someone trusted with every household's data.", ""]
    return "\n".join(parts)


def main() -> int:
    """Write docs/schema.md (in the repository this module belongs to)."""
    path = Path(__file__).resolve().parents[2] / DOC_PATH
    path.write_text(render(), encoding="utf-8")
    print(f"Wrote {path}.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
