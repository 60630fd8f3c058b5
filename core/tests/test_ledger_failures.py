"""Every ledger and file failure is one line that names the path or URL and says what to
do, with exit 2, and leaves nothing half-written (issue 22). The bad-input corpus of the
ledger's surroundings, next to test_ledger_files.py (files that are there but are no
ledger):

| situation | expected line |
|---|---|
| PostgreSQL on a dead port | "cannot reach the PostgreSQL ledger at URL: the connection was refused" |
| PostgreSQL refuses the password | "the PostgreSQL ledger at URL (password hidden) refused the login (password authentication failed ...)" |
| PostgreSQL without the database | "the database 'x' does not exist; create it (createdb x)" |
| the ledger's folder is missing | "the folder F does not exist; create it or give another path for the ledger" |
| a read-only folder, new ledger | "no permission to create the ledger in F" |
| a read-only folder, existing ledger | "this user cannot write in the folder F (SQLite keeps the ledger's -wal and -shm files beside it)" |
| a read-only ledger file | "the ledger file is read-only for this user" |
| disk full while making the ledger | "the disk is full ... while making the new ledger ... (nothing was made)"; no file left |
| disk full during a run | "the disk is full ... while writing the ledger"; the ledger as it was |
| `--log-file` / `audit -o` into a missing folder | "the folder F does not exist; create it or give another path for the log file / audit export" |
| `--log-file` / `audit -o` naming a folder | "F is a folder, not a log file / audit export" |

Disk full is real: the command runs in a process whose file size limit (RLIMIT_FSIZE) is
a few kB, so SQLite's writes fail as they do on a full disk. Read-only folders are
real too: as root, the command runs without the capabilities that let root write
anywhere (setpriv), else as the user it is.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ledgerlink._ledger import Ledger
from ledgerlink.testing import fake_config, fake_store, invoke_cli, sample_document

from .pg import postgres_url

SETPRIV = shutil.which("setpriv")
WITHOUT_ROOT_POWERS = [SETPRIV or "setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def line(self) -> str:
        assert "Traceback" not in self.stdout + self.stderr, self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


def cli_process(args: list[str], cwd: Path, *, file_size_limit: int | None = None,
                unprivileged: bool = False, env: dict[str, str] | None = None) -> Ran:
    """The real CLI in a process of its own: with a file size limit (a full disk), or
    without the powers that let root write into read-only folders."""
    prefix: list[str] = []
    if unprivileged and os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("running as root without setpriv: a read-only folder cannot be made for this user")
        prefix = WITHOUT_ROOT_POWERS

    def limit() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    full_env = {**os.environ, "LEDGERLINK_FAKE_PLUGINS": "1", **(env or {})}
    done = subprocess.run([*prefix, sys.executable, "-m", "ledgerlink._cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)
    return Ran(done.returncode, done.stdout, done.stderr)


def in_process(args: list[str], env: dict[str, str] | None = None) -> Ran:
    result = invoke_cli(args, env)
    return Ran(result.exit_code, result.output, result.stderr)


def write_config(folder: Path, ledger: str, **options: object) -> Path:
    path = folder / "ledgerlink.toml"
    path.write_text(fake_config(ledger=ledger, **options))
    return path


def documents_file(folder: Path, count: int = 3) -> None:
    import json

    documents = [json.loads(sample_document(n).model_dump_json()) for n in range(1, count + 1)]
    (folder / "documents.json").write_text(json.dumps({"documents": documents}))


def listing(folder: Path) -> dict[str, bytes | str]:
    return {p.name: ("dir" if p.is_dir() else p.read_bytes()) for p in sorted(folder.iterdir())}


# -- PostgreSQL ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_postgresql_on_a_dead_port(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(tmp_path, f"postgresql+psycopg://ll@127.0.0.1:{port}/ledger")
    for command in (["run"], ["status"], ["audit"]):
        ran = in_process(["-c", str(cfg), *command])
        assert ran.code == 2
        assert ran.line() == (f"error: cannot reach the PostgreSQL ledger at postgresql+psycopg://ll@127.0.0.1:{port}"
                              "/ledger: the connection was refused; start PostgreSQL, or fix the host and port in "
                              "ledger.url")


class PostgresRefusingPasswords:
    """Speaks just enough of PostgreSQL's protocol to ask for a password and refuse it,
    as a server with md5/scram authentication does for a wrong one (SQLSTATE 28P01)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.passwords: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._login(conn)
                except (OSError, struct.error):
                    continue

    def _login(self, conn: socket.socket) -> None:
        while True:
            length, code = struct.unpack("!ii", _read(conn, 8))
            if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: "not here"
                conn.sendall(b"N")
                continue
            _read(conn, length - 8)  # the startup message
            break
        conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind, length = struct.unpack("!ci", _read(conn, 5))
        self.passwords.append(_read(conn, length - 4).rstrip(b"\0"))
        fields = b'SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user "ll"\0\0'
        conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)

    def close(self) -> None:
        self.sock.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


@pytest.fixture
def refusing_postgres() -> Iterator[PostgresRefusingPasswords]:
    server = PostgresRefusingPasswords()
    yield server
    server.close()


def test_postgresql_refusing_the_password(tmp_path: Path, refusing_postgres: PostgresRefusingPasswords) -> None:
    password = "wrong-pw-5c81e0"
    url = f"postgresql+psycopg://ll:{password}@127.0.0.1:{refusing_postgres.port}/ledger"
    cfg = tmp_path / "ledgerlink.toml"
    cfg.write_text(fake_config(ledger="${LL_TEST_LEDGER_URL}"))
    ran = in_process(["-c", str(cfg), "run"], env={"LL_TEST_LEDGER_URL": url})
    assert ran.code == 2
    assert ran.line() == (f"error: the PostgreSQL ledger at postgresql+psycopg://ll:***@127.0.0.1:"
                          f"{refusing_postgres.port}/ledger refused the login (password authentication failed for "
                          'user "ll"); check the user and the password of ledger.url (the environment variable or '
                          "file it names)")
    assert password.encode() in refusing_postgres.passwords  # it was really asked for and sent
    assert password not in ran.stdout + ran.stderr


@pytest.mark.postgres
def test_postgresql_without_the_database(tmp_path: Path) -> None:
    server = postgres_url(None)
    cfg = write_config(tmp_path, f"{server}/ledgerlink_no_such_db_22")
    ran = in_process(["-c", str(cfg), "status"])
    assert ran.code == 2
    assert ran.line() == ("error: the PostgreSQL ledger at postgresql+psycopg://postgres@127.0.0.1:5432/"
                          "ledgerlink_no_such_db_22: the database 'ledgerlink_no_such_db_22' does not exist; create "
                          "it (createdb ledgerlink_no_such_db_22) or fix the database name in ledger.url")


# -- SQLite: folders and files ---------------------------------------------------------------
def test_the_ledgers_folder_is_missing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "sqlite:///state/ledger.db")
    for command in (["run"], ["status"], ["audit"]):
        ran = in_process(["-c", str(cfg), *command])
        assert ran.code == 2
        assert ran.line() == (f"error: {tmp_path}/state/ledger.db: the folder {tmp_path}/state does not exist; "
                              "create it or give another path for the ledger")
    assert listing(tmp_path) == {"ledgerlink.toml": cfg.read_bytes()}


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    made: list[Path] = []

    def make(path: Path) -> None:
        path.chmod(0o555 if path.is_dir() else 0o444)
        made.append(path)

    yield make
    for path in made:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_folder_for_a_new_ledger(tmp_path: Path, read_only: Callable[[Path], None]) -> None:
    (tmp_path / "state").mkdir()
    cfg = write_config(tmp_path, "sqlite:///state/ledger.db")
    read_only(tmp_path / "state")
    ran = cli_process(["-c", str(cfg), "run"], tmp_path, unprivileged=True)
    assert ran.code == 2
    assert ran.line() == (f"error: {tmp_path}/state/ledger.db: no permission to create the ledger in "
                          f"{tmp_path}/state; let this user write in that folder or give another path")
    assert list((tmp_path / "state").iterdir()) == []


def test_a_read_only_folder_of_an_existing_ledger(tmp_path: Path, read_only: Callable[[Path], None]) -> None:
    (tmp_path / "state").mkdir()
    cfg = write_config(tmp_path, "sqlite:///state/ledger.db", source_file="../documents.json")
    Ledger(f"sqlite:///{tmp_path / 'state' / 'ledger.db'}").close()
    documents_file(tmp_path)
    before = listing(tmp_path / "state")
    read_only(tmp_path / "state")
    ran = cli_process(["-c", str(cfg), "run"], tmp_path, unprivileged=True)
    assert ran.code == 2
    assert ran.line() == (f"error: {tmp_path}/state/ledger.db: this user cannot write in the folder {tmp_path}/state "
                          "(SQLite keeps the ledger's -wal and -shm files beside it); let it write there, or move "
                          "the ledger to a folder it can write")
    assert listing(tmp_path / "state") == before


def test_a_read_only_ledger_file(tmp_path: Path, read_only: Callable[[Path], None]) -> None:
    cfg = write_config(tmp_path, "sqlite:///ledger.db", source_file="documents.json")
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").close()
    documents_file(tmp_path)
    read_only(tmp_path / "ledger.db")
    before = (tmp_path / "ledger.db").read_bytes()
    for command in (["run"], ["status"]):
        ran = cli_process(["-c", str(cfg), *command], tmp_path, unprivileged=True)
        assert ran.code == 2
        assert ran.line() == (f"error: {tmp_path}/ledger.db: the ledger file is read-only for this user; let it read "
                              "and write the file (chmod/chown)")
    assert (tmp_path / "ledger.db").read_bytes() == before


# -- a full disk -----------------------------------------------------------------------------
def test_disk_full_while_making_the_ledger_leaves_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "sqlite:///ledger.db", source_file="documents.json")
    documents_file(tmp_path)
    before = listing(tmp_path)
    ran = cli_process(["-c", str(cfg), "run"], tmp_path, file_size_limit=16 * 1024)
    assert ran.code == 2
    assert ran.line() == (f"error: {tmp_path}/ledger.db: the disk is full (or failing) while making the new ledger; "
                          "free some space and run the command again (nothing was made)")
    assert listing(tmp_path) == before  # no ledger, no half of one, no temporary file
    # with space again, the same command makes the ledger and transfers
    ran = cli_process(["-c", str(cfg), "run"], tmp_path)
    assert ran.code == 0, ran.stderr
    assert Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").counts() == {"pushed": 3}


def test_disk_full_during_a_run_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "sqlite:///ledger.db", source_file="documents.json")
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").close()
    documents_file(tmp_path)
    ran = cli_process(["-c", str(cfg), "run"], tmp_path, file_size_limit=4096)
    assert ran.code == 2
    assert ran.line() == (f"error: {tmp_path}/ledger.db: the disk is full (or failing) while writing the ledger; "
                          "free some space and run the command again (each write is all or nothing: nothing was "
                          "half-written)")
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)
    ran = cli_process(["-c", str(cfg), "run"], tmp_path)
    assert ran.code == 0, ran.stderr


# -- the log file and the audit export --------------------------------------------------------
@pytest.mark.parametrize(("args", "what"), [(["--log-file", "{path}", "status"], "log file"),
                                            (["audit", "-o", "{path}"], "audit export")],
                         ids=["log-file", "audit-o"])
def test_a_log_file_or_export_into_a_missing_folder_or_onto_a_folder(tmp_path: Path, args: list[str],
                                                                     what: str) -> None:
    cfg = write_config(tmp_path, "sqlite:///ledger.db")
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    missing = tmp_path / "no-such-folder" / "out.txt"
    ran = in_process(["-c", str(cfg), *[a.format(path=missing) for a in args]])
    assert ran.code == 2
    assert ran.line() == (f"error: {missing}: the folder {missing.parent} does not exist; create it or give another "
                          f"path for the {what}")
    (tmp_path / "a-folder").mkdir()
    ran = in_process(["-c", str(cfg), *[a.format(path=tmp_path / "a-folder") for a in args]])
    assert ran.code == 2
    assert ran.line() == f"error: {tmp_path}/a-folder is a folder, not a {what}; give the path of a file"
    assert not missing.parent.exists()
