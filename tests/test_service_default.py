"""`ledgerlink -c ledgerlink.toml serve`: the config file is the service's tenant `default`.

Its pipelines keep their names (no tenant prefix), on the config's own ledger, so the
CLI sees what the service did and the other way round; the admin token or a token of
the tenant `default` reaches it, another tenant's token does not. The real CLI as a
subprocess, with the fake connectors (LEDGERLINK_FAKE_PLUGINS=1).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")

from ledgerlink._secrets_store import new_key  # noqa: E402
from ledgerlink.testing import sample_document  # noqa: E402

ADMIN = "default-tenant-admin-0123456789"
BOOKS_TOKEN = "books-token-4f1d2c"
LEDGERLINK = str(Path(sys.executable).parent / "ledgerlink")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path) -> Path:
    docs = tmp_path / "orders.json"
    docs.write_text(json.dumps({"documents": [json.loads(sample_document(n, customer=f"c{n}").model_dump_json())
                                              for n in (1, 2)]}))
    config = tmp_path / "ledgerlink.toml"
    config.write_text(f'''
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.shop]
plugin = "fake-source"
file = "{docs}"

[connections.books]
plugin = "fake-target"
store = "books-{tmp_path.name}"
token = "${{BOOKS_TOKEN}}"

[[pipelines]]
name = "orders"
source = "shop"
target = "books"
''')
    return config


def env(key: str) -> dict[str, str]:
    return {**os.environ, "LEDGERLINK_ADMIN_TOKEN": ADMIN, "LEDGERLINK_SECRET_KEYS": key,
            "LEDGERLINK_FAKE_PLUGINS": "1", "BOOKS_TOKEN": BOOKS_TOKEN}


def test_the_config_file_is_the_default_tenant_on_the_clis_ledger(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    key = new_key()
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([LEDGERLINK, "-c", str(config), "serve", "--port", str(port), "--workers", "2"],
                                env=env(key), stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    try:
        for _ in range(600):  # start-up, then its first run of the config's pipeline
            try:
                health = client.get("/health")
                if health.status_code == 200 and health.json()["busy"] == 0:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        tenant = client.get("/v1/tenants/default", headers=admin).json()
        assert tenant["pipelines"] == [{"name": "orders", "source": "shop", "target": "books", "enabled": True}]
        assert BOOKS_TOKEN not in json.dumps(tenant)
        page = client.get("/v1/tenants/default/pipelines/orders/documents", headers=admin).json()
        assert [(d["id"], d["state"]) for d in page["documents"]] == [("order-1", "pushed"), ("order-2", "pushed")]
        # a token of the tenant default reaches it and nothing else; another tenant's token not it
        made = client.post("/v1/tenants/default/tokens", json={"label": "host"}, headers=admin).json()
        own = {"Authorization": f"Bearer {made['token']}"}
        assert client.get("/v1/tenants/default/pipelines/orders/documents/order-1", headers=own).json()[
            "state"] == "pushed"
        acme = {"connections": {"app": {"plugin": "inbox"}, "books": {"plugin": "fake-target", "store": "acme"}},
                "pipelines": [{"name": "orders", "source": "app", "target": "books"}]}
        assert client.put("/v1/tenants/acme", json=acme, headers=admin).status_code == 201
        acme_token = client.post("/v1/tenants/acme/tokens", json={}, headers=admin).json()["token"]
        assert client.get("/v1/tenants/acme", headers=own).status_code == 403
        refused = client.get("/v1/tenants/default/pipelines/orders/documents",
                             headers={"Authorization": f"Bearer {acme_token}"})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        # the file is the tenant: the API neither replaces nor deletes it
        replaced = client.put("/v1/tenants/default", json=acme, headers=admin)
        assert replaced.status_code == 422 and "is the config file" in replaced.json()["message"]
        assert client.delete("/v1/tenants/default", headers=admin).json()["code"] == "conflict"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        client.close()
    assert BOOKS_TOKEN not in log.read_text()
    # the CLI's ledger holds the service's work under the file's own names
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT pipeline, source_ref, state FROM documents ORDER BY source_ref").fetchall()
    assert rows == [("orders", "order-1", "pushed"), ("orders", "order-2", "pushed")]
    status = subprocess.run([LEDGERLINK, "-c", str(config), "status"], env=env(key), capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert status.returncode == 0, status.stderr
    listed = [line.split()[:3] for line in status.stdout.splitlines() if line.startswith("orders ")]
    assert listed == [["orders", "RE-1001", "pushed"], ["orders", "RE-1002", "pushed"]], status.stdout
    # one database: another --ledger than the config's is one line, not a second ledger
    other = subprocess.run([LEDGERLINK, "-c", str(config), "serve", "--port", str(free_port()), "--ledger",
                            f"sqlite:///{tmp_path / 'other.db'}"], env=env(key), capture_output=True, text=True,
                           cwd=tmp_path, timeout=60)
    assert other.returncode != 0
    lines = [line for line in other.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "the service's database is the config's ledger" in lines[0], other.stderr


def test_without_a_config_file_serve_has_no_default_tenant(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from ledgerlink._plugins import PluginManager
    from ledgerlink._secrets_store import SecretBox
    from ledgerlink._server import create_app
    from ledgerlink._service import Service
    from ledgerlink.testing import fake_plugin

    service = Service(f"sqlite:///{tmp_path / 's.db'}", box=SecretBox([new_key()]),
                      plugins=PluginManager([fake_plugin]), workers=1)
    try:
        client = TestClient(create_app(service, admin=ADMIN)[0])
        answer: Any = client.get("/v1/tenants/default", headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"
        assert service.tenant_names() == []
    finally:
        service.close()
