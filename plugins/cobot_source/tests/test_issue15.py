"""Issue 15 for Cobot: cancelled invoices, correction invoices and totals to the cent.

Mapping tests, then the real CLI against the Cobot sandbox on loopback into the fake
target: an invoice cancelled in Cobot after its transfer is reported ("cancelled after
transfer", exit 1) or reversed (``on_cancel = "reverse"``), a correction invoice is a
credit note referencing the invoice it corrects, and an invoice whose lines add up to
351.29 while Cobot states 351.30 is quarantined before anything is written."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ledgerlink import BrokenDocument, Document, DocumentKind, SandboxServer
from ledgerlink.testing import fake_store, invoke_cli, reset_fake_stores
from ledgerlink_cobot.mapping import document_from_invoice
from ledgerlink_cobot.sandbox import CobotSandbox


def demo_seed() -> dict[str, Any]:
    return copy.deepcopy(CobotSandbox.demo_seed())

INV_OK = "f0000000000000000000000000000001"  # CU-2024-100, 334.39, paid
INV_CORRECTION = "f0000000000000000000000000000003"  # CU-2024-102, -36.89, corrects INV_OK
INV_PRINTING = "f0000000000000000000000000000004"  # CU-2024-103, 300.25
INV_351 = "f0000000000000000000000000000005"  # CU-2024-104: Cobot states 351.30, its lines give 351.29


def price(net: str, tax: str, rate: str = "19.0") -> dict[str, Any]:
    gross = str(Decimal(net) + Decimal(tax))
    return {"net": net, "gross": gross, "currency": "EUR", "taxes": [{"name": "VAT", "rate": rate, "amount": tax}]}


def invoice_351() -> dict[str, Any]:
    """Three lines with VAT rounded per line (19.00 + 19.00 + 18.08 = 56.08, gross 351.29);
    Cobot's invoice total rounds the VAT of the sum (19 % of 295.21 = 56.09, gross 351.30),
    and the member paid the 351.30 Cobot asked for."""
    inv = copy.deepcopy(demo_seed()["invoices"][0])
    inv["id"] = INV_351
    attrs = inv["attributes"]
    attrs.update({"number": "CU-2024-104", "invoiceDate": "2024-04-10", "paidDate": "2024-04-12",
                  "dueDate": "2024-04-24", "remindAt": "2024-04-24", "paidAmount": "351.30",
                  "payableAmount": "0.0", "paidStatus": "paid"})
    attrs["pdf"]["url"] = f"https://api.cobot.me/invoices/{INV_351}.pdf?token=5"
    attrs["items"] = [
        {"description": description, "quantity": "1.0", "paid": False, "accountingCode": "FlexPlan",
         "costCenter": None, "revenueAccount": None, "amount": price(net, tax), "totalAmount": price(net, tax)}
        for description, net, tax in (("Fixed desk April", "100.02", "19.00"),
                                      ("Fixed desk April, second seat", "100.02", "19.00"),
                                      ("Locker and mail service", "95.17", "18.08"))
    ]
    attrs["totalAmount"] = {"net": "295.21", "gross": "351.30", "currency": "EUR",
                            "taxes": [{"name": "VAT", "rate": "19.0", "amount": "56.09"}]}
    return inv


# -- mapping ---------------------------------------------------------------------------
def test_351_30_invoice_whose_lines_give_351_29_carries_both_figures() -> None:
    doc = document_from_invoice(invoice_351())
    assert isinstance(doc, Document)
    assert doc.stated_total == Decimal("351.30") and doc.total_gross == Decimal("351.29")
    assert [line.tax_amount for line in doc.lines] == [Decimal("19.00"), Decimal("19.00"), Decimal("18.08")]
    assert doc.consistency_problems() == ["lines add up to 351.29 EUR but the document's total is 351.30 EUR"]
    # The payment is what the member paid, as Cobot states it: never the lines' sum.
    assert [(p.amount, str(p.date)) for p in doc.payments] == [(Decimal("351.30"), "2024-04-12")]


def test_cancelled_invoice_is_cancelled_and_a_write_off_is_not() -> None:
    inv = copy.deepcopy(demo_seed()["invoices"][0])
    inv["attributes"]["paidStatus"] = "canceled"
    doc = document_from_invoice(inv)
    assert isinstance(doc, Document) and doc.cancelled and doc.source_status == "canceled"
    inv["attributes"]["paidStatus"] = "writtenOff"
    doc = document_from_invoice(inv)
    assert isinstance(doc, Document) and not doc.cancelled and doc.extra["written_off"] is True
    inv["attributes"]["paidStatus"] = "paid"
    doc = document_from_invoice(inv)
    assert isinstance(doc, Document) and not doc.cancelled and "written_off" not in doc.extra


def test_correction_invoice_reverses_the_corrected_invoice_with_positive_quantities() -> None:
    doc = document_from_invoice(demo_seed()["invoices"][2])
    assert isinstance(doc, Document)
    assert doc.kind == DocumentKind.CREDIT_NOTE and doc.reverses == INV_OK
    (line,) = doc.lines
    # Cobot states quantity -2.0 and unit net 15.5: the credit note keeps 2 x -15.5.
    assert (line.quantity, line.unit, line.net, line.tax, line.gross) == (
        Decimal("2.0"), Decimal("-15.5"), Decimal("-31.00"), Decimal("-5.89"), Decimal("-36.89"))
    assert doc.stated_total == Decimal("-36.89") == doc.total_gross and doc.consistency_problems() == []


def test_correction_invoice_that_is_not_a_credit_is_quarantined() -> None:
    inv = copy.deepcopy(demo_seed()["invoices"][0])
    inv["relationships"]["correctedInvoice"] = {"data": {"id": "f0000000000000000000000000000009", "type": "invoices"}}
    broken = document_from_invoice(inv)
    assert isinstance(broken, BrokenDocument) and broken.quarantine
    assert broken.reason == (
        "Cobot invoice CU-2024-100: it corrects invoice f0000000000000000000000000000009 (correctedInvoice) but "
        "its total is 334.39 EUR, not a credit: ledgerlink writes a correction only as a credit note for the "
        "invoice it corrects; book it by hand")


# -- through the CLI -------------------------------------------------------------------
@dataclass
class World:
    tmp: Path
    cobot: CobotSandbox
    url: str
    store: str
    env: dict[str, str]

    def write_config(self, *, on_cancel: str = "flag") -> None:
        settings, _ = self.cobot.demo_connection(self.url)
        cobot = "".join(f'{k} = "{v}"\n' for k, v in settings.items())
        (self.tmp / "ledgerlink.toml").write_text(f'''
[ledger]
url = "sqlite:///{self.tmp / 'ledger.db'}"

[connections.cobot]
plugin = "cobot"
{cobot}requests_per_second = 1000
memberships_requests_per_second = 1000

[connections.books]
plugin = "fake-target"
store = "{self.store}"

[[pipelines]]
name = "cobot"
source = "cobot"
target = "books"
on_cancel = "{on_cancel}"

[[pipelines.rules]]
when = {{}}
account = "8400"
''', encoding="utf-8")

    def cli(self, *args: str) -> tuple[int, Any]:
        result = invoke_cli(["-c", str(self.tmp / "ledgerlink.toml"), *args, "--json"], env=self.env)
        return result.exit_code, json.loads(result.output)

    def rows(self) -> dict[str, dict[str, Any]]:
        code, rows = self.cli("status")
        assert code == 0
        return {row["source_ref"]: row for row in rows}

    def pushes(self) -> list[str]:
        return [w[1] for w in fake_store(self.store)["writes"] if w[0] == "push"]

    def set_paid_status(self, invoice: str, status: str) -> None:
        self.cobot.state["invoices"][invoice]["attributes"]["paidStatus"] = status


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    reset_fake_stores()
    seed = demo_seed()
    seed["invoices"].append(invoice_351())
    cobot = CobotSandbox(seed=seed)
    with SandboxServer(cobot) as server:
        settings, env = cobot.demo_connection(server.url)
        yield World(tmp_path, cobot, server.url, f"cobot-issue15-{tmp_path.name}", env)
    reset_fake_stores()


def test_correction_references_the_original_and_351_30_is_quarantined_before_any_write(world: World) -> None:
    world.write_config()
    code, report = world.cli("run")
    assert code == 1, report  # the 351.30 invoice needs a person
    rows = world.rows()
    assert {ref: row["state"] for ref, row in rows.items()} == {
        INV_OK: "pushed", "f0000000000000000000000000000002": "skipped", INV_CORRECTION: "pushed",
        INV_PRINTING: "pushed", INV_351: "quarantined"}
    assert rows[INV_351]["reason"] == "lines add up to 351.29 EUR but the document's total is 351.30 EUR"
    assert INV_351 not in world.pushes()  # quarantined before the write, not warned about after it
    pushed = fake_store(world.store)["pushed"]
    credit = pushed[INV_CORRECTION]
    assert credit["kind"] == "credit_note" and credit["gross"] == "-36.89"
    assert credit["reverses"] == pushed[INV_OK]["id"]

    code, _ = world.cli("run")  # nothing doubles
    assert sorted(world.pushes()) == sorted([INV_OK, INV_CORRECTION, INV_PRINTING])


def test_invoice_cancelled_after_transfer_is_reported_and_exits_1(world: World) -> None:
    del world.cobot.state["invoices"][INV_351]  # nothing else for a person in these runs
    world.write_config()
    code, _ = world.cli("run")
    assert code == 0
    world.set_paid_status(INV_OK, "writtenOff")  # a bad debt: stays booked, not a cancellation
    code, report = world.cli("run")
    assert code == 0 and report[0]["documents"] == []
    world.set_paid_status(INV_PRINTING, "canceled")
    code, report = world.cli("run")
    assert code == 1
    outcomes = {d["source_ref"]: d for d in report[0]["documents"]}
    assert list(outcomes) == [INV_PRINTING] and outcomes[INV_PRINTING]["state"] == "cancelled"
    row = world.rows()[INV_PRINTING]
    assert row["state"] == "pushed" and row["changed"].startswith("cancelled after transfer")
    assert sorted(world.pushes()) == sorted([INV_OK, INV_CORRECTION, INV_PRINTING])


def test_invoice_cancelled_after_transfer_is_reversed_once_with_on_cancel_reverse(world: World) -> None:
    world.write_config(on_cancel="reverse")
    world.cli("run")
    world.set_paid_status(INV_PRINTING, "canceled")
    world.cli("run")
    world.cli("run")
    pushed = fake_store(world.store)["pushed"]
    reversal = pushed[f"{INV_PRINTING}~reversal"]
    assert reversal["kind"] == "credit_note" and reversal["gross"] == "-300.25"
    assert reversal["reverses"] == pushed[INV_PRINTING]["id"]
    assert world.pushes().count(f"{INV_PRINTING}~reversal") == 1


def test_invoice_cancelled_before_transfer_is_skipped(world: World) -> None:
    world.set_paid_status(INV_PRINTING, "canceled")
    world.write_config()
    world.cli("run")
    row = world.rows()[INV_PRINTING]
    assert row["state"] == "skipped" and row["reason"] == "cancelled in the source"
    assert INV_PRINTING not in world.pushes()
