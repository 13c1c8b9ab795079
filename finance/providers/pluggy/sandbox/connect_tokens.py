"""POST /connect_token: short-lived keys for the Connect widget, scoped to the item created with them (or the item they
were created for).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from finance.providers.pluggy.sandbox.base import PluggyBase, _bad_request, _Call, _not_found
from finance.sandbox.ledger import iso_z

CONNECT_TOKEN_TTL = timedelta(minutes=30)


class ConnectTokensMixin(PluggyBase):
    """Connect tokens (checked by `PluggyBase._authenticate`, which knows their scope)."""

    def _connect_token(self, call: _Call) -> tuple[int, Any]:
        body = call.body()
        item_id = body.get("itemId")
        if item_id is not None and (not isinstance(item_id, str) or item_id not in self._items):
            raise _not_found("ITEM", "item not found")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise _bad_request("options must be an object")
        token_id = uuid.uuid4().hex
        expires = call.now + CONNECT_TOKEN_TTL
        self._tokens[token_id] = {"itemId": item_id, "options": options, "expiresAt": iso_z(expires)}
        self._save()
        payload = {"typ": "connect", "jti": token_id, "iat": int(call.now.timestamp()),
                   "exp": int(expires.timestamp()), **({"itemId": item_id} if item_id else {})}
        return 200, {"accessToken": self._token(payload)}
