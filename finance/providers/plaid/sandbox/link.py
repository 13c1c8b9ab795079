"""Plaid Link: /link/token/create, /item/public_token/exchange, and `complete_link` (what Link does when a user
finishes it, in normal or update mode).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from finance.providers.plaid.sandbox.base import (
    DEFAULT_DAYS_REQUESTED,
    PlaidApiError,
    PlaidBase,
    _Call,
    _country_codes,
    _int,
    _invalid,
    _object,
    _parse,
    _products,
    _string,
    _strings,
    _wire_time,
)
from finance.sandbox.ledger import stable_uuid

LINK_TOKEN_TTL = timedelta(hours=4)
UPDATE_LINK_TOKEN_TTL = timedelta(minutes=30)
PUBLIC_TOKEN_TTL = timedelta(minutes=30)
LANGUAGES = frozenset({"da", "nl", "en", "et", "fr", "de", "hi", "it", "lv", "lt", "no", "pl", "pt", "ro", "es", "sv",
                       "vi"})
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


class LinkMixin(PlaidBase):
    """Link tokens, public tokens and the Link flow itself."""

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
                                         days_requested=record["days_requested"], user_id=record.get("user_id"))
            token = self._issue_public_token(item, now)
            self._save()
            return token

    def _issue_public_token(self, item: dict[str, Any], now: datetime) -> str:
        self._counters["public"] += 1
        token = f"public-sandbox-{stable_uuid(self.seed, 'public', self._counters['public'], now.isoformat())}"
        self._public_tokens[token] = {"item_id": item["item_id"], "expires_at": (now + PUBLIC_TOKEN_TTL).isoformat(),
                                      "used": False}
        return token

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
                                    "webhook": _string(body, "webhook"), "days_requested": days,
                                    "user_id": _string(body, "user_id")}
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
