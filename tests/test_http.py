"""The retry loop (what is retried, how long it waits, what never is), the client-side rate limiter and request
counting."""

from __future__ import annotations

import contextvars
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import finance.http
from finance.errors import BadData, ConfigurationError, ProviderError, RateLimited, RequestRejected, TransientError
from finance.http import (
    RateLimiter,
    RetryPolicy,
    backoff_delay,
    call_with_retries,
    counting_requests,
    make_client,
    retry_after_seconds,
)

POLICY = RetryPolicy(attempts=4, base_delay=0.5, max_delay=3.0, max_rate_limit_wait=90.0)
REQUEST = httpx.Request("GET", "https://api.example.com/things")


class Jitter:
    """Stands in for the `random` module: `uniform` returns the top of its range."""

    @staticmethod
    def uniform(a: float, b: float) -> float:
        return b


@pytest.fixture(autouse=True)
def top_of_range_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finance.http, "random", Jitter())


def ok() -> httpx.Response:
    return httpx.Response(200, json={"ok": True}, request=REQUEST)


def status(code: int, **headers: str) -> httpx.Response:
    return httpx.Response(code, headers=headers, request=REQUEST)


def classify(response: httpx.Response) -> ProviderError | None:
    if response.status_code == 200:
        return None
    if response.status_code == 429:
        return RateLimited("slow down", retry_after=retry_after_seconds(response), status=429)
    if response.status_code >= 500:
        return TransientError("server error", status=response.status_code)
    if response.status_code == 401:
        return ConfigurationError("bad keys", status=401)
    if response.status_code == 422:
        return BadData("unreadable", status=422)
    return RequestRejected("no", status=response.status_code)


class Script:
    """A `send` that plays responses (or raises exceptions) in order and counts calls."""

    def __init__(self, *steps: httpx.Response | Exception) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self) -> httpx.Response:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        return step


def run(send: Callable[[], httpx.Response], slept: list[float], *, idempotent: bool = True,
        policy: RetryPolicy = POLICY) -> httpx.Response:
    return call_with_retries(send, classify, idempotent=idempotent, policy=policy, sleep=slept.append,
                             provider="Example")


# --------------------------------------------------------------------------------------------
# retry_after_seconds
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "expected"), [
    ({"RateLimit-Reset": "2", "Retry-After": "60"}, 2.0),
    ({"Retry-After": "60"}, 60.0),
    ({"RateLimit-Reset": "0.5"}, 0.5),
    ({"ratelimit-reset": "7", "retry-after": "60"}, 7.0),  # header names are case-insensitive
    ({"RateLimit-Reset": "soon", "Retry-After": "30"}, 30.0),  # an unreadable value falls through
    ({"RateLimit-Reset": "-5"}, 0.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # HTTP-date form is not used by providers here
    ({}, None),
])
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(status(429, **headers)) == expected


# --------------------------------------------------------------------------------------------
# backoff_delay
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("attempt", "cap"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (30, 3.0)])
def test_backoff_cap_doubles_up_to_max_delay(attempt: int, cap: float) -> None:
    assert backoff_delay(attempt, POLICY) == cap  # Jitter returns the top of the range


@given(attempt=st.integers(min_value=1, max_value=64), seed=st.integers(min_value=0, max_value=2**32),
       base=st.floats(min_value=0.01, max_value=5), max_delay=st.floats(min_value=0.01, max_value=60))
def test_backoff_jitter_stays_within_zero_and_cap(attempt: int, seed: int, base: float, max_delay: float) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=max_delay)
    cap = min(max_delay, base * 2 ** (attempt - 1))
    delay = backoff_delay(attempt, policy, random.Random(seed))
    assert 0.0 <= delay <= cap


def test_backoff_uses_the_given_rng_over_the_full_range() -> None:
    caps = [0.5, 1.0, 2.0, 3.0, 3.0]
    delays = [backoff_delay(n, POLICY, random.Random(42)) for n in range(1, 6)]
    assert delays == [random.Random(42).uniform(0, cap) for cap in caps]
    assert delays[3] == delays[4]  # same draw, same cap once max_delay is reached


# --------------------------------------------------------------------------------------------
# call_with_retries
# --------------------------------------------------------------------------------------------

def test_success_needs_no_retry() -> None:
    slept: list[float] = []
    send = Script(ok())
    assert run(send, slept).status_code == 200
    assert (send.calls, slept) == (1, [])


def test_rate_limit_waits_the_header_plus_bounded_jitter() -> None:
    slept: list[float] = []
    send = Script(status(429, **{"RateLimit-Reset": "2", "Retry-After": "60"}), ok())
    assert run(send, slept).status_code == 200
    assert send.calls == 2
    assert slept == [2.25]


def test_rate_limit_without_headers_uses_backoff() -> None:
    slept: list[float] = []
    send = Script(status(429), status(429), ok())
    run(send, slept)
    assert slept == [0.5 + 0.25, 1.0 + 0.25]


def test_rate_limit_wait_above_the_maximum_raises_at_once() -> None:
    slept: list[float] = []
    send = Script(status(429, **{"Retry-After": "91"}), ok())
    with pytest.raises(RateLimited) as info:
        run(send, slept)
    assert info.value.retry_after == 91.0
    assert (send.calls, slept) == (1, [])


def test_rate_limit_wait_at_the_maximum_is_waited() -> None:
    slept: list[float] = []
    send = Script(status(429, **{"Retry-After": "90"}), ok())
    run(send, slept)
    assert slept == [90.25]


def test_rate_limit_gives_up_after_the_attempts() -> None:
    slept: list[float] = []
    send = Script(status(429, **{"RateLimit-Reset": "1"}))
    with pytest.raises(RateLimited):
        run(send, slept)
    assert send.calls == 4
    assert slept == [1.25, 1.25, 1.25]


def test_rate_limit_is_retried_even_when_not_idempotent() -> None:
    slept: list[float] = []
    send = Script(status(429, **{"RateLimit-Reset": "1"}), ok())
    assert run(send, slept, idempotent=False).status_code == 200
    assert send.calls == 2


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_server_errors_retry_with_backoff_then_raise(code: int) -> None:
    slept: list[float] = []
    send = Script(status(code))
    with pytest.raises(TransientError) as info:
        run(send, slept)
    assert info.value.status == code
    assert send.calls == 4
    assert slept == [0.5, 1.0, 2.0]


def test_server_error_then_success() -> None:
    slept: list[float] = []
    send = Script(status(503), ok())
    assert run(send, slept).status_code == 200
    assert (send.calls, slept) == (2, [0.5])


def test_server_error_not_retried_when_not_idempotent() -> None:
    slept: list[float] = []
    send = Script(status(500), ok())
    with pytest.raises(TransientError):
        run(send, slept, idempotent=False)
    assert (send.calls, slept) == (1, [])


def test_timeouts_retry_then_raise_transient() -> None:
    slept: list[float] = []
    send = Script(httpx.ReadTimeout("slow", request=REQUEST))
    with pytest.raises(TransientError) as info:
        run(send, slept)
    assert (info.value.code, info.value.provider) == ("TIMEOUT", "Example")
    assert "Example did not answer in time" in info.value.message
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert send.calls == 4
    assert slept == [0.5, 1.0, 2.0]


def test_network_errors_retry_then_raise_transient() -> None:
    slept: list[float] = []
    send = Script(httpx.ConnectError("refused", request=REQUEST), httpx.ConnectError("refused", request=REQUEST), ok())
    assert run(send, slept).status_code == 200
    assert (send.calls, slept) == (3, [0.5, 1.0])
    send = Script(httpx.ConnectError("refused", request=REQUEST))
    with pytest.raises(TransientError) as info:
        run(send, [])
    assert info.value.code == "NETWORK"


@pytest.mark.parametrize("failure", [httpx.ReadTimeout("slow", request=REQUEST),
                                     httpx.ConnectTimeout("slow", request=REQUEST),
                                     httpx.ConnectError("refused", request=REQUEST)],
                         ids=["read-timeout", "connect-timeout", "connect-error"])
def test_non_idempotent_call_is_not_retried_on_transport_failures(failure: Exception) -> None:
    slept: list[float] = []
    send = Script(failure, ok())
    with pytest.raises(TransientError):
        run(send, slept, idempotent=False)
    assert (send.calls, slept) == (1, [])


@pytest.mark.parametrize(("code", "error"), [(400, RequestRejected), (401, ConfigurationError), (422, BadData)])
def test_final_errors_are_not_retried(code: int, error: type[ProviderError]) -> None:
    slept: list[float] = []
    send = Script(status(code), ok())
    with pytest.raises(error):
        run(send, slept)
    assert (send.calls, slept) == (1, [])


def test_single_attempt_policy_never_retries() -> None:
    slept: list[float] = []
    send = Script(status(503), ok())
    with pytest.raises(TransientError):
        run(send, slept, policy=RetryPolicy(attempts=1))
    assert (send.calls, slept) == (1, [])


def test_make_client_defaults() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"path": request.url.path}))
    with make_client("https://api.example.com", transport=transport, headers={"X-Extra": "1"}) as client:
        response = client.get("/v1/thing")
        assert response.json() == {"path": "/v1/thing"}
        assert response.request.headers["Accept"] == "application/json"
        assert response.request.headers["User-Agent"] == "open-finance-dashboard/1"
        assert response.request.headers["X-Extra"] == "1"
        assert client.follow_redirects is False
        assert client.timeout == httpx.Timeout(30.0, connect=10.0)


# --------------------------------------------------------------------------------------------
# Client-side rate limiter (token buckets whose tokens come back 60 s after use)
# --------------------------------------------------------------------------------------------

class FakeTime:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_limiter_lets_a_burst_through_then_waits_for_the_oldest_token() -> None:
    time = FakeTime()
    limiter = RateLimiter(clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        assert limiter.acquire([("pluggy:transactions", 3)]) == 0
        time.now += 1.0
    assert limiter.acquire([("pluggy:transactions", 3)]) == pytest.approx(57.0)  # the first token, 60 s after use
    assert time.now == pytest.approx(60.0)


def test_limiter_groups_are_independent_and_a_request_waits_for_all_its_buckets() -> None:
    time = FakeTime()
    limiter = RateLimiter(clock=time.clock, sleep=time.sleep)
    limiter.acquire([("plaid:/item/get", 5000), ("plaid:/item/get:item-a", 1)])
    assert limiter.acquire([("plaid:/item/get", 5000), ("plaid:/item/get:item-b", 1)]) == 0  # another item
    assert limiter.acquire([("plaid:/accounts/get", 15)]) == 0  # another group
    assert limiter.acquire([("plaid:/item/get", 5000), ("plaid:/item/get:item-a", 1)]) == pytest.approx(60.0)


@given(gaps=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=60),
       limit=st.integers(min_value=1, max_value=8))
def test_no_sixty_second_span_ever_holds_more_than_the_limit(gaps: list[float], limit: int) -> None:
    time = FakeTime()
    limiter = RateLimiter(clock=time.clock, sleep=time.sleep)
    sent = []
    for gap in gaps:
        time.now += gap
        limiter.acquire([("group", limit)])
        sent.append(time.now)
    for i, start in enumerate(sent):  # so no fixed one-minute window (Pluggy's) can see more either
        assert sum(1 for t in sent[i:] if t < start + 60) <= limit


def test_make_client_takes_tokens_for_every_request_retries_included() -> None:
    time = FakeTime()
    limiter = RateLimiter(clock=time.clock, sleep=time.sleep)
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    limits = lambda request: [("test:things", 2)] if request.url.path == "/things" else []  # noqa: E731
    with make_client("https://api.example.com", transport=transport, rate_limits=limits, limiter=limiter) as client:
        for _ in range(3):
            client.get("/things")
        client.get("/other")  # no published limit: never waits
    assert time.slept == [60.0]


def test_requests_are_counted_per_context_including_worker_threads_and_nested_blocks() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with make_client("https://api.example.com", transport=transport) as client:
        client.get("/outside")  # counted nowhere
        with counting_requests() as outer:
            client.get("/a")
            with counting_requests() as inner:
                client.get("/b")
                with ThreadPoolExecutor(max_workers=3) as pool:
                    futures = [pool.submit(contextvars.copy_context().run, client.get, "/c") for _ in range(3)]
                    for future in futures:
                        future.result()
            other_thread = threading.Thread(target=client.get, args=("/uncounted",))  # no copied context
            other_thread.start()
            other_thread.join()
    assert (inner.value, outer.value) == (4, 5)
