"""The circuit breaker: a vendor that is down stops the run after a few documents, not
after all of them, and the untried documents are left for the next run."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledgerlink import DocumentError, TransientError
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document


@pytest.fixture
def cfg(tmp_path: Path) -> str:
    (tmp_path / "ledgerlink.toml").write_text(fake_config())
    for n in range(1, 31):
        fake_store("shop")["documents"][f"order-{n:02}"] = sample_document(n).model_copy(
            update={"source_ref": f"order-{n:02}", "cursor": f"c{n:02}"})
    return str(tmp_path / "ledgerlink.toml")


def down(n: int) -> list[Exception]:
    return [TransientError("Acme POST https://acme.test/v1/vouchers: could not connect (ConnectError), "
                           "gave up after 4 attempts") for _ in range(n)]


def test_a_dead_target_stops_the_run_after_three_documents_and_leaves_the_rest(cfg: str) -> None:
    fake_store("books")["fail"] = down(100)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1
    [report] = result.json
    assert report["counts"] == {"failed": 3}  # three tried, 27 never tried
    assert report["error"] == (
        "Acme POST https://acme.test/v1/vouchers: could not connect (ConnectError), gave up after 4 attempts; "
        "stopped after 3 failures in a row for the vendor's reasons: 27 documents not tried and 3 failed "
        "ones left for the next run")
    assert len(fake_store("books")["fail"]) == 97  # the target was asked three times
    text = invoke_cli(["-c", cfg, "run"])  # the one line a person reads
    assert text.exit_code == 1
    assert text.output.strip().splitlines()[-1].startswith("p: 3 failed; stopped: Acme POST")
    fake_store("books")["fail"] = []
    again = invoke_cli(["-c", cfg, "run", "--json"])
    assert again.exit_code == 0, again.output
    assert again.json[0]["counts"] == {"pushed": 30}
    assert sorted(fake_store("books")["pushed"]) == [f"order-{n:02}" for n in range(1, 31)]


def test_a_document_error_between_vendor_failures_resets_the_count(cfg: str) -> None:
    fake_store("books")["fail"] = [*down(2), DocumentError("Acme refused line 1"), *down(2)]
    result = invoke_cli(["-c", cfg, "run", "--json"])
    [report] = result.json
    assert report["error"] is None  # never three in a row: every document was tried
    assert report["counts"] == {"failed": 5, "pushed": 25}


def test_the_threshold_is_a_pipeline_setting(cfg: str) -> None:
    Path(cfg).write_text(fake_config(circuit_breaker=5))
    fake_store("books")["fail"] = down(100)
    [report] = invoke_cli(["-c", cfg, "run", "--json"]).json
    assert report["counts"] == {"failed": 5}
    assert "25 documents not tried" in report["error"]


def test_retrying_stored_documents_stops_too(cfg: str) -> None:
    fake_store("books")["fail"] = down(100)
    invoke_cli(["-c", cfg, "run"])  # 3 failed, retryable
    [report] = invoke_cli(["-c", cfg, "run", "--json"]).json
    assert report["counts"] == {"failed": 3}
    assert report["error"].endswith("0 documents not tried and 3 failed ones left for the next run and the "
                                    "source's new documents")


def paid_later(n: int) -> None:
    fake_store("shop")["documents"][f"order-{n:02}"] = sample_document(n, paid=True).model_copy(
        update={"source_ref": f"order-{n:02}", "cursor": f"d{n:02}"})


def test_payments_on_a_dead_target_stop_the_run_too(tmp_path: Path) -> None:
    # Audit of issue 16: 30 payments arriving later against a target that is down were
    # each tried with the full retry budget, and again by the next run, with exit 0.
    (tmp_path / "ledgerlink.toml").write_text(fake_config(payment_reconciliation="source"))
    cfg = str(tmp_path / "ledgerlink.toml")
    for n in range(1, 31):
        fake_store("shop")["documents"][f"order-{n:02}"] = sample_document(n).model_copy(
            update={"source_ref": f"order-{n:02}", "cursor": f"c{n:02}"})
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0  # pushed unpaid
    for n in range(1, 31):
        paid_later(n)
    fake_store("books")["fail_payment"] = down(100)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1, result.output
    [report] = result.json
    assert report["counts"] == {"payment_pending": 3}
    assert "stopped after 3 failures in a row for the vendor's reasons" in report["error"]
    assert len(fake_store("books")["fail_payment"]) == 97
    # the next run (the cursor waits for the payments): three tried again, then it stops
    [again] = invoke_cli(["-c", cfg, "run", "--json"]).json
    assert again["counts"] == {"payment_pending": 3} and len(fake_store("books")["fail_payment"]) == 94
    assert "stopped after 3 failures in a row" in again["error"]
    fake_store("books")["fail_payment"] = []
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    assert len(fake_store("books")["payments"]) == 30  # each once


def test_a_payment_the_vendor_answered_about_does_not_count(tmp_path: Path) -> None:
    # e.g. Billy: "the invoice is still a draft" — the vendor is up; nothing stops
    (tmp_path / "ledgerlink.toml").write_text(fake_config(payment_reconciliation="source"))
    cfg = str(tmp_path / "ledgerlink.toml")
    for n in range(1, 11):
        fake_store("shop")["documents"][f"order-{n:02}"] = sample_document(n).model_copy(
            update={"source_ref": f"order-{n:02}", "cursor": f"c{n:02}"})
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    for n in range(1, 11):
        paid_later(n)
    fake_store("books")["fail_payment"] = [TransientError("invoice still a draft", vendor_down=False)
                                           for _ in range(10)]
    [report] = invoke_cli(["-c", cfg, "run", "--json"]).json
    assert report["error"] is None and report["counts"] == {"payment_pending": 10}


def test_member_sync_on_a_dead_target_stops_after_three(tmp_path: Path) -> None:
    (tmp_path / "ledgerlink.toml").write_text(fake_config(sync_members=True))
    cfg = str(tmp_path / "ledgerlink.toml")
    for n in range(1, 41):
        fake_store("shop")["customers"][f"m{n}"] = {"source_id": f"m{n}", "last_name": f"Member {n}"}
    fake_store("books")["fail_contact"] = down(100)
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1, result.output
    assert "stopped after 3 failures in a row for the vendor's reasons" in result.json[0]["error"]
    assert len(fake_store("books")["fail_contact"]) == 97  # three members tried, not forty
