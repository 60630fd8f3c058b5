"""A listing of more than ``window_orders`` orders is read in windows of modification
time (order date for a backfill), each read whole and sorted on its own, so what the
source holds is bounded by the busiest window, not by the run (issue 22, item 4)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from billbee_testkit import base_settings, make_source
from ledgerlink import Document
from ledgerlink_billbee import source as source_module
from ledgerlink_billbee.sandbox import DEMO_SHOP_ID, BillbeeSandbox
from ledgerlink_billbee.source import BillbeeSource

BASE = "http://billbee.test/api/v1"


@pytest.fixture(autouse=True)
def fast_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Billbee's 2 requests a second per endpoint would make each window half a second."""
    for name in ("PER_KEY", "PER_USER", "PER_ENDPOINT"):
        monkeypatch.setattr(source_module, name, 10_000.0)


class Recording(httpx.BaseTransport):
    """The sandbox's transport, noting every orders page: its query and TotalRows."""

    def __init__(self, sandbox: BillbeeSandbox, after: Any = None) -> None:
        self.inner = sandbox.transport()
        self.pages: list[tuple[dict[str, str], int]] = []
        self.after = after

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/orders"):
            response.read()
            query = {k: v for k, v in request.url.params.items() if k != "shopId"}
            self.pages.append((query, json.loads(response.content)["Paging"]["TotalRows"]))
            if self.after is not None:
                self.after(self)
        return response

    def windows(self, limit: int) -> list[tuple[str, str | None]]:
        """(low, high) of the windows read whole: page 1 reported at most ``limit``."""
        return [(q["modifiedAtMin"], q.get("modifiedAtMax")) for q, total in self.pages
                if q["page"] == "1" and total <= limit]


def source_for(sandbox: BillbeeSandbox, transport: httpx.BaseTransport | None = None, **overrides: Any
               ) -> BillbeeSource:
    settings, env = sandbox.demo_connection("http://billbee.test")
    settings.update(api_key=env["BILLBEE_API_KEY"], api_password=env["BILLBEE_API_PASSWORD"], **overrides)
    return make_source(settings, transport or sandbox.transport())


def held(source: BillbeeSource) -> list[int]:
    """Spy: the number of orders each listing call returned (what the source held at once)."""
    sizes: list[int] = []
    original = source._list_orders

    def spy(*args: Any, **kwargs: Any) -> Any:
        listed = original(*args, **kwargs)
        sizes.append(listed if isinstance(listed, int) else len(listed))
        if isinstance(listed, int):
            sizes[-1] = 0  # nothing held: only the first page was read
        return listed

    source._list_orders = spy  # type: ignore[method-assign]
    return sizes


def sandbox() -> BillbeeSandbox:
    return BillbeeSandbox(seed=BillbeeSandbox.demo_seed(), throttle=False)


def moment(cursor: str | None) -> datetime:
    assert cursor is not None
    return datetime.fromisoformat(cursor)


def test_windows_yield_the_same_documents_in_the_same_order_holding_at_most_window_orders() -> None:
    vendor = sandbox()
    whole = list(source_for(vendor).documents(None))
    assert len(whole) == 49
    recording = Recording(vendor)
    source = source_for(vendor, recording, window_orders=10, page_size=4)
    sizes = held(source)
    windowed = list(source.documents(None))
    # The same documents, content and cursor, in the same (modification) order.
    assert [d.model_dump() for d in windowed] == [d.model_dump() for d in whole]  # type: ignore[union-attr]
    assert max(sizes) <= 10 and sum(sizes) == 49
    # The first window is the whole listing: 49 > 10, so only its first page was read.
    first_query, first_total = recording.pages[0]
    assert "modifiedAtMax" not in first_query and first_total == 49
    too_big = [q for q, total in recording.pages if total > 10]
    assert too_big and all(q["page"] == "1" for q in too_big)
    # The windows read whole cover the range: each starts where the one before ended,
    # the first at the start date (less the overlap), the last has no end.
    windows = recording.windows(10)
    assert windows[0][0] == "2024-12-31T23:50:00" and windows[-1][1] is None
    assert all(prev[1] == nxt[0] for prev, nxt in zip(windows, windows[1:], strict=False))
    assert len(windows) >= 5


def test_a_narrowed_window_is_at_least_halved_and_a_sparse_one_widened() -> None:
    vendor = sandbox()
    recording = Recording(vendor)
    list(source_for(vendor, recording, window_orders=10).documents(None))
    firsts = [(q["modifiedAtMin"], q.get("modifiedAtMax"), total) for q, total in recording.pages if q["page"] == "1"]

    def span(low: str, high: str) -> float:
        return (datetime.fromisoformat(high) - datetime.fromisoformat(low)).total_seconds()

    narrowed = widened = 0
    for (low, high, total), (low2, high2, _) in zip(firsts, firsts[1:], strict=False):
        if high is None or high2 is None:
            continue
        if total > 10:  # asked again from the same start, at most half as wide
            assert low2 == low and span(low2, high2) <= span(low, high) / 2
            narrowed += 1
        elif total < 7 and low2 == high:
            assert span(low2, high2) > span(low, high)
            widened += 1
    assert narrowed and widened


def test_an_order_modified_during_the_run_into_a_later_window_comes_once_and_holds_the_cursor() -> None:
    vendor = sandbox()
    source = source_for(vendor, window_orders=8, overlap_minutes=0)
    listing = source.documents(None)
    first = next(listing)
    assert isinstance(first, Document)
    # Billbee's clock may be behind ours: the change lands inside a window not read yet.
    later = sorted(o["LastModifiedAt"] for o in vendor.state["orders"].values())[-5]
    changed = vendor.state["orders"][first.source_ref]
    changed["LastModifiedAt"] = later
    changed["State"] = 4  # shipped
    rest = list(listing)
    refs = [first.source_ref, *(d.source_ref for d in rest)]
    assert len(refs) == len(set(refs)) == 49
    new_time = moment(source._to_document(changed, cursor_cap=datetime.max.replace(tzinfo=source.tz)).cursor)
    after = [d for d in rest if moment(d.cursor) >= new_time]
    assert after, "the change lies inside the listing"
    assert all(moment(d.cursor) <= new_time for d in rest), "a cursor passed the change not yet read"
    # The next run, from the last cursor, reads the change.
    last = max(rest, key=lambda d: moment(d.cursor)).cursor
    again = {d.source_ref: d for d in source.documents(last)}
    assert first.source_ref in again and again[first.source_ref].source_status == "shipped"


def test_a_cancellation_whose_original_is_in_another_window_is_resolved() -> None:
    vendor = sandbox()
    orders = sorted(vendor.state["orders"].values(), key=lambda o: o["LastModifiedAt"])
    original = next(o for o in orders if o["State"] in (3, 4, 7) and o.get("InvoiceNumber")
                    and o["ApiAccountId"] == DEMO_SHOP_ID)
    cancellation = copy.deepcopy(original)
    cancellation.update({"BillBeeOrderId": 300000180000099, "Id": "CANCEL-1", "OrderNumber": "CANCEL-1",
                         "InvoiceNumber": 9999, "IsCancelationFor": original["OrderNumber"], "Payments": [],
                         "LastModifiedAt": "2025-03-30T12:00:00.000"})
    vendor._store_order(cancellation)
    docs = {d.source_ref: d for d in source_for(vendor, window_orders=5).documents(None)}
    credit = docs["300000180000099"]
    assert isinstance(credit, Document) and credit.kind == "credit_note"
    assert credit.reverses == str(original["BillBeeOrderId"])
    assert credit.total_gross == -docs[str(original["BillBeeOrderId"])].total_gross  # type: ignore[union-attr]
    looked_up = [r for r in vendor.requests if "/orders/findbyextref/" in r["path"]]
    assert len(looked_up) == 1  # the original was listed in an earlier window, not this one


def test_more_orders_in_one_second_than_window_orders_are_read_together() -> None:
    vendor = sandbox()
    busy = sorted(ref for ref, o in vendor.state["orders"].items() if o["ApiAccountId"] == DEMO_SHOP_ID)[:6]
    for n, ref in enumerate(busy):
        vendor.state["orders"][ref]["LastModifiedAt"] = f"2025-02-10T12:00:00.{100 + n * 100:03d}"
    recording = Recording(vendor)
    source = source_for(vendor, recording, window_orders=3)
    sizes = held(source)
    docs = list(source.documents(None))
    refs = [d.source_ref for d in docs]
    assert len(refs) == len(set(refs)) == 49 and set(busy) <= set(refs)
    assert max(sizes) == 6  # the busiest second, which cannot be split
    assert ("2025-02-10T12:00:00", "2025-02-10T12:00:01") in [(q["modifiedAtMin"], q.get("modifiedAtMax"))
                                                             for q, _ in recording.pages]


def test_backfill_reads_windows_of_order_date() -> None:
    from datetime import date

    vendor = sandbox()
    whole = list(source_for(vendor).documents_between(date(2025, 1, 1), date(2025, 3, 31)))
    source = source_for(vendor, window_orders=6)
    sizes = held(source)
    windowed = list(source.documents_between(date(2025, 1, 1), date(2025, 3, 31)))
    assert sorted(d.source_ref for d in windowed) == sorted(d.source_ref for d in whole)
    assert len({d.source_ref for d in windowed}) == len(windowed) == len(whole) > 40
    assert max(sizes) <= 6 and all(d.cursor is None for d in windowed)
    dated = [r["query"] for r in vendor.requests if r["path"] == "/api/v1/orders" and "maxOrderDate" in r["query"]]
    assert len(dated) > 8 and not any("modifiedAt" in q for q in dated)


# -- respx: the requests themselves ------------------------------------------------------
def fixture_order(order_id: int, modified: str) -> dict[str, Any]:
    # Billbee's own test_http by its path: under xdist another plugin's tests folder
    # (with its own test_http) may come first on sys.path.
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("billbee_test_http", Path(__file__).with_name("test_http.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.order(order_id, modified)  # type: ignore[no-any-return]


@respx.mock
def test_windowed_requests_against_mocked_billbee() -> None:
    # 40 orders a day apart; Billbee answers each query from them (modifiedAtMin
    # exclusive, modifiedAtMax inclusive), three to a page.
    orders = [fixture_order(100 + n, f"2025-01-{1 + n % 28:02d}T10:00:00" if n < 28
                            else f"2025-02-{n - 27:02d}T10:00:00") for n in range(40)]
    asked: list[dict[str, list[str]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        asked.append(query)
        low, high = query["modifiedAtMin"][0], query.get("modifiedAtMax", [None])[0]
        chosen = [o for o in orders if o["LastModifiedAt"] > low and (high is None or o["LastModifiedAt"] <= high)]
        page, size = int(query["page"][0]), int(query["pageSize"][0])
        pages = -(-len(chosen) // size)
        return httpx.Response(200, json={
            "Paging": {"Page": page, "TotalPages": pages, "TotalRows": len(chosen), "PageSize": size},
            "ErrorMessage": None, "ErrorCode": 0, "ErrorDescription": "NoError",
            "Data": chosen[(page - 1) * size: page * size]})

    respx.get(f"{BASE}/orders").mock(side_effect=answer)
    respx.get(f"{BASE}/orders/invoices").mock(return_value=httpx.Response(200, json={
        "Paging": {"Page": 1, "TotalPages": 0, "TotalRows": 0, "PageSize": 250}, "ErrorMessage": None,
        "ErrorCode": 0, "ErrorDescription": "NoError", "Data": []}))
    docs = list(make_source(base_settings(window_orders=8, page_size=3)).documents(None))
    assert [d.source_ref for d in docs] == [str(o["BillBeeOrderId"]) for o in orders]
    cursors = [moment(d.cursor) for d in docs]
    assert cursors == sorted(cursors)
    # No window of more than 8 orders was paged on: each such answer was a first page only.
    counts = Counter((q["modifiedAtMin"][0], q.get("modifiedAtMax", [None])[0]) for q in asked)
    for query in asked:
        low, high = query["modifiedAtMin"][0], query.get("modifiedAtMax", [None])[0]
        inside = sum(1 for o in orders if o["LastModifiedAt"] > low and (high is None or o["LastModifiedAt"] <= high))
        if inside > 8:
            assert counts[(low, high)] == 1 and query["page"] == ["1"]
    assert all(q["shopId"] == ["100000000012001"] for q in asked)
