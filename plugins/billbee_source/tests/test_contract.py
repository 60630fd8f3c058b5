"""The shared source contract, run against the Billbee sandbox with the demo data."""

from __future__ import annotations

import uuid
from typing import Any

from ledgerlink.testing import SourceContract
from ledgerlink_billbee.sandbox import OTHER_SHOP_ID, BillbeeSandbox


class TestBillbeeSourceContract(SourceContract):
    plugin = "billbee"
    cursor_settings = {"overlap_minutes": 0}  # the deliberate re-read before the cursor, off for the cursor test

    def make_sandbox(self) -> Any:
        # A user of its own per sandbox: the client's rate limiter is per key and user.
        sandbox = BillbeeSandbox(seed=BillbeeSandbox.demo_seed(), username=f"{uuid.uuid4().hex[:8]}@example.com")
        sandbox.faults.retry_after = 0.1
        return sandbox

    def connection_settings(self, sandbox: Any) -> tuple[dict[str, Any], dict[str, str]]:
        return sandbox.demo_connection("http://billbee.test")

    def expected_refs(self, sandbox: Any) -> set[str]:
        # Everything of the selected shop: transferable and skipped orders alike.
        return {ref for ref, order in sandbox.state["orders"].items() if order["ApiAccountId"] != OTHER_SHOP_ID}

    def expected_skipped(self, sandbox: Any) -> set[str]:
        # The demo seed's orders that are listed but not transferred (see the demo counts below):
        # confirmed (a state not selected), no invoice number, ordered before the start date.
        return {"300000180000047", "300000180000048", "300000180000049"}

    def break_record(self, sandbox: Any) -> str:
        ref = "300000180000001"
        sandbox.state["orders"][ref]["OrderItems"][0]["TotalPrice"] = "kaputt"
        return ref


def test_demo_through_the_engine_gives_the_documented_counts(tmp_path: Any, monkeypatch: Any) -> None:
    from ledgerlink.testing import make_runtime, run_pipeline

    sandbox = TestBillbeeSourceContract().make_sandbox()
    settings, env = sandbox.demo_connection("http://billbee.test")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    raw = {
        "connections": {"shop": {"plugin": "billbee", **settings}, "books": {"plugin": "fake-target"}},
        "pipelines": [{"name": "demo", "source": "shop", "target": "books"}],
    }
    runtime = make_runtime(raw, tmp_path, transports={"shop": sandbox.transport()})
    result = run_pipeline(runtime)
    assert result.error is None
    assert result.counts() == {"pushed": 46, "skipped": 3}
    reasons = sorted(o.reason for o in result.outcomes if o.state == "skipped")
    assert reasons == [
        "no invoice number",
        "order date 2024-12-28 is before the start date 2025-01-01",
        "order state confirmed not selected",
    ]
    again = run_pipeline(runtime)
    assert again.counts().get("pushed", 0) == 0
