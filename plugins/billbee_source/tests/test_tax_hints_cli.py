"""Billbee's VatMode is a hint, checked against the facts before anything is written:
the real CLI against the Billbee sandbox on loopback, into the fake target. Each order
below was booked as a tax-free rule by the first version (issue 15, class 2, and the
audit's 0 % line without a reason); each is quarantined naming both facts, nothing of
it is written, and the orders whose facts agree go through."""

from __future__ import annotations

import copy
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledgerlink import SandboxServer
from ledgerlink.testing import fake_store, invoke_cli, reset_fake_stores
from ledgerlink_billbee.sandbox import DEMO_SHOP_ID, BillbeeSandbox

BASE = 300000191000000


def order(n: int, *, vat_mode: int, country: str, vat_id: str | None = None, zero: bool = False) -> dict[str, Any]:
    """The demo's grinder order (49.00 at 19 % + 4.90 shipping) as order BASE + n, from a
    buyer in ``country``; ``zero``: every line at 0 % (Billbee's tax-free tax index 0)."""
    orders = BillbeeSandbox.demo_seed()["Data"]
    data = copy.deepcopy(next(o for o in orders if o["BillBeeOrderId"] == 300000180000002))
    ident = BASE + n
    data.update({"BillBeeOrderId": ident, "Id": f"SW-{ident}", "OrderNumber": f"SW-{ident}", "VatMode": vat_mode,
                 "InvoiceNumber": 7000 + n, "LastModifiedAt": f"2025-03-01T10:{n:02d}:00.000"})
    data["Payments"][0]["TransactionId"] = f"PAY-{ident}"
    for address in (data["InvoiceAddress"], data["ShippingAddress"]):
        address["CountryISO2"] = address["Country"] = country
    if vat_id:
        data["CustomerVatId"] = vat_id
    if zero or vat_mode in (1, 2, 3):
        for item in data["OrderItems"]:
            item["TaxAmount"], item["TaxIndex"] = Decimal(0), 0
        data["TaxRate1"] = data["TaxRate2"] = Decimal(0)
    return data


CASES = {
    # n: (order, the reason's words that name both facts)
    1: (order(1, vat_mode=2, country="AT"), "intra-EU supply, but the buyer has no VAT id"),
    2: (order(2, vat_mode=2, country="DE", vat_id="DE123456789"),
        "intra-EU supply, but the buyer is in DE, the seller's own country"),
    3: (order(3, vat_mode=3, country="FR"), "export, but the buyer's address is in FR, inside the EU"),
    4: (order(4, vat_mode=1, country="DE"),
        "small business (no VAT), but the pipeline's seller is not a small business"),
    5: (order(5, vat_mode=0, country="AT", zero=True),
        "charges no VAT (0 %) and the source states no reason"),
}
GOOD = {
    6: order(6, vat_mode=2, country="AT", vat_id="ATU12345678"),  # a real intra-EU supply
    7: order(7, vat_mode=3, country="CH"),  # a real export
    8: order(8, vat_mode=0, country="DE"),  # 19 % at home
}


def test_vat_modes_the_facts_contradict_are_quarantined_through_the_cli(tmp_path: Path) -> None:
    reset_fake_stores()
    store = f"billbee-hints-{tmp_path.name}"
    seed = [o for o, _ in CASES.values()] + list(GOOD.values())
    sandbox = BillbeeSandbox(seed=seed, username=f"{uuid.uuid4().hex[:8]}@example.com", throttle=False)
    with SandboxServer(sandbox) as server:
        config = tmp_path / "ledgerlink.toml"
        config.write_text(f'''[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.shop]
plugin = "billbee"
api_key = "${{BILLBEE_API_KEY}}"
username = "{sandbox.username}"
api_password = "${{BILLBEE_API_PASSWORD}}"
base_url = "{server.url}/api/v1"
shops = [{DEMO_SHOP_ID}]
order_states = ["paid", "shipped", "closed"]
start_date = "2025-01-01"

[connections.books]
plugin = "fake-target"
store = "{store}"

[[pipelines]]
name = "shop"
source = "shop"
target = "books"
''', encoding="utf-8")
        env = {"BILLBEE_API_KEY": sandbox.api_key, "BILLBEE_API_PASSWORD": sandbox.api_password}
        run = invoke_cli(["-c", str(config), "run", "--json"], env=env)
        assert run.exit_code == 1, run.output  # quarantined: a person must look
        again = invoke_cli(["-c", str(config), "run", "--json"], env=env)
        status = invoke_cli(["-c", str(config), "status", "--json"], env=env)
    rows = {row["source_ref"]: row for row in json.loads(status.output)}
    for n, (_, because) in CASES.items():
        row = rows[str(BASE + n)]
        assert row["state"] == "quarantined" and because in row["reason"], (n, row["reason"])
    for n in GOOD:
        assert rows[str(BASE + n)]["state"] == "pushed", (n, rows[str(BASE + n)]["reason"])
    pushes = [w[1] for w in fake_store(store)["writes"] if w[0] == "push"]
    assert sorted(pushes) == sorted(str(BASE + n) for n in GOOD)  # nothing of the quarantined, nothing twice
    assert json.loads(again.output)[0]["documents"] == []
    reset_fake_stores()
