"""The demo: a registered source plugin's sandbox into a registered target plugin's sandbox.

Plugins offer demos through ``ledgerlink_register_demos`` (a :class:`Demo` names a
source and a target plugin). Both sandboxes run on loopback in this process (real
HTTP) and keep their state in the demo folder; the pipeline runs with a SQLite
ledger there. A second run finds everything already transferred. The core only
asks the registry and the sandboxes (``demo_seed``, ``demo_rules``,
``demo_connection``, ``describe``); it never imports a plugin.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._config import toml_value
from ._connectors import Demo
from ._errors import ConfigError
from ._files import make_private_dir, write_private
from ._plugins import Registry, import_string
from ._states import OutcomeState

PIPELINE = "shop-to-books"


def default_pipeline() -> dict[str, Any]:
    """The demo pipeline's settings (a story may change them before a run)."""
    return {
        "name": PIPELINE, "source": "shop", "target": "books",
        "matchers": ["customer_number", "email", "name"], "create_contacts": True,
        "payment_reconciliation": "source", "document_date": "invoice", "due_days": 14,
        "tags": ["Import"], "rules": [],
    }


def write_config(path: Path, title: str, connections: dict[str, dict[str, Any]],
                 pipelines: list[dict[str, Any]]) -> None:
    lines = [f"# Written by `ledgerlink demo`: {title}.", "[ledger]", 'url = "sqlite:///ledger.db"']
    for name, settings in connections.items():
        lines += ["", f"[connections.{name}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    for pipeline in pipelines:
        lines += ["", "[[pipelines]]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in pipeline.items() if k != "rules"]
        for rule in pipeline.get("rules", []):
            lines += ["", "[[pipelines.rules]]"]
            lines += [f"{key} = {toml_value(value)}" for key, value in rule.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def choose_demo(registry: Registry, name: str | None) -> tuple[str, Demo]:
    """The demo called ``name``, or the only (else the first, by name) registered one."""
    demos = registry.items["demo"]
    if not demos:
        raise ConfigError("no installed plugin offers a demo (install the bundled plugins: make install)")
    if name is None:
        name = sorted(demos)[0]
    if name not in demos:
        raise ConfigError(f"no demo named {name!r} (available: {', '.join(sorted(demos))})")
    return name, demos[name].factory


def _sandbox_class(registry: Registry, kind: str, plugin: str) -> Any:
    connector = registry.get(kind, plugin).factory
    if not connector.sandbox:
        raise ConfigError(f"the {kind} plugin {plugin!r} has no sandbox, so it cannot take part in a demo")
    return import_string(connector.sandbox)


def _secrets_to_files(settings: dict[str, Any], env: dict[str, str], folder: Path) -> dict[str, Any]:
    """Keep the demo's (fake) credentials in files beside the config, so `status` and
    friends work without exporting anything."""
    out = dict(settings)
    for key, value in settings.items():
        if isinstance(value, str) and value.startswith("${") and value.endswith("}") and value[2:-1] in env:
            path = folder / value[2:-1].lower()
            write_private(path, env[value[2:-1]], what="secret file")  # 0600 from the start
            out[key] = {"file": f"secrets/{path.name}"}
    return out


class DemoStory:
    """What a demo's story (``Demo.story``) works with: both sandboxes on loopback, the
    connections and pipelines of the config it writes, and the commands it runs.

    ``connections`` starts with ``shop`` (the source sandbox) and ``books`` (the
    target sandbox), ``pipelines`` with one pipeline ``shop-to-books``; a story may
    change settings (``connections["books"]["auto_book"] = True``), add a connection
    or a pipeline, then ``run`` again. ``control`` posts to a sandbox's control
    endpoints over HTTP (``/__sandbox__/...``), as a test or an operator would."""

    def __init__(self, name: str, demo: Demo, workdir: Path, echo: Callable[[str], None],
                 source: Any, target: Any, source_url: str, target_url: str,
                 connections: dict[str, dict[str, Any]], pipelines: list[dict[str, Any]]) -> None:
        self.name = name
        self.demo = demo
        self.workdir = workdir
        self.echo = echo
        self.source = source
        self.target = target
        self.source_url = source_url
        self.target_url = target_url
        self.connections = connections
        self.pipelines = pipelines
        self.config_file = workdir / "ledgerlink.toml"
        self.first_run = not (workdir / "ledger.db").exists()

    def pipeline(self, name: str = PIPELINE) -> dict[str, Any]:
        """The settings of the pipeline called ``name`` (to change before a run)."""
        for pipeline in self.pipelines:
            if pipeline["name"] == name:
                return pipeline
        raise KeyError(name)

    def write(self) -> Path:
        write_config(self.config_file, f"{self.demo.source} into {self.demo.target}, both sandboxes on loopback",
                     self.connections, self.pipelines)
        return self.config_file

    def _runtime(self) -> Any:
        from ._config import load_config
        from ._runtime import Reporter, Runtime

        echo = self.echo

        class Echo(Reporter):
            def message(self, text: str) -> None:
                echo(f"  {text}")

        config = load_config(self.write())
        return config, Runtime(config, reporter=Echo())

    def run(self, *pipelines: str, summary: bool = True) -> list[Any]:
        """``ledgerlink run`` of the named pipelines (default: all), in this process; prints
        each document's outcome line and, with ``summary``, the totals per pipeline."""
        from ._pipelines import run_pipelines

        config, runtime = self._runtime()
        chosen = [p for p in config.pipelines if not pipelines or p.name in pipelines]
        results = run_pipelines(runtime, chosen)
        if summary:
            for result in results:
                for line in summarise(result, runtime, self.target.describe()):
                    self.echo(line)
        return list(results)

    def retry(self, *pipelines: str, summary: bool = True) -> list[Any]:
        """``ledgerlink retry`` (failed and quarantined documents again) of the named
        pipelines (default: all); prints as ``run`` does."""
        from ._pipelines import run_pipelines

        config, runtime = self._runtime()
        chosen = [p for p in config.pipelines if not pipelines or p.name in pipelines]
        results = run_pipelines(runtime, chosen, run=lambda runner: runner.run(
            command="retry", documents=[], retry_failed=True, retry_quarantined=True))
        if summary:
            for result in results:
                for line in summarise(result, runtime, self.target.describe()):
                    self.echo(line)
        return list(results)

    def sync_status(self, *pipelines: str) -> list[Any]:
        """``ledgerlink sync-status``: prints each change as the command does."""
        from ._operations import sync_status

        config, runtime = self._runtime()
        changes = []
        for pipeline in config.pipelines:
            if not pipelines or pipeline.name in pipelines:
                changes.extend(sync_status(runtime, pipeline))
        for c in changes:
            back = f" (written back: {c.written_back})" if c.written_back else ""
            self.echo(f"  {c.pipeline} {c.source_ref}: {c.old or '-'} -> {c.new}{back}")
        self.echo(f"  {len(changes)} status changes")
        return changes

    def control(self, side: str, path: str, body: Any = None) -> Any:
        """POST ``body`` to ``/__sandbox__/<path>`` of the ``"source"`` or ``"target"``
        sandbox; the JSON answer. A refused request raises (a story's own bug)."""
        import httpx

        from ._sandbox import SANDBOX_PREFIX

        url = {"source": self.source_url, "target": self.target_url}[side]
        answer = httpx.post(f"{url}{SANDBOX_PREFIX}/{path.lstrip('/')}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def state(self, side: str) -> dict[str, Any]:
        """A sandbox's stored objects, as ``GET /__sandbox__/state`` answers them."""
        sandbox = {"source": self.source, "target": self.target}[side]
        return dict(sandbox.snapshot())


def _one_run(story: DemoStory) -> int:
    """The default story: one run of the pipeline (a repeated demo finds nothing new)."""
    story.echo(f"{'First' if story.first_run else 'Repeated'} run of pipeline {PIPELINE} ({story.config_file})")
    [result] = story.run(summary=True)
    story.echo("")
    story.echo(f"See every document with: .venv/bin/ledgerlink -c {story.config_file} status")
    story.echo("Run `make demo` again: nothing new is transferred.")
    return 0 if result.error is None else 1


def run_demo(workdir: Path, *, name: str | None = None, fresh: bool = False,
             echo: Callable[[str], None] = print) -> int:
    from ._plugins import get_plugin_manager
    from ._sandbox import SandboxServer

    registry = get_plugin_manager().registry
    name, demo = choose_demo(registry, name)
    source_sandbox_cls = _sandbox_class(registry, "source", demo.source)
    target_sandbox_cls = _sandbox_class(registry, "target", demo.target)
    tell: Callable[[DemoStory], int] = import_string(demo.story) if demo.story else _one_run

    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    make_private_dir(workdir, what="demo folder")
    source_sandbox = source_sandbox_cls(seed=source_sandbox_cls.demo_seed(),
                                        state_path=workdir / f"{demo.source}-state.json")
    target_sandbox = target_sandbox_cls(state_path=workdir / f"{demo.target}-state.json")

    with SandboxServer(source_sandbox) as source_server, SandboxServer(target_sandbox) as target_server:
        source_settings, source_env = source_sandbox.demo_connection(source_server.url)
        target_settings, target_env = target_sandbox.demo_connection(target_server.url)
        secrets_dir = workdir / "secrets"
        make_private_dir(secrets_dir)
        source_settings = _secrets_to_files(source_settings, source_env, secrets_dir)
        target_settings = _secrets_to_files(target_settings, target_env, secrets_dir)
        pipeline = default_pipeline()
        pipeline["rules"] = target_sandbox_cls.demo_rules()
        story = DemoStory(
            name, demo, workdir, echo, source_sandbox, target_sandbox, source_server.url, target_server.url,
            connections={
                "shop": {"plugin": demo.source, **{k: v for k, v in source_settings.items() if k != "plugin"}},
                "books": {"plugin": demo.target, **{k: v for k, v in target_settings.items() if k != "plugin"}},
            },
            pipelines=[pipeline],
        )
        echo(f"Demo {name}: {demo.description}" if demo.description else f"Demo {name}")
        echo(f"{demo.source} sandbox on {source_server.url}, {demo.target} sandbox on {target_server.url}")
        return tell(story)


def summarise(result: Any, runtime: Any, target_held: str) -> list[str]:
    counts = result.counts()
    pushed = [o for o in result.outcomes if o.state == OutcomeState.PUSHED]
    totals: dict[str, Decimal] = {}
    for outcome in pushed:
        currency = outcome.currency or "EUR"
        totals[currency] = totals.get(currency, Decimal("0.00")) + (outcome.gross or Decimal(0))
    lines = [""]
    if result.error:
        lines.append(f"Stopped: {result.error}")
    gross = ", ".join(f"{total} {currency}" for currency, total in sorted(totals.items()))
    lines.append(f"Transferred: {len(pushed)} documents, {gross} gross" if pushed else "Transferred: nothing new")
    reasons: dict[str, int] = {}
    for outcome in result.outcomes:
        if outcome.state in (OutcomeState.SKIPPED, OutcomeState.FAILED, OutcomeState.QUARANTINED):
            reasons[f"{outcome.state}: {outcome.reason}"] = reasons.get(f"{outcome.state}: {outcome.reason}", 0) + 1
    for reason, count in sorted(reasons.items()):
        lines.append(f"  {count} x {reason}")
    booked = [o for o in result.outcomes if o.state == OutcomeState.PAYMENT_BOOKED]
    waiting = [o for o in result.outcomes if o.state == OutcomeState.PAYMENT_PENDING]
    if booked or waiting:
        lines.append(f"Payments: {len(booked)} booked on documents transferred before"
                     + (f", {len(waiting)} waiting ({waiting[0].reason})" if waiting else ""))
    created = sum(1 for o in pushed if o.reason and "(created)" in o.reason)
    matched = sum(1 for o in pushed if o.reason and ("matched by" in o.reason or "linked by" in o.reason))
    lines.append(f"Contacts: {created} created, {matched} documents reused an existing contact")
    ledger_counts = runtime.ledger.counts(result.pipeline)
    lines.append("Ledger: " + ", ".join(f"{v} {k}" for k, v in sorted(ledger_counts.items())))
    lines.append(target_held)
    if counts.get(OutcomeState.FAILED) or counts.get(OutcomeState.QUARANTINED):
        lines.append("Some documents need a person: see `status --state failed --state quarantined`.")
    return lines
