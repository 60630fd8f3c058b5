"""A Bilendo API v2 emulator for tests and demos (``ledgerlink sandbox serve bilendo``).

Documented part, with the paths and shapes of Bilendo's v2 reference: customers
(``/customers``, ``/customers/find/<your-id>``, ``/customers/<id>``), their contacts
and addresses (each with ``/find/<your-id>``); form-field requests (JSON is also
accepted), JSON:API answers, ``Authorization: Token token=...``.

Designed part (see :mod:`.undocumented`): invoices (``POST /invoices`` with
form fields, multipart with a PDF; ``/invoices/find/<your-id>``;
``GET /invoices/<id>`` with ``status``), JSON:API error objects.

Sandbox control (besides the kit's log/state/seed/faults/reset):
``POST /__sandbox__/advance`` with ``{"invoice": "<id or external_id>", "to": "sent"}``
moves an invoice through its life: ``sent``, ``due``, ``overdue``, ``reminder_1``,
``reminder_2`` ..., ``partially_paid`` (with ``"amount": "50.00"``), ``paid``,
``cancelled``, ``collection``; ``"raw": true`` sets any status text verbatim (to
test unknown statuses). Automatic dispatch sends an invoice when it is created;
manual dispatch keeps it a ``draft`` until advanced to ``sent``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from ledgerlink import SANDBOX_PREFIX, Sandbox
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import undocumented as U

DEMO_TOKEN = "bilendo-sandbox-token"
TOKEN_ENV = "BILENDO_API_TOKEN"
API = "/api/v2"

_FLAT_ITEM = re.compile(r"^(\w+)\[(\d+)\]\[(\w+)\]$")
_FLAT_HASH = re.compile(r"^(\w+)\[(\w+)\]$")

CUSTOMER_FIELDS = (
    "external_id", "customer_number", "additional_number", "name", "phone", "notice",
    "customer_group_id", "template_setting_id", "template_invoice_id", "template_email_id",
    "template_post_id", "dunning_stop", "dunning_stop_date", "shipping_mode",
)
CONTACT_FIELDS = ("external_id", "name", "phone", "gender", "salutation", "email", "main_contact")
ADDRESS_FIELDS = ("external_id", "line1", "line2", "line3", "line4", "zip", "city", "country", "default_address")
COUNTRY_NAMES = {"de": "Deutschland", "at": "Österreich", "ch": "Schweiz", "fr": "Frankreich", "nl": "Niederlande"}
_STEPS = ("sent", "open", "due", "overdue", "partially_paid", "paid", "cancelled", "collection")


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _bool(value: Any) -> bool:
    return value in (True, "true", "1", 1, "True")


def _unflatten(fields: dict[str, Any]) -> dict[str, Any]:
    """Rails-style form keys (``items[0][name]``, ``sender[line1]``) to nested values."""
    out: dict[str, Any] = {}
    lists: dict[str, dict[int, dict[str, Any]]] = {}
    for key, value in fields.items():
        item = _FLAT_ITEM.match(key)
        if item:
            lists.setdefault(item.group(1), {}).setdefault(int(item.group(2)), {})[item.group(3)] = value
            continue
        nested = _FLAT_HASH.match(key)
        if nested:
            out.setdefault(nested.group(1), {})[nested.group(2)] = value
            continue
        out[key] = value
    for name, items in lists.items():
        out[name] = [items[i] for i in sorted(items)]
    return out


class BilendoSandbox(Sandbox):
    name: ClassVar[str] = "bilendo"
    vendor: ClassVar[str] = "Bilendo"
    base_path: ClassVar[str] = API
    openapi_file: ClassVar[str | Path | None] = Path(__file__).parent / "spec" / "openapi.yaml"

    account_dispatch_default = "manual"

    # -- kit hooks -------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {"tokens": [DEMO_TOKEN], "customers": {}, "contacts": {}, "addresses": {}, "invoices": {}}

    def error_response(self, status: int, message: str) -> Response:
        return self._errors(status, [(message, None)])

    @classmethod
    def demo_rules(cls) -> list[dict[str, Any]]:
        """No rules: Bilendo collects receivables and books no accounts."""
        return []

    def describe(self) -> str:
        invoices = list(self.state.get("invoices", {}).values())
        counts: dict[str, int] = {}
        for invoice in invoices:
            status = str(invoice.get("status") or "?")
            counts[status] = counts.get(status, 0) + 1
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        debtors = len(self.state.get("customers", {}))
        return (f"Bilendo sandbox holds {len(invoices)} invoices" + (f" ({by_status})" if by_status else "")
                + f" for {debtors} debtors")

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The server root is the ``base_url`` (the target adds ``/api/v2``)."""
        settings = {
            "api_token": "${" + TOKEN_ENV + "}",
            "base_url": server_url.rstrip("/"),
            "dispatch": "automatic",
            "language": "de",
            "shipping_mode": "email",
        }
        return settings, {TOKEN_ENV: DEMO_TOKEN}

    def load_seed(self, data: Any) -> None:
        """Seed in Bilendo's shapes: ``{"tokens": [...], "customers": [customer, ...],
        "invoices": [invoice, ...]}``; a customer may carry ``contacts`` and
        ``addresses`` lists; items are JSON:API resources or their attributes."""
        if not isinstance(data, dict):
            raise ValueError("the Bilendo seed is a JSON object")
        if data.get("tokens"):
            self.state["tokens"] = [str(t) for t in data["tokens"]]
        for item in data.get("customers", []):
            attrs = dict(item.get("attributes", item))
            contacts = attrs.pop("contacts", item.get("contacts", []))
            addresses = attrs.pop("addresses", item.get("addresses", []))
            customer = self._store_customer(attrs, item.get("id") or attrs.get("id"))
            for contact in contacts:
                self._store_child("contacts", customer["id"], dict(contact.get("attributes", contact)))
            for address in addresses:
                self._store_child("addresses", customer["id"], dict(address.get("attributes", address)))
        for item in data.get("invoices", []):
            attrs = dict(item.get("attributes", item))
            iid = str(item.get("id") or attrs.get("id") or self._uuid())
            attrs.setdefault(U.A_STATUS, U.STATUS_SENT)
            attrs.setdefault(U.A_REMINDER_STAGE, 0)
            attrs.setdefault(U.A_OPEN_AMOUNT, attrs.get(U.F_AMOUNT))
            attrs.setdefault(U.A_PAID_AMOUNT, "0.00")
            attrs.update(id=iid, created_at=attrs.get("created_at") or _now(), updated_at=_now())
            self.state["invoices"][iid] = attrs

    # -- helpers ---------------------------------------------------------------------
    def _uuid(self) -> str:
        return f"00000000-0000-4000-8000-{self.next_id('uuid', 0):012d}"

    def _errors(self, status: int, problems: list[tuple[str, str | None]]) -> Response:
        titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict",
                  422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
                  503: "Service Unavailable"}
        errors = []
        for detail, field in problems:
            error: dict[str, Any] = {"status": str(status), "title": titles.get(status, "Error"), "detail": detail}
            if field:
                error["source"] = {"pointer": f"/data/attributes/{field}"}
            errors.append(error)
        return JSONResponse({U.ERRORS_KEY: errors}, status_code=status)

    def _authorised(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        prefix = "Token token="
        if not header.startswith(prefix) or header[len(prefix):] not in self.state["tokens"]:
            return self._errors(401, [("Invalid or missing API token", None)])
        return None

    async def _fields(self, request: Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]] | Response:
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        if not raw:
            return {}, {}
        if ctype.startswith("application/x-www-form-urlencoded"):
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)), {}
        if ctype.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw
            )
            fields: dict[str, Any] = {}
            files: dict[str, tuple[str, bytes]] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                decoded = part.get_payload(decode=True)  # bytes for a leaf part
                payload = decoded if isinstance(decoded, bytes) else b""
                filename = part.get_filename()
                if filename is not None:
                    files[str(name)] = (filename, payload)
                else:
                    fields[str(name)] = payload.decode("utf-8")
            return fields, files
        if "json" in ctype:
            try:
                body = json.loads(raw)
            except ValueError:
                return self._errors(400, [("the request body is not valid JSON", None)])
            if isinstance(body, dict) and isinstance(body.get("data"), dict):
                body = body["data"].get("attributes", {})
            if not isinstance(body, dict):
                return self._errors(400, [("the request body is not an object", None)])
            return body, {}
        return self._errors(400, [(f"unsupported content type {ctype!r}", None)])

    async def _read(self, request: Request) -> tuple[dict[str, Any], dict[str, Any]] | Response:
        denied = self._authorised(request)
        if denied is not None:
            return denied
        parsed = await self._fields(request)
        if isinstance(parsed, Response):
            return parsed
        fields, files = parsed
        body = _unflatten(fields)
        if files:
            body.update({name: "(file)" for name in files})
        problems = self.validate(request, body)
        if problems:
            return self._errors(422, [(p.split(": ", 1)[-1], p.split(": ", 1)[0] if ": " in p else None)
                                      for p in problems])
        return body, files

    def _link(self, request: Request, path: str) -> str:
        return str(request.base_url).rstrip("/") + API + path

    def _customer(self, ref: str) -> dict[str, Any] | None:
        customers = self.state["customers"]
        if ref in customers:
            return customers[ref]
        return next((c for c in customers.values() if (c.get("external_id") or "").lower() == ref.lower()), None)

    def _store_customer(self, attrs: dict[str, Any], cid: str | None = None) -> dict[str, Any]:
        cid = str(cid or self._uuid())
        customer: dict[str, Any] = {k: None for k in CUSTOMER_FIELDS}
        customer.update({k: v for k, v in attrs.items() if k in CUSTOMER_FIELDS})
        if "note" in attrs and not customer.get("notice"):
            customer["notice"] = attrs["note"]
        customer["dunning_stop"] = _bool(customer.get("dunning_stop"))
        customer["shipping_mode"] = customer.get("shipping_mode") or "email"
        customer["current_reminder_stage"] = int(attrs.get("current_reminder_stage") or 0)
        customer.update(id=cid, created_at=_now(), updated_at=_now())
        self.state["customers"][cid] = customer
        return customer

    def _store_child(self, kind: str, customer_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        oid = str(attrs.get("id") or self._uuid())
        fields = CONTACT_FIELDS if kind == "contacts" else ADDRESS_FIELDS
        record: dict[str, Any] = {k: None for k in fields}
        record.update({k: v for k, v in attrs.items() if k in fields})
        if kind == "contacts":
            record["gender"] = int(record.get("gender") or 0)
            record["salutation"] = int(record.get("salutation") or 0)
            siblings = [c for c in self.state[kind].values() if c["customer_id"] == customer_id]
            record["main_contact"] = _bool(record["main_contact"]) or not siblings
        else:
            code = str(attrs.get("country_code") or "").lower()
            record["country"] = attrs.get("country") or COUNTRY_NAMES.get(code, code.upper())
            siblings = [a for a in self.state[kind].values() if a["customer_id"] == customer_id]
            record["default_address"] = _bool(record["default_address"]) or not siblings
        record.update(id=oid, customer_id=customer_id, created_at=_now(), updated_at=_now())
        self.state[kind][oid] = record
        return record

    # -- JSON:API shapes -------------------------------------------------------------------
    def _customer_resource(self, request: Request, c: dict[str, Any]) -> dict[str, Any]:
        cid = c["id"]
        rel = {}
        for kind, typ in (("addresses", "address"), ("contacts", "contact")):
            rel[kind] = {
                "data": [{"id": o["id"], "type": typ} for o in self.state[kind].values() if o["customer_id"] == cid],
                "links": {"self": self._link(request, f"/customers/{cid}"),
                          "related": self._link(request, f"/customers/{cid}/{kind}")},
            }
        return {"id": cid, "type": "customer", "attributes": dict(c), "relationships": rel}

    def _child_resource(self, request: Request, kind: str, o: dict[str, Any]) -> dict[str, Any]:
        attrs = {k: v for k, v in o.items() if k != "customer_id"}
        cid = o["customer_id"]
        return {
            "id": o["id"], "type": "contact" if kind == "contacts" else "address", "attributes": attrs,
            "relationships": {"customer": {
                "data": {"id": cid, "type": "customer"},
                "links": {"self": self._link(request, f"/customers/{cid}/{kind}/{o['id']}"),
                          "related": self._link(request, f"/customers/{cid}")},
            }},
        }

    def _invoice_resource(self, request: Request, inv: dict[str, Any]) -> dict[str, Any]:
        attrs = {k: v for k, v in inv.items() if k != "customer_id"}
        cid = inv.get("customer_id")
        return {
            "id": inv["id"], "type": U.INVOICE_TYPE, "attributes": attrs,
            "relationships": {"customer": {
                "data": {"id": cid, "type": "customer"} if cid else None,
                "links": {"self": self._link(request, f"/invoices/{inv['id']}"),
                          "related": self._link(request, f"/customers/{cid}")},
            }},
        }

    # -- customers ---------------------------------------------------------------------------
    async def customers(self, request: Request) -> Response:
        if request.method == "GET":
            denied = self._authorised(request)
            if denied:
                return denied
            self.validate(request, None)
            items = sorted(self.state["customers"].values(), key=lambda c: c["created_at"] + c["id"])
            query = request.query_params
            body: dict[str, Any] = {}
            if U.PAGE_NUMBER_PARAM in query or U.PAGE_SIZE_PARAM in query:
                try:
                    number = max(1, int(query.get(U.PAGE_NUMBER_PARAM, "1")))
                    size = max(1, min(500, int(query.get(U.PAGE_SIZE_PARAM, "25"))))
                except ValueError:
                    return self._errors(400, [("page parameters must be integers", None)])
                page = items[(number - 1) * size: number * size]
                links = {"self": self._link(request, f"/customers?page[number]={number}&page[size]={size}")}
                if number * size < len(items):
                    links["next"] = self._link(request, f"/customers?page[number]={number + 1}&page[size]={size}")
                body["links"] = links
                items = page
            body["data"] = [self._customer_resource(request, c) for c in items]
            return JSONResponse(body)
        read = await self._read(request)
        if isinstance(read, Response):
            return read
        fields, _ = read
        ext = fields.get("external_id")
        if ext and self._customer(ext) is not None:
            return self._errors(422, [("has already been taken", "external_id")])
        customer = self._store_customer(fields)
        return JSONResponse({"data": self._customer_resource(request, customer)}, status_code=201)

    async def customer_find(self, request: Request) -> Response:
        denied = self._authorised(request)
        if denied:
            return denied
        self.validate(request, None)
        ext = request.path_params["external_id"].lower()
        found = next((c for c in self.state["customers"].values() if (c.get("external_id") or "").lower() == ext), None)
        if found is None:
            return self._errors(404, [("Customer not found", None)])
        return JSONResponse({"data": self._customer_resource(request, found)})

    async def customer(self, request: Request) -> Response:
        if request.method == "GET":
            denied = self._authorised(request)
            if denied:
                return denied
            self.validate(request, None)
            found = self.state["customers"].get(request.path_params["id"])
            if found is None:
                return self._errors(404, [("Customer not found", None)])
            return JSONResponse({"data": self._customer_resource(request, found)})
        read = await self._read(request)
        if isinstance(read, Response):
            return read
        fields, _ = read
        found = self.state["customers"].get(request.path_params["id"])
        if found is None:
            return self._errors(404, [("Customer not found", None)])
        found.update({k: v for k, v in fields.items() if k in CUSTOMER_FIELDS and k != "id"})
        found["updated_at"] = _now()
        return JSONResponse({"data": self._customer_resource(request, found)})

    # -- contacts and addresses ------------------------------------------------------------------
    def _children_routes(self, kind: str) -> list[Route]:
        label = "Contact" if kind == "contacts" else "Address"
        fields_of = CONTACT_FIELDS if kind == "contacts" else ADDRESS_FIELDS

        async def collection(request: Request) -> Response:
            if request.method == "GET":
                denied = self._authorised(request)
                if denied:
                    return denied
                self.validate(request, None)
                customer = self._customer(request.path_params["customer_id"])
                if customer is None:
                    return self._errors(404, [("Customer not found", None)])
                items = [o for o in self.state[kind].values() if o["customer_id"] == customer["id"]]
                return JSONResponse({"data": [self._child_resource(request, kind, o) for o in items]})
            read = await self._read(request)
            if isinstance(read, Response):
                return read
            fields, _ = read
            customer = self._customer(request.path_params["customer_id"])
            if customer is None:
                return self._errors(404, [("Customer not found", None)])
            ext = (fields.get("external_id") or "").lower()
            if ext and any(o["customer_id"] == customer["id"] and (o.get("external_id") or "").lower() == ext
                           for o in self.state[kind].values()):
                return self._errors(422, [("has already been taken", "external_id")])
            record = self._store_child(kind, customer["id"], fields)
            return JSONResponse({"data": self._child_resource(request, kind, record)}, status_code=201)

        async def find(request: Request) -> Response:
            denied = self._authorised(request)
            if denied:
                return denied
            self.validate(request, None)
            customer = self._customer(request.path_params["customer_id"])
            ext = request.path_params["external_id"].lower()
            found = None if customer is None else next(
                (o for o in self.state[kind].values()
                 if o["customer_id"] == customer["id"] and (o.get("external_id") or "").lower() == ext), None)
            if found is None:
                return self._errors(404, [(f"{label} not found", None)])
            return JSONResponse({"data": self._child_resource(request, kind, found)})

        async def one(request: Request) -> Response:
            if request.method == "GET":
                denied = self._authorised(request)
                if denied:
                    return denied
                self.validate(request, None)
                fields: dict[str, Any] = {}
            else:
                read = await self._read(request)
                if isinstance(read, Response):
                    return read
                fields = read[0]
            customer = self._customer(request.path_params["customer_id"])
            found = self.state[kind].get(request.path_params["id"])
            if customer is None or found is None or found["customer_id"] != customer["id"]:
                return self._errors(404, [(f"{label} not found", None)])
            if fields:
                found.update({k: v for k, v in fields.items() if k in fields_of})
                found["updated_at"] = _now()
            return JSONResponse({"data": self._child_resource(request, kind, found)})

        base = f"{API}/customers/{{customer_id}}/{kind}"
        return [
            Route(base, collection, methods=["GET", "POST"]),
            Route(base + "/find/{external_id:path}", find, methods=["GET"]),
            Route(base + "/{id}", one, methods=["GET", "PATCH"]),
        ]

    # -- invoices (designed) ---------------------------------------------------------------
    async def invoices(self, request: Request) -> Response:
        read = await self._read(request)
        if isinstance(read, Response):
            return read
        fields, files = read
        customer = self._customer(str(fields.get(U.F_CUSTOMER_ID) or fields.get(U.F_CUSTOMER_EXTERNAL_ID) or ""))
        if customer is None:
            return self._errors(422, [("debtor not found", U.F_CUSTOMER_ID)])
        ext = str(fields[U.F_EXTERNAL_ID])
        if any((i.get(U.F_EXTERNAL_ID) or "").lower() == ext.lower() for i in self.state["invoices"].values()):
            return self._errors(422, [("has already been taken", U.F_EXTERNAL_ID)])
        items = fields[U.F_ITEMS]
        try:
            amount = Decimal(fields[U.F_AMOUNT])
            items_total = sum((Decimal(i["amount"]) for i in items), Decimal("0.00"))
            net = Decimal(fields.get(U.F_NET_AMOUNT, fields[U.F_AMOUNT]))
            tax = Decimal(fields.get(U.F_TAX_AMOUNT, "0.00"))
        except (InvalidOperation, KeyError) as exc:
            return self._errors(422, [(f"is not a valid amount ({exc})", U.F_AMOUNT)])
        if items_total != amount:
            return self._errors(422, [(f"{amount} does not equal the sum of the invoice items {items_total}",
                                       U.F_AMOUNT)])
        if net + tax != amount:
            return self._errors(422, [(f"net {net} plus tax {tax} does not equal {amount}", U.F_AMOUNT)])
        if fields.get(U.F_DUE_DATE) and fields[U.F_DUE_DATE] < fields[U.F_INVOICE_DATE]:
            return self._errors(422, [("must not be before invoice_date", U.F_DUE_DATE)])
        dispatch = fields.get(U.F_DISPATCH) or self.account_dispatch_default
        now = _now()
        pdf = None
        if U.F_PDF in files:
            filename, content = files[U.F_PDF]
            if not content.startswith(b"%PDF"):
                return self._errors(422, [("is not a PDF file", U.F_PDF)])
            pdf = {"filename": filename, "size": len(content)}
        iid = self._uuid()
        invoice = {
            "id": iid,
            U.F_EXTERNAL_ID: ext,
            U.F_INVOICE_NUMBER: fields[U.F_INVOICE_NUMBER],
            U.F_INVOICE_DATE: fields[U.F_INVOICE_DATE],
            U.F_DUE_DATE: fields.get(U.F_DUE_DATE),
            U.F_CURRENCY: fields[U.F_CURRENCY],
            U.F_AMOUNT: str(amount),
            U.F_NET_AMOUNT: str(net),
            U.F_TAX_AMOUNT: str(tax),
            U.A_OPEN_AMOUNT: str(amount),
            U.A_PAID_AMOUNT: "0.00",
            U.F_DISPATCH: dispatch,
            U.F_LANGUAGE: fields.get(U.F_LANGUAGE) or "de",
            U.F_SHIPPING_MODE: fields.get(U.F_SHIPPING_MODE) or customer.get("shipping_mode") or "email",
            U.F_SENDER: fields.get(U.F_SENDER),
            U.F_ITEMS: items,
            "pdf": pdf,
            U.A_STATUS: U.STATUS_SENT if dispatch == "automatic" else U.STATUS_DRAFT,
            U.A_REMINDER_STAGE: 0,
            U.A_SENT_AT: now if dispatch == "automatic" else None,
            U.A_PAID_AT: None,
            "customer_id": customer["id"],
            "created_at": now,
            "updated_at": now,
        }
        self.state["invoices"][iid] = invoice
        return JSONResponse({"data": self._invoice_resource(request, invoice)}, status_code=201)

    async def invoice_find(self, request: Request) -> Response:
        denied = self._authorised(request)
        if denied:
            return denied
        self.validate(request, None)
        ext = request.path_params["external_id"].lower()
        found = next((i for i in self.state["invoices"].values()
                      if (i.get(U.F_EXTERNAL_ID) or "").lower() == ext), None)
        if found is None:
            return self._errors(404, [("Invoice not found", None)])
        return JSONResponse({"data": self._invoice_resource(request, found)})

    async def invoice(self, request: Request) -> Response:
        denied = self._authorised(request)
        if denied:
            return denied
        self.validate(request, None)
        found = self.state["invoices"].get(request.path_params["id"])
        if found is None:
            return self._errors(404, [("Invoice not found", None)])
        return JSONResponse({"data": self._invoice_resource(request, found)})

    # -- sandbox control: advance an invoice through its life ---------------------------------
    async def advance(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return self._errors(400, [("the body is not JSON", None)])
        ref = str(body.get("invoice") or "")
        target = str(body.get("to") or "").strip()
        invoices = self.state["invoices"]
        inv = invoices.get(ref) or next(
            (i for i in invoices.values() if (i.get(U.F_EXTERNAL_ID) or "").lower() == ref.lower()), None)
        if inv is None:
            return self._errors(404, [(f"no invoice {ref!r}", "invoice")])
        now = _now()
        if body.get("raw"):
            inv[U.A_STATUS] = target
            inv["updated_at"] = now
            self.save()
            return JSONResponse({"data": self._invoice_resource(request, inv)})
        current = inv[U.A_STATUS]
        if current in (U.STATUS_PAID, U.STATUS_CANCELLED):
            return self._errors(409, [(f"the invoice is {current}; it cannot move to {target!r}", "to")])
        reminder = U.REMINDER_RE.match(target)
        if target not in _STEPS and not reminder:
            return self._errors(422, [(f"unknown step {target!r}; use one of {', '.join(_STEPS)} or reminder_<n>",
                                       "to")])
        if current == U.STATUS_DRAFT and target not in ("sent", "open", "cancelled"):
            return self._errors(409, [("the invoice is a draft (manual dispatch); advance it to 'sent' first",
                                       "to")])
        if reminder:
            level = int(reminder.group(1))
            stage = int(inv.get(U.A_REMINDER_STAGE) or 0)
            if level < 1 or level > stage + 1:
                return self._errors(409, [(f"reminder {level} cannot follow reminder stage {stage}", "to")])
            inv[U.A_REMINDER_STAGE] = level
            inv[U.A_STATUS] = U.reminder_status(level)
            customer = self.state["customers"].get(inv.get("customer_id"))
            if customer is not None:
                customer["current_reminder_stage"] = max(level, int(customer.get("current_reminder_stage") or 0))
        elif target == "partially_paid":
            try:
                amount = Decimal(str(body.get("amount")))
            except InvalidOperation:
                return self._errors(422, [("partially_paid needs an amount such as \"50.00\"", "amount")])
            open_amount = Decimal(inv[U.A_OPEN_AMOUNT])
            if not 0 < amount < open_amount:
                return self._errors(422, [(f"must be between 0 and the open amount {open_amount}", "amount")])
            inv[U.A_OPEN_AMOUNT] = str(open_amount - amount)
            inv[U.A_PAID_AMOUNT] = str(Decimal(inv[U.A_PAID_AMOUNT]) + amount)
            inv[U.A_STATUS] = U.STATUS_PARTIALLY_PAID
        elif target == "paid":
            inv[U.A_PAID_AMOUNT] = inv[U.F_AMOUNT]
            inv[U.A_OPEN_AMOUNT] = "0.00"
            inv[U.A_PAID_AT] = now
            inv[U.A_STATUS] = U.STATUS_PAID
        else:
            if target == "sent" and not inv.get(U.A_SENT_AT):
                inv[U.A_SENT_AT] = now
            inv[U.A_STATUS] = target
        inv["updated_at"] = now
        self.save()
        return JSONResponse({"data": self._invoice_resource(request, inv)})

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{SANDBOX_PREFIX}/advance", self.advance, methods=["POST"]),
            Route(f"{API}/customers", self.customers, methods=["GET", "POST"]),
            Route(f"{API}/customers/find/{{external_id:path}}", self.customer_find, methods=["GET"]),
            Route(f"{API}/customers/{{id}}", self.customer, methods=["GET", "PATCH"]),
            *self._children_routes("contacts"),
            *self._children_routes("addresses"),
            Route(f"{API}{U.INVOICES}", self.invoices, methods=["POST"]),
            Route(f"{API}{U.INVOICE_FIND.format(external_id='{external_id:path}')}", self.invoice_find,
                  methods=["GET"]),
            Route(f"{API}{U.INVOICE.format(id='{id}')}", self.invoice, methods=["GET"]),
        ]
