"""Mapping Cobot records to ledgerlink records, checked to the cent."""

from __future__ import annotations

import copy
from decimal import Decimal

from ledgerlink import BrokenDocument, Document, DocumentKind
from ledgerlink_cobot.mapping import (
    customer_from_membership,
    document_from_invoice,
    parse_date,
    parse_timestamp,
)


def test_invoice_lines_are_net_with_stated_tax_to_the_cent(seed):
    doc = document_from_invoice(seed["invoices"][0])
    assert isinstance(doc, Document)
    assert doc.source_ref == "f0000000000000000000000000000001"
    assert doc.number == "CU-2024-100"
    assert doc.kind == DocumentKind.INVOICE
    assert [line.price_basis for line in doc.lines] == ["net", "net"]
    first, second = doc.lines
    assert (first.net, first.tax, first.gross) == (Decimal("250.00"), Decimal("47.50"), Decimal("297.50"))
    assert (second.net, second.tax, second.gross) == (Decimal("31.00"), Decimal("5.89"), Decimal("36.89"))
    assert second.quantity == Decimal("2.0") and second.unit == Decimal("15.5")
    assert [line.booking_code for line in doc.lines] == ["FlexPlan", "MeetingRoom"]
    assert first.tax_rate == Decimal("19.0")
    for line, item in zip(doc.lines, seed["invoices"][0]["attributes"]["items"], strict=True):
        assert line.net + line.tax == line.gross == Decimal(item["totalAmount"]["gross"])
    assert doc.total_gross == Decimal("334.39") == doc.stated_total
    assert doc.consistency_problems() == []
    assert doc.payments[0].amount == Decimal("334.39") and doc.is_paid
    assert doc.customer.source_id == "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    assert doc.customer.customer_number == "1001"
    assert doc.customer.company == "Acme GmbH" and doc.customer.country == "DE"
    assert doc.cursor == "2024-02-01"
    assert doc.extra["cost_centres"] == ["100", None]
    assert doc.skip_reason is None


def test_stated_tax_is_kept_even_when_rounding_differs(seed):
    inv = copy.deepcopy(seed["invoices"][0])
    item = inv["attributes"]["items"][0]["totalAmount"]
    # Cobot rounded per unit: 3 x 0.07 at 19% -> stated tax 0.03 (0.0399 computed 0.04).
    item.update({"net": "0.21", "gross": "0.24", "taxes": [{"name": "VAT", "rate": "19.0", "amount": "0.03"}]})
    inv["attributes"]["totalAmount"]["net"] = "31.21"
    doc = document_from_invoice(inv)
    assert isinstance(doc, Document)
    assert doc.lines[0].tax == Decimal("0.03") and doc.lines[0].gross == Decimal("0.24")


def test_missing_accounting_codes_give_the_skip_reason(seed):
    doc = document_from_invoice(seed["invoices"][1])
    assert isinstance(doc, Document)
    assert doc.skip_reason == "lines without accounting code: 2 ('Day pass'), 3 ('Coffee flat')"
    assert doc.lines[2].tax_rate == Decimal("7.0") and doc.lines[2].tax == Decimal("0.70")


def test_correction_invoice_is_a_credit_note(seed):
    doc = document_from_invoice(seed["invoices"][2])
    assert isinstance(doc, Document)
    assert doc.kind == DocumentKind.CREDIT_NOTE
    assert doc.extra["corrected_invoice"] == "f0000000000000000000000000000001"
    assert doc.total_gross == Decimal("-36.89")


def test_net_plus_tax_not_gross_is_quarantined(seed):
    inv = copy.deepcopy(seed["invoices"][0])
    inv["attributes"]["items"][1]["totalAmount"]["gross"] = "36.99"
    broken = document_from_invoice(inv)
    assert isinstance(broken, BrokenDocument) and broken.quarantine
    assert "net 31.00 + tax 5.89 = 36.89 but Cobot states gross 36.99" in broken.reason
    assert broken.cursor == "2024-02-01" and broken.number == "CU-2024-100"


def test_two_tax_rates_on_one_line_are_quarantined(seed):
    inv = copy.deepcopy(seed["invoices"][0])
    inv["attributes"]["items"][0]["totalAmount"]["taxes"].append({"name": "PST", "rate": "7.0", "amount": "0"})
    broken = document_from_invoice(inv)
    assert isinstance(broken, BrokenDocument) and broken.quarantine
    assert "VAT 19.0%, PST 7.0%" in broken.reason


def test_items_not_adding_up_to_the_stated_net_are_quarantined(seed):
    inv = copy.deepcopy(seed["invoices"][0])
    inv["attributes"]["totalAmount"]["net"] = "282.00"
    broken = document_from_invoice(inv)
    assert isinstance(broken, BrokenDocument) and "invoice states net 282.00" in broken.reason


def test_broken_records_name_the_problem(seed):
    inv = copy.deepcopy(seed["invoices"][0])
    inv["attributes"]["items"][0]["totalAmount"]["net"] = "abc"
    broken = document_from_invoice(inv)
    assert isinstance(broken, BrokenDocument) and not broken.quarantine
    assert "item 1 ('Flex Desk February') totalAmount.net 'abc' is not a number" in broken.reason
    inv = copy.deepcopy(seed["invoices"][0])
    del inv["relationships"]["debitor"]
    assert "names no debitor" in document_from_invoice(inv).reason
    inv = copy.deepcopy(seed["invoices"][0])
    inv["attributes"]["invoiceDate"] = "01.02.2024"
    assert "invoiceDate '01.02.2024' is not a date" in document_from_invoice(inv).reason
    assert isinstance(document_from_invoice({"type": "invoices"}), BrokenDocument)


def test_mapping_is_deterministic_and_ignores_volatile_fields(seed):
    a = document_from_invoice(copy.deepcopy(seed["invoices"][0]))
    inv = copy.deepcopy(seed["invoices"][0])
    inv["attributes"]["pdf"]["url"] = "https://api.cobot.me/invoices/x.pdf?token=999"
    inv["attributes"]["reminderStatus"] = "sent"
    inv["attributes"]["sentRemindersCount"] = 2
    b = document_from_invoice(inv)
    assert a.model_dump_json() == b.model_dump_json()
    inv["attributes"]["items"][0]["description"] = "Flex Desk Feb."
    assert document_from_invoice(inv).model_dump_json() != a.model_dump_json()


def test_dates_in_both_api_styles():
    assert str(parse_date("2024-12-20T06:22:29+01:00", "d")) == "2024-12-20"
    assert str(parse_date("2012/01/01", "d")) == "2012-01-01"
    assert parse_timestamp("2010/01/01 12:00:00 +0100", "t").isoformat() == "2010-01-01T11:00:00+00:00"
    assert parse_timestamp("2012-04-12", "t").isoformat() == "2012-04-12T00:00:00+00:00"


def test_membership_becomes_customer(seed):
    c = customer_from_membership(seed["memberships"][0])
    assert c.source_id == "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    assert (c.first_name, c.last_name, c.company) == ("Jane", "Smith", "Acme GmbH")
    assert c.customer_number == "1001" and c.email == "jane@acme.example"
    assert c.address is not None and (c.address.zip, c.address.city, c.address.country) == ("10115", "Berlin", "DE")
    assert c.extra["confirmed_at"] == "2024-02-01T09:30:00+00:00"
    unconfirmed = customer_from_membership(seed["memberships"][3])
    assert unconfirmed.extra["confirmed_at"] is None and unconfirmed.customer_number is None
    numeric = customer_from_membership({**seed["memberships"][0], "customer_number": 101, "address": {"country": "Germany"}})
    assert numeric.customer_number == "101" and numeric.address is None
