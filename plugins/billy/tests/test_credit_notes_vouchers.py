"""Billy credit notes and gift vouchers, at the target: the sandbox in process and respx."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import httpx
import pytest
import respx
from ledgerlink import (
    Address,
    Customer,
    Document,
    Line,
    OutcomeUnknown,
    Payment,
    QuarantineError,
    TargetRef,
)
from ledgerlink.testing import closing_factory
from ledgerlink_billy.mapping import TEMPLATE_NAMES


def D(value) -> Decimal:  # noqa: N802
    return Decimal(str(value))


@pytest.fixture(autouse=True)
def _no_refused_bodies(sandbox):
    yield
    assert not [r for r in sandbox.requests if r.get("validation_errors")]


def hundred(n: int = 1, *, currency: str = "DKK", payments: list[Payment] | None = None) -> Document:
    """100.00 gross (80.00 + 20.00 VAT at 25 %)."""
    return Document(
        source_ref=f"order-{n}", number=f"INV-{n}", currency=currency, invoice_date=date(2026, 3, 2),
        seller_country="DK",
        customer=Customer(source_id=f"c{n}", first_name="Jens", last_name="Hansen", email=f"j{n}@example.dk",
                          address=Address(street="Nørregade 7", zip="8000", city="Aarhus", country="DK")),
        lines=[Line(description="Kaffe", quantity=Decimal(2), total=D("100.00"), tax_rate=Decimal(25))],
        payments=payments or [],
    )


def pushed(target, kit, doc, *, rate=None, mark_paid=False, voucher_account=None):
    contact = target.create_contact(doc.customer, f"k:{doc.source_ref}")
    plan = kit.plan_for(doc, contact, mark_paid=mark_paid)
    plan.exchange_rate = None if rate is None else D(rate)
    plan.book_currency = "DKK"
    plan.voucher_account = voucher_account
    target.validate(doc, plan)
    return target.push(doc, plan), plan, contact


def credit_plan(kit, credit, contact, original: TargetRef):
    plan = kit.plan_for(credit, contact)
    plan.document_date = credit.invoice_date or date(2026, 3, 9)
    plan.reverses = original
    return plan


# -- credit notes ------------------------------------------------------------------------------
def test_reversal_is_a_credit_note_for_the_original_found_again_by_any_target(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred()
    ref, _plan, contact = pushed(target, kit, doc)
    credit = doc.reversal(date(2026, 3, 9))
    plan = credit_plan(kit, credit, contact, ref)
    target.validate(credit, plan)
    cref = target.push(credit, plan)
    record = sandbox.state["invoices"][cref.target_id]
    assert (record["type"], record["creditedInvoiceId"], record["invoiceNo"]) == ("creditNote", ref.target_id,
                                                                                   "CN-order-1~reversal")
    assert record["entryDate"] == "2026-03-09" and record["state"] == "approved" and record["taxMode"] == "incl"
    assert (D(record["amount"]), D(record["tax"])) == (D("80.00"), D("20.00"))
    (line,) = [v for v in sandbox.state["invoiceLines"].values() if v["invoiceId"] == cref.target_id]
    assert (line["quantity"], D(line["unitPrice"])) == (2, D("50.00"))  # positive: the type makes it a credit
    original = sandbox.state["invoices"][ref.target_id]
    assert D(original["balance"]) == D("0.00") and original["isPaid"] is True
    (_, raw), = target.statuses([ref])
    assert raw == "credited"
    # a fresh target (after a crash: no memory of this run) finds it by the reversal's key
    fresh = target_for(auto_book=True)
    assert fresh.find_document(credit.source_ref, None) == cref
    assert fresh.find_document(doc.source_ref, doc.number) == ref


def test_credit_note_without_a_reference_and_invoice_with_one_are_refused(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred()
    ref, _plan, contact = pushed(target, kit, doc)
    credit = doc.reversal(date(2026, 3, 9))
    with pytest.raises(QuarantineError, match="credit note that references no invoice ledgerlink wrote to Billy"):
        target.validate(credit, kit.plan_for(credit, contact))
    wrong = kit.plan_for(doc, contact)
    wrong.reverses = ref
    with pytest.raises(QuarantineError, match="it is an invoice"):
        target.validate(doc, wrong)
    assert len(sandbox.state["invoices"]) == 1


def test_original_still_a_draft_or_over_credited_is_refused_before_writing(sandbox, target_for, kit):
    drafts = target_for()
    doc = hundred()
    ref, _plan, contact = pushed(drafts, kit, doc)
    credit = doc.reversal(date(2026, 3, 9))
    with pytest.raises(QuarantineError, match="still a draft \\(not booked\\): delete the draft in Billy"):
        drafts.validate(credit, credit_plan(kit, credit, contact, ref))

    booked = target_for(auto_book=True)
    doc2 = hundred(2)
    ref2, _plan, contact2 = pushed(booked, kit, doc2)
    first = doc2.reversal(date(2026, 3, 9))
    booked.push(first, credit_plan(kit, first, contact2, ref2))
    again = first.model_copy(update={"source_ref": "order-2-storno", "number": "GS-2"})
    with pytest.raises(QuarantineError, match="already has credit notes of 100.00: it would credit more"):
        booked.validate(again, credit_plan(kit, again, contact2, ref2))
    assert len([i for i in sandbox.state["invoices"].values() if i["type"] == "creditNote"]) == 1


def test_sandbox_refuses_what_billy_refuses_for_credit_notes(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred()
    ref, _plan, contact = pushed(target, kit, doc)
    other = target.create_contact(hundred(3).customer, "k:other")
    product = next(iter(sandbox.state["products"]))
    client = httpx.Client(transport=sandbox.transport(), base_url="http://sandbox/v2",
                          headers={"X-Access-Token": kit.DEMO_TOKEN})

    def post(**fields):
        body = {"contactId": contact.target_id, "entryDate": "2026-03-09", "currencyId": "DKK",
                "paymentTermsDays": 8, "type": "creditNote", "creditedInvoiceId": ref.target_id,
                "lines": [{"productId": product, "unitPrice": 100}], **fields}
        return client.post("/invoices", json={"invoice": {k: v for k, v in body.items() if v is not None}})

    assert "does not exist" in post(creditedInvoiceId="inv-nope").json()["validationErrors"]["invoice"][
        "attributes"]["creditedInvoiceId"]
    assert post(type="invoice").status_code == 422  # only a credit note credits an invoice
    assert "contact of the credited invoice" in post(contactId=other.target_id).text
    assert "currency of the credited invoice" in post(currencyId="EUR", exchangeRate=7.46).text
    answer = post()
    assert answer.status_code == 200
    note = answer.json()["invoices"][0]
    assert post(creditedInvoiceId=note["id"]).status_code == 422  # a credit note is not an invoice to credit
    sandbox.requests.clear()


def test_lost_answer_on_the_credit_note_is_found_then_completed(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred()
    ref, _plan, contact = pushed(target, kit, doc)
    credit = doc.reversal(date(2026, 3, 9)).model_copy(update={"source_ref": "cn-7", "number": "INV-1"})
    plan = credit_plan(kit, credit, contact, ref)
    # the number the shop gave its credit note is its invoice's number: the keys differ
    drafts = target_for()
    drafts.validate(credit, plan)
    cref = drafts.push(credit, plan)  # as if the answer was lost before approval
    assert sandbox.state["invoices"][cref.target_id]["invoiceNo"] == "CN-INV-1"
    assert drafts.find_document("cn-7", "INV-1") == cref  # this run validated it: a credit note
    fresh = target_for(auto_book=True)
    found = fresh.find_document("cn-7", "INV-1")
    assert found == ref  # unknown kind after a crash: the invoice key comes first ...
    with pytest.raises(QuarantineError, match="invoice INV-1 was found .* the source document is a creditNote"):
        fresh.complete(found, credit, plan)  # ... and complete() refuses it, untouched
    assert sandbox.state["invoices"][ref.target_id]["state"] == "approved"
    fresh.validate(credit, plan)
    assert fresh.find_document("cn-7", "INV-1") == cref
    fresh.complete(cref, credit, plan)
    assert sandbox.state["invoices"][cref.target_id]["state"] == "approved"


def test_complete_deletes_a_credit_note_draft_that_credits_another_invoice(sandbox, target_for, kit):
    booked = target_for(auto_book=True)
    ref, _plan, contact = pushed(booked, kit, hundred())
    ref2, _plan2, _contact2 = pushed(booked, kit, hundred(2))
    credit = hundred().reversal(date(2026, 3, 9))
    drafts = target_for()
    cref = drafts.push(credit, credit_plan(kit, credit, contact, ref))
    with pytest.raises(QuarantineError, match="credits invoice .*, not INV-2; the draft was deleted"):
        booked.complete(cref, credit, credit_plan(kit, credit, contact, ref2))
    assert cref.target_id not in sandbox.state["invoices"]


# -- gift vouchers --------------------------------------------------------------------------------
def test_voucher_and_money_of_the_same_amount_and_day_are_two_entries_booked_once(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    day = date(2026, 3, 3)
    doc = hundred(payments=[Payment(amount=D("50.00"), date=day, kind="voucher"),
                            Payment(amount=D("50.00"), date=day)])
    ref, plan, _contact = pushed(target, kit, doc, voucher_account="Gavekort (tilgodehavender)")
    target.book_payment(ref, doc, plan)  # a deposit-style call: both at once
    entries = sorted((p["cashAccountId"], D(p["cashAmount"]), p["entryDate"])
                     for p in sandbox.state["bankPayments"].values())
    assert entries == [("acc_bank", D("50.00"), "2026-03-03"), ("acc_vouchers", D("50.00"), "2026-03-03")]
    target.book_payment(ref, doc, plan)
    assert len(sandbox.state["bankPayments"]) == 2
    assert sandbox.state["invoices"][ref.target_id]["isPaid"] is True


def test_only_the_voucher_entry_missing_is_booked_from_the_voucher_account(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    day = date(2026, 3, 3)
    money_only = hundred(payments=[Payment(amount=D("50.00"), date=day)])
    ref, plan, _contact = pushed(target, kit, money_only, voucher_account="6850")
    target.book_payment(ref, money_only, plan)
    both = money_only.model_copy(update={"payments": [Payment(amount=D("50.00"), date=day, kind="voucher"),
                                                      *money_only.payments]})
    target.book_payment(ref, both, plan)
    accounts = sorted(p["cashAccountId"] for p in sandbox.state["bankPayments"].values())
    assert accounts == ["acc_bank", "acc_vouchers"]  # not a second 50.00 from the bank


def test_foreign_voucher_is_converted_at_the_invoice_rate_like_money(sandbox, target_for, kit):
    target = target_for(auto_book=True, cash_accounts={"EUR": "5830"})
    doc = hundred(currency="EUR", payments=[Payment(amount=D("20.00"), date=date(2026, 3, 3), kind="voucher"),
                                            Payment(amount=D("80.00"), date=date(2026, 3, 4))])
    ref, plan, _contact = pushed(target, kit, doc, rate="7.46", mark_paid=True, voucher_account="6850")
    entries = sorted((p["cashAccountId"], D(p["cashAmount"]), D(p["cashExchangeRate"]), p["entryDate"])
                     for p in sandbox.state["bankPayments"].values())
    # the voucher account books in DKK: 20.00 EUR x 7.46; the money arrives on the EUR account
    assert entries == [("acc_bank_eur", D("80.00"), D("1"), "2026-03-04"),
                       ("acc_vouchers", D("149.20"), D("7.46"), "2026-03-03")]
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["isPaid"] is True and D(invoice["balance"]) == D("0.00")
    assert not ref.payment_pending


def test_voucher_account_that_takes_no_payments_is_named(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred(payments=[Payment(amount=D("20.00"), date=date(2026, 3, 3), kind="voucher")])
    contact = target.create_contact(doc.customer, "k")
    plan = kit.plan_for(doc, contact)
    plan.voucher_account = "Salg"
    with pytest.raises(QuarantineError, match="voucher_account 'Salg': Billy account 1110 does not accept payments"):
        target.validate(doc, plan)
    plan.voucher_account = None
    with pytest.raises(QuarantineError, match="no voucher_account"):
        target.validate(doc, plan)
    assert not sandbox.state["invoices"]


# -- respx: the calls themselves ---------------------------------------------------------------------
BASE = "https://api.billysbilling.com/v2"


@pytest.fixture
def real(kit):
    def build(**settings):
        values = {"api_token": "tok-cn", "cash_account": None, **{name: None for name in TEMPLATE_NAMES}}
        values.update(settings)
        return kit.make_target(None, base_url="https://api.billysbilling.com", **values)

    yield from closing_factory(build)


def listing(*records):
    return httpx.Response(200, json={"invoices": list(records),
                                     "meta": {"paging": {"page": 1, "pageCount": 1}, "success": True}})


@respx.mock
def test_find_document_asks_for_the_right_keys(real):
    asked: list[str] = []

    def answer(request):
        asked.append(request.url.params["invoiceNo"])
        return listing(*{
            "INV-1": [{"id": "i1", "invoiceNo": "INV-1"}],
            "CN-order-1~reversal": [{"id": "c1", "invoiceNo": "CN-order-1~reversal", "type": "creditNote"}],
        }.get(asked[-1], []))

    respx.get(f"{BASE}/invoices").mock(side_effect=answer)
    target = real()
    assert target.find_document("order-1~reversal", None) == TargetRef(target_id="c1", number="CN-order-1~reversal",
                                                                       kind="credit note")
    assert asked == ["CN-order-1~reversal"]  # ledgerlink's reversal: the credit note key only
    asked.clear()
    assert target.find_document("order-1", "INV-1").target_id == "i1"
    assert asked == ["INV-1"]
    asked.clear()
    assert target.find_document("order-2", "INV-2") is None  # unknown kind: both keys asked
    assert asked == ["INV-2", "CN-INV-2"]


@respx.mock
def test_a_credit_note_record_under_an_invoice_key_is_not_taken_for_the_invoice(real):
    respx.get(f"{BASE}/invoices").mock(return_value=listing(
        {"id": "c9", "invoiceNo": "INV-9", "type": "creditNote"}))
    assert real().find_document("order-9", "INV-9") is None  # a credit note is never taken for an invoice
    target = real()
    target._kinds["order-9"] = "invoice"
    assert target.find_document("order-9", "INV-9") is None


@respx.mock
def test_lost_answer_on_the_credit_note_write_is_outcome_unknown(real, kit):
    doc = hundred()
    credit = doc.reversal(date(2026, 3, 9))
    contact = kit.customer(1)
    original = {"id": "inv1", "invoiceNo": "INV-1", "type": "invoice", "state": "approved", "contactId": "ct1",
                "currencyId": "DKK", "amount": 80.0, "tax": 20.0, "balance": 100.0}
    respx.get(f"{BASE}/organization").mock(return_value=httpx.Response(
        200, json={"organization": {"id": "o", "baseCurrencyId": "DKK"}}))
    respx.get(f"{BASE}/invoices/inv1").mock(return_value=httpx.Response(200, json={"invoice": original}))
    respx.get(f"{BASE}/invoices").mock(return_value=listing())
    respx.get(f"{BASE}/accounts").mock(return_value=httpx.Response(200, json={"accounts": [
        {"id": "a1", "accountNo": 1110, "name": "Salg"}], "meta": {}}))
    respx.get(f"{BASE}/salesTaxRulesets").mock(return_value=httpx.Response(200, json={"salesTaxRulesets": [
        {"id": "rs", "name": "Normalt salg af varer"}], "meta": {}}))
    respx.get(f"{BASE}/products").mock(return_value=httpx.Response(200, json={"products": [
        {"id": "p1", "productNo": "ledgerlink-goods_domestic-1110-rs"}], "meta": {}}))
    write = respx.post(f"{BASE}/invoices").mock(return_value=httpx.Response(504, text="Gateway Timeout"))
    target = real(goods_domestic={"account": "1110", "vat": "Normalt salg af varer"})
    plan = kit.plan_for(credit, None)
    plan.document_date = date(2026, 3, 9)
    plan.reverses = TargetRef(target_id="inv1", number="INV-1")
    with pytest.raises(OutcomeUnknown):
        target.push(credit, plan)
    assert write.call_count == 1  # never re-sent blindly
    body = write.calls[0].request.read()

    sent = json.loads(body)["invoice"]
    assert sent["type"] == "creditNote" and sent["creditedInvoiceId"] == "inv1"
    assert sent["contactId"] == "ct1" and sent["invoiceNo"] == "CN-order-1~reversal"
    assert sent["entryDate"] == "2026-03-09" and sent["taxMode"] == "incl"
    assert [(line["quantity"], line["unitPrice"]) for line in sent["lines"]] == [(2, 50.0)]
    assert contact.source_id == "cust-1"
