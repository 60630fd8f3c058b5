"""The story of ``ledgerlink demo shipmondo-billy``: Shipmondo's help page for its Billy
integration (seed 001), run on loopback with the two sandboxes.

1. The webshop's handled orders go to Billy as drafts (Shipmondo's advice: start
   without automatic booking and check the first invoices).
2. The bookkeeper approves the checked drafts in Billy (their payments are booked
   on the next run) and switches ``auto_book`` on; orders handled since (the
   warehouse handles the open ones) are approved at once; refunds that waited for
   their invoice's approval are retried.
3. A second webshop (another order integration of the same company) is bound to the
   same Billy company: its customers who also bought in the first shop are not
   created again (one ``customer_scope`` for both pipelines).
4. A payment captured after an order was transferred is booked on its invoice.
5. Everything again: nothing new.

The story changes the Shipmondo sandbox only through its control endpoints
(``/__sandbox__/sales_orders/{id}``), as an operator's warehouse would.
"""

from __future__ import annotations

from typing import Any

WEBSHOP = "Nordlys Webshop"
OUTLET = "Nordlys Outlet"
SCOPE = "nordlys"


def _orders(story: Any) -> list[dict[str, Any]]:
    return list(story.state("source")["sales_orders"].values())


def _billy(story: Any) -> tuple[int, int, int]:
    state = story.state("target")
    invoices = list(state.get("invoices", {}).values())
    approved = sum(1 for invoice in invoices if invoice.get("state") == "approved")
    return len(invoices), approved, len(state.get("contacts", {}))


def _step(story: Any, title: str) -> None:
    story.echo("")
    story.echo(f"== {title}")


def _totals(story: Any) -> None:
    invoices, approved, contacts = _billy(story)
    story.echo(f"Billy now: {invoices} invoices ({approved} approved, {invoices - approved} drafts), "
               f"{contacts} contacts")


def story(story: Any) -> int:
    webshop = story.connections["shop"]
    webshop["shops"] = [WEBSHOP]
    pipeline = story.pipeline()
    pipeline["customer_scope"] = SCOPE
    pipeline["on_cancel"] = "reverse"
    pipeline["exchange_rates"] = {"EUR": "7.46"}  # the one order in euro, at the operator's rate
    story.connections["books"]["requests_per_second"] = 50  # the Billy sandbox on loopback
    code = 0
    if not story.first_run:
        # The story ran in this folder before: the final set-up, both pipelines once more.
        story.connections["books"]["auto_book"] = True
        story.connections["outlet"] = {**webshop, "shops": [OUTLET]}
        story.pipelines.append({**pipeline, "name": "outlet-to-books", "source": "outlet"})
        _step(story, f"The story already ran in {story.workdir} (--fresh starts it over): both pipelines again")
        results = story.run(summary=False)
        story.echo("  " + "; ".join(f"{r.pipeline}: {_said(r)}" for r in results))
        _totals(story)
        return _failed(results)

    _step(story, f"1. {WEBSHOP}: handled orders into Billy as drafts (auto_book = false)")
    story.connections["books"]["auto_book"] = False
    code |= _failed(story.run("shop-to-books"))
    _totals(story)

    _step(story, "2. The bookkeeper approves the checked drafts in Billy; auto_book = true; the warehouse "
                 "handles the open orders")
    approved = _approve_drafts(story)
    story.echo(f"  approved in Billy by hand: {approved} drafts")
    story.connections["books"]["auto_book"] = True
    handled = []
    for order in _orders(story):
        if (order.get("source_name") == WEBSHOP and order.get("fulfillment_status") != "fulfilled"
                and order.get("order_status") not in ("cancelled",)):
            story.control("source", f"sales_orders/{order['id']}", _handle(order))
            handled.append(str(order.get("order_id")))
    story.echo(f"  handled in Shipmondo: {', '.join(handled) or 'none'}")
    code |= _failed(story.run("shop-to-books"))
    story.echo("  and the refunds that waited for their invoices' approval (ledgerlink retry --quarantined):")
    code |= _failed(story.retry("shop-to-books"))
    _totals(story)

    _step(story, f"3. A second shop, {OUTLET}, bound to the same Billy company (customer_scope = {SCOPE!r})")
    story.connections["outlet"] = {**webshop, "shops": [OUTLET]}
    story.pipelines.append({**pipeline, "name": "outlet-to-books", "source": "outlet"})
    code |= _failed(story.run("outlet-to-books"))
    _totals(story)

    _step(story, "4. A payment captured in Shipmondo after its order was transferred")
    unpaid = [o for o in _orders(story) if o.get("fulfillment_status") == "fulfilled"
              and o.get("order_status") != "cancelled" and not (o.get("payment_details") or {}).get("captured_amount")]
    for order in unpaid[:1]:
        gross = order["payment_details"]["amount_including_vat"]
        story.echo(f"  captured {gross} {order['payment_details'].get('currency_code')} on {order.get('order_id')}")
        story.control("source", f"sales_orders/{order['id']}",
                      {"payment_status": "captured", "payment_details": {"captured_amount": gross}})
    results = story.run(summary=False)
    code |= _failed(results)
    story.echo("  " + "; ".join(f"{r.pipeline}: {_said(r)}" for r in results))
    _totals(story)

    _step(story, "5. Both pipelines again")
    results = story.run(summary=False)
    story.echo("  " + "; ".join(f"{r.pipeline}: {_said(r)}" for r in results))
    _totals(story)
    story.echo("")
    story.echo(f"See every document with: .venv/bin/ledgerlink -c {story.config_file} status")
    return code | _failed(results)


def _approve_drafts(story: Any) -> int:
    """What the bookkeeper does in Billy after checking the drafts: approve them (Billy's
    own API, ``PUT /invoices/{id}``, as Billy's web app does)."""
    import httpx

    books = story.connections["books"]
    token = (story.workdir / books["api_token"]["file"]).read_text("utf-8").strip()
    drafts = [i for i in story.state("target").get("invoices", {}).values()
              if i.get("state") == "draft" and i.get("type", "invoice") == "invoice"]
    with httpx.Client(base_url=books["base_url"], headers={"X-Access-Token": token}, timeout=10) as client:
        for invoice in drafts:
            client.put(f"/invoices/{invoice['id']}", json={"invoice": {"state": "approved"}}).raise_for_status()
    return len(drafts)


def _handle(order: dict[str, Any]) -> dict[str, Any]:
    """What handling an order changes in Shipmondo: sent, fulfilled, one shipment."""
    return {"order_status": "sent", "fulfillment_status": "fulfilled",
            "order_fulfillments": [{"code": f"{order.get('order_id')}-1", "shipment_id": int(order["id"]) + 1,
                                    "created_at": "2026-05-04T14:00:00.000+02:00",
                                    "updated_at": "2026-05-04T14:00:00.000+02:00"}]}


def _said(result: Any) -> str:
    counts = result.counts()
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "nothing new"


def _failed(results: list[Any]) -> int:
    return 1 if any(r.error for r in results) else 0


__all__ = ["story"]
