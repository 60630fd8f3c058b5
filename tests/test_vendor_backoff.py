"""A vendor's long Retry-After survives the run (issue 22, item 6).

sevDesk (the sandbox, in-process) answers every request with 429 and ``Retry-After:
3600``, longer than the HTTP client waits. The run stops at the first document with
that reason and the ledger remembers the wait for the connection; the next run sends
sevDesk nothing and says until when it leaves the pipeline alone (exit 75 from the
CLI). A wait that is short by then is waited out (saying so), and the run transfers.
Nothing sleeps here: the waits are recorded, not slept.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ledgerlink._cli import EXIT_BUSY, _summarise
from ledgerlink._runtime import RunResult
from ledgerlink._sandbox import Faults
from ledgerlink.testing import fake_store, make_runtime, run_pipeline, sample_document
from ledgerlink_sevdesk.sandbox import DEMO_RULES, SevdeskSandbox

pytestmark = pytest.mark.usefixtures("fake_stores")


@pytest.fixture
def sevdesk(monkeypatch: pytest.MonkeyPatch) -> SevdeskSandbox:
    token = f"sevdesk-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SEVDESK_API_TOKEN", token)
    return SevdeskSandbox(seed={"tokens": [token]})


def runtime(sevdesk: SevdeskSandbox, tmp_path: Path) -> Any:
    books, _ = sevdesk.demo_connection("http://sevdesk.test")
    books.update(requests_per_second=10_000, backoff=0.01)
    raw = {"connections": {"shop": {"plugin": "fake-source", "store": "shop"},
                           "books": {"plugin": "sevdesk", **books}},
           "pipelines": [{"name": "p", "source": "shop", "target": "books", "rules": DEMO_RULES}]}
    return make_runtime(raw, tmp_path, transports={"books": sevdesk.transport()})


def api_requests(sevdesk: SevdeskSandbox) -> int:
    return len([r for r in sevdesk.requests if "/__sandbox__/" not in r.get("path", "")])


def test_a_long_retry_after_is_remembered_and_respected_by_the_next_run(
        sevdesk: SevdeskSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in (1, 2, 3):
        fake_store("shop")["documents"][f"order-{n}"] = sample_document(n)
    sevdesk.faults = Faults(rate_429=1.0, retry_after=3600)
    first = runtime(sevdesk, tmp_path)
    result = run_pipeline(first)
    assert result.error is not None and not result.deferred
    assert "the vendor asks to wait 3600 s, longer than 120 s" in result.error
    assert result.error.endswith("stopped: books asked to wait, which the ledger remembers; the documents not "
                                 "tried yet are left for a run after that")
    asked = api_requests(sevdesk)
    backoff = first.ledger.backoff("books")
    assert backoff is not None
    assert timedelta(minutes=59) < backoff.until - datetime.now(UTC) <= timedelta(hours=1)
    assert "HTTP 429" in backoff.reason
    assert first.ledger.backoff("shop") is None  # per connection: the source did not ask

    # the next run asks sevDesk nothing and says until when
    second = runtime(sevdesk, tmp_path)
    result = run_pipeline(second)
    until = backoff.until.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert result.deferred and result.error == (
        f"books: the vendor asked to wait until {until} (Retry-After); pipeline 'p' is left alone until then "
        "(60 min from now), and the next run after that goes on")
    assert api_requests(sevdesk) == asked
    assert second.ledger.last_runs("p")["p"].outcome == "skipped: " + result.error
    assert _summarise([result], as_json=False) == EXIT_BUSY

    # later: a minute is left, which the run waits out (saying so), then it transfers
    second.ledger.set_backoff("books", datetime.now(UTC) + timedelta(seconds=60), "test")  # a later time is kept
    assert second.ledger.backoff("books").until == backoff.until
    with second.ledger.session() as session:
        from ledgerlink._ledger import BackoffRow

        row = session.get(BackoffRow, "books")
        row.until = datetime.now(UTC) + timedelta(seconds=60)
        session.add(row)
        session.commit()
    slept: list[float] = []
    monkeypatch.setattr("ledgerlink._runner.time.sleep", slept.append)
    sevdesk.faults = Faults()
    third = runtime(sevdesk, tmp_path)
    result = run_pipeline(third)
    assert result.error is None and result.counts() == {"pushed": 3}, result.error
    assert len(slept) >= 1 and 55 < slept[0] <= 60
    assert any(m.startswith("books: the vendor asked to wait until ") and "before pipeline 'p' goes on" in m
               for m in third.reporter.messages)
    assert third.ledger.backoff("books") is None  # passed: forgotten


def test_a_wait_that_has_passed_is_forgotten(sevdesk: SevdeskSandbox, tmp_path: Path) -> None:
    rt = runtime(sevdesk, tmp_path)
    rt.ledger.set_backoff("books", datetime.now(UTC) - timedelta(seconds=1), "an hour ago")
    assert rt.ledger.backoff("books") is None
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert run_pipeline(rt).counts() == {"pushed": 1}


def test_the_cli_exits_75_for_a_pipeline_left_alone() -> None:
    assert _summarise([RunResult("p", error="books: the vendor asked to wait", deferred=True)], as_json=False) == 75


def test_check_sync_status_and_match_customers_respect_a_remembered_wait(tmp_path: Path) -> None:
    # Before, only `run` respected it: the other commands asked the vendor at once and
    # were refused again (issue 22, item 6).
    from ledgerlink._ledger import Ledger
    from ledgerlink.testing import fake_config, invoke_cli

    cfg = tmp_path / "ledgerlink.toml"
    cfg.write_text(fake_config(ledger=f"sqlite:///{tmp_path / 'ledger.db'}"))
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    fake_store("shop")["customers"]["cust-1"] = {"source_id": "cust-1", "last_name": "Mustermann1"}
    assert invoke_cli(["-c", str(cfg), "run"]).exit_code == 0
    until = datetime.now(UTC) + timedelta(hours=1)
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").set_backoff("books", until, "HTTP 429, Retry-After 3600")
    said = until.strftime("%Y-%m-%d %H:%M")
    check = invoke_cli(["-c", str(cfg), "check"])
    assert check.exit_code == 75
    assert f"FAIL books (fake-target): not asked: the vendor asked to wait until {said}" in check.output
    assert "ok   shop (fake-source)" in check.output  # the other connection is asked as usual
    fake_store("books")["statuses"]["d1"] = "paid"
    sync = invoke_cli(["-c", str(cfg), "sync-status"])
    assert sync.exit_code == 75 and f"skipped: books: the vendor asked to wait until {said}" in sync.stderr
    assert "0 status changes" in sync.output
    match = invoke_cli(["-c", str(cfg), "match-customers", "--dry-run"])
    assert match.exit_code == 75 and f"the vendor asked to wait until {said}" in match.stderr
