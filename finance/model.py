"""The normalized records every provider maps into (the analyst-facing contract, documented in the README).

Sign convention: amounts are Decimals in the account's currency; negative means money leaves the user.
Balances follow the same rule from the user's side: a credit card's amount owed is a negative balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class AccountType(StrEnum):
    CHECKING = "checking"
    SAVINGS = "savings"
    CREDIT_CARD = "credit_card"
    LOAN = "loan"
    INVESTMENT = "investment"
    OTHER = "other"


LIABILITY_TYPES = frozenset({AccountType.CREDIT_CARD, AccountType.LOAN})


class TxnStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"


class ConnectionStatus(StrEnum):
    """Our own connection states, derived from each provider's item status."""

    ACTIVE = "active"
    SYNCING = "syncing"
    NEEDS_INPUT = "needs_input"  # MFA or an action at the bank is pending
    NEEDS_RECONNECT = "needs_reconnect"  # credentials or consent must be renewed by the user
    CONSENT_EXPIRING = "consent_expiring"
    REVOKED = "revoked"
    FAILED = "failed"  # the last attempt failed for a reason that may pass


def stable_id(provider: str, external_id: str) -> str:
    """Our primary key for a provider object: provider plus the provider's own id."""
    return f"{provider}:{external_id}"


@dataclass(frozen=True, slots=True)
class Institution:
    id: str
    name: str
    logo_url: str | None = None
    primary_color: str | None = None
    is_sandbox: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """What a provider says about one connection (Pluggy item, Plaid item)."""

    provider: str
    external_id: str
    status: ConnectionStatus
    provider_status: str
    institution: Institution | None = None
    status_detail: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    consent_expires_at: datetime | None = None
    last_updated_at: datetime | None = None
    mfa_prompt: MfaPrompt | None = None
    # Set only right after connecting, when the provider hands over a token to keep (Plaid's access token);
    # the sync engine stores it encrypted. Never printed.
    secret: str | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return stable_id(self.provider, self.external_id)


@dataclass(frozen=True, slots=True)
class MfaPrompt:
    """A one-time code or answer the bank asks for while connecting."""

    name: str
    label: str
    kind: str = "text"
    instructions: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Account:
    provider: str
    external_id: str
    connection_external_id: str
    type: AccountType
    name: str
    currency: str
    current_balance: Decimal | None
    available_balance: Decimal | None = None
    credit_limit: Decimal | None = None
    mask: str | None = None
    subtype: str | None = None
    balance_as_of: datetime | None = None

    @property
    def id(self) -> str:
        return stable_id(self.provider, self.external_id)

    @property
    def connection_id(self) -> str:
        return stable_id(self.provider, self.connection_external_id)


@dataclass(frozen=True, slots=True)
class Transaction:
    provider: str
    external_id: str
    account_external_id: str
    booked_date: date
    amount: Decimal
    currency: str
    description: str
    status: TxnStatus
    category: str
    provider_category: str | None = None
    provider_category_id: str | None = None
    authorized_date: date | None = None
    original_amount: Decimal | None = None
    original_currency: str | None = None
    merchant: str | None = None
    payment_method: str | None = None
    installment_number: int | None = None
    installment_total: int | None = None
    pending_external_id: str | None = None  # the pending row this posted row replaces, when the provider says so
    provider_created_at: datetime | None = None

    @property
    def id(self) -> str:
        return stable_id(self.provider, self.external_id)

    @property
    def account_id(self) -> str:
        return stable_id(self.provider, self.account_external_id)


@dataclass(slots=True)
class TransactionChanges:
    """What one fetch learned about an account's transactions.

    upserts: rows added or possibly changed. removed: provider ids the provider says are gone.
    windows: (account external id, first date) pairs for which `upserts` lists every live row
    on or after that date, so a stored row there that is absent is gone too (Pluggy has no
    removal feed). cursor: opaque provider state to store with the connection once applied.
    """

    upserts: list[Transaction] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    windows: list[tuple[str, date]] = field(default_factory=list)
    cursor: str | None = None
    requests: int = 0
