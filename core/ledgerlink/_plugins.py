"""The plugin manager and the registry of connectors, matchers and status mappers.

Plugins are found through entry points in the group ``ledgerlink``. Environment:

- ``LEDGERLINK_LOAD_PLUGINS``: comma-separated entry-point names or distribution
  names to load (an allow-list; empty loads none of the installed plugins);
- ``LEDGERLINK_DISABLE_PLUGIN_AUTOLOAD``: load no installed plugin at all;
- ``LEDGERLINK_TRACE_PLUGINS``: print every hook call to stderr.

The built-in plugins (matchers, status mappers) are registered through the same
hooks and are always loaded. A plugin that fails to import is reported with its
distribution name and skipped; two plugins registering the same name is an error
naming both distributions.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import _hookspecs
from ._connectors import Registration
from ._errors import ConfigError

BUILTIN_PLUGINS = ("ledgerlink._matching", "ledgerlink._statuses", "ledgerlink._inbox")
KINDS = ("source", "target", "matcher", "status_mapper", "demo")


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    error: str | None = None


class Registry:
    """What the plugins registered, by kind and name."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Registration]] = {k: {} for k in KINDS}
        self.plugins: list[PluginInfo] = []
        self.problems: list[str] = []

    def add(self, kind: str, name: str, factory: Any, plugin: PluginInfo) -> None:
        existing = self.items[kind].get(name)
        if existing is not None:
            raise ConfigError(
                f"two plugins register the {kind.replace('_', ' ')} {name!r}: "
                f"{existing.distribution} and {plugin.distribution}; uninstall one or restrict "
                "LEDGERLINK_LOAD_PLUGINS"
            )
        self.items[kind][name] = Registration(kind, name, factory, plugin.distribution, plugin.version)
        plugin.kinds.add(kind)

    def get(self, kind: str, name: str) -> Registration:
        try:
            return self.items[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.items[kind])) or "none installed"
            raise ConfigError(f"no {kind.replace('_', ' ')} plugin named {name!r} (known: {known})") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.items[kind])


class _Tracer:
    def __call__(self, hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
        names = ", ".join(getattr(impl, "plugin_name", "?") for impl in hook_impls)
        print(f"[ledgerlink trace] {hook_name}({', '.join(kwargs)}) -> {names}", file=sys.stderr)


def _allowed() -> set[str] | None:
    raw = os.environ.get("LEDGERLINK_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


class PluginManager:
    """Builds the pluggy manager, loads plugins and fills the registry."""

    def __init__(self, extra_plugins: list[Any] | None = None, *, autoload: bool | None = None) -> None:
        self.pm = pluggy.PluginManager("ledgerlink")
        self.pm.add_hookspecs(_hookspecs)
        self.registry = Registry()
        self._info: dict[str, PluginInfo] = {}
        if _truthy("LEDGERLINK_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda msg: print(f"[ledgerlink trace] {msg}", end="", file=sys.stderr))
            self.pm.enable_tracing()
        core_version = _version("ledgerlink")
        for module_name in BUILTIN_PLUGINS:
            module = importlib.import_module(module_name)
            self._add(module, module_name, PluginInfo(module_name, "ledgerlink", core_version))
        if autoload is None:
            autoload = not _truthy("LEDGERLINK_DISABLE_PLUGIN_AUTOLOAD")
        if autoload:
            self._load_entry_points()
        extra_plugins = list(extra_plugins or [])
        if _truthy("LEDGERLINK_FAKE_PLUGINS"):
            from ._fakes import fake_plugin

            if fake_plugin not in extra_plugins:
                extra_plugins.append(fake_plugin)
        for index, plugin in enumerate(extra_plugins):
            name = getattr(plugin, "__name__", None) or type(plugin).__name__ or f"extra-{index}"
            self._add(plugin, name, PluginInfo(name, getattr(plugin, "distribution", "(in process)"), "0"))
        self._check_pending()
        self._collect()

    def _add(self, plugin: Any, name: str, info: PluginInfo) -> None:
        self.pm.register(plugin, name=name)
        info.hooks = sorted(
            impl_name for impl_name in dir(plugin) if impl_name.startswith("ledgerlink_")
        )
        self._info[name] = info
        self.registry.plugins.append(info)

    def _load_entry_points(self) -> None:
        allowed = _allowed()
        for ep in sorted(metadata.entry_points(group="ledgerlink"), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if allowed is not None and ep.name not in allowed and dist not in allowed:
                continue
            if self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                info = PluginInfo(ep.name, dist, version, error=f"{type(exc).__name__}: {exc}")
                self.registry.plugins.append(info)
                self.registry.problems.append(
                    f"plugin {ep.name!r} from {dist} {version} failed to load and was skipped: "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            self._add(module, ep.name, PluginInfo(ep.name, dist, version))

    def _check_pending(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise ConfigError(f"a plugin implements an unknown hook: {exc}") from None

    def _collect(self) -> None:
        for kind, hook in (
            ("source", self.pm.hook.ledgerlink_register_sources),
            ("target", self.pm.hook.ledgerlink_register_targets),
            ("matcher", self.pm.hook.ledgerlink_register_matchers),
            ("status_mapper", self.pm.hook.ledgerlink_register_status_mappers),
            ("demo", self.pm.hook.ledgerlink_register_demos),
        ):
            for impl in hook.get_hookimpls():
                info = self._info[self.pm.get_name(impl.plugin) or ""]
                if _truthy("LEDGERLINK_TRACE_PLUGINS"):
                    print(f"[ledgerlink trace] {hook.name}(register) -> {info.name}", file=sys.stderr)

                def register(name: str, factory: Any, _kind: str = kind, _info: PluginInfo = info) -> None:
                    self.registry.add(_kind, name, factory, _info)

                try:
                    impl.function(register)
                except ConfigError:
                    raise
                except Exception as exc:
                    self.registry.problems.append(
                        f"plugin {info.name!r} from {info.distribution} failed in {hook.name}: "
                        f"{type(exc).__name__}: {exc}"
                    )

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def fire(self, name: str, **kwargs: Any) -> None:
        """Call an event hook; a failing implementation is logged, never raised."""
        import logging

        try:
            getattr(self.pm.hook, name)(**kwargs)
        except Exception as exc:
            logging.getLogger("ledgerlink").warning("a plugin failed in %s: %s: %s", name, type(exc).__name__, exc)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"


_ENVIRONMENT = ("LEDGERLINK_LOAD_PLUGINS", "LEDGERLINK_DISABLE_PLUGIN_AUTOLOAD", "LEDGERLINK_FAKE_PLUGINS",
                "LEDGERLINK_TRACE_PLUGINS")
_cached: dict[tuple[str | None, ...], PluginManager] = {}


def _settings_key() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in _ENVIRONMENT)


def get_plugin_manager(fresh: bool = False) -> PluginManager:
    """The process's plugin manager for the current ``LEDGERLINK_*`` plugin settings
    (built once per combination of them)."""
    key = _settings_key()
    if fresh or key not in _cached:
        _cached[key] = PluginManager()
    return _cached[key]


def use_plugin_manager(manager: PluginManager) -> None:
    """Make ``manager`` the one :func:`get_plugin_manager` returns under the current
    plugin settings (a benchmark's in-process connectors, say)."""
    _cached[_settings_key()] = manager


def import_string(path: str) -> Any:
    """Import ``"module:attr"``."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj

