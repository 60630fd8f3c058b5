"""The Shipmondo source: handled sales orders as ledgerlink documents.

Shipmondo API v3 (``https://app.shipmondo.com/api/public/v3``, the spec shipped in
``spec/``), HTTP Basic auth with the API user and API key:

- ``GET /sales_orders?updated_at_min=&updated_at_max=&page=&per_page=`` (at most 25
  per page; ``X-Total-Count`` and ``X-Total-Pages`` headers): the incremental read;
- ``GET /sales_orders?created_at_min=&created_at_max=``: backfill by date;
- ``GET /sales_orders/{id}``: backfill by id.

The order of a listing is not documented (the sandbox lists newest id first). So a
read takes a window of ``updated_at`` (from the cursor minus ``cursor_overlap_minutes``
to now), reads it whole, sorts it by ``updated_at`` and id, and yields it in that
order; each document's cursor is its order's ``updated_at``, which is safe to store
once it and everything before it are settled (``updated_at_min`` is inclusive: a
resumed read sees equal stamps again, and the runner skips what it has settled). A
window of more than 500 orders is split in halves by time, so memory stays bounded.
A listing whose ``X-Total-Count`` changes while it is paged (an order moved between
pages) is read again, up to three times, before anything of it is yielded.

HTTP goes through ``self.context.http(...)``: it retries 429 and 503 honouring
Retry-After, turns 401/403 into one clear line, spaces requests to
``requests_per_second`` and never logs the credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from ledgerlink import (
    BasicAuth,
    BrokenDocument,
    Document,
    DocumentError,
    PageNumber,
    QuarantineError,
    RateLimit,
    Settings,
    Source,
    SourceItem,
    TransientError,
    key_id,
)
from pydantic import Field, SecretStr, field_validator

from .mapping import COPENHAGEN, REFUND_SUFFIX, Options, Readiness, documents_from_order

DEFAULT_BASE_URL = "https://app.shipmondo.com/api/public/v3"
AUTH_HINT = ("create an API user and key in Shipmondo (Settings > API > Access) and put them in the connection's "
             "api_user and api_key")
MAX_PER_PAGE = 25
LISTING_TRIES = 3
SLICE_ORDERS = 500
"""A window of more orders than this is split in two (each window is read whole, then sorted)."""
MIN_SLICE = timedelta(milliseconds=1)
"""Shipmondo's timestamps are in milliseconds: a window is never split below one."""
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""The start of a window with no cursor (before any Shipmondo order)."""


class ShipmondoSettings(Settings):
    """Settings of a Shipmondo connection (see the plugin README for each one)."""

    api_user: SecretStr = Field(description="Shipmondo API user (Settings > API > Access), the Basic-auth user")
    api_key: SecretStr = Field(description="Shipmondo API key, the Basic-auth password")
    base_url: str = Field(DEFAULT_BASE_URL, description=f"API base URL (default {DEFAULT_BASE_URL}); a sandbox's "
                          "or proxy's URL in tests")
    timeout: float | None = Field(None, gt=0, description="seconds to wait for one HTTP answer (default: the HTTP "
                                  "client's 30 s)")
    requests_per_second: float = Field(
        1.0, gt=0, description="requests per second to Shipmondo (its limits are not published: a cautious "
        "1 by default; 429 answers are honoured with their Retry-After)")
    page_size: int = Field(MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE, description="orders per page (per_page), 1 to 25")
    order_statuses: list[str] = Field(
        default_factory=list, description="order_status values an order must have to be transferred (empty: any; "
        "cancelled orders are always read, for cancellations)")
    fulfillment_statuses: list[str] = Field(
        default_factory=lambda: ["fulfilled"], description="fulfillment_status values that mean the order is "
        "handled and is transferred (default: fulfilled; empty: any)")
    payment_statuses: list[str] = Field(
        default_factory=list, description="payment_status values an order must have (empty: any)")
    shops: list[str] = Field(
        default_factory=list, description="the order integrations (source_name) this connection transfers; other "
        "shops' orders are left out as if Shipmondo had not listed them (empty: every shop)")
    start_date: date | None = Field(None, description="orders created before this day are not read")
    seller_country: str = Field("DK", min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$",
                                description="the seller's ISO country, stated on every document (default DK)")
    cursor_overlap_minutes: int = Field(
        10, ge=0, le=1440, description="minutes each incremental read goes back before the last read's end, for "
        "writes Shipmondo stamped before they became visible (default 10)")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("seller_country")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def _parse(cursor: str) -> datetime:
    """A stored cursor as a moment (an unreadable one: the start of time, so the read
    goes from it and the cursor moves on to a good value)."""
    try:
        moment = datetime.fromisoformat(cursor)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=COPENHAGEN)


def _moment(value: Any) -> datetime:
    """An order's timestamp for sorting (an unreadable one sorts first; the mapping names it)."""
    try:
        return _parse(str(value)) if value else EPOCH
    except ValueError:
        return EPOCH


def _stamp(moment: datetime) -> str:
    """A timestamp in the spec's form (``2018-06-19T11:00:03.305+02:00``)."""
    return moment.isoformat(timespec="milliseconds")


class ShipmondoSource(Source):
    """Shipmondo: sales orders, handled ones transferred, changed since the cursor (``updated_at``)."""

    Settings: ClassVar[type[ShipmondoSettings]] = ShipmondoSettings
    description: ClassVar[str] = "Shipmondo sales orders (webshop orders, once handled)"
    sandbox: ClassVar[str] = "ledgerlink_shipmondo.sandbox:ShipmondoSandbox"

    settings: ShipmondoSettings

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        self._http: Any = None
        s = self.settings
        self.options = Options(
            readiness=Readiness(order_statuses=tuple(s.order_statuses),
                                fulfillment_statuses=tuple(s.fulfillment_statuses),
                                payment_statuses=tuple(s.payment_statuses)),
            shops=tuple(s.shops),
            seller_country=s.seller_country,
        )

    # -- HTTP ----------------------------------------------------------------
    def _client(self) -> Any:
        """The HTTP client, made on first use (building the source makes no call)."""
        if self._http is None:
            user = self.settings.api_user.get_secret_value()
            key = self.settings.api_key.get_secret_value()
            timeout = {} if self.settings.timeout is None else {"timeout": self.settings.timeout}
            self._http = self.context.http(
                vendor="Shipmondo",
                base_url=self.settings.base_url + "/",
                auth=BasicAuth(user, key),
                rate_limits=[RateLimit(f"shipmondo:{key_id(user)}", self.settings.requests_per_second)],
                auth_hint=AUTH_HINT,
                **timeout,
            )
        return self._http

    def _paging(self) -> PageNumber:
        return PageNumber(items=None, size=self.settings.page_size, total_pages_header="X-Total-Pages")

    # -- the source contract ---------------------------------------------------
    def check(self) -> str:
        client = self._client()
        response = client.request("GET", "sales_orders", params={"page": 1, "per_page": 1})
        body = client.json(response)
        if not isinstance(body, list):
            raise TransientError("Shipmondo answered GET /sales_orders without a list of sales orders")
        total = response.headers.get("X-Total-Count", "?")
        shops = f", transferring shops {', '.join(self.settings.shops)}" if self.settings.shops else ""
        return f"Shipmondo API user {key_id(self.settings.api_user.get_secret_value())}: {total} sales orders{shops}"

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        """Orders updated from ``since`` minus ``cursor_overlap_minutes`` (None: every
        order, created from ``start_date`` if set) up to now, in ``updated_at`` order;
        each document's cursor is its order's ``updated_at``."""
        now = datetime.now(UTC)
        low = EPOCH
        if since:
            low = max(EPOCH, _parse(since) - timedelta(minutes=self.settings.cursor_overlap_minutes))
        for record in self._window("updated_at", low, now):
            if self._this_shop(record):
                yield from documents_from_order(record, self.options)

    def documents_between(self, start: date, end: date) -> Iterator[SourceItem]:
        """Orders created on the days ``start`` to ``end`` (Copenhagen time), whatever their cursor."""
        low = datetime.combine(start, time(), COPENHAGEN)
        high = datetime.combine(end, time.max, COPENHAGEN)
        for record in self._window("created_at", low, high):
            if not self._this_shop(record):
                continue
            for item in documents_from_order(record, self.options):
                yield replace(item, cursor=None) if isinstance(item, BrokenDocument) else \
                    item.model_copy(update={"cursor": None})

    def _this_shop(self, record: dict[str, Any]) -> bool:
        """Whether an order belongs to the shops (order integrations) this connection
        transfers. Shipmondo's API cannot filter by shop, so other shops' orders are left
        out here, as if the API had: they are another connection's, not this one's."""
        return not self.options.shops or record.get("source_name") in self.options.shops

    def _window(self, by: str, low: datetime, high: datetime) -> Iterator[dict[str, Any]]:
        """The orders whose ``by`` (updated_at or created_at) lies in [low, high], each
        once, sorted by it then by id. Shipmondo's order of a listing is not documented,
        so a window is read whole before any order of it is yielded; a window of more
        than ``SLICE_ORDERS`` orders is split in two halves by time (memory stays bounded)."""
        params = {f"{by}_min": _stamp(low), f"{by}_max": _stamp(high)}
        if self.settings.start_date and by == "updated_at":
            params["created_at_min"] = _stamp(datetime.combine(self.settings.start_date, time(), COPENHAGEN))
        records = self._read_whole(params, limit=None if high - low <= MIN_SLICE else SLICE_ORDERS)
        if records is None:  # too many: split
            middle = low + (high - low) / 2
            middle = middle.replace(microsecond=middle.microsecond // 1000 * 1000)
            yield from self._window(by, low, middle)
            yield from self._window(by, middle + MIN_SLICE, high)
            return
        yield from sorted(records.values(), key=lambda r: (_moment(r.get(by)), str(r.get("id"))))

    def _read_whole(self, params: dict[str, Any], *, limit: int | None) -> dict[str, dict[str, Any]] | None:
        """Every order of one listing by id; None when it holds more than ``limit``. A
        listing whose ``X-Total-Count`` changes while it is paged (orders move between
        pages) is read again; one that never holds still stops the run (TransientError)
        before any of it is yielded, so the cursor never passes an order it missed."""
        counts: list[str] = []
        for _attempt in range(LISTING_TRIES):
            records: dict[str, dict[str, Any]] = {}
            counts = []
            for page in self._client().pages("sales_orders", self._paging(), params=params):
                count = str(page.headers.get("X-Total-Count"))
                counts.append(count)
                if limit is not None and count.isdigit() and int(count) > limit:
                    return None
                for record in page.items:
                    ref = str(record.get("id") or "").strip() if isinstance(record, dict) else ""
                    if not ref:
                        self.context.logger.warning("Shipmondo listed a sales order without an id; left out: %.200r",
                                                    record)
                        continue
                    records.setdefault(ref, record)
            if len(set(counts)) <= 1:
                return records
            self.context.logger.info("Shipmondo's listing changed while it was read (%s orders); reading it again",
                                     " -> ".join(counts))
        raise TransientError(f"Shipmondo's list of sales orders kept changing while it was read ({LISTING_TRIES} "
                             f"times: {' -> '.join(counts)} orders); the next run reads it again")

    def document(self, source_ref: str) -> Document | None:
        """One order (or its refund credit note, ``<id>~refund``) by id; None when
        Shipmondo does not know it."""
        order_id = source_ref.removesuffix(REFUND_SUFFIX)
        if not order_id.isdigit():
            return None
        client = self._client()
        response = client.request("GET", f"sales_orders/{quote(order_id, safe='')}", ok=(404,))
        if response.status_code == 404:
            return None
        record = client.json(response)
        if not isinstance(record, dict) or str(record.get("id")) != order_id:
            raise DocumentError(f"Shipmondo answered sales order {order_id} with another record")
        for item in documents_from_order(record, self.options):
            if item.source_ref != source_ref:
                continue
            if isinstance(item, BrokenDocument):
                raise (QuarantineError if item.quarantine else DocumentError)(item.reason)
            return item.model_copy(update={"cursor": None})
        return None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


__all__ = ["ShipmondoSettings", "ShipmondoSource"]
