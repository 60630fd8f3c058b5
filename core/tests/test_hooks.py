"""Each hook, exercised through a plugin that implements it."""

from __future__ import annotations

from pathlib import Path

from ledgerlink import MappedStatus, Status, StatusMapper, hookimpl
from ledgerlink._matching import EmailMatcher
from ledgerlink._operations import sync_status
from ledgerlink._plugins import PluginManager
from ledgerlink._records import Customer
from ledgerlink.testing import (
    FakeSource,
    FakeTarget,
    fake_plugin,
    fake_store,
    make_runtime,
    run_pipeline,
    sample_document,
)


class Recorder:
    distribution = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def ledgerlink_document_pushed(self, pipeline, source_ref, target_ref, document):
        self.events.append(("pushed", pipeline, source_ref, target_ref.target_id, str(document.total_gross)))

    @hookimpl
    def ledgerlink_document_failed(self, pipeline, source_ref, state, reason):
        self.events.append((state, pipeline, source_ref, reason))

    @hookimpl
    def ledgerlink_status_changed(self, pipeline, source_ref, old, new, raw):
        self.events.append(("status", source_ref, old, new, raw))
        raise RuntimeError("a broken notifier must not stop the sync")


class LowerEmail(EmailMatcher):
    name = "email_lower"


class Shouty(StatusMapper):
    name = "shouty"

    def to_canonical(self, raw):
        return MappedStatus(Status(raw.lower()), raw)

    def from_canonical(self, status):
        return status.status.upper()


class Registrar:
    distribution = "registrar"

    @staticmethod
    @hookimpl
    def ledgerlink_register_sources(register):
        register("other-source", FakeSource)

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register):
        register("other-target", FakeTarget)

    @staticmethod
    @hookimpl
    def ledgerlink_register_matchers(register):
        register("email_lower", LowerEmail)

    @staticmethod
    @hookimpl
    def ledgerlink_register_status_mappers(register):
        register("shouty", Shouty)


def test_registration_hooks_fill_the_registry() -> None:
    pm = PluginManager(extra_plugins=[Registrar()], autoload=False)
    reg = pm.registry
    assert reg.get("source", "other-source").distribution == "registrar"
    assert reg.get("target", "other-target").factory is FakeTarget
    assert reg.get("matcher", "email_lower").factory is LowerEmail
    assert reg.get("status_mapper", "shouty").factory().from_canonical(MappedStatus(Status.PAID, "x")) == "PAID"


def _raw() -> dict:
    return {
        "connections": {"shop": {"plugin": "fake-source", "store": "s"}, "books": {"plugin": "fake-target", "store": "t"}},
        "pipelines": [{"name": "p", "source": "shop", "target": "books", "matchers": ["email_lower"]}],
    }


def test_event_hooks_fire_after_commit(tmp_path: Path) -> None:
    recorder = Recorder()
    pm = PluginManager(extra_plugins=[fake_plugin, Registrar(), recorder], autoload=False)
    bad = sample_document(2)
    bad.stated_total = bad.total_gross + 1
    for doc in (sample_document(1), bad):
        fake_store("s")["documents"][doc.source_ref] = doc
    runtime = make_runtime(_raw(), tmp_path, plugins=pm)
    run_pipeline(runtime)
    pushed = [e for e in recorder.events if e[0] == "pushed"]
    assert pushed == [("pushed", "p", "order-1", fake_store("t")["pushed"]["order-1"]["id"], "123.90")]
    failed = [e for e in recorder.events if e[0] == "quarantined"]
    assert failed and failed[0][2] == "order-2" and "124.90" in failed[0][3]
    # the ledger had the state before the hook saw it
    assert runtime.ledger.document("p", "order-1").state == "pushed"

    fake_store("t")["statuses"][fake_store("t")["pushed"]["order-1"]["id"]] = "reminder 2"
    changes = sync_status(runtime, runtime.config.pipelines[0])
    assert [(c.source_ref, c.old, c.new) for c in changes] == [("order-1", None, "reminder 2")]
    assert ("status", "order-1", None, "reminder 2", "reminder 2") in recorder.events
    assert fake_store("s")["source_statuses"] == {"order-1": "reminder 2"}
    assert Customer(source_id="x")


def test_status_wording_can_be_chosen_per_pipeline(tmp_path: Path) -> None:
    pm = PluginManager(extra_plugins=[fake_plugin, Registrar()], autoload=False)
    fake_store("s")["documents"]["order-1"] = sample_document(1)
    raw = _raw()
    raw["pipelines"][0]["status_wording"] = "shouty"
    runtime = make_runtime(raw, tmp_path, plugins=pm)
    run_pipeline(runtime)
    fake_store("t")["statuses"][fake_store("t")["pushed"]["order-1"]["id"]] = "paid"
    [change] = sync_status(runtime, runtime.config.pipelines[0])
    assert change.written_back == "PAID" and fake_store("s")["source_statuses"] == {"order-1": "PAID"}
    [history] = runtime.ledger.status_history("p", "order-1")
    assert (history.new, history.raw, history.written_back) == ("paid", "paid", "ok: PAID")
