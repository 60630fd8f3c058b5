"""Entry point: registers the sevDesk target and its status mapper with ledgerlink.

Kept light: the sandbox (starlette) is imported only when it is used.
"""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl


@hookimpl
def ledgerlink_register_targets(register: Callable[..., None]) -> None:
    from .target import SevdeskTarget

    register("sevdesk", SevdeskTarget)


@hookimpl
def ledgerlink_register_status_mappers(register: Callable[..., None]) -> None:
    from .statuses import SevdeskStatusMapper

    register("sevdesk", SevdeskStatusMapper)
