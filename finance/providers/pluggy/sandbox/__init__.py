"""Offline emulator of the Pluggy API (https://api.pluggy.ai), plugged into httpx as a transport or served on loopback.

It follows reference/pluggy.md: the same paths, query parameters, bodies, status codes, headers and error bodies, with
the sandbox connector "Pluggy Bank" (id 0) and its usernames driving each scenario. Data comes from the deterministic
Brazilian household in `household` (built on `finance.sandbox.ledger`); what a client sees is a snapshot taken at
the item's last successful sync:

- a sync (POST /items, PATCH /items/{id}, MFA) records the emulator-clock time it started; healthy items also sync
  automatically every `AUTO_SYNC_EVERY` (24 h) of emulator time unless auto-sync was disabled;
- rows that appeared at the institution by a sync are visible after it, with `createdAt` = the first sync that saw
  them (that is what Pluggy's createdAt means), so `createdAtFrom` high-water marks work;
- card purchases are PENDING for 2–4 days, some debit-card rows on checking for one; at the first sync after they
  post, the pending row disappears and a POSTED row with a new id (and for restaurants a tip) replaces it.

Faults (`emulator.faults.add(kind, path=..., method=..., after=..., times=...)`): "rate_limit" (429 with RateLimit-*
and Retry-After), "server_error" (500), "unavailable" (503), "timeout" (httpx.ReadTimeout), "malformed_json" (200 with a
truncated body, after the request was handled) and "expired_key" (the bare 403 of an expired API key). Testers' hooks:
`advance`, `set_item_status`, `set_connector_status`, `list_items`, `request_log`.

Webhooks: application webhooks (`POST/GET/PATCH/DELETE /webhooks`, with custom headers sent on each delivery) and an
item's `webhookUrl` receive the item's events — `item/created|updated|error|deleted|waiting_user_input|
waiting_user_action|login_succeeded` as its status changes, `transactions/created|updated|deleted` when a sync
changes its data, `connector/status_updated` — queued in the state file and delivered by `deliver_webhooks()` over
loopback with Pluggy's retry schedule (3 attempts, 3 more an hour later, 3 more two hours after that; a 401 is not
retried). Unlike Pluggy, plain-http loopback URLs are accepted, so the whole loop runs offline.

Seams for benchmarks (bench.emulator): `rate_limits=False` stops counting the per-minute limits; `accounts` (an
`AccountSource`) serves an item's accounts from elsewhere than the household ledger; `v2_page_body` is the body of a
/v2/transactions page, which a subclass may fill in outside the emulator's lock; `rate_limit_group` names a request's
limit group.

Investments (a CDB, a multimarket fund, PETR4 shares, Tesouro IPCA+), a vehicle financing and the card's closed bills
come from `wealth` (GET /investments, /investments/{id}/transactions, /loans, /bills). Connector 1 is a direct
connector being retired in favour of its Open Finance twin, connector 2 (a scheduled incident on its health); an item
on one of them continues the household of an item the same user has on the other, so history continues. Rows carry
seeded real-world variants (`wire.real_world_variants`).

Modules, by resource: `base` (errors, state, dispatch, API keys, rate limits), `connect_tokens`, `connectors`, `items`
(items, MFA, statuses, syncs), `accounts`, `transactions`, `products` (investments, loans, bills), `categories`,
`webhooks`, `household` (the Brazilian household's ledger), `wealth` (its investments, financing and bills) and `wire`
(Pluggy's JSON for ledger entries, and a bulk generator). `PluggyEmulator` composes
their mixins.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from finance.providers.pluggy.sandbox.accounts import AccountsMixin, AccountSource, AccountView
from finance.providers.pluggy.sandbox.base import Handler, PluggyBase
from finance.providers.pluggy.sandbox.categories import CategoriesMixin
from finance.providers.pluggy.sandbox.connect_tokens import ConnectTokensMixin
from finance.providers.pluggy.sandbox.connectors import ConnectorsMixin
from finance.providers.pluggy.sandbox.items import ItemsMixin, ItemSyncsMixin
from finance.providers.pluggy.sandbox.products import ProductsMixin
from finance.providers.pluggy.sandbox.transactions import TransactionsMixin
from finance.providers.pluggy.sandbox.webhooks import WebhooksMixin
from finance.sandbox.common import Clock, Faults

__all__ = ["PluggyEmulator"]


class PluggyEmulator(ItemsMixin, ItemSyncsMixin, ConnectorsMixin, ConnectTokensMixin, ProductsMixin, AccountsMixin,
                     TransactionsMixin, CategoriesMixin, WebhooksMixin, PluggyBase):
    """The whole Pluggy API in-process: `handle` is the API, `transport()`/`serve()` plug it in.

    seed: drives every generated id and ledger. state_path: a JSON file that keeps items, connect tokens, the clock and
    category edits across processes (reloaded whenever another process rewrites it). client_id/client_secret: when
    set, POST /auth requires exactly these. card_sign: "purchase_positive" (default, as Pluggy sends card purchases)
    or "purchase_negative". mfa_code: the token `user-ok-mfa` must send. settle_delay: real seconds a sync takes
    (0: the first read after a sync already sees its outcome). rate_limits: False stops counting the per-minute
    limits (no 429s, no RateLimit-* headers). accounts: where items' accounts come from (default: the household).
    min_update_hours: refuse a client refresh (PATCH /items without credentials) of an item updated less than this
    long ago with 409 CLIENT_IS_UPDATING_BEFORE_ALLOWED_FREQUENCY (None: no limit, as in Pluggy's sandbox).
    """

    WEBHOOK_RETRY_DELAYS = (0.0, 0.0, 3600.0, 0.0, 0.0, 7200.0, 0.0, 0.0)
    WEBHOOK_FINAL_STATUSES = frozenset({401})

    def __init__(self, *, clock: Clock | None = None, seed: int = 7, state_path: Path | None = None,
                 client_id: str | None = None, client_secret: str | None = None,
                 card_sign: str = "purchase_positive", mfa_code: str = "123456",
                 settle_delay: float = 0.0, webhook_url: str | None = None,
                 webhook_headers: dict[str, str] | None = None, rate_limits: bool = True,
                 accounts: AccountSource | None = None, min_update_hours: float | None = None) -> None:
        if card_sign not in ("purchase_positive", "purchase_negative"):
            raise ValueError("card_sign must be 'purchase_positive' or 'purchase_negative'")
        self._clock = clock or Clock()
        self.faults = Faults()
        self.seed = seed
        self.state_path = Path(state_path) if state_path is not None else None
        self.card_sign = card_sign
        self.mfa_code = mfa_code
        self.settle_delay = settle_delay
        self.rate_limits = rate_limits
        self.accounts = accounts
        self.min_update_hours = min_update_hours
        self.request_log: list[tuple[str, str]] = []
        self._client_id = client_id
        self._client_secret = client_secret
        self._secret = hashlib.sha256(f"pluggy-emulator/{seed}/{client_id}/{client_secret}".encode()).digest()
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._patches: dict[str, dict[str, str]] = {}
        self._item_counter = 0
        self._patch_version = 0
        self._sync_started: dict[str, float] = {}
        self._windows: dict[str, tuple[int, int]] = {}
        self._views: OrderedDict[tuple[object, ...], list[AccountView]] = OrderedDict()
        self._matches: OrderedDict[tuple[object, ...], Any] = OrderedDict()
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._init_webhooks()
        self._routes = self._build_routes()
        self._open_state()
        if webhook_url:  # like an application webhook set up beforehand (sandbox serve --webhook-url)
            self._preset_webhook(webhook_url, webhook_headers or {})

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler, str]]:
        table: list[tuple[str, str, Handler, str]] = [
            ("POST", r"/auth", self._auth, "none"),
            ("POST", r"/connect_token", self._connect_token, "api"),
            ("GET", r"/connectors", self._list_connectors, "connect"),
            ("GET", r"/connectors/(?P<id>[^/]+)", self._get_connector, "connect"),
            ("POST", r"/connectors/(?P<id>[^/]+)/validate", self._validate, "connect"),
            ("POST", r"/items", self._create_item, "connect"),
            ("GET", r"/items/(?P<id>[^/]+)", self._get_item, "connect"),
            ("PATCH", r"/items/(?P<id>[^/]+)", self._update_item, "connect"),
            ("DELETE", r"/items/(?P<id>[^/]+)", self._delete_item, "api"),
            ("POST", r"/items/(?P<id>[^/]+)/mfa", self._send_mfa, "connect"),
            ("PATCH", r"/items/(?P<id>[^/]+)/disable-auto-sync", self._disable_auto_sync, "api"),
            ("GET", r"/accounts", self._list_accounts, "connect"),
            ("GET", r"/accounts/(?P<id>[^/]+)", self._get_account, "api"),
            ("GET", r"/v2/transactions", self._transactions_v2, "api"),
            ("GET", r"/transactions", self._transactions_v1, "api"),
            ("GET", r"/transactions/(?P<id>[^/]+)", self._get_transaction, "api"),
            ("PATCH", r"/transactions/(?P<id>[^/]+)", self._update_transaction, "api"),
            ("GET", r"/investments", self._list_investments, "api"),
            ("GET", r"/investments/(?P<id>[^/]+)", self._get_investment, "api"),
            ("GET", r"/investments/(?P<id>[^/]+)/transactions", self._investment_transactions, "api"),
            ("GET", r"/loans", self._list_loans, "api"),
            ("GET", r"/loans/(?P<id>[^/]+)", self._get_loan, "api"),
            ("GET", r"/bills", self._list_bills, "api"),
            ("GET", r"/bills/(?P<id>[^/]+)", self._get_bill, "api"),
            ("GET", r"/categories", self._list_categories, "api"),
            ("GET", r"/categories/(?P<id>[^/]+)", self._get_category, "api"),
            ("POST", r"/webhooks", self._create_webhook, "api"),
            ("GET", r"/webhooks", self._list_webhooks, "api"),
            ("GET", r"/webhooks/(?P<id>[^/]+)", self._get_webhook, "api"),
            ("PATCH", r"/webhooks/(?P<id>[^/]+)", self._update_webhook, "api"),
            ("DELETE", r"/webhooks/(?P<id>[^/]+)", self._delete_webhook, "api"),
        ]
        return [(method, re.compile(pattern), handler, auth) for method, pattern, handler, auth in table]

