"""`ledgerlink sandbox serve NAME` prints a connection that works as pasted (issue 17):
for every bundled sandbox, the printed `[connections.NAME]` block goes into a
`ledgerlink.toml` unchanged, the printed `export` lines into the environment, and
`ledgerlink check` reaches the running sandbox with them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

SANDBOXES = ["sevdesk", "billy", "bilendo", "billbee", "cobot", "shipmondo", "onecrm"]


@pytest.mark.parametrize("name", SANDBOXES)
def test_the_printed_connection_works_as_pasted(name: str, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ledgerlink._cli", "sandbox", "serve", name, "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        block: list[str] = []
        env: dict[str, str] = {}
        section = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline().rstrip("\n")
            if line == "paste into ledgerlink.toml:":
                section = "block"
                continue
            if line.startswith("and set the sandbox's demo credentials"):
                section = "env"
                continue
            if section == "block" and line.startswith("  "):
                block.append(line[2:])
                continue
            if section == "env" and line.startswith("  export "):
                var, _, value = line[len("  export "):].partition("=")
                env[var] = value
                if len(env) == block_secrets(block):
                    break
                continue
            if section is not None and not line:
                break
        assert block and block[0] == f"[connections.{name}]", block
        text = '[ledger]\nurl = "sqlite:///ledger.db"\n\n' + "\n".join(block) + "\n"
        tomllib.loads(text)  # valid TOML as printed
        (tmp_path / "ledgerlink.toml").write_text(text)
        run_env = {**os.environ, **env}
        run_env.pop("LEDGERLINK_CONFIG", None)
        validate = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "config", "validate"], cwd=tmp_path,
                                  env=run_env, capture_output=True, text=True, timeout=60)
        assert validate.returncode == 0, validate.stdout + validate.stderr
        check = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "check"], cwd=tmp_path, env=run_env,
                               capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"ok   {name} ({name})" in check.stdout, check.stdout
    finally:
        proc.kill()
        proc.wait(timeout=10)


def block_secrets(block: list[str]) -> int:
    """How many ${VAR} the block names (one export line each)."""
    return sum(line.count("${") for line in block)
