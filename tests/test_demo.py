"""The demo, as a user runs it: `ledgerlink demo` twice, through real loopback HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run_demo(workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgerlink._cli", "demo", "--dir", str(workdir)],
                          capture_output=True, text=True, timeout=300)


def test_demo_transfers_every_valid_order_once_and_nothing_the_second_time(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    first = run_demo(workdir)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert "Transferred: 46 documents" in first.stdout
    for reason in ("no invoice number", "before the start date", "order state confirmed not selected"):
        assert reason in first.stdout

    state = json.loads((workdir / "sevdesk-state.json").read_text())
    vouchers = state["vouchers"].values()
    numbers = Counter(v.get("voucherNumber") or v.get("description") for v in vouchers)
    assert len(numbers) == 46 and set(numbers.values()) == {1}

    second = run_demo(workdir)
    assert second.returncode == 0, second.stderr
    assert "Transferred: nothing new" in second.stdout
    again = json.loads((workdir / "sevdesk-state.json").read_text())
    assert len(again["vouchers"]) == 46

    status = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(workdir / "ledgerlink.toml"),
                             "status", "--json"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert Counter(r["state"] for r in rows) == {"pushed": 46, "skipped": 3}
    assert all(r["reason"] for r in rows if r["state"] == "skipped")
