"""Builders of Shipmondo sales orders for the tests, in the shape of the recorded example."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

D = Decimal


def line(name: str, quantity: str, unit: str, rate: str = "0.25", *, line_type: str = "item",
         discount: str = "0.0", currency: str = "DKK") -> dict[str, Any]:
    """An order line as Shipmondo states it: strings, VAT from the net at the fraction rate."""
    net = (D(quantity) * D(unit)).quantize(D("0.01"), ROUND_HALF_UP) - D(discount)
    vat = (net * D(rate)).quantize(D("0.01"), ROUND_HALF_UP)
    return {"line_type": line_type, "item_name": name, "item_sku": f"SKU-{name[:3].upper()}",
            "item_variant_code": None, "quantity": quantity, "unit_price_excluding_vat": unit,
            "discount_amount_excluding_vat": discount, "amount_excluding_vat": str(net),
            "amount_including_vat": str(net + vat), "vat_amount": str(vat), "vat_percent": rate,
            "currency_code": currency}


def address(name: str, country: str = "DK", *, email: str | None = "kunde@example.dk", vat_no: str | None = None,
            attention: str | None = None) -> dict[str, Any]:
    return {"name": name, "attention": attention, "address1": "Testvej 1", "address2": None, "zipcode": "9000",
            "city": "Aalborg", "country_code": country, "email": email, "mobile": "+4512345678", "phone": None,
            "vat_no": vat_no}


def order(lines: list[dict[str, Any]], *, bill_to: dict[str, Any] | None = None,
          ship_to: dict[str, Any] | None = None, captured: str | None = "all", refunded: str | None = None,
          currency: str = "DKK", **fields: Any) -> dict[str, Any]:
    """A handled, consistent sales order in the shape of the recorded example."""
    net = sum((D(x["amount_excluding_vat"]) for x in lines), D("0.00"))
    vat = sum((D(x["vat_amount"]) for x in lines), D("0.00"))
    gross = net + vat
    bill = bill_to or address("Anna Jensen")
    record = {
        "id": 37707008, "order_id": "NW-1001", "ordered_at": "2026-03-30T10:15:00.000+02:00",
        "order_status": "sent", "fulfillment_status": "fulfilled", "payment_status": "captured",
        "archived": False, "source_name": "Nordlys Webshop",
        "created_at": "2026-03-30T10:15:02.982+02:00", "updated_at": "2026-04-01T09:00:00.000+02:00",
        "ship_to": {**(ship_to or bill), "vat_id": None}, "bill_to": bill,
        "payment_details": {
            "amount_excluding_vat": str(net), "amount_including_vat": str(gross), "vat_amount": str(vat),
            "authorized_amount": str(gross), "captured_amount": str(gross) if captured == "all" else captured,
            "refunded_amount": refunded, "currency_code": currency, "vat_percent": None,
            "payment_method": "quickpay", "transaction_id": "tx-1"},
        "order_lines": lines,
        "order_fulfillments": [{"code": "NW-1001-1", "shipment_id": 14500,
                                "created_at": "2026-03-31T23:30:00.000+00:00",
                                "updated_at": "2026-03-31T23:30:00.000+00:00"}],
    }
    record.update(fields)
    return record
