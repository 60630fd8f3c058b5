"""A Billbee API emulator: orders, customers and shop connections.

Serves what the connector reads, the way the real API does: the
``Paging / ErrorMessage / ErrorCode / ErrorDescription / Data`` envelope, pages
starting at 1 with ``pageSize`` up to 250, the order filters (``minOrderDate``,
``maxOrderDate``, ``modifiedAtMin`` exclusive, ``modifiedAtMax`` inclusive,
``shopId``, ``orderStateId``, ``tag``, ``minimumBillBeeOrderId``), dates without
offset, amounts as stored (``3498.6000000`` stays as it is), the API key header
plus HTTP Basic, and Billbee's throttling (2 requests per second per endpoint,
10 per API key and user, 50 per API key; above them HTTP 429 with Retry-After).

Seed it with a captured ``GET /api/v1/orders`` answer (or a list of such answers,
or a plain list of orders); customers and shop connections are taken from the
orders. ``BillbeeSandbox.demo_seed()`` is the demo data set.
"""

from __future__ import annotations

import base64
import json
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ledgerlink import Faults, OpenAPIValidator, Sandbox
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

SPEC_PATH = Path(__file__).parent / "spec" / "billbee-swagger2.yaml"
DEMO_API_KEY = "sandbox-billbee-api-key"
DEMO_USERNAME = "demo@ledgerlink.example"
DEMO_API_PASSWORD = "sandbox-billbee-api-password"
DEMO_SHOP_ID = 100000000012001
OTHER_SHOP_ID = 100000000012002

STATE_NAMES = {
    1: "ordered", 2: "confirmed", 3: "paid", 4: "shipped", 5: "reclamation", 6: "deleted",
    7: "closed", 8: "canceled", 9: "archived", 10: "not used", 11: "demand note 1",
    12: "demand note 2", 13: "packed", 14: "offered", 15: "payment reminder", 16: "fulfilling",
}


@cache
def _validator() -> OpenAPIValidator:
    # The spec's paths already start with /api/v1, so no base path is stripped.
    return OpenAPIValidator(SPEC_PATH, base_path="")


# -- JSON with exact decimals ---------------------------------------------------
def dumps(value: Any) -> str:
    """JSON text in which Decimals are written as the numbers they are."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _decimals(value: Any) -> Any:
    """Floats from a parsed seed become Decimals (their shortest exact text)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, headers=headers,
                    media_type="application/json; charset=utf-8")


def envelope(data: Any, *, error: str | None = None, code: int = 0) -> dict[str, Any]:
    return {
        "ErrorMessage": error,
        "ErrorCode": code,
        "ErrorDescription": "NoError" if code == 0 else "InternalError",
        "Data": data,
    }


class _BadQuery(ValueError):
    pass


class BillbeeSandbox(Sandbox):
    """Billbee's REST API for orders and customers, in-process or on loopback."""

    name = "billbee"
    vendor = "Billbee"
    base_path = "/api/v1"
    openapi_file: ClassVar[str | Path | None] = SPEC_PATH
    auth_headers = ("authorization", "x-billbee-api-key")

    per_endpoint = 2
    per_user = 10
    per_key = 50

    def __init__(
        self,
        *,
        seed: Any = None,
        state_path: str | Path | None = None,
        faults: Faults | None = None,
        throttle: bool = True,
        api_key: str = DEMO_API_KEY,
        username: str = DEMO_USERNAME,
        api_password: str = DEMO_API_PASSWORD,
        timezone: str = "Europe/Berlin",
    ) -> None:
        self.throttle = throttle
        self.api_key = api_key
        self.username = username
        self.api_password = api_password
        self.tz = ZoneInfo(timezone)
        self._throttle_windows: dict[str, deque[float]] = {}
        # The spec is large; parse it once per process (see _validator).
        self.openapi_file = None  # type: ignore[misc]
        super().__init__(seed=seed, state_path=state_path, faults=faults)
        del self.openapi_file
        self.validator = _validator()

    # -- kit hooks -------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {"orders": {}, "customers": {}, "shops": {}, "invoices": {}}

    @classmethod
    def demo_seed(cls) -> Any:
        """The demo data: a ``GET /api/v1/orders`` answer with about 50 orders."""
        text = resources.files("ledgerlink_billbee").joinpath("data/demo_orders.json").read_text("utf-8")
        return json.loads(text, parse_float=Decimal)

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The demo connection to this sandbox served at ``server_url`` (the server
        root; ``base_url`` gets ``/api/v1`` appended): the demo shop, the states
        ``paid``, ``shipped`` and ``closed``, start date 2025-01-01."""
        settings = {
            "api_key": "${BILLBEE_API_KEY}",
            "username": self.username,
            "api_password": "${BILLBEE_API_PASSWORD}",
            "base_url": server_url.rstrip("/") + self.base_path,
            "shops": [DEMO_SHOP_ID],
            "order_states": ["paid", "shipped", "closed"],
            "start_date": "2025-01-01",
            "timezone": "Europe/Berlin",
        }
        return settings, {"BILLBEE_API_KEY": self.api_key, "BILLBEE_API_PASSWORD": self.api_password}

    def describe(self) -> str:
        orders = self.state["orders"].values()
        invoiced = sum(1 for o in orders if isinstance(o, dict) and o.get("InvoiceNumber"))
        return (
            f"Billbee sandbox holds {len(self.state['orders'])} orders ({invoiced} with an invoice number), "
            f"{len(self.state['customers'])} customers, {len(self.state['shops'])} shop connections"
        )

    def load_seed(self, data: Any) -> None:
        """Orders as Billbee sends them: a ``GET /orders`` answer (``{"Data": [...]}``),
        a list of such answers, a single order, or a list of orders. A dict may also
        carry ``"Invoices"``: ``InvoiceApiModel`` objects (``GET /orders/invoices``) whose
        ``AdditionalFees`` replace the ones the sandbox derives (see ``invoice``)."""
        data = _decimals(data)
        if isinstance(data, dict) and isinstance(data.get("Invoices"), list):
            for invoice in data["Invoices"]:
                if not isinstance(invoice, dict) or "BillbeeId" not in invoice:
                    raise ValueError("a Billbee seed invoice needs a BillbeeId (the order's id)")
                self.state.setdefault("invoices", {})[str(invoice["BillbeeId"])] = invoice
            data = {k: v for k, v in data.items() if k != "Invoices"}
            if not data:
                return
        for order in self._seed_orders(data):
            if not isinstance(order, dict) or "BillBeeOrderId" not in order:
                raise ValueError("a Billbee seed order needs a BillBeeOrderId")
            self._store_order(order)

    def _seed_orders(self, data: Any) -> Iterator[Any]:
        if isinstance(data, dict) and isinstance(data.get("Data"), list):
            yield from data["Data"]
        elif isinstance(data, dict) and isinstance(data.get("Data"), dict):
            yield data["Data"]
        elif isinstance(data, dict):
            yield data
        elif isinstance(data, list):
            for item in data:
                yield from self._seed_orders(item)
        else:
            raise ValueError("the Billbee seed is an orders answer, an order or a list of them")

    def _store_order(self, order: dict[str, Any]) -> None:
        self.state["orders"][str(order["BillBeeOrderId"])] = order
        customer = order.get("Customer")
        if isinstance(customer, dict) and customer.get("Id") is not None:
            self.state["customers"].setdefault(str(customer["Id"]), customer)
        seller = order.get("Seller") if isinstance(order.get("Seller"), dict) else {}
        shop_id = (seller or {}).get("BillbeeShopId") or order.get("ApiAccountId")
        if shop_id is not None:
            self.state["shops"].setdefault(str(shop_id), {
                "Id": shop_id,
                "Name": (seller or {}).get("BillbeeShopName") or order.get("ApiAccountName"),
                "AccountType": (seller or {}).get("Platform"),
                "LastSyncDate": None,
                "LastSyncState": 0,
            })

    def save(self) -> None:
        if not self.state_path:
            return
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        tmp.write_text(dumps(self.state), encoding="utf-8")
        tmp.replace(self.state_path)

    def error_response(self, status: int, message: str) -> Response:
        if status in (401, 403, 429, 404, 500, 503):
            # Framework-level answers of ASP.NET Web API carry only "Message".
            return _json({"Message": message}, status)
        return _json(envelope(None, error=message, code=1), status)

    # -- auth and throttling ---------------------------------------------------------
    def _check(self, request: Request, endpoint: str) -> Response | None:
        key = request.headers.get("x-billbee-api-key")
        if key != self.api_key:
            return self.error_response(401, "Invalid API key (X-Billbee-Api-Key)")
        user, password = _basic(request.headers.get("authorization"))
        if user is None:
            return self.error_response(401, "Authorization has been denied for this request.")
        if user.lower() != self.username.lower() or password != self.api_password:
            return self.error_response(401, "Invalid username or API password")
        if self.throttle:
            now = time.monotonic()
            for window_key, limit in (
                (f"{key}|{user}|{endpoint}", self.per_endpoint),
                (f"{key}|{user}", self.per_user),
                (key, self.per_key),
            ):
                window = self._throttle_windows.setdefault(window_key, deque())
                while window and now - window[0] >= 1.0:
                    window.popleft()
                if len(window) >= limit:
                    self.stats["throttled"] += 1
                    response = self.error_response(429, "Too many requests")
                    response.headers["Retry-After"] = f"{self.faults.retry_after:g}"
                    return response
            for window_key in (f"{key}|{user}|{endpoint}", f"{key}|{user}", key):
                self._throttle_windows[window_key].append(now)
        return None

    # -- query parsing -------------------------------------------------------------
    def _int(self, request: Request, name: str, default: int | None = None) -> int | None:
        value = request.query_params.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise _BadQuery(f"The value '{value}' is not valid for {name}.") from None

    @staticmethod
    def _list(request: Request, name: str) -> list[str]:
        """``name=1&name=2`` (the spec) and ``name[0]=1&name[1]=2`` (both SDKs)."""
        values = list(request.query_params.getlist(name))
        for key, value in request.query_params.multi_items():
            if key.startswith(name + "[") and key.endswith("]"):
                values.append(value)
        return values

    def _time(self, request: Request, name: str) -> datetime | None:
        value = request.query_params.get(name)
        if not value:
            return None
        parsed = self.parse_time(value)
        if parsed is None:
            raise _BadQuery(f"The value '{value}' is not valid for {name}.")
        return parsed

    def parse_time(self, value: Any) -> datetime | None:
        """A Billbee date-time as a naive datetime in the account's time zone."""
        if not isinstance(value, str) or not value.strip():
            return None
        return _parse_time(value, self.tz)

    @staticmethod
    def _parse_time_uncached(value: str, tz: ZoneInfo) -> datetime | None:
        text = value.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        head, dot, rest = text.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(tz).replace(tzinfo=None)
        return parsed

    def _paged(self, request: Request, items: list[Any], each: Any = None) -> Response:
        page = self._int(request, "page", 1) or 1
        size = self._int(request, "pageSize", 50) or 50
        if page < 1:
            raise _BadQuery("page must be 1 or greater.")
        if not 1 <= size <= 250:
            raise _BadQuery("pageSize must be between 1 and 250.")
        total = len(items)
        pages = (total + size - 1) // size
        body = {
            "Paging": {"Page": page, "TotalPages": pages, "TotalRows": total, "PageSize": size},
            **envelope([each(i) for i in items[(page - 1) * size: page * size]] if each
                       else items[(page - 1) * size: page * size]),
        }
        return _json(body)

    # -- invoices ------------------------------------------------------------------
    def set_shipping_fees(self, order_id: str | int, fees: list[dict[str, Any]]) -> None:
        """State the order's shipping fees (``AdditionalFees``, e.g. ``[{"Type": "ShipCost",
        "Gross": 4.90, "Net": 4.12, "VatAmount": 0.78, "VatRate": 19}]``) in its invoice."""
        self.state.setdefault("invoices", {})[str(order_id)] = {
            "BillbeeId": int(order_id), "AdditionalFees": _decimals(fees)}

    def invoice(self, order: dict[str, Any]) -> dict[str, Any]:
        """The ``InvoiceApiModel`` of an invoiced order. Its shipping fee, unless seeded
        (``Invoices`` / ``set_shipping_fees``), is modelled, not captured: ``ShippingCost``
        at the order's highest goods rate in VatMode 0, at 0 % in the other modes."""
        vat_mode = order.get("VatMode") or 0
        rates: dict[Any, Any] = {1: _number(order.get("TaxRate1")), 2: _number(order.get("TaxRate2"))}
        goods = [i for i in order.get("OrderItems") or [] if isinstance(i, dict) and not i.get("IsCoupon")]
        positions = []
        net_total = Decimal(0)
        for pos, item in enumerate(goods, start=1):
            gross = _number(item.get("TotalPrice"))
            vat = _number(item.get("TaxAmount"))
            rate = rates.get(item.get("TaxIndex")) or Decimal(0) if vat_mode == 0 else Decimal(0)
            qty = _number(item.get("Quantity")) or Decimal(1)
            net_total += gross - vat
            positions.append({
                "Position": pos, "Amount": qty, "NetValue": (gross - vat) / qty, "TotalNetValue": gross - vat,
                "GrossValue": gross / qty, "TotalGrossValue": gross, "VatRate": rate, "TotalVatAmount": vat,
                "RebatePercent": item.get("Discount") or Decimal(0), "Sku": item.get("InvoiceSKU"),
                "Title": (item.get("Product") or {}).get("Title") if isinstance(item.get("Product"), dict) else None,
                "BillbeeId": item.get("BillbeeId"),
            })
        shipping = _number(order.get("ShippingCost"))
        fees: list[dict[str, Any]] = []
        if shipping:
            item_rates = [rates.get(i.get("TaxIndex")) or Decimal(0) for i in goods]
            rate = max(item_rates, default=rates[1] or Decimal(0)) if vat_mode == 0 else Decimal(0)
            vat = (shipping * rate / (100 + rate)).quantize(Decimal("0.0001"))
            fees.append({"Type": "ShipCost", "Gross": shipping, "Net": shipping - vat, "VatAmount": vat,
                         "VatRate": rate})
        seeded = self.state.setdefault("invoices", {}).get(str(order["BillBeeOrderId"]))
        if seeded is not None and "AdditionalFees" in seeded:
            fees = seeded["AdditionalFees"]
        number = order.get("InvoiceNumber")
        address: dict[str, Any] = order["InvoiceAddress"] if isinstance(order.get("InvoiceAddress"), dict) else {}
        return {
            "BillbeeId": order["BillBeeOrderId"],
            "InvoiceNumber": f"{order.get('InvoiceNumberPrefix') or ''}{number}{order.get('InvoiceNumberPostfix') or ''}",
            "Type": "invoice",
            "LastName": address.get("LastName"), "FirstName": address.get("FirstName"),
            "Company": address.get("Company"), "Email": address.get("Email"),
            "InvoiceDate": order.get("InvoiceDate"),
            "TotalNet": net_total + sum((Decimal(str(f.get("Net") or 0)) for f in fees), Decimal(0)),
            "TotalGross": order.get("TotalCost"),
            "Currency": order.get("Currency"),
            "PaymentTypeId": order.get("PaymentMethod"),
            "OrderNumber": order.get("OrderNumber"),
            "ShopName": (order.get("Seller") or {}).get("BillbeeShopName") if isinstance(order.get("Seller"), dict) else None,
            "Positions": positions,
            "PayDate": order.get("PayedAt"),
            "VatMode": vat_mode,
            "ShippingCountry": (order.get("ShippingAddress") or {}).get("CountryISO2")
            if isinstance(order.get("ShippingAddress"), dict) else None,
            "AdditionalFees": fees,
            "MerchantVatId": order.get("MerchantVatId"),
            "CustomerVatId": order.get("CustomerVatId"),
        }

    async def _list_invoices(self, request: Request, body: Any) -> Response:
        """Invoiced orders by invoice date (``minInvoiceDate``/``maxInvoiceDate`` inclusive),
        ``shopId``, ``orderStateId``; ``Positions`` only with ``includePositions=true``."""
        low, high = self._time(request, "minInvoiceDate"), self._time(request, "maxInvoiceDate")
        try:
            shops = {int(v) for v in self._list(request, "shopId")}
            states = {int(v) for v in self._list(request, "orderStateId")}
        except ValueError:
            raise _BadQuery("shopId and orderStateId must be whole numbers.") from None
        positions = request.query_params.get("includePositions", "false").lower() == "true"
        selected = []
        for order in sorted(self.state["orders"].values(), key=lambda o: int(o["BillBeeOrderId"])):
            dated = self._order_time(order, "InvoiceDate")
            if not order.get("InvoiceNumber") or dated is None:
                continue
            if (low and dated < low) or (high and dated > high):
                continue
            if shops:
                seller = order.get("Seller") if isinstance(order.get("Seller"), dict) else {}
                if not {order.get("ApiAccountId"), (seller or {}).get("BillbeeShopId")} & shops:
                    continue
            if states and order.get("State") not in states:
                continue
            selected.append(order)

        def each(order: dict[str, Any]) -> dict[str, Any]:  # only the page's invoices are made
            invoice = self.invoice(order)
            if not positions:
                invoice["Positions"] = []
            return invoice

        return self._paged(request, selected, each)

    async def _find_by_ext_ref(self, request: Request, body: Any) -> Response:
        """The order whose ``OrderNumber`` (else ``Id``) is ``extRef``."""
        ref = request.path_params["extRef"]
        orders = sorted(self.state["orders"].values(), key=lambda o: int(o["BillBeeOrderId"]))
        for key in ("OrderNumber", "Id"):
            for order in orders:
                if str(order.get(key) or "") == ref:
                    return _json(envelope(order))
        return _json(envelope(None, error="Order not found", code=1), 404)

    # -- routes --------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        p = self.base_path
        return [
            Route(f"{p}/orders/invoices", self._handler("GET /orders/invoices", self._list_invoices), methods=["GET"]),
            Route(f"{p}/orders/findbyextref/{{extRef}}",
                  self._handler("GET /orders/findbyextref/{extRef}", self._find_by_ext_ref), methods=["GET"]),
            Route(f"{p}/orders", self._handler("GET /orders", self._list_orders), methods=["GET"]),
            Route(f"{p}/orders/{{id}}", self._handler("GET /orders/{id}", self._get_order), methods=["GET"]),
            Route(f"{p}/orders/{{id}}/orderstate", self._handler("PUT /orders/{id}/orderstate", self._set_state), methods=["PUT"]),
            Route(f"{p}/customers", self._handler("GET /customers", self._list_customers), methods=["GET"]),
            Route(f"{p}/customers/{{id}}", self._handler("GET /customers/{id}", self._get_customer), methods=["GET"]),
            Route(f"{p}/customers/{{id}}", self._handler("PUT /customers/{id}", self._put_customer), methods=["PUT"]),
            Route(f"{p}/shopaccounts", self._handler("GET /shopaccounts", self._shops), methods=["GET"]),
            Route(f"{p}/enums/orderstates", self._handler("GET /enums/orderstates", self._order_states), methods=["GET"]),
        ]

    def _handler(self, endpoint: str, func: Any) -> Any:
        async def handle(request: Request) -> Response:
            refused = self._check(request, endpoint)
            if refused is not None:
                return refused
            body = await self.body(request)
            problems = self.validate(request, body)
            # Billbee itself sends and accepts null for every optional field, which
            # its description does not mark as nullable: log those, refuse the rest.
            problems = [p for p in problems if "None is not of type" not in p]
            if problems and request.method != "GET":
                return self.error_response(400, "; ".join(problems))
            try:
                return await func(request, body)
            except _BadQuery as exc:
                return self.error_response(400, str(exc))
        return handle

    def _order_time(self, order: dict[str, Any], field: str) -> datetime | None:
        return self.parse_time(order.get(field))

    async def _list_orders(self, request: Request, body: Any) -> Response:
        min_date, max_date = self._time(request, "minOrderDate"), self._time(request, "maxOrderDate")
        mod_min, mod_max = self._time(request, "modifiedAtMin"), self._time(request, "modifiedAtMax")
        try:
            shops = {int(v) for v in self._list(request, "shopId")}
            states = {int(v) for v in self._list(request, "orderStateId")}
        except ValueError:
            raise _BadQuery("shopId and orderStateId must be whole numbers.") from None
        tags = {t.lower() for t in self._list(request, "tag")}
        exclude = request.query_params.get("excludeTags", "false").lower() == "true"
        min_id = self._int(request, "minimumBillBeeOrderId")
        selected = []
        for order in sorted(self.state["orders"].values(), key=lambda o: int(o["BillBeeOrderId"])):
            created = self._order_time(order, "CreatedAt")
            modified = self._order_time(order, "LastModifiedAt") or created
            if min_date and (created is None or created < min_date):
                continue
            if max_date and (created is None or created > max_date):
                continue
            if mod_min and (modified is None or modified <= mod_min):
                continue
            if mod_max and (modified is None or modified > mod_max):
                continue
            if shops:
                seller = order.get("Seller") if isinstance(order.get("Seller"), dict) else {}
                ids = {order.get("ApiAccountId"), (seller or {}).get("BillbeeShopId")}
                if not ids & shops:
                    continue
            if states and order.get("State") not in states:
                continue
            if tags:
                has = bool(tags & {str(t).lower() for t in order.get("Tags") or []})
                if has == exclude:
                    continue
            if min_id is not None and int(order["BillBeeOrderId"]) < min_id:
                continue
            selected.append(order)
        return self._paged(request, selected)

    async def _get_order(self, request: Request, body: Any) -> Response:
        order = self.state["orders"].get(request.path_params["id"])
        if order is None:
            return _json(envelope(None, error="Order not found", code=1), 404)
        return _json(envelope(order))

    async def _set_state(self, request: Request, body: Any) -> Response:
        order = self.state["orders"].get(request.path_params["id"])
        if order is None:
            return _json(envelope(None, error="Order not found", code=1), 404)
        new_state = body.get("NewStateId") if isinstance(body, dict) else None
        if new_state not in STATE_NAMES:
            return self.error_response(400, "NewStateId is not a known order state")
        order["State"] = new_state
        order["LastModifiedAt"] = self.now()
        return _json(envelope(None))

    def now(self) -> str:
        """The current time as Billbee writes it: naive, in the account's zone, milliseconds."""
        return datetime.now(self.tz).replace(tzinfo=None).isoformat(timespec="milliseconds")

    async def _list_customers(self, request: Request, body: Any) -> Response:
        items = sorted(self.state["customers"].values(), key=lambda c: int(c["Id"]))
        return self._paged(request, items)

    async def _get_customer(self, request: Request, body: Any) -> Response:
        customer = self.state["customers"].get(request.path_params["id"])
        if customer is None:
            return _json(envelope(None, error="Customer not found", code=1), 404)
        return _json(envelope(customer))

    async def _put_customer(self, request: Request, body: Any) -> Response:
        customer = self.state["customers"].get(request.path_params["id"])
        if customer is None:
            return _json(envelope(None, error="Customer not found", code=1), 404)
        if not isinstance(body, dict):
            return self.error_response(400, "a customer object is required")
        if customer.get("ArchivedAt"):
            return self.error_response(400, "The customer is archived and cannot be changed")
        updated = {**customer, **_decimals(body), "Id": customer["Id"]}
        self.state["customers"][request.path_params["id"]] = updated
        return _json(envelope(updated))

    async def _shops(self, request: Request, body: Any) -> Response:
        return self._paged(request, list(self.state["shops"].values()))

    async def _order_states(self, request: Request, body: Any) -> Response:
        return _json([{"Id": k, "Name": v} for k, v in STATE_NAMES.items()])


@lru_cache(maxsize=1 << 18)
def _parse_time(value: str, tz: ZoneInfo) -> datetime | None:
    """Parsed once per text (the listings filter every order by its dates on every page)."""
    return BillbeeSandbox._parse_time_uncached(value, tz)


def _number(value: Any) -> Decimal:
    """A seeded amount as a Decimal; 0 for what is not a number (the sandbox serves broken
    orders as seeded, and derives their invoice as best it can)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return Decimal(0)
    return Decimal(str(value))


def _basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password


__all__ = ["BillbeeSandbox", "DEMO_API_KEY", "DEMO_API_PASSWORD", "DEMO_SHOP_ID", "DEMO_USERNAME"]
