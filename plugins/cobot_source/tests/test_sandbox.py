"""End to end through the Cobot sandbox: in-process, the source contract, and loopback."""

from __future__ import annotations

import copy
import http.server
import json
import threading
from typing import Any

import httpx
import pytest
from ledgerlink import ConnectionError_, Document, SandboxServer
from ledgerlink.testing import SourceContract
from ledgerlink_cobot.sandbox import DEMO_TOKEN, CobotSandbox

MEMBER = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
NEW_MEMBER = "d1b2c3d4e5f60718293a4b5c6d7e8f93"


def connected(sandbox: CobotSandbox, cobot: Any, base: str = "http://cobot.sandbox", **overrides: Any) -> Any:
    settings, env = sandbox.demo_connection(base)
    settings = {**settings, "api_token": env["COBOT_API_TOKEN"], **overrides}
    return cobot(sandbox.transport() if base == "http://cobot.sandbox" else None, **settings)


class TestCobotSourceContract(SourceContract):
    plugin = "cobot"
    cursor_settings = {"overlap_days": 0, "recheck_days": 0}  # the deliberate re-reads, off for the cursor test

    def make_sandbox(self) -> CobotSandbox:
        return CobotSandbox(demo=True)

    def connection_settings(self, sandbox: CobotSandbox) -> tuple[dict[str, Any], dict[str, str]]:
        settings, env = sandbox.demo_connection("http://cobot.sandbox")
        return {**settings, "requests_per_second": 1000, "memberships_requests_per_second": 1000}, env

    def expected_refs(self, sandbox: CobotSandbox) -> set[str]:
        return set(sandbox.state["invoices"])

    def expected_skipped(self, sandbox: CobotSandbox) -> set[str]:
        return {"f0000000000000000000000000000002"}  # the demo invoice with lines without accounting code

    def break_record(self, sandbox: CobotSandbox) -> str:
        ref = "f0000000000000000000000000000001"
        sandbox.state["invoices"][ref]["attributes"]["items"][0]["totalAmount"]["gross"] = "kaputt"
        return ref


def test_demo_flow_in_process(cobot):
    sandbox = CobotSandbox(demo=True)
    source = connected(sandbox, cobot)
    assert "co.up" in source.check()
    docs = [d for d in source.documents(None)]
    assert [d.number for d in docs] == ["CU-2024-100", "CU-2024-101", "CU-2024-102", "CU-2024-103"]
    assert all(isinstance(d, Document) and d.consistency_problems() == [] for d in docs)
    assert str(docs[3].total_gross) == "300.25"     # 250.00 + 47.50 + 33 x 0.07 = 2.31 + 0.44
    assert docs[1].skip_reason
    # requests validated against Cobot's OpenAPI: no problems logged
    assert not [r for r in sandbox.requests if r.get("validation_errors")]
    assert any(r["path"] == "/v2/user" for r in sandbox.requests)


def test_write_back_changes_membership_not_issued_invoices(cobot):
    sandbox = CobotSandbox(demo=True)
    source = connected(sandbox, cobot)
    customer = source.membership(MEMBER)
    assert customer is not None and customer.customer_number == "1001"
    source.write_customer_number(customer, "K-10001")
    assert sandbox.state["memberships"][MEMBER]["customer_number"] == "K-10001"
    assert source.membership(MEMBER).customer_number == "K-10001"
    assert source.document("f0000000000000000000000000000001").customer.customer_number == "1001"
    put = [r for r in sandbox.requests if r["method"] == "PUT"]
    assert put[0]["path"] == f"/api/memberships/{MEMBER}" and put[0]["json"] == {"customer_number": "K-10001"}
    assert source.membership("ffffffff") is None and source.customer("ffffffff") is None


def test_sandbox_scopes_and_admin(cobot):
    sandbox = CobotSandbox(demo=True)
    sandbox.state["tokens"]["limited"] = {"email": "x@y", "scopes": ["read_user", "read_spaces"], "admin": True}
    sandbox.state["tokens"]["member"] = {"email": "m@y", "scopes": ["read_user", "read_spaces", "read_invoices"],
                                         "admin": False}
    with pytest.raises(ConnectionError_, match="lacks the scope 'read_invoices'"):
        connected(sandbox, cobot, api_token="limited").check()
    with pytest.raises(ConnectionError_, match="m@y is not an admin of the space 'co-up'"):
        connected(sandbox, cobot, api_token="member").check()
    with pytest.raises(ConnectionError_, match="HTTP 401"):
        connected(sandbox, cobot, api_token="wrong-token").check()


def test_seed_invoices_are_checked_against_the_openapi_schema(seed):
    bad = copy.deepcopy(seed["invoices"][0])
    bad["attributes"]["items"][0]["totalAmount"]["net"] = 250.0  # a number, Cobot sends strings
    with pytest.raises(ValueError, match="items/0/totalAmount/net"):
        CobotSandbox(seed={"invoices": [bad]})
    assert CobotSandbox(seed={"invoices": seed["invoices"]}).invoice_problems(seed["invoices"][0]) == []


def test_paging_in_sandbox(cobot, seed):
    invoices = []
    for i in range(7):
        inv = copy.deepcopy(seed["invoices"][0])
        inv["id"] = f"e{i:031d}"
        inv["attributes"]["number"] = f"P-{i}"
        invoices.append(inv)
    sandbox = CobotSandbox(seed={"invoices": invoices})
    source = connected(sandbox, cobot, page_size=3, window_days=366)
    assert [d.number for d in source.documents(None)] == [f"P-{i}" for i in range(7)]
    pages = [r["query"] for r in sandbox.requests
             if r["path"].endswith("/invoices") and "filter%5Bfrom%5D=2024-01-01" in r["query"]]
    assert len(pages) == 3 and "page%5Bnumber%5D=3" in pages[-1]


def test_subscriptions_and_webhook_delivery_in_process(cobot):
    sandbox = CobotSandbox(demo=True)
    received: list[dict[str, Any]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(200)

    sandbox.webhook_transport = httpx.MockTransport(receiver)
    source = connected(sandbox, cobot)
    sub = source.subscribe("https://ledgerlink.example/hooks/cobot", "confirmed_membership")
    assert sub["active"] and source.subscribe("https://ledgerlink.example/hooks/cobot", "confirmed_membership")["id"] == sub["id"]
    assert len(source.subscriptions()) == 1
    client = httpx.Client(transport=sandbox.transport(), base_url="http://cobot.sandbox")
    answer = client.post("/__sandbox__/webhook", json={"event": "confirmed_membership", "membership_id": NEW_MEMBER})
    assert answer.json()["delivered"][0]["status"] == 200
    assert received == [{"url": f"http://cobot.sandbox/api/memberships/{NEW_MEMBER}"}]
    resource = source.webhook_resource(received[0])
    kind, ident = resource.kind, resource.id
    assert (kind, ident) == ("customer", NEW_MEMBER)
    customer = source.customer(ident)
    assert customer is not None and customer.extra["confirmed_at"]   # confirmed by the event
    assert source.unsubscribe("https://ledgerlink.example/hooks/cobot") == [sub["id"]]
    assert source.subscriptions() == []


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[Any] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", 0))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_over_a_real_loopback_server(cobot):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        callback = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/cobot"
        with SandboxServer(CobotSandbox(demo=True)) as server:
            settings, env = server.sandbox.demo_connection(server.url)  # the root, as `sandbox serve` prints it
            assert settings["base_url"] == f"{server.url}/v2"
            assert settings["base_url_v1"] == f"{server.url}/api"
            source = cobot(None, **{**settings, "api_token": env["COBOT_API_TOKEN"]})
            assert env["COBOT_API_TOKEN"] == DEMO_TOKEN
            assert "co.up" in source.check()
            assert len([d for d in source.documents(None) if isinstance(d, Document)]) == 4
            source.subscribe(callback, "confirmed_membership")
            httpx.post(f"{server.url}/__sandbox__/webhook",
                       json={"event": "confirmed_membership", "membership_id": NEW_MEMBER}).raise_for_status()
            assert _Receiver.received[-1] == {"url": f"{server.url}/api/memberships/{NEW_MEMBER}"}
            ident = source.webhook_resource(_Receiver.received[-1]).id
            customer = source.customer(ident)
            source.write_customer_number(customer, "K-2001")
            assert server.sandbox.state["memberships"][NEW_MEMBER]["customer_number"] == "K-2001"
            assert [c.source_id for c in source.customers()][-1] == NEW_MEMBER
            source.close()
    finally:
        receiver.shutdown()


def test_customer_is_none_for_an_unconfirmed_membership_which_membership_returns(cobot):
    sandbox = CobotSandbox(demo=True)
    source = connected(sandbox, cobot)
    assert source.membership(NEW_MEMBER) is not None
    assert source.membership(NEW_MEMBER).extra["confirmed_at"] is None
    assert source.customer(NEW_MEMBER) is None
    assert source.customer(MEMBER) is not None


def test_demo_connection_takes_the_server_root_and_describe_names_the_space():
    sandbox = CobotSandbox(demo=True)
    settings, env = sandbox.demo_connection("http://127.0.0.1:8801/")
    assert settings["base_url"] == "http://127.0.0.1:8801/v2"
    assert settings["base_url_v1"] == "http://127.0.0.1:8801/api"
    assert settings["api_token"] == "${COBOT_API_TOKEN}" and env == {"COBOT_API_TOKEN": DEMO_TOKEN}
    assert sandbox.describe() == (
        "Cobot sandbox: space 'co.up' (co-up) with 4 memberships (3 confirmed), 4 invoices, "
        "0 active webhook subscriptions"
    )
