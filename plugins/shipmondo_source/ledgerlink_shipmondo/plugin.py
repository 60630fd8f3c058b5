"""Entry point: registers the Shipmondo source and its demo with ledgerlink.

Kept cheap to import (the CLI loads every plugin on start-up): the source module
imports no sandbox; ``ShipmondoSource.sandbox`` names it and ledgerlink imports it
only when asked.
"""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl


@hookimpl
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    from .source import ShipmondoSource

    register("shipmondo", ShipmondoSource)


@hookimpl
def ledgerlink_register_demos(register: Callable[..., None]) -> None:
    from ledgerlink import Demo

    register("shipmondo-billy", Demo(
        source="shipmondo", target="billy",
        description="handled orders of two Danish webshops from the Shipmondo sandbox into one company in the "
                    "Billy sandbox: drafts first, then approved automatically, then a second shop",
        story="ledgerlink_shipmondo.demo:story"))
