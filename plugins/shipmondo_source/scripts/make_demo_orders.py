"""Writes ledgerlink_shipmondo/data/demo_seed.json: the Shipmondo sandbox's demo data.

Deterministic (no clock, a seeded random generator for seconds and milliseconds):
running it again writes the same bytes. ``--check`` only compares.

The orders follow the recorded ``GET /sales_orders/{id}`` answer
(``data/recorded_sales_order.json``): its field order, amounts as strings in Ruby's
BigDecimal style (``"149.0"``, ``"29.8"``), ``vat_percent`` a fraction (``"0.25"``),
Copenhagen timestamps with offset and milliseconds. Two shops (order integrations)
of one company, "Nordlys Webshop" (``NW-1001``...) and "Nordlys Outlet"
(``NO-2001``...); seven customers buy in both. Every order adds up to the øre (per line
``vat_amount = round_half_up(amount_excluding_vat * vat_percent, 2)``, the summary the
sum of the lines) except one, which repeats the recorded example's inconsistency
(lines at 0 % VAT, summary with 25 %). Names, addresses, e-mails and VAT numbers are
invented.

    .venv/bin/python plugins/shipmondo_source/scripts/make_demo_orders.py [--check]
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

OUT = Path(__file__).resolve().parent.parent / "ledgerlink_shipmondo" / "data" / "demo_seed.json"
CPH = ZoneInfo("Europe/Copenhagen")
CENT = Decimal("0.01")
DK_VAT = Decimal("0.25")
ZERO = Decimal("0")

SHOPS = {
    "web": {"source_name": "Nordlys Webshop", "prefix": "NW-", "first": 1001},
    "outlet": {"source_name": "Nordlys Outlet", "prefix": "NO-", "first": 2001},
}

SENDER = {
    "name": "Nordlys ApS",
    "attention": None,
    "address1": "Lagervej 4",
    "address2": None,
    "zipcode": "7100",
    "city": "Vejle",
    "country_code": "DK",
    "email": "lager@nordlys.example.com",
    "mobile": "70000000",
    "telephone": "70000000",
}


def person(name: str, address1: str, zipcode: str, city: str, country: str, email: str, mobile: str,
           *, attention: str | None = None, address2: str | None = None, phone: str | None = None,
           vat_no: str | None = None) -> dict[str, Any]:
    return {
        "name": name, "attention": attention, "address1": address1, "address2": address2,
        "zipcode": zipcode, "city": city, "country_code": country, "email": email,
        "mobile": mobile, "phone": phone, "vat_no": vat_no,
    }


CUSTOMERS: dict[str, dict[str, Any]] = {
    # mette, jonas, sofie, hafen, freja, karen and peter buy in both shops (the same name,
    # e-mail and address in each); anders buys twice in the outlet.
    "mette": person("Mette Eksempel", "Eksempelvej 12", "8000", "Aarhus C", "DK", "mette.eksempel@example.com",
                    "+4520000001"),
    "jonas": person("Jonas Prøvesen", "Prøvegade 3, 2. th.", "2200", "København N", "DK",
                    "jonas.proevesen@example.com", "+4520000002"),
    "sofie": person("Sofie Demo", "Demoallé 7", "5000", "Odense C", "DK", "sofie.demo@example.net", "+4520000003"),
    "anders": person("Anders Fiktiv", "Fiktivvej 21", "9000", "Aalborg", "DK", "anders.fiktiv@example.org",
                     "+4520000004", address2="Baghuset"),
    "hafen": person("Hafenkontor Beispiel GmbH", "Beispielstraße 5", "20095", "Hamburg", "DE",
                    "einkauf@hafenkontor.example.com", "+4940000005", attention="Lena Muster",
                    vat_no="DE123456789"),
    # The others.
    "karen": person("Karen Testrup", "Testvænget 9", "4000", "Roskilde", "DK", "karen.testrup@example.com",
                    "+4520000006"),
    "peter": person("Peter Opdigt", "Opdigtet Allé 44", "6000", "Kolding", "DK", "peter.opdigt@example.net",
                    "+4520000007"),
    "line": person("Line Skitse", "Skitsevej 2", "7400", "Herning", "DK", "line.skitse@example.org", "+4520000008"),
    "rasmus": person("Rasmus Attrap", "Attrapgade 18", "8900", "Randers C", "DK", "rasmus.attrap@example.com",
                     "+4520000009"),
    "freja": person("Freja Kulisse", "Kulissevej 6", "3000", "Helsingør", "DK", "freja.kulisse@example.com",
                    "+4520000010"),
    "mikkel": person("Mikkel Modelsen", "Modelvej 30", "2800", "Kongens Lyngby", "DK",
                     "mikkel.modelsen@example.net", "+4520000011"),
    "ida": person("Ida Udkast", "Udkastvej 1", "8600", "Silkeborg", "DK", "ida.udkast@example.org", "+4520000012"),
    "oliver": person("Oliver Mønster", "Mønstergade 15", "1050", "København K", "DK",
                     "oliver.moenster@example.com", "+4520000013", phone="+4533000013"),
    "emma": person("Emma Forsøg", "Forsøgsvej 8", "6700", "Esbjerg", "DK", "emma.forsoeg@example.com",
                   "+4520000014"),
    "lars": person("Lars Pseudo", "Pseudovej 11", "4700", "Næstved", "DK", "lars.pseudo@example.net", "+4520000015"),
    "nanna": person("Nanna Skabelon", "Skabelonvej 27", "5700", "Svendborg", "DK", "nanna.skabelon@example.org",
                    "+4520000016"),
    "victor": person("Victor Prototype", "Prototypevej 5", "8700", "Horsens", "DK", "victor.prototype@example.com",
                     "+4520000017"),
    "clara": person("Clara Eksempelsen", "Eksempelsvinget 3", "2300", "København S", "DK",
                    "clara.eksempelsen@example.com", "+4520000018"),
    "signe": person("Signe Afprøvning", "Afprøvningsvej 19", "7500", "Holstebro", "DK",
                    "signe.afproevning@example.net", "+4520000019"),
    "bo": person("Bo Fingeret", "Fingeretvej 2", "4600", "Køge", "DK", "bo.fingeret@example.org", "+4520000020"),
    "tove": person("Tove Prøveklud", "Prøveklud Allé 10", "3400", "Hillerød", "DK", "tove.proeveklud@example.com",
                   "+4520000021"),
    "studio": person("Studio Eksempel ApS", "Værkstedsvej 40", "2500", "Valby", "DK", "bogholderi@studio.example.com",
                     "+4520000022", attention="Henrik Regnskab", vat_no="DK12345678"),
    # Abroad.
    "greta": person("Greta Musterfrau", "Musterweg 9", "10115", "Berlin", "DE", "greta.musterfrau@example.com",
                    "+4915100000023"),
    "klaus": person("Klaus Beispiel", "Probegasse 14", "80331", "München", "DE", "klaus.beispiel@example.net",
                    "+4915100000024"),
    "astrid": person("Astrid Exempelsson", "Exempelgatan 8", "11122", "Stockholm", "SE",
                     "astrid.exempelsson@example.com", "+46700000025"),
    "nils": person("Nils Provsson", "Provvägen 3", "41103", "Göteborg", "SE", "nils.provsson@example.org",
                   "+46700000026"),
    "fjord": person("Fjordhandel Exempel AB", "Lagergatan 12", "21119", "Malmö", "SE", "inkop@fjordhandel.example.com",
                    "+46400000027", attention="Erik Inköp", vat_no="SE556677889901"),
    "tulp": person("Tulpenhuis Voorbeeld B.V.", "Voorbeeldstraat 77", "1012 AB", "Amsterdam", "NL",
                   "inkoop@tulpenhuis.example.com", "+31200000028", attention="Sanne de Proef",
                   vat_no="NL123456789B01"),
    "kari": person("Kari Nordmann", "Eksempelveien 4", "0150", "Oslo", "NO", "kari.nordmann@example.com",
                   "+4790000029"),
    "ola": person("Ola Prøvestad", "Testveien 22", "5003", "Bergen", "NO", "ola.proevestad@example.net",
                  "+4790000030"),
    "fjell": person("Fjellutstyr Eksempel AS", "Industriveien 9", "7010", "Trondheim", "NO",
                    "innkjop@fjellutstyr.example.com", "+4773000031", attention="Ingrid Innkjøp",
                    vat_no="NO123456789MVA"),
}

# A delivery address that differs from the buyer's (a gift to Sweden).
GIFT_SHIP_TO = person("Elsa Mottagare", "Gåvovägen 2", "22350", "Lund", "SE", "elsa.mottagare@example.org",
                      "+46700000032", attention="c/o Mottagare")

# sku: (name, variant, unit price excluding VAT in DKK, unit weight g, customs code)
PRODUCTS: dict[str, tuple[str, str | None, str, int, str]] = {
    "UH-GR": ("Uldhue, merino", "Grå", "199.2", 120, "61051000"),
    "US-3P": ("Uldsokker, 3-pak", "Str. 40-43", "119.2", 240, "61159500"),
    "TK-04": ("Termokrus 0,4 l", "Sort", "159.2", 380, "96170000"),
    "PL-57": ("Plakat Nordlys 50x70", None, "239.2", 300, "49119100"),
    "TP-UL": ("Strikket tæppe, uld", "Natur", "639.2", 1400, "63012090"),
    "LT-SO": ("Lanterne, sort", None, "319.2", 900, "94055000"),
    "DL-FY": ("Duftlys, fyr", None, "79.2", 350, "34060000"),
    "SB-EG": ("Skærebræt, eg", None, "279.2", 1100, "44190000"),
    "BK-3P": ("Bivoksklude, 3-pak", None, "79.98", 90, "56039390"),   # VAT 19.995: rounds half up
    "VS-KR": ("Vanter, strik", "Rød", "143.98", 110, "61169200"),     # VAT 35.995
    "GK-200": ("Gavekort 200 kr", None, "200.0", 0, "49070030"),      # a voucher: no VAT when sold
}
# The one order in euros (prices excluding VAT in EUR).
EUR_PRICES = {"UH-GR": "26.8", "TK-04": "21.4", "DL-FY": "10.6"}

# key: (line name, carrier code, price excluding VAT in DKK)
SHIPPING = {
    "gls_shop": ("GLS PakkeShop", "gls", "39.2"),
    "pn_home": ("PostNord MyPack Home", "postnord", "55.2"),
    "dao": ("DAO Pakkeshop", "dao", "31.2"),
    "dhl_eu": ("DHL Express Europa", "dhl_express", "119.2"),
    "pn_se": ("PostNord Sverige", "postnord", "95.2"),
    "bring_no": ("Bring Pakke i postkassen Norge", "bring", "159.2"),
    "dhl_eu_eur": ("DHL Express Europa", "dhl_express", "15.9"),  # EUR
    "freight_b2b": ("Fragt, palle", "dhl_express", "450.0"),
}

SERVICE_POINTS = {
    "gls": {"id": "95558", "name": "Pakkeshop: Eksempel Kiosk", "address1": "Kioskvej 1", "shipping_agent": "gls"},
    "dao": {"id": "4201", "name": "DAO Pakkeshop: Prøve Købmand", "address1": "Købmandsgade 2",
            "shipping_agent": "dao"},
}

# Each order: shop, customer, created (month, day, hour, minute), items [(sku, qty, discount excl. VAT)],
# shipping, fee (excl. VAT), order discount (excl. VAT, positive), region ("dk25" or "zero"),
# state ("sent", "packed", "open", "cancelled"), payment ("captured", "authorized", None,
# "partial_refund", "refunded"), and optional: archived, ship_to, currency, note,
# inconsistent, handled_after (days), batch (orders handled at the same instant).
ORDERS: list[dict[str, Any]] = [
    # -- Nordlys Webshop -----------------------------------------------------------------
    {"shop": "web", "customer": "mette", "at": (1, 7, 9, 14), "items": [("UH-GR", 1, "0"), ("US-3P", 2, "0")],
     "shipping": "gls_shop", "state": "sent", "payment": "captured", "archived": True},
    {"shop": "web", "customer": "karen", "at": (1, 9, 20, 41), "items": [("TP-UL", 1, "0")],
     "shipping": "pn_home", "state": "sent", "payment": "captured", "archived": True},
    {"shop": "web", "customer": "jonas", "at": (1, 14, 12, 5), "items": [("TK-04", 2, "31.84"), ("DL-FY", 3, "0")],
     "shipping": "pn_home", "state": "sent", "payment": "captured"},
    {"shop": "web", "customer": "sofie", "at": (1, 21, 18, 30), "items": [("LT-SO", 2, "0"), ("DL-FY", 4, "0")],
     "shipping": "gls_shop", "discount": "95.52", "discount_name": "Rabatkode VINTER10", "state": "sent",
     "payment": "captured"},
    {"shop": "web", "customer": "peter", "at": (1, 26, 7, 55), "items": [("SB-EG", 1, "0")], "shipping": "dao",
     "fee": "23.2", "fee_name": "Betalingsgebyr, faktura", "state": "sent", "payment": "captured"},
    {"shop": "web", "customer": "studio", "at": (2, 2, 10, 12), "items": [("PL-57", 6, "0"), ("LT-SO", 4, "127.68")],
     "shipping": "pn_home", "state": "sent", "payment": None, "payment_method": "invoice"},
    {"shop": "web", "customer": "greta", "at": (2, 5, 21, 3), "items": [("UH-GR", 2, "0"), ("BK-3P", 1, "0")],
     "shipping": "dhl_eu", "state": "sent", "payment": "captured"},
    {"shop": "web", "customer": "astrid", "at": (2, 11, 16, 47), "items": [("TP-UL", 1, "0"), ("VS-KR", 1, "0")],
     "shipping": "pn_se", "state": "sent", "payment": "captured"},
    {"shop": "web", "customer": "klaus", "at": (2, 17, 11, 22), "items": [("UH-GR", 1, "0"), ("TK-04", 1, "0"),
                                                                       ("DL-FY", 2, "0")],
     "shipping": "dhl_eu_eur", "currency": "EUR", "state": "sent", "payment": "captured"},
    {"shop": "web", "customer": "hafen", "at": (2, 23, 8, 30), "items": [("TP-UL", 10, "0"), ("UH-GR", 24, "478.08")],
     "shipping": "freight_b2b", "region": "zero", "state": "sent", "payment": None,
     "payment_method": "bank_transfer"},
    {"shop": "web", "customer": "fjord", "at": (3, 3, 13, 15), "items": [("LT-SO", 12, "0"), ("DL-FY", 24, "0")],
     "shipping": "freight_b2b", "region": "zero", "state": "sent", "payment": "captured"},
    {"shop": "web", "customer": "tulp", "at": (3, 10, 9, 5), "items": [("SB-EG", 8, "0"), ("BK-3P", 20, "0")],
     "shipping": "freight_b2b", "region": "zero", "state": "sent", "payment": None,
     "payment_method": "bank_transfer"},
    {"shop": "web", "customer": "kari", "at": (3, 16, 19, 40), "items": [("UH-GR", 1, "0"), ("VS-KR", 2, "0")],
     "shipping": "bring_no", "region": "zero", "state": "sent", "payment": "captured"},
    {"shop": "web", "customer": "fjell", "at": (3, 20, 10, 0), "items": [("TK-04", 30, "0")],
     "shipping": "freight_b2b", "region": "zero", "state": "sent", "payment": "captured"},
    # Created on the last day of winter time, handled in summer time.
    {"shop": "web", "customer": "mette", "at": (3, 28, 22, 10), "items": [("PL-57", 1, "0"), ("DL-FY", 1, "0")],
     "shipping": "gls_shop", "state": "sent", "payment": "captured", "handled_after": 2},
    {"shop": "web", "customer": "line", "at": (4, 6, 14, 26), "items": [("TP-UL", 1, "0"), ("US-3P", 1, "0")],
     "shipping": "pn_home", "state": "sent", "payment": "partial_refund"},
    {"shop": "web", "customer": "rasmus", "at": (4, 13, 17, 2), "items": [("LT-SO", 1, "0")],
     "shipping": "gls_shop", "state": "sent", "payment": "refunded"},
    {"shop": "web", "customer": "freja", "at": (4, 22, 8, 49), "items": [("UH-GR", 1, "0"), ("GK-200", 1, "0")],
     "shipping": "dao", "state": "sent", "payment": "captured", "note": "Gavekortet skal med i pakken"},
    {"shop": "web", "customer": "mikkel", "at": (5, 4, 12, 33), "items": [("VS-KR", 1, "0"), ("BK-3P", 1, "0")],
     "shipping": "gls_shop", "state": "sent", "payment": "captured", "batch": "may-7"},
    {"shop": "web", "customer": "ida", "at": (5, 5, 9, 18), "items": [("SB-EG", 1, "0"), ("DL-FY", 2, "0")],
     "shipping": "pn_home", "state": "sent", "payment": "captured", "batch": "may-7"},
    {"shop": "web", "customer": "oliver", "at": (5, 12, 15, 0), "items": [("US-3P", 1, "0")],
     "shipping": "gls_shop", "state": "sent", "payment": "captured", "inconsistent": True},
    {"shop": "web", "customer": "emma", "at": (5, 19, 20, 14), "items": [("TK-04", 1, "0"), ("PL-57", 1, "0")],
     "shipping": "pn_se", "ship_to": GIFT_SHIP_TO, "state": "sent",
     "payment": "captured", "note": "Gave, skriv ikke prisen på følgesedlen"},
    {"shop": "web", "customer": "lars", "at": (5, 27, 11, 45), "items": [("LT-SO", 1, "0"), ("DL-FY", 2, "0")],
     "shipping": "pn_home", "state": "packed", "payment": "captured"},
    {"shop": "web", "customer": "nanna", "at": (6, 2, 21, 30), "items": [("UH-GR", 2, "0")],
     "shipping": "gls_shop", "state": "sent", "payment": "authorized"},
    {"shop": "web", "customer": "victor", "at": (6, 8, 13, 7), "items": [("TP-UL", 1, "0")],
     "shipping": "pn_home", "state": "cancelled", "payment": None},
    {"shop": "web", "customer": "clara", "at": (6, 15, 10, 58), "items": [("SB-EG", 1, "0"), ("BK-3P", 2, "0")],
     "shipping": "dao", "state": "open", "payment": "authorized"},
    {"shop": "web", "customer": "signe", "at": (6, 22, 16, 20), "items": [("PL-57", 2, "0")],
     "shipping": "gls_shop", "state": "open", "payment": None, "payment_method": "mobilepay"},
    # -- Nordlys Outlet ------------------------------------------------------------------
    {"shop": "outlet", "customer": "mette", "at": (1, 19, 19, 5), "items": [("TK-04", 1, "47.76")],
     "shipping": "gls_shop", "state": "sent", "payment": "captured"},
    {"shop": "outlet", "customer": "jonas", "at": (2, 9, 12, 40), "items": [("US-3P", 3, "0"), ("DL-FY", 2, "0")],
     "shipping": "dao", "discount": "50.0", "discount_name": "Outletrabat", "state": "sent", "payment": "captured"},
    {"shop": "outlet", "customer": "sofie", "at": (2, 27, 7, 12), "items": [("PL-57", 1, "71.76")],
     "shipping": "gls_shop", "state": "sent", "payment": "captured"},
    {"shop": "outlet", "customer": "anders", "at": (3, 12, 18, 18), "items": [("LT-SO", 2, "191.52")],
     "shipping": "pn_home", "state": "sent", "payment": "partial_refund"},
    {"shop": "outlet", "customer": "anders", "at": (3, 24, 9, 50), "items": [("UH-GR", 1, "59.76")],
     "shipping": "pn_home", "instruction": "Stil pakken ved bagdøren", "state": "sent", "payment": "captured"},
    {"shop": "outlet", "customer": "hafen", "at": (4, 1, 10, 30), "items": [("US-3P", 40, "1430.4")],
     "shipping": "freight_b2b", "region": "zero", "state": "sent", "payment": None,
     "payment_method": "bank_transfer"},
    {"shop": "outlet", "customer": "bo", "at": (4, 10, 20, 5), "items": [("SB-EG", 1, "83.76"), ("DL-FY", 1, "0")],
     "shipping": "gls_shop", "fee": "23.2", "fee_name": "Betalingsgebyr, faktura", "state": "sent",
     "payment": "captured"},
    {"shop": "outlet", "customer": "tove", "at": (4, 18, 14, 44), "items": [("TP-UL", 1, "191.76")],
     "shipping": "pn_home", "state": "sent", "payment": "captured"},
    {"shop": "outlet", "customer": "nils", "at": (4, 29, 22, 1), "items": [("UH-GR", 2, "119.52")],
     "shipping": "pn_se", "state": "sent", "payment": "captured"},
    {"shop": "outlet", "customer": "ola", "at": (5, 8, 8, 8), "items": [("TK-04", 2, "95.52"), ("VS-KR", 1, "0")],
     "shipping": "bring_no", "region": "zero", "state": "sent", "payment": "captured"},
    {"shop": "outlet", "customer": "freja", "at": (5, 21, 19, 33), "items": [("US-3P", 2, "71.52"),
                                                                           ("BK-3P", 3, "0")],
     "shipping": "dao", "state": "sent", "payment": "authorized"},
    {"shop": "outlet", "customer": "karen", "at": (6, 4, 12, 0), "items": [("LT-SO", 1, "95.76")],
     "shipping": "gls_shop", "state": "packed", "payment": "captured"},
    {"shop": "outlet", "customer": "peter", "at": (6, 18, 15, 27), "items": [("PL-57", 3, "215.28")],
     "shipping": "pn_home", "state": "open", "payment": "authorized"},
    {"shop": "outlet", "customer": "bo", "at": (6, 25, 9, 9), "items": [("DL-FY", 5, "118.8")],
     "shipping": "dao", "state": "open", "payment": "authorized"},
]


# -- numbers and times as Shipmondo writes them ------------------------------------------
def amount(value: Decimal) -> str:
    """Ruby BigDecimal style, as in the recorded answer: ``"149.0"``, ``"29.8"``, ``"0.25"``."""
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def stamp(moment: datetime) -> str:
    return moment.astimezone(CPH).isoformat(timespec="milliseconds")


def vat_of(net: Decimal, rate: Decimal) -> Decimal:
    return (net * rate).quantize(CENT, rounding=ROUND_HALF_UP)


class Builder:
    def __init__(self) -> None:
        self.rng = random.Random(18)
        self.next_order_id = 48213001
        self.next_line_id = 49107001
        self.next_shipment_id = 61200001
        self.numbers = {shop: info["first"] for shop, info in SHOPS.items()}
        self.batches: dict[str, datetime] = {}

    def moment(self, month: int, day: int, hour: int, minute: int) -> datetime:
        return datetime(2026, month, day, hour, minute, self.rng.randrange(60),
                        self.rng.randrange(1000) * 1000, tzinfo=CPH)

    def later(self, start: datetime, days: int) -> datetime:
        """``days`` later (calendar days in Copenhagen), in working hours."""
        day = start.date() + timedelta(days=days)
        return datetime(day.year, day.month, day.day, self.rng.randrange(8, 16), self.rng.randrange(60),
                        self.rng.randrange(60), self.rng.randrange(1000) * 1000, tzinfo=CPH)

    def line(self, line_type: str, name: str, qty: Decimal, unit: Decimal, discount: Decimal, rate: Decimal,
             currency: str, *, sku: str | None = None, variant: str | None = None, weight: int = 0,
             customs: str | None = None, shipped: bool = False, export: bool = False) -> dict[str, Any]:
        net = (qty * unit - discount).quantize(CENT)
        vat = vat_of(net, rate)
        line_id = self.next_line_id
        self.next_line_id += self.rng.randrange(1, 4)
        return {
            "id": line_id,
            "line_type": line_type,
            "item_name": name,
            "item_sku": sku,
            "item_variant_code": variant,
            "item_barcode": None,
            "quantity": amount(qty),
            "unit_price_excluding_vat": amount(unit),
            "discount_amount_excluding_vat": amount(discount),
            "amount_excluding_vat": amount(net),
            "amount_including_vat": amount(net + vat),
            "vat_amount": amount(vat),
            "vat_percent": amount(rate),
            "currency_code": currency,
            "shipped_quantity": amount(qty if shipped and line_type == "item" else ZERO),
            "unit_weight": weight,
            "cost_price": None,
            "country_code_of_origin": "DK" if export and line_type == "item" else None,
            "customs_code": customs if export and line_type == "item" else None,
            "customs_description": name if export and line_type == "item" else None,
            "image_url": None,
            "item_bin": None,
            "custom_product_data": [],
            "item_id": None,
        }

    def order(self, spec: dict[str, Any]) -> dict[str, Any]:
        shop = SHOPS[spec["shop"]]
        number = f"{shop['prefix']}{self.numbers[spec['shop']]}"
        self.numbers[spec["shop"]] += 1
        order_key = self.next_order_id
        self.next_order_id += self.rng.randrange(7, 400)  # other accounts' orders in between
        currency = spec.get("currency", "DKK")
        bill_to = dict(CUSTOMERS[spec["customer"]])
        ship_to_src = spec.get("ship_to", bill_to)
        ship_to = {key: ship_to_src[key] for key in ("name", "attention", "address1", "address2", "zipcode", "city",
                                                     "country_code", "email", "mobile", "phone")}
        ship_to.update({"instruction": spec.get("instruction"),
                        "vat_id": None, "vat_no": bill_to["vat_no"] if ship_to_src is bill_to else None,
                        "address_validation": {"state": "success", "suggestion": None}})
        rate = ZERO if spec.get("region") == "zero" else DK_VAT
        state = spec["state"]
        handled = state in ("sent", "packed")
        export = ship_to["country_code"] == "NO"

        created = self.moment(*spec["at"])
        ordered = (created.astimezone(UTC) - timedelta(minutes=self.rng.randrange(1, 20),
                                                       milliseconds=self.rng.randrange(1000))).astimezone(CPH)
        lines = []
        for sku, qty, discount in spec["items"]:
            name, variant, price, weight, customs = PRODUCTS[sku]
            unit = Decimal(EUR_PRICES[sku] if currency == "EUR" else price)
            item_rate = ZERO if sku == "GK-200" else rate
            lines.append(self.line("item", name, Decimal(qty), unit, Decimal(discount), item_rate, currency, sku=sku,
                                   variant=variant, weight=weight, customs=customs, shipped=state == "sent",
                                   export=export))
        ship_name, carrier, ship_price = SHIPPING[spec["shipping"]]
        lines.append(self.line("shipping", ship_name, Decimal(1), Decimal(ship_price), ZERO, rate, currency))
        if spec.get("fee"):
            lines.append(self.line("payment_fee", spec["fee_name"], Decimal(1), Decimal(spec["fee"]), ZERO, rate,
                                   currency))
        if spec.get("discount"):
            value = -Decimal(spec["discount"])
            lines.append(self.line("discount", spec["discount_name"], Decimal(1), value, ZERO, rate, currency))

        net = sum((Decimal(li["amount_excluding_vat"]) for li in lines), ZERO)
        vat = sum((Decimal(li["vat_amount"]) for li in lines), ZERO)
        rates = {li["vat_percent"] for li in lines}
        if spec.get("inconsistent"):
            # As in the recorded example: the lines say 0 % VAT, the summary 25 %.
            for li in lines:
                li["amount_including_vat"] = li["amount_excluding_vat"]
                li["vat_amount"] = "0.0"
                li["vat_percent"] = "0.0"
            vat = vat_of(net, DK_VAT)
            rates = set()  # the summary states no rate, as in the recorded example
        gross = net + vat

        payment = spec["payment"]
        updated = (created.astimezone(UTC) + timedelta(seconds=self.rng.randrange(1, 5),
                                                       milliseconds=self.rng.randrange(1000))).astimezone(CPH)
        fulfillments = []
        if handled:
            batch = spec.get("batch")
            if batch and batch in self.batches:
                handled_at = self.batches[batch]
            else:
                handled_at = self.later(created, spec.get("handled_after", self.rng.randrange(1, 3)))
                if batch:
                    self.batches[batch] = handled_at
            fulfillments.append({
                "code": f"{number}-1",
                "shipment_id": self.next_shipment_id,
                "created_at": stamp(handled_at),
                "updated_at": stamp(handled_at),
            })
            self.next_shipment_id += self.rng.randrange(3, 60)
            updated = handled_at
        authorized = captured = refunded = None
        status: str | None = None
        if payment is not None:
            authorized = gross
            status = "authorized"
        if payment in ("captured", "partial_refund", "refunded"):
            captured, status = gross, "captured"
        if payment == "partial_refund":
            # One unit of the last item line comes back.
            last = [li for li in lines if li["line_type"] == "item"][-1]
            one = (Decimal(last["amount_including_vat"]) / Decimal(last["quantity"])).quantize(CENT)
            refunded, status = one, "partially_refunded"
        if payment == "refunded":
            refunded, status = gross, "refunded"
        if refunded is not None:
            updated = self.later(updated, self.rng.randrange(3, 10))
        if state == "cancelled":
            updated = self.later(created, 1)
        method = spec.get("payment_method") or ("quickpay" if payment is not None else None)
        service_point = {"id": None, "name": None, "address1": None, "zipcode": None, "city": None,
                         "country_code": None, "shipping_agent": None}
        if carrier in SERVICE_POINTS and ship_to["country_code"] == "DK":
            point = SERVICE_POINTS[carrier]
            service_point = {"id": point["id"], "name": point["name"], "address1": point["address1"],
                             "zipcode": ship_to["zipcode"], "city": ship_to["city"], "country_code": "DK",
                             "shipping_agent": point["shipping_agent"]}
        return {
            "id": order_key,
            "order_id": number,
            "reference": number,
            "ordered_at": stamp(ordered),
            "order_status": state,
            "fulfillment_status": "fulfilled" if handled else "unfulfilled",
            "payment_status": status,
            "shipped_percent": 100 if state == "sent" else 0,
            "fulfilled_percent": 100 if handled else 0,
            "archived": bool(spec.get("archived")),
            "source_name": shop["source_name"],
            "order_note": spec.get("note"),
            "created_at": stamp(created),
            "updated_at": stamp(updated),
            "ship_to": ship_to,
            "bill_to": bill_to,
            "service_point": service_point,
            "sender": dict(SENDER),
            "payment_details": {
                "amount_excluding_vat": amount(net),
                "amount_including_vat": amount(gross),
                "authorized_amount": None if authorized is None else amount(authorized),
                "captured_amount": None if captured is None else amount(captured),
                "refunded_amount": None if refunded is None else amount(refunded),
                "currency_code": currency,
                "vat_amount": amount(vat),
                "vat_percent": next(iter(rates)) if len(rates) == 1 else None,
                "payment_method": method,
                "transaction_id": None if method in (None, "invoice", "bank_transfer")
                else str(310000000 + order_key % 1000000),
            },
            "order_lines": lines,
            "order_fulfillments": fulfillments,
            "enable_customs": export,
            "shipment_template_id": None,
            "return_shipment_template_id": None,
            "sales_order_packaging_id": None,
            "bookkeeping_integration_id": None,
            "use_item_weight": True,
            "carrier_fields": None,
            "tags": [],
            "assigned_staff_account_id": None,
            "carrier_code": carrier if handled else None,
        }


def build_orders() -> list[dict[str, Any]]:
    """The demo orders, newest id first (as ``GET /sales_orders`` lists them)."""
    builder = Builder()
    specs = sorted(ORDERS, key=lambda s: s["at"])  # ids and numbers follow creation
    orders = [builder.order(spec) for spec in specs]
    return sorted(orders, key=lambda o: o["id"], reverse=True)


def render() -> str:
    return json.dumps(build_orders(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(json.loads(text))} sales orders to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
