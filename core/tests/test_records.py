"""Canonical records: totals, tax region and treatment, to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from ledgerlink._records import (
    Address,
    Customer,
    Document,
    Line,
    LineKind,
    Payment,
    TaxRegion,
    TaxTreatment,
    is_eu_member,
    money,
    tax_region,
)
from pydantic import ValidationError

D = Decimal


def doc(lines: list[Line], country: str = "DE", vat_id: str | None = None, **kw) -> Document:
    kw.setdefault("invoice_date", date(2026, 1, 31))
    return Document(source_ref="r1", customer=Customer(source_id="c", vat_id=vat_id, address=Address(country=country)),
                    lines=lines, **kw)


def test_gross_line_keeps_gross_and_derives_net_from_stated_tax() -> None:
    line = Line(description="Mug", total=D("19.99"), tax_rate=D(19), tax_amount=D("3.19"))
    assert (line.gross, line.tax, line.net) == (D("19.99"), D("3.19"), D("16.80"))


def test_gross_line_without_stated_tax_rounds_half_up_to_the_cent() -> None:
    # 10.00 gross at 7 %: tax = 10 * 7 / 107 = 0.654... -> 0.65
    line = Line(description="Book", total=D("10.00"), tax_rate=D(7))
    assert (line.tax, line.net) == (D("0.65"), D("9.35"))
    # 0.05 * 19 / 119 = 0.00798 -> 0.01 (half-up, not banker's)
    assert Line(description="x", total=D("0.05"), tax_rate=D(19)).tax == D("0.01")


def test_net_line_keeps_net_and_adds_tax() -> None:
    line = Line(description="Desk", total=D("250.00"), tax_rate=D(19), price_basis="net")
    assert (line.net, line.tax, line.gross) == (D("250.00"), D("47.50"), D("297.50"))


def test_document_totals_are_sums_of_line_totals() -> None:
    d = doc([
        Line(description="A", total=D("19.99"), tax_rate=D(19)),
        Line(description="B", total=D("10.00"), tax_rate=D(7)),
        Line(description="Shipping", total=D("4.90"), tax_rate=D(19), kind=LineKind.SHIPPING),
        Line(description="Coupon", total=D("-5.00"), tax_rate=D(19), kind=LineKind.DISCOUNT),
    ])
    assert d.total_gross == D("29.89")
    assert d.total_tax == D("3.19") + D("0.65") + D("0.78") + D("-0.80")
    assert d.total_net + d.total_tax == d.total_gross
    assert d.tax_by_rate() == {D(19): (D("16.80") + D("4.12") - D("4.20"), D("3.19") + D("0.78") - D("0.80")),
                               D(7): (D("9.35"), D("0.65"))}


def test_stated_total_that_differs_is_reported_with_both_figures() -> None:
    d = doc([Line(description="A", total=D("19.99"), tax_rate=D(19))], stated_total=D("24.89"))
    assert d.consistency_problems() == ["lines add up to 19.99 EUR but the document's total is 24.89 EUR"]


def test_stated_tax_more_than_a_cent_off_is_reported() -> None:
    ok = Line(description="A", total=D("19.99"), tax_rate=D(19), tax_amount=D("3.20"))  # 1 cent off: fine
    bad = Line(description="B", total=D("19.99"), tax_rate=D(19), tax_amount=D("1.30"))
    assert doc([ok]).consistency_problems() == []
    [problem] = doc([bad]).consistency_problems()
    assert "states tax 1.30" in problem and "gives 3.19" in problem


@pytest.mark.parametrize(("seller", "buyer", "region"), [
    ("DE", "DE", TaxRegion.DOMESTIC), ("DE", "AT", TaxRegion.EU), ("DE", "CH", TaxRegion.NON_EU),
    ("DE", "GB", TaxRegion.NON_EU), ("DK", "DK", TaxRegion.DOMESTIC), ("DK", "DE", TaxRegion.EU),
    ("DK", "NO", TaxRegion.NON_EU), ("DE", "EL", TaxRegion.EU), ("DE", None, TaxRegion.DOMESTIC),
])
def test_tax_region_from_seller_and_buyer_country(seller: str, buyer: str | None, region: TaxRegion) -> None:
    assert tax_region(seller, buyer) == region


def test_eu_member_list_is_data() -> None:
    assert is_eu_member("HR") and not is_eu_member("GB") and not is_eu_member("CH")


@pytest.mark.parametrize(("country", "vat_id", "kind", "rate", "kw", "treatment"), [
    ("DE", None, LineKind.GOODS, "19", {}, TaxTreatment.STANDARD),
    ("DE", None, LineKind.GOODS, "7", {}, TaxTreatment.REDUCED),
    ("AT", "ATU12345678", LineKind.GOODS, "0", {}, TaxTreatment.INTRA_EU_SUPPLY),
    ("AT", "ATU12345678", LineKind.SERVICE, "0", {}, TaxTreatment.REVERSE_CHARGE),
    ("AT", None, LineKind.GOODS, "19", {}, TaxTreatment.STANDARD),
    ("AT", None, LineKind.GOODS, "20", {"oss": True}, TaxTreatment.OSS),
    ("CH", None, LineKind.GOODS, "0", {}, TaxTreatment.EXPORT),
    ("US", "US-EIN-1", LineKind.SERVICE, "0", {}, TaxTreatment.NOT_TAXABLE_HERE),
    ("DE", None, LineKind.GOODS, "0", {"small_business": True}, TaxTreatment.SMALL_BUSINESS),
])
def test_tax_treatment(country, vat_id, kind, rate, kw, treatment) -> None:
    d = doc([Line(description="x", total=D("10.00"), tax_rate=D(rate), kind=kind)], country=country, vat_id=vat_id)
    assert d.tax_treatment(**kw) == treatment


def test_source_treatment_hint_wins_over_derivation() -> None:
    d = doc([Line(description="x", total=D("10.00"), tax_rate=D(0))], country="AT",
            treatment_hint=TaxTreatment.EXPORT)
    assert d.tax_treatment() == TaxTreatment.EXPORT


def test_paid_when_payments_cover_the_gross_total() -> None:
    d = doc([Line(description="A", total=D("19.99"), tax_rate=D(19))])
    assert not d.is_paid
    d.payments = [Payment(amount=D("10.00")), Payment(amount=D("9.99"))]
    assert d.is_paid and d.paid_amount == D("19.99")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("currency", "EURO", "not an ISO 4217 code"),
    ("invoice_date", date(1899, 1, 1), "out of range"),
])
def test_bad_document_fields_are_refused(field, value, message) -> None:
    with pytest.raises(ValidationError, match=message):
        doc([Line(description="A", total=D("1.00"), tax_rate=D(19))], **{field: value})


@pytest.mark.parametrize(("kw", "message"), [
    ({"quantity": D(0)}, "quantity is 0"),
    ({"quantity": D("1e9")}, "absurdly large"),
    ({"tax_rate": D(119)}, "between 0 and 100"),
    ({"total": D("NaN")}, "finite number"),
    ({"total": D("1e15")}, "absurdly large"),
])
def test_bad_lines_are_refused(kw, message) -> None:
    with pytest.raises(ValidationError, match=message):
        Line(**{"description": "A", "total": D("1.00"), "tax_rate": D(19), **kw})


def test_money_rounds_half_up() -> None:
    assert money(D("0.005")) == D("0.01") and money(D("2.675")) == D("2.68") and money(D("-0.005")) == D("-0.01")


def test_charged_vat_is_never_booked_as_tax_free() -> None:
    # A German coworking space rents a desk to an Austrian business and charges 19 %:
    # a supply taxed in Germany, not reverse charge.
    d = doc([Line(description="Desk", total=D("250.00"), tax_rate=D(19), price_basis="net", kind=LineKind.SERVICE)],
            country="AT", vat_id="ATU12345678")
    assert d.tax_treatment() == TaxTreatment.STANDARD
