"""A payment the target refuses for a reason a person must fix is kept, shown and retried.

sevDesk refuses a CHF payment when no check account of that currency is mapped
(``QuarantineError`` from ``book_payment``). The run that meets it says so (exit 1).
It used to be forgotten after that: the document stays pushed, the source does not
list it again (the cursor has passed it), so the payment was never booked and the
invoice stayed open in the books, to be dunned although paid. Now the ledger keeps
the refusal (``payment_state = "refused: <why>"``), ``status`` shows it until it is
booked, and ``ledgerlink retry`` books it once the person has fixed the cause.
"""

from __future__ import annotations

from pathlib import Path

from ledgerlink import QuarantineError, TransientError
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document

WHY = "a CHF payment needs a check account in CHF: map one in check_accounts"


def test_a_refused_payment_is_shown_until_retry_books_it(tmp_path: Path) -> None:
    (tmp_path / "ledgerlink.toml").write_text(fake_config(payment_reconciliation="source"))
    cfg = str(tmp_path / "ledgerlink.toml")
    for n in (1, 2):
        fake_store("shop")["documents"][f"order-{n}"] = sample_document(n).model_copy(
            update={"source_ref": f"order-{n}", "cursor": f"c{n}"})
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0  # pushed, unpaid
    assert fake_store("books")["payments"] == []
    fake_store("shop")["documents"]["order-1"] = sample_document(1, paid=True).model_copy(
        update={"source_ref": "order-1", "cursor": "c3"})  # paid later
    fake_store("shop")["documents"]["order-3"] = sample_document(3).model_copy(
        update={"source_ref": "order-3", "cursor": "c4"})  # a newer order moves the cursor past it
    fake_store("books")["fail_payment"] = [QuarantineError(WHY)]

    found = invoke_cli(["-c", cfg, "run", "--json"])
    assert found.exit_code == 1, found.output
    outcome, pushed = found.json[0]["documents"]
    assert pushed["source_ref"] == "order-3" and pushed["state"] == "pushed"
    assert outcome["state"] == "failed"
    assert outcome["reason"] == f"payment not booked: {WHY}; `ledgerlink retry` books it once that is fixed"

    later = invoke_cli(["-c", cfg, "run", "--json"])  # the source lists nothing new
    assert later.exit_code == 0 and later.json[0]["counts"] == {}
    assert fake_store("books")["payments"] == []

    shown = invoke_cli(["-c", cfg, "status"])
    assert f"payment not booked: {WHY}" in shown.output
    assert shown.output.strip().splitlines()[-2].startswith(
        "3 pushed (1 with a payment the target refused")
    only = invoke_cli(["-c", cfg, "status", "--state", "payment-refused", "--json"])
    assert [(d["source_ref"], d["payment"]) for d in only.json] == [("order-1", f"refused: {WHY}")]

    no = invoke_cli(["-c", cfg, "retry", "--no-quarantined", "--json"])  # only what may have gone away
    assert no.exit_code == 0 and fake_store("books")["payments"] == []
    fixed = invoke_cli(["-c", cfg, "retry", "--json"])  # the person mapped the account
    assert fixed.exit_code == 0, fixed.output
    assert [(d["source_ref"], d["state"]) for d in fixed.json[0]["documents"]] == [("order-1", "payment_booked")]
    assert len(fake_store("books")["payments"]) == 1
    assert invoke_cli(["-c", cfg, "status", "--state", "payment-refused", "--json"]).json == []
    assert "refused" not in invoke_cli(["-c", cfg, "status"]).output
    invoke_cli(["-c", cfg, "retry"])
    assert len(fake_store("books")["payments"]) == 1  # once


def test_a_refusal_that_persists_stays_refused(tmp_path: Path) -> None:
    (tmp_path / "ledgerlink.toml").write_text(fake_config(payment_reconciliation="source"))
    cfg = str(tmp_path / "ledgerlink.toml")
    fake_store("shop")["documents"]["order-1"] = sample_document(1).model_copy(update={"cursor": "c1"})
    invoke_cli(["-c", cfg, "run"])
    fake_store("shop")["documents"]["order-1"] = sample_document(1, paid=True).model_copy(update={"cursor": "c2"})
    fake_store("books")["fail_payment"] = [QuarantineError(WHY), QuarantineError(WHY + " (still)")]
    invoke_cli(["-c", cfg, "run"])
    again = invoke_cli(["-c", cfg, "retry", "--json"])  # not fixed yet
    assert again.exit_code == 1
    [shown] = invoke_cli(["-c", cfg, "status", "--json"]).json
    assert shown["state"] == "pushed" and shown["payment"] == f"refused: {WHY} (still)"


def test_a_later_payment_the_target_could_not_take_yet_is_booked_after_the_cursor_passed_it(
    tmp_path: Path,
) -> None:
    """A payment that arrived after the push and that the target could not take yet (its
    document a draft there, the answer lost) is booked by a later run from the ledger's
    copy, also when a newer document moved the cursor past it. Before, the copy held no
    payments, so the later run found nothing to book: the money was never booked."""
    (tmp_path / "ledgerlink.toml").write_text(fake_config(payment_reconciliation="source"))
    cfg = str(tmp_path / "ledgerlink.toml")
    fake_store("shop")["documents"]["order-1"] = sample_document(1).model_copy(update={"cursor": "c1"})
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    fake_store("shop")["documents"]["order-1"] = sample_document(1, paid=True).model_copy(update={"cursor": "c2"})
    fake_store("shop")["documents"]["order-2"] = sample_document(2).model_copy(
        update={"source_ref": "order-2", "cursor": "c3"})
    fake_store("books")["fail_payment"] = [TransientError("the invoice is still a draft", vendor_down=False)]
    first = invoke_cli(["-c", cfg, "run", "--json"])
    assert first.json[0]["counts"] == {"payment_pending": 1, "pushed": 1}
    second = invoke_cli(["-c", cfg, "run", "--json"])  # the source lists nothing new
    assert second.exit_code == 0, second.output
    assert [(d["source_ref"], d["state"]) for d in second.json[0]["documents"]] == [("order-1", "payment_booked")]
    assert fake_store("books")["payments"] == [("d1", "123.90")]
    [row] = [d for d in invoke_cli(["-c", cfg, "status", "--json"]).json if d["source_ref"] == "order-1"]
    assert row["payment"] == "booked" and row["changed"] is None  # payments are not content
    invoke_cli(["-c", cfg, "run"])
    assert len(fake_store("books")["payments"]) == 1
