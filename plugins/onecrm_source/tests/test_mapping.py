"""The mapping, without HTTP: 1CRM's records (strings) -> Document, to the cent."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ledgerlink import BrokenDocument, Document, LineKind
from ledgerlink_onecrm.mapping import InvoiceBundle, Options, document_from_bundle

FIX = Path(__file__).parent / "fixtures"
D = Decimal


def load(name: str) -> Any:
    return json.loads((FIX / name).read_text(encoding="utf-8"))


ACCOUNT = {"id": "8a1d2c3e-4f50-6172-8394-a5b6c7d8e9f0", "name": "Beispiel GmbH", "email1": "info@beispiel.example",
           "tax_information": "DE 123 456 789", "bilendo_dispatch_c": "Manuell", "bilendo_language_c": "English"}
USER = {"id": "1", "full_name": "Anna Schmidt", "address_street": "Hauptstr. 1", "address_city": "Berlin",
        "address_postalcode": "10115", "address_country": "Deutschland"}
OPTIONS = Options(dispatch_field="bilendo_dispatch_c", language_field="bilendo_language_c",
                  dispatch_values={"manuell": "manual", "automatisch": "automatic"},
                  language_values={"english": "en", "deutsch": "de"}, sender_company="Nordlicht GmbH",
                  status_field="bilendo_status_c")


def bundle(**changes: Any) -> InvoiceBundle:
    """The shared material's (synthesized) invoice RE-1042: 800.00 + 2 x 100.00 at 19 %."""
    b = InvoiceBundle(
        invoice=load("data_Invoice_get.synthesized.json")["record"],
        groups=load("data_Invoice_id_line_groups_link.synthesized.json")["records"],
        lines=load("data_Invoice_id_lines_link.synthesized.json")["records"],
        adjustments=load("data_Invoice_id_adjustments_link.synthesized.json")["records"],
        account=copy.deepcopy(ACCOUNT), user=copy.deepcopy(USER), currency="EUR",
    )
    for key, value in changes.items():
        setattr(b, key, value)
    return b


def doc(b: InvoiceBundle | None = None, options: Options = OPTIONS) -> Document:
    mapped = document_from_bundle(b or bundle(), options)
    assert isinstance(mapped, Document), mapped
    return mapped


def broken(b: InvoiceBundle, options: Options = OPTIONS) -> BrokenDocument:
    mapped = document_from_bundle(b, options)
    assert isinstance(mapped, BrokenDocument), mapped
    return mapped


def test_the_synthesized_invoice_to_the_cent() -> None:
    d = doc()
    assert (d.source_ref, d.number, d.currency) == ("5f0c1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", "RE-1042", "EUR")
    assert (d.invoice_date, d.due_date) == (date(2024, 3, 1), date(2024, 3, 15))
    assert [(ln.description, ln.quantity, ln.total, ln.tax_rate, ln.tax_amount, ln.price_basis, ln.sku)
            for ln in d.lines] == [
        ("Wartungspauschale", D(1), D("800.00"), D(19), D("152.00"), "net", "WART-Q"),
        ("Vor-Ort-Einsatz (Stunden)", D(2), D("200.00"), D(19), D("38.00"), "net", "SERV-H")]
    assert (d.total_net, d.total_tax, d.total_gross, d.stated_total) == (D("1000.00"), D("190.00"), D("1190.00"),
                                                                         D("1190.00"))
    assert d.consistency_problems() == []
    c = d.customer
    assert (c.source_id, c.company, c.email, c.vat_id) == (ACCOUNT["id"], "Beispiel GmbH", "billing@example.com",
                                                           "DE123456789")
    assert c.address is not None and (c.address.street, c.address.zip, c.address.city, c.address.country) == (
        "Musterstrasse 1", "10115", "Berlin", "DE")
    assert d.dispatch is not None
    assert (d.dispatch.send, d.dispatch.language, c.language) == (False, "en", "en")
    assert d.dispatch.sender is not None
    assert (d.dispatch.sender.name, d.dispatch.sender.street, d.dispatch.sender.country) == (
        "Nordlicht GmbH, Anna Schmidt", "Hauptstr. 1", "DE")
    assert not d.cancelled and d.skip_reason is None and d.cursor == "2024-03-01 08:20:11|" + d.source_ref


def test_group_tax_spread_so_the_lines_tax_equals_1crms_to_the_cent() -> None:
    b = bundle()
    b.lines = [dict(b.lines[0], id=f"l{i}", position=str(i), name=f"Paket {i}", quantity="1", unit_price="33.33",
                    ext_price="33.33") for i in range(3)]
    b.adjustments[0]["amount"] = "19.00"  # 1CRM: 19 % of 99.99 = 18.9981 -> 19.00; per line 3 x 6.33 = 18.99
    b.invoice.update(amount="118.99", pretax="99.99")
    d = doc(b)
    assert sorted(ln.tax_amount for ln in d.lines) == [D("6.33"), D("6.33"), D("6.34")]
    assert (d.total_tax, d.total_gross) == (D("19.00"), D("118.99"))
    assert d.consistency_problems() == []


def test_lines_that_do_not_add_up_keep_their_figures_and_both_totals_are_named() -> None:
    b = bundle()
    b.adjustments[0]["amount"] = "195.00"  # 5.00 more tax than 19 % gives
    b.invoice["amount"] = "1195.00"
    d = doc(b)
    assert d.total_tax == D("190.00") and d.stated_total == D("1195.00")
    assert d.consistency_problems() == ["lines add up to 1190.00 EUR but the document's total is 1195.00 EUR"]


def test_a_net_total_the_lines_do_not_give_is_quarantined_with_both_figures() -> None:
    b = bundle()
    b.invoice["pretax"] = "1010.00"
    item = broken(b)
    assert item.quarantine
    assert item.reason == ("1CRM invoice RE-1042: its lines add up to 1000.00 EUR net, but 1CRM's net total "
                           "(pretax) is 1010.00 EUR")


def test_discount_shipping_and_a_second_group_at_7_percent() -> None:
    b = bundle()
    group = b.groups[0]["id"]
    b.groups.append({"id": "g2", "name": "Literatur", "position": "2", "group_type": "products"})
    b.lines.append({"id": "l9", "line_group_id": "g2", "position": "1", "name": "Fachbuch", "quantity": "2",
                    "unit_price": "24.95", "ext_price": "49.90", "parent_id": None})
    b.adjustments = [
        {"id": "a1", "line_group_id": group, "line_id": None, "position": "3", "type": "StdPercentDiscount",
         "name": "Stammkunde", "rate": "10", "amount": "100.00"},
        {"id": "a2", "line_group_id": group, "line_id": None, "position": "4", "type": "TaxedShipping",
         "name": "Versand", "amount": "12.90"},
        {"id": "a3", "line_group_id": group, "line_id": None, "position": "5", "type": "StandardTax",
         "name": "MwSt. 19%", "rate": "19", "amount": "173.45"},  # 19 % of 912.90
        {"id": "a4", "line_group_id": "g2", "line_id": None, "position": "2", "type": "StandardTax",
         "name": "MwSt. 7%", "rate": "7", "amount": "3.49"},
    ]
    b.invoice.update(amount="1139.74", pretax="962.80")
    d = doc(b)
    assert [(ln.kind, ln.total, ln.tax_rate) for ln in d.lines] == [
        (LineKind.GOODS, D("800.00"), D(19)), (LineKind.GOODS, D("200.00"), D(19)),
        (LineKind.DISCOUNT, D("-100.00"), D(19)), (LineKind.SHIPPING, D("12.90"), D(19)),
        (LineKind.GOODS, D("49.90"), D(7))]
    assert (d.total_net, d.total_tax, d.total_gross) == (D("962.80"), D("176.94"), D("1139.74"))
    assert d.consistency_problems() == []
    assert d.tax_by_rate()[D(7)] == (D("49.90"), D("3.49"))


def test_mixed_rates_in_one_group_need_line_taxes_or_tax_classes() -> None:
    b = bundle()
    group = b.groups[0]["id"]
    b.adjustments = [
        {"id": "t1", "line_group_id": group, "line_id": None, "type": "StandardTax", "rate": "19", "amount": "152.00"},
        {"id": "t2", "line_group_id": group, "line_id": None, "type": "StandardTax", "rate": "7", "amount": "14.00"}]
    b.invoice.update(amount="1166.00")
    item = broken(b)
    assert item.reason == ("1CRM invoice RE-1042: group 1: taxes 7 % and 19 % apply to the whole group, so "
                           "ledgerlink cannot tell which one line 'Wartungspauschale' carries (map its tax_class_id "
                           "in the setting tax_classes)")
    # Line taxes (line_id set) say it.
    b.adjustments[0]["line_id"] = b.lines[0]["id"]
    b.adjustments[1]["line_id"] = b.lines[1]["id"]
    d = doc(b)
    assert [(ln.tax_rate, ln.tax_amount) for ln in d.lines] == [(D(19), D("152.00")), (D(7), D("14.00"))]
    assert d.total_gross == D("1166.00") and d.consistency_problems() == []


def test_chf_with_1crms_rate_the_other_way_round() -> None:
    b = bundle(currency="CHF")
    b.invoice.update(currency_id="cur-chf", exchange_rate="0.94")
    d = doc(b)
    assert d.currency == "CHF"
    assert d.exchange_rate == D("1.063830")  # EUR per CHF = 1 / (CHF per EUR)
    assert d.total_gross == D("1190.00")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("amount", "1.190,00", "amount '1.190,00' is not a number"),
    ("invoice_date", "01.03.2024", "invoice_date '01.03.2024' is not a date (YYYY-MM-DD)"),
    ("cancelled", "maybe", "cancelled 'maybe' is not a yes/no value (0 or 1)"),
    ("billing_address_country", "Atlantis", "country 'Atlantis' is not a country ledgerlink knows"),
    ("billing_account_id", None, "billing_account_id is missing"),
    ("exchange_rate", "0", None),
])
def test_broken_header_values_name_invoice_field_and_value(field: str, value: Any, words: str | None) -> None:
    b = bundle()
    b.invoice[field] = value
    if field == "exchange_rate":
        b.currency = "CHF"
        words = "exchange_rate '0' is no rate for a CHF invoice"
    item = broken(b)
    assert item.reason.startswith("1CRM invoice RE-1042: ") and words in item.reason, item.reason
    assert "\n" not in item.reason
    assert (item.number, item.cursor) == ("RE-1042", "2024-03-01 08:20:11|" + item.source_ref)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("ext_price", "800,00", "line 'Wartungspauschale': ext_price '800,00' is not a number"),
    ("quantity", "", "line 'Wartungspauschale': quantity is missing"),
    ("quantity", "0", "line 'Wartungspauschale': quantity 0"),
    ("line_group_id", "elsewhere", "belongs to no line group of the invoice"),
])
def test_broken_line_values_name_the_line(field: str, value: Any, words: str) -> None:
    b = bundle()
    b.lines[0][field] = value
    assert words in broken(b).reason


def test_unknown_presets_are_named_with_the_setting() -> None:
    b = bundle()
    b.account = dict(ACCOUNT, bilendo_dispatch_c="Fax")
    assert broken(b).reason == (
        "1CRM invoice RE-1042: the account 'Beispiel GmbH' has dispatch 'Fax' in bilendo_dispatch_c, which the "
        "setting dispatch_values does not name (known: automatisch, manuell)")


def test_the_connection_overrides_the_preset_and_defaults_fill_gaps() -> None:
    forced = Options(**{**OPTIONS.__dict__, "dispatch": "automatic"})
    assert doc(options=forced).dispatch.send is True  # type: ignore[union-attr]
    b = bundle(account=dict(ACCOUNT, bilendo_dispatch_c=None, bilendo_language_c=""), user=None)
    assert doc(b).dispatch is None  # nothing chosen: the target's settings apply
    defaults = Options(**{**OPTIONS.__dict__, "default_dispatch": "automatic", "default_language": "de"})
    chosen = doc(b, defaults).dispatch
    assert chosen is not None and (chosen.send, chosen.language, chosen.sender) == (True, "de", None)


@pytest.mark.parametrize(("changes", "options", "reason"), [
    ({"invoice_number": None, "full_number": None}, {}, "no invoice number"),
    ({}, {"start_date": date(2024, 4, 1)}, "invoice date 2024-03-01 is before the start date 2024-04-01"),
    ({}, {"shipping_stages": ["Shipped"]}, "shipping stage 'Pending' is not selected (shipping_stages)"),
    ({}, {"export_flag_field": "bilendo_export_c"}, "not marked for export in 1CRM (bilendo_export_c)"),
    ({"amount_due": "0.00"}, {}, "already paid in 1CRM (amount due 0.00): nothing to collect"),
])
def test_records_not_to_transfer_are_full_documents_with_a_reason(changes: dict[str, Any], options: dict[str, Any],
                                                                   reason: str) -> None:
    b = bundle()
    b.invoice.update(changes)
    d = doc(b, Options(**{**OPTIONS.__dict__, **options}))
    assert d.skip_reason == reason and d.total_gross == D("1190.00")


def test_marked_for_export_and_cancelled() -> None:
    b = bundle()
    b.invoice["bilendo_export_c"] = "1"
    assert doc(b, Options(**{**OPTIONS.__dict__, "export_flag_field": "bilendo_export_c"})).skip_reason is None
    b.invoice["cancelled"] = "1"
    d = doc(b)
    assert d.cancelled and d.skip_reason is None  # ledgerlink words it (skipped, or flagged after export)


def test_status_field_and_dispatch_are_not_content_but_the_figures_are() -> None:
    first = doc()
    b = bundle()
    b.invoice["bilendo_status_c"] = "Versendet"
    b.invoice["date_modified"] = "2024-03-09 10:00:00"
    b.account = dict(ACCOUNT, bilendo_dispatch_c="Automatisch")
    again = doc(b)
    assert again.source_status == "Versendet"
    content = {"source_status", "cursor", "dispatch", "extra", "customer"}
    assert first.model_dump(exclude=content) == again.model_dump(exclude=content)
    assert first.customer == again.customer
