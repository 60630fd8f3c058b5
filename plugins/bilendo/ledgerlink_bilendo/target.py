"""The Bilendo target: debtors (documented API) and invoices (designed API).

Documented (Bilendo API v2, https://bilendo.github.io/api-documentation-v2):
customers (debtors) with ``/customers/find/<your-id>``, their contacts and
addresses; form-field requests, JSON:API answers, ``Authorization: Token
token=...``. Invoices, PDFs and statuses are not publicly documented: every
path and field for them comes from :mod:`.undocumented`.

This module makes the calls; the form fields are built and the answers read in
:mod:`.mapping`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx
from ledgerlink import (
    ConnectionError_,
    ConnectorContext,
    Contact,
    Customer,
    Document,
    DocumentKind,
    HeaderToken,
    HttpClient,
    OutcomeUnknown,
    PageNumber,
    Plan,
    QuarantineError,
    RateLimit,
    Settings,
    Target,
    TargetRef,
    TransientError,
    VendorRejected,
    key_id,
    redact,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from . import mapping
from . import undocumented as U
from .mapping import contact_from_resource, error_message, jsonapi_errors

PRODUCTION_URL = "https://api.bilendo.de"
SANDBOX_URL = "https://apisandbox.bilendo.de"
API_PATH = "/api/v2"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class SenderAddress(BaseModel):
    """The sender address block printed on the invoice (the 1CRM "user address"),
    in the shape of a documented Bilendo address."""

    model_config = ConfigDict(extra="forbid")

    line1: str = Field(description="first line, e.g. the company name (required)")
    line2: str | None = Field(None, description="second line (default: none)")
    line3: str | None = Field(None, description="third line, e.g. the street (default: none)")
    line4: str | None = Field(None, description="fourth line (default: none)")
    zip: str | None = Field(None, description="postcode (default: none)")
    city: str | None = Field(None, description="city (default: none)")
    country_code: str = Field("de", description="ISO 3166 two-letter country code (default de)")

    @field_validator("country_code")
    @classmethod
    def _country(cls, value: str) -> str:
        value = value.strip().lower()
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"country_code {value!r} is not an ISO 3166 two-letter code")
        return value


class BilendoSettings(Settings):
    """Settings of a Bilendo connection (see the plugin README for each one)."""

    api_token: SecretStr = Field(
        description="Bilendo API token (account settings > API), sent as Authorization: Token token=..."
    )
    base_url: str = Field(
        PRODUCTION_URL,
        description="server root without /api/v2: https://api.bilendo.de (default, production), "
        "https://apisandbox.bilendo.de (Bilendo's sandbox), the words production / sandbox, or a loopback "
        "URL of ledgerlink's sandbox; https only, except on loopback",
    )
    dispatch: Literal["automatic", "manual"] = Field(
        "manual",
        description="automatic: Bilendo sends the invoice at once; manual (default): it stays a draft until "
        "someone starts the dispatch in Bilendo. A document's own choice (Document.dispatch.send, e.g. a CRM "
        "account's preset) wins",
    )
    language: Literal["de", "en"] = Field(
        "de", description="language of the invoice e-mail/letter Bilendo sends (default de); a document's own "
        "language (Document.dispatch.language) wins"
    )
    sender: SenderAddress | None = Field(
        None, description="sender address block on the invoice (default: the Bilendo account's own); a "
        "document's own sender (Document.dispatch.sender, e.g. the CRM user's address) wins"
    )
    shipping_mode: Literal["email", "post", "dual_shipping"] | None = Field(
        None,
        description="dispatch channel, also set on new debtors (default: the debtor's / company's setting "
        "in Bilendo); a document's own channel (Document.dispatch.channel) wins for its invoice",
    )
    requests_per_second: float = Field(
        U.REQUESTS_PER_SECOND, gt=0,
        description="client-side limit per token, in requests per second (default 5; Bilendo publishes "
        "no limit, so this is an assumption)",
    )
    page_size: int = Field(
        U.PAGE_SIZE, ge=1,
        description="debtors per page of GET /customers (page[size]; default 100; Bilendo's paging "
        "parameters are an assumption)",
    )
    timeout: float | None = Field(
        None, gt=0,
        description="seconds to wait for one HTTP answer (default: not set, so the HTTP client's 30 s, or "
        "LEDGERLINK_HTTP_TIMEOUT when that is set)",
    )

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


class BilendoTarget(Target):
    """Debtors, invoices with PDF, and invoice statuses in Bilendo."""

    Settings: ClassVar[type[BilendoSettings]] = BilendoSettings  # type: ignore[assignment]
    description: ClassVar[str] = "Bilendo receivables management: debtors, invoices, dunning status"
    status_mapper: ClassVar[str | None] = "bilendo"
    sandbox: ClassVar[str | None] = "ledgerlink_bilendo.sandbox:BilendoSandbox"
    # Once exported, Bilendo sends and dunns the invoice: changes in the source are flagged.
    locks_exported: ClassVar[bool] = True
    books_vouchers: ClassVar[bool] = False  # no payment call: validate() quarantines voucher-paid invoices
    # Bilendo collects the receivable in the invoice's own currency and books nothing:
    # a CHF invoice goes as CHF, and no exchange rate is needed (none is sent).
    needs_exchange_rate: ClassVar[bool] = False

    settings: BilendoSettings

    def __init__(self, settings: Any, context: ConnectorContext) -> None:
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
                auth=HeaderToken("Authorization", token, prefix="Token token="),
                rate_limits=[RateLimit(f"bilendo:{key_id(token)}", self.settings.requests_per_second)],
                auth_hint=self._token_hint(),
                error_message=error_message,
                **self._timeout(),
            )
        return self._http

    def _timeout(self) -> dict[str, float]:
        """The connection's own timeout, if set (else the HTTP client's default)."""
        return {} if self.settings.timeout is None else {"timeout": self.settings.timeout}

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
    def contacts(self) -> Iterator[Contact]:
        """Every debtor, page by page (``page[number]``, ``page[size]``; assumed, see
        :mod:`.undocumented`). The list ends at the first page that brings no new id (an
        API that ignores the paging parameters), or at one shorter than ``page[size]``
        without ``links.next``."""
        size = self.settings.page_size
        style = PageNumber(page_param=U.PAGE_NUMBER_PARAM, size_param=U.PAGE_SIZE_PARAM, size=size, items="data")
        seen: set[str] = set()
        for page in self.http.pages("/customers", style, parse=self._customer_list):
            known = len(seen)
            for resource in page.items:
                rid = str(resource.get("id"))
                if rid not in seen:
                    seen.add(rid)
                    yield contact_from_resource(resource)
            links = page.body.get("links")
            if len(seen) == known or (len(page.items) < size and not (isinstance(links, dict) and links.get("next"))):
                return

    def _customer_list(self, response: httpx.Response) -> dict[str, Any]:
        body = self.http.json(response)
        problem = jsonapi_errors(body)
        if problem:
            raise VendorRejected(f"Bilendo refused the customer list: {problem}")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise TransientError("Bilendo answered the customer list without a data list")
        return body

    def find_contact(self, key: str) -> Contact | None:
        found = self._find(f"/customers/find/{self._quote(key)}", f"the debtor {key!r}")
        return None if found is None else contact_from_resource(found)

    def create_contact(self, customer: Customer, key: str) -> Contact:
        """Create the debtor (or finish one a crash left half done): customer with our
        key as ``external_id``, then its contact person and address."""
        name = mapping.debtor_name(customer)
        existing = self._find(f"/customers/find/{self._quote(key)}", f"the debtor {key!r}")
        if existing is None:
            fields = mapping.debtor_fields(customer, key, shipping_mode=self.settings.shipping_mode)
            resource = self._resource(self.http.post("/customers", data=fields), f"the new debtor {name!r}")
        else:
            resource = existing
        cid = str(resource["id"])
        base = f"/customers/{self._quote(cid)}"

        if customer.email or mapping.person_name(customer):
            if existing is None or self._find(f"{base}/contacts/find/{self._quote(key)}", "a contact") is None:
                contact = mapping.contact_person_fields(customer, key)
                self._resource(self.http.post(f"{base}/contacts", data=contact), f"the contact of {name!r}")

        if mapping.has_full_address(customer):
            if existing is None or self._find(f"{base}/addresses/find/{self._quote(key)}", "an address") is None:
                fields = mapping.address_fields(customer, key)
                self._resource(self.http.post(f"{base}/addresses", data=fields), f"the address of {name!r}")
        elif customer.address is not None:
            self.context.logger.info(
                "Bilendo debtor %r created without an address: street, zip and city are all required", name
            )
        return contact_from_resource(resource, email=customer.email)

    # -- invoices ----------------------------------------------------------------------
    def validate(self, document: Document, plan: Plan) -> None:
        label = document.number or document.source_ref
        if document.kind != DocumentKind.INVOICE:
            cancels = f" (it cancels {plan.reverses.number or plan.reverses.target_id})" if plan.reverses else ""
            raise QuarantineError(
                f"{label} is a credit note{cancels}; Bilendo's API takes invoices only and has no credit note or "
                "cancel call, so ledgerlink cannot reduce or cancel a receivable there: cancel or correct the "
                "invoice in Bilendo by hand so that it is not dunned"
            )
        vouchers = document.voucher_amount
        if vouchers:
            owed = document.total_gross - document.paid_amount
            todo = (f"enter the invoice in Bilendo by hand with {owed} {document.currency} still owed" if owed > 0
                    else "nothing is owed, so it does not belong in Bilendo")
            raise QuarantineError(
                f"{label}: {vouchers} {document.currency} of its {document.total_gross} was paid with a gift voucher; "
                f"Bilendo's API records no payments, so Bilendo would send and dun the full amount: {todo}"
            )
        problem = mapping.option_problem(document)
        if problem:
            raise QuarantineError(f"{label}: {problem}")
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
        sender = self.settings.sender.model_dump() if self.settings.sender else None
        # The source's choices for this document (Document.dispatch) win over the settings.
        dispatch, language, shipping_mode, sender = mapping.export_options(
            document, dispatch=self.settings.dispatch, language=self.settings.language,
            shipping_mode=self.settings.shipping_mode, sender=sender,
        )
        return mapping.invoice_fields(
            document, plan, dispatch=dispatch, language=language, shipping_mode=shipping_mode, sender=sender,
        )

    def _download_pdf(self, url: str) -> bytes:
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
        client = self.context.http(
            vendor="the source's invoice PDF",
            base_url=f"{parts.scheme}://{parts.netloc}",
            auth_hint="check that the source's PDF link is reachable",
            **self._timeout(),
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
            files = {U.F_PDF: (mapping.pdf_filename(fields[U.F_INVOICE_NUMBER]), pdf, "application/pdf")}
        label = document.number or document.source_ref
        response = self.http.post(U.INVOICES, data=fields, files=files)
        return mapping.invoice_ref(self._resource(response, f"invoice {label}"), document.number)

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        path = U.INVOICE_FIND.format(external_id=self._quote(source_ref))
        found = self._find(path, f"the invoice for {source_ref!r}")
        if found is None:
            return None
        return mapping.invoice_ref(found, number)

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
