"""Pluggy behind the Provider interface: what the sync engine, the connect flow and the webhook receiver use."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from finance.errors import (
    BadData,
    NotFound,
    TransientError,
    UpdateTooSoon,
)
from finance.http import (
    Sleep,
    counting_requests,
)
from finance.i18n import _
from finance.model import (
    Account,
    AccountType,
    ConnectionState,
    ConnectionStatus,
    Institution,
    Portfolio,
    SetAside,
    TransactionChanges,
)
from finance.providers.base import TransactionSink, at_once, match_by_identity, read_resource, unless_blocked
from finance.providers.pluggy import webhooks
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.mapping import (
    LABEL,
    NAME,
    SAO_PAULO,
    RawTransaction,
    map_account,
    map_item,
    map_transactions,
    page_chunks,
    parse_instant,
)
from finance.providers.pluggy.portfolio import (
    card_liability,
    investment_account,
    map_bill,
    map_investment,
    map_investment_transaction,
    map_loan,
)
from finance.providers.pluggy.retiring import Successors
from finance.providers.webhook import Plan, WebhookEvent
from finance.screening import Limits, map_screened

FIRST_SYNC_DAYS = 365  # Pluggy keeps 12 months of history
REREAD_DAYS = 14  # pending rows post, change or vanish within this window
CREATED_AT_OVERLAP = timedelta(hours=6)  # createdAt high-water marks are re-read with a margin
MAX_IDS = 500  # transaction ids one /v2/transactions request may name
MIN_UPDATE_INTERVAL = timedelta(hours=8)  # Pluggy's fastest auto-sync plan (reference pluggy.md §3.3)

class PluggyProvider:
    """Pluggy behind the Provider interface, plus the connect flow (items, MFA, polling)."""

    name = NAME
    label = LABEL
    local_zone = SAO_PAULO

    def __init__(self, client: PluggyClient, *, today: Callable[[], date] | None = None,
                 now: Callable[[], datetime] | None = None, max_workers: int = 4) -> None:
        self.client = client
        self._now = now or (lambda: datetime.now(UTC))
        self._today = today or (lambda: self._now().astimezone(SAO_PAULO).date())
        self._max_workers = max_workers
        self._min_interval = MIN_UPDATE_INTERVAL
        self._successor = Successors(client, self._now)

    # -- connect flow -------------------------------------------------------------------------
    def institutions(self) -> list[Institution]:
        """Connectors a user can pick, sandbox ones included (they are how testers connect)."""
        return [
            Institution(id=str(c["id"]), name=str(c.get("name") or c["id"]), logo_url=c.get("imageUrl"),
                        primary_color=c.get("primaryColor"), is_sandbox=bool(c.get("isSandbox")))
            for c in self.client.connectors(sandbox=True)
        ]

    def credential_fields(self, institution_id: str) -> list[dict[str, Any]]:
        return list(self.client.connector(int(institution_id)).get("credentials") or [])

    def create_connection(self, institution_id: str, credentials: dict[str, str]) -> ConnectionState:
        return map_item(self.client.create_item(int(institution_id), credentials), now=self._now())

    def submit_mfa(self, external_id: str, values: dict[str, str]) -> ConnectionState:
        return map_item(self.client.send_mfa(external_id, values), now=self._now())

    def hosted_token(self, client_user_id: str, external_id: str | None) -> str:
        """A connect token for Pluggy Connect (update mode for `external_id`'s item)."""
        return self.client.create_connect_token(external_id, client_user_id=client_user_id)

    def complete_hosted(self, *, item_id: str | None, public_token: str | None) -> ConnectionState | None:
        """Pluggy Connect names the item it made or updated: nothing to exchange, the item only settles."""
        return None

    def relogin(self, external_id: str, credentials: dict[str, str]) -> ConnectionState:
        """New credentials for the item (PATCH /items), as in update mode."""
        return self.reconnect(external_id, credentials)

    def read_webhook(self, headers: Mapping[str, str], body: bytes, client_ip: str | None, now: datetime, *,
                     secret: str, allowed_networks: Sequence[str]) -> WebhookEvent:
        """A delivery carrying our secret header (from an allowed address), parsed; WebhookRejected otherwise."""
        webhooks.verify(headers, client_ip, secret=secret, allowed_networks=allowed_networks)
        return webhooks.parse(body, now)

    def plan_webhook(self, event: WebhookEvent) -> Plan:
        return webhooks.plan(event)

    def register_webhook(self, url: str, *, secret: str, items: Sequence[str]) -> str:
        """Pluggy has one application webhook for every item: ours, with the secret header."""
        return webhooks.register(self.client, url, secret)

    def reconnect(self, external_id: str, credentials: dict[str, str] | None = None) -> ConnectionState:
        return map_item(self.client.update_item(external_id, credentials), now=self._now())

    def wait_until_settled(self, external_id: str, *, on_progress: Callable[[str], None] | None = None,
                           timeout: float = 300.0, interval: float = 1.0,
                           sleep: Sleep = time.sleep) -> ConnectionState:
        """Poll the item until Pluggy finishes talking to the bank (or asks the user for something)."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self.client.item(external_id)
            state = map_item(raw, now=self._now())
            if state.status is not ConnectionStatus.SYNCING:
                return state
            if on_progress:
                on_progress(str(raw.get("executionStatus") or raw.get("status")))
            if time.monotonic() >= deadline:
                raise TransientError(_("The bank is taking too long to answer. The connection will finish in the "
                                       "background; sync again in a few minutes."), code="ITEM_TIMEOUT", provider=NAME)
            sleep(interval)

    # -- Provider interface ---------------------------------------------------------------------
    def connection_state(self, external_id: str) -> ConnectionState:
        item = self.client.item(external_id)
        return self._successor.apply(item, map_item(item, now=self._now()))

    def fetch_accounts(self, connection_external_id: str) -> list[Account]:
        item = self.client.item(connection_external_id)
        as_of = parse_instant(item.get("lastUpdatedAt")) or self._now()
        return [map_account(raw, as_of=as_of) for raw in self.client.accounts(connection_external_id)]

    def fetch_connection(self, external_id: str) -> tuple[ConnectionState, list[Account]]:
        """The item's state and its accounts, GET /items/{id} and GET /accounts sent at once (the item dates them)."""
        item, raw_accounts = at_once(lambda: self.client.item(external_id), lambda: self.client.accounts(external_id))
        state = self._successor.apply(item, map_item(item, now=self._now()))
        as_of = state.last_updated_at or self._now()
        return state, [map_account(raw, as_of=as_of) for raw in unless_blocked(state, raw_accounts) or []]

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account], cursor: str | None,
                           *, sink: Callable[[pa.RecordBatch], None] | None = None,
                           refetch: Sequence[str] = ()) -> TransactionChanges:
        """New rows since the createdAt high-water mark, plus a full re-read of the recent window; with `refetch`
        (what transactions/* webhooks named, `webhooks.read_refetch`), exactly those rows instead.

        The re-read window is authoritative: a stored row dated inside it that Pluggy no longer lists
        (a pending charge that posted under a new id, or was dropped) is removed by the sync engine.
        Each page is mapped as it arrives and handed to `sink` (from several threads; the accounts are
        read concurrently), or kept in the result's batches without one; raw pages are never accumulated.
        """
        state = _load_cursor(cursor)
        if refetch:
            named = self._fetch_named(accounts, state, cursor, refetch, sink)
            if named is not None:
                return named
        today = self._today()
        limits = Limits.around(today)
        changes = TransactionChanges(provider=NAME)
        kept_lock = threading.Lock()

        def emit(batch: pa.RecordBatch) -> None:
            if sink is not None:
                sink(batch)
            with kept_lock:
                if sink is None:
                    changes.batches.append(batch)
                else:
                    changes.staged += batch.num_rows

        def fetch_one(account: Account) -> tuple[date, AccountCursor]:
            known = state.get(account.external_id)
            since: datetime | None = None
            if known is None:
                origin = window_start = today - timedelta(days=FIRST_SYNC_DAYS)
            else:
                # Re-read from before the previous sync's window, so every row that was pending then is seen.
                origin = known.origin
                window_start = max(origin, min(today, known.synced_on) - timedelta(days=REREAD_DAYS))
                since = (parse_instant(known.mark) or self._now()) - CREATED_AT_OVERLAP
            newest: datetime | None = None
            retry_from: datetime | None = None  # the earliest createdAt of a row set aside: read again next time
            in_window: set[str] = set()  # the window's version of a row wins over the createdAt walk's
            first_day = pa.scalar(origin, pa.date32())
            walks: list[dict[str, Any]] = [{"date_from": window_start}]
            if since is not None:
                walks.append({"created_at_from": since})
            for walk in walks:
                for rows in page_chunks(self.client.transaction_pages(account.external_id, **walk)):
                    if "created_at_from" in walk:
                        rows = [raw for raw in rows if raw.id not in in_window]
                    if not rows:
                        continue
                    if since is not None and "date_from" in walk:
                        in_window.update(raw.id for raw in rows)
                    batch, rejected = map_screened(rows, lambda chunk: map_transactions(chunk, account),
                                                   lambda raw: (raw.id, account.external_id), limits)
                    if rejected:
                        with kept_lock:
                            changes.set_aside.extend(rejected)
                        retry_from = _earliest_created(rows, rejected, limits, retry_from)
                    if batch is None:
                        continue
                    latest = pc.max(batch.column("provider_created_at")).as_py()
                    newest = latest if newest is None or (latest is not None and latest > newest) else newest
                    # Rows created lately but dated before the first sync's window stay out, as they did then.
                    batch = batch.filter(pc.greater_equal(batch.column("booked_date"), first_day))
                    if batch.num_rows:
                        emit(batch)
            if retry_from is not None and (newest is None or retry_from < newest):
                newest = retry_from  # a provider that corrects a bad row re-sends it with the same createdAt
            mark = newest.isoformat() if newest else (known.mark if known else None)
            return window_start, AccountCursor(mark=mark, origin=origin, synced_on=today)

        new_state = dict(state)
        workers = max(1, min(self._max_workers, len(accounts)))
        with counting_requests() as count, ThreadPoolExecutor(max_workers=workers) as pool:
            # Each worker runs in a copy of this context, so its requests count here (and in the sync's count).
            futures = [pool.submit(contextvars.copy_context().run, fetch_one, account) for account in accounts]
            for account, future in zip(accounts, futures, strict=True):
                window_start, account_cursor = future.result()
                changes.windows.append((account.external_id, window_start))
                new_state[account.external_id] = account_cursor
        changes.cursor = _dump_cursor(new_state)
        changes.requests = count.value
        return changes

    def _fetch_named(self, accounts: list[Account], state: dict[str, AccountCursor], cursor: str | None,
                     refetch: Sequence[str], sink: TransactionSink | None) -> TransactionChanges | None:
        """The rows webhooks named: by id (at most MAX_IDS a request) or created since an instant, per account; the
        cursor stays as it was (the next whole fetch re-reads its window). None when an account is new here (or its
        cursor unreadable): only a whole fetch can place it."""
        ids, created, named = webhooks.read_refetch(refetch)
        by_id = {a.external_id: a for a in accounts}
        if any(a not in by_id or a not in state for a in named):
            return None
        limits = Limits.around(self._today())
        changes = TransactionChanges(provider=NAME, cursor=cursor)

        def walk(account: Account, **query: Any) -> None:
            first_day = pa.scalar(state[account.external_id].origin, pa.date32())
            for rows in page_chunks(self.client.transaction_pages(account.external_id, **query)):
                batch, rejected = map_screened(rows, lambda chunk: map_transactions(chunk, account),
                                               lambda raw: (raw.id, account.external_id), limits)
                changes.set_aside.extend(rejected)
                if batch is None:
                    continue
                batch = batch.filter(pc.greater_equal(batch.column("booked_date"), first_day))
                if not batch.num_rows:
                    continue
                if sink is not None:
                    sink(batch)
                    changes.staged += batch.num_rows
                else:
                    changes.batches.append(batch)

        with counting_requests() as count:
            for account_id, wanted in sorted(ids.items()):
                unique = sorted(set(wanted))
                for start in range(0, len(unique), MAX_IDS):
                    walk(by_id[account_id], ids=unique[start:start + MAX_IDS])
            for account_id, since in sorted(created.items()):
                walk(by_id[account_id], created_at_from=since)
        changes.requests = count.value
        return changes

    def fetch_portfolio(self, connection_external_id: str, accounts: list[Account], *,
                        since: date | None) -> Portfolio:
        """Investments (and their trades from `since`), loans and each card's closed bills (`read_portfolio`)."""
        as_of = max((a.balance_as_of for a in accounts if a.balance_as_of), default=None) or self._now()
        return read_portfolio(self.client, connection_external_id, accounts, since=since, as_of=as_of,
                              today=self._today(), max_workers=self._max_workers)

    def match_accounts(self, old: Sequence[Account], new: Sequence[Account]) -> dict[str, str]:
        """The same accounts through the retired and the Open Finance connector: Pluggy keeps the institution's
        account numbers (their last digits match), so identity matching is exact enough."""
        return match_by_identity(old, new)

    def min_sync_interval(self) -> timedelta:
        """Pluggy refreshes an item from the bank at most every MIN_UPDATE_INTERVAL (its fastest auto-sync plan, and
        the least it lets a client ask for: CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY); a webhook announces new
        data in between. A 409 that names a longer interval raises this for the provider's life."""
        return self._min_interval

    def note_update_interval(self, error: UpdateTooSoon, last_updated: datetime | None) -> None:
        """Remember the interval a CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY answer named."""
        if error.allowed_at is not None and last_updated is not None and isinstance(error.allowed_at, datetime):
            self._min_interval = max(self._min_interval, error.allowed_at - last_updated)

    def refresh(self, external_id: str) -> ConnectionState:
        """Ask Pluggy to fetch fresh data from the bank now (PATCH /items/{id} without new credentials). Raises
        UpdateTooSoon, saying when it becomes possible, inside the minimum update interval: never retried."""
        try:
            return self.reconnect(external_id)
        except UpdateTooSoon as exc:
            self.note_update_interval(exc, self.connection_state(external_id).last_updated_at)
            raise

    def disconnect(self, external_id: str) -> None:
        try:
            self.client.delete_item(external_id)
        except NotFound:
            return  # already gone at Pluggy: that is what we wanted


def _earliest_created(rows: Sequence[RawTransaction], rejected: Sequence[SetAside], limits: Limits,
                      earliest: datetime | None) -> datetime | None:
    """The earliest readable, plausible createdAt among the rejected rows (and `earliest`)."""
    ids = {row.external_id for row in rejected}
    for raw in rows:
        if raw.id not in ids:
            continue
        try:
            created = parse_instant(raw.createdAt)
        except BadData:
            continue
        if created is None or not limits.earliest <= created.date() <= limits.latest:
            continue
        if earliest is None or created < earliest:
            earliest = created
    return earliest


@dataclass(frozen=True, slots=True)
class AccountCursor:
    """Where an account's sync stands: the newest createdAt seen, the first day ever synced, the last sync day."""

    mark: str | None
    origin: date
    synced_on: date


def _dump_cursor(state: dict[str, AccountCursor]) -> str:
    return json.dumps({"v": 2, "accounts": {k: {"mark": v.mark, "origin": v.origin.isoformat(),
                                                "synced_on": v.synced_on.isoformat()}
                                            for k, v in sorted(state.items())}})


def _load_cursor(cursor: str | None) -> dict[str, AccountCursor]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
        return {str(k): AccountCursor(mark=v.get("mark"), origin=date.fromisoformat(v["origin"]),
                                      synced_on=date.fromisoformat(v["synced_on"]))
                for k, v in (data.get("accounts") or {}).items()}
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}  # an unreadable cursor only costs a full re-read


def _objects(rows: Any) -> list[dict[str, Any]]:
    """A page's results as JSON objects; BadData when one is anything else."""
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise BadData("Pluggy sent a list whose entries are not objects.", code="BAD_PAGE", provider=NAME)
    return rows


def read_portfolio(client: PluggyClient, item_id: str, accounts: list[Account], *, since: date | None,
                   as_of: datetime, today: date, max_workers: int) -> Portfolio:
    """Investments (and their trades from `since`), loans and each card's closed bills, requested at once.

    Positions go into one investment account per item and each loan into a LOAN account of its own (Pluggy has
    neither as accounts); each card becomes a liability whose next payment is its latest unpaid bill. Each resource
    is read and mapped on its own: one Pluggy cannot give, or gives unreadable, is a failure of that resource only.
    """
    portfolio = Portfolio()
    cards = [a for a in accounts if a.type is AccountType.CREDIT_CARD]
    workers = max(1, min(max_workers, 2 + len(cards)))
    with counting_requests() as count, ThreadPoolExecutor(max_workers=workers) as pool:
        def submit(call: Callable[..., Any], *args: Any) -> Any:
            return pool.submit(contextvars.copy_context().run, call, *args)

        investments = submit(client.investments, item_id)
        loans = submit(client.loans, item_id)
        bills = {card.external_id: submit(client.bills, card.external_id) for card in cards}
        positions = read_resource(portfolio, "investments", lambda: [
            map_investment(raw, item_id) for raw in _objects(investments.result())], [])
        trades = {security.external_id: submit(client.investment_transactions, security.external_id)
                  for security, _ in positions}
        for security, holding in positions:
            portfolio.securities.append(security)
            portfolio.holdings.append(holding)
        if portfolio.holdings:
            portfolio.accounts.append(investment_account(item_id, portfolio.holdings, as_of))
        for security in portfolio.securities:
            rows = read_resource(portfolio, "investment_transactions", lambda s=security: [
                map_investment_transaction(raw, item_id, s.external_id, s.currency)
                for raw in _objects(trades[s.external_id].result())], [])
            portfolio.investment_transactions.extend(t for t in rows if since is None or t.date >= since)
        for account, liability in read_resource(portfolio, "liabilities", lambda: [
                map_loan(raw, as_of) for raw in _objects(loans.result())], []):
            portfolio.accounts.append(account)
            portfolio.liabilities.append(liability)
        for card in cards:
            card_bills = read_resource(portfolio, "bills", lambda c=card: [
                map_bill(raw, c) for raw in _objects(bills[c.external_id].result())], [])
            portfolio.bills.extend(card_bills)
            portfolio.liabilities.append(card_liability(card, card_bills, today))
    portfolio.requests = count.value
    return portfolio
