"""Translation between ledgerlink's records and Billy's payloads (API v2).

Pure functions, no HTTP: Billy's records read into :class:`ledgerlink.Contact`,
canonical customers, documents and plans written as Billy's ``contact``,
``product``, ``invoice`` and ``bankPayment`` bodies, Billy's numbers read as exact
Decimals, its error envelope read into one line. The target (:mod:`.target`) does
the calls and the look-ups (accounts, rulesets, products) and hands the results here.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any

import httpx
from ledgerlink import (
    Contact,
    Customer,
    Document,
    DocumentKind,
    Line,
    LineKind,
    Plan,
    PlannedLine,
    QuarantineError,
    default_error_message,
    money,
)

CREDIT_NOTE_NO = "CN-"
"""Put before a credit note's number in Billy's ``invoiceNo`` (credit notes share the
invoices' unique numbers, and a source may number its credit notes in their own range)."""
REVERSAL_SUFFIX = "~reversal"
"""What the core appends to an original's source_ref for the reversal it writes."""

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


# -- answers -------------------------------------------------------------------------
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


def pick(
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


# -- contacts ----------------------------------------------------------------------------
def contact_from_record(record: dict[str, Any]) -> Contact:
    """A Billy ``contact`` (with its ``contactPersons`` embedded) as a Contact; a
    ``person`` contact's name is split at the last space into first and last name."""
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


def contact_payload(
    customer: Customer, key: str, *, country: str, payment_terms_days: int, payment_terms_mode: str | None
) -> dict[str, Any]:
    """The ``contact`` body for a new customer; our key goes in ``contactNo``."""
    person = " ".join(p for p in (customer.first_name, customer.last_name) if p).strip()
    address = customer.address
    name = (customer.company or "").strip() or person or (address.name if address else None)
    name = name or customer.email or customer.source_id
    body: dict[str, Any] = {
        "type": "company" if customer.is_company else "person",
        "name": name,
        "countryId": country,
        "contactNo": key,
        "isCustomer": True,
        "paymentTermsDays": payment_terms_days,
    }
    if payment_terms_mode:
        body["paymentTermsMode"] = payment_terms_mode
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
    return body


# -- booking templates and products -------------------------------------------------------
def template_name(document: Document, planned: PlannedLine) -> str:
    """The template that books a line: shipping or goods, by the document's tax region."""
    kind = "shipping" if planned.line.kind == LineKind.SHIPPING else "goods"
    return f"{kind}_{document.tax_region.value}"


def product_number(name: str, account: dict[str, Any], ruleset: dict[str, Any]) -> tuple[str, str]:
    """(``productNo``, account key) of the product for a template's account and ruleset."""
    account_key = str(account.get("accountNo") or account["id"])
    return f"ledgerlink-{name}-{account_key}-{ruleset['id']}", account_key


def product_payload(
    name: str, product_no: str, account: dict[str, Any], ruleset: dict[str, Any], account_key: str,
    overridden: bool,
) -> dict[str, Any]:
    """The ``product`` body, named after the template ("Varer (Indland)"; with the
    account when a pipeline rule overrode the template's)."""
    label = TEMPLATE_LABELS[name]
    if overridden:
        label = f"{label}, konto {account_key}"
    return {
        "name": label,
        "productNo": product_no,
        "accountId": account["id"],
        "salesTaxRulesetId": ruleset["id"],
        "description": f"ledgerlink template {name}",
    }


# -- invoices ------------------------------------------------------------------------------
# One invoice line as the plugin plans it: (product id, description, quantity, unit price,
# VAT rate as a fraction). The rate is the source's; Billy takes its own from the product.
SentLine = tuple[str, str, Decimal, Decimal, Decimal]


def line_figures(line: Line, product_id: str, basis: str) -> SentLine:
    """A source line in ``basis`` (``"gross"``: Billy's ``taxMode: incl``, else ``excl``).

    Billy multiplies quantity by unit price; when that does not give the line total to
    the øre, the total is booked once and the quantity kept in the text."""
    total = line.gross if basis == "gross" else line.net
    quantity, text = line.quantity, line.description
    unit = line.unit if basis == line.price_basis else total / quantity
    if unit != money(unit) or money(unit * quantity) != total:
        text = f"{plain(quantity)} x {text}"
        quantity, unit = Decimal(1), total
    return product_id, text, quantity, money(unit), line.tax_rate / 100


def grouped_figures(lines: list[tuple[Line, str]], basis: str) -> list[SentLine]:
    """The lines summed per product and VAT rate: one Billy line per group (so Billy
    rounds VAT once per group, as a source that computes VAT on its totals does)."""
    groups: dict[tuple[str, Decimal], list[Line]] = {}
    for line, product_id in lines:
        groups.setdefault((product_id, line.tax_rate), []).append(line)
    out: list[SentLine] = []
    for (product_id, rate), members in groups.items():
        total = sum(((m.gross if basis == "gross" else m.net) for m in members), Decimal("0.00"))
        if len(members) == 1:
            out.append(line_figures(members[0], product_id, basis))
            continue
        text = "; ".join(f"{plain(m.quantity)} x {m.description}" for m in members)
        out.append((product_id, text[:1000], Decimal(1), total, rate / 100))
    return out


def predicted_totals(sent: list[SentLine], tax_mode: str) -> tuple[Decimal, Decimal]:
    """(gross, tax) as Billy computes them: each line's VAT rounded half-up to the øre
    (``incl``: total x r / (1 + r); ``excl``: total x r)."""
    gross = tax = Decimal("0.00")
    for _product, _text, quantity, unit, rate in sent:
        total = money(quantity * unit)
        if tax_mode == "incl":
            line_tax = money(total * rate / (1 + rate))
            gross += total
        else:
            line_tax = money(total * rate)
            gross += total + line_tax
        tax += line_tax
    return gross, tax


def invoice_form(
    document: Document, lines: list[Line], products: list[str]
) -> tuple[str, list[SentLine], str]:
    """(``taxMode``, lines, how) whose totals, rounded the way Billy rounds, give the
    source's gross and VAT to the øre. Tried in order: one line per source line in the
    source's price basis; the same in gross prices (``incl``, each line's gross = net +
    stated VAT); lines grouped per product and rate (gross, then net). When none
    matches (the product's rate differs, say), the first is sent and the check after
    creation quarantines the document."""
    natural = "gross" if lines[0].price_basis == "gross" else "net"
    other = "net" if natural == "gross" else "gross"
    pairs = list(zip(lines, products, strict=True))
    candidates: list[tuple[str, list[SentLine], str]] = []
    for basis in (natural, other):
        sent = [line_figures(line, product, basis) for line, product in pairs]
        candidates.append((basis, sent, "one line per source line"))
    for basis in ("gross", "net"):
        candidates.append((basis, grouped_figures(pairs, basis), "lines grouped per product and VAT rate"))
    wanted = (document.total_gross, document.total_tax)
    for basis, sent, how in candidates:
        mode = "incl" if basis == "gross" else "excl"
        if predicted_totals(sent, mode) == wanted:
            return mode, sent, how
    basis, sent, how = candidates[0]
    return ("incl" if basis == "gross" else "excl"), sent, how


def invoice_lines(sent: list[SentLine]) -> list[dict[str, Any]]:
    """The ``lines`` of the ``invoice`` body."""
    return [
        {
            "productId": product_id,
            "description": text,
            "quantity": float(quantity) if quantity != quantity.to_integral() else int(quantity),
            "unitPrice": float(unit),
            "priority": priority,
        }
        for priority, (product_id, text, quantity, unit, _rate) in enumerate(sent, start=1)
    ]


def invoice_payload(
    document: Document, plan: Plan, *, contact_id: str, invoice_no: str, lines: list[dict[str, Any]],
    tax_mode: str, payment_terms_days: int, payment_terms_mode: str | None, base_currency: str | None,
    credited_invoice_id: str | None = None,
) -> dict[str, Any]:
    """The ``invoice`` body (a draft): the payment terms from the plan's due date when it
    has one; ``exchangeRate`` (units of the base currency per unit of the invoice's
    currency, the plan's rate) when the invoice is not in the organization's currency;
    ``type: creditNote`` and ``creditedInvoiceId`` for a credit note (its lines at
    positive prices: the type makes it a credit)."""
    days = payment_terms_days
    if plan.due_date is not None:
        days = (plan.due_date - plan.document_date).days
    body: dict[str, Any] = {
        "contactId": contact_id,
        "entryDate": plan.document_date.isoformat(),
        "currencyId": document.currency,
        "invoiceNo": invoice_no,
        "taxMode": tax_mode,
        "paymentTermsDays": days,
        "lines": lines,
    }
    if base_currency and document.currency != base_currency and plan.exchange_rate is not None:
        body["exchangeRate"] = float(plan.exchange_rate)
    if payment_terms_mode:
        body["paymentTermsMode"] = payment_terms_mode
    if credited_invoice_id is not None:
        body["type"] = "creditNote"
        body["creditedInvoiceId"] = credited_invoice_id
    return body


def as_billy_figures(document: Document) -> Document:
    """The document with the signs Billy shows: an invoice as it is, a credit note with
    its lines (totals, stated tax, unit prices) made positive, since Billy's
    ``type: creditNote`` already says that it credits (see the README's assumptions)."""
    if document.kind != DocumentKind.CREDIT_NOTE:
        return document
    lines = [negated(line) for line in document.lines]
    return document.model_copy(update={
        "lines": lines,
        "stated_total": None if document.stated_total is None else -document.stated_total,
        "kind": DocumentKind.INVOICE,
    })


def negated(line: Line) -> Line:
    """A line with its total, stated tax and unit price negated (a credit note's line
    at the positive figures Billy's credit note takes)."""
    return line.model_copy(update={
        "total": -line.total,
        "tax_amount": None if line.tax_amount is None else -line.tax_amount,
        "unit_price": None if line.unit_price is None else -line.unit_price,
    })


def record_type(record: dict[str, Any]) -> str:
    """Billy's ``type`` of an invoice record (``invoice`` when the answer leaves it out)."""
    return str(record.get("type") or "invoice")


def wanted_type(document: Document) -> str:
    return "creditNote" if document.kind == DocumentKind.CREDIT_NOTE else "invoice"


def amount_problem(document: Document, invoice: dict[str, Any]) -> str | None:
    """Billy's type, gross and tax against the source's, to the øre. A credit note is
    compared at its positive figures (:func:`as_billy_figures`) and must be Billy's
    ``creditNote``."""
    kind = wanted_type(document)
    if record_type(invoice) != kind:
        return f"Billy's record is a {record_type(invoice)}, the source document a {kind}"
    figures = as_billy_figures(document)
    net, tax = dec(invoice.get("amount")), dec(invoice.get("tax"))
    gross = net + tax
    if gross != figures.total_gross or tax != figures.total_tax:
        what = "credit note" if kind == "creditNote" else "document"
        return (
            f"Billy computed {gross} {document.currency} gross / {tax} tax, the source {what} "
            f"says {figures.total_gross} gross / {figures.total_tax} tax (check the VAT "
            "ruleset of the template against the source's tax rate)"
        )
    return None


# -- payments ------------------------------------------------------------------------------
# One payment: (amount, date, kind), kind "money" or "voucher" (a gift voucher redeemed).
Due = tuple[Decimal, _dt.date, str]
# One bank payment Billy has: (amount in the invoice's currency, entry date, kind or "" when
# its cash account was not looked up, bankPayment id).
Booked = tuple[Decimal, str, str, str]


def payments_due(document: Document, default_date: _dt.date) -> list[Due]:
    """Each payment the source records, with its own amount, date and kind (a payment
    without a date: the document's payment date, else ``default_date``); a document paid
    in the source without individual payments counts as one payment of its gross."""
    fallback = document.payment_date or default_date
    if document.payments:
        return [(money(p.amount), p.date or fallback, p.kind) for p in document.payments if money(p.amount) > 0]
    if document.payment_date is not None:
        return [(document.total_gross, document.payment_date, "money")]
    return []


def booked_payments(invoice: dict[str, Any]) -> list[Booked] | None:
    """(amount, entry date, "", bank payment id) of each bank payment Billy has on the
    invoice (its ``balanceModifiers`` that come from a ``bankPayment`` and are not
    voided); None when the answer has no ``balanceModifiers``. The kind is filled in by
    the target when it matters (a document with voucher payments)."""
    modifiers = invoice.get("balanceModifiers")
    if not isinstance(modifiers, list):
        return None
    out = []
    for modifier in modifiers:
        if not isinstance(modifier, dict) or modifier.get("isVoided"):
            continue
        reference = str(modifier.get("modifierReference") or "")
        if reference and not reference.startswith("bankPayment:"):
            continue
        payment_id = reference.partition(":")[2]
        out.append((abs(dec(modifier.get("amount"))), str(modifier.get("entryDate") or "")[:10], "", payment_id))
    return out


def unbooked_payments(due: list[Due], booked: list[Booked]) -> list[Due]:
    """The source's payments Billy does not have yet: each booked entry accounts for one
    source payment of the same amount and kind (same date first, then any date). An
    entry whose kind is unknown ("") pairs with either kind."""
    left = list(booked)
    todo: list[Due] = []
    unmatched: list[Due] = []

    def same_kind(entry: Booked, kind: str) -> bool:
        return entry[2] in ("", kind)

    for amount, day, kind in due:
        hit = next((b for b in left if b[:2] == (amount, day.isoformat()) and same_kind(b, kind)), None)
        if hit is not None:
            left.remove(hit)
        else:
            unmatched.append((amount, day, kind))
    for amount, day, kind in unmatched:
        hit = next((b for b in left if b[0] == amount and same_kind(b, kind)), None)
        if hit is not None:
            left.remove(hit)
        else:
            todo.append((amount, day, kind))
    return todo


def unbooked_by_total(due: list[Due], already: Decimal) -> list[Due] | None:
    """Without Billy's entries: the earliest payments that add up to what Billy already
    has are booked, the rest are not; None when a payment would be split."""
    covered = Decimal("0.00")
    ordered = sorted(due, key=lambda p: p[1])
    for index, (amount, _day, _kind) in enumerate(ordered):
        if covered == already:
            return ordered[index:]
        covered += amount
        if covered > already:
            return None
    return [] if covered == already else None


def bank_payment_payload(
    entry_date: _dt.date, cash_amount: Decimal, cash_account_id: str, invoice_id: str,
    cash_exchange_rate: Decimal | None = None,
) -> dict[str, Any]:
    """The ``bankPayment`` body that records one payment on one invoice; ``cashAmount`` is
    in the cash account's currency, ``cashExchangeRate`` (1 invoice currency = rate cash
    account currency) only when the two differ."""
    body: dict[str, Any] = {
        "entryDate": entry_date.isoformat(),
        "cashAmount": float(cash_amount),
        "cashSide": "debit",
        "cashAccountId": cash_account_id,
        "associations": [{"subjectReference": f"invoice:{invoice_id}"}],
    }
    if cash_exchange_rate is not None:
        body["cashExchangeRate"] = float(cash_exchange_rate)
    return body


def plain(value: Decimal) -> str:
    """A quantity without trailing zeros ("3", "1.5")."""
    return format(value.normalize(), "f")


__all__ = [
    "CREDIT_NOTE_NO",
    "REVERSAL_SUFFIX",
    "Booked",
    "Due",
    "TEMPLATE_LABELS",
    "TEMPLATE_NAMES",
    "SentLine",
    "amount_problem",
    "as_billy_figures",
    "bank_payment_payload",
    "booked_payments",
    "billy_error_message",
    "contact_from_record",
    "contact_payload",
    "dec",
    "grouped_figures",
    "invoice_form",
    "invoice_lines",
    "invoice_payload",
    "line_figures",
    "negated",
    "payments_due",
    "pick",
    "plain",
    "predicted_totals",
    "product_number",
    "product_payload",
    "record_type",
    "template_name",
    "unbooked_by_total",
    "unbooked_payments",
    "wanted_type",
]
