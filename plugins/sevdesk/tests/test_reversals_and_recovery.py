"""Issue 15 in-process: credit notes that reverse a pushed original (voucher and invoice mode),
a draft found after an interruption (complete), gift voucher payments, sandbox refusals."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import httpx
import pytest
import respx
from ledgerlink import Line, OutcomeUnknown, Payment, QuarantineError, TargetRef, VendorRejected
from ledgerlink_sevdesk import mapping
from ledgerlink_sevdesk.sandbox import DEMO_TOKEN

BASE = "https://my.sevdesk.de/api/v1"


def client(sandbox):
    return httpx.Client(transport=sandbox.transport(), base_url="http://sevdesk.test/api/v1/",
                        headers={"Authorization": DEMO_TOKEN})


def lose_answer_of_register(target):
    """The register call (second saveVoucher) reaches nobody: as a crash between draft and register."""
    real = target._call

    def call(method, path, **kwargs):
        body = kwargs.get("body")
        if path.endswith("saveVoucher") and body["voucher"].get("id"):
            raise OutcomeUnknown("sevDesk POST saveVoucher: the answer was lost")
        return real(method, path, **kwargs)

    target._call = call
    return real


# -- a draft found after an interruption ------------------------------------------------
def test_a_draft_left_between_save_and_register_is_checked_and_registered_by_complete(sev, sandbox):
    target = sev.make_target(sandbox)
    document = sev.shop_order()
    plan = sev.plan_for(document)
    real = lose_answer_of_register(target)
    with pytest.raises(OutcomeUnknown):
        target.push(document, plan)
    [draft] = sandbox.state["vouchers"].values()
    assert draft["status"] == "50"
    target._call = real
    fresh = sev.make_target(sandbox)  # the next run: a new process
    ref = fresh.find_document(document.source_ref, document.number)  # drafts are found too
    assert ref is not None and ref.target_id == draft["id"]
    fresh.complete(ref, document, plan)
    voucher = sandbox.state["vouchers"][ref.target_id]
    assert voucher["status"] == "100"
    assert Decimal(voucher["sumGross"]) == document.total_gross and Decimal(voucher["sumTax"]) == document.total_tax
    assert len([p for p in sandbox.state["voucher_positions"].values() if p["voucher"]["id"] == ref.target_id]) == 3
    fresh.complete(ref, document, plan)  # again: nothing more
    assert len(sandbox.state["vouchers"]) == 1 and voucher["status"] == "100"
    sev.no_validation_errors(sandbox)


def test_a_found_draft_whose_sums_differ_is_deleted_and_quarantined_by_complete(sev, sandbox):
    target = sev.make_target(sandbox)
    document = sev.shop_order()
    plan = sev.plan_for(document)
    lose_answer_of_register(target)
    with pytest.raises(OutcomeUnknown):
        target.push(document, plan)
    [draft] = sandbox.state["vouchers"].values()
    draft["sumTax"] = "5.08"  # sevDesk's figure differs from the source's 5.07 by a cent
    fresh = sev.make_target(sandbox)
    ref = fresh.find_document(document.source_ref, document.number)
    with pytest.raises(QuarantineError, match=r"sevDesk computed gross 51.87 and VAT 5.08 EUR for voucher \d+, the "
                                              r"source states gross 51.87 and VAT 5.07; the sevDesk draft voucher "
                                              r"\d+ was deleted"):
        fresh.complete(ref, document, plan)
    assert sandbox.state["vouchers"] == {} and sandbox.state["voucher_positions"] == {}
    assert fresh.find_document(document.source_ref, document.number) is None


def test_an_invoice_draft_found_after_a_failed_send_is_sent_by_complete(sev, sandbox):
    target = sev.make_target(sandbox, document_type="invoice", contact_person=1551095)
    document = sev.shop_order()
    plan = sev.plan_for(document, contact=target.create_contact(document.customer, "k"))
    real = target._call
    target._call = lambda method, path, **kw: (_ for _ in ()).throw(VendorRejected("busy", status_code=400)) \
        if path.endswith("sendBy") else real(method, path, **kw)
    with pytest.raises(OutcomeUnknown, match="finalizing it \\(sendBy\\) failed"):
        target.push(document, plan)
    fresh = sev.make_target(sandbox, document_type="invoice", contact_person=1551095)
    ref = fresh.find_document(document.source_ref, document.number)
    assert sandbox.state["invoices"][ref.target_id]["status"] == "100"
    fresh.complete(ref, document, plan)
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["status"] == "200" and invoice["invoiceNumber"].startswith("RE-")


# -- credit notes -----------------------------------------------------------------------
def test_a_reversal_of_a_voucher_is_a_negative_voucher_naming_the_original_found_again(sev, sandbox):
    target = sev.make_target(sandbox, book_unassigned_payments=True)
    original = sev.shop_order(paid=True)
    ref = target.push(original, sev.plan_for(original, mark_paid=True))
    credit = original.reversal(date(2026, 4, 1))
    plan = sev.plan_for(credit, reverses=TargetRef(target_id=ref.target_id, number=ref.number))
    credit_ref = target.push(credit, plan)

    voucher = sandbox.state["vouchers"][credit_ref.target_id]
    assert voucher["status"] == "100" and voucher["creditDebit"] == "D" and voucher["description"] == "BB-1001~reversal"
    assert Decimal(voucher["sumGross"]) == -original.total_gross == Decimal("-51.87")
    assert Decimal(voucher["sumTax"]) == -original.total_tax
    positions = [p for p in sandbox.state["voucher_positions"].values()
                 if p["voucher"]["id"] == credit_ref.target_id]
    assert all(p["comment"].startswith(f"Storno zu R-2026-0001 (sevDesk Beleg {ref.target_id})")
               for p in positions)
    assert [p["sumGross"] for p in positions] == ["-33.98", "-12.99", "-4.9"]
    assert target.find_document(credit.source_ref, credit.number) == credit_ref
    assert sev.make_target(sandbox).find_document(original.source_ref, original.number) == ref
    sev.no_validation_errors(sandbox)


def test_a_reversal_of_a_voucher_that_is_gone_is_quarantined(sev, sandbox, target):
    credit = sev.shop_order().reversal(date(2026, 4, 1))
    plan = sev.plan_for(credit, reverses=TargetRef(target_id="999", number="R-1"))
    with pytest.raises(QuarantineError, match="it reverses sevDesk voucher 999 \\(R-1\\), which sevDesk no longer"):
        target.push(credit, plan)
    assert sandbox.state["vouchers"] == {}


def invoice_target(sev, sandbox):
    return sev.make_target(sandbox, document_type="invoice", contact_person=1551095, book_unassigned_payments=True)


def test_a_full_reversal_of_an_invoice_is_sevdesks_cancellation_invoice_found_again(sev, sandbox):
    target = invoice_target(sev, sandbox)
    original = sev.shop_order()
    contact = target.create_contact(original.customer, "k")
    ref = target.push(original, sev.plan_for(original, contact=contact))
    credit = original.reversal(date(2026, 4, 1))
    plan = sev.plan_for(credit, contact=contact, reverses=TargetRef(target_id=ref.target_id, number=ref.number))
    credit_ref = target.push(credit, plan)

    cancellation = sandbox.state["invoices"][credit_ref.target_id]
    assert cancellation["invoiceType"] == "SR"
    assert cancellation["origin"] == {"id": ref.target_id, "objectName": "Invoice"}
    assert Decimal(cancellation["sumGross"]) == credit.total_gross == Decimal("-51.87")
    assert Decimal(cancellation["sumTax"]) == credit.total_tax
    assert sum(1 for e in sandbox.requests if e["path"].endswith("cancelInvoice")) == 1
    fresh = invoice_target(sev, sandbox)  # a new process finds it by its reference tag
    assert fresh.find_document(credit.source_ref, credit.number) == credit_ref
    # pushed again (the ledger lost the answer): the cancellation is adopted, never made twice
    assert fresh.push(credit, plan).target_id == credit_ref.target_id
    assert sum(1 for e in sandbox.requests if e["path"].endswith("cancelInvoice")) == 1
    assert len([i for i in sandbox.state["invoices"].values() if i["invoiceType"] == "SR"]) == 1
    sev.no_validation_errors(sandbox)


def test_a_cancellation_invoice_whose_tag_was_lost_is_adopted_on_the_next_push(sev, sandbox):
    target = invoice_target(sev, sandbox)
    original = sev.shop_order()
    contact = target.create_contact(original.customer, "k")
    ref = target.push(original, sev.plan_for(original, contact=contact))
    credit = original.reversal(date(2026, 4, 1))
    plan = sev.plan_for(credit, contact=contact, reverses=TargetRef(target_id=ref.target_id, number=ref.number))
    real = target._call

    def call(method, path, **kwargs):
        if path.endswith("Tag/Factory/create"):
            raise OutcomeUnknown("the answer was lost")
        return real(method, path, **kwargs)

    target._call = call
    with pytest.raises(OutcomeUnknown):
        target.push(credit, plan)
    fresh = invoice_target(sev, sandbox)
    assert fresh.find_document(credit.source_ref, credit.number) is None  # no tag yet: pushed again
    credit_ref = fresh.push(credit, plan)
    assert sandbox.state["invoices"][credit_ref.target_id]["invoiceType"] == "SR"
    assert sum(1 for e in sandbox.requests if e["path"].endswith("cancelInvoice")) == 1
    assert fresh.find_document(credit.source_ref, credit.number) == credit_ref


def test_a_partial_credit_note_on_an_invoice_is_quarantined_with_both_figures(sev, sandbox):
    target = invoice_target(sev, sandbox)
    original = sev.shop_order()
    contact = target.create_contact(original.customer, "k")
    ref = target.push(original, sev.plan_for(original, contact=contact))
    credit = original.reversal(date(2026, 4, 1))
    credit.lines = credit.lines[:1]
    plan = sev.plan_for(credit, contact=contact, reverses=TargetRef(target_id=ref.target_id, number=ref.number))
    with pytest.raises(QuarantineError, match=r"it credits gross -33.98 \(VAT -2.22\) of sevDesk invoice RE-1000 "
                                              r"with gross 51.87 \(VAT 5.07\): sevDesk cancels an invoice only in full"):
        target.push(credit, plan)
    assert not any(e["path"].endswith("cancelInvoice") for e in sandbox.requests)


def test_sandbox_refuses_cancelling_a_draft_twice_or_partly_paid(sev, sandbox):
    target = sev.make_target(sandbox, document_type="invoice", contact_person=1551095, finalize_invoices=False)
    document = sev.shop_order()
    ref = target.push(document, sev.plan_for(document, contact=target.create_contact(document.customer, "k")))
    http = client(sandbox)
    draft = http.post(f"Invoice/{ref.target_id}/cancelInvoice")
    assert draft.status_code == 400 and "draft" in draft.json()["error"]["message"]
    http.put(f"Invoice/{ref.target_id}/sendBy", json={"sendType": "VPDF", "sendDraft": False})
    assert http.post(f"Invoice/{ref.target_id}/cancelInvoice").status_code == 201
    again = http.post(f"Invoice/{ref.target_id}/cancelInvoice")
    assert again.status_code == 400 and again.json()["error"]["code"] == 421
    other = sev.shop_order("BB-2", number="R-2")
    other_ref = target.push(other, sev.plan_for(other, contact=target.create_contact(other.customer, "k2")))
    http.put(f"Invoice/{other_ref.target_id}/sendBy", json={"sendType": "VPDF", "sendDraft": False})
    body = mapping.payment_payload(other_ref, Decimal("10.00"), date(2026, 3, 16), full=False, account=6305996)
    assert http.put(f"Invoice/{other_ref.target_id}/bookAmount", content=mapping.dumps(body)).status_code == 200
    partly = http.post(f"Invoice/{other_ref.target_id}/cancelInvoice")
    assert partly.status_code == 200 and partly.json()["error"]["code"] == 390  # an error inside HTTP 200


@respx.mock
def test_cancel_refused_inside_http_200_quarantines_with_sevdesks_message(sev):
    target = sev.make_target(None, base_url=BASE, document_type="invoice", contact_person=1)
    target.version = "2.0"
    respx.get(f"{BASE}/Invoice").mock(return_value=httpx.Response(200, json={"objects": []}))
    respx.get(f"{BASE}/Invoice/7").mock(return_value=httpx.Response(200, json={"objects": [
        {"id": "7", "status": "750", "sumGross": "51.87", "sumTax": "5.07", "invoiceType": "RE"}]}))
    respx.post(f"{BASE}/Invoice/7/cancelInvoice").mock(return_value=httpx.Response(200, json={
        "error": {"message": "A partly paid invoice cannot be cancelled", "code": 390}, "objects": None}))
    credit = sev.shop_order().reversal(date(2026, 4, 1))
    contact = type("C", (), {"target_id": "1"})()
    plan = sev.plan_for(credit, reverses=TargetRef(target_id="7", number="RE-7"))
    plan.contact = contact
    with pytest.raises(QuarantineError, match=r"sevDesk refused to cancel sevDesk invoice RE-7: .*partly paid "
                                              r"invoice cannot be cancelled \(sevDesk code 390\)"):
        target._cancel_invoice(credit, plan)


@respx.mock
def test_find_document_reads_the_reference_tag_of_a_cancellation_invoice(sev):
    target = sev.make_target(None, base_url=BASE, document_type="invoice", contact_person=1)
    respx.get(f"{BASE}/Invoice").mock(return_value=httpx.Response(200, json={"objects": []}))
    tags = respx.get(f"{BASE}/Tag").mock(return_value=httpx.Response(200, json={"objects": [
        {"id": "5", "name": "ledgerlink-ref: X-1~reversal"}, {"id": "6", "name": "ledgerlink-ref: X-1~reversal2"}]}))
    respx.get(f"{BASE}/TagRelation").mock(return_value=httpx.Response(200, json={"objects": [
        {"id": "1", "tag": {"id": "6"}, "object": {"id": "40", "objectName": "Invoice"}},
        {"id": "2", "tag": {"id": "5"}, "object": {"id": "41", "objectName": "Invoice"}}]}))
    respx.get(f"{BASE}/Invoice/41").mock(return_value=httpx.Response(200, json={"objects": [
        {"id": "41", "invoiceNumber": "SR-1", "invoiceType": "SR"}]}))
    assert target.find_document("X-1~reversal") == TargetRef(target_id="41", number="SR-1", kind="invoice")
    assert tags.calls.last.request.url.params["name"] == "ledgerlink-ref: X-1~reversal"


# -- gift vouchers -----------------------------------------------------------------------
def gift_paid(sev):
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("100.00"), tax_rate=Decimal(19))])
    document.payments = [
        Payment(amount=Decimal("30.00"), date=date(2026, 3, 15), method="Gutschein", kind="voucher"),
        Payment(amount=Decimal("70.00"), date=date(2026, 3, 16), method="paypal"),
    ]
    return document


def test_a_gift_voucher_is_booked_from_the_clearing_account_named_by_name_or_id(sev, sandbox):
    target = sev.make_target(sandbox, payment_accounts={"paypal": 6306016})
    document = gift_paid(sev)
    ref = target.push(document, sev.plan_for(document, mark_paid=True, voucher_account="basiskonto"))
    voucher = sandbox.state["vouchers"][ref.target_id]
    assert voucher["status"] == "1000" and Decimal(voucher["sumGross"]) == Decimal("100.00")  # goods at full price
    booked = [(t["checkAccount"]["id"], t["amount"], t["valueDate"][:10])
              for t in sandbox.state["transactions"].values()]
    assert booked == [("6305996", "30", "2026-03-15"), ("6306016", "70", "2026-03-16")]
    other = gift_paid(sev)
    other.source_ref, other.number = "BB-2", "R-2"
    target.push(other, sev.plan_for(other, mark_paid=True, voucher_account="6305996"))
    assert len(sandbox.state["transactions"]) == 4


def test_an_unknown_voucher_account_is_quarantined_before_anything_is_written(sev, sandbox, target):
    document = gift_paid(sev)
    with pytest.raises(QuarantineError, match="sevDesk has no check account named or numbered 'Gutscheine' \\(the "
                                              "pipeline's voucher_account"):
        target.push(document, sev.plan_for(document, mark_paid=True, voucher_account="Gutscheine"))
    with pytest.raises(QuarantineError, match="names no voucher_account"):
        target.push(document, sev.plan_for(document, mark_paid=True))
    with pytest.raises(QuarantineError, match="which is online"):
        target.push(document, sev.plan_for(document, mark_paid=True, voucher_account="6306017"))
    assert sandbox.state["vouchers"] == {}


def test_payments_over_the_total_are_quarantined_not_booked_as_less(sev, sandbox, target):
    document = sev.shop_order(paid=True)
    document.payments.append(Payment(amount=Decimal("5.00"), date=date(2026, 3, 17), method="paypal"))
    with pytest.raises(QuarantineError, match=r"the payments \(56.87 EUR\) exceed the document's total \(51.87\)"):
        target.push(document, sev.plan_for(document, mark_paid=True))
    ref = target.push(document, sev.plan_for(document))  # open, as reconciled in sevDesk
    target.settings.book_unassigned_payments = True
    with pytest.raises(QuarantineError, match=r"payment of 5.00 EUR .* exceeds what is open on sevDesk voucher "
                                              r"\d+ \(0.00 of 51.87\)"):
        target.book_payment(ref, document, sev.plan_for(document))
    assert [t["amount"] for t in sandbox.state["transactions"].values()] == ["51.87"]


def test_sandbox_refuses_a_payment_on_an_account_of_another_currency(sev, sandbox, target):
    document = sev.shop_order()
    document.currency = "CHF"
    ref = target.push(document, sev.plan_for(document, exchange_rate=Decimal("0.95")))
    body = mapping.payment_payload(ref, Decimal("10.00"), date(2026, 3, 16), full=False, account=6305996)
    answer = client(sandbox).put(f"Voucher/{ref.target_id}/bookAmount", content=mapping.dumps(body))
    assert answer.status_code == 422
    assert json.loads(answer.text)["error"]["message"] == "The check account 6305996 is in EUR, the voucher in CHF"
