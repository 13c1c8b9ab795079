"""A small in-memory provider with a portfolio (investments, a loan, a card with bills and installments), for the
issue 19 tests of the sync, the store and the pages, independent of either aggregator's emulator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from finance.errors import TransientError
from finance.model import (
    Account,
    AccountType,
    CardBill,
    ConnectionState,
    ConnectionStatus,
    Holding,
    Institution,
    InvestmentTransaction,
    InvestmentTxnType,
    Liability,
    LiabilityKind,
    LoanPayment,
    Portfolio,
    Security,
    SecurityType,
    TransactionChanges,
    TransactionColumns,
    TxnStatus,
    WireAmounts,
)
from finance.providers.base import match_by_identity, read_resource
from finance.providers.wire import to_batch
from finance.sync import SyncEngine

D = Decimal
_CLOCK = datetime.now(UTC)
NOW = min(_CLOCK, datetime.combine(_CLOCK.date(), time(21), UTC))
"""The real clock (the pages read it too), but at least three hours before midnight: a test's second sync "within
the hour" must fall on the same day, or it rightly writes the new day's balances."""
TODAY = NOW.date()
HOSTILE = "<img src=x onerror=alert(1)> **bold** [link](javascript:alert(1))"


@dataclass(frozen=True)
class Row:
    external_id: str
    account: str
    day: date
    amount: str
    description: str
    category: str = "shopping"
    installment: tuple[int, int] | None = None
    bill_id: str | None = None


def default_rows() -> list[Row]:
    rows = [Row(f"c{n}", "chk", TODAY - timedelta(days=10 * n), "-50.00", f"Market {n}", "food.groceries")
            for n in range(1, 30)]
    rows += [Row("inst-1", "card", TODAY - timedelta(days=5), "-206.67", "Loja TV 2/6", installment=(2, 6),
                 bill_id="bill-now"),
             Row("pay-bill", "chk", TODAY - timedelta(days=3), "-900.00", "Pagamento fatura",
                 "transfer.credit_card_payment"),
             Row("card-paid", "card", TODAY - timedelta(days=3), "900.00", "Pagamento recebido",
                 "transfer.credit_card_payment")]
    return rows


@dataclass
class FakeBank:
    """One connection ("item-1", or others added with `connection`), its accounts, rows and portfolio."""

    name: str = "fake"
    local_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    rows: list[Row] = field(default_factory=default_rows)
    accounts: dict[str, list[Account]] = field(default_factory=dict)
    portfolio: Portfolio | Exception | None = None
    failing: set[str] = field(default_factory=set)
    calls: list[tuple[str, date | None]] = field(default_factory=list)
    institutions: dict[str, str] = field(default_factory=dict)  # item → institution id (default bank-1)
    successors: dict[str, str] = field(default_factory=dict)  # item → the institution that replaces its own

    def __post_init__(self) -> None:
        self.accounts.setdefault("item-1", [
            self.account("chk", AccountType.CHECKING, "Conta corrente", "5000.00", mask="1234"),
            self.account("card", AccountType.CREDIT_CARD, "Cartão Gold", "-1240.00", mask="9876",
                         available="3760.00", limit="5000.00"),
            self.account("brokerage", AccountType.INVESTMENT, "Corretora", "12500.00"),
        ])

    def account(self, external_id: str, kind: AccountType, name: str, balance: str, *, mask: str | None = None,
                available: str | None = None, limit: str | None = None, item: str = "item-1") -> Account:
        return Account(self.name, external_id, item, kind, name, "BRL", D(balance),
                       available_balance=None if available is None else D(available),
                       credit_limit=None if limit is None else D(limit), mask=mask)

    def state(self, external_id: str) -> ConnectionState:
        return ConnectionState(self.name, external_id, ConnectionStatus.ACTIVE, "UPDATED",
                               Institution(self.institutions.get(external_id, "bank-1"), "Banco Fake"),
                               successor_institution_id=self.successors.get(external_id))

    def connection_state(self, external_id: str) -> ConnectionState:
        return self.state(external_id)

    def fetch_accounts(self, connection_external_id: str) -> list[Account]:
        return self.accounts[connection_external_id]

    def fetch_connection(self, external_id: str) -> tuple[ConnectionState, list[Account]]:
        return self.state(external_id), self.accounts[external_id]

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account], cursor: str | None,
                           *, sink: object = None) -> TransactionChanges:
        own = {a.external_id for a in accounts}
        rows = [r for r in self.rows if r.account in own]
        columns = TransactionColumns(
            provider=self.name, external_id=[r.external_id for r in rows],
            account_external_id=[r.account for r in rows], booked_date=[r.day for r in rows],
            amount=WireAmounts([D(r.amount) for r in rows], False, "amount"), currency=["BRL"] * len(rows),
            description=[r.description for r in rows], status=[TxnStatus.POSTED.value] * len(rows),
            category=[r.category for r in rows], provider_category=[None] * len(rows),
            provider_category_id=[None] * len(rows), authorized_date=[None] * len(rows),
            original_amount=WireAmounts([None] * len(rows), False, "original amount", optional=True),
            original_currency=[None] * len(rows), merchant=[None] * len(rows), payment_method=[None] * len(rows),
            installment_number=[r.installment[0] if r.installment else None for r in rows],
            installment_total=[r.installment[1] if r.installment else None for r in rows],
            pending_external_id=[None] * len(rows), provider_created_at=[None] * len(rows),
            bill_id=[r.bill_id for r in rows])
        return TransactionChanges(provider=self.name, batches=[to_batch(columns)] if rows else [],
                                  windows=[(a, TODAY - timedelta(days=400)) for a in own], cursor="c1")

    def fetch_portfolio(self, connection_external_id: str, accounts: list[Account], *,
                        since: date | None) -> Portfolio:
        self.calls.append((connection_external_id, since))
        if isinstance(self.portfolio, Exception):
            raise self.portfolio
        source = self.portfolio if self.portfolio is not None else default_portfolio(self.name)
        result = Portfolio()

        def read(resource: str, items: list) -> list:  # type: ignore[type-arg]
            def go() -> list:  # type: ignore[type-arg]
                if resource in self.failing:
                    raise TransientError(f"The bank's {resource} are unavailable right now.", code="UNAVAILABLE")
                return list(items)
            return read_resource(result, resource, go, [])

        result.accounts = list(source.accounts) if connection_external_id == "item-1" else []
        if connection_external_id != "item-1":
            return result
        result.securities = read("investments", source.securities)
        result.holdings = source.holdings if not result.failed("investments") else []
        result.investment_transactions = read("investment_transactions", source.investment_transactions)
        result.liabilities = read("liabilities", source.liabilities)
        result.bills = read("bills", source.bills)
        return result

    def match_accounts(self, old: Sequence[Account], new: Sequence[Account]) -> dict[str, str]:
        return match_by_identity(old, new)

    def disconnect(self, external_id: str) -> None:
        self.accounts.pop(external_id, None)


def default_portfolio(provider: str = "fake") -> Portfolio:
    """A brokerage with a stock bought twice and a fixed-income title; a personal loan that is a contract, not an
    account; the card's closed, open and next bills."""
    loan = Account(provider, "loan-1", "item-1", AccountType.LOAN, "Crédito pessoal", "BRL", D("-8000.00"))
    return Portfolio(
        accounts=[loan],
        securities=[Security(provider, "petr4", HOSTILE, SecurityType.EQUITY, "BRL", ticker="PETR4",
                             close_price=D("40.00")),
                    Security(provider, "cdb", "CDB Banco Fake 2028", SecurityType.FIXED_INCOME, "BRL",
                             maturity_date=date(2028, 1, 3), annual_rate=D("12.5"))],
        holdings=[Holding(provider, "brokerage", "petr4", D("200"), D("8000.00"), "BRL", price=D("40.00"),
                          cost_basis=D("7000.00"), as_of=TODAY),
                  Holding(provider, "brokerage", "cdb", D("1"), D("4500.00"), "BRL", cost_basis=D("4000.00"))],
        investment_transactions=[
            InvestmentTransaction(provider, "it-1", "brokerage", TODAY - timedelta(days=200), InvestmentTxnType.BUY,
                                  D("-3000.00"), "BRL", "Compra PETR4", "petr4", D("100"), D("30.00")),
            InvestmentTransaction(provider, "it-2", "brokerage", TODAY - timedelta(days=60), InvestmentTxnType.BUY,
                                  D("-4000.00"), "BRL", "Compra PETR4", "petr4", D("100"), D("40.00"))],
        liabilities=[
            Liability(provider, "loan-1", LiabilityKind.PERSONAL, "BRL", D("-8000.00"), name="Crédito pessoal",
                      interest_rate=D("23.4"), rate_type="fixed", next_payment_date=TODAY + timedelta(days=10),
                      next_payment_amount=D("610.00"), original_principal=D("12000.00"),
                      origination_date=TODAY - timedelta(days=240), installments_total=24, installments_paid=7,
                      payments=tuple(LoanPayment(TODAY - timedelta(days=30 * n), D("500.00"))
                                     for n in range(7, 0, -1))),
            Liability(provider, "card", LiabilityKind.CREDIT, "BRL", D("-1240.00"), interest_rate=D("14.9"),
                      minimum_payment=D("124.00"), next_payment_date=TODAY + timedelta(days=12))],
        bills=[CardBill(provider, "bill-old", "card", TODAY - timedelta(days=18), D("900.00"), "BRL",
                        closing_date=TODAY - timedelta(days=28), is_paid=True, paid_amount=D("900.00")),
               CardBill(provider, "bill-now", "card", TODAY + timedelta(days=12), D("1240.00"), "BRL",
                        closing_date=TODAY + timedelta(days=2), minimum_payment=D("124.00")),
               CardBill(provider, "bill-next", "card", TODAY + timedelta(days=43), D("206.67"), "BRL",
                        closing_date=TODAY + timedelta(days=33))],
    )


def connect(sync: SyncEngine, bank: FakeBank, item: str = "item-1") -> str:
    return sync.register(bank.state(item))


def table(engine: sa.Engine, sql: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def with_accounts(bank: FakeBank, item: str, accounts: list[Account]) -> FakeBank:
    bank.accounts[item] = [replace(a, connection_external_id=item) for a in accounts]
    return bank
