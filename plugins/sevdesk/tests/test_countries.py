"""Country ids: country_ids overrides, then one GET /StaticCountry per run."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import httpx
import pytest
import respx
from ledgerlink import Address, ConnectorContext, Customer, Line, QuarantineError, SandboxServer
from ledgerlink.testing import make_http_client
from ledgerlink_sevdesk.sandbox import DEMO_TOKEN, SevdeskSandbox
from ledgerlink_sevdesk.target import SevdeskTarget


def customer(source_id: str, country: str, **fields) -> Customer:
    return Customer(source_id=source_id, last_name=f"Kunde {source_id}", email=f"{source_id}@example.com",
                    address=Address(street="Hauptstr. 5", zip="1010", city="Stadt", country=country), **fields)


def country_requests(sandbox: SevdeskSandbox) -> list[dict]:
    return [e for e in sandbox.requests if e["path"].endswith("/StaticCountry")]


def address_countries(sandbox: SevdeskSandbox) -> dict[str, str]:
    """contact id -> StaticCountry id of its address."""
    return {a["contact"]["id"]: a["country"]["id"] for a in sandbox.state["addresses"].values()}


def test_contacts_abroad_get_addresses_from_one_static_country_lookup(sev, sandbox, caplog):
    target = sev.make_target(sandbox)
    caplog.set_level(logging.WARNING, logger="ledgerlink.sevdesk")
    made = {code: target.create_contact(customer(f"c-{code}", code), f"shop:{code}")
            for code in ("DE", "AT", "CH", "US", "AT", "GB")}

    # The sandbox's list (constructed ids, Germany = 1 as recorded).
    assert address_countries(sandbox)[made["US"].target_id] == "33"
    by_code = {c["code"]: c["id"] for c in sandbox.state["countries"]}
    addresses = list(sandbox.state["addresses"].values())
    assert [a["country"]["id"] for a in addresses] == [
        by_code[c] for c in ("de", "at", "ch", "us", "at", "gb")
    ] == ["1", "2", "3", "33", "2", "32"]
    assert all(a["country"]["objectName"] == "StaticCountry" for a in addresses)
    # DE is configured (country_ids default), so the list is read when AT is first needed, and only once.
    lookups = country_requests(sandbox)
    assert len(lookups) == 1 and lookups[0]["query"] == "limit=100&offset=0"
    paths = [e["path"].rsplit("/", 1)[-1] for e in sandbox.requests]
    assert paths.index("StaticCountry") > paths.index("ContactAddress")  # after the DE contact's address
    assert caplog.records == []
    sev.no_validation_errors(sandbox)


def test_the_target_reads_sevdesks_list_whatever_the_case_of_its_codes(sev):
    sandbox = SevdeskSandbox(seed={"StaticCountry": {"objects": [
        {"id": 1, "objectName": "StaticCountry", "code": "DE", "name": "Deutschland"},
        {"id": "771", "objectName": "StaticCountry", "code": "CH", "name": "Schweiz"},
        {"id": "772", "objectName": "StaticCountry", "code": "at", "name": "Österreich"},
        {"id": "773", "objectName": "StaticCountry", "code": "", "name": "Ohne Code"},
        {"id": "774", "objectName": "StaticCountry", "code": "gr", "name": "Griechenland"},
    ]}})
    target = sev.make_target(sandbox)
    ids = [target.create_contact(customer(f"c{n}", code), f"k{n}").target_id
           for n, code in enumerate(("ch", "AT", "EL"))]  # EL: Greece's VAT prefix
    assert [address_countries(sandbox)[i] for i in ids] == ["771", "772", "774"]
    assert len(country_requests(sandbox)) == 1


def test_country_ids_override_the_list_and_spare_the_lookup(sev, sandbox):
    target = sev.make_target(sandbox, country_ids={"DE": 1, "at": 3})  # deliberately not Austria's listed 2
    contact = target.create_contact(customer("c1", "AT"), "k1")
    assert address_countries(sandbox) == {contact.target_id: "3"}
    assert country_requests(sandbox) == []


def test_a_country_sevdesk_does_not_know_gets_no_address_and_one_warning(sev, sandbox, caplog):
    target = sev.make_target(sandbox)
    caplog.set_level(logging.WARNING, logger="ledgerlink.sevdesk")
    kosovo = target.create_contact(customer("c-xk", "XK"), "k-xk")  # not in the sandbox's list
    swiss = target.create_contact(customer("c-ch", "CH"), "k-ch")

    assert kosovo.target_id in sandbox.state["contacts"]
    assert address_countries(sandbox) == {swiss.target_id: "3"}
    assert {w["contact"]["id"] for w in sandbox.state["communication_ways"].values()} == {
        kosovo.target_id, swiss.target_id}
    assert [r.getMessage() for r in caplog.records] == [
        f"sevDesk knows no country XK (not in country_ids, not in GET /StaticCountry); "
        f"contact {kosovo.target_id} gets no address"
    ]
    assert len(country_requests(sandbox)) == 1
    sev.no_validation_errors(sandbox)


def test_a_contact_without_street_zip_or_city_needs_no_country(sev, sandbox):
    target = sev.make_target(sandbox)
    target.create_contact(Customer(source_id="c", last_name="Ohne", address=Address(country="US")), "k")
    assert sandbox.state["addresses"] == {} and country_requests(sandbox) == []


def test_invoice_address_country_comes_from_the_lookup(sev, sandbox):
    target = sev.make_target(sandbox, document_type="invoice", contact_person=1551095)
    swiss = sev.shop_order("BB-CH", country="CH", lines=[
        Line(description="Ware", total=Decimal("50.00"), tax_rate=Decimal(0))])
    contact = target.create_contact(swiss.customer, "k-ch")
    ref = target.push(swiss, sev.plan_for(swiss, contact=contact, treatment="export"))
    assert sandbox.state["invoices"][ref.target_id]["addressCountry"] == {"id": "3", "objectName": "StaticCountry"}

    unknown = sev.shop_order("BB-XK", country="XK")
    with pytest.raises(QuarantineError, match=r"sevDesk knows no country XK .* add its StaticCountry id to country_ids"):
        target.validate(unknown, sev.plan_for(unknown, contact=contact))
    assert len(country_requests(sandbox)) == 1


def test_static_country_over_loopback(sev):
    sandbox = SevdeskSandbox()
    with SandboxServer(sandbox) as server:
        settings, env = sandbox.demo_connection(server.url)
        target = sev.make_target(None, base_url=settings["base_url"], api_token=env["SEVDESK_API_TOKEN"])
        contact = target.create_contact(customer("c-no", "NO"), "k-no")
        log = httpx.get(server.url + "/__sandbox__/requests").json()
    [address] = sandbox.state["addresses"].values()
    assert address["contact"]["id"] == contact.target_id and address["country"]["id"] == "29"
    assert [e["path"] for e in log if e["path"].endswith("StaticCountry")] == ["/api/v1/StaticCountry"]
    assert [e for e in log if e.get("validation_errors")] == []


BASE = "https://my.sevdesk.de/api/v1"
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("answer", [
    httpx.Response(404, json={"error": {"message": "Not found", "code": 151, "responseCode": 404},
                              "objects": None}),
    httpx.Response(200, json={"error": {"message": "Not allowed", "code": 390}, "objects": None}),
])
def test_an_unreadable_country_list_warns_once_and_keeps_the_contacts(answer, caplog):
    context = ConnectorContext(connection="books", http_factory=make_http_client)
    target = SevdeskTarget(SevdeskTarget.Settings(api_token=TOKEN, backoff=0.001, retries=1,
                                                  requests_per_second=10_000), context)
    caplog.set_level(logging.WARNING, logger="ledgerlink.sevdesk")
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        countries = mock.get("/StaticCountry").mock(return_value=answer)
        numbers = iter(["1001", "1002"])
        mock.get("/Contact/Factory/getNextCustomerNumber").mock(
            side_effect=lambda request: httpx.Response(200, json={"objects": next(numbers)}))
        ids = iter(["11", "12"])
        mock.post("/Contact").mock(side_effect=lambda request: httpx.Response(
            201, json={"objects": {"id": next(ids), "objectName": "Contact", "familyname": "K"}}))
        mock.post("/CommunicationWay").mock(return_value=httpx.Response(201, json={"objects": {"id": "5"}}))
        addresses = mock.post("/ContactAddress")
        first = target.create_contact(customer("a", "AT"), "ka")
        second = target.create_contact(customer("b", "FR"), "kb")
    assert (first.target_id, second.target_id) == ("11", "12")
    assert countries.call_count == 1 and addresses.call_count == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith("sevDesk's country list (GET /StaticCountry) could not be read, so only "
                                  "country_ids are used: ")
    assert messages[1:] == [
        "sevDesk knows no country AT (not in country_ids, not in GET /StaticCountry); contact 11 gets no address",
        "sevDesk knows no country FR (not in country_ids, not in GET /StaticCountry); contact 12 gets no address",
    ]
    assert TOKEN not in " ".join(messages)


def test_sandbox_refuses_unknown_country_ids_and_reads_old_state_files(tmp_path):
    old = SevdeskSandbox().state
    del old["countries"]  # a --state file from before the sandbox knew countries
    path = tmp_path / "state.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    sandbox = SevdeskSandbox(state_path=path)
    with httpx.Client(transport=sandbox.transport(), base_url="http://s/api/v1",
                      headers={"Authorization": DEMO_TOKEN}) as client:
        listed = client.get("/StaticCountry", params={"limit": 5, "offset": 0}).json()["objects"]
        assert [(c["id"], c["code"], c["nameEn"]) for c in listed] == [
            ("1", "de", "Germany"), ("2", "at", "Austria"), ("3", "ch", "Switzerland"), ("4", "be", "Belgium"),
            ("5", "bg", "Bulgaria")]
        contact = client.post("/Contact", json={"name": "Acme", "category": {"id": 3, "objectName": "Category"}})
        wrong = client.post("/ContactAddress", json={
            "contact": {"id": int(contact.json()["objects"]["id"]), "objectName": "Contact"},
            "country": {"id": 9999, "objectName": "StaticCountry"}, "category": {"id": 47, "objectName": "Category"}})
    assert wrong.status_code == 404
    assert (wrong.json()["error"]["code"], wrong.json()["error"]["message"]) == (
        151, "No Model_StaticCountry with the id 9999 was found")
    assert [e for e in sandbox.requests if e.get("validation_errors")] == []
