"""The Shipmondo source against its sandbox with the demo data: every order maps or is
refused with its reason, the cursor resumes, paging and 429s lose nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ledgerlink import BrokenDocument, ConnectionError_, Document, DocumentKind
from ledgerlink_shipmondo.sandbox import ShipmondoSandbox


def test_check_counts_the_orders(sandbox, source):
    said = source(sandbox).check()
    assert said.endswith(f": {len(sandbox.state['sales_orders'])} sales orders")
    assert "5e1f0c2a" not in said  # the API user appears only as a key id


def test_every_demo_order_maps_or_names_why_not(sandbox, source):
    items = list(source(sandbox).documents(None))
    orders = sandbox.state["sales_orders"]
    sales = [i for i in items if not i.source_ref.endswith("~refund")]
    assert sorted(i.source_ref for i in sales) == sorted(orders)
    broken = [i for i in items if isinstance(i, BrokenDocument)]
    # the order like the recorded example: its lines say 0 % VAT, its summary 25 %
    assert [(b.number, b.quarantine) for b in broken] == [("NW-1021", True)]
    for item in items:
        if isinstance(item, Document) and item.kind == DocumentKind.INVOICE:
            details = orders[item.source_ref]["payment_details"]
            assert item.total_gross == Decimal(details["amount_including_vat"]).quantize(Decimal("0.01"))
            assert item.total_tax == Decimal(details["vat_amount"]).quantize(Decimal("0.01"))
            assert item.consistency_problems() == []
    refunds = [i for i in items if i.source_ref.endswith("~refund")]
    assert refunds and all(isinstance(r, Document) and r.reverses and r.total_gross < 0 for r in refunds)


def test_documents_come_in_updated_at_order_and_a_resumed_read_loses_nothing(sandbox, source):
    items = list(source(sandbox, cursor_overlap_minutes=0).documents(None))
    from datetime import datetime

    moments = [datetime.fromisoformat(i.cursor) for i in items]
    assert moments == sorted(moments)
    middle = items[len(items) // 2]
    resumed = [i.source_ref for i in source(sandbox, cursor_overlap_minutes=0).documents(middle.cursor)]
    later = [i.source_ref for i in items[len(items) // 2:]]
    assert set(later) <= set(resumed)
    assert set(resumed) - set(later) <= {i.source_ref for i in items if i.cursor == middle.cursor}


def test_an_order_handled_later_is_read_again_and_becomes_ready(sandbox, source):
    first = {i.source_ref: i for i in source(sandbox).documents(None)}
    waiting = next(ref for ref, i in first.items() if isinstance(i, Document) and i.skip_reason
                   and "not handled yet" in i.skip_reason)
    cursor = max(i.cursor for i in first.values() if i.cursor)
    sandbox.state["sales_orders"][waiting].update(fulfillment_status="fulfilled", order_status="sent",
                                                  updated_at=sandbox.now())
    again = {i.source_ref: i for i in source(sandbox).documents(cursor)}
    assert waiting in again and again[waiting].skip_reason is None


def test_small_pages_and_a_429_storm_lose_nothing(source):
    sandbox = ShipmondoSandbox(seed=ShipmondoSandbox.demo_seed())
    base = sorted(i.source_ref for i in source(sandbox).documents(None))
    sandbox.faults.rate_429, sandbox.faults.retry_after = 0.4, 0.01
    sandbox._rng.seed(7)
    before = len(sandbox.requests)
    paged = sorted(i.source_ref for i in source(sandbox, page_size=4).documents(None))
    assert paged == base
    asked = sandbox.requests[before:]
    assert any(r["status"] == 429 for r in asked)
    assert all("per_page=4" in r["query"] for r in asked if r["path"].endswith("/sales_orders"))
    assert len({r["query"] for r in asked if r["status"] == 200}) >= len(sandbox.state["sales_orders"]) // 4


def test_one_shops_connection_leaves_the_other_shops_orders_out(sandbox, source):
    items = list(source(sandbox, shops=["Nordlys Outlet"]).documents(None))
    shops = {sandbox.state["sales_orders"][i.source_ref.removesuffix("~refund")]["source_name"] for i in items}
    assert shops == {"Nordlys Outlet"}


def test_wrong_credentials_are_one_clear_line(sandbox, source):
    with pytest.raises(ConnectionError_, match="rejected the credentials .*api_user and api_key"):
        source(sandbox, api_key="wrong").check()
