"""Two pipelines into one Billy connection share their customer links (one contact per customer)."""

from __future__ import annotations

from datetime import date

from ledgerlink.testing import fake_store, make_runtime, reset_fake_stores, run_pipeline
from ledgerlink_billy.sandbox import BillySandbox


def test_two_pipelines_share_customer_links(tmp_path, monkeypatch, kit):
    reset_fake_stores()
    sandbox = BillySandbox()
    settings, env = sandbox.demo_connection("http://billy.sandbox")
    settings["requests_per_second"] = 100
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    first, second = kit.shop_document(1, "domestic"), kit.shop_document(2, "eu")
    later = kit.shop_document(3, "domestic")
    later.customer = first.customer.model_copy(deep=True)
    later.invoice_date = date(2026, 3, 9)
    store = fake_store("billy-shared")
    for doc in (first, second):
        store["documents"][doc.source_ref] = doc
    raw = {
        "connections": {"shop": {"plugin": "fake-source", "store": "billy-shared"}, "books": {"plugin": "billy", **settings}},
        "pipelines": [
            {"name": "webshop", "source": "shop", "target": "books", "seller_country": "DK"},
            # no matchers: without the shared link this pipeline would create a second contact
            {"name": "marketplace", "source": "shop", "target": "books", "seller_country": "DK",
             "matchers": [], "start_date": "2026-03-05"},
        ],
    }
    runtime = make_runtime(raw, tmp_path, transports={"books": sandbox.transport()})
    result = run_pipeline(runtime, "webshop")
    assert result.counts() == {"pushed": 2}, [o.reason for o in result.outcomes]
    store["documents"][later.source_ref] = later
    result = run_pipeline(runtime, "marketplace")
    assert result.counts().get("pushed") == 1, [o.reason for o in result.outcomes]

    contacts = sandbox.state["contacts"]
    assert sorted(c["contactNo"] for c in contacts.values()) == sorted({c["contactNo"] for c in contacts.values()})
    assert len(contacts) == 2
    by_number = {i["invoiceNo"]: i for i in sandbox.state["invoices"].values()}
    assert by_number[later.number]["contactId"] == by_number[first.number]["contactId"]
    assert by_number[second.number]["contactId"] != by_number[first.number]["contactId"]
    reset_fake_stores()
