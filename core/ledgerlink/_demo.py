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
from ._plugins import Registry, import_string
from ._states import OutcomeState

PIPELINE = "shop-to-books"


def write_config(path: Path, demo: Demo, source_settings: dict[str, Any], target_settings: dict[str, Any],
                 rules: list[dict[str, Any]]) -> None:
    lines = [
        f"# Written by `ledgerlink demo`: {demo.source} into {demo.target}, both sandboxes on loopback.",
        "[ledger]",
        'url = "sqlite:///ledger.db"',
        "",
        "[connections.shop]",
        f"plugin = {toml_value(demo.source)}",
        *(f"{k} = {toml_value(v)}" for k, v in source_settings.items()),
        "",
        "[connections.books]",
        f"plugin = {toml_value(demo.target)}",
        *(f"{k} = {toml_value(v)}" for k, v in target_settings.items() if k != "plugin"),
        "",
        "[[pipelines]]",
        f"name = {toml_value(PIPELINE)}",
        'source = "shop"',
        'target = "books"',
        'matchers = ["customer_number", "email", "name"]',
        "create_contacts = true",
        'payment_reconciliation = "source"',
        'document_date = "invoice"',
        "due_days = 14",
        'tags = ["Import"]',
    ]
    for rule in rules:
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
            path.write_text(env[value[2:-1]], encoding="utf-8")
            path.chmod(0o600)
            out[key] = {"file": f"secrets/{path.name}"}
    return out


def run_demo(workdir: Path, *, name: str | None = None, fresh: bool = False,
             echo: Callable[[str], None] = print) -> int:
    from ._config import load_config
    from ._pipelines import run_pipelines
    from ._plugins import get_plugin_manager
    from ._runtime import Reporter, Runtime
    from ._sandbox import SandboxServer

    registry = get_plugin_manager().registry
    name, demo = choose_demo(registry, name)
    source_sandbox_cls = _sandbox_class(registry, "source", demo.source)
    target_sandbox_cls = _sandbox_class(registry, "target", demo.target)

    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    first_run = not (workdir / "ledger.db").exists()
    source_sandbox = source_sandbox_cls(seed=source_sandbox_cls.demo_seed(),
                                        state_path=workdir / f"{demo.source}-state.json")
    target_sandbox = target_sandbox_cls(state_path=workdir / f"{demo.target}-state.json")

    with SandboxServer(source_sandbox) as source_server, SandboxServer(target_sandbox) as target_server:
        source_settings, source_env = source_sandbox.demo_connection(source_server.url)
        target_settings, target_env = target_sandbox.demo_connection(target_server.url)
        secrets_dir = workdir / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        source_settings = _secrets_to_files(source_settings, source_env, secrets_dir)
        target_settings = _secrets_to_files(target_settings, target_env, secrets_dir)
        config_file = workdir / "ledgerlink.toml"
        write_config(config_file, demo, source_settings, target_settings, target_sandbox_cls.demo_rules())
        echo(f"Demo {name}: {demo.description}" if demo.description else f"Demo {name}")
        echo(f"{demo.source} sandbox on {source_server.url}, {demo.target} sandbox on {target_server.url}")
        echo(f"{'First' if first_run else 'Repeated'} run of pipeline {PIPELINE} ({config_file})")

        class Echo(Reporter):
            def message(self, text: str) -> None:
                echo(f"  {text}")

        config = load_config(config_file)
        runtime = Runtime(config, reporter=Echo())
        [result] = run_pipelines(runtime, config.pipelines)
        held = target_sandbox.describe()
    summary = summarise(result, runtime, held)
    for line in summary:
        echo(line)
    echo("")
    echo(f"See every document with: .venv/bin/ledgerlink -c {config_file} status")
    echo("Run `make demo` again: nothing new is transferred.")
    return 0 if result.error is None else 1


def summarise(result: Any, runtime: Any, target_held: str) -> list[str]:
    counts = result.counts()
    pushed = [o for o in result.outcomes if o.state == OutcomeState.PUSHED]
    total = sum((o.gross or Decimal(0) for o in pushed), Decimal("0.00"))
    lines = [""]
    if result.error:
        lines.append(f"Stopped: {result.error}")
    lines.append(f"Transferred: {len(pushed)} documents, {total} EUR gross" if pushed else "Transferred: nothing new")
    reasons: dict[str, int] = {}
    for outcome in result.outcomes:
        if outcome.state in (OutcomeState.SKIPPED, OutcomeState.FAILED, OutcomeState.QUARANTINED):
            reasons[f"{outcome.state}: {outcome.reason}"] = reasons.get(f"{outcome.state}: {outcome.reason}", 0) + 1
    for reason, count in sorted(reasons.items()):
        lines.append(f"  {count} x {reason}")
    created = sum(1 for o in pushed if o.reason and "(created)" in o.reason)
    matched = sum(1 for o in pushed if o.reason and ("matched by" in o.reason or "linked by" in o.reason))
    lines.append(f"Contacts: {created} created, {matched} documents reused an existing contact")
    ledger_counts = runtime.ledger.counts(PIPELINE)
    lines.append("Ledger: " + ", ".join(f"{v} {k}" for k, v in sorted(ledger_counts.items())))
    lines.append(target_held)
    if counts.get(OutcomeState.FAILED) or counts.get(OutcomeState.QUARANTINED):
        lines.append("Some documents need a person: see `status --state failed --state quarantined`.")
    return lines
