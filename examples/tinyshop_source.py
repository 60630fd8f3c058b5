"""A complete ledgerlink source connector in one file: TinyShop, its settings, its mapping,
and a tiny TinyShop API built on the sandbox kit. Run it: ``python examples/tinyshop_source.py``
prints what the source reads. Installed (entry point ``[project.entry-points.ledgerlink]
tinyshop = "tinyshop_source"``), ``ledgerlink run`` transfers it; core/tests/test_example_connector.py
does exactly that through the CLI into the fake target.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any, ClassVar

from ledgerlink import (
    BearerToken,
    BrokenDocument,
    ConnectorContext,
    Customer,
    Document,
    HttpClient,
    Line,
    PageNumber,
    RateLimit,
    Sandbox,
    Settings,
    Source,
    SourceItem,
    hookimpl,
    key_id,
    parse_decimal,
)
from pydantic import Field, SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

TOKEN = "tinyshop-demo-token"
ORDERS: list[dict[str, Any]] = [  # TinyShop's own shape: gross prices, VAT rate in percent, status words
    {"id": "A1", "invoice_no": "TS-1", "status": "paid", "date": "2026-02-01", "updated": "2026-02-01T10:00",
     "buyer": {"id": "u1", "email": "ada@example.org", "country": "DE"},
     "items": [{"name": "Mug", "qty": 2, "gross": "23.80", "vat": 19}], "total": "23.80"},
    {"id": "A2", "invoice_no": "TS-2", "status": "paid", "date": "2026-02-02", "updated": "2026-02-02T09:30",
     "buyer": {"id": "u2", "email": "bob@example.org", "country": "AT"},
     "items": [{"name": "Book", "qty": 1, "gross": "10.70", "vat": 7},
               {"name": "Shipping", "qty": 1, "gross": "4.90", "vat": 19}], "total": "15.60"},
    {"id": "A3", "invoice_no": None, "status": "pending", "date": "2026-02-03", "updated": "2026-02-03T12:00",
     "buyer": {"id": "u1", "email": "ada@example.org", "country": "DE"},
     "items": [{"name": "Mug", "qty": 1, "gross": "11.90", "vat": 19}], "total": "11.90"},
    {"id": "A4", "invoice_no": "TS-3", "status": "paid", "date": "2026-02-04", "updated": "2026-02-04T08:00",
     "buyer": {"id": "u3", "email": "cy@example.org", "country": "DE"},
     "items": [{"name": "Poster", "qty": 1, "gross": "12,50 EUR", "vat": 19}], "total": "12,50 EUR"},
]


class TinyShopSandbox(Sandbox):
    """``GET /api/orders?since=&page=&size=`` -> ``{"orders": [...], "pages": n}``, Bearer token."""

    name, vendor, base_path = "tinyshop", "TinyShop", "/api"

    def initial_state(self) -> dict[str, Any]:
        return {"orders": {order["id"]: copy.deepcopy(order) for order in ORDERS}}

    def routes(self) -> list[BaseRoute]:
        return [Route("/api/orders", self._orders)]

    async def _orders(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return self.error_response(401, "invalid token")
        query = request.query_params
        page, size, since = int(query.get("page", 1)), int(query.get("size", 10)), query.get("since", "")
        found = sorted((o for o in self.state["orders"].values() if o["updated"] >= since), key=lambda o: o["updated"])
        return JSONResponse({"orders": found[(page - 1) * size:page * size], "pages": -(-len(found) // size)})

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        return {"api_token": "${TINYSHOP_TOKEN}", "base_url": server_url + self.base_path}, {"TINYSHOP_TOKEN": TOKEN}


class TinyShopSettings(Settings):
    api_token: SecretStr = Field(description="TinyShop API token (Bearer)")
    base_url: str = Field("https://tinyshop.example/api", description="API base URL")
    page_size: int = Field(10, ge=1, le=100, description="orders per page")
    requests_per_second: float = Field(5, gt=0, description="TinyShop's request budget for the account")


def to_document(order: dict[str, Any]) -> SourceItem:
    """A TinyShop order as a Document: its own figures, skipped with a reason, or broken with one."""
    try:
        return Document(
            source_ref=order["id"], number=order["invoice_no"], invoice_date=date.fromisoformat(order["date"]),
            customer=Customer(source_id=order["buyer"]["id"], email=order["buyer"]["email"],
                              address={"country": order["buyer"]["country"]}),
            lines=[Line(description=i["name"], quantity=i["qty"], total=parse_decimal(i["gross"], f"{i['name']} gross"),
                        tax_rate=i["vat"], price_basis="gross") for i in order["items"]],
            stated_total=parse_decimal(order["total"], "total"), source_status=order["status"], cursor=order["updated"],
            skip_reason=None if order["status"] == "paid" else f"order status {order['status']} is not paid yet")
    except (KeyError, TypeError, ValueError) as exc:
        return BrokenDocument(str(order.get("id")), f"TinyShop order {order.get('id')}: {exc}",
                              cursor=order.get("updated"))


class TinyShopSource(Source):
    Settings: ClassVar[type[TinyShopSettings]] = TinyShopSettings
    description: ClassVar[str] = "TinyShop orders (the example connector)"
    sandbox: ClassVar[str] = "tinyshop_source:TinyShopSandbox"
    settings: TinyShopSettings

    _http: HttpClient | None = None

    def _client(self) -> HttpClient:
        if self._http is None:  # made on first use; the engine builds connectors freely
            token = self.settings.api_token.get_secret_value()
            self._http = self.context.http(
                vendor="TinyShop", base_url=self.settings.base_url + "/", auth=BearerToken(token),
                rate_limits=[RateLimit(f"tinyshop:{key_id(token)}", self.settings.requests_per_second)])
        return self._http

    def check(self) -> str:
        self._client().get("orders", params={"page": 1, "size": 1})
        return f"TinyShop at {self.settings.base_url}"

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        paging = PageNumber(items="orders", size_param="size", size=self.settings.page_size, total_pages="pages")
        for order in self._client().paginate("orders", paging, params={"since": since} if since else {}):
            yield to_document(order)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


@hookimpl
def ledgerlink_register_sources(register: Callable[..., None]) -> None:
    register("tinyshop", TinyShopSource)


if __name__ == "__main__":
    shop = TinyShopSandbox()
    context = ConnectorContext(connection="example", http_factory=HttpClient, transport=shop.transport())
    source = TinyShopSource(TinyShopSettings(api_token=TOKEN, base_url="http://tinyshop.sandbox/api"), context)
    print(source.check())
    for item in source.documents(None):
        print(f"{item.source_ref}: " + (f"broken: {item.reason}" if isinstance(item, BrokenDocument) else
                                        f"{item.number} gross {item.total_gross} skip: {item.skip_reason}"))
