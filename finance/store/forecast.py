"""What the balance forecast starts from — every account's balance now — and the `balance_thresholds` the user sets
per account (each change audited in the same transaction)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa

from finance.errors import EditError
from finance.forecast import AccountStart
from finance.store import audit


def forecast_accounts(conn: sa.Connection) -> list[AccountStart]:
    """Every account with a known balance, by currency and name (a masked number in the name tells cards apart)."""
    rows = conn.execute(sa.text("""
        SELECT id, name || CASE WHEN mask IS NOT NULL AND mask <> '' THEN ' ••' || mask ELSE '' END AS name,
               type, currency, current_balance, credit_limit
        FROM accounts WHERE current_balance IS NOT NULL
        ORDER BY currency, name, id
    """)).all()
    return [AccountStart(r.id, r.name, r.type, r.currency, r.current_balance, r.credit_limit) for r in rows]


def thresholds(conn: sa.Connection) -> dict[str, Decimal]:
    """The user's threshold per account id."""
    return {r.account_id: r.threshold
            for r in conn.execute(sa.text("SELECT account_id, threshold FROM balance_thresholds"))}


def set_threshold(engine: sa.Engine, account_id: str, threshold: Decimal | None, *, actor: str) -> bool:
    """Set (None: remove) one account's threshold with its audit row; False when nothing changes. EditError for an
    account the store does not know."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if conn.execute(sa.text("SELECT 1 FROM accounts WHERE id = :id"), {"id": account_id}).first() is None:
            raise EditError("That account is not in the store any more; nothing was changed.")
        before = conn.execute(sa.text("SELECT threshold FROM balance_thresholds WHERE account_id = :id"),
                              {"id": account_id}).scalar()
        if before == threshold:
            return False
        conn.execute(sa.text("DELETE FROM balance_thresholds WHERE account_id = :id"), {"id": account_id})
        if threshold is not None:
            conn.execute(sa.text("""INSERT INTO balance_thresholds (account_id, threshold, updated_at)
                                    VALUES (:id, :threshold, :now)"""),
                         {"id": account_id, "threshold": threshold, "now": now})
        audit.record(conn, actor=actor, action="balance_threshold" if threshold is not None else
                     "delete_balance_threshold", object_id=account_id,
                     detail={"before": before, "after": threshold}, now=now)
    return True
