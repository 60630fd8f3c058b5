"""`--log-json`: the log as one JSON object per line, for a log collector (issue 21)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ledgerlink.testing import fake_config


def test_log_json_writes_one_object_per_line_and_keeps_secrets_out(tmp_path: Path) -> None:
    (tmp_path / "ledgerlink.toml").write_text(fake_config(ledger=f"sqlite:///{tmp_path / 'ledger.db'}"))
    env = {**os.environ, "LEDGERLINK_FAKE_PLUGINS": "1"}
    result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(tmp_path / "ledgerlink.toml"),
                             "run", "-v", "--log-json"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines, result.stderr
    for line in lines:
        entry = json.loads(line)
        assert set(entry) >= {"time", "level", "logger", "message"} and entry["logger"].startswith("ledgerlink")
        assert entry["time"].endswith("+00:00") and entry["level"] in ("info", "warning", "debug", "error")
    plain = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(tmp_path / "ledgerlink.toml"),
                            "run", "-v"], capture_output=True, text=True, env=env, timeout=120)
    assert not [line for line in plain.stderr.splitlines() if line.startswith("{")]
