"""Writes ledgerlink_onecrm/data/demo_seed.json: the 1CRM sandbox's demo data.

30 invoices for 10 accounts, in 1CRM's own shapes (every value a string; the invoice
header, its line groups, lines and adjustments as separate records, as ``GET
data/{Model}/{id}`` answers them). The figures are computed here the way 1CRM computes
them (tax per line group: rate x the group's net, half-up to the cent), so the seed is
what a real installation would hold. Run: ``python scripts/make_demo_seed.py``.

Variety: German B2B at 19 % and 7 % (one invoice with both rates on its lines), a group
discount, taxed shipping, a group whose per-line rounding differs by a cent from 1CRM's
group tax, an Austrian business with a VAT id (0 %), a Swiss customer billed in CHF,
a cancelled invoice, one paid in 1CRM already, one dated before the start date, the
two dispatch presets (automatic, manual), an account without a preset, and German and
English as languages.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def uid(kind: str, n: int) -> str:
    return f"{kind}-{n:04d}-4c1d-8e2a-{n:012d}"


ACCOUNTS = [
    # name, street, zip, city, country, email, dispatch preset, language, vat id
    ("Müller Maschinenbau GmbH", "Leopoldstr. 12", "80802", "München", "Germany", "buchhaltung@mueller-mb.example",
     "Automatisch", "Deutsch", ""),
    ("Becker & Partner Steuerberatung", "Jungfernstieg 7", "20354", "Hamburg", "Deutschland",
     "kanzlei@becker-partner.example", "Manuell", "Deutsch", ""),
    ("Schmidt Logistik AG", "Hohenzollernring 40", "50672", "Köln", "Germany", "rechnung@schmidt-logistik.example",
     "Automatisch", "Deutsch", ""),
    ("Hoffmann Elektrotechnik KG", "Königstr. 3", "70173", "Stuttgart", "Germany", "info@hoffmann-et.example",
     "Manuell", "Deutsch", ""),
    ("Wagner Medien GmbH", "Torstr. 140", "10119", "Berlin", "Germany", "accounts@wagner-medien.example",
     "Automatisch", "English", ""),
    ("Fischer Bau GmbH", "Karl-Liebknecht-Str. 9", "04107", "Leipzig", "Germany", "bau@fischer-bau.example",
     "", "", ""),
    ("Keller Consulting GmbH", "Zeil 5", "60313", "Frankfurt am Main", "Germany", "office@keller-consulting.example",
     "Manuell", "Deutsch", ""),
    ("Alpen Handel GmbH", "Mariahilfer Str. 88", "1070", "Wien", "Austria", "office@alpenhandel.example",
     "Automatisch", "Deutsch", "ATU12345678"),
    ("Zürich Instruments AG", "Bahnhofstrasse 21", "8001", "Zürich", "Switzerland", "finance@zh-instruments.example",
     "Manuell", "English", "CHE-123.456.789"),
    ("Nordsee Hotel GmbH", "Kiellinie 50", "24105", "Kiel", "Germany", "verwaltung@nordsee-hotel.example",
     "Automatisch", "Deutsch", ""),
]

USERS = [
    {"id": "1", "user_name": "admin", "full_name": "Anna Schmidt", "first_name": "Anna", "last_name": "Schmidt",
     "email1": "anna.schmidt@nordlicht.example", "address_street": "Hauptstr. 1", "address_city": "Berlin",
     "address_postalcode": "10115", "address_country": "Germany"},
    {"id": "2", "user_name": "jweber", "full_name": "Jonas Weber", "first_name": "Jonas", "last_name": "Weber",
     "email1": "jonas.weber@nordlicht.example", "address_street": "Am Sandtorkai 5", "address_city": "Hamburg",
     "address_postalcode": "20457", "address_country": "Deutschland"},
]

SERVICES = [("Softwarewartung (monatlich)", "1", "480.00", "WART-M"), ("Beratung vor Ort (Stunden)", "6", "125.00",
            "BER-H"), ("Schulung (Tagessatz)", "1", "950.00", "SCH-T"), ("Hosting Business", "3", "89.90", "HOST-B"),
            ("Projektmanagement (Stunden)", "4", "110.00", "PM-H"), ("Lizenz Nordlicht ERP", "2", "399.00", "LIZ-E")]
BOOKS = [("Fachbuch Datenbanken", "3", "49.90", "BUCH-DB"), ("Handbuch Nordlicht ERP", "2", "29.00", "BUCH-HB")]


def main() -> None:
    seed: dict[str, list[dict[str, str | None]]] = {
        "Account": [], "User": USERS, "Currency": [{"id": "cur-chf", "name": "Schweizer Franken", "iso4217": "CHF",
                                                     "symbol": "CHF", "conversion_rate": "0.94", "status": "Active"}],
        "Invoice": [], "InvoiceLineGroup": [], "InvoiceLine": [], "InvoiceAdjustment": [],
    }
    for n, (name, street, zip_, city, country, email, dispatch, language, vat) in enumerate(ACCOUNTS, start=1):
        seed["Account"].append({
            "id": uid("acc", n), "name": name, "email1": email, "phone_office": f"+49 30 555 00{n:02d}",
            "billing_address_street": street, "billing_address_postalcode": zip_, "billing_address_city": city,
            "billing_address_country": country, "tax_information": vat or None, "currency_id": "-99",
            "bilendo_dispatch_c": dispatch or None, "bilendo_language_c": language or None,
            "date_modified": "2025-11-03 09:00:00",
        })
    start = date(2026, 1, 5)
    for n in range(1, 31):
        acc_n = (n - 1) % 10 + 1
        (name, street, zip_, city, country, email, *_rest) = ACCOUNTS[acc_n - 1]
        inv_id = uid("inv", n)
        inv_date = start + timedelta(days=2 * n)
        if n == 20:
            inv_date = date(2025, 12, 15)  # before the demo's start date: skipped
        zero = acc_n in (8, 9)  # Austria (intra-EU, VAT id) and Switzerland (outside the EU): 0 %
        groups: list[tuple[str, list[tuple[str, str, str, str, str | None]], list[dict[str, str]]]] = []
        a, b = SERVICES[n % 6], SERVICES[(n + 2) % 6]
        lines = [(*a, None), (*b, None)]
        adjustments: list[dict[str, str]] = []
        if n == 3:
            adjustments.append({"type": "StdPercentDiscount", "name": "Stammkundenrabatt", "rate": "10"})
        if n == 7:
            adjustments.append({"type": "TaxedShipping", "name": "Versand Schulungsunterlagen", "amount": "12.90"})
        if n == 11:  # per-line rounding differs from 1CRM's group tax by a cent
            lines = [("Support-Paket S", "1", "33.33", "SUP-S", None), ("Support-Paket M", "1", "33.33", "SUP-M", None),
                     ("Support-Paket L", "1", "33.33", "SUP-L", None)]
        mixed = n == 15
        if mixed:
            lines = [(*SERVICES[2], "19"), (*BOOKS[0], "7"), (*BOOKS[1], "7")]
        if n == 18:
            groups.append(("Literatur", [(*BOOKS[0], None), (*BOOKS[1], None)], []))
        groups.insert(0, ("Leistungen", lines, adjustments))

        total_net = Decimal("0.00")
        total_tax = Decimal("0.00")
        for g_pos, (g_name, g_lines, g_adj) in enumerate(groups, start=1):
            gid = uid(f"grp{g_pos}", n)
            rate = Decimal(0) if zero else (Decimal(7) if g_name == "Literatur" else Decimal(19))
            g_net = Decimal("0.00")
            per_rate: dict[Decimal, Decimal] = {}
            line_ids = []
            for l_pos, (desc, qty, unit, sku, line_rate) in enumerate(g_lines, start=1):
                lid = uid(f"ln{g_pos}{l_pos}", n)
                ext = money(Decimal(qty) * Decimal(unit))
                g_net += ext
                r = Decimal(line_rate) if line_rate else rate
                per_rate[r] = per_rate.get(r, Decimal("0.00")) + ext
                line_ids.append((lid, r, ext))
                seed["InvoiceLine"].append({
                    "id": lid, "invoice_id": inv_id, "line_group_id": gid, "position": str(l_pos), "name": desc,
                    "quantity": qty, "ext_quantity": qty, "unit_price": unit, "list_price": unit,
                    "std_unit_price": unit, "ext_price": str(ext), "net_price": str(ext), "mfr_part_no": sku,
                    "related_type": "ProductCatalog", "tax_class_id": "tc-standard" if r == 19 else (
                        "tc-reduced" if r == 7 else "tc-exempt"), "sum_of_components": "0", "parent_id": None,
                })
            pos = len(g_lines)
            for adj in g_adj:
                pos += 1
                if adj["type"] == "StdPercentDiscount":
                    amount = money(g_net * Decimal(adj["rate"]) / 100)
                    g_net -= amount
                    per_rate[rate] -= amount
                else:
                    amount = Decimal(adj["amount"])
                    g_net += amount
                    per_rate[rate] = per_rate.get(rate, Decimal("0.00")) + amount
                seed["InvoiceAdjustment"].append({
                    "id": uid(f"adj{g_pos}{pos}", n), "invoice_id": inv_id, "line_group_id": gid, "line_id": None,
                    "position": str(pos), "name": adj["name"], "related_type": "Discounts" if "Discount" in adj[
                        "type"] else "ShippingProviders", "related_id": None, "rate": adj.get("rate"),
                    "type": adj["type"], "amount": str(amount), "tax_class_id": "tc-standard" if "Shipping" in adj[
                        "type"] else None,
                })
            g_tax = Decimal("0.00")
            if not zero:
                if mixed:
                    for lid, r, ext in line_ids:
                        pos += 1
                        tax = money(ext * r / 100)
                        g_tax += tax
                        seed["InvoiceAdjustment"].append({
                            "id": uid(f"tax{g_pos}{pos}", n), "invoice_id": inv_id, "line_group_id": gid,
                            "line_id": lid, "position": str(pos), "name": f"MwSt. {r}%", "related_type": "TaxRates",
                            "related_id": f"tr-{r}", "rate": str(r), "type": "StandardTax", "amount": str(tax),
                            "tax_class_id": None})
                else:
                    pos += 1
                    tax = money(g_net * rate / 100)
                    g_tax += tax
                    seed["InvoiceAdjustment"].append({
                        "id": uid(f"tax{g_pos}{pos}", n), "invoice_id": inv_id, "line_group_id": gid, "line_id": None,
                        "position": str(pos), "name": f"MwSt. {rate}%", "related_type": "TaxRates",
                        "related_id": f"tr-{rate}", "rate": str(rate), "type": "StandardTax", "amount": str(tax),
                        "tax_class_id": None})
            seed["InvoiceLineGroup"].append({
                "id": gid, "parent_id": inv_id, "name": g_name, "position": str(g_pos),
                "group_type": "products" if g_name == "Literatur" else "service", "status": "Draft",
                "pricing_method": "", "cost": "0.00", "subtotal": str(g_net), "total": str(g_net + g_tax),
            })
            total_net += g_net
            total_tax += g_tax
        amount = total_net + total_tax
        chf = acc_n == 9
        seed["Invoice"].append({
            "id": inv_id, "deleted": "0", "prefix": "RE-2026-", "invoice_number": f"{n:03d}",
            "full_number": f"RE-2026-{n:03d}", "name": f"{a[0].split(' (')[0]} {inv_date:%m/%Y}",
            "invoice_date": inv_date.isoformat(), "due_date": (inv_date + timedelta(days=14)).isoformat(),
            "terms": "Net 15 Days", "billing_account_id": uid("acc", acc_n), "billing_account": name,
            "billing_address_street": street, "billing_address_city": city, "billing_address_postalcode": zip_,
            "billing_address_country": country, "billing_email": email, "currency_id": "cur-chf" if chf else "-99",
            "currency": "Schweizer Franken: CHF" if chf else "Euro: €", "exchange_rate": "0.94" if chf else "1",
            "amount": str(amount), "amount_usdollar": str(money(amount / Decimal("0.94"))) if chf else str(amount),
            "amount_due": "0.00" if n == 25 else str(amount), "subtotal": str(total_net), "pretax": str(total_net),
            "tax_exempt": "1" if zero else "0", "discount_before_taxes": "1", "cancelled": "1" if n == 5 else "0",
            "shipping_stage": "Pending" if n % 3 else "Shipped", "assigned_user_id": "1" if n % 2 else "2",
            "bilendo_status_c": None, "date_entered": f"{inv_date.isoformat()} 08:00:00",
            "date_modified": f"{inv_date.isoformat()} {8 + n % 9:02d}:{(7 * n) % 60:02d}:00",
        })
    out = Path(__file__).resolve().parent.parent / "ledgerlink_onecrm" / "data" / "demo_seed.json"
    out.write_text(json.dumps(seed, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(seed['Invoice'])} invoices, {len(seed['Account'])} accounts")


if __name__ == "__main__":
    main()
