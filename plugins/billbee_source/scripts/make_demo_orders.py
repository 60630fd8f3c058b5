"""Writes ledgerlink_billbee/data/demo_orders.json: the Billbee demo orders.

Run from the plugin folder: ``python scripts/make_demo_orders.py``. The output is
deterministic and committed; the README lists what it contains and the expected
outcome of transferring it with the sandbox's ``demo_connection`` settings.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

SHOP = {"id": 100000000012001, "name": "Kaffeerösterei Demo (Shopware)", "platform": "Shopware"}
OTHER_SHOP = {"id": 100000000012002, "name": "Amazon DE", "platform": "Amazon"}
CENT = Decimal("0.01")

# sku, title, gross price in Germany, tax index (1 = 19 %, 2 = 7 %)
PRODUCTS = [
    ("KAF-ESP-1000", "Bio-Kaffee Espresso 1 kg", Decimal("19.90"), 2),
    ("MUE-HAND-01", "Kaffeemühle Handmühle", Decimal("49.00"), 1),
    ("TAS-KER-300", "Keramiktasse 300 ml", Decimal("12.50"), 1),
    ("TEE-SEN-100", "Teeprobe Sencha 100 g", Decimal("8.40"), 2),
    ("BUC-ROE-01", "Buch: Die Kunst des Röstens", Decimal("24.00"), 2),
    ("MIL-SCH-01", "Milchaufschäumer", Decimal("34.99"), 1),
]
RATES = {1: Decimal(19), 2: Decimal(7)}

# id, first, last, company, street, no, zip, city, country, vat id, vat mode
CUSTOMERS = [
    (2001, "Anna", "Schmidt", None, "Lindenstraße", "12", "10115", "Berlin", "DE", None, 0),
    (2002, "Jonas", "Müller", None, "Hauptstraße", "5a", "80331", "München", "DE", None, 0),
    (2003, "Lea", "Fischer", None, "Gartenweg", "3", "50667", "Köln", "DE", None, 0),
    (2004, "Paul", "Weber", None, "Schulstraße", "44", "20095", "Hamburg", "DE", None, 0),
    (2005, "Marie", "Becker", None, "Bahnhofstraße", "1", "01067", "Dresden", "DE", None, 0),
    (2006, "Felix", "Wagner", None, "Am Markt", "7", "04109", "Leipzig", "DE", None, 0),
    (2007, "Sophie", "Hoffmann", None, "Ringstraße", "19", "70173", "Stuttgart", "DE", None, 0),
    (2008, "Thomas", "Koch", "Koch Bürobedarf GmbH", "Industriestraße", "8", "60311", "Frankfurt am Main", "DE", None, 0),
    (2009, "Sabine", "Richter", "Café Richter", "Marktplatz", "2", "90403", "Nürnberg", "DE", None, 0),
    (2010, "Eva", "Gruber", None, "Mariahilfer Straße", "88", "1060", "Wien", "AT", None, 0),
    (2011, "Claire", "Dubois", None, "Rue de Rivoli", "21", "75001", "Paris", "FR", None, 0),
    (2012, "Daan", "de Vries", None, "Prinsengracht", "263", "1016 GV", "Amsterdam", "NL", None, 0),
    (2013, "Markus", "Huber", "Huber Kaffeehaus GmbH", "Getreidegasse", "9", "5020", "Salzburg", "AT", "ATU12345675", 2),
    (2014, "Julie", "Martin", "Torréfaction Martin SARL", "Rue Mercière", "14", "69002", "Lyon", "FR", "FR40123456824", 2),
    (2015, "Pieter", "Jansen", "Jansen Koffie B.V.", "Oudegracht", "100", "3511 AX", "Utrecht", "NL", "NL123456789B01", 2),
    (2016, "Luca", "Meier", None, "Bahnhofstrasse", "10", "8001", "Zürich", "CH", None, 3),
    (2017, "Emily", "Johnson", None, "Main Street", "500", "10001", "New York", "US", None, 3),
    (2018, "Ola", "Nordmann", None, "Karl Johans gate", "22", "0159", "Oslo", "NO", None, 3),
]
SHIPPING = {"DE": Decimal("4.90"), "EU": Decimal("9.90"), "NON_EU": Decimal("19.90")}
EU = {"AT", "FR", "NL"}

# (customer id, [(product index, quantity, discount %)], state, paid, extras)
ORDERS: list[tuple[int, list[tuple[int, int, int]], int, bool, dict]] = [
    (2001, [(0, 2, 0), (2, 1, 0)], 7, True, {}),
    (2002, [(1, 1, 0)], 4, True, {}),
    (2003, [(3, 3, 0)], 7, True, {}),
    (2013, [(0, 20, 0), (1, 2, 0)], 4, False, {}),  # intra-EU B2B, open
    (2004, [(4, 1, 0), (0, 1, 0)], 3, True, {}),
    (2010, [(0, 2, 0), (5, 1, 0)], 7, True, {}),  # EU consumer
    (2016, [(1, 1, 0), (0, 3, 0)], 4, True, {}),  # export
    (2001, [(0, 1, 0)], 7, True, {"promo": Decimal("5.00")}),  # promo code: a real discount
    (2005, [(5, 1, 10)], 4, True, {}),  # 10 % discount
    (2008, [(2, 12, 5), (0, 6, 0)], 4, False, {}),  # German business, open
    (2006, [(0, 3, 0)], 7, True, {"late_night": True}),
    (2014, [(0, 30, 0), (3, 10, 0)], 7, True, {}),  # intra-EU B2B
    (2002, [(2, 2, 0), (3, 2, 0)], 3, True, {}),
    (2011, [(4, 2, 0)], 4, True, {}),  # EU consumer
    (2017, [(1, 1, 0)], 7, True, {}),  # export
    (2007, [(0, 4, 0), (1, 1, 0), (2, 2, 0)], 7, True, {"no_shipping": True}),
    (2009, [(0, 10, 5)], 4, False, {}),  # café, open
    (2003, [(5, 1, 0)], 7, True, {"adjustment": (Decimal("-3.00"), "Kulanz Lieferverzug")}),
    (2012, [(0, 2, 0), (3, 1, 0)], 3, True, {}),  # EU consumer
    (2015, [(1, 5, 10)], 4, False, {}),  # intra-EU B2B, discount, open
    (2004, [(0, 2, 0)], 7, True, {}),
    (2018, [(0, 2, 0), (4, 1, 0)], 7, True, {}),  # export
    (2001, [(2, 4, 0)], 3, True, {}),
    (2005, [(3, 5, 0), (0, 1, 0)], 7, True, {"promo": Decimal("10.00")}),  # promo code on the first item
    (2008, [(1, 3, 0)], 7, True, {}),
    (2010, [(3, 2, 0)], 4, True, {}),
    (2006, [(5, 2, 15)], 3, True, {}),
    (2013, [(0, 40, 5)], 7, True, {}),  # intra-EU B2B, repeat
    (2002, [(0, 1, 0), (4, 1, 0)], 4, False, {}),  # open
    (2007, [(2, 6, 0)], 7, True, {}),
    (2016, [(0, 5, 0)], 7, True, {}),  # export, repeat
    (2009, [(0, 8, 0), (2, 8, 0)], 7, True, {}),
    (2003, [(0, 2, 0)], 3, True, {}),
    (2011, [(1, 1, 0), (2, 2, 0)], 7, True, {}),
    (2004, [(3, 1, 0)], 4, True, {}),
    (2014, [(1, 4, 0)], 4, False, {}),  # intra-EU B2B, open
    (2001, [(0, 3, 0), (5, 1, 0)], 7, True, {}),
    (2005, [(4, 2, 0)], 3, True, {}),
    (2017, [(0, 4, 0)], 4, True, {}),  # export
    (2012, [(5, 1, 0)], 7, True, {}),
    (2002, [(0, 2, 0), (3, 2, 0), (1, 1, 0)], 7, True, {}),
    (2006, [(2, 1, 0)], 4, False, {}),  # open
    (2015, [(0, 25, 0)], 7, True, {}),  # intra-EU B2B, repeat
    (2007, [(0, 1, 0)], 3, True, {}),
    (2009, [(1, 1, 0), (0, 4, 0)], 7, True, {}),
    (2008, [(0, 12, 10)], 3, True, {}),
    # Not transferred:
    (2003, [(1, 1, 0)], 2, False, {"skip": "state"}),  # confirmed: state not selected
    (2004, [(0, 2, 0)], 3, True, {"skip": "no_invoice"}),  # paid, no invoice number
    (2001, [(2, 2, 0)], 7, True, {"skip": "before_start"}),  # ordered in December 2024
    (2002, [(0, 1, 0)], 4, True, {"skip": "other_shop"}),  # Amazon: filtered by shopId
]


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def tax_in(gross: Decimal, rate: Decimal) -> Decimal:
    """The VAT inside a gross amount, with the many digits Billbee sends."""
    with localcontext() as ctx:
        ctx.prec = 17
        return +(gross * rate / (100 + rate))


def stamp(when: datetime, style: int) -> str:
    """Billbee's naive date formats: no fraction, 2 or 3 fraction digits."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return [text, text + ".00", text + f".{when.microsecond // 1000:03d}"][style % 3]


def customer_object(c: tuple, number: int) -> dict:
    cid, first, last, company, *_rest = c
    email = f"{first.lower()}.{last.lower().replace(' ', '')}@example.{ 'com' if c[8] in ('US',) else 'de'}"
    email = email.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")
    meta = {"Id": 300000 + cid, "TypeId": 1, "TypeName": "EMail", "SubType": "", "Value": email}
    return {
        "Id": 100000150000000 + cid,
        "Name": company or f"{first} {last}",
        "Email": email,
        "Tel1": None,
        "Tel2": None,
        "Number": number,
        "PriceGroupId": None,
        "LanguageId": 3 if c[8] in ("DE", "AT") else 1,
        "VatId": c[9],
        "Type": 1 if company else 0,
        "DefaultMailAddress": meta,
        "DefaultCommercialMailAddress": None,
        "DefaultStatusUpdatesMailAddress": None,
        "DefaultPhone1": None,
        "DefaultPhone2": None,
        "DefaultFax": None,
        "MetaData": [meta],
        "ArchivedAt": None,
        "RestoredAt": None,
    }


def address(c: tuple, email: str, billbee_id: int) -> dict:
    cid, first, last, company, street, no, zip_, city, country, *_ = c
    return {
        "BillbeeId": billbee_id,
        "FirstName": first,
        "LastName": last,
        "Company": company,
        "NameAddition": None,
        "Street": street,
        "HouseNumber": no,
        "Zip": zip_,
        "City": city,
        "CountryISO2": country,
        "Country": country,
        "Line2": None,
        "Email": email,
        "State": None,
        "Phone": None,
    }


def build() -> dict:
    customers = {c[0]: c for c in CUSTOMERS}
    numbers = {c[0]: i for i, c in enumerate(CUSTOMERS, start=1)}
    orders = []
    start = datetime(2025, 1, 3, 9, 12, 0, 123000)
    invoice_no = 1000
    for index, (cid, items, state, paid, extra) in enumerate(ORDERS):
        c = customers[cid]
        vat_mode = c[10]
        country = c[8]
        region = "DE" if country == "DE" else ("EU" if country in EU else "NON_EU")
        created = start + timedelta(days=index * 1.7, minutes=index * 37)
        if extra.get("late_night"):
            created = datetime(2025, 1, 31, 23, 30, 0)
        if extra.get("skip") == "before_start":
            created = datetime(2024, 12, 28, 16, 5, 0)
        order_id = 300000180000000 + index + 1
        lines = []
        for pos, (pi, qty, discount) in enumerate(items, start=1):
            sku, title, gross, tax_index = PRODUCTS[pi]
            unit = gross if vat_mode == 0 else money(gross / (1 + RATES[tax_index] / 100))
            unrebated = unit * qty
            total = money(unrebated * (100 - discount) / 100)
            tax = tax_in(total, RATES[tax_index]) if vat_mode == 0 else Decimal(0)
            lines.append({
                "BillbeeId": order_id * 10 + pos,
                "TransactionId": None,
                "Product": {
                    "OldId": None, "Id": sku, "Title": title, "Weight": 500, "SKU": sku,
                    "SkuOrId": sku, "IsDigital": False, "Images": [], "EAN": None,
                    "PlatformData": None, "TARICCode": None, "CountryOfOrigin": None,
                    "BillbeeId": 100000058000000 + pi, "Type": 1,
                },
                "Quantity": Decimal(qty).quantize(Decimal("0.0")),
                "TotalPrice": total,
                "TaxAmount": tax,
                "TaxIndex": tax_index,
                "Discount": Decimal(discount).quantize(Decimal("0.0")),
                "Attributes": [],
                "GetPriceFromArticleIfAny": False,
                "IsCoupon": False,
                "ShippingProfileId": None,
                "DontAdjustStock": False,
                "UnrebatedTotalPrice": unrebated,
                "SerialNumber": None,
                "InvoiceSKU": sku,
            })
        if extra.get("promo"):
            # A promo code is a price reduction (never a gift voucher, IsCoupon false): it
            # reduces the first item's price, at that item's rate. The demo pipeline has no
            # voucher_account, so it has no gift vouchers (IsCoupon) either.
            tax_index = PRODUCTS[items[0][0]][3]
            amount = -extra["promo"]
            lines.append({
                "BillbeeId": order_id * 10 + 9, "TransactionId": None,
                "Product": {"Id": "RABATT", "Title": "Rabattcode WILLKOMMEN", "SKU": None, "Type": 1},
                "Quantity": Decimal("1.0"), "TotalPrice": amount,
                "TaxAmount": tax_in(amount, RATES[tax_index]) if vat_mode == 0 else Decimal(0),
                "TaxIndex": tax_index, "Discount": Decimal("0.0"), "Attributes": [], "IsCoupon": False,
                "UnrebatedTotalPrice": amount, "InvoiceSKU": None,
            })
        shipping = Decimal(0) if extra.get("no_shipping") else SHIPPING[region]
        if vat_mode != 0 and shipping:
            shipping = money(shipping / Decimal("1.19"))
        adjustment, reason = extra.get("adjustment", (Decimal(0), None))
        total_cost = sum((line["TotalPrice"] for line in lines), Decimal(0)) + shipping + adjustment
        invoice_number = 0
        invoice_date = None
        if extra.get("skip") != "no_invoice":
            invoice_no += 1
            invoice_number = invoice_no
            invoice_date = created + timedelta(minutes=8, seconds=31, milliseconds=250)
        paid_at = created + timedelta(hours=3) if paid else None
        shipped_at = created + timedelta(days=1) if state in (4, 7) else None
        modified = max(t for t in (created, paid_at, shipped_at, invoice_date) if t) + timedelta(minutes=2, milliseconds=843)
        if extra.get("skip") == "before_start":
            modified = datetime(2025, 1, 5, 10, 0, 0, 500000)
        customer = customer_object(c, numbers[cid])
        shop = OTHER_SHOP if extra.get("skip") == "other_shop" else SHOP
        payments = []
        if paid and index % 3 != 2:  # every third paid order has only a pay date
            payments.append({
                "BillbeeId": 100000045000000 + index,
                "TransactionId": f"PAY-{order_id}",
                "PayDate": stamp(paid_at, 0),
                "PaymentType": 3 if index % 2 else 31,
                "SourceTechnology": "Shopware",
                "SourceText": None,
                "PayValue": total_cost,
                "Purpose": None,
                "Name": f"{c[1]} {c[2]}",
            })
        orders.append({
            "RebateDifference": Decimal(0),
            "ShippingIds": [],
            "AcceptLossOfReturnRight": False,
            "Id": f"SW{50000 + index}",
            "OrderNumber": f"SW{50000 + index}",
            "State": state,
            "VatMode": vat_mode,
            "CreatedAt": stamp(created, index),
            "ShippedAt": stamp(shipped_at, index + 1) if shipped_at else None,
            "ConfirmedAt": stamp(created + timedelta(minutes=1), 0),
            "PayedAt": stamp(paid_at, index + 2) if paid_at else None,
            "SellerComment": None,
            "Comments": [],
            "InvoiceNumberPrefix": "RE-2025-" if invoice_number else None,
            "InvoiceNumberPostfix": None,
            "InvoiceNumber": invoice_number,
            "InvoiceDate": stamp(invoice_date, 2) if invoice_date else None,
            "InvoiceAddress": address(c, customer["Email"], 500000 + index),
            "ShippingAddress": address(c, customer["Email"], 600000 + index),
            "PaymentMethod": 26 if not paid else (3 if index % 2 else 31),
            "ShippingCost": shipping,
            "TotalCost": total_cost,
            "AdjustmentCost": adjustment,
            "AdjustmentReason": reason,
            "OrderItems": lines,
            "Currency": "EUR",
            "Seller": {
                "Platform": shop["platform"], "BillbeeShopName": shop["name"],
                "BillbeeShopId": shop["id"], "Id": None, "Nick": None, "FirstName": None,
                "LastName": None, "FullName": None, "Email": None,
            },
            "Buyer": None,
            "UpdatedAt": None,
            "TaxRate1": Decimal("19.0"),
            "TaxRate2": Decimal("7.0"),
            "BillBeeOrderId": order_id,
            "BillBeeParentOrderId": None,
            "VatId": c[9],
            "Tags": [],
            "ShipWeightKg": Decimal("0.5"),
            "LanguageCode": "DE" if country in ("DE", "AT") else "EN",
            "PaidAmount": Decimal(0),
            "ShippingProfileId": None,
            "ShippingProviderId": None,
            "ShippingProviderProductId": None,
            "ShippingProviderName": None,
            "ShippingProviderProductName": None,
            "ShippingProfileName": None,
            "PaymentInstruction": None,
            "IsCancelationFor": None,
            "PaymentTransactionId": None,
            "DistributionCenter": None,
            "DeliverySourceCountryCode": "DE",
            "CustomInvoiceNote": None,
            "CustomerNumber": str(customer["Number"]),
            "PaymentReference": None,
            "Customer": customer,
            "Payments": payments,
            "History": [],
            "LastModifiedAt": stamp(modified, 2),
            "ApiAccountId": shop["id"],
            "ApiAccountName": shop["name"],
            "MerchantVatId": "DE123456789",
            "CustomerVatId": c[9],
            "IsFromBillbeeApi": False,
            "WebUrl": None,
            "DistributionCenterId": None,
            "ArchivedAt": None,
            "RestoredAt": None,
        })
    return {
        "Paging": {"Page": 1, "TotalPages": 1, "TotalRows": len(orders), "PageSize": 250},
        "ErrorMessage": None,
        "ErrorCode": 0,
        "ErrorDescription": "NoError",
        "Data": orders,
    }


def dumps(value: object, indent: int = 0) -> str:
    pad = "  " * (indent + 1)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(pad + dumps(v, indent + 1) for v in value) + "\n" + "  " * indent + "]"
    return json.dumps(value, ensure_ascii=False)


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "ledgerlink_billbee" / "data" / "demo_orders.json"
    target.write_text(dumps(build()) + "\n", encoding="utf-8")
    print(f"wrote {target}")
