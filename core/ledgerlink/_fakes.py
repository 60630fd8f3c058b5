"""In-memory connectors for tests, demos of the contract and benchmarks: no pytest needed.

- :class:`FakeSource` and :class:`FakeTarget` (plugin names ``fake-source`` /
  ``fake-target``) keep their data in :func:`fake_store` or read a JSON file.
- :data:`fake_plugin` registers both; pass it to ``PluginManager(extra_plugins=...)``.
  A process started with ``LEDGERLINK_FAKE_PLUGINS=1`` loads it too (the CLI in
  subprocess tests); nothing sets that variable for you.
- :func:`sample_document`: a realistic shop order.

``ledgerlink.testing`` re-exports all of it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ._connectors import (
    BrokenDocument,
    Plan,
    Settings,
    Source,
    SourceItem,
    Target,
    WebhookResource,
    WebhookSource,
)
from ._errors import ConnectionError_
from ._hookspecs import hookimpl
from ._records import Address, Contact, Customer, Document, Line, LineKind, Payment, TargetRef

# -- fakes ----------------------------------------------------------------------
_STORES: dict[str, dict[str, Any]] = {}
_STORES_LOCK = threading.Lock()


def fake_store(name: str) -> dict[str, Any]:
    with _STORES_LOCK:
        return _STORES.setdefault(name, {"documents": {}, "customers": {}, "contacts": {}, "pushed": {},
                                         "payments": [], "writes": [], "statuses": {}, "source_statuses": {}})


def reset_fake_stores() -> None:
    with _STORES_LOCK:
        _STORES.clear()


class FakeSourceSettings(Settings):
    store: str = "default"
    token: SecretStr | None = None
    file: str | None = None
    """A JSON file with {"documents": [...], "customers": [...]} (canonical records)."""


class FakeSource(Source):
    """Documents and customers from memory (``fake_store(store)``) or a JSON file."""

    Settings = FakeSourceSettings
    supports_write_customer_number = True
    supports_write_status = True
    status_mapper = "identity"

    def _data(self) -> dict[str, Any]:
        store = fake_store(self.settings.store)
        if self.settings.file:
            data = json.loads(Path(self.settings.file).read_text(encoding="utf-8"))
            for raw in data.get("documents", []):
                store["documents"].setdefault(raw["source_ref"], raw)
            for raw in data.get("customers", []):
                store["customers"].setdefault(raw["source_id"], raw)
        return store

    def check(self) -> str:
        if self.settings.token and self.settings.token.get_secret_value() == "wrong":
            raise ConnectionError_("the fake source rejected the token", connection=self.context.connection)
        return f"fake source {self.settings.store!r}: {len(self._data()['documents'])} documents"

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        items = sorted(self._data()["documents"].items(), key=lambda kv: str(_cursor_of(kv[1])))
        for ref, raw in items:
            cursor = _cursor_of(raw)
            if since is not None and cursor <= since:
                continue
            yield _to_document(ref, raw, cursor)

    def document(self, source_ref: str) -> Document | None:
        raw = self._data()["documents"].get(source_ref)
        if raw is None:
            return None
        result = _to_document(source_ref, raw, _cursor_of(raw))
        return result if isinstance(result, Document) else None

    def customers(self) -> Iterator[Customer]:
        for raw in self._data()["customers"].values():
            yield raw if isinstance(raw, Customer) else Customer.model_validate(raw)

    def write_customer_number(self, customer: Customer, number: str) -> None:
        store = self._data()
        store["writes"].append(("customer_number", customer.source_id, number))
        raw = store["customers"].get(customer.source_id)
        if isinstance(raw, Customer):
            raw.customer_number = number
        elif isinstance(raw, dict):
            raw["customer_number"] = number

    def write_status(self, source_ref: str, status: Any, wording: str) -> None:
        self._data()["source_statuses"][source_ref] = wording


def _cursor_of(raw: Any) -> str:
    if isinstance(raw, Document):
        return str(raw.cursor or raw.source_ref)
    return str(raw.get("cursor") or raw.get("source_ref"))


def _to_document(ref: str, raw: Any, cursor: str) -> SourceItem:
    if isinstance(raw, Document):
        doc = raw.model_copy(deep=True)
        doc.cursor = doc.cursor or cursor
        return doc
    try:
        doc = Document.model_validate(raw)
    except Exception as exc:  # the fake source reports broken records like a real one
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"])
        return BrokenDocument(ref, f"the source record is invalid: {where}: {first['msg']}", cursor=cursor)
    doc.cursor = doc.cursor or cursor
    return doc


class FakeTargetSettings(Settings):
    store: str = "default"
    token: SecretStr | None = None


class FakeTarget(Target):
    """A target in memory. ``fake_store(store)["fail"]`` may hold exceptions to raise on the next pushes
    (``("after", exc)``: the document is stored, then ``exc`` raised, as a lost answer)."""

    Settings = FakeTargetSettings
    status_mapper = "identity"
    reverses_documents = True

    @property
    def store(self) -> dict[str, Any]:
        return fake_store(self.settings.store)

    def check(self) -> str:
        if self.settings.token and self.settings.token.get_secret_value() == "wrong":
            raise ConnectionError_("the fake target rejected the token", connection=self.context.connection)
        return f"fake target {self.settings.store!r}"

    def contacts(self) -> Iterator[Contact]:
        yield from list(self.store["contacts"].values())

    def find_contact(self, key: str) -> Contact | None:
        for contact in self.store["contacts"].values():
            if contact.extra.get("key") == key:
                return contact  # type: ignore[no-any-return]
        return None

    def create_contact(self, customer: Customer, key: str) -> Contact:
        """``store["fail_contact"]``: exceptions raised by the next calls, one each."""
        failures = self.store.setdefault("fail_contact", [])
        if failures:
            raise failures.pop(0)
        number = str(10000 + len(self.store["contacts"]) + 1)
        contact = Contact(target_id=f"c{number}", customer_number=number, first_name=customer.first_name,
                          last_name=customer.last_name, company=customer.company, email=customer.email,
                          extra={"key": key})
        self.store["contacts"][contact.target_id] = contact
        return contact

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        item = self.store["pushed"].get(source_ref)
        return None if item is None else TargetRef(target_id=item["id"], number=item["number"])

    def push(self, document: Document, plan: Plan) -> TargetRef:
        failures = self.store.setdefault("fail", [])
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, tuple) and failure[0] == "after":
                self._store_document(document, plan)
                raise failure[1]
            raise failure
        return self._store_document(document, plan)

    def _store_document(self, document: Document, plan: Plan) -> TargetRef:
        ident = f"d{len(self.store['writes']) + 1}"
        self.store["writes"].append(("push", document.source_ref, ident))
        self.store["pushed"][document.source_ref] = {
            "id": ident, "number": document.number, "gross": str(document.total_gross),
            "contact": plan.contact.target_id if plan.contact else None, "tags": list(plan.tags),
            "accounts": [pl.account for pl in plan.lines], "document_date": plan.document_date.isoformat(),
            "due_date": plan.due_date.isoformat() if plan.due_date else None, "paid": plan.mark_paid,
            "kind": str(document.kind), "reverses": plan.reverses.target_id if plan.reverses else None,
            "vouchers": [(str(p.amount), plan.voucher_account) for p in document.payments if p.kind == "voucher"],
            "currency": document.currency,
            "exchange_rate": None if plan.exchange_rate is None else str(plan.exchange_rate),
        }
        return TargetRef(target_id=ident, number=document.number)

    def complete(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """Records the call in ``store["completed"]``; ``store["fail_complete"]`` is raised once."""
        failure = self.store.pop("fail_complete", None)
        if failure is not None:
            raise failure
        self.store.setdefault("completed", []).append((ref.target_id, list(plan.tags)))

    def book_payment(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """``store["fail_payment"]``: exceptions raised by the next calls, one each."""
        failures = self.store.setdefault("fail_payment", [])
        if failures:
            raise failures.pop(0)
        self.store["payments"].append((ref.target_id, str(document.paid_amount)))

    def statuses(self, refs: Iterable[TargetRef]) -> Iterator[tuple[TargetRef, str]]:
        for ref in refs:
            yield ref, self.store["statuses"].get(ref.target_id, "open")


class FakeWebhookSource(FakeSource, WebhookSource):
    """The fake source that takes webhooks: ``{"document": "order-1"}`` points at a document."""

    webhook_events = ("document.changed",)

    def webhook_resource(self, payload: Any) -> WebhookResource | None:
        if not isinstance(payload, dict) or not isinstance(payload.get("document"), str):
            raise ValueError("the webhook payload names no document")
        return WebhookResource("document", payload["document"])

    def customer(self, source_id: str) -> Customer | None:
        return None


class _FakePlugin:
    distribution = "ledgerlink (testing)"

    @staticmethod
    @hookimpl
    def ledgerlink_register_sources(register: Callable[..., None]) -> None:
        register("fake-source", FakeSource)
        register("fake-webhook-source", FakeWebhookSource)

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register: Callable[..., None]) -> None:
        register("fake-target", FakeTarget)


fake_plugin = _FakePlugin()


def sample_document(n: int = 1, *, customer: str = "cust-1", gross: str = "119.00", rate: str = "19",
                    shipping: str | None = "4.90", country: str = "DE", paid: bool = False,
                    day: date = date(2026, 3, 2)) -> Document:
    """A realistic shop order: goods (and shipping) at the German rate, gross prices."""
    lines = [Line(description=f"Article {n}", quantity=Decimal(1), total=Decimal(gross), tax_rate=Decimal(rate),
                  kind=LineKind.GOODS, sku=f"SKU-{n}")]
    if shipping:
        lines.append(Line(description="Shipping", quantity=Decimal(1), total=Decimal(shipping),
                          tax_rate=Decimal(rate), kind=LineKind.SHIPPING))
    doc = Document(
        source_ref=f"order-{n}", number=f"RE-{1000 + n}", currency="EUR", invoice_date=day, order_date=day,
        customer=Customer(source_id=customer, first_name="Erika", last_name=f"Mustermann{customer[-1]}",
                          email=f"{customer}@example.com",
                          address=Address(street="Hauptstr. 1", zip="10115", city="Berlin", country=country)),
        lines=lines,
        cursor=f"2026-03-02T10:{n // 60:02d}:{n % 60:02d}",
    )
    if paid:
        doc.payments = [Payment(amount=doc.total_gross, date=day, method="paypal")]
        doc.payment_date = day
    return doc


__all__ = ["FakeSource", "FakeSourceSettings", "FakeTarget", "FakeTargetSettings", "fake_plugin", "fake_store",
           "reset_fake_stores", "sample_document"]
