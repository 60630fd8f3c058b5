"""End to end through the Billy sandbox: templates, drafts, approval, payments, statuses."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
from ledgerlink import (
    ConfigError,
    ConnectionError_,
    QuarantineError,
    SandboxServer,
    Status,
    TransientError,
)
from ledgerlink_billy.statuses import BillyStatusMapper

# template -> (account number, ruleset id) as demo_connection() fills them in
EXPECTED = {
    "goods_domestic": (1110, "rs_normal"),
    "goods_eu": (1120, "rs_eu_goods"),
    "goods_non_eu": (1130, "rs_export"),
    "shipping_domestic": (1150, "rs_normal"),
    "shipping_eu": (1150, "rs_eu_goods"),
    "shipping_non_eu": (1150, "rs_export"),
}


def requests(sandbox, method=None, path=None):
    return [r for r in sandbox.requests
            if (method is None or r["method"] == method) and (path is None or r["path"] == path)]


def line_bookings(sandbox, invoice_id):
    """(account number, ruleset id, description, amount, tax) per invoice line."""
    state = sandbox.state
    out = []
    for line in state["invoiceLines"].values():
        if line["invoiceId"] != invoice_id:
            continue
        product = state["products"][line["productId"]]
        account = state["accounts"][product["accountId"]]
        out.append((account["accountNo"], product["salesTaxRulesetId"], line["description"],
                    Decimal(str(line["amount"])), Decimal(str(line["tax"]))))
    return out


def push_all(target, kit, *, mark_paid=False, paid=False, start=1):
    refs = {}
    for offset, region in enumerate(("domestic", "eu", "non_eu")):
        doc = kit.shop_document(start + offset, region, paid=paid)
        contact = target.create_contact(doc.customer, f"shop:{doc.customer.source_id}")
        plan = kit.plan_for(doc, contact, mark_paid=mark_paid)
        target.validate(doc, plan)
        refs[region] = (doc, target.push(doc, plan))
    return refs


def test_six_templates_as_drafts_then_approved_with_payments(sandbox, target_for, kit):
    drafts = target_for()
    refs = push_all(drafts, kit, mark_paid=True, paid=True)
    invoices = sandbox.state["invoices"]
    for region, (doc, ref) in refs.items():
        invoice = invoices[ref.target_id]
        # drafts stay drafts, even when the pipeline says the documents arrive paid
        assert invoice["state"] == "draft" and invoice["approvedTime"] is None
        assert invoice["invoiceNo"] == doc.number == ref.number
        assert invoice["entryDate"] == "2026-03-02" and invoice["currencyId"] == "DKK"
        assert invoice["taxMode"] == "incl" and invoice["paymentTermsDays"] == 8
        bookings = line_bookings(sandbox, ref.target_id)
        assert [(b[0], b[1]) for b in bookings] == [
            EXPECTED[f"goods_{region}"], EXPECTED[f"goods_{region}"], EXPECTED[f"shipping_{region}"],
        ]
        assert bookings[0][2] == "T-shirt, blå, str. M"
        assert bookings[1][2] == "3 x Kasket"  # 3 x 33.33 is not 100.00: booked once
        gross = Decimal(str(invoice["amount"])) + Decimal(str(invoice["tax"]))
        assert gross == doc.total_gross == Decimal("548.90")
        assert Decimal(str(invoice["tax"])) == doc.total_tax
    assert refs["domestic"][0].total_tax == Decimal("109.78")
    assert refs["non_eu"][0].total_tax == Decimal("0.00")
    assert not requests(sandbox, "PUT")  # never approved
    assert not requests(sandbox, "POST", "/v2/bankPayments")
    # one product per template (six), reused by the second run
    assert len(sandbox.state["products"]) == 6

    booked = target_for(auto_book=True)
    refs = push_all(booked, kit, mark_paid=True, paid=True, start=10)
    for doc, ref in refs.values():
        invoice = invoices[ref.target_id]
        assert invoice["state"] == "approved" and invoice["invoiceNo"] == doc.number
        assert invoice["isPaid"] is True and Decimal(str(invoice["balance"])) == Decimal("0.00")
    payments = list(sandbox.state["bankPayments"].values())
    assert len(payments) == 3
    assert {Decimal(str(p["cashAmount"])) for p in payments} == {Decimal("548.90")}
    assert {p["cashAccountId"] for p in payments} == {"acc_bank"}
    assert {p["entryDate"] for p in payments} == {"2026-03-03"}
    assert len(sandbox.state["products"]) == 6
    # approval happened only in the auto_book run, once per invoice, after the draft check
    puts = requests(sandbox, "PUT")
    assert len(puts) == 3 and all(p["json"] == {"invoice": {"state": "approved"}} for p in puts)
    assert all(not (r["json"] or {}).get("invoice", {}).get("state")
               for r in requests(sandbox, "POST", "/v2/invoices"))
    assert not [r for r in sandbox.requests if r.get("validation_errors")]


def test_eu_business_gets_zero_rate_from_the_eu_ruleset(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = kit.shop_document(1, "eu", rate="0", company="Muster GmbH")
    contact = target.create_contact(doc.customer, "shop:b2b")
    ref = target.push(doc, kit.plan_for(doc, contact))
    invoice = sandbox.state["invoices"][ref.target_id]
    assert Decimal(str(invoice["tax"])) == Decimal("0.00")
    assert Decimal(str(invoice["amount"])) == Decimal("548.90")
    assert sandbox.state["contacts"][contact.target_id]["registrationNo"] == "DE123456789"


def test_unfilled_template_quarantines_with_its_name(sandbox, target_for, kit):
    target = target_for(goods_eu=None, shipping_eu=None)
    doc = kit.shop_document(1, "eu")
    contact = target.create_contact(doc.customer, "k1")
    with pytest.raises(QuarantineError, match=r"goods_eu \(Varer \(EU\)\).*not filled in"):
        target.push(doc, kit.plan_for(doc, contact))
    assert not sandbox.state["invoices"]
    # goods only: the shipping template is named
    doc.lines = doc.lines[2:]
    with pytest.raises(QuarantineError, match=r"shipping_eu"):
        target.validate(doc, kit.plan_for(doc, contact))


def test_amount_mismatch_deletes_the_draft_and_quarantines(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = kit.shop_document(1, "domestic", rate="0", paid=True)  # source: no VAT; template: 25 %
    contact = target.create_contact(doc.customer, "k1")
    with pytest.raises(QuarantineError) as info:
        target.push(doc, kit.plan_for(doc, contact, mark_paid=True))
    assert "548.90 DKK gross / 109.78 tax" in str(info.value)
    assert "0.00 tax" in str(info.value) and "deleted" in str(info.value)
    assert not sandbox.state["invoices"] and not sandbox.state["invoiceLines"]
    assert not requests(sandbox, "PUT") and not sandbox.state["bankPayments"]


def test_rule_account_overrides_template_account(sandbox, target_for, kit):
    target = target_for()
    doc = kit.shop_document(1, "domestic")
    contact = target.create_contact(doc.customer, "k1")
    ref = target.push(doc, kit.plan_for(doc, contact, accounts={1: "Salg af varer uden for EU"}))
    bookings = line_bookings(sandbox, ref.target_id)
    assert [(b[0], b[1]) for b in bookings] == [(1110, "rs_normal"), (1130, "rs_normal"), (1150, "rs_normal")]
    names = sorted(p["name"] for p in sandbox.state["products"].values())
    assert names == ["Fragt (Indland)", "Varer (Indland)", "Varer (Indland), konto 1130"]


def test_unknown_rule_account_quarantines(target_for, kit):
    target = target_for()
    doc = kit.shop_document(1, "domestic")
    contact = target.create_contact(doc.customer, "k1")
    with pytest.raises(QuarantineError, match="no account '9999' \\(from the pipeline rule\\)"):
        target.validate(doc, kit.plan_for(doc, contact, accounts={0: "9999"}))


def test_find_document_and_statuses(sandbox, target_for, kit):
    target = target_for()
    refs = push_all(target, kit)
    doc, ref = refs["eu"]
    assert target.find_document(doc.source_ref, doc.number) == ref
    assert target.find_document("order-404", "SHOP-404") is None
    assert sandbox.state["invoices"][ref.target_id]["invoiceNo"] == "SHOP-1002"
    mapper = BillyStatusMapper()
    statuses = dict((r.target_id, raw) for r, raw in target.statuses([ref]))
    assert statuses == {ref.target_id: "draft"}
    assert mapper.to_canonical("draft").status == Status.DRAFT

    booked = target_for(auto_book=True)
    doc2 = kit.shop_document(7, "domestic", paid=True)
    doc2.invoice_date = date.today()
    doc2.payments[0].date = date.today()
    contact = booked.create_contact(doc2.customer, "k7")
    ref2 = booked.push(doc2, kit.plan_for(doc2, contact))  # not mark_paid: stays open
    (_, raw), = booked.statuses([ref2])
    assert raw == "approved" and mapper.to_canonical(raw).status == Status.OPEN
    sandbox.state["invoices"][ref2.target_id]["dueDate"] = (date.today() - timedelta(days=1)).isoformat()
    (_, raw), = booked.statuses([ref2])
    assert raw == "overdue" and mapper.to_canonical(raw).status == Status.OVERDUE
    booked.book_payment(ref2, doc2, kit.plan_for(doc2, contact))
    booked.book_payment(ref2, doc2, kit.plan_for(doc2, contact))  # idempotent: balance is 0
    assert len(sandbox.state["bankPayments"]) == 1
    (_, raw), = booked.statuses([ref2])
    assert raw == "paid" and mapper.to_canonical(raw).status == Status.PAID
    del sandbox.state["invoices"][ref.target_id]
    (_, raw), = target.statuses([ref])
    assert mapper.to_canonical(raw).status == Status.CANCELLED


def test_partial_payment_and_payment_on_draft(sandbox, target_for, kit):
    booked = target_for(auto_book=True)
    doc = kit.shop_document(1, "domestic")
    doc.payments = [kit.shop_document(1, "domestic", paid=True).payments[0].model_copy(
        update={"amount": Decimal("100.00")})]
    contact = booked.create_contact(doc.customer, "k1")
    ref = booked.push(doc, kit.plan_for(doc, contact, mark_paid=True))
    invoice = sandbox.state["invoices"][ref.target_id]
    assert Decimal(str(invoice["balance"])) == Decimal("448.90") and invoice["isPaid"] is False
    (_, raw), = booked.statuses([ref])
    assert BillyStatusMapper().to_canonical(raw).status == Status.PARTIALLY_PAID

    draft_target = target_for()
    doc2 = kit.shop_document(2, "domestic", paid=True)
    ref2 = draft_target.push(doc2, kit.plan_for(doc2, contact, mark_paid=True))
    with pytest.raises(TransientError, match="still a draft"):
        draft_target.book_payment(ref2, doc2, kit.plan_for(doc2, contact, mark_paid=True))
    assert sandbox.describe() == "Billy sandbox holds 2 invoices (1 approved)"


def test_cash_account_in_other_currency_is_refused(sandbox, target_for, kit):
    target = target_for(auto_book=True, cash_account="Bankkonto EUR")
    doc = kit.shop_document(1, "domestic", paid=True)
    contact = target.create_contact(doc.customer, "k1")
    with pytest.raises(QuarantineError, match="is in EUR, the invoice in DKK"):
        target.push(doc, kit.plan_for(doc, contact, mark_paid=True))


def test_contacts_create_find_and_page(sandbox, target_for, kit):
    target = target_for(page_size=2)
    cust = kit.customer(1, country="DE", company="Muster GmbH", vat_id="DE123456789")
    contact = target.create_contact(cust, "billbee:cust-1")
    record = sandbox.state["contacts"][contact.target_id]
    assert record["type"] == "company" and record["name"] == "Muster GmbH"
    assert record["countryId"] == "DE" and record["contactNo"] == "billbee:cust-1"
    assert record["street"] == "Nørregade 7\n2. th." and record["zipcodeText"] == "8000"
    assert record["cityText"] == "Aarhus" and record["phone"] == "+45 12 34 56 78"
    person = next(p for p in sandbox.state["contactPersons"].values() if p["contactId"] == contact.target_id)
    assert person == {**person, "name": "Jens Hansen1", "email": "jens1@example.dk", "isPrimary": True}
    assert contact.company == "Muster GmbH" and contact.email == "jens1@example.dk"
    for n in range(2, 6):
        target.create_contact(kit.customer(n), f"billbee:cust-{n}")
    listed = list(target.contacts())
    assert len(listed) == 5
    assert len([r for r in requests(sandbox, "GET", "/v2/contacts")]) == 3  # pages 1..3
    found = target.find_contact("billbee:cust-4")
    assert found is not None and found.first_name == "Jens" and found.last_name == "Hansen4"
    assert found.email == "jens4@example.dk" and found.customer_number == "billbee:cust-4"
    assert target.find_contact("billbee:nobody") is None


def test_check_good_and_bad_token(sandbox, target_for):
    assert "Demo Webshop ApS" in target_for().check()
    with pytest.raises(ConnectionError_) as info:
        target_for(api_token="wrong-token-123").check()
    message = str(info.value)
    assert "Invalid OAuth 2 access token" in message and "Access tokens" in message
    assert "wrong-token-123" not in message and "\n" not in message


def test_check_names_a_template_typo(target_for):
    target = target_for(goods_eu={"account": "1120", "vat": "EU salg"}, cash_account="Debitorer")
    with pytest.raises(ConfigError) as info:
        target.check()
    assert "goods_eu.vat: Billy has no sales tax ruleset 'EU salg'" in str(info.value)
    assert "does not accept payments" in str(info.value)


def test_approved_invoices_cannot_be_edited_or_deleted(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = kit.shop_document(1, "domestic")
    ref = target.push(doc, kit.plan_for(doc, target.create_contact(doc.customer, "k1")))
    client = httpx.Client(transport=sandbox.transport(), base_url="http://sandbox/v2",
                          headers={"X-Access-Token": kit.DEMO_TOKEN})
    answer = client.delete(f"/invoices/{ref.target_id}")
    assert answer.status_code == 422 and answer.json()["meta"]["success"] is False
    assert "approved" in answer.json()["errorMessage"]
    answer = client.put(f"/invoices/{ref.target_id}", json={"invoice": {"contactMessage": "x"}})
    assert answer.status_code == 422
    assert client.delete("/invoices/does-not-exist").status_code == 200  # idempotent
    answer = client.post("/invoices", json={"invoice": {"contactId": "x", "externalId": "o-1"}})
    assert answer.status_code == 422 and answer.json()["errorCode"] == "VALIDATION_ERROR"
    attributes = answer.json()["validationErrors"]["invoice"]["attributes"]
    assert attributes["externalId"] == "unknown property" and attributes["entryDate"] == "is required"


def test_over_loopback_with_a_real_server(kit):
    from ledgerlink_billy.sandbox import BillySandbox

    sandbox = BillySandbox()
    with SandboxServer(sandbox) as server:
        target = kit.make_target(None, base_url=server.url, auto_book=True)
        try:
            assert "Demo Webshop ApS" in target.check()
            doc = kit.shop_document(1, "non_eu", paid=True)
            contact = target.create_contact(doc.customer, "k1")
            ref = target.push(doc, kit.plan_for(doc, contact, mark_paid=True))
            assert target.find_document(doc.source_ref, doc.number) == ref
        finally:
            target.close()
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["state"] == "approved" and invoice["isPaid"] is True
    assert Decimal(str(invoice["tax"])) == Decimal("0.00")
