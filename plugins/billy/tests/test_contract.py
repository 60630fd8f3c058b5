"""ledgerlink's target contract, run against the Billy sandbox through the real engine.

The contract's sample documents are German (19 % and 7 %, seller in DE), so the
sandbox is seeded with two German-style rulesets; the pipeline rule books the 7 %
lines with the 7 % ruleset, everything else goes through the templates.
"""

from __future__ import annotations

from typing import Any

from ledgerlink.testing import StatusMapperContract, TargetContract
from ledgerlink_billy.sandbox import BillySandbox

GERMAN_RATES = {
    "taxRates": [
        {"id": "tr_de19", "name": "Umsatzsteuer 19%", "abbreviation": "U19", "rate": 0.19,
         "appliesToSales": True, "isActive": True},
        {"id": "tr_de7", "name": "Umsatzsteuer 7%", "abbreviation": "U7", "rate": 0.07,
         "appliesToSales": True, "isActive": True},
    ],
    "salesTaxRulesets": [
        {"id": "rs_de19", "name": "Salg 19%", "abbreviation": "DE19", "fallbackTaxRateId": "tr_de19"},
        {"id": "rs_de7", "name": "Salg 7%", "abbreviation": "DE7", "fallbackTaxRateId": "tr_de7"},
    ],
}


class TestBillyContract(TargetContract):
    plugin = "billy"
    rules = [{"when": {"tax_rate": 7}, "tax_rule": "DE7"}]
    # the templates book every other line; the documents are in EUR, the sandbox books in DKK
    pipeline_options = {"require_rules": False, "exchange_rates": {"EUR": "7.46"}}
    booked_settings = {"auto_book": True}  # payments and credit notes need approved invoices, not drafts

    def make_sandbox(self) -> BillySandbox:
        return BillySandbox(seed=GERMAN_RATES)

    def connection_settings(self, sandbox: Any) -> tuple[dict[str, Any], dict[str, str]]:
        settings, env = sandbox.demo_connection("http://billy.sandbox")
        settings["goods_domestic"] = {"account": "1110", "vat": "DE19"}
        settings["shipping_domestic"] = {"account": "1150", "vat": "Salg 19%"}
        settings["requests_per_second"] = 100
        return settings, env

    def stored_refs(self, sandbox: Any) -> list[str]:
        # The contract's documents are numbered RE-1000+n for order-n; Billy keeps the number.
        return [f"order-{int(i['invoiceNo'].removeprefix('RE-')) - 1000}"
                for i in sandbox.state["invoices"].values()]

    def stored_payments(self, sandbox: Any) -> list[Any]:
        return list(sandbox.state.get("bankPayments", {}).values())


class TestBillyStatusMapperContract(StatusMapperContract):
    mapper = "billy"
    # every word statuses.raw_status() gives an invoice
    raw_statuses = ("draft", "approved", "sent", "overdue", "partially_paid", "paid", "credited", "voided", "deleted")
