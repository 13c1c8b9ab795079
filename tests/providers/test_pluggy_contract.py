"""Contract: the real Pluggy client against the emulator, every endpoint it uses, answers checked on the schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft7Validator, FormatChecker

from finance.errors import ConfigurationError, NotFound
from finance.model import AccountType, ConnectionStatus
from finance.providers.pluggy.client import PluggyClient
from finance.providers.pluggy.provider import PluggyProvider
from finance.providers.pluggy.sandbox import PluggyEmulator
from tests.conftest import REFERENCE


@pytest.fixture(scope="module")
def schemas() -> dict:
    loaded = json.loads((REFERENCE / "pluggy-sdk-schemas.json").read_text())
    # A null running balance is documented (pluggy.md §5.2) though the SDK types it as a number.
    loaded["definitions"]["Transaction"]["properties"]["balance"] = {"type": ["number", "null"]}
    return loaded


def check(schemas: dict, name: str, instance: object) -> None:
    schema = {"$ref": f"#/definitions/{name}", "definitions": schemas["definitions"]}
    errors = sorted(Draft7Validator(schema, format_checker=FormatChecker()).iter_errors(instance), key=str)
    assert not errors, [e.message for e in errors[:5]]


@pytest.fixture
def recorded(emulator: PluggyEmulator) -> Iterator[tuple[PluggyProvider, list[httpx.Response]]]:
    """A provider on the emulator, and every /v2/transactions answer it received, as sent."""
    inner = emulator.transport()
    pages: list[httpx.Response] = []

    def handle(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        response.read()
        if request.url.path == "/v2/transactions":
            pages.append(response)
        return response

    client = PluggyClient("test-id", "test-secret", transport=httpx.MockTransport(handle), sleep=lambda _s: None,
                          now=emulator.clock.now)
    yield PluggyProvider(client, now=emulator.clock.now), pages
    client.close()


def test_every_client_call_against_the_emulator(recorded: tuple[PluggyProvider, list[httpx.Response]],
                                                schemas: dict):
    provider, pages = recorded
    client = provider.client

    connectors = client.connectors(sandbox=True)
    check(schemas, "PluggyConnectorList", {"page": 1, "total": len(connectors), "totalPages": 1,
                                           "results": connectors})
    sandbox = [c for c in connectors if c["isSandbox"]]
    assert [c["name"] for c in sandbox] == ["Pluggy Bank", "Pluggy Bank (conexão direta)", "Pluggy Bank Open Finance"]
    assert client.connector(sandbox[0]["id"])["id"] == sandbox[0]["id"]
    assert client.create_connect_token()
    assert [c["name"] for c in client.connectors(sandbox=False) if c["isSandbox"]] == []

    item = client.create_item(sandbox[0]["id"], {"user": "user-ok", "password": "password-ok"})
    check(schemas, "PluggyItem", item)
    assert client.create_connect_token(item["id"])
    settled = provider.wait_until_settled(item["id"], sleep=lambda _s: None)
    assert settled.status is ConnectionStatus.ACTIVE
    check(schemas, "PluggyItem", client.item(item["id"]))

    accounts = client.accounts(item["id"])
    check(schemas, "PluggyAccountList", {"page": 1, "total": len(accounts), "totalPages": 1, "results": accounts})
    mapped = provider.fetch_accounts(item["id"])
    assert sorted(a.type for a in mapped) == [AccountType.CHECKING, AccountType.CREDIT_CARD]

    rows = list(client.transactions(accounts[0]["id"]))
    for page in pages:
        check(schemas, "PluggyTransactionCursorPage", page.json())
    assert [r["id"] for page in pages for r in page.json()["results"]] == [r.id for r in rows]
    assert len({r.id for r in rows}) == len(rows) > 100
    some = [r.id for r in rows[:3]]
    assert [r.id for r in client.transactions(accounts[0]["id"], ids=some)] == some

    categories = client.categories()
    for category in categories:
        check(schemas, "PluggyCategory", category)
    assert {"01010000", "05100000"} <= {c["id"] for c in categories}

    updated = provider.reconnect(item["id"])
    assert updated.status in (ConnectionStatus.SYNCING, ConnectionStatus.ACTIVE)
    provider.disconnect(item["id"])
    provider.disconnect(item["id"])  # already gone: still fine
    with pytest.raises(NotFound):
        client.item(item["id"])


def test_mfa_through_the_client(provider: PluggyProvider):
    state = provider.create_connection("0", {"user": "user-ok-mfa", "password": "password-ok"})
    state = provider.wait_until_settled(state.external_id, sleep=lambda _s: None)
    assert state.status is ConnectionStatus.NEEDS_INPUT
    assert state.mfa_prompt is not None and state.mfa_prompt.name == "token"
    state = provider.submit_mfa(state.external_id, {"token": "123456"})
    assert provider.wait_until_settled(state.external_id, sleep=lambda _s: None).status is ConnectionStatus.ACTIVE


def test_client_reauthenticates_after_the_key_expires(provider: PluggyProvider, emulator: PluggyEmulator):
    provider.client.connectors()
    emulator.advance(hours=3)  # the 2-hour API key is now stale
    provider.client.connectors()
    assert sum(1 for m, p in emulator.request_log if (m, p) == ("POST", "/auth")) == 2


def test_wrong_client_secret_is_a_configuration_error_without_the_secret(emulator_with_keys):
    emulator = emulator_with_keys
    client = PluggyClient("id-1", "wrong-secret-value", transport=emulator.transport(), sleep=lambda _s: None,
                          now=emulator.clock.now)
    with pytest.raises(ConfigurationError) as caught:
        client.connectors()
    assert "PLUGGY_CLIENT_SECRET" in caught.value.message
    assert "wrong-secret-value" not in str(caught.value)


@pytest.fixture
def emulator_with_keys() -> PluggyEmulator:
    return PluggyEmulator(client_id="id-1", client_secret="right-secret")


def test_served_emulator_over_loopback(tmp_path: Path):
    emulator = PluggyEmulator(state_path=tmp_path / "state.json")
    with emulator.serve(port=0) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        client = PluggyClient("any", "thing", base_url=server.base_url, now=emulator.clock.now)
        provider = PluggyProvider(client, now=emulator.clock.now)
        state = provider.create_connection("0", {"user": "user-ok", "password": "password-ok"})
        state = provider.wait_until_settled(state.external_id, sleep=lambda _s: None)
        assert state.status is ConnectionStatus.ACTIVE
        assert len(provider.fetch_accounts(state.external_id)) == 2
        client.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/connectors", timeout=2)
