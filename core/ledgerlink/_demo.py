"""The demo: webshop orders from the Billbee sandbox into the sevDesk sandbox.

Both sandboxes run on loopback in this process (real HTTP), keep their state in
the demo folder, and the pipeline runs with a SQLite ledger there. A second run
finds everything already transferred. The demo uses only the plugin registry: the
core never imports a plugin.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._errors import ConfigError

SOURCE, TARGET = "billbee", "sevdesk"

# SKR03 revenue accounts, for the demo only (an operator always chooses; see ACCOUNTING.md).
DEMO_RULES: list[dict[str, Any]] = [
    {"when": {"treatment": "intra_eu_supply"}, "account": "8125"},
    {"when": {"treatment": "export"}, "account": "8120"},
    {"when": {"tax_rate": 7}, "account": "8300"},
    {"when": {"tax_rate": 0}, "account": "8200"},  # tax-free lines, e.g. redeemed multi-purpose vouchers
    {"when": {}, "account": "8400"},
]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(path: Path, source_settings: dict[str, Any], target_settings: dict[str, Any]) -> None:
    lines = [
        "# Written by `ledgerlink demo`: Billbee orders into sevDesk, both sandboxes on loopback.",
        "[ledger]",
        'url = "sqlite:///ledger.db"',
        "",
        "[connections.shop]",
        f'plugin = "{SOURCE}"',
        *(f"{k} = {_toml_value(v)}" for k, v in source_settings.items()),
        "",
        "[connections.books]",
        f'plugin = "{TARGET}"',
        *(f"{k} = {_toml_value(v)}" for k, v in target_settings.items()),
        "",
        "[[pipelines]]",
        'name = "shop-to-books"',
        'source = "shop"',
        'target = "books"',
        'matchers = ["customer_number", "email", "name"]',
        "create_contacts = true",
        'payment_reconciliation = "source"',
        'document_date = "invoice"',
        "due_days = 14",
        'tags = ["Import"]',
    ]
    for rule in DEMO_RULES:
        lines += ["", "[[pipelines.rules]]", f"when = {_toml_value(rule['when'])}", f'account = "{rule["account"]}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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


def run_demo(workdir: Path, *, fresh: bool = False, echo: Callable[[str], None] = print) -> int:
    from ._config import load_config
    from ._plugins import get_plugin_manager, import_string
    from ._runner import Reporter, Runtime, run_pipelines
    from ._sandbox import SandboxServer

    registry = get_plugin_manager().registry
    try:
        source_cls = registry.get("source", SOURCE).factory
        target_cls = registry.get("target", TARGET).factory
    except ConfigError as exc:
        raise ConfigError(f"the demo needs the billbee and sevdesk plugins ({exc})") from None
    source_sandbox_cls = import_string(source_cls.sandbox)
    target_sandbox_cls = import_string(target_cls.sandbox)

    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    first_run = not (workdir / "ledger.db").exists()
    source_sandbox = source_sandbox_cls(seed=source_sandbox_cls.demo_seed(), state_path=workdir / "billbee-state.json")
    target_sandbox = target_sandbox_cls(state_path=workdir / "sevdesk-state.json")

    with SandboxServer(source_sandbox) as source_server, SandboxServer(target_sandbox) as target_server:
        source_settings, source_env = source_sandbox.demo_connection(source_server.url)
        target_settings, target_env = target_sandbox.demo_connection(target_server.url)
        secrets_dir = workdir / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        source_settings = _secrets_to_files(source_settings, source_env, secrets_dir)
        target_settings = _secrets_to_files(target_settings, target_env, secrets_dir)
        config_file = workdir / "ledgerlink.toml"
        write_config(config_file, source_settings, target_settings)
        echo(f"Billbee sandbox on {source_server.url}, sevDesk sandbox on {target_server.url}")
        echo(f"{'First' if first_run else 'Repeated'} run of pipeline shop-to-books ({config_file})")

        class Echo(Reporter):
            def message(self, text: str) -> None:
                echo(f"  {text}")

        config = load_config(config_file)
        runtime = Runtime(config, reporter=Echo())
        [result] = run_pipelines(runtime, config.pipelines)
        state = target_sandbox.snapshot()
    summary = summarise(result, runtime, state)
    for line in summary:
        echo(line)
    echo("")
    echo(f"See every document with: .venv/bin/ledgerlink -c {config_file} status")
    echo("Run `make demo` again: nothing new is transferred.")
    return 0 if result.error is None else 1


def summarise(result: Any, runtime: Any, target_state: dict[str, Any]) -> list[str]:
    counts = result.counts()
    pushed = [o for o in result.outcomes if o.state == "pushed"]
    total = sum((o.gross or Decimal(0) for o in pushed), Decimal("0.00"))
    lines = [""]
    if result.error:
        lines.append(f"Stopped: {result.error}")
    lines.append(f"Transferred: {len(pushed)} documents, {total} EUR gross" if pushed else "Transferred: nothing new")
    reasons: dict[str, int] = {}
    for outcome in result.outcomes:
        if outcome.state in ("skipped", "failed", "quarantined"):
            reasons[f"{outcome.state}: {outcome.reason}"] = reasons.get(f"{outcome.state}: {outcome.reason}", 0) + 1
    for reason, count in sorted(reasons.items()):
        lines.append(f"  {count} x {reason}")
    created = sum(1 for o in pushed if o.reason and "(created)" in o.reason)
    matched = sum(1 for o in pushed if o.reason and ("matched by" in o.reason or "linked by" in o.reason))
    lines.append(f"Contacts: {created} created, {matched} documents reused an existing contact")
    ledger_counts = runtime.ledger.counts("shop-to-books")
    lines.append("Ledger: " + ", ".join(f"{v} {k}" for k, v in sorted(ledger_counts.items())))
    vouchers = target_state.get("vouchers") or target_state.get("Voucher") or {}
    if isinstance(vouchers, dict):
        lines.append(f"sevDesk sandbox now holds {len(vouchers)} vouchers")
    if counts.get("failed") or counts.get("quarantined"):
        lines.append("Some documents need a person: see `status --state failed --state quarantined`.")
    return lines
