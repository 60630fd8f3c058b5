"""Cobot to sevDesk end to end, over real loopback HTTP.

The issue: members confirmed in Cobot appear as sevDesk contacts, their sevDesk
customer numbers land on the Cobot memberships, invoices arrive with the account of
each accounting code, the cost centre, the due date and the tags; an invoice with a
line without accounting code is skipped with the reason, one with an unmapped code is
quarantined naming the code; a Cobot webhook transfers a new invoice within seconds.

Both sandboxes run as loopback servers in this process; the CLI (`run`, `retry`,
`status`, `webhooks subscribe|unsubscribe`) runs as a subprocess against them; the
webhook endpoint is ``ledgerlink._webhooks.make_app`` served by uvicorn on loopback.
Every fact is read back from the sandboxes' state, not from ledgerlink's own report.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerlink import SandboxServer
from ledgerlink._config import load_config
from ledgerlink._ledger import Ledger
from ledgerlink._runner import Runtime
from ledgerlink._webhooks import make_app
from ledgerlink.testing import CollectingReporter
from ledgerlink_cobot.sandbox import ALL_SCOPES, CobotSandbox
from ledgerlink_sevdesk.sandbox import SevdeskSandbox

JANE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"   # confirmed 2024-02-01, Acme GmbH
MAX = "b1b2c3d4e5f60718293a4b5c6d7e8f91"    # confirmed 2024-03-15, a person
OLD = "c1b2c3d4e5f60718293a4b5c6d7e8f92"    # confirmed 2023, before start_date
NINA = "d1b2c3d4e5f60718293a4b5c6d7e8f93"   # not confirmed yet
INV_OK = "f0000000000000000000000000000001"         # FlexPlan + MeetingRoom
INV_NO_CODE = "f0000000000000000000000000000002"    # two lines without accounting code
INV_CORRECTION = "f0000000000000000000000000000003"  # a correction (credit note)
INV_PRINTING = "f0000000000000000000000000000004"   # FlexPlan + Printing (no rule at first)
EXISTING_NUMBER = 20000  # a sevDesk contact that exists before; new numbers follow it

RULES = [("FlexPlan", "8400"), ("FixedPlan", "8400"), ("MeetingRoom", "8200")]


# -- the world: two sandboxes on loopback, a config file, the CLI ----------------------
@dataclass
class World:
    tmp: Path
    cobot: CobotSandbox
    sevdesk: SevdeskSandbox
    cobot_url: str
    sevdesk_url: str
    env: dict[str, str]
    config: Path

    def write_config(self, extra_rules: list[tuple[str, str]] = (), *, cobot_pacing: bool = False) -> None:
        """``cobot_pacing``: keep Cobot's real limits (60/min, memberships 6/min);
        otherwise the test runs Cobot calls fast."""
        pacing = "" if cobot_pacing else "requests_per_second = 1000\nmemberships_requests_per_second = 1000\n"
        rules = "".join(
            f'\n[[pipelines.rules]]\nwhen = {{ booking_code = "{code}" }}\naccount = "{account}"\n'
            for code, account in [*RULES, *extra_rules]
        )
        self.config.write_text(f'''
[ledger]
url = "sqlite:///{self.tmp / 'ledger.db'}"

[connections.cobot]
plugin = "cobot"
api_token = "${{COBOT_E2E_TOKEN}}"
subdomain = "co-up"
base_url_v1 = "{self.cobot_url}/api"
base_url = "{self.cobot_url}/v2"
start_date = 2024-01-01
{pacing}
[connections.books]
plugin = "sevdesk"
api_token = "${{SEVDESK_E2E_TOKEN}}"
base_url = "{self.sevdesk_url}/api/v1"
backoff = 0.01

[[pipelines]]
name = "cowork"
source = "cobot"
target = "books"
sync_members = true
cost_centre = "1"
due_days = 14
tags = ["Import"]
{rules}''', encoding="utf-8")

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env}
        env.pop("LEDGERLINK_CONFIG", None)
        result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(self.config), *args],
                                capture_output=True, text=True, timeout=timeout, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def cli_json(self, *args: str) -> tuple[int, Any]:
        result = self.cli(*args, "--json")
        try:
            return result.returncode, json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"not JSON (exit {result.returncode}): {result.stdout!r} {result.stderr!r}") from None

    # -- reading the sandboxes ------------------------------------------------------------
    def contact_of(self, membership: str) -> dict[str, Any] | None:
        marker = f"ledgerlink-key: cobot:{membership}"
        found = [c for c in self.sevdesk.state["contacts"].values()
                 if marker in str(c.get("description") or "").splitlines()]
        assert len(found) <= 1, f"{membership} has {len(found)} sevDesk contacts"
        return found[0] if found else None

    def vouchers(self, number: str) -> list[dict[str, Any]]:
        return [v for v in self.sevdesk.state["vouchers"].values() if v.get("description") == number]

    def positions(self, voucher_id: str) -> list[dict[str, Any]]:
        return [p for p in self.sevdesk.state["voucher_positions"].values() if p["voucher"]["id"] == voucher_id]

    def account_number(self, account_datev_id: str) -> str:
        for entry in self.sevdesk.state["guidance"]:
            if str(entry["accountDatevId"]) == str(account_datev_id):
                return str(entry["accountNumber"])
        raise AssertionError(f"accountDatev {account_datev_id} is not in the receipt guidance")

    def tags_of(self, voucher_id: str) -> set[str]:
        tags = self.sevdesk.state["tags"]
        return {tags[r["tag"]["id"]]["name"] for r in self.sevdesk.state["tag_relations"].values()
                if r["object"] == {"id": voucher_id, "objectName": "Voucher"}}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # Own tokens: HTTP rate limiters are process-wide per token, so sharing the demo
    # tokens with other tests of this worker would share (and slow) their pacing.
    cobot_token = f"cobot-e2e-{secrets.token_hex(8)}"
    sevdesk_token = f"sevdesk-e2e-{secrets.token_hex(8)}"
    cobot = CobotSandbox(demo=True)
    cobot.state["tokens"] = {cobot_token: {"id": "u-e2e", "email": "admin@co-up.example",
                                           "scopes": list(ALL_SCOPES), "admin": True}}
    sevdesk = SevdeskSandbox(seed={
        "tokens": [sevdesk_token],
        "Contact": {"objects": [{
            "id": "138800001", "objectName": "Contact", "name": "Bestandskunde AG", "status": "1000",
            "customerNumber": str(EXISTING_NUMBER), "category": {"id": "3", "objectName": "Category"},
        }]},
    })
    with SandboxServer(cobot) as cobot_server, SandboxServer(sevdesk) as sevdesk_server:
        w = World(tmp_path, cobot, sevdesk, cobot_server.url, sevdesk_server.url,
                  {"COBOT_E2E_TOKEN": cobot_token, "SEVDESK_E2E_TOKEN": sevdesk_token},
                  tmp_path / "ledgerlink.toml")
        w.write_config()
        yield w


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def sevdesk_day(value: str) -> date:
    return date.fromisoformat(value[:10])


def poll(what: str, probe: Callable[[], Any], timeout: float = 5.0) -> tuple[Any, float]:
    started = time.monotonic()
    while True:
        value = probe()
        if value:
            return value, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


# -- the run -----------------------------------------------------------------------------
def test_members_become_contacts_and_invoices_arrive_booked(world: World) -> None:
    code, report = world.cli_json("run")
    assert code == 1, report  # quarantined documents: exit 1
    [pipeline] = report
    assert pipeline["error"] is None
    outcomes = {d["source_ref"]: d for d in pipeline["documents"]}
    assert {ref: d["state"] for ref, d in outcomes.items()} == {
        INV_OK: "pushed", INV_NO_CODE: "skipped", INV_CORRECTION: "pushed", INV_PRINTING: "quarantined",
    }
    # The correction of CU-2024-100 is a credit note referencing it, never free-standing.
    assert outcomes[INV_CORRECTION]["reason"].startswith("credit note for CU-2024-100")

    # Members confirmed since start_date are sevDesk contacts with sevDesk's numbers,
    # and those numbers replaced Cobot's customer numbers on the memberships.
    jane, max_ = world.contact_of(JANE), world.contact_of(MAX)
    assert jane is not None and jane["name"] == "Acme GmbH"
    assert max_ is not None and (max_["surename"], max_["familyname"]) == ("Max", "Mustermann")
    assert {jane["customerNumber"], max_["customerNumber"]} == {str(EXISTING_NUMBER + 1), str(EXISTING_NUMBER + 2)}
    memberships = world.cobot.state["memberships"]
    assert memberships[JANE]["customer_number"] == jane["customerNumber"]
    assert memberships[MAX]["customer_number"] == max_["customerNumber"]
    # confirmed before start_date, and not confirmed: neither a contact nor a new number
    assert world.contact_of(OLD) is None and memberships[OLD]["customer_number"] == "0999"
    assert world.contact_of(NINA) is None and memberships[NINA]["customer_number"] is None
    assert len(world.sevdesk.state["contacts"]) == 3
    puts = [r for r in world.cobot.requests if r["method"] == "PUT"]
    assert sorted(r["path"] for r in puts) == sorted([f"/api/memberships/{JANE}", f"/api/memberships/{MAX}"])

    # The invoice: one voucher, Jane's contact, an account per accounting code, the
    # cost centre, the due date Cobot states, the tag, amounts to the cent, still open.
    [voucher] = world.vouchers("CU-2024-100")
    invoice = world.cobot.state["invoices"][INV_OK]["attributes"]
    assert voucher["supplier"]["id"] == jane["id"]
    assert voucher["costCentre"] == {"id": "1", "objectName": "CostCentre"}
    assert sevdesk_day(voucher["voucherDate"]) == date.fromisoformat(invoice["invoiceDate"])
    # The pipeline's due_days = 14 decides, as in Cobot's own sevDesk integration
    # (README: "due date = document date + days").
    assert sevdesk_day(voucher["paymentDeadline"]) == date.fromisoformat(invoice["invoiceDate"]) + timedelta(days=14)
    assert world.tags_of(voucher["id"]) == {"Import"}
    assert voucher["status"] == "100" and money(voucher["paidAmount"]) == 0  # payments stay in sevDesk
    assert (money(voucher["sumNet"]), money(voucher["sumTax"]), money(voucher["sumGross"])) == (
        Decimal("281.00"), Decimal("53.39"), Decimal("334.39"))
    booked = sorted((world.account_number(p["accountDatev"]["id"]), money(p["sumNet"]), money(p["sumGross"]),
                     Decimal(p["taxRate"])) for p in world.positions(voucher["id"]))
    assert booked == [("8200", Decimal("31.00"), Decimal("36.89"), Decimal("19")),
                      ("8400", Decimal("250.00"), Decimal("297.50"), Decimal("19"))]
    [correction] = world.vouchers("CU-2024-102")
    corrected = world.cobot.state["invoices"][INV_CORRECTION]["attributes"]
    assert correction["supplier"]["id"] == jane["id"] and correction["status"] == "100"
    assert money(correction["sumGross"]) == -abs(money(corrected["totalAmount"]["gross"]))
    assert any("CU-2024-100" in (p.get("comment") or "") for p in world.positions(correction["id"]))
    assert len(world.sevdesk.state["vouchers"]) == 2
    assert not [r for r in world.sevdesk.requests if r.get("validation_errors")]

    # Skipped with the lines named; quarantined naming the unmapped code; the ledger agrees.
    code, rows = world.cli_json("status")
    assert code == 0
    by_ref = {r["source_ref"]: r for r in rows}
    assert by_ref[INV_OK]["state"] == "pushed" and by_ref[INV_OK]["target_id"] == voucher["id"]
    assert by_ref[INV_NO_CODE]["state"] == "skipped"
    assert by_ref[INV_NO_CODE]["reason"] == "lines without accounting code: 2 ('Day pass'), 3 ('Coffee flat')"
    assert by_ref[INV_PRINTING]["state"] == "quarantined"
    assert "booking code 'Printing'" in by_ref[INV_PRINTING]["reason"]
    assert by_ref[INV_CORRECTION]["state"] == "pushed" and by_ref[INV_CORRECTION]["target_id"] == correction["id"]

    # Run again: nothing new in sevDesk, no member created twice.
    code, again = world.cli_json("run")
    assert [d["state"] for d in again[0]["documents"] if d["state"] == "pushed"] == []
    assert len(world.sevdesk.state["vouchers"]) == 2 and len(world.sevdesk.state["contacts"]) == 3

    # A person adds the missing rule; `retry` transfers the quarantined invoice.
    world.write_config(extra_rules=[("Printing", "8400")])
    result = world.cli("retry")
    assert result.returncode == 0, result.stdout + result.stderr
    [printing] = world.vouchers("CU-2024-103")
    assert printing["supplier"]["id"] == jane["id"]
    assert money(printing["sumGross"]) == Decimal("300.25")
    assert sorted(world.account_number(p["accountDatev"]["id"]) for p in world.positions(printing["id"])) == [
        "8400", "8400"]
    assert len(world.sevdesk.state["vouchers"]) == 3


# -- webhooks ---------------------------------------------------------------------------
class AppServer:
    """An ASGI app on a loopback port in a thread (as ``ledgerlink serve`` runs it)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                     access_log=False, timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> AppServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the webhook endpoint did not start"
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self._server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


@dataclass
class Endpoint:
    url: str
    callback: str
    worker: Any
    ledger: Ledger


@pytest.fixture
def serve_endpoint(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Endpoint]]:
    """Start the webhook endpoint (``make_app`` on loopback) with the config as it is now."""
    stack = contextlib.ExitStack()

    def start(*, cobot_pacing: bool = False) -> Endpoint:
        for key, value in world.env.items():
            monkeypatch.setenv(key, value)
        world.write_config(cobot_pacing=cobot_pacing)
        config = load_config(world.config)
        world.write_config()  # the CLI calls of the test stay fast
        runtime = Runtime(config, reporter=CollectingReporter(), http_options={"backoff": 0.01})
        secret = secrets.token_urlsafe(24)
        app, worker = make_app(runtime, runtime.config.pipeline("cowork"), secret)
        stack.callback(worker.stop)
        server = stack.enter_context(AppServer(app))
        return Endpoint(server.url, f"{server.url}/webhooks/{secret}", worker, runtime.ledger)

    with stack:
        yield start


def new_invoice(world: World, ident: str, number: str, member: str, day: date, due: date) -> dict[str, Any]:
    """A new Cobot invoice for ``member``: Flex Desk (19 %) and a meeting room (19 %)."""
    resource = copy.deepcopy(world.cobot.state["invoices"][INV_OK])
    membership = world.cobot.state["memberships"][member]
    attrs = resource["attributes"]
    attrs.update({
        "number": number, "invoiceDate": day.isoformat(), "dueDate": due.isoformat(), "remindAt": due.isoformat(),
        "paidDate": None, "paidAmount": "0.0", "payableAmount": "334.39", "paidStatus": "unpaid",
        "canUpdate": True, "customerNumber": membership["customer_number"],
        "billingEmails": [membership["email"]],
    })
    address = membership["address"]
    attrs["recipientAddress"] = {
        "name": membership["name"], "company": address.get("company"),
        "fullAddress": address["full_address"].replace("\n", ", "), "street": address["address"],
        "postCode": address["post_code"], "city": address["city"], "state": None,
        "countryCode": address["country"],
    }
    attrs["pdf"]["url"] = f"https://api.cobot.me/invoices/{ident}.pdf?token=1"
    resource["id"] = ident
    resource["relationships"]["debitor"]["data"]["id"] = member
    resource["relationships"]["paymentMethods"]["links"]["related"] = (
        f"https://api.cobot.me/api/invoices/{ident}/payment_methods")
    return resource


def deliver(world: World, **body: Any) -> list[dict[str, Any]]:
    """Make the Cobot sandbox deliver a webhook to every subscription of the event."""
    response = httpx.post(f"{world.cobot_url}/__sandbox__/webhook", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["delivered"]  # type: ignore[no-any-return]


def test_webhooks_confirm_a_member_and_transfer_new_invoices_within_seconds(
        world: World, serve_endpoint: Callable[..., Endpoint]) -> None:
    assert world.cli("run").returncode == 1  # the demo's quarantined invoices; members and cursor are set
    endpoint = serve_endpoint(cobot_pacing=True)  # the endpoint keeps Cobot's real rate limits

    # Subscribe through the CLI: one line per event; again is fine and adds nothing.
    result = world.cli("webhooks", "subscribe", "-p", "cowork", "--callback-url", endpoint.callback)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "subscribed confirmed_membership", "subscribed created_invoice", "subscribed updated_invoice"]
    assert endpoint.callback not in result.stdout  # the secret path is not echoed
    subs = world.cobot.state["subscriptions"].values()
    assert sorted(s["event"] for s in subs if s["callback_url"] == endpoint.callback) == [
        "confirmed_membership", "created_invoice", "updated_invoice"]
    again = world.cli("webhooks", "subscribe", "-p", "cowork", "--callback-url", endpoint.callback)
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout  # the existing subscriptions, by id
    assert len(world.cobot.state["subscriptions"]) == 3

    # Nina is confirmed in Cobot: her contact appears in sevDesk, its number in Cobot.
    [delivery] = deliver(world, event="confirmed_membership", membership_id=NINA)
    assert delivery["status"] == 202
    nina, _ = poll("Nina's sevDesk contact", lambda: world.contact_of(NINA))
    assert nina["name"] == "Neu OG" and nina["customerNumber"] == str(EXISTING_NUMBER + 3)
    poll("Nina's customer number in Cobot",
         lambda: world.cobot.state["memberships"][NINA]["customer_number"] == nina["customerNumber"])

    # Two new invoices in Cobot (the monthly run creates many at once), their webhooks,
    # and both are in sevDesk within seconds.
    day = date.today()
    new = {"f0000000000000000000000000000105": ("CU-2024-105", MAX), "f0000000000000000000000000000106": (
        "CU-2024-106", JANE)}
    seeded = httpx.post(f"{world.cobot_url}/__sandbox__/seed", timeout=10, json={"invoices": [
        new_invoice(world, ident, number, member, day, day + timedelta(days=10))
        for ident, (number, member) in new.items()]})
    assert seeded.status_code == 200, seeded.text
    started = time.monotonic()
    for ident in new:
        [delivery] = deliver(world, event="created_invoice", invoice_id=ident)
        assert delivery["status"] == 202
    for ident, (number, member) in new.items():
        row, _ = poll(f"{number} pushed", lambda ident=ident: (
            (r := endpoint.ledger.document("cowork", ident)) is not None and r.state == "pushed" and r), timeout=8)
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"{number} took {elapsed:.1f} s"
        [voucher] = world.vouchers(number)
        assert row.target_id == voucher["id"]
        contact = world.contact_of(member)
        assert contact is not None and voucher["supplier"]["id"] == contact["id"]
        assert voucher["costCentre"]["id"] == "1"
        assert sevdesk_day(voucher["voucherDate"]) == day
        assert sevdesk_day(voucher["paymentDeadline"]) == day + timedelta(days=14)  # the pipeline's due_days
        assert world.tags_of(voucher["id"]) == {"Import"}
        assert money(voucher["sumGross"]) == Decimal("334.39")
        assert sorted(world.account_number(p["accountDatev"]["id"]) for p in world.positions(voucher["id"])) == [
            "8200", "8400"]

    # The same webhook again (Cobot retries deliveries): still one voucher.
    done = len(endpoint.worker.done)
    deliver(world, event="created_invoice", invoice_id="f0000000000000000000000000000105")
    poll("the repeated delivery handled", lambda: len(endpoint.worker.done) > done)
    assert len(world.vouchers("CU-2024-105")) == 1
    assert not [d for d in endpoint.worker.done if d.get("error")], endpoint.worker.done

    # Unsubscribe through the CLI.
    removed = world.cli("webhooks", "unsubscribe", "-p", "cowork", "--callback-url", endpoint.callback)
    assert removed.returncode == 0, removed.stderr
    assert len(removed.stdout.splitlines()) == 3 and world.cobot.state["subscriptions"] == {}


def test_webhooks_from_elsewhere_are_refused_and_transfer_nothing(
        world: World, serve_endpoint: Callable[..., Endpoint]) -> None:
    endpoint = serve_endpoint()
    ident = "f0000000000000000000000000000106"
    day = date.today()
    seeded = httpx.post(f"{world.cobot_url}/__sandbox__/seed", timeout=10, json={"invoices": [
        new_invoice(world, ident, "CU-2024-106", JANE, day, day + timedelta(days=14))]})
    assert seeded.status_code == 200
    assert world.cli("webhooks", "subscribe", "-p", "cowork", "--callback-url", endpoint.callback).returncode == 0

    # A URL of another space (and an API 2 URL, which names no space): 400, nothing queued.
    for url in (f"https://other-space.cobot.me/api/invoices/{ident}", f"https://api.cobot.me/invoices/{ident}",
                f"{world.cobot_url}/api/invoices/{ident}?x=1"):
        [delivery] = deliver(world, event="created_invoice", url=url)
        assert delivery["status"] == 400, (url, delivery)
    # The right payload at a wrong secret path: 404.
    wrong = httpx.post(f"{endpoint.url}/webhooks/not-the-secret", timeout=10,
                       json={"url": f"{world.cobot_url}/api/invoices/{ident}"})
    assert wrong.status_code == 404
    health = httpx.get(f"{endpoint.url}/health", timeout=10).json()
    assert health == {"ok": True, "queued": 0, "done": 0}
    time.sleep(0.3)
    assert list(endpoint.worker.done) == []
    assert endpoint.ledger.document("cowork", ident) is None
    assert world.vouchers("CU-2024-106") == [] and world.sevdesk.state["vouchers"] == {}
    assert not [r for r in world.cobot.requests if r["path"] == f"/v2/invoices/{ident}"]

    # A membership of this space that is not confirmed yet: taken, but no contact.
    queued = httpx.post(endpoint.callback, json={"url": f"{world.cobot_url}/api/memberships/{NINA}"}, timeout=10)
    assert queued.status_code == 202
    poll("the membership handled", lambda: endpoint.worker.done)
    assert list(endpoint.worker.done) == [{"kind": "customer", "id": NINA, "state": "not a customer to sync"}]
    assert world.contact_of(NINA) is None

    # The real one is taken.
    [delivery] = deliver(world, event="created_invoice", invoice_id=ident)
    assert delivery["status"] == 202
    poll("the invoice in sevDesk", lambda: len(endpoint.worker.done) == 2)
    assert endpoint.worker.done[1] == {"kind": "document", "id": ident, "state": "pushed"}
    assert len(world.vouchers("CU-2024-106")) == 1
