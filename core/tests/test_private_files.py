"""Files that hold customer data or secrets are private from the moment they exist
(issue 22): mode 0600, folders 0700, under the usual umask 022. Each file is made the
way a command makes it (the CLI in-process, the ledger, the webhook secret, a sandbox's
state, the demo's secrets), and a file written whole replaces the old one in one step."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledgerlink._files import write_private
from ledgerlink._ledger import Ledger
from ledgerlink._sandbox import Sandbox
from ledgerlink._webhooks import load_secret
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_ledger_and_its_wal_and_shm_files_are_private(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger.start_run("p", "run")  # a write: SQLite makes the -wal and -shm files
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["ledger.db", "ledger.db-shm", "ledger.db-wal"]  # no leftover of the making
        assert {name: mode(tmp_path / name) for name in files} == dict.fromkeys(files, 0o600)
    finally:
        ledger.close()


def test_a_rollback_journal_gets_the_ledgers_mode(tmp_path: Path) -> None:
    """SQLite gives a -journal file the database file's mode; a ledger opened in rollback
    mode by another tool (sqlite3 shell, a backup) keeps it private too."""
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").close()
    conn = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO cursors (pipeline, value, updated_at) VALUES ('p', 'x', '2026-01-01')")
        assert mode(tmp_path / "ledger.db-journal") == 0o600
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_the_ledger_the_log_file_and_an_audit_export_of_a_cli_run_are_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ledgerlink.toml").write_text(fake_config())
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    result = invoke_cli(["run", "--log-file", "run.log", "-v"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run.log").read_text()  # the log has lines (documents named)
    result = invoke_cli(["audit", "-o", "audit.csv"])
    assert result.exit_code == 0, result.stderr
    assert "order-1" in (tmp_path / "audit.csv").read_text()
    made = {name: mode(tmp_path / name) for name in ("ledger.db", "run.log", "audit.csv", "ledger.db.p.lock")}
    assert made == dict.fromkeys(made, 0o600)
    # an export over an older one replaces it whole, private as well
    (tmp_path / "old.csv").write_text("old")
    os.chmod(tmp_path / "old.csv", 0o644)
    assert invoke_cli(["audit", "-o", "old.csv"]).exit_code == 0
    assert mode(tmp_path / "old.csv") == 0o600 and "order-1" in (tmp_path / "old.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary files left


def test_the_webhook_secret_file_is_private_from_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real_replace = os.replace

    def watching(src: str, dst: str) -> None:  # the file as it is before it gets its name
        seen.append(mode(Path(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching)
    secret = load_secret(tmp_path / "secret")
    assert seen == [0o600]
    assert mode(tmp_path / "secret") == 0o600
    assert load_secret(tmp_path / "secret") == secret  # read again, not made anew


def test_a_sandbox_state_file_is_private(tmp_path: Path) -> None:
    sandbox = Sandbox(state_path=tmp_path / "state.json")
    sandbox.state["customers"] = {"1": {"email": "anna@example.org"}}
    sandbox.save()
    assert mode(tmp_path / "state.json") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_demo_secrets_folder_and_files_are_private(tmp_path: Path) -> None:
    from ledgerlink._demo import _secrets_to_files
    from ledgerlink._files import make_private_dir

    folder = tmp_path / "demo-run" / "secrets"
    make_private_dir(folder)
    settings = _secrets_to_files({"api_key": "${DEMO_KEY}"}, {"DEMO_KEY": "demo-secret-1"}, folder)
    assert settings == {"api_key": {"file": "secrets/demo_key"}}
    assert (mode(tmp_path / "demo-run"), mode(folder), mode(folder / "demo_key")) == (0o700, 0o700, 0o600)


def test_write_private_leaves_the_old_file_when_it_cannot_write(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "audit.csv"
    write_private(target, "old export\n")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    from ledgerlink._files import FileError

    with pytest.raises(FileError, match=r"audit.csv: the disk is full .* free some space"):
        write_private(target, "new export\n")
    assert target.read_text() == "old export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["audit.csv"]
