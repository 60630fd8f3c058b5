"""The machine's PostgreSQL (127.0.0.1:5432, user postgres) for the core's tests.

A test that needs it gets a URL; without a server it is skipped with one line, except
where CI=true: there the missing server is a failure."""

from __future__ import annotations

import contextlib
import os

import pytest

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def postgres_url(database: str | None = "test", *, fresh: bool = False) -> str:
    """The URL of ``database`` on the server (None: the server's, without a database).
    A database other than ``test`` is created where missing; ``fresh``: dropped first."""
    try:
        import psycopg

        with psycopg.connect(ADMIN_DSN, connect_timeout=3, autocommit=True) as conn:
            if database not in (None, "test"):
                if fresh:
                    conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
                if not exists:
                    with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # made meanwhile by another test
                        conn.execute(f"CREATE DATABASE {database}")
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            raise AssertionError(f"CI needs PostgreSQL on 127.0.0.1:5432: {exc}") from None
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    return SERVER if database is None else f"{SERVER}/{database}"
