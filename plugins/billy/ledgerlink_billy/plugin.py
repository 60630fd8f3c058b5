"""Entry point: registers the Billy target and its status mapper with ledgerlink.

Kept light: the target module imports no starlette (the sandbox is named lazily
in ``BillyTarget.sandbox``).
"""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl

from .statuses import BillyStatusMapper
from .target import BillyTarget


@hookimpl
def ledgerlink_register_targets(register: Callable[..., None]) -> None:
    register("billy", BillyTarget)


@hookimpl
def ledgerlink_register_status_mappers(register: Callable[..., None]) -> None:
    register("billy", BillyStatusMapper)
