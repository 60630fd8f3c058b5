"""The states a document, a customer link, a payment and a run's outcome can be in.

The ledger stores these values as text; these enums are the only place they are
spelled. ``DocumentState`` is the ledger's state machine (see ``_ledger.TRANSITIONS``
for which changes are allowed); ``Outcome`` states are what one run did with one
document and are never stored as a document's state.
"""

from __future__ import annotations

from enum import StrEnum


class DocumentState(StrEnum):
    """Where a source document stands in the ledger."""

    PENDING = "pending"
    """The push was committed as an intent and the target was (maybe) called; the
    outcome is unknown until the target is asked (``find_document``)."""
    PUSHED = "pushed"
    """In the target exactly once, with its target reference."""
    SKIPPED = "skipped"
    """Not to be transferred (filter, source says so), with the reason."""
    FAILED = "failed"
    """Could not be transferred; ``retryable`` says whether it may go away by itself."""
    QUARANTINED = "quarantined"
    """Refused before sending: it needs a person (a rule, a figure, a tax rule)."""


class LinkState(StrEnum):
    """A source customer's link to a target contact."""

    PENDING = "pending"
    """A contact creation was sent with the link's key; its outcome is unknown."""
    LINKED = "linked"


class PaymentState(StrEnum):
    """The booking of a pushed document's payments in the target."""

    PENDING = "pending"
    """A booking was sent; the outcome is unknown (the target books only what is missing)."""
    RETRY = "retry"
    """Not booked yet (the document is a draft there, or the answer was lost)."""
    BOOKED = "booked"
    REFUSED = "refused"
    """The target refused it for a reason a person must fix (an account to map): stored
    as ``refused: <why>``, shown by ``status``, booked by ``retry`` once fixed."""


class WritebackState(StrEnum):
    """Writing the target's customer number back to the source customer."""

    PENDING = "pending"
    DONE = "done"
    # Anything else stored in the ledger is "error: <why>", retried on the next run.


class OutcomeState(StrEnum):
    """What one run did with one document (reported, never stored as its state)."""

    PUSHED = "pushed"
    SKIPPED = "skipped"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    CHANGED = "changed"
    """Changed in the source after transfer; a person decides (never overwritten)."""
    CANCELLED = "cancelled"
    """Cancelled in the source after transfer: still booked in the target; a person must act."""
    REVERSED = "reversed"
    """Cancelled in the source after transfer and reversed in the target by a credit note
    referencing it (on_cancel = "reverse", or the source's own cancellation document)."""
    PLANNED = "planned"
    """--dry-run: what would happen."""
    PAYMENT_BOOKED = "payment_booked"
    PAYMENT_PENDING = "payment_pending"


def payment_refusal(state: str, payment_state: str | None) -> str | None:
    """"payment not booked: <why>" for a pushed document whose payment the target refused
    (``payment_state`` ``refused: <why>``, as the ledger stores it); else None."""
    if state != DocumentState.PUSHED or not payment_state or not payment_state.startswith(PaymentState.REFUSED):
        return None
    return "payment not booked: " + payment_state.partition(": ")[2]


__all__ = ["DocumentState", "LinkState", "OutcomeState", "PaymentState", "WritebackState", "payment_refusal"]
