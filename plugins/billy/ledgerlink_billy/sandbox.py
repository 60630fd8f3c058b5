"""A Billy API v2 emulator for tests and demos (``ledgerlink sandbox serve billy``).

It follows Billy's reference page (copied in ``spec/``):

- envelopes: a singular root key on write (``{"invoice": {...}}``), plural keys and
  ``meta`` on read, and every changed record (by plural name) in write answers;
  deleted ids in ``meta.deletedRecords``;
- paging with ``page`` / ``pageSize`` (max 1000) and ``meta.paging``;
- ``include=contact.contactPersons:embed`` / ``invoice.lines:embed``;
- invoices are drafts until approved; approval is final: an approved invoice can
  be neither edited nor deleted; ``entryDate``, ``lines``, ``invoiceNo`` and
  ``contactId`` cannot change after creation; ``invoiceNo`` is unique;
- line amounts and VAT from the product's sales tax ruleset and the contact's
  country and type (``taxMode`` incl / excl), a bank payment lowers the balance
  and sets ``isPaid``; payments only on approved invoices, each one a balance
  modifier (``include=invoice.balanceModifiers:embed``), voided with ``isVoided``
  (its amount goes back on the balance); ``cashExchangeRate`` required when the
  cash account's currency differs; an overpayment goes to the contact's balance
  (``contactBalancePostings``), as the reference page says; ``exchangeRate`` 1 on
  invoices in the base currency;
- credit notes (``type: creditNote``): ``creditedInvoiceId`` must be an approved invoice
  of the same contact and currency, and only a credit note may set it; approving one
  settles what is open on the credited invoice (a balance modifier ``invoice:<credit
  note id>``), the rest is the credit note's balance (owed to the customer);
- errors in Billy's shape (``meta.statusCode``, ``meta.success: false``,
  ``errorMessage``, ``errorCode``, ``errorTime``, ``helpUrl``) and auth through
  ``X-Access-Token``;
- request bodies are checked against the property tables of the reference page
  (``spec/billy-resources.json``): unknown or readonly properties and missing
  required ones are logged as ``validation_errors`` and answered with 422.

Where Billy's page is silent (validation error shape, rate rounding, tax rate as a
fraction, payments on drafts) the choices are listed in the plugin README.
"""

from __future__ import annotations

import datetime as _dt
import json
import secrets
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any, ClassVar

from ledgerlink import Sandbox
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

DEMO_TOKEN = "billy-demo-token-0f3c9a"
TOKEN_ENV = "BILLY_API_TOKEN"
HELP_URL = "https://www.billy.dk/support/"
CENT = Decimal("0.01")

SINGULAR = {
    "accounts": "account",
    "bankPayments": "bankPayment",
    "balanceModifiers": "balanceModifier",
    "contactPersons": "contactPerson",
    "contacts": "contact",
    "countryGroups": "countryGroup",
    "invoiceLines": "invoiceLine",
    "invoices": "invoice",
    "productPrices": "productPrice",
    "products": "product",
    "salesTaxRules": "salesTaxRule",
    "salesTaxRulesets": "salesTaxRuleset",
    "taxRates": "taxRate",
}
WRITABLE = {"contacts", "contactPersons", "products", "invoices", "bankPayments"}
# Properties the tables mark required that Billy fills in itself (the token's
# organization, the automatic invoice number, what a payment takes from its subject).
NOT_REQUIRED = {
    "*": {"organization"},
    "invoices": {"invoiceNo"},
    "bankPayments": {"contact", "subjectCurrency", "cashExchangeRate", "feeAccount"},
}
EMBEDDED = {  # has-many children saved with the parent, and the child's back-reference
    ("invoices", "lines"): ("invoiceLines", "invoice"),
    ("contacts", "contactPersons"): ("contactPersons", "contact"),
    ("products", "prices"): ("productPrices", "product"),
}
EU = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
]
ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_REQUIRED",
    403: "FORBIDDEN",
    404: "RECORD_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


@cache
def resource_tables() -> dict[str, Any]:
    text = resources.files("ledgerlink_billy").joinpath("spec/billy-resources.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def num(value: Decimal) -> float | int:
    """A Decimal as the JSON number Billy sends (floats)."""
    return float(value)


class BillyError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None,
                 record: str | None = None, attributes: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or ERROR_CODES.get(status, "ERROR")
        self.record = record
        self.attributes = attributes or {}


def danish_company() -> dict[str, Any]:
    """A Danish company as Billy sets it up: chart of accounts, tax rates and rulesets."""
    accounts: list[tuple[str, int, str, str, dict[str, Any]]] = [
        ("acc_sales", 1110, "Salg", "revenue", {}),
        ("acc_sales_eu", 1120, "Salg af varer til EU", "revenue", {}),
        ("acc_sales_world", 1130, "Salg af varer uden for EU", "revenue", {}),
        ("acc_freight", 1150, "Fragtindtægter", "revenue", {}),
        ("acc_old_sales", 1190, "Salg (gammel)", "revenue", {"isArchived": True}),
        ("acc_bank", 5820, "Bankkonto", "asset",
         {"isPaymentEnabled": True, "isBankAccount": True, "currencyId": "DKK"}),
        ("acc_bank_eur", 5830, "Bankkonto EUR", "asset",
         {"isPaymentEnabled": True, "isBankAccount": True, "currencyId": "EUR"}),
        ("acc_stripe", 5850, "Stripe", "asset", {"isPaymentEnabled": True, "currencyId": "DKK"}),
        # a clearing account for gift vouchers sold (a liability), payments allowed on it
        ("acc_vouchers", 6850, "Gavekort (tilgodehavender)", "liability", {"isPaymentEnabled": True}),
        ("acc_vat_out", 7250, "Salgsmoms", "liability", {"systemRole": "salesTax"}),
        ("acc_debtors", 5710, "Debitorer", "asset", {"systemRole": "accountsReceivable"}),
    ]
    tax_rates = [
        ("tr_sales25", "Salgsmoms 25%", "S25", 0.25),
        ("tr_sales0", "Momsfrit salg", "S0", 0.0),
        ("tr_eu_goods", "EU-salg af varer (0%)", "EUV", 0.0),
        ("tr_export", "Eksport (0%)", "EXP", 0.0),
    ]
    rulesets = [
        ("rs_normal", "Normalt salg af varer", "SALG25", "tr_sales25", []),
        ("rs_eu_goods", "EU-salg af varer", "EUVARER", "tr_sales25",
         [("EU", "company", "tr_eu_goods")]),
        ("rs_export", "Salg uden for EU", "EKSPORT", "tr_export", []),
        ("rs_exempt", "Momsfrit salg", "MOMSFRI", "tr_sales0", []),
    ]
    state: dict[str, Any] = {name: {} for name in SINGULAR}
    for aid, number, name, nature, extra in accounts:
        state["accounts"][aid] = {
            "id": aid, "organizationId": "org_demo", "accountNo": number, "name": name,
            "natureId": nature, "groupId": f"grp_{nature}", "isPaymentEnabled": False,
            "isBankAccount": False, "isArchived": False, "currencyId": None, "systemRole": None,
            **extra,
        }
    for tid, name, abbreviation, rate in tax_rates:
        state["taxRates"][tid] = {
            "id": tid, "organizationId": "org_demo", "name": name, "abbreviation": abbreviation,
            "rate": rate, "appliesToSales": True, "appliesToPurchases": False,
            "isPredefined": True, "isActive": True,
        }
    state["countryGroups"]["EU"] = {"id": "EU", "name": "EU", "memberCountryIds": ",".join(EU)}
    for rid, name, abbreviation, fallback, rules in rulesets:
        state["salesTaxRulesets"][rid] = {
            "id": rid, "organizationId": "org_demo", "name": name, "abbreviation": abbreviation,
            "description": None, "fallbackTaxRateId": fallback, "isPredefined": True,
        }
        for priority, (group, contact_type, rate_id) in enumerate(rules, start=1):
            rule_id = f"{rid}_rule{priority}"
            state["salesTaxRules"][rule_id] = {
                "id": rule_id, "rulesetId": rid, "countryId": None, "countryGroupId": group,
                "stateId": None, "contactType": contact_type, "taxRateId": rate_id,
                "priority": priority,
            }
    state["organization"] = {
        "id": "org_demo", "name": "Demo Webshop ApS", "countryId": "DK", "baseCurrencyId": "DKK",
        "street": "Vesterbrogade 1", "zipcode": "1620", "city": "København V",
        "registrationNo": "12345678", "hasVat": True, "invoiceNoMode": "automatic",
        "nextInvoiceNo": 1, "paymentTermsMode": "net", "paymentTermsDays": 8,
        "defaultTaxMode": "incl", "defaultSalesAccountId": "acc_sales",
        "defaultSalesTaxRulesetId": "rs_normal", "defaultInvoiceBankAccountId": "acc_bank",
        "localeId": "da_DK", "isLocked": False,
    }
    state["tokens"] = [DEMO_TOKEN]
    return state


class BillySandbox(Sandbox):
    name: ClassVar[str] = "billy"
    vendor: ClassVar[str] = "Billy"
    base_path: ClassVar[str] = "/v2"
    openapi_file = None  # Billy publishes no OpenAPI; see validate() and spec/SOURCE.md
    auth_headers: ClassVar[tuple[str, ...]] = ("x-access-token",)  # rate limits per token

    # -- kit hooks -------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return danish_company()

    def error_response(self, status: int, message: str) -> Response:
        return self._error(BillyError(status, message))

    @classmethod
    def demo_rules(cls) -> list[dict[str, Any]]:
        """No rules: the connection's six booking templates (see ``demo_connection``) book
        every line (``BillyTarget.books_without_rules``)."""
        return []

    def describe(self) -> str:
        invoices = list(self.state.get("invoices", {}).values())
        approved = sum(1 for invoice in invoices if invoice.get("state") == "approved")
        return f"Billy sandbox holds {len(invoices)} invoices ({approved} approved)"

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        settings = {
            "api_token": "${" + TOKEN_ENV + "}",
            "base_url": server_url.rstrip("/") + self.base_path,
            "cash_account": "5820",
            "goods_domestic": {"account": "1110", "vat": "Normalt salg af varer"},
            "goods_eu": {"account": "1120", "vat": "EU-salg af varer"},
            "goods_non_eu": {"account": "1130", "vat": "EKSPORT"},
            "shipping_domestic": {"account": "1150", "vat": "Normalt salg af varer"},
            "shipping_eu": {"account": "1150", "vat": "EU-salg af varer"},
            "shipping_non_eu": {"account": "1150", "vat": "EKSPORT"},
        }
        return settings, {TOKEN_ENV: DEMO_TOKEN}

    def load_seed(self, data: Any) -> None:
        """Records in Billy's list format: ``{"contacts": [...], "accounts": [...], ...}``;
        ``organization`` (an object) is merged; ``tokens`` adds access tokens."""
        if not isinstance(data, dict):
            raise ValueError("a Billy seed is an object keyed by plural resource names")
        for key, value in data.items():
            if key == "organization":
                self.state["organization"].update(value)
            elif key == "tokens":
                self.state["tokens"].extend(value)
            elif key in SINGULAR:
                for record in value:
                    record = dict(record)
                    record.setdefault("id", self._new_id(key))
                    self.state[key][str(record["id"])] = record
            else:
                raise ValueError(f"unknown resource {key!r} in the Billy seed")

    # -- routing ---------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        base = self.base_path
        return [
            Route(f"{base}/organization", self._organization, methods=["GET"]),
            Route(f"{base}/{{resource}}", self._collection, methods=["GET", "POST"]),
            Route(f"{base}/{{resource}}/{{record_id}}", self._member, methods=["GET", "PUT", "DELETE"]),
        ]

    def _error(self, error: BillyError) -> JSONResponse:
        body: dict[str, Any] = {
            "meta": {"statusCode": error.status, "success": False},
            "errorMessage": error.message,
            "errorCode": error.code,
            "errorTime": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "helpUrl": HELP_URL,
        }
        if error.attributes:
            body["validationErrors"] = {error.record or "record": {"attributes": error.attributes}}
        return JSONResponse(body, status_code=error.status)

    def _ok(self, body: dict[str, Any], status: int = 200) -> JSONResponse:
        meta = body.setdefault("meta", {})
        meta.update({"statusCode": status, "success": True})
        return JSONResponse(body, status_code=status)

    def _auth(self, request: Request) -> None:
        token = request.headers.get("x-access-token")
        if not token:
            raise BillyError(
                401, "You must use Basic auth or an OAuth access token to make requests to the API.",
                code="AUTHENTICATION_REQUIRED",
            )
        if token not in self.state["tokens"]:
            raise BillyError(401, "Invalid OAuth 2 access token.", code="OAUTH_INVALID_ACCESS_TOKEN")

    async def _organization(self, request: Request) -> Response:
        try:
            self._auth(request)
        except BillyError as exc:
            return self._error(exc)
        return self._ok({"organization": dict(self.state["organization"])})

    async def _collection(self, request: Request) -> Response:
        resource = request.path_params["resource"]
        try:
            self._auth(request)
            self._known(resource)
            if request.method == "GET":
                return self._ok(self._list(resource, request))
            body = await self.body(request)
            record = self._unwrap(request, resource, body, create=True)
            changed = self._create(resource, record)
            return self._ok(changed)
        except BillyError as exc:
            return self._error(exc)

    async def _member(self, request: Request) -> Response:
        resource, record_id = request.path_params["resource"], request.path_params["record_id"]
        try:
            self._auth(request)
            self._known(resource)
            table = self.state[resource]
            if request.method == "DELETE":
                self._writable(resource)
                return self._ok(self._delete(resource, record_id))
            if record_id not in table:
                raise BillyError(404, f"No {SINGULAR[resource]} with ID {record_id} was found.")
            if request.method == "GET":
                return self._ok({SINGULAR[resource]: self._view(resource, table[record_id], request)})
            body = await self.body(request)
            record = self._unwrap(request, resource, body, create=False, current=table[record_id])
            return self._ok(self._update(resource, record_id, record))
        except BillyError as exc:
            return self._error(exc)

    # -- validation ----------------------------------------------------------------------------
    def _known(self, resource: str) -> None:
        if resource not in SINGULAR:
            raise BillyError(404, f"Unknown resource {resource!r}.", code="ROUTE_NOT_FOUND")

    def _writable(self, resource: str) -> None:
        if resource not in WRITABLE:
            raise BillyError(405, f"The sandbox does not emulate writing {resource}.", code="METHOD_NOT_ALLOWED")

    def _unwrap(self, request: Request, resource: str, body: Any, *, create: bool,
                current: dict[str, Any] | None = None) -> dict[str, Any]:
        self._writable(resource)
        singular = SINGULAR[resource]
        if not isinstance(body, dict) or not isinstance(body.get(singular), dict):
            problems = [f"the body must be an object with the root key {singular!r}"]
            request.state.validation_errors = problems
            raise BillyError(400, problems[0], code="BAD_REQUEST")
        record = body[singular]
        problems = self.check_properties(resource, record, create=create, current=current)
        request.state.validation_errors = problems
        if problems:
            attributes = dict(p.split(": ", 1) for p in problems)
            raise BillyError(
                422, f"Validation failed for {singular}: {'; '.join(problems)}", record=singular,
                attributes=attributes,
            )
        return record

    def check_properties(self, resource: str, record: dict[str, Any], *, create: bool,
                         current: dict[str, Any] | None = None, parent: str | None = None) -> list[str]:
        """Problems with a record against Billy's property table for ``resource``."""
        table = resource_tables()[resource]["properties"]
        exempt = NOT_REQUIRED["*"] | NOT_REQUIRED.get(resource, set())
        if parent:
            exempt = exempt | {parent}
        problems: list[str] = []
        given: set[str] = set()
        for key, value in record.items():
            if key == "id":
                if current is not None and value != current.get("id"):
                    problems.append("id: cannot be changed")
                continue
            name = key
            if name not in table and key.endswith("Id") and key[:-2] in table:
                name = key[:-2]
            if name not in table:
                problems.append(f"{key}: unknown property")
                continue
            prop = table[name]
            given.add(name)
            if prop["readonly"]:
                problems.append(f"{key}: is readonly")
            elif current is not None and prop["immutable"] and current.get(key) != value:
                problems.append(f"{key}: is immutable")
            if (resource, name) in EMBEDDED and value is not None:
                child, back = EMBEDDED[(resource, name)]
                if not isinstance(value, list):
                    problems.append(f"{key}: must be a list")
                    continue
                for index, item in enumerate(value):
                    if not isinstance(item, dict):
                        problems.append(f"{key}.{index}: must be an object")
                        continue
                    for problem in self.check_properties(child, item, create=True, parent=back):
                        problems.append(f"{key}.{index}.{problem}")
        if create:
            for name, prop in table.items():
                if (prop["required"] and not prop["readonly"] and name not in given
                        and name not in exempt and prop["default"] in (None, "unknown")):
                    problems.append(f"{name}{'Id' if prop['type'] == 'belongs-to' else ''}: is required")
        return problems

    # -- reading -------------------------------------------------------------------------------
    def _view(self, resource: str, record: dict[str, Any], request: Request) -> dict[str, Any]:
        out = dict(record)
        include = request.query_params.get("include", "")
        for part in filter(None, include.split(",")):
            path, _, mode = part.partition(":")
            owner, _, prop = path.partition(".")
            if owner != SINGULAR[resource]:
                continue
            if (resource, prop) == ("invoices", "balanceModifiers"):
                # readonly has-many: the invoice's payment associations
                reference = f"invoice:{record['id']}"
                modifiers = [dict(m) for m in self.state["balanceModifiers"].values()
                             if m.get("subjectReference") == reference]
                out[prop] = modifiers if mode == "embed" else None
                if mode != "embed":
                    del out[prop]
                    out["balanceModifierIds"] = [m["id"] for m in modifiers]
                continue
            child = EMBEDDED.get((resource, prop))
            if child is None:
                continue
            children = [dict(c) for c in self.state[child[0]].values() if c.get(f"{child[1]}Id") == record["id"]]
            if mode == "embed":
                out[prop] = children
            else:
                out[f"{prop[:-1]}Ids"] = [c["id"] for c in children]
        return out

    def _list(self, resource: str, request: Request) -> dict[str, Any]:
        query = request.query_params
        records = list(self.state[resource].values())
        if resource == "invoices":
            for field in ("invoiceNo", "state", "contactId", "currencyId", "externalId", "creditedInvoiceId", "type"):
                if field in query:
                    records = [r for r in records if str(r.get(field)) == query[field]]
            if "isPaid" in query:
                wanted = query["isPaid"].lower() in ("true", "1")
                records = [r for r in records if bool(r.get("isPaid")) == wanted]
        try:
            page = max(1, int(query.get("page", 1)))
            size = int(query.get("pageSize", 1000))
        except ValueError:
            raise BillyError(400, "page and pageSize must be integers") from None
        if size > 1000 or size < 1:
            raise BillyError(422, "pageSize cannot be greater than 1000", record="paging",
                             attributes={"pageSize": "must be between 1 and 1000"})
        total = len(records)
        page_count = max(1, -(-total // size))
        chunk = records[(page - 1) * size: page * size]
        url = str(request.url.replace(query=None))

        def link(n: int) -> str:
            return f"{url}?page={n}&pageSize={size}"

        return {
            resource: [
                self._view(resource, r, request) for r in chunk
            ],
            "meta": {
                "paging": {
                    "page": page, "pageCount": page_count, "pageSize": size, "total": total,
                    "firstUrl": link(1), "previousUrl": link(page - 1) if page > 1 else None,
                    "nextUrl": link(page + 1) if page < page_count else None,
                    "lastUrl": link(page_count),
                }
            },
        }

    # -- writing ---------------------------------------------------------------------------------
    def _new_id(self, resource: str) -> str:
        return f"{SINGULAR[resource][:3]}{secrets.token_hex(6)}"

    def _now(self) -> str:
        return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")

    def _create(self, resource: str, record: dict[str, Any]) -> dict[str, Any]:
        creator = getattr(self, f"_create_{resource}", None)
        changed: dict[str, list[dict[str, Any]]] = {}
        new = {k: v for k, v in record.items() if not any(k == p for (r, p) in EMBEDDED if r == resource)}
        new["id"] = self._new_id(resource)
        new["organizationId"] = self.state["organization"]["id"]
        new["createdTime"] = self._now()
        if creator is not None:
            creator(new, record, changed)
        self.state[resource][new["id"]] = new
        changed.setdefault(resource, []).insert(0, dict(new))
        return changed

    def _children(self, resource: str, prop: str, parent: dict[str, Any], items: list[dict[str, Any]],
                  changed: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        child, back = EMBEDDED[(resource, prop)]
        out = []
        for item in items:
            record = {**item, "id": self._new_id(child), f"{back}Id": parent["id"]}
            self.state[child][record["id"]] = record
            changed.setdefault(child, []).append(record)
            out.append(record)
        return out

    def _create_contacts(self, new: dict[str, Any], record: dict[str, Any], changed: dict[str, Any]) -> None:
        new.setdefault("type", "company")
        if new["type"] not in ("company", "person"):
            raise BillyError(422, "type must be company or person", record="contact",
                             attributes={"type": "must be company or person"})
        country = str(new.get("countryId") or "")
        if len(country) != 2 or not country.isalpha() or not country.isupper():
            raise BillyError(422, f"Unknown country {country!r}", record="contact",
                             attributes={"countryId": "is not a country"})
        new.setdefault("isCustomer", True)
        new.setdefault("isArchived", False)
        new["accessCode"] = secrets.token_hex(8)
        for person in record.get("contactPersons") or []:
            if not (person.get("name") or person.get("email")):
                raise BillyError(422, "A contact person needs a name or an e-mail", record="contactPerson",
                                 attributes={"name": "is required"})
        self._children("contacts", "contactPersons", new, record.get("contactPersons") or [], changed)

    def _create_contactPersons(self, new: dict[str, Any], record: dict[str, Any], changed: dict[str, Any]) -> None:  # noqa: N802
        if new.get("contactId") not in self.state["contacts"]:
            raise BillyError(422, "contactId does not exist", record="contactPerson",
                             attributes={"contactId": "does not exist"})

    def _create_products(self, new: dict[str, Any], record: dict[str, Any], changed: dict[str, Any]) -> None:
        account = self.state["accounts"].get(new.get("accountId"))
        if account is None:
            raise BillyError(422, "accountId does not exist", record="product", attributes={"accountId": "does not exist"})
        ruleset_id = new.get("salesTaxRulesetId")
        if ruleset_id is not None and ruleset_id not in self.state["salesTaxRulesets"]:
            raise BillyError(422, "salesTaxRulesetId does not exist", record="product",
                             attributes={"salesTaxRulesetId": "does not exist"})
        new.setdefault("isArchived", False)
        self._children("products", "prices", new, record.get("prices") or [], changed)

    def tax_rate(self, ruleset_id: str | None, contact: dict[str, Any]) -> Decimal:
        """The rate (a fraction) a ruleset gives for a contact: the first rule (by
        priority) for the contact's country or country group and type, else the fallback."""
        if ruleset_id is None:
            ruleset_id = self.state["organization"].get("defaultSalesTaxRulesetId")
        ruleset = self.state["salesTaxRulesets"].get(ruleset_id)
        if ruleset is None:
            return Decimal(0)
        country = contact.get("countryId")
        rules = sorted(
            (r for r in self.state["salesTaxRules"].values() if r.get("rulesetId") == ruleset_id),
            key=lambda r: r.get("priority") or 0,
        )
        rate_id = ruleset.get("fallbackTaxRateId")
        for rule in rules:
            group = self.state["countryGroups"].get(rule.get("countryGroupId") or "")
            in_place = rule.get("countryId") == country or (
                group is not None and country in str(group.get("memberCountryIds", "")).split(",")
            )
            if in_place and rule.get("contactType") in (None, contact.get("type")):
                rate_id = rule.get("taxRateId")
                break
        rate = self.state["taxRates"].get(rate_id or "")
        return Decimal(str(rate["rate"])) if rate else Decimal(0)

    def _create_invoices(self, new: dict[str, Any], record: dict[str, Any], changed: dict[str, Any]) -> None:
        def invalid(attribute: str, message: str) -> BillyError:
            return BillyError(422, f"{attribute}: {message}", record="invoice", attributes={attribute: message})

        contact = self.state["contacts"].get(new.get("contactId"))
        if contact is None:
            raise invalid("contactId", "does not exist")
        try:
            entry = _dt.date.fromisoformat(str(new.get("entryDate")))
        except ValueError:
            raise invalid("entryDate", "is not a date (YYYY-MM-DD)") from None
        currency = str(new.get("currencyId") or "")
        if len(currency) != 3 or not currency.isupper():
            raise invalid("currencyId", "is not a currency")
        base = self.state["organization"].get("baseCurrencyId")
        if currency == base:
            new["exchangeRate"] = 1.0  # "ignored - it will always be 1"
        elif new.get("exchangeRate") is not None:
            try:
                if Decimal(str(new["exchangeRate"])) <= 0:
                    raise ArithmeticError
            except (ArithmeticError, ValueError):
                raise invalid("exchangeRate", "must be a positive number") from None
        else:
            # Billy uses "today's exchange rate"; the sandbox has no rates, so it keeps
            # None and says so (see the README).
            new["exchangeRate"] = None
        if new.get("type", "invoice") not in ("invoice", "creditNote"):
            raise invalid("type", "must be invoice or creditNote")
        new.setdefault("type", "invoice")
        credited_id = new.get("creditedInvoiceId")
        if credited_id is not None and new["type"] != "creditNote":
            raise invalid("creditedInvoiceId", "only a credit note (type creditNote) can credit an invoice")
        if credited_id is not None:
            credited = self.state["invoices"].get(credited_id)
            if credited is None:
                raise invalid("creditedInvoiceId", "does not exist")
            if credited.get("type", "invoice") != "invoice":
                raise invalid("creditedInvoiceId", f"{credited['invoiceNo']} is a credit note, not an invoice")
            if credited.get("state") != "approved":
                raise invalid("creditedInvoiceId", f"invoice {credited['invoiceNo']} is not approved")
            if credited.get("contactId") != new.get("contactId"):
                raise invalid("contactId", "must be the contact of the credited invoice")
            if credited.get("currencyId") != currency:
                raise invalid("currencyId", "must be the currency of the credited invoice")
        state = new.get("state", "draft")
        if state not in ("draft", "approved"):
            raise invalid("state", "must be draft or approved")
        tax_mode = new.setdefault("taxMode", self.state["organization"].get("defaultTaxMode", "incl"))
        if tax_mode not in ("incl", "excl"):
            raise invalid("taxMode", "must be incl or excl")
        lines = record.get("lines") or []
        if not lines:
            raise invalid("lines", "at least one line is required")
        org = self.state["organization"]
        if new.get("invoiceNo") in (None, ""):
            new["invoiceNo"] = str(org["nextInvoiceNo"])
            org["nextInvoiceNo"] = int(org["nextInvoiceNo"]) + 1
        new["invoiceNo"] = str(new["invoiceNo"])
        if any(str(i.get("invoiceNo")) == new["invoiceNo"] for i in self.state["invoices"].values()):
            raise invalid("invoiceNo", f"invoice number {new['invoiceNo']} is already in use")
        total_net = total_tax = Decimal("0.00")
        priced = []
        for index, line in enumerate(lines):
            product = self.state["products"].get(line.get("productId"))
            if product is None:
                raise invalid(f"lines.{index}.productId", "does not exist")
            try:
                quantity = Decimal(str(line.get("quantity", 1)))
                unit = Decimal(str(line["unitPrice"]))
            except (KeyError, ArithmeticError, ValueError):
                raise invalid(f"lines.{index}.unitPrice", "must be a number") from None
            rate = self.tax_rate(product.get("salesTaxRulesetId"), contact)
            total = money(quantity * unit)
            if tax_mode == "incl":
                tax = money(total * rate / (1 + rate))
                net = total - tax
            else:
                net, tax = total, money(total * rate)
            total_net += net
            total_tax += tax
            rate_id = next((k for k, v in self.state["taxRates"].items() if Decimal(str(v["rate"])) == rate), None)
            priced.append({**line, "quantity": num(quantity), "amount": num(net), "tax": num(tax), "taxRateId": rate_id})
        new.update({
            "state": "draft",
            "sentState": new.get("sentState", "unsent"),
            "amount": num(total_net),
            "tax": num(total_tax),
            "balance": 0.0,
            "isPaid": False,
            "approvedTime": None,
            "paymentTermsMode": new.get("paymentTermsMode", org.get("paymentTermsMode", "net")),
            "dueDate": (entry + _dt.timedelta(days=int(new.get("paymentTermsDays") or 0))).isoformat(),
            "lineDescription": ", ".join(str(line.get("description") or "") for line in lines)[:200],
            "downloadUrl": f"https://sandbox.invalid/invoices/{new['id']}.pdf",
        })
        self._children("invoices", "lines", new, priced, changed)
        if state == "approved":
            self._approve(new)

    def _approve(self, invoice: dict[str, Any]) -> None:
        invoice["state"] = "approved"
        invoice["approvedTime"] = self._now()
        gross = money(invoice["amount"]) + money(invoice["tax"])
        invoice["balance"] = num(gross)
        credited = self.state["invoices"].get(invoice.get("creditedInvoiceId") or "")
        if invoice.get("type") == "creditNote" and credited is not None:
            # An approved credit note settles what is still open on the invoice it credits
            # (a balance modifier on that invoice); the rest is owed back to the customer.
            applied = min(money(credited["balance"]), gross)
            credited["balance"] = num(money(credited["balance"]) - applied)
            credited["isPaid"] = money(credited["balance"]) <= 0
            invoice["balance"] = num(gross - applied)
            invoice["isPaid"] = gross - applied <= 0
            if applied > 0:
                modifier = {
                    "id": self._new_id("balanceModifiers"), "modifierReference": f"invoice:{invoice['id']}",
                    "subjectReference": f"invoice:{credited['id']}", "amount": num(applied),
                    "entryDate": invoice["entryDate"], "isVoided": False, "realizedCurrencyDifference": 0.0,
                }
                self.state["balanceModifiers"][modifier["id"]] = modifier

    def _create_bankPayments(self, new: dict[str, Any], record: dict[str, Any], changed: dict[str, Any]) -> None:  # noqa: N802
        def invalid(attribute: str, message: str) -> BillyError:
            return BillyError(422, f"{attribute}: {message}", record="bankPayment", attributes={attribute: message})

        account = self.state["accounts"].get(new.get("cashAccountId"))
        if account is None:
            raise invalid("cashAccountId", "does not exist")
        if not account.get("isPaymentEnabled"):
            raise invalid("cashAccountId", "the account does not accept payments (isPaymentEnabled)")
        if new.get("cashSide") not in ("debit", "credit"):
            raise invalid("cashSide", "must be debit or credit")
        try:
            _dt.date.fromisoformat(str(new.get("entryDate")))
            cash = money(new.get("cashAmount"))
        except (ValueError, ArithmeticError):
            raise invalid("cashAmount", "entryDate and cashAmount are required") from None
        if cash <= 0:
            raise invalid("cashAmount", "must be positive")
        associations = record.get("associations") or []
        if not associations:
            raise invalid("associations", "at least one subject is required")
        invoices = []
        for association in associations:
            kind, _, subject_id = str(association.get("subjectReference") or "").partition(":")
            invoice = self.state["invoices"].get(subject_id) if kind == "invoice" else None
            if invoice is None:
                raise invalid("associations", f"subject {association.get('subjectReference')!r} does not exist")
            if invoice.get("type") == "creditNote" and new.get("cashSide") == "debit":
                raise invalid("cashSide", f"credit note {invoice['invoiceNo']} is paid out (credit), not in (debit)")
            if invoice["state"] != "approved":
                raise invalid("associations", f"invoice {invoice['invoiceNo']} is not approved")
            invoices.append(invoice)
        currency = invoices[0]["currencyId"]
        if any(i["currencyId"] != currency for i in invoices):
            raise invalid("associations", "all subjects must be in the same currency")
        rate = Decimal(1)
        # An account without a currency is in the organization's base currency.
        account_currency = account.get("currencyId") or self.state["organization"].get("baseCurrencyId")
        if account_currency != currency:
            if not new.get("cashExchangeRate"):
                raise invalid("cashExchangeRate", "is required when the cash account's currency differs")
            try:
                rate = Decimal(str(new["cashExchangeRate"]))
            except (ArithmeticError, ValueError):
                rate = Decimal(0)
            if rate <= 0:
                raise invalid("cashExchangeRate", "must be a positive number")
        else:
            new["cashExchangeRate"] = 1.0  # "ignored and set to 1 if the currencies are the same"
        new["subjectCurrencyId"] = currency
        new["contactId"] = new.get("contactId") or invoices[0]["contactId"]
        new["isVoided"] = False
        remaining = money(cash / rate) + money(new.get("feeAmount") or 0)
        for invoice in invoices:
            balance = money(invoice["balance"])
            applied = min(balance, remaining)
            remaining -= applied
            invoice["balance"] = num(balance - applied)
            invoice["isPaid"] = balance - applied <= 0
            modifier = {
                "id": self._new_id("balanceModifiers"), "modifierReference": f"bankPayment:{new['id']}",
                "subjectReference": f"invoice:{invoice['id']}", "amount": num(applied),
                "entryDate": new["entryDate"], "isVoided": False, "realizedCurrencyDifference": 0.0,
            }
            self.state["balanceModifiers"][modifier["id"]] = modifier
            changed.setdefault("balanceModifiers", []).append(modifier)
            changed.setdefault("invoices", []).append(dict(invoice))
        # "In case of an overpayment, the overpaid amount will be added to the contact's
        # balance in this currency" (bankPayments.subjectCurrency): Billy accepts it.
        new["contactBalancePostings"] = (
            [{"contactId": new["contactId"], "currencyId": currency, "amount": num(remaining)}]
            if remaining > 0 else []
        )

    def _void_payment(self, payment: dict[str, Any], changed: dict[str, Any]) -> None:
        """A voided bank payment gives its amounts back to the invoices' balances."""
        for modifier in self.state["balanceModifiers"].values():
            if modifier.get("modifierReference") != f"bankPayment:{payment['id']}" or modifier["isVoided"]:
                continue
            modifier["isVoided"] = True
            _, _, subject_id = str(modifier["subjectReference"]).partition(":")
            invoice = self.state["invoices"].get(subject_id)
            if invoice is not None:
                invoice["balance"] = num(money(invoice["balance"]) + money(modifier["amount"]))
                invoice["isPaid"] = money(invoice["balance"]) <= 0
                changed.setdefault("invoices", []).append(dict(invoice))
            changed.setdefault("balanceModifiers", []).append(dict(modifier))

    def _update(self, resource: str, record_id: str, record: dict[str, Any]) -> dict[str, Any]:
        current = self.state[resource][record_id]
        changed: dict[str, list[dict[str, Any]]] = {}
        if resource == "invoices":
            if current["state"] == "approved":
                raise BillyError(422, f"Invoice {current['invoiceNo']} is approved and cannot be changed.",
                                 record="invoice", attributes={"state": "the invoice is approved"})
            for fixed in ("entryDate", "lines", "invoiceNo", "contactId"):
                if fixed in record and record[fixed] != current.get(fixed):
                    raise BillyError(422, f"{fixed} cannot be set after the invoice was created",
                                     record="invoice", attributes={fixed: "cannot be changed after creation"})
            state = record.pop("state", None)
            current.update(record)
            if state not in (None, "draft", "approved"):
                raise BillyError(422, "the only state change is from draft to approved",
                                 record="invoice", attributes={"state": "must be approved"})
            if state == "approved":
                self._approve(current)
        elif resource == "bankPayments":
            if set(record) - {"isVoided", "id"}:
                raise BillyError(422, "bank payments are immutable; only isVoided can be set",
                                 record="bankPayment", attributes={"isVoided": "only property that can change"})
            if current.get("isVoided") and record.get("isVoided") is False:
                raise BillyError(422, "a voided payment cannot be reinstated", record="bankPayment",
                                 attributes={"isVoided": "cannot be un-canceled"})
            if record.get("isVoided") and not current.get("isVoided"):
                self._void_payment(current, changed)
            current.update(record)
        else:
            for (owner, prop), (child, back) in EMBEDDED.items():
                if owner == resource and prop in record:
                    for cid in [k for k, v in self.state[child].items() if v.get(f"{back}Id") == record_id]:
                        del self.state[child][cid]
                    self._children(resource, prop, current, record.pop(prop) or [], changed)
            current.update(record)
        changed.setdefault(resource, []).insert(0, dict(current))
        return changed

    def _delete(self, resource: str, record_id: str) -> dict[str, Any]:
        current = self.state[resource].get(record_id)
        deleted: dict[str, list[str]] = {}
        if current is None:
            return {"meta": {"deletedRecords": {}}}
        if resource == "invoices" and current["state"] != "draft":
            raise BillyError(422, f"Invoice {current['invoiceNo']} is approved and cannot be deleted.",
                             record="invoice", attributes={"state": "the invoice is approved"})
        if resource == "bankPayments":
            raise BillyError(422, "bank payments cannot be deleted; void them with isVoided",
                             record="bankPayment", attributes={"isVoided": "void instead"})
        del self.state[resource][record_id]
        deleted[resource] = [record_id]
        for (owner, _prop), (child, back) in EMBEDDED.items():
            if owner == resource:
                ids = [k for k, v in self.state[child].items() if v.get(f"{back}Id") == record_id]
                for cid in ids:
                    del self.state[child][cid]
                if ids:
                    deleted[child] = ids
        return {"meta": {"deletedRecords": deleted}}


__all__ = ["BillySandbox", "DEMO_TOKEN", "TOKEN_ENV", "danish_company"]
