"""Faults: 20 % of all API requests to Billbee and sevDesk go wrong, and still every
order ends in sevDesk exactly once.

Both sandboxes run as processes and inject a seeded mix of faults (POST
/__sandbox__/faults): 429 and 503 with Retry-After, 500, answers slower than the
client's timeout, dropped connections and answers cut short (the last three after
the request was processed). ``ledgerlink run`` runs until it reports nothing failed
(failed documents are retried by the next run); after every run sevDesk must hold
no order twice and nothing wrong. At the end: 500 vouchers, one per order, with
the right totals and payments, ledger and audit log agreeing.

It also proves *how*: the retries and waits are printed (``wait:`` lines), and
sevDesk's request log shows that each voucher was stored by exactly one request,
and that a voucher write whose answer was lost was followed by a look-up
(``find_document``) before any second write, never by a blind retry.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import (  # noqa: E402
    Report,
    SandboxProcess,
    billbee_orders,
    check_exactly_once,
    cli_env,
    duplicates,
    run_cli,
    write_config,
)

ORDERS = 500
TIMEOUT = 1.0  # the HTTP clients' timeout in this test (s); "slow" answers take longer
MIX = {  # 20 % of API requests
    "rate_429": 0.04, "rate_500": 0.04, "rate_503": 0.03,
    "rate_slow": 0.02, "rate_drop": 0.04, "rate_truncate": 0.03,
    "slow_seconds": 2.0, "retry_after": 0.1,
}
MAX_RUNS = 6
UNKNOWN_TO_CLIENT = {"500", "slow", "drop", "truncate"}  # the write may have happened


def payments_to_retry(db: Path) -> int:
    with sqlite3.connect(db, timeout=60) as conn:
        return int(conn.execute(
            "SELECT count(*) FROM documents WHERE payment_state IN ('pending', 'retry')").fetchone()[0])


def save_voucher_attempts(requests: list[dict[str, Any]]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """saveVoucher requests by voucher description, with their place in the log."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, entry in enumerate(requests):
        if entry["method"] == "POST" and entry["path"].endswith("/Voucher/Factory/saveVoucher"):
            voucher = (entry.get("json") or {}).get("voucher") or {}
            if voucher.get("id"):
                continue  # registering the draft saved before (sevDesk: draft first, then status 100)
            description = voucher.get("description")
            out.setdefault(str(description), []).append((index, entry))
    return out


def lookups(requests: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Answered ``GET /Voucher?descriptionLike=...`` (find_document) by description."""
    out: dict[str, list[int]] = {}
    for index, entry in enumerate(requests):
        if entry["method"] == "GET" and entry["path"].endswith("/Voucher") and entry["status"] == 200 \
                and entry.get("fault") is None:
            for value in parse_qs(entry.get("query") or "").get("descriptionLike", []):
                out.setdefault(value, []).append(index)
    return out


@pytest.mark.slow
def test_every_order_arrives_exactly_once_through_20_percent_faults(tmp_path: Path) -> None:
    report = Report(tmp_path / "faults-report.txt")
    started = time.monotonic()
    orders = billbee_orders(ORDERS, seed=7, customers=30, existing_contacts=15)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = cli_env(LEDGERLINK_HTTP_TIMEOUT=str(TIMEOUT))  # the Billbee connection sets no timeout of its own
    try:
        billbee.start()
        sevdesk.start()
        billbee.post("/__sandbox__/faults", {**MIX, "seed": 101})
        sevdesk.post("/__sandbox__/faults", {**MIX, "seed": 202})
        config = write_config(tmp_path, billbee.url, sevdesk.url, requests_per_second=1000,
                              timeout=TIMEOUT, retries=6, backoff=0.05)
        report(f"{ORDERS} orders; faults on both sandboxes: {MIX}; client timeout {TIMEOUT} s")
        stderr = ""
        for number in range(1, MAX_RUNS + 1):
            result = run_cli(config, "run", env=env, timeout=600)
            stderr += result.stderr
            state = sevdesk.state()
            verdict = check_exactly_once(orders, state, ledger_url, complete=False)
            report(f"run {number}: exit {result.returncode}, {result.stdout.strip()[-200:]}; "
                   f"{verdict.line()}; wait: lines {result.stderr.count('wait: ')}")
            assert "Traceback" not in result.stderr, result.stderr[-3000:]
            assert not duplicates(state), f"run {number} left duplicates: {duplicates(state)}"
            assert not verdict.problems, "\n".join(verdict.problems[:20])
            assert len(state["vouchers"]) <= ORDERS
            unbooked = payments_to_retry(tmp_path / "ledger.db")
            if unbooked:
                report(f"run {number}: {unbooked} payments not booked yet (the next run books them)")
            if result.returncode == 0 and not unbooked:
                break
        assert result.returncode == 0 and not unbooked, f"not done after {MAX_RUNS} runs:\n{result.stdout[-3000:]}"

        billbee_faults = billbee.get("/__sandbox__/faults")["stats"]
        sevdesk_faults = sevdesk.get("/__sandbox__/faults")["stats"]
        billbee.post("/__sandbox__/faults", {k: 0 for k in MIX if k.startswith("rate_")})
        sevdesk.post("/__sandbox__/faults", {k: 0 for k in MIX if k.startswith("rate_")})
        state = sevdesk.state()
        verdict = check_exactly_once(orders, state, ledger_url)
        report(f"final: {verdict.line()}; faults injected: Billbee {billbee_faults}, sevDesk {sevdesk_faults}")
        assert not verdict.problems, "\n".join(verdict.problems[:30])
        assert verdict.vouchers == ORDERS and verdict.pushed == ORDERS and verdict.audit_ok == ORDERS
        assert billbee_faults["faults"] >= 3 and sevdesk_faults["faults"] > 100

        # The retries and waits are visible to the user.
        waits = [line for line in stderr.splitlines() if line.startswith("wait: ")]
        kinds = Counter(
            "Retry-After" if "Retry-After" in line else "backoff" if "backoff" in line
            else "lost answer" if "whether it arrived" in line else "other"
            for line in waits
        )
        report(f"wait: lines: {len(waits)} {dict(kinds)}")
        assert kinds["Retry-After"] and kinds["backoff"] and kinds["lost answer"], waits[:20]
        assert any("Billbee" in line for line in waits) and any("sevDesk" in line for line in waits)

        # Each voucher was stored by exactly one request, and a write whose answer was
        # lost was followed by a look-up before any second write.
        log = sevdesk.requests()
        attempts = save_voucher_attempts(log)
        found = lookups(log)
        settled_by_lookup = 0
        for number, tries in attempts.items():
            stored = [entry for _, entry in tries if entry["status"] == 201]
            assert len(stored) == 1, f"{number}: stored by {len(stored)} saveVoucher requests"
            for (before, previous), (after, _) in zip(tries, tries[1:], strict=False):
                if previous.get("fault") in UNKNOWN_TO_CLIENT:
                    assert any(before < i < after for i in found.get(number, [])), (
                        f"{number}: saveVoucher sent again after a lost answer ({previous.get('fault')})"
                        " without asking sevDesk first"
                    )
            lost = [entry for _, entry in tries if entry.get("fault") in UNKNOWN_TO_CLIENT]
            if lost and any(i > tries[-1][0] for i in found.get(number, [])):
                settled_by_lookup += 1
        lost_writes = sum(1 for tries in attempts.values() for _, e in tries if e.get("fault") in UNKNOWN_TO_CLIENT)
        report(f"saveVoucher requests {sum(map(len, attempts.values()))}, answers lost {lost_writes}, "
               f"settled by a look-up {settled_by_lookup}")
        assert lost_writes > 0 and settled_by_lookup > 0

        # The audit log tells the same story: "unknown: ..." and then exactly one ok.
        from ledgerlink._ledger import Ledger

        ledger = Ledger(ledger_url)
        try:
            audit = [a for a in ledger.audit("shop-to-books") if a.action == "push"]
        finally:
            ledger.close()
        unknown_refs = {a.source_ref for a in audit if a.outcome.startswith("unknown: ")}
        assert unknown_refs, "no lost write answer reached the audit log"
        for ref in unknown_refs:
            outcomes = [a.outcome for a in audit if a.source_ref == ref]
            # "unknown: ..." is settled by a look-up: found ("ok"), or not there and sent again.
            assert sum(o.startswith("ok") for o in outcomes) == 1 and outcomes[-1].startswith("ok"), (ref, outcomes)
        report(f"audit: {len(unknown_refs)} documents with an unknown outcome, each settled once; "
               f"runtime {time.monotonic() - started:.0f} s")
    finally:
        billbee.kill()
        sevdesk.kill()



def test_ledgerlink_http_timeout_sets_the_timeout_of_connectors_without_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ledgerlink._config import load_config
    from ledgerlink._errors import ConfigError
    from ledgerlink._runner import Runtime

    for key, value in cli_env().items():
        monkeypatch.setenv(key, value)
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/api/v1", "http://127.0.0.1:9/api/v1", timeout=7))
    monkeypatch.setenv("LEDGERLINK_HTTP_TIMEOUT", "1.5")
    runtime = Runtime(config)
    billbee, sevdesk = runtime.connector("shop"), runtime.connector("books")
    try:
        assert billbee.client._client.timeout.read == 1.5  # the Billbee connection sets no timeout
        assert sevdesk.http._client.timeout.read == 7  # sevDesk's own setting wins
    finally:
        billbee.close()
        sevdesk.close()
        runtime.ledger.close()
    monkeypatch.setenv("LEDGERLINK_HTTP_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="LEDGERLINK_HTTP_TIMEOUT"):
        Runtime(config)
