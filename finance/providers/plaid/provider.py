"""Plaid behind the Provider interface: what the sync engine, the connect flow and the webhook receiver use."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from finance.connect_flow import CLIENT_USER_ID
from finance.crypto import SecretError
from finance.errors import BadData, NotFound, ProviderError, ReauthRequired, RequestRejected
from finance.http import Sleep, counting_requests
from finance.i18n import _
from finance.model import Account, ConnectionState, Institution, Portfolio, TransactionChanges
from finance.providers.base import at_once, match_by_identity, unless_blocked
from finance.providers.plaid.client import PlaidClient, removed_ids, transactions_sync_all
from finance.providers.plaid.mapping import LABEL, NAME, map_account, map_institution, map_item, map_transactions
from finance.providers.plaid.portfolio_fetch import read_portfolio
from finance.providers.plaid.webhooks import PlaidKeys, parse_plaid, plan, register, verify_plaid
from finance.providers.webhook import Plan, WebhookEvent
from finance.screening import Limits, map_screened, sent_twice

LinkStandIn = Callable[[str, dict[str, str]], None]
"""Completes Plaid Link for a link token with these credentials (the offline sandbox's stand-in for Link)."""

SANDBOX_INSTITUTIONS = ("ins_109508", "ins_109509", "ins_109510", "ins_109511", "ins_109512")
MAP_CHUNK = 5_000  # rows mapped into one Arrow batch


class PlaidProvider:
    """Plaid behind the Provider interface, plus the connect flow (Link tokens, exchange, sandbox Items).

    `token_lookup(item_id)` returns the Item's decrypted access token (the store keeps it encrypted).
    A freshly connected Item's token is handed over in `ConnectionState.secret` for the sync engine to
    store, and kept in memory meanwhile, so the Item can be read before it is registered.
    """

    name = NAME
    label = LABEL
    local_zone = ZoneInfo("America/New_York")
    MIN_SYNC_INTERVAL = timedelta(hours=6)  # Plaid refreshes a Transactions Item one to four times a day

    def __init__(self, client: PlaidClient, token_lookup: Callable[[str], str | None], *,
                 now: Callable[[], datetime] | None = None, webhook_url: str | None = None,
                 link_stand_in: LinkStandIn | None = None) -> None:
        self.client = client
        self._link_stand_in = link_stand_in  # offline: does what Plaid Link does when the user logs in again
        self._token_lookup = token_lookup
        self.webhook_url = webhook_url  # given to new Items (link tokens, sandbox Items) when set
        self._now = now or client.now
        self._institutions: dict[str, Institution] = {}
        self._connected: dict[str, str] = {}  # item_id → access token of Items connected by this process
        self._lock = threading.Lock()
        self.webhook_keys = PlaidKeys(client.webhook_verification_key_get)  # the keys that sign deliveries

    def min_sync_interval(self) -> timedelta:
        """Scheduled syncs come no sooner than Plaid's own refreshes (more would fetch nothing new)."""
        return self.MIN_SYNC_INTERVAL

    def _token(self, item_id: str) -> str:
        with self._lock:
            token = self._connected.get(item_id)
        if token:
            return token
        try:
            token = self._token_lookup(item_id)
        except (SecretError, KeyError) as exc:
            raise ReauthRequired(_("No readable Plaid access token is stored for this connection. Reconnect the bank."),
                                 code="NO_ACCESS_TOKEN", provider=NAME) from exc
        if not token:
            raise ReauthRequired(_("No Plaid access token is stored for this connection. Reconnect the bank."),
                                 code="NO_ACCESS_TOKEN", provider=NAME)
        return token

    def _institution(self, institution_id: str) -> Institution | None:
        """The institution with its name and logo, looked up once; None if Plaid cannot say."""
        with self._lock:
            known = self._institutions.get(institution_id)
        if known is not None:
            return known
        try:
            found = map_institution(self.client.institution_get(institution_id), sandbox=self.client.is_sandbox)
        except ProviderError:
            return None  # cosmetic: the Item's own id and name are used instead
        with self._lock:
            self._institutions[institution_id] = found
        return found

    def _state(self, access_token: str) -> ConnectionState:
        data = self.client.item_get(access_token)
        item = data["item"]
        institution = self._institution(str(item["institution_id"])) if item.get("institution_id") else None
        return map_item(item, data.get("status"), now=self._now(), institution=institution,
                        sandbox=self.client.is_sandbox)

    def _with_secret(self, state: ConnectionState) -> ConnectionState:
        with self._lock:
            token = self._connected.get(state.external_id)
        return dataclasses.replace(state, secret=token) if token else state

    # -- connect flow -------------------------------------------------------------------------
    def institutions(self) -> list[Institution]:
        """The sandbox institutions a tester can pick (those Plaid still takes new connections to); none in
        production, where Plaid Link lists banks."""
        if not self.client.is_sandbox:
            return []
        found = []
        for institution_id in SANDBOX_INSTITUTIONS:
            try:
                raw = self.client.institution_get(institution_id)
            except NotFound:
                continue
            if raw.get("connection_availability") == "NOT_SUPPORTED":  # Plaid takes no new Items there
                continue
            institution = map_institution(raw, sandbox=True)
            with self._lock:
                self._institutions[institution.id] = institution
            found.append(institution)
        return found

    def credential_fields(self, institution_id: str) -> list[dict[str, Any]]:
        """The sandbox login (user_good / pass_good); none in production, where the bank asks inside Link."""
        if not self.client.is_sandbox:
            return []
        return [{"name": "username", "label": "Username", "type": "text", "placeholder": "user_good"},
                {"name": "password", "label": "Password", "type": "password", "placeholder": "pass_good"}]

    def create_connection(self, institution_id: str, credentials: dict[str, str]) -> ConnectionState:
        """Connect a sandbox institution without Link; the access token comes back in `state.secret`."""
        if not self.client.is_sandbox:
            raise RequestRejected(_("Plaid connections are made through Plaid Link: use the Connect button, which "
                                    "opens Plaid's own window."), code="LINK_REQUIRED", provider=NAME)
        public_token = self.client.sandbox_public_token_create(
            institution_id, username=credentials.get("username") or None,
            password=credentials.get("password") or None, webhook=self.webhook_url)
        return self.exchange(public_token)

    def submit_mfa(self, external_id: str, values: dict[str, str]) -> ConnectionState:
        raise RequestRejected(_("Plaid asks for security codes inside Plaid Link, not here."), code="MFA_IN_LINK",
                              provider=NAME)

    def wait_until_settled(self, external_id: str, *, on_progress: Callable[[str], None] | None = None,
                           timeout: float = 300.0, interval: float = 1.0,
                           sleep: Sleep = time.sleep) -> ConnectionState:
        """A Plaid Item is usable as soon as it exists: its state now (with the new token, if any)."""
        return self._with_secret(self.connection_state(external_id))

    def link_token(self, user_id: str, access_token: str | None = None) -> str:
        """A link_token for Plaid Link (update mode when access_token is given)."""
        return str(self.client.create_link_token(user_id, access_token=access_token,
                                                 webhook=self.webhook_url)["link_token"])

    def ensure_webhook(self, external_id: str, url: str) -> bool:
        """Point an existing Item's webhooks at `url` unless they already go there; True when it was changed."""
        token = self._token(external_id)
        if self.client.item_get(token)["item"].get("webhook") == url:
            return False
        self.client.item_webhook_update(token, url)
        return True

    def update_link_token(self, user_id: str, external_id: str) -> str:
        """A link_token for Link's update mode on a stored Item; its access token never leaves the server."""
        return self.link_token(user_id, access_token=self._token(external_id))

    def hosted_token(self, client_user_id: str, external_id: str | None) -> str:
        """A link token for Plaid Link (update mode for a stored Item, whose access token never leaves the server)."""
        if external_id:
            return self.update_link_token(client_user_id, external_id)
        return self.link_token(client_user_id)

    def complete_hosted(self, *, item_id: str | None, public_token: str | None) -> ConnectionState | None:
        """Link's public token exchanged for the new Item (its access token in `state.secret`); None in update mode,
        where Link hands over nothing new."""
        return self.exchange(public_token) if public_token else None

    def relogin(self, external_id: str, credentials: dict[str, str]) -> ConnectionState:
        """Update mode without Plaid Link: only the offline sandbox can stand in for the user logging in again."""
        if self._link_stand_in is None:
            raise RequestRejected(_("Plaid connections are renewed in Plaid Link, which needs the real service. "
                                    "Disconnect this one and connect the bank again."), code="NO_UPDATE_MODE",
                                  provider=NAME)
        self._link_stand_in(self.update_link_token(CLIENT_USER_ID, external_id), credentials)
        return self.connection_state(external_id)

    def exchange(self, public_token: str) -> ConnectionState:
        """Link's public token → the new Item's state, its access token in `state.secret` to store encrypted."""
        access_token, item_id = self.client.exchange_public_token(public_token)
        with self._lock:
            self._connected[item_id] = access_token
        state = self._state(access_token)
        if state.external_id != item_id:
            with self._lock:
                self._connected[state.external_id] = access_token
        return self._with_secret(state)

    # -- Provider interface ---------------------------------------------------------------------
    def connection_state(self, external_id: str) -> ConnectionState:
        return self._state(self._token(external_id))

    def fetch_accounts(self, connection_external_id: str) -> list[Account]:
        data = self.client.accounts_get(self._token(connection_external_id))
        return [map_account(raw, connection_external_id) for raw in data["accounts"]]

    def fetch_connection(self, external_id: str) -> tuple[ConnectionState, list[Account]]:
        """The Item's state and its accounts, /item/get and /accounts/get sent at once."""
        token = self._token(external_id)
        state, answer = at_once(lambda: self._state(token), lambda: self.client.accounts_get(token))
        data = unless_blocked(state, answer)
        return state, [map_account(raw, external_id) for raw in data["accounts"]] if data else []

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account], cursor: str | None,
                           *, sink: Callable[[pa.RecordBatch], None] | None = None) -> TransactionChanges:
        """Every change since the cursor, applied page by page so the latest word on each id wins.

        An account that /transactions/sync lists but `accounts` lacks (added at the bank between the two
        calls) is mapped from the sync answer and appended to `accounts`, so the engine stores it along
        with its transactions. A transaction for an account neither lists is BadData: nothing is applied
        and the cursor stays, so no change is skipped. The walk must end before anything is mapped (a
        mutation restarts it from the pre-loop cursor); the mapped batches go to `sink`, or stay in the result.
        """
        with counting_requests() as count:
            walk = transactions_sync_all(self.client, self._token(connection_external_id), cursor)
        by_id = {a.external_id: a for a in accounts}
        for page in walk.pages:
            for raw in page["accounts"]:
                if isinstance(raw, dict) and raw.get("account_id") and str(raw["account_id"]) not in by_id:
                    account = map_account(raw, connection_external_id)
                    by_id[account.external_id] = account
                    accounts.append(account)
        live: dict[str, tuple[dict[str, Any], Account]] = {}
        gone: dict[str, None] = {}
        twice: dict[str, str] = {}  # id → account id: sent twice in one page with different values
        for page in walk.pages:
            in_page: dict[str, dict[str, Any]] = {}
            for raw in [*page["added"], *page["modified"]]:
                if not isinstance(raw, dict):
                    raise BadData("Plaid sent a transaction that is not an object.", code="BAD_TRANSACTION",
                                  provider=NAME)
                account = by_id.get(str(raw.get("account_id")))
                if account is None:
                    raise BadData("Plaid sent a transaction for an account it did not list. Nothing was changed; "
                                  "the next sync will try again.", code="UNKNOWN_ACCOUNT", provider=NAME)
                tid = str(raw.get("transaction_id"))
                if in_page.setdefault(tid, raw) != raw:
                    twice[tid] = account.external_id
                live.pop(tid, None)  # re-insert so the order follows Plaid's
                live[tid] = (raw, account)
                gone.pop(tid, None)
            for tid in removed_ids(page):
                live.pop(tid, None)
                gone[tid] = None
        changes = TransactionChanges(provider=NAME, removed=list(gone), windows=[], cursor=walk.next_cursor or cursor,
                                     set_aside=[sent_twice(tid, account_id) for tid, account_id in twice.items()])
        rows = [row for tid, row in live.items() if tid not in twice]
        limits = Limits.around(self._now().date())
        for start in range(0, len(rows), MAP_CHUNK):
            chunk = rows[start:start + MAP_CHUNK]
            batch, rejected = map_screened(
                chunk, lambda pairs: map_transactions([raw for raw, _ in pairs], [account for _, account in pairs]),
                lambda pair: (pair[0].get("transaction_id"), pair[1].external_id), limits)
            changes.set_aside.extend(rejected)
            if batch is None:
                continue
            if sink is None:
                changes.batches.append(batch)
            else:
                sink(batch)
                changes.staged += batch.num_rows
        changes.requests = count.value
        return changes

    def fetch_portfolio(self, connection_external_id: str, accounts: list[Account], *,
                        since: date | None) -> Portfolio:
        """The Item's holdings, investment transactions (from `since`) and liabilities (see `read_portfolio`)."""
        return read_portfolio(self.client, self._token(connection_external_id), connection_external_id, accounts,
                              since=since, today=self._now().astimezone(self.local_zone).date())

    def match_accounts(self, old: Sequence[Account], new: Sequence[Account]) -> dict[str, str]:
        """A Plaid account keeps its mask and name across Items: the shared identity match answers."""
        return match_by_identity(old, new)

    def disconnect(self, external_id: str) -> None:
        with contextlib.suppress(NotFound):  # already removed at Plaid: that is what we wanted
            self.client.item_remove(self._token(external_id))
        with self._lock:
            self._connected.pop(external_id, None)

    # -- webhooks -------------------------------------------------------------------------------
    def read_webhook(self, headers: Mapping[str, str], body: bytes, client_ip: str | None, now: datetime, *,
                     secret: str, allowed_networks: Sequence[str]) -> WebhookEvent:
        """The verified event a delivery carries, or WebhookRejected. Plaid signs its deliveries, so the sender's
        address, the shared secret and the allowed networks play no part."""
        return parse_plaid(body, verify_plaid(headers, body, self.webhook_keys, now, self.holds_item), now)

    def holds_item(self, item_id: str) -> bool:
        """Whether `item_id` is an Item this app holds a token for: a delivery about it looks a new signing key up
        in its own lane, which forged deliveries about made-up Items cannot use up."""
        with self._lock:
            if item_id in self._connected:
                return True
        try:
            return bool(self._token_lookup(item_id))
        except (SecretError, KeyError):
            return False

    def plan_webhook(self, event: WebhookEvent) -> Plan:
        """What a Plaid event means for its Item (no side effects)."""
        return plan(event)

    def register_webhook(self, url: str, *, secret: str, items: Sequence[str]) -> str:
        """Point each of `items` at `url` (Plaid signs deliveries: no secret is sent); one line for the status page."""
        return register(self.ensure_webhook, url, items)
