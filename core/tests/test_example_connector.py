"""The example connector (examples/tinyshop_source.py) through the real CLI into the fake target.

The example is "installed" the way ``pip install`` would: its directory on ``sys.path``
and a ``*.dist-info`` with its entry point (``[ledgerlink] tinyshop = tinyshop_source``),
so ledgerlink's plugin manager finds it like any third-party plugin. Its vendor is served
on loopback by the sandbox kit, so the CLI reaches it over HTTP.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ledgerlink import SandboxServer
from ledgerlink.testing import fake_store, invoke_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tinyshop_source.py"


@pytest.fixture
def tinyshop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example's module, registered as the installed plugin ``tinyshop``."""
    site = tmp_path / "site"
    dist_info = site / "ledgerlink_tinyshop-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: ledgerlink-tinyshop\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text("[ledgerlink]\ntinyshop = tinyshop_source\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    import tinyshop_source

    return tinyshop_source


def test_the_example_runs_through_the_cli_into_the_fake_target(tinyshop: Any, tmp_path: Path) -> None:
    store = f"example-{tmp_path.name}"
    # LEDGERLINK_LOAD_PLUGINS: load the example (and nothing else installed) in a plugin
    # manager of its own, built after the entry point was put on the path
    env = {"LEDGERLINK_LOAD_PLUGINS": "tinyshop"}
    with SandboxServer(tinyshop.TinyShopSandbox()) as server:
        settings, secrets = server.sandbox.demo_connection(server.url)
        config = tmp_path / "ledgerlink.toml"
        config.write_text(
            f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
            f'[connections.shop]\nplugin = "tinyshop"\napi_token = "{settings["api_token"]}"\n'
            f'base_url = "{settings["base_url"]}"\npage_size = 2\n\n'
            f'[connections.books]\nplugin = "fake-target"\nstore = "{store}"\n\n'
            '[[pipelines]]\nname = "shop-to-books"\nsource = "shop"\ntarget = "books"\n'
            'rules = [{ when = {}, account = "8400" }]\n', encoding="utf-8")
        env.update(secrets)
        plugins = invoke_cli(["plugins", "--json"], env=env)
        check = invoke_cli(["-c", str(config), "check"], env=env)
        first = invoke_cli(["-c", str(config), "run"], env=env)
        again = invoke_cli(["-c", str(config), "run", "--json"], env=env)
        pages = [r["query"] for r in server.sandbox.requests if r["path"] == "/api/orders"]
    assert "tinyshop" in plugins.json["sources"] and not plugins.json["problems"], plugins.output
    assert check.exit_code == 0 and "ok   shop (tinyshop): TinyShop at http://127.0.0.1:" in check.output, check
    # one order cannot be read: the run says so and exits 1; the others are transferred
    assert first.exit_code == 1, first.stderr
    assert "failed      shop-to-books A4: TinyShop order A4: Poster gross '12,50 EUR' is not a number" in first.output
    pushed = fake_store(store)["pushed"]
    assert {ref: (doc["number"], doc["gross"], doc["accounts"]) for ref, doc in pushed.items()} == {
        "A1": ("TS-1", "23.80", ["8400"]), "A2": ("TS-2", "15.60", ["8400", "8400"])}
    status = {row["source_ref"]: (row["state"], row["reason"])
              for row in invoke_cli(["-c", str(config), "status", "--json"]).json}
    assert status == {"A1": ("pushed", "contact 10001 (created)"), "A2": ("pushed", "contact 10002 (created)"),
                      "A3": ("skipped", "order status pending is not paid yet"),
                      "A4": ("failed", "TinyShop order A4: Poster gross '12,50 EUR' is not a number")}
    # a second run transfers nothing twice (A4 stays failed until `ledgerlink retry`)
    assert again.exit_code == 0 and again.json[0]["counts"] == {} and len(pushed) == 2
    assert "page=1&size=2" in pages and "page=2&size=2" in pages  # it paged


def test_the_example_runs_as_a_script() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "TinyShop at http://tinyshop.sandbox/api",
        "A1: TS-1 gross 23.80 skip: None",
        "A2: TS-2 gross 15.60 skip: None",
        "A3: None gross 11.90 skip: order status pending is not paid yet",
        "A4: broken: TinyShop order A4: Poster gross '12,50 EUR' is not a number",
    ]
