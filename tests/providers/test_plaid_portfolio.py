"""Plaid's investments, liabilities, v2 categories and the variants real answers show, mapped into the model."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from finance.categories import UNCATEGORIZED
from finance.errors import BadData
from finance.model import Account, AccountType, InvestmentTxnType, LiabilityKind, LoanPayment, SecurityType
from finance.providers.plaid import webhooks as plaid_webhooks
from finance.providers.plaid.mapping import map_account, map_category, map_legacy_category, map_transaction
from finance.providers.plaid.portfolio import (
    investment_type,
    map_holding,
    map_investment_transaction,
    map_liabilities,
    map_security,
)
from finance.providers.webhook import PORTFOLIO, WebhookEvent

D = Decimal
ITEM = "item-1"


def account(external_id: str, kind: AccountType, subtype: str, balance: str, name: str = "Account") -> Account:
    return Account("plaid", external_id, ITEM, kind, name, "USD", D(balance), subtype=subtype)


def transaction(**overrides: Any) -> dict[str, Any]:
    raw = {"transaction_id": "t1", "account_id": "acc", "amount": 12.5, "iso_currency_code": "USD",
           "unofficial_currency_code": None, "date": "2026-11-02", "pending": False, "name": "WHOLEFDS BKN",
           "merchant_name": "Whole Foods", "payment_channel": "in store", "datetime": "2026-11-02T15:00:00Z",
           "personal_finance_category": {"primary": "FOOD_AND_DRINK", "detailed": "FOOD_AND_DRINK_GROCERIES",
                                         "confidence_level": "VERY_HIGH", "version": "v2"},
           "counterparties": [{"name": "Whole Foods", "type": "merchant", "entity_id": "ent1", "logo_url": None,
                               "website": "wholefoodsmarket.com", "confidence_level": "VERY_HIGH"}],
           "location": {"store_number": None}, "merchant_category_code": "5411"}
    raw.update(overrides)
    return raw


CHECKING = account("acc", AccountType.CHECKING, "checking", "100.00")


# -- categories: v2, v1 and the legacy hierarchy ---------------------------------------------------------------------

@pytest.mark.parametrize(("primary", "detailed", "expected"), [
    ("INCOME", "INCOME_SALARY", "income.salary"),  # v2
    ("INCOME", "INCOME_WAGES", "income.salary"),  # v1, still understood
    ("INCOME", "INCOME_MILITARY", "income.salary"),
    ("INCOME", "INCOME_GIG_ECONOMY", "income"),
    ("INCOME", "INCOME_LONG_TERM_DISABILITY", "income.benefits"),
    ("INCOME", "INCOME_OTHER", "income.other"),
    ("INCOME", "INCOME_OTHER_INCOME", "income.other"),
    ("LOAN_DISBURSEMENTS", "LOAN_DISBURSEMENTS_PERSONAL", "transfer"),  # borrowed money is not income
    ("LOAN_DISBURSEMENTS", "LOAN_DISBURSEMENTS_A_NEW_ONE", "transfer"),
    ("LOAN_PAYMENTS", "LOAN_PAYMENTS_BNPL", "transfer.loan_payment"),
    ("LOAN_PAYMENTS", "LOAN_PAYMENTS_PERSONAL_LOAN_PAYMENT", "transfer.loan_payment"),
    ("LOAN_PAYMENTS", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT", "transfer.credit_card_payment"),
    ("TRANSFER_IN", "TRANSFER_IN_TRANSFER_IN_FROM_APPS", "people"),
    ("TRANSFER_OUT", "TRANSFER_OUT_TRANSFER_OUT_FROM_APPS", "people"),
    ("TRANSFER_IN", "TRANSFER_IN_WIRE", "transfer.own_accounts"),
    ("TRANSFER_OUT", "TRANSFER_OUT_CRYPTO", "transfer.investment"),
    ("GOVERNMENT_AND_NON_PROFIT", "GOVERNMENT_AND_NON_PROFIT_TAX_PAYMENT", "taxes"),
    ("BANK_FEES", "BANK_FEES_LATE_FEES", "fees"),
    ("GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_TOBACCO_AND_VAPE", "shopping"),
])
def test_v2_and_v1_categories(primary: str, detailed: str, expected: str) -> None:
    assert map_category(primary, detailed) == expected


@pytest.mark.parametrize(("hierarchy", "expected"), [
    (["Food and Drink", "Restaurants", "Coffee Shop"], "food.restaurants"),
    (["Shops", "Supermarkets and Groceries"], "food.groceries"),
    (["Shops", "Something New"], "shopping"),
    (["Transfer", "Payroll"], "income.salary"),
    (["Payment", "Credit Card"], "transfer.credit_card_payment"),
    (["Unheard Of"], UNCATEGORIZED),
    ([], UNCATEGORIZED), (None, UNCATEGORIZED), ("Food and Drink", UNCATEGORIZED), ([1, 2], UNCATEGORIZED),
])
def test_legacy_categories(hierarchy: Any, expected: str) -> None:
    assert map_legacy_category(hierarchy) == expected


def test_the_personal_finance_category_wins_over_the_legacy_one() -> None:
    legacy = {"category": ["Travel", "Taxi"], "category_id": "22016000"}
    assert map_transaction(transaction(**legacy), CHECKING).category == "food.groceries"
    alone = map_transaction(transaction(personal_finance_category=None, **legacy), CHECKING)
    assert (alone.category, alone.provider_category) == ("transport.rideshare", None)
    assert map_transaction(transaction(personal_finance_category=None), CHECKING).category == UNCATEGORIZED


# -- the variants real answers show ------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    {"category": ["Shops", "Supermarkets and Groceries"], "category_id": "19047000"},
    {"counterparties": [{"name": "Whole Foods", "type": "merchant", "entity_id": "e", "logo_url": None,
                         "website": None, "confidence_level": "HIGH", "phone_number": "+18005551234"}]},
    {"counterparties": [{"name": "Whole Foods", "type": "merchant", "entity_id": None, "logo_url": None,
                         "website": None, "confidence_level": "LOW"}]},
    {"datetime": None},
    {"location": {"store_number": "02912", "city": "Brooklyn"}},
    {"location": {"store_number": 2912}},
])
def test_each_variant_maps_like_the_plain_row(overrides: dict[str, Any]) -> None:
    plain = map_transaction(transaction(), CHECKING)
    varied = map_transaction(transaction(**overrides), CHECKING)
    assert varied == plain
    assert (varied.amount, varied.category, varied.merchant) == (D("-12.50"), "food.groceries", "Whole Foods")


def test_an_account_with_a_persistent_account_id_maps_the_same() -> None:
    raw = {"account_id": "a1", "balances": {"available": 1, "current": 2, "limit": None, "iso_currency_code": "USD",
                                            "unofficial_currency_code": None},
           "mask": "0000", "name": "Checking", "official_name": None, "type": "depository", "subtype": "checking"}
    assert map_account({**raw, "persistent_account_id": "8cfb8beb89b774ee43b090625f0d61d0"}, ITEM) == \
        map_account(raw, ITEM)
    loan = map_account({**raw, "type": "loan", "subtype": "installment"}, ITEM)
    assert (loan.type, loan.subtype, loan.current_balance) == (AccountType.LOAN, "installment", D(-2))


@pytest.mark.parametrize(("value", "expected"), [("5411", "5411"), (5812, "5812"), ("0742", "0742"), (None, None),
                                                 ("", None), ("54x1", None), ("=HYPERLINK()", None), (True, None),
                                                 ("123456", None)])
def test_merchant_category_code_is_kept_verbatim_or_dropped(value: Any, expected: str | None) -> None:
    assert map_transaction(transaction(merchant_category_code=value), CHECKING).merchant_category_code == expected


@pytest.mark.parametrize(("numbers", "expected"), [
    ({"bacs": {"account": "55555555", "sort_code": "202015"}, "international": None}, "202015 55555555"),
    ({"bacs": None, "international": {"iban": "GB33BUKB20201555555555", "bic": "BUKBGB22"}},
     "GB33BUKB20201555555555"),
    ({"bacs": {"account": "55555555", "sort_code": None}, "international": {"iban": None, "bic": "BUKBGB22"}},
     "55555555"),
    ({"bacs": None, "international": None}, None),
    (None, None), ("GB33", None), ({"bacs": "x", "international": ["y"]}, None),
])
def test_counterparty_account_numbers_are_kept(numbers: Any, expected: str | None) -> None:
    parties = [{"name": "A person", "type": "merchant"},
               {"name": "Barclays Bank UK", "type": "financial_institution", "account_numbers": numbers}]
    assert map_transaction(transaction(counterparties=parties), CHECKING).counterparty_account == expected


# -- investments ---------------------------------------------------------------------------------------------------

BROKERAGE = account("brk", AccountType.INVESTMENT, "brokerage", "1000.00", "Plaid Brokerage")


def test_securities_of_every_kind() -> None:
    treasury = map_security({"security_id": "s1", "name": "US Treasury Note", "type": "fixed income",
                             "ticker_symbol": None, "isin": "US91282CKQ32", "close_price": 98.5,
                             "close_price_as_of": "2026-12-04", "iso_currency_code": "USD",
                             "fixed_income": {"yield_rate": {"percentage": 4.25, "type": "coupon"},
                                              "maturity_date": "2034-05-15", "issue_date": None, "face_value": 1000}})
    assert (treasury.type, treasury.maturity_date, treasury.annual_rate, treasury.close_price) == (
        SecurityType.FIXED_INCOME, date(2034, 5, 15), D("4.25"), D("98.5"))
    kinds = {kind: map_security({"security_id": kind or "none", "type": kind, "name": None,
                                 "ticker_symbol": "TCK", "iso_currency_code": None,
                                 "unofficial_currency_code": None}, "CAD").type
             for kind in ("equity", "etf", "mutual fund", "cash", "cryptocurrency", "derivative", "loan",
                          "a kind Plaid adds later", None)}
    assert kinds == {"equity": SecurityType.EQUITY, "etf": SecurityType.ETF, "mutual fund": SecurityType.MUTUAL_FUND,
                     "cash": SecurityType.CASH, "cryptocurrency": SecurityType.CRYPTO,
                     "derivative": SecurityType.DERIVATIVE, "loan": SecurityType.OTHER,
                     "a kind Plaid adds later": SecurityType.OTHER, None: SecurityType.OTHER}
    unnamed = map_security({"security_id": "s9", "ticker_symbol": "TCK", "unofficial_currency_code": "BTC"})
    assert (unnamed.name, unnamed.currency) == ("TCK", "BTC")
    with pytest.raises(BadData):
        map_security({"name": "no id"})


def test_a_holding_keeps_quantity_price_value_and_cost_basis() -> None:
    holding = map_holding({"account_id": "brk", "security_id": "s1", "institution_price": 324.64,
                           "institution_price_as_of": "2026-12-07", "institution_value": 15192.99,
                           "cost_basis": None, "quantity": 46.7995, "iso_currency_code": "USD"}, BROKERAGE)
    assert (holding.quantity, holding.value, holding.price, holding.cost_basis, holding.gain, holding.as_of) == (
        D("46.7995"), D("15192.99"), D("324.64"), None, None, date(2026, 12, 7))
    with pytest.raises(BadData):
        map_holding({"account_id": "brk", "security_id": "s1", "quantity": None, "institution_value": 1}, BROKERAGE)
    with pytest.raises(BadData):
        map_holding({"account_id": "brk", "security_id": "s1", "quantity": "NaN", "institution_value": 1}, BROKERAGE)


@pytest.mark.parametrize(("kind", "subtype", "expected"), [
    ("buy", "buy", InvestmentTxnType.BUY), ("sell", "sell short", InvestmentTxnType.SELL),
    ("cash", "dividend", InvestmentTxnType.DIVIDEND), ("cash", "qualified dividend", InvestmentTxnType.DIVIDEND),
    ("cash", "interest", InvestmentTxnType.DIVIDEND), ("cash", "contribution", InvestmentTxnType.CASH),
    ("cash", "deposit", InvestmentTxnType.CASH), ("cash", "tax withheld", InvestmentTxnType.FEE),
    ("fee", "account fee", InvestmentTxnType.FEE), ("transfer", "transfer", InvestmentTxnType.TRANSFER),
    ("cancel", "buy", InvestmentTxnType.OTHER), ("something new", None, InvestmentTxnType.OTHER),
    (None, None, InvestmentTxnType.OTHER),
])
def test_investment_transaction_types(kind: Any, subtype: Any, expected: InvestmentTxnType) -> None:
    assert investment_type(kind, subtype) is expected


def test_investment_transactions_take_the_models_sign() -> None:
    def mapped(**raw: Any) -> Any:
        return map_investment_transaction({"investment_transaction_id": "it", "account_id": "brk",
                                           "date": "2026-11-03", "name": "x", "fees": 0.0,
                                           "iso_currency_code": "USD", **raw}, BROKERAGE)
    buy = mapped(type="buy", subtype="buy", amount=235.38, quantity=3.5273, price=66.73, security_id="vti")
    assert (buy.amount, buy.quantity, buy.price, buy.fees, buy.security_external_id) == (
        D("-235.38"), D("3.5273"), D("66.73"), None, "vti")
    sale = mapped(type="sell", subtype="sell", amount=-500, quantity=-2, price=250, fees=4.95)
    assert (sale.amount, sale.quantity, sale.fees) == (D(500), D(-2), D("4.95"))
    dividend = mapped(type="cash", subtype="dividend", amount=-12.34, quantity=0, price=0, security_id="vti")
    assert (dividend.type, dividend.amount, dividend.quantity, dividend.price) == (
        InvestmentTxnType.DIVIDEND, D("12.34"), None, None)
    fee = mapped(type="fee", subtype="account fee", amount=6.25, quantity=0, price=0, security_id=None)
    assert (fee.amount, fee.security_external_id, fee.description) == (D("-6.25"), None, "x")
    with pytest.raises(BadData):
        mapped(type="buy", subtype="buy", amount=None, quantity=1, price=1)


# -- liabilities ---------------------------------------------------------------------------------------------------

CARD = account("card", AccountType.CREDIT_CARD, "credit card", "-1924.66", "Plaid Credit Card")
STUDENT = account("stu", AccountType.LOAN, "student", "-21996.20", "Plaid Student Loan")
MORTGAGE = account("mtg", AccountType.LOAN, "mortgage", "-310000.00", "Plaid Mortgage")
INSTALLMENT = account("ins", AccountType.LOAN, "installment", "-4263.78", "Plaid Installment Loan")
LIABLE = {a.external_id: a for a in (CARD, STUDENT, MORTGAGE, INSTALLMENT)}


def test_liabilities_of_every_kind() -> None:
    answer = {
        "credit": [{"account_id": "card", "aprs": [
            {"apr_percentage": 27.99, "apr_type": "cash_apr", "balance_subject_to_apr": 0, "interest_charge_amount": 0},
            {"apr_percentage": 12.5, "apr_type": "purchase_apr", "balance_subject_to_apr": 1924.66,
             "interest_charge_amount": 0}], "is_overdue": False, "last_payment_amount": 3545.48,
            "last_payment_date": "2026-11-25", "last_statement_issue_date": "2026-12-05",
            "last_statement_balance": 2102.8, "minimum_payment_amount": 25, "next_payment_due_date": "2026-12-25"}],
        "student": [{"account_id": "stu", "loan_name": "Consolidation", "interest_rate_percentage": 5.5,
                     "minimum_payment_amount": 275.18, "next_payment_due_date": "2026-12-15",
                     "last_payment_amount": 275.18, "last_payment_date": "2026-11-16", "is_overdue": None,
                     "origination_principal_amount": 30800, "origination_date": "2020-11-01",
                     "expected_payoff_date": "2030-11-01"}],
        "mortgage": [{"account_id": "mtg", "interest_rate": {"percentage": 6.125, "type": "fixed"},
                      "loan_term": "30 year", "loan_type_description": "conventional",
                      "next_monthly_payment": 2498.73, "next_payment_due_date": "2027-01-01",
                      "last_payment_amount": 2498.73, "last_payment_date": "2026-12-01",
                      "origination_principal_amount": 337000, "origination_date": "2021-11-01",
                      "maturity_date": "2051-11-01"}],
        "loan": [{"account_id": "ins", "interest_rate": {"percentage": 8.99, "type": "fixed"},
                  "principal_balance": 4263.78, "origination_principal_amount": 6400, "payment_count": 36,
                  "next_payment_amount": 203.5, "next_payment_due_date": "2026-12-10", "last_payment_amount": 203.5,
                  "last_payment_date": "2026-11-10", "origination_date": "2025-11-01", "maturity_date": "2028-11-01",
                  "payment_frequency": "monthly"},
                 {"account_id": "not-listed", "interest_rate": {"percentage": 1, "type": "fixed"}}],
        "line_of_credit": None,
    }
    found = {liability.account_external_id: liability for liability in map_liabilities(answer, LIABLE)}
    assert set(found) == {"card", "stu", "mtg", "ins"}
    card = found["card"]
    assert (card.kind, card.interest_rate, card.minimum_payment, card.next_payment_date, card.balance) == (
        LiabilityKind.CREDIT, D("12.5"), D(25), date(2026, 12, 25), D("-1924.66"))
    assert card.payments == (LoanPayment(date(2026, 11, 25), D("3545.48")),) and card.is_overdue is False
    student = found["stu"]
    assert (student.kind, student.name, student.interest_rate, student.is_overdue, student.maturity_date) == (
        LiabilityKind.STUDENT, "Consolidation", D("5.5"), None, date(2030, 11, 1))
    mortgage = found["mtg"]
    assert (mortgage.kind, mortgage.rate_type, mortgage.next_payment_amount, mortgage.original_principal) == (
        LiabilityKind.MORTGAGE, "fixed", D("2498.73"), D(337000))
    assert mortgage.name == "Mortgage (30 year conventional)"
    loan = found["ins"]
    assert (loan.kind, loan.name, loan.installments_total, loan.interest_rate, loan.balance) == (
        LiabilityKind.PERSONAL, "Plaid Installment Loan", 36, D("8.99"), D("-4263.78"))


def test_liabilities_tolerate_nulls_and_refuse_garbage() -> None:
    assert map_liabilities({"credit": None, "student": None, "mortgage": None}, LIABLE) == []
    bare = map_liabilities({"credit": [{"account_id": "card", "aprs": []}]}, LIABLE)[0]
    assert (bare.interest_rate, bare.payments, bare.name) == (None, (), "Plaid Credit Card")
    with pytest.raises(BadData):
        map_liabilities({"student": [{"account_id": "stu", "interest_rate_percentage": "lots"}]}, LIABLE)
    with pytest.raises(BadData):
        map_liabilities({"credit": [{"account_id": "card", "next_payment_due_date": "soon"}]}, LIABLE)


# -- webhooks ------------------------------------------------------------------------------------------------------

def plan_of(kind: str, item_id: str | None = ITEM, **payload: Any) -> Any:
    return plaid_webhooks.plan(WebhookEvent("plaid:x", "plaid", kind, item_id, payload, datetime.now(UTC)))


@pytest.mark.parametrize("kind", ["HOLDINGS/DEFAULT_UPDATE", "INVESTMENTS_TRANSACTIONS/DEFAULT_UPDATE",
                                  "LIABILITIES/DEFAULT_UPDATE"])
def test_portfolio_webhooks_ask_for_a_sync(kind: str) -> None:
    plan = plan_of(kind, user_id="usr_9nSp2KuZ2x4JDw")
    assert plan.sync and plan.known and plan.needs_connection and plan.status is None
    assert plan.refetch == (PORTFOLIO,)  # read the portfolio now, whenever it was last read; every transaction too
    assert plan_of("TRANSACTIONS/SYNC_UPDATES_AVAILABLE").refetch == ()


def test_user_id_from_the_newer_user_apis() -> None:
    with_item = plan_of("TRANSACTIONS/SYNC_UPDATES_AVAILABLE", user_id="usr_9nSp2KuZ2x4JDw")
    assert with_item.sync and with_item.needs_connection
    user_only = plan_of("TRANSACTIONS/SYNC_UPDATES_AVAILABLE", None, user_id="usr_<script>" + "x" * 500)
    assert not user_only.sync and not user_only.needs_connection and len(user_only.note) < 300
