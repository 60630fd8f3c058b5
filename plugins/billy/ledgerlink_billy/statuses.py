"""Billy's invoice states in ledgerlink's words (status mapper ``billy``).

Billy has no status field that says it all: :func:`raw_status` words an invoice in
one raw word from its ``state``, ``isPaid``, ``balance``, ``sentState`` and
``dueDate``; :class:`BillyStatusMapper` maps those words to canonical statuses and back.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any, ClassVar

from ledgerlink import MappedStatus, Status, StatusMapper

from .mapping import dec


def raw_status(invoice: dict[str, Any] | None, today: _dt.date) -> str:
    """``draft``, ``approved``, ``sent``, ``overdue``, ``partially_paid``, ``paid``,
    ``credited``, ``voided`` or ``deleted`` from an invoice's ``state``, ``isPaid``,
    ``balance``, ``sentState``, ``dueDate`` and its balance modifiers (``credited``: a
    credit note, not a payment, settled its balance)."""
    if invoice is None:
        return "deleted"
    state = str(invoice.get("state") or "")
    if state != "approved":
        return state or "unknown"
    credited = [m for m in invoice.get("balanceModifiers") or []
                if isinstance(m, dict) and not m.get("isVoided")
                and str(m.get("modifierReference") or "").startswith("invoice:")]
    if credited and invoice.get("isPaid") and invoice.get("type", "invoice") == "invoice":
        return "credited"  # settled by a credit note: cancelled, not paid
    if invoice.get("isPaid"):
        return "paid"
    gross = dec(invoice.get("amount")) + dec(invoice.get("tax"))
    balance = dec(invoice.get("balance"))
    if Decimal(0) < balance < gross:
        return "partially_paid"
    due = invoice.get("dueDate")
    try:
        if due and _dt.date.fromisoformat(str(due)[:10]) < today:
            return "overdue"
    except ValueError:
        pass
    if invoice.get("sentState") in ("sent", "opened", "viewed", "printed"):
        return "sent"
    return "approved"


class BillyStatusMapper(StatusMapper):
    """Billy's invoice states (as :func:`raw_status` words them) and back."""

    name = "billy"
    TO: ClassVar[dict[str, Status]] = {
        "draft": Status.DRAFT,
        "approved": Status.OPEN,
        "sent": Status.SENT,
        "overdue": Status.OVERDUE,
        "partially_paid": Status.PARTIALLY_PAID,
        "paid": Status.PAID,
        "credited": Status.CANCELLED,
        "voided": Status.CANCELLED,
        "deleted": Status.CANCELLED,
    }
    FROM: ClassVar[dict[Status, str]] = {
        Status.DRAFT: "draft",
        Status.OPEN: "approved",
        Status.DUE: "approved",
        Status.SENT: "sent",
        Status.OVERDUE: "overdue",
        Status.REMINDER: "overdue",
        Status.PARTIALLY_PAID: "partially_paid",
        Status.PAID: "paid",
        Status.CANCELLED: "voided",
    }

    def to_canonical(self, raw: str) -> MappedStatus:
        status = self.TO.get(raw.strip().lower())
        return MappedStatus(status or Status.UNKNOWN, raw)

    def from_canonical(self, status: MappedStatus) -> str:
        return self.FROM.get(status.status, status.raw)


__all__ = ["BillyStatusMapper", "raw_status"]
