"""One command per pipeline at a time (issue 16): the pipeline lock on both ledgers.

The lock is the operating system's (flock next to a SQLite ledger) or the server's
(a PostgreSQL advisory lock), so a holder killed with SIGKILL leaves nothing behind;
these tests prove it with real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from ledgerlink._ledger import Ledger
from ledgerlink._locks import PipelineBusy, PipelineLocks
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document

from .pg import postgres_url

PG_DATABASE = "ledgerlink_locks"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return postgres_url(PG_DATABASE)


def pipeline_name(request: pytest.FixtureRequest) -> str:
    """A pipeline name of this test alone (the PostgreSQL database is shared)."""
    return "p-" + str(abs(hash(request.node.nodeid)) % 10**8)


def test_a_second_holder_is_refused_with_who_holds_it(ledger_url: str, request: pytest.FixtureRequest) -> None:
    name = pipeline_name(request)
    first, second = PipelineLocks(Ledger(ledger_url)), PipelineLocks(Ledger(ledger_url))
    with first.hold(name, "run"):
        errors: list[BaseException] = []

        def other() -> None:
            try:
                with second.hold(name, "retry"):
                    pass
            except PipelineBusy as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        [busy] = errors
        text = str(busy)
        assert text.startswith(f"pipeline {name!r} is busy: `run` (pid {os.getpid()} on ")
        assert "; `retry` did nothing. Try again when it is done, or give --wait SECONDS" in text
        with first.hold(name, "sync-status"):  # re-entrant in the holding thread
            pass
    with second.hold(name, "retry"):  # free again
        pass


def test_a_waiting_command_gets_the_lock_when_it_is_released(ledger_url: str, request: pytest.FixtureRequest) -> None:
    name = pipeline_name(request)
    first, second = PipelineLocks(Ledger(ledger_url)), PipelineLocks(Ledger(ledger_url))
    got: list[float] = []
    with first.hold(name, "run"):
        def other() -> None:
            with second.hold(name, "watch", wait=30):
                got.append(time.monotonic())

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        assert got == []  # still waiting
        released = time.monotonic()
    thread.join(timeout=30)
    assert got and got[0] >= released


HOLDER = textwrap.dedent("""
    import sys, time
    from ledgerlink._ledger import Ledger
    from ledgerlink._locks import PipelineLocks
    with PipelineLocks(Ledger(sys.argv[1])).hold(sys.argv[2], "run"):
        print("holding", flush=True)
        time.sleep(600)
""")


def test_a_holder_killed_with_sigkill_leaves_the_lock_free(ledger_url: str, request: pytest.FixtureRequest) -> None:
    name = pipeline_name(request)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, ledger_url, name], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        locks = PipelineLocks(Ledger(ledger_url))
        with pytest.raises(PipelineBusy, match=rf"`run` \(pid {holder.pid} on "):
            with locks.hold(name, "run"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with locks.hold(name, "run", wait=10):  # taken over: the holder is gone
            assert locks.holder(name).pid == os.getpid()
    finally:
        if holder.poll() is None:
            holder.kill()




def test_run_exits_75_naming_the_holder_and_waits_with_wait(ledger_url: str, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    name = pipeline_name(request)
    cfg = tmp_path / "ledgerlink.toml"
    cfg.write_text(fake_config(ledger=ledger_url, pipeline=name))
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, ledger_url, name], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        for command in (["run"], ["retry"], ["sync-status"], ["backfill", "-p", name, "--id", "order-1"],
                        ["match-customers"]):
            result = invoke_cli(["-c", str(cfg), *command])
            assert result.exit_code == 75, (command, result.output)
            [line] = result.stderr.strip().splitlines() or result.output.strip().splitlines()[-1:]
            assert f"`run` (pid {holder.pid} on " in line, (command, line)
        assert fake_store("books")["pushed"] == {}
        threading.Timer(1.0, holder.kill).start()
        waited = invoke_cli(["-c", str(cfg), "run", "--wait", "30"])
        assert waited.exit_code == 0, waited.output
        assert list(fake_store("books")["pushed"]) == ["order-1"]
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=10)


def test_a_dry_run_needs_no_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cfg = tmp_path / "ledgerlink.toml"
    cfg.write_text(fake_config(ledger=url))
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    with PipelineLocks(Ledger(url)).hold("p", "run"):
        thread_result: list[int] = []
        thread = threading.Thread(target=lambda: thread_result.append(
            invoke_cli(["-c", str(cfg), "run", "--dry-run"]).exit_code))
        thread.start()
        thread.join()
    assert thread_result == [0]


def test_the_lock_file_is_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with PipelineLocks(Ledger(url)).hold("p", "run"):
        mode = (tmp_path / "ledger.db.p.lock").stat().st_mode & 0o777
    assert mode == 0o600


SLOW_WATCH = textwrap.dedent("""
    import sys, time
    from ledgerlink._fakes import FakeTarget

    def slow_push(self, document, plan):
        print("pushing", flush=True)  # the watch holds the pipeline's lock now
        time.sleep(600)

    FakeTarget.push = slow_push
    from ledgerlink._cli import main
    main(sys.argv[1:])
""")


def test_a_second_command_names_watch_as_the_holder(ledger_url: str, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    """`watch` holds the lock as `watch` (it called the runner with the default name `run`)."""
    import json

    name = pipeline_name(request)
    documents = [json.loads(sample_document(1).model_dump_json())]
    (tmp_path / "documents.json").write_text(json.dumps({"documents": documents}))
    cfg = tmp_path / "ledgerlink.toml"
    cfg.write_text(fake_config(ledger=ledger_url, pipeline=name, source_file="documents.json"))
    watch = subprocess.Popen([sys.executable, "-c", SLOW_WATCH, "-c", str(cfg), "watch", "--rounds", "1"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "LEDGERLINK_FAKE_PLUGINS": "1"})
    try:
        assert watch.stdout is not None and watch.stdout.readline().strip() == "pushing", watch.stderr
        for command in (["run"], ["sync-status"]):
            result = invoke_cli(["-c", str(cfg), *command])
            assert result.exit_code == 75, (command, result.output)
            [line] = result.stderr.strip().splitlines() or result.output.strip().splitlines()[-1:]
            assert f"is busy: `watch` (pid {watch.pid} on " in line, (command, line)
    finally:
        watch.kill()
        watch.wait(timeout=10)
