"""Offline emulator of the Plaid API (sandbox.plaid.com), plugged into httpx as a transport or served on loopback.

It follows reference/plaid.md and the official OpenAPI schema: every endpoint is a POST with a JSON body, answers carry
`request_id` and echo `Plaid-Version`, and every error is a `PlaidError` with Plaid's HTTP status. The sandbox
institutions (First Platypus Bank `ins_109508` … Houndstooth Bank `ins_109512`) and test users drive the scenarios:
`user_good`/`pass_good` (checking, savings, CD, credit card, money market, IRA, 401k, student loan, mortgage),
`user_transactions_dynamic` (checking, savings, card; frequent pending→posted churn; `/sandbox/transactions/create`),
`user_custom` with a JSON password (`override_accounts`, `force_error`), and `error_<CODE>` passwords for `user_good`.

Data comes from the deterministic US ledger in `finance.sandbox.ledger`. What a client sees is the item's data as of its
last refresh: items refresh every `REFRESH_EVERY` (6 h) of emulator time from their creation (and right after an
update-mode repair or `/sandbox/transactions/create`), never while they need a login.

- Pending → posted: card and debit purchases show first as pending; when they post, `/transactions/sync` lists the
  pending id in `removed` and a posted row with a NEW id and `pending_transaction_id` in `added` (restaurants and some
  rides post with a tip). Some posted purchases are enriched a day or two later (merchant and category filled in):
  they come back in `modified`.
- Cursors encode the refresh the client has seen (and, mid-pagination, the refresh being paged and the offset);
  deltas are the exact difference between the two refreshes, ordered by the time each change happened.
  A page request whose refresh is no longer current (and whose data changed) fails with
  TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION; restart from the cursor that began the walk.

Faults (`emulator.faults.add(kind, path=..., after=..., times=...)`): "rate_limit" (429), "server_error" (500),
"unavailable" (503), "timeout" (httpx.ReadTimeout), "malformed_json" (200 with a truncated body, after handling),
"institution_down", "institution_not_responding", "product_not_ready" (400 with that code) and
"mutation_during_pagination" (the next `/transactions/sync` page request that continues a walk fails).
Testers' hooks: `advance`, `list_items`, `complete_link` (what Plaid Link does when a user finishes it), `reset_login`,
`sent_webhooks` (every webhook recorded for an item), `request_log`.

Webhooks go to the item's webhook URL: ITEM events (ERROR on /sandbox/item/reset_login or a login expiry,
WEBHOOK_UPDATE_ACKNOWLEDGED, whatever /sandbox/item/fire_webhook asks for) and TRANSACTIONS SYNC_UPDATES_AVAILABLE
when a refresh brings changes (once /transactions/sync has been called on the item). They are queued in the state
file and delivered by `deliver_webhooks()` over loopback, each signed as Plaid signs them: a `Plaid-Verification`
ES256 JWT (kid of the key /webhook_verification_key/get publishes, `iat`, `request_body_sha256` of the exact bytes
sent), retried 30 s after a failure and four times longer after each further one, for up to a day.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import time as wall_time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from finance.sandbox.common import Clock, EmulatorBase, Fault, Faults
from finance.sandbox.ledger import (
    NEW_YORK,
    US_ACCOUNT_KINDS,
    US_CARD_LAST4,
    AccountSpec,
    Entry,
    Ledger,
    ScriptedProfile,
    ScriptedRow,
    UsMerchant,
    cached_ledger,
    pfc_primary,
    stable_uuid,
    us_ledger,
)

SYNC_PAGE_SIZE_CAP = 500
"""The most updates one /transactions/sync page carries, whatever `count` asks (tests monkeypatch it small)."""
SYNC_DEFAULT_COUNT = 100
SYNC_MAX_COUNT = 500
API_VERSION = "2020-09-14"
LINK_TOKEN_TTL = timedelta(hours=4)
UPDATE_LINK_TOKEN_TTL = timedelta(minutes=30)
PUBLIC_TOKEN_TTL = timedelta(minutes=30)
REFRESH_EVERY = timedelta(hours=6)
"""How often a healthy item's data is refreshed from the institution (Plaid: one to four times a day)."""
DEFAULT_DAYS_REQUESTED = 90
TRANSACTIONS_READY_AFTER = timedelta(0)
"""How long after Transactions is initialized /transactions/sync still answers NOT_READY with an empty cursor."""
LOGIN_EXPIRES_AFTER: timedelta | None = None
"""Plaid's sandbox items fall into ITEM_LOGIN_REQUIRED 30 days after their last login; None (default) turns that off."""
MAX_SANDBOX_TRANSACTIONS = 10
SANDBOX_TRANSACTIONS_MAX_AGE = timedelta(days=14)
WEBHOOK_LOG_LIMIT = 100
RATE_LIMITS: dict[str, tuple[int | None, int | None, str]] = {
    "/accounts/get": (15, 15_000, "ACCOUNTS_LIMIT"),
    "/accounts/balance/get": (5, 1_200, "ACCOUNTS_BALANCE_GET_LIMIT"),
    "/item/get": (15, 5_000, "ITEM_GET_LIMIT"),
    "/item/remove": (30, 2_000, "RATE_LIMIT"),
    "/transactions/sync": (50, 2_500, "TRANSACTIONS_SYNC_LIMIT"),
    "/institutions/get_by_id": (None, 400, "INSTITUTIONS_GET_BY_ID_LIMIT"),
}
"""Requests per minute (per item, per client) and the error code past them (reference/plaid.md §6.3, Production)."""

_ACCESS_TOKEN = re.compile(r"access-sandbox-[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_CURSOR_VERSION = "p1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_CURRENCIES = frozenset({"USD", "CAD", "EUR", "GBP", "JPY", "MXN", "BRL", "CHF", "AUD", "CNY", "INR", "SEK", "NOK",
                             "DKK", "PLN", "NZD", "HKD", "SGD", "KRW", "ZAR"})
_WEBHOOK_KEY_CREATED = 1_704_067_200
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --------------------------------------------------------------------------------------------------------------------
# Catalog: products, institutions, sandbox users, errors
# --------------------------------------------------------------------------------------------------------------------

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
LANGUAGES = frozenset({"da", "nl", "en", "et", "fr", "de", "hi", "it", "lv", "lt", "no", "pl", "pt", "ro", "es", "sv",
                       "vi"})
_FULL_PRODUCTS = ["assets", "auth", "balance", "identity", "identity_match", "income_verification", "investments",
                  "liabilities", "recurring_transactions", "signal", "statements", "transactions", "transfer"]
_BANK_PRODUCTS = ["assets", "auth", "balance", "identity", "investments", "liabilities", "transactions"]


def _institution(institution_id: str, name: str, products: list[str], routing: list[str], color: str,
                 dtc: list[str] | None = None) -> dict[str, Any]:
    return {"institution_id": institution_id, "name": name, "products": products, "country_codes": ["US"],
            "routing_numbers": routing, "dtc_numbers": dtc or [], "oauth": False, "url": "https://plaid.com",
            "primary_color": color, "logo": None}


INSTITUTIONS: tuple[dict[str, Any], ...] = (
    _institution("ins_109508", "First Platypus Bank", _FULL_PRODUCTS, ["011401533", "021000021"], "#1f1f1f"),
    _institution("ins_109509", "First Gingham Credit Union", _BANK_PRODUCTS, ["231372691"], "#b5121b"),
    _institution("ins_109510", "Tattersall Federal Credit Union", _BANK_PRODUCTS, ["122105155"], "#2e6b30"),
    _institution("ins_109511", "Tartan Bank", ["auth", "balance", "identity", "liabilities", "transactions"],
                 ["063100277"], "#5b2c83"),
    _institution("ins_109512", "Houndstooth Bank", ["auth", "balance", "identity", "transactions"],
                 ["011000138", "011200365", "011400495"], "#004966", ["2236", "0955", "1367"]),
)
"""Plaid's non-OAuth sandbox institutions (all US)."""

LAYOUTS: dict[str, tuple[str, ...]] = {
    "full": US_ACCOUNT_KINDS,
    "dynamic": ("checking", "savings", "card"),
}
"""The accounts of each sandbox user's household: `user_good` → full, `user_transactions_dynamic` → dynamic."""

_KIND_META: dict[str, tuple[str, str, str, str | None, str, float | None]] = {
    "checking": ("depository", "checking", "Plaid Checking", "Plaid Gold Standard 0% Interest Checking", "0000", None),
    "savings": ("depository", "savings", "Plaid Saving", "Plaid Silver Standard 0.1% Interest Saving", "1111", None),
    "cd": ("depository", "cd", "Plaid CD", "Plaid Bronze Standard 0.2% Interest CD", "2222", None),
    "card": ("credit", "credit card", "Plaid Credit Card", "Plaid Diamond 12.5% APR Interest Credit Card",
             US_CARD_LAST4, 10_000.0),
    "money_market": ("depository", "money market", "Plaid Money Market",
                     "Plaid Platinum Standard 1.85% Interest Money Market", "4444", None),
    "ira": ("investment", "ira", "Plaid IRA", None, "5555", None),
    "401k": ("investment", "401k", "Plaid 401k", None, "6666", None),
    "student": ("loan", "student", "Plaid Student Loan", None, "7777", None),
    "mortgage": ("loan", "mortgage", "Plaid Mortgage", None, "8888", None),
}
"""(type, subtype, name, official name, mask, credit limit) of each household account kind."""

_CUSTOM_TYPES = {"depository": "checking", "credit": "credit card", "loan": "student", "investment": "brokerage",
                 "other": "other", "payroll": "payroll"}
"""`override_accounts[].type` values a custom user may use, with the subtype each defaults to."""

FORCEABLE_ERRORS = frozenset({
    "INSTITUTION_DOWN", "INSTITUTION_NOT_RESPONDING", "INSTITUTION_NO_LONGER_SUPPORTED", "INVALID_CREDENTIALS",
    "INVALID_MFA", "ITEM_LOCKED", "ITEM_LOGIN_REQUIRED", "ITEM_NOT_SUPPORTED", "INVALID_LINK_TOKEN",
    "MFA_NOT_SUPPORTED", "NO_ACCOUNTS", "PLAID_ERROR", "USER_INPUT_TIMEOUT", "USER_SETUP_REQUIRED",
})
"""Codes a custom user's `force_error` (or a `user_good` password `error_<CODE>`) makes item creation fail with;
ITEM_LOGIN_REQUIRED instead creates the item already needing a login."""

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

_WEBHOOK_CODES = {
    "SYNC_UPDATES_AVAILABLE": "TRANSACTIONS", "DEFAULT_UPDATE": "TRANSACTIONS",
    "RECURRING_TRANSACTIONS_UPDATE": "TRANSACTIONS", "NEW_ACCOUNTS_AVAILABLE": "ITEM", "LOGIN_REPAIRED": "ITEM",
    "PENDING_DISCONNECT": "ITEM", "USER_PERMISSION_REVOKED": "ITEM", "USER_ACCOUNT_REVOKED": "ITEM",
    "SMS_MICRODEPOSITS_VERIFICATION": "AUTH", "AUTHORIZATION_GRANTED": "AUTH", "PRODUCT_READY": "ASSETS",
    "ERROR": "ASSETS",
}
"""Every webhook code /sandbox/item/fire_webhook accepts, with the webhook type it belongs to by default."""
_WEBHOOK_PRODUCTS = {"TRANSACTIONS": "transactions", "AUTH": "auth", "ASSETS": "assets", "HOLDINGS": "investments",
                     "INVESTMENTS_TRANSACTIONS": "investments", "LIABILITIES": "liabilities"}

_CLASSIFIER = (
    ("payroll", "INCOME_WAGES"), ("salary", "INCOME_WAGES"), ("interest", "INCOME_INTEREST_EARNED"),
    ("rent", "RENT_AND_UTILITIES_RENT"), ("grocer", "FOOD_AND_DRINK_GROCERIES"), ("coffee", "FOOD_AND_DRINK_COFFEE"),
    ("restaurant", "FOOD_AND_DRINK_RESTAURANT"), ("uber", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES"),
    ("lyft", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES"), ("gas", "TRANSPORTATION_GAS"),
    ("amazon", "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES"), ("netflix", "ENTERTAINMENT_TV_AND_MOVIES"),
    ("atm", "TRANSFER_OUT_WITHDRAWAL"), ("credit card", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT"),
)
"""Keyword → detailed category for rows whose description is all Plaid knows (custom users, sandbox-created rows)."""

_LINK_FIELDS = frozenset({
    "client_name", "language", "country_codes", "user", "user_id", "products", "required_if_supported_products",
    "optional_products", "additional_consented_products", "webhook", "access_token", "access_tokens",
    "link_customization_name", "appearance_mode", "redirect_uri", "android_package_name", "institution_data",
    "card_switch", "account_filters", "eu_config", "institution_id", "payment_configuration", "payment_initiation",
    "employment", "income_verification", "base_report", "credit_partner_insights", "cra_options",
    "consumer_report_permissible_purpose", "auth", "transfer", "update", "identity_verification", "statements",
    "third_party_user_token", "investments", "investments_auth", "hosted_link", "transactions", "cashflow_report",
    "cra_enabled", "identity", "financekit_supported", "enable_multi_item_link", "user_token",
})


# --------------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------------

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


def _micros(moment: datetime | None) -> str:
    return "" if moment is None else str((moment - _EPOCH) // timedelta(microseconds=1))


def _from_micros(text: str) -> datetime | None:
    return None if text == "" else _EPOCH + timedelta(microseconds=int(text))


def _money(value: float) -> float:
    return round(value, 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def webhook_signing_key(seed: int) -> ec.EllipticCurvePrivateKey:
    """The emulator's ES256 (P-256) webhook signing key: derived from the seed, so every instance agrees on it."""
    secret = int.from_bytes(hashlib.sha256(f"plaid-emulator/webhook-key/{seed}".encode()).digest(), "big")
    return ec.derive_private_key(secret % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _classify(description: str, amount: float) -> tuple[str, str]:
    """(detailed category, confidence) for a row known only by its description and Plaid-signed amount."""
    lowered = description.lower()
    for keyword, category in _CLASSIFIER:
        if keyword in lowered:
            return category, "MEDIUM"
    return ("TRANSFER_IN_DEPOSIT", "LOW") if amount < 0 else ("GENERAL_MERCHANDISE_OTHER_GENERAL_MERCHANDISE", "LOW")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


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


@dataclass(frozen=True, slots=True)
class _AccountMeta:
    """What Plaid says about one account besides its balance."""

    account_id: str
    type: str
    subtype: str | None
    name: str
    official_name: str | None
    mask: str | None
    limit: float | None
    currency: str = "USD"
    force_available: float | None = None

    @property
    def syncs(self) -> bool:
        """Whether /transactions/sync carries this account's transactions (depository, credit, student loans)."""
        return self.type in ("depository", "credit") or (self.type == "loan" and self.subtype == "student")

    @property
    def owed(self) -> bool:
        return self.type in ("credit", "loan")


@dataclass(slots=True)
class _Row:
    """One transaction as of some refresh: the ledger entry, its state, and when it got its current content."""

    entry: Entry
    pending: bool
    account: _AccountMeta
    enriched: bool
    changed_at: datetime


@dataclass(slots=True)
class _View:
    """An item's data as of one moment: the rows /transactions/sync knows and each account's (posted, pending) sums."""

    rows: dict[str, _Row]
    balances: list[tuple[float, float]]
    fingerprints: dict[str | None, str] = field(default_factory=dict)

    def fingerprint(self, account_id: str | None) -> str:
        """A digest of the rows (of one account, or all): equal digests mean nothing to sync changed."""
        if account_id not in self.fingerprints:
            digest = hashlib.sha256()
            for tx_id in sorted(self.rows):
                row = self.rows[tx_id]
                if account_id is None or row.account.account_id == account_id:
                    digest.update(f"{tx_id}{'+' if row.enriched else '-'}".encode())
            self.fingerprints[account_id] = digest.hexdigest()[:16]
        return self.fingerprints[account_id]


# --------------------------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------------------------

class PlaidEmulator(EmulatorBase):
    """The Plaid API in-process: `handle` is the API, `transport()`/`serve()` plug it in.

    seed: drives every generated id and ledger. state_path: a JSON file that keeps items, tokens and the clock across
    processes (reloaded whenever another process rewrites it; generated transactions are never stored).
    client_id/secret: when set, requests must carry exactly these; otherwise any non-empty pair is accepted.
    """

    WEBHOOK_RETRY_DELAYS = (30.0, 120.0, 480.0, 1920.0, 7680.0, 30720.0)

    def __init__(self, *, clock: Clock | None = None, seed: int = 7, state_path: Path | None = None,
                 client_id: str | None = None, secret: str | None = None, webhook_url: str | None = None) -> None:
        self._clock = clock or Clock()
        self.faults = Faults()
        self.seed = seed
        self.state_path = Path(state_path) if state_path is not None else None
        self.request_log: list[tuple[str, str]] = []
        self._client_id = client_id
        self._secret = secret
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Any]] = {}
        self._removed: dict[str, dict[str, str]] = {}
        self._link_tokens: dict[str, dict[str, Any]] = {}
        self._public_tokens: dict[str, dict[str, Any]] = {}
        self._counters: dict[str, int] = {"item": 0, "link": 0, "public": 0}
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}
        self._views: OrderedDict[tuple[object, ...], _View] = OrderedDict()
        self._changes: OrderedDict[tuple[object, ...], list[tuple[str, str, _Row]]] = OrderedDict()
        self._mutation_pending = False
        self.default_webhook = webhook_url  # for Items created without one (sandbox serve --webhook-url)
        self._signing_key = webhook_signing_key(seed)
        numbers = self._signing_key.public_key().public_numbers()
        self._jwk = {"alg": "ES256", "kty": "EC", "crv": "P-256", "use": "sig",
                     "kid": stable_uuid(seed, "webhook-verification-key"),
                     "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big")),
                     "created_at": _WEBHOOK_KEY_CREATED, "expired_at": None}
        self._init_webhooks()
        self._routes = self._build_routes()
        self._open_state()

    # -- testers' hooks ----------------------------------------------------------------------------------------------

    def reset_login(self, item_id: str) -> None:
        """What /sandbox/item/reset_login does, by item id: ITEM_LOGIN_REQUIRED and an ITEM ERROR webhook."""
        with self._lock:
            self._reload_if_changed()
            item = self._items.get(item_id)
            if item is None:
                raise KeyError(item_id)
            if self._item_error(item) is None:
                now = self._clock.now()
                item["frozen"].append([now.isoformat(), None, "ITEM_LOGIN_REQUIRED"])
                self._record_webhook(item, "ITEM", "ERROR", now)
                self._save()

    def advance(self, *, days: float = 0, hours: float = 0) -> None:
        """Move the emulator clock forward (refreshes and login expiries that fall due happen) and persist it."""
        with self._lock:
            self._reload_if_changed()
            self._clock.advance(days=days, hours=hours)
            self._settle(self._clock.now())
            self._save()

    def list_items(self) -> list[dict[str, Any]]:
        """Every live item, as /item/get's `item` would show it (Plaid has no list endpoint)."""
        with self._lock:
            self._reload_if_changed()
            now = self._clock.now()
            if self._settle(now):
                self._save()
            return [self._item_json(item, consent=True) for item in self._items.values()]

    def sent_webhooks(self, item_id: str) -> list[dict[str, Any]]:
        """The webhooks recorded for an item (oldest first), each `{"sent_at": ..., "url": ..., "payload": {...}}`;
        delivering them is left to the caller."""
        with self._lock:
            self._reload_if_changed()
            item = self._items.get(item_id)
            if item is None:
                raise KeyError(item_id)
            return json.loads(json.dumps(item["webhooks"]))

    def complete_link(self, link_token: str, *, institution_id: str = "ins_109508", username: str = "user_good",
                      password: str = "pass_good") -> str:
        """What Plaid Link does when a user finishes it: the `public_token` its onSuccess receives.

        A normal link token creates an item at `institution_id` with the token's products and webhook; an update-mode
        one (created with `access_token`) checks the credentials against the item's user and repairs the item (no
        more ITEM_LOGIN_REQUIRED; its data refreshes now). Raises PlaidApiError (INVALID_LINK_TOKEN,
        INVALID_CREDENTIALS, INVALID_INSTITUTION, ...) as Link's onExit would report it.
        """
        with self._lock:
            self._reload_if_changed()
            now = self._clock.now()
            self._settle(now)
            record = self._link_tokens.get(link_token)
            if record is None or _parse(record["expires_at"]) <= now:
                raise PlaidApiError("INVALID_LINK_TOKEN", "link token is invalid or has expired")
            if record["item_id"] is not None:
                item = self._items.get(record["item_id"])
                if item is None:
                    raise PlaidApiError("ITEM_NOT_FOUND")
                self._check_login(item, username, password)
                self._repair(item, now)
            else:
                item = self._create_item(now, institution_id=institution_id, products=record["products"],
                                         username=username, password=password, webhook=record["webhook"],
                                         days_requested=record["days_requested"])
            token = self._issue_public_token(item, now)
            self._save()
            return token

    # -- the API -----------------------------------------------------------------------------------------------------

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

    def _build_routes(self) -> dict[str, _Route]:
        table: list[tuple[str, Callable[[_Call], dict[str, Any]], set[str], tuple[str, ...]]] = [
            ("/link/token/create", self._link_token_create, set(_LINK_FIELDS),
             ("client_name", "language", "country_codes")),
            ("/item/public_token/exchange", self._public_token_exchange, {"public_token"}, ("public_token",)),
            ("/item/get", self._item_get, {"access_token"}, ("access_token",)),
            ("/item/remove", self._item_remove, {"access_token", "reason_code", "reason_note"}, ("access_token",)),
            ("/item/webhook/update", self._item_webhook_update, {"access_token", "webhook"}, ("access_token",)),
            ("/accounts/get", self._accounts_get, {"access_token", "options"}, ("access_token",)),
            ("/accounts/balance/get", self._accounts_balance_get, {"access_token", "options"}, ("access_token",)),
            ("/transactions/sync", self._transactions_sync, {"access_token", "cursor", "count", "options"},
             ("access_token",)),
            ("/institutions/get_by_id", self._institutions_get_by_id, {"institution_id", "country_codes", "options"},
             ("institution_id", "country_codes")),
            ("/institutions/search", self._institutions_search, {"query", "products", "country_codes", "options"},
             ("query", "country_codes")),
            ("/webhook_verification_key/get", self._webhook_verification_key_get, {"key_id"}, ("key_id",)),
            ("/sandbox/public_token/create", self._sandbox_public_token_create,
             {"institution_id", "initial_products", "options", "user_token", "user_id"},
             ("institution_id", "initial_products")),
            ("/sandbox/item/fire_webhook", self._sandbox_fire_webhook, {"access_token", "webhook_type", "webhook_code"},
             ("access_token", "webhook_code")),
            ("/sandbox/item/reset_login", self._sandbox_reset_login, {"access_token"}, ("access_token",)),
            ("/sandbox/transactions/create", self._sandbox_transactions_create, {"access_token", "transactions"},
             ("access_token", "transactions")),
        ]
        return {path: _Route(handler, frozenset(fields | {"client_id", "secret"}), required)
                for path, handler, fields, required in table}

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

    # -- items and tokens --------------------------------------------------------------------------------------------

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
    def _institution(institution_id: object) -> dict[str, Any]:
        for institution in INSTITUTIONS:
            if institution["institution_id"] == institution_id:
                return institution
        raise PlaidApiError("INVALID_INSTITUTION")

    def _resolve_user(self, username: str, password: str) -> tuple[str, list[dict[str, Any]] | None, str | None]:
        """(layout, custom accounts, forced error) for sandbox credentials; raises for wrong ones."""
        forced: str | None = None
        custom: list[dict[str, Any]] | None = None
        layout = "full"
        if username == "user_good":
            if password.startswith("error_") and password[6:] in FORCEABLE_ERRORS:
                forced = password[6:]
            elif password != "pass_good":
                raise PlaidApiError("INVALID_CREDENTIALS")
        elif username == "user_transactions_dynamic":
            if not password.strip():
                raise PlaidApiError("INVALID_CREDENTIALS")
            layout = "dynamic"
        elif username == "user_custom":
            try:
                config = json.loads(password)
            except ValueError as exc:
                raise PlaidApiError("INVALID_CREDENTIALS") from exc
            if not isinstance(config, dict):
                raise PlaidApiError("INVALID_CREDENTIALS")
            forced = config.get("force_error")
            if forced is not None and forced not in FORCEABLE_ERRORS:
                raise _invalid(f"force_error must be one of {', '.join(sorted(FORCEABLE_ERRORS))}")
            if config.get("override_accounts") is not None:
                custom, layout = _custom_accounts(config["override_accounts"]), "custom"
        else:
            raise PlaidApiError("INVALID_CREDENTIALS")
        if forced is not None and forced != "ITEM_LOGIN_REQUIRED":
            raise PlaidApiError("INTERNAL_SERVER_ERROR" if forced == "PLAID_ERROR" else forced)
        return layout, custom, forced

    def _create_item(self, now: datetime, *, institution_id: object, products: list[str], username: str,
                     password: str, webhook: str | None, days_requested: int,
                     window: tuple[str | None, str | None] = (None, None)) -> dict[str, Any]:
        institution = self._institution(institution_id)
        unsupported = [p for p in products if p not in institution["products"]]
        if unsupported:
            raise PlaidApiError("PRODUCTS_NOT_SUPPORTED", f"{institution['name']} does not support "
                                f"{', '.join(unsupported)}")
        layout, custom, forced = self._resolve_user(username, password)
        self._counters["item"] += 1
        item_id = plaid_id(self.seed, "item", self._counters["item"], now.isoformat())
        item: dict[str, Any] = {
            "item_id": item_id,
            "access_token": f"access-sandbox-{stable_uuid(self.seed, 'access', item_id)}",
            "institution_id": institution["institution_id"], "user": username, "layout": layout, "custom": custom,
            "products": list(products), "webhook": webhook or self.default_webhook or "",
            "created_at": now.isoformat(),
            "auth_at": now.isoformat(),
            "transactions_since": now.isoformat() if "transactions" in products else None,
            "days_requested": days_requested, "start_date": window[0], "end_date": window[1],
            "frozen": [[now.isoformat(), None, forced]] if forced else [], "refreshes": [], "created_rows": [],
            "webhooks": [],
        }
        self._items[item_id] = item
        return item

    def _check_login(self, item: dict[str, Any], username: str, password: str) -> None:
        """INVALID_CREDENTIALS unless these are the item's sandbox user's credentials (update mode)."""
        if username != item["user"]:
            raise PlaidApiError("INVALID_CREDENTIALS")
        if username == "user_good" and password != "pass_good":
            raise PlaidApiError("INVALID_CREDENTIALS")
        if not password.strip():
            raise PlaidApiError("INVALID_CREDENTIALS")

    def _repair(self, item: dict[str, Any], now: datetime) -> None:
        """A successful login: close the ITEM_LOGIN_REQUIRED period and refresh the data now."""
        if item["frozen"] and item["frozen"][-1][1] is None:
            item["frozen"][-1][1] = now.isoformat()
            item["refreshes"].append(now.isoformat())
        item["auth_at"] = now.isoformat()

    def _issue_public_token(self, item: dict[str, Any], now: datetime) -> str:
        self._counters["public"] += 1
        token = f"public-sandbox-{stable_uuid(self.seed, 'public', self._counters['public'], now.isoformat())}"
        self._public_tokens[token] = {"item_id": item["item_id"], "expires_at": (now + PUBLIC_TOKEN_TTL).isoformat(),
                                      "used": False}
        return token

    @staticmethod
    def _item_error(item: dict[str, Any]) -> str | None:
        """The error code an item is stuck in (ITEM_LOGIN_REQUIRED), or None when healthy."""
        if item["frozen"] and item["frozen"][-1][1] is None:
            return str(item["frozen"][-1][2])
        return None

    def _settle(self, now: datetime) -> bool:
        """Apply what fell due by `now`: the sandbox login expiry (when enabled), and SYNC_UPDATES_AVAILABLE for items
        whose data refreshed with changes since they were last told. True when anything changed."""
        changed = False
        for item in self._items.values():
            if LOGIN_EXPIRES_AFTER is not None:
                expires = _parse(item["auth_at"]) + LOGIN_EXPIRES_AFTER
                if self._item_error(item) is None and expires <= now:
                    item["frozen"].append([expires.isoformat(), None, "ITEM_LOGIN_REQUIRED"])
                    self._record_webhook(item, "ITEM", "ERROR", expires)
                    changed = True
            changed |= self._notify_updates(item, now)
        return changed

    def _notify_updates(self, item: dict[str, Any], now: datetime) -> bool:
        """SYNC_UPDATES_AVAILABLE when the item's latest refresh changed its transactions. Plaid sends it only to
        items whose /transactions/sync was called once; `notified_refresh` is the refresh last announced."""
        if not item["webhook"] or not item.get("notified_refresh") or self._item_error(item) is not None:
            return False
        seen = _parse(item["notified_refresh"])
        current = self._snapshot(item, now)
        if current <= seen:
            return False
        item["notified_refresh"] = current.isoformat()
        if self._delta(item, seen, current, None):
            self._record_webhook(item, "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE", current)
        return True

    def _tick(self) -> bool:
        return self._settle(self._clock.now())

    def _sign_webhook(self, body: bytes) -> dict[str, str]:
        """Plaid-Verification: an ES256 JWT over the body's SHA-256, signed now with the published key."""
        claims = {"iat": int(wall_time()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
        token = jwt.encode(claims, self._signing_key, algorithm="ES256", headers={"kid": self._jwk["kid"]})
        return {"Plaid-Verification": token}

    def _snapshot(self, item: dict[str, Any], at: datetime) -> datetime:
        """The item's last refresh at or before `at`: every REFRESH_EVERY from creation except while it needed a
        login, plus the extra refreshes (repairs, sandbox-created rows)."""
        created = _parse(item["created_at"])
        frozen = [(_parse(start), _parse(end) if end else None) for start, end, _ in item["frozen"]]
        grid = created + ((at - created) // REFRESH_EVERY) * REFRESH_EVERY
        while True:
            block = next((start for start, end in frozen if start < grid and (end is None or grid < end)), None)
            if block is None:
                break
            grid = created + ((block - created) // REFRESH_EVERY) * REFRESH_EVERY
        extras = [moment for moment in map(_parse, item["refreshes"]) if moment <= at]
        return max([grid, *extras])

    def _record_webhook(self, item: dict[str, Any], webhook_type: str, code: str, now: datetime) -> None:
        """Remember a webhook Plaid would send now (only items with a webhook URL get any)."""
        if not item["webhook"]:
            return
        payload: dict[str, Any] = {"webhook_type": webhook_type, "webhook_code": code, "item_id": item["item_id"]}
        if code == "SYNC_UPDATES_AVAILABLE":
            payload.update(initial_update_complete=True, historical_update_complete=True)
        elif code == "DEFAULT_UPDATE":
            payload.update(new_transactions=0, error=None)
        elif code == "ERROR" and webhook_type == "ITEM":
            payload["error"] = PlaidApiError(self._item_error(item) or "ITEM_LOGIN_REQUIRED").body()
        elif code == "USER_PERMISSION_REVOKED":
            payload["error"] = PlaidApiError("USER_PERMISSION_REVOKED").body()
        elif code == "USER_ACCOUNT_REVOKED":
            payload["account_id"] = self._layout(item)[0].account_id
        elif code == "PENDING_DISCONNECT":
            payload.update(reason="INSTITUTION_TOKEN_EXPIRATION", disconnect_time=_wire_time(now + timedelta(days=7)))
        elif code == "WEBHOOK_UPDATE_ACKNOWLEDGED":
            payload.update(new_webhook_url=item["webhook"], error=None)
        elif code == "NEW_ACCOUNTS_AVAILABLE":
            payload["error"] = None
        elif code == "RECURRING_TRANSACTIONS_UPDATE":
            payload["account_ids"] = [meta.account_id for meta in self._layout(item) if meta.syncs]
        payload["environment"] = "sandbox"
        item["webhooks"].append({"sent_at": _wire_time(now), "url": item["webhook"], "payload": payload})
        del item["webhooks"][:-WEBHOOK_LOG_LIMIT]
        self._enqueue_webhook(item["webhook"], payload)

    # -- data: layout, ledger, views ---------------------------------------------------------------------------------

    def _layout(self, item: dict[str, Any]) -> list[_AccountMeta]:
        item_id = item["item_id"]
        if item["layout"] == "custom":
            return [_AccountMeta(plaid_id(self.seed, item_id, "account", i), a["type"], a["subtype"], a["name"],
                                 a["official_name"], a["mask"], a["limit"], a["currency"], a["force_available"])
                    for i, a in enumerate(item["custom"])]
        metas = []
        for i, kind in enumerate(LAYOUTS[item["layout"]]):
            kind_type, subtype, name, official, mask, limit = _KIND_META[kind]
            metas.append(_AccountMeta(plaid_id(self.seed, item_id, "account", i), kind_type, subtype, name, official,
                                      mask, limit))
        return metas

    def _ledger(self, item: dict[str, Any]) -> Ledger:
        created = _parse(item["created_at"])
        if item["layout"] != "custom":
            return us_ledger(self.seed, item["item_id"], created, accounts=LAYOUTS[item["layout"]],
                             dynamic=item["layout"] == "dynamic")
        accounts = item["custom"]
        key = ("plaid-custom", self.seed, item["item_id"], item["created_at"], json.dumps(accounts, sort_keys=True))
        return cached_ledger(key, lambda: Ledger(f"custom/{self.seed}/{item['item_id']}",
                                                 _custom_profile(accounts, created)))

    def _created_entries(self, item: dict[str, Any]) -> list[Entry]:
        """The rows /sandbox/transactions/create added, as ledger entries on the first account (checking)."""
        entries = []
        for n, row in enumerate(item["created_rows"]):
            transacted, posted = date.fromisoformat(row["date_transacted"]), date.fromisoformat(row["date_posted"])
            when = datetime.combine(transacted, time(0), NEW_YORK)
            days = (posted - transacted).days
            category, _ = _classify(row["description"], row["amount"])
            entry = Entry(0, when, -row["amount"], row["description"], category, "sandbox",
                          description_raw=row["description"], method="other",
                          lag=_parse(row["created_at"]) - when, pending_for=timedelta(days=days) if days else None)
            entry.id = stable_uuid(item["item_id"], "created", n)
            entry.pending_id = stable_uuid(item["item_id"], "created", n, "pending") if days else None
            entries.append(entry)
        return entries

    def _window(self, item: dict[str, Any]) -> tuple[date, date | None]:
        """The dates of the history Transactions covers (days_requested back from initialization, or the sandbox
        start/end dates)."""
        since = _parse(item["transactions_since"]).astimezone(NEW_YORK).date()
        start = since - timedelta(days=item["days_requested"])
        if item["start_date"]:
            start = date.fromisoformat(item["start_date"])
        return start, date.fromisoformat(item["end_date"]) if item["end_date"] else None

    def _enriched_at(self, item: dict[str, Any], entry: Entry) -> datetime | None:
        """When a posted purchase gets its merchant and category filled in (a `modified` update), if it ever does."""
        if not isinstance(entry.merchant, UsMerchant) or entry.kind not in ("purchase", "debit_card"):
            return None
        number = int(hashlib.sha256(entry.id.encode()).hexdigest()[:8], 16)
        if number % (4 if item["layout"] == "dynamic" else 10):
            return None
        posted = entry.posts_at or entry.when + entry.lag
        return posted + timedelta(hours=24 + number % 48)

    def _view(self, item: dict[str, Any], moment: datetime) -> _View:
        """The item's rows and balances as of `moment` (cached: views are pure functions of the item and moment)."""
        key = (item["item_id"], moment, len(item["created_rows"]), item["transactions_since"])
        view = self._views.get(key)
        if view is not None:
            self._views.move_to_end(key)
            return view
        ledger, metas = self._ledger(item), self._layout(item)
        since = item["transactions_since"]
        window = self._window(item) if since is not None and _parse(since) <= moment else None
        created = self._created_entries(item)
        rows: dict[str, _Row] = {}
        balances = []
        for spec, meta in zip(ledger.profile.accounts, metas, strict=True):
            states: Iterator[tuple[Entry, bool, datetime]] = ledger.view(spec.index, moment)
            if spec.index == 0 and created:
                extra = [(e, s[0], s[1]) for e in created if (s := e.state_at(moment)) is not None]
                states = iter([*states, *extra])
            posted, pending_total = spec.opening_balance, 0.0
            for entry, pending, appeared in states:
                if pending:
                    pending_total += entry.amount
                else:
                    posted += entry.final_amount
                day = entry.when.astimezone(NEW_YORK).date()
                if window is None or not meta.syncs or day < window[0] or (window[1] is not None and day > window[1]):
                    continue
                enriched, changed = True, appeared
                enriched_at = None if pending else self._enriched_at(item, entry)
                if enriched_at is not None:
                    enriched = enriched_at <= moment
                    changed = max(appeared, enriched_at) if enriched else appeared
                tx_id = plaid_id(entry.pending_id if pending else entry.id)
                rows[tx_id] = _Row(entry, pending, meta, enriched, changed)
            balances.append((round(posted, 2), round(pending_total, 2)))
        view = self._views[key] = _View(rows, balances)
        while len(self._views) > 32:
            self._views.popitem(last=False)
        return view

    def _delta(self, item: dict[str, Any], seen: datetime | None, target: datetime,
               account_id: str | None) -> list[tuple[str, str, _Row]]:
        """(kind, transaction id, row) for every change between the refreshes `seen` and `target`, in the order the
        changes happened: what /transactions/sync pages through."""
        key = (item["item_id"], seen, target, account_id, len(item["created_rows"]), item["transactions_since"])
        changes = self._changes.get(key)
        if changes is not None:
            return changes
        old = self._view(item, seen).rows if seen is not None else {}
        new = self._view(item, target).rows
        events: list[tuple[datetime, int, str, str, _Row]] = []
        for tx_id, row in new.items():
            if account_id is not None and row.account.account_id != account_id:
                continue
            before = old.get(tx_id)
            if before is None:
                events.append((row.changed_at, 1, tx_id, "added", row))
            elif before.enriched != row.enriched:
                events.append((row.changed_at, 2, tx_id, "modified", row))
        for tx_id, row in old.items():
            if tx_id not in new and (account_id is None or row.account.account_id == account_id):
                gone = row.entry.posts_at if row.entry.posts_at is not None and row.entry.posts_at <= target else target
                events.append((gone, 0, tx_id, "removed", row))
        events.sort(key=lambda event: event[:3])
        changes = self._changes[key] = [(kind, tx_id, row) for _, _, tx_id, kind, row in events]
        while len(self._changes) > 16:
            self._changes.popitem(last=False)
        return changes

    # -- wire shapes -------------------------------------------------------------------------------------------------

    def _account_json(self, meta: _AccountMeta, balance: tuple[float, float]) -> dict[str, Any]:
        posted, pending = balance
        current = _money(-posted if meta.owed else posted)
        available: float | None = None
        if meta.type == "depository" and meta.subtype != "cd":
            available = _money(posted + pending if meta.force_available is None else meta.force_available)
        elif meta.type == "credit" and meta.limit is not None:
            available = _money(meta.limit - current + pending)
        iso = meta.currency in _ISO_CURRENCIES
        return {
            "account_id": meta.account_id,
            "balances": {"available": available, "current": current, "limit": meta.limit,
                         "iso_currency_code": meta.currency if iso else None,
                         "unofficial_currency_code": None if iso else meta.currency},
            "mask": meta.mask, "name": meta.name, "official_name": meta.official_name, "type": meta.type,
            "subtype": meta.subtype, "holder_category": "personal",
        }

    def _transaction_json(self, tx_id: str, row: _Row, options: dict[str, Any]) -> dict[str, Any]:
        entry, pending, meta = row.entry, row.pending, row.account
        amount = _money(-(entry.amount if pending else entry.final_amount))
        moment: datetime | None = entry.when
        if not pending and entry.posts_at is not None:
            moment = entry.posts_at
        elif not pending and not entry.exact_time:  # booked some time that day (None: not known that day)
            moment = entry.when + entry.lag
            moment = moment if moment.date() == entry.when.date() else None
        day = (entry.when if pending or moment is None else moment).astimezone(NEW_YORK).date()
        merchant = entry.merchant if isinstance(entry.merchant, UsMerchant) else None
        known = merchant if merchant is not None and row.enriched else None
        if merchant is not None and not row.enriched:
            detailed, confidence = "GENERAL_MERCHANDISE_OTHER_GENERAL_MERCHANDISE", "LOW"
        elif entry.kind in ("scripted", "sandbox"):
            detailed, confidence = _classify(entry.description, amount)
        else:
            detailed, confidence = entry.category_id, "VERY_HIGH" if known else "HIGH"
        primary = pfc_primary(detailed)
        category: dict[str, Any] = {"primary": primary, "detailed": detailed, "confidence_level": confidence}
        if options.get("personal_finance_category_version"):
            category["version"] = options["personal_finance_category_version"]
        counterparties = []
        logo = entity = None
        if known is not None:
            entity = plaid_id("merchant", known.name)
            logo = f"https://plaid-merchant-logos.plaid.com/{_slug(known.name)}_{int(entity[:4], 36) % 1000}.png"
            counterparties.append({"name": known.name, "type": known.kind, "entity_id": entity, "logo_url": logo,
                                   "website": known.website, "confidence_level": "VERY_HIGH"})
        elif entry.counterparty is not None and detailed == "INCOME_WAGES":
            counterparties.append({"name": entry.counterparty.name, "type": "income_source",
                                   "entity_id": plaid_id("income", entry.counterparty.name), "logo_url": None,
                                   "website": None, "confidence_level": "HIGH"})
        place = known.location if known is not None and known.channel == "in store" else None
        channel = entry.method or "other"
        iso = meta.currency in _ISO_CURRENCIES
        return {
            "account_id": meta.account_id,
            "account_owner": None,
            "amount": amount,
            "iso_currency_code": meta.currency if iso else None,
            "unofficial_currency_code": None if iso else meta.currency,
            "check_number": None,
            "counterparties": counterparties,
            "date": day.isoformat(),
            "datetime": _wire_time(moment) if moment is not None else None,
            "authorized_date": entry.when.astimezone(NEW_YORK).date().isoformat(),
            "authorized_datetime": _wire_time(entry.when) if entry.exact_time else None,
            "location": {"address": place[0] if place else None, "city": place[1] if place else None,
                         "region": place[2] if place else None, "postal_code": place[3] if place else None,
                         "country": "US" if place else None, "lat": None, "lon": None, "store_number": None},
            "name": entry.description,
            "merchant_name": known.name if known else None,
            "merchant_entity_id": entity,
            "logo_url": logo,
            "website": known.website if known else None,
            "original_description": entry.description_raw if options.get("include_original_description") else None,
            "payment_meta": {"by_order_of": None, "payee": None,
                             "payer": entry.counterparty.name if entry.counterparty else None,
                             "payment_method": None, "payment_processor": None, "ppd_id": None, "reason": None,
                             "reference_number": None},
            "payment_channel": channel,
            "pending": pending,
            "pending_transaction_id": plaid_id(entry.pending_id) if not pending and entry.pending_id else None,
            "personal_finance_category": category,
            "personal_finance_category_icon_url": f"https://plaid-category-icons.plaid.com/PFC_{primary}.png",
            "transaction_id": tx_id,
            "transaction_code": entry.operation,
            "transaction_type": {"in store": "place", "online": "digital"}.get(channel, "special"),
        }

    def _item_json(self, item: dict[str, Any], *, consent: bool = False) -> dict[str, Any]:
        institution = self._institution(item["institution_id"])
        products = item["products"]
        error = self._item_error(item)
        scopes = {"transactions": ["account_balance_info", "transactions"], "auth": ["account_routing_number"],
                  "identity": ["contact_info"], "liabilities": ["credit_loan_info"], "investments": ["investments"]}
        body: dict[str, Any] = {
            "item_id": item["item_id"], "institution_id": institution["institution_id"],
            "institution_name": institution["name"], "webhook": item["webhook"], "auth_method": None,
            "error": PlaidApiError(error).body() if error else None,
            "available_products": sorted(p for p in institution["products"] if p not in products),
            "billed_products": sorted(products), "products": sorted(products),
            "consented_products": sorted(products), "consent_expiration_time": None, "update_type": "background",
        }
        if consent:
            body.update(created_at=_wire_time(_parse(item["created_at"])),
                        consented_data_scopes=sorted({s for p in products for s in scopes.get(p, [])}),
                        consented_use_cases=["Track and manage your finances"])
        return body

    def _item_status(self, item: dict[str, Any], now: datetime) -> dict[str, Any]:
        initialized = item["transactions_since"] is not None
        failures = [start for start, _, _ in item["frozen"]]
        last = item["webhooks"][-1] if item["webhooks"] else None
        return {
            "transactions": {
                "last_successful_update": _wire_time(self._snapshot(item, now)) if initialized else None,
                "last_failed_update": _wire_time(_parse(failures[-1])) if failures else None},
            "investments": {"last_successful_update": None, "last_failed_update": None},
            "last_webhook": {"sent_at": last["sent_at"], "code_sent": last["payload"]["webhook_code"]}
            if last else None,
        }

    # -- endpoints ---------------------------------------------------------------------------------------------------

    def _link_token_create(self, call: _Call) -> dict[str, Any]:
        body = call.body
        language = _string(body, "language", required=True)
        if language not in LANGUAGES:
            raise _invalid(f"language must be one of {', '.join(sorted(LANGUAGES))}")
        _country_codes(body)
        _string(body, "client_name", required=True)
        user = _object(body, "user")
        has_user = isinstance(user.get("client_user_id"), str) and bool(user["client_user_id"])
        if not has_user and not _string(body, "user_id"):
            raise PlaidApiError("MISSING_FIELDS", "the following required fields are missing: user.client_user_id")
        transactions = _object(body, "transactions")
        days = _int(transactions, "days_requested", DEFAULT_DAYS_REQUESTED, 1, 730)
        products = _products(_strings(body, "products") or [], "products")
        for key in ("optional_products", "required_if_supported_products", "additional_consented_products"):
            _products(_strings(body, key) or [], key)
        access_token = _string(body, "access_token")
        item_id = None
        if access_token:
            item_id = self._item_for(call)["item_id"]
        elif not products:
            raise _invalid("products must contain at least one product (outside update mode)")
        self._counters["link"] += 1
        token = f"link-sandbox-{stable_uuid(self.seed, 'link', self._counters['link'], call.now.isoformat())}"
        expires = call.now + (UPDATE_LINK_TOKEN_TTL if item_id else LINK_TOKEN_TTL)
        self._link_tokens[token] = {"expires_at": expires.isoformat(), "item_id": item_id, "products": products,
                                    "webhook": _string(body, "webhook"), "days_requested": days}
        self._save()
        return {"link_token": token, "expiration": _wire_time(expires)}

    def _public_token_exchange(self, call: _Call) -> dict[str, Any]:
        token = _string(call.body, "public_token", required=True) or ""
        record = self._public_tokens.get(token)
        if record is None:
            raise PlaidApiError("INVALID_PUBLIC_TOKEN")
        if record["used"]:
            raise PlaidApiError("INVALID_PUBLIC_TOKEN", "provided public token has already been exchanged")
        if _parse(record["expires_at"]) <= call.now:
            raise PlaidApiError("INVALID_PUBLIC_TOKEN", "provided public token is expired. Public tokens expire 30 "
                                                        "minutes after creation at which point they can no longer be "
                                                        "exchanged")
        item = self._items.get(record["item_id"])
        if item is None:
            raise PlaidApiError("ITEM_NOT_FOUND")
        record["used"] = True
        self._save()
        return {"access_token": item["access_token"], "item_id": item["item_id"]}

    def _item_get(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call)
        return {"item": self._item_json(item, consent=True), "status": self._item_status(item, call.now)}

    def _item_remove(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call)
        reason = call.body.get("reason_code")
        if reason is not None and reason not in ("FRAUD_FIRST_PARTY", "FRAUD_FALSE_IDENTITY", "FRAUD_ABUSE",
                                                 "FRAUD_OTHER", "CONNECTION_IS_NON_FUNCTIONAL", "OTHER"):
            raise _invalid("reason_code is not a valid reason code")
        _string(call.body, "reason_note")
        del self._items[item["item_id"]]
        self._removed[item["access_token"]] = {"item_id": item["item_id"], "removed_at": call.now.isoformat()}
        self._save()
        return {}

    def _item_webhook_update(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call)
        item["webhook"] = _string(call.body, "webhook") or ""
        self._record_webhook(item, "ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED", call.now)
        self._save()
        return {"item": self._item_json(item)}

    def _selected_accounts(self, item: dict[str, Any], options: dict[str, Any]) -> list[int]:
        metas = self._layout(item)
        wanted = _strings(options, "account_ids")
        if wanted is None:
            return list(range(len(metas)))
        known = {meta.account_id: i for i, meta in enumerate(metas)}
        if any(account_id not in known for account_id in wanted):
            raise PlaidApiError("INVALID_ACCOUNT_ID")
        return sorted({known[account_id] for account_id in wanted})

    def _accounts_get(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        indexes = self._selected_accounts(item, _object(call.body, "options"))
        view, metas = self._view(item, self._snapshot(item, call.now)), self._layout(item)
        return {"accounts": [self._account_json(metas[i], view.balances[i]) for i in indexes],
                "item": self._item_json(item)}

    def _accounts_balance_get(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        options = _object(call.body, "options")
        _string(options, "min_last_updated_datetime")
        indexes = self._selected_accounts(item, options)
        view, metas = self._view(item, call.now), self._layout(item)
        return {"accounts": [self._account_json(metas[i], view.balances[i]) for i in indexes],
                "item": self._item_json(item)}

    def _transactions_sync(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        body = call.body
        size = min(_int(body, "count", SYNC_DEFAULT_COUNT, 1, SYNC_MAX_COUNT), SYNC_PAGE_SIZE_CAP)
        if "options" in body and body["options"] is None:
            raise _invalid("options must be an object when sent")
        options = _object(body, "options")
        version = _string(options, "personal_finance_category_version")
        if version not in (None, "v1", "v2"):
            raise _invalid("personal_finance_category_version must be v1 or v2")
        if not isinstance(options.get("include_original_description", False), bool | None):
            raise _invalid("include_original_description must be a boolean")
        metas = self._layout(item)
        account_id = _string(options, "account_id")
        if account_id is not None and account_id not in {m.account_id for m in metas if m.syncs}:
            raise PlaidApiError("INVALID_ACCOUNT_ID")
        cursor = _string(body, "cursor") or ""
        if item["transactions_since"] is None:  # not initialized with Transactions: this call initializes it
            item["products"] = [*item["products"], "transactions"]
            item["transactions_since"] = call.now.isoformat()
            item["days_requested"] = _int(options, "days_requested", DEFAULT_DAYS_REQUESTED, 1, 730)
            item["refreshes"].append(call.now.isoformat())
            self._save()
            return self._not_ready()
        if call.now < _parse(item["transactions_since"]) + TRANSACTIONS_READY_AFTER:
            return self._not_ready()
        current = self._snapshot(item, call.now)
        if item["webhook"] and not item.get("notified_refresh"):  # from now on, refreshes are announced
            item["notified_refresh"] = current.isoformat()
            self._save()
        if cursor == "now":
            seen, target, offset = current, None, 0
        else:
            seen, target, offset, fingerprint = self._read_cursor(cursor, item, account_id)
            if target is not None:
                moved = target != current and self._view(item, current).fingerprint(account_id) != fingerprint
                if moved or self._mutation_pending:
                    self._mutation_pending = False
                    raise PlaidApiError("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")
        target = target or current
        changes = self._delta(item, seen, target, account_id) if cursor != "now" else []
        page = changes[offset: offset + size]
        has_more = offset + size < len(changes)
        if has_more:
            fingerprint = self._view(item, target).fingerprint(account_id)
            next_cursor = self._cursor(item, account_id, seen, target, offset + size, fingerprint)
        else:
            next_cursor = self._cursor(item, account_id, target, None, 0, "")
        view = self._view(item, target)
        options = {"include_original_description": options.get("include_original_description"),
                   "personal_finance_category_version": version}
        return {
            "accounts": [self._account_json(meta, view.balances[i]) for i, meta in enumerate(metas)
                         if meta.syncs and account_id in (None, meta.account_id)],
            "added": [self._transaction_json(tx_id, row, options) for kind, tx_id, row in page if kind == "added"],
            "modified": [self._transaction_json(tx_id, row, options) for kind, tx_id, row in page
                         if kind == "modified"],
            "removed": [{"transaction_id": tx_id, "account_id": row.account.account_id} for kind, tx_id, row in page
                        if kind == "removed"],
            "next_cursor": next_cursor,
            "has_more": has_more,
            "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
        }

    @staticmethod
    def _not_ready() -> dict[str, Any]:
        return {"accounts": [], "added": [], "modified": [], "removed": [], "next_cursor": "", "has_more": False,
                "transactions_update_status": "NOT_READY"}

    @staticmethod
    def _cursor(item: dict[str, Any], account_id: str | None, seen: datetime | None, target: datetime | None,
                offset: int, fingerprint: str) -> str:
        """base64 of "p1|item|account|seen refresh|refresh being paged|offset|fingerprint" (µs since the epoch)."""
        text = "|".join((_CURSOR_VERSION, item["item_id"], account_id or "", _micros(seen), _micros(target),
                         str(offset), fingerprint))
        return base64.b64encode(text.encode()).decode()

    @staticmethod
    def _read_cursor(cursor: str, item: dict[str, Any],
                     account_id: str | None) -> tuple[datetime | None, datetime | None, int, str]:
        """(seen refresh, refresh being paged, offset, fingerprint) of a cursor; "" is the start of history."""
        if cursor == "":
            return None, None, 0, ""
        try:
            parts = base64.b64decode(cursor, validate=True).decode().split("|")
            version, item_id, account, seen, target, offset, fingerprint = parts
            decoded = _from_micros(seen), _from_micros(target), int(offset), fingerprint
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise _invalid("cursor is not a valid /transactions/sync cursor") from exc
        if version != _CURSOR_VERSION or item_id != item["item_id"] or decoded[2] < 0:
            raise _invalid("cursor is not a valid /transactions/sync cursor for this Item")
        if account != (account_id or ""):
            raise _invalid("cursor was issued for a different options.account_id")
        return decoded

    def _institution_json(self, institution: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in institution.items() if k not in ("url", "primary_color", "logo")}
        if options.get("include_optional_metadata"):
            body.update(url=institution["url"], primary_color=institution["primary_color"], logo=institution["logo"])
        if options.get("include_status"):
            healthy = {"status": "HEALTHY", "last_status_change": "2024-01-01T00:00:00Z",
                       "breakdown": {"success": 0.99, "error_plaid": 0.005, "error_institution": 0.005,
                                     "refresh_interval": "NORMAL"}}
            body["status"] = {"item_logins": healthy, "transactions_updates": healthy, "auth": healthy,
                              "identity": healthy, "health_incidents": []}
        if options.get("include_auth_metadata"):
            body["auth_metadata"] = {"supported_methods": {"instant_auth": True, "instant_match": False,
                                                           "automated_micro_deposits": False,
                                                           "instant_micro_deposits": False}}
        if options.get("include_payment_initiation_metadata"):
            body["payment_initiation_metadata"] = None
        return body

    def _institutions_get_by_id(self, call: _Call) -> dict[str, Any]:
        countries = _country_codes(call.body)
        institution = self._institution(_string(call.body, "institution_id", required=True))
        if not set(countries) & set(institution["country_codes"]):
            raise PlaidApiError("INVALID_INSTITUTION", "the institution is not available in the requested countries")
        return {"institution": self._institution_json(institution, _object(call.body, "options"))}

    def _institutions_search(self, call: _Call) -> dict[str, Any]:
        countries = set(_country_codes(call.body))
        query = (_string(call.body, "query", required=True) or "").lower()
        products = _strings(call.body, "products")
        if products is not None:
            if not products:
                raise _invalid("products must contain at least one product when sent")
            products = _products(products, "products")
        options = _object(call.body, "options")
        found = [institution for institution in INSTITUTIONS
                 if query in institution["name"].lower() and countries & set(institution["country_codes"])
                 and all(p in institution["products"] for p in products or [])
                 and options.get("oauth") in (None, institution["oauth"])]
        return {"institutions": [self._institution_json(institution, options) for institution in found[:10]]}

    def _webhook_verification_key_get(self, call: _Call) -> dict[str, Any]:
        if _string(call.body, "key_id", required=True) != self._jwk["kid"]:
            raise PlaidApiError("INVALID_WEBHOOK_VERIFICATION_KEY_ID")
        return {"key": dict(self._jwk)}

    def _sandbox_public_token_create(self, call: _Call) -> dict[str, Any]:
        body = call.body
        products = _products(_strings(body, "initial_products") or [], "initial_products")
        if not products:
            raise _invalid("initial_products must contain at least one product")
        options = _object(body, "options")
        transactions = _object(options, "transactions") if options.get("transactions") is not None else {}
        days = _int(transactions, "days_requested", DEFAULT_DAYS_REQUESTED, 1, 730)
        start, end = (_iso_date(transactions[key], key).isoformat() if transactions.get(key) else None
                      for key in ("start_date", "end_date"))
        username = _string(options, "override_username") or "user_good"
        password = _string(options, "override_password")
        item = self._create_item(call.now, institution_id=_string(body, "institution_id"), products=products,
                                 username=username, password="pass_good" if password is None else password,
                                 webhook=_string(options, "webhook"), days_requested=days,
                                 window=(start, end))
        token = self._issue_public_token(item, call.now)
        self._save()
        return {"public_token": token}

    def _sandbox_fire_webhook(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call)
        code = _string(call.body, "webhook_code", required=True) or ""
        if code not in _WEBHOOK_CODES:
            raise _invalid(f"webhook_code must be one of {', '.join(sorted(_WEBHOOK_CODES))}")
        webhook_type = _string(call.body, "webhook_type") or _WEBHOOK_CODES[code]
        if webhook_type not in ("AUTH", "HOLDINGS", "INVESTMENTS_TRANSACTIONS", "ITEM", "LIABILITIES", "TRANSACTIONS",
                                "ASSETS"):
            raise _invalid("webhook_type is not a valid webhook type")
        product = _WEBHOOK_PRODUCTS.get(webhook_type)
        if product is not None and product not in item["products"]:
            raise PlaidApiError("SANDBOX_PRODUCT_NOT_ENABLED", f"the Item does not have the {product} product")
        if not item["webhook"]:
            raise PlaidApiError("SANDBOX_WEBHOOK_INVALID")
        self._record_webhook(item, webhook_type, code, call.now)
        self._save()
        return {"webhook_fired": True}

    def _sandbox_reset_login(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call)
        if self._item_error(item) is None:
            item["frozen"].append([call.now.isoformat(), None, "ITEM_LOGIN_REQUIRED"])
            self._record_webhook(item, "ITEM", "ERROR", call.now)
            self._save()
        return {"reset_login": True}

    def _sandbox_transactions_create(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call, healthy=True)
        if item["user"] != "user_transactions_dynamic":
            raise _invalid("/sandbox/transactions/create can only be used with Items created with the "
                           "user_transactions_dynamic test user")
        rows = call.body.get("transactions")
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise _invalid("transactions must be a non-empty array of objects")
        if len(rows) > MAX_SANDBOX_TRANSACTIONS:
            raise _invalid("The request contains too many transactions.")
        today = call.now.astimezone(NEW_YORK).date()
        created = []
        for row in rows:
            transacted = _iso_date(row.get("date_transacted"), "date_transacted")
            posted = _iso_date(row.get("date_posted"), "date_posted")
            oldest = today - SANDBOX_TRANSACTIONS_MAX_AGE
            if not (oldest <= transacted <= posted <= today):
                raise _invalid("Transaction and posted dates must be within the last 14 days. The posted date cannot "
                               "be before the transaction date.")
            amount = row.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise _invalid("amount must be a number")
            description = _string(row, "description", required=True) or ""
            created.append({"date_transacted": transacted.isoformat(), "date_posted": posted.isoformat(),
                            "amount": round(float(amount), 2), "description": description,
                            "created_at": call.now.isoformat()})
        item["created_rows"].extend(created)
        item["refreshes"].append(call.now.isoformat())
        self._save()
        return {}

    # -- state -------------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------------------------
# Custom sandbox users
# --------------------------------------------------------------------------------------------------------------------

def _custom_accounts(raw: object) -> list[dict[str, Any]]:
    """A custom user's `override_accounts`, validated and normalized (what the item keeps)."""
    if not isinstance(raw, list) or not raw:
        raise _invalid("override_accounts must be a non-empty array")
    accounts = []
    for i, account in enumerate(raw):
        if not isinstance(account, dict) or account.get("type") not in _CUSTOM_TYPES:
            raise _invalid(f"override_accounts[{i}].type must be one of {', '.join(_CUSTOM_TYPES)}")
        kind = account["type"]
        subtype = account.get("subtype") or _CUSTOM_TYPES[kind]
        meta = account.get("meta") or {}
        balance = account.get("starting_balance", 10_000)
        forced = account.get("force_available_balance")
        limit = meta.get("limit") if isinstance(meta, dict) else None
        currency = account.get("currency") or "USD"
        if not isinstance(meta, dict) or not isinstance(subtype, str) or not isinstance(currency, str):
            raise _invalid(f"override_accounts[{i}] has an invalid meta, subtype or currency")
        if not all(isinstance(v, int | float) and not isinstance(v, bool)
                   for v in (balance, *(x for x in (forced, limit) if x is not None))):
            raise _invalid(f"override_accounts[{i}] balances and limit must be numbers")
        rows = account.get("transactions") or []
        if not isinstance(rows, list):
            raise _invalid(f"override_accounts[{i}].transactions must be an array")
        transactions = []
        for row in rows:
            if not isinstance(row, dict) or isinstance(row.get("amount"), bool) or not isinstance(
                    row.get("amount"), int | float) or not isinstance(row.get("description"), str):
                raise _invalid(f"override_accounts[{i}].transactions need amount and description")
            transacted = _iso_date(row.get("date_transacted"), "date_transacted")
            posted = _iso_date(row.get("date_posted"), "date_posted")
            if posted < transacted:
                raise _invalid("date_posted cannot be before date_transacted")
            transactions.append({"date_transacted": transacted.isoformat(), "date_posted": posted.isoformat(),
                                 "amount": round(float(row["amount"]), 2), "description": row["description"]})
        accounts.append({
            "type": "other" if kind == "payroll" else kind, "subtype": subtype,
            "name": str(meta.get("name") or f"Plaid {subtype.title()}"), "official_name": meta.get("official_name"),
            "mask": str(meta.get("mask") or f"{i:04d}"), "limit": float(limit) if limit is not None else None,
            "currency": currency.upper(), "starting_balance": float(balance),
            "force_available": float(forced) if forced is not None else None, "transactions": transactions,
        })
    return accounts


def _custom_profile(accounts: list[dict[str, Any]], created: datetime) -> ScriptedProfile:
    """A custom user's accounts as a scripted ledger profile: each account's balance at the item's creation is its
    `starting_balance` (owed, for credit and loans)."""
    today = created.astimezone(NEW_YORK).date()
    specs, rows = [], []
    for i, account in enumerate(accounts):
        sign = -1.0 if account["type"] in ("credit", "loan") else 1.0
        booked = 0.0
        for tx in account["transactions"]:
            transacted, posted = date.fromisoformat(tx["date_transacted"]), date.fromisoformat(tx["date_posted"])
            category, _ = _classify(tx["description"], tx["amount"])
            rows.append(ScriptedRow(i, transacted, posted, -tx["amount"], tx["description"], category))
            if posted <= today:
                booked -= tx["amount"]
        specs.append(AccountSpec(f"custom:{account['type']}", i, round(sign * account["starting_balance"] - booked,
                                                                        2)))
    return ScriptedProfile(today, tuple(specs), tuple(rows))
