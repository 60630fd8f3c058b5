"""Vendor rate limits shared by every process that uses one vendor account (issue 21).

A connection's :class:`~ledgerlink._http.RateBudget` makes one limiter per key; the
keys name the vendor account (``billbee:<key id>:orders``), never the connection or
the tenant, so two workers, two tenants or a worker and a cron ``run`` that use one
account draw on one budget. With Redis configured (``LEDGERLINK_REDIS_URL``) that
budget lives in Redis, kept by the ``pyrate-limiter`` library (its GCRA: one
"theoretical arrival time" per account in a Redis hash, checked and advanced by one
atomic Lua script, expiring by itself when the account is idle); without it each
process spaces its own requests, as before.

A rate is kept in the vendor's own granularity, with a margin, and spaced evenly: 2
per second becomes one request in any 0.6 seconds, so never more than 2 in any 1.2
seconds (never "120 per minute", which would allow a burst of 120). Requests reach
the vendor a little after they took their slot (a busy process, a slow network), and
the vendor counts arrivals; the margin keeps that from tipping its window over (the
per-process limiter keeps 5 % for the same reason). A rate below one per second
becomes "1 in any N seconds" (Cobot's 6 per minute: 1 in any 10 seconds, plus the
margin). Fractions are rounded down: 2.5 per second is 2.

Why GCRA and evenly spaced, not the library's sliding log of "2 in any 1.2 s"
(issue 21, measured with 3-4 processes of 4 threads on one account at 10 per second
on a loaded 2-CPU machine):

- The log's check counts the slots stamped up to the caller's own stamp. A stamp
  read before a slower Redis round trip, or a blocking retry (the library stamps it
  with its first attempt's time plus the sleeps it planned), misses the slots other
  processes took meanwhile: 16-17 requests were let into one second. GCRA's check
  only gets stricter with an old stamp: the stored arrival time is later than it.
- A burst of a window's worth at once reaches a server that works through it one
  request after another and counts the last ones late, when the next window's first
  requests already arrive: the sandbox stamped a burst's tail up to 0.65 s late and
  answered 429s. Spaced, a request is counted a few ms after its slot.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

from ._config import _redact_url
from ._errors import ConfigError

REDIS_ENV = "LEDGERLINK_REDIS_URL"
NAMESPACE = "ledgerlink-vendor"
"""Prefix of every key in Redis (so a shared Redis can hold other applications' keys too)."""
MARGIN = 0.2
"""The vendor's window is kept 20 % longer than it is."""


def window(rate: float) -> tuple[int, int]:
    """``(amount, milliseconds)``: at most ``amount`` requests in any window of that
    many milliseconds: the vendor's own window (one second, or the N seconds one
    request is allowed in) plus the margin."""
    if not rate > 0:
        raise ValueError("rate must be positive")
    if rate >= 1:
        amount, seconds = max(1, math.floor(rate)), 1
    else:
        amount, seconds = 1, math.ceil(1 / rate)
    return amount, round(seconds * 1000 * (1 + MARGIN))


def spacing(rate: float) -> int:
    """Milliseconds between two requests: the window spread evenly over its amount
    (rounded up, as the library rounds its interval)."""
    amount, milliseconds = window(rate)
    return math.ceil(milliseconds / amount)


class SharedLimiter:
    """A :class:`~ledgerlink._http.Limiter` whose budget is kept in Redis (see the
    module's docstring). Each attempt is stamped when it is made; a process's threads
    try one at a time and sleep, between tries, as long as the library says, or one
    spacing after a slot of their own (one Redis call per request, not two)."""

    def __init__(self, redis: Any, key: str, rate: float) -> None:
        self._redis = redis
        self.key = key
        self.waited = 0.0
        self._lock = threading.Lock()
        self._next = 0.0
        """Monotonic time before which no slot is due, as far as this process knows:
        its own last slot plus the spacing, or what Redis said it has to wait. Until
        then its threads sleep without asking Redis (which would only say no)."""
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        from pyrate_limiter import GCRA, Rate, RedisStateStore, StateBucket

        amount, milliseconds = window(rate)
        # burst=1: one request per milliseconds/amount, no bursts (see above).
        bucket = StateBucket([Rate(amount, milliseconds, burst=1)], algorithm=GCRA(),
                             # The key names the spacing too: processes that declare another rate
                             # for one account (settings changed mid-way) keep apart.
                             store=RedisStateStore(self._redis, f"{NAMESPACE}:{self.key}:gcra:{spacing(rate)}ms"))
        with self._lock:
            self.rate = rate
            self._bucket: Any = bucket
            self._spacing = spacing(rate) / 1000
            self._next = 0.0

    def acquire(self) -> float:
        """Take one request of the shared budget, waiting until it is due."""
        from pyrate_limiter import RateItem

        started = time.monotonic()
        while True:
            with self._lock:
                now = time.monotonic()
                if now >= self._next:
                    bucket = self._bucket
                    item = RateItem(self.key, bucket.now())
                    if bucket.put(item):
                        # The slot after this one is one spacing later, whoever takes it.
                        self._next = now + self._spacing
                        break
                    # Another process took it: Redis says how long until the next one.
                    wait = int(bucket.waiting(item))  # a sync Redis client: an int, not an awaitable
                    self._next = max(self._next, now + max(1, wait) / 1000)
                delay = self._next - now
            time.sleep(delay)
        waited = time.monotonic() - started
        with self._lock:
            self.waited += waited
        return waited


_factories: dict[str, Any] = {}
_factories_lock = threading.Lock()


def redis_limiter_factory(url: str) -> Any:
    """The limiter factory ``(key, rate) -> SharedLimiter`` of the Redis at ``url``
    (one connection pool per URL and process). A Redis that cannot be reached is one
    clear line (ConfigError), naming the URL without its password."""
    with _factories_lock:
        factory = _factories.get(url)
        if factory is not None:
            return factory
        try:
            import redis
            from pyrate_limiter import GCRA, RedisStateStore, StateBucket  # noqa: F401
        except ImportError:
            raise ConfigError(f"{REDIS_ENV} is set, but the libraries for shared rate limits are not installed "
                              "(redis, pyrate-limiter 4.5 or later): pip install 'ledgerlink[celery]'") from None
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
            client.ping()
        except (ValueError, redis.RedisError) as exc:
            raise ConfigError(f"the Redis for shared rate limits at {_redact_url(url)} does not answer ({exc}): start "
                              f"it, or unset {REDIS_ENV} to limit each process on its own") from None

        def make(key: str, rate: float) -> SharedLimiter:
            return SharedLimiter(client, key, rate)

        _factories[url] = make
        return make


def configured_url(config_url: str | None = None) -> str | None:
    """The Redis URL for shared limits: the config's, else ``LEDGERLINK_REDIS_URL``, else None."""
    return config_url or os.environ.get(REDIS_ENV) or None


def install(url: str | None) -> bool:
    """Make every connection budget of this process draw on the Redis at ``url``
    (None: keep the per-process limiters). Returns whether a shared budget is in use."""
    from ._http import set_default_limiter_factory

    if not url:
        set_default_limiter_factory(None)
        return False
    set_default_limiter_factory(redis_limiter_factory(url))
    return True


__all__ = ["REDIS_ENV", "SharedLimiter", "configured_url", "install", "redis_limiter_factory", "spacing", "window"]
