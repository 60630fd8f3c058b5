"""Cancellations: a credit note always references the document it cancels.

Two ways a cancellation reaches the books (rules: docs/accounting.md, "Credit notes and
cancellations"):

- The source has its own cancellation document (``Document.reverses`` names the
  original). It is written as the target's credit note referencing the original in
  the target, or quarantined with the reason: never as free-standing negative revenue.
- A document is cancelled in the source after transfer. With ``on_cancel = "flag"``
  (the default) it is reported for a person; with ``"reverse"`` ledgerlink writes the
  reversal itself: ``Document.reversal()``, a credit note under the key
  ``source_ref + REVERSAL_SUFFIX``.

Both go through the runner's one write protocol (pending, ``find_document``, once);
this module only decides what the credit note references, or why it cannot be written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ._config import PipelineConfig
from ._connectors import SourceItem, Target
from ._errors import QuarantineError
from ._ledger import DocumentRow, Ledger
from ._records import REVERSAL_SUFFIX, Document, DocumentKind, TargetRef
from ._runtime import Outcome
from ._states import DocumentState, OutcomeState

S, OS = DocumentState, OutcomeState

CANCELLED_IN_SOURCE = "cancelled in the source"
"""The skip reason of a document cancelled before transfer."""

Process = Callable[[SourceItem, bool], "Outcome | None"]


def free_standing(document: Document) -> str | None:
    """Why a document with a negative total that names no original cannot be written (None:
    it names one, or it is not negative). A cancellation or refund reaches the books only
    as a credit note for the invoice it cancels, never as free-standing negative revenue."""
    if document.reverses or document.total_gross >= 0:
        return None
    what = "a credit note" if document.kind == DocumentKind.CREDIT_NOTE else "a negative invoice"
    return (f"{what} of {document.total_gross} {document.currency} that names no document it reverses: a "
            "cancellation or refund is booked only as a credit note for the invoice it cancels, never as "
            "negative revenue of its own; book it by hand, or have the source name the original")


def credit_note_name(row: DocumentRow) -> str:
    return row.target_number or row.number or row.target_id or row.source_ref


class Cancellations:
    def __init__(self, ledger: Ledger, pipeline: PipelineConfig, target: Target, target_name: str,
                 process: Process, report: Callable[[Outcome], None]) -> None:
        self.ledger = ledger
        self.pipeline = pipeline
        self.target = target
        self.target_name = target_name
        self.process = process
        self.report = report

    # -- a credit note from the source -------------------------------------------------
    def original(self, document: Document, *, dry_run: bool) -> tuple[TargetRef | None, str | None]:
        """What the credit note ``document`` references in the target: (ref, None); or
        (None, why it is skipped); or ``QuarantineError`` naming why it cannot be written."""
        assert document.reverses is not None
        name = self.pipeline.name
        original = self.ledger.document(name, document.reverses)
        label = f"{original.number or original.source_ref}" if original is not None else document.reverses
        if original is None:
            raise QuarantineError(
                f"it cancels {label}, which this pipeline has not transferred or seen; once {label} is "
                "transferred, `ledgerlink retry --quarantined` writes it as a credit note referencing it")
        if original.state == S.SKIPPED and original.reason == CANCELLED_IN_SOURCE and self.target.locks_exported:
            return None, (f"it cancels {label}, which was cancelled before export: neither goes to "
                          f"{self.target_name}")
        if not self.target.reverses_documents:
            raise QuarantineError(
                f"it cancels {label}; {self.target_name} cannot take a credit note referencing it: "
                "book the cancellation there by hand")
        if original.state == S.SKIPPED and original.reason == CANCELLED_IN_SOURCE:
            # An issued invoice with its own cancellation: both go to the books.
            original = self._write_cancelled_original(original, label, dry_run=dry_run)
            if original is None:
                return TargetRef(target_id="(written first in this run)", number=label), None
        if original.state != S.PUSHED or not original.target_id:
            why = f"{original.state}" + (f": {original.reason}" if original.reason else "")
            raise QuarantineError(
                f"it cancels {label}, which is not in the target ({why}); once {label} is transferred, "
                "`ledgerlink retry --quarantined` writes it as a credit note referencing it")
        other = self.ledger.reversal_of(name, original.source_ref)
        if other is not None and other.source_ref != document.source_ref and other.state == S.PUSHED:
            return None, (f"{label} is already reversed in the target by credit note {credit_note_name(other)} "
                          f"({other.source_ref})")
        return TargetRef(target_id=original.target_id, number=original.target_number or original.number), None

    def _write_cancelled_original(self, original: DocumentRow, label: str, *, dry_run: bool) -> DocumentRow | None:
        if not original.payload:
            raise QuarantineError(f"it cancels {label}, which was skipped as cancelled and the ledger kept no copy")
        try:
            stored = Document.model_validate_json(original.payload)
        except ValueError as exc:
            raise QuarantineError(f"it cancels {label}, whose stored copy this version cannot read") from exc
        if dry_run:
            return None
        outcome = self.process(stored.model_copy(update={"cancelled": False, "cursor": None}), False)
        if outcome is not None:
            self.report(outcome)
        row = self.ledger.document(self.pipeline.name, original.source_ref)
        assert row is not None
        return row

    def reference(self, document: Document) -> TargetRef | None:
        """The pushed original of a credit note, without deciding anything (for a
        document adopted after an interruption)."""
        if not document.reverses:
            return None
        original = self.ledger.document(self.pipeline.name, document.reverses)
        if original is None or original.state != S.PUSHED or not original.target_id:
            return None
        return TargetRef(target_id=original.target_id, number=original.target_number or original.number)

    def written(self, credit_note: Document, row: DocumentRow) -> Outcome | None:
        """A credit note was written: an original flagged as cancelled (or cancelled in
        the source) says so now; the outcome tells the original's news."""
        assert credit_note.reverses is not None
        original = self.ledger.document(self.pipeline.name, credit_note.reverses)
        if original is None or original.state != S.PUSHED:
            return None
        flagged = original.changed and original.changed.startswith("cancelled after")
        if not flagged and not credit_note.source_ref.endswith(REVERSAL_SUFFIX):
            return None
        word = original.changed.split(":", 1)[0] if flagged and original.changed else "cancelled after transfer"
        text = f"{word}: reversed by credit note {credit_note_name(row)}"
        self.ledger.mark_changed(original, text)
        return Outcome(self.pipeline.name, original.source_ref, original.number, OS.REVERSED, text, row.target_id)

    # -- cancelled after transfer ------------------------------------------------------
    def after_transfer(self, row: DocumentRow, document: Document, word: str,
                       dry_run: bool) -> tuple[str | None, OutcomeState, Outcome | None]:
        """The flag text and outcome for a pushed document now cancelled in the source;
        with on_cancel = "reverse", the reversal is written first (or its failure is the
        outcome). None: nothing to say yet (the reversal's answer was lost and is asked
        about after the settle delay; ``written`` reports it then)."""
        reversal = self.ledger.reversal_of(self.pipeline.name, row.source_ref)
        if reversal is not None and reversal.state == S.PUSHED:
            return (f"cancelled after {word}: reversed by credit note {credit_note_name(reversal)}", OS.REVERSED,
                    None)
        flag = f"cancelled after {word}: still booked in the target; a person must reverse it"
        if self.pipeline.on_cancel != "reverse":
            return flag, OS.CANCELLED, None
        if not self.target.reverses_documents:
            return flag + f" ({self.target_name} cannot take a reversal from ledgerlink)", OS.CANCELLED, None
        credit = document.reversal(date.today())
        if dry_run:
            return f"cancelled after {word}: would be reversed by a credit note", OS.PLANNED, None
        outcome = self.process(credit, False)
        reversal = self.ledger.document(self.pipeline.name, credit.source_ref)
        if reversal is not None and reversal.state == S.PUSHED:
            return (f"cancelled after {word}: reversed by credit note {credit_note_name(reversal)}", OS.REVERSED,
                    None)
        if reversal is not None and reversal.state == S.PENDING and outcome is None:
            return None, OS.CHANGED, None  # waiting for the settle delay
        return flag + f"; its reversal {credit.source_ref} was not written", OS.CANCELLED, outcome


__all__ = ["CANCELLED_IN_SOURCE", "Cancellations", "credit_note_name", "free_standing"]
