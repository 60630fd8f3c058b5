"""The plugin system: discovery, allow-list, broken and duplicate plugins, and meta-tests."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ledgerlink import _hookspecs as hookspecs
from ledgerlink import hookimpl
from ledgerlink._errors import ConfigError
from ledgerlink._plugins import PluginManager
from ledgerlink.testing import FakeTarget, invoke_cli

ROOT = Path(__file__).resolve().parents[2]


def test_plugins_json_lists_builtin_matchers_and_installed_plugins() -> None:
    result = invoke_cli(["plugins", "--json"])
    assert result.exit_code == 0
    data = result.json
    assert {"customer_number", "email", "name"} <= set(data["matchers"])
    by_dist = {p["distribution"]: p for p in data["plugins"]}
    for dist in ("ledgerlink-sevdesk", "ledgerlink-billy", "ledgerlink-bilendo", "ledgerlink-billbee", "ledgerlink-cobot"):
        assert by_dist[dist]["version"] == "0.1.0"
    assert by_dist["ledgerlink"]["kinds"]


def test_load_plugins_allow_list_restricts_what_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERLINK_LOAD_PLUGINS", "ledgerlink-billy")
    pm = PluginManager()
    dists = {p.distribution for p in pm.registry.plugins}
    assert "ledgerlink-billy" in dists and "ledgerlink-sevdesk" not in dists
    # built-ins are always there
    assert pm.registry.names("matcher") == ["customer_number", "email", "name"]


def test_disable_autoload_loads_only_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERLINK_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("LEDGERLINK_FAKE_PLUGINS", "0")
    pm = PluginManager()
    # the only built-in source: the inbox of `ledgerlink serve` (documents a host posts)
    assert pm.registry.names("target") == [] and pm.registry.names("source") == ["inbox"]


def test_two_plugins_registering_the_same_name_is_an_error_naming_both() -> None:
    class One:
        distribution = "acme-one"

        @staticmethod
        @hookimpl
        def ledgerlink_register_targets(register):
            register("books", FakeTarget)

    class Two:
        distribution = "acme-two"

        @staticmethod
        @hookimpl
        def ledgerlink_register_targets(register):
            register("books", FakeTarget)

    with pytest.raises(ConfigError, match="acme-one and acme-two"):
        PluginManager(extra_plugins=[One(), Two()], autoload=False)


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(tmp_path: Path) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ledgerlink]\nbroken = broken_plugin_module_missing\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "plugins", "--json"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert any("broken-plugin" in p and "skipped" in p for p in data["problems"])
    assert "sevdesk" in data["targets"]


def test_trace_prints_every_hook_call(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEDGERLINK_TRACE_PLUGINS", "1")
    PluginManager()
    err = capsys.readouterr().err
    assert "ledgerlink_register_matchers(register) -> ledgerlink._matching" in err


def test_a_misspelt_hook_implementation_is_caught() -> None:
    class Typo:
        @staticmethod
        @hookimpl
        def ledgerlink_register_target(register):  # missing "s"
            pass

    with pytest.raises(ConfigError, match="unknown hook"):
        PluginManager(extra_plugins=[Typo()], autoload=False)


# -- meta-tests: every hook is tested and documented ---------------------------------------
HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("ledgerlink_")]


def test_the_hook_list_is_complete() -> None:
    assert sorted(HOOKS) == sorted(hookspecs.HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    tests = "".join(p.read_text() for p in (ROOT / "core" / "tests").glob("test_*.py") if p.name != "test_plugins.py")
    tests += "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert hook in tests, f"no test mentions {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    guide = (ROOT / "docs" / "connector-guide.md").read_text()
    assert re.search(rf"^#+ `?{hook}", guide, re.M), f"docs/connector-guide.md has no section for {hook}"
    spec = getattr(hookspecs, hook)
    assert spec.__doc__ and ":param" in spec.__doc__ and "Called" in spec.__doc__
