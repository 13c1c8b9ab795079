"""The Plaid emulator's investments, liabilities, recurring streams, v2 categories and real-answer variants, checked
against the reference schema (plaid-openapi-subset.yml), and each variant through our mapping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from finance.model import AccountType
from finance.providers.plaid.mapping import map_account, map_transaction
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.sandbox.common import Clock
from tests.sandbox.test_plaid_emulator import BASE_URL, HEADERS, START, Api, make_api, new_item, sync

FAR = {"start_date": "2000-01-01", "end_date": "2100-01-01"}


@pytest.fixture
def emulator() -> PlaidEmulator:
    return PlaidEmulator(clock=Clock(start=START), seed=3)


@pytest.fixture
def api(emulator: PlaidEmulator) -> Iterator[Api]:
    with httpx.Client(transport=emulator.transport(), base_url=BASE_URL, headers=HEADERS) as http:
        yield Api(http)


@pytest.fixture
def token(api: Api) -> str:
    return new_item(api, transactions={"days_requested": 730})


def test_holdings_follow_the_balances(api: Api, token: str) -> None:
    held = api.ok("/investments/holdings/get", {"access_token": token})
    balances = {a["account_id"]: a["balances"]["current"] for a in held["accounts"]}
    assert {a["subtype"] for a in held["accounts"]} == {"ira", "401k", "brokerage"}
    for account_id, balance in balances.items():
        value = sum(h["institution_value"] for h in held["holdings"] if h["account_id"] == account_id)
        assert value == pytest.approx(balance, abs=0.05)
    assert {h["security_id"] for h in held["holdings"]} == {s["security_id"] for s in held["securities"]}
    cash = next(s for s in held["securities"] if s["type"] == "cash")
    assert cash["is_cash_equivalent"] and cash["close_price"] == 1.0
    bond = next(s for s in held["securities"] if s["type"] == "fixed income")
    assert bond["fixed_income"]["maturity_date"] > START.date().isoformat()
    ira = next(a["account_id"] for a in held["accounts"] if a["subtype"] == "ira")
    only = api.ok("/investments/holdings/get", {"access_token": token, "options": {"account_ids": [ira]}})
    assert {h["account_id"] for h in only["holdings"]} == {ira}
    api.fails("/investments/holdings/get", {"access_token": token, "options": {"account_ids": ["nope"]}}, 400,
              "INVALID_ACCOUNT_ID")
    products = api.ok("/item/get", {"access_token": token})["item"]["billed_products"]
    assert "investments" in products  # added on first use, as Plaid does


def test_investment_transactions_page_by_count_and_offset(api: Api, token: str) -> None:
    whole = api.ok("/investments/transactions/get", {"access_token": token, **FAR, "options": {"count": 500}})
    total = whole["total_investment_transactions"]
    assert total == len(whole["investment_transactions"]) > 30
    paged, offset = [], 0
    while offset < total:
        page = api.ok("/investments/transactions/get", {"access_token": token, **FAR,
                                                        "options": {"count": 7, "offset": offset}})
        assert page["total_investment_transactions"] == total and len(page["investment_transactions"]) <= 7
        assert {t["security_id"] for t in page["investment_transactions"] if t["security_id"]} <= {
            s["security_id"] for s in page["securities"]}
        paged += page["investment_transactions"]
        offset += 7
    assert paged == whole["investment_transactions"]
    assert [t["date"] for t in paged] == sorted((t["date"] for t in paged), reverse=True)
    buys = [t for t in paged if t["type"] == "buy"]
    assert buys and all(t["amount"] > 0 and t["quantity"] > 0 for t in buys)  # Plaid: cash out is positive
    assert all(t["amount"] < 0 for t in paged if t["subtype"] in ("dividend", "contribution", "deposit"))
    recent = api.ok("/investments/transactions/get", {"access_token": token, "start_date": "2025-05-01",
                                                      "end_date": "2025-05-31"})
    assert all("2025-05-01" <= t["date"] <= "2025-05-31" for t in recent["investment_transactions"])
    api.fails("/investments/transactions/get", {"access_token": token, "start_date": "2025-06-01",
                                                "end_date": "2025-05-01"}, 400, "INVALID_FIELD")
    api.fails("/investments/transactions/get", {"access_token": token, **FAR, "options": {"count": 0}}, 400,
              "INVALID_FIELD", validate_request=False)
    api.fails("/investments/transactions/get", {"access_token": token, "end_date": "2025-05-01"}, 400,
              "MISSING_FIELDS", validate_request=False)


def test_items_without_investments_or_liabilities(api: Api) -> None:
    dynamic = new_item(api, "user_transactions_dynamic", "any")
    api.fails("/investments/holdings/get", {"access_token": dynamic}, 400, "NO_INVESTMENT_ACCOUNTS")
    card_only = api.ok("/liabilities/get", {"access_token": dynamic})["liabilities"]
    assert len(card_only["credit"]) == 1 and card_only["student"] is None and card_only["mortgage"] is None
    houndstooth = new_item(api, institution="ins_109512")
    api.fails("/investments/transactions/get", {"access_token": houndstooth, **FAR}, 400, "PRODUCTS_NOT_SUPPORTED")
    api.fails("/liabilities/get", {"access_token": houndstooth}, 400, "PRODUCTS_NOT_SUPPORTED")


def test_liabilities_follow_the_ledger(api: Api, token: str) -> None:
    answer = api.ok("/liabilities/get", {"access_token": token})
    accounts = {a["account_id"]: a for a in answer["accounts"]}
    assert {a["subtype"] for a in accounts.values()} == {"credit card", "student", "mortgage", "installment"}
    owed = answer["liabilities"]
    (card,), (student,), (mortgage,), (loan,) = owed["credit"], owed["student"], owed["mortgage"], owed["loan"]
    today = START.date().isoformat()
    assert card["last_statement_issue_date"] < today <= card["next_payment_due_date"]
    assert card["minimum_payment_amount"] <= card["last_statement_balance"]
    assert card["aprs"][0]["balance_subject_to_apr"] == accounts[card["account_id"]]["balances"]["current"]
    assert student["last_payment_date"] < today and student["minimum_payment_amount"] > 0
    assert mortgage["next_payment_due_date"] > today and mortgage["interest_rate"]["type"] == "fixed"
    assert loan["principal_balance"] == accounts[loan["account_id"]]["balances"]["current"]
    assert loan["principal_balance"] < loan["origination_principal_amount"] and loan["payment_count"] == 36
    only = api.ok("/liabilities/get", {"access_token": token, "options": {"account_ids": [loan["account_id"]]}})
    assert only["liabilities"]["credit"] is None and len(only["liabilities"]["loan"]) == 1


def test_recurring_streams_in_the_asked_taxonomy(api: Api, token: str) -> None:
    rows = {t["transaction_id"]: t for t in sync(api, token)[0]["added"]}
    for version in ("v1", "v2"):
        answer = api.ok("/transactions/recurring/get", {"access_token": token, "options": {
            "personal_finance_category_version": version}})
        streams = answer["inflow_streams"] + answer["outflow_streams"]
        assert answer["personal_finance_category_version"] == version
        payroll = next(s for s in answer["inflow_streams"] if s["frequency"] == "BIWEEKLY")
        assert payroll["personal_finance_category"]["detailed"] == {"v1": "INCOME_WAGES", "v2": "INCOME_SALARY"}[
            version]
        assert {"Netflix", "Spotify", "AvalonBay Communities"} <= {s["merchant_name"] for s in streams}
        for stream in streams:
            assert set(stream["transaction_ids"]) <= set(rows) and stream["status"] in ("MATURE", "EARLY_DETECTION")
            assert all(not rows[t]["pending"] for t in stream["transaction_ids"])
    api.fails("/transactions/recurring/get", {"access_token": token, "account_ids": ["nope"]}, 400,
              "INVALID_ACCOUNT_ID")


def _sync_all(api: Api, token: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    rows, cursor = [], ""
    while True:
        body = {"access_token": token, "count": 500, "options": options, **({"cursor": cursor} if cursor else {})}
        page = api.ok("/transactions/sync", body)
        rows += page["added"] + page["modified"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return rows


def test_v2_categories_and_v1_by_default(api: Api, token: str) -> None:
    v2 = _sync_all(api, token, {"personal_finance_category_version": "v2"})
    other = new_item(api, transactions={"days_requested": 730})
    v1 = _sync_all(api, other, {})
    assert {t["personal_finance_category"]["version"] for t in v2} == {"v2"}
    assert {t["personal_finance_category"]["version"] for t in v1} == {"v1"}
    detailed_v2 = Counter(t["personal_finance_category"]["detailed"] for t in v2)
    detailed_v1 = Counter(t["personal_finance_category"]["detailed"] for t in v1)
    assert detailed_v2["INCOME_SALARY"] and not detailed_v2["INCOME_WAGES"]
    assert detailed_v1["INCOME_WAGES"] and not detailed_v1["INCOME_SALARY"]
    assert detailed_v2["TRANSFER_OUT_TRANSFER_OUT_FROM_APPS"] and not detailed_v1["TRANSFER_OUT_TRANSFER_OUT_FROM_APPS"]
    for row in v2:
        category = row["personal_finance_category"]
        assert category["detailed"].startswith(category["primary"] + "_")


VARIANTS = {
    "legacy category": lambda t: t["category"] is not None,
    "phone number": lambda t: any("phone_number" in c for c in t["counterparties"]),
    "null entity_id": lambda t: any(c["entity_id"] is None for c in t["counterparties"]),
    "null datetime": lambda t: t["datetime"] is None,
    "store number as text": lambda t: isinstance(t["location"]["store_number"], str),
    "merchant category code": lambda t: t["merchant_category_code"] is not None,
    "counterparty account numbers": lambda t: any(c.get("account_numbers") for c in t["counterparties"]),
}


def _plain(raw: dict[str, Any]) -> dict[str, Any]:
    """The row without the variants that should not change what it means."""
    parties = [{k: v for k, v in c.items() if k != "phone_number"} | {"entity_id": "e"} for c in raw["counterparties"]]
    return raw | {"category": None, "category_id": None, "datetime": "2025-01-01T00:00:00Z", "counterparties": parties,
                  "location": raw["location"] | {"store_number": None}}


def test_every_variant_appears_and_maps_as_the_plain_row(emulator: PlaidEmulator, api: Api, token: str) -> None:
    emulator.advance(days=1)
    rows = _sync_all(api, token, {"personal_finance_category_version": "v2"})
    accounts = {a["account_id"]: map_account(a, "item") for a in api.ok("/accounts/get", {"access_token": token})[
        "accounts"]}
    seen = Counter(name for t in rows for name, shows in VARIANTS.items() if shows(t))
    assert set(seen) == set(VARIANTS) and all(n < len(rows) for n in seen.values()), seen
    for raw in rows:
        mapped = map_transaction(raw, accounts[raw["account_id"]])
        assert mapped == map_transaction(_plain(raw), accounts[raw["account_id"]])
        assert mapped.merchant_category_code == raw["merchant_category_code"]
    wired = [map_transaction(t, accounts[t["account_id"]]) for t in rows if VARIANTS["counterparty account numbers"](t)]
    assert {t.counterparty_account for t in wired} == {"202015 55555555"}
    persistent = [a for a in api.ok("/accounts/get", {"access_token": token})["accounts"] if
                  "persistent_account_id" in a]
    assert 0 < len(persistent) < len(accounts)
    assert accounts[persistent[0]["account_id"]].type in set(AccountType)


def test_webhooks_of_an_item_made_for_a_user(emulator: PlaidEmulator, api: Api) -> None:
    hook = "https://example.com/plaid/hook"
    created = api.ok("/sandbox/public_token/create", {"institution_id": "ins_109508", "initial_products": [
        "transactions", "investments", "liabilities"], "options": {"webhook": hook}, "user_id": "usr_9nSp2KuZ2x4JDw"})
    item = api.ok("/item/public_token/exchange", {"public_token": created["public_token"]})
    for kind in ("HOLDINGS", "INVESTMENTS_TRANSACTIONS", "LIABILITIES"):
        api.ok("/sandbox/item/fire_webhook", {"access_token": item["access_token"], "webhook_type": kind,
                                              "webhook_code": "DEFAULT_UPDATE"})
    sent = [w["payload"] for w in emulator.sent_webhooks(item["item_id"])]
    assert [p["webhook_type"] for p in sent] == ["HOLDINGS", "INVESTMENTS_TRANSACTIONS", "LIABILITIES"]
    assert all(p["user_id"] == "usr_9nSp2KuZ2x4JDw" and p["item_id"] == item["item_id"] for p in sent)
    plain = new_item(make_api(emulator), webhook=hook)
    plain_id = api.ok("/item/get", {"access_token": plain})["item"]["item_id"]
    api.ok("/sandbox/item/fire_webhook", {"access_token": plain, "webhook_code": "NEW_ACCOUNTS_AVAILABLE"})
    assert all("user_id" not in w["payload"] for w in emulator.sent_webhooks(plain_id))
