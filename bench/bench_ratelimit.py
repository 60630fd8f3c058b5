"""Benchmark 2: how much of a vendor's rate limit a pipeline uses.

Run: ``.venv/bin/python bench/bench_ratelimit.py`` (``--docs N``, default 300;
``--rate R``, default 10; ``--latency S``, default 0.05).

The sevDesk sandbox answers 429 above 10 requests per second per token (fault
``requests_per_second`` = 10, sliding one-second window) and adds 50 ms to every
answer (fault ``latency``); the sevDesk connection's client limit
(``requests_per_second`` setting) is 10 as well. 300 generated Billbee orders go
through (Billbee sandbox in-process, not throttled, client limits raised).
Printed: the requests per second the target received (first to last request),
their share of the limit (goal >= 0.9) and the 429 answers (goal 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import benchkit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args(argv)

    from ledgerlink._sandbox import Faults
    from ledgerlink_billbee.sandbox import BillbeeSandbox
    from ledgerlink_sevdesk.sandbox import SevdeskSandbox

    benchkit.header(f"rate limit use: {args.docs} documents into sevDesk limited to {args.rate:g}/s, "
                    f"{1000 * args.latency:.0f} ms latency")
    benchkit.raise_billbee_client_limits()
    billbee = BillbeeSandbox(seed={"Data": benchkit.orders(args.docs)}, throttle=False)
    # The same settings as POST /__sandbox__/faults {"requests_per_second": R, "latency": S}.
    sevdesk = SevdeskSandbox(faults=Faults(requests_per_second=args.rate, latency=args.latency, retry_after=1.0))
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        elapsed, _cpu, result = benchkit.run_billbee_sevdesk(billbee, sevdesk, Path(tmp), sevdesk_rps=args.rate)
    if result.error:
        print(f"   the run stopped: {result.error}")
        return 1
    entries = sevdesk.requests
    times = [e["time"] for e in entries]
    span = max(times) - min(times)
    achieved = (len(entries) - 1) / span if span > 0 else float("nan")
    throttled = sum(1 for e in entries if e.get("status") == 429)
    use = achieved / args.rate
    print(f"   outcomes: {', '.join(f'{v} {k}' for k, v in sorted(result.counts().items()))} in {elapsed:.1f} s")
    print(f"   sevDesk requests: {len(entries)} in {span:.1f} s = {achieved:.2f}/s of {args.rate:g}/s allowed")
    print(f"   use of the limit: {use:.3f} (goal >= 0.9: {'met' if use >= 0.9 else 'NOT met'})")
    print(f"   429 answers: {throttled} (goal 0: {'met' if throttled == 0 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
