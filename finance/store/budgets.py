"""`budgets`: the monthly budgets the user sets, and the spending they are measured against.

The actuals come from one set-based query: every live transaction of the period joined to the budgeted
(category, currency) pairs, a parent budget taking its children's rows, summed per month. Spending follows the
rules of every figure here (finance/store/reports.py): transfers excluded, refunds net off, pending only when asked,
deleted never, per currency. Every change runs in one database transaction with its `audit_log` row; refused input
raises BudgetError and changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from finance.budgets import REFUSED, Budget, BudgetError, add_months
from finance.categories import category
from finance.formatting import format_money
from finance.i18n import _, format_month, ngettext
from finance.store import audit
from finance.store.reports import EFFECTIVE_CATEGORY, IS_SPENDING, LIVE
from finance.store.schema import budgets as budgets_table
from finance.store.transactions import EFFECTIVE_TRANSACTIONS


def _budget(row: sa.Row[Any]) -> Budget:
    return Budget(row.month, row.category, row.currency, Decimal(row.amount), bool(row.rollover), row.id)


def budgets_until(conn: sa.Connection, month: date) -> list[Budget]:
    """Every budget up to and including `month`, oldest first (the table holds a few rows per month)."""
    rows = conn.execute(sa.text("""
        SELECT id, month, category, currency, amount, rollover FROM budgets
        WHERE month <= :month ORDER BY month, currency, category
    """), {"month": month}).all()
    return [_budget(r) for r in rows]


def budgets_of_month(conn: sa.Connection, month: date) -> list[Budget]:
    """The budgets set for one month."""
    rows = conn.execute(sa.text("""
        SELECT id, month, category, currency, amount, rollover FROM budgets
        WHERE month = :month ORDER BY currency, category
    """), {"month": month}).all()
    return [_budget(r) for r in rows]


def category_names(conn: sa.Connection) -> dict[str, str]:
    """Each category's name for the lines ("Food and drink", "Groceries"), in the interface language."""
    return {r.id: _(r.name) for r in conn.execute(sa.text("SELECT id, name FROM categories"))}


def actual_spending(conn: sa.Connection, start: date, end: date, *,
                    include_pending: bool) -> dict[tuple[str, str, date], Decimal]:
    """Net spending per budgeted (category, currency) and month between `start` and `end`, a parent budget's
    category covering its children. One scan of the transactions of the period."""
    rows = conn.execute(sa.text(f"""
        WITH budgeted AS (
            SELECT DISTINCT category, currency FROM budgets WHERE month BETWEEN :first_month AND :end
        )
        SELECT b.category, b.currency, CAST(date_trunc('month', t.booked_date) AS DATE) AS month,
               -SUM(t.amount) AS spending
        FROM {EFFECTIVE_TRANSACTIONS} t
        JOIN categories k ON k.id = {EFFECTIVE_CATEGORY}
        JOIN budgeted b ON b.currency = t.currency AND (b.category = k.id OR b.category = k.parent_id)
        WHERE {LIVE} AND t.booked_date BETWEEN :start AND :end
          AND (:pending OR t.status = 'posted') AND {IS_SPENDING}
        GROUP BY 1, 2, 3
    """), {"first_month": date(start.year, start.month, 1), "start": start, "end": end,
           "pending": include_pending}).all()
    return {(r.category, r.currency, r.month): Decimal(r.spending) for r in rows}


def _detail(budget: Budget | sa.Row[Any]) -> dict[str, object]:
    return {"month": budget.month.isoformat(), "category": budget.category, "currency": budget.currency,
            "amount": f"{Decimal(budget.amount):.2f}", "rollover": bool(budget.rollover)}


def _describe(budget: Budget) -> str:
    return _("{amount} for {category} in {month}").format(amount=format_money(budget.amount, budget.currency),
                                                         category=category(budget.category).label,
                                                         month=format_month(budget.month))


def set_budget(engine: sa.Engine, budget: Budget, *, actor: str = audit.DEFAULT_ACTOR,
               now: datetime | None = None) -> str:
    """Create or replace the budget of a validated (month, category, currency); a sentence for the user."""
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        before = conn.execute(sa.text("""
            SELECT id, month, category, currency, amount, rollover FROM budgets
            WHERE month = :month AND category = :category AND currency = :currency
        """), {"month": budget.month, "category": budget.category, "currency": budget.currency}).first()
        if before is None:
            budget_id = uuid.uuid4().hex
            conn.execute(budgets_table.insert().values(
                id=budget_id, month=budget.month, category=budget.category, currency=budget.currency,
                amount=budget.amount, rollover=budget.rollover, created_at=moment, updated_at=moment))
            audit.record(conn, actor=actor, action="add_budget", object_id=budget_id, detail=_detail(budget),
                         now=moment)
            return _("Budget set: {budget}.").format(budget=_describe(budget))
        if _detail(before) == _detail(budget):
            return _("The budget was already {budget}. Nothing was changed.").format(budget=_describe(budget))
        conn.execute(budgets_table.update().where(budgets_table.c.id == before.id).values(
            amount=budget.amount, rollover=budget.rollover, updated_at=moment))
        audit.record(conn, actor=actor, action="edit_budget", object_id=before.id,
                     detail={"from": _detail(before), "to": _detail(budget)}, now=moment)
    return _("Budget changed: {budget}.").format(budget=_describe(budget))


def delete_budget(engine: sa.Engine, budget_id: str, *, actor: str = audit.DEFAULT_ACTOR,
                  now: datetime | None = None) -> str:
    """Remove one budget; a sentence for the user, or BudgetError when it is gone."""
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        before = conn.execute(sa.text("""
            SELECT id, month, category, currency, amount, rollover FROM budgets WHERE id = :id
        """), {"id": budget_id}).first()
        if before is None:
            raise BudgetError(_("That budget no longer exists.") + " " + REFUSED)
        conn.execute(budgets_table.delete().where(budgets_table.c.id == budget_id))
        audit.record(conn, actor=actor, action="delete_budget", object_id=budget_id, detail=_detail(before),
                     now=moment)
    return _("Budget removed: {budget}.").format(budget=_describe(_budget(before)))


def copy_last_month(engine: sa.Engine, month: date, *, actor: str = audit.DEFAULT_ACTOR,
                    now: datetime | None = None) -> str:
    """Copy the previous month's budgets into `month` (a first day), keeping any the month already has."""
    moment = now or datetime.now(UTC)
    previous = add_months(month, -1)
    with engine.begin() as conn:
        source = budgets_of_month(conn, previous)
        if not source:
            raise BudgetError(_("There are no budgets in {month} to copy.").format(month=format_month(previous)) +
                              " " + REFUSED)
        present = {(b.category, b.currency) for b in budgets_of_month(conn, month)}
        copied = [b for b in source if (b.category, b.currency) not in present]
        if not copied:
            return _("Every budget of {previous} is already set in {month}. Nothing was changed.").format(
                previous=format_month(previous), month=format_month(month))
        rows = [{"id": uuid.uuid4().hex, "month": month, "category": b.category, "currency": b.currency,
                 "amount": b.amount, "rollover": b.rollover, "created_at": moment, "updated_at": moment}
                for b in copied]
        conn.execute(budgets_table.insert(), rows)
        for row, b in zip(rows, copied, strict=True):
            audit.record(conn, actor=actor, action="copy_budget", object_id=row["id"],
                         detail={**_detail(b), "month": month.isoformat(), "from_month": previous.isoformat()},
                         now=moment)
    kept = len(source) - len(copied)
    copied_text = ngettext("Copied {count} budget from {previous} to {month}",
                           "Copied {count} budgets from {previous} to {month}", len(copied)).format(
        count=len(copied), previous=format_month(previous), month=format_month(month))
    return copied_text + (ngettext("; {count} already set there was kept.",
                                   "; {count} already set there were kept.", kept).format(count=kept) if kept else ".")
