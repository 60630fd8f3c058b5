"""Immediate transfer: an HTTP endpoint for a source's webhooks (``ledgerlink serve``).

The callback path carries a random secret (``/webhooks/<secret>``); anything else
is 404. A webhook payload is only a pointer: the source (a :class:`WebhookSource`)
checks in ``webhook_resource(payload)`` that it points at the configured account and
says what it is (a document or a customer, with its id); the endpoint
answers 202 at once and a worker thread re-fetches the resource with the
connection's own token and runs it through the same engine as ``run``.

``ledgerlink serve -p PIPELINE`` serves one pipeline's endpoint (:func:`make_app`);
``ledgerlink -c FILE serve`` mounts the endpoints of all the file's enabled pipelines
whose source takes webhooks in the service app (:class:`ServiceWebhooks`), one secret
each, with the same limits and answers.
"""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import threading
from collections import deque
from pathlib import Path
from typing import Any

from ._config import PipelineConfig
from ._connectors import WebhookResource, WebhookSource
from ._errors import LedgerlinkError
from ._runner import PipelineRunner, Reporter, Runtime

WEBHOOK_LOCK_WAIT = 600.0
"""How long a webhook waits for another command working on its pipeline (s)."""
MAX_BODY = 64 * 1024
"""A webhook is a pointer: a body over this many bytes is refused (413)."""
BODY_SECONDS = 10.0
"""A client that has not sent its whole body within this time is cut off (408)."""
QUEUE_LIMIT = 1000
"""Resources waiting to be fetched; when full, webhooks are refused with 503 and
Retry-After, so a burst neither floods the vendor nor grows memory without bound."""
DONE_KEPT = 1000
"""How many handled webhooks /health remembers."""
HEAD_SECONDS = 10.0
"""A client that has not sent a whole request head (request line and headers) within this
time of connecting, or of its previous answer, is cut off (408 when it sent part of one)."""
HEAD_BYTES = 16 * 1024
"""A request head over this size is refused (400), however fast it comes."""
KEEP_ALIVE_SECONDS = 5
"""An idle keep-alive connection is closed after this time."""
CONNECTION_LIMIT = 100
"""Connections (or requests in progress) at which a further request is answered 503: a
crowd of slow or idle clients cannot hold the server's memory and sockets without bound."""


def head_deadline_protocol(seconds: float = HEAD_SECONDS) -> type[asyncio.Protocol]:
    """uvicorn's h11 HTTP protocol with a deadline for the request head, which uvicorn
    lacks (``h11_max_incomplete_event_size`` bounds the head's size, not its time).

    A timer starts when the connection is made and again when an answer is complete (the
    next request of a keep-alive connection); it is cancelled once h11 has parsed the
    whole head. When it fires, a client that sent part of a head gets 408 and the
    connection is closed; a silent one is closed. The body has its own deadline
    (:data:`BODY_SECONDS`, in the endpoint)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadlineProtocol(H11Protocol):
        head_seconds = seconds
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._follow_head(restart=True)

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow_head(restart=False)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow_head(restart=True)

        def _follow_head(self, *, restart: bool) -> None:
            """Time the head while h11 waits for one; stop once it is complete."""
            waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
            if not waiting:
                self._stop_head_timer()
            elif restart or self._head_timer is None:
                self._stop_head_timer()
                self._head_timer = self.loop.call_later(self.head_seconds, self._head_too_slow)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            started = bool(getattr(self.conn, "trailing_data", (b"", False))[0])
            if started:  # raw bytes: h11 lets a server answer only a request it has parsed
                text = f"the request head did not arrive within {self.head_seconds:g} s".encode()
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                     b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(text), text))
            self.transport.close()

    return HeadDeadlineProtocol


def uvicorn_options(*, head_seconds: float = HEAD_SECONDS, keep_alive: int = KEEP_ALIVE_SECONDS,
                    limit: int = CONNECTION_LIMIT, head_bytes: int = HEAD_BYTES) -> dict[str, Any]:
    """What ``serve`` (``-p`` and the service) gives ``uvicorn.run`` / ``uvicorn.Config``
    against slow and idle clients: the head deadline, the keep-alive timeout and the
    connection limit (uvicorn answers 503 over it)."""
    return {"http": head_deadline_protocol(head_seconds), "timeout_keep_alive": keep_alive,
            "limit_concurrency": limit, "h11_max_incomplete_event_size": head_bytes}


def load_secret(path: Path) -> str:
    """The secret of the callback path, from ``path``; made (mode 0600 from the start,
    written whole) when the file is missing or empty."""
    from ._files import FileError, describe_os_error, write_private

    try:
        value = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        reason = describe_os_error(path, exc, "webhook secret file") if isinstance(exc, OSError) \
            else f"{path}: the webhook secret file is not text; remove it and a new secret is made"
        raise FileError(reason) from None
    if value:
        return value
    value = secrets.token_urlsafe(24)
    write_private(path, value + "\n", what="webhook secret file")
    return value


class WebhookWorker:
    """Processes queued webhook resources one at a time through the engine."""

    def __init__(self, runtime: Runtime, pipeline: PipelineConfig, *, limit: int = QUEUE_LIMIT) -> None:
        self.runtime = runtime
        self.pipeline = pipeline
        self.queue: queue.Queue[WebhookResource | None] = queue.Queue(maxsize=limit)
        self.done: deque[dict[str, Any]] = deque(maxlen=DONE_KEPT)
        self.handled = 0
        self._queued: set[tuple[str, str]] = set()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="webhook-worker")
        self._thread.start()

    def submit(self, resource: WebhookResource) -> str:
        """"queued"; "duplicate" (already waiting: fetched once, the newest state); "full"."""
        key = (resource.kind, resource.id)
        with self._guard:
            if key in self._queued:
                return "duplicate"
            try:
                self.queue.put_nowait(resource)
            except queue.Full:
                return "full"
            self._queued.add(key)
        return "queued"

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            kind, ident = item.kind, item.id
            with self._guard:  # a webhook from now on is fetched again (the resource may change)
                self._queued.discard((kind, ident))
            self.handled += 1
            try:
                self.done.append(self.handle(kind, ident))
            except LedgerlinkError as exc:
                self.runtime.reporter.message(f"webhook {kind} {ident}: {exc}")
                self.done.append({"kind": kind, "id": ident, "error": str(exc)})
            except Exception as exc:  # the endpoint must keep running
                self.runtime.reporter.message(f"webhook {kind} {ident}: internal error {type(exc).__name__}: {exc}")
                self.done.append({"kind": kind, "id": ident, "error": f"{type(exc).__name__}: {exc}"})

    def handle(self, kind: str, ident: str) -> dict[str, Any]:
        runner = PipelineRunner(self.runtime, self.pipeline)
        source = runner.source
        assert isinstance(source, WebhookSource)
        try:
            skip = runner.vendor_wait()  # a vendor that asked to wait is not asked again before then
            if skip is not None:
                self.runtime.reporter.message(f"webhook {kind} {ident}: {skip}")
                return {"kind": kind, "id": ident, "state": "deferred", "reason": skip}
            if kind == "document":
                document = runner.source.document(ident)
                if document is None:
                    return {"kind": kind, "id": ident, "state": "not found in the source"}
                # A webhook during a run waits for it (its document is taken once it is done).
                result = runner.run(documents=[document], use_cursor=False, retry_failed=False, command="webhook",
                                    sync_members=False, lock_wait=max(self.runtime.lock_wait, WEBHOOK_LOCK_WAIT))
                outcome = result.outcomes[0] if result.outcomes else None
                self.runtime.reporter.message(
                    f"webhook document {ident}: {outcome.state if outcome else 'unchanged'}"
                    f"{': ' + outcome.reason if outcome and outcome.reason else ''}")
                return {"kind": kind, "id": ident, "state": outcome.state if outcome else "unchanged"}
            if kind == "customer":
                customer = source.customer(ident)
                if customer is None:
                    return {"kind": kind, "id": ident, "state": "not a customer to sync"}
                if not (self.pipeline.sync_members or self.pipeline.create_contacts):
                    return {"kind": kind, "id": ident, "state": "contact creation is off"}
                # It writes contacts: under the pipeline's lock, as a document webhook (a run
                # working on the pipeline may be creating the same customer's contact).
                with self.runtime.locks.hold(self.pipeline.name, "webhook",
                                             wait=max(self.runtime.lock_wait, WEBHOOK_LOCK_WAIT)):
                    contact, decision = runner.contacts.resolve(customer, dry_run=False)
                self.runtime.reporter.message(f"webhook customer {ident}: {decision}")
                return {"kind": kind, "id": ident, "state": decision}
            return {"kind": kind, "id": ident, "state": "ignored"}
        finally:
            runner.close()


class _TooLarge(Exception):
    pass


async def _read_body(request: Any, limit: int) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return body


class _Hook:
    """One pipeline's endpoint: its secret, its source (reads the payloads), its worker."""

    def __init__(self, pipeline: PipelineConfig, secret: str, source: WebhookSource, worker: WebhookWorker) -> None:
        self.pipeline, self.secret, self.source, self.worker = pipeline, secret.encode("utf-8"), source, worker


def _hook(runtime: Runtime, pipeline: PipelineConfig, secret: str, queue_limit: int) -> _Hook:
    source = runtime.source(pipeline.source)
    if not isinstance(source, WebhookSource):
        source.close()
        raise LedgerlinkError(f"the source {pipeline.source!r} does not take webhooks")
    return _Hook(pipeline, secret, source, WebhookWorker(runtime, pipeline, limit=queue_limit))


def _receiver(hooks: list[_Hook], *, max_body: int, body_seconds: float) -> Any:
    """The endpoint of ``/webhooks/{secret}``: the pipeline whose secret it is, else 404."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def receive(request: Request) -> JSONResponse:
        # Bytes, so a secret with any characters is compared in constant time (never a 500);
        # every pipeline's secret is compared, whichever matches.
        given = str(request.path_params["secret"]).encode("utf-8", "surrogateescape")
        hook = None
        for candidate in hooks:
            if secrets.compare_digest(given, candidate.secret) and hook is None:
                hook = candidate
        if hook is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        if request.method != "POST":  # told only to whoever knows the secret
            return JSONResponse({"error": "send webhooks with POST"}, status_code=405, headers={"Allow": "POST"})
        too_large = JSONResponse({"error": f"the body is larger than {max_body} bytes"}, status_code=413)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            return too_large
        try:
            body = await asyncio.wait_for(_read_body(request, max_body), timeout=body_seconds)
        except _TooLarge:
            return too_large
        except TimeoutError:
            return JSONResponse({"error": f"the body did not arrive within {body_seconds:g} s"}, status_code=408)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        try:
            resource = hook.source.webhook_resource(payload)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if resource is None:
            return JSONResponse({"ignored": True}, status_code=202)
        outcome = hook.worker.submit(resource)
        if outcome == "full":
            return JSONResponse({"error": "too many webhooks are waiting; send it again later"}, status_code=503,
                                headers={"Retry-After": "30"})
        answer: dict[str, Any] = {"queued": {"kind": resource.kind, "id": resource.id}}
        if outcome == "duplicate":
            answer["duplicate"] = True  # already waiting: it is fetched once, in its newest state
        return JSONResponse(answer, status_code=202)

    return receive


def _starlette(hooks: list[_Hook], extra: list[Any], *, max_body: int, body_seconds: float) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    receive = _receiver(hooks, max_body=max_body, body_seconds=body_seconds)
    app = Starlette(routes=[
        Route("/webhooks/{secret}", receive, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        *extra,
    ])
    # "/webhooks/<secret>/" is not found either (Starlette would redirect it, naming the path).
    app.router.redirect_slashes = False
    return app


def make_app(runtime: Runtime, pipeline: PipelineConfig, secret: str, *, queue_limit: int = QUEUE_LIMIT,
             max_body: int = MAX_BODY, body_seconds: float = BODY_SECONDS) -> tuple[Any, WebhookWorker]:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    hook = _hook(runtime, pipeline, secret, queue_limit)
    worker = hook.worker

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "queued": worker.queue.qsize(), "done": worker.handled})

    app = _starlette([hook], [Route("/health", health, methods=["GET"])], max_body=max_body,
                     body_seconds=body_seconds)
    return app, worker


# -- inside the service (``ledgerlink -c FILE serve``) ----------------------------------
SECRET_FILE = ".ledgerlink-webhook-secret"
"""The default of ``serve --secret-file``."""


def takes_webhooks(runtime: Runtime, pipeline: PipelineConfig) -> bool:
    """Whether the pipeline's source is a :class:`WebhookSource` (as ``serve -p`` decides)."""
    source = runtime.source(pipeline.source)
    try:
        return isinstance(source, WebhookSource)
    finally:
        source.close()


def secret_files(secret_file: Path, names: list[str]) -> dict[str, Path]:
    """Each pipeline's secret file: ``secret_file`` itself when one pipeline takes webhooks
    (the file of ``serve -p``, so a subscribed callback URL stays valid), else
    ``<secret_file>.<pipeline>`` for each."""
    if len(names) == 1:
        return {names[0]: secret_file}
    return {name: secret_file.with_name(f"{secret_file.name}.{name}") for name in names}


class ServiceWebhooks:
    """The source webhooks of a config's pipelines, mounted in the service app: the ASGI app
    for paths under ``/webhooks/`` (None when no pipeline takes webhooks) and its workers."""

    def __init__(self, runtime: Runtime, pipelines: list[PipelineConfig], secret_file: Path, *,
                 queue_limit: int = QUEUE_LIMIT, max_body: int = MAX_BODY,
                 body_seconds: float = BODY_SECONDS) -> None:
        from ._errors import ConfigError

        chosen = [p for p in pipelines if p.enabled and takes_webhooks(runtime, p)]
        self.files = secret_files(secret_file, [p.name for p in chosen])
        secrets_by_name = {p.name: load_secret(self.files[p.name]) for p in chosen}
        seen: dict[str, str] = {}
        for name, secret in secrets_by_name.items():
            if secret in seen:
                raise ConfigError(f"the webhook secret files {self.files[seen[secret]]} and {self.files[name]} hold "
                                  "the same secret; remove one and a new secret is made")
            seen[secret] = name
        self.hooks: list[_Hook] = []
        try:
            for pipeline in chosen:
                self.hooks.append(_hook(runtime, pipeline, secrets_by_name[pipeline.name], queue_limit))
        except BaseException:
            self.stop()
            raise
        self.app: Any = _starlette(self.hooks, [], max_body=max_body, body_seconds=body_seconds) \
            if self.hooks else None

    @property
    def workers(self) -> dict[str, WebhookWorker]:
        return {hook.pipeline.name: hook.worker for hook in self.hooks}

    def stop(self) -> None:
        for hook in self.hooks:
            hook.worker.stop()
            hook.source.close()


def serve_webhooks(state: Any, pipeline: PipelineConfig, *, host: str, port: int, secret_file: Path) -> None:
    import click
    import uvicorn

    class Echo(Reporter):
        def message(self, text: str) -> None:
            click.echo(text, err=True)

    runtime = state.runtime(Echo())
    secret = load_secret(secret_file)
    app, worker = make_app(runtime, pipeline, secret)
    click.echo(f"listening on http://{host}:{port}/webhooks/<secret from {secret_file}>", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **uvicorn_options())
    finally:
        worker.stop()
