"""The Python API for host applications."""

from __future__ import annotations

from pathlib import Path

from ledgerlink import api
from ledgerlink.testing import fake_store, sample_document

CONFIG = """
[connections.shop]
plugin = "fake-source"
store = "shop"

[connections.books]
plugin = "fake-target"
store = "books"

[[pipelines]]
name = "p"
source = "shop"
target = "books"
"""


def test_a_host_application_pushes_one_invoice_once(tmp_path: Path) -> None:
    (tmp_path / "ledgerlink.toml").write_text(CONFIG)
    runtime = api.load(tmp_path / "ledgerlink.toml")
    outcome = api.push(runtime, "p", sample_document(7))
    assert outcome is not None and outcome.state == "pushed"
    again = api.push(runtime, "p", sample_document(7))
    assert again is None  # already there, nothing new
    assert list(fake_store("books")["pushed"]) == ["order-7"]
    assert (tmp_path / "ledger.db").exists() or (tmp_path / "ledgerlink.db").exists()


def test_run_through_the_api(tmp_path: Path) -> None:
    (tmp_path / "ledgerlink.toml").write_text(CONFIG)
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    [result] = api.run(api.load(tmp_path / "ledgerlink.toml"))
    assert result.counts() == {"pushed": 1}
