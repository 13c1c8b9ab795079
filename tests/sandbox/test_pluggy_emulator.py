"""The Pluggy emulator against reference/pluggy.md and Pluggy's JSON Schemas: flows, cursors, faults, limits, state."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from jsonschema import Draft7Validator, FormatChecker

import finance.providers.pluggy.sandbox.base as emulator_base
import finance.providers.pluggy.sandbox.items as emulator_items
import finance.providers.pluggy.sandbox.transactions as emulator_transactions
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.providers.pluggy.sandbox.household import brazilian_ledger
from finance.sandbox.common import Clock
from finance.sandbox.ledger import iso_z

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
BASE_URL = "https://api.pluggy.ai"
START = datetime(2025, 6, 15, 15, 0, tzinfo=UTC)
CREDENTIALS = {"clientId": "test-client", "clientSecret": "test-secret"}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DEFINITIONS = json.loads((REFERENCE / "pluggy-sdk-schemas.json").read_text())["definitions"]
# The one deviation from the SDK types: a transaction's running balance may be null when the institution gives none
# (reference/pluggy.md §5.2 and the OpenAPI description of Transaction.balance); the SDK types it as a number.
_DEFINITIONS["Transaction"]["properties"]["balance"] = {"type": ["number", "null"]}
_CHECKER = FormatChecker(formats=())
_CHECKER.checks("date-time", raises=ValueError)(
    lambda v: not isinstance(v, str) or (bool(_RFC3339.match(v)) and bool(datetime.fromisoformat(v))))


def assert_valid(schema: str, obj: Any) -> None:
    """`obj` validates against Pluggy's schema `schema` (date-time formats checked strictly)."""
    validator = Draft7Validator({"$ref": f"#/definitions/{schema}", "definitions": _DEFINITIONS},
                                format_checker=_CHECKER)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    assert not errors, f"{schema}: {errors[0].message} at {list(errors[0].absolute_path)}"


def make_client(emulator: PluggyEmulator) -> httpx.Client:
    client = httpx.Client(base_url=BASE_URL, transport=emulator.transport())
    client.headers["X-API-KEY"] = client.post("/auth", json=CREDENTIALS).json()["apiKey"]
    return client


def advance(emulator: PluggyEmulator, *clients: httpx.Client, days: float = 0, hours: float = 0) -> None:
    """Move the emulator clock, then give each client a fresh API key (keys live two hours of that clock)."""
    emulator.advance(days=days, hours=hours)
    for client in clients:
        client.headers["X-API-KEY"] = client.post("/auth", json=CREDENTIALS).json()["apiKey"]


def create_item(client: httpx.Client, user: str = "user-ok", password: str = "password-ok",
                **extra: Any) -> dict[str, Any]:
    """POST /items, check the UPDATING answer, and return the item as the next read shows it."""
    created = client.post("/items", json={"connectorId": 0, "parameters": {"user": user, "password": password},
                                          **extra})
    assert created.status_code == 200, created.text
    assert_valid("PluggyItem", created.json())
    assert (created.json()["status"], created.json()["executionStatus"]) == ("UPDATING", "LOGIN_IN_PROGRESS")
    item = client.get(f"/items/{created.json()['id']}").json()
    assert_valid("PluggyItem", item)
    return item


def walk(client: httpx.Client, query: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row of a /v2/transactions walk that follows `next` verbatim, and the `next` links seen."""
    rows, links = [], []
    url: str | None = f"/v2/transactions{query}"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        assert_valid("PluggyTransactionCursorPage", page)
        rows += page["results"]
        url = f"/v2/transactions{page['next']}" if page["next"] else None
        links += [page["next"]] if page["next"] else []
    return rows, links


def accounts_of(client: httpx.Client, item_id: str) -> dict[str, dict[str, Any]]:
    page = client.get("/accounts", params={"itemId": item_id}).json()
    assert_valid("PluggyAccountList", page)
    return {a["subtype"]: a for a in page["results"]}


@pytest.fixture
def emulator() -> PluggyEmulator:
    return PluggyEmulator(clock=Clock(start=START))


@pytest.fixture
def client(emulator: PluggyEmulator) -> Iterator[httpx.Client]:
    client = make_client(emulator)
    yield client
    client.close()


@pytest.fixture
def item(client: httpx.Client) -> dict[str, Any]:
    return create_item(client)


# -- auth --------------------------------------------------------------------------------------------------------------

def test_auth_issues_a_two_hour_jwt_on_the_emulator_clock(client: httpx.Client) -> None:
    key = client.post("/auth", json=CREDENTIALS).json()["apiKey"]
    header, payload, signature = key.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "HS256" and signature
    assert claims["exp"] == int((START + timedelta(hours=2)).timestamp())


def test_auth_checks_configured_keys() -> None:
    emulator = PluggyEmulator(clock=Clock(start=START), client_id="id", client_secret="secret")
    with httpx.Client(base_url=BASE_URL, transport=emulator.transport()) as client:
        assert client.post("/auth", json={"clientId": "id", "clientSecret": "secret"}).status_code == 200
        for body in ({"clientId": "id", "clientSecret": "nope"}, {"clientId": "", "clientSecret": ""}, {}):
            response = client.post("/auth", json=body)
            assert response.status_code == 401
            assert response.json() == {"code": 401, "codeDescription": "CLIENT_KEYS_UNAUTHORIZED",
                                       "message": "Client keys are invalid"}


def test_missing_or_forged_key_is_401_and_an_expired_one_a_bare_403(emulator: PluggyEmulator,
                                                                    client: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=BASE_URL, transport=emulator.transport())
    assert anonymous.get("/categories").status_code == 401
    forged = client.headers["X-API-KEY"][:-2] + "xx"
    response = client.get("/categories", headers={"X-API-KEY": forged})
    assert response.status_code == 401 and "codeDescription" not in response.json()
    other_emulator_key = make_client(PluggyEmulator(clock=Clock(start=START), seed=99)).headers["X-API-KEY"]
    assert client.get("/categories", headers={"X-API-KEY": other_emulator_key}).status_code == 401
    emulator.advance(hours=2)
    expired = client.get("/categories")
    assert expired.status_code == 403 and expired.json() == {"code": 403,
                                                             "message": "Missing or invalid authorization token"}


# -- connectors --------------------------------------------------------------------------------------------------------

def test_connectors_hide_sandbox_unless_asked_and_filter(client: httpx.Client) -> None:
    plain = client.get("/connectors").json()
    with_sandbox = client.get("/connectors", params={"sandbox": "true"}).json()
    assert_valid("PluggyConnectorList", plain)
    assert_valid("PluggyConnectorList", with_sandbox)
    assert all(not c["isSandbox"] for c in plain["results"]) and len(plain["results"]) >= 2
    bank = next(c for c in with_sandbox["results"] if c["isSandbox"])
    assert (bank["id"], bank["name"], bank["type"], bank["country"], bank["hasMFA"]) == (
        0, "Pluggy Bank", "PERSONAL_BANK", "BR", False)
    assert [(c["name"], c["type"]) for c in bank["credentials"]] == [("user", "text"), ("password", "password")]
    assert set(bank["products"]) == {"ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "INVESTMENTS",
                                     "INVESTMENTS_TRANSACTIONS", "LOANS"}
    assert (bank["health"]["status"], bank["health"]["incidents"]) == ("ONLINE", [])
    assert [c["name"] for c in client.get("/connectors", params={"name": "itau"}).json()["results"]] == ["Itaú"]
    assert client.get("/connectors", params={"countries": "MX,AR"}).json()["total"] == 0
    assert client.get("/connectors", params={"types": "INVESTMENT", "sandbox": "true"}).json()["results"] == []
    detailed = client.get("/connectors/0", params={"healthDetails": "true"}).json()
    assert_valid("PluggyConnector", detailed)
    assert detailed["health"]["details"]["connectionsLast6Hours"] > 0
    missing = client.get("/connectors/4242")
    assert missing.status_code == 404 and missing.json()["codeDescription"] == "CONNECTOR_NOT_FOUND"


def test_connector_validation_lists_parameter_errors(client: httpx.Client) -> None:
    ok = client.post("/connectors/0/validate", json={"user": "user-ok", "password": "password-ok"}).json()
    assert ok == {"parameters": {"user": "user-ok", "password": "password-ok"}, "errors": []}
    bad = client.post("/connectors/601/validate", json={"cpf": "12"}).json()
    assert [(e["code"], e["parameter"]) for e in bad["errors"]] == [("002", "cpf")]
    missing = client.post("/connectors/0/validate", json={"user": "user-ok"}).json()
    assert missing["errors"] == [{"code": "001", "message": "password parameter is required",
                                  "parameter": "password"}]


# -- items -------------------------------------------------------------------------------------------------------------

def test_user_ok_connects_with_a_checking_account_and_a_card(client: httpx.Client, item: dict[str, Any]) -> None:
    assert (item["status"], item["executionStatus"], item["error"], item["statusDetail"]) == (
        "UPDATED", "SUCCESS", None, None)
    assert item["connector"]["name"] == "Pluggy Bank" and item["connector"]["isSandbox"]
    assert item["lastUpdatedAt"] == "2025-06-15T15:00:00.000Z"
    assert item["nextAutoSyncAt"] == "2025-06-16T15:00:00.000Z"
    assert item["consentExpiresAt"] == "2026-06-15T15:00:00.000Z"
    accounts = accounts_of(client, item["id"])
    checking, card = accounts["CHECKING_ACCOUNT"], accounts["CREDIT_CARD"]
    assert (checking["type"], card["type"]) == ("BANK", "CREDIT")
    assert re.fullmatch(r"\d{4}/\d{5}-\d", checking["number"]) and card["number"] == "xxxx8670"
    assert checking["currencyCode"] == card["currencyCode"] == "BRL"
    assert checking["bankData"]["transferNumber"] == checking["number"] and checking["creditData"] is None
    credit = card["creditData"]
    assert (credit["brand"], credit["level"], credit["creditLimit"]) == ("MASTERCARD", "BLACK", 12000.0)
    assert credit["availableCreditLimit"] == round(credit["creditLimit"] - card["balance"], 2)
    assert card["balance"] > 0 and credit["balanceCloseDate"] < credit["balanceDueDate"]
    for account in (checking, card):
        fetched = client.get(f"/accounts/{account['id']}").json()
        assert_valid("PluggyAccount", fetched)
        assert fetched == account
    assert client.get("/accounts", params={"itemId": item["id"], "type": "CREDIT"}).json()["total"] == 1
    missing = client.get(f"/accounts/{item['id']}")
    assert missing.status_code == 404 and missing.json()["codeDescription"] == "ACCOUNT_NOT_FOUND"


def test_item_resource_fields_stay_null_through_the_connect_lifecycle(emulator: PluggyEmulator,
                                                                      client: httpx.Client) -> None:
    """pluggy-sdk 0.92.0 always sends `resourcesCollectedAt` and `hasResourcesPendingAuthorization`; both describe
    an Open Finance consent's resources, so on Pluggy Bank (not Open Finance) they are null at every stage."""
    def resources(item: dict[str, Any]) -> tuple[Any, Any]:
        assert_valid("PluggyItem", item)
        return item["resourcesCollectedAt"], item["hasResourcesPendingAuthorization"]

    created = client.post("/items", json={"connectorId": 0, "parameters": {"user": "user-ok-mfa",
                                                                           "password": "password-ok"}}).json()
    assert created["connector"]["isOpenFinance"] is False and resources(created) == (None, None)
    waiting = client.get(f"/items/{created['id']}").json()
    assert waiting["status"] == "WAITING_USER_INPUT" and resources(waiting) == (None, None)
    assert resources(client.post(f"/items/{created['id']}/mfa", json={"token": "123456"}).json()) == (None, None)
    updated = client.get(f"/items/{created['id']}").json()
    assert updated["status"] == "UPDATED" and updated["lastUpdatedAt"] and resources(updated) == (None, None)
    assert resources(client.patch(f"/items/{created['id']}", json={}).json()) == (None, None)
    assert resources(emulator.set_item_status(created["id"], "LOGIN_ERROR", "INVALID_CREDENTIALS",
                                              "INVALID_CREDENTIALS")) == (None, None)


def test_account_balances_match_their_transactions(client: httpx.Client, item: dict[str, Any]) -> None:
    def total(rows: list[dict[str, Any]]) -> float:
        return sum(t["amount"] if t["amountInAccountCurrency"] is None else t["amountInAccountCurrency"] for t in rows)

    accounts = accounts_of(client, item["id"])
    checking_rows, _ = walk(client, f"?accountId={accounts['CHECKING_ACCOUNT']['id']}")
    card_rows, _ = walk(client, f"?accountId={accounts['CREDIT_CARD']['id']}")
    opening = brazilian_ledger(7, item["id"], START).profile.accounts[0].opening_balance
    assert accounts["CHECKING_ACCOUNT"]["balance"] == pytest.approx(opening + total(checking_rows), abs=0.01)
    assert accounts["CREDIT_CARD"]["balance"] == pytest.approx(total(card_rows), abs=0.01)  # owed, positive


def test_two_checking_accounts_scenario(client: httpx.Client) -> None:
    item = create_item(client, "user-ok-two-checking-accounts")
    subtypes = [a["subtype"] for a in client.get("/accounts", params={"itemId": item["id"]}).json()["results"]]
    assert sorted(subtypes) == ["CHECKING_ACCOUNT", "CHECKING_ACCOUNT", "CREDIT_CARD"]


@pytest.mark.parametrize(("user", "password", "status", "code"), [
    ("user-error", "password-ok", "OUTDATED", "UNEXPECTED_ERROR"),
    ("user-unavailable", "password-ok", "OUTDATED", "SITE_NOT_AVAILABLE"),
    ("user-logged", "password-ok", "OUTDATED", "ALREADY_LOGGED_IN"),
    ("user-locked", "password-ok", "LOGIN_ERROR", "ACCOUNT_LOCKED"),
    ("somebody", "password-ok", "LOGIN_ERROR", "INVALID_CREDENTIALS"),
    ("user-ok", "wrong", "LOGIN_ERROR", "INVALID_CREDENTIALS"),
])
def test_failure_scenarios(client: httpx.Client, user: str, password: str, status: str, code: str) -> None:
    item = create_item(client, user, password)
    assert (item["status"], item["executionStatus"], item["error"]["code"]) == (status, code, code)
    assert item["error"]["message"] and item["lastUpdatedAt"] is None and item["nextAutoSyncAt"] is None
    if code == "INVALID_CREDENTIALS":
        assert item["error"]["message"] == "Invalid credentials."
    assert item["consecutiveFailedLoginAttempts"] == (1 if status == "LOGIN_ERROR" else 0)
    assert client.get("/accounts", params={"itemId": item["id"]}).json() == {
        "page": 1, "total": 0, "totalPages": 0, "results": []}


def test_partial_success_reports_the_failed_product(client: httpx.Client) -> None:
    item = create_item(client, "user-ok-account-error")
    assert (item["status"], item["executionStatus"]) == ("UPDATED", "PARTIAL_SUCCESS")
    assert item["statusDetail"]["creditCards"]["isUpdated"] is False
    assert item["statusDetail"]["accounts"]["isUpdated"] is True
    assert list(accounts_of(client, item["id"])) == ["CHECKING_ACCOUNT"]


@pytest.mark.parametrize("user", ["user-ok-mfa", "user-mfa"])
def test_mfa_flow(client: httpx.Client, user: str) -> None:
    item = create_item(client, user)
    assert (item["status"], item["executionStatus"]) == ("WAITING_USER_INPUT", "WAITING_USER_INPUT")
    parameter = item["parameter"]
    assert (parameter["name"], parameter["type"], parameter["mfa"]) == ("token", "number", True)
    assert parameter["expiresAt"] == "2025-06-15T15:05:00.000Z" and parameter["instructions"]
    sent = client.post(f"/items/{item['id']}/mfa", json={"token": "123456"})
    assert_valid("PluggyItem", sent.json())
    assert (sent.json()["status"], sent.json()["executionStatus"]) == ("UPDATING", "LOGIN_MFA_IN_PROGRESS")
    done = client.get(f"/items/{item['id']}").json()
    assert (done["status"], done["executionStatus"], done["parameter"]) == ("UPDATED", "SUCCESS", None)
    assert len(accounts_of(client, item["id"])) == 2
    again = client.post(f"/items/{item['id']}/mfa", json={"token": "123456"})
    assert again.status_code == 400


def test_mfa_wrong_code_and_timeout(emulator: PluggyEmulator, client: httpx.Client) -> None:
    item = create_item(client, "user-ok-mfa")
    client.post(f"/items/{item['id']}/mfa", json={"token": "000000"})
    failed = client.get(f"/items/{item['id']}").json()
    assert (failed["status"], failed["executionStatus"], failed["error"]["code"]) == (
        "LOGIN_ERROR", "INVALID_CREDENTIALS_MFA", "INVALID_CREDENTIALS_MFA")
    assert failed["consecutiveFailedLoginAttempts"] == 1
    missing = client.post(f"/items/{create_item(client, 'user-ok-mfa')['id']}/mfa", json={"code": "1"})
    assert missing.json()["codeDescription"] == "CONNECTOR_REQUIRED_PARAMETER_VALIDATION_ERROR"
    slow = create_item(client, "user-ok-mfa")
    emulator.advance(hours=0.1)
    timed_out = client.get(f"/items/{slow['id']}").json()
    assert (timed_out["status"], timed_out["executionStatus"]) == ("OUTDATED", "USER_INPUT_TIMEOUT")


def test_patch_recovers_a_login_error_and_resyncs(client: httpx.Client) -> None:
    item = create_item(client, "user-ok", "wrong")
    client.patch(f"/items/{item['id']}", json={"parameters": {"password": "wrong-again"}})
    assert client.get(f"/items/{item['id']}").json()["consecutiveFailedLoginAttempts"] == 2
    patched = client.patch(f"/items/{item['id']}", json={"parameters": {"password": "password-ok"},
                                                         "clientUserId": "user-42"})
    assert_valid("PluggyItem", patched.json())
    assert patched.json()["status"] == "UPDATING"
    recovered = client.get(f"/items/{item['id']}").json()
    assert (recovered["status"], recovered["executionStatus"], recovered["error"]) == ("UPDATED", "SUCCESS", None)
    assert recovered["consecutiveFailedLoginAttempts"] == 0 and recovered["clientUserId"] == "user-42"
    assert len(accounts_of(client, item["id"])) == 2
    refreshed = client.patch(f"/items/{item['id']}", json={})
    assert refreshed.status_code == 200 and client.get(f"/items/{item['id']}").json()["status"] == "UPDATED"


def test_create_item_errors(client: httpx.Client) -> None:
    offline = client.post("/items", json={"connectorId": 601, "parameters": {"cpf": "123.456.789-00"}})
    assert offline.status_code == 400 and "sandbox" in offline.json()["message"]
    assert client.post("/items", json={"connectorId": 999, "parameters": {}}).status_code == 404
    invalid = client.post("/items", json={"connectorId": 0, "parameters": {"user": "user-ok"}})
    assert invalid.status_code == 400 and invalid.json()["codeDescription"] == "CONNECTOR_VALIDATION_ERROR"
    assert invalid.json()["details"][0]["parameter"] == "password"
    assert client.post("/items", json={"parameters": {}}).status_code == 400
    first = create_item(client)
    duplicate = client.post("/items", json={"connectorId": 0, "avoidDuplicates": True,
                                            "parameters": {"user": "user-ok", "password": "password-ok"}})
    assert duplicate.status_code == 400 and "code" not in duplicate.json()
    assert duplicate.json()["codeDescription"] == "ITEM_USER_ALREADY_EXISTS"
    assert duplicate.json()["items"] == [first["id"]]


def test_delete_then_404(client: httpx.Client, item: dict[str, Any]) -> None:
    assert client.delete(f"/items/{item['id']}").json() == {"count": 1}
    gone = client.get(f"/items/{item['id']}")
    assert gone.status_code == 404
    assert gone.json() == {"code": 404, "codeDescription": "ITEM_NOT_FOUND", "message": "item not found"}
    assert client.delete(f"/items/{item['id']}").status_code == 404


def test_items_keep_webhook_url_and_client_user_id(client: httpx.Client) -> None:
    item = create_item(client, webhookUrl="https://example.com/hook", clientUserId="u-1")
    assert (item["webhookUrl"], item["clientUserId"]) == ("https://example.com/hook", "u-1")


def test_auto_sync_every_day_unless_disabled(emulator: PluggyEmulator, client: httpx.Client,
                                            item: dict[str, Any]) -> None:
    advance(emulator, client, days=2, hours=3)
    synced = client.get(f"/items/{item['id']}").json()
    assert synced["lastUpdatedAt"] == "2025-06-17T15:00:00.000Z"
    assert synced["nextAutoSyncAt"] == "2025-06-18T15:00:00.000Z"
    disabled = client.patch(f"/items/{item['id']}/disable-auto-sync").json()
    assert_valid("PluggyItem", disabled)
    assert disabled["nextAutoSyncAt"] is None
    advance(emulator, client, days=3)
    assert client.get(f"/items/{item['id']}").json()["lastUpdatedAt"] == "2025-06-17T15:00:00.000Z"


def test_set_item_status_freezes_data_until_a_patch(emulator: PluggyEmulator, client: httpx.Client,
                                                   item: dict[str, Any]) -> None:
    card = accounts_of(client, item["id"])["CREDIT_CARD"]["id"]
    before, _ = walk(client, f"?accountId={card}")
    forced = emulator.set_item_status(item["id"], "LOGIN_ERROR", "USER_AUTHORIZATION_NOT_GRANTED",
                                      error_code="USER_AUTHORIZATION_NOT_GRANTED")
    assert_valid("PluggyItem", forced)
    assert forced["error"]["code"] == "USER_AUTHORIZATION_NOT_GRANTED" and forced["nextAutoSyncAt"] is None
    listed = emulator.list_items()
    assert [i["id"] for i in listed] == [item["id"]]
    assert_valid("PluggyItem", listed[0])
    advance(emulator, client, days=4)
    assert walk(client, f"?accountId={card}")[0] == before
    client.patch(f"/items/{item['id']}", json={})  # no new credentials: it fails the same way again
    again = client.get(f"/items/{item['id']}").json()
    assert (again["status"], again["error"]["code"]) == ("LOGIN_ERROR", "USER_AUTHORIZATION_NOT_GRANTED")
    client.patch(f"/items/{item['id']}", json={"parameters": {"password": "password-ok"}})
    assert client.get(f"/items/{item['id']}").json()["status"] == "UPDATED"
    assert len(walk(client, f"?accountId={card}")[0]) > len(before)
    with pytest.raises(ValueError):
        emulator.set_item_status(item["id"], "BROKEN", "ERROR")
    with pytest.raises(KeyError):
        emulator.set_item_status("nope", "OUTDATED", "ERROR")


def test_settle_delay_shows_progress_in_real_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = [100.0]
    monkeypatch.setattr(emulator_items, "time", SimpleNamespace(monotonic=lambda: seconds[0]))
    emulator = PluggyEmulator(clock=Clock(start=START), settle_delay=1.5)
    client = make_client(emulator)
    item_id = client.post("/items", json={"connectorId": 0, "parameters": {
        "user": "user-ok", "password": "password-ok"}}).json()["id"]
    seen = []
    for elapsed in (0.1, 0.5, 0.8, 1.2, 1.6):
        seconds[0] = 100.0 + elapsed
        current = client.get(f"/items/{item_id}").json()
        seen.append((current["status"], current["executionStatus"]))
        if current["status"] == "UPDATING":
            assert client.get("/accounts", params={"itemId": item_id}).json()["total"] == 0
    assert seen == [("UPDATING", "LOGIN_IN_PROGRESS"), ("UPDATING", "ACCOUNTS_IN_PROGRESS"),
                    ("UPDATING", "CREDITCARDS_IN_PROGRESS"), ("UPDATING", "TRANSACTIONS_IN_PROGRESS"),
                    ("UPDATED", "SUCCESS")]


# -- connect tokens ----------------------------------------------------------------------------------------------------

def test_connect_token_scope(emulator: PluggyEmulator, client: httpx.Client, item: dict[str, Any]) -> None:
    token = client.post("/connect_token", json={"options": {"clientUserId": "widget-user"}}).json()["accessToken"]
    widget = httpx.Client(base_url=BASE_URL, transport=emulator.transport(), headers={"X-API-KEY": token})
    assert widget.get("/connectors", params={"sandbox": "true"}).status_code == 200
    own = create_item(widget)
    assert own["clientUserId"] == "widget-user"
    assert widget.get("/accounts", params={"itemId": own["id"]}).json()["total"] == 2
    account = accounts_of(client, own["id"])["CREDIT_CARD"]["id"]
    for denied in (widget.get(f"/items/{item['id']}"), widget.get("/v2/transactions", params={"accountId": account}),
                   widget.get(f"/accounts/{account}"), widget.post("/connect_token", json={}),
                   widget.delete(f"/items/{own['id']}")):
        assert denied.status_code == 403 and denied.json()["codeDescription"], denied.text
    scoped = client.post("/connect_token", json={"itemId": item["id"]}).json()["accessToken"]
    update = httpx.Client(base_url=BASE_URL, transport=emulator.transport(), headers={"X-API-KEY": scoped})
    assert update.get(f"/items/{item['id']}").status_code == 200
    assert update.get(f"/items/{own['id']}").status_code == 403
    assert update.patch(f"/items/{item['id']}", json={"parameters": {"password": "password-ok"}}).status_code == 200
    unknown = client.post("/connect_token", json={"itemId": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 404 and unknown.json()["codeDescription"] == "ITEM_NOT_FOUND"
    emulator.advance(hours=0.55)
    expired = widget.get(f"/items/{own['id']}")
    assert expired.status_code == 403 and "codeDescription" not in expired.json()


# -- transactions ------------------------------------------------------------------------------------------------------

def test_v2_cursor_walk_returns_every_row_once_in_order(monkeypatch: pytest.MonkeyPatch, client: httpx.Client,
                                                       item: dict[str, Any]) -> None:
    card = accounts_of(client, item["id"])["CREDIT_CARD"]["id"]
    full, _ = walk(client, f"?accountId={card}")
    assert len(full) > 500
    monkeypatch.setattr(emulator_transactions, "V2_PAGE_SIZE", 7)
    paged, links = walk(client, f"?accountId={card}")
    assert paged == full
    assert [(t["date"], t["id"]) for t in paged] == sorted((t["date"], t["id"]) for t in paged)
    assert len({t["id"] for t in paged}) == len(paged)
    assert len(links) == (len(full) - 1) // 7
    assert all(link.startswith(f"?accountId={card}&after=") for link in links)
    plus = [link for link in links if "%2B" in link]
    assert plus == links, "cursors contain '+', which must travel as %2B"
    after = dict(parse_qsl(plus[0][1:]))["after"]
    assert "+" in after and base64.b64decode(after).decode().endswith(f"|{paged[6]['id']}")
    by_params = client.get("/v2/transactions", params={"accountId": card, "after": after}).json()
    assert by_params == client.get(f"/v2/transactions{plus[0]}").json()
    raw_plus = client.get(f"/v2/transactions?accountId={card}&after={after}")
    assert raw_plus.status_code == 400 and raw_plus.json() == {"message": "Invalid cursor", "code": 400}


def test_v2_filters_and_validation(monkeypatch: pytest.MonkeyPatch, client: httpx.Client,
                                   item: dict[str, Any]) -> None:
    card = accounts_of(client, item["id"])["CREDIT_CARD"]["id"]
    rows, _ = walk(client, f"?accountId={card}")
    window = client.get("/v2/transactions", params={"accountId": card, "dateFrom": "2025-05-01",
                                                    "dateTo": "2025-05-31"}).json()["results"]
    assert window == [t for t in rows if "2025-05-01" <= t["date"][:10] <= "2025-05-31"]
    chosen = [rows[3]["id"], rows[10]["id"], rows[-1]["id"]]
    by_ids = client.get("/v2/transactions", params={"accountId": card, "ids": ",".join(chosen)}).json()
    assert sorted(t["id"] for t in by_ids["results"]) == sorted(chosen)
    monkeypatch.setattr(emulator_transactions, "V2_PAGE_SIZE", 5)
    filtered = client.get("/v2/transactions", params={"accountId": card, "dateFrom": "2025-05-01"}).json()
    assert "&dateFrom=2025-05-01&after=" in filtered["next"]
    errors = {
        "missing": client.get("/v2/transactions"),
        "not a uuid": client.get("/v2/transactions", params={"accountId": "42"}),
        "both": client.get("/v2/transactions", params={"accountId": card, "dateFrom": "2025-05-01",
                                                       "createdAtFrom": "2025-05-01T00:00:00.000Z"}),
        "bad date": client.get("/v2/transactions", params={"accountId": card, "dateFrom": "yesterday"}),
        "cursor": client.get("/v2/transactions", params={"accountId": card, "after": "bm90IGEgY3Vyc29y"}),
    }
    for name, response in errors.items():
        assert response.status_code == 400, name
        assert response.json()["code"] == 400 and "codeDescription" not in response.json(), name
    assert errors["cursor"].json() == {"message": "Invalid cursor", "code": 400}
    too_many = client.get("/v2/transactions", params={"accountId": card, "ids": ",".join([card] * 501)})
    assert too_many.status_code == 400 and too_many.json()["codeDescription"] == "IDS_PARAMETER_EXCEEDS_MAX_LENGTH"
    unknown = client.get("/v2/transactions", params={"accountId": "00000000-0000-4000-8000-000000000000"})
    assert unknown.json() == {"results": [], "next": None}


def test_v1_pages_and_single_transactions(client: httpx.Client, item: dict[str, Any]) -> None:
    checking = accounts_of(client, item["id"])["CHECKING_ACCOUNT"]["id"]
    first = client.get("/transactions", params={"accountId": checking, "pageSize": 100}).json()
    for tx in first["results"]:
        assert_valid("PluggyTransaction", tx)
    assert first["page"] == 1 and first["totalPages"] == -(-first["total"] // 100) and len(first["results"]) == 100
    assert [t["date"] for t in first["results"]] == sorted((t["date"] for t in first["results"]), reverse=True)
    last = client.get("/transactions", params={"accountId": checking, "pageSize": 100,
                                               "page": first["totalPages"]}).json()
    assert 0 < len(last["results"]) <= 100
    assert client.get("/transactions", params={"accountId": checking, "pageSize": 501}).status_code == 400
    empty = client.get("/transactions", params={"accountId": checking, "from": "2030-01-01"}).json()
    assert (empty["total"], empty["totalPages"], empty["results"]) == (0, 0, [])
    tx = first["results"][0]
    fetched = client.get(f"/transactions/{tx['id']}").json()
    assert_valid("PluggyTransaction", fetched)
    assert fetched == tx
    missing = client.get(f"/transactions/{item['id']}")
    assert missing.status_code == 404 and missing.json()["codeDescription"] == "TRANSACTION_NOT_FOUND"


def test_recategorizing_a_transaction(emulator: PluggyEmulator, client: httpx.Client, item: dict[str, Any]) -> None:
    checking = accounts_of(client, item["id"])["CHECKING_ACCOUNT"]["id"]
    tx = client.get("/v2/transactions", params={"accountId": checking}).json()["results"][5]
    emulator.advance(hours=1)
    patched = client.patch(f"/transactions/{tx['id']}", json={"categoryId": "07010000"})
    assert_valid("PluggyTransaction", patched.json())
    assert (patched.json()["categoryId"], patched.json()["category"]) == ("07010000", "Telecommunications")
    assert patched.json()["updatedAt"] == "2025-06-15T16:00:00.000Z" and patched.json()["createdAt"] == tx["createdAt"]
    assert client.get(f"/transactions/{tx['id']}").json() == patched.json()
    assert client.patch(f"/transactions/{tx['id']}", json={"categoryId": "123"}).status_code == 404
    assert client.patch(f"/transactions/{item['id']}", json={"categoryId": "07010000"}).status_code == 404


def test_categories(client: httpx.Client) -> None:
    page = client.get("/categories").json()
    assert page["total"] == len(page["results"]) >= 99
    for category in page["results"]:
        assert_valid("PluggyCategory", category)
        assert category["descriptionTranslated"]
    salary = client.get("/categories/01010000").json()
    assert_valid("PluggyCategory", salary)
    assert salary == {"id": "01010000", "description": "Salary", "descriptionTranslated": "Salário",
                      "parentId": "01000000", "parentDescription": "Income"}
    children = client.get("/categories", params={"parentId": "17000000"}).json()["results"]
    assert {c["id"] for c in children} == {"17010000", "17020000", "17020001", "17020002", "17020003", "17030000",
                                           "17040000"}
    assert client.get("/categories/00000001").json()["codeDescription"] == "CATEGORY_NOT_FOUND"


def test_every_transaction_object_validates(client: httpx.Client, item: dict[str, Any]) -> None:
    for account in accounts_of(client, item["id"]).values():
        rows, _ = walk(client, f"?accountId={account['id']}")
        if account["subtype"] == "CREDIT_CARD":
            assert {t["status"] for t in rows} == {"POSTED", "PENDING"}
        for tx in rows:
            assert_valid("PluggyTransaction", tx)
            assert tx["createdAt"] >= tx["date"]


# -- investments, loans, card bills ------------------------------------------------------------------------------------

def test_investments_loans_and_bills_validate_and_agree(client: httpx.Client, item: dict[str, Any]) -> None:
    investments = client.get("/investments", params={"itemId": item["id"]}).json()
    assert_valid("PluggyInvestmentList", investments)
    assert {(i["type"], i["subtype"]) for i in investments["results"]} == {
        ("FIXED_INCOME", "CDB"), ("MUTUAL_FUND", "MULTIMARKET_FUND"), ("EQUITY", "STOCK"), ("FIXED_INCOME", "TREASURY")}
    for investment in investments["results"]:
        assert_valid("PluggyInvestment", client.get(f"/investments/{investment['id']}").json())
        trades = client.get(f"/investments/{investment['id']}/transactions", params={"pageSize": 500}).json()
        assert_valid("PluggyInvestmentTransactionList", trades)
        bought = sum(t["quantity"] for t in trades["results"] if t["type"] == "BUY")
        assert round(bought, 6) == investment["quantity"]
        assert investment["balance"] == round(investment["quantity"] * investment["value"], 2)
    fund = next(i for i in investments["results"] if i["type"] == "MUTUAL_FUND")
    page = client.get(f"/investments/{fund['id']}/transactions", params={"pageSize": 5, "page": 2}).json()
    assert (page["page"], page["totalPages"], len(page["results"])) == (2, -(-page["total"] // 5), 5)
    equity = client.get("/investments", params={"itemId": item["id"], "type": "EQUITY"}).json()["results"]
    assert [i["code"] for i in equity] == ["PETR4"]

    loans = client.get("/loans", params={"itemId": item["id"]}).json()
    assert_valid("PluggyLoanList", loans)
    loan = loans["results"][0]
    assert_valid("PluggyLoan", client.get(f"/loans/{loan['id']}").json())
    paid = loan["installments"]["paidInstallments"]
    assert len(loan["payments"]["releases"]) == paid and loan["payments"]["contractOutstandingBalance"] > 0

    card = accounts_of(client, item["id"])["CREDIT_CARD"]
    bills = client.get("/bills", params={"accountId": card["id"]}).json()
    assert_valid("PluggyCreditCardBillList", bills)
    assert_valid("PluggyCreditCardBill", client.get(f"/bills/{bills['results'][0]['id']}").json())
    closings = [b["billClosingDate"] for b in bills["results"]]
    assert closings == sorted(closings, reverse=True) and closings[0] < iso_z(START)
    rows, _ = walk(client, f"?accountId={card['id']}")
    on_bills = {(t["creditCardMetadata"] or {}).get("billId") for t in rows} - {None}
    assert on_bills == {b["id"] for b in bills["results"]}  # every closed bill, and only those
    assert all("billForecastDate" not in (t["creditCardMetadata"] or {}) for t in rows)  # not Open Finance
    checking = accounts_of(client, item["id"])["CHECKING_ACCOUNT"]
    assert client.get("/bills", params={"accountId": checking["id"]}).json()["results"] == []
    for path, code in (("/investments/00000000-0000-4000-8000-000000000000", "INVESTMENT_NOT_FOUND"),
                       ("/loans/00000000-0000-4000-8000-000000000000", "LOAN_NOT_FOUND"),
                       ("/bills/00000000-0000-4000-8000-000000000000", "CREDIT_CARD_BILL_NOT_FOUND")):
        missing = client.get(path)
        assert (missing.status_code, missing.json()["codeDescription"]) == (404, code)
    assert client.get("/investments", params={"itemId": "nope"}).status_code == 400
    assert client.get("/investments", params={"itemId": item["id"], "type": "BOGUS"}).status_code == 400


def test_the_retiring_direct_connector_and_its_open_finance_twin(emulator: PluggyEmulator,
                                                                 client: httpx.Client) -> None:
    catalog = {c["id"]: c for c in client.get("/connectors", params={"sandbox": "true"}).json()["results"]}
    direct, open_finance = catalog[1], catalog[2]
    assert_valid("PluggyConnector", direct)
    assert (direct["isOpenFinance"], open_finance["isOpenFinance"]) == (False, True)
    assert direct["institutionUrl"] == open_finance["institutionUrl"]
    assert [(i["kind"], i["state"]) for i in direct["health"]["incidents"]] == [("MAINTENANCE", "SCHEDULED")]
    old = create_item(client, connectorId=1)
    advance(emulator, client, days=1)
    new = create_item(client, connectorId=2)
    assert (new["resourcesCollectedAt"], new["hasResourcesPendingAuthorization"]) == (new["lastUpdatedAt"], False)
    old_accounts, new_accounts = accounts_of(client, old["id"]), accounts_of(client, new["id"])
    assert {k: a["number"] for k, a in old_accounts.items()} == {k: a["number"] for k, a in new_accounts.items()}
    card = new_accounts["CREDIT_CARD"]
    rows, _ = walk(client, f"?accountId={card['id']}")
    assert rows and all(t["creditCardMetadata"]["billForecastDate"] for t in rows)
    assert all(isinstance(t["providerId"], str) for t in rows)  # Open Finance rows carry the institution's id
    old_rows, _ = walk(client, f"?accountId={old_accounts['CREDIT_CARD']['id']}")
    assert not {t["id"] for t in rows} & {t["id"] for t in old_rows}
    bills = client.get("/bills", params={"accountId": card["id"]}).json()["results"]
    assert {t["creditCardMetadata"].get("billId") for t in rows} - {None} == {b["id"] for b in bills}
    old_bills = client.get("/bills", params={"accountId": old_accounts["CREDIT_CARD"]["id"]}).json()["results"]
    assert [b["totalAmount"] for b in bills[1:]] == [b["totalAmount"] for b in old_bills[: len(bills) - 1]] or \
        [b["totalAmount"] for b in bills] == [b["totalAmount"] for b in old_bills]  # the same bills…
    assert not {b["id"] for b in bills} & {b["id"] for b in old_bills}  # …under other ids
    for path in ("/loans", "/investments"):
        ids = [{x["id"] for x in client.get(path, params={"itemId": i["id"]}).json()["results"]} for i in (old, new)]
        assert ids[0] and ids[1] and not ids[0] & ids[1]
    fund = next(x for x in client.get("/investments", params={"itemId": new["id"]}).json()["results"]
                if x["type"] == "MUTUAL_FUND")
    trades = client.get(f"/investments/{fund['id']}/transactions").json()["results"]
    assert trades and {t["investmentId"] for t in trades} == {fund["id"]}


def test_client_refreshes_inside_the_minimum_update_interval_get_a_409() -> None:
    emulator = PluggyEmulator(clock=Clock(start=START), min_update_hours=8)
    client = make_client(emulator)
    item = create_item(client)
    refused = client.patch(f"/items/{item['id']}", json={})
    assert refused.status_code == 409
    body = refused.json()
    assert body["codeDescription"] == "CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY"
    assert body["data"] == {"minUpdateFrequencyAllowedInHours": 8, "lastUpdatedAt": item["lastUpdatedAt"]}
    assert client.patch(f"/items/{item['id']}", json={"parameters": {"password": "password-ok"}}).status_code == 200
    advance(emulator, client, hours=9)
    assert client.patch(f"/items/{item['id']}", json={}).status_code == 200


# -- time: determinism, new rows, pending churn ------------------------------------------------------------------------

def test_same_seed_and_clock_give_identical_data() -> None:
    dumps = []
    for _ in range(2):
        client = make_client(PluggyEmulator(clock=Clock(start=START), seed=3))
        item = create_item(client)
        accounts = accounts_of(client, item["id"])
        dumps.append(json.dumps([item, accounts, *(walk(client, f"?accountId={a['id']}")[0]
                                                    for a in accounts.values())]))
    assert dumps[0] == dumps[1]


def test_advancing_the_clock_adds_rows_and_posts_pending_ones(emulator: PluggyEmulator, client: httpx.Client,
                                                             item: dict[str, Any]) -> None:
    card = accounts_of(client, item["id"])["CREDIT_CARD"]["id"]
    before = {t["id"]: t for t in walk(client, f"?accountId={card}")[0]}
    pending = [t for t in before.values() if t["status"] == "PENDING"]
    assert pending
    advance(emulator, client, days=5)
    after = {t["id"]: t for t in walk(client, f"?accountId={card}")[0]}
    assert all(after[i] == t for i, t in before.items() if t["status"] == "POSTED")  # the past is untouched
    assert not {t["id"] for t in pending} & set(after)  # every pending row was replaced...
    new = [t for i, t in after.items() if i not in before]
    assert all("2025-06-16T15:00:00.000Z" <= t["createdAt"] <= "2025-06-20T15:00:00.000Z" for t in new)
    for old in pending:  # ...by a posted row with a new id for the same purchase
        twin = [t for t in new if t["status"] == "POSTED" and t["date"] == old["date"]
                and t["description"] == old["description"] and 1.0 <= t["amount"] / old["amount"] <= 1.2]
        assert twin, old
    assert any(t["date"] > max(before.values(), key=lambda t: t["date"])["date"] for t in new)
    since = client.get("/v2/transactions", params={"accountId": card,
                                                   "createdAtFrom": "2025-06-15T15:00:00.001Z"}).json()
    assert sorted(t["id"] for t in since["results"]) == sorted(t["id"] for t in new)


# -- faults and rate limits --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "status"), [("rate_limit", 429), ("server_error", 500), ("unavailable", 503),
                                              ("malformed_json", 200), ("expired_key", 403)])
def test_fault_kinds(emulator: PluggyEmulator, client: httpx.Client, kind: str, status: int) -> None:
    emulator.faults.add(kind, path="/categories")
    response = client.get("/categories")
    assert response.status_code == status
    if kind == "malformed_json":
        assert response.headers["Content-Type"].startswith("application/json")
        with pytest.raises(ValueError):
            response.json()
    elif kind == "rate_limit":
        assert response.json() == emulator_base._TOO_MANY
        assert (response.headers["Retry-After"], response.headers["RateLimit-Reset"]) == ("60", "1")
        assert response.headers["RateLimit-Limit"]
    elif kind == "server_error":
        assert response.json()["codeDescription"] == "INTERNAL_SERVER_ERROR" and response.json()["code"] == 500
    else:
        assert response.json()["code"] == status and "codeDescription" not in response.json()
    assert client.get("/categories").status_code == 200  # a fault fires once by default


def test_timeout_fault_and_unknown_fault(emulator: PluggyEmulator, client: httpx.Client) -> None:
    emulator.faults.add("timeout", path="/categories")
    with pytest.raises(httpx.ReadTimeout):
        client.get("/categories")
    emulator.faults.add("no_such_fault")
    with pytest.raises(ValueError):
        client.get("/categories")


def test_a_fault_in_the_middle_of_a_cursor_walk(monkeypatch: pytest.MonkeyPatch, emulator: PluggyEmulator,
                                               client: httpx.Client, item: dict[str, Any]) -> None:
    card = accounts_of(client, item["id"])["CREDIT_CARD"]["id"]
    monkeypatch.setattr(emulator_transactions, "V2_PAGE_SIZE", 50)
    emulator.faults.add("server_error", path="/v2/transactions", after=1)
    first = client.get("/v2/transactions", params={"accountId": card})
    assert first.status_code == 200 and first.json()["next"]
    assert client.get(f"/v2/transactions{first.json()['next']}").status_code == 500
    assert client.get(f"/v2/transactions{first.json()['next']}").status_code == 200


def test_rate_limit_per_minute_with_headers(emulator: PluggyEmulator, client: httpx.Client,
                                            item: dict[str, Any]) -> None:
    account = accounts_of(client, item["id"])["CHECKING_ACCOUNT"]["id"]  # one /accounts request already counted
    emulator.advance(hours=0.02)  # 15:01:12, a fresh window
    responses = [client.get(f"/accounts/{account}") for _ in range(361)]
    assert {r.status_code for r in responses[:360]} == {200}
    assert responses[0].headers["RateLimit-Limit"] == "360" and responses[0].headers["RateLimit-Remaining"] == "359"
    limited = responses[-1]
    assert limited.status_code == 429 and limited.json() == emulator_base._TOO_MANY
    assert limited.headers["RateLimit-Limit"] == "360" and limited.headers["Retry-After"] == "60"
    assert limited.headers["RateLimit-Reset"] == "48"
    assert client.get("/categories").status_code == 200  # other groups are separate
    emulator.advance(hours=1 / 60)
    assert client.get(f"/accounts/{account}").status_code == 200
    updates = [client.patch(f"/items/{item['id']}", json={}).status_code for _ in range(21)]
    assert updates == [200] * 20 + [429]


# -- state and serving -------------------------------------------------------------------------------------------------

def test_state_is_shared_through_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "pluggy.json"
    first = PluggyEmulator(clock=Clock(start=START), state_path=path)
    client = make_client(first)
    item = create_item(client)
    tx = client.get("/v2/transactions", params={
        "accountId": accounts_of(client, item["id"])["CHECKING_ACCOUNT"]["id"]}).json()["results"][0]
    client.patch(f"/transactions/{tx['id']}", json={"categoryId": "21000000"})

    clock = Clock()
    second = PluggyEmulator(clock=clock, state_path=path)
    assert second.clock is clock and clock.now() == START
    other = make_client(second)
    assert other.get(f"/items/{item['id']}").json() == client.get(f"/items/{item['id']}").json()
    assert other.get(f"/transactions/{tx['id']}").json()["categoryId"] == "21000000"

    advance(first, client, days=1)
    assert second.clock.now() == START + timedelta(days=1)  # reading the clock picks up the other's change
    other.headers["X-API-KEY"] = other.post("/auth", json=CREDENTIALS).json()["apiKey"]
    assert other.get(f"/items/{item['id']}").json()["lastUpdatedAt"] == "2025-06-16T15:00:00.000Z"
    second.set_item_status(item["id"], "OUTDATED", "SITE_NOT_AVAILABLE", error_code="SITE_NOT_AVAILABLE")
    assert client.get(f"/items/{item['id']}").json()["status"] == "OUTDATED"
    state = json.loads(path.read_text())
    assert set(state) == {"version", "clock", "outbox", "items", "connectTokens", "transactionPatches", "itemCounter",
                          "webhooks"}
    assert path.stat().st_size < 20_000  # transactions are generated, never stored
    assert "password-ok" not in path.read_text()  # nor are passwords


def test_served_mode_over_real_http(emulator: PluggyEmulator) -> None:
    with emulator.serve() as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        client.headers["X-API-KEY"] = client.post("/auth", json=CREDENTIALS).json()["apiKey"]
        item = create_item(client)
        assert item["status"] == "UPDATED"
        card = accounts_of(client, item["id"])["CREDIT_CARD"]
        page = client.get("/v2/transactions", params={"accountId": card["id"]}).json()
        assert_valid("PluggyTransactionCursorPage", page)
        assert page["results"]
    assert ("POST", "/auth") in emulator.request_log


def test_unknown_routes_methods_and_request_log(emulator: PluggyEmulator, client: httpx.Client) -> None:
    assert client.get("/nowhere").status_code == 404
    assert client.put("/items/x").status_code == 405
    client.get("/connectors", params={"sandbox": "true", "name": "pluggy"})
    assert emulator.request_log[-1] == ("GET", "/connectors?sandbox=true&name=pluggy")
