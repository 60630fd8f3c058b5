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

The ledger owns the documents' state machine: the runner asks for a transition
(``mark_pending``, ``mark_pushed``, ``mark_failed``, ``mark_quarantined``,
``mark_skipped``, ``keep_pending``, ``mark_changed``, ``set_payment_state``) and the
ledger sets the row's fields and commits them, with the audit entry and the cursor,
in one transaction. ``TRANSITIONS`` lists what is allowed; anything else raises
:class:`TransitionError`. A cursor is never stored with a ``pending`` document.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, suppress
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    UniqueConstraint,
    event,
    func,
    inspect,
    or_,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.base import instance_state
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from ._changes import fingerprint
from ._errors import ConfigError
from ._records import Contact, Document, TargetRef
from ._schema import lock_schema
from ._states import DocumentState, LinkState, PaymentState

SCHEMA_VERSION = 7

STATES = tuple(DocumentState)

_S = DocumentState
TRANSITIONS: dict[DocumentState | None, frozenset[DocumentState]] = {
    None: frozenset({_S.PENDING, _S.SKIPPED, _S.FAILED, _S.QUARANTINED}),
    # pending -> pending: the target could not be asked whether the write arrived.
    _S.PENDING: frozenset({_S.PENDING, _S.PUSHED, _S.FAILED, _S.QUARANTINED}),
    # failed -> pushed: a push that failed on the way is found in the target after all.
    _S.FAILED: frozenset({_S.PENDING, _S.PUSHED, _S.FAILED, _S.QUARANTINED, _S.SKIPPED}),
    _S.QUARANTINED: frozenset({_S.PENDING, _S.FAILED, _S.QUARANTINED, _S.SKIPPED}),
    _S.SKIPPED: frozenset({_S.PENDING, _S.FAILED, _S.QUARANTINED, _S.SKIPPED}),
    # A pushed document stays pushed: changes after transfer, payments and statuses are
    # recorded on it; it is never pushed again.
    _S.PUSHED: frozenset({_S.PUSHED}),
}
"""From each state (None: a new row) the states a document may move to."""


class TransitionError(RuntimeError):
    """A state change the ledger's state machine does not allow (a bug, never user input)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """A stored time as UTC (SQLite hands back naive datetimes)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
    # added in schema version 4
    payments_booked: str | None = None
    """The sum of the document's payments booked in the target so far (a decimal, as text)."""
    # added in schema version 5
    reverses: str | None = Field(default=None, index=True)
    """For a credit note that cancels an earlier document: that document's source_ref."""
    # added in schema version 7
    exchange_rate: str | None = None
    """The exchange rate the target was given with the document (a decimal, as text; None:
    the book currency, or a ledger before version 7). A credit note that reverses it is
    written at this rate, so the two cancel out to the cent in the book currency."""


class CustomerLink(SQLModel, table=True):
    __tablename__ = "customer_links"
    __table_args__ = (
        UniqueConstraint("target_connection", "source_connection", "source_customer_id", name="uq_customer_links"),
    )
    id: int | None = Field(default=None, primary_key=True)
    target_connection: str = Field(index=True)
    source_connection: str = Field(index=True)
    source_customer_id: str = Field(index=True)
    state: str = LinkState.LINKED.value  # LinkState: pending (a create was sent) | linked
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


class TargetAccountRow(SQLModel, table=True):
    """The target account a pipeline has written to (see ``Target.account_id``). No row:
    the ledger has no record of writing for the pipeline (new, lost or replaced), so
    every document is looked up in the target before it is pushed."""

    __tablename__ = "target_accounts"
    pipeline: str = Field(primary_key=True)
    target_connection: str
    plugin: str
    account: str | None = None
    since: datetime = Field(default_factory=utcnow)


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


class BackoffRow(SQLModel, table=True):
    """A vendor asked a connection to wait (Retry-After) longer than a run waits: until
    then, runs leave the pipelines that use it alone (added in schema version 6)."""

    __tablename__ = "backoffs"
    connection: str = Field(primary_key=True)
    until: datetime
    reason: str
    since: datetime = Field(default_factory=utcnow)


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
    4: ["ALTER TABLE documents ADD COLUMN payments_booked VARCHAR"],
    5: ["ALTER TABLE documents ADD COLUMN reverses VARCHAR",
        "CREATE INDEX ix_documents_reverses ON documents (reverses)"],
    6: ["CREATE TABLE backoffs (connection VARCHAR NOT NULL PRIMARY KEY, until TIMESTAMP NOT NULL,"
        " reason VARCHAR NOT NULL, since TIMESTAMP NOT NULL)"],
    7: ["ALTER TABLE documents ADD COLUMN exchange_rate VARCHAR"],
}


def payload_hash(payload: Any) -> str:
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload, sort_keys=True, default=str)
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


# -- the hot paths ---------------------------------------------------------------------
# A run reads and writes a few rows per document: look the document up, look the
# customer's link up, write it pending, write it pushed with the cursor and an audit
# entry. Through the ORM session that cost ~2.3 ms per document (unit of work,
# identity map, attribute events), through prepared Core statements still ~0.8 ms.
# ``_Rows`` runs these few statements as plain SQL on the DBAPI connection, with
# SQLAlchemy's own type conversions for each column (so what it writes and reads is
# exactly what the ORM would), in ~0.3 ms (bench/bench_overhead.py, bench/README.md).
# The models stay the API: rows are read into DocumentRow / CustomerLink objects and
# written back by id; everything else in this module uses the ORM session.
def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


@cache
def _defaults(model: type[SQLModel]) -> list[tuple[str, Any, Any]]:
    """(name, default factory, default) of each field of a model."""
    return [(name, field.default_factory, None if field.default_factory else field.default)
            for name, field in model.model_fields.items()]


def _instance(model: type[SQLModel], values: dict[str, Any]) -> Any:
    """A model object made the way the ORM makes the rows it loads (no __init__):
    SQLModel's constructor costs ~80 µs for a document row, this ~5 µs."""
    manager = model._sa_class_manager  # type: ignore[attr-defined]
    if not manager.mapper.configured:  # done by the ORM's first use; these objects skip it
        configure_mappers()
    obj = manager.new_instance()
    obj.__dict__.update(values)
    return obj


def fresh(model: type[SQLModel], **values: Any) -> Any:
    """A new (not yet saved) row object with the model's defaults: ``DocumentRow(...)``
    for the engine's per-document paths, without the cost of SQLModel's constructor."""
    full = {name: (factory() if factory else default)
            for name, factory, default in _defaults(model) if name not in values}
    full.update(values)
    return _instance(model, full)


class LedgerRowGone(RuntimeError):
    """A row this process read was deleted by another one before it wrote it back."""


class _Rows:
    """The per-document statements of one engine (SQLite or PostgreSQL) as DBAPI SQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        # sqlite3 takes :name, psycopg %(name)s; both take a dict of parameters.
        self._sqlite = dialect.name == "sqlite"
        self._mark: Callable[[str], str] = (lambda name: f":{name}") if self._sqlite else (lambda name: f"%({name})s")
        self._binds: dict[str, dict[str, Any]] = {}
        self._result_of: dict[str, dict[str, Any]] = {}  # every column, in the table's order
        for model in (DocumentRow, CustomerLink, AuditRow, StatusHistoryRow, CursorRow):
            table = _table(model)
            types = {c.name: c.type.dialect_impl(dialect) for c in table.columns}
            self._binds[table.name] = {n: t.bind_processor(dialect) for n, t in types.items()}
            self._result_of[table.name] = {n: t.result_processor(dialect, None) for n, t in types.items()}
        self._sql: dict[Any, str] = {}

    def _columns(self, table: str) -> list[str]:
        """The columns an insert or update writes: all but the generated id."""
        return [name for name in self._result_of[table] if name != "id"]

    # SQL text, made once per table and set of columns
    def _insert_sql(self, table: str) -> str:
        sql = self._sql.get(("insert", table))
        if sql is None:
            names = self._columns(table)
            # PostgreSQL hands a new id back by RETURNING; SQLite by lastrowid
            # (RETURNING needs SQLite 3.35, newer than some systems' Python links).
            returning = " RETURNING id" if not self._sqlite and "id" in self._result_of[table] else ""
            sql = self._sql[("insert", table)] = (
                f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 - table and column names are ours
                f"VALUES ({', '.join(self._mark(n) for n in names)}){returning}"
            )
        return sql

    def _update_sql(self, table: str, names: tuple[str, ...], key: str = "id") -> str:
        sql = self._sql.get(("update", table, names, key))
        if sql is None:
            sets = ", ".join(f"{n} = {self._mark(n)}" for n in names)
            sql = self._sql[("update", table, names, key)] = (
                f"UPDATE {table} SET {sets} WHERE {key} = {self._mark('b_key')}"  # noqa: S608
            )
        return sql

    def _bind(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        binds = self._binds[table]
        out = {}
        for name, value in values.items():
            process = binds.get(name)
            out[name] = process(value) if process is not None and value is not None else value
        return out

    # reading
    def _fetch_one(self, table: str, names: tuple[str, ...], where: dict[str, Any]) -> dict[str, Any] | None:
        """The named columns of the first row matching ``where``, converted as the ORM would."""
        key = ("select", table, names, tuple(where))
        sql = self._sql.get(key)
        if sql is None:
            condition = " AND ".join(f"{k} = {self._mark(k)}" for k in where)
            sql = self._sql[key] = f"SELECT {', '.join(names)} FROM {table} WHERE {condition}"  # noqa: S608
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql, where)
            found = cursor.fetchone()
            cursor.close()
        finally:
            raw.close()
        if found is None:
            return None
        results = self._result_of[table]
        return {n: value if results[n] is None or value is None else results[n](value)
                for n, value in zip(names, found, strict=True)}

    def one(self, model: Any, **where: Any) -> Any:
        """The first row matching ``where`` as a model object (as the ORM loads it)."""
        table = _table(model).name
        found = self._fetch_one(table, tuple(self._result_of[table]), where)
        return None if found is None else _instance(model, found)

    def values(self, model: Any, names: tuple[str, ...], **where: Any) -> tuple[Any, ...] | None:
        """Some columns of the first matching row, converted, without building the row."""
        found = self._fetch_one(_table(model).name, names, where)
        return None if found is None else tuple(found.values())

    # writing: ``transaction`` yields a cursor; everything in it is one commit
    def transaction(self) -> _Transaction:
        return _Transaction(self.engine.raw_connection())

    def write(self, cursor: Any, obj: Any) -> int | None:
        """Insert (no id yet) or update (by id) one model object; return the new id, if any.

        An update writes only the columns changed since the object was read or last
        saved (SQLAlchemy's attribute history), so marking a document pushed does not
        rewrite its stored payload. Call ``saved`` after the commit: a failed
        transaction must leave the object as it was (no id, changes still pending)."""
        table = _table(type(obj)).name
        if obj.id is None:
            values = {name: getattr(obj, name) for name in self._columns(table)}
            cursor.execute(self._insert_sql(table), self._bind(table, values))
            return int(cursor.lastrowid if self._sqlite else cursor.fetchone()[0])
        state = instance_state(obj)
        names = [n for n in self._columns(table) if n in state.committed_state or n == "updated_at"]
        if not names:
            return None
        values = self._bind(table, {n: getattr(obj, n) for n in names})
        values["b_key"] = obj.id
        cursor.execute(self._update_sql(table, tuple(names)), values)
        if cursor.rowcount != 1:
            raise LedgerRowGone(f"ledger row {table}.id={obj.id} was deleted by another process meanwhile")
        return None

    def set_cursor(self, cursor: Any, pipeline: str, value: str) -> None:
        # One UPDATE (no SELECT first); the row is added when there was none.
        values = self._bind("cursors", {"value": value, "updated_at": utcnow()})
        values["b_key"] = pipeline
        cursor.execute(self._update_sql("cursors", ("value", "updated_at"), key="pipeline"), values)
        if cursor.rowcount != 1:
            values["pipeline"] = values.pop("b_key")
            cursor.execute(self._insert_sql("cursors"), values)

    def delete(self, cursor: Any, obj: Any) -> None:
        cursor.execute(f"DELETE FROM {_table(type(obj)).name} WHERE id = {self._mark('b_key')}",  # noqa: S608
                       {"b_key": obj.id})

    @staticmethod
    def saved(obj: Any, new_id: int | None = None) -> None:
        """After the commit: the object now matches its row (no pending changes)."""
        if new_id is not None:
            obj.id = new_id
        state = instance_state(obj)
        state._commit_all(state.dict)  # what the ORM does after a flush; there is no public bulk form


class _Transaction:
    """A DBAPI connection from the engine's pool: commit on success, roll back on error."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def __enter__(self) -> Any:
        self.cursor = self.raw.cursor()
        return self.cursor

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self.cursor.close()
            if exc_type is None:
                self.raw.commit()
            else:
                self.raw.rollback()
        finally:
            self.raw.close()  # back to the pool


class Ledger:
    """Access to the ledger database. Thread-safe: every call takes its own connection from
    the pool (an ORM session, or for the per-document paths the DBAPI connection)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        path = sqlite_path(url)
        if path is not None:
            check_ledger_file(path)
            if not path.exists():
                _create_sqlite_ledger(url, path, echo=echo)
        self.engine: Engine = _engine(url, echo=echo)
        try:
            _migrate(self.engine)
        except DatabaseError as exc:
            self.engine.dispose()
            raise LedgerFileError(describe_ledger_failure(url, exc)) from None
        except LedgerFileError:
            self.engine.dispose()
            raise
        self._rows = _Rows(self.engine)

    # -- schema ----------------------------------------------------------------
    def _migrate(self) -> None:
        _migrate(self.engine)

    @property
    def schema_version(self) -> int:
        with Session(self.engine) as session:
            row = session.get(SchemaVersion, 1)
            return row.version if row else 1

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def _save(self, *objects: Any, cursor: tuple[str, str] | None = None) -> None:
        """Write rows (None is skipped) and a pipeline's cursor in one commit; after the
        commit the objects carry their ids and no pending changes."""
        rows = self._rows
        objects = tuple(obj for obj in objects if obj is not None)
        with rows.transaction() as db:
            new_ids = [rows.write(db, obj) for obj in objects]
            if cursor is not None:
                rows.set_cursor(db, *cursor)
        for obj, new_id in zip(objects, new_ids, strict=True):
            rows.saved(obj, new_id)

    # -- documents ---------------------------------------------------------------
    def document(self, pipeline: str, source_ref: str) -> DocumentRow | None:
        return self._rows.one(DocumentRow, pipeline=pipeline, source_ref=source_ref)  # type: ignore[no-any-return]

    def target_account(self, pipeline: str) -> TargetAccountRow | None:
        with self.session() as session:
            return session.get(TargetAccountRow, pipeline)

    def remember_target_account(self, pipeline: str, connection: str, plugin: str, account: str | None) -> None:
        with self.session() as session:
            row = session.get(TargetAccountRow, pipeline)
            if row is None:
                session.add(TargetAccountRow(pipeline=pipeline, target_connection=connection, plugin=plugin,
                                             account=account))
            elif row.account is None and account is not None:
                row.account = account
                session.add(row)
            session.commit()

    def reversal_of(self, pipeline: str, source_ref: str) -> DocumentRow | None:
        """The credit note written (or being written) to cancel ``source_ref``: pushed
        first, else pending, else any other state; None when there is none."""
        with self.session() as session:
            rows = list(session.exec(select(DocumentRow).where(DocumentRow.pipeline == pipeline,
                                                               DocumentRow.reverses == source_ref)))
        order = [DocumentState.PUSHED.value, DocumentState.PENDING.value]
        rows.sort(key=lambda row: order.index(row.state) if row.state in order else len(order))
        return rows[0] if rows else None

    def documents(self, pipeline: str | None = None, states: Sequence[str] | None = None) -> list[DocumentRow]:
        with self.session() as session:
            query = select(DocumentRow)
            if pipeline:
                query = query.where(DocumentRow.pipeline == pipeline)
            if states:
                query = query.where(DocumentRow.state.in_(states))  # type: ignore[attr-defined]
            return list(session.exec(query.order_by(col(DocumentRow.id))))

    def save_document(self, row: DocumentRow, *, cursor: tuple[str, str] | None = None,
                      audit: AuditRow | None = None) -> DocumentRow:
        """Write one document's state (and the cursor, and an audit entry) in one commit."""
        row.updated_at = utcnow()
        self._save(row, audit, cursor=cursor)
        return row

    # -- the documents' state machine ---------------------------------------------
    def _transition(self, row: DocumentRow | None, pipeline: str, source_ref: str, to: DocumentState, *,
                    cursor: tuple[str, str] | None = None, audit: AuditRow | None = None,
                    document: Document | None = None, **fields: Any) -> DocumentRow:
        if row is None:
            row = fresh(DocumentRow, pipeline=pipeline, source_ref=source_ref, state=to.value)
            current: DocumentState | None = None
        else:
            current = DocumentState(row.state)
        if to not in TRANSITIONS[current]:
            raise TransitionError(f"document {source_ref!r} of pipeline {pipeline!r} cannot go from "
                                  f"{current or 'new'} to {to}")
        if cursor is not None and to == DocumentState.PENDING:
            raise TransitionError(f"the cursor must not pass the pending document {source_ref!r}")
        row.state = to.value
        if document is not None:
            row.payload = document.model_dump_json()
            row.content_hash = payload_hash(fingerprint(document))
            row.customer_source_id = document.customer.source_id
            row.reverses = document.reverses
        for name, value in fields.items():
            setattr(row, name, value)
        return self.save_document(row, cursor=cursor, audit=audit)

    def mark_pending(self, row: DocumentRow | None, pipeline: str, document: Document, *,
                     exchange_rate: Decimal | None = None) -> DocumentRow:
        """The intent, committed before the target is called: it is found again by
        ``find_document(source_ref)`` whatever happens next. ``exchange_rate``: the rate
        the target is given (None: the book currency)."""
        return self._transition(row, pipeline, document.source_ref, DocumentState.PENDING,
                                document=document, reason=None, number=document.number,
                                attempts=(row.attempts if row else 0) + 1, payment_state=None,
                                exchange_rate=None if exchange_rate is None else str(exchange_rate))

    def mark_pushed(self, row: DocumentRow, ref: TargetRef, *, note: str | None,
                    cursor: tuple[str, str] | None = None, audit: AuditRow | None = None,
                    payment_booked: bool | None = None, paid: Decimal | None = None,
                    payment_waiting: bool = False) -> DocumentRow:
        """In the target, with its reference. ``payment_booked``: True records the
        payments (``paid`` in all) as booked, False clears that, None leaves it.
        ``payment_waiting``: the target took the document but not yet its payments (a
        draft): they are tried again on every run (``retry``) until booked."""
        fields: dict[str, Any] = {"reason": note, "target_id": ref.target_id, "target_number": ref.number,
                                  "pushed_at": utcnow(), "retryable": None}
        if payment_booked is not None:
            fields["payment_state"] = PaymentState.BOOKED.value if payment_booked else None
            fields["payments_booked"] = str(paid) if payment_booked and paid is not None else None
        if payment_waiting:
            fields["payment_state"] = PaymentState.RETRY.value
            fields["payments_booked"] = None
        return self._transition(row, row.pipeline, row.source_ref, DocumentState.PUSHED, cursor=cursor,
                                audit=audit, **fields)

    def mark_failed(self, row: DocumentRow | None, pipeline: str, source_ref: str, reason: str, *,
                    retryable: bool, number: str | None = None, document: Document | None = None,
                    cursor: tuple[str, str] | None = None, audit: AuditRow | None = None) -> DocumentRow:
        """Not transferred; ``retryable``: it may go away by itself, so ``run`` tries again."""
        fields: dict[str, Any] = {"reason": reason, "retryable": retryable}
        if number is not None or row is None:
            fields["number"] = number
        if row is not None and row.state == DocumentState.PENDING:
            fields["attempts"] = row.attempts or 1
        return self._transition(row, pipeline, source_ref, DocumentState.FAILED, cursor=cursor, audit=audit,
                                document=document, **fields)

    def mark_quarantined(self, row: DocumentRow | None, pipeline: str, source_ref: str, reason: str, *,
                         number: str | None = None, document: Document | None = None,
                         cursor: tuple[str, str] | None = None, audit: AuditRow | None = None) -> DocumentRow:
        """Refused before sending (or by the target): a person must look at it."""
        return self._transition(row, pipeline, source_ref, DocumentState.QUARANTINED, cursor=cursor, audit=audit,
                                document=document, reason=reason, number=number, retryable=None)

    def mark_skipped(self, row: DocumentRow | None, pipeline: str, source_ref: str, reason: str, *,
                     number: str | None = None, document: Document | None = None,
                     cursor: tuple[str, str] | None = None) -> DocumentRow:
        """Not to be transferred, with the reason."""
        return self._transition(row, pipeline, source_ref, DocumentState.SKIPPED, cursor=cursor,
                                document=document, reason=reason, number=number, retryable=None)

    def keep_pending(self, row: DocumentRow, reason: str, *, audit: AuditRow | None = None) -> DocumentRow:
        """The write may have arrived and the target could not be asked: the intent stays,
        so the next run asks before sending again. The cursor does not move."""
        return self._transition(row, row.pipeline, row.source_ref, DocumentState.PENDING, audit=audit,
                                reason=reason, retryable=None)

    def mark_changed(self, row: DocumentRow, text: str, *, cursor: tuple[str, str] | None = None) -> DocumentRow:
        """A pushed document changed in the source: recorded, never pushed again."""
        return self._transition(row, row.pipeline, row.source_ref, DocumentState.PUSHED, cursor=cursor,
                                changed=text)

    def set_payment_state(self, row: DocumentRow, state: PaymentState | None, *, booked: Decimal | None = None,
                          audit: AuditRow | None = None, why: str | None = None,
                          payload: str | None = None) -> DocumentRow:
        """The booking of a pushed document's payments: pending (sent), retry, booked,
        refused (``why``: the target's reason, kept as ``refused: <why>``), or None.
        ``payload``: the stored copy with the payments being booked (payments are not
        content, so the copy still says what was transferred)."""
        if row.state != DocumentState.PUSHED:
            raise TransitionError(f"document {row.source_ref!r} is {row.state}, not pushed: no payment to book")
        row.payment_state = None if state is None else state.value
        if state == PaymentState.REFUSED and why:
            row.payment_state = f"{state.value}: {why}"
        if payload is not None:
            row.payload = payload
        if booked is not None:
            row.payments_booked = str(booked)
        return self.save_document(row, audit=audit)

    def payments_to_retry(self, pipeline: str, *, refused: bool = False) -> list[DocumentRow]:
        """Pushed documents whose payment booking was cut short or must be tried again;
        ``refused``: also those the target refused (``retry``, after a person's fix)."""
        state = col(DocumentRow.payment_state)
        wanted: ColumnElement[bool] = state.in_([PaymentState.PENDING.value, PaymentState.RETRY.value])
        if refused:
            wanted = or_(wanted, state.startswith(PaymentState.REFUSED.value))
        with self.session() as session:
            return list(session.exec(select(DocumentRow).where(
                DocumentRow.pipeline == pipeline, DocumentRow.state == DocumentState.PUSHED.value, wanted,
            ).order_by(col(DocumentRow.id))))

    def payments_refused(self, pipeline: str | None = None) -> int:
        """How many pushed documents have a payment the target refused."""
        query = select(func.count()).select_from(DocumentRow).where(
            DocumentRow.state == DocumentState.PUSHED.value,
            col(DocumentRow.payment_state).startswith(PaymentState.REFUSED.value))
        if pipeline:
            query = query.where(DocumentRow.pipeline == pipeline)
        with self.session() as session:
            return int(session.exec(query).one())

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
        self._save(cursor=(pipeline, value))


    # -- customer links ------------------------------------------------------------
    def link(self, target_connection: str, source_connection: str, source_customer_id: str) -> CustomerLink | None:
        return self._rows.one(  # type: ignore[no-any-return]
            CustomerLink, target_connection=target_connection, source_connection=source_connection,
            source_customer_id=source_customer_id,
        )

    def linked_contact(self, target_connection: str, source_connection: str,
                       source_customer_id: str) -> tuple[str, str | None, str | None] | None:
        """(contact id, customer number, matched by) of a completed link, else None.

        What every document of a known customer needs, without building the row."""
        found = self._rows.values(
            CustomerLink, ("target_contact_id", "target_customer_number", "matched_by"),
            target_connection=target_connection, source_connection=source_connection,
            source_customer_id=source_customer_id, state=LinkState.LINKED.value,
        )
        return None if found is None or not found[0] else (found[0], found[1], found[2])

    def links(self, target_connection: str | None = None, state: str | None = None) -> list[CustomerLink]:
        with self.session() as session:
            query = select(CustomerLink)
            if target_connection:
                query = query.where(CustomerLink.target_connection == target_connection)
            if state:
                query = query.where(CustomerLink.state == state)
            return list(session.exec(query.order_by(col(CustomerLink.id))))

    def mark_link_pending(self, link: CustomerLink | None, target_connection: str, source_connection: str,
                          source_customer_id: str, key: str) -> CustomerLink:
        """The intent to create a contact, committed with the key it will be found by."""
        link = link or fresh(CustomerLink, target_connection=target_connection,
                             source_connection=source_connection, source_customer_id=source_customer_id)
        link.state, link.key = LinkState.PENDING.value, key
        return self.save_link(link)

    def mark_linked(self, link: CustomerLink | None, target_connection: str, source_connection: str,
                    source_customer_id: str, contact: Contact, matched_by: str, *,
                    keep_matched_by: bool = False, writeback: str | None = None, manual: bool = False,
                    audit: AuditRow | None = None) -> CustomerLink:
        """The source customer is the target's contact (matched or created).
        ``keep_matched_by``: an earlier ``matched_by`` stays (a settled creation)."""
        link = link or fresh(CustomerLink, target_connection=target_connection,
                             source_connection=source_connection, source_customer_id=source_customer_id)
        link.state = LinkState.LINKED.value
        link.target_contact_id = contact.target_id
        link.target_customer_number = contact.customer_number
        link.matched_by = (link.matched_by or matched_by) if keep_matched_by else matched_by
        if writeback is not None:
            link.writeback = writeback
        if manual:
            link.manual = True  # a person's decision: no matching pass overwrites it
        return self.save_link(link, audit)

    def save_link(self, link: CustomerLink, audit: AuditRow | None = None) -> CustomerLink:
        link.updated_at = utcnow()
        self._save(link, audit)
        return link

    def delete_link(self, link: CustomerLink) -> None:
        if link.id is None:
            return
        with self._rows.transaction() as db:
            self._rows.delete(db, link)

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
            return list(session.exec(query.order_by(col(RunRow.id))))

    def last_runs(self, pipeline: str | None = None) -> dict[str, RunRow]:
        """The latest run of each pipeline (or of one), by pipeline name."""
        with self.session() as session:
            latest = select(func.max(RunRow.id)).group_by(RunRow.pipeline)
            if pipeline:
                latest = latest.where(RunRow.pipeline == pipeline)
            rows = session.exec(select(RunRow).where(col(RunRow.id).in_(latest)))
            return {row.pipeline: row for row in rows}

    # -- vendor back-off ---------------------------------------------------------------
    def set_backoff(self, connection: str, until: datetime, reason: str) -> None:
        """Remember that the vendor of ``connection`` asked to wait until ``until`` (a
        later time already remembered is kept)."""
        with self.session() as session:
            row = session.get(BackoffRow, connection)
            if row is None:
                row = BackoffRow(connection=connection, until=until, reason=reason)
            elif _aware(row.until) < until:
                row.until, row.reason, row.since = until, reason, utcnow()
            else:
                return
            session.add(row)
            session.commit()

    def backoff(self, connection: str) -> BackoffRow | None:
        """The wait a vendor asked of ``connection`` that has not yet passed (else None;
        one that has passed is forgotten)."""
        with self.session() as session:
            row = session.get(BackoffRow, connection)
            if row is None:
                return None
            row.until, row.since = _aware(row.until), _aware(row.since)
            if row.until > utcnow():
                return row
            session.delete(row)
            session.commit()
            return None

    def clear_backoff(self, connection: str) -> None:
        with self.session() as session:
            row = session.get(BackoffRow, connection)
            if row is not None:
                session.delete(row)
                session.commit()

    def add_audit(self, entry: AuditRow) -> None:
        self._save(entry)

    def audit(self, pipeline: str | None = None) -> list[AuditRow]:
        with self.session() as session:
            query = select(AuditRow)
            if pipeline:
                query = query.where(AuditRow.pipeline == pipeline)
            return list(session.exec(query.order_by(col(AuditRow.id))))

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
        history = StatusHistoryRow(pipeline=row.pipeline, source_ref=row.source_ref, old=row.status, new=new, raw=raw)
        row.status, row.status_raw, row.status_at = new, raw, utcnow()
        row.updated_at = utcnow()
        self._save(row, history)  # the row's status and its history in one commit
        return history

    def mark_written_back(self, history: StatusHistoryRow, outcome: str) -> None:
        history.written_back = outcome
        self._save(history)

    def status_history(self, pipeline: str | None = None, source_ref: str | None = None) -> list[StatusHistoryRow]:
        with self.session() as session:
            query = select(StatusHistoryRow)
            if pipeline:
                query = query.where(StatusHistoryRow.pipeline == pipeline)
            if source_ref:
                query = query.where(StatusHistoryRow.source_ref == source_ref)
            return list(session.exec(query.order_by(col(StatusHistoryRow.id))))

    def iter_table(self, name: str) -> Iterator[dict[str, Any]]:
        """Every row of a table as a dict (for exports and the secrets test)."""
        with self.engine.connect() as conn:
            for row in conn.execute(text(f"SELECT * FROM {name}")):  # noqa: S608 - internal names only
                yield dict(row._mapping)

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())


class LedgerFileError(ConfigError):
    """The ledger exists but cannot be used (empty, damaged, another program's, newer):
    refused with one line and exit 2, never silently recreated."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite ledger URL (None: another database, or in memory)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


SQLITE_HEADER = b"SQLite format 3\x00"


def check_ledger_file(path: Path) -> None:
    """Refuse a file that is there but is no usable SQLite ledger, before SQLite touches
    it (SQLite would turn an empty file into a new ledger, and fail late on a cut one)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return  # a new ledger
    except OSError as exc:
        raise LedgerFileError(f"{path}: cannot read the ledger file ({exc.strerror})") from None
    if path.is_dir():
        raise LedgerFileError(f"{path} is a directory, not a ledger file")
    if size == 0:
        raise LedgerFileError(f"{path} is empty (0 bytes), not a ledger; a new ledger is made only where no file "
                              "exists: move it away, or restore the ledger from a backup")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise LedgerFileError(f"{path}: cannot read the ledger file ({exc.strerror})") from None
    if not header.startswith(SQLITE_HEADER):
        raise LedgerFileError(f"{path} is not a SQLite database (damaged, or another kind of file); "
                              "restore the ledger from a backup or give another path")
    if len(header) < 100:
        raise LedgerFileError(f"{path} is cut short ({size} bytes); restore the ledger from a backup")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]  # the in-header size is valid (SQLite 3.7.0+)
    if valid and pages and size < pages * page_size:
        raise LedgerFileError(f"{path} is cut short: {size} bytes of {pages * page_size}; restore the ledger from "
                              "a backup")
    import sqlite3

    try:  # read-only: nothing of it changes before it is known to be a ledger
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise LedgerFileError(_sqlite_failure(path, str(exc), new=False)) from None
    if tables and not tables & {"documents", "schema_version"}:
        names = ", ".join(sorted(tables)[:5])
        raise LedgerFileError(f"{path} is a SQLite database of another program (tables {names}), not a ledger; "
                              "give ledgerlink a file of its own")
    if not os.access(path, os.R_OK | os.W_OK):
        raise LedgerFileError(_sqlite_failure(path, "attempt to write a readonly database", new=False))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL with synchronous=NORMAL survives a killed process (not a power cut
    # between checkpoints); that is the crash the protocol is built for.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _engine(url: str, *, echo: bool = False) -> Engine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
    else:
        kwargs["pool_pre_ping"] = True
        if make_url(url).get_backend_name() == "postgresql":
            # A host that swallows packets would otherwise keep the command waiting for minutes.
            kwargs["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


POSTGRES_CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL ledger server to answer a connection."""


def _migrate(engine: Engine) -> None:
    """Create the schema of a new ledger, or move an older one to ``SCHEMA_VERSION``, in
    one transaction (SQLite runs DDL in an explicit transaction too): a failure half way
    (a full disk, a killed process) leaves the ledger as it was."""
    existing = set(inspect(engine).get_table_names())
    if "documents" in existing and {"schema_version", "target_accounts"} <= existing:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar()
        if version == SCHEMA_VERSION:
            return  # the usual case: nothing to write, no write lock taken
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # DDL inside the transaction; one writer at a time
        lock_schema(conn)  # PostgreSQL: processes starting at once take turns (``_schema``)
        existing = set(inspect(conn).get_table_names())
        if "documents" not in existing:
            SQLModel.metadata.create_all(conn)
            if conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar() is None:
                conn.execute(text("INSERT INTO schema_version (id, version) VALUES (1, :version)"),
                             {"version": SCHEMA_VERSION})
            conn.commit()
            return
        SQLModel.metadata.create_all(conn, tables=[_table(SchemaVersion), _table(TargetAccountRow)])
        found = conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar()
        version = int(found) if found is not None else 1
        if version > SCHEMA_VERSION:
            raise LedgerFileError(
                f"the ledger has schema version {version}, newer than this ledgerlink ({SCHEMA_VERSION}); upgrade ledgerlink"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                conn.exec_driver_sql(statement)
        if found is None:
            conn.execute(text("INSERT INTO schema_version (id, version) VALUES (1, :version)"),
                         {"version": SCHEMA_VERSION})
        elif version < SCHEMA_VERSION:
            conn.execute(text("UPDATE schema_version SET version = :version WHERE id = 1"),
                         {"version": SCHEMA_VERSION})
        conn.commit()


SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database (they get the database file's mode)."""


def _create_sqlite_ledger(url: str, path: Path, *, echo: bool = False) -> None:
    """Make a new SQLite ledger whole, or nothing: a private (0600) file beside ``path``
    gets the schema, then is linked to ``path`` in one step. A full disk, a missing or
    read-only folder or a killed process never leaves a half-made ledger at ``path`` (a
    later run would refuse it), and the file is never readable by others."""
    from ._files import FileError, describe_os_error

    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)  # mode 0600
    except OSError as exc:
        raise FileError(describe_os_error(path, exc, "ledger")) from None
    os.close(fd)
    tmp = Path(name)
    engine = _engine(make_url(url).set(database=str(tmp)).render_as_string(hide_password=False), echo=echo)
    try:
        try:
            _migrate(engine)
        except DatabaseError as exc:
            raise LedgerFileError(describe_ledger_failure(url, exc, new=True)) from None
        finally:
            engine.dispose()  # the last connection checkpoints and removes the -wal file
        try:
            os.link(tmp, path)  # fails if another process made the ledger meanwhile: then that one is used
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                if not path.exists():  # a file system without hard links
                    os.replace(tmp, path)
            else:
                raise FileError(describe_os_error(path, exc, "ledger")) from None
    finally:
        for side in ("", *SQLITE_SIDE_FILES):
            with suppress(FileNotFoundError):
                os.unlink(f"{tmp}{side}")


def describe_ledger_failure(url: str, exc: BaseException, *, new: bool = False) -> str:
    """One line for a ledger the database driver cannot open or write: the file or the
    URL (password hidden), what is wrong and what to do."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0].strip() if detail else type(exc).__name__
    path = sqlite_path(url)
    if path is not None:
        return _sqlite_failure(path, first, new=new)
    if url.startswith("sqlite"):
        return f"the SQLite ledger {url} cannot be used: {first}"
    return _postgres_failure(url, first)


def _sqlite_failure(path: Path, detail: str, *, new: bool) -> str:
    lower = detail.lower()
    folder = path.parent
    if "disk is full" in lower or "disk i/o error" in lower:
        what = "making the new ledger" if new else "writing the ledger"
        return (f"{path}: the disk is full (or failing) while {what}; free some space and run the command again "
                f"({'nothing was made' if new else 'each write is all or nothing: nothing was half-written'})")
    if "locked" in lower or "busy" in lower:
        return (f"{path}: the ledger stayed locked by another program for over 60 s; stop the program that holds it "
                "(another ledgerlink, a backup tool, an open sqlite3 shell) and run again")
    if "readonly" in lower or "read-only" in lower or "unable to open" in lower or "permission" in lower:
        if not folder.is_dir():
            return f"{path}: the folder {folder} does not exist; create it or give another ledger path"
        if not os.access(folder, os.W_OK | os.X_OK):
            return (f"{path}: this user cannot write in the folder {folder} (SQLite keeps the ledger's -wal and "
                    "-shm files beside it); let it write there, or move the ledger to a folder it can write")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return f"{path}: the ledger file is read-only for this user; let it read and write the file (chmod/chown)"
        return f"{path}: the ledger cannot be opened for writing ({detail}); check the file and its folder"
    return f"{path} cannot be used as a ledger: {detail}"


def _postgres_failure(url: str, detail: str) -> str:
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    where = f"the PostgreSQL ledger at {shown}"
    server = detail.split("FATAL:", 1)[1].strip() if "FATAL:" in detail else detail
    lower = detail.lower()
    if "connection refused" in lower:
        return (f"cannot reach {where}: the connection was refused; start PostgreSQL, or fix the host and port "
                "in ledger.url")
    if "timeout expired" in lower or "timed out" in lower:
        return (f"cannot reach {where}: no answer within {POSTGRES_CONNECT_TIMEOUT} s; check the host and port in "
                "ledger.url and that a firewall lets the connection through")
    if "could not translate host name" in lower or "name or service not known" in lower \
            or "nodename nor servname" in lower:
        return f"cannot reach {where}: the host {parsed.host!r} is unknown; fix the host in ledger.url"
    if "password authentication failed" in lower or "no password supplied" in lower \
            or ("role" in lower and "does not exist" in lower) or "authentication failed" in lower:
        return (f"{where} refused the login ({server}); check the user and the password of ledger.url "
                "(the environment variable or file it names)")
    if "database" in lower and "does not exist" in lower:
        return (f"{where}: the database {parsed.database!r} does not exist; create it (createdb "
                f"{parsed.database}) or fix the database name in ledger.url")
    if "permission denied" in lower:
        return (f"{where}: the user {parsed.username!r} may not use it ({server}); grant it the rights on the "
                "database, or use its owner")
    if "server closed the connection" in lower or "terminating connection" in lower or "connection lost" in lower \
            or "consuming input failed" in lower:
        return (f"{where} closed the connection ({server}); check that the server is running and run the command "
                "again (each write is all or nothing: nothing was half-written)")
    return f"{where} cannot be used as a ledger: {server}"
