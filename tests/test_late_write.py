"""A write whose answer never came is not repeated too soon (issue 16).

The sevDesk sandbox finishes every write only after the client has given up on it
(``rate_late``: it begins processing 1.5 s after the request, the client's timeout is
1 s). Asking sevDesk at once would find nothing and write the voucher a second time,
just before the first one lands. ledgerlink keeps such a document pending and asks
only after twice the write timeout: the late voucher is found and adopted, and a
later run (sevDesk answering in time again) finishes every document exactly once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import (  # noqa: E402
    SandboxProcess,
    billbee_orders,
    check_exactly_once,
    duplicates,
    run_cli,
    write_config,
)

pytestmark = pytest.mark.slow


def test_a_write_finished_after_the_client_gave_up_is_adopted_not_doubled(tmp_path: Path) -> None:
    orders = billbee_orders(3, seed=31, customers=3, existing_contacts=3)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed)
    try:
        billbee.start()
        sevdesk.start()
        config = write_config(tmp_path, billbee.url, sevdesk.url, requests_per_second=1000, timeout=1, retries=2,
                              backoff=0.05)
        sevdesk.post("/__sandbox__/faults", {"rate_late": 1.0, "late_seconds": 1.5})
        late = run_cli(config, "run", timeout=600)
        assert "Traceback" not in late.stderr, late.stderr[-3000:]
        assert "asking the target in 2 s whether it arrived" in late.stderr, late.stderr[-3000:]
        requests = sevdesk.requests()
        assert any(r.get("fault") == "late" for r in requests)
        state = sevdesk.state()
        assert not duplicates(state), duplicates(state)  # asking at once would have written them twice
        assert len(state["vouchers"]) <= 3

        sevdesk.post("/__sandbox__/faults", {"rate_late": 0.0})
        for _ in range(3):
            done = run_cli(config, "run", timeout=600)
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stdout + done.stderr
        state = sevdesk.state()
        assert not duplicates(state)
        verdict = check_exactly_once(orders, state, f"sqlite:///{tmp_path / 'ledger.db'}")
        assert not verdict.problems, "\n".join(verdict.problems[:20])
    finally:
        billbee.kill()
        sevdesk.kill()
