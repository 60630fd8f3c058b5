"""The status page's sessions, views and forms (in process; the browser test is tests/test_status_page.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")
pytest.importorskip("jinja2", reason="the status page needs ledgerlink[server]")

from fastapi.testclient import TestClient  # noqa: E402
from ledgerlink._pages import COOKIE  # noqa: E402
from ledgerlink.testing import fake_store  # noqa: E402

from .test_server_api import ADMIN, SECRET, World, doc, tenant_body  # noqa: E402


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = World(tmp_path)
    yield w
    w.service.close()


def sign_in(world: World, token: str) -> TestClient:
    browser = TestClient(world.client.app, base_url="http://testserver")
    answer = browser.post("/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
    return browser


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def quarantining(store: str) -> dict[str, Any]:
    body = tenant_body(store)
    body["pipelines"][0]["rules"] = [{"when": {"tax_rate": "7"}, "account": "8300"}]
    return body


def test_the_session_cookie_holds_no_token_and_the_page_no_secret(world: World) -> None:
    world.tenant("acme")
    assert world.client.get("/", follow_redirects=False).headers["location"] == "/login"
    refused = world.client.post("/login", data={"token": "nope"})
    assert refused.status_code == 401 and "unknown or revoked" in refused.text
    answer = world.client.post("/login", data={"token": ADMIN}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and ADMIN not in cookie
    page = world.client.get("/")
    assert page.status_code == 200 and "<h1>Status</h1>" in page.text
    assert SECRET not in page.text and ADMIN not in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # no script may run at all
    assert "/login" not in world.client.get("/openapi.json").text  # HTML pages are not API operations


def test_a_tenant_session_sees_and_retries_only_its_tenant(world: World) -> None:
    world.tenant("acme")
    other = world.tenant("other")
    world.client.put("/v1/tenants/acme", json=quarantining("acme"), headers=world.admin())
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=world.admin())
    world.idle()
    browser = sign_in(world, other["Authorization"].split()[1])
    page = browser.get("/").text
    assert "acme" not in page and "other / invoices" in page
    assert "no pipeline &#39;acme:invoices&#39; among the tenants shown" in browser.get("/?pipeline=acme:invoices").text
    stolen = browser.post("/retry", data={"csrf": csrf(page), "pipeline": "acme:invoices", "document": "order-1"})
    assert stolen.status_code == 403 and stolen.json()["code"] == "forbidden"
    admin = sign_in(world, ADMIN)
    overview = admin.get("/?pipeline=acme:invoices&state=quarantined").text
    assert "acme / invoices" in overview and "other / invoices" in overview
    assert "no rule of pipeline &#39;invoices&#39; books line 1" in overview and 'aria-label="Retry order-1"' in overview


def test_retry_needs_the_sessions_csrf_token_and_this_origin(world: World) -> None:
    world.tenant("acme")
    world.client.put("/v1/tenants/acme", json=quarantining("acme"), headers=world.admin())
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=world.admin())
    world.idle()
    browser = sign_in(world, ADMIN)
    overview = browser.get("/").text
    token = csrf(overview)
    # each pipeline's last run and how it ended, as `status --tenants` (the run that quarantined
    # it ended partial; a later run with nothing new, started by the tenant's update, ok)
    [(name, last)] = [(k, v) for k, v in world.service.ledger.last_runs().items() if k.endswith("invoices")]
    assert last.outcome in ("partial", "ok"), (name, last.outcome)
    assert "Last run (UTC)" in overview and f'<span class="muted">{last.outcome}</span>' in overview
    form = {"pipeline": "acme:invoices", "document": "order-1"}
    assert browser.post("/retry", data=form).json()["code"] == "forbidden"
    assert browser.post("/retry", data={**form, "csrf": "forged"}).status_code == 403
    foreign = browser.post("/retry", data={**form, "csrf": token}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json() == {"code": "forbidden",
                                                             "message": "a form of another site cannot post here"}
    anonymous = TestClient(world.client.app).post("/retry", data={**form, "csrf": token})
    assert anonymous.status_code == 401
    world.client.put("/v1/tenants/acme", json=tenant_body("acme"), headers=world.admin())  # the cause fixed
    done = browser.post("/retry", data={**form, "csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    world.idle()
    page = browser.get(done.headers["location"]).text
    assert "order-1: retry queued." in page and 'class="state state-pushed">pushed' in page
    missing = browser.post("/retry", data={**form, "document": "order-404", "csrf": token})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_revoking_the_token_or_signing_out_ends_the_session(world: World) -> None:
    auth = world.tenant("acme")
    browser = sign_in(world, auth["Authorization"].split()[1])
    assert browser.get("/", follow_redirects=False).status_code == 200
    ident = world.client.get("/v1/tenants/acme/tokens", headers=world.admin()).json()[0]["id"]
    world.client.delete(f"/v1/tenants/acme/tokens/{ident}", headers=world.admin())
    assert browser.get("/", follow_redirects=False).headers["location"] == "/login"
    admin = sign_in(world, ADMIN)
    page = admin.get("/").text
    assert admin.post("/logout", data={"csrf": csrf(page)}, follow_redirects=False).status_code == 303
    assert admin.cookies.get(COOKIE) is None
    assert admin.get("/", follow_redirects=False).headers["location"] == "/login"


def test_a_refused_payment_is_shown_and_booked_again_from_the_page(world: World) -> None:
    from ledgerlink import QuarantineError

    body = tenant_body("acme")
    body["pipelines"][0]["payment_reconciliation"] = "source"
    assert world.client.put("/v1/tenants/acme", json=body, headers=world.admin()).status_code in (200, 201)
    url = "/v1/tenants/acme/pipelines/invoices/documents"
    world.client.post(url, json=doc(1), headers=world.admin())
    world.idle()
    why = "a CHF payment needs a check account in CHF: map one"
    fake_store("acme")["fail_payment"] = [QuarantineError(why)]
    world.client.post(url, json=doc(1, paid=True), headers=world.admin())  # paid later
    world.idle()
    status = world.client.get(f"{url}/order-1", headers=world.admin()).json()
    assert status["state"] == "pushed" and status["payment_refused"] is True
    assert status["reason"] == f"payment not booked: {why}"
    assert fake_store("acme")["payments"] == []

    browser = sign_in(world, ADMIN)
    page = browser.get("/?pipeline=acme:invoices").text
    assert f"payment not booked: {why}" in page and 'aria-label="Book the payment of order-1 again"' in page
    booked = browser.post("/retry", data={"csrf": csrf(page), "pipeline": "acme:invoices", "document": "order-1"},
                          follow_redirects=False)
    assert booked.status_code == 303
    world.idle()
    assert len(fake_store("acme")["payments"]) == 1
    after = world.client.get(f"{url}/order-1", headers=world.admin()).json()
    assert after["payment_refused"] is False and "payment not booked" not in (after["reason"] or "")
    assert "Book the payment of order-1" not in browser.get("/?pipeline=acme:invoices").text
