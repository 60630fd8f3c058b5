"""The status page of ``ledgerlink serve`` for operators, at ``/``.

Server-rendered with Jinja2 (``templates/``), no script at all, no build step. It
shows the tenants and their pipelines with their documents counted by state, a
chart of transfers per day (inline SVG with a table beside it), the documents of
one pipeline filtered by state with their reasons and a retry button, and the
documents changed or cancelled after transfer.

Sign-in: the admin token (every tenant) or a tenant's API token (that tenant only)
is posted once to ``/login``; the answer sets a cookie holding a random session id
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS), never the token. Sessions
live in this process's memory (a restart signs everyone out) for ``SESSION_HOURS``,
and end when the tenant's token is revoked. Every form that changes something
carries the session's CSRF token, and a POST from another origin is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ._errors import LedgerlinkError
from ._http import redact
from ._service import NotFound, Service
from ._tenants import unscoped

COOKIE = "ledgerlink_session"
SESSION_HOURS = 12
DAYS = 14
"""Days in the chart of transfers per day."""
PAGE = 50
TENANTS_SHOWN = 100
STATES = ("queued", "pending", "pushed", "skipped", "failed", "quarantined")
RETRYABLE = ("failed", "quarantined", "pending", "queued")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Session:
    admin: bool
    tenant: str | None
    key: str
    """The token's id (a tenant token) or "admin": the rate limit's key and the revocation check."""
    csrf: str
    expires: float
    flash: str | None = None


@dataclass
class Sessions:
    """Signed-in operators by the SHA-256 of their session id (the id is only in the cookie)."""

    hours: float = SESSION_HOURS
    _items: dict[str, Session] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def new(self, admin: bool, tenant: str | None, key: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._guard:
            for gone in [k for k, s in self._items.items() if s.expires < now]:
                del self._items[gone]
            self._items[self._key(sid)] = Session(admin, tenant, key, secrets.token_urlsafe(32),
                                                  now + self.hours * 3600)
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._guard:
            session = self._items.get(self._key(sid))
            if session is not None and session.expires < time.time():
                del self._items[self._key(sid)]
                return None
            return session

    def end(self, sid: str | None) -> None:
        if sid:
            with self._guard:
                self._items.pop(self._key(sid), None)


@dataclass
class PipelineView:
    tenant: str
    name: str
    """The tenant's own (unscoped) name."""
    scoped: str
    source: str
    target: str
    inbox: str | None
    counts: dict[str, int] = field(default_factory=dict)
    last_run: str = ""
    """When the pipeline's last run ended (or began, if it has not ended), UTC."""
    last_outcome: str = ""
    oldest_pending: str = ""
    """The oldest document still pending (a write whose outcome is being settled)."""

    @property
    def value(self) -> str:
        return f"{self.tenant}:{self.name}"


def _templates() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("ledgerlink", "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    return env


class StatusData:
    """What the page shows, read from the service's database."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def tenants(self, session: Session, prefix: str = "") -> tuple[list[str], bool]:
        """The tenants this session sees (at most TENANTS_SHOWN; True: more were left out)."""
        if not session.admin:
            return ([session.tenant] if session.tenant and self.service.exists(session.tenant) else []), False
        names = [n for n in self.service.tenant_names() if n.startswith(prefix)]
        return names[:TENANTS_SHOWN], len(names) > TENANTS_SHOWN

    def pipelines(self, tenants: list[str]) -> list[PipelineView]:
        views: list[PipelineView] = []
        for tenant in tenants:
            try:
                config = self.service.config(tenant)
            except LedgerlinkError:
                continue
            for pipeline in config.pipelines:
                source = config.connections[pipeline.source]
                inbox = getattr(source.settings, "inbox", None) if source.plugin == "inbox" else None
                views.append(PipelineView(tenant, unscoped(tenant, pipeline.name), pipeline.name,
                                          unscoped(tenant, pipeline.source), unscoped(tenant, pipeline.target), inbox))
        self._count(views)
        return views

    def _count(self, views: list[PipelineView]) -> None:
        from sqlalchemy import bindparam, text

        if not views:
            return
        by_name = {v.scoped: v for v in views}
        with self.service.ledger.engine.connect() as db:
            rows = db.execute(text(
                "SELECT pipeline, state, COUNT(*) AS n, SUM(CASE WHEN changed IS NULL THEN 0 "
                "WHEN changed LIKE 'cancelled%' THEN 0 ELSE 1 END) AS changed, "
                "SUM(CASE WHEN changed LIKE 'cancelled%' THEN 1 ELSE 0 END) AS cancelled "
                "FROM documents WHERE pipeline IN :names GROUP BY pipeline, state").bindparams(
                bindparam("names", expanding=True)), {"names": list(by_name)})
            for r in rows:
                counts = by_name[r.pipeline].counts
                counts[r.state] = counts.get(r.state, 0) + int(r.n)
                counts["changed"] = counts.get("changed", 0) + int(r.changed or 0)
                counts["cancelled"] = counts.get("cancelled", 0) + int(r.cancelled or 0)
            for r in db.execute(text(
                    "SELECT pipeline, MIN(updated_at) AS oldest FROM documents WHERE state = 'pending' AND pipeline "
                    "IN :names GROUP BY pipeline").bindparams(bindparam("names", expanding=True)),
                    {"names": list(by_name)}):
                by_name[r.pipeline].oldest_pending = _when(r.oldest)
            for pipeline, run in self.service.ledger.last_runs().items():
                if pipeline in by_name:
                    by_name[pipeline].last_run = _when(run.finished_at or run.started_at)
                    by_name[pipeline].last_outcome = unscoped(by_name[pipeline].tenant,
                                                              (run.outcome or "running"))[:60]
            for view in views:
                if view.inbox:
                    queued = db.execute(text(
                        "SELECT COUNT(*) FROM inbox i WHERE i.inbox = :inbox AND NOT EXISTS (SELECT 1 FROM documents d "
                        "WHERE d.pipeline = :p AND d.source_ref = i.source_ref)"), {"inbox": view.inbox,
                                                                                   "p": view.scoped}).scalar()
                    view.counts["queued"] = int(queued or 0)

    def per_day(self, views: list[PipelineView], today: date) -> list[tuple[date, int]]:
        """Documents pushed per day (UTC), the last DAYS days, oldest first."""
        from sqlalchemy import bindparam, text

        start = today - timedelta(days=DAYS - 1)
        counts = {start + timedelta(days=i): 0 for i in range(DAYS)}
        if views:
            engine = self.service.ledger.engine
            day = "substr(pushed_at, 1, 10)" if engine.dialect.name == "sqlite" else "CAST(pushed_at AS DATE)"
            with engine.connect() as db:
                rows = db.execute(text(
                    f"SELECT {day} AS day, COUNT(*) AS n FROM documents WHERE pipeline IN :names "
                    f"AND pushed_at >= :start GROUP BY {day}").bindparams(bindparam("names", expanding=True)),
                    {"names": [v.scoped for v in views],
                     "start": datetime.combine(start, datetime.min.time())})
                for r in rows:
                    key = r.day if isinstance(r.day, date) else date.fromisoformat(str(r.day)[:10])
                    if key in counts:
                        counts[key] += int(r.n)
        return sorted(counts.items())

    def after_transfer(self, views: list[PipelineView], cancelled: bool) -> list[dict[str, Any]]:
        from sqlalchemy import bindparam, text

        if not views:
            return []
        by_name = {v.scoped: v for v in views}
        test = "LIKE" if cancelled else "NOT LIKE"
        with self.service.ledger.engine.connect() as db:
            rows = db.execute(text(
                "SELECT pipeline, source_ref, number, target_number, target_id, changed, updated_at FROM documents "
                f"WHERE pipeline IN :names AND changed IS NOT NULL AND changed {test} 'cancelled%' "
                "ORDER BY updated_at DESC LIMIT 100").bindparams(bindparam("names", expanding=True)),
                {"names": list(by_name)}).all()
        out = []
        for r in rows:
            view = by_name[r.pipeline]
            out.append({"tenant": view.tenant, "pipeline": view.name, "id": r.source_ref, "number": r.number,
                        "target": r.target_number or r.target_id, "changed": unscoped(view.tenant, r.changed),
                        "updated_at": _when(r.updated_at)})
        return out


def _when(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return ""


def chart(days: list[tuple[date, int]]) -> dict[str, Any]:
    """Bars for the SVG: geometry computed here, so the template only draws."""
    width, height, top, bottom, left = 560, 180, 16, 28, 32
    peak = max([n for _, n in days] + [1])
    slot = (width - left) / max(1, len(days))
    bars = []
    for index, (day, n) in enumerate(days):
        h = (height - top - bottom) * n / peak
        x = left + index * slot + slot * 0.15
        bars.append({"x": round(x, 1), "y": round(height - bottom - h, 1), "w": round(slot * 0.7, 1),
                     "h": round(h, 1), "n": n, "day": day.isoformat(), "label": day.strftime("%d.%m"),
                     "lx": round(x + slot * 0.35, 1)})
    return {"width": width, "height": height, "base": height - bottom, "left": left, "peak": peak, "bars": bars,
            "total": sum(n for _, n in days), "top": top}


def add_pages(app: FastAPI, service: Service, authenticate: Callable[[str], Any], limiter: Any,
              ApiError: Callable[..., Exception]) -> None:  # noqa: N803 (the server's error class, passed down)
    """The status page's routes (left out of the OpenAPI document: they answer HTML). ``ApiError``
    is ``_server``'s (passed, so this module does not import the one that imports it)."""
    sessions = Sessions()
    env = _templates()
    data = StatusData(service)
    app.state.sessions = sessions

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def same_origin(request: Request) -> None:
        """A POST from a page of another origin is refused (the cookie is SameSite=Strict as well)."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise ApiError(403, "forbidden", "a form of another site cannot post here")

    def limited(key: str) -> None:
        wait = limiter.take(key)
        if wait > 0:
            raise ApiError(429, "rate_limited", f"too many requests; try again in {wait:.1f} s",
                           {"Retry-After": str(max(1, round(wait)))})

    def current(request: Request) -> Session | None:
        session = sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None
        if not session.admin and not service.tenants.token_active(session.key):
            sessions.end(request.cookies.get(COOKIE))  # the token was revoked: so is its session
            return None
        limited(session.key)
        return session

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def checked(session: Session | None, fields: dict[str, str]) -> Session:
        if session is None:
            raise ApiError(401, "unauthorized", "sign in at /login first")
        if not hmac.compare_digest(fields.get("csrf", "").encode(), session.csrf.encode()):
            raise ApiError(403, "forbidden", "the form is out of date or not from this page; reload it and try again")
        return session

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        if current(request) is not None:
            return RedirectResponse("/", status_code=303)
        return render("login.html", title="Sign in")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        same_origin(request)
        limited("login:" + (request.client.host if request.client else "?"))
        token = (await form(request)).get("token", "").strip()
        who = authenticate(token) if token else None
        if who is None:
            return render("login.html", status=401, title="Sign in", error="That token is unknown or revoked.")
        sid = sessions.new(who.admin, who.tenant, who.key)
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(COOKIE, sid, max_age=int(sessions.hours * 3600), path="/", httponly=True,
                          samesite="strict", secure=request.url.scheme == "https")
        return answer

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        same_origin(request)
        checked(current(request), await form(request))
        sessions.end(request.cookies.get(COOKIE))
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    @app.get("/", include_in_schema=False)
    def status_page(request: Request, pipeline: str = "", state: str = "", tenants: str = "",
                    cursor: str = "") -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        names, more = data.tenants(session, tenants.strip())
        views = data.pipelines(names)
        selected = next((v for v in views if v.value == pipeline), views[0] if views and not pipeline else None)
        state = state if state in STATES else ""
        documents: list[dict[str, Any]] = []
        next_cursor = None
        problem = None
        if pipeline and selected is None:
            problem = f"no pipeline {pipeline!r} among the tenants shown"
        if selected is not None:
            try:
                documents, after = service.documents(selected.tenant, selected.name, state=state or None,
                                                     after=int(cursor) if cursor.isdigit() else 0, limit=PAGE)
            except (NotFound, LedgerlinkError) as exc:
                problem = unscoped(selected.tenant, redact(str(exc)))
            else:
                if after is not None:
                    next_cursor = "?" + urlencode({"pipeline": selected.value, "state": state, "tenants": tenants,
                                                   "cursor": after})
            for d in documents:
                d["updated"] = _when(d.get("updated_at"))
        flash, session.flash = session.flash, None
        return render(
            "status.html", title="Status", session=session, views=views, more_tenants=more, tenants_filter=tenants,
            selected=selected, state=state, states=STATES, documents=documents, next_cursor=next_cursor,
            retryable=RETRYABLE, problem=problem, flash=flash,
            chart=chart(data.per_day(views, datetime.now(UTC).date())),
            changed=data.after_transfer(views, cancelled=False), cancelled=data.after_transfer(views, cancelled=True))

    @app.post("/retry", include_in_schema=False)
    async def retry(request: Request) -> Response:
        same_origin(request)
        fields = await form(request)
        session = checked(current(request), fields)
        tenant, _, pipeline = fields.get("pipeline", "").partition(":")
        document = fields.get("document", "")
        if not session.admin and tenant != session.tenant:
            raise ApiError(403, "forbidden", "this session is not for this tenant")
        try:
            service.retry(tenant, pipeline, document)
        except NotFound as exc:
            raise ApiError(404, "not_found", unscoped(tenant, str(exc))) from None
        session.flash = f"{document}: retry queued."
        back = urlencode({"pipeline": fields.get("pipeline", ""), "state": fields.get("state", ""),
                          "tenants": fields.get("tenants", "")})
        return RedirectResponse(f"/?{back}", status_code=303)


__all__ = ["COOKIE", "Sessions", "StatusData", "add_pages", "chart"]
