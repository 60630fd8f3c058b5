"""Secrets never leave: with a distinctive token for every plugin, every command
(also failing ones: a rejected token, a vendor's HTTP 500, a crash in the middle
of a push) runs at the highest verbosity with a log file, and none of the tokens
(nor their base64 forms, nor Billbee's ``user:password`` in base64) appears in
stdout, stderr, the log files, any ledger table, the raw ledger file, the audit
export, any ``--json`` output or ``config show``.

The five sandboxes are served on loopback in this process; the CLI runs as a
subprocess, as a user runs it (a fresh process also has a fresh redaction
registry, so nothing is hidden by secrets another command registered earlier).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from ledgerlink._config import toml_value
from ledgerlink._ledger import Ledger
from ledgerlink._sandbox import Faults, SandboxServer
from ledgerlink_bilendo.sandbox import BilendoSandbox
from ledgerlink_billbee.sandbox import BillbeeSandbox
from ledgerlink_billy.sandbox import BillySandbox
from ledgerlink_cobot.sandbox import DEMO_TOKEN as COBOT_DEMO_TOKEN
from ledgerlink_cobot.sandbox import CobotSandbox
from ledgerlink_sevdesk.sandbox import DEMO_RULES, SevdeskSandbox

pytestmark = pytest.mark.slow  # 25 CLI processes, about 25 s

BILLBEE_USER = "secret-test@ledgerlink.example"
GOOD = {
    "BILLBEE_API_KEY": "SECRET-billbee-key-7f3a9c1e5d",
    "BILLBEE_API_PASSWORD": "SECRET-billbee-pw-2b8d4f6a0c",
    "SEVDESK_API_TOKEN": "SECRET-sevdesk-5e1c0b9d3a7f",
    "BILLY_API_TOKEN": "SECRET-billy-3a7f2c8e6b1d",
    "BILENDO_API_TOKEN": "SECRET-bilendo-9d4b6e1f0a2c",
    "COBOT_API_TOKEN": "SECRET-cobot-6c2e8a4b9f3e",
}
WRONG = {key: value.replace("SECRET-", "SECRET-WRONG-") for key, value in GOOD.items()}


def forms(secret: str) -> set[str]:
    """The ways a secret can show up in text."""
    raw = secret.encode()
    out = {secret, quote(secret, safe="")}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        out |= {encoded, encoded.rstrip("=")}
    return out


def all_forms() -> dict[str, str]:
    """form -> what it is."""
    found: dict[str, str] = {}
    for env in (GOOD, WRONG):
        for name, secret in env.items():
            for form in forms(secret):
                found[form] = name
        pair = f"{BILLBEE_USER}:{env['BILLBEE_API_PASSWORD']}"
        for form in forms(pair):
            found[form] = "billbee user:password"
    return found


def find_leaks(where: str, text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [f"{what} ({form[:12]}...) in {where}" for form, what in all_forms().items() if form in text]


# -- the sandboxes and the config -----------------------------------------------------------
def sandboxes() -> dict[str, Any]:
    orders = BillbeeSandbox.demo_seed()
    orders["Data"] = orders["Data"][:6]  # few orders: Billbee's write-back is limited to 2 calls a second
    billbee = BillbeeSandbox(seed=orders, api_key=GOOD["BILLBEE_API_KEY"], username=BILLBEE_USER,
                             api_password=GOOD["BILLBEE_API_PASSWORD"], throttle=False)
    sevdesk = SevdeskSandbox()
    sevdesk.state["tokens"] = [GOOD["SEVDESK_API_TOKEN"]]
    billy = BillySandbox()
    billy.state["tokens"] = [GOOD["BILLY_API_TOKEN"]]
    bilendo = BilendoSandbox()
    bilendo.state["tokens"] = [GOOD["BILENDO_API_TOKEN"]]
    cobot = CobotSandbox(demo=True)
    cobot.state["tokens"] = {GOOD["COBOT_API_TOKEN"]: cobot.state["tokens"][COBOT_DEMO_TOKEN]}
    return {"shop": billbee, "books": sevdesk, "billy": billy, "dunning": bilendo, "space": cobot}


def write_config(path: Path, urls: dict[str, str], boxes: dict[str, Any]) -> None:
    plugins = {"shop": "billbee", "books": "sevdesk", "billy": "billy", "dunning": "bilendo", "space": "cobot"}
    lines = ["[ledger]", 'url = "sqlite:///ledger.db"']
    for name, box in boxes.items():
        settings, _ = box.demo_connection(urls[name])
        settings.pop("plugin", None)
        if name == "books":
            settings.update(requests_per_second=1000, backoff=0.01, retries=1)
        if name == "space":  # Cobot's own limits (60 and 6 a minute) would make this test take minutes
            settings.update(requests_per_second=1000, memberships_requests_per_second=1000, window_days=366)
        if name == "billy":
            settings.update(requests_per_second=100)
        lines += ["", f"[connections.{name}]", f'plugin = "{plugins[name]}"',
                  *(f"{k} = {toml_value(v)}" for k, v in settings.items())]
    pipelines = [("shop-to-books", "shop", "books", DEMO_RULES), ("space-to-billy", "space", "billy", []),
                 ("space-to-dunning", "space", "dunning", [])]
    for name, source, target, rules in pipelines:
        lines += ["", "[[pipelines]]", f'name = "{name}"', f'source = "{source}"', f'target = "{target}"',
                  'payment_reconciliation = "source"']
        for rule in rules:
            lines += ["", "[[pipelines.rules]]", f"when = {toml_value(rule['when'])}",
                      f'account = "{rule["account"]}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Runner:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.outputs: list[tuple[str, str]] = []
        self.count = 0

    def __call__(self, config: Path, env: dict[str, str], *args: str, extra_env: dict[str, str] | None = None,
                 ) -> subprocess.CompletedProcess[str]:
        self.count += 1
        log_file = self.workdir / f"log-{self.count:02d}.txt"
        done = subprocess.run(
            [sys.executable, "-m", "ledgerlink._cli", "-vv", "--log-file", str(log_file), "-c", str(config), *args],
            capture_output=True, text=True, timeout=120, cwd=self.workdir,
            env={**os.environ, **env, **(extra_env or {}), "PYTHONIOENCODING": "utf-8"},
        )
        label = " ".join(args)
        self.outputs.append((f"stdout of `{label}`", done.stdout))
        self.outputs.append((f"stderr of `{label}`", done.stderr))
        return done

    def log_files(self) -> Iterator[tuple[str, bytes]]:
        for path in sorted(self.workdir.glob("log-*.txt")):
            yield path.name, path.read_bytes()


def test_no_secret_leaves_through_any_command_output_log_ledger_or_audit(tmp_path: Path) -> None:
    boxes = sandboxes()
    cli = Runner(tmp_path)
    with ExitStack() as stack:
        servers = {name: stack.enter_context(SandboxServer(box)) for name, box in boxes.items()}
        urls = {name: server.url for name, server in servers.items()}
        config = tmp_path / "ledgerlink.toml"
        write_config(config, urls, boxes)

        # Wrong tokens: every sandbox answers 401 (each accepts only its own token).
        for command in (["check"], ["run"], ["match-customers", "--json"]):
            done = cli(config, WRONG, *command)
            assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "rejected the credentials" in cli.outputs[-1][1] + cli.outputs[-2][1]

        # sevDesk answers HTTP 500 to everything: documents fail, their reasons are stored.
        boxes["books"].faults = Faults(rate_500=1.0, retry_after=0.01)
        done = cli(config, GOOD, "run", "-p", "shop-to-books", "--json")
        assert done.returncode == 1, done.stderr[-2000:]
        assert "HTTP 500" in done.stdout
        boxes["books"].faults = Faults()

        # A crash right after a push (the process dies there), then the run that settles it.
        done = cli(config, GOOD, "run", "-p", "shop-to-books", extra_env={"LEDGERLINK_CRASH_AT": "after_push"})
        assert done.returncode != 0 and "SimulatedCrash" in done.stderr, done.stderr[-2000:]

        commands = [
            ["config", "validate"], ["config", "show"], ["plugins", "--json"], ["check"], ["check", "--json"],
            ["match-customers", "--dry-run", "--json"], ["match-customers"],
            ["run", "--dry-run"], ["run", "--json"], ["retry", "--json"], ["run"],
            ["backfill", "-p", "shop-to-books", "--since", "2025-01-01", "--until", "2025-12-31", "--json"],
            ["sync-status", "--json"], ["sync-status"], ["status", "--json"], ["status", "--history"],
            ["audit"], ["audit", "-o", str(tmp_path / "audit.csv")],
            ["webhooks", "subscribe", "-p", "space-to-billy", "--callback-url", "http://127.0.0.1:9/hook"],
            ["watch", "--rounds", "1", "--interval", "0"],
        ]
        results = {" ".join(c): cli(config, GOOD, *c) for c in commands}
        assert results["check"].returncode == 0, results["check"].stdout + results["check"].stderr
        assert results["config show"].returncode == 0 and '"***"' in results["config show"].stdout
        assert results["audit"].stdout.count("\n") > 3, results["audit"].stdout  # writes were audited

    # The runs did what they should, so the places searched below hold real content.
    pushed = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").documents("shop-to-books", ["pushed"])
    assert len(pushed) >= 5
    assert boxes["books"].state["vouchers"]

    leaks: list[str] = []
    for where, text in cli.outputs:
        leaks += find_leaks(where, text)
    for name, data in cli.log_files():
        leaks += find_leaks(name, data)
    leaks += find_leaks("audit.csv", (tmp_path / "audit.csv").read_bytes())
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    for table in ledger.table_names():
        for row in ledger.iter_table(table):
            leaks += find_leaks(f"ledger table {table}", repr(row))
    ledger.close()
    for path in tmp_path.glob("ledger.db*"):
        leaks += find_leaks(f"raw file {path.name}", path.read_bytes())
    assert not leaks, "\n".join(sorted(set(leaks)))
    # The search would have found them: the sandboxes saw the tokens.
    assert find_leaks("billbee request", boxes["shop"].api_key)
