"""sevDesk's raw document statuses in ledgerlink's words.

``SevdeskTarget.statuses`` reports ``"voucher:<status>"`` or ``"invoice:<status>"``
because the same number means different things: 100 is an open voucher but a draft
invoice. A bare number is read as a voucher status (the plugin's default document type).
"""

from __future__ import annotations

from ledgerlink import MappedStatus, Status, StatusMapper

VOUCHER = {
    "50": Status.DRAFT,
    "100": Status.OPEN,
    "150": Status.OPEN,  # "transferred" (to the tax advisor); still unpaid
    "750": Status.PARTIALLY_PAID,
    "1000": Status.PAID,
}
INVOICE = {
    "50": Status.DRAFT,  # a deactivated recurring invoice
    "100": Status.DRAFT,
    "200": Status.OPEN,
    "750": Status.PARTIALLY_PAID,
    "1000": Status.PAID,
}
WORDS = {
    "draft": Status.DRAFT,
    "open": Status.OPEN,
    "due": Status.DUE,
    "partially paid": Status.PARTIALLY_PAID,
    "partially_paid": Status.PARTIALLY_PAID,
    "paid": Status.PAID,
    "cancelled": Status.CANCELLED,
    "canceled": Status.CANCELLED,
}
WORDING = {
    Status.DRAFT: "Entwurf",
    Status.OPEN: "Offen",
    Status.DUE: "Fällig",
    Status.OVERDUE: "Überfällig",
    Status.PARTIALLY_PAID: "Teilbezahlt",
    Status.PAID: "Bezahlt",
    Status.CANCELLED: "Storniert",
}

READ_BACK = {word.lower(): status for status, word in WORDING.items()}
"""The mapper's own wording read back (a source that shows it, asked again)."""


class SevdeskStatusMapper(StatusMapper):
    name = "sevdesk"

    def to_canonical(self, raw: str) -> MappedStatus:
        text = str(raw).strip().lower()
        kind, _, value = text.rpartition(":")
        table = INVOICE if kind == "invoice" else VOUCHER
        if kind not in ("", "voucher", "invoice"):
            return MappedStatus(Status.UNKNOWN, raw)
        status = table.get(value) or WORDS.get(value) or READ_BACK.get(value)
        return MappedStatus(status or Status.UNKNOWN, raw)

    def from_canonical(self, status: MappedStatus) -> str:
        if status.status == Status.UNKNOWN:
            return status.raw
        return WORDING.get(status.status, status.label())


