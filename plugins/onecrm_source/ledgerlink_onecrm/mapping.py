"""A 1CRM invoice (header, line groups, lines, adjustments, its billing account and its
assigned user, as 1CRM's REST API answers them) -> ledgerlink ``Document`` or
``BrokenDocument``.

No HTTP here: pure functions, tested without a sandbox. 1CRM sends every value as a
string; each is parsed strictly, and one that cannot be read gives a ``BrokenDocument``
whose reason names the invoice, the field and the value. The rules (see the plugin
README for each decision):

- 1CRM prices net (a B2B system): ``Line.total`` is the line's ``ext_price``
  (``price_basis="net"``); discounts and shipping (group adjustments) become lines of
  their own, at the rate of the group they belong to;
- 1CRM states tax per line group (``StandardTax`` adjustments with ``rate`` and
  ``amount``): each line's tax is the rate applied to it, and the cent the per-line
  rounding moves is put on lines (at most one cent each) so that the lines' tax equals
  the group's stated tax to the cent. A difference of more than a cent per line is not
  repaired: the lines keep their own tax and the runner quarantines the document with
  both figures (``stated_total`` is 1CRM's gross ``amount``);
- a net total (``pretax``) that the lines do not give is quarantined with both figures;
- ``cancelled = "1"`` is ``Document.cancelled``; a paid, old, unselected or numberless
  invoice is a full ``Document`` with ``skip_reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from ledgerlink import (
    Address,
    BrokenDocument,
    Customer,
    Dispatch,
    Document,
    Line,
    LineKind,
    money,
    parse_decimal,
)
from pydantic import ValidationError

CENT = Decimal("0.01")
TRUE_WORDS = {"1", "true", "yes", "on", "y", "x"}
TAX_TYPES = {"StandardTax"}
DISCOUNT_TYPES = {"StandardDiscount", "StdPercentDiscount", "StdFixedDiscount"}
SHIPPING_TYPES = {"TaxedShipping", "UntaxedShipping"}
#: 1CRM line group types -> the kind of their lines.
GROUP_KINDS = {"products": LineKind.GOODS, "service": LineKind.SERVICE, "support": LineKind.SERVICE,
               "expenses": LineKind.SERVICE}

#: Country names 1CRM installations write into free-text address fields -> ISO codes
#: (English and German; more through the setting ``country_names``).
COUNTRY_NAMES: dict[str, str] = {
    "germany": "DE", "deutschland": "DE", "austria": "AT", "österreich": "AT", "oesterreich": "AT",
    "switzerland": "CH", "schweiz": "CH", "france": "FR", "frankreich": "FR", "netherlands": "NL",
    "niederlande": "NL", "the netherlands": "NL", "belgium": "BE", "belgien": "BE", "italy": "IT",
    "italien": "IT", "spain": "ES", "spanien": "ES", "poland": "PL", "polen": "PL", "denmark": "DK",
    "dänemark": "DK", "sweden": "SE", "schweden": "SE", "luxembourg": "LU", "luxemburg": "LU",
    "czech republic": "CZ", "czechia": "CZ", "tschechien": "CZ", "ireland": "IE", "irland": "IE",
    "united kingdom": "GB", "great britain": "GB", "großbritannien": "GB", "vereinigtes königreich": "GB",
    "united states": "US", "usa": "US", "vereinigte staaten": "US", "norway": "NO", "norwegen": "NO",
    "portugal": "PT", "finland": "FI", "finnland": "FI", "hungary": "HU", "ungarn": "HU",
}


class MappingError(ValueError):
    """A field that cannot be read; the message names the field and the value."""


@dataclass
class Options:
    """What the connection's settings decide for the mapping (see ``OnecrmSettings``)."""

    base_currency: str = "EUR"
    start_date: date | None = None
    shipping_stages: list[str] | None = None
    export_flag_field: str | None = None
    vat_id_field: str | None = "tax_information"
    customer_number_field: str | None = None
    dispatch: Literal["account", "automatic", "manual"] = "account"
    dispatch_field: str | None = None
    dispatch_values: Mapping[str, str] = field(default_factory=dict)
    default_dispatch: str | None = None
    language_field: str | None = None
    language_values: Mapping[str, str] = field(default_factory=dict)
    default_language: str | None = None
    channel_field: str | None = None
    channel_values: Mapping[str, str] = field(default_factory=dict)
    sender_company: str | None = None
    country_names: Mapping[str, str] = field(default_factory=dict)
    tax_classes: Mapping[str, Decimal] = field(default_factory=dict)
    status_field: str | None = None


@dataclass
class InvoiceBundle:
    """One invoice as read from 1CRM: its header and related records."""

    invoice: dict[str, Any]
    groups: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    adjustments: list[dict[str, Any]]
    account: dict[str, Any] | None = None
    user: dict[str, Any] | None = None
    currency: str | None = None
    """The ISO code of the invoice's currency (None: not resolved: the base currency's id)."""


# -- strict readers --------------------------------------------------------------------------
def text(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MappingError(f"{key} {str(value)[:40]!r} is not text")
    return str(value).strip() or None


def number(record: Mapping[str, Any], key: str, *, required: bool = True) -> Decimal | None:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MappingError(f"{key} is missing")
        return None
    try:
        return parse_decimal(value, key)
    except ValueError as exc:
        raise MappingError(str(exc)) from None


def required(record: Mapping[str, Any], key: str) -> Decimal:
    """A number that must be there (``number`` with ``required=True``)."""
    value = number(record, key)
    assert value is not None
    return value


def day(record: Mapping[str, Any], key: str) -> date | None:
    """A 1CRM date ("2026-03-02"); empty, null and "0000-00-00" are no date."""
    value = text(record, key)
    if value is None or value.startswith("0000-00-00"):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise MappingError(f"{key} {value[:40]!r} is not a date (YYYY-MM-DD)") from None


def flag(record: Mapping[str, Any], key: str) -> bool:
    """1CRM's booleans are "0"/"1"; anything else is refused (never guessed)."""
    value = record.get(key)
    if value is None or value == "" or value is False:
        return False
    if value is True:
        return True
    word = str(value).strip().lower()
    if word in ("0", "false", "no"):
        return False
    if word in ("1", "true", "yes"):
        return True
    raise MappingError(f"{key} {str(value)[:40]!r} is not a yes/no value (0 or 1)")


def position(record: Mapping[str, Any]) -> tuple[int, str]:
    raw = str(record.get("position") or "0").strip()
    return (int(raw) if raw.lstrip("-").isdigit() else 0, str(record.get("id") or ""))


def country_code(raw: str | None, names: Mapping[str, str]) -> str | None:
    """An ISO code from 1CRM's free-text country ("Germany", "Deutschland", "DE")."""
    if raw is None:
        return None
    key = raw.strip().lower()
    custom = {k.strip().lower(): v for k, v in names.items()}
    if key in custom:
        return custom[key].upper()
    if key in COUNTRY_NAMES:
        return COUNTRY_NAMES[key]
    if len(key) == 2 and key.isalpha():
        return key.upper()
    raise MappingError(f"country {raw[:40]!r} is not a country ledgerlink knows (add it to the setting "
                       "country_names, e.g. {\"" + raw[:20] + "\" = \"DE\"})")


def full_number(invoice: Mapping[str, Any]) -> str | None:
    """The printed number: ``full_number``, else ``prefix`` + ``invoice_number``."""
    shown = text(invoice, "full_number")
    if shown:
        return shown
    num = text(invoice, "invoice_number")
    return None if num is None else (text(invoice, "prefix") or "") + num


def cursor_of(invoice: Mapping[str, Any]) -> str:
    """The listing cursor: ``date_modified`` and the id ("2026-03-02 10:00:00|<id>")."""
    return f"{text(invoice, 'date_modified') or ''}|{invoice.get('id')}"


# -- the export options -------------------------------------------------------------------------
def _choice(account: Mapping[str, Any] | None, key: str | None, values: Mapping[str, str], what: str,
            label: str) -> str | None:
    if not key or account is None:
        return None
    raw = text(account, key)
    if raw is None:
        return None
    table = {k.strip().lower(): v for k, v in values.items()}
    if raw.lower() in table:
        return table[raw.lower()]
    raise MappingError(f"the account {label!r} has {what} {raw[:40]!r} in {key}, which the setting "
                       f"{what}_values does not name (known: {', '.join(sorted(values)) or 'none'})")


def dispatch_of(bundle: InvoiceBundle, options: Options) -> Dispatch | None:
    """The export dialog's choices: send or draft (the account's preset, overridable by the
    connection's ``dispatch``), language, channel, and the sender (the assigned user)."""
    account = bundle.account
    label = str((account or {}).get("name") or bundle.invoice.get("billing_account") or "?")
    if options.dispatch == "account":
        mode = _choice(account, options.dispatch_field, options.dispatch_values, "dispatch", label)
        mode = mode or options.default_dispatch
    else:
        mode = options.dispatch
    language = _choice(account, options.language_field, options.language_values, "language", label)
    language = language or options.default_language
    channel = _choice(account, options.channel_field, options.channel_values, "channel", label)
    sender = sender_address(bundle.user, options)
    if mode is None and language is None and channel is None and sender is None:
        return None
    try:
        return Dispatch(send=None if mode is None else mode == "automatic", language=language,
                        channel=channel, sender=sender)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise MappingError(f"the export options of account {label!r}: {_first_error(exc)}") from None


def sender_address(user: Mapping[str, Any] | None, options: Options) -> Address | None:
    """The assigned user's address (1CRM's "Benutzer-Adresse"), None when it has no street."""
    if not user:
        return None
    street = text(user, "address_street")
    if not street:
        return None
    person = text(user, "full_name") or " ".join(
        p for p in (text(user, "first_name"), text(user, "last_name")) if p) or text(user, "user_name")
    name = ", ".join(p for p in (options.sender_company, person) if p) or None
    return Address(name=name, street=street, zip=text(user, "address_postalcode"), city=text(user, "address_city"),
                   country=country_code(text(user, "address_country"), options.country_names))


# -- lines ----------------------------------------------------------------------------------------
@dataclass
class _Group:
    record: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    adjustments: list[dict[str, Any]] = field(default_factory=list)


def _distribute(lines: list[Line], stated: Decimal, rate: Decimal) -> list[Line]:
    """Give the lines of one rate the group's stated tax: the rate's tax per line, and the
    cents the per-line rounding moved put on the largest lines, one cent each at most. When
    more than that is missing the lines keep the rate's tax (the totals then disagree and
    the runner quarantines the document with both figures)."""
    if not lines:
        return lines
    computed = [money(line.total * rate / 100) for line in lines]
    diff = money(stated) - sum(computed, Decimal("0.00"))
    cents = int((abs(diff) / CENT).to_integral_value())
    if cents > len(lines):
        return [line.model_copy(update={"tax_amount": tax}) for line, tax in zip(lines, computed, strict=True)]
    step = CENT if diff > 0 else -CENT
    order = sorted(range(len(lines)), key=lambda i: (-abs(lines[i].total), i))
    for i in order[:cents]:
        computed[i] += step
    return [line.model_copy(update={"tax_amount": tax}) for line, tax in zip(lines, computed, strict=True)]


def _lines(bundle: InvoiceBundle, options: Options) -> list[Line]:
    groups: dict[str, _Group] = {}
    for g in sorted(bundle.groups, key=position):
        groups[str(g.get("id"))] = _Group(g)
    for rec in bundle.lines:
        gid = str(rec.get("line_group_id"))
        if gid not in groups:
            raise MappingError(f"line {text(rec, 'name') or rec.get('id')!r} belongs to no line group of the invoice")
        groups[gid].lines.append(rec)
    for rec in bundle.adjustments:
        gid = str(rec.get("line_group_id"))
        if gid not in groups:
            raise MappingError(f"adjustment {text(rec, 'name') or rec.get('id')!r} belongs to no line group")
        groups[gid].adjustments.append(rec)
    out: list[Line] = []
    for group in groups.values():
        out += _group_lines(group, options)
    if not out:
        raise MappingError("the invoice has no lines")
    return out


def _group_lines(group: _Group, options: Options) -> list[Line]:
    gname = text(group.record, "name") or f"group {position(group.record)[0]}"
    kind = GROUP_KINDS.get(str(group.record.get("group_type") or "").lower(), LineKind.SERVICE)
    taxes = [a for a in group.adjustments if text(a, "type") in TAX_TYPES]
    unknown = [text(a, "type") for a in group.adjustments
               if text(a, "type") not in TAX_TYPES | DISCOUNT_TYPES | SHIPPING_TYPES]
    if unknown:
        raise MappingError(f"{gname}: adjustment type {unknown[0]!r} is not one ledgerlink maps (compounded tax "
                           "is not used in the EU)")
    group_rates = {required(a, "rate") for a in taxes if not text(a, "line_id")}
    line_rates: dict[str, Decimal] = {}
    for a in taxes:
        if text(a, "line_id"):
            line_rates[str(a["line_id"])] = required(a, "rate")

    def rate_of(rec: Mapping[str, Any], what: str) -> Decimal:
        rid = str(rec.get("id"))
        if rid in line_rates:
            return line_rates[rid]
        tax_class = text(rec, "tax_class_id")
        if tax_class and tax_class in options.tax_classes:
            return Decimal(options.tax_classes[tax_class])
        if len(group_rates) == 1:
            return next(iter(group_rates))
        if not group_rates:
            return Decimal(0)
        rates = " and ".join(f"{r.normalize():f} %" for r in sorted(group_rates))
        raise MappingError(f"{gname}: taxes {rates} apply to the whole group, so ledgerlink cannot tell which "
                           f"one {what} carries (map its tax_class_id in the setting tax_classes)")

    lines: list[Line] = []
    rates: list[Decimal] = []
    by_id: dict[str, Line] = {}
    for rec in sorted(group.lines, key=position):
        if text(rec, "parent_id"):
            continue  # a component of an assembly: its price is in the assembly line
        desc = text(rec, "name") or "(no description)"
        where = f"line {desc[:40]!r}"
        try:
            qty = number(rec, "quantity")
            total = number(rec, "ext_price")
            unit = number(rec, "unit_price", required=False)
        except MappingError as exc:
            raise MappingError(f"{where}: {exc}") from None
        assert qty is not None and total is not None
        if qty == 0:
            raise MappingError(f"{where}: quantity 0")
        rate = rate_of(rec, where)
        line = Line(description=desc, quantity=qty, total=total, unit_price=unit, tax_rate=rate,
                    price_basis="net", kind=kind, sku=text(rec, "mfr_part_no"))
        lines.append(line)
        rates.append(rate)
        by_id[str(rec.get("id"))] = line
    for adj in sorted(group.adjustments, key=position):
        kind_word = text(adj, "type")
        if kind_word in TAX_TYPES:
            continue
        name = text(adj, "name")
        amount = number(adj, "amount")
        assert amount is not None
        if amount == 0:
            continue
        if kind_word in DISCOUNT_TYPES:
            target = text(adj, "line_id")
            if target and target in by_id:
                rate = by_id[target].tax_rate
                desc = f"Rabatt {name or ''} ({by_id[target].description[:40]})".replace("  ", " ")
            else:
                rate = rate_of({"id": "-"}, f"the discount {name or ''}".strip())
                desc = f"Rabatt {name}" if name else "Rabatt"
            lines.append(Line(description=desc, total=-abs(amount), tax_rate=rate, price_basis="net",
                              kind=LineKind.DISCOUNT))
        else:  # shipping
            rate = Decimal(0) if kind_word == "UntaxedShipping" else rate_of(
                {"id": "-", "tax_class_id": adj.get("tax_class_id")}, "the shipping")
            lines.append(Line(description=name or "Versand", total=amount, tax_rate=rate, price_basis="net",
                              kind=LineKind.SHIPPING))
        rates.append(rate)
    # The group's stated tax per rate, to the cent.
    stated: dict[Decimal, Decimal] = {}
    for a in taxes:
        r = number(a, "rate")
        amt = number(a, "amount")
        assert r is not None and amt is not None
        stated[r] = stated.get(r, Decimal("0.00")) + amt
    result = list(lines)
    for r, amt in stated.items():
        idx = [i for i, line in enumerate(lines) if line.tax_rate == r]
        fixed = _distribute([lines[i] for i in idx], amt, r)
        for i, line in zip(idx, fixed, strict=True):
            result[i] = line
    return result


# -- the document -----------------------------------------------------------------------------------
def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))


def _customer(bundle: InvoiceBundle, options: Options, dispatch: Dispatch | None) -> Customer:
    inv, account = bundle.invoice, bundle.account or {}
    account_id = text(inv, "billing_account_id")
    if not account_id:
        raise MappingError("billing_account_id is missing (1CRM requires a billing account)")
    name = text(account, "name") or text(inv, "billing_account")
    country = country_code(text(inv, "billing_address_countrycode") or text(inv, "billing_address_country"),
                           options.country_names)
    address = Address(street=text(inv, "billing_address_street"), zip=text(inv, "billing_address_postalcode"),
                      city=text(inv, "billing_address_city"), country=country)
    return Customer(
        source_id=account_id,
        company=name,
        customer_number=text(account, options.customer_number_field) if options.customer_number_field else None,
        email=text(inv, "billing_email") or text(account, "email1"),
        phone=text(inv, "billing_phone") or text(account, "phone_office"),
        vat_id=(text(account, options.vat_id_field) or "").replace(" ", "") or None if options.vat_id_field else None,
        address=address,
        language=dispatch.language if dispatch else None,
        extra={"account_name": name},
    )


def _skip_reason(bundle: InvoiceBundle, options: Options, number_: str | None, invoice_date: date | None,
                 amount: Decimal, due: Decimal | None) -> str | None:
    inv = bundle.invoice
    if not number_:
        return "no invoice number"
    if options.start_date and invoice_date and invoice_date < options.start_date:
        return f"invoice date {invoice_date.isoformat()} is before the start date {options.start_date.isoformat()}"
    if options.shipping_stages is not None:
        stage = text(inv, "shipping_stage") or ""
        if stage.lower() not in {s.lower() for s in options.shipping_stages}:
            return f"shipping stage {stage!r} is not selected (shipping_stages)"
    if options.export_flag_field and str(inv.get(options.export_flag_field) or "").strip().lower() not in TRUE_WORDS:
        return f"not marked for export in 1CRM ({options.export_flag_field})"
    if due is not None and amount > 0 and abs(due) <= Decimal("0.005"):
        return "already paid in 1CRM (amount due 0.00): nothing to collect"
    return None


def document_from_bundle(bundle: InvoiceBundle, options: Options) -> Document | BrokenDocument:
    """The invoice as a Document; a BrokenDocument naming the field when it cannot be read."""
    inv = bundle.invoice
    ref = str(inv.get("id") or "")
    shown = None
    try:
        shown = full_number(inv)
    except MappingError:
        pass
    label = f"1CRM invoice {shown or ref}"
    cursor = cursor_of(inv)
    try:
        return _document(bundle, options, ref, shown, cursor)
    except MappingError as exc:
        return BrokenDocument(ref, f"{label}: {exc}", number=shown, cursor=cursor)
    except ValidationError as exc:
        return BrokenDocument(ref, f"{label}: {_first_error(exc)}", number=shown, cursor=cursor)
    except _Quarantine as exc:
        return BrokenDocument(ref, f"{label}: {exc}", quarantine=True, number=shown, cursor=cursor)


class _Quarantine(ValueError):
    """Figures that contradict each other: a person must look."""


def _document(bundle: InvoiceBundle, options: Options, ref: str, shown: str | None, cursor: str) -> Document:
    inv = bundle.invoice
    invoice_date = day(inv, "invoice_date")
    due_date = day(inv, "due_date")
    amount = number(inv, "amount")
    pretax = number(inv, "pretax", required=False)
    due = number(inv, "amount_due", required=False)
    assert amount is not None
    cancelled = flag(inv, "cancelled")
    currency = bundle.currency or options.base_currency
    rate = number(inv, "exchange_rate", required=False)
    exchange_rate = None
    if currency != options.base_currency:
        if rate is None or rate <= 0:
            raise MappingError(f"exchange_rate {inv.get('exchange_rate')!r} is no rate for a {currency} invoice")
        # 1CRM's rate is units of the invoice's currency per unit of the base currency
        # (amount_usdollar = amount / exchange_rate); ledgerlink's is the other way round.
        exchange_rate = (Decimal(1) / rate).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    dispatch = dispatch_of(bundle, options)
    lines = _lines(bundle, options)
    net = sum((money(line.total) for line in lines), Decimal("0.00"))
    if pretax is not None and money(pretax) != net:
        raise _Quarantine(f"its lines add up to {net} {currency} net, but 1CRM's net total (pretax) is "
                          f"{money(pretax)} {currency}")
    document = Document(
        source_ref=ref,
        number=shown,
        currency=currency,
        exchange_rate=exchange_rate,
        invoice_date=invoice_date,
        due_date=due_date,
        customer=_customer(bundle, options, dispatch),
        lines=lines,
        stated_total=amount,
        source_status=text(inv, options.status_field) if options.status_field else None,
        cancelled=cancelled,
        skip_reason=None if cancelled else _skip_reason(bundle, options, shown, invoice_date, amount, due),
        cursor=cursor,
        dispatch=dispatch,
        extra={"date_modified": text(inv, "date_modified"), "shipping_stage": text(inv, "shipping_stage"),
               "name": text(inv, "name")},
    )
    return document


def documents_in_order(items: Iterable[Document | BrokenDocument]) -> list[Document | BrokenDocument]:
    """Sorted by their cursor (modification time, then id)."""
    return sorted(items, key=lambda d: str(d.cursor))


__all__ = ["InvoiceBundle", "MappingError", "Options", "country_code", "cursor_of", "document_from_bundle",
           "full_number"]
