"""Entry point: registers the Cobot source with ledgerlink."""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl


@hookimpl
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    from .source import CobotSource

    register("cobot", CobotSource)
