"""Canonical records: what every source produces and every target consumes.

Money is ``Decimal`` in an ISO 4217 currency, never float. A line keeps the
source's own figures (its total in the source's price basis, gross for shops and
net for B2B systems, and the tax amount when the source states one); the other
figures are derived with ``ROUND_HALF_UP`` to the cent. Document totals are sums
of line totals. The tax region and treatment are derived from the seller's and
buyer's countries, the buyer's VAT id and the line kind.
"""

from __future__ import annotations

import datetime as _dt
import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("1e12")
MAX_QUANTITY = Decimal("1e7")
DEFAULT_SELLER_COUNTRY = "DE"
"""The seller's country when neither the source nor the pipeline states one."""
DEFAULT_BOOK_CURRENCY = "EUR"
"""The book currency when neither the pipeline nor the target states one."""


def money(value: Decimal | int | str) -> Decimal:
    """Round an amount half-up to the cent."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@cache
def _eu_data() -> dict[str, Any]:
    return json.loads(resources.files("ledgerlink").joinpath("data/eu.json").read_text())  # type: ignore[no-any-return]


@cache
def currencies() -> dict[str, int]:
    """ISO 4217 codes and their minor units."""
    data = json.loads(resources.files("ledgerlink").joinpath("data/currencies.json").read_text())
    return dict(data["currencies"])


def normalise_country(code: str) -> str:
    code = code.strip().upper()
    return str(_eu_data()["aliases"].get(code, code))


def is_eu_member(country: str) -> bool:
    return normalise_country(country) in _eu_data()["members"]


def _rates_on(code: str, on: date | None) -> tuple[Any, list[Any]] | None:
    """(standard, reduced) of an EU member on a day (None: today's table); None outside the EU."""
    data = _eu_data()
    standard = data["members"].get(code)
    if standard is None:
        return None
    if on is not None:
        day = on.isoformat()
        for period in data.get("history", {}).get(code, []):
            if period.get("from", "0000-01-01") <= day <= period.get("until", "9999-12-31"):
                return period["standard"], list(period["reduced"])
    return standard, list(data.get("reduced", {}).get(code, []))


def standard_vat_rate(country: str, on: date | None = None) -> Decimal | None:
    """An EU member's standard rate on a day (default: the table's current one); None outside the EU."""
    rates = _rates_on(normalise_country(country), on)
    return None if rates is None else Decimal(str(rates[0]))


def eu_rates(country: str, on: date | None = None) -> list[Decimal]:
    """An EU member's VAT rates on a day (default: the table's current ones), standard first,
    then reduced; empty outside the EU. The table is dated data (``data/eu.json``)."""
    rates = _rates_on(normalise_country(country), on)
    if rates is None:
        return []
    return [Decimal(str(rates[0]))] + [Decimal(str(rate)) for rate in rates[1]]


class TaxRegion(StrEnum):
    """Where the buyer is, seen from the seller's country."""

    DOMESTIC = "domestic"
    EU = "eu"
    NON_EU = "non_eu"


class TaxTreatment(StrEnum):
    """How a line is taxed; decides the target's tax rule (see docs/accounting.md)."""

    STANDARD = "standard"
    REDUCED = "reduced"
    INTRA_EU_SUPPLY = "intra_eu_supply"  # goods to an EU business with VAT id, 0 %
    REVERSE_CHARGE = "reverse_charge"  # services to an EU business, 0 %
    OSS = "oss"  # EU consumer, buyer country's rate, seller registered for OSS
    EXPORT = "export"  # goods leaving the EU, 0 %
    NOT_TAXABLE_HERE = "not_taxable_here"  # services to a business outside the EU
    SMALL_BUSINESS = "small_business"  # seller charges no VAT (§19 UStG)


def tax_region(seller_country: str, buyer_country: str | None) -> TaxRegion:
    """Domestic, EU or non-EU from the seller's and the buyer's country.

    A buyer without a country is treated as domestic: a shop's own customers
    without an address are the common case, and nothing foreign is implied.
    """
    seller = normalise_country(seller_country)
    if not buyer_country:
        return TaxRegion.DOMESTIC
    buyer = normalise_country(buyer_country)
    if buyer == seller:
        return TaxRegion.DOMESTIC
    if is_eu_member(buyer):
        return TaxRegion.EU
    return TaxRegion.NON_EU


class LineKind(StrEnum):
    """What a line sells; rules and tax treatments tell goods from services."""

    GOODS = "goods"
    SERVICE = "service"
    SHIPPING = "shipping"
    FEE = "fee"
    DISCOUNT = "discount"


class DocumentKind(StrEnum):
    """An invoice, or a credit note (see ``Line.total`` for its signs)."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False)


def _check_amount(value: Decimal | None, what: str) -> Decimal | None:
    if value is None:
        return None
    if not value.is_finite():
        raise ValueError(f"{what} is not a finite number")
    if abs(value) >= MAX_AMOUNT:
        raise ValueError(f"{what} {value} is absurdly large")
    return value


# Names, addresses and the like longer than this are broken input (a runaway
# export, a pasted file), never a person: the document fails with the field named.
MAX_TEXT = 1_000


class Address(_Record):
    """A postal address (the billing address for a customer)."""

    name: str | None = Field(None, max_length=MAX_TEXT, description="addressee line, if it differs from the customer's name")
    street: str | None = Field(None, max_length=MAX_TEXT, description="street and house number")
    street2: str | None = Field(None, max_length=MAX_TEXT, description="second address line")
    zip: str | None = Field(None, max_length=MAX_TEXT, description="postal code, as text")
    city: str | None = Field(None, max_length=MAX_TEXT, description="city")
    country: str | None = Field(
        None, description="ISO 3166-1 alpha-2 code, upper case (\"DE\"); decides the tax region; None: unknown, "
        "treated as the seller's country")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"country {value!r} is not an ISO 3166 two-letter code")
        return value


class Dispatch(_Record):
    """How the target dispatches a document to the buyer, as chosen in the source for this
    document (an export dialog's choices: send it now or keep it a draft, the channel,
    the language, the sender address). Each field left None: the target connection's
    own setting applies. Targets that deliver nothing (bookkeeping) ignore it."""

    send: bool | None = Field(None, description="True: the target sends the document to the buyer as soon as it "
                              "arrives; False: it stays a draft there until a person sends it; None: the target "
                              "connection's setting")
    channel: Literal["email", "post", "email_and_post"] | None = Field(
        None, description="how the document travels to the buyer; None: the target's setting")
    language: str | None = Field(None, description="ISO 639-1 language of the document and its message (\"de\"); "
                                 "None: the target's setting")
    sender: Address | None = Field(None, description="the sender address printed on the document (the address of "
                                   "the user who issues it); None: the target account's own")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().lower()
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"language {value!r} is not an ISO 639-1 two-letter code")
        return value


class Customer(_Record):
    """A customer as the source knows it."""

    source_id: str = Field(min_length=1, max_length=200, description="the customer's id in the source, stable "
                           "over time; the key of the customer's link to a target contact")
    customer_number: str | None = Field(
        None, description="number stored on the source customer (the target's, once written back); "
        "the customer_number matcher looks contacts up by it"
    )
    first_name: str | None = Field(None, max_length=MAX_TEXT, description="a person's first name")
    last_name: str | None = Field(None, max_length=MAX_TEXT, description="a person's last name")
    company: str | None = Field(None, max_length=MAX_TEXT, description="company name; set: the customer is a "
                                "business (and is never matched to a person)")
    email: str | None = Field(None, max_length=MAX_TEXT, description="e-mail address")
    phone: str | None = Field(None, max_length=MAX_TEXT, description="phone number, as text")
    vat_id: str | None = Field(None, max_length=MAX_TEXT, description="the buyer's VAT identification number "
                               "(with country prefix, e.g. \"ATU12345678\"); a business buyer in the EU")
    address: Address | None = Field(None, description="billing address")
    language: str | None = Field(None, description="ISO 639-1 language for documents sent to the customer")
    extra: dict[str, Any] = Field(default_factory=dict, description="vendor-specific data for the plugin's own "
                                  "use; the core never reads it")

    @property
    def is_company(self) -> bool:
        return bool(self.company and self.company.strip())

    @property
    def display_name(self) -> str:
        person = " ".join(p for p in (self.first_name, self.last_name) if p)
        if self.is_company:
            return f"{self.company} ({person})" if person else str(self.company)
        return person or self.email or self.source_id

    @property
    def country(self) -> str | None:
        return self.address.country if self.address else None


class Contact(_Record):
    """A contact (customer) as the target knows it."""

    target_id: str = Field(description="the contact's id in the target")
    customer_number: str | None = Field(None, description="the target's customer number")
    first_name: str | None = Field(None, description="a person's first name")
    last_name: str | None = Field(None, description="a person's last name")
    company: str | None = Field(None, description="company name (a business contact)")
    email: str | None = Field(None, description="e-mail address")
    extra: dict[str, Any] = Field(default_factory=dict, description="vendor-specific data for the plugin's own use")

    @property
    def display_name(self) -> str:
        person = " ".join(p for p in (self.first_name, self.last_name) if p)
        return self.company or person or self.target_id


class Line(_Record):
    """One line of a document, with the source's own figures.

    ``total`` is the line total in ``price_basis`` (gross for shops, net for
    B2B systems). ``tax_amount`` is the tax the source states for the line, if
    it states one; otherwise it is derived from the rate.
    """

    description: str = Field(max_length=10_000, description="the line's text as the source shows it")
    quantity: Decimal = Field(Decimal(1), description="units sold; never 0; negative only to correct a line "
                              "(a credit note keeps positive quantities and negative totals, see total)")
    total: Decimal = Field(description="the line total in the document's currency and in price_basis (gross "
                           "for shops, net for B2B systems), after the line's own discount; negative for a "
                           "discount line and on every line of a credit note")
    tax_rate: Decimal = Field(description="VAT rate in percent, 0 to 100 (19 means 19 %, never 0.19); 0 for a "
                              "tax-free line")
    price_basis: Literal["gross", "net"] = Field("gross", description="whether total and unit_price include VAT; "
                                                 "the same on every line of a document")
    tax_amount: Decimal | None = Field(None, description="the VAT the source states for this line, same sign as "
                                       "total; None: derived from tax_rate (half-up to the cent)")
    unit_price: Decimal | None = Field(None, description="price of one unit in price_basis; None: total / quantity")
    kind: LineKind = Field(LineKind.GOODS, description="goods, service, shipping, fee or discount; rules and the "
                           "tax treatment use it")
    booking_code: str | None = Field(None, description="the source's own account or booking code for the line "
                                     "(a revenue account code on a coworking invoice, say); rules match on it")
    sku: str | None = Field(None, description="article number")

    @field_validator("quantity")
    @classmethod
    def _quantity(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("quantity is not a finite number")
        if value == 0:
            raise ValueError("quantity is 0")
        if abs(value) > MAX_QUANTITY:
            raise ValueError(f"quantity {value} is absurdly large")
        return value

    @field_validator("total", "tax_amount", "unit_price")
    @classmethod
    def _amounts(cls, value: Decimal | None) -> Decimal | None:
        return _check_amount(value, "amount")

    @field_validator("tax_rate")
    @classmethod
    def _rate(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0 or value > 100:
            raise ValueError(f"tax rate {value} is not a percentage between 0 and 100")
        return value

    @property
    def computed_tax(self) -> Decimal:
        """The tax the rate gives on this line's total."""
        if self.price_basis == "gross":
            return money(self.total * self.tax_rate / (100 + self.tax_rate))
        return money(self.total * self.tax_rate / 100)

    @property
    def tax(self) -> Decimal:
        """The line's VAT: the stated tax_amount, else computed_tax."""
        return money(self.tax_amount) if self.tax_amount is not None else self.computed_tax

    @property
    def gross(self) -> Decimal:
        """The line total including VAT."""
        return money(self.total) if self.price_basis == "gross" else money(self.total) + self.tax

    @property
    def net(self) -> Decimal:
        """The line total without VAT."""
        return money(self.total) - self.tax if self.price_basis == "gross" else money(self.total)

    @property
    def unit(self) -> Decimal:
        """Unit price in the price basis (stated, or the total over the quantity)."""
        if self.unit_price is not None:
            return self.unit_price
        return money(self.total / self.quantity)

    def tax_discrepancy(self) -> Decimal:
        """Stated tax minus the tax the rate gives (0 when none is stated)."""
        return Decimal(0) if self.tax_amount is None else money(self.tax_amount) - self.computed_tax


class Payment(_Record):
    """Money received for a document, as the source records it."""

    amount: Decimal = Field(description="amount received in the document's currency, gross; positive (a refund "
                            "on a credit note is positive too)")
    date: _dt.date | None = Field(None, description="the day the money arrived (value date)")
    method: str | None = Field(None, description="how it was paid, in the source's words (\"PayPal\")")
    reference: str | None = Field(None, description="the payment's reference (transaction id)")
    kind: Literal["money", "voucher"] = Field("money", description="money: cash, card, transfer, PayPal; voucher: "
                                              "a gift card or multi-purpose voucher redeemed (a means of payment, "
                                              "booked from the pipeline's voucher_account, never as a discount)")

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal) -> Decimal:
        _check_amount(value, "payment amount")
        return value


REVERSAL_SUFFIX = "~reversal"
"""Appended to a document's source_ref for the credit note ledgerlink writes to reverse it."""


class Document(_Record):
    """An invoice or credit note from a source system."""

    source_ref: str = Field(min_length=1, max_length=200, description="the record's id in the source, unique "
                            "within the source connection and stable over time; the ledger's key")
    number: str | None = Field(None, max_length=200, description="the document number people see (invoice number)")
    kind: DocumentKind = Field(DocumentKind.INVOICE, description="invoice or credit_note; a credit note has "
                               "negative line totals and tax")
    currency: str = Field("EUR", description="ISO 4217 code of every amount in the document")
    exchange_rate: Decimal | None = Field(None, gt=0, description="the exchange rate the source states: units of "
                                          "the book currency for one unit of currency (0.95 for 1 CHF = 0.95 EUR); "
                                          "None: not stated (the pipeline's exchange_rates are used)")
    order_date: date | None = Field(None, description="the day the order was placed")
    invoice_date: date | None = Field(None, description="the invoice date (the day of supply unless stated)")
    payment_date: date | None = Field(None, description="the day the document was paid in full")
    due_date: date | None = Field(None, description="when payment is due, as the source states it")
    customer: Customer = Field(description="the buyer")
    lines: list[Line] = Field(min_length=1, description="at least one line; the document's totals are their sums")
    payments: list[Payment] = Field(default_factory=list, description="money received so far")
    stated_total: Decimal | None = Field(None, description="the source's own grand total, GROSS, in currency, "
                                         "for the check that the lines add up to it (quarantined if not)")
    seller_country: str | None = Field(None, description="the seller's ISO country as the source states it; "
                                       "None: the pipeline's seller_country. Stated by both and different: the "
                                       "document is quarantined")
    delivery_country: str | None = Field(
        None, description="the ISO country the goods are shipped to, where the source "
        "states a delivery address apart from the billing address; for goods it, not the billing country, decides "
        "the tax region (a Danish buyer's order shipped to Germany is an EU supply). None: the customer's billing "
        "country")
    shop: str | None = Field(None, description="the shop or sales channel within the source; rules match on it")
    source_status: str | None = Field(None, description="the document's status in the source, in its own words")
    treatment_hint: TaxTreatment | None = Field(
        None, description="the tax treatment the source states (a shop's VAT mode, say). Set it whenever the "
        "source states a zero-rated or special treatment (intra-EU supply, reverse charge, export, OSS, small "
        "business), because it cannot be derived from a 0 % line alone; leave it None when the source states "
        "nothing or only standard/reduced. ledgerlink checks it against the facts"
    )
    finalized: bool = Field(True, description="False for drafts and other documents that must not be booked yet "
                            "(recorded as skipped)")
    cancelled: bool = Field(False, description="cancelled or voided in the source; before transfer it is "
                            "skipped, after transfer it is reported as 'cancelled after transfer' (and reversed "
                            "with the pipeline's on_cancel = \"reverse\")")
    reverses: str | None = Field(None, min_length=1, max_length=200, description="for the source's own "
                                 "cancellation or correction document: the source_ref of the document it cancels; "
                                 "kind is credit_note. It is written as a credit note referencing that document "
                                 "in the target, or quarantined, never booked as free-standing negative revenue")
    skip_reason: str | None = Field(None, description="set by the source when this record must not be "
                                    "transferred (a state not selected, another shop), in a bookkeeper's words; "
                                    "the document is still a full Document so the ledger keeps it")
    cursor: str | None = Field(None, description="the source's cursor value that is safe to store once this "
                               "document and every one before it are settled; not part of the content")
    pdf_url: str | None = Field(None, description="where the source serves the document as PDF, if it does")
    dispatch: Dispatch | None = Field(None, description="how the target dispatches the document to the buyer, as "
                                      "chosen in the source for this document (send or keep a draft, channel, "
                                      "language, sender); None: the target's settings. Not content: a choice "
                                      "changed after transfer is not a change of the document")
    extra: dict[str, Any] = Field(default_factory=dict, description="vendor-specific data for the plugin's own "
                                  "use; the core never reads it")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in currencies():
            raise ValueError(f"currency {value!r} is not an ISO 4217 code")
        return value

    @field_validator("seller_country")
    @classmethod
    def _seller(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"seller country {value!r} is not an ISO 3166 two-letter code")
        return value

    @field_validator("delivery_country")
    @classmethod
    def _delivery(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"delivery country {value!r} is not an ISO 3166 two-letter code")
        return value

    @field_validator("stated_total")
    @classmethod
    def _stated(cls, value: Decimal | None) -> Decimal | None:
        return _check_amount(value, "total")

    @field_validator("order_date", "invoice_date", "payment_date", "due_date")
    @classmethod
    def _date_range(cls, value: date | None) -> date | None:
        if value is not None and not (1990 <= value.year <= 2100):
            raise ValueError(f"date {value.isoformat()} is out of range (1990-2100)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Document:
        bases = {line.price_basis for line in self.lines}
        if len(bases) > 1:
            raise ValueError("lines mix gross and net prices")
        return self

    # -- derived -------------------------------------------------------------
    @property
    def total_gross(self) -> Decimal:
        """Sum of the lines' gross amounts (what the buyer pays)."""
        return sum((line.gross for line in self.lines), Decimal("0.00"))

    @property
    def total_net(self) -> Decimal:
        """Sum of the lines' net amounts."""
        return sum((line.net for line in self.lines), Decimal("0.00"))

    @property
    def total_tax(self) -> Decimal:
        """Sum of the lines' VAT."""
        return sum((line.tax for line in self.lines), Decimal("0.00"))

    @property
    def paid_amount(self) -> Decimal:
        """Sum of the payments, each rounded to the cent."""
        return sum((money(p.amount) for p in self.payments), Decimal("0.00"))

    @property
    def voucher_amount(self) -> Decimal:
        """The part paid with gift vouchers (payments of kind voucher)."""
        return sum((money(p.amount) for p in self.payments if p.kind == "voucher"), Decimal("0.00"))

    def reversal(self, on: date) -> Document:
        """The credit note that reverses this document in full (negative lines, no
        payments), referencing it, dated ``on`` (the day the cancellation is booked: a
        reversal never changes a period that may be filed). Its ledger key is
        ``source_ref + REVERSAL_SUFFIX``."""
        lines = [
            line.model_copy(update={
                "total": -line.total,
                "tax_amount": None if line.tax_amount is None else -line.tax_amount,
                "unit_price": None if line.unit_price is None else -line.unit_price,
            })
            for line in self.lines
        ]
        return self.model_copy(update={
            "source_ref": self.source_ref + REVERSAL_SUFFIX,
            "number": None,
            "kind": DocumentKind.CREDIT_NOTE,
            "lines": lines,
            "payments": [],
            "stated_total": None if self.stated_total is None else -self.stated_total,
            "cancelled": False,
            "reverses": self.source_ref,
            "invoice_date": on,
            "order_date": on,
            "payment_date": None,
            "due_date": None,
            "skip_reason": None,
            "cursor": None,
            "pdf_url": None,
        })

    @property
    def is_paid(self) -> bool:
        """True when payments cover the gross total."""
        return bool(self.payments) and self.paid_amount >= self.total_gross

    @property
    def tax_region(self) -> TaxRegion:
        """Domestic, EU or non-EU, from the seller's and the buyer's country."""
        return tax_region(self.seller_country or DEFAULT_SELLER_COUNTRY, self.buyer_country)

    @property
    def buyer_country(self) -> str | None:
        """The country that decides the tax region: the delivery country, else the billing country."""
        return self.delivery_country or self.customer.country

    def tax_by_rate(self) -> dict[Decimal, tuple[Decimal, Decimal]]:
        """Net and tax per tax rate."""
        out: dict[Decimal, tuple[Decimal, Decimal]] = {}
        for line in self.lines:
            net, tax = out.get(line.tax_rate, (Decimal("0.00"), Decimal("0.00")))
            out[line.tax_rate] = (net + line.net, tax + line.tax)
        return out

    def tax_treatment(
        self, line: Line | None = None, *, oss: bool = False, small_business: bool = False
    ) -> TaxTreatment:
        """The tax treatment of a line (or of the document's first line)."""
        line = line or self.lines[0]
        if small_business:
            return TaxTreatment.SMALL_BUSINESS
        if self.treatment_hint is not None and self.treatment_hint not in (
            TaxTreatment.STANDARD,
            TaxTreatment.REDUCED,
        ):
            return self.treatment_hint
        region = self.tax_region
        if line.tax_rate > 0 and not oss:
            # VAT was charged: whatever the region, this is a supply taxed here (e.g. renting
            # a desk in Germany to an Austrian business). Never book charged VAT as tax-free.
            return self._rate_treatment(line)
        service = line.kind == LineKind.SERVICE
        business = bool(self.customer.vat_id and self.customer.vat_id.strip())
        if region == TaxRegion.EU:
            if business:
                return TaxTreatment.REVERSE_CHARGE if service else TaxTreatment.INTRA_EU_SUPPLY
            if oss:
                return TaxTreatment.OSS
        elif region == TaxRegion.NON_EU:
            if service:
                return (
                    TaxTreatment.NOT_TAXABLE_HERE if business else self._rate_treatment(line)
                )
            return TaxTreatment.EXPORT
        return self._rate_treatment(line)

    @property
    def tax_date(self) -> date | None:
        """The day whose VAT rates apply: the invoice date, else the order date."""
        return self.invoice_date or self.order_date

    def _rate_treatment(self, line: Line) -> TaxTreatment:
        standard = standard_vat_rate(self.seller_country or DEFAULT_SELLER_COUNTRY, self.tax_date)
        if standard is not None and line.tax_rate < standard:
            return TaxTreatment.REDUCED
        return TaxTreatment.STANDARD

    def consistency_problems(self) -> list[str]:
        """Why this document is not what it claims to be, in a bookkeeper's words.

        Empty when the lines' tax agrees with their rates to the cent and the
        lines add up to the source's stated total.
        """
        problems: list[str] = []
        for index, line in enumerate(self.lines, start=1):
            diff = line.tax_discrepancy()
            if abs(diff) > CENT:
                problems.append(
                    f"line {index} ({line.description[:40]!r}) states tax {money(line.tax_amount or 0)}"
                    f" but {line.tax_rate}% of {money(line.total)} gives {line.computed_tax}"
                )
        if self.stated_total is not None and money(self.stated_total) != self.total_gross:
            problems.append(
                f"lines add up to {self.total_gross} {self.currency}"
                f" but the document's total is {money(self.stated_total)} {self.currency}"
            )
        return problems


class TargetRef(_Record):
    """Where a document landed in the target."""

    target_id: str = Field(description="the document's id in the target")
    number: str | None = Field(None, description="the document's number in the target")
    kind: str = Field("document", description="the target's kind of object (voucher, invoice, ...)")
    payment_pending: bool = Field(False, description="the document was written but its payment could not be "
                                  "booked yet (e.g. a draft); the runner books it on a later run")


def parse_decimal(value: Any, what: str) -> Decimal:
    """Parse a source's number (string, int or float text) into a Decimal, or raise ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} is missing")
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what} {str(value)[:40]!r} is not a number") from None
    if not result.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    return result


__all__ = [
    "Address",
    "CENT",
    "Contact",
    "Customer",
    "Dispatch",
    "Document",
    "DocumentKind",
    "Line",
    "LineKind",
    "Payment",
    "TargetRef",
    "TaxRegion",
    "TaxTreatment",
    "currencies",
    "eu_rates",
    "is_eu_member",
    "money",
    "parse_decimal",
    "standard_vat_rate",
    "tax_region",
]
