"""Translation between ledgerlink's records and sevDesk's payloads.

Two parts, no HTTP: sevDesk's wire format (JSON with exact decimal numbers, its date
formats, object references, amounts and error envelopes; the sandbox speaks it too),
and the translation of canonical records and plans into sevDesk's bodies (contacts,
addresses, e-mails, vouchers, invoices, payments) and of sevDesk's contacts back into
:class:`ledgerlink.Contact`. The target (:mod:`.target`) makes the calls and decides
what to send; the tax rules and receipt guidance are in :mod:`.taxes`.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from ledgerlink import Contact, Customer, Document, Line, Plan, PlannedLine, TargetRef, money

from .taxes import ReceiptGuidance, tax_text

BERLIN = ZoneInfo("Europe/Berlin")
_MARK = "\u0000dec:"
_MARKED = re.compile(r'"\\u0000dec:(-?[0-9.]+)"')


def dumps(payload: Any) -> bytes:
    """JSON with every Decimal written as a JSON number, digit for digit (no float)."""

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"{_MARK}{value:f}"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(payload), ensure_ascii=False)
    return _MARKED.sub(r"\1", text).encode("utf-8")


def loads(raw: bytes | str) -> Any:
    """Parse JSON keeping numbers exact (Decimal)."""
    return json.loads(raw, parse_float=Decimal)


def de_date(day: date) -> str:
    """sevDesk's document date format, ``dd.mm.yyyy`` (stored as Berlin midnight)."""
    return day.strftime("%d.%m.%Y")


def timestamp(day: date) -> int:
    """Unix seconds of Berlin midnight of ``day`` (invoice bookAmount takes these)."""
    return int(datetime.combine(day, time(0, 0), tzinfo=BERLIN).timestamp())


def rfc3339(day: date) -> str:
    """Berlin noon of ``day``, as voucher bookAmount takes it (noon keeps the day in any zone)."""
    return datetime.combine(day, time(12, 0), tzinfo=BERLIN).isoformat()


def ref(obj_id: int | str, name: str) -> dict[str, Any]:
    """A reference to a sevDesk object: ``{"id": 12, "objectName": "Contact"}``."""
    return {"id": int(obj_id), "objectName": name}


def number(value: Any) -> Decimal:
    """A sevDesk amount (string, number or null) as Decimal."""
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, bool):
        return Decimal(int(value))
    return Decimal(str(value))


def error_message(response: httpx.Response) -> str:
    """sevDesk's own message from its error envelope, with its error code."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = " ".join(str(error.get("message") or "no message").split())
        code = error.get("code")
        return f"{message} (sevDesk code {code})" if code not in (None, "", 0) else message
    text = response.text.strip()
    if text.startswith("<"):
        return "an HTML page instead of an API answer"
    return " ".join(text.split())[:300] or "an empty answer"


# -- contacts ---------------------------------------------------------------------------
KEY_MARK = "ledgerlink-key: "
"""Our contact key is written as a line ``ledgerlink-key: <key>`` in the contact's
``description`` (sevDesk has no field to search a foreign key by)."""
# Codes that name a country differently from ISO 3166-1 (VAT prefixes, common usage).
COUNTRY_ALIASES = {"EL": "GR", "UK": "GB"}


def iso_country(code: str) -> str:
    """An ISO 3166-1 alpha-2 code in upper case (``el`` -> ``GR``, ``UK`` -> ``GB``)."""
    code = code.strip().upper()
    return COUNTRY_ALIASES.get(code, code)


def contact_from_record(raw: dict[str, Any], email: str | None = None) -> Contact:
    """A sevDesk ``Contact`` (organisation or person) as a Contact."""
    return Contact(
        target_id=str(raw["id"]),
        customer_number=raw.get("customerNumber") or None,
        first_name=raw.get("surename") or None,  # sic: sevDesk's field for the first name
        last_name=raw.get("familyname") or None,
        company=raw.get("name") or None,
        email=email or None,
        extra={"category": str((raw.get("category") or {}).get("id") or "")},
    )


def has_key(raw: dict[str, Any], key: str) -> bool:
    """True when the contact's description carries our key line."""
    marker = KEY_MARK + key
    lines = str(raw.get("description") or "").splitlines()
    return marker in (line.strip() for line in lines)


def contact_payload(customer: Customer, key: str, *, number: str, category: int) -> dict[str, Any]:
    """The ``POST /Contact`` body: an organisation (``name``) for a company, else a
    person (``surename`` + ``familyname``); our key in ``description``."""
    body: dict[str, Any] = {
        "category": ref(category, "Category"),
        "status": 1000,
        "customerNumber": number,
        "description": KEY_MARK + key,
    }
    if customer.is_company:
        body["name"] = customer.company
    else:
        body["surename"] = customer.first_name or None
        body["familyname"] = customer.last_name or (
            None if customer.first_name else customer.email or customer.source_id
        )
        body = {k: v for k, v in body.items() if v is not None}
    if customer.vat_id:
        body["vatNumber"] = customer.vat_id
    return body


def address_payload(contact_id: str, customer: Customer, *, country_id: int, category: int) -> dict[str, Any]:
    """The ``POST /ContactAddress`` body (street and street 2 in one line)."""
    address = customer.address
    assert address is not None
    street = " ".join(p for p in (address.street, address.street2) if p) or None
    body = {
        "contact": ref(contact_id, "Contact"),
        "street": street,
        "zip": address.zip,
        "city": address.city,
        "country": ref(country_id, "StaticCountry"),
        "category": ref(category, "Category"),
    }
    return {k: v for k, v in body.items() if v is not None}


def email_payload(contact_id: str, email: str, *, key: int) -> dict[str, Any]:
    """The ``POST /CommunicationWay`` body of a contact's main e-mail address."""
    return {
        "contact": ref(contact_id, "Contact"),
        "type": "EMAIL",
        "value": email,
        "key": ref(key, "CommunicationWayKey"),
        "main": True,
    }


# -- documents ----------------------------------------------------------------------------
def object_name(target_ref: TargetRef) -> str:
    """sevDesk's object name (and path) of a pushed document: Invoice or Voucher."""
    return "Invoice" if target_ref.kind == "invoice" else "Voucher"


def set_tax_and_cost_centre(body: dict[str, Any], rule: str, *, version: str | None, cost_centre: int | None) -> None:
    """The tax rule (2.0) or tax type (1.0) and the cost centre, alike on vouchers and invoices."""
    if version == "2.0":
        body["taxRule"] = {"id": rule, "objectName": "TaxRule"}
    else:
        body["taxType"] = rule
    if cost_centre is not None:
        body["costCentre"] = ref(cost_centre, "CostCentre")


def voucher_payload(
    document: Document, plan: Plan, lines: list[PlannedLine], rule: str, *, description: str,
    version: str | None, guidance: ReceiptGuidance | None, accounting_types: dict[str, int],
    cost_centre: int | None,
) -> dict[str, Any]:
    """The ``Voucher/Factory/saveVoucher`` body: a revenue voucher (status 100,
    ``creditDebit`` D) with one position per planned line, the source's own figures."""
    voucher: dict[str, Any] = {
        "objectName": "Voucher",
        "mapAll": True,
        "voucherDate": de_date(plan.document_date),
        "deliveryDate": de_date(plan.document_date),
        "description": description,
        "status": 100,
        "creditDebit": "D",  # D = debit = revenue
        "voucherType": "VOU",
        "currency": document.currency,
    }
    if plan.due_date is not None:
        voucher["paymentDeadline"] = de_date(plan.due_date)
    if plan.contact is not None:
        voucher["supplier"] = ref(plan.contact.target_id, "Contact")
    else:
        voucher["supplierName"] = document.customer.display_name[:255]
    set_tax_and_cost_centre(voucher, rule, version=version, cost_centre=cost_centre)
    positions = []
    for planned in lines:
        line = planned.line
        account = (planned.account or "").strip()
        position: dict[str, Any] = {
            "objectName": "VoucherPos",
            "mapAll": True,
            "taxRate": line.tax_rate,
            # The source's own figure counts: gross for shops, net for B2B.
            "net": line.price_basis == "net",
            "sumNet": line.net,
            "sumGross": line.gross,
            "comment": line.description[:255],
        }
        if version == "2.0":
            assert guidance is not None
            position["accountDatev"] = ref(guidance.by_number[account].account_datev_id, "AccountDatev")
        else:
            position["accountingType"] = ref(accounting_types[account], "AccountingType")
        positions.append(position)
    # voucherPosDelete and filename go last, in that order (sevDesk's instruction).
    return {"voucher": voucher, "voucherPosSave": positions, "voucherPosDelete": None}


def invoice_position(line: Line, *, net_prices: bool) -> dict[str, Any]:
    """One ``InvoicePos``: the unit price is the line total over the quantity when that
    multiplies back to the cent; otherwise quantity 1 at the line total ("2 x ...")."""
    total = line.net if net_prices else line.gross
    quantity, price, name = line.quantity, money(total / line.quantity), line.description
    if money(price * quantity) != total:
        quantity, price, name = Decimal(1), total, f"{line.quantity.normalize():f} x {line.description}"
    return {
        "objectName": "InvoicePos",
        "mapAll": True,
        "quantity": quantity,
        "price": price,
        "name": name[:255],
        "unity": ref(1, "Unity"),
        "taxRate": line.tax_rate,
    }


def invoice_payload(
    document: Document, plan: Plan, lines: list[PlannedLine], rule: str, *, reference: str,
    version: str | None, contact_person: int | None, country_id: int, cost_centre: int | None,
) -> dict[str, Any]:
    """The ``Invoice/Factory/saveInvoice`` body: a draft (status 100) for the plan's
    contact, ``showNet`` after the source's price basis, our reference in
    ``customerInternalNote``."""
    assert plan.contact is not None
    net_prices = document.lines[0].price_basis == "net"
    rates = {pl.line.tax_rate for pl in lines}
    invoice: dict[str, Any] = {
        "objectName": "Invoice",
        "mapAll": True,
        "invoiceDate": de_date(plan.document_date),
        "deliveryDate": de_date(plan.document_date),
        "header": f"Rechnung {document.number or document.source_ref}",
        "contact": ref(plan.contact.target_id, "Contact"),
        "contactPerson": ref(contact_person or 0, "SevUser"),
        "discount": 0,
        "status": "100",  # 2.0: invoices are created as drafts only
        "addressCountry": ref(country_id, "StaticCountry"),
        "taxRate": 0,
        "taxText": tax_text(rule, max(rates)) if version == "2.0" else "Umsatzsteuer",
        "invoiceType": "RE",
        "currency": document.currency,
        "showNet": net_prices,
        "customerInternalNote": reference,
    }
    if plan.due_date is not None:
        invoice["timeToPay"] = max(0, (plan.due_date - plan.document_date).days)
    set_tax_and_cost_centre(invoice, rule, version=version, cost_centre=cost_centre)
    positions = [invoice_position(pl.line, net_prices=net_prices) for pl in lines]
    return {"invoice": invoice, "invoicePosSave": positions, "invoicePosDelete": None}


# -- payments -------------------------------------------------------------------------------
def payment_payload(target_ref: TargetRef, amount: Decimal, day: date, *, full: bool, account: int) -> dict[str, Any]:
    """The ``bookAmount`` body: invoices take a Unix timestamp, vouchers RFC 3339."""
    return {
        "amount": amount,
        "date": timestamp(day) if target_ref.kind == "invoice" else rfc3339(day),
        "type": "FULL_PAYMENT" if full else "N",
        "checkAccount": ref(account, "CheckAccount"),
    }
