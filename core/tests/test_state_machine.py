"""The ledger owns the documents' state machine; the cursor never passes a pending
document; the seller country has one owner."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledgerlink import DocumentState, OutcomeUnknown, TargetRef, TransientError
from ledgerlink._ledger import TRANSITIONS, Ledger, TransitionError
from ledgerlink.testing import FakeTarget, fake_store, make_runtime, run_pipeline, sample_document

PIPELINE = "p"


def config(**pipeline: object) -> dict:
    return {
        "connections": {
            "shop": {"plugin": "fake-source", "store": "s"},
            "books": {"plugin": "fake-target", "store": "t"},
        },
        "pipelines": [{"name": PIPELINE, "source": "shop", "target": "books",
                       "rules": [{"when": {}, "account": "8400"}], **pipeline}],
    }


def seed(*docs) -> None:
    for doc in docs:
        fake_store("s")["documents"][doc.source_ref] = doc


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_a_pushed_document_can_never_go_back_to_pending_or_failed(ledger: Ledger) -> None:
    doc = sample_document(1)
    row = ledger.mark_pending(None, PIPELINE, doc)
    row = ledger.mark_pushed(row, TargetRef(target_id="d1"), note=None)
    with pytest.raises(TransitionError, match="cannot go from pushed to pending"):
        ledger.mark_pending(row, PIPELINE, doc)
    with pytest.raises(TransitionError, match="cannot go from pushed to failed"):
        ledger.mark_failed(row, PIPELINE, doc.source_ref, "boom", retryable=True)
    assert ledger.document(PIPELINE, doc.source_ref).state == "pushed"


def test_only_a_document_a_push_was_tried_for_becomes_pushed(ledger: Ledger) -> None:
    doc = sample_document(1)
    skipped = ledger.mark_skipped(None, PIPELINE, doc.source_ref, "state not selected", document=doc)
    with pytest.raises(TransitionError, match="cannot go from skipped to pushed"):
        ledger.mark_pushed(skipped, TargetRef(target_id="d1"), note=None)
    assert DocumentState.PUSHED not in TRANSITIONS[None]
    # pending (the intent) and failed (a push that failed on the way, found after all)
    assert {state for state, allowed in TRANSITIONS.items() if DocumentState.PUSHED in allowed} == {
        DocumentState.PENDING, DocumentState.FAILED, DocumentState.PUSHED}


def test_the_ledger_refuses_a_cursor_with_a_pending_document(ledger: Ledger) -> None:
    doc = sample_document(1)
    row = ledger.mark_pending(None, PIPELINE, doc)
    with pytest.raises(TransitionError, match="cursor must not pass the pending document"):
        ledger._transition(row, PIPELINE, doc.source_ref, DocumentState.PENDING, cursor=(PIPELINE, "x"))
    assert ledger.cursor(PIPELINE) is None
    assert ledger.document(PIPELINE, doc.source_ref).attempts == 1


def test_transitions_write_the_row_and_its_audit_in_one_commit(ledger: Ledger) -> None:
    doc = sample_document(1)
    row = ledger.mark_pending(None, PIPELINE, doc)
    assert (row.state, row.attempts, row.number) == ("pending", 1, doc.number)
    row = ledger.mark_failed(row, PIPELINE, doc.source_ref, "vendor down", retryable=True, number=doc.number,
                             cursor=(PIPELINE, "c1"))
    stored = ledger.document(PIPELINE, doc.source_ref)
    assert (stored.state, stored.reason, stored.retryable) == ("failed", "vendor down", True)
    assert ledger.cursor(PIPELINE) == "c1"
    row = ledger.mark_pending(row, PIPELINE, doc)
    assert row.attempts == 2


def test_the_cursor_does_not_pass_a_document_left_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """order-2's answer is lost and the target cannot be asked: it stays pending, and
    order-3, pushed after it, does not move the cursor past it."""
    seed(sample_document(1), sample_document(2), sample_document(3))
    runtime = make_runtime(config(), tmp_path)
    # An established ledger (it has written to this target before): pushes are not
    # looked up first, so order-2's lost answer is what this test sees.
    runtime.ledger.remember_target_account(PIPELINE, "books", "fake-target", None)
    real_find = FakeTarget.find_document
    store = fake_store("t")

    def push(self: FakeTarget, document, plan):  # noqa: ANN001
        if document.source_ref == "order-2" and not store.get("order-2 sent"):
            store["order-2 sent"] = True
            raise OutcomeUnknown("the answer was lost")
        return self._store_document(document, plan)

    def find(self: FakeTarget, source_ref: str, number: str | None = None):  # noqa: ANN202
        if source_ref == "order-2" and not store.get("target back"):
            raise TransientError("the target does not answer")
        return real_find(self, source_ref, number)

    monkeypatch.setattr(FakeTarget, "push", push)
    monkeypatch.setattr(FakeTarget, "find_document", find)
    result = run_pipeline(runtime)
    assert result.counts() == {"pushed": 2, "failed": 1}
    assert runtime.ledger.document(PIPELINE, "order-2").state == "pending"
    cursor_of_1 = sample_document(1).cursor
    assert runtime.ledger.cursor(PIPELINE) == cursor_of_1  # not order-3's

    store["target back"] = True
    again = run_pipeline(runtime)
    assert {(o.source_ref, o.state) for o in again.outcomes} >= {("order-2", "pushed")}
    assert sorted(ref for action, ref, _ in store["writes"] if action == "push") == ["order-1", "order-2", "order-3"]
    assert runtime.ledger.cursor(PIPELINE) == sample_document(3).cursor


def test_a_source_without_a_seller_country_takes_the_pipelines(tmp_path: Path) -> None:
    seed(sample_document(1, country="DK", gross="125.00", rate="25"))
    runtime = make_runtime(config(seller_country="DK"), tmp_path)
    run_pipeline(runtime)
    row = runtime.ledger.document(PIPELINE, "order-1")
    assert row.state == "pushed" and '"seller_country":"DK"' in row.payload


def test_the_source_states_the_seller_country_and_the_pipeline_states_none(tmp_path: Path) -> None:
    doc = sample_document(1, country="AT", gross="120.00", rate="20").model_copy(update={"seller_country": "AT"})
    seed(doc)
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    row = runtime.ledger.document(PIPELINE, "order-1")
    assert row.state == "pushed" and '"seller_country":"AT"' in row.payload


def test_neither_states_a_seller_country_so_it_is_germany(tmp_path: Path) -> None:
    seed(sample_document(1))
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    assert '"seller_country":"DE"' in runtime.ledger.document(PIPELINE, "order-1").payload


def test_source_and_pipeline_disagree_on_the_seller_country_so_it_is_quarantined(tmp_path: Path) -> None:
    seed(sample_document(1).model_copy(update={"seller_country": "AT"}))
    runtime = make_runtime(config(seller_country="DE"), tmp_path)
    result = run_pipeline(runtime)
    assert result.counts() == {"quarantined": 1}
    row = runtime.ledger.document(PIPELINE, "order-1")
    assert row.reason.startswith("the source states seller country AT, the pipeline's seller_country is DE")
    assert fake_store("t")["pushed"] == {}


def test_a_document_cancelled_before_transfer_is_skipped_with_the_reason(tmp_path: Path) -> None:
    seed(sample_document(1).model_copy(update={"cancelled": True}))
    runtime = make_runtime(config(), tmp_path)
    result = run_pipeline(runtime)
    assert result.counts() == {"skipped": 1}
    assert runtime.ledger.document(PIPELINE, "order-1").reason == "cancelled in the source"


def test_a_deposit_is_booked_when_it_arrives_and_the_rest_when_it_comes(tmp_path: Path) -> None:
    from datetime import date
    from decimal import Decimal

    from ledgerlink import Payment

    doc = sample_document(1)  # 123.90 gross
    doc.payments = [Payment(amount=Decimal("40.00"), date=date(2026, 3, 2))]
    seed(doc)
    runtime = make_runtime(config(payment_reconciliation="source"), tmp_path)
    first = run_pipeline(runtime)
    assert sorted(first.counts().items()) == [("payment_booked", 1), ("pushed", 1)]
    target_id = fake_store("t")["pushed"]["order-1"]["id"]
    assert fake_store("t")["pushed"]["order-1"]["paid"] is False  # pushed open, the deposit booked on it
    assert fake_store("t")["payments"] == [(target_id, "40.00")]
    assert runtime.ledger.document(PIPELINE, "order-1").payments_booked == "40.00"

    assert run_pipeline(runtime, use_cursor=False).counts() == {}  # nothing new: nothing booked again

    rest = doc.model_copy(deep=True)
    rest.payments.append(Payment(amount=Decimal("83.90"), date=date(2026, 3, 20)))
    rest.cursor = "2026-03-20T00:00:00"
    seed(rest)
    second = run_pipeline(runtime)
    assert second.counts() == {"payment_booked": 1}
    assert fake_store("t")["payments"] == [(target_id, "40.00"), (target_id, "123.90")]
    assert runtime.ledger.document(PIPELINE, "order-1").payments_booked == "123.90"
    assert run_pipeline(runtime, use_cursor=False).counts() == {}
    assert [ref for action, ref, _ in fake_store("t")["writes"] if action == "push"] == ["order-1"]


def test_with_reconciliation_in_the_target_no_payment_is_booked(tmp_path: Path) -> None:
    from decimal import Decimal

    from ledgerlink import Payment

    doc = sample_document(1)
    doc.payments = [Payment(amount=Decimal("40.00"))]
    seed(doc)
    runtime = make_runtime(config(payment_reconciliation="target"), tmp_path)
    assert run_pipeline(runtime).counts() == {"pushed": 1}
    assert fake_store("t")["payments"] == []


def test_a_failed_push_found_in_the_target_after_all_is_adopted_not_sent_again(tmp_path: Path) -> None:
    """The push wrote the document and then failed (a lost answer the target could not
    be asked about, then given up): the next try asks the target first."""
    seed(sample_document(1))
    runtime = make_runtime(config(), tmp_path)
    fake_store("t")["fail"] = [("after", TransientError("the connection broke after the request was sent"))]
    first = run_pipeline(runtime)
    assert first.counts() == {"failed": 1}
    assert runtime.ledger.document(PIPELINE, "order-1").attempts == 1
    again = run_pipeline(runtime)
    assert [(o.source_ref, o.state, o.reason) for o in again.outcomes] == [("order-1", "pushed", "settled")]
    assert [ref for action, ref, _ in fake_store("t")["writes"] if action == "push"] == ["order-1"]
