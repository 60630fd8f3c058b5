"""NextLink: a listing that hands out the URL of its next page (a body field, or the
``Link`` header's rel="next"), through HttpClient.paginate (respx, no network)."""

from __future__ import annotations

import uuid

import httpx
import pytest
import respx
from ledgerlink import HttpClient, NextLink, TransientError
from ledgerlink._paging import link_header_next

BASE = "https://api.acme.test/v1"


def client() -> HttpClient:
    return HttpClient(vendor="Acme", base_url=BASE, retries=0, connection=f"acme-{uuid.uuid4().hex}",
                      headers={"Authorization": "Bearer s3cret-token"})


def test_a_next_field_is_followed_as_given_and_the_callers_query_goes_only_first() -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{BASE}/items", params__eq={"status": "open"}).respond(json={
            "data": [1, 2], "links": {"next": f"{BASE}/items?status=open&after=2&sig=x%2Fy"}})
        mock.get(f"{BASE}/items", params__eq={"status": "open", "after": "2", "sig": "x/y"}).respond(json={
            "data": [3, 4], "links": {"next": "items?status=open&after=4"}})  # relative to this page
        mock.get(f"{BASE}/items", params__eq={"status": "open", "after": "4"}).respond(json={
            "data": [5], "links": {"next": None}})
        got = list(client().paginate("items", NextLink(next_field="links.next"), params={"status": "open"}))
        assert got == [1, 2, 3, 4, 5]
        assert [str(call.request.url) for call in mock.calls] == [
            f"{BASE}/items?status=open", f"{BASE}/items?status=open&after=2&sig=x%2Fy",
            f"{BASE}/items?status=open&after=4"]
        assert all(call.request.headers["Authorization"] == "Bearer s3cret-token" for call in mock.calls)


def test_the_link_header_is_followed() -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{BASE}/orders", params__eq={"per_page": "2"}).respond(json=[{"id": 1}, {"id": 2}], headers={
            "Link": '<https://api.acme.test/v1/orders?per_page=2&page=2>; rel="next", '
                    '<https://api.acme.test/v1/orders?per_page=2&page=3>; rel="last"'})
        mock.get(f"{BASE}/orders", params__eq={"per_page": "2", "page": "2"}).respond(json=[{"id": 3}], headers={
            "Link": '</v1/orders?per_page=2&page=1>; rel="first", </v1/orders?per_page=2&page=1>; rel="prev"'})
        got = list(client().paginate("orders", NextLink(items=None, next_field=None), params={"per_page": 2}))
        assert [o["id"] for o in got] == [1, 2, 3]


def test_a_link_to_another_host_is_refused_before_any_request_goes_there() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/items").respond(json={"data": [1], "next": "https://evil.example/collect?page=2"})
        elsewhere = mock.get("https://evil.example/collect").respond(json={"data": [2], "next": None})
        pages = client().paginate("items", NextLink())
        assert next(pages) == 1
        with pytest.raises(TransientError) as raised:
            next(pages)
        assert str(raised.value) == (
            "Acme GET https://api.acme.test/v1/items: the next page is linked on another host "
            "(https://evil.example); this connection sends its credentials only to https://api.acme.test")
        assert not elsewhere.called


@pytest.mark.parametrize("other", ["http://api.acme.test/v1/items?page=2", "https://api.acme.test:8443/v1/items"])
def test_another_scheme_or_port_is_another_host(other: str) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/items").respond(json={"data": [1], "next": other})
        with pytest.raises(TransientError, match="linked on another host"):
            list(client().paginate("items", NextLink()))
        assert len(mock.calls) == 1


def test_a_link_to_itself_and_a_link_that_is_no_string_are_errors_not_loops() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/items", params__eq={}).respond(json={"data": [1], "next": f"{BASE}/items?p=2"})
        mock.get(f"{BASE}/items", params__eq={"p": "2"}).respond(json={"data": [2], "next": f"{BASE}/items?p=2"})
        with pytest.raises(TransientError, match=r"page 2 links to itself as the next page"):
            list(client().paginate("items", NextLink()))
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/items").respond(json={"data": [1], "next": {"href": "x"}})
        with pytest.raises(TransientError, match=r"the next page's link \{'href': 'x'\} is not a string"):
            list(client().paginate("items", NextLink()))


def test_an_empty_page_ends_the_walk_whatever_it_links() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/items", params__eq={}).respond(json={"data": [1], "next": f"{BASE}/items?p=2"})
        mock.get(f"{BASE}/items", params__eq={"p": "2"}).respond(json={"data": [], "next": f"{BASE}/items?p=3"})
        third = mock.get(f"{BASE}/items", params__eq={"p": "3"}).respond(json={"data": [3]})
        assert list(client().paginate("items", NextLink())) == [1]
        assert not third.called


@pytest.mark.parametrize(("header", "expected"), [
    ('<https://a.test/x?page=2>; rel="next"', "https://a.test/x?page=2"),
    ('<https://a.test/x?page=1>; rel="prev", <https://a.test/x?page=3>; rel=next', "https://a.test/x?page=3"),
    ('<https://a.test/x?a=1,2>; rel="next last"', "https://a.test/x?a=1,2"),
    ('<https://a.test/x?page=9>; rel="last"', None),
    ("", None),
    (None, None),
])
def test_link_header_next(header: str | None, expected: str | None) -> None:
    assert link_header_next(header) == expected


def test_a_body_without_items_is_no_page() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"error": "no"}))
        with pytest.raises(TransientError, match="has no 'data'"):
            list(client().paginate("items", NextLink()))
