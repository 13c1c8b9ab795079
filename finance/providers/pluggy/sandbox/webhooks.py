"""Webhooks: the /webhooks resource (application webhooks, with custom headers sent on each delivery), and the events
an item's changes send to them and to the item's `webhookUrl`, queued for delivery with Pluggy's retry schedule.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any
from urllib.parse import urlsplit

from finance.providers.pluggy.sandbox.accounts import AccountView
from finance.providers.pluggy.sandbox.base import ApiError, PluggyBase, _bad_request, _Call, _not_found, _page
from finance.providers.pluggy.sandbox.items import ERROR_MESSAGES
from finance.sandbox.common import LOOPBACK_HOSTS
from finance.sandbox.ledger import iso_z

MAX_WEBHOOKS_PER_EVENT = 5
WEBHOOK_EVENTS = frozenset({
    "all", "item/all", "item/created", "item/updated", "item/error", "item/deleted", "item/waiting_user_input",
    "item/waiting_user_action", "item/login_succeeded", "connector/status_updated", "transactions/created",
    "transactions/updated", "transactions/deleted", "payment_intent/created", "payment_intent/completed",
    "payment_intent/waiting_payer_authorization", "payment_intent/error", "scheduled_payment/created",
    "scheduled_payment/completed", "scheduled_payment/error", "scheduled_payment/canceled",
    "scheduled_payment/all_completed", "scheduled_payment/all_created", "automatic_pix_payment/created",
    "automatic_pix_payment/completed", "automatic_pix_payment/error", "automatic_pix_payment/canceled",
    "payment_request/updated", "boleto/updated", "smart_transfer_preauthorization/completed",
    "smart_transfer_preauthorization/error", "smart_transfer_payment/completed", "smart_transfer_payment/error",
})
"""Event types a webhook may subscribe to (reference/pluggy.md §6.2)."""


class WebhooksMixin(PluggyBase):
    """The /webhooks endpoints and the events the emulator emits."""

    def _check_webhook_url(self, url: object) -> str:
        """Pluggy's rules (https, a public host) except that loopback URLs are allowed: the emulator is offline."""
        if not isinstance(url, str) or not url:
            raise _bad_request("url must be a valid URL")
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        loopback = host in LOOPBACK_HOSTS
        if parts.scheme not in ("https", "http") or not host or (parts.scheme == "http" and not loopback):
            raise _bad_request("url must be a valid https URL (the offline emulator also accepts http://127.0.0.1)")
        if not loopback and (host.endswith((".localhost", ".local", ".internal")) or _is_ip(host)):
            raise _bad_request("url must not point to a private, local or IP address")
        return url

    @staticmethod
    def _webhook_json(hook: dict[str, Any]) -> dict[str, Any]:
        return {k: hook[k] for k in ("id", "event", "url", "disabledAt", "createdAt", "updatedAt")}

    def _find_webhook(self, call: _Call) -> dict[str, Any]:
        hook = self._webhooks.get(call.match["id"])
        if hook is None:
            raise _not_found("WEBHOOK", "webhook not found")
        return hook

    def _check_webhook_slot(self, event: object, url: str, ignore: str | None = None) -> str:
        if not isinstance(event, str) or event not in WEBHOOK_EVENTS:
            raise _bad_request(f"Invalid event type '{event}' for webhook")
        same = [h for h in self._webhooks.values() if h["event"] == event and h["id"] != ignore]
        if any(h["url"] == url for h in same):
            raise _bad_request(f"A webhook for event '{event}' and url '{url}' already exists.")
        if len(same) >= MAX_WEBHOOKS_PER_EVENT:
            raise _bad_request(f"There can be at most {MAX_WEBHOOKS_PER_EVENT} webhooks for event '{event}'.")
        return event

    @staticmethod
    def _headers(value: object) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise _bad_request("headers must be an object of strings")
        return dict(value)

    def _create_webhook(self, call: _Call) -> tuple[int, Any]:
        body = call.body()
        url = self._check_webhook_url(body.get("url"))
        event = self._check_webhook_slot(body.get("event"), url)
        now = iso_z(call.now)
        hook = {"id": str(uuid.uuid4()), "event": event, "url": url, "headers": self._headers(body.get("headers")),
                "disabledAt": None, "createdAt": now, "updatedAt": now}
        self._webhooks[hook["id"]] = hook
        self._save()
        return 201, self._webhook_json(hook)

    def _list_webhooks(self, call: _Call) -> tuple[int, Any]:
        return 200, _page([self._webhook_json(h) for h in self._webhooks.values()])

    def _get_webhook(self, call: _Call) -> tuple[int, Any]:
        return 200, self._webhook_json(self._find_webhook(call))

    def _update_webhook(self, call: _Call) -> tuple[int, Any]:
        hook = self._find_webhook(call)
        body = call.body()
        url = self._check_webhook_url(body["url"]) if body.get("url") is not None else hook["url"]
        event = body.get("event") if body.get("event") is not None else hook["event"]
        if (url, event) != (hook["url"], hook["event"]):
            self._check_webhook_slot(event, url, ignore=hook["id"])
        hook.update(url=url, event=event)
        if "headers" in body:  # null clears them
            hook["headers"] = self._headers(body["headers"])
        if body.get("enabled") is True:
            hook["disabledAt"] = None
        hook["updatedAt"] = iso_z(call.now)
        self._save()
        return 200, self._webhook_json(hook)

    def _delete_webhook(self, call: _Call) -> tuple[int, Any]:
        hook = self._find_webhook(call)
        del self._webhooks[hook["id"]]
        self._save()
        return 200, {"count": 1}

    def _preset_webhook(self, url: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._reload_if_changed()
            try:
                self._check_webhook_url(url)
            except ApiError as error:
                raise ValueError(f"Webhook URL {url!r} refused: {error.body['message']}") from None
            found = next((h for h in self._webhooks.values() if h["url"] == url and h["event"] == "all"), None)
            now = iso_z(self._clock.now())
            if found is None:
                found = {"id": str(uuid.uuid4()), "event": "all", "url": url, "headers": {}, "disabledAt": None,
                         "createdAt": now, "updatedAt": now}
                self._webhooks[found["id"]] = found
            if headers:
                found["headers"] = dict(headers)
            self._save()

    def _targets(self, item: dict[str, Any] | None, event: str) -> list[tuple[str, dict[str, str]]]:
        """(url, headers) for every destination of `event`: the item's webhookUrl and each application webhook
        subscribed to it (one delivery per URL; a registered webhook's headers win)."""
        found: dict[str, dict[str, str]] = {}
        if item is not None and item.get("webhookUrl"):
            found[item["webhookUrl"]] = {}
        for hook in self._webhooks.values():
            subscribed = hook["event"] in (event, "all") or (hook["event"] == "item/all" and event.startswith("item/"))
            if subscribed and hook["disabledAt"] is None:
                found[hook["url"]] = dict(hook.get("headers") or {})
        return list(found.items())

    def _emit(self, event: str, item: dict[str, Any] | None, **fields: Any) -> None:
        """Queue `event` for every destination (the caller saves the state)."""
        targets = self._targets(item, event)
        if not targets:
            return
        payload: dict[str, Any] = {"event": event, "eventId": str(uuid.uuid4())}
        if item is not None:
            payload.update(id=item["id"], itemId=item["id"], clientUserId=item.get("clientUserId"))
        payload.update(fields)
        for url, headers in targets:
            self._enqueue_webhook(url, payload, headers=headers)

    def _emit_status(self, item: dict[str, Any], triggered_by: str) -> None:
        """The event for an item's new (non-UPDATED) status."""
        status = item["status"]
        if status == "WAITING_USER_INPUT":
            self._emit("item/waiting_user_input", item, triggeredBy=triggered_by)
        elif status == "WAITING_USER_ACTION":
            self._emit("item/waiting_user_action", item, triggeredBy=triggered_by)
        elif status in ("LOGIN_ERROR", "OUTDATED"):
            error = item.get("error") or {"code": "UNEXPECTED_ERROR", "message": ERROR_MESSAGES["UNEXPECTED_ERROR"]}
            self._emit("item/error", item, triggeredBy=triggered_by,
                       error={"code": error["code"], "message": error["message"]})

    def _emit_data_events(self, item: dict[str, Any], before: list[AccountView]) -> None:
        """transactions/created|updated|deleted for what the last sync changed, account by account."""
        old = {view.account_id: {t["id"]: t for t in view.rows} for view in before}
        client = self._client_id or "pluggy-emulator"
        for view in self._views_of(item):
            previous = old.get(view.account_id, {})
            current = {t["id"]: t for t in view.rows}
            created = [t for tid, t in current.items() if tid not in previous]
            updated = sorted(tid for tid, t in current.items() if tid in previous and previous[tid] != t)
            deleted = sorted(tid for tid in previous if tid not in current)
            if created:
                since = min(t["createdAt"] for t in created)
                link = f"https://api.pluggy.ai/v2/transactions?accountId={view.account_id}&createdAtFrom={since}"
                self._emit("transactions/created", item, id=view.account_id, accountId=view.account_id,
                           transactionsCreatedAtFrom=since, transactionsCount=len(created),
                           createdTransactionsLink=link, createdTransactionsLinkV2=link)
            for event, ids in (("transactions/updated", updated), ("transactions/deleted", deleted)):
                if ids:
                    self._emit(event, item, id=view.account_id, accountId=view.account_id, clientId=client,
                               transactionIds=ids, transactionsCount=len(ids))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
