"""``ledgerlink serve``: the HTTP API for host applications (FastAPI on uvicorn).

Install with the extra: ``pip install 'ledgerlink[server]'``. The OpenAPI document is
at ``/openapi.json``; the request and answer bodies are pydantic models, the posted
documents the canonical :class:`~ledgerlink.Document` record itself. Every error
is JSON ``{"code": ..., "message": ...}``: a stable code and one line, never a
traceback or a secret.

Auth: ``Authorization: Bearer TOKEN``; the admin token (``LEDGERLINK_ADMIN_TOKEN``
or the file in ``LEDGERLINK_ADMIN_TOKEN_FILE``) manages tenants; a tenant's API
tokens (made by the admin, stored hashed, revocable) reach only that tenant. Tokens
are compared in constant time; request bodies are limited in size; each token has a
rate limit.
"""


import hashlib
import hmac
import logging
import os
import threading
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ._errors import ConfigError, LedgerlinkError
from ._http import redact
from ._locks import PipelineBusy
from ._records import Customer, Document
from ._service import Conflict, NotFound, Service, parse_documents
from ._tenants import DEFAULT_TENANT, check_name, unscoped
from ._version import __version__

log = logging.getLogger("ledgerlink.server")
ADMIN_ENV = "LEDGERLINK_ADMIN_TOKEN"
ADMIN_FILE_ENV = "LEDGERLINK_ADMIN_TOKEN_FILE"
MAX_BODY = 4 * 1024 * 1024
"""Largest request body (bytes); a bulk backfill is split by the host into posts of this size."""
RATE = 20.0
"""Requests per second each token may make on average ..."""
BURST = 200
"""... and in a burst."""
PAGE = 100


# -- errors ---------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class ErrorBody(BaseModel):
    code: str = Field(description="stable: unauthorized, forbidden, not_found, invalid_config, invalid_request, "
                      "not_an_inbox, conflict, too_large, rate_limited, busy, internal")
    message: str = Field(description="one line, for a person")


def _line(text: str) -> str:
    return " ".join(redact(str(text)).split())[:1000]


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": _line(message)}, status_code=status, headers=headers)


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in ((400, "invalid request"), (401, "no or unknown token"), (403, "not this token's tenant"),
                         (404, "not found"), (409, "conflict"), (413, "too large"), (422, "invalid"),
                         (429, "rate limited"))
}


# -- answers ----------------------------------------------------------------------------
class TenantConfig(BaseModel):
    """A tenant's connections and pipelines: ``ledgerlink.toml`` as JSON (see ``ledgerlink config schema``).
    Secret settings are plain strings here, sent once: stored encrypted, never returned."""

    model_config = {"extra": "allow"}
    connections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pipelines: list[dict[str, Any]] = Field(default_factory=list)


class TenantView(BaseModel):
    name: str
    version: int
    connections: dict[str, dict[str, Any]]
    pipelines: list[dict[str, Any]]
    secrets_set: dict[str, list[str]] = Field(description="per connection, the names of the secrets stored (never "
                                              "their values)")


class TokenNew(BaseModel):
    label: str | None = Field(None, max_length=200)


class TokenMade(BaseModel):
    id: str
    token: str = Field(description="shown once; only its hash is kept")


class TokenView(BaseModel):
    id: str
    label: str | None
    created_at: str | None
    revoked: bool


class CheckAnswer(BaseModel):
    ok: bool
    message: str


class MatchRequest(BaseModel):
    customers: list[Customer] | None = Field(None, description="the host's customers; none: the pipeline's source "
                                             "lists them")
    dry_run: bool = False


class MatchRow(BaseModel):
    source_id: str
    name: str
    outcome: Literal["linked", "already_linked", "ambiguous", "no_match"]
    customer_number: str | None = None
    matcher: str | None = None
    candidates: list[str] = Field(default_factory=list)


class MatchAnswerBody(BaseModel):
    dry_run: bool
    customers: list[MatchRow]


class Received(BaseModel):
    id: str
    received: Literal["new", "same", "changed"] = Field(description="same: this id with this body was here already")
    url: str


class ReceivedAnswer(BaseModel):
    documents: list[Received]


class TargetRefView(BaseModel):
    id: str
    number: str | None = None


class HistoryEntry(BaseModel):
    at: str
    event: str
    target_ref: str | None = None
    outcome: str


class DocumentStatus(BaseModel):
    id: str
    state: str = Field(description="queued, pending, pushed, skipped, failed, quarantined")
    reason: str | None = Field(None, description='why it is not pushed, or for a pushed one its note; '
                               '"payment not booked: ..." when the target refused its payment')
    payment_refused: bool = Field(False, description="pushed, but the target refused its payment for a reason a "
                                  "person must fix; POST .../retry books it once fixed")
    number: str | None = None
    target: TargetRefView | None = None
    target_status: str | None = None
    changed: str | None = Field(None, description='"changed after transfer: ..." or "cancelled after transfer"')
    updated_at: str | None = None


class DocumentDetail(DocumentStatus):
    history: list[HistoryEntry] = Field(default_factory=list)


class DocumentPage(BaseModel):
    documents: list[DocumentStatus]
    next_cursor: str | None = None


class Queued(BaseModel):
    queued: bool = True


class Rotated(BaseModel):
    rotated: int


class EventsConfig(BaseModel):
    """The tenant's event webhook: every change of a document's state is POSTed there, signed."""

    url: str = Field(max_length=2000, pattern=r"^https?://[^\s/?#]+[^\s]*$",
                     description="http(s) URL that receives the events")
    secret: str | None = Field(None, min_length=16, max_length=500, description="the HMAC-SHA256 signing secret "
                               "(sent once, stored encrypted, never returned); left out: the stored one stays")


class EventsView(BaseModel):
    url: str
    secret_set: bool
    delivered: int
    undelivered: int = Field(description="waiting or being retried")
    given_up: int
    last_error: str | None = Field(None, description="the last failed delivery of an undelivered event")


DocumentsBody = Annotated[Document | list[Document], Body(description="one canonical document or a list of them; "
                                                                        "source_ref is the host's id (idempotency key)")]


# -- guards -----------------------------------------------------------------------------
class RateLimiter:
    """A token bucket per key (token id)."""

    def __init__(self, rate: float = RATE, burst: int = BURST) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._guard = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a request is allowed again."""
        now = time.monotonic()
        with self._guard:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class BodyLimit:
    """Refuses a body over ``limit`` bytes with 413, whether declared or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _error(413, "too_large", f"the body is larger than {self.limit} bytes")(scope, receive, send)
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, "too_large", f"the body is larger than {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def admin_token() -> str | None:
    value = os.environ.get(ADMIN_ENV, "").strip()
    if value:
        return value
    path = os.environ.get(ADMIN_FILE_ENV, "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError as exc:
            raise ConfigError(f"{ADMIN_FILE_ENV}: cannot read {path} ({exc.strerror})") from None
    return None


class Caller:
    def __init__(self, admin: bool, tenant: str | None, key: str) -> None:
        self.admin, self.tenant, self.key = admin, tenant, key


class WebhookMount:
    """Paths under ``/webhooks/`` go to the source webhooks' own app (its secret, limits and
    answers, as ``serve -p`` serves them; not in the OpenAPI document); the rest to the API."""

    def __init__(self, app: Any, webhooks: Any) -> None:
        self.app, self.webhooks = app, webhooks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/webhooks/"):
            await self.webhooks(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(service: Service, *, admin: str | None = None, max_body: int = MAX_BODY,
               rate: float = RATE, burst: int = BURST, webhooks: Any = None) -> Any:
    """The ASGI app: FastAPI behind the body-size limit; ``webhooks``: the ASGI app of the
    source webhooks (``ledgerlink -c FILE serve``), mounted at ``/webhooks/``."""
    admin_secret = admin if admin is not None else admin_token()
    admin_digest = hashlib.sha256(admin_secret.encode()).digest() if admin_secret else None
    limiter = RateLimiter(rate, burst)
    app = FastAPI(title="ledgerlink", version=__version__, description=(__doc__ or "").split("\n\n")[0],
                  responses=ERRORS)
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, "invalid_request", f"{where + ': ' if where else ''}{first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "invalid_request"}
        return _error(exc.status_code, codes.get(exc.status_code, "invalid_request"), str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__,
                  redact(str(exc)))
        return _error(500, "internal", "internal error; the service log has the details")

    def authenticate(token: str) -> Caller | None:
        """The admin or a tenant's valid token; compared in constant time."""
        if admin_digest is not None and hmac.compare_digest(hashlib.sha256(token.encode()).digest(), admin_digest):
            return Caller(True, None, "admin")
        owner = service.tenants.token_tenant(token)
        return None if owner is None else Caller(False, owner[0], owner[1])

    def caller(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer TOKEN",
                           {"WWW-Authenticate": "Bearer"})
        found = authenticate(token)
        if found is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
        wait = limiter.take(found.key)
        if wait > 0:
            raise ApiError(429, "rate_limited", f"too many requests for this token; try again in {wait:.1f} s",
                           {"Retry-After": str(max(1, round(wait)))})
        return found

    def need_admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not who.admin:
            raise ApiError(403, "forbidden", "this needs the admin token")
        return who

    def tenant_of(tenant: str, who: Annotated[Caller, Depends(caller)]) -> str:
        if not who.admin and who.tenant != tenant:
            raise ApiError(403, "forbidden", "this token is not for this tenant")
        if not service.exists(tenant):
            raise ApiError(404, "not_found", f"no tenant {tenant!r}")
        return tenant

    Admin = Annotated[Caller, Depends(need_admin)]
    Tenant = Annotated[str, Depends(tenant_of)]

    def call(tenant: str, what: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return what(*args, **kwargs)
        except NotFound as exc:
            raise ApiError(404, "not_found", unscoped(tenant, str(exc))) from None
        except Conflict as exc:
            raise ApiError(409, "not_an_inbox", unscoped(tenant, str(exc))) from None
        except PipelineBusy as exc:
            raise ApiError(409, "busy", unscoped(tenant, str(exc)), {"Retry-After": "30"}) from None
        except ConfigError as exc:
            raise ApiError(422, "invalid_config", unscoped(tenant, str(exc))) from None
        except LedgerlinkError as exc:
            raise ApiError(502, "failed", unscoped(tenant, str(exc))) from None

    # -- endpoints ---------------------------------------------------------------------
    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "busy": service.workers.busy()}

    @app.get("/metrics", tags=["service"], include_in_schema=False)
    def metrics() -> Response:
        """Prometheus metrics of this process (documents by outcome, vendor requests and
        429s): no tenant, document or secret appears in them."""
        from ._metrics import AVAILABLE

        if not AVAILABLE:
            raise ApiError(404, "not_found", "metrics need prometheus_client: pip install 'ledgerlink[celery]'")
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.put("/v1/tenants/{tenant}", tags=["tenants"], response_model=TenantView)
    def put_tenant(tenant: str, body: TenantConfig, _: Admin, response: Response) -> Any:
        try:
            check_name(tenant)
        except ConfigError as exc:
            raise ApiError(422, "invalid_config", str(exc)) from None
        created = call(tenant, service.put_tenant, tenant, body.model_dump())
        response.status_code = 201 if created else 200
        return service.tenants.public(tenant)

    @app.get("/v1/tenants/{tenant}", tags=["tenants"], response_model=TenantView)
    def get_tenant(tenant: Tenant) -> Any:
        return service.public(tenant)

    @app.delete("/v1/tenants/{tenant}", tags=["tenants"], status_code=204)
    def delete_tenant(tenant: str, _: Admin) -> Response:
        if tenant == DEFAULT_TENANT and service.default is not None:
            raise ApiError(409, "conflict", "tenant 'default' is the config file the service was started with; it stays")
        if not service.delete_tenant(tenant):
            raise ApiError(404, "not_found", f"no tenant {tenant!r}")
        return Response(status_code=204)

    @app.post("/v1/tenants/{tenant}/tokens", tags=["tenants"], response_model=TokenMade, status_code=201)
    def new_token(tenant: str, _: Admin, body: TokenNew | None = None) -> Any:
        if not service.exists(tenant):
            raise ApiError(404, "not_found", f"no tenant {tenant!r}")
        ident, token = service.tenants.new_token(tenant, body.label if body else None)
        return {"id": ident, "token": token}

    @app.get("/v1/tenants/{tenant}/tokens", tags=["tenants"], response_model=list[TokenView])
    def tokens(tenant: str, _: Admin) -> Any:
        return service.tenants.tokens(tenant)

    @app.delete("/v1/tenants/{tenant}/tokens/{token_id}", tags=["tenants"], status_code=204)
    def revoke(tenant: str, token_id: str, _: Admin) -> Response:
        if not service.tenants.revoke(tenant, token_id):
            raise ApiError(404, "not_found", f"tenant {tenant!r} has no active token {token_id!r}")
        return Response(status_code=204)

    @app.post("/v1/admin/rotate-secrets", tags=["service"], response_model=Rotated)
    def rotate(_: Admin) -> Any:
        return {"rotated": service.rotate_secrets()}

    @app.put("/v1/tenants/{tenant}/events", tags=["events"], response_model=EventsView)
    def put_events(tenant: str, body: EventsConfig, _: Admin) -> Any:
        """Set the webhook that receives the tenant's events (the admin token: the service will call this URL)."""
        if not service.exists(tenant):
            raise ApiError(404, "not_found", f"no tenant {tenant!r}")
        if not service.events.set_target(tenant, body.url, body.secret):
            raise ApiError(422, "invalid_request", "secret: the first time, send the signing secret (16-500 "
                           "characters)")
        return service.events.view(tenant)

    @app.get("/v1/tenants/{tenant}/events", tags=["events"], response_model=EventsView)
    def get_events(tenant: Tenant) -> Any:
        view = service.events.view(tenant)
        if view is None:
            raise ApiError(404, "not_found", f"tenant {tenant!r} has no event webhook")
        return view

    @app.delete("/v1/tenants/{tenant}/events", tags=["events"], status_code=204)
    def delete_events(tenant: str, _: Admin) -> Response:
        if not service.events.delete_target(tenant):
            raise ApiError(404, "not_found", f"tenant {tenant!r} has no event webhook")
        return Response(status_code=204)

    @app.post("/v1/tenants/{tenant}/connections/{connection}/check", tags=["host calls"], response_model=CheckAnswer)
    def check(tenant: Tenant, connection: str) -> Any:
        ok, message = call(tenant, service.check, tenant, connection)
        return {"ok": ok, "message": _line(message)}

    @app.post("/v1/tenants/{tenant}/pipelines/{pipeline}/match-customers", tags=["host calls"],
              response_model=MatchAnswerBody)
    def match(tenant: Tenant, pipeline: str, body: MatchRequest | None = None) -> Any:
        body = body or MatchRequest()
        rows = call(tenant, service.match_customers, tenant, pipeline, body.customers, body.dry_run)
        return {"dry_run": body.dry_run, "customers": [r.__dict__ for r in rows]}

    def _receive(request: Request, tenant: str, pipeline: str, body: Any) -> JSONResponse:
        documents = body if isinstance(body, list) else [body]
        answers = call(tenant, service.receive, tenant, pipeline, documents)
        base = str(request.url_for("document_status", tenant=tenant, pipeline=pipeline, document_id="_"))[:-1]
        return JSONResponse({"documents": [{"id": ref, "received": state, "url": base + ref}
                                           for ref, state in answers]}, status_code=202)

    @app.post("/v1/tenants/{tenant}/pipelines/{pipeline}/documents", tags=["host calls"], status_code=202,
              response_model=ReceivedAnswer)
    def post_documents(request: Request, tenant: Tenant, pipeline: str, body: DocumentsBody) -> Any:
        return _receive(request, tenant, pipeline, body)

    @app.post("/v1/tenants/{tenant}/pipelines/{pipeline}/backfill", tags=["host calls"], status_code=202,
              response_model=ReceivedAnswer)
    def backfill(request: Request, tenant: Tenant, pipeline: str,
                 body: Annotated[list[Document], Body(max_length=5000)]) -> Any:
        """Older documents in bulk (the host's "transfer these" action): the same as posting them."""
        return _receive(request, tenant, pipeline, body)

    @app.get("/v1/tenants/{tenant}/pipelines/{pipeline}/documents", tags=["status"], response_model=DocumentPage)
    def list_documents(tenant: Tenant, pipeline: str, state: str | None = None, since: datetime | None = None,
                       cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = PAGE) -> Any:
        items, after = call(tenant, service.documents, tenant, pipeline, state=state, since=since,
                            after=int(cursor or 0), limit=limit)
        return {"documents": items, "next_cursor": None if after is None else str(after)}

    @app.get("/v1/tenants/{tenant}/pipelines/{pipeline}/documents/{document_id}", tags=["status"],
             response_model=DocumentDetail, name="document_status")
    def get_document(tenant: Tenant, pipeline: str, document_id: str) -> Any:
        return call(tenant, service.document, tenant, pipeline, document_id)

    @app.post("/v1/tenants/{tenant}/pipelines/{pipeline}/documents/{document_id}/retry", tags=["status"],
              response_model=Queued, status_code=202)
    def retry(tenant: Tenant, pipeline: str, document_id: str) -> Any:
        call(tenant, service.retry, tenant, pipeline, document_id)
        return {"queued": True}

    from ._pages import add_pages

    add_pages(app, service, authenticate, limiter, ApiError)
    limited = BodyLimit(app, max_body)
    return (limited if webhooks is None else WebhookMount(limited, webhooks)), app


__all__ = ["create_app", "parse_documents"]
