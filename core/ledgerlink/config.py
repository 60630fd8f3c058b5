"""The configuration file: ledger, named connections and pipelines (TOML).

Loading validates everything up front: the core's own keys with the models
below, each connection's settings with its plugin's ``Settings`` model. Unknown
keys are errors. A secret setting (``SecretStr`` in the plugin's model) accepts
only ``"${ENV_NAME}"`` or ``{ file = "path" }``. Every problem becomes one
:class:`ConfigError` line: ``FILE: key.path: what was expected``.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .errors import ConfigError
from .records import LineKind, TaxRegion, TaxTreatment

DEFAULT_CONFIG = "ledgerlink.toml"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LedgerConfig(_Strict):
    url: str = Field("sqlite:///ledgerlink.db", description="SQLAlchemy URL; sqlite paths are relative to the config file")


class RuleWhen(_Strict):
    """Conditions of a rule; all given ones must hold. Omitted ones match anything."""

    line: LineKind | None = Field(None, description="line kind: goods, service, shipping, fee, discount")
    region: TaxRegion | None = Field(None, description="domestic, eu, non_eu")
    treatment: TaxTreatment | None = None
    booking_code: str | None = Field(None, description="the source line's booking/accounting code")
    tax_rate: Decimal | None = Field(None, description="percent, e.g. 19")
    shop: str | None = None
    currency: str | None = None
    kind: Literal["invoice", "credit_note"] | None = None

    def conditions(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Rule(_Strict):
    """First-match rule: where a line is booked."""

    when: RuleWhen = Field(default_factory=RuleWhen)
    account: str | None = Field(None, description="booking account in the target's chart (e.g. 8400)")
    tax_rule: str | None = Field(None, description="the target's tax rule id/name; default derived from the treatment")
    cost_centre: str | None = None

    @field_validator("account", "tax_rule", "cost_centre", mode="before")
    @classmethod
    def _str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PipelineConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    source: str = Field(description="name of a [connections.NAME] used as source")
    target: str = Field(description="name of a [connections.NAME] used as target")
    enabled: bool = True
    matchers: list[str] = Field(default_factory=lambda: ["customer_number", "email", "name"])
    create_contacts: bool = True
    mismatch_tag: str = "Mismatch"
    payment_reconciliation: Literal["source", "target"] = "target"
    document_date: Literal["invoice", "payment", "order"] = "invoice"
    due_days: int = Field(0, ge=0, le=3650)
    tags: list[str] = Field(default_factory=lambda: ["Import"])
    cost_centre: str | None = None
    start_date: date | None = Field(None, description="documents dated before it are skipped")
    seller_country: str = Field("DE", min_length=2, max_length=2)
    oss: bool = Field(False, description="the seller is registered for the EU One-Stop-Shop")
    small_business: bool = Field(False, description="the seller charges no VAT (§19 UStG)")
    sync_members: bool = Field(False, description="create contacts for new source customers without waiting for a document")
    require_rules: bool | None = Field(
        None, description="quarantine lines no rule matches (default: true when rules are given)"
    )
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("cost_centre", mode="before")
    @classmethod
    def _str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def options(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"rules"})


class ConnectionConfig:
    """A validated connection: a plugin and its settings model instance."""

    def __init__(self, name: str, plugin: str, kind: str, factory: Any, settings: BaseModel,
                 raw: dict[str, Any]) -> None:
        self.name = name
        self.plugin = plugin
        self.kind = kind
        self.factory = factory
        self.settings = settings
        self.raw = raw


class Config:
    def __init__(self, path: Path, ledger_url: str, connections: dict[str, ConnectionConfig],
                 pipelines: list[PipelineConfig], raw: dict[str, Any]) -> None:
        self.path = path
        self.ledger_url = ledger_url
        self.connections = connections
        self.pipelines = pipelines
        self.raw = raw

    def pipeline(self, name: str) -> PipelineConfig:
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        names = ", ".join(p.name for p in self.pipelines) or "none"
        raise ConfigError(f"no pipeline named {name!r} (pipelines: {names})", location=str(self.path))

    def redacted(self) -> dict[str, Any]:
        """The config as loaded, with every secret replaced by ``***``."""
        out: dict[str, Any] = {"ledger": {"url": _redact_url(self.ledger_url)}, "connections": {}, "pipelines": []}
        for name, conn in self.connections.items():
            data = {"plugin": conn.plugin}
            data.update(conn.settings.model_dump(mode="json"))
            for key in _secret_fields(type(conn.settings)):
                if data.get(key) is not None:
                    data[key] = "***"
            out["connections"][name] = data
        out["pipelines"] = [p.model_dump(mode="json", exclude_none=True) for p in self.pipelines]
        return out


def _redact_url(url: str) -> str:
    return re.sub(r"://([^:/@]+):([^@]+)@", r"://\1:***@", url)


def _secret_fields(model: type[BaseModel]) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        if _is_secret(field.annotation):
            names.append(name)
    return names


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _pydantic_error(exc: ValidationError, prefix: str, path: Path, raw: Any = None) -> ConfigError:
    error = exc.errors()[0]
    loc = [p for p in error["loc"] if p not in ("function-after", "function-before")]
    key = _loc([*([prefix] if prefix else []), *loc]) if loc else prefix
    kind = error["type"]
    message = error["msg"]
    if kind == "extra_forbidden":
        message = "unknown key"
        allowed = _allowed_keys(exc, loc)
        if allowed:
            message += f"; expected one of: {allowed}"
    elif kind == "missing":
        message = "is required but missing"
    else:
        value = error.get("input")
        if value is not None and not isinstance(value, (dict, list)):
            shown = repr(value)
            message = f"{message} (got {shown[:60]})"
    return ConfigError(message, location=f"{path}: {key}" if key else str(path))


def _allowed_keys(exc: ValidationError, loc: list[Any]) -> str:
    model = getattr(exc, "_ledgerlink_model", None)
    if model is None or len(loc) != 1:
        return ""
    return ", ".join(sorted(model.model_fields))


def _resolve_secret(value: Any, key: str, path: Path) -> Any:
    where = f"{path}: {key}"
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) != {"file"} or not isinstance(value["file"], str):
            raise ConfigError('a secret must be "${ENV_NAME}" or { file = "path" }', location=where)
        secret_path = Path(value["file"])
        if not secret_path.is_absolute():
            secret_path = path.parent / secret_path
        try:
            return secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the secret file {secret_path} ({exc.strerror})", location=where) from None
    if isinstance(value, str):
        match = _ENV_REF.match(value.strip())
        if not match:
            raise ConfigError(
                'secrets are never written in the file: use "${ENV_NAME}" or { file = "path" }',
                location=where,
            )
        env = match.group(1)
        if env not in os.environ:
            raise ConfigError(f"environment variable {env} is not set", location=where)
        return os.environ[env]
    raise ConfigError('a secret must be "${ENV_NAME}" or { file = "path" }', location=where)


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("LEDGERLINK_CONFIG", DEFAULT_CONFIG))


def load_config(path: str | Path | None = None, *, registry: Any = None, matchers: list[str] | None = None) -> Config:
    """Read and validate a config file. Raises ConfigError with one line."""
    from .plugins import get_plugin_manager

    path = config_path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "config file not found (give one with -c/--config or LEDGERLINK_CONFIG)", location=str(path)
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror})", location=str(path)) from None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("the file is not valid UTF-8", location=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", location=str(path)) from None
    return parse_config(raw, path, registry=registry or get_plugin_manager().registry)


def parse_config(raw: dict[str, Any], path: Path, *, registry: Any) -> Config:
    path = Path(path)
    unknown = set(raw) - {"ledger", "connections", "pipelines"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError("unknown key; expected one of: ledger, connections, pipelines", location=f"{path}: {key}")

    ledger_raw = raw.get("ledger", {})
    if not isinstance(ledger_raw, dict):
        raise ConfigError("expected a table [ledger]", location=f"{path}: ledger")
    try:
        ledger = LedgerConfig.model_validate(ledger_raw)
    except ValidationError as exc:
        raise _pydantic_error(exc, "ledger", path) from None
    ledger_url = ledger.url
    if ledger_url.startswith("sqlite:///") and not ledger_url.startswith("sqlite:////"):
        rel = ledger_url[len("sqlite:///"):]
        if rel and rel != ":memory:":
            ledger_url = f"sqlite:///{(path.parent / rel).resolve()}"
    elif not re.match(r"^(sqlite|postgresql(\+\w+)?)://", ledger_url):
        raise ConfigError("expected a sqlite:/// or postgresql:// URL", location=f"{path}: ledger.url")

    connections_raw = raw.get("connections", {})
    if not isinstance(connections_raw, dict):
        raise ConfigError("expected tables [connections.NAME]", location=f"{path}: connections")
    connections: dict[str, ConnectionConfig] = {}
    for name, conn_raw in connections_raw.items():
        where = f"connections.{name}"
        if not isinstance(conn_raw, dict):
            raise ConfigError("expected a table with plugin = \"...\"", location=f"{path}: {where}")
        plugin = conn_raw.get("plugin")
        if not isinstance(plugin, str):
            raise ConfigError('is required: plugin = "NAME" (see `ledgerlink plugins`)', location=f"{path}: {where}.plugin")
        kind = None
        factory = None
        for candidate in ("source", "target"):
            if plugin in registry.items[candidate]:
                kind, factory = candidate, registry.items[candidate][plugin].factory
                break
        if factory is None:
            known = ", ".join(sorted(set(registry.items["source"]) | set(registry.items["target"]))) or "none installed"
            raise ConfigError(f"unknown plugin {plugin!r} (installed: {known})", location=f"{path}: {where}.plugin")
        settings_model: type[BaseModel] = factory.Settings
        values = {k: v for k, v in conn_raw.items() if k != "plugin"}
        for key in _secret_fields(settings_model):
            if key in values:
                values[key] = _resolve_secret(values[key], f"{where}.{key}", path)
        try:
            settings = settings_model.model_validate(values)
        except ValidationError as exc:
            exc._ledgerlink_model = settings_model  # type: ignore[attr-defined]
            raise _pydantic_error(exc, where, path) from None
        from .http import Redactor

        for key in _secret_fields(settings_model):
            secret = getattr(settings, key, None)
            if isinstance(secret, SecretStr):
                Redactor.register(secret.get_secret_value())
        connections[name] = ConnectionConfig(name, plugin, kind, factory, settings, conn_raw)

    pipelines_raw = raw.get("pipelines", [])
    if not isinstance(pipelines_raw, list):
        raise ConfigError("expected [[pipelines]] entries", location=f"{path}: pipelines")
    pipelines: list[PipelineConfig] = []
    seen: set[str] = set()
    for index, p_raw in enumerate(pipelines_raw):
        where = f"pipelines[{index}]"
        try:
            pipeline = PipelineConfig.model_validate(p_raw)
        except ValidationError as exc:
            exc._ledgerlink_model = PipelineConfig  # type: ignore[attr-defined]
            raise _pydantic_error(exc, where, path) from None
        if pipeline.name in seen:
            raise ConfigError(f"duplicate pipeline name {pipeline.name!r}; names must be unique", location=f"{path}: {where}.name")
        seen.add(pipeline.name)
        for role, kind in (("source", "source"), ("target", "target")):
            conn_name = getattr(pipeline, role)
            conn = connections.get(conn_name)
            if conn is None:
                known = ", ".join(connections) or "none"
                raise ConfigError(f"no connection named {conn_name!r} (connections: {known})", location=f"{path}: {where}.{role}")
            if conn.kind != kind:
                raise ConfigError(
                    f"connection {conn_name!r} uses the {conn.kind} plugin {conn.plugin!r}; a {role} is needed",
                    location=f"{path}: {where}.{role}",
                )
        for m_index, matcher in enumerate(pipeline.matchers):
            if matcher not in registry.items["matcher"]:
                known = ", ".join(sorted(registry.items["matcher"]))
                raise ConfigError(f"unknown matcher {matcher!r} (known: {known})", location=f"{path}: {where}.matchers[{m_index}]")
        _check_rules(pipeline, path, where)
        pipelines.append(pipeline)
    return Config(path, ledger_url, connections, pipelines, raw)


def _check_rules(pipeline: PipelineConfig, path: Path, where: str) -> None:
    """Refuse rules that can never match: an earlier rule already takes every line they would."""
    for index, rule in enumerate(pipeline.rules):
        conditions = rule.when.conditions()
        for earlier_index, earlier in enumerate(pipeline.rules[:index]):
            earlier_conditions = earlier.when.conditions()
            if all(conditions.get(k) == v for k, v in earlier_conditions.items()):
                raise ConfigError(
                    f"this rule can never match: rules[{earlier_index}] comes first and matches every line it would",
                    location=f"{path}: {where}.rules[{index}]",
                )
        if not (rule.account or rule.tax_rule or rule.cost_centre):
            raise ConfigError("a rule needs at least one of account, tax_rule, cost_centre", location=f"{path}: {where}.rules[{index}]")


def json_schema(registry: Any) -> dict[str, Any]:
    """JSON Schema of the config file, from the core models and every plugin's Settings."""
    connection_variants = []
    for kind in ("source", "target"):
        for name, reg in sorted(registry.items[kind].items()):
            schema = reg.factory.Settings.model_json_schema()
            props = dict(schema.get("properties", {}))
            props["plugin"] = {"const": name, "description": f"{kind} plugin from {reg.distribution}"}
            for secret in _secret_fields(reg.factory.Settings):
                props[secret] = {
                    "description": (props.get(secret) or {}).get("description", "secret"),
                    "oneOf": [
                        {"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"},
                        {"type": "object", "properties": {"file": {"type": "string"}}, "required": ["file"], "additionalProperties": False},
                    ],
                }
            variant = {
                "title": f"{name} ({kind})",
                "type": "object",
                "properties": props,
                "required": ["plugin", *schema.get("required", [])],
                "additionalProperties": False,
            }
            if "$defs" in schema:
                variant["$defs"] = schema["$defs"]
            connection_variants.append(variant)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ledgerlink configuration",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ledger": LedgerConfig.model_json_schema(),
            "connections": {"type": "object", "additionalProperties": {"oneOf": connection_variants}},
            "pipelines": {"type": "array", "items": PipelineConfig.model_json_schema()},
        },
    }
