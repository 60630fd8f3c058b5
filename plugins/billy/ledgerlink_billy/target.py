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

This module makes the calls and look-ups; the payloads are built and read in
:mod:`.mapping`, statuses worded in :mod:`.statuses`.
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
    ConnectorContext,
    Contact,
    Customer,
    Document,
    DocumentKind,
    HeaderToken,
    PageNumber,
    Plan,
    PlannedLine,
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
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .mapping import (
    CREDIT_NOTE_NO,
    REVERSAL_SUFFIX,
    TEMPLATE_LABELS,
    TEMPLATE_NAMES,
    Booked,
    Due,
    amount_problem,
    as_billy_figures,
    bank_payment_payload,
    billy_error_message,
    booked_payments,
    contact_from_record,
    contact_payload,
    dec,
    invoice_form,
    invoice_lines,
    invoice_payload,
    negated,
    payments_due,
    pick,
    product_number,
    product_payload,
    record_type,
    template_name,
    unbooked_by_total,
    unbooked_payments,
    wanted_type,
)
from .statuses import raw_status

log = logging.getLogger("ledgerlink.billy")

DEFAULT_BASE_URL = "https://api.billysbilling.com/v2"
AUTH_HINT = (
    "create an access token in Billy (Settings -> Access tokens) and put it in the "
    "connection's api_token"
)


class Template(BaseModel):
    """One booking template: a revenue account and a sales tax ruleset ("Moms")."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, description="account number, name or Billy id")
    vat: str = Field(min_length=1, description="sales tax ruleset name, abbreviation or Billy id")


def _template(label: str, used_for: str) -> Any:
    return Field(
        None,
        description=f"booking template {label!r}: {{ account, vat }} for {used_for} "
        "(default: none; a document that needs it is quarantined)",
    )


class BillySettings(Settings):
    """Settings of a Billy connection (see the plugin README for each one)."""

    api_token: SecretStr = Field(
        description="Billy access token (Settings -> Access tokens), sent as X-Access-Token; tied to one company"
    )
    base_url: str = Field(
        DEFAULT_BASE_URL, description="API root including /v2 (default: Billy's production API)"
    )
    auto_book: bool = Field(
        False,
        description="false (default): invoices stay drafts in Billy; true: they are approved after the "
        "amount check, which is final in Billy, and their payments are recorded",
    )
    cash_account: str | None = Field(
        None,
        description="account where payments are recorded: number, name or Billy id; payment-enabled, in the "
        "invoice's currency (default: none; needed only when payments are booked)",
    )
    cash_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="cash account per invoice currency, e.g. { EUR = \"5830\" }: payments on invoices in that "
        "currency are recorded there at their own amount (default: none; cash_account is used)",
    )
    payment_terms_days: int = Field(
        8, ge=-365, le=3650,
        description="days from the invoice date to the due date, for invoices and new contacts (default 8; "
        "a plan's due date wins)",
    )
    payment_terms_mode: str | None = Field(
        "net",
        description="Billy's paymentTermsMode (default \"net\": days after the invoice date); \"\" leaves it "
        "out, so the organization's default applies",
    )
    invoice_no_prefix: str = Field(
        "", max_length=20,
        description="put before the source's document number in Billy's invoiceNo (default: none)",
    )
    goods_domestic: Template | None = _template(TEMPLATE_LABELS["goods_domestic"], "goods, buyer in the seller's country")
    goods_eu: Template | None = _template(TEMPLATE_LABELS["goods_eu"], "goods, buyer in another EU country")
    goods_non_eu: Template | None = _template(TEMPLATE_LABELS["goods_non_eu"], "goods, buyer outside the EU")
    shipping_domestic: Template | None = _template(TEMPLATE_LABELS["shipping_domestic"], "shipping lines, domestic")
    shipping_eu: Template | None = _template(TEMPLATE_LABELS["shipping_eu"], "shipping lines, EU")
    shipping_non_eu: Template | None = _template(TEMPLATE_LABELS["shipping_non_eu"], "shipping lines, outside the EU")
    requests_per_second: float = Field(
        5.0, gt=0, le=100,
        description="client-side limit per token, in requests per second (default 5; Billy publishes no limit)",
    )
    page_size: int = Field(
        1000, ge=1, le=1000, description="records per page of list calls (default 1000, Billy's maximum)"
    )
    timeout: float | None = Field(
        None, gt=0,
        description="seconds to wait for one HTTP answer (default: not set, so the HTTP client's 30 s, or "
        "LEDGERLINK_HTTP_TIMEOUT when that is set)",
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must start with https://")
        return value


class BillyTarget(Target):
    """Invoices into Billy: drafts by default, approved with ``auto_book``."""

    Settings: ClassVar[type[BillySettings]] = BillySettings
    description: ClassVar[str] = "Billy (billy.dk): invoices as drafts or approved, contacts, payments"
    status_mapper: ClassVar[str | None] = "billy"
    sandbox: ClassVar[str | None] = "ledgerlink_billy.sandbox:BillySandbox"
    # The six templates book every line; pipeline rules are optional overrides.
    books_without_rules: ClassVar[bool] = True
    # A cancellation is written as a Billy credit note (type creditNote, creditedInvoiceId).
    reverses_documents: ClassVar[bool] = True

    settings: BillySettings

    def __init__(self, settings: BillySettings, context: ConnectorContext) -> None:
        super().__init__(settings, context)
        token = settings.api_token.get_secret_value()
        self.client = context.http(
            vendor="Billy",
            base_url=settings.base_url,
            headers={"Accept-Language": "en_US"},
            auth=HeaderToken("X-Access-Token", token),
            rate_limits=[RateLimit(f"billy:{key_id(token)}", settings.requests_per_second)],
            auth_hint=AUTH_HINT,
            error_message=billy_error_message,
            **({} if settings.timeout is None else {"timeout": settings.timeout}),
        )
        self._organization: dict[str, Any] | None = None
        self._accounts: list[dict[str, Any]] | None = None
        self._rulesets: list[dict[str, Any]] | None = None
        self._products: dict[str, str] | None = None
        # source_ref -> "invoice" | "creditNote", from validate(): find_document() is
        # told only the source_ref and number, and a credit note has its own key.
        self._kinds: dict[str, str] = {}

    # -- HTTP helpers ----------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._checked(self.client.request(method, path, **kwargs), method, path)

    def _checked(self, response: httpx.Response, method: str, path: str) -> dict[str, Any]:
        """The body of an answer; Billy's error envelope inside a 2xx is refused."""
        body = self.client.json(response)
        if not isinstance(body, dict):
            raise VendorRejected(f"Billy answered {method} {path} with {type(body).__name__}, not an object")
        meta = body.get("meta")
        if not isinstance(meta, dict):
            meta = {}
        if meta.get("success") is False or body.get("errorCode"):
            # An error inside a 2xx answer: Billy's error envelope with a success status.
            raise VendorRejected(
                f"Billy refused {method} {path} (HTTP {response.status_code}): {billy_error_message(response)}",
                status_code=response.status_code,
            )
        return body

    def _list(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every record of a list, page by page (``page``/``pageSize`` up to
        ``meta.paging.pageCount``; an answer without a page count is the only page)."""

        def page(response: httpx.Response) -> dict[str, Any]:
            body = self._checked(response, "GET", path)
            if not isinstance(body.get(key), list):
                raise TransientError(f"Billy GET {path}: the answer has no {key!r} list")
            paging = (body.get("meta") or {}).get("paging") or {}
            return {key: body[key], "pageCount": int(paging.get("pageCount") or 1)}

        style = PageNumber(size_param="pageSize", size=self.settings.page_size, items=key, total_pages="pageCount")
        return self.client.paginate(path, style, params=params, parse=page)

    @staticmethod
    def _first(body: dict[str, Any], key: str, what: str) -> dict[str, Any]:
        records = body.get(key)
        if not isinstance(records, list) or not records or not isinstance(records[0], dict):
            raise VendorRejected(f"Billy's answer to creating {what} has no {key}[0] record")
        return records[0]

    # -- lookups -----------------------------------------------------------------
    def account_id(self) -> str | None:
        """The Billy organisation the access token opens."""
        return f"organization {self.organization()['id']}"

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
        return pick(self.accounts(), ref, ("id",), ("accountNo",), ("name",), what="account")

    def find_ruleset(self, ref: str) -> dict[str, Any] | None:
        """A sales tax ruleset by id, name or abbreviation (case-insensitive)."""
        return pick(self.rulesets(), ref, ("id",), ("name", "abbreviation"), what="VAT ruleset")

    def book_currency(self) -> str | None:
        """The organization's base currency (Billy books every amount in it)."""
        currency = self.organization().get("baseCurrencyId")
        return str(currency) if currency else None

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
        for ref in filter(None, [self.settings.cash_account, *self.settings.cash_accounts.values()]):
            try:
                self.cash_account(ref)
            except (QuarantineError, ConfigError) as exc:
                problems.append(str(exc))
        return problems

    def cash_account(self, ref: str | None = None) -> dict[str, Any]:
        ref = ref or self.settings.cash_account
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
    def _all_contacts(self) -> Iterator[Contact]:
        params = {"include": "contact.contactPersons:embed"}
        for record in self._list("/contacts", "contacts", params):
            if isinstance(record, dict) and record.get("id"):
                yield contact_from_record(record)

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
        country = customer.country or self.organization().get("countryId") or "DK"
        body = contact_payload(
            customer, key, country=country,
            payment_terms_days=self.settings.payment_terms_days,
            payment_terms_mode=self.settings.payment_terms_mode,
        )
        answer = self._call("POST", "/contacts", json={"contact": body})
        record = self._first(answer, "contacts", "a contact")
        persons = [p for p in answer.get("contactPersons") or [] if p.get("contactId") == record.get("id")]
        record = {**body, **record}
        record.setdefault("contactPersons", persons or body.get("contactPersons", []))
        return contact_from_record(record)

    # -- booking templates and products ----------------------------------------------
    def booking(self, document: Document, planned: PlannedLine) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(template name, account, ruleset) for one planned line, or QuarantineError.

        The pipeline rule's explicit account (``planned.account``) wins over the
        template's account; ``planned.tax_rule`` likewise over the template's VAT.
        """
        name = template_name(document, planned)
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
        product_no, account_key = product_number(name, account, ruleset)
        if self._products is None or product_no not in self._products:
            self._products = {}
            for record in self._list("/products", "products"):
                if record.get("productNo") and not record.get("isArchived"):
                    self._products.setdefault(str(record["productNo"]), str(record["id"]))
        if product_no in self._products:
            return self._products[product_no]
        answer = self._call(
            "POST",
            "/products",
            json={"product": product_payload(name, product_no, account, ruleset, account_key, overridden)},
        )
        product_id = str(self._first(answer, "products", "a product")["id"])
        self._products[product_no] = product_id
        return product_id

    # -- documents -------------------------------------------------------------------
    def invoice_no(self, source_ref: str, number: str | None) -> str:
        """The ``invoiceNo`` of an invoice: prefix + the source's number (else source_ref)."""
        return f"{self.settings.invoice_no_prefix}{number or source_ref}"

    def credit_note_no(self, source_ref: str, number: str | None) -> str:
        """The ``invoiceNo`` of a credit note: prefix + ``CN-`` + the source's number, else
        the source_ref (ledgerlink's own reversal of order 123 is ``CN-123~reversal``).
        Credit notes share the invoices' unique numbers; the ``CN-`` keeps a source's
        credit note 7 apart from its invoice 7."""
        return f"{self.settings.invoice_no_prefix}{CREDIT_NOTE_NO}{number or source_ref}"

    def document_no(self, document: Document) -> str:
        if document.kind == DocumentKind.CREDIT_NOTE:
            return self.credit_note_no(document.source_ref, document.number)
        return self.invoice_no(document.source_ref, document.number)

    def validate(self, document: Document, plan: Plan) -> None:
        self._kinds[document.source_ref] = wanted_type(document)
        if document.kind == DocumentKind.CREDIT_NOTE and plan.reverses is None:
            raise QuarantineError(
                "it is a credit note that references no invoice ledgerlink wrote to Billy; ledgerlink writes "
                "Billy credit notes only for the invoice they cancel: book it in Billy by hand"
            )
        if document.kind != DocumentKind.CREDIT_NOTE and plan.reverses is not None:
            raise QuarantineError("it is an invoice, but the plan says it cancels another document")
        if document.kind == DocumentKind.CREDIT_NOTE:
            self.credited_invoice(document, plan)
        elif plan.contact is None:
            raise QuarantineError("Billy needs a contact for every invoice and none was matched or created")
        for planned in plan.lines:
            self.booking(document, planned)
        self.currency_problem(document, plan)
        vouchers = document.voucher_amount
        if vouchers:
            # Before anything is written: the clearing account must exist and take payments.
            self.voucher_account(plan)
        if plan.mark_paid and self.settings.auto_book and payments_due(document, plan.document_date):
            # Refused before anything is written: the invoice would be approved (final)
            # and its payment could not be recorded.
            if document.paid_amount > vouchers:
                self.cash_for(document.currency, Decimal("0.00"), plan.exchange_rate)
            if vouchers:
                self.cash_for(document.currency, Decimal("0.00"), plan.exchange_rate,
                              account=self.voucher_account(plan), setting="voucher_account")

    def credited_invoice(self, document: Document, plan: Plan) -> dict[str, Any]:
        """The Billy invoice a credit note cancels (``plan.reverses``), checked: it is an
        approved invoice in the credit note's currency, and what its credit notes credit
        with this one stays within its gross. QuarantineError names what is wrong."""
        assert plan.reverses is not None
        name = plan.reverses.number or plan.reverses.target_id
        original = self.invoice(plan.reverses.target_id)
        if original is None:
            raise QuarantineError(
                f"it cancels Billy invoice {name}, which Billy no longer has (deleted there?): nothing to credit; "
                "check the original in Billy"
            )
        if record_type(original) != "invoice":
            raise QuarantineError(f"it cancels Billy record {name}, which is a {record_type(original)}, not an invoice")
        state = original.get("state")
        if state == "draft":
            raise QuarantineError(
                f"it cancels Billy invoice {name}, which is still a draft (not booked): delete the draft in Billy "
                "instead of crediting it, or approve it and run `ledgerlink retry --quarantined`"
            )
        if state != "approved":
            raise QuarantineError(f"it cancels Billy invoice {name}, which is {state} in Billy: nothing to credit")
        if original.get("currencyId") and original.get("currencyId") != document.currency:
            raise QuarantineError(
                f"it is in {document.currency}, the Billy invoice {name} it cancels in {original.get('currencyId')}"
            )
        own = self.credit_note_no(document.source_ref, document.number)
        earlier = Decimal("0.00")
        for record in self._list("/invoices", "invoices", {"creditedInvoiceId": plan.reverses.target_id}):
            if (record_type(record) == "creditNote" and str(record.get("invoiceNo")) != own
                    and str(record.get("creditedInvoiceId") or plan.reverses.target_id) == plan.reverses.target_id
                    and record.get("state") != "voided"):
                earlier += dec(record.get("amount")) + dec(record.get("tax"))
        gross = dec(original.get("amount")) + dec(original.get("tax"))
        credit = as_billy_figures(document).total_gross
        if earlier + credit > gross:
            raise QuarantineError(
                f"it credits {credit} {document.currency}, but Billy invoice {name} of {gross} already has credit "
                f"notes of {earlier}: it would credit more than the invoice; check the cancellations in the source"
            )
        return original

    def currency_problem(self, document: Document, plan: Plan) -> None:
        """A document in another currency than the organization's needs the plan's rate
        (sent as ``exchangeRate``; without it Billy would use the day's rate)."""
        base = self.book_currency()
        if base is None or document.currency == base:
            return
        if plan.exchange_rate is None:
            raise QuarantineError(
                f"the document is in {document.currency}, Billy books in {base}, and there is no exchange "
                f"rate: set the pipeline's exchange_rates for {document.currency}"
            )
        if plan.book_currency != base:
            raise QuarantineError(
                f"the exchange rate is in {plan.book_currency} per {document.currency}, but Billy books in "
                f"{base}: set the pipeline's book_currency to {base}"
            )

    def voucher_account(self, plan: Plan) -> dict[str, Any]:
        """The pipeline's ``voucher_account`` as a Billy account (id, number or name, like
        ``cash_account``): it must exist and accept payments. QuarantineError names it."""
        ref = plan.voucher_account
        if not ref:
            raise QuarantineError(
                f"it is paid partly with a gift voucher and pipeline {plan.pipeline!r} has no voucher_account: "
                "name the Billy clearing account for vouchers"
            )
        account = self.find_account(ref)
        if account is None:
            raise QuarantineError(
                f"voucher_account {ref!r} of pipeline {plan.pipeline!r}: Billy has no such account (give its "
                "number, name or id)"
            )
        if not account.get("isPaymentEnabled"):
            raise QuarantineError(
                f"voucher_account {ref!r}: Billy account {account.get('accountNo') or account.get('id')} does not "
                "accept payments (isPaymentEnabled is false): allow payments on it in Billy"
            )
        return account

    def cash_for(
        self, currency: str, amount: Decimal, invoice_rate: Decimal | None, *,
        account: dict[str, Any] | None = None, setting: str | None = None,
    ) -> tuple[dict[str, Any], Decimal, Decimal | None]:
        """(cash account, ``cashAmount``, ``cashExchangeRate``) for a payment of ``amount``
        in ``currency`` (the invoice's): on the account for that currency at its own
        amount, else on ``cash_account`` when that one is in the invoice's currency, else
        converted at the invoice's rate when the account is in the base currency.
        ``account`` (with ``setting``, its name in the config) is used instead for a
        voucher payment (the pipeline's ``voucher_account``), under the same rules.
        QuarantineError (leave the payment open) when none applies."""
        if account is None:
            ref = self.settings.cash_accounts.get(currency) or self.settings.cash_account
            account = self.cash_account(ref)
            label = f"cash account {ref!r}"
            hint = f"set cash_accounts.{currency} to an account in {currency} or record it in Billy"
            exact = f"record this payment in Billy, or set cash_accounts.{currency} to an account in {currency}"
        else:
            label = f"{setting} {account.get('accountNo') or account.get('id')!s}"
            hint = exact = f"record this voucher payment in Billy, or name a {setting} in {currency}"
        base = self.book_currency()
        account_currency = account.get("currencyId") or base
        if account_currency == currency:
            return account, amount, None
        if account_currency == base and base is not None and invoice_rate is not None:
            cash = money(amount * invoice_rate)
            if money(cash / invoice_rate) != amount:
                raise QuarantineError(
                    f"{amount} {currency} at the invoice's rate {invoice_rate} is {cash} {base}, which Billy "
                    f"reads back as {money(cash / invoice_rate)} {currency}: {exact}"
                )
            return account, cash, invoice_rate
        why = "" if invoice_rate is not None or currency == base else " and the invoice has no exchange rate"
        raise QuarantineError(
            f"{label} is in {account_currency}, the invoice in {currency}{why}: the payment is left open; {hint}"
        )

    def _line_products(self, document: Document, plan: Plan) -> list[str]:
        """The product id of each planned line."""
        products = []
        for planned in plan.lines:
            name, account, ruleset = self.booking(document, planned)
            template: Template | None = getattr(self.settings, name)
            overridden = bool(
                (planned.account and (template is None or planned.account != template.account))
                or (planned.tax_rule and (template is None or planned.tax_rule != template.vat))
            )
            products.append(self.product_for(name, account, ruleset, overridden))
        return products

    def push(self, document: Document, plan: Plan) -> TargetRef:
        self.validate(document, plan)
        credit = document.kind == DocumentKind.CREDIT_NOTE
        if credit:
            # A credit note goes to the credited invoice's contact, at positive figures.
            assert plan.reverses is not None
            original = self.credited_invoice(document, plan)
            contact_id = str(original.get("contactId") or (plan.contact.target_id if plan.contact else ""))
            credited_id: str | None = plan.reverses.target_id
        else:
            assert plan.contact is not None
            contact_id, credited_id = plan.contact.target_id, None
        figures = as_billy_figures(document)
        products = self._line_products(document, plan)
        # The form (taxMode, one line per source line or grouped) whose totals, rounded
        # line by line as Billy does, are the source's gross and VAT.
        lines = [negated(pl.line) if credit else pl.line for pl in plan.lines]
        tax_mode, sent, how = invoice_form(figures, lines, products)
        if how != "one line per source line" or tax_mode != ("incl" if lines[0].price_basis == "gross" else "excl"):
            log.info("Billy invoice for %s is sent with taxMode %s, %s, so Billy's VAT is the source's to the øre",
                     document.source_ref, tax_mode, how)
        invoice_no = self.document_no(document)
        body = invoice_payload(
            document, plan, contact_id=contact_id, invoice_no=invoice_no, lines=invoice_lines(sent),
            tax_mode=tax_mode, payment_terms_days=self.settings.payment_terms_days,
            payment_terms_mode=self.settings.payment_terms_mode, base_currency=self.book_currency(),
            credited_invoice_id=credited_id,
        )
        # Always a draft first: an approved invoice cannot be deleted if Billy's
        # amounts turn out different from the source's.
        answer = self._call("POST", "/invoices", json={"invoice": body})
        invoice = self._first(answer, "invoices", "an invoice")
        invoice_id = str(invoice["id"])
        kind = "credit note" if credit else "invoice"
        ref = TargetRef(target_id=invoice_id, number=str(invoice.get("invoiceNo") or invoice_no), kind=kind)
        if "amount" not in invoice or "tax" not in invoice:
            invoice = self.invoice(invoice_id) or invoice
        problem = amount_problem(document, invoice)
        if problem:
            self._call("DELETE", f"/invoices/{invoice_id}")
            raise QuarantineError(f"{problem}; the Billy draft {ref.number} was deleted")
        if self.settings.auto_book:
            self._call("PUT", f"/invoices/{invoice_id}", json={"invoice": {"state": "approved"}})
            if plan.mark_paid and not credit:
                try:
                    self.book_payment(ref, document, plan)
                except (QuarantineError, TransientError) as exc:
                    # The invoice is approved (final): never quarantine it for its payment.
                    # The runner books the payment on a later run and reports why it cannot.
                    log.warning("Billy invoice %s: payment not recorded yet: %s", ref.number, exc)
                    ref.payment_pending = True
        elif plan.mark_paid and not credit and payments_due(document, plan.document_date):
            # Drafts first is the operator's choice (auto_book = false): expected, so no
            # warning; the ledger keeps the payment pending and `status` shows it.
            log.info(
                "Billy invoice %s stays a draft, so its payment is not recorded yet; ledgerlink "
                "books it on a later run once the invoice is approved in Billy",
                ref.number,
            )
            ref.payment_pending = True
        return ref

    def complete(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """Finish an invoice or credit note found after a lost answer or an interruption,
        before the ledger counts it as pushed. A draft is checked against the source
        (type, gross and tax; a credit note also its credited invoice) and, with
        ``auto_book``, approved, as ``push`` would have done. A draft that differs is
        deleted and the document quarantined (QuarantineError), so a retry writes it
        afresh. A record of the other kind under the key (a source's invoice 7 found
        for its credit note 7, say) is left unchanged and the document quarantined."""
        name = ref.number or ref.target_id
        invoice = self.invoice(ref.target_id)
        if invoice is None:
            raise TransientError(f"Billy invoice {name} was not found again", vendor_down=False)
        kind = wanted_type(document)
        if record_type(invoice) != kind:
            raise QuarantineError(
                f"Billy's {record_type(invoice)} {name} was found under this document's number, but the source "
                f"document is a {kind}: the Billy record was left unchanged; give one of them another number "
                "(or an invoice_no_prefix) and retry"
            )
        state = invoice.get("state")
        credited = str(invoice.get("creditedInvoiceId") or "")
        if kind == "creditNote" and plan.reverses is not None and credited != plan.reverses.target_id:
            wrong = f"Billy credit note {name} credits invoice {credited or '(none)'}, not {plan.reverses.number or plan.reverses.target_id}"
            if state == "draft":
                self._call("DELETE", f"/invoices/{ref.target_id}")
                raise QuarantineError(f"{wrong}; the draft was deleted, `ledgerlink retry --quarantined` writes it again")
            raise QuarantineError(f"{wrong}; it is {state} in Billy and was left unchanged: a person must check it")
        if state != "draft":
            return  # approved: push approves only after the amount check
        problem = amount_problem(document, invoice)
        if problem:
            self._call("DELETE", f"/invoices/{ref.target_id}")
            raise QuarantineError(f"{problem}; the Billy draft {name} was deleted")
        if self.settings.auto_book:
            self._call("PUT", f"/invoices/{ref.target_id}", json={"invoice": {"state": "approved"}})

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        """The invoice with its ``balanceModifiers`` (its payments) embedded."""
        response = self.client.get(
            f"/invoices/{invoice_id}", ok=[404], params={"include": "invoice.balanceModifiers:embed"}
        )
        if response.status_code == 404:
            return None
        body = self.client.json(response)
        record = body.get("invoice") if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise TransientError(f"Billy GET /invoices/{invoice_id}: the answer has no invoice")
        return record

    def _by_number(self, invoice_no: str, kind: str) -> TargetRef | None:
        for record in self._list("/invoices", "invoices", {"invoiceNo": invoice_no}):
            # Checked here too, so a filter the API ignored cannot match a wrong invoice.
            if str(record.get("invoiceNo")) == invoice_no and record_type(record) == kind:
                label = "credit note" if kind == "creditNote" else "invoice"
                return TargetRef(target_id=str(record["id"]), number=invoice_no, kind=label)
        return None

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        """The invoice or credit note written for ``source_ref``, by its ``invoiceNo``.

        An invoice's key is prefix + number (else source_ref), a credit note's prefix +
        ``CN-`` + number (else source_ref). The kind is known for ledgerlink's own
        reversals (``~reversal``) and for documents this run validated; otherwise the
        invoice key is tried first, then the credit note key (``complete`` refuses a
        record of the wrong kind)."""
        kind = self._kinds.get(source_ref) or ("creditNote" if source_ref.endswith(REVERSAL_SUFFIX) else None)
        if kind != "creditNote":
            found = self._by_number(self.invoice_no(source_ref, number), "invoice")
            if found is not None or kind == "invoice":
                return found
        return self._by_number(self.credit_note_no(source_ref, number), "creditNote")

    # -- payments -------------------------------------------------------------------
    def _payment_kinds(self, booked: list[Booked], voucher_id: str) -> list[Booked]:
        """Each bank payment with its kind: ``voucher`` when it was paid from the voucher
        clearing account (read from the bank payment's ``cashAccountId``)."""
        out = []
        for amount, day, _kind, payment_id in booked:
            kind = ""
            if payment_id:
                response = self.client.get(f"/bankPayments/{payment_id}", ok=[404])
                body = self.client.json(response) if response.status_code != 404 else None
                record = body.get("bankPayment") if isinstance(body, dict) else None
                if isinstance(record, dict):
                    kind = "voucher" if str(record.get("cashAccountId")) == voucher_id else "money"
            out.append((amount, day, kind, payment_id))
        return out

    def book_payment(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """Record each payment of the source that Billy does not have yet as its own bank
        payment (own date, own amount): money on the cash account, a gift voucher
        redeemed from the pipeline's ``voucher_account``. Idempotent: the invoice's bank
        payments (``balanceModifiers``, with their cash account when vouchers are
        involved) tell which are there, so a second call records nothing."""
        due = payments_due(document, plan.document_date)
        if not due:
            return
        name = ref.number or ref.target_id
        if document.kind == DocumentKind.CREDIT_NOTE:
            raise QuarantineError(
                f"ledgerlink does not record refunds on Billy credit notes: record the refund of "
                f"{document.paid_amount} {document.currency} on credit note {name} in Billy"
            )
        vouchers = any(kind == "voucher" for _amount, _day, kind in due)
        voucher = self.voucher_account(plan) if vouchers else None
        invoice = self.invoice(ref.target_id)
        if invoice is None:
            raise QuarantineError(f"Billy invoice {name} is gone; cannot record its payment")
        if invoice.get("state") != "approved":
            raise TransientError(  # Billy answered: not the vendor's trouble (the breaker leaves it)
                f"Billy invoice {name} is still a {invoice.get('state')}; "
                "a payment can be recorded once it is approved",
                vendor_down=False,
            )
        problem = amount_problem(document, invoice)
        if problem:  # never book a payment against different figures
            raise QuarantineError(f"Billy invoice {name}: {problem}; no payment recorded")
        gross = dec(invoice.get("amount")) + dec(invoice.get("tax"))
        balance = dec(invoice.get("balance"))
        booked = booked_payments(invoice)
        todo: list[Due]
        if booked is not None:
            if voucher is not None:
                booked = self._payment_kinds(booked, str(voucher["id"]))
            todo = unbooked_payments(due, booked)
        else:
            maybe = unbooked_by_total(due, gross - balance)
            if maybe is None:
                raise QuarantineError(
                    f"Billy invoice {name} has {gross - balance} paid, which is not a sum of the source's "
                    f"payments ({', '.join(str(a) for a, _, _ in due)}): reconcile it in Billy"
                )
            todo = maybe
        if not todo:
            return
        open_amount = sum((amount for amount, _, _ in todo), Decimal("0.00"))
        if open_amount > balance:
            raise QuarantineError(
                f"the source's payments not yet in Billy ({', '.join(f'{a} on {d}' for a, d, _ in todo)}) come to "
                f"{open_amount} {document.currency}, more than invoice {name}'s open balance of {balance}: "
                "nothing recorded; check the payments in the source and in Billy"
            )
        currency = str(invoice.get("currencyId") or document.currency)
        rate = invoice.get("exchangeRate")
        invoice_rate = Decimal(str(rate)) if rate not in (None, "", 0) else plan.exchange_rate
        planned = [
            (day, *self.cash_for(currency, amount, invoice_rate, account=voucher if kind == "voucher" else None,
                                 setting="voucher_account"))
            for amount, day, kind in todo
        ]
        for day, account, cash, cash_rate in sorted(planned, key=lambda p: p[0]):
            body = bank_payment_payload(day, cash, account["id"], ref.target_id, cash_rate)
            self._call("POST", "/bankPayments", json={"bankPayment": body})

    # -- statuses -------------------------------------------------------------------
    def statuses(self, refs: Iterable[TargetRef]) -> Iterator[tuple[TargetRef, str]]:
        """Billy has no webhooks: read each invoice and describe it in one raw word."""
        today = _dt.date.today()
        for ref in refs:
            invoice = self.invoice(ref.target_id)
            yield ref, raw_status(invoice, today)

    def close(self) -> None:
        self.client.close()


__all__ = ["AUTH_HINT", "DEFAULT_BASE_URL", "BillySettings", "BillyTarget", "Template"]
