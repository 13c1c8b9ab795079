"""`exchange_rates`: the dated rates the user enters (Money page), each change in one transaction with its
`audit_log` row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from finance.i18n import _, format_short_day
from finance.money import Rate, RateError
from finance.store import audit
from finance.store.schema import exchange_rates as exchange_rates_table


def exchange_rates(conn: sa.Connection) -> list[Rate]:
    """Every rate, newest date first."""
    rows = conn.execute(sa.text("""
        SELECT id, from_currency, to_currency, rate, valid_from, note FROM exchange_rates
        ORDER BY valid_from DESC, from_currency, to_currency, id
    """)).all()
    return [Rate(r.from_currency, r.to_currency, Decimal(r.rate), r.valid_from, r.note, r.id) for r in rows]


def _rate_row(conn: sa.Connection, rate_id: str) -> sa.Row[Any]:
    row = conn.execute(sa.text("SELECT * FROM exchange_rates WHERE id = :id"), {"id": rate_id}).first()
    if row is None:
        raise RateError(_("That rate no longer exists. Nothing was changed."))
    return row


def _refuse_same_day(conn: sa.Connection, rate: Rate, except_id: str | None = None) -> None:
    """One rate per pair and date, in either direction: a second one would make the day's rate ambiguous."""
    clash = conn.execute(sa.text("""
        SELECT from_currency, to_currency FROM exchange_rates
        WHERE valid_from = :day AND id IS DISTINCT FROM :except_id
          AND ((from_currency = :a AND to_currency = :b) OR (from_currency = :b AND to_currency = :a))
    """), {"day": rate.valid_from, "a": rate.from_currency, "b": rate.to_currency, "except_id": except_id}).first()
    if clash is not None:
        raise RateError(_("There is already a {source} → {target} rate dated {day} (it converts both ways): edit "
                          "that one instead. Nothing was changed.").format(
            source=clash.from_currency, target=clash.to_currency, day=format_short_day(rate.valid_from)))


def _rate_detail(rate: Rate | sa.Row[Any]) -> dict[str, object]:
    return {"from_currency": rate.from_currency, "to_currency": rate.to_currency,
            "rate": f"{Decimal(rate.rate).normalize():f}", "valid_from": rate.valid_from.isoformat(), "note": rate.note}


def add_exchange_rate(engine: sa.Engine, rate: Rate, *, actor: str = audit.DEFAULT_ACTOR,
                      now: datetime | None = None) -> str:
    """Store a validated rate (money.clean_rate); returns its id. RateError when the pair has one that day."""
    moment = now or datetime.now(UTC)
    rate_id = uuid.uuid4().hex
    with engine.begin() as conn:
        _refuse_same_day(conn, rate)
        conn.execute(exchange_rates_table.insert().values(
            id=rate_id, from_currency=rate.from_currency, to_currency=rate.to_currency, rate=rate.rate,
            valid_from=rate.valid_from, note=rate.note, entered_at=moment))
        audit.record(conn, actor=actor, action="add_rate", object_id=rate_id, detail=_rate_detail(rate), now=moment)
    return rate_id


def update_exchange_rate(engine: sa.Engine, rate_id: str, rate: Rate, *, actor: str = audit.DEFAULT_ACTOR,
                         now: datetime | None = None) -> bool:
    """Replace a rate's values; False (and no audit row) when nothing differs."""
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        before = _rate_row(conn, rate_id)
        if _rate_detail(before) == _rate_detail(rate):
            return False
        _refuse_same_day(conn, rate, except_id=rate_id)
        conn.execute(exchange_rates_table.update().where(exchange_rates_table.c.id == rate_id).values(
            from_currency=rate.from_currency, to_currency=rate.to_currency, rate=rate.rate,
            valid_from=rate.valid_from, note=rate.note, entered_at=moment))
        audit.record(conn, actor=actor, action="edit_rate", object_id=rate_id,
                     detail={"from": _rate_detail(before), "to": _rate_detail(rate)}, now=moment)
    return True


def delete_exchange_rate(engine: sa.Engine, rate_id: str, *, actor: str = audit.DEFAULT_ACTOR,
                         now: datetime | None = None) -> Rate:
    """Remove a rate; returns what was removed."""
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        before = _rate_row(conn, rate_id)
        conn.execute(exchange_rates_table.delete().where(exchange_rates_table.c.id == rate_id))
        audit.record(conn, actor=actor, action="delete_rate", object_id=rate_id, detail=_rate_detail(before),
                     now=moment)
    return Rate(before.from_currency, before.to_currency, Decimal(before.rate), before.valid_from, before.note,
                rate_id)
