"""An order cancelled in Billbee after its transfer is reported, never left silently booked."""

from __future__ import annotations

import httpx
import pytest
from ledgerlink.testing import fake_store, make_runtime, reset_fake_stores, run_pipeline
from ledgerlink_billbee.sandbox import BillbeeSandbox

CANCELED = 8


@pytest.fixture
def world(tmp_path, monkeypatch):
    reset_fake_stores()
    sandbox = BillbeeSandbox(seed=BillbeeSandbox.demo_seed(), throttle=False)
    settings, env = sandbox.demo_connection("http://billbee.test")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    raw = {
        "connections": {"shop": {"plugin": "billbee", **settings},
                        "books": {"plugin": "fake-target", "store": "books"}},
        "pipelines": [{"name": "shop", "source": "shop", "target": "books",
                       "rules": [{"when": {}, "account": "8400"}]}],
    }
    runtime = make_runtime(raw, tmp_path, transports={"shop": sandbox.transport()})
    yield sandbox, runtime
    reset_fake_stores()


def cancel(sandbox: BillbeeSandbox, order_id: str) -> None:
    client = httpx.Client(transport=sandbox.transport(), base_url="http://billbee.test")
    key = sandbox.api_key
    answer = client.put(f"/api/v1/orders/{order_id}/orderstate", json={"NewStateId": CANCELED},
                        headers={"X-Billbee-Api-Key": key}, auth=(sandbox.username, sandbox.api_password))
    assert answer.status_code == 200, answer.text


def test_an_order_cancelled_after_transfer_is_reported_and_not_pushed_again(world) -> None:
    sandbox, runtime = world
    first = run_pipeline(runtime)
    assert first.counts()["pushed"] == 46
    pushed = sorted(fake_store("books")["pushed"])
    cancel(sandbox, pushed[0])

    second = run_pipeline(runtime)
    assert [(o.source_ref, o.state) for o in second.outcomes] == [(pushed[0], "cancelled")]
    row = runtime.ledger.document("shop", pushed[0])
    assert row.state == "pushed" and row.changed.startswith("cancelled after transfer")
    assert not second.ok  # a person is needed: the CLI exits 1
    assert len([w for w in fake_store("books")["writes"] if w[0] == "push"]) == 46

    third = run_pipeline(runtime, use_cursor=False)
    assert third.counts().get("cancelled") is None and third.counts().get("pushed") is None


def test_an_order_cancelled_before_transfer_is_skipped_not_pushed(world) -> None:
    sandbox, runtime = world
    order_id = next(ref for ref, order in sandbox.state["orders"].items() if order["State"] == 3)
    cancel(sandbox, order_id)
    run_pipeline(runtime)
    row = runtime.ledger.document("shop", order_id)
    assert row.state == "skipped" and row.reason == "order state canceled not selected"
    assert order_id not in fake_store("books")["pushed"]
