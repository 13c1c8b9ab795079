"""PluggyClient over HTTP, with api.pluggy.ai mocked by respx: auth, retries, error taxonomy, cursors, pages."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import finance.http
from finance.errors import (
    BadData,
    ConfigurationError,
    NotFound,
    RateLimited,
    RequestRejected,
    TransientError,
    UpdateTooSoon,
)
from finance.http import RetryPolicy
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider

BASE = "https://api.pluggy.ai"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pluggy"
CLIENT_ID = "f8c9b8f0-0e6c-4d6a-9c1f-2b1a3c4d5e6f"
SECRET = "s3cr3t-Pluggy-client-secret-value"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ITEM = "a0922d6f-2007-4169-a181-b961500608db"
ACCOUNT = "a658c848-e475-457b-8565-d1fffba127c4"
POLICY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=4.0, max_rate_limit_wait=90.0)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def jwt(exp: datetime, sub: str = "key") -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': sub, 'exp': int(exp.timestamp())})}.c2lnbmF0dXJl"


KEY_1 = jwt(T0 + timedelta(hours=2), "one")
KEY_2 = jwt(T0 + timedelta(hours=4), "two")


def error(status: int, code: str | None = None, message: str = "error",
          headers: dict[str, str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"code": status, "message": message}
    if code:
        body["codeDescription"] = code
    return httpx.Response(status, json=body, headers=headers)


def item_body(status: str = "UPDATED") -> dict[str, Any]:
    return {**load("items.json")["updated_success"], "status": status}


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class Jitter:
    """Stands in for the `random` module of finance.http: `uniform` returns one end of its range."""

    def __init__(self, high: bool) -> None:
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def auth(api: respx.MockRouter) -> respx.Route:
    return api.post("/auth").mock(return_value=httpx.Response(200, json={"apiKey": KEY_1}))


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def client(slept: list[float], clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluggyClient]:
    monkeypatch.setattr(finance.http, "random", Jitter(high=True))
    c = PluggyClient(CLIENT_ID, SECRET, policy=POLICY, sleep=slept.append, now=clock)
    yield c
    c.close()


def sent_json(route: respx.Route, index: int = 0) -> Any:
    return json.loads(route.calls[index].request.content)


# --------------------------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------------------------

def test_auth_once_and_reuse_the_key_in_x_api_key(api: respx.MockRouter, auth: respx.Route,
                                                  client: PluggyClient) -> None:
    items = api.get(f"/items/{ITEM}").mock(return_value=httpx.Response(200, json=item_body()))
    accounts = api.get("/accounts").mock(return_value=httpx.Response(200, json=load("accounts_page.json")))

    assert client.item(ITEM)["id"] == ITEM
    assert len(client.accounts(ITEM)) == 3
    assert client.item(ITEM)["status"] == "UPDATED"

    assert auth.call_count == 1
    assert sent_json(auth) == {"clientId": CLIENT_ID, "clientSecret": SECRET, "nonExpiring": False}
    assert auth.calls[0].request.headers["Content-Type"] == "application/json"
    assert "X-API-KEY" not in auth.calls[0].request.headers
    for call in [*items.calls, *accounts.calls]:
        assert call.request.headers["X-API-KEY"] == KEY_1
        assert "Authorization" not in call.request.headers
    assert client.requests == 4


def test_key_near_expiry_is_renewed_before_use(api: respx.MockRouter, clock: Clock, client: PluggyClient) -> None:
    auth = api.post("/auth").mock(side_effect=[httpx.Response(200, json={"apiKey": KEY_1}),
                                               httpx.Response(200, json={"apiKey": KEY_2})])
    items = api.get(f"/items/{ITEM}").mock(return_value=httpx.Response(200, json=item_body()))

    client.item(ITEM)
    clock.at = T0 + timedelta(minutes=100)  # 20 minutes left: still used
    client.item(ITEM)
    clock.at = T0 + timedelta(minutes=111)  # 9 minutes left: inside the refresh margin
    client.item(ITEM)
    client.item(ITEM)

    assert auth.call_count == 2
    assert [c.request.headers["X-API-KEY"] for c in items.calls] == [KEY_1, KEY_1, KEY_2, KEY_2]


def test_key_without_readable_expiry_lives_two_hours(api: respx.MockRouter, clock: Clock,
                                                     client: PluggyClient) -> None:
    auth = api.post("/auth").mock(return_value=httpx.Response(200, json={"apiKey": "opaque-key"}))
    api.get(f"/items/{ITEM}").mock(return_value=httpx.Response(200, json=item_body()))
    client.item(ITEM)
    clock.at = T0 + timedelta(minutes=109)
    client.item(ITEM)
    assert auth.call_count == 1
    clock.at = T0 + timedelta(minutes=111)
    client.item(ITEM)
    assert auth.call_count == 2


@pytest.mark.parametrize("rejection", [
    error(401, message="Unauthorized"),
    error(403, message="Forbidden"),  # a bare 403 is how an expired key looks
])
def test_expired_key_is_refreshed_once_and_the_call_retried(api: respx.MockRouter, client: PluggyClient,
                                                            rejection: httpx.Response) -> None:
    auth = api.post("/auth").mock(side_effect=[httpx.Response(200, json={"apiKey": KEY_1}),
                                               httpx.Response(200, json={"apiKey": KEY_2})])
    items = api.get(f"/items/{ITEM}").mock(side_effect=[rejection, httpx.Response(200, json=item_body())])

    assert client.item(ITEM)["id"] == ITEM
    assert auth.call_count == 2
    assert [c.request.headers["X-API-KEY"] for c in items.calls] == [KEY_1, KEY_2]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_after_renewing_the_key_says_so_not_check_your_client_id(api: respx.MockRouter, client: PluggyClient,
                                                                          slept: list[float], status: int) -> None:
    auth = api.post("/auth").mock(side_effect=[httpx.Response(200, json={"apiKey": KEY_1}),
                                               httpx.Response(200, json={"apiKey": KEY_2})])
    items = api.get(f"/items/{ITEM}").mock(return_value=error(status, message="Missing or invalid authorization token"))

    with pytest.raises(RequestRejected) as info:
        client.item(ITEM)
    exc = info.value
    assert (exc.status, exc.code, exc.provider) == (status, "API_KEY_REFUSED", "pluggy")
    assert "after renewing our API key" in exc.message and "client id and secret are fine" in exc.message
    assert "PLUGGY_CLIENT_ID" not in exc.message and SECRET not in str(exc)
    assert auth.call_count == 2
    assert items.call_count == 2
    assert [c.request.headers["X-API-KEY"] for c in items.calls] == [KEY_1, KEY_2]
    assert slept == []


def test_403_with_code_description_is_a_real_denial(api: respx.MockRouter, auth: respx.Route,
                                                    client: PluggyClient) -> None:
    items = api.get(f"/items/{ITEM}").mock(return_value=error(403, "FORBIDDEN_RESOURCE", "not allowed"))
    with pytest.raises(RequestRejected) as info:
        client.item(ITEM)
    assert (info.value.status, info.value.code) == (403, "FORBIDDEN_RESOURCE")
    assert auth.call_count == 1
    assert items.call_count == 1


@pytest.mark.parametrize("code", ["CLIENT_KEYS_UNAUTHORIZED", "CLIENT_DISABLED"])
def test_bad_client_keys_name_the_env_vars_and_hide_the_secret(api: respx.MockRouter, client: PluggyClient,
                                                               slept: list[float], code: str) -> None:
    auth = api.post("/auth").mock(return_value=error(401, code, "Client keys are invalid"))
    items = api.get(f"/items/{ITEM}").mock(return_value=httpx.Response(200, json=item_body()))

    with pytest.raises(ConfigurationError) as info:
        client.item(ITEM)
    exc = info.value
    assert (exc.status, exc.code) == (401, code)
    assert "PLUGGY_CLIENT_ID" in exc.message and "PLUGGY_CLIENT_SECRET" in exc.message
    for text in (str(exc), repr(exc), exc.message, *map(str, exc.args)):
        assert SECRET not in text
    assert auth.call_count == 1
    assert items.call_count == 0
    assert slept == []


def test_missing_credentials_fail_before_any_request() -> None:
    with pytest.raises(ConfigurationError) as info:
        PluggyClient(CLIENT_ID, "")
    assert info.value.code == "NO_CREDENTIALS"


def test_auth_answer_without_api_key_is_bad_data(api: respx.MockRouter, client: PluggyClient) -> None:
    api.post("/auth").mock(return_value=httpx.Response(200, json={"accessToken": KEY_1}))
    with pytest.raises(BadData) as info:
        client.item(ITEM)
    assert info.value.code == "BAD_AUTH"


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------

def test_429_waits_rate_limit_reset_not_retry_after(api: respx.MockRouter, auth: respx.Route, slept: list[float],
                                                    client: PluggyClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finance.http, "random", Jitter(high=False))
    limited = httpx.Response(429, json={"message": "Too many requests. Please try again later", "code": 429},
                             headers={"RateLimit-Limit": "360", "RateLimit-Reset": "2", "Retry-After": "60"})
    items = api.get(f"/items/{ITEM}").mock(side_effect=[limited, httpx.Response(200, json=item_body())])

    assert client.item(ITEM)["id"] == ITEM
    assert slept == [2.0]
    assert items.call_count == 2


def test_429_jitter_adds_at_most_a_quarter_second(api: respx.MockRouter, auth: respx.Route, slept: list[float],
                                                  client: PluggyClient) -> None:
    limited = error(429, headers={"RateLimit-Reset": "2", "Retry-After": "60"})
    api.get(f"/items/{ITEM}").mock(side_effect=[limited, httpx.Response(200, json=item_body())])
    client.item(ITEM)
    assert slept == [2.25]  # Jitter(high=True): the top of the range


def test_429_that_never_clears_raises_rate_limited(api: respx.MockRouter, auth: respx.Route, slept: list[float],
                                                   client: PluggyClient) -> None:
    items = api.get(f"/items/{ITEM}").mock(return_value=error(429, headers={"RateLimit-Reset": "1"}))
    with pytest.raises(RateLimited) as info:
        client.item(ITEM)
    assert (info.value.retry_after, info.value.status) == (1.0, 429)
    assert items.call_count == POLICY.attempts
    assert slept == [1.25, 1.25]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_retries_with_backoff_then_raises_transient(api: respx.MockRouter, auth: respx.Route,
                                                        slept: list[float], client: PluggyClient,
                                                        status: int) -> None:
    items = api.get(f"/items/{ITEM}").mock(return_value=error(status, "INTERNAL_SERVER_ERROR"))
    with pytest.raises(TransientError) as info:
        client.item(ITEM)
    assert (info.value.status, info.value.code) == (status, "INTERNAL_SERVER_ERROR")
    assert items.call_count == 3
    assert slept == [0.5, 1.0]  # full-jitter caps: base * 2**(attempt-1)


def test_5xx_then_success(api: respx.MockRouter, auth: respx.Route, slept: list[float], client: PluggyClient) -> None:
    items = api.get(f"/items/{ITEM}").mock(side_effect=[error(503), error(500), httpx.Response(200, json=item_body())])
    assert client.item(ITEM)["id"] == ITEM
    assert items.call_count == 3
    assert slept == [0.5, 1.0]


def test_timeouts_retry_then_raise_transient(api: respx.MockRouter, auth: respx.Route, slept: list[float],
                                             client: PluggyClient) -> None:
    items = api.get(f"/items/{ITEM}").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientError) as info:
        client.item(ITEM)
    assert info.value.code == "TIMEOUT"
    assert items.call_count == 3
    assert slept == [0.5, 1.0]


def test_timeout_then_success(api: respx.MockRouter, auth: respx.Route, slept: list[float],
                              client: PluggyClient) -> None:
    items = api.get(f"/items/{ITEM}").mock(side_effect=[httpx.ConnectTimeout("slow"),
                                                        httpx.Response(200, json=item_body())])
    assert client.item(ITEM)["id"] == ITEM
    assert items.call_count == 2
    assert slept == [0.5]


@pytest.mark.parametrize("failure", [error(500), error(503), httpx.ReadTimeout("slow"), httpx.ConnectError("down")],
                         ids=["500", "503", "timeout", "connect-error"])
def test_create_item_is_never_retried_on_5xx_or_timeout(api: respx.MockRouter, auth: respx.Route,
                                                        slept: list[float], client: PluggyClient,
                                                        failure: Any) -> None:
    create = api.post("/items").mock(side_effect=[failure, httpx.Response(200, json=item_body("UPDATING"))])
    with pytest.raises(TransientError):
        client.create_item(0, {"user": "user-ok", "password": "password-ok"})
    assert create.call_count == 1
    assert slept == []


def test_create_item_is_retried_on_429(api: respx.MockRouter, auth: respx.Route, slept: list[float],
                                       client: PluggyClient) -> None:
    create = api.post("/items").mock(side_effect=[error(429, headers={"RateLimit-Reset": "3", "Retry-After": "60"}),
                                                  httpx.Response(200, json=item_body("UPDATING"))])
    created = client.create_item(0, {"user": "user-ok", "password": "password-ok"}, client_user_id="u-1",
                                 webhook_url="https://example.com/hook")
    assert created["status"] == "UPDATING"
    assert create.call_count == 2
    assert slept == [3.25]
    assert sent_json(create, 0) == sent_json(create, 1) == {
        "connectorId": 0, "parameters": {"user": "user-ok", "password": "password-ok"},
        "webhookUrl": "https://example.com/hook", "clientUserId": "u-1"}


# --------------------------------------------------------------------------------------------
# Error taxonomy
# --------------------------------------------------------------------------------------------

def test_item_not_found(api: respx.MockRouter, auth: respx.Route, slept: list[float], client: PluggyClient) -> None:
    items = api.get(f"/items/{ITEM}").mock(return_value=error(404, "ITEM_NOT_FOUND", "item not found"))
    with pytest.raises(NotFound) as info:
        client.item(ITEM)
    assert (info.value.status, info.value.code) == (404, "ITEM_NOT_FOUND")
    assert info.value.message == ("This connection no longer exists at Pluggy. Remove it here and connect the "
                                  "bank again.")
    assert items.call_count == 1
    assert slept == []


def test_update_frequency_409_says_when_and_is_not_retried(api: respx.MockRouter, auth: respx.Route,
                                                           slept: list[float], client: PluggyClient) -> None:
    body = {"code": 409, "codeDescription": "CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY",
            "message": "Client updates on this item are allowed at most every 8 hours.",
            "data": {"minUpdateFrequencyAllowedInHours": 8, "lastUpdatedAt": "2026-03-10T08:00:00.000Z"}}
    patch = api.patch(f"/items/{ITEM}").mock(return_value=httpx.Response(409, json=body))
    with pytest.raises(UpdateTooSoon) as info:
        client.update_item(ITEM)
    assert (info.value.status, info.value.code, info.value.allowed_at) == (
        409, "CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY", datetime(2026, 3, 10, 16, 0, tzinfo=UTC))
    assert not info.value.retryable
    assert info.value.message == ("Pluggy lets this bank be refreshed at most every 8 hours; it can be refreshed "
                                  "again after 2026-03-10 16:00 UTC. Its data as of the last update is shown "
                                  "meanwhile.")
    assert patch.call_count == 1
    assert slept == []
    assert sent_json(patch) == {}


def test_validation_400_without_code_description_is_rejected(api: respx.MockRouter, auth: respx.Route,
                                                             client: PluggyClient) -> None:
    api.get("/v2/transactions").mock(return_value=error(400, message="accountId must be a UUID"))
    with pytest.raises(RequestRejected) as info:
        list(client.transactions("not-a-uuid"))
    assert (info.value.status, info.value.code) == (400, "HTTP_400")
    assert "accountId must be a UUID" in info.value.message


@pytest.mark.parametrize("content", [b"<html>502 Bad Gateway</html>", b'{"results": [', b""])
def test_malformed_json_on_200_is_bad_data(api: respx.MockRouter, auth: respx.Route, slept: list[float],
                                           client: PluggyClient, content: bytes) -> None:
    items = api.get(f"/items/{ITEM}").mock(return_value=httpx.Response(200, content=content))
    with pytest.raises(BadData) as info:
        client.item(ITEM)
    assert (info.value.code, info.value.status) == ("MALFORMED_RESPONSE", 200)
    assert items.call_count == 1
    assert slept == []


def test_unexpected_shape_is_bad_data(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    api.get(f"/items/{ITEM}").mock(return_value=httpx.Response(200, json=["not", "an", "item"]))
    with pytest.raises(BadData) as info:
        client.item(ITEM)
    assert info.value.code == "BAD_SHAPE"


# --------------------------------------------------------------------------------------------
# /v2/transactions cursors
# --------------------------------------------------------------------------------------------

CURSOR_1 = "MjAyNC0wMy0xMFQwMzowMDowMC4wMDBafP+/vg=="  # sent raw in `next`
CURSOR_2 = "MjAyNC0wMy0xMVQwMzowMDowMC4wMDBafP+/vw=="  # sent percent-encoded in `next`


def test_cursor_walk_follows_next_and_keeps_the_filters(api: respx.MockRouter, auth: respx.Route,
                                                        client: PluggyClient) -> None:
    pages = [load("transactions_page_1.json"), load("transactions_page_2.json"), load("transactions_page_3.json")]
    route = api.get("/v2/transactions").mock(side_effect=[httpx.Response(200, json=p) for p in pages])

    rows = list(client.transactions(ACCOUNT, date_from=date(2024, 3, 1)))

    assert [r.id for r in rows] == [r["id"] for p in pages for r in p["results"]]
    assert route.call_count == 3
    params = [dict(c.request.url.params.multi_items()) for c in route.calls]
    assert params == [
        {"accountId": ACCOUNT, "dateFrom": "2024-03-01"},
        {"accountId": ACCOUNT, "dateFrom": "2024-03-01", "after": CURSOR_1},
        {"accountId": ACCOUNT, "dateFrom": "2024-03-01", "after": CURSOR_2},
    ]
    for call in route.calls:
        assert call.request.url.path == "/v2/transactions"
        assert len(call.request.url.params.multi_items()) == len(dict(call.request.url.params.multi_items()))
    wire = [str(c.request.url) for c in route.calls[1:]]
    assert "after=MjAyNC0wMy0xMFQwMzowMDowMC4wMDBafP%2B%2Fvg%3D%3D" in wire[0]
    assert "after=MjAyNC0wMy0xMVQwMzowMDowMC4wMDBafP%2B%2Fvw%3D%3D" in wire[1]
    assert all("+" not in w and " " not in w and "%20" not in w for w in wire)


def test_cursor_walk_sends_only_the_cursor_from_next(api: respx.MockRouter, auth: respx.Route,
                                                     client: PluggyClient) -> None:
    # `next` carries its own copy of the filters (and could carry anything); only `after` is taken from it
    first = {"results": [], "next": "?accountId=someone-else&pageSize=1&after=abc%2Bdef"}
    route = api.get("/v2/transactions").mock(side_effect=[httpx.Response(200, json=first),
                                                          httpx.Response(200, json={"results": [], "next": None})])
    assert list(client.transactions(ACCOUNT, ids=["t1", "t2"])) == []
    assert dict(route.calls[1].request.url.params.multi_items()) == {
        "accountId": ACCOUNT, "ids": "t1,t2", "after": "abc+def"}


def test_next_null_stops_after_one_page(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    route = api.get("/v2/transactions").mock(return_value=httpx.Response(200, json=load("transactions_page_3.json")))
    rows = list(client.transactions(ACCOUNT))
    assert [r.id for r in rows] == ["0b6f2a1e-1c1d-4e0a-9f3b-000000000005"]
    assert route.call_count == 1
    assert dict(route.calls[0].request.url.params.multi_items()) == {"accountId": ACCOUNT}


def test_next_without_cursor_is_bad_data(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    api.get("/v2/transactions").mock(return_value=httpx.Response(200, json={"results": [], "next": "?accountId=x"}))
    with pytest.raises(BadData) as info:
        list(client.transactions(ACCOUNT))
    assert info.value.code == "BAD_CURSOR"


def test_transaction_page_without_results_is_bad_data(api: respx.MockRouter, auth: respx.Route,
                                                      client: PluggyClient) -> None:
    api.get("/v2/transactions").mock(return_value=httpx.Response(200, json={"next": None}))
    with pytest.raises(BadData) as info:
        list(client.transactions(ACCOUNT))
    assert info.value.code == "BAD_SHAPE"
    assert "missing required field `results`" in info.value.message


def test_transaction_amounts_arrive_as_exact_decimals(api: respx.MockRouter, auth: respx.Route,
                                                      client: PluggyClient) -> None:
    row = load("transactions.json")["credit_card"]["foreign"]
    api.get("/v2/transactions").mock(return_value=httpx.Response(200, json={"results": [row], "next": None}))
    (got,) = client.transactions(ACCOUNT)
    assert (got.amount, got.amountInAccountCurrency) == (58, Decimal("298.19"))
    assert type(got.amount) is Decimal and type(got.amountInAccountCurrency) is Decimal


def test_a_row_off_the_documented_shape_fails_the_page_naming_where_not_what(api: respx.MockRouter, auth: respx.Route,
                                                                            client: PluggyClient) -> None:
    good = load("transactions.json")["checking"]["debit"]
    bad = {**good, "id": "t-2", "amount": "secret-looking-value"}
    api.get("/v2/transactions").mock(return_value=httpx.Response(200, json={"results": [good, bad], "next": None}))
    with pytest.raises(BadData) as info:
        list(client.transactions(ACCOUNT))
    assert info.value.code == "BAD_SHAPE"
    assert "$.results[1].amount" in info.value.message and "secret-looking-value" not in str(info.value)


def test_amounts_keep_every_digit_pluggy_sent(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    row = load("transactions.json")["checking"]["debit"]
    body = json.dumps({"results": [row], "next": None}).replace(json.dumps(row["amount"]),
                                                                  "-1234567890123.456789012345678901")
    api.get("/v2/transactions").mock(return_value=httpx.Response(200, content=body.encode()))
    (got,) = client.transactions(ACCOUNT)
    assert got.amount == Decimal("-1234567890123.456789012345678901")


@pytest.mark.parametrize(("created_at_from", "wire"), [
    (datetime(2024, 3, 10, 12, 5, 7, 123456, tzinfo=UTC), "2024-03-10T12:05:07.123Z"),
    (datetime(2024, 3, 10, 12, 5, 7, tzinfo=UTC), "2024-03-10T12:05:07.000Z"),
    (datetime(2024, 3, 10, 21, 0, tzinfo=timezone(timedelta(hours=-3))), "2024-03-11T00:00:00.000Z"),
])
def test_created_at_from_format(api: respx.MockRouter, auth: respx.Route, client: PluggyClient,
                                created_at_from: datetime, wire: str) -> None:
    route = api.get("/v2/transactions").mock(return_value=httpx.Response(200, json={"results": [], "next": None}))
    list(client.transactions(ACCOUNT, created_at_from=created_at_from))
    assert dict(route.calls[0].request.url.params.multi_items()) == {"accountId": ACCOUNT, "createdAtFrom": wire}


def test_date_from_and_created_at_from_together_raise(api: respx.MockRouter, auth: respx.Route,
                                                      client: PluggyClient) -> None:
    route = api.get("/v2/transactions").mock(return_value=httpx.Response(200, json={"results": [], "next": None}))
    with pytest.raises(ValueError, match="dateFrom together with createdAtFrom"):
        list(client.transactions(ACCOUNT, date_from=date(2024, 3, 1), created_at_from=T0))
    assert route.call_count == 0
    assert auth.call_count == 0


# --------------------------------------------------------------------------------------------
# Page envelopes and categories
# --------------------------------------------------------------------------------------------

def test_page_walk_stops_when_total_pages_is_zero(api: respx.MockRouter, auth: respx.Route,
                                                  client: PluggyClient) -> None:
    route = api.get("/accounts").mock(return_value=httpx.Response(
        200, json={"page": 1, "total": 0, "totalPages": 0, "results": []}))
    assert client.accounts(ITEM) == []
    assert route.call_count == 1
    assert dict(route.calls[0].request.url.params.multi_items()) == {"itemId": ITEM, "page": "1"}


def test_page_walk_reads_every_page(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    accounts = load("accounts_page.json")["results"]
    route = api.get("/connectors").mock(side_effect=[
        httpx.Response(200, json={"page": 1, "total": 3, "totalPages": 2, "results": accounts[:2]}),
        httpx.Response(200, json={"page": 2, "total": 3, "totalPages": 2, "results": accounts[2:]}),
    ])
    assert [a["id"] for a in client.connectors()] == [a["id"] for a in accounts]
    assert [dict(c.request.url.params.multi_items()) for c in route.calls] == [
        {"sandbox": "true", "countries": "BR", "page": "1"},
        {"sandbox": "true", "countries": "BR", "page": "2"},
    ]


@pytest.mark.parametrize("fixture", ["categories.json", "categories_page.json"])
def test_categories_accept_a_bare_array_or_a_page(api: respx.MockRouter, auth: respx.Route, client: PluggyClient,
                                                  fixture: str) -> None:
    api.get("/categories").mock(return_value=httpx.Response(200, json=load(fixture)))
    assert [c["id"] for c in client.categories()] == ["01000000", "01010000", "05000000"]


def test_categories_of_another_shape_are_bad_data(api: respx.MockRouter, auth: respx.Route,
                                                  client: PluggyClient) -> None:
    api.get("/categories").mock(return_value=httpx.Response(200, json={"page": 1}))
    with pytest.raises(BadData):
        client.categories()


# --------------------------------------------------------------------------------------------
# Connect tokens and the provider
# --------------------------------------------------------------------------------------------

def test_connect_token_without_item(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    route = api.post("/connect_token").mock(return_value=httpx.Response(200, json={"accessToken": "ct-1"}))
    assert client.create_connect_token() == "ct-1"
    assert sent_json(route) == {}
    assert route.calls[0].request.headers["X-API-KEY"] == KEY_1


def test_connect_token_with_item_and_options(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    route = api.post("/connect_token").mock(return_value=httpx.Response(200, json={"accessToken": "ct-2"}))
    token = client.create_connect_token(ITEM, client_user_id="user-7", webhook_url="https://example.com/hook")
    assert token == "ct-2"
    assert sent_json(route) == {"itemId": ITEM, "options": {"clientUserId": "user-7",
                                                            "webhookUrl": "https://example.com/hook"}}


def test_connect_token_answer_without_access_token(api: respx.MockRouter, auth: respx.Route,
                                                   client: PluggyClient) -> None:
    api.post("/connect_token").mock(return_value=httpx.Response(200, json={"apiKey": "wrong-key"}))
    with pytest.raises(BadData) as info:
        client.create_connect_token()
    assert info.value.code == "BAD_TOKEN"


def test_disconnect_treats_404_as_success(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    route = api.delete(f"/items/{ITEM}").mock(return_value=error(404, "ITEM_NOT_FOUND", "item not found"))
    assert PluggyProvider(client).disconnect(ITEM) is None
    assert route.call_count == 1


def test_disconnect_deletes_the_item(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    route = api.delete(f"/items/{ITEM}").mock(return_value=httpx.Response(200, json={"count": 1}))
    PluggyProvider(client).disconnect(ITEM)
    assert route.call_count == 1
    assert route.calls[0].request.headers["X-API-KEY"] == KEY_1


def test_disconnect_other_errors_propagate(api: respx.MockRouter, auth: respx.Route, client: PluggyClient) -> None:
    api.delete(f"/items/{ITEM}").mock(return_value=error(403, "FORBIDDEN_RESOURCE"))
    with pytest.raises(RequestRejected):
        PluggyProvider(client).disconnect(ITEM)
