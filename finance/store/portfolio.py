"""Writes of a connection's portfolio (finance.model.Portfolio): securities, holdings, investment transactions,
liabilities, loan payments, card bills, how each resource's last read went, and the balance history of the
accounts it describes.

Each resource that was read replaces what the connection had (investment transactions and bills are upserted: a
provider lists only a window of them). A resource that failed keeps its stored rows. Plain SQLAlchemy Core: the
statements run on DuckDB and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as upsert  # DuckDB speaks its ON CONFLICT

from finance.balances import Position, Trade, investment_history, loan_history
from finance.model import PORTFOLIO_RESOURCES, Portfolio, SecurityType, money, stable_id
from finance.store.db import duckdb_connection
from finance.store.ingest import upsert_accounts
from finance.store.schema import (
    accounts,
    balance_history,
    card_bills,
    holdings,
    investment_transactions,
    liabilities,
    loan_payments,
    portfolio_status,
    securities,
    transactions,
)

INVESTMENT_OVERLAP = timedelta(days=30)
"""How far before the latest stored investment transaction the next read starts (late and corrected rows)."""


def investments_since(conn: sa.Connection, connection_id: str) -> date | None:
    """The date the next read of a connection's investment transactions starts from; None: never read."""
    latest = conn.execute(sa.select(sa.func.max(investment_transactions.c.date))
                          .where(investment_transactions.c.connection_id == connection_id)).scalar_one()
    return None if latest is None else latest - INVESTMENT_OVERLAP


def last_portfolio_read(conn: sa.Connection, connection_id: str) -> datetime | None:
    """When a sync last read the connection's whole portfolio, successfully or not (the oldest resource's check);
    None when some resource was never read."""
    s = portfolio_status.c
    row = conn.execute(sa.select(sa.func.count(), sa.func.min(s.checked_at))
                       .where(s.connection_id == connection_id, s.resource.in_(PORTFOLIO_RESOURCES))).one()
    return row[1] if row[0] == len(PORTFOLIO_RESOURCES) else None


def delete_portfolio(conn: sa.Connection, connection_id: str) -> None:
    """Forget everything a connection's portfolio reads stored (its accounts go with the connection's)."""
    conn.execute(loan_payments.delete().where(loan_payments.c.account_id.in_(
        sa.select(liabilities.c.account_id).where(liabilities.c.connection_id == connection_id))))
    for table in (securities, holdings, investment_transactions, liabilities, card_bills, portfolio_status):
        conn.execute(table.delete().where(table.c.connection_id == connection_id))


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else money(value)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], conflict: str = "") -> None:
    """Insert `rows` (dicts with the same keys) on DuckDB as one Arrow scan (a statement per row, or one with
    thousands of parameters, costs more than the rest of a sync's apply), elsewhere as one executemany;
    `conflict`: DuckDB's ON CONFLICT clause (`_upsert`)."""
    if not rows:
        return
    if conn.dialect.name != "duckdb":
        conn.execute(table.insert(), rows)
        return
    names = list(rows[0])
    view = f"incoming_{table.name}"
    duck = duckdb_connection(conn)
    duck.register(view, pa.Table.from_pylist(rows))
    columns = ", ".join(f'"{name}"' for name in names)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {view} {conflict}")
    duck.unregister(view)  # only after success: on failure the rollback drops it (see finance.store.ingest)


def _replace(conn: sa.Connection, table: sa.Table, connection_id: str, rows: list[dict[str, Any]]) -> None:
    conn.execute(table.delete().where(table.c.connection_id == connection_id))
    _insert(conn, table, rows)


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keep: Sequence[str] = ()) -> None:
    """Insert `rows`, or refresh the stored row with the same primary key (its `keep` columns as they were)."""
    if not rows:
        return
    key = [c.name for c in table.primary_key.columns]
    if conn.dialect.name == "duckdb":  # the Arrow scan: a VALUES list of every row costs more to compile than to run
        updated = ", ".join(f'"{n}" = excluded."{n}"' for n in rows[0] if n not in (*key, *keep))
        target = ", ".join(f'"{n}"' for n in key)
        action = f"DO UPDATE SET {updated}" if updated else "DO NOTHING"
        _insert(conn, table, rows, f"ON CONFLICT ({target}) {action}")
        return
    statement = upsert(table).values(rows)
    conn.execute(statement.on_conflict_do_update(
        index_elements=key, set_={n: statement.excluded[n] for n in rows[0] if n not in (*key, *keep)}))


def digests(portfolio: Portfolio, today: date) -> dict[str, str]:
    """A fingerprint of each resource the fetch read, on `today`: a resource unchanged since the last read of the
    day is not written again (a new day rewrites everything once: its history gains the day)."""
    parts: dict[str, Sequence[object]] = {
        "investments": [*portfolio.securities, *portfolio.holdings],
        "investment_transactions": portfolio.investment_transactions,
        "liabilities": portfolio.liabilities, "bills": portfolio.bills}
    return {resource: hashlib.sha256(f"{today}|{sorted(map(repr, rows))}".encode()).hexdigest()
            for resource, rows in parts.items() if not portfolio.failed(resource)}


def _stored_digests(conn: sa.Connection, connection_id: str) -> dict[str, str]:
    s = portfolio_status.c
    return {r.resource: r.digest for r in conn.execute(sa.select(s.resource, s.digest).where(
        s.connection_id == connection_id, s.ok, s.digest.is_not(None)))}


def apply_portfolio(conn: sa.Connection, connection_id: str, provider: str, portfolio: Portfolio, *,
                    now: datetime, today: date, rebuilt: Collection[str] = ()) -> None:
    """Store one portfolio fetch of a connection. Call inside a transaction (all or nothing).

    Only resources that changed since the last read are written. `rebuilt`: accounts whose balance history the
    transaction apply just rewrote (their loan or investment history is then made again)."""
    sid = lambda external_id: stable_id(provider, external_id)  # noqa: E731 - one line, used throughout
    upsert_accounts(conn, portfolio.accounts, now)
    fresh = digests(portfolio, today)
    stored = _stored_digests(conn, connection_id)
    changed = {resource for resource, digest in fresh.items() if stored.get(resource) != digest}
    if "investments" in changed:
        _replace(conn, securities, connection_id, [{
            "id": s.id, "connection_id": connection_id, "name": s.name, "type": s.type.value,
            "currency": s.currency, "ticker": s.ticker, "isin": s.isin, "close_price": s.close_price,
            "close_price_as_of": s.close_price_as_of, "maturity_date": s.maturity_date,
            "annual_rate": s.annual_rate, "updated_at": now} for s in portfolio.securities])
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for h in portfolio.holdings:  # one row per account and security (a provider may split lots)
            row = merged.get((h.account_id, h.security_id))
            if row is None:
                merged[(h.account_id, h.security_id)] = {
                    "account_id": h.account_id, "security_id": h.security_id, "connection_id": connection_id,
                    "quantity": h.quantity, "price": h.price, "value": money(h.value),
                    "cost_basis": _cents(h.cost_basis), "currency": h.currency, "as_of": h.as_of or today}
            else:
                row["quantity"] += h.quantity
                row["value"] += money(h.value)
                row["cost_basis"] = (None if row["cost_basis"] is None or h.cost_basis is None
                                     else row["cost_basis"] + money(h.cost_basis))
        _replace(conn, holdings, connection_id, list(merged.values()))
    if "investment_transactions" in changed:
        _upsert(conn, investment_transactions, [{
            "id": t.id, "account_id": t.account_id, "connection_id": connection_id,
            "security_id": None if t.security_external_id is None else sid(t.security_external_id),
            "date": t.date, "type": t.type.value, "amount": money(t.amount), "currency": t.currency,
            "description": t.description, "quantity": t.quantity, "price": t.price, "fees": _cents(t.fees),
            "first_seen_at": now} for t in {t.id: t for t in portfolio.investment_transactions}.values()],
            keep=("first_seen_at",))
    if "liabilities" in changed:
        rows = {item.account_id: item for item in portfolio.liabilities}
        _replace(conn, liabilities, connection_id, [{
            "account_id": account_id, "connection_id": connection_id, "kind": item.kind.value,
            "currency": item.currency, "balance": _cents(item.balance), "name": item.name,
            "interest_rate": item.interest_rate, "rate_type": item.rate_type,
            "next_payment_date": item.next_payment_date, "next_payment_amount": _cents(item.next_payment_amount),
            "minimum_payment": _cents(item.minimum_payment), "last_payment_date": item.last_payment_date,
            "last_payment_amount": _cents(item.last_payment_amount),
            "original_principal": _cents(item.original_principal), "origination_date": item.origination_date,
            "maturity_date": item.maturity_date, "installments_total": item.installments_total,
            "installments_paid": item.installments_paid, "is_overdue": item.is_overdue, "updated_at": now,
        } for account_id, item in rows.items()])
        conn.execute(loan_payments.delete().where(loan_payments.c.account_id.in_(
            sa.select(accounts.c.id).where(accounts.c.connection_id == connection_id))))
        payments = [{"account_id": account_id, "seq": n, "day": p.date, "amount": money(p.amount)}
                    for account_id, item in rows.items() for n, p in enumerate(item.payments)]
        _insert(conn, loan_payments, payments)
    if "bills" in changed:
        _upsert(conn, card_bills, [{
            "id": b.id, "account_id": b.account_id, "connection_id": connection_id, "closing_date": b.closing_date,
            "due_date": b.due_date, "total": money(b.total), "minimum_payment": _cents(b.minimum_payment),
            "paid_amount": _cents(b.paid_amount), "is_paid": b.is_paid, "currency": b.currency, "updated_at": now,
        } for b in {b.id: b for b in portfolio.bills}.values()])
    record_status(conn, connection_id, portfolio, now=now, digests=fresh)
    if changed or rebuilt:
        rebuild_portfolio_history(conn, connection_id, today, only=None if changed else rebuilt)


def record_status(conn: sa.Connection, connection_id: str, portfolio: Portfolio | None, *, now: datetime,
                  code: str | None = None, message: str | None = None,
                  digests: Mapping[str, str] | None = None) -> None:
    """How each resource's read went: `portfolio`'s failures, or (no portfolio) every resource failed with
    `code` and `message`; with the `digests` of what was stored."""
    failures = {f.resource: f for f in portfolio.failures} if portfolio is not None else {}
    rows = []
    for resource in PORTFOLIO_RESOURCES:
        failure = failures.get(resource)
        ok = portfolio is not None and failure is None
        rows.append({"connection_id": connection_id, "resource": resource, "checked_at": now, "ok": ok,
                     "error_code": None if ok else (failure.code if failure else code),
                     "message": None if ok else (failure.message if failure else message),
                     "last_success_at": now if ok else None, "digest": (digests or {}).get(resource)})
    _upsert(conn, portfolio_status, [r for r in rows if r["ok"]])
    _upsert(conn, portfolio_status, [r for r in rows if not r["ok"]], keep=("last_success_at", "digest"))


def _transaction_days(conn: sa.Connection, connection_id: str) -> tuple[set[str], date | None]:
    """The connection's accounts that have transactions, and the first day it has history (its earliest
    transaction: every account of it starts there), in one scan."""
    t = transactions.c
    rows = conn.execute(sa.select(t.account_id, sa.func.min(t.booked_date)).where(t.connection_id == connection_id)
                        .group_by(t.account_id)).all()
    return {row[0] for row in rows}, min((row[1] for row in rows), default=None)


def rebuild_portfolio_history(conn: sa.Connection, connection_id: str, today: date,
                              only: Collection[str] | None = None) -> None:
    """Balance history of the connection's loan and investment accounts (of `only`, when given) that have no
    transactions of their own: a loan's from its payments, an investment account's from its holdings and trades
    (finance.balances), back to the connection's first day (or the first payment or trade). Accounts with
    transactions keep the sync's."""
    query = (sa.select(accounts.c.id, accounts.c.type, accounts.c.current_balance, accounts.c.currency)
             .where(accounts.c.connection_id == connection_id, accounts.c.current_balance.is_not(None),
                    accounts.c.type.in_(("loan", "investment"))))
    if only is not None:
        query = query.where(accounts.c.id.in_(list(only)))
    candidates = conn.execute(query).all()
    if not candidates:  # the usual case of a sync that read no portfolio: no transactions scanned
        return
    own, first_day = _transaction_days(conn, connection_id)
    candidates = [row for row in candidates if row.id not in own]
    if not candidates:
        return
    ids = [row.id for row in candidates]
    payments: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for row in conn.execute(sa.select(loan_payments.c.account_id, loan_payments.c.day, loan_payments.c.amount)
                            .where(loan_payments.c.account_id.in_(ids))):
        payments[row.account_id].append((row.day, Decimal(row.amount)))
    positions: dict[str, list[Position]] = defaultdict(list)
    for row in conn.execute(
            sa.select(holdings.c.account_id, holdings.c.security_id, holdings.c.quantity, holdings.c.value,
                      securities.c.type).select_from(holdings.outerjoin(securities, securities.c.id ==
                                                                        holdings.c.security_id))
            .where(holdings.c.account_id.in_(ids))):
        positions[row.account_id].append(Position(row.security_id, Decimal(row.quantity), Decimal(row.value),
                                                  row.type == SecurityType.CASH.value))
    trades: dict[str, list[Trade]] = defaultdict(list)
    t = investment_transactions.c
    for row in conn.execute(sa.select(t.account_id, t.date, t.amount, t.security_id, t.quantity, t.price)
                            .where(t.account_id.in_(ids))):
        trades[row.account_id].append(Trade(row.date, Decimal(row.amount), row.security_id,
                                            None if row.quantity is None else Decimal(row.quantity),
                                            None if row.price is None else Decimal(row.price)))
    # The connection's first day; a connection without transactions starts at its first payment or trade.
    known = [d for rows in payments.values() for d, _ in rows] + [t.day for rows in trades.values() for t in rows]
    start = min(first_day or min(known, default=today), today)
    rows: list[dict[str, Any]] = []
    for account in candidates:
        balance = Decimal(account.current_balance)
        if account.type == "loan":
            series = loan_history(balance, today, payments[account.id], start)
        elif positions[account.id] or trades[account.id]:
            series = investment_history(balance, positions[account.id], trades[account.id], today, start)
        else:
            continue  # the sync's flat history stands
        rows += _history_rows(account.id, account.currency, series)
    _replace_history(conn, rows)


def _history_rows(account_id: str, currency: str, series: Iterable[tuple[date, Decimal]]) -> list[dict[str, Any]]:
    return [{"account_id": account_id, "day": day, "balance": money(balance), "currency": currency,
             "source": "reconstructed"} for day, balance in series]


def _replace_history(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """The reconstructed days of these accounts replaced by `rows`; the days a sync saw (snapshots) stay."""
    if not rows:
        return
    ids = sorted({r["account_id"] for r in rows})
    h = balance_history.c
    seen = {(r.account_id, r.day) for r in conn.execute(
        sa.select(h.account_id, h.day).where(h.account_id.in_(ids), h.source == "snapshot"))}
    conn.execute(balance_history.delete().where(h.account_id.in_(ids), h.source == "reconstructed"))
    _insert(conn, balance_history, [r for r in rows if (r["account_id"], r["day"]) not in seen])
