"""A dead vendor stops the run after a few documents (issue 16, the circuit breaker).

Billbee (a sandbox process with 30 orders) to a sevDesk that does not answer (a closed
port on loopback), with the connection's default retry budget, as an operator would
meet it. The run ends after three documents, names the vendor and what is left, and
the next run, with sevDesk back, transfers all 30 exactly once.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import (  # noqa: E402
    SandboxProcess,
    billbee_orders,
    check_exactly_once,
    duplicates,
    run_cli,
    write_config,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_sevdesk_over_30_documents_ends_within_a_minute(tmp_path: Path) -> None:
    orders = billbee_orders(30, seed=3, customers=10, existing_contacts=5)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed)
    try:
        billbee.start()
        dead = f"http://127.0.0.1:{closed_port()}/api/v1"
        config = write_config(tmp_path, billbee.url, dead)
        started = time.monotonic()
        result = run_cli(config, "run", timeout=300)
        elapsed = time.monotonic() - started
        print(f"\na dead sevDesk over 30 documents: the run ended after {elapsed:.1f} s (exit {result.returncode})")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        last = result.stdout.strip().splitlines()[-1]
        # The first failure is reading the sevDesk client (the ledger's account check),
        # then two documents: three failures in a row for sevDesk's reasons.
        assert last.startswith("shop-to-books: 2 failed; stopped: sevDesk GET http://127.0.0.1:"), last
        assert "could not connect" in last
        assert ("stopped after 3 failures in a row for the vendor's reasons: 28 documents not tried and 2 "
                "failed ones left for the next run") in last
        assert elapsed < 60, f"a dead vendor kept the run busy for {elapsed:.0f} s"

        sevdesk.start()  # the vendor is back
        config = write_config(tmp_path, billbee.url, sevdesk.url, requests_per_second=1000)
        again = run_cli(config, "run", timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        state = sevdesk.state()
        assert not duplicates(state)
        verdict = check_exactly_once(orders, state, f"sqlite:///{tmp_path / 'ledger.db'}")
        assert not verdict.problems, "\n".join(verdict.problems[:20])
    finally:
        billbee.kill()
        sevdesk.kill()
