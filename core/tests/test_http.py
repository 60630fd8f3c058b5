"""ledgerlink._http: the answer-to-action table row by row (respx, no network),
Retry-After in both forms, JSON parsing errors, redaction, the auth helpers and the
per-connection rate budgets."""

from __future__ import annotations

import base64
import email.utils
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ledgerlink._http as http_mod
import pytest
import respx
from ledgerlink._connectors import ConnectorContext
from ledgerlink._errors import ConnectionError_, OutcomeUnknown, TransientError, VendorRejected
from ledgerlink._http import (
    USER_AGENT,
    BasicAuth,
    BearerToken,
    HeaderToken,
    HttpClient,
    RateBudget,
    RateLimit,
    RateLimiter,
    RedactingFilter,
    connection_budget,
    default_error_message,
    make_http_client,
    parse_retry_after,
    redact,
)

BASE = "https://api.acme.test/v1"
TOKEN = "tok-" + uuid.uuid4().hex  # unique, so no other test registered it before
HINT = "copy the API token again from Acme > Settings > API"


class FakeTime:
    """Stands in for the ``time`` module inside ledgerlink._http: sleeping only
    advances the clock and records the wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(http_mod, "time", fake)
    return fake


@pytest.fixture
def mock() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def make_client(**kwargs: Any) -> HttpClient:
    options: dict[str, Any] = {
        "vendor": "Acme",
        "base_url": BASE,
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "secrets": [TOKEN],
        "auth_hint": HINT,
        "retries": 3,
        "backoff": 0.1,
        "connection": "acme-main",
    }
    options.update(kwargs)
    return HttpClient(**options)


def answer(status: int, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, **kwargs)


# -- 2xx -------------------------------------------------------------------------
def test_2xx_is_returned_with_our_user_agent(mock: Any, clock: FakeTime) -> None:
    route = mock.get("/items").mock(return_value=answer(200, json={"items": [1]}))
    mock.post("/items").mock(return_value=answer(201, json={"id": 7}))
    mock.delete("/items/7").mock(return_value=answer(204))
    with make_client() as client:
        got = client.get("/items", params={"page": 2})
        assert client.json(got) == {"items": [1]}
        assert client.json(client.post("/items", json={"a": 1})) == {"id": 7}
        assert client.delete("/items/7").status_code == 204
    sent = route.calls.last.request
    assert sent.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("ledgerlink/")
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/json"
    assert sent.url.params["page"] == "2"
    assert clock.sleeps == []
    assert client.stats["requests"] == 3 and client.stats["retries"] == 0


def test_cookies_a_vendor_sets_are_not_kept_or_sent_back(mock: Any, clock: FakeTime) -> None:
    route = mock.get("/items").mock(return_value=answer(200, json={}, headers={"Set-Cookie": "session=abc; Path=/"}))
    with make_client() as client:
        client.get("/items")
        client.get("/items")
    assert "cookie" not in route.calls.last.request.headers
    assert len(route.calls) == 2


def test_listed_non_2xx_is_returned_to_the_caller(mock: Any, clock: FakeTime) -> None:
    mock.get("/items/9").mock(return_value=answer(404, json={"message": "not found"}))
    with make_client() as client:
        assert client.get("/items/9", ok=[404]).status_code == 404
        with pytest.raises(VendorRejected):
            client.get("/items/9")


# -- 401 / 403 -------------------------------------------------------------------------
@pytest.mark.parametrize("status", [401, 403])
def test_401_403_stop_the_connection_with_the_hint(mock: Any, clock: FakeTime, status: int) -> None:
    route = mock.get("/items").mock(
        return_value=answer(status, json={"message": f"token {TOKEN} is not valid"})
    )
    with make_client() as client, pytest.raises(ConnectionError_) as caught:
        client.get("/items")
    message = str(caught.value)
    assert message == (
        f"Acme rejected the credentials (HTTP {status}: token *** is not valid); {HINT}"
    )
    assert TOKEN not in message and caught.value.connection == "acme-main"
    assert route.call_count == 1 and clock.sleeps == []


# -- 408 / 429 / 503 ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("status", [408, 429, 503])
def test_retryable_answers_honour_retry_after_seconds(
    mock: Any, clock: FakeTime, status: int, method: str
) -> None:
    route = mock.route(method=method, path="/items").mock(side_effect=[
        answer(status, headers={"Retry-After": "7"}),
        answer(status, headers={"Retry-After": "0.5"}),
        answer(200, json={"ok": True}),
    ])
    waits: list[str] = []
    with make_client(on_wait=waits.append) as client:
        got = client.request(method, "/items", json={"a": 1} if method == "POST" else None)
    assert got.status_code == 200 and route.call_count == 3
    assert clock.sleeps == [7.0, 0.5]
    assert client.stats["retries"] == 2 and client.stats["rate_limited"] == (2 if status == 429 else 0)
    assert f"HTTP {status}" in waits[0] and "Retry-After" in waits[0] and "attempt 2 of 4" in waits[0]


def test_retry_after_as_http_date(mock: Any, clock: FakeTime) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    route = mock.post("/items").mock(side_effect=[
        answer(429, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)}),
        answer(201),
    ])
    with make_client() as client:
        assert client.post("/items", json={}).status_code == 201
    [wait] = clock.sleeps
    assert 28.0 < wait <= 30.0 and route.call_count == 2


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 88.0 < parse_retry_after(later) <= 90.0  # type: ignore[operator]


def test_without_retry_after_the_backoff_grows(mock: Any, clock: FakeTime) -> None:
    mock.get("/items").mock(side_effect=[answer(503)] * 3 + [answer(200)])
    with make_client(backoff=1.0) as client:
        client.get("/items")
    assert len(clock.sleeps) == 3
    for n, wait in enumerate(clock.sleeps):
        assert 0.75 * 2**n <= wait <= 1.25 * 2**n  # jittered exponential backoff


def test_retry_after_longer_than_max_wait_gives_up_at_once(mock: Any, clock: FakeTime) -> None:
    route = mock.get("/items").mock(return_value=answer(429, headers={"Retry-After": "3600"}))
    with make_client(max_wait=60) as client, pytest.raises(TransientError) as caught:
        client.get("/items")
    assert caught.value.retry_after == 3600.0 and "3600 s" in str(caught.value)
    assert route.call_count == 1 and clock.sleeps == []


# -- 5xx -------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 504, 520])
def test_server_errors_are_retried_for_reads(mock: Any, clock: FakeTime, status: int) -> None:
    route = mock.get("/items").mock(side_effect=[answer(status), answer(200, json=[])])
    with make_client() as client:
        assert client.get("/items").status_code == 200
    assert route.call_count == 2 and len(clock.sleeps) == 1


@pytest.mark.parametrize("status", [500, 502, 504, 520])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_server_errors_on_writes_are_outcome_unknown(
    mock: Any, clock: FakeTime, status: int, method: str
) -> None:
    route = mock.route(method=method, path="/items").mock(
        return_value=answer(status, json={"message": "database hiccup"})
    )
    with make_client() as client, pytest.raises(OutcomeUnknown) as caught:
        client.request(method, "/items", json={"n": 1})
    assert str(caught.value) == (
        f"Acme {method} {BASE}/items: HTTP {status} after the request was sent (database hiccup)"
    )
    assert route.call_count == 1 and clock.sleeps == []  # never re-sent


def test_501_is_a_refusal_not_a_retry(mock: Any, clock: FakeTime) -> None:
    mock.get("/items").mock(return_value=answer(501, json={"message": "not implemented"}))
    with make_client() as client, pytest.raises(VendorRejected, match="not implemented"):
        client.get("/items")
    assert clock.sleeps == []


def test_a_post_declared_as_read_is_retried(mock: Any, clock: FakeTime) -> None:
    route = mock.post("/search").mock(side_effect=[answer(500), answer(200, json=[])])
    with make_client() as client:
        assert client.post("/search", json={"q": "x"}, write=False).status_code == 200
    assert route.call_count == 2


# -- timeouts, dropped answers, connect errors ------------------------------------------------
@pytest.mark.parametrize("lost", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError])
def test_lost_answer_to_a_write_is_outcome_unknown(mock: Any, clock: FakeTime, lost: type) -> None:
    route = mock.post("/items").mock(side_effect=lost("lost"))
    with make_client() as client, pytest.raises(OutcomeUnknown) as caught:
        client.post("/items", json={"n": 1})
    assert f"the answer was lost ({lost.__name__}) after the request was sent" in str(caught.value)
    assert route.call_count == 1 and clock.sleeps == []


def test_read_timeout_on_a_read_is_retried(mock: Any, clock: FakeTime) -> None:
    route = mock.get("/items").mock(side_effect=[httpx.ReadTimeout("slow"), answer(200, json=[])])
    with make_client() as client:
        assert client.get("/items").status_code == 200
    assert route.call_count == 2 and len(clock.sleeps) == 1


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ConnectTimeout])
def test_connect_errors_are_retried_even_for_writes(mock: Any, clock: FakeTime, failure: type) -> None:
    route = mock.post("/items").mock(side_effect=[failure("refused"), failure("refused"), answer(201)])
    with make_client() as client:
        assert client.post("/items", json={"n": 1}).status_code == 201
    assert route.call_count == 3 and len(clock.sleeps) == 2


# -- retries used up -------------------------------------------------------------------
def test_retries_used_up_is_a_transient_error_naming_the_attempts(mock: Any, clock: FakeTime) -> None:
    route = mock.post("/items").mock(
        return_value=answer(429, headers={"Retry-After": "2"}, json={"message": "slow down"})
    )
    with make_client(retries=3) as client, pytest.raises(TransientError) as caught:
        client.post("/items", json={})
    assert type(caught.value) is TransientError  # nothing was processed: not OutcomeUnknown
    assert str(caught.value) == (
        f"Acme POST {BASE}/items: HTTP 429, gave up after 4 attempts (slow down)"
    )
    assert caught.value.retry_after == 2.0
    assert route.call_count == 4 and clock.sleeps == [2.0, 2.0, 2.0]


def test_connect_errors_used_up(mock: Any, clock: FakeTime) -> None:
    mock.get("/items").mock(side_effect=httpx.ConnectError("refused"))
    with make_client(retries=2) as client, pytest.raises(TransientError) as caught:
        client.get("/items")
    assert type(caught.value) is TransientError
    assert "could not connect (ConnectError), gave up after 3 attempts" in str(caught.value)


# -- other 4xx ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"json": {"message": "Field 'name' is required"}}, "Field 'name' is required"),
        ({"json": {"error": {"message": "bad currency", "code": 12}}}, "bad currency"),
        ({"json": {"error": True, "message": "Invalid date"}}, "Invalid date"),
        ({"json": {"error": "invalid_request", "error_description": "no such grant"}},
         "invalid_request: no such grant"),
        ({"json": {"errors": [
            {"status": "422", "detail": "must be positive", "source": {"pointer": "/data/attributes/amount"}},
            {"status": "422", "title": "Invalid date"},
        ]}}, "/data/attributes/amount: must be positive; Invalid date"),
        ({"json": [{"message": "first"}, {"message": "second"}]}, "first; second"),
        ({"text": "<!DOCTYPE html><html><head><title>Bad Request</title></head><body>x</body></html>"},
         "an HTML page instead of an API answer (Bad Request)"),
        ({"text": "<html><body><h1>Oops</h1></body></html>"}, "an HTML page instead of an API answer"),
        ({"text": "plain\nwords"}, "plain words"),
        ({}, "an empty answer"),
    ],
)
def test_other_4xx_is_vendor_rejected_with_the_vendor_message(
    mock: Any, clock: FakeTime, kwargs: dict[str, Any], expected: str
) -> None:
    route = mock.post("/items").mock(return_value=answer(422, **kwargs))
    with make_client() as client, pytest.raises(VendorRejected) as caught:
        client.post("/items?draft=1", json={})
    assert str(caught.value) == f"Acme refused POST /items (HTTP 422): {expected}"
    assert caught.value.status_code == 422 and route.call_count == 1 and clock.sleeps == []


def test_long_vendor_messages_are_one_short_line() -> None:
    message = default_error_message(answer(400, json={"message": "word\n" * 200}))
    assert "\n" not in message and len(message) <= 300 and message.endswith("…")


def test_redirects_are_not_followed_and_name_the_base_url(mock: Any, clock: FakeTime) -> None:
    mock.post("/items").mock(return_value=answer(301, headers={"Location": "https://new.acme.test/v1/items"}))
    with make_client() as client, pytest.raises(ConnectionError_) as caught:
        client.post("/items", json={})
    assert "redirect (HTTP 301) to https://new.acme.test/v1/items" in str(caught.value)
    assert "base URL" in str(caught.value)


# -- client.json -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "Acme sent an empty answer (HTTP 200)"),
        (b"  \n", "Acme sent an empty answer (HTTP 200)"),
        (b"<html><body>Maintenance</body></html>",
         "Acme sent an HTML page instead of JSON (HTTP 200): <html><body>Maintenance</body></html>"),
        (b'{"id": 12, "lines": [', 'Acme sent an answer that is not valid JSON instead of JSON (HTTP 200): {"id": 12, "lines": ['),
    ],
)
@pytest.mark.parametrize(("method", "error"), [("GET", TransientError), ("POST", OutcomeUnknown)])
def test_json_names_what_came_instead(
    mock: Any, clock: FakeTime, body: bytes, expected: str, method: str, error: type
) -> None:
    mock.route(method=method, path="/items").mock(return_value=answer(200, content=body))
    with make_client() as client:
        response = client.request(method, "/items")
        with pytest.raises(error) as caught:
            client.json(response)
    assert type(caught.value) is error and str(caught.value) == expected


def test_json_redacts_a_secret_echoed_in_a_broken_body(mock: Any, clock: FakeTime) -> None:
    mock.get("/items").mock(return_value=answer(200, text=f"<p>key={TOKEN}</p>"))
    with make_client() as client, pytest.raises(TransientError) as caught:
        client.json(client.get("/items"))
    assert TOKEN not in str(caught.value) and "key=***" in str(caught.value)


# -- redaction -------------------------------------------------------------------------------
def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secrets_and_their_base64_forms_are_redacted_from_errors(mock: Any, clock: FakeTime) -> None:
    echoed = f"got {TOKEN}, {b64(TOKEN)}, {b64(TOKEN).rstrip('=')} and {base64.urlsafe_b64encode(TOKEN.encode()).decode()}"
    mock.post("/items").mock(return_value=answer(400, json={"message": echoed}))
    with make_client() as client, pytest.raises(VendorRejected) as caught:
        client.post("/items", json={})
    message = str(caught.value)
    assert TOKEN not in message and b64(TOKEN).rstrip("=") not in message
    assert message.endswith("got ***, ***, *** and ***")


def test_basic_auth_user_password_is_redacted(mock: Any, clock: FakeTime) -> None:
    user, password = "api-user", "pw-" + uuid.uuid4().hex
    header = "Basic " + b64(f"{user}:{password}")
    route = mock.get("/me").mock(return_value=answer(401, json={"message": f"bad header {header} ({password})"}))
    with make_client(headers={}, secrets=[], auth=(user, password)) as client, \
            pytest.raises(ConnectionError_) as caught:
        client.get("/me")
    assert route.calls.last.request.headers["Authorization"] == header
    message = str(caught.value)
    assert password not in message and b64(f"{user}:{password}") not in message
    assert "bad header Basic *** (***)" in message


def test_a_secret_in_the_url_is_redacted_from_errors_and_log(
    mock: Any, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "key/" + uuid.uuid4().hex  # percent-encoded in the URL
    encoded = secret.replace("/", "%2F")
    url = f"{BASE}/accounts/{encoded}/items"
    with respx.mock(assert_all_called=False) as router, \
            caplog.at_level(logging.WARNING, logger="ledgerlink._http"):
        router.get(url).mock(return_value=answer(503))
        with make_client(secrets=[secret], retries=1) as client, pytest.raises(TransientError) as caught:
            client.get(f"/accounts/{encoded}/items")
    assert encoded not in str(caught.value) and "/accounts/***/items" in str(caught.value)
    assert caplog.records and all(encoded not in r.getMessage() for r in caplog.records)


def test_redacting_filter_cleans_log_records() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test.redact.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    http_mod.Redactor.register(TOKEN)
    logger.warning("calling with %s and header %s", TOKEN, f"Basic {b64(TOKEN)}")
    try:
        raise ValueError(f"boom {TOKEN}")
    except ValueError:
        logger.exception("failed")
    formatted = [logging.Formatter().format(r) for r in records]
    assert formatted[0] == "calling with *** and header Basic ***"
    assert "boom ***" in formatted[1] and TOKEN not in formatted[1]
    assert redact(f"x{TOKEN}x") == "x***x"
    assert redact("abc") == "abc"  # too short to be a secret: never registered


# -- rate limiting -------------------------------------------------------------------------------
def max_in_any_second(starts: list[float]) -> int:
    starts = sorted(starts)
    best, j = 0, 0
    for i, start in enumerate(starts):
        while starts[j] <= start - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("rate", [1, 2, 5, 10, 50])
def test_rate_limiter_keeps_any_second_at_or_below_the_rate(clock: FakeTime, rate: int) -> None:
    limiter = RateLimiter(rate)
    starts = []
    for n in range(rate * 4 + 1):
        if n % 7 == 3:
            clock.now += 0.013  # the caller's own work between requests
        limiter.acquire()
        starts.append(clock.now)
    assert max_in_any_second(starts) <= rate
    elapsed = starts[-1] - starts[0]
    assert elapsed <= (len(starts) - 1) / (rate * 0.95) + 0.1  # not slower than needed


def test_rate_limiter_with_real_time_and_threads() -> None:
    limiter = RateLimiter(50)
    starts: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(8):
            limiter.acquire()
            with lock:
                starts.append(http_mod.time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(3)]
    begin = http_mod.time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    elapsed = http_mod.time.monotonic() - begin
    assert len(starts) == 24
    assert 23 / 50 <= elapsed < 2.0  # 24 slots 21 ms apart: about half a second
    assert max_in_any_second(starts) <= 50


def test_one_connections_clients_share_its_budget(mock: Any, clock: FakeTime) -> None:
    starts: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        starts.append(clock.now)
        return answer(200, json=[])

    mock.get("/items").mock(side_effect=record)
    key = "acme:key-1"
    connection = f"acme-{uuid.uuid4().hex}"
    first = make_client(connection=connection, rate_limits=[RateLimit(key, 5)])
    second = make_client(connection=connection, rate_limits=[RateLimit(key, 5)])
    other = make_client(connection=connection, rate_limits=[RateLimit(key + "-other", 5)])
    assert first.budget is second.budget is connection_budget(connection)
    assert first.rate_limits[0] is second.rate_limits[0] is first.budget.limiter(key, 5)
    for _ in range(10):
        first.get("/items")
        second.get("/items")
    assert len(starts) == 20 and max_in_any_second(starts) <= 5
    assert first.stats["waited"] > 0 and second.stats["waited"] > 0

    starts.clear()
    before = clock.now
    other.get("/items")
    assert starts == [before]  # another key does not wait for this one


def test_connections_on_the_same_key_do_not_slow_each_other(mock: Any, clock: FakeTime) -> None:
    """Issue 17: a test class at 50 req/s ran at 2 req/s after another test had used the
    same key. Each connection has its own budget; a rate declared again replaces the
    old one instead of the lowest ever winning."""
    starts: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        starts.append(clock.now)
        return answer(200, json=[])

    mock.get("/items").mock(side_effect=record)
    key = "acme:the-same-api-key"
    slow = make_client(connection=f"slow-{uuid.uuid4().hex}", rate_limits=[RateLimit(key, 2)])
    for _ in range(3):
        slow.get("/items")
    assert starts[-1] - starts[0] >= 2 / (2 * 0.95) - 1e-9  # 2 req/s: about 1.05 s apart

    def fifty_requests(client: HttpClient) -> float:
        starts.clear()
        for _ in range(50):
            client.get("/items")
        return starts[-1] - starts[0]

    fast = make_client(connection=f"fast-{uuid.uuid4().hex}", rate_limits=[RateLimit(key, 50)])
    assert fifty_requests(fast) <= 49 / (50 * 0.95) + 1e-9  # about 1 s, not 25 s at 2 req/s
    assert max_in_any_second(starts) <= 50
    assert slow.rate_limits[0].rate == 2 and fast.rate_limits[0] is not slow.rate_limits[0]

    # The same connection (name) built again with another rate: the new one applies.
    again = make_client(connection=slow.connection, rate_limits=[RateLimit(key, 50)])
    assert again.rate_limits[0] is slow.rate_limits[0]
    assert fifty_requests(again) <= 49 / (50 * 0.95) + 1e-9


def test_connector_contexts_of_a_connection_share_one_budget(mock: Any, clock: FakeTime) -> None:
    mock.get("/items").mock(return_value=answer(200, json=[]))
    name = f"books-{uuid.uuid4().hex}"
    options: dict[str, Any] = {"vendor": "Acme", "base_url": BASE, "rate_limits": [RateLimit("acme:k", 1)]}
    # The engine builds a context per connector it makes (per pipeline, per webhook).
    one = ConnectorContext(connection=name, http_factory=make_http_client).http(**options)
    two = ConnectorContext(connection=name, http_factory=make_http_client).http(**options)
    elsewhere = ConnectorContext(connection=name + "-2", http_factory=make_http_client).http(**options)
    assert one.budget is two.budget and one.budget.name == name
    assert elsewhere.budget is not one.budget
    one.get("/items")
    before = clock.now
    two.get("/items")
    assert clock.now - before >= 1 / 0.95 - 1e-9  # waited for the first client's request
    before = clock.now
    elsewhere.get("/items")
    assert clock.now == before


def test_an_explicit_budget_is_shared_by_whoever_is_given_it(mock: Any, clock: FakeTime) -> None:
    mock.get("/items").mock(return_value=answer(200, json=[]))
    budget = RateBudget("shared")
    a = make_client(connection="a-" + uuid.uuid4().hex, budget=budget, rate_limits=[RateLimit("k", 1)])
    b = make_client(connection="b-" + uuid.uuid4().hex, budget=budget, rate_limits=[RateLimit("k", 1)])
    assert a.budget is b.budget is budget and budget.keys() == ["k"] and budget.get("k") is a.rate_limits[0]
    assert budget.get("other") is None
    a.get("/items")
    before = clock.now
    b.get("/items")
    assert clock.now - before >= 1 / 0.95 - 1e-9


class CountingLimiter:
    """A limiter from a factory, as a limiter shared between processes would be."""

    def __init__(self, key: str, rate: float) -> None:
        self.key, self.rate, self.acquired, self.rates = key, rate, 0, [rate]

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self.rates.append(rate)

    def acquire(self) -> float:
        self.acquired += 1
        return 0.25


def test_a_budget_takes_its_limiters_from_a_factory(mock: Any, clock: FakeTime) -> None:
    mock.get("/items").mock(return_value=answer(200, json=[]))
    made: dict[str, CountingLimiter] = {}

    def factory(key: str, rate: float) -> CountingLimiter:
        made[key] = CountingLimiter(key, rate)
        return made[key]

    budget = RateBudget("acme", factory=factory)
    client = make_client(budget=budget, rate_limits=[RateLimit("acme:key", 5)])
    client.get("/items", extra_limits=[RateLimit("acme:key:/items", 2)])
    client.get("/items", extra_limits=[RateLimit("acme:key:/items", 1)])
    assert sorted(made) == ["acme:key", "acme:key:/items"]
    assert made["acme:key"].acquired == 2 and made["acme:key:/items"].acquired == 2
    assert made["acme:key:/items"].rates == [2, 1]  # declared again: the new rate
    assert client.stats["waited"] == 4 * 0.25


def test_a_rate_declared_again_replaces_the_old_one() -> None:
    budget = RateBudget("acme")
    limiter = budget.limiter("k", 10)
    assert budget.limiter("k", 4) is limiter and limiter.rate == 4
    assert budget.limiter("k", 10) is limiter and limiter.rate == 10
    assert RateBudget("acme").limiter("k", 3) is not limiter  # budgets share nothing
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        budget.limiter("k", 0)


# -- auth helpers --------------------------------------------------------------------------
def test_bearer_token_is_sent_and_redacted(mock: Any, clock: FakeTime) -> None:
    token = "bearer-" + uuid.uuid4().hex
    route = mock.get("/me").mock(return_value=answer(401, json={"message": f"token {token} revoked"}))
    auth = BearerToken(token)
    with make_client(headers={}, secrets=[], auth=auth) as client, pytest.raises(ConnectionError_) as caught:
        client.get("/me")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {token}"
    assert token not in str(caught.value) and "token *** revoked" in str(caught.value)
    assert token not in repr(auth) and redact(f"Bearer {token}") == "Bearer ***"


def test_header_token_is_sent_in_the_vendors_header_and_redacted(mock: Any, clock: FakeTime) -> None:
    token = "key-" + uuid.uuid4().hex
    route = mock.get("/me").mock(return_value=answer(400, json={"message": f"key {token} has no access"}))
    auth = HeaderToken("X-Api-Key", token, prefix="Token ")
    with make_client(headers={}, secrets=[], auth=auth) as client, pytest.raises(VendorRejected) as caught:
        client.get("/me")
    sent = route.calls.last.request.headers
    assert sent["X-Api-Key"] == f"Token {token}" and "Authorization" not in sent
    assert token not in str(caught.value) and "key *** has no access" in str(caught.value)
    assert token not in repr(auth)


def test_several_auths_at_once(mock: Any, clock: FakeTime) -> None:
    key, user, password = "k-" + uuid.uuid4().hex, "someone", "pw-" + uuid.uuid4().hex
    route = mock.get("/me").mock(return_value=answer(200, json={}))
    with make_client(headers={}, secrets=[], auth=[HeaderToken("X-Key", key), BasicAuth(user, password)]) as client:
        client.get("/me")
    sent = route.calls.last.request.headers
    assert sent["X-Key"] == key and sent["Authorization"] == "Basic " + b64(f"{user}:{password}")
    assert redact(f"{key} {b64(f'{user}:{password}')} {password}") == "*** *** ***"
