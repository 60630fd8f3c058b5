"""``ledgerlink`` with two benchmark-only connectors added (for bench_memory.py).

Usage: ``python bench/_bench_cli.py ARGS...`` runs ``ledgerlink ARGS...`` (the
real CLI, ``ledgerlink._cli.main``) with these plugins registered too:

- source ``bench-stream``: generates ``documents`` shop orders on the fly (nothing
  read from disk, nothing kept), over ``customers`` distinct customers, each
  with its own cursor, so the source holds no per-document memory;
- target ``bench-count``: accepts every document and keeps only a counter, so
  the target holds no per-document memory either.

Whatever grows with the number of documents in ``ledgerlink run`` then belongs
to the engine, the ledger or the CLI. ``BENCH_KEEP_OUTCOMES=0`` in the
environment makes the runtime count outcomes instead of keeping them
(``Runtime(keep_outcomes=False)``), which the CLI could do for ``run`` without
``--json``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from ledgerlink import (
    Address,
    Contact,
    Customer,
    Document,
    Line,
    Settings,
    Source,
    Target,
    TargetRef,
    hookimpl,
)
from ledgerlink._records import LineKind


class StreamSettings(Settings):
    documents: int = 10_000
    customers: int = 1_000


class StreamSource(Source):
    Settings = StreamSettings

    def check(self) -> str:
        return f"bench stream: {self.settings.documents} documents"

    def documents(self, since: str | None) -> Iterator[Document]:
        start = int(since) + 1 if since else 0
        for n in range(start, self.settings.documents):
            yield self._document(n)

    def _document(self, n: int) -> Document:
        k = n % self.settings.customers
        day = date(2026, 1, 1 + n % 28)
        return Document(
            source_ref=f"order-{n}", number=f"RE-{100000 + n}", currency="EUR", invoice_date=day, order_date=day,
            customer=Customer(source_id=f"cust-{k}", first_name="Erika", last_name=f"Muster{k}",
                              email=f"cust-{k}@example.com",
                              address=Address(street="Hauptstr. 1", zip="10115", city="Berlin", country="DE")),
            lines=[
                Line(description=f"Article {n % 97}", quantity=Decimal(1), total=Decimal("119.00"),
                     tax_rate=Decimal(19), kind=LineKind.GOODS, sku=f"SKU-{n % 97}"),
                Line(description="Shipping", quantity=Decimal(1), total=Decimal("4.90"), tax_rate=Decimal(19),
                     kind=LineKind.SHIPPING),
            ],
            cursor=f"{n:012d}",
        )

    def customers(self) -> Iterator[Customer]:
        return iter(())


class CountSettings(Settings):
    pass


class CountTarget(Target):
    Settings = CountSettings
    _ids = itertools.count(1)

    def check(self) -> str:
        return "bench count target"

    def contacts(self) -> Iterator[Contact]:
        return iter(())

    def find_contact(self, key: str) -> Contact | None:
        return None

    def create_contact(self, customer: Customer, key: str) -> Contact:
        n = next(self._ids)
        return Contact(target_id=f"c{n}", customer_number=str(10000 + n), first_name=customer.first_name,
                       last_name=customer.last_name, email=customer.email)

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        return None

    def push(self, document: Document, plan: Any) -> TargetRef:
        return TargetRef(target_id=f"d{next(self._ids)}", number=document.number)

    def book_payment(self, ref: TargetRef, document: Document, plan: Any) -> None:
        pass


class _BenchPlugin:
    distribution = "ledgerlink bench"

    @staticmethod
    @hookimpl
    def ledgerlink_register_sources(register: Callable[..., None]) -> None:
        register("bench-stream", StreamSource)

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register: Callable[..., None]) -> None:
        register("bench-count", CountTarget)


def main() -> None:
    import os

    from ledgerlink import _plugins as plugins
    from ledgerlink import _runner as engine

    plugins.use_plugin_manager(plugins.PluginManager(extra_plugins=[_BenchPlugin()]))
    if os.environ.get("BENCH_KEEP_OUTCOMES") == "0":
        # What `run` without --json could do: count outcomes instead of keeping them.
        original = engine.Runtime.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("keep_outcomes", False)
            original(self, *args, **kwargs)

        engine.Runtime.__init__ = init  # type: ignore[method-assign]
    from ledgerlink._cli import main as cli_main

    sys.argv[0] = "ledgerlink"
    cli_main()


if __name__ == "__main__":
    main()
