"""Registers every catalogue connector (pass ``catalogue_plugin`` as a suite's ``extra_plugins``)."""

from __future__ import annotations

from collections.abc import Callable

from ledgerlink import hookimpl

from .books import TARGETS
from .mappers import MAPPERS
from .shop import SOURCES


class CataloguePlugin:
    distribution = "ledgerlink core tests (broken-connector catalogue)"

    @staticmethod
    @hookimpl
    def ledgerlink_register_sources(register: Callable[..., None]) -> None:
        for name, source in SOURCES.items():
            register(name, source)

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register: Callable[..., None]) -> None:
        for name, target in TARGETS.items():
            register(name, target)

    @staticmethod
    @hookimpl
    def ledgerlink_register_status_mappers(register: Callable[..., None]) -> None:
        for name, mapper in MAPPERS.items():
            register(name, mapper)


catalogue_plugin = CataloguePlugin()
