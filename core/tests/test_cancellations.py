"""Cancellations and gift vouchers through the CLI, with the fake source and target.

Rules: docs/accounting.md, "Credit notes and cancellations" and "Payments". A credit
note always references the document it cancels; a reversal is written once, through the
same protocol as every write; a voucher is a means of payment.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from ledgerlink import DocumentKind, OutcomeUnknown, Payment, QuarantineError
from ledgerlink._fakes import FakeTarget
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document


@pytest.fixture
def config(tmp_path: Path):
    def write(**options: str) -> str:
        (tmp_path / "ledgerlink.toml").write_text(fake_config(**options))
        return str(tmp_path / "ledgerlink.toml")
    return write


def pushes() -> list[str]:
    return [ref for action, ref, _ in fake_store("books")["writes"] if action == "push"]


def cancel(n: int = 1) -> None:
    """Order n is cancelled in the source (listed again, after the cursor)."""
    fake_store("shop")["documents"][f"order-{n}"] = sample_document(n).model_copy(
        update={"cancelled": True, "cursor": f"z-order-{n}-cancelled"})


def cancellation_order(n: int, of: int) -> None:
    """The source's own cancellation document for order ``of`` (a credit note)."""
    original = sample_document(of)
    lines = [line.model_copy(update={"total": -line.total}) for line in original.lines]
    fake_store("shop")["documents"][f"order-{n}"] = original.model_copy(update={
        "source_ref": f"order-{n}", "number": f"ST-{n}", "kind": DocumentKind.CREDIT_NOTE, "lines": lines,
        "reverses": f"order-{of}", "cursor": f"z-order-{n}"})


def test_on_cancel_reverse_writes_one_credit_note_referencing_the_original(config) -> None:
    cfg = config(on_cancel="reverse")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancel(1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 0, result.output  # reversed: nobody needs to act
    [outcome] = result.json[0]["documents"]
    assert outcome["state"] == "reversed"
    assert outcome["reason"] == "cancelled after transfer: reversed by credit note d2"
    assert pushes() == ["order-1", "order-1~reversal"]
    credit = fake_store("books")["pushed"]["order-1~reversal"]
    original = fake_store("books")["pushed"]["order-1"]
    assert credit["kind"] == "credit_note" and credit["reverses"] == original["id"]
    assert Decimal(credit["gross"]) == -Decimal(original["gross"]) == Decimal("-123.90")
    assert credit["document_date"] == date.today().isoformat()  # never back into a filed period
    status = {row["source_ref"]: row for row in invoke_cli(["-c", cfg, "status", "--json"]).json}
    assert status["order-1"]["changed"] == "cancelled after transfer: reversed by credit note d2"
    assert status["order-1~reversal"]["state"] == "pushed"
    audit = list(csv.DictReader(io.StringIO(invoke_cli(["-c", cfg, "audit"]).output)))
    assert [(row["source_ref"], row["action"]) for row in audit if row["source_ref"].startswith("order-1")] == [
        ("order-1", "push"), ("order-1~reversal", "push")]
    again = invoke_cli(["-c", cfg, "run", "--json"])
    assert again.exit_code == 0 and again.json[0]["documents"] == []
    cancel(1)  # listed once more: still one reversal
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert pushes() == ["order-1", "order-1~reversal"]


def test_a_reversal_whose_answer_is_lost_is_found_not_doubled(config) -> None:
    cfg = config(on_cancel="reverse")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancel(1)
    fake_store("books")["fail"] = [("after", OutcomeUnknown("the answer was lost"))]
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 0, result.output
    assert result.json[0]["documents"][0]["state"] == "reversed"
    assert pushes() == ["order-1", "order-1~reversal"]


def test_a_reversal_the_target_cannot_take_stays_flagged(config, monkeypatch) -> None:
    monkeypatch.setattr(FakeTarget, "reverses_documents", False)
    cfg = config(on_cancel="reverse")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancel(1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1
    [outcome] = result.json[0]["documents"]
    assert outcome["state"] == "cancelled"
    assert "books cannot take a reversal from ledgerlink" in outcome["reason"]
    assert pushes() == ["order-1"]


def test_a_failed_reversal_is_reported_and_written_by_a_later_run(config) -> None:
    cfg = config(on_cancel="reverse")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancel(1)
    from ledgerlink import TransientError
    fake_store("books")["fail"] = [TransientError("the target is busy")]
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1
    [outcome] = result.json[0]["documents"]
    assert outcome["source_ref"] == "order-1~reversal" and outcome["state"] == "failed"
    assert pushes() == ["order-1"]
    later = invoke_cli(["-c", cfg, "run", "--json"])  # the failed reversal is retried from the ledger's copy
    assert later.exit_code == 0, later.output
    assert pushes() == ["order-1", "order-1~reversal"]
    status = {row["source_ref"]: row for row in invoke_cli(["-c", cfg, "status", "--json"]).json}
    assert status["order-1"]["changed"] == "cancelled after transfer: reversed by credit note d2"


def test_the_sources_cancellation_document_is_a_credit_note_for_the_original(config) -> None:
    cfg = config()
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancel(1)
    flagged = invoke_cli(["-c", cfg, "run", "--json"])
    assert flagged.exit_code == 1 and flagged.json[0]["documents"][0]["state"] == "cancelled"
    cancellation_order(2, of=1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 0, result.output
    [outcome] = result.json[0]["documents"]
    assert outcome["state"] == "pushed" and outcome["reason"].startswith("credit note for RE-1001")
    credit = fake_store("books")["pushed"]["order-2"]
    assert credit["kind"] == "credit_note" and credit["reverses"] == "d1"
    assert Decimal(credit["gross"]) == Decimal("-123.90")
    status = {row["source_ref"]: row for row in invoke_cli(["-c", cfg, "status", "--json"]).json}
    assert status["order-1"]["changed"] == "cancelled after transfer: reversed by credit note ST-2"
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert pushes() == ["order-1", "order-2"]


def test_a_cancellation_of_a_document_never_transferred_is_quarantined_then_written(config) -> None:
    cfg = config()
    cancellation_order(2, of=1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1
    [outcome] = result.json[0]["documents"]
    assert outcome["state"] == "quarantined"
    assert outcome["reason"].startswith("it cancels order-1, which this pipeline has not transferred or seen")
    assert pushes() == []
    fake_store("shop")["documents"]["order-1"] = sample_document(1).model_copy(update={"cursor": "zz"})
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert invoke_cli(["-c", cfg, "retry", "--quarantined"]).exit_code == 0
    assert pushes() == ["order-1", "order-2"]
    assert fake_store("books")["pushed"]["order-2"]["reverses"] == "d1"


def test_cancelled_before_transfer_with_its_own_cancellation_both_go_to_the_books(config) -> None:
    cfg = config()
    fake_store("shop")["documents"]["order-1"] = sample_document(1).model_copy(update={"cancelled": True})
    first = invoke_cli(["-c", cfg, "run", "--json"])
    assert first.json[0]["documents"][0]["state"] == "skipped"
    cancellation_order(2, of=1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 0, result.output
    assert pushes() == ["order-1", "order-2"]
    assert fake_store("books")["pushed"]["order-2"]["reverses"] == fake_store("books")["pushed"]["order-1"]["id"]


def test_a_dunning_target_gets_neither_of_a_document_cancelled_before_export(config, monkeypatch) -> None:
    monkeypatch.setattr(FakeTarget, "locks_exported", True)
    cfg = config()
    fake_store("shop")["documents"]["order-1"] = sample_document(1).model_copy(update={"cancelled": True})
    cancellation_order(2, of=1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 0
    states = {d["source_ref"]: (d["state"], d["reason"]) for d in result.json[0]["documents"]}
    assert states["order-2"] == ("skipped", "it cancels RE-1001, which was cancelled before export: neither goes "
                                            "to books")
    assert pushes() == []


def test_a_target_without_credit_notes_quarantines_the_cancellation(config, monkeypatch) -> None:
    monkeypatch.setattr(FakeTarget, "reverses_documents", False)
    cfg = config()
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    cancellation_order(2, of=1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1
    states = {d["source_ref"]: (d["state"], d["reason"]) for d in result.json[0]["documents"]}
    assert states["order-2"] == ("quarantined", "it cancels RE-1001; books cannot take a credit note referencing "
                                                "it: book the cancellation there by hand")


def test_an_original_reversed_by_ledgerlink_is_not_reversed_again_by_the_source(config) -> None:
    cfg = config(on_cancel="reverse")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancel(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancellation_order(2, of=1)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    [outcome] = result.json[0]["documents"]
    assert outcome["state"] == "skipped"
    assert outcome["reason"] == "RE-1001 is already reversed in the target by credit note d2 (order-1~reversal)"
    assert pushes() == ["order-1", "order-1~reversal"]


def test_a_gift_voucher_is_a_payment_from_the_clearing_account(config) -> None:
    doc = sample_document(1)
    doc.payments = [Payment(amount=Decimal("20.00"), date=date(2026, 3, 2), kind="voucher", method="coupon"),
                    Payment(amount=Decimal("103.90"), date=date(2026, 3, 2), method="PayPal")]
    fake_store("shop")["documents"]["order-1"] = doc
    refused = invoke_cli(["-c", config(), "run", "--json"])
    assert refused.exit_code == 1
    [outcome] = refused.json[0]["documents"]
    assert outcome["state"] == "quarantined"
    assert outcome["reason"] == ("20.00 EUR of it is paid with a gift voucher, which is a means of payment, not a "
                                 "discount; set voucher_account in pipeline 'p' to the target's voucher clearing "
                                 "account")
    assert pushes() == []
    cfg = config(voucher_account="1363")
    assert invoke_cli(["-c", cfg, "retry", "--quarantined"]).exit_code == 0
    pushed = fake_store("books")["pushed"]["order-1"]
    assert Decimal(pushed["gross"]) == Decimal("123.90")  # the goods at their full price
    assert pushed["vouchers"] == [("20.00", "1363")]


def test_a_document_found_unfinished_after_a_lost_answer_is_finished_or_quarantined(config) -> None:
    cfg = config()
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    fake_store("shop")["documents"]["order-2"] = sample_document(2)
    fake_store("books")["fail"] = [("after", OutcomeUnknown("lost")), ("after", OutcomeUnknown("lost"))]
    fake_store("books")["fail_complete"] = QuarantineError("the target's VAT 19.55 differs from the source's 19.56; "
                                                           "its draft was deleted")
    result = invoke_cli(["-c", cfg, "run", "--json"])
    states = {d["source_ref"]: (d["state"], d["reason"]) for d in result.json[0]["documents"]}
    assert states["order-1"][0] == "quarantined"
    assert states["order-1"][1] == ("the target's VAT 19.55 differs from the source's 19.56; its draft was deleted")
    assert states["order-2"][0] == "pushed"
    assert [ref for ref, _ in fake_store("books")["completed"]] == ["d2"]


def test_a_gift_voucher_is_booked_even_when_the_bookkeeper_reconciles_money(config) -> None:
    """payment_reconciliation = "target": money comes from the bank statement, where a
    voucher never appears, so ledgerlink books the voucher part (and only that)."""
    doc = sample_document(1)
    doc.payments = [Payment(amount=Decimal("20.00"), date=date(2026, 3, 2), kind="voucher"),
                    Payment(amount=Decimal("103.90"), date=date(2026, 3, 2), method="PayPal")]
    fake_store("shop")["documents"]["order-1"] = doc
    cfg = config(voucher_account="1363", payment_reconciliation="target")
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 0, result.output
    assert fake_store("books")["payments"] == [("d1", "20.00")]
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert fake_store("books")["payments"] == [("d1", "20.00")]  # once


def chf(n: int, cursor: str | None = None) -> None:
    """Order n in CHF, with no rate of the source's own (the pipeline's rate applies)."""
    order = sample_document(n)
    fake_store("shop")["documents"][f"order-{n}"] = order.model_copy(
        update={"currency": "CHF", "cursor": cursor or order.cursor})


def test_a_reversal_in_a_foreign_currency_is_written_at_the_originals_rate(config, tmp_path) -> None:
    # Audit B1: the original went out at 0.95; by the time it is cancelled the pipeline says
    # 0.90. The credit note must take 0.95, or part of the revenue and VAT stays booked.
    cfg = config(on_cancel="reverse")
    with open(cfg, "a") as out:
        out.write('exchange_rates = { CHF = "0.95" }\n')
    chf(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert fake_store("books")["pushed"]["order-1"]["exchange_rate"] == "0.95"
    text = (tmp_path / "ledgerlink.toml").read_text().replace('CHF = "0.95"', 'CHF = "0.90"')
    (tmp_path / "ledgerlink.toml").write_text(text)
    fake_store("shop")["documents"]["order-1"] = fake_store("shop")["documents"]["order-1"].model_copy(
        update={"cancelled": True, "cursor": "z-order-1-cancelled"})
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 0, result.output
    credit = fake_store("books")["pushed"]["order-1~reversal"]
    assert credit["currency"] == "CHF" and credit["exchange_rate"] == "0.95"
    # a new CHF order takes today's rate
    chf(2, cursor="z-order-2")
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert fake_store("books")["pushed"]["order-2"]["exchange_rate"] == "0.90"


def test_the_sources_cancellation_document_takes_the_originals_rate(config, tmp_path) -> None:
    cfg = config()
    with open(cfg, "a") as out:
        out.write('exchange_rates = { CHF = "0.95" }\n')
    chf(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    (tmp_path / "ledgerlink.toml").write_text((tmp_path / "ledgerlink.toml").read_text().replace("0.95", "0.90"))
    cancellation_order(2, of=1)
    fake_store("shop")["documents"]["order-2"].currency = "CHF"
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert fake_store("books")["pushed"]["order-2"]["exchange_rate"] == "0.95"


@pytest.mark.parametrize("kind", [DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE])
def test_negative_revenue_that_names_no_original_is_quarantined(config, kind) -> None:
    # Audit B2: an order with every amount negated and no IsCancelationFor went out as a
    # free-standing negative voucher.
    cfg = config()
    order = sample_document(7)
    fake_store("shop")["documents"]["order-7"] = order.model_copy(update={
        "kind": kind, "lines": [line.model_copy(update={"total": -line.total}) for line in order.lines]})
    result = invoke_cli(["-c", cfg, "run", "--json"])
    [outcome] = result.json[0]["documents"]
    assert outcome["state"] == "quarantined"
    what = "a credit note" if kind == DocumentKind.CREDIT_NOTE else "a negative invoice"
    assert outcome["reason"].startswith(f"{what} of -123.90 EUR that names no document it reverses"), outcome
    assert pushes() == []


def test_a_payment_that_comes_with_a_change_is_booked_and_the_change_reported(config) -> None:
    # Audit B4: the payment arrived in the same run as a change of the customer's name;
    # it was never booked.
    cfg = config(payment_reconciliation="source")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    changed = sample_document(1, paid=True)
    changed.customer.last_name = "Musterfrau"
    changed.cursor = "z-order-1-paid"
    fake_store("shop")["documents"]["order-1"] = changed
    result = invoke_cli(["-c", cfg, "run", "--json"])
    states = sorted(o["state"] for o in result.json[0]["documents"])
    assert states == ["changed", "payment_booked"], result.output
    assert fake_store("books")["payments"] == [("d1", "123.90")]
    again = invoke_cli(["-c", cfg, "run", "--json"])  # nothing twice
    assert again.json[0]["documents"] == [] and fake_store("books")["payments"] == [("d1", "123.90")]
