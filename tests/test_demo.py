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


def _demo(name: str, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "demo", name, "--dir", str(workdir), *extra],
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_the_shipmondo_billy_demo_tells_the_seeds_story_and_doubles_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "shipmondo"
    first = _demo("shipmondo-billy", workdir)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    for step in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5."):
        assert step in out
    assert "Billy sandbox holds 22 invoices (0 approved)" in out  # drafts first
    assert "Payments: 18 booked on documents transferred before" in out  # after the bookkeeper approved them
    assert "1 payment_booked" in out  # the payment captured after transfer
    assert "shop-to-books: nothing new; outlet-to-books: nothing new" in out
    billy = json.loads((workdir / "billy-state.json").read_text())
    names = Counter(c["name"] for c in billy["contacts"].values())
    assert max(names.values()) == 1  # a customer of both shops is one contact
    numbers = Counter(i["invoiceNo"] for i in billy["invoices"].values())
    assert max(numbers.values()) == 1 and all(i["state"] == "approved" for i in billy["invoices"].values())
    again = _demo("shipmondo-billy", workdir)
    assert again.returncode == 0 and "nothing new; outlet-to-books: nothing new" in again.stdout
    assert json.loads((workdir / "billy-state.json").read_text())["invoices"] == billy["invoices"]


def test_the_onecrm_bilendo_demo_writes_each_status_into_1crm_once(tmp_path: Path) -> None:
    workdir = tmp_path / "onecrm"
    first = _demo("onecrm-bilendo", workdir)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    for wording in ("(written back: Versendet)", "(written back: Entwurf)", "(written back: Fällig)",
                    "(written back: Reminder 1 versendet)", "(written back: Bezahlt)"):
        assert wording in out
    assert "0 status changes" in out
    listed = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "demo", "--list"], capture_output=True,
                            text=True, timeout=60)
    assert {"billbee-sevdesk", "shipmondo-billy", "onecrm-bilendo"} <= {
        line.split(":")[0] for line in listed.stdout.splitlines()}
