"""The normalized records every provider maps into (the analyst-facing contract, documented in the README).

Sign convention: amounts are Decimals in the account's currency; negative means money leaves the user.
Balances follow the same rule from the user's side: a credit card's amount owed is a negative balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

import pyarrow as pa


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


NEEDS_USER = frozenset({ConnectionStatus.NEEDS_RECONNECT, ConnectionStatus.NEEDS_INPUT, ConnectionStatus.REVOKED})
"""Connection states in which no data flows until the user acts."""
EXPIRING_SIGNALS = frozenset({"PENDING_EXPIRATION", "PENDING_DISCONNECT"})
"""Signals a provider raises on a connection to announce the date it stops working (its consent ends)."""


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
    """What a provider says about one connection (its item: one bank login)."""

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
    # Set only right after connecting, when the provider hands over a token to keep (an access token);
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


MONEY = pa.decimal128(18, 2)
"""Money as the store keeps it: DECIMAL(18,2) in the account's currency."""
CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    """An amount as the store keeps it: cents, rounded half to even."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)

TRANSACTION_SCHEMA = pa.schema([
    pa.field("external_id", pa.string(), nullable=False),
    pa.field("account_external_id", pa.string(), nullable=False),
    pa.field("booked_date", pa.date32(), nullable=False),
    pa.field("authorized_date", pa.date32()),
    pa.field("amount", MONEY, nullable=False),
    pa.field("currency", pa.string(), nullable=False),
    pa.field("original_amount", MONEY),
    pa.field("original_currency", pa.string()),
    pa.field("description", pa.string(), nullable=False),
    pa.field("merchant", pa.string()),
    pa.field("category", pa.string(), nullable=False),
    pa.field("provider_category", pa.string()),
    pa.field("provider_category_id", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("payment_method", pa.string()),
    pa.field("installment_number", pa.int32()),
    pa.field("installment_total", pa.int32()),
    pa.field("pending_external_id", pa.string()),
    pa.field("provider_created_at", pa.timestamp("us", tz="UTC")),
])
"""A mapped page of transactions, column by column: what every provider's mapping produces and the store stages.

Amounts are already in store form (half-even cents); ids are the provider's own, prefixed by the store.
"""

Column = Sequence[Any] | pa.Array
"""One value per row: a Python list, or an Arrow array the mapping computed in bulk."""


@dataclass(frozen=True, slots=True)
class WireAmounts:
    """Amounts exactly as the provider sent them (float, int or Decimal), and whether our sign is the opposite.

    Converting them is the only step that differs between the two renderings of a mapping: exact Decimals for
    `Transaction` objects, half-even cents for the Arrow batch the store ingests.
    """

    values: Sequence[Any]
    negate: bool
    field: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class TransactionColumns:
    """One provider mapping's result for a list of raw transactions, one column per `Transaction` field.

    Each provider has one mapping function that builds this; `finance.providers.wire.to_batch` (bulk ingest)
    and `to_transactions` (single rows, tests) only render it, so the two can never disagree on a rule.
    """

    provider: str
    external_id: Column
    account_external_id: Column
    booked_date: Column
    amount: WireAmounts
    currency: Column
    description: Column
    status: Column
    category: Column
    provider_category: Column
    provider_category_id: Column
    authorized_date: Column
    original_amount: WireAmounts
    original_currency: Column
    merchant: Column
    payment_method: Column
    installment_number: Column
    installment_total: Column
    pending_external_id: Column
    provider_created_at: Column

    def __len__(self) -> int:
        return len(self.external_id)


def transactions_from_batch(batch: pa.RecordBatch, provider: str) -> list[Transaction]:
    """A mapped batch back as `Transaction` objects (amounts in cents, as stored)."""
    rows = batch.to_pylist()
    return [Transaction(provider, **{**row, "status": TxnStatus(row["status"])}) for row in rows]


@dataclass(frozen=True, slots=True)
class SetAside:
    """A row a provider sent that cannot be real (finance.screening): never stored, reported with the reason."""

    external_id: str
    account_external_id: str
    reason: str


@dataclass(slots=True)
class TransactionChanges:
    """What one fetch learned about a connection's transactions.

    batches: mapped rows added or possibly changed (TRANSACTION_SCHEMA), unless the fetch handed them to a
    sink as it went (`staged` counts those). removed: provider ids the provider says are gone.
    windows: (account external id, first date) pairs for which the rows list every live row on or after
    that date, so a stored row there that is absent is gone too (for providers with no removal feed).
    cursor: opaque provider state to store with the connection once applied.
    set_aside: rows that cannot be real, kept out of the store (their stored versions, if any, stay as they are).
    """

    provider: str = ""
    batches: list[pa.RecordBatch] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    windows: list[tuple[str, date]] = field(default_factory=list)
    cursor: str | None = None
    requests: int = 0
    staged: int = 0
    set_aside: list[SetAside] = field(default_factory=list)

    @property
    def upserts(self) -> list[Transaction]:
        """The rows of `batches` as objects (for small paths and tests; the store ingests the batches)."""
        return [t for batch in self.batches for t in transactions_from_batch(batch, self.provider)]

    @property
    def rows(self) -> int:
        """Rows fetched: kept in `batches` or handed to a sink."""
        return self.staged + sum(b.num_rows for b in self.batches)
