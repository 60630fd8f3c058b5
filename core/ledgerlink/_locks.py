"""One command per pipeline at a time: the pipeline lock.

Two commands working on one pipeline at once can double a document: the first one's
slow create is still on its way when the second asks the target, finds nothing and
writes it again. Every command that writes for a pipeline (``run``, ``retry``,
``backfill``, ``watch``, ``sync-status``, ``match-customers``, ``serve``, the API)
holds its lock while it works on it:

- SQLite: an exclusive ``flock`` on a file next to the ledger
  (``ledger.db.<pipeline>.lock``);
- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection kept
  open while the lock is held.

Both are released by the operating system or the server when the holder dies (a
SIGKILL included), so a dead holder's lock is simply free: there is nothing stale to
break. Who holds it (pid, host, command, since) is written to the ledger's
``pipeline_locks`` table, for the one line a second command prints.

The lock is re-entrant within one thread (a command that calls another operation on
the same pipeline), and exclusive between threads and processes.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlmodel import Field, Session, SQLModel

from ._errors import LedgerlinkError
from ._ledger import Ledger, _table, utcnow
from ._schema import create_tables

POLL_SECONDS = 0.2


class PipelineLockRow(SQLModel, table=True):
    __tablename__ = "pipeline_locks"
    pipeline: str = Field(primary_key=True)
    pid: int
    host: str
    command: str
    since: datetime = Field(default_factory=utcnow)


class PipelineBusy(LedgerlinkError):
    """Another command works on the pipeline (exit 75: try again later)."""

    def __init__(self, message: str, *, pipeline: str) -> None:
        super().__init__(message)
        self.pipeline = pipeline


def advisory_key(pipeline: str) -> int:
    """The PostgreSQL advisory lock key of a pipeline (signed 64 bits)."""
    return int.from_bytes(hashlib.sha256(f"ledgerlink pipeline {pipeline}".encode()).digest()[:8], "big",
                          signed=True)


class PipelineLocks:
    """The pipeline locks of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        create_tables(ledger.engine, SQLModel.metadata, [_table(PipelineLockRow)])
        url = ledger.url
        self._dir: Path | None = None
        self._db_name = ""
        if url.startswith("sqlite"):
            database = ledger.engine.url.database
            if database and database != ":memory:":
                path = Path(database).resolve()
                self._dir, self._db_name = path.parent, path.name
        self._postgres = ledger.engine.dialect.name == "postgresql"
        self._held: dict[str, tuple[int, int]] = {}  # pipeline -> (thread id, depth)
        self._guard = threading.Lock()
        self._local: dict[str, threading.Lock] = {}  # in-memory ledgers: this process only

    @contextmanager
    def hold(self, pipeline: str, command: str, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the pipeline's lock for the block; ``PipelineBusy`` if another command
        holds it longer than ``wait`` seconds."""
        me = threading.get_ident()
        with self._guard:
            holder = self._held.get(pipeline)
            if holder is not None and holder[0] == me:
                self._held[pipeline] = (me, holder[1] + 1)
                reentered = True
            else:
                reentered = False
        if reentered:
            try:
                yield
            finally:
                with self._guard:
                    thread, depth = self._held[pipeline]
                    self._held[pipeline] = (thread, depth - 1)
            return
        release = self._acquire(pipeline, command, wait)
        with self._guard:
            self._held[pipeline] = (me, 1)
        try:
            self._record(pipeline, command)
            yield
        finally:
            with self._guard:
                self._held.pop(pipeline, None)
            release()

    # -- acquiring -----------------------------------------------------------------------
    def _acquire(self, pipeline: str, command: str, wait: float) -> Any:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            release = self._try(pipeline)
            if release is not None:
                return release
            if time.monotonic() >= deadline:
                raise PipelineBusy(self._busy_line(pipeline, command, wait), pipeline=pipeline)
            time.sleep(POLL_SECONDS)

    def _try(self, pipeline: str) -> Any:
        if self._postgres:
            return self._try_postgres(pipeline)
        if self._dir is not None:
            return self._try_file(pipeline)
        return self._try_local(pipeline)

    def _try_file(self, pipeline: str) -> Any:
        import fcntl

        assert self._dir is not None
        path = self._dir / f"{self._db_name}.{pipeline}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        handle: IO[bytes] = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None

        def release() -> None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            finally:
                handle.close()
        return release

    def _try_postgres(self, pipeline: str) -> Any:
        connection = self.ledger.engine.connect()
        key = advisory_key(pipeline)
        try:
            got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            connection.commit()
        except Exception:
            connection.close()
            raise
        if not got:
            connection.close()
            return None

        def release() -> None:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
            finally:
                connection.close()
        return release

    def _try_local(self, pipeline: str) -> Any:
        with self._guard:
            lock = self._local.setdefault(pipeline, threading.Lock())
        if not lock.acquire(blocking=False):
            return None
        return lock.release

    # -- who holds it --------------------------------------------------------------------
    def _record(self, pipeline: str, command: str) -> None:
        with Session(self.ledger.engine) as session:
            row = session.get(PipelineLockRow, pipeline)
            if row is None:
                row = PipelineLockRow(pipeline=pipeline, pid=os.getpid(), host=socket.gethostname(), command=command)
            else:
                row.pid, row.host, row.command, row.since = os.getpid(), socket.gethostname(), command, utcnow()
            session.add(row)
            session.commit()

    def holder(self, pipeline: str) -> PipelineLockRow | None:
        with Session(self.ledger.engine, expire_on_commit=False) as session:
            return session.get(PipelineLockRow, pipeline)

    def _busy_line(self, pipeline: str, command: str, wait: float) -> str:
        row = self.holder(pipeline)
        who = "another command"
        if row is not None:
            since = row.since.strftime("%Y-%m-%d %H:%M:%S UTC")
            who = f"`{row.command}` (pid {row.pid} on {row.host}, since {since})"
        waited = f" after waiting {wait:g} s" if wait > 0 else ""
        return (f"pipeline {pipeline!r} is busy: {who} works on it{waited}; `{command}` did nothing. "
                "Try again when it is done, or give --wait SECONDS")


__all__ = ["PipelineBusy", "PipelineLockRow", "PipelineLocks", "advisory_key"]
