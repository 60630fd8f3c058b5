"""ledgerlink's source contract, run against the Shipmondo sandbox with the demo data.

The suite forces paging (through ``page_size``), injects 429s with Retry-After, tries
wrong credentials, a broken record and the cursor; each failure names the bug and
the document.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledgerlink.testing import SourceContract
from ledgerlink_shipmondo.mapping import REFUND_SUFFIX
from ledgerlink_shipmondo.sandbox import ShipmondoSandbox


def _refunded(order: dict[str, Any]) -> bool:
    amount = (order.get("payment_details") or {}).get("refunded_amount")
    return bool(amount) and Decimal(amount) > 0 and order.get("order_status") != "cancelled"


class TestShipmondoSourceContract(SourceContract):
    plugin = "shipmondo"
    cursor_settings = {"cursor_overlap_minutes": 0}

    def make_sandbox(self) -> ShipmondoSandbox:
        return ShipmondoSandbox(seed=ShipmondoSandbox.demo_seed())

    def connection_settings(self, sandbox: Any) -> tuple[dict[str, Any], dict[str, str]]:
        settings, env = sandbox.demo_connection("http://shipmondo.sandbox")
        return {**settings, "requests_per_second": 1000}, env

    def expected_refs(self, sandbox: Any) -> set[str]:
        # every order (transferable, skipped, cancelled, broken) and the refund of each refunded one
        orders = sandbox.state["sales_orders"]
        return set(orders) | {ref + REFUND_SUFFIX for ref, order in orders.items() if _refunded(order)}

    def expected_skipped(self, sandbox: Any) -> set[str]:
        # orders not handled yet (and their refunds): full Documents with skip_reason
        waiting = {ref for ref, order in sandbox.state["sales_orders"].items()
                   if order["fulfillment_status"] != "fulfilled" and order["order_status"] != "cancelled"}
        return waiting | {ref + REFUND_SUFFIX for ref in waiting if _refunded(sandbox.state["sales_orders"][ref])}

    def break_record(self, sandbox: Any) -> str:
        ref = next(ref for ref, order in sandbox.state["sales_orders"].items()
                   if order["fulfillment_status"] == "fulfilled" and not _refunded(order))
        sandbox.state["sales_orders"][ref]["order_lines"][0]["amount_excluding_vat"] = "n/a"
        return ref
