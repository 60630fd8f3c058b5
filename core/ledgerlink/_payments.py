"""Payments on pushed documents: each booked in the target when it arrives, once.

With ``payment_reconciliation = "source"`` a document paid in the source arrives
paid (the target books its payments with the push, ``Plan.mark_paid``); a payment
that arrives later, a deposit on a partly paid document included, is booked on the
existing target document as soon as the source lists it. The ledger keeps the sum
booked so far (``payments_booked``); ``Target.book_payment`` books only the payments
the target does not have yet, so repeating it is harmless. The write protocol is
the documents': ``pending`` before the call, ``booked`` after; ``retry`` when the
target cannot take it yet (a draft), settled on the next run; ``refused: <why>``
when the target refused it for a reason a person must fix, booked by ``ledgerlink
retry``. The ledger's copy of the document gets the source's payments when a
booking starts, so a later run books them even when the source never lists the
document again.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ._config import PipelineConfig
from ._connectors import Plan, Target
from ._errors import DocumentError, NotSupported, TransientError
from ._http import redact
from ._ledger import DocumentRow
from ._records import Document, TargetRef
from ._runtime import Outcome, Runtime
from ._states import OutcomeState, PaymentState


class Payments:
    """The payment bookings of one pipeline runner."""

    def __init__(self, runtime: Runtime, pipeline: PipelineConfig, target: Target,
                 plan: Callable[..., Plan], audit: Callable[..., Any], report: Callable[[Outcome], None], *,
                 trouble: Callable[[TransientError], None] = lambda error: None,
                 count: Callable[..., None] = lambda *args, **kwargs: None) -> None:
        self.rt = runtime
        self.pipeline = pipeline
        self.ledger = runtime.ledger
        self.target = target
        self._plan = plan
        self._audit = audit
        self._report = report
        self._trouble = trouble
        """Tells the run's circuit breaker of a payment that failed for the vendor's reasons."""
        self._count = count
        """The breaker's count after each payment retried (raises when the vendor is down)."""

    def bookable(self, document: Document) -> Document:
        """The document with the payments ledgerlink books: all of them with
        payment_reconciliation = "source"; with "target" only gift vouchers (the
        bookkeeper reconciles money from the bank statement, where a voucher never
        appears)."""
        if self.pipeline.payment_reconciliation == "source":
            return document
        vouchers = [p for p in document.payments if p.kind == "voucher"]
        return document if len(vouchers) == len(document.payments) else document.model_copy(
            update={"payments": vouchers})

    def unbooked(self, row: DocumentRow, document: Document) -> bool:
        """The source has payments the target has not booked yet."""
        document = self.bookable(document)
        if not document.payments:
            return False
        if row.payments_booked is not None:
            return document.paid_amount > Decimal(row.payments_booked)
        return row.payment_state != PaymentState.BOOKED  # a ledger from before schema 4 booked only full payment

    def settle(self, row: DocumentRow, document: Document | None = None) -> Outcome | None:
        """Book what is still due on a pushed document (after a push, an adoption or a
        cut-short booking), reporting the outcome (also returned)."""
        if document is None:
            if not row.payload:
                return None
            document = Document.model_validate_json(row.payload)
        if self.unbooked(row, document):
            outcome = self.book(row, document)
            if outcome is not None:
                self._report(outcome)
            return outcome
        return None

    def retry(self, *, refused: bool = False) -> None:
        """Book the payments of pushed documents whose booking was cut short (a crash:
        "pending") or failed on the way ("retry"); ``refused``: also those the target
        refused for a reason a person fixed since (``ledgerlink retry``). The source may
        never list these documents again (the cursor has passed them). A vendor that is
        down stops this after the circuit breaker's count, as it stops documents."""
        for row in self.ledger.payments_to_retry(self.pipeline.name, refused=refused):
            self._count(self.settle(row))

    @staticmethod
    def _with_payments(row: DocumentRow, document: Document) -> str | None:
        """The ledger's copy of the document with ``document``'s payments (None: unchanged)."""
        if not row.payload:
            return None
        try:
            stored = Document.model_validate_json(row.payload)
        except ValueError:
            return None
        if stored.payments == document.payments and stored.payment_date == document.payment_date:
            return None
        return stored.model_copy(update={"payments": document.payments,
                                         "payment_date": document.payment_date}).model_dump_json()

    def book(self, row: DocumentRow, document: Document) -> Outcome | None:
        # The stored copy gets the source's payments: a later run books them from it
        # (``retry``) when the source does not list the document again (a newer one moved
        # the cursor past it).
        payload = self._with_payments(row, document)
        document = self.bookable(document)
        ref = TargetRef(target_id=row.target_id or "", number=row.target_number)
        name = self.pipeline.name
        self.ledger.set_payment_state(row, PaymentState.PENDING, payload=payload)
        try:
            plan = self._plan(document, dry_run=False, contact_needed=False)
            self.target.book_payment(ref, document, plan)
        except NotSupported:
            self.ledger.set_payment_state(row, None)
            return None
        except TransientError as exc:
            # e.g. the document is still a draft in the target, or the answer was lost:
            # the next run tries again (retry).
            self._trouble(exc)
            self.ledger.set_payment_state(row, PaymentState.RETRY)
            return Outcome(name, row.source_ref, row.number, OutcomeState.PAYMENT_PENDING,
                           f"payment not booked yet: {redact(str(exc))}", row.target_id)
        except DocumentError as exc:
            # A reason a person must fix (an account to map): kept, so `status` shows it
            # until then and `retry` books it afterwards; the source may never list the
            # document again.
            why = redact(str(exc))
            self.ledger.set_payment_state(row, PaymentState.REFUSED, why=why, audit=self._audit(
                "book_payment", row.source_ref, row.target_id, document.model_dump_json(), f"error: {exc}"))
            return Outcome(name, row.source_ref, row.number, OutcomeState.FAILED,
                           f"payment not booked: {why}; `ledgerlink retry` books it once that is fixed", row.target_id)
        self.ledger.set_payment_state(row, PaymentState.BOOKED, booked=document.paid_amount, audit=self._audit(
            "book_payment", row.source_ref, row.target_id, [str(p.amount) for p in document.payments], "ok"))
        return Outcome(name, row.source_ref, row.number, OutcomeState.PAYMENT_BOOKED, None, row.target_id,
                       gross=document.paid_amount, currency=document.currency)


__all__ = ["Payments"]
