"""What the balance forecast starts from — every account's balance now and each card's bill history — and the
`balance_thresholds` the user sets per account (each change audited in the same transaction)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa

from finance.errors import EditError
from finance.forecast import SPENDING_MONTHS, AccountStart, CardHistory
from finance.recurring import add_months
from finance.store import audit
from finance.store.account_links import CONTINUED
from finance.store.reports import IS_SPENDING, LIVE
from finance.store.transactions import EFFECTIVE_TRANSACTIONS

CARD_PAYMENT = "transfer.credit_card_payment"
MIRROR_DAYS = 3  # a payer's row mirrors a card's bill payment booked up to this many days apart
MIRROR_CENTS = 0.01  # ... for the same amount within a cent


def forecast_accounts(conn: sa.Connection) -> list[AccountStart]:
    """Every account with a known balance, by currency and name (a masked number in the name tells cards apart)."""
    rows = conn.execute(sa.text(f"""
        SELECT id, name || CASE WHEN mask IS NOT NULL AND mask <> '' THEN ' ••' || mask ELSE '' END AS name,
               type, currency, current_balance, credit_limit
        FROM accounts WHERE current_balance IS NOT NULL AND id NOT IN {CONTINUED}
        ORDER BY currency, name, id
    """)).all()
    return [AccountStart(r.id, r.name, r.type, r.currency, r.current_balance, r.credit_limit) for r in rows]


def card_histories(conn: sa.Connection, today: date) -> list[CardHistory]:
    """Every credit card's posted bill payments (positive rows in the card-payment category, oldest first), the
    account whose rows mirror them most often (negative, same currency, at most MIRROR_DAYS apart, the same amount
    within a cent; the nearest in date when several do), and its average monthly spending over the SPENDING_MONTHS
    closed months before `today`'s month (posted rows; transfers excluded, refunds net)."""
    month = today.replace(day=1)
    rows = conn.execute(sa.text(f"""
        WITH cards AS (
            SELECT id, currency FROM accounts WHERE type = 'credit_card'
        ), paid AS (
            SELECT t.id, t.account_id, t.currency, t.booked_date, t.amount
            FROM {EFFECTIVE_TRANSACTIONS} t
            WHERE {LIVE} AND t.status = 'posted' AND t.effective_category = :category
        ), bills AS (
            SELECT p.* FROM paid p JOIN cards c ON c.id = p.account_id WHERE p.amount > 0
        ), payments AS (
            SELECT account_id, array_agg(booked_date ORDER BY booked_date) AS dates FROM bills GROUP BY account_id
        ), mirrors AS (
            SELECT b.account_id AS card_id, m.account_id AS payer_id,
                   row_number() OVER (PARTITION BY b.id ORDER BY abs(m.booked_date - b.booked_date), m.account_id)
                       AS nearest
            FROM bills b JOIN paid m
              ON m.amount < 0 AND m.account_id <> b.account_id AND m.currency = b.currency
             AND m.booked_date BETWEEN b.booked_date - :days AND b.booked_date + :days
             AND abs(m.amount + b.amount) <= :cents
        ), payers AS (
            SELECT card_id, payer_id,
                   row_number() OVER (PARTITION BY card_id ORDER BY COUNT(*) DESC, payer_id) AS rank
            FROM mirrors WHERE nearest = 1 GROUP BY card_id, payer_id
        ), spending AS (
            SELECT t.account_id, CAST(-SUM(t.amount) / :months AS DECIMAL(18, 2)) AS monthly
            FROM {EFFECTIVE_TRANSACTIONS} t JOIN cards c ON c.id = t.account_id
            JOIN categories k ON k.id = t.effective_category
            WHERE {LIVE} AND t.status = 'posted' AND {IS_SPENDING}
              AND t.booked_date >= :start AND t.booked_date < :month
            GROUP BY t.account_id
        )
        SELECT c.id, p.payer_id, s.monthly, d.dates
        FROM cards c
        LEFT JOIN payments d ON d.account_id = c.id
        LEFT JOIN payers p ON p.card_id = c.id AND p.rank = 1
        LEFT JOIN spending s ON s.account_id = c.id
        ORDER BY c.id
    """), {"category": CARD_PAYMENT, "days": MIRROR_DAYS, "cents": MIRROR_CENTS, "months": SPENDING_MONTHS,
           "start": add_months(month, -SPENDING_MONTHS), "month": month}).all()
    return [CardHistory(r.id, r.payer_id, tuple(r.dates or ()), max(r.monthly or Decimal(0), Decimal(0)))
            for r in rows]


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
