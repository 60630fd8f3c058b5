"""Honest run records (issue 22): a run that ended in an error is recorded with that
outcome and its reason in the ledger's ``runs`` table, never as ``ok``, and ``status``
shows each pipeline's last run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from ledgerlink._ledger import Ledger
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ledgerlink.toml"
    path.write_text(fake_config())
    return path


def last_run(tmp_path: Path) -> tuple[str, str | None, bool]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        run = ledger.last_runs("p")["p"]
        return run.command, run.outcome, run.finished_at is not None
    finally:
        ledger.close()


def test_a_run_that_crashed_is_recorded_with_the_error(cfg: Path, tmp_path: Path) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    fake_store("books")["fail"] = [sqlite3.IntegrityError("UNIQUE constraint failed: documents.pipeline, "
                                                          "documents.source_ref")]
    result = invoke_cli(["run"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: internal error: IntegrityError: UNIQUE constraint failed: "
                                     "documents.pipeline, documents.source_ref (run with -vv for the traceback)")
    assert last_run(tmp_path) == ("run", "error: internal error: IntegrityError: UNIQUE constraint failed: "
                                         "documents.pipeline, documents.source_ref", True)
    status = invoke_cli(["status"])
    assert status.exit_code == 0
    assert status.output.splitlines()[-1].endswith(
        ": error: internal error: IntegrityError: UNIQUE constraint failed: documents.pipeline, documents.source_ref")
    assert status.output.splitlines()[-1].startswith("last run of p: ")
    # the next run transfers the document and is recorded ok
    assert invoke_cli(["run"]).exit_code == 0
    assert last_run(tmp_path) == ("run", "ok", True)
    assert invoke_cli(["status"]).output.splitlines()[-1].endswith(": ok")


def test_a_run_stopped_by_the_target_and_a_partial_run_say_so(cfg: Path, tmp_path: Path) -> None:
    from ledgerlink import ConnectionError_, VendorRejected

    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    fake_store("books")["fail"] = [ConnectionError_("books rejected the credentials (HTTP 401); copy the token again")]
    assert invoke_cli(["run"]).exit_code == 2
    assert last_run(tmp_path) == ("run", "error: books rejected the credentials (HTTP 401); copy the token again",
                                  True)
    fake_store("books")["fail"] = [VendorRejected("books refused it: no such account")]
    assert invoke_cli(["run"]).exit_code == 1
    assert last_run(tmp_path) == ("run", "partial", True)
    assert invoke_cli(["status"]).output.splitlines()[-1].endswith(": partial")


def test_a_run_the_process_did_not_survive_stays_unfinished(cfg: Path, tmp_path: Path) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    from ledgerlink._runtime import SimulatedCrash

    with pytest.raises(SimulatedCrash):  # the process "dies" after the push, before recording
        invoke_cli(["run"], env={"LEDGERLINK_CRASH_AT": "after_push"})
    assert last_run(tmp_path) == ("run", None, False)
    assert invoke_cli(["status"]).output.splitlines()[-1].endswith(
        ": not finished: still running, or the process ended before it could record how (killed?)")
