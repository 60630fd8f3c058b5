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
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, MutableMapping
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
    rate_late: float = 0.0
    """Writes only: begin processing after ``late_seconds`` (past the client's timeout),
    then answer: the vendor finishes a write after the client gave up on it."""
    late_seconds: float = 3.0
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

    @classmethod
    def from_mapping(cls, data: Any, *, base: Faults | None = None) -> Faults:
        """Settings from a JSON object (over ``base``); ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("fault settings must be a JSON object")
        known = asdict(base or cls())
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown fault settings: {unknown} (known: {sorted(known)})")
        wrong = sorted(
            key for key, value in data.items()
            if not (
                (key == "seed" and (value is None or (isinstance(value, int) and not isinstance(value, bool))))
                or (key != "seed" and isinstance(value, int | float) and not isinstance(value, bool)
                    and value >= 0)
            )
        )
        if wrong:
            raise ValueError(f"fault settings must be non-negative numbers (seed: an integer): {wrong}")
        return cls(**{**known, **data})

    def active(self) -> bool:
        return any(
            (self.rate_429, self.rate_500, self.rate_503, self.rate_slow, self.rate_late, self.rate_drop,
             self.rate_truncate)
        )


class _Drop(Exception):
    """Raised by the app to abort an answer half-way (faults "drop" and "truncate")."""


class _QuietDrops(logging.Filter):
    """Keeps the server's "Exception in ASGI application" traceback for an
    injected drop out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _Drop)


_QUIET_DROPS = _QuietDrops()


def _quiet_server_log() -> None:
    logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)


class OpenAPIValidator:
    """Checks request bodies and required query parameters against an OpenAPI
    3.x or Swagger 2.0 file (YAML or JSON)."""

    def __init__(self, spec_path: str | Path, *, base_path: str = "") -> None:
        import yaml

        text = Path(spec_path).read_text(encoding="utf-8")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self.spec = yaml.load(text, Loader=loader) if str(spec_path).endswith((".yaml", ".yml")) else json.loads(text)
        self.base_path = base_path.rstrip("/")
        self.swagger2 = str(self.spec.get("swagger", "")).startswith("2")
        self._prepare()

    def _prepare(self, *, drop_read_only_required: bool = True) -> None:
        """Make the loaded ``self.spec`` check requests, and index its operations
        (a subclass that loads or corrects the spec itself calls this after)."""
        self._fix_nullable(self.spec)
        if drop_read_only_required:
            self._drop_read_only_required(self.spec)
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
            if node.get("nullable") is True or node.get("x-nullable") is True:
                if isinstance(node.get("type"), str):
                    node["type"] = [node["type"], "null"]
                if isinstance(node.get("enum"), list) and None not in node["enum"]:
                    node["enum"] = [*node["enum"], None]
            for value in node.values():
                cls._fix_nullable(value)
        elif isinstance(node, list):
            for value in node:
                cls._fix_nullable(value)

    def _drop_read_only_required(self, node: Any, seen: set[int] | None = None) -> None:
        """A required ``readOnly`` property (an id, a creation date) is required in
        answers only; requests are checked, so it is not required here."""
        seen = set() if seen is None else seen
        if isinstance(node, list):
            for value in node:
                self._drop_read_only_required(value, seen)
            return
        if not isinstance(node, dict) or id(node) in seen:
            return
        seen.add(id(node))
        props = node.get("properties")
        if isinstance(node.get("required"), list) and isinstance(props, dict):
            def read_only(name: str) -> bool:
                try:
                    prop = self._resolve(props.get(name))
                except (KeyError, TypeError):
                    return False
                return isinstance(prop, dict) and prop.get("readOnly") is True

            node["required"] = [name for name in node["required"] if not read_only(name)]
            if not node["required"]:
                del node["required"]
        for value in node.values():
            self._drop_read_only_required(value, seen)

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


_validators: dict[tuple[str, str], OpenAPIValidator] = {}
_validators_lock = threading.Lock()


def cached_validator(spec_path: str, base_path: str = "") -> OpenAPIValidator:
    """One parsed validator per spec file and base path (parsing a large spec takes ~1 s)."""
    key = (str(Path(spec_path).resolve()), base_path)
    with _validators_lock:
        validator = _validators.get(key)
        if validator is None:
            validator = _validators[key] = OpenAPIValidator(spec_path, base_path=base_path)
        return validator


class Sandbox:
    """Base class of vendor emulators."""

    name: ClassVar[str] = ""
    vendor: ClassVar[str] = ""
    base_path: ClassVar[str] = ""
    """Where the API lives under the server root (e.g. "/api/v1")."""
    openapi_file: ClassVar[str | Path | None] = None
    auth_headers: ClassVar[tuple[str, ...]] = ("authorization",)
    """The request headers that carry the vendor's credentials (lower case); the
    sandbox's rate limiting tells callers apart by them."""

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
            cached_validator(str(self.openapi_file), self.base_path) if self.openapi_file else None
        )
        self.state: dict[str, Any] = self.initial_state()
        if self.state_path and self.state_path.exists() and self.state_path.stat().st_size:
            self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
        elif seed is not None:
            self.load_seed(seed)
            self.save()
        self._app: Starlette | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()

    # -- to override ---------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {}

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def load_seed(self, data: Any) -> None:
        """Load seed data in the vendor's own format (a parsed JSON document)."""
        raise NotImplementedError(f"the {self.name} sandbox takes no seed")

    def credential(self, request: Request) -> str:
        """The caller's identity for rate limiting (default: the ``auth_headers``)."""
        parts = [request.headers.get(h, "") for h in self.auth_headers]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    # -- what demos and `ledgerlink sandbox serve` ask for ------------------------------
    @classmethod
    def demo_seed(cls) -> Any:
        """Seed data for a demo, in the vendor's own format (None: starts empty)."""
        return None

    @classmethod
    def demo_rules(cls) -> list[dict[str, Any]]:
        """Booking rules (``[[pipelines.rules]]`` tables) a demo pipeline into this
        sandbox uses; a target's accounts are the operator's choice, so a demo says them."""
        return []

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The ``[connections.NAME]`` settings that reach this sandbox at ``server_url``
        (the server root, without ``base_path``), and the environment variables the
        settings' secrets name (``"${VAR}"``) with the sandbox's demo credentials."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} sandbox offers no demo connection")

    def describe(self) -> str:
        """One line on what the sandbox holds now (the demo prints it)."""
        counts = {k: len(v) for k, v in self.state.items() if isinstance(v, dict | list) and not k.startswith("_")}
        held = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
        return f"{self.vendor or self.name} sandbox holds {held}"

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
        from ._files import write_private

        # Customer data (mode 0600 from the start), written whole: a private temporary file renamed over it.
        write_private(self.state_path, json.dumps(self.state, default=str), what="sandbox state file", sync=False)

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

        if fault == "late" and scope["method"] in ("GET", "HEAD"):
            fault = None  # only a write can be finished late
        if fault == "late":
            self.stats["faults"] += 1
            entry["fault"] = "late"
            await asyncio.sleep(faults.late_seconds)

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
        validation: list[str] = []

        async def capture(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        scope = dict(scope)
        scope.setdefault("state", {})
        try:
            await self._app(scope, replay, capture)
        except Exception as exc:
            # A bug in the sandbox: log it on the entry, keep what was changed, and
            # let the server answer 500 (in-process, the test sees the exception).
            entry["status"] = 500
            entry["error"] = f"{type(exc).__name__}: {exc}"
            if scope["method"] != "GET":
                self.save()
            raise
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
            # Announce the full length, send less, then abort: the client sees a
            # connection closed mid-answer (drop: nothing of the body; truncate:
            # half of it). Raising _Drop makes the server close the connection
            # (its log line is filtered out); SyncASGITransport turns it into
            # httpx.RemoteProtocolError.
            part = b"" if fault == "drop" else body[: len(body) // 2]
            await send({"type": "http.response.start", "status": captured["status"],
                        "headers": captured["headers"]})
            await send({"type": "http.response.body", "body": part, "more_body": True})
            raise _Drop(fault)
        try:
            await send({"type": "http.response.start", "status": captured["status"], "headers": captured["headers"]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except Exception:  # noqa: BLE001 - a late answer: the client may be gone
            if fault != "late":
                raise

    def _pick_fault(self) -> str | None:
        f = self.faults
        roll = self._rng.random()
        for name, share in (
            ("429", f.rate_429), ("500", f.rate_500), ("503", f.rate_503),
            ("slow", f.rate_slow), ("late", f.rate_late), ("drop", f.rate_drop), ("truncate", f.rate_truncate),
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
            try:
                data = json.loads(await request.body())
            except ValueError:
                data = None
            if not isinstance(data, dict):
                return JSONResponse({"error": "send a JSON object of fault settings"}, status_code=400)
            try:
                faults = Faults.from_mapping(data, base=self.faults)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            self.faults = faults
            self._rng = random.Random(self.faults.seed)
        return JSONResponse({**asdict(self.faults), "stats": self.stats})

    async def _reset(self, request: Request) -> Response:
        self.state = self.initial_state()
        self.requests.clear()
        self._windows.clear()
        self.save()
        return JSONResponse({"ok": True})

    async def _seed(self, request: Request) -> Response:
        try:
            self.load_seed(await request.json())
        except (ValueError, KeyError, TypeError) as exc:  # a seed the sandbox cannot read: say why
            return JSONResponse({"error": f"the seed cannot be loaded: {type(exc).__name__}: {exc}"}, status_code=400)
        self.save()
        return JSONResponse({"ok": True})

    # -- in-process use ------------------------------------------------------
    def transport(self) -> httpx.BaseTransport:
        """A sync httpx transport that calls this app in-process.

        Every transport of one sandbox runs the app on the same event loop thread,
        so handlers stay atomic however many clients (and threads) call it."""
        with self._loop_lock:
            if self._loop is None:
                self._loop = _start_loop()
        return SyncASGITransport(self.app, loop=self._loop)

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)


class _InvalidJSON:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def _start_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True, name="sandbox-loop").start()
    return loop


class SyncASGITransport(httpx.BaseTransport):
    """Runs an ASGI app on a private event loop thread, for sync httpx clients.

    Honours the request's read timeout (``httpx.ReadTimeout``) and reports an
    answer shorter than its Content-Length as ``httpx.RemoteProtocolError``, as a
    real connection would.
    """

    def __init__(self, app: Callable[..., Any], *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = loop or _start_loop()

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
        except _Drop:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            ) from None
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

    config = uvicorn.Config(
        sandbox.app, host=host, port=port, log_level="warning", access_log=False, interface="asgi3",
    )
    server = uvicorn.Server(config)
    _quiet_server_log()
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
        # interface="asgi3": the app is a bound coroutine method, which uvicorn's
        # auto-detection takes for an ASGI2 app (every request would fail with 500).
        self._config = uvicorn.Config(
            sandbox.app, host=host, port=0, log_level="warning", access_log=False,
            interface="asgi3", timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(self._config)
        _quiet_server_log()
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.port = 0

    def __enter__(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the {self.sandbox.name or 'sandbox'} server could not start on {self.host}")
            if time.monotonic() > deadline:
                self._server.should_exit = True
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
