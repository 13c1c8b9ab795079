"""The Plaid emulator read by Plaid's newest official client (plaid-python 46.0.0, built from API 1.778.0): every answer
we serve, and every webhook we send, must deserialize into the client's models, whose required fields are those of
the newest API (an institution's `connection_availability`, a security's `figi`, …).

The client talks to the emulator over loopback (127.0.0.1), exactly as it talks to sandbox.plaid.com.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import plaid
import pytest
from plaid.api import plaid_api
from plaid.model.accounts_balance_get_request import AccountsBalanceGetRequest
from plaid.model.accounts_get_request import AccountsGetRequest
from plaid.model.country_code import CountryCode
from plaid.model.custom_sandbox_transaction import CustomSandboxTransaction
from plaid.model.default_update_webhook import DefaultUpdateWebhook
from plaid.model.holdings_default_update_webhook import HoldingsDefaultUpdateWebhook
from plaid.model.institutions_get_by_id_request import InstitutionsGetByIdRequest
from plaid.model.institutions_get_by_id_request_options import InstitutionsGetByIdRequestOptions
from plaid.model.institutions_search_request import InstitutionsSearchRequest
from plaid.model.institutions_search_request_options import InstitutionsSearchRequestOptions
from plaid.model.investments_default_update_webhook import InvestmentsDefaultUpdateWebhook
from plaid.model.investments_holdings_get_request import InvestmentsHoldingsGetRequest
from plaid.model.investments_transactions_get_request import InvestmentsTransactionsGetRequest
from plaid.model.investments_transactions_get_request_options import InvestmentsTransactionsGetRequestOptions
from plaid.model.item_error_webhook import ItemErrorWebhook
from plaid.model.item_get_request import ItemGetRequest
from plaid.model.item_login_repaired_webhook import ItemLoginRepairedWebhook
from plaid.model.item_public_token_exchange_request import ItemPublicTokenExchangeRequest
from plaid.model.item_remove_request import ItemRemoveRequest
from plaid.model.item_webhook_update_request import ItemWebhookUpdateRequest
from plaid.model.liabilities_default_update_webhook import LiabilitiesDefaultUpdateWebhook
from plaid.model.liabilities_get_request import LiabilitiesGetRequest
from plaid.model.link_token_create_request import LinkTokenCreateRequest
from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
from plaid.model.link_token_transactions import LinkTokenTransactions
from plaid.model.new_accounts_available_webhook import NewAccountsAvailableWebhook
from plaid.model.pending_disconnect_webhook import PendingDisconnectWebhook
from plaid.model.personal_finance_category_version import PersonalFinanceCategoryVersion
from plaid.model.plaid_error import PlaidError
from plaid.model.products import Products
from plaid.model.recurring_transactions_update_webhook import RecurringTransactionsUpdateWebhook
from plaid.model.sandbox_item_fire_webhook_request import SandboxItemFireWebhookRequest
from plaid.model.sandbox_item_reset_login_request import SandboxItemResetLoginRequest
from plaid.model.sandbox_public_token_create_request import SandboxPublicTokenCreateRequest
from plaid.model.sandbox_public_token_create_request_options import SandboxPublicTokenCreateRequestOptions
from plaid.model.sandbox_public_token_create_request_options_transactions import (
    SandboxPublicTokenCreateRequestOptionsTransactions,
)
from plaid.model.sandbox_transactions_create_request import SandboxTransactionsCreateRequest
from plaid.model.sync_updates_available_webhook import SyncUpdatesAvailableWebhook
from plaid.model.transactions_recurring_get_request import TransactionsRecurringGetRequest
from plaid.model.transactions_recurring_get_request_options import TransactionsRecurringGetRequestOptions
from plaid.model.transactions_sync_request import TransactionsSyncRequest
from plaid.model.transactions_sync_request_options import TransactionsSyncRequestOptions
from plaid.model.user_account_revoked_webhook import UserAccountRevokedWebhook
from plaid.model.user_permission_revoked_webhook import UserPermissionRevokedWebhook
from plaid.model.webhook_type import WebhookType
from plaid.model.webhook_update_acknowledged_webhook import WebhookUpdateAcknowledgedWebhook
from plaid.model.webhook_verification_key_get_request import WebhookVerificationKeyGetRequest
from plaid.model_utils import validate_and_convert_types

from finance.providers.plaid.sandbox import PlaidEmulator
from finance.sandbox.common import Clock
from finance.sandbox.ledger import stable_uuid
from tests.conftest import START

HOOK = "https://example.com/plaid/hook"
WEBHOOK_MODELS: dict[tuple[str, str], type] = {
    ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE"): SyncUpdatesAvailableWebhook,
    ("TRANSACTIONS", "DEFAULT_UPDATE"): DefaultUpdateWebhook,
    ("TRANSACTIONS", "RECURRING_TRANSACTIONS_UPDATE"): RecurringTransactionsUpdateWebhook,
    ("ITEM", "ERROR"): ItemErrorWebhook,
    ("ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED"): WebhookUpdateAcknowledgedWebhook,
    ("ITEM", "PENDING_DISCONNECT"): PendingDisconnectWebhook,
    ("ITEM", "USER_PERMISSION_REVOKED"): UserPermissionRevokedWebhook,
    ("ITEM", "USER_ACCOUNT_REVOKED"): UserAccountRevokedWebhook,
    ("ITEM", "NEW_ACCOUNTS_AVAILABLE"): NewAccountsAvailableWebhook,
    ("ITEM", "LOGIN_REPAIRED"): ItemLoginRepairedWebhook,
    ("HOLDINGS", "DEFAULT_UPDATE"): HoldingsDefaultUpdateWebhook,
    ("INVESTMENTS_TRANSACTIONS", "DEFAULT_UPDATE"): InvestmentsDefaultUpdateWebhook,
    ("LIABILITIES", "DEFAULT_UPDATE"): LiabilitiesDefaultUpdateWebhook,
}
"""Every webhook the emulator sends, with the official model it must read as."""


class Official:
    """The official client pointed at a served emulator."""

    def __init__(self, emulator: PlaidEmulator, base_url: str) -> None:
        self.emulator = emulator
        self.configuration = plaid.Configuration(host=base_url, api_key={"clientId": "test-client",
                                                                         "secret": "test-secret"})
        self.api = plaid_api.PlaidApi(plaid.ApiClient(self.configuration))

    def item(self, username: str = "user_good", password: str = "pass_good", *, webhook: str | None = HOOK,
             institution: str = "ins_109508", **options: Any) -> tuple[str, str]:
        """(access_token, item_id) of a new sandbox Item."""
        extra = {"webhook": webhook} if webhook else {}
        created = self.api.sandbox_public_token_create(SandboxPublicTokenCreateRequest(
            institution_id=institution, initial_products=[Products("transactions")],
            options=SandboxPublicTokenCreateRequestOptions(
                override_username=username, override_password=password,
                transactions=SandboxPublicTokenCreateRequestOptionsTransactions(days_requested=730), **extra),
            **options))
        exchanged = self.api.item_public_token_exchange(ItemPublicTokenExchangeRequest(
            public_token=created.public_token))
        return exchanged.access_token, exchanged.item_id

    def webhook(self, payload: dict[str, Any]) -> Any:
        """A sent webhook read as its official model."""
        model = WEBHOOK_MODELS[(payload["webhook_type"], payload["webhook_code"])]
        return validate_and_convert_types(payload, (model,), ["webhook"], True, True,
                                          configuration=self.configuration)

    def error(self, call: Any) -> Any:
        """The PlaidError a failing call answers, read as the official model."""
        with pytest.raises(plaid.ApiException) as failure:
            call()
        body = json.loads(failure.value.body)
        return validate_and_convert_types(body, (PlaidError,), ["error"], True, True,
                                          configuration=self.configuration)


@pytest.fixture
def official() -> Iterator[Official]:
    emulator = PlaidEmulator(clock=Clock(start=START), seed=7)  # data varies with time: fixed, so is every test
    with emulator.serve() as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        yield Official(emulator, server.base_url)


def test_institutions_have_the_fields_the_newest_api_requires(official: Official) -> None:
    options = InstitutionsGetByIdRequestOptions(include_optional_metadata=True, include_status=True,
                                                include_auth_metadata=True, include_payment_initiation_metadata=True)
    one = official.api.institutions_get_by_id(InstitutionsGetByIdRequest(
        institution_id="ins_109508", country_codes=[CountryCode("US")], options=options)).institution
    assert (one.name, one.connection_availability.value) == ("First Platypus Bank", "SUPPORTED")
    assert one.status.item_logins.status == "HEALTHY"
    plain = official.api.institutions_get_by_id(InstitutionsGetByIdRequest(
        institution_id="ins_109512", country_codes=[CountryCode("US")])).institution
    assert plain.routing_numbers and plain.connection_availability.value == "SUPPORTED"
    found = official.api.institutions_search(InstitutionsSearchRequest(
        query="bank", country_codes=[CountryCode("US")], products=[Products("transactions")],
        options=InstitutionsSearchRequestOptions(include_optional_metadata=True))).institutions
    assert {i.institution_id for i in found} >= {"ins_109508", "ins_109511", "ins_109512"}
    assert all(i.connection_availability.value == "SUPPORTED" for i in found)
    error = official.error(lambda: official.api.institutions_get_by_id(InstitutionsGetByIdRequest(
        institution_id="ins_nope", country_codes=[CountryCode("US")])))
    assert error.error_code == "INVALID_INSTITUTION"


def test_link_items_and_accounts(official: Official) -> None:
    api = official.api
    link = api.link_token_create(LinkTokenCreateRequest(
        client_name="Open Finance dashboard", language="en", country_codes=[CountryCode("US")],
        user=LinkTokenCreateRequestUser(client_user_id="user-1"), products=[Products("transactions")],
        additional_consented_products=[Products("investments"), Products("liabilities")], webhook=HOOK,
        transactions=LinkTokenTransactions(days_requested=730)))
    assert link.link_token.startswith("link-sandbox-") and link.expiration
    for_user = api.link_token_create(LinkTokenCreateRequest(
        client_name="Open Finance dashboard", language="en", country_codes=[CountryCode("US")],
        user_id="usr_9nSp2KuZ2x4JDw", products=[Products("transactions")]))  # the newer user APIs
    assert for_user.link_token != link.link_token
    token, item_id = official.item()
    update = api.link_token_create(LinkTokenCreateRequest(
        client_name="Open Finance dashboard", language="en", country_codes=[CountryCode("US")],
        user=LinkTokenCreateRequestUser(client_user_id="user-1"), access_token=token))
    assert update.link_token.startswith("link-sandbox-")
    got = api.item_get(ItemGetRequest(access_token=token))
    assert got.item.item_id == item_id and got.item.webhook == HOOK and got.status.transactions
    accounts = api.accounts_get(AccountsGetRequest(access_token=token)).accounts
    subtypes = {a.subtype.value for a in accounts}
    assert {"checking", "credit card", "brokerage", "ira", "student", "mortgage", "installment"} <= subtypes
    assert any(a.get("persistent_account_id") for a in accounts) and not all(
        a.get("persistent_account_id") for a in accounts)
    live = api.accounts_balance_get(AccountsBalanceGetRequest(access_token=token)).accounts
    assert [a.account_id for a in live] == [a.account_id for a in accounts]
    moved = api.item_webhook_update(ItemWebhookUpdateRequest(access_token=token, webhook=HOOK + "/2")).item
    assert moved.webhook == HOOK + "/2"
    api.item_remove(ItemRemoveRequest(access_token=token))
    assert official.error(lambda: api.item_get(ItemGetRequest(access_token=token))).error_code == "ITEM_NOT_FOUND"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_sync_page_and_the_recurring_streams(official: Official, version: str) -> None:
    token, _ = official.item()
    rows, cursor, pages = [], "", 0
    while True:
        page = official.api.transactions_sync(TransactionsSyncRequest(
            access_token=token, cursor=cursor, count=250, options=TransactionsSyncRequestOptions(
                include_original_description=True,
                personal_finance_category_version=PersonalFinanceCategoryVersion(version))))
        rows += page.added + page.modified
        cursor, pages = page.next_cursor, pages + 1
        if not page.has_more:
            break
    assert pages > 1 and rows
    assert {r.personal_finance_category.version.value for r in rows} == {version}
    detailed = {r.personal_finance_category.detailed for r in rows}
    assert ("INCOME_SALARY" in detailed) == (version == "v2") and ("INCOME_WAGES" in detailed) == (version == "v1")
    assert any(r.merchant_category_code == "5411" for r in rows)  # groceries
    wired = [c for r in rows for c in r.counterparties if c.get("account_numbers")]
    assert wired and all((c.account_numbers.bacs.account, c.account_numbers.bacs.sort_code) == ("55555555", "202015")
                         for c in wired)
    recurring = official.api.transactions_recurring_get(TransactionsRecurringGetRequest(
        access_token=token, options=TransactionsRecurringGetRequestOptions(
            personal_finance_category_version=PersonalFinanceCategoryVersion(version))))
    assert recurring.inflow_streams and recurring.outflow_streams
    streams = recurring.inflow_streams + recurring.outflow_streams
    assert {s.personal_finance_category.version.value for s in streams} == {version}
    known = {r.transaction_id for r in rows}
    assert all(set(s.transaction_ids) <= known for s in streams)


def test_investments_holdings_and_paged_transactions(official: Official) -> None:
    token, _ = official.item()
    held = official.api.investments_holdings_get(InvestmentsHoldingsGetRequest(access_token=token))
    assert {a.subtype.value for a in held.accounts} == {"ira", "401k", "brokerage"}
    by_account: dict[str, float] = {}
    for holding in held.holdings:
        by_account[holding.account_id] = by_account.get(holding.account_id, 0.0) + holding.institution_value
        assert holding.institution_value == pytest.approx(holding.quantity * holding.institution_price, abs=0.01)
    for account in held.accounts:  # (`account.balances` itself raises: the client's composed InvestmentAccount
        # compares its AccountBalance with its InvestmentAccountBalance, even on Plaid's own example answer)
        balance = account.to_dict()["balances"]
        assert by_account[account.account_id] == pytest.approx(balance["current"], abs=0.05)
        assert balance["margin_loan_amount"] in (None, 0.0) and balance["available"] is None
    securities = {s.security_id: s for s in held.securities}
    assert {h.security_id for h in held.holdings} == set(securities)
    assert {s.type for s in securities.values()} >= {"etf", "equity", "cash", "mutual fund", "fixed income"}
    today = official.emulator.clock.now().date()
    seen, offset, total = [], 0, None
    while total is None or offset < total:
        page = official.api.investments_transactions_get(InvestmentsTransactionsGetRequest(
            access_token=token, start_date=today - timedelta(days=730), end_date=today + timedelta(days=1),
            options=InvestmentsTransactionsGetRequestOptions(count=40, offset=offset)))
        total = page.total_investment_transactions
        seen += page.investment_transactions
        offset += len(page.investment_transactions)
        assert {t.security_id for t in page.investment_transactions if t.security_id} <= {
            s.security_id for s in page.securities}
    assert len(seen) == total == len({t.investment_transaction_id for t in seen}) and total > 40
    assert {t.type.value for t in seen} >= {"buy", "cash", "fee"}
    lonely = official.item("user_transactions_dynamic", "any")[0]
    error = official.error(lambda: official.api.investments_holdings_get(InvestmentsHoldingsGetRequest(
        access_token=lonely)))
    assert error.error_code == "NO_INVESTMENT_ACCOUNTS"


def test_liabilities_card_student_mortgage_and_installment_loan(official: Official) -> None:
    token, _ = official.item()
    answer = official.api.liabilities_get(LiabilitiesGetRequest(access_token=token))
    liabilities = answer.liabilities
    (card,), (student,), (mortgage,), (loan,) = (liabilities.credit, liabilities.student, liabilities.mortgage,
                                                 liabilities.loan)
    assert {a.apr_type for a in card.aprs} == {"purchase_apr", "cash_apr", "balance_transfer_apr"}
    assert student.interest_rate_percentage == 5.5 and student.next_payment_due_date
    assert mortgage.interest_rate.percentage == 6.125 and mortgage.property_address.city
    assert loan.payment_frequency.value == "monthly" and loan.loan_term_months == 36
    installment = next(a for a in answer.accounts if a.account_id == loan.account_id)
    assert installment.subtype.value == "installment" and loan.principal_balance == installment.balances.current


def test_webhooks_and_sandbox_endpoints(official: Official) -> None:
    api, emulator = official.api, official.emulator
    token, item_id = official.item(user_id="usr_9nSp2KuZ2x4JDw")
    api.transactions_sync(TransactionsSyncRequest(access_token=token))
    error = official.error(lambda: api.sandbox_item_fire_webhook(SandboxItemFireWebhookRequest(
        access_token=token, webhook_type=WebhookType("HOLDINGS"), webhook_code="DEFAULT_UPDATE")))
    assert error.error_code == "SANDBOX_PRODUCT_NOT_ENABLED"  # until the Item has investments
    api.investments_holdings_get(InvestmentsHoldingsGetRequest(access_token=token))
    api.liabilities_get(LiabilitiesGetRequest(access_token=token))
    products = api.item_get(ItemGetRequest(access_token=token)).item.billed_products
    assert {p.value for p in products} == {"transactions", "investments", "liabilities"}
    for (kind, code) in WEBHOOK_MODELS:
        if (kind, code) not in (("ITEM", "ERROR"), ("ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED"),
                                ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")):
            assert api.sandbox_item_fire_webhook(SandboxItemFireWebhookRequest(
                access_token=token, webhook_type=WebhookType(kind), webhook_code=code)).webhook_fired
    assert api.sandbox_item_reset_login(SandboxItemResetLoginRequest(access_token=token)).reset_login
    api.item_webhook_update(ItemWebhookUpdateRequest(access_token=token, webhook=HOOK))
    emulator.advance(days=1)
    sent = [w["payload"] for w in emulator.sent_webhooks(item_id)]
    kinds = {(p["webhook_type"], p["webhook_code"]) for p in sent}
    assert kinds == set(WEBHOOK_MODELS) - {("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")}  # no refresh while broken
    for payload in sent:
        model = official.webhook(payload)
        assert model.item_id == item_id and payload["user_id"] == "usr_9nSp2KuZ2x4JDw"
    kid = stable_uuid(emulator.seed, "webhook-verification-key")
    key = api.webhook_verification_key_get(WebhookVerificationKeyGetRequest(key_id=kid)).key
    assert (key.kid, key.alg, key.crv, key.expired_at) == (kid, "ES256", "P-256", None)
    dynamic, _ = official.item("user_transactions_dynamic", "any")
    today = emulator.clock.now().date()
    api.sandbox_transactions_create(SandboxTransactionsCreateRequest(access_token=dynamic, transactions=[
        CustomSandboxTransaction(date_transacted=today, date_posted=today, amount=12.34,
                                 description="Coffee shop")]))
    error = official.error(lambda: api.transactions_sync(TransactionsSyncRequest(access_token=token)))
    assert (error.error_type.value, error.error_code) == ("ITEM_ERROR", "ITEM_LOGIN_REQUIRED")
