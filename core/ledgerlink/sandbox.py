"""The sandbox kit: the base for vendor emulators.

A sandbox is a small ASGI app (starlette) that follows a vendor's published API.
It runs in-process (``Sandbox.transport()`` gives an httpx transport for sync
clients) or as a loopback server (``ledgerlink sandbox serve NAME``). Every
sandbox gets, from this kit:

- ``GET /__sandbox__/requests``: the request log (method, path, query, JSON body,
  status, and the OpenAPI validation errors, if any);
- ``GET /__sandbox__/state``: every stored object;
- ``POST /__sandbox__/faults``: fault injection (see :class:`Faults`);
- ``POST /__sandbox__/reset``: empty state and log; ``POST /__sandbox__/seed``: load
  seed data in the vendor's own format;
- ``--state FILE`` persistence: the state is written (atomically) after every
  request that changed it, before the answer goes out, so a killed client or a
  killed server can be restarted against the same data.

A vendor sandbox subclasses :class:`Sandbox`, implements ``routes()`` with
``async`` handlers (so state changes are atomic on the event loop), keeps its
data in ``self.state`` (JSON-able), and calls ``self.validate(request, body)``
to check requests against the vendor's OpenAPI file shipped in the plugin.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

SANDBOX_PREFIX = "/__sandbox__"


@dataclass
class Faults:
    """Fault injection settings; shares are between 0 and 1 of all API requests."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    """Answer after ``slow_seconds`` (past the client's timeout); the request *is* processed."""
    slow_seconds: float = 5.0
    rate_drop: float = 0.0
    """Process the request, then drop the connection without an answer."""
    rate_truncate: float = 0.0
    """Process the request, then send only part of the answer."""
    retry_after: float = 1.0
    latency: float = 0.0
    """Added to every API request, in seconds."""
    requests_per_second: float = 0.0
    """Per credential (auth header); above it the sandbox answers 429. 0: no limit."""
    seed: int | None = None

    def active(self) -> bool:
        return any(
            (self.rate_429, self.rate_500, self.rate_503, self.rate_slow, self.rate_drop,
             self.rate_truncate)
        )


class _Drop(Exception):
    pass


class OpenAPIValidator:
    """Checks request bodies and required query parameters against an OpenAPI
    3.x or Swagger 2.0 file (YAML or JSON)."""

    def __init__(self, spec_path: str | Path, *, base_path: str = "") -> None:
        import yaml

        text = Path(spec_path).read_text(encoding="utf-8")
        self.spec = yaml.safe_load(text) if str(spec_path).endswith((".yaml", ".yml")) else json.loads(text)
        self.base_path = base_path.rstrip("/")
        self.swagger2 = str(self.spec.get("swagger", "")).startswith("2")
        self._fix_nullable(self.spec)
        self.operations: list[tuple[re.Pattern[str], str, dict[str, Any], list[dict[str, Any]]]] = []
        for path, item in (self.spec.get("paths") or {}).items():
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
            common = item.get("parameters", []) if isinstance(item, dict) else []
            for method, op in (item or {}).items():
                if method in ("get", "post", "put", "patch", "delete") and isinstance(op, dict):
                    self.operations.append((pattern, method.upper(), op, common))
        self._validators: dict[int, Any] = {}

    @classmethod
    def _fix_nullable(cls, node: Any) -> None:
        if isinstance(node, dict):
            if node.get("nullable") is True and isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            if node.get("x-nullable") is True and isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            for value in node.values():
                cls._fix_nullable(value)
        elif isinstance(node, list):
            for value in node:
                cls._fix_nullable(value)

    def find(self, method: str, path: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path):] or "/"
        # Prefer the pattern without parameters (literal match) when several fit.
        best = None
        for pattern, m, op, common in self.operations:
            if m == method and pattern.match(path):
                literal = "[^/]+" not in pattern.pattern
                if best is None or literal:
                    best = (op, common)
                    if literal:
                        break
        return best

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            target: Any = self.spec
            for part in ref.lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def validate(self, method: str, path: str, query: dict[str, Any], body: Any) -> list[str]:
        """Problems with this request; empty when it validates."""
        from jsonschema import Draft4Validator, Draft7Validator

        found = self.find(method, path)
        if found is None:
            return [f"{method} {path} is not in the API description"]
        op, common = found
        errors: list[str] = []
        params = [self._resolve(p) for p in common + op.get("parameters", [])]
        for param in params:
            if param.get("in") == "query" and param.get("required") and param["name"] not in query:
                errors.append(f"query parameter {param['name']!r} is required")
        schema = None
        if self.swagger2:
            for param in params:
                if param.get("in") == "body":
                    schema = param.get("schema")
                    if param.get("required") and body is None:
                        errors.append("a request body is required")
        else:
            request_body = self._resolve(op.get("requestBody") or {})
            content = request_body.get("content") or {}
            media = content.get("application/json") or next(iter(content.values()), None)
            if media:
                schema = media.get("schema")
            if request_body.get("required") and body is None:
                errors.append("a request body is required")
        if schema is not None and body is not None:
            wrapper = dict(schema)
            wrapper["definitions"] = self.spec.get("definitions", {})
            wrapper["components"] = self.spec.get("components", {})
            key = id(schema)
            validator = self._validators.get(key)
            if validator is None:
                cls = Draft4Validator if self.swagger2 else Draft7Validator
                validator = self._validators[key] = cls(wrapper)
            for error in validator.iter_errors(body):
                where = "/".join(str(p) for p in error.absolute_path) or "body"
                errors.append(f"{where}: {error.message[:200]}")
        return errors


class Sandbox:
    """Base class of vendor emulators."""

    name: ClassVar[str] = ""
    vendor: ClassVar[str] = ""
    base_path: ClassVar[str] = ""
    """Where the API lives under the server root (e.g. "/api/v1")."""
    openapi_file: ClassVar[str | Path | None] = None

    def __init__(
        self,
        *,
        seed: Any = None,
        state_path: str | Path | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.state_path = Path(state_path) if state_path else None
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self.requests: list[dict[str, Any]] = []
        self._windows: dict[str, deque[float]] = {}
        self.stats = {"throttled": 0, "faults": 0}
        self.validator = (
            OpenAPIValidator(self.openapi_file, base_path=self.base_path) if self.openapi_file else None
        )
        self.state: dict[str, Any] = self.initial_state()
        if self.state_path and self.state_path.exists() and self.state_path.stat().st_size:
            self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
        elif seed is not None:
            self.load_seed(seed)
            self.save()
        self._lock = threading.Lock()
        self._app: Starlette | None = None

    # -- to override ---------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {}

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def load_seed(self, data: Any) -> None:
        """Load seed data in the vendor's own format (a parsed JSON document)."""
        raise NotImplementedError(f"the {self.name} sandbox takes no seed")

    def credential(self, request: Request) -> str:
        """The caller's identity for rate limiting (default: the auth headers)."""
        parts = [request.headers.get(h, "") for h in ("authorization", "x-billbee-api-key", "x-access-token")]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def error_response(self, status: int, message: str) -> Response:
        """An error in the vendor's own shape."""
        return JSONResponse({"error": {"message": message, "code": status}}, status_code=status)

    # -- helpers for subclasses ------------------------------------------------
    def next_id(self, kind: str, start: int = 1000) -> int:
        counters = self.state.setdefault("_counters", {})
        counters[kind] = int(counters.get(kind, start)) + 1
        return int(counters[kind])

    async def body(self, request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return _InvalidJSON(raw)

    def validate(self, request: Request, body: Any) -> list[str]:
        """Validate against the OpenAPI file; the problems are kept in the request log."""
        if self.validator is None:
            return []
        if isinstance(body, _InvalidJSON):
            errors = ["the request body is not valid JSON"]
        else:
            errors = self.validator.validate(
                request.method, request.url.path, dict(request.query_params), body
            )
        request.state.validation_errors = errors
        return errors

    def save(self) -> None:
        if not self.state_path:
            return
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.state, default=str), encoding="utf-8")
        os.replace(tmp, self.state_path)

    # -- the app -------------------------------------------------------------
    @property
    def app(self) -> Callable[..., Any]:
        if self._app is None:
            kit = [
                Route(f"{SANDBOX_PREFIX}/requests", self._get_requests, methods=["GET"]),
                Route(f"{SANDBOX_PREFIX}/state", self._get_state, methods=["GET"]),
                Route(f"{SANDBOX_PREFIX}/faults", self._set_faults, methods=["POST", "GET"]),
                Route(f"{SANDBOX_PREFIX}/reset", self._reset, methods=["POST"]),
                Route(f"{SANDBOX_PREFIX}/seed", self._seed, methods=["POST"]),
            ]
            self._app = Starlette(routes=kit + self.routes())
        return self._wrapped

    async def _wrapped(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self._app is not None
        if scope["type"] != "http" or scope["path"].startswith(SANDBOX_PREFIX):
            await self._app(scope, receive, send)
            return
        faults = self.faults
        if faults.latency:
            await asyncio.sleep(faults.latency)
        request = Request(scope, receive)
        body_bytes = await request.body()

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body_bytes, "more_body": False}

        entry: dict[str, Any] = {
            "time": time.time(),
            "method": scope["method"],
            "path": scope["path"],
            "query": request.url.query,
            "status": None,
        }
        try:
            entry["json"] = json.loads(body_bytes) if body_bytes else None
        except ValueError:
            entry["json"] = None
            entry["body"] = body_bytes[:2000].decode("utf-8", "replace")
        self.requests.append(entry)

        # Rate limit per credential: a sliding one-second window.
        if faults.requests_per_second:
            key = self.credential(request)
            window = self._windows.setdefault(key, deque())
            now = time.monotonic()
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= faults.requests_per_second:
                self.stats["throttled"] += 1
                entry["status"] = 429
                entry["fault"] = "rate_limit"
                await self._send_error(send, 429, "Too Many Requests", retry_after=faults.retry_after)
                return
            window.append(now)

        fault = self._pick_fault() if faults.active() else None
        if fault in ("429", "500", "503"):
            self.stats["faults"] += 1
            entry["status"] = int(fault)
            entry["fault"] = fault
            await self._send_error(
                send, int(fault), "injected fault",
                retry_after=faults.retry_after if fault in ("429", "503") else None,
            )
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
        validation: list[str] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        scope = dict(scope)
        scope.setdefault("state", {})
        await self._app(scope, replay, capture)
        validation = scope["state"].get("validation_errors", [])
        entry["status"] = captured["status"]
        if validation:
            entry["validation_errors"] = validation
        if scope["method"] != "GET":
            self.save()

        body: bytes = captured["body"]
        if fault == "slow":
            self.stats["faults"] += 1
            entry["fault"] = "slow"
            await asyncio.sleep(faults.slow_seconds)
        elif fault in ("drop", "truncate"):
            self.stats["faults"] += 1
            entry["fault"] = fault
            # Announce the full length, send less: the client sees a connection
            # closed mid-answer (drop: nothing of the body; truncate: half of it).
            headers = [(k, v) for k, v in captured["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body) + 10).encode()))
            part = b"" if fault == "drop" else body[: len(body) // 2]
            await send({"type": "http.response.start", "status": captured["status"], "headers": headers})
            await send({"type": "http.response.body", "body": part, "more_body": False})
            return
        await send({"type": "http.response.start", "status": captured["status"], "headers": captured["headers"]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _pick_fault(self) -> str | None:
        f = self.faults
        roll = self._rng.random()
        for name, share in (
            ("429", f.rate_429), ("500", f.rate_500), ("503", f.rate_503),
            ("slow", f.rate_slow), ("drop", f.rate_drop), ("truncate", f.rate_truncate),
        ):
            if roll < share:
                return name
            roll -= share
        return None

    async def _send_error(self, send: Any, status: int, text: str, *, retry_after: float | None) -> None:
        response = self.error_response(status, text)
        if retry_after is not None:
            response.headers["Retry-After"] = f"{retry_after:g}"
        await response({"type": "http"}, None, send)  # type: ignore[arg-type]

    async def _get_requests(self, request: Request) -> Response:
        return JSONResponse(self.requests)

    async def _get_state(self, request: Request) -> Response:
        return JSONResponse(json.loads(json.dumps(self.state, default=str)))

    async def _set_faults(self, request: Request) -> Response:
        if request.method == "POST":
            data = await request.json()
            unknown = set(data) - set(asdict(Faults()))
            if unknown:
                return JSONResponse({"error": f"unknown fault settings: {sorted(unknown)}"}, status_code=400)
            self.faults = Faults(**{**asdict(self.faults), **data})
            self._rng = random.Random(self.faults.seed)
        return JSONResponse({**asdict(self.faults), "stats": self.stats})

    async def _reset(self, request: Request) -> Response:
        self.state = self.initial_state()
        self.requests.clear()
        self.save()
        return JSONResponse({"ok": True})

    async def _seed(self, request: Request) -> Response:
        self.load_seed(await request.json())
        self.save()
        return JSONResponse({"ok": True})

    # -- in-process use ------------------------------------------------------
    def transport(self) -> httpx.BaseTransport:
        """A sync httpx transport that calls this app in-process."""
        return SyncASGITransport(self.app)

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)


class _InvalidJSON:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


class SyncASGITransport(httpx.BaseTransport):
    """Runs an ASGI app on a private event loop thread, for sync httpx clients.

    Honours the request's read timeout (``httpx.ReadTimeout``) and reports an
    answer shorter than its Content-Length as ``httpx.RemoteProtocolError``, as a
    real connection would.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self._inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="sandbox-loop")
        self._thread.start()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        async_request = httpx.Request(
            request.method, request.url, headers=request.headers, content=content,
            extensions=request.extensions,
        )

        async def call() -> tuple[int, httpx.Headers, bytes]:
            response = await self._inner.handle_async_request(async_request)
            body = await response.aread()
            return response.status_code, response.headers, body

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        timeout = (request.extensions.get("timeout") or {}).get("read")
        try:
            status, headers, body = future.result(timeout=timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("sandbox answer took too long", request=request) from None
        length = headers.get("content-length")
        if length is not None and int(length) != len(body):
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            )
        return httpx.Response(status, headers=headers, content=body, request=request)

    def close(self) -> None:
        pass


def serve(sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 0,
          ready: Callable[[int], None] | None = None) -> None:
    """Serve a sandbox on loopback until interrupted (uvicorn)."""
    import uvicorn

    config = uvicorn.Config(sandbox.app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
            ready(bound)

        server.startup = startup  # type: ignore[method-assign]
    server.run()


class SandboxServer:
    """A sandbox served on a loopback port in a background thread (for tests)."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.sandbox = sandbox
        self.host = host
        self._config = uvicorn.Config(sandbox.app, host=host, port=0, log_level="warning", access_log=False)
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.port = 0

    def __enter__(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


__all__ = [
    "Faults",
    "OpenAPIValidator",
    "SANDBOX_PREFIX",
    "Sandbox",
    "SandboxServer",
    "SyncASGITransport",
    "serve",
]
