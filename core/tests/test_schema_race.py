"""Processes that start at once on a new PostgreSQL database create its tables once.

``ledgerlink serve`` and a worker started together on a new database (a deploy, a
`docker compose up`) both found the service's tables missing and both created them;
one died with "duplicate key value violates unique constraint
pg_type_typname_nsp_index" (seen in CI: tests/test_workers.py). Every schema change
now takes one advisory lock first (``ledgerlink._schema``).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from .pg import postgres_url

pytestmark = pytest.mark.postgres

DATABASE = "ledgerlink_schema_race"
"""A database per test and round (``_service_0`` ...): xdist runs the rounds side by side,
and one dropping the database another is creating tables in would fail both."""
STARTERS = 8


def start_at_once(work: Any) -> list[BaseException]:
    barrier = threading.Barrier(STARTERS)
    errors: list[BaseException] = []

    def starter() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=starter) for _ in range(STARTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.parametrize("round_", range(3))
def test_the_service_and_worker_tables_are_created_once_by_starters_at_once(round_: int) -> None:
    from ledgerlink import _events, _inbox, _tenants
    from ledgerlink._schema import create_tables

    url = postgres_url(f"{DATABASE}_service_{round_}", fresh=True)
    metadatas = [_tenants._tables().metadata, _inbox.tables().metadata, _events.tables().metadata]

    def start() -> None:
        engine = create_engine(url, pool_size=1)  # a process of its own, as serve and each worker are
        try:
            for metadata in metadatas:
                create_tables(engine, metadata)
        finally:
            engine.dispose()

    errors = start_at_once(start)
    assert not errors, [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors]
    names = set(inspect(create_engine(url)).get_table_names())
    assert {"service_tenants", "inbox"} <= names


@pytest.mark.parametrize("round_", range(3))
def test_ledgers_opened_at_once_on_a_new_database_all_open(round_: int) -> None:
    from ledgerlink._ledger import Ledger
    from ledgerlink._locks import PipelineLocks

    url = postgres_url(f"{DATABASE}_ledger_{round_}", fresh=True)
    opened: list[Any] = []

    def start() -> None:
        ledger = Ledger(url)
        PipelineLocks(ledger)
        opened.append(ledger)

    errors = start_at_once(start)
    try:
        assert not errors, [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors]
        assert len(opened) == STARTERS
    finally:
        for ledger in opened:
            ledger.close()
