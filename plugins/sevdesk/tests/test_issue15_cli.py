"""Issue 15 end to end: the real CLI, a fake source, the sevDesk sandbox on a loopback port.
Money is read back from the sandbox's state: sevDesk's own figures, to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from ledgerlink import Address, Customer, Document, DocumentKind, Line, Payment, SandboxServer
from ledgerlink.testing import fake_store, invoke_cli, reset_fake_stores
from ledgerlink_sevdesk.sandbox import DEMO_TOKEN, SevdeskSandbox

CONFIG = """
[ledger]
url = "sqlite:///{tmp}/ledger.db"

[connections.shop]
plugin = "fake-source"
store = "shop15"

[connections.books]
plugin = "sevdesk"
api_token = "${{SEVDESK_API_TOKEN}}"
base_url = "{url}"
check_account = 6305996
book_unassigned_payments = true
backoff = 0.01
{extra}

[[pipelines]]
name = "shop"
source = "shop"
target = "books"
payment_reconciliation = "source"
on_cancel = "reverse"
voucher_account = "Basiskonto"
exchange_rates = {{ CHF = 0.95 }}
rules = [{{ when = {{ tax_rate = 7 }}, account = "8300" }}, {{ when = {{}}, account = "8400" }}]
"""


def order(ref: str, lines: list[Line], *, currency: str = "EUR", payments: list[Payment] | None = None) -> Document:
    return Document(
        source_ref=ref, number=ref, invoice_date=date(2026, 3, 15), currency=currency,
        customer=Customer(source_id="c-" + ref, first_name="Erika", last_name="Muster", email=f"{ref}@example.com",
                          address=Address(street="Teststr. 1", zip="10115", city="Berlin", country="DE")),
        lines=lines, payments=payments or [], cursor=ref)


def seven_net_lines() -> list[Line]:
    return [Line(description=f"Stunde {n}", total=Decimal("2.97"), tax_rate=Decimal(19), price_basis="net",
                 tax_amount=Decimal("0.57") if n <= 3 else Decimal("0.56")) for n in range(1, 8)]


@pytest.fixture
def world(tmp_path: Path):
    reset_fake_stores()
    sandbox = SevdeskSandbox()
    with SandboxServer(sandbox) as server:
        def run(*args: str, extra: str = "") -> object:
            config = tmp_path / "ledgerlink.toml"
            config.write_text(CONFIG.format(tmp=tmp_path, url=server.url + "/api/v1", extra=extra))
            return invoke_cli(["-c", str(config), *args], env={"SEVDESK_API_TOKEN": DEMO_TOKEN})
        yield sandbox, run
    reset_fake_stores()


def vouchers_by_description(sandbox: SevdeskSandbox) -> dict[str, dict]:
    return {v["description"]: v for v in sandbox.state["vouchers"].values()}


def test_vouchers_vat_currency_gift_vouchers_and_a_reversal_through_the_cli(world):
    sandbox, run = world
    docs = fake_store("shop15")["documents"]
    docs["A-7"] = order("A-7", seven_net_lines())
    docs["B-CHF"] = order("B-CHF", [Line(description="Uhr", total=Decimal("119.00"), tax_rate=Decimal(19))],
                          currency="CHF")
    docs["C-USD"] = order("C-USD", [Line(description="Uhr", total=Decimal("119.00"), tax_rate=Decimal(19))],
                          currency="USD")
    docs["D-GIFT"] = order("D-GIFT", [Line(description="Ware", total=Decimal("100.00"), tax_rate=Decimal(19))],
                           payments=[Payment(amount=Decimal("25.00"), date=date(2026, 3, 15), kind="voucher"),
                                     Payment(amount=Decimal("75.00"), date=date(2026, 3, 16), method="bank")])
    result = run("run", "--json")
    assert result.exit_code == 1, result.output  # USD has no rate: quarantined
    states = {d["source_ref"]: d["state"] for d in result.json[0]["documents"]}
    assert states == {"A-7": "pushed", "B-CHF": "pushed", "C-USD": "quarantined", "D-GIFT": "pushed"}

    vouchers = vouchers_by_description(sandbox)
    seven = vouchers["A-7"]
    assert seven["status"] == "100"
    assert (seven["sumNet"], seven["sumTax"], seven["sumGross"]) == ("20.79", "3.95", "24.74")  # not 3.92
    chf = vouchers["B-CHF"]
    assert chf["currency"] == "CHF" and chf["propertyExchangeRate"] == "0.95"
    assert (chf["sumGrossForeignCurrency"], chf["sumGross"]) == ("119", "113.05")
    gift = vouchers["D-GIFT"]
    assert gift["status"] == "1000" and gift["sumGross"] == "100"
    assert sorted((t["amount"], t["valueDate"][:10]) for t in sandbox.state["transactions"].values()) == [
        ("25", "2026-03-15"), ("75", "2026-03-16")]
    assert "C-USD" not in vouchers

    # A-7 is cancelled in the source after transfer: one reversing voucher, once
    docs["A-7"] = docs["A-7"].model_copy(update={"cancelled": True, "cursor": "z-A-7"})
    result = run("run", "--json")
    assert [(d["source_ref"], d["state"]) for d in result.json[0]["documents"]] == [("A-7", "reversed")]
    reversal = vouchers_by_description(sandbox)["A-7~reversal"]
    assert (reversal["sumNet"], reversal["sumTax"], reversal["sumGross"]) == ("-20.79", "-3.95", "-24.74")
    assert reversal["status"] == "100"
    count = len(sandbox.state["vouchers"])
    docs["A-7"] = docs["A-7"].model_copy(update={"cursor": "z-A-7-again"})
    assert run("run").exit_code == 0  # nothing new (C-USD stays quarantined in the ledger)
    assert len(sandbox.state["vouchers"]) == count  # nothing doubled
    assert sum(1 for v in sandbox.state["vouchers"].values() if v["description"] == "A-7~reversal") == 1


def test_an_invoice_and_its_source_cancellation_through_the_cli(world):
    sandbox, run = world
    extra = 'document_type = "invoice"\ncontact_person = 1551095'
    docs = fake_store("shop15")["documents"]
    docs["I-1"] = order("I-1", [Line(description="Ware", total=Decimal("119.00"), tax_rate=Decimal(19))])
    result = run("run", "--json", extra=extra)
    assert result.exit_code == 0, result.output
    [invoice] = sandbox.state["invoices"].values()
    assert invoice["status"] == "200" and (invoice["sumTax"], invoice["sumGross"]) == ("19", "119")
    original = docs["I-1"]
    docs["ST-1"] = original.model_copy(update={
        "source_ref": "ST-1", "number": "ST-1", "kind": DocumentKind.CREDIT_NOTE, "reverses": "I-1", "cursor": "z-ST-1",
        "lines": [line.model_copy(update={"total": -line.total}) for line in original.lines]})
    result = run("run", "--json", extra=extra)
    assert result.exit_code == 0, result.output
    assert [(d["source_ref"], d["state"]) for d in result.json[0]["documents"]] == [("ST-1", "pushed")]
    [cancellation] = [i for i in sandbox.state["invoices"].values() if i["invoiceType"] == "SR"]
    assert cancellation["origin"]["id"] == invoice["id"]
    assert (cancellation["sumTax"], cancellation["sumGross"]) == ("-19", "-119")
    docs["ST-1"] = docs["ST-1"].model_copy(update={"cursor": "z-ST-1-again"})
    assert run("run", extra=extra).exit_code == 0
    assert len(sandbox.state["invoices"]) == 2
    assert sum(1 for e in sandbox.requests if e["path"].endswith("cancelInvoice")) == 1
