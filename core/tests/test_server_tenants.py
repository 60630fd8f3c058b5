"""Tenants, auth, secrets and isolation of the service (`ledgerlink serve`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")

from ledgerlink._secrets_store import SecretBox, new_key  # noqa: E402
from ledgerlink._server import create_app  # noqa: E402
from ledgerlink._service import Service  # noqa: E402
from ledgerlink.testing import fake_store  # noqa: E402

from .test_server_api import ADMIN, SECRET, World, doc, tenant_body  # noqa: E402


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = World(tmp_path)
    yield w
    w.service.close()


def test_one_tenants_token_reads_and_changes_nothing_of_another(world: World) -> None:
    acme = world.tenant("acme")
    other = world.tenant("other")
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=acme)
    world.idle()
    base = "/v1/tenants/acme"
    calls = [
        ("get", base, None), ("get", f"{base}/pipelines/invoices/documents", None),
        ("get", f"{base}/pipelines/invoices/documents/order-1", None),
        ("post", f"{base}/pipelines/invoices/documents/order-1/retry", None),
        ("post", f"{base}/pipelines/invoices/documents", doc(2)),
        ("post", f"{base}/pipelines/invoices/backfill", [doc(3)]),
        ("post", f"{base}/pipelines/invoices/match-customers", {"customers": []}),
        ("post", f"{base}/connections/books/check", None),
        ("put", base, tenant_body("stolen")), ("delete", base, None),
        ("post", f"{base}/tokens", {}), ("get", f"{base}/tokens", None),
    ]
    for method, path, body in calls:
        answer = world.client.request(method, path, json=body, headers=other)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["code"] == "forbidden"
    world.idle()
    # the other tenant's own view holds nothing of acme's
    assert world.client.get("/v1/tenants/other/pipelines/invoices/documents", headers=other).json()["documents"] == []
    missing = world.client.get("/v1/tenants/other/pipelines/invoices/documents/order-1", headers=other)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert [w[1] for w in fake_store("acme")["writes"]] == ["order-1"]
    assert fake_store("other")["writes"] == [] and "stolen" not in json.dumps(world.client.get(
        base, headers=acme).json())
    # the same host id in two tenants is two documents, each in its own ledger rows
    world.client.post("/v1/tenants/other/pipelines/invoices/documents", json=doc(1), headers=other)
    world.idle()
    assert [w[1] for w in fake_store("other")["writes"]] == ["order-1"]
    pipelines = {row["pipeline"] for row in world.service.ledger.iter_table("documents")}
    assert pipelines == {"tenant:acme:invoices", "tenant:other:invoices"}


def test_tokens_are_needed_hashed_and_revocable(world: World) -> None:
    auth = world.tenant("acme")
    none = world.client.get("/v1/tenants/acme")
    assert none.status_code == 401 and none.json() == {"code": "unauthorized",
                                                       "message": "send Authorization: Bearer TOKEN"}
    wrong = world.client.get("/v1/tenants/acme", headers={"Authorization": "Bearer llk_0123456789abcdef_nope"})
    assert wrong.status_code == 401
    assert world.client.put("/v1/tenants/x", json=tenant_body("x"), headers=auth).status_code == 403
    token = auth["Authorization"].split()[1]
    stored = list(world.service.ledger.iter_table("service_tokens"))
    assert len(stored) == 1 and token.split("_")[2] not in json.dumps(stored, default=str)
    second = world.client.post("/v1/tenants/acme/tokens", json={}, headers=world.admin()).json()
    listed = world.client.get("/v1/tenants/acme/tokens", headers=world.admin()).json()
    assert [t["revoked"] for t in listed] == [False, False] and "token" not in listed[0]
    assert world.client.delete(f"/v1/tenants/acme/tokens/{stored[0]['id']}", headers=world.admin()).status_code == 204
    assert world.client.get("/v1/tenants/acme", headers=auth).status_code == 401
    assert world.client.get("/v1/tenants/acme", headers={"Authorization": f"Bearer {second['token']}"}).status_code == 200


def test_secrets_are_sent_once_encrypted_at_rest_never_returned(world: World, tmp_path: Path) -> None:
    auth = world.tenant("acme")
    view = world.client.get("/v1/tenants/acme", headers=auth).json()
    assert SECRET not in json.dumps(view) and view["secrets_set"] == {"books": ["token"]}
    assert "token" not in view["connections"]["books"]
    # a PUT without the secret keeps it: the check still passes with the stored token
    body = tenant_body("acme")
    del body["connections"]["books"]["token"]
    assert world.client.put("/v1/tenants/acme", json=body, headers=world.admin()).status_code == 200
    assert world.client.post("/v1/tenants/acme/connections/books/check", headers=auth).json() == {
        "ok": True, "message": "fake target 'acme'"}
    # a wrong secret: the check says so in one line, without the secret
    bad = world.client.put("/v1/tenants/acme", json=tenant_body("acme", token="wrong"), headers=world.admin())
    assert bad.status_code == 200
    check = world.client.post("/v1/tenants/acme/connections/books/check", headers=auth).json()
    assert check["ok"] is False and "rejected the token" in check["message"] and "wrong" not in check["message"]
    world.client.put("/v1/tenants/acme", json=tenant_body("acme"), headers=world.admin())
    world.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=auth)
    world.idle()
    database = (tmp_path / "service.db").read_bytes()
    assert SECRET.encode() not in database
    for table in world.service.ledger.table_names():
        assert SECRET not in json.dumps(list(world.service.ledger.iter_table(table)), default=str), table
    # rotation: a new first key re-encrypts; the old key can then go
    new = new_key()
    rotated = Service(world.url, box=SecretBox([new, world.key]), plugins=world.service.plugins, start=False)
    assert rotated.tenants.rotate() == 1
    rotated.close()
    only_new = Service(world.url, box=SecretBox([new]), plugins=world.service.plugins, start=False)
    assert only_new.check("acme", "books") == (True, "fake target 'acme'")
    only_new.close()


def test_a_tenant_config_is_validated_with_the_config_files_messages(world: World) -> None:
    body = tenant_body("acme")
    body["pipelines"][0]["target"] = "bookz"
    answer = world.client.put("/v1/tenants/acme", json=body, headers=world.admin())
    assert answer.status_code == 422
    assert answer.json() == {"code": "invalid_config", "message": "tenant acme: pipelines[0].target: no connection "
                             "named 'bookz'; did you mean 'books'? (connections: shop, books)"}
    body = tenant_body("acme")
    body["connections"]["books"]["tokn"] = "x"
    message = world.client.put("/v1/tenants/acme", json=body, headers=world.admin()).json()["message"]
    assert message.startswith("tenant acme: connections.books.tokn: unknown key; did you mean 'token'?")
    assert world.client.put("/v1/tenants/Bad Name", json=tenant_body("x"), headers=world.admin()).json()[
        "code"] == "invalid_config"
    assert world.client.get("/v1/tenants/acme", headers=world.admin()).status_code == 404


def test_bodies_are_limited_and_tokens_rate_limited(world: World) -> None:
    auth = world.tenant("acme")
    big = world.client.post("/v1/tenants/acme/pipelines/invoices/documents", content=b"[" + b" " * 300_000 + b"]",
                            headers={**auth, "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == "too_large"
    asgi, _ = create_app(world.service, admin=ADMIN, rate=0.001, burst=3)
    from fastapi.testclient import TestClient

    client = TestClient(asgi)
    codes = [client.get("/v1/tenants/acme", headers=auth).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/v1/tenants/acme", headers=auth)
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert client.get("/v1/tenants/acme", headers=world.admin()).status_code == 200  # per token


def test_delete_removes_the_tenant_and_its_tokens(world: World) -> None:
    auth = world.tenant("acme")
    assert world.client.delete("/v1/tenants/acme", headers=world.admin()).status_code == 204
    assert world.client.get("/v1/tenants/acme", headers=auth).status_code == 401
    assert world.client.get("/v1/tenants/acme", headers=world.admin()).status_code == 404
