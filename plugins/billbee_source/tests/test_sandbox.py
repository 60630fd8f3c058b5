"""End to end through the Billbee sandbox: demo data, paging, dedupe, throttling, writes."""

from __future__ import annotations

import copy
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from billbee_testkit import base_settings, demo_pair, make_source
from ledgerlink import BrokenDocument, Customer, Document, NotSupported, SandboxServer, TaxTreatment
from ledgerlink_billbee.sandbox import BillbeeSandbox
from ledgerlink_billbee.source import BillbeeSettings

SKIPS = {
    "order state confirmed not selected": 1,
    "no invoice number": 1,
    "order date 2024-12-28 is before the start date 2025-01-01": 1,
}


def test_demo_data_gives_the_documented_outcome(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox, source = demo
    docs = list(source.documents(None))
    assert all(isinstance(d, Document) for d in docs)
    assert len(sandbox.state["orders"]) == 50 and len(docs) == 49  # the Amazon order is filtered by shopId
    skipped = Counter(d.skip_reason for d in docs if d.skip_reason)
    assert skipped == SKIPS
    transfer = [d for d in docs if not d.skip_reason]
    assert len(transfer) == 46
    assert all(d.consistency_problems() == [] for d in docs)
    assert sum((d.total_gross for d in transfer), Decimal(0)) == Decimal("5958.30")
    stated = {str(o["BillBeeOrderId"]): o["TotalCost"] for o in sandbox.state["orders"].values()}
    assert sum(stated[d.source_ref] for d in transfer) == Decimal("5958.30")
    assert {rate for d in transfer for rate in d.tax_by_rate()} == {Decimal("19.0"), Decimal("7.0"), Decimal(0)}
    hints = Counter(d.treatment_hint for d in transfer)
    assert hints == {TaxTreatment.STANDARD: 35, TaxTreatment.INTRA_EU_SUPPLY: 6, TaxTreatment.EXPORT: 5}
    assert sum(1 for d in transfer if d.is_paid) == 39
    assert len({d.customer.source_id for d in transfer}) == 18
    cursors = [d.cursor for d in docs]
    assert cursors == sorted(cursors)  # modification order
    late = next(d for d in docs if d.number == "RE-2025-1011")
    assert late.invoice_date is not None and late.invoice_date.isoformat() == "2025-01-31"


def test_paging_walks_every_page_once() -> None:
    sandbox, _ = demo_pair()
    settings, env = sandbox.demo_connection("http://billbee.test")
    settings.update(api_key=env["BILLBEE_API_KEY"], api_password=env["BILLBEE_API_PASSWORD"], page_size=20)
    source = make_source(settings, sandbox.transport())
    docs = list(source.documents(None))
    assert len({d.source_ref for d in docs}) == len(docs) == 49
    pages = [r["query"] for r in sandbox.requests if r["path"] == "/api/v1/orders"]
    assert [q.split("page=")[1].split("&")[0] for q in pages] == ["1", "2", "3"]
    assert sandbox.stats["throttled"] == 0  # the client keeps below 2 requests per second
    assert not any(r.get("validation_errors") for r in sandbox.requests)


class ShiftingTransport(httpx.BaseTransport):
    """After the first orders page, a new order with a low id appears (pages shift)."""

    def __init__(self, sandbox: BillbeeSandbox) -> None:
        self.sandbox = sandbox
        self.inner = sandbox.transport()
        self.done = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/orders") and not self.done:
            self.done = True
            first = copy.deepcopy(next(iter(self.sandbox.state["orders"].values())))
            first["BillBeeOrderId"] = 1
            first["LastModifiedAt"] = self.sandbox.now()
            self.sandbox._store_order(first)
        return response


def test_orders_shifting_between_pages_are_yielded_once() -> None:
    sandbox, _ = demo_pair()
    settings, env = sandbox.demo_connection("http://billbee.test")
    settings.update(api_key=env["BILLBEE_API_KEY"], api_password=env["BILLBEE_API_PASSWORD"], page_size=25)
    source = make_source(settings, ShiftingTransport(sandbox))
    refs = [d.source_ref for d in source.documents(None)]
    assert len(refs) == len(set(refs)) == 50 and "1" in refs


def test_state_decides_at_transfer_time_and_the_cursor_resumes(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox, source = demo
    docs = list(source.documents(None))
    confirmed = next(d for d in docs if d.skip_reason == "order state confirmed not selected")
    cursor = max(d.cursor for d in docs)
    # Only what lies in the 10-minute overlap comes again (the engine dedupes it).
    (overlap,) = source.documents(cursor)
    assert overlap.cursor == cursor
    put = httpx.Client(transport=sandbox.transport(), base_url="http://billbee.test/api/v1",
                       headers={"X-Billbee-Api-Key": sandbox.api_key}, auth=(sandbox.username, sandbox.api_password))
    answer = put.put(f"orders/{confirmed.source_ref}/orderstate", json={"NewStateId": 3})
    assert answer.status_code == 200 and answer.json()["ErrorCode"] == 0
    overlap_again, again = source.documents(cursor)
    assert overlap_again.source_ref == overlap.source_ref
    assert again.source_ref == confirmed.source_ref and again.skip_reason is None
    assert again.source_status == "paid"


def test_single_order_customers_and_dates(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox, source = demo
    first = next(iter(sandbox.state["orders"]))
    doc = source.document(first)
    assert doc is not None and doc.number == "RE-2025-1001" and doc.total_gross == Decimal("57.20")
    assert source.document("999") is None
    customers = list(source.customers())
    assert len(customers) == 18 and all(c.email for c in customers)
    from datetime import date
    between = list(source.documents_between(date(2025, 1, 1), date(2025, 1, 31)))
    assert between and all(d.order_date and date(2025, 1, 1) <= d.order_date <= date(2025, 1, 31) for d in between)
    assert all(d.cursor is None for d in between)


def test_customer_number_is_written_back(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox, source = demo
    customer = next(iter(source.customers()))
    source.write_customer_number(customer, "10042")
    assert sandbox.state["customers"][customer.source_id]["Number"] == 10042
    put = [r for r in sandbox.requests if r["method"] == "PUT"]
    assert len(put) == 1 and not put[0].get("validation_errors")
    with pytest.raises(NotSupported, match="whole numbers"):
        source.write_customer_number(customer, "K-10042")
    with pytest.raises(NotSupported, match="no Billbee customer id"):
        source.write_customer_number(Customer(source_id="email:x@example.com"), "1")


def test_sandbox_throttles_and_the_client_waits() -> None:
    sandbox, source = demo_pair()
    sandbox.per_endpoint = 1  # stricter than the client's 2 per second: forces 429s
    sandbox.faults.retry_after = 0.2
    for _ in range(3):
        source.check()
    assert sandbox.stats["throttled"] >= 1
    assert source.client.stats["rate_limited"] >= 1
    assert [r["status"] for r in sandbox.requests][-1] == 200


def test_sandbox_refuses_wrong_credentials_and_bad_page_size() -> None:
    sandbox = BillbeeSandbox(seed=BillbeeSandbox.demo_seed(), throttle=False)
    client = httpx.Client(transport=sandbox.transport(), base_url="http://billbee.test/api/v1")
    assert client.get("orders").status_code == 401
    wrong = client.get("orders", headers={"X-Billbee-Api-Key": sandbox.api_key}, auth=(sandbox.username, "nope"))
    assert wrong.status_code == 401 and wrong.json() == {"Message": "Invalid username or API password"}
    auth = {"headers": {"X-Billbee-Api-Key": sandbox.api_key}, "auth": (sandbox.username, sandbox.api_password)}
    bad = client.get("orders", params={"pageSize": 500}, **auth)
    assert bad.status_code == 400 and bad.json()["ErrorMessage"] == "pageSize must be between 1 and 250."
    indexed = client.get("orders", params={"shopId[0]": "100000000012002", "orderStateId[0]": "4"}, **auth)
    assert indexed.json()["Paging"]["TotalRows"] == 1
    assert '"TaxRate1":19.0' in indexed.text  # decimals as stored, not re-formatted


def test_sandbox_takes_a_captured_page_unchanged() -> None:
    from billbee_testkit import FIXTURES

    page = __import__("json").loads((FIXTURES / "Response/get_orders_response.json").read_text())
    sandbox = BillbeeSandbox(seed=[page], throttle=False)
    settings = base_settings(shops=[100000000092372], order_states=["ordered"], start_date="2022-01-01",
                             username=sandbox.username)
    # The SDK fixture says "IsCancelationFor": "IsCancelationFor" (its placeholder for any
    # string): a cancellation of an order Billbee does not know, so quarantined, not booked.
    (broken,) = make_source(settings, sandbox.transport()).documents(None)
    assert isinstance(broken, BrokenDocument) and broken.quarantine
    assert "cancellation of the order with external id 'IsCancelationFor'" in broken.reason
    page["Data"][0]["IsCancelationFor"] = None
    sandbox = BillbeeSandbox(seed=[page], throttle=False)
    (doc,) = make_source(settings, sandbox.transport()).documents(None)
    assert doc.total_gross == Decimal("170.76") and doc.number == "RN-2022-0083-xx"
    # Shipping as the sandbox's invoice states it: 12.00 at 19 %, VAT 1.9160.
    assert doc.lines[-1].tax_amount == Decimal("1.9160") and doc.extra["shipping_vat"] == "stated"


def test_over_a_loopback_server(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox, _ = demo
    with SandboxServer(sandbox) as server:
        settings, env = sandbox.demo_connection(server.url)
        settings.update(api_key=env["BILLBEE_API_KEY"], api_password=env["BILLBEE_API_PASSWORD"])
        source = make_source(settings)
        assert "Kaffeerösterei Demo" in source.check()
        assert len(list(source.documents(None))) == 49
        source.close()


def test_unknown_state_names_are_a_settings_error_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown Billbee order state 'payed'; valid names are: ordered, confirmed, paid"):
        BillbeeSettings.model_validate(base_settings(order_states=["paid", "payed"]))
    with pytest.raises(ValueError, match="shops"):
        BillbeeSettings.model_validate(base_settings(shops=[]))
    with pytest.raises(ValueError, match="order_states"):
        BillbeeSettings.model_validate(base_settings(order_states=[]))
    with pytest.raises(ValueError, match="unknown time zone"):
        BillbeeSettings.model_validate(base_settings(timezone="Mars/Olympus"))
    assert BillbeeSettings.model_validate(base_settings(order_states=["Payment reminder", "cancelled"])).order_states == [
        "payment_reminder", "canceled"]


def test_demo_connection_takes_the_server_root_and_describe_counts() -> None:
    sandbox = BillbeeSandbox(seed=BillbeeSandbox.demo_seed())
    settings, env = sandbox.demo_connection("http://127.0.0.1:8802/")
    assert settings["base_url"] == "http://127.0.0.1:8802/api/v1"
    assert set(env) == {"BILLBEE_API_KEY", "BILLBEE_API_PASSWORD"}
    assert sandbox.describe().startswith("Billbee sandbox holds 50 orders (")
