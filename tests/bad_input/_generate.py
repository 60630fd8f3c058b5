"""Regenerates the Billbee order files of this corpus from one good demo order.

    .venv/bin/python tests/bad_input/_generate.py

Each ``order-*.json`` is a complete Billbee order (``GET /api/v1/orders`` item)
with one thing broken; ``good-orders.json`` holds the good orders every broken one
is mixed with. The ``ledger-*.sqlite`` files are ledger files that cannot be used (made
with this ledgerlink's schema, small pages). The answer files (``billbee-*``,
``sevdesk-*``, ``page-*``) are written by hand and not touched here. See README.md
for what each file breaks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DEMO = HERE.parents[1] / "plugins/billbee_source/ledgerlink_billbee/data/demo_orders.json"
BROKEN_ID = 900000000000001
BROKEN_INVOICE = 9001


def base() -> dict[str, Any]:
    order = copy.deepcopy(json.loads(DEMO.read_text("utf-8"))["Data"][0])
    order["History"] = []
    return order


def good_orders() -> list[dict[str, Any]]:
    """Three orders that transfer: 1 and 3 around the broken one (modified at 11:00)."""
    out = []
    for n, hour in ((1, 10), (2, 12), (3, 14)):
        order = base()
        order["BillBeeOrderId"] = 800000000000000 + n
        order["Id"] = order["OrderNumber"] = f"GOOD{n}"
        order["InvoiceNumber"] = 8000 + n
        order["InvoiceNumberPrefix"] = "RE-GOOD-"
        order["LastModifiedAt"] = f"2025-03-01T{hour:02d}:00:00.000"
        order["Customer"]["Id"] = 700000000000000 + n
        order["InvoiceAddress"]["LastName"] = f"Gut{n}"
        order["InvoiceAddress"]["Email"] = f"good{n}@example.de"
        out.append(order)
    return out


def broken(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    order = base()
    order["BillBeeOrderId"] = BROKEN_ID
    order["Id"] = order["OrderNumber"] = "BROKEN"
    order["InvoiceNumber"] = BROKEN_INVOICE
    order["InvoiceNumberPrefix"] = "RE-BAD-"
    order["LastModifiedAt"] = "2025-03-01T11:00:00.000"
    order["Customer"]["Id"] = 700000000000099
    order["InvoiceAddress"]["Email"] = "broken@example.de"
    change(order)
    return order


def item(order: dict[str, Any], n: int = 0) -> dict[str, Any]:
    return order["OrderItems"][n]  # type: ignore[no-any-return]


def setter(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(order: dict[str, Any]) -> None:
        node: Any = order
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def deleter(*path: Any) -> Callable[[dict[str, Any]], None]:
    def change(order: dict[str, Any]) -> None:
        node: Any = order
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(order: dict[str, Any]) -> None:
        for c in changes:
            c(order)
    return change


ORDERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "order-missing-created-at": deleter("CreatedAt"),
    "order-missing-order-items": deleter("OrderItems"),
    "order-missing-total": deleter("TotalCost"),
    "order-missing-currency": deleter("Currency"),
    "order-missing-item-price": deleter("OrderItems", 0, "TotalPrice"),
    "order-id-as-string": setter("BillBeeOrderId", value=str(BROKEN_ID)),
    "order-total-as-text": setter("TotalCost", value="57,20"),
    "order-quantity-as-text": setter("OrderItems", 0, "Quantity", value="zwei"),
    "order-items-not-a-list": setter("OrderItems", value={"0": "Bio-Kaffee"}),
    "order-item-not-an-object": setter("OrderItems", value=["Bio-Kaffee Espresso 1 kg"]),
    "order-customer-not-an-object": setter("Customer", value="Anna Schmidt"),
    "order-invoice-number-as-text": setter("InvoiceNumber", value="RE-2025-1001"),
    "order-lines-do-not-add-up": setter("TotalCost", value=99.99),
    "order-item-tax-does-not-add-up": setter("OrderItems", 0, "TaxAmount", value=9.99),
    "order-unknown-currency": setter("Currency", value="XYZ"),
    "order-currency-symbol": setter("Currency", value="€"),
    "order-negative-quantity": setter("OrderItems", 0, "Quantity", value=-2.0),
    "order-zero-quantity": setter("OrderItems", 0, "Quantity", value=0.0),
    "order-absurd-quantity": setter("OrderItems", 0, "Quantity", value=1e13),
    "order-absurd-amount": both(setter("OrderItems", 0, "TotalPrice", value=1e16),
                                setter("TotalCost", value=1e16)),
    "order-no-items": both(setter("OrderItems", value=[]), setter("ShippingCost", value=0),
                           setter("TotalCost", value=0)),
    "order-created-far-future": setter("CreatedAt", value="9999-12-31T23:59:59.9999999"),
    "order-invoice-date-min-value": setter("InvoiceDate", value="0001-01-01T00:00:00"),
    "order-date-not-a-date": setter("CreatedAt", value="gestern"),
    "order-date-february-30": setter("InvoiceDate", value="2025-02-30T10:00:00"),
    "order-unknown-tax-index": setter("OrderItems", 0, "TaxIndex", value=3),
    "order-tax-rate-missing": setter("TaxRate1", value=None),
    "order-tax-rate-absurd": setter("TaxRate1", value=190.0),
    "order-unknown-vat-mode": setter("VatMode", value=9),
    "order-country-not-iso": both(setter("InvoiceAddress", "CountryISO2", value="Deutschland"),
                                  setter("InvoiceAddress", "Country", value="Deutschland")),
    "order-payment-value-as-text": setter("Payments", 0, "PayValue", value="57.20 EUR"),
    "order-gigantic-name": setter("InvoiceAddress", "LastName", value="Schmidt" + "x" * (1 << 20)),
    "order-gigantic-item-title": setter("OrderItems", 0, "Product", "Title", value="Kaffee " * 20_000),
}


def dump(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    (HERE / "good-orders.json").write_text(dump(good_orders()), "utf-8")
    for name, change in ORDERS.items():
        (HERE / f"{name}.json").write_text(dump(broken(change)), "utf-8")
    # Amounts Python's json writes but JSON does not allow (Billbee's .NET would
    # never send them; a proxy or a broken export might): NaN and Infinity.
    nan = dump(broken(setter("TotalCost", value=0.0))).replace('"TotalCost": 0.0', '"TotalCost": NaN')
    (HERE / "order-total-nan.json").write_text(nan, "utf-8")
    # Whole GET /orders answers (served as raw bytes): the good orders and one broken.
    latin1 = broken(setter("InvoiceAddress", "LastName", value="M@@ller"))
    page = dump(envelope([*good_orders(), latin1])).encode("utf-8").replace(b"@@", b"\xfc")
    (HERE / "page-invalid-utf8.bin").write_bytes(page)
    no_id = broken(deleter("BillBeeOrderId"))
    (HERE / "page-order-without-id.json").write_text(dump(envelope([*good_orders(), no_id])), "utf-8")
    ledger_files()


NEWER_SCHEMA = 999
"""The schema version of ``ledger-newer-schema.sqlite``: newer than any ledgerlink for long."""


def _small_ledger(path: Path, audit_rows: int = 0) -> None:
    """A real ledger of this ledgerlink (WAL, as ledgerlink leaves it), on 512-byte pages
    so the committed file stays small; ``audit_rows`` rows make it some pages long."""
    import sqlite3
    from contextlib import closing

    from ledgerlink._ledger import Ledger

    path.unlink(missing_ok=True)
    Ledger(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA page_size=512")
        conn.execute("VACUUM")
        for n in range(audit_rows):
            conn.execute("INSERT INTO audit (at, pipeline, target_connection, action, outcome) "
                         "VALUES ('2026-01-01', 'p', 'books', 'push', ?)", (f"ok {n:04d} " + "x" * 100,))
        conn.commit()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in ("-wal", "-shm"):
        Path(f"{path}{side}").unlink(missing_ok=True)


def ledger_files() -> None:
    """Ledger files that are there but cannot be used: refused with one line, exit 2."""
    import random
    import sqlite3
    from contextlib import closing

    (HERE / "ledger-empty.sqlite").write_bytes(b"")
    truncated = HERE / "ledger-truncated.sqlite"
    _small_ledger(truncated, audit_rows=40)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # a copy cut off half way
    (HERE / "ledger-random-bytes.sqlite").write_bytes(random.Random(16).randbytes(4096))
    other = HERE / "ledger-other-program.sqlite"
    other.unlink(missing_ok=True)
    with closing(sqlite3.connect(other)) as conn:  # a browser's history, say
        conn.execute("PRAGMA page_size=512")
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
        conn.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")
        conn.commit()
    newer = HERE / "ledger-newer-schema.sqlite"
    _small_ledger(newer)
    with closing(sqlite3.connect(newer)) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (NEWER_SCHEMA,))
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in ("-wal", "-shm"):
        Path(f"{newer}{side}").unlink(missing_ok=True)


def envelope(orders: list[Any]) -> dict[str, Any]:
    return {"Paging": {"Page": 1, "TotalPages": 1, "TotalRows": len(orders), "PageSize": 250},
            "ErrorMessage": None, "ErrorCode": 0, "ErrorDescription": "NoError", "Data": orders}


if __name__ == "__main__":
    main()
