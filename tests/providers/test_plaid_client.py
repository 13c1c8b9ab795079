"""PlaidClient over HTTP, with sandbox.plaid.com mocked by respx: headers, error taxonomy, retries, sync walks.

Every request any test sends is checked on teardown: auth in headers only (never the secret in a body),
Plaid-Version set, and the body valid against the official request schema of its endpoint.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import finance.http
from finance.crypto import SecretError
from finance.errors import (
    BadData,
    ConfigurationError,
    NotFound,
    ProviderError,
    RateLimited,
    ReauthRequired,
    RequestRejected,
    TransientError,
)
from finance.http import RateLimiter, RetryPolicy
from finance.model import AccountType, ConnectionStatus, TxnStatus
from finance.providers.plaid.client import (
    MAX_SYNC_RESTARTS,
    RATE_LIMIT_WAIT,
    PlaidClient,
    SyncMutationDuringPagination,
    transactions_sync_all,
)
from finance.providers.plaid.mapping import ERROR_MESSAGES, map_account
from finance.providers.plaid.provider import PlaidProvider
from tests.providers.test_plaid_mapping import openapi_document, request_validator, response_validator, schema_errors

BASE = "https://sandbox.plaid.com"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plaid"
CLIENT_ID = "5f3c2e1d0b9a8c7d6e5f4a3b"
SECRET = "s3cr3t-plaid-9f8e7d6c5b4a39281706f5e4"
ACCESS_TOKEN = "access-sandbox-de3ce8ef-33f8-452c-a685-8671031fc0f6"
ITEM_ID = "Ed6bjNrDLJfGvZWwnkQlfxwoNz54B5C97ejBr"
NOW = datetime(2025, 5, 20, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=4.0, max_rate_limit_wait=90.0)
C0, C1, C2, C3 = ("cursor-0-tVUUL15lYQN5rBnf", "cursor-1-DIc1I8xudpGdIlw9", "cursor-2-nsgeXWvhOfkECvUe",
                  "cursor-3-R663i3Dt1uf/94S8+A==")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


ACCOUNTS = load("accounts.json")
TRANSACTIONS = load("transactions.json")
ITEMS = load("items.json")
ERRORS = load("errors.json")
INSTITUTIONS = load("institutions.json")
RESPONSES = load("responses.json")


def ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json=data)


def plaid_error(code: str, status: int = 400, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=ERRORS[code], headers=headers)


def sent(route: respx.Route, index: int = 0) -> Any:
    return json.loads(route.calls[index].request.content)


def txn(key: str, **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(TRANSACTIONS[key]), **changes}


def sync_page(*, added: list[dict[str, Any]] = (), modified: list[dict[str, Any]] = (),  # type: ignore[assignment]
              removed: list[dict[str, Any]] = (), accounts: list[str] = (),  # type: ignore[assignment]
              next_cursor: str, has_more: bool) -> dict[str, Any]:
    page = {
        "added": list(added), "modified": list(modified),
        "removed": [{"transaction_id": t["transaction_id"], "account_id": t["account_id"]} for t in removed],
        "accounts": [copy.deepcopy(ACCOUNTS[key]) for key in accounts],
        "next_cursor": next_cursor, "has_more": has_more, "request_id": "Wvhy9PZHQLV8njG",
        "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
    }
    assert schema_errors(response_validator("/transactions/sync"), page) == []
    return page


class Jitter:
    """Stands in for the `random` module of finance.http: `uniform` returns the top of its range."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router
        paths = openapi_document()["paths"]
        for call in router.calls:
            request = call.request
            assert request.method == "POST"
            assert request.headers["PLAID-CLIENT-ID"] == CLIENT_ID
            assert request.headers["PLAID-SECRET"] == SECRET
            assert request.headers["Plaid-Version"] == "2020-09-14"
            assert request.headers["Content-Type"] == "application/json"
            assert SECRET.encode() not in request.content
            body = json.loads(request.content)
            assert "secret" not in body and "client_id" not in body
            assert request.url.path in paths, request.url.path
            assert schema_errors(request_validator(request.url.path), body) == [], request.url.path


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(slept: list[float], monkeypatch: pytest.MonkeyPatch) -> Iterator[PlaidClient]:
    monkeypatch.setattr(finance.http, "random", Jitter())
    c = PlaidClient(CLIENT_ID, SECRET, policy=POLICY, sleep=slept.append, now=lambda: NOW)
    yield c
    c.close()


@pytest.fixture
def tokens() -> dict[str, str]:
    return {ITEM_ID: ACCESS_TOKEN}


@pytest.fixture
def provider(client: PlaidClient, tokens: dict[str, str]) -> PlaidProvider:
    return PlaidProvider(client, tokens.get)


# --------------------------------------------------------------------------------------------
# Headers, secrets, environments
# --------------------------------------------------------------------------------------------

def test_auth_travels_in_headers_only(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
    assert client.item_get(ACCESS_TOKEN)["item"]["item_id"] == ITEM_ID
    assert sent(route) == {"access_token": ACCESS_TOKEN}
    assert route.calls[0].request.headers["Accept"] == "application/json"
    assert client.requests == 1


def test_repr_hides_the_secret(client: PlaidClient) -> None:
    assert SECRET not in repr(client) and CLIENT_ID not in repr(client)
    assert repr(client) == "PlaidClient(environment='sandbox', base_url='https://sandbox.plaid.com')"


def _texts(exc: BaseException) -> list[str]:
    texts = []
    while exc is not None:
        texts += [str(exc), repr(exc), *map(str, exc.args), getattr(exc, "message", "")]
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return texts


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_the_secret_is_in_no_exception(api: respx.MockRouter, client: PlaidClient, code: str) -> None:
    api.post("/item/get").mock(return_value=plaid_error(code, 500 if code == "INTERNAL_SERVER_ERROR" else 400))
    with pytest.raises(ProviderError) as info:
        client.item_get(ACCESS_TOKEN)
    assert all(SECRET not in text for text in _texts(info.value))
    assert info.value.provider == "plaid"


def test_a_server_echoing_the_secret_is_redacted(api: respx.MockRouter, client: PlaidClient) -> None:
    body = {**ERRORS["INVALID_FIELD"], "display_message": f"secret {SECRET} is not allowed here"}
    api.post("/item/get").mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(RequestRejected) as info:
        client.item_get(ACCESS_TOKEN)
    assert all(SECRET not in text for text in _texts(info.value))
    assert "***" in info.value.message


@pytest.mark.parametrize(("client_id", "secret"), [("", SECRET), (CLIENT_ID, ""), ("", "")])
def test_missing_credentials_fail_before_any_request(client_id: str, secret: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        PlaidClient(client_id, secret)
    assert info.value.code == "NO_CREDENTIALS"
    assert "PLAID_CLIENT_ID" in info.value.message and "PLAID_SECRET" in info.value.message


def test_unknown_environment_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        PlaidClient(CLIENT_ID, SECRET, environment="development")  # removed by Plaid
    assert info.value.code == "BAD_ENVIRONMENT"


def test_production_environment_uses_the_production_host() -> None:
    with respx.mock(base_url="https://production.plaid.com") as prod:
        route = prod.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
        c = PlaidClient(CLIENT_ID, SECRET, environment="production")
        c.item_get("access-production-1")
        c.close()
    assert route.call_count == 1
    assert not c.is_sandbox


def test_base_url_overrides_the_environment_host() -> None:
    with respx.mock(base_url="http://127.0.0.1:8766") as local:
        route = local.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
        c = PlaidClient(CLIENT_ID, SECRET, base_url="http://127.0.0.1:8766")
        c.item_get(ACCESS_TOKEN)
        c.close()
    assert route.calls[0].request.headers["PLAID-SECRET"] == SECRET


# --------------------------------------------------------------------------------------------
# Error taxonomy
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["ITEM_LOGIN_REQUIRED", "PENDING_EXPIRATION", "ACCESS_NOT_GRANTED",
                                  "USER_PERMISSION_REVOKED", "ITEM_LOCKED", "INVALID_CREDENTIALS", "INVALID_MFA",
                                  "NO_ACCOUNTS"])
def test_reauth_errors(api: respx.MockRouter, client: PlaidClient, slept: list[float], code: str) -> None:
    route = api.post("/transactions/sync").mock(return_value=plaid_error(code))
    with pytest.raises(ReauthRequired) as info:
        client.transactions_sync(ACCESS_TOKEN, C0)
    assert (info.value.code, info.value.status, info.value.provider) == (code, 400, "plaid")
    assert info.value.message == ERROR_MESSAGES[code]
    assert "Reconnect" in info.value.message or "reconnect" in info.value.message
    assert route.call_count == 1
    assert slept == []


@pytest.mark.parametrize("code", ["INVALID_API_KEYS", "INVALID_SECRET", "INVALID_CLIENT_ID"])
def test_bad_keys_name_the_settings(api: respx.MockRouter, client: PlaidClient, slept: list[float],
                                    code: str) -> None:
    route = api.post("/accounts/get").mock(return_value=plaid_error(code))
    with pytest.raises(ConfigurationError) as info:
        client.accounts_get(ACCESS_TOKEN)
    assert (info.value.code, info.value.status) == (code, 400)
    assert "PLAID_CLIENT_ID" in info.value.message and "PLAID_SECRET" in info.value.message
    assert route.call_count == 1
    assert slept == []


@pytest.mark.parametrize("status", [401, 403])
def test_bare_401_or_403_is_a_configuration_error(api: respx.MockRouter, client: PlaidClient, status: int) -> None:
    api.post("/item/get").mock(return_value=httpx.Response(status, text="Unauthorized"))
    with pytest.raises(ConfigurationError) as info:
        client.item_get(ACCESS_TOKEN)
    assert info.value.code == f"HTTP_{status}"


@pytest.mark.parametrize("code", ["ITEM_NOT_FOUND", "INVALID_ACCESS_TOKEN"])
def test_not_found(api: respx.MockRouter, client: PlaidClient, slept: list[float], code: str) -> None:
    route = api.post("/item/get").mock(return_value=plaid_error(code))
    with pytest.raises(NotFound) as info:
        client.item_get(ACCESS_TOKEN)
    assert (info.value.code, info.value.message) == (code, ERROR_MESSAGES[code])
    assert route.call_count == 1
    assert slept == []


def test_other_errors_are_rejected_with_plaids_words(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/transactions/sync").mock(return_value=plaid_error("INVALID_FIELD"))
    with pytest.raises(RequestRejected) as info:
        client.transactions_sync(ACCESS_TOKEN, C0)
    assert type(info.value) is RequestRejected
    assert (info.value.code, info.value.status) == ("INVALID_FIELD", 400)
    assert info.value.message == "Plaid refused the request: count must be between 1 and 500"
    assert route.call_count == 1


def test_unknown_error_code_prefers_the_display_message(api: respx.MockRouter, client: PlaidClient) -> None:
    body = {**ERRORS["INVALID_FIELD"], "error_code": "BRAND_NEW_CODE", "error_type": "BRAND_NEW_TYPE",
            "display_message": "Something new happened.", "new_field": [1]}
    api.post("/item/get").mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(RequestRejected) as info:
        client.item_get(ACCESS_TOKEN)
    assert (info.value.code, info.value.message) == ("BRAND_NEW_CODE", "Plaid refused the request: Something new "
                                                                       "happened.")


def test_4xx_without_a_body_is_rejected(api: respx.MockRouter, client: PlaidClient) -> None:
    api.post("/item/get").mock(return_value=httpx.Response(400, content=b"<html>bad</html>"))
    with pytest.raises(RequestRejected) as info:
        client.item_get(ACCESS_TOKEN)
    assert (info.value.code, info.value.message) == ("HTTP_400", "Plaid refused the request: HTTP 400")


def test_mutation_during_pagination_is_not_retried_page_by_page(api: respx.MockRouter, client: PlaidClient,
                                                                 slept: list[float]) -> None:
    route = api.post("/transactions/sync").mock(
        return_value=plaid_error("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"))
    with pytest.raises(SyncMutationDuringPagination):
        client.transactions_sync(ACCESS_TOKEN, C1)
    assert route.call_count == 1
    assert slept == []


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "status"), [
    ("INSTITUTION_DOWN", 400), ("INSTITUTION_NOT_RESPONDING", 400), ("INSTITUTION_NOT_AVAILABLE", 400),
    ("PRODUCT_NOT_READY", 400), ("INTERNAL_SERVER_ERROR", 500),
])
def test_transient_errors_retry_with_backoff_then_raise(api: respx.MockRouter, client: PlaidClient,
                                                        slept: list[float], code: str, status: int) -> None:
    route = api.post("/transactions/sync").mock(return_value=plaid_error(code, status))
    with pytest.raises(TransientError) as info:
        client.transactions_sync(ACCESS_TOKEN, C0)
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.message == ERROR_MESSAGES[code]
    assert route.call_count == POLICY.attempts
    assert slept == [0.5, 1.0]  # full-jitter caps: base * 2**(attempt-1)
    assert client.requests == POLICY.attempts


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_without_a_plaid_body_is_transient(api: respx.MockRouter, client: PlaidClient, slept: list[float],
                                               status: int) -> None:
    route = api.post("/item/get").mock(return_value=httpx.Response(status, content=b"<html>Bad Gateway</html>"))
    with pytest.raises(TransientError) as info:
        client.item_get(ACCESS_TOKEN)
    assert (info.value.code, info.value.status) == (f"HTTP_{status}", status)
    assert route.call_count == 3
    assert slept == [0.5, 1.0]


def test_institution_down_then_success(api: respx.MockRouter, client: PlaidClient, slept: list[float]) -> None:
    route = api.post("/accounts/get").mock(side_effect=[plaid_error("INSTITUTION_DOWN"),
                                                        plaid_error("INTERNAL_SERVER_ERROR", 500),
                                                        ok(RESPONSES["/accounts/get"])])
    assert len(client.accounts_get(ACCESS_TOKEN)["accounts"]) == 4
    assert route.call_count == 3
    assert slept == [0.5, 1.0]


def test_timeouts_retry_then_raise_transient(api: respx.MockRouter, client: PlaidClient, slept: list[float]) -> None:
    route = api.post("/item/get").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientError) as info:
        client.item_get(ACCESS_TOKEN)
    assert info.value.code == "TIMEOUT"
    assert "Plaid did not answer in time" in info.value.message
    assert route.call_count == 3
    assert slept == [0.5, 1.0]


def test_429_waits_then_raises_rate_limited(api: respx.MockRouter, client: PlaidClient, slept: list[float]) -> None:
    route = api.post("/accounts/get").mock(return_value=plaid_error("ACCOUNTS_LIMIT", 429))
    with pytest.raises(RateLimited) as info:
        client.accounts_get(ACCESS_TOKEN)
    assert (info.value.code, info.value.status, info.value.retry_after) == ("ACCOUNTS_LIMIT", 429, RATE_LIMIT_WAIT)
    assert route.call_count == POLICY.attempts
    assert slept == [RATE_LIMIT_WAIT + 0.25] * (POLICY.attempts - 1)  # no Retry-After from Plaid: our own wait


def test_429_then_success(api: respx.MockRouter, client: PlaidClient, slept: list[float]) -> None:
    route = api.post("/accounts/get").mock(side_effect=[plaid_error("ACCOUNTS_LIMIT", 429),
                                                        ok(RESPONSES["/accounts/get"])])
    client.accounts_get(ACCESS_TOKEN)
    assert route.call_count == 2
    assert slept == [RATE_LIMIT_WAIT + 0.25]


def test_429_honours_a_retry_after_header_when_present(api: respx.MockRouter, client: PlaidClient,
                                                       slept: list[float]) -> None:
    api.post("/accounts/get").mock(side_effect=[plaid_error("ACCOUNTS_LIMIT", 429, {"Retry-After": "2"}),
                                                ok(RESPONSES["/accounts/get"])])
    client.accounts_get(ACCESS_TOKEN)
    assert slept == [2.25]


def test_429_without_a_body_is_rate_limited(api: respx.MockRouter, client: PlaidClient) -> None:
    api.post("/item/get").mock(return_value=httpx.Response(429, text="Too Many Requests"))
    with pytest.raises(RateLimited) as info:
        client.item_get(ACCESS_TOKEN)
    assert info.value.code == "HTTP_429"


def test_rate_limit_error_type_on_a_400_is_rate_limited(api: respx.MockRouter, client: PlaidClient) -> None:
    api.post("/item/get").mock(side_effect=[plaid_error("ACCOUNTS_LIMIT", 400), ok(ITEMS["healthy"])])
    assert client.item_get(ACCESS_TOKEN)["item"]["item_id"] == ITEM_ID


@pytest.mark.parametrize("failure", [plaid_error("INTERNAL_SERVER_ERROR", 500), httpx.Response(503),
                                     plaid_error("INSTITUTION_DOWN"), httpx.ReadTimeout("slow"),
                                     httpx.ConnectError("down")],
                         ids=["500", "503", "institution-down", "timeout", "connect-error"])
def test_exchange_is_never_retried_on_5xx_or_timeout(api: respx.MockRouter, client: PlaidClient,
                                                     slept: list[float], failure: Any) -> None:
    route = api.post("/item/public_token/exchange").mock(
        side_effect=[failure, ok(RESPONSES["/item/public_token/exchange"])])
    with pytest.raises(TransientError):
        client.exchange_public_token("public-sandbox-b0e2c4ee-a763-4df5-bfe9-46a46bce993d")
    assert route.call_count == 1
    assert slept == []


@pytest.mark.parametrize("path", ["/link/token/create", "/sandbox/public_token/create"])
def test_other_creating_calls_are_never_retried_on_5xx(api: respx.MockRouter, client: PlaidClient,
                                                       slept: list[float], path: str) -> None:
    route = api.post(path).mock(side_effect=[plaid_error("INTERNAL_SERVER_ERROR", 500), ok(RESPONSES[path])])
    with pytest.raises(TransientError):
        if path == "/link/token/create":
            client.create_link_token("user-1")
        else:
            client.sandbox_public_token_create("ins_109508")
    assert route.call_count == 1
    assert slept == []


def test_exchange_is_retried_on_429(api: respx.MockRouter, client: PlaidClient, slept: list[float]) -> None:
    route = api.post("/item/public_token/exchange").mock(
        side_effect=[httpx.Response(429, json={**ERRORS["ACCOUNTS_LIMIT"], "error_code": "RATE_LIMIT"}),
                     ok(RESPONSES["/item/public_token/exchange"])])
    assert client.exchange_public_token("public-sandbox-1") == (RESPONSES["/item/public_token/exchange"]
                                                                ["access_token"], ITEM_ID)
    assert route.call_count == 2
    assert sent(route, 0) == sent(route, 1) == {"public_token": "public-sandbox-1"}
    assert slept == [RATE_LIMIT_WAIT + 0.25]


# --------------------------------------------------------------------------------------------
# Response parsing
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"<html>502 Bad Gateway</html>", b'{"item": ', b""])
def test_malformed_json_on_200_is_bad_data(api: respx.MockRouter, client: PlaidClient, slept: list[float],
                                           content: bytes) -> None:
    route = api.post("/item/get").mock(return_value=httpx.Response(200, content=content))
    with pytest.raises(BadData) as info:
        client.item_get(ACCESS_TOKEN)
    assert (info.value.code, info.value.status) == ("MALFORMED_RESPONSE", 200)
    assert route.call_count == 1
    assert slept == []


@pytest.mark.parametrize(("path", "body"), [
    ("/item/get", ["not", "an", "object"]),
    ("/item/get", {"request_id": "x"}),
    ("/accounts/get", {"accounts": None, "item": {}}),
    ("/item/public_token/exchange", {"item_id": ITEM_ID}),
    ("/transactions/sync", {"added": [], "modified": [], "removed": [], "next_cursor": C1}),
    ("/transactions/sync", {"added": [], "modified": [], "removed": {}, "next_cursor": C1, "has_more": False}),
])
def test_answers_missing_what_we_need_are_bad_data(api: respx.MockRouter, client: PlaidClient, path: str,
                                                   body: Any) -> None:
    api.post(path).mock(return_value=ok(body))
    calls = {"/item/get": lambda: client.item_get(ACCESS_TOKEN),
             "/accounts/get": lambda: client.accounts_get(ACCESS_TOKEN),
             "/item/public_token/exchange": lambda: client.exchange_public_token("public-sandbox-1"),
             "/transactions/sync": lambda: client.transactions_sync(ACCESS_TOKEN, C0)}
    with pytest.raises(BadData) as info:
        calls[path]()
    assert info.value.code == "BAD_SHAPE"


def test_amounts_arrive_as_exact_decimals_and_unknown_fields_pass(api: respx.MockRouter, client: PlaidClient) -> None:
    page = sync_page(added=[txn("card_posted_dinner")], accounts=["credit_card"], next_cursor=C1, has_more=False)
    page["a_field_added_later"] = {"x": 1}
    page["transactions_update_status"] = "A_STATUS_ADDED_LATER"
    api.post("/transactions/sync").mock(return_value=ok(page))
    got = client.transactions_sync(ACCESS_TOKEN, C0)
    assert got["added"][0]["amount"] == Decimal("49.44")
    assert type(got["added"][0]["amount"]) is Decimal
    assert type(got["accounts"][0]["balances"]["current"]) is int


def test_missing_sync_accounts_list_is_tolerated(api: respx.MockRouter, client: PlaidClient) -> None:
    page = sync_page(next_cursor=C1, has_more=False)
    del page["accounts"]
    api.post("/transactions/sync").mock(return_value=ok(page))
    assert client.transactions_sync(ACCESS_TOKEN, C0)["accounts"] == []


# --------------------------------------------------------------------------------------------
# Endpoints and the bodies they send
# --------------------------------------------------------------------------------------------

def test_link_token_for_a_new_item(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/link/token/create").mock(return_value=ok(RESPONSES["/link/token/create"]))
    data = client.create_link_token("user-7", webhook="https://example.com/plaid/webhook",
                                    redirect_uri="https://example.com/oauth-return")
    assert data["link_token"] == "link-sandbox-af1a0311-da53-4636-b754-dd15cc058176"
    assert data["expiration"] == "2025-05-20T16:00:00Z"
    assert sent(route) == {
        "client_name": "Open Finance dashboard", "language": "en", "country_codes": ["US"],
        "user": {"client_user_id": "user-7"}, "products": ["transactions"], "transactions": {"days_requested": 730},
        "additional_consented_products": ["investments", "liabilities"],  # asked once: added when first read
        "webhook": "https://example.com/plaid/webhook", "redirect_uri": "https://example.com/oauth-return",
    }


def test_link_token_in_update_mode_omits_products(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/link/token/create").mock(return_value=ok(RESPONSES["/link/token/create"]))
    client.create_link_token("user-7", access_token=ACCESS_TOKEN, webhook="https://example.com/ignored",
                             client_name="A dashboard whose name is far too long for Link")
    assert sent(route) == {
        "client_name": "A dashboard whose name is far ", "language": "en", "country_codes": ["US"],
        "user": {"client_user_id": "user-7"}, "access_token": ACCESS_TOKEN,
    }


def test_link_token_with_other_products_and_countries(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/link/token/create").mock(return_value=ok(RESPONSES["/link/token/create"]))
    client.create_link_token("user-7", products=["auth", "liabilities"], country_codes=("US", "CA"), language="fr")
    assert sent(route) == {"client_name": "Open Finance dashboard", "language": "fr", "country_codes": ["US", "CA"],
                           "user": {"client_user_id": "user-7"}, "products": ["auth", "liabilities"],
                           "additional_consented_products": ["investments"]}


def test_exchange_returns_the_access_token_and_item_id(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/item/public_token/exchange").mock(return_value=ok(RESPONSES["/item/public_token/exchange"]))
    assert client.exchange_public_token("public-sandbox-1") == (ACCESS_TOKEN, ITEM_ID)
    assert sent(route) == {"public_token": "public-sandbox-1"}


def test_item_remove(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/item/remove").mock(return_value=ok(RESPONSES["/item/remove"]))
    assert client.item_remove(ACCESS_TOKEN) is None
    assert sent(route) == {"access_token": ACCESS_TOKEN}


def test_accounts_and_balances(api: respx.MockRouter, client: PlaidClient) -> None:
    accounts = api.post("/accounts/get").mock(return_value=ok(RESPONSES["/accounts/get"]))
    balance = api.post("/accounts/balance/get").mock(return_value=ok(RESPONSES["/accounts/balance/get"]))
    assert [a["name"] for a in client.accounts_get(ACCESS_TOKEN)["accounts"]] == [
        "Plaid Checking", "Plaid Saving", "Plaid Credit Card", "Plaid Student Loan"]
    client.balance_get(ACCESS_TOKEN)
    client.balance_get(ACCESS_TOKEN, ["BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp"])
    assert sent(accounts) == {"access_token": ACCESS_TOKEN}
    assert sent(balance, 0) == {"access_token": ACCESS_TOKEN}
    assert sent(balance, 1) == {"access_token": ACCESS_TOKEN,
                                "options": {"account_ids": ["BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp"]}}


@pytest.mark.parametrize(("cursor", "count", "expected"), [
    (C0, 500, {"cursor": C0, "count": 500}),
    (None, 500, {"count": 500}),  # no cursor: the whole history
    ("", 100, {"count": 100}),
    (C0, 9999, {"cursor": C0, "count": 500}),  # Plaid's maximum
    (C0, 0, {"cursor": C0, "count": 1}),
])
def test_transactions_sync_body(api: respx.MockRouter, client: PlaidClient, cursor: str | None, count: int,
                                expected: dict[str, Any]) -> None:
    route = api.post("/transactions/sync").mock(return_value=ok(sync_page(next_cursor=C1, has_more=False)))
    client.transactions_sync(ACCESS_TOKEN, cursor, count)
    assert sent(route) == {"access_token": ACCESS_TOKEN, **expected, "options": {
        "include_original_description": True, "personal_finance_category_version": "v2"}}  # the newer taxonomy


def test_institutions(api: respx.MockRouter, client: PlaidClient) -> None:
    by_id = api.post("/institutions/get_by_id").mock(return_value=ok(INSTITUTIONS["ins_109512"]))
    search = api.post("/institutions/search").mock(return_value=ok(RESPONSES["/institutions/search"]))
    assert client.institution_get("ins_109512")["name"] == "Houndstooth Bank"
    assert [i["institution_id"] for i in client.institutions_search("platypus")] == ["ins_109508"]
    assert sent(by_id) == {"institution_id": "ins_109512", "country_codes": ["US"],
                           "options": {"include_optional_metadata": True}}
    assert sent(search) == {"query": "platypus", "country_codes": ["US"], "products": ["transactions"],
                            "options": {"include_optional_metadata": True}}


def test_webhook_verification_key(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/webhook_verification_key/get").mock(return_value=ok(RESPONSES["/webhook_verification_key/get"]))
    key = client.webhook_verification_key_get("bfbd5111-8e33-4643-8ced-b2e642a72f3c")
    assert (key["alg"], key["crv"], key["expired_at"]) == ("ES256", "P-256", None)
    assert sent(route) == {"key_id": "bfbd5111-8e33-4643-8ced-b2e642a72f3c"}


def test_sandbox_public_token_and_reset_login(api: respx.MockRouter, client: PlaidClient) -> None:
    create = api.post("/sandbox/public_token/create").mock(return_value=ok(RESPONSES["/sandbox/public_token/create"]))
    reset = api.post("/sandbox/item/reset_login").mock(return_value=ok(RESPONSES["/sandbox/item/reset_login"]))
    assert client.sandbox_public_token_create("ins_109508") == RESPONSES["/sandbox/public_token/create"][
        "public_token"]
    client.sandbox_public_token_create("ins_109509", username="user_transactions_dynamic", password="any",
                                       products=["transactions", "auth"], webhook="https://example.com/hook")
    assert client.sandbox_reset_login(ACCESS_TOKEN) is True
    history = {"transactions": {"days_requested": 730}}
    assert sent(create, 0) == {"institution_id": "ins_109508", "initial_products": ["transactions"],
                               "options": history}
    assert sent(create, 1) == {"institution_id": "ins_109509", "initial_products": ["transactions", "auth"],
                               "options": {**history, "webhook": "https://example.com/hook",
                                           "override_username": "user_transactions_dynamic",
                                           "override_password": "any"}}
    assert sent(reset) == {"access_token": ACCESS_TOKEN}


def test_sandbox_endpoints_are_refused_in_production() -> None:
    with respx.mock(base_url="https://production.plaid.com", assert_all_called=False) as prod:
        c = PlaidClient(CLIENT_ID, SECRET, environment="production")
        for call in (lambda: c.sandbox_public_token_create("ins_109508"), lambda: c.sandbox_reset_login("t")):
            with pytest.raises(RequestRejected) as info:
                call()
            assert info.value.code == "SANDBOX_ONLY"
        c.close()
        assert prod.calls.call_count == 0


class LimiterTime:
    """A clock for the client-side rate limiter that its waits move forward, so a test never sleeps for real."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def test_request_counter_is_thread_safe(api: respx.MockRouter, slept: list[float]) -> None:
    api.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
    time = LimiterTime()
    client = PlaidClient(CLIENT_ID, SECRET, policy=POLICY, sleep=slept.append, now=lambda: NOW,
                         limiter=RateLimiter(clock=time.clock, sleep=time.sleep))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _i: client.item_get(ACCESS_TOKEN), range(40)))
    client.close()
    assert client.requests == 40
    assert time.now >= 60  # /item/get's per-Item limit made some requests wait a window (on the limiter's clock)


# --------------------------------------------------------------------------------------------
# transactions_sync_all
# --------------------------------------------------------------------------------------------

def cursors_sent(route: respx.Route) -> list[str | None]:
    return [sent(route, i).get("cursor") for i in range(route.call_count)]


def test_walk_follows_has_more_to_the_end(api: respx.MockRouter, client: PlaidClient) -> None:
    pages = [
        sync_page(added=[txn("checking_purchase"), txn("payroll")], accounts=["checking"], next_cursor=C1,
                  has_more=True),
        sync_page(added=[txn("card_pending_dinner")], modified=[txn("checking_pending_fast_food")],
                  accounts=["checking", "credit_card"], next_cursor=C2, has_more=True),
        sync_page(added=[txn("card_posted_dinner")], removed=[txn("card_pending_dinner")],
                  accounts=["credit_card"], next_cursor=C3, has_more=False),
    ]
    route = api.post("/transactions/sync").mock(side_effect=[ok(p) for p in pages])

    walk = transactions_sync_all(client, ACCESS_TOKEN, C0)

    assert cursors_sent(route) == [C0, C1, C2]
    assert all(sent(route, i)["count"] == 500 for i in range(3))
    assert [t["transaction_id"] for t in walk.added] == [t["transaction_id"] for p in pages for t in p["added"]]
    assert [t["transaction_id"] for t in walk.modified] == [TRANSACTIONS["checking_pending_fast_food"]
                                                            ["transaction_id"]]
    assert walk.removed == [TRANSACTIONS["card_pending_dinner"]["transaction_id"]]
    assert walk.next_cursor == C3
    assert len(walk.pages) == 3
    added, modified, removed, next_cursor, walked = walk  # a plain 5-tuple too
    assert (len(added), len(modified), len(removed), next_cursor, len(walked)) == (4, 1, 1, C3, 3)


def test_mutation_restarts_from_the_pre_loop_cursor_and_discards_the_aborted_walk(
        api: respx.MockRouter, client: PlaidClient, slept: list[float]) -> None:
    stale = sync_page(added=[txn("overdraft_fee")], accounts=["checking"], next_cursor=C1, has_more=True)
    fresh_1 = sync_page(added=[txn("payroll")], accounts=["checking"], next_cursor="cursor-1-after-restart",
                        has_more=True)
    fresh_2 = sync_page(added=[txn("card_posted_dinner")], accounts=["credit_card"], next_cursor=C3, has_more=False)
    route = api.post("/transactions/sync").mock(side_effect=[
        ok(stale), plaid_error("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"), ok(fresh_1), ok(fresh_2)])

    walk = transactions_sync_all(client, ACCESS_TOKEN, C0)

    assert cursors_sent(route) == [C0, C1, C0, "cursor-1-after-restart"]
    assert [t["transaction_id"] for t in walk.added] == [TRANSACTIONS["payroll"]["transaction_id"],
                                                         TRANSACTIONS["card_posted_dinner"]["transaction_id"]]
    assert TRANSACTIONS["overdraft_fee"]["transaction_id"] not in json.dumps(walk.pages, default=str)
    assert [[t["transaction_id"] for t in p["added"]] for p in walk.pages] == [
        [t["transaction_id"] for t in p["added"]] for p in (fresh_1, fresh_2)]
    assert walk.next_cursor == C3
    assert slept == []  # the failed page itself is never retried


def test_mutation_on_the_first_walk_without_a_cursor_restarts_without_one(api: respx.MockRouter,
                                                                          client: PlaidClient) -> None:
    route = api.post("/transactions/sync").mock(side_effect=[
        ok(sync_page(added=[txn("payroll")], accounts=["checking"], next_cursor=C1, has_more=True)),
        plaid_error("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"),
        ok(sync_page(added=[txn("payroll")], accounts=["checking"], next_cursor=C2, has_more=False))])
    walk = transactions_sync_all(client, ACCESS_TOKEN, None)
    assert cursors_sent(route) == [None, C1, None]
    assert (len(walk.added), walk.next_cursor) == (1, C2)


def test_restarts_are_bounded(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/transactions/sync").mock(side_effect=[
        ok(sync_page(next_cursor=C1, has_more=True)),
        plaid_error("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")] * (MAX_SYNC_RESTARTS + 1))
    with pytest.raises(TransientError) as info:
        transactions_sync_all(client, ACCESS_TOKEN, C0)
    assert info.value.code == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"
    assert info.value.retryable
    assert "next sync will try again" in info.value.message
    assert route.call_count == 2 * (MAX_SYNC_RESTARTS + 1)
    assert cursors_sent(route) == [C0, C1] * (MAX_SYNC_RESTARTS + 1)


def test_a_restart_that_succeeds_on_the_last_chance(api: respx.MockRouter, client: PlaidClient) -> None:
    mutation = plaid_error("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")
    api.post("/transactions/sync").mock(side_effect=[mutation] * MAX_SYNC_RESTARTS + [
        ok(sync_page(next_cursor=C1, has_more=False))])
    assert transactions_sync_all(client, ACCESS_TOKEN, C0).next_cursor == C1


@pytest.mark.parametrize(("before", "expected"), [(C0, C0), (None, None), ("", None)])
def test_an_empty_next_cursor_is_never_progress(api: respx.MockRouter, client: PlaidClient, before: str | None,
                                                expected: str | None) -> None:
    page = sync_page(next_cursor="", has_more=False)
    page["transactions_update_status"] = "NOT_READY"
    api.post("/transactions/sync").mock(return_value=ok(page))
    walk = transactions_sync_all(client, ACCESS_TOKEN, before)
    assert walk.next_cursor == expected
    assert (walk.added, walk.modified, walk.removed) == ([], [], [])


@pytest.mark.parametrize("next_cursor", ["", C0])
def test_has_more_without_a_new_cursor_is_bad_data(api: respx.MockRouter, client: PlaidClient,
                                                   next_cursor: str) -> None:
    route = api.post("/transactions/sync").mock(return_value=ok(sync_page(next_cursor=next_cursor, has_more=True)))
    with pytest.raises(BadData) as info:
        transactions_sync_all(client, ACCESS_TOKEN, C0)
    assert info.value.code == "BAD_CURSOR"
    assert route.call_count == 1


def test_any_other_failure_mid_walk_returns_nothing(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/transactions/sync").mock(side_effect=[
        ok(sync_page(added=[txn("payroll")], accounts=["checking"], next_cursor=C1, has_more=True)),
        plaid_error("ITEM_LOGIN_REQUIRED")])
    with pytest.raises(ReauthRequired):
        transactions_sync_all(client, ACCESS_TOKEN, C0)
    assert route.call_count == 2


def test_removed_entry_without_id_is_bad_data(api: respx.MockRouter, client: PlaidClient) -> None:
    page = sync_page(next_cursor=C1, has_more=False)
    page["removed"] = [{"account_id": "x"}]
    api.post("/transactions/sync").mock(return_value=ok(page))
    with pytest.raises(BadData):
        transactions_sync_all(client, ACCESS_TOKEN, C0)


# --------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------

def test_fetch_transactions_applies_pages_in_order(api: respx.MockRouter, provider: PlaidProvider) -> None:
    purchase = txn("card_purchase")
    purchase_changed = txn("card_purchase", amount=27.5)
    pending, posted = txn("card_pending_dinner"), txn("card_posted_dinner")
    route = api.post("/transactions/sync").mock(side_effect=[
        ok(sync_page(added=[pending, purchase], accounts=["credit_card"], next_cursor=C1, has_more=True)),
        ok(sync_page(added=[posted], modified=[purchase_changed], removed=[pending], accounts=["credit_card"],
                     next_cursor=C2, has_more=False)),
    ])
    accounts = [map_account(ACCOUNTS[k], ITEM_ID) for k in ("checking", "credit_card")]

    changes = provider.fetch_transactions(ITEM_ID, accounts, C0)

    assert sent(route, 0)["access_token"] == ACCESS_TOKEN
    by_id = {t.external_id: t for t in changes.upserts}
    assert sorted(by_id) == sorted([purchase["transaction_id"], posted["transaction_id"]])
    assert by_id[purchase["transaction_id"]].amount == Decimal("-27.5")  # the latest word wins
    assert by_id[posted["transaction_id"]].pending_external_id == pending["transaction_id"]
    assert by_id[posted["transaction_id"]].status is TxnStatus.POSTED
    assert changes.removed == [pending["transaction_id"]]
    assert (changes.windows, changes.cursor, changes.requests) == ([], C2, 2)
    assert len(accounts) == 2


def test_a_row_removed_then_added_again_is_live(api: respx.MockRouter, provider: PlaidProvider) -> None:
    row = txn("card_purchase")
    api.post("/transactions/sync").mock(side_effect=[
        ok(sync_page(removed=[row], next_cursor=C1, has_more=True)),
        ok(sync_page(added=[row], accounts=["credit_card"], next_cursor=C2, has_more=False)),
    ])
    changes = provider.fetch_transactions(ITEM_ID, [map_account(ACCOUNTS["credit_card"], ITEM_ID)], C0)
    assert [t.external_id for t in changes.upserts] == [row["transaction_id"]]
    assert changes.removed == []


def test_an_account_only_sync_lists_is_added_to_the_accounts(api: respx.MockRouter, provider: PlaidProvider) -> None:
    api.post("/transactions/sync").mock(return_value=ok(sync_page(
        added=[txn("card_purchase"), txn("payroll")], accounts=["credit_card"], next_cursor=C1, has_more=False)))
    accounts = [map_account(ACCOUNTS["checking"], ITEM_ID)]
    changes = provider.fetch_transactions(ITEM_ID, accounts, None)
    assert [a.type for a in accounts] == [AccountType.CHECKING, AccountType.CREDIT_CARD]
    assert accounts[1].current_balance == Decimal(-410)
    assert {t.account_external_id for t in changes.upserts} == {a.external_id for a in accounts}


def test_a_transaction_for_an_unknown_account_is_bad_data(api: respx.MockRouter, provider: PlaidProvider) -> None:
    api.post("/transactions/sync").mock(return_value=ok(sync_page(
        added=[txn("card_purchase")], next_cursor=C1, has_more=False)))
    with pytest.raises(BadData) as info:
        provider.fetch_transactions(ITEM_ID, [map_account(ACCOUNTS["checking"], ITEM_ID)], C0)
    assert info.value.code == "UNKNOWN_ACCOUNT"


@pytest.mark.parametrize("before", [C0, None])
def test_fetch_keeps_the_old_cursor_when_transactions_are_not_ready(api: respx.MockRouter, provider: PlaidProvider,
                                                                   before: str | None) -> None:
    api.post("/transactions/sync").mock(return_value=ok(sync_page(next_cursor="", has_more=False)))
    changes = provider.fetch_transactions(ITEM_ID, [], before)
    assert (changes.upserts, changes.removed, changes.cursor) == ([], [], before)


def test_fetch_accounts_uses_the_free_cached_endpoint(api: respx.MockRouter, provider: PlaidProvider) -> None:
    accounts = api.post("/accounts/get").mock(return_value=ok(RESPONSES["/accounts/get"]))
    balance = api.post("/accounts/balance/get").mock(return_value=ok(RESPONSES["/accounts/balance/get"]))
    got = provider.fetch_accounts(ITEM_ID)
    assert [(a.type, a.current_balance) for a in got] == [
        (AccountType.CHECKING, Decimal(110)), (AccountType.SAVINGS, Decimal(210)),
        (AccountType.CREDIT_CARD, Decimal(-410)), (AccountType.LOAN, Decimal(-65262))]
    assert {a.connection_external_id for a in got} == {ITEM_ID}
    assert sent(accounts) == {"access_token": ACCESS_TOKEN}
    assert balance.call_count == 0


def test_connection_state_looks_the_institution_up_once(api: respx.MockRouter, provider: PlaidProvider) -> None:
    item = api.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
    inst = api.post("/institutions/get_by_id").mock(return_value=ok(INSTITUTIONS["ins_109508"]))
    first = provider.connection_state(ITEM_ID)
    second = provider.connection_state(ITEM_ID)
    assert first == second
    assert first.status is ConnectionStatus.ACTIVE
    assert first.institution is not None
    assert (first.institution.name, first.institution.is_sandbox) == ("First Platypus Bank", True)
    assert first.institution.logo_url is not None and first.institution.logo_url.startswith("data:image/png")
    assert (item.call_count, inst.call_count) == (2, 1)
    assert sent(item) == {"access_token": ACCESS_TOKEN}


def test_connection_state_survives_a_failed_institution_lookup(api: respx.MockRouter,
                                                               provider: PlaidProvider) -> None:
    api.post("/item/get").mock(return_value=ok(ITEMS["login_required"]))
    api.post("/institutions/get_by_id").mock(return_value=plaid_error("INVALID_FIELD"))
    state = provider.connection_state(ITEM_ID)
    assert state.status is ConnectionStatus.NEEDS_RECONNECT
    assert state.error_code == "ITEM_LOGIN_REQUIRED"
    assert state.institution is not None and state.institution.name == "First Platypus Bank"


def _unreadable(_item: str) -> str:
    raise SecretError("This connection has no stored access token; reconnect the bank.")


@pytest.mark.parametrize("lookup", [lambda _item: None, {}.__getitem__, _unreadable],
                         ids=["none", "key-error", "secret-error"])
def test_no_stored_token_asks_to_reconnect_without_calling_plaid(api: respx.MockRouter, client: PlaidClient,
                                                                 lookup: Any) -> None:
    provider = PlaidProvider(client, lookup)
    for call in (lambda: provider.connection_state(ITEM_ID), lambda: provider.fetch_accounts(ITEM_ID),
                 lambda: provider.fetch_transactions(ITEM_ID, [], None)):
        with pytest.raises(ReauthRequired) as info:
            call()
        assert info.value.code == "NO_ACCESS_TOKEN"
    assert client.requests == 0


def test_disconnect_removes_the_item(api: respx.MockRouter, provider: PlaidProvider) -> None:
    route = api.post("/item/remove").mock(return_value=ok(RESPONSES["/item/remove"]))
    assert provider.disconnect(ITEM_ID) is None
    assert sent(route) == {"access_token": ACCESS_TOKEN}


def test_disconnect_forgets_a_token_kept_since_connecting(api: respx.MockRouter, client: PlaidClient) -> None:
    api.post("/item/public_token/exchange").mock(return_value=ok(RESPONSES["/item/public_token/exchange"]))
    api.post("/item/get").mock(return_value=ok(ITEMS["no_institution"]))
    remove = api.post("/item/remove").mock(return_value=ok(RESPONSES["/item/remove"]))
    provider = PlaidProvider(client, {}.get)
    provider.exchange("public-sandbox-1")
    provider.disconnect(ITEM_ID)
    assert sent(remove) == {"access_token": ACCESS_TOKEN}
    with pytest.raises(ReauthRequired):
        provider.connection_state(ITEM_ID)


@pytest.mark.parametrize("code", ["ITEM_NOT_FOUND", "INVALID_ACCESS_TOKEN"])
def test_disconnect_treats_an_item_already_gone_as_success(api: respx.MockRouter, provider: PlaidProvider,
                                                           code: str) -> None:
    route = api.post("/item/remove").mock(return_value=plaid_error(code))
    provider.disconnect(ITEM_ID)
    assert route.call_count == 1


def test_disconnect_other_errors_propagate(api: respx.MockRouter, provider: PlaidProvider) -> None:
    api.post("/item/remove").mock(return_value=plaid_error("INVALID_API_KEYS"))
    with pytest.raises(ConfigurationError):
        provider.disconnect(ITEM_ID)


def test_sandbox_institutions(api: respx.MockRouter, provider: PlaidProvider) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        institution_id = json.loads(request.content)["institution_id"]
        if institution_id == "ins_109511":
            return plaid_error("ITEM_NOT_FOUND")  # stands in for an institution the sandbox lacks
        if institution_id == "ins_109510":  # Plaid takes no new connections there (API 1.778)
            retired = copy.deepcopy(INSTITUTIONS[institution_id])
            retired["institution"]["connection_availability"] = "NOT_SUPPORTED"
            return ok(retired)
        return ok(INSTITUTIONS[institution_id])

    route = api.post("/institutions/get_by_id").mock(side_effect=answer)
    found = provider.institutions()
    assert [(i.id, i.name, i.is_sandbox) for i in found] == [
        ("ins_109508", "First Platypus Bank", True), ("ins_109509", "First Gingham Credit Union", True),
        ("ins_109512", "Houndstooth Bank", True)]
    assert route.call_count == 5


def test_create_connection_in_the_sandbox(api: respx.MockRouter, client: PlaidClient) -> None:
    create = api.post("/sandbox/public_token/create").mock(return_value=ok(RESPONSES["/sandbox/public_token/create"]))
    exchange = api.post("/item/public_token/exchange").mock(return_value=ok(RESPONSES["/item/public_token/exchange"]))
    api.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
    api.post("/institutions/get_by_id").mock(return_value=ok(INSTITUTIONS["ins_109508"]))
    provider = PlaidProvider(client, {}.get)  # the store has no token yet

    state = provider.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})

    assert state.secret == ACCESS_TOKEN  # handed over for the sync engine to store encrypted
    assert ACCESS_TOKEN not in repr(state)
    assert (state.external_id, state.status, state.provider) == (ITEM_ID, ConnectionStatus.ACTIVE, "plaid")
    assert sent(create) == {"institution_id": "ins_109508", "initial_products": ["transactions"],
                            "options": {"transactions": {"days_requested": 730}, "override_username": "user_good",
                                        "override_password": "pass_good"}}
    assert sent(exchange) == {"public_token": RESPONSES["/sandbox/public_token/create"]["public_token"]}


def test_connect_flow_as_the_connections_page_drives_it(api: respx.MockRouter, client: PlaidClient) -> None:
    """create_connection → wait_until_settled → (register) → sync, before the store holds the token."""
    api.post("/sandbox/public_token/create").mock(return_value=ok(RESPONSES["/sandbox/public_token/create"]))
    api.post("/item/public_token/exchange").mock(return_value=ok(RESPONSES["/item/public_token/exchange"]))
    item_get = api.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
    api.post("/institutions/get_by_id").mock(return_value=ok(INSTITUTIONS["ins_109508"]))
    api.post("/accounts/get").mock(return_value=ok(RESPONSES["/accounts/get"]))
    provider = PlaidProvider(client, {}.get)

    fields = provider.credential_fields("ins_109508")
    assert [(f["name"], f["type"]) for f in fields] == [("username", "text"), ("password", "password")]
    state = provider.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
    settled = provider.wait_until_settled(state.external_id, on_progress=lambda _s: None, sleep=lambda _s: None)

    assert (settled.status, settled.secret) == (ConnectionStatus.ACTIVE, ACCESS_TOKEN)
    assert len(provider.fetch_accounts(ITEM_ID)) == 4
    assert {sent(item_get, i)["access_token"] for i in range(item_get.call_count)} == {ACCESS_TOKEN}
    with pytest.raises(RequestRejected) as info:
        provider.submit_mfa(ITEM_ID, {"code": "1234"})
    assert info.value.code == "MFA_IN_LINK"


def test_a_registered_item_settles_without_a_secret(api: respx.MockRouter, provider: PlaidProvider) -> None:
    api.post("/item/get").mock(return_value=ok(ITEMS["healthy"]))
    api.post("/institutions/get_by_id").mock(return_value=ok(INSTITUTIONS["ins_109508"]))
    assert provider.wait_until_settled(ITEM_ID).secret is None


def test_create_connection_with_blank_credentials_uses_the_sandbox_defaults(api: respx.MockRouter,
                                                                            provider: PlaidProvider) -> None:
    create = api.post("/sandbox/public_token/create").mock(return_value=ok(RESPONSES["/sandbox/public_token/create"]))
    api.post("/item/public_token/exchange").mock(return_value=ok(RESPONSES["/item/public_token/exchange"]))
    api.post("/item/get").mock(return_value=ok(ITEMS["no_institution"]))
    provider.create_connection("ins_109508", {"username": "", "password": ""})
    assert sent(create) == {"institution_id": "ins_109508", "initial_products": ["transactions"],
                            "options": {"transactions": {"days_requested": 730}}}


def test_production_connections_go_through_link() -> None:
    with respx.mock(base_url="https://production.plaid.com", assert_all_called=False) as prod:
        c = PlaidClient(CLIENT_ID, SECRET, environment="production")
        provider = PlaidProvider(c, {}.get)
        with pytest.raises(RequestRejected) as info:
            provider.create_connection("ins_109508", {"username": "user_good", "password": "pass_good"})
        assert info.value.code == "LINK_REQUIRED"
        assert "Plaid Link" in info.value.message
        assert provider.institutions() == []
        assert provider.credential_fields("ins_109508") == []
        c.close()
        assert prod.calls.call_count == 0


def test_link_token_and_exchange_through_the_provider(api: respx.MockRouter, provider: PlaidProvider) -> None:
    link = api.post("/link/token/create").mock(return_value=ok(RESPONSES["/link/token/create"]))
    api.post("/item/public_token/exchange").mock(return_value=ok(RESPONSES["/item/public_token/exchange"]))
    api.post("/item/get").mock(return_value=ok(ITEMS["sandbox_recording"]))
    api.post("/institutions/get_by_id").mock(return_value=ok(INSTITUTIONS["ins_109512"]))

    assert provider.link_token("user-7") == RESPONSES["/link/token/create"]["link_token"]
    provider.link_token("user-7", access_token=ACCESS_TOKEN)
    state = provider.exchange("public-sandbox-from-link")

    assert "products" in sent(link, 0) and "access_token" not in sent(link, 0)
    assert "products" not in sent(link, 1) and sent(link, 1)["access_token"] == ACCESS_TOKEN
    assert state.secret == ACCESS_TOKEN
    assert state.institution is not None and state.institution.name == "Houndstooth Bank"


def test_provider_identity(provider: PlaidProvider) -> None:
    assert (provider.name, provider.label) == ("plaid", "Plaid")


# --------------------------------------------------------------------------------------------
# Investments and liabilities
# --------------------------------------------------------------------------------------------

def investment_page(rows: int, total: int, start: int = 0) -> dict[str, Any]:
    return {"item": ITEMS["healthy"]["item"], "accounts": [], "request_id": "r",
            "securities": [{"security_id": f"s{i % 3}", "name": f"Fund {i % 3}", "type": "etf"}
                           for i in range(start, start + rows)],
            "investment_transactions": [
                {"investment_transaction_id": f"it{i}", "account_id": "brk", "security_id": f"s{i % 3}",
                 "date": "2026-11-02", "name": "BUY", "quantity": 1, "amount": 10, "price": 10, "fees": 0,
                 "type": "buy", "subtype": "buy", "iso_currency_code": "USD", "unofficial_currency_code": None}
                for i in range(start, start + rows)],
            "total_investment_transactions": total}


def test_investment_transactions_are_read_page_by_page(api: respx.MockRouter, client: PlaidClient) -> None:
    route = api.post("/investments/transactions/get").mock(side_effect=[
        ok(investment_page(500, 1203)), ok(investment_page(500, 1203, 500)), ok(investment_page(203, 1203, 1000))])
    rows, securities = client.investments_transactions_all(ACCESS_TOKEN, datetime(2024, 12, 7).date(),
                                                           datetime(2026, 12, 7).date())
    assert len(rows) == 1203 and len({r["investment_transaction_id"] for r in rows}) == 1203
    assert sorted(s["security_id"] for s in securities) == ["s0", "s1", "s2"]
    assert [sent(route, i)["options"] for i in range(3)] == [
        {"count": 500, "offset": 0}, {"count": 500, "offset": 500}, {"count": 500, "offset": 1000}]
    assert (sent(route)["start_date"], sent(route)["end_date"]) == ("2024-12-07", "2026-12-07")


def test_investment_pages_that_never_end_or_lie_are_bad_data(api: respx.MockRouter, client: PlaidClient,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import finance.providers.plaid.client as plaid_client
    monkeypatch.setattr(plaid_client, "MAX_INVESTMENT_PAGES", 3)
    api.post("/investments/transactions/get").mock(side_effect=lambda request: ok(investment_page(
        500, 10**9, json.loads(request.content)["options"]["offset"])))
    day = datetime(2026, 12, 7).date()
    with pytest.raises(BadData):
        client.investments_transactions_all(ACCESS_TOKEN, day, day)
    api.post("/investments/transactions/get").mock(return_value=ok(investment_page(1, -1)))
    with pytest.raises(BadData):
        client.investments_transactions_get(ACCESS_TOKEN, day, day)
    api.post("/investments/transactions/get").mock(return_value=ok({**investment_page(0, 0), "securities": None}))
    with pytest.raises(BadData):
        client.investments_transactions_get(ACCESS_TOKEN, day, day)
    empty = investment_page(0, 5)  # a server announcing more but sending nothing ends the walk
    api.post("/investments/transactions/get").mock(return_value=ok(empty))
    assert client.investments_transactions_all(ACCESS_TOKEN, day, day) == ([], [])


def test_holdings_and_liabilities_shapes(api: respx.MockRouter, client: PlaidClient) -> None:
    api.post("/investments/holdings/get").mock(return_value=ok({"accounts": [], "holdings": [], "securities": None,
                                                                "item": ITEMS["healthy"]["item"], "request_id": "r"}))
    with pytest.raises(BadData):
        client.investments_holdings_get(ACCESS_TOKEN)
    route = api.post("/liabilities/get").mock(return_value=ok({"accounts": [], "liabilities": None,
                                                               "item": ITEMS["healthy"]["item"], "request_id": "r"}))
    with pytest.raises(BadData):
        client.liabilities_get(ACCESS_TOKEN)
    assert sent(route) == {"access_token": ACCESS_TOKEN}


def test_a_bank_without_investments_gives_an_empty_portfolio(api: respx.MockRouter, provider: PlaidProvider) -> None:
    def refuse(code: str) -> httpx.Response:
        return httpx.Response(400, json={"error_type": "ITEM_ERROR", "error_code": code, "error_message": "no",
                                         "display_message": None, "request_id": "r"})
    api.post("/investments/holdings/get").mock(return_value=refuse("PRODUCTS_NOT_SUPPORTED"))
    api.post("/investments/transactions/get").mock(return_value=refuse("NO_INVESTMENT_ACCOUNTS"))
    api.post("/liabilities/get").mock(return_value=refuse("A_CODE_PLAID_ADDS_LATER"))
    accounts = [map_account(ACCOUNTS["investment_401k"], ITEM_ID), map_account(ACCOUNTS["credit_card"], ITEM_ID)]
    portfolio = provider.fetch_portfolio(ITEM_ID, accounts, since=None)
    assert (portfolio.holdings, portfolio.investment_transactions, portfolio.liabilities) == ([], [], [])
    assert [(f.resource, f.code) for f in portfolio.failures] == [("liabilities", "A_CODE_PLAID_ADDS_LATER")]
    assert portfolio.requests == 3


def test_investment_transactions_start_where_the_store_left_off_within_two_years(
        api: respx.MockRouter, provider: PlaidProvider) -> None:
    route = api.post("/investments/transactions/get").mock(return_value=ok(investment_page(1, 1)))
    api.post("/investments/holdings/get").mock(return_value=ok({"accounts": [], "holdings": [], "securities": [],
                                                                "item": ITEMS["healthy"]["item"], "request_id": "r"}))
    accounts = [map_account(ACCOUNTS["investment_401k"], ITEM_ID)]
    accounts[0] = replace(accounts[0], external_id="brk")
    today = NOW.astimezone(provider.local_zone).date()
    for since, start in ((date(2026, 11, 1), date(2026, 11, 1)), (date(2001, 1, 1), today - timedelta(days=730)),
                         (None, today - timedelta(days=730))):
        portfolio = provider.fetch_portfolio(ITEM_ID, accounts, since=since)
        assert sent(route, route.call_count - 1)["start_date"] == start.isoformat()
        assert [t.amount for t in portfolio.investment_transactions] == [Decimal(-10)]
