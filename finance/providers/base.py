"""The Provider interface and the error taxonomy every provider maps its failures into."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from finance.model import Account, ConnectionState, Institution, TransactionChanges


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


class Provider(Protocol):
    """What the sync engine needs from an aggregator."""

    name: str

    def connection_state(self, external_id: str) -> ConnectionState: ...

    def fetch_accounts(self, connection_external_id: str) -> list[Account]: ...

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account],
                           cursor: str | None) -> TransactionChanges: ...

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
