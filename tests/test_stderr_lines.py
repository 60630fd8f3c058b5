"""What a person (or a log collector) reads on stderr while the vendor throttles.

The sevDesk sandbox (its own process, real loopback HTTP) answers 429 with a
Retry-After above 2 requests per second per token; the connection sends as fast as
it may. Each back-off used to appear twice on stderr: as the reporter's ``wait:``
line and as the HTTP client's log warning. Now a person reads it once; a log file
keeps the warning; and with ``--log-json`` every stderr line is a JSON object, the
waits included, so a collector reads stderr whole.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import SandboxProcess, billbee_orders, run_cli, write_config  # noqa: E402

pytestmark = pytest.mark.slow


def back_offs(lines: list[str]) -> Counter[str]:
    """How often each back-off message appears ("sevDesk POST URL: HTTP 429 ...; waiting 1.0 s
    (Retry-After), attempt 2 of 9"; documents share messages)."""
    return Counter(line[line.index("sevDesk "):] for line in lines if "(Retry-After), attempt" in line)


def test_a_back_off_is_one_line_and_log_json_makes_every_stderr_line_json(tmp_path: Path) -> None:
    orders = billbee_orders(3, seed=5, customers=3, existing_contacts=0)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed, faults={"requests_per_second": 2})
    try:
        billbee.start()
        sevdesk.start()
        config = write_config(tmp_path, billbee.url, sevdesk.url, requests_per_second=1000, retries=8,
                              backoff=0.05)
        plain = run_cli(config, "run", "--log-file", str(tmp_path / "run.log"))
        assert plain.returncode == 0, plain.stderr[-3000:]
        lines = plain.stderr.splitlines()
        told = back_offs(lines)
        assert told, "the sandbox never throttled: nothing was tested\n" + plain.stderr[-2000:]
        assert not [line for line in lines if line.startswith("WARNING ledgerlink._http")], plain.stderr[-2000:]
        assert all(line.startswith("wait: ") for line in lines if "(Retry-After), attempt" in line)
        logged = back_offs((tmp_path / "run.log").read_text().splitlines())
        assert logged == told  # each back-off once on stderr, as often as the log file has it

        # A second ledger (a new machine, say): every document is looked up before its push,
        # adopted where it is, through the same throttle, now with --log-json.
        other = tmp_path / "other"
        other.mkdir()
        config = write_config(other, billbee.url, sevdesk.url, requests_per_second=1000, retries=8, backoff=0.05)
        as_json = run_cli(config, "run", "--log-json")
        assert as_json.returncode == 0, as_json.stderr[-3000:]
        entries = []
        for line in as_json.stderr.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"a stderr line that is not JSON under --log-json: {line!r}") from None
        assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
        told = back_offs([e["message"] for e in entries])
        assert told, "the sandbox never throttled the second run\n" + as_json.stderr[-2000:]
        assert not [e for e in entries if e["logger"] == "ledgerlink._http"]  # shown once, as the wait line
        waits = [e for e in entries if "(Retry-After), attempt" in e["message"]]
        assert {(e["logger"], e["level"]) for e in waits} == {("ledgerlink.cli", "warning")}
        assert "adopted" in as_json.stdout or "pushed" in as_json.stdout
    finally:
        billbee.kill()
        sevdesk.kill()
