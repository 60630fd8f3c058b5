"""The installed plugin through the real ledgerlink CLI: entry point, demo, a run."""

from __future__ import annotations

import httpx
import pytest
from ledgerlink import SandboxServer
from ledgerlink.testing import fake_store, invoke_cli
from ledgerlink_shipmondo.sandbox import ShipmondoSandbox


def test_the_entry_point_registers_the_source_and_its_demo():
    result = invoke_cli(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "shipmondo" in result.json["sources"]
    listed = invoke_cli(["demo", "--list"])
    assert "shipmondo-billy: shipmondo -> billy (ledgerlink-shipmondo)" in listed.output


def test_a_run_through_the_cli_into_the_fake_target(tmp_path):
    with SandboxServer(ShipmondoSandbox(seed=ShipmondoSandbox.demo_seed())) as server:
        settings, env = server.sandbox.demo_connection(server.url)
        handled = sum(1 for o in server.sandbox.state["sales_orders"].values()
                      if o["fulfillment_status"] == "fulfilled" and o["order_status"] != "cancelled")
        config = tmp_path / "ledgerlink.toml"
        config.write_text(
            f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
            '[connections.shop]\nplugin = "shipmondo"\napi_user = "${SHIPMONDO_API_USER}"\n'
            'api_key = "${SHIPMONDO_API_KEY}"\n'
            f'base_url = "{settings["base_url"]}"\nrequests_per_second = 1000\n\n'
            '[connections.books]\nplugin = "fake-target"\n\n'
            '[[pipelines]]\nname = "p"\nsource = "shop"\ntarget = "books"\nbook_currency = "DKK"\nexchange_rates = { EUR = 7.46 }\n'
            'rules = [{ when = {}, account = "1000" }]\n',
            encoding="utf-8",
        )
        first = invoke_cli(["-c", str(config), "run", "--json"], env=env)
        again = invoke_cli(["-c", str(config), "run", "--json"], env=env)
    states = [d["state"] for d in invoke_cli(["-c", str(config), "status", "--json"]).json]
    assert first.exit_code == 1, first.stderr  # NW-1021 is quarantined: a person must look
    # every handled order but two, and the refunds of handled orders: NW-1021 does not add
    # up, and NW-1018 sells a gift card at 0 % with no reason stated (0 % is no Danish rate;
    # a gift card sold is a means of payment, booked by hand)
    quarantined = {d["number"]: d["reason"] for d in invoke_cli(["-c", str(config), "status", "--json"]).json
                   if d["state"] == "quarantined"}
    assert states.count("pushed") >= handled - 2 and len(quarantined) == 2, quarantined
    assert "0 % is not a VAT rate of DK" in quarantined["NW-1018"]
    assert "do not add up" in quarantined["NW-1021"]
    [rerun] = again.json
    assert not [d for d in rerun["documents"] if d["state"] == "pushed"]


@pytest.mark.parametrize("on_cancel", ["flag", "reverse"])
def test_an_order_cancelled_after_transfer_is_reported_or_reversed_through_the_cli(tmp_path, on_cancel):
    with SandboxServer(ShipmondoSandbox(seed=ShipmondoSandbox.demo_seed())) as server:
        settings, env = server.sandbox.demo_connection(server.url)
        config = tmp_path / "ledgerlink.toml"
        config.write_text(
            f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
            '[connections.shop]\nplugin = "shipmondo"\napi_user = "${SHIPMONDO_API_USER}"\n'
            'api_key = "${SHIPMONDO_API_KEY}"\n'
            f'base_url = "{settings["base_url"]}"\nrequests_per_second = 1000\n\n'
            f'[connections.books]\nplugin = "fake-target"\nstore = "shipmondo-cancel-{on_cancel}"\n\n'
            '[[pipelines]]\nname = "p"\nsource = "shop"\ntarget = "books"\nbook_currency = "DKK"\n'
            f'exchange_rates = {{ EUR = 7.46 }}\non_cancel = "{on_cancel}"\n'
            'rules = [{ when = {}, account = "1000" }]\n',
            encoding="utf-8",
        )
        invoke_cli(["-c", str(config), "run"], env=env)
        pushed = {d["source_ref"]: d for d in invoke_cli(["-c", str(config), "status", "--json"]).json
                  if d["state"] == "pushed" and "~" not in d["source_ref"]}
        victim = sorted(pushed)[0]
        httpx.post(f"{server.url}/__sandbox__/sales_orders/{victim}", json={"order_status": "cancelled"}).raise_for_status()
        second = invoke_cli(["-c", str(config), "run", "--json"], env=env)
        third = invoke_cli(["-c", str(config), "run", "--json"], env=env)
    [report] = second.json
    [outcome] = [d for d in report["documents"] if d["source_ref"] == victim]
    status = {d["source_ref"]: d for d in invoke_cli(["-c", str(config), "status", "--json"]).json}
    writes = [w[1] for w in fake_store(f"shipmondo-cancel-{on_cancel}")["writes"] if w[0] == "push"]
    if on_cancel == "flag":
        assert second.exit_code == 1 and outcome["state"] == "cancelled"  # a person must reverse it
        assert status[victim]["changed"].startswith("cancelled after transfer")
        assert f"{victim}~reversal" not in writes
    else:
        assert outcome["state"] == "reversed"
        assert status[f"{victim}~reversal"]["state"] == "pushed"
        assert writes.count(f"{victim}~reversal") == 1
    assert [d for d in third.json[0]["documents"] if d["source_ref"].startswith(victim)] == []  # said once
