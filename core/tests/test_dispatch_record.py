"""Document.dispatch (issue 19): a source's choices for how the target dispatches one
document. Typed and checked; not content, so a choice changed after transfer is no
'changed after transfer', and fingerprints of ledgers written before it stay the same."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from ledgerlink import Address, Customer, Dispatch, Document, Line
from ledgerlink._changes import fingerprint
from pydantic import ValidationError


def doc(**extra: object) -> Document:
    return Document(source_ref="inv-1", number="RE-1", invoice_date=date(2026, 3, 2),
                    customer=Customer(source_id="c1", company="Acme GmbH"),
                    lines=[Line(description="Beratung", total=Decimal("100.00"), tax_rate=Decimal(19),
                                price_basis="net")], **extra)


def test_dispatch_is_not_content_and_absent_fingerprints_are_unchanged() -> None:
    plain = doc()
    chosen = doc(dispatch=Dispatch(send=True, channel="post", language="EN",
                                   sender=Address(name="Demo GmbH", street="Hauptstr. 1", country="de")))
    assert fingerprint(plain) == fingerprint(chosen)
    assert "dispatch" not in fingerprint(plain)
    assert chosen.dispatch is not None and chosen.dispatch.language == "en"
    assert chosen.dispatch.sender is not None and chosen.dispatch.sender.country == "DE"
    again = Document.model_validate_json(chosen.model_dump_json())
    assert again.dispatch == chosen.dispatch


@pytest.mark.parametrize(("field", "value", "words"), [
    ("language", "deutsch", "is not an ISO 639-1 two-letter code"),
    ("channel", "fax", "email"),
    ("sender", {"name": "X", "country": "Germany"}, "is not an ISO 3166 two-letter code"),
])
def test_bad_choices_are_refused_with_the_field_named(field: str, value: object, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        doc(dispatch={field: value})
