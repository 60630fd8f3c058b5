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
from dataclasses import dataclass
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


# -- positions: the form that makes sevDesk's own figures the source's ------------------
def sevdesk_tax(amount: Decimal, rate: Decimal, *, net: bool) -> Decimal:
    """The VAT sevDesk computes for one position: from its net or its gross sum,
    rounded half-up to the cent per position (the sandbox does the same; sumTax is
    read-only in the spec, so sevDesk always computes it)."""
    if net:
        return money(amount * rate / 100)
    return money(amount * rate / (100 + rate))


@dataclass
class Position:
    """One position as sent: its lines, the regarded amount and its basis."""

    lines: list[PlannedLine]
    account: str
    rate: Decimal
    net: bool
    amount: Decimal
    """sumNet (net) or sumGross (gross) to the cent."""

    @property
    def tax(self) -> Decimal:
        return sevdesk_tax(self.amount, self.rate, net=self.net)

    @property
    def sum_net(self) -> Decimal:
        return self.amount if self.net else self.amount - self.tax

    @property
    def sum_gross(self) -> Decimal:
        return self.amount + self.tax if self.net else self.amount

    @property
    def comment(self) -> str:
        texts = [pl.line.description for pl in self.lines]
        if len(texts) == 1:
            return texts[0][:255]
        return f"{len(texts)} lines: {'; '.join(texts)}"[:255]


def _positions(lines: list[PlannedLine], *, net: bool, grouped: bool, by_account: bool) -> list[Position]:
    groups: dict[tuple[str, Decimal], list[PlannedLine]] = {}
    out: list[Position] = []
    for planned in lines:
        account = (planned.account or "").strip() if by_account else ""
        if grouped:
            groups.setdefault((account, planned.line.tax_rate.normalize()), []).append(planned)
        else:
            out.append(Position([planned], account, planned.line.tax_rate, net,
                                planned.line.net if net else planned.line.gross))
    for (account, rate), members in groups.items():
        amount = sum((pl.line.net if net else pl.line.gross for pl in members), Decimal("0.00"))
        out.append(Position(members, account, rate, net, amount))
    return out


def _figures(items: list[tuple[str, Decimal, Decimal, Decimal]]) -> dict[tuple[str, Decimal], tuple[Decimal, Decimal]]:
    out: dict[tuple[str, Decimal], tuple[Decimal, Decimal]] = {}
    for account, rate, net, tax in items:
        old_net, old_tax = out.get((account, rate.normalize()), (Decimal("0.00"), Decimal("0.00")))
        out[(account, rate.normalize())] = (old_net + net, old_tax + tax)
    return out


LAYOUTS = [
    ("one position per line in the source's price basis", None, False),
    ("one gross position per line", False, False),
    ("one position per account and rate in the source's price basis", None, True),
    ("one gross position per account and rate", False, True),
    ("one net position per line", True, False),
    ("one net position per account and rate", True, True),
]


def choose_positions(lines: list[PlannedLine], *, by_account: bool = True) -> tuple[list[Position], str]:
    """The first position layout whose figures, as sevDesk computes them (rounded per
    position), equal the source's net and VAT per account and rate, to the cent.

    Raises ValueError naming both VAT figures when no layout reproduces the source."""
    source_net = lines[0].line.price_basis == "net"
    want = _figures([((pl.account or "").strip() if by_account else "", pl.line.tax_rate, pl.line.net, pl.line.tax)
                     for pl in lines])
    tried: list[str] = []
    seen: set[tuple[bool, bool]] = set()
    for label, basis, grouped in LAYOUTS:
        net = source_net if basis is None else basis
        if (net, grouped) in seen:
            continue
        seen.add((net, grouped))
        positions = _positions(lines, net=net, grouped=grouped, by_account=by_account)
        got = _figures([(p.account, p.rate, p.sum_net, p.tax) for p in positions])
        if got == want:
            return positions, label
        tried.append(f"{label}: VAT {sum(t for _, t in got.values())}")
    stated = sum((pl.line.tax for pl in lines), Decimal("0.00"))
    raise ValueError(
        f"sevDesk rounds VAT per position and no position layout gives the source's VAT {stated} "
        f"per account and rate ({'; '.join(tried)})"
    )


def voucher_payload(
    document: Document, plan: Plan, lines: list[PlannedLine], rule: str, *, description: str,
    version: str | None, guidance: ReceiptGuidance | None, accounting_types: dict[str, int],
    cost_centre: int | None, status: int = 50, positions: list[Position] | None = None,
    reverses: str | None = None,
) -> dict[str, Any]:
    """The ``Voucher/Factory/saveVoucher`` body: a revenue voucher (``creditDebit`` D)
    with the positions ``choose_positions`` found (sevDesk's figures are the source's).
    Saved as a draft (50) first; the same body with ``status`` 100 and the ids
    registers it once its sums are checked. ``reverses`` (a credit note): the text that
    names the voucher it corrects, put before every position's comment (the positions
    are the credit note's own, negative, on the same accounts and tax rule)."""
    voucher: dict[str, Any] = {
        "objectName": "Voucher",
        "mapAll": True,
        "voucherDate": de_date(plan.document_date),
        "deliveryDate": de_date(plan.document_date),
        "description": description,
        "status": status,
        "creditDebit": "D",  # D = debit = revenue
        "voucherType": "VOU",
        "currency": document.currency,
    }
    set_currency(voucher, document, plan)
    if plan.due_date is not None:
        voucher["paymentDeadline"] = de_date(plan.due_date)
    if plan.contact is not None:
        voucher["supplier"] = ref(plan.contact.target_id, "Contact")
    else:
        voucher["supplierName"] = document.customer.display_name[:255]
    set_tax_and_cost_centre(voucher, rule, version=version, cost_centre=cost_centre)
    if positions is None:
        positions = choose_positions(lines)[0]
    out = []
    for position in positions:
        item: dict[str, Any] = {
            "objectName": "VoucherPos",
            "mapAll": True,
            "taxRate": position.rate,
            "net": position.net,
            "sumNet": position.sum_net,
            "sumGross": position.sum_gross,
            "comment": (f"{reverses}: {position.comment}" if reverses else position.comment)[:255],
        }
        if version == "2.0":
            assert guidance is not None
            item["accountDatev"] = ref(guidance.by_number[position.account].account_datev_id, "AccountDatev")
        else:
            item["accountingType"] = ref(accounting_types[position.account], "AccountingType")
        out.append(item)
    # voucherPosDelete and filename go last, in that order (sevDesk's instruction).
    return {"voucher": voucher, "voucherPosSave": out, "voucherPosDelete": None}


def foreign(document: Document, plan: Plan) -> bool:
    """True when the document is in another currency than the books."""
    return document.currency.upper() != plan.book_currency.upper()


def set_currency(body: dict[str, Any], document: Document, plan: Plan) -> None:
    """``currency`` always; for a foreign currency also ``propertyExchangeRate`` (units
    of the book currency per unit of the document's, as the core's rate; the spec's
    example 0.8912 reads the same way for USD in a EUR account)."""
    body["currency"] = document.currency.upper()
    if foreign(document, plan):
        if plan.exchange_rate is None:
            raise ValueError(
                f"the document is in {document.currency}, the books in {plan.book_currency}, and no "
                "exchange rate is known"
            )
        body["propertyExchangeRate"] = plan.exchange_rate


def invoice_position(line: Line, *, net_prices: bool) -> dict[str, Any]:
    """One ``InvoicePos``: the unit price is the line total over the quantity when that
    multiplies back to the cent; otherwise quantity 1 at the line total ("2 x ...").
    The price is stated as ``priceNet`` or ``priceGross`` too, never left to the
    account's setting."""
    total = line.net if net_prices else line.gross
    quantity, price, name = line.quantity, money(total / line.quantity), line.description
    if money(price * quantity) != total:
        quantity, price, name = Decimal(1), total, f"{line.quantity.normalize():f} x {line.description}"
    return invoice_item(quantity, price, name, line.tax_rate, net_prices=net_prices)


def invoice_item(quantity: Decimal, price: Decimal, name: str, rate: Decimal, *, net_prices: bool) -> dict[str, Any]:
    return {
        "objectName": "InvoicePos",
        "mapAll": True,
        "quantity": quantity,
        "price": price,
        "priceNet" if net_prices else "priceGross": price,
        "name": name[:255],
        "unity": ref(1, "Unity"),
        "taxRate": rate,
    }


def invoice_positions(lines: list[PlannedLine]) -> tuple[list[dict[str, Any]], bool, str]:
    """The invoice positions (and showNet) whose sevDesk figures equal the source's
    net and VAT per rate: per line when that works, else one position per rate."""
    source_net = lines[0].line.price_basis == "net"
    positions, label = choose_positions(lines, by_account=False)
    net = positions[0].net
    if all(len(p.lines) == 1 for p in positions) and net == source_net:
        # one per line, as priced: keep quantity and unit price where they multiply back
        items = [invoice_position(p.lines[0].line, net_prices=net) for p in positions]
        if all(money(Decimal(str(i["quantity"])) * i["price"]) == p.amount for i, p in zip(items, positions, strict=True)):
            return items, net, label
    items = [invoice_item(Decimal(1), p.amount, p.comment, p.rate, net_prices=net) for p in positions]
    return items, net, label


def invoice_payload(
    document: Document, plan: Plan, lines: list[PlannedLine], rule: str, *, reference: str,
    version: str | None, contact_person: int | None, country_id: int, cost_centre: int | None,
) -> dict[str, Any]:
    """The ``Invoice/Factory/saveInvoice`` body: a draft (status 100) for the plan's
    contact, ``showNet`` and ``priceNet``/``priceGross`` after the position layout,
    our reference in ``customerInternalNote``."""
    assert plan.contact is not None
    rates = {pl.line.tax_rate for pl in lines}
    positions, net_prices, _ = invoice_positions(lines)
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
    set_currency(invoice, document, plan)
    if plan.due_date is not None:
        invoice["timeToPay"] = max(0, (plan.due_date - plan.document_date).days)
    set_tax_and_cost_centre(invoice, rule, version=version, cost_centre=cost_centre)
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
