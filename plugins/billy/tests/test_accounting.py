"""Issue 15 in Billy: each payment its own bank entry, foreign currency, VAT to the øre."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from ledgerlink import Document, Line, Payment, QuarantineError, TransientError


def D(value) -> Decimal:  # noqa: N802
    return Decimal(str(value))


@pytest.fixture(autouse=True)
def _no_refused_bodies(sandbox):
    """Every body the plugin sends passes the sandbox's check against Billy's tables."""
    yield
    assert not [r for r in sandbox.requests if r.get("validation_errors")]


def posted(sandbox):
    return [r["json"]["bankPayment"] for r in sandbox.requests
            if r["method"] == "POST" and r["path"] == "/v2/bankPayments"]


def hundred(n: int = 1, *, currency: str = "DKK", paid: list[tuple[str, date]] = ()) -> Document:
    """An invoice of 100.00 gross (80 + 20 VAT, 25 %), with the given payments."""
    return Document(
        source_ref=f"order-{n}", number=f"INV-{n}", currency=currency, invoice_date=date(2026, 3, 2),
        seller_country="DK", customer=_customer(n),
        lines=[Line(description="Kaffe", quantity=Decimal(1), total=Decimal("100.00"), tax_rate=Decimal(25))],
        payments=[Payment(amount=D(a), date=d, method="bank") for a, d in paid],
    )


def _customer(n):
    from ledgerlink import Address, Customer
    return Customer(source_id=f"c{n}", first_name="Jens", last_name="Hansen", email=f"j{n}@example.dk",
                    address=Address(street="Nørregade 7", zip="8000", city="Aarhus", country="DK"))


def push(target, doc, kit, *, mark_paid=True, rate=None, book_currency="DKK"):
    contact = target.create_contact(doc.customer, f"k:{doc.source_ref}")
    plan = kit.plan_for(doc, contact, mark_paid=mark_paid)
    plan.exchange_rate = None if rate is None else D(rate)
    plan.book_currency = book_currency
    target.validate(doc, plan)
    return target.push(doc, plan), plan


# -- payments ---------------------------------------------------------------------------
def test_two_payments_are_two_bank_entries_and_a_second_call_books_nothing(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred(paid=[("40.00", date(2026, 3, 3)), ("60.00", date(2026, 3, 20))])
    ref, plan = push(target, doc, kit)  # the push-time path (plan.mark_paid)
    assert [(p["cashAmount"], p["entryDate"]) for p in posted(sandbox)] == [(40.0, "2026-03-03"), (60.0, "2026-03-20")]
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["isPaid"] is True and D(invoice["balance"]) == 0
    target.book_payment(ref, doc, plan)
    target.book_payment(ref, doc, plan)
    assert len(posted(sandbox)) == 2 and not ref.payment_pending


def test_deposit_is_booked_alone_then_the_rest_once(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred()
    ref, plan = push(target, doc, kit)
    assert not posted(sandbox)
    doc.payments = [Payment(amount=D("40.00"), date=date(2026, 3, 5))]
    target.book_payment(ref, doc, plan)  # the core calls it before the document is fully paid
    target.book_payment(ref, doc, plan)
    assert [(p["cashAmount"], p["entryDate"]) for p in posted(sandbox)] == [(40.0, "2026-03-05")]
    assert D(sandbox.state["invoices"][ref.target_id]["balance"]) == D("60.00")
    doc.payments.append(Payment(amount=D("60.00"), date=date(2026, 4, 1)))
    target.book_payment(ref, doc, plan)
    target.book_payment(ref, doc, plan)
    assert [(p["cashAmount"], p["entryDate"]) for p in posted(sandbox)] == [
        (40.0, "2026-03-05"), (60.0, "2026-04-01")]
    assert sandbox.state["invoices"][ref.target_id]["isPaid"] is True


def test_two_equal_payments_are_both_booked(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred(paid=[("50.00", date(2026, 3, 3)), ("50.00", date(2026, 3, 3))])
    ref, plan = push(target, doc, kit)
    target.book_payment(ref, doc, plan)
    assert [p["cashAmount"] for p in posted(sandbox)] == [50.0, 50.0]


def test_a_voided_payment_in_billy_is_booked_again(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred(paid=[("100.00", date(2026, 3, 3))])
    ref, plan = push(target, doc, kit)
    (payment,) = sandbox.state["bankPayments"].values()
    target._call("PUT", f"/bankPayments/{payment['id']}", json={"bankPayment": {"isVoided": True}})
    assert D(sandbox.state["invoices"][ref.target_id]["balance"]) == D("100.00")
    target.book_payment(ref, doc, plan)
    assert len(posted(sandbox)) == 2 and sandbox.state["invoices"][ref.target_id]["isPaid"] is True


def test_without_balance_modifiers_the_balance_decides(sandbox, target_for, kit, monkeypatch):
    target = target_for(auto_book=True)
    doc = hundred(paid=[("40.00", date(2026, 3, 3))])
    ref, plan = push(target, doc, kit)
    real = target.invoice
    monkeypatch.setattr(target, "invoice", lambda i: {k: v for k, v in real(i).items() if k != "balanceModifiers"})
    doc.payments.append(Payment(amount=D("60.00"), date=date(2026, 3, 9)))
    target.book_payment(ref, doc, plan)
    target.book_payment(ref, doc, plan)
    assert [p["cashAmount"] for p in posted(sandbox)] == [40.0, 60.0]


def test_overpayment_is_refused_before_anything_is_booked(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred()
    ref, plan = push(target, doc, kit)
    doc.payments = [Payment(amount=D("70.00"), date=date(2026, 3, 3)), Payment(amount=D("70.00"), date=date(2026, 3, 4))]
    with pytest.raises(QuarantineError, match="140.00 DKK, more than invoice INV-1's open balance of 100.00"):
        target.book_payment(ref, doc, plan)
    assert not posted(sandbox)


def test_different_totals_in_billy_book_no_payment(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred()
    ref, plan = push(target, doc, kit)
    sandbox.state["invoices"][ref.target_id]["tax"] = 20.01  # Billy's figures are not the source's
    doc.payments = [Payment(amount=D("100.00"), date=date(2026, 3, 3))]
    with pytest.raises(QuarantineError, match="no payment recorded"):
        target.book_payment(ref, doc, plan)
    assert not posted(sandbox)


def test_drafts_keep_every_payment_pending(sandbox, target_for, kit):
    target = target_for()
    doc = hundred(paid=[("40.00", date(2026, 3, 3)), ("60.00", date(2026, 3, 20))])
    ref, plan = push(target, doc, kit)
    assert ref.payment_pending and not posted(sandbox)
    with pytest.raises(TransientError, match="still a draft"):
        target.book_payment(ref, doc, plan)
    target._call("PUT", f"/invoices/{ref.target_id}", json={"invoice": {"state": "approved"}})
    target.book_payment(ref, doc, plan)
    assert [(p["cashAmount"], p["entryDate"]) for p in posted(sandbox)] == [(40.0, "2026-03-03"), (60.0, "2026-03-20")]


# -- foreign currency --------------------------------------------------------------------
def test_foreign_invoice_carries_the_plans_rate(sandbox, target_for, kit):
    target = target_for()
    ref, _plan = push(target, hundred(currency="EUR"), kit, mark_paid=False, rate="7.46")
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["currencyId"] == "EUR" and invoice["exchangeRate"] == 7.46
    ref2, _ = push(target, hundred(2), kit, mark_paid=False)
    body = [r["json"]["invoice"] for r in sandbox.requests if r["method"] == "POST" and r["path"] == "/v2/invoices"]
    assert "exchangeRate" not in body[1]  # the base currency: Billy fixes it at 1
    assert sandbox.state["invoices"][ref2.target_id]["exchangeRate"] == 1.0


def test_foreign_invoice_without_a_rate_or_in_another_book_currency_is_quarantined(sandbox, target_for, kit):
    target = target_for()
    with pytest.raises(QuarantineError, match="in EUR, Billy books in DKK, and there is no exchange rate"):
        push(target, hundred(currency="EUR"), kit, mark_paid=False)
    with pytest.raises(QuarantineError, match="rate is in EUR per CHF, but Billy books in DKK"):
        push(target, hundred(2, currency="CHF"), kit, mark_paid=False, rate="0.95", book_currency="EUR")
    assert not sandbox.state["invoices"]


def test_foreign_payment_on_an_account_of_its_currency(sandbox, target_for, kit):
    target = target_for(auto_book=True, cash_accounts={"EUR": "5830"})
    ref, _ = push(target, hundred(currency="EUR", paid=[("100.00", date(2026, 3, 3))]), kit, rate="7.46")
    (body,) = posted(sandbox)
    assert body["cashAccountId"] == "acc_bank_eur" and body["cashAmount"] == 100.0
    assert "cashExchangeRate" not in body
    assert sandbox.state["invoices"][ref.target_id]["isPaid"] is True


def test_foreign_payment_converted_at_the_invoices_rate(sandbox, target_for, kit):
    target = target_for(auto_book=True)  # cash_account 5820 is in DKK
    ref, _ = push(target, hundred(currency="EUR", paid=[("40.00", date(2026, 3, 3)), ("60.00", date(2026, 3, 9))]),
                  kit, rate="7.46")
    assert [(b["cashAccountId"], b["cashAmount"], b["cashExchangeRate"]) for b in posted(sandbox)] == [
        ("acc_bank", 298.4, 7.46), ("acc_bank", 447.6, 7.46)]  # never 40 DKK for 40 EUR
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["isPaid"] is True and D(invoice["balance"]) == 0


def test_foreign_payment_that_cannot_be_converted_exactly_is_left_open(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    doc = hundred(currency="JPY", paid=[("100.00", date(2026, 3, 3))])
    doc.lines[0].total = D("123.00")
    doc.payments[0].amount = D("123.00")
    ref, plan = push(target, doc, kit, rate="0.0453")  # 123 JPY = 5.57 DKK = 122.96 JPY
    assert ref.payment_pending and not posted(sandbox)
    assert sandbox.state["invoices"][ref.target_id]["state"] == "approved"
    with pytest.raises(QuarantineError, match="record this payment in Billy, or set cash_accounts.JPY"):
        target.book_payment(ref, doc, plan)


def test_cash_account_in_another_foreign_currency_refuses_before_writing(sandbox, target_for, kit):
    target = target_for(auto_book=True, cash_account="5830")  # EUR account, DKK invoice
    with pytest.raises(QuarantineError, match="is in EUR, the invoice in DKK"):
        push(target, hundred(paid=[("100.00", date(2026, 3, 3))]), kit)
    assert not sandbox.state["invoices"]


# -- VAT to the øre -----------------------------------------------------------------------
def seven(basis: str, total: str, taxes: list[str]) -> Document:
    lines = [Line(description=f"Klip {i}", quantity=Decimal(1), total=D(total), tax_rate=Decimal(25),
                  price_basis=basis, tax_amount=D(t)) for i, t in enumerate(taxes, start=1)]
    return Document(source_ref="order-7", number="INV-7", currency="DKK", invoice_date=date(2026, 3, 2),
                    seller_country="DK", customer=_customer(7), lines=lines)


def test_seven_net_lines_whose_vat_the_source_rounds_on_the_total(sandbox, target_for, kit):
    # 7 x 0.10 net at 25 %: the source's VAT is 0.70 x 25 % = 0.18, spread over the lines;
    # Billy with taxMode excl would round 0.025 up on each line: 0.21.
    doc = seven("net", "0.10", ["0.03", "0.03", "0.02", "0.03", "0.02", "0.03", "0.02"])
    assert doc.total_tax == D("0.18") and doc.total_gross == D("0.88")
    target = target_for(auto_book=True)
    ref, _ = push(target, doc, kit, mark_paid=False)
    invoice = sandbox.state["invoices"][ref.target_id]
    assert invoice["taxMode"] == "incl"  # gross positions with the stated VAT inside
    assert [line["unitPrice"] for line in sandbox.state["invoiceLines"].values()] == [
        0.13, 0.13, 0.12, 0.13, 0.12, 0.13, 0.12]
    assert D(invoice["tax"]) == D("0.18") and D(invoice["amount"]) + D(invoice["tax"]) == D("0.88")
    assert invoice["state"] == "approved"


def test_seven_gross_lines_whose_vat_the_source_rounds_on_the_total(sandbox, target_for, kit):
    # 7 x 0.13 gross: per line 0.026 -> 0.03 (0.21); the source says 0.91 x 20 % = 0.18.
    doc = seven("gross", "0.13", ["0.03", "0.03", "0.03", "0.03", "0.02", "0.02", "0.02"])
    assert doc.total_tax == D("0.18")
    target = target_for(auto_book=True)
    ref, _ = push(target, doc, kit, mark_paid=False)
    invoice = sandbox.state["invoices"][ref.target_id]
    (line,) = sandbox.state["invoiceLines"].values()  # one line per product and rate
    assert invoice["taxMode"] == "incl" and line["unitPrice"] == 0.91 and line["quantity"] == 1
    assert line["description"].startswith("1 x Klip 1; 1 x Klip 2")
    assert D(invoice["tax"]) == D("0.18") and D(invoice["amount"]) + D(invoice["tax"]) == D("0.91")


def test_ordinary_documents_keep_one_line_per_source_line(sandbox, target_for, kit):
    target = target_for()
    doc = kit.shop_document(1, "domestic")
    ref, _ = push(target, doc, kit, mark_paid=False)
    assert len([x for x in sandbox.state["invoiceLines"].values() if x["invoiceId"] == ref.target_id]) == 3
    assert sandbox.state["invoices"][ref.target_id]["taxMode"] == "incl"


# -- the sandbox's own rules ------------------------------------------------------------------
def test_sandbox_payment_rules(sandbox, target_for, kit):
    target = target_for(auto_book=True)
    ref, _ = push(target, hundred(currency="EUR"), kit, mark_paid=False, rate="7.46")

    def pay(**extra):
        body = {"entryDate": "2026-03-03", "cashSide": "debit", "cashAccountId": "acc_bank",
                "associations": [{"subjectReference": f"invoice:{ref.target_id}"}], **extra}
        return target.client.request("POST", "/bankPayments", json={"bankPayment": body}, ok=[422])

    assert "cashExchangeRate" in pay(cashAmount=746).text  # DKK account, EUR invoice: rate required
    assert pay(cashAmount=746, cashExchangeRate=0).status_code == 422
    answer = pay(cashAmount=820.6, cashExchangeRate=7.46).json()  # 110 EUR on 100: Billy accepts
    (payment,) = answer["bankPayments"]
    assert payment["contactBalancePostings"][0]["amount"] == 10.0
    assert sandbox.state["invoices"][ref.target_id]["isPaid"] is True
    target.client.request("PUT", f"/bankPayments/{payment['id']}", json={"bankPayment": {"isVoided": True}})
    assert D(sandbox.state["invoices"][ref.target_id]["balance"]) == D("100.00")
    again = target.client.request("PUT", f"/bankPayments/{payment['id']}",
                                  json={"bankPayment": {"isVoided": False}}, ok=[422])
    assert again.status_code == 422
    modifiers = target.invoice(ref.target_id)["balanceModifiers"]
    assert [m["isVoided"] for m in modifiers] == [True]


def test_complete_checks_and_approves_an_adopted_draft(sandbox, target_for, kit):
    drafts, booked = target_for(), target_for(auto_book=True)
    doc = hundred()
    ref, plan = push(drafts, doc, kit, mark_paid=False)  # as if the answer was lost before approval
    booked.complete(ref, doc, plan)
    assert sandbox.state["invoices"][ref.target_id]["state"] == "approved"
    booked.complete(ref, doc, plan)  # approved: nothing more
    doc2 = hundred(2)
    ref2, plan2 = push(drafts, doc2, kit, mark_paid=False)
    sandbox.state["invoices"][ref2.target_id]["tax"] = 20.01
    # The core calls complete() before it counts the document as pushed, and quarantines
    # it on a refusal: the differing draft is deleted, so a retry writes it afresh.
    with pytest.raises(QuarantineError, match=r"100\.01 DKK gross / 20\.01 tax.*the Billy draft INV-2 was deleted"):
        booked.complete(ref2, doc2, plan2)
    assert ref2.target_id not in sandbox.state["invoices"]
    assert not [r for r in sandbox.requests if r["method"] == "PUT" and ref2.target_id in r["path"]]
    assert booked.find_document(doc2.source_ref, doc2.number) is None
