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
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from ._config import Config, parse_config
from ._connectors import BrokenDocument, Plan, Settings, Source, Target
from ._errors import ConnectionError_, NotSupported, OutcomeUnknown, TransientError
from ._ledger import Ledger
from ._plugins import PluginManager, hookimpl
from ._records import Address, Contact, Customer, Document, Line, LineKind, Payment, TargetRef
from ._runner import PipelineRunner, Reporter, RunResult, Runtime, SimulatedCrash

# -- fakes ----------------------------------------------------------------------
_STORES: dict[str, dict[str, Any]] = {}
_STORES_LOCK = threading.Lock()


def fake_store(name: str) -> dict[str, Any]:
    with _STORES_LOCK:
        return _STORES.setdefault(name, {"documents": {}, "customers": {}, "contacts": {}, "pushed": {},
                                         "payments": [], "writes": [], "statuses": {}, "source_statuses": {}})


def reset_fake_stores() -> None:
    with _STORES_LOCK:
        _STORES.clear()


class FakeSourceSettings(Settings):
    store: str = "default"
    token: SecretStr | None = None
    file: str | None = None
    """A JSON file with {"documents": [...], "customers": [...]} (canonical records)."""


class FakeSource(Source):
    """Documents and customers from memory (``fake_store(store)``) or a JSON file."""

    Settings = FakeSourceSettings
    supports_write_customer_number = True
    supports_write_status = True
    status_mapper = "identity"

    def _data(self) -> dict[str, Any]:
        store = fake_store(self.settings.store)
        if self.settings.file:
            data = json.loads(Path(self.settings.file).read_text(encoding="utf-8"))
            for raw in data.get("documents", []):
                store["documents"].setdefault(raw["source_ref"], raw)
            for raw in data.get("customers", []):
                store["customers"].setdefault(raw["source_id"], raw)
        return store

    def check(self) -> str:
        if self.settings.token and self.settings.token.get_secret_value() == "wrong":
            raise ConnectionError_("the fake source rejected the token", connection=self.context.connection)
        return f"fake source {self.settings.store!r}: {len(self._data()['documents'])} documents"

    def documents(self, since: str | None) -> Iterator[Document | BrokenDocument]:  # type: ignore[override]
        items = sorted(self._data()["documents"].items(), key=lambda kv: str(_cursor_of(kv[1])))
        for ref, raw in items:
            cursor = _cursor_of(raw)
            if since is not None and cursor <= since:
                continue
            yield _to_document(ref, raw, cursor)

    def document(self, source_ref: str) -> Document | None:
        raw = self._data()["documents"].get(source_ref)
        if raw is None:
            return None
        result = _to_document(source_ref, raw, _cursor_of(raw))
        return result if isinstance(result, Document) else None

    def customers(self) -> Iterator[Customer]:
        for raw in self._data()["customers"].values():
            yield raw if isinstance(raw, Customer) else Customer.model_validate(raw)

    def write_customer_number(self, customer: Customer, number: str) -> None:
        store = self._data()
        store["writes"].append(("customer_number", customer.source_id, number))
        raw = store["customers"].get(customer.source_id)
        if isinstance(raw, Customer):
            raw.customer_number = number
        elif isinstance(raw, dict):
            raw["customer_number"] = number

    def write_status(self, source_ref: str, status: Any, wording: str) -> None:
        self._data()["source_statuses"][source_ref] = wording


def _cursor_of(raw: Any) -> str:
    if isinstance(raw, Document):
        return str(raw.extra.get("cursor") or raw.source_ref)
    return str(raw.get("extra", {}).get("cursor") or raw.get("source_ref"))


def _to_document(ref: str, raw: Any, cursor: str) -> Document | BrokenDocument:
    if isinstance(raw, Document):
        doc = raw.model_copy(deep=True)
        doc.extra.setdefault("cursor", cursor)
        return doc
    try:
        doc = Document.model_validate(raw)
    except Exception as exc:  # the fake source reports broken records like a real one
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"])
        return BrokenDocument(ref, f"the source record is invalid: {where}: {first['msg']}", cursor=cursor)
    doc.extra.setdefault("cursor", cursor)
    return doc


class FakeTargetSettings(Settings):
    store: str = "default"
    token: SecretStr | None = None


class FakeTarget(Target):
    """A target in memory. ``fake_store(store)["fail"]`` may hold exceptions to raise on the next pushes
    (``("after", exc)``: the document is stored, then ``exc`` raised, as a lost answer)."""

    Settings = FakeTargetSettings
    status_mapper = "identity"

    @property
    def store(self) -> dict[str, Any]:
        return fake_store(self.settings.store)

    def check(self) -> str:
        if self.settings.token and self.settings.token.get_secret_value() == "wrong":
            raise ConnectionError_("the fake target rejected the token", connection=self.context.connection)
        return f"fake target {self.settings.store!r}"

    def contacts(self) -> Iterator[Contact]:
        yield from list(self.store["contacts"].values())

    def find_contact(self, key: str) -> Contact | None:
        for contact in self.store["contacts"].values():
            if contact.extra.get("key") == key:
                return contact  # type: ignore[no-any-return]
        return None

    def create_contact(self, customer: Customer, key: str) -> Contact:
        number = str(10000 + len(self.store["contacts"]) + 1)
        contact = Contact(target_id=f"c{number}", customer_number=number, first_name=customer.first_name,
                          last_name=customer.last_name, company=customer.company, email=customer.email,
                          extra={"key": key})
        self.store["contacts"][contact.target_id] = contact
        return contact

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        item = self.store["pushed"].get(source_ref)
        return None if item is None else TargetRef(target_id=item["id"], number=item["number"])

    def push(self, document: Document, plan: Plan) -> TargetRef:
        failures = self.store.setdefault("fail", [])
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, tuple) and failure[0] == "after":
                self._store_document(document, plan)
                raise failure[1]
            raise failure
        return self._store_document(document, plan)

    def _store_document(self, document: Document, plan: Plan) -> TargetRef:
        ident = f"d{len(self.store['writes']) + 1}"
        self.store["writes"].append(("push", document.source_ref, ident))
        self.store["pushed"][document.source_ref] = {
            "id": ident, "number": document.number, "gross": str(document.total_gross),
            "contact": plan.contact.target_id if plan.contact else None, "tags": list(plan.tags),
            "accounts": [pl.account for pl in plan.lines], "document_date": plan.document_date.isoformat(),
            "due_date": plan.due_date.isoformat() if plan.due_date else None, "paid": plan.mark_paid,
        }
        return TargetRef(target_id=ident, number=document.number)

    def complete(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """Records the call in ``store["completed"]``; ``store["fail_complete"]`` is raised once."""
        failure = self.store.pop("fail_complete", None)
        if failure is not None:
            raise failure
        self.store.setdefault("completed", []).append((ref.target_id, list(plan.tags)))

    def book_payment(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        self.store["payments"].append((ref.target_id, str(document.paid_amount)))

    def statuses(self, refs: Iterable[TargetRef]) -> Iterator[tuple[TargetRef, str]]:
        for ref in refs:
            yield ref, self.store["statuses"].get(ref.target_id, "open")


class _FakePlugin:
    distribution = "ledgerlink (testing)"

    @staticmethod
    @hookimpl
    def ledgerlink_register_sources(register: Callable[..., None]) -> None:
        register("fake-source", FakeSource)

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register: Callable[..., None]) -> None:
        register("fake-target", FakeTarget)


fake_plugin = _FakePlugin()


def sample_document(n: int = 1, *, customer: str = "cust-1", gross: str = "119.00", rate: str = "19",
                    shipping: str | None = "4.90", country: str = "DE", paid: bool = False,
                    day: date = date(2026, 3, 2)) -> Document:
    """A realistic shop order: goods (and shipping) at the German rate, gross prices."""
    lines = [Line(description=f"Article {n}", quantity=Decimal(1), total=Decimal(gross), tax_rate=Decimal(rate),
                  kind=LineKind.GOODS, sku=f"SKU-{n}")]
    if shipping:
        lines.append(Line(description="Shipping", quantity=Decimal(1), total=Decimal(shipping),
                          tax_rate=Decimal(rate), kind=LineKind.SHIPPING))
    doc = Document(
        source_ref=f"order-{n}", number=f"RE-{1000 + n}", currency="EUR", invoice_date=day, order_date=day,
        customer=Customer(source_id=customer, first_name="Erika", last_name=f"Mustermann{customer[-1]}",
                          email=f"{customer}@example.com",
                          address=Address(street="Hauptstr. 1", zip="10115", city="Berlin", country=country)),
        lines=lines,
        extra={"cursor": f"2026-03-02T10:{n // 60:02d}:{n % 60:02d}"},
    )
    if paid:
        doc.payments = [Payment(amount=doc.total_gross, date=day, method="paypal")]
        doc.payment_date = day
    return doc


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


def invoke_cli(args: list[str], env: dict[str, str] | None = None) -> CliResult:
    from click.testing import CliRunner

    from ._cli import main

    runner = CliRunner()
    result = runner.invoke(main, args, env=env, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


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
        cursors = [i.extra.get("cursor") if isinstance(i, Document) else i.cursor for i in items]
        assert all(cursors), "every document must carry extra['cursor']"
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


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("LEDGERLINK_FAKE_PLUGINS", "1")


__all__ = [
    "CRASH_POINTS",
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
    "fake_plugin",
    "fake_store",
    "invoke_cli",
    "make_config",
    "make_runtime",
    "reset_fake_stores",
    "run_pipeline",
    "sample_document",
]
