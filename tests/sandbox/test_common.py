"""The shared sandbox pieces: the advanceable clock, switchable faults and the loopback server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from finance.sandbox.common import Clock, Faults, LoopbackServer

START = datetime(2025, 6, 15, 15, 0, tzinfo=UTC)


def test_fixed_clock_moves_only_when_advanced() -> None:
    clock = Clock(start=START)
    assert clock.now() == START == clock.now()
    assert clock.advance(days=1, hours=2, minutes=3, seconds=4) == START + timedelta(days=1, seconds=7384)
    assert clock.offset == timedelta(days=1, seconds=7384)
    with pytest.raises(ValueError):
        clock.advance(hours=-1)


def test_clock_rejects_a_naive_start() -> None:
    with pytest.raises(ValueError):
        Clock(start=datetime(2025, 1, 1))


def test_real_time_clock_follows_the_wall_clock_plus_offset() -> None:
    clock = Clock(offset=timedelta(days=3))
    assert abs(clock.now() - (datetime.now(UTC) + timedelta(days=3))) < timedelta(seconds=5)


def test_clock_state_round_trips_and_loads_in_place() -> None:
    clock = Clock(start=START)
    clock.advance(hours=5)
    restored = Clock.from_state(clock.to_state())
    assert restored.now() == clock.now()

    holder = Clock(start=datetime(2020, 1, 1, tzinfo=UTC))
    same_object = holder
    holder.load_state(clock.to_state())
    assert same_object.now() == START + timedelta(hours=5)


def test_faults_match_path_method_after_and_times() -> None:
    faults = Faults()
    faults.add("server_error", path="/v2/transactions", method="get", after=1, times=2)
    assert faults.take("POST", "/v2/transactions") is None  # other method: not counted
    assert faults.take("GET", "/accounts") is None  # other path
    assert faults.take("GET", "/v2/transactions") is None  # the first one passes (after=1)
    assert faults.take("GET", "/v2/transactions").kind == "server_error"
    assert faults.take("GET", "/v2/transactions").kind == "server_error"
    assert faults.take("GET", "/v2/transactions") is None  # used up
    assert [f.kind for f in faults.active()] == ["server_error"]
    faults.clear()
    assert faults.active() == []


def test_a_fault_with_times_minus_one_lasts_until_cleared() -> None:
    faults = Faults()
    faults.add("timeout", times=-1)
    assert all(faults.take("GET", f"/anything/{i}") is not None for i in range(20))


def test_loopback_server_serves_a_handler_and_refuses_other_hosts() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/stall":
            raise httpx.ReadTimeout("stalled", request=request)
        return httpx.Response(201, json={"method": request.method, "path": request.url.raw_path.decode(),
                                         "body": request.content.decode()}, headers={"X-Echo": "1"})

    with pytest.raises(ValueError):
        LoopbackServer(echo, host="0.0.0.0")
    with LoopbackServer(echo) as server, httpx.Client(base_url=server.base_url, timeout=5) as client:
        assert server.port > 0 and server.base_url == f"http://127.0.0.1:{server.port}"
        response = client.post("/items?x=%2B1", content=b"hello")
        assert response.status_code == 201 and response.headers["X-Echo"] == "1"
        assert response.json() == {"method": "POST", "path": "/items?x=%2B1", "body": "hello"}
        with pytest.raises(httpx.TransportError):
            client.get("/stall")
