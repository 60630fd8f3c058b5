"""A Cobot emulator for tests and demos: API 1 and API 2 on one server.

- API 1 (real: ``https://<subdomain>.cobot.me/api``) is served under ``/api`` for
  the one space the sandbox holds: ``GET /api/memberships``,
  ``GET|PUT /api/memberships/{id}``, ``GET|POST /api/subscriptions``,
  ``DELETE /api/subscriptions/{id}``.
- API 2 (real: ``https://api.cobot.me``) is served under ``/v2``: ``GET /v2/user``,
  ``GET /v2/spaces/{spaceId}/invoices`` (paging, date filter),
  ``GET /v2/invoices/{id}``; requests are validated against Cobot's OpenAPI file
  (``spec/cobot-api2-openapi.yml``) and seeded invoices against its ``-invoice-data``
  schema.
- ``POST /__sandbox__/webhook`` with ``{"event": "confirmed_membership",
  "membership_id": "..."}`` (or ``"invoice_id"``) makes the sandbox POST Cobot's
  webhook payload ``{"url": "<base>/api/memberships/<id>"}`` to every active
  subscription of that event; ``confirmed_membership`` also confirms the membership.

Seed format (JSON)::

    {"space": {"id": "...", "subdomain": "co-up", "name": "co.up", "countryCode": "DE"},
     "tokens": {"<token>": {"email": "...", "scopes": ["read_invoices", ...], "admin": true}},
     "memberships": [<API 1 membership objects>],
     "invoices": [<API 2 invoice resources: {"id", "type": "invoices", "attributes", "relationships"}>],
     "subscriptions": [<API 1 subscription objects>]}

Every key is optional; ``tokens`` defaults to the demo token with every scope.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import httpx
from ledgerlink import Sandbox
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

DEMO_TOKEN = "cobot-demo-token"
ALL_SCOPES = [
    "read_user", "read_spaces", "read_memberships", "write_memberships", "read_invoices",
    "read_subscriptions", "write_subscriptions",
]
JSONAPI = "application/vnd.api+json"
SPEC = Path(__file__).parent / "spec" / "cobot-api2-openapi.yml"
MEMBERSHIP_WRITABLE = {"customer_number", "name", "email", "phone", "billing_emails"}


def _now_api1() -> str:
    return datetime.now(UTC).strftime("%Y/%m/%d %H:%M:%S +0000")


class CobotSandbox(Sandbox):
    """Cobot's API 1 (``/api``) and API 2 (``/v2``) for one space, in-process or on loopback."""

    name: ClassVar[str] = "cobot"
    vendor: ClassVar[str] = "Cobot"
    base_path: ClassVar[str] = "/v2"
    """API 2's base; API 1 is served under ``/api`` beside it (the real ones are two hosts)."""
    openapi_file: ClassVar[str | Path | None] = SPEC
    auth_headers: ClassVar[tuple[str, ...]] = ("authorization",)
    """Both APIs take the OAuth bearer token in ``Authorization``."""

    webhook_transport: httpx.AsyncBaseTransport | None = None
    """Transport for webhook deliveries (tests: ``httpx.MockTransport``); None: network."""

    def __init__(self, *, seed: Any = None, demo: bool = False, **kwargs: Any) -> None:
        if seed is None and demo:
            seed = self.demo_seed()
        super().__init__(seed=seed, **kwargs)

    @property
    def app(self) -> Any:
        # The kit's app is a bound method, which uvicorn takes for an ASGI 2 app;
        # a plain coroutine function is recognised as ASGI 3 (loopback servers).
        inner = super().app

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            await inner(scope, receive, send)

        return asgi

    # -- state -----------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {
            "space": {
                "id": "99da6cb66b5e6b39007690854fd66df9", "subdomain": "co-up", "name": "co.up",
                "countryCode": "DE",
            },
            "tokens": {DEMO_TOKEN: {"id": "d9a99a71ac8df98d29de357180d273d3", "email": "admin@co-up.example",
                                    "scopes": list(ALL_SCOPES), "admin": True}},
            "memberships": {},
            "invoices": {},
            "subscriptions": {},
            "deliveries": [],
        }

    def load_seed(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("the Cobot seed is a JSON object (see ledgerlink_cobot.sandbox)")
        unknown = set(data) - {"space", "tokens", "memberships", "invoices", "subscriptions"}
        if unknown:
            raise ValueError(f"unknown keys in the Cobot seed: {sorted(unknown)}")
        if "space" in data:
            self.state["space"].update(data["space"])
        if "tokens" in data:
            self.state["tokens"] = copy.deepcopy(data["tokens"])
        for m in data.get("memberships", []):
            self.state["memberships"][str(m["id"])] = copy.deepcopy(m)
        problems = []
        for inv in data.get("invoices", []):
            resource = copy.deepcopy(inv)
            resource.setdefault("type", "invoices")
            rel = resource.setdefault("relationships", {})
            rel.setdefault("space", {"data": {"id": self.state["space"]["id"], "type": "spaces"}})
            rel.setdefault("paymentMethods", {"links": {"related": f"https://api.cobot.me/invoices/{resource['id']}/payment_methods"}})
            problems += [f"invoice {resource['id']}: {p}" for p in self.invoice_problems(resource)]
            self.state["invoices"][str(resource["id"])] = resource
        for s in data.get("subscriptions", []):
            self.state["subscriptions"][str(s["id"])] = copy.deepcopy(s)
        if problems:
            raise ValueError("seed invoices do not follow Cobot's schema: " + "; ".join(problems[:5]))

    def invoice_problems(self, resource: dict[str, Any]) -> list[str]:
        """Problems of an invoice resource against the OpenAPI ``-invoice-data`` schema."""
        if self.validator is None:
            return []
        from jsonschema import Draft7Validator

        spec = self.validator.spec
        schema = {"$ref": "#/components/schemas/-invoice-data", "components": spec["components"]}
        validator = getattr(self, "_invoice_validator", None)
        if validator is None:
            validator = self._invoice_validator = Draft7Validator(schema)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or 'invoice'}: {e.message[:160]}"
            for e in validator.iter_errors(resource)
        ]

    # -- errors and auth -------------------------------------------------------
    def error_response(self, status: int, message: str) -> Response:
        """API 2 (JSON:API) error shape; API 1 answers use :meth:`api1_error`."""
        return JSONResponse(
            {"errors": [{"status": str(status), "title": message, "detail": message}]},
            status_code=status, media_type=JSONAPI,
        )

    def api1_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def _auth(self, request: Request, scope: str, *, api: int, admin: bool = True) -> Response | None:
        """None when the bearer token may do this; else Cobot's 401/403 answer."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        user = self.state["tokens"].get(token)
        err = self.error_response if api == 2 else self.api1_error
        if user is None:
            response = err(401, "invalid or expired access token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="Cobot", error="invalid_token"'
            return response
        if scope not in user.get("scopes", []):
            response = err(403, f"insufficient scope: this action requires the scope {scope}")
            response.headers["WWW-Authenticate"] = (
                f'Bearer realm="Cobot", error="insufficient_scope", scope="{scope}"'
            )
            return response
        if admin and not user.get("admin", False):
            return err(403, "You must be an admin of this space to do this.")
        return None

    # -- routes ----------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/__sandbox__/webhook", self.deliver_webhook, methods=["POST"]),
            Route("/api/memberships", self.list_memberships, methods=["GET"]),
            Route("/api/memberships/{id}", self.membership, methods=["GET", "PUT"]),
            Route("/api/subscriptions", self.subscriptions, methods=["GET", "POST"]),
            Route("/api/subscriptions/{id}", self.delete_subscription, methods=["DELETE"]),
            Route("/v2/user", self.user, methods=["GET"]),
            Route("/v2/spaces/{space_id}/invoices", self.list_invoices, methods=["GET"]),
            Route("/v2/invoices/{id}", self.invoice, methods=["GET"]),
        ]

    # API 1 ---------------------------------------------------------------------
    async def list_memberships(self, request: Request) -> Response:
        if denied := self._auth(request, "read_memberships", api=1):
            return denied
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        current = [
            m for m in self.state["memberships"].values()
            if not m.get("canceled_to") or str(m["canceled_to"]).replace("-", "/")[:10] >= today
        ]
        return JSONResponse(current)

    async def membership(self, request: Request) -> Response:
        scope = "read_memberships" if request.method == "GET" else "write_memberships"
        if denied := self._auth(request, scope, api=1):
            return denied
        m = self.state["memberships"].get(request.path_params["id"])
        if m is None:
            return self.api1_error(404, "membership not found")
        if request.method == "PUT":
            body = await self.body(request)
            if not isinstance(body, dict):
                return self.api1_error(400, "the request body must be a JSON object")
            errors = {}
            for key, value in body.items():
                if key not in MEMBERSHIP_WRITABLE:
                    errors[key] = ["is not a writable membership attribute"]
                elif key == "customer_number" and not (isinstance(value, str) and 0 < len(value) <= 50):
                    errors[key] = ["must be a non-empty string of at most 50 characters"]
            if errors:
                return JSONResponse({"errors": errors}, status_code=422)
            m.update(body)
        return JSONResponse(m)

    async def subscriptions(self, request: Request) -> Response:
        if request.method == "GET":
            if denied := self._auth(request, "read_subscriptions", api=1):
                return denied
            return JSONResponse(list(self.state["subscriptions"].values()))
        if denied := self._auth(request, "write_subscriptions", api=1):
            return denied
        body = await self.body(request)
        if not isinstance(body, dict):
            return self.api1_error(400, "the request body must be a JSON object")
        errors = {}
        event, callback = body.get("event"), body.get("callback_url")
        if not isinstance(event, str) or not event:
            errors["event"] = ["can't be blank"]
        if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
            errors["callback_url"] = ["is invalid"]
        if errors:
            return JSONResponse({"errors": errors}, status_code=422)
        for sub in self.state["subscriptions"].values():
            if sub["event"] == event and sub["callback_url"] == callback:
                return self.api1_error(409, "a subscription for this event and callback_url exists")
        sub_id = f"{self.next_id('subscription'):032x}"
        base = str(request.base_url).rstrip("/")
        sub = {"id": sub_id, "event": event, "callback_url": callback, "active": True,
               "url": f"{base}/api/subscriptions/{sub_id}"}
        self.state["subscriptions"][sub_id] = sub
        return JSONResponse(sub, status_code=201)

    async def delete_subscription(self, request: Request) -> Response:
        if denied := self._auth(request, "write_subscriptions", api=1):
            return denied
        if self.state["subscriptions"].pop(request.path_params["id"], None) is None:
            return self.api1_error(404, "subscription not found")
        return Response(status_code=204)

    # API 2 ---------------------------------------------------------------------
    def _jsonapi(self, body: Any, status: int = 200) -> Response:
        return JSONResponse(body, status_code=status, media_type=JSONAPI)

    def _accept(self, request: Request) -> Response | None:
        if JSONAPI not in request.headers.get("accept", ""):
            return self.error_response(406, f"requests must send 'Accept: {JSONAPI}'")
        return None

    async def user(self, request: Request) -> Response:
        self.validate(request, None)
        if (bad := self._accept(request)) or (bad := self._auth(request, "read_user", api=2, admin=False)):
            return bad
        token = request.headers["authorization"][7:].strip()
        user = self.state["tokens"][token]
        space = self.state["space"]
        include = [i for i in request.query_params.get("include", "").split(",") if i]
        if any(i in ("adminOf", "memberOf") for i in include) and "read_spaces" not in user["scopes"]:
            response = self.error_response(403, "insufficient scope: include=adminOf requires read_spaces")
            response.headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope", scope="read_spaces"'
            return response
        admin_of = [{"id": space["id"], "type": "spaces"}] if user.get("admin") else []
        body: dict[str, Any] = {"data": {
            "id": user.get("id", "u1"), "type": "users", "attributes": {"email": user.get("email")},
            "relationships": {"adminOf": {"data": admin_of}},
        }}
        if "adminOf" in include:
            body["included"] = [
                {"id": s["id"], "type": "spaces", "attributes": {
                    "name": space.get("name"), "subdomain": space["subdomain"],
                    "countryCode": space.get("countryCode")}}
                for s in admin_of
            ]
        return self._jsonapi(body)

    async def list_invoices(self, request: Request) -> Response:
        self.validate(request, None)
        if (bad := self._accept(request)) or (bad := self._auth(request, "read_invoices", api=2)):
            return bad
        if request.path_params["space_id"] != self.state["space"]["id"]:
            return self.error_response(404, "space not found")
        q = request.query_params
        try:
            size = int(q.get("page[size]", 72))
            number = int(q.get("page[number]", 1))
        except ValueError:
            return self.error_response(400, "page[size] and page[number] must be integers")
        if not (1 <= size <= 200) or number < 1:
            return self.error_response(400, "page[size] must be between 1 and 200, page[number] at least 1")
        lo, hi = q.get("filter[from]"), q.get("filter[to]")
        for value in (lo, hi):
            if value is not None and not _is_date(value):
                return self.error_response(400, f"invalid date {value!r}: use YYYY-MM-DD")
        invoices = sorted(
            self.state["invoices"].values(),
            key=lambda r: (r["attributes"]["invoiceDate"], r["attributes"]["number"], r["id"]),
        )
        picked = [
            r for r in invoices
            if (lo is None or r["attributes"]["invoiceDate"][:10] >= lo)
            and (hi is None or r["attributes"]["invoiceDate"][:10] <= hi)
        ]
        pages = max(1, -(-len(picked) // size))
        data = picked[(number - 1) * size: number * size]

        def link(n: int) -> str:
            params = {k: v for k, v in q.items() if not k.startswith("page[")}
            params.update({"page[size]": str(size), "page[number]": str(n)})
            return str(request.url.replace_query_params(**params))

        return self._jsonapi({
            "data": data,
            "meta": {"totalPages": pages, "currentPage": number},
            "links": {"self": link(number), "first": link(1), "last": link(pages),
                      "prev": link(number - 1) if number > 1 else None,
                      "next": link(number + 1) if number < pages else None},
        })

    async def invoice(self, request: Request) -> Response:
        self.validate(request, None)
        if (bad := self._accept(request)) or (bad := self._auth(request, "read_invoices", api=2)):
            return bad
        resource = self.state["invoices"].get(request.path_params["id"])
        if resource is None:
            return self.error_response(404, "invoice not found")
        return self._jsonapi({"data": resource})

    # -- webhook delivery ------------------------------------------------------
    async def deliver_webhook(self, request: Request) -> Response:
        body = await request.json()
        event = body.get("event")
        base = str(body.get("base_url") or request.base_url).rstrip("/")
        if body.get("membership_id"):
            ident = str(body["membership_id"])
            m = self.state["memberships"].get(ident)
            if m is None:
                return JSONResponse({"error": f"no membership {ident}"}, status_code=404)
            if event == "confirmed_membership" and not m.get("confirmed_at"):
                m["confirmed_at"] = _now_api1()
            resource_url = f"{base}/api/memberships/{ident}"
        elif body.get("invoice_id"):
            resource_url = f"{base}/api/invoices/{body['invoice_id']}"
        elif body.get("url"):
            resource_url = str(body["url"])
        else:
            return JSONResponse({"error": "give membership_id, invoice_id or url"}, status_code=400)
        payload = {"url": resource_url}
        results = []
        targets = [s for s in self.state["subscriptions"].values() if s["event"] == event and s.get("active", True)]
        async with httpx.AsyncClient(transport=self.webhook_transport, timeout=10,
                                     follow_redirects=False) as client:
            for sub in targets:
                entry: dict[str, Any] = {"subscription_id": sub["id"], "event": event,
                                         "callback_url": sub["callback_url"], "payload": payload}
                try:
                    answer = await client.post(sub["callback_url"], json=payload)
                    entry["status"] = answer.status_code
                    if answer.status_code == 410:  # Cobot deactivates the subscription at once
                        sub["active"] = False
                except httpx.HTTPError as exc:
                    entry["status"] = None
                    entry["error"] = type(exc).__name__
                results.append(entry)
        self.state["deliveries"].extend(results)
        self.save()
        return JSONResponse({"delivered": results})

    # -- demo ------------------------------------------------------------------
    @classmethod
    def demo_seed(cls) -> dict[str, Any]:
        """The bundled demo data (``data/demo_seed.json``): 4 memberships, 4 invoices."""
        return json.loads(resources.files("ledgerlink_cobot").joinpath("data/demo_seed.json").read_text())

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """Settings for this sandbox served at ``server_url`` (the server root):
        ``base_url`` (API 2) is the root plus ``base_path`` (``/v2``), ``base_url_v1``
        the root plus ``/api``; the token is the demo token, named ``${COBOT_API_TOKEN}``."""
        root = server_url.rstrip("/")
        return (
            {
                "api_token": "${COBOT_API_TOKEN}",
                "subdomain": self.state["space"]["subdomain"],
                "base_url": root + self.base_path,
                "base_url_v1": f"{root}/api",
                "start_date": "2024-01-01",
            },
            {"COBOT_API_TOKEN": DEMO_TOKEN},
        )

    def describe(self) -> str:
        space = self.state["space"]
        members = self.state["memberships"].values()
        confirmed = sum(1 for m in members if m.get("confirmed_at"))
        active = sum(1 for s in self.state["subscriptions"].values() if s.get("active", True))
        return (
            f"Cobot sandbox: space {space.get('name') or space['subdomain']!r} ({space['subdomain']}) with "
            f"{len(self.state['memberships'])} memberships ({confirmed} confirmed), "
            f"{len(self.state['invoices'])} invoices, {active} active webhook subscriptions"
        )


def _is_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


__all__ = ["DEMO_TOKEN", "CobotSandbox"]
