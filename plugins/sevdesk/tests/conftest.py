"""Fixtures: a sevDesk sandbox in-process, a target wired to it, documents and plans."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
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
from ledgerlink.testing import make_http_client
from ledgerlink_sevdesk.sandbox import DEMO_TOKEN, SevdeskSandbox
from ledgerlink_sevdesk.target import SevdeskTarget


@pytest.fixture
def sandbox() -> SevdeskSandbox:
    return SevdeskSandbox()


def make_target(sandbox: SevdeskSandbox | None = None, base_url: str = "http://sevdesk.test/api/v1",
                **settings: Any) -> SevdeskTarget:
    values: dict[str, Any] = {"api_token": DEMO_TOKEN, "base_url": base_url, "backoff": 0.01,
                              "requests_per_second": 10_000,
                              "check_account": 6305996}
    values.update(settings)
    context = ConnectorContext(
        connection="books", http_factory=make_http_client,
        transport=sandbox.transport() if sandbox is not None else None,
    )
    return SevdeskTarget(SevdeskTarget.Settings(**values), context)


@pytest.fixture
def target(sandbox: SevdeskSandbox) -> SevdeskTarget:
    return make_target(sandbox)


def shop_order(ref: str = "BB-1001", *, number: str | None = "R-2026-0001", paid: bool = False,
               method: str | None = "paypal", country: str = "DE", vat_id: str | None = None,
               lines: list[Line] | None = None) -> Document:
    lines = lines or [
        Line(description="Kaffeebohnen 1 kg", quantity=Decimal(2), total=Decimal("33.98"), tax_rate=Decimal(7)),
        Line(description="Tasse", total=Decimal("12.99"), tax_rate=Decimal(19)),
        Line(description="Versand", total=Decimal("4.90"), tax_rate=Decimal(19), kind=LineKind.SHIPPING),
    ]
    document = Document(
        source_ref=ref, number=number, invoice_date=date(2026, 3, 15), order_date=date(2026, 3, 14),
        customer=Customer(source_id="c-7", first_name="Erika", last_name="Muster", email="erika@example.com",
                          vat_id=vat_id,
                          address=Address(street="Teststr. 1", zip="10115", city="Berlin", country=country)),
        lines=lines,
    )
    if paid:
        document.payments = [Payment(amount=document.total_gross, date=date(2026, 3, 16), method=method)]
    return document


ACCOUNTS = {Decimal(7): "8300", Decimal(19): "8400", Decimal(0): "8200"}


def plan_for(document: Document, *, contact: Any = None, treatment: str | None = "standard",
             accounts: dict[Decimal, str] | None = None, tags: list[str] | None = None,
             mark_paid: bool = False, **kwargs: Any) -> Plan:
    accounts = accounts or ACCOUNTS
    return Plan(
        pipeline="shop-to-books",
        contact=contact,
        lines=[PlannedLine(line=line, account=accounts[line.tax_rate.normalize()], treatment=treatment)
               for line in document.lines],
        document_date=document.invoice_date or date(2026, 3, 15),
        due_date=date(2026, 3, 29),
        tags=tags if tags is not None else ["Import"] + ([] if contact else ["Mismatch"]),
        mark_paid=mark_paid,
        mismatch=contact is None,
        **kwargs,
    )


def no_validation_errors(sandbox: SevdeskSandbox) -> None:
    bad = [(e["method"], e["path"], e["validation_errors"]) for e in sandbox.requests if e.get("validation_errors")]
    assert bad == []


@pytest.fixture
def sev() -> SimpleNamespace:
    """The helpers above, for test modules (importlib mode cannot import conftest)."""
    return SimpleNamespace(make_target=make_target, shop_order=shop_order, plan_for=plan_for,
                           no_validation_errors=no_validation_errors, ACCOUNTS=ACCOUNTS)
