"""Pluggy beyond accounts and transactions (issue 19): investments, loans and card bills mapped from the emulator and
from hand-written objects, the real-world variants of a transaction, webhook batches fetched by id, the minimum
update interval, and a direct connector retired in favour of Open Finance."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from jsonschema import Draft7Validator

from finance.errors import UpdateTooSoon
from finance.model import Account, AccountType, InvestmentTxnType, LiabilityKind, SecurityType
from finance.providers.pluggy import webhooks
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.mapping import map_transaction
from finance.providers.pluggy.portfolio import map_bill, map_investment, map_investment_transaction, map_loan
from finance.providers.pluggy.provider import MAX_IDS, PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.providers.webhook import WebhookEvent
from finance.sandbox.common import Clock
from finance.sync import SyncEngine
from tests.conftest import REFERENCE, START

SCHEMAS = json.loads((REFERENCE / "pluggy-sdk-schemas.json").read_text())
ITEM = "a0922d6f-2007-4169-a181-b961500608db"


def valid(entry: str, obj: Any) -> Any:
    errors = list(Draft7Validator({**SCHEMAS, "$ref": f"#/definitions/{entry}"}).iter_errors(obj))
    assert not errors, errors[0].message
    return obj


def connect(provider: PluggyProvider, connector: int = 0, user: str = "user-ok") -> tuple[Any, list[Any]]:
    item = provider.client.create_item(connector, {"user": user, "password": "password-ok"})
    return provider.fetch_connection(item["id"])


# -- the portfolio from the emulator ---------------------------------------------------------------------------------

def test_portfolio_of_the_sandbox_household(provider: PluggyProvider) -> None:
    state, accounts = connect(provider)
    portfolio = provider.fetch_portfolio(state.external_id, accounts, since=None)
    assert portfolio.failures == [] and portfolio.requests >= 4

    kinds = sorted(s.type for s in portfolio.securities)
    assert kinds == sorted([SecurityType.FIXED_INCOME, SecurityType.FIXED_INCOME, SecurityType.MUTUAL_FUND,
                            SecurityType.EQUITY])
    stock = next(s for s in portfolio.securities if s.type is SecurityType.EQUITY)
    assert (stock.ticker, stock.isin) == ("PETR4", "BRPETRACNPR6")
    by_kind = {a.type: a for a in portfolio.accounts}
    investments = by_kind[AccountType.INVESTMENT]
    assert investments.current_balance == sum(h.value for h in portfolio.holdings) > 0
    for holding in portfolio.holdings:
        assert holding.account_external_id == investments.external_id
        assert holding.value == pytest.approx(holding.quantity * holding.price, abs=Decimal("0.05"))
        assert holding.cost_basis and holding.cost_basis > 0
    trades = portfolio.investment_transactions
    assert trades and all(t.type is InvestmentTxnType.BUY and t.amount < 0 < (t.quantity or 0) for t in trades)
    for holding in portfolio.holdings:  # the trades add up to each position
        units = sum((t.quantity or 0) for t in trades if t.security_external_id == holding.security_external_id)
        assert units == holding.quantity
    later = provider.fetch_portfolio(state.external_id, accounts, since=max(t.date for t in trades))
    assert 0 < len(later.investment_transactions) < len(trades)

    loan = by_kind[AccountType.LOAN]
    financing = next(x for x in portfolio.liabilities if x.kind is LiabilityKind.FINANCING)
    assert financing.account_external_id == loan.external_id and loan.current_balance == financing.balance < 0
    assert financing.installments_total == 48 and 0 < (financing.installments_paid or 0) < 48
    assert len(financing.payments) == financing.installments_paid
    assert financing.original_principal and -loan.current_balance < financing.original_principal
    assert financing.interest_rate and Decimal(10) < financing.interest_rate < Decimal(30)  # % a year

    card = next(a for a in accounts if a.type is AccountType.CREDIT_CARD)
    bills = sorted(portfolio.bills, key=lambda b: b.due_date)
    assert len(bills) >= 12 and all(b.account_external_id == card.external_id for b in bills)
    assert all(b.is_paid for b in bills if b.due_date < START.date())
    assert all(b.closing_date and b.closing_date < b.due_date for b in bills)
    rows = provider.fetch_transactions(state.external_id, [card], None).upserts
    billed = {t.bill_id for t in rows if t.bill_id}
    assert billed <= {b.external_id for b in bills} and len(billed) >= 12
    assert any(t.bill_id is None and t.status.value == "posted" for t in rows)  # the open bill's rows
    assert next(x for x in portfolio.liabilities if x.kind is LiabilityKind.CREDIT).balance == card.current_balance


def test_a_failing_resource_is_recorded_and_the_others_still_come(emulator: PluggyEmulator,
                                                                   provider: PluggyProvider) -> None:
    state, accounts = connect(provider)
    emulator.faults.add("unavailable", path="/loans", times=10)
    portfolio = provider.fetch_portfolio(state.external_id, accounts, since=None)
    assert [f.resource for f in portfolio.failures] == ["liabilities"]
    assert portfolio.holdings and portfolio.bills
    assert not any(x.kind is LiabilityKind.FINANCING for x in portfolio.liabilities)


def test_numbered_pages_are_walked_to_the_last(emulator: PluggyEmulator, provider: PluggyProvider,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    state, _ = connect(provider)
    monkeypatch.setattr("finance.providers.pluggy.client.PAGE_SIZE", 3)
    fund = next(i for i in provider.client.investments(state.external_id) if i["type"] == "MUTUAL_FUND")
    before = len(emulator.request_log)
    trades = provider.client.investment_transactions(fund["id"])
    pages = [p for _, p in emulator.request_log[before:] if "/transactions" in p]
    assert len(trades) > 6 and len(pages) == -(-len(trades) // 3)
    assert len({t["id"] for t in trades}) == len(trades)


# -- mapping hand-written objects ------------------------------------------------------------------------------------

INVESTMENT = {
    "id": "5b5e9f4c-0f5c-4d8e-9b4b-0e7c2f6a1d11", "itemId": ITEM, "type": "EQUITY", "subtype": "STOCK",
    "name": "ITAU UNIBANCO PN", "code": "ITUB4", "isin": "BRITUBACNPR1", "number": None, "issuer": None,
    "issuerCNPJ": None, "currencyCode": "BRL", "date": "2026-03-10T00:00:00.000Z", "value": 32.5, "quantity": None,
    "taxes": None, "taxes2": None, "balance": 650.0, "amount": 650.0, "amountWithdrawal": None,
    "amountProfit": None, "amountOriginal": None, "dueDate": None, "issueDate": None, "purchaseDate": None,
    "rate": None, "rateType": None, "fixedAnnualRate": None, "lastMonthRate": None, "annualRate": None,
    "lastTwelveMonthsRate": None, "status": "ACTIVE", "transactions": None, "metadata": None, "owner": None,
    "institution": None,
}


def test_an_investment_without_quantity_or_cost_is_still_a_position() -> None:
    security, holding = map_investment(valid("PluggyInvestment", INVESTMENT), ITEM)
    assert (security.ticker, security.type, security.close_price) == ("ITUB4", SecurityType.EQUITY, Decimal("32.5"))
    assert (holding.quantity, holding.value, holding.cost_basis, holding.gain) == (Decimal(1), Decimal(650), None,
                                                                                    None)
    assert holding.account_external_id == f"investments-{ITEM}"


def test_trades_signs_and_fees() -> None:
    sale = {"id": "t-1", "type": "SELL", "movementType": "DEBIT", "description": None, "investmentId": "inv",
            "quantity": 10, "value": 33.1, "amount": 331.0, "netAmount": 330.2, "date": "2026-03-09T00:00:00.000Z",
            "tradeDate": "2026-03-06T00:00:00.000Z", "brokerageNumber": None, "agreedRate": None,
            "expenses": {"brokerageFee": 0.5, "incomeTax": 0.3, "serviceTax": None, "other": None,
                         "tradingAssetsNoticeFee": None, "maintenanceFee": None, "settlementFee": None,
                         "clearingFee": None, "stockExchangeFee": None, "custodyFee": None, "operatingFee": None}}
    trade = map_investment_transaction(valid("PluggyInvestmentTransaction", sale), ITEM, "inv", "BRL")
    assert (trade.type, trade.amount, trade.quantity, trade.date) == (
        InvestmentTxnType.SELL, Decimal("330.2"), Decimal(-10), date(2026, 3, 6))
    assert trade.fees == Decimal("0.8")
    tax = map_investment_transaction({**sale, "type": "TAX", "quantity": None, "netAmount": 12.0}, ITEM, "inv", "BRL")
    assert (tax.type, tax.amount, tax.quantity) == (InvestmentTxnType.FEE, Decimal(-12), None)


def test_a_mortgage_with_a_monthly_rate() -> None:
    loan = {"id": "L1", "itemId": ITEM, "contractNumber": "0001234", "ipocCode": None, "productName": "CASA VERDE",
            "type": "FINANCIAMENTO_HABITACIONAL_SFH_IMOBILIARIO", "kind": "FINANCING",
            "date": None, "contractDate": "2020-01-15T00:00:00.000Z", "disbursementDates": None,
            "settlementDate": None, "contractAmount": 300000, "currencyCode": "BRL",
            "dueDate": "2050-01-15T00:00:00.000Z", "installmentPeriodicity": "MONTHLY",
            "installmentPeriodicityAdditionalInfo": None, "firstInstallmentDueDate": "2020-02-15T00:00:00.000Z",
            "CET": None, "amortizationScheduled": "SAC", "amortizationScheduledAdditionalInfo": None,
            "cnpjConsignee": None, "contractedFees": None, "contractedFinanceCharges": None, "warranties": None,
            "interestRates": [{"taxType": "EFFECTIVE", "interestRateType": "COMPOUND", "taxPeriodicity": "MONTHLY",
                               "calculation": None, "referentialRateIndexerType": "PRE_FIXADO",
                               "referentialRateIndexerSubType": None, "referentialRateIndexerAdditionalInfo": None,
                               "preFixedRate": 0.008, "postFixedRate": None, "additionalInfo": None}],
            "installments": {"typeNumberOfInstallments": "MONTH", "totalNumberOfInstallments": 360,
                             "typeContractRemaining": "MONTH", "contractRemainingNumber": 286, "paidInstallments": 74,
                             "dueInstallments": 286, "pastDueInstallments": 1, "balloonPayments": None},
            "payments": {"contractOutstandingBalance": 251000.5, "releases": [
                {"installmentId": "i74", "isOverParcelPayment": False, "paidDate": "2026-03-15T00:00:00.000Z",
                 "currencyCode": "BRL", "paidAmount": 2890.1, "overParcel": None}]}}
    account, liability = map_loan(valid("PluggyLoan", loan), None)
    assert (account.type, account.external_id, account.current_balance) == (AccountType.LOAN, "loan-L1",
                                                                             Decimal("-251000.5"))
    assert liability.kind is LiabilityKind.MORTGAGE and liability.rate_type == "fixed"
    assert liability.interest_rate == Decimal("10.03")  # 0.8 % a month, compounded
    assert (liability.next_payment_date, liability.last_payment_amount, liability.is_overdue) == (
        date(2026, 4, 15), Decimal("2890.1"), True)


def test_a_bill_with_a_credit_asks_for_nothing() -> None:
    card = Account("pluggy", "card-1", ITEM, AccountType.CREDIT_CARD, "Card", "BRL", Decimal(-10))
    bill = {"id": "b1", "dueDate": "2026-03-10T03:00:00.000Z", "billClosingDate": "2026-03-03T03:00:00.000Z",
            "totalAmount": -42.0, "totalAmountCurrencyCode": "BRL", "minimumPaymentAmount": None,
            "allowsInstallments": False, "financeCharges": [], "payments": [], "createdAt": "2026-03-03T03:00:00.000Z",
            "updatedAt": "2026-03-03T03:00:00.000Z"}
    mapped = map_bill(valid("PluggyCreditCardBill", bill), card)
    assert (mapped.total, mapped.is_paid, mapped.due_date, mapped.closing_date) == (
        Decimal(0), True, date(2026, 3, 10), date(2026, 3, 3))


# -- real-world variants ---------------------------------------------------------------------------------------------

CARD_ROW = {
    "id": "6ec156fe-e8ac-4d9a-a4b3-7770529ab01c", "accountId": "03cc0eff-4ec5-495c-adb3-1ef9611624fc",
    "date": "2026-03-04T03:00:00.000Z", "description": "MERCADOLIVRE*MLIVRE PARC 02/05", "descriptionRaw": None,
    "currencyCode": "BRL", "amount": 159.2, "amountInAccountCurrency": None, "balance": 2210.4,
    "category": "Online shopping", "categoryId": "08010000", "type": "DEBIT", "status": "POSTED",
    "providerCode": None, "providerId": None, "operationType": None, "operationTypeAdditionalInfo": None,
    "order": 0, "paymentData": None,
    "merchant": {"name": "Mercado Livre", "businessName": "EBAZAR.COM.BR LTDA", "cnpj": "03007331000141",
                 "cnae": "4789099", "category": "Online shopping"},
    "creditCardMetadata": {"installmentNumber": 2, "totalInstallments": 5, "totalAmount": 796.0,
                           "purchaseDate": "2026-02-04T03:00:00.000Z", "payeeMCC": 5999, "cardNumber": "8670",
                           "billId": "e3d9038c-0cf6-5d10-9820-2615f2d105e5", "billForecastDate": "2026-03"},
    "createdAt": "2026-03-04T09:10:00.000Z", "updatedAt": "2026-03-04T09:10:00.000Z",
}


def _without(obj: dict[str, Any], path: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(obj))
    *parents, key = path.split(".")
    target = copy
    for parent in parents:
        target = target[parent]
    del target[key]
    return copy


@pytest.mark.parametrize(("variant", "row"), [
    ("as sent", CARD_ROW),
    ("acquirerData null", {**CARD_ROW, "acquirerData": None}),
    ("providerId a string", {**CARD_ROW, "providerId": "7F3A99D1C2B4E5F6"}),
    ("balance null", {**CARD_ROW, "balance": None}),
    ("billId absent", _without(CARD_ROW, "creditCardMetadata.billId")),
    ("purchaseDate absent", _without(CARD_ROW, "creditCardMetadata.purchaseDate")),
    ("merchant.category absent", _without(CARD_ROW, "merchant.category")),
    ("payeeMCC a string", {**CARD_ROW, "creditCardMetadata": {**CARD_ROW["creditCardMetadata"], "payeeMCC": "742"}}),
])
def test_each_real_world_variant_maps(variant: str, row: dict[str, Any]) -> None:
    card = Account("pluggy", CARD_ROW["accountId"], ITEM, AccountType.CREDIT_CARD, "Card", "BRL", Decimal(0))
    mapped = map_transaction(row, card)
    assert (mapped.amount, mapped.booked_date, mapped.merchant, mapped.installment_number) == (
        Decimal("-159.2"), date(2026, 3, 4), "Mercado Livre", 2)
    assert mapped.bill_id == (None if variant == "billId absent" else "e3d9038c-0cf6-5d10-9820-2615f2d105e5")
    assert mapped.authorized_date == (None if variant == "purchaseDate absent" else date(2026, 2, 4))
    assert mapped.merchant_category_code == ("0742" if variant == "payeeMCC a string" else "5999")


def test_the_emulator_sends_every_variant_sometimes(emulator: PluggyEmulator, provider: PluggyProvider) -> None:
    _, accounts = connect(provider)
    rows = [row for account in accounts for page in provider.client.transaction_pages(account.external_id)
            for row in page]
    raw = [json.loads(r) for r in _raw_rows(emulator, accounts)]
    assert len(raw) == len(rows)
    seen = {
        "acquirerData null": any("acquirerData" in r and r["acquirerData"] is None for r in raw),
        "providerId a string": any(isinstance(r["providerId"], str) for r in raw),
        "balance null": any(r["balance"] is None for r in raw),
        "billId absent": any(r["creditCardMetadata"] and "billId" not in r["creditCardMetadata"] for r in raw),
        "purchaseDate absent": any(r["creditCardMetadata"] and "purchaseDate" not in r["creditCardMetadata"]
                                   for r in raw),
        "merchant.category absent": any(r["merchant"] and "category" not in r["merchant"] for r in raw),
        "BILL_INSTALLMENT": any((r["creditCardMetadata"] or {}).get("otherCreditsType") == "BILL_INSTALLMENT"
                                for r in raw),
    }
    assert all(seen.values()), seen
    assert sum("acquirerData" in r for r in raw) < len(raw) / 3  # sometimes, not always
    again = [json.loads(r) for r in _raw_rows(emulator, accounts)]
    assert again == raw  # seeded: a row looks the same on every read


def _raw_rows(emulator: PluggyEmulator, accounts: list[Any]) -> list[str]:
    out = []
    with httpx.Client(base_url="https://api.pluggy.ai", transport=emulator.transport()) as client:
        client.headers["X-API-KEY"] = client.post("/auth", json={"clientId": "a", "clientSecret": "b"}).json()[
            "apiKey"]
        for account in accounts:
            query: str | None = f"?accountId={account.external_id}"
            while query:
                page = client.get(f"/v2/transactions{query}").json()
                out += [json.dumps(r, sort_keys=True) for r in page["results"]]
                query = page["next"]
    return out


# -- webhooks: exactly the ids they name ----------------------------------------------------------------------------

def _event(kind: str, **payload: Any) -> WebhookEvent:
    body = {"event": kind, "eventId": f"e-{kind}", "itemId": ITEM, **payload}
    return webhooks.parse(json.dumps(body).encode(), datetime(2026, 3, 10, tzinfo=UTC))


def test_transaction_events_plan_exactly_what_they_name() -> None:
    ids = ["6ec156fe-e8ac-4d9a-a4b3-7770529ab01c", "05c693bf-6f9e-4d5e-8e2b-1b7d8f0a9c33"]
    updated = webhooks.plan(_event("transactions/updated", accountId="acc-1", transactionIds=ids))
    assert updated.sync and webhooks.read_refetch(updated.refetch)[0] == {"acc-1": ids}
    deleted = webhooks.plan(_event("transactions/deleted", accountId="acc-1", transactionIds=ids))
    assert deleted.removed == tuple(ids) and webhooks.read_refetch(deleted.refetch)[:2] == ({}, {})
    created = webhooks.plan(_event("transactions/created", accountId="acc-1", transactionsCount=3,
                                   transactionsCreatedAtFrom="2026-03-10T12:00:00.000Z",
                                   createdTransactionsLink="https://api.pluggy.ai/v2/transactions?accountId=acc-1"))
    assert webhooks.read_refetch(created.refetch)[1] == {"acc-1": datetime(2026, 3, 10, 12, tzinfo=UTC)}
    bare = webhooks.plan(_event("transactions/updated", transactionIds=ids))  # no account: a whole sync
    assert bare.sync and bare.refetch == ()
    hostile = webhooks.plan(_event("transactions/updated", accountId="acc:1", transactionIds=ids))
    assert hostile.refetch == ()  # an account id that could forge entries is not trusted to target anything


def test_emulator_webhooks_lead_to_fetching_exactly_their_rows(emulator: PluggyEmulator,
                                                               provider: PluggyProvider) -> None:
    emulator._preset_webhook("http://127.0.0.1:1/hook", {})
    state, accounts = connect(provider)
    first = provider.fetch_transactions(state.external_id, accounts, None)
    emulator._outbox.clear()
    emulator.advance(days=40)  # a bill closes: its rows get their billId (updated); pending rows post (deleted)
    plans = [webhooks.plan(webhooks.parse(e["body"].encode(), START)) for e in emulator.pending_webhooks()
             if e["event"].startswith("transactions/")]
    refetch = [entry for p in plans for entry in p.refetch]
    updated_ids = {i for ids in webhooks.read_refetch(refetch)[0].values() for i in ids}
    assert updated_ids and any(p.removed for p in plans)
    state, accounts = provider.fetch_connection(state.external_id)
    before = len(emulator.request_log)
    changes = provider.fetch_transactions(state.external_id, accounts, first.cursor, refetch=refetch)
    sent = emulator.request_log[before:]
    assert changes.cursor == first.cursor and changes.windows == []
    fetched = {t.external_id for t in changes.upserts}
    assert updated_ids <= fetched
    id_requests = [p for _, p in sent if "ids=" in p]
    assert id_requests and all(p.split("ids=")[1].split("&")[0].count("%2C") < MAX_IDS for p in id_requests)
    assert all("dateFrom" not in p for _, p in sent)  # no window re-read
    assert any(t.bill_id for t in changes.upserts)


def test_more_than_500_ids_go_in_several_requests(emulator: PluggyEmulator, provider: PluggyProvider) -> None:
    state, accounts = connect(provider)
    first = provider.fetch_transactions(state.external_id, accounts, None)
    checking = next(a for a in accounts if a.type is AccountType.CHECKING)
    ids = [t.external_id for t in first.upserts if t.account_external_id == checking.external_id]
    assert len(ids) > MAX_IDS
    before = len(emulator.request_log)
    changes = provider.fetch_transactions(state.external_id, accounts, first.cursor,
                                          refetch=webhooks.refetch_ids(checking.external_id, ids))
    requests = [p for _, p in emulator.request_log[before:] if p.startswith("/v2/transactions")]
    assert len(requests) == -(-len(ids) // MAX_IDS)
    assert sorted(t.external_id for t in changes.upserts) == sorted(ids)


def test_an_account_new_here_needs_the_whole_fetch(provider: PluggyProvider) -> None:
    state, accounts = connect(provider)
    changes = provider.fetch_transactions(state.external_id, accounts, None,
                                          refetch=webhooks.refetch_ids(accounts[0].external_id, ["x"]))
    assert changes.windows and changes.rows > 100  # no cursor yet: everything was read


# -- the minimum update interval -------------------------------------------------------------------------------------

def test_a_refresh_inside_the_minimum_interval_says_when_and_is_not_retried() -> None:
    emulator = PluggyEmulator(clock=Clock(start=START), min_update_hours=12)
    client = PluggyClient("a", "b", transport=emulator.transport(), sleep=lambda _s: None, now=emulator.clock.now)
    provider = PluggyProvider(client, now=emulator.clock.now)
    state, _ = connect(provider)
    before = len(emulator.request_log)
    with pytest.raises(UpdateTooSoon) as info:
        provider.refresh(state.external_id)
    patches = [p for m, p in emulator.request_log[before:] if m == "PATCH"]
    assert len(patches) == 1  # asked once, never in a loop
    assert info.value.allowed_at == state.last_updated_at + timedelta(hours=12)
    assert f"{info.value.allowed_at:%Y-%m-%d %H:%M} UTC" in info.value.message
    assert provider.min_sync_interval() == timedelta(hours=12)  # learned from Pluggy's answer (above its 8 h)
    emulator.advance(hours=13)
    assert provider.refresh(state.external_id).status.value in ("syncing", "active")


# -- a direct connector retired in favour of Open Finance ------------------------------------------------------------

def test_a_retiring_direct_connection_points_to_open_finance_and_its_accounts_continue(
        emulator: PluggyEmulator, provider: PluggyProvider) -> None:
    plain, _ = connect(provider)
    assert plain.successor_institution_id is None
    old, old_accounts = connect(provider, connector=1)
    assert old.successor_institution_id == "2"
    assert old.status.value == "active"  # it still works until Pluggy turns it off
    assert [i.id for i in provider.institutions() if i.id in ("1", "2")] == ["1", "2"]
    emulator.advance(days=2)
    new, new_accounts = connect(provider, connector=2)
    assert new.successor_institution_id is None
    pairs = provider.match_accounts(old_accounts, new_accounts)
    assert len(pairs) == len(old_accounts) == len(new_accounts)
    for new_id, old_id in pairs.items():
        assert next(a for a in new_accounts if a.external_id == new_id).type == next(
            a for a in old_accounts if a.external_id == old_id).type
    old_rows = provider.fetch_transactions(old.external_id, old_accounts, None).upserts
    new_rows = provider.fetch_transactions(new.external_id, new_accounts, None).upserts
    assert not {t.external_id for t in old_rows} & {t.external_id for t in new_rows}  # other ids, same history
    assert min(t.booked_date for t in new_rows) == min(t.booked_date for t in old_rows)


def test_reconnecting_through_open_finance_continues_the_history_in_the_store(
        emulator: PluggyEmulator, provider: PluggyProvider, sync: SyncEngine, engine: sa.Engine) -> None:
    old = provider.wait_until_settled(provider.create_connection("1", {"user": "user-ok", "password": "password-ok"}
                                                                 ).external_id, sleep=lambda _s: None)
    old_id = sync.register(old)
    assert sync.sync_connection(old_id).outcome == "success"
    emulator.advance(days=1)
    new = provider.wait_until_settled(provider.create_connection("2", {"user": "user-ok", "password": "password-ok"}
                                                                 ).external_id, sleep=lambda _s: None)
    result = sync.sync_connection(sync.register(new))
    assert result.outcome == "success" and "continue the retired connection's history" in result.message
    with engine.connect() as conn:
        links = conn.execute(sa.text(
            "SELECT o.type AS old_type, n.type AS new_type FROM account_links l "
            "JOIN accounts o ON o.id = l.old_account_id JOIN accounts n ON n.id = l.new_account_id")).all()
        successor = conn.execute(sa.text("SELECT successor_institution_id FROM connections WHERE id = :id"),
                                 {"id": old_id}).scalar()
    assert successor == "2"
    assert sorted((r.old_type, r.new_type) for r in links) == [  # investments and the financing continue too
        ("checking", "checking"), ("credit_card", "credit_card"), ("investment", "investment"), ("loan", "loan")]


def test_hostile_portfolio_answers_fail_their_resource_only(emulator: PluggyEmulator) -> None:
    """An investment with a balance that is not a number, a loan list that is not a list: each resource fails on
    its own with a message, nothing half-mapped comes back, and the bills still do."""
    inner = emulator.transport()

    def handle(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        if request.url.path == "/investments":
            body = json.loads(response.read())
            body["results"][0]["balance"] = '=HYPERLINK("http://evil")'
            return httpx.Response(200, json=body)
        if request.url.path == "/loans":
            return httpx.Response(200, json={"page": 1, "total": 1, "totalPages": 1, "results": "nope"})
        return response

    client = PluggyClient("a", "b", transport=httpx.MockTransport(handle), sleep=lambda _s: None,
                          now=emulator.clock.now)
    provider = PluggyProvider(client, now=emulator.clock.now)
    state, accounts = connect(provider)
    portfolio = provider.fetch_portfolio(state.external_id, accounts, since=None)
    assert sorted(f.resource for f in portfolio.failures) == ["investments", "liabilities"]
    assert all(f.message and f.code in ("BAD_AMOUNT", "BAD_PAGE") for f in portfolio.failures)
    assert portfolio.holdings == [] and portfolio.securities == [] and portfolio.bills


@pytest.mark.parametrize("since", ["not-a-date", None, 12])
def test_a_created_event_without_a_readable_instant_asks_for_a_whole_sync(since: Any) -> None:
    plan = webhooks.plan(_event("transactions/created", accountId="acc-1", transactionsCreatedAtFrom=since))
    assert plan.sync and plan.refetch == ()
