"""`category_rules`: "every transaction from this merchant is X", resolved when reading, never copied into rows.

The latest rule per merchant is in force (`RULES_IN_FORCE`); finance.store.transactions joins it to give each
transaction its effective category. Every change runs in one database transaction with its `audit_log` row; bad
input raises EditError and changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from finance.errors import EditError
from finance.i18n import _, ngettext
from finance.store import audit
from finance.store.db import frame

# The latest rule per merchant (category_rules), applied at query time so it covers past and future rows.
RULES_IN_FORCE = """(
    SELECT merchant, category FROM (
        SELECT merchant, category,
               ROW_NUMBER() OVER (PARTITION BY merchant ORDER BY created_at DESC, id DESC) AS rn
        FROM category_rules) ranked
    WHERE rn = 1)"""


def category_name(conn: sa.Connection, category: str) -> str:
    """The name of a category id; EditError when there is no such category."""
    name = conn.execute(sa.text("SELECT name FROM categories WHERE id = :id"), {"id": category}).scalar()
    if name is None:
        raise EditError(_("Unknown category {category}. Nothing was changed.").format(category=repr(category)))
    return str(name)


def list_rules(conn: sa.Connection) -> pd.DataFrame:
    """The category rules, with how many live transactions each decides (rows the user set themselves excluded)."""
    return frame(conn, f"""
        SELECT q.id, q.merchant, q.category, k.name AS category_name, q.created_at,
               (SELECT COUNT(*) FROM transactions t
                WHERE t.merchant = q.merchant AND t.user_category IS NULL AND t.deleted_at IS NULL) AS transactions
        FROM category_rules q
        JOIN {RULES_IN_FORCE} r ON r.merchant = q.merchant AND r.category = q.category
        LEFT JOIN categories k ON k.id = q.category
        ORDER BY q.merchant
    """)


def save_rule(conn: sa.Connection, merchant: str, category: str, *, actor: str, now: datetime,
              from_transaction: str | None = None) -> str:
    """Create or replace the merchant's rule inside the caller's transaction; returns a sentence saying what it
    covers."""
    name = category_name(conn, category)
    previous = conn.execute(sa.text("SELECT id, category FROM category_rules WHERE merchant = :m ORDER BY id"),
                            {"m": merchant}).all()
    conn.execute(sa.text("DELETE FROM category_rules WHERE merchant = :m"), {"m": merchant})
    rule_id = uuid.uuid4().hex
    conn.execute(sa.text("INSERT INTO category_rules (id, merchant, category, created_at) "
                         "VALUES (:id, :merchant, :category, :created_at)"),
                 {"id": rule_id, "merchant": merchant, "category": category, "created_at": now})
    counts = conn.execute(sa.text("""
        SELECT COUNT(*) FILTER (WHERE user_category IS NULL) AS follow,
               COUNT(*) FILTER (WHERE user_category IS NOT NULL) AS own
        FROM transactions WHERE merchant = :m AND deleted_at IS NULL
    """), {"m": merchant}).one()
    detail: dict[str, Any] = {"merchant": merchant, "category": category, "transactions": counts.follow,
                              "kept_own_category": counts.own}
    if previous:
        detail["replaced"] = [{"id": p.id, "category": p.category} for p in previous]
    if from_transaction:
        detail["from_transaction"] = from_transaction
    audit.record(conn, actor=actor, action="create_rule", object_id=rule_id, detail=detail, now=now)
    saved = ngettext("Rule saved: {merchant} is now {category} for {count} transaction so far and every future one",
                     "Rule saved: {merchant} is now {category} for {count} transactions so far and every future one",
                     counts.follow).format(merchant=merchant, category=_(name), count=counts.follow)
    kept = ngettext("; {count} with a category you set yourself keeps it", "; {count} with a category you set "
                    "yourself keep it", counts.own).format(count=counts.own) if counts.own else ""
    return f"{saved}{kept}."


def create_rule(engine: sa.Engine, merchant: str, category: str, *, actor: str = audit.DEFAULT_ACTOR,
                now: datetime | None = None) -> str:
    """Every transaction of `merchant`, past and future, shows `category`, unless the user set one on that row."""
    merchant = (merchant or "").strip()
    if not merchant:
        raise EditError(_("A rule needs a merchant. Nothing was changed."))
    with engine.begin() as conn:
        return save_rule(conn, merchant, category, actor=actor, now=now or datetime.now(UTC))


def delete_rule(engine: sa.Engine, rule_id: str, *, actor: str = audit.DEFAULT_ACTOR,
                now: datetime | None = None) -> str:
    """Remove a rule: its merchant's rows show the provider's category again (rows the user set keep theirs)."""
    with engine.begin() as conn:
        rule = conn.execute(sa.text("SELECT id, merchant, category FROM category_rules WHERE id = :id"),
                            {"id": rule_id}).first()
        if rule is None:
            raise EditError(_("That rule no longer exists. Nothing was changed."))
        conn.execute(sa.text("DELETE FROM category_rules WHERE merchant = :m"), {"m": rule.merchant})
        audit.record(conn, actor=actor, action="delete_rule", object_id=rule_id,
                     detail={"merchant": rule.merchant, "category": rule.category}, now=now or datetime.now(UTC))
    return _("Rule for {merchant} deleted: its transactions show the bank's category again.").format(
        merchant=rule.merchant)
