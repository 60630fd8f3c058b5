"""Translation between ledgerlink's records and Bilendo's payloads.

Pure functions, no HTTP: canonical customers, documents and plans written as
Bilendo's form fields (debtor, contact person, address, invoice), Bilendo's JSON:API
resources read back into :class:`ledgerlink.Contact` and :class:`ledgerlink.TargetRef`,
and its error answers read into one line.

The debtor, contact and address fields are Bilendo's documented ones. Every name the
invoice and error parts use comes from :mod:`.undocumented`, which keeps each path,
field and value Bilendo does not publish in one module, so they can be checked and
corrected against the real API there, and only there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from ledgerlink import Address, Contact, Customer, Document, Plan, TargetRef, money

from . import undocumented as U


# -- answers ----------------------------------------------------------------------------
def jsonapi_errors(body: Any) -> str | None:
    """One line from a JSON:API ``errors`` list ("name: can't be blank; ...")."""
    if not isinstance(body, dict) or not body.get(U.ERRORS_KEY):
        return None
    errors = body[U.ERRORS_KEY]
    if isinstance(errors, dict):  # Rails style {"field": ["message"]}
        return "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in errors.items()
        )
    if not isinstance(errors, list):
        return str(errors)
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            parts.append(str(error))
            continue
        text = str(error.get("detail") or error.get("title") or error.get("code") or "error")
        pointer = (error.get("source") or {}).get("pointer") if isinstance(error.get("source"), dict) else None
        field = pointer.rsplit("/", 1)[-1] if pointer else None
        parts.append(f"{field}: {text}" if field and not text.startswith(field) else text)
    return "; ".join(parts)


def error_message(response: httpx.Response) -> str:
    """Bilendo's words from an error answer, in one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found = jsonapi_errors(body)
    if found:
        return " ".join(found.split())[:300]
    if isinstance(body, dict) and (body.get("error") or body.get("message")):
        return " ".join(str(body.get("error") or body.get("message")).split())[:300]
    text = response.text.strip()
    if text.startswith("<"):
        return "an HTML page instead of an API answer"
    return " ".join(text.split())[:300] or "an empty answer"


def amount(value: Decimal) -> str:
    """Money as a decimal string to the cent ("119.00")."""
    return str(money(value))


def number(value: Decimal) -> str:
    """A quantity or rate without trailing zeros ("3", "7", "1.5")."""
    return format(value.normalize(), "f")


# -- debtors (documented) ---------------------------------------------------------------------
def contact_from_resource(resource: dict[str, Any], email: str | None = None) -> Contact:
    """A Bilendo customer (debtor) resource as a Contact: the one ``name`` field as
    ``company`` and, split at the last space, as first and last name."""
    attrs = resource.get("attributes") or {}
    name = str(attrs.get("name") or "").strip()
    first, _, last = name.rpartition(" ")
    return Contact(
        target_id=str(resource["id"]),
        customer_number=attrs.get("customer_number") or None,
        company=name or None,
        first_name=first or None,
        last_name=last or None,
        email=email,
        extra={
            "external_id": attrs.get("external_id"),
            "shipping_mode": attrs.get("shipping_mode"),
            "dunning_stop": attrs.get("dunning_stop"),
        },
    )


def person_name(customer: Customer) -> str:
    """The customer's person: first and last name."""
    return " ".join(p for p in (customer.first_name, customer.last_name) if p and p.strip())


def debtor_name(customer: Customer) -> str:
    """The debtor's ``name``: the company, else the person, else the e-mail or source id."""
    return (customer.company or "").strip() or person_name(customer) or customer.email or customer.source_id


def debtor_fields(customer: Customer, key: str, *, shipping_mode: str | None) -> dict[str, str]:
    """``POST /customers``: name, our key as ``external_id``, customer number, phone."""
    fields: dict[str, str] = {"name": debtor_name(customer), "external_id": key}
    if customer.customer_number:
        fields["customer_number"] = customer.customer_number
    if customer.phone:
        fields["phone"] = customer.phone
    if shipping_mode:
        fields["shipping_mode"] = shipping_mode
    return fields


def contact_person_fields(customer: Customer, key: str) -> dict[str, str]:
    """``POST /customers/<id>/contacts``: the person, as the main contact. ledgerlink
    records carry no gender: ``gender=0`` (unknown), ``salutation=0`` (formal)."""
    fields = {
        "name": person_name(customer) or debtor_name(customer),
        "gender": "0",
        "salutation": "0",
        "external_id": key,
        "main_contact": "true",
    }
    if customer.email:
        fields["email"] = customer.email
    if customer.phone:
        fields["phone"] = customer.phone
    return fields


def has_full_address(customer: Customer) -> bool:
    """Bilendo requires street, zip and city of an address."""
    address = customer.address
    return bool(address and address.street and address.zip and address.city)


def address_fields(customer: Customer, key: str) -> dict[str, str]:
    """``POST /customers/<id>/addresses``: line1 company (or name), line2 the person of a
    company, line3 street, line4 street 2; a missing country is sent as ``de``."""
    address = customer.address
    assert address is not None and address.street and address.zip and address.city
    person = person_name(customer)
    fields = {
        "line1": (customer.company or "").strip() or address.name or debtor_name(customer),
        "line3": address.street,
        "zip": address.zip,
        "city": address.city,
        "country_code": (address.country or "DE").lower(),
        "external_id": key,
        "default_address": "true",
    }
    if customer.is_company and person:
        fields["line2"] = person
    if address.street2:
        fields["line4"] = address.street2
    return fields


# -- invoices (designed: every name from undocumented.py) ---------------------------------------
# -- export options per document (1CRM's "Export zu Bilendo" dialog) ---------------------
#: ledgerlink's dispatch channels -> Bilendo's documented ``shipping_mode`` values.
CHANNELS = {"email": "email", "post": "post", "email_and_post": "dual_shipping"}


def sender_fields(address: Address) -> dict[str, str | None]:
    """A document's sender address as Bilendo's sender block (shaped like an address:
    line1 the name, line3 the street, line4 the second street line)."""
    return {
        "line1": address.name or address.street, "line2": None,
        "line3": address.street if address.name else None, "line4": address.street2,
        "zip": address.zip, "city": address.city, "country_code": (address.country or "de").lower(),
    }


def export_options(
    document: Document, *, dispatch: str, language: str, shipping_mode: str | None,
    sender: dict[str, Any] | None,
) -> tuple[str, str, str | None, dict[str, Any] | None]:
    """Dispatch, language, shipping mode and sender for one invoice: what the source chose
    for this document (``Document.dispatch``), else the connection's settings."""
    chosen = document.dispatch
    if chosen is None:
        return dispatch, language, shipping_mode, sender
    if chosen.send is not None:
        dispatch = "automatic" if chosen.send else "manual"
    if chosen.language is not None:
        language = chosen.language
    if chosen.channel is not None:
        shipping_mode = CHANNELS[chosen.channel]
    if chosen.sender is not None:
        sender = sender_fields(chosen.sender)
    return dispatch, language, shipping_mode, sender


def option_problem(document: Document) -> str | None:
    """Why Bilendo cannot take the document's own export options (None: it can)."""
    chosen = document.dispatch
    if chosen is None:
        return None
    if chosen.language is not None and chosen.language not in U.LANGUAGE_VALUES:
        return (f"its language {chosen.language!r} is not one Bilendo sends ({', '.join(U.LANGUAGE_VALUES)}); "
                "choose de or en for it in the source")
    if chosen.sender is not None and not (chosen.sender.name or chosen.sender.street):
        return "its sender address has neither a name nor a street (Bilendo needs a first line)"
    return None


def invoice_fields(
    document: Document, plan: Plan, *, dispatch: str, language: str, shipping_mode: str | None,
    sender: dict[str, Any] | None,
) -> dict[str, str]:
    """``POST /invoices``: our ``source_ref`` as ``external_id``, totals and lines as
    decimal strings to the cent, the debtor, dispatch, language, shipping mode, sender."""
    assert plan.contact is not None
    net = sum((pl.net for pl in plan.lines), Decimal("0.00"))
    tax = sum((pl.tax for pl in plan.lines), Decimal("0.00"))
    gross = sum((pl.gross for pl in plan.lines), Decimal("0.00"))
    fields: dict[str, str] = {
        U.F_EXTERNAL_ID: document.source_ref,
        U.F_INVOICE_NUMBER: document.number or document.source_ref,
        U.F_INVOICE_DATE: plan.document_date.isoformat(),
        U.F_CURRENCY: document.currency,
        U.F_AMOUNT: amount(gross),
        U.F_NET_AMOUNT: amount(net),
        U.F_TAX_AMOUNT: amount(tax),
        U.F_CUSTOMER_ID: plan.contact.target_id,
        U.F_DISPATCH: dispatch,
        U.F_LANGUAGE: language,
    }
    external = plan.contact.extra.get("external_id")
    if external:
        fields[U.F_CUSTOMER_EXTERNAL_ID] = str(external)
    if plan.due_date:
        fields[U.F_DUE_DATE] = plan.due_date.isoformat()
    if shipping_mode:
        fields[U.F_SHIPPING_MODE] = shipping_mode
    for name, value in (sender or {}).items():
        if value:
            fields[f"{U.F_SENDER}[{name}]"] = str(value)
    for index, pl in enumerate(plan.lines):
        line = pl.line
        unit_net = money(pl.net / line.quantity)
        values = {
            "description": line.description,
            "quantity": number(line.quantity),
            "unit_price": amount(unit_net),
            "net_amount": amount(pl.net),
            "tax_rate": number(line.tax_rate),
            "tax_amount": amount(pl.tax),
            "amount": amount(pl.gross),
        }
        for name in U.ITEM_FIELDS:
            fields[f"{U.F_ITEMS}[{index}][{name}]"] = values[name]
    return fields


def pdf_filename(invoice_number: str) -> str:
    """The attached PDF's file name: the invoice number, safe characters only."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in invoice_number) + ".pdf"


def invoice_ref(resource: dict[str, Any], number: str | None) -> TargetRef:
    """An invoice resource as a TargetRef (its ``invoice_number``, else ``number``)."""
    attrs = resource.get("attributes") or {}
    return TargetRef(
        target_id=str(resource["id"]), number=attrs.get(U.F_INVOICE_NUMBER) or number, kind=U.INVOICE_TYPE
    )


__all__ = [
    "address_fields",
    "amount",
    "contact_from_resource",
    "contact_person_fields",
    "debtor_fields",
    "debtor_name",
    "error_message",
    "has_full_address",
    "invoice_fields",
    "invoice_ref",
    "jsonapi_errors",
    "number",
    "pdf_filename",
    "person_name",
]
