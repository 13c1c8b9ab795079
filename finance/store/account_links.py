"""`account_links`: an account of a retired connection continued by an account of the connection that replaced it
(a reconnect through Open Finance). Reads count the pair as one line: the old account's history up to the day the
new one's begins, the new one's from then on; the old account never counts twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as upsert  # DuckDB speaks its ON CONFLICT

from finance.store.audit import record
from finance.store.db import frame
from finance.store.schema import account_links

# `since`, the day a link's new account's history begins, is kept in the table by `refresh_since` after every sync
# (never computed in the reports, whose filter on the table then costs nothing).
# It is where the new account's balance history begins (its connection's first day, finance.store.ingest), else
# its first transaction: the same day for the charts and the transactions, so no day counts both or neither.
_SINCE = """COALESCE(
    (SELECT MIN(h.day) FROM balance_history h WHERE h.account_id = account_links.new_account_id),
    (SELECT MIN(t.booked_date) FROM transactions t WHERE t.account_id = account_links.new_account_id))"""

CONTINUED = "(SELECT old_account_id FROM account_links)"
"""Ids of accounts another account continues: left out of anything about now (balances, holdings, loans)."""


def link_accounts(conn: sa.Connection, pairs: Mapping[str, str], *, now: datetime, actor: str) -> int:
    """Record {old account id: new account id}; a later link of the same old account replaces the earlier one.
    Audited. Returns how many links were written."""
    rows = [{"old_account_id": old, "new_account_id": new, "linked_at": now, "since": None}
            for old, new in pairs.items() if old != new]
    if not rows:
        return 0
    statement = upsert(account_links).values(rows)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[account_links.c.old_account_id],
        set_={"new_account_id": statement.excluded.new_account_id, "linked_at": statement.excluded.linked_at}))
    refresh_since(conn, [row["new_account_id"] for row in rows])
    for row in rows:
        record(conn, actor=actor, action="link_account", object_id=row["old_account_id"],
               detail={"continued_by": row["new_account_id"]}, now=now)
    return len(rows)


def predecessors(conn: sa.Connection, provider: str, institution_id: str, connection_id: str) -> list[str]:
    """Connections of `provider` that named `institution_id` as their successor and none of whose accounts is
    continued yet: the ones `connection_id` (a connection to that institution) takes over from."""
    return list(conn.execute(sa.text(f"""
        SELECT c.id FROM connections c
        WHERE c.provider = :provider AND c.successor_institution_id = :institution AND c.id <> :id
          AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.connection_id = c.id AND a.id IN {CONTINUED})
        ORDER BY c.created_at
    """), {"provider": provider, "institution": institution_id, "id": connection_id}).scalars())


def linked_successors(conn: sa.Connection, connection_id: str) -> list[str]:
    """The accounts of a connection that continue another account."""
    return list(conn.execute(sa.text("SELECT l.new_account_id FROM account_links l JOIN accounts a "
                                     "ON a.id = l.new_account_id WHERE a.connection_id = :id"),
                             {"id": connection_id}).scalars())


def refresh_since(conn: sa.Connection, new_account_ids: Sequence[str]) -> None:
    """Recompute `since` of the links to these accounts (after a link, and after each sync of their connection:
    a sync may bring older rows)."""
    if new_account_ids:
        conn.execute(sa.text(f"UPDATE account_links SET since = {_SINCE} WHERE new_account_id IN :ids")
                     .bindparams(sa.bindparam("ids", expanding=True)), {"ids": list(new_account_ids)})


def links(conn: sa.Connection) -> pd.DataFrame:
    """Every link with both accounts' names and the day the new account takes over."""
    return frame(conn, """
        SELECT k.old_account_id, o.name AS old_name, k.new_account_id, n.name AS new_name, k.since
        FROM account_links k JOIN accounts o ON o.id = k.old_account_id JOIN accounts n ON n.id = k.new_account_id
        ORDER BY n.name
    """)
