"""Entry point: registers the connector with ledgerlink (filled in by its issue)."""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl


@hookimpl
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    pass
