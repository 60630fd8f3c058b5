"""Tenants of ``ledgerlink serve``: their config, their secrets (encrypted) and API tokens.

A tenant's config is a ``ledgerlink.toml`` as JSON (``connections`` and ``pipelines``),
validated by ``_config.parse_config`` with the same messages. Its secrets are taken
out before it is stored and kept encrypted (``_secrets_store``); they never come back.

Isolation in the ledger: every name the ledger keys by (pipelines, connections in
customer links, target accounts, cursors, runs, audit, status history, locks) is
the tenant's name prefixed with ``tenant:NAME:`` (see :func:`scoped`). A plain config
file is the default tenant with unprefixed names, so the CLI works unchanged on its
ledger, and no ledger schema change is needed.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._config import Config, _secret_fields, parse_config
from ._errors import ConfigError
from ._schema import create_tables
from ._secrets_store import SecretBox

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TOKEN_PREFIX = "llk"
DEFAULT_TENANT = "default"
"""The config file ``ledgerlink -c FILE serve`` was started with: unprefixed names, the CLI's ledger."""


def scoped(tenant: str, name: str) -> str:
    """The ledger's name of a tenant's pipeline or connection (the default tenant's: its own)."""
    return name if tenant == DEFAULT_TENANT else f"tenant:{tenant}:{name}"


def unscoped(tenant: str, text: str) -> str:
    """A message or name with the tenant's prefix taken out (what the tenant sees)."""
    return text if tenant == DEFAULT_TENANT else text.replace(f"tenant:{tenant}:", "")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Tables:
    def __init__(self) -> None:
        from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

        self.metadata = MetaData()
        self.tenants = Table(
            "service_tenants", self.metadata,
            Column("name", String(64), primary_key=True),
            Column("config", Text, nullable=False),
            Column("secrets", Text, nullable=False),
            Column("version", Integer, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        self.tokens = Table(
            "service_tokens", self.metadata,
            Column("id", String(32), primary_key=True),
            Column("tenant", String(64), nullable=False, index=True),
            Column("hash", String(64), nullable=False),
            Column("label", String(200)),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("revoked_at", DateTime(timezone=True)),
        )


_TABLES: _Tables | None = None


def _tables() -> _Tables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables()
    return _TABLES


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_name(tenant: str) -> None:
    if not TENANT_NAME.match(tenant):
        raise ConfigError(f"tenant names are 1-63 lower-case letters, digits, _ and -, starting with a letter or "
                          f"digit; not {tenant[:70]!r}")
    if tenant == DEFAULT_TENANT:
        raise ConfigError(f"tenant {DEFAULT_TENANT!r} is the config file of `ledgerlink -c FILE serve`; change it in "
                          "that file, or pick another name")


class TenantStore:
    """Tenants and tokens in the service's database (tables ``service_tenants`` and
    ``service_tokens``, created where missing, beside the ledger's)."""

    def __init__(self, url: str, box: SecretBox, registry: Any) -> None:
        from ._inbox import engine_for

        self.url = url
        self.box = box
        self.registry = registry
        self.engine = engine_for(url)
        create_tables(self.engine, _tables().metadata)
        self.t = _tables()

    # -- config ------------------------------------------------------------------------
    def _row(self, tenant: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            found = conn.execute(select(self.t.tenants).where(self.t.tenants.c.name == tenant)).first()
        return None if found is None else dict(found._mapping)

    def exists(self, tenant: str) -> bool:
        return self._row(tenant) is not None

    def names(self) -> list[str]:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(self.t.tenants.c.name).order_by(self.t.tenants.c.name))]

    def version(self, tenant: str) -> int | None:
        row = self._row(tenant)
        return None if row is None else int(row["version"])

    def put(self, tenant: str, body: Any) -> tuple[Config, bool]:
        """Validate and store a tenant's config; (its config, created). Secrets left out of
        the body keep their stored value (a secret is sent once)."""
        check_name(tenant)
        if not isinstance(body, dict):
            raise ConfigError(f"tenant {tenant}: expected an object with connections and pipelines")
        if "ledger" in body:
            raise ConfigError(f"tenant {tenant}: ledger: tenants share the service's ledger; leave ledger out")
        existing = self._row(tenant)
        old_config = json.loads(existing["config"]) if existing else {}
        old_secrets: dict[str, dict[str, str]] = json.loads(existing["secrets"]) if existing else {}
        raw = copy.deepcopy(body)
        stored = copy.deepcopy(body)
        new_secrets: dict[str, dict[str, str]] = {}
        connections = raw.get("connections")
        if isinstance(connections, dict):
            for name, conn in connections.items():
                if not isinstance(conn, dict):
                    continue
                fields = self._secret_fields(conn.get("plugin"))
                old_plugin = (old_config.get("connections") or {}).get(name, {}).get("plugin")
                for key in fields:
                    if key in conn:
                        value = conn[key]
                        if not isinstance(value, str) or not value.strip():
                            raise ConfigError(f"tenant {tenant}: connections.{name}.{key}: a secret is a non-empty "
                                              "string (sent once, stored encrypted, never shown again)")
                        new_secrets.setdefault(name, {})[key] = self.box.encrypt(value.strip())
                        stored["connections"][name].pop(key)
                    elif old_plugin == conn.get("plugin") and key in old_secrets.get(name, {}):
                        new_secrets.setdefault(name, {})[key] = old_secrets[name][key]
        config = self.build(tenant, stored, new_secrets)
        self._save(tenant, stored, new_secrets, existing)
        return config, existing is None

    def _secret_fields(self, plugin: Any) -> list[str]:
        for kind in ("source", "target"):
            registration = self.registry.items[kind].get(plugin) if isinstance(plugin, str) else None
            if registration is not None:
                return _secret_fields(registration.factory.Settings)
        return []

    def _save(self, tenant: str, stored: dict[str, Any], new_secrets: dict[str, dict[str, str]],
              existing: dict[str, Any] | None) -> None:
        t = self.t.tenants
        now = _utcnow()
        values = {"config": json.dumps(stored, sort_keys=True), "secrets": json.dumps(new_secrets, sort_keys=True)}
        with self.engine.begin() as conn:
            if existing is None:
                conn.execute(t.insert().values(name=tenant, version=1, created_at=now, updated_at=now, **values))
            else:
                conn.execute(t.update().where(t.c.name == tenant).values(
                    version=t.c.version + 1, updated_at=now, **values))

    def config(self, tenant: str) -> Config:
        row = self._row(tenant)
        if row is None:
            raise KeyError(tenant)
        return self.build(tenant, json.loads(row["config"]), json.loads(row["secrets"]))

    def public(self, tenant: str) -> dict[str, Any]:
        """The tenant's config as stored: secrets are never in it (only their names)."""
        row = self._row(tenant)
        if row is None:
            raise KeyError(tenant)
        stored = json.loads(row["config"])
        secret_names = {name: sorted(fields) for name, fields in json.loads(row["secrets"]).items()}
        for _name, conn in (stored.get("connections") or {}).items():
            if isinstance(conn, dict) and conn.get("plugin") == "inbox":
                conn.pop("database", None)
                conn.pop("inbox", None)
        return {"name": tenant, "version": row["version"], "connections": stored.get("connections") or {},
                "pipelines": stored.get("pipelines") or [], "secrets_set": secret_names}

    def build(self, tenant: str, stored: dict[str, Any], sealed: dict[str, dict[str, str]]) -> Config:
        """Validate like a config file (same messages, ``tenant NAME: key.path: ...``), then
        put every name the ledger keys by under the tenant's prefix."""
        raw = copy.deepcopy(stored)
        for name, conn in (raw.get("connections") or {}).items() if isinstance(raw.get("connections"), dict) else ():
            if not isinstance(conn, dict):
                continue
            for key, token in sealed.get(name, {}).items():
                conn[key] = self.box.decrypt(token)
            if conn.get("plugin") == "inbox":
                conn["database"] = self.url
                conn["inbox"] = f"{tenant}:{name}"

        def plain(value: Any, key: str, path: Path) -> Any:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: {key}: a secret is a non-empty string")
            return value.strip()

        config = parse_config(raw, Path(f"tenant {tenant}"), registry=self.registry, resolve_secret=plain)
        config.ledger_url = self.url
        connections = {}
        for name, conn in config.connections.items():
            conn.name = scoped(tenant, name)
            connections[conn.name] = conn
        config.connections = connections
        config.pipelines = [p.model_copy(update={
            "name": scoped(tenant, p.name), "source": scoped(tenant, p.source), "target": scoped(tenant, p.target),
            "customer_scope": scoped(tenant, p.customer_scope) if p.customer_scope else None,
        }) for p in config.pipelines]
        return config

    def delete(self, tenant: str) -> bool:
        """The tenant's config, secrets and tokens go; its ledger records stay (they are the
        memory of what was transferred: a tenant made again under the name sends nothing twice)."""
        with self.engine.begin() as conn:
            gone = conn.execute(self.t.tenants.delete().where(self.t.tenants.c.name == tenant)).rowcount
            conn.execute(self.t.tokens.delete().where(self.t.tokens.c.tenant == tenant))
        return bool(gone)

    def rotate(self) -> int:
        """Re-encrypt every stored secret with the first key; how many."""
        from sqlalchemy import select

        t = self.t.tenants
        count = 0
        with self.engine.begin() as conn:
            for name, sealed_text in conn.execute(select(t.c.name, t.c.secrets)).all():
                sealed = json.loads(sealed_text)
                for fields in sealed.values():
                    for key, token in fields.items():
                        fields[key] = self.box.rotate(token)
                        count += 1
                conn.execute(t.update().where(t.c.name == name).values(secrets=json.dumps(sealed, sort_keys=True)))
        return count

    # -- tokens ------------------------------------------------------------------------
    def new_token(self, tenant: str, label: str | None = None) -> tuple[str, str]:
        """(token id, the token): the token is shown once; only its hash is kept."""
        ident = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(self.t.tokens.insert().values(id=ident, tenant=tenant, hash=_digest(secret), label=label,
                                                       created_at=_utcnow()))
        return ident, f"{TOKEN_PREFIX}_{ident}_{secret}"

    def tokens(self, tenant: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        t = self.t.tokens
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.id, t.c.label, t.c.created_at, t.c.revoked_at)
                                .where(t.c.tenant == tenant).order_by(t.c.created_at)).all()
        return [{"id": r.id, "label": r.label, "created_at": r.created_at.isoformat() if r.created_at else None,
                 "revoked": r.revoked_at is not None} for r in rows]

    def revoke(self, tenant: str, ident: str) -> bool:
        t = self.t.tokens
        with self.engine.begin() as conn:
            return bool(conn.execute(t.update().where(t.c.tenant == tenant, t.c.id == ident,
                                                      t.c.revoked_at.is_(None)).values(revoked_at=_utcnow())).rowcount)

    def token_active(self, ident: str) -> bool:
        """The token with this id exists and is not revoked (a status page session lives as long)."""
        from sqlalchemy import select

        t = self.t.tokens
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.revoked_at).where(t.c.id == ident)).first()
        return row is not None and row.revoked_at is None

    def token_tenant(self, token: str) -> tuple[str, str] | None:
        """(tenant, token id) of a valid, unrevoked token; compared in constant time."""
        from sqlalchemy import select

        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not re.fullmatch(r"[0-9a-f]{16}", parts[1]):
            return None
        t = self.t.tokens
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.tenant, t.c.hash, t.c.revoked_at).where(t.c.id == parts[1])).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(_digest(parts[2]).encode(), row.hash.encode()):
            return None
        return str(row.tenant), parts[1]


__all__ = ["DEFAULT_TENANT", "TenantStore", "check_name", "scoped", "unscoped"]
