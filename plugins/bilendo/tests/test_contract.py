"""ledgerlink's target contract against the Bilendo sandbox."""

from __future__ import annotations

from typing import Any

from ledgerlink.testing import StatusMapperContract, TargetContract
from ledgerlink_bilendo import undocumented as U
from ledgerlink_bilendo.sandbox import BilendoSandbox


class TestBilendoContract(TargetContract):
    plugin = "bilendo"
    rules: list[dict[str, Any]] = [{"when": {}, "account": "8400"}]

    def make_sandbox(self) -> BilendoSandbox:
        return BilendoSandbox()

    def connection_settings(self, sandbox: BilendoSandbox) -> tuple[dict[str, Any], dict[str, str]]:
        settings, env = sandbox.demo_connection("http://127.0.0.1:9")
        settings["requests_per_second"] = 1000  # the default (5 a second, assumed) makes the contract slow
        return settings, env

    def stored_refs(self, sandbox: BilendoSandbox) -> list[str]:
        return [invoice["external_id"] for invoice in sandbox.state["invoices"].values()]


class TestBilendoStatusMapperContract(StatusMapperContract):
    mapper = "bilendo"
    # Every status the target reports (undocumented.py's assumed API values), but "deleted":
    # a 404 is reported as "deleted" and kept unknown on purpose (see undocumented.STATUS_DELETED).
    raw_statuses = (U.STATUS_DRAFT, U.STATUS_OPEN, U.STATUS_SENT, U.STATUS_DUE, U.STATUS_OVERDUE,
                    U.reminder_status(1), U.reminder_status(2), U.reminder_status(3), U.STATUS_PARTIALLY_PAID,
                    U.STATUS_PAID, U.STATUS_CANCELLED, U.STATUS_COLLECTION)


class TestBilendoGermanStatusMapperContract(TestBilendoStatusMapperContract):
    mapper = "bilendo_de"
