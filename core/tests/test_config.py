"""The config loader: the broken-config corpus through the real CLI, and unit tests.

Every file in tests/configs/broken/ has one problem and says on its first line
``# expect: <key path> | <substring of the message>`` (optionally a line
``# never: <text>`` that must not appear in the output, e.g. a literal secret).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ledgerlink import hookimpl
from ledgerlink._config import (
    Config,
    PipelineConfig,
    Rule,
    RuleWhen,
    json_schema,
    load_config,
    parse_config,
)
from ledgerlink._connectors import Settings
from ledgerlink._errors import ConfigError
from ledgerlink._http import redact
from ledgerlink._plugins import PluginManager
from ledgerlink.testing import fake_plugin
from pydantic import Field, SecretStr

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "configs"
BROKEN = sorted((CONFIGS / "broken").glob("*.toml"))
GOOD = sorted((CONFIGS / "good").glob("*.toml"))

# The environment every corpus file is checked in: the secrets the files name are set
# (so each file fails for its one problem only); LEDGERLINK_TEST_UNSET_TOKEN is not.
SECRETS = {
    "BILLBEE_API_KEY": "bb-key-0001",
    "BILLBEE_API_PASSWORD": "bb-password-0001",
    "BILLBEE_OUTLET_PASSWORD": "bb-outlet-0001",
    "SEVDESK_API_TOKEN": "sevdesk-token-0001",
    "BILLY_ACCESS_TOKEN": "billy-token-0001",
    "COBOT_ACCESS_TOKEN": "cobot-token-0001",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(SECRETS)
    env["LEDGERLINK_FAKE_PLUGINS"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerlink._cli", *args],
        capture_output=True, text=True, encoding="utf-8", errors="replace",
        env=env or _env(), cwd=cwd, timeout=60,
    )


def _header(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    text = data.decode("utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else data.decode("utf-8", "replace")
    header: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^# (expect|never): (.*)$", line)
        if match:
            header[match.group(1)] = match.group(2).strip()
    return header


def test_the_corpus_is_there() -> None:
    assert len(BROKEN) >= 22
    assert len(GOOD) >= 2
    for path in BROKEN:
        first = _header(path).get("expect")
        assert first and " | " in first, f"{path.name}: first line must be '# expect: <key path> | <message>'"


@pytest.fixture(scope="module")
def validated() -> dict[Path, subprocess.CompletedProcess[str]]:
    """`config validate` of every corpus file, run side by side (each is a fresh process)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = pool.map(lambda p: _cli("-c", str(p), "config", "validate"), BROKEN + GOOD)
        return dict(zip(BROKEN + GOOD, results, strict=True))


@pytest.mark.parametrize("path", BROKEN, ids=[p.name for p in BROKEN])
def test_a_broken_config_gives_one_clear_line(path: Path, validated: dict[Path, Any]) -> None:
    header = _header(path)
    key_path, _, substring = header["expect"].partition(" | ")
    result = validated[path]

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    # error: FILE: key.path: message   (key path followed by ':' or ', column N:')
    prefix = re.compile(rf"^error: {re.escape(str(path))}: {re.escape(key_path)}[:,] ")
    assert prefix.match(line), f"expected {key_path!r} right after the file name in: {line}"
    assert substring in line, line
    assert result.stdout == ""
    if "never" in header:
        assert header["never"] not in result.stdout + result.stderr
    for secret in SECRETS.values():
        assert secret not in line


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_a_good_config_validates(path: Path, validated: dict[Path, Any]) -> None:
    result = validated[path]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok ")
    assert result.stderr == ""


# -- unit tests ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry() -> Any:
    return PluginManager(extra_plugins=[fake_plugin]).registry


def _raw(**pipeline: Any) -> dict[str, Any]:
    return {
        "connections": {
            "src": {"plugin": "fake-source", "token": "${LL_TEST_SOURCE_TOKEN}"},
            "dst": {"plugin": "fake-target", "token": {"file": "token.txt"}},
        },
        "pipelines": [{"name": "p", "source": "src", "target": "dst", **pipeline}],
    }


def _error(raw: dict[str, Any], path: Path, registry: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, path, registry=registry)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LL_TEST_SOURCE_TOKEN", "source-token-from-env-7f3a")
    (tmp_path / "token.txt").write_text("target-token-from-file-91c2\n", encoding="utf-8")
    return tmp_path


def test_secrets_from_env_and_file_are_read(config_dir: Path, registry: Any) -> None:
    config = parse_config(_raw(), config_dir / "ledgerlink.toml", registry=registry)
    source = config.connections["src"].settings
    target = config.connections["dst"].settings
    assert isinstance(source.token, SecretStr)
    assert source.token.get_secret_value() == "source-token-from-env-7f3a"
    assert target.token.get_secret_value() == "target-token-from-file-91c2"  # stripped of the newline
    # and they are now redacted from every message ledgerlink prints
    assert redact("sent source-token-from-env-7f3a") == "sent ***"


def test_config_show_redacts_secrets(config_dir: Path) -> None:
    path = config_dir / "ledgerlink.toml"
    path.write_text(
        '[ledger]\nurl = "postgresql://ll:${LL_TEST_DB_PASSWORD}@db.example/ll"\n\n'
        '[connections.src]\nplugin = "fake-source"\ntoken = "${LL_TEST_SOURCE_TOKEN}"\n\n'
        '[connections.dst]\nplugin = "fake-target"\ntoken = { file = "token.txt" }\n\n'
        '[[pipelines]]\nname = "p"\nsource = "src"\ntarget = "dst"\n',
        encoding="utf-8",
    )
    env = _env(LL_TEST_SOURCE_TOKEN="source-token-from-env-7f3a", LL_TEST_DB_PASSWORD="db-pass-5e5e")
    result = _cli("-c", str(path), "config", "show", env=env)
    assert result.returncode == 0, result.stderr
    for secret in ("source-token-from-env-7f3a", "target-token-from-file-91c2", "db-pass-5e5e"):
        assert secret not in result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["connections"]["src"]["token"] == "***"
    assert shown["connections"]["dst"]["token"] == "***"
    assert shown["connections"]["src"]["plugin"] == "fake-source"
    assert shown["ledger"]["url"] == "postgresql://ll:***@db.example/ll"


def test_a_literal_secret_is_refused_without_echoing_it(config_dir: Path, registry: Any) -> None:
    raw = _raw()
    raw["connections"]["src"]["token"] = "literal-token-abc123"
    message = _error(raw, config_dir / "c.toml", registry)
    assert "connections.src.token: secrets are never written in the file" in message
    assert "literal-token-abc123" not in message


@pytest.mark.parametrize("value", ["$LL_X", "${LL_X", "$LL_X}", "{LL_X}", "%LL_X%", "env:LL_X"])
def test_near_misses_of_env_references_get_a_hint(value: str, config_dir: Path, registry: Any) -> None:
    raw = _raw()
    raw["connections"]["src"]["token"] = value
    message = _error(raw, config_dir / "c.toml", registry)
    assert 'write "${LL_X}"' in message


def test_empty_secrets_are_refused(config_dir: Path, registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LL_TEST_SOURCE_TOKEN", "  ")
    assert "environment variable LL_TEST_SOURCE_TOKEN is empty" in _error(_raw(), config_dir / "c.toml", registry)
    monkeypatch.setenv("LL_TEST_SOURCE_TOKEN", "fine-token")
    (config_dir / "token.txt").write_text("\n", encoding="utf-8")
    assert "connections.dst.token: the secret file" in _error(_raw(), config_dir / "c.toml", registry)


def test_a_secret_file_path_is_relative_to_the_config(config_dir: Path, registry: Any, tmp_path_factory: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    config = parse_config(_raw(), config_dir / "ledgerlink.toml", registry=registry)
    assert config.connections["dst"].settings.token.get_secret_value() == "target-token-from-file-91c2"


def test_a_secret_is_never_echoed_by_a_validation_error(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Picky(Settings):
        api_key: SecretStr = Field(min_length=40)

    class PickySource:
        Settings = Picky

    class Plugin:
        @hookimpl
        def ledgerlink_register_sources(self, register: Any) -> None:
            register("picky", PickySource)

    registry = PluginManager(extra_plugins=[Plugin()], autoload=False).registry
    monkeypatch.setenv("LL_TEST_SHORT_KEY", "short-secret-key-4242")
    raw = {"connections": {"p": {"plugin": "picky", "api_key": "${LL_TEST_SHORT_KEY}"}}}
    message = _error(raw, config_dir / "c.toml", registry)
    assert message.startswith(f"{config_dir / 'c.toml'}: connections.p.api_key: ")
    assert "short-secret-key-4242" not in message


def test_a_plugin_whose_validator_breaks_is_named_in_one_line(config_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import field_validator

    class Broken(Settings):
        api_key: SecretStr
        region: str = "eu"

        @field_validator("region")
        @classmethod
        def _region(cls, value: str) -> str:
            raise RuntimeError(f"lookup table missing for {value}")

    class BrokenTarget:
        Settings = Broken

    class Plugin:
        @hookimpl
        def ledgerlink_register_targets(self, register: Any) -> None:
            register("brittle", BrokenTarget)

    registry = PluginManager(extra_plugins=[Plugin()], autoload=False).registry
    monkeypatch.setenv("LL_TEST_BRITTLE_KEY", "brittle-key-3131")
    raw = {"connections": {"b": {"plugin": "brittle", "api_key": "${LL_TEST_BRITTLE_KEY}", "region": "x"}}}
    message = _error(raw, config_dir / "c.toml", registry)
    assert message.startswith(f"{config_dir / 'c.toml'}: connections.b: the target plugin 'brittle'")
    assert "RuntimeError: lookup table missing for x" in message


def test_config_schema_is_valid_and_covers_every_plugin(tmp_path: Path) -> None:
    result = _cli("config", "schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)

    registry = PluginManager().registry  # the same plugins the CLI loaded (fake ones included)
    installed = {
        (kind, name): reg.factory.Settings
        for kind in ("source", "target") for name, reg in registry.items[kind].items()
    }
    assert {"billbee", "cobot", "sevdesk", "billy", "bilendo", "fake-source", "fake-target"} <= {n for _, n in installed}
    variants = schema["properties"]["connections"]["additionalProperties"]["oneOf"]
    by_plugin = {v["properties"]["plugin"]["const"]: v for v in variants}
    assert set(by_plugin) == {name for _, name in installed}
    for (_, name), model in installed.items():
        assert set(by_plugin[name]["properties"]) == set(model.model_fields) | {"plugin"}, name
        assert by_plugin[name]["additionalProperties"] is False


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def test_the_schema_accepts_the_good_configs_and_rejects_broken_ones(registry: Any) -> None:
    schema = json_schema(registry)
    validator = jsonschema.Draft202012Validator(schema)  # every $ref must resolve
    for path in GOOD:
        raw = _as_json(tomllib.loads(path.read_text(encoding="utf-8")))
        errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(raw)]
        assert errors == [], f"{path.name}: {errors}"
    raw = _as_json(tomllib.loads(GOOD[0].read_text(encoding="utf-8")))
    raw["pipelines"][0]["due_days"] = -1
    assert not validator.is_valid(raw)
    raw = _as_json(tomllib.loads(GOOD[0].read_text(encoding="utf-8")))
    raw["pipelines"][0]["matchers"] = ["phone"]
    assert not validator.is_valid(raw)
    raw = _as_json(tomllib.loads(GOOD[0].read_text(encoding="utf-8")))
    raw["connections"]["books"]["api_token"] = "a-literal-token"
    assert not validator.is_valid(raw)


def test_a_relative_sqlite_ledger_resolves_beside_the_config(tmp_path: Path, registry: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc" / "ledgerlink"
    folder.mkdir(parents=True)
    path = folder / "ledgerlink.toml"
    path.write_text('[ledger]\nurl = "sqlite:///state/ledger.db"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_config(path, registry=registry).ledger_url == f"sqlite:///{(folder / 'state' / 'ledger.db').resolve()}"
    # relative config path given on the command line: still beside the file
    rel = Path("etc/ledgerlink/ledgerlink.toml")
    assert load_config(rel, registry=registry).ledger_url == f"sqlite:///{(folder / 'state' / 'ledger.db').resolve()}"
    # the default
    path.write_text("", encoding="utf-8")
    assert load_config(path, registry=registry).ledger_url == f"sqlite:///{(folder / 'ledgerlink.db').resolve()}"
    # absolute paths, memory and PostgreSQL stay as written
    for url in ("sqlite:////var/lib/ll.db", "sqlite:///:memory:", "postgresql+psycopg://ll@db/ll"):
        path.write_text(f'[ledger]\nurl = "{url}"\n', encoding="utf-8")
        assert load_config(path, registry=registry).ledger_url == url


def test_the_ledger_url_may_come_from_the_environment(tmp_path: Path, registry: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LL_TEST_LEDGER_URL", "postgresql://ll:pw-from-env-77@db/ll")
    raw = {"ledger": {"url": "${LL_TEST_LEDGER_URL}"}}
    config = parse_config(raw, tmp_path / "c.toml", registry=registry)
    assert config.ledger_url == "postgresql://ll:pw-from-env-77@db/ll"
    assert config.redacted()["ledger"]["url"] == "postgresql://ll:***@db/ll"
    assert "pw-from-env-77" not in redact(f"cannot connect to {config.ledger_url}")
    message = _error({"ledger": {"url": "ledger.db"}}, tmp_path / "c.toml", registry)
    assert 'url = "sqlite:///ledger.db"' in message


def test_pipeline_defaults(config_dir: Path, registry: Any) -> None:
    config = parse_config(_raw(), config_dir / "ledgerlink.toml", registry=registry)
    assert isinstance(config, Config)
    pipeline = config.pipeline("p")
    assert isinstance(pipeline, PipelineConfig)
    assert pipeline.enabled is True
    assert pipeline.matchers == ["customer_number", "email", "name"]
    assert pipeline.create_contacts is True
    assert pipeline.mismatch_tag == "Mismatch"
    assert pipeline.payment_reconciliation == "target"
    assert pipeline.document_date == "invoice"
    assert pipeline.due_days is None
    assert pipeline.tags == ["Import"]
    assert pipeline.cost_centre is None
    assert pipeline.start_date is None
    assert pipeline.seller_country is None  # the documents' own, else DE
    assert pipeline.oss is False and pipeline.small_business is False and pipeline.sync_members is False
    assert pipeline.require_rules is None
    assert pipeline.rules == []
    assert config.ledger_url == f"sqlite:///{(config_dir / 'ledgerlink.db').resolve()}"
    with pytest.raises(ConfigError, match=r"no pipeline named 'q' \(pipelines: p\)"):
        config.pipeline("q")


def test_defaults_do_not_leak_between_pipelines(config_dir: Path, registry: Any) -> None:
    raw = _raw()
    raw["pipelines"].append({"name": "q", "source": "src", "target": "dst"})
    config = parse_config(raw, config_dir / "c.toml", registry=registry)
    config.pipelines[0].tags.append("Changed")
    assert config.pipelines[1].tags == ["Import"]


def test_rules_are_read_as_written(config_dir: Path, registry: Any) -> None:
    raw = _raw(rules=[
        {"when": {"line": "goods", "region": "domestic", "currency": "eur"}, "account": 8400},
        {"when": {"tax_rate": 7.0, "shop": 12345}, "account": "8300", "cost_centre": 10},
        {"when": {"booking_code": 4711}, "tax_rule": "1"},
    ], seller_country="at")
    pipeline = parse_config(raw, config_dir / "c.toml", registry=registry).pipelines[0]
    first, second, third = pipeline.rules
    assert isinstance(first, Rule) and isinstance(first.when, RuleWhen)
    assert first.account == "8400"
    assert first.when.conditions() == {"line": "goods", "region": "domestic", "currency": "EUR"}
    assert second.when.tax_rate == Decimal("7") and second.when.shop == "12345"
    assert second.cost_centre == "10"
    assert third.when.booking_code == "4711"
    assert pipeline.seller_country == "AT"


def test_a_rule_after_a_narrower_one_is_fine_but_not_after_a_wider_one(config_dir: Path, registry: Any) -> None:
    narrow_first = _raw(rules=[
        {"when": {"line": "goods", "region": "eu"}, "account": "8125"},
        {"when": {"line": "goods"}, "account": "8400"},
    ])
    parse_config(narrow_first, config_dir / "c.toml", registry=registry)
    wide_first = _raw(rules=[
        {"when": {"line": "goods"}, "account": "8400"},
        {"when": {"line": "goods", "region": "eu"}, "account": "8125"},
    ])
    message = _error(wide_first, config_dir / "c.toml", registry)
    assert "pipelines[0].rules[1]: this rule can never match: rules[0] comes first" in message
    same_rate = _raw(rules=[
        {"when": {"tax_rate": 19}, "account": "8400"},
        {"when": {"tax_rate": "19.0", "line": "fee"}, "account": "8401"},
    ])
    assert "rules[1]: this rule can never match" in _error(same_rate, config_dir / "c.toml", registry)


def test_errors_prefer_the_unknown_key_over_the_missing_one(config_dir: Path, registry: Any) -> None:
    raw = _raw()
    raw["pipelines"][0]["targte"] = raw["pipelines"][0].pop("target")
    message = _error(raw, config_dir / "c.toml", registry)
    assert "pipelines[0].targte: unknown key; did you mean 'target'?" in message


def test_odd_connection_names_are_quoted_in_key_paths(config_dir: Path, registry: Any) -> None:
    raw = {"connections": {"my shop": {"plugin": "fake-source", "stroe": "x"}}}
    message = _error(raw, config_dir / "c.toml", registry)
    assert 'connections."my shop".stroe: unknown key; did you mean \'store\'?' in message


def test_a_byte_order_mark_is_accepted(tmp_path: Path, registry: Any) -> None:
    path = tmp_path / "ledgerlink.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'[connections.src]\nplugin = "fake-source"\n')
    assert list(load_config(path, registry=registry).connections) == ["src"]


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = _cli("-c", str(tmp_path / "nope.toml"), "config", "validate")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.toml'}: config file not found (give one with -c/--config or LEDGERLINK_CONFIG)"
