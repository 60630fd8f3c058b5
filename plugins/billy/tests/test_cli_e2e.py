"""Issue 15 through the real CLI: cancellations as Billy credit notes, gift vouchers, over-payments.

The source is ledgerlink's fake source reading canonical documents from a JSON file; the
Billy sandbox runs on loopback (``SandboxServer``); ``ledgerlink run`` is the CLI as a
subprocess, so each run reads the file afresh, as a real source reads its system. Every
figure is checked in Billy's own records (the sandbox's state).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ledgerlink import Address, Customer, Document, Line, LineKind, Payment, SandboxServer
from ledgerlink_billy.sandbox import BillySandbox
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def D(value: Any) -> Decimal:  # noqa: N802
    return Decimal(str(value))


class LosingBilly(BillySandbox):
    """Billy that writes the first credit note it is sent and then loses the answer
    (a gateway timeout after the write): the client cannot know whether it arrived."""

    lost: list[str]

    async def _collection(self, request: Request) -> Response:
        response = await super()._collection(request)
        if (request.method == "POST" and request.path_params["resource"] == "invoices"
                and response.status_code == 200 and not getattr(self, "lost", None)):
            created = json.loads(bytes(response.body))["invoices"][0]
            if created.get("type") == "creditNote":
                self.lost = [created["id"]]
                return JSONResponse({"meta": {"statusCode": 504, "success": False},
                                     "errorMessage": "Gateway Timeout", "errorCode": "GATEWAY_TIMEOUT"},
                                    status_code=504)
        return response


def order(n: int, *, cursor: str, payments: list[Payment] | None = None, cancelled: bool = False,
          number: str | None = None, kind: str = "invoice", reverses: str | None = None,
          sign: int = 1) -> Document:
    """A Danish shop order: a jumper 100.00 and freight 25.00 gross at 25 % (VAT 25.00)."""
    lines = [
        Line(description="Uldsweater", quantity=Decimal(1), total=D("100.00") * sign, tax_rate=Decimal(25)),
        Line(description="GLS", quantity=Decimal(1), total=D("25.00") * sign, tax_rate=Decimal(25),
             kind=LineKind.SHIPPING),
    ]
    return Document(
        source_ref=f"order-{n}", number=number or f"W-{n}", kind=kind, currency="DKK",  # type: ignore[arg-type]
        invoice_date=date(2026, 3, 2), seller_country="DK",
        customer=Customer(source_id=f"cust-{n}", first_name="Mette", last_name="Jensen", email=f"m{n}@example.dk",
                          address=Address(street="Nørregade 7", zip="8000", city="Aarhus", country="DK")),
        lines=lines, payments=payments or [], cancelled=cancelled, reverses=reverses, cursor=cursor,
    )


@dataclass
class World:
    tmp: Path
    billy: BillySandbox
    env: dict[str, str]
    config: Path
    documents: dict[str, Document]

    def write(self, *documents: Document) -> None:
        for document in documents:
            self.documents[document.source_ref] = document
        payload = {"documents": [d.model_dump(mode="json") for d in self.documents.values()]}
        (self.tmp / "docs.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")

    def run(self, *args: str) -> tuple[int, Any]:
        env = {**os.environ, **self.env, "LEDGERLINK_FAKE_PLUGINS": "1"}
        env.pop("LEDGERLINK_CONFIG", None)
        result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(self.config), *args, "--json"],
                                capture_output=True, text=True, timeout=90, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"not JSON (exit {result.returncode}): {result.stdout!r} {result.stderr!r}") from None
        return result.returncode, report[0] if args[0] == "run" else report  # run: the one pipeline

    # -- Billy's own records ------------------------------------------------------------
    def records(self, invoice_no: str) -> list[dict[str, Any]]:
        return [i for i in self.billy.state["invoices"].values() if i["invoiceNo"] == invoice_no]

    def one(self, invoice_no: str) -> dict[str, Any]:
        (record,) = self.records(invoice_no)
        return record

    def credit_notes(self) -> list[dict[str, Any]]:
        return [i for i in self.billy.state["invoices"].values() if i.get("type") == "creditNote"]

    def payments(self) -> list[dict[str, Any]]:
        return sorted(self.billy.state["bankPayments"].values(), key=lambda p: (p["entryDate"], p["cashAccountId"]))


def outcome(report: dict[str, Any], source_ref: str) -> dict[str, Any]:
    (found,) = [d for d in report["documents"] if d["source_ref"] == source_ref]
    return found


def gross(record: dict[str, Any]) -> Decimal:
    return D(record["amount"]) + D(record["tax"])


def make_world(tmp_path: Path, sandbox: BillySandbox, url: str, token: str, pipeline: str) -> World:
    settings, _ = sandbox.demo_connection(url)
    templates = "\n".join(f'{name} = {{ account = "{t["account"]}", vat = "{t["vat"]}" }}'
                          for name, t in settings.items() if isinstance(t, dict))
    config = tmp_path / "ledgerlink.toml"
    config.write_text(f'''
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.shop]
plugin = "fake-source"
store = "billy-e2e-{tmp_path.name}"
file = "{tmp_path / 'docs.json'}"

[connections.billy]
plugin = "billy"
api_token = "${{BILLY_E2E_TOKEN}}"
base_url = "{settings['base_url']}"
auto_book = true
cash_account = "5820"
requests_per_second = 50
timeout = 3
{templates}

[[pipelines]]
name = "shop"
source = "shop"
target = "billy"
seller_country = "DK"
payment_reconciliation = "source"
{pipeline}
''', encoding="utf-8")
    world = World(tmp_path, sandbox, {"BILLY_E2E_TOKEN": token}, config, {})
    world.write()
    return world


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    servers: list[SandboxServer] = []

    def build(pipeline: str = "", sandbox_class: type[BillySandbox] = BillySandbox) -> World:
        token = f"billy-e2e-{secrets.token_hex(8)}"  # own token: rate limiters are per token
        sandbox = sandbox_class(seed={"tokens": [token]})
        server = SandboxServer(sandbox)
        servers.append(server)
        server.__enter__()
        return make_world(tmp_path, sandbox, server.url, token, pipeline)

    try:
        yield build
    finally:
        for server in servers:
            server.__exit__(None, None, None)


# -- cancellations -------------------------------------------------------------------------
def test_cancelled_after_transfer_is_reversed_by_one_credit_note(start: Any) -> None:
    world = start('on_cancel = "reverse"')
    world.write(order(1, cursor="2026-03-02T10:00:01"))
    code, report = world.run("run")
    assert code == 0, report
    original = world.one("W-1")
    assert original["state"] == "approved" and gross(original) == D("125.00") and D(original["tax"]) == D("25.00")

    world.write(order(1, cursor="2026-03-05T09:00:00", cancelled=True))
    code, report = world.run("run")
    assert outcome(report, "order-1")["state"] == "reversed", report
    assert code == 0, report  # reversed in Billy: nothing left for a person
    (credit,) = world.credit_notes()
    assert credit["invoiceNo"] == "CN-order-1~reversal" and credit["creditedInvoiceId"] == original["id"]
    assert credit["contactId"] == original["contactId"] and credit["state"] == "approved"
    # Billy's own figures: the credit note books the source's 125.00 gross / 25.00 VAT back
    assert gross(credit) == D("125.00") and D(credit["tax"]) == D("25.00") and D(credit["amount"]) == D("100.00")
    assert credit["entryDate"] == date.today().isoformat()
    lines = [(line["description"], D(line["amount"]), D(line["tax"])) for line in world.billy.state["invoiceLines"].values()
             if line["invoiceId"] == credit["id"]]
    assert lines == [("Uldsweater", D("80.00"), D("20.00")), ("GLS", D("20.00"), D("5.00"))]
    assert D(world.billy.state["invoices"][original["id"]]["balance"]) == D("0.00")  # nothing is owed any more

    # The re-run (the source lists the order again): nothing doubles.
    world.write(order(1, cursor="2026-03-06T09:00:00", cancelled=True))
    code, report = world.run("run")
    assert code == 0, report
    assert len(world.credit_notes()) == 1 and len(world.billy.state["invoices"]) == 2
    code, status = world.run("status")
    assert code == 0
    text = json.dumps(status)
    assert "reversed by credit note CN-order-1~reversal" in text
    code, changes = world.run("sync-status")
    assert code == 0
    assert [(c["source_ref"], c["new"], c["raw"]) for c in changes if c["source_ref"] == "order-1"] == [
        ("order-1", "cancelled", "credited")]


def test_lost_answer_while_writing_the_credit_note_is_found_not_doubled(start: Any) -> None:
    world = start('on_cancel = "reverse"', LosingBilly)
    world.write(order(2, cursor="2026-03-02T10:00:02"))
    assert world.run("run")[0] == 0
    world.write(order(2, cursor="2026-03-05T09:00:00", cancelled=True))
    code, report = world.run("run")
    assert outcome(report, "order-2")["state"] == "reversed", report
    assert code == 0, report
    (credit,) = world.credit_notes()
    assert world.billy.lost == [credit["id"]]  # the answer to this write was lost
    # found by its number, finished (checked and approved) before it counted as written
    assert credit["state"] == "approved" and gross(credit) == D("125.00") and D(credit["tax"]) == D("25.00")
    posts = [r for r in world.billy.requests if r["method"] == "POST" and r["path"] == "/v2/invoices"]
    assert len(posts) == 2  # the invoice and the credit note, each sent once
    assert world.run("run")[0] == 0
    assert len(world.credit_notes()) == 1


def test_source_cancellation_document_becomes_a_credit_note_or_is_quarantined(start: Any) -> None:
    world = start()
    world.write(order(3, cursor="2026-03-02T10:00:03"))
    # order-9 was never transferred (before the start of this pipeline, say)
    world.write(order(4, cursor="2026-03-02T10:00:04", kind="credit_note", number="GS-4", reverses="order-9",
                      sign=-1))
    code, report = world.run("run")
    assert code == 1, report
    refused = outcome(report, "order-4")
    assert refused["state"] == "quarantined"
    assert "cancels order-9, which this pipeline has not transferred" in refused["reason"]
    assert "ledgerlink retry --quarantined" in refused["reason"]
    assert not world.credit_notes()

    # The shop's own cancellation of order-3: a credit note referencing it, numbered apart
    # from the invoices (the shop's credit notes may reuse invoice numbers).
    world.write(order(5, cursor="2026-03-03T10:00:00", kind="credit_note", number="W-3", reverses="order-3",
                      sign=-1))
    code, report = world.run("run")
    assert outcome(report, "order-5")["state"] == "pushed", report
    (credit,) = world.credit_notes()
    assert credit["invoiceNo"] == "CN-W-3" and credit["creditedInvoiceId"] == world.one("W-3")["id"]
    assert gross(credit) == D("125.00") and D(credit["tax"]) == D("25.00") and credit["state"] == "approved"
    assert credit["entryDate"] == "2026-03-02"


# -- gift vouchers -----------------------------------------------------------------------------
def test_voucher_payment_is_its_own_entry_from_the_clearing_account(start: Any) -> None:
    world = start('voucher_account = "6850"')
    paid = [Payment(amount=D("25.00"), date=date(2026, 3, 2), kind="voucher", method="Gavekort"),
            Payment(amount=D("100.00"), date=date(2026, 3, 4), method="MobilePay")]
    world.write(order(6, cursor="2026-03-02T10:00:06", payments=paid))
    code, report = world.run("run")
    assert code == 0, report
    invoice = world.one("W-6")
    # the goods at full price: revenue 100.00 + VAT 25.00, not reduced by the voucher
    assert gross(invoice) == D("125.00") and D(invoice["tax"]) == D("25.00")
    assert invoice["isPaid"] is True and D(invoice["balance"]) == D("0.00")
    assert [(p["entryDate"], D(p["cashAmount"]), p["cashAccountId"]) for p in world.payments()] == [
        ("2026-03-02", D("25.00"), "acc_vouchers"), ("2026-03-04", D("100.00"), "acc_bank")]
    world.write(order(6, cursor="2026-03-07T10:00:00", payments=paid))
    assert world.run("run")[0] == 0
    assert len(world.payments()) == 2


def test_voucher_payment_without_voucher_account_is_quarantined(start: Any) -> None:
    world = start()
    paid = [Payment(amount=D("25.00"), date=date(2026, 3, 2), kind="voucher")]
    world.write(order(7, cursor="2026-03-02T10:00:07", payments=paid))
    code, report = world.run("run")
    assert code == 1, report
    refused = outcome(report, "order-7")
    assert refused["state"] == "quarantined" and "voucher_account" in refused["reason"]
    assert not world.billy.state["invoices"] and not world.payments()


def test_unknown_voucher_account_is_quarantined_before_anything_is_written(start: Any) -> None:
    world = start('voucher_account = "Gavekort 2019"')
    paid = [Payment(amount=D("25.00"), date=date(2026, 3, 2), kind="voucher")]
    world.write(order(8, cursor="2026-03-02T10:00:08", payments=paid))
    code, report = world.run("run")
    assert code == 1, report
    reason = outcome(report, "order-8")["reason"]
    assert "voucher_account 'Gavekort 2019'" in reason and "Billy has no such account" in reason
    assert not world.billy.state["invoices"]


# -- payments over the open amount ----------------------------------------------------------------
def test_payments_over_the_open_amount_are_not_booked(start: Any) -> None:
    world = start()
    world.write(order(10, cursor="2026-03-02T10:00:10",
                      payments=[Payment(amount=D("100.00"), date=date(2026, 3, 3))]))
    code, report = world.run("run")
    assert code == 0, report
    assert [D(p["cashAmount"]) for p in world.payments()] == [D("100.00")]
    # the source now lists a second payment of 50.00: 150.00 on a 125.00 invoice
    world.write(order(10, cursor="2026-03-04T10:00:00", payments=[
        Payment(amount=D("100.00"), date=date(2026, 3, 3)), Payment(amount=D("50.00"), date=date(2026, 3, 4))]))
    code, report = world.run("run")
    assert code == 1, report
    reason = outcome(report, "order-10")["reason"]
    assert "more than invoice W-10's open balance of 25.00" in reason
    assert [D(p["cashAmount"]) for p in world.payments()] == [D("100.00")]
    invoice = world.one("W-10")
    assert D(invoice["balance"]) == D("25.00")
    assert not any(p.get("contactBalancePostings") for p in world.payments())


# -- run --dry-run (issue 17) -----------------------------------------------------------
def test_a_dry_run_plans_orders_whose_contact_would_be_created(start: Any) -> None:
    """A dry run creates no contacts, and Billy needs one on every invoice: the plan it
    checks carries the contact that would be created, so no order is quarantined for it."""
    world = start()
    world.write(order(1, cursor="2026-03-02T10:00:01"), order(2, cursor="2026-03-02T10:00:02"))
    code, report = world.run("run", "--dry-run")
    assert code == 0, report
    for ref in ("order-1", "order-2"):
        planned = outcome(report, ref)
        assert planned["state"] == "planned", planned
        assert planned["reason"] == "contact would be created for Mette Jensen"
        assert planned["plan"]["contact"]["id"] == "(would be created)"
    assert world.billy.state["contacts"] == {} and world.billy.state["invoices"] == {}
    code, report = world.run("run")
    assert code == 0, report
    assert {d["state"] for d in report["documents"]} == {"pushed"}
