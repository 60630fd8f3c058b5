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


def standard_vat_rate(country: str) -> Decimal | None:
    rate = _eu_data()["members"].get(normalise_country(country))
    return None if rate is None else Decimal(str(rate))


class TaxRegion(StrEnum):
    DOMESTIC = "domestic"
    EU = "eu"
    NON_EU = "non_eu"


class TaxTreatment(StrEnum):
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
    GOODS = "goods"
    SERVICE = "service"
    SHIPPING = "shipping"
    FEE = "fee"
    DISCOUNT = "discount"


class DocumentKind(StrEnum):
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
    name: str | None = Field(None, max_length=MAX_TEXT)
    street: str | None = Field(None, max_length=MAX_TEXT)
    street2: str | None = Field(None, max_length=MAX_TEXT)
    zip: str | None = Field(None, max_length=MAX_TEXT)
    city: str | None = Field(None, max_length=MAX_TEXT)
    country: str | None = Field(None, description="ISO 3166-1 alpha-2")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"country {value!r} is not an ISO 3166 two-letter code")
        return value


class Customer(_Record):
    """A customer as the source knows it."""

    source_id: str = Field(min_length=1, max_length=200)
    customer_number: str | None = Field(
        None, description="number stored on the source customer (the target's, once written back)"
    )
    first_name: str | None = Field(None, max_length=MAX_TEXT)
    last_name: str | None = Field(None, max_length=MAX_TEXT)
    company: str | None = Field(None, max_length=MAX_TEXT)
    email: str | None = Field(None, max_length=MAX_TEXT)
    phone: str | None = Field(None, max_length=MAX_TEXT)
    vat_id: str | None = Field(None, max_length=MAX_TEXT)
    address: Address | None = None
    language: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

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

    target_id: str
    customer_number: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    email: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

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

    description: str = Field(max_length=10_000)
    quantity: Decimal = Decimal(1)
    total: Decimal
    tax_rate: Decimal = Field(description="percent, e.g. 19")
    price_basis: Literal["gross", "net"] = "gross"
    tax_amount: Decimal | None = None
    unit_price: Decimal | None = None
    kind: LineKind = LineKind.GOODS
    booking_code: str | None = None
    sku: str | None = None

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
        return money(self.tax_amount) if self.tax_amount is not None else self.computed_tax

    @property
    def gross(self) -> Decimal:
        return money(self.total) if self.price_basis == "gross" else money(self.total) + self.tax

    @property
    def net(self) -> Decimal:
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
    amount: Decimal
    date: _dt.date | None = None
    method: str | None = None
    reference: str | None = None

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal) -> Decimal:
        _check_amount(value, "payment amount")
        return value


class Document(_Record):
    """An invoice or credit note from a source system."""

    source_ref: str = Field(min_length=1, max_length=200, description="unique within the source")
    number: str | None = Field(None, max_length=200, description="the document number people see")
    kind: DocumentKind = DocumentKind.INVOICE
    currency: str = "EUR"
    order_date: date | None = None
    invoice_date: date | None = None
    payment_date: date | None = None
    due_date: date | None = None
    customer: Customer
    lines: list[Line] = Field(min_length=1)
    payments: list[Payment] = Field(default_factory=list)
    stated_total: Decimal | None = Field(None, description="the source's own grand total (gross)")
    seller_country: str = "DE"
    shop: str | None = None
    raw_status: str | None = None
    treatment_hint: TaxTreatment | None = Field(
        None, description="the treatment the source states (e.g. Billbee's VatMode)"
    )
    finalized: bool = True
    pdf_url: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in currencies():
            raise ValueError(f"currency {value!r} is not an ISO 4217 code")
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
        return sum((line.gross for line in self.lines), Decimal("0.00"))

    @property
    def total_net(self) -> Decimal:
        return sum((line.net for line in self.lines), Decimal("0.00"))

    @property
    def total_tax(self) -> Decimal:
        return sum((line.tax for line in self.lines), Decimal("0.00"))

    @property
    def paid_amount(self) -> Decimal:
        return sum((money(p.amount) for p in self.payments), Decimal("0.00"))

    @property
    def is_paid(self) -> bool:
        return bool(self.payments) and self.paid_amount >= self.total_gross

    @property
    def tax_region(self) -> TaxRegion:
        return tax_region(self.seller_country, self.customer.country)

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

    def _rate_treatment(self, line: Line) -> TaxTreatment:
        standard = standard_vat_rate(self.seller_country)
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

    target_id: str
    number: str | None = None
    kind: str = "document"
    payment_pending: bool = False
    """The document was written but its payment could not be booked yet (e.g. a draft)."""


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
    "Document",
    "DocumentKind",
    "Line",
    "LineKind",
    "Payment",
    "TargetRef",
    "TaxRegion",
    "TaxTreatment",
    "currencies",
    "is_eu_member",
    "money",
    "parse_decimal",
    "standard_vat_rate",
    "tax_region",
]
