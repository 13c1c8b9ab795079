"""Plaid → finance.model mapping: every sign, transfer, currency, category and item rule, on schema-shaped fixtures.

The fixtures under tests/fixtures/plaid are validated against Plaid's official OpenAPI subset
(shared/reference/plaid-openapi-subset.yml); `openapi_validator` is also used by test_plaid_client.py
to check the request bodies the client sends.
"""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from finance.categories import CATEGORIES, UNCATEGORIZED, category, is_transfer
from finance.errors import BadData
from finance.model import TRANSACTION_SCHEMA, Account, AccountType, ConnectionStatus, Institution, TxnStatus, money
from finance.providers.plaid.client import rate_limits
from finance.providers.plaid.mapping import (
    CATEGORY_MAP,
    ERROR_MESSAGES,
    account_type,
    map_account,
    map_category,
    map_institution,
    map_item,
    map_transaction,
    map_transactions,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plaid"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
SPEC_PATH = REFERENCE / "plaid-openapi-subset.yml"
NOW = datetime(2025, 5, 20, 12, 0, tzinfo=UTC)
ITEM_ID = "Ed6bjNrDLJfGvZWwnkQlfxwoNz54B5C97ejBr"


# --------------------------------------------------------------------------------------------
# The official schema, as JSON Schema (shared with test_plaid_client.py)
# --------------------------------------------------------------------------------------------

def _as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects → JSON Schema draft 4: `nullable: true` becomes "null is allowed too"."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is not True:
        return out
    if isinstance(out.get("type"), str) and not {"$ref", "allOf", "anyOf", "oneOf"} & out.keys():
        out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [{"type": "null"}, out]}


@functools.cache
def openapi_document() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.fail(f"reference schema missing at {SPEC_PATH} (shared/ must sit beside the repository)")
    try:
        import yaml
    except ImportError:  # pragma: no cover - says what to install rather than skipping
        pytest.fail("PyYAML is needed to read the Plaid reference schema: pip install PyYAML==6.0.3")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SPEC_PATH.read_text(), Loader=loader)


@functools.cache
def _components() -> dict[str, Any]:
    return {"schemas": _as_json_schema(openapi_document()["components"]["schemas"])}


@functools.cache
def openapi_validator(schema_name: str) -> Draft4Validator:
    """A validator for one of components.schemas (e.g. "Transaction", "TransactionsSyncRequest")."""
    return Draft4Validator({"$ref": f"#/components/schemas/{schema_name}", "components": _components()})


def _operation_schema(path: str, part: str) -> str:
    operation = openapi_document()["paths"][path]["post"]
    if part == "request":
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    else:
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def request_validator(path: str) -> Draft4Validator:
    return openapi_validator(_operation_schema(path, "request"))


def response_validator(path: str) -> Draft4Validator:
    return openapi_validator(_operation_schema(path, "response"))


def schema_errors(validator: Draft4Validator, obj: Any) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj))


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------

def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


ACCOUNTS = load("accounts.json")
TRANSACTIONS = load("transactions.json")
ITEMS = load("items.json")
ERRORS = load("errors.json")
INSTITUTIONS = load("institutions.json")
RESPONSES = load("responses.json")


def raw_account(key: str) -> dict[str, Any]:
    return copy.deepcopy(ACCOUNTS[key])


def raw_txn(key: str) -> dict[str, Any]:
    return copy.deepcopy(TRANSACTIONS[key])


def raw_item(key: str) -> dict[str, Any]:
    return copy.deepcopy(ITEMS[key])


MAPPED_ACCOUNTS = {key: map_account(raw, ITEM_ID) for key, raw in ACCOUNTS.items()}
BY_ACCOUNT_ID = {a.external_id: a for a in MAPPED_ACCOUNTS.values()}


def txn(key: str):
    raw = raw_txn(key)
    return map_transaction(raw, BY_ACCOUNT_ID[raw["account_id"]])


def _fixture_objects() -> list[tuple[str, str, Any]]:
    cases: list[tuple[str, str, Any]] = []
    cases += [(f"accounts.json:{k}", "AccountBase", v) for k, v in ACCOUNTS.items()]
    cases += [(f"transactions.json:{k}", "Transaction", v) for k, v in TRANSACTIONS.items()]
    cases += [(f"items.json:{k}", "ItemGetResponse", v) for k, v in ITEMS.items()]
    cases += [(f"errors.json:{k}", "PlaidError", v) for k, v in ERRORS.items()]
    cases += [(f"institutions.json:{k}", "InstitutionsGetByIdResponse", v) for k, v in INSTITUTIONS.items()]
    cases += [(f"responses.json:{k}", _operation_schema(k, "response"), v) for k, v in RESPONSES.items()]
    return cases


@pytest.mark.parametrize(("where", "schema", "obj"), _fixture_objects(),
                         ids=lambda v: v if isinstance(v, str) and ":" in v else "")
def test_fixture_matches_official_schema(where: str, schema: str, obj: Any) -> None:
    assert schema_errors(openapi_validator(schema), obj) == [], where


def test_schema_validator_is_not_vacuous() -> None:
    broken = raw_txn("card_purchase")
    del broken["date"]
    broken["amount"] = "25.00"
    broken["pending"] = None
    assert schema_errors(openapi_validator("Transaction"), broken) == [
        ": 'date' is a required property",
        "amount: '25.00' is not of type 'number'",
        "pending: None is not of type 'boolean'",
    ]


def test_nullable_is_honoured_both_ways() -> None:
    account = raw_account("checking")
    account["mask"] = None  # nullable: fine
    assert schema_errors(openapi_validator("AccountBase"), account) == []
    account["name"] = None  # not nullable
    assert schema_errors(openapi_validator("AccountBase"), account) == ["name: None is not of type 'string'"]
    item = raw_item("healthy")
    item["status"] = None  # ItemStatusNullable (an allOf) accepts null too
    assert schema_errors(openapi_validator("ItemGetResponse"), item) == []


def test_every_official_example_validates() -> None:
    for path, entry in openapi_document()["paths"].items():
        content = entry["post"]["responses"]["200"]["content"]["application/json"]
        for example in content.get("examples", {}).values():
            assert schema_errors(response_validator(path), example["value"]) == [], path


# --------------------------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "kind", "current", "available", "limit", "currency"), [
    ("checking", AccountType.CHECKING, "110", "100", None, "USD"),
    ("savings", AccountType.SAVINGS, "210", "200", None, "USD"),
    ("money_market", AccountType.SAVINGS, "43200", "43200", None, "USD"),
    ("cd", AccountType.SAVINGS, "1000", None, None, "USD"),
    ("credit_card", AccountType.CREDIT_CARD, "-410", "1590", "2000", "USD"),
    ("student_loan", AccountType.LOAN, "-65262", None, None, "USD"),
    ("mortgage", AccountType.LOAN, "-56302.06", None, None, "USD"),
    ("investment_401k", AccountType.INVESTMENT, "23631.9805", None, None, "USD"),
    ("brokerage", AccountType.INVESTMENT, "1200.5", "300", None, "USD"),
    ("other", AccountType.OTHER, "15.25", None, None, "USD"),
    ("crypto", AccountType.INVESTMENT, "0.31415926", "0.31415926", None, "BTC"),
])
def test_account_types_and_balance_signs(key: str, kind: AccountType, current: str, available: str | None,
                                         limit: str | None, currency: str) -> None:
    acc = map_account(raw_account(key), ITEM_ID)
    assert acc.type is kind
    assert acc.current_balance == Decimal(current)
    assert acc.available_balance == (Decimal(available) if available else None)
    assert acc.credit_limit == (Decimal(limit) if limit else None)
    assert acc.currency == currency
    assert acc.connection_external_id == ITEM_ID


def test_full_checking_account_record() -> None:
    acc = map_account(raw_account("checking"), ITEM_ID)
    assert acc == Account(
        provider="plaid", external_id="BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp", connection_external_id=ITEM_ID,
        type=AccountType.CHECKING, name="Plaid Checking", currency="USD", current_balance=Decimal("110"),
        available_balance=Decimal("100"), credit_limit=None, mask="0000", subtype="checking", balance_as_of=None,
    )
    assert acc.id == "plaid:BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp"
    assert acc.connection_id == f"plaid:{ITEM_ID}"


def test_balance_as_of_comes_from_last_updated_datetime() -> None:
    assert MAPPED_ACCOUNTS["money_market"].balance_as_of == datetime(2025, 5, 19, 22, 4, 11, tzinfo=UTC)
    assert MAPPED_ACCOUNTS["crypto"].balance_as_of == datetime(2025, 5, 20, 9, 30, tzinfo=UTC)


def test_card_with_a_credit_balance_becomes_positive_and_zero_stays_unsigned() -> None:
    raw = raw_account("credit_card")
    raw["balances"]["current"] = -35.1  # overpaid: the bank owes the user
    assert map_account(raw, ITEM_ID).current_balance == Decimal("35.1")
    raw["balances"]["current"] = 0
    assert str(map_account(raw, ITEM_ID).current_balance) == "0"


def test_null_balances_stay_null() -> None:
    raw = raw_account("credit_card")
    raw["balances"].update(current=None, available=None, limit=None)
    acc = map_account(raw, ITEM_ID)
    assert (acc.current_balance, acc.available_balance, acc.credit_limit) == (None, None, None)


def test_depository_overdraft_limit_is_not_a_credit_limit() -> None:
    raw = raw_account("checking")
    raw["balances"]["limit"] = 500
    assert map_account(raw, ITEM_ID).credit_limit is None


def test_mask_and_name_fall_back() -> None:
    raw = raw_account("other")
    assert map_account(raw, ITEM_ID).mask is None
    raw["name"] = ""
    raw["official_name"] = "Official Other"
    assert map_account(raw, ITEM_ID).name == "Official Other"


@pytest.mark.parametrize(("raw_type", "subtype", "expected"), [
    ("depository", "checking", AccountType.CHECKING),
    ("depository", "cash management", AccountType.CHECKING),
    ("depository", None, AccountType.CHECKING),
    ("depository", "savings", AccountType.SAVINGS),
    ("depository", "money market", AccountType.SAVINGS),
    ("depository", "cd", AccountType.SAVINGS),
    ("depository", "hsa", AccountType.SAVINGS),
    ("depository", "prepaid", AccountType.OTHER),
    ("depository", "brand new subtype", AccountType.OTHER),
    ("credit", "credit card", AccountType.CREDIT_CARD),
    ("credit", "paypal", AccountType.CREDIT_CARD),
    ("credit", None, AccountType.CREDIT_CARD),
    ("loan", "student", AccountType.LOAN),
    ("loan", "mortgage", AccountType.LOAN),
    ("loan", "auto", AccountType.LOAN),
    ("loan", "something new", AccountType.LOAN),
    ("investment", "401k", AccountType.INVESTMENT),
    ("brokerage", "brokerage", AccountType.INVESTMENT),
    ("other", "other", AccountType.OTHER),
    ("payroll", None, AccountType.OTHER),
    ("a_type_added_later", "x", AccountType.OTHER),
    (None, None, AccountType.OTHER),
])
def test_account_type_and_unknown_enums(raw_type: str | None, subtype: str | None, expected: AccountType) -> None:
    assert account_type(raw_type, subtype) is expected


def test_unknown_account_fields_and_enums_do_not_crash() -> None:
    raw = raw_account("checking")
    raw["type"], raw["subtype"] = "neobank", "quantum checking"
    raw["holder_category"] = "galactic"
    raw["verification_status"] = "something_new"
    raw["field_added_later"] = {"nested": [1, None]}
    raw["balances"]["field_added_later"] = True
    acc = map_account(raw, ITEM_ID)
    assert (acc.type, acc.current_balance) == (AccountType.OTHER, Decimal("110"))


@pytest.mark.parametrize("missing", ["account_id", "balances", "type"])
def test_account_missing_required_field_is_bad_data(missing: str) -> None:
    raw = raw_account("checking")
    del raw[missing]
    with pytest.raises(BadData) as info:
        map_account(raw, ITEM_ID)
    assert info.value.code == "BAD_ACCOUNT"
    assert missing in info.value.message


def test_account_without_any_currency_is_bad_data() -> None:
    raw = raw_account("checking")
    raw["balances"]["iso_currency_code"] = None
    with pytest.raises(BadData) as info:
        map_account(raw, ITEM_ID)
    assert info.value.code == "BAD_CURRENCY"


@pytest.mark.parametrize("balance", ["12,50", "NaN", "Infinity", True, [1]])
def test_account_unreadable_balance_is_bad_data(balance: Any) -> None:
    raw = raw_account("checking")
    raw["balances"]["current"] = balance
    with pytest.raises(BadData) as info:
        map_account(raw, ITEM_ID)
    assert info.value.code == "BAD_AMOUNT"


def test_official_account_examples_map() -> None:
    content = openapi_document()["paths"]["/accounts/balance/get"]["post"]["responses"]["200"]["content"]
    example = content["application/json"]["examples"]["example-1"]["value"]
    mapped = [map_account(raw, "item-1") for raw in example["accounts"]]
    assert [(a.type, a.current_balance, a.credit_limit) for a in mapped] == [
        (AccountType.CHECKING, Decimal(110), None),
        (AccountType.CREDIT_CARD, Decimal(-410), Decimal(2000)),
        (AccountType.LOAN, Decimal(-65262), None),
    ]


def test_a_loans_available_balance_is_signed_like_its_balance() -> None:
    """What is owed on a loan is negative in both figures; a card's available balance is credit left (positive)."""
    loan = {"account_id": "loan-1", "type": "loan", "subtype": "student", "name": "Student loan",
            "balances": {"current": 1200.5, "available": 1200.5, "iso_currency_code": "USD"}}
    card = {"account_id": "card-1", "type": "credit", "subtype": "credit card", "name": "Card",
            "balances": {"current": 410, "available": 1590, "limit": 2000, "iso_currency_code": "USD"}}
    mapped_loan, mapped_card = map_account(loan, ITEM_ID), map_account(card, ITEM_ID)
    assert (mapped_loan.current_balance, mapped_loan.available_balance) == (Decimal("-1200.5"), Decimal("-1200.5"))
    assert (mapped_card.current_balance, mapped_card.available_balance) == (Decimal(-410), Decimal(1590))


# --------------------------------------------------------------------------------------------
# Transaction signs and transfers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "amount", "unified", "kind"), [
    ("checking_purchase", "-72.1", "shopping", "expense"),
    ("payroll", "2000", "income.salary", "income"),
    ("card_purchase", "-25", "shopping.online", "expense"),
    ("card_refund", "30", "shopping.online", "expense"),  # a refund nets against spending
    ("card_payment_on_card", "500", "transfer.credit_card_payment", "transfer"),
    ("card_payment_on_checking", "-500", "transfer.credit_card_payment", "transfer"),
    ("loan_payment", "-350", "transfer.loan_payment", "transfer"),
    ("loan_payment_on_loan", "350", "transfer.loan_payment", "transfer"),
    ("transfer_to_savings", "-200", "transfer.own_accounts", "transfer"),
    ("transfer_into_savings", "200", "transfer.own_accounts", "transfer"),
    ("savings_interest", "0.52", "income.interest", "income"),
    ("overdraft_fee", "-35", "fees", "expense"),
    ("card_pending_dinner", "-41.2", "food.restaurants", "expense"),
    ("card_posted_dinner", "-49.44", "food.restaurants", "expense"),
])
def test_sign_and_category_of_every_kind_of_movement(key: str, amount: str, unified: str, kind: str) -> None:
    t = txn(key)
    assert t.amount == Decimal(amount)
    assert t.category == unified
    assert category(t.category).kind == kind


def test_card_purchase_is_spending_not_income() -> None:
    t = txn("card_purchase")
    assert t.amount < 0
    assert not is_transfer(t.category)
    assert t.account_external_id == MAPPED_ACCOUNTS["credit_card"].external_id


def test_card_payment_is_a_transfer_on_both_sides_and_nets_to_zero() -> None:
    on_card, on_checking = txn("card_payment_on_card"), txn("card_payment_on_checking")
    assert is_transfer(on_card.category) and is_transfer(on_checking.category)
    assert on_card.amount + on_checking.amount == 0


def test_transfer_to_savings_nets_to_zero() -> None:
    assert txn("transfer_to_savings").amount + txn("transfer_into_savings").amount == 0


def test_full_transaction_record_from_the_official_example() -> None:
    t = txn("checking_purchase")
    assert t.id == "plaid:lPNjeW1nR6CDn5okmGQ6hEpMo4lLNoSrzqDje"
    assert t.account_id == "plaid:BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp"
    assert (t.booked_date, t.authorized_date) == (date(2023, 9, 24), date(2023, 9, 22))
    assert (t.description, t.merchant, t.payment_method) == ("PURCHASE WM SUPERCENTER #1700", "Walmart", "IN_STORE")
    assert (t.provider_category, t.provider_category_id) == ("GENERAL_MERCHANDISE_SUPERSTORES", "GENERAL_MERCHANDISE")
    assert (t.currency, t.status, t.pending_external_id) == ("USD", TxnStatus.POSTED,
                                                             "no86Eox18VHMvaOVL7gPUM9ap3aR1LsAVZ5nc")
    assert (t.original_amount, t.original_currency, t.installment_number) == (None, None, None)


def test_every_official_sync_example_maps() -> None:
    content = openapi_document()["paths"]["/transactions/sync"]["post"]["responses"]["200"]["content"]
    example = content["application/json"]["examples"]["example-1"]["value"]
    accounts = {raw["account_id"]: map_account(raw, "item-1") for raw in example["accounts"]}
    mapped = [map_transaction(raw, accounts[raw["account_id"]]) for raw in example["added"] + example["modified"]]
    assert [(t.amount, t.category, t.status) for t in mapped] == [
        (Decimal("-72.1"), "shopping", TxnStatus.POSTED),
        (Decimal("-28.34"), "food.restaurants", TxnStatus.PENDING),
    ]


# --------------------------------------------------------------------------------------------
# Pending → posted, currencies, descriptions, payment channels
# --------------------------------------------------------------------------------------------

def test_pending_to_posted_link() -> None:
    pending, posted = txn("card_pending_dinner"), txn("card_posted_dinner")
    assert pending.status is TxnStatus.PENDING
    assert pending.pending_external_id is None
    assert posted.status is TxnStatus.POSTED
    assert posted.pending_external_id == pending.external_id
    assert posted.external_id != pending.external_id
    assert posted.amount == Decimal("-49.44")  # a tip changed the amount when it posted
    assert posted.authorized_date == pending.authorized_date == date(2025, 5, 17)
    assert (pending.booked_date, posted.booked_date) == (date(2025, 5, 17), date(2025, 5, 19))


def test_fast_food_pending_from_the_official_example() -> None:
    t = txn("checking_pending_fast_food")
    assert (t.status, t.payment_method, t.merchant) == (TxnStatus.PENDING, "ONLINE", "Burger King")


def test_unofficial_currency_is_kept_as_given() -> None:
    t = txn("crypto_unofficial_currency")
    assert (t.currency, t.amount) == ("BTC", Decimal("0.0125"))
    assert t.category == "income.other"


def test_currency_prefers_iso_and_falls_back_to_the_account() -> None:
    raw = raw_txn("card_purchase")
    raw["iso_currency_code"], raw["unofficial_currency_code"] = "CAD", None
    assert map_transaction(raw, MAPPED_ACCOUNTS["credit_card"]).currency == "CAD"
    raw["iso_currency_code"] = None
    assert map_transaction(raw, MAPPED_ACCOUNTS["credit_card"]).currency == "USD"
    assert map_transaction(raw, MAPPED_ACCOUNTS["crypto"]).currency == "BTC"


def test_description_falls_back_to_original_description() -> None:
    raw = raw_txn("uncategorized")
    assert map_transaction(raw, MAPPED_ACCOUNTS["checking"]).description == "POS 4491 XJ-77"
    raw["name"] = None
    assert map_transaction(raw, MAPPED_ACCOUNTS["checking"]).description == "POS DEBIT 4491 XJ-77 TERMINAL 0032"
    del raw["original_description"]
    assert map_transaction(raw, MAPPED_ACCOUNTS["checking"]).description == ""


def test_merchant_falls_back_to_the_first_counterparty() -> None:
    assert txn("payroll").merchant == "Gusto"
    assert txn("card_payment_on_checking").merchant == "Plaid Credit Card"
    assert txn("card_payment_on_card").merchant is None
    raw = raw_txn("payroll")
    raw["counterparties"] = [{"type": "income_source"}, {"name": "Second"}]  # no name on the first
    assert map_transaction(raw, MAPPED_ACCOUNTS["checking"]).merchant is None
    raw["counterparties"] = None
    assert map_transaction(raw, MAPPED_ACCOUNTS["checking"]).merchant is None


@pytest.mark.parametrize(("channel", "expected"), [
    ("online", "ONLINE"), ("in store", "IN_STORE"), ("other", "OTHER"), ("In Store", "IN_STORE"),
    ("in app", "IN_APP"), (None, None), ("", None), (7, None),
])
def test_payment_method_from_payment_channel(channel: Any, expected: str | None) -> None:
    raw = raw_txn("card_purchase")
    raw["payment_channel"] = channel
    assert map_transaction(raw, MAPPED_ACCOUNTS["credit_card"]).payment_method == expected


# --------------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------------

# Plaid's PFC taxonomy (v1): every detailed value, grouped by primary.
PFC_TAXONOMY: dict[str, list[str]] = {
    "INCOME": ["DIVIDENDS", "INTEREST_EARNED", "RETIREMENT_PENSION", "TAX_REFUND", "UNEMPLOYMENT", "WAGES",
               "OTHER_INCOME"],
    "TRANSFER_IN": ["CASH_ADVANCES_AND_LOANS", "DEPOSIT", "INVESTMENT_AND_RETIREMENT_FUNDS", "SAVINGS",
                    "ACCOUNT_TRANSFER", "OTHER_TRANSFER_IN"],
    "TRANSFER_OUT": ["INVESTMENT_AND_RETIREMENT_FUNDS", "SAVINGS", "WITHDRAWAL", "ACCOUNT_TRANSFER",
                     "OTHER_TRANSFER_OUT"],
    "LOAN_PAYMENTS": ["CAR_PAYMENT", "CREDIT_CARD_PAYMENT", "PERSONAL_LOAN_PAYMENT", "MORTGAGE_PAYMENT",
                      "STUDENT_LOAN_PAYMENT", "OTHER_PAYMENT"],
    "BANK_FEES": ["ATM_FEES", "FOREIGN_TRANSACTION_FEES", "INSUFFICIENT_FUNDS", "INTEREST_CHARGE", "OVERDRAFT_FEES",
                  "OTHER_BANK_FEES"],
    "ENTERTAINMENT": ["CASINOS_AND_GAMBLING", "MUSIC_AND_AUDIO", "SPORTING_EVENTS_AMUSEMENT_PARKS_AND_MUSEUMS",
                      "TV_AND_MOVIES", "VIDEO_GAMES", "OTHER_ENTERTAINMENT"],
    "FOOD_AND_DRINK": ["BEER_WINE_AND_LIQUOR", "COFFEE", "FAST_FOOD", "GROCERIES", "RESTAURANT", "VENDING_MACHINES",
                       "OTHER_FOOD_AND_DRINK"],
    "GENERAL_MERCHANDISE": ["BOOKSTORES_AND_NEWSSTANDS", "CLOTHING_AND_ACCESSORIES", "CONVENIENCE_STORES",
                            "DEPARTMENT_STORES", "DISCOUNT_STORES", "ELECTRONICS", "GIFTS_AND_NOVELTIES",
                            "OFFICE_SUPPLIES", "ONLINE_MARKETPLACES", "PET_SUPPLIES", "SPORTING_GOODS",
                            "SUPERSTORES", "TOBACCO_AND_VAPE", "OTHER_GENERAL_MERCHANDISE"],
    "HOME_IMPROVEMENT": ["FURNITURE", "HARDWARE", "REPAIR_AND_MAINTENANCE", "SECURITY", "OTHER_HOME_IMPROVEMENT"],
    "MEDICAL": ["DENTAL_CARE", "EYE_CARE", "NURSING_CARE", "PHARMACIES_AND_SUPPLEMENTS", "PRIMARY_CARE",
                "VETERINARY_SERVICES", "OTHER_MEDICAL"],
    "PERSONAL_CARE": ["GYMS_AND_FITNESS_CENTERS", "HAIR_AND_BEAUTY", "LAUNDRY_AND_DRY_CLEANING",
                      "OTHER_PERSONAL_CARE"],
    "GENERAL_SERVICES": ["ACCOUNTING_AND_FINANCIAL_PLANNING", "AUTOMOTIVE", "CHILDCARE", "CONSULTING_AND_LEGAL",
                         "EDUCATION", "INSURANCE", "POSTAGE_AND_SHIPPING", "STORAGE", "OTHER_GENERAL_SERVICES"],
    "GOVERNMENT_AND_NON_PROFIT": ["DONATIONS", "GOVERNMENT_DEPARTMENTS_AND_AGENCIES", "TAX_PAYMENT",
                                  "OTHER_GOVERNMENT_AND_NON_PROFIT"],
    "TRANSPORTATION": ["BIKES_AND_SCOOTERS", "GAS", "PARKING", "PUBLIC_TRANSIT", "TAXIS_AND_RIDE_SHARES", "TOLLS",
                       "OTHER_TRANSPORTATION"],
    "TRAVEL": ["FLIGHTS", "LODGING", "RENTAL_CARS", "OTHER_TRAVEL"],
    "RENT_AND_UTILITIES": ["GAS_AND_ELECTRICITY", "INTERNET_AND_CABLE", "RENT", "SEWAGE_AND_WASTE_MANAGEMENT",
                           "TELEPHONE", "WATER", "OTHER_UTILITIES"],
}
PFC_DETAILED = [(primary, f"{primary}_{suffix}") for primary, suffixes in PFC_TAXONOMY.items() for suffix in suffixes]


def test_taxonomy_list_is_complete() -> None:
    assert len(PFC_DETAILED) == len({d for _, d in PFC_DETAILED}) == 104


@pytest.mark.parametrize(("primary", "detailed"), PFC_DETAILED, ids=[d for _, d in PFC_DETAILED])
def test_every_known_plaid_category_is_categorized(primary: str, detailed: str) -> None:
    unified = map_category(primary, detailed)
    assert unified != UNCATEGORIZED
    assert unified in CATEGORIES


@pytest.mark.parametrize("primary", list(PFC_TAXONOMY))
def test_every_primary_alone_is_categorized(primary: str) -> None:
    assert map_category(primary, None) not in (UNCATEGORIZED, None)


def test_every_category_map_target_exists() -> None:
    assert sorted(set(CATEGORY_MAP.values()) - set(CATEGORIES)) == []


@pytest.mark.parametrize(("detailed", "expected"), [
    ("INCOME_WAGES", "income.salary"),
    ("INCOME_INTEREST_EARNED", "income.interest"),
    ("INCOME_DIVIDENDS", "income.interest"),
    ("INCOME_UNEMPLOYMENT", "income.benefits"),
    ("INCOME_RETIREMENT_PENSION", "income.benefits"),
    ("INCOME_TAX_REFUND", "income.other"),
    ("INCOME_OTHER_INCOME", "income.other"),
    ("TRANSFER_IN_DEPOSIT", "transfer.own_accounts"),
    ("TRANSFER_IN_SAVINGS", "transfer.own_accounts"),
    ("TRANSFER_IN_ACCOUNT_TRANSFER", "transfer.own_accounts"),
    ("TRANSFER_IN_OTHER_TRANSFER_IN", "transfer.own_accounts"),
    ("TRANSFER_OUT_WITHDRAWAL", "transfer.own_accounts"),
    ("TRANSFER_OUT_SAVINGS", "transfer.own_accounts"),
    ("TRANSFER_IN_INVESTMENT_AND_RETIREMENT_FUNDS", "transfer.investment"),
    ("TRANSFER_OUT_INVESTMENT_AND_RETIREMENT_FUNDS", "transfer.investment"),
    ("TRANSFER_IN_CASH_ADVANCES_AND_LOANS", "transfer"),
    ("LOAN_PAYMENTS_CREDIT_CARD_PAYMENT", "transfer.credit_card_payment"),
    ("LOAN_PAYMENTS_MORTGAGE_PAYMENT", "transfer.loan_payment"),
    ("LOAN_PAYMENTS_CAR_PAYMENT", "transfer.loan_payment"),
    ("BANK_FEES_INTEREST_CHARGE", "fees"),
    ("BANK_FEES_ATM_FEES", "fees"),
    ("ENTERTAINMENT_TV_AND_MOVIES", "entertainment.streaming"),
    ("ENTERTAINMENT_MUSIC_AND_AUDIO", "entertainment.streaming"),
    ("ENTERTAINMENT_VIDEO_GAMES", "entertainment"),
    ("ENTERTAINMENT_CASINOS_AND_GAMBLING", "gambling"),
    ("FOOD_AND_DRINK_GROCERIES", "food.groceries"),
    ("FOOD_AND_DRINK_RESTAURANT", "food.restaurants"),
    ("FOOD_AND_DRINK_FAST_FOOD", "food.restaurants"),
    ("FOOD_AND_DRINK_COFFEE", "food.restaurants"),
    ("FOOD_AND_DRINK_BEER_WINE_AND_LIQUOR", "food"),
    ("GENERAL_MERCHANDISE_ONLINE_MARKETPLACES", "shopping.online"),
    ("GENERAL_MERCHANDISE_ELECTRONICS", "shopping.electronics"),
    ("GENERAL_MERCHANDISE_CLOTHING_AND_ACCESSORIES", "shopping.clothing"),
    ("GENERAL_MERCHANDISE_PET_SUPPLIES", "shopping.pets"),
    ("GENERAL_MERCHANDISE_SUPERSTORES", "shopping"),
    ("HOME_IMPROVEMENT_HARDWARE", "housing.home"),
    ("MEDICAL_PHARMACIES_AND_SUPPLEMENTS", "health.pharmacy"),
    ("MEDICAL_DENTAL_CARE", "health"),
    ("MEDICAL_VETERINARY_SERVICES", "shopping.pets"),
    ("PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS", "health.fitness"),
    ("PERSONAL_CARE_HAIR_AND_BEAUTY", "personal_care"),
    ("GENERAL_SERVICES_EDUCATION", "services.education"),
    ("GENERAL_SERVICES_INSURANCE", "services.insurance"),
    ("GENERAL_SERVICES_TELECOMMUNICATION_SERVICES", "services.telecom"),
    ("GENERAL_SERVICES_AUTOMOTIVE", "transport"),
    ("GENERAL_SERVICES_CHILDCARE", "services"),
    ("GOVERNMENT_AND_NON_PROFIT_DONATIONS", "donations"),
    ("GOVERNMENT_AND_NON_PROFIT_TAX_PAYMENT", "taxes"),
    ("GOVERNMENT_AND_NON_PROFIT_GOVERNMENT_DEPARTMENTS_AND_AGENCIES", "taxes"),
    ("TRANSPORTATION_GAS", "transport.fuel"),
    ("TRANSPORTATION_TAXIS_AND_RIDE_SHARES", "transport.rideshare"),
    ("TRANSPORTATION_PUBLIC_TRANSIT", "transport.public"),
    ("TRANSPORTATION_PARKING", "transport.parking_tolls"),
    ("TRANSPORTATION_TOLLS", "transport.parking_tolls"),
    ("TRANSPORTATION_BIKES_AND_SCOOTERS", "transport"),
    ("TRAVEL_FLIGHTS", "travel"),
    ("RENT_AND_UTILITIES_RENT", "housing.rent"),
    ("RENT_AND_UTILITIES_GAS_AND_ELECTRICITY", "housing.utilities"),
    ("RENT_AND_UTILITIES_WATER", "housing.utilities"),
    ("RENT_AND_UTILITIES_TELEPHONE", "services.telecom"),
    ("RENT_AND_UTILITIES_INTERNET_AND_CABLE", "services.telecom"),
])
def test_map_category(detailed: str, expected: str) -> None:
    primary = next(p for p in sorted(PFC_TAXONOMY, key=len, reverse=True) if detailed.startswith(p + "_"))
    assert map_category(primary, detailed) == expected


@pytest.mark.parametrize(("primary", "detailed", "expected"), [
    ("RENT_AND_UTILITIES", None, "housing"),  # the primary alone
    ("RENT_AND_UTILITIES", "RENT_AND_UTILITIES_SOLAR_LEASE", "housing.utilities"),  # a detail added later
    ("FOOD_AND_DRINK", "FOOD_AND_DRINK_SOMETHING_NEW", "food"),
    ("TRANSFER_OUT", "TRANSFER_OUT_SOMETHING_NEW", "transfer.own_accounts"),
    ("FOOD_AND_DRINK", "A_DETAIL_FROM_ANOTHER_TAXONOMY", "food"),  # the primary decides
    (None, "TRANSPORTATION_GAS", "transport.fuel"),  # the detail alone
    ("food_and_drink", "food_and_drink_groceries", "food.groceries"),  # case does not matter
    ("SOMETHING_NEW", "SOMETHING_NEW_ENTIRELY", UNCATEGORIZED),
    ("OTHER", "OTHER_OTHER", UNCATEGORIZED),
    (None, None, UNCATEGORIZED),
    ("", "", UNCATEGORIZED),
])
def test_map_category_fallbacks(primary: str | None, detailed: str | None, expected: str) -> None:
    assert map_category(primary, detailed) == expected


def test_null_personal_finance_category_is_uncategorized() -> None:
    t = txn("uncategorized")
    assert (t.category, t.provider_category, t.provider_category_id) == (UNCATEGORIZED, None, None)


def test_unknown_category_on_a_transaction_keeps_the_raw_values() -> None:
    raw = raw_txn("card_purchase")
    raw["personal_finance_category"] = {"primary": "SPACE_TRAVEL", "detailed": "SPACE_TRAVEL_ORBITAL",
                                        "confidence_level": "NEW_LEVEL", "version": "v9"}
    t = map_transaction(raw, MAPPED_ACCOUNTS["credit_card"])
    assert (t.category, t.provider_category, t.provider_category_id) == (
        UNCATEGORIZED, "SPACE_TRAVEL_ORBITAL", "SPACE_TRAVEL")


@pytest.mark.parametrize("pfc", [{"primary": None, "detailed": None}, {"confidence_level": "LOW"}, "GROCERIES",
                                 ["FOOD_AND_DRINK"], {"primary": 3, "detailed": ["x"]}])
def test_malformed_personal_finance_category_is_uncategorized(pfc: Any) -> None:
    raw = raw_txn("card_purchase")
    raw["personal_finance_category"] = pfc
    assert map_transaction(raw, MAPPED_ACCOUNTS["credit_card"]).category == UNCATEGORIZED


# --------------------------------------------------------------------------------------------
# Robustness: unknown values, missing fields, exact decimals
# --------------------------------------------------------------------------------------------

def test_unknown_fields_and_enum_values_do_not_crash() -> None:
    raw = raw_txn("card_purchase")
    raw["payment_channel"] = "teleport"
    raw["transaction_type"] = "quantum"
    raw["transaction_code"] = "something new"
    raw["counterparties"][0:0] = [{"name": "New Party", "type": "brand_new_type", "logo_url": None, "website": None}]
    raw["brand_new_field"] = {"x": [1, None]}
    raw["location"]["altitude"] = 12
    t = map_transaction(raw, MAPPED_ACCOUNTS["credit_card"])
    assert (t.amount, t.payment_method, t.merchant) == (Decimal("-25"), "TELEPORT", "Amazon")


@pytest.mark.parametrize("missing", ["transaction_id", "amount", "date", "pending"])
def test_transaction_missing_required_field_is_bad_data(missing: str) -> None:
    raw = raw_txn("card_purchase")
    del raw[missing]
    with pytest.raises(BadData) as info:
        map_transaction(raw, MAPPED_ACCOUNTS["credit_card"])
    assert info.value.code == "BAD_TRANSACTION"
    assert missing in info.value.message


@pytest.mark.parametrize("pending", [None, "true", 1])
def test_pending_that_is_not_a_boolean_is_bad_data(pending: Any) -> None:
    raw = raw_txn("card_purchase")
    raw["pending"] = pending
    with pytest.raises(BadData) as info:
        map_transaction(raw, MAPPED_ACCOUNTS["credit_card"])
    assert info.value.code == "BAD_TRANSACTION"


@pytest.mark.parametrize("amount", [None, "abc", True, "NaN", "-Infinity"])
def test_transaction_unusable_amount_is_bad_data(amount: Any) -> None:
    raw = raw_txn("card_purchase")
    raw["amount"] = amount
    with pytest.raises(BadData) as info:
        map_transaction(raw, MAPPED_ACCOUNTS["credit_card"])
    assert info.value.code == "BAD_AMOUNT"


@pytest.mark.parametrize(("field", "value"), [("date", "09/24/2023"), ("date", None), ("authorized_date", "soon")])
def test_unreadable_date_is_bad_data(field: str, value: Any) -> None:
    raw = raw_txn("checking_purchase")
    raw[field] = value
    with pytest.raises(BadData) as info:
        map_transaction(raw, MAPPED_ACCOUNTS["checking"])
    assert info.value.code == "BAD_DATE"


def test_amounts_are_exact_decimals_from_floats_and_decimals() -> None:
    from_float = txn("card_posted_dinner").amount
    raw = json.loads((FIXTURES / "transactions.json").read_text(), parse_float=Decimal)["card_posted_dinner"]
    from_decimal = map_transaction(raw, MAPPED_ACCOUNTS["credit_card"]).amount
    assert type(from_float) is Decimal and type(from_decimal) is Decimal
    assert str(from_float) == str(from_decimal) == "-49.44"
    raw["amount"] = 0.1 + 0.2  # a float that is not 0.3: repr is used, never the binary expansion
    assert str(map_transaction(raw, MAPPED_ACCOUNTS["credit_card"]).amount) == "-0.30000000000000004"


def test_zero_amount_is_an_unsigned_zero() -> None:
    raw = raw_txn("card_purchase")
    raw["amount"] = Decimal("0.00")
    assert str(map_transaction(raw, MAPPED_ACCOUNTS["credit_card"]).amount) == "0.00"


# --------------------------------------------------------------------------------------------
# Sign rule property
# --------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2,
                      allow_nan=False, allow_infinity=False)


@given(amount=amounts, key=st.sampled_from(sorted(MAPPED_ACCOUNTS)), as_float=st.booleans())
def test_sign_rule_flips_plaid_on_every_account_type(amount: Decimal, key: str, as_float: bool) -> None:
    account = MAPPED_ACCOUNTS[key]
    raw = raw_txn("card_purchase")
    raw["amount"] = float(amount) if as_float else amount

    mapped = map_transaction(raw, account).amount
    assert mapped == -amount  # Plaid's positive (money out) is our negative, whatever the account type
    assert (mapped < 0) == (amount > 0)

    raw["amount"] = mapped  # flipping twice gives back what Plaid sent
    assert map_transaction(raw, account).amount == amount


@given(current=amounts, kind=st.sampled_from(["depository", "credit", "loan", "investment", "brokerage", "other"]))
def test_balance_sign_rule(current: Decimal, kind: str) -> None:
    raw = raw_account("checking")
    raw["type"], raw["subtype"] = kind, None
    raw["balances"]["current"] = current
    balance = map_account(raw, ITEM_ID).current_balance
    assert balance == (-current if kind in ("credit", "loan") else current)


# --------------------------------------------------------------------------------------------
# Items → connection state
# --------------------------------------------------------------------------------------------

def item_state(key: str, **kwargs: Any):
    raw = raw_item(key)
    return map_item(raw["item"], raw.get("status"), now=NOW, **kwargs)


def test_healthy_item_is_active() -> None:
    state = item_state("healthy")
    assert state.status is ConnectionStatus.ACTIVE
    assert state.provider_status == "HEALTHY"
    assert (state.status_detail, state.error_code, state.error_message, state.consent_expires_at) == (
        None, None, None, None)
    assert state.id == f"plaid:{ITEM_ID}"
    assert state.last_updated_at == datetime(2025, 5, 20, 6, 52, 39, tzinfo=UTC)
    assert state.institution == Institution(id="ins_109508", name="First Platypus Bank", is_sandbox=False)


def test_sandbox_recording_with_empty_webhook_and_null_status_fields() -> None:
    state = item_state("sandbox_recording", sandbox=True)
    assert state.status is ConnectionStatus.ACTIVE
    assert state.last_updated_at is None
    assert state.institution == Institution(id="ins_109512", name="Houndstooth Bank", is_sandbox=True)


def test_item_without_institution_or_status() -> None:
    state = item_state("no_institution")
    assert (state.status, state.institution, state.last_updated_at) == (ConnectionStatus.ACTIVE, None, None)


def test_looked_up_institution_replaces_the_bare_one() -> None:
    looked_up = Institution(id="ins_109508", name="First Platypus Bank", logo_url="data:image/png;base64,x",
                            is_sandbox=True)
    assert item_state("healthy", institution=looked_up).institution is looked_up


@pytest.mark.parametrize(("key", "code"), [("login_required", "ITEM_LOGIN_REQUIRED"),
                                           ("permission_revoked", "USER_PERMISSION_REVOKED")])
def test_item_errors_that_need_the_user_are_needs_reconnect(key: str, code: str) -> None:
    state = item_state(key)
    assert state.status is ConnectionStatus.NEEDS_RECONNECT
    assert (state.error_code, state.provider_status) == (code, code)
    assert state.error_message == state.status_detail == ERROR_MESSAGES[code]


def test_login_required_message_text() -> None:
    assert item_state("login_required").error_message == (
        "Your bank needs you to log in again. Reconnect to restore access.")


@pytest.mark.parametrize("code", ["ITEM_LOCKED", "INVALID_CREDENTIALS", "INVALID_MFA", "ACCESS_NOT_GRANTED",
                                  "NO_ACCOUNTS", "USER_SETUP_REQUIRED", "INSUFFICIENT_CREDENTIALS"])
def test_other_reauth_errors_are_needs_reconnect(code: str) -> None:
    raw = raw_item("login_required")
    raw["item"]["error"]["error_code"] = code
    state = map_item(raw["item"], raw["status"], now=NOW)
    assert (state.status, state.error_code, state.error_message) == (
        ConnectionStatus.NEEDS_RECONNECT, code, ERROR_MESSAGES[code])


@pytest.mark.parametrize("code", ["PENDING_EXPIRATION", "PENDING_DISCONNECT"])
def test_pending_expiry_errors_are_consent_expiring(code: str) -> None:
    raw = raw_item("login_required")
    raw["item"]["error"]["error_code"] = code
    state = map_item(raw["item"], raw["status"], now=NOW)
    assert (state.status, state.error_code) == (ConnectionStatus.CONSENT_EXPIRING, code)
    assert "Reconnect" in (state.error_message or "")
    raw["item"]["consent_expiration_time"] = "2025-05-19T00:00:00Z"  # the date has passed: no longer "soon"
    state = map_item(raw["item"], raw["status"], now=NOW)
    assert (state.status, state.error_code) == (ConnectionStatus.NEEDS_RECONNECT, code)
    assert state.error_message == "Your consent for this bank has expired. Reconnect to renew it."


def test_expired_consent_outranks_a_bank_being_down() -> None:
    raw = raw_item("institution_down")
    raw["item"]["consent_expiration_time"] = "2025-05-01T00:00:00Z"
    state = map_item(raw["item"], raw["status"], now=NOW)
    assert (state.status, state.error_code) == (ConnectionStatus.NEEDS_RECONNECT, "INSTITUTION_DOWN")


def test_institution_down_is_failed_with_a_message_that_says_it_will_retry() -> None:
    state = item_state("institution_down")
    assert (state.status, state.error_code) == (ConnectionStatus.FAILED, "INSTITUTION_DOWN")
    assert state.error_message == "The bank is unavailable right now. The next sync will try again."


def test_unknown_item_error_uses_plaids_display_message() -> None:
    raw = raw_item("institution_down")
    raw["item"]["error"]["error_code"] = "BRAND_NEW_ERROR"
    state = map_item(raw["item"], raw["status"], now=NOW)
    assert (state.status, state.error_code) == (ConnectionStatus.FAILED, "BRAND_NEW_ERROR")
    assert state.error_message == raw["item"]["error"]["display_message"]
    raw["item"]["error"]["display_message"] = None
    assert map_item(raw["item"], None, now=NOW).error_message == raw["item"]["error"]["error_message"]
    raw["item"]["error"]["error_message"] = ""
    assert map_item(raw["item"], None, now=NOW).error_message == "The connection failed (BRAND_NEW_ERROR)."


@pytest.mark.parametrize(("key", "status", "detail"), [
    ("consent_valid", ConnectionStatus.ACTIVE, None),
    ("consent_expiring", ConnectionStatus.CONSENT_EXPIRING,
     "Your consent for this bank expires soon. Reconnect to renew it."),
    ("consent_expired", ConnectionStatus.NEEDS_RECONNECT,
     "Your consent for this bank has expired. Reconnect to renew it."),
])
def test_consent_expiry(key: str, status: ConnectionStatus, detail: str | None) -> None:
    state = item_state(key)
    assert (state.status, state.status_detail, state.error_code) == (status, detail, None)
    assert state.consent_expires_at == datetime.fromisoformat(raw_item(key)["item"]["consent_expiration_time"])


def test_consent_warning_boundary_is_seven_days() -> None:
    raw = raw_item("consent_valid")["item"]
    raw["consent_expiration_time"] = "2025-05-27T12:00:00Z"  # exactly 7 days ahead
    assert map_item(raw, None, now=NOW).status is ConnectionStatus.CONSENT_EXPIRING
    raw["consent_expiration_time"] = "2025-05-27T12:00:01Z"
    assert map_item(raw, None, now=NOW).status is ConnectionStatus.ACTIVE
    raw["consent_expiration_time"] = "2025-05-20T12:00:00Z"  # expires right now
    assert map_item(raw, None, now=NOW).status is ConnectionStatus.NEEDS_RECONNECT


def test_unknown_item_fields_and_enums_do_not_crash() -> None:
    raw = raw_item("healthy")
    raw["item"]["update_type"] = "something_new"
    raw["item"]["auth_method"] = "TELEPATHY"
    raw["item"]["future_field"] = [1, 2]
    raw["status"]["transactions"]["future_field"] = "x"
    assert map_item(raw["item"], raw["status"], now=NOW).status is ConnectionStatus.ACTIVE


@pytest.mark.parametrize("raw", [{}, {"item_id": ""}, {"item_id": None, "institution_id": "ins_1"}, []])
def test_item_without_id_is_bad_data(raw: Any) -> None:
    with pytest.raises(BadData) as info:
        map_item(raw, None, now=NOW)
    assert info.value.code == "BAD_ITEM"


def test_unreadable_consent_time_is_bad_data() -> None:
    raw = raw_item("healthy")["item"]
    raw["consent_expiration_time"] = "next tuesday"
    with pytest.raises(BadData) as info:
        map_item(raw, None, now=NOW)
    assert info.value.code == "BAD_DATE"


# --------------------------------------------------------------------------------------------
# Institutions
# --------------------------------------------------------------------------------------------

def test_institution_logo_becomes_a_data_url() -> None:
    inst = map_institution(INSTITUTIONS["ins_109508"]["institution"], sandbox=True)
    assert (inst.id, inst.name, inst.is_sandbox) == ("ins_109508", "First Platypus Bank", True)
    assert inst.logo_url is not None and inst.logo_url.startswith("data:image/png;base64,iVBORw0KGgo")
    houndstooth = map_institution(INSTITUTIONS["ins_109512"]["institution"])
    assert (houndstooth.logo_url, houndstooth.primary_color, houndstooth.is_sandbox) == (None, "#004966", False)


def test_institution_without_id_is_bad_data() -> None:
    with pytest.raises(BadData):
        map_institution({"name": "Nameless"})


# --------------------------------------------------------------------------------------------
# One mapping, two renderings: the Arrow batch the store ingests and the Transaction objects
# --------------------------------------------------------------------------------------------

def test_bulk_mapping_of_every_fixture_equals_the_objects_row_by_row() -> None:
    raws = [raw_txn(key) for key in TRANSACTIONS]
    accounts = [BY_ACCOUNT_ID[raw["account_id"]] for raw in raws]
    batch = map_transactions(raws, accounts)
    assert batch.schema.equals(TRANSACTION_SCHEMA)
    expected = []
    for raw, account in zip(raws, accounts, strict=True):
        txn = map_transaction(raw, account)
        row = {name: getattr(txn, name) for name in TRANSACTION_SCHEMA.names}
        row["amount"] = money(txn.amount)
        expected.append({**row, "status": txn.status.value})
    assert batch.to_pylist() == expected


@pytest.mark.parametrize(("field", "value", "code"), [
    ("amount", "abc", "BAD_AMOUNT"), ("pending", 1, "BAD_TRANSACTION"), ("date", "09/24/2023", "BAD_DATE")])
def test_bulk_mapping_raises_the_same_bad_data_as_one_row(field: str, value: Any, code: str) -> None:
    raw = raw_txn("card_purchase")
    raw[field] = value
    with pytest.raises(BadData) as info:
        map_transactions([raw_txn("payroll"), raw], [MAPPED_ACCOUNTS["checking"], MAPPED_ACCOUNTS["credit_card"]])
    assert info.value.code == code


def test_rate_limit_buckets_per_client_and_per_item_never_hold_the_token() -> None:
    token = "access-sandbox-0123456789"
    request = httpx.Request("POST", "https://sandbox.plaid.com/transactions/sync", json={"access_token": token})
    buckets = rate_limits(request)
    assert [limit for _, limit in buckets] == [2_500, 50]  # plaid.md §6.3: per client, per Item
    assert all(token not in key for key, _ in buckets)
    other = httpx.Request("POST", "https://sandbox.plaid.com/transactions/sync", json={"access_token": "another"})
    assert rate_limits(other)[1][0] != buckets[1][0]
    assert rate_limits(httpx.Request("POST", "https://sandbox.plaid.com/institutions/get_by_id",
                                     json={"institution_id": "ins_1"})) == [("plaid:/institutions/get_by_id", 400)]
    assert rate_limits(httpx.Request("POST", "https://sandbox.plaid.com/link/token/create", json={})) == []
