"""A lost, damaged or foreign ledger doubles nothing (issue 16).

Billbee and sevDesk run as sandbox processes, the pipeline as the CLI. After a full
run the ledger is deleted (a new machine, a container without a volume): the next run
finds no record of writing to that sevDesk client, looks every order up before
pushing it, adopts all of them and writes nothing twice. A cut ledger is refused. A
ledger that wrote to one sevDesk client is refused against another.
"""

from __future__ import annotations

import copy
import sqlite3
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


def test_a_deleted_ledger_doubles_nothing_and_a_cut_one_is_refused(tmp_path: Path) -> None:
    orders = billbee_orders(20, seed=21, customers=8, existing_contacts=4)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed)
    db = tmp_path / "ledger.db"
    try:
        billbee.start()
        sevdesk.start()
        config = write_config(tmp_path, billbee.url, sevdesk.url, requests_per_second=1000)
        first = run_cli(config, "run")
        assert first.returncode == 0, first.stdout + first.stderr
        before = sevdesk.state()
        assert len(before["vouchers"]) == 20

        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        again = run_cli(config, "run", "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        import json

        [report] = json.loads(again.stdout)
        # Adopted, each once; its payments are asked about again (sevDesk books only what is
        # missing: nothing, as the booking log below shows).
        assert set(report["counts"]) <= {"pushed", "payment_booked"} and report["counts"]["pushed"] == 20
        assert {d["reason"] for d in report["documents"] if d["state"] == "pushed"} == {
            "found in the target: the ledger did not know it"}
        after = sevdesk.state()
        assert not duplicates(after)
        assert len(after["vouchers"]) == 20 and len(after["logs"]) == len(before["logs"])  # no payment twice
        verdict = check_exactly_once(orders, after, f"sqlite:///{db}")
        assert not verdict.problems, "\n".join(verdict.problems[:20])
        third = run_cli(config, "run")  # the ledger knows the account again: nothing to do
        assert third.returncode == 0 and third.stdout.strip().endswith("shop-to-books: nothing new"), third.stdout

        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
        cut = run_cli(config, "run")
        assert cut.returncode == 2
        [line] = cut.stderr.strip().splitlines()
        assert line.startswith(f"error: {db} is cut short: "), line
        assert len(sevdesk.state()["vouchers"]) == 20
    finally:
        billbee.kill()
        sevdesk.kill()


def test_a_ledger_of_another_sevdesk_client_is_refused(tmp_path: Path) -> None:
    from ledgerlink_sevdesk.sandbox import _check_accounts

    orders = billbee_orders(6, seed=22, customers=4, existing_contacts=2)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    first_client = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed)
    other_seed = copy.deepcopy(orders.sevdesk_seed)
    other_seed["CheckAccount"] = {"objects": [{**account, "sevClient": {"id": "4711", "objectName": "SevClient"}}
                                              for account in _check_accounts()]}
    (tmp_path / "other").mkdir()
    other_client = SandboxProcess("sevdesk", tmp_path / "other", seed=other_seed)
    try:
        billbee.start()
        first_client.start()
        other_client.start()
        config = write_config(tmp_path, billbee.url, first_client.url, requests_per_second=1000)
        assert run_cli(config, "run").returncode == 0
        config = write_config(tmp_path, billbee.url, other_client.url, requests_per_second=1000)
        refused = run_cli(config, "run")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        line = refused.stdout.strip().splitlines()[-1]
        assert ("the ledger's pipeline 'shop-to-books' wrote to sevdesk account client 1303847, but its target "
                "connection 'books' now opens sevdesk account client 4711") in line, line
        assert other_client.state().get("vouchers", {}) == {}
    finally:
        billbee.kill()
        first_client.kill()
        other_client.kill()
