"""The error taxonomy every provider maps its failures into, and the refusals of the store and of the user's edits
and queries (imports only finance.i18n, itself a leaf).

Each error carries a message written for the person using the app — what happened and what to do — and never
secrets; `code` is the provider's or ours, for the record and for the advice on the Sync status page.
"""

from __future__ import annotations

from finance.i18n import _


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


class UpdateTooSoon(ProviderError):
    """The provider refuses to refresh a connection again before `allowed_at` (its minimum update interval). Not
    retried: waiting is the only remedy, and the message says until when."""

    def __init__(self, message: str, *, allowed_at: object = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.allowed_at = allowed_at  # a datetime (UTC) when known


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


class StoreError(RuntimeError):
    """The store cannot be used as asked (disk full, read-only, damaged, gone). `message` says what happened and
    what to do, for a person; it never holds the database URL (which may carry a password) or stored data."""

    code = "STORE_UNAVAILABLE"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class DatabaseBusy(StoreError):
    """Another process holds the DuckDB file (DuckDB allows one writer process per file)."""

    code = "STORE_BUSY"


class EditError(ValueError):
    """An edit of a transaction or rule the store refused, with a message for the user. Nothing was changed."""


class ConsoleError(Exception):
    """A console query was refused or failed; `message` is written for the analyst and holds no internal paths."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadFile(ValueError):
    """An import file that cannot be read as asked (finance.imports): `line` (1-based) and `column` say where, when
    known. Nothing from the file was stored."""

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None) -> None:
        where = ", ".join(part for part in (_("line {line}").format(line=line) if line else "",
                                            _("column “{column}”").format(column=column) if column else "") if part)
        super().__init__(f"{where[0].upper()}{where[1:]}: {message}" if where else message)
        self.message = message
        self.line = line
        self.column = column
