"""What every part of the Plaid emulator shares: the catalog of errors, products and rate limits, `PlaidApiError`,
request validation helpers, and `PlaidBase`, the emulator's state and request dispatch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from finance.sandbox.common import Clock, EmulatorBase, Fault, Faults

API_VERSION = "2020-09-14"
DEFAULT_DAYS_REQUESTED = 90
RATE_LIMITS: dict[str, tuple[int | None, int | None, str]] = {
    "/accounts/get": (15, 15_000, "ACCOUNTS_LIMIT"),
    "/accounts/balance/get": (5, 1_200, "ACCOUNTS_BALANCE_GET_LIMIT"),
    "/item/get": (15, 5_000, "ITEM_GET_LIMIT"),
    "/item/remove": (30, 2_000, "RATE_LIMIT"),
    "/transactions/sync": (50, 2_500, "TRANSACTIONS_SYNC_LIMIT"),
    "/institutions/get_by_id": (None, 400, "INSTITUTIONS_GET_BY_ID_LIMIT"),
    "/investments/transactions/get": (30, 20_000, "RATE_LIMIT"),
    "/liabilities/get": (15, 1_000, "RATE_LIMIT"),
}
"""Requests per minute (per item, per client) and the error code past them (reference/plaid.md §6.3, Production)."""
_ACCESS_TOKEN = re.compile(r"access-sandbox-[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PRODUCTS = frozenset({
    "assets", "auth", "balance", "balance_plus", "beacon", "identity", "identity_match", "investments",
    "investments_auth", "liabilities", "payment_initiation", "identity_verification", "transactions", "credit_details",
    "income", "income_verification", "standing_orders", "transfer", "employment", "recurring_transactions",
    "transactions_refresh", "signal", "statements", "processor_payments", "processor_identity", "profile",
    "cra_base_report", "cra_income_insights", "cra_partner_insights", "cra_network_insights", "cra_cashflow_insights",
    "cra_monitoring", "cra_lend_score", "cra_plaid_credit_score", "layer", "pay_by_bank", "protect_linked_bank",
    "protect_transactions",
})
COUNTRY_CODES = frozenset({"US", "GB", "ES", "NL", "FR", "IE", "CA", "DE", "IT", "PL", "DK", "NO", "SE", "EE", "LT",
                           "LV", "PT", "BE", "AT", "FI"})
_RATE_LIMITED = "rate limit exceeded for attempts to access this item. please try again later"
_INSTITUTION_SILENT = "this institution is not currently responding to this request. please try again soon"
ERRORS: dict[str, tuple[str, int, str, str | None]] = {
    "INVALID_API_KEYS": ("INVALID_INPUT", 400, "invalid client_id or secret provided", None),
    "INVALID_ACCESS_TOKEN": ("INVALID_INPUT", 400, "could not find matching access token", None),
    "INVALID_PUBLIC_TOKEN": ("INVALID_INPUT", 400, "could not find matching public token", None),
    "INVALID_LINK_TOKEN": ("INVALID_INPUT", 400, "could not find matching link token",
                           "Something went wrong. Please try again."),
    "INVALID_INSTITUTION": ("INVALID_INPUT", 400, "invalid institution_id provided", None),
    "INVALID_ACCOUNT_ID": ("INVALID_INPUT", 400, "one or more of the account IDs is invalid", None),
    "INVALID_PRODUCT": ("INVALID_INPUT", 400, "one or more of the products is not valid for this endpoint", None),
    "INVALID_WEBHOOK_VERIFICATION_KEY_ID": (
        "INVALID_INPUT", 400, "invalid key_id provided. note that key_ids are specific to Plaid environments, and "
        "verification requests must be made to the same environment that the webhook was sent from", None),
    "INVALID_BODY": ("INVALID_REQUEST", 400, "body could not be parsed as JSON", None),
    "INVALID_FIELD": ("INVALID_REQUEST", 400, "one or more of the request fields is invalid", None),
    "MISSING_FIELDS": ("INVALID_REQUEST", 400, "the following required fields are missing", None),
    "UNKNOWN_FIELDS": ("INVALID_REQUEST", 400, "the following fields are not recognized by this endpoint", None),
    "NOT_FOUND": ("INVALID_REQUEST", 404, "not found", None),
    "ITEM_NOT_FOUND": ("ITEM_ERROR", 400, "the Item you requested cannot be found. This Item does not exist, has been "
                       "previously removed via /item/remove, or has had access removed by the user", None),
    "ITEM_LOGIN_REQUIRED": (
        "ITEM_ERROR", 400, "the login details of this item have changed (credentials, MFA, or required user action) "
        "and a user login is required to update this information. use Link's update mode to restore the item to a "
        "good state", None),
    "INVALID_CREDENTIALS": ("ITEM_ERROR", 400, "the provided credentials were not correct",
                            "The provided credentials were not correct. Please try again."),
    "INVALID_MFA": ("ITEM_ERROR", 400, "the provided MFA response(s) were not correct",
                    "The provided MFA responses were not correct. Please try again."),
    "ITEM_LOCKED": ("ITEM_ERROR", 400, "the account is locked. prompt the user to visit the institution's site and "
                    "unlock their account", "The given account has been locked by the financial institution. "
                    "Please visit your financial institution's website to unlock your account."),
    "ITEM_NOT_SUPPORTED": ("ITEM_ERROR", 400, "this account is currently not supported",
                           "The given account is not currently supported for this financial institution."),
    "MFA_NOT_SUPPORTED": ("ITEM_ERROR", 400, "this account requires a MFA type that we do not currently support",
                          "The multi-factor security features enabled on this account are not currently supported."),
    "NO_ACCOUNTS": ("ITEM_ERROR", 400, "no valid accounts were found for this item",
                    "No valid accounts were found at the financial institution."),
    "USER_SETUP_REQUIRED": ("ITEM_ERROR", 400, "the account has not been fully set up. prompt the user to visit the "
                            "issuing institution's site and finish the setup process",
                            "The given account requires additional setup with the financial institution."),
    "USER_INPUT_TIMEOUT": ("ITEM_ERROR", 400, "user must retry this operation",
                           "The application timed out waiting for user input."),
    "USER_PERMISSION_REVOKED": ("ITEM_ERROR", 400, "the holder of this account has revoked their permission for your "
                                "application to access it", None),
    "PRODUCT_NOT_READY": ("ITEM_ERROR", 400, "the requested product is not yet ready. please provide a webhook or try "
                          "the request again later", None),
    "NO_INVESTMENT_ACCOUNTS": ("ITEM_ERROR", 400, "There are no valid investment account(s) associated with this "
                               "Item. Please have the user link investment accounts and try again", None),
    "NO_LIABILITY_ACCOUNTS": ("ITEM_ERROR", 400, "the Item has no accounts that Liabilities supports: credit cards, "
                              "student loans, mortgages and other loans", None),
    "PRODUCTS_NOT_SUPPORTED": ("ITEM_ERROR", 400, "the institution does not support one or more of the requested "
                               "products", None),
    "INSTITUTION_DOWN": ("INSTITUTION_ERROR", 400, _INSTITUTION_SILENT, "This financial institution is not currently "
                         "responding to requests. We apologize for the inconvenience."),
    "INSTITUTION_NOT_RESPONDING": ("INSTITUTION_ERROR", 400, _INSTITUTION_SILENT, "This financial institution is not "
                                   "currently responding to requests. We apologize for the inconvenience."),
    "INSTITUTION_NO_LONGER_SUPPORTED": ("INSTITUTION_ERROR", 400, "this institution is no longer supported",
                                        "This financial institution is no longer supported."),
    "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION": (
        "TRANSACTIONS_ERROR", 400, "Underlying transaction data changed since last page was fetched. Please restart "
        "pagination from last update.", None),
    "INTERNAL_SERVER_ERROR": ("API_ERROR", 500, "an unexpected error occurred", None),
    "PLANNED_MAINTENANCE": ("API_ERROR", 503, "the Plaid API is temporarily unavailable due to planned maintenance. "
                            "visit https://status.plaid.com/ for more information", None),
    "SANDBOX_PRODUCT_NOT_ENABLED": ("SANDBOX_ERROR", 400, "the requested product is not enabled for this Item", None),
    "SANDBOX_WEBHOOK_INVALID": ("SANDBOX_ERROR", 400, "the Item has no valid webhook; set one with "
                                "/item/webhook/update", None),
    "RATE_LIMIT": ("RATE_LIMIT_EXCEEDED", 429, _RATE_LIMITED, None),
    **{code: ("RATE_LIMIT_EXCEEDED", 429, _RATE_LIMITED, None)
       for _, _, code in RATE_LIMITS.values()},
}
"""error_code → (error_type, HTTP status, error_message, display_message)."""
_DOC_PAGES = {"INVALID_INPUT": "invalid-input", "INVALID_REQUEST": "invalid-request", "ITEM_ERROR": "item",
              "INSTITUTION_ERROR": "institution", "RATE_LIMIT_EXCEEDED": "rate-limit-exceeded", "API_ERROR": "api",
              "TRANSACTIONS_ERROR": "transactions", "SANDBOX_ERROR": "sandbox"}
_FAULT_CODES = {"server_error": "INTERNAL_SERVER_ERROR", "unavailable": "PLANNED_MAINTENANCE",
                "institution_down": "INSTITUTION_DOWN", "institution_not_responding": "INSTITUTION_NOT_RESPONDING",
                "product_not_ready": "PRODUCT_NOT_READY"}


class PlaidApiError(Exception):
    """A Plaid error: raised anywhere while handling a request (or by `complete_link`), rendered as a PlaidError."""

    def __init__(self, code: str, message: str | None = None) -> None:
        error_type, status, default, display = ERRORS[code]
        super().__init__(message or default)
        self.code = code
        self.error_type = error_type
        self.status = status
        self.message = message or default
        self.display_message = display

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The PlaidError object: a response body has a `request_id`; a nested one (webhooks, item.error) none."""
        body: dict[str, Any] = {
            "error_type": self.error_type, "error_code": self.code, "error_code_reason": None,
            "error_message": self.message, "display_message": self.display_message, "causes": [],
            "status": self.status,
            "documentation_url": f"https://plaid.com/docs/errors/{_DOC_PAGES[self.error_type]}/#{self.code.lower()}",
            "suggested_action": None,
        }
        if request_id is not None:
            body["request_id"] = request_id
        return body


def _invalid(message: str) -> PlaidApiError:
    return PlaidApiError("INVALID_FIELD", message)


def _json_response(status: int, body: object, headers: dict[str, str]) -> httpx.Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return httpx.Response(status, content=content,
                          headers={"Content-Type": "application/json; charset=utf-8", **headers})


def plaid_id(*parts: object) -> str:
    """A 37-character base62 id that depends only on `parts` (Plaid's item, account and transaction ids look so)."""
    number = int.from_bytes(hashlib.sha256("/".join(str(p) for p in parts).encode()).digest(), "big")
    digits = []
    for _ in range(37):
        number, rest = divmod(number, 62)
        digits.append(_BASE62[rest])
    return "".join(digits)


def _request_id() -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(15))


def _wire_time(moment: datetime) -> str:
    """`2024-05-03T14:02:11Z`: the UTC, whole-second form Plaid uses."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _money(value: float) -> float:
    return round(value, 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def _string(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise PlaidApiError("MISSING_FIELDS", f"the following required fields are missing: {key}")
        return None
    if not isinstance(value, str):
        raise _invalid(f"{key} must be a string")
    return value


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise _invalid(f"{key} must be an object")
    return value


def _strings(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"{key} must be an array of strings")
    return value


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{key} must be an integer between {low} and {high}")
    return value


def _iso_date(value: object, key: str) -> date:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _invalid(f"{key} must be a date in YYYY-MM-DD format")


def _country_codes(body: dict[str, Any]) -> list[str]:
    codes = _strings(body, "country_codes")
    if not codes:
        raise PlaidApiError("MISSING_FIELDS", "the following required fields are missing: country_codes")
    if any(code not in COUNTRY_CODES for code in codes):
        raise _invalid("country_codes contains an unsupported country code")
    return codes


def _products(values: list[str], key: str) -> list[str]:
    unknown = [p for p in values if p not in PRODUCTS]
    if unknown:
        raise _invalid(f"{key} contains unknown products: {', '.join(unknown)}")
    if "balance" in values:
        raise PlaidApiError("INVALID_PRODUCT", f"balance is not a valid product for {key}; call /accounts/balance/get "
                                               "on an Item initialized with another product")
    return list(dict.fromkeys(values))


@dataclass(frozen=True, slots=True)
class _Call:
    """One request as the route handlers see it."""

    path: str
    body: dict[str, Any]
    now: datetime


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Callable[[_Call], dict[str, Any]]
    fields: frozenset[str]
    required: tuple[str, ...]


class PlaidBase(EmulatorBase):
    """The emulator's state and request handling; the resource mixins (items, link, accounts, …) add the endpoints.

    `handle` answers one request: faults, authentication, rate limits, field checks, then the route's handler. The
    composed `PlaidEmulator` supplies the route table (`_routes`) and `_settle` (what falls due as the clock moves).
    """

    _clock: Clock
    faults: Faults
    seed: int
    request_log: list[tuple[str, str]]
    _client_id: str | None
    _secret: str | None
    _lock: threading.RLock
    _items: dict[str, dict[str, Any]]
    _removed: dict[str, dict[str, str]]
    _link_tokens: dict[str, dict[str, Any]]
    _public_tokens: dict[str, dict[str, Any]]
    _counters: dict[str, int]
    _windows: dict[tuple[str, str], tuple[int, int]]
    _mutation_pending: bool
    default_webhook: str | None
    _signing_key: ec.EllipticCurvePrivateKey
    _jwk: dict[str, Any]
    _routes: dict[str, _Route]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request exactly as sandbox.plaid.com would."""
        method = request.method.upper()
        path = request.url.path.rstrip("/") or "/"
        with self._lock:
            self._log_request(request)
            fault = self.faults.take(method, path)
            request_id = _request_id()
            headers = {"Plaid-Version": request.headers.get("Plaid-Version") or API_VERSION}
            if fault is not None and fault.kind == "mutation_during_pagination":
                self._mutation_pending = True
            elif fault is not None and fault.kind != "malformed_json":
                error = self._fault_error(fault, request, path)
                return _json_response(error.status, error.body(request_id), headers)
            try:
                self._reload_if_changed()
                now = self._clock.now()
                if self._settle(now):
                    self._save()
                status, body = 200, self._dispatch(request, method, path, now)
                body["request_id"] = request_id
            except PlaidApiError as error:
                status, body = error.status, error.body(request_id)
            response = _json_response(status, body, headers)
            if fault is not None and fault.kind == "malformed_json":
                return httpx.Response(200, content=response.content[: len(response.content) // 2],
                                      headers=response.headers)
            return response

    @staticmethod
    def _fault_error(fault: Fault, request: httpx.Request, path: str) -> PlaidApiError:
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("Emulated Plaid timeout", request=request)
        if fault.kind == "rate_limit":
            return PlaidApiError(RATE_LIMITS.get(path, (None, None, "RATE_LIMIT"))[2])
        if fault.kind in _FAULT_CODES:
            return PlaidApiError(_FAULT_CODES[fault.kind])
        raise ValueError(f"Unknown fault kind {fault.kind!r} for the Plaid emulator")

    def _dispatch(self, request: httpx.Request, method: str, path: str, now: datetime) -> dict[str, Any]:
        route = self._routes.get(path) if method == "POST" else None
        if route is None:
            raise PlaidApiError("NOT_FOUND", f"{method} {path} not found")
        try:
            body = json.loads(request.content or b"")
        except ValueError as exc:
            raise PlaidApiError("INVALID_BODY") from exc
        if not isinstance(body, dict):
            raise PlaidApiError("INVALID_BODY", "body must be a JSON object")
        self._authenticate(request, body)
        limits = RATE_LIMITS.get(path)
        if limits is not None and limits[1] is not None:
            self._count(path, "client", limits[1], limits[2], now)
        unknown = sorted(set(body) - route.fields)
        if unknown:
            raise PlaidApiError("UNKNOWN_FIELDS", "the following fields are not recognized by this endpoint: "
                                + ", ".join(unknown))
        missing = [key for key in route.required if body.get(key) in (None, "")]
        if missing:
            raise PlaidApiError("MISSING_FIELDS", "the following required fields are missing: " + ", ".join(missing))
        return route.handler(_Call(path, body, now))

    def _authenticate(self, request: httpx.Request, body: dict[str, Any]) -> None:
        client_id = request.headers.get("PLAID-CLIENT-ID") or body.get("client_id")
        secret = request.headers.get("PLAID-SECRET") or body.get("secret")
        valid = isinstance(client_id, str) and isinstance(secret, str) and bool(client_id) and bool(secret)
        if valid and self._client_id is not None:
            valid = hmac.compare_digest(str(client_id).encode(), self._client_id.encode()) and hmac.compare_digest(
                str(secret).encode(), (self._secret or "").encode())
        if not valid:
            raise PlaidApiError("INVALID_API_KEYS")

    def _count(self, path: str, scope: str, limit: int, code: str, now: datetime) -> None:
        """Count a request in its per-minute window (emulator clock); RATE_LIMIT_EXCEEDED past `limit`."""
        window = int(now.timestamp() // 60)
        start, count = self._windows.get((path, scope), (window, 0))
        count = count + 1 if start == window else 1
        self._windows[(path, scope)] = (window, count)
        if len(self._windows) > 4096:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        if count > limit:
            raise PlaidApiError(code)

    def _item_for(self, call: _Call, *, healthy: bool = False) -> dict[str, Any]:
        """The item of the request's access_token (counted against the path's per-item limit); `healthy`: 400
        ITEM_LOGIN_REQUIRED while the item needs a login."""
        token = call.body.get("access_token")
        if not isinstance(token, str) or not _ACCESS_TOKEN.fullmatch(token):
            raise PlaidApiError("INVALID_ACCESS_TOKEN", "provided access token is in an invalid format. expected "
                                                        "format: access-<environment>-<identifier>")
        if token in self._removed:
            raise PlaidApiError("ITEM_NOT_FOUND")
        item = next((i for i in self._items.values() if i["access_token"] == token), None)
        if item is None:
            raise PlaidApiError("INVALID_ACCESS_TOKEN")
        limits = RATE_LIMITS.get(call.path)
        if limits is not None and limits[0] is not None:
            self._count(call.path, item["item_id"], limits[0], limits[2], call.now)
        error = self._item_error(item)
        if healthy and error is not None:
            raise PlaidApiError(error)
        return item

    @staticmethod
    def _item_error(item: dict[str, Any]) -> str | None:
        """The error code an item is stuck in (ITEM_LOGIN_REQUIRED), or None when healthy."""
        if item["frozen"] and item["frozen"][-1][1] is None:
            return str(item["frozen"][-1][2])
        return None

    def _state_from_dict(self, state: dict[str, Any]) -> None:
        self._items = state.get("items", {})
        self._removed = state.get("removedItems", {})
        self._link_tokens = state.get("linkTokens", {})
        self._public_tokens = state.get("publicTokens", {})
        self._counters = {"item": 0, "link": 0, "public": 0, **state.get("counters", {})}

    def _state_to_dict(self) -> dict[str, Any]:
        return {"items": self._items, "removedItems": self._removed, "linkTokens": self._link_tokens,
                "publicTokens": self._public_tokens, "counters": self._counters}

    def _prune(self) -> None:
        horizon = self._clock.now() - timedelta(days=1)
        self._public_tokens = {k: v for k, v in self._public_tokens.items() if _parse(v["expires_at"]) > horizon}
        self._link_tokens = {k: v for k, v in self._link_tokens.items() if _parse(v["expires_at"]) > horizon}
