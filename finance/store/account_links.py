"""`account_links`: an account of a retired connection continued by an account of the connection that replaced it
(a reconnect through Open Finance). Reads count the pair as one line: the old account's history up to the day the
new one's begins, the new one's from then on; the old account never counts twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as upsert  # DuckDB speaks its ON CONFLICT

from finance.store.audit import record
from finance.store.db import frame
from finance.store.schema import account_links

HANDED_OVER = """(
    SELECT l.old_account_id, l.new_account_id,
           COALESCE((SELECT MIN(t.booked_date) FROM transactions t WHERE t.account_id = l.new_account_id),
                    (SELECT MIN(h.day) FROM balance_history h WHERE h.account_id = l.new_account_id)) AS since
    FROM account_links l)"""
"""Each link with the day its new account's history begins (NULL before it has any): the old account counts only
before that day."""

CONTINUED = "(SELECT old_account_id FROM account_links)"
"""Ids of accounts another account continues: left out of anything about now (balances, holdings, loans)."""


def link_accounts(conn: sa.Connection, pairs: Mapping[str, str], *, now: datetime, actor: str) -> int:
    """Record {old account id: new account id}; a later link of the same old account replaces the earlier one.
    Audited. Returns how many links were written."""
    rows = [{"old_account_id": old, "new_account_id": new, "linked_at": now} for old, new in pairs.items()
            if old != new]
    if not rows:
        return 0
    statement = upsert(account_links).values(rows)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[account_links.c.old_account_id],
        set_={"new_account_id": statement.excluded.new_account_id, "linked_at": statement.excluded.linked_at}))
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


def links(conn: sa.Connection) -> pd.DataFrame:
    """Every link with both accounts' names and the day the new account takes over."""
    return frame(conn, f"""
        SELECT k.old_account_id, o.name AS old_name, k.new_account_id, n.name AS new_name, k.since
        FROM {HANDED_OVER} k JOIN accounts o ON o.id = k.old_account_id JOIN accounts n ON n.id = k.new_account_id
        ORDER BY n.name
    """)
