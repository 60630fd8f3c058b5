"""Benchmark 7: peak memory of a first ``ledgerlink run`` through the real Billbee source.

Run: ``.venv/bin/python bench/bench_streaming.py`` (``--docs 10000 100000`` to choose
the sizes; ``--window N`` sets the connection's ``window_orders``, default the
plugin's).

Each size is a first run over ``n`` Billbee orders:

- the orders are ``benchkit.iter_orders(n)`` (the demo's mix over ``--customers``
  customers, default 1,000 as in benchmark 3, so that the documents are what grows;
  ``--customers 0``: ``n/4``, and the target's contacts grow too)
  re-dated to one order every five minutes from 2 January 2025 (created, invoiced
  and last modified within a few minutes of each other, as in a shop), written to
  a seed file order by order;
- the Billbee sandbox runs in its own process (this script with ``--sandbox``:
  ``BillbeeSandbox(seed=FILE, throttle=False)`` behind ``SandboxServer`` on
  loopback), so its memory (every order) is not counted;
- ``ledgerlink -c FILE run`` is a fresh child process (this script with
  ``--child``: the real CLI, ``ledgerlink._cli.main``, with ``bench/_bench_cli.py``'s
  ``bench-count`` target, which keeps a counter only, and Billbee's client-side
  limits raised as in benchmark 1, so the run is not paced at Billbee's 2 requests
  a second); its peak RSS is ``ru_maxrss`` from ``os.wait4`` of that one child.

So what grows is the Billbee source's, the engine's, the ledger's or the CLI's.
Goal: RSS(100k) / RSS(10k) <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit

GOAL = 1.2
HERE = Path(__file__).resolve().parent
BASE = datetime(2025, 1, 2, 8, 0, 0)
STEP = timedelta(minutes=5)


def redated(n: int, customers: int | None = None) -> Any:
    """``benchkit.iter_orders(n, customers=...)``, order ``i`` created at BASE + i * STEP, invoiced two
    minutes and last modified five minutes (plus a few milliseconds) after that."""
    for i, order in enumerate(benchkit.iter_orders(n, customers=customers)):
        created = BASE + i * STEP
        order["CreatedAt"] = created.isoformat(timespec="seconds")
        if order.get("InvoiceDate"):
            order["InvoiceDate"] = (created + timedelta(minutes=2)).isoformat(timespec="milliseconds")
        for key in ("PayedAt", "ShippedAt", "ConfirmedAt"):
            if order.get(key):
                order[key] = (created + timedelta(minutes=3)).isoformat(timespec="seconds")
        for payment in order.get("Payments") or []:
            if isinstance(payment, dict) and payment.get("PayDate"):
                payment["PayDate"] = (created + timedelta(minutes=3)).isoformat(timespec="seconds")
        order["LastModifiedAt"] = (created + timedelta(minutes=5, milliseconds=(i * 7) % 1000)
                                   ).isoformat(timespec="milliseconds")
        yield order


def write_seed(path: Path, n: int, customers: int | None = None) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write('{"Data": [')
        for i, order in enumerate(redated(n, customers)):
            out.write(("," if i else "") + benchkit.dumps(order))
        out.write("]}")


def config(workdir: Path, url: str, username: str, window: int | None) -> str:
    from ledgerlink_billbee.sandbox import DEMO_SHOP_ID

    rules = "".join(
        f"\n[[pipelines.rules]]\nwhen = {{{', '.join(f'{k} = {json.dumps(v)}' for k, v in r['when'].items())}}}\n"
        f"account = \"{r['account']}\"\n" for r in benchkit.RULES)
    return f"""[ledger]
url = "sqlite:///{workdir / 'ledger.db'}"

[connections.shop]
plugin = "billbee"
api_key = "${{BILLBEE_API_KEY}}"
username = "{username}"
api_password = "${{BILLBEE_API_PASSWORD}}"
base_url = "{url}/api/v1"
shops = [{DEMO_SHOP_ID}]
order_states = ["paid", "shipped", "closed"]
start_date = "2025-01-01"
{f'window_orders = {window}' if window else ''}

[connections.books]
plugin = "bench-count"

[[pipelines]]
name = "billbee-to-count"
source = "shop"
target = "books"
{rules}"""


def serve_sandbox(seed: str) -> None:
    """--sandbox: serve the seed on loopback; print the URL; stop when stdin closes."""
    from decimal import Decimal

    from ledgerlink import SandboxServer
    from ledgerlink_billbee.sandbox import BillbeeSandbox

    with open(seed, encoding="utf-8") as handle:
        data = json.load(handle, parse_float=Decimal)
    sandbox = BillbeeSandbox(seed=data, throttle=False)
    del data
    with SandboxServer(sandbox) as server:
        print(server.url, sandbox.username, sandbox.api_key, sandbox.api_password, flush=True)
        sys.stdin.read()
        requests = [r for r in sandbox.requests if r["path"].startswith("/api/v1/")]
        by_path: dict[str, int] = {}
        for r in requests:
            shape = f'{r["method"]} ' + "/".join("{id}" if part.isdigit() else part for part in r["path"].split("/"))
            by_path[shape] = by_path.get(shape, 0) + 1
        print(json.dumps(by_path), flush=True)


def child(argv: list[str]) -> None:
    """--child ARGS: ``ledgerlink ARGS`` with bench-count and Billbee's client limits raised."""
    benchkit.raise_billbee_client_limits()
    import _bench_cli

    sys.argv = ["ledgerlink", *argv]
    _bench_cli.main()


def measure(docs: int, window: int | None, customers: int | None) -> tuple[float, float, str, int, str]:
    """(peak RSS in MiB, seconds of the run, the CLI's last line, exit code, sandbox request counts)."""
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-stream-") as tmp:
        work = Path(tmp)
        seed = work / "orders.json"
        t0 = time.perf_counter()
        write_seed(seed, docs, customers)
        print(f"   {docs:>7} orders: seed {seed.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.0f} s",
              flush=True)
        with benchkit.sandbox_process(str(Path(__file__)), "--sandbox", str(seed)) as sandbox:
            assert sandbox.stdout is not None
            url, username, key, password = sandbox.stdout.readline().split()
            path = work / "ledgerlink.toml"
            path.write_text(config(work, url, username, window), encoding="utf-8")
            env = {**os.environ, "BILLBEE_API_KEY": key, "BILLBEE_API_PASSWORD": password}
            rss, elapsed, code, text = benchkit.run_measured([str(Path(__file__)), "--child", "-c", str(path), "run"],
                                                             env)
            counts = benchkit.sandbox_report(sandbox)
    return rss, elapsed, text.splitlines()[-1] if text else "", code, counts


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--child"]:
        child(args_in[1:])
        return 0
    if args_in[:1] == ["--sandbox"]:
        serve_sandbox(args_in[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--window", type=int, default=None, help="the connection's window_orders")
    parser.add_argument("--customers", type=int, default=1_000,
                        help="distinct customers (default 1000, as benchmark 3; 0: a quarter of the orders)")
    args = parser.parse_args(args_in)
    benchkit.header("streaming: peak RSS of a first `ledgerlink run` through the Billbee source and sandbox "
                    f"(sandbox in its own process, counting target, window_orders {args.window or 'default'}, "
                    f"{args.customers or 'orders / 4'} customers)")
    peaks = {}
    for docs in args.docs:
        rss, elapsed, summary, code, counts = measure(docs, args.window, args.customers or None)
        peaks[docs] = rss
        print(f"   {docs:>7} orders: peak RSS {rss:7.1f} MiB, run {elapsed:6.1f} s ({docs / elapsed:.0f} orders/s), "
              f"exit {code}: {summary}", flush=True)
        print(f"            requests to the sandbox: {counts}", flush=True)
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        ratio = peaks[large] / peaks[small]
        print(f"   ratio {large} / {small}: {ratio:.2f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
