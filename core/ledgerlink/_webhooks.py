"""Immediate transfer: an HTTP endpoint for a source's webhooks (``ledgerlink serve``).

The callback path carries a random secret (``/webhooks/<secret>``); anything else
is 404. A webhook payload is only a pointer: the source (a :class:`WebhookSource`)
checks in ``webhook_resource(payload)`` that it points at the configured account and
says what it is (a document or a customer, with its id); the endpoint
answers 202 at once and a worker thread re-fetches the resource with the
connection's own token and runs it through the same engine as ``run``.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
from pathlib import Path
from typing import Any

from ._config import PipelineConfig
from ._connectors import WebhookResource, WebhookSource
from ._errors import LedgerlinkError
from ._runner import PipelineRunner, Reporter, Runtime

WEBHOOK_LOCK_WAIT = 600.0
"""How long a webhook waits for another command working on its pipeline (s)."""


def load_secret(path: Path) -> str:
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    value = secrets.token_urlsafe(24)
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return value


class WebhookWorker:
    """Processes queued webhook resources one at a time through the engine."""

    def __init__(self, runtime: Runtime, pipeline: PipelineConfig) -> None:
        self.runtime = runtime
        self.pipeline = pipeline
        self.queue: queue.Queue[WebhookResource | None] = queue.Queue()
        self.done: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True, name="webhook-worker")
        self._thread.start()

    def submit(self, resource: WebhookResource) -> None:
        self.queue.put(resource)

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            kind, ident = item.kind, item.id
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
                contact, decision = runner.contacts.resolve(customer, dry_run=False)
                self.runtime.reporter.message(f"webhook customer {ident}: {decision}")
                return {"kind": kind, "id": ident, "state": decision}
            return {"kind": kind, "id": ident, "state": "ignored"}
        finally:
            runner.close()


def make_app(runtime: Runtime, pipeline: PipelineConfig, secret: str) -> tuple[Any, WebhookWorker]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    worker = WebhookWorker(runtime, pipeline)
    source = runtime.source(pipeline.source)
    if not isinstance(source, WebhookSource):
        source.close()
        raise LedgerlinkError(f"the source {pipeline.source!r} does not take webhooks")

    async def receive(request: Request) -> JSONResponse:
        if not secrets.compare_digest(request.path_params["secret"], secret):
            return JSONResponse({"error": "not found"}, status_code=404)
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        try:
            resource = source.webhook_resource(payload)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if resource is None:
            return JSONResponse({"ignored": True}, status_code=202)
        worker.submit(resource)
        return JSONResponse({"queued": {"kind": resource.kind, "id": resource.id}}, status_code=202)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "queued": worker.queue.qsize(), "done": len(worker.done)})

    app = Starlette(routes=[
        Route("/webhooks/{secret}", receive, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ])
    return app, worker


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
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        worker.stop()
