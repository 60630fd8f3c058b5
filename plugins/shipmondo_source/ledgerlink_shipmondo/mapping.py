"""A Shipmondo sales order (a JSON object as ``GET /sales_orders`` lists it) -> ledgerlink documents.

No HTTP here: pure functions, tested without a sandbox. One order gives:

- the sale (``source_ref`` = Shipmondo's ``id``, ``number`` = the shop's ``order_id``):
  item, shipping, payment-fee and discount lines in Shipmondo's own net figures with
  the VAT it states; ``payment_details.captured_amount`` as the payment;
- when money was refunded (``payment_details.refunded_amount`` > 0) on an order that
  is not cancelled: a credit note ``<id>~refund`` for the refunded amount, referencing
  the sale, with the refund as its payment (money paid back).

The spec's quirks, read strictly (see the plugin README):

- every amount is a string ("125.0"); ``vat_percent`` is a fraction ("0.25" = 25 %);
  a value above 1 is refused rather than guessed (it would be a percentage);
- per line ``amount_excluding_vat + vat_amount`` must equal ``amount_including_vat``
  and the lines must add up to ``payment_details`` (net, VAT and gross), to the øre:
  an order that does not (the recorded example does not) is quarantined with both
  figures, never booked;
- ``bill_to`` is the customer, ``ship_to`` the delivery address whose country decides
  the tax region of goods; Shipmondo has no customer id, so a customer is known by
  e-mail (else by name, postcode and country).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from ledgerlink import (
    Address,
    BrokenDocument,
    Customer,
    Document,
    DocumentKind,
    Line,
    LineKind,
    Payment,
    SourceItem,
)
from pydantic import ValidationError

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
CENT = Decimal("0.01")
REFUND_SUFFIX = "~refund"
"""Appended to an order's id for the credit note of the money refunded on it."""

#: Shipmondo's ``line_type`` values -> the canonical line kind.
LINE_KINDS: dict[str, LineKind] = {
    "item": LineKind.GOODS,
    "shipping": LineKind.SHIPPING,
    "payment_fee": LineKind.FEE,
    "discount": LineKind.DISCOUNT,
}


class MappingError(ValueError):
    """A field that cannot be read; the message names the field and the value."""


class FiguresDisagree(MappingError):
    """Figures that do not add up (a person must look: the order is quarantined)."""


@dataclass(frozen=True)
class Readiness:
    """Which orders are ready to be booked ("handled"): an empty list allows any value."""

    order_statuses: tuple[str, ...] = ()
    fulfillment_statuses: tuple[str, ...] = ("fulfilled",)
    payment_statuses: tuple[str, ...] = ()

    def not_ready(self, order: dict[str, Any]) -> str | None:
        """Why the order is not ready yet, in the operator's words; None when it is."""
        for key, allowed in (("order_status", self.order_statuses),
                             ("fulfillment_status", self.fulfillment_statuses),
                             ("payment_status", self.payment_statuses)):
            value = order.get(key)
            if allowed and value not in allowed:
                return (f"not handled yet: {key} is {value if value is not None else 'not set'}"
                        f" (transferred when it is {' or '.join(allowed)})")
        return None


@dataclass(frozen=True)
class Options:
    readiness: Readiness = field(default_factory=Readiness)
    shops: tuple[str, ...] = ()
    """``source_name`` values to transfer; empty: every shop."""
    seller_country: str = "DK"


# -- reading the spec's strings strictly ------------------------------------------------
def _text(record: dict[str, Any], key: str, where: str) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MappingError(f"{where}{key} {str(value)[:40]!r} is not text")
    return str(value).strip() or None


def _amount(record: dict[str, Any], key: str, where: str, *, required: bool = True) -> Decimal | None:
    """A money string ("125.0", "-20.00") as Decimal to the øre; a third decimal is refused."""
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise MappingError(f"{where}{key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MappingError(f"{where}{key} {str(value)[:40]!r} is not an amount")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingError(f"{where}{key} {str(value)[:40]!r} is not an amount") from None
    if not number.is_finite():
        raise MappingError(f"{where}{key} {value!r} is not an amount")
    if number != number.quantize(CENT):
        raise MappingError(f"{where}{key} {value!r} has more than two decimals")
    return number.quantize(CENT)


def _quantity(record: dict[str, Any], key: str, where: str) -> Decimal:
    value = record.get(key)
    try:
        number = Decimal(str(value).strip()) if value not in (None, "") and not isinstance(value, bool) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number == 0:
        raise MappingError(f"{where}{key} {str(value)[:40]!r} is not a quantity")
    return number.normalize() if number == number.to_integral() else number


def _rate(record: dict[str, Any], key: str, where: str) -> Decimal:
    """``vat_percent`` as Shipmondo states it (a fraction, "0.25") -> percent (25)."""
    value = record.get(key)
    if value is None or value == "":
        raise MappingError(f"{where}{key} is missing")
    try:
        fraction = Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingError(f"{where}{key} {str(value)[:40]!r} is not a rate") from None
    if not fraction.is_finite() or fraction < 0 or fraction >= 1:
        raise MappingError(f"{where}{key} {value!r} is not a fraction between 0 and 1 (Shipmondo states 25 % as "
                           "\"0.25\")")
    return (fraction * 100).normalize() if fraction else Decimal(0)


def _moment(record: dict[str, Any], key: str, where: str = "") -> datetime | None:
    value = record.get(key)
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise MappingError(f"{where}{key} {str(value)[:40]!r} is not a timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=COPENHAGEN)
    return moment


def _day(moment: datetime | None) -> date | None:
    """The day in Denmark (the seller's books) of a timestamp with any offset."""
    return moment.astimezone(COPENHAGEN).date() if moment else None


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# -- the parts ---------------------------------------------------------------------------
def customer_from(bill_to: Any) -> Customer:
    """``bill_to``: a business when it states a VAT number (its ``name`` is the company,
    ``attention`` the person), else a person whose last word is the last name."""
    if not isinstance(bill_to, dict):
        raise MappingError("bill_to is missing")
    where = "bill_to."
    name = _text(bill_to, "name", where)
    email = _text(bill_to, "email", where)
    country = _text(bill_to, "country_code", where)
    zipcode = _text(bill_to, "zipcode", where)
    vat_no = _text(bill_to, "vat_no", where)
    if not name and not email:
        raise MappingError("bill_to has neither a name nor an e-mail")
    if email:
        source_id = "email:" + email.lower()
    else:
        source_id = f"name:{(name or '').lower()}|{zipcode or ''}|{(country or '').upper()}"
    company = first = last = None
    if vat_no:
        company = name
        person = _text(bill_to, "attention", where)
    else:
        person = name
    if person:
        *given, family = person.split()
        first, last = (" ".join(given) or None), family
    street = ", ".join(p for p in (_text(bill_to, "address1", where), _text(bill_to, "address2", where)) if p)
    return Customer(
        source_id=source_id[:200],
        company=company,
        first_name=first,
        last_name=last,
        email=email,
        phone=_text(bill_to, "mobile", where) or _text(bill_to, "phone", where),
        vat_id=vat_no,
        address=Address(street=street or None, zip=zipcode, city=_text(bill_to, "city", where),
                        country=country.upper() if country else None),
    )


@dataclass(frozen=True)
class _Sums:
    net: Decimal
    vat: Decimal
    gross: Decimal


def lines_from(order_lines: Any, currency: str) -> tuple[list[Line], _Sums, set[Decimal]]:
    if not isinstance(order_lines, list) or not order_lines:
        raise MappingError("order_lines is missing or empty")
    lines: list[Line] = []
    net_sum = vat_sum = gross_sum = Decimal("0.00")
    rates: set[Decimal] = set()
    for index, item in enumerate(order_lines, start=1):
        where = f"order line {index} "
        if not isinstance(item, dict):
            raise MappingError(f"{where}is not an object")
        line_type = _text(item, "line_type", where) or "item"
        if line_type not in LINE_KINDS:
            raise MappingError(f"{where}has line_type {line_type!r}, which ledgerlink does not book "
                               f"(known: {', '.join(LINE_KINDS)})")
        line_currency = (_text(item, "currency_code", where) or currency).upper()
        if line_currency != currency:
            raise MappingError(f"{where}is in {line_currency} but the order in {currency}")
        quantity = _quantity(item, "quantity", where)
        net = _amount(item, "amount_excluding_vat", where)
        vat = _amount(item, "vat_amount", where)
        gross = _amount(item, "amount_including_vat", where)
        rate = _rate(item, "vat_percent", where)
        assert net is not None and vat is not None and gross is not None
        if net + vat != gross:
            raise FiguresDisagree(f"{where}({_text(item, 'item_name', where) or line_type}) states "
                               f"{net} + VAT {vat} = {gross} {currency}, which does not add up "
                               f"({net + vat})")
        unit = _amount(item, "unit_price_excluding_vat", where, required=False)
        discount = _amount(item, "discount_amount_excluding_vat", where, required=False) or Decimal("0.00")
        description = _text(item, "item_name", where) or {"shipping": "Shipping", "payment_fee": "Payment fee",
                                                          "discount": "Discount"}.get(line_type, f"line {index}")
        variant = _text(item, "item_variant_code", where)
        if variant:
            description = f"{description} ({variant})"
        if unit is not None and _money(unit * quantity) - discount != net:
            raise FiguresDisagree(f"{where}({description}) states {quantity} x {unit} - discount {discount} "
                               f"= {net} {currency}, which does not add up ({_money(unit * quantity) - discount})")
        if discount:
            description = f"{description}, discount {discount} {currency} excl. VAT"
        lines.append(Line(
            description=description,
            quantity=quantity,
            total=net,
            tax_amount=vat,
            tax_rate=rate,
            price_basis="net",
            unit_price=unit if not discount else None,
            kind=LINE_KINDS[line_type],
            sku=_text(item, "item_sku", where),
        ))
        net_sum += net
        vat_sum += vat
        gross_sum += gross
        rates.add(rate)
    return lines, _Sums(net_sum, vat_sum, gross_sum), rates


def _check_summary(details: dict[str, Any], sums: _Sums, currency: str) -> Decimal:
    """payment_details' net, VAT and gross against the lines' sums; the stated gross."""
    where = "payment_details."
    stated = {key: _amount(details, key, where) for key in ("amount_excluding_vat", "vat_amount",
                                                            "amount_including_vat")}
    ours = {"amount_excluding_vat": sums.net, "vat_amount": sums.vat, "amount_including_vat": sums.gross}
    words = {"amount_excluding_vat": "net", "vat_amount": "VAT", "amount_including_vat": "gross"}
    wrong = [f"{words[k]} {ours[k]} {currency} but payment_details state {stated[k]} {currency}"
             for k in ours if stated[k] != ours[k]]
    if wrong:
        raise FiguresDisagree("the order lines do not add up to the order's summary: lines give " + "; ".join(wrong))
    gross = stated["amount_including_vat"]
    assert gross is not None
    return gross


# -- the order -----------------------------------------------------------------------------
def documents_from_order(order: dict[str, Any], options: Options) -> list[SourceItem]:
    """The sale and, where money was refunded, its refund credit note (see the module
    docstring). ``order["id"]`` must be set (the caller checks). Never raises for the
    order's content: what cannot be read is a :class:`BrokenDocument` naming it."""
    ref = str(order["id"]).strip()
    number = order.get("order_id") if isinstance(order.get("order_id"), str) else None
    cursor = order.get("updated_at") if isinstance(order.get("updated_at"), str) else None
    label = f"Shipmondo order {number or ref}"
    try:
        sale = _sale(order, ref, number, options)
    except MappingError as exc:
        # Figures that disagree need a person; an unreadable field is a plain failure.
        return [BrokenDocument(ref, f"{label}: {exc}", number=number, quarantine=isinstance(exc, FiguresDisagree),
                               cursor=cursor)]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "order"
        return [BrokenDocument(ref, f"{label}: {where}: {first['msg']}", number=number, cursor=cursor)]
    items: list[SourceItem] = [sale]
    refund = _refund(order, sale, label)
    if refund is not None:
        items.append(refund)
    return items


def _sale(order: dict[str, Any], ref: str, number: str | None, options: Options) -> Document:
    details = order.get("payment_details")
    if not isinstance(details, dict):
        raise MappingError("payment_details is missing")
    currency = (_text(details, "currency_code", "payment_details.") or "").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise MappingError(f"payment_details.currency_code {currency or 'missing'!r} is not a currency code")
    lines, sums, _rates = lines_from(order.get("order_lines"), currency)
    stated_gross = _check_summary(details, sums, currency)
    customer = customer_from(order.get("bill_to"))
    ship_to: dict[str, Any] = order["ship_to"] if isinstance(order.get("ship_to"), dict) else {}
    delivery = _text(ship_to, "country_code", "ship_to.")
    ordered = _moment(order, "ordered_at") or _moment(order, "created_at")
    handled = _handled_at(order)
    captured = _amount(details, "captured_amount", "payment_details.", required=False) or Decimal("0.00")
    if captured < 0 or captured > stated_gross:
        raise FiguresDisagree(f"payment_details.captured_amount {captured} {currency} is outside 0 to the order's "
                           f"total {stated_gross} {currency}, which does not add up")
    payments = []
    if captured:
        payments.append(Payment(amount=captured, date=_day(handled or ordered),
                                method=_text(details, "payment_method", "payment_details."),
                                reference=_text(details, "transaction_id", "payment_details.")))
    shop = _text(order, "source_name", "")
    status = _text(order, "order_status", "") or "unknown"
    cancelled = status == "cancelled"
    skip = None
    if options.shops and shop not in options.shops:
        skip = f"shop {shop or '(none)'} is not transferred (shops: {', '.join(options.shops)})"
    elif not cancelled:
        skip = options.readiness.not_ready(order)
    cursor = order.get("updated_at") if isinstance(order.get("updated_at"), str) else None
    return Document(
        source_ref=ref,
        number=number,
        currency=currency,
        order_date=_day(ordered),
        invoice_date=_day(handled) or _day(ordered),
        payment_date=_day(handled or ordered) if captured >= stated_gross and captured else None,
        customer=customer,
        lines=lines,
        payments=payments,
        stated_total=stated_gross,
        seller_country=options.seller_country,
        delivery_country=delivery.upper() if delivery else None,
        shop=shop,
        source_status="/".join(str(order.get(k)) for k in ("order_status", "fulfillment_status", "payment_status")),
        cancelled=cancelled,
        skip_reason=skip,
        cursor=cursor,
    )


def _handled_at(order: dict[str, Any]) -> datetime | None:
    """When the order was handled: its first fulfillment (shipment) was created."""
    fulfillments = order.get("order_fulfillments")
    if not isinstance(fulfillments, list):
        return None
    moments = [m for index, f in enumerate(fulfillments, start=1) if isinstance(f, dict)
               for m in [_moment(f, "created_at", f"order_fulfillments {index} ")] if m is not None]
    return min(moments) if moments else None


def _refund(order: dict[str, Any], sale: Document, label: str) -> SourceItem | None:
    """The credit note for the money refunded on a sale that is not cancelled (a
    cancelled order is reversed as a whole, by the pipeline's ``on_cancel``)."""
    details = order["payment_details"]
    ref = sale.source_ref + REFUND_SUFFIX
    number = f"{sale.number}-refund" if sale.number else None
    try:
        refunded = _amount(details, "refunded_amount", "payment_details.", required=False) or Decimal("0.00")
    except MappingError as exc:
        return BrokenDocument(ref, f"{label}: {exc}", number=number, cursor=sale.cursor)
    if not refunded or sale.cancelled:
        return None
    gross = sale.total_gross
    captured = sale.paid_amount
    if refunded < 0 or refunded > captured:
        return BrokenDocument(ref, f"{label}: {refunded} {sale.currency} refunded of {captured} {sale.currency} "
                              "captured, which does not add up", number=number, quarantine=True, cursor=sale.cursor)
    if refunded == gross:
        lines = [line.model_copy(update={"total": -line.total, "tax_amount": -(line.tax_amount or 0),
                                         "unit_price": None if line.unit_price is None else -line.unit_price})
                 for line in sale.lines]
    else:
        rates = {line.tax_rate for line in sale.lines}
        if len(rates) != 1:
            return BrokenDocument(
                ref, f"{label}: {refunded} {sale.currency} of {gross} {sale.currency} refunded on an order with "
                f"several VAT rates ({', '.join(f'{r} %' for r in sorted(rates))}): Shipmondo does not say which "
                "lines, so the credit note's VAT cannot be split; book it by hand", number=number, quarantine=True,
                cursor=sale.cursor)
        [rate] = rates
        tax = _money(refunded * rate / (100 + rate))
        lines = [Line(description=f"Refund on order {sale.number or sale.source_ref}", quantity=Decimal(1),
                      total=-(refunded - tax), tax_amount=-tax, tax_rate=rate, price_basis="net",
                      kind=sale.lines[0].kind)]
    return sale.model_copy(update={
        "source_ref": ref,
        "number": number,
        "kind": DocumentKind.CREDIT_NOTE,
        "reverses": sale.source_ref,
        "lines": lines,
        # The money paid back: a refund on a credit note is positive (docs/records.md).
        "payments": [Payment(amount=refunded, method=sale.payments[0].method if sale.payments else None,
                             reference=sale.payments[0].reference if sale.payments else None)],
        "stated_total": -refunded,
        # Shipmondo states no refund date: the credit note is dated the day it is written,
        # as ledgerlink's own reversals are (a refund never changes a period already filed).
        "invoice_date": None,
        "order_date": None,
        "payment_date": None,
        "cancelled": False,
    })


__all__ = ["LINE_KINDS", "REFUND_SUFFIX", "FiguresDisagree", "MappingError", "Options", "Readiness", "customer_from",
           "documents_from_order", "lines_from"]
