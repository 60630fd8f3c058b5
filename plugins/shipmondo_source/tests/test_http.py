"""HTTP behaviour of the Shipmondo source against mocked answers (respx): auth, paging
by X-Total-Pages, the window and cursor, a listing that shifts while it is paged,
429 with Retry-After, errors, backfill by date and by id."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from ledgerlink import BrokenDocument, ConnectionError_, ConnectorContext, Document, TransientError
from ledgerlink.testing import make_http_client
from ledgerlink_shipmondo.source import ShipmondoSettings, ShipmondoSource
from shipmondo_testkit import line, order

BASE = "http://shipmondo.test/api/public/v3"
USER, KEY = "d8fb61fe-0a4f-4e11-81f8-6efd3513bd43", "976ff6f2-3528-4f4f-9e7d-007e9a074037"


def make(**overrides: Any) -> ShipmondoSource:
    settings = {"api_user": USER, "api_key": KEY, "base_url": BASE, "requests_per_second": 1000, **overrides}
    context = ConnectorContext(connection="shipmondo-test",
                               http_factory=lambda **kw: make_http_client(**{**kw, "backoff": 0.01, "max_wait": 0.05}))
    return ShipmondoSource(ShipmondoSettings(**settings), context)


def sale(ident: int, updated: str = "2026-04-01T09:00:00.000+02:00", **fields: Any) -> dict[str, Any]:
    record = order([line("Hue", "1", "80.00")], id=ident, order_id=f"NW-{ident}", updated_at=updated, **fields)
    return copy.deepcopy(record)


def answer(orders: list[dict[str, Any]], *, page: int = 1, pages: int = 1, total: int | None = None,
           status: int = 200) -> httpx.Response:
    headers = {"X-Per-Page": "25", "X-Current-Page": str(page), "X-Total-Pages": str(pages),
               "X-Total-Count": str(len(orders) if total is None else total)}
    return httpx.Response(status, json=orders, headers=headers)


@respx.mock
def test_basic_auth_window_and_page_size_are_sent() -> None:
    route = respx.get(f"{BASE}/sales_orders").mock(return_value=answer([]))
    before = datetime.now(UTC)
    assert list(make(page_size=10).documents("2026-04-01T07:00:00.000+00:00")) == []
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()
    params = request.url.params
    assert (params["page"], params["per_page"]) == ("1", "10")
    # the cursor minus the 10-minute overlap, up to now
    assert params["updated_at_min"] == "2026-04-01T06:50:00.000+00:00"
    upper = datetime.fromisoformat(params["updated_at_max"])
    assert before - timedelta(seconds=1) <= upper <= datetime.now(UTC)
    assert "created_at_min" not in params


@respx.mock
def test_the_start_date_limits_every_read_by_creation() -> None:
    route = respx.get(f"{BASE}/sales_orders").mock(return_value=answer([]))
    list(make(start_date="2026-03-01").documents(None))
    params = route.calls.last.request.url.params
    assert params["created_at_min"] == "2026-03-01T00:00:00.000+01:00"  # midnight in Copenhagen
    assert params["updated_at_min"] == "2000-01-01T00:00:00.000+00:00"


@respx.mock
def test_every_page_is_read_and_the_window_is_yielded_in_updated_at_order() -> None:
    first = [sale(5, "2026-04-01T12:00:00.000+02:00"), sale(4, "2026-04-01T09:00:00.000+02:00")]
    second = [sale(3, "2026-04-01T09:00:00.000+02:00"), sale(2, "2026-04-01T08:00:00.000+00:00")]
    route = respx.get(f"{BASE}/sales_orders")
    route.side_effect = [answer(first, pages=2, total=4), answer(second, page=2, pages=2, total=4)]
    items = list(make(page_size=2).documents("2026-04-01T06:00:00.000+00:00"))
    assert [call.request.url.params["page"] for call in route.calls] == ["1", "2"]
    # Listed newest first; yielded oldest first (8:00 UTC is 10:00 in Copenhagen), equal
    # stamps by id, each with its own updated_at as the cursor.
    assert [i.source_ref for i in items] == ["3", "4", "2", "5"]
    assert [i.cursor for i in items] == ["2026-04-01T09:00:00.000+02:00", "2026-04-01T09:00:00.000+02:00",
                                         "2026-04-01T08:00:00.000+00:00", "2026-04-01T12:00:00.000+02:00"]


@respx.mock
def test_a_window_with_too_many_orders_is_split_in_halves_by_time() -> None:
    seen: list[tuple[str, str]] = []

    # Two clusters of 300 orders each (one order stands for each): a year apart.
    clusters = [(datetime(2025, 4, 1, 7, tzinfo=UTC), sale(1, "2025-04-01T09:00:00.000+02:00")),
                (datetime(2026, 4, 1, 7, tzinfo=UTC), sale(2, "2026-04-01T09:00:00.000+02:00"))]

    def listing(request: httpx.Request) -> httpx.Response:
        low, high = request.url.params["updated_at_min"], request.url.params["updated_at_max"]
        seen.append((low, high))
        inside = [record for moment, record in clusters
                  if datetime.fromisoformat(low) <= moment <= datetime.fromisoformat(high)]
        return answer(inside, total=300 * len(inside))

    respx.get(f"{BASE}/sales_orders").mock(side_effect=listing)
    items = list(make().documents(None))
    assert [i.source_ref for i in items] == ["1", "2"]  # each once, the older first
    assert len(seen) >= 3 and all(datetime.fromisoformat(lo) <= datetime.fromisoformat(hi) for lo, hi in seen)
    # the windows read whole touch but never overlap: no order can be read in two of them
    whole = sorted((datetime.fromisoformat(lo), datetime.fromisoformat(hi)) for lo, hi in seen
                   if sum(lo_ok <= m <= hi_ok for m, _ in clusters
                          for lo_ok, hi_ok in [(datetime.fromisoformat(lo), datetime.fromisoformat(hi))]) < 2)
    assert all(earlier[1] < later[0] for earlier, later in zip(whole, whole[1:], strict=False))


@respx.mock
def test_a_listing_that_shifts_while_it_is_paged_is_read_again_before_anything_is_yielded() -> None:
    route = respx.get(f"{BASE}/sales_orders")
    a, b, c = sale(3), sale(2), sale(1)
    route.side_effect = [
        answer([a, b], pages=2, total=3), answer([b], page=2, pages=2, total=2),  # c moved away meanwhile
        answer([a, b], pages=2, total=3), answer([c], page=2, pages=2, total=3),  # read again: steady
    ]
    items = list(make(page_size=2).documents("2026-04-01T06:00:00.000+00:00"))
    assert sorted(i.source_ref for i in items) == ["1", "2", "3"]  # each once, none lost
    assert len(route.calls) == 4


@respx.mock
def test_a_listing_that_never_holds_still_stops_the_run_before_the_cursor_passes_it() -> None:
    route = respx.get(f"{BASE}/sales_orders")
    route.side_effect = [answer([sale(2)], pages=2, total=2), answer([sale(1)], page=2, pages=2, total=1)] * 3
    listing = make(page_size=1).documents("2026-04-01T06:00:00.000+00:00")
    with pytest.raises(TransientError, match="kept changing while it was read .3 times: 2 -> 1 orders"):
        next(listing)


@respx.mock
def test_a_429_is_waited_out_with_its_retry_after() -> None:
    route = respx.get(f"{BASE}/sales_orders")
    route.side_effect = [httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "Too many requests"}),
                         answer([sale(1)])]
    assert [i.source_ref for i in make().documents(None)] == ["1"]
    assert len(route.calls) == 2


@respx.mock
def test_wrong_credentials_are_one_clear_line_without_the_key() -> None:
    respx.get(f"{BASE}/sales_orders").mock(
        return_value=httpx.Response(401, json={"error": "Invalid API User or API Key"}))
    with pytest.raises(ConnectionError_) as caught:
        make().check()
    text = str(caught.value)
    assert "api_user and api_key" in text and KEY not in text and USER not in text and "\n" not in text


@respx.mock
def test_check_counts_the_orders() -> None:
    respx.get(f"{BASE}/sales_orders").mock(return_value=answer([sale(1)], total=41))
    assert make(shops=["Nordlys Webshop"]).check().endswith(": 41 sales orders, transferring shops Nordlys Webshop")


@respx.mock
def test_an_answer_that_is_not_a_list_fails_the_run_clearly() -> None:
    respx.get(f"{BASE}/sales_orders").mock(return_value=httpx.Response(200, json={"error": "maintenance"}))
    with pytest.raises(Exception, match="not a list"):
        list(make().documents(None))


@respx.mock
def test_a_record_without_an_id_is_left_out_and_the_rest_is_read() -> None:
    broken = sale(2)
    del broken["id"]
    respx.get(f"{BASE}/sales_orders").mock(return_value=answer([broken, sale(1)]))
    assert [i.source_ref for i in make().documents(None)] == ["1"]


@respx.mock
def test_backfill_by_date_covers_whole_days_in_copenhagen_and_sets_no_cursor() -> None:
    route = respx.get(f"{BASE}/sales_orders").mock(return_value=answer([sale(1)]))
    [item] = list(make().documents_between(date(2026, 3, 1), date(2026, 3, 31)))
    params = route.calls.last.request.url.params
    assert params["created_at_min"] == "2026-03-01T00:00:00.000+01:00"
    assert params["created_at_max"] == "2026-03-31T23:59:59.999+02:00"  # summer time began on 29 March
    assert "updated_at_min" not in params and item.cursor is None


@respx.mock
def test_backfill_by_id_reads_the_order_and_its_refund() -> None:
    refunded = sale(7, refunded="20.00")
    respx.get(f"{BASE}/sales_orders/7").mock(return_value=httpx.Response(200, json=refunded))
    respx.get(f"{BASE}/sales_orders/8").mock(return_value=httpx.Response(404, json={"error": "Invalid or not found"}))
    source = make()
    found = source.document("7")
    assert isinstance(found, Document) and found.number == "NW-7"
    refund = source.document("7~refund")
    assert isinstance(refund, Document) and refund.reverses == "7"
    assert source.document("8") is None
    assert source.document("not-a-number") is None


@respx.mock
def test_a_broken_order_is_yielded_as_broken_with_its_cursor() -> None:
    bad = sale(1)
    bad["order_lines"][0]["vat_percent"] = "25"
    respx.get(f"{BASE}/sales_orders").mock(return_value=answer([bad]))
    [item] = list(make().documents("2026-04-01T06:00:00.000+00:00"))
    assert isinstance(item, BrokenDocument) and not item.quarantine
    assert item.cursor == "2026-04-01T09:00:00.000+02:00"
    assert "vat_percent '25' is not a fraction" in item.reason
