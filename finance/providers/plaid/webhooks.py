"""Plaid's webhooks: verifying a signed delivery, reading it, what each event means, and pointing Items at our URL.

Plaid signs each delivery: the `Plaid-Verification` header is an ES256 JWT whose key is fetched by `kid` from
`/webhook_verification_key/get` (cached; unknown kids are looked up at a bounded rate, in lanes a flood of forged
kids cannot use up), whose `iat` must be within five minutes, and whose `request_body_sha256` must match the raw body
(constant-time compare). A replay is recognised by what was signed, not by the token's bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import jwt

from finance.errors import ProviderError
from finance.http import RateLimiter
from finance.model import EXPIRING_SIGNALS, ConnectionStatus
from finance.providers.plaid.mapping import ERROR_MESSAGES, EXPIRING_CODES, REAUTH_CODES
from finance.providers.webhook import (
    MAX_ID_LENGTH,
    PORTFOLIO,
    SYNC_NOTE,
    Plan,
    WebhookEvent,
    WebhookRejected,
    error_plan,
    instant,
    json_object,
    lower_headers,
    text_field,
)

PLAID_MAX_AGE = timedelta(minutes=5)
PLAID_HEADER = "Plaid-Verification"
NEW_ACCOUNTS_MESSAGE = "The bank has new accounts you could share: reconnect to choose them."
_PLAID_LEGACY = frozenset({"INITIAL_UPDATE", "HISTORICAL_UPDATE", "DEFAULT_UPDATE", "TRANSACTIONS_REMOVED",
                           "RECURRING_TRANSACTIONS_UPDATE"})
"""/transactions/get webhooks: SYNC_UPDATES_AVAILABLE covers what they announce."""
PORTFOLIO_WEBHOOKS = {"HOLDINGS": "holdings", "INVESTMENTS_TRANSACTIONS": "investment transactions",
                      "LIABILITIES": "loans and cards"}
"""Webhook types whose DEFAULT_UPDATE means the Item's portfolio changed: a sync reads it again."""


class PlaidKeys:
    """Plaid's webhook verification keys (JWKs) by kid, fetched on first use and kept.

    Each lookup of a kid we do not hold is a call to Plaid, and anyone can send a header naming a made-up kid, so
    lookups are rate limited in separate lanes, none of which another can use up: a delivery about an Item this
    app holds (its `item_id` is one of ours, which a stranger does not know) looks its kid up in that Item's own
    lane; any other delivery in one shared lane for strangers; and re-reading a key we hold (every
    `refresh_after`, to learn that Plaid retired it) in a third. A flood of forged kids therefore cannot keep a
    genuine delivery signed with a new key from being verified. A kid Plaid does not know is remembered for
    `forget_unknown_after` seconds (at most 4,096 of them) and not looked up again meanwhile.
    """

    STRANGERS_PER_MINUTE = 5
    ITEM_PER_MINUTE = 2
    REFRESHES_PER_MINUTE = 2
    MAX_UNKNOWN = 4096

    def __init__(self, fetch: Callable[[str], dict[str, Any]], *, max_keys: int = 16,
                 clock: Callable[[], float] = time.monotonic, refresh_after: float = 86_400.0,
                 forget_unknown_after: float = 600.0) -> None:
        self._fetch = fetch
        self._max_keys = max_keys
        self._clock = clock
        self._refresh_after = refresh_after
        self._forget_unknown_after = forget_unknown_after
        self._limiter = RateLimiter(clock=clock)
        self._keys: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()  # kid → (JWK, fetched at)
        self._unknown: OrderedDict[str, float] = OrderedDict()  # kid → when Plaid said it does not know it
        self._lock = threading.Lock()
        self.fetch_count = 0

    def holds(self, kid: str) -> bool:
        """Whether the key is at hand (no lookup needed unless it is due for a refresh)."""
        with self._lock:
            return kid in self._keys

    def get(self, kid: str, *, item_id: str | None = None) -> dict[str, Any]:
        """The JWK for `kid`, or WebhookRejected. `item_id`: the Item the delivery is about, when it is one this app
        holds (its lane is the one used to look an unknown kid up); None for anything else."""
        now = self._clock()
        with self._lock:
            held = self._keys.get(kid)
            if held is not None:
                self._keys.move_to_end(kid)
                if now - held[1] < self._refresh_after or not self._limiter.try_acquire(
                        [("refresh", self.REFRESHES_PER_MINUTE)]):
                    return held[0]
            else:
                seen = self._unknown.get(kid)
                if seen is not None and now - seen < self._forget_unknown_after:
                    raise WebhookRejected(401, "The signing key id is unknown.")
                lane = ((f"item:{item_id}", self.ITEM_PER_MINUTE) if item_id is not None
                        else ("strangers", self.STRANGERS_PER_MINUTE))
                if not self._limiter.try_acquire([lane]):
                    raise WebhookRejected(401, "The signing key id is unknown (too many new key ids to look up).")
            self.fetch_count += 1
        try:
            jwk = self._fetch(kid)
        except ProviderError as exc:
            if held is not None:  # a refresh that failed: the key we hold stays good
                return held[0]
            if exc.retryable:
                raise WebhookRejected(503, "Plaid's verification key could not be fetched; try again.") from None
            jwk = None
        valid = (isinstance(jwk, dict) and jwk.get("kid") == kid and jwk.get("kty") == "EC"
                 and jwk.get("crv") == "P-256" and jwk.get("alg", "ES256") == "ES256")
        with self._lock:
            if not valid:
                self._keys.pop(kid, None)
                self._unknown[kid] = now
                self._unknown.move_to_end(kid)
                while len(self._unknown) > self.MAX_UNKNOWN:
                    self._unknown.popitem(last=False)
                raise WebhookRejected(401, "The signing key id is unknown.")
            assert isinstance(jwk, dict)
            self._keys[kid] = (jwk, now)
            self._keys.move_to_end(kid)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
            return jwk


def _check_claims(claims: Mapping[str, Any], body: bytes, now: datetime) -> None:
    """WebhookRejected unless `iat` is within five minutes of `now` and `request_body_sha256` is the SHA-256 of the
    raw body (constant-time compare)."""
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or \
            abs(now.timestamp() - iat) > PLAID_MAX_AGE.total_seconds():
        raise WebhookRejected(401, "The Plaid-Verification token is too old (or from the future).")
    claimed = claims.get("request_body_sha256")
    if not isinstance(claimed, str) or not hmac.compare_digest(hashlib.sha256(body).hexdigest().encode(),
                                                                claimed.lower().encode()):
        raise WebhookRejected(401, "The body does not match its signature.")


def verify_plaid(headers: Mapping[str, str], body: bytes, keys: PlaidKeys, now: datetime,
                 holds_item: Callable[[str], bool] = lambda item_id: False) -> dict[str, Any]:
    """The verified claims of the `Plaid-Verification` token, or WebhookRejected: ES256 only, a key Plaid knows,
    `iat` within five minutes of `now`, and the SHA-256 of the raw body equal to the signed `request_body_sha256`.

    The time and the body hash are checked before the key is looked up too (unverified then; again once the
    signature is), so a stale or altered delivery costs no call to Plaid; `holds_item(item_id)` says whether the
    body is about an Item of ours, whose lookup lane a stranger cannot use up (see PlaidKeys)."""
    token = lower_headers(headers).get(PLAID_HEADER.lower())
    if not token:
        raise WebhookRejected(401, "The Plaid-Verification header is missing.")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise WebhookRejected(401, "The Plaid-Verification header is not a JWT.") from None
    if header.get("alg") != "ES256":  # no "none", no HS256 keyed with the public key, no RSA
        raise WebhookRejected(401, "The Plaid-Verification algorithm is not ES256.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_ID_LENGTH:
        raise WebhookRejected(401, "The Plaid-Verification header has no key id.")
    _check_claims(unverified, body, now)
    item_id = None
    if not keys.holds(kid):
        named = json_object(body).get("item_id")
        item_id = named if isinstance(named, str) and 0 < len(named) <= MAX_ID_LENGTH and holds_item(named) else None
    jwk = keys.get(kid, item_id=item_id)
    expired_at = jwk.get("expired_at")
    if isinstance(expired_at, int | float) and expired_at <= now.timestamp():
        raise WebhookRejected(401, "The signing key has expired.")
    try:
        key = jwt.PyJWK.from_dict({k: jwk[k] for k in ("kty", "crv", "x", "y", "kid") if k in jwk}, "ES256")
        claims = jwt.decode(token, key=key, algorithms=["ES256"],
                            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                     "verify_aud": False, "verify_iss": False, "require": ["iat"]})
    except jwt.PyJWTError:
        raise WebhookRejected(401, "The Plaid-Verification signature is not valid.") from None
    _check_claims(claims, body, now)
    return claims


def parse_plaid(body: bytes, claims: Mapping[str, Any], received_at: datetime) -> WebhookEvent:
    """A Plaid event: `webhook_type` and `webhook_code` are required. Plaid gives no event id, so the id is a digest
    of what Plaid signed — the body's hash and the signing time — not of the token's bytes: an ES256 signature has
    more than one valid encoding (s and n − s both verify), so a replay with the signature re-encoded is still
    recognised. A retry by Plaid (signed anew) is not, which is harmless because every handler is idempotent."""
    payload = json_object(body)
    kind = text_field(payload, "webhook_type")
    code = text_field(payload, "webhook_code")
    item_id = text_field(payload, "item_id", required=False)
    signed = f"{str(claims['request_body_sha256']).lower()}:{claims['iat']}"
    digest = hashlib.sha256(signed.encode()).hexdigest()[:40]
    return WebhookEvent(f"plaid:{digest}", "plaid", f"{kind}/{code}", item_id, payload, received_at)


def plan(event: WebhookEvent) -> Plan:
    """What a Plaid event means for its Item (no side effects)."""
    payload = event.payload
    kind, _, code = event.type.partition("/")
    messages = ERROR_MESSAGES
    if event.item_id is None and payload.get("user_id"):  # a user-level event (Plaid's newer user APIs)
        user = str(payload["user_id"])[:MAX_ID_LENGTH]
        return Plan(note=f"Plaid webhook {event.type!r} for user {user!r}, not for an Item: recorded only",
                    needs_connection=False)
    if kind == "TRANSACTIONS" and code == "SYNC_UPDATES_AVAILABLE":
        return Plan(note=f"SYNC_UPDATES_AVAILABLE: {SYNC_NOTE}", sync=True)
    if kind == "TRANSACTIONS" and code in _PLAID_LEGACY:
        return Plan(note=f"{code}: a /transactions/get webhook; SYNC_UPDATES_AVAILABLE covers it")
    if kind in PORTFOLIO_WEBHOOKS and code == "DEFAULT_UPDATE":
        return Plan(note=f"{kind} DEFAULT_UPDATE: {PORTFOLIO_WEBHOOKS[kind]} changed; {SYNC_NOTE}", sync=True,
                    refetch=(PORTFOLIO,))
    if kind != "ITEM":
        return Plan(note=f"unknown Plaid webhook {event.type!r}: recorded only", needs_connection=False, known=False)
    if code == "ERROR":
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        error_code = str(error.get("error_code") or "UNKNOWN_ERROR")[:MAX_ID_LENGTH]
        message = messages.get(error_code) or f"The connection failed ({error_code})."
        reauth = error_code in REAUTH_CODES - EXPIRING_CODES
        return error_plan(error_code, message, reauth, f"item error {error_code}: sync requested")
    if code in EXPIRING_SIGNALS:
        until = instant(payload.get("consent_expiration_time" if code == "PENDING_EXPIRATION" else "disconnect_time"))
        when = f" on {until:%Y-%m-%d}" if until else " soon"
        detail = (f"Your consent for this bank expires{when}. Reconnect before then to keep data flowing."
                  if code == "PENDING_EXPIRATION" else
                  f"This bank connection will stop working{when}. Reconnect before then to keep it.")
        return Plan(note=code, signal=code, signal_until=until, detail=detail)
    if code == "USER_PERMISSION_REVOKED":
        return Plan(note=code, status=ConnectionStatus.REVOKED.value, detail=messages[code], error_code=code,
                    signal=code)
    if code == "USER_ACCOUNT_REVOKED":
        return Plan(note=f"{code}: sync requested", sync=True, signal=code, detail=messages[code])
    if code == "NEW_ACCOUNTS_AVAILABLE":
        return Plan(note=code, signal=code, detail=NEW_ACCOUNTS_MESSAGE)
    if code == "LOGIN_REPAIRED":
        return Plan(note=f"{code}: sync requested", sync=True, clear_signal=True)
    if code == "WEBHOOK_UPDATE_ACKNOWLEDGED":
        return Plan(note="Plaid confirmed the webhook URL")
    return Plan(note=f"unknown Plaid webhook {event.type!r}: recorded only", needs_connection=False, known=False)


def no_keys(kid: str) -> dict[str, Any]:
    """The key lookup when Plaid is not configured: every delivery is refused."""
    raise WebhookRejected(401, "Plaid is not configured.")


def register(ensure_webhook: Callable[[str, str], bool], url: str, items: Sequence[str]) -> str:
    """Point each Item's webhooks at `url` (`ensure_webhook(item_id, url)` is True when it changed one); one line for
    the Sync status page."""
    changed = failed = 0
    for item_id in items:
        try:
            changed += bool(ensure_webhook(item_id, url))
        except ProviderError:
            failed += 1
    return f"Plaid: {changed} items pointed at {url}" + (f", {failed} failed." if failed else ".")
