"""The ``bilendo`` status mapper: Bilendo's raw invoice statuses <-> ledgerlink.Status.

``to_canonical`` understands the API values assumed in :mod:`.undocumented`
(``draft``, ``sent``, ``reminder_2`` ...) and, because the real values are not
published, also the wording Bilendo's and 1CRM's screens show in German and
English ("Entwurf", "Versendet", "Reminder 1 versendet", "Reminder 1 sent").
A value it does not know comes back as ``Status.UNKNOWN`` with the raw text kept
verbatim, and is logged once as a warning (never dropped).

``from_canonical`` gives the CRM's own wording: English for ``bilendo``
("Reminder 1 sent"), German for ``bilendo_de`` ("Reminder 1 versendet", as the
1CRM help page shows it).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import ClassVar

from ledgerlink import MappedStatus, Status, StatusMapper

from . import undocumented as U

log = logging.getLogger("ledgerlink.bilendo")

# Raw spellings (lower-cased, spaces/hyphens as "_") -> canonical status.
_ALIASES: dict[str, Status] = {
    U.STATUS_DRAFT: Status.DRAFT,
    "entwurf": Status.DRAFT,
    "invoice_upload": Status.DRAFT,
    "rechnungsupload": Status.DRAFT,
    U.STATUS_OPEN: Status.OPEN,
    "offen": Status.OPEN,
    U.STATUS_SENT: Status.SENT,
    "versendet": Status.SENT,
    "versandt": Status.SENT,
    U.STATUS_DUE: Status.DUE,
    "faellig": Status.DUE,
    U.STATUS_OVERDUE: Status.OVERDUE,
    "ueberfaellig": Status.OVERDUE,
    "past_due": Status.OVERDUE,
    U.STATUS_PARTIALLY_PAID: Status.PARTIALLY_PAID,
    "partly_paid": Status.PARTIALLY_PAID,
    "teilweise_bezahlt": Status.PARTIALLY_PAID,
    "teilbezahlt": Status.PARTIALLY_PAID,
    U.STATUS_PAID: Status.PAID,
    "bezahlt": Status.PAID,
    U.STATUS_CANCELLED: Status.CANCELLED,
    "canceled": Status.CANCELLED,
    "storniert": Status.CANCELLED,
    U.STATUS_COLLECTION: Status.COLLECTION,
    "inkasso": Status.COLLECTION,
    "debt_collection": Status.COLLECTION,
}

_REMINDER_WORDS = re.compile(
    r"^(?:reminder|mahnung|dunning|zahlungserinnerung)_?(\d+)(?:_?(?:sent|versendet|versandt))?$"
)
_LEVEL_FIRST = re.compile(r"^(\d+)\.?_?(?:reminder|mahnung)(?:_?(?:sent|versendet|versandt))?$")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})

_WORDING: dict[str, dict[Status, str]] = {
    "en": {
        Status.DRAFT: "Draft",
        Status.OPEN: "Open",
        Status.SENT: "Sent",
        Status.DUE: "Due",
        Status.OVERDUE: "Overdue",
        Status.PARTIALLY_PAID: "Partially paid",
        Status.PAID: "Paid",
        Status.CANCELLED: "Cancelled",
        Status.COLLECTION: "Collection",
    },
    "de": {
        Status.DRAFT: "Entwurf",
        Status.OPEN: "Offen",
        Status.SENT: "Versendet",
        Status.DUE: "Fällig",
        Status.OVERDUE: "Überfällig",
        Status.PARTIALLY_PAID: "Teilweise bezahlt",
        Status.PAID: "Bezahlt",
        Status.CANCELLED: "Storniert",
        Status.COLLECTION: "Inkasso",
    },
}
_REMINDER_WORDING = {"en": "Reminder {n} sent", "de": "Reminder {n} versendet"}


def _normalise(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip().lower().translate(_UMLAUTS)
    return re.sub(r"[\s\-]+", "_", text)


class BilendoStatusMapper(StatusMapper):
    """Bilendo's raw statuses to canonical statuses and back (English wording)."""

    name: ClassVar[str] = "bilendo"
    language: ClassVar[str] = "en"
    _reported: ClassVar[set[str]] = set()

    def to_canonical(self, raw: str) -> MappedStatus:
        text = _normalise(raw or "")
        status = _ALIASES.get(text)
        if status is not None:
            return MappedStatus(status, raw)
        match = _REMINDER_WORDS.match(text) or _LEVEL_FIRST.match(text)
        if match:
            level = int(match.group(1))
            if level >= 1:
                return MappedStatus(Status.REMINDER, raw, level)
        if raw not in self._reported:
            self._reported.add(raw)
            log.warning("Bilendo reported an invoice status ledgerlink does not know: %r (kept as is)", raw)
        return MappedStatus(Status.UNKNOWN, raw)

    def from_canonical(self, status: MappedStatus) -> str:
        if status.status == Status.UNKNOWN:
            return status.raw
        if status.status == Status.REMINDER:
            return _REMINDER_WORDING[self.language].format(n=status.level or 1)
        return _WORDING[self.language][status.status]


class BilendoGermanStatusMapper(BilendoStatusMapper):
    """The same mapping, with the German wording 1CRM shows ("Reminder 1 versendet")."""

    name: ClassVar[str] = "bilendo_de"
    language: ClassVar[str] = "de"
