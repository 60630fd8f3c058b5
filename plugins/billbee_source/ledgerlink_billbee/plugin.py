"""Entry point: registers the Billbee source with ledgerlink."""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl


@hookimpl
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    from .source import BillbeeSource

    register("billbee", BillbeeSource)


@hookimpl
def ledgerlink_register_demos(register: Callable[..., None]) -> None:
    from ledgerlink import Demo

    register("billbee-sevdesk", Demo(source="billbee", target="sevdesk",
                                     description="about 50 webshop orders from the Billbee sandbox into the "
                                                 "sevDesk sandbox, as vouchers"))
