"""sevDesk's error answers, mocked with respx: each ends in the right ledgerlink error."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import respx
from ledgerlink import (
    ConnectionError_,
    ConnectorContext,
    Line,
    OutcomeUnknown,
    QuarantineError,
    TaxTreatment,
    TransientError,
    VendorRejected,
)
from ledgerlink.testing import make_http_client
from ledgerlink_sevdesk.target import SevdeskTarget
from ledgerlink_sevdesk.taxes import ReceiptGuidance

BASE = "https://my.sevdesk.de/api/v1"
TOKEN = "0123456789abcdef0123456789abcdef"
DATA = Path(__file__).parent.parent / "ledgerlink_sevdesk" / "data"


def error(status: int, message: str, code: int | None = None) -> dict:
    return {"error": {"exceptionUUID": "00000000-0000-0000-0000-000000000000", "message": message,
                      "errorCode": 0, "code": code, "data": [], "responseCode": status}, "objects": None}


def real_target(**settings) -> SevdeskTarget:
    values = {"api_token": TOKEN, "backoff": 0.001, "retries": 2, "requests_per_second": 10_000}
    values.update(settings)
    context = ConnectorContext(connection="books", http_factory=make_http_client)
    return SevdeskTarget(SevdeskTarget.Settings(**values), context)


@respx.mock
def test_401_names_where_to_get_a_new_token_and_never_the_token():
    route = respx.get(f"{BASE}/Tools/bookkeepingSystemVersion").mock(
        return_value=httpx.Response(401, json=error(401, "Authentication required")))
    with pytest.raises(ConnectionError_) as caught:
        real_target().check()
    assert str(caught.value) == (
        "sevDesk rejected the API token; copy the API token again from sevDesk under Extensions > API"
        " (Erweiterungen > API)"
    )
    assert route.calls.last.request.headers["Authorization"] == TOKEN  # raw, no "Bearer"
    assert TOKEN not in str(caught.value)


@respx.mock
def test_401_on_a_later_call_is_a_connection_error_with_sevdesks_words():
    respx.get(f"{BASE}/CommunicationWay").mock(
        return_value=httpx.Response(401, json=error(401, "Authentication required")))
    with pytest.raises(ConnectionError_, match=r"HTTP 401: Authentication required\); copy the API token again"):
        list(real_target().contacts())


def guidance_target() -> SevdeskTarget:
    target = real_target()
    target.version = "2.0"
    target.guidance = ReceiptGuidance(json.loads((DATA / "receipt_guidance.json").read_text())["objects"])
    return target


def intra_eu_on_19(sev):
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("119.00"), tax_rate=Decimal(19))])
    plan = sev.plan_for(document, treatment=TaxTreatment.INTRA_EU_SUPPLY, accounts={Decimal(19): "8400"})
    return document, plan


@pytest.mark.parametrize("status", [422, 400])
@respx.mock
def test_422_or_400_on_save_quarantines_with_sevdesks_message_and_the_combination(sev, status):
    respx.post(f"{BASE}/Voucher/Factory/saveVoucher").mock(return_value=httpx.Response(
        status, json=error(status, "Die Kombination aus Steuerregel, Buchungskonto und Steuersatz ist ungültig")))
    target = guidance_target()
    target.validate = lambda document, plan: None  # let sevDesk be the one to refuse
    document, plan = intra_eu_on_19(sev)
    with pytest.raises(QuarantineError) as caught:
        target.push(document, plan)
    assert str(caught.value) == (
        f"sevDesk refused POST Voucher/Factory/saveVoucher (HTTP {status}): Die Kombination aus Steuerregel,"
        " Buchungskonto und Steuersatz ist ungültig (tried account 8400, tax rule 3, rate 19%)"
    )


@respx.mock
def test_429_waits_for_retry_after_then_succeeds():
    route = respx.get(f"{BASE}/Tools/bookkeepingSystemVersion").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "0.01"}, json=error(429, "Too Many Requests")),
        httpx.Response(200, json={"objects": {"version": "2.0"}}),
    ])
    assert real_target()._bookkeeping_version() == "2.0"
    assert route.call_count == 2


@respx.mock
def test_500_on_a_read_is_retried_then_transient():
    route = respx.get(f"{BASE}/CheckAccount").mock(return_value=httpx.Response(500, json=error(500, "boom")))
    with pytest.raises(TransientError) as caught:
        real_target()._load_check_accounts()
    message = str(caught.value)
    assert "CheckAccount: HTTP 500" in message and "gave up after 3 attempts" in message and "boom" in message
    assert route.call_count == 3


@respx.mock
def test_500_on_save_is_outcome_unknown_never_resent(sev):
    route = respx.post(f"{BASE}/Voucher/Factory/saveVoucher").mock(
        return_value=httpx.Response(500, json=error(500, "Internal error")))
    target = guidance_target()
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("119.00"), tax_rate=Decimal(19))])
    with pytest.raises(OutcomeUnknown, match="HTTP 500 after the request was sent"):
        target.push(document, sev.plan_for(document, accounts={Decimal(19): "8400"}))
    assert route.call_count == 1


@respx.mock
def test_error_inside_http_200_is_a_refusal():
    respx.put(f"{BASE}/Voucher/5/bookAmount").mock(return_value=httpx.Response(
        200, json=error(200, "The voucher is already paid", 751)))
    with pytest.raises(VendorRejected, match=r"HTTP 200\): The voucher is already paid \(sevDesk code 751\)"):
        real_target()._call("PUT", "Voucher/5/bookAmount", body={"amount": Decimal("1.00")})


@respx.mock
def test_html_error_page_is_a_clear_transient_error():
    respx.get(f"{BASE}/Tools/bookkeepingSystemVersion").mock(return_value=httpx.Response(
        200, text="<html><body>Wartungsarbeiten</body></html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(TransientError, match="sevDesk sent an HTML page instead of JSON"):
        real_target().check()



@respx.mock
def test_lists_page_by_limit_and_offset_to_the_first_short_page():
    rows = [{"id": str(n), "name": f"Tag {n}"} for n in range(5)]

    def page(request):
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        return httpx.Response(200, json={"objects": rows[offset:offset + limit]})

    route = respx.get(f"{BASE}/Tag").mock(side_effect=page)
    assert [t["id"] for t in real_target(page_size=2)._pages("Tag", name="x")] == ["0", "1", "2", "3", "4"]
    # No request after the short page; the query as always: the caller's, then limit, then offset.
    assert [call.request.url.query.decode() for call in route.calls] == [
        "name=x&limit=2&offset=0", "name=x&limit=2&offset=2", "name=x&limit=2&offset=4"]
    route.side_effect = None
    for body, expected, calls in (
        ({"objects": rows[:2]}, ["0", "1", "0", "1", "0", "1"], 3),  # full pages: on until a short one
        ({"objects": []}, [], 1),
        ({"objects": None}, [], 1),
        ({"objects": rows[0]}, ["0"], 1),  # one object instead of a list
    ):
        route.reset()
        route.return_value = httpx.Response(200, json=body)
        found = []
        for tag in real_target(page_size=2)._pages("Tag"):
            found.append(tag["id"])
            if len(found) == 6:
                break
        assert (found, route.call_count) == (expected, calls)

@respx.mock
def test_404_with_code_151_on_status_sync_reports_deleted():
    respx.get(f"{BASE}/Voucher/9").mock(return_value=httpx.Response(
        404, json=error(404, "No Model_Voucher with the id 9 was found", 151)))
    from ledgerlink import TargetRef

    ref = TargetRef(target_id="9", kind="voucher")
    assert list(real_target().statuses([ref])) == [(ref, "voucher:deleted")]


@respx.mock
def test_amounts_are_sent_as_exact_json_numbers(sev):
    def save(request):
        body = json.loads(request.content)
        positions = body["voucherPosSave"]
        gross = sum(Decimal(str(p["sumGross"])) for p in positions)
        tax = gross - sum(Decimal(str(p["sumNet"])) for p in positions)
        voucher = {"id": "1", "sumGross": str(gross), "sumTax": str(tax), "status": str(body["voucher"]["status"])}
        return httpx.Response(201, json={"objects": {
            "voucher": voucher, "voucherPos": [{"id": str(10 + i)} for i in range(len(positions))]}})

    route = respx.post(f"{BASE}/Voucher/Factory/saveVoucher").mock(side_effect=save)
    respx.post(f"{BASE}/Tag/Factory/create").mock(return_value=httpx.Response(
        200, json={"objects": {"id": "1", "objectName": "TagRelation", "tag": {"id": "7", "objectName": "Tag"}}}))
    respx.get(f"{BASE}/Tag").mock(return_value=httpx.Response(200, json={"objects": []}))
    target = guidance_target()
    document = sev.shop_order(lines=[Line(description="a", total=Decimal("0.10"), tax_rate=Decimal(19)),
                                     Line(description="b", total=Decimal("0.20"), tax_rate=Decimal(19))])
    target.push(document, sev.plan_for(document, accounts={Decimal(19): "8400"}))
    draft, registered = (call.request.content.decode() for call in route.calls)
    assert '"sumGross": 0.10' in draft and '"sumGross": 0.20' in draft and '"sumNet": 0.08' in draft
    assert '"status": 50' in draft and '"status": 100' in registered and '"id": 10' in registered
