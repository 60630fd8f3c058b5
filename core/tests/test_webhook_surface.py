"""The webhook endpoint of `ledgerlink serve` at its edges (issue 16): bodies over the
limit, slow clients, bursts, duplicates and odd secrets. The endpoint runs on uvicorn on
loopback, as `serve` runs it; the source is the fake webhook source."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerlink._webhooks import make_app, uvicorn_options
from ledgerlink.testing import fake_store, make_runtime, sample_document

SECRET = "s3cr3t-path"


class AppServer:
    """The app on uvicorn with the options `serve` gives it (``uvicorn_options``)."""

    def __init__(self, app: Any, **options: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False, timeout_graceful_shutdown=1,
                                                    **uvicorn_options(**options)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Any]:
    def start(server_options: dict[str, Any] | None = None, **limits: Any) -> Any:
        raw = {"connections": {"shop": {"plugin": "fake-webhook-source", "store": "shop"},
                               "books": {"plugin": "fake-target", "store": "books"}},
               "pipelines": [{"name": "p", "source": "shop", "target": "books"}]}
        runtime = make_runtime(raw, tmp_path)
        app, worker = make_app(runtime, runtime.config.pipelines[0], SECRET, **limits)
        server = AppServer(app, **(server_options or {})).__enter__()
        started.append((server, worker))
        return server, worker

    started: list[tuple[AppServer, Any]] = []
    yield start
    for server, worker in started:
        server.__exit__()
        worker.stop()


def post(server: AppServer, body: bytes | dict[str, Any], secret: str = SECRET) -> httpx.Response:
    url = f"{server.url}/webhooks/{secret}"
    if isinstance(body, dict):
        return httpx.post(url, json=body, timeout=10)
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=10)


def test_a_body_over_the_limit_is_refused(endpoint: Any) -> None:
    server, worker = endpoint(max_body=1024)
    big = b'{"document": "order-1", "padding": "' + b"x" * 2000 + b'"}'
    answer = post(server, big)
    assert answer.status_code == 413
    assert answer.json() == {"error": "the body is larger than 1024 bytes"}
    chunked = httpx.post(f"{server.url}/webhooks/{SECRET}", content=iter([big[:600], big[600:]]), timeout=10)
    assert chunked.status_code == 413  # no Content-Length: counted while it arrives
    assert worker.queue.qsize() == 0 and worker.handled == 0


def test_a_slow_client_is_cut_off(endpoint: Any) -> None:
    server, worker = endpoint(body_seconds=0.5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/" + SECRET.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"docu")
        started = time.monotonic()
        received = b""
        while b"did not arrive" not in received:  # headers and body may come in two reads
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        answer = received.decode()
        waited = time.monotonic() - started
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "did not arrive within 0.5 s" in answer
    assert waited < 5
    assert worker.handled == 0


def test_a_burst_is_bounded_and_duplicates_are_fetched_once(endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    from ledgerlink._webhooks import WebhookWorker

    real = WebhookWorker.handle

    def held(self: WebhookWorker, kind: str, ident: str) -> dict[str, Any]:
        gate.wait(120)  # the vendor is slow: the worker holds the first resource
        return real(self, kind, ident)

    monkeypatch.setattr(WebhookWorker, "handle", held)
    for n in range(1, 7):
        fake_store("shop")["documents"][f"order-{n}"] = sample_document(n)
    server, worker = endpoint(queue_limit=3)
    first = post(server, {"document": "order-1"})
    assert first.status_code == 202
    deadline = time.monotonic() + 5
    while worker.queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)  # the worker took order-1 and waits
    answers = [post(server, {"document": f"order-{n}"}) for n in (2, 3, 4)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    # One client (kept alive): a new client per request costs ~50 ms (its TLS context), and
    # on a loaded machine 200 of those outlasted the held worker's wait.
    with httpx.Client(timeout=10) as client:
        twice = [client.post(f"{server.url}/webhooks/{SECRET}", json={"document": "order-2"}) for _ in range(200)]
    assert {a.status_code for a in twice} == {202} and all(a.json().get("duplicate") for a in twice)
    full = post(server, {"document": "order-5"})
    assert full.status_code == 503 and full.headers["Retry-After"] == "30"
    assert full.json() == {"error": "too many webhooks are waiting; send it again later"}
    gate.set()
    deadline = time.monotonic() + 30
    while worker.handled < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert worker.handled == 4  # order-1 to order-4, order-2 once for 201 webhooks
    assert sorted(fake_store("books")["pushed"]) == ["order-1", "order-2", "order-3", "order-4"]
    assert [d["id"] for d in worker.done] == ["order-1", "order-2", "order-3", "order-4"]


@pytest.mark.parametrize("secret", ["gehe-im-äöü", "%00", "%E2%82%AC", "x" * 3000])
def test_an_odd_secret_in_the_path_is_not_found_never_an_error(endpoint: Any, secret: str) -> None:
    server, worker = endpoint()
    answer = post(server, {"document": "order-1"}, secret=secret)
    assert answer.status_code in (404, 414)
    assert worker.handled == 0


def _status(server: AppServer, method: bytes, path: bytes) -> int:
    """The status of one request sent as raw bytes (any byte may stand in the path)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return int(received.split(b" ")[1])


def test_any_bytes_in_the_path_are_not_found(endpoint: Any) -> None:
    """Every byte value, percent-encoded, in the secret, after it, instead of it and in front
    of the webhook path, by POST and other methods: 404 (never 500, no redirect naming the
    path, no 405 telling the route exists). Raw bytes that no HTTP request line may hold
    (controls, spaces, non-ASCII) are refused by the HTTP parser (400) before the app."""
    server, worker = endpoint()
    secret = SECRET.encode()
    statuses: dict[int, list[bytes]] = {}
    for value in range(256):
        encoded = b"%%%02X" % value
        for path in (b"/webhooks/" + encoded, b"/webhooks/" + secret + encoded, b"/webhooks/" + encoded + secret,
                     b"/webhooks/" + secret[:4] + encoded + secret[4:], b"/" + encoded + b"/webhooks/" + secret,
                     b"/webhooks/%C3" + encoded):
            statuses.setdefault(_status(server, b"POST", path), []).append(path)
        raw = bytes([value])
        code = _status(server, b"POST", b"/webhooks/" + raw)
        assert code in (400, 404), (raw, code)
    for method in (b"GET", b"PUT", b"DELETE", b"HEAD"):
        statuses.setdefault(_status(server, method, b"/webhooks/wrong-secret"), []).append(method)
    statuses.setdefault(_status(server, b"POST", b"/webhooks/" + secret + b"/"), []).append(b"trailing slash")
    assert list(statuses) == [404], {code: paths[:5] for code, paths in statuses.items() if code != 404}
    assert worker.queue.qsize() == 0 and worker.handled == 0
    # the right secret by another method: told to use POST; by POST: taken
    assert _status(server, b"GET", b"/webhooks/" + secret) == 405
    assert post(server, {"document": "order-1"}).status_code == 202


def test_the_webhook_worker_keeps_bounded_lists(endpoint: Any) -> None:
    """What the worker keeps in memory is bounded: the queue (queue_limit), the keys of
    queued resources (one per queued item), and the handled ones /health reports."""
    from ledgerlink._webhooks import DONE_KEPT

    server, worker = endpoint(queue_limit=5)
    assert worker.queue.maxsize == 5
    assert worker.done.maxlen == DONE_KEPT
    for n in range(DONE_KEPT + 50):  # handled results beyond the bound push the oldest out
        worker.done.append({"kind": "document", "id": f"order-{n}", "state": "unchanged"})
    assert len(worker.done) == DONE_KEPT and worker.done[0]["id"] == "order-50"


# -- slow and idle clients at the HTTP level (uvicorn's options, as `serve` sets them) ------
def _read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (s)."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {limit} s; got {received!r}") from None
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def test_serve_gives_uvicorn_a_head_deadline_a_keep_alive_timeout_and_a_connection_limit() -> None:
    from ledgerlink import _serve, _webhooks

    options = uvicorn_options()
    assert options["timeout_keep_alive"] == _webhooks.KEEP_ALIVE_SECONDS <= 10
    assert options["limit_concurrency"] == _webhooks.CONNECTION_LIMIT
    assert options["http"].head_seconds == _webhooks.HEAD_SECONDS
    for module in (_serve, _webhooks):  # both servers of `serve` start with these options
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        runs = [line for line in source.splitlines() if "uvicorn.run(" in line]
        assert runs and all("**uvicorn_options()" in line for line in runs), (module.__name__, runs)


def test_a_request_head_sent_too_slowly_is_cut_off_within_the_deadline(endpoint: Any) -> None:
    server, worker = endpoint(server_options={"head_seconds": 0.8})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /webhooks/" + SECRET.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for n in range(40):  # one header byte every 0.1 s: never a whole head, never idle for long
            time.sleep(0.1)
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % n)
            except OSError:
                closed = True
                break
        received, _ = _read_until_closed(sock, 5)
        waited = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received
    assert b"the request head did not arrive within 0.8 s" in received
    assert closed or waited < 4.5
    assert waited < 3, f"cut off only after {waited:.1f} s"
    assert worker.handled == 0 and worker.queue.qsize() == 0


def test_a_connection_that_sends_nothing_is_closed_within_the_head_deadline(endpoint: Any) -> None:
    server, worker = endpoint(server_options={"head_seconds": 0.5})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        received, waited = _read_until_closed(sock, 5)
    assert received == b""  # nothing was asked: nothing to answer, the connection is just closed
    assert 0.4 < waited < 3


def test_a_whole_head_in_time_is_served_however_long_the_deadline_had_run(endpoint: Any) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    server, worker = endpoint(server_options={"head_seconds": 1.0})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = b"POST /webhooks/" + SECRET.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall(head)
        time.sleep(0.6)  # slow, but the head is whole before the deadline
        body = b'{"document": "order-1"}'
        sock.sendall(b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        time.sleep(0.6)  # the body has its own deadline: past the head's, it is not cut off
        sock.sendall(body)
        received, _ = _read_until_closed(sock, 10)
    assert received.startswith(b"HTTP/1.1 202"), received


def test_an_idle_keep_alive_connection_is_closed(endpoint: Any) -> None:
    server, worker = endpoint(server_options={"keep_alive": 1, "head_seconds": 30})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # HTTP/1.1: kept alive
        sock.settimeout(5)
        received = b""
        while b"\r\n\r\n" not in received or not received.endswith(b"}"):
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received
        rest, idle = _read_until_closed(sock, 10)  # then nothing: the server closes it
    assert rest == b""
    assert 0.8 < idle < 4, f"closed after {idle:.1f} s idle"


def test_a_request_over_the_connection_limit_gets_503(endpoint: Any) -> None:
    server, worker = endpoint(server_options={"limit": 3, "head_seconds": 30})
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.2)  # two idle connections, and the request's own: three
        over = httpx.get(f"{server.url}/health", timeout=10)
        assert over.status_code == 503, over.text
        assert worker.handled == 0
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # once the idle connections are gone, requests are served again
        answer = httpx.get(f"{server.url}/health", timeout=10)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer.status_code == 200


# -- the pipeline lock covers webhooks ----------------------------------------------------
def _customer_source_plugin() -> Any:
    """The fake webhook source, also pointing at customers: ``{"customer": "cust-9"}``."""
    from ledgerlink._connectors import WebhookResource
    from ledgerlink._fakes import FakeWebhookSource
    from ledgerlink._hookspecs import hookimpl
    from ledgerlink._records import Customer

    class CustomerWebhookSource(FakeWebhookSource):
        def webhook_resource(self, payload: Any) -> WebhookResource | None:
            if isinstance(payload, dict) and isinstance(payload.get("customer"), str):
                return WebhookResource("customer", payload["customer"])
            return super().webhook_resource(payload)

        def customer(self, source_id: str) -> Customer | None:
            raw = self._data()["customers"].get(source_id)
            return None if raw is None else Customer.model_validate(raw)

    class Plugin:
        distribution = "customer webhooks (test)"

        @staticmethod
        @hookimpl
        def ledgerlink_register_sources(register: Any) -> None:
            register("customer-webhook-source", CustomerWebhookSource)

    return Plugin()


@pytest.mark.parametrize("kind", ["customer", "document"])
def test_a_webhook_waits_for_the_command_holding_its_pipeline(tmp_path: Path, kind: str) -> None:
    """While another command (a `run` here) holds the pipeline's lock, a webhook for the
    pipeline is taken (202) but not processed; it is once the holder lets go. A customer
    webhook writes contacts, as a document webhook writes documents: both wait."""
    from ledgerlink._ledger import Ledger
    from ledgerlink._locks import PipelineLocks
    from ledgerlink._plugins import PluginManager
    from ledgerlink.testing import fake_plugin

    fake_store("shop")["customers"]["cust-9"] = {"source_id": "cust-9", "first_name": "Erika",
                                                 "last_name": "Mustermann", "email": "erika@example.com"}
    fake_store("shop")["documents"]["order-1"] = sample_document(1, customer="cust-9")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    raw = {"ledger": {"url": url},
           "connections": {"shop": {"plugin": "customer-webhook-source", "store": "shop"},
                           "books": {"plugin": "fake-target", "store": "books"}},
           "pipelines": [{"name": "p", "source": "shop", "target": "books", "sync_members": True}]}
    runtime = make_runtime(raw, tmp_path, plugins=PluginManager(extra_plugins=[fake_plugin, _customer_source_plugin()]))
    app, worker = make_app(runtime, runtime.config.pipelines[0], SECRET)
    held = PipelineLocks(Ledger(url))  # another command's lock, on its own connection to the ledger
    try:
        with AppServer(app) as server:
            holding = held.hold("p", "run")
            holding.__enter__()
            try:
                answer = post(server, {kind: "cust-9" if kind == "customer" else "order-1"})
                assert answer.status_code == 202, answer.text
                time.sleep(1.5)  # the worker has taken it, and waits for the lock
                assert worker.queue.qsize() == 0 and worker.handled == 1
                assert list(worker.done) == []
                assert fake_store("books")["contacts"] == {} and fake_store("books")["pushed"] == {}
            finally:
                holding.__exit__(None, None, None)
            deadline = time.monotonic() + 15
            while not worker.done and time.monotonic() < deadline:
                time.sleep(0.05)
            [done] = list(worker.done)
            assert "error" not in done, done
            assert len(fake_store("books")["contacts"]) == 1  # written once the holder let go
            if kind == "document":
                assert list(fake_store("books")["pushed"]) == ["order-1"]
    finally:
        worker.stop()
        held.ledger.close()
        runtime.ledger.close()
