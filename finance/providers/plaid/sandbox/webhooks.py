"""Webhooks: what Plaid sends an item (recorded, then queued for delivery), each delivery signed with the ES256 key
/webhook_verification_key/get publishes, and /item/webhook/update.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from time import time as wall_time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from finance.providers.plaid.sandbox.base import PlaidApiError, PlaidBase, _Call, _string, _wire_time

WEBHOOK_LOG_LIMIT = 100
_WEBHOOK_KEY_CREATED = 1_704_067_200
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def webhook_signing_key(seed: int) -> ec.EllipticCurvePrivateKey:
    """The emulator's ES256 (P-256) webhook signing key: derived from the seed, so every instance agrees on it."""
    secret = int.from_bytes(hashlib.sha256(f"plaid-emulator/webhook-key/{seed}".encode()).digest(), "big")
    return ec.derive_private_key(secret % (_P256_ORDER - 1) + 1, ec.SECP256R1())


class WebhooksMixin(PlaidBase):
    """Recording, signing and re-pointing an item's webhooks."""

    def sent_webhooks(self, item_id: str) -> list[dict[str, Any]]:
        """The webhooks recorded for an item (oldest first), each `{"sent_at": ..., "url": ..., "payload": {...}}`;
        delivering them is left to the caller."""
        with self._lock:
            self._reload_if_changed()
            item = self._items.get(item_id)
            if item is None:
                raise KeyError(item_id)
            return json.loads(json.dumps(item["webhooks"]))

    def _sign_webhook(self, body: bytes) -> dict[str, str]:
        """Plaid-Verification: an ES256 JWT over the body's SHA-256, signed now with the published key."""
        claims = {"iat": int(wall_time()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
        token = jwt.encode(claims, self._signing_key, algorithm="ES256", headers={"kid": self._jwk["kid"]})
        return {"Plaid-Verification": token}

    def _record_webhook(self, item: dict[str, Any], webhook_type: str, code: str, now: datetime) -> None:
        """Remember a webhook Plaid would send now (only items with a webhook URL get any)."""
        if not item["webhook"]:
            return
        payload: dict[str, Any] = {"webhook_type": webhook_type, "webhook_code": code, "item_id": item["item_id"]}
        if code == "SYNC_UPDATES_AVAILABLE":
            payload.update(initial_update_complete=True, historical_update_complete=True)
        elif code == "DEFAULT_UPDATE" and webhook_type == "HOLDINGS":
            payload.update(new_holdings=0, updated_holdings=len(self._layout(item)), error=None)
        elif code == "DEFAULT_UPDATE" and webhook_type == "INVESTMENTS_TRANSACTIONS":
            payload.update(new_investments_transactions=1, cancelled_investments_transactions=0, error=None)
        elif code == "DEFAULT_UPDATE" and webhook_type == "LIABILITIES":
            owed = [meta.account_id for meta in self._layout(item) if meta.owed]
            payload.update(account_ids_with_new_liabilities=[], error=None,
                           account_ids_with_updated_liabilities={a: ["next_payment_due_date"] for a in owed})
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
        if item.get("user_id"):  # Items made for a user of Plaid's newer user APIs say whose they are
            payload["user_id"] = item["user_id"]
        payload["environment"] = "sandbox"
        item["webhooks"].append({"sent_at": _wire_time(now), "url": item["webhook"], "payload": payload})
        del item["webhooks"][:-WEBHOOK_LOG_LIMIT]
        self._enqueue_webhook(item["webhook"], payload)

    def _item_webhook_update(self, call: _Call) -> dict[str, Any]:
        item = self._item_for(call)
        item["webhook"] = _string(call.body, "webhook") or ""
        self._record_webhook(item, "ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED", call.now)
        self._save()
        return {"item": self._item_json(item)}

    def _webhook_verification_key_get(self, call: _Call) -> dict[str, Any]:
        if _string(call.body, "key_id", required=True) != self._jwk["kid"]:
            raise PlaidApiError("INVALID_WEBHOOK_VERIFICATION_KEY_ID")
        return {"key": dict(self._jwk)}
