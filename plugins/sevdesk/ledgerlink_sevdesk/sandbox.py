"""A sevDesk emulator: the endpoints the sevDesk target uses, with sevDesk's rules.

It answers under ``/api/v1`` with the ``{"objects": ...}`` envelope, ids and most
amounts as strings, dates as ISO 8601 with a Berlin offset, and errors in the
envelope recorded from a real account (``{"error": {...}, "objects": null}``). The
token goes in the ``Authorization`` header, raw (no "Bearer").

Every request is validated against ``spec/openapi.yaml`` (sevDesk's official
description, unmodified on disk). The official file contradicts sevDesk's own
"sevdesk-Update 2.0" chapter and the recorded behaviour in a few places; those are
corrected in memory by ``SPEC_ERRATA`` (each names its source), and OpenAPI's rule
that ``readOnly`` properties are not required in requests is applied. Beyond the
schema the sandbox enforces the 2.0 rules the plugin relies on: vouchers are created
with status 50 or 100 only, invoices as drafts only, tax rule + booking account + rate
must be a combination the receipt guidance allows (else HTTP 422), OSS rules are
refused on vouchers, payments go through ``bookAmount`` (status 750 / 1000).

Constructed data (not recorded): the revenue accounts of the receipt guidance (SKR03
numbers with made-up ``accountDatevId``s), the StaticCountry ids other than Germany = 1,
the demo token, the SevUser and cost centre.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ledgerlink import OpenAPIValidator, Sandbox
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import mapping

SPEC = Path(__file__).parent / "spec" / "openapi.yaml"
BERLIN = ZoneInfo("Europe/Berlin")
TOKEN_ENV = "SEVDESK_API_TOKEN"
DEMO_TOKEN = "d3m0d3m0d3m0d3m0d3m0d3m0d3m0d3m0"

# SKR03 revenue accounts, for demos only (an operator always chooses; see the README).
DEMO_RULES: list[dict[str, Any]] = [
    {"when": {"treatment": "intra_eu_supply"}, "account": "8125"},
    {"when": {"treatment": "export"}, "account": "8120"},
    {"when": {"tax_rate": 7}, "account": "8300"},
    {"when": {"tax_rate": 0}, "account": "8200"},  # tax-free lines, e.g. redeemed multi-purpose vouchers
    {"when": {}, "account": "8400"},
]
CLIENT = {"id": "1303847", "objectName": "SevClient"}
USER = {"id": "1551095", "objectName": "SevUser"}
CENT = Decimal("0.01")
RATES = {"ZERO": Decimal("0"), "SEVEN": Decimal("7"), "NINETEEN": Decimal("19")}
OSS_RULES = {"18", "19", "20"}
VOUCHER_FORBIDDEN_RULES = OSS_RULES | {"21"}
# 1.0 taxType -> the 2.0 rule sevDesk maps it to "for a transition period" (revenue).
TAX_TYPE_MAP = {"default": "1", "eu": "3", "ss": "11", "noteu": "17"}


# -- the spec and its errata ---------------------------------------------------------
def _set_required(schema: str, old: str | tuple[str, ...], new: str | None) -> Callable[[dict[str, Any]], None]:
    def fix(spec: dict[str, Any]) -> None:
        required = spec["components"]["schemas"][schema]["required"]
        for name in (old,) if isinstance(old, str) else old:
            required.remove(name)
        if new:
            required.append(new)

    return fix


def _voucher_tax_rules(spec: dict[str, Any]) -> None:
    rule = spec["components"]["schemas"]["Model_Voucher"]["properties"]["taxRule"]["properties"]["id"]
    rule["enum"] = ["1", "2", "3", "4", "5", "8", "9", "10", "11", "12", "13", "14", "16", "17", "22"]


# Model_StaticCountryResponse of the community-patched spec (j-mastr/sevdesk-api openapi.yaml).
STATIC_COUNTRY_MODEL: dict[str, Any] = {
    "type": "object",
    "description": "Information on the country",
    "required": ["id", "objectName"],
    "properties": {
        "id": {"type": "string", "description": "Unique identifier of the country", "example": "1"},
        "objectName": {"type": "string", "enum": ["StaticCountry"], "example": "StaticCountry"},
        "additionalInformation": {"type": "string", "nullable": True},
        "code": {"type": "string", "description": "ISO 3166-1 alpha-2, lower case", "example": "de"},
        "name": {"type": "string", "example": "Deutschland"},
        "nameEn": {"type": "string", "example": "Germany"},
        "translationCode": {"type": "string", "example": "COUNTRY_DE"},
        "locale": {"type": "string", "example": "en_US"},
        "priority": {"type": "string", "example": "100"},
    },
}


def _static_country_path(spec: dict[str, Any]) -> None:
    spec["components"]["schemas"]["Model_StaticCountryResponse"] = copy.deepcopy(STATIC_COUNTRY_MODEL)
    page = [{"name": name, "in": "query", "required": False, "schema": {"type": "integer"}}
            for name in ("limit", "offset")]
    spec["paths"]["/StaticCountry"] = {"get": {
        "operationId": "getStaticCountries",
        "summary": "Retrieve the countries (ids for ContactAddress.country, Invoice.addressCountry)",
        "parameters": page,
        "responses": {"200": {"description": "Successful operation", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"objects": {
                "type": "array", "items": {"$ref": "#/components/schemas/Model_StaticCountryResponse"}}}},
        }}}},
    }}


def _delete_drafts(spec: dict[str, Any]) -> None:
    for path, param, model in (("/Voucher/{voucherId}", "voucherId", "voucher"),
                               ("/Invoice/{invoiceId}", "invoiceId", "invoice")):
        spec["paths"][path]["delete"] = {
            "operationId": f"delete{model.capitalize()}",
            "summary": f"Delete a draft {model} (only drafts; else 409, code 159)",
            "parameters": [{"name": param, "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "Successful operation"}},
        }


SPEC_ERRATA: list[tuple[str, str, Callable[[dict[str, Any]], None]]] = [
    ("saveVoucher requires 'voucherPos', a property it does not have; the positions are 'voucherPosSave'",
     "the spec's own saveVoucher properties; NOTES §6", _set_required("saveVoucher", "voucherPos", "voucherPosSave")),
    ("saveInvoice requires 'invoicePos'; the positions are 'invoicePosSave'",
     "the spec's own saveInvoice properties; NOTES §7", _set_required("saveInvoice", "invoicePos", "invoicePosSave")),
    # The next three: the sandbox's own version rule then requires the one that fits.
    ("Model_Voucher requires both taxType (1.0) and taxRule (2.0); each account version takes one",
     "spec chapter 'sevdesk-Update 2.0'; recorded voucher has taxType null",
     _set_required("Model_Voucher", ("taxType", "taxRule"), None)),
    ("Model_Invoice requires both taxType (1.0) and taxRule (2.0)",
     "spec chapter 'sevdesk-Update 2.0'; recorded invoice has taxType null",
     _set_required("Model_Invoice", ("taxType", "taxRule"), None)),
    ("Model_VoucherPos requires both accountingType (1.0) and accountDatev (2.0)",
     "spec chapter 'sevdesk-Update 2.0'; recorded positions carry accountDatev only",
     _set_required("Model_VoucherPos", ("accountingType", "accountDatev"), None)),
    ("Model_Voucher.taxRule.id lists only 1,2,3,4,5,11; the 2.0 chapter lists 17, 22 and the expense rules too",
     "spec chapter 'sevdesk-Update 2.0'; recorded voucher with taxRule 14", _voucher_tax_rules),
    ("GET /StaticCountry is not a path, though the spec sends clients there",
     "the spec's ContactAddress model: 'Country of the contact address. For all countries, send a GET to "
     "/StaticCountry'; fields from Model_StaticCountryResponse of the community-patched spec; NOTES §9",
     _static_country_path),
    ("DELETE /Voucher/{id} and DELETE /Invoice/{id} are not paths, though drafts can be deleted",
     "[RS] measured 'Only drafts can be deleted (409, code 159)'; NOTES §6", _delete_drafts),
]


def _load_spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SPEC.read_text(encoding="utf-8"), Loader=loader)  # type: ignore[no-any-return]


class SevdeskSpecValidator(OpenAPIValidator):
    """The kit's validator over the official spec, optionally with ``SPEC_ERRATA``."""

    def __init__(self, *, errata: bool = True) -> None:
        self.spec = _load_spec()
        self.base_path = "/api/v1"
        self.swagger2 = False
        if errata:
            for _, _, fix in SPEC_ERRATA:
                fix(self.spec)
        # The unpatched file is checked as it is: the errata test shows what fails there.
        self._prepare(drop_read_only_required=errata)


@cache
def spec_validator(errata: bool = True) -> SevdeskSpecValidator:
    """One parsed validator per process (the spec is 670 kB of YAML)."""
    return SevdeskSpecValidator(errata=errata)


# -- helpers ---------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _now() -> str:
    return datetime.now(BERLIN).replace(microsecond=0).isoformat()


def _dec(value: Any, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ApiError(400, f"{what} must be a number") from None
    if not result.is_finite():
        raise ApiError(400, f"{what} must be a number")
    return result


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _s(value: Decimal) -> str:
    """sevDesk's way of writing amounts: "65.45", "55", "0.1"."""
    text = f"{_cents(value):f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _date(value: Any, what: str) -> str:
    """``dd.mm.yyyy`` or a Unix timestamp -> ISO 8601 Berlin midnight."""
    if value is None:
        return None  # type: ignore[return-value]
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        day = datetime.fromtimestamp(int(value), tz=UTC).astimezone(BERLIN).date()
    else:
        text = str(value)
        try:
            if re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", text):
                day = datetime.strptime(text, "%d.%m.%Y").date()
            elif text.isdigit():
                day = datetime.fromtimestamp(int(text), tz=UTC).astimezone(BERLIN).date()
            else:
                day = datetime.fromisoformat(text).astimezone(BERLIN).date()
        except ValueError:
            raise ApiError(422, f"{what} '{text}' is not a valid date") from None
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN).isoformat()


def _ref_id(value: Any, name: str) -> str:
    if not isinstance(value, dict) or "id" not in value or "objectName" not in value:
        raise ApiError(400, f"{name} expected array with 'id' and 'objectName'. {type(value).__name__} given")
    return str(value["id"])


def _flag(value: Any) -> str:
    return "1" if value in (True, 1, "1", "true") else "0"


def _guidance() -> list[dict[str, Any]]:
    recorded = json.loads((Path(__file__).parent / "data" / "receipt_guidance.json").read_text(encoding="utf-8"))
    return list(recorded["objects"])


def _static_countries() -> list[dict[str, Any]]:
    data = json.loads((Path(__file__).parent / "data" / "static_countries.json").read_text(encoding="utf-8"))
    return list(data["objects"])


def _check_accounts() -> list[dict[str, Any]]:
    data = json.loads((Path(__file__).parent / "data" / "check_accounts.json").read_text(encoding="utf-8"))
    return list(data["objects"])


class SevdeskSandbox(Sandbox):
    """The sevDesk emulator (``ledgerlink sandbox serve sevdesk``)."""

    name = "sevdesk"
    vendor = "sevDesk"
    base_path = "/api/v1"
    openapi_file: ClassVar[str | Path | None] = SPEC

    def __init__(self, **kwargs: Any) -> None:
        # The kit would parse the 670 kB spec per instance; use the shared, errata-aware one.
        self.openapi_file = None  # type: ignore[misc]
        super().__init__(**kwargs)
        del self.openapi_file
        self.validator = spec_validator(True)

    # -- kit hooks -------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {
            "version": "2.0",
            "tokens": [DEMO_TOKEN],
            "users": [USER["id"]],
            "cost_centres": {"1": {"id": "1", "objectName": "CostCentre", "number": "100", "name": "Demo"}},
            "check_accounts": {a["id"]: a for a in _check_accounts()},
            "guidance": _guidance(),
            "countries": _static_countries(),
            "contacts": {}, "addresses": {}, "communication_ways": {},
            "vouchers": {}, "voucher_positions": {}, "invoices": {}, "invoice_positions": {},
            "tags": {}, "tag_relations": {}, "logs": {}, "transactions": {},
        }

    def error_response(self, status: int, message: str, code: int | None = None) -> Response:
        body: dict[str, Any] = {
            "error": {
                "exceptionUUID": str(uuid.uuid4()), "message": message, "errorCode": 0,
                "code": code, "data": [], "responseCode": status,
            },
            "objects": None,
        }
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    @classmethod
    def demo_rules(cls) -> list[dict[str, Any]]:
        """SKR03 revenue accounts, for demos only (an operator always chooses)."""
        return [dict(rule) for rule in DEMO_RULES]

    def describe(self) -> str:
        return f"sevDesk sandbox now holds {len(self.state.get('vouchers') or {})} vouchers"

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        settings = {
            "api_token": "${" + TOKEN_ENV + "}",
            "base_url": server_url.rstrip("/") + self.base_path,
            "check_account": 6305996,  # the offline "Basiskonto"
            "book_unassigned_payments": True,
        }
        return settings, {TOKEN_ENV: DEMO_TOKEN}

    def load_seed(self, data: Any) -> None:
        """Seed in sevDesk's own answer shapes, keyed by the endpoint that gave them:
        ``{"Tools/bookkeepingSystemVersion": {"objects": {"version": "1.0"}},
        "CheckAccount": {"objects": [...]}, "ReceiptGuidance": {"objects": [...]},
        "Contact": {"objects": [...]}, "StaticCountry": {"objects": [...]}, "tokens": ["..."]}``.
        Every key is optional."""
        if not isinstance(data, dict):
            raise ValueError("the sevDesk seed is a JSON object keyed by endpoint")
        if "tokens" in data:
            self.state["tokens"] = [str(t) for t in data["tokens"]]
        version = data.get("Tools/bookkeepingSystemVersion")
        if version:
            self.state["version"] = str(version["objects"]["version"])
        if "CheckAccount" in data:
            self.state["check_accounts"] = {str(a["id"]): a for a in data["CheckAccount"]["objects"]}
        if "ReceiptGuidance" in data:
            objects = data["ReceiptGuidance"]["objects"]
            self.state["guidance"] = objects if isinstance(objects, list) else [objects]
        if "StaticCountry" in data:
            self.state["countries"] = [{**c, "id": str(c["id"])} for c in data["StaticCountry"]["objects"]]
        for contact in (data.get("Contact") or {}).get("objects", []):
            stored = copy.deepcopy(contact)
            stored["id"] = str(stored["id"])
            self.state["contacts"][stored["id"]] = stored
            self.state["_counters"] = {**self.state.get("_counters", {}),
                                       "Contact": max(int(stored["id"]), int(self.state.get("_counters", {}).get("Contact", 0)))}

    # -- plumbing --------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization", "") in self.state["tokens"]

    def _respond(self, status: int, objects: Any, **extra: Any) -> Response:
        return Response(mapping.dumps({**extra, "objects": objects}), status_code=status,
                        media_type="application/json")

    def _api(self, handler: Callable[..., Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self._authorised(request):
                return self.error_response(401, "Authentication required")
            raw = await request.body()
            body: Any = None
            if raw:
                try:
                    body = mapping.loads(raw)
                    plain = json.loads(raw)
                except ValueError:
                    self.validate(request, None)
                    return self.error_response(400, "Malformed JSON in request body")
            else:
                plain = None
            problems = self.validate(request, plain)
            if problems:
                return self.error_response(400, "Validation error: " + "; ".join(problems[:5]))
            try:
                result = await handler(request, body)
            except ApiError as exc:
                return self.error_response(exc.status, exc.message, exc.code)
            if isinstance(result, Response):
                return result
            status, objects = result
            if isinstance(objects, list) and request.method == "GET" and request.query_params.get("countAll") == "true":
                return self._respond(status, objects, total=str(len(objects)))
            return self._respond(status, objects)

        return endpoint

    def routes(self) -> list[BaseRoute]:
        p = self.base_path
        table: list[tuple[str, str, Callable[..., Awaitable[Any]]]] = [
            ("GET", "/Tools/bookkeepingSystemVersion", self.version_),
            ("GET", "/CheckAccount", self.check_accounts),
            ("GET", "/ReceiptGuidance/forRevenue", self.guidance_revenue),
            ("GET", "/ReceiptGuidance/forExpense", self.guidance_expense),
            ("GET", "/ReceiptGuidance/forAllAccounts", self.guidance_all),
            ("GET", "/StaticCountry", self.static_countries),
            ("GET", "/Contact/Factory/getNextCustomerNumber", self.next_customer_number),
            ("GET", "/Contact", self.list_contacts),
            ("POST", "/Contact", self.create_contact),
            ("GET", "/Contact/{id}", self.get_contact),
            ("GET", "/ContactAddress", self.list_addresses),
            ("POST", "/ContactAddress", self.create_address),
            ("GET", "/CommunicationWay", self.list_communication_ways),
            ("POST", "/CommunicationWay", self.create_communication_way),
            ("POST", "/Voucher/Factory/saveVoucher", self.save_voucher),
            ("GET", "/Voucher", self.list_vouchers),
            ("GET", "/Voucher/{id}", self.get_voucher),
            ("PUT", "/Voucher/{id}/bookAmount", self.book_voucher),
            ("DELETE", "/Voucher/{id}", self.delete_voucher),
            ("DELETE", "/Invoice/{id}", self.delete_invoice),
            ("POST", "/Invoice/Factory/saveInvoice", self.save_invoice),
            ("GET", "/Invoice", self.list_invoices),
            ("GET", "/Invoice/{id}", self.get_invoice),
            ("PUT", "/Invoice/{id}/sendBy", self.send_invoice),
            ("PUT", "/Invoice/{id}/bookAmount", self.book_invoice),
            ("POST", "/Invoice/{id}/cancelInvoice", self.cancel_invoice),
            ("GET", "/VoucherPos", self.list_voucher_positions),
            ("GET", "/Tag", self.list_tags),
            ("POST", "/Tag/Factory/create", self.create_tag),
            ("GET", "/TagRelation", self.list_tag_relations),
        ]
        return [Route(p + path, self._api(handler), methods=[method]) for method, path, handler in table]

    @staticmethod
    def _page(request: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        q = request.query_params
        try:
            offset = max(0, int(q.get("offset", 0)))
            limit = min(1000, max(1, int(q.get("limit", 100))))
        except ValueError:
            raise ApiError(400, "limit and offset must be integers") from None
        return rows[offset: offset + limit]

    def _get(self, table: str, obj_id: str, model: str) -> dict[str, Any]:
        row = self.state[table].get(str(obj_id))
        if row is None:
            raise ApiError(404, f"No Model_{model} with the id {obj_id} was found", 151)
        return row

    # -- account -----------------------------------------------------------------------
    async def version_(self, request: Request, body: Any) -> Any:
        return 200, {"version": self.state["version"]}

    async def check_accounts(self, request: Request, body: Any) -> Any:
        # sevDesk names the client (the account) on every object it returns.
        accounts = [{"sevClient": CLIENT, **a} for a in self.state["check_accounts"].values()]
        return 200, self._page(request, accounts)

    def _guidance_for(self, receipt_type: str | None) -> list[dict[str, Any]]:
        if self.state["version"] != "2.0":
            raise ApiError(400, "The receipt guidance is only available in bookkeeping system version 2.0")
        return [g for g in self.state["guidance"]
                if receipt_type is None or receipt_type in g.get("allowedReceiptTypes", [])]

    async def guidance_revenue(self, request: Request, body: Any) -> Any:
        return 200, self._page(request, self._guidance_for("REVENUE"))

    async def guidance_expense(self, request: Request, body: Any) -> Any:
        return 200, self._page(request, self._guidance_for("EXPENSE"))

    async def guidance_all(self, request: Request, body: Any) -> Any:
        return 200, self._page(request, self._guidance_for(None))

    def _countries(self) -> list[dict[str, Any]]:
        # A --state file written before the sandbox knew countries has none: use the built-in list.
        return self.state.setdefault("countries", _static_countries())  # type: ignore[no-any-return]

    def _known_country(self, country_id: str) -> str:
        if not any(str(c["id"]) == country_id for c in self._countries()):
            raise ApiError(404, f"No Model_StaticCountry with the id {country_id} was found", 151)
        return country_id

    async def static_countries(self, request: Request, body: Any) -> Any:
        return 200, self._page(request, list(self._countries()))

    # -- contacts ----------------------------------------------------------------------
    async def next_customer_number(self, request: Request, body: Any) -> Any:
        numbers = [int(c["customerNumber"]) for c in self.state["contacts"].values()
                   if str(c.get("customerNumber") or "").isdigit()]
        return 200, str(max(numbers + [1000]) + 1)

    async def list_contacts(self, request: Request, body: Any) -> Any:
        q = request.query_params
        rows = list(self.state["contacts"].values())
        if q.get("depth") != "1":  # without depth=1 sevDesk lists organisations only
            rows = [c for c in rows if c.get("name")]
        if "customerNumber" in q:
            rows = [c for c in rows if str(c.get("customerNumber") or "") == q["customerNumber"]]
        if "name" in q:
            needle = q["name"].casefold()
            rows = [c for c in rows if any(needle in str(c.get(f) or "").casefold()
                                           for f in ("name", "surename", "familyname"))]
        if "category[id]" in q:
            rows = [c for c in rows if c["category"]["id"] == q["category[id]"]]
        return 200, self._page(request, rows)

    async def get_contact(self, request: Request, body: Any) -> Any:
        return 200, [self._get("contacts", request.path_params["id"], "Contact")]

    async def create_contact(self, request: Request, body: Any) -> Any:
        category = _ref_id(body.get("category"), "category")
        if not any(body.get(k) for k in ("name", "surename", "familyname")):
            raise ApiError(400, "A contact needs a name (organisation) or a surename/familyname (person)")
        contact_id = str(self.next_id("Contact", 138810375))
        stamp = _now()
        contact = {
            "id": contact_id, "objectName": "Contact", "additionalInformation": None,
            "create": stamp, "update": stamp,
            "name": body.get("name"), "status": str(body.get("status") or 100),
            "customerNumber": body.get("customerNumber"),
            "surename": body.get("surename"), "familyname": body.get("familyname"),
            "titel": body.get("titel"), "category": {"id": category, "objectName": "Category"},
            "description": body.get("description"), "academicTitle": None, "gender": body.get("gender"),
            "sevClient": CLIENT, "name2": body.get("name2"), "birthday": None,
            "vatNumber": body.get("vatNumber"), "bankAccount": None, "bankNumber": None,
            "mandateReference": None, "defaultCashbackTime": None, "defaultCashbackPercent": None,
            "defaultTimeToPay": None, "taxNumber": body.get("taxNumber"), "taxOffice": None,
            "exemptVat": _flag(body.get("exemptVat")), "taxType": None, "defaultDiscountAmount": None,
            "defaultDiscountPercentage": "1", "buyerReference": body.get("buyerReference") or "-",
            "governmentAgency": _flag(body.get("governmentAgency")), "defaultShowVat": "1",
        }
        self.state["contacts"][contact_id] = contact
        return 201, contact

    async def list_addresses(self, request: Request, body: Any) -> Any:
        rows = list(self.state["addresses"].values())
        if "contact[id]" in request.query_params:
            rows = [a for a in rows if a["contact"]["id"] == request.query_params["contact[id]"]]
        return 200, self._page(request, rows)

    async def create_address(self, request: Request, body: Any) -> Any:
        contact = self._get("contacts", _ref_id(body.get("contact"), "contact"), "Contact")
        country = self._known_country(_ref_id(body.get("country"), "country"))
        category = _ref_id(body.get("category"), "category")
        address_id = str(self.next_id("ContactAddress", 120178863))
        stamp = _now()
        address = {
            "id": address_id, "objectName": "ContactAddress", "additionalInformation": None,
            "create": stamp, "update": stamp, "contact": contact,
            "street": body.get("street"), "zip": body.get("zip"), "city": body.get("city"),
            "country": {"id": country, "objectName": "StaticCountry"},
            "category": {"id": category, "objectName": "Category"},
            "name": body.get("name"), "sevClient": CLIENT,
        }
        self.state["addresses"][address_id] = {**address, "contact": {"id": contact["id"], "objectName": "Contact"}}
        return 201, address

    async def list_communication_ways(self, request: Request, body: Any) -> Any:
        q = request.query_params
        rows = list(self.state["communication_ways"].values())
        if "contact[id]" in q:
            rows = [w for w in rows if w["contact"]["id"] == q["contact[id]"]]
        if "type" in q:
            rows = [w for w in rows if w["type"] == q["type"]]
        if "main" in q:
            rows = [w for w in rows if w["main"] == _flag(q["main"])]
        return 200, self._page(request, rows)

    async def create_communication_way(self, request: Request, body: Any) -> Any:
        contact_id = self._get("contacts", _ref_id(body.get("contact"), "contact"), "Contact")["id"]
        key = _ref_id(body.get("key"), "key")
        way_id = str(self.next_id("CommunicationWay", 115440600))
        stamp = _now()
        way = {
            "id": way_id, "objectName": "CommunicationWay", "additionalInformation": None,
            "create": stamp, "update": stamp, "contact": {"id": contact_id, "objectName": "Contact"},
            "type": body["type"], "value": body["value"],
            "key": {"id": key, "objectName": "CommunicationWayKey"}, "main": _flag(body.get("main")),
            "sevClient": CLIENT,
        }
        self.state["communication_ways"][way_id] = way
        return 201, way

    # -- currency ----------------------------------------------------------------------
    def _currency(self, doc: dict[str, Any]) -> tuple[str, Decimal | None]:
        """The document's currency and, for a foreign one, its rate (book currency per
        unit). The spec (Model_Voucher.currency): a currency other than the account's
        needs propertyForeignCurrencyDeadline or propertyExchangeRate; the deadline wins."""
        book = self.state.get("currency") or "EUR"
        currency = str(doc.get("currency") or book).upper()
        if currency == book:
            return currency, None
        deadline, rate = doc.get("propertyForeignCurrencyDeadline"), doc.get("propertyExchangeRate")
        if deadline in (None, "") and rate in (None, ""):
            raise ApiError(422, f"The currency {currency} differs from the default currency {book} of the account:"
                                " propertyForeignCurrencyDeadline or propertyExchangeRate must be specified")
        if deadline not in (None, ""):
            _date(deadline, "propertyForeignCurrencyDeadline")
            known = (self.state.get("exchange_rates") or {}).get(currency)
            if known is None:
                raise ApiError(422, f"No exchange rate for {currency} is known for that day")
            return currency, _dec(known, "exchange rate")
        value = _dec(rate, "propertyExchangeRate")
        if value <= 0:
            raise ApiError(422, "propertyExchangeRate must be greater than 0")
        return currency, value

    @staticmethod
    def _sums(net: Decimal, tax: Decimal, rate: Decimal | None) -> dict[str, Any]:
        """The sums of a document: in the book currency, and for a foreign one also in
        its own currency (*ForeignCurrency), converted at the rate per sum."""
        if rate is None:
            return {"sumNet": _s(net), "sumTax": _s(tax), "sumGross": _s(net + tax),
                    "sumNetAccounting": _s(net), "sumTaxAccounting": _s(tax), "sumGrossAccounting": _s(net + tax),
                    "sumNetForeignCurrency": "0", "sumTaxForeignCurrency": "0", "sumGrossForeignCurrency": "0"}
        book_net, book_tax = _cents(net * rate), _cents(tax * rate)
        return {"sumNet": _s(book_net), "sumTax": _s(book_tax), "sumGross": _s(book_net + book_tax),
                "sumNetAccounting": _s(book_net), "sumTaxAccounting": _s(book_tax),
                "sumGrossAccounting": _s(book_net + book_tax),
                "sumNetForeignCurrency": _s(net), "sumTaxForeignCurrency": _s(tax),
                "sumGrossForeignCurrency": _s(net + tax)}

    async def delete_voucher(self, request: Request, body: Any) -> Any:
        voucher = self._get("vouchers", request.path_params["id"], "Voucher")
        if voucher["status"] != "50":
            raise ApiError(409, "Only drafts can be deleted", 159)
        del self.state["vouchers"][voucher["id"]]
        for pos_id in [k for k, v in self.state["voucher_positions"].items() if v["voucher"]["id"] == voucher["id"]]:
            del self.state["voucher_positions"][pos_id]
        return 200, [None]

    async def delete_invoice(self, request: Request, body: Any) -> Any:
        invoice = self._get("invoices", request.path_params["id"], "Invoice")
        if invoice["status"] != "100":
            raise ApiError(409, "Only drafts can be deleted", 159)
        del self.state["invoices"][invoice["id"]]
        for pos_id in [k for k, v in self.state["invoice_positions"].items() if v["invoice"]["id"] == invoice["id"]]:
            del self.state["invoice_positions"][pos_id]
        return 200, [None]

    # -- vouchers ----------------------------------------------------------------------
    def _allowed(self, account_datev_id: str, rule: str, rate: Decimal, receipt_type: str) -> str | None:
        entry = next((g for g in self.state["guidance"] if str(g["accountDatevId"]) == account_datev_id), None)
        if entry is None:
            return f"The account {account_datev_id} does not exist or cannot be used for vouchers"
        label = f"account {entry.get('accountNumber')} ({entry.get('accountName')})"
        if receipt_type not in entry.get("allowedReceiptTypes", []):
            return f"The {label} cannot be used for {receipt_type.lower()} receipts"
        rules = {str(r["id"]): r for r in entry.get("allowedTaxRules", [])}
        if rule not in rules:
            return f"The tax rule {rule} is not allowed for the {label}"
        if rate not in {RATES[name] for name in rules[rule].get("taxRates", []) if name in RATES}:
            return f"The tax rate {rate.normalize():f} is not allowed for tax rule {rule} and the {label}"
        return None

    async def save_voucher(self, request: Request, body: Any) -> Any:
        voucher_in = body.get("voucher") or {}
        positions_in = body.get("voucherPosSave") or []
        existing = None
        if voucher_in.get("id"):
            # [RS]: only drafts can be updated, and every position is sent again with its id.
            existing = self._get("vouchers", str(voucher_in["id"]), "Voucher")
            if existing["status"] != "50":
                raise ApiError(400, "Only drafts can be updated. Use resetToDraft first", 90400)
        status = str(voucher_in.get("status"))
        if status not in ("50", "100"):
            raise ApiError(422, "Vouchers can only be created with status 50 (draft) or 100 (open)."
                                " Use bookAmount to mark a voucher as paid.")
        if not positions_in:
            raise ApiError(422, "The given document must have at least one position")
        credit_debit = voucher_in.get("creditDebit")
        receipt_type = "REVENUE" if credit_debit == "D" else "EXPENSE"
        if not voucher_in.get("supplier") and not voucher_in.get("supplierName"):
            raise ApiError(422, "Either supplier or supplierName must be given")
        supplier = None
        if voucher_in.get("supplier"):
            supplier = self._get("contacts", _ref_id(voucher_in["supplier"], "supplier"), "Contact")
        version = self.state["version"]
        rule = None
        tax_type = voucher_in.get("taxType")
        if version == "2.0":
            if voucher_in.get("taxRule"):
                rule = _ref_id(voucher_in["taxRule"], "taxRule")
            elif tax_type in TAX_TYPE_MAP and tax_type != "noteu":
                rule = TAX_TYPE_MAP[tax_type]
            else:
                raise ApiError(422, "taxRule is required in bookkeeping system version 2.0"
                                    + (f"; taxType '{tax_type}' is not supported" if tax_type else ""))
            if rule in VOUCHER_FORBIDDEN_RULES:
                raise ApiError(422, f"The tax rule {rule} is not allowed for vouchers")
        elif not tax_type or voucher_in.get("taxRule"):
            raise ApiError(422, "taxType is required (bookkeeping system version 1.0 does not know taxRule)")
        cost_centre = None
        if voucher_in.get("costCentre"):
            cost_centre = self._get("cost_centres", _ref_id(voucher_in["costCentre"], "costCentre"), "CostCentre")
        nets = {bool(p.get("net")) for p in positions_in}
        if len(nets) > 1:
            raise ApiError(422, "All positions must use the same value for 'net'")
        currency, rate_in_book = self._currency(voucher_in)
        if existing is not None:
            voucher_id = existing["id"]
            for pos_id in [k for k, v in self.state["voucher_positions"].items() if v["voucher"]["id"] == voucher_id]:
                del self.state["voucher_positions"][pos_id]
        else:
            voucher_id = str(self.next_id("Voucher", 156270655))
        stamp = _now()
        positions = []
        sum_net = sum_tax = Decimal("0")
        for index, pos in enumerate(positions_in, start=1):
            rate = _dec(pos.get("taxRate"), f"voucherPosSave[{index}].taxRate")
            if rate not in RATES.values():
                raise ApiError(422, f"The tax rate {rate.normalize():f} is not allowed; use 0, 7 or 19")
            if version == "2.0":
                if not pos.get("accountDatev"):
                    raise ApiError(422, "accountDatev is required for positions in bookkeeping system version 2.0")
                account = _ref_id(pos["accountDatev"], "accountDatev")
                problem = self._allowed(account, str(rule), rate, receipt_type)
                if problem:
                    raise ApiError(422, problem)
                account_field = {"accountDatev": {"id": account, "objectName": "AccountDatev"}}
            else:
                if not pos.get("accountingType"):
                    raise ApiError(422, "accountingType is required for positions")
                account_field = {"accountingType": {"id": _ref_id(pos["accountingType"], "accountingType"),
                                                    "objectName": "AccountingType"}}
            if pos.get("net"):
                net = _cents(_dec(pos.get("sumNet"), "sumNet"))
                tax = _cents(net * rate / 100)
                gross = net + tax
            else:
                gross = _cents(_dec(pos.get("sumGross"), "sumGross"))
                tax = _cents(gross * rate / (100 + rate))
                net = gross - tax
            sum_net += net
            sum_tax += tax
            pos_id = str(self.next_id("VoucherPos", 213070387))
            position = {
                "id": pos_id, "objectName": "VoucherPos", "additionalInformation": None,
                "create": stamp, "update": stamp, "sevClient": CLIENT,
                "voucher": {"id": voucher_id, "objectName": "Voucher"},
                "taxRate": _s(rate), "sum": None, "net": _flag(pos.get("net")), "isAsset": _flag(pos.get("isAsset")),
                "sumNet": _s(net), "sumTax": _s(tax), "sumGross": _s(gross),
                "sumNetAccounting": _s(net), "sumTaxAccounting": _s(tax), "sumGrossAccounting": _s(gross),
                "comment": pos.get("comment"), **account_field,
            }
            positions.append(position)
            self.state["voucher_positions"][pos_id] = position
        voucher = {
            "id": voucher_id, "objectName": "Voucher", "additionalInformation": None,
            "create": stamp, "update": stamp, "sevClient": CLIENT, "createUser": USER,
            "voucherDate": _date(voucher_in.get("voucherDate") or stamp, "voucherDate"),
            "supplier": {"id": supplier["id"], "objectName": "Contact"} if supplier else None,
            "supplierName": voucher_in.get("supplierName") or (supplier or {}).get("name"),
            "description": voucher_in.get("description"),
            "payDate": None, "status": status, "currency": currency,
            **self._sums(sum_net, sum_tax, rate_in_book), "showNet": "1", "paidAmount": 0,
            "taxType": tax_type if version == "1.0" else None, "creditDebit": credit_debit,
            "hidden": "0", "voucherType": voucher_in.get("voucherType"), "enshrined": None,
            "paymentDeadline": _date(voucher_in.get("paymentDeadline"), "paymentDeadline"),
            "deliveryDate": _date(voucher_in.get("deliveryDate") or voucher_in.get("voucherDate"), "deliveryDate"),
            "deliveryDateUntil": _date(voucher_in.get("deliveryDateUntil"), "deliveryDateUntil"),
            "costCentre": {"id": cost_centre["id"], "objectName": "CostCentre"} if cost_centre else None,
            "taxRule": {"id": rule, "objectName": "TaxRule"} if rule else None,
        }
        if rate_in_book is not None:
            voucher["propertyExchangeRate"] = f"{rate_in_book:f}"
        if existing is not None:
            voucher["create"] = existing["create"]
        self.state["vouchers"][voucher_id] = voucher
        return 201, {"voucher": voucher, "voucherPos": positions, "vatdrop": "not relevant"}

    async def list_vouchers(self, request: Request, body: Any) -> Any:
        q = request.query_params
        rows = list(self.state["vouchers"].values())
        if "descriptionLike" in q:  # a substring match
            needle = q["descriptionLike"].casefold()
            rows = [v for v in rows if needle in str(v.get("description") or "").casefold()]
        if "status" in q:
            rows = [v for v in rows if v["status"] == q["status"]]
        if "creditDebit" in q:
            rows = [v for v in rows if v["creditDebit"] == q["creditDebit"]]
        if "contact[id]" in q:
            rows = [v for v in rows if (v.get("supplier") or {}).get("id") == q["contact[id]"]]
        return 200, self._page(request, rows)

    async def get_voucher(self, request: Request, body: Any) -> Any:
        return 200, [self._get("vouchers", request.path_params["id"], "Voucher")]

    def _book(self, doc: dict[str, Any], kind: str, body: dict[str, Any], day_iso: str) -> dict[str, Any]:
        account = self._get("check_accounts", _ref_id(body.get("checkAccount"), "checkAccount"), "CheckAccount")
        if account.get("type") == "online" and not body.get("checkAccountTransaction"):
            raise ApiError(422, "Bookings on online check accounts need a checkAccountTransaction;"
                                " only offline and register accounts create one themselves")
        currency = str(doc.get("currency") or "EUR").upper()
        if str(account.get("currency") or currency).upper() != currency:
            # Stricter than documented: a payment in one currency is never booked as the
            # same number on an account in another.
            raise ApiError(422, f"The check account {account['id']} is in {account.get('currency')}, the "
                                f"{kind.lower()} in {currency}")
        amount = _cents(_dec(body.get("amount"), "amount"))
        if kind == "Voucher" and doc.get("creditDebit") == "C":
            amount = -amount  # an expense is paid out: [RS] measured negative amounts
        total = Decimal(doc["sumGross"])
        if Decimal(str(doc.get("sumGrossForeignCurrency") or 0)) != 0:
            total = Decimal(doc["sumGrossForeignCurrency"])  # paidAmount in the document's currency
        paid = Decimal(str(doc.get("paidAmount") or 0))
        from_status = doc["status"]
        if abs(amount) > total - paid:
            # Stricter than measured ([RS]: sevDesk accepts it and caps paidAmount), so a
            # connector that books too much is caught here.
            raise ApiError(422, f"The amount {_s(abs(amount))} exceeds the open amount {_s(total - paid)}")
        paid = paid + abs(amount)
        doc["paidAmount"] = paid
        doc["status"] = "1000" if paid >= total else ("750" if paid > 0 else from_status)
        if doc["status"] == "1000":
            doc["payDate"] = day_iso
        doc["update"] = _now()
        log_id = str(self.next_id("Log", 148586845))
        transaction_id = str(self.next_id("CheckAccountTransaction", 2000000))
        self.state["transactions"][transaction_id] = {
            "id": transaction_id, "objectName": "CheckAccountTransaction", "valueDate": day_iso,
            "amount": _s(amount), "checkAccount": {"id": account["id"], "objectName": "CheckAccount"},
            "status": "300", "paymtPurpose": doc.get("description") or doc.get("header"),
            kind.lower(): {"id": doc["id"], "objectName": kind},
        }
        entry = {
            "id": log_id, "objectName": f"{kind}Log", "additionalInformation": None, "create": _now(),
            kind.lower(): {"id": doc["id"], "objectName": kind},
            "fromStatus": from_status, "toStatus": doc["status"], "amountPayed": _s(amount),
            "bookingDate": day_iso, "sevClient": CLIENT,
        }
        self.state["logs"][log_id] = entry
        return entry

    async def book_voucher(self, request: Request, body: Any) -> Any:
        voucher = self._get("vouchers", request.path_params["id"], "Voucher")
        if voucher["status"] == "1000":
            raise ApiError(400, "The voucher is already paid", 751)
        if voucher["status"] not in ("100", "750"):
            raise ApiError(400, "Only vouchers with status 100 (open) can be booked; register the draft first")
        try:
            day = datetime.fromisoformat(str(body.get("date")))
        except ValueError:
            raise ApiError(422, f"date '{body.get('date')}' is not a valid date-time") from None
        return 200, self._book(voucher, "Voucher", body, day.astimezone(BERLIN).isoformat())

    # -- invoices ----------------------------------------------------------------------
    async def save_invoice(self, request: Request, body: Any) -> Any:
        inv = body.get("invoice") or {}
        positions_in = body.get("invoicePosSave") or []
        if str(inv.get("status")) != "100":
            raise ApiError(422, "Invoices can only be created as drafts (status 100)")
        if not positions_in:
            raise ApiError(422, "The given document must have at least one position")
        contact = self._get("contacts", _ref_id(inv.get("contact"), "contact"), "Contact")
        person = _ref_id(inv.get("contactPerson"), "contactPerson")
        if person not in self.state["users"]:
            raise ApiError(404, f"No Model_SevUser with the id {person} was found", 151)
        if not inv.get("currency"):
            raise ApiError(422, "Currency is required.")
        version = self.state["version"]
        rule = None
        if version == "2.0":
            if not inv.get("taxRule"):
                raise ApiError(422, "taxRule is required in bookkeeping system version 2.0")
            rule = _ref_id(inv["taxRule"], "taxRule")
        elif not inv.get("taxType"):
            raise ApiError(422, "taxType is required")
        country = self._known_country(_ref_id(inv.get("addressCountry"), "addressCountry"))
        currency, rate_in_book = self._currency(inv)
        show_net = inv.get("showNet") in (True, 1, "1")
        invoice_id = str(self.next_id("Invoice", 135582099))
        stamp = _now()
        positions = []
        sum_net = sum_tax = Decimal("0")
        for index, pos in enumerate(positions_in, start=1):
            rate = _dec(pos.get("taxRate"), f"invoicePosSave[{index}].taxRate")
            if rule not in OSS_RULES and rate not in RATES.values():
                raise ApiError(422, f"The tax rate {rate.normalize():f} is not allowed; use 0, 7 or 19")
            if rule in {"2", "3", "4", "5", "11", "17", "21"} and rate != 0:
                raise ApiError(422, f"The tax rule {rule} only allows the tax rate 0")
            quantity = _dec(pos.get("quantity"), "quantity")
            price = _dec(pos.get("price"), "price")
            position_net = show_net
            if pos.get("priceGross") is not None:
                price, position_net = _dec(pos["priceGross"], "priceGross"), False
            elif pos.get("priceNet") is not None:
                price, position_net = _dec(pos["priceNet"], "priceNet"), True
            if position_net:
                net = _cents(quantity * price)
                tax = _cents(net * rate / 100)
                gross = net + tax
            else:
                gross = _cents(quantity * price)
                tax = _cents(gross * rate / (100 + rate))
                net = gross - tax
            sum_net += net
            sum_tax += tax
            pos_id = str(self.next_id("InvoicePos", 362964134))
            position = {
                "id": pos_id, "objectName": "InvoicePos", "additionalInformation": None,
                "invoice": {"id": invoice_id, "objectName": "Invoice"},
                "quantity": quantity, "price": price, "name": pos.get("name"), "priority": 100,
                "unity": {"id": _ref_id(pos.get("unity"), "unity"), "objectName": "Unity"},
                "positionNumber": index, "text": pos.get("text"), "discount": 0,
                "taxRate": f"{_cents(rate):f}", "sumNet": net, "sumGross": gross, "sumTax": tax,
                "sumNetAccounting": net, "sumTaxAccounting": tax, "sumGrossAccounting": gross,
            }
            positions.append(position)
            self.state["invoice_positions"][pos_id] = position
        time_to_pay = inv.get("timeToPay")
        invoice = {
            "id": invoice_id, "objectName": "Invoice", "additionalInformation": None,
            "invoiceNumber": None, "contact": {"id": contact["id"], "objectName": "Contact"},
            "create": stamp, "update": stamp, "sevClient": CLIENT,
            "invoiceDate": _date(inv.get("invoiceDate"), "invoiceDate"), "header": inv.get("header"),
            "timeToPay": None if time_to_pay is None else str(time_to_pay), "discount": "0",
            "addressCountry": {"id": country, "objectName": "StaticCountry"},
            "payDate": None, "createUser": USER,
            "deliveryDate": _date(inv.get("deliveryDate"), "deliveryDate"),
            "status": "100", "contactPerson": {"id": person, "objectName": "SevUser"},
            "taxRate": "0", "taxText": inv.get("taxText"), "taxType": inv.get("taxType") if version == "1.0" else None,
            "sendDate": None, "invoiceType": inv.get("invoiceType") or "RE", "currency": currency,
            **self._sums(sum_net, sum_tax, rate_in_book),
            "paidAmount": 0, "customerInternalNote": inv.get("customerInternalNote"),
            "showNet": _flag(show_net), "enshrined": None, "sendType": None,
            "costCentre": inv.get("costCentre"), "origin": None,
            "taxRule": {"id": rule, "objectName": "TaxRule"} if rule else None,
        }
        self.state["invoices"][invoice_id] = invoice
        return 201, {"invoice": invoice, "invoicePos": positions}

    async def list_invoices(self, request: Request, body: Any) -> Any:
        q = request.query_params
        rows = list(self.state["invoices"].values())
        if "customerInternalNote" in q:  # undocumented filter, exact per [RS]
            rows = [i for i in rows if i.get("customerInternalNote") == q["customerInternalNote"]]
        if "status" in q:
            rows = [i for i in rows if i["status"] == q["status"]]
        if "invoiceNumber" in q:
            rows = [i for i in rows if i.get("invoiceNumber") == q["invoiceNumber"]]
        if "contact[id]" in q:
            rows = [i for i in rows if i["contact"]["id"] == q["contact[id]"]]
        if "invoiceType" in q:
            rows = [i for i in rows if i.get("invoiceType") == q["invoiceType"]]
        if "origin[id]" in q:
            rows = [i for i in rows if str((i.get("origin") or {}).get("id")) == q["origin[id]"]
                    and (i.get("origin") or {}).get("objectName") == q.get("origin[objectName]", "Invoice")]
        return 200, self._page(request, rows)

    async def get_invoice(self, request: Request, body: Any) -> Any:
        return 200, [self._get("invoices", request.path_params["id"], "Invoice")]

    async def send_invoice(self, request: Request, body: Any) -> Any:
        invoice = self._get("invoices", request.path_params["id"], "Invoice")
        if body.get("sendDraft"):
            return 200, invoice
        if invoice["status"] == "100":
            number = self.next_id("InvoiceNumber", 999)
            invoice.update({
                "status": "200", "invoiceNumber": f"RE-{number}", "sendType": body["sendType"],
                "sendDate": _now(), "enshrined": _now(), "update": _now(),
            })
        return 200, invoice

    async def book_invoice(self, request: Request, body: Any) -> Any:
        invoice = self._get("invoices", request.path_params["id"], "Invoice")
        if invoice["status"] == "1000":
            raise ApiError(400, "The invoice is already paid", 750)
        if invoice["status"] == "100":
            raise ApiError(400, "A draft invoice cannot be booked; send it first")
        date_value = body.get("date")
        if not isinstance(date_value, int):
            raise ApiError(422, "date must be a Unix timestamp for invoices")
        day = datetime.fromtimestamp(date_value, tz=UTC).astimezone(BERLIN)
        return 200, self._book(invoice, "Invoice", body, day.isoformat())

    async def cancel_invoice(self, request: Request, body: Any) -> Any:
        """sevDesk's cancelInvoice: a cancellation invoice (type SR) with the original's
        positions negated, referencing it (``origin``), paid automatically; the
        original is cancelled. Drafts, partly paid and already cancelled invoices are
        refused (codes as [RS] recorded them; 390 arrives inside HTTP 200)."""
        original = self._get("invoices", request.path_params["id"], "Invoice")
        if original["status"] in ("50", "100"):
            raise ApiError(400, "A draft invoice cannot be cancelled; delete it instead")
        if original.get("invoiceType") == "SR":
            raise ApiError(400, "A cancellation invoice cannot be cancelled")
        if any((i.get("origin") or {}).get("id") == original["id"] and i.get("invoiceType") == "SR"
               for i in self.state["invoices"].values()):
            raise ApiError(400, "The invoice is already cancelled", 421)
        if original["status"] == "750":
            error = {"exceptionUUID": str(uuid.uuid4()), "message": "A partly paid invoice cannot be cancelled",
                     "errorCode": 0, "code": 390, "data": [], "responseCode": 200}
            return Response(json.dumps({"error": error, "objects": None}), status_code=200,
                            media_type="application/json")
        invoice_id = str(self.next_id("Invoice", 135582099))
        stamp = _now()
        for position in [p for p in self.state["invoice_positions"].values()
                         if p["invoice"]["id"] == original["id"]]:
            pos_id = str(self.next_id("InvoicePos", 362964134))
            negated = {key: -value if key.startswith("sum") else value for key, value in position.items()}
            self.state["invoice_positions"][pos_id] = {
                **negated, "id": pos_id, "price": -position["price"],
                "invoice": {"id": invoice_id, "objectName": "Invoice"}}
        number = self.next_id("InvoiceNumber", 999)
        negate = ("sumNet", "sumTax", "sumGross", "sumNetAccounting", "sumTaxAccounting", "sumGrossAccounting",
                  "sumNetForeignCurrency", "sumTaxForeignCurrency", "sumGrossForeignCurrency")
        cancellation = {
            **copy.deepcopy(original), "id": invoice_id, "create": stamp, "update": stamp,
            "invoiceNumber": f"SR-{number}", "invoiceType": "SR", "header": f"Stornorechnung zu Rechnung "
            f"{original.get('invoiceNumber')}", "origin": {"id": original["id"], "objectName": "Invoice"},
            "status": "1000", "payDate": stamp, "sendDate": stamp, "enshrined": stamp,
            **{key: _s(-Decimal(str(original[key]))) for key in negate if original.get(key) is not None},
        }
        cancellation["paidAmount"] = Decimal(cancellation["sumGross"])
        self.state["invoices"][invoice_id] = cancellation
        original["cancelled"] = stamp  # sandbox bookkeeping: sevDesk shows the original as cancelled
        original["update"] = stamp
        return 201, cancellation

    async def list_voucher_positions(self, request: Request, body: Any) -> Any:
        q = request.query_params
        rows = list(self.state["voucher_positions"].values())
        if "voucher[id]" in q:
            rows = [p for p in rows if p["voucher"]["id"] == q["voucher[id]"]]
        return 200, self._page(request, rows)

    # -- tags --------------------------------------------------------------------------
    async def list_tags(self, request: Request, body: Any) -> Any:
        q = request.query_params
        rows = list(self.state["tags"].values())
        if "name" in q:
            rows = [t for t in rows if t["name"] == q["name"]]
        if "id" in q:
            rows = [t for t in rows if t["id"] == q["id"]]
        return 200, self._page(request, rows)

    async def list_tag_relations(self, request: Request, body: Any) -> Any:
        return 200, self._page(request, list(self.state["tag_relations"].values()))

    async def create_tag(self, request: Request, body: Any) -> Any:
        name = str(body.get("name") or "").strip()
        if not name:
            raise ApiError(400, "name is required")
        target = body["object"]
        table = {"Voucher": "vouchers", "Invoice": "invoices"}.get(target["objectName"])
        if table is None:
            raise ApiError(400, f"Tags on {target['objectName']} are not supported by this sandbox")
        obj = self._get(table, str(target["id"]), target["objectName"])
        # Assumption (undocumented): a tag is reused by its exact name.
        tag = next((t for t in self.state["tags"].values() if t["name"] == name), None)
        if tag is None:
            tag_id = str(self.next_id("Tag", 500))
            tag = {"id": tag_id, "objectName": "Tag", "additionalInformation": None, "create": _now(),
                   "name": name, "sevClient": CLIENT}
            self.state["tags"][tag_id] = tag
        existing = next((r for r in self.state["tag_relations"].values()
                         if r["tag"]["id"] == tag["id"] and r["object"]["id"] == obj["id"]
                         and r["object"]["objectName"] == target["objectName"]), None)
        if existing is not None:
            return 200, existing
        relation_id = str(self.next_id("TagRelation", 900))
        relation = {
            "id": relation_id, "objectName": "TagRelation", "additionalInformation": None, "create": _now(),
            "tag": {"id": tag["id"], "objectName": "Tag"},
            "object": {"id": obj["id"], "objectName": target["objectName"]}, "sevClient": CLIENT,
        }
        self.state["tag_relations"][relation_id] = relation
        return 200, relation

