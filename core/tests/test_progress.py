"""Progress on long work (issue 16): a bar on a terminal, plain lines without one,
nothing extra with --json."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    documents = [json.loads(sample_document(n).model_dump_json()) for n in range(1, 6)]
    (tmp_path / "documents.json").write_text(json.dumps({"documents": documents}))
    (tmp_path / "ledgerlink.toml").write_text(fake_config(source_file="documents.json"))
    return tmp_path / "ledgerlink.toml"


def test_a_terminal_gets_a_progress_bar(cfg: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "LEDGERLINK_FAKE_PLUGINS": "1", "COLUMNS": "160"}
    proc = subprocess.Popen([sys.executable, "-m", "ledgerlink._cli", "-c", str(cfg), "run"], cwd=cfg.parent,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    assert proc.stdout is not None and proc.stdout.read().decode().strip() == "p: 5 pushed"
    text = seen.decode("utf-8", "replace")
    assert "5 documents" in text and "/s" in text, text[-2000:]


def test_without_a_terminal_progress_comes_as_plain_lines(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledgerlink._cli.PLAIN_PROGRESS_SECONDS", 0.0)
    monkeypatch.chdir(cfg.parent)
    fake_store("shop")  # documents come from the file
    result = invoke_cli(["-c", str(cfg), "run"])
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert [line.split(" (")[0] for line in lines] == [f"progress: p: {n} documents" for n in range(1, 6)]
    assert result.output.strip() == "p: 5 pushed"


def test_json_gets_nothing_extra(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledgerlink._cli.PLAIN_PROGRESS_SECONDS", 0.0)
    monkeypatch.chdir(cfg.parent)
    result = invoke_cli(["-c", str(cfg), "run", "--json"])
    assert result.exit_code == 0
    assert result.stderr == ""
    assert json.loads(result.output)[0]["counts"] == {"pushed": 5}


def test_a_backfill_by_id_knows_its_total(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledgerlink._cli.PLAIN_PROGRESS_SECONDS", 0.0)
    monkeypatch.chdir(cfg.parent)
    result = invoke_cli(["-c", str(cfg), "backfill", "-p", "p", "--id", "order-1", "--id", "order-2"])
    assert result.exit_code == 0, result.output
    assert [line.split(" (")[0] for line in result.stderr.splitlines() if line.startswith("progress: ")] == [
        "progress: p: 1 of 2 documents", "progress: p: 2 of 2 documents"]


def test_retry_total_is_what_the_ledger_holds_for_retry(tmp_path: Path) -> None:
    """The total `retry` shows: pending (settled first) and failed documents, and with
    --quarantined the quarantined ones; pushed and skipped ones are not taken up."""
    from ledgerlink._operations import retry_total
    from ledgerlink._records import TargetRef
    from ledgerlink.testing import make_runtime

    runtime = make_runtime({"connections": {"shop": {"plugin": "fake-source", "store": "shop"},
                                            "books": {"plugin": "fake-target", "store": "books"}},
                            "pipelines": [{"name": "p", "source": "shop", "target": "books"},
                                          {"name": "q", "source": "shop", "target": "books"}]}, tmp_path)
    ledger = runtime.ledger
    ledger.mark_pending(None, "p", sample_document(1))
    ledger.mark_failed(None, "p", "order-2", "refused", retryable=False)
    ledger.mark_failed(None, "p", "order-3", "timed out", retryable=True)
    ledger.mark_quarantined(None, "p", "order-4", "no tax rule")
    ledger.mark_pushed(ledger.mark_pending(None, "p", sample_document(5)), TargetRef(target_id="d5"), note=None)
    ledger.mark_skipped(None, "p", "order-6", "a draft")
    ledger.mark_failed(None, "q", "order-7", "refused", retryable=False)  # another pipeline's
    p, q = runtime.config.pipelines
    try:
        assert retry_total(runtime, p) == 3
        assert retry_total(runtime, p, quarantined=True) == 4
        assert retry_total(runtime, q) == 1
    finally:
        ledger.close()


def _terminal(cfg: Path, *args: str) -> tuple[int, str, str]:
    """The CLI on a pseudo-terminal (stderr, where the bar goes): exit code, stdout, what the terminal saw."""
    master, slave = pty.openpty()
    env = {**os.environ, "LEDGERLINK_FAKE_PLUGINS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "ledgerlink._cli", "-c", str(cfg), *args], cwd=cfg.parent,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    code = proc.wait(timeout=60)
    assert proc.stdout is not None
    return code, proc.stdout.read().decode(), seen.decode("utf-8", "replace")


def _fail_every_push(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose pushes the target refuses: 5 failed documents in the ledger for `retry`."""
    from ledgerlink import VendorRejected

    monkeypatch.chdir(cfg.parent)
    fake_store("books")["fail"] = [VendorRejected("refused") for _ in range(5)]
    result = invoke_cli(["-c", str(cfg), "run"])
    assert "5 failed" in result.output, result.output
    fake_store("books")["fail"] = []


def test_retry_on_a_terminal_shows_the_total_the_ledger_knows_and_an_eta(
    cfg: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fail_every_push(cfg, monkeypatch)
    code, out, text = _terminal(cfg, "retry")
    assert code == 0, out + text[-2000:]
    assert "p: 5 pushed" in out, out
    # done/total, per second, elapsed, and the time left (rich shows it only with a total)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # without the terminal's colours and moves
    time = r"(?:\d+:\d\d:\d\d|-:--:--)"
    assert re.search(rf"\d/5 documents\s+[\d.]+/s\s+{time}\s+{time}", plain), plain[-2000:]


def test_retry_without_a_terminal_counts_of_its_total(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_every_push(cfg, monkeypatch)
    monkeypatch.setattr("ledgerlink._cli.PLAIN_PROGRESS_SECONDS", 0.0)
    result = invoke_cli(["-c", str(cfg), "retry"])
    assert result.exit_code == 0, result.output
    assert [line.split(" (")[0] for line in result.stderr.splitlines() if line.startswith("progress: ")] == [
        f"progress: p: {n} of 5 documents" for n in range(1, 6)]


@pytest.fixture
def customers_cfg(cfg: Path) -> Path:
    data = json.loads((cfg.parent / "documents.json").read_text())
    data["customers"] = [{"source_id": f"cust-{n}", "first_name": "Erika", "last_name": f"Muster{n}"}
                         for n in range(1, 4)]
    (cfg.parent / "documents.json").write_text(json.dumps(data))
    return cfg


def test_match_customers_counts_customers_not_documents(customers_cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledgerlink._cli.PLAIN_PROGRESS_SECONDS", 0.0)
    monkeypatch.chdir(customers_cfg.parent)
    result = invoke_cli(["-c", str(customers_cfg), "match-customers"])
    assert result.exit_code == 0, result.output
    assert [line.split(" (")[0] for line in result.stderr.splitlines() if line.startswith("progress: ")] == [
        f"progress: p: {n} customers" for n in range(1, 4)]
    code, out, text = _terminal(customers_cfg, "match-customers")
    assert code == 0, out + text[-2000:]
    assert "3 customers" in text and "documents" not in text, text[-2000:]
