"""The Billbee source: orders with invoices from Billbee's REST API.

Reads ``GET /api/v1/orders`` incrementally by modification time (``modifiedAtMin``)
for the selected shops, and decides at transfer time, from the state each order
is in *now*, whether it is transferred. Orders that are not transferred are
still yielded, marked with ``Document.skip_reason``, so the ledger shows why.

Billbee's listing has no documented sort order, so a listing is read whole and
sorted before any of it is yielded. To keep that bounded, a listing of more than
``window_orders`` orders is read in windows of modification time
(``modifiedAtMin``/``modifiedAtMax``), each read whole and sorted: a window whose
first page reports too many orders is narrowed, a sparse one widened (see
``_windows``). Memory then depends on the busiest window, not on the run.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from array import array
from bisect import bisect_left
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from ledgerlink import (
    BasicAuth,
    BrokenDocument,
    ConnectorContext,
    Customer,
    Document,
    HeaderToken,
    HttpClient,
    Line,
    NotSupported,
    PageNumber,
    RateLimit,
    Settings,
    Source,
    SourceItem,
    TransientError,
    VendorRejected,
    key_id,
)
from pydantic import Field, SecretStr, field_validator

from .mapping import (
    VOID_STATES,
    MappingError,
    MappingOptions,
    ShippingTax,
    api_customer,
    cancels,
    invoice_number,
    map_order,
    normalise_state_name,
    order_id,
    parse_datetime,
    shipping_fees,
    shop_ids,
    shop_name,
    state_id,
    state_name,
)

DEFAULT_BASE_URL = "https://api.billbee.io/api/v1"
PER_KEY = 50.0  # calls per second per API key (all users)
PER_USER = 10.0  # per API key + Billbee user
PER_ENDPOINT = 2.0  # per endpoint, API key + user
AUTH_HINT = (
    "check `api_key` (the X-Billbee-Api-Key you got from Billbee support), `username` "
    "(your Billbee login) and `api_password` (the API password from Settings > API in "
    "Billbee, not the login password; the API module must be switched on)"
)
MIN_WINDOW = timedelta(seconds=1)  # Billbee's query times are whole seconds
MAX_WINDOW = timedelta(days=100 * 366)


class BillbeeSettings(Settings):
    """Settings of a Billbee connection (see the plugin README for each one).

    Billbee needs three credentials on every call (a developer key, a user and that
    user's API password), so there is no single ``api_token`` here. Billbee's request
    limits are fixed by Billbee (``PER_KEY``, ``PER_USER``, ``PER_ENDPOINT``) and kept
    by the limiter, so they are not settings.
    """

    api_key: SecretStr = Field(description="developer API key (from Billbee support), sent as X-Billbee-Api-Key")
    username: str = Field(min_length=1, description="Billbee user (login e-mail), the HTTP Basic user")
    api_password: SecretStr = Field(description="the account's API password (Settings > API in Billbee, not the "
                                    "login password), the HTTP Basic password")
    base_url: str = Field(DEFAULT_BASE_URL, description=f"API base URL; default {DEFAULT_BASE_URL}")
    timeout: float | None = Field(None, gt=0, description="seconds to wait for one HTTP answer (default: not "
                                  "set, so the HTTP client's 30 s, or LEDGERLINK_HTTP_TIMEOUT when that is set)")
    shops: list[int] = Field(min_length=1, description="Billbee shop ids to transfer (GET /shopaccounts ids); "
                             "at least one")
    order_states: list[str] = Field(
        min_length=1, description="names of the states an order must be in at transfer time (ordered, "
        "confirmed, paid, shipped, closed, ...; see the README); at least one"
    )
    start_date: date = Field(description="orders with an order date (CreatedAt) before it are never transferred")
    timezone: str = Field("Europe/Berlin", description="IANA time zone of Billbee's offset-less dates and of "
                          "the dates sent in queries; default Europe/Berlin")
    shipping_tax: ShippingTax = Field("highest", description="VAT rate of shipping and adjustment lines: the "
                                      "highest goods rate, TaxRate1 (regular), TaxRate2 (reduced) or split by "
                                      "the goods' gross per rate (proportional); default highest")
    use_billbee_customer_numbers: bool = Field(False, description="give Billbee's Customer.Number to the matcher "
                                               "as the customer number (only when those are the target's "
                                               "numbers); default false")
    stated_shipping_vat: bool = Field(True, description="read Billbee's invoices (GET /orders/invoices) for the "
                                      "shipping VAT Billbee states (AdditionalFees ShipCost) and keep it on the "
                                      "shipping lines; an order whose split differs from shipping_tax is "
                                      "quarantined; default true")
    page_size: int = Field(250, ge=1, le=250, description="orders or customers per page, 1 to 250 (Billbee's "
                           "maximum); default 250")
    overlap_minutes: int = Field(10, ge=0, le=24 * 60, description="minutes before the stored cursor each run "
                                 "reads again, 0 to 1440; default 10")
    window_orders: int = Field(1000, ge=1, le=1_000_000, description="most orders read (and held) at once: a "
                               "listing of more is read in windows of modification time (order date for a "
                               "backfill), each sorted on its own; default 1000 (about 10 MB)")

    @field_validator("order_states")
    @classmethod
    def _states(cls, names: list[str]) -> list[str]:
        for name in names:
            state_id(name)  # ValueError naming the valid names
        return [normalise_state_name(name) for name in names]

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')") from None
        return value

    @field_validator("shops")
    @classmethod
    def _shops(cls, values: list[int]) -> list[int]:
        for value in values:
            if value <= 0:
                raise ValueError(f"shop id {value} is not a Billbee shop id")
        return values


def loads_decimal(response: httpx.Response, client: HttpClient) -> Any:
    """Parse a Billbee answer keeping every amount exact (floats become Decimal)."""
    try:
        return json.loads(response.text, parse_float=Decimal)
    except ValueError:
        return client.json(response)  # raises the clear error (HTML, empty, cut short)


def format_query_time(value: datetime, tz: ZoneInfo) -> str:
    """Billbee reads naive date-times; send them in the account's time zone."""
    return value.astimezone(tz).replace(tzinfo=None).isoformat(timespec="seconds")


def before_repeated_hour(moment: datetime, tz: ZoneInfo) -> datetime:
    """Where a ``modifiedAtMin`` query must start so that no later change is missed.

    Billbee's times are naive wall-clock times. In the hour that repeats when summer
    time ends, a later change can carry an earlier time (02:10 CET comes after 02:40
    CEST); a query starting in the first pass of that hour starts one hour earlier,
    so the second pass is read too (re-read orders are recognised by the ledger).
    """
    local = moment.astimezone(tz)
    first, second = local.replace(fold=0).utcoffset(), local.replace(fold=1).utcoffset()
    if local.fold == 0 and first is not None and second is not None and first > second:
        return moment - (first - second)
    return moment


class BillbeeSource(Source):
    """Billbee orders with invoices, for accounting targets."""

    Settings = BillbeeSettings
    description = "Billbee: webshop and marketplace orders (invoices), customers"
    supports_write_customer_number = True
    sandbox = "ledgerlink_billbee.sandbox:BillbeeSandbox"

    def __init__(self, settings: Any, context: ConnectorContext) -> None:
        if not isinstance(settings, BillbeeSettings):
            settings = BillbeeSettings.model_validate(settings)
        super().__init__(settings, context)
        self.settings: BillbeeSettings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.options = MappingOptions(
            tz=self.tz,
            shipping_tax=settings.shipping_tax,
            customer_numbers=settings.use_billbee_customer_numbers,
        )
        self.state_ids = {state_id(name) for name in settings.order_states}
        self.shop_set = set(settings.shops)
        api_key = settings.api_key.get_secret_value()
        self._limit_key = f"billbee:{key_id(api_key, settings.username)}"
        self._key_limit = f"billbee:{key_id(api_key)}"
        self._client: HttpClient | None = None

    # -- HTTP ----------------------------------------------------------------
    @property
    def client(self) -> HttpClient:
        if self._client is None:
            s = self.settings
            api_key = s.api_key.get_secret_value()
            password = s.api_password.get_secret_value()
            self._client = self.context.http(
                vendor="Billbee",
                base_url=s.base_url.rstrip("/") + "/",
                auth=[HeaderToken("X-Billbee-Api-Key", api_key), BasicAuth(s.username, password)],
                rate_limits=[RateLimit(self._key_limit, PER_KEY), RateLimit(self._limit_key, PER_USER)],
                auth_hint=AUTH_HINT,
                **({} if s.timeout is None else {"timeout": s.timeout}),
            )
        return self._client

    def _endpoint_limit(self, endpoint: str) -> list[RateLimit]:
        return [RateLimit(f"{self._limit_key}:{endpoint}", PER_ENDPOINT)]

    def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: Any = None,
        json_body: Any = None,
        ok: Iterable[int] = (),
    ) -> tuple[int, Any]:
        """One request; the parsed envelope, with ``ErrorCode`` checked."""
        response = self.client.request(
            method, path, params=params, json=json_body,
            extra_limits=self._endpoint_limit(endpoint), ok=ok,
        )
        if response.status_code in set(ok):
            return response.status_code, None
        return response.status_code, self._envelope(response, endpoint)

    def _envelope(self, response: httpx.Response, endpoint: str) -> dict[str, Any]:
        body = loads_decimal(response, self.client)
        if not isinstance(body, dict):
            raise TransientError(f"Billbee answered {endpoint} with something other than a JSON object")
        code = body.get("ErrorCode")
        if code not in (0, None):
            message = body.get("ErrorMessage") or body.get("ErrorDescription") or "no message"
            text = f"Billbee answered {endpoint} with error code {code}: {message}"
            if response.request.method == "GET":
                raise TransientError(text)
            raise VendorRejected(text, status_code=response.status_code)
        return body

    def _listing(self, endpoint: str) -> dict[str, Any]:
        """How every page of a Billbee listing is read: ``page``/``pageSize`` up to
        ``Paging.TotalPages``, the envelope checked, the endpoint's own limit kept."""
        return {
            "style": PageNumber(size_param="pageSize", size=self.settings.page_size, items="Data",
                                total_pages="Paging.TotalPages"),
            "parse": lambda response: self._envelope(response, endpoint),
            "extra_limits": self._endpoint_limit(endpoint),
        }

    # -- Source API ------------------------------------------------------------
    def check(self) -> str:
        _, body = self._call("GET", "shopaccounts", "GET /shopaccounts", params={"page": 1, "pageSize": 250})
        shops = [s for s in body.get("Data") or [] if isinstance(s, dict)]
        known = {s.get("Id") for s in shops}
        names = ", ".join(f"{s.get('Name') or '?'} ({s.get('Id')})" for s in shops) or "none"
        line = f"Billbee user {self.settings.username}: {len(shops)} shop connection(s): {names}"
        missing = sorted(self.shop_set - known)
        if missing:
            line += f"; selected shop id(s) not among them: {', '.join(map(str, missing))}"
        return line

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        run_start = datetime.now(self.tz)
        overlap = timedelta(minutes=self.settings.overlap_minutes)
        if since:
            start = parse_datetime(since, self.tz, "cursor")
            assert start is not None
        else:
            start = datetime.combine(self.settings.start_date, time.min, self.tz)
        start = before_repeated_hour(start - max(overlap, timedelta(minutes=1)), self.tz)
        yield from self._windows("modifiedAtMin", "modifiedAtMax", start, run_start, cursor_cap=run_start)

    def documents_between(self, start: date, end: date) -> Iterator[SourceItem]:
        # Unreadable orders come as BrokenDocument here too; the runner records them
        # like those of documents() (the base class still promises Document only).
        def dated(order: Any) -> bool:
            created = self._safe_time(order, "CreatedAt")
            return created is None or start <= created.date() <= end

        yield from self._windows("minOrderDate", "maxOrderDate", datetime.combine(start, time.min, self.tz),
                                 datetime.combine(end, time(23, 59, 59), self.tz), cursor_cap=None, keep=dated)

    def document(self, source_ref: str) -> Document | None:
        if not source_ref.isdigit():
            return None
        status, body = self._call("GET", f"orders/{source_ref}", "GET /orders/{id}", ok=[404])
        if status == 404 or body is None or not isinstance(body.get("Data"), dict):
            return None
        # An unreadable order comes back as a BrokenDocument (the runner records it as
        # failed or quarantined), not as the base class's DocumentError.
        order = body["Data"]
        return self._to_document(order, cursor_cap=None, facts=self._facts([order]))  # type: ignore[return-value]

    def customers(self) -> Iterator[Customer]:
        # A customer moved to a later page while we paged comes once.
        for item in self.client.paginate("customers", dedupe=_listed_id, **self._listing("GET /customers")):
            try:
                yield api_customer(item if isinstance(item, dict) else {}, self.options)
            except (MappingError, ValueError) as exc:
                self.context.logger.warning("Billbee customer skipped: %s", exc)

    def write_customer_number(self, customer: Customer, number: str) -> None:
        if not customer.source_id.isdigit():
            raise NotSupported(
                f"customer {customer.display_name!r} has no Billbee customer id; nothing to store the number on"
            )
        text = number.strip()
        if not text.isdigit() or int(text) > 2**31 - 1:
            raise NotSupported(
                f"Billbee stores customer numbers as whole numbers; {number!r} cannot be stored on Billbee customer {customer.source_id}"
            )
        path = f"customers/{customer.source_id}"
        _, body = self._call("GET", path, "GET /customers/{id}")
        data = body.get("Data")
        if not isinstance(data, dict):
            raise VendorRejected(f"Billbee has no customer {customer.source_id}")
        if data.get("Number") == int(text):
            return
        data["Number"] = int(text)
        self._call("PUT", path, "PUT /customers/{id}", json_body=_plain(data))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- internals -------------------------------------------------------------
    def _windows(self, low_param: str, high_param: str, start: datetime, end: datetime, *,
                 cursor_cap: datetime | None, keep: Any = None) -> Iterator[SourceItem]:
        """The orders whose ``low_param``/``high_param`` time lies after ``start``, window by
        window, each window read whole, sorted by modification time and yielded.

        ``cursor_cap`` set (``documents``): the listing is by modification time, the last
        window has no upper bound (it takes orders modified while the run reads too), and
        every cursor is at most ``cursor_cap``. Else (backfill): it ends at ``end``.

        The first window is the whole listing. When its first page reports more than
        ``window_orders`` orders it is not read on: the window is narrowed (at least
        halved, to about three quarters of ``window_orders`` by the reported count) and
        asked again; a window that held far fewer is followed by a wider one. Windows are
        whole seconds of Billbee's naive time (``low`` exclusive, ``high`` inclusive for
        ``modifiedAt``; both inclusive for the order date), so together they cover the
        range; an order a later window lists again (a boundary both include, or an order
        modified during the run) is not yielded twice (``_Yielded``). When it is listed
        again because it changed after it was yielded, no later cursor of this run passes
        its new modification time, so the next run reads the change."""
        limit = self.settings.window_orders
        aim = max(1, limit * 3 // 4)
        open_end = cursor_cap is not None
        shops = sorted(self.shop_set)
        lo = _naive(start, self.tz).replace(microsecond=0)
        stop = _naive(end, self.tz)
        width: timedelta | None = None  # None: to the end (the first window)
        yielded = _Yielded()
        cap = cursor_cap
        while True:
            hi = None if width is None or lo + width >= stop else lo + width
            params: dict[str, Any] = {low_param: _query_time(lo)}
            if hi is not None:
                params[high_param] = _query_time(hi)
            elif not open_end:
                params[high_param] = _query_time(stop)
            params["shopId"] = shops
            span = (hi if hi is not None else max(stop, lo + MIN_WINDOW)) - lo
            listed = self._list_orders(params, cursor_cap, limit=limit if span > MIN_WINDOW else None)
            if isinstance(listed, int):  # too many: narrow it down and ask again
                width = _seconds(min(span / 2, span * aim / listed))
                continue
            listed_count = len(listed)
            cap = yield from self._window(listed, lo, yielded, cap, keep)
            listed = []
            if hi is None:
                return
            if width is not None and listed_count < aim:
                width = _seconds(min(MAX_WINDOW, width * min(4.0, aim / max(listed_count, 1))))
            lo = hi

    def _window(self, listed: list[Any], lo: datetime, yielded: _Yielded, cap: datetime | None,
                keep: Any) -> Generator[SourceItem, None, datetime | None]:
        """One window's orders, sorted, those yielded before left out; returns the cursor
        cap for the windows after it. Each order is let go of once it is yielded."""
        ordered = self._sorted(listed)
        listed.clear()
        window: list[tuple[Any, datetime | None]] = []
        for order in ordered:
            key = self._dedupe_key(order)
            if key in yielded:
                modified = self._modified_key(order)[0]
                if cap is not None and _naive(modified, self.tz) > lo:
                    cap = min(cap, modified)  # changed since it was yielded: the next run reads it
                continue
            if keep is None or keep(order):
                window.append((order, cap))
        ordered.clear()
        yielded.add(self._dedupe_key(order) for order, _ in window)
        facts = self._facts([order for order, _ in window])
        for index in range(len(window)):
            order, order_cap = window[index]
            window[index] = (None, None)
            yield self._to_document(order, cursor_cap=order_cap, facts=facts)
        return cap

    def _list_orders(self, params: dict[str, Any], run_start: datetime | None, *,
                     limit: int | None = None) -> list[dict[str, Any]] | int:
        """Every order of the listing, once; re-lists when orders moved while paging.
        With ``limit``: when the first page reports more orders than that, their number
        (and nothing more is read)."""
        by_id: dict[str, Any] = {}
        for attempt in range(3):
            moved = False
            first_total: int | None = None
            for page in self.client.pages("orders", params=params, **self._listing("GET /orders")):
                paging = page.body.get("Paging")
                total = paging.get("TotalRows") if isinstance(paging, dict) else None
                if first_total is None:
                    first_total = total
                    if (attempt == 0 and limit is not None and isinstance(total, int)
                            and not isinstance(total, bool) and total > limit):
                        return total
                elif total != first_total:
                    moved = True
                for order in page.items:
                    key = self._dedupe_key(order)
                    previous = by_id.get(key)
                    if previous is None or self._modified_key(order) >= self._modified_key(previous):
                        by_id[key] = order
                    modified = self._safe_time(order, "LastModifiedAt")
                    if run_start is not None and modified is not None and modified > run_start:
                        moved = True
            # An order changed while we paged may have shifted the pages under us:
            # list once more (duplicates are merged above).
            if not moved:
                break
        return list(by_id.values())

    @staticmethod
    def _dedupe_key(order: Any) -> str:
        try:
            return order_id(order)
        except MappingError:
            return "raw:" + hashlib.sha256(json.dumps(order, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _safe_time(self, order: Any, field: str) -> datetime | None:
        if not isinstance(order, dict):
            return None
        try:
            return parse_datetime(order.get(field), self.tz, field)
        except MappingError:
            return None

    def _modified_key(self, order: Any) -> tuple[datetime, int]:
        modified = self._safe_time(order, "LastModifiedAt") or self._safe_time(order, "CreatedAt")
        oid = order.get("BillBeeOrderId") if isinstance(order, dict) else None
        return (
            modified or datetime(1970, 1, 1, tzinfo=self.tz),
            oid if isinstance(oid, int) and not isinstance(oid, bool) else 0,
        )

    def _sorted(self, orders: list[Any]) -> list[Any]:
        return sorted(orders, key=self._modified_key)

    # -- what an order needs besides itself ------------------------------------------
    def _facts(self, orders: list[Any]) -> _Facts:
        """For the orders of the selected shops: the invoice Billbee states for each
        (shipping VAT) and, for cancellation orders, the id of the order they cancel.
        Read whatever state the order is in now, so that an order's content does not
        depend on its state (a transferred order that moves on is compared as it was)."""
        facts = _Facts()
        wanted = [o for o in orders if isinstance(o, dict) and self._relevant(o)]
        for order in wanted:
            external = cancels(order)
            if external is not None:
                original = self._find_original(order, external, orders)
                if original is not None:
                    facts.originals[order_id(order)] = original
        if self.settings.stated_shipping_vat:
            dated = [(o, self._safe_time(o, "InvoiceDate")) for o in wanted if self._invoiced(o)]
            # Dates a Document would refuse (0001-01-01, say) are left to the mapping to report.
            days = sorted({d.date() for _, d in dated if d is not None and 1990 <= d.year <= 2100})
            if days:
                ids = {order_id(o) for o, _ in dated}
                # Runs of days a few apart are read together (their ranges would overlap); an
                # old order modified now does not make one range span the years between.
                first = last = days[0]
                for day in [*days[1:], None]:
                    if day is not None and day - last <= timedelta(days=3):
                        last = day
                        continue
                    facts.invoices.update(self._invoices(first, last, ids))
                    if day is not None:
                        first = last = day
        return facts

    def _relevant(self, order: dict[str, Any]) -> bool:
        """The order is of a selected shop and not before the start date (whatever its state)."""
        try:
            order_id(order)
        except MappingError:
            return False
        ids = shop_ids(order)
        if ids and not ids & self.shop_set:
            return False
        created = self._safe_time(order, "CreatedAt")
        return created is None or created.date() >= self.settings.start_date

    @staticmethod
    def _invoiced(order: dict[str, Any]) -> bool:
        try:
            return invoice_number(order) is not None
        except MappingError:
            return False

    def _find_original(self, order: dict[str, Any], external: str, listed: list[Any]) -> str | None:
        """The BillBeeOrderId of the order a cancellation order cancels. ``IsCancelationFor``
        holds the cancelled order's external id ("Order Id (externalid)"): matched against
        ``Id`` and ``OrderNumber`` of the orders listed in this run (same shop), else asked
        of Billbee with ``GET /orders/findbyextref/{extRef}``."""
        own = order_id(order)
        shops = shop_ids(order)

        def matches(candidate: Any) -> bool:
            if not isinstance(candidate, dict) or candidate.get("BillBeeOrderId") == order.get("BillBeeOrderId"):
                return False
            try:
                order_id(candidate)
            except MappingError:
                return False
            if cancels(candidate) is not None:
                return False  # another cancellation order, not the original
            other = shop_ids(candidate)
            if shops and other and not shops & other:
                return False
            return external in (str(candidate.get("Id") or ""), str(candidate.get("OrderNumber") or ""))

        for candidate in listed:
            if matches(candidate):
                return order_id(candidate)
        status, body = self._call("GET", f"orders/findbyextref/{quote(external, safe='')}",
                                  "GET /orders/findbyextref/{extRef}", ok=[404])
        found = body.get("Data") if status != 404 and isinstance(body, dict) else None
        if matches(found):
            return order_id(found)
        self.context.logger.warning("Billbee order %s cancels %r, which Billbee does not find", own, external)
        return None

    def _invoices(self, first: date, last: date, ids: set[str]) -> dict[str, dict[str, Any]]:
        """Billbee's invoices (``GET /orders/invoices``) dated from ``first`` to ``last``
        of the selected shops, by order id, for the orders ``ids``. Billbee throttles this
        call to once a minute per page and start date; a 429 is waited out."""
        # A day more on each side: an invoice at 23:59:59.999 is after "23:59:59", and
        # whether an order's invoice is found must not depend on which other orders a
        # run lists (its content would change between runs). Others are filtered by id.
        params = {
            "minInvoiceDate": format_query_time(datetime.combine(first - timedelta(days=1), time.min, self.tz), self.tz),
            "maxInvoiceDate": format_query_time(datetime.combine(last + timedelta(days=2), time.min, self.tz), self.tz),
            "shopId": sorted(self.shop_set),
        }
        found: dict[str, dict[str, Any]] = {}
        for invoice in self.client.paginate("orders/invoices", params=params, **self._listing("GET /orders/invoices")):
            ref = invoice.get("BillbeeId") if isinstance(invoice, dict) else None
            if isinstance(ref, int) and not isinstance(ref, bool) and str(ref) in ids:
                found[str(ref)] = invoice
        return found

    def skip_reason(self, order: dict[str, Any]) -> str | None:
        """Why an order is not transferred now, or None."""
        ids = shop_ids(order)
        if ids and not ids & self.shop_set:
            return f"shop {shop_name(order) or '?'} ({', '.join(map(str, sorted(ids)))}) not selected"
        created = self._safe_time(order, "CreatedAt")
        if created is not None and created.date() < self.settings.start_date:
            return f"order date {created.date().isoformat()} is before the start date {self.settings.start_date.isoformat()}"
        state = order.get("State")
        if state not in self.state_ids:
            return f"order state {state_name(state)} not selected"
        try:
            number = invoice_number(order)
        except MappingError:
            return None  # the mapping reports the broken number
        if number is None:
            return "no invoice number"
        return None

    def _to_document(self, order: Any, *, cursor_cap: datetime | None, facts: _Facts | None = None
                     ) -> Document | BrokenDocument:
        cursor = None
        if cursor_cap is not None:
            modified = self._modified_key(order)[0]
            cursor = min(modified, cursor_cap).isoformat()
        try:
            ref = order_id(order)
        except MappingError as exc:
            return BrokenDocument(source_ref=self._dedupe_key(order), reason=str(exc), cursor=cursor)
        reason = self.skip_reason(order)
        facts = facts or _Facts()
        try:
            invoice = facts.invoices.get(ref)
            fees = shipping_fees(invoice) if invoice is not None else None
            document = map_order(order, self.options, fees=fees, reverses=facts.originals.get(ref))
        except MappingError as exc:
            if reason is None:
                number = None
                try:
                    number = invoice_number(order)
                except MappingError:
                    pass
                return BrokenDocument(
                    source_ref=ref, reason=str(exc), quarantine=exc.quarantine, number=number, cursor=cursor
                )
            # Not transferred anyway: record the skip, not the mapping problem.
            document = Document(
                source_ref=ref,
                customer=Customer(source_id=f"order:{ref}"),
                lines=[Line(description="(not mapped: order skipped)", total=Decimal(0), tax_rate=Decimal(0))],
                source_status=state_name(order.get("State")),
                extra={"billbee_order_id": int(ref), "mapping_problem": str(exc)},
            )
        update: dict[str, Any] = {}
        if order.get("State") in VOID_STATES:
            update["cancelled"] = True  # before transfer: skipped; after: "cancelled after transfer"
        if reason is not None:
            update["skip_reason"] = reason
        if cursor is not None:
            update["cursor"] = cursor
        return document.model_copy(update=update) if update else document


@dataclass
class _Facts:
    """What the mapping of an order needs from other calls: Billbee's invoice of the
    order (by order id) and, for cancellation orders, the cancelled order's id."""

    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    originals: dict[str, str] = field(default_factory=dict)


class _Yielded:
    """The orders a listing in windows has yielded, so that a later window does not yield
    one again: BillBeeOrderIds in sorted int64 arrays (8 bytes an order: 0.8 MB for a first
    run over 100,000 orders), merged as they grow (two of similar length become one, so
    there are about log2(windows) of them), and the keys of unreadable orders in a set."""

    def __init__(self) -> None:
        self._runs: list[array[int]] = []
        self._other: set[str] = set()
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __contains__(self, key: str) -> bool:
        number = _int64(key)
        if number is None:
            return key in self._other
        for run in self._runs:
            at = bisect_left(run, number)
            if at < len(run) and run[at] == number:
                return True
        return False

    def add(self, keys: Iterable[str]) -> None:
        numbers: list[int] = []
        for key in keys:
            self.count += 1
            number = _int64(key)
            if number is None:
                self._other.add(key)
            else:
                numbers.append(number)
        if not numbers:
            return
        self._runs.append(array("q", sorted(numbers)))
        while len(self._runs) >= 2 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            self._runs[-1] = array("q", heapq.merge(self._runs[-1], last))


def _int64(key: str) -> int | None:
    if not key.isdigit():
        return None
    number = int(key)
    return number if number < 2**63 else None


def _naive(moment: datetime, tz: ZoneInfo) -> datetime:
    """A moment as Billbee's naive wall-clock time in ``tz``."""
    return moment.astimezone(tz).replace(tzinfo=None)


def _query_time(naive: datetime) -> str:
    return naive.isoformat(timespec="seconds")


def _seconds(width: timedelta) -> timedelta:
    """A window width in whole seconds, at least one."""
    return max(MIN_WINDOW, timedelta(seconds=int(width.total_seconds())))


def _listed_id(item: Any) -> Any:
    return item.get("Id") if isinstance(item, dict) else None


def _plain(value: Any) -> Any:
    """Decimals back to JSON numbers for a request body; nulls left out (the same
    as null for Billbee's model binding, and valid against its description)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
