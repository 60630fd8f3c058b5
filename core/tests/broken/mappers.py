"""Status mappers: a correct one and broken ones."""

from __future__ import annotations

import re
from typing import ClassVar

from ledgerlink import MappedStatus, Status, StatusMapper

RAW = ("Entwurf", "Offen", "Überfällig", "Mahnung 1", "Mahnung 2", "Teilbezahlt", "Bezahlt", "Storniert")


class CatalogueMapper(StatusMapper):
    """The correct mapper: German words, reminders with their level."""

    name: ClassVar[str] = "catalogue-mapper"
    WORDS: ClassVar[dict[str, Status]] = {
        "entwurf": Status.DRAFT, "offen": Status.OPEN, "überfällig": Status.OVERDUE,
        "teilbezahlt": Status.PARTIALLY_PAID, "bezahlt": Status.PAID, "storniert": Status.CANCELLED,
    }

    def to_canonical(self, raw: str) -> MappedStatus:
        text = raw.strip().lower()
        match = re.fullmatch(r"mahnung (\d+)", text)
        if match:
            return MappedStatus(Status.REMINDER, raw, int(match.group(1)))
        return MappedStatus(self.WORDS.get(text, Status.UNKNOWN), raw)

    def from_canonical(self, status: MappedStatus) -> str:
        if status.status == Status.REMINDER:
            return f"Mahnung {status.level or 1}"
        for word, canonical in self.WORDS.items():
            if canonical == status.status:
                return word.capitalize()
        return status.raw


class GapMapper(CatalogueMapper):
    """Forgets one raw status: "Storniert" comes back unknown."""

    name: ClassVar[str] = "catalogue-gap-mapper"
    WORDS: ClassVar[dict[str, Status]] = {k: v for k, v in CatalogueMapper.WORDS.items() if k != "storniert"}


class OneWayMapper(CatalogueMapper):
    """Words statuses in English, which it cannot read back."""

    name: ClassVar[str] = "catalogue-one-way-mapper"

    def from_canonical(self, status: MappedStatus) -> str:
        return status.label().replace("_", " ").capitalize()


MAPPERS: dict[str, type[CatalogueMapper]] = {m.name: m for m in (CatalogueMapper, GapMapper, OneWayMapper)}
