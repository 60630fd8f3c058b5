"""Entry point: registers the 1CRM source and the onecrm-bilendo demo with ledgerlink.

Kept light: the source module is imported when the hook runs; the sandbox (starlette)
only when ``ledgerlink sandbox`` or a demo asks for it.
"""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl


@hookimpl
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    from .source import OnecrmSource

    register("onecrm", OnecrmSource)


@hookimpl
def ledgerlink_register_demos(register: Callable[..., None]) -> None:
    from ledgerlink import Demo

    register("onecrm-bilendo", Demo(
        source="onecrm", target="bilendo",
        description="30 1CRM invoices exported to Bilendo (sent or kept a draft by each account's preset), then "
                    "Bilendo's dunning status (due, reminder 1, paid) written back into 1CRM",
        story="ledgerlink_onecrm.demo:story"))
