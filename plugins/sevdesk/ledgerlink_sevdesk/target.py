"""The sevDesk target: contacts, vouchers (or invoices), tags and payments.

Where it sits: the engine plans a document (accounts, tax rules, dates, tags) and
calls ``validate`` and ``push`` here; this module turns the plan into sevDesk's
factory calls (``Voucher/Factory/saveVoucher`` or ``Invoice/Factory/saveInvoice``),
tags the result, and books the payment when the pipeline reconciles payments in
the source. Everything goes through ``context.http`` (retries, rate limit,
redaction); sevDesk's quirks are noted where they are handled. The bodies are built
and read in :mod:`.mapping`, the tax rules live in :mod:`.taxes`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import httpx
from ledgerlink import (
    ConnectionError_,
    Contact,
    Customer,
    Document,
    DocumentKind,
    HeaderToken,
    Offset,
    OutcomeUnknown,
    Payment,
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
)
from pydantic import Field, SecretStr, model_validator

from . import mapping
from .mapping import contact_from_record, iso_country
from .taxes import (
    NOT_ON_VOUCHERS,
    OSS_RULES,
    TAX_RULES_2_0,
    TAX_TYPES_1_0,
    TREATMENT_TO_TAX_TYPE,
    ReceiptGuidance,
    rate_name,
    rule_for,
)

log = logging.getLogger("ledgerlink.sevdesk")

DEFAULT_BASE_URL = "https://my.sevdesk.de/api/v1"
REFERENCE_TAG = "ledgerlink-ref: "
"""Tag name prefix that carries our reference on a cancellation invoice (see find_document)."""
AUTH_HINT = "copy the API token again from sevDesk under Extensions > API (Erweiterungen > API)"


class SevdeskSettings(Settings):
    """Settings of a sevDesk connection (see the plugin README for each one)."""

    api_token: SecretStr = Field(
        description="the 32-character API token of a sevDesk administrator (Extensions > API), sent raw "
        "in the Authorization header"
    )
    base_url: str = Field(
        DEFAULT_BASE_URL, description="API root including /api/v1 (default: sevDesk's production API)"
    )
    document_type: Literal["voucher", "invoice"] = Field(
        "voucher", description="what a document becomes in sevDesk: a revenue voucher (default) or an invoice"
    )
    check_account: int | None = Field(
        None,
        description="CheckAccount id where payments are booked (an offline or cash account) when their "
        "method has no entry in payment_accounts and book_unassigned_payments is true (default: none)",
    )
    payment_accounts: dict[str, int] = Field(
        default_factory=dict,
        description="payment method (as the source names it) -> CheckAccount id (default: none)",
    )
    book_unassigned_payments: bool = Field(
        False,
        description="book a payment whose method is not in payment_accounts on check_account (default false: "
        "the document stays open)",
    )
    cost_centre: int | None = Field(
        None, description="CostCentre id put on every document; the pipeline's cost_centre wins (default: none)"
    )
    description_template: str = Field(
        "{number}",
        description="voucher description / invoice reference, where find_document looks; {number} and "
        "{source_ref} are filled in (default \"{number}\")",
    )
    contact_category: int = Field(
        3, description="Category id of created and listed contacts (default 3: customer)"
    )
    address_category: int = Field(47, description="Category id of created addresses (default 47)")
    email_key: int = Field(2, description="CommunicationWayKey id of created e-mail addresses (default 2: work)")
    country_ids: dict[str, int] = Field(
        default_factory=lambda: {"DE": 1},
        description="ISO country -> StaticCountry id; overrides what GET /StaticCountry reports "
        "(default {DE = 1})",
    )
    contact_person: int | None = Field(
        None, description="SevUser id that issues invoices; required for document_type = \"invoice\""
    )
    finalize_invoices: bool = Field(
        True,
        description="send invoices (sendBy) so they are open and numbered (default true; false leaves drafts)",
    )
    invoice_send_type: Literal["VPDF", "VPR", "VP", "VM"] = Field(
        "VPDF", description="the sendType of sendBy (default VPDF)"
    )
    accounting_types: dict[str, int] = Field(
        default_factory=dict,
        description="bookkeeping 1.0 only: account (as in the rules) -> AccountingType id (default: none)",
    )
    requests_per_second: float = Field(
        10.0, gt=0, description="client-side limit per token, in requests per second (default 10)"
    )
    page_size: int = Field(
        100, ge=1, le=1000, description="records per page of list calls (limit), 1-1000 (default 100)"
    )
    timeout: float = Field(30.0, gt=0, description="seconds to wait for one HTTP answer (default 30)")
    retries: int = Field(
        5, ge=0, description="attempts after the first for answers that are retried (429, 503, lost reads) (default 5)"
    )
    backoff: float = Field(
        0.5, ge=0, description="seconds before the first retry without Retry-After, doubled per retry up to 30 (default 0.5)"
    )

    @model_validator(mode="after")
    def _invoice_needs_user(self) -> SevdeskSettings:
        if self.document_type == "invoice" and self.contact_person is None:
            raise ValueError(
                "document_type = \"invoice\" needs contact_person (the id of the sevDesk user "
                "who issues the invoices)"
            )
        if "{number}" not in self.description_template and "{source_ref}" not in self.description_template:
            raise ValueError("description_template must contain {number} or {source_ref}")
        return self


@dataclass(frozen=True)
class _LimitOffset(Offset):
    """sevDesk's paging: ``?limit=100&offset=0`` (limit first, as always sent), then
    ``offset=100``, ... sevDesk states no total unless asked (``countAll``) and never
    sends fewer than asked, so a page shorter than ``limit`` is the last."""

    short_page_ends: bool = True

    def start(self) -> dict[str, Any]:
        return {"limit": self.limit, self.offset_param: 0}


class SevdeskTarget(Target):
    """Books documents in sevDesk as revenue vouchers (default) or invoices."""

    reverses_documents = True

    Settings = SevdeskSettings
    description = "sevDesk: revenue vouchers or invoices, contacts, tags, payments"
    status_mapper = "sevdesk"
    sandbox = "ledgerlink_sevdesk.sandbox:SevdeskSandbox"

    settings: SevdeskSettings

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        token = settings.api_token.get_secret_value().strip()
        self.http = context.http(
            vendor="sevDesk",
            base_url=settings.base_url.rstrip("/") + "/",
            headers={"Content-Type": "application/json"},
            # sevDesk takes the raw token, without "Bearer" (the query parameter was removed in 2025).
            auth=HeaderToken("Authorization", token),
            rate_limits=[RateLimit(f"sevdesk:{key_id(token)}", settings.requests_per_second)],
            auth_hint=AUTH_HINT,
            error_message=mapping.error_message,
            timeout=settings.timeout,
            retries=settings.retries,
            backoff=settings.backoff,
        )
        self.version: str | None = None
        self.guidance: ReceiptGuidance | None = None
        self.check_accounts: dict[int, dict[str, Any]] | None = None
        self.tag_ids: dict[str, str] = {}
        self.countries: dict[str, int] | None = None  # GET /StaticCountry, read once when first needed

    # -- HTTP helpers ----------------------------------------------------------
    def _call(self, method: str, path: str, *, params: Any = None, body: Any = None,
              ok: Iterable[int] = ()) -> tuple[int, Any]:
        response = self.http.request(
            method, path.lstrip("/"), params=params,
            content=None if body is None else mapping.dumps(body), ok=ok,
        )
        if response.status_code >= 400:  # one the caller asked for in ``ok``
            return response.status_code, None
        return response.status_code, self._objects(response)

    def _objects(self, response: httpx.Response) -> Any:
        write = response.request.method not in ("GET", "HEAD")
        # one parse, numbers exact; clear errors for HTML, empty or cut answers
        data = self.http.json(response, write=write, loads=mapping.loads)
        # sevDesk can answer an error inside HTTP 200 (e.g. code 390): check every body.
        if isinstance(data, dict) and data.get("error"):
            message = mapping.error_message(response)
            raise VendorRejected(
                f"sevDesk refused {response.request.method} {response.request.url.path}"
                f" (HTTP {response.status_code}): {message}",
                status_code=response.status_code,
            )
        if not isinstance(data, dict) or "objects" not in data:
            raise (OutcomeUnknown if write else VendorRejected)(
                f"sevDesk sent an answer without 'objects' for {response.request.method}"
                f" {response.request.url.path}"
            )
        return data["objects"]

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params or None)[1]

    def _one(self, path: str) -> dict[str, Any] | None:
        """GET by id: sevDesk wraps the object in a one-element array; 404 is None."""
        status, objects = self._call("GET", path, ok=(404,))
        if status == 404:
            return None
        if isinstance(objects, list):
            return objects[0] if objects else None
        return objects if isinstance(objects, dict) else None

    def _pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every object of a list, ``limit``/``offset`` page by page, to the first short page."""
        return self.http.paginate(path.lstrip("/"), _LimitOffset(items=None, limit=self.settings.page_size),
                                  params=params, parse=self._listed)

    def _listed(self, response: httpx.Response) -> list[Any]:
        objects = self._objects(response)
        # Some endpoints answer one object instead of a list.
        return [objects] if isinstance(objects, dict) else objects or []

    # -- account -------------------------------------------------------------------
    def check(self) -> str:
        try:
            version = self._bookkeeping_version()
        except ConnectionError_ as exc:
            raise ConnectionError_(
                f"sevDesk rejected the API token; {AUTH_HINT}", connection=exc.connection
            ) from None
        accounts = self._load_check_accounts()
        described = f"sevDesk, bookkeeping system {version}"
        if self.settings.check_account is not None:
            account = self._usable_check_account(self.settings.check_account, "check_account")
            described += f", payments on '{account.get('name')}' ({account.get('type')})"
        for method, account_id in self.settings.payment_accounts.items():
            self._usable_check_account(account_id, f"payment_accounts[{method!r}]")
        return described + f", {len(accounts)} check accounts"

    def account_id(self) -> str | None:
        """The sevDesk client the token opens: ``sevClient.id`` on its check accounts
        (every sevDesk object names it); None when it has no check account."""
        for account in self._load_check_accounts().values():
            client = account.get("sevClient")
            if isinstance(client, dict) and client.get("id") is not None:
                return f"client {client['id']}"
        return None

    def _bookkeeping_version(self) -> str:
        if self.version is None:
            objects = self.get("Tools/bookkeepingSystemVersion")
            version = str((objects or {}).get("version") or "")
            if version not in ("1.0", "2.0"):
                raise ConnectionError_(
                    f"sevDesk reports bookkeeping system version {version!r}; this plugin knows 1.0 and 2.0",
                    connection=self.context.connection,
                )
            self.version = version
        return self.version

    def _load_check_accounts(self) -> dict[int, dict[str, Any]]:
        if self.check_accounts is None:
            self.check_accounts = {int(a["id"]): a for a in self._pages("CheckAccount")}
        return self.check_accounts

    def _usable_check_account(self, account_id: int, setting: str) -> dict[str, Any]:
        accounts = self._load_check_accounts()
        account = accounts.get(int(account_id))
        if account is None:
            known = ", ".join(f"{key} {value.get('name')!r}" for key, value in accounts.items())
            raise ConnectionError_(
                f"sevDesk has no check account with id {account_id} (setting {setting}); known: {known}",
                connection=self.context.connection,
            )
        if str(account.get("status")) == "0":
            raise ConnectionError_(
                f"sevDesk check account {account_id} ({account.get('name')!r}, setting {setting}) is archived",
                connection=self.context.connection,
            )
        if account.get("type") == "online":
            # bookAmount on an online account needs an existing bank transaction.
            raise ConnectionError_(
                f"sevDesk check account {account_id} ({account.get('name')!r}, setting {setting}) is an online "
                "account; payments can only be booked on it against a bank transaction. Use a clearing "
                "(offline) or cash account",
                connection=self.context.connection,
            )
        return account

    def prepare(self, pipeline_options: dict[str, Any]) -> None:
        version = self._bookkeeping_version()
        if version == "2.0" and self.settings.document_type == "voucher" and self.guidance is None:
            self.guidance = ReceiptGuidance(list(self._pages("ReceiptGuidance/forRevenue")))
        if self.settings.check_account is not None:
            self._usable_check_account(self.settings.check_account, "check_account")
        for method, account_id in self.settings.payment_accounts.items():
            self._usable_check_account(account_id, f"payment_accounts[{method!r}]")
        for name in pipeline_options.get("tags") or []:
            self._known_tag(str(name))

    # -- countries -------------------------------------------------------------------
    def _static_countries(self) -> dict[str, int]:
        """ISO alpha-2 (upper case) -> StaticCountry id, from one ``GET /StaticCountry`` per run."""
        if self.countries is None:
            self.countries = {}
            try:
                rows = list(self._pages("StaticCountry"))
            except VendorRejected as exc:
                log.warning("sevDesk's country list (GET /StaticCountry) could not be read, so only "
                            "country_ids are used: %s", exc)
                return self.countries
            for raw in rows:
                code = iso_country(str(raw.get("code") or ""))
                country_id = str(raw.get("id") or "").strip()
                if len(code) == 2 and code.isalpha() and country_id.isdigit():
                    self.countries.setdefault(code, int(country_id))
        return self.countries

    def country_id(self, country: str) -> int | None:
        """The StaticCountry id of an ISO country: ``country_ids`` first, then sevDesk's list."""
        code = iso_country(country)
        for key, value in self.settings.country_ids.items():
            if iso_country(key) == code:
                return value
        return self._static_countries().get(code)

    # -- contacts ------------------------------------------------------------------
    def contacts(self) -> Iterator[Contact]:
        emails: dict[str, str] = {}
        for way in self._pages("CommunicationWay", type="EMAIL"):
            contact_id = str((way.get("contact") or {}).get("id") or "")
            if contact_id and (contact_id not in emails or str(way.get("main")) in ("1", "true", "True")):
                emails[contact_id] = str(way.get("value") or "")
        # depth=1: without it sevDesk lists organisations only.
        for raw in self._pages("Contact", depth=1):
            category = str((raw.get("category") or {}).get("id") or "")
            if category != str(self.settings.contact_category):
                continue
            yield contact_from_record(raw, emails.get(str(raw["id"])))

    def find_contact_by_number(self, customer_number: str) -> Contact | None:
        """The contact with exactly this customer number (sevDesk's filter is exact)."""
        for raw in self._pages("Contact", customerNumber=customer_number, depth=1):
            if str(raw.get("customerNumber") or "") == customer_number:
                return contact_from_record(raw)
        return None

    def find_contact(self, key: str) -> Contact | None:
        # The key is written into the contact's description when it is created
        # (sevDesk has no filter on it, so this scans; it runs only to settle a
        # creation whose answer was lost).
        for raw in self._pages("Contact", depth=1):
            if mapping.has_key(raw, key):
                return contact_from_record(raw)
        return None

    def create_contact(self, customer: Customer, key: str) -> Contact:
        # The country is looked up first, so a failing lookup leaves no half-made contact.
        address = customer.address
        has_address = address is not None and any((address.street, address.zip, address.city))
        country = (address.country if address else None) or "DE"
        country_id = self.country_id(country) if has_address else None
        number = self.get("Contact/Factory/getNextCustomerNumber")
        if not isinstance(number, str | int) or str(number).strip() == "":
            raise VendorRejected("sevDesk sent no next customer number")
        body = mapping.contact_payload(customer, key, number=str(number), category=self.settings.contact_category)
        _, created = self._call("POST", "Contact", body=body)
        contact = contact_from_record(created)
        contact_id = contact.target_id
        if has_address and country_id is None:
            log.warning(
                "sevDesk knows no country %s (not in country_ids, not in GET /StaticCountry); "
                "contact %s gets no address", country, contact_id,
            )
        try:
            if has_address and country_id is not None:
                self._call("POST", "ContactAddress", body=mapping.address_payload(
                    contact_id, customer, country_id=country_id, category=self.settings.address_category,
                ))
            if customer.email:
                self._call("POST", "CommunicationWay", body=mapping.email_payload(
                    contact_id, customer.email, key=self.settings.email_key,
                ))
                contact.email = customer.email
        except (VendorRejected, TransientError) as exc:  # OutcomeUnknown too: the contact exists
            log.warning("sevDesk contact %s created, but its address or e-mail failed: %s", contact_id, exc)
        return contact

    # -- documents -------------------------------------------------------------------
    def description_for(self, source_ref: str, number: str | None) -> str:
        return self.settings.description_template.format(number=number or source_ref, source_ref=source_ref)

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        wanted = self.description_for(source_ref, number)
        if self.settings.document_type == "invoice":
            # The filter is undocumented; filters fail silently, so compare every row.
            for raw in self._pages("Invoice", customerInternalNote=wanted):
                if str(raw.get("customerInternalNote") or "") == wanted:
                    return TargetRef(target_id=str(raw["id"]), number=raw.get("invoiceNumber") or wanted,
                                     kind="invoice")
            return self._find_by_reference_tag(wanted)
        found = [raw for raw in self._pages("Voucher", descriptionLike=wanted)
                 if str(raw.get("description") or "") == wanted]  # descriptionLike is a substring match
        if not found:
            return None
        if len(found) > 1:
            log.warning("sevDesk has %d vouchers described %r; taking the oldest", len(found), wanted)
        first = min(found, key=lambda raw: int(raw["id"]))
        return TargetRef(target_id=str(first["id"]), number=wanted, kind="voucher")

    def _find_by_reference_tag(self, reference: str) -> TargetRef | None:
        """A cancellation invoice (written by sevDesk's cancelInvoice, so without our
        customerInternalNote) carries the tag ``ledgerlink-ref: <reference>``."""
        name = REFERENCE_TAG + reference
        tag_ids = {str(t["id"]) for t in self._pages("Tag", name=name) if str(t.get("name")) == name}
        if not tag_ids:
            return None
        for relation in self._pages("TagRelation"):
            obj = relation.get("object") or {}
            if str((relation.get("tag") or {}).get("id")) in tag_ids and obj.get("objectName") == "Invoice":
                raw = self._one(f"Invoice/{obj.get('id')}")
                if raw is not None:
                    return TargetRef(target_id=str(raw["id"]), number=raw.get("invoiceNumber") or reference,
                                     kind="invoice")
        return None

    def _resolved_lines(self, document: Document, plan: Plan) -> list[tuple[Any, str]]:
        """(planned line, tax rule or tax type) per line, or QuarantineError."""
        version = self._bookkeeping_version()
        out = []
        for index, planned in enumerate(plan.lines, start=1):
            what = f"line {index} ({planned.line.description[:40]!r})"
            if version == "2.0":
                rule = planned.tax_rule
                if rule is None:
                    try:
                        rule = rule_for(planned.treatment, planned.line.kind)
                    except ValueError as exc:
                        raise QuarantineError(f"{what}: {exc}") from None
                if rule is None:
                    raise QuarantineError(f"{what} has neither a tax rule nor a tax treatment")
                rule = str(rule).strip()
                if rule not in TAX_RULES_2_0:
                    raise QuarantineError(f"{what}: {rule!r} is not a sevDesk 2.0 revenue tax rule")
            else:
                rule = planned.tax_rule or TREATMENT_TO_TAX_TYPE.get(str(planned.treatment or ""))
                if rule is None:
                    raise QuarantineError(
                        f"{what}: tax treatment {planned.treatment!r} has no sevDesk 1.0 tax type"
                        " (custom tax sets are not supported)"
                    )
                if rule not in TAX_TYPES_1_0:
                    raise QuarantineError(f"{what}: {rule!r} is not a sevDesk 1.0 tax type")
            out.append((planned, rule))
        return out

    def validate(self, document: Document, plan: Plan) -> None:
        if document.kind == DocumentKind.CREDIT_NOTE and plan.reverses is None:
            raise QuarantineError(
                "a credit note that names no original document in sevDesk is not written (never as free-standing "
                "negative revenue); book it in sevDesk by hand")
        if plan.reverses is not None and document.kind != DocumentKind.CREDIT_NOTE:
            raise QuarantineError(f"the document reverses {plan.reverses.number or plan.reverses.target_id} but is "
                                  "not a credit note")
        if mapping.foreign(document, plan):
            if self.settings.document_type == "invoice":
                raise QuarantineError(
                    f"the document is in {document.currency}, the books in {plan.book_currency}: a sevDesk invoice "
                    "takes no exchange rate (only vouchers have propertyExchangeRate), so it would not be booked at "
                    "the source's rate; use document_type = \"voucher\" for this pipeline or book it by hand")
            if plan.exchange_rate is None:
                raise QuarantineError(
                    f"the document is in {document.currency}, the books in {plan.book_currency}, and no exchange "
                    f"rate is known (the source states none; add {document.currency} to the pipeline's "
                    "exchange_rates): sevDesk needs propertyExchangeRate, and it is never booked as the same number "
                    f"of {plan.book_currency}")
        if plan.mark_paid and document.kind == DocumentKind.INVOICE and document.paid_amount > document.total_gross:
            raise QuarantineError(
                f"the payments ({document.paid_amount} {document.currency}) exceed the document's total "
                f"({document.total_gross}): sevDesk refuses a booking over the open amount, and the amount booked "
                "is what the customer paid")
        lines = self._resolved_lines(document, plan)
        rules = sorted({rule for _, rule in lines})
        if len(rules) > 1:
            raise QuarantineError(
                f"sevDesk books one tax rule per document, but the lines need {', '.join(rules)}"
            )
        rule = rules[0]
        self._cost_centre(plan)
        if plan.mark_paid and any(p.kind == "voucher" for p in document.payments):
            self._voucher_check_account(plan)
        if plan.reverses is not None and self.settings.document_type == "invoice":
            if plan.contact is None:
                raise QuarantineError("a sevDesk cancellation invoice needs the original's contact, and none was "
                                      "matched or created")
            return  # sevDesk writes the cancellation invoice from the original (cancelInvoice)
        try:
            mapping.choose_positions([pl for pl, _ in lines], by_account=self.settings.document_type == "voucher")
        except ValueError as exc:
            raise QuarantineError(str(exc)) from None
        if self.settings.document_type == "voucher":
            if rule in NOT_ON_VOUCHERS:
                reason = "One-Stop-Shop (OSS)" if rule in OSS_RULES else f"tax rule {rule}"
                raise QuarantineError(
                    f"{reason} is not allowed on sevDesk vouchers (tax rule {rule}); "
                    "use document_type = \"invoice\" for this pipeline or book it by hand"
                )
            for index, (planned, _) in enumerate(lines, start=1):
                account = (planned.account or "").strip()
                if not account:
                    raise QuarantineError(f"line {index} ({planned.line.description[:40]!r}) has no booking account")
                rate = planned.line.tax_rate
                if rate_name(rate) is None:
                    raise QuarantineError(
                        f"line {index}: sevDesk vouchers take tax rates 0, 7 or 19 %, not {rate.normalize():f} %"
                    )
                if self.version == "2.0":
                    if self.guidance is None:
                        self.guidance = ReceiptGuidance(list(self._pages("ReceiptGuidance/forRevenue")))
                    problem = self.guidance.problem(account, rule, rate)
                    if problem:
                        raise QuarantineError(f"sevDesk would refuse line {index}: {problem}")
                elif account not in self.settings.accounting_types:
                    raise QuarantineError(
                        f"line {index}: account {account} has no AccountingType id in accounting_types"
                        " (needed for sevDesk bookkeeping 1.0)"
                    )
        else:
            if plan.contact is None:
                raise QuarantineError("a sevDesk invoice needs a contact, and none was matched or created")
            self._country_id(document)

    def _cost_centre(self, plan: Plan) -> int | None:
        chosen: Any = plan.cost_centre if plan.cost_centre is not None else self.settings.cost_centre
        per_line = {pl.cost_centre for pl in plan.lines if pl.cost_centre is not None}
        if per_line:
            if len(per_line) > 1 or (chosen is not None and str(chosen) not in {str(c) for c in per_line}):
                raise QuarantineError(
                    f"sevDesk takes one cost centre per document; the plan names {sorted(map(str, per_line | ({chosen} if chosen else set())))}"
                )
            chosen = next(iter(per_line))
        if chosen is None:
            return None
        if not str(chosen).strip().isdigit():
            raise QuarantineError(f"cost centre {chosen!r} is not a sevDesk CostCentre id (a number)")
        return int(str(chosen).strip())

    def _country_id(self, document: Document) -> int:
        country = document.customer.country or document.seller_country or "DE"
        country_id = self.country_id(country)
        if country_id is None:
            raise QuarantineError(
                f"sevDesk knows no country {country} (not in country_ids, not in GET /StaticCountry); "
                "add its StaticCountry id to country_ids"
            )
        return country_id

    def push(self, document: Document, plan: Plan) -> TargetRef:
        self.validate(document, plan)
        if plan.reverses is not None and self.settings.document_type == "invoice":
            ref = self._cancel_invoice(document, plan)
        elif self.settings.document_type == "invoice":
            ref = self._push_invoice(document, plan)
        else:
            ref = self._push_voucher(document, plan)
        try:
            if ref.kind == "invoice" and plan.reverses is not None:
                # find_document finds a cancellation invoice by this tag (sevDesk writes it, not us)
                self._tag(ref, [REFERENCE_TAG + self.description_for(document.source_ref, document.number)])
            self._tag(ref, plan.tags)
            if plan.mark_paid and ref.kind == "invoice" and not self.settings.finalize_invoices:
                log.warning("invoice %s stays a draft (finalize_invoices = false); its payment is not booked",
                            ref.target_id)
            elif plan.mark_paid and self._book(ref, document, plan, document.payments):
                ref.payment_pending = True  # left open: book_payment on a later run says why
        except (VendorRejected, QuarantineError, TransientError) as exc:
            # The document exists (whatever failed after it, even a read or a refused
            # connection); find_document adopts it and book_payment completes it.
            raise OutcomeUnknown(
                f"sevDesk {ref.kind} {ref.target_id} was created, but tagging or booking its payment "
                f"failed: {exc}"
            ) from None
        return ref

    # -- vouchers: a draft, checked, then registered ------------------------------------
    def _voucher_body(self, document: Document, plan: Plan, *, status: int) -> dict[str, Any]:
        lines = self._resolved_lines(document, plan)
        rule = lines[0][1]
        planned = [pl for pl, _ in lines]
        if self.version == "2.0" and self.guidance is None:  # complete() in a fresh process
            self.guidance = ReceiptGuidance(list(self._pages("ReceiptGuidance/forRevenue")))
        positions, layout = mapping.choose_positions(planned)
        if len(positions) != len(planned) or positions[0].net != (planned[0].line.price_basis == "net"):
            log.info("sevDesk voucher for %s is sent as %s, so sevDesk's VAT is the source's to the cent",
                     document.source_ref, layout)
        reverses = None
        if plan.reverses is not None:
            reverses = f"Storno zu {plan.reverses.number or plan.reverses.target_id} (sevDesk Beleg {plan.reverses.target_id})"
        return mapping.voucher_payload(
            document, plan, planned, rule, description=self.description_for(document.source_ref, document.number),
            version=self.version, guidance=self.guidance, accounting_types=self.settings.accounting_types,
            cost_centre=self._cost_centre(plan), status=status, positions=positions, reverses=reverses,
        )

    def _push_voucher(self, document: Document, plan: Plan) -> TargetRef:
        lines = self._resolved_lines(document, plan)
        if plan.reverses is not None:
            original = self._one(f"Voucher/{plan.reverses.target_id}")
            if original is None:
                raise QuarantineError(
                    f"it reverses sevDesk voucher {plan.reverses.target_id} "
                    f"({plan.reverses.number or 'no number'}), which sevDesk no longer has")
        description = self.description_for(document.source_ref, document.number)
        body = self._voucher_body(document, plan, status=50)
        try:
            _, objects = self._call("POST", "Voucher/Factory/saveVoucher", body=body)
        except VendorRejected as exc:
            if exc.status_code in (400, 422):
                tried = "; ".join(
                    f"account {pl.account}, tax rule {rule}, rate {pl.line.tax_rate.normalize():f}%"
                    for pl, rule in lines
                )
                raise QuarantineError(f"{exc.message} (tried {tried})") from None
            raise
        saved = objects.get("voucher") or {}
        ref = TargetRef(target_id=str(saved["id"]), number=description, kind="voucher")
        # A draft first: sevDesk's own sums are checked before it is registered (a draft
        # can still be deleted). A crash from here on leaves a draft that find_document
        # finds and complete() checks and registers (or deletes).
        self._check_sums(ref, saved, document, plan)
        ids = [str(p["id"]) for p in objects.get("voucherPos") or []]
        try:
            self._register_voucher(ref, body, ids)
        except (VendorRejected, QuarantineError, TransientError) as exc:
            raise OutcomeUnknown(
                f"sevDesk voucher {ref.target_id} was saved as a draft, but registering it (status 100) "
                f"failed: {exc}"
            ) from None
        return ref

    def _register_voucher(self, ref: TargetRef, body: dict[str, Any], position_ids: list[str]) -> None:
        """Status 50 -> 100: the same body again with the voucher's and every position's
        id (sevDesk totals only the positions of the call)."""
        if len(position_ids) != len(body["voucherPosSave"]):
            self._delete_draft(ref, f"the sevDesk draft voucher {ref.target_id} has {len(position_ids)} positions, "
                                    f"ledgerlink would send {len(body['voucherPosSave'])}")
        body = copy.deepcopy(body)
        body["voucher"]["id"] = int(ref.target_id)
        body["voucher"]["status"] = 100
        for item, pos_id in zip(body["voucherPosSave"], sorted(position_ids, key=int), strict=True):
            item["id"] = int(pos_id)
        _, registered = self._call("POST", "Voucher/Factory/saveVoucher", body=body)
        status = str(((registered or {}).get("voucher") or {}).get("status") or "")
        if status != "100":
            raise VendorRejected(f"registering sevDesk voucher {ref.target_id} answered status {status or 'none'}"
                                 " instead of 100")

    def _check_sums(self, ref: TargetRef, saved: dict[str, Any], document: Document, plan: Plan) -> None:
        """sevDesk's own sums of the saved draft against the source, before the draft is
        finished: on a difference the draft is deleted and the document quarantined."""
        gross_key, tax_key = "sumGross", "sumTax"
        if mapping.foreign(document, plan):
            # the document's own currency; sumGross is in the book currency
            gross_key, tax_key = "sumGrossForeignCurrency", "sumTaxForeignCurrency"
        gross = money(mapping.number(saved.get(gross_key)))
        tax = money(mapping.number(saved.get(tax_key)))
        if gross == document.total_gross and tax == document.total_tax:
            return
        self._delete_draft(ref, (
            f"sevDesk computed gross {gross} and VAT {tax} {document.currency} for {ref.kind} {ref.target_id}, "
            f"the source states gross {document.total_gross} and VAT {document.total_tax}"))

    def _delete_draft(self, ref: TargetRef, problem: str) -> None:
        """Delete an unfinished draft and quarantine; a failed delete is said in the reason."""
        try:
            self._call("DELETE", f"{mapping.object_name(ref)}/{ref.target_id}")
        except (VendorRejected, QuarantineError, TransientError, OutcomeUnknown) as exc:
            raise QuarantineError(
                f"{problem}; deleting the sevDesk draft {ref.kind} {ref.target_id} FAILED ({exc}): delete it by "
                "hand before this document is retried"
            ) from None
        raise QuarantineError(f"{problem}; the sevDesk draft {ref.kind} {ref.target_id} was deleted")

    # -- invoices ----------------------------------------------------------------------
    def _push_invoice(self, document: Document, plan: Plan) -> TargetRef:
        lines = self._resolved_lines(document, plan)
        rule = lines[0][1]
        assert plan.contact is not None
        reference = self.description_for(document.source_ref, document.number)
        rates = {pl.line.tax_rate for pl, _ in lines}
        country_id = self._country_id(document)
        body = mapping.invoice_payload(
            document, plan, [planned for planned, _ in lines], rule, reference=reference, version=self.version,
            contact_person=self.settings.contact_person, country_id=country_id, cost_centre=self._cost_centre(plan),
        )
        try:
            _, objects = self._call("POST", "Invoice/Factory/saveInvoice", body=body)
        except VendorRejected as exc:
            if exc.status_code in (400, 422):
                raise QuarantineError(
                    f"{exc.message} (tried tax rule {rule}, rates "
                    f"{', '.join(f'{r.normalize():f}%' for r in sorted(rates))})"
                ) from None
            raise
        saved = objects.get("invoice") or {}
        ref = TargetRef(target_id=str(saved["id"]), number=saved.get("invoiceNumber") or reference, kind="invoice")
        self._check_sums(ref, saved, document, plan)  # still a draft: deleted on a difference
        if self.settings.finalize_invoices:
            try:
                self._send_invoice(ref)
            except (VendorRejected, QuarantineError, TransientError) as exc:
                # The invoice exists (as a draft): never create it again. find_document
                # adopts it and complete() sends it.
                raise OutcomeUnknown(
                    f"sevDesk invoice {ref.target_id} was saved, but finalizing it (sendBy) failed: {exc}"
                ) from None
        return ref

    def _send_invoice(self, ref: TargetRef) -> None:
        _, sent = self._call("PUT", f"Invoice/{ref.target_id}/sendBy",
                             body={"sendType": self.settings.invoice_send_type, "sendDraft": False})
        if isinstance(sent, dict) and sent.get("invoiceNumber"):
            ref.number = str(sent["invoiceNumber"])

    def _cancellation_of(self, invoice_id: str) -> dict[str, Any] | None:
        """The cancellation invoice (type SR) sevDesk wrote for an invoice, if any."""
        params = {"origin[id]": invoice_id, "origin[objectName]": "Invoice", "invoiceType": "SR"}
        for raw in self._pages("Invoice", **params):  # filters fail silently: compare
            origin = raw.get("origin") or {}
            if str(raw.get("invoiceType")) == "SR" and str(origin.get("id")) == str(invoice_id):
                return raw
        return None

    def _cancel_invoice(self, document: Document, plan: Plan) -> TargetRef:
        """A credit note that reverses an invoice in full: sevDesk's cancelInvoice
        (a Stornorechnung, type SR, that references the original). A partial one is
        quarantined: cancelInvoice cancels only in full."""
        assert plan.reverses is not None
        original_id = str(plan.reverses.target_id)
        label = f"sevDesk invoice {plan.reverses.number or original_id}"
        existing = self._cancellation_of(original_id)
        if existing is not None:  # written before (a lost answer, a crash): adopt it, never cancel twice
            return TargetRef(target_id=str(existing["id"]), number=existing.get("invoiceNumber"), kind="invoice")
        original = self._one(f"Invoice/{original_id}")
        if original is None:
            raise QuarantineError(f"it cancels {label}, which sevDesk no longer has")
        if str(original.get("status")) in ("50", "100"):
            raise QuarantineError(f"it cancels {label}, which is still a draft in sevDesk: delete or finalize the "
                                  "draft by hand")
        gross = money(mapping.number(original.get("sumGross")))
        tax = money(mapping.number(original.get("sumTax")))
        if (-gross, -tax) != (document.total_gross, document.total_tax):
            raise QuarantineError(
                f"it credits gross {document.total_gross} (VAT {document.total_tax}) of {label} with gross {gross} "
                f"(VAT {tax}): sevDesk cancels an invoice only in full (cancelInvoice); write this partial credit "
                "note in sevDesk by hand")
        try:
            _, objects = self._call("POST", f"Invoice/{original_id}/cancelInvoice")
        except VendorRejected as exc:
            again = self._cancellation_of(original_id)
            if again is not None:
                return TargetRef(target_id=str(again["id"]), number=again.get("invoiceNumber"), kind="invoice")
            raise QuarantineError(f"sevDesk refused to cancel {label}: {exc.message}") from None
        cancellation = objects
        if isinstance(cancellation, list):
            cancellation = cancellation[0] if cancellation else {}
        if isinstance(cancellation, dict) and isinstance(cancellation.get("invoice"), dict):
            cancellation = cancellation["invoice"]
        if not isinstance(cancellation, dict) or not cancellation.get("id"):
            raise OutcomeUnknown(f"sevDesk cancelled {label} but sent no cancellation invoice")
        return TargetRef(target_id=str(cancellation["id"]), number=cancellation.get("invoiceNumber"),
                         kind="invoice")

    # -- tags ----------------------------------------------------------------------
    def _known_tag(self, name: str) -> str | None:
        if name not in self.tag_ids:
            self.tag_ids[name] = ""  # not in sevDesk yet; Tag/Factory/create makes it
            for raw in self._pages("Tag", name=name):
                if str(raw.get("name")) == name:
                    self.tag_ids[name] = str(raw["id"])
                    break
        return self.tag_ids[name] or None

    def complete(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """A voucher or invoice found after an interruption (a crash, a lost answer),
        before the ledger counts it as pushed: a draft is checked against the source
        (sevDesk's own sums) and then registered (voucher, status 100) or sent
        (invoice, sendBy), or deleted and the document quarantined; then the tags it
        lacks are added.

        sevDesk documents no filter on GET /TagRelation, so this lists them all; it
        runs only after an interruption."""
        object_name = mapping.object_name(ref)
        current = self._one(f"{object_name}/{ref.target_id}")
        if current is None:
            raise VendorRejected(f"sevDesk {ref.kind} {ref.target_id} was found, and is gone now")
        status = str(current.get("status"))
        if ref.kind == "voucher" and status == "50":
            self._check_sums(ref, current, document, plan)
            ids = [str(p["id"]) for p in self._pages(
                "VoucherPos", **{"voucher[id]": ref.target_id, "voucher[objectName]": "Voucher"})
                if str((p.get("voucher") or {}).get("id")) == str(ref.target_id)]
            self._register_voucher(ref, self._voucher_body(document, plan, status=50), ids)
        elif (ref.kind == "invoice" and status == "100" and str(current.get("invoiceType") or "RE") == "RE"
              and plan.reverses is None):
            self._check_sums(ref, current, document, plan)
            if self.settings.finalize_invoices:
                self._send_invoice(ref)
        if ref.kind == "invoice" and plan.reverses is not None:
            self._tag(ref, [REFERENCE_TAG + self.description_for(document.source_ref, document.number)])
        tag_names = {str(t.get("id")): str(t.get("name")) for t in self._pages("Tag")}
        present = {
            tag_names.get(str((r.get("tag") or {}).get("id")), "")
            for r in self._pages("TagRelation")
            if str((r.get("object") or {}).get("id")) == str(ref.target_id)
            and (r.get("object") or {}).get("objectName") == object_name
        }
        self._tag(ref, [name for name in plan.tags if name not in present])

    def _tag(self, ref: TargetRef, tags: Iterable[str]) -> None:
        object_name = mapping.object_name(ref)
        for name in dict.fromkeys(tags):
            known = self._known_tag(name)
            _, relation = self._call("POST", "Tag/Factory/create", body={
                "name": name, "object": mapping.ref(ref.target_id, object_name),
            })
            tag_id = str(((relation or {}).get("tag") or {}).get("id") or "")
            if known and tag_id and tag_id != known:
                log.warning("sevDesk made a second tag %r (id %s, first %s)", name, tag_id, known)
            elif tag_id:
                self.tag_ids[name] = tag_id

    # -- payments ------------------------------------------------------------------
    def _voucher_check_account(self, plan: Plan) -> int:
        """The check account of ``plan.voucher_account`` (gift vouchers redeemed), by id or
        by name; QuarantineError naming it when sevDesk has no usable one."""
        wanted = str(plan.voucher_account or "").strip()
        if not wanted:
            raise QuarantineError("the document was paid with a gift voucher and the pipeline names no "
                                  "voucher_account (a sevDesk clearing account) to book it from")
        accounts = self._load_check_accounts()
        found = [a for key, a in accounts.items() if str(key) == wanted] or [
            a for a in accounts.values() if str(a.get("name") or "").strip().casefold() == wanted.casefold()]
        if len(found) != 1:
            known = ", ".join(f"{key} {value.get('name')!r}" for key, value in accounts.items())
            why = "several check accounts are" if found else "sevDesk has no check account"
            raise QuarantineError(f"{why} named or numbered {wanted!r} (the pipeline's voucher_account, for gift "
                                  f"vouchers redeemed); known: {known}")
        account = found[0]
        if str(account.get("status")) == "0" or account.get("type") == "online":
            raise QuarantineError(
                f"voucher_account {wanted!r} is sevDesk check account {account.get('id')} "
                f"({account.get('name')!r}), which is {'archived' if str(account.get('status')) == '0' else 'online'}:"
                " use an active clearing (offline) account")
        return int(account["id"])

    def _account_for(self, payment: Payment, plan: Plan) -> int | None:
        if payment.kind == "voucher":
            return self._voucher_check_account(plan)
        method = (payment.method or "").strip()
        if method and method in self.settings.payment_accounts:
            return self.settings.payment_accounts[method]
        if self.settings.book_unassigned_payments:
            return self.settings.check_account
        return None

    def _book(self, ref: TargetRef, document: Document, plan: Plan, payments: list[Payment]) -> list[str]:
        """Each payment is its own bookAmount, with its own date and amount, on the check
        account of its method (a gift voucher: plan.voucher_account). What sevDesk shows
        as paid already is skipped in date order, so a re-run books only the rest.
        Returns why a payment was left open (no check account, or one in another
        currency): never booked as the same number in another currency, never said booked."""
        if document.kind == DocumentKind.CREDIT_NOTE:
            if payments:
                log.warning("refunds on credit note %s (sevDesk %s %s) are not booked by ledgerlink; book them in "
                            "sevDesk by hand", document.number or document.source_ref, ref.kind, ref.target_id)
            return []
        open_: list[str] = []
        path = mapping.object_name(ref)
        current = self._one(f"{path}/{ref.target_id}")
        if current is None:
            raise VendorRejected(f"sevDesk has no {ref.kind} {ref.target_id} to book a payment on")
        foreign = mapping.foreign(document, plan)
        # Assumption: paidAmount is in the document's currency, like the payments.
        total = money(mapping.number(current.get("sumGrossForeignCurrency" if foreign else "sumGross")))
        paid = money(mapping.number(current.get("paidAmount")))
        if str(current.get("status")) == "1000" or paid >= total:
            return []  # already paid (a re-run): never book twice
        already = paid
        for payment in sorted(payments, key=lambda p: p.date or date.min):
            amount = money(payment.amount)
            if amount <= 0:
                continue
            if already >= amount:
                already -= amount
                continue
            amount -= already
            already = Decimal("0.00")
            what = f"payment of {amount} {document.currency} ({payment.kind}, method {payment.method!r})"
            account = self._account_for(payment, plan)
            if account is None:
                open_.append(f"{what} is not booked: no sevDesk check account for it (payment_accounts); the "
                             f"{ref.kind} stays open")
                log.warning("%s", open_[-1])
                continue
            if foreign:
                currency = str(self._load_check_accounts().get(int(account), {}).get("currency") or "")
                if currency.upper() != document.currency.upper():
                    # Never the same number in the book currency: only an account in the
                    # document's currency books it.
                    open_.append(
                        f"{what} is not booked: sevDesk check account {account} is in "
                        f"{currency or 'an unknown currency'}, not {document.currency}; map the method to a "
                        f"{document.currency} check account (payment_accounts) to book it; the {ref.kind} stays open")
                    log.warning("%s", open_[-1])
                    continue
            day = payment.date or document.payment_date or document.invoice_date
            if day is None:
                raise QuarantineError("a payment without a date cannot be booked in sevDesk")
            if amount > total - paid:
                raise QuarantineError(
                    f"{what} exceeds what is open on sevDesk {ref.kind} {ref.target_id} ({total - paid} of {total}): "
                    "the amount booked is what the customer paid, and sevDesk refuses more than is open; "
                    "check the document's total")
            paid += amount
            body = mapping.payment_payload(ref, amount, day, full=paid >= total, account=account)
            self._call("PUT", f"{path}/{ref.target_id}/bookAmount", body=body)
        return open_

    def book_payment(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        left_open = self._book(ref, document, plan, document.payments)
        if left_open:
            # The ledger must not record it as booked: the payment is reported, and booked
            # by a later run once the operator maps an account (what was booked is skipped).
            raise QuarantineError("; ".join(left_open))

    # -- status sync -----------------------------------------------------------------
    def statuses(self, refs: Iterable[TargetRef]) -> Iterator[tuple[TargetRef, str]]:
        for ref in refs:
            kind = "invoice" if ref.kind == "invoice" else "voucher"
            raw = self._one(f"{kind.capitalize()}/{ref.target_id}")
            if raw is None:
                yield ref, f"{kind}:deleted"
            else:
                yield ref, f"{kind}:{raw.get('status')}"

    def close(self) -> None:
        self.http.close()
