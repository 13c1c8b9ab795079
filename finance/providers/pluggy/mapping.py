"""Pluggy's objects mapped into the normalized model (pure): categories, accounts, transactions, items."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from finance.categories import UNCATEGORIZED
from finance.errors import (
    BadData,
)
from finance.http import (
    decode_body,
)
from finance.i18n import N_, Messages, _
from finance.model import (
    Account,
    AccountType,
    ConnectionState,
    ConnectionStatus,
    Institution,
    MfaPrompt,
    Transaction,
    TransactionColumns,
    TxnStatus,
    WireAmounts,
)
from finance.providers.wire import (
    instant_array,
    per_distinct,
    to_batch,
    to_transactions,
    wire_decimal,
    wire_instant,
)
from finance.providers.wire import local_dates as wire_local_dates

NAME = "pluggy"
LABEL = "Pluggy"
SAO_PAULO = ZoneInfo("America/Sao_Paulo")

CONSENT_WARNING = timedelta(days=7)
SETTLING_STATUSES = frozenset({"CREATED", "UPDATING", "MERGING"})  # CREATED: older docs, about to sync
PAYMENT_METHODS = frozenset({"PIX", "TED", "DOC", "TEV", "BOLETO"})



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
    accountNumber: str | None = None


class RawPaymentData(msgspec.Struct, gc=False):
    paymentMethod: str | None = None
    payer: RawParticipant | None = None
    receiver: RawParticipant | None = None


class RawMerchant(msgspec.Struct, gc=False):
    name: str | None = None
    businessName: str | None = None


class RawCardMetadata(msgspec.Struct, gc=False):
    purchaseDate: str | None = None
    billId: str | None = None
    payeeMCC: int | float | str | None = None  # "number" in the schema; some institutions send a string
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
    # The other side's account number: the receiver of money leaving the user, the payer of money arriving.
    counterparties = [party.accountNumber if (pay := r.paymentData)
                      and (party := pay.receiver if (a > 0 if card else a < 0) else pay.payer) else None
                      for r, a in zip(raws, amounts, strict=True)]
    methods = [(p.paymentMethod if (p := r.paymentData) else None) or r.operationType for r in raws]
    category_ids = [r.categoryId for r in raws]
    metas = [r.creditCardMetadata for r in raws]
    if metas.count(None) == n:  # bank accounts: no card metadata at all
        purchases: list[str | None] = [None] * n
        installments: list[int | None] = [None] * n
        totals: list[int | None] = [None] * n
        bills: list[str | None] | None = None
        codes: list[str | None] | None = None
    else:
        bills = [m.billId if m else None for m in metas]
        codes = [_mcc(m.payeeMCC) if m else None for m in metas]
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
        bill_id=bills,
        merchant_category_code=codes,
        counterparty_account=counterparties if counterparties.count(None) != n else None,
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


def _mcc(value: int | float | str | None) -> str | None:
    """A merchant category code as its four digits ("0742"), whatever JSON type carried it."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if math.isfinite(value) and value.is_integer() else None
    text = str(value).strip() if value is not None else ""
    return text.zfill(4) if text.isdigit() and len(text) <= 4 else None


def _optional_int(value: float | None) -> int | None:
    return int(value) if value is not None and math.isfinite(value) else None


ERROR_MESSAGES = Messages({
    "INVALID_CREDENTIALS": N_("The bank rejected the username or password. Reconnect with the right credentials."),
    "INVALID_CREDENTIALS_MFA": N_("The security code was not accepted. Reconnect and enter a new code."),
    "ACCOUNT_LOCKED": N_("The bank has locked this login. Unlock it with your bank, then reconnect."),
    "ACCOUNT_CREDENTIALS_RESET": N_("The bank asks you to reset your password. Do it with your bank, then reconnect."),
    "ACCOUNT_NEEDS_ACTION": N_("The bank needs you to act in its app or website first, then reconnect."),
    "ALREADY_LOGGED_IN": N_("Someone is logged in to this bank account elsewhere. Log out there and sync again."),
    "SITE_NOT_AVAILABLE": N_("The bank's site is unavailable right now. The next sync will try again."),
    "CONNECTION_ERROR": N_("Pluggy could not reach the bank. The next sync will try again."),
    "UNEXPECTED_ERROR": N_("The bank connection failed unexpectedly. The next sync will try again."),
    "USER_AUTHORIZATION_PENDING": N_("The bank is waiting for you to authorize access in its app."),
    "USER_AUTHORIZATION_NOT_GRANTED": N_("Access was not authorized at the bank. Reconnect to grant it."),
    "USER_NOT_SUPPORTED": N_("This kind of bank account is not supported by the connector."),
    "USER_INPUT_TIMEOUT": N_("The security code was not entered in time. Reconnect to try again."),
})

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
        message = _("The bank asks for a security code to finish connecting.")
    elif raw_status == "WAITING_USER_ACTION":
        status = ConnectionStatus.NEEDS_INPUT
        message = (raw.get("userAction") or {}).get("instructions") or _("The bank needs you to act in its app.")
    elif raw_status == "LOGIN_ERROR" or error_code in REAUTH_CODES:
        status = ConnectionStatus.NEEDS_RECONNECT
    elif consent is not None and consent <= now:
        status = ConnectionStatus.NEEDS_RECONNECT
        message = _("Your consent for this bank has expired. Reconnect to renew it.")
    else:
        status = ConnectionStatus.FAILED
    if error_code and message is None:
        message = ERROR_MESSAGES.get(error_code) or error.get("message") or _("The connection failed ({code}).").format(
            code=error_code)
    return ConnectionState(
        provider=NAME, external_id=item_id, status=status, provider_status=f"{raw_status}/{execution or '-'}",
        institution=institution, status_detail=message, error_code=error_code, error_message=message,
        consent_expires_at=consent, last_updated_at=parse_instant(raw.get("lastUpdatedAt")), mfa_prompt=mfa,
    )


