"""The pipelined /v2/transactions walk (next page requested before this one is decoded) and Pluggy's limit groups."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import finance.providers.pluggy.sandbox.transactions as pluggy_emulator_transactions
from finance.errors import BadData, RequestRejected
from finance.providers.pluggy.client import PluggyClient, rate_limit_group, rate_limits
from finance.providers.pluggy.sandbox import PluggyEmulator
from finance.sandbox.common import Clock
from tests.conftest import START


class FakePluggy:
    """A /v2/transactions server with scripted pages (by cursor), recording every request's cursor."""

    def __init__(self, pages: dict[str | None, bytes]) -> None:
        self.pages = pages
        self.cursors: list[str | None] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth":
            return httpx.Response(200, json={"apiKey": "key"})
        cursor = request.url.params.get("after")
        self.cursors.append(cursor)
        if cursor not in self.pages:
            return httpx.Response(400, json={"code": 400, "message": "bad cursor"})
        return httpx.Response(200, content=self.pages[cursor])


def page(rows: list[dict[str, Any]], after: str | None, *, next_first: bool = False) -> bytes:
    link = f"?accountId=acc&after={after}" if after else None
    body = {"next": link, "results": rows} if next_first else {"results": rows, "next": link}
    return json.dumps(body).encode()


def row(transaction_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": transaction_id, "amount": -1.5, "date": "2024-03-01T12:00:00.000Z", **extra}


def walk(server: FakePluggy) -> list[list[str]]:
    """The ids on each page the walk yields."""
    client = PluggyClient("id", "secret", transport=httpx.MockTransport(server.handle), sleep=lambda _s: None)
    try:
        return [[r.id for r in rows] for rows in client.transaction_pages("acc")]
    finally:
        client.close()


def test_the_walk_asks_for_each_page_once_when_the_cursor_read_ahead_is_right() -> None:
    server = FakePluggy({None: page([row("1")], "A"), "A": page([row("2")], "B"), "B": page([row("3")], None)})
    assert walk(server) == [["1"], ["2"], ["3"]]
    assert sorted(server.cursors, key=str) == sorted([None, "A", "B"], key=str)


def test_a_wrong_read_ahead_is_dropped_and_the_page_the_answer_names_is_fetched() -> None:
    # "next" comes first and a row carries a "next" field too: the byte-level guess reads the row's value.
    decoy = [row("1", next="?after=WRONG")]
    server = FakePluggy({None: page(decoy, "A", next_first=True), "A": page([row("2")], None)})
    assert walk(server) == [["1"], ["2"]]
    assert sorted(server.cursors, key=str) == sorted([None, "WRONG", "A"], key=str)


def test_a_page_that_is_not_json_fails_the_walk_with_bad_data() -> None:
    server = FakePluggy({None: page([row("1")], "A")[:-20], "A": page([row("2")], None)})
    with pytest.raises(BadData) as info:
        walk(server)
    assert info.value.code == "MALFORMED_RESPONSE"


def test_an_error_on_a_page_requested_ahead_surfaces_when_that_page_is_needed() -> None:
    server = FakePluggy({None: page([row("1")], "A"), "A": page([row("2")], "B")})  # no page B: 400
    pages = []
    with pytest.raises(RequestRejected) as info:
        for rows in PluggyClient("id", "secret", transport=httpx.MockTransport(server.handle),
                                 sleep=lambda _s: None).transaction_pages("acc"):
            pages.append([r.id for r in rows])
    assert pages == [["1"], ["2"]]
    assert info.value.status == 400


def test_against_the_emulator_pages_match_a_plain_walk_and_no_request_is_wasted(monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    monkeypatch.setattr(pluggy_emulator_transactions, "V2_PAGE_SIZE", 25)
    emulator = PluggyEmulator(clock=Clock(start=START), seed=3)
    client = PluggyClient("id", "secret", transport=emulator.transport(), sleep=lambda _s: None,
                          now=emulator.clock.now)
    try:
        item = client.create_item(0, {"user": "user-ok", "password": "password-ok"})
        while client.item(item["id"])["status"] != "UPDATED":
            emulator.clock.advance(seconds=5)
        account = client.accounts(item["id"])[0]["id"]
        before = sum(1 for _, path in emulator.request_log if path.startswith("/v2/transactions"))
        pages = list(client.transaction_pages(account))
        sent = sum(1 for _, path in emulator.request_log if path.startswith("/v2/transactions")) - before
    finally:
        client.close()
    rows = [r.id for rows in pages for r in rows]
    assert len(pages) > 3 and sent == len(pages)
    assert len(rows) == len(set(rows))


@pytest.mark.parametrize(("method", "path", "group"), [
    ("POST", "/auth", "auth"), ("GET", "/accounts", "accounts"), ("GET", "/accounts/a1", "accounts"),
    ("GET", "/v2/transactions", "transactions"), ("GET", "/transactions/t1", "transactions"),
    ("PATCH", "/items/i1", "item_update"), ("GET", "/items/i1", None), ("POST", "/items", None),
])
def test_pluggy_limit_groups_follow_the_reference(method: str, path: str, group: str | None) -> None:
    assert rate_limit_group(method, path) == group
    buckets = rate_limits(httpx.Request(method, f"https://api.pluggy.ai{path}"))
    assert buckets == ([(f"pluggy:{group}", 20 if group == "item_update" else 360)] if group else [])
