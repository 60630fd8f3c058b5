"""ledgerlink's source contract, run against the 1CRM sandbox with the demo data.

The suite forces paging (``page_size``), injects 429s with Retry-After, tries wrong
credentials (the OAuth client secret), a broken record and the cursor; each failure names
the bug and the document."""

from __future__ import annotations

from typing import Any

from ledgerlink.testing import SourceContract
from ledgerlink_onecrm.sandbox import OnecrmSandbox

SKIPPED = {"RE-2026-020", "RE-2026-025"}  # dated before the start date; paid in 1CRM already


def by_number(sandbox: OnecrmSandbox, number: str) -> dict[str, Any]:
    return next(i for i in sandbox.state["models"]["Invoice"].values() if i["full_number"] == number)


class TestOnecrmSourceContract(SourceContract):
    plugin = "onecrm"
    other_tax_rates = ()

    def make_sandbox(self) -> OnecrmSandbox:
        return OnecrmSandbox(seed=OnecrmSandbox.demo_seed())

    def connection_settings(self, sandbox: Any) -> tuple[dict[str, Any], dict[str, str]]:
        settings, env = sandbox.demo_connection("https://crm.test")
        return {**settings, "requests_per_second": 1000}, env

    def expected_refs(self, sandbox: Any) -> set[str]:
        return set(sandbox.state["models"]["Invoice"])  # transferable, skipped, cancelled and broken alike

    def expected_skipped(self, sandbox: Any) -> set[str]:
        return {by_number(sandbox, n)["id"] for n in SKIPPED}

    def break_record(self, sandbox: Any) -> str:
        invoice = by_number(sandbox, "RE-2026-004")
        line = next(ln for ln in sandbox.state["models"]["InvoiceLine"].values() if ln["invoice_id"] == invoice["id"])
        line["ext_price"] = "1.234,50"
        return str(invoice["id"])
