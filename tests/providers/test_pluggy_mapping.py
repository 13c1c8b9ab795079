"""Pluggy → finance.model mapping: every sign, transfer, date, category and status rule, on schema-shaped fixtures."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from finance.categories import CATEGORIES, UNCATEGORIZED, category, is_transfer
from finance.errors import BadData
from finance.model import (
    TRANSACTION_SCHEMA,
    Account,
    AccountType,
    ConnectionStatus,
    MfaPrompt,
    Transaction,
    TxnStatus,
    money,
)
from finance.providers.pluggy.mapping import (
    CATEGORY_MAP,
    ERROR_MESSAGES,
    local_date,
    map_account,
    map_category,
    map_item,
    map_transaction,
    map_transactions,
    page_chunks,
    read_transactions,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pluggy"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
NOW = datetime(2024, 7, 22, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


ACCOUNTS = load("accounts.json")
TRANSACTIONS = load("transactions.json")
ITEMS = load("items.json")


def raw_account(key: str) -> dict[str, Any]:
    return copy.deepcopy(ACCOUNTS[key])


def raw_txn(account_key: str, key: str) -> dict[str, Any]:
    return copy.deepcopy(TRANSACTIONS[account_key][key])


def raw_item(key: str) -> dict[str, Any]:
    return copy.deepcopy(ITEMS[key])


CHECKING = map_account(ACCOUNTS["checking"])
CARD = map_account(ACCOUNTS["credit_card"])


def bank(key: str):
    return map_transaction(raw_txn("checking", key), CHECKING)


def card(key: str):
    return map_transaction(raw_txn("credit_card", key), CARD)


# --------------------------------------------------------------------------------------------
# Fixtures stay shaped like the official schemas
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    path = REFERENCE / "pluggy-sdk-schemas.json"
    if not path.exists():
        pytest.fail(f"reference schemas missing at {path} (shared/ must sit beside the repository)")
    return json.loads(path.read_text())


def _validator(schemas: dict[str, Any], entry: str) -> Draft7Validator:
    return Draft7Validator({**schemas, "$ref": f"#/definitions/{entry}"})


def _fixture_objects() -> list[tuple[str, str, Any]]:
    cases: list[tuple[str, str, Any]] = []
    cases += [(f"accounts.json:{k}", "PluggyAccount", v) for k, v in ACCOUNTS.items()]
    for account_key, rows in TRANSACTIONS.items():
        cases += [(f"transactions.json:{account_key}.{k}", "PluggyTransaction", v) for k, v in rows.items()]
    cases += [(f"items.json:{k}", "PluggyItem", v) for k, v in ITEMS.items()]
    cases += [(f"categories.json[{i}]", "PluggyCategory", v) for i, v in enumerate(load("categories.json"))]
    cases += [(name, "PluggyTransactionCursorPage", load(name))
              for name in ("transactions_page_1.json", "transactions_page_2.json", "transactions_page_3.json")]
    cases += [("accounts_page.json", "PluggyAccountList", load("accounts_page.json"))]
    return cases


@pytest.mark.parametrize(("where", "entry", "obj"), _fixture_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_fixture_matches_official_schema(schemas: dict[str, Any], where: str, entry: str, obj: Any) -> None:
    validator = _validator(schemas, entry)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    assert errors == [], where


def test_schema_validator_is_not_vacuous(schemas: dict[str, Any]) -> None:
    broken = raw_txn("checking", "debit")
    del broken["date"]
    broken["amount"] = "-212.45"
    messages = sorted(e.message for e in _validator(schemas, "PluggyTransaction").iter_errors(broken))
    assert messages == ["'-212.45' is not of type 'number'", "'date' is a required property"]


def test_category_page_fixture_wraps_the_bare_list() -> None:
    page = load("categories_page.json")
    assert page["results"] == load("categories.json")
    assert (page["page"], page["total"], page["totalPages"]) == (1, 3, 1)


# --------------------------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------------------------

def test_checking_account() -> None:
    as_of = datetime(2024, 7, 22, 18, 5, tzinfo=UTC)
    acc = map_account(raw_account("checking"), as_of=as_of)
    assert acc == Account(
        provider="pluggy", external_id="a658c848-e475-457b-8565-d1fffba127c4",
        connection_external_id="a0922d6f-2007-4169-a181-b961500608db", type=AccountType.CHECKING,
        name="GOLD Conta Corrente", currency="BRL", current_balance=Decimal("120950.37"),
        available_balance=None, credit_limit=None, mask="3450", subtype="CHECKING_ACCOUNT", balance_as_of=as_of,
    )
    assert acc.id == "pluggy:a658c848-e475-457b-8565-d1fffba127c4"
    assert acc.connection_id == "pluggy:a0922d6f-2007-4169-a181-b961500608db"


def test_savings_account_falls_back_to_name() -> None:
    acc = map_account(raw_account("savings"))
    assert (acc.type, acc.name, acc.current_balance, acc.mask) == (
        AccountType.SAVINGS, "Conta Poupança", Decimal("5000.1"), "7654")


def test_card_balance_owed_becomes_negative_and_limits_are_kept() -> None:
    acc = map_account(raw_account("credit_card"))
    assert acc.type is AccountType.CREDIT_CARD
    assert acc.current_balance == Decimal("-1250.55")
    assert acc.available_balance == Decimal("8749.45")
    assert acc.credit_limit == Decimal("10000.0")
    assert (acc.name, acc.mask, acc.subtype) == ("PLUGGY UNICLASS MASTERCARD BLACK", "8670", "CREDIT_CARD")


def test_card_with_credit_balance_becomes_positive() -> None:
    raw = raw_account("credit_card")
    raw["balance"] = -35.1  # the user overpaid the bill: the bank owes them
    assert map_account(raw).current_balance == Decimal("35.1")


@pytest.mark.parametrize(("raw_type", "subtype", "expected"), [
    ("BANK", "CHECKING_ACCOUNT", AccountType.CHECKING),
    ("BANK", "SAVINGS_ACCOUNT", AccountType.SAVINGS),
    ("CREDIT", "CREDIT_CARD", AccountType.CREDIT_CARD),
    ("BANK", "NEW_SUBTYPE", AccountType.OTHER),
    ("NEW_TYPE", "NEW_SUBTYPE", AccountType.OTHER),
    ("NEW_TYPE", None, AccountType.OTHER),
])
def test_account_type_and_unknown_enums(raw_type: str, subtype: str | None, expected: AccountType) -> None:
    raw = raw_account("checking")
    raw["type"], raw["subtype"] = raw_type, subtype
    raw["someFieldAddedLater"] = {"nested": [1, 2, 3]}
    assert map_account(raw).type is expected


@pytest.mark.parametrize("missing", ["id", "itemId"])
def test_account_missing_required_field_is_bad_data(missing: str) -> None:
    raw = raw_account("checking")
    del raw[missing]
    with pytest.raises(BadData) as info:
        map_account(raw)
    assert info.value.code == "BAD_ACCOUNT"
    assert missing in info.value.message


@pytest.mark.parametrize("balance", ["12,50", "NaN", "Infinity", True])
def test_account_unreadable_balance_is_bad_data(balance: Any) -> None:
    raw = raw_account("checking")
    raw["balance"] = balance
    with pytest.raises(BadData) as info:
        map_account(raw)
    assert info.value.code == "BAD_AMOUNT"


# --------------------------------------------------------------------------------------------
# Transaction signs and transfers
# --------------------------------------------------------------------------------------------

def test_bank_debit_keeps_its_negative_sign() -> None:
    txn = bank("debit")
    assert txn.amount == Decimal("-212.45")
    assert (txn.currency, txn.original_amount, txn.original_currency) == ("BRL", None, None)
    assert txn.category == "food.groceries"
    assert not is_transfer(txn.category)


def test_bank_credit_is_positive_inflow() -> None:
    txn = bank("ted_credit")
    assert txn.amount == Decimal("1500")
    assert txn.merchant == "Tiago Rodrigues Santos"  # the payer of an inflow
    assert txn.payment_method == "TED"


def test_card_purchase_is_spending() -> None:
    txn = card("purchase_installment")
    assert txn.amount == Decimal("-159.20")
    assert txn.category == "shopping.online"
    assert category(txn.category).kind == "expense"


def test_card_bill_payment_on_the_card_is_a_positive_transfer() -> None:
    txn = card("bill_payment")
    assert txn.amount == Decimal("500")
    assert txn.category == "transfer.credit_card_payment"
    assert is_transfer(txn.category)


def test_card_bill_payment_from_checking_is_a_negative_transfer() -> None:
    txn = bank("card_bill_payment")
    assert txn.amount == Decimal("-500")
    assert txn.category == "transfer.credit_card_payment"
    assert is_transfer(txn.category)
    assert txn.payment_method == "BOLETO"
    assert txn.merchant == "Banco Pluggy SA"  # the receiver of an outflow


def test_card_refund_is_money_back() -> None:
    assert card("refund").amount == Decimal("30")


def test_own_account_transfer_is_a_transfer() -> None:
    txn = bank("own_transfer")
    assert txn.amount == Decimal("-1000")
    assert txn.category == "transfer.own_accounts"
    assert is_transfer(txn.category)
    assert txn.payment_method == "PIX"


@pytest.mark.parametrize("category_id", ["04000000", "04010000", "04020000", "04030000"])
def test_every_own_account_category_is_a_transfer(category_id: str) -> None:
    assert map_category(category_id) == "transfer.own_accounts"


def test_salary_is_income() -> None:
    txn = bank("salary")
    assert txn.amount == Decimal("2482.26")
    assert txn.category == "income.salary"
    assert category(txn.category).kind == "income"


def test_third_party_pix_is_people() -> None:
    txn = bank("pix_third_party")
    assert (txn.amount, txn.category, txn.payment_method, txn.merchant) == (
        Decimal("-80"), "people", "PIX", "Maria Souza")
    assert not is_transfer(txn.category)


def test_pix_counterparty_falls_back_to_document_number() -> None:
    raw = raw_txn("checking", "pix_third_party")
    raw["paymentData"]["receiver"]["name"] = None
    assert map_transaction(raw, CHECKING).merchant == "123.456.789-09"


def test_merchant_name_wins_over_payment_parties() -> None:
    assert card("foreign").merchant == "Netflix"


def test_foreign_card_purchase_uses_amount_in_account_currency() -> None:
    txn = card("foreign")
    assert txn.amount == Decimal("-298.19")
    assert txn.currency == "BRL"
    assert txn.original_amount == Decimal("-58")
    assert txn.original_currency == "USD"


def test_foreign_transaction_without_account_currency_amount_is_bad_data() -> None:
    raw = raw_txn("credit_card", "foreign")
    raw["amountInAccountCurrency"] = None
    with pytest.raises(BadData) as info:
        map_transaction(raw, CARD)
    assert info.value.code == "BAD_AMOUNT"


def test_installments_come_from_credit_card_metadata() -> None:
    txn = card("purchase_installment")
    assert (txn.installment_number, txn.installment_total) == (2, 3)
    assert card("foreign").installment_number is None
    assert bank("debit").installment_total is None


def test_authorized_date_is_the_purchase_day() -> None:
    # purchaseDate is padded to UTC midnight like `date`: it names 2024-02-12, not the evening before
    assert card("purchase_installment").authorized_date == date(2024, 2, 12)
    # a real instant is taken in São Paulo: 18:20Z is 15:20 local
    assert card("foreign").authorized_date == date(2024, 3, 14)
    assert bank("debit").authorized_date is None


@pytest.mark.parametrize(("account_key", "key", "expected"), [
    ("checking", "own_transfer", "PIX"),
    ("checking", "pix_third_party", "PIX"),
    ("checking", "ted_credit", "TED"),
    ("checking", "card_bill_payment", "BOLETO"),
    ("checking", "salary", None),
    ("credit_card", "purchase_installment", "CARD"),
    ("credit_card", "bill_payment", "CARD"),
    ("credit_card", "foreign", "CARD"),
])
def test_payment_method(account_key: str, key: str, expected: str | None) -> None:
    account = CHECKING if account_key == "checking" else CARD
    assert map_transaction(raw_txn(account_key, key), account).payment_method == expected


def test_payment_method_from_payment_data_wins_over_operation_type() -> None:
    raw = raw_txn("checking", "pix_third_party")
    raw["operationType"] = "TRANSFERENCIA_MESMA_INSTITUICAO"
    assert map_transaction(raw, CHECKING).payment_method == "PIX"


def test_pending_and_posted_status() -> None:
    assert card("pending").status is TxnStatus.PENDING
    assert card("pending").amount == Decimal("-45.90")
    assert card("purchase_installment").status is TxnStatus.POSTED


def test_status_absent_defaults_to_posted() -> None:
    raw = raw_txn("checking", "debit")
    del raw["status"]
    assert map_transaction(raw, CHECKING).status is TxnStatus.POSTED


def test_full_bank_transaction_record() -> None:
    txn = bank("ted_credit")
    assert txn.id == "pluggy:6ec156fe-e8ac-4d9a-a4b3-7770529ab01c"
    assert txn.account_id == "pluggy:a658c848-e475-457b-8565-d1fffba127c4"
    assert (txn.description, txn.provider_category, txn.provider_category_id, txn.category) == (
        "TED Example", "Transfers", "05000000", "people")
    assert txn.booked_date == date(2020, 10, 14)
    assert txn.provider_created_at == datetime(2020, 10, 14, 3, 10, tzinfo=UTC)
    assert txn.pending_external_id is None


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("2024-03-10T02:30:00.000Z", date(2024, 3, 9)),  # 23:30 on the 9th in São Paulo
    ("2024-03-10T03:00:00.000Z", date(2024, 3, 10)),  # padded to local midnight
    ("2024-03-10T00:00:00.000Z", date(2024, 3, 10)),  # padded to UTC midnight: the date it names
    ("2024-03-10T14:32:10.000Z", date(2024, 3, 10)),  # a real time of day
    ("2024-03-10T23:59:59.000Z", date(2024, 3, 10)),  # 20:59 local
    ("2024-03-10T02:59:59.999Z", date(2024, 3, 9)),
    ("2024-03-10T03:00:00Z", date(2024, 3, 10)),  # no milliseconds
    ("2024-03-10", date(2024, 3, 10)),  # date-only
])
def test_local_date(value: str, expected: date) -> None:
    assert local_date(value) == expected


@pytest.mark.parametrize(("account_key", "key", "expected"), [
    ("checking", "debit", date(2024, 3, 9)),
    ("checking", "pix_third_party", date(2024, 3, 10)),
    ("checking", "ted_credit", date(2020, 10, 14)),
    ("credit_card", "purchase_installment", date(2024, 3, 12)),
])
def test_transaction_booked_date_in_sao_paulo(account_key: str, key: str, expected: date) -> None:
    account = CHECKING if account_key == "checking" else CARD
    assert map_transaction(raw_txn(account_key, key), account).booked_date == expected


def test_unreadable_date_is_bad_data() -> None:
    raw = raw_txn("checking", "debit")
    raw["date"] = "10/03/2024"
    with pytest.raises(BadData) as info:
        map_transaction(raw, CHECKING)
    assert info.value.code == "BAD_DATE"


# --------------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------------

_ID_ROWS = (
    "01000000 01010000 01020000 01030000 01040000 01050000 02000000 02010000 02020000 02030000 03000000 03010000",
    "03060000 04000000 04010000 04020000 04030000 05000000 05010000 05020000 05030000 05040000 05050000 05060000",
    "05070000 05080000 05090000 05100000 06000000 07000000 07010000 07010001 07010002 07010003 07020000 07030000",
    "07040000 08000000 08010000 08020000 08030000 08040000 08050000 08060000 08070000 08080000 08090000 09000000",
    "09010000 09020000 09030000 10000000 11000000 11010000 11020000 12000000 12010000 12020000 12030000 12040000",
    "13000000 14000000 15000000 15010000 15020000 15030000 16000000 16010000 16020000 16030000 17000000 17010000",
    "17020000 17020001 17020002 17020003 17030000 17040000 18000000 18010000 18020000 18030000 18040000 19000000",
    "19010000 19020000 19030000 19040000 19050000 19050001 19050002 19050003 20000000 20010000 20020000 20030000",
    "20040000 21000000 21010000 21020000",
)
PLUGGY_CATEGORY_IDS = [cid for row in _ID_ROWS for cid in row.split()]


@pytest.mark.parametrize("category_id", PLUGGY_CATEGORY_IDS)
def test_every_known_pluggy_category_is_categorized(category_id: str) -> None:
    unified = map_category(category_id)
    assert unified != UNCATEGORIZED
    assert unified in CATEGORIES


def test_category_list_is_complete() -> None:
    assert len(PLUGGY_CATEGORY_IDS) == len(set(PLUGGY_CATEGORY_IDS)) == 100


def test_every_category_map_target_exists() -> None:
    assert sorted(set(CATEGORY_MAP.values()) - set(CATEGORIES)) == []


@pytest.mark.parametrize(("category_id", "expected"), [
    ("01010000", "income.salary"),
    ("03060000", "income.interest"),
    ("04020000", "transfer.own_accounts"),
    ("05070000", "people"),
    ("05100000", "transfer.credit_card_payment"),
    ("19050001", "transport.fuel"),
    ("19050000", "transport"),  # the 8-digit rule applies only to its own id
    ("99999999", UNCATEGORIZED),
    ("22000000", UNCATEGORIZED),
    ("00000000", UNCATEGORIZED),
    ("", UNCATEGORIZED),
    (None, UNCATEGORIZED),
])
def test_map_category(category_id: str | None, expected: str) -> None:
    assert map_category(category_id) == expected


def test_null_category_id_is_uncategorized() -> None:
    txn = bank("uncategorized")
    assert (txn.category, txn.provider_category, txn.provider_category_id) == (UNCATEGORIZED, None, None)


@pytest.mark.parametrize("category_id", ["99999999", "42424242"])
def test_unknown_category_id_on_a_transaction_is_uncategorized(category_id: str) -> None:
    raw = raw_txn("checking", "debit")
    raw["categoryId"] = category_id
    txn = map_transaction(raw, CHECKING)
    assert (txn.category, txn.provider_category_id) == (UNCATEGORIZED, category_id)


# --------------------------------------------------------------------------------------------
# Robustness: unknown values, missing fields, exact decimals
# --------------------------------------------------------------------------------------------

def test_unknown_fields_and_enum_values_do_not_crash() -> None:
    raw = raw_txn("credit_card", "purchase_installment")
    raw["status"] = "SOMETHING_NEW"
    raw["type"] = "SOMETHING_NEW"
    raw["brandNewField"] = {"x": [1, None]}
    raw["creditCardMetadata"]["feeType"] = "SOMETHING_NEW"
    txn = map_transaction(raw, CARD)
    assert (txn.status, txn.amount) == (TxnStatus.POSTED, Decimal("-159.2"))


def test_transaction_on_an_account_of_unknown_type_keeps_the_bank_sign() -> None:
    raw_acc = raw_account("checking")
    raw_acc["subtype"] = "NEW_SUBTYPE"
    other = map_account(raw_acc)
    assert map_transaction(raw_txn("checking", "debit"), other).amount == Decimal("-212.45")


@pytest.mark.parametrize("missing", ["id", "amount", "date"])
def test_transaction_missing_required_field_is_bad_data(missing: str) -> None:
    raw = raw_txn("checking", "debit")
    del raw[missing]
    with pytest.raises(BadData) as info:
        map_transaction(raw, CHECKING)
    assert info.value.code == "BAD_TRANSACTION"
    assert missing in info.value.message


@pytest.mark.parametrize(("amount", "code"), [(None, "BAD_TRANSACTION"), ("abc", "BAD_TRANSACTION"),
                                               (True, "BAD_TRANSACTION"), ("NaN", "BAD_AMOUNT")])
def test_transaction_unusable_amount_is_bad_data(amount: Any, code: str) -> None:
    raw = raw_txn("checking", "debit")
    raw["amount"] = amount
    with pytest.raises(BadData) as info:
        map_transaction(raw, CHECKING)
    assert info.value.code == code and "amount" in info.value.message


def test_amounts_are_exact_decimals_from_floats_and_decimals() -> None:
    from_float = bank("debit").amount
    raw = json.loads((FIXTURES / "transactions.json").read_text(), parse_float=Decimal)["checking"]["debit"]
    from_decimal = map_transaction(raw, CHECKING).amount
    assert type(from_float) is Decimal and type(from_decimal) is Decimal
    assert str(from_float) == str(from_decimal) == "-212.45"
    raw["amount"] = 0.1 + 0.2  # a float that is not 0.3: repr is used, never the binary expansion
    assert str(map_transaction(raw, CHECKING).amount) == "0.30000000000000004"


# --------------------------------------------------------------------------------------------
# Sign rule property
# --------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2,
                      allow_nan=False, allow_infinity=False)


def _account_of(kind: AccountType) -> Account:
    return Account(provider="pluggy", external_id="acc-1", connection_external_id="item-1", type=kind,
                   name="Account", currency="BRL", current_balance=Decimal(0))


@given(amount=amounts, kind=st.sampled_from(list(AccountType)), as_float=st.booleans())
def test_sign_rule_is_an_involution_matching_the_table(amount: Decimal, kind: AccountType, as_float: bool) -> None:
    account = _account_of(kind)
    raw = raw_txn("checking", "debit")
    raw["amount"] = float(amount) if as_float else amount

    mapped = map_transaction(raw, account).amount
    expected = -amount if kind is AccountType.CREDIT_CARD else amount
    assert mapped == expected

    raw["amount"] = mapped
    assert map_transaction(raw, account).amount == amount


@given(amount=amounts.filter(lambda a: a != 0), original=amounts.filter(lambda a: a != 0),
       kind=st.sampled_from(list(AccountType)))
def test_foreign_sign_rule_applies_to_both_amounts(amount: Decimal, original: Decimal, kind: AccountType) -> None:
    raw = raw_txn("credit_card", "foreign")
    raw["amount"], raw["amountInAccountCurrency"] = original, amount
    txn = map_transaction(raw, _account_of(kind))
    flip = -1 if kind is AccountType.CREDIT_CARD else 1
    assert (txn.amount, txn.original_amount, txn.original_currency) == (flip * amount, flip * original, "USD")


# --------------------------------------------------------------------------------------------
# Items → connection state
# --------------------------------------------------------------------------------------------

def test_updated_success_is_active() -> None:
    state = map_item(raw_item("updated_success"), now=NOW)
    assert state.status is ConnectionStatus.ACTIVE
    assert state.provider_status == "UPDATED/SUCCESS"
    assert (state.status_detail, state.error_code, state.error_message, state.mfa_prompt) == (None, None, None, None)
    assert state.id == "pluggy:a0922d6f-2007-4169-a181-b961500608db"
    assert state.last_updated_at == datetime(2024, 7, 22, 11, 11, 23, 595000, tzinfo=UTC)
    assert state.institution is not None
    assert (state.institution.id, state.institution.name, state.institution.is_sandbox) == ("0", "Pluggy Bank", True)
    assert state.institution.logo_url == "https://cdn.pluggy.ai/assets/connector-icons/sandbox.svg"


@pytest.mark.parametrize("key", ["updating_login", "updating_transactions", "merging"])
def test_updating_and_merging_are_syncing(key: str) -> None:
    state = map_item(raw_item(key), now=NOW)
    assert state.status is ConnectionStatus.SYNCING
    assert state.error_code is None


def test_waiting_user_input_asks_for_the_mfa_parameter() -> None:
    state = map_item(raw_item("waiting_user_input"), now=NOW)
    assert state.status is ConnectionStatus.NEEDS_INPUT
    assert state.mfa_prompt == MfaPrompt(
        name="token", label="Token", kind="number", instructions="Digite o token enviado por SMS",
        expires_at=datetime(2024, 7, 22, 12, 5, tzinfo=UTC))
    assert state.status_detail == "The bank asks for a security code to finish connecting."


def test_waiting_user_input_without_parameter_still_prompts() -> None:
    raw = raw_item("waiting_user_input")
    raw["parameter"] = None
    state = map_item(raw, now=NOW)
    assert state.status is ConnectionStatus.NEEDS_INPUT
    assert state.mfa_prompt == MfaPrompt(name="token", label="Security code", kind="text")


def test_waiting_user_action_shows_the_instructions() -> None:
    state = map_item(raw_item("waiting_user_action"), now=NOW)
    assert state.status is ConnectionStatus.NEEDS_INPUT
    assert state.status_detail == "Autorize o acesso no aplicativo do banco"
    assert state.mfa_prompt is None


@pytest.mark.parametrize(("key", "code"), [
    ("login_error_invalid_credentials", "INVALID_CREDENTIALS"),
    ("login_error_invalid_mfa", "INVALID_CREDENTIALS_MFA"),
    ("outdated_account_locked", "ACCOUNT_LOCKED"),
])
def test_login_failures_need_reconnect_with_a_human_message(key: str, code: str) -> None:
    state = map_item(raw_item(key), now=NOW)
    assert state.status is ConnectionStatus.NEEDS_RECONNECT
    assert state.error_code == code
    assert state.error_message == state.status_detail == ERROR_MESSAGES[code]


def test_invalid_credentials_message_text() -> None:
    state = map_item(raw_item("login_error_invalid_credentials"), now=NOW)
    assert state.error_message == ("The bank rejected the username or password. "
                                   "Reconnect with the right credentials.")
    assert state.provider_status == "LOGIN_ERROR/INVALID_CREDENTIALS"


@pytest.mark.parametrize(("key", "code"), [
    ("outdated_site_not_available", "SITE_NOT_AVAILABLE"),
    ("outdated_already_logged_in", "ALREADY_LOGGED_IN"),
    ("outdated_unexpected_error_no_body", "UNEXPECTED_ERROR"),
])
def test_outdated_failures_that_may_pass_are_failed(key: str, code: str) -> None:
    state = map_item(raw_item(key), now=NOW)
    assert state.status is ConnectionStatus.FAILED
    assert state.error_code == code
    assert state.error_message == ERROR_MESSAGES[code]


def test_site_not_available_message_text() -> None:
    state = map_item(raw_item("outdated_site_not_available"), now=NOW)
    assert state.error_message == "The bank's site is unavailable right now. The next sync will try again."


def test_partial_success_is_active_with_a_detail() -> None:
    state = map_item(raw_item("updated_partial_success"), now=NOW)
    assert state.status is ConnectionStatus.ACTIVE
    assert state.status_detail == "The bank returned only part of the data on the last update."
    assert state.error_code is None


@pytest.mark.parametrize(("key", "status", "detail"), [
    ("consent_valid", ConnectionStatus.ACTIVE, None),
    ("consent_expiring", ConnectionStatus.CONSENT_EXPIRING,
     "Your consent for this bank expires soon. Reconnect to renew it."),
    ("consent_expired", ConnectionStatus.NEEDS_RECONNECT,
     "Your consent for this bank has expired. Reconnect to renew it."),
    ("outdated_consent_expired", ConnectionStatus.NEEDS_RECONNECT,
     "Your consent for this bank has expired. Reconnect to renew it."),
])
def test_consent_expiry(key: str, status: ConnectionStatus, detail: str | None) -> None:
    state = map_item(raw_item(key), now=NOW)
    assert state.status is status
    assert state.status_detail == detail
    assert state.consent_expires_at == datetime.fromisoformat(raw_item(key)["consentExpiresAt"])


def test_consent_warning_boundary_is_seven_days() -> None:
    raw = raw_item("consent_valid")
    raw["consentExpiresAt"] = "2024-07-29T12:00:00.000Z"  # exactly 7 days ahead
    assert map_item(raw, now=NOW).status is ConnectionStatus.CONSENT_EXPIRING
    raw["consentExpiresAt"] = "2024-07-29T12:00:01.000Z"
    assert map_item(raw, now=NOW).status is ConnectionStatus.ACTIVE


def test_unknown_item_status_does_not_crash() -> None:
    raw = raw_item("updated_success")
    raw["status"] = "SOMETHING_NEW"
    raw["executionStatus"] = "SOMETHING_ELSE_NEW"
    raw["futureField"] = [1, 2]
    state = map_item(raw, now=NOW)
    assert state.status is ConnectionStatus.FAILED
    assert state.provider_status == "SOMETHING_NEW/SOMETHING_ELSE_NEW"


def test_unknown_error_code_uses_the_provider_message() -> None:
    raw = raw_item("outdated_site_not_available")
    raw["executionStatus"] = "BRAND_NEW_ERROR"
    raw["error"] = {"code": "BRAND_NEW_ERROR", "message": "Something new went wrong."}
    state = map_item(raw, now=NOW)
    assert (state.status, state.error_code, state.error_message) == (
        ConnectionStatus.FAILED, "BRAND_NEW_ERROR", "Something new went wrong.")


def test_minimal_item_maps() -> None:
    state = map_item({"id": "item-1"}, now=NOW)
    assert (state.status, state.provider_status, state.institution) == (ConnectionStatus.FAILED, "UNKNOWN/-", None)


def test_item_without_id_is_bad_data() -> None:
    raw = raw_item("updated_success")
    del raw["id"]
    with pytest.raises(BadData) as info:
        map_item(raw, now=NOW)
    assert info.value.code == "BAD_ITEM"


# --------------------------------------------------------------------------------------------
# One mapping, two renderings: the Arrow batch the store ingests and the Transaction objects
# --------------------------------------------------------------------------------------------

def stored(txn: Transaction) -> dict[str, Any]:
    """A Transaction as the batch carries it: every field but the provider, amounts in half-even cents."""
    row = {name: getattr(txn, name) for name in TRANSACTION_SCHEMA.names}
    for name in ("amount", "original_amount"):
        row[name] = None if row[name] is None else money(row[name])
    return {**row, "status": txn.status.value}


@pytest.mark.parametrize("account_key", sorted(TRANSACTIONS))
def test_bulk_mapping_of_a_page_equals_the_objects_row_by_row(account_key: str) -> None:
    account = CHECKING if account_key == "checking" else CARD
    raws = [raw_txn(account_key, key) for key in TRANSACTIONS[account_key]]
    batch = map_transactions(read_transactions(raws), account)
    assert batch.schema.equals(TRANSACTION_SCHEMA)
    assert batch.to_pylist() == [stored(map_transaction(raw, account)) for raw in raws]


@given(amount=amounts, kind=st.sampled_from(list(AccountType)), as_float=st.booleans())
def test_bulk_sign_rule_matches_the_object_rule(amount: Decimal, kind: AccountType, as_float: bool) -> None:
    account = _account_of(kind)
    raw = raw_txn("checking", "debit")
    raw["amount"] = float(amount) if as_float else amount
    bulk = map_transactions(read_transactions([raw]), account).column("amount").to_pylist()
    assert bulk == [money(map_transaction(raw, account).amount)]


def test_bulk_mapping_raises_the_same_bad_data_as_one_row() -> None:
    good = raw_txn("checking", "debit")
    broken = raw_txn("checking", "salary")
    del broken["date"]
    with pytest.raises(BadData) as info:
        map_transactions(read_transactions([good, broken]), CHECKING)
    assert info.value.code == "BAD_TRANSACTION" and "date" in info.value.message
    broken = raw_txn("checking", "salary")
    broken["date"] = "10/03/2024"
    with pytest.raises(BadData) as info:
        map_transactions(read_transactions([good, broken]), CHECKING)
    assert info.value.code == "BAD_DATE"


def test_pages_are_mapped_a_few_at_a_time() -> None:
    pages = [[{"id": str(i)} for i in range(start, min(start + 500, 2250))] for start in range(0, 2250, 500)]
    chunks = list(page_chunks(pages, rows=1_000))
    assert [len(c) for c in chunks] == [1_000, 1_000, 250]
    assert [row["id"] for c in chunks for row in c] == [str(i) for i in range(2250)]
