"""Plaid (United States): the httpx client for {sandbox,production}.plaid.com and the mapping of its objects.

The same code runs against the real API and against the offline emulator (finance.sandbox.plaid),
which replaces only the transport. Every call is a POST with a JSON body; credentials travel only in
the PLAID-CLIENT-ID / PLAID-SECRET headers, never in a body, a log line, an exception or a repr.

Sign rule: Plaid's positive amount is money leaving the account on every account type, so every
amount is negated here (negative = money leaves the user, as in finance.model). A card's or loan's
`balances.current` is the amount owed, so it becomes a negative balance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import httpx
import pyarrow as pa

from finance.categories import UNCATEGORIZED
from finance.crypto import SecretError
from finance.http import (
    DEFAULT_POLICY,
    RateLimiter,
    RetryPolicy,
    Sleep,
    call_with_retries,
    counting_requests,
    decode_json,
    error_body,
    make_client,
    retry_after_seconds,
)
from finance.model import (
    Account,
    AccountType,
    ConnectionState,
    ConnectionStatus,
    Institution,
    Transaction,
    TransactionChanges,
    TransactionColumns,
    TxnStatus,
    WireAmounts,
)
from finance.providers.base import (
    BadData,
    ConfigurationError,
    NotFound,
    ProviderError,
    RateLimited,
    ReauthRequired,
    RequestRejected,
    TransientError,
    at_once,
    unless_blocked,
)
from finance.providers.wire import (
    date_array,
    per_distinct,
    to_batch,
    to_transactions,
    wire_date,
    wire_decimal,
    wire_instant,
)
from finance.screening import Limits, map_screened, sent_twice

NAME = "plaid"
LABEL = "Plaid"
PLAID_VERSION = "2020-09-14"
ENVIRONMENTS = {"sandbox": "https://sandbox.plaid.com", "production": "https://production.plaid.com"}
SANDBOX_INSTITUTIONS = ("ins_109508", "ins_109509", "ins_109510", "ins_109511", "ins_109512")

SYNC_PAGE_SIZE = 500  # the maximum /transactions/sync accepts
MAX_SYNC_RESTARTS = 3  # restarts from the pre-loop cursor after TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION
DAYS_REQUESTED = 730  # history asked for when Transactions is first added to an Item (Plaid's maximum)
CONSENT_WARNING = timedelta(days=7)
# Plaid sends no Retry-After. Its limits are per minute (e.g. /transactions/sync 50/min per Item), so a
# slot frees within seconds; a few seconds' wait is enough without stalling a sync for a whole minute.
RATE_LIMIT_WAIT = 5.0
CLIENT_NAME_MAX = 30  # Link shows "This Application" for longer names
MAP_CHUNK = 5_000  # rows mapped into one Arrow batch


# --------------------------------------------------------------------------------------------
# Mapping (pure functions)
# --------------------------------------------------------------------------------------------

# Plaid personal finance category (PFC) → unified category. Keys are prefixes of the `detailed` value
# (then of `primary`); the longest matching key wins, so a detailed value added by Plaid later still
# lands in its primary's category. A key ending in "_" matches detailed values only, never the bare primary.
CATEGORY_MAP: dict[str, str] = {
    # Income
    "INCOME": "income",
    "INCOME_WAGES": "income.salary",
    "INCOME_SALARY": "income.salary",
    "INCOME_INTEREST_EARNED": "income.interest",
    "INCOME_DIVIDENDS": "income.interest",
    "INCOME_UNEMPLOYMENT": "income.benefits",
    "INCOME_RETIREMENT_PENSION": "income.benefits",  # Pluggy's retirement income is income.benefits too
    "INCOME_TAX_REFUND": "income.other",
    "INCOME_OTHER_INCOME": "income.other",
    # Transfers: neither income nor spending
    "TRANSFER_IN": "transfer.own_accounts",
    "TRANSFER_OUT": "transfer.own_accounts",
    "TRANSFER_IN_INVESTMENT_AND_RETIREMENT_FUNDS": "transfer.investment",
    "TRANSFER_OUT_INVESTMENT_AND_RETIREMENT_FUNDS": "transfer.investment",
    # Borrowed money arriving (a loan disbursement, a card cash advance) is not income, and it is not a
    # repayment either: the generic "transfer" keeps it out of income and spending without mislabelling it.
    "TRANSFER_IN_CASH_ADVANCES_AND_LOANS": "transfer",
    "LOAN_PAYMENTS": "transfer.loan_payment",
    "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT": "transfer.credit_card_payment",
    # Spending
    "BANK_FEES": "fees",
    "ENTERTAINMENT": "entertainment",
    "ENTERTAINMENT_TV_AND_MOVIES": "entertainment.streaming",
    "ENTERTAINMENT_MUSIC_AND_AUDIO": "entertainment.streaming",
    "ENTERTAINMENT_CASINOS_AND_GAMBLING": "gambling",
    "FOOD_AND_DRINK": "food",
    "FOOD_AND_DRINK_GROCERIES": "food.groceries",
    "FOOD_AND_DRINK_RESTAURANT": "food.restaurants",
    "FOOD_AND_DRINK_FAST_FOOD": "food.restaurants",
    "FOOD_AND_DRINK_COFFEE": "food.restaurants",
    "GENERAL_MERCHANDISE": "shopping",
    "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES": "shopping.online",
    "GENERAL_MERCHANDISE_ELECTRONICS": "shopping.electronics",
    "GENERAL_MERCHANDISE_CLOTHING_AND_ACCESSORIES": "shopping.clothing",
    "GENERAL_MERCHANDISE_PET_SUPPLIES": "shopping.pets",
    "HOME_IMPROVEMENT": "housing.home",
    "MEDICAL": "health",
    "MEDICAL_PHARMACIES_AND_SUPPLEMENTS": "health.pharmacy",
    "MEDICAL_VETERINARY_SERVICES": "shopping.pets",  # as Pluggy files vets under pets
    "PERSONAL_CARE": "personal_care",
    "PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS": "health.fitness",
    "GENERAL_SERVICES": "services",
    "GENERAL_SERVICES_EDUCATION": "services.education",
    "GENERAL_SERVICES_INSURANCE": "services.insurance",
    "GENERAL_SERVICES_TELECOMMUNICATION": "services.telecom",
    "GENERAL_SERVICES_AUTOMOTIVE": "transport",  # car repairs and washes, as Pluggy's vehicle services
    "GOVERNMENT_AND_NON_PROFIT": "taxes",
    "GOVERNMENT_AND_NON_PROFIT_DONATIONS": "donations",
    "TRANSPORTATION": "transport",
    "TRANSPORTATION_GAS": "transport.fuel",
    "TRANSPORTATION_TAXIS_AND_RIDE_SHARES": "transport.rideshare",
    "TRANSPORTATION_PUBLIC_TRANSIT": "transport.public",
    "TRANSPORTATION_PARKING": "transport.parking_tolls",
    "TRANSPORTATION_TOLLS": "transport.parking_tolls",
    "TRAVEL": "travel",
    "RENT_AND_UTILITIES": "housing",
    "RENT_AND_UTILITIES_": "housing.utilities",
    "RENT_AND_UTILITIES_RENT": "housing.rent",
    "RENT_AND_UTILITIES_TELEPHONE": "services.telecom",
    "RENT_AND_UTILITIES_INTERNET_AND_CABLE": "services.telecom",
}


def _lookup_category(value: str) -> str | None:
    best: str | None = None
    for key in CATEGORY_MAP:
        if value.startswith(key) and (best is None or len(key) > len(best)):
            best = key
    return CATEGORY_MAP[best] if best is not None else None


def map_category(primary: str | None, detailed: str | None) -> str:
    """Unified category for a Plaid PFC: the detailed value first, then the primary; else Uncategorized."""
    for value in (detailed, primary):
        if isinstance(value, str) and value:
            mapped = _lookup_category(value.upper())
            if mapped:
                return mapped
    return UNCATEGORIZED


def to_decimal(value: Any, field: str) -> Decimal:
    return wire_decimal(value, field, provider=NAME, label=LABEL)


def _optional_decimal(value: Any, field: str) -> Decimal | None:
    return None if value is None else to_decimal(value, field)


def negate(value: Decimal) -> Decimal:
    """The opposite amount; zero stays an unsigned zero (never "-0.00")."""
    return Decimal(0) - value


def parse_date(value: Any, field: str) -> date:
    return wire_date(value, field, provider=NAME, label=LABEL)


def parse_instant(value: Any) -> datetime | None:
    """A Plaid ISO 8601 timestamp as an aware datetime (UTC when it carries no offset)."""
    return wire_instant(value, provider=NAME, label=LABEL)


def currency_of(raw: dict[str, Any]) -> str | None:
    """The ISO code, else the unofficial one (e.g. a crypto ticker) exactly as Plaid gives it."""
    for key in ("iso_currency_code", "unofficial_currency_code"):
        value = raw.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


SAVINGS_SUBTYPES = frozenset({"savings", "money market", "cd", "hsa"})
CHECKING_SUBTYPES = frozenset({"checking", "cash management"})


def account_type(raw_type: str | None, subtype: str | None) -> AccountType:
    kind = (raw_type or "").lower()
    sub = (subtype or "").lower()
    if kind == "depository":
        if sub in CHECKING_SUBTYPES or not sub:
            return AccountType.CHECKING
        if sub in SAVINGS_SUBTYPES:
            return AccountType.SAVINGS
        return AccountType.OTHER  # prepaid, paypal, ebt, …: not a checking account we can vouch for
    if kind == "credit":
        return AccountType.CREDIT_CARD
    if kind == "loan":
        return AccountType.LOAN
    if kind in ("investment", "brokerage"):
        return AccountType.INVESTMENT
    return AccountType.OTHER


def map_account(raw: dict[str, Any], item_id: str) -> Account:
    """A Plaid AccountBase. Card and loan balances are amounts owed (positive), so they become negative."""
    try:
        balances = raw["balances"]
        if not isinstance(balances, dict):
            raise BadData("Plaid sent an account whose balances are not an object.", code="BAD_ACCOUNT",
                          provider=NAME)
        acc_type = account_type(raw["type"], raw.get("subtype"))
        currency = currency_of(balances)
        if currency is None:
            raise BadData("Plaid sent an account without a currency.", code="BAD_CURRENCY", provider=NAME)
        current = _optional_decimal(balances.get("current"), "current balance")
        available = _optional_decimal(balances.get("available"), "available balance")
        limit: Decimal | None = None
        if acc_type in (AccountType.CREDIT_CARD, AccountType.LOAN):
            current = negate(current) if current is not None else None
            limit = _optional_decimal(balances.get("limit"), "credit limit")
        return Account(
            provider=NAME,
            external_id=str(raw["account_id"]),
            connection_external_id=item_id,
            type=acc_type,
            name=str(raw.get("name") or raw.get("official_name") or "Account"),
            currency=currency,
            current_balance=current,
            available_balance=available,
            credit_limit=limit,
            mask=raw.get("mask") or None,
            subtype=raw.get("subtype"),
            balance_as_of=parse_instant(balances.get("last_updated_datetime")),
        )
    except KeyError as exc:
        raise BadData(f"Plaid sent an account without {exc.args[0]}.", code="BAD_ACCOUNT", provider=NAME) from exc


PAYMENT_CHANNELS = {"online": "ONLINE", "in store": "IN_STORE", "other": "OTHER"}


def _payment_method(channel: Any) -> str | None:
    if not isinstance(channel, str) or not channel.strip():
        return None
    return PAYMENT_CHANNELS.get(channel.strip().lower()) or "_".join(channel.upper().split())[:40]


def _merchant(raw: dict[str, Any]) -> str | None:
    if raw.get("merchant_name"):
        return str(raw["merchant_name"])
    parties = raw.get("counterparties")
    if isinstance(parties, list) and parties and isinstance(parties[0], dict) and parties[0].get("name"):
        return str(parties[0]["name"])
    return None


def transaction_columns(raws: Sequence[dict[str, Any]], accounts: Sequence[Account]) -> TransactionColumns:
    """THE mapping of Plaid transactions (`accounts[i]` holds `raws[i]`), signed so that negative is money leaving
    the user: Plaid's sign, flipped. Rendered by `map_transactions` (bulk) and `map_transaction` (one object)."""
    try:
        external_ids = [r["transaction_id"] for r in raws]
        amounts = [r["amount"] for r in raws]
        pendings = [r["pending"] for r in raws]
        dates = [r["date"] for r in raws]
    except KeyError as exc:
        raise BadData(f"Plaid sent a transaction without {exc.args[0]}.", code="BAD_TRANSACTION",
                      provider=NAME) from exc
    if not all(isinstance(t, str) for t in external_ids):
        raise BadData("Plaid sent a transaction whose transaction_id is not text.", code="BAD_TRANSACTION",
                      provider=NAME)
    if not all(isinstance(p, bool) for p in pendings):
        raise BadData("Plaid sent a transaction whose pending flag is not true or false.", code="BAD_TRANSACTION",
                      provider=NAME)
    n = len(raws)
    pfcs = [pfc if isinstance(pfc := r.get("personal_finance_category"), dict) else {} for r in raws]
    primaries = [p if isinstance(p := c.get("primary"), str) else None for c in pfcs]
    detailed = [d if isinstance(d := c.get("detailed"), str) else None for c in pfcs]
    return TransactionColumns(
        provider=NAME,
        external_id=external_ids,
        account_external_id=[a.external_id for a in accounts],
        booked_date=date_array(dates, "date", provider=NAME),
        amount=WireAmounts(amounts, negate=True, field="amount"),
        currency=[currency_of(r) or a.currency for r, a in zip(raws, accounts, strict=True)],
        description=[str(r.get("name") or r.get("original_description") or r.get("merchant_name") or "")
                     for r in raws],
        status=[TxnStatus.PENDING.value if p else TxnStatus.POSTED.value for p in pendings],
        category=per_distinct(list(zip(primaries, detailed, strict=True)), lambda pd: map_category(*pd)),
        provider_category=detailed,
        provider_category_id=primaries,
        authorized_date=date_array([a or None for a in (r.get("authorized_date") for r in raws)],
                                   "authorized date", provider=NAME, optional=True),
        original_amount=WireAmounts([None] * n, negate=True, field="amount", optional=True),
        original_currency=[None] * n,
        merchant=[_merchant(r) for r in raws],
        payment_method=per_distinct([r.get("payment_channel") for r in raws], _payment_method),
        installment_number=[None] * n,
        installment_total=[None] * n,
        pending_external_id=[r.get("pending_transaction_id") or None for r in raws],
        provider_created_at=[None] * n,
    )


def map_transactions(raws: Sequence[dict[str, Any]], accounts: Sequence[Account]) -> pa.RecordBatch:
    """Plaid transactions as an Arrow batch for the store (see `transaction_columns`)."""
    return to_batch(transaction_columns(raws, accounts))


def map_transaction(raw: dict[str, Any], account: Account) -> Transaction:
    """One Plaid transaction as a `Transaction` with the exact amount (see `transaction_columns`)."""
    return to_transactions(transaction_columns([raw], [account]))[0]


# Messages a person can act on, by Plaid error_code.
ERROR_MESSAGES: dict[str, str] = {
    "ITEM_LOGIN_REQUIRED": "Your bank needs you to log in again. Reconnect to restore access.",
    "PENDING_EXPIRATION": "Your consent for this bank expires soon. Reconnect to renew it.",
    "PENDING_DISCONNECT": "This bank connection will stop working soon. Reconnect to keep it.",
    "ACCESS_NOT_GRANTED": "The bank did not share the data this app needs. Reconnect and allow access to "
                          "your accounts and transactions.",
    "USER_PERMISSION_REVOKED": "Access to this bank was revoked. Reconnect to grant it again.",
    "USER_ACCOUNT_REVOKED": "Access to an account at this bank was revoked. Reconnect to grant it again.",
    "ITEM_LOCKED": "The bank has locked this login after too many attempts. Unlock it with your bank, "
                   "then reconnect.",
    "INVALID_CREDENTIALS": "The bank rejected the username or password. Reconnect with the right credentials.",
    "INVALID_MFA": "The security code was not accepted. Reconnect and enter a new code.",
    "INVALID_UPDATED_USERNAME": "The bank did not accept the new username. Reconnect with the right one.",
    "INSUFFICIENT_CREDENTIALS": "The bank login was not finished. Reconnect and complete it.",
    "NO_ACCOUNTS": "No usable accounts were found at this bank login. Reconnect and share at least one account.",
    "USER_SETUP_REQUIRED": "The bank needs you to finish setting up your account on its website, then reconnect.",
    "USER_INPUT_TIMEOUT": "The bank login was not completed in time. Reconnect to try again.",
    "INSTITUTION_DOWN": "The bank is unavailable right now. The next sync will try again.",
    "INSTITUTION_NOT_RESPONDING": "The bank is not responding right now. The next sync will try again.",
    "INSTITUTION_NOT_AVAILABLE": "The bank is unavailable through Plaid right now. The next sync will try again.",
    "PRODUCT_NOT_READY": "The bank's data is not ready yet. The next sync will try again.",
    "INTERNAL_SERVER_ERROR": "Plaid had an internal error. Nothing was changed; try again in a few minutes.",
    "PLANNED_MAINTENANCE": "Plaid is down for maintenance. Nothing was changed; try again later.",
    "ITEM_NOT_FOUND": "This connection no longer exists at Plaid. Remove it here and connect the bank again.",
    "INVALID_ACCESS_TOKEN": "Plaid does not recognise this connection's access token (removed, or from another "
                            "environment). Remove it here and connect the bank again.",
    "INSTITUTION_NOT_FOUND": "Plaid does not know this bank.",
    "INSTITUTION_NO_LONGER_SUPPORTED": "Plaid no longer supports this bank.",
    "ITEM_NOT_SUPPORTED": "Plaid cannot connect this kind of account at this bank.",
    "MFA_NOT_SUPPORTED": "This bank asks for a kind of security check Plaid does not support.",
}

REAUTH_CODES = frozenset({
    "ITEM_LOGIN_REQUIRED", "PENDING_EXPIRATION", "PENDING_DISCONNECT", "ACCESS_NOT_GRANTED",
    "USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED", "ITEM_LOCKED", "INVALID_CREDENTIALS", "INVALID_MFA",
    "INVALID_UPDATED_USERNAME", "INSUFFICIENT_CREDENTIALS", "NO_ACCOUNTS", "USER_SETUP_REQUIRED",
    "USER_INPUT_TIMEOUT",
})
EXPIRING_CODES = frozenset({"PENDING_EXPIRATION", "PENDING_DISCONNECT"})  # data still flows until the date
TRANSIENT_CODES = frozenset({
    "INSTITUTION_DOWN", "INSTITUTION_NOT_RESPONDING", "INSTITUTION_NOT_AVAILABLE", "PRODUCT_NOT_READY",
    "INTERNAL_SERVER_ERROR", "PLANNED_MAINTENANCE",
})
CONFIG_CODES = frozenset({
    "INVALID_API_KEYS", "INVALID_SECRET", "INVALID_CLIENT_ID", "MISSING_CLIENT_ID", "MISSING_SECRET",
    "UNAUTHORIZED_ENVIRONMENT",
})
NOT_FOUND_CODES = frozenset({"ITEM_NOT_FOUND", "INVALID_ACCESS_TOKEN", "INSTITUTION_NOT_FOUND"})
MUTATION_CODE = "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"


def map_item(raw_item: dict[str, Any], status: dict[str, Any] | None = None, *, now: datetime | None = None,
             institution: Institution | None = None, sandbox: bool = False) -> ConnectionState:
    """A Plaid Item (from /item/get) as our connection state, with a message a person can act on.

    `status` is /item/get's ItemStatus (may be null). `institution` replaces the bare id and name the
    Item carries (the provider passes the looked-up institution with its logo).
    """
    if not isinstance(raw_item, dict) or not raw_item.get("item_id"):
        raise BadData("Plaid sent an item without an item_id.", code="BAD_ITEM", provider=NAME)
    now = now or datetime.now(UTC)
    error = raw_item.get("error") if isinstance(raw_item.get("error"), dict) else None
    error_code = str(error.get("error_code") or "UNKNOWN_ERROR") if error else None
    consent = parse_instant(raw_item.get("consent_expiration_time"))
    if institution is None and raw_item.get("institution_id"):
        institution = Institution(id=str(raw_item["institution_id"]),
                                  name=str(raw_item.get("institution_name") or raw_item["institution_id"]),
                                  is_sandbox=sandbox)
    expired = consent is not None and consent <= now
    if error_code in REAUTH_CODES - EXPIRING_CODES:
        status_value, message = ConnectionStatus.NEEDS_RECONNECT, ERROR_MESSAGES[error_code]
    elif expired:  # outranks a PENDING_EXPIRATION that is no longer pending, or a bank being down
        status_value = ConnectionStatus.NEEDS_RECONNECT
        message = "Your consent for this bank has expired. Reconnect to renew it."
    elif error_code in EXPIRING_CODES:
        status_value, message = ConnectionStatus.CONSENT_EXPIRING, ERROR_MESSAGES[error_code]
    elif error is not None and error_code is not None:
        status_value = ConnectionStatus.FAILED
        message = (ERROR_MESSAGES.get(error_code) or _text(error.get("display_message"))
                   or _text(error.get("error_message")) or f"The connection failed ({error_code}).")
    elif consent is not None and consent - now <= CONSENT_WARNING:
        status_value = ConnectionStatus.CONSENT_EXPIRING
        message = "Your consent for this bank expires soon. Reconnect to renew it."
    else:
        status_value, message = ConnectionStatus.ACTIVE, None
    transactions_status = status.get("transactions") if isinstance(status, dict) else None
    last_success = transactions_status.get("last_successful_update") if isinstance(transactions_status, dict) \
        else None
    return ConnectionState(
        provider=NAME, external_id=str(raw_item["item_id"]), status=status_value,
        provider_status=error_code or "HEALTHY", institution=institution, status_detail=message,
        error_code=error_code, error_message=message, consent_expires_at=consent,
        last_updated_at=parse_instant(last_success),
    )


def map_institution(raw: dict[str, Any], *, sandbox: bool = False) -> Institution:
    """A Plaid Institution; its logo (a base64 PNG) becomes a data URL."""
    try:
        logo = raw.get("logo")
        return Institution(id=str(raw["institution_id"]), name=str(raw.get("name") or raw["institution_id"]),
                           logo_url=f"data:image/png;base64,{logo}" if isinstance(logo, str) and logo else None,
                           primary_color=raw.get("primary_color") or None, is_sandbox=sandbox)
    except KeyError as exc:
        raise BadData("Plaid sent an institution without an institution_id.", code="BAD_INSTITUTION",
                      provider=NAME) from exc


def _text(value: Any) -> str | None:
    return str(value)[:300] if isinstance(value, str) and value.strip() else None


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------

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
    detail = _text(body.get("display_message")) or _text(body.get("error_message"))
    label = code or f"HTTP_{status}"
    if status == 429 or error_type == "RATE_LIMIT_EXCEEDED" or code in ("RATE_LIMIT_EXCEEDED", "RATE_LIMIT"):
        wait = retry_after_seconds(response)
        return RateLimited("Plaid is rate limiting requests; the sync will resume shortly.",
                           retry_after=RATE_LIMIT_WAIT if wait is None else wait, code=label, provider=NAME,
                           status=status)
    if code in CONFIG_CODES or (code is None and status in (401, 403)):
        return ConfigurationError("Plaid rejected our API keys. Check PLAID_CLIENT_ID and PLAID_SECRET, and that "
                                  "they belong to the environment in use (sandbox or production).",
                                  code=label, provider=NAME, status=status)
    if code in REAUTH_CODES:
        return ReauthRequired(ERROR_MESSAGES[code], code=code, provider=NAME, status=status)
    if code in NOT_FOUND_CODES or (code is None and status == 404):
        return NotFound(ERROR_MESSAGES.get(code or "", "Not found at Plaid."), code=label, provider=NAME,
                        status=status)
    if code == MUTATION_CODE:
        return SyncMutationDuringPagination("Plaid's transactions changed while they were being read.",
                                            code=code, provider=NAME, status=status)
    if code in TRANSIENT_CODES or status >= 500 or error_type == "API_ERROR":
        message = ERROR_MESSAGES.get(code or "") or (f"Plaid had a server error (HTTP {status}). Nothing was "
                                                      "changed; try again in a few minutes.")
        return TransientError(message, code=label, provider=NAME, status=status)
    return RequestRejected(f"Plaid refused the request: {detail or 'HTTP ' + str(status)}", code=label,
                           provider=NAME, status=status)


RATE_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "/accounts/get": (15, 15_000),
    "/accounts/balance/get": (5, 1_200),
    "/item/get": (15, 5_000),
    "/item/remove": (30, 2_000),
    "/institutions/get_by_id": (None, 400),
    "/transactions/sync": (50, 2_500),
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
            raise ConfigurationError("Plaid needs PLAID_CLIENT_ID and PLAID_SECRET.", code="NO_CREDENTIALS",
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
                                "options": {"include_original_description": True}}
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


# --------------------------------------------------------------------------------------------
# /transactions/sync walk
# --------------------------------------------------------------------------------------------

class SyncWalk(NamedTuple):
    """One complete /transactions/sync update (has_more ended false). `pages` are the raw pages, in order."""

    added: list[dict[str, Any]]
    modified: list[dict[str, Any]]
    removed: list[str]
    next_cursor: str | None
    pages: list[dict[str, Any]]


def _removed_ids(page: dict[str, Any]) -> list[str]:
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
                raise TransientError("Plaid's transactions kept changing while they were being read. Nothing was "
                                     "changed; the next sync will try again.", code=MUTATION_CODE, provider=NAME,
                                     status=exc.status) from exc
            continue
        return SyncWalk(
            added=[t for p in pages for t in p["added"]],
            modified=[t for p in pages for t in p["modified"]],
            removed=[tid for p in pages for tid in _removed_ids(p)],
            next_cursor=(pages[-1]["next_cursor"] or None) or original,
            pages=pages,
        )


# --------------------------------------------------------------------------------------------
# Provider (what the sync engine and the pages use)
# --------------------------------------------------------------------------------------------

class PlaidProvider:
    """Plaid behind the Provider interface, plus the connect flow (Link tokens, exchange, sandbox Items).

    `token_lookup(item_id)` returns the Item's decrypted access token (the store keeps it encrypted).
    A freshly connected Item's token is handed over in `ConnectionState.secret` for the sync engine to
    store, and kept in memory meanwhile, so the Item can be read before it is registered.
    """

    name = NAME
    label = LABEL

    def __init__(self, client: PlaidClient, token_lookup: Callable[[str], str | None], *,
                 now: Callable[[], datetime] | None = None, webhook_url: str | None = None) -> None:
        self.client = client
        self._token_lookup = token_lookup
        self.webhook_url = webhook_url  # given to new Items (link tokens, sandbox Items) when set
        self._now = now or client.now
        self._institutions: dict[str, Institution] = {}
        self._connected: dict[str, str] = {}  # item_id → access token of Items connected by this process
        self._lock = threading.Lock()

    def _token(self, item_id: str) -> str:
        with self._lock:
            token = self._connected.get(item_id)
        if token:
            return token
        try:
            token = self._token_lookup(item_id)
        except (SecretError, KeyError) as exc:
            raise ReauthRequired("No readable Plaid access token is stored for this connection. Reconnect the bank.",
                                 code="NO_ACCESS_TOKEN", provider=NAME) from exc
        if not token:
            raise ReauthRequired("No Plaid access token is stored for this connection. Reconnect the bank.",
                                 code="NO_ACCESS_TOKEN", provider=NAME)
        return token

    def _institution(self, institution_id: str) -> Institution | None:
        """The institution with its name and logo, looked up once; None if Plaid cannot say."""
        with self._lock:
            known = self._institutions.get(institution_id)
        if known is not None:
            return known
        try:
            found = map_institution(self.client.institution_get(institution_id), sandbox=self.client.is_sandbox)
        except ProviderError:
            return None  # cosmetic: the Item's own id and name are used instead
        with self._lock:
            self._institutions[institution_id] = found
        return found

    def _state(self, access_token: str) -> ConnectionState:
        data = self.client.item_get(access_token)
        item = data["item"]
        institution = self._institution(str(item["institution_id"])) if item.get("institution_id") else None
        return map_item(item, data.get("status"), now=self._now(), institution=institution,
                        sandbox=self.client.is_sandbox)

    def _with_secret(self, state: ConnectionState) -> ConnectionState:
        with self._lock:
            token = self._connected.get(state.external_id)
        return dataclasses.replace(state, secret=token) if token else state

    # -- connect flow -------------------------------------------------------------------------
    def institutions(self) -> list[Institution]:
        """The sandbox institutions a tester can pick; none in production, where Plaid Link lists banks."""
        if not self.client.is_sandbox:
            return []
        found = []
        for institution_id in SANDBOX_INSTITUTIONS:
            try:
                raw = self.client.institution_get(institution_id)
            except NotFound:
                continue
            institution = map_institution(raw, sandbox=True)
            with self._lock:
                self._institutions[institution.id] = institution
            found.append(institution)
        return found

    def credential_fields(self, institution_id: str) -> list[dict[str, Any]]:
        """The sandbox login (user_good / pass_good); none in production, where the bank asks inside Link."""
        if not self.client.is_sandbox:
            return []
        return [{"name": "username", "label": "Username", "type": "text", "placeholder": "user_good"},
                {"name": "password", "label": "Password", "type": "password", "placeholder": "pass_good"}]

    def create_connection(self, institution_id: str, credentials: dict[str, str]) -> ConnectionState:
        """Connect a sandbox institution without Link; the access token comes back in `state.secret`."""
        if not self.client.is_sandbox:
            raise RequestRejected("Plaid connections are made through Plaid Link: use the Connect button, which "
                                  "opens Plaid's own window.", code="LINK_REQUIRED", provider=NAME)
        public_token = self.client.sandbox_public_token_create(
            institution_id, username=credentials.get("username") or None,
            password=credentials.get("password") or None, webhook=self.webhook_url)
        return self.exchange(public_token)

    def submit_mfa(self, external_id: str, values: dict[str, str]) -> ConnectionState:
        raise RequestRejected("Plaid asks for security codes inside Plaid Link, not here.", code="MFA_IN_LINK",
                              provider=NAME)

    def wait_until_settled(self, external_id: str, *, on_progress: Callable[[str], None] | None = None,
                           timeout: float = 300.0, interval: float = 1.0,
                           sleep: Sleep = time.sleep) -> ConnectionState:
        """A Plaid Item is usable as soon as it exists: its state now (with the new token, if any)."""
        return self._with_secret(self.connection_state(external_id))

    def link_token(self, user_id: str, access_token: str | None = None) -> str:
        """A link_token for Plaid Link (update mode when access_token is given)."""
        return str(self.client.create_link_token(user_id, access_token=access_token,
                                                 webhook=self.webhook_url)["link_token"])

    def ensure_webhook(self, external_id: str, url: str) -> bool:
        """Point an existing Item's webhooks at `url` unless they already go there; True when it was changed."""
        token = self._token(external_id)
        if self.client.item_get(token)["item"].get("webhook") == url:
            return False
        self.client.item_webhook_update(token, url)
        return True

    def update_link_token(self, user_id: str, external_id: str) -> str:
        """A link_token for Link's update mode on a stored Item; its access token never leaves the server."""
        return self.link_token(user_id, access_token=self._token(external_id))

    def exchange(self, public_token: str) -> ConnectionState:
        """Link's public token → the new Item's state, its access token in `state.secret` to store encrypted."""
        access_token, item_id = self.client.exchange_public_token(public_token)
        with self._lock:
            self._connected[item_id] = access_token
        state = self._state(access_token)
        if state.external_id != item_id:
            with self._lock:
                self._connected[state.external_id] = access_token
        return self._with_secret(state)

    # -- Provider interface ---------------------------------------------------------------------
    def connection_state(self, external_id: str) -> ConnectionState:
        return self._state(self._token(external_id))

    def fetch_accounts(self, connection_external_id: str) -> list[Account]:
        data = self.client.accounts_get(self._token(connection_external_id))
        return [map_account(raw, connection_external_id) for raw in data["accounts"]]

    def fetch_connection(self, external_id: str) -> tuple[ConnectionState, list[Account]]:
        """The Item's state and its accounts, /item/get and /accounts/get sent at once."""
        token = self._token(external_id)
        state, answer = at_once(lambda: self._state(token), lambda: self.client.accounts_get(token))
        data = unless_blocked(state, answer)
        return state, [map_account(raw, external_id) for raw in data["accounts"]] if data else []

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account], cursor: str | None,
                           *, sink: Callable[[pa.RecordBatch], None] | None = None) -> TransactionChanges:
        """Every change since the cursor, applied page by page so the latest word on each id wins.

        An account that /transactions/sync lists but `accounts` lacks (added at the bank between the two
        calls) is mapped from the sync answer and appended to `accounts`, so the engine stores it along
        with its transactions. A transaction for an account neither lists is BadData: nothing is applied
        and the cursor stays, so no change is skipped. The walk must end before anything is mapped (a
        mutation restarts it from the pre-loop cursor); the mapped batches go to `sink`, or stay in the result.
        """
        with counting_requests() as count:
            walk = transactions_sync_all(self.client, self._token(connection_external_id), cursor)
        by_id = {a.external_id: a for a in accounts}
        for page in walk.pages:
            for raw in page["accounts"]:
                if isinstance(raw, dict) and raw.get("account_id") and str(raw["account_id"]) not in by_id:
                    account = map_account(raw, connection_external_id)
                    by_id[account.external_id] = account
                    accounts.append(account)
        live: dict[str, tuple[dict[str, Any], Account]] = {}
        gone: dict[str, None] = {}
        twice: dict[str, str] = {}  # id → account id: sent twice in one page with different values
        for page in walk.pages:
            in_page: dict[str, dict[str, Any]] = {}
            for raw in [*page["added"], *page["modified"]]:
                if not isinstance(raw, dict):
                    raise BadData("Plaid sent a transaction that is not an object.", code="BAD_TRANSACTION",
                                  provider=NAME)
                account = by_id.get(str(raw.get("account_id")))
                if account is None:
                    raise BadData("Plaid sent a transaction for an account it did not list. Nothing was changed; "
                                  "the next sync will try again.", code="UNKNOWN_ACCOUNT", provider=NAME)
                tid = str(raw.get("transaction_id"))
                if in_page.setdefault(tid, raw) != raw:
                    twice[tid] = account.external_id
                live.pop(tid, None)  # re-insert so the order follows Plaid's
                live[tid] = (raw, account)
                gone.pop(tid, None)
            for tid in _removed_ids(page):
                live.pop(tid, None)
                gone[tid] = None
        changes = TransactionChanges(provider=NAME, removed=list(gone), windows=[], cursor=walk.next_cursor or cursor,
                                     set_aside=[sent_twice(tid, account_id) for tid, account_id in twice.items()])
        rows = [row for tid, row in live.items() if tid not in twice]
        limits = Limits.around(self._now().date())
        for start in range(0, len(rows), MAP_CHUNK):
            chunk = rows[start:start + MAP_CHUNK]
            batch, rejected = map_screened(
                chunk, lambda pairs: map_transactions([raw for raw, _ in pairs], [account for _, account in pairs]),
                lambda pair: (pair[0].get("transaction_id"), pair[1].external_id), limits)
            changes.set_aside.extend(rejected)
            if batch is None:
                continue
            if sink is None:
                changes.batches.append(batch)
            else:
                sink(batch)
                changes.staged += batch.num_rows
        changes.requests = count.value
        return changes

    def disconnect(self, external_id: str) -> None:
        with contextlib.suppress(NotFound):  # already removed at Plaid: that is what we wanted
            self.client.item_remove(self._token(external_id))
        with self._lock:
            self._connected.pop(external_id, None)
