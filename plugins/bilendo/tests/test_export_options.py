"""Export options per document (issue 19, item 3): the sender address, the dispatch mode and
the language the source chose for one invoice (``Document.dispatch``, 1CRM's "Export zu
Bilendo" dialog) reach Bilendo and win over the connection's settings; without them the
settings apply as before. Through the sandbox in process, with the fields Bilendo stores."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from bilendo_helpers import customer, invoice, plan_for
from ledgerlink import Address, Dispatch, QuarantineError
from ledgerlink_bilendo.sandbox import BilendoSandbox

SENDER = Address(name="Demo GmbH, Anna Schmidt", street="Hauptstr. 1", street2="2. OG", zip="10115",
                 city="Berlin", country="DE")


def export(target: Any, sandbox: BilendoSandbox, doc: Any) -> dict[str, Any]:
    contact = target.create_contact(doc.customer, f"key-{doc.source_ref}")
    ref = target.push(doc, plan_for(doc, contact))
    return dict(sandbox.state["invoices"][ref.target_id])


def test_the_documents_own_options_win_over_the_settings(sandbox: BilendoSandbox, target_for: Any) -> None:
    target = target_for(dispatch="automatic", language="de", shipping_mode="email")
    doc = invoice(1).model_copy(update={"dispatch": Dispatch(send=False, language="en", channel="email_and_post",
                                                             sender=SENDER)})
    stored = export(target, sandbox, doc)
    assert (stored["dispatch"], stored["language"], stored["shipping_mode"], stored["status"]) == (
        "manual", "en", "dual_shipping", "draft")
    assert stored["sender"] == {"line1": "Demo GmbH, Anna Schmidt", "line3": "Hauptstr. 1", "line4": "2. OG",
                                "zip": "10115", "city": "Berlin", "country_code": "de"}
    assert Decimal(stored["amount"]) == Decimal("378.40")  # 300 + 57 VAT, 20 + 1.40 VAT


def test_send_true_sends_at_once_even_when_the_connection_keeps_drafts(sandbox: BilendoSandbox,
                                                                        target_for: Any) -> None:
    target = target_for(dispatch="manual")
    stored = export(target, sandbox, invoice(2).model_copy(update={"dispatch": Dispatch(send=True)}))
    assert (stored["dispatch"], stored["status"], stored["language"]) == ("automatic", "sent", "de")


def test_without_choices_the_settings_apply(sandbox: BilendoSandbox, target_for: Any) -> None:
    target = target_for(dispatch="manual", language="en", shipping_mode="post",
                        sender={"line1": "Settings GmbH", "city": "Köln", "zip": "50667"})
    stored = export(target, sandbox, invoice(3))
    assert (stored["dispatch"], stored["language"], stored["shipping_mode"]) == ("manual", "en", "post")
    assert stored["sender"]["line1"] == "Settings GmbH"
    # A Dispatch that chooses only the language leaves the rest to the settings.
    stored = export(target, sandbox, invoice(4).model_copy(update={"dispatch": Dispatch(language="de")}))
    assert (stored["dispatch"], stored["language"], stored["shipping_mode"]) == ("manual", "de", "post")
    assert stored["sender"]["line1"] == "Settings GmbH"


def test_a_language_bilendo_does_not_send_is_quarantined_before_anything_is_written(
        sandbox: BilendoSandbox, target_for: Any) -> None:
    target = target_for()
    doc = invoice(5, cust=customer(5)).model_copy(update={"dispatch": Dispatch(language="fr")})
    contact = target.create_contact(doc.customer, "key-5")
    with pytest.raises(QuarantineError, match=r"RE-1005: its language 'fr' is not one Bilendo sends \(de, en\)"):
        target.push(doc, plan_for(doc, contact))
    assert sandbox.state["invoices"] == {}

