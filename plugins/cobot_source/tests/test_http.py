"""The connector's HTTP behaviour against Cobot's answers (respx)."""

from __future__ import annotations

import copy
import json
from datetime import date

import httpx
import pytest
import respx
from ledgerlink import (
    BrokenDocument,
    ConnectionError_,
    Customer,
    Document,
    TransientError,
    VendorRejected,
)

V1 = "https://co-up.cobot.me/api"
V2 = "https://api.cobot.me"
SPACE = "99da6cb66b5e6b39007690854fd66df9"
TOKEN = "tok-cobot-secret-1234"


def user_body(subdomain: str = "co-up", admin: bool = True) -> dict:
    spaces = [{"id": SPACE, "type": "spaces", "attributes": {"name": "co.up", "subdomain": subdomain}}]
    return {
        "data": {"id": "u1", "type": "users", "attributes": {"email": "joe@cobot.me"},
                 "relationships": {"adminOf": {"data": [{"id": SPACE, "type": "spaces"}] if admin else []}}},
        "included": spaces if admin else [],
    }


def page(items: list, number: int, total: int) -> dict:
    return {"data": items, "meta": {"totalPages": total, "currentPage": number},
            "links": {"self": "s", "first": "f", "next": "n" if number < total else None}}


@pytest.fixture
def api():
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        mock.get(f"{V2}/user").respond(json=user_body())
        yield mock


# -- check() -------------------------------------------------------------------
def test_check_describes_the_space(api, cobot):
    invoices = api.get(f"{V2}/spaces/{SPACE}/invoices").respond(json=page([], 1, 1))
    api.get(f"{V1}/subscriptions").respond(json=[{"id": "s1", "event": "confirmed_membership"}])
    line = cobot().check()
    assert "co.up" in line and SPACE in line and "joe@cobot.me" in line and "1 webhook" in line
    sent = invoices.calls[0].request
    assert sent.headers["Accept"] == "application/vnd.api+json"
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"


def test_check_wrong_token(cobot):
    with respx.mock:
        respx.get(f"{V2}/user").respond(401, json={"errors": [{"status": "401", "detail": "invalid token"}]})
        with pytest.raises(ConnectionError_) as err:
            cobot().check()
    text = str(err.value)
    assert "rejected the access token (HTTP 401" in text and "create a new token" in text
    assert TOKEN not in text and "\n" not in text


def test_check_missing_scope_names_it(api, cobot):
    api.get(f"{V2}/spaces/{SPACE}/invoices").respond(
        403, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="read_invoices"'},
        json={"errors": [{"status": "403", "detail": "Forbidden"}]},
    )
    with pytest.raises(ConnectionError_) as err:
        cobot().check()
    assert "lacks the scope 'read_invoices' needed for listing invoices" in str(err.value)


def test_check_missing_scope_api1_from_body(api, cobot):
    api.get(f"{V2}/spaces/{SPACE}/invoices").respond(json=page([], 1, 1))
    api.get(f"{V1}/subscriptions").respond(403, json={"error": "insufficient scope: requires read_subscriptions"})
    with pytest.raises(ConnectionError_) as err:
        cobot().check()
    assert "lacks the scope 'read_subscriptions'" in str(err.value) and "API 1" in str(err.value)


def test_check_user_not_admin_of_space(cobot):
    with respx.mock:
        respx.get(f"{V2}/user").respond(json=user_body(admin=False))
        with pytest.raises(ConnectionError_) as err:
            cobot().check()
    assert "joe@cobot.me is not an admin of the space 'co-up' (admin of: none)" in str(err.value)


def test_check_user_admin_of_other_space(cobot):
    with respx.mock:
        respx.get(f"{V2}/user").respond(json=user_body(subdomain="other-space"))
        with pytest.raises(ConnectionError_) as err:
            cobot().check()
    assert "not an admin of the space 'co-up' (admin of: 'other-space')" in str(err.value)


def test_check_not_admin_403(api, cobot):
    api.get(f"{V2}/spaces/{SPACE}/invoices").respond(
        403, json={"errors": [{"status": "403", "detail": "You must be an admin of this space."}]})
    with pytest.raises(ConnectionError_) as err:
        cobot().check()
    assert "joe@cobot.me is not an admin of the space 'co-up'" in str(err.value)
    assert "You must be an admin" in str(err.value)


def test_wrong_space_id_setting(api, cobot):
    with pytest.raises(ConnectionError_, match="space_id 'abc' is not the space 'co-up'"):
        cobot(space_id="abc").check()


# -- invoices: paging and windows ------------------------------------------------
def _inv(seed, n, new_id=None, day=None):
    inv = copy.deepcopy(seed["invoices"][n])
    if new_id:
        inv["id"] = new_id
        inv["attributes"]["number"] = f"N-{new_id}"
    if day:
        inv["attributes"]["invoiceDate"] = day
    return inv


def test_paging_follows_pages_until_next_is_null(api, cobot, seed):
    invs = [_inv(seed, 0, f"id{i}", "2024-02-01") for i in range(5)]
    pages = {1: page(invs[:2], 1, 3), 2: page(invs[2:4], 2, 3), 3: page(invs[4:], 3, 3)}

    def answer(request):
        number = int(request.url.params["page[number]"])
        assert request.url.params["page[size]"] == "2"
        return httpx.Response(200, json=pages[number])

    route = api.get(f"{V2}/spaces/{SPACE}/invoices").mock(side_effect=answer)
    docs = list(cobot(page_size=2, window_days=366).documents_between(date(2024, 1, 1), date(2024, 12, 31)))
    assert [d.source_ref for d in docs] == [f"id{i}" for i in range(5)]
    assert route.call_count == 3


def test_paging_stops_at_total_pages_and_at_a_null_next(api, cobot, seed):
    invs = [_inv(seed, 0, f"id{i}", "2024-02-01") for i in range(6)]
    answers = [page(invs[:2], 1, 2), {**page(invs[2:4], 2, 2), "links": {"next": "n"}}]  # next set, total says 2
    route = api.get(f"{V2}/spaces/{SPACE}/invoices").mock(side_effect=[httpx.Response(200, json=a) for a in answers])
    docs = list(cobot(page_size=2, window_days=366).documents_between(date(2024, 1, 1), date(2024, 12, 31)))
    assert [d.source_ref for d in docs] == ["id0", "id1", "id2", "id3"] and route.call_count == 2
    no_total = [{**page(invs[:2], 1, 9)}, {**page(invs[2:4], 2, 9), "links": {"next": None}}]
    route.side_effect = [httpx.Response(200, json=a) for a in no_total]
    docs = list(cobot(page_size=2, window_days=366).documents_between(date(2024, 1, 1), date(2024, 12, 31)))
    assert len(docs) == 4 and route.call_count == 4


def test_a_token_revoked_while_paging_is_one_clear_line(api, cobot, seed):
    invs = [_inv(seed, 0, f"id{i}", "2024-02-01") for i in range(3)]
    api.get(f"{V2}/spaces/{SPACE}/invoices").mock(side_effect=[
        httpx.Response(200, json=page(invs[:2], 1, 2)),
        httpx.Response(401, json={"errors": [{"status": "401", "detail": "token revoked"}]}),
    ])
    with pytest.raises(ConnectionError_, match=r"rejected the access token \(HTTP 401 for listing invoices"):
        list(cobot(page_size=2, window_days=366).documents_between(date(2024, 1, 1), date(2024, 12, 31)))


def test_the_two_apis_and_memberships_keep_their_own_limits_in_the_connections_budget(cobot, seed):
    source = cobot(requests_per_second=2, memberships_requests_per_second=0.5)
    v1, v2 = source._client(1), source._client(2)
    assert v1.budget is v2.budget and v1.budget.name == "cobot-test"
    assert v1.rate_limits[0] is not v2.rate_limits[0]
    assert (v1.rate_limits[0].rate, v2.rate_limits[0].rate) == (2, 2)
    with respx.mock:
        respx.get(f"{V1}/memberships").respond(json=seed["memberships"])
        list(source.customers())
    keys = v1.budget.keys()
    memberships = [k for k in keys if k.startswith("cobot:v1:memberships:")]
    assert len(memberships) == 1 and v1.budget.get(memberships[0]).rate == 0.5
    assert TOKEN not in " ".join(keys)  # keys carry a hash of the token, never the token
    source.close()


def test_date_windows_overlap_on_boundary_and_dedupe(api, cobot, seed):
    a = _inv(seed, 0, "a", "2024-01-10")
    b = _inv(seed, 0, "b", "2024-01-11")   # on the boundary day: returned by both windows
    c = _inv(seed, 0, "c", "2024-01-20")
    windows = []

    def answer(request):
        lo, hi = request.url.params["filter[from]"], request.url.params["filter[to]"]
        windows.append((lo, hi))
        data = [i for i in (a, b, c) if lo <= i["attributes"]["invoiceDate"] <= hi]
        return httpx.Response(200, json=page(data, 1, 1))

    api.get(f"{V2}/spaces/{SPACE}/invoices").mock(side_effect=answer)
    docs = list(cobot(window_days=10).documents_between(date(2024, 1, 1), date(2024, 1, 25)))
    assert windows == [("2024-01-01", "2024-01-11"), ("2024-01-11", "2024-01-21"), ("2024-01-21", "2024-01-25")]
    assert [d.source_ref for d in docs] == ["a", "b", "c"]


def test_documents_start_at_cursor_minus_overlap(api, cobot, seed):
    seen = []

    def answer(request):
        seen.append(request.url.params["filter[from]"])
        return httpx.Response(200, json=page([], 1, 1))

    api.get(f"{V2}/spaces/{SPACE}/invoices").mock(side_effect=answer)
    list(cobot(window_days=366, overlap_days=3, recheck_days=0).documents("2024-03-10"))
    assert seen[0] == "2024-03-07"
    # The default re-reads a quarter before the cursor (cancellations after transfer),
    # never before start_date.
    seen.clear()
    list(cobot(window_days=366, start_date="2023-01-01").documents("2024-06-30"))
    assert seen[0] == "2024-03-30"
    seen.clear()
    list(cobot(window_days=366).documents("2024-03-10"))
    assert seen[0] == "2024-01-01"
    seen.clear()
    list(cobot(window_days=366).documents(None))
    assert seen[0] == "2024-01-01"
    seen.clear()
    list(cobot(window_days=366, overlap_days=30).documents("2024-01-05"))  # never before start_date
    assert seen[0] == "2024-01-01"


def test_documents_yield_skip_reason_and_broken(api, cobot, seed):
    bad = _inv(seed, 0, "bad", "2024-02-02")
    bad["attributes"]["items"][0]["quantity"] = "x"
    other_space = _inv(seed, 0, "foreign", "2024-02-03")
    other_space["relationships"]["space"]["data"]["id"] = "elsewhere"
    api.get(f"{V2}/spaces/{SPACE}/invoices").respond(
        json=page([seed["invoices"][1], bad, other_space], 1, 1))
    items = list(cobot(window_days=366).documents_between(date(2024, 1, 1), date(2024, 12, 31)))
    assert [i.source_ref for i in items] == ["bad", "f0000000000000000000000000000002"]
    assert isinstance(items[0], BrokenDocument) and "quantity 'x' is not a number" in items[0].reason
    assert items[1].skip_reason.startswith("lines without accounting code: 2 ('Day pass')")


def test_rate_limit_is_waited_out(api, cobot, seed):
    route = api.get(f"{V2}/spaces/{SPACE}/invoices")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "0"}, json={"errors": [{"detail": "rate limited"}]}),
        httpx.Response(500, text="oops"),
        httpx.Response(200, json=page([seed["invoices"][0]], 1, 1)),
    ]
    docs = list(cobot(window_days=366).documents_between(date(2024, 1, 1), date(2024, 12, 31)))
    assert [d.source_ref for d in docs] == ["f0000000000000000000000000000001"]
    assert route.call_count == 3


def test_error_inside_200_is_not_data(api, cobot):
    api.get(f"{V2}/spaces/{SPACE}/invoices").respond(200, json={"errors": [{"detail": "backend unavailable"}]})
    with pytest.raises(TransientError, match="backend unavailable"):
        list(cobot(window_days=366).documents_between(date(2024, 1, 1), date(2024, 1, 2)))


def test_html_page_is_a_clear_error(api, cobot):
    api.get(f"{V2}/spaces/{SPACE}/invoices").respond(200, html="<html><body>Maintenance</body></html>")
    with pytest.raises(TransientError, match="HTML page instead of JSON"):
        list(cobot(window_days=366).documents_between(date(2024, 1, 1), date(2024, 1, 2)))


def test_single_invoice(api, cobot, seed):
    api.get(f"{V2}/invoices/f0000000000000000000000000000001").respond(json={"data": seed["invoices"][0]})
    api.get(f"{V2}/invoices/missing").respond(404, json={"errors": [{"detail": "not found"}]})
    doc = cobot().document("f0000000000000000000000000000001")
    assert isinstance(doc, Document) and str(doc.total_gross) == "334.39"
    assert cobot().document("missing") is None
    assert cobot().document("../user") is None


# -- members and write-back ------------------------------------------------------------
def test_customers_only_confirmed_and_after_start(cobot, seed):
    with respx.mock:
        respx.get(f"{V1}/memberships").respond(json=seed["memberships"] + [{"name": "no id"}])
        source = cobot()
        ids = [c.source_id for c in source.customers()]
        assert ids == ["a1b2c3d4e5f60718293a4b5c6d7e8f90", "b1b2c3d4e5f60718293a4b5c6d7e8f91"]
        backfill = [c.source_id[:2] for c in source.customers(include_before_start=True)]
        assert backfill == ["c1", "a1", "b1"]


def test_write_customer_number_puts_to_the_membership(cobot):
    customer = Customer(source_id="a1b2", extra={"debitor_type": "memberships"})
    with respx.mock:
        route = respx.put(f"{V1}/memberships/a1b2").respond(json={"id": "a1b2", "customer_number": "K-1001"})
        cobot().write_customer_number(customer, "K-1001")
        assert json.loads(route.calls[0].request.content) == {"customer_number": "K-1001"}
        respx.put(f"{V1}/memberships/a1b2").respond(json={"id": "a1b2", "customer_number": "1001"})
        with pytest.raises(VendorRejected, match="still shows '1001'"):
            cobot().write_customer_number(customer, "K-1001")
        respx.put(f"{V1}/memberships/a1b2").respond(422, json={"errors": {"customer_number": ["is taken"]}})
        with pytest.raises(VendorRejected, match="customer_number is taken"):
            cobot().write_customer_number(customer, "K-1001")
        respx.put(f"{V1}/memberships/a1b2").respond(
            403, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="write_memberships"'})
        with pytest.raises(ConnectionError_, match="lacks the scope 'write_memberships'"):
            cobot().write_customer_number(customer, "K-1001")


def test_subscribe_409_is_fine(cobot):
    existing = {"id": "s1", "event": "confirmed_membership", "callback_url": "https://h.example/c", "active": True}
    with respx.mock:
        respx.post(f"{V1}/subscriptions").respond(409, json={"error": "exists"})
        respx.get(f"{V1}/subscriptions").respond(json=[existing])
        assert cobot().subscribe("https://h.example/c", "confirmed_membership") == existing
    with pytest.raises(ValueError, match="not a Cobot webhook event"):
        cobot().subscribe("https://h.example/c", "confirmed_members")


# -- webhook payloads -------------------------------------------------------------------
@pytest.mark.parametrize(("url", "expected"), [
    ("https://co-up.cobot.me/api/memberships/a1b2c3", ("customer", "a1b2c3")),
    ("https://CO-UP.cobot.me/api/invoices/f00d", ("document", "f00d")),
    ("https://co-up.cobot.me/api/bookings/123", None),
])
def test_webhook_resource_accepts_the_space(cobot, url, expected):
    resource = cobot().webhook_resource({"url": url})
    assert (resource and (resource.kind, resource.id)) == expected


@pytest.mark.parametrize(("payload", "reason"), [
    ({"url": "https://evil.cobot.me/api/memberships/a1"}, "not on the configured Cobot space co-up.cobot.me"),
    ({"url": "https://co-up.cobot.me.evil.example/api/memberships/a1"}, "not on the configured"),
    ({"url": "http://co-up.cobot.me/api/memberships/a1"}, "does not use https"),
    ({"url": "https://user:pw@co-up.cobot.me/api/memberships/a1"}, "carries credentials"),
    ({"url": "https://co-up.cobot.me/api/memberships/a1?x=1"}, "query or fragment"),
    ({"url": "https://co-up.cobot.me/api/memberships/a1/extra"}, "does not name one membership"),
    ({"url": "https://co-up.cobot.me/api/memberships/a%2F1"}, "invalid id"),
    ({"url": "https://co-up.cobot.me/other/memberships/a1"}, "is not under /api/"),
    ({"url": "https://api.cobot.me/invoices/a1"}, "not on the configured"),
    ({"nope": 1}, "no resource 'url'"),
    (["x"], "not a JSON object"),
])
def test_webhook_resource_rejects(cobot, payload, reason):
    with pytest.raises(ValueError, match=reason.replace("?", r"\?")):
        cobot().webhook_resource(payload)
