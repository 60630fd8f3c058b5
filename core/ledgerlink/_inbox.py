"""The inbox source (plugin name ``inbox``): documents a host application sends over HTTP.

``ledgerlink serve`` stores each posted document in the ``inbox`` table of the
service's database (the same database as the ledger) *before* it answers 202; the
inbox source then lists them to the engine like any other source lists its
documents, so they go through the same runner, ledger and crash protocol as `run`.

- The host's document id is the idempotency key (``source_ref``): the same id with
  the same body is the same document (nothing new is stored); a changed body under
  the same id replaces the stored one and lists it again, so the engine reports a
  document already transferred as "changed after transfer" and never sends it twice.
- Each inbox (one pipeline of one tenant) numbers its documents in the order their
  writes commit (``seq``); the cursor is that number, so a listing never passes a
  document that had not committed yet.

The connection's settings name the database (``database``) and the inbox (``inbox``);
the service writes them, a config file may name them too (to read a service's inbox
with the CLI).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from ._connectors import BrokenDocument, Settings, Source, SourceItem
from ._hookspecs import hookimpl
from ._records import Customer, Document
from ._schema import create_tables

CURSOR_WIDTH = 12


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Tables:
    """The inbox table on its own metadata: the ledger's schema version is not touched
    (the table is created where it is missing, on SQLite and PostgreSQL alike)."""

    def __init__(self) -> None:
        from sqlalchemy import (
            Column,
            DateTime,
            Integer,
            MetaData,
            String,
            Table,
            Text,
            UniqueConstraint,
        )

        self.metadata = MetaData()
        self.inbox = Table(
            "inbox", self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("inbox", String(300), nullable=False, index=True),
            Column("source_ref", String(300), nullable=False),
            Column("seq", Integer, nullable=False),
            Column("body", Text, nullable=False),
            Column("body_hash", String(64), nullable=False),
            Column("received_at", DateTime(timezone=True), nullable=False),
            Column("changed_at", DateTime(timezone=True), nullable=False),
            UniqueConstraint("inbox", "source_ref", name="uq_inbox_ref"),
            UniqueConstraint("inbox", "seq", name="uq_inbox_seq"),
        )


_TABLES: _Tables | None = None
_ENGINES: dict[str, Any] = {}
_GUARD = threading.Lock()


def tables() -> _Tables:
    global _TABLES
    with _GUARD:
        if _TABLES is None:
            _TABLES = _Tables()
        return _TABLES


def engine_for(url: str) -> Any:
    """One engine per database URL in this process, with the inbox table created."""
    with _GUARD:
        engine = _ENGINES.get(url)
    if engine is not None:
        return engine
    from sqlalchemy import create_engine, event

    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        event.listen(engine, "connect", pragmas)
    create_tables(engine, tables().metadata)
    with _GUARD:
        return _ENGINES.setdefault(url, engine)


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class InboxStore:
    """The documents of one inbox, in the service's database."""

    def __init__(self, url: str, inbox: str) -> None:
        self.url = url
        self.inbox = inbox
        self.engine = engine_for(url)
        self.table = tables().inbox

    def put(self, source_ref: str, body: dict[str, Any]) -> str:
        """Store a document durably: "new", "same" (the same body is there) or "changed"
        (a new body under the same id, listed again). Safe under concurrent calls."""
        from sqlalchemy import func, select
        from sqlalchemy.exc import IntegrityError

        t = self.table
        digest = body_hash(body)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        for _ in range(50):
            existing = self._row(source_ref)
            now = _utcnow()
            try:
                with self.engine.begin() as conn:
                    self._serialize(conn)
                    next_seq = select(func.coalesce(func.max(t.c.seq), 0) + 1).where(
                        t.c.inbox == self.inbox).scalar_subquery()
                    if existing is None:
                        conn.execute(t.insert().values(inbox=self.inbox, source_ref=source_ref, seq=next_seq,
                                                       body=text, body_hash=digest, received_at=now, changed_at=now))
                        return "new"
                    if existing["body_hash"] == digest:
                        return "same"
                    updated = conn.execute(t.update().where(
                        t.c.id == existing["id"], t.c.body_hash == existing["body_hash"]).values(
                        body=text, body_hash=digest, seq=next_seq, changed_at=now))
                    if updated.rowcount == 1:
                        return "changed"
            except IntegrityError:
                pass  # a concurrent write of the same id or the same number: read again
        raise RuntimeError(f"the inbox {self.inbox!r} could not store {source_ref!r} (too much contention)")

    def _serialize(self, conn: Any) -> None:
        """Writes to one inbox commit one after another, so their numbers are in commit
        order (PostgreSQL: a transaction advisory lock; SQLite serialises writers itself)."""
        if conn.dialect.name == "postgresql":
            from sqlalchemy import text

            key = int.from_bytes(hashlib.sha256(f"inbox:{self.inbox}".encode()).digest()[:8], "big", signed=True)
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def _row(self, source_ref: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            found = conn.execute(select(t).where(t.c.inbox == self.inbox, t.c.source_ref == source_ref)).first()
        return None if found is None else dict(found._mapping)

    def get(self, source_ref: str) -> dict[str, Any] | None:
        row = self._row(source_ref)
        return None if row is None else json.loads(row["body"])

    def rows(self, since: int = 0) -> Iterator[dict[str, Any]]:
        from sqlalchemy import select

        t = self.table
        last = since
        while True:
            with self.engine.connect() as conn:
                page = [dict(r._mapping) for r in conn.execute(
                    select(t).where(t.c.inbox == self.inbox, t.c.seq > last).order_by(t.c.seq).limit(500))]
            if not page:
                return
            yield from page
            last = page[-1]["seq"]

    def delete_all(self) -> int:
        t = self.table
        with self.engine.begin() as conn:
            return int(conn.execute(t.delete().where(t.c.inbox == self.inbox)).rowcount or 0)


def cursor_of(seq: int) -> str:
    return str(seq).zfill(CURSOR_WIDTH)


def to_item(row: dict[str, Any]) -> SourceItem:
    try:
        document = Document.model_validate_json(row["body"])
    except ValueError as exc:  # stored before a change of the record model: say what is wrong
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"])
        return BrokenDocument(row["source_ref"], f"the document is invalid: {where}: {first['msg']}",
                              cursor=cursor_of(row["seq"]))
    document.cursor = cursor_of(row["seq"])
    return document


class InboxSettings(Settings):
    database: str = Field(description="SQLAlchemy URL of the database that holds the inbox (the service's ledger)")
    inbox: str = Field(min_length=1, description="the inbox's name in it (the service: TENANT:PIPELINE)")


class InboxSource(Source):
    """Documents posted to ``ledgerlink serve`` (``POST .../pipelines/{p}/documents``)."""

    Settings = InboxSettings
    description = "documents a host application posts to ledgerlink serve"

    @property
    def store(self) -> InboxStore:
        return InboxStore(self.settings.database, self.settings.inbox)

    def check(self) -> str:
        count = sum(1 for _ in self.store.rows())
        return f"inbox {self.settings.inbox!r}: {count} documents received"

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        start = int(since) if since and since.isdigit() else 0
        for row in self.store.rows(start):
            yield to_item(row)

    def document(self, source_ref: str) -> Document | None:
        row = self.store._row(source_ref)
        if row is None:
            return None
        item = to_item(row)
        return item if isinstance(item, Document) else None

    def customers(self) -> Iterator[Customer]:
        """The customers of the documents received (the newest record of each)."""
        seen: dict[str, Customer] = {}
        for row in self.store.rows():
            item = to_item(row)
            if isinstance(item, Document):
                seen[item.customer.source_id] = item.customer
        yield from seen.values()


@hookimpl
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    """A built-in plugin (``_plugins.BUILTIN_PLUGINS``), registered through the same hook as any other."""
    register("inbox", InboxSource)


__all__ = ["InboxSettings", "InboxSource", "InboxStore"]
