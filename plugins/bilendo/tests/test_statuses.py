"""The bilendo status mapper: every raw status, wording back, unknown statuses kept."""

from __future__ import annotations

import logging

import pytest
from ledgerlink import MappedStatus, Status
from ledgerlink_bilendo import undocumented as U
from ledgerlink_bilendo.statuses import BilendoGermanStatusMapper, BilendoStatusMapper

EN = BilendoStatusMapper()
DE = BilendoGermanStatusMapper()

# (raw as Bilendo may report it, canonical status, reminder level)
RAW = [
    (U.STATUS_DRAFT, Status.DRAFT, None),
    (U.STATUS_OPEN, Status.OPEN, None),
    (U.STATUS_SENT, Status.SENT, None),
    (U.STATUS_DUE, Status.DUE, None),
    (U.STATUS_OVERDUE, Status.OVERDUE, None),
    ("reminder_1", Status.REMINDER, 1),
    ("reminder_2", Status.REMINDER, 2),
    ("reminder_3", Status.REMINDER, 3),
    (U.STATUS_PARTIALLY_PAID, Status.PARTIALLY_PAID, None),
    (U.STATUS_PAID, Status.PAID, None),
    (U.STATUS_CANCELLED, Status.CANCELLED, None),
    (U.STATUS_COLLECTION, Status.COLLECTION, None),
    # the wording Bilendo's and 1CRM's screens show
    ("Entwurf", Status.DRAFT, None),
    ("Versendet", Status.SENT, None),
    ("Fällig", Status.DUE, None),
    ("Überfällig", Status.OVERDUE, None),
    ("Bezahlt", Status.PAID, None),
    ("Teilweise bezahlt", Status.PARTIALLY_PAID, None),
    ("Storniert", Status.CANCELLED, None),
    ("Inkasso", Status.COLLECTION, None),
    ("Reminder 1 versendet", Status.REMINDER, 1),
    ("Reminder 2 sent", Status.REMINDER, 2),
    ("REMINDER-4", Status.REMINDER, 4),
    ("2. Mahnung", Status.REMINDER, 2),
    ("canceled", Status.CANCELLED, None),
    ("  Paid ", Status.PAID, None),
]


@pytest.mark.parametrize(("raw", "status", "level"), RAW)
def test_every_raw_status_maps(raw: str, status: Status, level: int | None) -> None:
    mapped = EN.to_canonical(raw)
    assert mapped == MappedStatus(status, raw, level)
    assert DE.to_canonical(raw) == mapped


@pytest.mark.parametrize("raw", ["archived", "reminder_0", "reminder", "", "deleted", "Klärfall"])
def test_unknown_statuses_are_kept_verbatim_and_reported(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    BilendoStatusMapper._reported.discard(raw)
    with caplog.at_level(logging.WARNING, logger="ledgerlink.bilendo"):
        mapped = EN.to_canonical(raw)
    assert mapped.status == Status.UNKNOWN and mapped.raw == raw and mapped.level is None
    assert EN.from_canonical(mapped) == raw
    assert DE.from_canonical(mapped) == raw
    assert any(repr(raw) in record.getMessage() for record in caplog.records)


WORDING = [
    (MappedStatus(Status.DRAFT, "draft"), "Draft", "Entwurf"),
    (MappedStatus(Status.OPEN, "open"), "Open", "Offen"),
    (MappedStatus(Status.SENT, "sent"), "Sent", "Versendet"),
    (MappedStatus(Status.DUE, "due"), "Due", "Fällig"),
    (MappedStatus(Status.OVERDUE, "overdue"), "Overdue", "Überfällig"),
    (MappedStatus(Status.REMINDER, "reminder_1", 1), "Reminder 1 sent", "Reminder 1 versendet"),
    (MappedStatus(Status.REMINDER, "reminder_3", 3), "Reminder 3 sent", "Reminder 3 versendet"),
    (MappedStatus(Status.PARTIALLY_PAID, "partially_paid"), "Partially paid", "Teilweise bezahlt"),
    (MappedStatus(Status.PAID, "paid"), "Paid", "Bezahlt"),
    (MappedStatus(Status.CANCELLED, "cancelled"), "Cancelled", "Storniert"),
    (MappedStatus(Status.COLLECTION, "collection"), "Collection", "Inkasso"),
]


@pytest.mark.parametrize(("mapped", "english", "german"), WORDING)
def test_wording_back_and_round_trip(mapped: MappedStatus, english: str, german: str) -> None:
    assert EN.from_canonical(mapped) == english
    assert DE.from_canonical(mapped) == german
    # the CRM's own wording maps back to the same canonical status
    assert EN.to_canonical(english).status == mapped.status
    assert EN.to_canonical(german).status == mapped.status
    assert EN.to_canonical(german).level == mapped.level


def test_every_canonical_status_has_wording() -> None:
    for status in Status:
        if status in (Status.UNKNOWN,):
            continue
        level = 1 if status == Status.REMINDER else None
        assert EN.from_canonical(MappedStatus(status, "x", level))
        assert DE.from_canonical(MappedStatus(status, "x", level))


def test_raw_status_keeps_the_reminder_stage_when_bilendo_reports_it_apart() -> None:
    assert U.raw_status({"status": "reminder", "reminder_stage": 2}) == "reminder_2"
    assert U.raw_status({"status": "reminder_2", "reminder_stage": 2}) == "reminder_2"
    assert U.raw_status({"status": "Entwurf"}) == "Entwurf"
    assert U.raw_status({}) == ""


def test_mappers_are_registered_through_the_hook() -> None:
    from ledgerlink.testing import PluginManager

    registry = PluginManager().registry
    assert registry.get("status_mapper", "bilendo").factory is BilendoStatusMapper
    assert registry.get("status_mapper", "bilendo_de").factory is BilendoGermanStatusMapper
    target = registry.get("target", "bilendo").factory
    assert target.status_mapper == "bilendo"
    assert target.sandbox == "ledgerlink_bilendo.sandbox:BilendoSandbox"
