"""HTTP behaviour against mocked Billbee answers (respx)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import respx
from billbee_testkit import FIXTURES as FIXTURE_DIR
from billbee_testkit import base_settings, make_source
from ledgerlink import BrokenDocument, ConnectionError_, Document, TransientError

BASE = "http://billbee.test/api/v1"
FIXTURES = {name: (FIXTURE_DIR / f"Response/{name}.json").read_text("utf-8")
            for name in ("get_orders_response", "base_response")}


@pytest.fixture(autouse=True)
def no_invoices():  # type: ignore[no-untyped-def]
    """Billbee's invoice list (shipping VAT) is read after the orders; here it is empty
    unless a test says otherwise (respx routes added later take precedence)."""
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/orders/invoices").mock(return_value=httpx.Response(200, json=page([])))
        yield mock


def page(orders: list, page: int = 1, total_pages: int = 1, total_rows: int | None = None) -> dict:
    rows = len(orders) if total_rows is None else total_rows
    return {"Paging": {"Page": page, "TotalPages": total_pages, "TotalRows": rows, "PageSize": 3},
            "ErrorMessage": None, "ErrorCode": 0, "ErrorDescription": "NoError", "Data": orders}


def order(order_id: int, modified: str, **changes: object) -> dict:
    data = json.loads(FIXTURES["get_orders_response"])["Data"][0]
    data.update({"BillBeeOrderId": order_id, "LastModifiedAt": modified, "State": 3, "IsCancelationFor": None,
                 "CreatedAt": "2025-01-10T10:00:00", "ApiAccountId": 100000000012001})
    data["Seller"]["BillbeeShopId"] = 100000000012001
    data.update(changes)
    return data


@respx.mock
def test_sends_key_basic_auth_filters_and_page_size() -> None:
    route = respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, json=page([])))
    settings = base_settings(shops=[11, 22])
    assert list(make_source(settings).documents("2025-02-01T10:00:00+01:00")) == []
    request = route.calls.last.request
    assert request.headers["X-Billbee-Api-Key"] == settings["api_key"]
    assert request.headers["Authorization"].startswith("Basic ")
    params = request.url.params
    assert params.get_list("shopId") == ["11", "22"]
    assert params["pageSize"] == "250" and params["page"] == "1"
    # The cursor minus the 10-minute overlap, naive, in Europe/Berlin.
    assert params["modifiedAtMin"] == "2025-02-01T09:50:00"
    assert "orderStateId" not in params  # the state is judged at transfer time


@respx.mock
def test_first_run_starts_at_the_start_date() -> None:
    route = respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, json=page([])))
    list(make_source(base_settings(start_date="2025-03-01")).documents(None))
    assert route.calls.last.request.url.params["modifiedAtMin"] == "2025-02-28T23:50:00"


@respx.mock
def test_error_code_inside_http_200_is_an_error() -> None:
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, text=FIXTURES["base_response"]))
    with pytest.raises(TransientError, match="error code 1: ErrorMessage"):
        list(make_source(base_settings()).documents(None))


@respx.mock
def test_wrong_credentials_give_one_clear_line_without_secrets() -> None:
    respx.get(f"{BASE}/shopaccounts").mock(
        return_value=httpx.Response(401, json={"Message": "Authorization has been denied for this request."}))
    settings = base_settings(api_key="very-secret-key-123", api_password="very-secret-password")
    with pytest.raises(ConnectionError_) as info:
        make_source(settings).check()
    text = str(info.value)
    assert "Billbee rejected the credentials (HTTP 401: Authorization has been denied" in text
    assert "api_password" in text and "not the login password" in text
    assert "very-secret" not in text and "\n" not in text


@respx.mock
def test_429_with_retry_after_is_waited_out() -> None:
    route = respx.get(f"{BASE}/orders").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "0.2"}, json={"Message": "Too many requests"}),
        httpx.Response(200, json=page([order(1, "2025-01-10T11:00:00")])),
    ])
    source = make_source(base_settings())
    docs = list(source.documents(None))
    assert [d.source_ref for d in docs] == ["1"] and route.call_count == 2
    assert source.client.stats["rate_limited"] == 1 and source.client.stats["waited"] >= 0.2


@respx.mock
def test_html_page_instead_of_json_is_named() -> None:
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(
        200, text="<!DOCTYPE html><html><body>Wartungsarbeiten</body></html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(TransientError, match="sent an HTML page instead of JSON"):
        list(make_source(base_settings()).documents(None))


@respx.mock
def test_server_errors_are_retried_then_reported() -> None:
    route = respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(500, json={"Message": "An error has occurred."}))
    with pytest.raises(TransientError, match=r"HTTP 500.*gave up after 6 attempts"):
        list(make_source(base_settings()).documents(None))
    assert route.call_count == 6


@respx.mock
def test_bad_request_names_billbees_message() -> None:
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(
        400, json={"ErrorMessage": "pageSize must be between 1 and 250.", "ErrorCode": 1, "Data": None}))
    with pytest.raises(Exception, match="pageSize must be between 1 and 250"):
        list(make_source(base_settings()).documents(None))


@respx.mock
def test_same_order_within_and_across_pages_is_one_document_in_modification_order() -> None:
    older = order(7, "2025-01-10T11:00:00")
    newer = order(7, "2025-01-12T08:00:00.5", TotalCost=170.76)
    respx.get(f"{BASE}/orders").mock(side_effect=[
        httpx.Response(200, json=page([order(5, "2025-01-11T09:00:00"), older, older], 1, 2, 5)),
        httpx.Response(200, json=page([newer, order(3, "2025-01-09T09:00:00")], 2, 2, 5)),
    ])
    docs = list(make_source(base_settings()).documents(None))
    assert [d.source_ref for d in docs] == ["3", "5", "7"]
    assert [d.cursor for d in docs] == [
        "2025-01-09T09:00:00+01:00", "2025-01-11T09:00:00+01:00", "2025-01-12T08:00:00.500000+01:00"]


@respx.mock
def test_broken_order_does_not_stop_the_others() -> None:
    broken = order(8, "2025-01-10T12:00:00")
    broken["OrderItems"][0]["TotalPrice"] = "abc"
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(
        200, json=page([order(9, "2025-01-10T11:00:00"), broken])))
    docs = list(make_source(base_settings()).documents(None))
    assert isinstance(docs[0], Document) and docs[0].source_ref == "9"
    assert isinstance(docs[1], BrokenDocument) and docs[1].source_ref == "8"
    assert docs[1].reason == "order 8: item 1 TotalPrice 'abc' is a string, not a number"
    assert docs[1].number == "RN-2022-0083-xx" and docs[1].cursor == "2025-01-10T12:00:00+01:00"


@respx.mock
def test_amounts_are_read_exactly() -> None:
    raw = json.dumps(page([order(4, "2025-01-10T11:00:00")])).replace('"TotalCost": 170.76', '"TotalCost": 170.7600000')
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, text=raw, headers={"Content-Type": "application/json"}))
    (doc,) = make_source(base_settings()).documents(None)
    assert doc.stated_total == Decimal("170.7600000")
    assert doc.lines[0].tax_amount == Decimal("25.348235294117647")


@respx.mock
def test_single_order_not_found_is_none() -> None:
    respx.get(f"{BASE}/orders/42").mock(return_value=httpx.Response(404, json={"Message": "Not found"}))
    assert make_source(base_settings()).document("42") is None
    assert make_source(base_settings()).document("not-a-number") is None


@respx.mock
def test_shipping_vat_is_read_from_billbees_invoice_list(no_invoices) -> None:  # type: ignore[no-untyped-def]
    listed = order(1, "2025-01-10T11:00:00", InvoiceDate="2025-01-10T10:05:00")
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, json=page([listed])))
    invoice = json.loads((FIXTURE_DIR / "Response/get_invoices_response.json").read_text("utf-8"))["Data"][0]
    invoice["BillbeeId"] = 1
    route = no_invoices.get(f"{BASE}/orders/invoices").mock(return_value=httpx.Response(200, json=page([invoice])))
    (doc,) = make_source(base_settings()).documents(None)
    params = route.calls.last.request.url.params
    assert (params["minInvoiceDate"], params["maxInvoiceDate"]) == ("2025-01-09T00:00:00", "2025-01-12T00:00:00")
    assert params.get_list("shopId") == ["100000000012001"]
    shipping = doc.lines[-1]
    assert (shipping.gross, shipping.tax_amount, shipping.tax) == (Decimal("12.00"), Decimal("1.916"), Decimal("1.92"))
    assert doc.extra["shipping_vat"] == "stated"


@respx.mock
def test_no_invoice_list_call_when_switched_off() -> None:
    listed = order(1, "2025-01-10T11:00:00", InvoiceDate="2025-01-10T10:05:00")
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, json=page([listed])))
    route = respx.get(f"{BASE}/orders/invoices").mock(return_value=httpx.Response(500))
    (doc,) = make_source(base_settings(stated_shipping_vat=False)).documents(None)
    assert not route.called and doc.extra["shipping_vat"] == "computed"


@respx.mock
def test_cancellation_order_finds_its_original_in_the_listing_or_by_external_id() -> None:
    original = order(5, "2025-01-10T09:00:00", Id="7001", OrderNumber="#1001")
    cancellation = order(6, "2025-01-11T09:00:00", IsCancelationFor="7001")
    elsewhere = order(7, "2025-01-11T10:00:00", IsCancelationFor="7002")
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, json=page([original, cancellation, elsewhere])))
    older = order(3, "2024-12-01T09:00:00", Id="7002", OrderNumber="#0999")
    found = respx.get(f"{BASE}/orders/findbyextref/7002").mock(
        return_value=httpx.Response(200, json={"ErrorCode": 0, "ErrorMessage": None, "Data": older}))
    docs = {d.source_ref: d for d in make_source(base_settings()).documents(None)}
    assert docs["6"].kind == "credit_note" and docs["6"].reverses == "5"
    assert docs["7"].kind == "credit_note" and docs["7"].reverses == "3"
    assert docs["6"].total_gross == Decimal("-170.76") and docs["5"].reverses is None
    assert found.call_count == 1  # only for the original that was not listed


@respx.mock
def test_cancellation_order_whose_original_billbee_does_not_find_is_quarantined() -> None:
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(
        200, json=page([order(6, "2025-01-11T09:00:00", IsCancelationFor="7001")])))
    respx.get(f"{BASE}/orders/findbyextref/7001").mock(return_value=httpx.Response(404, json={"Message": "Not found"}))
    (doc,) = make_source(base_settings()).documents(None)
    assert isinstance(doc, BrokenDocument) and doc.quarantine
    assert doc.reason == ("order 6: it is a cancellation of the order with external id '7001' (IsCancelationFor), "
                          "which Billbee does not find; a person must book the cancellation")


def customer(customer_id: int) -> dict:
    data = json.loads((FIXTURE_DIR / "Response/get_customers_response.json").read_text("utf-8"))["Data"][0]
    data.update({"Id": customer_id, "Name": f"Customer {customer_id}"})
    return data


@respx.mock
def test_customers_are_read_page_by_page_each_once_at_the_endpoints_rate() -> None:
    # Customer 3 moved from page 1 to page 2 while the pages were read; the fourth page
    # is not asked for (TotalPages says 3).
    pages = [page([customer(1), customer(2), customer(3)], 1, 3), page([customer(3), customer(4), customer(5)], 2, 3),
             page([customer(6), {"Id": None}], 3, 3), page([customer(7)], 4, 3)]
    route = respx.get(f"{BASE}/customers").mock(side_effect=[httpx.Response(200, json=p) for p in pages])
    source = make_source(base_settings(page_size=3))
    customers = list(source.customers())
    assert [c.source_id for c in customers] == ["1", "2", "3", "4", "5", "6"]
    asked = [(c.request.url.params["page"], c.request.url.params["pageSize"]) for c in route.calls]
    assert asked == [("1", "3"), ("2", "3"), ("3", "3")]
    # Billbee allows 2 calls a second per endpoint: the limiter spaced the three pages.
    assert source.client.stats["waited"] >= 2 / (2 * 0.95) - 0.02


@respx.mock
def test_a_listing_whose_data_is_not_a_list_is_an_error_naming_the_call() -> None:
    respx.get(f"{BASE}/orders").mock(return_value=httpx.Response(200, json={**page([]), "Data": {"Id": 1}}))
    with pytest.raises(TransientError, match=r"Billbee GET http://billbee.test/api/v1/orders: page 1: 'Data' is not a list"):
        list(make_source(base_settings()).documents(None))
