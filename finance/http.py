"""The one HTTP client factory, the retry loop every provider call goes through, and the client-side rate limiter.

Retries only what is safe and likely to pass: 429 (honouring the provider's wait), 5xx and
timeouts, with jittered exponential backoff. Non-idempotent calls (e.g. creating an item,
which has no idempotency key) are retried only on 429, which the server rejected before acting.

Before sending, a request takes a token from each of its provider's limit groups (`RateLimiter`), so
concurrent syncs stay under the published per-minute limits instead of running into 429s.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from finance.errors import BadData, ProviderError, RateLimited, TransientError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


RateLimits = Callable[[httpx.Request], Sequence[tuple[str, int]]]
"""The limit groups a request counts against, as (bucket key, requests per minute) pairs."""

WINDOW_SECONDS = 60.0


class RateLimiter:
    """Token buckets per limit group, shared by every request of a client (the app keeps one client per provider,
    which all its concurrent syncs use).

    A bucket holds `limit` tokens; a request takes one from each of its groups, and a token comes back
    60 s after it was taken. So no 60 s span ever holds more than `limit` requests of a group, which keeps
    us inside fixed per-minute windows as well as sliding ones, at the full published rate. When a
    bucket is empty the request waits for its oldest token to come back.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, sleep: Sleep = time.sleep,
                 window: float = WINDOW_SECONDS) -> None:
        self._clock = clock
        self._sleep = sleep
        self._window = window
        self._taken: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, buckets: Sequence[tuple[str, int]]) -> float:
        """Take one token from every bucket, waiting until all have one; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self._take(buckets)
            if wait <= 0:
                return waited
            log.info("client-side rate limit: waiting %.1fs", wait)
            self._sleep(wait)
            waited += wait

    def try_acquire(self, buckets: Sequence[tuple[str, int]]) -> bool:
        """Take one token from every bucket if all have one now; False (nothing taken) otherwise. Never waits."""
        return self._take(buckets) <= 0

    def _take(self, buckets: Sequence[tuple[str, int]]) -> float:
        """Take a token from every bucket when all have one (0), else the seconds until they will."""
        with self._lock:
            now = self._clock()
            wait = 0.0
            for key, limit in buckets:
                taken = self._taken.setdefault(key, deque())
                while taken and taken[0] <= now - self._window:
                    taken.popleft()
                if len(taken) >= limit:
                    wait = max(wait, taken[len(taken) - limit] + self._window - now)
            if wait <= 0:
                for key, _ in buckets:
                    self._taken[key].append(now)
            return wait


class RequestCount:
    """HTTP requests sent within one `counting_requests()` block, from any thread that carries its context.

    Blocks nest: a request counts in every enclosing block (a fetch's own count, and its sync's).
    """

    def __init__(self, parent: RequestCount | None = None) -> None:
        self._value = 0
        self._parent = parent
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self._value += 1
        if self._parent is not None:
            self._parent.add()

    @property
    def value(self) -> int:
        return self._value


_current_count: ContextVar[RequestCount | None] = ContextVar("finance_request_count", default=None)


@contextmanager
def counting_requests() -> Iterator[RequestCount]:
    """Count the requests this context sends (one sync's, while other syncs run concurrently).

    Worker threads count too when started with a copy of the context (`contextvars.copy_context().run`).
    """
    count = RequestCount(_current_count.get())
    token = _current_count.set(count)
    try:
        yield count
    finally:
        _current_count.reset(token)


def make_client(base_url: str, *, transport: httpx.BaseTransport | None = None,
                headers: dict[str, str] | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                rate_limits: RateLimits | None = None, limiter: RateLimiter | None = None) -> httpx.Client:
    """An httpx client for one provider: the real network, or an emulator's transport offline.

    With `rate_limits`, every request first takes its tokens from `limiter` (default: the client's own).
    """
    if rate_limits is not None and limiter is None:
        limiter = RateLimiter()

    def before_send(request: httpx.Request) -> None:
        if rate_limits is not None and limiter is not None:
            buckets = rate_limits(request)
            if buckets:
                limiter.acquire(buckets)
        count = _current_count.get()
        if count is not None:
            count.add()

    return httpx.Client(
        base_url=base_url,
        transport=transport,
        headers={"Accept": "application/json", "User-Agent": "open-finance-dashboard/1", **(headers or {})},
        timeout=timeout,
        follow_redirects=False,
        event_hooks={"request": [before_send]},
    )


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_rate_limit_wait: float = 90.0  # wait longer than this and we give up with RateLimited


DEFAULT_POLICY = RetryPolicy()

Sleep = Callable[[float], None]


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the given (1-based) attempt."""
    cap = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, cap)


def call_with_retries(
    send: Callable[[], httpx.Response],
    classify: Callable[[httpx.Response], ProviderError | None],
    *,
    idempotent: bool = True,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Sleep = time.sleep,
    provider: str = "provider",
) -> httpx.Response:
    """Send until success or a final error. `classify` returns None for a usable response."""
    attempt = 0
    while True:
        attempt += 1
        try:
            response = send()
        except httpx.TimeoutException as exc:
            error: ProviderError = TransientError(
                f"{provider} did not answer in time. Try again in a few minutes.", code="TIMEOUT", provider=provider)
            if not idempotent or attempt >= policy.attempts:
                raise error from exc
            sleep(backoff_delay(attempt, policy))
            continue
        except httpx.TransportError as exc:
            error = TransientError(
                f"Could not reach {provider} ({type(exc).__name__}). Check the network and try again.",
                code="NETWORK", provider=provider)
            if not idempotent or attempt >= policy.attempts:
                raise error from exc
            sleep(backoff_delay(attempt, policy))
            continue

        error_or_none = classify(response)
        if error_or_none is None:
            return response
        error = error_or_none
        if isinstance(error, RateLimited):
            wait = error.retry_after if error.retry_after is not None else backoff_delay(attempt, policy)
            if attempt >= policy.attempts or wait > policy.max_rate_limit_wait:
                raise error
            log.info("%s rate limited; waiting %.1fs (attempt %d)", provider, wait, attempt)
            sleep(wait + random.uniform(0, 0.25))
            continue
        if error.retryable and idempotent and attempt < policy.attempts:
            log.info("%s transient failure %s; retrying (attempt %d)", provider, error.code, attempt)
            sleep(backoff_delay(attempt, policy))
            continue
        raise error


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds to wait from RateLimit-Reset (preferred: it is exact) or Retry-After."""
    for header in ("RateLimit-Reset", "Retry-After"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            continue
    return None


ANY_JSON = msgspec.json.Decoder(float_hook=Decimal)
"""Any JSON document, numbers with a fraction as exact Decimals (msgspec: twice the stdlib's speed here)."""


def decode_json(response: httpx.Response, provider: str, label: str) -> Any:
    """A response body as any JSON (see `decode_body`)."""
    return decode_body(response.content, provider, label, status=response.status_code)


def decode_body(content: bytes, provider: str, label: str, decoder: msgspec.json.Decoder[Any] = ANY_JSON, *,
                status: int | None = None) -> Any:
    """A body decoded by `decoder` (any JSON, or a typed shape); BadData (nothing stored) when it cannot be.

    A typed decoder checks the shape while it decodes; a mismatch names where, never the values.
    """
    try:
        return decoder.decode(content)
    except msgspec.ValidationError as exc:
        raise BadData(f"{label} sent a response that does not have the documented shape ({exc}); nothing from "
                      "it was stored. Try again later.", code="BAD_SHAPE", provider=provider, status=status) from exc
    except msgspec.DecodeError as exc:
        raise BadData(f"{label} sent a response that is not valid JSON; nothing from it was stored. "
                      "Try again later.", code="MALFORMED_RESPONSE", provider=provider, status=status) from exc


def error_body(response: httpx.Response) -> dict[str, Any]:
    """An error response's JSON object, or {} when it has none."""
    try:
        body = ANY_JSON.decode(response.content)
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}
