"""Billbee order -> canonical Document, to the cent.

Billbee prices gross: an item's ``TotalPrice`` is the gross line total after its
discount and ``TaxAmount`` the VAT inside it; both are kept as Billbee states
them and the net is derived (see ``ledgerlink._records.Line``). ``TotalCost`` is
kept as the document's stated total, so an order whose parts do not add up is
reported by ``Document.consistency_problems()`` instead of being "fixed".

Anything that cannot be read (missing field, wrong type, unknown tax index)
raises :class:`MappingError` with one line naming the order and the field.

Billbee's order states (``ORDER_STATES``: the names operators write in
``order_states`` and their ids) and payment types are vendor vocabulary and live
here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Literal

from ledgerlink import (
    Address,
    Customer,
    Document,
    DocumentKind,
    Line,
    LineKind,
    Payment,
    TaxTreatment,
    money,
    parse_decimal,
)
from pydantic import ValidationError

# -- order states and payment types ------------------------------------------------
# The state ids and English names are those of the API description
# (``PUT /orders/{id}/orderstate``); the names are written in snake case so they
# can be typed in a config file (``demand_note_1`` for "demand note 1").

ORDER_STATES: dict[str, int] = {
    "ordered": 1,
    "confirmed": 2,
    "paid": 3,
    "shipped": 4,
    "reclamation": 5,
    "deleted": 6,
    "closed": 7,
    "canceled": 8,
    "archived": 9,
    "demand_note_1": 11,
    "demand_note_2": 12,
    "packed": 13,
    "offered": 14,
    "payment_reminder": 15,
    "fulfilling": 16,
}
"""State name -> ``OrderStateId``. 10 ("not used") and 17 (undocumented) have no name."""

STATE_NAMES: dict[int, str] = {v: k for k, v in ORDER_STATES.items()}

VOID_STATES = frozenset({ORDER_STATES["canceled"], ORDER_STATES["deleted"]})
"""States in which an order no longer stands (``Document.cancelled``): canceled (Storniert)
and deleted (Gelöscht). An order in them after its transfer is reported "cancelled after
transfer", never left silently booked."""

# Spellings people use for the same state.
_ALIASES = {"cancelled": "canceled", "demand_note1": "demand_note_1", "demand_note2": "demand_note_2"}


def normalise_state_name(name: str) -> str:
    key = "_".join(name.strip().lower().replace("-", " ").split())
    return _ALIASES.get(key, key)


def state_id(name: str) -> int:
    """The id of a state name; ``ValueError`` listing the valid names if unknown."""
    key = normalise_state_name(name)
    if key not in ORDER_STATES:
        raise ValueError(
            f"unknown Billbee order state {name!r}; valid names are: {', '.join(ORDER_STATES)}"
        )
    return ORDER_STATES[key]


def state_name(state: object) -> str:
    """The name of a state id, or ``"state <id>"`` for ids without a name."""
    if isinstance(state, int) and not isinstance(state, bool) and state in STATE_NAMES:
        return STATE_NAMES[state]
    return f"state {state}"


VOUCHER_PAYMENT_TYPE = 6
"""``PaymentType`` 6, Gutschein: a payment made with a voucher."""

PAYMENT_TYPES: dict[int, str] = {
    1: "bank transfer",
    2: "cash on delivery",
    3: "PayPal",
    4: "cash",
    6: "voucher",
    22: "other",
    26: "invoice",
    31: "credit card",
    59: "prepayment",
}
"""The common ``PaymentType`` ids (C# SDK ``PaymentTypeEnum``); others are shown by id."""


def payment_type_name(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and value in PAYMENT_TYPES:
        return PAYMENT_TYPES[value]
    return f"payment type {value}"


ShippingTax = Literal["highest", "regular", "reduced", "proportional"]


class MappingError(ValueError):
    """An order that cannot be mapped; the message is one line for the operator."""

    def __init__(self, message: str, *, quarantine: bool = False) -> None:
        super().__init__(message)
        self.quarantine = quarantine


@dataclass(frozen=True)
class MappingOptions:
    tz: tzinfo
    shipping_tax: ShippingTax = "highest"
    customer_numbers: bool = False


# VatMode (C# SDK VatModeEnum) -> the treatment Billbee states.
VAT_MODES: dict[int, TaxTreatment | None] = {
    0: TaxTreatment.STANDARD,  # DisplayVat: VAT charged at the order's rates
    1: TaxTreatment.SMALL_BUSINESS,  # NoVatKleinunternehmer
    2: TaxTreatment.INTRA_EU_SUPPLY,  # NoVatInnergemeinschaftlicheLieferung
    3: TaxTreatment.EXPORT,  # NoVatAusfuhrDrittland
    4: None,  # NoVatDifferenzbesteuerung: margin scheme, needs an operator's rule
}
ZERO_RATE_MODES = {1, 2, 3}


# -- small readers -------------------------------------------------------------
def parse_datetime(value: Any, tz: tzinfo, what: str) -> datetime | None:
    """A Billbee date-time, as an aware datetime in ``tz``.

    Billbee sends naive strings (read in ``tz``) with 0 to 7 fraction digits; the
    SDK fixtures carry ``+00:00`` or ``Z`` (converted to ``tz``).
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MappingError(f"{what} {value!r} is not a date")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, tail = rest[:digits], rest[digits:]
        # Python reads at most 6 fraction digits; .NET writes up to 7.
        text = f"{head}.{(fraction[:6] or '0').ljust(6, '0')}{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MappingError(f"{what} {value!r} is not a date") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=tz)
    return parsed.astimezone(tz)


def _date(value: Any, tz: tzinfo, what: str) -> date | None:
    parsed = parse_datetime(value, tz, what)
    return parsed.date() if parsed else None


def _amount(value: Any, what: str) -> Decimal:
    if isinstance(value, str):
        raise MappingError(f"{what} {value!r} is a string, not a number")
    try:
        return parse_decimal(value, what)
    except ValueError as exc:
        raise MappingError(str(exc)) from None


def _optional_amount(value: Any, what: str) -> Decimal | None:
    return None if value is None else _amount(value, what)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{what} is not an object")
    return value


def order_id(order: Any) -> str:
    """``BillBeeOrderId`` as text, or MappingError."""
    if not isinstance(order, dict):
        raise MappingError("the order is not a JSON object")
    value = order.get("BillBeeOrderId")
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(f"BillBeeOrderId {value!r} is missing or not a whole number")
    return str(value)


def invoice_number(order: dict[str, Any]) -> str | None:
    """Prefix + number + postfix, as printed on the invoice; None without an invoice."""
    number = order.get("InvoiceNumber")
    if number is None or number == 0 or number == "":
        return None
    if isinstance(number, bool) or not isinstance(number, int):
        raise MappingError(f"InvoiceNumber {number!r} is not a whole number")
    prefix = order.get("InvoiceNumberPrefix") or ""
    postfix = order.get("InvoiceNumberPostfix") or ""
    return f"{prefix}{number}{postfix}"


def shop_ids(order: dict[str, Any]) -> set[int]:
    """The ids by which Billbee names the order's shop connection."""
    seller = order.get("Seller") if isinstance(order.get("Seller"), dict) else {}
    ids = {order.get("ApiAccountId"), (seller or {}).get("BillbeeShopId")}
    return {i for i in ids if isinstance(i, int) and not isinstance(i, bool)}


def shop_name(order: dict[str, Any]) -> str | None:
    seller = order.get("Seller") if isinstance(order.get("Seller"), dict) else {}
    return _text((seller or {}).get("BillbeeShopName")) or _text(order.get("ApiAccountName"))


# -- the customer --------------------------------------------------------------
def _street(address: dict[str, Any]) -> str | None:
    parts = [_text(address.get("Street")), _text(address.get("HouseNumber"))]
    return " ".join(p for p in parts if p) or None


def _country(address: dict[str, Any]) -> str | None:
    for key in ("CountryISO2", "Country"):
        value = _text(address.get(key))
        if value and len(value) == 2 and value.isalpha():
            return value.upper()
    value = _text(address.get("CountryISO2")) or _text(address.get("Country"))
    if value:
        raise MappingError(f"invoice address country {value!r} is not an ISO 3166 two-letter code")
    return None


def order_customer(order: dict[str, Any], options: MappingOptions) -> Customer:
    ref = order_id(order)
    address = _dict(order.get("InvoiceAddress"), "InvoiceAddress")
    customer = _dict(order.get("Customer"), "Customer")
    buyer = _dict(order.get("Buyer"), "Buyer")
    email = _text(address.get("Email")) or _text(customer.get("Email")) or _text(buyer.get("Email"))
    customer_id = customer.get("Id")
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        source_id = str(customer_id)
    elif email:
        source_id = f"email:{email.lower()}"
    else:
        source_id = f"order:{ref}"
    first = _text(address.get("FirstName"))
    last = _text(address.get("LastName"))
    company = _text(address.get("Company"))
    if not (first or last or company):
        name = _text(customer.get("Name"))
        last = name
    person = " ".join(p for p in (first, last) if p)
    number = customer.get("Number")
    extra: dict[str, Any] = {}
    if isinstance(number, int) and not isinstance(number, bool):
        extra["billbee_customer_number"] = number
    return Customer(
        source_id=source_id,
        customer_number=str(number)
        if options.customer_numbers and isinstance(number, int) and number
        else None,
        first_name=first,
        last_name=last,
        company=company,
        email=email,
        phone=_text(address.get("Phone")) or _text(customer.get("Tel1")),
        vat_id=_text(order.get("CustomerVatId"))
        or _text(order.get("VatId"))
        or _text(customer.get("VatId")),
        address=Address(
            name=company or person or None,
            street=_street(address),
            street2=_text(address.get("Line2")) or _text(address.get("NameAddition")),
            zip=_text(address.get("Zip")),
            city=_text(address.get("City")),
            country=_country(address),
        )
        if address
        else None,
        language=_text(order.get("LanguageCode")),
        extra=extra,
    )


def api_customer(data: dict[str, Any], options: MappingOptions) -> Customer:
    """A ``CustomerApiModel`` (``GET /customers``) as a canonical customer.

    Billbee keeps one ``Name`` per customer (no first/last split, no address in
    this model); it goes into ``last_name`` so name matching sees "first last".
    """
    customer_id = data.get("Id")
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        raise MappingError(f"customer Id {customer_id!r} is missing or not a whole number")
    mail = data.get("DefaultMailAddress") if isinstance(data.get("DefaultMailAddress"), dict) else {}
    number = data.get("Number")
    return Customer(
        source_id=str(customer_id),
        customer_number=str(number)
        if options.customer_numbers and isinstance(number, int) and number
        else None,
        last_name=_text(data.get("Name")),
        email=_text(data.get("Email")) or _text((mail or {}).get("Value")),
        phone=_text(data.get("Tel1")),
        vat_id=_text(data.get("VatId")),
        extra={"billbee_customer_number": number} if isinstance(number, int) else {},
    )


# -- lines ---------------------------------------------------------------------
def _rate(order: dict[str, Any], index: Any, vat_mode: int, what: str) -> Decimal:
    if vat_mode in ZERO_RATE_MODES:
        return Decimal(0)
    if index is None or index == 0:
        return Decimal(0)
    if index in (1, 2) and not isinstance(index, bool):
        key = f"TaxRate{index}"
        value = order.get(key)
        if value is None:
            raise MappingError(f"{what} has TaxIndex {index} but the order has no {key}")
        return _amount(value, key)
    raise MappingError(f"{what} has an unknown TaxIndex {index!r} (expected 0, 1 or 2)")


def _item_title(item: dict[str, Any], position: int) -> str:
    product = _dict(item.get("Product"), f"item {position} Product")
    title = _text(product.get("Title")) or _text(item.get("InvoiceSKU")) or f"Item {position}"
    attributes = [
        f"{_text(a.get('Name'))}: {_text(a.get('Value'))}"
        for a in item.get("Attributes") or []
        if isinstance(a, dict) and _text(a.get("Name")) and _text(a.get("Value"))
    ]
    if attributes:
        title = f"{title} ({', '.join(attributes)})"
    return title


def _item_line(order: dict[str, Any], item: dict[str, Any], position: int, vat_mode: int, *, credit: bool) -> Line:
    what = f"item {position}"
    product = _dict(item.get("Product"), f"{what} Product")
    title = _item_title(item, position)
    discount = _optional_amount(item.get("Discount"), f"{what} Discount")
    if discount:
        title = f"{title}, {discount.normalize():f} % discount"
    total = _amount(item.get("TotalPrice"), f"{what} TotalPrice")
    quantity = _amount(item.get("Quantity"), f"{what} Quantity")
    if quantity == 0:
        raise MappingError(f"{what} ({title[:40]!r}) has quantity 0")
    if credit:
        # A credit note keeps positive quantities; the sign is in the totals.
        quantity = abs(quantity)
    elif quantity < 0 < total:
        raise MappingError(
            f"{what} ({title[:40]!r}) has a negative quantity {quantity.normalize():f} but a positive total "
            f"{money(total)}; a person must check the order",
            quarantine=True,
        )
    return Line(
        description=title,
        quantity=quantity,
        total=total,
        tax_rate=_rate(order, item.get("TaxIndex"), vat_mode, what),
        price_basis="gross",
        tax_amount=_optional_amount(item.get("TaxAmount"), f"{what} TaxAmount"),
        kind=LineKind.DISCOUNT if total < 0 and not credit else LineKind.GOODS,
        sku=_text(item.get("InvoiceSKU")) or _text(product.get("SKU")),
    )


def _extra_rates(
    order: dict[str, Any], items: list[Line], vat_mode: int, options: MappingOptions
) -> list[tuple[Decimal, Decimal]]:
    """How shipping and adjustment are taxed: (rate, share of the amount) pairs."""
    if vat_mode in ZERO_RATE_MODES:
        return [(Decimal(0), Decimal(1))]
    goods = [line for line in items if line.kind == LineKind.GOODS and line.total != 0]
    if options.shipping_tax == "regular" or (not goods and options.shipping_tax != "reduced"):
        return [(_rate(order, 1, vat_mode, "shipping"), Decimal(1))]
    if options.shipping_tax == "reduced":
        return [(_rate(order, 2, vat_mode, "shipping"), Decimal(1))]
    if options.shipping_tax == "highest":
        return [(max(line.tax_rate for line in goods), Decimal(1))]
    by_rate: dict[Decimal, Decimal] = {}
    for line in goods:
        by_rate[line.tax_rate] = by_rate.get(line.tax_rate, Decimal(0)) + line.total
    whole = sum(by_rate.values(), Decimal(0))
    return [(rate, part / whole) for rate, part in sorted(by_rate.items(), reverse=True)]


def _split_lines(
    amount: Decimal, description: str, kind: LineKind, rates: list[tuple[Decimal, Decimal]]
) -> list[Line]:
    """One line per rate; the parts add up to ``amount`` to the cent."""
    lines: list[Line] = []
    rest = money(amount)
    for index, (rate, share) in enumerate(rates):
        part = rest if index == len(rates) - 1 else money(amount * share)
        rest -= part
        label = description if len(rates) == 1 else f"{description} ({rate.normalize():f} %)"
        if part != 0:
            lines.append(Line(description=label, total=part, tax_rate=rate, kind=kind))
    return lines


# -- shipping VAT as Billbee states it -------------------------------------------
@dataclass(frozen=True)
class StatedFee:
    """One ``AdditionalFees[]`` entry of type ``ShipCost`` from ``GET /orders/invoices``."""

    gross: Decimal
    vat: Decimal
    rate: Decimal


SHIPPING_FEE_TYPES = frozenset({"shipcost"})
"""``AdditionalFees[].Type`` values that are the shipping cost (compared case-insensitively)."""


def shipping_fees(invoice: Any) -> list[StatedFee]:
    """The shipping fees an ``InvoiceApiModel`` states (gross, VAT, rate), as given."""
    if not isinstance(invoice, dict):
        raise MappingError("the invoice from GET /orders/invoices is not an object")
    fees: list[StatedFee] = []
    for i, fee in enumerate(invoice.get("AdditionalFees") or [], start=1):
        if not isinstance(fee, dict):
            raise MappingError(f"invoice fee {i} is not an object")
        if str(fee.get("Type") or "").strip().lower() not in SHIPPING_FEE_TYPES:
            continue
        fees.append(StatedFee(
            gross=_amount(fee.get("Gross"), f"invoice fee {i} Gross"),
            vat=_amount(fee.get("VatAmount"), f"invoice fee {i} VatAmount"),
            rate=_amount(fee.get("VatRate"), f"invoice fee {i} VatRate"),
        ))
    return fees


def _rates_text(parts: dict[Decimal, Decimal]) -> str:
    return ", ".join(f"{money(amount)} at {rate.normalize():f} %" for rate, amount in sorted(parts.items(), reverse=True))


def _stated_shipping_lines(
    shipping: Decimal, computed: list[Line], fees: list[StatedFee], vat_mode: int
) -> list[Line]:
    """The shipping lines as Billbee's invoice states them (gross and VAT per rate),
    after checking that they are the split we computed: the same amount, the same
    rates, each rate's part within a cent. Otherwise the order is quarantined with
    both splits."""
    stated: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for fee in fees:
        gross, vat = fee.gross, fee.vat
        if gross != 0 and (gross < 0) != (shipping < 0):  # a cancellation's invoice may state them positive
            gross, vat = -gross, -vat
        rate = Decimal(0) if vat_mode in ZERO_RATE_MODES and fee.vat == 0 else fee.rate
        old_gross, old_vat = stated.get(rate, (Decimal(0), Decimal(0)))
        stated[rate] = (old_gross + gross, old_vat + vat)
    stated = {rate: figures for rate, figures in stated.items() if money(figures[0]) != 0 or money(figures[1]) != 0}
    stated_gross = {rate: gross for rate, (gross, _) in stated.items()}
    ours = {line.tax_rate: money(line.total) for line in computed}
    stated_sum = money(sum(stated_gross.values(), Decimal(0)))
    if stated_sum != money(shipping):
        raise MappingError(
            f"Billbee's invoice states shipping fees of {stated_sum} but the order's ShippingCost is "
            f"{money(shipping)}; a person must check the order", quarantine=True)
    same = set(ours) == set(stated_gross) and all(
        abs(money(stated_gross[rate]) - ours[rate]) <= Decimal("0.01") for rate in ours)
    if not same:
        raise MappingError(
            f"Billbee's invoice states the shipping VAT as {_rates_text(stated_gross)}, but shipping_tax gives "
            f"{_rates_text(ours)}; set shipping_tax to how Billbee taxes shipping, or correct the order",
            quarantine=True)
    lines = []
    for rate, (gross, vat) in sorted(stated.items(), reverse=True):
        label = "Shipping" if len(stated) == 1 else f"Shipping ({rate.normalize():f} %)"
        lines.append(Line(description=label, total=money(gross), tax_rate=rate, tax_amount=vat,
                          kind=LineKind.SHIPPING))
    return lines


# -- the order -----------------------------------------------------------------
def map_order(
    order: Any, options: MappingOptions, *, fees: list[StatedFee] | None = None, reverses: str | None = None
) -> Document:
    """Map one Billbee order; MappingError names what could not be read.

    ``fees``: the shipping fees Billbee's invoice states (``GET /orders/invoices``),
    None when not read. ``reverses``: for a cancellation order (``IsCancelationFor``),
    the ``BillBeeOrderId`` of the order it cancels, as the source found it; without
    it a cancellation order is quarantined."""
    ref = order_id(order)
    try:
        return _map(order, ref, options, fees, reverses)
    except MappingError as exc:
        raise MappingError(f"order {ref}: {exc}", quarantine=exc.quarantine) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg")).removeprefix("Value error, ")  # pydantic's wording, not ours
        raise MappingError(f"order {ref}: {where or 'value'}: {message}") from None


def cancels(order: dict[str, Any]) -> str | None:
    """``IsCancelationFor``: the external id of the order this one cancels, or None."""
    value = order.get("IsCancelationFor")
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    return _text(value)


def _broken_text(value: Any, where: str = "") -> str | None:
    """Where the order holds U+FFFD: bytes that were not UTF-8 (httpx replaces them)."""
    if isinstance(value, str):
        return where or "the order" if "\ufffd" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _broken_text(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def _negate(value: Any) -> Any:
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return -value
    return value


def _as_credit(order: dict[str, Any], items: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """A cancellation order with the amounts of a credit note (negative). Billbee's
    sign convention for cancellation orders is not documented: when the order adds up
    to a positive total (the original's figures), every amount is negated; when it is
    already negative it is kept. Returns (order, items, negated)."""
    total = _optional_amount(order.get("TotalCost"), "TotalCost")
    if total is None:
        total = sum((_amount(i.get("TotalPrice"), f"item {n} TotalPrice") for n, i in enumerate(items, start=1)),
                    Decimal(0))
    if total <= 0:
        return order, items, False
    flipped = dict(order)
    for key in ("TotalCost", "ShippingCost", "AdjustmentCost"):
        flipped[key] = _negate(order.get(key))
    new_items = []
    for item in items:
        item = dict(item)
        for key in ("TotalPrice", "TaxAmount", "UnrebatedTotalPrice"):
            item[key] = _negate(item.get(key))
        new_items.append(item)
    return flipped, new_items, True


def _voucher_payments(
    coupons: list[tuple[int, dict[str, Any]]], created: datetime
) -> tuple[list[Payment], Decimal]:
    """Coupon items (``IsCoupon``: Billbee's "tax-free payment") as voucher payments,
    and the amount they cover. The coupon's amount is a means of payment, never a price
    reduction: the goods keep their full price."""
    payments: list[Payment] = []
    covered = Decimal(0)
    for position, item in coupons:
        what = f"item {position}"
        title = _item_title(item, position)
        total = _amount(item.get("TotalPrice"), f"{what} TotalPrice")
        tax = _optional_amount(item.get("TaxAmount"), f"{what} TaxAmount") or Decimal(0)
        if total > 0:
            raise MappingError(
                f"{what} ({title[:40]!r}) is a coupon with a positive amount {money(total)}; a voucher redeemed "
                "reduces what is paid, so a person must check the order", quarantine=True)
        if money(tax) != 0:
            raise MappingError(
                f"{what} ({title[:40]!r}) is a coupon with VAT {money(tax)}; Billbee's coupons are tax-free "
                "payments (multi-purpose vouchers), so a person must check the order", quarantine=True)
        if money(total) == 0:
            continue
        covered += -total
        payments.append(Payment(
            amount=-total,
            date=created.date(),
            method=f"voucher {title}",
            reference=_text(item.get("InvoiceSKU")) or _text(_dict(item.get("Product"), f"{what} Product").get("Id")),
            kind="voucher",
        ))
    return payments, covered


def _map(
    order: dict[str, Any], ref: str, options: MappingOptions, fees: list[StatedFee] | None, reverses: str | None
) -> Document:
    broken = _broken_text(order)
    if broken:
        raise MappingError(
            f"{broken} contains characters that are not valid UTF-8 (shown as \ufffd); "
            "correct the text in Billbee so names and addresses reach the books unharmed",
            quarantine=True,
        )
    tz = options.tz
    vat_mode = order.get("VatMode", 0)
    if vat_mode is None:
        vat_mode = 0
    if isinstance(vat_mode, bool) or vat_mode not in VAT_MODES:
        raise MappingError(f"VatMode {vat_mode!r} is unknown (expected 0 to 4)")
    if vat_mode == 4:
        raise MappingError(
            "VatMode 4 (margin scheme, Differenzbesteuerung) needs a booking rule from the operator",
            quarantine=True,
        )
    created = parse_datetime(order.get("CreatedAt"), tz, "CreatedAt")
    if created is None:
        raise MappingError("CreatedAt is missing")
    raw_items = order.get("OrderItems")
    if not isinstance(raw_items, list):
        raise MappingError("OrderItems is missing or not a list")
    for position, item in enumerate(raw_items, start=1):
        if not isinstance(item, dict):
            raise MappingError(f"item {position} is not an object")
    cancelled_ref = cancels(order)
    credit = cancelled_ref is not None
    negated = False
    if credit:
        if reverses is None:
            raise MappingError(
                f"it is a cancellation of the order with external id {cancelled_ref!r} (IsCancelationFor), "
                "which Billbee does not find; a person must book the cancellation", quarantine=True)
        if any(item.get("IsCoupon") is True for item in raw_items):
            raise MappingError(
                f"it is a cancellation of {cancelled_ref!r} with a coupon item: a voucher refunded on a "
                "cancellation is not written by ledgerlink; book it by hand", quarantine=True)
        order, raw_items, negated = _as_credit(order, raw_items)
    coupons = [(p, item) for p, item in enumerate(raw_items, start=1) if item.get("IsCoupon") is True]
    lines = [
        _item_line(order, item, p, vat_mode, credit=credit)
        for p, item in enumerate(raw_items, start=1)
        if item.get("IsCoupon") is not True
    ]
    if not credit and vat_mode == 0:
        goods_rates = {line.tax_rate for line in lines if line.kind == LineKind.GOODS and line.total > 0}
        for line in lines:
            if line.kind == LineKind.DISCOUNT and goods_rates and line.tax_rate not in goods_rates:
                raise MappingError(
                    f"the discount {line.description[:40]!r} ({money(line.total)}) is at {line.tax_rate.normalize():f} % "
                    f"but the goods are at {', '.join(f'{r.normalize():f} %' for r in sorted(goods_rates))}: a discount "
                    "reduces revenue at the rate of the goods it reduces (a gift voucher is marked IsCoupon in "
                    "Billbee); a person must check the order", quarantine=True)
    rates: list[tuple[Decimal, Decimal]] | None = None
    shipping = _optional_amount(order.get("ShippingCost"), "ShippingCost") or Decimal(0)
    shipping_vat = "none"
    if money(shipping) != 0 or fees:
        rates = _extra_rates(order, lines, vat_mode, options)
        computed = _split_lines(shipping, "Shipping", LineKind.SHIPPING, rates)
        if fees:
            lines += _stated_shipping_lines(shipping, computed, fees, vat_mode)
            shipping_vat = "stated"
        else:
            lines += computed
            shipping_vat = "computed"
    adjustment = _optional_amount(order.get("AdjustmentCost"), "AdjustmentCost") or Decimal(0)
    if money(adjustment) != 0:
        rates = rates or _extra_rates(order, lines, vat_mode, options)
        reason = _text(order.get("AdjustmentReason")) or "Adjustment"
        kind = LineKind.FEE if adjustment > 0 else LineKind.DISCOUNT
        lines += _split_lines(adjustment, reason, kind, rates)
    if not lines:
        raise MappingError("the order has no items")
    total = _amount(order.get("TotalCost"), "TotalCost")
    currency = _text(order.get("Currency"))
    if not currency:
        raise MappingError("Currency is missing")
    paid_at = parse_datetime(order.get("PayedAt"), tz, "PayedAt")
    payments: list[Payment] = []
    vouchers: list[Payment] = []
    covered = Decimal(0)
    if not credit:
        vouchers, covered = _voucher_payments(coupons, created)
        stated_vouchers: list[Payment] = []
        for i, payment in enumerate(order.get("Payments") or [], start=1):
            payment = _dict(payment, f"payment {i}")
            paid_with: Literal["money", "voucher"] = (
                "voucher" if payment.get("PaymentType") == VOUCHER_PAYMENT_TYPE else "money")
            entry = Payment(
                amount=_amount(payment.get("PayValue"), f"payment {i} PayValue"),
                date=_date(payment.get("PayDate"), tz, f"payment {i} PayDate"),
                method=payment_type_name(payment.get("PaymentType")),
                reference=_text(payment.get("TransactionId")) or _text(payment.get("Purpose")),
                kind=paid_with,
            )
            (stated_vouchers if paid_with == "voucher" else payments).append(entry)
        if stated_vouchers:
            stated_sum = money(sum((p.amount for p in stated_vouchers), Decimal(0)))
            if vouchers and stated_sum != money(covered):
                raise MappingError(
                    f"its coupon items cover {money(covered)} but its voucher payments (PaymentType 6) add up to "
                    f"{stated_sum}; a person must check the order", quarantine=True)
            if not vouchers:
                # Paid with a voucher that is no coupon item: the goods already stand at full
                # price, and TotalCost is what they cost.
                covered = Decimal(0)
            vouchers = stated_vouchers
        if not payments and paid_at is not None and money(total) > 0:
            # Billbee marks an order paid by its pay date (PaidAmount is often 0): the
            # whole order (what is left after vouchers) counts as paid on that day.
            payments.append(
                Payment(
                    amount=total,
                    date=paid_at.date(),
                    method=payment_type_name(order.get("PaymentMethod")),
                    reference=_text(order.get("PaymentReference")),
                )
            )
    modified = parse_datetime(order.get("LastModifiedAt"), tz, "LastModifiedAt")
    state = order.get("State")
    extra: dict[str, Any] = {
        "billbee_order_id": int(ref),
        "order_number": _text(order.get("OrderNumber")),
        "external_id": _text(order.get("Id")),
        "shop_ids": sorted(shop_ids(order)),
        "state_id": state,
        "vat_mode": vat_mode,
        "last_modified": modified.isoformat() if modified else None,
        "shipping_vat": shipping_vat,
    }
    if credit:
        extra["cancels_external_id"] = cancelled_ref
        extra["amounts_negated"] = negated
    return Document(
        source_ref=ref,
        number=invoice_number(order),
        kind=DocumentKind.CREDIT_NOTE if credit else DocumentKind.INVOICE,
        reverses=reverses if credit else None,
        currency=currency,
        order_date=created.date(),
        invoice_date=_date(order.get("InvoiceDate"), tz, "InvoiceDate"),
        payment_date=paid_at.date() if paid_at and not credit else None,
        customer=order_customer(order, options),
        lines=lines,
        payments=payments + vouchers,
        # TotalCost is what is left to pay after coupons; the goods' gross adds them back.
        stated_total=total + covered,
        shop=shop_name(order),
        source_status=state_name(state),
        treatment_hint=VAT_MODES[vat_mode],
        extra=extra,
    )
