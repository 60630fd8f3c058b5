"""A Shipmondo emulator (sales orders), built on ledgerlink's sandbox kit.

It serves the part of Shipmondo's public API v3 the source reads, under
``/api/public/v3``, the way the official Swagger 2.0 description (``spec/``, from
2020) and a recorded answer (``data/recorded_sales_order.json``) show it:

- ``GET /api/public/v3/sales_orders``: a JSON array of sales orders, newest id
  first (the real order is not documented; a client must not depend on it), with
  the headers ``X-Per-Page``, ``X-Current-Page``, ``X-Total-Count`` and
  ``X-Total-Pages`` (``ceil(count / per_page)``, so 0 when nothing matches). Query:

  - ``id`` (integer), ``order_id`` (exact), ``archived`` (``true``/``false``);
  - ``created_at_min``/``created_at_max``, ``updated_at_min``/``updated_at_max``,
    all inclusive and compared as instants: a full ISO 8601 timestamp with an offset
    (``2026-06-18T11:18:02.982+02:00``, ``Z`` too; one without offset is taken as
    Copenhagen time), or a date ``2026-06-18``, which is that day 00:00 in
    Europe/Copenhagen, **for the ``_max`` filters too**: the spec says
    "2018-06-29 will be transformed into ...06-29T00:00:00.000+02:00" for both, so
    ``created_at_max=2026-06-29`` leaves out what was created later that day. A
    ``+`` in an offset that was not URL-encoded arrives as a space and is refused;
  - ``page`` (default 1) and ``per_page`` (default 10, at most 25). A page past the
    end answers ``[]`` with the same headers.

  Stricter than the (unknown) real API, on purpose: ``per_page`` outside 1..25,
  ``page`` below 1, and a value that is not an integer, a boolean or a timestamp
  where the spec asks for one answer 422 ``{"error": "..."}`` (the real API may
  clamp or ignore them).
- ``GET /api/public/v3/sales_orders/{id}``: the order, or 404
  ``{"error": "Invalid or not found parameter(s)"}``.
- Any other path under ``/api/public/v3``: 501 for an operation the spec has and this
  sandbox does not emulate, 404 for one it does not have (both logged with their
  validation errors).

Every API call needs HTTP Basic auth with an API user and its API key from
``state["credentials"]`` (the demo pair ``DEMO_USER``/``DEMO_KEY`` is there from the
start); otherwise 401 ``{"error": "Invalid API User or API Key"}``. Errors always
look like ``{"error": "<text>"}`` (the spec's ``Response 401/404/422``). Every
request is checked against the spec: bodies, and (beyond the kit) the query
parameters' names and types; problems land in the request log's
``validation_errors`` and, apart from the 422s above, do not change the answer.

The kit adds ``/__sandbox__/requests|state|faults|reset|seed``, ``--state``
persistence and the in-process transport (``sandbox.transport()``). This sandbox adds:

- ``POST /__sandbox__/sales_orders/{id}`` with a JSON object: deep-merged into the
  order (objects merged key by key, lists and other values replaced), and
  ``updated_at`` set to now (Copenhagen, ``2026-06-18T11:18:02.982+02:00``, never
  earlier than 1 ms after the latest ``updated_at`` held) unless the object sets it;
  answers the order, 404 for an unknown id, 400 for a body that is not an object or
  changes ``id``. Handle an order, capture or refund its payment, cancel it::

      {"order_status": "sent", "fulfillment_status": "fulfilled",
       "payment_details": {"captured_amount": "125.0"}, "payment_status": "captured"}

- ``POST /__sandbox__/sales_orders`` with a JSON list of sales orders: added, or
  replacing those with the same id (the seed's checks); answers
  ``{"ok": true, "ids": [...]}``.

State: ``{"credentials": {api_user: api_key}, "sales_orders": {str(id): order}}``.

Seed (``--seed FILE``, ``POST /__sandbox__/seed``, ``ShipmondoSandbox(seed=...)``): a
JSON list of sales orders exactly as ``GET /sales_orders`` answers them, or an object
``{"credentials": {"<api user>": "<api key>"}, "sales_orders": [...]}``. Each order
needs an integer ``id`` (unique), ``created_at`` and ``updated_at`` timestamps with
offset; ``order_lines``/``order_fulfillments`` must be lists and ``payment_details``,
``bill_to``, ``ship_to`` objects where present, ``archived`` a boolean. Amounts are
not checked: a broken order is served as seeded. A bad seed raises a one-line
``ValueError`` naming what and where, and loads nothing.
``ShipmondoSandbox.demo_seed()`` is the demo data (``data/demo_seed.json``, written by
``scripts/make_demo_orders.py``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ledgerlink import Faults, OpenAPIValidator, Sandbox
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

SPEC_PATH = Path(__file__).parent / "spec" / "shipmondo-api-v3.yaml"
BASE_PATH = "/api/public/v3"
DEMO_USER = "5e1f0c2a-7b3d-4c8e-9a61-d0c0ffee0001"
DEMO_KEY = "b7a3e9d4-2f18-4a6c-8e05-5a4db00c0de1"
USER_ENV = "SHIPMONDO_API_USER"
KEY_ENV = "SHIPMONDO_API_KEY"
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
MAX_PER_PAGE = 25
DEFAULT_PER_PAGE = 10

UNAUTHORIZED = "Invalid API User or API Key"
NOT_FOUND = "Invalid or not found parameter(s)"
SEED_KEYS = ("credentials", "sales_orders")
TIME_FILTERS = {
    "created_at_min": ("created_at", "min"),
    "created_at_max": ("created_at", "max"),
    "updated_at_min": ("updated_at", "min"),
    "updated_at_max": ("updated_at", "max"),
}


# -- timestamps -------------------------------------------------------------------------
def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (no offset: Copenhagen time); None
    when it is not one. A date alone is not a timestamp here."""
    if not isinstance(value, str) or "T" not in value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=COPENHAGEN)


def parse_filter_time(value: str) -> datetime | None:
    """A filter value: a timestamp, or a date ``YYYY-MM-DD`` meaning that day 00:00 in
    Copenhagen (for ``_min`` and ``_max`` alike, as the spec says); None if neither."""
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return None
        return datetime(day.year, day.month, day.day, tzinfo=COPENHAGEN)
    return parse_timestamp(value)


def shipmondo_time(moment: datetime) -> str:
    """A moment the way Shipmondo writes it: Copenhagen time, milliseconds, offset."""
    return moment.astimezone(COPENHAGEN).isoformat(timespec="milliseconds")


# -- the spec, with query parameters checked too ----------------------------------------
class ShipmondoValidator(OpenAPIValidator):
    """The kit's validator plus the query parameters: names the operation does not
    declare, and values that are not of the declared type (integer, boolean,
    date-time, or a date, which the spec's descriptions allow)."""

    def validate(self, method: str, path: str, query: dict[str, Any], body: Any) -> list[str]:
        errors = super().validate(method, path, query, body)
        found = self.find(method, path)
        if found is None:
            return errors
        op, common = found
        declared = {
            p["name"]: p for p in (self._resolve(p) for p in common + op.get("parameters", []))
            if p.get("in") == "query"
        }
        for name, value in query.items():
            param = declared.get(name)
            if param is None:
                errors.append(f"query parameter {name!r} is not in the API description")
            elif param.get("type") == "integer" and not _is_int(value):
                errors.append(f"query parameter {name!r}: {value!r} is not an integer")
            elif param.get("type") == "boolean" and value not in ("true", "false"):
                errors.append(f"query parameter {name!r}: {value!r} is not a boolean")
            elif param.get("format") == "date-time" and parse_filter_time(value) is None:
                errors.append(f"query parameter {name!r}: {value!r} is not a date-time")
        return errors


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


@cache
def _validator() -> ShipmondoValidator:
    # The spec is large: parse it once per process.
    return ShipmondoValidator(SPEC_PATH, base_path=BASE_PATH)


class _BadQuery(ValueError):
    pass


# -- seed checks ---------------------------------------------------------------------
def check_orders(orders: Any, where: str = "the seed") -> list[dict[str, Any]]:
    """Sales orders as the API answers them, checked; a ValueError (one line) names
    what is wrong and where (``sales order 3`` counts from 1)."""
    if not isinstance(orders, list):
        kind = "an object" if isinstance(orders, dict) else "null" if orders is None else "not JSON" \
            if type(orders).__name__ == "_InvalidJSON" else type(orders).__name__
        raise ValueError(f"the sales orders in {where} must be a JSON list ({kind} given)")
    seen: dict[int, int] = {}
    for number, order in enumerate(orders, start=1):
        if not isinstance(order, dict):
            raise ValueError(f"sales order {number} in {where} is not a JSON object")
        label = f"sales order {number} in {where}"
        if order.get("order_id") is not None:
            label += f" (order_id {order['order_id']!r})"
        if "id" not in order or order["id"] is None:
            raise ValueError(f"{label} has no id")
        order_id = order["id"]
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise ValueError(f"{label} has id {order_id!r}, not an integer")
        if order_id in seen:
            raise ValueError(f"{label} repeats id {order_id} (sales order {seen[order_id]})")
        seen[order_id] = number
        for field in ("created_at", "updated_at"):
            if parse_timestamp(order.get(field)) is None:
                raise ValueError(f"{label} has no {field} timestamp with offset (got {order.get(field)!r})")
        for field in ("order_lines", "order_fulfillments"):
            if field in order and not isinstance(order[field], list):
                raise ValueError(f"{label}: {field} must be a list")
        for field in ("payment_details", "bill_to", "ship_to"):
            if order.get(field) is not None and not isinstance(order[field], dict):
                raise ValueError(f"{label}: {field} must be an object")
        if "archived" in order and not isinstance(order["archived"], bool):
            raise ValueError(f"{label}: archived must be true or false")
    return orders


def deep_merge(into: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``change`` merged into ``into`` (in place): objects key by key, anything else
    (lists included) replaced."""
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        user, colon, key = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return (user, key) if colon else None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


class ShipmondoSandbox(Sandbox):
    """Shipmondo's sales orders API, in-process or on loopback (``ledgerlink sandbox serve shipmondo``)."""

    name: ClassVar[str] = "shipmondo"
    vendor: ClassVar[str] = "Shipmondo"
    base_path: ClassVar[str] = BASE_PATH
    openapi_file: ClassVar[str | Path | None] = SPEC_PATH
    auth_headers: ClassVar[tuple[str, ...]] = ("authorization",)

    def __init__(
        self,
        *,
        seed: Any = None,
        demo: bool = False,
        state_path: str | Path | None = None,
        faults: Faults | None = None,
    ) -> None:
        """``demo=True`` without a ``seed``: start with ``demo_seed()``."""
        if seed is None and demo:
            seed = self.demo_seed()
        # The kit would parse the spec with its own validator class: use ours (see _validator).
        self.openapi_file = None  # type: ignore[misc]
        super().__init__(seed=seed, state_path=state_path, faults=faults)
        del self.openapi_file
        self.validator = _validator()

    # -- kit hooks ------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {"credentials": {DEMO_USER: DEMO_KEY}, "sales_orders": {}}

    def load_seed(self, data: Any) -> None:
        credentials: dict[str, str] = {}
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(SEED_KEYS))
            if unknown:
                raise ValueError(f"unknown keys in the Shipmondo seed: {unknown} (known: {list(SEED_KEYS)})")
            raw = data.get("credentials", {})
            if not isinstance(raw, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in raw.items()
            ):
                raise ValueError("the seed's credentials must be an object of API user to API key (non-empty strings)")
            credentials = raw
            orders = data.get("sales_orders", [])
        elif isinstance(data, list):
            orders = data
        else:
            raise ValueError(
                "the Shipmondo seed is a JSON list of sales orders or "
                '{"credentials": {...}, "sales_orders": [...]}'
            )
        checked = check_orders(orders)
        self.state["credentials"].update(credentials)
        for order in checked:
            self.state["sales_orders"][str(order["id"])] = copy.deepcopy(order)

    @classmethod
    def demo_seed(cls) -> Any:
        """About 40 sales orders of two shops ("Nordlys Webshop", "Nordlys Outlet") of
        one company; see ``scripts/make_demo_orders.py``."""
        text = resources.files("ledgerlink_shipmondo").joinpath("data/demo_seed.json").read_text("utf-8")
        return json.loads(text)

    def demo_connection(self, server_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``server_url`` is the server root; ``base_url`` gets ``/api/public/v3`` appended."""
        settings = {
            "api_user": "${" + USER_ENV + "}",
            "api_key": "${" + KEY_ENV + "}",
            "base_url": server_url.rstrip("/") + self.base_path,
        }
        return settings, {USER_ENV: DEMO_USER, KEY_ENV: DEMO_KEY}

    def describe(self) -> str:
        orders = [o for o in self.state["sales_orders"].values() if isinstance(o, dict)]
        counts: dict[str, int] = {}
        for order in orders:
            status = str(order.get("fulfillment_status"))
            counts[status] = counts.get(status, 0) + 1
        parts = [f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        cancelled = sum(1 for o in orders if o.get("order_status") == "cancelled")
        if cancelled:
            parts.append(f"{cancelled} cancelled")
        shops = sorted({str(o.get("source_name")) for o in orders if o.get("source_name")})
        text = f"Shipmondo sandbox holds {len(orders)} sales orders"
        if parts:
            text += f" ({', '.join(parts)})"
        if shops:
            text += f" from {len(shops)} shop{'s' if len(shops) != 1 else ''}: {', '.join(shops)}"
        return text

    def error_response(self, status: int, message: str) -> Response:
        return _json({"error": message}, status)

    # -- routes -----------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        base = self.base_path
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return [
            Route(base + "/sales_orders", self._api(self._list), methods=["GET"]),
            Route(base + "/sales_orders/{id}", self._api(self._get), methods=["GET"]),
            Route(base + "/{rest:path}", self._api(self._elsewhere), methods=methods),
            Route("/__sandbox__/sales_orders", self._control_add, methods=["POST"]),
            Route("/__sandbox__/sales_orders/{id}", self._control_update, methods=["POST"]),
        ]

    def _api(self, func: Any) -> Any:
        async def handle(request: Request) -> Response:
            if not self._authorized(request):
                return self.error_response(401, UNAUTHORIZED)
            body = await self.body(request)
            self.validate(request, body)
            try:
                response: Response = await func(request)
            except _BadQuery as exc:
                return self.error_response(422, str(exc))
            return response
        return handle

    def _authorized(self, request: Request) -> bool:
        pair = _basic(request.headers.get("authorization"))
        if pair is None:
            return False
        user, key = pair
        known = self.state["credentials"].get(user)
        return bool(user) and known is not None and known == key

    # -- the API ------------------------------------------------------------------------
    async def _list(self, request: Request) -> Response:
        query = request.query_params
        page = self._int(query.get("page"), "page", 1)
        per_page = self._int(query.get("per_page"), "per_page", DEFAULT_PER_PAGE)
        if page < 1:
            raise _BadQuery(f"page must be 1 or more, not {page}")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise _BadQuery(f"per_page must be between 1 and {MAX_PER_PAGE}, not {per_page}")
        wanted_id = query.get("id")
        wanted = self._int(wanted_id, "id", 0) if wanted_id not in (None, "") else None
        order_id = query.get("order_id")
        archived = query.get("archived")
        if archived not in (None, "", "true", "false"):
            raise _BadQuery(f"archived must be true or false, not {archived!r}")
        bounds: list[tuple[str, str, datetime]] = []
        for name, (field, side) in TIME_FILTERS.items():
            value = query.get(name)
            if value in (None, ""):
                continue
            moment = parse_filter_time(value)
            if moment is None:
                raise _BadQuery(f"{name} must be a date-time like 2026-06-18T11:18:02.982+02:00 or a date, "
                                f"not {value!r}")
            bounds.append((field, side, moment))

        selected = []
        for order in self.state["sales_orders"].values():
            if wanted is not None and order.get("id") != wanted:
                continue
            if order_id not in (None, "") and str(order.get("order_id")) != order_id:
                continue
            if archived in ("true", "false") and bool(order.get("archived")) != (archived == "true"):
                continue
            if not self._within(order, bounds):
                continue
            selected.append(order)
        selected.sort(key=lambda o: int(o["id"]), reverse=True)
        total = len(selected)
        chunk = selected[(page - 1) * per_page: page * per_page]
        headers = {
            "X-Per-Page": str(per_page),
            "X-Current-Page": str(page),
            "X-Total-Count": str(total),
            "X-Total-Pages": str(math.ceil(total / per_page)),
        }
        return _json(chunk, headers=headers)

    @staticmethod
    def _within(order: dict[str, Any], bounds: list[tuple[str, str, datetime]]) -> bool:
        for field, side, moment in bounds:
            stamp = parse_timestamp(order.get(field))
            if stamp is None:
                return False
            if (side == "min" and stamp < moment) or (side == "max" and stamp > moment):
                return False
        return True

    @staticmethod
    def _int(value: str | None, name: str, default: int) -> int:
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise _BadQuery(f"{name} must be an integer, not {value!r}") from None

    async def _get(self, request: Request) -> Response:
        order = self.state["sales_orders"].get(request.path_params["id"])
        if order is None:
            return self.error_response(404, NOT_FOUND)
        return _json(order)

    async def _elsewhere(self, request: Request) -> Response:
        assert self.validator is not None
        path = request.url.path
        if self.validator.find(request.method, path) is not None:
            tail = path[len(self.base_path):]
            return self.error_response(501, f"the Shipmondo sandbox does not emulate {request.method} {tail}")
        return self.error_response(404, NOT_FOUND)

    # -- sandbox control -------------------------------------------------------------------
    def now(self) -> str:
        """Now, as Shipmondo writes it, and never before 1 ms after the latest
        ``updated_at`` held (so an update always moves an order past every cursor)."""
        moment = datetime.now(COPENHAGEN)
        latest = [parse_timestamp(o.get("updated_at")) for o in self.state["sales_orders"].values()]
        known = [t for t in latest if t is not None]
        if known and max(known) >= moment:
            moment = max(known) + timedelta(milliseconds=1)
        return shipmondo_time(moment)

    async def _control_update(self, request: Request) -> Response:
        key = request.path_params["id"]
        order = self.state["sales_orders"].get(key)
        if order is None:
            return self.error_response(404, f"no sales order with id {key}")
        change = await self.body(request)
        if not isinstance(change, dict):
            return self.error_response(400, "send a JSON object to merge into the sales order")
        if "id" in change and change["id"] != order["id"]:
            return self.error_response(400, "the id of a sales order cannot change")
        updated = deep_merge(copy.deepcopy(order), change)
        if "updated_at" not in change:
            updated["updated_at"] = self.now()
        try:
            check_orders([updated], where=f"the update of sales order {key}")
        except ValueError as exc:
            return self.error_response(400, str(exc))
        self.state["sales_orders"][key] = updated
        self.save()
        return _json(updated)

    async def _control_add(self, request: Request) -> Response:
        orders = await self.body(request)
        try:
            checked = check_orders(orders, where="the request")
        except ValueError as exc:
            return self.error_response(400, str(exc))
        for order in checked:
            self.state["sales_orders"][str(order["id"])] = copy.deepcopy(order)
        self.save()
        return _json({"ok": True, "ids": [order["id"] for order in checked]})


__all__ = [
    "DEMO_KEY",
    "DEMO_USER",
    "KEY_ENV",
    "SPEC_PATH",
    "USER_ENV",
    "ShipmondoSandbox",
    "check_orders",
    "deep_merge",
    "parse_filter_time",
    "parse_timestamp",
    "shipmondo_time",
]
