"""Pluggy (Brazil): the httpx client for api.pluggy.ai and the mapping of its objects into finance.model.

The same code runs against the real API and against the offline emulator (finance.sandbox.pluggy),
which replaces only the transport.
"""

from __future__ import annotations

import base64
import contextvars
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from finance.categories import UNCATEGORIZED
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
    counting_requests,
    decode_body,
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
    MfaPrompt,
    SetAside,
    Transaction,
    TransactionChanges,
    TransactionColumns,
    TxnStatus,
    WireAmounts,
)
from finance.providers.base import at_once, unless_blocked
from finance.providers.wire import (
    instant_array,
    per_distinct,
    to_batch,
    to_transactions,
    wire_decimal,
    wire_instant,
)
from finance.providers.wire import local_dates as wire_local_dates
from finance.screening import Limits, map_screened

NAME = "pluggy"
LABEL = "Pluggy"
SAO_PAULO = ZoneInfo("America/Sao_Paulo")

API_KEY_REFRESH_MARGIN = timedelta(minutes=10)  # keys live 2 h; renew well before
FIRST_SYNC_DAYS = 365  # Pluggy keeps 12 months of history
REREAD_DAYS = 14  # pending rows post, change or vanish within this window
CREATED_AT_OVERLAP = timedelta(hours=6)  # createdAt high-water marks are re-read with a margin
CONSENT_WARNING = timedelta(days=7)
SETTLING_STATUSES = frozenset({"CREATED", "UPDATING", "MERGING"})  # CREATED: older docs, about to sync
PAYMENT_METHODS = frozenset({"PIX", "TED", "DOC", "TEV", "BOLETO"})


# --------------------------------------------------------------------------------------------
# Mapping (pure functions)
# --------------------------------------------------------------------------------------------

# Pluggy category id prefix → unified category. The longest matching prefix wins.
CATEGORY_MAP: dict[str, str] = {
    "01": "income", "0101": "income.salary", "0102": "income.benefits", "0103": "income.other",
    "0104": "income.benefits", "0105": "income.other",
    "02": "transfer.loan_payment", "0201": "fees", "0202": "fees",
    "03": "transfer.investment", "0306": "income.interest",
    "04": "transfer.own_accounts",
    "05": "people", "0510": "transfer.credit_card_payment",
    "06": "services",
    "07": "services", "0701": "services.telecom", "0702": "services.education", "0703": "health.fitness",
    "0704": "entertainment",
    "08": "shopping", "0801": "shopping.online", "0802": "shopping.electronics", "0803": "shopping.pets",
    "0804": "shopping.clothing", "0809": "income.other",
    "09": "entertainment.streaming", "0901": "entertainment",
    "10": "food.groceries",
    "11": "food", "1101": "food.restaurants", "1102": "food.delivery",
    "12": "travel",
    "13": "donations",
    "14": "gambling",
    "15": "taxes",
    "16": "fees",
    "17": "housing", "1701": "housing.rent", "1702": "housing.utilities", "1703": "housing.home", "1704": "taxes",
    "18": "health", "1802": "health.pharmacy",
    "19": "transport", "1901": "transport.rideshare", "1902": "transport.public", "19050001": "transport.fuel",
    "19050002": "transport.parking_tolls", "19050003": "transport.parking_tolls",
    "20": "services.insurance",
    "21": "entertainment",
    "99": UNCATEGORIZED,
}


def map_category(category_id: str | None) -> str:
    """Unified category for a Pluggy category id; unknown or missing ids are Uncategorized."""
    if not category_id:
        return UNCATEGORIZED
    for length in (8, 6, 4, 2):
        mapped = CATEGORY_MAP.get(category_id[:length])
        if mapped:
            return mapped
    return UNCATEGORIZED


def parse_instant(value: str | None) -> datetime | None:
    """A Pluggy ISO timestamp (UTC, with or without milliseconds) as an aware datetime."""
    return wire_instant(value, provider=NAME, label=LABEL)


DAY_MICROS = 86_400_000_000


def local_dates(instants: pa.Array) -> pa.Array:
    """The São Paulo calendar day of each Pluggy transaction instant (UTC timestamps).

    Pluggy pads date-only values to midnight UTC; those are taken as the date they name. Any other
    instant is converted to America/Sao_Paulo first (T03:00Z is local midnight; 02:30Z is the
    evening before), so a late purchase lands on the day the user made it.
    """
    micros = instants.cast(pa.int64())
    padded = pc.equal(pc.multiply(pc.divide(micros, DAY_MICROS), DAY_MICROS), micros)  # exactly 00:00:00.000000Z
    return pc.if_else(padded, pc.cast(instants, pa.date32()), wire_local_dates(instants, SAO_PAULO.key))


def local_date(value: str) -> date:
    """The São Paulo calendar day of one Pluggy transaction date (see `local_dates`)."""
    day = local_dates(instant_array([value], provider=NAME))[0].as_py()
    if day is None:
        raise BadData(f"Pluggy sent an unreadable date: {str(value)[:40]!r}", code="BAD_DATE", provider=NAME)
    return day


def to_decimal(value: Any, field: str) -> Decimal:
    return wire_decimal(value, field, provider=NAME, label=LABEL)


def _optional_decimal(value: Any, field: str) -> Decimal | None:
    return None if value is None else to_decimal(value, field)


def account_type(raw_type: str | None, subtype: str | None) -> AccountType:
    if raw_type == "CREDIT" or subtype == "CREDIT_CARD":
        return AccountType.CREDIT_CARD
    if subtype == "SAVINGS_ACCOUNT":
        return AccountType.SAVINGS
    if subtype == "CHECKING_ACCOUNT" or (raw_type == "BANK" and not subtype):
        return AccountType.CHECKING
    return AccountType.OTHER


def _mask(number: str | None) -> str | None:
    digits = "".join(ch for ch in (number or "") if ch.isdigit())
    return digits[-4:] if digits else None


def map_account(raw: dict[str, Any], *, as_of: datetime | None = None) -> Account:
    """A Pluggy account. A card's balance is the amount owed (positive), so it becomes negative here."""
    try:
        acc_type = account_type(raw.get("type"), raw.get("subtype"))
        balance = _optional_decimal(raw.get("balance"), "balance")
        credit = raw.get("creditData") or {}
        available: Decimal | None = None
        limit: Decimal | None = None
        if acc_type is AccountType.CREDIT_CARD:
            balance = -balance if balance is not None else None
            available = _optional_decimal(credit.get("availableCreditLimit"), "available credit")
            limit = _optional_decimal(credit.get("creditLimit"), "credit limit")
        return Account(
            provider=NAME,
            external_id=str(raw["id"]),
            connection_external_id=str(raw["itemId"]),
            type=acc_type,
            name=str(raw.get("marketingName") or raw.get("name") or "Account"),
            currency=str(raw.get("currencyCode") or "BRL"),
            current_balance=balance,
            available_balance=available,
            credit_limit=limit,
            mask=_mask(raw.get("number")),
            subtype=raw.get("subtype"),
            balance_as_of=as_of,
        )
    except KeyError as exc:
        raise BadData(f"Pluggy sent an account without {exc.args[0]}.", code="BAD_ACCOUNT", provider=NAME) from exc


def _payment_method(method: Any, acc_type: AccountType) -> str | None:
    method = (method or "").upper()
    if method in PAYMENT_METHODS:
        return method
    if acc_type is AccountType.CREDIT_CARD:
        return "CARD"
    return method or None


def _status(value: Any) -> str:
    return TxnStatus.PENDING.value if str(value or "POSTED").upper() == "PENDING" else TxnStatus.POSTED.value


# The part of Pluggy's Transaction (pluggy-sdk-schemas.json) the mapping reads, field names as Pluggy spells them,
# decoded straight from a page's bytes: the shape is checked while decoding, other fields are skipped unread,
# amounts are exact Decimals, and the objects are not tracked by the garbage collector (a 1M-row sync makes
# millions of them).
class RawDocument(msgspec.Struct, gc=False):
    value: str | None = None


class RawParticipant(msgspec.Struct, gc=False):
    name: str | None = None
    documentNumber: RawDocument | None = None


class RawPaymentData(msgspec.Struct, gc=False):
    paymentMethod: str | None = None
    payer: RawParticipant | None = None
    receiver: RawParticipant | None = None


class RawMerchant(msgspec.Struct, gc=False):
    name: str | None = None
    businessName: str | None = None


class RawCardMetadata(msgspec.Struct, gc=False):
    purchaseDate: str | None = None
    installmentNumber: int | float | None = None  # "number" in the schema
    totalInstallments: int | float | None = None


class RawTransaction(msgspec.Struct, gc=False):
    """One Pluggy transaction as sent (the fields the mapping reads)."""

    id: str
    amount: Decimal
    date: str
    description: str | None = None
    descriptionRaw: str | None = None
    currencyCode: str | None = None
    amountInAccountCurrency: Decimal | None = None
    category: str | None = None
    categoryId: str | None = None
    status: str | None = None
    operationType: str | None = None
    paymentData: RawPaymentData | None = None
    merchant: RawMerchant | None = None
    creditCardMetadata: RawCardMetadata | None = None
    createdAt: str | None = None


class RawTransactionPage(msgspec.Struct, gc=False):
    """One /v2/transactions answer."""

    results: list[RawTransaction]
    next: str | None = None


TRANSACTION_PAGE = msgspec.json.Decoder(RawTransactionPage)


def read_transaction_page(content: bytes) -> RawTransactionPage:
    """A /v2/transactions answer's bytes, decoded and shape-checked; BadData (nothing stored) otherwise."""
    return cast(RawTransactionPage, decode_body(content, NAME, LABEL, TRANSACTION_PAGE))


def read_transactions(raws: Sequence[dict[str, Any]]) -> list[RawTransaction]:
    """Transactions already decoded as plain JSON objects (fixtures, one-off lookups), shape-checked."""
    try:
        return msgspec.convert(list(raws), list[RawTransaction])
    except msgspec.ValidationError as exc:
        raise BadData(f"Pluggy sent a transaction that does not have the documented shape ({exc}).",
                      code="BAD_TRANSACTION", provider=NAME) from exc


def transaction_columns(raws: Sequence[RawTransaction], account: Account) -> TransactionColumns:
    """THE mapping of Pluggy transactions of one account, signed so that negative is money leaving the user.

    Bank accounts already use that sign. On credit cards Pluggy sends purchases positive and
    payments negative, so the sign is flipped. Foreign purchases use amountInAccountCurrency and
    keep the original currency and amount beside it. Rendered by `map_transactions` (bulk) and
    `map_transaction` (one object).
    """
    card = account.type is AccountType.CREDIT_CARD
    n = len(raws)
    amounts: list[Decimal] = [r.amount for r in raws]
    currencies = [r.currencyCode or account.currency for r in raws]
    originals: list[Decimal | None] = [None] * n
    original_currencies: list[str | None] = [None] * n
    if currencies.count(account.currency) != n:
        for i, currency in enumerate(currencies):
            if currency != account.currency:
                in_account = raws[i].amountInAccountCurrency
                if in_account is None:
                    raise BadData("Pluggy sent a foreign-currency transaction without its amount in the account "
                                  "currency.", code="BAD_AMOUNT", provider=NAME)
                originals[i], original_currencies[i] = amounts[i], currency
                amounts[i] = in_account
    # The merchant's name; without one, the other side of a transfer (the receiver of money leaving the user,
    # the payer of money arriving: on cards a positive amount leaves), by name or document number.
    merchants = [name if (m := r.merchant) and (name := m.name or m.businessName)
                 else (party.name or (party.documentNumber.value if party.documentNumber else None)
                       if (pay := r.paymentData)
                       and (party := pay.receiver if (a > 0 if card else a < 0) else pay.payer)
                       else None)
                 for r, a in zip(raws, amounts, strict=True)]
    methods = [(p.paymentMethod if (p := r.paymentData) else None) or r.operationType for r in raws]
    category_ids = [r.categoryId for r in raws]
    metas = [r.creditCardMetadata for r in raws]
    if metas.count(None) == n:  # bank accounts: no card metadata at all
        purchases: list[str | None] = [None] * n
        installments: list[int | None] = [None] * n
        totals: list[int | None] = [None] * n
    else:
        purchases = [m.purchaseDate if m else None for m in metas]
        installments = [_optional_int(m.installmentNumber) if m else None for m in metas]
        totals = [_optional_int(m.totalInstallments) if m else None for m in metas]
    return TransactionColumns(
        provider=NAME,
        external_id=[r.id for r in raws],
        account_external_id=pa.repeat(account.external_id, n),
        booked_date=local_dates(instant_array([r.date for r in raws], provider=NAME)),
        amount=WireAmounts(amounts, negate=card, field="amount"),
        currency=pa.repeat(account.currency, n),
        description=[r.description or r.descriptionRaw or "" for r in raws],
        status=per_distinct([r.status for r in raws], _status),
        category=per_distinct(category_ids, map_category),
        provider_category=[r.category for r in raws],
        provider_category_id=category_ids,
        authorized_date=local_dates(instant_array(purchases, provider=NAME)),
        original_amount=WireAmounts(originals, negate=card, field="amount", optional=True),
        original_currency=original_currencies,
        merchant=merchants,
        payment_method=per_distinct(methods, lambda m: _payment_method(m, account.type)),
        installment_number=installments,
        installment_total=totals,
        pending_external_id=pa.nulls(n, pa.string()),
        provider_created_at=instant_array([r.createdAt for r in raws], provider=NAME),
    )


MAP_CHUNK_ROWS = 500
"""Rows mapped at once: a full /v2/transactions page, mapped as soon as it is decoded. Mapping rows while they are
still in the CPU's caches beats amortizing Arrow's per-call cost over bigger chunks (decode and map: ~3.1 µs a
row at 500, ~5 µs at 2,000 here), and leaves little to map after a walk's last page."""


def page_chunks(pages: Iterable[list[RawTransaction]], rows: int = MAP_CHUNK_ROWS) -> Iterator[list[RawTransaction]]:
    """Consecutive pages joined into chunks of at least `rows` rows (the last may be smaller)."""
    chunk: list[RawTransaction] = []
    for page in pages:
        chunk.extend(page)
        if len(chunk) >= rows:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def map_transactions(raws: Sequence[RawTransaction], account: Account) -> pa.RecordBatch:
    """Pluggy transactions of one account as an Arrow batch for the store (see `transaction_columns`)."""
    return to_batch(transaction_columns(raws, account))


def map_transaction(raw: RawTransaction | dict[str, Any], account: Account) -> Transaction:
    """One Pluggy transaction as a `Transaction` with the exact amount (see `transaction_columns`)."""
    row = read_transactions([raw])[0] if isinstance(raw, dict) else raw
    return to_transactions(transaction_columns([row], account))[0]


def _optional_int(value: float | None) -> int | None:
    return int(value) if value is not None and math.isfinite(value) else None


ERROR_MESSAGES: dict[str, str] = {
    "INVALID_CREDENTIALS": "The bank rejected the username or password. Reconnect with the right credentials.",
    "INVALID_CREDENTIALS_MFA": "The security code was not accepted. Reconnect and enter a new code.",
    "ACCOUNT_LOCKED": "The bank has locked this login. Unlock it with your bank, then reconnect.",
    "ACCOUNT_CREDENTIALS_RESET": "The bank asks you to reset your password. Do it with your bank, then reconnect.",
    "ACCOUNT_NEEDS_ACTION": "The bank needs you to act in its app or website first, then reconnect.",
    "ALREADY_LOGGED_IN": "Someone is logged in to this bank account elsewhere. Log out there and sync again.",
    "SITE_NOT_AVAILABLE": "The bank's site is unavailable right now. The next sync will try again.",
    "CONNECTION_ERROR": "Pluggy could not reach the bank. The next sync will try again.",
    "UNEXPECTED_ERROR": "The bank connection failed unexpectedly. The next sync will try again.",
    "USER_AUTHORIZATION_PENDING": "The bank is waiting for you to authorize access in its app.",
    "USER_AUTHORIZATION_NOT_GRANTED": "Access was not authorized at the bank. Reconnect to grant it.",
    "USER_NOT_SUPPORTED": "This kind of bank account is not supported by the connector.",
    "USER_INPUT_TIMEOUT": "The security code was not entered in time. Reconnect to try again.",
}

REAUTH_CODES = frozenset({
    "INVALID_CREDENTIALS", "INVALID_CREDENTIALS_MFA", "ACCOUNT_LOCKED", "ACCOUNT_CREDENTIALS_RESET",
    "ACCOUNT_NEEDS_ACTION", "USER_AUTHORIZATION_NOT_GRANTED", "USER_INPUT_TIMEOUT", "USER_AUTHORIZATION_REVOKED",
})


def map_item(raw: dict[str, Any], *, now: datetime | None = None) -> ConnectionState:
    """A Pluggy item as our connection state, with a message a person can act on."""
    try:
        item_id = str(raw["id"])
    except KeyError as exc:
        raise BadData("Pluggy sent an item without an id.", code="BAD_ITEM", provider=NAME) from exc
    now = now or datetime.now(UTC)
    raw_status = str(raw.get("status") or "UNKNOWN")
    execution = raw.get("executionStatus")
    error = raw.get("error") or {}
    error_code = error.get("code") or (execution if raw_status in ("LOGIN_ERROR", "OUTDATED") else None)
    consent = parse_instant(raw.get("consentExpiresAt"))
    connector = raw.get("connector") or {}
    institution = Institution(
        id=str(connector.get("id", "")), name=str(connector.get("name") or "Unknown bank"),
        logo_url=connector.get("imageUrl"), primary_color=connector.get("primaryColor"),
        is_sandbox=bool(connector.get("isSandbox")),
    ) if connector else None
    mfa: MfaPrompt | None = None
    message: str | None = None
    if raw_status in SETTLING_STATUSES:
        status = ConnectionStatus.SYNCING
    elif raw_status == "UPDATED":
        status = ConnectionStatus.ACTIVE
        if consent is not None and consent - now <= CONSENT_WARNING:
            status = ConnectionStatus.CONSENT_EXPIRING if consent > now else ConnectionStatus.NEEDS_RECONNECT
            message = ("Your consent for this bank expires soon. Reconnect to renew it." if consent > now
                       else "Your consent for this bank has expired. Reconnect to renew it.")
        elif execution == "PARTIAL_SUCCESS":
            message = "The bank returned only part of the data on the last update."
    elif raw_status == "WAITING_USER_INPUT":
        status = ConnectionStatus.NEEDS_INPUT
        parameter = raw.get("parameter") or {}
        mfa = MfaPrompt(
            name=str(parameter.get("name") or "token"), label=str(parameter.get("label") or "Security code"),
            kind=str(parameter.get("type") or "text"), instructions=parameter.get("instructions"),
            expires_at=parse_instant(parameter.get("expiresAt")),
        )
        message = "The bank asks for a security code to finish connecting."
    elif raw_status == "WAITING_USER_ACTION":
        status = ConnectionStatus.NEEDS_INPUT
        message = (raw.get("userAction") or {}).get("instructions") or "The bank needs you to act in its app."
    elif raw_status == "LOGIN_ERROR" or error_code in REAUTH_CODES:
        status = ConnectionStatus.NEEDS_RECONNECT
    elif consent is not None and consent <= now:
        status = ConnectionStatus.NEEDS_RECONNECT
        message = "Your consent for this bank has expired. Reconnect to renew it."
    else:
        status = ConnectionStatus.FAILED
    if error_code and message is None:
        message = ERROR_MESSAGES.get(error_code) or error.get("message") or f"The connection failed ({error_code})."
    return ConnectionState(
        provider=NAME, external_id=item_id, status=status, provider_status=f"{raw_status}/{execution or '-'}",
        institution=institution, status_detail=message, error_code=error_code, error_message=message,
        consent_expires_at=consent, last_updated_at=parse_instant(raw.get("lastUpdatedAt")), mfa_prompt=mfa,
    )


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------

def _decode_json(response: httpx.Response) -> Any:
    return decode_json(response, NAME, LABEL)


NOT_FOUND_MESSAGES = {
    "ITEM_NOT_FOUND": "This connection no longer exists at Pluggy. Remove it here and connect the bank again.",
    "ACCOUNT_NOT_FOUND": "This account no longer exists at Pluggy.",
    "CONNECTOR_NOT_FOUND": "This bank is no longer offered by Pluggy.",
}


def classify_response(response: httpx.Response) -> ProviderError | None:
    """None for a usable response; otherwise the typed error it means."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    body = error_body(response)
    code = body.get("codeDescription")
    detail = str(body.get("message") or "")[:300]
    if status == 429:
        return RateLimited("Pluggy is rate limiting requests; the sync will resume shortly.",
                           retry_after=retry_after_seconds(response), code="RATE_LIMITED", provider=NAME, status=429)
    if status >= 500:
        return TransientError(f"Pluggy had a server error (HTTP {status}). Nothing was changed; try again in a "
                              "few minutes.", code=code or f"HTTP_{status}", provider=NAME, status=status)
    if status in (401, 403) and code in (None, "CLIENT_KEYS_UNAUTHORIZED", "CLIENT_DISABLED"):
        return ConfigurationError("Pluggy rejected our client credentials. Check PLUGGY_CLIENT_ID and "
                                  "PLUGGY_CLIENT_SECRET.", code=code or f"HTTP_{status}", provider=NAME,
                                  status=status)
    if status == 404:
        return NotFound(NOT_FOUND_MESSAGES.get(code or "", detail or "Not found at Pluggy."),
                        code=code or "NOT_FOUND", provider=NAME, status=404)
    if status == 409 and code == "CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY":
        hours = (body.get("data") or {}).get("minUpdateFrequencyAllowedInHours") or 24
        return RateLimited(f"Pluggy allows refreshing this bank only every {hours} hours.",
                           retry_after=float(hours) * 3600, code=code, provider=NAME, status=409)
    if code in ("MFA_PARAMERTER_WAS_ALREADY_USED_ERROR", "CONNECTOR_REQUIRED_PARAMETER_VALIDATION_ERROR",
                "TOO_MANY_CONSECUTIVE_LOGIN_FAILURES"):
        return ReauthRequired(f"The bank needs fresh credentials: {detail}", code=code, provider=NAME,
                              status=status)
    return RequestRejected(f"Pluggy refused the request: {detail or 'HTTP ' + str(status)}",
                           code=code or f"HTTP_{status}", provider=NAME, status=status)


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


RATE_LIMITS: dict[str, int] = {"auth": 360, "accounts": 360, "transactions": 360, "item_update": 20}
"""Requests per minute per IP and endpoint group (reference pluggy.md §7.2); /v2/transactions counts as transactions."""


def rate_limit_group(method: str, path: str) -> str | None:
    """The limit group a request counts against, or None for endpoints without a published limit."""
    if method == "POST" and path == "/auth":
        return "auth"
    if method == "GET" and (path == "/accounts" or path.startswith("/accounts/")):
        return "accounts"
    if method == "GET" and (path in ("/transactions", "/v2/transactions") or path.startswith("/transactions/")):
        return "transactions"
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
            raise ConfigurationError("Pluggy needs a client id and secret.", code="NO_CREDENTIALS", provider=NAME)
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


# --------------------------------------------------------------------------------------------
# Provider (what the sync engine and the pages use)
# --------------------------------------------------------------------------------------------

class PluggyProvider:
    """Pluggy behind the Provider interface, plus the connect flow (items, MFA, polling)."""

    name = NAME
    label = LABEL

    def __init__(self, client: PluggyClient, *, today: Callable[[], date] | None = None,
                 now: Callable[[], datetime] | None = None, max_workers: int = 4) -> None:
        self.client = client
        self._now = now or (lambda: datetime.now(UTC))
        self._today = today or (lambda: self._now().astimezone(SAO_PAULO).date())
        self._max_workers = max_workers

    # -- connect flow -------------------------------------------------------------------------
    def institutions(self) -> list[Institution]:
        """Connectors a user can pick, sandbox ones included (they are how testers connect)."""
        return [
            Institution(id=str(c["id"]), name=str(c.get("name") or c["id"]), logo_url=c.get("imageUrl"),
                        primary_color=c.get("primaryColor"), is_sandbox=bool(c.get("isSandbox")))
            for c in self.client.connectors(sandbox=True)
        ]

    def credential_fields(self, institution_id: str) -> list[dict[str, Any]]:
        return list(self.client.connector(int(institution_id)).get("credentials") or [])

    def create_connection(self, institution_id: str, credentials: dict[str, str]) -> ConnectionState:
        return map_item(self.client.create_item(int(institution_id), credentials), now=self._now())

    def submit_mfa(self, external_id: str, values: dict[str, str]) -> ConnectionState:
        return map_item(self.client.send_mfa(external_id, values), now=self._now())

    def reconnect(self, external_id: str, credentials: dict[str, str] | None = None) -> ConnectionState:
        return map_item(self.client.update_item(external_id, credentials), now=self._now())

    def wait_until_settled(self, external_id: str, *, on_progress: Callable[[str], None] | None = None,
                           timeout: float = 300.0, interval: float = 1.0,
                           sleep: Sleep = time.sleep) -> ConnectionState:
        """Poll the item until Pluggy finishes talking to the bank (or asks the user for something)."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self.client.item(external_id)
            state = map_item(raw, now=self._now())
            if state.status is not ConnectionStatus.SYNCING:
                return state
            if on_progress:
                on_progress(str(raw.get("executionStatus") or raw.get("status")))
            if time.monotonic() >= deadline:
                raise TransientError("The bank is taking too long to answer. The connection will finish in the "
                                     "background; sync again in a few minutes.", code="ITEM_TIMEOUT", provider=NAME)
            sleep(interval)

    # -- Provider interface ---------------------------------------------------------------------
    def connection_state(self, external_id: str) -> ConnectionState:
        return map_item(self.client.item(external_id), now=self._now())

    def fetch_accounts(self, connection_external_id: str) -> list[Account]:
        item = self.client.item(connection_external_id)
        as_of = parse_instant(item.get("lastUpdatedAt")) or self._now()
        return [map_account(raw, as_of=as_of) for raw in self.client.accounts(connection_external_id)]

    def fetch_connection(self, external_id: str) -> tuple[ConnectionState, list[Account]]:
        """The item's state and its accounts, GET /items/{id} and GET /accounts sent at once (the item dates them)."""
        item, raw_accounts = at_once(lambda: self.client.item(external_id), lambda: self.client.accounts(external_id))
        state = map_item(item, now=self._now())
        as_of = state.last_updated_at or self._now()
        return state, [map_account(raw, as_of=as_of) for raw in unless_blocked(state, raw_accounts) or []]

    def fetch_transactions(self, connection_external_id: str, accounts: list[Account], cursor: str | None,
                           *, sink: Callable[[pa.RecordBatch], None] | None = None) -> TransactionChanges:
        """New rows since the createdAt high-water mark, plus a full re-read of the recent window.

        The re-read window is authoritative: a stored row dated inside it that Pluggy no longer lists
        (a pending charge that posted under a new id, or was dropped) is removed by the sync engine.
        Each page is mapped as it arrives and handed to `sink` (from several threads; the accounts are
        read concurrently), or kept in the result's batches without one; raw pages are never accumulated.
        """
        state = _load_cursor(cursor)
        today = self._today()
        limits = Limits.around(today)
        changes = TransactionChanges(provider=NAME)
        kept_lock = threading.Lock()

        def emit(batch: pa.RecordBatch) -> None:
            if sink is not None:
                sink(batch)
            with kept_lock:
                if sink is None:
                    changes.batches.append(batch)
                else:
                    changes.staged += batch.num_rows

        def fetch_one(account: Account) -> tuple[date, AccountCursor]:
            known = state.get(account.external_id)
            since: datetime | None = None
            if known is None:
                origin = window_start = today - timedelta(days=FIRST_SYNC_DAYS)
            else:
                # Re-read from before the previous sync's window, so every row that was pending then is seen.
                origin = known.origin
                window_start = max(origin, min(today, known.synced_on) - timedelta(days=REREAD_DAYS))
                since = (parse_instant(known.mark) or self._now()) - CREATED_AT_OVERLAP
            newest: datetime | None = None
            retry_from: datetime | None = None  # the earliest createdAt of a row set aside: read again next time
            in_window: set[str] = set()  # the window's version of a row wins over the createdAt walk's
            first_day = pa.scalar(origin, pa.date32())
            walks: list[dict[str, Any]] = [{"date_from": window_start}]
            if since is not None:
                walks.append({"created_at_from": since})
            for walk in walks:
                for rows in page_chunks(self.client.transaction_pages(account.external_id, **walk)):
                    if "created_at_from" in walk:
                        rows = [raw for raw in rows if raw.id not in in_window]
                    if not rows:
                        continue
                    if since is not None and "date_from" in walk:
                        in_window.update(raw.id for raw in rows)
                    batch, rejected = map_screened(rows, lambda chunk: map_transactions(chunk, account),
                                                   lambda raw: (raw.id, account.external_id), limits)
                    if rejected:
                        with kept_lock:
                            changes.set_aside.extend(rejected)
                        retry_from = _earliest_created(rows, rejected, limits, retry_from)
                    if batch is None:
                        continue
                    latest = pc.max(batch.column("provider_created_at")).as_py()
                    newest = latest if newest is None or (latest is not None and latest > newest) else newest
                    # Rows created lately but dated before the first sync's window stay out, as they did then.
                    batch = batch.filter(pc.greater_equal(batch.column("booked_date"), first_day))
                    if batch.num_rows:
                        emit(batch)
            if retry_from is not None and (newest is None or retry_from < newest):
                newest = retry_from  # a provider that corrects a bad row re-sends it with the same createdAt
            mark = newest.isoformat() if newest else (known.mark if known else None)
            return window_start, AccountCursor(mark=mark, origin=origin, synced_on=today)

        new_state = dict(state)
        workers = max(1, min(self._max_workers, len(accounts)))
        with counting_requests() as count, ThreadPoolExecutor(max_workers=workers) as pool:
            # Each worker runs in a copy of this context, so its requests count here (and in the sync's count).
            futures = [pool.submit(contextvars.copy_context().run, fetch_one, account) for account in accounts]
            for account, future in zip(accounts, futures, strict=True):
                window_start, account_cursor = future.result()
                changes.windows.append((account.external_id, window_start))
                new_state[account.external_id] = account_cursor
        changes.cursor = _dump_cursor(new_state)
        changes.requests = count.value
        return changes

    def disconnect(self, external_id: str) -> None:
        try:
            self.client.delete_item(external_id)
        except NotFound:
            return  # already gone at Pluggy: that is what we wanted


def _earliest_created(rows: Sequence[RawTransaction], rejected: Sequence[SetAside], limits: Limits,
                      earliest: datetime | None) -> datetime | None:
    """The earliest readable, plausible createdAt among the rejected rows (and `earliest`)."""
    ids = {row.external_id for row in rejected}
    for raw in rows:
        if raw.id not in ids:
            continue
        try:
            created = parse_instant(raw.createdAt)
        except BadData:
            continue
        if created is None or not limits.earliest <= created.date() <= limits.latest:
            continue
        if earliest is None or created < earliest:
            earliest = created
    return earliest


@dataclass(frozen=True, slots=True)
class AccountCursor:
    """Where an account's sync stands: the newest createdAt seen, the first day ever synced, the last sync day."""

    mark: str | None
    origin: date
    synced_on: date


def _dump_cursor(state: dict[str, AccountCursor]) -> str:
    return json.dumps({"v": 2, "accounts": {k: {"mark": v.mark, "origin": v.origin.isoformat(),
                                                "synced_on": v.synced_on.isoformat()}
                                            for k, v in sorted(state.items())}})


def _load_cursor(cursor: str | None) -> dict[str, AccountCursor]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
        return {str(k): AccountCursor(mark=v.get("mark"), origin=date.fromisoformat(v["origin"]),
                                      synced_on=date.fromisoformat(v["synced_on"]))
                for k, v in (data.get("accounts") or {}).items()}
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}  # an unreadable cursor only costs a full re-read
