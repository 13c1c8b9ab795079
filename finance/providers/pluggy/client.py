"""The httpx client for api.pluggy.ai: auth and key renewal, retries, rate limits, and the /v2/transactions walk.

The same code runs against the real API and against the offline emulator (finance.providers.pluggy.sandbox),
which replaces only the transport.
"""

from __future__ import annotations

import base64
import contextvars
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx

from finance.errors import (
    BadData,
    ConfigurationError,
    NotFound,
    ProviderError,
    RateLimited,
    ReauthRequired,
    RequestRejected,
    TransientError,
    UpdateTooSoon,
)
from finance.http import (
    DEFAULT_POLICY,
    RateLimiter,
    RetryPolicy,
    Sleep,
    call_with_retries,
    decode_json,
    error_body,
    make_client,
    retry_after_seconds,
)
from finance.i18n import N_, Messages, _
from finance.providers.pluggy.mapping import LABEL, NAME, RawTransaction, read_transaction_page

API_KEY_REFRESH_MARGIN = timedelta(minutes=10)  # keys live 2 h; renew well before
PAGE_SIZE = 500  # the most a numbered page holds

def _decode_json(response: httpx.Response) -> Any:
    return decode_json(response, NAME, LABEL)


NOT_FOUND_MESSAGES = Messages({
    "ITEM_NOT_FOUND": N_("This connection no longer exists at Pluggy. Remove it here and connect the bank again."),
    "ACCOUNT_NOT_FOUND": N_("This account no longer exists at Pluggy."),
    "CONNECTOR_NOT_FOUND": N_("This bank is no longer offered by Pluggy."),
})


def classify_response(response: httpx.Response) -> ProviderError | None:
    """None for a usable response; otherwise the typed error it means."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    body = error_body(response)
    code = body.get("codeDescription")
    detail = str(body.get("message") or "")[:300]
    if status == 429:
        return RateLimited(_("Pluggy is rate limiting requests; the sync will resume shortly."),
                           retry_after=retry_after_seconds(response), code="RATE_LIMITED", provider=NAME, status=429)
    if status >= 500:
        return TransientError(_("Pluggy had a server error (HTTP {status}). Nothing was changed; try again in a few "
                                "minutes.").format(status=status), code=code or f"HTTP_{status}", provider=NAME,
                              status=status)
    if status in (401, 403) and code in (None, "CLIENT_KEYS_UNAUTHORIZED", "CLIENT_DISABLED"):
        return ConfigurationError(_("Pluggy rejected our client credentials. Check PLUGGY_CLIENT_ID and "
                                    "PLUGGY_CLIENT_SECRET."), code=code or f"HTTP_{status}", provider=NAME,
                                  status=status)
    if status == 404:
        return NotFound(NOT_FOUND_MESSAGES.get(code or "", detail or _("Not found at Pluggy.")),
                        code=code or "NOT_FOUND", provider=NAME, status=404)
    if status == 409 and code == "CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY":
        return update_too_soon(body)
    if code in ("MFA_PARAMERTER_WAS_ALREADY_USED_ERROR", "CONNECTOR_REQUIRED_PARAMETER_VALIDATION_ERROR",
                "TOO_MANY_CONSECUTIVE_LOGIN_FAILURES"):
        return ReauthRequired(_("The bank needs fresh credentials: {detail}").format(detail=detail), code=code,
                              provider=NAME, status=status)
    return RequestRejected(_("Pluggy refused the request: {detail}").format(detail=detail or f"HTTP {status}"),
                           code=code or f"HTTP_{status}", provider=NAME, status=status)


DEFAULT_UPDATE_HOURS = 24.0  # the spec's example; Pluggy's plans allow 8, 12 or 24


def update_too_soon(body: dict[str, Any]) -> UpdateTooSoon:
    """Pluggy's minimum update interval (409 CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY) with the time the item may
    be refreshed again: its last update plus the allowed frequency."""
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    try:
        hours = float(data.get("minUpdateFrequencyAllowedInHours") or DEFAULT_UPDATE_HOURS)
    except (TypeError, ValueError):
        hours = DEFAULT_UPDATE_HOURS
    last = data.get("lastUpdatedAt")
    try:
        allowed = datetime.fromisoformat(str(last).replace("Z", "+00:00")) + timedelta(hours=hours) if last else None
    except ValueError:
        allowed = None
    message = (_("Pluggy lets this bank be refreshed at most every {hours} hours; it can be refreshed again after "
                 "{when} UTC. Its data as of the last update is shown meanwhile.") if allowed else
               _("Pluggy lets this bank be refreshed at most every {hours} hours; it can be refreshed later. Its "
                 "data as of the last update is shown meanwhile."))
    return UpdateTooSoon(message.format(hours=f"{hours:g}", when=f"{allowed:%Y-%m-%d %H:%M}" if allowed else ""),
                         allowed_at=allowed, code="CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY", provider=NAME,
                         status=409)


def _cursor_from_next(next_query: str) -> str | None:
    """The decoded `after` value of a `next` query string.

    Percent-escapes are decoded (%2B is '+'), but a literal '+' stays '+': the cursor is base64, not
    form data, so reading it with form rules (parse_qsl) would turn it into a space.
    """
    for part in next_query.split("?", 1)[-1].split("&"):
        key, _, value = part.partition("=")
        if unquote(key) == "after":
            return unquote(value)
    return None


RATE_LIMITS: dict[str, int] = {"auth": 360, "accounts": 360, "transactions": 360, "investments": 360,
                                 "investment_transactions": 360, "item_update": 20}
"""Requests per minute per IP and endpoint group (reference pluggy.md §7.2); /v2/transactions counts as transactions."""


def rate_limit_group(method: str, path: str) -> str | None:
    """The limit group a request counts against, or None for endpoints without a published limit."""
    if method == "POST" and path == "/auth":
        return "auth"
    if method == "GET" and (path == "/accounts" or path.startswith("/accounts/")):
        return "accounts"
    if method == "GET" and (path in ("/transactions", "/v2/transactions") or path.startswith("/transactions/")):
        return "transactions"
    if method == "GET" and path.startswith("/investments/") and path.endswith("/transactions"):
        return "investment_transactions"
    if method == "GET" and (path == "/investments" or path.startswith("/investments/")):
        return "investments"
    if method == "PATCH" and path.startswith("/items/") and path.count("/") == 2:
        return "item_update"
    return None


def rate_limits(request: httpx.Request) -> list[tuple[str, int]]:
    """The token buckets a request takes from (one per limit group; Pluggy counts per IP, so per server)."""
    group = rate_limit_group(request.method, request.url.path)
    return [(f"pluggy:{group}", RATE_LIMITS[group])] if group else []


_NEXT_KEY = b'"next"'
_JSON_VALUE = json.JSONDecoder()


def _next_cursor_hint(content: bytes) -> str | None:
    """The `after` cursor of a /v2/transactions answer read straight off its bytes (the last "next" key), or
    None. Only a guess to request the next page early: the decoded page is the authority."""
    at = content.rfind(_NEXT_KEY)
    if at < 0:
        return None
    rest = content[at + len(_NEXT_KEY):].decode("utf-8", "replace").lstrip()
    if not rest.startswith(":"):
        return None
    try:
        value, _ = _JSON_VALUE.raw_decode(rest[1:].lstrip())
    except ValueError:
        return None
    return _cursor_from_next(value) if isinstance(value, str) and value else None


class _Ahead:
    """A request sent on its own thread for a page the walk expects to need next."""

    def __init__(self, fetch: Callable[[str], httpx.Response], cursor: str) -> None:
        self.cursor = cursor
        self._response: httpx.Response | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run, fetch),
                                        daemon=True, name="pluggy-page-ahead")
        self._thread.start()

    def _run(self, fetch: Callable[[str], httpx.Response]) -> None:
        try:
            self._response = fetch(self.cursor)
        except Exception as exc:  # raised by result(), if the page turns out to be needed
            self._error = exc

    def result(self) -> httpx.Response:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response

    def abandon(self) -> None:
        """Not needed after all: let the request finish on its own and drop its answer."""


def _jwt_expiry(token: str) -> datetime | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(float(claims["exp"]), UTC)
    except (IndexError, KeyError, ValueError, TypeError):
        return None


class PluggyClient:
    """Thin, typed access to the Pluggy endpoints we use; every call goes through the retry loop."""

    def __init__(self, client_id: str, client_secret: str, *, base_url: str = "https://api.pluggy.ai",
                 transport: httpx.BaseTransport | None = None, policy: RetryPolicy = DEFAULT_POLICY,
                 sleep: Sleep = time.sleep, now: Callable[[], datetime] | None = None,
                 rate_limited: bool | None = None, limiter: RateLimiter | None = None) -> None:
        """`rate_limited`: keep Pluggy's per-minute limits client-side (default: on the network, not against
        an in-process emulator's transport); `limiter`: the token buckets to use (default: the client's own)."""
        if not client_id or not client_secret:
            raise ConfigurationError(_("Pluggy needs a client id and secret."), code="NO_CREDENTIALS", provider=NAME)
        self._client_id = client_id
        self._client_secret = client_secret
        limited = (transport is None or limiter is not None) if rate_limited is None else rate_limited
        self._http = make_client(base_url, transport=transport, rate_limits=rate_limits if limited else None,
                                 limiter=limiter)
        self._policy = policy
        self._sleep = sleep
        self._now = now or (lambda: datetime.now(UTC))  # the emulator's clock offline, to read key expiry
        self._api_key: str | None = None
        self._api_key_expires = datetime.min.replace(tzinfo=UTC)
        self._auth_lock = threading.Lock()
        self._requests = 0
        self._requests_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (retries included), for sync run statistics."""
        return self._requests

    # -- auth -------------------------------------------------------------------------------
    def _authenticate(self) -> str:
        response = self._send("POST", "/auth", json={"clientId": self._client_id,
                                                      "clientSecret": self._client_secret, "nonExpiring": False},
                              auth=False)
        body = _decode_json(response)
        key = body.get("apiKey") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            raise BadData("Pluggy's /auth answer had no apiKey.", code="BAD_AUTH", provider=NAME)
        return key

    def api_key(self, *, force: bool = False) -> str:
        with self._auth_lock:
            now = self._now()
            if force or self._api_key is None or now >= self._api_key_expires - API_KEY_REFRESH_MARGIN:
                key = self._authenticate()
                self._api_key = key
                self._api_key_expires = _jwt_expiry(key) or now + timedelta(hours=2)
            return self._api_key

    # -- transport --------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
              auth: bool = True, idempotent: bool = True, raw_query: str | None = None) -> httpx.Response:
        def send(key: str | None) -> httpx.Response:
            headers = {"X-API-KEY": key} if key else {}
            url = f"{path}{raw_query}" if raw_query else path
            with self._requests_lock:
                self._requests += 1
            return self._http.request(method, url, params=params, json=json, headers=headers)

        refreshed = False

        def classify(response: httpx.Response) -> ProviderError | None:
            return classify_response(response)

        while True:
            key = self.api_key() if auth else None
            try:
                return call_with_retries(lambda k=key: send(k), classify, idempotent=idempotent,
                                         policy=self._policy, sleep=self._sleep, provider=LABEL)
            except ConfigurationError as exc:
                # An expired key looks like 401 or a bare 403: renew once, then give up.
                if not auth or exc.status not in (401, 403):
                    raise
                if refreshed and exc.code == f"HTTP_{exc.status}":
                    # /auth just issued this key, so our client id and secret are good: the refusal is not theirs.
                    raise RequestRejected(
                        f"Pluggy refused the request (HTTP {exc.status}) even after renewing our API key, which "
                        "Pluggy had just issued, so the client id and secret are fine: Pluggy is denying this request "
                        "itself (a fault on its side, or no access to this item). Try again later; if it keeps "
                        "happening, contact Pluggy support.", code="API_KEY_REFUSED", provider=NAME,
                        status=exc.status) from exc
                if refreshed:
                    raise
                refreshed = True
                with self._auth_lock:
                    self._api_key = None
                continue

    def _get_json(self, path: str, **kwargs: Any) -> Any:
        return _decode_json(self._send("GET", path, **kwargs))

    # -- endpoints --------------------------------------------------------------------------
    def create_connect_token(self, item_id: str | None = None, *, client_user_id: str | None = None,
                             webhook_url: str | None = None) -> str:
        options = {k: v for k, v in {"clientUserId": client_user_id, "webhookUrl": webhook_url}.items() if v}
        body: dict[str, Any] = {}
        if item_id:
            body["itemId"] = item_id
        if options:
            body["options"] = options
        data = _decode_json(self._send("POST", "/connect_token", json=body))
        token = data.get("accessToken") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise BadData("Pluggy's connect token answer had no accessToken.", code="BAD_TOKEN", provider=NAME)
        return token

    def connectors(self, *, sandbox: bool = True, countries: str | None = "BR") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"sandbox": "true" if sandbox else "false"}
        if countries:
            params["countries"] = countries
        return list(self._paged("/connectors", params))

    def connector(self, connector_id: int) -> dict[str, Any]:
        return self._object(self._get_json(f"/connectors/{connector_id}"))

    def create_item(self, connector_id: int, parameters: dict[str, str], *, webhook_url: str | None = None,
                    client_user_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"connectorId": connector_id, "parameters": parameters}
        if webhook_url:
            body["webhookUrl"] = webhook_url
        if client_user_id:
            body["clientUserId"] = client_user_id
        # No idempotency key exists: a retried POST could create a second connection.
        return self._object(_decode_json(self._send("POST", "/items", json=body, idempotent=False)))

    def item(self, item_id: str) -> dict[str, Any]:
        return self._object(self._get_json(f"/items/{item_id}"))

    def update_item(self, item_id: str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"parameters": parameters} if parameters else {}
        return self._object(_decode_json(self._send("PATCH", f"/items/{item_id}", json=body, idempotent=False)))

    def send_mfa(self, item_id: str, values: dict[str, str]) -> dict[str, Any]:
        return self._object(_decode_json(self._send("POST", f"/items/{item_id}/mfa", json=values,
                                                    idempotent=False)))

    def delete_item(self, item_id: str) -> None:
        self._send("DELETE", f"/items/{item_id}")

    # -- webhooks (application-wide; custom headers carry our shared secret) -------------------
    def webhooks(self) -> list[dict[str, Any]]:
        """The webhooks registered for this application (Pluggy answers 204 when there are none)."""
        response = self._send("GET", "/webhooks")
        if response.status_code == 204 or not response.content:
            return []
        data = _decode_json(response)
        results = data.get("results") if isinstance(data, dict) else data
        if not isinstance(results, list):
            raise BadData("Pluggy's webhook list was not a list.", code="BAD_PAGE", provider=NAME)
        return [w for w in results if isinstance(w, dict)]

    def create_webhook(self, url: str, event: str = "all", headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Register a webhook for `event` ("all": every event); `headers` are sent with each delivery."""
        body: dict[str, Any] = {"url": url, "event": event}
        if headers:
            body["headers"] = headers
        return self._object(_decode_json(self._send("POST", "/webhooks", json=body, idempotent=False)))

    def update_webhook(self, webhook_id: str, *, url: str | None = None, event: str | None = None,
                       headers: dict[str, str] | None = None, enabled: bool | None = None) -> dict[str, Any]:
        """Change a webhook; `enabled=True` re-enables one Pluggy disabled after failed deliveries."""
        body = {k: v for k, v in {"url": url, "event": event, "headers": headers, "enabled": enabled}.items()
                if v is not None}
        return self._object(_decode_json(self._send("PATCH", f"/webhooks/{webhook_id}", json=body)))

    def accounts(self, item_id: str) -> list[dict[str, Any]]:
        return list(self._paged("/accounts", {"itemId": item_id}))

    # -- investments, loans, card bills (numbered pages) ------------------------------------------------------------
    def investments(self, item_id: str) -> list[dict[str, Any]]:
        return list(self._paged("/investments", {"itemId": item_id, "pageSize": PAGE_SIZE}))

    def investment_transactions(self, investment_id: str) -> list[dict[str, Any]]:
        return list(self._paged(f"/investments/{investment_id}/transactions", {"pageSize": PAGE_SIZE}))

    def loans(self, item_id: str) -> list[dict[str, Any]]:
        return list(self._paged("/loans", {"itemId": item_id}))

    def bills(self, account_id: str) -> list[dict[str, Any]]:
        """The closed bills of a credit card account."""
        return list(self._paged("/bills", {"accountId": account_id}))

    def categories(self) -> list[dict[str, Any]]:
        data = self._get_json("/categories")
        results = data.get("results") if isinstance(data, dict) else data
        if not isinstance(results, list):
            raise BadData("Pluggy's category list was not a list.", code="BAD_PAGE", provider=NAME)
        return results

    def transactions(self, account_id: str, *, date_from: date | None = None,
                     created_at_from: datetime | None = None, ids: list[str] | None = None,
                     ) -> Iterator[RawTransaction]:
        """Every transaction matching the filters, walking /v2/transactions cursors to the end."""
        for page in self.transaction_pages(account_id, date_from=date_from, created_at_from=created_at_from,
                                           ids=ids):
            yield from page

    def transaction_pages(self, account_id: str, *, date_from: date | None = None,
                          created_at_from: datetime | None = None, ids: list[str] | None = None,
                          ) -> Iterator[list[RawTransaction]]:
        """The pages of `transactions`, one list of rows per /v2/transactions answer (for page-wise mapping)."""
        if date_from and created_at_from:
            raise ValueError("Pluggy does not accept dateFrom together with createdAtFrom")
        params: dict[str, Any] = {"accountId": account_id}
        if date_from:
            params["dateFrom"] = date_from.isoformat()
        if created_at_from:
            params["createdAtFrom"] = created_at_from.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        if ids:
            params["ids"] = ",".join(ids)

        def fetch(after: str | None) -> httpx.Response:
            return self._send("GET", "/v2/transactions", params={**params, "after": after} if after else params)

        # Pipelined: the next page is requested as soon as its cursor can be read off the raw answer, and this
        # page is decoded (and used by the caller) while that request is in flight. The guess is checked
        # against the decoded page; a wrong one is dropped and the right page requested.
        response = fetch(None)
        while True:
            guess = _next_cursor_hint(response.content)
            ahead = _Ahead(fetch, guess) if guess else None
            try:
                page = read_transaction_page(response.content)
                after = _cursor_from_next(page.next) if page.next else None
                if page.next and not after:
                    raise BadData("Pluggy's next-page link had no cursor.", code="BAD_CURSOR", provider=NAME)
                yield page.results
                if after is None:
                    return
                response = ahead.result() if ahead is not None and ahead.cursor == after else fetch(after)
                ahead = None
            finally:
                if ahead is not None:
                    ahead.abandon()

    def _paged(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            data = self._get_json(path, params={**params, "page": page})
            if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                raise BadData(f"Pluggy's {path} page had no results list.", code="BAD_PAGE", provider=NAME)
            yield from data["results"]
            total_pages = int(data.get("totalPages") or 0)
            if page >= total_pages:  # also ends when totalPages is 0
                return
            page += 1

    @staticmethod
    def _object(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise BadData("Pluggy sent an unexpected response shape.", code="BAD_SHAPE", provider=NAME)
        return data


