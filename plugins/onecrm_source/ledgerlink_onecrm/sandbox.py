"""A 1CRM REST API emulator for tests and demos (``ledgerlink sandbox serve onecrm``).

Everything lives under the entry point ``/api.php`` (the connection's ``base_url`` is
``<server>/api.php``), in the shapes 1CRM's official client documents (NOTES.md):

- ``GET version`` (no auth), ``GET me``, ``GET meta/fields/{Model}`` (``{fields, filters}``:
  every field the model's records have, plus the custom fields of the state);
- ``POST auth/user/access_token`` (JSON body; grants ``client_credentials``, ``password``,
  ``refresh_token``): ``{token_type, expires_in, access_token[, refresh_token]}``. A
  client-credentials answer carries a refresh token only with
  ``"issue_refresh_tokens": true`` (open question 5 of NOTES.md);
- ``GET data/{Model}`` with ``fields[]`` (or ``fields[0]``...), ``filters[NAME]`` (with
  ``filters[NAME-operator]``: equals, not_equal, like), ``filter_text``, ``order``
  (``"field ASC|DESC"``), ``offset`` and ``limit`` (capped at 200): ``{records,
  total_results}``. Invoices that are closed (cancelled, or nothing due) are listed only
  with ``filters[view_closed]=1``, like 1CRM's list view (open question 1);
- ``GET data/{Model}/{id}`` -> ``{record}``; ``GET data/Invoice/{id}/{link}`` for
  ``line_groups_link``, ``lines_link``, ``adjustments_link``, ``comments_link``, ``notes``;
- ``PATCH data/{Model}/{id}`` ``{data}`` -> ``{"result": true}`` (unknown fields: 400;
  ``date_modified`` moves on); ``POST data/{Model}`` ``{data}`` -> ``{"id"}``; a POST with
  ``X-HTTP-Method-Override: PATCH`` is a PATCH;
- Basic auth (when ``basic_auth`` is on) and Bearer tokens; 401 ``{"error":
  "access_denied", "message", "hint"}``; an edition without the API (``"edition":
  "startup"``) answers 403 to everything; unknown model 404 ``{"message": "Model X not
  found"}``, unknown id 404 ``{"message": "Not found"}``. Every value is a string.

Sandbox control (besides the kit's requests/state/seed/faults/reset):
``POST /__sandbox__/expire_tokens`` ends every access token now (a client must renew).

Seed format (JSON): ``{"Account": [...], "Invoice": [...], "InvoiceLineGroup": [...],
"InvoiceLine": [...], "InvoiceAdjustment": [...], "User": [...], "Currency": [...], ...}``,
records as ``GET data/{Model}/{id}`` returns them (strings), each with an ``id``; and
optionally ``"_sandbox": {"users": {"name": "password"}, "clients": {"id": {"secret": ...,
"user_id": ...}}, "basic_auth": true, "edition": "enterprise", "token_lifetime": 86399,
"issue_refresh_tokens": false, "custom_fields": {"Invoice": ["bilendo_status_c"]}}``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any, ClassVar

from ledgerlink import SANDBOX_PREFIX, Sandbox
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

API = "/api.php"
DEMO_CLIENT_ID = "ledgerlink-demo-client"
DEMO_CLIENT_SECRET = "onecrm-demo-secret"
DEMO_USER = "admin"
DEMO_PASSWORD = "onecrm-demo-password"
SECRET_ENV = "ONECRM_CLIENT_SECRET"
PASSWORD_ENV = "ONECRM_PASSWORD"
MODELS = ("Account", "Contact", "User", "Invoice", "InvoiceLineGroup", "InvoiceLine", "InvoiceAdjustment",
          "InvoiceComment", "Note", "Currency", "Payment", "TaxRate", "TaxCode")
#: Invoice links -> (model, the field pointing at the invoice)
LINKS = {"line_groups_link": ("InvoiceLineGroup", "parent_id"), "lines_link": ("InvoiceLine", "invoice_id"),
         "adjustments_link": ("InvoiceAdjustment", "invoice_id"), "comments_link": ("InvoiceComment", "invoice_id"),
         "notes": ("Note", "parent_id")}
DEFAULT_LIST_FIELDS = ("id", "name", "_display")
READ_ONLY = {"id", "amount", "amount_due", "pretax", "subtotal", "date_entered", "date_modified", "full_number"}
MAX_LIMIT = 200
_FIELDS_N = re.compile(r"^fields\[(\d*)\]$")
_FILTER = re.compile(r"^filters\[([^\]]+)\]$")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _display(model: str, record: dict[str, Any]) -> str | None:
    if model == "Invoice":
        return " ".join(p for p in (record.get("full_number"), record.get("name")) if p) or None
    return record.get("name") or record.get("full_name")


class OnecrmSandbox(Sandbox):
    """1CRM's REST API, in-process or on loopback (``ledgerlink sandbox serve onecrm``)."""

    name: ClassVar[str] = "onecrm"
    vendor: ClassVar[str] = "1CRM"
    base_path: ClassVar[str] = API
    auth_headers: ClassVar[tuple[str, ...]] = ("authorization",)

    def __init__(self, **kwargs: Any) -> None:
        #: (model, key) -> ((id of the model's records, their count), {key value: [record ids]})
        self._indexes: dict[tuple[str, str], tuple[tuple[int, int], dict[str, list[str]]]] = {}
        super().__init__(**kwargs)

    # -- state and seed --------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {
            "models": {m: {} for m in MODELS},
            "config": {"users": {DEMO_USER: DEMO_PASSWORD}, "clients": {DEMO_CLIENT_ID: {
                "secret": DEMO_CLIENT_SECRET, "user_id": "1"}}, "basic_auth": True, "edition": "enterprise",
                "token_lifetime": 86399, "issue_refresh_tokens": False,
                "custom_fields": {"Invoice": ["bilendo_status_c"], "Account": ["bilendo_dispatch_c",
                                                                                "bilendo_language_c"]}},
            "tokens": {}, "refresh_tokens": {},
        }

    def load_seed(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("the 1CRM seed is a JSON object {Model: [records]} (see ledgerlink_onecrm.sandbox)")
        unknown = sorted(set(data) - set(MODELS) - {"_sandbox"})
        if unknown:
            raise ValueError(f"unknown models in the 1CRM seed: {unknown} (known: {', '.join(MODELS)}, _sandbox)")
        config = data.get("_sandbox") or {}
        if not isinstance(config, dict):
            raise ValueError("_sandbox in the 1CRM seed is an object")
        for key, value in config.items():
            if key not in self.state["config"]:
                raise ValueError(f"unknown _sandbox key {key!r} in the 1CRM seed")
            self.state["config"][key] = copy.deepcopy(value)
        for model in MODELS:
            records = data.get(model, [])
            if not isinstance(records, list):
                raise ValueError(f"{model} in the 1CRM seed is a list of records")
            for record in records:
                if not isinstance(record, dict) or not record.get("id"):
                    raise ValueError(f"a seeded {model} record needs an id: {str(record)[:80]}")
                bad = [k for k, v in record.items() if v is not None and not isinstance(v, str)]
                if bad:
                    raise ValueError(f"{model} {record['id']}: 1CRM sends strings; {bad[0]} is "
                                     f"{type(record[bad[0]]).__name__}")
                stored = copy.deepcopy(record)
                if model == "Invoice":
                    stored.setdefault("date_modified", _stamp(datetime.now(UTC)))
                    stored.setdefault("deleted", "0")
                    if not stored.get("full_number") and stored.get("invoice_number"):
                        stored["full_number"] = (stored.get("prefix") or "") + stored["invoice_number"]
                self.state["models"][model][str(record["id"])] = stored

    @classmethod
    def demo_seed(cls) -> Any:
        """About 30 invoices for 10 accounts (see data/demo_seed.json and scripts/make_demo_seed.py)."""
        return json.loads(resources.files("ledgerlink_onecrm").joinpath("data/demo_seed.json").read_text("utf-8"))

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """OAuth 2 client credentials against ``<server_url>/api.php``."""
        settings = {"base_url": server_url.rstrip("/") + API, "client_id": DEMO_CLIENT_ID,
                    "client_secret": "${" + SECRET_ENV + "}", "start_date": "2026-01-01",
                    "sender_company": "Nordlicht Software GmbH",
                    "requests_per_second": 50}  # a sandbox on loopback; 1CRM itself documents no limit
        return settings, {SECRET_ENV: DEMO_CLIENT_SECRET}

    def describe(self) -> str:
        invoices = self.state["models"]["Invoice"].values()
        written = sum(1 for i in invoices if i.get("bilendo_status_c"))
        accounts = len(self.state["models"]["Account"])
        return f"1CRM sandbox holds {len(invoices)} invoices for {accounts} accounts, {written} with a Bilendo status"

    def error_response(self, status: int, message: str) -> Response:
        return JSONResponse({"message": message}, status_code=status)

    # -- helpers ------------------------------------------------------------------------------
    def _error(self, status: int, message: str, error: str | None = None, hint: str | None = None) -> Response:
        body: dict[str, Any] = {"message": message}
        if error:
            body["error"] = error
        if hint:
            body["hint"] = hint
        return JSONResponse(body, status_code=status)

    def _denied(self, request: Request) -> Response | None:
        if self.state["config"].get("edition") not in ("professional", "enterprise"):
            return self._error(403, "The REST API is available in the Professional and Enterprise editions only",
                               "forbidden")
        header = request.headers.get("authorization", "")
        if header.startswith("Basic ") and self.state["config"].get("basic_auth"):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            if self.state["config"]["users"].get(user) == password and user:
                request.state.user = user
                return None
        elif header.startswith("Bearer "):
            token = self.state["tokens"].get(header[7:])
            if token and token["expires"] > time.time():
                request.state.user = token["user_id"]
                return None
            if token:
                return self._error(401, "The resource owner or authorization server denied the request.",
                                   "access_denied", "Access token has expired")
        return self._error(401, "The resource owner or authorization server denied the request.", "access_denied",
                           "Access token could not be verified")

    def _model(self, name: str) -> dict[str, dict[str, Any]] | None:
        return self.state["models"].get(name)  # type: ignore[no-any-return]

    def _fields(self, request: Request) -> list[str] | None:
        fields: list[str] = []
        for key, value in request.query_params.multi_items():
            if _FIELDS_N.match(key):
                fields.append(value)
        return fields or None

    def _shape(self, model: str, record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        shown = {**record, "_display": _display(model, record)}
        if fields is None:
            return shown
        out = {"id": record.get("id")}
        for name in fields:
            out[name] = shown.get(name)
        out["_display"] = shown["_display"]
        return out

    def _known_fields(self, model: str) -> set[str]:
        names: set[str] = {"id", "date_modified"}
        for record in self.state["models"].get(model, {}).values():
            names.update(record)
        names.update(self.state["config"].get("custom_fields", {}).get(model, []))
        return names

    def _is_known(self, model: str, name: str) -> bool:
        """``name in self._known_fields(model)``, without walking every record when the
        first few have it (a list of 20,000 invoices is asked for page by page)."""
        if name in ("id", "date_modified") or name in self.state["config"].get("custom_fields", {}).get(model, []):
            return True
        return any(name in record for record in self.state["models"].get(model, {}).values())

    def _children(self, child: str, key: str, ident: str) -> list[dict[str, Any]]:
        """The ``child`` records whose ``key`` is ``ident``, through an index of the model by
        ``key`` (rebuilt when the model's records are replaced, added or removed); each
        candidate is checked again, so a record edited in place is never listed wrongly."""
        records = self.state["models"][child]
        stamp = (id(records), len(records))
        cached = self._indexes.get((child, key))
        if cached is None or cached[0] != stamp:
            index: dict[str, list[str]] = {}
            for rid, record in records.items():
                index.setdefault(str(record.get(key)), []).append(rid)
            cached = self._indexes[(child, key)] = (stamp, index)
        rows = (records.get(rid) for rid in cached[1].get(ident, ()))
        return [r for r in rows if r is not None and str(r.get(key)) == ident]

    def _closed(self, invoice: dict[str, Any]) -> bool:
        if invoice.get("cancelled") == "1":
            return True
        try:
            return abs(Decimal(str(invoice.get("amount_due") or "0"))) <= Decimal("0.005")
        except InvalidOperation:
            return False

    def _touch(self, model: str, record: dict[str, Any]) -> None:
        """``date_modified`` moves on (never backwards, never to the second of another record)."""
        latest = max((str(r.get("date_modified") or "") for r in self.state["models"][model].values()), default="")
        stamp = _stamp(datetime.now(UTC))
        if latest >= stamp:
            stamp = _stamp(datetime.strptime(latest, "%Y-%m-%d %H:%M:%S") + timedelta(seconds=1))
        record["date_modified"] = stamp

    def _list(self, request: Request, model: str, records: list[dict[str, Any]]) -> Response:
        query = request.query_params
        try:
            offset = int(query.get("offset", "0"))
            limit = int(query.get("limit", "20"))
        except ValueError:
            return self._error(400, "offset and limit must be integers")
        if offset < 0 or limit < 0:
            return self._error(400, "offset and limit must not be negative")
        limit = min(limit or 20, MAX_LIMIT)
        filters: dict[str, str] = {}
        for key, value in query.multi_items():
            found = _FILTER.match(key)
            if found:
                filters[found.group(1)] = value
        if model == "Invoice" and str(filters.pop("view_closed", "")).lower() not in ("1", "true"):
            records = [r for r in records if not self._closed(r)]
        for name, value in list(filters.items()):
            if name.endswith("-operator") or name.endswith("-end"):
                continue
            if not self._is_known(model, name):
                return self._error(400, f"Unknown filter {name}")
            op = filters.get(f"{name}-operator", "equals")
            if op == "equals":
                records = [r for r in records if str(r.get(name) or "") == value]
            elif op == "not_equal":
                records = [r for r in records if str(r.get(name) or "") != value]
            elif op == "like":
                pattern = re.compile("^" + re.escape(value).replace("%", ".*") + "$", re.IGNORECASE)
                records = [r for r in records if pattern.match(str(r.get(name) or ""))]
            else:
                return self._error(400, f"Unsupported filter operator {op}")
        text = query.get("filter_text")
        if text:
            records = [r for r in records if text.lower() in json.dumps(r).lower()]
        order = (query.get("order") or "").strip()
        if order:
            parts = order.split()
            field, direction = parts[0], (parts[1].upper() if len(parts) > 1 else "ASC")
            if direction not in ("ASC", "DESC") or not self._is_known(model, field):
                return self._error(400, f"Invalid order {order}")
            records = sorted(records, key=lambda r: str(r.get("id")))
            records = sorted(records, key=lambda r: str(r.get(field) or ""), reverse=direction == "DESC")
        else:
            records = sorted(records, key=lambda r: str(r.get("id")))
        fields = self._fields(request) or list(DEFAULT_LIST_FIELDS)
        page = [self._shape(model, r, fields) for r in records[offset: offset + limit]]
        return JSONResponse({"records": page, "total_results": len(records)})

    # -- routes -------------------------------------------------------------------------------------
    async def version(self, request: Request) -> Response:
        header = request.headers.get("authorization")
        ok = bool(header) and self._denied(request) is None
        return JSONResponse({"version": "8.6.0", "authenticated": ok,
                             "products": [self.state["config"].get("edition", "enterprise")]})

    async def me(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied:
            return denied
        user_id = str(request.state.user)
        user = self.state["models"]["User"].get(user_id) or {}
        return JSONResponse({"id": f"Users:{user_id}", "name": user.get("full_name") or user_id,
                             "first_name": user.get("first_name"), "last_name": user.get("last_name"),
                             "role": "user", "groups": [], "email": user.get("email1")})

    async def meta_fields(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied:
            return denied
        model = request.path_params["model"]
        if self._model(model) is None:
            return self._error(404, f"Model {model} not found")
        fields = {name: {"type": "varchar", "updateable": name not in READ_ONLY}
                  for name in sorted(self._known_fields(model))}
        filters = {"view_closed": {"type": "flag"}} if model == "Invoice" else {}
        return JSONResponse({"fields": fields, "filters": filters})

    async def token(self, request: Request) -> Response:
        if "json" not in request.headers.get("content-type", ""):
            return self._error(400, "The request body must be JSON", "invalid_request")
        body = await self.body(request)
        if not isinstance(body, dict):
            return self._error(400, "The request body must be a JSON object", "invalid_request")
        config = self.state["config"]
        client = config["clients"].get(str(body.get("client_id") or ""))
        if client is None or client.get("secret") != body.get("client_secret"):
            return self._error(401, "Client authentication failed", "invalid_client")
        grant = body.get("grant_type")
        user_id = str(client.get("user_id") or "1")
        refresh = None
        if grant == "client_credentials":
            refresh = config.get("issue_refresh_tokens")
        elif grant == "refresh_token":
            known = self.state["refresh_tokens"].pop(str(body.get("refresh_token") or ""), None)
            if known is None:
                return self._error(401, "The refresh token is invalid.", "invalid_request",
                                   "Token has been revoked")
            refresh = True
        elif grant == "password":
            if config["users"].get(str(body.get("username") or "")) != body.get("password"):
                return self._error(401, "The user credentials were incorrect.", "invalid_credentials")
            refresh = True
        else:
            return self._error(400, f"The authorization grant type {grant!r} is not supported",
                               "unsupported_grant_type")
        lifetime = int(config.get("token_lifetime") or 86399)
        access = "onecrm-at-" + secrets.token_urlsafe(16)
        self.state["tokens"][access] = {"expires": time.time() + lifetime, "user_id": user_id,
                                        "client_id": body.get("client_id")}
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime, "access_token": access}
        if refresh:
            answer["refresh_token"] = "onecrm-rt-" + secrets.token_urlsafe(16)
            self.state["refresh_tokens"][answer["refresh_token"]] = user_id
        return JSONResponse(answer)

    async def collection(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied:
            return denied
        model = request.path_params["model"]
        records = self._model(model)
        if records is None:
            return self._error(404, f"Model {model} not found")
        if request.method == "GET":
            return self._list(request, model, list(records.values()))
        body = await self.body(request)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return self._error(400, "The request body needs a data object")
        ident = f"{model.lower()}-{self.next_id(model)}"
        record = {k: (None if v is None else str(v)) for k, v in data.items()}
        record["id"] = ident
        self._touch(model, record)
        records[ident] = record
        return JSONResponse({"id": ident})

    async def one(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied:
            return denied
        model = request.path_params["model"]
        records = self._model(model)
        if records is None:
            return self._error(404, f"Model {model} not found")
        record = records.get(request.path_params["id"])
        if record is None:
            return self._error(404, "Not found")
        method = request.method
        if method == "POST":
            method = request.headers.get("x-http-method-override", "POST").upper()
        if method == "GET":
            return JSONResponse({"record": self._shape(model, record, self._fields(request))})
        if method != "PATCH":
            return self._error(405, f"Method {method} not allowed")
        body = await self.body(request)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return self._error(400, "The request body needs a data object")
        known = self._known_fields(model)
        for name, value in data.items():
            if name not in known:
                return self._error(400, f"Unknown field {name}")
            if name in READ_ONLY:
                return self._error(400, f"Field {name} is not updateable")
            if value is not None and not isinstance(value, str | int | float):
                return self._error(400, f"Invalid value for field {name}")
        record.update({k: (None if v is None else str(v)) for k, v in data.items()})
        self._touch(model, record)
        return JSONResponse({"result": True})

    async def related(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied:
            return denied
        model, ident, link = (request.path_params[k] for k in ("model", "id", "link"))
        records = self._model(model)
        if records is None:
            return self._error(404, f"Model {model} not found")
        if ident not in records:
            return self._error(404, "Not found")
        if model != "Invoice" or link not in LINKS:
            return self._error(404, f"Link {link} not found")
        child, key = LINKS[link]
        return self._list(request, child, self._children(child, key, ident))

    async def expire_tokens(self, request: Request) -> Response:
        for token in self.state["tokens"].values():
            token["expires"] = 0
        self.save()
        return JSONResponse({"expired": len(self.state["tokens"])})

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{SANDBOX_PREFIX}/expire_tokens", self.expire_tokens, methods=["POST"]),
            Route(f"{API}/version", self.version, methods=["GET"]),
            Route(f"{API}/me", self.me, methods=["GET"]),
            Route(f"{API}/meta/fields/{{model}}", self.meta_fields, methods=["GET"]),
            Route(f"{API}/auth/user/access_token", self.token, methods=["POST"]),
            Route(f"{API}/data/{{model}}", self.collection, methods=["GET", "POST"]),
            Route(f"{API}/data/{{model}}/{{id}}", self.one, methods=["GET", "PATCH", "POST"]),
            Route(f"{API}/data/{{model}}/{{id}}/{{link}}", self.related, methods=["GET"]),
        ]


__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DEMO_PASSWORD", "DEMO_USER", "OnecrmSandbox", "PASSWORD_ENV",
           "SECRET_ENV"]
