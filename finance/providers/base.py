"""The Provider interface and the error taxonomy every provider maps its failures into."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from finance.model import NEEDS_USER, Account, ConnectionState, Institution, TransactionChanges


class ProviderError(Exception):
    """A provider call failed. `message` is written for the person using the app, never holds secrets."""

    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, provider: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.provider = provider
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code else self.message


class ReauthRequired(ProviderError):
    """The user must reconnect (new credentials, MFA, or renewed consent) before data can flow again."""


class RateLimited(ProviderError):
    """The provider asked us to slow down; `retry_after` is how long, in seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A failure that is likely to pass: 5xx, timeouts, the institution being down."""

    retryable = True


class BadData(ProviderError):
    """The provider answered with something we cannot read; nothing from it is stored."""


class ConfigurationError(ProviderError):
    """Our credentials or settings are wrong (e.g. a bad client id); the operator must fix them."""


class RequestRejected(ProviderError):
    """The provider refused the request for a reason a retry will not fix."""


class NotFound(RequestRejected):
    """The object no longer exists at the provider."""


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

    def disconnect(self, external_id: str) -> None: ...


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
