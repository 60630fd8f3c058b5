"""The service for host applications (`ledgerlink serve`): tenants, auth, inbox, status.

In process: FastAPI's TestClient over the real app, the fake target behind it, a
SQLite service database in tmp_path. The worker pool is real; tests wait for it
to be idle (no timing assertions)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")

from fastapi.testclient import TestClient  # noqa: E402
from ledgerlink._plugins import PluginManager  # noqa: E402
from ledgerlink._secrets_store import SecretBox, new_key  # noqa: E402
from ledgerlink._server import create_app  # noqa: E402
from ledgerlink._service import Service  # noqa: E402
from ledgerlink.testing import fake_plugin, fake_store, reset_fake_stores, sample_document  # noqa: E402

from .pg import postgres_url  # noqa: E402

ADMIN = "admin-token-for-tests-0123456789"
SECRET = "books-secret-token-9f8e7d"


def tenant_body(store: str, token: str = SECRET) -> dict[str, Any]:
    return {
        "connections": {"shop": {"plugin": "inbox"}, "books": {"plugin": "fake-target", "store": store, "token": token}},
        "pipelines": [{"name": "invoices", "source": "shop", "target": "books", "matchers": ["name"]}],
    }


class World:
    def __init__(self, tmp_path: Path) -> None:
        reset_fake_stores()
        self.url = f"sqlite:///{tmp_path / 'service.db'}"
        self.key = new_key()
        self.deliveries: list[httpx.Request] = []
        """Event webhooks the service sent (the host's side, in process)."""
        self.refusals: list[int | Exception] = []
        """What the host answers to the next deliveries (a status or an exception); then 204."""
        self.service = Service(self.url, box=SecretBox([self.key]), plugins=PluginManager([fake_plugin]), workers=2,
                               event_backoff=0.01, event_transport=httpx.MockTransport(self._host))
        asgi, self.app = create_app(self.service, admin=ADMIN, max_body=256 * 1024)
        self.client = TestClient(asgi)

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    def tenant(self, name: str, store: str | None = None) -> dict[str, str]:
        answer = self.client.put(f"/v1/tenants/{name}", json=tenant_body(store or name), headers=self.admin())
        assert answer.status_code == 201, answer.text
        token = self.client.post(f"/v1/tenants/{name}/tokens", json={"label": "app"}, headers=self.admin())
        assert token.status_code == 201
        return {"Authorization": f"Bearer {token.json()['token']}"}

    def idle(self) -> None:
        assert self.service.workers.wait_idle(60), "the workers did not finish"

    def _host(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.deliveries.append(request)
        if self.refusals:
            refusal = self.refusals.pop(0)
            if isinstance(refusal, Exception):
                raise refusal
            return httpx.Response(refusal)
        return httpx.Response(204)

    def delivered(self) -> None:
        """Until the outbox is empty (every event delivered or given up)."""
        for _ in range(2000):
            if self.service.events.undelivered() == 0:
                return
            self.service.events.wake.set()
            time.sleep(0.01)
        raise AssertionError("the events were not delivered")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.service.close()


def doc(n: int, **kwargs: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sample_document(n, **kwargs).model_dump_json(exclude={"cursor"}))
    return data


def test_a_posted_document_is_stored_answered_202_and_pushed_once(world: World) -> None:
    auth = world.tenant("acme")
    answer = world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=auth)
    assert answer.status_code == 202, answer.text
    item = answer.json()["documents"][0]
    assert item["id"] == "order-1" and item["received"] == "new"
    assert item["url"].endswith("/v1/tenants/acme/pipelines/invoices/documents/order-1")
    world.idle()
    again = world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=[doc(1)], headers=auth)
    assert again.json()["documents"][0]["received"] == "same"
    world.idle()
    assert [w for w in fake_store("acme")["writes"] if w[0] == "push"] == [("push", "order-1", "d1")]
    status = world.client.get("/v1/tenants/acme/pipelines/invoices/documents/order-1", headers=auth).json()
    assert status["state"] == "pushed" and status["target"] == {"id": "d1", "number": "RE-1001"}
    assert [h["event"] for h in status["history"]] == ["push"]
    page = world.client.get("/v1/tenants/acme/pipelines/invoices/documents?state=pushed", headers=auth).json()
    assert [d["id"] for d in page["documents"]] == ["order-1"] and page["next_cursor"] is None


def test_a_changed_body_after_transfer_is_reported_never_sent_again(world: World) -> None:
    auth = world.tenant("acme")
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=auth)
    world.idle()
    changed = doc(1, gross="129.00")
    answer = world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=changed, headers=auth)
    assert answer.json()["documents"][0]["received"] == "changed"
    world.idle()
    status = world.client.get("/v1/tenants/acme/pipelines/invoices/documents/order-1", headers=auth).json()
    assert status["state"] == "pushed"
    assert status["changed"].startswith("changed after transfer")
    assert len([w for w in fake_store("acme")["writes"] if w[0] == "push"]) == 1


def test_twenty_concurrent_posts_of_one_document_land_once(world: World) -> None:
    auth = world.tenant("acme")
    answers: list[str] = []
    barrier = threading.Barrier(20)

    def post() -> None:
        barrier.wait()
        reply = world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(7), headers=auth)
        assert reply.status_code == 202, reply.text
        answers.append(reply.json()["documents"][0]["received"])

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    world.idle()
    assert sorted(answers) == ["new"] + ["same"] * 19
    assert [w for w in fake_store("acme")["writes"] if w[0] == "push"] == [("push", "order-7", "d1")]
    page = world.client.get("/v1/tenants/acme/pipelines/invoices/documents", headers=auth).json()
    assert [(d["id"], d["state"]) for d in page["documents"]] == [("order-7", "pushed")]


@pytest.mark.postgres
def test_the_service_works_on_postgresql(tmp_path: Path) -> None:
    import secrets

    url = postgres_url()
    reset_fake_stores()
    service = Service(url, box=SecretBox([new_key()]), plugins=PluginManager([fake_plugin]), workers=2)
    try:
        client = TestClient(create_app(service, admin=ADMIN)[0])
        admin = {"Authorization": f"Bearer {ADMIN}"}
        name = f"pg-{secrets.token_hex(4)}"  # the database is shared: a tenant of its own
        assert client.put(f"/v1/tenants/{name}", json=tenant_body(name), headers=admin).status_code == 201
        barrier = threading.Barrier(10)

        def post() -> None:
            barrier.wait()
            reply = client.post(f"/v1/tenants/{name}/pipelines/invoices/documents", json=[doc(1), doc(2)],
                                headers=admin)
            assert reply.status_code == 202, reply.text

        threads = [threading.Thread(target=post) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert service.workers.wait_idle(60)
        assert sorted(w[1] for w in fake_store(name)["writes"] if w[0] == "push") == ["order-1", "order-2"]
        page = client.get(f"/v1/tenants/{name}/pipelines/invoices/documents", headers=admin).json()
        assert [(d["id"], d["state"]) for d in page["documents"]] == [("order-1", "pushed"), ("order-2", "pushed")]
        client.delete(f"/v1/tenants/{name}", headers=admin)
    finally:
        service.close()
