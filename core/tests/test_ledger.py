"""The ledger: schema migrations, audit export, PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from ledgerlink.ledger import SCHEMA_VERSION, AuditRow, DocumentRow, Ledger
from sqlalchemy import inspect

DATA = Path(__file__).parent / "data"


def test_a_ledger_made_by_an_older_version_opens_and_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / "ledger_v1.sql").read_text())
    ledger = Ledger(f"sqlite:///{path}")
    assert ledger.schema_version == SCHEMA_VERSION == 3
    row = ledger.document("shop-to-books", "order-7")
    assert row is not None and row.state == "pushed" and row.target_id == "555"
    assert ledger.cursor("shop-to-books") == "2026-01-05T10:00:00"
    # the new columns and tables work on the migrated ledger
    ledger.record_status(row, "paid", "1000")
    assert [h.new for h in ledger.status_history("shop-to-books")] == ["paid"]
    # and its schema has every column a fresh ledger has
    fresh = Ledger(f"sqlite:///{tmp_path / 'fresh.db'}")
    for table in ("documents", "customer_links", "status_history", "audit"):
        migrated_cols = {c["name"] for c in inspect(ledger.engine).get_columns(table)}
        fresh_cols = {c["name"] for c in inspect(fresh.engine).get_columns(table)}
        assert migrated_cols == fresh_cols, table


def test_opening_twice_does_not_migrate_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Ledger(url).save_document(DocumentRow(pipeline="p", source_ref="a", state="pushed"))
    assert Ledger(url).document("p", "a").state == "pushed"


def test_a_ledger_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE schema_version SET version = 99")
    with pytest.raises(Exception, match="newer than this ledgerlink"):
        Ledger(url)


def test_audit_log_exports_as_csv(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.add_audit(AuditRow(pipeline="p", target_connection="books", source_ref="order-1", action="push",
                              target_ref="v1", payload_hash="h", outcome="ok"))
    lines = ledger.audit_csv().splitlines()
    assert lines[0] == "id,at,pipeline,target_connection,source_ref,action,target_ref,payload_hash,outcome"
    assert lines[1].endswith(",p,books,order-1,push,v1,h,ok")


def _postgres_url() -> str:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3):
            pass
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            raise AssertionError(f"CI needs PostgreSQL on 127.0.0.1:5432: {exc}") from None
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    return url


@pytest.mark.postgres
def test_the_ledger_works_on_postgresql() -> None:
    url = _postgres_url()
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:
        for table in ("status_history", "audit", "runs", "cursors", "customer_links", "documents", "schema_version"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    ledger = Ledger(url)
    assert ledger.schema_version == SCHEMA_VERSION
    row = ledger.save_document(DocumentRow(pipeline="p", source_ref="order-1", state="pending"), cursor=("p", "c1"))
    row.state = "pushed"
    ledger.save_document(row)
    assert ledger.document("p", "order-1").state == "pushed"
    assert ledger.cursor("p") == "c1"
    assert ledger.counts("p") == {"pushed": 1}
