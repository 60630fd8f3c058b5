"""Pure mapping from Cobot's answers to ledgerlink records (no HTTP here).

- API 2 invoices (JSON:API resources) become :class:`ledgerlink.Document` with net
  lines: Cobot states net, gross and the taxes per line, and for B2B the net and the
  stated tax are the truth. Each line keeps ``accountingCode`` as ``booking_code``.
- API 1 memberships (plain JSON) become :class:`ledgerlink.Customer`.

Everything here is deterministic: the same Cobot record always gives the same
record (volatile fields such as the signed PDF URL, reminder and sending states are
left out), so the engine's content hash changes only when the invoice does.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ledgerlink import (
    Address,
    BrokenDocument,
    Customer,
    Document,
    DocumentKind,
    Line,
    LineKind,
    Payment,
    money,
    parse_decimal,
)

CENT = Decimal("0.01")


class MappingError(ValueError):
    """A Cobot record that cannot become a ledgerlink record; the message says why."""

    def __init__(self, message: str, *, quarantine: bool = False) -> None:
        super().__init__(message)
        self.quarantine = quarantine


# -- dates -------------------------------------------------------------------
_DATE = re.compile(r"^(\d{4})[-/](\d{2})[-/](\d{2})")


def parse_date(value: Any, what: str) -> date:
    """A Cobot date: ``2024-01-31`` (API 2), ``2024/01/31`` (API 1), or the date part
    of a datetime (``2024-12-20T06:22:29+01:00``; the Zapier fixture shows this form)."""
    if not isinstance(value, str) or not (match := _DATE.match(value.strip())):
        raise MappingError(f"{what} {str(value)[:40]!r} is not a date")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise MappingError(f"{what} {value[:40]!r} is not a date") from None


def parse_timestamp(value: Any, what: str) -> datetime:
    """An API 1 timestamp (``2010/01/01 12:00:00 +0000``), an ISO datetime, or a bare
    date (midnight UTC). Returned in UTC."""
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{what} {str(value)[:40]!r} is not a timestamp")
    text = value.strip()
    for fmt in ("%Y/%m/%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S %z", "%Y/%m/%d %H:%M:%S"):
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("/", "-"))
        except ValueError:
            raise MappingError(f"{what} {text[:40]!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# -- customers ---------------------------------------------------------------
def split_name(name: str | None) -> tuple[str | None, str | None]:
    """Cobot has one name field: the first word is the first name, the rest the last
    name ("Jane van Smith" -> ("Jane", "van Smith")); one word is a last name."""
    if not name or not name.strip():
        return None, None
    parts = name.strip().split(None, 1)
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _country(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if len(text) != 2 or not text.isalpha():
        return None  # API 1 gives country names ("Germany"); only ISO codes are usable
    return text.upper()


def customer_from_membership(m: dict[str, Any]) -> Customer:
    """An API 1 membership (``GET /api/memberships``) as a Customer.

    ``extra["confirmed_at"]`` is the confirmation time as ISO 8601 in UTC (None when
    the membership is not confirmed).
    """
    if not isinstance(m, dict) or not _text(m.get("id")):
        raise MappingError("membership without an id")
    address = as_object(m.get("address"))
    name = _text(m.get("name")) or _text(address.get("name"))
    first, last = split_name(name)
    confirmed = m.get("confirmed_at")
    confirmed_at = (
        parse_timestamp(confirmed, f"membership {m['id']}: confirmed_at").isoformat()
        if _text(confirmed)
        else None
    )
    customer_number = m.get("customer_number")
    plan = as_object(m.get("plan"))
    billing = [e for e in (m.get("billing_emails") or []) if isinstance(e, str) and e.strip()]
    user = as_object(m.get("user"))
    email = _text(m.get("email")) or _text(user.get("email")) or (billing[0] if billing else None)
    addr = Address(
        name=_text(address.get("company")) or name,
        street=_text(address.get("address")),
        zip=_text(address.get("post_code")),
        city=_text(address.get("city")),
        country=_country(address.get("country")),
    )
    has_address = any((addr.street, addr.zip, addr.city, addr.country))
    return Customer(
        source_id=str(m["id"]),
        customer_number=None if customer_number in (None, "") else str(customer_number),
        first_name=first,
        last_name=last,
        company=_text(address.get("company")),
        email=email,
        phone=_text(m.get("phone")),
        vat_id=_text(m.get("tax_id")),
        address=addr if has_address else None,
        extra={
            "debitor_type": "memberships",
            "confirmed_at": confirmed_at,
            "plan": _text(plan.get("name")),
            "team_id": _text(m.get("team_id")),
            "billing_emails": billing,
            "full_address": _text(address.get("full_address")),
        },
    )


def confirmed_at(customer: Customer) -> datetime | None:
    """The confirmation time a customer from :func:`customer_from_membership` carries
    (``extra["confirmed_at"]``, the plugin's own key), or None when not confirmed."""
    value = customer.extra.get("confirmed_at")
    return parse_timestamp(value, "confirmed_at") if value else None


def customer_from_invoice(inv_id: str, attrs: dict[str, Any], rel: dict[str, Any]) -> Customer:
    """The invoice's debitor (membership, team or contact) as the invoice states it."""
    debitor = ((rel.get("debitor") or {}).get("data")) or ((rel.get("membership") or {}).get("data"))
    debitor = debitor or ((rel.get("team") or {}).get("data")) or ((rel.get("contact") or {}).get("data"))
    if not isinstance(debitor, dict) or not _text(debitor.get("id")):
        raise MappingError("the invoice names no debitor (membership, team or contact)")
    recipient = attrs.get("recipientAddress") or {}
    if not isinstance(recipient, dict):
        raise MappingError("recipientAddress is not an object")
    name = _text(recipient.get("name"))
    company = _text(recipient.get("company"))
    first, last = split_name(name)
    emails = [e for e in (attrs.get("billingEmails") or []) if isinstance(e, str) and e.strip()]
    country = _text(recipient.get("countryCode"))
    try:
        address = Address(
            name=company or name,
            street=_text(recipient.get("street")),
            zip=_text(recipient.get("postCode")),
            city=_text(recipient.get("city")),
            country=country,
        )
    except ValueError:
        raise MappingError(f"recipientAddress.countryCode {country!r} is not an ISO country code") from None
    return Customer(
        source_id=str(debitor["id"]),
        customer_number=_text(attrs.get("customerNumber")),
        first_name=first,
        last_name=last,
        company=company,
        email=emails[0] if emails else None,
        vat_id=_text(attrs.get("taxId")),
        address=address,
        extra={"debitor_type": str(debitor.get("type") or "memberships"), "billing_emails": emails},
    )


# -- invoices ----------------------------------------------------------------
def _price(value: Any, what: str) -> tuple[Decimal, Decimal, list[tuple[str, Decimal, Decimal]], str]:
    """(net, gross, [(tax name, rate, amount)], currency) from an API 2 price object."""
    if not isinstance(value, dict):
        raise MappingError(f"{what} is missing")
    net = _dec(value.get("net"), f"{what}.net")
    gross = _dec(value.get("gross"), f"{what}.gross")
    taxes = []
    for i, tax in enumerate(value.get("taxes") or []):
        if not isinstance(tax, dict):
            raise MappingError(f"{what}.taxes[{i}] is not an object")
        taxes.append((
            str(tax.get("name") or "tax"),
            _dec(tax.get("rate"), f"{what}.taxes[{i}].rate"),
            _dec(tax.get("amount"), f"{what}.taxes[{i}].amount"),
        ))
    return net, gross, taxes, str(value.get("currency") or "")


def _dec(value: Any, what: str) -> Decimal:
    try:
        return parse_decimal(value, what)
    except ValueError as exc:
        raise MappingError(str(exc)) from None


def invoice_date_of(resource: dict[str, Any]) -> date | None:
    """The invoice date of an API 2 invoice resource, or None if unreadable."""
    try:
        return parse_date((resource.get("attributes") or {}).get("invoiceDate"), "invoiceDate")
    except MappingError:
        return None


def document_from_invoice(
    resource: dict[str, Any], *, line_kind: LineKind = LineKind.SERVICE
) -> Document | BrokenDocument:
    """An API 2 invoice resource as a Document, or a BrokenDocument saying why not.

    Lines are net-based (``price_basis="net"``): ``total`` = item ``totalAmount.net``,
    ``tax_amount`` = the sum of ``totalAmount.taxes[].amount`` as stated,
    ``unit_price`` = ``amount.net``, ``booking_code`` = ``accountingCode``.
    An invoice with items lacking an accounting code is returned as a Document with
    ``skip_reason`` naming them.
    """
    inv_id = _text(resource.get("id")) if isinstance(resource, dict) else None
    if not inv_id:
        return BrokenDocument(source_ref="(no id)", reason="Cobot sent an invoice without an id")
    attrs = resource.get("attributes") if isinstance(resource.get("attributes"), dict) else None
    number = _text(attrs.get("number")) if attrs else None
    day = invoice_date_of(resource)
    cursor = day.isoformat() if day else None
    try:
        if attrs is None:
            raise MappingError("the invoice has no attributes")
        return _document(inv_id, attrs, resource.get("relationships") or {}, line_kind)
    except MappingError as exc:
        return BrokenDocument(
            source_ref=inv_id, reason=f"Cobot invoice {number or inv_id}: {exc}",
            quarantine=exc.quarantine, number=number, cursor=cursor,
        )
    except ValueError as exc:  # pydantic validation of the records
        reason = "; ".join(str(exc).splitlines()[:3])
        return BrokenDocument(
            source_ref=inv_id, reason=f"Cobot invoice {number or inv_id}: {reason}",
            number=number, cursor=cursor,
        )


def _document(
    inv_id: str, attrs: dict[str, Any], rel: dict[str, Any], line_kind: LineKind
) -> Document:
    invoice_date = parse_date(attrs.get("invoiceDate"), "invoiceDate")
    due = parse_date(attrs["dueDate"], "dueDate") if _text(attrs.get("dueDate")) else None
    paid_date = parse_date(attrs["paidDate"], "paidDate") if _text(attrs.get("paidDate")) else None
    total_net, total_gross, _total_taxes, currency = _price(attrs.get("totalAmount"), "totalAmount")
    items = attrs.get("items")
    if not isinstance(items, list) or not items:
        raise MappingError("the invoice has no items")

    lines: list[Line] = []
    missing_code: list[str] = []
    cost_centres: list[str | None] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise MappingError(f"item {index} is not an object")
        description = _text(item.get("description")) or ""
        what = f"item {index} ({description[:40]!r})"
        quantity = _dec(item.get("quantity"), f"{what} quantity")
        if quantity == 0:
            raise MappingError(f"{what} has quantity 0")
        net, gross, taxes, line_currency = _price(item.get("totalAmount"), f"{what} totalAmount")
        if line_currency and currency and line_currency != currency:
            raise MappingError(f"{what} is in {line_currency} but the invoice is in {currency}")
        unit_net = None
        if isinstance(item.get("amount"), dict):
            unit_net = _price(item["amount"], f"{what} amount")[0]
        rates = {rate for _, rate, _ in taxes}
        if len(rates) > 1:
            listed = ", ".join(f"{name} {rate}%" for name, rate, _ in taxes)
            raise MappingError(
                f"{what} carries {len(taxes)} taxes with different rates ({listed});"
                " ledgerlink books one tax rate per line", quarantine=True,
            )
        rate = next(iter(rates)) if rates else Decimal(0)
        tax = sum((amount for _, _, amount in taxes), Decimal(0))
        if money(net) + money(tax) != money(gross):
            raise MappingError(
                f"{what}: net {money(net)} + tax {money(tax)} = {money(net) + money(tax)}"
                f" but Cobot states gross {money(gross)}", quarantine=True,
            )
        code = _text(item.get("accountingCode"))
        if code is None:
            missing_code.append(f"{index} ({description!r})")
        centre = item.get("costCenter")
        cost_centres.append(_text(centre.get("number")) if isinstance(centre, dict) else None)
        lines.append(Line(
            description=description or f"item {index}",
            quantity=quantity,
            total=net,
            tax_rate=rate,
            price_basis="net",
            tax_amount=tax,
            unit_price=unit_net,
            kind=line_kind,
            booking_code=code,
        ))

    customer = customer_from_invoice(inv_id, attrs, rel)
    corrected_data = (rel.get("correctedInvoice") or {}).get("data") if isinstance(rel.get("correctedInvoice"), dict) else None
    corrected = _text(corrected_data.get("id")) if isinstance(corrected_data, dict) else None
    if corrected == inv_id:
        corrected = None
    kind = DocumentKind.INVOICE
    if corrected is not None:
        if money(total_gross) >= 0:
            raise MappingError(
                f"it corrects invoice {corrected} (correctedInvoice) but its total is {money(total_gross)} "
                f"{currency or 'EUR'}, not a credit: ledgerlink writes a correction only as a credit note for the "
                "invoice it corrects; book it by hand", quarantine=True,
            )
        kind = DocumentKind.CREDIT_NOTE
        # A credit note keeps positive quantities; the sign is in the totals (Cobot's
        # correction pre-fills the original's items with negative quantities).
        lines = [
            line.model_copy(update={
                "quantity": -line.quantity,
                "unit_price": None if line.unit_price is None else -line.unit_price,
            }) if line.quantity < 0 else line
            for line in lines
        ]
    paid_status = _text(attrs.get("paidStatus"))
    paid_amount = _dec(attrs["paidAmount"], "paidAmount") if attrs.get("paidAmount") is not None else Decimal(0)
    payments = []
    if paid_amount != 0:
        # What the customer paid (a refund on a credit note), as Cobot states it, never recomputed.
        payments.append(Payment(amount=abs(paid_amount), date=paid_date))
    sender = as_object(attrs.get("senderAddress"))
    seller = _country(sender.get("countryCode"))  # None: the pipeline's seller_country
    extra: dict[str, Any] = {
        "debitor_type": customer.extra.get("debitor_type"),
        "paid_status": paid_status,
        "locked": attrs.get("canUpdate") is False,
        "stated_net": str(money(total_net)),
    }
    if paid_status == "writtenOff":
        # A bad debt, not a cancellation: the invoice stays booked (see the README).
        extra["written_off"] = True
    if any(cost_centres):
        extra["cost_centres"] = cost_centres
    if corrected is not None:
        extra["corrected_invoice"] = corrected
    if _text(attrs.get("invoiceText")):
        extra["invoice_text"] = _text(attrs.get("invoiceText"))
    skip_reason = ("lines without accounting code: " + ", ".join(missing_code)) if missing_code else None
    document = Document(
        source_ref=inv_id,
        number=_text(attrs.get("number")),
        kind=kind,
        reverses=corrected,
        currency=currency or "EUR",
        invoice_date=invoice_date,
        due_date=due,
        payment_date=paid_date,
        customer=customer,
        lines=lines,
        payments=payments,
        # Cobot's own grand total: the engine quarantines the invoice before any write
        # when the lines (net + stated tax) do not add up to it.
        stated_total=total_gross,
        seller_country=seller,
        source_status=paid_status,
        finalized=True,
        # paidStatus "canceled": cancelled in Cobot (skipped before transfer, reported or
        # reversed after it). "writtenOff" is a bad debt and stays booked.
        cancelled=paid_status == "canceled",
        skip_reason=skip_reason,
        cursor=invoice_date.isoformat(),
        extra=extra,
    )
    if money(total_net) != document.total_net:
        raise MappingError(
            f"the items add up to net {document.total_net} {document.currency}"
            f" but the invoice states net {money(total_net)}", quarantine=True,
        )
    return document


__all__ = [
    "MappingError",
    "as_object",
    "confirmed_at",
    "customer_from_invoice",
    "customer_from_membership",
    "document_from_invoice",
    "invoice_date_of",
    "parse_date",
    "parse_timestamp",
    "split_name",
]
