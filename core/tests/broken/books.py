"""A small bookkeeping API (respx routes) and its target: correct, and one subclass per bug."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import respx
from ledgerlink import (
    ConnectorContext,
    Contact,
    Customer,
    Document,
    HttpClient,
    Plan,
    Settings,
    Target,
    TargetRef,
)
from pydantic import SecretStr

BASE = "https://books.example/v1"
TOKEN = "books-token-5678"


class BooksVendor:
    """The bookkeeping API in memory: bearer token; ``GET /me``; ``GET|POST /contacts``
    (``?key=``); ``GET|POST /documents`` (``?ref=``, ``?kind=``);
    ``GET|POST /documents/{id}/payments``."""

    def __init__(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, Any]] = {}
        self.payments: list[dict[str, Any]] = []
        self.router = respx.MockRouter(assert_all_called=False)
        self.router.route(url__startswith=BASE).mock(side_effect=self.handle)

    def transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(self.router.handler)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"message": "invalid token"})
        path = request.url.path.removeprefix("/v1")
        params = request.url.params
        body = httpx.Response(200, content=request.content).json() if request.content else {}
        if path == "/me":
            return httpx.Response(200, json={"company": "Catalogue Books"})
        if path == "/contacts":
            if request.method == "POST":
                ident = f"k{len(self.contacts) + 1}"
                self.contacts[ident] = {"id": ident, **body}
                return httpx.Response(201, json=self.contacts[ident])
            rows = [c for c in self.contacts.values() if "key" not in params or c.get("key") == params["key"]]
            return httpx.Response(200, json=rows)
        if path == "/documents":
            if request.method == "POST":
                ident = f"d{len(self.documents) + 1}"
                self.documents[ident] = {"id": ident, **body}
                return httpx.Response(201, json=self.documents[ident])
            rows = [d for d in self.documents.values()
                    if all(d.get(key) == params[key] for key in ("ref", "kind") if key in params)]
            return httpx.Response(200, json=rows)
        if path.startswith("/documents/") and path.endswith("/payments"):
            ident = path.split("/")[2]
            if ident not in self.documents:
                return httpx.Response(404, json={"message": "no such document"})
            if request.method == "POST":
                self.payments.append({"document": ident, **body})
                return httpx.Response(201, json=self.payments[-1])
            return httpx.Response(200, json=[p for p in self.payments if p["document"] == ident])
        return httpx.Response(404, json={"message": "not found"})


class BooksSettings(Settings):
    api_token: SecretStr
    base_url: str = BASE
    timeout: float | None = None


class BooksTarget(Target):
    """The correct target."""

    Settings = BooksSettings
    reverses_documents: ClassVar[bool] = True

    def __init__(self, settings: Any, context: ConnectorContext) -> None:
        super().__init__(settings, context)
        self._client: HttpClient | None = None

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            token = self.settings.api_token.get_secret_value()
            timeout = {} if self.settings.timeout is None else {"timeout": self.settings.timeout}
            self._client = self.context.http(vendor="Books", base_url=self.settings.base_url,
                                             headers={"Authorization": f"Bearer {token}"}, secrets=[token],
                                             auth_hint="copy the API token again", backoff=0.01, **timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.json(self.client.request(method, path, **kwargs))

    def check(self) -> str:
        return f"books of {self._call('GET', '/me')['company']!r}"

    @staticmethod
    def _contact(row: dict[str, Any]) -> Contact:
        return Contact(target_id=row["id"], last_name=row.get("name"), extra={"key": row.get("key")})

    def contacts(self) -> Iterator[Contact]:
        for row in self._call("GET", "/contacts"):
            yield self._contact(row)

    def find_contact(self, key: str) -> Contact | None:
        rows = self._call("GET", "/contacts", params={"key": key})
        return self._contact(rows[0]) if rows else None

    def contact_body(self, customer: Customer, key: str) -> dict[str, Any]:
        return {"name": customer.display_name, "key": key}

    def create_contact(self, customer: Customer, key: str) -> Contact:
        return self._contact(self._call("POST", "/contacts", json=self.contact_body(customer, key)))

    def search(self, source_ref: str) -> dict[str, Any]:
        return {"ref": source_ref}

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        rows = self._call("GET", "/documents", params=self.search(source_ref))
        return TargetRef(target_id=rows[0]["id"], number=rows[0].get("number")) if rows else None

    def push(self, document: Document, plan: Plan) -> TargetRef:
        row = self._call("POST", "/documents", json={
            "ref": document.source_ref, "number": document.number, "kind": str(document.kind),
            "gross": str(document.total_gross), "contact": plan.contact.target_id if plan.contact else None,
            "reverses": plan.reverses.target_id if plan.reverses else None,
            "accounts": [line.account for line in plan.lines]})
        return TargetRef(target_id=row["id"], number=row.get("number"))

    def payments_to_book(self, ref: TargetRef, document: Document) -> list[dict[str, Any]]:
        booked = {p["reference"] for p in self._call("GET", f"/documents/{ref.target_id}/payments")}
        wanted = [{"reference": p.reference or f"{document.source_ref}/{i}", "amount": str(p.amount)}
                  for i, p in enumerate(document.payments)]
        return [p for p in wanted if p["reference"] not in booked]

    def book_payment(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        for payment in self.payments_to_book(ref, document):
            self._call("POST", f"/documents/{ref.target_id}/payments", json=payment)


# -- one bug each ----------------------------------------------------------------------------
class DoubleWritingTarget(BooksTarget):
    """Never finds what it wrote: after a lost answer the engine pushes again."""

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        return None


class KeyForgettingTarget(BooksTarget):
    """Does not store the contact's key, so find_contact cannot settle a lost creation."""

    def contact_body(self, customer: Customer, key: str) -> dict[str, Any]:
        return {"name": customer.display_name}


class DoubleBookingTarget(BooksTarget):
    """Books every payment again on each call."""

    def payments_to_book(self, ref: TargetRef, document: Document) -> list[dict[str, Any]]:
        return [{"reference": p.reference or f"{document.source_ref}/{i}", "amount": str(p.amount)}
                for i, p in enumerate(document.payments)]


class InvoiceOnlyFinderTarget(BooksTarget):
    """Writes credit notes but finds invoices only."""

    def search(self, source_ref: str) -> dict[str, Any]:
        return {"ref": source_ref, "kind": "invoice"}


TARGETS: dict[str, type[BooksTarget]] = {
    "catalogue-books": BooksTarget,
    "catalogue-double-writing-target": DoubleWritingTarget,
    "catalogue-key-forgetting-target": KeyForgettingTarget,
    "catalogue-double-booking-target": DoubleBookingTarget,
    "catalogue-invoice-only-finder-target": InvoiceOnlyFinderTarget,
}
