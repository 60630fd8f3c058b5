"""The test kit for connector authors (a pytest plugin, loaded as ``-p ledgerlink.testing``
or automatically once ledgerlink is installed).

- :class:`FakeSource` and :class:`FakeTarget`: in-memory connectors (plugin names
  ``fake-source`` / ``fake-target``, registered when ``LEDGERLINK_FAKE_PLUGINS=1`` or
  through :data:`fake_plugin`).
- :func:`make_runtime`: a runtime for a config dict, with in-process transports.
- :class:`CliResult` and the ``cli`` fixture: run the real CLI, get exit code,
  output and parsed JSON.
- :class:`TargetContract` and :class:`SourceContract`: the behaviour every connector
  owes ledgerlink, as test classes a connector package subclasses in a few lines::

      class TestSevdeskContract(TargetContract):
          plugin = "sevdesk"
          rules = [{"when": {}, "account": "8400"}]

          def make_sandbox(self):
              return SevdeskSandbox()

          def connection_settings(self, sandbox):
              return {"api_token": "${SEVDESK_TEST_TOKEN}"}, {"SEVDESK_TEST_TOKEN": sandbox.token}

          def stored_refs(self, sandbox):
              return [v["description"] for v in sandbox.state["vouchers"].values()]
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ._config import Config, parse_config
from ._connectors import Source
from ._errors import NotSupported, OutcomeUnknown, TransientError
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
from ._records import Document
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


class TargetContract:
    """What every target owes ledgerlink. Subclass and fill in the four members below."""

    plugin: ClassVar[str] = ""
    rules: ClassVar[list[dict[str, Any]]] = []
    pipeline_options: ClassVar[dict[str, Any]] = {}

    def make_sandbox(self) -> Any:
        """A fresh sandbox instance of the vendor."""
        raise NotImplementedError

    def connection_settings(self, sandbox: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """(settings for the connection, environment variables its secrets refer to)."""
        raise NotImplementedError

    def stored_refs(self, sandbox: Any) -> list[str]:
        """The source ref of every document stored in the sandbox, once per stored document."""
        raise NotImplementedError

    def storm_faults(self) -> dict[str, Any]:
        return {"rate_429": 0.5, "retry_after": 0.01, "seed": 7}

    # -- machinery ---------------------------------------------------------------------------
    def _runtime(self, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docs: list[Document],
                 crash: Iterable[str] = ()) -> Runtime:
        settings, env = self.connection_settings(sandbox)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        store = f"contract-{id(self)}-{tmp_path.name}"
        for doc in docs:
            fake_store(store)["documents"][doc.source_ref] = doc
        raw = {
            "connections": {
                "shop": {"plugin": "fake-source", "store": store},
                "books": {"plugin": self.plugin, **settings},
            },
            "pipelines": [{"name": "contract", "source": "shop", "target": "books", "rules": self.rules,
                           **self.pipeline_options}],
        }
        return make_runtime(raw, tmp_path, transports={"books": sandbox.transport()}, crash_points=crash)

    def _docs(self) -> list[Document]:
        return [sample_document(1, customer="cust-1"), sample_document(2, customer="cust-2", shipping=None),
                sample_document(3, customer="cust-1", gross="53.50", rate="7")]

    def test_check_passes(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, [])
        assert runtime.target("books").check()

    def test_documents_arrive_once_with_their_totals(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, self._docs())
        result = run_pipeline(runtime)
        assert result.counts() == {"pushed": 3}, [o.reason for o in result.outcomes]
        assert Counter(self.stored_refs(sandbox)) == Counter({"order-1": 1, "order-2": 1, "order-3": 1})
        target = runtime.target("books")
        for doc in self._docs():
            assert target.find_document(doc.source_ref, doc.number) is not None
        assert target.find_document("order-does-not-exist", "RE-0") is None

    def test_same_document_pushed_twice_gives_one(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, self._docs())
        run_pipeline(runtime)
        second = run_pipeline(runtime, use_cursor=False)
        assert second.counts().get("pushed", 0) == 0
        assert Counter(self.stored_refs(sandbox)) == Counter({"order-1": 1, "order-2": 1, "order-3": 1})

    @pytest.mark.parametrize("point", CRASH_POINTS)
    def test_crash_at_every_step_then_rerun_gives_exactly_one(
        self, point: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sandbox = self.make_sandbox()
        docs = self._docs()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, docs, crash=[point])
        with pytest.raises(SimulatedCrash):
            run_pipeline(runtime)
        runtime.crash_points.clear()
        fresh = Runtime(runtime.config, plugins=runtime.plugins, transports=runtime.transports,
                        reporter=CollectingReporter(), http_options={"backoff": 0.01})
        result = run_pipeline(fresh)
        assert result.error is None, result.error
        assert Counter(self.stored_refs(sandbox)) == Counter({"order-1": 1, "order-2": 1, "order-3": 1})
        states = {row.source_ref: row.state for row in fresh.ledger.documents("contract")}
        assert states == {"order-1": "pushed", "order-2": "pushed", "order-3": "pushed"}
        links = [link for link in fresh.ledger.links("books") if link.state == "linked"]
        assert len({link.target_contact_id for link in links}) == len(links) <= 2

    def test_rate_limit_storm_is_waited_out(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from dataclasses import asdict

        from ._sandbox import Faults

        sandbox = self.make_sandbox()
        sandbox.faults = Faults(**{**asdict(Faults()), **self.storm_faults()})
        import random

        sandbox._rng = random.Random(sandbox.faults.seed)
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, self._docs())
        result = run_pipeline(runtime)
        assert result.counts() == {"pushed": 3}, [o.reason for o in result.outcomes]
        assert Counter(self.stored_refs(sandbox)) == Counter({"order-1": 1, "order-2": 1, "order-3": 1})
        assert any(entry.get("status") == 429 for entry in sandbox.requests)


class SourceContract:
    """What every source owes ledgerlink. Subclass and fill in the members below."""

    plugin: ClassVar[str] = ""

    def make_sandbox(self) -> Any:
        """A sandbox seeded with at least ``expected_count()`` transferable documents."""
        raise NotImplementedError

    def connection_settings(self, sandbox: Any) -> tuple[dict[str, Any], dict[str, str]]:
        raise NotImplementedError

    def expected_refs(self, sandbox: Any) -> set[str]:
        """Source refs of the documents ``documents(None)`` must yield (transferable or skipped)."""
        raise NotImplementedError

    def _source(self, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Source:
        settings, env = self.connection_settings(sandbox)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        raw = {
            "connections": {"shop": {"plugin": self.plugin, **settings}, "books": {"plugin": "fake-target"}},
            "pipelines": [{"name": "contract", "source": "shop", "target": "books"}],
        }
        runtime = make_runtime(raw, tmp_path, transports={"shop": sandbox.transport()})
        return runtime.source("shop")

    def test_check_passes(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        assert self._source(self.make_sandbox(), tmp_path, monkeypatch).check()

    def test_documents_are_valid_unique_and_balanced(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        source = self._source(sandbox, tmp_path, monkeypatch)
        items = list(source.documents(None))
        refs = [item.source_ref for item in items]
        assert set(refs) == self.expected_refs(sandbox)
        for item in items:
            if isinstance(item, Document):
                assert item.total_gross == item.total_net + item.total_tax

    def test_cursor_resumes_without_losing_documents(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        source = self._source(sandbox, tmp_path, monkeypatch)
        items = list(source.documents(None))
        cursors = [i.cursor for i in items]
        assert all(cursors), "every document must carry Document.cursor"
        middle = len(items) // 2
        resumed = {i.source_ref for i in source.documents(str(cursors[middle]))}
        after = {i.source_ref for i in items[middle + 1:]}
        assert after <= resumed

    def test_single_document_by_ref(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sandbox = self.make_sandbox()
        source = self._source(sandbox, tmp_path, monkeypatch)
        first = next(i for i in source.documents(None) if isinstance(i, Document))
        try:
            again = source.document(first.source_ref)
        except NotSupported:
            pytest.skip("the source cannot fetch single documents")
        assert again is not None and again.total_gross == first.total_gross


__all__ = [
    "CRASH_POINTS",
    "PluginManager",
    "make_http_client",
    "plugin_manager",
    "CliResult",
    "CollectingReporter",
    "FakeSource",
    "FakeTarget",
    "Ledger",
    "OutcomeUnknown",
    "SimulatedCrash",
    "SourceContract",
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
