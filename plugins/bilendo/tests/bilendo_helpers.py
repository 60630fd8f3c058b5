"""Shared helpers of the Bilendo tests (imported by name; conftest puts this folder on sys.path)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
from ledgerlink import Address, ConnectorContext, Customer, Document, Line, Plan, PlannedLine
from ledgerlink.testing import make_http_client
from ledgerlink_bilendo.sandbox import DEMO_TOKEN, BilendoSandbox
from ledgerlink_bilendo.target import BilendoTarget

FAST_HTTP = partial(make_http_client, backoff=0.001, retries=3)


def make_target(transport: Any = None, **settings: Any) -> BilendoTarget:
    # The client-side limit (5 requests/s, an assumption) would make the suite slow;
    # test_http.py::test_client_side_rate_limit_spaces_requests checks the default.
    values = {"api_token": DEMO_TOKEN, "base_url": "https://apisandbox.bilendo.de", "requests_per_second": 1000.0}
    values.update(settings)
    context = ConnectorContext(connection="bilendo-test", http_factory=FAST_HTTP, transport=transport)
    return BilendoTarget(BilendoTarget.Settings(**values), context)


def customer(n: int = 1, *, company: str | None = "Acme GmbH") -> Customer:
    return Customer(
        source_id=f"cust-{n}", company=company, first_name="Max", last_name=f"Muster{n}",
        email=f"max{n}@acme.example", phone="+49 89 1234",
        address=Address(street="Sendlinger Str. 85", zip="81735", city="München", country="DE"),
    )


def invoice(n: int = 1, *, cust: Customer | None = None, pdf_url: str | None = None) -> Document:
    return Document(
        source_ref=f"inv-{n}", number=f"RE-{1000 + n}", currency="EUR", invoice_date=date(2026, 3, 2),
        customer=cust or customer(),
        lines=[
            Line(description="Consulting", quantity=Decimal(3), total=Decimal("300.00"),
                 tax_rate=Decimal(19), price_basis="net"),
            Line(description="Book", quantity=Decimal(1), total=Decimal("20.00"),
                 tax_rate=Decimal(7), price_basis="net"),
        ],
        pdf_url=pdf_url,
    )


def plan_for(doc: Document, contact: Any, due: date | None = date(2026, 3, 16)) -> Plan:
    return Plan(pipeline="test", contact=contact, lines=[PlannedLine(line) for line in doc.lines],
                document_date=doc.invoice_date or date(2026, 3, 2), due_date=due)


def advance(sandbox: BilendoSandbox, invoice_id: str, to: str, **extra: Any) -> httpx.Response:
    with httpx.Client(transport=sandbox.transport(), base_url="http://sandbox") as client:
        return client.post("/__sandbox__/advance", json={"invoice": invoice_id, "to": to, **extra})
