"""Commands that overlap on one pipeline never double a document (issue 16).

Billbee and a slow sevDesk (every request 0.4 s late) run as sandbox processes; the
commands run as the CLI in subprocesses, as cron and a person would start them, on a
SQLite and on a PostgreSQL ledger. While one `run` works, a second `run`, `retry`,
`sync-status` and `watch` say who holds the pipeline and exit 75 (watch goes on);
a second `run --wait` waits for the first and then finds nothing left to do. In the
end every order is in sevDesk exactly once.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import (  # noqa: E402
    SandboxProcess,
    billbee_orders,
    check_exactly_once,
    cli_env,
    duplicates,
    postgres_database,
    run_cli,
    start_run,
    stop,
    write_config,
)

pytestmark = pytest.mark.slow
ORDERS = 12


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return postgres_database(f"ledgerlink_overlap_{secrets.token_hex(4)}")


def wait_until_running(ledger_url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the first run has started its work (its `runs` row exists)."""
    from ledgerlink._ledger import Ledger

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the first run ended before the second started"
        ledger = Ledger(ledger_url)
        try:
            with ledger.engine.connect() as conn:
                if conn.exec_driver_sql("SELECT count(*) FROM runs WHERE finished_at IS NULL").scalar():
                    return
        except Exception:  # noqa: BLE001 - the first run is still creating the schema
            pass
        finally:
            ledger.close()
        time.sleep(0.1)
    raise AssertionError("the first run did not start")


def test_overlapping_commands_on_one_pipeline_never_double(tmp_path: Path, ledger_url: str) -> None:
    orders = billbee_orders(ORDERS, seed=11, customers=8, existing_contacts=4)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed, faults={"latency": 0.4})
    first = second = None
    try:
        billbee.start()
        sevdesk.start()
        config = write_config(tmp_path, billbee.url, sevdesk.url, ledger_url=ledger_url, requests_per_second=1000)
        first = start_run(config, tmp_path / "first")
        wait_until_running(ledger_url, first)
        for command in (["run"], ["retry"], ["sync-status"]):
            result = run_cli(config, *command)
            assert first.poll() is None, "the first run ended too soon for this test"
            assert result.returncode == 75, (command, result.stdout, result.stderr)
            [line] = [x for x in (result.stdout + result.stderr).splitlines() if "busy" in x]  # one line
            assert f"pipeline 'shop-to-books' is busy: `run` (pid {first.pid} on " in line, line
        watch = run_cli(config, "watch", "--rounds", "1", "--interval", "1")
        assert "is busy: `run` (pid" in watch.stdout + watch.stderr
        # cron-style: the next one waits for the first, then finds nothing to do
        second = subprocess.Popen([sys.executable, "-m", "ledgerlink._cli", "-c", str(config), "run", "--wait",
                                   "300"], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert first.wait(timeout=300) == 0, (tmp_path / "first.err").read_text()
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, out + err
        assert out.strip().splitlines()[-1] == "shop-to-books: nothing new", out
        state = sevdesk.state()
        assert not duplicates(state)
        verdict = check_exactly_once(orders, state, ledger_url)
        assert not verdict.problems, "\n".join(verdict.problems[:20])
    finally:
        stop(first)
        if second is not None and second.poll() is None:
            second.kill()
        billbee.kill()
        sevdesk.kill()


def test_two_watches_never_work_at_once(tmp_path: Path, ledger_url: str) -> None:
    orders = billbee_orders(ORDERS, seed=12, customers=8, existing_contacts=4)
    billbee = SandboxProcess("billbee", tmp_path, seed=orders.answer)
    sevdesk = SandboxProcess("sevdesk", tmp_path, seed=orders.sevdesk_seed, faults={"latency": 0.1})
    watches: list[subprocess.Popen[str]] = []
    try:
        billbee.start()
        sevdesk.start()
        config = write_config(tmp_path, billbee.url, sevdesk.url, ledger_url=ledger_url, requests_per_second=1000)
        for _ in range(2):
            watches.append(subprocess.Popen(
                [sys.executable, "-m", "ledgerlink._cli", "-c", str(config), "watch", "--rounds", "3",
                 "--interval", "1"], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))
        outputs = [w.communicate(timeout=300) for w in watches]
        text = "\n".join(out + err for out, err in outputs)
        assert "Traceback" not in text, text[-3000:]
        state = sevdesk.state()
        assert not duplicates(state)
        verdict = check_exactly_once(orders, state, ledger_url)
        assert not verdict.problems, "\n".join(verdict.problems[:20])
    finally:
        for w in watches:
            if w.poll() is None:
                w.kill()
        billbee.kill()
        sevdesk.kill()
