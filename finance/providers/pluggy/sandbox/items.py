"""Items: the sandbox usernames and what each makes a sync do, POST/GET/PATCH/DELETE /items, MFA, auto-sync, the
item's status as its syncs run and settle, and the testers' hooks (`advance`, `list_items`, `set_item_status`…).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from finance.providers.pluggy.sandbox.base import ApiError, PluggyBase, _bad_request, _Call, _not_found, _parse_time
from finance.providers.pluggy.sandbox.connectors import SANDBOX_CONNECTOR_ID
from finance.sandbox.ledger import iso_z, stable_uuid

MFA_TTL = timedelta(minutes=5)
AUTO_SYNC_EVERY = timedelta(hours=24)
CONSENT_TTL = timedelta(days=365)
SANDBOX_PASSWORD = "password-ok"


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


class ItemsMixin(PluggyBase):
    """The /items endpoints, the item as the API shows it, and the testers' hooks on items."""

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

    def item_ids(self) -> list[str]:
        """The ids of every item."""
        return [str(item["id"]) for item in self.list_items()]

    def break_login(self, item_id: str) -> None:
        """The bank asks for a new login, as after a password change: LOGIN_ERROR (with its webhook)."""
        self.set_item_status(item_id, "LOGIN_ERROR", "ERROR", "INVALID_CREDENTIALS")

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
        item["household"] = self._continued_household(connector, item["user"])
        self._items[item_id] = item
        self._start_sync(item, call.now, renews_consent=True)
        self._save()
        return 200, self._item_json(item)

    def _continued_household(self, connector: dict[str, Any], user: str) -> dict[str, Any] | None:
        """The bank data a new item shows when the same login already has an item at the same institution through
        another connector (a reconnection through Open Finance): that item's household, so history continues."""
        if connector["id"] == SANDBOX_CONNECTOR_ID:
            return None
        for other in self._items.values():
            twin = self._find_connector(other["connectorId"])
            if (other["user"] == user and other["connectorId"] != connector["id"]
                    and twin["institutionUrl"] == connector["institutionUrl"]):
                return other.get("household") or {"key": other["id"], "createdAt": other["createdAt"]}
        return None

    def _get_item(self, call: _Call) -> tuple[int, Any]:
        return 200, self._item_json(self._item(call))

    def _update_item(self, call: _Call) -> tuple[int, Any]:
        item = self._item(call)
        body = call.body()
        parameters = body.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _bad_request("parameters must be an object (encrypted parameters are not supported offline)")
        _check_strings(body)
        self._check_update_frequency(item, call.now, bool(parameters))
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

    def _check_update_frequency(self, item: dict[str, Any], now: datetime, new_credentials: bool) -> None:
        """409 CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY for a client refresh (no new credentials) of a healthy item
        within `min_update_hours` of its last update (reference/pluggy.md §3.4), when the emulator has a limit."""
        if self.min_update_hours is None or new_credentials or item["status"] != "UPDATED" or item.get("running"):
            return
        last = item.get("lastUpdatedAt")
        if last and now < _parse_time(last) + timedelta(hours=self.min_update_hours):
            hours = f"{self.min_update_hours:g}"
            raise ApiError(409, {
                "code": 409, "codeDescription": "CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY",
                "message": f"Client updates on this item are allowed at most every {hours} hours. Wait before "
                           "updating it again.",
                "data": {"minUpdateFrequencyAllowedInHours": self.min_update_hours, "lastUpdatedAt": last}})

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
        open_finance = bool(self._find_connector(item["connectorId"])["isOpenFinance"])
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
            # those resources awaits the user's approval. Both are null for connectors other than Open Finance.
            "resourcesCollectedAt": item["lastUpdatedAt"] if open_finance else None,
            "hasResourcesPendingAuthorization": (False if item["lastUpdatedAt"] else None) if open_finance else None,
            "products": item["products"],
            "oauthRedirectUri": None,
        }


class ItemSyncsMixin(PluggyBase):
    """An item's syncs: started by a create, update or MFA answer, settled `settle_delay` real seconds later; MFA
    timeouts and auto-syncs as the emulator clock moves."""

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
