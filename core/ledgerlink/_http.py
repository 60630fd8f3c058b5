"""HTTP for plugins: one client with timeouts, retries, rate limits and redaction.

Every answer maps to one action (the table below); plugins never write their own
retry loops.

    ==========================  =============================================
    answer                      action
    ==========================  =============================================
    2xx                         return the response
    401, 403                    ConnectionError_: stops the pipeline, with the
                                plugin's ``auth_hint`` ("copy the token again")
    408, 429, 503               retry after ``Retry-After`` or backoff; the
                                server did not act, so writes are retried too
    500, 502, 504               reads: retry with backoff; writes: OutcomeUnknown
                                (so is every other 5xx but 501/505, e.g. a
                                proxy's 520-524)
    timeout / dropped answer    reads: retry; writes once sent: OutcomeUnknown
    connect error               retry (nothing was sent)
    other 4xx                   VendorRejected with the vendor's message
    retries used up             TransientError (the document fails; next run retries)
    Retry-After > ``max_wait``  TransientError at once, carrying ``retry_after``
    3xx (redirects are not      ConnectionError_: the base URL is wrong
    followed)
    ==========================  =============================================

A write whose outcome is unknown is never re-sent here: the engine asks the
target (``find_document``) first.

Rate limits belong to a connection: every client made for the connection (by
``ConnectorContext.http``, which names it) draws on the connection's
:class:`RateBudget`, one limiter per key, whatever thread it runs in; another
connection, even with the same API key, has its own. A limit is kept *below* the
rate by spacing requests, so a well-configured pipeline never sees a 429.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import json
import logging
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import httpx

from ._errors import ConnectionError_, OutcomeUnknown, TransientError, VendorRejected
from ._paging import NEXT_URL, Page, Pagination, items, walk
from ._version import __version__

log = logging.getLogger("ledgerlink._http")

USER_AGENT = f"ledgerlink/{__version__} (+https://github.com/ledgerlink/ledgerlink)"
REDACTED = "***"


# -- redaction ---------------------------------------------------------------
class Redactor:
    """Replaces every registered secret (and its base64 forms) with ``***``."""

    _global: set[str] = set()
    _lock = threading.Lock()

    @classmethod
    def register(cls, *secrets: str | None) -> None:
        with cls._lock:
            for secret in secrets:
                if secret and len(secret) >= 4:
                    cls._global.update(_forms(secret))

    @classmethod
    def redact(cls, text: str) -> str:
        if not text:
            return text
        for form in sorted(cls._global, key=len, reverse=True):
            if form in text:
                text = text.replace(form, REDACTED)
        return text


def _forms(secret: str) -> set[str]:
    """The secret as it may appear in text: itself, base64 (standard and URL-safe,
    with and without padding) and percent-encoded (in a logged URL)."""
    raw = secret.encode()
    forms = {secret, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    forms.update(f.rstrip("=") for f in list(forms) if len(f.rstrip("=")) >= 4)
    forms.update({quote(secret, safe=""), quote_plus(secret, safe="")})
    return {f for f in forms if f}


def register_basic_auth(username: str, password: str) -> None:
    """Register the Basic-auth header value of a user/password pair as a secret."""
    Redactor.register(password, f"{username}:{password}")


def redact(text: str) -> str:
    return Redactor.redact(text)


# -- auth ----------------------------------------------------------------------
class BearerToken(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request; the token is redacted."""

    def __init__(self, token: str) -> None:
        Redactor.register(token)
        self._value = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request

    def __repr__(self) -> str:
        return f"BearerToken({REDACTED})"


class HeaderToken(httpx.Auth):
    """A token in a header of the vendor's choice (``X-Api-Key: <token>``), with an
    optional ``prefix`` ("Token "); the token is redacted."""

    def __init__(self, header: str, token: str, *, prefix: str = "") -> None:
        Redactor.register(token)
        self.header = header
        self._value = f"{prefix}{token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = self._value
        yield request

    def __repr__(self) -> str:
        return f"HeaderToken({self.header!r}, {REDACTED})"


class BasicAuth(httpx.Auth):
    """HTTP Basic auth; the password and the header value are redacted."""

    def __init__(self, username: str, password: str) -> None:
        register_basic_auth(username, password)
        self.username = username
        self._value = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request

    def __repr__(self) -> str:
        return f"BasicAuth({self.username!r}, {REDACTED})"


class _AllAuth(httpx.Auth):
    """Several header auths on every request (Billbee: an API key header and Basic
    auth); each must set its headers in one step (as the ones above do)."""

    def __init__(self, *auths: httpx.Auth) -> None:
        self.auths = auths

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for auth in self.auths:
            # Each of ours sets headers in one step; run it without sending.
            next(auth.sync_auth_flow(request))
        yield request

    def __repr__(self) -> str:
        return f"_AllAuth({', '.join(map(repr, self.auths))})"




class RedactingFilter(logging.Filter):
    """Logging filter that redacts every registered secret from records: the
    message (with its arguments), the traceback text and the stack text.

    Attach it to the *handlers* (a logger's own filters do not see records that
    propagate from its children)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what can be shown
            message = f"{record.msg} {record.args}"
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# -- rate limiting -----------------------------------------------------------
class RateLimiter:
    """Spaces requests so that at most ``rate`` start in any second.

    Requests are spaced by ``1 / (rate * margin)``; the margin keeps clock jitter
    between client and server from ever tipping a window over the limit.
    """

    def __init__(self, rate: float, *, margin: float = 0.95) -> None:
        self.margin = margin
        self._next = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = 1.0 / (rate * self.margin)

    def acquire(self) -> float:
        """Wait for the next slot; return the seconds waited."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
            wait = slot - now
            if wait > 0:
                self.waited += wait
        if wait > 0:
            time.sleep(wait)
        return wait


class Limiter(Protocol):
    """What a client needs of a limiter (an in-process :class:`RateLimiter`, or one
    that shares the budget between processes)."""

    @property
    def rate(self) -> float: ...

    def set_rate(self, rate: float) -> None: ...

    def acquire(self) -> float:
        """Wait for the next slot; return the seconds waited."""
        ...


LimiterFactory = Callable[[str, float], Limiter]
"""Makes the limiter of one key of a budget: ``(key, rate) -> Limiter``."""


def _local_limiter(key: str, rate: float) -> Limiter:
    return RateLimiter(rate)


class RateBudget:
    """The request budget of one connection: one limiter per key (e.g. the API key,
    or key and endpoint), shared by every client and thread of the connection.

    A key's rate is the one its clients declare; declared again with another rate
    (the connection's settings changed), the new rate applies to every client of the
    connection from the next request. Nothing is shared with other budgets, so
    another connection (or a test) at another rate is never slowed by this one.

    :param name: the connection's name, for messages and shared limiters.
    :param factory: makes a key's limiter; default: in-process spacing
        (:class:`RateLimiter`). A limiter shared between processes plugs in here.
    """

    def __init__(self, name: str = "", *, factory: LimiterFactory | None = None) -> None:
        self.name = name
        self._factory = factory or _local_limiter
        self._limiters: dict[str, Limiter] = {}
        self._lock = threading.Lock()

    def limiter(self, key: str, rate: float) -> Limiter:
        """The limiter of ``key``, at ``rate`` requests per second."""
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = self._factory(key, rate)
            elif limiter.rate != rate:
                limiter.set_rate(rate)
            return limiter

    def get(self, key: str) -> Limiter | None:
        """The limiter of ``key``, if a client declared it."""
        with self._lock:
            return self._limiters.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._limiters)

    def __repr__(self) -> str:
        return f"RateBudget({self.name!r}, keys={self.keys()})"


_observe: Callable[[str, int], None] | None = None


def _count_request(vendor: str, status: int) -> None:
    """Count a vendor's answer in the Prometheus metrics (a no-op without prometheus_client)."""
    global _observe
    if _observe is None:
        from ._metrics import observe_response

        _observe = observe_response
    _observe(vendor, status)


_budgets: dict[str, RateBudget] = {}
_budgets_lock = threading.Lock()
_default_factory: LimiterFactory | None = None


def set_default_limiter_factory(factory: LimiterFactory | None) -> None:
    """The limiter factory of every connection budget made from now on (None: the
    per-process :class:`RateLimiter`); budgets made before are dropped, so the next
    client of each connection gets one of the new kind. A worker process sets a
    factory whose budget is shared between processes (``_shared_limits``)."""
    global _default_factory
    with _budgets_lock:
        if factory is _default_factory:
            return
        _default_factory = factory
        _budgets.clear()


def connection_budget(connection: str) -> RateBudget:
    """The budget of the connection named ``connection``: what an :class:`HttpClient`
    made for it uses unless given its own ``budget``. The engine builds a connection's
    connector more than once in a run (per pipeline, per webhook); by its name, all
    of them share one budget."""
    with _budgets_lock:
        budget = _budgets.get(connection)
        if budget is None:
            budget = _budgets[connection] = RateBudget(connection, factory=_default_factory)
        return budget


def key_id(*parts: str | None) -> str:
    """A non-reversible id for an API key, for limiter keys and logs."""
    import hashlib

    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RateLimit:
    """A limit a client keeps: at most ``rate`` requests per second per ``key`` (within
    its connection's budget; see :class:`RateBudget`)."""

    key: str
    rate: float


# -- the client --------------------------------------------------------------
RETRY_ALWAYS = {408, 429, 503}
RETRY_READS = {500, 502, 504}
NOT_RETRIED_5XX = {501, 505}


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_MESSAGE_KEYS = ("error", "message", "Message", "ErrorMessage", "errors", "detail", "title")
_ITEM_KEYS = ("detail", "message", "Message", "title", "error")


def _words(value: Any) -> str | None:
    """The human words in one piece of an error body (None when there are none)."""
    if value is None or isinstance(value, bool) or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _ITEM_KEYS:
            found = _words(value.get(key))
            if found:
                source = value.get("source")
                pointer = source.get("pointer") if isinstance(source, dict) else None
                return f"{pointer}: {found}" if pointer else found
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        parts = [w for w in (_words(v) for v in value) if w]
        return "; ".join(parts) or None
    return str(value)


def default_error_message(response: httpx.Response) -> str:
    """The vendor's own words from an error answer, shortened to one line.

    Knows the common shapes: ``{"message": ...}``, ``{"error": {"message": ...}}``,
    ``{"error": true, "message": ...}``, OAuth's ``error_description``, JSON:API
    ``{"errors": [{"detail": ...}]}`` and a bare list of such objects. An HTML
    page (a proxy's or login page) is named as such, with its title."""
    text = response.text.strip()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("error_description"), str) and body["error_description"]:
            return _one_line(f"{body.get('error') or 'error'}: {body['error_description']}")
        for key in _MESSAGE_KEYS:
            found = _words(body.get(key))
            if found:
                return _one_line(found)
    elif isinstance(body, list):
        found = _words(body)
        if found:
            return _one_line(found)
    if text.startswith("<") and not text.startswith("<?xml"):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        suffix = f" ({_one_line(title.group(1), 80)})" if title and title.group(1).strip() else ""
        return f"an HTML page instead of an API answer{suffix}"
    return _one_line(text) or "an empty answer"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.lru_cache(maxsize=4)
def _ssl_context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR as httpx.Client does


def shared_ssl_context() -> ssl.SSLContext:
    """The TLS context every :class:`HttpClient` of the process uses: the one
    ``httpx.Client()`` would make (certifi's CAs, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
    made once per set of those variables instead of once per client. Making it loads
    the CA bundle, ~30 ms of CPU: a run makes a client per connection, and a worker
    that runs thousands of tenant pipelines a client per run (see bench/README.md).
    An ``SSLContext`` may be shared by threads and connections."""
    return _ssl_context_for(os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)


class HttpClient:
    """A configured httpx client for one connection.

    :param vendor: the vendor's name as people know it ("sevDesk"), used in messages.
    :param base_url: the API's base URL.
    :param headers: headers for every request.
    :param auth: :class:`BearerToken`, :class:`HeaderToken`, :class:`BasicAuth` (or a
        ``(user, password)`` pair), a list of them for several, or any ``httpx.Auth``.
    :param secrets: values to redact from every log line and error (the auth
        helpers register theirs).
    :param rate_limits: limits applied to every request, shared per key within the
        client's budget.
    :param budget: the :class:`RateBudget` the limits draw on; default: the budget of
        the connection ``connection`` (see :func:`connection_budget`).
    :param auth_hint: what to tell the user when the vendor answers 401/403.
    :param error_message: turns an error answer into the vendor's message.
    :param retries: attempts after the first for retryable answers.
    """

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | Sequence[httpx.Auth] | None = None,
        secrets: Iterable[str | None] = (),
        rate_limits: Iterable[RateLimit] = (),
        budget: RateBudget | None = None,
        auth_hint: str = "check the credentials",
        error_message: Callable[[httpx.Response], str] = default_error_message,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_wait: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        connection: str | None = None,
        on_wait: Callable[[str], None] | None = None,
        on_backoff: Callable[[float, str], None] | None = None,
    ) -> None:
        self.vendor = vendor
        self.timeout = timeout
        self.connection = connection or vendor
        Redactor.register(*secrets)
        if isinstance(auth, tuple):
            auth = BasicAuth(*auth)
        elif isinstance(auth, Sequence):
            auth = auth[0] if len(auth) == 1 else _AllAuth(*auth)
        self.budget = budget if budget is not None else connection_budget(self.connection)
        self.rate_limits = [self.budget.limiter(rl.key, rl.rate) for rl in rate_limits]
        self.auth_hint = auth_hint
        self.error_message = error_message
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.on_wait = on_wait
        self.on_backoff = on_backoff
        """Told (seconds, message) when the vendor asks to wait longer than ``max_wait``:
        the engine remembers it in the ledger, so the next run waits or skips the vendor."""
        self.stats = {"requests": 0, "retries": 0, "rate_limited": 0, "waited": 0.0}
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        all_headers.update(headers or {})
        self._client = httpx.Client(
            base_url=base_url,
            headers=all_headers,
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
            verify=shared_ssl_context(),
        )
        # The vendor APIs authenticate every request by header; none needs cookies.
        # Keeping none means no session a vendor hands out is carried along (or
        # leaked between connections), and it spares httpx's cookie parsing of every
        # answer (~0.1 ms per request, see bench/README.md).
        self._client._cookies = _NoCookies()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the request loop ----------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        write: bool | None = None,
        extra_limits: Iterable[RateLimit] = (),
        ok: Iterable[int] = (),
    ) -> httpx.Response:
        """Send a request and map the answer (see the module table).

        ``write`` defaults to True for every method but GET/HEAD/OPTIONS. ``ok``
        lists non-2xx statuses the caller handles itself (e.g. 404, 409).
        """
        method = method.upper()
        is_write = method not in ("GET", "HEAD", "OPTIONS") if write is None else write
        limiters = self.rate_limits + [self.budget.limiter(rl.key, rl.rate) for rl in extra_limits]
        ok_codes = set(ok)
        attempt = 0
        while True:
            attempt += 1
            for limiter in limiters:
                waited = limiter.acquire()
                self.stats["waited"] += waited
            self.stats["requests"] += 1
            try:
                response = self._client.request(
                    method, url, params=params, json=json, data=data, files=files,
                    content=content, headers=headers,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                reason = f"could not connect ({type(exc).__name__})"
                self._retry_or_raise(attempt, self._what(method, url), reason, None, TransientError)
                continue
            except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError,
                    httpx.WriteError, httpx.DecodingError) as exc:
                reason = f"the answer was lost ({type(exc).__name__})"
                what = self._what(method, url)
                if is_write:
                    raise OutcomeUnknown(f"{what}: {reason} after the request was sent", in_flight=True) from None
                self._retry_or_raise(attempt, what, reason, None, TransientError)
                continue
            except httpx.HTTPError as exc:
                raise TransientError(f"{self._what(method, url)}: {redact(str(exc)) or type(exc).__name__}") from None

            status = response.status_code
            _count_request(self.vendor, status)
            if 200 <= status < 300 or status in ok_codes:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s -> %s", self._what(method, url), status)
                return response
            # Described only when needed: building the URL text costs as much as
            # a small request to an in-process sandbox.
            what = self._what(method, url)
            if status in (401, 403):
                detail = self.error_message(response)
                raise ConnectionError_(
                    redact(f"{self.vendor} rejected the credentials (HTTP {status}: {detail}); {self.auth_hint}"),
                    connection=self.connection,
                )
            if 300 <= status < 400:
                location = redact(response.headers.get("Location", "")) or "another address"
                raise ConnectionError_(
                    f"{what}: the API answered with a redirect (HTTP {status}) to {location}; "
                    f"check the base URL of the {self.connection} connection",
                    connection=self.connection,
                )
            server_error = status >= 500 and status not in NOT_RETRIED_5XX and status not in RETRY_ALWAYS
            if status in RETRY_ALWAYS or server_error:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if status == 429:
                    self.stats["rate_limited"] += 1
                detail = redact(self.error_message(response))
                if server_error and is_write:
                    # A gateway's 502/504: the vendor behind it may still be working on it.
                    raise OutcomeUnknown(f"{what}: HTTP {status} after the request was sent ({detail})",
                                         in_flight=status in (502, 504))
                self._retry_or_raise(
                    attempt, what, f"HTTP {status}", retry_after, TransientError, detail=detail,
                )
                continue
            raise VendorRejected(
                redact(f"{self.vendor} refused {method} {url.split('?')[0]} (HTTP {status}): {self.error_message(response)}"),
                status_code=status,
            )

    def _what(self, method: str, url: str) -> str:
        """The request as messages name it: vendor, method and URL without query."""
        return f"{self.vendor} {method} {redact(str(self._full_url(url).copy_with(query=None)))}"

    def _full_url(self, url: str) -> httpx.URL:
        """The URL httpx sends to (base path kept, as httpx merges it; not RFC join)."""
        merged = httpx.URL(url)
        if merged.is_relative_url:
            base = self._client.base_url
            return base.copy_with(raw_path=base.raw_path + merged.raw_path.lstrip(b"/"))
        return merged

    def _retry_or_raise(
        self, attempt: int, what: str, reason: str, retry_after: float | None,
        error: type[TransientError], *, detail: str | None = None,
    ) -> None:
        said = f" ({detail})" if detail else ""
        if attempt > self.retries:
            raise error(f"{what}: {reason}, gave up after {attempt} attempts{said}", retry_after=retry_after)
        if retry_after is not None and retry_after > self.max_wait:
            # Retrying before the vendor's time would only be refused again.
            message = (f"{what}: {reason}{said}; the vendor asks to wait {retry_after:.0f} s, longer than "
                       f"{self.max_wait:.0f} s; a later run retries")
            if self.on_backoff is not None:
                self.on_backoff(retry_after, message)
            raise error(message, retry_after=retry_after)
        if retry_after is not None:
            wait = retry_after
            why = "Retry-After"
        else:
            wait = min(self.backoff * (2 ** (attempt - 1)), 30.0) * (0.75 + random.random() / 2)
            why = "backoff"
        self.stats["retries"] += 1
        self.stats["waited"] += wait
        message = f"{what}: {reason}{said}; waiting {wait:.1f} s ({why}), attempt {attempt + 1} of {self.retries + 1}"
        # Shown once: as the reporter's `wait:` line when there is one (a log file keeps both).
        log.warning(message, extra={"ledgerlink_shown": self.on_wait is not None})
        if self.on_wait:
            self.on_wait(message)
        time.sleep(wait)

    # -- conveniences ----------------------------------------------------------
    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    # -- paging ------------------------------------------------------------------
    def pages(
        self,
        url: str,
        style: Pagination,
        *,
        params: Mapping[str, Any] | None = None,
        parse: Callable[[httpx.Response], Any] | None = None,
        method: str = "GET",
        **kwargs: Any,
    ) -> Iterator[Page]:
        """The pages of a listing, one request each, as ``style`` (:class:`PageNumber`,
        :class:`Offset`, :class:`Cursor`) pages it; ``params`` are sent on every page.

        ``parse`` turns an answer into its body (default :meth:`json`; a vendor's
        envelope check goes here). Other keyword arguments go to :meth:`request`
        (``extra_limits``, ``headers``). A generator: each page is asked for when the
        one before has been taken."""
        first = self._full_url(url)
        last: list[httpx.URL] = [first]

        def fetch(query: dict[str, Any]) -> tuple[Any, Mapping[str, str]]:
            if NEXT_URL in query:  # NextLink: the page's own URL, relative to the page that named it
                target = last[0].join(str(query[NEXT_URL]))
                if (target.scheme, target.host, target.port) != (first.scheme, first.host, first.port):
                    raise TransientError(
                        f"{self._what(method.upper(), url)}: the next page is linked on another host "
                        f"({target.scheme}://{target.host}); this connection sends its credentials only to "
                        f"{first.scheme}://{first.host}")
                response = self.request(method, str(target), **kwargs)
            else:
                response = self.request(method, url, params=query, **kwargs)
            try:
                last[0] = response.request.url
            except RuntimeError:  # an answer built without its request (a test's)
                pass
            return (self.json(response) if parse is None else parse(response)), response.headers

        return walk(fetch, style, params, what=self._what(method.upper(), url))

    def paginate(
        self,
        url: str,
        style: Pagination,
        *,
        params: Mapping[str, Any] | None = None,
        dedupe: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """The items of every page of a listing, in order (see :meth:`pages`).
        ``dedupe``: a key function; an item whose key came before (a page that shifted
        while it was read) is dropped; one whose key is None is kept."""
        return items(self.pages(url, style, params=params, **kwargs), dedupe=dedupe)

    def json(self, response: httpx.Response, *, write: bool | None = None,
             loads: Callable[[bytes], Any] | None = None) -> Any:
        """Parse a JSON answer, or raise a clear error naming what came instead.

        A cut-short or non-JSON answer is treated like a lost answer: for a write
        (default: any method but GET) that is ``OutcomeUnknown``, for a read a
        ``TransientError`` that the engine's next attempt retries. ``loads`` parses
        the body instead of ``json.loads`` (e.g. with ``parse_float=Decimal``)."""
        if write is None:
            try:
                write = response.request.method not in ("GET", "HEAD", "OPTIONS")
            except RuntimeError:  # a response built without its request
                write = False
        error = OutcomeUnknown if write else TransientError
        content = response.content
        if not content.strip():
            raise error(f"{self.vendor} sent an empty answer (HTTP {response.status_code})")
        try:
            # From the bytes (JSON is UTF-8): decoding the text first costs as much again.
            return json.loads(content) if loads is None else loads(content)
        except ValueError:
            text = response.text
            kind = "an HTML page" if text.lstrip().startswith("<") else "an answer that is not valid JSON"
            raise error(
                f"{self.vendor} sent {kind} instead of JSON (HTTP {response.status_code}): {_one_line(redact(text), 120)}"
            ) from None


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing (Set-Cookie answers are ignored)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def make_http_client(**kwargs: Any) -> HttpClient:
    """The default factory behind ``ConnectorContext.http``."""
    return HttpClient(**kwargs)


__all__ = [
    "BasicAuth",
    "BearerToken",
    "HeaderToken",
    "HttpClient",
    "Limiter",
    "LimiterFactory",
    "RateBudget",
    "RateLimit",
    "RateLimiter",
    "RedactingFilter",
    "Redactor",
    "USER_AGENT",
    "connection_budget",
    "set_default_limiter_factory",
    "default_error_message",
    "key_id",
    "make_http_client",
    "parse_retry_after",
    "redact",
    "register_basic_auth",
]
