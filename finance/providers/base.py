"""The Provider interface (what the sync engine and the pages use of an aggregator) and the kit each aggregator
hands the registry, so that shared code asks rather than naming one."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import pyarrow as pa

from finance.connect_flow import HostedWidget
from finance.errors import ProviderError
from finance.i18n import LazyText
from finance.model import (
    NEEDS_USER,
    Account,
    AccountType,
    ConnectionState,
    Institution,
    Portfolio,
    ResourceFailure,
    TransactionChanges,
)

if TYPE_CHECKING:

    from finance.config import Settings
    from finance.providers.webhook import Plan, WebhookEvent
    from finance.sandbox.common import Emulator
    from finance.store.secrets import SecretStore


ProgressFn = Callable[[str, float], None]

T = TypeVar("T")
U = TypeVar("U")


def at_once(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U | Exception]:
    """`first()` here and `second()` on another thread at the same time: one round trip instead of two.

    `first`'s error propagates (after `second` is done); `second`'s error is returned for the caller to weigh.
    """
    outcome: list[U | Exception] = []

    def run_second() -> None:
        try:
            outcome.append(second())
        except Exception as exc:  # handed to the caller
            outcome.append(exc)

    worker = threading.Thread(target=contextvars.copy_context().run, args=(run_second,), daemon=True)
    worker.start()
    try:
        result = first()
    finally:
        worker.join()
    return result, outcome[0]


def unless_blocked(state: ConnectionState, result: U | Exception) -> U | None:
    """A result read alongside `state`: None when the connection needs the user (its request failing then is
    expected, not news); otherwise the result, or its error raised."""
    if state.status in NEEDS_USER:
        return None
    if isinstance(result, Exception):
        raise result
    return result


TransactionSink = Callable[[pa.RecordBatch], None]
"""Receives mapped transaction batches (finance.model.TRANSACTION_SCHEMA) as a fetch produces them; thread-safe."""


class Provider(Protocol):
    """What the sync engine needs from an aggregator."""

    name: str
    local_zone: ZoneInfo  # the calendar its accounts' days follow

    def connection_state(self, external_id: str) -> ConnectionState: ...

    def fetch_accounts(self, connection_external_id: str) -> list[Account]: ...

    def fetch_connection(self, external_id: str) -> tuple[ConnectionState, list[Account]]:
        """`connection_state` and `fetch_accounts` in one step, their requests sent at once (what a sync needs
        first). The accounts are only meaningful when the state does not need the user."""
        ...

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account], cursor: str | None,
                           *, sink: TransactionSink | None = None) -> TransactionChanges:
        """What changed since `cursor`; mapped batches go to `sink` as they arrive, or stay in the result."""
        ...

    def fetch_portfolio(self, connection_external_id: str, accounts: list[Account], *,
                        since: date | None) -> Portfolio:
        """Investments, investment transactions (from `since`; None: as far back as the provider goes),
        liabilities and card bills of a connection whose `accounts` were just fetched.

        Each resource is read on its own: one that fails is recorded in `Portfolio.failures` (see `read_resource`)
        and the others still come back; a resource the provider or the bank lacks comes back empty. Raises only
        when the connection itself cannot be read (the whole portfolio step is then recorded as failed).
        """
        ...

    def match_accounts(self, old: Sequence[Account], new: Sequence[Account]) -> dict[str, str]:
        """Which of `new` (a new connection's accounts) continues which of `old` (a retired connection's accounts,
        the same person at the same bank): {new external id: old external id}. Providers whose account numbers
        change between connection kinds refine `match_by_identity`, which is the default answer."""
        ...

    def min_sync_interval(self) -> timedelta | None:
        """The shortest useful time between scheduled syncs of a connection (how often the provider's own data can
        change), which the worker's schedule never goes below; None: no minimum."""
        ...

    def disconnect(self, external_id: str) -> None: ...


def read_resource(portfolio: Portfolio, resource: str, read: Callable[[], T], empty: T) -> T:
    """`read()`, or `empty` with the failure recorded in `portfolio` when it raises a ProviderError: one portfolio
    resource failing (a bank without loans answering an error, a timeout) never costs the others."""
    try:
        return read()
    except ProviderError as exc:
        portfolio.failures.append(ResourceFailure(resource, exc.code or type(exc).__name__, exc.message))
        return empty


def _digits(text: str | None) -> str:
    return "".join(c for c in text or "" if c.isdigit())


def _words(text: str) -> str:
    return " ".join(text.casefold().split())


def match_by_identity(old: Sequence[Account], new: Sequence[Account]) -> dict[str, str]:
    """{new external id: old external id} for accounts that are the same account seen through two connections:
    same currency and kind (cards with cards, loans with loans), and the same last digits (mask) or, when either
    has none, the same name. A pair is only made when it is the single candidate both ways (never a guess)."""
    def kind(account: Account) -> AccountType:
        return AccountType.CHECKING if account.type is AccountType.SAVINGS else account.type

    def same(a: Account, b: Account) -> bool:
        if a.currency != b.currency or kind(a) != kind(b):
            return False
        mask_a, mask_b = _digits(a.mask)[-4:], _digits(b.mask)[-4:]
        if mask_a and mask_b:
            return mask_a == mask_b and (a.type is b.type or _words(a.name) == _words(b.name))
        return _words(a.name) == _words(b.name)

    pairs: dict[str, str] = {}
    for candidate in new:
        olds = [a for a in old if same(a, candidate)]
        if len(olds) == 1 and [b for b in new if same(olds[0], b)] == [candidate]:
            pairs[candidate.external_id] = olds[0].external_id
    return pairs


class ConnectableProvider(Provider, Protocol):
    """A provider plus the connect flow the Connections page and `python -m finance connect` drive."""

    label: str

    def institutions(self) -> list[Institution]: ...

    def credential_fields(self, institution_id: str) -> list[dict[str, Any]]: ...

    def create_connection(self, institution_id: str, credentials: dict[str, str]) -> ConnectionState: ...

    def submit_mfa(self, external_id: str, values: dict[str, str]) -> ConnectionState: ...

    def wait_until_settled(self, external_id: str, *, on_progress: Callable[[str], None] | None = None,
                           timeout: float = 300.0, interval: float = 1.0,
                           sleep: Callable[[float], None] = ...) -> ConnectionState: ...

    def hosted_token(self, client_user_id: str, external_id: str | None) -> str:
        """A fresh token for the provider's own connect widget (update mode for `external_id`)."""
        ...

    def complete_hosted(self, *, item_id: str | None, public_token: str | None) -> ConnectionState | None:
        """What the hosted widget's success hands over, turned into a connection when the provider must do that
        first (a public token exchanged); None when the item it names only needs to settle."""
        ...

    def relogin(self, external_id: str, credentials: dict[str, str]) -> ConnectionState:
        """New credentials for an existing connection (update mode without the hosted widget)."""
        ...

    def read_webhook(self, headers: Mapping[str, str], body: bytes, client_ip: str | None, now: datetime, *,
                     secret: str, allowed_networks: Sequence[str]) -> WebhookEvent:
        """A verified delivery, or WebhookRejected (nothing stored)."""
        ...

    def plan_webhook(self, event: WebhookEvent) -> Plan:
        """What an event means for its connection (no side effects)."""
        ...

    def register_webhook(self, url: str, *, secret: str, items: Sequence[str]) -> str:
        """Point the provider's webhooks at `url`; one line saying what was done, for the status page."""
        ...


@dataclass(frozen=True, slots=True)
class SandboxBank:
    """A sandbox bank a tester, the demo and the empty pages can point to."""

    institution_id: str
    name: str
    credentials: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EmulatorOptions:
    """How to start an offline emulator: in the app (a state file under data/) or served by the CLI."""

    state_path: Path | None = None
    seed: int | None = None
    client_id: str | None = None
    client_secret: str | None = None
    settle_seconds: float | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderKit:
    """Everything shared code asks one aggregator for, so that it never names one (finance.providers.registry
    lists the kits). Each provider's package builds its kit in its `kit` module."""

    name: str
    label: str
    hosted_widget: HostedWidget  # its own connect widget, used when it talks to the real service
    sandbox_hint: str | LazyText  # what to type in the offline widget (translated when shown)
    sandbox_bank: SandboxBank  # the bank the demo connects
    fault_targets: Mapping[str, str | LazyText]  # request path prefix → what it covers, for the sandbox fault controls
    serve_hint: str  # how to point the app at a served emulator; `{url}` is its address
    is_offline: Callable[[Settings], bool]  # runs on its in-process emulator with these settings
    uses_hosted_widget: Callable[[Settings], bool]  # talks to the real service, where its own widget works
    make_emulator: Callable[[EmulatorOptions], Emulator]
    make_provider: Callable[[Settings, SecretStore, Emulator | None], ConnectableProvider]
    """The provider for these settings: through `emulator`'s transport and clock when one is given."""
