"""Vendor rate limits shared by every process that uses one vendor account (issue 21).

A connection's :class:`~ledgerlink._http.RateBudget` makes one limiter per key; the
keys name the vendor account (``billbee:<key id>:orders``), never the connection or
the tenant, so two workers, two tenants or a worker and a cron ``run`` that use one
account draw on one budget. With Redis configured (``LEDGERLINK_REDIS_URL``) that
budget lives in Redis, kept by the ``pyrate-limiter`` library's Redis bucket (a
sliding log of hits, updated by one atomic Lua script); without it each process
spaces its own requests, as before.

A rate is kept in the vendor's own granularity, with a margin: 2 per second becomes
"2 in any 1.2 seconds" (never "120 per minute", which would allow a burst of 120).
Requests reach the vendor a little after they took their slot (a busy process, a
slow network), and the vendor counts arrivals; the margin keeps that from tipping
its window over (the per-process limiter keeps 5 % for the same reason). A rate
below one per second becomes "1 in any N seconds" (Cobot's 6 per minute: 1 in any
10 seconds, plus the margin). Fractions are rounded down: 2.5 per second is 2.
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


class SharedLimiter:
    """A :class:`~ledgerlink._http.Limiter` whose budget is kept in Redis."""

    def __init__(self, redis: Any, key: str, rate: float) -> None:
        self._redis = redis
        self.key = key
        self.waited = 0.0
        self._lock = threading.Lock()
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        from pyrate_limiter import Limiter, Rate, RedisBucket

        amount, milliseconds = window(rate)
        self.rate = rate
        # The bucket's key names the window too: processes that declare another rate
        # for one account (settings changed mid-way) never read each other's log wrongly.
        bucket = RedisBucket.init([Rate(amount, milliseconds)], self._redis,
                                  f"{NAMESPACE}:{self.key}:{amount}/{milliseconds}ms")
        self._limiter = Limiter(bucket)

    def acquire(self) -> float:
        """Take one request of the shared budget, waiting until the window has room."""
        started = time.monotonic()
        self._limiter.try_acquire(self.key, blocking=True)
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
            import pyrate_limiter  # noqa: F401
            import redis
        except ImportError:
            raise ConfigError(f"{REDIS_ENV} is set, but the libraries for shared rate limits are not installed: "
                              "pip install 'ledgerlink[celery]'") from None
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


__all__ = ["REDIS_ENV", "SharedLimiter", "configured_url", "install", "redis_limiter_factory", "window"]
