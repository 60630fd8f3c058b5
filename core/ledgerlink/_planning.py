"""Planning: where each line is booked, with which tax rule, on which dates.

Pure functions of the pipeline's config and the document: nothing here calls a
connector or writes the ledger. The runner first drafts the plan (lines and
dates: a document no rule books is quarantined here, before any contact is
created for it), then matches the customer (``_contacts``), then completes the
plan with the contact and hands it to the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from . import _tax as tax
from ._config import PipelineConfig, Rule
from ._connectors import Plan, PlannedLine
from ._errors import QuarantineError
from ._records import DEFAULT_BOOK_CURRENCY, DEFAULT_SELLER_COUNTRY, Contact, Document, DocumentKind


def rule_matches(rule: Rule, document: Document, line_index: int, treatment: str) -> bool:
    """Whether every condition of ``rule.when`` holds for one line of the document."""
    line = document.lines[line_index]
    for key, wanted in rule.when.conditions().items():
        have: Any
        if key == "line":
            have = line.kind
        elif key == "region":
            have = document.tax_region
        elif key == "treatment":
            have = treatment
        elif key == "booking_code":
            have = line.booking_code
        elif key == "tax_rate":
            if Decimal(line.tax_rate) == Decimal(wanted):
                continue
            return False
        elif key == "shop":
            have = document.shop
        elif key == "currency":
            have = document.currency
            wanted = str(wanted).upper()
        elif key == "kind":
            have = document.kind
        else:  # pragma: no cover - RuleWhen forbids other keys
            return False
        if str(have) != str(wanted):
            return False
    return True


def choose_document_date(pipeline: PipelineConfig, document: Document) -> date:
    """The document date the pipeline asks for (``document_date``), falling back in order."""
    order = {
        "invoice": (document.invoice_date, document.order_date),
        "payment": (document.payment_date, document.invoice_date, document.order_date),
        "order": (document.order_date, document.invoice_date),
    }[pipeline.document_date]
    for candidate in order:
        if candidate is not None:
            return candidate
    if document.kind == DocumentKind.CREDIT_NOTE and document.reverses:
        # A credit note the source states without a date (a refund recorded as an amount)
        # is dated the day it is written, as ledgerlink's own reversals are: it never
        # changes a period that may be filed.
        return date.today()
    raise QuarantineError("the document has no invoice, order or payment date")


def plan_lines(pipeline: PipelineConfig, document: Document, *, target_books_lines: bool = False) -> list[PlannedLine]:
    """Each line with its account, tax rule, treatment and cost centre (first matching rule).

    A treatment the facts contradict (``_tax``) quarantines the document, naming both.
    Lines no rule books quarantine it when the pipeline requires rules
    (``require_rules``; by default when it has rules and the target does not book by
    its own settings)."""
    planned: list[PlannedLine] = []
    require = pipeline.require_rules
    if require is None:
        require = bool(pipeline.rules) and not target_books_lines
    unmapped: list[str] = []
    treatments = [document.tax_treatment(line, oss=pipeline.oss, small_business=pipeline.small_business)
                  for line in document.lines]
    problems = tax.document_problems(document, treatments, oss=pipeline.oss, small_business=pipeline.small_business)
    if problems:
        raise QuarantineError("; ".join(problems))
    for index, line in enumerate(document.lines):
        why = tax.treatment_reason(document, line, treatments[index], oss=pipeline.oss,
                                   small_business=pipeline.small_business)
        treatment = str(treatments[index])
        rule = next((r for r in pipeline.rules if rule_matches(r, document, index, treatment)), None)
        if rule is None:
            if require:
                what = (
                    f"booking code {line.booking_code!r}" if line.booking_code else
                    f"{line.kind}, {document.tax_region}, {line.tax_rate}%"
                )
                unmapped.append(f"line {index + 1} ({line.description[:40]!r}: {what})")
            planned.append(PlannedLine(line=line, treatment=treatment, cost_centre=pipeline.cost_centre, why=why))
            continue
        planned.append(
            PlannedLine(
                line=line,
                account=rule.account,
                tax_rule=rule.tax_rule,
                treatment=treatment,
                cost_centre=rule.cost_centre or pipeline.cost_centre,
                why=why,
            )
        )
    if unmapped:
        raise QuarantineError(f"no rule of pipeline {pipeline.name!r} books " + "; ".join(unmapped))
    return planned


@dataclass(frozen=True)
class Draft:
    """The contact-free part of a plan."""

    lines: list[PlannedLine]
    document_date: date
    due_date: date
    exchange_rate: Decimal | None = None
    book_currency: str = DEFAULT_BOOK_CURRENCY


@dataclass(frozen=True)
class Original:
    """What a credit note needs of the document it reverses, from the ledger."""

    label: str
    currency: str | None
    exchange_rate: Decimal | None
    """The rate the original was written at (None: its currency was the book currency, or
    the ledger did not record it)."""


def exchange_rate(pipeline: PipelineConfig, document: Document, book_currency: str,
                  original: Original | None = None) -> Decimal | None:
    """The rate from the document's currency into the book currency (None: the same
    currency): the source's, else the pipeline's ``exchange_rates``, else quarantine.

    A credit note that reverses a document in the same currency is written at the rate
    of that document, whatever the source or the pipeline says today: only so do the
    two cancel out to the cent in the books."""
    if document.currency == book_currency:
        return None
    if original is not None and original.currency == document.currency:
        if original.exchange_rate is not None:
            return original.exchange_rate
        raise QuarantineError(
            f"it reverses {original.label}, a {document.currency} document whose exchange rate the ledger did not "
            f"record (written by an older ledgerlink): reverse it by hand at {original.label}'s rate")
    rate = document.exchange_rate or pipeline.exchange_rates.get(document.currency)
    if rate is None:
        raise QuarantineError(
            f"the document is in {document.currency}, the books in {book_currency}, and neither the source "
            f"nor the pipeline's exchange_rates states a rate for {document.currency}")
    return rate


def draft(pipeline: PipelineConfig, document: Document, *, target_books_lines: bool = False,
          book_currency: str = DEFAULT_BOOK_CURRENCY, target_books_vouchers: bool = True,
          original: Original | None = None) -> Draft:
    """Lines, dates and exchange rate; raises ``QuarantineError`` when the document cannot be booked.
    ``original``: the document a credit note reverses, as the ledger knows it."""
    rate = exchange_rate(pipeline, document, book_currency, original)
    vouchers = document.voucher_amount
    if vouchers and not pipeline.voucher_account and target_books_vouchers:
        raise QuarantineError(
            f"{vouchers} {document.currency} of it is paid with a gift voucher, which is a means of payment, not a "
            f"discount; set voucher_account in pipeline {pipeline.name!r} to the target's voucher clearing account")
    lines = plan_lines(pipeline, document, target_books_lines=target_books_lines)
    document_date = choose_document_date(pipeline, document)
    if pipeline.due_days is not None:
        due = document_date + timedelta(days=pipeline.due_days)
    else:
        due = document.due_date or document_date
    return Draft(lines, document_date, due, rate, book_currency)


def complete(pipeline: PipelineConfig, document: Document, draft: Draft, options: dict[str, Any], *,
             contact: Contact | None, decision: str, contact_needed: bool = True) -> Plan:
    """The whole plan: the draft with the contact (or the mismatch tag), tags and payment."""
    tags = list(pipeline.tags)
    mismatch = contact_needed and contact is None
    if mismatch and pipeline.mismatch_tag not in tags:
        tags.append(pipeline.mismatch_tag)
    return Plan(
        pipeline=pipeline.name,
        contact=contact,
        lines=draft.lines,
        document_date=draft.document_date,
        due_date=draft.due_date,
        tags=tags,
        cost_centre=pipeline.cost_centre,
        mark_paid=pipeline.payment_reconciliation == "source" and document.is_paid,
        mismatch=mismatch,
        contact_decision=decision,
        options=options,
        book_currency=draft.book_currency,
        exchange_rate=draft.exchange_rate,
        voucher_account=pipeline.voucher_account if document.voucher_amount else None,  # only where one is paid
    )


def resolve_seller_country(pipeline: PipelineConfig, document: Document) -> tuple[Document, str | None]:
    """The document with its seller country settled, and a problem if source and pipeline disagree.

    The source's statement is used; the pipeline's ``seller_country`` is the default when
    the source states none (DE when neither does)."""
    if document.seller_country is None:
        return document.model_copy(update={"seller_country": pipeline.seller_country or DEFAULT_SELLER_COUNTRY}), None
    if pipeline.seller_country and document.seller_country != pipeline.seller_country:
        return document, (f"the source states seller country {document.seller_country}, the pipeline's "
                          f"seller_country is {pipeline.seller_country}; correct one of them")
    return document, None


__all__ = ["Draft", "Original", "choose_document_date", "complete", "draft", "exchange_rate", "plan_lines", "resolve_seller_country",
           "rule_matches"]
