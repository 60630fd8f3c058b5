"""The Billy target: contacts, one product per booking template, invoices, bank payments.

Billy (billy.dk, API v2) books revenue through *products*: an invoice line has no
account and no VAT field, it takes both from its product (``accountId``,
``salesTaxRulesetId``). The six booking templates of the settings (goods and
shipping, each domestic / EU / non-EU; the same six that Shipmondo's Billy
integration asks for) name an account and a sales tax ruleset; the plugin finds or
creates one product per template and writes the source line's text, quantity and
price on the invoice line.

Invoices are always created as drafts first. The plugin then compares Billy's
amounts with the source document to the øre; a difference deletes the draft and
quarantines the document. Only after that, and only with ``auto_book = true``, is
the invoice approved (final in Billy) and are its payments recorded.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from ledgerlink import (
    ConfigError,
    Contact,
    Customer,
    Document,
    DocumentKind,
    LineKind,
    MappedStatus,
    Plan,
    PlannedLine,
    QuarantineError,
    RateLimit,
    Settings,
    Status,
    StatusMapper,
    Target,
    TargetRef,
    TransientError,
    VendorRejected,
    default_error_message,
    key_id,
    money,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

log = logging.getLogger("ledgerlink.billy")

DEFAULT_BASE_URL = "https://api.billysbilling.com/v2"
AUTH_HINT = (
    "create an access token in Billy (Settings -> Access tokens) and put it in the "
    "connection's access_token"
)

TEMPLATE_NAMES = (
    "goods_domestic",
    "goods_eu",
    "goods_non_eu",
    "shipping_domestic",
    "shipping_eu",
    "shipping_non_eu",
)
# The names Billy users know from Shipmondo's integration (seed page 001).
TEMPLATE_LABELS = {
    "goods_domestic": "Varer (Indland)",
    "goods_eu": "Varer (EU)",
    "goods_non_eu": "Varer (Uden for EU)",
    "shipping_domestic": "Fragt (Indland)",
    "shipping_eu": "Fragt (EU)",
    "shipping_non_eu": "Fragt (Uden for EU)",
}


class Template(BaseModel):
    """One booking template: a revenue account and a sales tax ruleset ("Moms")."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, description="account number, name or Billy id")
    vat: str = Field(min_length=1, description="sales tax ruleset name, abbreviation or Billy id")


class BillySettings(Settings):
    access_token: SecretStr
    base_url: str = DEFAULT_BASE_URL
    auto_book: bool = False
    """False: invoices stay drafts in Billy. True: they are approved, which is final."""
    cash_account: str | None = None
    """Where payments are recorded: account number, name or id (must be payment-enabled)."""
    payment_terms_days: int = Field(8, ge=-365, le=3650)
    payment_terms_mode: str | None = "net"
    invoice_no_prefix: str = Field("", max_length=20)
    goods_domestic: Template | None = None
    goods_eu: Template | None = None
    goods_non_eu: Template | None = None
    shipping_domestic: Template | None = None
    shipping_eu: Template | None = None
    shipping_non_eu: Template | None = None
    page_size: int = Field(1000, ge=1, le=1000)
    rate_limit: float = Field(5.0, gt=0, le=100, description="requests per second")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must start with https://")
        return value


def billy_error_message(response: httpx.Response) -> str:
    """Billy's own words: ``errorMessage`` (``errorCode``) and any validation details."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("errorMessage") or body.get("errorCode")):
        text = str(body.get("errorMessage") or "").strip() or "no message"
        code = body.get("errorCode")
        details = _validation_details(body.get("validationErrors"))
        if details:
            text = f"{text}: {details}"
        return " ".join(f"{text} ({code})".split()) if code else " ".join(text.split())
    return default_error_message(response)


def _validation_details(errors: Any) -> str:
    if not isinstance(errors, dict):
        return ""
    parts: list[str] = []
    for record, problems in errors.items():
        if isinstance(problems, dict):
            attrs = problems.get("attributes") or {}
            for attr, message in attrs.items() if isinstance(attrs, dict) else []:
                parts.append(f"{record}.{attr}: {message}")
            if problems.get("message"):
                parts.append(f"{record}: {problems['message']}")
    return "; ".join(parts)[:300]


def dec(value: Any) -> Decimal:
    """A Billy number (JSON float) as an exact Decimal to the cent."""
    if value is None:
        return Decimal("0.00")
    return money(Decimal(str(value)))


class BillyTarget(Target):
    """Invoices into Billy: drafts by default, approved with ``auto_book``."""

    Settings: ClassVar[type[BillySettings]] = BillySettings
    description: ClassVar[str] = "Billy (billy.dk): invoices as drafts or approved, contacts, payments"
    status_mapper: ClassVar[str | None] = "billy"
    sandbox: ClassVar[str] = "ledgerlink_billy.sandbox:BillySandbox"
    # The six templates book every line; pipeline rules are optional overrides.
    books_without_rules: ClassVar[bool] = True

    settings: BillySettings

    def __init__(self, settings: BillySettings, context: Any) -> None:
        super().__init__(settings, context)
        token = settings.access_token.get_secret_value()
        self.client = context.http(
            vendor="Billy",
            base_url=settings.base_url,
            headers={"X-Access-Token": token, "Accept-Language": "en_US"},
            secrets=[token],
            rate_limits=[RateLimit(f"billy:{key_id(token)}", settings.rate_limit)],
            auth_hint=AUTH_HINT,
            error_message=billy_error_message,
        )
        self._organization: dict[str, Any] | None = None
        self._accounts: list[dict[str, Any]] | None = None
        self._rulesets: list[dict[str, Any]] | None = None
        self._products: dict[str, str] | None = None

    # -- HTTP helpers ----------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.client.request(method, path, **kwargs)
        body = self.client.json(response)
        if not isinstance(body, dict):
            raise VendorRejected(f"Billy answered {method} {path} with {type(body).__name__}, not an object")
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        if meta.get("success") is False or body.get("errorCode"):
            # An error inside a 2xx answer: Billy's error envelope with a success status.
            raise VendorRejected(
                f"Billy refused {method} {path} (HTTP {response.status_code}): {billy_error_message(response)}",
                status_code=response.status_code,
            )
        return body

    def _list(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every record of a list, page by page (``meta.paging.pageCount``)."""
        page = 1
        while True:
            query = dict(params or {})
            query.update({"page": page, "pageSize": self.settings.page_size})
            body = self._call("GET", path, params=query)
            records = body.get(key)
            if not isinstance(records, list):
                raise TransientError(f"Billy GET {path}: the answer has no {key!r} list")
            yield from records
            paging = (body.get("meta") or {}).get("paging") or {}
            page_count = int(paging.get("pageCount") or 1)
            if page >= page_count or not records:
                return
            page += 1

    @staticmethod
    def _first(body: dict[str, Any], key: str, what: str) -> dict[str, Any]:
        records = body.get(key)
        if not isinstance(records, list) or not records or not isinstance(records[0], dict):
            raise VendorRejected(f"Billy's answer to creating {what} has no {key}[0] record")
        return records[0]

    # -- lookups -----------------------------------------------------------------
    def organization(self) -> dict[str, Any]:
        if self._organization is None:
            body = self._call("GET", "/organization")
            org = body.get("organization")
            if not isinstance(org, dict) or not org.get("id"):
                raise TransientError("Billy GET /organization: the answer has no organization")
            self._organization = org
        return self._organization

    def accounts(self) -> list[dict[str, Any]]:
        if self._accounts is None:
            self._accounts = list(self._list("/accounts", "accounts"))
        return self._accounts

    def rulesets(self) -> list[dict[str, Any]]:
        if self._rulesets is None:
            self._rulesets = list(self._list("/salesTaxRulesets", "salesTaxRulesets"))
        return self._rulesets

    def find_account(self, ref: str) -> dict[str, Any] | None:
        """An account by id, account number or name (case-insensitive); archived ones last."""
        return _pick(self.accounts(), ref, ("id",), ("accountNo",), ("name",), what="account")

    def find_ruleset(self, ref: str) -> dict[str, Any] | None:
        """A sales tax ruleset by id, name or abbreviation (case-insensitive)."""
        return _pick(self.rulesets(), ref, ("id",), ("name", "abbreviation"), what="VAT ruleset")

    def prepare(self, pipeline_options: dict[str, Any]) -> None:
        # Fresh lookups per run: the bookkeeper may have added accounts or products.
        self._accounts = self._rulesets = None
        self._products = None

    # -- check -------------------------------------------------------------------
    def check(self) -> str:
        org = self.organization()
        problems = self.template_problems()
        if problems:
            raise ConfigError("; ".join(problems))
        filled = [n for n in TEMPLATE_NAMES if getattr(self.settings, n) is not None]
        mode = "approves invoices (auto_book)" if self.settings.auto_book else "creates drafts"
        return (
            f"Billy organization {org.get('name')!r} ({org.get('id')}), base currency "
            f"{org.get('baseCurrencyId') or '?'}; templates: {', '.join(filled) or 'none'}; {mode}"
        )

    def template_problems(self) -> list[str]:
        """Settings that name accounts or VAT rulesets Billy does not have."""
        problems: list[str] = []
        for name in TEMPLATE_NAMES:
            template: Template | None = getattr(self.settings, name)
            if template is None:
                continue
            try:
                if self.find_account(template.account) is None:
                    problems.append(f"{name}.account: Billy has no account {template.account!r}")
                if self.find_ruleset(template.vat) is None:
                    problems.append(f"{name}.vat: Billy has no sales tax ruleset {template.vat!r}")
            except QuarantineError as exc:
                problems.append(f"{name}: {exc}")
        if self.settings.cash_account:
            try:
                self.cash_account()
            except (QuarantineError, ConfigError) as exc:
                problems.append(str(exc))
        return problems

    def cash_account(self) -> dict[str, Any]:
        ref = self.settings.cash_account
        if not ref:
            raise ConfigError(
                "cash_account is not set: name the Billy account where payments are recorded"
            )
        account = self.find_account(ref)
        if account is None:
            raise ConfigError(f"cash_account: Billy has no account {ref!r}")
        if not account.get("isPaymentEnabled"):
            raise ConfigError(
                f"cash_account: Billy account {ref!r} does not accept payments (isPaymentEnabled is false)"
            )
        return account

    # -- contacts ------------------------------------------------------------------
    def _contact(self, record: dict[str, Any]) -> Contact:
        persons = record.get("contactPersons") or []
        primary = next((p for p in persons if isinstance(p, dict) and p.get("isPrimary")), None)
        primary = primary or next((p for p in persons if isinstance(p, dict)), None)
        name = str(record.get("name") or "")
        first = last = company = None
        if record.get("type") == "person":
            parts = name.rsplit(" ", 1)
            first, last = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] or None)
        else:
            company = name or None
        return Contact(
            target_id=str(record["id"]),
            customer_number=(str(record["contactNo"]) if record.get("contactNo") not in (None, "") else None),
            first_name=first,
            last_name=last,
            company=company,
            email=(primary or {}).get("email"),
            extra={
                "name": name,
                "type": record.get("type"),
                "countryId": record.get("countryId"),
                "registrationNo": record.get("registrationNo"),
                "isArchived": bool(record.get("isArchived")),
            },
        )

    def _all_contacts(self) -> Iterator[Contact]:
        params = {"include": "contact.contactPersons:embed"}
        for record in self._list("/contacts", "contacts", params):
            if isinstance(record, dict) and record.get("id"):
                yield self._contact(record)

    def contacts(self) -> Iterator[Contact]:
        """Every contact that is not archived (Billy has no contact search: all pages)."""
        for contact in self._all_contacts():
            if not contact.extra.get("isArchived"):
                yield contact

    def find_contact(self, key: str) -> Contact | None:
        """The contact whose ``contactNo`` is ``key`` (archived ones included)."""
        found = [c for c in self._all_contacts() if c.customer_number == key]
        if len(found) > 1:
            ids = ", ".join(c.target_id for c in found)
            log.warning("Billy has %d contacts with contactNo %r (%s); using the first", len(found), key, ids)
        return found[0] if found else None

    def create_contact(self, customer: Customer, key: str) -> Contact:
        person = " ".join(p for p in (customer.first_name, customer.last_name) if p).strip()
        address = customer.address
        name = (customer.company or "").strip() or person or (address.name if address else None)
        name = name or customer.email or customer.source_id
        country = customer.country or self.organization().get("countryId") or "DK"
        body: dict[str, Any] = {
            "type": "company" if customer.is_company else "person",
            "name": name,
            "countryId": country,
            "contactNo": key,
            "isCustomer": True,
            "paymentTermsDays": self.settings.payment_terms_days,
        }
        if self.settings.payment_terms_mode:
            body["paymentTermsMode"] = self.settings.payment_terms_mode
        if address is not None:
            street = "\n".join(s for s in (address.street, address.street2) if s)
            for field, value in (("street", street), ("zipcodeText", address.zip), ("cityText", address.city)):
                if value:
                    body[field] = value
        if customer.phone:
            body["phone"] = customer.phone
        if customer.vat_id:
            body["registrationNo"] = customer.vat_id
        if person or customer.email:
            contact_person: dict[str, Any] = {"isPrimary": True, "name": person or customer.email}
            if customer.email:
                contact_person["email"] = customer.email
            body["contactPersons"] = [contact_person]
        answer = self._call("POST", "/contacts", json={"contact": body})
        record = self._first(answer, "contacts", "a contact")
        persons = [p for p in answer.get("contactPersons") or [] if p.get("contactId") == record.get("id")]
        record = {**body, **record}
        record.setdefault("contactPersons", persons or body.get("contactPersons", []))
        return self._contact(record)

    # -- booking templates and products ----------------------------------------------
    def template_name(self, document: Document, planned: PlannedLine) -> str:
        kind = "shipping" if planned.line.kind == LineKind.SHIPPING else "goods"
        return f"{kind}_{document.tax_region.value}"

    def booking(self, document: Document, planned: PlannedLine) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(template name, account, ruleset) for one planned line, or QuarantineError.

        The pipeline rule's explicit account (``planned.account``) wins over the
        template's account; ``planned.tax_rule`` likewise over the template's VAT.
        """
        name = self.template_name(document, planned)
        template: Template | None = getattr(self.settings, name)
        account_ref = planned.account or (template.account if template else None)
        vat_ref = planned.tax_rule or (template.vat if template else None)
        label = f"{name} ({TEMPLATE_LABELS[name]})"
        if account_ref is None or vat_ref is None:
            raise QuarantineError(
                f"line {planned.line.description[:40]!r} needs the Billy template {label}, which is "
                f"not filled in: set {name} = {{ account = \"...\", vat = \"...\" }} in the connection"
            )
        account = self.find_account(account_ref)
        if account is None:
            where = "the pipeline rule" if planned.account else f"template {name}"
            raise QuarantineError(f"Billy has no account {account_ref!r} (from {where})")
        ruleset = self.find_ruleset(vat_ref)
        if ruleset is None:
            where = "the pipeline rule" if planned.tax_rule else f"template {name}"
            raise QuarantineError(f"Billy has no sales tax ruleset {vat_ref!r} (from {where})")
        return name, account, ruleset

    def product_for(self, name: str, account: dict[str, Any], ruleset: dict[str, Any], overridden: bool) -> str:
        """The id of the product for this template (found by ``productNo``, else created)."""
        account_key = str(account.get("accountNo") or account["id"])
        product_no = f"ledgerlink-{name}-{account_key}-{ruleset['id']}"
        if self._products is None or product_no not in self._products:
            self._products = {}
            for record in self._list("/products", "products"):
                if record.get("productNo") and not record.get("isArchived"):
                    self._products.setdefault(str(record["productNo"]), str(record["id"]))
        if product_no in self._products:
            return self._products[product_no]
        label = TEMPLATE_LABELS[name]
        if overridden:
            label = f"{label}, konto {account_key}"
        answer = self._call(
            "POST",
            "/products",
            json={
                "product": {
                    "name": label,
                    "productNo": product_no,
                    "accountId": account["id"],
                    "salesTaxRulesetId": ruleset["id"],
                    "description": f"ledgerlink template {name}",
                }
            },
        )
        product_id = str(self._first(answer, "products", "a product")["id"])
        self._products[product_no] = product_id
        return product_id

    # -- documents -------------------------------------------------------------------
    def invoice_no(self, source_ref: str, number: str | None) -> str:
        return f"{self.settings.invoice_no_prefix}{number or source_ref}"

    def validate(self, document: Document, plan: Plan) -> None:
        if document.kind != DocumentKind.INVOICE:
            raise QuarantineError(
                "credit notes are not supported by the Billy target yet: book it in Billy by hand"
            )
        if plan.contact is None:
            raise QuarantineError("Billy needs a contact for every invoice and none was matched or created")
        for planned in plan.lines:
            self.booking(document, planned)

    def _invoice_lines(self, document: Document, plan: Plan) -> list[dict[str, Any]]:
        lines = []
        for priority, planned in enumerate(plan.lines, start=1):
            name, account, ruleset = self.booking(document, planned)
            template: Template | None = getattr(self.settings, name)
            overridden = bool(
                (planned.account and (template is None or planned.account != template.account))
                or (planned.tax_rule and (template is None or planned.tax_rule != template.vat))
            )
            product_id = self.product_for(name, account, ruleset, overridden)
            line = planned.line
            total = money(line.total)
            quantity, unit, text = line.quantity, line.unit, line.description
            if unit != money(unit) or money(unit * quantity) != total:
                # Billy multiplies quantity by unit price; when that does not give the
                # source's line total to the øre, book the total once and keep the
                # quantity in the text.
                text = f"{_plain(quantity)} x {text}"
                quantity, unit = Decimal(1), total
            lines.append(
                {
                    "productId": product_id,
                    "description": text,
                    "quantity": float(quantity) if quantity != quantity.to_integral() else int(quantity),
                    "unitPrice": float(unit),
                    "priority": priority,
                }
            )
        return lines

    def push(self, document: Document, plan: Plan) -> TargetRef:
        self.validate(document, plan)
        assert plan.contact is not None
        lines = self._invoice_lines(document, plan)
        tax_mode = "incl" if document.lines[0].price_basis == "gross" else "excl"
        days = self.settings.payment_terms_days
        if plan.due_date is not None:
            days = (plan.due_date - plan.document_date).days
        invoice_no = self.invoice_no(document.source_ref, document.number)
        body: dict[str, Any] = {
            "contactId": plan.contact.target_id,
            "entryDate": plan.document_date.isoformat(),
            "currencyId": document.currency,
            "invoiceNo": invoice_no,
            "taxMode": tax_mode,
            "paymentTermsDays": days,
            "lines": lines,
        }
        if self.settings.payment_terms_mode:
            body["paymentTermsMode"] = self.settings.payment_terms_mode
        # Always a draft first: an approved invoice cannot be deleted if Billy's
        # amounts turn out different from the source's.
        answer = self._call("POST", "/invoices", json={"invoice": body})
        invoice = self._first(answer, "invoices", "an invoice")
        invoice_id = str(invoice["id"])
        ref = TargetRef(target_id=invoice_id, number=str(invoice.get("invoiceNo") or invoice_no), kind="invoice")
        if "amount" not in invoice or "tax" not in invoice:
            invoice = self.invoice(invoice_id) or invoice
        problem = self.amount_problem(document, invoice)
        if problem:
            self._call("DELETE", f"/invoices/{invoice_id}")
            raise QuarantineError(f"{problem}; the Billy draft {ref.number} was deleted")
        if self.settings.auto_book:
            self._call("PUT", f"/invoices/{invoice_id}", json={"invoice": {"state": "approved"}})
            if plan.mark_paid:
                self.book_payment(ref, document, plan)
        elif plan.mark_paid and self._payments_due(document):
            log.warning(
                "Billy invoice %s stays a draft, so its payment is not recorded yet; ledgerlink "
                "books it on a later run once the invoice is approved in Billy",
                ref.number,
            )
            ref.payment_pending = True
        return ref

    @staticmethod
    def amount_problem(document: Document, invoice: dict[str, Any]) -> str | None:
        """Billy's net, tax and gross against the source's, to the øre."""
        net, tax = dec(invoice.get("amount")), dec(invoice.get("tax"))
        gross = net + tax
        if gross != document.total_gross or tax != document.total_tax:
            return (
                f"Billy computed {gross} {document.currency} gross / {tax} tax, the source document "
                f"says {document.total_gross} gross / {document.total_tax} tax (check the VAT "
                "ruleset of the template against the source's tax rate)"
            )
        return None

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        response = self.client.get(f"/invoices/{invoice_id}", ok=[404])
        if response.status_code == 404:
            return None
        body = self.client.json(response)
        record = body.get("invoice") if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise TransientError(f"Billy GET /invoices/{invoice_id}: the answer has no invoice")
        return record

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        """The invoice whose ``invoiceNo`` is our key (prefix + number, else source_ref)."""
        invoice_no = self.invoice_no(source_ref, number)
        for record in self._list("/invoices", "invoices", {"invoiceNo": invoice_no}):
            # Checked here too, so a filter the API ignored cannot match a wrong invoice.
            if str(record.get("invoiceNo")) == invoice_no:
                return TargetRef(target_id=str(record["id"]), number=invoice_no, kind="invoice")
        return None

    # -- payments -------------------------------------------------------------------
    @staticmethod
    def _payments_due(document: Document) -> list[tuple[Decimal, _dt.date | None]]:
        """The payments to record: the source's payments, or the whole document when the
        source gives only a payment date."""
        if document.payments:
            return [(money(p.amount), p.date) for p in document.payments if money(p.amount) > 0]
        if document.payment_date is not None:
            return [(document.total_gross, document.payment_date)]
        return []

    def book_payment(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """Record what the source says was paid and Billy does not know yet (idempotent:
        the invoice's balance tells what is already recorded)."""
        payments = self._payments_due(document)
        if not payments:
            return
        invoice = self.invoice(ref.target_id)
        if invoice is None:
            raise QuarantineError(f"Billy invoice {ref.number or ref.target_id} is gone; cannot record its payment")
        if invoice.get("state") != "approved":
            raise TransientError(
                f"Billy invoice {ref.number or ref.target_id} is still a {invoice.get('state')}; "
                "a payment can be recorded once it is approved"
            )
        gross = dec(invoice.get("amount")) + dec(invoice.get("tax"))
        balance = dec(invoice.get("balance"))
        already = gross - balance
        paid = sum((amount for amount, _ in payments), Decimal("0.00"))
        to_book = min(paid - already, balance)
        if to_book <= 0:
            return
        account = self.cash_account()
        currency = invoice.get("currencyId") or document.currency
        if account.get("currencyId") and account["currencyId"] != currency:
            raise QuarantineError(
                f"cash_account {self.settings.cash_account!r} is in {account['currencyId']}, the invoice "
                f"in {currency}: record the payment in Billy or use a cash account in {currency}"
            )
        dates = [d for _, d in payments if d is not None]
        entry_date = max(dates) if dates else plan.document_date
        self._call(
            "POST",
            "/bankPayments",
            json={
                "bankPayment": {
                    "entryDate": entry_date.isoformat(),
                    "cashAmount": float(to_book),
                    "cashSide": "debit",
                    "cashAccountId": account["id"],
                    "associations": [{"subjectReference": f"invoice:{ref.target_id}"}],
                }
            },
        )

    # -- statuses -------------------------------------------------------------------
    def statuses(self, refs: Iterable[TargetRef]) -> Iterator[tuple[TargetRef, str]]:
        """Billy has no webhooks: read each invoice and describe it in one raw word."""
        today = _dt.date.today()
        for ref in refs:
            invoice = self.invoice(ref.target_id)
            yield ref, raw_status(invoice, today)

    def close(self) -> None:
        self.client.close()


def raw_status(invoice: dict[str, Any] | None, today: _dt.date) -> str:
    """``draft``, ``approved``, ``sent``, ``overdue``, ``partially_paid``, ``paid``,
    ``voided`` or ``deleted`` from an invoice's ``state``, ``isPaid``, ``balance``,
    ``sentState`` and ``dueDate``."""
    if invoice is None:
        return "deleted"
    state = str(invoice.get("state") or "")
    if state != "approved":
        return state or "unknown"
    if invoice.get("isPaid"):
        return "paid"
    gross = dec(invoice.get("amount")) + dec(invoice.get("tax"))
    balance = dec(invoice.get("balance"))
    if Decimal(0) < balance < gross:
        return "partially_paid"
    due = invoice.get("dueDate")
    try:
        if due and _dt.date.fromisoformat(str(due)[:10]) < today:
            return "overdue"
    except ValueError:
        pass
    if invoice.get("sentState") in ("sent", "opened", "viewed", "printed"):
        return "sent"
    return "approved"


class BillyStatusMapper(StatusMapper):
    """Billy's invoice states (as :func:`raw_status` words them) and back."""

    name = "billy"
    TO: ClassVar[dict[str, Status]] = {
        "draft": Status.DRAFT,
        "approved": Status.OPEN,
        "sent": Status.SENT,
        "overdue": Status.OVERDUE,
        "partially_paid": Status.PARTIALLY_PAID,
        "paid": Status.PAID,
        "voided": Status.CANCELLED,
        "deleted": Status.CANCELLED,
    }
    FROM: ClassVar[dict[Status, str]] = {
        Status.DRAFT: "draft",
        Status.OPEN: "approved",
        Status.DUE: "approved",
        Status.SENT: "sent",
        Status.OVERDUE: "overdue",
        Status.REMINDER: "overdue",
        Status.PARTIALLY_PAID: "partially_paid",
        Status.PAID: "paid",
        Status.CANCELLED: "voided",
    }

    def to_canonical(self, raw: str) -> MappedStatus:
        status = self.TO.get(raw.strip().lower())
        return MappedStatus(status or Status.UNKNOWN, raw)

    def from_canonical(self, status: MappedStatus) -> str:
        return self.FROM.get(status.status, status.raw)


def _pick(
    records: list[dict[str, Any]], ref: str, *groups: tuple[str, ...], what: str
) -> dict[str, Any] | None:
    """The record whose fields in the first matching group equal ``ref`` (case-insensitive).

    Several matches in one group are ambiguous (QuarantineError) unless exactly one of
    them is not archived."""
    wanted = ref.strip().casefold()
    for fields in groups:
        found = [r for r in records if any(str(r.get(f) or "").strip().casefold() == wanted for f in fields)]
        if len(found) > 1:
            active = [r for r in found if not r.get("isArchived")]
            if len(active) == 1:
                return active[0]
            raise QuarantineError(
                f"{len(found)} Billy {what}s are called {ref!r}; name it by number or id instead"
            )
        if found:
            return found[0]
    return None


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


__all__ = ["BillySettings", "BillyStatusMapper", "BillyTarget", "Template", "billy_error_message", "raw_status"]
