"""The configuration file: ledger, named connections and pipelines (TOML).

Loading validates everything up front: the core's own keys with the models
below, each connection's settings with its plugin's ``Settings`` model. Unknown
keys are errors. A secret setting (``SecretStr`` in the plugin's model) accepts
only ``"${ENV_NAME}"`` or ``{ file = "path" }``. Every problem becomes one
:class:`ConfigError` line: ``FILE: key.path: what was expected`` (for a TOML
syntax error or bad bytes: ``FILE: line N, column M: ...``). No message ever
contains a secret's value.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from ._errors import ConfigError
from ._records import LineKind, TaxRegion, TaxTreatment, currencies

DEFAULT_CONFIG = "ledgerlink.toml"
DEFAULT_LEDGER_URL = "sqlite:///ledgerlink.db"
TOP_LEVEL_KEYS = ("ledger", "connections", "pipelines", "workers")
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ENV_REF = re.compile(rf"^\$\{{({_ENV_NAME})\}}$")
_ENV_IN_TEXT = re.compile(rf"\$\{{({_ENV_NAME})\}}")
# Near misses of "${NAME}": $NAME, ${NAME, $NAME}, {NAME}, %NAME%, env:NAME
_ENV_NEAR_MISS = re.compile(rf"^(?:\$\{{?({_ENV_NAME})\}}?|\{{({_ENV_NAME})\}}|%({_ENV_NAME})%|env:({_ENV_NAME}))$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SECRET_FORMS = '"${ENV_NAME}" or { file = "path" }'


def _code(value: Any) -> Any:
    """Account numbers, shop ids and codes may be written as TOML integers."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Code = Annotated[str, BeforeValidator(_code), WithJsonSchema({"type": ["string", "integer"]})]
"""A string that may be written as an integer (8400 or "8400")."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LedgerConfig(_Strict):
    url: str = Field(
        DEFAULT_LEDGER_URL,
        description='SQLAlchemy URL; sqlite paths are relative to the config file. A URL with a '
        'password goes in "${ENV_NAME}" or { file = "path" } (or its password as ${ENV_NAME})',
    )


class WorkersConfig(_Strict):
    """[workers]: running pipelines on Celery workers (``ledgerlink worker`` / ``scheduler``)."""

    broker_url: str | None = Field(
        None, description="the Celery broker: amqp://... (RabbitMQ) or redis://...; default $LEDGERLINK_BROKER_URL. "
        "Put a password in the environment variable, not here")
    redis_url: str | None = Field(
        None, description="Redis for vendor rate limits shared by every process (default $LEDGERLINK_REDIS_URL; "
        "unset: each process limits itself)")
    queue: str = Field("ledgerlink", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$",
                       description="the broker queue of ledgerlink's tasks (several deployments on one broker use "
                       "a queue each)")
    concurrency: int = Field(2, ge=1, le=64, description="pipeline runs one `ledgerlink worker` does at once")
    max_deliveries: int = Field(5, ge=1, le=100, description="a task delivered (or retried) this often without "
                                "finishing is given up and recorded in the ledger with its last reason")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="serve Prometheus metrics of the worker on "
                                     "this port (127.0.0.1); unset: none")


class RuleWhen(_Strict):
    """Conditions of a rule; all given ones must hold. Omitted ones match anything."""

    line: LineKind | None = Field(None, description="line kind: goods, service, shipping, fee, discount")
    region: TaxRegion | None = Field(None, description="domestic, eu, non_eu")
    treatment: TaxTreatment | None = Field(None, description="the line's tax treatment: standard, reduced, "
                                           "intra_eu_supply, reverse_charge, oss, export, not_taxable_here, small_business")
    booking_code: Code | None = Field(None, description="the source line's booking/accounting code")
    tax_rate: Decimal | None = Field(None, description="percent, e.g. 19")
    shop: Code | None = Field(None, description="the source's shop id or name")
    currency: str | None = Field(None, min_length=3, max_length=3, description="ISO 4217, e.g. EUR")
    kind: Literal["invoice", "credit_note"] | None = Field(None, description="the document's kind")

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    def conditions(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Rule(_Strict):
    """First-match rule: where a line is booked."""

    when: RuleWhen = Field(default_factory=RuleWhen)
    account: Code | None = Field(None, description="booking account in the target's chart (e.g. 8400)")
    tax_rule: Code | None = Field(None, description="the target's tax rule id/name; default derived from the treatment")
    cost_centre: Code | None = Field(None, description="the target's cost centre for lines this rule books "
                                     "(default: the pipeline's)")


class PipelineConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="the pipeline's name (letters, digits, _ . -); the ledger keys its documents by it")
    source: str = Field(description="name of a [connections.NAME] used as source")
    target: str = Field(description="name of a [connections.NAME] used as target")
    enabled: bool = Field(True, description="false: run and watch leave the pipeline out")
    matchers: list[str] = Field(default_factory=lambda: ["customer_number", "email", "name"],
                                description="the matcher chain that finds a customer's contact; the first with "
                                "exactly one candidate wins (`ledgerlink plugins` lists the matchers)")
    create_contacts: bool = Field(True, description="create a contact when no matcher finds one")
    customer_scope: str | None = Field(
        None, min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="the name under which this pipeline keeps its customers' links to target contacts (default: "
        "the source connection's name). Pipelines whose sources share their customers (two shops of one company, "
        "customers known by the same id in both) and share a target name the same scope: a customer who buys in "
        "both is one contact")
    mismatch_tag: str = Field("Mismatch", description="tag for documents pushed without a contact (none found or "
                              "ambiguous)")
    payment_reconciliation: Literal["source", "target"] = Field(
        "target", description="source: documents paid in the source arrive paid and later payments are booked; "
        "target: everything arrives open and is reconciled in the target")
    document_date: Literal["invoice", "payment", "order"] = Field(
        "invoice", description="which of the source's dates becomes the document date (falling back to the others)")
    due_days: int | None = Field(
        None, ge=0, le=3650,
        description="due date = document date + days; when not set, the source's due date (else the document date)")
    tags: list[str] = Field(default_factory=lambda: ["Import"], description="tags put on every pushed document")
    cost_centre: Code | None = Field(None, description="the target's cost centre for every line (a rule's wins)")
    start_date: date | None = Field(None, description="documents dated before it are skipped")
    seller_country: str | None = Field(
        None, min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$",
        description="the seller's ISO country; the default for documents whose source states none (then DE); "
        "a document whose source states another country is quarantined")
    book_currency: str | None = Field(None, min_length=3, max_length=3, description="the currency the target "
                                      "books in (ISO 4217); default: what the target reports, else EUR. Documents in "
                                      "another currency need an exchange rate")
    exchange_rates: dict[str, Decimal] = Field(
        default_factory=dict, description="rates for documents in a foreign currency whose source states none: "
        "{ CHF = 0.95 } means 1 CHF = 0.95 in the book currency; without one such a document is quarantined")
    on_cancel: Literal["flag", "reverse"] = Field(
        "flag", description="a document cancelled in the source after transfer: flag shows it as 'cancelled after "
        "transfer' for a person (exit 1); reverse writes a credit note referencing it in the target, once")
    voucher_account: Code | None = Field(
        None, description="the target's clearing account for gift vouchers redeemed as payment (a shop coupon, a gift card); "
        "unset: a document paid with a voucher is quarantined")
    oss: bool = Field(False, description="the seller is registered for the EU One-Stop-Shop")
    small_business: bool = Field(False, description="the seller charges no VAT (§19 UStG)")
    sync_members: bool = Field(False, description="create contacts for new source customers without waiting for a document")
    interval: int = Field(
        300, ge=10, le=86_400, description="seconds between runs when `ledgerlink scheduler` runs the pipeline on "
        "workers (each pipeline at its own offset within the interval, so they do not all start at once)")
    circuit_breaker: int = Field(
        3, ge=1, le=1000, description="stop the pipeline's run when this many documents in a row failed for the "
        "vendor's reasons (could not connect, server errors or timeouts past the retry budget); the rest is left "
        "for the next run")
    status_wording: str | None = Field(
        None, description="status mapper whose wording sync-status writes back to the source (a German wording of a target's statuses, say); "
        "default: the source's own, else the target's")
    require_rules: bool | None = Field(
        None, description="quarantine lines no rule matches (default: true when rules are given)"
    )
    rules: list[Rule] = Field(default_factory=list, description="[[pipelines.rules]]: where each line is booked, "
                              "first match wins")

    @property
    def links_scope(self) -> str:
        """The source side of this pipeline's customer links (``customer_scope`` or the source)."""
        return self.customer_scope or self.source

    @field_validator("seller_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return value.upper() if value else None

    @field_validator("book_currency")
    @classmethod
    def _book_currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in currencies():
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return value.upper()

    @field_validator("exchange_rates")
    @classmethod
    def _rates(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        out = {}
        for code, rate in value.items():
            if code.upper() not in currencies():
                raise ValueError(f"{code!r} is not an ISO 4217 currency code")
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"the rate for {code.upper()} must be a positive number, not {rate}")
            out[code.upper()] = rate
        return out

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
                 pipelines: list[PipelineConfig], raw: dict[str, Any], workers: WorkersConfig | None = None) -> None:
        self.path = path
        self.ledger_url = ledger_url
        self.connections = connections
        self.pipelines = pipelines
        self.raw = raw
        self.workers = workers or WorkersConfig()

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
        if "workers" in self.raw:
            workers = self.workers.model_dump(mode="json", exclude_none=True)
            for key in ("broker_url", "redis_url"):
                if workers.get(key):
                    workers[key] = _redact_url(workers[key])
            out["workers"] = workers
        return out


def _redact_url(url: str) -> str:
    """The URL with its password as ``***`` (also a password without a user name, as
    Redis URLs have it: ``redis://:secret@host``)."""
    return re.sub(r"://([^:/@]*):([^@/]+)@", r"://\1:***@", url)


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
    if origin in (typing.Union, types.UnionType, Annotated):
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


# -- error lines ------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(path: Path, key: str | None, message: str) -> ConfigError:
    """``FILE: key.path: message`` as one line."""
    location = f"{path}: {key}" if key else str(path)
    return ConfigError(_one_line(message), location=location)


def _key(part: Any) -> str:
    text = str(part)
    return text if _BARE_KEY.match(text) else '"' + text.replace('"', '\\"') + '"'


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _key(part)
    return out


def _join(prefix: str, rest: Iterable[Any]) -> str:
    tail = _loc(rest)
    if not tail:
        return prefix
    if not prefix:
        return tail
    return prefix + tail if tail.startswith("[") else f"{prefix}.{tail}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown_key_message(key: str, allowed: list[str], where: str) -> str:
    message = f"unknown key{_suggest(key, allowed)}"
    if allowed:
        message += f" (expected one of: {', '.join(allowed)})"
    if key in TOP_LEVEL_KEYS and where:
        message += (
            f"; in TOML a key written below a [table] header belongs to that table: move "
            f"{key} above the first header"
        )
    elif key in ("account", "tax_rule", "cost_centre") and where.endswith(".when"):
        message += f"; {key} belongs beside when, not inside it"
    elif key in ("when", "account", "tax_rule") and re.fullmatch(r"pipelines\[\d+\]", where):
        message += "; booking rules go in [[pipelines.rules]] entries"
    return message


def _unwrap(annotation: Any) -> Any:
    """The model or container behind Optional[...] / Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def _walk(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> tuple[list[Any], type[BaseModel] | None, bool]:
    """Clean a pydantic error location (drop union member tags) and find the model
    that holds its last part. Returns (parts, model of the last part, tags dropped)."""
    parts: list[Any] = []
    current: Any = model
    holder: type[BaseModel] | None = None
    dropped = False
    for part in loc:
        annotation = _unwrap(current) if current is not None else None
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            holder = annotation
            parts.append(part)
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            current = field.annotation if field is not None else None
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            holder = None
            parts.append(part)
            args = typing.get_args(annotation)
            current = args[0] if args else None
        elif origin is dict:
            holder = None
            parts.append(part)
            args = typing.get_args(annotation)
            current = args[1] if len(args) == 2 else None
        elif origin in (typing.Union, types.UnionType) and isinstance(part, str):
            dropped = True  # a union member tag such as 'int' or 'str', not a key
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            current = next((m for m in models if m.__name__ == part), None)
        elif isinstance(part, str) and part.startswith(("function-", "json-or-python", "lax-or-strict")):
            dropped = True
        else:
            holder = None
            parts.append(part)
            current = None
    return parts, holder, dropped


_MESSAGES = {
    "model_type": "expected a table (key = value pairs)",
    "model_attributes_type": "expected a table (key = value pairs)",
    "dict_type": "expected a table (key = value pairs)",
    "list_type": "expected a list [ ... ]",
    "decimal_parsing": "expected a number",
    "decimal_type": "expected a number",
    "date_from_datetime_parsing": "expected a date like 2026-01-31",
}


def _pydantic_error(exc: ValidationError, prefix: str, path: Path, model: type[BaseModel] | None = None,
                    secrets: Iterable[str] = ()) -> ConfigError:
    errors = exc.errors(include_url=False)
    # An unknown key usually explains a missing one (a typo): report it first.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    parts, holder, dropped = _walk(model, tuple(error["loc"]))
    key = _join(prefix, parts)
    kind = error["type"]
    message = str(error["msg"])
    for head in ("Value error, ", "Assertion failed, "):
        if message.startswith(head):
            message = message[len(head):]
    message = message.replace(" after validation", "")
    secret = bool(parts) and parts[0] in set(secrets)
    if kind == "extra_forbidden":
        allowed = sorted(holder.model_fields) if holder is not None else []
        if holder is not None and holder is model and prefix.startswith("connections"):
            allowed = sorted([*allowed, "plugin"])
        where = _join(prefix, parts[:-1])
        return _error(path, key, _unknown_key_message(str(parts[-1]) if parts else "?", allowed, where))
    if kind == "missing":
        return _error(path, key, "is required but missing")
    if dropped:
        # A union: every member failed at the same place; say what each wanted.
        same = [e for e in errors if _walk(model, tuple(e["loc"]))[0] == parts]
        wanted = []
        for other in same:
            text = str(other["msg"]).removeprefix("Input should be ")
            if text not in wanted:
                wanted.append(text)
        message = "expected " + " or ".join(wanted)
    elif kind in _MESSAGES:
        message = _MESSAGES[kind]
    elif kind == "string_pattern_mismatch" and parts and parts[-1] == "name" and prefix.startswith("pipelines"):
        message = "use only letters, digits, '_', '.' and '-'"
    value = error.get("input")
    if not secret and value is not None and not isinstance(value, (dict, list)) and kind not in ("value_error", "assertion_error"):
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        message = f"{message} (got {shown})"
    return _error(path, key, message)


# -- secrets ----------------------------------------------------------------------------
def _env_hint(text: str) -> str | None:
    match = _ENV_NEAR_MISS.match(text.strip())
    if match:
        name = next(g for g in match.groups() if g)
        return f'write "${{{name}}}" (a dollar sign and braces) to read the environment variable {name}'
    return None


def _read_secret_file(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(path, where, 'expected { file = "path" } with the path as a string')
    secret_path = Path(value).expanduser()
    if not secret_path.is_absolute():
        secret_path = path.parent / secret_path
    try:
        text = secret_path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise _error(path, where, f"the secret file {secret_path} is not UTF-8 text") from None
    except OSError as exc:
        raise _error(path, where, f"cannot read the secret file {secret_path} ({exc.strerror})") from None
    if not text:
        raise _error(path, where, f"the secret file {secret_path} is empty")
    return text


def _resolve_secret(value: Any, key: str, path: Path) -> Any:
    """The secret's value from ``"${ENV}"`` or ``{ file = "path" }``; never echoes a literal."""
    if value is None:
        return None
    if isinstance(value, dict):
        extra = sorted(set(value) - {"file"})
        if extra or "file" not in value:
            what = f"unknown key {extra[0]!r} in the secret table" if extra else "the secret table has no file key"
            raise _error(path, key, f"{what}; a secret is {_SECRET_FORMS}")
        return _read_secret_file(value["file"], key, path)
    if isinstance(value, str):
        match = _ENV_REF.match(value.strip())
        if not match:
            hint = _env_hint(value)
            if hint:
                raise _error(path, key, hint)
            raise _error(path, key, f"secrets are never written in the file: use {_SECRET_FORMS}")
        env = match.group(1)
        if env not in os.environ:
            raise _error(path, key, f"environment variable {env} is not set")
        if not os.environ[env].strip():
            raise _error(path, key, f"environment variable {env} is empty")
        return os.environ[env].strip()
    kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(type(value), "a value")
    raise _error(path, key, f"a secret must be {_SECRET_FORMS}, not {kind}")


def _register_secret(*values: str | None) -> None:
    from ._http import Redactor

    Redactor.register(*values)


# -- loading ----------------------------------------------------------------------------
def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("LEDGERLINK_CONFIG", DEFAULT_CONFIG))


def _position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _decode(data: bytes, path: Path) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _error(path, "line 1", "the file is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is fine
    except UnicodeDecodeError as exc:
        offset = exc.start
        bad = data[offset:offset + 1].hex()
        raise _error(
            path, _position(data, offset),
            f"not valid UTF-8 (byte 0x{bad}); save the file as UTF-8",
        ) from None


_TOML_AT = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)\s*$")


def toml_value(value: Any) -> str:
    """A value as TOML, for the config text ledgerlink writes or prints (strings,
    numbers, booleans, dates, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's


def _toml_error(exc: tomllib.TOMLDecodeError, path: Path) -> ConfigError:
    text = str(exc)
    match = _TOML_AT.search(text)
    where = None
    if match:
        where = match.group(1)
        text = text[: match.start()]
    return _error(path, where, f"TOML syntax error: {text}")


def load_config(path: str | Path | None = None, *, registry: Any = None, matchers: list[str] | None = None) -> Config:
    """Read and validate a config file. Raises ConfigError with one line."""
    from ._plugins import get_plugin_manager

    path = config_path(path)
    raw = _read_raw(path)
    return parse_config(raw, path, registry=registry or get_plugin_manager().registry)


def load_ledger_settings(path: str | Path | None = None) -> tuple[str, list[str]]:
    """Only what reading the ledger needs: its URL and the pipeline names.

    For `status` and `audit`, which must work where the connections' secrets are not
    set (a bookkeeper's laptop, a support session)."""
    path = config_path(path)
    raw = _read_raw(path)
    ledger_raw = raw.get("ledger", {})
    if not isinstance(ledger_raw, dict):
        raise _error(path, "ledger", 'expected a table [ledger] with url = "..."')
    pipelines = raw.get("pipelines", [])
    names = [p.get("name") for p in pipelines if isinstance(p, dict)] if isinstance(pipelines, list) else []
    return _ledger_url(ledger_raw, path), [str(n) for n in names if n]


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _error(path, None, "config file not found (give one with -c/--config or LEDGERLINK_CONFIG)") from None
    except IsADirectoryError:
        raise _error(path, None, "is a directory, not a config file") from None
    except OSError as exc:
        raise _error(path, None, f"cannot read the config file ({exc.strerror})") from None
    text = _decode(data, path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, path) from None


def _ledger_url(ledger_raw: dict[str, Any], path: Path) -> str:
    value = ledger_raw.get("url", DEFAULT_LEDGER_URL)
    where = "ledger.url"
    if isinstance(value, dict) or (isinstance(value, str) and _ENV_REF.match(value.strip())):
        url: str = _resolve_secret(value, where, path)
        _register_secret(*_url_password(url))
    elif isinstance(value, str):
        url = value.strip()
        if _url_password(_ENV_IN_TEXT.sub("", url)):
            raise _error(
                path, where,
                "the URL contains a password; secrets are never written in the file: write the "
                'password as ${ENV_NAME} or the whole URL as "${ENV_NAME}" or { file = "path" }',
            )

        def env(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise _error(path, where, f"environment variable {name} is not set")
            _register_secret(os.environ[name])
            return os.environ[name]

        url = _ENV_IN_TEXT.sub(env, url)
    else:
        try:
            LedgerConfig.model_validate({"url": value})
        except ValidationError as exc:
            raise _pydantic_error(exc, "ledger", path, LedgerConfig) from None
        raise _error(path, where, "expected a string")  # pragma: no cover
    match = re.match(r"^(sqlite(?:\+\w+)?):///(.*)$", url)
    if match and not match.group(2).startswith("/"):
        driver, rest = match.groups()
        rel, sep, query = rest.partition("?")
        if rel and rel != ":memory:" and not rel.startswith("file:"):
            rel_path = Path(rel).expanduser()
            full = rel_path if rel_path.is_absolute() else path.parent / rel_path
            return f"{driver}:///{full.resolve()}{sep}{query}"
        return url
    if re.match(r"^(sqlite(\+\w+)?|postgresql(\+\w+)?)://", url):
        return url
    hint = ""
    if url.startswith("postgres://"):
        hint = " (write postgresql:// instead of postgres://)"
    elif "://" not in url:
        hint = f' (for a SQLite file: url = "sqlite:///{url or "ledgerlink.db"}")'
    shown = _redact_url(url) if value == url else "the URL from the environment or file"
    raise _error(path, where, f"expected a sqlite:/// or postgresql:// URL, got {shown}{hint}")


def _url_password(url: str) -> list[str]:
    match = re.match(r"^[A-Za-z0-9+.-]+://[^:/@]+:([^@]*)@", url)
    return [match.group(1)] if match and match.group(1) else []


def _installed(registry: Any) -> list[str]:
    return sorted(set(registry.items["source"]) | set(registry.items["target"]))


def parse_config(raw: dict[str, Any], path: Path, *, registry: Any,
                 resolve_secret: typing.Callable[[Any, str, Path], Any] | None = None) -> Config:
    """``resolve_secret(value, key, path)``: how a secret setting's value is read (default: only
    ``"${ENV}"`` or ``{ file = "path" }``); the service passes the tenant's stored secrets."""
    path = Path(path)
    unknown = [key for key in raw if key not in TOP_LEVEL_KEYS]
    if unknown:
        key = unknown[0]
        raise _error(path, _key(key), f"unknown key{_suggest(key, TOP_LEVEL_KEYS)} (expected one of: {', '.join(TOP_LEVEL_KEYS)})")

    ledger_raw = raw.get("ledger", {})
    if not isinstance(ledger_raw, dict):
        raise _error(path, "ledger", 'expected a table [ledger] with url = "..."')
    try:
        LedgerConfig.model_validate({k: v for k, v in ledger_raw.items() if k != "url"})
    except ValidationError as exc:
        raise _pydantic_error(exc, "ledger", path, LedgerConfig) from None
    ledger_url = _ledger_url(ledger_raw, path)

    connections_raw = raw.get("connections", {})
    if not isinstance(connections_raw, dict):
        raise _error(path, "connections", "expected tables [connections.NAME]")
    connections: dict[str, ConnectionConfig] = {}
    for name, conn_raw in connections_raw.items():
        where = _join("connections", [name])
        connections[name] = _connection(name, conn_raw, where, path, registry, resolve_secret or _resolve_secret)

    pipelines_raw = raw.get("pipelines", [])
    if not isinstance(pipelines_raw, list):
        raise _error(path, "pipelines", "expected [[pipelines]] entries (an array of tables), not a single [pipelines] table")
    pipelines: list[PipelineConfig] = []
    seen: set[str] = set()
    for index, p_raw in enumerate(pipelines_raw):
        where = f"pipelines[{index}]"
        if not isinstance(p_raw, dict):
            raise _error(path, where, "expected a table: write each pipeline as a [[pipelines]] entry")
        try:
            pipeline = PipelineConfig.model_validate(p_raw)
        except ValidationError as exc:
            raise _pydantic_error(exc, where, path, PipelineConfig) from None
        if pipeline.name in seen:
            raise _error(path, f"{where}.name", f"duplicate pipeline name {pipeline.name!r}; names must be unique")
        seen.add(pipeline.name)
        for role in ("source", "target"):
            conn_name = getattr(pipeline, role)
            conn = connections.get(conn_name)
            if conn is None:
                known = ", ".join(connections) or "none"
                raise _error(
                    path, f"{where}.{role}",
                    f"no connection named {conn_name!r}{_suggest(conn_name, connections)} (connections: {known})",
                )
            if conn.kind != role:
                raise _error(
                    path, f"{where}.{role}",
                    f"connection {conn_name!r} uses the {conn.kind} plugin {conn.plugin!r}; a {role} is needed",
                )
        known_matchers = sorted(registry.items["matcher"])
        for m_index, matcher in enumerate(pipeline.matchers):
            if matcher not in registry.items["matcher"]:
                raise _error(
                    path, f"{where}.matchers[{m_index}]",
                    f"unknown matcher {matcher!r}{_suggest(matcher, known_matchers)} (known: {', '.join(known_matchers)})",
                )
            if matcher in pipeline.matchers[:m_index]:
                raise _error(path, f"{where}.matchers[{m_index}]", f"matcher {matcher!r} is listed twice")
        if pipeline.status_wording and pipeline.status_wording not in registry.items["status_mapper"]:
            known_mappers = sorted(registry.items["status_mapper"])
            raise _error(
                path, f"{where}.status_wording",
                f"unknown status mapper {pipeline.status_wording!r}{_suggest(pipeline.status_wording, known_mappers)}"
                f" (known: {', '.join(known_mappers)})",
            )
        _check_rules(pipeline, path, where)
        pipelines.append(pipeline)
    workers_raw = raw.get("workers", {})
    if not isinstance(workers_raw, dict):
        raise _error(path, "workers", "expected a table [workers]")
    try:
        workers = WorkersConfig.model_validate(workers_raw)
    except ValidationError as exc:
        raise _pydantic_error(exc, "workers", path, WorkersConfig) from None
    return Config(path, ledger_url, connections, pipelines, raw, workers)


def _connection(name: str, conn_raw: Any, where: str, path: Path, registry: Any,
                resolve_secret: typing.Callable[[Any, str, Path], Any] | None = None) -> ConnectionConfig:
    resolve_secret = resolve_secret or _resolve_secret
    if not isinstance(conn_raw, dict):
        raise _error(path, where, f'expected a table [{where}] with plugin = "NAME" and its settings')
    if "plugin" not in conn_raw:
        raise _error(path, f"{where}.plugin", 'is required: plugin = "NAME" (see `ledgerlink plugins`)')
    plugin = conn_raw["plugin"]
    if not isinstance(plugin, str):
        raise _error(path, f"{where}.plugin", 'must be a string: plugin = "NAME" (see `ledgerlink plugins`)')
    kind = None
    factory = None
    for candidate in ("source", "target"):
        if plugin in registry.items[candidate]:
            kind, factory = candidate, registry.items[candidate][plugin].factory
            break
    if factory is None or kind is None:
        installed = _installed(registry)
        raise _error(
            path, f"{where}.plugin",
            f"unknown plugin {plugin!r}{_suggest(plugin, installed)} (installed: {', '.join(installed) or 'none'})",
        )
    settings_model: type[BaseModel] = factory.Settings
    secrets = _secret_fields(settings_model)
    values = {k: v for k, v in conn_raw.items() if k != "plugin"}
    for key in secrets:
        if key in values:
            values[key] = resolve_secret(values[key], f"{where}.{_key(key)}", path)
            _register_secret(values[key])  # redacted from here on, even in a plugin's own errors
    try:
        settings = settings_model.model_validate(values)
    except ValidationError as exc:
        raise _pydantic_error(exc, where, path, settings_model, secrets) from None
    except ConfigError as exc:
        raise _error(path, where, exc.detail if exc.location is None else str(exc)) from None
    except Exception as exc:  # a plugin's validator broke: say whose, in one line
        from ._http import redact

        distribution = registry.items[kind][plugin].distribution
        raise _error(
            path, where,
            f"the {kind} plugin {plugin!r} ({distribution}) failed while checking these settings: "
            f"{type(exc).__name__}: {redact(str(exc))}",
        ) from None
    for key in secrets:
        secret = getattr(settings, key, None)
        if isinstance(secret, SecretStr):
            _register_secret(secret.get_secret_value())
    return ConnectionConfig(name, plugin, kind, factory, settings, conn_raw)


def _check_rules(pipeline: PipelineConfig, path: Path, where: str) -> None:
    """Refuse rules that can never match (an earlier rule already takes every line
    they would) and rules that set nothing."""
    for index, rule in enumerate(pipeline.rules):
        conditions = rule.when.conditions()
        for earlier_index, earlier in enumerate(pipeline.rules[:index]):
            earlier_conditions = earlier.when.conditions()
            if all(k in conditions and conditions[k] == v for k, v in earlier_conditions.items()):
                what = "has no conditions" if not earlier_conditions else "matches every line it would"
                raise _error(
                    path, f"{where}.rules[{index}]",
                    f"this rule can never match: rules[{earlier_index}] comes first and {what} (first match wins)",
                )
        if not (rule.account or rule.tax_rule or rule.cost_centre):
            raise _error(path, f"{where}.rules[{index}]", "a rule needs at least one of account, tax_rule, cost_centre")


# -- JSON Schema --------------------------------------------------------------------------
def _schema_of(model: type[BaseModel], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema with its $defs moved to the root (refs resolve from there)."""
    schema = model.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    for name, definition in schema.pop("$defs", {}).items():
        defs[f"{prefix}{name}"] = definition
    return schema


def _secret_schema(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "oneOf": [
            {"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"},
            {"type": "object", "properties": {"file": {"type": "string"}}, "required": ["file"],
             "additionalProperties": False},
        ],
    }


def json_schema(registry: Any) -> dict[str, Any]:
    """JSON Schema of the config file, from the core models and every plugin's Settings."""
    defs: dict[str, Any] = {}
    connection_variants = []
    for kind in ("source", "target"):
        for name, reg in sorted(registry.items[kind].items()):
            settings_model = reg.factory.Settings
            schema = _schema_of(settings_model, f"{name}.", defs)
            props = dict(schema.get("properties", {}))
            props["plugin"] = {"const": name, "description": f"{kind} plugin from {reg.distribution}"}
            for secret in _secret_fields(settings_model):
                props[secret] = _secret_schema((props.get(secret) or {}).get("description", "secret"))
            variant = {
                "title": f"{name} ({kind})",
                "description": schema.get("description", f"a connection of the {kind} plugin {name}"),
                "type": "object",
                "properties": props,
                "required": ["plugin", *schema.get("required", [])],
                "additionalProperties": False,
            }
            connection_variants.append(variant)
    ledger = _schema_of(LedgerConfig, "", defs)
    url = ledger["properties"]["url"]
    ledger["properties"]["url"] = {
        "description": url.get("description", ""),
        "default": DEFAULT_LEDGER_URL,
        "oneOf": [{"type": "string"}, _secret_schema("")["oneOf"][1]],
    }
    pipeline = _schema_of(PipelineConfig, "", defs)
    matchers = sorted(registry.items["matcher"])
    if matchers:
        pipeline["properties"]["matchers"]["items"] = {"type": "string", "enum": matchers}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ledgerlink configuration",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ledger": {**ledger, "description": "[ledger]: where ledgerlink keeps what it transferred"},
            "connections": {
                "type": "object",
                "description": "named connections: [connections.NAME] with plugin = \"...\" and its settings",
                "additionalProperties": {"oneOf": connection_variants} if connection_variants else {"type": "object"},
            },
            "pipelines": {"type": "array", "items": pipeline,
                          "description": "[[pipelines]]: a source connection into a target connection"},
            "workers": {**_schema_of(WorkersConfig, "", defs),
                        "description": "[workers]: Celery workers, the scheduler and shared rate limits"},
        },
        "$defs": defs,
    }
