"""The HTTP layer against respx: OAuth 2 client credentials and token renewal, Basic auth,
1CRM's error shapes, the list envelope, and the status write-back."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from ledgerlink import ConnectionError_, MappedStatus, Status, TransientError
from ledgerlink_onecrm.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from onecrm_helpers import BASE, make_source

TOKEN_URL = f"{BASE}/auth/user/access_token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token(access: str, *, expires: int = 3600, refresh: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"token_type": "Bearer", "expires_in": expires, "access_token": access}
    if refresh:
        body["refresh_token"] = refresh
    return httpx.Response(200, json=body)


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False)


def source_on(router: respx.MockRouter, **settings: Any) -> Any:
    return make_source(httpx.MockTransport(router.handler), **settings)


def me_route(router: respx.MockRouter) -> Any:
    return router.get(f"{BASE}/me").mock(return_value=httpx.Response(200, json={"id": "Users:1", "name": "Anna"}))


def test_client_credentials_token_asked_once_as_json_and_sent_as_bearer(router: respx.MockRouter) -> None:
    grant = router.post(TOKEN_URL).mock(return_value=token("tok-1"))
    me = me_route(router)
    router.get(f"{BASE}/meta/fields/Invoice").mock(return_value=httpx.Response(200, json={"fields": {
        "bilendo_status_c": {}}}))
    source = source_on(router)
    try:
        said = source.check()
        source.check()
    finally:
        source.close()
    assert said == ("1CRM at crm.test: signed in as Anna (OAuth 2 client ledgerlink-demo-client); status written "
                    "to Invoice.bilendo_status_c")
    assert grant.call_count == 1
    sent = json.loads(grant.calls[0].request.content)
    assert sent == {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID,
                    "client_secret": DEMO_CLIENT_SECRET, "scope": "read write"}
    assert grant.calls[0].request.headers["content-type"] == "application/json"
    assert [c.request.headers["authorization"] for c in me.calls] == ["Bearer tok-1", "Bearer tok-1"]


def test_an_expired_token_is_refreshed_and_a_refused_refresh_falls_back_to_the_grant(router: respx.MockRouter) -> None:
    answers = iter([token("tok-1", expires=100, refresh="ref-1"), token("tok-2", expires=100, refresh="ref-2"),
                    httpx.Response(401, json={"error": "invalid_request", "message": "The refresh token is invalid."}),
                    token("tok-3")])
    grant = router.post(TOKEN_URL).mock(side_effect=lambda request: next(answers))
    me = me_route(router)
    source = source_on(router)
    clock = Clock()
    try:
        source.http  # noqa: B018  (builds the clients)
        source.oauth.clock = clock
        source.http.get("me")
        clock.now += 69  # 30 s before the end: still used
        source.http.get("me")
        clock.now += 2
        source.http.get("me")  # refreshed with ref-1
        clock.now += 100
        source.http.get("me")  # ref-2 refused: client credentials again
    finally:
        source.close()
    grants = [json.loads(c.request.content) for c in grant.calls]
    assert [g["grant_type"] for g in grants] == ["client_credentials", "refresh_token", "refresh_token",
                                                 "client_credentials"]
    assert [g.get("refresh_token") for g in grants] == [None, "ref-1", "ref-2", None]
    assert [c.request.headers["authorization"] for c in me.calls] == [
        "Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-3"]


def test_a_token_revoked_while_valid_is_renewed_once_and_the_call_repeated(router: respx.MockRouter) -> None:
    answers = iter([token("tok-1"), token("tok-2")])
    router.post(TOKEN_URL).mock(side_effect=lambda request: next(answers))
    seen: list[str] = []

    def me(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])  # the request object is re-sent with the new header
        if seen[-1] == "Bearer tok-2":
            return httpx.Response(200, json={"id": "Users:1"})
        return httpx.Response(401, json={"error": "access_denied", "message": "denied"})

    router.get(f"{BASE}/me").mock(side_effect=me)
    source = source_on(router)
    try:
        assert source.http.get("me").status_code == 200
    finally:
        source.close()
    assert seen == ["Bearer tok-1", "Bearer tok-2"]


def test_a_wrong_client_secret_is_one_clear_line_without_the_secret(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(return_value=httpx.Response(
        401, json={"error": "invalid_client", "message": "Client authentication failed"}))
    source = source_on(router, client_secret="very-secret-value-42")
    try:
        with pytest.raises(ConnectionError_) as caught:
            source.check()
    finally:
        source.close()
    text = str(caught.value)
    assert "Client authentication failed" in text and "check client_id and client_secret" in text
    assert "very-secret-value-42" not in text and "\n" not in text


def test_basic_auth_and_its_hint(router: respx.MockRouter) -> None:
    me = router.get(f"{BASE}/me").mock(return_value=httpx.Response(
        401, json={"error": "access_denied", "message": "The resource owner or authorization server denied the "
                   "request.", "hint": "Access token could not be verified"}))
    source = source_on(router, username="admin", password="pw-secret-9")
    try:
        with pytest.raises(ConnectionError_) as caught:
            source.check()
    finally:
        source.close()
    assert me.calls[0].request.headers["authorization"].startswith("Basic ")
    text = str(caught.value)
    assert "Basic auth is enabled for the API" in text and "Access token could not be verified" in text
    assert "pw-secret-9" not in text


def test_an_edition_without_the_api_says_so(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(return_value=token("tok-1"))
    router.get(f"{BASE}/me").mock(return_value=httpx.Response(403, json={
        "message": "The REST API is available in the Professional and Enterprise editions only"}))
    source = source_on(router)
    try:
        with pytest.raises(ConnectionError_, match="Professional and Enterprise editions only"):
            source.check()
    finally:
        source.close()


def test_an_html_page_is_named_as_such(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(return_value=token("tok-1"))
    router.get(f"{BASE}/data/Invoice").mock(return_value=httpx.Response(200, text="<html>Login</html>"))
    source = source_on(router)
    try:
        with pytest.raises(TransientError, match="1CRM sent an HTML page instead of JSON"):
            list(source.documents(None))
    finally:
        source.close()


def test_visual4s_total_count_envelope_ends_the_listing(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(return_value=token("tok-1"))
    pages = router.get(f"{BASE}/data/Account").mock(side_effect=lambda request: httpx.Response(200, json={
        "records": [{"id": f"a{int(request.url.params['offset']) + i}"} for i in range(2)], "total_count": 4}))
    source = source_on(router, page_size=2)
    try:
        found = [r["id"] for r in source._listing("data/Account", ("id",), "accounts")]
    finally:
        source.close()
    assert found == ["a0", "a1", "a2", "a3"]
    assert [c.request.url.params["offset"] for c in pages.calls] == ["0", "2"]
    assert pages.calls[0].request.url.params.get_list("fields[]") == ["id"]


def test_write_status_reads_first_and_patches_only_a_change(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(return_value=token("tok-1"))
    stored = {"bilendo_status_c": None}
    router.get(f"{BASE}/data/Invoice/inv-1").mock(side_effect=lambda request: httpx.Response(200, json={
        "record": {"id": "inv-1", **stored}}))

    def patch(request: httpx.Request) -> httpx.Response:
        stored.update(json.loads(request.content)["data"])
        return httpx.Response(200, json={"result": True})

    patches = router.patch(f"{BASE}/data/Invoice/inv-1").mock(side_effect=patch)
    source = source_on(router)
    status = MappedStatus(Status.REMINDER, "reminder_1", level=1)
    try:
        source.write_status("inv-1", status, "Reminder 1 versendet")
        source.write_status("inv-1", status, "Reminder 1 versendet")  # a repeated write changes nothing
    finally:
        source.close()
    assert patches.call_count == 1
    assert json.loads(patches.calls[0].request.content) == {"data": {"bilendo_status_c": "Reminder 1 versendet"}}


def test_write_status_can_add_a_note(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(return_value=token("tok-1"))
    notes = router.post(f"{BASE}/data/Note").mock(return_value=httpx.Response(200, json={"id": "note-1"}))
    source = source_on(router, status_field=None, status_note=True)
    try:
        source.write_status("inv-1", MappedStatus(Status.PAID, "paid"), "Bezahlt")
    finally:
        source.close()
    assert json.loads(notes.calls[0].request.content) == {"data": {
        "name": "Bilendo: Bezahlt", "description": "Status in Bilendo: Bezahlt (paid)", "parent_type": "Invoice",
        "parent_id": "inv-1"}}

