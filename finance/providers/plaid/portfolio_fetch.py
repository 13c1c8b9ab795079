"""Reading one Item's portfolio from Plaid: holdings, investment transactions and liabilities, requested at once,
each resource failing on its own (what `PlaidProvider.fetch_portfolio` does).

A resource the Item does not have is empty, not a failure: no account of that kind among the Item's accounts (no
request is sent), or Plaid answering that the institution or the Item lacks it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypeVar

from finance.errors import ProviderError
from finance.http import counting_requests
from finance.model import LIABILITY_TYPES, Account, AccountType, Portfolio, Security
from finance.providers.base import at_once, read_resource
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.mapping import map_account
from finance.providers.plaid.portfolio import (
    map_holding,
    map_investment_transaction,
    map_liabilities,
    map_security,
)

T = TypeVar("T")
ABSENT_CODES = frozenset({"PRODUCTS_NOT_SUPPORTED", "NO_INVESTMENT_ACCOUNTS", "NO_LIABILITY_ACCOUNTS"})
"""Plaid's answers meaning "this Item has none of that": an empty resource, not a failure. (A missing consent is a
failure: its message tells the user to reconnect.)"""
INVESTMENT_HISTORY = timedelta(days=730)
"""How far back investment transactions go on a first read (Plaid keeps 24 months)."""


def _unless_absent(read: Callable[[], T], empty: T) -> Callable[[], T]:
    def go() -> T:
        try:
            return read()
        except ProviderError as exc:
            if exc.code in ABSENT_CODES:
                return empty
            raise
    return go


def _accounts_of(raws: Any, item_id: str, known: dict[str, Account], portfolio: Portfolio) -> dict[str, Account]:
    """The answer's accounts by id: the fetched ones, plus any the answer alone lists (added to `portfolio`)."""
    found = {}
    for raw in raws if isinstance(raws, list) else []:
        if not isinstance(raw, dict) or not raw.get("account_id"):
            continue
        account = known.get(str(raw["account_id"]))
        if account is None:
            account = map_account(raw, item_id)
            portfolio.accounts.append(account)
            known[account.external_id] = account
        found[account.external_id] = account
    return found


def read_portfolio(client: PlaidClient, access_token: str, item_id: str, accounts: list[Account], *,
                   since: date | None, today: date) -> Portfolio:
    """Everything beyond transactions that one Item has; investment transactions from `since` (else two years).
    Holdings, investment transactions and liabilities are requested at once (three threads)."""
    portfolio = Portfolio()
    known = {a.external_id: a for a in accounts}
    investing = any(a.type is AccountType.INVESTMENT for a in accounts)
    owing = any(a.type in LIABILITY_TYPES for a in accounts)
    held: list[Security] = []
    traded: list[Security] = []

    def holdings() -> None:
        data = client.investments_holdings_get(access_token)
        by_id = _accounts_of(data["accounts"], item_id, known, portfolio)
        currency = next(iter(by_id.values())).currency if by_id else "USD"
        held.extend(map_security(raw, currency) for raw in data["securities"] if isinstance(raw, dict))
        portfolio.holdings.extend(map_holding(raw, by_id[str(raw.get("account_id"))]) for raw in data["holdings"]
                                  if isinstance(raw, dict) and str(raw.get("account_id")) in by_id)

    def trades() -> None:
        oldest = today - INVESTMENT_HISTORY
        rows, securities = client.investments_transactions_all(access_token, max(since or oldest, oldest), today)
        traded.extend(map_security(raw) for raw in securities if isinstance(raw, dict))
        portfolio.investment_transactions.extend(
            map_investment_transaction(raw, known[str(raw.get("account_id"))]) for raw in rows
            if isinstance(raw, dict) and str(raw.get("account_id")) in known)

    def liabilities() -> None:
        data = client.liabilities_get(access_token)
        by_id = _accounts_of(data.get("accounts"), item_id, known, portfolio)
        portfolio.liabilities.extend(map_liabilities(data["liabilities"], by_id))

    def reader(resource: str, read: Callable[[], None], wanted: bool) -> Callable[[], None]:
        return (lambda: read_resource(portfolio, resource, _unless_absent(read, None), None)) if wanted \
            else (lambda: None)

    with counting_requests() as count:
        (_, second), third = at_once(lambda: at_once(reader("investments", holdings, investing),
                                                     reader("investment_transactions", trades, investing)),
                                     reader("liabilities", liabilities, owing))
        for outcome in (second, third):
            if isinstance(outcome, Exception):
                raise outcome
    portfolio.securities = list({s.external_id: s for s in [*traded, *held]}.values())  # holdings' first
    portfolio.accounts = list({a.external_id: a for a in portfolio.accounts}.values())
    portfolio.requests = count.value
    return portfolio
