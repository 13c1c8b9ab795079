"""Items: sandbox users and item creation, refreshes and login expiry (what falls due as the clock moves),
/item/get and /item/remove, and the testers' hooks `reset_login`, `advance`, `list_items`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from finance.providers.plaid.sandbox.accounts import _custom_accounts
from finance.providers.plaid.sandbox.base import (
    PlaidApiError,
    PlaidBase,
    _Call,
    _invalid,
    _parse,
    _string,
    _wire_time,
    plaid_id,
)
from finance.sandbox.ledger import stable_uuid

REFRESH_EVERY = timedelta(hours=6)
"""How often a healthy item's data is refreshed from the institution (Plaid: one to four times a day)."""
LOGIN_EXPIRES_AFTER: timedelta | None = None
"""Plaid's sandbox items fall into ITEM_LOGIN_REQUIRED 30 days after their last login; None (default) turns that off."""
FORCEABLE_ERRORS = frozenset({
    "INSTITUTION_DOWN", "INSTITUTION_NOT_RESPONDING", "INSTITUTION_NO_LONGER_SUPPORTED", "INVALID_CREDENTIALS",
    "INVALID_MFA", "ITEM_LOCKED", "ITEM_LOGIN_REQUIRED", "ITEM_NOT_SUPPORTED", "INVALID_LINK_TOKEN",
    "MFA_NOT_SUPPORTED", "NO_ACCOUNTS", "PLAID_ERROR", "USER_INPUT_TIMEOUT", "USER_SETUP_REQUIRED",
})
"""Codes a custom user's `force_error` (or a `user_good` password `error_<CODE>`) makes item creation fail with;
ITEM_LOGIN_REQUIRED instead creates the item already needing a login."""


class ItemsMixin(PlaidBase):
    """Item lifecycle: creation from sandbox credentials, refreshes, login expiry, /item/*."""

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

    def item_ids(self) -> list[str]:
        """The ids of the live items."""
        return [str(item["item_id"]) for item in self.list_items()]

    def break_login(self, item_id: str) -> None:
        """The bank asks for a new login (ITEM_LOGIN_REQUIRED, with its webhook): `reset_login`."""
        self.reset_login(item_id)

    def list_items(self) -> list[dict[str, Any]]:
        """Every live item, as /item/get's `item` would show it (Plaid has no list endpoint)."""
        with self._lock:
            self._reload_if_changed()
            now = self._clock.now()
            if self._settle(now):
                self._save()
            return [self._item_json(item, consent=True) for item in self._items.values()]

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
                     window: tuple[str | None, str | None] = (None, None), user_id: str | None = None
                     ) -> dict[str, Any]:
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
            "webhooks": [], "user_id": user_id,
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
