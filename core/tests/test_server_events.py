"""Events back to the host: a signed webhook on every state change, retried, durable."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")

from fastapi.testclient import TestClient  # noqa: E402
from ledgerlink._events import MAX_ATTEMPTS  # noqa: E402
from ledgerlink._plugins import PluginManager  # noqa: E402
from ledgerlink._secrets_store import SecretBox  # noqa: E402
from ledgerlink._server import create_app  # noqa: E402
from ledgerlink._service import Service  # noqa: E402
from ledgerlink.testing import fake_plugin, fake_store  # noqa: E402

from .test_server_api import ADMIN, World, doc, tenant_body  # noqa: E402

SIGNING = "host-signing-secret-5b2c9e0d"
HOOK = "https://host.example/ledgerlink/events"


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = World(tmp_path)
    yield w
    w.service.close()


def ruled(store: str, *rates: str) -> dict[str, Any]:
    body = tenant_body(store)
    body["pipelines"][0]["rules"] = [{"when": {"tax_rate": r}, "account": "8400"} for r in rates]
    return body


def verified(request: httpx.Request) -> dict[str, Any]:
    """The event's body, after checking its signature as the host would."""
    expected = "sha256=" + hmac.new(SIGNING.encode(), request.content, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Ledgerlink-Signature"], expected)
    body: dict[str, Any] = json.loads(request.content)
    assert request.headers["X-Ledgerlink-Event"] == body["type"]
    assert request.headers["X-Ledgerlink-Delivery"] == body["id"]
    assert str(request.url) == HOOK
    return body


def test_every_state_change_is_posted_signed_to_the_host(world: World) -> None:
    auth = world.tenant("acme")
    admin = world.admin()
    world.client.put("/v1/tenants/acme", json=ruled("acme", "19"), headers=admin)
    assert world.client.put("/v1/tenants/acme/events", json={"url": HOOK, "secret": SIGNING},
                            headers=auth).status_code == 403  # the service calls this URL: the admin sets it
    made = world.client.put("/v1/tenants/acme/events", json={"url": HOOK, "secret": SIGNING}, headers=admin)
    assert made.status_code == 200 and made.json()["secret_set"] is True and SIGNING not in made.text
    base = "/v1/tenants/acme/pipelines/invoices"
    world.client.post(f"{base}/documents", json=[doc(1), doc(2, rate="7")], headers=auth)
    world.idle()
    world.client.put("/v1/tenants/acme", json=ruled("acme", "19", "7"), headers=admin)  # the cause fixed
    world.client.post(f"{base}/documents/order-2/retry", headers=auth)
    world.idle()
    world.client.post(f"{base}/documents", json=doc(1, gross="129.00"), headers=auth)
    world.idle()
    world.delivered()
    events = [verified(r) for r in world.deliveries]
    seen = [(e["document"]["id"], e["type"], e["document"]["state"]) for e in events]
    assert sorted(seen[:2]) == [("order-1", "document.received", "queued"), ("order-2", "document.received", "queued")]
    assert sorted(seen[2:4]) == [("order-1", "document.pushed", "pushed"),
                                 ("order-2", "document.quarantined", "quarantined")]
    assert seen[4:] == [("order-2", "document.pushed", "pushed"), ("order-1", "document.received", "queued"),
                        ("order-1", "document.changed", "pushed")]
    quarantined = next(e for e in events if e["type"] == "document.quarantined")
    assert quarantined["tenant"] == "acme" and quarantined["pipeline"] == "invoices"
    assert quarantined["document"]["reason"].startswith("no rule of pipeline 'invoices' books line 1")
    assert next(e for e in events if e["type"] == "document.changed")["document"]["reason"].startswith(
        "changed after transfer")
    assert len({e["id"] for e in events}) == len(events)
    view = world.client.get("/v1/tenants/acme/events", headers=auth).json()
    assert view == {"url": HOOK, "secret_set": True, "delivered": 7, "undelivered": 0, "given_up": 0,
                    "last_error": None}
    stored = json.dumps(list(world.service.ledger.iter_table("service_event_targets")), default=str)
    assert SIGNING not in stored and HOOK in stored
    # another tenant's documents send nothing to acme's host
    other = world.tenant("other")
    world.client.post("/v1/tenants/other/pipelines/invoices/documents", json=doc(5), headers=other)
    world.idle()
    world.delivered()
    assert len(world.deliveries) == 7


def test_a_failing_host_is_retried_with_backoff_and_never_holds_up_a_transfer(world: World) -> None:
    auth = world.tenant("acme")
    world.client.put("/v1/tenants/acme/events", json={"url": HOOK, "secret": SIGNING}, headers=world.admin())
    world.refusals = [500, httpx.ConnectError("connection refused"), 503]
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=auth)
    world.idle()
    assert [w[1] for w in fake_store("acme")["writes"]] == ["order-1"]
    world.delivered()
    assert world.service.events.undelivered() == 0
    sent = [(verified(r)["type"]) for r in world.deliveries]
    # the first event failed three times, then went; each delivery of one event is the same body
    assert sent.count("document.received") + sent.count("document.pushed") == len(sent) == 5
    bodies = {r.headers["X-Ledgerlink-Delivery"]: r.content for r in world.deliveries}
    assert len(bodies) == 2
    attempts = [r["attempts"] for r in world.service.ledger.iter_table("service_events")]
    assert sorted(attempts)[0] >= 1 and sum(attempts) == 5  # three failures, then each delivered once
    # a host that never answers: given up after MAX_ATTEMPTS, kept with the last error
    world.service.sender.max_delay = 0.02
    world.refusals = [500] * (2 * MAX_ATTEMPTS)
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1, gross="150.00"), headers=auth)
    world.idle()
    world.delivered()
    view = world.client.get("/v1/tenants/acme/events", headers=auth).json()
    assert view["given_up"] == 2 and view["undelivered"] == 0  # received (changed) and changed
    given_up = [r for r in world.service.ledger.iter_table("service_events") if r["given_up_at"]]
    assert [(r["attempts"], r["last_error"]) for r in given_up] == [(MAX_ATTEMPTS, "HTTP 500")] * 2
    # an outbox that cannot record does not fail the transfer
    def broken(*_: Any) -> int:
        raise RuntimeError("disk full")

    world.service.events.record = broken  # type: ignore[method-assign]
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(3), headers=auth)
    world.idle()
    page = world.client.get("/v1/tenants/acme/pipelines/invoices/documents/order-3", headers=auth).json()
    assert page["state"] == "pushed"


def test_undelivered_events_survive_a_restart(world: World, tmp_path: Path) -> None:
    auth = world.tenant("acme")
    world.client.put("/v1/tenants/acme/events", json={"url": HOOK, "secret": SIGNING}, headers=world.admin())
    world.service.sender.stop()  # the process "dies" before it delivers anything
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=[doc(1), doc(2)], headers=auth)
    world.idle()
    assert world.deliveries == [] and world.service.events.undelivered() == 4
    world.service.workers.stop()
    received: list[httpx.Request] = []

    def host(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    again = Service(world.url, box=SecretBox([world.key]), plugins=PluginManager([fake_plugin]), workers=1,
                    event_backoff=0.01, event_transport=httpx.MockTransport(host))
    try:
        for _ in range(2000):
            if again.events.undelivered() == 0:
                break
            again.events.wake.wait(0.01)
        assert again.events.undelivered() == 0
        assert sorted((verified(r)["document"]["id"], verified(r)["type"]) for r in received) == [
            ("order-1", "document.pushed"), ("order-1", "document.received"),
            ("order-2", "document.pushed"), ("order-2", "document.received")]
    finally:
        again.close()


def test_the_webhook_is_set_once_kept_rotated_and_removed(world: World) -> None:
    auth = world.tenant("acme")
    admin = world.admin()
    first = world.client.put("/v1/tenants/acme/events", json={"url": HOOK}, headers=admin)
    assert first.status_code == 422 and first.json()["code"] == "invalid_request"
    bad = world.client.put("/v1/tenants/acme/events", json={"url": "ftp://x", "secret": SIGNING}, headers=admin)
    assert bad.status_code == 422 and bad.json()["message"].startswith("url:")
    assert world.client.get("/v1/tenants/acme/events", headers=auth).status_code == 404
    world.client.put("/v1/tenants/acme/events", json={"url": HOOK, "secret": SIGNING}, headers=admin)
    moved = world.client.put("/v1/tenants/acme/events", json={"url": HOOK + "/v2"}, headers=admin)
    assert moved.status_code == 200 and moved.json()["url"] == HOOK + "/v2"
    assert world.service.events.target("acme") == (HOOK + "/v2", SIGNING)  # the secret stayed
    rotated = world.client.post("/v1/admin/rotate-secrets", headers=admin).json()["rotated"]
    assert rotated == 2  # the connection's token and the signing secret
    assert world.client.delete("/v1/tenants/acme/events", headers=auth).status_code == 403
    assert world.client.delete("/v1/tenants/acme/events", headers=admin).status_code == 204
    assert world.service.events.target("acme") is None
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=auth)
    world.idle()
    assert list(world.service.ledger.iter_table("service_events")) == [] and world.deliveries == []
    # a deleted tenant takes its webhook along
    world.client.put("/v1/tenants/acme/events", json={"url": HOOK, "secret": SIGNING}, headers=admin)
    world.client.delete("/v1/tenants/acme", headers=admin)
    assert world.service.events.target("acme") is None
    assert TestClient(create_app(world.service, admin=ADMIN)[0]).get(
        "/v1/tenants/acme/events", headers=admin).status_code == 404
