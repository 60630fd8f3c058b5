"""Benchmark 1: engine overhead against a bare HTTP loop.

Run: ``.venv/bin/python bench/bench_overhead.py`` (``--docs N``, default 10000;
``--profile FILE`` writes a cProfile of the ledgerlink run; ``--top N`` prints
its N most expensive functions).

10,000 generated Billbee orders (the demo mix, see benchkit.iter_orders) go from
the Billbee sandbox to the sevDesk sandbox in-process (ASGI transports), through
the full pipeline with a SQLite ledger. Then the request logs of both sandboxes
are replayed with a bare httpx loop (method, path, query, JSON body; the same
credentials) against fresh sandboxes with the same seed: the same work on the
sandbox side, nothing else on the client side. Printed: documents per second of
both, and the ratio ledgerlink / bare of the time per document (goal: <= 1.5).

Rate limits are off on both sides: the sandboxes do not throttle (Billbee
sandbox ``throttle=False``, fault ``requests_per_second`` 0), sevDesk's
``requests_per_second`` setting is 1,000,000, and the Billbee plugin's fixed
client limits are raised through ``benchkit.raise_billbee_client_limits``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit
import httpx

GOAL = 1.5


def make_sandboxes(seed: dict[str, Any]) -> tuple[Any, Any]:
    from ledgerlink_billbee.sandbox import BillbeeSandbox
    from ledgerlink_sevdesk.sandbox import SevdeskSandbox

    return BillbeeSandbox(seed=seed, throttle=False), SevdeskSandbox()


def run_ledgerlink(seed: dict[str, Any], workdir: Path, profile: str | None) -> tuple[float, float, Any, Any, Any]:
    billbee, sevdesk = make_sandboxes(seed)
    profiler = cProfile.Profile() if profile else None
    elapsed, cpu, result = benchkit.run_billbee_sevdesk(billbee, sevdesk, workdir, profiler=profiler)
    if profiler and profile:
        profiler.dump_stats(profile)
    return elapsed, cpu, result, billbee, sevdesk


def replay_log(billbee: Any, sevdesk: Any) -> list[tuple[float, str, str, str, str, bytes | None, int]]:
    calls = []
    for which, sandbox in (("shop", billbee), ("books", sevdesk)):
        for entry in sandbox.requests:
            body = entry.get("json")
            content = None if body is None else json.dumps(body).encode()
            calls.append((entry["time"], which, entry["method"], entry["path"], entry["query"], content,
                          entry["status"]))
    calls.sort(key=lambda c: c[0])
    return calls


def run_bare(seed: dict[str, Any], calls: list[Any]) -> tuple[float, float, int]:
    """Send the logged requests; return (seconds, CPU seconds, answers whose status differs from the log)."""
    from ledgerlink_billbee.sandbox import DEMO_API_KEY, DEMO_API_PASSWORD, DEMO_USERNAME
    from ledgerlink_sevdesk.sandbox import DEMO_TOKEN

    billbee, sevdesk = make_sandboxes(seed)
    clients = {
        "shop": httpx.Client(transport=billbee.transport(), base_url="http://billbee.test",
                             headers={"X-Billbee-Api-Key": DEMO_API_KEY},
                             auth=(DEMO_USERNAME, DEMO_API_PASSWORD)),
        "books": httpx.Client(transport=sevdesk.transport(), base_url="http://sevdesk.test",
                              headers={"Authorization": DEMO_TOKEN, "Content-Type": "application/json"}),
    }
    prepared = [(clients[which], method, path + ("?" + query if query else ""), content, status)
                for _, which, method, path, query, content, status in calls]
    differ = 0
    started, cpu = time.perf_counter(), time.process_time()
    for client, method, url, content, status in prepared:
        response = client.request(method, url, content=content)
        if response.status_code != status:
            differ += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for client in clients.values():
        client.close()
    return elapsed, cpu, differ


def one_round(seed: dict[str, Any], profile: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        ll_time, ll_cpu, result, billbee, sevdesk = run_ledgerlink(seed, Path(tmp), profile)
    if result.error:
        raise SystemExit(f"   the run stopped: {result.error}")
    calls = replay_log(billbee, sevdesk)
    del billbee, sevdesk
    bare_time, bare_cpu, differ = run_bare(seed, calls)
    return {"ll": ll_time, "ll_cpu": ll_cpu, "bare": bare_time, "bare_cpu": bare_cpu, "differ": differ,
            "requests": len(calls), "counts": result.counts()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="ledgerlink run + bare replay pairs; the median ratio is the figure (default 3)")
    parser.add_argument("--profile", help="write a cProfile of the (first) ledgerlink run to this file")
    parser.add_argument("--top", type=int, default=0, help="print the N most expensive functions (cumulative)")
    args = parser.parse_args(argv)

    benchkit.header(f"engine overhead: {args.docs} Billbee orders -> sevDesk, in-process sandboxes, "
                    f"{args.rounds} round(s)")
    benchkit.raise_billbee_client_limits()
    seed = {"Data": benchkit.orders(args.docs)}
    profile = args.profile or (tempfile.mktemp(suffix=".prof") if args.top else None)
    docs = args.docs
    rounds = []
    for number in range(1, args.rounds + 1):
        r = one_round(seed, profile if number == 1 else None)
        rounds.append(r)
        if number == 1:
            print(f"   outcomes: {', '.join(f'{v} {k}' for k, v in sorted(r['counts'].items()))}")
            print(f"   requests: {r['requests']} ({r['requests'] / docs:.2f} per document)"
                  + (f"; {r['differ']} replayed answers differ in status" if r["differ"]
                     else "; replay answers match"))
        print(f"   round {number}: ledgerlink {r['ll']:7.2f} s ({docs / r['ll']:6.1f} documents/s, "
              f"{1000 * r['ll'] / docs:5.2f} ms/document), bare httpx {r['bare']:7.2f} s "
              f"({docs / r['bare']:6.1f} documents/s, {1000 * r['bare'] / docs:5.2f} ms/document): "
              f"ratio {r['ll'] / r['bare']:.2f}, CPU ratio {r['ll_cpu'] / r['bare_cpu']:.2f}")
    ratios = sorted(r["ll"] / r["bare"] for r in rounds)
    ratio = benchkit.median(ratios)
    ll_time = benchkit.median([r["ll"] for r in rounds])
    bare_time = benchkit.median([r["bare"] for r in rounds])
    print(f"   ledgerlink: {ll_time:8.2f} s  {docs / ll_time:8.1f} documents/s  {1000 * ll_time / docs:6.2f} ms/document"
          f"  (median of {len(rounds)})")
    print(f"   bare httpx: {bare_time:8.2f} s  {docs / bare_time:8.1f} documents/s  "
          f"{1000 * bare_time / docs:6.2f} ms/document  (median of {len(rounds)})")
    print(f"   ratio ledgerlink / bare (time per document, median of the rounds' ratios): {ratio:.2f}  "
          f"(goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}); rounds: "
          + ", ".join(f"{x:.2f}" for x in ratios))
    print(f"   (the sandboxes run in this process, so their work is in both figures; the machine's load "
          f"average at the end: {os.getloadavg()[0]:.1f})")
    if args.top and profile:
        stats = pstats.Stats(profile, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
