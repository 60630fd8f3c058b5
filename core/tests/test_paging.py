"""ledgerlink._paging through HttpClient.paginate/pages (respx, no network): page
numbers, offsets and cursors, totals from headers and body fields, the end of a
listing, laziness, dedupe, and a vendor that never stops."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import ledgerlink._http as http_mod
import pytest
import respx
from ledgerlink import Cursor, HttpClient, Offset, PageNumber, RateBudget, RateLimit, TransientError

BASE = "https://api.acme.test/v1"


class FakeTime:
    """Sleeping only advances the clock and records the wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(http_mod, "time", fake)
    return fake


@pytest.fixture
def mock() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def client(**kwargs: Any) -> HttpClient:
    options: dict[str, Any] = {"vendor": "Acme", "base_url": BASE, "retries": 2, "backoff": 0.1,
                               "connection": f"acme-{uuid.uuid4().hex}"}
    options.update(kwargs)
    return HttpClient(**options)


def served(rows: list[Any], *, by: str = "page", size_param: str = "per_page", default_size: int = 10,
           body: Any = None, headers: Any = None) -> tuple[list[httpx.Request], Any]:
    """A vendor listing ``rows``: by page number or by offset; ``body``/``headers`` make
    the answer from (rows of the page, page number, pages, total)."""
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        q = request.url.params
        size = int(q.get(size_param, default_size))
        if by == "page":
            number = int(q.get("page", 1))
            start = (number - 1) * size
        else:
            start = int(q.get("offset", 0))
            number = start // size + 1
        chunk = rows[start:start + size]
        pages = max(1, -(-len(rows) // size))
        make_body = body or (lambda chunk, number, pages, total: {"data": chunk})
        make_headers = headers or (lambda number, pages, total: {})
        return httpx.Response(200, json=make_body(chunk, number, pages, len(rows)),
                              headers=make_headers(number, pages, len(rows)))

    return asked, answer


# -- page numbers ------------------------------------------------------------------------------
def test_page_number_with_a_total_pages_header(mock: Any) -> None:
    asked, answer = served(list(range(23)), headers=lambda n, pages, total: {"X-Total-Pages": str(pages)})
    mock.get("/items").mock(side_effect=answer)
    style = PageNumber(page_param="page", size_param="per_page", size=10, total_pages_header="X-Total-Pages")
    got = list(client().paginate("/items", style, params={"status": "open", "tag": ["a", "b"]}))
    assert got == list(range(23))
    assert [(r.url.params["page"], r.url.params["per_page"]) for r in asked] == [("1", "10"), ("2", "10"), ("3", "10")]
    assert all(r.url.params["status"] == "open" and r.url.params.get_list("tag") == ["a", "b"] for r in asked)


def test_page_number_with_a_total_pages_body_field_stops_at_a_full_last_page(mock: Any) -> None:
    asked, answer = served(list(range(20)), body=lambda chunk, n, pages, total: {
        "Data": chunk, "Paging": {"Page": n, "TotalPages": pages}})
    mock.get("/items").mock(side_effect=answer)
    style = PageNumber(size_param="pageSize", size=10, items="Data", total_pages="Paging.TotalPages")
    assert list(client().paginate("/items", style)) == list(range(20))
    assert len(asked) == 2  # page 2 of 2 is full, and the last: no third request


def test_page_number_with_a_total_count_header(mock: Any) -> None:
    asked, answer = served(list(range(20)), headers=lambda n, pages, total: {"X-Total-Count": str(total)})
    mock.get("/items").mock(side_effect=answer)
    style = PageNumber(size=10, total_items_header="X-Total-Count")
    assert list(client().paginate("/items", style)) == list(range(20))
    assert len(asked) == 2


def test_without_totals_the_first_empty_page_ends_the_listing(mock: Any) -> None:
    asked, answer = served(list(range(25)))
    mock.get("/items").mock(side_effect=answer)
    assert list(client().paginate("/items", PageNumber(size=10))) == list(range(25))
    assert [r.url.params["page"] for r in asked] == ["1", "2", "3", "4"]  # a short page is not trusted
    asked.clear()
    assert list(client().paginate("/items", PageNumber(size=10, short_page_ends=True))) == list(range(25))
    assert len(asked) == 3


def test_offset_ends_at_a_short_page_only_when_told(mock: Any) -> None:
    asked, answer = served(list(range(25)), by="offset", size_param="limit")
    mock.get("/items").mock(side_effect=answer)
    assert list(client().paginate("/items", Offset(limit=10))) == list(range(25))
    assert [r.url.params["offset"] for r in asked] == ["0", "10", "20", "25"]  # a short page is not trusted
    asked.clear()
    assert list(client().paginate("/items", Offset(limit=10, short_page_ends=True))) == list(range(25))
    assert [r.url.params["offset"] for r in asked] == ["0", "10", "20"]
    asked.clear()
    capped, answer = served(list(range(25)), by="offset", size_param="ignored")  # sends 10, asked for 100
    mock.get("/items").mock(side_effect=answer)
    assert list(client().paginate("/items", Offset(limit=100, short_page_ends=True))) == list(range(10))
    assert len(capped) == 1  # why it is off by default: a capping vendor is cut short


def test_a_vendor_that_caps_the_page_size_loses_nothing(mock: Any) -> None:
    # Asked for 100 a page, the vendor sends 10: the short pages are not the end.
    asked, answer = served(list(range(25)), size_param="ignored")
    mock.get("/items").mock(side_effect=answer)
    assert list(client().paginate("/items", PageNumber(size=100))) == list(range(25))
    assert len(asked) == 4


def test_a_null_next_link_ends_the_listing(mock: Any) -> None:
    asked, answer = served(list(range(15)), body=lambda chunk, n, pages, total: {
        "data": chunk, "meta": {"totalPages": 99}, "links": {"next": f"?page={n + 1}" if n < pages else None}})
    mock.get("/items").mock(side_effect=answer)
    style = PageNumber(page_param="page", size_param="per_page", size=10, next_link="links.next")
    assert list(client().paginate("/items", style)) == list(range(15))
    assert len(asked) == 2


def test_pages_are_read_one_at_a_time(mock: Any) -> None:
    asked, answer = served(list(range(30)))
    mock.get("/items").mock(side_effect=answer)
    items = client().paginate("/items", PageNumber(size=10))
    assert asked == []  # nothing asked before the first item is taken
    assert [next(items) for _ in range(10)] == list(range(10))
    assert len(asked) == 1  # the second page only when the first is used up
    assert next(items) == 10 and len(asked) == 2


def test_pages_give_the_body_for_fields_the_style_does_not_read(mock: Any) -> None:
    asked, answer = served(list(range(12)), body=lambda chunk, n, pages, total: {"data": chunk, "total": total})
    mock.get("/items").mock(side_effect=answer)
    pages = list(client().pages("/items", PageNumber(size=5, total_items="total"), params={"q": "x"}))
    assert [(p.number, p.params, len(p.items), p.body["total"]) for p in pages] == [
        (1, {"q": "x", "page": 1, "per_page": 5}, 5, 12),
        (2, {"q": "x", "page": 2, "per_page": 5}, 5, 12),
        (3, {"q": "x", "page": 3, "per_page": 5}, 2, 12),
    ]


# -- offsets ----------------------------------------------------------------------------------------
def test_offset_advances_by_the_items_received(mock: Any) -> None:
    asked, answer = served(list(range(25)), by="offset", size_param="limit", default_size=10,
                           headers=lambda n, pages, total: {"X-Total-Count": str(total)})
    mock.get("/items").mock(side_effect=answer)
    style = Offset(limit=10, total_items_header="X-Total-Count")
    assert list(client().paginate("/items", style)) == list(range(25))
    assert [r.url.params["offset"] for r in asked] == ["0", "10", "20"]


def test_offset_with_a_capped_limit_and_no_total(mock: Any) -> None:
    asked, answer = served(list(range(7)), by="offset", size_param="max", default_size=3,
                           body=lambda chunk, n, pages, total: chunk)
    mock.get("/items").mock(side_effect=answer)
    assert list(client().paginate("/items", Offset(limit=50, items=None))) == list(range(7))
    assert [(r.url.params["offset"], r.url.params["limit"]) for r in asked] == [
        ("0", "50"), ("3", "50"), ("6", "50"), ("7", "50")]


# -- cursors ------------------------------------------------------------------------------------
def cursor_listing(rows: list[Any], size: int, *, header: bool = False) -> tuple[list[httpx.Request], Any]:
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        start = int(request.url.params.get("after", "0").removeprefix("c"))
        chunk = rows[start:start + size]
        following = f"c{start + size}" if start + size < len(rows) else None
        if header:
            return httpx.Response(200, json={"items": chunk}, headers={"X-Next": following} if following else {})
        return httpx.Response(200, json={"items": chunk, "meta": {"next": following}})

    return asked, answer


def test_cursor_from_the_body(mock: Any) -> None:
    asked, answer = cursor_listing(list(range(7)), 3)
    mock.get("/items").mock(side_effect=answer)
    style = Cursor(cursor_param="after", next_cursor="meta.next", items="items", size_param="limit", size=3)
    assert list(client().paginate("/items", style)) == list(range(7))
    assert [r.url.params.get("after") for r in asked] == [None, "c3", "c6"]
    assert all(r.url.params["limit"] == "3" for r in asked)


def test_cursor_from_a_header(mock: Any) -> None:
    asked, answer = cursor_listing(list(range(5)), 2, header=True)
    mock.get("/items").mock(side_effect=answer)
    style = Cursor(cursor_param="after", next_cursor=None, next_cursor_header="X-Next", items="items")
    assert list(client().paginate("/items", style)) == list(range(5))
    assert len(asked) == 3


def test_a_repeated_cursor_is_an_error_not_a_loop(mock: Any) -> None:
    mock.get("/items").mock(return_value=httpx.Response(200, json={"items": [1], "next_cursor": "same"}))
    style = Cursor(items="items")
    with pytest.raises(TransientError, match="Acme GET https://api\\.acme\\.test/v1/items: page 2 hands out the cursor it was asked with \\('same'\\)"):
        list(client().paginate("/items", style))


# -- what ends a walk badly ---------------------------------------------------------------------
def test_a_vendor_that_never_stops_is_stopped(mock: Any) -> None:
    route = mock.get("/items").mock(return_value=httpx.Response(200, json={"data": [1]}))
    with pytest.raises(TransientError, match="items: the vendor keeps sending pages \\(over 5\\); stopping"):
        list(client().paginate("/items", PageNumber(max_pages=5)))
    assert route.call_count == 5


@pytest.mark.parametrize(("body", "error"), [
    ({"rows": []}, "^Acme GET https://api.acme.test/v1/items: page 1 has no 'data' \\(not a paged answer\\)$"),
    ([1, 2], "items: page 1 has no 'data'"),
    ({"data": {"id": 1}}, "items: page 1: 'data' is not a list$"),
])
def test_an_answer_without_the_item_list_is_an_error(mock: Any, body: Any, error: str) -> None:
    mock.get("/items").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(TransientError, match=error):
        list(client().paginate("/items", PageNumber()))


def test_null_items_are_an_empty_page(mock: Any) -> None:
    route = mock.get("/items").mock(return_value=httpx.Response(200, json={"Data": None, "Paging": {"TotalPages": 3}}))
    assert list(client().paginate("/items", PageNumber(items="Data", total_pages="Paging.TotalPages"))) == []
    assert route.call_count == 1


def test_a_shifted_page_repeats_nothing_with_dedupe(mock: Any) -> None:
    # An item added at the front while paging pushes "b" from page 1 onto page 2.
    answers = [httpx.Response(200, json={"data": [{"id": "a"}, {"id": "b"}]}),
               httpx.Response(200, json={"data": [{"id": "b"}, {"id": "c"}]}),
               httpx.Response(200, json={"data": []})]
    mock.get("/items").mock(side_effect=answers)
    got = client().paginate("/items", PageNumber(size=2), dedupe=lambda item: item["id"])
    assert [item["id"] for item in got] == ["a", "b", "c"]


def test_items_without_a_dedupe_key_are_all_kept(mock: Any) -> None:
    rows = [{"id": None, "n": 1}, {"id": None, "n": 2}, {"id": ["x"], "n": 3}, {"id": ["x"], "n": 4},
            {"id": ("t", ["x"]), "n": 5}, {"id": 7, "n": 6}, {"id": 7, "n": 7}]
    mock.get("/items").mock(side_effect=[httpx.Response(200, json={"data": rows}),
                                         httpx.Response(200, json={"data": []})])
    got = client().paginate("/items", PageNumber(), dedupe=lambda item: item["id"])
    assert [item["n"] for item in got] == [1, 2, 3, 4, 5, 6]


# -- paging goes through the client ----------------------------------------------------------------
def test_retry_after_on_a_later_page_is_honoured(mock: Any, clock: FakeTime) -> None:
    route = mock.get("/items").mock(side_effect=[
        httpx.Response(200, json={"data": [1, 2]}, headers={"X-Total-Pages": "2"}),
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(200, json={"data": [3]}, headers={"X-Total-Pages": "2"}),
    ])
    c = client()
    assert list(c.paginate("/items", PageNumber(total_pages_header="X-Total-Pages"))) == [1, 2, 3]
    assert route.call_count == 3 and clock.sleeps == [3.0]
    assert route.calls[2].request.url.params["page"] == "2"  # the same page asked again
    assert c.stats["rate_limited"] == 1


def test_each_page_keeps_the_rate_limits_and_parse(mock: Any, clock: FakeTime) -> None:
    starts: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        starts.append(clock.now)
        number = int(request.url.params["page"])
        return httpx.Response(200, json={"ErrorCode": 0, "Data": [number] if number <= 3 else []})

    mock.get("/items").mock(side_effect=answer)

    def envelope(response: httpx.Response) -> Any:
        body = response.json()
        if body["ErrorCode"]:
            raise TransientError("error code")
        return body

    c = client(budget=RateBudget("acme"))
    got = list(c.paginate("/items", PageNumber(items="Data"), parse=envelope,
                          extra_limits=[RateLimit("acme:/items", 2)]))
    assert got == [1, 2, 3] and len(starts) == 4
    assert all(b - a >= 1 / (2 * 0.95) - 1e-9 for a, b in zip(starts, starts[1:], strict=False))
    mock.get("/items").mock(return_value=httpx.Response(200, json={"ErrorCode": 3, "Data": []}))
    with pytest.raises(TransientError, match="error code"):
        list(c.paginate("/items", PageNumber(items="Data"), parse=envelope))
