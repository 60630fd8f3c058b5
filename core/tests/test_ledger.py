"""The ledger: schema migrations, audit export, PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ledgerlink._ledger import (
    SCHEMA_VERSION,
    AuditRow,
    CustomerLink,
    DocumentRow,
    Ledger,
    LedgerRowGone,
)
from sqlalchemy import event, inspect

from .pg import postgres_url

DATA = Path(__file__).parent / "data"


def row_payments_booked_is_empty(ledger: Ledger) -> bool:
    row = ledger.document("shop-to-books", "order-7")
    return row is not None and row.payments_booked is None


def test_a_ledger_made_by_an_older_version_opens_and_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / "ledger_v1.sql").read_text())
    ledger = Ledger(f"sqlite:///{path}")
    assert ledger.schema_version == SCHEMA_VERSION == 7
    assert row_payments_booked_is_empty(ledger)
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


@pytest.mark.postgres
def test_the_ledger_works_on_postgresql() -> None:
    url = postgres_url()
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
    check_rows_round_trip(ledger)


def check_rows_round_trip(ledger: Ledger) -> None:
    """What the per-document paths write reads back the same, through them and the ORM."""
    row = DocumentRow(pipeline="rt", source_ref="order-9", state="pending", number="R-9", payload='{"x": "ü"}',
                      attempts=1, retryable=None)
    ledger.save_document(row, cursor=("rt", "2026-11-01T10:00:00"))
    assert row.id is not None
    pushed_at = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=UTC)
    row.state, row.target_id, row.pushed_at, row.retryable = "pushed", "v-1", pushed_at, False
    ledger.save_document(row, cursor=("rt", "2026-11-02T10:00:00"),
                         audit=AuditRow(pipeline="rt", target_connection="books", source_ref="order-9",
                                        action="push", target_ref="v-1", payload_hash="h", outcome="ok"))
    for again in (ledger.document("rt", "order-9"), ledger.documents("rt")[0]):
        assert again is not None
        assert (again.id, again.state, again.number, again.target_id, again.payload, again.attempts) == (
            row.id, "pushed", "R-9", "v-1", '{"x": "ü"}', 1)
        assert again.pushed_at == pushed_at and again.retryable is False
        assert again.created_at.tzinfo is not None and again.updated_at >= again.created_at
    assert ledger.cursor("rt") == "2026-11-02T10:00:00"
    assert [(a.action, a.target_ref, a.outcome) for a in ledger.audit("rt")] == [("push", "v-1", "ok")]

    link = ledger.save_link(CustomerLink(target_connection="books", source_connection="shop",
                                         source_customer_id="c-1", state="pending", key="shop:c-1"))
    assert ledger.linked_contact("books", "shop", "c-1") is None  # pending is not linked
    link.state, link.target_contact_id, link.target_customer_number, link.matched_by = "linked", "77", "1001", "email"
    ledger.save_link(link)
    assert ledger.linked_contact("books", "shop", "c-1") == ("77", "1001", "email")
    loaded = ledger.link("books", "shop", "c-1")
    assert loaded is not None and (loaded.id, loaded.key, loaded.manual) == (link.id, "shop:c-1", False)
    history = ledger.record_status(row, "paid", "1000")
    ledger.mark_written_back(history, "ok: Bezahlt")
    assert [(h.new, h.written_back) for h in ledger.status_history("rt")] == [("paid", "ok: Bezahlt")]
    assert ledger.document("rt", "order-9").status == "paid"
    ledger.delete_link(link)
    assert ledger.link("books", "shop", "c-1") is None
    # a row deleted by someone else meanwhile is an error, never a silent no-op
    with pytest.raises(LedgerRowGone, match="customer_links"):
        ledger.save_link(link)


def test_rows_round_trip_on_sqlite(tmp_path: Path) -> None:
    check_rows_round_trip(Ledger(f"sqlite:///{tmp_path / 'l.db'}"))


def test_marking_a_document_pushed_does_not_rewrite_its_payload(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    traced: list[str] = []
    ledger.engine.dispose()  # new connections from here on report every statement
    event.listen(ledger.engine, "connect", lambda conn, _record: conn.set_trace_callback(traced.append))
    row = ledger.save_document(DocumentRow(pipeline="p", source_ref="a", state="pending", payload="x" * 5000))
    assert any(s.startswith("INSERT INTO documents") and "x" * 5000 in s for s in traced)
    traced.clear()
    row.state, row.target_id = "pushed", "v"
    ledger.save_document(row)
    written = [s for s in traced if s.startswith("UPDATE documents")]
    assert len(written) == 1, traced
    assert "payload" not in written[0] and "state = 'pushed'" in written[0] and "target_id = 'v'" in written[0]
    assert ledger.document("p", "a").payload == "x" * 5000


def test_a_failed_save_leaves_the_row_unsaved(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.save_document(DocumentRow(pipeline="p", source_ref="a", state="pushed"))
    twin = DocumentRow(pipeline="p", source_ref="a", state="pending")
    with pytest.raises(sqlite3.IntegrityError):
        ledger.save_document(twin, cursor=("p", "c9"))
    assert twin.id is None  # no id pointing at a row that does not exist
    assert ledger.cursor("p") is None  # the cursor of the failed save was rolled back
    assert ledger.counts("p") == {"pushed": 1}
