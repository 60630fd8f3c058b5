"""The connector against recorded-style answers (respx): errors, paging, request shapes."""

from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from bilendo_helpers import customer, invoice, make_target, plan_for
from ledgerlink import (
    ConnectionError_,
    Contact,
    OutcomeUnknown,
    QuarantineError,
    TargetRef,
    TransientError,
    VendorRejected,
)

API = "https://apisandbox.bilendo.de/api/v2"
TOKEN = "tok-secret-4711"
CUSTOMER = {
    "data": {
        "id": "cus-1", "type": "customer",
        "attributes": {"id": "cus-1", "external_id": "k1", "customer_number": "10001", "name": "Acme GmbH",
                       "shipping_mode": "email", "dunning_stop": False},
        "relationships": {},
    }
}
INVOICE = {"data": {"id": "inv-uuid", "type": "invoice",
                    "attributes": {"external_id": "inv-1", "invoice_number": "RE-1001", "status": "draft"}}}


def errors(status: int, detail: str, field: str | None = None) -> dict:
    error = {"status": str(status), "title": "Error", "detail": detail}
    if field:
        error["source"] = {"pointer": f"/data/attributes/{field}"}
    return {"errors": [error]}


@pytest.fixture
def target():
    t = make_target(api_token=TOKEN)
    yield t
    t.close()


@respx.mock
def test_check_with_wrong_token_gives_one_clear_line_without_the_token(target):
    route = respx.get(f"{API}/customers/find/ledgerlink-connection-check").respond(
        401, json=errors(401, f"Invalid token {TOKEN}"))
    with pytest.raises(ConnectionError_) as info:
        target.check()
    message = str(info.value)
    assert message.startswith(
        "Bilendo rejected the API token at https://apisandbox.bilendo.de; check api_token of connection 'bilendo-test'")
    assert "account settings > API" in message and "\n" not in message
    assert TOKEN not in message
    assert route.calls[0].request.headers["Authorization"] == f"Token token={TOKEN}"


@respx.mock
def test_check_passes_on_a_find_miss(target):
    respx.get(f"{API}/customers/find/ledgerlink-connection-check").respond(404, json=errors(404, "not found"))
    assert "API token accepted" in target.check()
    assert "sandbox" in target.check()


@respx.mock
def test_401_on_a_later_call_names_the_setting(target):
    respx.get(f"{API}/customers/find/k1").respond(401, json=errors(401, "expired"))
    with pytest.raises(ConnectionError_, match="check api_token of connection 'bilendo-test'"):
        target.find_contact("k1")


@respx.mock
def test_422_json_api_errors_become_vendor_rejected_with_field_and_detail(target):
    respx.get(f"{API}/customers/find/k1").respond(404)
    respx.post(f"{API}/customers").respond(422, json=errors(422, "can't be blank", "name"))
    with pytest.raises(VendorRejected) as info:
        target.create_contact(customer(), "k1")
    assert "HTTP 422" in str(info.value) and "name: can't be blank" in str(info.value)
    assert info.value.status_code == 422


@respx.mock
def test_429_waits_for_retry_after_then_succeeds(target):
    route = respx.get(f"{API}/customers/find/k1").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "0.3"}, json=errors(429, "slow down")),
        httpx.Response(200, json=CUSTOMER),
    ])
    started = time.monotonic()
    contact = target.find_contact("k1")
    assert time.monotonic() - started >= 0.3
    assert route.call_count == 2
    assert contact is not None and contact.customer_number == "10001"


@respx.mock
def test_500_on_a_read_is_retried(target):
    route = respx.get(f"{API}/invoices/find/inv-1").mock(side_effect=[
        httpx.Response(500, json=errors(500, "boom")), httpx.Response(200, json=INVOICE)])
    ref = target.find_document("inv-1", "RE-1001")
    assert ref == TargetRef(target_id="inv-uuid", number="RE-1001", kind="invoice")
    assert route.call_count == 2


@respx.mock
def test_500_on_invoice_create_is_outcome_unknown_and_not_resent(target):
    route = respx.post(f"{API}/invoices").respond(500, json=errors(500, "boom"))
    doc = invoice()
    with pytest.raises(OutcomeUnknown):
        target.push(doc, plan_for(doc, Contact(target_id="cus-1")))
    assert route.call_count == 1


@respx.mock
def test_500_that_never_ends_on_a_read_is_transient(target):
    respx.get(f"{API}/invoices/inv-uuid").respond(500, json=errors(500, "boom"))
    with pytest.raises(TransientError, match="HTTP 500"):
        list(target.statuses([TargetRef(target_id="inv-uuid")]))


@respx.mock
def test_errors_inside_http_200_are_refused(target):
    respx.post(f"{API}/invoices").respond(200, json=errors(422, "has already been taken", "external_id"))
    doc = invoice()
    with pytest.raises(VendorRejected, match="external_id: has already been taken"):
        target.push(doc, plan_for(doc, Contact(target_id="cus-1")))


@respx.mock
def test_html_page_instead_of_json(target):
    respx.get(f"{API}/customers/find/k1").respond(200, html="<html><body>Wartung</body></html>")
    with pytest.raises(TransientError, match="HTML page"):
        target.find_contact("k1")
    respx.post(f"{API}/invoices").respond(502, html="<html>Bad gateway</html>")
    doc = invoice()
    with pytest.raises(OutcomeUnknown):
        target.push(doc, plan_for(doc, Contact(target_id="cus-1")))


@respx.mock
def test_create_answer_without_id_is_outcome_unknown(target):
    respx.post(f"{API}/invoices").respond(201, json={"data": None})
    doc = invoice()
    with pytest.raises(OutcomeUnknown, match="without a resource id"):
        target.push(doc, plan_for(doc, Contact(target_id="cus-1")))


@respx.mock
def test_find_miss_is_none(target):
    respx.get(f"{API}/customers/find/nobody").respond(404, json=errors(404, "Customer not found"))
    respx.get(f"{API}/invoices/find/inv-9").respond(404, json=errors(404, "Invoice not found"))
    assert target.find_contact("nobody") is None
    assert target.find_document("inv-9") is None


@respx.mock
def test_keys_are_escaped_in_find_paths(target):
    route = respx.get(f"{API}/customers/find/shop%2F7%20a").respond(404)
    assert target.find_contact("shop/7 a") is None
    assert route.called


@respx.mock
def test_debtor_creation_sends_the_documented_form_fields(target):
    respx.get(f"{API}/customers/find/k1").respond(404)
    customers = respx.post(f"{API}/customers").respond(201, json=CUSTOMER)
    contacts = respx.post(f"{API}/customers/cus-1/contacts").respond(201, json={"data": {"id": "con-1"}})
    addresses = respx.post(f"{API}/customers/cus-1/addresses").respond(201, json={"data": {"id": "adr-1"}})
    cust = customer()
    cust.customer_number = "10001"
    contact = target.create_contact(cust, "k1")
    assert contact.target_id == "cus-1" and contact.customer_number == "10001"
    assert contact.email == "max1@acme.example"
    sent = dict(parse_qsl(customers.calls[0].request.content.decode()))
    assert customers.calls[0].request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent == {"name": "Acme GmbH", "external_id": "k1", "customer_number": "10001",
                    "phone": "+49 89 1234"}
    person = dict(parse_qsl(contacts.calls[0].request.content.decode()))
    assert person == {"name": "Max Muster1", "gender": "0", "salutation": "0", "external_id": "k1",
                      "main_contact": "true", "email": "max1@acme.example", "phone": "+49 89 1234"}
    address = dict(parse_qsl(addresses.calls[0].request.content.decode()))
    assert address == {"line1": "Acme GmbH", "line2": "Max Muster1", "line3": "Sendlinger Str. 85",
                       "zip": "81735", "city": "München", "country_code": "de", "external_id": "k1",
                       "default_address": "true"}


@respx.mock
def test_contacts_follow_json_api_next_links():
    target = make_target(api_token=TOKEN)
    page1 = {"data": [{"id": "a", "attributes": {"name": "Erika Mustermann"}}],
             "links": {"next": f"{API}/customers?page[number]=2&page[size]=100"}}
    page2 = {"data": [{"id": "b", "attributes": {"name": "Beta AG", "customer_number": "7"}}], "links": {}}
    route = respx.get(f"{API}/customers").mock(side_effect=[httpx.Response(200, json=page1),
                                                            httpx.Response(200, json=page2)])
    contacts = list(target.contacts())
    assert [c.target_id for c in contacts] == ["a", "b"]
    assert contacts[0].first_name == "Erika" and contacts[0].last_name == "Mustermann"
    assert contacts[1].customer_number == "7" and contacts[1].company == "Beta AG"
    assert route.calls[0].request.url.params["page[size]"] == "100"
    assert route.calls[1].request.url.params["page[number]"] == "2"


@respx.mock
def test_contacts_stop_when_the_api_ignores_paging():
    target = make_target(api_token=TOKEN, page_size=2)
    everything = {"data": [{"id": "a", "attributes": {"name": "A"}}, {"id": "b", "attributes": {"name": "B"}}]}
    route = respx.get(f"{API}/customers").respond(200, json=everything)
    assert [c.target_id for c in target.contacts()] == ["a", "b"]
    assert route.call_count == 2  # the second page brought nothing new



def _pages(*bodies: dict) -> list[httpx.Response]:
    return [httpx.Response(200, json=body) for body in bodies]


def _debtors(*ids: str) -> list[dict]:
    return [{"id": i, "attributes": {"name": f"Debtor {i}"}} for i in ids]


@respx.mock
def test_contacts_page_on_while_pages_are_full_or_link_on_and_drop_repeated_ids():
    target = make_target(api_token=TOKEN, page_size=2)
    route = respx.get(f"{API}/customers").mock(side_effect=_pages(
        {"data": _debtors("a", "a")},  # full, no links.next: on; the repeat is dropped
        {"data": _debtors("a", "b")},  # full, one new id: on
        {"data": _debtors("c"), "links": {"next": f"{API}/customers?page[number]=4&page[size]=2"}},  # short, next
        {"data": _debtors("d"), "links": {"next": None}},  # short, no next: the last
    ))
    assert [c.target_id for c in target.contacts()] == ["a", "b", "c", "d"]
    assert [(call.request.url.params["page[number]"], call.request.url.params["page[size]"])
            for call in route.calls] == [("1", "2"), ("2", "2"), ("3", "2"), ("4", "2")]


@respx.mock
def test_contacts_end_at_a_short_page_or_an_empty_one():
    for bodies, calls in ((({"data": _debtors("a")},), 1), (({"data": _debtors("a", "b")}, {"data": []}), 2)):
        with respx.mock:
            route = respx.get(f"{API}/customers").mock(side_effect=_pages(*bodies))
            assert [c.target_id for c in make_target(api_token=TOKEN, page_size=2).contacts()] == ["a", "b"][:calls]
            assert route.call_count == calls


@respx.mock
def test_contacts_refuse_an_error_or_an_answer_without_a_data_list():
    respx.get(f"{API}/customers").mock(side_effect=_pages(errors(422, "page too large", "page")))
    with pytest.raises(VendorRejected, match="^Bilendo refused the customer list: "):
        list(make_target(api_token=TOKEN).contacts())
    for body in ({"data": None}, {"meta": {}}, [1, 2]):
        with respx.mock:
            respx.get(f"{API}/customers").respond(200, json=body)
            with pytest.raises(TransientError, match="^Bilendo answered the customer list without a data list$"):
                list(make_target(api_token=TOKEN).contacts())

@respx.mock
def test_invoice_request_carries_amounts_dates_dispatch_language_sender_and_pdf():
    target = make_target(api_token=TOKEN, dispatch="automatic", language="en", shipping_mode="dual_shipping",
                         sender={"line1": "Demo GmbH", "line3": "Hauptstr. 1", "zip": "10115", "city": "Berlin"})
    pdf = b"%PDF-1.4 fake invoice"
    respx.get("https://shop.example/pdf/RE-1001.pdf").respond(200, content=pdf)
    create = respx.post(f"{API}/invoices").respond(201, json=INVOICE)
    doc = invoice(pdf_url="https://shop.example/pdf/RE-1001.pdf?token=abc")
    ref = target.push(doc, plan_for(doc, Contact(target_id="cus-1", extra={"external_id": "k1"})))
    assert ref.target_id == "inv-uuid" and ref.number == "RE-1001"
    request = create.calls[0].request
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.content
    assert pdf in body and b'filename="RE-1001.pdf"' in body
    fields = {}
    for part in body.split(b"--" + request.headers["content-type"].split("boundary=")[1].encode()):
        if b'name="' in part and b"filename=" not in part:
            head, _, value = part.partition(b"\r\n\r\n")
            name = head.split(b'name="')[1].split(b'"')[0].decode()
            fields[name] = value.rstrip(b"\r\n").decode()
    assert fields["external_id"] == "inv-1" and fields["invoice_number"] == "RE-1001"
    assert fields["invoice_date"] == "2026-03-02" and fields["due_date"] == "2026-03-16"
    assert fields["customer_id"] == "cus-1" and fields["customer_external_id"] == "k1"
    assert (fields["dispatch"], fields["language"], fields["shipping_mode"]) == ("automatic", "en", "dual_shipping")
    assert fields["sender[line1]"] == "Demo GmbH" and fields["sender[country_code]"] == "de"
    # 300.00 net at 19 % + 20.00 net at 7 %: to the cent
    assert Decimal(fields["net_amount"]) == Decimal("320.00")
    assert Decimal(fields["tax_amount"]) == Decimal("58.40")
    assert fields["amount"] == "378.40"
    assert fields["invoice_items[0][unit_price]"] == "100.00"
    assert fields["invoice_items[0][amount]"] == "357.00"
    assert fields["invoice_items[1][tax_amount]"] == "1.40"
    assert fields["invoice_items[1][tax_rate]"] == "7"


@respx.mock
def test_a_pdf_link_that_is_no_pdf_quarantines(target):
    respx.get("https://shop.example/pdf/1").respond(200, html="<html>login</html>")
    create = respx.post(f"{API}/invoices")
    doc = invoice(pdf_url="https://shop.example/pdf/1")
    with pytest.raises(QuarantineError, match="is not a PDF"):
        target.push(doc, plan_for(doc, Contact(target_id="cus-1")))
    assert not create.called


def test_plans_bilendo_would_refuse_are_quarantined(target):
    doc = invoice()
    with pytest.raises(QuarantineError, match="no Bilendo debtor"):
        target.validate(doc, plan_for(doc, None))
    credit = invoice()
    credit.kind = "credit_note"
    with pytest.raises(QuarantineError, match="credit note"):
        target.validate(credit, plan_for(credit, Contact(target_id="c")))
    with pytest.raises(QuarantineError, match="before its date"):
        from datetime import date

        target.validate(doc, plan_for(doc, Contact(target_id="c"), due=date(2026, 1, 1)))


def test_settings():
    from ledgerlink_bilendo.target import BilendoSettings

    s = BilendoSettings(api_token="x", base_url="sandbox")
    assert s.base_url == "https://apisandbox.bilendo.de" and s.dispatch == "manual" and s.language == "de"
    assert (s.requests_per_second, s.page_size, s.timeout) == (5.0, 100, None)
    assert BilendoSettings(api_token="x", base_url="https://api.bilendo.de/api/v2/").base_url == "https://api.bilendo.de"
    assert BilendoSettings(api_token="x", base_url="http://127.0.0.1:8080").base_url == "http://127.0.0.1:8080"
    for bad in ({"base_url": "http://api.bilendo.de"}, {"dispatch": "now"}, {"language": "fr"},
                {"shipping_mode": "fax"}, {"colour": "red"}, {"sender": {"line1": "A", "country_code": "Germany"}}):
        with pytest.raises(ValueError):
            BilendoSettings(api_token="x", **bad)
    assert "x" not in repr(BilendoSettings(api_token="x" * 8))


@respx.mock
def test_client_side_rate_limit_spaces_requests():
    from ledgerlink_bilendo.target import BilendoSettings

    assert BilendoSettings(api_token="x").requests_per_second == 5.0  # the assumed limit
    target = make_target(api_token="tok-rate-limit-test", requests_per_second=5.0)
    respx.get(f"{API}/customers/find/k1").respond(404)
    started = time.monotonic()
    for _ in range(4):
        target.find_contact("k1")
    assert time.monotonic() - started >= 3 * 0.2


@respx.mock
def test_a_pdf_link_that_is_refused_quarantines_only_this_document(target):
    respx.get("https://shop.example/pdf/2").respond(403, text="expired")
    create = respx.post(f"{API}/invoices")
    doc = invoice(pdf_url="https://shop.example/pdf/2?sig=s3cr3t")
    with pytest.raises(QuarantineError, match="could not be fetched") as info:
        target.push(doc, plan_for(doc, Contact(target_id="cus-1")))
    assert "https://shop.example/pdf/2" in str(info.value)
    assert not create.called


def test_timeout_setting_reaches_the_http_client():
    for settings, expected in (({}, 30.0), ({"timeout": 2.5}, 2.5)):
        target = make_target(api_token=TOKEN, **settings)
        try:
            assert target.http._client.timeout.read == expected
        finally:
            target.close()
