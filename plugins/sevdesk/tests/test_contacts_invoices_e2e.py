"""Contacts, invoices, status mapping and the real loopback server."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from ledgerlink import (
    Address,
    ConnectionError_,
    Customer,
    Line,
    MappedStatus,
    QuarantineError,
    SandboxServer,
    Status,
    TaxTreatment,
)
from ledgerlink_sevdesk.sandbox import DEMO_TOKEN, SevdeskSandbox, SevdeskSpecValidator
from ledgerlink_sevdesk.statuses import SevdeskStatusMapper


def test_person_and_organisation_contacts_with_address_email_and_next_number(sev, sandbox, target):
    person = Customer(source_id="p1", first_name="Erika", last_name="Muster", email="erika@example.com",
                      address=Address(street="Teststr. 1", street2="Hinterhaus", zip="10115", city="Berlin",
                                      country="DE"))
    company = Customer(source_id="o1", company="Acme GmbH", first_name="Max", last_name="Mustermann",
                       vat_id="DE123456789", address=Address(city="Wien", country="AT"))
    erika = target.create_contact(person, "shop:p1")
    acme = target.create_contact(company, "shop:o1")

    assert (erika.customer_number, acme.customer_number) == ("1001", "1002")
    stored = sandbox.state["contacts"]
    assert (stored[erika.target_id]["surename"], stored[erika.target_id]["familyname"]) == ("Erika", "Muster")
    assert stored[erika.target_id]["name"] is None
    assert stored[acme.target_id]["name"] == "Acme GmbH" and stored[acme.target_id]["vatNumber"] == "DE123456789"
    # Germany is configured (id 1); Austria's id comes from GET /StaticCountry.
    germany, austria = sandbox.state["addresses"].values()
    assert germany["street"] == "Teststr. 1 Hinterhaus" and germany["country"]["id"] == "1"
    assert (austria["contact"]["id"], austria["street"], austria["city"], austria["country"]["id"]) == (
        acme.target_id, None, "Wien", "2")
    [way] = sandbox.state["communication_ways"].values()
    assert (way["type"], way["value"], way["key"]["id"], way["main"]) == ("EMAIL", "erika@example.com", "2", "1")

    assert target.find_contact("shop:o1") == acme
    assert target.find_contact("shop:o") is None
    assert target.find_contact_by_number("1001").target_id == erika.target_id
    listed = {c.target_id: c for c in target.contacts()}
    assert listed[erika.target_id].email == "erika@example.com"
    assert listed[acme.target_id].company == "Acme GmbH"
    sev.no_validation_errors(sandbox)


def test_contacts_page_through_everything(sev, sandbox):
    target = sev.make_target(sandbox, page_size=2)
    for n in range(5):
        target.create_contact(Customer(source_id=f"c{n}", last_name=f"Kunde {n}"), f"k{n}")
    assert [c.customer_number for c in target.contacts()] == ["1001", "1002", "1003", "1004", "1005"]
    limits = {e["query"] for e in sandbox.requests if e["path"].endswith("/Contact")}
    assert "depth=1&limit=2&offset=4" in limits


def test_check_describes_account_and_rejects_a_wrong_token(sev, sandbox):
    assert sev.make_target(sandbox).check() == (
        "sevDesk, bookkeeping system 2.0, payments on 'Basiskonto' (offline), 3 check accounts"
    )
    with pytest.raises(ConnectionError_) as caught:
        sev.make_target(sandbox, api_token="0" * 32).check()
    assert str(caught.value) == (
        "sevDesk rejected the API token; copy the API token again from sevDesk under Extensions > API"
        " (Erweiterungen > API)"
    )


def test_check_refuses_an_online_check_account(sev, sandbox):
    with pytest.raises(ConnectionError_, match="6306017 .* is an online account"):
        sev.make_target(sandbox, check_account=6306017).check()
    with pytest.raises(ConnectionError_, match="no check account with id 42"):
        sev.make_target(sandbox, payment_accounts={"paypal": 42}).check()


def invoice_target(sev, sandbox, **settings):
    return sev.make_target(sandbox, document_type="invoice", contact_person=1551095,
                           book_unassigned_payments=True, **settings)


def test_invoice_is_saved_sent_tagged_and_paid(sev, sandbox):
    target = invoice_target(sev, sandbox)
    document = sev.shop_order(paid=True)
    contact = target.create_contact(document.customer, "shop:c-7")
    plan = sev.plan_for(document, contact=contact, mark_paid=True)
    ref = target.push(document, plan)

    invoice = sandbox.state["invoices"][ref.target_id]
    assert ref.kind == "invoice" and ref.number == invoice["invoiceNumber"] == "RE-1000"
    assert invoice["status"] == "1000" and invoice["paidAmount"] == Decimal("51.87")
    assert Decimal(invoice["sumGross"]) == document.total_gross
    assert invoice["showNet"] == "0" and invoice["timeToPay"] == "14"
    assert invoice["customerInternalNote"] == "R-2026-0001"
    positions = [(p["quantity"], p["price"], p["name"]) for p in sandbox.state["invoice_positions"].values()]
    assert positions == [(Decimal(2), Decimal("16.99"), "Kaffeebohnen 1 kg"),
                         (Decimal(1), Decimal("12.99"), "Tasse"), (Decimal(1), Decimal("4.90"), "Versand")]
    booked = next(e["json"] for e in sandbox.requests if e["path"].endswith("bookAmount"))
    assert isinstance(booked["date"], int)
    assert [t["name"] for t in sandbox.state["tags"].values()] == ["Import"]
    assert target.find_document(document.source_ref, document.number) == ref
    assert list(target.statuses([ref])) == [(ref, "invoice:1000")]
    sev.no_validation_errors(sandbox)


def test_invoice_allows_oss_but_needs_a_contact(sev, sandbox):
    target = invoice_target(sev, sandbox, country_ids={"DE": 1, "AT": 2})
    document = sev.shop_order(country="AT", lines=[Line(description="Ware", total=Decimal("120.00"),
                                                        tax_rate=Decimal(20))])
    plan = sev.plan_for(document, treatment=TaxTreatment.OSS, accounts={Decimal(20): "8400"})
    with pytest.raises(QuarantineError, match="needs a contact"):
        target.validate(document, plan)
    plan.contact = target.create_contact(document.customer, "k")
    ref = target.push(document, plan)
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["taxRule"]["id"] == "18" and invoice["addressCountry"]["id"] == "2"
    assert invoice["sumGross"] == "120" and invoice["sumTax"] == "20"


def test_draft_invoices_are_left_unpaid_when_not_finalized(sev, sandbox):
    target = invoice_target(sev, sandbox, finalize_invoices=False)
    document = sev.shop_order(paid=True)
    plan = sev.plan_for(document, contact=target.create_contact(document.customer, "k"), mark_paid=True)
    ref = target.push(document, plan)
    assert list(target.statuses([ref])) == [(ref, "invoice:100")]
    assert sandbox.state["transactions"] == {}


def test_invoice_document_type_needs_a_contact_person(sev):
    with pytest.raises(ValueError, match="contact_person"):
        sev.make_target(None, document_type="invoice")


@pytest.mark.parametrize(("raw", "status"), [
    ("voucher:50", Status.DRAFT), ("voucher:100", Status.OPEN), ("voucher:750", Status.PARTIALLY_PAID),
    ("voucher:1000", Status.PAID), ("100", Status.OPEN), ("invoice:100", Status.DRAFT),
    ("invoice:200", Status.OPEN), ("invoice:750", Status.PARTIALLY_PAID), ("invoice:1000", Status.PAID),
    ("cancelled", Status.CANCELLED), ("invoice:cancelled", Status.CANCELLED),
    ("voucher:deleted", Status.UNKNOWN), ("order:100", Status.UNKNOWN),
])
def test_status_mapper(raw, status):
    mapped = SevdeskStatusMapper().to_canonical(raw)
    assert mapped == MappedStatus(status, raw)


def test_status_mapper_wording():
    mapper = SevdeskStatusMapper()
    assert mapper.from_canonical(MappedStatus(Status.PAID, "voucher:1000")) == "Bezahlt"
    assert mapper.from_canonical(MappedStatus(Status.UNKNOWN, "voucher:deleted")) == "voucher:deleted"


def test_sandbox_speaks_sevdesk_over_loopback(sev):
    sandbox = SevdeskSandbox()
    with SandboxServer(sandbox) as server:
        settings, env = sandbox.demo_connection(server.url)
        assert settings["api_token"] == "${SEVDESK_API_TOKEN}" and env == {"SEVDESK_API_TOKEN": DEMO_TOKEN}
        target = sev.make_target(None, base_url=settings["base_url"], api_token=env["SEVDESK_API_TOKEN"],
                                 book_unassigned_payments=True)
        document = sev.shop_order(paid=True)
        ref = target.push(document, sev.plan_for(document, mark_paid=True))
        assert list(target.statuses([ref])) == [(ref, "voucher:1000")]

        with httpx.Client(base_url=server.url) as client:
            missing = client.get("/api/v1/Voucher/1", headers={"Authorization": DEMO_TOKEN})
            assert missing.status_code == 404
            error = missing.json()["error"]
            assert (error["code"], error["responseCode"], missing.json()["objects"]) == (151, 404, None)
            bearer = client.get("/api/v1/Tools/bookkeepingSystemVersion",
                                headers={"Authorization": f"Bearer {DEMO_TOKEN}"})
            assert bearer.status_code == 401 and bearer.json()["error"]["message"] == "Authentication required"
            voucher = client.get(f"/api/v1/Voucher/{ref.target_id}", headers={"Authorization": DEMO_TOKEN}).json()
            assert isinstance(voucher["objects"], list) and voucher["objects"][0]["id"] == ref.target_id
            log = client.get("/__sandbox__/requests").json()
        assert [e for e in log if e.get("validation_errors")] == []


def test_sandbox_refuses_what_sevdesk_refuses(sandbox):
    with httpx.Client(transport=sandbox.transport(), base_url="http://s/api/v1",
                      headers={"Authorization": DEMO_TOKEN}) as client:
        paid = client.post("/Voucher/Factory/saveVoucher", json={
            "voucher": {"objectName": "Voucher", "mapAll": True, "status": 1000, "creditDebit": "D",
                        "voucherType": "VOU", "supplierName": "X", "taxRule": {"id": "1", "objectName": "TaxRule"}},
            "voucherPosSave": [{"objectName": "VoucherPos", "mapAll": True, "taxRate": 19, "net": False,
                                "sumNet": 100, "sumGross": 119, "accountDatev": {"id": 3631, "objectName": "AccountDatev"}}],
            "voucherPosDelete": None})
        assert paid.status_code == 422 and "status 50 (draft) or 100" in paid.json()["error"]["message"]
        no_category = client.post("/Contact", json={"name": "Acme"})
        assert no_category.status_code == 400
        assert no_category.json()["error"]["message"] == "Validation error: body: 'category' is a required property"
    assert sandbox.requests[-1]["validation_errors"] == ["body: 'category' is a required property"]


def test_requests_deviate_from_the_raw_official_spec_only_where_the_errata_say(sev, sandbox):
    """The raw spec (no errata) must find nothing but the documented contradictions."""
    target = sev.make_target(sandbox, book_unassigned_payments=True, cost_centre=1)
    document = sev.shop_order(paid=True)
    contact = target.create_contact(document.customer, "k")
    target.push(document, sev.plan_for(document, contact=contact, mark_paid=True))
    target.create_contact(Customer(source_id="at", company="Wiener AG", address=Address(city="Wien", country="AT")),
                          "k-at")
    raw = SevdeskSpecValidator(errata=False)
    found = set()
    for entry in sandbox.requests:
        query = dict(httpx.QueryParams(entry["query"]))
        for problem in raw.validate(entry["method"], entry["path"], query, entry["json"]):
            found.add((entry["path"].rsplit("/", 1)[-1], problem))
    assert found == {
        ("saveVoucher", "body: 'voucherPos' is a required property"),
        ("saveVoucher", "voucher: 'taxType' is a required property"),
        ("saveVoucher", "voucherPosSave/0: 'accountingType' is a required property"),
        ("saveVoucher", "voucherPosSave/0: 'voucher' is a required property"),
        ("saveVoucher", "voucherPosSave/1: 'accountingType' is a required property"),
        ("saveVoucher", "voucherPosSave/1: 'voucher' is a required property"),
        ("saveVoucher", "voucherPosSave/2: 'accountingType' is a required property"),
        ("saveVoucher", "voucherPosSave/2: 'voucher' is a required property"),
        ("StaticCountry", "GET /api/v1/StaticCountry is not in the API description"),
    }


def test_a_failed_finalize_after_saving_is_outcome_unknown_and_the_invoice_is_adopted(sev, sandbox):
    from ledgerlink import OutcomeUnknown, VendorRejected

    target = invoice_target(sev, sandbox)
    document = sev.shop_order()
    plan = sev.plan_for(document, contact=target.create_contact(document.customer, "k"))
    real_call = target._call

    def call(method, path, **kwargs):
        if path.endswith("/sendBy"):
            raise VendorRejected("sevDesk refused PUT sendBy (HTTP 400): busy", status_code=400)
        return real_call(method, path, **kwargs)

    target._call = call
    with pytest.raises(OutcomeUnknown, match="was saved, but finalizing it"):
        target.push(document, plan)
    assert len(sandbox.state["invoices"]) == 1
    target._call = real_call
    found = target.find_document(document.source_ref, document.number)
    assert found is not None and found.target_id in sandbox.state["invoices"]
