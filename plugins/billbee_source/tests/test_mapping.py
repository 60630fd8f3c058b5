"""Order -> Document mapping, to the cent, starting from the official SDK fixtures."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from billbee_testkit import fixture
from ledgerlink import LineKind, TaxTreatment
from ledgerlink_billbee.mapping import (
    MappingError,
    MappingOptions,
    api_customer,
    map_order,
    parse_datetime,
)

BERLIN = ZoneInfo("Europe/Berlin")
OPTIONS = MappingOptions(tz=BERLIN)


def sdk_order() -> dict:
    return fixture("Response/get_orders_response.json")["Data"][0]


def test_sdk_orders_fixture_maps_to_the_cent() -> None:
    doc = map_order(sdk_order(), OPTIONS)
    item, shipping = doc.lines
    assert (item.gross, item.tax, item.net) == (Decimal("158.76"), Decimal("25.35"), Decimal("133.41"))
    assert item.tax_rate == Decimal("19.0") and item.quantity == Decimal("12.0")
    assert item.description == "Test Bestandsabgleich (x: y), 2 % discount"
    assert item.sku == "TESTBESTAND" and item.kind == LineKind.GOODS
    assert shipping.kind == LineKind.SHIPPING
    assert (shipping.gross, shipping.tax, shipping.net) == (Decimal("12.00"), Decimal("1.92"), Decimal("10.08"))
    assert (doc.total_gross, doc.total_tax, doc.total_net) == (Decimal("170.76"), Decimal("27.27"), Decimal("143.49"))
    assert doc.stated_total == Decimal("170.76") and doc.consistency_problems() == []
    assert doc.number == "RN-2022-0083-xx"
    assert doc.source_ref == "100000186018330"
    assert (doc.order_date, doc.invoice_date, doc.payment_date) == (
        date(2022, 7, 22), date(2022, 7, 22), date(2022, 8, 10))
    assert doc.currency == "EUR" and doc.shop == "test" and doc.source_status == "ordered"
    assert doc.treatment_hint == TaxTreatment.STANDARD
    assert [(p.amount, p.date, p.method, p.reference) for p in doc.payments] == [
        (Decimal("162.0"), date(2022, 8, 17), "bank transfer", "txid")]
    assert doc.paid_amount == Decimal("162.00") and not doc.is_paid


def test_sdk_fixture_customer_and_invoice_address() -> None:
    customer = map_order(sdk_order(), OPTIONS).customer
    assert customer.source_id == "100000150176895"
    assert (customer.first_name, customer.last_name, customer.company) == ("Vorname", "Nachname", "Firma")
    assert customer.email == "admin@domain.tld" and customer.vat_id == "1234"
    assert customer.address is not None
    assert (customer.address.street, customer.address.zip, customer.address.city, customer.address.country) == (
        "Str hausnummer", "12345", "ort", "DE")
    assert customer.customer_number is None  # Billbee's own numbers are not the target's
    assert customer.extra["billbee_customer_number"] == 1


def test_single_order_fixture_gives_the_same_document() -> None:
    single = fixture("Response/get_order_response.json")["Data"]
    assert map_order(single, OPTIONS) == map_order(sdk_order(), OPTIONS)


def test_sdk_customer_fixture() -> None:
    customer = api_customer(fixture("Response/get_customers_response.json")["Data"][0], OPTIONS)
    assert (customer.source_id, customer.last_name, customer.email, customer.vat_id) == (
        "100000150176895", "Max", "max@mustermann.tld", "1234")
    numbered = api_customer(fixture("Model/customer.json"), MappingOptions(tz=BERLIN, customer_numbers=True))
    assert numbered.customer_number == "1"


def two_rate_order() -> dict:
    order = sdk_order()
    order["OrderItems"] = [
        {"Product": {"Title": "Kaffee"}, "Quantity": Decimal("2"), "TotalPrice": Decimal("39.80"),
         "TaxAmount": Decimal("2.6037383177570"), "TaxIndex": 2},
        {"Product": {"Title": "Tasse"}, "Quantity": Decimal("1"), "TotalPrice": Decimal("12.50"),
         "TaxAmount": Decimal("1.9957983193277"), "TaxIndex": 1},
    ]
    order["ShippingCost"] = Decimal("4.90")
    order["TotalCost"] = Decimal("57.20")
    return order


def test_two_rates_and_shipping_at_the_highest_rate() -> None:
    doc = map_order(two_rate_order(), OPTIONS)
    assert [(line.tax_rate, line.gross, line.tax) for line in doc.lines] == [
        (Decimal("7.0"), Decimal("39.80"), Decimal("2.60")),
        (Decimal("19.0"), Decimal("12.50"), Decimal("2.00")),
        (Decimal("19.0"), Decimal("4.90"), Decimal("0.78")),
    ]
    assert doc.total_gross == Decimal("57.20") and doc.consistency_problems() == []


def test_proportional_shipping_splits_by_the_goods_per_rate() -> None:
    doc = map_order(two_rate_order(), MappingOptions(tz=BERLIN, shipping_tax="proportional"))
    shipping = [line for line in doc.lines if line.kind == LineKind.SHIPPING]
    # 39.80 of 52.30 is at 7 %: 4.90 * 39.80 / 52.30 = 3.73; the rest 1.17 at 19 %.
    assert [(line.tax_rate, line.gross) for line in shipping] == [
        (Decimal("19.0"), Decimal("1.17")), (Decimal("7.0"), Decimal("3.73"))]
    assert doc.total_gross == Decimal("57.20") and doc.consistency_problems() == []


def test_intra_eu_export_and_small_business_vat_modes() -> None:
    order = sdk_order()
    order["OrderItems"][0]["TaxAmount"] = Decimal(0)
    for mode, hint in ((2, TaxTreatment.INTRA_EU_SUPPLY), (3, TaxTreatment.EXPORT), (1, TaxTreatment.SMALL_BUSINESS)):
        order["VatMode"] = mode
        doc = map_order(order, OPTIONS)
        assert doc.treatment_hint == hint
        assert {line.tax_rate for line in doc.lines} == {Decimal(0)}
        assert doc.total_tax == Decimal("0.00") and doc.total_net == Decimal("170.76")


def test_margin_scheme_is_quarantined_with_its_reason() -> None:
    order = sdk_order()
    order["VatMode"] = 4
    with pytest.raises(MappingError, match="margin scheme") as info:
        map_order(order, OPTIONS)
    assert info.value.quarantine


def test_total_that_does_not_add_up_is_reported_not_fixed() -> None:
    order = sdk_order()
    order["TotalCost"] = Decimal("158.76")  # as if shipping were not in TotalCost
    doc = map_order(order, OPTIONS)
    assert doc.stated_total == Decimal("158.76") and doc.total_gross == Decimal("170.76")
    assert doc.consistency_problems() == [
        "lines add up to 170.76 EUR but the document's total is 158.76 EUR"]


def test_stated_tax_that_disagrees_with_the_rate_is_reported() -> None:
    order = sdk_order()
    order["OrderItems"][0]["TaxIndex"] = 2  # 7 % of 158.76 is 10.39, Billbee says 25.35
    problems = map_order(order, OPTIONS).consistency_problems()
    assert len(problems) == 1 and "states tax 25.35" in problems[0] and "gives 10.39" in problems[0]


def test_coupon_and_adjustment_lines() -> None:
    order = two_rate_order()
    order["OrderItems"].append({"Product": {"Title": "SPRING10"}, "Quantity": Decimal("1"),
                                "TotalPrice": Decimal("-10.00"), "TaxAmount": Decimal(0),
                                "TaxIndex": 0, "IsCoupon": True})
    order["AdjustmentCost"] = Decimal("-3.00")
    order["AdjustmentReason"] = "Kulanz"
    order["TotalCost"] = Decimal("44.20")
    doc = map_order(order, OPTIONS)
    coupon = doc.lines[2]
    adjustment = doc.lines[-1]
    assert (coupon.kind, coupon.tax_rate, coupon.gross, coupon.description) == (
        LineKind.DISCOUNT, Decimal(0), Decimal("-10.00"), "Coupon: SPRING10")
    assert (adjustment.kind, adjustment.description, adjustment.gross, adjustment.tax) == (
        LineKind.DISCOUNT, "Kulanz", Decimal("-3.00"), Decimal("-0.48"))
    assert doc.total_gross == Decimal("44.20") and doc.consistency_problems() == []


def test_naive_dates_are_read_in_the_configured_zone() -> None:
    order = sdk_order()
    order["InvoiceDate"] = "2024-12-31T23:30:00.00"
    order["CreatedAt"] = "2024-12-31T22:30:00Z"  # 23:30 in Berlin
    doc = map_order(order, OPTIONS)
    assert doc.invoice_date == date(2024, 12, 31) and doc.order_date == date(2024, 12, 31)
    order["CreatedAt"] = "2024-12-31T23:30:00Z"  # already 00:30 on 1 January in Berlin
    assert map_order(order, OPTIONS).order_date == date(2025, 1, 1)
    assert map_order(order, MappingOptions(tz=ZoneInfo("UTC"))).order_date == date(2024, 12, 31)
    parsed = parse_datetime("2023-04-22T14:56:23.8433333", BERLIN, "x")
    assert parsed is not None and parsed.microsecond == 843333


def test_paid_by_pay_date_only_counts_the_whole_order_as_paid() -> None:
    order = sdk_order()
    order["Payments"] = []
    doc = map_order(order, OPTIONS)
    assert [(p.amount, p.date, p.method) for p in doc.payments] == [
        (Decimal("170.76"), date(2022, 8, 10), "other")]
    assert doc.is_paid


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.pop("OrderItems"), "OrderItems is missing"),
        (lambda o: o["OrderItems"][0].update(TotalPrice="158,76"), "item 1 TotalPrice '158,76' is a string"),
        (lambda o: o["OrderItems"][0].update(TaxIndex=5), "unknown TaxIndex 5"),
        (lambda o: o["OrderItems"][0].update(Quantity=0), "quantity 0"),
        (lambda o: o.update(CreatedAt="yesterday"), "CreatedAt 'yesterday' is not a date"),
        (lambda o: o.update(Currency="Euro"), "currency"),
        (lambda o: o.update(InvoiceNumber="83"), "InvoiceNumber '83' is not a whole number"),
    ],
)
def test_unmappable_orders_name_the_field(change, message) -> None:  # type: ignore[no-untyped-def]
    order = copy.deepcopy(sdk_order())
    change(order)
    with pytest.raises(MappingError, match=message) as info:
        map_order(order, OPTIONS)
    assert str(info.value).startswith("order 100000186018330: ")
