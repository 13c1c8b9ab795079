"""The httpx client for Plaid ({sandbox,production}.plaid.com): requests, the error taxonomy, rate limits, and the
/transactions/sync walk.

The same code runs against the real API and against the offline emulator (finance.providers.plaid.sandbox), which
replaces only the transport. Every call is a POST with a JSON body; credentials travel only in the PLAID-CLIENT-ID /
PLAID-SECRET headers, never in a body, a log line, an exception or a repr.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

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
from finance.i18n import _
from finance.providers.plaid.mapping import (
    CONFIG_CODES,
    ERROR_MESSAGES,
    LABEL,
    MUTATION_CODE,
    NAME,
    NOT_FOUND_CODES,
    REAUTH_CODES,
    TRANSIENT_CODES,
    short_text,
)

PLAID_VERSION = "2020-09-14"
ENVIRONMENTS = {"sandbox": "https://sandbox.plaid.com", "production": "https://production.plaid.com"}
SYNC_PAGE_SIZE = 500  # the maximum /transactions/sync accepts
MAX_SYNC_RESTARTS = 3  # restarts from the pre-loop cursor after TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION
DAYS_REQUESTED = 730  # history asked for when Transactions is first added to an Item (Plaid's maximum)
PFC_VERSION = "v2"  # the personal finance category taxonomy asked for (Plaid's newer one; v1 is still understood)
CONSENTED_PRODUCTS = ("investments", "liabilities")  # asked consent for in Link; added (and billed) on first use
INVESTMENTS_PAGE_SIZE = 500  # the most /investments/transactions/get returns per request
MAX_INVESTMENT_PAGES = 100  # a bound on the offset walk, should a server keep announcing more


# Plaid sends no Retry-After. Its limits are per minute (e.g. /transactions/sync 50/min per Item), so a
# slot frees within seconds; a few seconds' wait is enough without stalling a sync for a whole minute.
RATE_LIMIT_WAIT = 5.0
CLIENT_NAME_MAX = 30  # Link shows "This Application" for longer names


class SyncMutationDuringPagination(RequestRejected):
    """Plaid's data changed while /transactions/sync pages were read: restart the whole walk, never one page."""


def _decode_json(response: httpx.Response) -> Any:
    return decode_json(response, NAME, LABEL)


def classify_response(response: httpx.Response) -> ProviderError | None:
    """None for a usable response; otherwise the typed error its PlaidError body (or status) means."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    body = error_body(response)
    code = str(body.get("error_code") or "") or None
    error_type = str(body.get("error_type") or "") or None
    detail = short_text(body.get("display_message")) or short_text(body.get("error_message"))
    label = code or f"HTTP_{status}"
    if status == 429 or error_type == "RATE_LIMIT_EXCEEDED" or code in ("RATE_LIMIT_EXCEEDED", "RATE_LIMIT"):
        wait = retry_after_seconds(response)
        return RateLimited(_("Plaid is rate limiting requests; the sync will resume shortly."),
                           retry_after=RATE_LIMIT_WAIT if wait is None else wait, code=label, provider=NAME,
                           status=status)
    if code in CONFIG_CODES or (code is None and status in (401, 403)):
        return ConfigurationError(_("Plaid rejected our API keys. Check PLAID_CLIENT_ID and PLAID_SECRET, and that "
                                    "they belong to the environment in use (sandbox or production)."),
                                  code=label, provider=NAME, status=status)
    if code in REAUTH_CODES:
        return ReauthRequired(ERROR_MESSAGES[code], code=code, provider=NAME, status=status)
    if code in NOT_FOUND_CODES or (code is None and status == 404):
        return NotFound(ERROR_MESSAGES.get(code or "", _("Not found at Plaid.")), code=label, provider=NAME,
                        status=status)
    if code == MUTATION_CODE:
        return SyncMutationDuringPagination("Plaid's transactions changed while they were being read.",
                                            code=code, provider=NAME, status=status)
    if code in TRANSIENT_CODES or status >= 500 or error_type == "API_ERROR":
        message = ERROR_MESSAGES.get(code or "") or _("Plaid had a server error (HTTP {status}). Nothing was "
                                                      "changed; try again in a few minutes.").format(status=status)
        return TransientError(message, code=label, provider=NAME, status=status)
    return RequestRejected(_("Plaid refused the request: {detail}").format(detail=detail or f"HTTP {status}"),
                           code=label, provider=NAME, status=status)
RATE_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "/accounts/get": (15, 15_000),
    "/accounts/balance/get": (5, 1_200),
    "/item/get": (15, 5_000),
    "/item/remove": (30, 2_000),
    "/institutions/get_by_id": (None, 400),
    "/transactions/sync": (50, 2_500),
    "/investments/transactions/get": (30, 20_000),
    "/liabilities/get": (15, 1_000),
}
"""Requests per minute (per Item, per client) by endpoint, Plaid's production defaults (reference plaid.md §6.3)."""


def rate_limits(request: httpx.Request) -> list[tuple[str, int]]:
    """The token buckets a request takes from: the endpoint's per-client one and its Item's own."""
    path = request.url.path
    per_item, per_client = RATE_LIMITS.get(path, (None, None))
    buckets = [(f"plaid:{path}", per_client)] if per_client else []
    if per_item:
        try:
            token = json.loads(request.content).get("access_token")
        except (ValueError, AttributeError):
            token = None
        if isinstance(token, str) and token:  # keyed by a digest: the limiter never holds the token itself
            buckets.append((f"plaid:{path}:{hashlib.sha256(token.encode()).hexdigest()[:16]}", per_item))
    return buckets


def _redacted(error: ProviderError, secret: str) -> ProviderError:
    """Never let the secret reach a message, should a server ever echo it."""
    if secret and secret in error.message:
        error.message = error.message.replace(secret, "***")
        error.args = (error.message,)
    return error


class PlaidClient:
    """Thin access to the Plaid endpoints we use; every call goes through the retry loop."""

    def __init__(self, client_id: str, secret: str, *, environment: str = "sandbox", base_url: str | None = None,
                 transport: httpx.BaseTransport | None = None, policy: RetryPolicy = DEFAULT_POLICY,
                 sleep: Sleep = time.sleep, now: Callable[[], datetime] | None = None,
                 rate_limited: bool | None = None, limiter: RateLimiter | None = None) -> None:
        """`rate_limited`: keep Plaid's per-Item and per-client limits client-side (default: on the network, not
        against an in-process emulator's transport); `limiter`: the token buckets (default: the client's own)."""
        if not client_id or not secret:
            raise ConfigurationError(_("Plaid needs PLAID_CLIENT_ID and PLAID_SECRET."), code="NO_CREDENTIALS",
                                     provider=NAME)
        if environment not in ENVIRONMENTS:
            raise ConfigurationError(f"The Plaid environment must be sandbox or production, not {environment!r}.",
                                     code="BAD_ENVIRONMENT", provider=NAME)
        self.environment = environment
        self._secret = secret
        limited = (transport is None or limiter is not None) if rate_limited is None else rate_limited
        self._http = make_client(base_url or ENVIRONMENTS[environment], transport=transport, headers={
            "PLAID-CLIENT-ID": client_id, "PLAID-SECRET": secret, "Plaid-Version": PLAID_VERSION},
            rate_limits=rate_limits if limited else None, limiter=limiter)
        self._policy = policy
        self._sleep = sleep
        self.now = now or (lambda: datetime.now(UTC))
        self._requests = 0
        self._requests_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PlaidClient(environment={self.environment!r}, base_url={str(self._http.base_url)!r})"

    @property
    def is_sandbox(self) -> bool:
        return self.environment == "sandbox"

    def close(self) -> None:
        self._http.close()

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (retries included), for sync run statistics."""
        return self._requests

    # -- transport --------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        def send() -> httpx.Response:
            with self._requests_lock:
                self._requests += 1
            return self._http.post(path, json=body)

        def classify(response: httpx.Response) -> ProviderError | None:
            error = classify_response(response)
            return _redacted(error, self._secret) if error is not None else None

        response = call_with_retries(send, classify, idempotent=idempotent, policy=self._policy,
                                     sleep=self._sleep, provider=LABEL)
        data = _decode_json(response)
        if not isinstance(data, dict):
            raise BadData(f"Plaid's {path} answer was not an object.", code="BAD_SHAPE", provider=NAME,
                          status=response.status_code)
        return data

    def _require_sandbox(self, what: str) -> None:
        if not self.is_sandbox:
            raise RequestRejected(f"{what} exists only in Plaid's sandbox.", code="SANDBOX_ONLY", provider=NAME)

    @staticmethod
    def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
        value = data.get(key)
        if not isinstance(value, kind):
            raise BadData(f"Plaid's {path} answer had no usable {key}.", code="BAD_SHAPE", provider=NAME)
        return value

    # -- Link and items ---------------------------------------------------------------------
    def create_link_token(self, user_id: str, *, access_token: str | None = None, webhook: str | None = None,
                          redirect_uri: str | None = None, products: Iterable[str] = ("transactions",),
                          country_codes: Iterable[str] = ("US",), language: str = "en",
                          client_name: str = "Open Finance dashboard") -> dict[str, Any]:
        """A link_token for Plaid Link; with access_token, for update mode (no products: the Item keeps its own).

        Not retried on timeouts or 5xx: each call mints a new token.
        """
        body: dict[str, Any] = {
            "client_name": client_name[:CLIENT_NAME_MAX], "language": language,
            "country_codes": list(country_codes), "user": {"client_user_id": user_id},
        }
        if access_token:
            body["access_token"] = access_token  # update mode: webhook and products are ignored, so not sent
        else:
            body["products"] = list(products)
            body["additional_consented_products"] = [p for p in CONSENTED_PRODUCTS if p not in body["products"]]
            if "transactions" in body["products"]:
                body["transactions"] = {"days_requested": DAYS_REQUESTED}
            if webhook:
                body["webhook"] = webhook
        if redirect_uri:
            body["redirect_uri"] = redirect_uri
        data = self._post("/link/token/create", body, idempotent=False)
        self._field(data, "link_token", str, "/link/token/create")
        return data

    def exchange_public_token(self, public_token: str) -> tuple[str, str]:
        """(access_token, item_id). Not retried on timeouts or 5xx: a public token works once."""
        data = self._post("/item/public_token/exchange", {"public_token": public_token}, idempotent=False)
        path = "/item/public_token/exchange"
        return self._field(data, "access_token", str, path), self._field(data, "item_id", str, path)

    def item_get(self, access_token: str) -> dict[str, Any]:
        """The /item/get answer: {"item": Item, "status": ItemStatus | None, ...}."""
        data = self._post("/item/get", {"access_token": access_token})
        self._field(data, "item", dict, "/item/get")
        return data

    def item_remove(self, access_token: str) -> None:
        self._post("/item/remove", {"access_token": access_token})

    def accounts_get(self, access_token: str) -> dict[str, Any]:
        """The cached /accounts/get answer (free): {"accounts": [AccountBase], "item": Item, ...}."""
        data = self._post("/accounts/get", {"access_token": access_token})
        self._field(data, "accounts", list, "/accounts/get")
        return data

    def balance_get(self, access_token: str, account_ids: Iterable[str] | None = None) -> dict[str, Any]:
        """Real-time balances (paid, 5/min per Item): same shape as accounts_get."""
        body: dict[str, Any] = {"access_token": access_token}
        if account_ids is not None:
            body["options"] = {"account_ids": list(account_ids)}
        data = self._post("/accounts/balance/get", body)
        self._field(data, "accounts", list, "/accounts/balance/get")
        return data

    def transactions_sync(self, access_token: str, cursor: str | None, count: int = SYNC_PAGE_SIZE
                          ) -> dict[str, Any]:
        """One /transactions/sync page. Use transactions_sync_all to walk a whole update."""
        body: dict[str, Any] = {"access_token": access_token, "count": max(1, min(SYNC_PAGE_SIZE, int(count))),
                                "options": {"include_original_description": True,
                                            "personal_finance_category_version": PFC_VERSION}}
        if cursor:
            body["cursor"] = cursor
        data = self._post("/transactions/sync", body)
        path = "/transactions/sync"
        for key in ("added", "modified", "removed"):
            self._field(data, key, list, path)
        self._field(data, "has_more", bool, path)
        self._field(data, "next_cursor", str, path)
        if not isinstance(data.get("accounts"), list):
            data["accounts"] = []
        return data

    # -- investments and liabilities --------------------------------------------------------
    def investments_holdings_get(self, access_token: str) -> dict[str, Any]:
        """{"accounts": [InvestmentAccount], "holdings": [Holding], "securities": [Security], ...}."""
        data = self._post("/investments/holdings/get", {"access_token": access_token})
        for key in ("accounts", "holdings", "securities"):
            self._field(data, key, list, "/investments/holdings/get")
        return data

    def investments_transactions_get(self, access_token: str, start: date, end: date, *, offset: int = 0,
                                     count: int = INVESTMENTS_PAGE_SIZE) -> dict[str, Any]:
        """One page of investment transactions dated `start`..`end` (inclusive), `offset` rows in."""
        path = "/investments/transactions/get"
        data = self._post(path, {"access_token": access_token, "start_date": start.isoformat(),
                                 "end_date": end.isoformat(), "options": {"count": count, "offset": offset}})
        for key in ("investment_transactions", "securities", "accounts"):
            self._field(data, key, list, path)
        total = data.get("total_investment_transactions")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise BadData(f"Plaid's {path} answer had no usable total_investment_transactions.", code="BAD_SHAPE",
                          provider=NAME)
        return data

    def investments_transactions_all(self, access_token: str, start: date, end: date
                                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(investment transactions, securities) dated `start`..`end`, every page read by offset."""
        rows: list[dict[str, Any]] = []
        securities: dict[str, dict[str, Any]] = {}
        for _page in range(MAX_INVESTMENT_PAGES):
            page = self.investments_transactions_get(access_token, start, end, offset=len(rows))
            rows += page["investment_transactions"]
            securities.update({str(s.get("security_id")): s for s in page["securities"] if isinstance(s, dict)})
            if not page["investment_transactions"] or len(rows) >= page["total_investment_transactions"]:
                return rows, list(securities.values())
        raise BadData("Plaid kept announcing more investment transactions than it sent.", code="BAD_PAGINATION",
                      provider=NAME)

    def liabilities_get(self, access_token: str) -> dict[str, Any]:
        """{"accounts": [AccountBase], "liabilities": {"credit", "student", "mortgage", "loan", ...}, ...}."""
        data = self._post("/liabilities/get", {"access_token": access_token})
        self._field(data, "liabilities", dict, "/liabilities/get")
        return data

    # -- institutions -----------------------------------------------------------------------
    def institution_get(self, institution_id: str) -> dict[str, Any]:
        data = self._post("/institutions/get_by_id", {
            "institution_id": institution_id, "country_codes": ["US"],
            "options": {"include_optional_metadata": True}})
        return self._field(data, "institution", dict, "/institutions/get_by_id")

    def institutions_search(self, query: str) -> list[dict[str, Any]]:
        data = self._post("/institutions/search", {
            "query": query, "country_codes": ["US"], "products": ["transactions"],
            "options": {"include_optional_metadata": True}})
        return self._field(data, "institutions", list, "/institutions/search")

    # -- webhooks ---------------------------------------------------------------------------
    def item_webhook_update(self, access_token: str, webhook: str) -> dict[str, Any]:
        """Point an Item's webhooks at `webhook`; Plaid confirms with WEBHOOK_UPDATE_ACKNOWLEDGED there."""
        data = self._post("/item/webhook/update", {"access_token": access_token, "webhook": webhook})
        return self._field(data, "item", dict, "/item/webhook/update")

    def webhook_verification_key_get(self, key_id: str) -> dict[str, Any]:
        """The JWK that signs webhooks with this key id (kid)."""
        data = self._post("/webhook_verification_key/get", {"key_id": key_id})
        return self._field(data, "key", dict, "/webhook_verification_key/get")

    # -- sandbox ----------------------------------------------------------------------------
    def sandbox_public_token_create(self, institution_id: str, *, username: str | None = None,
                                    password: str | None = None, products: Iterable[str] = ("transactions",),
                                    webhook: str | None = None) -> str:
        """A public token for a new sandbox Item, without Link (defaults: user_good / pass_good)."""
        self._require_sandbox("Creating an Item without Link")
        # Ask for as much history as Link connections get (the sandbox default is 90 days).
        options: dict[str, Any] = {"transactions": {"days_requested": DAYS_REQUESTED}}
        if webhook:
            options["webhook"] = webhook
        if username:
            options["override_username"] = username
        if password:
            options["override_password"] = password
        body: dict[str, Any] = {"institution_id": institution_id, "initial_products": list(products),
                                "options": options}
        data = self._post("/sandbox/public_token/create", body, idempotent=False)
        return self._field(data, "public_token", str, "/sandbox/public_token/create")

    def sandbox_reset_login(self, access_token: str) -> bool:
        """Force the sandbox Item into ITEM_LOGIN_REQUIRED."""
        self._require_sandbox("Resetting an Item's login")
        data = self._post("/sandbox/item/reset_login", {"access_token": access_token})
        return bool(data.get("reset_login"))


class SyncWalk(NamedTuple):
    """One complete /transactions/sync update (has_more ended false). `pages` are the raw pages, in order."""

    added: list[dict[str, Any]]
    modified: list[dict[str, Any]]
    removed: list[str]
    next_cursor: str | None
    pages: list[dict[str, Any]]


def removed_ids(page: dict[str, Any]) -> list[str]:
    """The transaction ids a /transactions/sync page lists in `removed`; BadData for an entry without one."""
    ids = []
    for entry in page["removed"]:
        tid = entry.get("transaction_id") if isinstance(entry, dict) else None
        if not isinstance(tid, str) or not tid:
            raise BadData("Plaid listed a removed transaction without its transaction_id.", code="BAD_TRANSACTION",
                          provider=NAME)
        ids.append(tid)
    return ids


def transactions_sync_all(client: PlaidClient, access_token: str, cursor: str | None, *,
                          count: int = SYNC_PAGE_SIZE, max_restarts: int = MAX_SYNC_RESTARTS) -> SyncWalk:
    """Every change since `cursor`, walking pages while has_more (plaid.md §4.3).

    On TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION everything fetched in this walk is discarded and the
    walk restarts from the pre-loop cursor (at most `max_restarts` times, then TransientError). Any other
    failure propagates with nothing returned, so the stored cursor never moves past unapplied changes.
    An empty next_cursor (transactions not ready yet) is never returned as progress: the old cursor is.
    """
    original = cursor or None
    restarts = 0
    while True:
        pages: list[dict[str, Any]] = []
        current = original
        try:
            while True:
                page = client.transactions_sync(access_token, current, count)
                pages.append(page)
                next_cursor = page["next_cursor"] or None
                if not page["has_more"]:
                    break
                if next_cursor is None or next_cursor == current:
                    raise BadData("Plaid said more transactions follow but gave no new cursor.", code="BAD_CURSOR",
                                  provider=NAME)
                current = next_cursor
        except SyncMutationDuringPagination as exc:
            restarts += 1
            if restarts > max_restarts:
                raise TransientError(_("Plaid's transactions kept changing while they were being read. Nothing was "
                                       "changed; the next sync will try again."), code=MUTATION_CODE, provider=NAME,
                                     status=exc.status) from exc
            continue
        return SyncWalk(
            added=[t for p in pages for t in p["added"]],
            modified=[t for p in pages for t in p["modified"]],
            removed=[tid for p in pages for tid in removed_ids(p)],
            next_cursor=(pages[-1]["next_cursor"] or None) or original,
            pages=pages,
        )
