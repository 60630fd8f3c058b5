"""What one command runs with: config, ledger, plugins, connectors, and what it reports.

The :class:`Runtime` builds connectors for the configured connections (with the
HTTP client factory, transports for in-process sandboxes and test crash points),
keeps one contact index per target connection, and hands progress to a
:class:`Reporter`. :class:`Outcome` and :class:`RunResult` are what a run reports
for each document and in all.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, cast

from ._config import Config
from ._connectors import ConnectorContext, Source, Target
from ._errors import ConfigError
from ._http import make_http_client, redact
from ._ledger import Ledger
from ._locks import PipelineLocks
from ._matching import ContactIndex
from ._plugins import PluginManager, get_plugin_manager
from ._records import Contact
from ._states import OutcomeState

log = logging.getLogger("ledgerlink.engine")


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
    state: str
    """An :class:`OutcomeState` value."""
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
    needs_config: bool = False
    """The run stopped on the config, the credentials or the ledger (exit 2)."""
    busy: bool = False
    """Another command held the pipeline's lock: nothing was done (exit 75)."""
    deferred: bool = False
    """A vendor of the pipeline asked to wait longer than a run waits (Retry-After, remembered
    in the ledger): the pipeline was left alone until then (exit 75)."""
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

    def report(self, reporter: Reporter, outcome: Outcome | None) -> None:
        """Add an outcome (if any) and hand it to the reporter."""
        if outcome is not None:
            self.add(outcome)
            reporter.document(outcome)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict(self._counts)
        for outcome in self.outcomes:
            out[outcome.state] = out.get(outcome.state, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        counts = self.counts()
        return self.error is None and not any(
            counts.get(state) for state in (OutcomeState.FAILED, OutcomeState.QUARANTINED, OutcomeState.CANCELLED))


class Reporter:
    """Receives progress from the engine. The CLI prints; tests collect."""

    def document(self, outcome: Outcome) -> None:
        pass

    def message(self, text: str) -> None:
        log.info(text)

    def wait(self, text: str) -> None:
        self.message(text)

    def tick(self, pipeline: str) -> None:
        """One more item of long work that is not a document (progress only)."""


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
        lock_wait: float = 0.0,
    ) -> None:
        self.config = config
        # Vendor budgets shared with every other process on the same accounts when a
        # Redis is configured (LEDGERLINK_REDIS_URL); else each process spaces its own.
        from ._shared_limits import configured_url, install

        install(configured_url(getattr(getattr(config, "workers", None), "redis_url", None)))
        self.lock_wait = lock_wait
        """How long a command waits for another one working on the same pipeline (s)."""
        self._locks: PipelineLocks | None = None
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
        self.backed_off: dict[str, datetime] = {}
        """Connections whose vendor asked in this command to wait longer than a run waits."""

    @property
    def locks(self) -> PipelineLocks:
        """The pipeline locks of this runtime's ledger (see ``_locks``)."""
        with self._index_lock:
            if self._locks is None:
                self._locks = PipelineLocks(self.ledger)
            return self._locks

    def checkpoint(self, name: str) -> None:
        if name in self.crash_points:
            raise SimulatedCrash(name)

    def context(self, connection: str) -> ConnectorContext:
        factory = partial(make_http_client, on_wait=self.reporter.wait,
                          on_backoff=partial(self.note_backoff, connection), **self.http_options)
        return ConnectorContext(
            connection=connection,
            http_factory=factory,
            logger=logging.getLogger(f"ledgerlink.{connection}"),
            transport=self.transports.get(connection),
        )

    def note_backoff(self, connection: str, seconds: float, message: str) -> None:
        """The vendor asked ``connection`` to wait ``seconds`` (Retry-After), longer than
        the HTTP client waits: remembered in the ledger (the next run waits or skips the
        pipelines using it until then) and here (this run stops working on them)."""
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        with self._index_lock:
            self.backed_off[connection] = until
        self.ledger.set_backoff(connection, until, redact(message)[:1000])

    def connector(self, name: str) -> Any:
        conn = self.config.connections[name]
        return conn.factory(conn.settings, self.context(name))

    def source(self, name: str) -> Source:
        return cast(Source, self.connector(name))  # the config checked the connection's kind

    def target(self, name: str) -> Target:
        return cast(Target, self.connector(name))

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


__all__ = ["Outcome", "Reporter", "RunResult", "Runtime", "SimulatedCrash"]
