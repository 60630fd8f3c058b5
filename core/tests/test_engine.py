"""The engine's promises, proven with the in-memory fake source and target."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from ledgerlink import OutcomeUnknown, TransientError, VendorRejected
from ledgerlink._pipelines import run_pipelines
from ledgerlink._records import Line, LineKind
from ledgerlink._runner import PipelineRunner, Runtime, SimulatedCrash
from ledgerlink.testing import (
    CRASH_POINTS,
    CollectingReporter,
    fake_store,
    make_runtime,
    run_pipeline,
    sample_document,
)

RULES = [
    {"when": {"line": "shipping"}, "account": "8401"},
    {"when": {"region": "domestic"}, "account": "8400"},
    {"when": {"region": "eu"}, "account": "8125"},
]


def config(store: str = "s", **pipeline: object) -> dict:
    return {
        "connections": {
            "shop": {"plugin": "fake-source", "store": store},
            "books": {"plugin": "fake-target", "store": "t"},
        },
        "pipelines": [{"name": "p", "source": "shop", "target": "books", "rules": RULES, **pipeline}],
    }


def seed(*docs, store: str = "s") -> None:
    for doc in docs:
        fake_store(store)["documents"][doc.source_ref] = doc


def pushed_refs() -> list[str]:
    return [ref for action, ref, _ in fake_store("t")["writes"] if action == "push"]


def states(runtime: Runtime) -> dict[str, str]:
    return {row.source_ref: row.state for row in runtime.ledger.documents("p")}


def test_documents_are_pushed_once_and_recorded_with_their_target_ref(tmp_path: Path) -> None:
    seed(*(sample_document(i, customer=f"c{i % 2}") for i in range(1, 5)))
    runtime = make_runtime(config(), tmp_path)
    result = run_pipeline(runtime)
    assert result.counts() == {"pushed": 4}
    assert sorted(pushed_refs()) == ["order-1", "order-2", "order-3", "order-4"]
    row = runtime.ledger.document("p", "order-1")
    assert row.state == "pushed" and row.target_id == fake_store("t")["pushed"]["order-1"]["id"]
    stored = fake_store("t")["pushed"]["order-1"]
    assert stored["gross"] == "123.90"
    assert stored["accounts"] == ["8400", "8401"]


def test_second_run_transfers_nothing(tmp_path: Path) -> None:
    seed(sample_document(1), sample_document(2))
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    again = run_pipeline(runtime)
    assert again.counts() == {}
    without_cursor = run_pipeline(runtime, use_cursor=False)
    assert without_cursor.counts() == {}
    assert len(pushed_refs()) == 2


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_between_target_call_and_ledger_commit_then_rerun_gives_exactly_one(point: str, tmp_path: Path) -> None:
    seed(*(sample_document(i, customer=f"c{i}") for i in range(1, 4)))
    runtime = make_runtime(config(), tmp_path, crash_points=[point])
    with pytest.raises(SimulatedCrash):
        run_pipeline(runtime)
    fresh = Runtime(runtime.config, plugins=runtime.plugins, reporter=CollectingReporter())
    result = run_pipeline(fresh)
    assert result.error is None
    assert sorted(pushed_refs()) == ["order-1", "order-2", "order-3"]
    assert states(fresh) == {"order-1": "pushed", "order-2": "pushed", "order-3": "pushed"}
    contacts = fake_store("t")["contacts"]
    assert len(contacts) == 3, f"contacts created twice after a crash at {point}"
    audit = [a for a in fresh.ledger.audit() if a.action == "push" and a.outcome.startswith("ok")]
    assert sorted(a.source_ref for a in audit) == ["order-1", "order-2", "order-3"]


def test_pending_document_found_in_target_is_adopted_not_pushed_again(tmp_path: Path) -> None:
    seed(sample_document(1))
    runtime = make_runtime(config(), tmp_path, crash_points=["after_push"])
    with pytest.raises(SimulatedCrash):
        run_pipeline(runtime)
    assert states(runtime) == {"order-1": "pending"}
    fresh = Runtime(runtime.config, plugins=runtime.plugins, reporter=CollectingReporter())
    result = run_pipeline(fresh)
    assert [o.state for o in result.outcomes] == ["pushed"]
    assert "found in the target" in (result.outcomes[0].reason or "")
    assert pushed_refs() == ["order-1"]


def test_lost_answer_is_settled_with_find_document_never_a_blind_second_write(tmp_path: Path) -> None:
    seed(sample_document(1), sample_document(2))
    # The first push arrives but its answer is lost; the second is lost before arriving.
    fake_store("t")["fail"] = [("after", OutcomeUnknown("answer lost")), OutcomeUnknown("answer lost")]
    runtime = make_runtime(config(), tmp_path)
    result = run_pipeline(runtime)
    assert result.counts() == {"pushed": 2}
    assert sorted(pushed_refs()) == ["order-1", "order-2"]
    unknown = [a for a in runtime.ledger.audit() if a.outcome.startswith("unknown")]
    assert len(unknown) == 2


def test_a_document_adopted_after_a_lost_answer_is_completed_with_its_plan(tmp_path: Path) -> None:
    seed(sample_document(1), sample_document(2))
    fake_store("t")["fail"] = [("after", OutcomeUnknown("answer lost"))]
    runtime = make_runtime(config(tags=["Import"]), tmp_path)
    run_pipeline(runtime)
    first = fake_store("t")["pushed"]["order-1"]["id"]
    # only the adopted one: the target finishes its steps after the create (tags) with the same plan
    assert fake_store("t")["completed"] == [(first, ["Import"])]
    assert fake_store("t")["pushed"]["order-2"]["tags"] == ["Import"]


def test_a_document_found_but_not_finished_stays_pending_until_a_run_finishes_it(tmp_path: Path) -> None:
    """Found after a lost answer, but finishing it in the target (tags, registering a
    draft) failed for now: it is never counted as pushed while unfinished; the next run
    finds it again and finishes it, without writing it twice."""
    seed(sample_document(1))
    fake_store("t")["fail"] = [("after", OutcomeUnknown("answer lost"))]
    fake_store("t")["fail_complete"] = TransientError("Tag/Factory/create: HTTP 503")
    runtime = make_runtime(config(tags=["Import"]), tmp_path)
    result = run_pipeline(runtime)
    assert result.counts() == {"failed": 1}
    row = runtime.ledger.document("p", "order-1")
    assert row.state == "pending"
    assert row.reason == ("found in the target (RE-1001), but finishing it there failed (Tag/Factory/create: "
                          "HTTP 503); the next run finishes it")
    [entry] = [a for a in runtime.ledger.audit() if a.action == "complete"]
    assert entry.outcome.startswith("error: found in the target (RE-1001), but finishing it there failed")
    again = run_pipeline(runtime)
    assert again.counts() == {"pushed": 1}
    assert runtime.ledger.document("p", "order-1").state == "pushed"
    assert [ref for ref, _ in fake_store("t")["completed"]] == ["d1"]
    assert [ref for action, ref, _ in fake_store("t")["writes"] if action == "push"] == ["order-1"]


def test_one_bad_document_never_stops_the_others(tmp_path: Path) -> None:
    bad = sample_document(2)
    bad.stated_total = Decimal("100.00")  # lines add up to 123.90
    seed(sample_document(1), bad, sample_document(3))
    fake_store("t")["fail"] = []
    runtime = make_runtime(config(), tmp_path)
    result = run_pipeline(runtime)
    assert states(runtime) == {"order-1": "pushed", "order-2": "quarantined", "order-3": "pushed"}
    reason = runtime.ledger.document("p", "order-2").reason
    assert "123.90" in reason and "100.00" in reason
    assert result.counts() == {"pushed": 2, "quarantined": 1}


def test_vendor_refusal_fails_the_document_with_the_vendor_message(tmp_path: Path) -> None:
    seed(sample_document(1), sample_document(2))
    fake_store("t")["fail"] = [VendorRejected("BookKeeper refused: account 9999 unknown", status_code=422)]
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    row = runtime.ledger.document("p", "order-1")
    assert row.state == "failed" and "account 9999 unknown" in row.reason
    assert states(runtime)["order-2"] == "pushed"


def test_failed_document_is_retried_on_the_next_run(tmp_path: Path) -> None:
    seed(sample_document(1))
    fake_store("t")["fail"] = [TransientError("HTTP 503, gave up after 6 attempts")]
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    assert states(runtime) == {"order-1": "failed"}
    run_pipeline(runtime)
    assert states(runtime) == {"order-1": "pushed"}
    assert pushed_refs() == ["order-1"]


def test_filtered_documents_are_recorded_as_skipped_with_reason(tmp_path: Path) -> None:
    early = sample_document(1)
    early.invoice_date = early.order_date = early.invoice_date.replace(year=2025)
    marked = sample_document(2)
    marked.skip_reason = "order state 'Storniert' is not selected"
    seed(early, marked, sample_document(3))
    runtime = make_runtime(config(start_date="2026-01-01"), tmp_path)
    run_pipeline(runtime)
    rows = {r.source_ref: r for r in runtime.ledger.documents("p")}
    assert rows["order-1"].state == "skipped" and "before the pipeline's start date 2026-01-01" in rows["order-1"].reason
    assert rows["order-2"].state == "skipped" and rows["order-2"].reason == "order state 'Storniert' is not selected"
    assert rows["order-3"].state == "pushed"


def test_line_without_a_rule_quarantines_with_the_booking_code_named(tmp_path: Path) -> None:
    doc = sample_document(1, shipping=None)
    doc.lines[0].booking_code = "FlexPlan"
    seed(doc)
    raw = config()
    raw["pipelines"][0]["rules"] = [{"when": {"booking_code": "Desk"}, "account": "8400"}]
    runtime = make_runtime(raw, tmp_path)
    run_pipeline(runtime)
    row = runtime.ledger.document("p", "order-1")
    assert row.state == "quarantined" and "'FlexPlan'" in row.reason
    assert pushed_refs() == []


def test_dry_run_writes_nothing_to_target_or_ledger(tmp_path: Path) -> None:
    seed(sample_document(1), sample_document(2))
    runtime = make_runtime(config(due_days=14), tmp_path)
    result = run_pipeline(runtime, dry_run=True)
    assert [o.state for o in result.outcomes] == ["planned", "planned"]
    plan = result.outcomes[0].plan
    assert plan["due_date"] == "2026-03-16" and plan["tags"] == ["Import"]
    assert [(line["account"], line["net"], line["tax"], line["gross"]) for line in plan["lines"]] == [
        ("8400", "100.00", "19.00", "119.00"), ("8401", "4.12", "0.78", "4.90")]
    assert result.outcomes[0].reason == "contact would be created for Erika Mustermann1"
    assert pushed_refs() == [] and fake_store("t")["contacts"] == {}
    assert runtime.ledger.documents() == [] and runtime.ledger.links() == [] and runtime.ledger.runs() == []


def test_no_contact_creation_pushes_with_the_mismatch_tag(tmp_path: Path) -> None:
    seed(sample_document(1))
    runtime = make_runtime(config(create_contacts=False, mismatch_tag="Mismatch", tags=["Import"]), tmp_path)
    run_pipeline(runtime)
    stored = fake_store("t")["pushed"]["order-1"]
    assert stored["contact"] is None and stored["tags"] == ["Import", "Mismatch"]


def test_cursor_never_passes_an_unsettled_document(tmp_path: Path) -> None:
    seed(*(sample_document(i) for i in range(1, 4)))
    runtime = make_runtime(config(), tmp_path, crash_points=["after_pending"])
    with pytest.raises(SimulatedCrash):
        run_pipeline(runtime)
    # order-1 is pending: the cursor must not have moved past it.
    assert runtime.ledger.cursor("p") is None


def test_change_after_transfer_is_flagged_not_overwritten(tmp_path: Path) -> None:
    doc = sample_document(1)
    seed(doc)
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    changed = sample_document(1)
    changed.lines.append(Line(description="Gift wrap", total=Decimal("2.50"), tax_rate=Decimal(19), kind=LineKind.FEE))
    changed.cursor = "2026-03-03T00:00:00"
    seed(changed)
    result = run_pipeline(runtime)
    assert [o.state for o in result.outcomes] == ["changed"]
    row = runtime.ledger.document("p", "order-1")
    assert row.state == "pushed" and "total 123.90 -> 126.40" in row.changed
    assert pushed_refs() == ["order-1"]


def test_payment_after_transfer_is_booked_once(tmp_path: Path) -> None:
    seed(sample_document(1))
    runtime = make_runtime(config(payment_reconciliation="source"), tmp_path)
    run_pipeline(runtime)
    paid = sample_document(1, paid=True)
    paid.cursor = "2026-03-04T00:00:00"
    seed(paid)
    run_pipeline(runtime)
    paid.cursor = "2026-03-05T00:00:00"
    run_pipeline(runtime)
    assert fake_store("t")["payments"] == [(fake_store("t")["pushed"]["order-1"]["id"], "123.90")]


def test_paid_document_arrives_paid_when_the_source_reconciles(tmp_path: Path) -> None:
    seed(sample_document(1, paid=True), sample_document(2))
    runtime = make_runtime(config(payment_reconciliation="source"), tmp_path)
    run_pipeline(runtime)
    assert fake_store("t")["pushed"]["order-1"]["paid"] is True
    assert fake_store("t")["pushed"]["order-2"]["paid"] is False


def test_linked_customer_reuses_its_contact_and_number_is_written_back(tmp_path: Path) -> None:
    seed(sample_document(1, customer="c1"), sample_document(2, customer="c1"))
    fake_store("s")["customers"]["c1"] = {"source_id": "c1"}
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    assert len(fake_store("t")["contacts"]) == 1
    contacts = {v["contact"] for v in fake_store("t")["pushed"].values()}
    assert len(contacts) == 1
    assert fake_store("s")["writes"] == [("customer_number", "c1", "10001")]


def test_pipelines_with_different_targets_run_side_by_side(tmp_path: Path) -> None:
    raw = config()
    raw["connections"]["books2"] = {"plugin": "fake-target", "store": "t2"}
    raw["pipelines"].append({"name": "q", "source": "shop", "target": "books2", "rules": RULES})
    seed(sample_document(1))
    runtime = make_runtime(raw, tmp_path)
    results = run_pipelines(runtime, runtime.config.pipelines, jobs=2)
    assert sorted(r.pipeline for r in results) == ["p", "q"]
    assert fake_store("t")["pushed"].keys() == fake_store("t2")["pushed"].keys() == {"order-1"}


def test_runs_are_recorded_with_counts(tmp_path: Path) -> None:
    seed(sample_document(1))
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    [run] = runtime.ledger.runs("p")
    assert run.outcome == "ok" and '"pushed": 1' in run.counts


def test_runner_reports_bad_token_as_pipeline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TOKEN", "wrong")
    raw = config()
    raw["connections"]["books"]["token"] = "${FAKE_TOKEN}"
    runtime = make_runtime(raw, tmp_path)
    runner = PipelineRunner(runtime, runtime.config.pipelines[0])
    with pytest.raises(Exception, match="rejected the token"):
        runner.target.check()


def test_the_pipeline_says_who_sells(tmp_path: Path) -> None:
    danish_customer = sample_document(1, country="DK", gross="125.00", rate="25")
    seed(danish_customer)
    raw = config(seller_country="DK")
    raw["pipelines"][0]["rules"] = [{"when": {"region": "domestic"}, "account": "1000"}]
    runtime = make_runtime(raw, tmp_path)
    run_pipeline(runtime)
    assert fake_store("t")["pushed"]["order-1"]["accounts"] == ["1000", "1000"]


def test_payment_is_booked_when_a_lost_answer_is_settled_by_find_document(tmp_path: Path) -> None:
    seed(sample_document(1, paid=True))
    fake_store("t")["fail"] = [("after", OutcomeUnknown("answer lost"))]
    runtime = make_runtime(config(payment_reconciliation="source"), tmp_path)
    run_pipeline(runtime)
    assert pushed_refs() == ["order-1"]
    assert fake_store("t")["payments"] == [(fake_store("t")["pushed"]["order-1"]["id"], "123.90")]
    assert runtime.ledger.document("p", "order-1").payment_state == "booked"
    run_pipeline(runtime, use_cursor=False)
    assert len(fake_store("t")["payments"]) == 1


def test_run_retries_only_transient_failures_and_retry_takes_the_rest(tmp_path: Path) -> None:
    seed(sample_document(1), sample_document(2))
    fake_store("t")["fail"] = [VendorRejected("sevDesk refused: contact is archived", status_code=400),
                               TransientError("HTTP 503, gave up after 6 attempts")]
    runtime = make_runtime(config(), tmp_path)
    run_pipeline(runtime)
    assert states(runtime) == {"order-1": "failed", "order-2": "failed"}
    assert runtime.ledger.document("p", "order-1").retryable is False
    assert runtime.ledger.document("p", "order-2").retryable is True
    second = run_pipeline(runtime)
    assert [(o.source_ref, o.state) for o in second.outcomes] == [("order-2", "pushed")]
    third = run_pipeline(runtime, retry_failed=True)
    assert [(o.source_ref, o.state) for o in third.outcomes] == [("order-1", "pushed")]
    assert sorted(pushed_refs()) == ["order-1", "order-2"]


def test_the_same_verdict_on_the_same_document_is_not_reported_twice(tmp_path: Path) -> None:
    bad = sample_document(1)
    bad.stated_total = Decimal("1.00")
    seed(bad)
    runtime = make_runtime(config(), tmp_path)
    assert run_pipeline(runtime).counts() == {"quarantined": 1}
    assert run_pipeline(runtime, use_cursor=False).counts() == {}
    # but `retry` reports it, still quarantined
    assert run_pipeline(runtime, documents=[], retry_failed=True, retry_quarantined=True).counts() == {"quarantined": 1}
