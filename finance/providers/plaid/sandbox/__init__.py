"""Offline emulator of the Plaid API (sandbox.plaid.com), plugged into httpx as a transport or served on loopback.

It follows reference/plaid.md and the official OpenAPI schema: every endpoint is a POST with a JSON body, answers carry
`request_id` and echo `Plaid-Version`, and every error is a `PlaidError` with Plaid's HTTP status. The sandbox
institutions (First Platypus Bank `ins_109508` … Houndstooth Bank `ins_109512`) and test users drive the scenarios:
`user_good`/`pass_good` (checking, savings, CD, credit card, money market, IRA, 401k, student loan, mortgage,
brokerage, installment loan: /investments/* and /liabilities/get answer for it),
`user_transactions_dynamic` (checking, savings, card; frequent pending→posted churn; `/sandbox/transactions/create`),
`user_custom` with a JSON password (`override_accounts`, `force_error`), and `error_<CODE>` passwords for `user_good`.

Data comes from the deterministic US household in `household`, built on the shared `finance.sandbox.ledger`. What a
client sees is the item's data as of its last refresh: items refresh every `REFRESH_EVERY` (6 h) of emulator time from
their creation (and right after an update-mode repair or `/sandbox/transactions/create`), never while they need a
login.

- Pending → posted: card and debit purchases show first as pending; when they post, `/transactions/sync` lists the
  pending id in `removed` and a posted row with a NEW id and `pending_transaction_id` in `added` (restaurants and some
  rides post with a tip). Some posted purchases are enriched a day or two later (merchant and category filled in):
  they come back in `modified`.
- Cursors encode the refresh the client has seen (and, mid-pagination, the refresh being paged and the offset);
  deltas are the exact difference between the two refreshes, ordered by the time each change happened.
  A page request whose refresh is no longer current (and whose data changed) fails with
  TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION; restart from the cursor that began the walk.

Faults (`emulator.faults.add(kind, path=..., after=..., times=...)`): "rate_limit" (429), "server_error" (500),
"unavailable" (503), "timeout" (httpx.ReadTimeout), "malformed_json" (200 with a truncated body, after handling),
"institution_down", "institution_not_responding", "product_not_ready" (400 with that code) and
"mutation_during_pagination" (the next `/transactions/sync` page request that continues a walk fails).
Testers' hooks: `advance`, `list_items`, `complete_link` (what Plaid Link does when a user finishes it), `reset_login`,
`sent_webhooks` (every webhook recorded for an item), `request_log`.

Webhooks go to the item's webhook URL: ITEM events (ERROR on /sandbox/item/reset_login or a login expiry,
WEBHOOK_UPDATE_ACKNOWLEDGED, whatever /sandbox/item/fire_webhook asks for) and TRANSACTIONS SYNC_UPDATES_AVAILABLE
when a refresh brings changes (once /transactions/sync has been called on the item). They are queued in the state
file and delivered by `deliver_webhooks()` over loopback, each signed as Plaid signs them: a `Plaid-Verification`
ES256 JWT (kid of the key /webhook_verification_key/get publishes, `iat`, `request_body_sha256` of the exact bytes
sent), retried 30 s after a failure and four times longer after each further one, for up to a day.

Modules, by resource: `base` (errors, validation, state and dispatch), `items`, `link`, `accounts`, `history` (ledgers,
views, pending→posted deltas), `transactions`, `recurring`, `categories` (v1/v2 and legacy categories), `investments`
(holdings, securities, investment transactions), `liabilities` (card, student loan, mortgage, installment loan),
`institutions`, `webhooks`, `sandbox` (the /sandbox/* endpoints) and `household` (the US household data).
`PlaidEmulator` composes their mixins.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finance.providers.plaid.sandbox.accounts import AccountsMixin
from finance.providers.plaid.sandbox.base import PlaidApiError, _Call, _Route
from finance.providers.plaid.sandbox.history import HistoryMixin, _Row, _View
from finance.providers.plaid.sandbox.institutions import InstitutionsMixin
from finance.providers.plaid.sandbox.investments import InvestmentsMixin
from finance.providers.plaid.sandbox.items import ItemsMixin
from finance.providers.plaid.sandbox.liabilities import LiabilitiesMixin
from finance.providers.plaid.sandbox.link import _LINK_FIELDS, LinkMixin
from finance.providers.plaid.sandbox.recurring import RecurringMixin
from finance.providers.plaid.sandbox.sandbox import SandboxMixin
from finance.providers.plaid.sandbox.transactions import TransactionsMixin
from finance.providers.plaid.sandbox.webhooks import _WEBHOOK_KEY_CREATED, WebhooksMixin, webhook_signing_key
from finance.sandbox.common import Clock, Faults, b64url
from finance.sandbox.ledger import stable_uuid

__all__ = ["PlaidApiError", "PlaidEmulator"]


class PlaidEmulator(ItemsMixin, LinkMixin, AccountsMixin, HistoryMixin, TransactionsMixin, RecurringMixin,
                    InvestmentsMixin, LiabilitiesMixin, InstitutionsMixin, WebhooksMixin, SandboxMixin):
    """The Plaid API in-process: `handle` is the API, `transport()`/`serve()` plug it in.

    seed: drives every generated id and ledger. state_path: a JSON file that keeps items, tokens and the clock across
    processes (reloaded whenever another process rewrites it; generated transactions are never stored).
    client_id/secret: when set, requests must carry exactly these; otherwise any non-empty pair is accepted.
    """

    WEBHOOK_RETRY_DELAYS = (30.0, 120.0, 480.0, 1920.0, 7680.0, 30720.0)

    def __init__(self, *, clock: Clock | None = None, seed: int = 7, state_path: Path | None = None,
                 client_id: str | None = None, secret: str | None = None, webhook_url: str | None = None) -> None:
        self._clock = clock or Clock()
        self.faults = Faults()
        self.seed = seed
        self.state_path = Path(state_path) if state_path is not None else None
        self.request_log: list[tuple[str, str]] = []
        self._client_id = client_id
        self._secret = secret
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Any]] = {}
        self._removed: dict[str, dict[str, str]] = {}
        self._link_tokens: dict[str, dict[str, Any]] = {}
        self._public_tokens: dict[str, dict[str, Any]] = {}
        self._counters: dict[str, int] = {"item": 0, "link": 0, "public": 0}
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}
        self._views: OrderedDict[tuple[object, ...], _View] = OrderedDict()
        self._changes: OrderedDict[tuple[object, ...], list[tuple[str, str, _Row]]] = OrderedDict()
        self._mutation_pending = False
        self.default_webhook = webhook_url  # for Items created without one (sandbox serve --webhook-url)
        self._signing_key = webhook_signing_key(seed)
        numbers = self._signing_key.public_key().public_numbers()
        self._jwk = {"alg": "ES256", "kty": "EC", "crv": "P-256", "use": "sig",
                     "kid": stable_uuid(seed, "webhook-verification-key"),
                     "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big")),
                     "created_at": _WEBHOOK_KEY_CREATED, "expired_at": None}
        self._init_webhooks()
        self._routes = self._build_routes()
        self._open_state()

    def _build_routes(self) -> dict[str, _Route]:
        table: list[tuple[str, Callable[[_Call], dict[str, Any]], set[str], tuple[str, ...]]] = [
            ("/link/token/create", self._link_token_create, set(_LINK_FIELDS),
             ("client_name", "language", "country_codes")),
            ("/item/public_token/exchange", self._public_token_exchange, {"public_token"}, ("public_token",)),
            ("/item/get", self._item_get, {"access_token"}, ("access_token",)),
            ("/item/remove", self._item_remove, {"access_token", "reason_code", "reason_note"}, ("access_token",)),
            ("/item/webhook/update", self._item_webhook_update, {"access_token", "webhook"}, ("access_token",)),
            ("/accounts/get", self._accounts_get, {"access_token", "options"}, ("access_token",)),
            ("/accounts/balance/get", self._accounts_balance_get, {"access_token", "options"}, ("access_token",)),
            ("/transactions/sync", self._transactions_sync, {"access_token", "cursor", "count", "options"},
             ("access_token",)),
            ("/transactions/recurring/get", self._transactions_recurring_get, {"access_token", "options",
                                                                               "account_ids"}, ("access_token",)),
            ("/investments/holdings/get", self._investments_holdings_get, {"access_token", "options"},
             ("access_token",)),
            ("/investments/transactions/get", self._investments_transactions_get,
             {"access_token", "start_date", "end_date", "options"}, ("access_token", "start_date", "end_date")),
            ("/liabilities/get", self._liabilities_get, {"access_token", "options"}, ("access_token",)),
            ("/institutions/get_by_id", self._institutions_get_by_id, {"institution_id", "country_codes", "options"},
             ("institution_id", "country_codes")),
            ("/institutions/search", self._institutions_search, {"query", "products", "country_codes", "options"},
             ("query", "country_codes")),
            ("/webhook_verification_key/get", self._webhook_verification_key_get, {"key_id"}, ("key_id",)),
            ("/sandbox/public_token/create", self._sandbox_public_token_create,
             {"institution_id", "initial_products", "options", "user_token", "user_id"},
             ("institution_id", "initial_products")),
            ("/sandbox/item/fire_webhook", self._sandbox_fire_webhook, {"access_token", "webhook_type", "webhook_code"},
             ("access_token", "webhook_code")),
            ("/sandbox/item/reset_login", self._sandbox_reset_login, {"access_token"}, ("access_token",)),
            ("/sandbox/transactions/create", self._sandbox_transactions_create, {"access_token", "transactions"},
             ("access_token", "transactions")),
        ]
        return {path: _Route(handler, frozenset(fields | {"client_id", "secret"}), required)
                for path, handler, fields, required in table}
