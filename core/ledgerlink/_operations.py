"""Operations beside the document run: the matching pass, manual links, status sync.

These sit after the engine in the pipeline: matching runs before the first
invoice goes over; status sync runs after, and carries what happens in the
target (paid, reminder n) back into the ledger and, where the source can show it,
into the source.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from ._config import PipelineConfig
from ._connectors import MappedStatus, Status
from ._errors import ConfigError, LedgerlinkError, NotSupported
from ._http import redact
from ._ledger import AuditRow, CustomerLink
from ._records import TargetRef
from ._runner import PipelineRunner, Runtime
from ._states import DocumentState, LinkState


@dataclass
class MatchRow:
    source_id: str
    name: str
    outcome: str  # linked, already_linked, ambiguous, no_match
    matcher: str | None = None
    contact: str | None = None
    candidates: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def retry_total(runtime: Runtime, pipeline: PipelineConfig, *, quarantined: bool = False) -> int:
    """How many documents `retry` takes up for the pipeline, as the ledger knows them
    before it starts: the pending ones (settled first), the failed ones and, with
    ``quarantined``, the quarantined ones. The total of its progress bar (and so its ETA)."""
    counts = runtime.ledger.counts(pipeline.name)
    states = [DocumentState.PENDING, DocumentState.FAILED] + ([DocumentState.QUARANTINED] if quarantined else [])
    refused = runtime.ledger.payments_refused(pipeline.name) if quarantined else 0
    return sum(counts.get(str(state), 0) for state in states) + refused


def match_customers(runtime: Runtime, pipeline: PipelineConfig, *, dry_run: bool = False) -> list[MatchRow]:
    """Compare every source customer with every target contact; store unique matches."""
    runner = PipelineRunner(runtime, pipeline)
    hold: AbstractContextManager[None] = (
        nullcontext() if dry_run else runtime.locks.hold(pipeline.name, "match-customers", wait=runtime.lock_wait))
    hold.__enter__()
    try:
        _respect_backoff(runner)
        index = runtime.contact_index(pipeline.target, pipeline.matchers, runner.target)
        rows: list[MatchRow] = []
        for customer in runner.source.customers():
            runtime.reporter.tick(pipeline.name)
            link = runtime.ledger.link(pipeline.target, pipeline.links_scope, customer.source_id)
            if link is not None and link.state == LinkState.LINKED:
                rows.append(MatchRow(customer.source_id, customer.display_name, "already_linked",
                                     link.matched_by, link.target_customer_number or link.target_contact_id))
                continue
            match = index.match(customer)
            if match is None:
                rows.append(MatchRow(customer.source_id, customer.display_name, "no_match"))
                continue
            if match.ambiguous:
                rows.append(MatchRow(customer.source_id, customer.display_name, "ambiguous", match.matcher,
                                     candidates=[f"{c.customer_number or c.target_id} {c.display_name}"
                                                 for c in match.candidates]))
                continue
            contact = match.candidates[0]
            rows.append(MatchRow(customer.source_id, customer.display_name, "linked", match.matcher,
                                 contact.customer_number or contact.target_id))
            if not dry_run:
                new = runtime.ledger.mark_linked(link, pipeline.target, pipeline.links_scope, customer.source_id,
                                                 contact, match.matcher)
                runner.contacts.write_back(new, customer)
        return rows
    finally:
        hold.__exit__(None, None, None)
        runner.close()


def link_customer(runtime: Runtime, pipeline: PipelineConfig, source_id: str, target_id: str) -> CustomerLink:
    """A person's decision: link a source customer to a target contact (never overwritten)."""
    runner = PipelineRunner(runtime, pipeline)
    try:
        contact = next((c for c in runner.target.contacts() if c.target_id == target_id or c.customer_number == target_id), None)
    finally:
        runner.close()
    if contact is None:
        raise ConfigError(f"the target {pipeline.target!r} has no contact with id or customer number {target_id!r}")
    link = runtime.ledger.link(pipeline.target, pipeline.links_scope, source_id)
    return runtime.ledger.mark_linked(link, pipeline.target, pipeline.links_scope, source_id, contact, "manual",
                                      manual=True)


def unlink_customer(runtime: Runtime, pipeline: PipelineConfig, source_id: str) -> bool:
    link = runtime.ledger.link(pipeline.target, pipeline.links_scope, source_id)
    if link is None:
        return False
    runtime.ledger.delete_link(link)
    return True


class VendorBackedOff(LedgerlinkError):
    """A vendor of the pipeline asked (Retry-After, remembered in the ledger) to wait longer
    than a command waits: the command leaves the pipeline alone until then (exit 75)."""


def _respect_backoff(runner: PipelineRunner) -> None:
    """Wait out a short remembered back-off of the pipeline's vendors; raise
    ``VendorBackedOff`` for a long one, before anything asks the vendor."""
    message = runner.vendor_wait()
    if message is not None:
        raise VendorBackedOff(message)


class StatusSyncStopped(LedgerlinkError):
    """The target's answers broke off; ``changes`` were recorded before that."""

    def __init__(self, message: str, changes: list[StatusChange]) -> None:
        super().__init__(message)
        self.changes = changes


@dataclass
class StatusChange:
    pipeline: str
    source_ref: str
    old: str | None
    new: str
    raw: str
    written_back: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def sync_status(runtime: Runtime, pipeline: PipelineConfig, *, command: str = "sync-status") -> list[StatusChange]:
    """Ask the target for the status of every pushed document; record and report changes.
    ``command``: the name the pipeline's lock gives its holder (``watch`` calls it too)."""
    runner = PipelineRunner(runtime, pipeline)
    try:
        with runtime.locks.hold(pipeline.name, command, wait=runtime.lock_wait):
            _respect_backoff(runner)
            return _sync_status(runtime, pipeline, runner)
    finally:
        runner.close()


def _sync_status(runtime: Runtime, pipeline: PipelineConfig, runner: PipelineRunner) -> list[StatusChange]:
    target_mapper_name = runner.target.status_mapper or "identity"
    mapper = runtime.plugins.registry.get("status_mapper", target_mapper_name).factory()
    wording_name = pipeline.status_wording or runner.source.status_mapper or target_mapper_name
    source_mapper = runtime.plugins.registry.get("status_mapper", wording_name).factory()
    rows = {row.target_id: row for row in runtime.ledger.documents(pipeline.name, [DocumentState.PUSHED]) if row.target_id}
    refs = [TargetRef(target_id=tid, number=row.target_number) for tid, row in rows.items()]
    changes: list[StatusChange] = []
    if not refs:
        return changes
    try:
        for ref, raw in runner.target.statuses(refs):
            change = _record_status(runtime, runner, pipeline, rows, mapper, source_mapper, ref, raw)
            if change is not None:
                changes.append(change)
    except NotSupported:
        runtime.reporter.message(f"{pipeline.name}: the target {pipeline.target!r} reports no statuses")
    except LedgerlinkError as exc:
        # What was read so far is recorded; the rest comes with the next sync.
        raise StatusSyncStopped(
            f"{pipeline.name}: status sync stopped after {len(changes)} changes: {redact(str(exc))}", changes
        ) from None
    return changes


def _record_status(runtime: Runtime, runner: PipelineRunner, pipeline: PipelineConfig, rows: dict[str, Any],
                   mapper: Any, wording_mapper: Any, ref: TargetRef, raw: str) -> StatusChange | None:
    """Record one raw status if it changed; fire the hook; write it back to the source."""
    row = rows.get(ref.target_id)
    if row is None:
        return None
    mapped: MappedStatus = mapper.to_canonical(raw)
    label = mapped.label()
    if mapped.status == Status.UNKNOWN:
        runtime.reporter.message(
            f"{pipeline.name}: {row.source_ref}: unknown status {raw!r} from {pipeline.target}; kept as is")
    if row.status == label and row.status_raw == raw:
        return None
    old = row.status
    history = runtime.ledger.record_status(row, label, raw)
    change = StatusChange(pipeline.name, row.source_ref, old, label, raw)
    runtime.fire("ledgerlink_status_changed", pipeline=pipeline.name, source_ref=row.source_ref,
                 old=old, new=label, raw=raw)
    if runner.source.supports_write_status:
        wording = wording_mapper.from_canonical(mapped)
        try:
            runner.source.write_status(row.source_ref, mapped, wording)
            change.written_back = wording
            runtime.ledger.mark_written_back(history, f"ok: {wording}")
        except (LedgerlinkError, NotSupported) as exc:
            runtime.ledger.mark_written_back(history, f"error: {redact(str(exc))}")
            runtime.ledger.add_audit(AuditRow(pipeline=pipeline.name, target_connection=pipeline.source,
                                              source_ref=row.source_ref, action="write_status",
                                              outcome=f"error: {redact(str(exc))}"))
    return change
