"""Plaid's objects mapped into the normalized model (pure): categories, accounts, transactions, Items, institutions,
and the error codes with the messages a person can act on.

Sign rule: Plaid's positive amount is money leaving the account on every account type, so every amount is negated here
(negative = money leaves the user, as in finance.model). A card's or loan's `balances.current` is the amount owed, so it
becomes a negative balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from finance.categories import UNCATEGORIZED
from finance.errors import BadData
from finance.i18n import N_, Messages, _
from finance.model import (
    Account,
    AccountType,
    ConnectionState,
    ConnectionStatus,
    Institution,
    Transaction,
    TransactionColumns,
    TxnStatus,
    WireAmounts,
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

NAME = "plaid"
LABEL = "Plaid"
CONSENT_WARNING = timedelta(days=7)


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
    "INCOME_RETIREMENT_PENSION": "income.benefits",  # retirement income counts as benefits in every provider
    "INCOME_TAX_REFUND": "income.other",
    "INCOME_OTHER_INCOME": "income.other",
    # v2 renames and splits (INCOME_WAGES became INCOME_SALARY; INCOME_OTHER_INCOME became INCOME_OTHER)
    "INCOME_MILITARY": "income.salary",
    "INCOME_LONG_TERM_DISABILITY": "income.benefits",
    "INCOME_CHILD_SUPPORT": "income.benefits",
    "INCOME_OTHER": "income.other",
    # Transfers: neither income nor spending
    "TRANSFER_IN": "transfer.own_accounts",
    "TRANSFER_OUT": "transfer.own_accounts",
    "TRANSFER_IN_INVESTMENT_AND_RETIREMENT_FUNDS": "transfer.investment",
    "TRANSFER_OUT_INVESTMENT_AND_RETIREMENT_FUNDS": "transfer.investment",
    # Borrowed money arriving (a loan disbursement, a card cash advance) is not income, and it is not a
    # repayment either: the generic "transfer" keeps it out of income and spending without mislabelling it.
    "TRANSFER_IN_CASH_ADVANCES_AND_LOANS": "transfer",
    "LOAN_DISBURSEMENTS": "transfer",  # v2's home for the same: money borrowed, arriving
    "TRANSFER_IN_TRANSFER_IN_FROM_APPS": "people",  # v2: Venmo, Zelle, Cash App from and to other people
    "TRANSFER_OUT_TRANSFER_OUT_FROM_APPS": "people",
    "TRANSFER_OUT_CRYPTO": "transfer.investment",
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
    "MEDICAL_VETERINARY_SERVICES": "shopping.pets",  # vets are filed under pets across providers
    "PERSONAL_CARE": "personal_care",
    "PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS": "health.fitness",
    "GENERAL_SERVICES": "services",
    "GENERAL_SERVICES_EDUCATION": "services.education",
    "GENERAL_SERVICES_INSURANCE": "services.insurance",
    "GENERAL_SERVICES_TELECOMMUNICATION": "services.telecom",
    "GENERAL_SERVICES_AUTOMOTIVE": "transport",  # car repairs and washes, with the other vehicle services
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


LEGACY_CATEGORY_MAP: dict[str, str] = {
    "Food and Drink": "food",
    "Food and Drink/Restaurants": "food.restaurants",
    "Shops": "shopping",
    "Shops/Supermarkets and Groceries": "food.groceries",
    "Shops/Pharmacies": "health.pharmacy",
    "Shops/Digital Purchase": "shopping.online",
    "Travel": "travel",
    "Travel/Taxi": "transport.rideshare",
    "Travel/Public Transportation Services": "transport.public",
    "Travel/Gas Stations": "transport.fuel",
    "Transfer": "transfer",
    "Transfer/Payroll": "income.salary",
    "Payment/Rent": "housing.rent",
    "Payment/Credit Card": "transfer.credit_card_payment",
    "Payment/Loan": "transfer.loan_payment",
    "Bank Fees": "fees",
    "Service/Subscription": "entertainment.streaming",
    "Service/Utilities": "housing.utilities",
    "Service/Telecommunication Services": "services.telecom",
    "Healthcare": "health",
    "Recreation": "entertainment",
    "Tax": "taxes",
    "Community": "services",
}
"""Plaid's legacy category hierarchy ("Food and Drink" > "Restaurants") → unified category, for a transaction that
carries no personal finance category; the longest matching path wins."""


def map_legacy_category(hierarchy: Any) -> str:
    """Unified category for Plaid's legacy `category` list; Uncategorized when it is absent or unknown."""
    if not isinstance(hierarchy, list) or not all(isinstance(level, str) for level in hierarchy):
        return UNCATEGORIZED
    for depth in range(len(hierarchy), 0, -1):
        mapped = LEGACY_CATEGORY_MAP.get("/".join(hierarchy[:depth]))
        if mapped:
            return mapped
    return UNCATEGORIZED


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
        if acc_type is AccountType.LOAN and available is not None:
            available = negate(available)  # what is owed, like its balance (a card's available is credit left)
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


def _legacy_key(hierarchy: Any) -> str | None:
    """The legacy category list as one hashable path (None when absent), for `per_distinct`."""
    if isinstance(hierarchy, list) and hierarchy and all(isinstance(level, str) for level in hierarchy):
        return "/".join(hierarchy)
    return None


def _unified_category(key: tuple[str | None, str | None, str | None]) -> str:
    """The personal finance category's mapping; the legacy category's only when Plaid sent no PFC."""
    primary, detailed, legacy = key
    if primary or detailed or legacy is None:
        return map_category(primary, detailed)
    return map_legacy_category(legacy.split("/"))


def _mcc(value: Any) -> str | None:
    """The merchant category code as Plaid sends it (four digits as text), None when absent or malformed."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if text.isdigit() and len(text) <= 4 else None


def _counterparty_account(parties: Any) -> str | None:
    """The first counterparty's account number: its IBAN, else its UK sort code and account number (BACS)."""
    for party in parties if isinstance(parties, list) else []:
        numbers = party.get("account_numbers") if isinstance(party, dict) else None
        if not isinstance(numbers, dict):
            continue
        international = numbers.get("international") if isinstance(numbers.get("international"), dict) else {}
        bacs = numbers.get("bacs") if isinstance(numbers.get("bacs"), dict) else {}
        iban = international.get("iban")
        if isinstance(iban, str) and iban.strip():
            return iban.strip()[:64]
        account, sort_code = bacs.get("account"), bacs.get("sort_code")
        if isinstance(account, str) and account.strip():
            prefix = f"{sort_code.strip()} " if isinstance(sort_code, str) and sort_code.strip() else ""
            return f"{prefix}{account.strip()}"[:64]
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
    legacy = [None if p or d else _legacy_key(r.get("category")) for r, p, d in zip(raws, primaries, detailed,
                                                                                       strict=True)]
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
        category=per_distinct(list(zip(primaries, detailed, legacy, strict=True)), _unified_category),
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
        merchant_category_code=[_mcc(r.get("merchant_category_code")) for r in raws],
        counterparty_account=[_counterparty_account(r.get("counterparties")) for r in raws],
    )


def map_transactions(raws: Sequence[dict[str, Any]], accounts: Sequence[Account]) -> pa.RecordBatch:
    """Plaid transactions as an Arrow batch for the store (see `transaction_columns`)."""
    return to_batch(transaction_columns(raws, accounts))


def map_transaction(raw: dict[str, Any], account: Account) -> Transaction:
    """One Plaid transaction as a `Transaction` with the exact amount (see `transaction_columns`)."""
    return to_transactions(transaction_columns([raw], [account]))[0]


# Messages a person can act on, by Plaid error_code.
ERROR_MESSAGES = Messages({
    "ITEM_LOGIN_REQUIRED": N_("Your bank needs you to log in again. Reconnect to restore access."),
    "PENDING_EXPIRATION": N_("Your consent for this bank expires soon. Reconnect to renew it."),
    "PENDING_DISCONNECT": N_("This bank connection will stop working soon. Reconnect to keep it."),
    "ACCESS_NOT_GRANTED": N_("The bank did not share the data this app needs. Reconnect and allow access to "
                             "your accounts and transactions."),
    "USER_PERMISSION_REVOKED": N_("Access to this bank was revoked. Reconnect to grant it again."),
    "USER_ACCOUNT_REVOKED": N_("Access to an account at this bank was revoked. Reconnect to grant it again."),
    "ITEM_LOCKED": N_("The bank has locked this login after too many attempts. Unlock it with your bank, "
                      "then reconnect."),
    "INVALID_CREDENTIALS": N_("The bank rejected the username or password. Reconnect with the right credentials."),
    "INVALID_MFA": N_("The security code was not accepted. Reconnect and enter a new code."),
    "INVALID_UPDATED_USERNAME": N_("The bank did not accept the new username. Reconnect with the right one."),
    "INSUFFICIENT_CREDENTIALS": N_("The bank login was not finished. Reconnect and complete it."),
    "NO_ACCOUNTS": N_("No usable accounts were found at this bank login. Reconnect and share at least one account."),
    "USER_SETUP_REQUIRED": N_("The bank needs you to finish setting up your account on its website, then reconnect."),
    "USER_INPUT_TIMEOUT": N_("The bank login was not completed in time. Reconnect to try again."),
    "INSTITUTION_DOWN": N_("The bank is unavailable right now. The next sync will try again."),
    "INSTITUTION_NOT_RESPONDING": N_("The bank is not responding right now. The next sync will try again."),
    "INSTITUTION_NOT_AVAILABLE": N_("The bank is unavailable through Plaid right now. The next sync will try again."),
    "PRODUCT_NOT_READY": N_("The bank's data is not ready yet. The next sync will try again."),
    "INTERNAL_SERVER_ERROR": N_("Plaid had an internal error. Nothing was changed; try again in a few minutes."),
    "PLANNED_MAINTENANCE": N_("Plaid is down for maintenance. Nothing was changed; try again later."),
    "ITEM_NOT_FOUND": N_("This connection no longer exists at Plaid. Remove it here and connect the bank again."),
    "INVALID_ACCESS_TOKEN": N_("Plaid does not recognise this connection's access token (removed, or from another "
                               "environment). Remove it here and connect the bank again."),
    "INSTITUTION_NOT_FOUND": N_("Plaid does not know this bank."),
    "INSTITUTION_NO_LONGER_SUPPORTED": N_("Plaid no longer supports this bank."),
    "ITEM_NOT_SUPPORTED": N_("Plaid cannot connect this kind of account at this bank."),
    "MFA_NOT_SUPPORTED": N_("This bank asks for a kind of security check Plaid does not support."),
})
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
        message = _("Your consent for this bank has expired. Reconnect to renew it.")
    elif error_code in EXPIRING_CODES:
        status_value, message = ConnectionStatus.CONSENT_EXPIRING, ERROR_MESSAGES[error_code]
    elif error is not None and error_code is not None:
        status_value = ConnectionStatus.FAILED
        message = (ERROR_MESSAGES.get(error_code) or short_text(error.get("display_message"))
                   or short_text(error.get("error_message"))
                   or _("The connection failed ({code}).").format(code=error_code))
    elif consent is not None and consent - now <= CONSENT_WARNING:
        status_value = ConnectionStatus.CONSENT_EXPIRING
        message = _("Your consent for this bank expires soon. Reconnect to renew it.")
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


def short_text(value: Any) -> str | None:
    """A message from Plaid, cut to 300 characters; None when absent or blank."""
    return str(value)[:300] if isinstance(value, str) and value.strip() else None
