"""A source's tax mode is a hint: checked against the facts before anything is written.

Each case is one the bookkeeper found booked as a tax-free rule where VAT is owed
(issue 15, class 2); each must be quarantined with both facts named, and nothing
may reach the target. The cases the facts support must still go through.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from ledgerlink import Address, Customer, Document, Line, LineKind, TaxTreatment
from ledgerlink._records import eu_rates
from ledgerlink.testing import fake_store, make_runtime, run_pipeline

T = TaxTreatment


def document(*, country: str | None, vat_id: str | None = None, rate: str = "0", hint: TaxTreatment | None = None,
             kind: LineKind = LineKind.GOODS, gross: str = "100.00", day: str = "2026-03-02",
             seller: str | None = None) -> Document:
    return Document(
        source_ref="order-1", number="RE-1", invoice_date=day, seller_country=seller,
        customer=Customer(source_id="c1", last_name="Dupont", vat_id=vat_id,
                          address=Address(city="X", country=country) if country else None),
        lines=[Line(description="Widget", total=Decimal(gross), tax_rate=Decimal(rate), kind=kind)],
        treatment_hint=hint,
    )


def run(doc: Document, tmp_path: Path, *, dry_run: bool = False, **pipeline: object):
    fake_store("s")["documents"][doc.source_ref] = doc
    raw = {
        "connections": {"shop": {"plugin": "fake-source", "store": "s"},
                        "books": {"plugin": "fake-target", "store": "t"}},
        "pipelines": [{"name": "p", "source": "shop", "target": "books", **pipeline}],
    }
    runtime = make_runtime(raw, tmp_path)
    result = run_pipeline(runtime, dry_run=dry_run)
    return result, runtime.ledger.document("p", doc.source_ref)


@pytest.mark.parametrize(("doc", "pipeline", "because"), [
    (document(country="AT", hint=T.INTRA_EU_SUPPLY), {},
     "line 1 ('Widget'): the source marks it as an intra-EU supply, but the buyer has no VAT id"),
    (document(country="DE", vat_id="DE123456789", hint=T.INTRA_EU_SUPPLY), {},
     "the source marks it as an intra-EU supply, but the buyer is in DE, the seller's own country"),
    (document(country="FR", vat_id="FR12345678901", hint=T.EXPORT), {},
     "the source marks it as an export, but the buyer's address is in FR, inside the EU"),
    (document(country="DE", hint=T.SMALL_BUSINESS), {},
     "the source marks it as small business (no VAT), but the pipeline's seller is not a small business"),
    (document(country="FR", rate="19", gross="119.00"), {"oss": True},
     "ledgerlink derives it as an OSS sale at 19 %, but FR taxes at 20 %, 10 %, 5.5 %, 2.1 %"),
    (document(country="CH", rate="7", gross="107.00", hint=T.EXPORT), {},
     "the source marks it as an export, but the line charges 7 % VAT"),
    (document(country="DE", rate="19", gross="119.00"), {"small_business": True},
     "charges 19 % VAT, but the pipeline's seller is a small business"),
    (document(country="AT", vat_id="ATU12345678", hint=T.REVERSE_CHARGE, kind=LineKind.GOODS), {},
     "reverse charge, but the line sells goods"),
    # no hint at all: 0 % is no German rate, so it is not a "reduced" rate (issue 15, audit B3)
    (document(country="DE"), {},
     "line 1 ('Widget') charges no VAT (0 %) and the source states no reason (intra-EU supply, export, small "
     "business, ...); 0 % is not a VAT rate of DE on 2026-03-02 (19 %, 7 %)"),
    (document(country="AT"), {},
     "0 % is not a VAT rate of DE on 2026-03-02 (19 %, 7 %)"),  # an EU consumer, the seller not in OSS
    (document(country="DE", rate="16", gross="116.00"), {},
     "line 1 ('Widget') charges 16 % VAT, but DE's VAT rates on 2026-03-02 are 19 %, 7 %"),
    # the rates are dated: Estonia's 22 % ended on 30 June 2025
    (document(country="EE", rate="22", gross="122.00", day="2025-08-01"), {"oss": True},
     "ledgerlink derives it as an OSS sale at 22 %, but EE taxes at 24 %, 13 %, 9 % on 2025-08-01"),
], ids=["intra-eu-no-vat-id", "intra-eu-domestic", "export-to-eu", "small-business-not-set", "oss-seller-rate",
        "export-with-vat", "small-business-charging-vat", "reverse-charge-goods", "zero-without-reason-domestic",
        "zero-without-reason-eu-consumer", "rate-not-of-the-country", "oss-rate-of-another-period"])
def test_a_hint_the_facts_contradict_is_quarantined_and_nothing_is_written(doc, pipeline, because, tmp_path) -> None:
    result, row = run(doc, tmp_path, **pipeline)
    assert result.counts() == {"quarantined": 1}
    assert row.state == "quarantined" and because in row.reason, row.reason
    assert fake_store("t")["pushed"] == {} and fake_store("t")["writes"] == []


@pytest.mark.parametrize(("doc", "pipeline", "treatment"), [
    (document(country="AT", vat_id="ATU12345678", hint=T.INTRA_EU_SUPPLY), {}, T.INTRA_EU_SUPPLY),
    (document(country="CH", hint=T.EXPORT), {}, T.EXPORT),
    (document(country="US"), {}, T.EXPORT),
    (document(country="DE", hint=T.SMALL_BUSINESS), {"small_business": True}, T.SMALL_BUSINESS),
    (document(country="FR", rate="20", gross="120.00"), {"oss": True}, T.OSS),
    (document(country="FR", rate="5.5", gross="105.50"), {"oss": True}, T.OSS),
    (document(country="FR", rate="19", gross="119.00"), {}, T.STANDARD),  # distance sale under the threshold
    (document(country="AT", vat_id="ATU12345678", hint=T.REVERSE_CHARGE, kind=LineKind.SERVICE), {},
     T.REVERSE_CHARGE),
    # each at the rate of its day (dated table)
    (document(country="EE", rate="24", gross="124.00", day="2025-08-01"), {"oss": True}, T.OSS),
    (document(country="EE", rate="22", gross="122.00", day="2025-06-30"), {"oss": True}, T.OSS),
    (document(country="RO", rate="21", gross="121.00", day="2025-09-01"), {"oss": True}, T.OSS),
    (document(country="FI", rate="24", gross="124.00", day="2024-06-01"), {"oss": True}, T.OSS),
    (document(country="DE", rate="16", gross="116.00", day="2020-10-01"), {}, T.STANDARD),
    (document(country="DE", rate="0", gross="0.00"), {}, T.REDUCED),  # a line of 0.00 owes no VAT either way
], ids=["intra-eu", "export-ch", "export-derived", "small-business", "oss-fr-standard", "oss-fr-reduced",
        "distance-sale", "reverse-charge-service", "oss-ee-2025-08", "oss-ee-2025-06", "oss-ro-2025-09",
        "oss-fi-2024-06", "de-2020-16", "zero-line-of-nothing"])
def test_a_treatment_the_facts_support_goes_through(doc, pipeline, treatment, tmp_path) -> None:
    result, row = run(doc, tmp_path, **pipeline)
    assert result.counts() == {"pushed": 1}, row.reason
    assert doc.tax_treatment(oss=pipeline.get("oss", False),
                             small_business=pipeline.get("small_business", False)) == treatment


def test_eu_rates_are_dated_data_with_the_standard_rate_first() -> None:
    assert eu_rates("FR") == [Decimal(20), Decimal(10), Decimal("5.5"), Decimal("2.1")]
    assert eu_rates("DE") == [Decimal(19), Decimal(7)]
    assert eu_rates("EL")[0] == Decimal(24)  # Greece by its VAT prefix
    assert eu_rates("CH") == []
    # dated: the rates of the day a document is dated, the current ones without a day
    assert eu_rates("EE", date(2025, 6, 30))[0] == Decimal(22) and eu_rates("EE", date(2025, 7, 1))[0] == Decimal(24)
    assert eu_rates("DE", date(2020, 12, 31)) == [Decimal(16), Decimal(5)]
    assert eu_rates("DE", date(2021, 1, 1)) == [Decimal(19), Decimal(7)]
    assert eu_rates("RO", date(2025, 7, 31)) == [Decimal(19), Decimal(9), Decimal(5)]
    assert eu_rates("RO") == [Decimal(21), Decimal(11)]


def test_a_foreign_currency_without_a_rate_is_quarantined(tmp_path) -> None:
    doc = document(country="CH", hint=T.EXPORT).model_copy(update={"currency": "CHF"})
    result, row = run(doc, tmp_path)
    assert result.counts() == {"quarantined": 1}
    assert row.reason == ("the document is in CHF, the books in EUR, and neither the source nor the pipeline's "
                          "exchange_rates states a rate for CHF")
    assert fake_store("t")["writes"] == []


@pytest.mark.parametrize(("stated", "configured", "expected"), [
    (Decimal("0.95"), None, "0.95"),          # the source's rate
    (None, "0.93", "0.93"),                   # else the pipeline's
    (Decimal("0.95"), "0.93", "0.95"),        # the source's wins
])
def test_the_exchange_rate_comes_from_the_source_else_the_pipeline(stated, configured, expected, tmp_path) -> None:
    doc = document(country="CH", hint=T.EXPORT).model_copy(update={"currency": "CHF", "exchange_rate": stated})
    pipeline = {"exchange_rates": {"CHF": configured}} if configured else {}
    result, _ = run(doc, tmp_path, dry_run=True, **pipeline)
    [outcome] = result.outcomes
    assert outcome.state == "planned"
    assert outcome.plan["exchange_rate"] == expected and outcome.plan["book_currency"] == "EUR"


def test_a_document_in_the_book_currency_needs_no_rate(tmp_path) -> None:
    result, _ = run(document(country="DE", rate="19", gross="119.00"), tmp_path, book_currency="EUR")
    assert result.counts() == {"pushed": 1}
