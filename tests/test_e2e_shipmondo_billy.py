"""Shipmondo -> Billy end to end through the real CLI (issue 18, seed 001).

Both sandboxes run on loopback (real HTTP, ``SandboxServer``) with the Shipmondo demo
data (41 orders of two shops); every ledgerlink command is the CLI in a subprocess, as an
operator runs it. Every fact is read back from the sandboxes' state:

- drafts first: each handled order of the first shop is a Billy draft, to the øre of
  Shipmondo's own figures; the order whose lines do not add up is not in Billy;
- the bookkeeper approves the drafts in Billy; the next run books their captured
  payments (one bank payment each, the captured amount); with ``auto_book`` an order
  handled later arrives approved;
- a second shop into the same Billy company (``customer_scope``): a customer who bought
  in both shops is one Billy contact;
- a payment captured and a refund made after transfer are booked once;
- re-runs write nothing to Billy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerlink import SandboxServer
from ledgerlink_billy.sandbox import BillySandbox
from ledgerlink_shipmondo.sandbox import DEMO_KEY, ShipmondoSandbox

WEBSHOP, OUTLET = "Nordlys Webshop", "Nordlys Outlet"
CENT = Decimal("0.01")


@dataclass
class World:
    tmp: Path
    shipmondo: ShipmondoSandbox
    billy: BillySandbox
    shipmondo_url: str
    billy_url: str
    env: dict[str, str]
    config: Path
    billy_token: str

    def write_config(self, *, auto_book: bool, outlet: bool = False) -> None:
        shop = (f'plugin = "shipmondo"\napi_user = "${{SHIPMONDO_API_USER}}"\napi_key = "${{SHIPMONDO_API_KEY}}"\n'
                f'base_url = "{self.shipmondo_url}"\nrequests_per_second = 1000\n')
        billy_settings, _ = self.billy.demo_connection(self.billy_url)
        books = "\n".join(f"{key} = {json.dumps(value) if not isinstance(value, dict) else _inline(value)}"
                          for key, value in billy_settings.items() if key != "api_token")
        pipeline = ('target = "books"\ncustomer_scope = "nordlys"\nbook_currency = "DKK"\n'
                    'exchange_rates = { EUR = 7.46 }\non_cancel = "reverse"\npayment_reconciliation = "source"\n')
        text = (f'[ledger]\nurl = "sqlite:///{self.tmp / "ledger.db"}"\n\n'
                f'[connections.webshop]\n{shop}shops = ["{WEBSHOP}"]\n\n'
                f'[connections.outlet]\n{shop}shops = ["{OUTLET}"]\n\n'
                f'[connections.books]\nplugin = "billy"\napi_token = "${{BILLY_API_TOKEN}}"\n{books}\n'
                f'auto_book = {"true" if auto_book else "false"}\nrequests_per_second = 100\n\n'
                f'[[pipelines]]\nname = "webshop"\nsource = "webshop"\n{pipeline}\n'
                f'[[pipelines]]\nname = "outlet"\nsource = "outlet"\nenabled = {"true" if outlet else "false"}\n'
                f'{pipeline}')
        self.config.write_text(text, encoding="utf-8")

    def cli(self, *args: str) -> tuple[int, Any, str]:
        env = {**os.environ, **self.env}
        env.pop("LEDGERLINK_CONFIG", None)
        result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(self.config), *args, "--json"],
                                capture_output=True, text=True, timeout=180, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        assert DEMO_KEY not in result.stdout + result.stderr and self.billy_token not in result.stdout + result.stderr
        return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr

    # -- reading the sandboxes --------------------------------------------------------
    def orders(self, shop: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.shipmondo.state["sales_orders"].values() if shop in (None, o["source_name"])]

    def invoices(self, kind: str = "invoice") -> dict[str, dict[str, Any]]:
        return {str(i["invoiceNo"]): i for i in self.billy.state["invoices"].values()
                if i.get("type", "invoice") == kind}

    def payments_of(self, invoice: dict[str, Any]) -> list[Decimal]:
        """The bank payments booked on an invoice (each its own entry, as the bank shows it)."""
        return [Decimal(str(p["cashAmount"])).quantize(CENT) for p in self.billy.state["bankPayments"].values()
                for m in self.billy.state.get("balanceModifiers", {}).values()
                if m.get("modifierReference") == f"bankPayment:{p['id']}" and not m.get("isVoided")
                and m.get("subjectReference") == f"invoice:{invoice['id']}"]

    def bank_payments(self) -> int:
        return len(self.billy.state["bankPayments"])

    def control(self, order: dict[str, Any], change: dict[str, Any]) -> None:
        answer = httpx.post(f"{self.shipmondo_url.split('/api/')[0]}/__sandbox__/sales_orders/{order['id']}",
                            json=change, timeout=10)
        assert answer.status_code == 200, answer.text

    def approve_drafts(self) -> int:
        drafts = [i for i in self.billy.state["invoices"].values() if i["state"] == "draft"]
        with httpx.Client(base_url=f"{self.billy_url}/v2", headers={"X-Access-Token": self.billy_token}) as client:
            for invoice in drafts:
                client.put(f"/invoices/{invoice['id']}", json={"invoice": {"state": "approved"}}).raise_for_status()
        return len(drafts)

    def billy_writes(self) -> int:
        return sum(1 for r in self.billy.requests if r["method"] in ("POST", "PUT", "DELETE")
                   and not r["path"].startswith("/__sandbox__"))


def _inline(table: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + " }"


def gross(order: dict[str, Any]) -> Decimal:
    return Decimal(order["payment_details"]["amount_including_vat"]).quantize(CENT)


def handled(order: dict[str, Any]) -> bool:
    return order["fulfillment_status"] == "fulfilled" and order["order_status"] != "cancelled"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    shipmondo = ShipmondoSandbox(seed=ShipmondoSandbox.demo_seed())
    billy = BillySandbox()
    with SandboxServer(shipmondo) as s_server, SandboxServer(billy) as b_server:
        settings, env = shipmondo.demo_connection(s_server.url)
        _, billy_env = billy.demo_connection(b_server.url)
        w = World(tmp_path, shipmondo, billy, settings["base_url"], b_server.url, {**env, **billy_env},
                  tmp_path / "ledgerlink.toml", next(iter(billy_env.values())))
        yield w


def test_drafts_then_approval_then_a_second_shop_then_late_payments_each_once(world: World) -> None:
    # 1. Drafts first: every handled order of the first shop, to the øre.
    world.write_config(auto_book=False)
    code, [result], _ = world.cli("run")
    assert code == 1  # the order that does not add up (and its like) needs a person
    invoices = world.invoices()
    expected = {o["order_id"]: o for o in world.orders(WEBSHOP) if handled(o)}
    quarantined = {d["number"]: d["reason"] for d in result["documents"] if d["state"] == "quarantined"}
    assert "NW-1021" in quarantined and "payment_details state 39.60 DKK" in quarantined["NW-1021"]
    assert "NW-1021" not in invoices
    for number, order in expected.items():
        if number in quarantined:
            continue
        invoice = invoices[number]
        assert invoice["state"] == "draft"
        billed = (Decimal(str(invoice["amount"])) + Decimal(str(invoice["tax"]))).quantize(CENT)
        if order["payment_details"]["currency_code"] == "DKK":
            assert billed == gross(order), number
            assert Decimal(str(invoice["tax"])).quantize(CENT) == \
                Decimal(order["payment_details"]["vat_amount"]).quantize(CENT), number
        else:
            assert invoice["currencyId"] == order["payment_details"]["currency_code"] and billed == gross(order)
    assert not [o for o in world.orders(WEBSHOP) if not handled(o) and o["order_id"] in invoices]
    assert world.bank_payments() == 0  # drafts take no payment

    # 2. The bookkeeper approves the drafts in Billy; auto_book from now on; an open order is handled.
    approved = world.approve_drafts()
    assert approved == len(invoices)
    world.write_config(auto_book=True)
    waiting = next(o for o in world.orders(WEBSHOP) if o["fulfillment_status"] == "unfulfilled"
                   and o["order_status"] != "cancelled")
    world.control(waiting, {"order_status": "sent", "fulfillment_status": "fulfilled",
                            "order_fulfillments": [{"code": "x-1", "shipment_id": 1,
                                                    "created_at": "2026-05-04T14:00:00.000+02:00",
                                                    "updated_at": "2026-05-04T14:00:00.000+02:00"}]})
    code, [result], _ = world.cli("run")
    invoices = world.invoices()
    assert invoices[waiting["order_id"]]["state"] == "approved"
    captured = {o["order_id"]: Decimal(o["payment_details"]["captured_amount"]).quantize(CENT)
                for o in world.orders(WEBSHOP) if handled(o) and o["payment_details"].get("captured_amount")
                and o["order_id"] in invoices and o["payment_details"]["currency_code"] == "DKK"}
    assert captured
    for number, amount in captured.items():
        assert world.payments_of(invoices[number]) == [amount], number
    booked_before = world.bank_payments()

    # 3. A second shop into the same company: shared customers are one contact.
    world.write_config(auto_book=True, outlet=True)
    code, [webshop, outlet], _ = world.cli("run")
    assert not [d for d in webshop["documents"] if d["state"] == "pushed"]
    assert [d for d in outlet["documents"] if d["state"] == "pushed"]
    contacts = list(world.billy.state["contacts"].values())
    names = Counter(c["name"] for c in contacts)
    assert [n for n, count in names.items() if count > 1] == []
    emails = {(o["bill_to"]["email"] or "").lower() for o in world.orders() if o["order_id"] in world.invoices()}
    shared = {(o["bill_to"]["email"] or "").lower() for o in world.orders(WEBSHOP)} & \
        {(o["bill_to"]["email"] or "").lower() for o in world.orders(OUTLET)}
    assert shared and len(contacts) == len(emails)

    # 4. Nothing new: no write to Billy.
    writes = world.billy_writes()
    code, results, _ = world.cli("run")
    assert all(not [d for d in r["documents"] if d["state"] in ("pushed", "payment_booked")] for r in results)
    assert world.billy_writes() == writes

    # 5. A payment captured after transfer is booked once; a refund becomes a credit note once.
    unpaid = next(o for o in world.orders() if handled(o) and not o["payment_details"].get("captured_amount")
                  and o["order_id"] in world.invoices() and o["payment_details"]["currency_code"] == "DKK")
    world.control(unpaid, {"payment_status": "captured",
                           "payment_details": {"captured_amount": unpaid["payment_details"]["amount_including_vat"]}})
    refunded = next(o for o in world.orders() if handled(o) and o["payment_details"].get("captured_amount")
                    and not o["payment_details"].get("refunded_amount") and o["order_id"] in world.invoices()
                    and o["payment_details"]["currency_code"] == "DKK"
                    and len({line["vat_percent"] for line in o["order_lines"]}) == 1)
    world.control(refunded, {"payment_status": "partially_refunded", "payment_details": {"refunded_amount": "50.00"}})
    world.cli("run")
    world.cli("run")  # and again: nothing more
    invoices = world.invoices()
    assert world.payments_of(invoices[unpaid["order_id"]]) == [gross(unpaid)]
    [credit] = [c for c in world.invoices("creditNote").values()
                if c.get("creditedInvoiceId") == invoices[refunded["order_id"]]["id"]]
    assert (Decimal(str(credit["amount"])) + Decimal(str(credit["tax"]))).quantize(CENT).copy_abs() == \
        Decimal("50.00")
    assert abs(Decimal(str(credit["tax"])).quantize(CENT)) == Decimal("10.00")
    assert world.bank_payments() >= booked_before + 1
