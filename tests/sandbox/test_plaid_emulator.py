"""The Plaid emulator against reference/plaid.md and Plaid's OpenAPI schema: flows, cursors, churn, faults, state."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator, FormatChecker

from finance.providers.plaid.sandbox import PlaidApiError, PlaidEmulator, items, transactions
from finance.providers.plaid.sandbox.household import UsHousehold, pfc_primary
from finance.providers.plaid.sandbox.webhooks import webhook_signing_key
from finance.sandbox.common import Clock
from finance.sandbox.ledger import stable_uuid

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
BASE_URL = "https://sandbox.plaid.com"
START = datetime(2025, 6, 15, 15, 0, tzinfo=UTC)
HEADERS = {"PLAID-CLIENT-ID": "test-client", "PLAID-SECRET": "test-secret", "Plaid-Version": "2020-09-14"}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_TOKEN = r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}"


# -- the schema --------------------------------------------------------------------------------------------------------

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """YAML without timestamp resolution: dates in the spec stay strings, as they are on the wire."""


_Loader.yaml_implicit_resolvers = {
    key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in _SafeLoader.yaml_implicit_resolvers.items()}


def _json_schema(node: Any, properties: bool = False) -> Any:
    """OpenAPI 3.0 → JSON Schema (draft 4): `nullable: true` becomes "null or the schema"; examples dropped."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if properties:  # keys are property names, not keywords
        return {name: _json_schema(schema) for name, schema in node.items()}
    converted = {key: _json_schema(value, key == "properties") for key, value in node.items()
                 if key not in ("nullable", "example", "examples")}
    return {"anyOf": [{"type": "null"}, converted]} if node.get("nullable") is True else converted


@cache
def _spec() -> dict[str, Any]:
    with (REFERENCE / "plaid-openapi-subset.yml").open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)


EXTENSIBLE = {"AccountSubtype": ["installment"]}
"""Enums Plaid has extended since the subset's API version (1.697.4), with the values the emulator uses from the newer
API: a loan's `installment` subtype."""


@cache
def _components() -> dict[str, Any]:
    components = _json_schema(_spec()["components"])
    for name, values in EXTENSIBLE.items():
        for branch in components["schemas"][name]["anyOf"]:
            if "enum" in branch:
                branch["enum"] = [*branch["enum"], *values]
    return dict(components)


@cache
def _validator(name: str) -> Draft4Validator:
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(
        lambda v: not isinstance(v, str) or (bool(_RFC3339.match(v)) and bool(datetime.fromisoformat(v))))
    checker.checks("date", raises=ValueError)(
        lambda v: not isinstance(v, str) or (bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v)) and bool(
            date.fromisoformat(v))))
    schema = {"$ref": f"#/components/schemas/{name}", "components": _components()}
    return Draft4Validator(schema, format_checker=checker)


def assert_valid(name: str, obj: Any) -> None:
    """`obj` validates against the subset schema's component `name` (date and date-time checked strictly)."""
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def _schema_of(path: str, part: str) -> str:
    operation = _spec()["paths"][path]["post"]
    holder = operation["requestBody"] if part == "request" else operation["responses"]["200"]
    return str(holder["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


# -- a tiny client -----------------------------------------------------------------------------------------------------

class Api:
    """Posts to the emulator and checks both directions against the schema: the request body, then the 2xx body or
    the PlaidError body, the request_id and the echoed Plaid-Version."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def post(self, path: str, body: dict[str, Any], *, validate_request: bool = True) -> httpx.Response:
        if validate_request:
            assert_valid(_schema_of(path, "request"), body)
        response = self.http.post(path, json=body)
        assert response.headers["Plaid-Version"] == "2020-09-14"
        payload = response.json()
        assert re.fullmatch(r"[0-9A-Za-z]{15}", payload["request_id"])
        assert_valid(_schema_of(path, "response") if response.status_code == 200 else "PlaidError", payload)
        return response

    def ok(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def fails(self, path: str, body: dict[str, Any], status: int, code: str, *,
              validate_request: bool = True) -> dict[str, Any]:
        response = self.post(path, body, validate_request=validate_request)
        assert (response.status_code, response.json()["error_code"]) == (status, code), response.text
        return dict(response.json())


def make_api(emulator: PlaidEmulator, headers: dict[str, str] = HEADERS) -> Api:
    return Api(httpx.Client(base_url=BASE_URL, transport=emulator.transport(), headers=headers))


def new_item(api: Api, user: str = "user_good", password: str = "pass_good", *, institution: str = "ins_109508",
             products: tuple[str, ...] = ("transactions",), **options: Any) -> str:
    """/sandbox/public_token/create → /item/public_token/exchange; the access token."""
    created = api.ok("/sandbox/public_token/create", {
        "institution_id": institution, "initial_products": list(products),
        "options": {"override_username": user, "override_password": password, **options}})
    assert re.fullmatch(f"public-sandbox-{_TOKEN}", created["public_token"])
    exchanged = api.ok("/item/public_token/exchange", {"public_token": created["public_token"]})
    assert re.fullmatch(f"access-sandbox-{_TOKEN}", exchanged["access_token"])
    assert re.fullmatch(r"[0-9A-Za-z]{37}", exchanged["item_id"])
    return str(exchanged["access_token"])


def sync(api: Api, token: str, cursor: str = "", count: int = 500, *, validate: bool = True,
         **options: Any) -> tuple[dict[str, list[dict[str, Any]]], str, int]:
    """A whole /transactions/sync walk from `cursor`: (added/modified/removed of all pages, final cursor, pages)."""
    out: dict[str, list[dict[str, Any]]] = {"added": [], "modified": [], "removed": []}
    pages = 0
    while True:
        body: dict[str, Any] = {"access_token": token, "cursor": cursor, "count": count}
        if options:
            body["options"] = options
        response = api.post("/transactions/sync", body) if validate else api.http.post("/transactions/sync",
                                                                                         json=body)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["added"]) + len(page["modified"]) + len(page["removed"]) <= count
        for key in out:
            out[key] += page[key]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return out, cursor, pages


def apply(state: dict[str, dict[str, Any]], delta: dict[str, list[dict[str, Any]]]) -> None:
    """What a client does with a delta, asserting it never duplicates or loses a row."""
    for tx in delta["removed"]:
        assert state.pop(tx["transaction_id"])["account_id"] == tx["account_id"]
    for tx in delta["added"]:
        assert tx["transaction_id"] not in state, "added twice"
        state[tx["transaction_id"]] = tx
    for tx in delta["modified"]:
        assert tx["transaction_id"] in state, "modified before added"
        state[tx["transaction_id"]] = tx


@pytest.fixture
def emulator() -> PlaidEmulator:
    return PlaidEmulator(clock=Clock(start=START))


@pytest.fixture
def api(emulator: PlaidEmulator) -> Iterator[Api]:
    client = make_api(emulator)
    yield client
    client.http.close()


@pytest.fixture
def token(api: Api) -> str:
    return new_item(api)


# -- link, items, accounts ---------------------------------------------------------------------------------------------

def test_link_token_create_and_update_mode(api: Api, token: str) -> None:
    body = {"client_name": "Finance Dashboard", "language": "en", "country_codes": ["US"],
            "user": {"client_user_id": "user-1"}, "products": ["transactions"],
            "transactions": {"days_requested": 730}, "webhook": "https://example.com/plaid"}
    created = api.ok("/link/token/create", body)
    assert re.fullmatch(f"link-sandbox-{_TOKEN}", created["link_token"])
    assert created["expiration"] == "2025-06-15T19:00:00Z"  # four hours
    update = api.ok("/link/token/create", {**body, "products": [], "access_token": token})
    assert update["expiration"] == "2025-06-15T15:30:00Z"  # thirty minutes in update mode
    api.fails("/link/token/create", {**body, "products": ["balance"]}, 400, "INVALID_PRODUCT")
    api.fails("/link/token/create", {**body, "products": []}, 400, "INVALID_FIELD")
    missing = {k: v for k, v in body.items() if k != "user"}
    api.fails("/link/token/create", missing, 400, "MISSING_FIELDS")
    api.fails("/link/token/create", {**body, "language": "xx"}, 400, "INVALID_FIELD")
    api.ok("/item/remove", {"access_token": token})
    api.fails("/link/token/create", {**body, "products": [], "access_token": token}, 400, "ITEM_NOT_FOUND")


def test_link_completion_creates_an_item(emulator: PlaidEmulator, api: Api) -> None:
    link = api.ok("/link/token/create", {"client_name": "App", "language": "en", "country_codes": ["US"],
                                         "user": {"client_user_id": "u"}, "products": ["transactions"],
                                         "webhook": "https://example.com/hook"})["link_token"]
    with pytest.raises(PlaidApiError) as wrong:
        emulator.complete_link(link, password="nope")
    assert (wrong.value.code, wrong.value.error_type) == ("INVALID_CREDENTIALS", "ITEM_ERROR")
    public = emulator.complete_link(link, institution_id="ins_109512")
    exchanged = api.ok("/item/public_token/exchange", {"public_token": public})
    item = api.ok("/item/get", {"access_token": exchanged["access_token"]})["item"]
    assert (item["institution_name"], item["webhook"]) == ("Houndstooth Bank", "https://example.com/hook")
    update = api.ok("/link/token/create", {"client_name": "App", "language": "en", "country_codes": ["US"],
                                           "user": {"client_user_id": "u"},
                                           "access_token": exchanged["access_token"]})["link_token"]
    same = api.ok("/item/public_token/exchange", {"public_token": emulator.complete_link(update)})
    assert same == {**exchanged, "request_id": same["request_id"]}  # update mode keeps the access token
    emulator.advance(hours=4)
    with pytest.raises(PlaidApiError) as expired:
        emulator.complete_link(link)
    assert expired.value.code == "INVALID_LINK_TOKEN"
    assert [i["item_id"] for i in emulator.list_items()] == [item["item_id"]]
    late = api.ok("/link/token/create", {"client_name": "App", "language": "en", "country_codes": ["US"],
                                         "user": {"client_user_id": "u"},
                                         "access_token": exchanged["access_token"]})["link_token"]
    api.ok("/item/remove", {"access_token": exchanged["access_token"]})
    with pytest.raises(PlaidApiError) as removed:
        emulator.complete_link(late)
    assert removed.value.code == "ITEM_NOT_FOUND" and emulator.list_items() == []


def test_public_token_is_one_time_and_expires(emulator: PlaidEmulator, api: Api) -> None:
    body = {"institution_id": "ins_109508", "initial_products": ["transactions"]}
    public = api.ok("/sandbox/public_token/create", body)["public_token"]
    api.ok("/item/public_token/exchange", {"public_token": public})
    api.fails("/item/public_token/exchange", {"public_token": public}, 400, "INVALID_PUBLIC_TOKEN")
    late = api.ok("/sandbox/public_token/create", body)["public_token"]
    emulator.advance(hours=0.5)
    api.fails("/item/public_token/exchange", {"public_token": late}, 400, "INVALID_PUBLIC_TOKEN")
    api.fails("/item/public_token/exchange", {"public_token": "public-sandbox-nope"}, 400, "INVALID_PUBLIC_TOKEN")


def test_item_get_shows_the_item_and_its_status(api: Api, token: str) -> None:
    got = api.ok("/item/get", {"access_token": token})
    item, status = got["item"], got["status"]
    assert (item["institution_id"], item["institution_name"]) == ("ins_109508", "First Platypus Bank")
    assert item["billed_products"] == item["products"] == ["transactions"]
    assert "transactions" not in item["available_products"] and "balance" in item["available_products"]
    assert (item["webhook"], item["error"], item["update_type"]) == ("", None, "background")
    assert item["created_at"] == "2025-06-15T15:00:00Z"
    assert status["transactions"] == {"last_successful_update": "2025-06-15T15:00:00Z", "last_failed_update": None}
    assert status["last_webhook"] is None


def test_user_good_has_plaids_sandbox_accounts(api: Api, token: str) -> None:
    accounts = api.ok("/accounts/get", {"access_token": token})["accounts"]
    shape = [(a["name"], a["type"], a["subtype"], a["mask"]) for a in accounts]
    assert shape == [
        ("Plaid Checking", "depository", "checking", "0000"), ("Plaid Saving", "depository", "savings", "1111"),
        ("Plaid CD", "depository", "cd", "2222"), ("Plaid Credit Card", "credit", "credit card", "3333"),
        ("Plaid Money Market", "depository", "money market", "4444"), ("Plaid IRA", "investment", "ira", "5555"),
        ("Plaid 401k", "investment", "401k", "6666"), ("Plaid Student Loan", "loan", "student", "7777"),
        ("Plaid Mortgage", "loan", "mortgage", "8888"), ("Plaid Brokerage", "investment", "brokerage", "9999"),
        ("Plaid Installment Loan", "loan", "installment", "1212")]
    by_subtype = {a["subtype"]: a["balances"] for a in accounts}
    assert by_subtype["credit card"]["limit"] == 10000 and by_subtype["checking"]["limit"] is None
    assert all(b["iso_currency_code"] == "USD" and b["unofficial_currency_code"] is None for b in by_subtype.values())
    assert all(b["current"] > 0 for b in by_subtype.values())  # loans and the card: amount owed
    delta, _, _ = sync(api, token)
    pending = Counter()
    for tx in delta["added"]:
        if tx["pending"]:
            pending[tx["account_id"]] += tx["amount"]
    ids = {a["subtype"]: a["account_id"] for a in accounts}
    checking, card = by_subtype["checking"], by_subtype["credit card"]
    assert checking["available"] == pytest.approx(checking["current"] - pending[ids["checking"]], abs=0.01)
    assert card["available"] == pytest.approx(10000 - card["current"] - pending[ids["credit card"]], abs=0.01)
    chosen = api.ok("/accounts/get", {"access_token": token, "options": {"account_ids": [ids["savings"]]}})
    assert [a["subtype"] for a in chosen["accounts"]] == ["savings"]
    api.fails("/accounts/get", {"access_token": token, "options": {"account_ids": ["nope"]}}, 400,
              "INVALID_ACCOUNT_ID")
    live = api.ok("/accounts/balance/get", {"access_token": token})["accounts"]
    assert [a["account_id"] for a in live] == [a["account_id"] for a in accounts]


def test_balance_get_is_real_time_and_accounts_get_cached(emulator: PlaidEmulator, api: Api, token: str) -> None:
    emulator.advance(hours=5)  # before the next refresh (every six hours)
    cached = api.ok("/accounts/get", {"access_token": token})["accounts"]
    live = api.ok("/accounts/balance/get", {"access_token": token})["accounts"]
    emulator.advance(hours=1)
    refreshed = api.ok("/accounts/get", {"access_token": token})["accounts"]
    assert refreshed != cached
    assert [a["balances"] for a in live] != [a["balances"] for a in cached]


# -- /transactions/sync ------------------------------------------------------------------------------------------------

def test_full_walk_paginates_by_count(api: Api, token: str) -> None:
    whole, cursor, pages = sync(api, token)
    assert pages == 1 and not whole["modified"] and not whole["removed"]
    paged, paged_cursor, paged_pages = sync(api, token, count=7)
    assert paged == whole and paged_cursor == cursor
    assert paged_pages == -(-len(whole["added"]) // 7)
    assert len({t["transaction_id"] for t in whole["added"]}) == len(whole["added"]) > 250
    assert len(cursor) <= 256
    dates = sorted(t["date"] for t in whole["added"])
    assert dates[0] >= "2025-03-17" and dates[-1] >= "2025-06-14"  # the default 90 days
    nothing, again, _ = sync(api, token, cursor)
    assert nothing == {"added": [], "modified": [], "removed": []} and again


def test_transactions_look_like_plaids(api: Api) -> None:
    token = new_item(api, transactions={"days_requested": 730})
    delta, _, _ = sync(api, token, count=500)
    rows = delta["added"]
    assert min(t["date"] for t in rows) <= "2024-05-15"  # more than 13 months of history
    for tx in rows:
        assert (tx["iso_currency_code"] is None) != (tx["unofficial_currency_code"] is None)
        assert tx["amount"] == round(tx["amount"], 2) and tx["authorized_date"] <= tx["date"]
        pfc = tx["personal_finance_category"]
        assert pfc["detailed"].startswith(pfc["primary"] + "_") and pfc["confidence_level"]
        assert tx["payment_channel"] in ("online", "in store", "other")
        assert (tx["pending_transaction_id"] is None) or not tx["pending"]
    detailed = Counter(t["personal_finance_category"]["detailed"] for t in rows)
    for category in ("INCOME_WAGES", "RENT_AND_UTILITIES_RENT", "FOOD_AND_DRINK_GROCERIES", "FOOD_AND_DRINK_RESTAURANT",
                     "TRANSPORTATION_TAXIS_AND_RIDE_SHARES", "ENTERTAINMENT_TV_AND_MOVIES",
                     "ENTERTAINMENT_MUSIC_AND_AUDIO", "RENT_AND_UTILITIES_GAS_AND_ELECTRICITY",
                     "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT", "TRANSFER_OUT_SAVINGS", "TRANSFER_IN_SAVINGS",
                     "LOAN_PAYMENTS_STUDENT_LOAN_PAYMENT", "INCOME_INTEREST_EARNED"):
        assert detailed[category] >= 12, category
    merchants = {t["merchant_name"] for t in rows}
    assert {"Whole Foods", "Trader Joe's", "Uber", "Netflix", "Spotify", "Amazon"} <= merchants
    payroll = sorted(t["date"] for t in rows if t["personal_finance_category"]["detailed"] == "INCOME_WAGES")
    assert all(t["amount"] < 0 for t in rows if t["personal_finance_category"]["primary"] == "INCOME")
    assert {(date.fromisoformat(b) - date.fromisoformat(a)).days for a, b in pairwise(payroll)} == {14}
    accounts = {a["subtype"]: a["account_id"] for a in api.ok("/accounts/get", {"access_token": token})["accounts"]}
    payments = [t for t in rows if t["personal_finance_category"]["detailed"] == "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT"]
    paid = {(t["date"], t["amount"]) for t in payments if t["account_id"] == accounts["checking"]}
    credited = {(t["date"], -t["amount"]) for t in payments if t["account_id"] == accounts["credit card"]}
    assert paid == credited and all(amount > 0 for _, amount in paid)
    assert {t["account_id"] for t in rows} == {accounts[s] for s in ("checking", "savings", "cd", "credit card",
                                                                      "money market", "student")}
    tipped = [t for t in rows if t["pending_transaction_id"] and t["merchant_name"] in ("The Smith", "Balthazar")]
    assert tipped  # (their pending amounts are checked in the churn test)


def test_incremental_sync_posts_pending_rows_with_new_ids(emulator: PlaidEmulator, api: Api, token: str) -> None:
    first, cursor, _ = sync(api, token)
    state: dict[str, dict[str, Any]] = {}
    apply(state, first)
    pending = {t["transaction_id"]: t for t in first["added"] if t["pending"]}
    assert pending
    emulator.advance(days=6)
    delta, _, _ = sync(api, token, cursor, count=7)
    apply(state, delta)
    removed = {t["transaction_id"] for t in delta["removed"]}
    assert set(pending) <= removed  # every pending row posted within six days
    posted = {t["pending_transaction_id"]: t for t in delta["added"] if t["pending_transaction_id"]}
    assert set(pending) <= set(posted)
    for pending_id, old in pending.items():
        new = posted[pending_id]
        assert new["transaction_id"] != pending_id and not new["pending"]
        assert (new["account_id"], new["name"], new["authorized_date"]) == (
            old["account_id"], old["name"], old["authorized_date"])
        assert old["amount"] <= new["amount"] <= round(old["amount"] * 1.25, 2)  # a tip at most
    assert any(t["date"] > "2025-06-15" for t in delta["added"])


def test_tips_and_enrichment_show_up_over_time(emulator: PlaidEmulator, api: Api, token: str) -> None:
    _, cursor, _ = sync(api, token)
    seen: dict[str, dict[str, Any]] = {}
    tips, modified = 0, []
    for _ in range(40):
        emulator.advance(hours=6)
        delta, cursor, _ = sync(api, token, cursor)
        for tx in delta["added"]:
            old = seen.get(tx["pending_transaction_id"] or "")
            tips += old is not None and tx["amount"] > old["amount"]
            seen[tx["transaction_id"]] = tx
        modified += delta["modified"]
    assert tips >= 2
    assert modified and all(t["merchant_name"] and t["personal_finance_category"]["confidence_level"] == "VERY_HIGH"
                            for t in modified)
    before = [seen[t["transaction_id"]] for t in modified if t["transaction_id"] in seen]
    assert before and all(t["merchant_name"] is None and t["personal_finance_category"]["confidence_level"] == "LOW"
                          for t in before)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.floats(min_value=0.5, max_value=80), min_size=1, max_size=5),
       count=st.sampled_from([25, 500]), user=st.sampled_from(["user_good", "user_transactions_dynamic"]))
def test_replaying_deltas_gives_the_current_set(steps: list[float], count: int, user: str) -> None:
    emulator = PlaidEmulator(clock=Clock(start=START))
    api = make_api(emulator)
    token = new_item(api, user, "pass_good")
    state: dict[str, dict[str, Any]] = {}
    cursor = ""
    for hours in [0.0, *steps]:
        emulator.advance(hours=hours)
        delta, cursor, _ = sync(api, token, cursor, count, validate=False)
        apply(state, delta)
        fresh, _, _ = sync(api, token, validate=False)
        assert state == {t["transaction_id"]: t for t in fresh["added"]}


def test_mutation_fault_then_restart_from_the_pre_loop_cursor(emulator: PlaidEmulator, api: Api, token: str) -> None:
    expected, expected_cursor, _ = sync(api, token)
    emulator.faults.add("mutation_during_pagination", path="/transactions/sync")
    first = api.ok("/transactions/sync", {"access_token": token, "count": 7})
    assert first["has_more"]
    error = api.fails("/transactions/sync", {"access_token": token, "cursor": first["next_cursor"], "count": 7},
                      400, "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")
    assert error["error_type"] == "TRANSACTIONS_ERROR"
    emulator.advance(hours=1 / 60)  # a fresh minute for the per-item rate limit (50 syncs a minute)
    restarted, cursor, _ = sync(api, token, "", count=7)
    assert restarted == expected and cursor == expected_cursor


def test_clock_moving_mid_walk_is_a_mutation(emulator: PlaidEmulator, api: Api, token: str) -> None:
    _, pre_loop, _ = sync(api, token)
    emulator.advance(days=2)
    first = api.ok("/transactions/sync", {"access_token": token, "cursor": pre_loop, "count": 3})
    assert first["has_more"]
    emulator.advance(days=1)
    api.fails("/transactions/sync", {"access_token": token, "cursor": first["next_cursor"], "count": 3}, 400,
              "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")
    state: dict[str, dict[str, Any]] = {}
    apply(state, sync(api, token)[0])
    assert len(state) > 250  # restarting from the pre-loop cursor works
    _, settled, _ = sync(api, token, pre_loop, count=3)
    emulator.advance(hours=1)  # within the same refresh: nothing changed, no error
    assert api.ok("/transactions/sync", {"access_token": token, "cursor": settled})["has_more"] is False


def test_sandbox_history_window(api: Api) -> None:
    token = new_item(api, transactions={"start_date": "2025-05-01", "end_date": "2025-05-31"})
    rows = sync(api, token)[0]["added"]
    assert rows and all("2025-05-01" <= t["authorized_date"] <= "2025-05-31" for t in rows)
    api.fails("/sandbox/public_token/create", {"institution_id": "ins_109508", "initial_products": ["transactions"],
                                               "options": {"transactions": {"start_date": "May 1st"}}}, 400,
              "INVALID_FIELD", validate_request=False)


def test_cursor_now_and_page_size_cap(monkeypatch: pytest.MonkeyPatch, emulator: PlaidEmulator, api: Api,
                                      token: str) -> None:
    now = api.ok("/transactions/sync", {"access_token": token, "cursor": "now"})
    assert (now["added"], now["has_more"]) == ([], False)
    emulator.advance(days=1)
    assert sync(api, token, now["next_cursor"])[0]["added"]
    monkeypatch.setattr(transactions, "SYNC_PAGE_SIZE_CAP", 50)
    page = api.ok("/transactions/sync", {"access_token": token, "count": 500})
    assert len(page["added"]) == 50 and page["has_more"]


def test_per_account_cursor_streams(api: Api, token: str) -> None:
    accounts = {a["subtype"]: a["account_id"] for a in api.ok("/accounts/get", {"access_token": token})["accounts"]}
    delta, cursor, _ = sync(api, token, account_id=accounts["credit card"])
    assert delta["added"] and {t["account_id"] for t in delta["added"]} == {accounts["credit card"]}
    page = api.ok("/transactions/sync", {"access_token": token, "options": {"account_id": accounts["checking"]}})
    assert [a["account_id"] for a in page["accounts"]] == [accounts["checking"]]
    api.fails("/transactions/sync", {"access_token": token, "cursor": cursor}, 400, "INVALID_FIELD")
    api.fails("/transactions/sync", {"access_token": token, "options": {"account_id": accounts["401k"]}}, 400,
              "INVALID_ACCOUNT_ID")


def test_sync_request_validation(api: Api, token: str) -> None:
    for count in (0, 501):
        api.fails("/transactions/sync", {"access_token": token, "count": count}, 400, "INVALID_FIELD",
                  validate_request=False)
    api.fails("/transactions/sync", {"access_token": token, "cursor": "bm9wZQ=="}, 400, "INVALID_FIELD")
    other = new_item(api)
    _, foreign, _ = sync(api, other)
    api.fails("/transactions/sync", {"access_token": token, "cursor": foreign}, 400, "INVALID_FIELD")
    api.fails("/transactions/sync", {"access_token": token, "options": None}, 400, "INVALID_FIELD",
              validate_request=False)
    original = api.ok("/transactions/sync", {"access_token": token, "count": 1, "options": {
        "include_original_description": True, "personal_finance_category_version": "v2"}})["added"][0]
    assert original["original_description"] and original["personal_finance_category"]["version"] == "v2"


def test_not_ready_until_transactions_is_initialized(monkeypatch: pytest.MonkeyPatch, emulator: PlaidEmulator,
                                                     api: Api) -> None:
    token = new_item(api, products=("auth",))
    assert api.ok("/item/get", {"access_token": token})["status"]["transactions"]["last_successful_update"] is None
    first = api.ok("/transactions/sync", {"access_token": token})
    assert (first["next_cursor"], first["transactions_update_status"], first["added"]) == ("", "NOT_READY", [])
    ready = api.ok("/transactions/sync", {"access_token": token})
    assert ready["added"] and ready["transactions_update_status"] == "HISTORICAL_UPDATE_COMPLETE"
    assert "transactions" in api.ok("/item/get", {"access_token": token})["item"]["billed_products"]
    monkeypatch.setattr(transactions, "TRANSACTIONS_READY_AFTER", timedelta(seconds=30))
    slow = new_item(api)
    assert api.ok("/transactions/sync", {"access_token": slow})["next_cursor"] == ""
    emulator.advance(hours=0.01)
    assert api.ok("/transactions/sync", {"access_token": slow})["next_cursor"]


# -- item errors -------------------------------------------------------------------------------------------------------

def test_reset_login_until_update_mode(emulator: PlaidEmulator, api: Api) -> None:
    token = new_item(api, webhook="https://example.com/hook")
    _, cursor, _ = sync(api, token)
    assert api.ok("/sandbox/item/reset_login", {"access_token": token})["reset_login"] is True
    item = api.ok("/item/get", {"access_token": token})
    assert item["item"]["error"]["error_code"] == "ITEM_LOGIN_REQUIRED"
    assert item["status"]["transactions"]["last_failed_update"] == "2025-06-15T15:00:00Z"
    for path in ("/accounts/get", "/accounts/balance/get", "/transactions/sync"):
        error = api.fails(path, {"access_token": token}, 400, "ITEM_LOGIN_REQUIRED")
        assert error["error_type"] == "ITEM_ERROR"
    webhook = emulator.sent_webhooks(item["item"]["item_id"])[-1]
    assert webhook["url"] == "https://example.com/hook"
    assert_valid("ItemErrorWebhook", webhook["payload"])
    assert webhook["payload"]["error"]["error_code"] == "ITEM_LOGIN_REQUIRED"
    emulator.advance(days=3)  # no refreshes while the login is needed
    assert api.ok("/item/get", {"access_token": token})["status"]["transactions"]["last_successful_update"] == (
        "2025-06-15T15:00:00Z")
    link = api.ok("/link/token/create", {"client_name": "App", "language": "en", "country_codes": ["US"],
                                         "user": {"client_user_id": "u"}, "access_token": token})["link_token"]
    with pytest.raises(PlaidApiError):
        emulator.complete_link(link, username="user_transactions_dynamic", password="x")
    emulator.complete_link(link)  # the user logs in again in update mode; no exchange needed
    repaired = api.ok("/item/get", {"access_token": token})
    assert repaired["item"]["error"] is None
    assert repaired["status"]["transactions"]["last_successful_update"] == "2025-06-18T15:00:00Z"
    delta, _, _ = sync(api, token, cursor)
    assert delta["added"] and delta["removed"]


def test_item_remove_then_item_not_found(api: Api, token: str) -> None:
    assert set(api.ok("/item/remove", {"access_token": token, "reason_code": "OTHER"})) == {"request_id"}
    for path in ("/item/get", "/item/remove", "/accounts/get", "/transactions/sync"):
        api.fails(path, {"access_token": token}, 400, "ITEM_NOT_FOUND")
    api.fails("/item/get", {"access_token": "access-production-123"}, 400, "INVALID_ACCESS_TOKEN")
    api.fails("/item/get", {"access_token": f"access-sandbox-{'0' * 8}-0000-0000-0000-{'0' * 12}"}, 400,
              "INVALID_ACCESS_TOKEN")


def test_custom_user_overrides_accounts_and_transactions(api: Api) -> None:
    config = {"override_accounts": [
        {"type": "depository", "subtype": "checking", "starting_balance": 1000, "force_available_balance": 900,
         "meta": {"name": "Test Checking", "official_name": "Test Gold Checking", "mask": "1234"},
         "transactions": [
             {"date_transacted": "2025-06-01", "date_posted": "2025-06-02", "amount": 42.5, "description": "Grocery"},
             {"date_transacted": "2025-06-10", "date_posted": "2025-06-10", "amount": -2500,
              "description": "ACME payroll"},
             {"date_transacted": "2025-06-14", "date_posted": "2099-01-01", "amount": 9.99,
              "description": "Future-posted so pending"}]},
        {"type": "credit", "subtype": "credit card", "starting_balance": 410,
         "meta": {"name": "Test Card", "mask": "3333", "limit": 2000}},
        {"type": "depository", "subtype": "savings", "currency": "BTC", "starting_balance": 0.5,
         "transactions": [{"date_transacted": "2025-06-05", "date_posted": "2025-06-05", "amount": -0.25,
                           "description": "Mining reward"}]},
    ]}
    token = new_item(api, "user_custom", json.dumps(config))
    accounts = api.ok("/accounts/get", {"access_token": token})["accounts"]
    assert [(a["name"], a["mask"], a["official_name"]) for a in accounts] == [
        ("Test Checking", "1234", "Test Gold Checking"), ("Test Card", "3333", None), ("Plaid Savings", "0002", None)]
    checking, card, coins = (a["balances"] for a in accounts)
    assert (checking["current"], checking["available"]) == (1000, 900)
    assert (card["current"], card["limit"], card["available"]) == (410, 2000, 1590)
    assert (coins["current"], coins["iso_currency_code"], coins["unofficial_currency_code"]) == (0.5, None, "BTC")
    rows = {t["name"]: t for t in sync(api, token)[0]["added"]}
    assert set(rows) == {"Grocery", "ACME payroll", "Future-posted so pending", "Mining reward"}
    assert (rows["Grocery"]["amount"], rows["Grocery"]["date"], rows["Grocery"]["pending"]) == (42.5, "2025-06-02",
                                                                                                 False)
    assert rows["Future-posted so pending"]["pending"] is True
    assert rows["ACME payroll"]["personal_finance_category"]["detailed"] == "INCOME_WAGES"
    assert rows["Mining reward"]["unofficial_currency_code"] == "BTC" and rows["Mining reward"]["amount"] == -0.25
    forced = new_item(api, "user_custom", json.dumps({"force_error": "ITEM_LOGIN_REQUIRED"}))
    api.fails("/accounts/get", {"access_token": forced}, 400, "ITEM_LOGIN_REQUIRED")


@pytest.mark.parametrize(("user", "password", "code", "error_type"), [
    ("user_good", "wrong", "INVALID_CREDENTIALS", "ITEM_ERROR"),
    ("somebody", "pass_good", "INVALID_CREDENTIALS", "ITEM_ERROR"),
    ("user_transactions_dynamic", " ", "INVALID_CREDENTIALS", "ITEM_ERROR"),
    ("user_custom", "not json", "INVALID_CREDENTIALS", "ITEM_ERROR"),
    ("user_good", "error_ITEM_LOCKED", "ITEM_LOCKED", "ITEM_ERROR"),
    ("user_custom", '{"force_error": "INSTITUTION_NOT_RESPONDING"}', "INSTITUTION_NOT_RESPONDING",
     "INSTITUTION_ERROR"),
    ("user_custom", '{"override_accounts": [{"type": "spaceship"}]}', "INVALID_FIELD", "INVALID_REQUEST"),
])
def test_wrong_credentials_and_forced_errors(api: Api, user: str, password: str, code: str, error_type: str) -> None:
    error = api.fails("/sandbox/public_token/create", {
        "institution_id": "ins_109508", "initial_products": ["transactions"],
        "options": {"override_username": user, "override_password": password}}, 400, code)
    assert error["error_type"] == error_type


def test_sandbox_public_token_create_validation(api: Api) -> None:
    api.fails("/sandbox/public_token/create", {"institution_id": "ins_1", "initial_products": ["transactions"]},
              400, "INVALID_INSTITUTION")
    api.fails("/sandbox/public_token/create", {"institution_id": "ins_109512", "initial_products": ["investments"]},
              400, "PRODUCTS_NOT_SUPPORTED")
    api.fails("/sandbox/public_token/create", {"institution_id": "ins_109508"}, 400, "MISSING_FIELDS",
              validate_request=False)
    api.fails("/sandbox/public_token/create", {"institution_id": "ins_109508", "initial_products": ["transactions"],
                                               "colour": "blue"}, 400, "UNKNOWN_FIELDS")


def test_invalid_keys(emulator: PlaidEmulator) -> None:
    strict = PlaidEmulator(clock=Clock(start=START), client_id="id-1", secret="s3cret")
    good = make_api(strict, {"PLAID-CLIENT-ID": "id-1", "PLAID-SECRET": "s3cret", "Plaid-Version": "2020-09-14"})
    new_item(good)
    bad = make_api(strict, {"PLAID-CLIENT-ID": "id-1", "PLAID-SECRET": "nope", "Plaid-Version": "2020-09-14"})
    error = bad.fails("/institutions/search", {"query": "bank", "country_codes": ["US"]}, 400, "INVALID_API_KEYS")
    assert error["error_type"] == "INVALID_INPUT"
    in_body = make_api(strict, {"Plaid-Version": "2020-09-14"})
    in_body.ok("/institutions/search", {"query": "bank", "country_codes": ["US"], "client_id": "id-1",
                                        "secret": "s3cret"})
    anonymous = make_api(emulator, {"Plaid-Version": "2020-09-14"})
    anonymous.fails("/institutions/search", {"query": "bank", "country_codes": ["US"]}, 400, "INVALID_API_KEYS")
    make_api(emulator, {"PLAID-CLIENT-ID": "any", "PLAID-SECRET": "thing", "Plaid-Version": "2020-09-14"}).ok(
        "/institutions/search", {"query": "bank", "country_codes": ["US"]})


def test_unknown_routes_bodies_and_default_version(emulator: PlaidEmulator, api: Api) -> None:
    missing = api.http.post("/nowhere", json={})
    assert missing.status_code == 404 and missing.json()["error_code"] == "NOT_FOUND"
    assert_valid("PlaidError", missing.json())
    assert api.http.get("/item/get").status_code == 404
    broken = api.http.post("/item/get", content=b"{not json")
    assert broken.status_code == 400 and broken.json()["error_code"] == "INVALID_BODY"
    bare = httpx.Client(base_url=BASE_URL, transport=emulator.transport(),
                        headers={"PLAID-CLIENT-ID": "a", "PLAID-SECRET": "b"})
    response = bare.post("/institutions/search", json={"query": "tartan", "country_codes": ["US"]})
    assert response.headers["Plaid-Version"] == "2020-09-14" and response.status_code == 200
    assert emulator.request_log[-1] == ("POST", "/institutions/search")


# -- institutions, webhooks, sandbox helpers ---------------------------------------------------------------------------

def test_institutions(api: Api) -> None:
    names = {}
    for institution_id in ("ins_109508", "ins_109509", "ins_109510", "ins_109511", "ins_109512"):
        found = api.ok("/institutions/get_by_id", {"institution_id": institution_id, "country_codes": ["US"]})
        institution = found["institution"]
        assert institution["country_codes"] == ["US"] and institution["oauth"] is False
        assert "transactions" in institution["products"] and "url" not in institution
        names[institution_id] = institution["name"]
    assert names == {"ins_109508": "First Platypus Bank", "ins_109509": "First Gingham Credit Union",
                     "ins_109510": "Tattersall Federal Credit Union", "ins_109511": "Tartan Bank",
                     "ins_109512": "Houndstooth Bank"}
    detailed = api.ok("/institutions/get_by_id", {"institution_id": "ins_109512", "country_codes": ["US"], "options": {
        "include_optional_metadata": True, "include_status": True, "include_auth_metadata": True}})["institution"]
    assert (detailed["primary_color"], detailed["routing_numbers"][0]) == ("#004966", "011000138")
    assert detailed["status"]["item_logins"]["status"] == "HEALTHY" and detailed["auth_metadata"]
    api.fails("/institutions/get_by_id", {"institution_id": "ins_1", "country_codes": ["US"]}, 400,
              "INVALID_INSTITUTION")
    api.fails("/institutions/get_by_id", {"institution_id": "ins_109508", "country_codes": ["GB"]}, 400,
              "INVALID_INSTITUTION")
    search = api.ok("/institutions/search", {"query": "platypus", "country_codes": ["US"],
                                             "products": ["transactions"]})["institutions"]
    assert [i["institution_id"] for i in search] == ["ins_109508"]
    liabilities = api.ok("/institutions/search", {"query": "t", "country_codes": ["US"],
                                                  "products": ["liabilities"]})["institutions"]
    assert {i["name"] for i in liabilities} == {"First Platypus Bank", "Tattersall Federal Credit Union",
                                                "Tartan Bank", "First Gingham Credit Union"}


def test_webhook_verification_key(emulator: PlaidEmulator, api: Api) -> None:
    kid = stable_uuid(7, "webhook-verification-key")
    key = api.ok("/webhook_verification_key/get", {"key_id": kid})["key"]
    assert (key["alg"], key["kty"], key["crv"], key["use"], key["kid"], key["expired_at"]) == (
        "ES256", "EC", "P-256", "sig", kid, None)

    def number(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    public = ec.EllipticCurvePublicNumbers(number(key["x"]), number(key["y"]), ec.SECP256R1()).public_key()
    expected = webhook_signing_key(7).public_key().public_numbers()
    assert public.public_numbers() == expected
    assert PlaidEmulator(clock=Clock(start=START))._jwk == key | {}  # every instance with the seed agrees
    api.fails("/webhook_verification_key/get", {"key_id": "nope"}, 400, "INVALID_WEBHOOK_VERIFICATION_KEY_ID")


def test_webhook_update_and_fire_webhook(emulator: PlaidEmulator, api: Api, token: str) -> None:
    fire = {"access_token": token, "webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE"}
    api.fails("/sandbox/item/fire_webhook", fire, 400, "SANDBOX_WEBHOOK_INVALID")
    updated = api.ok("/item/webhook/update", {"access_token": token, "webhook": "https://example.com/new"})
    assert updated["item"]["webhook"] == "https://example.com/new"
    assert api.ok("/sandbox/item/fire_webhook", fire)["webhook_fired"] is True
    api.fails("/sandbox/item/fire_webhook", {**fire, "webhook_type": "LIABILITIES", "webhook_code": "DEFAULT_UPDATE"},
              400, "SANDBOX_PRODUCT_NOT_ENABLED")
    for code in ("NEW_ACCOUNTS_AVAILABLE", "PENDING_DISCONNECT", "USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED"):
        api.ok("/sandbox/item/fire_webhook", {"access_token": token, "webhook_code": code})
    status = api.ok("/item/get", {"access_token": token})
    assert status["status"]["last_webhook"] == {"sent_at": "2025-06-15T15:00:00Z", "code_sent": "USER_ACCOUNT_REVOKED"}
    sent = emulator.sent_webhooks(status["item"]["item_id"])
    schemas = ["WebhookUpdateAcknowledgedWebhook", "SyncUpdatesAvailableWebhook", "NewAccountsAvailableWebhook",
               "PendingDisconnectWebhook", "UserPermissionRevokedWebhook", "UserAccountRevokedWebhook"]
    assert len(sent) == len(schemas)
    for webhook, schema in zip(sent, schemas, strict=True):
        assert_valid(schema, webhook["payload"])
        assert webhook["payload"]["environment"] == "sandbox"
    for code in ("DEFAULT_UPDATE", "RECURRING_TRANSACTIONS_UPDATE"):
        api.ok("/sandbox/item/fire_webhook", {"access_token": token, "webhook_code": code})
    default, recurring = (w["payload"] for w in emulator.sent_webhooks(status["item"]["item_id"])[-2:])
    assert (default["webhook_type"], default["new_transactions"], default["error"]) == ("TRANSACTIONS", 0, None)
    assert len(recurring["account_ids"]) == 6
    api.fails("/sandbox/item/fire_webhook", {"access_token": token, "webhook_code": "NOPE"}, 400, "INVALID_FIELD",
              validate_request=False)
    with pytest.raises(KeyError):
        emulator.sent_webhooks("nope")


def test_sandbox_transactions_create(emulator: PlaidEmulator, api: Api, token: str) -> None:
    rows = [{"date_transacted": "2025-06-14", "date_posted": "2025-06-15", "amount": 12.34,
             "description": "Coffee shop"},
            {"date_transacted": "2025-06-15", "date_posted": "2025-06-15", "amount": -50, "description": "Refund"}]
    api.fails("/sandbox/transactions/create", {"access_token": token, "transactions": rows}, 400, "INVALID_FIELD")
    dynamic = new_item(api, "user_transactions_dynamic", "anything")
    _, cursor, _ = sync(api, dynamic)
    emulator.advance(hours=1)
    assert set(api.ok("/sandbox/transactions/create", {"access_token": dynamic, "transactions": rows})) == {
        "request_id"}
    delta, _, _ = sync(api, dynamic, cursor)
    created = {t["name"]: t for t in delta["added"]}
    assert set(created) == {"Coffee shop", "Refund"}
    coffee = created["Coffee shop"]
    assert (coffee["amount"], coffee["date"], coffee["authorized_date"], coffee["pending"]) == (
        12.34, "2025-06-15", "2025-06-14", False)
    assert coffee["personal_finance_category"]["detailed"] == "FOOD_AND_DRINK_COFFEE"
    checking = api.ok("/accounts/get", {"access_token": dynamic})["accounts"][0]
    assert coffee["account_id"] == checking["account_id"]
    api.fails("/sandbox/transactions/create", {"access_token": dynamic, "transactions": rows * 6}, 400,
              "INVALID_FIELD")
    old = [{**rows[0], "date_transacted": "2025-05-01", "date_posted": "2025-05-02"}]
    api.fails("/sandbox/transactions/create", {"access_token": dynamic, "transactions": old}, 400, "INVALID_FIELD")


def test_dynamic_user_churns_often(emulator: PlaidEmulator, api: Api) -> None:
    token = new_item(api, "user_transactions_dynamic", "x")
    _, cursor, _ = sync(api, token)
    totals: Counter[str] = Counter()
    for _ in range(16):
        emulator.advance(hours=6)
        delta, cursor, _ = sync(api, token, cursor)
        totals.update({key: len(rows) for key, rows in delta.items()})
        totals["posted"] += sum(1 for t in delta["added"] if t["pending_transaction_id"])
    assert totals["removed"] >= 12 and totals["posted"] >= 12 and totals["modified"] >= 1


def test_sandbox_login_expiry(monkeypatch: pytest.MonkeyPatch, emulator: PlaidEmulator, api: Api,
                              token: str) -> None:
    monkeypatch.setattr(items, "LOGIN_EXPIRES_AFTER", timedelta(days=30))
    emulator.advance(days=29)
    api.ok("/accounts/get", {"access_token": token})
    emulator.advance(days=2)
    api.fails("/accounts/get", {"access_token": token}, 400, "ITEM_LOGIN_REQUIRED")
    status = api.ok("/item/get", {"access_token": token})["status"]["transactions"]
    assert status == {"last_successful_update": "2025-07-15T15:00:00Z", "last_failed_update": "2025-07-15T15:00:00Z"}


# -- faults and rate limits --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "status", "code", "error_type"), [
    ("rate_limit", 429, "ITEM_GET_LIMIT", "RATE_LIMIT_EXCEEDED"),
    ("server_error", 500, "INTERNAL_SERVER_ERROR", "API_ERROR"),
    ("unavailable", 503, "PLANNED_MAINTENANCE", "API_ERROR"),
    ("institution_down", 400, "INSTITUTION_DOWN", "INSTITUTION_ERROR"),
    ("institution_not_responding", 400, "INSTITUTION_NOT_RESPONDING", "INSTITUTION_ERROR"),
    ("product_not_ready", 400, "PRODUCT_NOT_READY", "ITEM_ERROR"),
])
def test_error_fault_kinds(emulator: PlaidEmulator, api: Api, token: str, kind: str, status: int, code: str,
                           error_type: str) -> None:
    emulator.faults.add(kind, path="/item/get")
    error = api.fails("/item/get", {"access_token": token}, status, code)
    assert error["error_type"] == error_type and error["error_message"]
    api.ok("/item/get", {"access_token": token})  # a fault fires once by default


def test_timeout_malformed_and_unknown_faults(emulator: PlaidEmulator, api: Api, token: str) -> None:
    emulator.faults.add("timeout", path="/item/get")
    with pytest.raises(httpx.ReadTimeout):
        api.http.post("/item/get", json={"access_token": token})
    emulator.faults.add("malformed_json", path="/item/get")
    response = api.http.post("/item/get", json={"access_token": token})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        response.json()
    emulator.faults.add("no_such_fault")
    with pytest.raises(ValueError):
        api.http.post("/item/get", json={"access_token": token})


def test_balance_get_rate_limit_per_item(emulator: PlaidEmulator, api: Api, token: str) -> None:
    other = new_item(api)
    emulator.advance(hours=0.02)  # 15:01:12, a fresh minute
    for _ in range(5):
        api.ok("/accounts/balance/get", {"access_token": token})
    error = api.fails("/accounts/balance/get", {"access_token": token}, 429, "ACCOUNTS_BALANCE_GET_LIMIT")
    assert error["error_type"] == "RATE_LIMIT_EXCEEDED"
    api.ok("/accounts/balance/get", {"access_token": other})
    api.ok("/accounts/get", {"access_token": token})
    emulator.advance(hours=1 / 60)
    api.ok("/accounts/balance/get", {"access_token": token})


def test_household_validation() -> None:
    assert pfc_primary("TRANSFER_IN_SAVINGS") == "TRANSFER_IN" and pfc_primary("OTHER_OTHER") == "OTHER"
    with pytest.raises(ValueError):
        pfc_primary("GROCERIES")
    for accounts in (("savings",), ("checking", "checking"), ("checking", "yacht")):
        with pytest.raises(ValueError):
            UsHousehold(7, "item", START, accounts=accounts)


# -- determinism, state, serving ---------------------------------------------------------------------------------------

def _without_request_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_request_ids(v) for k, v in value.items() if k != "request_id"}
    if isinstance(value, list | tuple):
        return [_without_request_ids(v) for v in value]
    return value


def test_same_seed_and_clock_give_identical_data() -> None:
    dumps = []
    for seed in (3, 3, 4):
        api = make_api(PlaidEmulator(clock=Clock(start=START), seed=seed))
        token = new_item(api)
        answers = [api.ok("/item/get", {"access_token": token}), api.ok("/accounts/get", {"access_token": token}),
                   sync(api, token, validate=False)]
        dumps.append(json.dumps(_without_request_ids(answers)))
    assert dumps[0] == dumps[1] != dumps[2]


def test_state_is_shared_through_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "plaid.json"
    first = PlaidEmulator(clock=Clock(start=START), state_path=path)
    api = make_api(first)
    token = new_item(api, "user_custom", json.dumps({"override_accounts": [{"type": "depository"}]}))
    good = new_item(api, webhook="https://example.com/hook")

    clock = Clock()
    second = PlaidEmulator(clock=clock, state_path=path)
    assert second.clock is clock and clock.now() == START
    other = make_api(second)
    assert _without_request_ids(other.ok("/item/get", {"access_token": good})) == _without_request_ids(
        api.ok("/item/get", {"access_token": good}))
    assert sync(other, good, validate=False)[0] == sync(api, good, validate=False)[0]
    _, cursor, _ = sync(api, good, validate=False)
    first.advance(days=1)
    assert second.clock.now() == START + timedelta(days=1)
    assert sync(other, good, cursor, validate=False)[0] == sync(api, good, cursor, validate=False)[0]
    other.ok("/item/remove", {"access_token": token})
    api.fails("/item/get", {"access_token": token}, 400, "ITEM_NOT_FOUND")
    other.ok("/sandbox/item/reset_login", {"access_token": good})
    api.fails("/transactions/sync", {"access_token": good}, 400, "ITEM_LOGIN_REQUIRED")
    listed = second.list_items()
    assert [i["item_id"] for i in first.list_items()] == [i["item_id"] for i in listed] and len(listed) == 1
    assert_valid("ItemWithConsentFields", listed[0])
    assert listed[0]["error"]["error_code"] == "ITEM_LOGIN_REQUIRED"
    state = json.loads(path.read_text())
    assert set(state) == {"version", "clock", "outbox", "items", "removedItems", "linkTokens", "publicTokens",
                          "counters"}
    assert path.stat().st_size < 20_000  # transactions are generated, never stored
    assert "pass_good" not in path.read_text() and "override_accounts" not in path.read_text()


def test_served_over_loopback_with_a_real_client(emulator: PlaidEmulator) -> None:
    with emulator.serve() as server, httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=10) as http:
        assert server.base_url.startswith("http://127.0.0.1:")
        api = Api(http)
        token = new_item(api)
        delta, _, pages = sync(api, token, count=100)
        assert delta["added"] and pages > 1
        api.fails("/item/get", {"access_token": "nope"}, 400, "INVALID_ACCESS_TOKEN")
    assert ("POST", "/transactions/sync") in emulator.request_log
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{server.base_url}/item/get", json={}, timeout=2)
