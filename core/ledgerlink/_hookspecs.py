"""The hook specifications: the whole contract between ledgerlink and its plugins.

A plugin is a module (or object) with functions named like the hooks below and
marked with ``@ledgerlink.hookimpl``, published through an entry point in the
group ``ledgerlink``::

    [project.entry-points.ledgerlink]
    sevdesk = "ledgerlink_sevdesk.plugin"

Registration hooks are called once, when the plugin manager is built (at the
start of every CLI command and of ``ledgerlink.api.load``). They receive a
``register`` callback and call it once per thing they offer; the core owns the
registry, so plugins never touch a core list. A name registered twice is an error
that names both distributions.

Event hooks are called by the engine while it works, after the ledger commit of
the event they report. Their exceptions are caught, logged and never stop the
run (a notification must not lose a booking).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("ledgerlink")
hookimpl = pluggy.HookimplMarker("ledgerlink")
"""Marks a plugin's hook implementations (exported as ``ledgerlink.hookimpl``)."""


@hookspec
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    """Register source connectors (systems where sales happen).

    :param register: call ``register(name, SourceClass)`` once per source. ``name``
        is what operators write as ``plugin = "name"`` in a connection;
        ``SourceClass`` subclasses :class:`ledgerlink.Source` and has a pydantic
        ``Settings`` class attribute that validates the connection's settings.
    :return: nothing; the return value is ignored.

    Called once when the plugin manager is built. May raise nothing: an exception
    here is reported with the plugin's distribution name and the plugin is skipped.
    """


@hookspec
def ledgerlink_register_targets(register: Callable[..., None]) -> None:
    """Register target connectors (systems where money is booked or collected).

    :param register: call ``register(name, TargetClass)`` once per target.
        ``TargetClass`` subclasses :class:`ledgerlink.Target` and has a pydantic
        ``Settings`` class attribute. A target that ships a sandbox names it in its
        ``sandbox`` class attribute (``"module:Class"``, imported only when used).
    :return: nothing; the return value is ignored.

    Called once when the plugin manager is built. An exception is reported with
    the distribution name and the plugin is skipped.
    """


@hookspec
def ledgerlink_register_matchers(register: Callable[..., None]) -> None:
    """Register customer matchers.

    :param register: call ``register(name, MatcherClass)``; ``MatcherClass``
        subclasses :class:`ledgerlink.Matcher` and turns contacts and customers into
        normalised keys. The built-ins ``customer_number``, ``email`` and ``name``
        are registered through this hook by ``ledgerlink._matching``.
    :return: nothing.

    Called once when the plugin manager is built. Pipelines name matchers in
    ``matchers = [...]``; the first matcher with exactly one candidate wins.
    """


@hookspec
def ledgerlink_register_status_mappers(register: Callable[..., None]) -> None:
    """Register status mappers.

    :param register: call ``register(name, MapperClass)``; ``MapperClass`` subclasses
        :class:`ledgerlink.StatusMapper` (``to_canonical(raw)`` and
        ``from_canonical(status)``). Connectors name their mapper in their
        ``status_mapper`` class attribute.
    :return: nothing.

    Called once when the plugin manager is built. The built-in ``identity`` mapper
    is registered through this hook by ``ledgerlink._statuses``.
    """


@hookspec
def ledgerlink_register_demos(register: Callable[..., None]) -> None:
    """Register demos (``ledgerlink demo NAME``).

    :param register: call ``register(name, ledgerlink.Demo(source=..., target=...))``
        naming a registered source and target plugin whose connector classes declare a
        ``sandbox``; the source's sandbox gives the seed (``demo_seed()``), the target's
        sandbox the pipeline's booking rules (``demo_rules()``), both their connection
        settings (``demo_connection(url)``).
    :return: nothing.

    Called once when the plugin manager is built.
    """


@hookspec
def ledgerlink_document_pushed(pipeline: str, source_ref: str, target_ref: Any, document: Any) -> None:
    """A document arrived in the target.

    :param pipeline: the pipeline's name.
    :param source_ref: the document's reference in the source.
    :param target_ref: the :class:`ledgerlink.TargetRef` it landed as.
    :param document: the :class:`ledgerlink.Document` that was pushed.
    :return: nothing.

    Called after the ledger has committed the document as ``pushed`` (also when a
    pending document is settled by ``find_document``). Exceptions are logged and
    ignored.
    """


@hookspec
def ledgerlink_document_failed(pipeline: str, source_ref: str, state: str, reason: str) -> None:
    """A document could not be transferred.

    :param pipeline: the pipeline's name.
    :param source_ref: the document's reference in the source.
    :param state: ``failed`` or ``quarantined``.
    :param reason: the one-line reason, as ``ledgerlink status`` shows it.
    :return: nothing.

    Called after the ledger has committed the state. Exceptions are logged and ignored.
    """


@hookspec
def ledgerlink_status_changed(
    pipeline: str, source_ref: str, old: str | None, new: str, raw: str
) -> None:
    """A pushed document's status in the target changed (status sync).

    :param pipeline: the pipeline's name.
    :param source_ref: the document's reference in the source.
    :param old: the previous canonical status label (``None`` the first time).
    :param new: the new canonical status label (e.g. ``"paid"``, ``"reminder 2"``).
    :param raw: the target's raw status, verbatim.
    :return: nothing.

    Called by ``sync-status`` after the change is committed to the ledger and
    before the status is written back to the source. Exceptions are logged and
    ignored.
    """


HOOKS = [
    "ledgerlink_register_sources",
    "ledgerlink_register_targets",
    "ledgerlink_register_matchers",
    "ledgerlink_register_status_mappers",
    "ledgerlink_register_demos",
    "ledgerlink_document_pushed",
    "ledgerlink_document_failed",
    "ledgerlink_status_changed",
]
