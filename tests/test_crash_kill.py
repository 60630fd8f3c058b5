"""Crash safety, the hard way: SIGKILL the pipeline and the vendor, then count.

The Billbee and sevDesk sandboxes run as their own processes with ``--state``
files; ``ledgerlink run`` runs as a subprocess and is killed with SIGKILL at 20
seeded random moments (printed), restarted after each kill. Then the sevDesk
sandbox itself is killed while it holds back the answer to a write it has already
stored, stays down longer than the client's retry budget, and is restarted on the
same port with the same state file, while the run goes on. Then the pipeline runs
to completion, and every one of the 1,000 orders must be in sevDesk exactly once,
with its total to the cent and its payment booked once, and the ledger and the
audit log must agree with sevDesk.

After every kill the "never twice, never wrong" half is checked as well. Kill
points and counts are printed (``pytest -rA`` shows them) and written to
``crash-report.txt`` in the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import (  # noqa: E402
    Report,
    SandboxProcess,
    billbee_orders,
    check_exactly_once,
    run_cli,
    start_run,
    stop,
    write_config,
)

pytestmark = pytest.mark.slow

ORDERS = 1000
KILLS = 20
SEED = 20260101
# Every 5th kill lands within a run's first seconds (start-up, settling what the last
# kill left, listing); the others after the run has pushed a random number of
# documents, plus a random fraction of a second (anywhere in a document's protocol).
EARLY = (0.2, 2.5)
PUSHES = (5, 50)
JITTER = (0.0, 0.3)
# The sevDesk client: a short timeout and a retry budget (~2 s) shorter than the
# vendor's downtime below, so a lost write answer cannot be settled in the same run;
# a run after a kill waits twice the timeout before asking about a young pending write.
SEVDESK = {"requests_per_second": 1000, "timeout": 2, "retries": 5, "backoff": 0.05}
VENDOR_DOWN = 5.0
TABLES = ("vouchers", "tag_relations", "logs", "contacts", "addresses", "communication_ways")


def ledger_counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=60) as conn:
            rows = conn.execute("SELECT state, count(*) FROM documents GROUP BY state").fetchall()
    except sqlite3.OperationalError:  # killed before it created its tables
        return {}
    return {state: n for state, n in rows}


def pushed(db: Path) -> int:
    return ledger_counts(db).get("pushed", 0)


def kill_plan(rng: random.Random) -> list[tuple[str, float, float]]:
    plan: list[tuple[str, float, float]] = []
    for index in range(KILLS):
        if index % 5 == 0:
            plan.append(("early", round(rng.uniform(*EARLY), 2), 0.0))
        else:
            plan.append(("after", rng.randint(*PUSHES), round(rng.uniform(*JITTER), 2)))
    return plan


def describe(kill: tuple[str, float, float]) -> str:
    kind, value, jitter = kill
    return f"{value:.2f} s after start" if kind == "early" else f"{value:.0f} pushes + {jitter:.2f} s"


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def snapshot(path: Path) -> tuple[int, dict[str, Any]]:
    """The state file's inode and content, consistently (every save replaces the file)."""
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return os.fstat(fd).st_ino, json.loads(f.read())


def kill_the_vendor(config: Path, sevdesk: SandboxProcess, db: Path, tmp_path: Path, report: Report) -> None:
    """While a run pushes, sevDesk stores a write and dies (SIGKILL) before it answers;
    it stays down longer than the client's retry budget, then restarts with its state
    file on the same port; the run goes on, and is killed itself a little later."""
    # The same pipeline and ledger, with a 1 s timeout: a write sevDesk's "late" fault
    # below holds back times out quickly, so the vendor is killed soon after.
    text = config.read_text(encoding="utf-8").replace(f"timeout = {SEVDESK['timeout']}\n", "timeout = 1\n")
    assert "timeout = 1\n" in text
    # This run must go on through the vendor's downtime (what is checked here is a lost
    # write settled later), so the circuit breaker, which would end it after three
    # documents, is set out of reach (tests/test_dead_vendor.py checks the breaker).
    text = text.replace('tags = ["Import"]\n', 'tags = ["Import"]\ncircuit_breaker = 1000\n')
    assert "circuit_breaker = 1000\n" in text
    quick = config.with_name("ledgerlink-vendor-kill.toml")
    quick.write_text(text, encoding="utf-8")
    run = start_run(quick, tmp_path / "run-vendor-kill")
    try:
        before = pushed(db)
        wait_for(lambda: pushed(db) >= before + 5, 120, "the run to push documents", run)
        # From now on sevDesk stores each write only after the client gave up on it (1.5 s,
        # the client's timeout is 1 s): the client never gets the answer. (Reads stay quick:
        # a ledger that has not finished a run yet looks each document up before its push.)
        sevdesk.post("/__sandbox__/faults", {"rate_late": 1.0, "late_seconds": 1.5})
        inode, old = snapshot(sevdesk.state_file)
        wait_for(lambda: sevdesk.state_file.stat().st_ino != inode, 60,
                 "sevDesk to store a write whose answer it holds back", run)
        sevdesk.kill()
        _, new = snapshot(sevdesk.state_file)
        grew = [table for table in TABLES if len(new[table]) != len(old[table])]
        report(f"vendor: sevDesk killed (SIGKILL) after storing a write ({', '.join(grew) or 'an update'}),"
               f" before answering; down for {VENDOR_DOWN} s")
        time.sleep(VENDOR_DOWN)
        sevdesk.start()
        after_restart = pushed(db)
        report(f"vendor: sevDesk restarted on port {sevdesk.port} with its state file; ledger {ledger_counts(db)}")
        wait_for(lambda: pushed(db) >= after_restart + 5, 120, "the run to push again", run)
        stop(run)
    finally:
        stop(run)
    err = (tmp_path / "run-vendor-kill.err").read_text(encoding="utf-8", errors="replace")
    waits = [line for line in err.splitlines() if line.startswith("wait:")]
    report(f"vendor: the run went on and was killed; {len(waits)} wait: lines; ledger {ledger_counts(db)}")
    assert any("could not connect" in line for line in waits), err[-3000:]
    if set(grew) & {"logs", "transactions"} and not set(grew) & {"vouchers"}:
        # The lost write was a payment's booking (bookAmount): its document stays pushed and
        # its payment stays to be asked about (pending) or booked again once asked (retry);
        # the final check below sees it booked exactly once.
        with sqlite3.connect(db, timeout=60) as conn:
            states = [s for (s,) in conn.execute(
                "SELECT payment_state FROM documents WHERE payment_state IN ('pending', 'retry')")]
        assert states, "a lost payment booking left no payment to be asked about"
    elif not set(grew) & {"contacts", "addresses", "communication_ways"}:
        # A document's write was lost and sevDesk could not be asked: it stays pending
        # (never "failed", which the next run would push again without asking).
        assert any("whether it arrived" in line for line in waits), err[-3000:]
        with sqlite3.connect(db, timeout=60) as conn:
            reasons = [r for (r,) in conn.execute("SELECT reason FROM documents WHERE state = 'pending'")]
        # A lost create stays pending to be asked about; a lost registration of a draft
        # already found stays pending to be finished: the next run does either, once.
        assert any("whether it arrived" in (r or "") or "the next run finishes it" in (r or "")
                   for r in reasons), reasons


def test_sigkill_of_the_pipeline_and_of_the_vendor_leaves_every_order_in_sevdesk_exactly_once(
    tmp_path: Path,
) -> None:
    report = Report(tmp_path / "crash-report.txt")
    started = time.monotonic()
    orders = billbee_orders(ORDERS, seed=SEED)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer, faults={"retry_after": 0.2})
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed)
    db = tmp_path / "ledger.db"
    ledger_url = f"sqlite:///{db}"
    run: subprocess.Popen[bytes] | None = None
    plan = kill_plan(random.Random(SEED))
    report(f"{ORDERS} orders ({orders.new_customers} customers to be created in sevDesk), seed {SEED}")
    report("kill plan: " + "; ".join(f"{i} {describe(k)}" for i, k in enumerate(plan, start=1)))
    try:
        billbee.start()
        sevdesk.start()
        config = write_config(tmp_path, billbee.url, sevdesk.url, **SEVDESK)

        def check_never_twice(when: str) -> None:
            verdict = check_exactly_once(orders, sevdesk.state(), ledger_url, complete=False)
            assert not verdict.problems, f"after {when}:\n" + "\n".join(verdict.problems[:20])

        left_pending = 0
        for index, (kind, value, jitter) in enumerate(plan, start=1):
            base = pushed(db)
            run = start_run(config, tmp_path / f"run-{index:02d}")
            begun = time.monotonic()
            if kind == "early":
                time.sleep(value)
            else:
                wait_for(lambda: pushed(db) >= base + value, 300, f"kill {index}'s {value} pushes", run)  # noqa: B023
                time.sleep(jitter)
            assert run.poll() is None, f"run {index} ended (exit {run.returncode}) before its kill"
            stop(run)
            counts = ledger_counts(db)
            left_pending += counts.get("pending", 0) > 0
            report(f"kill {index:2d} ({describe((kind, value, jitter))}) at {time.monotonic() - begun:5.2f} s:"
                   f" SIGKILL; ledger {counts}")
            check_never_twice(f"kill {index}")
            if index == KILLS // 2:
                kill_the_vendor(config, sevdesk, db, tmp_path, report)
                check_never_twice("the vendor kill")
        report(f"{KILLS} kills of the pipeline, {left_pending} of them left a pending document")
        assert left_pending >= 1, "no kill landed between a write's intent and its outcome"

        for attempt in range(1, 4):
            result = run_cli(config, "run", timeout=600)
            report(f"run to completion #{attempt}: exit {result.returncode}: {result.stdout.strip()[-300:]}")
            check_never_twice(f"completion run {attempt}")
            if result.returncode == 0:
                break
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

        verdict = check_exactly_once(orders, sevdesk.state(), ledger_url)
        report("final: " + verdict.line())
        assert not verdict.problems, "\n".join(verdict.problems[:30])
        assert verdict.vouchers == ORDERS and verdict.pushed == ORDERS and verdict.audit_ok == ORDERS
        assert verdict.payments == sum(1 for e in orders.expected.values() if e.paid)

        status = run_cli(config, "status", "--json", timeout=120)
        assert status.returncode == 0, status.stderr
        rows = json.loads(status.stdout)
        assert len(rows) == ORDERS and {r["state"] for r in rows} == {"pushed"}
        settled = [r for r in rows if (r["reason"] or "").startswith("settled after an interruption")]
        contacts = {r["reason"] for r in rows if "created (settled after an interruption)" in (r["reason"] or "")}
        report(f"status: {len(rows)} pushed, {len(settled)} of them settled through find_document after a kill"
               f" ({len(contacts)} contacts settled through find_contact); runtime {time.monotonic() - started:.0f} s")
        assert settled
    finally:
        stop(run)
        billbee.kill()
        sevdesk.kill()
