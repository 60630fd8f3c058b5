"""Order -> Document mapping, to the cent, starting from the official SDK fixtures."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from billbee_testkit import fixture
from ledgerlink import DocumentKind, LineKind, TaxTreatment
from ledgerlink_billbee.mapping import (
    MappingError,
    MappingOptions,
    StatedFee,
    api_customer,
    map_order,
    parse_datetime,
    shipping_fees,
)

BERLIN = ZoneInfo("Europe/Berlin")
OPTIONS = MappingOptions(tz=BERLIN)


def sdk_order() -> dict:
    order = fixture("Response/get_orders_response.json")["Data"][0]
    # The SDK fixture fills every string with its field name: "IsCancelationFor":
    # "IsCancelationFor" would make it a cancellation order. Real orders send null.
    order["IsCancelationFor"] = None
    return order


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
    single["IsCancelationFor"] = None
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


def coupon_order() -> dict:
    """Coffee 39.80 (7 %) + mug 12.50 (19 %) + shipping 4.90, a 10.00 gift voucher redeemed, a
    goodwill adjustment of -3.00: the customer pays 44.20."""
    order = two_rate_order()
    order["OrderItems"].append({"Product": {"Id": "GUTSCHEIN", "Title": "SPRING10"}, "Quantity": Decimal("1"),
                                "TotalPrice": Decimal("-10.00"), "TaxAmount": Decimal(0),
                                "TaxIndex": 0, "IsCoupon": True})
    order["AdjustmentCost"] = Decimal("-3.00")
    order["AdjustmentReason"] = "Kulanz"
    order["TotalCost"] = Decimal("44.20")
    return order


def test_coupon_is_a_voucher_payment_and_the_goods_keep_their_full_price() -> None:
    doc = map_order(coupon_order(), OPTIONS)
    assert [(line.kind, line.description, line.tax_rate, line.gross, line.tax) for line in doc.lines] == [
        (LineKind.GOODS, "Kaffee", Decimal("7.0"), Decimal("39.80"), Decimal("2.60")),
        (LineKind.GOODS, "Tasse", Decimal("19.0"), Decimal("12.50"), Decimal("2.00")),
        (LineKind.SHIPPING, "Shipping", Decimal("19.0"), Decimal("4.90"), Decimal("0.78")),
        # A goodwill reduction is a real discount: it reduces revenue and VAT.
        (LineKind.DISCOUNT, "Kulanz", Decimal("19.0"), Decimal("-3.00"), Decimal("-0.48")),
    ]
    assert doc.total_gross == Decimal("54.20") == doc.stated_total  # TotalCost 44.20 + the voucher 10.00
    assert doc.total_tax == Decimal("4.90") and doc.consistency_problems() == []
    (voucher, paid) = sorted(doc.payments, key=lambda p: p.kind, reverse=True)
    assert (voucher.kind, voucher.amount, voucher.date, voucher.method, voucher.reference) == (
        "voucher", Decimal("10.00"), date(2022, 7, 22), "voucher SPRING10", "GUTSCHEIN")
    assert (paid.kind, paid.amount) == ("money", Decimal("162.0"))  # the fixture's own payment entry
    assert doc.voucher_amount == Decimal("10.00")


def test_coupon_with_pay_date_only_pays_the_rest_in_money() -> None:
    order = coupon_order()
    order["Payments"] = []
    doc = map_order(order, OPTIONS)
    assert sorted((p.kind, p.amount) for p in doc.payments) == [
        ("money", Decimal("44.20")), ("voucher", Decimal("10.00"))]
    assert doc.is_paid and doc.paid_amount == doc.total_gross == Decimal("54.20")


def test_order_paid_entirely_by_voucher_has_no_money_payment() -> None:
    order = sdk_order()
    order["Payments"] = []
    order["OrderItems"].append({"Product": {"Title": "Geschenkgutschein"}, "Quantity": Decimal("1"),
                                "TotalPrice": Decimal("-170.76"), "TaxAmount": Decimal(0), "TaxIndex": 0,
                                "IsCoupon": True})
    order["TotalCost"] = Decimal("0")
    doc = map_order(order, OPTIONS)
    assert [(p.kind, p.amount) for p in doc.payments] == [("voucher", Decimal("170.76"))]
    assert doc.total_gross == Decimal("170.76") == doc.stated_total and doc.is_paid


def test_voucher_payment_entry_and_coupon_item_are_one_voucher() -> None:
    order = coupon_order()
    order["Payments"] = [
        {"PayDate": "2022-07-23T00:00:00", "PaymentType": 6, "PayValue": Decimal("10.00"), "TransactionId": "G-1"},
        {"PayDate": "2022-07-24T00:00:00", "PaymentType": 3, "PayValue": Decimal("44.20"), "TransactionId": "P-1"},
    ]
    doc = map_order(order, OPTIONS)
    assert sorted((p.kind, p.amount, p.date) for p in doc.payments) == [
        ("money", Decimal("44.20"), date(2022, 7, 24)), ("voucher", Decimal("10.00"), date(2022, 7, 23))]
    order["Payments"][0]["PayValue"] = Decimal("8.00")
    with pytest.raises(MappingError, match="coupon items cover 10.00 but its voucher payments") as info:
        map_order(order, OPTIONS)
    assert info.value.quarantine


@pytest.mark.parametrize(("change", "message"), [
    ({"TotalPrice": Decimal("10.00")}, "coupon with a positive amount 10.00"),
    ({"TaxAmount": Decimal("1.60"), "TaxIndex": 1}, "coupon with VAT 1.60"),
])
def test_coupons_that_are_not_vouchers_redeemed_are_quarantined(change, message) -> None:  # type: ignore[no-untyped-def]
    order = coupon_order()
    order["OrderItems"][-1].update(change)
    with pytest.raises(MappingError, match=message) as info:
        map_order(order, OPTIONS)
    assert info.value.quarantine


def test_item_discount_reduces_revenue_at_the_goods_rate() -> None:
    order = two_rate_order()
    order["OrderItems"].append({"Product": {"Title": "Rabatt Tasse"}, "Quantity": Decimal("1"),
                                "TotalPrice": Decimal("-2.50"), "TaxAmount": Decimal("-0.3991596638655"),
                                "TaxIndex": 1, "IsCoupon": False})
    order["TotalCost"] = Decimal("54.70")
    doc = map_order(order, OPTIONS)
    discount = doc.lines[2]
    assert (discount.kind, discount.tax_rate, discount.gross, discount.tax) == (
        LineKind.DISCOUNT, Decimal("19.0"), Decimal("-2.50"), Decimal("-0.40"))
    assert doc.payments and all(p.kind == "money" for p in doc.payments)
    assert doc.total_tax == Decimal("2.60") + Decimal("2.00") + Decimal("0.78") - Decimal("0.40")
    assert doc.consistency_problems() == []


def test_tax_free_discount_on_taxed_goods_is_quarantined() -> None:
    order = two_rate_order()
    order["OrderItems"].append({"Product": {"Title": "Aktion"}, "Quantity": Decimal("1"),
                                "TotalPrice": Decimal("-2.50"), "TaxAmount": Decimal(0), "TaxIndex": 0})
    order["TotalCost"] = Decimal("54.70")
    with pytest.raises(MappingError, match=r"discount 'Aktion' \(-2.50\) is at 0 % but the goods are at") as info:
        map_order(order, OPTIONS)
    assert info.value.quarantine


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


# -- shipping VAT as Billbee's invoice states it -----------------------------------------------
def sdk_fees() -> list:
    return shipping_fees(fixture("Response/get_invoices_response.json")["Data"][0])


def test_stated_shipping_vat_is_kept_on_the_shipping_line() -> None:
    fees = sdk_fees()
    assert fees == [StatedFee(gross=Decimal("11.996"), vat=Decimal("1.916"), rate=Decimal("19.0"))]
    doc = map_order(sdk_order(), OPTIONS, fees=fees)
    shipping = doc.lines[-1]
    assert (shipping.kind, shipping.gross, shipping.tax_amount, shipping.tax, shipping.net) == (
        LineKind.SHIPPING, Decimal("12.00"), Decimal("1.916"), Decimal("1.92"), Decimal("10.08"))
    assert doc.extra["shipping_vat"] == "stated" and doc.consistency_problems() == []
    assert map_order(sdk_order(), OPTIONS).extra["shipping_vat"] == "computed"


def test_stated_shipping_vat_off_by_more_than_a_cent_is_a_consistency_problem() -> None:
    fees = [StatedFee(gross=Decimal("12.00"), vat=Decimal("1.95"), rate=Decimal("19.0"))]
    problems = map_order(sdk_order(), OPTIONS, fees=fees).consistency_problems()
    assert problems == ["line 2 ('Shipping') states tax 1.95 but 19.0% of 12.00 gives 1.92"]


def test_stated_shipping_rate_other_than_ours_is_quarantined_with_both_splits() -> None:
    fees = [StatedFee(gross=Decimal("4.90"), vat=Decimal("0.32"), rate=Decimal("7.0"))]
    with pytest.raises(MappingError) as info:
        map_order(two_rate_order(), OPTIONS, fees=fees)  # shipping_tax "highest": 19 %
    assert info.value.quarantine
    assert ("Billbee's invoice states the shipping VAT as 4.90 at 7 %, but shipping_tax gives 4.90 at 19 %; "
            "set shipping_tax") in str(info.value)


def test_shipping_split_over_two_rates_is_taken_as_billbee_states_it() -> None:
    # Billbee splits 4.90 by the goods per rate: 3.73 at 7 % (VAT 0.24), 1.17 at 19 % (VAT 0.19).
    fees = [StatedFee(gross=Decimal("3.73"), vat=Decimal("0.244"), rate=Decimal("7.0")),
            StatedFee(gross=Decimal("1.17"), vat=Decimal("0.187"), rate=Decimal("19.0"))]
    doc = map_order(two_rate_order(), MappingOptions(tz=BERLIN, shipping_tax="proportional"), fees=fees)
    shipping = [(line.description, line.tax_rate, line.gross, line.tax) for line in doc.lines
                if line.kind == LineKind.SHIPPING]
    assert shipping == [("Shipping (19 %)", Decimal("19.0"), Decimal("1.17"), Decimal("0.19")),
                        ("Shipping (7 %)", Decimal("7.0"), Decimal("3.73"), Decimal("0.24"))]
    assert doc.total_gross == Decimal("57.20") and doc.consistency_problems() == []
    # The same split under "highest" (everything at 19 %) is not Billbee's: quarantined.
    with pytest.raises(MappingError, match="states the shipping VAT as 1.17 at 19 %, 3.73 at 7 %"):
        map_order(two_rate_order(), OPTIONS, fees=fees)


def test_stated_shipping_fees_that_are_not_the_shipping_cost_are_quarantined() -> None:
    fees = [StatedFee(gross=Decimal("9.90"), vat=Decimal("1.58"), rate=Decimal("19.0"))]
    with pytest.raises(MappingError, match="states shipping fees of 9.90 but the order's ShippingCost is 12.00"):
        map_order(sdk_order(), OPTIONS, fees=fees)


def test_only_shipcost_fees_are_shipping() -> None:
    invoice = {"AdditionalFees": [{"Type": "PaymentFee", "Gross": 2, "Net": 1.68, "VatAmount": 0.32, "VatRate": 19},
                                  {"Type": "ShipCost", "Gross": 12, "Net": 10.08, "VatAmount": 1.92, "VatRate": 19}]}
    assert shipping_fees(invoice) == [StatedFee(gross=Decimal(12), vat=Decimal("1.92"), rate=Decimal(19))]


# -- cancellation orders (IsCancelationFor) -----------------------------------------------------
def cancellation_order(sign: int = 1) -> dict:
    """A cancellation of the two-rate order: Billbee's sign convention is not documented, so
    both forms are tested (``sign`` 1: the original's positive amounts; -1: negative)."""
    order = two_rate_order()
    order.update({"BillBeeOrderId": 900, "IsCancelationFor": "SW50001", "Payments": [],
                  "PayedAt": "2022-08-01T10:00:00"})
    if sign < 0:
        for item in order["OrderItems"]:
            item["TotalPrice"], item["TaxAmount"] = -item["TotalPrice"], -item["TaxAmount"]
        order["ShippingCost"], order["TotalCost"] = -order["ShippingCost"], -order["TotalCost"]
    return order


@pytest.mark.parametrize("sign", [1, -1])
def test_cancellation_order_is_a_credit_note_reversing_the_original(sign) -> None:  # type: ignore[no-untyped-def]
    doc = map_order(cancellation_order(sign), OPTIONS, reverses="300000180000002")
    assert doc.kind == DocumentKind.CREDIT_NOTE and doc.reverses == "300000180000002"
    assert [(line.quantity, line.tax_rate, line.gross, line.tax) for line in doc.lines] == [
        (Decimal("2"), Decimal("7.0"), Decimal("-39.80"), Decimal("-2.60")),
        (Decimal("1"), Decimal("19.0"), Decimal("-12.50"), Decimal("-2.00")),
        (Decimal("1"), Decimal("19.0"), Decimal("-4.90"), Decimal("-0.78")),
    ]
    assert doc.total_gross == Decimal("-57.20") == doc.stated_total and doc.consistency_problems() == []
    assert doc.payments == [] and doc.payment_date is None  # a refund is reconciled in the target
    assert doc.extra["cancels_external_id"] == "SW50001" and doc.extra["amounts_negated"] is (sign > 0)


def test_cancellation_order_whose_original_is_not_found_is_quarantined() -> None:
    with pytest.raises(MappingError, match="cancellation of the order with external id 'SW50001'") as info:
        map_order(cancellation_order(), OPTIONS)
    assert info.value.quarantine


def test_cancellation_order_with_a_coupon_is_quarantined() -> None:
    order = cancellation_order()
    order["OrderItems"].append({"Product": {"Title": "Gutschein"}, "Quantity": 1, "TotalPrice": Decimal("-5"),
                                "TaxAmount": 0, "TaxIndex": 0, "IsCoupon": True})
    with pytest.raises(MappingError, match="with a coupon item") as info:
        map_order(order, OPTIONS, reverses="1")
    assert info.value.quarantine


def test_cancellation_with_stated_shipping_fees_of_the_original_sign() -> None:
    fees = [StatedFee(gross=Decimal("4.90"), vat=Decimal("0.78"), rate=Decimal("19.0"))]
    doc = map_order(cancellation_order(), OPTIONS, reverses="1", fees=fees)
    assert [(line.gross, line.tax_amount) for line in doc.lines if line.kind == LineKind.SHIPPING] == [
        (Decimal("-4.90"), Decimal("-0.78"))]
    assert doc.consistency_problems() == []
