"""Run every benchmark, one after another, and print their figures.

Run: ``.venv/bin/python bench/run_all.py`` (or ``make bench``); ``--quick``
uses smaller sizes (a few minutes instead of about fifteen); ``--only NAME ...``
runs some of them (overhead, ratelimit, memory, startup, matching, pipelines,
service, workers, streaming).
Each benchmark is a separate process, so none inherits another's state (rate
limiters, caches, memory).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchkit  # noqa: E402

BENCHMARKS: list[tuple[str, str, list[str], list[str]]] = [
    # name, script, arguments, arguments with --quick
    ("overhead", "bench_overhead.py", [], ["--docs", "2000"]),
    ("ratelimit", "bench_ratelimit.py", [], ["--docs", "60"]),
    ("memory", "bench_memory.py", [], ["--docs", "2000", "20000"]),
    ("startup", "bench_startup.py", [], ["--runs", "7"]),
    ("matching", "bench_matching.py", [], []),
    ("pipelines", "bench_pipelines.py", [], ["--docs", "8"]),
    ("service", "bench_service.py", [], ["--docs", "200"]),
    ("workers", "bench_workers.py", [], ["--tenants", "20", "--docs", "5"]),
    ("streaming", "bench_streaming.py", [], ["--docs", "2000", "20000"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=[b[0] for b in BENCHMARKS])
    args = parser.parse_args(argv)
    print(f"ledgerlink benchmarks on {benchkit.machine()}", flush=True)
    failed = []
    started = time.perf_counter()
    for name, script, full, quick in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        print(flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([benchkit.python(), str(HERE / script), *(quick if args.quick else full)])
        print(f"   ({name}: {time.perf_counter() - t0:.0f} s{'' if code == 0 else f', exit {code}'})", flush=True)
        if code:
            failed.append(name)
    print(f"\nall benchmarks: {time.perf_counter() - started:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
