"""Peak memory of a first listing through the 1CRM and Cobot sources (issue 22, item 4).

Run: ``.venv/bin/python bench/bench_streaming_sources.py`` (``--docs 2000 20000`` to
choose the sizes, ``--source onecrm`` or ``cobot`` for one of them; ``--code DIR`` lists
with the plugin packages found in ``DIR/plugins/<plugin>``, e.g. an unpacked older commit,
to compare before and after; ``--set name=value`` sets a connection setting).

Each size is a first listing over ``n`` documents:

- 1CRM: ``n`` invoices (one line group, two lines, a group tax of 19 %) for 200
  accounts, one modified a minute; Cobot: ``n`` invoices (two items with accounting
  codes, 19 %) for 200 members, dated evenly over the 365 days before today, so a
  bigger space has more invoices a month, as a bigger space would;
- the vendor's sandbox runs in its own process (this script with ``--sandbox``: the
  plugin's sandbox behind ``SandboxServer`` on loopback), so its memory (every
  document) is not counted;
- the listing is a fresh child process (this script with ``--child``) that builds the
  real source with the engine's HTTP client (client-side pace raised to 10,000
  requests a second, so the run is not paced at the vendor's limits) and iterates
  ``source.documents(None)``, checking that the cursors never go back and (in the parent,
  from the refs it wrote to a file) that no document comes twice; its peak RSS is ``ru_maxrss`` from ``os.wait4`` of that one child.
  The same child with ``--child ... 0`` builds the source and lists nothing: what the
  interpreter and the imports take (``baseline``).

So what grows is the source's (and the mapping's, and the HTTP client's).
Goal, as for the Billbee source (benchmark 9): RSS(10n) / RSS(n) <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit

GOAL = 1.2
HERE = Path(__file__).resolve().parent
PLUGINS = {"onecrm": "onecrm_source", "cobot": "cobot_source"}
ONECRM_BASE = datetime(2024, 1, 1, 8, 0, 0)


# -- seeds ---------------------------------------------------------------------------------
def onecrm_seed(n: int) -> dict[str, Any]:
    accounts = [{"id": f"acc-{a:04d}-4c1d-8e2a-{a:012d}", "name": f"Kunde {a} GmbH",
                 "email1": f"buchhaltung{a}@kunde.example", "phone_office": "+49 30 555 0001",
                 "billing_address_street": f"Hauptstr. {a}", "billing_address_postalcode": "10115",
                 "billing_address_city": "Berlin", "billing_address_country": "Germany", "tax_information": None,
                 "currency_id": "-99", "bilendo_dispatch_c": "Automatisch", "bilendo_language_c": "Deutsch",
                 "date_modified": "2023-11-03 09:00:00"} for a in range(200)]
    seed: dict[str, Any] = {
        "Account": accounts,
        "User": [{"id": "1", "user_name": "admin", "full_name": "Anna Schmidt", "first_name": "Anna",
                  "last_name": "Schmidt", "email1": "anna@nordlicht.example", "address_street": "Hauptstr. 1",
                  "address_city": "Berlin", "address_postalcode": "10115", "address_country": "Germany"}],
        "Invoice": [], "InvoiceLineGroup": [], "InvoiceLine": [], "InvoiceAdjustment": [],
    }
    for i in range(n):
        inv = f"inv-{i:04x}-4c1d-8e2a-{i:012d}"
        group = f"grp-{i:04x}-4c1d-8e2a-{i:012d}"
        modified = ONECRM_BASE + timedelta(minutes=i)
        account = accounts[i % len(accounts)]
        seed["Invoice"].append({
            "id": inv, "deleted": "0", "prefix": "RE-", "invoice_number": f"{i + 1:06d}",
            "name": f"Leistungen {i}", "invoice_date": modified.date().isoformat(),
            "due_date": (modified.date() + timedelta(days=14)).isoformat(), "terms": "Net 15 Days",
            "billing_account_id": account["id"], "billing_account": account["name"],
            "billing_address_street": account["billing_address_street"], "billing_address_city": "Berlin",
            "billing_address_postalcode": "10115", "billing_address_country": "Germany",
            "billing_email": account["email1"], "currency_id": "-99", "currency": "Euro: €", "exchange_rate": "1",
            "amount": "149.35", "amount_usdollar": "149.35", "amount_due": "149.35", "subtotal": "125.50",
            "pretax": "125.50", "tax_exempt": "0", "discount_before_taxes": "1", "cancelled": "0",
            "shipping_stage": "Pending", "assigned_user_id": "1", "bilendo_status_c": None,
            "date_entered": modified.strftime("%Y-%m-%d %H:%M:%S"),
            "date_modified": modified.strftime("%Y-%m-%d %H:%M:%S"),
        })
        seed["InvoiceLineGroup"].append({"id": group, "parent_id": inv, "name": "Leistungen", "position": "1",
                                         "group_type": "products", "subtotal": "125.50", "total": "149.35"})
        for pos, (name, qty, price, total) in enumerate((("Beratung (Stunden)", "2", "50.00", "100.00"),
                                                         ("Hosting", "1", "25.50", "25.50")), start=1):
            seed["InvoiceLine"].append({
                "id": f"ln{pos}-{i:04x}-4c1d-8e2a-{i:012d}", "invoice_id": inv, "line_group_id": group,
                "position": str(pos), "name": name, "quantity": qty, "unit_price": price, "ext_price": total,
                "mfr_part_no": f"ART-{pos}", "tax_class_id": "tc-standard", "sum_of_components": "0",
                "parent_id": None})
        seed["InvoiceAdjustment"].append({
            "id": f"tax-{i:04x}-4c1d-8e2a-{i:012d}", "invoice_id": inv, "line_group_id": group, "line_id": None,
            "position": "3", "name": "MwSt. 19%", "related_type": "TaxRates", "related_id": "tr-19", "rate": "19",
            "type": "StandardTax", "amount": "23.85", "tax_class_id": None})
    return seed


def cobot_seed(n: int) -> dict[str, Any]:
    from ledgerlink_cobot.sandbox import CobotSandbox

    demo = CobotSandbox.demo_seed()
    template = demo["invoices"][0]
    first = datetime.now(UTC).date() - timedelta(days=365)
    invoices = []
    for i in range(n):
        invoice = json.loads(json.dumps(template))
        invoice["id"] = f"f{i:031x}"
        attrs = invoice["attributes"]
        day = (first + timedelta(days=(i * 365) // n)).isoformat()
        attrs.update(number=f"CU-{i + 1:07d}", invoiceDate=day, dueDate=day, paidDate=day, remindAt=day)
        attrs["pdf"]["url"] = f"https://api.cobot.me/invoices/{invoice['id']}.pdf?token=1"
        invoice["relationships"]["debitor"]["data"]["id"] = f"{i % 200:032x}"
        invoice["relationships"].pop("paymentMethods", None)
        invoices.append(invoice)
    return {"space": demo["space"], "invoices": invoices}


# -- the processes ------------------------------------------------------------------------
def serve_sandbox(plugin: str, docs: int) -> None:
    """--sandbox PLUGIN N: make the seed of N documents, serve it on loopback, print the URL and
    the seconds the seed took; stop when stdin closes. (The seed is made here, not in the
    parent: a child's ru_maxrss counts the memory of the process it was forked from.)"""
    from ledgerlink import SandboxServer

    sandbox: Any
    started = time.perf_counter()
    data = onecrm_seed(docs) if plugin == "onecrm" else cobot_seed(docs)
    if plugin == "onecrm":
        from ledgerlink_onecrm.sandbox import OnecrmSandbox

        sandbox = OnecrmSandbox(seed=data)
    else:
        from ledgerlink_cobot.sandbox import CobotSandbox

        sandbox = CobotSandbox(seed=data)
    del data
    with SandboxServer(sandbox) as server:
        print(server.url, f"{time.perf_counter() - started:.0f}", flush=True)
        sys.stdin.read()
        counts: dict[str, int] = {}
        for r in sandbox.requests:
            parts = r["path"].split("/")
            shape = "/".join(p if p.replace("_", "").isalpha() or p in ("api.php", "v2", "") else "{id}" for p in parts)
            counts[f'{r["method"]} {shape}'] = counts.get(f'{r["method"]} {shape}', 0) + 1
        print(json.dumps(counts), flush=True)


def settings_for(plugin: str, url: str, extra: dict[str, Any]) -> dict[str, Any]:
    if plugin == "onecrm":
        from ledgerlink_onecrm.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

        base = {"base_url": url + "/api.php", "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET,
                "requests_per_second": 10_000}
    else:
        from ledgerlink_cobot.sandbox import DEMO_TOKEN

        first = datetime.now(UTC).date() - timedelta(days=366)
        base = {"api_token": DEMO_TOKEN, "subdomain": "co-up", "base_url": url + "/v2",
                "base_url_v1": url + "/api", "start_date": first.isoformat(), "requests_per_second": 10_000}
    return {**base, **extra}


def child(plugin: str, url: str, settings_json: str, limit: int, refs_file: str) -> None:
    """--child PLUGIN URL SETTINGS LIMIT REFS: list ``source.documents(None)`` (LIMIT 0: build
    the source only), writing each ref to the file REFS (the parent counts repeats: a set
    here would be counted in the child's peak); print one JSON line: documents, cursors that
    went back."""
    from ledgerlink import ConnectorContext
    from ledgerlink._http import make_http_client

    if plugin == "onecrm":
        from ledgerlink_onecrm.source import OnecrmSettings as settings_class
        from ledgerlink_onecrm.source import OnecrmSource as source_class
    else:
        from ledgerlink_cobot.source import CobotSettings as settings_class  # type: ignore[assignment]
        from ledgerlink_cobot.source import CobotSource as source_class  # type: ignore[assignment]
    module = sys.modules[source_class.__module__].__file__
    source = source_class(settings_class(**json.loads(settings_json)),  # type: ignore[arg-type]
                          ConnectorContext(connection="bench", http_factory=make_http_client))
    count, back, last = 0, 0, ""
    try:
        with open(refs_file, "w", encoding="utf-8") as refs:
            if limit:
                for item in source.documents(None):
                    count += 1
                    cursor = str(item.cursor or "")
                    if cursor < last:
                        back += 1
                    last = cursor
                    refs.write(item.source_ref + "\n")
    finally:
        source.close()
    print(json.dumps({"documents": count, "cursor_back": back, "code": module}), flush=True)


def run_child(plugin: str, url: str, settings: dict[str, Any], limit: int, code: Path | None
              ) -> tuple[float, float, dict[str, Any]]:
    env = dict(os.environ)
    if code is not None:
        path = str(code / "plugins" / PLUGINS[plugin])
        env["PYTHONPATH"] = path + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.NamedTemporaryFile(prefix="ledgerlink-bench-refs-") as refs:
        rss, elapsed, status, text = benchkit.run_measured(
            [str(Path(__file__)), "--child", plugin, url, json.dumps(settings), str(limit), refs.name], env)
        listed = Path(refs.name).read_text(encoding="utf-8").split()
    if status != 0:
        raise SystemExit(f"the listing child failed:\n{text[-3000:]}")
    said = json.loads(text.splitlines()[-1])
    said["repeated"] = len(listed) - len(set(listed))
    return rss, elapsed, said


def measure(plugin: str, docs: int, code: Path | None, extra: dict[str, Any]) -> dict[str, Any]:
    with benchkit.sandbox_process(str(Path(__file__)), "--sandbox", plugin, str(docs)) as sandbox:
        assert sandbox.stdout is not None
        started = sandbox.stdout.readline().split()
        if not started:
            raise SystemExit("the sandbox did not start")
        url, made = started[0], float(started[1])
        settings = settings_for(plugin, url, extra)
        base_rss, _, _ = run_child(plugin, url, settings, 0, code)
        rss, elapsed, said = run_child(plugin, url, settings, docs, code)
        counts = benchkit.sandbox_report(sandbox)
    return {"docs": docs, "rss": rss, "baseline": base_rss, "seconds": elapsed, "seed_seconds": made,
            "requests": counts, **said}


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--child"]:
        child(args_in[1], args_in[2], args_in[3], int(args_in[4]), args_in[5])
        return 0
    if args_in[:1] == ["--sandbox"]:
        serve_sandbox(args_in[1], int(args_in[2]))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--source", choices=sorted(PLUGINS), nargs="+", default=sorted(PLUGINS))
    parser.add_argument("--code", type=Path, default=None,
                        help="list with the plugin packages of DIR/plugins/<plugin> (e.g. an older commit, unpacked)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a connection setting (JSON value, else a string)")
    args = parser.parse_args(args_in)
    extra: dict[str, Any] = {}
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            extra[name] = json.loads(value)
        except ValueError:
            extra[name] = value
    benchkit.header("streaming sources: peak RSS of a first listing (source.documents(None)) through the 1CRM "
                    f"and Cobot sources, the sandbox in its own process; code: {args.code or 'this checkout'}"
                    f"{'; settings ' + json.dumps(extra) if extra else ''}")
    for plugin in args.source:
        peaks = {}
        for docs in args.docs:
            found = measure(plugin, docs, args.code, extra)
            peaks[docs] = found["rss"]
            print(f"   {plugin:>6} {docs:>7} documents: peak RSS {found['rss']:7.1f} MiB (baseline "
                  f"{found['baseline']:.1f}), listed {found['documents']} in {found['seconds']:6.1f} s, "
                  f"repeated {found['repeated']}, cursor back {found['cursor_back']}", flush=True)
            print(f"            code: {found['code']}; sandbox seeded in {found['seed_seconds']:.0f} s", flush=True)
            print(f"            requests to the sandbox: {found['requests']}", flush=True)
        if len(peaks) >= 2:
            small, large = min(peaks), max(peaks)
            ratio = peaks[large] / peaks[small]
            print(f"   {plugin:>6} ratio {large} / {small}: {ratio:.2f} (goal <= {GOAL}: "
                  f"{'met' if ratio <= GOAL else 'NOT met'})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
