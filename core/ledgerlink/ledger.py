"""The ledger: ledgerlink's memory and its promise.

Every source document ends in the target exactly once, or here with the reason
it did not. Tables:

- ``documents``: one row per (pipeline, source ref): state (pending, pushed,
  skipped, failed, quarantined), target ref, content hash, the canonical document
  as pushed, attempts, last error, status in the target, changes after transfer;
- ``customer_links``: source customer <-> target contact, per target connection
  (so pipelines into the same target share them), how it was matched;
- ``cursors`` and ``runs`` (with counts);
- ``audit``: append-only, every write to a target (time, document, target ref,
  payload hash, outcome), exportable as CSV;
- ``status_history``: every status change seen by status sync.

SQLite (WAL) by default, PostgreSQL by URL. The schema is versioned; older
ledgers are migrated forward on open (``MIGRATIONS``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import UniqueConstraint, event, func, inspect, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

SCHEMA_VERSION = 3

STATES = ("pending", "pushed", "skipped", "failed", "quarantined")


def utcnow() -> datetime:
    return datetime.now(UTC)


class DocumentRow(SQLModel, table=True):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("pipeline", "source_ref", name="uq_documents_pipeline_ref"),)
    id: int | None = Field(default=None, primary_key=True)
    pipeline: str = Field(index=True)
    source_ref: str = Field(index=True)
    number: str | None = None
    state: str = Field(index=True)
    reason: str | None = None
    target_id: str | None = None
    target_number: str | None = None
    content_hash: str | None = None
    payload: str | None = None
    customer_source_id: str | None = None
    attempts: int = 0
    payment_state: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    pushed_at: datetime | None = None
    # added in schema version 2
    status: str | None = None
    status_raw: str | None = None
    status_at: datetime | None = None
    changed: str | None = None
    # added in schema version 3
    retryable: bool | None = None
    """A failure that may go away by itself (network, rate limit, interruption): `run` retries it."""


class CustomerLink(SQLModel, table=True):
    __tablename__ = "customer_links"
    __table_args__ = (
        UniqueConstraint("target_connection", "source_connection", "source_customer_id", name="uq_customer_links"),
    )
    id: int | None = Field(default=None, primary_key=True)
    target_connection: str = Field(index=True)
    source_connection: str = Field(index=True)
    source_customer_id: str = Field(index=True)
    state: str = "linked"  # pending (a create was sent) | linked
    key: str | None = None
    target_contact_id: str | None = None
    target_customer_number: str | None = None
    matched_by: str | None = None
    manual: bool = False
    writeback: str | None = None  # None | pending | done | error: ...
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CursorRow(SQLModel, table=True):
    __tablename__ = "cursors"
    pipeline: str = Field(primary_key=True)
    value: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    id: int | None = Field(default=None, primary_key=True)
    pipeline: str = Field(index=True)
    command: str = "run"
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    outcome: str | None = None
    counts: str = "{}"


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    pipeline: str
    target_connection: str
    source_ref: str | None = None
    action: str
    target_ref: str | None = None
    payload_hash: str | None = None
    outcome: str


class StatusHistoryRow(SQLModel, table=True):
    __tablename__ = "status_history"
    id: int | None = Field(default=None, primary_key=True)
    pipeline: str = Field(index=True)
    source_ref: str = Field(index=True)
    at: datetime = Field(default_factory=utcnow)
    old: str | None = None
    new: str
    raw: str
    written_back: str | None = None


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    id: int = Field(default=1, primary_key=True)
    version: int


# Each step moves a ledger from version N-1 to N. Portable SQL (SQLite and PostgreSQL).
MIGRATIONS: dict[int, list[str]] = {
    2: [
        "ALTER TABLE documents ADD COLUMN status VARCHAR",
        "ALTER TABLE documents ADD COLUMN status_raw VARCHAR",
        "ALTER TABLE documents ADD COLUMN status_at TIMESTAMP",
        "ALTER TABLE documents ADD COLUMN changed VARCHAR",
        "CREATE TABLE status_history (id INTEGER NOT NULL PRIMARY KEY, pipeline VARCHAR NOT NULL,"
        " source_ref VARCHAR NOT NULL, at TIMESTAMP NOT NULL, old VARCHAR, new VARCHAR NOT NULL,"
        " raw VARCHAR NOT NULL, written_back VARCHAR)",
        "CREATE INDEX ix_status_history_pipeline ON status_history (pipeline)",
        "CREATE INDEX ix_status_history_source_ref ON status_history (source_ref)",
    ],
    3: ["ALTER TABLE documents ADD COLUMN retryable BOOLEAN"],
}


def payload_hash(payload: Any) -> str:
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload, sort_keys=True, default=str)
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


class Ledger:
    """Access to the ledger database. Thread-safe: one short session per call."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrate()

    # -- schema ----------------------------------------------------------------
    def _migrate(self) -> None:
        existing = set(inspect(self.engine).get_table_names())
        if "documents" not in existing:
            SQLModel.metadata.create_all(self.engine)
            with Session(self.engine) as session:
                if session.get(SchemaVersion, 1) is None:
                    session.add(SchemaVersion(id=1, version=SCHEMA_VERSION))
                    session.commit()
            return
        SQLModel.metadata.create_all(self.engine, tables=[SchemaVersion.__table__])  # type: ignore[list-item]
        with Session(self.engine) as session:
            row = session.get(SchemaVersion, 1)
            version = row.version if row else 1
            if version > SCHEMA_VERSION:
                from .errors import ConfigError

                raise ConfigError(
                    f"the ledger has schema version {version}, newer than this ledgerlink ({SCHEMA_VERSION}); upgrade ledgerlink"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    session.exec(text(statement))  # type: ignore[call-overload]
                if row is None:
                    row = SchemaVersion(id=1, version=step)
                    session.add(row)
                else:
                    row.version = step
                session.commit()

    @property
    def schema_version(self) -> int:
        with Session(self.engine) as session:
            row = session.get(SchemaVersion, 1)
            return row.version if row else 1

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- documents ---------------------------------------------------------------
    def document(self, pipeline: str, source_ref: str) -> DocumentRow | None:
        with self.session() as session:
            return session.exec(
                select(DocumentRow).where(DocumentRow.pipeline == pipeline, DocumentRow.source_ref == source_ref)
            ).first()

    def documents(self, pipeline: str | None = None, states: list[str] | None = None) -> list[DocumentRow]:
        with self.session() as session:
            query = select(DocumentRow)
            if pipeline:
                query = query.where(DocumentRow.pipeline == pipeline)
            if states:
                query = query.where(DocumentRow.state.in_(states))  # type: ignore[attr-defined]
            return list(session.exec(query.order_by(DocumentRow.id)))

    def save_document(self, row: DocumentRow, *, cursor: tuple[str, str] | None = None,
                      audit: AuditRow | None = None) -> DocumentRow:
        """Write one document's state (and the cursor, and an audit entry) in one commit."""
        row.updated_at = utcnow()
        with self.session() as session:
            session.add(row)
            if cursor is not None:
                self._set_cursor(session, *cursor)
            if audit is not None:
                session.add(audit)
            session.commit()
            # No refresh: every column has a Python-side default and the flush set
            # the id, so reading the row back only cost a SELECT per save.
            return row

    def counts(self, pipeline: str | None = None) -> dict[str, int]:
        with self.session() as session:
            query = select(DocumentRow.state, func.count()).group_by(DocumentRow.state)
            if pipeline:
                query = query.where(DocumentRow.pipeline == pipeline)
            return {state: count for state, count in session.exec(query)}

    # -- cursors -----------------------------------------------------------------
    def cursor(self, pipeline: str) -> str | None:
        with self.session() as session:
            row = session.get(CursorRow, pipeline)
            return row.value if row else None

    def set_cursor(self, pipeline: str, value: str) -> None:
        with self.session() as session:
            self._set_cursor(session, pipeline, value)
            session.commit()

    @staticmethod
    def _set_cursor(session: Session, pipeline: str, value: str) -> None:
        # One UPDATE (no SELECT first); the row is added when there was none.
        changed = session.exec(
            update(CursorRow)
            .where(CursorRow.pipeline == pipeline)  # type: ignore[arg-type]
            .values(value=value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if not changed.rowcount:
            session.add(CursorRow(pipeline=pipeline, value=value))

    # -- customer links ------------------------------------------------------------
    def link(self, target_connection: str, source_connection: str, source_customer_id: str) -> CustomerLink | None:
        with self.session() as session:
            return session.exec(
                select(CustomerLink).where(
                    CustomerLink.target_connection == target_connection,
                    CustomerLink.source_connection == source_connection,
                    CustomerLink.source_customer_id == source_customer_id,
                )
            ).first()

    def links(self, target_connection: str | None = None, state: str | None = None) -> list[CustomerLink]:
        with self.session() as session:
            query = select(CustomerLink)
            if target_connection:
                query = query.where(CustomerLink.target_connection == target_connection)
            if state:
                query = query.where(CustomerLink.state == state)
            return list(session.exec(query.order_by(CustomerLink.id)))

    def save_link(self, link: CustomerLink, audit: AuditRow | None = None) -> CustomerLink:
        link.updated_at = utcnow()
        with self.session() as session:
            session.add(link)
            if audit is not None:
                session.add(audit)
            session.commit()
            return link  # not refreshed: see save_document

    def delete_link(self, link: CustomerLink) -> None:
        with self.session() as session:
            row = session.get(CustomerLink, link.id)
            if row is not None:
                session.delete(row)
                session.commit()

    # -- runs and audit --------------------------------------------------------------
    def start_run(self, pipeline: str, command: str) -> RunRow:
        with self.session() as session:
            run = RunRow(pipeline=pipeline, command=command)
            session.add(run)
            session.commit()
            session.refresh(run)
            return run

    def finish_run(self, run: RunRow, counts: dict[str, int], outcome: str) -> None:
        with self.session() as session:
            run.finished_at = utcnow()
            run.counts = json.dumps(counts, sort_keys=True)
            run.outcome = outcome
            session.add(run)
            session.commit()

    def runs(self, pipeline: str | None = None) -> list[RunRow]:
        with self.session() as session:
            query = select(RunRow)
            if pipeline:
                query = query.where(RunRow.pipeline == pipeline)
            return list(session.exec(query.order_by(RunRow.id)))

    def add_audit(self, entry: AuditRow) -> None:
        with self.session() as session:
            session.add(entry)
            session.commit()

    def audit(self, pipeline: str | None = None) -> list[AuditRow]:
        with self.session() as session:
            query = select(AuditRow)
            if pipeline:
                query = query.where(AuditRow.pipeline == pipeline)
            return list(session.exec(query.order_by(AuditRow.id)))

    def audit_csv(self, pipeline: str | None = None) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "at", "pipeline", "target_connection", "source_ref", "action", "target_ref", "payload_hash", "outcome"])
        for row in self.audit(pipeline):
            writer.writerow([row.id, row.at.isoformat(), row.pipeline, row.target_connection, row.source_ref,
                             row.action, row.target_ref, row.payload_hash, row.outcome])
        return out.getvalue()

    # -- statuses --------------------------------------------------------------------
    def record_status(self, row: DocumentRow, new: str, raw: str) -> StatusHistoryRow:
        with self.session() as session:
            history = StatusHistoryRow(pipeline=row.pipeline, source_ref=row.source_ref, old=row.status, new=new, raw=raw)
            row.status, row.status_raw, row.status_at = new, raw, utcnow()
            session.add(row)
            session.add(history)
            session.commit()
            session.refresh(history)
            return history

    def mark_written_back(self, history: StatusHistoryRow, outcome: str) -> None:
        with self.session() as session:
            history.written_back = outcome
            session.add(history)
            session.commit()

    def status_history(self, pipeline: str | None = None, source_ref: str | None = None) -> list[StatusHistoryRow]:
        with self.session() as session:
            query = select(StatusHistoryRow)
            if pipeline:
                query = query.where(StatusHistoryRow.pipeline == pipeline)
            if source_ref:
                query = query.where(StatusHistoryRow.source_ref == source_ref)
            return list(session.exec(query.order_by(StatusHistoryRow.id)))

    def iter_table(self, name: str) -> Iterator[dict[str, Any]]:
        """Every row of a table as a dict (for exports and the secrets test)."""
        with self.engine.connect() as conn:
            for row in conn.execute(text(f"SELECT * FROM {name}")):  # noqa: S608 - internal names only
                yield dict(row._mapping)

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL with synchronous=NORMAL survives a killed process (not a power cut
    # between checkpoints); that is the crash the protocol is built for.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()
