"""Offline emulator of the Pluggy API (https://api.pluggy.ai), plugged into httpx as a transport or served on loopback.

It follows reference/pluggy.md: the same paths, query parameters, bodies, status codes, headers and error bodies, with
the sandbox connector "Pluggy Bank" (id 0) and its usernames driving each scenario. Data comes from the deterministic
ledger in `finance.sandbox.ledger`; what a client sees is a snapshot taken at the item's last successful sync:

- a sync (POST /items, PATCH /items/{id}, MFA) records the emulator-clock time it started; healthy items also sync
  automatically every `AUTO_SYNC_EVERY` (24 h) of emulator time unless auto-sync was disabled;
- rows that appeared at the institution by a sync are visible after it, with `createdAt` = the first sync that saw
  them (that is what Pluggy's createdAt means), so `createdAtFrom` high-water marks work;
- card purchases are PENDING for 2–4 days, some debit-card rows on checking for one; at the first sync after they
  post, the pending row disappears and a POSTED row with a new id (and for restaurants a tip) replaces it.

Faults (`emulator.faults.add(kind, path=..., method=..., after=..., times=...)`): "rate_limit" (429 with RateLimit-*
and Retry-After), "server_error" (500), "unavailable" (503), "timeout" (httpx.ReadTimeout), "malformed_json" (200 with a
truncated body, after the request was handled) and "expired_key" (the bare 403 of an expired API key). Testers' hooks:
`advance`, `set_item_status`, `set_connector_status`, `list_items`, `request_log`.

Webhooks: application webhooks (`POST/GET/PATCH/DELETE /webhooks`, with custom headers sent on each delivery) and an
item's `webhookUrl` receive the item's events — `item/created|updated|error|deleted|waiting_user_input|
waiting_user_action|login_succeeded` as its status changes, `transactions/created|updated|deleted` when a sync
changes its data, `connector/status_updated` — queued in the state file and delivered by `deliver_webhooks()` over
loopback with Pluggy's retry schedule (3 attempts, 3 more an hour later, 3 more two hours after that; a 401 is not
retried). Unlike Pluggy, plain-http loopback URLs are accepted, so the whole loop runs offline.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import ipaddress
import json
import math
import re
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from finance.sandbox.common import LOOPBACK_HOSTS, Clock, EmulatorBase, Fault, Faults
from finance.sandbox.ledger import (
    CARD_LAST4,
    HOLDER,
    PLUGGY_CATEGORIES,
    SAO_PAULO,
    Ledger,
    add_months,
    bill_total,
    brazilian_ledger,
    category_parent,
    close_date_for,
    due_date_for,
    iso_z,
    pluggy_transaction,
    stable_uuid,
)

V2_PAGE_SIZE = 500
"""Rows per /v2/transactions page (tests monkeypatch it small)."""
V1_DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
MAX_IDS = 500
API_KEY_TTL = timedelta(hours=2)
CONNECT_TOKEN_TTL = timedelta(minutes=30)
MFA_TTL = timedelta(minutes=5)
AUTO_SYNC_EVERY = timedelta(hours=24)
CONSENT_TTL = timedelta(days=365)
CREDIT_LIMIT = 12000.0
SANDBOX_PASSWORD = "password-ok"
RATE_LIMITS: dict[str, int] = {"auth": 360, "accounts": 360, "transactions": 360, "item_update": 20}
MAX_WEBHOOKS_PER_EVENT = 5
WEBHOOK_EVENTS = frozenset({
    "all", "item/all", "item/created", "item/updated", "item/error", "item/deleted", "item/waiting_user_input",
    "item/waiting_user_action", "item/login_succeeded", "connector/status_updated", "transactions/created",
    "transactions/updated", "transactions/deleted", "payment_intent/created", "payment_intent/completed",
    "payment_intent/waiting_payer_authorization", "payment_intent/error", "scheduled_payment/created",
    "scheduled_payment/completed", "scheduled_payment/error", "scheduled_payment/canceled",
    "scheduled_payment/all_completed", "scheduled_payment/all_created", "automatic_pix_payment/created",
    "automatic_pix_payment/completed", "automatic_pix_payment/error", "automatic_pix_payment/canceled",
    "payment_request/updated", "boleto/updated", "smart_transfer_preauthorization/completed",
    "smart_transfer_preauthorization/error", "smart_transfer_payment/completed", "smart_transfer_payment/error",
})
"""Event types a webhook may subscribe to (reference/pluggy.md §6.2)."""
"""Requests per minute per endpoint group (reference/pluggy.md §7.2); /v2/transactions shares the transactions one."""

_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_CURSOR_PREFIX = "v1~"
"""Cursors are base64 of "v1~<date ISO>|<transaction id>" (plain "<date ISO>|<id>" is accepted too). The prefix
puts a '+' in every cursor (base64 of plain ASCII dates and ids never has one), so clients' URL encoding is tested."""
_EXPIRED = {"code": 403, "message": "Missing or invalid authorization token"}
_TOO_MANY = {"message": "Too many requests. Please try again later (see Retry-After header in seconds)", "code": 429}


# --------------------------------------------------------------------------------------------------------------------
# Connectors and sandbox scenarios
# --------------------------------------------------------------------------------------------------------------------

def _credential(name: str, label: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "type": kind, "placeholder": extra.pop("placeholder", ""),
            "validation": extra.pop("validation", None), "validationMessage": extra.pop("validationMessage", None),
            "optional": False, "mfa": False, **extra}


def _connector(connector_id: int, name: str, url: str, color: str, *, sandbox: bool, open_finance: bool,
               credentials: list[dict[str, Any]], products: list[str], icon: str) -> dict[str, Any]:
    return {
        "id": connector_id, "name": name, "institutionUrl": url,
        "imageUrl": f"https://cdn.pluggy.ai/assets/connector-icons/{icon}.svg", "primaryColor": color,
        "type": "PERSONAL_BANK", "country": "BR", "credentials": credentials, "hasMFA": False,
        "oauth": open_finance, "oauthUrl": None, "resetPasswordUrl": None,
        "health": {"status": "ONLINE", "stage": None, "incidents": []}, "products": products, "isSandbox": sandbox,
        "isOpenFinance": open_finance, "supportsPaymentInitiation": open_finance,
        "supportsScheduledPayments": open_finance, "supportsSmartTransfers": False,
        "supportsBoletoManagement": False, "supportsAutomaticPix": open_finance,
        "createdAt": "2020-09-07T00:08:06.588Z", "updatedAt": "2025-01-10T12:00:00.000Z",
    }


SANDBOX_CONNECTOR_ID = 0
_CPF = _credential("cpf", "CPF", "number", validation=r"^\d{3}\.?\d{3}\.?\d{3}-?\d{2}$",
                   validationMessage="CPF deve ter 11 números.", placeholder="000.000.000-00")
CONNECTORS: tuple[dict[str, Any], ...] = (
    _connector(SANDBOX_CONNECTOR_ID, "Pluggy Bank", "https://pluggy.ai", "ef294b", sandbox=True, open_finance=False,
               credentials=[_credential("user", "User", "text", placeholder="user-ok"),
                            _credential("password", "Password", "password", placeholder="password-ok")],
               products=["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS"], icon="sandbox"),
    _connector(200, "MeuPluggy", "https://meu.pluggy.ai", "ef294b", sandbox=False, open_finance=True,
               credentials=[], products=["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "INVESTMENTS"], icon="sandbox"),
    _connector(601, "Itaú", "https://www.itau.com.br", "EC7000", sandbox=False, open_finance=True,
               credentials=[_CPF], products=["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "IDENTITY", "LOANS"],
               icon="201"),
    _connector(612, "Nubank", "https://nubank.com.br", "820AD1", sandbox=False, open_finance=True,
               credentials=[_CPF], products=["ACCOUNTS", "CREDIT_CARDS", "TRANSACTIONS", "IDENTITY"], icon="212"),
)
"""The connector catalog: the sandbox "Pluggy Bank" plus real banks that can only be listed offline."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """What a sandbox username makes every sync do."""

    status: str = "UPDATED"
    execution_status: str = "SUCCESS"
    error_code: str | None = None
    checking_accounts: int = 1
    card: bool = True
    mfa: bool = False
    failed_product: str | None = None


def _failure(status: str, code: str) -> Scenario:
    return Scenario(status=status, execution_status=code, error_code=code)


SCENARIOS: dict[str, Scenario] = {
    "user-ok": Scenario(),
    "user-ok-mfa": Scenario(mfa=True),
    "user-mfa": Scenario(mfa=True),
    "user-ok-two-checking-accounts": Scenario(checking_accounts=2),
    "user-ok-account-error": Scenario(execution_status="PARTIAL_SUCCESS", card=False, failed_product="creditCards"),
    "user-error": _failure("OUTDATED", "UNEXPECTED_ERROR"),
    "user-unavailable": _failure("OUTDATED", "SITE_NOT_AVAILABLE"),
    "user-logged": _failure("OUTDATED", "ALREADY_LOGGED_IN"),
    "user-connection-error": _failure("OUTDATED", "CONNECTION_ERROR"),
    "user-locked": _failure("LOGIN_ERROR", "ACCOUNT_LOCKED"),
    "user-account-need-actions": _failure("LOGIN_ERROR", "ACCOUNT_NEEDS_ACTION"),
    "user-account-credentials-reset": _failure("LOGIN_ERROR", "ACCOUNT_CREDENTIALS_RESET"),
    "user-not-supported": _failure("LOGIN_ERROR", "USER_NOT_SUPPORTED"),
}
"""Sandbox usernames (password `password-ok`); any other username or password gives INVALID_CREDENTIALS."""
INVALID_CREDENTIALS = _failure("LOGIN_ERROR", "INVALID_CREDENTIALS")

ERROR_MESSAGES: dict[str, str] = {
    "INVALID_CREDENTIALS": "Invalid credentials.",
    "INVALID_CREDENTIALS_MFA": "Invalid MFA token.",
    "ACCOUNT_LOCKED": "The account is locked at the institution; unlock it there before reconnecting.",
    "ALREADY_LOGGED_IN": "Another session is open at the institution; log out of it and try again.",
    "SITE_NOT_AVAILABLE": "The institution's site is not available right now; try again later.",
    "UNEXPECTED_ERROR": "An unexpected error happened while collecting data from the institution.",
    "CONNECTION_ERROR": "Could not connect to the institution.",
    "ACCOUNT_NEEDS_ACTION": "The institution needs an action from the account holder before connecting.",
    "ACCOUNT_CREDENTIALS_RESET": "The credentials were reset at the institution; create new ones and reconnect.",
    "USER_NOT_SUPPORTED": "This kind of account is not supported by the institution.",
    "USER_INPUT_TIMEOUT": "The MFA token was not sent in time.",
    "USER_AUTHORIZATION_PENDING": "Waiting for the account holder to authorize the access.",
    "USER_AUTHORIZATION_NOT_GRANTED": "The account holder did not grant (or revoked) the authorization.",
}
"""The `error.message` of an item for each error code."""

ITEM_STATUSES = frozenset(
    {"UPDATED", "UPDATING", "WAITING_USER_INPUT", "WAITING_USER_ACTION", "MERGING", "LOGIN_ERROR", "OUTDATED"})


# --------------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------------

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


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _digits(text: str, count: int) -> str:
    return f"{uuid.uuid5(uuid.NAMESPACE_OID, text).int % 10**count:0{count}d}"


def _fold(text: str) -> str:
    """Lower case without accents, for "name alike" connector search."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


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


@dataclass(slots=True)
class _AccountView:
    """One account of an item as of the item's last sync: wire rows sorted by (date, id) and their total."""

    account_id: str
    index: int
    kind: str
    rows: list[dict[str, Any]]
    total: float
    opening: float


# --------------------------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------------------------

class PluggyEmulator(EmulatorBase):
    """The whole Pluggy API in-process: `handle` is the API, `transport()`/`serve()` plug it in.

    seed: drives every generated id and ledger. state_path: a JSON file that keeps items, connect tokens, the clock and
    category edits across processes (reloaded whenever another process rewrites it). client_id/client_secret: when
    set, POST /auth requires exactly these. card_sign: "purchase_positive" (default, as Pluggy sends card purchases)
    or "purchase_negative". mfa_code: the token `user-ok-mfa` must send. settle_delay: real seconds a sync takes
    (0: the first read after a sync already sees its outcome).
    """

    WEBHOOK_RETRY_DELAYS = (0.0, 0.0, 3600.0, 0.0, 0.0, 7200.0, 0.0, 0.0)
    WEBHOOK_FINAL_STATUSES = frozenset({401})

    def __init__(self, *, clock: Clock | None = None, seed: int = 7, state_path: Path | None = None,
                 client_id: str | None = None, client_secret: str | None = None,
                 card_sign: str = "purchase_positive", mfa_code: str = "123456",
                 settle_delay: float = 0.0, webhook_url: str | None = None,
                 webhook_headers: dict[str, str] | None = None) -> None:
        if card_sign not in ("purchase_positive", "purchase_negative"):
            raise ValueError("card_sign must be 'purchase_positive' or 'purchase_negative'")
        self._clock = clock or Clock()
        self.faults = Faults()
        self.seed = seed
        self.state_path = Path(state_path) if state_path is not None else None
        self.card_sign = card_sign
        self.mfa_code = mfa_code
        self.settle_delay = settle_delay
        self.request_log: list[tuple[str, str]] = []
        self._client_id = client_id
        self._client_secret = client_secret
        self._secret = hashlib.sha256(f"pluggy-emulator/{seed}/{client_id}/{client_secret}".encode()).digest()
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._patches: dict[str, dict[str, str]] = {}
        self._item_counter = 0
        self._patch_version = 0
        self._sync_started: dict[str, float] = {}
        self._windows: dict[str, tuple[int, int]] = {}
        self._views: OrderedDict[tuple[object, ...], list[_AccountView]] = OrderedDict()
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._init_webhooks()
        self._routes = self._build_routes()
        self._open_state()
        if webhook_url:  # like an application webhook set up beforehand (sandbox serve --webhook-url)
            self._preset_webhook(webhook_url, webhook_headers or {})

    # -- testers' hooks ----------------------------------------------------------------------------------------------

    def advance(self, *, days: float = 0, hours: float = 0) -> None:
        """Move the emulator clock forward (auto-syncs and MFA timeouts that fall due happen) and persist it."""
        with self._lock:
            self._reload_if_changed()
            self._clock.advance(days=days, hours=hours)
            self._refresh_all()
            self._save()

    def list_items(self) -> list[dict[str, Any]]:
        """Every item, as GET /items/{id} would return it (the real API has no list endpoint)."""
        with self._lock:
            self._reload_if_changed()
            if self._refresh_all():
                self._save()
            return [self._item_json(item) for item in self._items.values()]

    def set_item_status(self, item_id: str, status: str, execution_status: str,
                        error_code: str | None = None) -> dict[str, Any]:
        """Push an item into a state, e.g. LOGIN_ERROR to emulate a revoked or expired consent.

        UPDATED counts as a successful sync now; any other status stops auto-sync until a PATCH succeeds.
        """
        if status not in ITEM_STATUSES:
            raise ValueError(f"Unknown item status {status!r}")
        with self._lock:
            self._reload_if_changed()
            self._refresh_all()
            item = self._items.get(item_id)
            if item is None:
                raise KeyError(item_id)
            now = self._clock.now()
            self._sync_started.pop((item.get("running") or {}).get("id", ""), None)
            item.update(status=status, executionStatus=execution_status, running=None, parameter=None,
                        statusDetail=None, updatedAt=iso_z(now),
                        error={"code": error_code, "message": ERROR_MESSAGES.get(error_code, error_code)}
                        if error_code else None)
            before = self._views_of(item) if self._targets(item, "item/updated") else None
            if status == "UPDATED":
                scenario = SCENARIOS.get(item["user"], Scenario())
                item["layout"] = item.get("layout") or {"checking": scenario.checking_accounts, "card": scenario.card}
                item["syncs"].append(iso_z(now))
                item["lastUpdatedAt"] = iso_z(now)
                self._emit("item/updated", item, triggeredBy="INTERNAL")
                if before is not None:
                    self._emit_data_events(item, before)
            else:
                self._emit_status(item, "INTERNAL")
            self._save()
            return self._item_json(item)

    def set_connector_status(self, connector_id: int, status: str) -> None:
        """Announce a connector's health (ONLINE, UNSTABLE, OFFLINE) to the webhooks: connector/status_updated."""
        if status not in ("ONLINE", "UNSTABLE", "OFFLINE"):
            raise ValueError("status must be ONLINE, UNSTABLE or OFFLINE")
        connector = self._find_connector(connector_id)
        with self._lock:
            self._reload_if_changed()
            self._emit("connector/status_updated", None, id=str(connector["id"]), connectorId=connector["id"],
                       data={"status": status})
            self._save()

    # -- the API -----------------------------------------------------------------------------------------------------

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
            limit = RATE_LIMITS.get(self._limit_group(method, path) or "", 360)
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

    @staticmethod
    def _limit_group(method: str, path: str) -> str | None:
        if method == "POST" and path == "/auth":
            return "auth"
        if method == "GET" and (path == "/accounts" or path.startswith("/accounts/")):
            return "accounts"
        if method == "GET" and (path in ("/transactions", "/v2/transactions") or path.startswith("/transactions/")):
            return "transactions"
        if method == "PATCH" and re.fullmatch(r"/items/[^/]+", path):
            return "item_update"
        return None

    def _count_request(self, method: str, path: str) -> dict[str, str]:
        """Count a request in its group's per-minute window: the RateLimit-* headers to send, or a 429 if over."""
        group = self._limit_group(method, path)
        if group is None:
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

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Callable[[_Call], tuple[int, Any]], str]]:
        table: list[tuple[str, str, Callable[[_Call], tuple[int, Any]], str]] = [
            ("POST", r"/auth", self._auth, "none"),
            ("POST", r"/connect_token", self._connect_token, "api"),
            ("GET", r"/connectors", self._list_connectors, "connect"),
            ("GET", r"/connectors/(?P<id>[^/]+)", self._get_connector, "connect"),
            ("POST", r"/connectors/(?P<id>[^/]+)/validate", self._validate, "connect"),
            ("POST", r"/items", self._create_item, "connect"),
            ("GET", r"/items/(?P<id>[^/]+)", self._get_item, "connect"),
            ("PATCH", r"/items/(?P<id>[^/]+)", self._update_item, "connect"),
            ("DELETE", r"/items/(?P<id>[^/]+)", self._delete_item, "api"),
            ("POST", r"/items/(?P<id>[^/]+)/mfa", self._send_mfa, "connect"),
            ("PATCH", r"/items/(?P<id>[^/]+)/disable-auto-sync", self._disable_auto_sync, "api"),
            ("GET", r"/accounts", self._list_accounts, "connect"),
            ("GET", r"/accounts/(?P<id>[^/]+)", self._get_account, "api"),
            ("GET", r"/v2/transactions", self._transactions_v2, "api"),
            ("GET", r"/transactions", self._transactions_v1, "api"),
            ("GET", r"/transactions/(?P<id>[^/]+)", self._get_transaction, "api"),
            ("PATCH", r"/transactions/(?P<id>[^/]+)", self._update_transaction, "api"),
            ("GET", r"/categories", self._list_categories, "api"),
            ("GET", r"/categories/(?P<id>[^/]+)", self._get_category, "api"),
            ("POST", r"/webhooks", self._create_webhook, "api"),
            ("GET", r"/webhooks", self._list_webhooks, "api"),
            ("GET", r"/webhooks/(?P<id>[^/]+)", self._get_webhook, "api"),
            ("PATCH", r"/webhooks/(?P<id>[^/]+)", self._update_webhook, "api"),
            ("DELETE", r"/webhooks/(?P<id>[^/]+)", self._delete_webhook, "api"),
        ]
        return [(method, re.compile(pattern), handler, auth) for method, pattern, handler, auth in table]

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
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64url(signature)}"

    def _read_token(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64url(expected).encode(), parts[2].encode()):
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

    def _connect_token(self, call: _Call) -> tuple[int, Any]:
        body = call.body()
        item_id = body.get("itemId")
        if item_id is not None and (not isinstance(item_id, str) or item_id not in self._items):
            raise _not_found("ITEM", "item not found")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise _bad_request("options must be an object")
        token_id = uuid.uuid4().hex
        expires = call.now + CONNECT_TOKEN_TTL
        self._tokens[token_id] = {"itemId": item_id, "options": options, "expiresAt": iso_z(expires)}
        self._save()
        payload = {"typ": "connect", "jti": token_id, "iat": int(call.now.timestamp()),
                   "exp": int(expires.timestamp()), **({"itemId": item_id} if item_id else {})}
        return 200, {"accessToken": self._token(payload)}

    # -- connectors --------------------------------------------------------------------------------------------------

    @staticmethod
    def _connector_json(connector: dict[str, Any], health_details: bool) -> dict[str, Any]:
        if not health_details:
            return connector
        details = {"connectionRateLast6Hours": 99.1, "connectionsLast6Hours": 128}
        return {**connector, "health": {**connector["health"], "details": details}}

    @staticmethod
    def _find_connector(raw_id: object) -> dict[str, Any]:
        for connector in CONNECTORS:
            if str(connector["id"]) == str(raw_id):
                return connector
        raise _not_found("CONNECTOR", "connector not found")

    def _list_connectors(self, call: _Call) -> tuple[int, Any]:
        params = call.params
        countries = {c.strip().upper() for v in params.get_list("countries") for c in v.split(",") if c.strip()}
        types = {t.strip().upper() for v in params.get_list("types") for t in v.split(",") if t.strip()}
        name = _fold(params.get("name") or "")
        flags = {key: _truthy(params.get(key)) for key in ("isOpenFinance", "supportsPaymentInitiation",
                                                             "supportsSmartTransfers", "supportsAutomaticPix")
                 if params.get(key) is not None}
        results = [
            self._connector_json(c, _truthy(params.get("healthDetails"))) for c in CONNECTORS
            if (_truthy(params.get("sandbox")) or not c["isSandbox"])
            and (not countries or c["country"] in countries)
            and (not types or c["type"] in types)
            and name in _fold(c["name"])
            and all(c[key] == value for key, value in flags.items())
        ]
        return 200, _page(results)

    def _get_connector(self, call: _Call) -> tuple[int, Any]:
        connector = self._find_connector(call.match["id"])
        return 200, self._connector_json(connector, _truthy(call.params.get("healthDetails")))

    @staticmethod
    def _parameter_errors(connector: dict[str, Any], parameters: dict[str, Any]) -> list[dict[str, Any]]:
        errors = []
        for credential in connector["credentials"]:
            name, value = credential["name"], parameters.get(credential["name"])
            if credential.get("optional") or credential.get("mfa"):
                continue
            if not isinstance(value, str) or not value:
                errors.append({"code": "001", "message": f"{name} parameter is required", "parameter": name})
            elif credential.get("validation") and not re.match(credential["validation"], value):
                errors.append({"code": "002", "message": credential.get("validationMessage") or f"invalid {name}",
                               "parameter": name})
        return errors

    def _validate(self, call: _Call) -> tuple[int, Any]:
        connector = self._find_connector(call.match["id"])
        parameters = call.body()
        return 200, {"parameters": parameters, "errors": self._parameter_errors(connector, parameters)}

    # -- items -------------------------------------------------------------------------------------------------------

    def _item(self, call: _Call) -> dict[str, Any]:
        item = self._items.get(call.match["id"])
        if item is None:
            raise _not_found("ITEM", "item not found")
        self._check_scope(call, item)
        return item

    def _create_item(self, call: _Call) -> tuple[int, Any]:
        body = call.body()
        connector_id = body.get("connectorId")
        if isinstance(connector_id, bool) or not (
                isinstance(connector_id, int) or (isinstance(connector_id, float) and connector_id.is_integer())):
            raise _bad_request("connectorId should not be null or undefined, connectorId must be a number")
        _check_strings(body)
        connector = self._find_connector(int(connector_id))
        if not connector["isSandbox"]:
            raise _bad_request(
                f"The offline Pluggy emulator only connects sandbox connectors (Pluggy Bank, id "
                f"{SANDBOX_CONNECTOR_ID}); {connector['name']} needs the real Pluggy API and credentials.",
                codeDescription="CONNECTOR_NOT_AVAILABLE_OFFLINE")
        parameters = body.get("parameters")
        if not isinstance(parameters, dict):
            raise _bad_request("Connector parameters do not match validation rules",
                               codeDescription="CONNECTOR_VALIDATION_ERROR",
                               details=[{"code": "001", "parameter": "parameters",
                                         "message": "parameters must be an object (encrypted parameters are not "
                                                    "supported offline)"}])
        errors = self._parameter_errors(connector, parameters)
        if errors:
            raise _bad_request("Connector parameters do not match validation rules",
                               codeDescription="CONNECTOR_VALIDATION_ERROR", details=errors)
        options = self._tokens[call.principal.token_id]["options"] if (
            call.principal and call.principal.kind == "connect" and call.principal.token_id) else {}
        if body.get("avoidDuplicates", options.get("avoidDuplicates")):
            duplicates = [i["id"] for i in self._items.values() if i["connectorId"] == connector["id"]
                          and i["user"] == parameters.get("user")]
            if duplicates:
                raise ApiError(400, {"message": "There are other items with the same credentials, you can't create "
                                                "a new one", "codeDescription": "ITEM_USER_ALREADY_EXISTS",
                                     "items": duplicates})
        self._item_counter += 1
        created = iso_z(call.now)
        item_id = stable_uuid(self.seed, "item", self._item_counter, created)
        item: dict[str, Any] = {
            "id": item_id, "connectorId": connector["id"], **_credentials_state(parameters),
            "status": "UPDATING", "executionStatus": "CREATED", "error": None, "statusDetail": None,
            "parameter": None, "webhookUrl": body.get("webhookUrl") or options.get("webhookUrl"),
            "clientUserId": body.get("clientUserId") or options.get("clientUserId"),
            "products": body.get("products") or list(connector["products"]),
            "createdAt": created, "updatedAt": created, "lastUpdatedAt": None,
            "consentExpiresAt": iso_z(call.now + CONSENT_TTL), "autoSync": True, "syncs": [],
            "consecutiveFailedLoginAttempts": 0, "layout": None,
            "connectToken": call.principal.token_id if call.principal else None, "running": None,
        }
        self._items[item_id] = item
        self._start_sync(item, call.now, renews_consent=True)
        self._save()
        return 200, self._item_json(item)

    def _get_item(self, call: _Call) -> tuple[int, Any]:
        return 200, self._item_json(self._item(call))

    def _update_item(self, call: _Call) -> tuple[int, Any]:
        item = self._item(call)
        body = call.body()
        parameters = body.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _bad_request("parameters must be an object (encrypted parameters are not supported offline)")
        _check_strings(body)
        # LOGIN_ERROR means Pluggy will not retry until the credentials change: without new ones it fails again.
        repeat = None
        if item["status"] == "LOGIN_ERROR" and item.get("running") is None and not parameters:
            repeat = {"status": item["status"], "executionStatus": item["executionStatus"], "error": item["error"]}
        if parameters:
            item.update(_credentials_state({"user": item["user"], **parameters}, item["passwordOk"]))
        for key in ("webhookUrl", "clientUserId", "products"):
            if body.get(key) is not None:
                item[key] = body[key]
        self._start_sync(item, call.now, renews_consent=bool(parameters), repeat_failure=repeat)
        self._save()
        return 200, self._item_json(item)

    def _delete_item(self, call: _Call) -> tuple[int, Any]:
        item = self._item(call)
        self._emit("item/deleted", item, triggeredBy="CLIENT")
        del self._items[item["id"]]
        self._sync_started.pop((item.get("running") or {}).get("id", ""), None)
        self._save()
        return 200, {"count": 1}

    def _send_mfa(self, call: _Call) -> tuple[int, Any]:
        item = self._item(call)
        body = call.body()
        if item.get("running") is not None or item["status"] != "WAITING_USER_INPUT" or not item["parameter"]:
            raise _bad_request("Item is not waiting for user input")
        name = item["parameter"]["name"]
        value = body.get(name)
        if not isinstance(value, str | int) or str(value) == "":
            raise _bad_request(f"The parameter '{name}' is required",
                               codeDescription="CONNECTOR_REQUIRED_PARAMETER_VALIDATION_ERROR",
                               details=[{"code": "001", "message": f"Parameter '{name}' is required",
                                         "parameter": name}], data={"parameter": name})
        self._start_sync(item, call.now, mfa_value=str(value), renews_consent=True)
        self._save()
        return 200, self._item_json(item)

    def _disable_auto_sync(self, call: _Call) -> tuple[int, Any]:
        item = self._item(call)
        item["autoSync"] = False
        item["updatedAt"] = iso_z(call.now)
        self._save()
        return 200, self._item_json(item)

    # -- the item lifecycle ------------------------------------------------------------------------------------------

    def _start_sync(self, item: dict[str, Any], now: datetime, *, mfa_value: str | None = None,
                    renews_consent: bool = False, repeat_failure: dict[str, Any] | None = None) -> None:
        """Begin a sync: the item shows UPDATING until `settle_delay` real seconds pass, then the outcome.

        repeat_failure: end in this (status, executionStatus, error) instead of what the credentials would give.
        """
        scenario = SCENARIOS.get(item["user"], INVALID_CREDENTIALS) if item["passwordOk"] else INVALID_CREDENTIALS
        outcome: dict[str, Any] = {"status": scenario.status, "executionStatus": scenario.execution_status,
                                   "error": None, "parameter": None, "statusDetail": None, "layout": None,
                                   "renewsConsent": renews_consent}
        if scenario.mfa and mfa_value is None:
            outcome.update(status="WAITING_USER_INPUT", executionStatus="WAITING_USER_INPUT",
                           parameter=self._mfa_parameter(now))
        elif scenario.mfa and mfa_value != self.mfa_code:
            scenario = _failure("LOGIN_ERROR", "INVALID_CREDENTIALS_MFA")
            outcome.update(status=scenario.status, executionStatus=scenario.execution_status)
        if repeat_failure is not None:
            outcome.update(repeat_failure, parameter=None)
        elif scenario.error_code:
            outcome["error"] = {"code": scenario.error_code, "message": ERROR_MESSAGES[scenario.error_code]}
        elif outcome["status"] == "UPDATED":
            outcome["layout"] = {"checking": scenario.checking_accounts, "card": scenario.card}
            if scenario.failed_product:
                outcome["statusDetail"] = self._status_detail(now, scenario.failed_product)
        succeeds = outcome["layout"] is not None
        first = "LOGIN_MFA_IN_PROGRESS" if mfa_value is not None else "LOGIN_IN_PROGRESS"
        phases = [first, "ACCOUNTS_IN_PROGRESS", "CREDITCARDS_IN_PROGRESS", "TRANSACTIONS_IN_PROGRESS"]
        run_id = uuid.uuid4().hex
        item["running"] = {"id": run_id, "syncAt": iso_z(now), "outcome": outcome,
                           "phases": phases if succeeds else [first]}
        item["status"], item["executionStatus"] = "UPDATING", first
        item["error"] = item["parameter"] = item["statusDetail"] = None
        item["updatedAt"] = iso_z(now)
        self._sync_started[run_id] = time.monotonic()

    def _mfa_parameter(self, now: datetime) -> dict[str, Any]:
        return {"name": "token", "label": "Token", "type": "number", "mfa": True, "optional": False,
                "placeholder": "123456", "validation": r"^\d{6}$", "validationMessage": "O token deve ter 6 dígitos.",
                "instructions": f"Enter the 6-digit token the bank sent you (sandbox: {self.mfa_code}).",
                "assistiveText": None, "data": None, "options": None, "expiresAt": iso_z(now + MFA_TTL)}

    @staticmethod
    def _status_detail(now: datetime, failed: str) -> dict[str, Any]:
        ok = {"isUpdated": True, "lastUpdatedAt": iso_z(now), "warnings": []}
        detail: dict[str, Any] = {key: None for key in ("investments", "investmentTransactions", "identity",
                                                         "paymentData", "loans", "accountStatements")}
        detail.update(accounts=ok, creditCards=ok, transactions=ok)
        detail[failed] = {"isUpdated": False, "lastUpdatedAt": None, "warnings": [
            {"code": "001", "message": "The institution did not return this product's data.",
             "providerMessage": None}]}
        return detail

    def _refresh_all(self) -> bool:
        """Apply everything due by now: finished syncs, MFA timeouts and auto-syncs. True when anything changed."""
        now = self._clock.now()
        changed = False
        for item in self._items.values():
            changed |= self._refresh(item, now)
        return changed

    def _refresh(self, item: dict[str, Any], now: datetime) -> bool:
        run = item.get("running")
        if run is not None:
            started = self._sync_started.get(run["id"])
            if self.settle_delay > 0 and started is not None and time.monotonic() - started < self.settle_delay:
                return False
            self._settle(item, run, now)
            return True
        if item["status"] == "WAITING_USER_INPUT" and item["parameter"]:
            if _parse_time(item["parameter"]["expiresAt"]) < now:
                item.update(status="OUTDATED", executionStatus="USER_INPUT_TIMEOUT", parameter=None,
                            error={"code": "USER_INPUT_TIMEOUT", "message": ERROR_MESSAGES["USER_INPUT_TIMEOUT"]},
                            updatedAt=iso_z(now))
                self._emit_status(item, "SYNC")
                return True
            return False
        if item["status"] != "UPDATED" or not item["autoSync"] or not item["syncs"]:
            return False
        last = _parse_time(item["syncs"][-1])
        if last + AUTO_SYNC_EVERY > now:
            return False
        before = self._views_of(item) if self._targets(item, "item/updated") else None
        while last + AUTO_SYNC_EVERY <= now:
            last += AUTO_SYNC_EVERY
            item["syncs"].append(iso_z(last))
        item["lastUpdatedAt"] = item["updatedAt"] = iso_z(last)
        if before is not None:
            self._emit("item/updated", item, triggeredBy="SYNC")
            self._emit_data_events(item, before)
        return True

    def _settle(self, item: dict[str, Any], run: dict[str, Any], now: datetime) -> None:
        outcome = run["outcome"]
        self._sync_started.pop(run["id"], None)
        first = not item["syncs"]
        before = self._views_of(item) if self._targets(item, "item/updated") else None
        item.update(running=None, status=outcome["status"], executionStatus=outcome["executionStatus"],
                    error=outcome["error"], parameter=outcome["parameter"], statusDetail=outcome["statusDetail"],
                    updatedAt=iso_z(max(now, _parse_time(run["syncAt"]))))
        if outcome["layout"] is not None:
            item["layout"] = outcome["layout"]
            item["syncs"].append(run["syncAt"])
            item["lastUpdatedAt"] = run["syncAt"]
            item["consecutiveFailedLoginAttempts"] = 0
            if outcome["renewsConsent"]:
                item["consentExpiresAt"] = iso_z(_parse_time(run["syncAt"]) + CONSENT_TTL)
        elif outcome["status"] == "LOGIN_ERROR":
            item["consecutiveFailedLoginAttempts"] += 1
        if before is None:
            return
        if outcome["layout"] is not None:
            if outcome["renewsConsent"]:
                self._emit("item/login_succeeded", item, triggeredBy="USER")
            self._emit("item/created" if first else "item/updated", item, triggeredBy="USER")
            self._emit_data_events(item, before)
        else:
            self._emit_status(item, "USER")

    def _item_json(self, item: dict[str, Any]) -> dict[str, Any]:
        status, execution = item["status"], item["executionStatus"]
        run = item.get("running")
        if run is not None:
            status = "UPDATING"
            started = self._sync_started.get(run["id"])
            elapsed = time.monotonic() - started if started is not None else 0.0
            phases = run["phases"]
            fraction = elapsed / self.settle_delay if self.settle_delay > 0 else 0.0
            execution = phases[min(len(phases) - 1, int(fraction * len(phases)))]
        next_sync = None
        if status == "UPDATED" and item["autoSync"] and item["syncs"]:
            next_sync = iso_z(_parse_time(item["syncs"][-1]) + AUTO_SYNC_EVERY)
        return {
            "id": item["id"],
            "connector": self._find_connector(item["connectorId"]),
            "status": status,
            "executionStatus": execution,
            "error": item["error"],
            "statusDetail": item["statusDetail"],
            "parameter": item["parameter"],
            "userAction": None,
            "webhookUrl": item["webhookUrl"],
            "clientUserId": item["clientUserId"],
            "consecutiveFailedLoginAttempts": item["consecutiveFailedLoginAttempts"],
            "createdAt": item["createdAt"],
            "updatedAt": item["updatedAt"],
            "lastUpdatedAt": item["lastUpdatedAt"],
            "nextAutoSyncAt": next_sync,
            "consentExpiresAt": item["consentExpiresAt"],
            # pluggy-sdk 0.92.0: when the institution's Open Finance resource list was last read, and whether one of
            # those resources awaits the user's approval. Both are null for connectors other than Open Finance, and
            # the only connector the emulator connects, Pluggy Bank, is not one.
            "resourcesCollectedAt": None,
            "hasResourcesPendingAuthorization": None,
            "products": item["products"],
            "oauthRedirectUri": None,
        }

    # -- data views --------------------------------------------------------------------------------------------------

    def _ledger(self, item: dict[str, Any]) -> Ledger:
        layout = item["layout"]
        return brazilian_ledger(self.seed, item["id"], _parse_time(item["createdAt"]),
                                checking_accounts=layout["checking"], card=layout["card"])

    def _account_id(self, item_id: str, index: int) -> str:
        return stable_uuid(self.seed, item_id, "account", index)

    def _views_of(self, item: dict[str, Any]) -> list[_AccountView]:
        """Every account of an item as of its last successful sync (empty before the first one)."""
        if not item["syncs"] or not item.get("layout"):
            return []
        syncs = item["syncs"]
        key = (item["id"], item["createdAt"], json.dumps(item["layout"]), len(syncs), syncs[0], syncs[-1],
               self.card_sign, self._patch_version)
        views = self._views.get(key)
        if views is not None:
            self._views.move_to_end(key)
            return views
        ledger = self._ledger(item)
        moments = [_parse_time(s) for s in syncs]
        cutoff = moments[-1]
        views = []
        for spec in ledger.profile.accounts:
            account_id = self._account_id(item["id"], spec.index)
            card = spec.kind == "card"
            flip = card and self.card_sign == "purchase_positive"
            rows, total = [], 0.0
            for entry, pending, appeared in ledger.view(spec.index, cutoff):
                total += entry.amount if pending else entry.final_amount
                created = moments[bisect.bisect_left(moments, appeared)]
                tx_id = entry.pending_id if pending else entry.id
                patch = self._patches.get(tx_id or "")
                rows.append(pluggy_transaction(
                    entry, account_id=account_id, pending=pending, created_at=created, flip=flip,
                    card_number=CARD_LAST4 if card else None,
                    category_id=patch["categoryId"] if patch else None,
                    updated_at=_parse_time(patch["updatedAt"]) if patch else None))
            rows.sort(key=lambda t: (t["date"], t["id"]))
            views.append(_AccountView(account_id, spec.index, spec.kind, rows, round(total, 2),
                                      spec.opening_balance))
        self._views[key] = views
        while len(self._views) > 32:
            self._views.popitem(last=False)
        return views

    def _find_account(self, account_id: str) -> tuple[dict[str, Any], _AccountView] | None:
        for item in self._items.values():
            for view in self._views_of(item):
                if view.account_id == account_id:
                    return item, view
        return None

    def _account_json(self, item: dict[str, Any], view: _AccountView) -> dict[str, Any]:
        cutoff = _parse_time(item["syncs"][-1])
        number_seed = f"{self.seed}/{item['id']}/{view.index}"
        common = {"id": view.account_id, "itemId": item["id"], "currencyCode": "BRL", "owner": HOLDER.name,
                  "taxNumber": HOLDER.document, "createdAt": item["createdAt"], "updatedAt": iso_z(cutoff)}
        if view.kind == "card":
            owed = round(-view.total, 2)
            close = close_date_for(cutoff.astimezone(SAO_PAULO).date())
            ledger = self._ledger(item)
            last_bill = bill_total(ledger.entries[view.index], add_months(close, -1))
            return {
                **common, "type": "CREDIT", "subtype": "CREDIT_CARD", "number": f"xxxx{CARD_LAST4}",
                "name": "Mastercard Black", "marketingName": "PLUGGY BANK MASTERCARD BLACK",
                "balance": owed if self.card_sign == "purchase_positive" else -owed, "bankData": None,
                "creditData": {
                    "level": "BLACK", "brand": "MASTERCARD", "brandAdditionalInfo": None,
                    "balanceCloseDate": iso_z(_local_midnight(close)),
                    "balanceDueDate": iso_z(_local_midnight(due_date_for(close))),
                    "availableCreditLimit": round(CREDIT_LIMIT - owed, 2), "creditLimit": CREDIT_LIMIT,
                    "balanceForeignCurrency": 0.0, "minimumPayment": round(max(last_bill, 0.0) * 0.15, 2),
                    "isLimitFlexible": False, "status": "ACTIVE", "holderType": "MAIN",
                    "disaggregatedCreditLimits": None, "additionalCards": None,
                },
            }
        balance = round(view.opening + view.total, 2)
        number = f"0001/{_digits(number_seed, 5)}-{_digits(number_seed + '/dv', 1)}"
        return {
            **common, "type": "BANK", "subtype": "CHECKING_ACCOUNT", "number": number,
            "name": "Conta Corrente" if view.index == 0 else f"Conta Corrente {view.index + 1}",
            "marketingName": "PLUGGY BANK CONTA CORRENTE", "balance": balance, "creditData": None,
            "bankData": {"transferNumber": number, "closingBalance": balance, "automaticallyInvestedBalance": 0.0,
                         "overdraftContractedLimit": 1000.0, "overdraftUsedLimit": round(max(0.0, -balance), 2),
                         "unarrangedOverdraftAmount": 0.0, "hasReservedBalance": False, "reservedBalances": None},
        }

    def _list_accounts(self, call: _Call) -> tuple[int, Any]:
        item_id = call.params.get("itemId") or ""
        if not _UUID.match(item_id):
            raise _bad_request("itemId should not be null or undefined, itemId must be a UUID")
        item = self._items.get(item_id)
        if item is None:
            raise _not_found("ITEM", "item not found")
        self._check_scope(call, item)
        wanted = (call.params.get("type") or "").upper()
        accounts = [self._account_json(item, view) for view in self._views_of(item)]
        return 200, _page([a for a in accounts if not wanted or a["type"] == wanted])

    def _get_account(self, call: _Call) -> tuple[int, Any]:
        found = self._find_account(call.match["id"])
        if found is None:
            raise _not_found("ACCOUNT", "account not found")
        return 200, self._account_json(*found)

    # -- transactions ------------------------------------------------------------------------------------------------

    @staticmethod
    def _ids_filter(raw: str | None) -> set[str] | None:
        if not raw:
            return None
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if len(ids) > MAX_IDS:
            raise _bad_request(f"The ids parameter cannot have more than {MAX_IDS} transaction ids",
                               codeDescription="IDS_PARAMETER_EXCEEDS_MAX_LENGTH")
        if not all(_UUID.match(i) for i in ids):
            raise _bad_request("each value in ids must be a UUID")
        return set(ids)

    @staticmethod
    def _date_bound(raw: str | None, name: str) -> str | None:
        """A date filter as a comparable prefix: 'YYYY-MM-DD' compares the UTC day, an ISO time the full instant."""
        if not raw:
            return None
        try:
            if _ISO_DATE.match(raw):
                date.fromisoformat(raw)
                return raw
            return iso_z(_parse_time(raw))
        except ValueError as exc:
            raise _bad_request(f"{name} must be a valid ISO 8601 date string") from exc

    @classmethod
    def _filtered(cls, rows: list[dict[str, Any]], *, ids: set[str] | None, start: str | None, end: str | None,
                  created_from: str | None, bill_id: str | None = None) -> list[dict[str, Any]]:
        out = []
        for tx in rows:
            if ids is not None and tx["id"] not in ids:
                continue
            if start is not None and tx["date"][: len(start)] < start:
                continue
            if end is not None and tx["date"][: len(end)] > end:
                continue
            if created_from is not None and tx["createdAt"] < created_from:
                continue
            if bill_id is not None and (tx["creditCardMetadata"] or {}).get("billId") != bill_id:
                continue
            out.append(tx)
        return out

    def _account_rows(self, call: _Call) -> tuple[str, list[dict[str, Any]]]:
        account_id = call.params.get("accountId") or ""
        if not _UUID.match(account_id):
            raise _bad_request("accountId should not be null or undefined, accountId must be a UUID")
        found = self._find_account(account_id)
        return account_id, found[1].rows if found else []

    def _transactions_v2(self, call: _Call) -> tuple[int, Any]:
        params = call.params
        account_id, rows = self._account_rows(call)
        ids = self._ids_filter(params.get("ids"))
        if params.get("dateFrom") and params.get("createdAtFrom"):
            raise _bad_request("dateFrom and createdAtFrom cannot be used together")
        created_from = self._date_bound(params.get("createdAtFrom"), "createdAtFrom")
        if created_from is not None and len(created_from) == 10:
            created_from += "T00:00:00.000Z"
        matching = self._filtered(rows, ids=ids, start=self._date_bound(params.get("dateFrom"), "dateFrom"),
                                  end=self._date_bound(params.get("dateTo"), "dateTo"), created_from=created_from)
        first = 0
        after = params.get("after")
        if after is not None:
            first = bisect.bisect_right([(t["date"], t["id"]) for t in matching], _read_cursor(after))
        page_size = V2_PAGE_SIZE
        page = matching[first: first + page_size]
        next_query = None
        if first + page_size < len(matching):
            last = page[-1]
            cursor = base64.b64encode(f"{_CURSOR_PREFIX}{last['date']}|{last['id']}".encode()).decode()
            query = [("accountId", account_id)]
            query += [(k, params[k]) for k in ("ids", "dateFrom", "dateTo", "createdAtFrom") if params.get(k)]
            query.append(("after", cursor))
            next_query = "?" + urlencode(query, quote_via=quote, safe="")
        return 200, {"results": page, "next": next_query}

    def _transactions_v1(self, call: _Call) -> tuple[int, Any]:
        params = call.params
        _, rows = self._account_rows(call)
        try:
            page = int(params.get("page") or 1)
            page_size = int(params.get("pageSize") or V1_DEFAULT_PAGE_SIZE)
        except ValueError as exc:
            raise _bad_request("page and pageSize must be numbers") from exc
        if page < 1:
            raise _bad_request("page must not be less than 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _bad_request(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
        ids = self._ids_filter(params.get("ids"))
        created_from = self._date_bound(params.get("createdAtFrom"), "createdAtFrom")
        if created_from is not None and len(created_from) == 10:
            created_from += "T00:00:00.000Z"
        matching = self._filtered(
            rows, ids=ids, start=None if ids else self._date_bound(params.get("from"), "from"),
            end=None if ids else self._date_bound(params.get("to"), "to"), created_from=created_from,
            bill_id=params.get("billId"))
        matching.reverse()
        return 200, _page(matching[(page - 1) * page_size: page * page_size], page, page_size, len(matching))

    def _find_transaction(self, tx_id: str) -> dict[str, Any]:
        for item in self._items.values():
            for view in self._views_of(item):
                for tx in view.rows:
                    if tx["id"] == tx_id:
                        return tx
        raise _not_found("TRANSACTION", "Transaction not found")

    def _get_transaction(self, call: _Call) -> tuple[int, Any]:
        return 200, self._find_transaction(call.match["id"])

    def _update_transaction(self, call: _Call) -> tuple[int, Any]:
        tx_id = call.match["id"]
        if not _UUID.match(tx_id):
            raise _bad_request("Transaction Id should not be null or undefined, transactionId must be a UUID")
        category_id = call.body().get("categoryId")
        if not isinstance(category_id, str) or category_id not in PLUGGY_CATEGORIES:
            raise _not_found("CATEGORY", "category not found")
        self._find_transaction(tx_id)
        self._patches[tx_id] = {"categoryId": category_id, "updatedAt": iso_z(call.now)}
        self._patch_version += 1
        self._save()
        return 200, self._find_transaction(tx_id)

    # -- categories --------------------------------------------------------------------------------------------------

    @staticmethod
    def _category_json(category_id: str) -> dict[str, Any]:
        description, translated = PLUGGY_CATEGORIES[category_id]
        category: dict[str, Any] = {"id": category_id, "description": description,
                                    "descriptionTranslated": translated}
        parent = category_parent(category_id)
        if parent is not None:
            category.update(parentId=parent, parentDescription=PLUGGY_CATEGORIES[parent][0])
        return category

    def _list_categories(self, call: _Call) -> tuple[int, Any]:
        parent = call.params.get("parentId")
        results = [self._category_json(c) for c in PLUGGY_CATEGORIES
                   if parent is None or category_parent(c) == parent]
        return 200, _page(results)

    def _get_category(self, call: _Call) -> tuple[int, Any]:
        if call.match["id"] not in PLUGGY_CATEGORIES:
            raise _not_found("CATEGORY", "category not found")
        return 200, self._category_json(call.match["id"])

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

    # -- webhooks ----------------------------------------------------------------------------------------------------

    def _check_webhook_url(self, url: object) -> str:
        """Pluggy's rules (https, a public host) except that loopback URLs are allowed: the emulator is offline."""
        if not isinstance(url, str) or not url:
            raise _bad_request("url must be a valid URL")
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        loopback = host in LOOPBACK_HOSTS
        if parts.scheme not in ("https", "http") or not host or (parts.scheme == "http" and not loopback):
            raise _bad_request("url must be a valid https URL (the offline emulator also accepts http://127.0.0.1)")
        if not loopback and (host.endswith((".localhost", ".local", ".internal")) or _is_ip(host)):
            raise _bad_request("url must not point to a private, local or IP address")
        return url

    @staticmethod
    def _webhook_json(hook: dict[str, Any]) -> dict[str, Any]:
        return {k: hook[k] for k in ("id", "event", "url", "disabledAt", "createdAt", "updatedAt")}

    def _find_webhook(self, call: _Call) -> dict[str, Any]:
        hook = self._webhooks.get(call.match["id"])
        if hook is None:
            raise _not_found("WEBHOOK", "webhook not found")
        return hook

    def _check_webhook_slot(self, event: object, url: str, ignore: str | None = None) -> str:
        if not isinstance(event, str) or event not in WEBHOOK_EVENTS:
            raise _bad_request(f"Invalid event type '{event}' for webhook")
        same = [h for h in self._webhooks.values() if h["event"] == event and h["id"] != ignore]
        if any(h["url"] == url for h in same):
            raise _bad_request(f"A webhook for event '{event}' and url '{url}' already exists.")
        if len(same) >= MAX_WEBHOOKS_PER_EVENT:
            raise _bad_request(f"There can be at most {MAX_WEBHOOKS_PER_EVENT} webhooks for event '{event}'.")
        return event

    @staticmethod
    def _headers(value: object) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise _bad_request("headers must be an object of strings")
        return dict(value)

    def _create_webhook(self, call: _Call) -> tuple[int, Any]:
        body = call.body()
        url = self._check_webhook_url(body.get("url"))
        event = self._check_webhook_slot(body.get("event"), url)
        now = iso_z(call.now)
        hook = {"id": str(uuid.uuid4()), "event": event, "url": url, "headers": self._headers(body.get("headers")),
                "disabledAt": None, "createdAt": now, "updatedAt": now}
        self._webhooks[hook["id"]] = hook
        self._save()
        return 201, self._webhook_json(hook)

    def _list_webhooks(self, call: _Call) -> tuple[int, Any]:
        return 200, _page([self._webhook_json(h) for h in self._webhooks.values()])

    def _get_webhook(self, call: _Call) -> tuple[int, Any]:
        return 200, self._webhook_json(self._find_webhook(call))

    def _update_webhook(self, call: _Call) -> tuple[int, Any]:
        hook = self._find_webhook(call)
        body = call.body()
        url = self._check_webhook_url(body["url"]) if body.get("url") is not None else hook["url"]
        event = body.get("event") if body.get("event") is not None else hook["event"]
        if (url, event) != (hook["url"], hook["event"]):
            self._check_webhook_slot(event, url, ignore=hook["id"])
        hook.update(url=url, event=event)
        if "headers" in body:  # null clears them
            hook["headers"] = self._headers(body["headers"])
        if body.get("enabled") is True:
            hook["disabledAt"] = None
        hook["updatedAt"] = iso_z(call.now)
        self._save()
        return 200, self._webhook_json(hook)

    def _delete_webhook(self, call: _Call) -> tuple[int, Any]:
        hook = self._find_webhook(call)
        del self._webhooks[hook["id"]]
        self._save()
        return 200, {"count": 1}

    def _preset_webhook(self, url: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._reload_if_changed()
            try:
                self._check_webhook_url(url)
            except ApiError as error:
                raise ValueError(f"Webhook URL {url!r} refused: {error.body['message']}") from None
            found = next((h for h in self._webhooks.values() if h["url"] == url and h["event"] == "all"), None)
            now = iso_z(self._clock.now())
            if found is None:
                found = {"id": str(uuid.uuid4()), "event": "all", "url": url, "headers": {}, "disabledAt": None,
                         "createdAt": now, "updatedAt": now}
                self._webhooks[found["id"]] = found
            if headers:
                found["headers"] = dict(headers)
            self._save()

    def _targets(self, item: dict[str, Any] | None, event: str) -> list[tuple[str, dict[str, str]]]:
        """(url, headers) for every destination of `event`: the item's webhookUrl and each application webhook
        subscribed to it (one delivery per URL; a registered webhook's headers win)."""
        found: dict[str, dict[str, str]] = {}
        if item is not None and item.get("webhookUrl"):
            found[item["webhookUrl"]] = {}
        for hook in self._webhooks.values():
            subscribed = hook["event"] in (event, "all") or (hook["event"] == "item/all" and event.startswith("item/"))
            if subscribed and hook["disabledAt"] is None:
                found[hook["url"]] = dict(hook.get("headers") or {})
        return list(found.items())

    def _emit(self, event: str, item: dict[str, Any] | None, **fields: Any) -> None:
        """Queue `event` for every destination (the caller saves the state)."""
        targets = self._targets(item, event)
        if not targets:
            return
        payload: dict[str, Any] = {"event": event, "eventId": str(uuid.uuid4())}
        if item is not None:
            payload.update(id=item["id"], itemId=item["id"], clientUserId=item.get("clientUserId"))
        payload.update(fields)
        for url, headers in targets:
            self._enqueue_webhook(url, payload, headers=headers)

    def _emit_status(self, item: dict[str, Any], triggered_by: str) -> None:
        """The event for an item's new (non-UPDATED) status."""
        status = item["status"]
        if status == "WAITING_USER_INPUT":
            self._emit("item/waiting_user_input", item, triggeredBy=triggered_by)
        elif status == "WAITING_USER_ACTION":
            self._emit("item/waiting_user_action", item, triggeredBy=triggered_by)
        elif status in ("LOGIN_ERROR", "OUTDATED"):
            error = item.get("error") or {"code": "UNEXPECTED_ERROR", "message": ERROR_MESSAGES["UNEXPECTED_ERROR"]}
            self._emit("item/error", item, triggeredBy=triggered_by,
                       error={"code": error["code"], "message": error["message"]})

    def _emit_data_events(self, item: dict[str, Any], before: list[_AccountView]) -> None:
        """transactions/created|updated|deleted for what the last sync changed, account by account."""
        old = {view.account_id: {t["id"]: t for t in view.rows} for view in before}
        client = self._client_id or "pluggy-emulator"
        for view in self._views_of(item):
            previous = old.get(view.account_id, {})
            current = {t["id"]: t for t in view.rows}
            created = [t for tid, t in current.items() if tid not in previous]
            updated = sorted(tid for tid, t in current.items() if tid in previous and previous[tid] != t)
            deleted = sorted(tid for tid in previous if tid not in current)
            if created:
                since = min(t["createdAt"] for t in created)
                link = f"https://api.pluggy.ai/v2/transactions?accountId={view.account_id}&createdAtFrom={since}"
                self._emit("transactions/created", item, id=view.account_id, accountId=view.account_id,
                           transactionsCreatedAtFrom=since, transactionsCount=len(created),
                           createdTransactionsLink=link, createdTransactionsLinkV2=link)
            for event, ids in (("transactions/updated", updated), ("transactions/deleted", deleted)):
                if ids:
                    self._emit(event, item, id=view.account_id, accountId=view.account_id, clientId=client,
                               transactionIds=ids, transactionsCount=len(ids))

    def _prune(self) -> None:
        if self.state_path is None:
            return
        now = self._clock.now()
        self._tokens = {k: v for k, v in self._tokens.items()
                        if _parse_time(v["expiresAt"]) + timedelta(days=1) > now}


def _read_cursor(after: str) -> tuple[str, str]:
    """(date, id) out of an `after` cursor; 400 Invalid cursor otherwise (a '+' that arrived as a space, say)."""
    try:
        text = base64.b64decode(after, validate=True).decode()
        date_part, tx_id = text.removeprefix(_CURSOR_PREFIX).split("|")
    except ValueError as exc:
        raise _bad_request("Invalid cursor") from exc
    if not _ISO_MS.match(date_part) or not _UUID.match(tx_id):
        raise _bad_request("Invalid cursor")
    return date_part, tx_id


def _credentials_state(parameters: dict[str, Any], password_ok: bool = False) -> dict[str, Any]:
    """What an item keeps of its credentials: the username and whether the password was right, never the password
    itself (someone may type a real one into the sandbox form)."""
    if "password" in parameters:
        password_ok = parameters["password"] == SANDBOX_PASSWORD
    return {"user": str(parameters.get("user", "")), "passwordOk": password_ok}


def _check_strings(body: dict[str, Any]) -> None:
    """400 unless the item's free-text fields are strings (or absent)."""
    for key in ("webhookUrl", "clientUserId"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise _bad_request(f"{key} must be a string")
    products = body.get("products")
    if products is not None and not (isinstance(products, list) and all(isinstance(p, str) for p in products)):
        raise _bad_request("products must be an array of strings")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SAO_PAULO)
