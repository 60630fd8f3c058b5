"""The engine: fetch, filter, match customer, plan, push, record.

The crash-safety protocol, for every write to a target:

1. commit the intent (``pending`` document, ``pending`` customer link, ``pending``
   payment) with the key it will be found by;
2. call the target;
3. commit the outcome (``pushed`` with the target ref) with its audit entry and the
   cursor, in one transaction.

At start-up an unresolved ``pending`` is settled with the target's
``find_document`` / ``find_contact`` before anything is pushed again. A write
whose answer is lost (``OutcomeUnknown``) is settled the same way, at once. The
cursor is stored in the same commit as the document it passed, so it never
passes a document that is not settled. One bad document never stops the others.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from ._config import Config, PipelineConfig, Rule
from ._connectors import BrokenDocument, ConnectorContext, Plan, PlannedLine, Source, Target
from ._errors import (
    ConfigError,
    ConnectionError_,
    DocumentError,
    LedgerlinkError,
    NotSupported,
    OutcomeUnknown,
    QuarantineError,
    TransientError,
)
from ._http import make_http_client, redact
from ._ledger import AuditRow, CustomerLink, DocumentRow, Ledger, fresh, payload_hash, utcnow
from ._matching import ContactIndex
from ._plugins import PluginManager, get_plugin_manager
from ._records import Contact, Customer, Document, TargetRef

log = logging.getLogger("ledgerlink._runner")

MAX_SETTLE_ROUNDS = 5


class SimulatedCrash(BaseException):
    """Raised at a checkpoint named in ``Runtime.crash_points`` (tests only).

    A BaseException, so nothing in the engine catches it: it behaves like the
    process dying at that point.
    """


@dataclass(slots=True)
class Outcome:
    """What happened to one document in this run."""

    pipeline: str
    source_ref: str
    number: str | None
    state: str  # pushed, skipped, failed, quarantined, unchanged, changed, planned, settled
    reason: str | None = None
    target_ref: str | None = None
    plan: dict[str, Any] | None = None
    gross: Decimal | None = None
    currency: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "source_ref": self.source_ref,
            "number": self.number,
            "state": self.state,
            "reason": self.reason,
            "target_ref": self.target_ref,
            "gross": None if self.gross is None else str(self.gross),
            "currency": self.currency,
            **({"plan": self.plan} if self.plan is not None else {}),
        }


@dataclass
class RunResult:
    pipeline: str
    outcomes: list[Outcome] = field(default_factory=list)
    contacts_created: int = 0
    error: str | None = None
    keep_outcomes: bool = True
    """False: ``add`` only counts (``outcomes`` stays empty), so a long run's memory
    does not grow with its documents; for callers that report each outcome as it
    comes (``Reporter.document``) and need only the counts at the end."""
    _counts: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, outcome: Outcome) -> None:
        if self.keep_outcomes:
            self.outcomes.append(outcome)
        else:
            self._counts[outcome.state] = self._counts.get(outcome.state, 0) + 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict(self._counts)
        for outcome in self.outcomes:
            out[outcome.state] = out.get(outcome.state, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        counts = self.counts()
        return self.error is None and not (counts.get("failed") or counts.get("quarantined"))


class Reporter:
    """Receives progress from the engine. The CLI prints; tests collect."""

    def document(self, outcome: Outcome) -> None:
        pass

    def message(self, text: str) -> None:
        log.info(text)

    def wait(self, text: str) -> None:
        self.message(text)


class Runtime:
    """Config, ledger and plugins for one command; builds connectors."""

    def __init__(
        self,
        config: Config,
        *,
        ledger: Ledger | None = None,
        plugins: PluginManager | None = None,
        transports: dict[str, Any] | None = None,
        reporter: Reporter | None = None,
        crash_points: Iterable[str] = (),
        http_options: dict[str, Any] | None = None,
        keep_outcomes: bool = True,
    ) -> None:
        self.config = config
        self.keep_outcomes = keep_outcomes
        """False: results count outcomes instead of keeping them (see RunResult)."""
        self.plugins = plugins or get_plugin_manager()
        self.ledger = ledger or Ledger(config.ledger_url)
        self.transports = transports or {}
        self.reporter = reporter or Reporter()
        env_crash = os.environ.get("LEDGERLINK_CRASH_AT", "")
        self.crash_points = set(crash_points) | {p for p in env_crash.split(",") if p}
        self.http_options = dict(http_options or {})
        env_timeout = os.environ.get("LEDGERLINK_HTTP_TIMEOUT", "").strip()
        if env_timeout and "timeout" not in self.http_options:
            # The default HTTP timeout (s) of connectors that set none themselves (tests
            # use it to make "slow answer" faults quick); a connection's own setting wins.
            try:
                timeout = float(env_timeout)
            except ValueError:
                timeout = 0.0
            if not timeout > 0:
                raise ConfigError(f"LEDGERLINK_HTTP_TIMEOUT must be a positive number of seconds, not {env_timeout!r}")
            self.http_options["timeout"] = timeout
        self._indexes: dict[tuple[str, tuple[str, ...]], ContactIndex] = {}
        self._index_lock = threading.Lock()
        self._target_locks: dict[str, threading.Lock] = {}

    def checkpoint(self, name: str) -> None:
        if name in self.crash_points:
            raise SimulatedCrash(name)

    def context(self, connection: str) -> ConnectorContext:
        factory = partial(make_http_client, on_wait=self.reporter.wait, **self.http_options)
        return ConnectorContext(
            connection=connection,
            http_factory=factory,
            logger=logging.getLogger(f"ledgerlink.{connection}"),
            transport=self.transports.get(connection),
        )

    def connector(self, name: str) -> Any:
        conn = self.config.connections[name]
        return conn.factory(conn.settings, self.context(name))

    def source(self, name: str) -> Source:
        return self.connector(name)  # type: ignore[no-any-return]

    def target(self, name: str) -> Target:
        return self.connector(name)  # type: ignore[no-any-return]

    def target_lock(self, target_connection: str) -> threading.Lock:
        with self._index_lock:
            return self._target_locks.setdefault(target_connection, threading.Lock())

    def contact_index(self, target_connection: str, matchers: list[str], target: Target) -> ContactIndex:
        key = (target_connection, tuple(matchers))
        with self._index_lock:
            index = self._indexes.get(key)
        if index is None:
            instances = [self.plugins.registry.get("matcher", m).factory() for m in matchers]
            index = ContactIndex(instances, target.contacts())
            with self._index_lock:
                self._indexes[key] = index
        return index

    def add_contact(self, target_connection: str, contact: Contact) -> None:
        with self._index_lock:
            for (conn, _), index in self._indexes.items():
                if conn == target_connection:
                    index.add(contact)

    def fire(self, hook: str, **kwargs: Any) -> None:
        self.plugins.fire(hook, **kwargs)


# -- planning -----------------------------------------------------------------
def rule_matches(rule: Rule, document: Document, line_index: int, treatment: str) -> bool:
    line = document.lines[line_index]
    for key, wanted in rule.when.conditions().items():
        if key == "line":
            have: Any = line.kind
        elif key == "region":
            have = document.tax_region
        elif key == "treatment":
            have = treatment
        elif key == "booking_code":
            have = line.booking_code
        elif key == "tax_rate":
            have = line.tax_rate
            if have is not None and Decimal(have) == Decimal(wanted):
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
    order = {
        "invoice": (document.invoice_date, document.order_date),
        "payment": (document.payment_date, document.invoice_date, document.order_date),
        "order": (document.order_date, document.invoice_date),
    }[pipeline.document_date]
    for candidate in order:
        if candidate is not None:
            return candidate
    raise QuarantineError("the document has no invoice, order or payment date")


def plan_lines(pipeline: PipelineConfig, document: Document, *, target_books_lines: bool = False) -> list[PlannedLine]:
    planned: list[PlannedLine] = []
    require = pipeline.require_rules
    if require is None:
        require = bool(pipeline.rules) and not target_books_lines
    unmapped: list[str] = []
    for index, line in enumerate(document.lines):
        treatment = str(document.tax_treatment(line, oss=pipeline.oss, small_business=pipeline.small_business))
        rule = next((r for r in pipeline.rules if rule_matches(r, document, index, treatment)), None)
        if rule is None:
            if require:
                what = (
                    f"booking code {line.booking_code!r}" if line.booking_code else
                    f"{line.kind}, {document.tax_region}, {line.tax_rate}%"
                )
                unmapped.append(f"line {index + 1} ({line.description[:40]!r}: {what})")
            planned.append(PlannedLine(line=line, treatment=treatment, cost_centre=pipeline.cost_centre))
            continue
        planned.append(
            PlannedLine(
                line=line,
                account=rule.account,
                tax_rule=rule.tax_rule,
                treatment=treatment,
                cost_centre=rule.cost_centre or pipeline.cost_centre,
            )
        )
    if unmapped:
        raise QuarantineError(f"no rule of pipeline {pipeline.name!r} books " + "; ".join(unmapped))
    return planned


def fingerprint(document: Document) -> dict[str, Any]:
    """What counts as the document's content for 'changed after transfer'."""
    data = document.model_dump(mode="json", exclude={"payments", "source_status", "extra", "payment_date",
                                                      "cursor", "skip_reason"})
    data["total_gross"] = str(document.total_gross)
    return data


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    changes = []
    old_total = old.get("total_gross")
    new_total = new.get("total_gross")
    if old_total != new_total:
        changes.append(f"total {old_total} -> {new_total}")
    for key in sorted(set(old) | set(new)):
        if key in ("lines", "customer", "cancelled", "total_gross"):
            continue
        if old.get(key) != new.get(key):
            changes.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    if old.get("lines") != new.get("lines") and old_total == new_total:
        changes.append("lines changed")
    if old.get("customer") != new.get("customer"):
        changes.append("customer changed")
    if new.get("cancelled") and not old.get("cancelled"):
        changes.append("cancelled in the source")
    return "; ".join(changes) or "content changed"


# -- the pipeline runner ------------------------------------------------------------
class PipelineRunner:
    def __init__(self, runtime: Runtime, pipeline: PipelineConfig) -> None:
        self.rt = runtime
        self.pipeline = pipeline
        self.ledger = runtime.ledger
        self.source: Source = runtime.source(pipeline.source)
        self.target: Target = runtime.target(pipeline.target)
        self._prepared = False
        self._retrying = False
        self._options = pipeline.options()  # the same for every document of the run

    def close(self) -> None:
        for connector in (self.source, self.target):
            try:
                connector.close()
            except Exception:  # closing must not hide the run's result
                pass

    # -- entry points ---------------------------------------------------------------
    def run(
        self,
        *,
        dry_run: bool = False,
        command: str = "run",
        documents: Iterable[Document | BrokenDocument] | None = None,
        use_cursor: bool = True,
        retry_failed: bool | str = "transient",
        retry_quarantined: bool = False,
        sync_members: bool = True,
    ) -> RunResult:
        """Run the pipeline. ``retry_failed``: "transient" (the default for `run`) retries
        failures that may have gone away (network, interruption); True every failed
        document; False none."""
        """``sync_members=False`` leaves the member sync out (a webhook for one invoice
        must not list every member: sources pace that listing, e.g. Cobot 6/min)."""
        result = RunResult(self.pipeline.name, keep_outcomes=self.rt.keep_outcomes)
        run_row = None if dry_run else self.ledger.start_run(self.pipeline.name, command)
        try:
            if not dry_run:
                self.settle_pending(result)
                self.settle_links()
                self.retry_payments()
                self.retry_writebacks()
                if retry_failed or retry_quarantined:
                    self.retry_stored(result, quarantined=retry_quarantined,
                                      transient_only=retry_failed == "transient")
                if self.pipeline.sync_members and sync_members:
                    self.sync_members(result)
            if documents is None:
                cursor = self.ledger.cursor(self.pipeline.name) if use_cursor else None
                documents = self.source.documents(cursor)
            seen: set[str] = set()
            for item in documents:
                ref = item.source_ref
                if ref in seen:
                    continue
                seen.add(ref)
                outcome = self.process(item, dry_run=dry_run, update_cursor=use_cursor)
                if outcome is not None:
                    result.add(outcome)
                    self.rt.reporter.document(outcome)
        except ConnectionError_ as exc:
            result.error = str(exc)
        except ConfigError as exc:
            result.error = str(exc)
        except TransientError as exc:
            # The message names the vendor and the request (source or target); the
            # ledger keeps every unsettled write pending for the next run.
            result.error = f"{exc} (the next run continues from here)"
        finally:
            if run_row is not None:
                outcome_text = "error: " + result.error if result.error else ("ok" if result.ok else "partial")
                self.ledger.finish_run(run_row, result.counts(), outcome_text)
        return result

    # -- settling what a crash left -----------------------------------------------------
    def settle_pending(self, result: RunResult) -> None:
        for row in self.ledger.documents(self.pipeline.name, ["pending"]):
            ref = self.target.find_document(row.source_ref, row.number)
            if ref is not None:
                self._mark_pushed(row, ref, note="settled after an interruption: found in the target")
                self._settle_payment(row)
                result.add(
                    Outcome(self.pipeline.name, row.source_ref, row.number, "pushed",
                            "was interrupted; found in the target", ref.target_id)
                )
            else:
                row.state = "failed"
                row.reason = "interrupted before it reached the target; it will be pushed again"
                row.retryable = True
                row.attempts = row.attempts or 1
                self.ledger.save_document(row)

    def settle_links(self) -> None:
        for link in self.ledger.links(self.pipeline.target, state="pending"):
            if link.source_connection != self.pipeline.source or not link.key:
                continue
            contact = self.target.find_contact(link.key)
            if contact is None:
                self.ledger.delete_link(link)
            else:
                self._complete_link(link, contact, "created (settled after an interruption)")

    def retry_payments(self) -> None:
        """Book the payments of pushed documents whose booking was cut short (a crash:
        "pending") or failed on the way ("retry"); targets book only what is missing.
        The source may never list these documents again (the cursor has passed them)."""
        if self.pipeline.payment_reconciliation != "source":
            return
        from sqlmodel import select

        with self.ledger.session() as session:
            rows = list(session.exec(select(DocumentRow).where(
                DocumentRow.pipeline == self.pipeline.name, DocumentRow.state == "pushed",
                DocumentRow.payment_state.in_(["pending", "retry"]),  # type: ignore[union-attr]
            )))
        for row in rows:
            self._settle_payment(row)

    def retry_writebacks(self) -> None:
        if not getattr(self.source, "supports_write_customer_number", False):
            return
        for link in self.ledger.links(self.pipeline.target):
            if (link.source_connection == self.pipeline.source and link.state == "linked"
                    and link.writeback and link.writeback != "done" and link.target_customer_number):
                self._write_back(link, Customer(source_id=link.source_customer_id))

    def retry_stored(self, result: RunResult, *, quarantined: bool, transient_only: bool = False) -> None:
        """Try failed (and quarantined) documents again: fetched fresh from the source
        where it can, else from the copy the ledger kept. ``transient_only``: only failures
        that may have gone away by themselves (what every `run` does)."""
        states = ["failed"] + (["quarantined"] if quarantined else [])
        for row in self.ledger.documents(self.pipeline.name, states):
            if transient_only and not row.retryable:
                continue
            item: Document | BrokenDocument | None = None
            try:
                item = self.source.document(row.source_ref)
            except NotSupported:
                item = None
            except QuarantineError as exc:
                item = BrokenDocument(row.source_ref, str(exc), quarantine=True, number=row.number)
            except DocumentError as exc:
                item = BrokenDocument(row.source_ref, str(exc), number=row.number)
            except LedgerlinkError:
                item = None  # the source cannot be asked now; use the stored copy
            if item is None and row.payload:
                try:
                    item = Document.model_validate_json(row.payload)
                except ValueError:
                    item = None
            if item is None:
                continue
            self._retrying = True
            try:
                outcome = self.process(item, dry_run=False, update_cursor=False)
            finally:
                self._retrying = False
            if outcome is not None:
                result.add(outcome)
                self.rt.reporter.document(outcome)

    # -- one document ------------------------------------------------------------------
    def process(self, item: Document | BrokenDocument, *, dry_run: bool, update_cursor: bool = True) -> Outcome | None:
        cursor_value = item.cursor
        cursor = (self.pipeline.name, str(cursor_value)) if (update_cursor and cursor_value) else None
        row = self.ledger.document(self.pipeline.name, item.source_ref)
        if isinstance(item, BrokenDocument):
            if row is not None and row.state == "pushed":
                return None
            state = "quarantined" if item.quarantine else "failed"
            return self._record(row, item.source_ref, item.number, state, item.reason, None, cursor, dry_run)
        document = item
        seller_problem = None
        if document.seller_country is None:
            document = document.model_copy(update={"seller_country": self.pipeline.seller_country or "DE"})
        elif self.pipeline.seller_country and document.seller_country != self.pipeline.seller_country:
            seller_problem = (f"the source states seller country {document.seller_country}, the pipeline's "
                              f"seller_country is {self.pipeline.seller_country}; correct one of them")
        if row is not None and row.state == "pending":
            ref = self.target.find_document(row.source_ref, row.number)
            if ref is not None:
                self._mark_pushed(row, ref, note="settled: found in the target")
                self._settle_payment(row)
                return Outcome(self.pipeline.name, row.source_ref, row.number, "pushed", "settled", ref.target_id)
        if row is not None and row.state == "pushed":
            return self._after_transfer(row, document, cursor, dry_run)

        # filter
        reason = self._skip_reason(document)
        if reason and row is not None and row.state == "skipped" and row.reason == reason:
            if cursor is not None and not dry_run:
                self.ledger.set_cursor(*cursor)
            return None  # still skipped for the same reason: nothing new to say
        if reason:
            return self._record(row, document.source_ref, document.number, "skipped", reason, document, cursor, dry_run)
        try:
            problems = document.consistency_problems()
            if seller_problem:
                problems.insert(0, seller_problem)
            if problems:
                raise QuarantineError("; ".join(problems))
            plan = self.plan(document, dry_run=dry_run)
            self.target.validate(document, plan)
        except QuarantineError as exc:
            return self._record(row, document.source_ref, document.number, "quarantined", str(exc), document, cursor, dry_run)
        except (DocumentError, TransientError) as exc:
            return self._record(row, document.source_ref, document.number, "failed", str(exc), document, cursor,
                                dry_run, retryable=isinstance(exc, TransientError))
        if dry_run:
            return Outcome(self.pipeline.name, document.source_ref, document.number, "planned",
                           plan.contact_decision, None, plan.describe(), document.total_gross, document.currency)
        return self._push(row, document, plan, cursor)

    def _skip_reason(self, document: Document) -> str | None:
        if document.skip_reason:
            return document.skip_reason
        if document.cancelled:
            return "cancelled in the source"
        if not document.finalized:
            return "not finalized in the source"
        start = self.pipeline.start_date
        dated = document.invoice_date or document.order_date
        if start and dated and dated < start:
            return f"dated {dated.isoformat()}, before the pipeline's start date {start.isoformat()}"
        return None

    def _record(self, row: DocumentRow | None, source_ref: str, number: str | None, state: str, reason: str,
                document: Document | None, cursor: tuple[str, str] | None, dry_run: bool,
                retryable: bool = False) -> Outcome | None:
        reason = redact(reason)
        if (not dry_run and not self._retrying and row is not None and row.state == state
                and row.reason == reason and not retryable):
            # The same document, the same verdict (e.g. listed again by an overlapping
            # window): nothing new to report; the ledger already says why.
            if cursor is not None:
                self.ledger.set_cursor(*cursor)
            return None
        outcome = Outcome(self.pipeline.name, source_ref, number, state, reason,
                          gross=document.total_gross if document and state != "failed" else None,
                          currency=document.currency if document else None)
        if dry_run:
            return outcome
        if row is None:
            row = fresh(DocumentRow, pipeline=self.pipeline.name, source_ref=source_ref, state=state)
        row.state, row.reason, row.number = state, reason, number
        row.retryable = retryable if state == "failed" else None
        if document is not None:
            row.payload = document.model_dump_json()
            row.content_hash = payload_hash(fingerprint(document))
            row.customer_source_id = document.customer.source_id
        self.ledger.save_document(row, cursor=cursor)
        if state in ("failed", "quarantined"):
            self.rt.fire("ledgerlink_document_failed", pipeline=self.pipeline.name, source_ref=source_ref,
                         state=state, reason=reason)
        return outcome

    def _push(self, row: DocumentRow | None, document: Document, plan: Plan, cursor: tuple[str, str] | None) -> Outcome:
        if row is None:
            row = fresh(DocumentRow, pipeline=self.pipeline.name, source_ref=document.source_ref, state="pending")
        data = document.model_dump_json()
        row.state, row.reason, row.number = "pending", None, document.number
        row.payload = data
        row.content_hash = payload_hash(fingerprint(document))
        row.customer_source_id = document.customer.source_id
        row.attempts += 1
        row.payment_state = None
        row = self.ledger.save_document(row)
        self.rt.checkpoint("after_pending")
        ref: TargetRef | None = None
        error: Exception | None = None
        settled = False
        unsettled: OutcomeUnknown | None = None
        for _round in range(MAX_SETTLE_ROUNDS):
            try:
                ref = self.target.push(document, plan)
                break
            except OutcomeUnknown as exc:
                self.rt.reporter.wait(f"{document.source_ref}: {exc}; asking the target whether it arrived")
                self._audit("push", document.source_ref, None, data, f"unknown: {exc}")
                try:
                    ref = self.target.find_document(document.source_ref, document.number)
                except TransientError as find_exc:
                    error, unsettled = find_exc, exc
                    break
                if ref is not None:
                    settled = True
                    break
                error = exc
            except (DocumentError, TransientError) as exc:
                error = exc
                break
        if ref is None:
            assert error is not None
            state = "quarantined" if isinstance(error, QuarantineError) else "failed"
            reason = redact(str(error))
            row_state = state
            if unsettled is not None:
                # The write may have arrived, and the target could not be asked: keep the
                # intent (pending), so the next run asks the target before sending again.
                row_state = "pending"
                reason = (f"{redact(str(unsettled))}; the target could not be asked whether it arrived"
                          f" ({reason}); the next run asks before sending it again")
            elif isinstance(error, OutcomeUnknown):
                # Not found after the lost answer: nothing arrived; the next run pushes it.
                reason = f"{reason}; not found in the target, will be pushed again"
            row.state, row.reason = row_state, reason
            row.retryable = isinstance(error, TransientError) if row_state == "failed" else None
            self.ledger.save_document(
                row, cursor=cursor,
                audit=self._audit_row("push", document.source_ref, None, data, f"error: {reason}"),
            )
            self.rt.fire("ledgerlink_document_failed", pipeline=self.pipeline.name,
                         source_ref=document.source_ref, state=state, reason=reason)
            return Outcome(self.pipeline.name, document.source_ref, document.number, state, reason,
                           gross=document.total_gross, currency=document.currency)
        self.rt.checkpoint("after_push")
        note = plan.contact_decision
        row.payment_state = "booked" if plan.mark_paid and not ref.payment_pending and not settled else None
        self._mark_pushed(row, ref, note=note or None, cursor=cursor, payload=data)
        if settled:
            # Found after a lost answer: the steps after the create (tags) and the
            # payment may be missing. Targets do only what is still missing.
            self._complete(row, ref, document, plan)
            self._settle_payment(row)
        self.rt.checkpoint("after_pushed")
        self.rt.fire("ledgerlink_document_pushed", pipeline=self.pipeline.name, source_ref=document.source_ref,
                     target_ref=ref, document=document)
        return Outcome(self.pipeline.name, document.source_ref, document.number, "pushed", note,
                       ref.target_id, gross=document.total_gross, currency=document.currency)

    def _mark_pushed(self, row: DocumentRow, ref: TargetRef, *, note: str | None,
                     cursor: tuple[str, str] | None = None, payload: str | None = None) -> None:
        row.state = "pushed"
        row.reason = note
        row.target_id = ref.target_id
        row.target_number = ref.number
        row.pushed_at = utcnow()
        outcome = "ok" + (f" ({note})" if note else "")
        self.ledger.save_document(
            row, cursor=cursor,
            audit=self._audit_row("push", row.source_ref, ref.target_id, payload or row.payload, outcome),
        )

    def _after_transfer(self, row: DocumentRow, document: Document, cursor: tuple[str, str] | None,
                        dry_run: bool) -> Outcome | None:
        new_hash = payload_hash(fingerprint(document))
        changes: list[str] = []
        old_document: Document | None = None
        if row.payload:
            try:
                old_document = Document.model_validate_json(row.payload)
            except ValueError:
                old_document = None
        if new_hash != row.content_hash and old_document is not None:
            changes.append(describe_changes(fingerprint(old_document), fingerprint(document)))
        became_paid = (
            self.pipeline.payment_reconciliation == "source"
            and document.is_paid
            and row.payment_state != "booked"
        )
        if dry_run:
            if became_paid or changes:
                what = "would book the payment" if became_paid else f"changed after transfer: {'; '.join(changes)}"
                return Outcome(self.pipeline.name, row.source_ref, row.number, "planned", what, row.target_id)
            return None
        outcome: Outcome | None = None
        if became_paid and not changes:
            outcome = self._book_payment(row, document)
        if changes:
            word = "export" if getattr(self.target, "locks_exported", False) else "transfer"
            text = f"changed after {word}: " + "; ".join(changes)
            if row.changed != text:
                row.changed = text
                self.ledger.save_document(row, cursor=cursor)
                outcome = Outcome(self.pipeline.name, row.source_ref, row.number, "changed", text, row.target_id)
                return outcome
        if cursor is not None and outcome is None:
            self.ledger.set_cursor(*cursor)
        return outcome

    def _complete(self, row: DocumentRow, ref: TargetRef, document: Document, plan: Plan) -> None:
        try:
            self.target.complete(ref, document, plan)
        except (LedgerlinkError, ConnectionError_) as exc:
            # The document is in the target (and pushed in the ledger); say what is missing.
            reason = redact(str(exc))
            self._audit("complete", row.source_ref, ref.target_id, None, f"error: {reason}")
            self.rt.reporter.message(
                f"{row.source_ref}: adopted after a lost answer, but finishing it in the target failed "
                f"({reason}); check its tags there"
            )

    def _settle_payment(self, row: DocumentRow) -> None:
        """After adopting a document found in the target: book its payment if it is still due."""
        if self.pipeline.payment_reconciliation != "source" or not row.payload:
            return
        document = Document.model_validate_json(row.payload)
        if document.is_paid and row.payment_state != "booked":
            outcome = self._book_payment(row, document)
            if outcome is not None:
                self.rt.reporter.document(outcome)

    def _book_payment(self, row: DocumentRow, document: Document) -> Outcome | None:
        ref = TargetRef(target_id=row.target_id or "", number=row.target_number)
        row.payment_state = "pending"
        self.ledger.save_document(row)
        try:
            plan = self.plan(document, dry_run=False, contact_needed=False)
            self.target.book_payment(ref, document, plan)
        except NotSupported:
            row.payment_state = None
            self.ledger.save_document(row)
            return None
        except TransientError as exc:
            # e.g. the document is still a draft in the target, or the answer was lost:
            # the next run tries again (retry_payments).
            row.payment_state = "retry"
            self.ledger.save_document(row)
            return Outcome(self.pipeline.name, row.source_ref, row.number, "payment_pending",
                           f"payment not booked yet: {redact(str(exc))}", row.target_id)
        except DocumentError as exc:
            row.payment_state = None
            self.ledger.save_document(row, audit=self._audit_row("book_payment", row.source_ref, row.target_id,
                                                                    document.model_dump_json(), f"error: {exc}"))
            return Outcome(self.pipeline.name, row.source_ref, row.number, "failed", f"payment not booked: {exc}", row.target_id)
        row.payment_state = "booked"
        self.ledger.save_document(row, audit=self._audit_row("book_payment", row.source_ref, row.target_id,
                                                                [str(p.amount) for p in document.payments], "ok"))
        return Outcome(self.pipeline.name, row.source_ref, row.number, "payment_booked", None, row.target_id,
                       gross=document.paid_amount, currency=document.currency)

    # -- planning and contacts --------------------------------------------------------------
    def plan(self, document: Document, *, dry_run: bool, contact_needed: bool = True) -> Plan:
        if not self._prepared:
            self.target.prepare(self._options)
            self._prepared = True
        lines = plan_lines(self.pipeline, document,
                           target_books_lines=getattr(self.target, "books_without_rules", False))
        document_date = choose_document_date(self.pipeline, document)
        if self.pipeline.due_days is not None:
            due = document_date + timedelta(days=self.pipeline.due_days)
        else:
            due = document.due_date or document_date
        contact, decision = (None, "") if not contact_needed else self.contact_for(document.customer, dry_run=dry_run)
        tags = list(self.pipeline.tags)
        mismatch = contact_needed and contact is None and not decision.startswith("would create")
        if mismatch and self.pipeline.mismatch_tag not in tags:
            tags.append(self.pipeline.mismatch_tag)
        return Plan(
            pipeline=self.pipeline.name,
            contact=contact,
            lines=lines,
            document_date=document_date,
            due_date=due,
            tags=tags,
            cost_centre=self.pipeline.cost_centre,
            mark_paid=self.pipeline.payment_reconciliation == "source" and document.is_paid,
            mismatch=mismatch,
            contact_decision=decision,
            options=self._options,
        )

    def contact_for(self, customer: Customer, *, dry_run: bool) -> tuple[Contact | None, str]:
        target_conn = self.pipeline.target
        with self.rt.target_lock(target_conn):
            linked = self.ledger.linked_contact(target_conn, self.pipeline.source, customer.source_id)
            if linked is not None:
                contact_id, number, matched_by = linked
                contact = Contact(target_id=contact_id, customer_number=number)
                return contact, f"contact {number or contact_id} (linked by {matched_by})"
            link = self.ledger.link(target_conn, self.pipeline.source, customer.source_id)
            index = self.rt.contact_index(target_conn, self.pipeline.matchers, self.target)
            match = index.match(customer)
            if match is not None and match.unique is not None:
                contact = match.unique
                if not dry_run:
                    new_link = link or CustomerLink(target_connection=target_conn, source_connection=self.pipeline.source,
                                                    source_customer_id=customer.source_id)
                    new_link.state = "linked"
                    new_link.target_contact_id = contact.target_id
                    new_link.target_customer_number = contact.customer_number
                    new_link.matched_by = match.matcher
                    new_link = self.ledger.save_link(new_link)
                    self._write_back(new_link, customer)
                return contact, f"contact {contact.customer_number or contact.target_id} (matched by {match.matcher})"
            if match is not None and match.ambiguous:
                names = ", ".join(f"{c.customer_number or c.target_id} {c.display_name}" for c in match.candidates)
                return None, f"ambiguous by {match.matcher}: {names}; left unlinked for a person to decide"
            if not self.pipeline.create_contacts:
                return None, "no matching contact; contact creation is off"
            if dry_run:
                return None, f"would create a contact for {customer.display_name}"
            return self._create_contact(customer, link)

    def _create_contact(self, customer: Customer, link: CustomerLink | None) -> tuple[Contact | None, str]:
        target_conn = self.pipeline.target
        key = f"{self.pipeline.source}:{customer.source_id}"
        link = link or CustomerLink(target_connection=target_conn, source_connection=self.pipeline.source,
                                    source_customer_id=customer.source_id)
        link.state, link.key = "pending", key
        link = self.ledger.save_link(link)
        self.rt.checkpoint("after_contact_pending")
        try:
            contact = self.target.create_contact(customer, key)
        except OutcomeUnknown:
            contact = self.target.find_contact(key)
            if contact is None:
                self.ledger.delete_link(link)
                raise
        except (DocumentError, TransientError):
            self.ledger.delete_link(link)
            raise
        self.rt.checkpoint("after_contact_create")
        self._complete_link(link, contact, "created")
        return contact, f"contact {contact.customer_number or contact.target_id} (created)"

    def _complete_link(self, link: CustomerLink, contact: Contact, how: str) -> None:
        link.state = "linked"
        link.target_contact_id = contact.target_id
        link.target_customer_number = contact.customer_number
        link.matched_by = link.matched_by or how
        if getattr(self.source, "supports_write_customer_number", False) and contact.customer_number:
            link.writeback = "pending"
        link = self.ledger.save_link(link, audit=self._audit_row(
            "create_contact", None, contact.target_id, {"key": link.key}, f"ok ({how})"))
        self.rt.add_contact(self.pipeline.target, contact)
        self._write_back(link, Customer(source_id=link.source_customer_id))

    def _write_back(self, link: CustomerLink, customer: Customer) -> None:
        if not getattr(self.source, "supports_write_customer_number", False) or not link.target_customer_number:
            return
        if customer.customer_number == link.target_customer_number or link.writeback == "done":
            return
        try:
            self.source.write_customer_number(customer, link.target_customer_number)
            link.writeback = "done"
        except (LedgerlinkError, ConnectionError_) as exc:
            link.writeback = f"error: {redact(str(exc))}"
            self.rt.reporter.message(
                f"could not write customer number {link.target_customer_number} back to "
                f"{customer.source_id}: {redact(str(exc))} (will retry)"
            )
        self.ledger.save_link(link)

    def sync_members(self, result: RunResult) -> None:
        """Create (or link) target contacts for source customers without waiting for a document."""
        try:
            customers = list(self.source.customers())
        except NotSupported:
            return
        for customer in customers:
            link = self.ledger.link(self.pipeline.target, self.pipeline.source, customer.source_id)
            if link is not None and link.state == "linked":
                continue
            try:
                contact, decision = self.contact_for(customer, dry_run=False)
            except (DocumentError, TransientError) as exc:
                self.rt.reporter.message(f"member {customer.display_name}: contact not created: {exc}")
                continue
            if contact is not None and "created" in decision:
                result.contacts_created += 1
            self.rt.reporter.message(f"member {customer.display_name}: {decision}")

    # -- audit ---------------------------------------------------------------------------
    def _audit_row(self, action: str, source_ref: str | None, target_ref: str | None, payload: Any,
                   outcome: str) -> AuditRow:
        return fresh(AuditRow, pipeline=self.pipeline.name, target_connection=self.pipeline.target,  # type: ignore[no-any-return]
                     source_ref=source_ref, action=action, target_ref=target_ref,
                     payload_hash=payload_hash(payload) if payload else None, outcome=redact(outcome)[:1000])

    def _audit(self, action: str, source_ref: str | None, target_ref: str | None, payload: Any, outcome: str) -> None:
        self.ledger.add_audit(self._audit_row(action, source_ref, target_ref, payload, outcome))


# -- running several pipelines -----------------------------------------------------------
def run_pipelines(
    runtime: Runtime,
    pipelines: list[PipelineConfig],
    *,
    jobs: int = 4,
    run: Callable[[PipelineRunner], RunResult] | None = None,
) -> list[RunResult]:
    """Run pipelines; those with different target connections side by side.

    Pipelines sharing a target connection run one after another in one worker, so
    they share its rate limit and its customer links without racing.
    """
    groups: dict[str, list[PipelineConfig]] = {}
    for pipeline in pipelines:
        groups.setdefault(pipeline.target, []).append(pipeline)

    def do(pipeline: PipelineConfig) -> RunResult:
        try:
            runner = PipelineRunner(runtime, pipeline)
        except LedgerlinkError as exc:
            return RunResult(pipeline.name, error=str(exc))
        try:
            return run(runner) if run else runner.run()
        finally:
            runner.close()

    def do_group(group: list[PipelineConfig]) -> list[RunResult]:
        return [do(p) for p in group]

    results: list[RunResult] = []
    if jobs <= 1 or len(groups) == 1:
        for group in groups.values():
            results.extend(do_group(group))
        return results
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for group_results in pool.map(do_group, groups.values()):
            results.extend(group_results)
    return results


def iter_documents_by_ids(source: Source, ids: list[str]) -> Iterator[Document | BrokenDocument]:
    for ref in ids:
        document = source.document(ref)
        if document is None:
            yield BrokenDocument(ref, f"the source has no document {ref!r}")
        else:
            yield document

