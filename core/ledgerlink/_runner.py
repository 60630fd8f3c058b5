"""The runner: one pipeline, top to bottom: fetch -> filter -> match -> plan -> push -> record.

It orchestrates and decides nothing on its own: planning is ``_planning`` (pure),
contacts are ``_contacts``, every state change is a ledger transition (``_ledger``),
and what changed after transfer is ``_changes``.

The crash-safety protocol, for every write to a target:

1. commit the intent (``pending`` document, ``pending`` customer link, ``pending``
   payment) with the key it will be found by;
2. call the target;
3. commit the outcome (``pushed`` with the target ref) with its audit entry and the
   cursor, in one transaction.

At start-up an unresolved ``pending`` is settled with the target's
``find_document`` / ``find_contact`` before anything is pushed again. A write
whose answer is lost (``OutcomeUnknown``) is settled the same way, at once. The
cursor is stored only in the commit of a settled document; once a document stays
``pending`` in a run, the cursor stays where it is for the rest of that run, so it
never passes a document that is not settled. One bad document never stops the others.
"""

from __future__ import annotations

import heapq
import logging
import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from . import _planning as planning
from ._cancellations import CANCELLED_IN_SOURCE, Cancellations, free_standing
from ._changes import describe_changes, fingerprint
from ._config import PipelineConfig
from ._connectors import BrokenDocument, Plan, Source, SourceItem, Target
from ._contacts import Contacts
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
from ._http import redact
from ._ledger import AuditRow, DocumentRow, fresh, payload_hash
from ._payments import Payments
from ._records import DEFAULT_BOOK_CURRENCY, REVERSAL_SUFFIX, Document, TargetRef
from ._runtime import Outcome, Reporter, RunResult, Runtime, SimulatedCrash
from ._states import DocumentState, OutcomeState

log = logging.getLogger(__name__)
MAX_SETTLE_ROUNDS = 5
COUNT_LEFT_SECONDS = 10.0
"""How long a run stopped by the circuit breaker goes on listing the source to say how
many documents it leaves for the next run."""


DEFERRED_ROUNDS = 2
"""Lost answers of one document in one run (each waited for) before the next run takes it."""
BACKOFF_WAIT = 120.0
"""A wait a vendor asked for (Retry-After, remembered from an earlier run) that a run
waits out before it starts (s); a longer one makes the run leave the pipeline alone."""
SETTLE_DELAY_FACTOR = 2.0
"""A write whose answer was lost is asked about after this many times the target's
HTTP timeout: a vendor can finish a slow create after the client gave up on it."""


@dataclass
class Unsettled:
    """A push whose answer was lost, asked about once the settle delay has passed."""

    row: DocumentRow
    document: Document
    plan: Plan
    due: float
    rounds: int


class VendorDown(Exception):
    """The circuit breaker: documents in a row failed for the vendor's reasons."""

    def __init__(self, error: TransientError, streak: int, *, asked_to_wait: str | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.streak = streak
        self.asked_to_wait = asked_to_wait
        """The connection whose vendor asked to wait longer than a run waits (Retry-After)."""
Cursor = tuple[str, str]
S, OS = DocumentState, OutcomeState


class SeenRefs:
    """The source refs a run has taken, so that none is processed twice in one run, exact
    and compact: a set of str costs ~100 bytes a ref, so a first run over 100,000
    documents held ~10 MB for it alone. The newest refs are in a set; every
    ``RECENT`` of them are folded into a sorted run (the refs' UTF-8 bytes in one
    ``bytes``, their offsets in an ``array``: ~length + 8 bytes a ref), and two runs of
    similar length are merged, so there are about log2(refs / RECENT) runs to search."""

    RECENT = 4096

    def __init__(self) -> None:
        self._recent: set[str] = set()
        self._runs: list[tuple[bytes, array[int]]] = []

    def __len__(self) -> int:
        return len(self._recent) + sum(len(offsets) - 1 for _, offsets in self._runs)

    def __contains__(self, ref: str) -> bool:
        if ref in self._recent:
            return True
        key = ref.encode("utf-8", "surrogatepass")
        for blob, offsets in self._runs:
            lo, hi = 0, len(offsets) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if blob[offsets[mid]:offsets[mid + 1]] < key:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < len(offsets) - 1 and blob[offsets[lo]:offsets[lo + 1]] == key:
                return True
        return False

    def add(self, ref: str) -> None:
        self._recent.add(ref)
        if len(self._recent) >= self.RECENT:
            keys = sorted(r.encode("utf-8", "surrogatepass") for r in self._recent)
            self._recent = set()
            self._runs.append(self._pack(iter(keys)))
            while len(self._runs) >= 2 and len(self._runs[-2][1]) <= 2 * len(self._runs[-1][1]):
                last = self._runs.pop()
                self._runs[-1] = self._pack(heapq.merge(self._keys(*self._runs[-1]), self._keys(*last)))

    @staticmethod
    def _keys(blob: bytes, offsets: array[int]) -> Iterator[bytes]:
        for i in range(len(offsets) - 1):
            yield blob[offsets[i]:offsets[i + 1]]

    @staticmethod
    def _pack(keys: Iterator[bytes]) -> tuple[bytes, array[int]]:
        blob, offsets = bytearray(), array("Q", [0])
        for key in keys:
            blob += key
            offsets.append(len(blob))
        return bytes(blob), offsets


class PipelineRunner:
    """Runs one pipeline of the config with the runtime's ledger and connectors."""

    def __init__(self, runtime: Runtime, pipeline: PipelineConfig) -> None:
        self.rt = runtime
        self.pipeline = pipeline
        self.ledger = runtime.ledger
        self.source: Source = runtime.source(pipeline.source)
        self.target: Target = runtime.target(pipeline.target)
        self.contacts = Contacts(runtime, pipeline, self.source, self.target, self._audit_row,
                                 trouble=self._trouble, count=self._count)
        self.payments = Payments(runtime, pipeline, self.target, self.plan, self._audit_row, self._report,
                                 trouble=self._trouble, count=self._count)
        self.cancellations = Cancellations(self.ledger, pipeline, self.target, pipeline.target, self._process_derived,
                                          self._report)
        self._result: RunResult | None = None
        self._prepared = False
        self._retrying = False
        self._cursor_held = False  # a document stayed pending: the cursor must not pass it
        self._options = pipeline.options()  # the same for every document of the run
        self._transient: TransientError | None = None  # the last document failed for the vendor's reasons
        self._look_up_first = False  # ask the target before every first push (a lost or new ledger)
        self._unsettled: list[Unsettled] = []  # lost answers, asked about after the settle delay
        self._rounds: dict[str, int] = {}
        self._down_streak = 0

    def close(self) -> None:
        for connector in (self.source, self.target):
            with suppress(Exception):  # closing must not hide the run's result
                connector.close()

    def run(self, *, dry_run: bool = False, command: str = "run", documents: Iterable[SourceItem] | None = None,
            use_cursor: bool = True, retry_failed: bool | str = "transient", retry_quarantined: bool = False,
            sync_members: bool = True, lock_wait: float | None = None, look_up_first: bool = False) -> RunResult:
        """Run the pipeline. ``retry_failed``: "transient" (the default for `run`) retries
        failures that may have gone away (network, interruption); True every failed
        document; False none. ``sync_members=False`` leaves the member sync out (a webhook
        for one document must not list every customer: sources pace that listing).

        Holds the pipeline's lock (``_locks``) throughout, except for a dry run;
        ``PipelineBusy`` when another command holds it longer than ``lock_wait`` (default:
        the runtime's). ``look_up_first``: ask the target before every first push, as a
        run does by itself when the ledger has no record of the pipeline's target account
        (after restoring an older backup of the ledger, say)."""
        self._look_up_first = look_up_first
        if dry_run:
            return self._run(dry_run=dry_run, command=command, documents=documents, use_cursor=use_cursor,
                             retry_failed=retry_failed, retry_quarantined=retry_quarantined,
                             sync_members=sync_members)
        wait = self.rt.lock_wait if lock_wait is None else lock_wait
        with self.rt.locks.hold(self.pipeline.name, command, wait=wait):
            return self._run(dry_run=dry_run, command=command, documents=documents, use_cursor=use_cursor,
                             retry_failed=retry_failed, retry_quarantined=retry_quarantined,
                             sync_members=sync_members)

    def _run(self, *, dry_run: bool, command: str, documents: Iterable[SourceItem] | None, use_cursor: bool,
             retry_failed: bool | str, retry_quarantined: bool, sync_members: bool) -> RunResult:
        result = self._result = RunResult(self.pipeline.name, keep_outcomes=self.rt.keep_outcomes)
        skip = self.vendor_wait()
        if skip is not None:
            result.error, result.deferred = skip, True
            if not dry_run:
                self.ledger.finish_run(self.ledger.start_run(self.pipeline.name, command), {}, "skipped: " + skip)
            return result
        run_row = None if dry_run else self.ledger.start_run(self.pipeline.name, command)
        account: str | None = None
        try:
            if not dry_run:
                account = self._check_account()
                self.settle_pending(result)
                self.contacts.settle()
                self.payments.retry(refused=bool(retry_quarantined))
                self.contacts.retry_write_backs()
                if retry_failed or retry_quarantined:
                    self.retry_stored(result, quarantined=retry_quarantined,
                                      transient_only=retry_failed == "transient")
                if self.pipeline.sync_members and sync_members:
                    result.contacts_created += self.contacts.sync_members()
            if documents is None:  # fetch
                cursor = self.ledger.cursor(self.pipeline.name) if use_cursor else None
                documents = self.source.documents(cursor)
            seen = SeenRefs()
            iterator = iter(documents)
            try:
                for item in iterator:
                    if item.source_ref in seen:
                        continue
                    seen.add(item.source_ref)
                    self._breaker(result, self.process(item, dry_run=dry_run, update_cursor=use_cursor))
            except VendorDown as down:
                result.error = self._stopped(down, iterator, seen)
            self._settle_unsettled(result, push_again=result.error is None)
        except VendorDown as down:  # while retrying stored documents: the listing was not started
            result.error = self._stopped(down, iter(()), SeenRefs()) + " and the source's new documents"
        except (ConnectionError_, ConfigError) as exc:
            result.error = str(exc)
            result.needs_config = True
        except TransientError as exc:
            # The message names the vendor and the request (source or target); the
            # ledger keeps every unsettled write pending for the next run.
            result.error = f"{exc} (the next run continues from here)"
        except SimulatedCrash:
            run_row = None  # a process killed here records nothing: the run stays unfinished
            raise
        except KeyboardInterrupt:
            if run_row is not None:
                self._finish_quietly(run_row, result, "interrupted")
            raise
        except Exception as exc:
            # A bug or the ledger's database failing: recorded as what it was, never as `ok`.
            lines = str(exc).strip().splitlines()
            detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
            said = lines[0] if isinstance(exc, LedgerlinkError) and lines else f"internal error: {detail}"
            if run_row is not None:
                self._finish_quietly(run_row, result, "error: " + redact(said)[:500])
            raise
        if run_row is not None:
            outcome_text = "error: " + result.error if result.error else ("ok" if result.ok else "partial")
            self.ledger.finish_run(run_row, result.counts(), outcome_text)
        if not dry_run and not result.error:
            # From now on the ledger knows what this pipeline wrote to that account.
            self.ledger.remember_target_account(self.pipeline.name, self.pipeline.target, self._plugin, account)
        return result

    def _finish_quietly(self, run_row: Any, result: RunResult, outcome: str) -> None:
        """Record how a run ended on an exception; the exception is what the caller
        sees, so a ledger that cannot record it (the database gone) does not hide it."""
        try:
            self.ledger.finish_run(run_row, result.counts(), outcome)
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: the run's outcome (%s) could not be recorded: %s", self.pipeline.name, outcome,
                        type(exc).__name__)

    # -- a vendor that asked to wait ---------------------------------------------------------
    def _connections(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.pipeline.source, self.pipeline.target)))

    def _asked_to_wait(self) -> str | None:
        """The pipeline's connection whose vendor asked in this command to wait longer than
        a run waits (None: none did)."""
        for connection in self._connections():
            if connection in self.rt.backed_off:
                return connection
        return None

    def vendor_wait(self) -> str | None:
        """Respect a wait a vendor of this pipeline asked for in an earlier command
        (Retry-After, remembered in the ledger): one of up to ``BACKOFF_WAIT`` seconds is
        waited out, saying so; for a longer one the line that the pipeline is left alone
        until then (the caller skips it)."""
        for connection in self._connections():
            row = self.ledger.backoff(connection)
            if row is None:
                continue
            until = row.until.strftime("%Y-%m-%d %H:%M:%S UTC")
            left = (row.until - datetime.now(UTC)).total_seconds()
            if left > BACKOFF_WAIT:
                return (f"{connection}: the vendor asked to wait until {until} (Retry-After); pipeline "
                        f"{self.pipeline.name!r} is left alone until then ({left / 60:.0f} min from now), and the "
                        "next run after that goes on")
            self.rt.reporter.wait(f"{connection}: the vendor asked to wait until {until} (Retry-After); waiting "
                                  f"{left:.0f} s before pipeline {self.pipeline.name!r} goes on")
            time.sleep(max(left, 0.0))
            self.ledger.clear_backoff(connection)  # waited out
        return None

    @property
    def _plugin(self) -> str:
        return str(self.rt.config.connections[self.pipeline.target].plugin)

    def _check_account(self) -> str | None:
        """The target account, checked against the one the ledger wrote to for this
        pipeline; no record (a new, lost or replaced ledger): look up every document in
        the target before its first push, so nothing is written twice."""
        try:
            account = self.target.account_id()
        except TransientError as exc:
            # The documents will meet the same trouble (and the circuit breaker says so);
            # without the account, no mismatch can be told, but no record is lost either.
            log.info("%s: the target account could not be read: %s", self.pipeline.name, exc)
            account = None
            self._down_streak += 1  # it counts for the circuit breaker like a document
        known = self.ledger.target_account(self.pipeline.name)
        if known is None:
            self._look_up_first = True
            log.info("%s: the ledger has no record of writing to %r: each document is looked up there before it "
                     "is pushed (a new or lost ledger doubles nothing)", self.pipeline.name, self.pipeline.target)
            return account
        named = f"{known.plugin} account {known.account}" if known.account else known.plugin
        now = f"{self._plugin} account {account}" if account else self._plugin
        if known.plugin != self._plugin or (known.account and account and known.account != account):
            raise ConfigError(
                f"the ledger's pipeline {self.pipeline.name!r} wrote to {named}, but its target connection "
                f"{self.pipeline.target!r} now opens {now}: use that account's ledger, or a new ledger file for "
                "this account")
        return account

    # -- what a crash or an earlier run left ------------------------------------------
    def settle_pending(self, result: RunResult) -> None:
        for row in self.ledger.documents(self.pipeline.name, [S.PENDING]):
            self._wait_until_settled(row)
            ref = self.target.find_document(row.source_ref, row.number)
            if ref is not None:
                result.add(self._adopt(row, ref, None, "settled after an interruption: found in the target",
                                       said="was interrupted; found in the target"))
            else:
                self.ledger.mark_failed(row, row.pipeline, row.source_ref, number=row.number, retryable=True,
                                        reason="interrupted before it reached the target; it will be pushed again")

    # -- lost answers ------------------------------------------------------------------------
    def _settle_delay(self) -> float:
        """How long after a lost write answer the target is asked about it (s): twice the
        target's HTTP timeout; 0 for a target that makes no HTTP requests."""
        return SETTLE_DELAY_FACTOR * self.target.context.write_timeout

    def _defer(self, row: DocumentRow, document: Document, plan: Plan, error: OutcomeUnknown,
               delay: float) -> None:
        rounds = self._rounds.get(document.source_ref, 0) + 1
        self._rounds[document.source_ref] = rounds
        reason = (f"{redact(str(error))}; the target is asked whether it arrived after {delay:g} s (it may still "
                  "be finishing the write), or by the next run")
        self.ledger.keep_pending(row, reason)
        self._cursor_held = True
        self.rt.reporter.wait(f"{document.source_ref}: {redact(str(error))}; asking the target in {delay:g} s "
                              "whether it arrived")
        self._unsettled.append(Unsettled(row, document, plan, time.monotonic() + delay, rounds))

    def _wait_until_settled(self, row: DocumentRow) -> None:
        """A pending write younger than the settle delay (a run that just crashed, a
        lost answer of the last pass) is asked about only once the delay has passed."""
        delay = self._settle_delay()
        if delay <= 0 or row.updated_at is None:
            return
        updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
        left = delay - (datetime.now(UTC) - updated).total_seconds()
        if left > 0:
            self.rt.reporter.wait(f"{row.source_ref}: its write may still be arriving; asking the target in "
                                  f"{left:.0f} s")
            time.sleep(min(left, delay))

    def _settle_unsettled(self, result: RunResult, *, push_again: bool = True) -> None:
        """Ask the target about each lost answer once its settle delay has passed: found,
        it is adopted; not found, it is pushed again (a few rounds, then the next run).
        ``push_again`` False (the breaker stopped the run): not found, it is left for the
        next run without another write to a vendor that is down."""
        while self._unsettled:
            item = self._unsettled.pop(0)
            left = item.due - time.monotonic()
            if left > 0:
                time.sleep(left)
            source_ref = item.document.source_ref
            try:
                ref = self.target.find_document(source_ref, item.document.number)
            except TransientError as exc:
                reason = (f"the write's answer was lost and the target could not be asked whether it arrived "
                          f"({redact(str(exc))}); the next run asks before sending it again")
                self.ledger.keep_pending(item.row, reason)
                result.report(self.rt.reporter, Outcome(self.pipeline.name, source_ref, item.document.number,
                                                        OS.FAILED, reason))
                continue
            if ref is not None:
                outcome = self._adopt(item.row, ref, item.document, "settled: found in the target after a lost answer")
                if outcome.state == OS.PUSHED and item.document.reverses:
                    # A reversal written in this run: the news is the original's.
                    outcome = self.cancellations.written(item.document, item.row) or outcome
                result.report(self.rt.reporter, outcome)
            elif item.rounds >= DEFERRED_ROUNDS or not push_again:
                reason = (f"its answer was lost {item.rounds} times and it is not in the target; the next run pushes it"
                          if push_again else "its answer was lost and it is not in the target; the run was stopped "
                          "(the vendor is down), the next run pushes it")
                self.ledger.mark_failed(item.row, item.row.pipeline, source_ref, reason, number=item.row.number,
                                        retryable=True)
                result.report(self.rt.reporter, Outcome(self.pipeline.name, source_ref, item.document.number,
                                                        OS.FAILED, reason))
            else:
                # Not there after the delay: nothing arrived; push it again.
                result.report(self.rt.reporter, self._push(item.row, item.document, item.plan, None))

    # -- the circuit breaker ---------------------------------------------------------------
    def _trouble(self, error: TransientError) -> None:
        """A call failed for now; the breaker counts it unless the vendor answered and the
        reason is the document's own (``TransientError.vendor_down`` False)."""
        if error.vendor_down is not False:
            self._transient = error

    def _breaker(self, result: RunResult, outcome: Outcome | None) -> None:
        """Report the outcome, then count it (``_count``)."""
        result.report(self.rt.reporter, outcome)
        self._count(outcome)

    def _count(self, outcome: Outcome | None = None, *, answered: bool = False) -> None:
        """Raise ``VendorDown`` once ``circuit_breaker`` documents (or payments, or members) in
        a row failed for the vendor's reasons (a vendor that is down is down for all).
        ``answered``: the vendor answered (a member's contact was made)."""
        error, self._transient = self._transient, None
        if error is not None:
            self._down_streak += 1
            asked = self._asked_to_wait()
            if asked is not None or self._down_streak >= self.pipeline.circuit_breaker:
                raise VendorDown(error, self._down_streak, asked_to_wait=asked)
        elif answered or (outcome is not None and outcome.state != OS.SKIPPED):
            self._down_streak = 0  # the vendor answered

    def _stopped(self, down: VendorDown, rest: Iterator[SourceItem], seen: SeenRefs) -> str:
        """The one line for a run the breaker stopped, with how many documents are left
        (counted by listing the source on for a few seconds; nothing more is tried)."""
        if down.asked_to_wait is not None:  # asking the vendor again now would only be refused
            return (f"{down.error}; stopped: {down.asked_to_wait} asked to wait, which the ledger remembers; the "
                    "documents not tried yet are left for a run after that")
        left, more = 0, False
        deadline = time.monotonic() + COUNT_LEFT_SECONDS
        try:
            for item in rest:
                if item.source_ref not in seen:
                    seen.add(item.source_ref)
                    left += 1
                if time.monotonic() > deadline:
                    more = True
                    break
        except LedgerlinkError:
            more = True
        retry = len([row for row in self.ledger.documents(self.pipeline.name, [S.FAILED]) if row.retryable])
        count = f"{left}{' or more' if more else ''}"
        lost = (f"; {len(self._unsettled)} whose answer was lost are looked up after the settle delay"
                if self._unsettled else "")
        return (f"{down.error}; stopped after {down.streak} failures in a row for the vendor's reasons: "
                f"{count} documents not tried and {retry} failed ones left for the next run{lost}")

    def _report(self, outcome: Outcome) -> None:
        """An outcome besides the document's own (a payment booked on it) goes into the run's result."""
        if self._result is not None:
            self._result.report(self.rt.reporter, outcome)
        else:
            self.rt.reporter.document(outcome)

    def retry_stored(self, result: RunResult, *, quarantined: bool, transient_only: bool = False) -> None:
        """Try failed (and quarantined) documents again: fetched fresh from the source
        where it can, else from the copy the ledger kept. ``transient_only``: only failures
        that may have gone away by themselves (what every `run` does)."""
        states = [S.FAILED] + ([S.QUARANTINED] if quarantined else [])
        for row in self.ledger.documents(self.pipeline.name, states):
            if transient_only and not row.retryable:
                continue
            item: SourceItem | None = None
            try:
                if not row.source_ref.endswith(REVERSAL_SUFFIX):  # ledgerlink's own reversal: the stored copy
                    item = self.source.document(row.source_ref)
            except NotSupported:
                pass
            except QuarantineError as exc:
                item = BrokenDocument(row.source_ref, str(exc), quarantine=True, number=row.number)
            except DocumentError as exc:
                item = BrokenDocument(row.source_ref, str(exc), number=row.number)
            except LedgerlinkError:
                pass  # the source cannot be asked now; use the stored copy
            if item is None and row.payload:
                try:
                    item = Document.model_validate_json(row.payload)
                except ValueError:
                    pass
            if item is None:
                continue
            self._retrying = True
            try:
                self._breaker(result, self.process(item, dry_run=False, update_cursor=False))
            finally:
                self._retrying = False

    # -- one document ------------------------------------------------------------------
    def process(self, item: SourceItem, *, dry_run: bool, update_cursor: bool = True) -> Outcome | None:
        cursor = (self.pipeline.name, item.cursor) if update_cursor and item.cursor else None
        row = self.ledger.document(self.pipeline.name, item.source_ref)
        if row is not None and not dry_run and (row.state == S.PENDING or (row.state == S.FAILED and row.attempts)):
            # Unsettled, or failed after a push was tried: ask the target before sending again.
            if row.state == S.PENDING:
                self._wait_until_settled(row)
            ref = self.target.find_document(row.source_ref, row.number)
            if ref is not None:
                found = item if isinstance(item, Document) else None
                return self._adopt(row, ref, found, "settled: found in the target", said="settled")
        if isinstance(item, BrokenDocument):
            if row is not None and row.state == S.PUSHED:
                return None
            return self._record(row, item.source_ref, item.number, S.QUARANTINED if item.quarantine else S.FAILED,
                                item.reason, None, cursor, dry_run)
        document, seller_problem = planning.resolve_seller_country(self.pipeline, item)
        if row is not None and row.state == S.PUSHED:
            return self._after_transfer(row, document, cursor, dry_run)
        # filter
        reason = self._skip_reason(document)
        if reason and row is not None and row.state == S.SKIPPED and row.reason == reason:
            self._move_cursor(cursor, dry_run)
            return None  # still skipped for the same reason: nothing new to say
        if reason:
            return self._record(row, document.source_ref, document.number, S.SKIPPED, reason, document, cursor, dry_run)
        # check, match, plan
        try:
            problems = [p for p in (seller_problem, free_standing(document)) if p] + document.consistency_problems()
            if problems:
                raise QuarantineError("; ".join(problems))
            reverses: TargetRef | None = None
            if document.reverses:
                reverses, reason = self.cancellations.original(document, dry_run=dry_run)
                if reason:
                    return self._record(row, document.source_ref, document.number, S.SKIPPED, reason, document,
                                        cursor, dry_run)
            plan = self.plan(document, dry_run=dry_run)
            plan.reverses = reverses
            self.target.validate(document, plan)
        except QuarantineError as exc:
            return self._record(row, document.source_ref, document.number, S.QUARANTINED, str(exc), document,
                                cursor, dry_run)
        except (DocumentError, TransientError) as exc:
            if isinstance(exc, TransientError):
                self._trouble(exc)
            return self._record(row, document.source_ref, document.number, S.FAILED, str(exc), document, cursor,
                                dry_run, retryable=isinstance(exc, TransientError))
        if dry_run:
            return Outcome(self.pipeline.name, document.source_ref, document.number, OS.PLANNED,
                           plan.contact_decision, None, plan.describe(), document.total_gross, document.currency)
        if self._look_up_first and (row is None or not row.attempts):
            try:
                existing = self.target.find_document(document.source_ref, document.number)
            except TransientError as exc:
                self._trouble(exc)
                return self._record(row, document.source_ref, document.number, S.FAILED,
                                    f"could not look it up in the target before pushing it: {exc}", document, cursor,
                                    dry_run, retryable=True)
            if existing is not None:
                row = self.ledger.mark_pending(row, self.pipeline.name, document, exchange_rate=plan.exchange_rate)
                return self._adopt(row, existing, document, "found in the target: the ledger did not know it")
        return self._push(row, document, plan, cursor)

    def _skip_reason(self, document: Document) -> str | None:
        if document.skip_reason:
            return document.skip_reason
        if document.cancelled:
            return CANCELLED_IN_SOURCE
        if not document.finalized:
            return "not finalized in the source"
        start = self.pipeline.start_date
        dated = document.invoice_date or document.order_date
        if start and dated and dated < start:
            return f"dated {dated.isoformat()}, before the pipeline's start date {start.isoformat()}"
        return None

    def plan(self, document: Document, *, dry_run: bool, contact_needed: bool = True) -> Plan:
        """Draft the booking (pure), match the customer, complete the plan."""
        if not self._prepared:
            self.target.prepare(self._options)
            self._prepared = True
        if self.target.needs_exchange_rate:
            book_currency = self.pipeline.book_currency or self.target.book_currency() or DEFAULT_BOOK_CURRENCY
        else:
            book_currency = document.currency  # collected in its own currency: no rate
        draft = planning.draft(self.pipeline, document, target_books_lines=self.target.books_without_rules,
                               book_currency=book_currency, target_books_vouchers=self.target.books_vouchers,
                               original=self._original(document))
        contact, decision = (None, "")
        if contact_needed:
            contact, decision = self.contacts.resolve(document.customer, dry_run=dry_run)
        return planning.complete(self.pipeline, document, draft, self._options, contact=contact,
                                 decision=decision, contact_needed=contact_needed)

    def _original(self, document: Document) -> planning.Original | None:
        """The document a credit note reverses, as the ledger recorded it (None: it names none
        or the ledger has no copy)."""
        if not document.reverses:
            return None
        row = self.ledger.document(self.pipeline.name, document.reverses)
        if row is None or not row.payload:
            return None
        try:
            currency = Document.model_validate_json(row.payload).currency
        except ValueError:
            currency = None
        rate = Decimal(row.exchange_rate) if row.exchange_rate else None
        return planning.Original(row.number or row.source_ref, currency, rate)

    def _push(self, row: DocumentRow | None, document: Document, plan: Plan,
              cursor: Cursor | None) -> Outcome | None:
        row = self.ledger.mark_pending(row, self.pipeline.name, document, exchange_rate=plan.exchange_rate)
        data = row.payload
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
                self._audit("push", document.source_ref, None, data, f"unknown: {exc}")
                delay = self._settle_delay() if exc.in_flight else 0.0
                if delay > 0:
                    # The vendor may still be finishing it: ask only after the settle delay.
                    # A write that hangs counts for the breaker: a vendor whose writes all
                    # hang would otherwise cost one timeout per document.
                    self._defer(row, document, plan, exc, delay)
                    self._trouble(exc)
                    return None
                self.rt.reporter.wait(f"{document.source_ref}: {exc}; asking the target whether it arrived")
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
            return self._push_failed(row, document, error, unsettled, cursor, data)
        self.rt.checkpoint("after_push")
        if settled:
            # Found after a lost answer: the steps after the create (checks, tags) may be
            # missing. Targets do only what is still missing, or refuse what they found.
            try:
                self._complete(row, ref, document, plan)
            except QuarantineError as exc:
                return self._push_failed(row, document, exc, None, cursor, data)
            except TransientError as exc:
                return self._unfinished(row, ref, exc)
        note = plan.contact_decision
        if plan.reverses is not None:
            note = f"credit note for {plan.reverses.number or plan.reverses.target_id}" + (f"; {note}" if note else "")
        # A target that took the document but not its payments yet (a draft) keeps them
        # to be booked by a later run (``Payments.retry``), once the target takes them.
        waiting = bool(plan.mark_paid and ref.payment_pending and not settled
                       and self.payments.bookable(document).payments)
        self._mark_pushed(row, ref, note=note or None, cursor=cursor, payload=data, paid=document.paid_amount,
                          payment_booked=plan.mark_paid and not ref.payment_pending and not settled,
                          payment_waiting=waiting)
        if document.reverses:
            self.cancellations.written(document, row)
        if settled or not ref.payment_pending:
            self.payments.settle(row, document)  # a deposit is booked now, not when the rest comes
        self.rt.checkpoint("after_pushed")
        self.rt.fire("ledgerlink_document_pushed", pipeline=self.pipeline.name, source_ref=document.source_ref,
                     target_ref=ref, document=document)
        return Outcome(self.pipeline.name, document.source_ref, document.number, OS.PUSHED, note,
                       ref.target_id, gross=document.total_gross, currency=document.currency)

    def _push_failed(self, row: DocumentRow, document: Document, error: Exception, unsettled: OutcomeUnknown | None,
                     cursor: Cursor | None, data: str | None) -> Outcome:
        state = S.QUARANTINED if isinstance(error, QuarantineError) else S.FAILED
        if isinstance(error, TransientError):
            self._trouble(error)
        reason = redact(str(error))
        if unsettled is not None:
            # The write may have arrived, and the target could not be asked: keep the
            # intent (pending), so the next run asks the target before sending again.
            reason = (f"{redact(str(unsettled))}; the target could not be asked whether it arrived"
                      f" ({reason}); the next run asks before sending it again")
        elif isinstance(error, OutcomeUnknown):
            # Not found after the lost answer: nothing arrived; the next run pushes it.
            reason = f"{reason}; not found in the target, will be pushed again"
        audit = self._audit_row("push", document.source_ref, None, data, f"error: {reason}")
        if unsettled is not None:
            self.ledger.keep_pending(row, reason, audit=audit)
            self._cursor_held = True
        elif state == S.QUARANTINED:
            self.ledger.mark_quarantined(row, row.pipeline, row.source_ref, reason, number=row.number,
                                         cursor=self._held(cursor), audit=audit)
        else:
            self.ledger.mark_failed(row, row.pipeline, row.source_ref, reason, number=row.number,
                                    retryable=isinstance(error, TransientError), cursor=self._held(cursor),
                                    audit=audit)
        self.rt.fire("ledgerlink_document_failed", pipeline=self.pipeline.name,
                     source_ref=document.source_ref, state=str(state), reason=reason)
        return Outcome(self.pipeline.name, document.source_ref, document.number, state, reason,
                       gross=document.total_gross, currency=document.currency)

    def _record(self, row: DocumentRow | None, source_ref: str, number: str | None, state: DocumentState,
                reason: str, document: Document | None, cursor: Cursor | None, dry_run: bool,
                retryable: bool = False) -> Outcome | None:
        """A document that is not pushed in this run: skipped, failed or quarantined."""
        reason = redact(reason)
        if (not dry_run and not self._retrying and row is not None and row.state == state
                and row.reason == reason and not retryable):
            # The same document, the same verdict (e.g. listed again by an overlapping
            # window): nothing new to report; the ledger already says why.
            self._move_cursor(cursor, dry_run)
            return None
        outcome = Outcome(self.pipeline.name, source_ref, number, state, reason,
                          gross=document.total_gross if document and state != S.FAILED else None,
                          currency=document.currency if document else None)
        if dry_run:
            return outcome
        cursor = self._held(cursor)
        name = self.pipeline.name
        if state == S.SKIPPED:
            self.ledger.mark_skipped(row, name, source_ref, reason, number=number, document=document, cursor=cursor)
        elif state == S.QUARANTINED:
            self.ledger.mark_quarantined(row, name, source_ref, reason, number=number, document=document,
                                         cursor=cursor)
        else:
            self.ledger.mark_failed(row, name, source_ref, reason, number=number, retryable=retryable,
                                    document=document, cursor=cursor)
        if state != S.SKIPPED:
            self.rt.fire("ledgerlink_document_failed", pipeline=name, source_ref=source_ref, state=str(state),
                         reason=reason)
        return outcome

    def _held(self, cursor: Cursor | None) -> Cursor | None:
        return None if self._cursor_held else cursor

    def _move_cursor(self, cursor: Cursor | None, dry_run: bool) -> None:
        cursor = self._held(cursor)
        if cursor is not None and not dry_run:
            self.ledger.set_cursor(*cursor)

    def _mark_pushed(self, row: DocumentRow, ref: TargetRef, *, note: str | None, cursor: Cursor | None = None,
                     payload: str | None = None, payment_booked: bool | None = None,
                     paid: Decimal | None = None, payment_waiting: bool = False) -> None:
        audit = self._audit_row("push", row.source_ref, ref.target_id, payload or row.payload,
                                "ok" + (f" ({note})" if note else ""))
        self.ledger.mark_pushed(row, ref, note=note, cursor=self._held(cursor), audit=audit,
                                payment_booked=payment_booked, paid=paid, payment_waiting=payment_waiting)

    def _adopt(self, row: DocumentRow, ref: TargetRef, document: Document | None, note: str, *,
               said: str | None = None) -> Outcome:
        """A document found in the target after an interruption or a lost answer: the
        target finishes what is missing (``complete``) before it counts as pushed; a
        target that refuses what it found (``QuarantineError``) leaves it quarantined.
        ``note`` goes into the ledger, ``said`` (default: the note) into the outcome."""
        if document is None and row.payload:
            with suppress(ValueError):
                document = Document.model_validate_json(row.payload)
        if document is not None:
            try:
                document, _ = planning.resolve_seller_country(self.pipeline, document)
                plan = self.plan(document, dry_run=False)
                plan.reverses = self.cancellations.reference(document)
            except LedgerlinkError as exc:
                self.rt.reporter.message(f"{row.source_ref}: found in the target; it could not be planned again to "
                                         f"check it ({redact(str(exc))})")
            else:
                try:
                    self._complete(row, ref, document, plan)
                except TransientError as exc:
                    return self._unfinished(row, ref, exc)
                except QuarantineError as exc:
                    reason = f"found in the target unfinished: {redact(str(exc))}"
                    audit = self._audit_row("complete", row.source_ref, ref.target_id, None, f"error: {reason}")
                    self.ledger.mark_quarantined(row, row.pipeline, row.source_ref, reason, number=row.number,
                                                 audit=audit)
                    return Outcome(self.pipeline.name, row.source_ref, row.number, OS.QUARANTINED, reason)
        self._mark_pushed(row, ref, note=note)
        self.payments.settle(row)
        return Outcome(self.pipeline.name, row.source_ref, row.number, OS.PUSHED, said or note, ref.target_id)

    def _unfinished(self, row: DocumentRow, ref: TargetRef, error: TransientError) -> Outcome:
        """Found in the target, but finishing it there failed for now: it stays pending
        (never counted as pushed while unfinished); the next run finds and finishes it."""
        reason = (f"found in the target ({ref.number or ref.target_id}), but finishing it there failed "
                  f"({redact(str(error))}); the next run finishes it")
        self.ledger.keep_pending(row, reason, audit=self._audit_row("complete", row.source_ref, ref.target_id, None,
                                                                    f"error: {reason}"))
        self._cursor_held = True
        self._trouble(error)
        return Outcome(self.pipeline.name, row.source_ref, row.number, OS.FAILED, reason, ref.target_id)

    def _complete(self, row: DocumentRow, ref: TargetRef, document: Document, plan: Plan) -> None:
        """``QuarantineError`` passes: the target refused what it found (and removed it);
        ``TransientError`` passes: it could not be finished now (the next run does it)."""
        try:
            self.target.complete(ref, document, plan)
        except (QuarantineError, TransientError):
            raise
        except (LedgerlinkError, ConnectionError_) as exc:
            # The document is in the target (and pushed in the ledger); say what is missing.
            reason = redact(str(exc))
            self._audit("complete", row.source_ref, ref.target_id, None, f"error: {reason}")
            self.rt.reporter.message(
                f"{row.source_ref}: adopted after a lost answer, but finishing it in the target failed "
                f"({reason}); check its tags there"
            )

    # -- after transfer -------------------------------------------------------------
    def _after_transfer(self, row: DocumentRow, document: Document, cursor: Cursor | None,
                        dry_run: bool) -> Outcome | None:
        changes: list[str] = []
        if row.payload and payload_hash(fingerprint(document)) != row.content_hash:
            try:
                old_document = Document.model_validate_json(row.payload)
                changes.append(describe_changes(fingerprint(old_document), fingerprint(document)))
            except ValueError:
                pass  # a stored copy this version cannot read: nothing to compare with
        became_paid = self.payments.unbooked(row, document)
        word = "export" if self.target.locks_exported else "transfer"
        text, state = None, OS.CHANGED
        if document.cancelled:  # never silent: the revenue is still booked in the target (or reversed now)
            text, state, failed = self.cancellations.after_transfer(row, document, word, dry_run)
            if text is None:
                return None  # its reversal's answer was lost: told once it is settled
            if failed is not None:
                if row.changed != text:
                    self.ledger.mark_changed(row, text, cursor=self._held(cursor))
                return failed
        elif changes:
            text = f"changed after {word}: " + "; ".join(changes)
        if dry_run:
            what = text if text is not None and row.changed != text else None
            what = what or ("would book the payment" if became_paid and not document.cancelled else None)
            return Outcome(self.pipeline.name, row.source_ref, row.number, OS.PLANNED, what, row.target_id) if what else None
        outcome: Outcome | None = None
        if became_paid and not document.cancelled:
            # Money that arrived is booked whatever else changed: on the copy the target
            # holds (the change itself waits for a person), with the source's payments.
            outcome = self.payments.book(row, self._as_transferred(row, document))
        if text is not None and row.changed != text:
            self.ledger.mark_changed(row, text, cursor=self._held(cursor))
            if outcome is not None:
                self._report(outcome)
            return Outcome(self.pipeline.name, row.source_ref, row.number, state, text, row.target_id,
                           gross=document.total_gross if state == OS.REVERSED else None,
                           currency=document.currency if state == OS.REVERSED else None)
        if outcome is None:
            self._move_cursor(cursor, dry_run)
        return outcome

    @staticmethod
    def _as_transferred(row: DocumentRow, document: Document) -> Document:
        """The document as the target holds it (the ledger's copy), with the source's
        payments now; the source's document when the copy cannot be read."""
        if row.payload:
            with suppress(ValueError):
                stored = Document.model_validate_json(row.payload)
                return stored.model_copy(update={"payments": document.payments, "payment_date": document.payment_date})
        return document

    def _process_derived(self, document: SourceItem, dry_run: bool) -> Outcome | None:
        """A document the run writes besides the listed one (a reversal, or the cancelled
        original of a source's credit note): the same protocol, the cursor untouched."""
        return self.process(document, dry_run=dry_run, update_cursor=False)

    # -- audit ---------------------------------------------------------------------------
    def _audit_row(self, action: str, source_ref: str | None, target_ref: str | None, payload: Any,
                   outcome: str) -> AuditRow:
        row: AuditRow = fresh(AuditRow, pipeline=self.pipeline.name, target_connection=self.pipeline.target,
                              source_ref=source_ref, action=action, target_ref=target_ref,
                              payload_hash=payload_hash(payload) if payload else None, outcome=redact(outcome)[:1000])
        return row

    def _audit(self, action: str, source_ref: str | None, target_ref: str | None, payload: Any, outcome: str) -> None:
        self.ledger.add_audit(self._audit_row(action, source_ref, target_ref, payload, outcome))


__all__ = ["Outcome", "PipelineRunner", "Reporter", "RunResult", "Runtime", "SimulatedCrash"]
