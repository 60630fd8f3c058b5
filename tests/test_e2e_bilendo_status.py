"""Bilendo end to end: export in both dispatch modes, dunning status back, export lock.

The issue: ledgerlink exports invoices to Bilendo in both dispatch modes, Bilendo moves
them through reminders to paid, `sync-status` brings every transition back, into the
ledger, into `status --json`, to the ``ledgerlink_status_changed`` hook and, through
``write_status``, to the source, in the source's own wording.

The source is ledgerlink's fake source reading canonical documents from a JSON file;
the Bilendo sandbox runs on loopback. `run` is the CLI as a subprocess (it reads the
file like a real source reads its system); `sync-status` and `status` run the real CLI
in this process, because the fake source keeps what ``write_status`` wrote in memory.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from ledgerlink import SandboxServer, hookimpl
from ledgerlink._config import load_config
from ledgerlink._ledger import Ledger
from ledgerlink._operations import sync_status
from ledgerlink._plugins import PluginManager, get_plugin_manager
from ledgerlink._runner import PipelineRunner, Runtime
from ledgerlink.testing import (
    CollectingReporter,
    FakeSource,
    fake_plugin,
    fake_store,
    invoke_cli,
    sample_document,
)
from ledgerlink_bilendo.sandbox import BilendoSandbox

# Each pipeline's walk through Bilendo (sandbox steps), and the canonical labels the
# ledger records for them. Manual dispatch starts as a draft and must be sent first.
AUTO_STEPS = ["due", "reminder_1", "reminder_2", "paid"]
AUTO_LABELS = ["sent", "due", "reminder 1", "reminder 2", "paid"]
MANUAL_STEPS = ["sent", "due", "reminder_1", "reminder_2", "paid"]
MANUAL_LABELS = ["draft", "sent", "due", "reminder 1", "reminder 2", "paid"]


def transitions(labels: list[str], steps: list[str]) -> list[tuple[str | None, str, str]]:
    """(old, new, raw) of every status change: the status after export, then each step."""
    first = [(None, labels[0], labels[0])]  # Bilendo's raw value and the label coincide here
    return first + [(labels[i], labels[i + 1], steps[i]) for i in range(len(steps))]


class StatusRecorder:
    """A plugin that records ``ledgerlink_status_changed``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, str, str]] = []

    @hookimpl
    def ledgerlink_status_changed(self, pipeline: str, source_ref: str, old: str | None, new: str, raw: str) -> None:
        self.calls.append((pipeline, source_ref, old, new, raw))


@dataclass
class World:
    tmp: Path
    bilendo: BilendoSandbox
    url: str
    env: dict[str, str]
    config: Path
    stores: dict[str, str]  # connection -> fake store name

    def docs_file(self, connection: str) -> Path:
        return self.tmp / f"{connection}-docs.json"

    def write_docs(self, connection: str, documents: list[Any]) -> None:
        payload = {"documents": [d.model_dump(mode="json") for d in documents]}
        self.docs_file(connection).write_text(json.dumps(payload, indent=1), encoding="utf-8")

    def run_subprocess(self, *args: str) -> tuple[int, Any]:
        env = {**os.environ, **self.env, "LEDGERLINK_FAKE_PLUGINS": "1"}
        env.pop("LEDGERLINK_CONFIG", None)
        result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(self.config), *args, "--json"],
                                capture_output=True, text=True, timeout=60, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, json.loads(result.stdout)

    def cli(self, *args: str) -> tuple[int, Any]:
        """The real CLI, in this process (the fake source's memory is this process's)."""
        result = invoke_cli(["-c", str(self.config), *args, "--json"], env=self.env)
        return result.exit_code, json.loads(result.output)

    def advance(self, external_id: str, step: str) -> None:
        answer = httpx.post(f"{self.url}/__sandbox__/advance", json={"invoice": external_id, "to": step}, timeout=10)
        assert answer.status_code == 200, answer.text

    def invoices(self) -> dict[str, dict[str, Any]]:
        return {inv["external_id"]: inv for inv in self.bilendo.state["invoices"].values()}

    def invoice_posts(self) -> int:
        return len([r for r in self.bilendo.requests if r["method"] == "POST" and r["path"] == "/api/v2/invoices"])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    token = f"bilendo-e2e-{secrets.token_hex(8)}"  # own token: rate limiters are per token, process-wide
    monkeypatch.setenv("BILENDO_E2E_TOKEN", token)
    bilendo = BilendoSandbox(seed={"tokens": [token]})
    stores = {"shop": f"e2e-shop-{tmp_path.name}", "crm": f"e2e-crm-{tmp_path.name}"}
    with SandboxServer(bilendo) as server:
        w = World(tmp_path, bilendo, server.url, {"BILENDO_E2E_TOKEN": token}, tmp_path / "ledgerlink.toml", stores)
        w.write_docs("shop", [sample_document(1, customer="cust-1"), sample_document(2, customer="cust-2")])
        w.write_docs("crm", [sample_document(3, customer="cust-3", gross="53.50", rate="7", shipping=None)])
        bilendo_conn = (f'plugin = "bilendo"\napi_token = "${{BILENDO_E2E_TOKEN}}"\nbase_url = "{server.url}"\n'
                        'language = "de"\nshipping_mode = "email"\n')
        w.config.write_text(f'''
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.shop]
plugin = "fake-source"
store = "{stores['shop']}"
file = "{w.docs_file('shop')}"

[connections.crm]
plugin = "fake-source"
store = "{stores['crm']}"
file = "{w.docs_file('crm')}"

[connections.bilendo-auto]
{bilendo_conn}dispatch = "automatic"

[connections.bilendo-manual]
{bilendo_conn}dispatch = "manual"

[[pipelines]]
name = "auto"
source = "shop"
target = "bilendo-auto"
due_days = 14

[[pipelines]]
name = "manual"
source = "crm"
target = "bilendo-manual"
due_days = 14
''', encoding="utf-8")
        yield w


@pytest.fixture
def recorder() -> Iterator[StatusRecorder]:
    """Records the hook on the plugin manager the CLI uses."""
    rec = StatusRecorder()
    pm = get_plugin_manager().pm
    pm.register(rec, name=f"status-recorder-{id(rec)}")
    try:
        yield rec
    finally:
        pm.unregister(rec)


def test_dunning_statuses_come_back_to_ledger_status_hook_and_source(world: World, recorder: StatusRecorder) -> None:
    code, report = world.run_subprocess("run")
    assert code == 0, report
    assert {p["pipeline"]: p["counts"] for p in report} == {"auto": {"pushed": 2}, "manual": {"pushed": 1}}

    invoices = world.invoices()
    assert set(invoices) == {"order-1", "order-2", "order-3"}
    assert [invoices[r]["dispatch"] for r in ("order-1", "order-2", "order-3")] == ["automatic", "automatic", "manual"]
    assert [invoices[r]["status"] for r in ("order-1", "order-2", "order-3")] == ["sent", "sent", "draft"]
    assert Decimal(invoices["order-1"]["amount"]) == Decimal("123.90")
    assert Decimal(invoices["order-3"]["amount"]) == Decimal("53.50")
    assert invoices["order-1"]["due_date"] == "2026-03-16"  # invoice date + due_days 14

    # First sync: the status after export. A sync without news records nothing.
    code, changes = world.cli("sync-status")
    assert code == 0
    assert sorted((c["pipeline"], c["source_ref"], c["old"], c["new"], c["raw"]) for c in changes) == [
        ("auto", "order-1", None, "sent", "sent"), ("auto", "order-2", None, "sent", "sent"),
        ("manual", "order-3", None, "draft", "draft")]
    assert world.cli("sync-status") == (0, [])

    # Bilendo moves order-1 (automatic) and order-3 (manual) on, one step at a time;
    # order-2 stays sent. Every step is synced and seen.
    for index in range(max(len(AUTO_STEPS), len(MANUAL_STEPS))):
        moved = []
        if index < len(AUTO_STEPS):
            world.advance("order-1", AUTO_STEPS[index])
            moved.append(("auto", "order-1", AUTO_LABELS[index], AUTO_LABELS[index + 1], AUTO_STEPS[index]))
        if index < len(MANUAL_STEPS):
            world.advance("order-3", MANUAL_STEPS[index])
            moved.append(("manual", "order-3", MANUAL_LABELS[index], MANUAL_LABELS[index + 1], MANUAL_STEPS[index]))
        code, changes = world.cli("sync-status")
        assert code == 0
        assert sorted((c["pipeline"], c["source_ref"], c["old"], c["new"], c["raw"]) for c in changes) == moved
        # written back to the source, in the source's wording (its mapper: identity)
        assert {c["source_ref"]: c["written_back"] for c in changes} == {m[1]: m[3] for m in moved}
        for _, ref, _, new, _ in moved:
            store = world.stores["shop" if ref != "order-3" else "crm"]
            assert fake_store(store)["source_statuses"][ref] == new

    # The ledger's history: every transition, in order, with its raw status and write-back.
    ledger = Ledger(load_config(world.config).ledger_url)
    try:
        history = {ref: [(h.old, h.new, h.raw, h.written_back) for h in ledger.status_history(source_ref=ref)]
                   for ref in ("order-1", "order-2", "order-3")}
    finally:
        ledger.close()
    assert history["order-1"] == [(old, new, raw, f"ok: {new}") for old, new, raw in transitions(AUTO_LABELS, AUTO_STEPS)]
    assert history["order-3"] == [
        (old, new, raw, f"ok: {new}") for old, new, raw in transitions(MANUAL_LABELS, MANUAL_STEPS)]
    assert history["order-2"] == [(None, "sent", "sent", "ok: sent")]

    # `status --json` shows the same history and the current status.
    code, rows = world.cli("status")
    assert code == 0
    by_ref = {r["source_ref"]: r for r in rows}
    assert (by_ref["order-1"]["status"], by_ref["order-1"]["status_raw"]) == ("paid", "paid")
    assert by_ref["order-2"]["status"] == "sent"
    for ref, labels, steps in (("order-1", AUTO_LABELS, AUTO_STEPS), ("order-3", MANUAL_LABELS, MANUAL_STEPS)):
        assert [(h["old"], h["new"], h["raw"]) for h in by_ref[ref]["history"]] == transitions(labels, steps)
    assert all(h["written_back"] == f"ok: {h['new']}" for r in rows for h in r["history"])

    # The hook fired once per transition.
    assert sorted(recorder.calls, key=str) == sorted(
        [("auto", "order-1", *t) for t in transitions(AUTO_LABELS, AUTO_STEPS)]
        + [("auto", "order-2", None, "sent", "sent")]
        + [("manual", "order-3", *t) for t in transitions(MANUAL_LABELS, MANUAL_STEPS)], key=str)

    # Paid is final in Bilendo; nothing was exported twice along the way.
    assert world.invoice_posts() == 3 and len(world.bilendo.state["invoices"]) == 3


def test_export_lock_a_change_in_the_source_is_flagged_not_pushed(world: World) -> None:
    code, _ = world.run_subprocess("run")
    assert code == 0
    assert world.invoice_posts() == 3

    # The shop changes order-1 after the export: a higher price, another invoice date.
    changed = sample_document(1, customer="cust-1", gross="129.00")
    changed.invoice_date = changed.invoice_date.replace(day=5)
    changed.cursor = "2026-03-05T09:00:00"  # its modification time: the source lists it again
    world.write_docs("shop", [changed, sample_document(2, customer="cust-2")])
    code, report = world.run_subprocess("run")
    assert code == 0, report
    auto = next(p for p in report if p["pipeline"] == "auto")
    [outcome] = auto["documents"]
    assert outcome["source_ref"] == "order-1" and outcome["state"] == "changed"
    assert outcome["reason"].startswith("changed after export: total 123.90 -> 133.90")
    assert "invoice_date '2026-03-02' -> '2026-03-05'" in outcome["reason"]

    # Bilendo keeps what was exported; nothing was sent again.
    assert world.invoice_posts() == 3
    assert Decimal(world.invoices()["order-1"]["amount"]) == Decimal("123.90")
    assert world.invoices()["order-1"]["invoice_date"] == "2026-03-02"

    # `status` flags it, with what changed; the row stays pushed and keeps syncing.
    code, rows = world.cli("status", "--state", "changed")
    assert code == 0
    [row] = rows
    assert row["source_ref"] == "order-1" and row["state"] == "pushed"
    assert row["changed"] == outcome["reason"]
    text = invoke_cli(["-c", str(world.config), "status"], env=world.env)
    assert "changed after export: total 123.90 -> 133.90" in text.output

    # Running again reports nothing new (the flag is kept, not repeated).
    code, report = world.run_subprocess("run")
    assert code == 0 and all(p["documents"] == [] for p in report)
    world.advance("order-1", "paid")
    code, changes = world.cli("sync-status")
    assert [(c["source_ref"], c["new"]) for c in changes if c["source_ref"] == "order-1"] == [("order-1", "paid")]


class GermanCrmSource(FakeSource):
    """A CRM that shows Bilendo's statuses in German, as 1CRM does."""

    status_mapper: ClassVar[str] = "bilendo_de"


class _CrmPlugin:
    distribution = "tests (German CRM)"

    @staticmethod
    @hookimpl
    def ledgerlink_register_sources(register: Callable[..., None]) -> None:
        register("german-crm", GermanCrmSource)


def test_write_status_uses_the_source_mappers_wording(world: World) -> None:
    raw = world.config.read_text(encoding="utf-8").replace(
        '[connections.crm]\nplugin = "fake-source"', '[connections.crm]\nplugin = "german-crm"')
    world.config.write_text(raw, encoding="utf-8")
    recorder = StatusRecorder()
    plugins = PluginManager(extra_plugins=[fake_plugin, _CrmPlugin(), recorder])
    runtime = Runtime(load_config(world.config, registry=plugins.registry), plugins=plugins,
                      reporter=CollectingReporter(), http_options={"backoff": 0.01})
    pipeline = runtime.config.pipeline("manual")
    runner = PipelineRunner(runtime, pipeline)
    try:
        assert runner.run().counts() == {"pushed": 1}
    finally:
        runner.close()

    wording = {}
    for step in ["sent", "due", "reminder_1", "reminder_2", "paid"]:
        world.advance("order-3", step)
        [change] = sync_status(runtime, pipeline)
        wording[change.new] = change.written_back
        assert fake_store(world.stores["crm"])["source_statuses"]["order-3"] == change.written_back
    # The target's mapper reads Bilendo's raw values; the source's mapper words them.
    assert wording == {"sent": "Versendet", "due": "Fällig", "reminder 1": "Reminder 1 versendet",
                       "reminder 2": "Reminder 2 versendet", "paid": "Bezahlt"}
    assert [c[3] for c in recorder.calls] == ["sent", "due", "reminder 1", "reminder 2", "paid"]
    history = runtime.ledger.status_history("manual", "order-3")
    assert [h.written_back for h in history] == [
        "ok: Versendet", "ok: Fällig", "ok: Reminder 1 versendet", "ok: Reminder 2 versendet", "ok: Bezahlt"]
