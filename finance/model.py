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
    # The institution to reconnect through when this connection's own is being retired (a bank's direct connector
    # replaced by its Open Finance one); the new connection's accounts then continue this one's history.
    successor_institution_id: str | None = None
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
    bill_id: str | None = None  # a card row's bill (`CardBill.external_id`), when the provider says which
    merchant_category_code: str | None = None  # ISO 18245 MCC, verbatim ("5411"), when the provider sends one
    counterparty_account: str | None = None  # the other side's account number as the provider sends it (PIX, ACH)

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
    pa.field("bill_id", pa.string()),
    pa.field("merchant_category_code", pa.string()),
    pa.field("counterparty_account", pa.string()),
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
    # Optional columns: None means "all null" (a provider that never sends the field leaves it out).
    bill_id: Column | None = None
    merchant_category_code: Column | None = None
    counterparty_account: Column | None = None

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


# --------------------------------------------------------------------------------------------
# Investments, loans and card bills (issue 19): what `Provider.fetch_portfolio` returns
# --------------------------------------------------------------------------------------------
# Amounts a person reads as "to pay" or "worth" (a bill's total, a minimum payment, a holding's value) are positive;
# balances follow the account rule above (what is owed is negative). Rates are annual percentages (5.25 = 5.25 %).


class SecurityType(StrEnum):
    EQUITY = "equity"
    ETF = "etf"
    MUTUAL_FUND = "mutual_fund"
    FIXED_INCOME = "fixed_income"  # bonds, CDB, LCI/LCA, treasury
    DERIVATIVE = "derivative"
    CASH = "cash"  # cash and money-market sweep positions
    CRYPTO = "crypto"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Security:
    """What a holding is of: a stock, a fund, a fixed-income title. A provider without a separate security object
    (one "investment" per position) makes one per position, its id the position's."""

    provider: str
    external_id: str
    name: str
    type: SecurityType
    currency: str
    ticker: str | None = None
    isin: str | None = None
    close_price: Decimal | None = None  # the latest price the provider knows, per unit
    close_price_as_of: date | None = None
    maturity_date: date | None = None  # fixed income
    annual_rate: Decimal | None = None  # fixed income: the contracted rate, % a year

    @property
    def id(self) -> str:
        return stable_id(self.provider, self.external_id)


@dataclass(frozen=True, slots=True)
class Holding:
    """A position in one account on `as_of`: quantity × price = value (all in `currency`)."""

    provider: str
    account_external_id: str
    security_external_id: str
    quantity: Decimal
    value: Decimal  # what the position is worth (positive)
    currency: str
    price: Decimal | None = None  # per unit
    cost_basis: Decimal | None = None  # what the position cost in total (positive); None when unknown
    as_of: date | None = None  # the price's date; None: today

    @property
    def account_id(self) -> str:
        return stable_id(self.provider, self.account_external_id)

    @property
    def security_id(self) -> str:
        return stable_id(self.provider, self.security_external_id)

    @property
    def gain(self) -> Decimal | None:
        """Unrealised gain (value − cost basis), when the cost basis is known."""
        return None if self.cost_basis is None else self.value - self.cost_basis


class InvestmentTxnType(StrEnum):
    BUY = "buy"
    SELL = "sell"
    DIVIDEND = "dividend"  # also interest and coupons paid out
    FEE = "fee"  # also taxes withheld
    TRANSFER = "transfer"  # units moved in (+quantity) or out (−quantity) without a trade
    CASH = "cash"  # deposits and withdrawals of cash into the investment account
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class InvestmentTransaction:
    """One movement in an investment account.

    amount: the cash it moved, in the model's sign (a buy is negative: cash leaves to buy units; a sale or a
    dividend is positive). quantity: units of the security gained (+) or given up (−); None when not a trade.
    """

    provider: str
    external_id: str
    account_external_id: str
    date: date
    type: InvestmentTxnType
    amount: Decimal
    currency: str
    description: str
    security_external_id: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    fees: Decimal | None = None  # positive

    @property
    def id(self) -> str:
        return stable_id(self.provider, self.external_id)

    @property
    def account_id(self) -> str:
        return stable_id(self.provider, self.account_external_id)


class LiabilityKind(StrEnum):
    CREDIT = "credit"  # a credit card
    STUDENT = "student"
    MORTGAGE = "mortgage"
    PERSONAL = "personal"  # personal, consigned (consignado) and instalment loans
    FINANCING = "financing"  # vehicle and goods financing
    OVERDRAFT = "overdraft"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class LoanPayment:
    """A payment made on a loan (positive `amount`): the store rebuilds the loan's balance history from them."""

    date: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Liability:
    """What is owed on one account: a loan, a mortgage or a card.

    `account_external_id` names an account of the connection; a provider whose loans are not accounts (a contract
    listed apart) adds an `Account` of type LOAN for each to `Portfolio.accounts`.
    balance: signed like an account's (owed is negative). Every other amount is positive, as the bank prints it.
    """

    provider: str
    account_external_id: str
    kind: LiabilityKind
    currency: str
    balance: Decimal | None = None
    name: str | None = None  # the product's name ("Crédito pessoal", "Direct Stafford Loan")
    interest_rate: Decimal | None = None  # % a year (a card: its purchase APR)
    rate_type: str | None = None  # "fixed" or "variable"
    next_payment_date: date | None = None
    next_payment_amount: Decimal | None = None
    minimum_payment: Decimal | None = None
    last_payment_date: date | None = None
    last_payment_amount: Decimal | None = None
    original_principal: Decimal | None = None
    origination_date: date | None = None
    maturity_date: date | None = None
    installments_total: int | None = None
    installments_paid: int | None = None
    is_overdue: bool | None = None
    payments: tuple[LoanPayment, ...] = ()  # known past payments, oldest first

    @property
    def account_id(self) -> str:
        return stable_id(self.provider, self.account_external_id)


@dataclass(frozen=True, slots=True)
class CardBill:
    """One statement (fatura) of a card: closed on `closing_date`, to be paid by `due_date`.

    A bill whose closing date is still ahead is the open (current) one; its total grows until it closes.
    """

    provider: str
    external_id: str
    account_external_id: str
    due_date: date
    total: Decimal  # positive: what the bill asks for
    currency: str
    closing_date: date | None = None
    minimum_payment: Decimal | None = None
    paid_amount: Decimal | None = None  # paid towards this bill so far, when the provider says
    is_paid: bool | None = None  # None: the provider does not say

    @property
    def id(self) -> str:
        return stable_id(self.provider, self.external_id)

    @property
    def account_id(self) -> str:
        return stable_id(self.provider, self.account_external_id)


PORTFOLIO_RESOURCES = ("investments", "investment_transactions", "liabilities", "bills")
"""The resources a portfolio fetch reads; each succeeds or fails on its own (`Portfolio.failures`)."""


@dataclass(frozen=True, slots=True)
class ResourceFailure:
    """A resource of `PORTFOLIO_RESOURCES` that could not be read this time: its stored data stays as it was."""

    resource: str
    code: str
    message: str  # for a person; never holds a secret


@dataclass(slots=True)
class Portfolio:
    """Everything beyond accounts and transactions that one connection has: what `Provider.fetch_portfolio` returns.

    A resource the provider or the bank does not offer is simply empty. For each resource that did not fail, the
    lists are the whole current picture of the connection (the store replaces what it had), except
    `investment_transactions`, which add to the stored ones from the `since` date the sync asked for.
    accounts: accounts the provider derives for positions or contracts that are not accounts of its own (stored
    like fetched accounts, with their balance; e.g. one LOAN account per loan contract).
    """

    accounts: list[Account] = field(default_factory=list)
    securities: list[Security] = field(default_factory=list)
    holdings: list[Holding] = field(default_factory=list)
    investment_transactions: list[InvestmentTransaction] = field(default_factory=list)
    liabilities: list[Liability] = field(default_factory=list)
    bills: list[CardBill] = field(default_factory=list)
    failures: list[ResourceFailure] = field(default_factory=list)
    requests: int = 0

    def failed(self, resource: str) -> bool:
        return any(f.resource == resource for f in self.failures)
