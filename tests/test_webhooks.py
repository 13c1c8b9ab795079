"""Webhook verification and receiving: every forged, stale, altered, oversized or malformed request is refused with
the store unchanged (table counts), replays are acknowledged and ignored, and the thin Starlette routes behave."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette

from finance import webhooks
from finance.config import load_settings
from finance.providers.plaid import webhooks as plaid_webhooks
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.plaid.sandbox.webhooks import webhook_signing_key
from finance.providers.plaid.webhooks import PlaidKeys, verify_plaid
from finance.providers.pluggy import webhooks as pluggy_webhooks
from finance.providers.pluggy.webhooks import verify as verify_pluggy
from finance.providers.webhook import PORTFOLIO, Plan
from finance.sandbox.ledger import stable_uuid
from finance.services import Services, open_services
from finance.store.schema import metadata
from finance.webhooks import WebhookReceiver, WebhookRejected

NOW = datetime.now(UTC)
KID = stable_uuid(7, "webhook-verification-key")
PLAID_BODY = json.dumps({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
                         "item_id": "item-1", "initial_update_complete": True, "historical_update_complete": True,
                         "environment": "sandbox"}, indent=2).encode()


def sign(body: bytes, *, key: Any = None, kid: str = KID, iat: float | None = None, alg: str = "ES256",
         digest: str | None = None) -> dict[str, str]:
    claims = {"iat": int(NOW.timestamp() if iat is None else iat),
              "request_body_sha256": digest or hashlib.sha256(body).hexdigest()}
    token = jwt.encode(claims, key if key is not None else webhook_signing_key(7), algorithm=alg,
                       headers={"kid": kid})
    return {"Plaid-Verification": token}


def _part(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(body: bytes) -> dict[str, Any]:
    return {"iat": int(NOW.timestamp()), "request_body_sha256": hashlib.sha256(body).hexdigest()}


def unsigned_token(body: bytes, kid: str = KID) -> str:
    """A JWT with alg "none": header and claims, no signature."""
    return f"{_part({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{_part(_claims(body))}."


def hs256_with_public_key(body: bytes, kid: str = KID) -> str:
    """The classic confusion: HS256 with the (public) verification key as the HMAC secret."""
    pem = webhook_signing_key(7).public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_part({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{_part(_claims(body))}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.fixture
def keys() -> Iterator[PlaidKeys]:
    """The real client fetching keys from the emulator, as the app does offline."""
    emulator = PlaidEmulator(seed=7)
    client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None)
    yield PlaidKeys(client.webhook_verification_key_get)
    client.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings({"FINANCE_DATA_DIR": str(tmp_path), "FINANCE_WEBHOOK_SECRET": "s3cret-value",
                              "FINANCE_SANDBOX_SETTLE_SECONDS": "0"}, secrets_file=tmp_path / "none.toml")
    svc = open_services(settings)
    yield svc
    svc.engine.dispose()


def receiver_for(services: Services, keys: PlaidKeys, sink: Any = None) -> WebhookReceiver:
    """A receiver whose Plaid provider looks signing keys up in `keys` (the emulator's)."""
    services.providers["plaid"].webhook_keys = keys  # type: ignore[attr-defined]
    return WebhookReceiver(services, sink, now=lambda: NOW)


@pytest.fixture
def receiver(services: Services, keys: PlaidKeys) -> WebhookReceiver:
    return receiver_for(services, keys)


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables}


def pluggy_body(event: str = "item/updated", event_id: str = "evt-1", **extra: Any) -> bytes:
    return json.dumps({"event": event, "eventId": event_id, "itemId": "item-1", **extra}).encode()


# -- Plaid verification ------------------------------------------------------------------------------------------------

def test_a_genuine_plaid_webhook_verifies(keys: PlaidKeys) -> None:
    claims = verify_plaid(sign(PLAID_BODY), PLAID_BODY, keys, NOW)
    assert claims["request_body_sha256"] == hashlib.sha256(PLAID_BODY).hexdigest()
    assert keys.fetch_count == 1
    verify_plaid(sign(PLAID_BODY, iat=NOW.timestamp() - 10), PLAID_BODY, keys, NOW)
    assert keys.fetch_count == 1  # the key is cached


def test_the_plaid_provider_reads_plans_and_registers_its_webhooks() -> None:
    """The operations the shared receiver calls: verify and parse, plan, and point Items at our URL."""
    emulator = PlaidEmulator(seed=7)
    client = PlaidClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None)
    provider = PlaidProvider(client, lambda item_id: None)
    event = provider.read_webhook(sign(PLAID_BODY), PLAID_BODY, None, NOW, secret="", allowed_networks=())
    assert (event.provider, event.type, event.item_id) == ("plaid", "TRANSACTIONS/SYNC_UPDATES_AVAILABLE", "item-1")
    assert provider.plan_webhook(event).sync
    with pytest.raises(WebhookRejected):
        provider.read_webhook({}, PLAID_BODY, None, NOW, secret="", allowed_networks=())
    line = provider.register_webhook("https://example.test/webhooks/plaid", secret="", items=["gone"])
    assert line == "Plaid: 0 items pointed at https://example.test/webhooks/plaid, 1 failed."
    client.close()


@pytest.mark.parametrize(("case", "headers", "reason"), [
    ("missing header", {}, "missing"),
    ("not a JWT", {"Plaid-Verification": "not-a-jwt"}, "not a JWT"),
    ("signed by another key", sign(PLAID_BODY, key=ec.generate_private_key(ec.SECP256R1())), "signature"),
    ("wrong key id", sign(PLAID_BODY, kid="6c5516e1-92dc-479e-a8ff-5a51992e0001"), "unknown"),
    ("stale iat", sign(PLAID_BODY, iat=NOW.timestamp() - 301), "too old"),
    ("iat from the future", sign(PLAID_BODY, iat=NOW.timestamp() + 301), "too old"),
    ("altered body", sign(PLAID_BODY.replace(b"item-1", b"item-2")), "does not match"),
    ("hash of another body", sign(PLAID_BODY, digest="0" * 64), "does not match"),
    ("alg none", {"Plaid-Verification": unsigned_token(PLAID_BODY)}, "not ES256"),
    ("HS256 keyed with the public key", {"Plaid-Verification": hs256_with_public_key(PLAID_BODY)}, "not ES256"),
    ("RS256", sign(PLAID_BODY, alg="RS256", key=rsa.generate_private_key(65537, 2048)), "not ES256"),
    ("ES384", sign(PLAID_BODY, alg="ES384", key=ec.generate_private_key(ec.SECP384R1())), "not ES256"),
])
def test_plaid_forgeries_are_refused(keys: PlaidKeys, case: str, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_plaid(headers, PLAID_BODY, keys, NOW)
    assert caught.value.status == 401 and reason in caught.value.reason, case


def test_unknown_key_ids_are_looked_up_a_bounded_number_of_times(keys: PlaidKeys) -> None:
    for n in range(50):
        with pytest.raises(WebhookRejected):
            verify_plaid(sign(PLAID_BODY, kid=f"forged-{n}"), PLAID_BODY, keys, NOW)
    assert keys.fetch_count == PlaidKeys.STRANGERS_PER_MINUTE
    with pytest.raises(WebhookRejected):  # a kid seen unknown is not fetched again at once
        keys.get("forged-0")
    assert keys.fetch_count == PlaidKeys.STRANGERS_PER_MINUTE


def test_an_expired_key_is_refused() -> None:
    numbers = webhook_signing_key(7).public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": KID, "expired_at": int(NOW.timestamp()) - 60,
           "x": base64.urlsafe_b64encode(numbers.x.to_bytes(32, "big")).rstrip(b"=").decode(),
           "y": base64.urlsafe_b64encode(numbers.y.to_bytes(32, "big")).rstrip(b"=").decode()}
    keys = PlaidKeys(lambda kid: jwk)
    with pytest.raises(WebhookRejected, match="expired"):
        verify_plaid(sign(PLAID_BODY), PLAID_BODY, keys, NOW)
    fresh = PlaidKeys(lambda kid: {**jwk, "expired_at": None})
    assert verify_plaid(sign(PLAID_BODY), PLAID_BODY, fresh, NOW)


def test_a_provider_outage_while_fetching_the_key_asks_for_a_retry() -> None:
    from finance.errors import TransientError

    def down(kid: str) -> dict[str, Any]:
        raise TransientError("Plaid is down", provider="plaid")

    with pytest.raises(WebhookRejected) as caught:
        verify_plaid(sign(PLAID_BODY), PLAID_BODY, PlaidKeys(down), NOW)
    assert caught.value.status == 503


# -- Pluggy verification -----------------------------------------------------------------------------------------------

def test_pluggy_secret_header_and_allow_list() -> None:
    verify_pluggy({"x-webhook-secret": "s3cret"}, "10.0.0.5", secret="s3cret")
    verify_pluggy({"X-Webhook-Secret": "s3cret"}, "10.0.0.5", secret="s3cret", allowed_networks=("10.0.0.0/8",))
    for headers, ip, allowed, status in [
        ({}, "10.0.0.5", (), 401),
        ({"X-Webhook-Secret": "wrong"}, "10.0.0.5", (), 401),
        ({"X-Webhook-Secret": "s3cret-but-longer"}, "10.0.0.5", (), 401),
        ({"X-Webhook-Secret": "s3cret"}, "192.168.1.1", ("10.0.0.0/8",), 403),
        ({"X-Webhook-Secret": "s3cret"}, None, ("10.0.0.0/8",), 403),
    ]:
        with pytest.raises(WebhookRejected) as caught:
            verify_pluggy(headers, ip, secret="s3cret", allowed_networks=allowed)
        assert caught.value.status == status


# -- receiving: the store is unchanged by every refusal --------------------------------------------------------------

def test_refused_requests_change_nothing(services: Services, receiver: WebhookReceiver) -> None:
    before = counts(services.engine)
    secret = {"X-Webhook-Secret": "s3cret-value"}
    cases = [
        ("plaid", {}, PLAID_BODY, 401),
        ("plaid", sign(PLAID_BODY, key=ec.generate_private_key(ec.SECP256R1())), PLAID_BODY, 401),
        ("plaid", sign(PLAID_BODY, kid="nope"), PLAID_BODY, 401),
        ("plaid", sign(PLAID_BODY, iat=NOW.timestamp() - 3600), PLAID_BODY, 401),
        ("plaid", sign(PLAID_BODY), PLAID_BODY + b" ", 401),
        ("plaid", {"Plaid-Verification": unsigned_token(PLAID_BODY)}, PLAID_BODY, 401),
        ("plaid", sign(b"{not json"), b"{not json", 400),
        ("plaid", sign(b"[1, 2]"), b"[1, 2]", 400),
        ("plaid", sign(b'{"webhook_type": "ITEM"}'), b'{"webhook_type": "ITEM"}', 400),
        ("pluggy", {}, pluggy_body(), 401),
        ("pluggy", {"X-Webhook-Secret": "guess"}, pluggy_body(), 401),
        ("pluggy", secret, b"\xff\xfe not utf-8", 400),
        ("pluggy", secret, b'{"event": "item/updated"}', 400),
        ("pluggy", secret, pluggy_body(transactionIds="not-a-list"), 400),
        ("pluggy", secret, b" " * (1024 * 1024) + pluggy_body(), 413),
        ("plaid", sign(b"x" * (1024 * 1024)), b"x" * (1024 * 1024), 413),
        ("other", secret, pluggy_body(), 404),
    ]
    for provider, headers, body, status in cases:
        assert receiver.receive(provider, headers, body, "127.0.0.1").status == status, (provider, status)
    assert counts(services.engine) == before


def test_a_replayed_event_is_acknowledged_and_ignored(services: Services, receiver: WebhookReceiver) -> None:
    headers = sign(PLAID_BODY)
    first = receiver.receive("plaid", headers, PLAID_BODY, "127.0.0.1")
    assert (first.status, first.body["status"]) == (200, "accepted")
    after_first = counts(services.engine)
    assert after_first["webhook_events"] == 1
    again = receiver.receive("plaid", headers, PLAID_BODY, "127.0.0.1")
    assert (again.status, again.body["status"]) == (200, "duplicate")
    secret = {"X-Webhook-Secret": "s3cret-value"}
    assert receiver.receive("pluggy", secret, pluggy_body(), None).body["status"] == "accepted"
    assert receiver.receive("pluggy", secret, pluggy_body(), None).body["status"] == "duplicate"
    assert receiver.receive("pluggy", secret, pluggy_body(event_id="evt-2"), None).body["status"] == "accepted"
    assert counts(services.engine)["webhook_events"] == 3
    with services.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, provider, event_type, item_id, outcome FROM webhook_events "
                                    "ORDER BY provider, id")).all()
    assert [(r.provider, r.event_type, r.item_id, r.outcome) for r in rows] == [
        ("plaid", "TRANSACTIONS/SYNC_UPDATES_AVAILABLE", "item-1", "queued"),
        ("pluggy", "item/updated", "item-1", "queued"), ("pluggy", "item/updated", "item-1", "queued")]
    assert {r.id for r in rows if r.provider == "pluggy"} == {"pluggy:evt-1", "pluggy:evt-2"}


def test_unknown_event_types_are_recorded(services: Services, receiver: WebhookReceiver) -> None:
    secret = {"X-Webhook-Secret": "s3cret-value"}
    reply = receiver.receive("pluggy", secret, pluggy_body("payment_intent/created", paymentIntentId="p"), None)
    assert reply.status == 200
    body = json.dumps({"webhook_type": "HOLDINGS", "webhook_code": "DEFAULT_UPDATE", "item_id": "i"}).encode()
    assert receiver.receive("plaid", sign(body), body, None).status == 200
    assert counts(services.engine)["webhook_events"] == 2


class Sink:
    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.rejected: list[str] = []
        self.duplicates = 0

    def submit(self, event_id: str, household: str) -> None:
        self.submitted.append(event_id)

    def note_received(self, event: webhooks.WebhookEvent, *, duplicate: bool, household: str) -> None:
        self.duplicates += duplicate

    def note_rejected(self, provider: str, reason: str) -> None:
        self.rejected.append(provider)


def test_the_receiver_hands_new_events_to_the_worker(services: Services, keys: PlaidKeys) -> None:
    sink = Sink()
    receiver = receiver_for(services, keys, sink)
    secret = {"X-Webhook-Secret": "s3cret-value"}
    receiver.receive("pluggy", secret, pluggy_body(), None)
    receiver.receive("pluggy", secret, pluggy_body(), None)
    receiver.receive("pluggy", {}, pluggy_body(), None)
    assert (sink.submitted, sink.duplicates, sink.rejected) == (["pluggy:evt-1"], 1, ["pluggy"])


# -- the routes ------------------------------------------------------------------------------------------------------

def test_routes_refuse_oversized_bodies_while_reading(services: Services, receiver: WebhookReceiver) -> None:
    current: list[WebhookReceiver | None] = [None]
    app = Starlette(routes=webhooks.routes(lambda: current[0]))
    secret = {"X-Webhook-Secret": "s3cret-value"}
    streamed: list[int] = []

    async def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        for _ in range(64):
            streamed.append(1)
            yield b"x" * 16384

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
            assert (await http.post("/webhooks/pluggy", content=pluggy_body())).status_code == 503  # starting
            current[0] = receiver
            ok = await http.post("/webhooks/pluggy", content=pluggy_body(), headers=secret)
            assert ok.json() == {"status": "accepted"}
            assert (await http.post("/webhooks/plaid", content=PLAID_BODY, headers=sign(PLAID_BODY))).status_code \
                == 200
            assert (await http.post("/webhooks/plaid", content=PLAID_BODY)).status_code == 401
            assert (await http.get("/webhooks/plaid")).status_code == 405
            assert (await http.post("/webhooks/pluggy", content=chunks(), headers=secret)).status_code == 413
            assert len(streamed) < 64  # refused once past the limit, not after reading the whole body
            big = await http.post("/webhooks/pluggy", content=b"x" * (1024 * 1024), headers=secret)
            assert big.status_code == 413 and big.json() == {"error": "Request Entity Too Large"}

    with ThreadPoolExecutor(1) as pool:  # its own thread: an event loop may already run in this one (Playwright)
        pool.submit(anyio.run, scenario).result()
    assert counts(services.engine)["webhook_events"] == 2


# -- what each event means ---------------------------------------------------------------------------------------------

def event(provider: str, kind: str, **payload: Any) -> webhooks.WebhookEvent:
    return webhooks.WebhookEvent(f"{provider}:x", provider, kind, "item-1", payload, NOW)


def planned(event: webhooks.WebhookEvent) -> Plan:
    """What the event's provider says it means."""
    return {"pluggy": pluggy_webhooks.plan, "plaid": plaid_webhooks.plan}[event.provider](event)


@pytest.mark.parametrize("kind", ["item/created", "item/updated", "item/login_succeeded", "transactions/created",
                                  "transactions/updated"])
def test_pluggy_data_events_ask_for_a_sync(kind: str) -> None:
    plan = planned(event("pluggy", kind))
    assert plan.sync and plan.status is None and plan.known
    # Pluggy read every product again after item/created|updated: the sync reads the portfolio too
    assert (PORTFOLIO in plan.refetch) is (kind in ("item/created", "item/updated"))


def test_pluggy_deleted_transactions_are_removed_with_the_next_sync() -> None:
    plan = planned(event("pluggy", "transactions/deleted", transactionIds=["a", "b"]))
    assert plan.sync and plan.removed == ("a", "b")


def test_pluggy_item_states() -> None:
    error = planned(event("pluggy", "item/error", error={"code": "INVALID_CREDENTIALS", "message": "x"}))
    assert (error.status, error.error_code, error.sync) == ("needs_reconnect", "INVALID_CREDENTIALS", True)
    assert "Reconnect" in (error.detail or "")
    outage = planned(event("pluggy", "item/error", error={"code": "SITE_NOT_AVAILABLE", "message": "x"}))
    assert outage.status == "failed"
    assert planned(event("pluggy", "item/waiting_user_input")).status == "needs_input"
    deleted = planned(event("pluggy", "item/deleted"))
    assert (deleted.status, deleted.sync) == ("revoked", False)
    connector = planned(event("pluggy", "connector/status_updated", connectorId=0,
                                          data={"status": "UNSTABLE"}))
    assert not connector.needs_connection and "UNSTABLE" in connector.note
    unknown = planned(event("pluggy", "boleto/updated"))
    assert not unknown.known and not unknown.sync


def test_plaid_events() -> None:
    assert planned(event("plaid", "TRANSACTIONS/SYNC_UPDATES_AVAILABLE")).sync
    assert not planned(event("plaid", "TRANSACTIONS/DEFAULT_UPDATE")).sync
    login = planned(event("plaid", "ITEM/ERROR", error={"error_code": "ITEM_LOGIN_REQUIRED"}))
    assert (login.status, login.sync) == ("needs_reconnect", True)
    down = planned(event("plaid", "ITEM/ERROR", error={"error_code": "INSTITUTION_DOWN"}))
    assert down.status == "failed"
    when = (NOW + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    expiring = planned(event("plaid", "ITEM/PENDING_EXPIRATION", consent_expiration_time=when))
    assert expiring.signal == "PENDING_EXPIRATION" and expiring.signal_until is not None
    assert expiring.status is None and "Reconnect" in (expiring.detail or "")
    disconnect = planned(event("plaid", "ITEM/PENDING_DISCONNECT", disconnect_time=when))
    assert disconnect.signal == "PENDING_DISCONNECT"
    revoked = planned(event("plaid", "ITEM/USER_PERMISSION_REVOKED"))
    assert (revoked.status, revoked.signal, revoked.sync) == ("revoked", "USER_PERMISSION_REVOKED", False)
    new_accounts = planned(event("plaid", "ITEM/NEW_ACCOUNTS_AVAILABLE"))
    assert new_accounts.signal == "NEW_ACCOUNTS_AVAILABLE" and new_accounts.status is None
    repaired = planned(event("plaid", "ITEM/LOGIN_REPAIRED"))
    assert repaired.clear_signal and repaired.sync
    acknowledged = planned(event("plaid", "ITEM/WEBHOOK_UPDATE_ACKNOWLEDGED"))
    assert acknowledged.known and not acknowledged.sync and acknowledged.status is None
    assert not planned(event("plaid", "ASSETS/PRODUCT_READY")).known
