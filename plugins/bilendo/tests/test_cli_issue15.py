"""Issue 15 in Bilendo through the real CLI: cancellations stay with a person, vouchers are never dunned.

Bilendo's API (as far as it is public, and as ledgerlink designed its invoice half) has no
credit note, no cancel call and no payments: ``reverses_documents`` is False. The source is
ledgerlink's fake source reading canonical documents from a JSON file; the Bilendo sandbox
runs on loopback; ``ledgerlink run`` is the CLI as a subprocess.
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
from bilendo_helpers import customer, plan_for
from ledgerlink import Contact, Document, Line, Payment, QuarantineError, SandboxServer, TargetRef
from ledgerlink_bilendo.sandbox import BilendoSandbox


def D(value: Any) -> Decimal:  # noqa: N802
    return Decimal(str(value))


def crm_invoice(n: int, *, cursor: str, cancelled: bool = False, kind: str = "invoice",
                reverses: str | None = None, payments: list[Payment] | None = None, sign: int = 1) -> Document:
    """A B2B invoice: 200.00 net + 38.00 VAT = 238.00."""
    return Document(
        source_ref=f"inv-{n}", number=f"RE-{2000 + n}", kind=kind, currency="EUR",  # type: ignore[arg-type]
        invoice_date=date(2026, 3, 2), customer=customer(n),
        lines=[Line(description="Beratung", quantity=Decimal(2), total=D("200.00") * sign, tax_rate=Decimal(19),
                    price_basis="net")],
        cancelled=cancelled, reverses=reverses, payments=payments or [], cursor=cursor,
    )


@dataclass
class World:
    tmp: Path
    bilendo: BilendoSandbox
    env: dict[str, str]
    config: Path
    documents: dict[str, Document]

    def write(self, *documents: Document) -> None:
        for document in documents:
            self.documents[document.source_ref] = document
        payload = {"documents": [d.model_dump(mode="json") for d in self.documents.values()]}
        (self.tmp / "docs.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")

    def cli(self, *args: str) -> tuple[int, Any]:
        env = {**os.environ, **self.env, "LEDGERLINK_FAKE_PLUGINS": "1"}
        env.pop("LEDGERLINK_CONFIG", None)
        result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(self.config), *args, "--json"],
                                capture_output=True, text=True, timeout=90, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        try:
            return result.returncode, json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"not JSON (exit {result.returncode}): {result.stdout!r} {result.stderr!r}") from None

    def run(self) -> tuple[int, dict[str, Any]]:
        code, report = self.cli("run")
        return code, report[0]

    def invoices(self) -> dict[str, dict[str, Any]]:
        return {inv["external_id"]: inv for inv in self.bilendo.state["invoices"].values()}


def outcome(report: dict[str, Any], source_ref: str) -> dict[str, Any]:
    (found,) = [d for d in report["documents"] if d["source_ref"] == source_ref]
    return found


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    servers: list[SandboxServer] = []

    def build(pipeline: str = "") -> World:
        token = f"bilendo-15-{secrets.token_hex(8)}"
        sandbox = BilendoSandbox(seed={"tokens": [token]})
        server = SandboxServer(sandbox)
        servers.append(server)
        server.__enter__()
        config = tmp_path / "ledgerlink.toml"
        config.write_text(f'''
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.crm]
plugin = "fake-source"
store = "bilendo-15-{tmp_path.name}"
file = "{tmp_path / 'docs.json'}"

[connections.bilendo]
plugin = "bilendo"
api_token = "${{BILENDO_15_TOKEN}}"
base_url = "{server.url}"
dispatch = "automatic"
requests_per_second = 50

[[pipelines]]
name = "crm"
source = "crm"
target = "bilendo"
due_days = 14
{pipeline}
''', encoding="utf-8")
        world = World(tmp_path, sandbox, {"BILENDO_15_TOKEN": token}, config, {})
        world.write()
        return world

    try:
        yield build
    finally:
        for server in servers:
            server.__exit__(None, None, None)


@pytest.mark.parametrize("on_cancel", ["flag", "reverse"])
def test_cancelled_after_export_stays_flagged_for_a_person(start: Any, on_cancel: str) -> None:
    world = start(f'on_cancel = "{on_cancel}"')
    world.write(crm_invoice(1, cursor="2026-03-02T10:00:01"))
    code, report = world.run()
    assert code == 0, report
    assert D(world.invoices()["inv-1"]["amount"]) == D("238.00") and world.invoices()["inv-1"]["status"] == "sent"

    world.write(crm_invoice(1, cursor="2026-03-05T10:00:00", cancelled=True))
    code, report = world.run()
    assert code == 1, report  # a person must cancel it in Bilendo
    flagged = outcome(report, "inv-1")
    assert flagged["state"] == "cancelled"
    assert flagged["reason"].startswith("cancelled after export: still booked in the target; a person must reverse it")
    if on_cancel == "reverse":
        assert "(bilendo cannot take a reversal from ledgerlink)" in flagged["reason"]
    # nothing was written to Bilendo: the invoice is still there, still being collected
    assert len(world.invoices()) == 1 and world.invoices()["inv-1"]["status"] == "sent"
    posts = [r for r in world.bilendo.requests if r["method"] == "POST" and r["path"] == "/api/v2/invoices"]
    assert len(posts) == 1
    code, status = world.cli("status")
    assert "cancelled after export" in json.dumps(status)


def test_source_cancellation_documents_are_quarantined_or_skipped_naming_bilendo(start: Any) -> None:
    world = start()
    world.write(crm_invoice(1, cursor="2026-03-02T10:00:01"),
                crm_invoice(2, cursor="2026-03-02T10:00:02", cancelled=True))
    code, report = world.run()
    assert outcome(report, "inv-2")["state"] == "skipped"  # cancelled before export: never sent
    world.write(crm_invoice(3, cursor="2026-03-03T10:00:00", kind="credit_note", reverses="inv-1", sign=-1),
                crm_invoice(4, cursor="2026-03-03T10:00:01", kind="credit_note", reverses="inv-2", sign=-1))
    code, report = world.run()
    assert code == 1, report
    refused = outcome(report, "inv-3")
    assert refused["state"] == "quarantined"
    assert refused["reason"] == ("it cancels RE-2001; bilendo cannot take a credit note referencing it: "
                                 "book the cancellation there by hand")
    skipped = outcome(report, "inv-4")
    assert skipped["state"] == "skipped" and "cancelled before export: neither goes to bilendo" in skipped["reason"]
    assert set(world.invoices()) == {"inv-1"}  # neither credit note nor the cancelled invoice reached Bilendo


def test_voucher_paid_invoice_is_never_sent_to_be_dunned(start: Any) -> None:
    voucher = [Payment(amount=D("38.00"), date=date(2026, 3, 2), kind="voucher")]
    world = start('voucher_account = "Gutscheine"')
    world.write(crm_invoice(5, cursor="2026-03-02T10:00:05", payments=voucher))
    code, report = world.run()
    assert code == 1, report
    refused = outcome(report, "inv-5")
    assert refused["state"] == "quarantined"
    assert "38.00 EUR of its 238.00 was paid with a gift voucher" in refused["reason"]
    assert "with 200.00 EUR still owed" in refused["reason"]
    assert not world.invoices()


def test_voucher_without_voucher_account_gets_bilendos_reason_not_the_settings(start: Any) -> None:
    """Bilendo cannot take a voucher payment at all (books_vouchers = False): the reason
    is Bilendo's, not a voucher_account setting that would not help."""
    world = start()
    world.write(crm_invoice(6, cursor="2026-03-02T10:00:06",
                            payments=[Payment(amount=D("238.00"), date=date(2026, 3, 2), kind="voucher")]))
    code, report = world.run()
    assert code == 1, report
    reason = outcome(report, "inv-6")["reason"]
    assert "voucher_account" not in reason
    assert "238.00 EUR of its 238.00 was paid with a gift voucher" in reason
    assert "nothing is owed, so it does not belong in Bilendo" in reason
    assert not world.invoices()


# -- the target itself ----------------------------------------------------------------------
def test_validate_explains_credit_notes_and_vouchers(target_for: Any) -> None:
    target = target_for()
    credit = crm_invoice(7, cursor="x", kind="credit_note", sign=-1)
    plan = plan_for(credit, Contact(target_id="c"))
    with pytest.raises(QuarantineError) as info:
        target.validate(credit, plan)
    assert str(info.value) == (
        "RE-2007 is a credit note; Bilendo's API takes invoices only and has no credit note or cancel call, so "
        "ledgerlink cannot reduce or cancel a receivable there: cancel or correct the invoice in Bilendo by hand "
        "so that it is not dunned")
    plan.reverses = TargetRef(target_id="b-1", number="RE-2001")
    with pytest.raises(QuarantineError, match=r"is a credit note \(it cancels RE-2001\)"):
        target.validate(credit, plan)
    paid = crm_invoice(8, cursor="x", payments=[Payment(amount=D("238.00"), date=date(2026, 3, 2), kind="voucher")])
    with pytest.raises(QuarantineError, match="nothing is owed, so it does not belong in Bilendo"):
        target.validate(paid, plan_for(paid, Contact(target_id="c")))
    money = crm_invoice(9, cursor="x", payments=[Payment(amount=D("100.00"), date=date(2026, 3, 2))])
    target.validate(money, plan_for(money, Contact(target_id="c")))  # money payments: unchanged


def test_a_foreign_invoice_goes_in_its_own_currency_without_a_rate(start: Any) -> None:
    """Bilendo collects in the invoice's currency and books nothing: a CHF invoice needs no
    exchange rate (it used to be quarantined for lacking one, with nothing to use it for)."""
    world = start()
    chf = crm_invoice(7, cursor="2026-03-02T10:00:07").model_copy(update={"currency": "CHF"})
    world.write(chf)
    code, report = world.run()
    assert code == 0, report
    assert outcome(report, "inv-7")["state"] == "pushed"
    sent = world.invoices()["inv-7"]
    assert (sent["currency"], D(sent["amount"]), D(sent["net_amount"]), D(sent["tax_amount"])) == (
        "CHF", D("238.00"), D("200.00"), D("38.00"))
    assert not any("rate" in key for key in sent)  # no rate is sent
