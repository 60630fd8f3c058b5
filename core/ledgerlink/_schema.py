"""Creating tables when several processes start at once on one database.

``metadata.create_all`` checks for each table, then creates the missing ones. On
PostgreSQL two processes that start together (``ledgerlink serve`` and its workers
after a deploy, on a new database) both find a table missing and both create it;
the second fails on PostgreSQL's catalogue ("duplicate key value violates unique
constraint pg_type_typname_nsp_index"), and that process stopped with an internal
error. Every schema change therefore runs in a transaction that first takes one
transaction-level advisory lock: the second process waits, then finds the tables
there. SQLite serialises writers itself; its schema changes run as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, MetaData, Table, text
from sqlalchemy.engine import Engine

SCHEMA_LOCK_KEY = 0x6C6C5F736368656D
"""The advisory lock key of schema changes ("ll_schem"); the pipeline locks hash their
names into the same 64-bit space (``_locks.advisory_key``), a collision only waits."""


def lock_schema(conn: Connection) -> None:
    """Hold the schema lock until ``conn``'s transaction ends (PostgreSQL; elsewhere nothing)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def create_tables(engine: Engine, metadata: MetaData, tables: Sequence[Table] | None = None) -> None:
    """``metadata.create_all`` (only ``tables`` when given) under the schema lock, in one
    transaction."""
    with engine.connect() as conn:
        lock_schema(conn)
        metadata.create_all(conn, tables=None if tables is None else list(tables))
        conn.commit()


__all__ = ["SCHEMA_LOCK_KEY", "create_tables", "lock_schema"]
