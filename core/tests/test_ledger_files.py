"""A ledger file that is there but cannot be used is refused with one line and exit 2,
and never silently recreated (issue 16): a new ledger is made only where no file is."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from ledgerlink._ledger import SCHEMA_VERSION, Ledger
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document

CONFIG = fake_config()


def good_ledger(path: Path) -> None:
    Ledger(f"sqlite:///{path}").close()


def empty(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    ledger = Ledger(f"sqlite:///{path}")
    with ledger.engine.begin() as conn:  # some pages, then cut the file in half
        for n in range(300):
            conn.exec_driver_sql(f"INSERT INTO audit (at, pipeline, target_connection, action, outcome) "
                                 f"VALUES ('2026-01-01', 'p', 'books', 'push', '{'x' * 200}{n}')")
    ledger.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def other_program(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
        conn.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")


def newer_schema(path: Path) -> None:
    good_ledger(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))


def directory(path: Path) -> None:
    path.mkdir()


CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("empty", empty, "ledger.db is empty (0 bytes), not a ledger; a new ledger is made only where no file exists"),
    ("truncated", truncated, "ledger.db is cut short: "),
    ("random bytes", random_bytes, "ledger.db is not a SQLite database (damaged, or another kind of file)"),
    ("another program's SQLite", other_program,
     "ledger.db is a SQLite database of another program (tables moz_places), not a ledger"),
    ("a newer schema", newer_schema,
     f"the ledger has schema version {SCHEMA_VERSION + 1}, newer than this ledgerlink ({SCHEMA_VERSION})"),
    ("a directory", directory, "ledger.db is a directory, not a ledger file"),
]


@pytest.mark.parametrize(("make", "expected"), [(make, expected) for _, make, expected in CASES],
                         ids=[name for name, _, _ in CASES])
@pytest.mark.parametrize("command", [["run"], ["status"], ["audit"]])
def test_an_unusable_ledger_file_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        make: Callable[[Path], None], expected: str,
                                                        command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ledgerlink.toml").write_text(CONFIG)
    make(tmp_path / "ledger.db")
    before = _snapshot(tmp_path / "ledger.db")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    result = invoke_cli(["-c", str(tmp_path / "ledgerlink.toml"), *command])
    assert result.exit_code == 2, (result.output, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expected in line, line
    assert "Traceback" not in result.output + result.stderr
    assert _snapshot(tmp_path / "ledger.db") == before  # never recreated or changed
    assert fake_store("books")["pushed"] == {}


def _snapshot(path: Path) -> bytes | str:
    return "dir" if path.is_dir() else path.read_bytes()


def test_look_up_first_adopts_what_an_older_ledger_backup_does_not_know(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup from before order-2 was pushed: a plain run would push order-2 again;
    with --look-up-first it is found in the target and adopted."""
    monkeypatch.chdir(tmp_path)
    cfg = str(tmp_path / "ledgerlink.toml")
    (tmp_path / "ledgerlink.toml").write_text(CONFIG)
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    copy_db(tmp_path / "ledger.db", tmp_path / "backup.db")  # SQLite's online backup, as an operator's tool
    fake_store("shop")["documents"]["order-2"] = sample_document(2)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    copy_db(tmp_path / "backup.db", tmp_path / "ledger.db")
    result = invoke_cli(["-c", cfg, "run", "--look-up-first", "--json"])
    assert result.exit_code == 0, result.output
    [doc] = [d for d in result.json[0]["documents"] if d["source_ref"] == "order-2"]
    assert (doc["state"], doc["reason"]) == ("pushed", "found in the target: the ledger did not know it")
    assert [ref for action, ref, _ in fake_store("books")["writes"] if action == "push"] == ["order-1", "order-2"]


def copy_db(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
