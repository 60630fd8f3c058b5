"""The Bilendo target: debtors (documented API) and invoices (designed API).

Documented (Bilendo API v2, https://bilendo.github.io/api-documentation-v2):
customers (debtors) with ``/customers/find/<your-id>``, their contacts and
addresses; form-field requests, JSON:API answers, ``Authorization: Token
token=...``. Invoices, PDFs and statuses are not publicly documented: every
path and field for them comes from :mod:`.undocumented`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx
from ledgerlink import (
    ConnectionError_,
    Contact,
    Customer,
    Document,
    DocumentKind,
    HttpClient,
    OutcomeUnknown,
    Plan,
    QuarantineError,
    RateLimit,
    Settings,
    Target,
    TargetRef,
    TransientError,
    VendorRejected,
    key_id,
    money,
    redact,
)
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from . import undocumented as U

PRODUCTION_URL = "https://api.bilendo.de"
SANDBOX_URL = "https://apisandbox.bilendo.de"
API_PATH = "/api/v2"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class SenderAddress(BaseModel):
    """The sender address block printed on the invoice (the 1CRM "user address"),
    in the shape of a documented Bilendo address."""

    model_config = ConfigDict(extra="forbid")

    line1: str
    line2: str | None = None
    line3: str | None = None
    line4: str | None = None
    zip: str | None = None
    city: str | None = None
    country_code: str = "de"

    @field_validator("country_code")
    @classmethod
    def _country(cls, value: str) -> str:
        value = value.strip().lower()
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"country_code {value!r} is not an ISO 3166 two-letter code")
        return value


class BilendoSettings(Settings):
    api_token: SecretStr
    """Bilendo API token (account settings > API); sent as ``Authorization: Token token=...``."""
    base_url: str = PRODUCTION_URL
    """``https://api.bilendo.de`` (production), ``https://apisandbox.bilendo.de`` (Bilendo's
    sandbox), the words ``production`` / ``sandbox``, or a loopback URL of ledgerlink's sandbox."""
    dispatch: Literal["automatic", "manual"] = "manual"
    """``automatic``: Bilendo sends the invoice at once; ``manual``: it stays a draft
    until someone starts the dispatch in Bilendo."""
    language: Literal["de", "en"] = "de"
    """Language of the invoice e-mail/letter Bilendo sends."""
    sender: SenderAddress | None = None
    """Sender address block; empty: the Bilendo account's default."""
    shipping_mode: Literal["email", "post", "dual_shipping"] | None = None
    """Dispatch channel; empty: the debtor's / company's setting in Bilendo."""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip()
        value = {"production": PRODUCTION_URL, "sandbox": SANDBOX_URL}.get(value.lower(), value)
        value = value.rstrip("/")
        if value.endswith(API_PATH):
            value = value[: -len(API_PATH)]
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url {value!r} is not an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError(f"base_url {value!r} must use https (Bilendo takes HTTPS only)")
        return value


def jsonapi_errors(body: Any) -> str | None:
    """One line from a JSON:API ``errors`` list ("name: can't be blank; ...")."""
    if not isinstance(body, dict) or not body.get(U.ERRORS_KEY):
        return None
    errors = body[U.ERRORS_KEY]
    if isinstance(errors, dict):  # Rails style {"field": ["message"]}
        return "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in errors.items()
        )
    if not isinstance(errors, list):
        return str(errors)
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            parts.append(str(error))
            continue
        text = str(error.get("detail") or error.get("title") or error.get("code") or "error")
        pointer = (error.get("source") or {}).get("pointer") if isinstance(error.get("source"), dict) else None
        field = pointer.rsplit("/", 1)[-1] if pointer else None
        parts.append(f"{field}: {text}" if field and not text.startswith(field) else text)
    return "; ".join(parts)


def error_message(response: httpx.Response) -> str:
    """Bilendo's words from an error answer, in one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found = jsonapi_errors(body)
    if found:
        return " ".join(found.split())[:300]
    if isinstance(body, dict) and (body.get("error") or body.get("message")):
        return " ".join(str(body.get("error") or body.get("message")).split())[:300]
    text = response.text.strip()
    if text.startswith("<"):
        return "an HTML page instead of an API answer"
    return " ".join(text.split())[:300] or "an empty answer"


def _amount(value: Decimal) -> str:
    return str(money(value))


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


class BilendoTarget(Target):
    """Debtors, invoices with PDF, and invoice statuses in Bilendo."""

    Settings: ClassVar[type[BilendoSettings]] = BilendoSettings  # type: ignore[assignment]
    description: ClassVar[str] = "Bilendo receivables management: debtors, invoices, dunning status"
    status_mapper: ClassVar[str | None] = "bilendo"
    sandbox: ClassVar[str] = "ledgerlink_bilendo.sandbox:BilendoSandbox"
    # Once exported, Bilendo sends and dunns the invoice: changes in the source are flagged.
    locks_exported: ClassVar[bool] = True

    settings: BilendoSettings

    def __init__(self, settings: Any, context: Any) -> None:
        if isinstance(settings, dict):
            settings = BilendoSettings(**settings)
        super().__init__(settings, context)
        self._http: HttpClient | None = None

    # -- plumbing ------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return self.settings.base_url + API_PATH

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            token = self.settings.api_token.get_secret_value()
            self._http = self.context.http(
                vendor="Bilendo",
                base_url=self.api_url,
                headers={"Authorization": f"Token token={token}"},
                secrets=[token],
                rate_limits=[RateLimit(f"bilendo:{key_id(token)}", U.REQUESTS_PER_SECOND)],
                auth_hint=self._token_hint(),
                error_message=error_message,
            )
        return self._http

    def _token_hint(self) -> str:
        return (
            f"check api_token of connection {self.context.connection!r} (the token from Bilendo's "
            f"account settings > API, {self.settings.base_url}/account/api)"
        )

    def _resource(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The ``data`` object of a JSON:API answer; errors inside a 2xx are refused."""
        write = response.request.method not in ("GET", "HEAD", "OPTIONS")
        body = self.http.json(response)
        problem = jsonapi_errors(body)
        if problem:
            raise VendorRejected(redact(f"Bilendo refused {what}: {problem}"), status_code=response.status_code)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("id"):
            error = OutcomeUnknown if write else TransientError
            raise error(f"Bilendo answered {what} without a resource id (HTTP {response.status_code})")
        return data

    def _find(self, path: str, what: str) -> dict[str, Any] | None:
        response = self.http.get(path, ok=[U.FIND_MISS_STATUS])
        if response.status_code == U.FIND_MISS_STATUS:
            return None
        return self._resource(response, what)

    @staticmethod
    def _quote(value: str) -> str:
        return quote(value, safe="")

    # -- check -----------------------------------------------------------------------
    def check(self) -> str:
        probe = "ledgerlink-connection-check"
        try:
            response = self.http.get(f"/customers/find/{probe}", ok=[U.FIND_MISS_STATUS])
        except ConnectionError_:
            raise ConnectionError_(
                f"Bilendo rejected the API token at {self.settings.base_url}; {self._token_hint()}",
                connection=self.context.connection,
            ) from None
        if response.status_code != U.FIND_MISS_STATUS:
            self._resource(response, "the connection check")
        host = urlsplit(self.settings.base_url).netloc
        kind = "sandbox" if "sandbox" in host or host.split(":")[0] in _LOOPBACK else "production"
        return (
            f"Bilendo {kind} at {host}: API token accepted; dispatch {self.settings.dispatch}, "
            f"language {self.settings.language}"
        )

    # -- debtors -----------------------------------------------------------------------
    @staticmethod
    def _contact(resource: dict[str, Any], email: str | None = None) -> Contact:
        attrs = resource.get("attributes") or {}
        name = str(attrs.get("name") or "").strip()
        first, _, last = name.rpartition(" ")
        return Contact(
            target_id=str(resource["id"]),
            customer_number=attrs.get("customer_number") or None,
            company=name or None,
            first_name=first or None,
            last_name=last or None,
            email=email,
            extra={
                "external_id": attrs.get("external_id"),
                "shipping_mode": attrs.get("shipping_mode"),
                "dunning_stop": attrs.get("dunning_stop"),
            },
        )

    def contacts(self) -> Iterator[Contact]:
        seen: set[str] = set()
        page = 1
        url: str | None = "/customers"
        params: dict[str, Any] | None = {U.PAGE_NUMBER_PARAM: page, U.PAGE_SIZE_PARAM: U.PAGE_SIZE}
        while url:
            response = self.http.get(url, params=params)
            body = self.http.json(response)
            problem = jsonapi_errors(body)
            if problem:
                raise VendorRejected(f"Bilendo refused the customer list: {problem}")
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise TransientError("Bilendo answered the customer list without a data list")
            new = 0
            for resource in data:
                rid = str(resource.get("id"))
                if rid in seen:
                    continue
                seen.add(rid)
                new += 1
                yield self._contact(resource)
            next_link = (body.get("links") or {}).get("next") if isinstance(body.get("links"), dict) else None
            if next_link and new:
                url, params = self._relative(next_link), None
            elif new and len(data) >= U.PAGE_SIZE:
                page += 1
                url, params = "/customers", {U.PAGE_NUMBER_PARAM: page, U.PAGE_SIZE_PARAM: U.PAGE_SIZE}
            else:
                url = None

    def _relative(self, link: str) -> str:
        if link.startswith(self.api_url):
            return link[len(self.api_url):]
        parts = urlsplit(link)
        path = parts.path[len(API_PATH):] if parts.path.startswith(API_PATH) else parts.path
        return path + (f"?{parts.query}" if parts.query else "")

    def find_contact(self, key: str) -> Contact | None:
        found = self._find(f"/customers/find/{self._quote(key)}", f"the debtor {key!r}")
        return None if found is None else self._contact(found)

    @staticmethod
    def _person(customer: Customer) -> str:
        return " ".join(p for p in (customer.first_name, customer.last_name) if p and p.strip())

    def create_contact(self, customer: Customer, key: str) -> Contact:
        """Create the debtor (or finish one a crash left half done): customer with our
        key as ``external_id``, then its contact person and address."""
        person = self._person(customer)
        name = (customer.company or "").strip() or person or customer.email or customer.source_id
        existing = self._find(f"/customers/find/{self._quote(key)}", f"the debtor {key!r}")
        if existing is None:
            fields: dict[str, str] = {"name": name, "external_id": key}
            if customer.customer_number:
                fields["customer_number"] = customer.customer_number
            if customer.phone:
                fields["phone"] = customer.phone
            if self.settings.shipping_mode:
                fields["shipping_mode"] = self.settings.shipping_mode
            resource = self._resource(self.http.post("/customers", data=fields), f"the new debtor {name!r}")
        else:
            resource = existing
        cid = str(resource["id"])
        base = f"/customers/{self._quote(cid)}"

        if customer.email or person:
            if existing is None or self._find(f"{base}/contacts/find/{self._quote(key)}", "a contact") is None:
                contact = {
                    "name": person or name,
                    "gender": "0",  # unknown: ledgerlink records carry no gender
                    "salutation": "0",  # formal
                    "external_id": key,
                    "main_contact": "true",
                }
                if customer.email:
                    contact["email"] = customer.email
                if customer.phone:
                    contact["phone"] = customer.phone
                self._resource(self.http.post(f"{base}/contacts", data=contact), f"the contact of {name!r}")

        address = customer.address
        if address and address.street and address.zip and address.city:
            if existing is None or self._find(f"{base}/addresses/find/{self._quote(key)}", "an address") is None:
                fields = {
                    "line1": (customer.company or "").strip() or address.name or name,
                    "line3": address.street,
                    "zip": address.zip,
                    "city": address.city,
                    "country_code": (address.country or "DE").lower(),
                    "external_id": key,
                    "default_address": "true",
                }
                if customer.is_company and person:
                    fields["line2"] = person
                if address.street2:
                    fields["line4"] = address.street2
                self._resource(self.http.post(f"{base}/addresses", data=fields), f"the address of {name!r}")
        elif address is not None:
            self.context.logger.info(
                "Bilendo debtor %r created without an address: street, zip and city are all required", name
            )
        return self._contact(resource, email=customer.email)

    # -- invoices ----------------------------------------------------------------------
    def validate(self, document: Document, plan: Plan) -> None:
        label = document.number or document.source_ref
        if document.kind != DocumentKind.INVOICE:
            raise QuarantineError(
                f"{label} is a credit note; the Bilendo target transfers invoices only "
                "(book the credit in Bilendo by hand)"
            )
        if plan.contact is None:
            raise QuarantineError(f"{label} has no Bilendo debtor (no customer matched or created)")
        total = sum((pl.gross for pl in plan.lines), Decimal("0.00"))
        if total <= 0:
            raise QuarantineError(f"{label} totals {total} {document.currency}; Bilendo collects only amounts due")
        if plan.due_date and plan.due_date < plan.document_date:
            raise QuarantineError(
                f"{label} is due {plan.due_date.isoformat()}, before its date {plan.document_date.isoformat()}"
            )

    def _invoice_fields(self, document: Document, plan: Plan) -> dict[str, str]:
        assert plan.contact is not None
        net = sum((pl.net for pl in plan.lines), Decimal("0.00"))
        tax = sum((pl.tax for pl in plan.lines), Decimal("0.00"))
        gross = sum((pl.gross for pl in plan.lines), Decimal("0.00"))
        fields: dict[str, str] = {
            U.F_EXTERNAL_ID: document.source_ref,
            U.F_INVOICE_NUMBER: document.number or document.source_ref,
            U.F_INVOICE_DATE: plan.document_date.isoformat(),
            U.F_CURRENCY: document.currency,
            U.F_AMOUNT: _amount(gross),
            U.F_NET_AMOUNT: _amount(net),
            U.F_TAX_AMOUNT: _amount(tax),
            U.F_CUSTOMER_ID: plan.contact.target_id,
            U.F_DISPATCH: self.settings.dispatch,
            U.F_LANGUAGE: self.settings.language,
        }
        external = plan.contact.extra.get("external_id")
        if external:
            fields[U.F_CUSTOMER_EXTERNAL_ID] = str(external)
        if plan.due_date:
            fields[U.F_DUE_DATE] = plan.due_date.isoformat()
        if self.settings.shipping_mode:
            fields[U.F_SHIPPING_MODE] = self.settings.shipping_mode
        if self.settings.sender:
            for name, value in self.settings.sender.model_dump().items():
                if value:
                    fields[f"{U.F_SENDER}[{name}]"] = str(value)
        for index, pl in enumerate(plan.lines):
            line = pl.line
            unit_net = money(pl.net / line.quantity)
            values = {
                "description": line.description,
                "quantity": _number(line.quantity),
                "unit_price": _amount(unit_net),
                "net_amount": _amount(pl.net),
                "tax_rate": _number(line.tax_rate),
                "tax_amount": _amount(pl.tax),
                "amount": _amount(pl.gross),
            }
            for name in U.ITEM_FIELDS:
                fields[f"{U.F_ITEMS}[{index}][{name}]"] = values[name]
        return fields

    def _download_pdf(self, url: str) -> bytes:
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
        client = self.context.http(
            vendor="the source's invoice PDF",
            base_url=f"{parts.scheme}://{parts.netloc}",
            auth_hint="check that the source's PDF link is reachable",
        )
        try:
            response = client.get(url)
        except (ConnectionError_, VendorRejected) as exc:
            # A dead or expired link concerns this document, not the Bilendo connection.
            raise QuarantineError(f"the invoice PDF at {redact(shown)} could not be fetched: {exc}") from None
        finally:
            client.close()
        content = response.content
        if not content.startswith(b"%PDF"):
            raise QuarantineError(f"the invoice PDF at {redact(shown)} is not a PDF ({len(content)} bytes)")
        return content

    def push(self, document: Document, plan: Plan) -> TargetRef:
        self.validate(document, plan)
        fields = self._invoice_fields(document, plan)
        files = None
        if document.pdf_url:
            pdf = self._download_pdf(document.pdf_url)
            filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in fields[U.F_INVOICE_NUMBER])
            files = {U.F_PDF: (f"{filename}.pdf", pdf, "application/pdf")}
        label = document.number or document.source_ref
        response = self.http.post(U.INVOICES, data=fields, files=files)
        resource = self._resource(response, f"invoice {label}")
        attrs = resource.get("attributes") or {}
        return TargetRef(
            target_id=str(resource["id"]),
            number=attrs.get(U.F_INVOICE_NUMBER) or document.number,
            kind=U.INVOICE_TYPE,
        )

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        path = U.INVOICE_FIND.format(external_id=self._quote(source_ref))
        found = self._find(path, f"the invoice for {source_ref!r}")
        if found is None:
            return None
        attrs = found.get("attributes") or {}
        return TargetRef(
            target_id=str(found["id"]), number=attrs.get(U.F_INVOICE_NUMBER) or number, kind=U.INVOICE_TYPE
        )

    def statuses(self, refs: Iterable[TargetRef]) -> Iterator[tuple[TargetRef, str]]:
        for ref in refs:
            path = U.INVOICE.format(id=self._quote(ref.target_id))
            response = self.http.get(path, ok=[404])
            if response.status_code == 404:
                yield ref, U.STATUS_DELETED
                continue
            resource = self._resource(response, f"invoice {ref.number or ref.target_id}")
            yield ref, U.raw_status(resource.get("attributes") or {})

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
