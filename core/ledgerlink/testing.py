"""The test kit for connector authors (a pytest plugin, loaded as ``-p ledgerlink.testing``
or automatically once ledgerlink is installed).

- :class:`FakeSource` and :class:`FakeTarget`: in-memory connectors (plugin names
  ``fake-source`` / ``fake-target``, registered when ``LEDGERLINK_FAKE_PLUGINS=1`` or
  through :data:`fake_plugin`).
- :func:`make_runtime`: a runtime for a config dict, with in-process transports.
- :class:`CliResult` and the ``cli`` fixture: run the real CLI, get exit code,
  output and parsed JSON.
- :class:`SourceContract`, :class:`TargetContract` and :class:`StatusMapperContract`:
  the behaviour every connector owes ledgerlink, as test classes a connector package
  subclasses in a few lines; each failure names the bug and the document::

      class TestSevdeskContract(TargetContract):
          plugin = "sevdesk"
          rules = [{"when": {}, "account": "8400"}]

          def make_sandbox(self):
              return SevdeskSandbox()

          def connection_settings(self, sandbox):
              return {"api_token": "${SEVDESK_TEST_TOKEN}"}, {"SEVDESK_TEST_TOKEN": sandbox.token}

          def stored_refs(self, sandbox):
              return [v["description"] for v in sandbox.state["vouchers"].values()]

  The suites drive a :class:`ledgerlink.Sandbox` or respx routes alike: a respx author
  returns any object holding the vendor's data from ``make_sandbox()`` and overrides
  ``vendor_transport(vendor)`` to return ``httpx.MockTransport(router.handler)``. Faults
  (429 with Retry-After, lost and cut-short write answers) are injected by
  :class:`ContractTransport`, which sits between the connector and either.
  ``core/tests/broken`` keeps the connectors the suites must catch.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from ._config import Config, parse_config
from ._connectors import BrokenDocument, Source, SourceItem, Status, StatusMapper
from ._errors import ConnectionError_, NotSupported, OutcomeUnknown, TransientError
from ._fakes import (
    FakeSource,
    FakeTarget,
    fake_plugin,
    fake_store,
    reset_fake_stores,
    sample_document,
)
from ._http import make_http_client
from ._ledger import Ledger
from ._plugins import PluginManager
from ._records import Document, DocumentKind, eu_rates
from ._runner import PipelineRunner, Reporter, RunResult, Runtime, SimulatedCrash


# -- runtime helpers ----------------------------------------------------------------------
class CollectingReporter(Reporter):
    def __init__(self) -> None:
        self.outcomes: list[Any] = []
        self.messages: list[str] = []

    def document(self, outcome: Any) -> None:
        self.outcomes.append(outcome)

    def message(self, text: str) -> None:
        self.messages.append(text)


def plugin_manager() -> PluginManager:
    return PluginManager(extra_plugins=[fake_plugin])


def make_config(raw: dict[str, Any], path: Path, plugins: PluginManager | None = None) -> Config:
    return parse_config(raw, path, registry=(plugins or plugin_manager()).registry)


def make_runtime(raw: dict[str, Any], tmp_path: Path, *, transports: dict[str, Any] | None = None,
                 crash_points: Iterable[str] = (), plugins: PluginManager | None = None,
                 http_options: dict[str, Any] | None = None) -> Runtime:
    plugins = plugins or plugin_manager()
    raw = dict(raw)
    raw.setdefault("ledger", {"url": f"sqlite:///{tmp_path / 'ledger.db'}"})
    config = make_config(raw, tmp_path / "ledgerlink.toml", plugins)
    return Runtime(config, plugins=plugins, transports=transports, reporter=CollectingReporter(),
                   crash_points=crash_points, http_options=http_options or {"backoff": 0.01})


def run_pipeline(runtime: Runtime, name: str | None = None, **kwargs: Any) -> RunResult:
    pipeline = runtime.config.pipeline(name) if name else runtime.config.pipelines[0]
    runner = PipelineRunner(runtime, pipeline)
    try:
        return runner.run(**kwargs)
    finally:
        runner.close()


def closing_factory(build: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """The body of a fixture that hands out connectors: ``yield from closing_factory(build)``
    gives the test ``build`` itself, and closes every connector it made after the test."""
    made: list[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        connector = build(*args, **kwargs)
        made.append(connector)
        return connector

    try:
        yield make
    finally:
        for connector in made:
            connector.close()


# -- the CLI runner ------------------------------------------------------------------------
@dataclass
class CliResult:
    exit_code: int
    output: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.output)


def invoke_cli(args: list[str], env: dict[str, str] | None = None, *, fakes: bool = True) -> CliResult:
    """Run the CLI in this process. ``fakes``: the fake connectors are registered
    (``LEDGERLINK_FAKE_PLUGINS=1`` for this call only)."""
    from click.testing import CliRunner

    from ._cli import main

    env = dict(env or {})
    if fakes:
        env.setdefault("LEDGERLINK_FAKE_PLUGINS", "1")
    runner = CliRunner()
    result = runner.invoke(main, args, env=env, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def fake_config(*, ledger: str = "sqlite:///ledger.db", pipeline: str = "p", source: str = "fake-source",
                source_file: str | None = None, **options: Any) -> str:
    """A ``ledgerlink.toml`` for the fake connectors: source store "shop", target store
    "books", one pipeline; ``options`` are pipeline keys (strings are quoted)."""
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    file = f'file = "{source_file}"\n' if source_file else ""
    return (f'[ledger]\nurl = "{ledger}"\n\n[connections.shop]\nplugin = "{source}"\nstore = "shop"\n{file}\n'
            f'[connections.books]\nplugin = "fake-target"\nstore = "books"\n\n'
            f'[[pipelines]]\nname = "{pipeline}"\nsource = "shop"\ntarget = "books"\n{extra}')


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run the ledgerlink CLI in-process: ``cli(["plugins", "--json"])``."""

    def run(args: list[str], env: dict[str, str] | None = None) -> CliResult:
        return invoke_cli(args, env)

    return run


@pytest.fixture(autouse=False)
def fake_stores() -> Iterator[None]:
    reset_fake_stores()
    yield
    reset_fake_stores()


# -- contract suites -----------------------------------------------------------------------
CRASH_POINTS = ["after_contact_pending", "after_contact_create", "after_pending", "after_push", "after_pushed"]
LOST_ANSWERS = ["drop", "truncate"]
"""The lost-answer faults :class:`TargetContract` puts on each write in turn."""

_READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class Exchange:
    """One request through a :class:`ContractTransport`: what was asked, when, and the answer."""

    method: str
    url: str
    path: str
    start: float
    end: float = 0.0
    status: int | None = None
    fault: str | None = None
    """The fault the suite injected: "429", "drop" (the vendor acted, the answer is lost) or
    "truncate" (the vendor acted, half of the answer arrives)."""

    @property
    def write(self) -> bool:
        return self.method not in _READ_METHODS

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class ContractTransport(httpx.BaseTransport):
    """The transport the contract suites put between a connector and its vendor (a
    sandbox's in-process transport or an ``httpx.MockTransport`` of respx routes): it
    logs every request (:attr:`exchanges`) and injects the faults a test asks for, so
    the suites need nothing from the vendor emulation but its answers.

    - ``throttle_reads``: 1-based numbers of read requests answered 429 with
      ``Retry-After: retry_after`` (the request never reaches the vendor);
    - ``throttle_share``: that share of all requests answered so (seeded, repeatable);
    - ``lose_writes``: 1-based numbers of write requests whose answer is lost after the
      vendor acted on them: ``"drop"`` (connection closed, nothing arrives) or
      ``"truncate"`` (half of the body arrives).
    """

    def __init__(self, inner: httpx.BaseTransport, *, retry_after: float = 0.2, seed: int = 7) -> None:
        self.inner = inner
        self.retry_after = retry_after
        self.exchanges: list[Exchange] = []
        self.throttle_reads: set[int] = set()
        self.throttle_share = 0.0
        self.lose_writes: dict[int, str] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._reads = 0
        self._writes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method.upper()
        with self._lock:
            exchange = Exchange(method, str(request.url), request.url.path, time.monotonic())
            self.exchanges.append(exchange)
            if exchange.write:
                self._writes += 1
                lose = self.lose_writes.get(self._writes)
                throttle = False
            else:
                self._reads += 1
                lose = None
                throttle = self._reads in self.throttle_reads
            if self.throttle_share and self._rng.random() < self.throttle_share:
                throttle = True
        if throttle:
            exchange.status, exchange.fault, exchange.end = 429, "429", time.monotonic()
            return httpx.Response(429, headers={"Retry-After": f"{self.retry_after:g}"}, request=request,
                                  json={"error": "Too Many Requests (injected by the ledgerlink contract suite)"})
        response = self.inner.handle_request(request)
        body = response.read()
        exchange.status, exchange.end = response.status_code, time.monotonic()
        if lose == "drop":
            exchange.fault = "drop"
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body (dropped by the contract suite)",
                request=request)
        if lose == "truncate":
            exchange.fault = "truncate"
            headers = [(k, v) for k, v in response.headers.multi_items()
                       if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")]
            return httpx.Response(response.status_code, headers=headers, content=body[: len(body) // 2],
                                  request=request)
        return response

    def reads(self) -> list[Exchange]:
        return [e for e in self.exchanges if not e.write]

    def writes(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.write]

    def close(self) -> None:
        self.inner.close()


class _VendorHooks:
    """What the three ways of driving a suite share: the vendor, its transport, plugins."""

    extra_plugins: ClassVar[tuple[Any, ...]] = ()
    """Plugin objects registered for the test runtime (connectors not installed as a
    distribution, e.g. a catalogue of fakes); installed plugins load as usual."""

    def make_sandbox(self) -> Any:
        """A fresh vendor for one test: a :class:`ledgerlink.Sandbox` (reached through its
        in-process ``transport()``), or, for respx authors, any object of yours that holds
        the vendor's data and routes (see :meth:`vendor_transport`)."""
        raise AssertionError(
            f"{type(self).__name__}: define make_sandbox() (a ledgerlink.Sandbox, or your respx-backed vendor)")

    def vendor_transport(self, vendor: Any) -> httpx.BaseTransport:
        """The httpx transport that reaches ``vendor``. Default: ``vendor.transport()`` (a
        sandbox). With respx routes return ``httpx.MockTransport(router.handler)`` for a
        ``respx.MockRouter`` holding your routes (no global patching needed)."""
        transport = getattr(vendor, "transport", None)
        assert callable(transport), (
            f"{type(self).__name__}: make_sandbox() returned {type(vendor).__name__}, which has no transport(); "
            "return a ledgerlink.Sandbox, or override vendor_transport() (respx: "
            "return httpx.MockTransport(router.handler))")
        result: httpx.BaseTransport = transport()
        return result

    def connection_settings(self, vendor: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """(settings for the connection, environment variables its secrets refer to)."""
        raise AssertionError(f"{type(self).__name__}: define connection_settings(vendor)")

    def _plugins(self) -> PluginManager:
        return PluginManager(extra_plugins=[fake_plugin, *self.extra_plugins])

    def _kit(self, vendor: Any, **options: Any) -> ContractTransport:
        return ContractTransport(self.vendor_transport(vendor), **options)

    @staticmethod
    def _setenv(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)


def _eu_rate_set() -> set[Decimal]:
    from ._records import _eu_data

    rates: set[Decimal] = set()
    data = _eu_data()
    for code in data["members"]:
        rates.update(eu_rates(code))
    return rates


def _refs(items: Iterable[SourceItem]) -> list[str]:
    return [item.source_ref for item in items]


class SourceContract(_VendorHooks):
    """What every source owes ledgerlink, as a test class to subclass.

    Required members:

    - ``plugin``: the registered source name;
    - ``make_sandbox()``: a fresh vendor seeded with at least three documents with at
      least two distinct cursors, one record that must be skipped (if the source ever
      skips), in a ``ledgerlink.Sandbox`` or your own respx-backed object (then override
      ``vendor_transport(vendor)`` to return ``httpx.MockTransport(router.handler)``);
    - ``connection_settings(vendor)``: ``(settings, env)`` of a working connection;
    - ``expected_refs(vendor)``: the refs ``documents(None)`` yields (skipped and broken too);
    - ``expected_skipped(vendor)``: the refs that come as full Documents with
      ``skip_reason`` (an empty set says the source never skips: then none may);
    - ``break_record(vendor)``: make one record unmappable in the vendor (an amount that
      is not a number, say) and return its ref.

    Optional: ``page_size_setting`` (the setting the suite shrinks to force at least three
    pages; default ``"page_size"``), ``cursor_settings`` (settings for the cursor test that
    switch off a deliberate re-read overlap, e.g. ``{"overlap_minutes": 0}``),
    ``other_tax_rates`` (rates besides the EU's, e.g. ``("8.1",)`` for Switzerland),
    ``bad_credentials(settings, env)`` (default: every env value made wrong),
    ``extra_plugins``. Faults (429 with Retry-After) are injected by the suite's
    :class:`ContractTransport`, in front of a sandbox or respx routes alike.
    """

    plugin: ClassVar[str] = ""
    page_size_setting: ClassVar[str | None] = "page_size"
    cursor_settings: ClassVar[dict[str, Any]] = {}
    other_tax_rates: ClassVar[tuple[str, ...]] = ()
    retry_after: ClassVar[float] = 0.2
    """The Retry-After (s) of the 429s the suite injects."""

    def expected_refs(self, vendor: Any) -> set[str]:
        """Source refs of the documents ``documents(None)`` must yield (transferable, skipped, broken)."""
        raise AssertionError(f"{type(self).__name__}: define expected_refs(vendor)")

    def expected_skipped(self, vendor: Any) -> set[str]:
        """Refs of the records that must come as full Documents with ``skip_reason``."""
        raise AssertionError(
            f"{type(self).__name__}: define expected_skipped(vendor): the refs of records the source must not "
            "transfer (seed one), or an empty set if it never skips")

    def break_record(self, vendor: Any) -> str:
        """Make one record in ``vendor`` impossible to map; return its ref."""
        raise AssertionError(
            f"{type(self).__name__}: define break_record(vendor): corrupt one record (a total that is not a "
            "number, say) and return its ref; documents() must yield it as BrokenDocument(ref, reason)")

    def bad_credentials(self, settings: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        """The working connection with wrong credentials (default: every env value changed)."""
        assert env, (f"{type(self).__name__}: connection_settings() names no secret in env; override "
                     "bad_credentials(settings, env) to return settings with wrong credentials")
        return settings, {key: f"wrong-{value[::-1]}" for key, value in env.items()}

    # -- machinery ---------------------------------------------------------------------------
    def _source(self, vendor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *,
                kit: ContractTransport | None = None, overrides: dict[str, Any] | None = None,
                credentials: tuple[dict[str, Any], dict[str, str]] | None = None) -> Source:
        settings, env = credentials or self.connection_settings(vendor)
        self._setenv(monkeypatch, env)
        raw = {
            "connections": {"shop": {"plugin": self.plugin, **settings, **(overrides or {})},
                            "books": {"plugin": "fake-target"}},
            "pipelines": [{"name": "contract", "source": "shop", "target": "books"}],
        }
        runtime = make_runtime(raw, tmp_path, transports={"shop": kit or self._kit(vendor)},
                               plugins=self._plugins())
        return runtime.source("shop")

    def _list(self, vendor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, since: str | None = None, *,
              kit: ContractTransport | None = None, overrides: dict[str, Any] | None = None) -> list[SourceItem]:
        source = self._source(vendor, tmp_path, monkeypatch, kit=kit, overrides=overrides)
        try:
            return list(source.documents(since))
        finally:
            source.close()

    # -- the contract ----------------------------------------------------------------------------
    def test_check_passes(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        source = self._source(self.make_sandbox(), tmp_path, monkeypatch)
        try:
            said = source.check()
        finally:
            source.close()
        assert isinstance(said, str) and said.strip(), f"check() must describe the account in one line, gave {said!r}"

    def test_refs_are_unique_and_expected(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        vendor = self.make_sandbox()
        refs = _refs(self._list(vendor, tmp_path, monkeypatch))
        twice = {ref: n for ref, n in Counter(refs).items() if n > 1}
        assert not twice, "documents(None) yielded the same document more than once: " + ", ".join(
            f"{ref!r} {n} times" for ref, n in sorted(twice.items())) + " (each record once per listing)"
        expected = self.expected_refs(vendor)
        missing, unexpected = sorted(expected - set(refs)), sorted(set(refs) - expected)
        assert not missing and not unexpected, (
            f"documents(None) did not yield what expected_refs() says: missing {missing}, unexpected {unexpected}")

    def test_every_document_is_consistent(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        items = self._list(self.make_sandbox(), tmp_path, monkeypatch)
        problems = [f"{item.source_ref} ({item.number}): {problem}" for item in items if isinstance(item, Document)
                    for problem in item.consistency_problems()]
        assert not problems, ("documents that are not what they claim (Document.consistency_problems(); map the "
                              "vendor's figures, never fix them): " + "; ".join(problems))

    def test_tax_rates_are_percentages(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        items = self._list(self.make_sandbox(), tmp_path, monkeypatch)
        known = _eu_rate_set() | {Decimal(rate) for rate in self.other_tax_rates}
        problems: list[str] = []
        for item in items:
            if not isinstance(item, Document):
                continue
            for index, line in enumerate(item.lines, start=1):
                rate = line.tax_rate
                where = f"{item.source_ref} line {index} ({line.description[:40]!r})"
                if rate == 0:
                    continue
                if 0 < rate < 1:
                    problems.append(f"{where}: tax_rate {rate} is a fraction; rates are percentages "
                                    f"({(rate * 100).normalize():f} means {(rate * 100).normalize():f} %, never "
                                    f"{rate})")
                elif rate not in known:
                    problems.append(f"{where}: tax_rate {rate} % is no EU VAT rate (list the vendor's other rates "
                                    "in other_tax_rates)")
        assert not problems, "implausible VAT rates: " + "; ".join(problems)

    def test_cursor_is_honoured_and_resumable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        vendor = self.make_sandbox()
        overrides = dict(self.cursor_settings)
        items = self._list(vendor, tmp_path, monkeypatch, overrides=overrides)
        without = [item.source_ref for item in items if not item.cursor]
        assert not without, f"documents without Document.cursor (the runner cannot store progress): {without}"
        cursors = [str(item.cursor) for item in items]
        candidates = [k for k in range(1, len(items) - 1) if any(c != cursors[k] for c in cursors[:k])]
        assert candidates, (f"the seed must give at least three documents with at least two distinct cursors "
                            f"(got {len(items)} documents, cursors {sorted(set(cursors))[:5]})")
        k = candidates[len(candidates) // 2]
        mark = items[k]
        resumed = _refs(self._list(vendor, tmp_path, monkeypatch, cursors[k], overrides=overrides))
        lost = [item.source_ref for item in items[k + 1:] if item.source_ref not in resumed]
        assert not lost, (f"documents(since={cursors[k]!r}), the cursor of {mark.source_ref}, lost {lost}: listed "
                          "after it, a run resuming from that cursor would never see them")
        earlier = {item.source_ref for item, cursor in zip(items[:k], cursors[:k], strict=True)
                   if cursor != cursors[k]}
        again = sorted(earlier & set(resumed))
        assert not again, (f"documents(since={cursors[k]!r}), the cursor of {mark.source_ref}, yielded again "
                           f"{again}, listed before it with earlier cursors: the cursor was ignored")

    def test_paging_walks_every_page(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        assert self.page_size_setting, (
            f"{type(self).__name__}: set page_size_setting to the setting that sets the page size, so the suite "
            "can force several pages")
        vendor = self.make_sandbox()
        base_kit = self._kit(vendor)
        base = _refs(self._list(vendor, tmp_path, monkeypatch, kit=base_kit))
        assert len(base) >= 3, f"the seed must give at least three documents to page through (got {len(base)})"
        # A quarter of the documents per page: at least three pages more than the default
        # even for a source whose records give more than one document (an order and its refund).
        size = max(1, len(base) // 4)
        pages = -(-len(base) // size)
        kit = self._kit(vendor)
        paged = _refs(self._list(vendor, tmp_path, monkeypatch, kit=kit, overrides={self.page_size_setting: size}))
        lost = sorted(set(base) - set(paged))
        assert not lost, f"with {self.page_size_setting}={size} ({pages} pages) the listing lost {lost}"
        twice = sorted(ref for ref, n in Counter(paged).items() if n > 1)
        assert not twice, f"with {self.page_size_setting}={size} ({pages} pages) the listing repeated {twice}"
        small, default = len(kit.reads()), len(base_kit.reads())
        assert small >= default + 2, (
            f"with {self.page_size_setting}={size} the source read {small} times, with the default {default}: it "
            f"did not walk the {pages} pages (pass the page size to the vendor and follow every page)")

    def test_bad_credentials_raise_connection_error(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        vendor = self.make_sandbox()
        wrong = self.bad_credentials(*self.connection_settings(vendor))
        calls: list[tuple[str, Callable[[Source], Any]]] = [
            ("check()", lambda source: source.check()), ("documents(None)", lambda source: list(source.documents(None)))]
        for what, call in calls:
            source = self._source(vendor, tmp_path, monkeypatch, credentials=wrong)
            try:
                call(source)
            except ConnectionError_:
                continue
            except Exception as exc:  # noqa: BLE001 - the wrong kind of error is the finding
                raise AssertionError(
                    f"{what} with wrong credentials raised {type(exc).__name__}: {exc}; it must raise "
                    "ledgerlink.ConnectionError_ (the pipeline stops and says how to fix the credentials)") from None
            finally:
                source.close()
            raise AssertionError(f"{what} with wrong credentials did not raise ledgerlink.ConnectionError_")

    def test_rate_limit_answer_is_waited_out(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        vendor = self.make_sandbox()
        base = _refs(self._list(vendor, tmp_path, monkeypatch))
        kit = self._kit(vendor, retry_after=self.retry_after)
        kit.throttle_reads = {1, 3}
        try:
            items = self._list(vendor, tmp_path, monkeypatch, kit=kit)
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(
                f"documents(None) failed after a 429 with Retry-After: {self.retry_after:g}: "
                f"{type(exc).__name__}: {exc}; wait what the vendor says and ask again") from None
        throttled = [i for i, e in enumerate(kit.exchanges) if e.fault == "429"]
        assert throttled, "the source made fewer than one read request: nothing could be throttled"
        for index in throttled:
            first = kit.exchanges[index]
            again = next((e for e in kit.exchanges[index + 1:] if e.url == first.url and e.method == first.method),
                         None)
            assert again is not None, f"after a 429 on {first} the source never asked again (the listing is incomplete)"
            waited = again.start - first.end
            assert waited >= self.retry_after * 0.9, (
                f"after a 429 with Retry-After: {self.retry_after:g} on {first} the source asked again after "
                f"{waited:.3f} s: wait what the vendor says")
        lost = sorted(set(base) - set(_refs(items)))
        assert not lost, f"after 429s the listing lost {lost}"

    def test_broken_record_is_a_broken_document(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        vendor = self.make_sandbox()
        ref = self.break_record(vendor)
        try:
            items = self._list(vendor, tmp_path, monkeypatch)
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(
                f"documents(None) raised {type(exc).__name__}: {exc} on the broken record {ref}; yield "
                "BrokenDocument(ref, reason) and go on with the others") from None
        found = [item for item in items if item.source_ref == ref]
        assert found, f"the broken record {ref} was left out; yield BrokenDocument({ref!r}, reason) so the ledger shows it"
        item = found[0]
        assert isinstance(item, BrokenDocument), (
            f"the broken record {ref} came as {type(item).__name__}, not as BrokenDocument({ref!r}, reason)")
        assert item.reason and item.reason.strip(), f"BrokenDocument {ref} has no reason (name the field and value)"
        missing = sorted(self.expected_refs(vendor) - {ref} - set(_refs(items)))
        assert not missing, f"after the broken record {ref} the listing lost {missing}"

    def test_skipped_records_are_full_documents_with_reason(self, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
        vendor = self.make_sandbox()
        expected = set(self.expected_skipped(vendor))
        items = self._list(vendor, tmp_path, monkeypatch)
        by_ref = {item.source_ref: item for item in items}
        for ref in sorted(expected):
            item = by_ref.get(ref)
            assert item is not None, (f"the record {ref} that must not be transferred was left out: yield it as a "
                                      "full Document with skip_reason, so the ledger shows why")
            assert isinstance(item, Document), (
                f"the skipped record {ref} came as {type(item).__name__}: yield a full Document with skip_reason")
            assert item.skip_reason and item.skip_reason.strip(), (
                f"the record {ref} must not be transferred but carries no skip_reason (in a bookkeeper's words)")
        claimed = sorted(ref for ref, item in by_ref.items()
                         if isinstance(item, Document) and item.skip_reason is not None and ref not in expected)
        assert not claimed, "documents skipped that expected_skipped() does not list: " + ", ".join(
            f"{ref} ({by_ref[ref].skip_reason!r})" for ref in claimed)  # type: ignore[union-attr]

    def test_single_document_by_ref(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        vendor = self.make_sandbox()
        source = self._source(vendor, tmp_path, monkeypatch)
        try:
            first = next(i for i in source.documents(None) if isinstance(i, Document))
            try:
                again = source.document(first.source_ref)
            except NotSupported:
                pytest.skip("the source cannot fetch single documents")
        finally:
            source.close()
        assert again is not None, f"document({first.source_ref!r}) found nothing, but documents() listed it"
        assert again.total_gross == first.total_gross, (
            f"document({first.source_ref!r}) totals {again.total_gross}, the listing {first.total_gross}")


class TargetContract(_VendorHooks):
    """What every target owes ledgerlink, as a test class to subclass.

    Required members:

    - ``plugin`` and ``rules`` (the pipeline's booking rules), ``pipeline_options``;
    - ``make_sandbox()``: a fresh vendor, a ``ledgerlink.Sandbox`` or your own
      respx-backed object (then override ``vendor_transport(vendor)`` to return
      ``httpx.MockTransport(router.handler)``);
    - ``connection_settings(vendor)``: ``(settings, env)`` of a working connection;
    - ``stored_refs(vendor)``: the source ref of every document stored, once per stored
      document (a duplicate shows as the ref twice);
    - ``stored_payments(vendor)``: one entry per payment booked in the vendor (only asked
      when ``book_payment`` is supported).

    Optional: ``timeout_setting`` (the setting the crash and lost-answer tests set to
    ``fault_timeout``, so the runner's settle delay stays short; default ``"timeout"``),
    ``booked_settings`` (settings that make pushed documents final, for the payment and
    credit-note tests), ``extra_plugins``.
    Faults (429 storms, lost answers by "drop" and "truncate" on each write in turn) are
    injected by the suite's :class:`ContractTransport`, in front of a sandbox or respx
    routes alike.
    """

    plugin: ClassVar[str] = ""
    rules: ClassVar[list[dict[str, Any]]] = []
    pipeline_options: ClassVar[dict[str, Any]] = {}
    timeout_setting: ClassVar[str | None] = "timeout"
    fault_timeout: ClassVar[float] = 1.0
    """The HTTP timeout (s) in the crash and lost-answer tests: the runner waits twice
    that before it asks the target about a write that may still be arriving."""
    booked_settings: ClassVar[dict[str, Any]] = {}
    """Settings under which a pushed document is final (booked, approved), for the tests
    that book a payment on it or credit it (e.g. ``{"auto_book": True}``)."""

    def stored_refs(self, vendor: Any) -> list[str]:
        """The source ref of every document stored in the vendor, once per stored document."""
        raise AssertionError(f"{type(self).__name__}: define stored_refs(vendor)")

    def stored_payments(self, vendor: Any) -> list[Any]:
        """One entry per payment booked in the vendor (any comparable value)."""
        raise AssertionError(f"{type(self).__name__}: define stored_payments(vendor) (the target books payments)")

    def storm_faults(self) -> dict[str, Any]:
        """The 429 storm: ``share`` of all requests answered 429 with ``retry_after``."""
        return {"share": 0.5, "retry_after": 0.01, "seed": 7}

    # -- machinery ---------------------------------------------------------------------------
    def _runtime(self, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docs: list[Document],
                 crash: Iterable[str] = (), *, kit: ContractTransport | None = None,
                 overrides: dict[str, Any] | None = None) -> Runtime:
        settings, env = self.connection_settings(sandbox)
        self._setenv(monkeypatch, env)
        tmp_path.mkdir(parents=True, exist_ok=True)
        store = f"contract-{id(self)}-{tmp_path.name}-{uuid.uuid4().hex[:8]}"
        for doc in docs:
            fake_store(store)["documents"][doc.source_ref] = doc
        raw = {
            "connections": {
                "shop": {"plugin": "fake-source", "store": store},
                "books": {"plugin": self.plugin, **settings, **(overrides or {})},
            },
            "pipelines": [{"name": "contract", "source": "shop", "target": "books", "rules": self.rules,
                           **self.pipeline_options}],
        }
        return make_runtime(raw, tmp_path, transports={"books": kit or self._kit(sandbox)}, crash_points=crash,
                            plugins=self._plugins())

    def _fault_settings(self) -> dict[str, Any]:
        return {self.timeout_setting: self.fault_timeout} if self.timeout_setting else {}

    def _docs(self) -> list[Document]:
        return [sample_document(1, customer="cust-1"), sample_document(2, customer="cust-2", shipping=None),
                sample_document(3, customer="cust-1", gross="53.50", rate="7")]

    def _once(self, sandbox: Any, refs: Iterable[str], when: str) -> None:
        stored = Counter(self.stored_refs(sandbox))
        wanted = Counter(refs)
        assert stored == wanted, f"{when}: the target holds {dict(stored)}, not each document once ({dict(wanted)})"

    # -- the contract ----------------------------------------------------------------------------
    def test_check_passes(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        runtime = self._runtime(self.make_sandbox(), tmp_path, monkeypatch, [])
        said = runtime.target("books").check()
        assert isinstance(said, str) and said.strip(), f"check() must describe the account in one line, gave {said!r}"

    def test_documents_arrive_once_with_their_totals(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, self._docs())
        result = run_pipeline(runtime)
        assert result.counts() == {"pushed": 3}, "a plain run did not push the three documents: " + "; ".join(
            f"{o.source_ref}: {o.state} {o.reason}" for o in result.outcomes)
        self._once(sandbox, ["order-1", "order-2", "order-3"], "after one run")
        target = runtime.target("books")
        for doc in self._docs():
            assert target.find_document(doc.source_ref, doc.number) is not None, (
                f"find_document({doc.source_ref!r}, {doc.number!r}) found nothing after the push")
        found = target.find_document("order-does-not-exist", "RE-0")
        assert found is None, f"find_document('order-does-not-exist') found {found}"

    def test_same_document_pushed_twice_gives_one(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, self._docs())
        run_pipeline(runtime)
        second = run_pipeline(runtime, use_cursor=False)
        assert second.counts().get("pushed", 0) == 0, f"a second run pushed again: {second.counts()}"
        self._once(sandbox, ["order-1", "order-2", "order-3"], "after two runs")

    @pytest.mark.parametrize("point", CRASH_POINTS)
    def test_crash_at_every_step_then_rerun_gives_exactly_one(
        self, point: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sandbox = self.make_sandbox()
        docs = self._docs()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, docs, crash=[point],
                                overrides=self._fault_settings())
        with pytest.raises(SimulatedCrash):
            run_pipeline(runtime)
        runtime.crash_points.clear()
        fresh = Runtime(runtime.config, plugins=runtime.plugins, transports=runtime.transports,
                        reporter=CollectingReporter(), http_options={"backoff": 0.01})
        result = run_pipeline(fresh)
        assert result.error is None, f"the run after a crash at {point} failed: {result.error}"
        self._once(sandbox, ["order-1", "order-2", "order-3"], f"after a crash at {point} and a re-run")
        states = {row.source_ref: row.state for row in fresh.ledger.documents("contract")}
        assert states == {"order-1": "pushed", "order-2": "pushed", "order-3": "pushed"}, (
            f"after a crash at {point} and a re-run the ledger says {states}")
        links = [link for link in fresh.ledger.links("books") if link.state == "linked"]
        assert len({link.target_contact_id for link in links}) == len(links) <= 2, (
            f"after a crash at {point} the two customers have contacts "
            f"{[link.target_contact_id for link in links]}")

    def test_rate_limit_storm_is_waited_out(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        storm = self.storm_faults()
        kit = self._kit(sandbox, retry_after=storm["retry_after"], seed=storm["seed"])
        kit.throttle_share = storm["share"]
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, self._docs(), kit=kit)
        result = run_pipeline(runtime)
        assert result.counts() == {"pushed": 3}, "a 429 storm was not waited out: " + "; ".join(
            f"{o.source_ref}: {o.state} {o.reason}" for o in result.outcomes)
        self._once(sandbox, ["order-1", "order-2", "order-3"], "after a 429 storm")
        assert any(e.fault == "429" for e in kit.exchanges), "the storm threw no 429 (the target made no request)"

    @pytest.mark.parametrize("fault", LOST_ANSWERS)
    def test_lost_write_answer_is_adopted_once(self, fault: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        overrides = self._fault_settings()
        docs = [sample_document(1, customer="cust-1")]
        vendor = self.make_sandbox()
        clean = self._kit(vendor)
        counts = run_pipeline(self._runtime(vendor, tmp_path / "clean", monkeypatch, docs, kit=clean,
                                            overrides=overrides)).counts()
        assert counts == {"pushed": 1}, f"a plain run of order-1 did not push it: {counts}"
        writes = clean.writes()
        assert writes, "the target pushed order-1 without a single write request"
        for number, write in enumerate(writes, start=1):
            vendor = self.make_sandbox()
            kit = self._kit(vendor)
            kit.lose_writes = {number: fault}
            runtime = self._runtime(vendor, tmp_path / f"{fault}-{number}", monkeypatch, docs, kit=kit,
                                    overrides=overrides)
            what = f"the answer to write {number} of {len(writes)} ({write}) was lost ({fault})"
            states: dict[str, str] = {}
            for _ in range(3):
                result = run_pipeline(runtime, use_cursor=False)
                assert result.error is None, f"after {what} the run stopped: {result.error}"
                states = {row.source_ref: row.state for row in runtime.ledger.documents("contract")}
                if states == {"order-1": "pushed"}:
                    break
            assert any(e.fault == fault for e in kit.exchanges), f"{what}: the suite could not inject the fault"
            assert states == {"order-1": "pushed"}, f"after {what} and two more runs the ledger says {states}"
            self._once(vendor, ["order-1"], f"after {what} and a re-run")

    def test_find_contact_after_create(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        runtime = self._runtime(self.make_sandbox(), tmp_path, monkeypatch, [])
        target = runtime.target("books")
        target.prepare(runtime.config.pipelines[0].options())
        customer = sample_document(5, customer="cust-5").customer
        key = f"shop:{customer.source_id}"
        created = target.create_contact(customer, key)
        found = target.find_contact(key)
        assert found is not None, (
            f"find_contact({key!r}) found nothing right after create_contact() made {created.target_id}: store the "
            "key where find_contact looks (the engine settles a lost contact answer with it)")
        assert found.target_id == created.target_id, (
            f"find_contact({key!r}) found {found.target_id}, but create_contact() made {created.target_id}")
        other = target.find_contact("shop:cust-never-created")
        assert other is None, f"find_contact('shop:cust-never-created') found {other.target_id}, a contact never made"

    def test_book_payment_twice_equals_once(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        unpaid = sample_document(1, customer="cust-1")
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, [unpaid], overrides=self.booked_settings)
        counts = run_pipeline(runtime).counts()
        assert counts == {"pushed": 1}, f"a plain run of order-1 did not push it: {counts}"
        paid = sample_document(1, customer="cust-1", paid=True)
        runner = PipelineRunner(runtime, runtime.config.pipelines[0])
        try:
            ref = runner.target.find_document(paid.source_ref, paid.number)
            assert ref is not None, "find_document('order-1') found nothing after the push"
            plan = runner.plan(paid, dry_run=False, contact_needed=False)
            try:
                runner.target.book_payment(ref, paid, plan)
            except NotSupported:
                pytest.skip("the target cannot book payments")
            once = Counter(map(repr, self.stored_payments(sandbox)))
            assert once, f"book_payment() of order-1 (paid {paid.paid_amount}) stored no payment"
            runner.target.book_payment(ref, paid, plan)
            twice = Counter(map(repr, self.stored_payments(sandbox)))
        finally:
            runner.close()
        assert twice == once, (
            f"book_payment() twice for order-1 stored {sum(twice.values())} payments, once {sum(once.values())}: "
            "book only the payments the target does not have yet")

    def test_find_document_for_every_kind(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        target_class = self._plugins().registry.get("target", self.plugin).factory
        if not getattr(target_class, "reverses_documents", False):
            pytest.skip("the target writes invoices only (reverses_documents is False); invoices are found by "
                        "test_documents_arrive_once_with_their_totals")
        original = sample_document(1, customer="cust-1")
        credit = original.model_copy(deep=True, update={
            "source_ref": "order-1-credit", "number": "GS-1001", "kind": DocumentKind.CREDIT_NOTE,
            "reverses": "order-1", "cursor": "2026-03-02T11:00:00",
            "lines": [line.model_copy(update={"total": -line.total}) for line in original.lines]})
        runtime = self._runtime(self.make_sandbox(), tmp_path, monkeypatch, [original, credit],
                                overrides=self.booked_settings)
        result = run_pipeline(runtime)
        assert result.counts() == {"pushed": 2}, "the invoice and its credit note were not both pushed: " + "; ".join(
            f"{o.source_ref}: {o.state} {o.reason}" for o in result.outcomes)
        target = runtime.target("books")
        invoice = target.find_document(original.source_ref, original.number)
        assert invoice is not None, "find_document('order-1') found nothing after the push"
        found = target.find_document(credit.source_ref, credit.number)
        assert found is not None, (
            "find_document('order-1-credit', 'GS-1001') found nothing after the credit note was pushed: find every "
            "kind of document the target writes")
        assert found.target_id != invoice.target_id, (
            f"find_document('order-1-credit') found the invoice {invoice.target_id}, not the credit note")


class StatusMapperContract:
    """What every status mapper owes ledgerlink, as a test class to subclass.

    Required: ``mapper`` (the registered name) and ``raw_statuses`` (every raw status the
    system reports, in its own spelling, that must map to a canonical status). Optional:
    ``make_mapper()`` (default: the registered mapper), ``extra_plugins``.

    Proves: every listed raw status maps to a canonical status (never UNKNOWN) and keeps
    its raw value; the wording ``from_canonical`` gives for it maps back to the same
    status (and reminder level); an unknown status comes back UNKNOWN with its raw value.
    """

    mapper: ClassVar[str] = ""
    raw_statuses: ClassVar[tuple[str, ...]] = ()
    extra_plugins: ClassVar[tuple[Any, ...]] = ()

    def make_mapper(self) -> StatusMapper:
        plugins = PluginManager(extra_plugins=[fake_plugin, *self.extra_plugins])
        mapper: StatusMapper = plugins.registry.get("status_mapper", self.mapper).factory()
        return mapper

    def _raw(self) -> tuple[str, ...]:
        assert self.raw_statuses, f"{type(self).__name__}: list the system's raw statuses in raw_statuses"
        return self.raw_statuses

    def test_every_raw_status_maps_to_a_canonical_status(self) -> None:
        mapper = self.make_mapper()
        gaps: list[str] = []
        for raw in self._raw():
            mapped = mapper.to_canonical(raw)
            if mapped.status == Status.UNKNOWN:
                gaps.append(f"{raw!r} maps to unknown")
            elif mapped.raw != raw:
                gaps.append(f"{raw!r} maps to {mapped.label()} but keeps raw {mapped.raw!r}")
        assert not gaps, f"status mapper {self.mapper or type(mapper).__name__}: " + "; ".join(gaps)

    def test_round_trip_holds(self) -> None:
        mapper = self.make_mapper()
        broken: list[str] = []
        for raw in self._raw():
            mapped = mapper.to_canonical(raw)
            if mapped.status == Status.UNKNOWN:
                continue  # a gap, named by the test above
            wording = mapper.from_canonical(mapped)
            if not isinstance(wording, str) or not wording.strip():
                broken.append(f"{raw!r} -> {mapped.label()} -> no wording ({wording!r})")
                continue
            back = mapper.to_canonical(wording)
            if back.status != mapped.status or (mapped.status == Status.REMINDER and back.level != mapped.level):
                broken.append(f"{raw!r} -> {mapped.label()} -> {wording!r} -> {back.label()}")
        assert not broken, (f"status mapper {self.mapper or type(mapper).__name__}: the round trip "
                            "to_canonical(from_canonical(to_canonical(raw))) does not hold: " + "; ".join(broken))

    def test_unknown_status_is_kept(self) -> None:
        mapper = self.make_mapper()
        raw = "ledgerlink-contract-no-such-status"
        mapped = mapper.to_canonical(raw)
        assert mapped.status == Status.UNKNOWN and mapped.raw == raw, (
            f"to_canonical({raw!r}) gave {mapped.label()} (raw {mapped.raw!r}); an unknown status must come back "
            "as Status.UNKNOWN with the raw value kept")


__all__ = [
    "CRASH_POINTS",
    "PluginManager",
    "make_http_client",
    "plugin_manager",
    "CliResult",
    "CollectingReporter",
    "ContractTransport",
    "Exchange",
    "LOST_ANSWERS",
    "FakeSource",
    "FakeTarget",
    "Ledger",
    "OutcomeUnknown",
    "SimulatedCrash",
    "SourceContract",
    "StatusMapperContract",
    "TargetContract",
    "TransientError",
    "closing_factory",
    "fake_config",
    "fake_plugin",
    "fake_store",
    "invoke_cli",
    "make_config",
    "make_runtime",
    "reset_fake_stores",
    "run_pipeline",
    "sample_document",
]
