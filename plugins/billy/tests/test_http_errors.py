"""Billy's answers, error by error (respx): what the user sees and what is retried."""

from __future__ import annotations

import time

import httpx
import pytest
import respx
from ledgerlink import ConnectionError_, OutcomeUnknown, TransientError, VendorRejected
from ledgerlink.testing import closing_factory
from ledgerlink_billy.mapping import TEMPLATE_NAMES as TEMPLATES

BASE = "https://api.billysbilling.com/v2"
TOKEN = "tok-billy-secret-42"


def billy_error(status: int, message: str, code: str, **extra) -> httpx.Response:
    body = {"meta": {"statusCode": status, "success": False}, "errorMessage": message,
            "errorCode": code, "errorTime": "2026-03-02T10:00:00Z", "helpUrl": "https://www.billy.dk/support/",
            **extra}
    return httpx.Response(status, json=body)


ORG = {"organization": {"id": "org1", "name": "Hygge ApS", "baseCurrencyId": "DKK"},
       "meta": {"statusCode": 200, "success": True}}


@pytest.fixture
def real(kit):
    """A target for the public API, without templates (check() then reads only the organization)."""

    def build(**settings):
        values = {"api_token": TOKEN, "cash_account": None}
        values.update({name: None for name in TEMPLATES})
        values.update(settings)
        t = kit.make_target(None, base_url="https://api.billysbilling.com", **values)
        assert t.settings.base_url == BASE
        return t

    yield from closing_factory(build)


@respx.mock
def test_401_is_a_connection_error_with_billys_words_and_no_token(real):
    route = respx.get(f"{BASE}/organization").mock(
        return_value=billy_error(401, "Invalid OAuth 2 access token.", "OAUTH_INVALID_ACCESS_TOKEN"))
    with pytest.raises(ConnectionError_) as info:
        real().check()
    message = str(info.value)
    assert "Billy rejected the credentials (HTTP 401: Invalid OAuth 2 access token. (OAUTH_INVALID_ACCESS_TOKEN))" in message
    assert "Settings -> Access tokens" in message and TOKEN not in message
    assert route.calls[0].request.headers["X-Access-Token"] == TOKEN
    assert route.call_count == 1  # not retried


@respx.mock
def test_422_validation_error_names_the_field(real, kit):
    respx.post(f"{BASE}/contacts").mock(return_value=billy_error(
        422, "Validation failed for contact", "VALIDATION_ERROR",
        validationErrors={"contact": {"attributes": {"countryId": "is not a country"}}}))
    with pytest.raises(VendorRejected) as info:
        real().create_contact(kit.customer(1), "k1")
    assert info.value.status_code == 422
    assert "Validation failed for contact: contact.countryId: is not a country (VALIDATION_ERROR)" in str(info.value)


@respx.mock
def test_400_bad_request_is_refused_once(real):
    route = respx.get(f"{BASE}/invoices").mock(
        return_value=billy_error(400, "page and pageSize must be integers", "BAD_REQUEST"))
    with pytest.raises(VendorRejected, match="HTTP 400.*page and pageSize must be integers"):
        real().find_document("order-1", "SHOP-1")
    assert route.call_count == 1


@respx.mock
def test_429_waits_retry_after_then_succeeds(real):
    route = respx.get(f"{BASE}/organization").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "0.2"},
                       json={"meta": {"statusCode": 429, "success": False}, "errorMessage": "Too many requests",
                             "errorCode": "TOO_MANY_REQUESTS"}),
        httpx.Response(200, json=ORG),
    ])
    started = time.monotonic()
    assert "Hygge ApS" in real().check()
    assert time.monotonic() - started >= 0.2
    assert route.call_count == 2


@respx.mock
def test_500_on_read_is_retried_and_on_write_is_outcome_unknown(real, kit):
    reads = respx.get(f"{BASE}/organization").mock(side_effect=[
        billy_error(500, "Internal error", "INTERNAL_SERVER_ERROR"), httpx.Response(200, json=ORG)])
    assert "Hygge ApS" in real().check()
    assert reads.call_count == 2
    writes = respx.post(f"{BASE}/contacts").mock(return_value=billy_error(500, "Internal error", "INTERNAL_SERVER_ERROR"))
    with pytest.raises(OutcomeUnknown):
        real().create_contact(kit.customer(1), "k1")
    assert writes.call_count == 1  # a write is never re-sent blindly


@respx.mock
def test_error_inside_http_200_is_refused(real):
    respx.get(f"{BASE}/organization").mock(return_value=httpx.Response(200, json={
        "meta": {"statusCode": 200, "success": False}, "errorMessage": "Company is locked",
        "errorCode": "ORGANIZATION_LOCKED"}))
    with pytest.raises(VendorRejected, match="Company is locked \\(ORGANIZATION_LOCKED\\)"):
        real().check()


@respx.mock
def test_html_page_instead_of_json(real):
    respx.get(f"{BASE}/organization").mock(
        return_value=httpx.Response(200, text="<html><body>Maintenance</body></html>"))
    with pytest.raises(TransientError, match="HTML page instead of JSON"):
        real().check()
    respx.get(f"{BASE}/contacts").mock(return_value=httpx.Response(
        404, text="<!DOCTYPE html><html>Not found</html>"))
    with pytest.raises(VendorRejected, match="an HTML page instead of an API answer"):
        list(real().contacts())


@respx.mock
def test_paging_follows_page_count(real):
    def page(request):
        n = int(request.url.params["page"])
        assert request.url.params["pageSize"] == "2"
        records = [{"id": f"c{n}{i}", "name": f"Kunde {n}{i}", "type": "company", "contactNo": f"k{n}{i}"}
                   for i in range(2 if n < 3 else 1)]
        return httpx.Response(200, json={"contacts": records, "meta": {"paging": {
            "page": n, "pageCount": 3, "pageSize": 2, "total": 5}}})

    route = respx.get(f"{BASE}/contacts").mock(side_effect=page)
    contacts = list(real(page_size=2).contacts())
    assert [c.target_id for c in contacts] == ["c10", "c11", "c20", "c21", "c30"]
    assert route.call_count == 3


@respx.mock
def test_paging_ends_without_a_page_count_or_at_an_empty_page(real):
    # No meta.paging (or pageCount 0): the answer is the only page, as before the paging helper.
    record = {"id": "c1", "name": "Kunde", "type": "company", "contactNo": "k1"}
    for meta in ({}, {"paging": {"pageCount": 0}}, {"paging": None}):
        with respx.mock:
            route = respx.get(f"{BASE}/contacts").respond(200, json={"contacts": [record], "meta": meta})
            assert [c.target_id for c in real(page_size=1).contacts()] == ["c1"]
            assert route.call_count == 1
    # An empty page ends the list even when the page count says there are more.
    route = respx.get(f"{BASE}/contacts").mock(side_effect=[
        httpx.Response(200, json={"contacts": [record], "meta": {"paging": {"pageCount": 9}}}),
        httpx.Response(200, json={"contacts": [], "meta": {"paging": {"pageCount": 9}}}),
    ])
    assert [c.target_id for c in real(page_size=1).contacts()] == ["c1"]
    assert route.call_count == 2
    assert [(call.request.url.params["page"], call.request.url.params["pageSize"]) for call in route.calls] == [
        ("1", "1"), ("2", "1")]


@respx.mock
def test_a_list_answer_without_its_records_or_with_an_error_envelope(real):
    respx.get(f"{BASE}/contacts").respond(200, json={"contacts": None, "meta": {"success": True}})
    with pytest.raises(TransientError, match=r"^Billy GET /contacts: the answer has no 'contacts' list$"):
        list(real().contacts())
    respx.get(f"{BASE}/accounts").respond(200, json={"meta": {"success": False}, "errorCode": "BAD",
                                                     "errorMessage": "nope"})
    with pytest.raises(VendorRejected, match=r"^Billy refused GET /accounts \(HTTP 200\): nope"):
        real().accounts()


def test_status_mapper_round_trip_and_unknown():
    from ledgerlink import MappedStatus, Status
    from ledgerlink_billy.statuses import BillyStatusMapper, raw_status

    mapper = BillyStatusMapper()
    for raw in ("draft", "approved", "sent", "overdue", "partially_paid", "paid", "voided"):
        assert mapper.from_canonical(mapper.to_canonical(raw)) == raw
    odd = mapper.to_canonical("archived")
    assert odd.status == Status.UNKNOWN and odd.raw == "archived"
    assert mapper.from_canonical(MappedStatus(Status.REMINDER, "reminder 1", 1)) == "overdue"
    from datetime import date

    invoice = {"state": "approved", "amount": 80.0, "tax": 20.0, "balance": 100.0, "isPaid": False,
               "dueDate": "2026-03-10", "sentState": "sent"}
    assert raw_status(invoice, date(2026, 3, 10)) == "sent"
    assert raw_status(invoice, date(2026, 3, 11)) == "overdue"
    assert raw_status({**invoice, "balance": 40.0}, date(2026, 3, 1)) == "partially_paid"
    assert raw_status(None, date(2026, 3, 1)) == "deleted"


def test_timeout_setting_reaches_the_http_client(kit):
    for settings, expected in (({}, 30.0), ({"timeout": 2.5}, 2.5)):
        target = kit.make_target(None, **settings)
        try:
            assert target.client._client.timeout.read == expected
        finally:
            target.close()
