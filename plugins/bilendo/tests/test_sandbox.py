"""End to end through the Bilendo sandbox: debtors, invoices in both dispatch modes,
their life through reminders to paid, read back with statuses() and the mapper."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest
from bilendo_helpers import advance, customer, invoice, make_target, plan_for
from ledgerlink import ConnectionError_, MappedStatus, SandboxServer, Status, VendorRejected
from ledgerlink_bilendo.sandbox import DEMO_TOKEN, TOKEN_ENV, BilendoSandbox
from ledgerlink_bilendo.statuses import BilendoGermanStatusMapper, BilendoStatusMapper

MAPPER = BilendoStatusMapper()
GERMAN = BilendoGermanStatusMapper()

LIFE = [  # (advance to, raw status, canonical, wording in 1CRM)
    ("due", "due", MappedStatus(Status.DUE, "due"), "Fällig"),
    ("overdue", "overdue", MappedStatus(Status.OVERDUE, "overdue"), "Überfällig"),
    ("reminder_1", "reminder_1", MappedStatus(Status.REMINDER, "reminder_1", 1), "Reminder 1 versendet"),
    ("reminder_2", "reminder_2", MappedStatus(Status.REMINDER, "reminder_2", 2), "Reminder 2 versendet"),
    ("paid", "paid", MappedStatus(Status.PAID, "paid"), "Bezahlt"),
]


def life_of_an_invoice(target, sandbox: BilendoSandbox, dispatch: str, n: int) -> None:
    cust = customer(n)
    contact = target.find_contact(f"key-{n}") or target.create_contact(cust, f"key-{n}")
    doc = invoice(n, cust=cust)
    ref = target.push(doc, plan_for(doc, contact))
    assert target.find_document(doc.source_ref, doc.number) == ref

    stored = sandbox.state["invoices"][ref.target_id]
    assert stored["amount"] == "378.40" and stored["net_amount"] == "320.00" and stored["tax_amount"] == "58.40"
    assert [Decimal(i["amount"]) for i in stored["invoice_items"]] == [Decimal("357.00"), Decimal("21.40")]
    assert stored["due_date"] == "2026-03-16" and stored["dispatch"] == dispatch

    [(_, raw)] = list(target.statuses([ref]))
    if dispatch == "automatic":
        assert raw == "sent" and MAPPER.to_canonical(raw) == MappedStatus(Status.SENT, "sent")
    else:
        assert raw == "draft" and MAPPER.to_canonical(raw).status == Status.DRAFT
        assert GERMAN.from_canonical(MAPPER.to_canonical(raw)) == "Entwurf"
        # a draft cannot be reminded before it is sent
        refused = advance(sandbox, ref.target_id, "reminder_1")
        assert refused.status_code == 409 and "draft" in refused.json()["errors"][0]["detail"]
        assert advance(sandbox, doc.source_ref, "sent").status_code == 200  # by our external id
        [(_, raw)] = list(target.statuses([ref]))
        assert MAPPER.to_canonical(raw).status == Status.SENT
        assert GERMAN.from_canonical(MAPPER.to_canonical(raw)) == "Versendet"

    for step, expected_raw, expected, wording in LIFE:
        answer = advance(sandbox, ref.target_id, step)
        assert answer.status_code == 200, answer.text
        [(got_ref, raw)] = list(target.statuses([ref]))
        assert got_ref == ref and raw == expected_raw
        mapped = MAPPER.to_canonical(raw)
        assert mapped == expected
        assert GERMAN.from_canonical(mapped) == wording
    assert sandbox.state["invoices"][ref.target_id]["open_amount"] == "0.00"
    assert advance(sandbox, ref.target_id, "reminder_3").status_code == 409  # paid is final


@pytest.mark.parametrize("dispatch", ["automatic", "manual"])
def test_invoice_life_in_process(sandbox, target_for, dispatch) -> None:
    target = target_for(dispatch=dispatch)
    assert "API token accepted" in target.check()
    life_of_an_invoice(target, sandbox, dispatch, 1)
    problems = [e for e in sandbox.requests if e.get("validation_errors")]
    assert problems == []


def test_over_a_real_loopback_server_both_dispatch_modes() -> None:
    sandbox = BilendoSandbox()
    with SandboxServer(sandbox) as server:
        settings, env = sandbox.demo_connection(server.url)
        assert settings["api_token"] == "${" + TOKEN_ENV + "}" and env == {TOKEN_ENV: DEMO_TOKEN}
        for n, dispatch in enumerate(["automatic", "manual"], start=1):
            target = make_target(None, api_token=env[TOKEN_ENV], base_url=settings["base_url"],
                                 dispatch=dispatch, language="de", shipping_mode="email")
            try:
                assert "sandbox at 127.0.0.1" in target.check()
                life_of_an_invoice(target, sandbox, dispatch, n)
            finally:
                target.close()
        customers = list(make_target(None, base_url=server.url).contacts())
        assert sorted(c.company for c in customers) == ["Acme GmbH", "Acme GmbH"]
        log = httpx.get(f"{server.url}/__sandbox__/requests").json()
        assert any(e["path"] == "/api/v2/invoices" and e["status"] == 201 for e in log)


def test_debtor_created_once_with_contact_and_address_and_found_case_insensitively(sandbox, target_for) -> None:
    target = target_for()
    assert target.find_contact("Key-1") is None
    created = target.create_contact(customer(1), "Key-1")
    assert target.find_contact("key-1").target_id == created.target_id
    # a second create (crash after the customer was written) finishes, never duplicates
    again = target.create_contact(customer(1), "Key-1")
    assert again.target_id == created.target_id
    assert len(sandbox.state["customers"]) == 1
    [contact] = sandbox.state["contacts"].values()
    assert contact["name"] == "Max Muster1" and contact["email"] == "max1@acme.example"
    assert contact["main_contact"] is True and contact["gender"] == 0 and contact["salutation"] == 0
    [address] = sandbox.state["addresses"].values()
    assert (address["line1"], address["line2"], address["line3"]) == ("Acme GmbH", "Max Muster1", "Sendlinger Str. 85")
    assert address["country"] == "Deutschland" and address["default_address"] is True


def test_private_customer_without_address_gets_no_address(sandbox, target_for) -> None:
    target = target_for()
    cust = customer(2, company=None)
    cust.address = None
    contact = target.create_contact(cust, "k2")
    assert contact.company == "Max Muster2" and (contact.first_name, contact.last_name) == ("Max", "Muster2")
    assert sandbox.state["addresses"] == {}
    assert len(sandbox.state["contacts"]) == 1


def test_pdf_is_uploaded_with_the_invoice(sandbox, target_for, monkeypatch) -> None:
    target = target_for(dispatch="automatic")
    contact = target.create_contact(customer(1), "k1")
    pdf = b"%PDF-1.7 invoice RE-1001\r\n%%EOF\r\n"
    monkeypatch.setattr(target, "_download_pdf", lambda url: pdf)
    doc = invoice(1, pdf_url="https://crm.example/pdf/1")
    ref = target.push(doc, plan_for(doc, contact))
    assert sandbox.state["invoices"][ref.target_id]["pdf"] == {"filename": "RE-1001.pdf", "size": len(pdf)}


def test_sandbox_rejects_a_wrong_token_and_the_target_says_so(sandbox) -> None:
    target = make_target(sandbox.transport(), api_token="wrong-token-123")
    with pytest.raises(ConnectionError_, match="Bilendo rejected the API token"):
        target.check()
    assert sandbox.requests[-1]["status"] == 401


def test_sandbox_answers_422_in_json_api_shape(sandbox, target_for) -> None:
    target = target_for()
    contact = target.create_contact(customer(1), "k1")
    doc = invoice(1)
    target.push(doc, plan_for(doc, contact))
    with pytest.raises(VendorRejected, match="external_id: has already been taken"):
        target.push(doc, plan_for(doc, contact))
    with httpx.Client(transport=sandbox.transport(), base_url="http://sb/api/v2",
                      headers={"Authorization": f"Token token={DEMO_TOKEN}"}) as client:
        answer = client.post(f"/customers/{contact.target_id}/addresses", data={"line1": "X", "city": "Y"})
        assert answer.status_code == 422
        errors = answer.json()["errors"]
        assert all(e["status"] == "422" and e["title"] == "Unprocessable Entity" for e in errors)
        assert any("line3" in e["detail"] for e in errors)
        wrong = client.post("/invoices", data={"external_id": "x"})
        assert wrong.status_code == 422
        assert client.get("/invoices/find/nothing").status_code == 404


def test_automatic_dispatch_sends_at_once_manual_waits(sandbox, target_for) -> None:
    auto, manual = target_for(dispatch="automatic"), target_for(dispatch="manual")
    contact = auto.create_contact(customer(1), "k1")
    first, second = invoice(1), invoice(2)
    a = auto.push(first, plan_for(first, contact))
    m = manual.push(second, plan_for(second, contact, due=None))
    assert sandbox.state["invoices"][a.target_id]["sent_at"] is not None
    assert sandbox.state["invoices"][m.target_id]["sent_at"] is None
    assert sandbox.state["invoices"][m.target_id]["due_date"] is None
    assert dict((r.target_id, raw) for r, raw in auto.statuses([a, m])) == {a.target_id: "sent", m.target_id: "draft"}
    assert sandbox.describe() == "Bilendo sandbox holds 2 invoices (1 draft, 1 sent) for 1 debtors"
    assert BilendoSandbox().describe() == "Bilendo sandbox holds 0 invoices for 0 debtors"
    assert BilendoSandbox.demo_rules() == []


def test_partial_payment_unknown_and_deleted_statuses(sandbox, target_for) -> None:
    target = target_for(dispatch="automatic")
    contact = target.create_contact(customer(1), "k1")
    doc = invoice(1)
    ref = target.push(doc, plan_for(doc, contact))
    assert advance(sandbox, ref.target_id, "partially_paid", amount="100.00").status_code == 200
    assert sandbox.state["invoices"][ref.target_id]["open_amount"] == "278.40"
    [(_, raw)] = list(target.statuses([ref]))
    assert MAPPER.to_canonical(raw) == MappedStatus(Status.PARTIALLY_PAID, "partially_paid")
    assert advance(sandbox, ref.target_id, "Klärfall", raw=True).status_code == 200
    [(_, raw)] = list(target.statuses([ref]))
    assert raw == "Klärfall" and MAPPER.to_canonical(raw) == MappedStatus(Status.UNKNOWN, "Klärfall")
    del sandbox.state["invoices"][ref.target_id]
    [(_, raw)] = list(target.statuses([ref]))
    assert raw == "deleted" and MAPPER.to_canonical(raw).status == Status.UNKNOWN


def test_reminders_keep_their_order(sandbox, target_for) -> None:
    target = target_for(dispatch="automatic")
    contact = target.create_contact(customer(1), "k1")
    doc = invoice(1)
    ref = target.push(doc, plan_for(doc, contact))
    assert advance(sandbox, ref.target_id, "reminder_2").status_code == 409
    assert advance(sandbox, ref.target_id, "reminder_1").status_code == 200
    assert sandbox.state["customers"][contact.target_id]["current_reminder_stage"] == 1
    assert advance(sandbox, ref.target_id, "teleport").status_code == 422
    assert advance(sandbox, "nope", "paid").status_code == 404


def test_seed_state_and_faults(sandbox, target_for) -> None:
    seed = {
        "customers": [{"id": "cus-9", "type": "customer",
                       "attributes": {"name": "Seeded AG", "external_id": "s9", "customer_number": "900"},
                       "contacts": [{"name": "Eva", "email": "eva@seeded.example"}],
                       "addresses": [{"line1": "Seeded AG", "line3": "Weg 1", "zip": "1", "city": "Wien",
                                      "country_code": "at"}]}],
        "invoices": [{"id": "inv-9", "attributes": {"external_id": "old-9", "invoice_number": "R9",
                                                     "amount": "10.00", "status": "reminder_1",
                                                     "customer_id": "cus-9"}}],
    }
    with httpx.Client(transport=sandbox.transport(), base_url="http://sb") as client:
        assert client.post("/__sandbox__/seed", json=seed).status_code == 200
        state = client.get("/__sandbox__/state").json()
        assert state["customers"]["cus-9"]["customer_number"] == "900"
        [address] = state["addresses"].values()
        assert address["country"] == "Österreich"
        target = target_for()
        assert target.find_contact("S9").customer_number == "900"
        ref = target.find_document("old-9")
        assert ref is not None and ref.number == "R9"
        assert list(target.statuses([ref]))[0][1] == "reminder_1"
        faults = client.post("/__sandbox__/faults", json={"rate_429": 1.0, "retry_after": 0.01, "seed": 1})
        assert faults.status_code == 200
        with pytest.raises(Exception, match="HTTP 429"):
            target.find_contact("S9")
        client.post("/__sandbox__/faults", json={"rate_429": 0.0})
        assert client.post("/__sandbox__/reset").status_code == 200
        assert target.find_contact("S9") is None


def test_state_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "bilendo.json"
    first = BilendoSandbox(state_path=path)
    target = make_target(first.transport(), dispatch="automatic")
    contact = target.create_contact(customer(1), "k1")
    doc = invoice(1)
    ref = target.push(doc, plan_for(doc, contact))
    advance(first, ref.target_id, "reminder_1")
    second = BilendoSandbox(state_path=path)
    again = make_target(second.transport())
    assert again.find_document("inv-1") == ref
    assert list(again.statuses([ref]))[0][1] == "reminder_1"
    assert date.fromisoformat(second.state["invoices"][ref.target_id]["invoice_date"]) == date(2026, 3, 2)
