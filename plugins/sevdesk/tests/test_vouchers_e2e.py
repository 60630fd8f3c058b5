"""Vouchers end to end through the sandbox: amounts to the cent, tags, payments, lookups."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ledgerlink import Line, LineKind, OutcomeUnknown, QuarantineError, TaxTreatment
from ledgerlink_sevdesk.sandbox import SevdeskSandbox


def test_voucher_lands_open_with_one_position_per_line_to_the_cent(sev, sandbox, target):
    document = sev.shop_order()
    target.prepare({"tags": ["Import"]})
    contact = target.create_contact(document.customer, "shop:c-7")
    plan = sev.plan_for(document, contact=contact, cost_centre="1")
    ref = target.push(document, plan)

    voucher = sandbox.state["vouchers"][ref.target_id]
    assert voucher["status"] == "100"
    assert voucher["creditDebit"] == "D"
    assert voucher["description"] == "R-2026-0001"
    assert voucher["voucherDate"] == "2026-03-15T00:00:00+01:00"
    assert voucher["paymentDeadline"] == "2026-03-29T00:00:00+01:00"  # DST starts later that night
    assert voucher["supplier"] == {"id": contact.target_id, "objectName": "Contact"}
    assert voucher["costCentre"] == {"id": "1", "objectName": "CostCentre"}
    assert voucher["taxRule"] == {"id": "1", "objectName": "TaxRule"}
    assert Decimal(voucher["sumGross"]) == document.total_gross == Decimal("51.87")
    assert Decimal(voucher["sumNet"]) == document.total_net
    positions = [p for p in sandbox.state["voucher_positions"].values() if p["voucher"]["id"] == ref.target_id]
    assert [(p["accountDatev"]["id"], p["taxRate"], p["sumNet"], p["sumGross"]) for p in positions] == [
        ("3620", "7", "31.76", "33.98"),
        ("3631", "19", "10.92", "12.99"),
        ("3631", "19", "4.12", "4.9"),
    ]
    sent = next(e["json"] for e in sandbox.requests if e["path"].endswith("saveVoucher"))
    assert list(sent) == ["voucher", "voucherPosSave", "voucherPosDelete"]
    assert sent["voucherPosSave"][0]["sumGross"] == 33.98 and sent["voucherPosSave"][0]["net"] is False
    sev.no_validation_errors(sandbox)


def test_tags_are_created_once_and_reused_by_name(sev, sandbox, target):
    target.prepare({"tags": ["Import"]})
    for ref in ("A-1", "A-2"):
        document = sev.shop_order(ref, number=ref)
        target.push(document, sev.plan_for(document))  # no contact: the plan carries "Mismatch"
    assert sorted(t["name"] for t in sandbox.state["tags"].values()) == ["Import", "Mismatch"]
    assert len(sandbox.state["tag_relations"]) == 4
    voucher = next(iter(sandbox.state["vouchers"].values()))
    assert voucher["supplier"] is None and voucher["supplierName"] == "Erika Muster"
    sev.no_validation_errors(sandbox)


def test_complete_adds_only_the_tags_an_adopted_voucher_lacks(sev, sandbox, target):
    target.prepare({"tags": ["Import"]})
    document = sev.shop_order()
    plan = sev.plan_for(document)  # no contact: the plan carries "Import" and "Mismatch"
    ref = target.push(document, plan)
    # as if the answer of the second tag request was lost: only "Import" arrived
    mismatch = next(t["id"] for t in sandbox.state["tags"].values() if t["name"] == "Mismatch")
    for key, relation in list(sandbox.state["tag_relations"].items()):
        if relation["tag"]["id"] == mismatch:
            del sandbox.state["tag_relations"][key]
    other = sev.shop_order("B-1", number="B-1")
    target.push(other, sev.plan_for(other))  # another voucher's relations must not count for this one

    def tags_of(target_id):
        names = {t["id"]: t["name"] for t in sandbox.state["tags"].values()}
        return sorted(names[r["tag"]["id"]] for r in sandbox.state["tag_relations"].values()
                      if r["object"]["id"] == target_id)

    assert tags_of(ref.target_id) == ["Import"]
    target.complete(ref, document, plan)
    assert tags_of(ref.target_id) == ["Import", "Mismatch"]
    creates = sum(1 for e in sandbox.requests if e["path"].endswith("Tag/Factory/create"))
    target.complete(ref, document, plan)  # nothing missing: nothing sent
    assert sum(1 for e in sandbox.requests if e["path"].endswith("Tag/Factory/create")) == creates
    sev.no_validation_errors(sandbox)


def test_paid_document_gets_payment_on_mapped_check_account_and_ends_paid(sev, sandbox):
    target = sev.make_target(sandbox, payment_accounts={"paypal": 6306016})
    document = sev.shop_order(paid=True)
    ref = target.push(document, sev.plan_for(document, mark_paid=True))
    voucher = sandbox.state["vouchers"][ref.target_id]
    assert voucher["status"] == "1000"
    assert voucher["paidAmount"] == Decimal("51.87")
    [transaction] = sandbox.state["transactions"].values()
    assert transaction["checkAccount"]["id"] == "6306016" and transaction["amount"] == "51.87"
    booked = next(e["json"] for e in sandbox.requests if e["path"].endswith("bookAmount"))
    assert booked["type"] == "FULL_PAYMENT" and booked["date"].startswith("2026-03-16T12:00:00")
    assert list(target.statuses([ref])) == [(ref, "voucher:1000")]
    sev.no_validation_errors(sandbox)


def test_unmapped_payment_method_stays_open_unless_book_unassigned_payments(sev, sandbox):
    document = sev.shop_order(paid=True, method="cash on delivery")
    open_ref = sev.make_target(sandbox).push(document, sev.plan_for(document, mark_paid=True))
    assert sandbox.state["vouchers"][open_ref.target_id]["status"] == "100"

    other = sev.shop_order("BB-2", number="R-2", paid=True, method="cash on delivery")
    paid_ref = sev.make_target(sandbox, book_unassigned_payments=True).push(other, sev.plan_for(other, mark_paid=True))
    assert sandbox.state["vouchers"][paid_ref.target_id]["status"] == "1000"
    assert [t["checkAccount"]["id"] for t in sandbox.state["transactions"].values()] == ["6305996"]


def test_book_payment_after_transfer_books_once(sev, sandbox):
    target = sev.make_target(sandbox, book_unassigned_payments=True)
    document = sev.shop_order()
    ref = target.push(document, sev.plan_for(document))
    document.payments = sev.shop_order(paid=True).payments
    target.book_payment(ref, document, sev.plan_for(document))
    target.book_payment(ref, document, sev.plan_for(document))  # a re-run books nothing more
    assert len(sandbox.state["transactions"]) == 1
    assert list(target.statuses([ref])) == [(ref, "voucher:1000")]


def test_partial_payment_leaves_voucher_partially_paid(sev, sandbox):
    target = sev.make_target(sandbox, book_unassigned_payments=True)
    document = sev.shop_order(paid=True)
    document.payments[0].amount = Decimal("20.00")
    ref = target.push(document, sev.plan_for(document, mark_paid=True))
    assert list(target.statuses([ref])) == [(ref, "voucher:750")]
    assert sandbox.state["vouchers"][ref.target_id]["paidAmount"] == Decimal("20.00")


def test_find_document_matches_the_description_exactly(sev, sandbox, target):
    first = sev.shop_order("BB-1", number="R-10")
    second = sev.shop_order("BB-2", number="R-100")  # "R-10" is a substring of it
    ref_1 = target.push(first, sev.plan_for(first))
    target.push(second, sev.plan_for(second))
    assert target.find_document("BB-1", "R-10") == ref_1
    assert target.find_document("BB-9", "R-1") is None
    sev.no_validation_errors(sandbox)


def test_description_template_and_missing_number(sev, sandbox):
    target = sev.make_target(sandbox, description_template="shop1/{number}")
    document = sev.shop_order("BB-77", number=None)
    ref = target.push(document, sev.plan_for(document))
    assert sandbox.state["vouchers"][ref.target_id]["description"] == "shop1/BB-77"
    assert target.find_document("BB-77", None) == ref


@pytest.mark.parametrize(
    ("treatment", "rate", "account", "rule"),
    [
        (TaxTreatment.INTRA_EU_SUPPLY, 0, "8125", "3"),
        (TaxTreatment.EXPORT, 0, "8120", "2"),
        (TaxTreatment.REVERSE_CHARGE, 0, "8337", "5"),
        (TaxTreatment.NOT_TAXABLE_HERE, 0, "8338", "17"),
        (TaxTreatment.SMALL_BUSINESS, 0, "8195", "11"),
    ],
)
def test_treatments_become_sevdesk_tax_rules(sev, sandbox, target, treatment, rate, account, rule):
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("100.00"), tax_rate=Decimal(rate))])
    plan = sev.plan_for(document, treatment=treatment, accounts={Decimal(rate): account})
    ref = target.push(document, plan)
    assert sandbox.state["vouchers"][ref.target_id]["taxRule"]["id"] == rule
    sev.no_validation_errors(sandbox)


def test_explicit_tax_rule_wins_over_treatment(sev, sandbox, target):
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("10.00"), tax_rate=Decimal(0))])
    plan = sev.plan_for(document, accounts={Decimal(0): "8200"})
    plan.lines[0].tax_rule = "11"
    ref = target.push(document, plan)
    assert sandbox.state["vouchers"][ref.target_id]["taxRule"]["id"] == "11"


def test_validate_refuses_combination_receipt_guidance_forbids_before_sending(sev, sandbox, target):
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("119.00"), tax_rate=Decimal(19))])
    plan = sev.plan_for(document, treatment=TaxTreatment.INTRA_EU_SUPPLY, accounts={Decimal(19): "8400"})
    target.prepare({})
    with pytest.raises(QuarantineError) as caught:
        target.validate(document, plan)
    assert str(caught.value) == (
        "sevDesk would refuse line 1: account 8400, tax rule 3, rate 19%: "
        "account 8400 (Erlöse 19 % USt) allows tax rules 1"
    )
    assert not any(e["path"].endswith("saveVoucher") for e in sandbox.requests)


def test_unknown_account_and_rate_are_refused(sev, target):
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("10.00"), tax_rate=Decimal(19))])
    with pytest.raises(QuarantineError, match="account 8999 is not in sevDesk's receipt guidance"):
        target.validate(document, sev.plan_for(document, accounts={Decimal(19): "8999"}))
    odd = sev.shop_order(lines=[Line(description="Ware", total=Decimal("10.00"), tax_rate=Decimal(16))])
    with pytest.raises(QuarantineError, match="rates 0, 7 or 19 %, not 16 %"):
        target.validate(odd, sev.plan_for(odd, accounts={Decimal(16): "8400"}))


def test_oss_is_quarantined_on_vouchers(sev, target):
    document = sev.shop_order(country="AT", lines=[Line(description="Ware", total=Decimal("120.00"), tax_rate=Decimal(20))])
    plan = sev.plan_for(document, treatment=TaxTreatment.OSS, accounts={Decimal(20): "8400"})
    with pytest.raises(QuarantineError, match=r"One-Stop-Shop \(OSS\) is not allowed on sevDesk vouchers"):
        target.validate(document, plan)


def test_mixed_tax_rules_in_one_document_are_quarantined(sev, target):
    document = sev.shop_order(vat_id="ATU12345678", country="AT", lines=[
        Line(description="Ware", total=Decimal("100.00"), tax_rate=Decimal(0)),
        Line(description="Montage", total=Decimal("50.00"), tax_rate=Decimal(0), kind=LineKind.SERVICE),
    ])
    plan = sev.plan_for(document, accounts={Decimal(0): "8125"})
    plan.lines[0].treatment, plan.lines[1].treatment = "intra_eu_supply", "reverse_charge"
    with pytest.raises(QuarantineError, match="one tax rule per document, but the lines need 3, 5"):
        target.validate(document, plan)


def test_sevdesk_422_on_save_quarantines_with_message_and_combination(sev, sandbox, target):
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("119.00"), tax_rate=Decimal(19))])
    plan = sev.plan_for(document, treatment=TaxTreatment.INTRA_EU_SUPPLY, accounts={Decimal(19): "8400"})
    target.guidance = None
    target.validate = lambda document, plan: None  # skip our own check: let sevDesk refuse it
    target.version = "2.0"
    from ledgerlink_sevdesk.taxes import ReceiptGuidance

    target.guidance = ReceiptGuidance(sandbox.state["guidance"])
    with pytest.raises(QuarantineError) as caught:
        target.push(document, plan)
    message = str(caught.value)
    assert "HTTP 422" in message and "The tax rule 3 is not allowed for the account 8400" in message
    assert message.endswith("(tried account 8400, tax rule 3, rate 19%)")
    assert sandbox.state["vouchers"] == {}


def test_failed_payment_after_creation_is_outcome_unknown_and_find_document_adopts(sev, sandbox):
    target = sev.make_target(sandbox, payment_accounts={"paypal": 6306017})  # online: needs a transaction
    target.check_accounts = {6306017: {"id": "6306017", "type": "offline", "status": "100"}}  # stale view
    document = sev.shop_order(paid=True)
    with pytest.raises(OutcomeUnknown, match="was created, but tagging or booking its payment failed"):
        target.push(document, sev.plan_for(document, mark_paid=True))
    assert target.find_document(document.source_ref, document.number) is not None


def test_credit_notes_without_an_original_are_quarantined(sev, target):
    document = sev.shop_order()
    document.kind = "credit_note"
    with pytest.raises(QuarantineError, match="a credit note that names no original document in sevDesk is not "
                                              "written"):
        target.validate(document, sev.plan_for(document))


def test_bookkeeping_1_0_uses_tax_type_and_accounting_type(sev):
    sandbox = SevdeskSandbox(seed={"Tools/bookkeepingSystemVersion": {"objects": {"version": "1.0"}}})
    target = sev.make_target(sandbox, accounting_types={"8400": 26, "8300": 27})
    document = sev.shop_order(lines=[Line(description="Ware", total=Decimal("119.00"), tax_rate=Decimal(19))])
    target.prepare({})
    ref = target.push(document, sev.plan_for(document))
    voucher = sandbox.state["vouchers"][ref.target_id]
    assert voucher["taxType"] == "default" and voucher["taxRule"] is None
    [position] = sandbox.state["voucher_positions"].values()
    assert position["accountingType"]["id"] == "26"
    assert not any("ReceiptGuidance" in e["path"] for e in sandbox.requests)
    with pytest.raises(QuarantineError, match="account 8200 has no AccountingType id"):
        target.validate(document, sev.plan_for(document, accounts={Decimal(19): "8200"}))


def test_a_foreign_currency_document_without_a_rate_is_quarantined_not_booked_as_eur(sev, sandbox, target):
    """A CHF order without an exchange rate is never written as the same number of EUR."""
    document = sev.shop_order()
    document.currency = "CHF"
    plan = sev.plan_for(document)
    with pytest.raises(QuarantineError, match="the document is in CHF, the books in EUR, and no exchange rate is "
                                              "known"):
        target.validate(document, plan)
    assert sandbox.state.get("vouchers", {}) == {}
