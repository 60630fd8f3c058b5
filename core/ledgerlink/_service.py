"""The engine behind ``ledgerlink serve``: tenants' runtimes, the inbox, the worker pool.

Everything here is plain Python (no HTTP): ``_server`` is the FastAPI face of it.

Background transfer is the same ``PipelineRunner.run`` as ``ledgerlink run``: a
document posted to an inbox is stored, then its pipeline is queued; a worker of a
bounded pool (``workers`` threads) runs the pipeline from its cursor, which settles
pending writes first, retries what failed for the vendor's reasons, then takes the
new documents. At start-up every tenant's pipeline is queued once, so what a killed
process left (documents received but not transferred, writes whose answer was never
recorded) is settled exactly as ``run`` would.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._config import Config, PipelineConfig
from ._errors import ConfigError, LedgerlinkError
from ._events import Outbox, Sender
from ._http import redact
from ._ledger import Ledger
from ._plugins import PluginManager, get_plugin_manager
from ._records import Customer, Document
from ._runner import PipelineRunner
from ._runtime import Outcome, Reporter, Runtime, SimulatedCrash
from ._secrets_store import SecretBox
from ._states import LinkState, OutcomeState, payment_refusal
from ._tenants import DEFAULT_TENANT, TenantStore, scoped, unscoped

log = logging.getLogger("ledgerlink.service")
KILLED = 137
"""The exit status of a process that a test's crash point (``LEDGERLINK_CRASH_AT``) ends."""
LOCK_WAIT = 600.0
"""How long a worker waits for another command working on the same pipeline (s)."""


class NotFound(LedgerlinkError):
    """No such tenant, pipeline, connection or document (404)."""


class Conflict(LedgerlinkError):
    """The call does not fit the resource (409): documents posted to a pipeline whose source is no inbox."""


class _LogReporter(Reporter):
    def message(self, text: str) -> None:
        log.info(redact(text))


class _ServiceReporter(_LogReporter):
    """Logs, and records each document's outcome as an event for the tenant's webhook.
    Called after the ledger's commit; a failure here is logged, never raised into the run."""

    def __init__(self, tenant: str, outbox: Outbox) -> None:
        self.tenant, self.outbox = tenant, outbox

    def document(self, outcome: Outcome) -> None:
        if outcome.state == OutcomeState.PLANNED:
            return
        try:
            self.outbox.record(self.tenant, unscoped(self.tenant, outcome.pipeline), [{
                "id": outcome.source_ref, "event": str(outcome.state), "number": outcome.number,
                "reason": unscoped(self.tenant, outcome.reason) if outcome.reason else None,
                "target": {"id": outcome.target_ref} if outcome.target_ref else None}])
        except Exception as exc:  # an event must never fail a transfer
            log.error("%s: event for %s not recorded: %s: %s", self.tenant, outcome.source_ref, type(exc).__name__,
                      redact(str(exc)))


@dataclass
class Job:
    tenant: str
    pipeline: str
    """The tenant's own pipeline name (unscoped)."""
    retry: tuple[str, ...] = ()
    """Source refs to try again now (``POST .../documents/{id}/retry``)."""


@dataclass
class Workers:
    """A bounded pool of threads running queued pipelines; each pipeline once at a time,
    queued again when documents arrive while it runs."""

    run: Callable[[Job], None]
    size: int = 4
    _queue: queue.Queue[Job | None] = field(default_factory=queue.Queue)
    _queued: set[tuple[str, str]] = field(default_factory=set)
    _running: set[tuple[str, str]] = field(default_factory=set)
    _again: dict[tuple[str, str], Job] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Condition = field(init=False)
    _threads: list[threading.Thread] = field(default_factory=list)
    handled: int = 0

    def __post_init__(self) -> None:
        self._idle = threading.Condition(self._guard)
        for index in range(max(1, self.size)):
            thread = threading.Thread(target=self._loop, daemon=True, name=f"ledgerlink-worker-{index}")
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Job) -> None:
        key = (job.tenant, job.pipeline)
        with self._guard:
            if key in self._running:
                earlier = self._again.get(key)
                self._again[key] = Job(job.tenant, job.pipeline, (earlier.retry if earlier else ()) + job.retry)
                return
            if key in self._queued and not job.retry:
                return
            self._queued.add(key)
        self._queue.put(job)

    def busy(self) -> int:
        with self._guard:
            return len(self._queued) + len(self._running) + len(self._again)

    def wait_idle(self, timeout: float) -> bool:
        """For tests and shutdown: until nothing is queued or running (False: timed out)."""
        with self._idle:
            return self._idle.wait_for(lambda: not (self._queued or self._running or self._again), timeout=timeout)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            key = (job.tenant, job.pipeline)
            with self._guard:
                if key in self._running:  # the same pipeline is running in another worker
                    earlier = self._again.get(key)
                    self._again[key] = Job(job.tenant, job.pipeline, (earlier.retry if earlier else ()) + job.retry)
                    self._queued.discard(key)
                    continue
                self._queued.discard(key)
                self._running.add(key)
            try:
                self.run(job)
            except SimulatedCrash:  # tests: the process dies here, as under SIGKILL
                os._exit(KILLED)
            except Exception as exc:  # the pool must keep running
                log.error("%s/%s: internal error %s: %s", job.tenant, job.pipeline, type(exc).__name__, redact(str(exc)))
            finally:
                with self._guard:
                    self.handled += 1
                    self._running.discard(key)
                    again = self._again.pop(key, None)
                    if again is not None:
                        self._queued.add(key)
                        self._queue.put(again)
                    self._idle.notify_all()


@dataclass
class MatchAnswer:
    source_id: str
    name: str
    outcome: str
    """linked, already_linked, ambiguous, no_match"""
    customer_number: str | None = None
    matcher: str | None = None
    candidates: list[str] = field(default_factory=list)


class Service:
    """Tenants, their runtimes and the worker pool, over one database (the ledger's)."""

    def __init__(self, url: str, *, box: SecretBox | None = None, plugins: PluginManager | None = None,
                 workers: int = 4, transports: dict[str, Any] | None = None, start: bool = True,
                 event_backoff: float = 2.0, event_transport: Any = None, default: Config | None = None) -> None:
        self.url = url
        self.default = default
        """The config file the service was started with (``ledgerlink -c FILE serve``): the tenant
        ``default``, with the file's own names, on the same ledger as the CLI (``url`` is its ledger)."""
        if default is not None and default.ledger_url != url:
            raise ConfigError(f"the service's database is the config's ledger ({redact(default.ledger_url)}); "
                              f"leave --ledger out or name that one")
        self.ledger = Ledger(url)
        self.plugins = plugins or get_plugin_manager()
        self.box = box or SecretBox()
        self.tenants = TenantStore(url, self.box, self.plugins.registry)
        self.transports = dict(transports or {})
        """httpx transports by the tenant's connection name (tests: in-process sandboxes)."""
        self._runtimes: dict[str, tuple[int, Runtime]] = {}
        self._guard = threading.Lock()
        self.events = Outbox(url, self.box)
        """The tenants' event webhooks and the outbox of their undelivered events."""
        self.workers = Workers(self._run_job, size=workers)
        self.sender = Sender(self.events, base=event_backoff, transport=event_transport)
        if start:
            self.recover()

    def close(self) -> None:
        self.workers.stop()
        self.sender.stop()

    def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret (tenants' connections, event signing secrets) with the first key."""
        return self.tenants.rotate() + self.events.rotate()

    def recover(self) -> int:
        """Queue every pipeline of every tenant once (what a killed process left is settled
        as `run` settles it); the number queued."""
        count = 0
        for tenant in self.tenant_names():
            try:
                config = self.config(tenant)
            except LedgerlinkError as exc:
                log.error("tenant %s: %s", tenant, redact(str(exc)))
                continue
            for pipeline in config.pipelines:
                if pipeline.enabled:
                    self.workers.submit(Job(tenant, unscoped(tenant, pipeline.name)))
                    count += 1
        return count

    # -- tenants -----------------------------------------------------------------------
    def tenant_names(self) -> list[str]:
        """Every tenant: the default one (a config file) first, then the stored ones."""
        return ([DEFAULT_TENANT] if self.default is not None else []) + self.tenants.names()

    def exists(self, tenant: str) -> bool:
        if tenant == DEFAULT_TENANT:
            return self.default is not None
        return self.tenants.exists(tenant)

    def public(self, tenant: str) -> dict[str, Any]:
        """A tenant as the API shows it; the default one: its connections' plugins and its pipelines
        (the file holds the rest, secrets included: none of it is shown)."""
        if tenant != DEFAULT_TENANT:
            return self.tenants.public(tenant)
        config = self.config(tenant)
        return {"name": tenant, "version": 0,
                "connections": {name: {"plugin": c.plugin} for name, c in config.connections.items()},
                "pipelines": [{"name": p.name, "source": p.source, "target": p.target, "enabled": p.enabled}
                              for p in config.pipelines], "secrets_set": {}}

    def config(self, tenant: str) -> Config:
        if tenant == DEFAULT_TENANT:
            if self.default is None:
                raise NotFound(f"no tenant {tenant!r}")
            return self.default
        try:
            return self.tenants.config(tenant)
        except KeyError:
            raise NotFound(f"no tenant {tenant!r}") from None

    def runtime(self, tenant: str) -> Runtime:
        version = 0 if tenant == DEFAULT_TENANT and self.default is not None else self.tenants.version(tenant)
        if version is None:
            raise NotFound(f"no tenant {tenant!r}")
        with self._guard:
            cached = self._runtimes.get(tenant)
        if cached is not None and cached[0] == version:
            return cached[1]
        config = self.config(tenant)
        transports = {scoped(tenant, name): t for name, t in self.transports.items()}
        runtime = Runtime(config, ledger=self.ledger, plugins=self.plugins, transports=transports,
                          reporter=_ServiceReporter(tenant, self.events), lock_wait=LOCK_WAIT)
        with self._guard:
            self._runtimes[tenant] = (version, runtime)
        return runtime

    def put_tenant(self, tenant: str, body: Any) -> bool:
        config, created = self.tenants.put(tenant, body)
        for pipeline in config.pipelines:
            if pipeline.enabled:
                self.workers.submit(Job(tenant, unscoped(tenant, pipeline.name)))
        return created

    def delete_tenant(self, tenant: str) -> bool:
        with self._guard:
            self._runtimes.pop(tenant, None)
        self.events.delete_target(tenant)
        return self.tenants.delete(tenant)

    def pipeline(self, tenant: str, name: str) -> tuple[Runtime, PipelineConfig]:
        runtime = self.runtime(tenant)
        for pipeline in runtime.config.pipelines:
            if pipeline.name == scoped(tenant, name):
                return runtime, pipeline
        raise NotFound(f"tenant {tenant!r} has no pipeline {name!r}")

    # -- calls -------------------------------------------------------------------------
    def check(self, tenant: str, connection: str) -> tuple[bool, str]:
        """What `ledgerlink check` says of one connection: (ok, one line)."""
        runtime = self.runtime(tenant)
        name = scoped(tenant, connection)
        if name not in runtime.config.connections:
            raise NotFound(f"tenant {tenant!r} has no connection {connection!r}")
        try:
            connector = runtime.connector(name)
        except LedgerlinkError as exc:
            return False, unscoped(tenant, redact(str(exc)))
        try:
            return True, unscoped(tenant, redact(str(connector.check())))
        except LedgerlinkError as exc:
            return False, unscoped(tenant, redact(str(exc)))
        finally:
            connector.close()

    def inbox_of(self, runtime: Runtime, pipeline: PipelineConfig) -> Any:
        from ._inbox import InboxStore

        conn = runtime.config.connections[pipeline.source]
        if conn.plugin != "inbox":
            raise Conflict(f"the source of pipeline {pipeline.name!r} is {conn.plugin!r}, not an inbox: its documents "
                           "come from there")
        settings: Any = conn.settings
        return InboxStore(settings.database, settings.inbox)

    def receive(self, tenant: str, pipeline_name: str, documents: list[Document]) -> list[tuple[str, str]]:
        """Store documents in the pipeline's inbox (durably, before the caller answers), then
        queue the pipelines that read that inbox: [(id, new|same|changed)]."""
        runtime, pipeline = self.pipeline(tenant, pipeline_name)
        inbox = self.inbox_of(runtime, pipeline)
        answers = [(d.source_ref, inbox.put(d.source_ref, d.model_dump(mode="json", exclude={"cursor"})))
                   for d in documents]
        numbers = {d.source_ref: d.number for d in documents}
        try:
            self.events.record(tenant, pipeline_name, [{"id": ref, "event": "received", "number": numbers.get(ref),
                                                        "reason": None if state == "new" else "a changed body"}
                                                       for ref, state in answers if state != "same"])
        except Exception as exc:  # the documents are stored: an event must not fail their intake
            log.error("%s: received events not recorded: %s: %s", tenant, type(exc).__name__, redact(str(exc)))
        if any(state != "same" for _, state in answers):
            for other in runtime.config.pipelines:
                if other.source == pipeline.source and other.enabled:
                    self.workers.submit(Job(tenant, unscoped(tenant, other.name)))
        return answers

    def retry(self, tenant: str, pipeline_name: str, source_ref: str) -> None:
        runtime, pipeline = self.pipeline(tenant, pipeline_name)
        if runtime.ledger.document(pipeline.name, source_ref) is None and self._inbox_body(runtime, pipeline,
                                                                                            source_ref) is None:
            raise NotFound(f"pipeline {pipeline_name!r} has no document {source_ref!r}")
        self.workers.submit(Job(tenant, pipeline_name, (source_ref,)))

    def _inbox_body(self, runtime: Runtime, pipeline: PipelineConfig, source_ref: str) -> dict[str, Any] | None:
        try:
            inbox = self.inbox_of(runtime, pipeline)
        except Conflict:
            return None
        body: dict[str, Any] | None = inbox.get(source_ref)
        return body

    def _run_job(self, job: Job) -> None:
        try:
            runtime, pipeline = self.pipeline(job.tenant, job.pipeline)
        except NotFound:
            return  # the tenant or pipeline went away meanwhile
        runner = PipelineRunner(runtime, pipeline)
        try:
            if job.retry:
                documents = []
                for ref in dict.fromkeys(job.retry):
                    document = runner.source.document(ref)
                    row = runtime.ledger.document(pipeline.name, ref)
                    if document is None and row is not None and row.payload:
                        document = Document.model_validate_json(row.payload)
                    if document is not None:
                        documents.append(document)
                result = runner.run(command="retry", documents=documents, use_cursor=False, retry_failed=False,
                                    sync_members=False, lock_wait=LOCK_WAIT)
                if result.error:
                    log.warning("%s/%s retry: %s", job.tenant, job.pipeline, unscoped(job.tenant, result.error))
            result = runner.run(command="serve", sync_members=False, lock_wait=LOCK_WAIT)
            if result.error:
                log.warning("%s/%s: %s", job.tenant, job.pipeline, unscoped(job.tenant, result.error))
        finally:
            runner.close()

    def match_customers(self, tenant: str, pipeline_name: str, customers: list[Customer] | None,
                        dry_run: bool) -> list[MatchAnswer]:
        """Per customer: the target's customer number (linked, or already linked), the
        candidates when ambiguous, or none. Links made are kept (re-runs skip them)."""
        runtime, pipeline = self.pipeline(tenant, pipeline_name)
        runner = PipelineRunner(runtime, pipeline)
        try:
            listed = customers if customers is not None else list(runner.source.customers())
            answers: list[MatchAnswer] = []
            with runtime.locks.hold(pipeline.name, "match-customers", wait=LOCK_WAIT):
                index = runtime.contact_index(pipeline.target, pipeline.matchers, runner.target)
                for customer in listed:
                    link = runtime.ledger.link(pipeline.target, pipeline.links_scope, customer.source_id)
                    if link is not None and link.state == LinkState.LINKED:
                        answers.append(MatchAnswer(customer.source_id, customer.display_name, "already_linked",
                                                   link.target_customer_number or link.target_contact_id,
                                                   link.matched_by))
                        continue
                    match = index.match(customer)
                    if match is None:
                        answers.append(MatchAnswer(customer.source_id, customer.display_name, "no_match"))
                        continue
                    if match.ambiguous:
                        answers.append(MatchAnswer(
                            customer.source_id, customer.display_name, "ambiguous", matcher=match.matcher,
                            candidates=[f"{c.customer_number or c.target_id} {c.display_name}"
                                        for c in match.candidates]))
                        continue
                    contact = match.candidates[0]
                    answers.append(MatchAnswer(customer.source_id, customer.display_name, "linked",
                                               contact.customer_number or contact.target_id, match.matcher))
                    if not dry_run:
                        runtime.ledger.mark_linked(link, pipeline.target, pipeline.links_scope, customer.source_id,
                                                   contact, match.matcher)
            return answers
        finally:
            runner.close()

    # -- status ------------------------------------------------------------------------
    def documents(self, tenant: str, pipeline_name: str, *, state: str | None = None, since: datetime | None = None,
                  after: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
        """The transfer-status column: a page of documents and the cursor of the next page.

        An inbox pipeline lists every document received (``queued`` until the engine has
        taken it); another pipeline lists the ledger's documents."""
        from sqlalchemy import text

        runtime, pipeline = self.pipeline(tenant, pipeline_name)
        conn = runtime.config.connections[pipeline.source]
        params: dict[str, Any] = {"p": pipeline.name, "after": after, "limit": limit + 1}
        if conn.plugin == "inbox":
            params["inbox"] = getattr(conn.settings, "inbox", "")
            sql = ("SELECT i.id AS pos, i.source_ref AS ref, COALESCE(d.state, 'queued') AS state, d.reason, "
                   "d.number, d.target_id, d.target_number, d.status, d.changed, d.payment_state, "
                   "COALESCE(d.updated_at, i.changed_at) AS updated_at "
                   "FROM inbox i LEFT JOIN documents d ON d.pipeline = :p AND d.source_ref = i.source_ref "
                   "WHERE i.inbox = :inbox AND i.id > :after")
            state_col, time_col = "COALESCE(d.state, 'queued')", "COALESCE(d.updated_at, i.changed_at)"
            order = "i.id"
        else:
            sql = ("SELECT d.id AS pos, d.source_ref AS ref, d.state, d.reason, d.number, d.target_id, "
                   "d.target_number, d.status, d.changed, d.payment_state, d.updated_at FROM documents d "
                   "WHERE d.pipeline = :p AND d.id > :after")
            state_col, time_col, order = "d.state", "d.updated_at", "d.id"
        if state:
            sql += f" AND {state_col} = :state"
            params["state"] = state
        if since is not None:
            sql += f" AND {time_col} >= :since"
            params["since"] = since
        sql += f" ORDER BY {order} LIMIT :limit"
        with self.ledger.engine.connect() as db:
            rows = [dict(r._mapping) for r in db.execute(text(sql), params)]
        more = len(rows) > limit
        rows = rows[:limit]
        items = [self._summary(tenant, r) for r in rows]
        return items, (rows[-1]["pos"] if more and rows else None)

    @staticmethod
    def _summary(tenant: str, r: dict[str, Any]) -> dict[str, Any]:
        updated = r.get("updated_at")
        if isinstance(updated, str):
            updated = datetime.fromisoformat(updated)
        # A payment the target refused for a reason a person must fix outweighs the note.
        refused = payment_refusal(r["state"], r.get("payment_state"))
        reason = refused or r.get("reason")
        return {
            "id": r["ref"], "state": r["state"], "reason": unscoped(tenant, reason) if reason else None,
            "payment_refused": refused is not None,
            "number": r.get("number"),
            "target": ({"id": r["target_id"], "number": r.get("target_number")} if r.get("target_id") else None),
            "target_status": r.get("status"), "changed": r.get("changed"),
            "updated_at": updated.isoformat() if isinstance(updated, datetime) else None,
        }

    def document(self, tenant: str, pipeline_name: str, source_ref: str) -> dict[str, Any]:
        runtime, pipeline = self.pipeline(tenant, pipeline_name)
        row = runtime.ledger.document(pipeline.name, source_ref)
        body = self._inbox_body(runtime, pipeline, source_ref)
        if row is None and body is None:
            raise NotFound(f"pipeline {pipeline_name!r} has no document {source_ref!r}")
        if row is None:
            return {"id": source_ref, "state": "queued", "reason": None, "payment_refused": False,
                    "number": body.get("number") if body else None, "target": None, "target_status": None,
                    "changed": None, "updated_at": None, "history": []}
        summary = self._summary(tenant, {"ref": row.source_ref, "state": row.state, "reason": row.reason,
                                         "number": row.number, "target_id": row.target_id,
                                         "target_number": row.target_number, "status": row.status,
                                         "changed": row.changed, "payment_state": row.payment_state,
                                         "updated_at": row.updated_at})
        history: list[dict[str, Any]] = []
        for entry in runtime.ledger.audit(pipeline.name):
            if entry.source_ref == source_ref:
                history.append({"at": entry.at.isoformat(), "event": entry.action, "target_ref": entry.target_ref,
                                "outcome": unscoped(tenant, entry.outcome)})
        for status in runtime.ledger.status_history(pipeline.name, source_ref):
            history.append({"at": status.at.isoformat(), "event": "status", "target_ref": None,
                            "outcome": f"{status.old or '-'} -> {status.new}"})
        history.sort(key=lambda h: str(h["at"]))
        summary["history"] = history
        return summary


def parse_documents(body: Any) -> list[Document]:
    """One document or a list of them (or {"documents": [...]}) as canonical records."""
    if isinstance(body, dict) and "documents" in body and "source_ref" not in body:
        body = body["documents"]
    items = body if isinstance(body, list) else [body]
    documents = []
    for index, item in enumerate(items):
        try:
            documents.append(Document.model_validate(item))
        except ValueError as exc:
            errors = exc.errors() if hasattr(exc, "errors") else [{"loc": (), "msg": str(exc)}]
            first = errors[0]
            where = ".".join(str(p) for p in first["loc"])
            prefix = f"documents[{index}]" if isinstance(body, list) else "document"
            raise ConfigError(f"{prefix}{'.' + where if where else ''}: {first['msg']}") from None
    return documents


__all__ = ["Conflict", "Job", "MatchAnswer", "NotFound", "Service", "Workers", "parse_documents"]
