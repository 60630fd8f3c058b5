"""Entry point: registers the Bilendo target and its status mappers with ledgerlink.

Kept light: the sandbox (starlette) is named lazily by the target's ``sandbox``
attribute and imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl

from .statuses import BilendoGermanStatusMapper, BilendoStatusMapper
from .target import BilendoTarget


@hookimpl
def ledgerlink_register_targets(register: Callable[..., None]) -> None:
    register("bilendo", BilendoTarget)


@hookimpl
def ledgerlink_register_status_mappers(register: Callable[..., None]) -> None:
    register("bilendo", BilendoStatusMapper)
    register("bilendo_de", BilendoGermanStatusMapper)
