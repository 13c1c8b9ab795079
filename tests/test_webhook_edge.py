"""The webhook edge under attack: a forged X-Forwarded-For, a replay with its signature re-encoded, a flood of
forged signing-key ids, bodies nested or sized to crash the parser, and a flood that would fill the disk with log
lines. Each is tried through the real routes (the real ASGI server where its behaviour matters)."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette

from finance import webhooks
from finance.config import load_settings
from finance.logs import BoundedLines, one_line
from finance.providers.plaid.client import PlaidClient
from finance.providers.plaid.provider import PlaidProvider
from finance.providers.plaid.sandbox import PlaidEmulator
from finance.providers.plaid.sandbox.webhooks import webhook_signing_key
from finance.providers.plaid.webhooks import PlaidKeys, verify_plaid
from finance.providers.webhook import MAX_JSON_DEPTH, nests_deeper_than
from finance.sandbox.ledger import stable_uuid
from finance.services import Services, open_services
from finance.webhooks import WebhookReceiver, WebhookRejected, client_address
from tests.test_webhooks import NOW, PLAID_BODY, counts, keys, pluggy_body, receiver_for, sign

__all__ = ["keys"]  # the fixture, shared with tests/test_webhooks.py

SECRET = {"X-Webhook-Secret": "s3cret-value"}
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def open_for(tmp_path: Path, **env: str) -> Services:
    settings = load_settings({"FINANCE_DATA_DIR": str(tmp_path), "FINANCE_WEBHOOK_SECRET": "s3cret-value",
                              "FINANCE_SANDBOX_SETTLE_SECONDS": "0", **env}, secrets_file=tmp_path / "none.toml")
    return open_services(settings)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = open_for(tmp_path)
    yield svc
    svc.engine.dispose()


def in_own_thread(scenario: Any) -> None:
    """Run an async scenario in a thread of its own (an event loop may already run in this one: Playwright)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, scenario).result()


# -- 1. the client address: X-Forwarded-For only from a trusted proxy ------------------------------------------------

LOOPBACK = ("127.0.0.1/32", "::1/128")


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("203.0.113.9", [], (), "203.0.113.9"),
    ("203.0.113.9", ["10.0.0.5"], (), "203.0.113.9"),  # a stranger's header is ignored
    ("203.0.113.9", ["10.0.0.5"], ("10.9.0.0/16",), "203.0.113.9"),
    ("10.9.9.9", ["10.0.0.5"], ("10.9.0.0/16",), "10.0.0.5"),  # behind our proxy
    ("10.9.9.9", ["10.0.0.5, 203.0.113.9"], ("10.9.0.0/16",), "203.0.113.9"),  # the proxy appended the real one
    ("10.9.9.9", ["10.0.0.5, 10.9.1.1"], ("10.9.0.0/16",), "10.0.0.5"),  # two of our proxies in a row
    ("10.9.9.9", ["10.0.0.5", "203.0.113.9:4711"], ("10.9.0.0/16",), "203.0.113.9"),  # two headers, a port
    ("10.9.9.9", ["10.9.1.1"], ("10.9.0.0/16",), None),  # only proxies: nobody to name
    ("10.9.9.9", ["not-an-address"], ("10.9.0.0/16",), None),
    ("10.9.9.9", ["10.0.0.5, "], ("10.9.0.0/16",), None),
    (None, ["10.0.0.5"], ("10.9.0.0/16",), None),
    # uvicorn already replaced a loopback peer with the header's right-most address: the real peer is unknown
    ("10.0.0.5", ["10.0.0.5"], (), None),
    ("10.0.0.5", ["10.0.0.5"], ("10.9.0.0/16",), None),
    # ... and when the loopback proxy is ours, the header is read by our rules
    ("10.0.0.5", ["10.0.0.5"], LOOPBACK, "10.0.0.5"),
    ("203.0.113.9", ["10.0.0.5, 203.0.113.9"], LOOPBACK, "203.0.113.9"),
])
def test_the_client_address_follows_only_trusted_proxies(peer: str | None, forwarded: list[str],
                                                         trusted: tuple[str, ...], expected: str | None) -> None:
    assert client_address(peer, forwarded, trusted, LOOPBACK) == expected


class Served:
    """The webhook routes on a real uvicorn server on 127.0.0.1, configured as Streamlit configures it (uvicorn's
    own X-Forwarded-For handling on, for loopback peers)."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        app = Starlette(routes=webhooks.routes(lambda: receiver))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def post_pluggy(url: str, forwarded: str | None, event_id: str) -> int:
    headers = {**SECRET, **({"X-Forwarded-For": forwarded} if forwarded else {})}
    return httpx.post(f"{url}/webhooks/pluggy", content=pluggy_body(event_id=event_id), headers=headers).status_code


def test_a_forged_forwarded_for_does_not_pass_the_allow_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             keys: PlaidKeys) -> None:
    """Pluggy's allow-list through the real server: a header naming an allowed address gets nobody in unless it
    comes from a proxy we trust, and then only the address our proxy appended counts."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    direct = open_for(tmp_path / "direct", FINANCE_WEBHOOK_ALLOWED_IPS="10.0.0.0/8")
    with Served(receiver_for(direct, keys)) as served:
        assert post_pluggy(served.url, "10.0.0.5", "evt-1") == 403
        assert post_pluggy(served.url, None, "evt-2") == 403  # 127.0.0.1 is not allowed either
    proxied = open_for(tmp_path / "proxied", FINANCE_WEBHOOK_ALLOWED_IPS="10.0.0.0/8",
                       FINANCE_TRUSTED_PROXIES="127.0.0.1, ::1")
    with Served(receiver_for(proxied, keys)) as served:
        assert post_pluggy(served.url, "10.0.0.5", "evt-3") == 200
        assert post_pluggy(served.url, "10.0.0.5, 192.168.1.9", "evt-4") == 403  # the proxy saw 192.168.1.9
    assert counts(direct.engine)["webhook_events"] == 0
    assert counts(proxied.engine)["webhook_events"] == 1
    for svc in (direct, proxied):
        svc.engine.dispose()


def test_a_remote_trusted_proxy(tmp_path: Path, keys: PlaidKeys) -> None:
    """A proxy on another machine (the app listening beyond loopback): its header counts, a stranger's does not."""
    svc = open_for(tmp_path, FINANCE_WEBHOOK_ALLOWED_IPS="177.71.238.0/24", FINANCE_TRUSTED_PROXIES="10.9.0.0/16")
    app = Starlette(routes=webhooks.routes(lambda: receiver_for(svc, keys)))

    async def scenario() -> None:
        for peer, status in [(("10.9.9.9", 40000), 200), (("203.0.113.9", 40000), 403)]:
            transport = httpx.ASGITransport(app=app, client=peer)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                reply = await http.post("/webhooks/pluggy", content=pluggy_body(event_id=peer[0]),
                                        headers={**SECRET, "X-Forwarded-For": "177.71.238.212"})
                assert reply.status_code == status, peer

    in_own_thread(scenario)
    svc.engine.dispose()


# -- 2. replays are recognised by what was signed ----------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def high_s(token: str) -> str:
    """The same token with its ECDSA signature (r, s) re-encoded as (r, n - s), which verifies just as well."""
    head, claims, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    s = int.from_bytes(raw[32:], "big")
    return f"{head}.{claims}.{_b64(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"


def test_a_replay_with_its_signature_re_encoded_is_recognised(services: Services, keys: PlaidKeys) -> None:
    receiver = receiver_for(services, keys)
    token = sign(PLAID_BODY)["Plaid-Verification"]
    malleated = high_s(token)
    assert malleated != token  # and it verifies on its own: only the replay check can tell
    verify_plaid({"Plaid-Verification": malleated}, PLAID_BODY, keys, NOW)
    first = receiver.receive("plaid", {"Plaid-Verification": token}, PLAID_BODY, None)
    assert first.body == {"status": "accepted"}
    again = receiver.receive("plaid", {"Plaid-Verification": malleated}, PLAID_BODY, None)
    assert again.body == {"status": "duplicate"}
    assert counts(services.engine)["webhook_events"] == 1


# -- 3. looking up unknown signing keys --------------------------------------------------------------------------------

NEW_KID = stable_uuid(8, "webhook-verification-key")


@pytest.fixture
def rotated() -> Iterator[PlaidProvider]:
    """A Plaid provider whose key server knows one key, new to us (Plaid rotated its key), and which holds item-1."""
    client = PlaidClient("id", "secret", transport=PlaidEmulator(seed=8).transport(), sleep=lambda _s: None)
    yield PlaidProvider(client, lambda item_id: "access-sandbox-1" if item_id == "item-1" else None)
    client.close()


def delivery(item_id: str, *, kid: str, key: Any, iat: float | None = None) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
                       "item_id": item_id}).encode()
    return sign(body, kid=kid, key=key, iat=iat), body


def read(provider: PlaidProvider, headers: dict[str, str], body: bytes) -> Any:
    return provider.read_webhook(headers, body, None, NOW, secret="", allowed_networks=())


def test_a_flood_of_forged_key_ids_does_not_block_a_new_genuine_key(rotated: PlaidProvider) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    for n in range(1000):  # well-formed, fresh, the body hash right: only the signature is false
        headers, body = delivery(f"made-up-item-{n}", kid=f"forged-{n}", key=forger)
        with pytest.raises(WebhookRejected):
            read(rotated, headers, body)
    assert rotated.webhook_keys.fetch_count == PlaidKeys.STRANGERS_PER_MINUTE
    headers, body = delivery("item-1", kid=NEW_KID, key=webhook_signing_key(8))
    assert read(rotated, headers, body).item_id == "item-1"
    assert rotated.webhook_keys.fetch_count == PlaidKeys.STRANGERS_PER_MINUTE + 1


def test_forgeries_naming_our_item_are_bounded_too(rotated: PlaidProvider) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    for n in range(200):
        headers, body = delivery("item-1", kid=f"forged-{n}", key=forger)
        with pytest.raises(WebhookRejected):
            read(rotated, headers, body)
    assert rotated.webhook_keys.fetch_count == PlaidKeys.ITEM_PER_MINUTE


def test_stale_or_altered_forgeries_cost_no_lookup(rotated: PlaidProvider) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    headers, body = delivery("item-1", kid="forged-stale", key=forger, iat=NOW.timestamp() - 600)
    with pytest.raises(WebhookRejected, match="too old"):
        read(rotated, headers, body)
    headers, body = delivery("item-1", kid="forged-altered", key=forger)
    with pytest.raises(WebhookRejected, match="does not match"):
        read(rotated, headers, body.replace(b"item-1", b"item-2"))
    assert rotated.webhook_keys.fetch_count == 0


def test_keys_are_refreshed_and_unknown_kids_forgotten_in_time() -> None:
    numbers = webhook_signing_key(7).public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k1", "expired_at": None,
           "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))}
    published = {"k1": jwk}
    now = [0.0]
    keys = PlaidKeys(lambda kid: published.get(kid, {}), clock=lambda: now[0], refresh_after=3600,
                     forget_unknown_after=600)
    assert keys.get("k1") == jwk and keys.fetch_count == 1
    for n in range(50):  # a flood of unknown kids does not touch the refresh lane
        with pytest.raises(WebhookRejected):
            keys.get(f"forged-{n}")
    published["k1"] = {**jwk, "expired_at": 1}  # Plaid retires the key
    now[0] = 3599
    assert keys.get("k1")["expired_at"] is None  # not due yet
    now[0] = 3601
    assert keys.get("k1")["expired_at"] == 1  # re-read
    with pytest.raises(WebhookRejected, match="unknown"):  # known unknown: no lookup
        keys.get("forged-0")
    now[0] = 3601 + 600
    published["forged-0"] = {**jwk, "kid": "forged-0"}
    assert keys.get("forged-0")["kid"] == "forged-0"  # forgotten, looked up again


# -- 4. bodies shaped to crash the parser -----------------------------------------------------------------------------

def nested(depth: int) -> bytes:
    return b'{"event": "item/updated", "eventId": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(("text", "depth"), [
    ('{"a": [1, {"b": "[[[[\\"[", "c": "\\\\", "d": [[]]}]}', 5),  # brackets, escaped quotes inside strings
    ('["a\\n", [[]]]', 3),
    ('["\\\\", [[]]]', 3),  # an escaped backslash ends right before the closing quote
    ('["\\\\\\"[[", [[]]]', 3),
    ('{"a": {"b": {"c": []}}, "d": [[], [[]]]}', 4),
    ("[" * 40 + "]" * 40, 40),
    ("[" + ", ".join(["[]"] * 40) + "]", 2),
    ('["' + "[" * 40 + '"]', 1),
])
def test_nesting_is_measured_outside_strings(text: str, depth: int) -> None:
    json.loads(text)
    assert [nests_deeper_than(text.encode(), limit) for limit in (depth - 1, depth)] == [True, False]


def test_deeply_nested_or_oversized_bodies_get_a_4xx(services: Services, keys: PlaidKeys) -> None:
    app = Starlette(routes=webhooks.routes(lambda: receiver_for(services, keys)))
    deep = nested(5000)
    signed = sign(deep, key=webhook_signing_key(7))
    big = [b"x" * 16384] * 64

    async def chunks() -> Any:
        for chunk in big:
            yield chunk

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            assert (await http.post("/webhooks/pluggy", content=deep, headers=SECRET)).status_code == 400
            assert (await http.post("/webhooks/plaid", content=deep, headers=signed)).status_code == 400
            forged = sign(deep, kid="forged", key=ec.generate_private_key(ec.SECP256R1()))
            assert (await http.post("/webhooks/plaid", content=deep, headers=forged)).status_code == 400
            deep_header = _b64(b'{"alg": "ES256", "kid": "k", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
            token = {"Plaid-Verification": f"{deep_header}.e30.c2ln"}
            assert (await http.post("/webhooks/plaid", content=PLAID_BODY, headers=token)).status_code == 401
            shallow = nested(MAX_JSON_DEPTH - 1)
            assert (await http.post("/webhooks/pluggy", content=shallow, headers=SECRET)).status_code == 200
            lying = await http.post("/webhooks/pluggy", content=chunks(), headers={**SECRET, "Content-Length": "10"})
            assert lying.status_code == 413
            assert (await http.post("/webhooks/pluggy", content=b"x" * (2 << 20), headers=SECRET)).status_code == 413

    in_own_thread(scenario)
    assert counts(services.engine)["webhook_events"] == 1


def test_replies_to_a_refused_sender_say_nothing_of_the_checks(services: Services, keys: PlaidKeys) -> None:
    receiver = receiver_for(services, keys)
    assert receiver.receive("plaid", sign(PLAID_BODY, kid="nope"), PLAID_BODY, None).body == {"error": "Unauthorized"}
    assert receiver.receive("pluggy", SECRET, b"[]", None).body == {"error": "Bad Request"}


# -- 5. bounded logs ---------------------------------------------------------------------------------------------------

@pytest.fixture
def log_bytes() -> Iterator[io.StringIO]:
    """What the finance loggers write (warnings and worse), as a handler on `finance` would."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("finance")
    logger.addHandler(handler)
    yield buffer
    logger.removeHandler(handler)


def test_a_flood_of_forged_webhooks_writes_a_bounded_log(services: Services, keys: PlaidKeys,
                                                         log_bytes: io.StringIO,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert any(isinstance(f, BoundedLines) for f in webhooks.log.filters)
    monkeypatch.setattr(webhooks.log, "filters", [BoundedLines()])  # this minute's budget untouched by other tests
    receiver = receiver_for(services, keys)
    for n in range(10_000):
        provider, headers = ("pluggy", {"X-Webhook-Secret": f"guess-{n}"}) if n % 2 else ("plaid", {})
        assert receiver.receive(provider, headers, pluggy_body(), "127.0.0.1").status == 401
    written = log_bytes.getvalue()
    assert 0 < len(written.encode()) < 4096, len(written)
    assert written.count("\n") <= 2 * 10


def test_log_lines_are_one_bounded_line_and_repeats_are_counted() -> None:
    assert one_line("forged\r\nINFO all good") == "forged\\r\\nINFO all good"
    assert len(one_line("x" * 10_000)) == 500
    now = [0.0]
    lines = BoundedLines(per_minute=3, clock=lambda: now[0])
    logger = logging.getLogger("finance.test_edge")
    records = [logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "rejected: %s", (f"n{n}\n",), None)
               for n in range(10)]
    kept = [r for r in records if lines.filter(r)]
    assert [r.getMessage() for r in kept] == ["rejected: n0\\n", "rejected: n1\\n", "rejected: n2\\n"]
    now[0] = 61
    later = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "rejected: %s", ("again",), None)
    assert lines.filter(later)
    assert later.getMessage() == "rejected: again (7 more like this were left out in the minute before)"


def test_the_cli_log_is_bounded_too(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m finance …` (the worker among them) logs through one handler on stderr: the same bounds hold."""
    from finance import cli

    cli._configure_logging(verbose=False)
    logger = logging.getLogger("finance.test_edge_cli")
    try:
        for n in range(100):
            logger.error("sync failed: %s", f"the bank said\nerror: {n}")
    finally:
        for handler in [h for h in logging.getLogger("finance").handlers if isinstance(h, cli._CliHandler)]:
            logging.getLogger("finance").removeHandler(handler)
    err = capsys.readouterr().err
    assert err.count("\n") == 10 and err.count("\\n") == 10
