"""A small shop API (respx routes) and its source: correct, and one subclass per bug."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import respx
from ledgerlink import (
    BrokenDocument,
    ConnectionError_,
    ConnectorContext,
    Customer,
    Document,
    DocumentError,
    HttpClient,
    Line,
    Settings,
    Source,
    SourceItem,
    TransientError,
)
from pydantic import SecretStr

BASE = "https://shop.example/api"
TOKEN = "shop-token-1234"


def demo_orders() -> list[dict[str, Any]]:
    """Six orders, one per day; 1004 waits for payment (skipped); gross prices."""
    orders = []
    for n in range(1, 7):
        items = [{"name": f"Article {n}", "qty": "1", "gross": "119.00", "rate": 19},
                 {"name": "Book", "qty": "2", "gross": "21.40", "rate": 7}]
        orders.append({
            "id": str(1000 + n), "number": f"S-{1000 + n}", "date": f"2026-03-0{n}",
            "updated": f"2026-03-0{n}T10:00:00", "status": "pending" if n == 4 else "paid",
            "total": "140.40", "customer": {"id": f"c{n % 3}", "name": f"Kundin {n % 3}", "country": "DE"},
            "items": items,
        })
    return orders


class ShopVendor:
    """The shop's API in memory: bearer token, ``GET /account``, ``GET /orders`` (page,
    per_page at most 100, updated_since exclusive, sorted by update), ``GET /orders/{id}``."""

    def __init__(self) -> None:
        self.orders = {order["id"]: order for order in demo_orders()}
        self.router = respx.MockRouter(assert_all_called=False)
        self.router.route(url__startswith=BASE).mock(side_effect=self.handle)

    def transport(self) -> httpx.BaseTransport:
        return httpx.MockTransport(self.router.handler)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"message": "invalid token"})
        path = request.url.path.removeprefix("/api")
        params = request.url.params
        if path == "/account":
            return httpx.Response(200, json={"name": "Catalogue Shop"})
        if path == "/orders":
            page, per = int(params.get("page", "1")), min(int(params.get("per_page", "100")), 100)
            rows = sorted(self.orders.values(), key=lambda o: (o["updated"], o["id"]))
            since = params.get("updated_since")
            if since:
                rows = [o for o in rows if o["updated"] > since]
            return httpx.Response(200, json={"orders": rows[(page - 1) * per: page * per], "total": len(rows)})
        if path.startswith("/orders/"):
            order = self.orders.get(path.removeprefix("/orders/"))
            return httpx.Response(200, json=order) if order else httpx.Response(404, json={"message": "no order"})
        return httpx.Response(404, json={"message": "not found"})


class ShopSettings(Settings):
    api_token: SecretStr
    base_url: str = BASE
    page_size: int = 100
    timeout: float | None = None


class ShopSource(Source):
    """The correct source."""

    Settings = ShopSettings

    def __init__(self, settings: Any, context: ConnectorContext) -> None:
        super().__init__(settings, context)
        self._client: HttpClient | None = None

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            token = self.settings.api_token.get_secret_value()
            self._client = self.context.http(vendor="Shop", base_url=self.settings.base_url,
                                             headers={"Authorization": f"Bearer {token}"}, secrets=[token],
                                             auth_hint="copy the shop's API token again", backoff=0.01)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.json(self.client.get(path, params=params))

    def check(self) -> str:
        return f"shop {self._get('/account')['name']!r}"

    def _params(self, since: str | None, page: int) -> dict[str, Any]:
        params: dict[str, Any] = {"page": page, "per_page": self.settings.page_size}
        if since:
            params["updated_since"] = since
        return params

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        page = 1
        while True:
            body = self._get("/orders", self._params(since, page))
            for raw in body["orders"]:
                yield self.map(raw)
            if not body["orders"] or page * self.settings.page_size >= body["total"]:
                return
            page += 1

    def document(self, source_ref: str) -> Document | None:
        mapped = self.map(self._get(f"/orders/{source_ref}"))
        return mapped if isinstance(mapped, Document) else None

    def rate(self, item: dict[str, Any]) -> Decimal:
        return Decimal(str(item["rate"]))

    def stated_total(self, raw: dict[str, Any]) -> Decimal:
        return Decimal(raw["total"])

    def map(self, raw: dict[str, Any]) -> SourceItem:
        ref = str(raw["id"])
        try:
            lines = [Line(description=item["name"], quantity=Decimal(item["qty"]), total=Decimal(item["gross"]),
                          tax_rate=self.rate(item)) for item in raw["items"]]
            customer = raw["customer"]
            return Document(
                source_ref=ref, number=raw["number"], invoice_date=date.fromisoformat(raw["date"]),
                customer=Customer(source_id=customer["id"], last_name=customer["name"],
                                  address={"country": customer["country"]}),
                lines=lines, stated_total=self.stated_total(raw), cursor=raw["updated"], source_status=raw["status"],
                skip_reason="waiting for payment" if raw["status"] == "pending" else None,
            )
        except (KeyError, ValueError, InvalidOperation) as exc:
            return BrokenDocument(ref, f"order {ref}: {type(exc).__name__}: {exc}", cursor=raw.get("updated"))


# -- one bug each ----------------------------------------------------------------------------
class DuplicatingSource(ShopSource):
    """Yields every document twice."""

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        for item in super().documents(since):
            yield item
            yield item


class UnbalancedSource(ShopSource):
    """States a grand total 10 above the vendor's."""

    def stated_total(self, raw: dict[str, Any]) -> Decimal:
        return Decimal(raw["total"]) + 10


class FractionRateSource(ShopSource):
    """Maps 19 % as 0.19."""

    def rate(self, item: dict[str, Any]) -> Decimal:
        return Decimal(str(item["rate"])) / 100


class CursorIgnoringSource(ShopSource):
    """Lists everything whatever the cursor says."""

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        return super().documents(None)


class WrongAuthErrorSource(ShopSource):
    """Reports rejected credentials as a document error."""

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return super()._get(path, params)
        except ConnectionError_ as exc:
            raise DocumentError(f"the shop refused the request: {exc}") from None


class ImpatientSource(ShopSource):
    """Retries a 429 at once instead of waiting what Retry-After says."""

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            token = self.settings.api_token.get_secret_value()
            self._client = self.context.http(vendor="Shop", base_url=self.settings.base_url,
                                             headers={"Authorization": f"Bearer {token}"}, secrets=[token],
                                             retries=0)
        return self._client

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        for _ in range(5):
            try:
                return super()._get(path, params)
            except TransientError:
                time.sleep(0.01)
        return super()._get(path, params)


class PageSizeIgnoringSource(ShopSource):
    """Always asks for the vendor's largest page, whatever page_size says."""

    def _params(self, since: str | None, page: int) -> dict[str, Any]:
        return {**super()._params(since, page), "per_page": 100}


class RaisingOnBrokenSource(ShopSource):
    """Raises on a record it cannot map instead of yielding BrokenDocument."""

    def map(self, raw: dict[str, Any]) -> SourceItem:
        mapped = super().map(raw)
        if isinstance(mapped, BrokenDocument):
            raise DocumentError(mapped.reason)
        return mapped


class SkipDroppingSource(ShopSource):
    """Leaves records that must not be transferred out instead of yielding them with skip_reason."""

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        for item in super().documents(since):
            if not (isinstance(item, Document) and item.skip_reason):
                yield item


SOURCES: dict[str, type[ShopSource]] = {
    "catalogue-shop": ShopSource,
    "catalogue-duplicating-source": DuplicatingSource,
    "catalogue-unbalanced-source": UnbalancedSource,
    "catalogue-fraction-rate-source": FractionRateSource,
    "catalogue-cursor-ignoring-source": CursorIgnoringSource,
    "catalogue-wrong-auth-error-source": WrongAuthErrorSource,
    "catalogue-impatient-source": ImpatientSource,
    "catalogue-page-size-ignoring-source": PageSizeIgnoringSource,
    "catalogue-raising-on-broken-source": RaisingOnBrokenSource,
    "catalogue-skip-dropping-source": SkipDroppingSource,
}
