"""What every part of the Pluggy emulator shares: `ApiError` and the error bodies, request helpers, the per-minute
rate limits, and `PluggyBase`, the emulator's state, request dispatch and authentication (API keys, connect tokens).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from finance.sandbox.common import Clock, EmulatorBase, Fault, Faults, b64url

API_KEY_TTL = timedelta(hours=2)
RATE_LIMITS: dict[str, int] = {"auth": 360, "accounts": 360, "transactions": 360, "investments": 360,
                                 "investment_transactions": 360, "item_update": 20}
"""Requests per minute per endpoint group (reference/pluggy.md §7.2); /v2/transactions shares the transactions one."""
_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_EXPIRED = {"code": 403, "message": "Missing or invalid authorization token"}
_TOO_MANY = {"message": "Too many requests. Please try again later (see Retry-After header in seconds)", "code": 429}

Handler = Callable[["_Call"], tuple[int, Any]]
"""A route handler: the call in, (HTTP status, JSON body) out."""


def rate_limit_group(method: str, path: str) -> str | None:
    """The `RATE_LIMITS` group a request counts in (None: not limited)."""
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
    if method == "PATCH" and re.fullmatch(r"/items/[^/]+", path):
        return "item_update"
    return None


class ApiError(Exception):
    """An error response: raised anywhere while handling a request, rendered by `handle`."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body
        self.headers = headers or {}


def _not_found(what: str, message: str) -> ApiError:
    return ApiError(404, {"code": 404, "codeDescription": f"{what}_NOT_FOUND", "message": message})


def _bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, {"message": message, "code": 400, **extra})


def _json_response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return httpx.Response(status, content=content,
                          headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _parse_time(text: str) -> datetime:
    """An ISO-8601 instant (a bare date means UTC midnight); ValueError when it is not one."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _page(results: list[Any], page: int = 1, page_size: int | None = None, total: int | None = None) -> dict[str, Any]:
    total = len(results) if total is None else total
    size = page_size or max(total, 1)
    return {"page": page, "total": total, "totalPages": math.ceil(total / size), "results": results}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


@dataclass(frozen=True, slots=True)
class _Principal:
    """Who is calling: an API key, or a connect token scoped to an item (or to the items created with it)."""

    kind: str
    token_id: str | None = None
    item_id: str | None = None


@dataclass(slots=True)
class _Call:
    """One request as the route handlers see it."""

    request: httpx.Request
    params: httpx.QueryParams
    match: dict[str, str]
    principal: _Principal | None
    now: datetime

    def body(self) -> dict[str, Any]:
        if not self.request.content:
            return {}
        try:
            body = json.loads(self.request.content)
        except ValueError as exc:
            raise _bad_request("Request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise _bad_request("Request body must be a JSON object")
        return body


class PluggyBase(EmulatorBase):
    """The emulator's state, `handle` (faults, rate limits, routing, authentication) and the saved state's shape.

    The resource mixins supply the handlers; the composed `PluggyEmulator` supplies the route table (`_routes`) and
    `_refresh_all` (what falls due as the clock moves, in `items`).
    """

    _clock: Clock
    faults: Faults
    seed: int
    request_log: list[tuple[str, str]]
    rate_limits: bool
    settle_delay: float
    mfa_code: str
    min_update_hours: float | None
    _client_id: str | None
    _client_secret: str | None
    _secret: bytes
    _lock: threading.RLock
    _items: dict[str, dict[str, Any]]
    _tokens: dict[str, dict[str, Any]]
    _patches: dict[str, dict[str, str]]
    _item_counter: int
    _patch_version: int
    _sync_started: dict[str, float]
    _windows: dict[str, tuple[int, int]]
    _webhooks: dict[str, dict[str, Any]]
    _routes: list[tuple[str, re.Pattern[str], Handler, str]]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request exactly as api.pluggy.ai would."""
        method = request.method.upper()
        path = request.url.path.rstrip("/") or "/"
        with self._lock:
            self._log_request(request)
            fault = self.faults.take(method, path)
            if fault is not None and fault.kind != "malformed_json":
                return self._fault_response(fault, request, method, path)
            headers: dict[str, str] = {}
            try:
                self._reload_if_changed()
                if self._refresh_all():
                    self._save()
                headers = self._count_request(method, path)
                status, body = self._dispatch(request, method, path)
                response = _json_response(status, body, headers)
            except ApiError as error:
                response = _json_response(error.status, error.body, {**headers, **error.headers})
            if fault is not None:
                return httpx.Response(200, content=response.content[: len(response.content) // 2],
                                      headers={"Content-Type": "application/json; charset=utf-8"})
            return response

    def _fault_response(self, fault: Fault, request: httpx.Request, method: str, path: str) -> httpx.Response:
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("Emulated Pluggy timeout", request=request)
        if fault.kind == "rate_limit":
            limit = RATE_LIMITS.get(rate_limit_group(method, path) or "", 360)
            return _json_response(429, _TOO_MANY, {"RateLimit-Limit": str(limit), "RateLimit-Remaining": "0",
                                                   "RateLimit-Reset": "1", "Retry-After": "60"})
        if fault.kind == "server_error":
            return _json_response(500, {"code": 500, "codeDescription": "INTERNAL_SERVER_ERROR",
                                        "message": "Internal Server Error"})
        if fault.kind == "unavailable":
            return _json_response(503, {"code": 503, "message": "Service Unavailable"})
        if fault.kind == "expired_key":
            return _json_response(403, _EXPIRED)
        raise ValueError(f"Unknown fault kind {fault.kind!r} for the Pluggy emulator")

    def _count_request(self, method: str, path: str) -> dict[str, str]:
        """Count a request in its group's per-minute window: the RateLimit-* headers to send, or a 429 if over."""
        group = rate_limit_group(method, path)
        if group is None or not self.rate_limits:
            return {}
        limit = RATE_LIMITS[group]
        now = self._clock.now().timestamp()
        window = int(now // 60)
        start, count = self._windows.get(group, (window, 0))
        count = count + 1 if start == window else 1
        self._windows[group] = (window, count)
        reset = str(max(1, math.ceil((window + 1) * 60 - now)))
        headers = {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(max(0, limit - count)),
                   "RateLimit-Reset": reset}
        if count > limit:
            raise ApiError(429, dict(_TOO_MANY), {**headers, "Retry-After": "60"})
        return headers

    def _dispatch(self, request: httpx.Request, method: str, path: str) -> tuple[int, Any]:
        allowed = False
        for route_method, pattern, handler, auth in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed = True
                continue
            now = self._clock.now()
            principal = self._authenticate(request, auth, now)
            return handler(_Call(request, request.url.params, match.groupdict(), principal, now))
        if allowed:
            raise ApiError(405, {"code": 405, "message": f"Method {method} not allowed on {path}"})
        raise ApiError(404, {"code": 404, "message": f"Cannot {method} {path}"})

    # -- auth --------------------------------------------------------------------------------------------------------

    def _token(self, payload: dict[str, Any]) -> str:
        header = b64url(b'{"alg":"HS256","typ":"JWT"}')
        body = b64url(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{b64url(signature)}"

    def _read_token(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(b64url(expected).encode(), parts[2].encode()):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _authenticate(self, request: httpx.Request, mode: str, now: datetime) -> _Principal | None:
        if mode == "none":
            return None
        token = request.headers.get("X-API-KEY", "")
        payload = self._read_token(token) if token else None
        if payload is None:
            raise ApiError(401, {"code": 401, "message": "Missing or invalid API key (send it in X-API-KEY)"})
        if float(payload.get("exp", 0)) <= now.timestamp():
            raise ApiError(403, dict(_EXPIRED))
        if payload.get("typ") != "connect":
            return _Principal("api")
        record = self._tokens.get(str(payload.get("jti")))
        if record is None:
            raise ApiError(403, dict(_EXPIRED))
        if mode != "connect":
            raise self._forbidden()
        return _Principal("connect", str(payload["jti"]), record.get("itemId"))

    @staticmethod
    def _forbidden() -> ApiError:
        return ApiError(403, {"code": 403, "codeDescription": "CONNECT_TOKEN_FORBIDDEN",
                              "message": "A connect token can only read the item created with it (or the item it was "
                                         "created for) and that item's accounts; use an API key."})

    def _check_scope(self, call: _Call, item: dict[str, Any]) -> None:
        principal = call.principal
        if principal is None or principal.kind != "connect":
            return
        if item["id"] != principal.item_id and item.get("connectToken") != principal.token_id:
            raise self._forbidden()

    def _auth(self, call: _Call) -> tuple[int, Any]:
        body = call.body()
        client_id, client_secret = body.get("clientId"), body.get("clientSecret")
        valid = isinstance(client_id, str) and isinstance(client_secret, str) and client_id and client_secret
        if valid and self._client_id is not None:
            valid = hmac.compare_digest(client_id.encode(), self._client_id.encode()) and hmac.compare_digest(
                client_secret.encode(), (self._client_secret or "").encode())
        if not valid:
            raise ApiError(401, {"code": 401, "codeDescription": "CLIENT_KEYS_UNAUTHORIZED",
                                 "message": "Client keys are invalid"})
        issued = int(call.now.timestamp())
        expires = int((call.now + API_KEY_TTL).timestamp())
        payload = {"typ": "api", "sub": client_id, "iat": issued, "exp": expires, "jti": uuid.uuid4().hex}
        return 200, {"apiKey": self._token(payload)}

    # -- state -------------------------------------------------------------------------------------------------------

    def _state_from_dict(self, state: dict[str, Any]) -> None:
        self._items = state.get("items", {})
        self._tokens = state.get("connectTokens", {})
        self._patches = state.get("transactionPatches", {})
        self._item_counter = int(state.get("itemCounter", 0))
        self._webhooks = state.get("webhooks", {})
        self._patch_version += 1

    def _state_to_dict(self) -> dict[str, Any]:
        return {"items": self._items, "connectTokens": self._tokens, "transactionPatches": self._patches,
                "itemCounter": self._item_counter, "webhooks": self._webhooks}

    def _tick(self) -> bool:
        return self._refresh_all()

    def _prune(self) -> None:
        if self.state_path is None:
            return
        now = self._clock.now()
        self._tokens = {k: v for k, v in self._tokens.items()
                        if _parse_time(v["expiresAt"]) + timedelta(days=1) > now}
