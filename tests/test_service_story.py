"""123Hundeschule (seed 002) against the sevDesk sandbox, through `ledgerlink serve`.

A dog-school SaaS: each school (tenant) enters its sevDesk API token ("Verbindung
testen"), matches its customers to sevDesk contacts by first and last name
("Kunden zuordnen", re-runnable), finalised invoices go over in the background, the
list of receipts shows the transfer status, and older ones are sent in bulk. Then
the service is killed mid-queue and started again: everything lands, once.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")
sevdesk_sandbox = pytest.importorskip("ledgerlink_sevdesk.sandbox")

from ledgerlink import SandboxServer  # noqa: E402
from ledgerlink._secrets_store import new_key  # noqa: E402
from ledgerlink.testing import sample_document  # noqa: E402

ADMIN = "story-admin-" + secrets.token_hex(8)


def contact(ident: str, first: str, last: str, number: str) -> dict[str, Any]:
    return {"id": ident, "objectName": "Contact", "surename": first, "familyname": last, "status": "1000",
            "customerNumber": number, "category": {"id": "3", "objectName": "Category"}}


@pytest.fixture
def sevdesk() -> Iterator[tuple[Any, str, str]]:
    token = f"hundeschule-{secrets.token_hex(8)}"
    sandbox = sevdesk_sandbox.SevdeskSandbox(seed={"tokens": [token], "Contact": {"objects": [
        contact("9001", "Anna", "Bell", "1001"),
        contact("9002", "Max", "Hund", "1002"), contact("9003", "Max", "Hund", "1003"),
    ]}})
    with SandboxServer(sandbox) as server:
        yield sandbox, server.url, token


def school(url: str, token: str) -> dict[str, Any]:
    return {
        "connections": {"app": {"plugin": "inbox"},
                        "sevdesk": {"plugin": "sevdesk", "api_token": token, "base_url": f"{url}/api/v1",
                                    "backoff": 0.01}},
        "pipelines": [{"name": "invoices", "source": "app", "target": "sevdesk", "matchers": ["customer_number", "name"],
                       "rules": [{"when": {"line": "goods"}, "account": "8400"},
                                 {"when": {"line": "shipping"}, "account": "8400"}]}],
    }


def invoice(n: int, first: str, last: str, customer: str) -> dict[str, Any]:
    document = sample_document(n, customer=customer)
    document.customer.first_name, document.customer.last_name = first, last
    document.source_ref, document.number = f"inv-{n}", f"HS-{n}"
    data: dict[str, Any] = json.loads(document.model_dump_json(exclude={"cursor"}))
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`ledgerlink serve` as a subprocess (the real CLI and uvicorn)."""

    def __init__(self, tmp_path: Path, key: str, crash_at: str | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LEDGERLINK_ADMIN_TOKEN": ADMIN, "LEDGERLINK_SECRET_KEYS": key,
               "LEDGERLINK_HTTP_TIMEOUT": "1"}
        env.pop("LEDGERLINK_CRASH_AT", None)
        if crash_at:
            env["LEDGERLINK_CRASH_AT"] = crash_at
        self.log = open(tmp_path / f"serve-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "ledgerlink"), "serve", "--ledger",
             f"sqlite:///{tmp_path / 'service.db'}", "--port", str(self.port), "--workers", "2"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp_path)
        self.client = httpx.Client(base_url=self.base, timeout=30)
        for _ in range(300):
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"ledgerlink serve did not start: {(tmp_path / f'serve-{self.port}.log').read_text()}")

    def idle(self, headers: dict[str, str]) -> None:
        for _ in range(1200):
            if self.client.get("/health").json()["busy"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("the service's workers did not finish")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.client.close()
        self.log.close()


def vouchers(sandbox: Any) -> list[str]:
    return sorted(v.get("description") for v in sandbox.state["vouchers"].values())


def test_123hundeschule_end_to_end(sevdesk: tuple[Any, str, str], tmp_path: Path) -> None:
    sandbox, url, token = sevdesk
    key = new_key()
    serve = Serve(tmp_path, key)
    try:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        c = serve.client
        assert c.put("/v1/tenants/pfotenglueck", json=school(url, token), headers=admin).status_code == 201
        app_token = c.post("/v1/tenants/pfotenglueck/tokens", json={"label": "123Hundeschule"}, headers=admin).json()
        auth = {"Authorization": f"Bearer {app_token['token']}"}
        base = "/v1/tenants/pfotenglueck"
        # "Verbindung testen"
        check = c.post(f"{base}/connections/sevdesk/check", headers=auth).json()
        assert check["ok"] is True, check
        assert token not in json.dumps(check)
        # "Kunden zuordnen": by first and last name; dry run first, then for real, then again
        customers = [{"source_id": "k1", "first_name": "Anna", "last_name": "Bell"},
                     {"source_id": "k2", "first_name": "Max", "last_name": "Hund"},
                     {"source_id": "k3", "first_name": "Neu", "last_name": "Kunde"}]
        dry = c.post(f"{base}/pipelines/invoices/match-customers", json={"customers": customers, "dry_run": True},
                     headers=auth).json()
        assert [(r["source_id"], r["outcome"], r["customer_number"]) for r in dry["customers"]] == [
            ("k1", "linked", "1001"), ("k2", "ambiguous", None), ("k3", "no_match", None)]
        assert len(dry["customers"][1]["candidates"]) == 2
        real = c.post(f"{base}/pipelines/invoices/match-customers", json={"customers": customers},
                      headers=auth).json()
        assert real["customers"][0]["outcome"] == "linked"
        again = c.post(f"{base}/pipelines/invoices/match-customers", json={"customers": customers},
                       headers=auth).json()
        assert [r["outcome"] for r in again["customers"]] == ["already_linked", "ambiguous", "no_match"]
        assert again["customers"][0]["customer_number"] == "1001"
        # a finalised invoice goes over in the background, to Anna's existing contact
        posted = c.post(f"{base}/pipelines/invoices/documents", json=invoice(1, "Anna", "Bell", "k1"), headers=auth)
        assert posted.status_code == 202
        serve.idle(auth)
        status = c.get(posted.json()["documents"][0]["url"], headers=auth).json()
        assert status["state"] == "pushed", status
        assert status["target"]["id"]
        assert vouchers(sandbox) == ["HS-1"]
        voucher = next(iter(sandbox.state["vouchers"].values()))
        assert voucher["supplier"]["id"] == "9001"
        # bulk backfill of older receipts; the status column lists each
        older = [invoice(n, "Neu", "Kunde", "k3") for n in (2, 3, 4)]
        assert c.post(f"{base}/pipelines/invoices/backfill", json=older, headers=auth).status_code == 202
        serve.idle(auth)
        column = c.get(f"{base}/pipelines/invoices/documents?limit=2", headers=auth).json()
        assert [d["id"] for d in column["documents"]] == ["inv-1", "inv-2"] and column["next_cursor"]
        rest = c.get(f"{base}/pipelines/invoices/documents?cursor={column['next_cursor']}", headers=auth).json()
        assert [(d["id"], d["state"]) for d in rest["documents"]] == [("inv-3", "pushed"), ("inv-4", "pushed")]
        assert vouchers(sandbox) == ["HS-1", "HS-2", "HS-3", "HS-4"]
        # posting them all again changes nothing
        c.post(f"{base}/pipelines/invoices/backfill", json=[invoice(1, "Anna", "Bell", "k1"), *older], headers=auth)
        serve.idle(auth)
        assert vouchers(sandbox) == ["HS-1", "HS-2", "HS-3", "HS-4"]
    finally:
        serve.stop()
    assert token not in (tmp_path / f"serve-{serve.port}.log").read_text()


def test_serve_killed_mid_queue_settles_everything_once_on_restart(sevdesk: tuple[Any, str, str],
                                                                  tmp_path: Path) -> None:
    sandbox, url, token = sevdesk
    key = new_key()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    first = Serve(tmp_path, key, crash_at="after_push")  # dies once the first write reached sevDesk
    try:
        assert first.client.put("/v1/tenants/school", json=school(url, token), headers=admin).status_code == 201
        documents = [invoice(n, "Neu", f"Kunde{n}", f"k{n}") for n in range(1, 6)]
        try:
            answer = first.client.post("/v1/tenants/school/pipelines/invoices/documents", json=documents,
                                       headers=admin)
            assert answer.status_code == 202
        except httpx.TransportError:
            pass  # killed before its answer left: the documents were stored before the worker started
        assert first.proc.wait(timeout=60) == 137
    finally:
        first.stop()
    assert len(vouchers(sandbox)) == 1  # the write arrived; its outcome was never recorded
    second = Serve(tmp_path, key)
    try:
        second.idle(admin)
        page = second.client.get("/v1/tenants/school/pipelines/invoices/documents", headers=admin).json()
        assert [(d["id"], d["state"]) for d in page["documents"]] == [(f"inv-{n}", "pushed") for n in range(1, 6)]
        assert vouchers(sandbox) == ["HS-1", "HS-2", "HS-3", "HS-4", "HS-5"]
    finally:
        second.stop()
