from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from ledgerlink import (
    Address,
    ConnectorContext,
    Customer,
    Document,
    Line,
    LineKind,
    Payment,
    Plan,
    PlannedLine,
)
from ledgerlink.testing import closing_factory, make_http_client
from ledgerlink_billy.sandbox import DEMO_TOKEN, BillySandbox
from ledgerlink_billy.target import BillyTarget

FAST_HTTP = partial(make_http_client, backoff=0.001, retries=3)

COUNTRIES = {"domestic": "DK", "eu": "DE", "non_eu": "US"}


def demo_settings(base_url: str = "http://sandbox") -> dict[str, Any]:
    settings, _env = BillySandbox().demo_connection(base_url)
    settings["api_token"] = DEMO_TOKEN
    return settings


def make_target(transport: Any = None, base_url: str = "http://sandbox", **overrides: Any) -> BillyTarget:
    values = demo_settings(base_url)
    values["requests_per_second"] = 100  # keep tests fast; the default spaces requests at 5 per second
    values.update(overrides)
    values = {k: v for k, v in values.items() if v is not None}
    context = ConnectorContext(connection="billy-test", http_factory=FAST_HTTP, transport=transport)
    return BillyTarget(BillyTarget.Settings(**values), context)


def customer(n: int = 1, *, country: str = "DK", company: str | None = None, vat_id: str | None = None) -> Customer:
    return Customer(
        source_id=f"cust-{n}", first_name="Jens", last_name=f"Hansen{n}", company=company,
        email=f"jens{n}@example.dk", phone="+45 12 34 56 78", vat_id=vat_id,
        address=Address(street="Nørregade 7", street2="2. th.", zip="8000", city="Aarhus", country=country),
    )


def shop_document(n: int, region: str, *, rate: str | None = None, paid: bool = False,
                  company: str | None = None) -> Document:
    """A shop order (gross prices): two goods lines and freight, in DKK."""
    vat = Decimal(rate) if rate is not None else (Decimal(0) if region == "non_eu" else Decimal(25))
    cust = customer(n, country=COUNTRIES[region], company=company,
                    vat_id="DE123456789" if company and region == "eu" else None)
    lines = [
        Line(description="T-shirt, blå, str. M", quantity=Decimal(2), total=Decimal("399.90"),
             tax_rate=vat, unit_price=Decimal("199.95")),
        Line(description="Kasket", quantity=Decimal(3), total=Decimal("100.00"), tax_rate=vat),
        Line(description="GLS pakkeshop", quantity=Decimal(1), total=Decimal("49.00"), tax_rate=vat,
             kind=LineKind.SHIPPING),
    ]
    total = sum((line.total for line in lines), Decimal(0))
    return Document(
        source_ref=f"order-{n}", number=f"SHOP-{1000 + n}", currency="DKK", invoice_date=date(2026, 3, 2),
        customer=cust, lines=lines, seller_country="DK", stated_total=total,
        payments=[Payment(amount=total, date=date(2026, 3, 3), method="card")] if paid else [],
    )


def plan_for(doc: Document, contact: Any, *, mark_paid: bool = False, accounts: dict[int, str] | None = None) -> Plan:
    planned = [PlannedLine(line, account=(accounts or {}).get(i)) for i, line in enumerate(doc.lines)]
    return Plan(pipeline="shop", contact=contact, lines=planned, document_date=doc.invoice_date or date(2026, 3, 2),
                due_date=None, mark_paid=mark_paid)


@pytest.fixture
def sandbox() -> BillySandbox:
    return BillySandbox()


@pytest.fixture
def target_for(sandbox: BillySandbox) -> Iterator[Callable[..., BillyTarget]]:
    yield from closing_factory(lambda **settings: make_target(sandbox.transport(), **settings))


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable by name)."""
    return SimpleNamespace(customer=customer, shop_document=shop_document, plan_for=plan_for,
                           make_target=make_target, demo_settings=demo_settings, DEMO_TOKEN=DEMO_TOKEN)
