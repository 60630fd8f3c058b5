"""1CRM -> Bilendo -> status back in 1CRM, end to end through the real CLI (issue 19).

Both sandboxes run on loopback (real HTTP, ``SandboxServer``); every ledgerlink command is
the CLI in a subprocess, as an operator runs it. The 1CRM sandbox holds the demo seed (30
invoices, 10 accounts). What is checked:

- the export: 27 invoices, each sent or kept a draft by its account's preset, with the
  language and the sender address chosen in 1CRM, figures to the cent; the cancelled, the
  paid and the old invoice skipped with their reasons;
- ``sync-status`` writes "Versendet"/"Entwurf", then each step Bilendo takes (Fällig,
  "Reminder 1 versendet", Bezahlt) into 1CRM's ``bilendo_status_c``, once: a re-sync and a
  re-run write nothing (counted in the 1CRM sandbox's request log);
- an invoice changed in 1CRM after export is reported "changed after export" and never
  re-sent; the OAuth client secret appears in no output; a wrong secret is one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerlink import SandboxServer
from ledgerlink_bilendo.sandbox import BilendoSandbox
from ledgerlink_onecrm.sandbox import DEMO_CLIENT_SECRET, OnecrmSandbox

SECRET_ENV = "ONECRM_E2E_SECRET"
TOKEN_ENV = "BILENDO_E2E_TOKEN"


@dataclass
class World:
    tmp: Path
    crm: OnecrmSandbox
    bilendo: BilendoSandbox
    bilendo_url: str
    config: Path
    env: dict[str, str]

    def cli(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
        full = {**os.environ, **self.env, **(env or {})}
        full.pop("LEDGERLINK_CONFIG", None)
        result = subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(self.config), *args, "--json"],
                                capture_output=True, text=True, timeout=120, env=full)
        assert "Traceback" not in result.stderr, result.stderr
        assert DEMO_CLIENT_SECRET not in result.stdout + result.stderr
        return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr

    def invoice(self, number: str) -> dict[str, Any]:
        return next(i for i in self.crm.state["models"]["Invoice"].values() if i["full_number"] == number)

    def crm_field(self, number: str) -> str | None:
        return self.invoice(number).get("bilendo_status_c")

    def exported(self, number: str) -> dict[str, Any]:
        return next(i for i in self.bilendo.state["invoices"].values() if i["invoice_number"] == number)

    def advance(self, number: str, step: str) -> None:
        answer = httpx.post(f"{self.bilendo_url}/__sandbox__/advance",
                            json={"invoice": self.invoice(number)["id"], "to": step}, timeout=10)
        assert answer.status_code == 200, answer.text

    def crm_writes(self) -> int:
        return sum(1 for r in self.crm.requests if r["method"] in ("PATCH", "POST") and "/data/" in r["path"])

    def bilendo_invoice_posts(self) -> int:
        return sum(1 for r in self.bilendo.requests if r["method"] == "POST" and r["path"] == "/api/v2/invoices")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    crm = OnecrmSandbox(seed=OnecrmSandbox.demo_seed())
    bilendo = BilendoSandbox(seed={"tokens": ["bilendo-e2e-token"]})
    with SandboxServer(crm) as crm_server, SandboxServer(bilendo) as bilendo_server:
        config = tmp_path / "ledgerlink.toml"
        config.write_text(f'''
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.crm]
plugin = "onecrm"
base_url = "{crm_server.url}/api.php"
client_id = "ledgerlink-demo-client"
client_secret = "${{{SECRET_ENV}}}"
start_date = "2026-01-01"
sender_company = "Nordlicht Software GmbH"
requests_per_second = 1000

[connections.bilendo]
plugin = "bilendo"
api_token = "${{{TOKEN_ENV}}}"
base_url = "{bilendo_server.url}"
dispatch = "manual"
language = "de"
requests_per_second = 1000

[[pipelines]]
name = "crm-to-bilendo"
source = "crm"
target = "bilendo"
due_days = 14
status_wording = "bilendo_de"
''', encoding="utf-8")
        yield World(tmp_path, crm, bilendo, bilendo_server.url, config,
                    {SECRET_ENV: DEMO_CLIENT_SECRET, TOKEN_ENV: "bilendo-e2e-token"})


def test_export_status_back_and_reruns(world: World) -> None:
    code, report, _ = world.cli("run")
    assert code == 0, report
    [pipeline] = report
    assert pipeline["counts"] == {"pushed": 27, "skipped": 3}
    skipped = sorted(o["reason"] for o in pipeline["documents"] if o["state"] == "skipped")
    assert skipped == ["already paid in 1CRM (amount due 0.00): nothing to collect", "cancelled in the source",
                       "invoice date 2025-12-15 is before the start date 2026-01-01"]

    # Each account's preset, language and the assigned user's address reached Bilendo.
    first, second = world.exported("RE-2026-001"), world.exported("RE-2026-002")
    assert (first["dispatch"], first["status"], first["language"]) == ("automatic", "sent", "de")
    assert (second["dispatch"], second["status"]) == ("manual", "draft")
    assert world.exported("RE-2026-015")["language"] == "en"  # Wagner Medien: English
    assert world.exported("RE-2026-006")["dispatch"] == "manual"  # no preset: the connection's setting
    assert first["sender"] == {"line1": "Nordlicht Software GmbH, Anna Schmidt", "line3": "Hauptstr. 1",
                               "zip": "10115", "city": "Berlin", "country_code": "de"}
    assert world.exported("RE-2026-002")["sender"]["line1"] == "Nordlicht Software GmbH, Jonas Weber"
    # Figures to the cent: 1CRM's group tax (19 % of 99.99 = 19.00), a CHF invoice in CHF.
    eleven = world.exported("RE-2026-011")
    assert (Decimal(eleven["net_amount"]), Decimal(eleven["tax_amount"]), Decimal(eleven["amount"])) == (
        Decimal("99.99"), Decimal("19.00"), Decimal("118.99"))
    chf = world.exported("RE-2026-009")
    assert (chf["currency"], Decimal(chf["amount"]), Decimal(chf["tax_amount"])) == ("CHF", Decimal("1067.70"),
                                                                                    Decimal("0.00"))

    # The status after export, in 1CRM's words.
    code, changes, _ = world.cli("sync-status")
    assert code == 0 and len(changes) == 27
    assert {c["written_back"] for c in changes} == {"Versendet", "Entwurf"}
    assert (world.crm_field("RE-2026-001"), world.crm_field("RE-2026-002")) == ("Versendet", "Entwurf")
    assert world.crm_field("RE-2026-005") is None  # cancelled before export: never in Bilendo

    # Bilendo moves invoices on; each step is written into 1CRM once.
    walk = [
        [("RE-2026-001", "due", "Fällig"), ("RE-2026-002", "sent", "Versendet"),
         ("RE-2026-003", "reminder_1", "Reminder 1 versendet")],
        [("RE-2026-001", "reminder_1", "Reminder 1 versendet"), ("RE-2026-003", "paid", "Bezahlt")],
        [("RE-2026-001", "paid", "Bezahlt")],
    ]
    for steps in walk:
        before = world.crm_writes()
        for number, step, _ in steps:
            world.advance(number, step)
        code, changes, _ = world.cli("sync-status")
        assert code == 0
        assert sorted(c["written_back"] for c in changes) == sorted(words for *_, words in steps)
        for number, _, words in steps:
            assert world.crm_field(number) == words
        assert world.crm_writes() - before == len(steps)

    # Re-runs write nothing: no status change, no export, nothing flagged (our own
    # status writes moved date_modified, so every invoice is listed again).
    before, posts = world.crm_writes(), world.bilendo_invoice_posts()
    assert world.cli("sync-status")[:2] == (0, [])
    code, report, _ = world.cli("run")
    assert code == 0 and report[0]["counts"] == {}, report
    assert (world.crm_writes(), world.bilendo_invoice_posts()) == (before, posts)

    # An invoice changed in 1CRM after export: reported, never re-sent.
    line = next(ln for ln in world.crm.state["models"]["InvoiceLine"].values()
                if ln["invoice_id"] == world.invoice("RE-2026-004")["id"])
    line["name"] = "Beratung vor Ort (Stunden), korrigiert"
    world.invoice("RE-2026-004")["date_modified"] = "2026-12-01 10:00:00"
    code, report, _ = world.cli("run")
    changed = [o for o in report[0]["documents"] if o["state"] == "changed"]
    assert [o["number"] for o in changed] == ["RE-2026-004"]
    assert changed[0]["reason"].startswith("changed after export: ")
    assert world.bilendo_invoice_posts() == posts
    code, report, _ = world.cli("run")
    assert report[0]["counts"] == {} and world.bilendo_invoice_posts() == posts


def test_a_wrong_client_secret_is_one_line(world: World) -> None:
    code, report, err = world.cli("run", env={SECRET_ENV: "not-the-secret"})
    assert code != 0
    text = json.dumps(report) + err
    assert "Client authentication failed" in text and "check client_id and client_secret" in text
    assert "not-the-secret" not in text
    assert world.bilendo_invoice_posts() == 0
