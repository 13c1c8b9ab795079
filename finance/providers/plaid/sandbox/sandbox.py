"""The /sandbox/* endpoints: items without Link, firing webhooks, resetting a login, creating transactions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from finance.providers.plaid.sandbox.base import (
    DEFAULT_DAYS_REQUESTED,
    PlaidApiError,
    PlaidBase,
    _Call,
    _int,
    _invalid,
    _iso_date,
    _object,
    _products,
    _string,
    _strings,
)
from finance.providers.plaid.sandbox.household import NEW_YORK

MAX_SANDBOX_TRANSACTIONS = 10
SANDBOX_TRANSACTIONS_MAX_AGE = timedelta(days=14)
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


class SandboxMixin(PlaidBase):
    """The /sandbox/* endpoints."""

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
                                 window=(start, end), user_id=_string(body, "user_id"))
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
