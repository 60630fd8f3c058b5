"""`ledgerlink -c ledgerlink.toml serve`: the config's source webhooks in the service's own process.

The Cobot and sevDesk sandboxes run on loopback in this process; the real CLI
`ledgerlink -c FILE serve` runs as a subprocess. A Cobot webhook for a new invoice,
delivered by the Cobot sandbox to the callback `/webhooks/<secret from --secret-file>`,
puts the invoice in sevDesk once; a wrong secret is 404; the API, /health and the
status page answer in the same process; the webhook route is not in the OpenAPI document.
Every fact is read back from the sandboxes' state and the CLI's own ledger.
"""

from __future__ import annotations

import copy
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")

from ledgerlink import SandboxServer  # noqa: E402
from ledgerlink._secrets_store import new_key  # noqa: E402
from ledgerlink._webhooks import secret_files  # noqa: E402
from ledgerlink_cobot.sandbox import ALL_SCOPES, CobotSandbox  # noqa: E402
from ledgerlink_sevdesk.sandbox import SevdeskSandbox  # noqa: E402

ADMIN = "service-webhooks-admin-0123456789"
LEDGERLINK = str(Path(sys.executable).parent / "ledgerlink")
TEMPLATE = "f0000000000000000000000000000001"  # a demo invoice of a confirmed member: FlexPlan + MeetingRoom
NEW = "f0000000000000000000000000000107"
NUMBER = "CU-2024-107"
JANE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(what: str, probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.05)


def new_invoice(cobot: CobotSandbox) -> dict[str, Any]:
    """A new Cobot invoice of Jane's, made from a demo invoice."""
    resource = copy.deepcopy(cobot.state["invoices"][TEMPLATE])
    membership = cobot.state["memberships"][JANE]
    day = date.today()
    resource["id"] = NEW
    resource["attributes"].update({
        "number": NUMBER, "invoiceDate": day.isoformat(), "dueDate": (day + timedelta(days=14)).isoformat(),
        "remindAt": (day + timedelta(days=14)).isoformat(), "paidDate": None, "paidAmount": "0.0",
        "paidStatus": "unpaid", "canUpdate": True, "customerNumber": membership["customer_number"],
    })
    resource["attributes"]["pdf"]["url"] = f"https://api.cobot.me/invoices/{NEW}.pdf?token=1"
    resource["relationships"]["debitor"]["data"]["id"] = JANE
    resource["relationships"]["paymentMethods"]["links"]["related"] = (
        f"https://api.cobot.me/api/invoices/{NEW}/payment_methods")
    return resource


def test_serve_takes_the_configs_source_webhooks_in_the_same_process(tmp_path: Path) -> None:
    cobot_token, sevdesk_token = f"cobot-{secrets.token_hex(8)}", f"sevdesk-{secrets.token_hex(8)}"
    cobot = CobotSandbox(demo=True)
    cobot.state["tokens"] = {cobot_token: {"id": "u-svc", "email": "admin@co-up.example",
                                           "scopes": list(ALL_SCOPES), "admin": True}}
    sevdesk = SevdeskSandbox(seed={"tokens": [sevdesk_token]})
    secret_file = tmp_path / "hook-secret"
    port = free_port()
    env = {**os.environ, "LEDGERLINK_ADMIN_TOKEN": ADMIN, "LEDGERLINK_SECRET_KEYS": new_key(),
           "COBOT_TOKEN": cobot_token, "SEVDESK_TOKEN": sevdesk_token}
    env.pop("LEDGERLINK_CONFIG", None)
    with SandboxServer(cobot) as cobot_server, SandboxServer(sevdesk) as sevdesk_server:
        config = tmp_path / "ledgerlink.toml"
        config.write_text(f'''
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.cobot]
plugin = "cobot"
api_token = "${{COBOT_TOKEN}}"
subdomain = "co-up"
base_url_v1 = "{cobot_server.url}/api"
base_url = "{cobot_server.url}/v2"
start_date = 2024-01-01
requests_per_second = 1000
memberships_requests_per_second = 1000

[connections.books]
plugin = "sevdesk"
api_token = "${{SEVDESK_TOKEN}}"
base_url = "{sevdesk_server.url}/api/v1"
backoff = 0.01

[[pipelines]]
name = "cowork"
source = "cobot"
target = "books"
sync_members = true

[[pipelines.rules]]
when = {{ booking_code = "FlexPlan" }}
account = "8400"

[[pipelines.rules]]
when = {{ booking_code = "MeetingRoom" }}
account = "8200"
''', encoding="utf-8")
        log = tmp_path / "serve.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([LEDGERLINK, "-c", str(config), "serve", "--port", str(port), "--workers", "2",
                                     "--secret-file", str(secret_file)],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        try:
            def settled() -> bool:  # started, and its first run of the pipeline (as `run`) done
                assert proc.poll() is None, log.read_text()
                try:
                    health = client.get("/health")
                except httpx.TransportError:
                    return False
                return health.status_code == 200 and health.json()["busy"] == 0
            poll("serve started and settled", settled, timeout=20)
            # one pipeline takes webhooks: its secret is the --secret-file itself (as `serve -p`)
            secret = secret_file.read_text().strip()
            assert len(secret) >= 24 and secret_file.stat().st_mode & 0o077 == 0
            assert secret not in log.read_text()
            callback = f"http://127.0.0.1:{port}/webhooks/{secret}"
            assert NUMBER not in {v.get("description") for v in sevdesk.state["vouchers"].values()}

            # Subscribe with the CLI, then Cobot's invoice and its webhook: in sevDesk once.
            subscribed = subprocess.run([LEDGERLINK, "-c", str(config), "webhooks", "subscribe", "-p", "cowork",
                                         "--callback-url", callback], env=env, capture_output=True, text=True,
                                        cwd=tmp_path, timeout=60)
            assert subscribed.returncode == 0, subscribed.stderr
            seeded = httpx.post(f"{cobot_server.url}/__sandbox__/seed", json={"invoices": [new_invoice(cobot)]},
                                timeout=10)
            assert seeded.status_code == 200, seeded.text

            def deliver() -> None:
                answer = httpx.post(f"{cobot_server.url}/__sandbox__/webhook", timeout=10,
                                    json={"event": "created_invoice", "invoice_id": NEW})
                assert answer.status_code == 200, answer.text
                assert [d["status"] for d in answer.json()["delivered"]] == [202]

            def vouchers() -> list[dict[str, Any]]:
                return [v for v in sevdesk.state["vouchers"].values() if v.get("description") == NUMBER]

            deliver()
            [voucher] = poll(f"{NUMBER} in sevDesk", vouchers)
            deliver()  # Cobot delivers again: still one voucher
            admin = {"Authorization": f"Bearer {ADMIN}"}
            detail = poll("the document pushed", lambda: (
                d := client.get(f"/v1/tenants/default/pipelines/cowork/documents/{NEW}", headers=admin).json()
            ).get("state") == "pushed" and d)
            assert detail["target"]["id"] == voucher["id"]

            # Wrong secrets and other paths under /webhooks/ are 404, as `serve -p` answers them.
            payload = {"url": f"{cobot_server.url}/api/invoices/{NEW}"}
            for path in ("/webhooks/not-the-secret", f"/webhooks/{secret}x", f"/webhooks/{secret}/",
                         f"/webhooks/{secret}/more"):
                assert client.post(path, json=payload).status_code == 404, path
            assert client.get(f"/webhooks/{secret}").status_code == 405  # only whoever knows the secret learns it
            assert client.post(callback, content=b"x" * (64 * 1024 + 1)).status_code == 413

            # The API, /health and the status page in the same process; no webhook route in OpenAPI.
            assert client.get("/health").status_code == 200
            assert client.get("/v1/tenants/default", headers=admin).status_code == 200
            assert client.get("/").status_code == 303  # the status page: sign in first
            page = client.post("/login", data={"token": ADMIN}, follow_redirects=True)
            assert page.status_code == 200 and "cowork" in page.text and NUMBER in page.text, page.text[:500]
            paths = client.get("/openapi.json").json()["paths"]
            assert paths and not [p for p in paths if "webhook" in p]
            assert len(vouchers()) == 1
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            client.close()
    output = log.read_text()
    assert "Traceback" not in output and secret not in output and sevdesk_token not in output, output
    assert f"source webhooks of 'cowork' on http://127.0.0.1:{port}/webhooks/<secret from {secret_file}>" in output
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT state, target_id FROM documents WHERE pipeline = 'cowork' AND source_ref = ?",
                          (NEW,)).fetchall()
    assert rows == [("pushed", voucher["id"])]


def test_each_pipeline_has_its_own_secret_file_when_several_take_webhooks() -> None:
    base = Path("/srv/ll/.ledgerlink-webhook-secret")
    assert secret_files(base, ["cowork"]) == {"cowork": base}
    assert secret_files(base, ["a", "b"]) == {"a": Path("/srv/ll/.ledgerlink-webhook-secret.a"),
                                              "b": Path("/srv/ll/.ledgerlink-webhook-secret.b")}
