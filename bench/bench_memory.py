"""Benchmark 3: peak memory of ``ledgerlink run`` for 10,000 and 100,000 documents.

Run: ``.venv/bin/python bench/bench_memory.py`` (``--docs 10000 100000`` to
choose the sizes; ``--customers N``, default 1000).

Each size is one fresh ``ledgerlink run`` process (SQLite ledger in a temporary
folder); its peak RSS is read with ``os.wait4`` (``ru_maxrss`` of that child).
The process is the real CLI (``ledgerlink._cli.main``) started through
``bench/_bench_cli.py``, which adds two benchmark-only connectors: a source that
generates the documents on the fly (nothing read from a file, nothing kept) and
a target that only counts. So the figures show what the engine, the ledger and
the CLI keep per document, not what a source or target keeps: the Billbee
source lists a whole run's orders before it sorts them, and ledgerlink.testing's
FakeSource/FakeTarget keep every document in memory by design; neither would
tell the engine's growth apart. Goal: RSS(100k) / RSS(10k) <= 1.3.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

GOAL = 1.3
HERE = Path(__file__).resolve().parent


def config(workdir: Path, docs: int, customers: int) -> str:
    return f"""[ledger]
url = "sqlite:///{workdir / 'ledger.db'}"

[connections.shop]
plugin = "bench-stream"
documents = {docs}
customers = {customers}

[connections.books]
plugin = "bench-count"

[[pipelines]]
name = "stream-to-count"
source = "shop"
target = "books"

[[pipelines.rules]]
when = {{}}
account = "8400"
"""


def measure(docs: int, customers: int, keep: bool = True) -> tuple[float, float, str, int]:
    """(peak RSS in MiB, seconds, the CLI's summary line, exit code)."""
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        path = Path(tmp) / "ledgerlink.toml"
        path.write_text(config(Path(tmp), docs, customers), encoding="utf-8")
        started = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            env = {**os.environ, "BENCH_KEEP_OUTCOMES": "1" if keep else "0"}
            proc = subprocess.Popen([benchkit.python(), str(HERE / "_bench_cli.py"), "-c", str(path), "run"],
                                    stdout=out, stderr=subprocess.STDOUT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            elapsed = time.perf_counter() - started
            out.seek(0)
            text = out.read().decode("utf-8", "replace").strip()
    return usage.ru_maxrss / 1024, elapsed, text.splitlines()[-1] if text else "", proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--no-keep", action="store_true",
                        help="also measure with Runtime(keep_outcomes=False) (outcomes counted, not kept)")
    args = parser.parse_args(argv)
    benchkit.header(f"memory: peak RSS of `ledgerlink run` (streamed source, counting target, "
                    f"{args.customers} customers)")
    for keep in (True, False) if args.no_keep else (True,):
        label = "`ledgerlink run` as it is" if keep else "with Runtime(keep_outcomes=False)"
        print(f"   {label}:")
        peaks = {}
        for docs in args.docs:
            rss, elapsed, summary, code = measure(docs, args.customers, keep)
            peaks[docs] = rss
            print(f"   {docs:>7} documents: peak RSS {rss:7.1f} MiB, {elapsed:6.1f} s "
                  f"({docs / elapsed:.0f} documents/s), exit {code}: {summary}", flush=True)
        if len(peaks) >= 2:
            small, large = min(peaks), max(peaks)
            ratio = peaks[large] / peaks[small]
            print(f"   ratio {large} / {small}: {ratio:.2f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
