"""Pipelines on Celery workers: ``ledgerlink worker`` and ``ledgerlink scheduler`` (issue 21).

For operators who run Celery next to PostgreSQL already: ledgerlink does not invent
its own queue. Tasks (queue ``ledgerlink``, JSON only):

- ``ledgerlink.run_pipeline(tenant, pipeline)``: one run, exactly ``ledgerlink run``
  (settle pending writes through ``find_document``, retry vendor failures, transfer
  what is new);
- ``ledgerlink.push_documents(tenant, pipeline, refs)``: those documents of the
  source (an inbox's, say) now;
- ``ledgerlink.sync_status(tenant, pipeline)``;
- ``ledgerlink.dispatch()``: sent by the scheduler every ``TICK`` seconds; queues each
  enabled pipeline of every tenant whose moment has come: every ``interval`` seconds
  at an offset of its own (a hash of its name), so a thousand pipelines with one
  interval are spread over it instead of all starting at :00.

``tenant`` is a tenant of ``ledgerlink serve`` (its config from the tenant store) or
``""`` for the config file the worker was started with.

Never two runs of one pipeline at once: every task takes the pipeline's lock
(PostgreSQL advisory lock, the one ``ledgerlink run`` takes) without waiting; a task
that finds it taken ends at once, logged and counted as "already running", and is not
retried (the next dispatch queues it again).

A lost worker: tasks are acknowledged after they finished (``acks_late``) and
requeued when the worker died (``reject_on_worker_lost``); the task run again settles
what the dead one left pending, as ``run`` does after a crash. A poison task (one that
fails the same way each time, or kills its worker each time) is counted per task id
in the ledger's database (``worker_deliveries``); after ``max_deliveries`` it is given
up and recorded as a run with outcome ``error: ...`` in the ledger, so the queue
moves on.

The ledger must be PostgreSQL: SQLite cannot be shared by processes on several hosts
and serialises writers; it is refused with one line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._config import Config, PipelineConfig, _redact_url, load_config
from ._errors import ConfigError, LedgerlinkError
from ._http import redact
from ._schema import create_tables

log = logging.getLogger("ledgerlink.worker")

QUEUE = "ledgerlink"
BROKER_ENV = "LEDGERLINK_BROKER_URL"
CONFIG_ENV = "LEDGERLINK_WORKER_CONFIG"
TICK = 15.0
"""Seconds between the scheduler's dispatches (a pipeline's interval is at least 10 s)."""
RETRY_BACKOFF = (5, 30, 120, 300)
"""Seconds before a task that failed unexpectedly runs again (then the last, repeated)."""


# -- where things come from ----------------------------------------------------------------
def broker_url(config: Config) -> str:
    """The broker of ``config`` (``[workers] broker_url``), else ``$LEDGERLINK_BROKER_URL``."""
    url = config.workers.broker_url or os.environ.get(BROKER_ENV)
    if not url:
        raise ConfigError(f"no Celery broker: set [workers] broker_url in {config.path} or {BROKER_ENV} "
                          "(amqp://user:password@host/ for RabbitMQ, redis://host:6379/0 for Redis)")
    if not url.startswith(("amqp://", "amqps://", "pyamqp://", "redis://", "rediss://")):
        raise ConfigError(f"the Celery broker URL {_redact_url(url)} is neither amqp:// (RabbitMQ) nor redis:// (Redis)")
    return url


def require_postgresql(config: Config) -> None:
    if not config.ledger_url.startswith(("postgresql", "postgres")):
        raise ConfigError(f"workers need a PostgreSQL ledger ([ledger] url = \"postgresql+psycopg://...\" in "
                          f"{config.path}); {config.ledger_url.split(':', 1)[0]} cannot be shared by worker "
                          "processes and hosts")


def offset(name: str, interval: int) -> float:
    """Where in its interval a pipeline runs (stable for a name, spread over names)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (interval * 1000) / 1000


def due(name: str, interval: int, after: float, until: float) -> bool:
    """Whether a pipeline's moment (``k * interval + offset``) falls in ``(after, until]``."""
    shift = offset(name, interval)
    return int((until - shift) // interval) > int((after - shift) // interval)


# -- one worker process's view of the tenants ------------------------------------------------
class WorkerContext:
    """Runtimes for the default tenant (the config file) and the service's tenants."""

    def __init__(self, config_path: str | Path) -> None:
        self.config = load_config(Path(config_path))
        require_postgresql(self.config)
        self._default: Any = None
        self._service: Any = None
        self._lock = threading.Lock()
        self._deliveries: Any = None

    def runtime(self, tenant: str) -> Any:
        from ._runtime import Reporter, Runtime

        if not tenant:
            with self._lock:
                if self._default is None:
                    self._default = Runtime(self.config, reporter=Reporter(), lock_wait=0.0)
                return self._default
        return self.service().runtime(tenant)

    def service(self) -> Any:
        with self._lock:
            if self._service is None:
                from ._service import Service

                self._service = Service(self.config.ledger_url, workers=1, start=False)
            return self._service

    def pipeline(self, tenant: str, name: str) -> tuple[Any, PipelineConfig]:
        if not tenant:
            runtime = self.runtime("")
            return runtime, runtime.config.pipeline(name)
        runtime, pipeline = self.service().pipeline(tenant, name)
        return runtime, pipeline

    def tenants(self) -> list[str]:
        """``""`` (the config file) and every tenant of the service's store."""
        try:
            names = self.service().tenants.names()
        except LedgerlinkError as exc:
            log.error("the tenant store cannot be read: %s", redact(str(exc)))
            names = []
        return ["", *names]

    def deliveries(self) -> Deliveries:
        with self._lock:
            if self._deliveries is None:
                self._deliveries = Deliveries(self.config.ledger_url)
            return self._deliveries  # type: ignore[no-any-return]


class Deliveries:
    """How often each task was delivered without finishing (table ``worker_deliveries``
    beside the ledger's): the bound on poison tasks, whichever broker redelivers them."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

        from ._inbox import engine_for

        self.engine = engine_for(url)
        metadata = MetaData()
        self.table = Table(
            "worker_deliveries", metadata,
            Column("task_id", String(64), primary_key=True),
            Column("attempts", Integer, nullable=False),
            Column("last_reason", Text),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        create_tables(self.engine, metadata)

    def count(self, task_id: str) -> int:
        """One more delivery of ``task_id``; how many so far (this one included)."""
        from sqlalchemy.dialects.postgresql import insert

        now = datetime.now(UTC)
        statement = insert(self.table).values(task_id=task_id, attempts=1, updated_at=now)
        with self.engine.begin() as conn:
            return int(conn.execute(statement.on_conflict_do_update(
                index_elements=["task_id"], set_={"attempts": self.table.c.attempts + 1, "updated_at": now},
            ).returning(self.table.c.attempts)).scalar_one())

    def reason(self, task_id: str, reason: str) -> None:
        from sqlalchemy import update

        with self.engine.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.task_id == task_id).values(last_reason=reason[:2000]))

    def last_reason(self, task_id: str) -> str | None:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            value = conn.execute(select(self.table.c.last_reason).where(self.table.c.task_id == task_id)).scalar()
        return None if value is None else str(value)

    def done(self, task_id: str) -> None:
        from sqlalchemy import delete

        with self.engine.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.task_id == task_id))


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def context() -> WorkerContext:
    """This process's context, made on first use from ``$LEDGERLINK_WORKER_CONFIG``."""
    global _context
    with _context_lock:
        if _context is None:
            path = os.environ.get(CONFIG_ENV)
            if not path:
                raise ConfigError(f"{CONFIG_ENV} names no config file (start workers with `ledgerlink worker`)")
            _context = WorkerContext(path)
        return _context


# -- what a task does --------------------------------------------------------------------------
@dataclass
class TaskOutcome:
    """What one task did, as the task's result and its log line."""

    tenant: str
    pipeline: str
    state: str
    """done, busy (already running), gone (no such tenant or pipeline), given_up"""
    counts: dict[str, int]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "pipeline": self.pipeline, "state": self.state, "counts": self.counts,
                "error": self.error}


def perform(kind: str, tenant: str, pipeline_name: str, refs: list[str] | None = None) -> TaskOutcome:
    """Run one task's work in this process (the Celery task bodies call this)."""
    from ._locks import PipelineBusy
    from ._runner import PipelineRunner
    from ._service import NotFound

    ctx = context()
    try:
        runtime, pipeline = ctx.pipeline(tenant, pipeline_name)
    except (NotFound, ConfigError) as exc:
        log.warning("%s: %s", _label(tenant, pipeline_name), redact(str(exc)))
        return TaskOutcome(tenant, pipeline_name, "gone", {}, redact(str(exc)))
    started = time.monotonic()
    runner = PipelineRunner(runtime, pipeline)
    try:
        if kind == "sync_status":
            from ._operations import sync_status

            with runtime.locks.hold(pipeline.name, "sync-status", wait=0.0):
                changes = sync_status(runtime, pipeline)
            counts = {"status_changes": len(changes)}
            error = None
        else:
            documents = None
            if kind == "push_documents":
                from ._pipelines import iter_documents_by_ids

                documents = iter_documents_by_ids(runner.source, list(refs or []))
            result = runner.run(command="worker", documents=documents, use_cursor=documents is None,
                                sync_members=documents is None, lock_wait=0.0)
            counts = {str(k): int(v) for k, v in result.counts().items()}
            error = redact(result.error) if result.error else None
    except PipelineBusy as exc:
        log.info("%s: already running elsewhere; this task ends", _label(tenant, pipeline_name))
        # Recorded like any run (status shows it), so "did it run?" has an answer.
        run = runtime.ledger.start_run(pipeline.name, f"worker {kind}")
        runtime.ledger.finish_run(run, {}, f"skipped: already running ({redact(str(exc))})"[:2000])
        from ._metrics import TASKS

        TASKS.labels(kind=kind, state="busy").inc()
        return TaskOutcome(tenant, pipeline_name, "busy", {})
    finally:
        runner.close()
    from ._metrics import DOCUMENTS, TASK_SECONDS, TASKS

    for state, n in counts.items():
        DOCUMENTS.labels(outcome=state).inc(n)
    TASKS.labels(kind=kind, state="done").inc()
    TASK_SECONDS.labels(kind=kind).observe(time.monotonic() - started)
    if error:
        log.warning("%s: %s", _label(tenant, pipeline_name), error)
    return TaskOutcome(tenant, pipeline_name, "done", counts, error)


def give_up(kind: str, tenant: str, pipeline_name: str, attempts: int, reason: str | None) -> TaskOutcome:
    """Record a poison task in the ledger as a run that ended in an error, and end it."""
    why = f"gave up after {attempts} deliveries of the {kind} task: {reason or 'the worker died each time'}"
    try:
        runtime, pipeline = context().pipeline(tenant, pipeline_name)
        run = runtime.ledger.start_run(pipeline.name, "worker")
        runtime.ledger.finish_run(run, {}, f"error: {why}"[:2000])
    except LedgerlinkError as exc:
        log.error("%s: %s (and it could not be recorded: %s)", _label(tenant, pipeline_name), why, redact(str(exc)))
    from ._metrics import TASKS

    TASKS.labels(kind=kind, state="given_up").inc()
    log.error("%s: %s", _label(tenant, pipeline_name), why)
    return TaskOutcome(tenant, pipeline_name, "given_up", {}, why)


def _label(tenant: str, pipeline: str) -> str:
    return f"{tenant}/{pipeline}" if tenant else pipeline


def dispatch(after: float, until: float) -> list[tuple[str, str]]:
    """The (tenant, pipeline) pairs whose moment falls in ``(after, until]``."""
    ctx = context()
    found = []
    for tenant in ctx.tenants():
        try:
            config = ctx.runtime(tenant).config
        except LedgerlinkError as exc:
            log.error("tenant %s: %s", tenant or "(config file)", redact(str(exc)))
            continue
        for pipeline in config.pipelines:
            if pipeline.enabled and due(pipeline.name, pipeline.interval, after, until):
                name = pipeline.name.split(":", 2)[2] if tenant else pipeline.name
                found.append((tenant, name))
    return found


# -- the Celery app ----------------------------------------------------------------------------
def make_app(broker: str, *, max_deliveries: int = 5, queue: str = QUEUE) -> Any:
    """The Celery app of ledgerlink's tasks on ``broker``, its queue ``queue``."""
    from celery import Celery
    from kombu.entity import Exchange, Queue

    app = Celery("ledgerlink", broker=broker, set_as_current=False)
    app.conf.update(
        # Declared by whoever sends too: a task sent before any worker ever started
        # waits in the queue instead of being dropped by an exchange with no queue.
        task_queues=[Queue(queue, Exchange(queue, type="direct"),  # type: ignore[no-untyped-call]
                           routing_key=queue, durable=True)],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # Redis redelivers an unacknowledged task after the visibility timeout: longer
        # than any run, so a slow run is not started twice (the lock would stop it anyway).
        broker_transport_options={"visibility_timeout": 3600},
        beat_schedule={"ledgerlink-dispatch": {"task": "ledgerlink.dispatch", "schedule": TICK}},
    )

    from ._runtime import SimulatedCrash

    def body(task: Any, kind: str, tenant: str, pipeline: str, refs: list[str] | None = None) -> dict[str, Any]:
        task_id = str(task.request.id or f"{kind}:{tenant}:{pipeline}")
        try:
            deliveries = context().deliveries()
            attempts = deliveries.count(task_id)
        except Exception as exc:  # noqa: BLE001 - the ledger's database is away: the task waits, never lost
            log.error("%s: the delivery count cannot be kept (%s); the task runs again later",
                      _label(tenant, pipeline), redact(str(exc)).splitlines()[0][:300])
            raise task.retry(countdown=RETRY_BACKOFF[1], max_retries=None) from None
        if attempts > max_deliveries:
            outcome = give_up(kind, tenant, pipeline, attempts - 1, deliveries.last_reason(task_id))
            deliveries.done(task_id)
            return outcome.as_dict()
        try:
            outcome = perform(kind, tenant, pipeline, refs)
        except SimulatedCrash:
            # A test's crash point: the process dies here, as on SIGKILL (the broker
            # redelivers the task; the delivery count above bounds it).
            os._exit(137)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure: retried with backoff, then given up
            reason = f"{type(exc).__name__}: {redact(str(exc))}".splitlines()[0][:500]
            deliveries.reason(task_id, reason)
            log.exception("%s: %s (delivery %d of %d)", _label(tenant, pipeline), reason, attempts, max_deliveries)
            if attempts >= max_deliveries:
                outcome = give_up(kind, tenant, pipeline, attempts, reason)
                deliveries.done(task_id)
                return outcome.as_dict()
            countdown = RETRY_BACKOFF[min(attempts - 1, len(RETRY_BACKOFF) - 1)]
            raise task.retry(countdown=countdown, max_retries=None) from None
        deliveries.done(task_id)
        return outcome.as_dict()

    @app.task(name="ledgerlink.run_pipeline", bind=True)  # type: ignore[untyped-decorator]
    def run_pipeline(self: Any, tenant: str, pipeline: str) -> dict[str, Any]:
        return body(self, "run_pipeline", tenant, pipeline)

    @app.task(name="ledgerlink.push_documents", bind=True)  # type: ignore[untyped-decorator]
    def push_documents(self: Any, tenant: str, pipeline: str, refs: list[str]) -> dict[str, Any]:
        return body(self, "push_documents", tenant, pipeline, refs)

    @app.task(name="ledgerlink.sync_status", bind=True)  # type: ignore[untyped-decorator]
    def sync_status_task(self: Any, tenant: str, pipeline: str) -> dict[str, Any]:
        return body(self, "sync_status", tenant, pipeline)

    last = {"at": time.time()}

    @app.task(name="ledgerlink.dispatch", bind=True)  # type: ignore[untyped-decorator]
    def dispatch_task(self: Any) -> int:
        sent_at = _sent_at(self) or time.time()
        after = max(last["at"], sent_at - 2 * TICK)
        last["at"] = sent_at
        due_now = dispatch(after, sent_at)
        for tenant, pipeline in due_now:
            run_pipeline.apply_async((tenant, pipeline), queue=queue)
        return len(due_now)

    return app


def _sent_at(task: Any) -> float | None:
    """When the scheduler sent the dispatch (so a late worker does not skip or double a moment)."""
    eta = getattr(task.request, "eta", None)
    if isinstance(eta, str):
        try:
            return datetime.fromisoformat(eta).timestamp()
        except ValueError:
            return None
    return None


class CeleryWorkers:
    """What ``ledgerlink serve`` hands its work to when a broker is configured: the same
    ``submit`` as its in-process pool, sending tasks instead. The service's tenant
    ``default`` (its config file) is the workers' config-file tenant ``""``: start the
    workers with the same config file."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def submit(self, job: Any) -> None:
        tenant = "" if job.tenant == "default" else job.tenant
        if job.retry:
            send(self.app, "push_documents", tenant, job.pipeline, list(job.retry))
        send(self.app, "run_pipeline", tenant, job.pipeline)

    def busy(self) -> int:
        return 0  # the work is on the workers: see their metrics (ledgerlink_queue_depth)

    def wait_idle(self, timeout: float) -> bool:
        return True

    def stop(self) -> None:
        return None


def celery_workers(config: Config | None) -> CeleryWorkers | None:
    """The Celery hand-over of ``ledgerlink serve`` when a broker is configured, else None."""
    url = (config.workers.broker_url if config is not None else None) or os.environ.get(BROKER_ENV)
    if not url:
        return None
    if config is not None:
        url = broker_url(config)
    queue = config.workers.queue if config is not None else QUEUE
    return CeleryWorkers(make_app(url, queue=queue))


def send(app: Any, kind: str, tenant: str, pipeline: str, refs: list[str] | None = None) -> None:
    """Queue a task (``ledgerlink serve`` hands its work over this way when a broker is set)."""
    args: tuple[Any, ...] = (tenant, pipeline) if refs is None else (tenant, pipeline, list(refs))
    app.send_task(f"ledgerlink.{kind}", args=args, queue=app.conf.task_default_queue)


# -- the commands ------------------------------------------------------------------------------
def start_worker(config: Config, *, broker: str | None = None, concurrency: int | None = None,
                 metrics_port: int | None = None, name: str | None = None) -> None:
    """``ledgerlink worker``: a Celery worker of the ``ledgerlink`` queue (threads: the
    work waits on HTTP and the database; one process holds one context and one metrics
    registry). Returns when the worker stops (SIGTERM: after its running tasks)."""
    require_postgresql(config)
    url = broker or broker_url(config)
    os.environ[CONFIG_ENV] = str(Path(config.path).resolve())
    _prepare(context())  # the config, ledger and tables are ready before the first task arrives
    queue = config.workers.queue
    app = make_app(url, max_deliveries=config.workers.max_deliveries, queue=queue)
    port = metrics_port or config.workers.metrics_port
    if port:
        from ._metrics import serve, watch_queue

        watch_queue(app, queue)
        serve(port)
    workers = concurrency or config.workers.concurrency
    node = name or f"ledgerlink-{os.getpid()}@%h"
    log.info("worker %s on %s, %d at once", node, _redact_url(url), workers)
    app.worker_main(["worker", "--loglevel=INFO", f"--concurrency={workers}", "--pool=threads", "-Q", queue,
                     "-n", node, "--without-gossip", "--without-mingle"])


def _prepare(ctx: WorkerContext) -> None:
    """Create the worker's and the service's tables now: workers started at the same
    moment race to create them (PostgreSQL refuses the loser's CREATE TABLE), so a
    loser tries again once the winner's tables exist."""
    for attempt in range(5):
        try:
            ctx.deliveries()
            ctx.tenants()
            return
        except Exception as exc:  # noqa: BLE001 - IntegrityError/ProgrammingError of the CREATE race
            if attempt == 4:
                raise
            log.info("tables being created by another worker (%s); again", type(exc).__name__)
            with ctx._lock:
                ctx._deliveries = None
                ctx._service = None
            time.sleep(0.2 * (attempt + 1))


def start_scheduler(config: Config, *, broker: str | None = None, schedule_file: str | None = None) -> None:
    """``ledgerlink scheduler``: Celery beat sending ``ledgerlink.dispatch`` every ``TICK``
    seconds; the dispatch (on a worker) queues each pipeline at its own moment."""
    require_postgresql(config)
    url = broker or broker_url(config)
    os.environ[CONFIG_ENV] = str(Path(config.path).resolve())
    app = make_app(url, max_deliveries=config.workers.max_deliveries, queue=config.workers.queue)
    path = schedule_file or str(Path(config.path).resolve().with_name(".ledgerlink-beat-schedule"))
    log.info("scheduler on %s: dispatch every %g s (schedule state in %s)", _redact_url(url), TICK, path)
    app.start(["beat", "--loglevel=INFO", "-s", path])


def tenants_status(ledger_url: str) -> list[dict[str, Any]]:
    """Per tenant (``""``: the config file's pipelines): pipelines, counts by state, the
    last run (when, outcome) and the oldest pending document."""
    from sqlalchemy import text

    from ._ledger import Ledger

    ledger = Ledger(ledger_url)
    tenants: dict[str, dict[str, Any]] = {}

    def entry(pipeline: str) -> dict[str, Any]:
        tenant = pipeline.split(":", 2)[1] if pipeline.startswith("tenant:") and pipeline.count(":") >= 2 else ""
        return tenants.setdefault(tenant, {"tenant": tenant, "pipelines": set(), "counts": {}, "last_run": None,
                                           "last_outcome": None, "oldest_pending": None})

    with ledger.engine.connect() as conn:
        for pipeline, state, count in conn.execute(text(
                "SELECT pipeline, state, COUNT(*) FROM documents GROUP BY pipeline, state")):
            item = entry(pipeline)
            item["pipelines"].add(pipeline)
            item["counts"][state] = item["counts"].get(state, 0) + int(count)
        for pipeline, oldest in conn.execute(text(
                "SELECT pipeline, MIN(updated_at) FROM documents WHERE state = 'pending' GROUP BY pipeline")):
            item = entry(pipeline)
            oldest = _aware(oldest)
            if item["oldest_pending"] is None or oldest < item["oldest_pending"]:
                item["oldest_pending"] = oldest
    for pipeline, run in ledger.last_runs().items():
        item = entry(pipeline)
        item["pipelines"].add(pipeline)
        at = _aware(run.finished_at or run.started_at)
        if item["last_run"] is None or at > item["last_run"]:
            item["last_run"], item["last_outcome"] = at, run.outcome or "running"
    out = []
    for tenant in sorted(tenants):
        item = tenants[tenant]
        out.append({**item, "pipelines": len(item["pipelines"]),
                    "last_run": item["last_run"].isoformat() if item["last_run"] else None,
                    "oldest_pending": item["oldest_pending"].isoformat() if item["oldest_pending"] else None})
    return out


def _aware(moment: Any) -> datetime:
    """A timestamp from the database as an aware datetime (SQLite gives naive UTC, or text)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # type: ignore[no-any-return]


__all__ = ["QUEUE", "TICK", "CeleryWorkers", "celery_workers", "TaskOutcome", "WorkerContext", "broker_url", "dispatch", "due", "make_app",
           "offset", "perform", "require_postgresql", "send", "start_scheduler", "start_worker", "tenants_status"]
