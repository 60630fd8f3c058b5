"""Benchmark 6: many pipelines side by side, each against its own rate-limited account.

Run: ``.venv/bin/python bench/bench_pipelines.py`` (``--pipelines N``, default
50; ``--docs N`` per pipeline, default 20; ``--rate R``, default 2).

One sevDesk sandbox holds 50 API tokens (its state's ``tokens``) and answers 429
above 2 requests per second per token (fault ``requests_per_second``, counted per
credential). Pipeline i reads 20 documents of one customer from the in-memory
FakeSource (ledgerlink.testing, store ``shop-i``) and writes to connection
``books-i`` with token i and the client limit ``requests_per_second`` = 2.
First one pipeline runs alone (twice, each on a fresh account; the slower time
counts), then all 50 with ``run_pipelines(jobs=50)`` (separate target
connections run side by side). Printed: the total wall time next to the slowest
single pipeline (goal: within 1.5x), and the 429 answers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit


def setup(count: int, docs: int, rate: float, workdir: Path, offset: int = 0) -> tuple[Any, Any, list[Any]]:
    from ledgerlink._runner import Runtime
    from ledgerlink._sandbox import Faults
    from ledgerlink.testing import fake_store, make_config, plugin_manager, sample_document
    from ledgerlink_sevdesk.sandbox import SevdeskSandbox

    tokens = [f"bench{offset + i:04d}".ljust(32, "t") for i in range(count)]
    sevdesk = SevdeskSandbox(faults=Faults(requests_per_second=rate, retry_after=1.0))
    sevdesk.state["tokens"] = tokens
    connections: dict[str, Any] = {}
    pipelines = []
    for i, token in enumerate(tokens):
        store = f"bench-shop-{offset + i}"
        documents = fake_store(store)["documents"]
        documents.clear()
        for n in range(1, docs + 1):
            doc = sample_document(n, customer=f"cust-{offset + i}", paid=False)
            documents[doc.source_ref] = doc
        connections[f"shop-{i}"] = {"plugin": "fake-source", "store": store}
        os.environ[f"BENCH_SEVDESK_TOKEN_{offset + i}"] = token
        connections[f"books-{i}"] = {"plugin": "sevdesk", "api_token": f"${{BENCH_SEVDESK_TOKEN_{offset + i}}}",
                                     "base_url": "http://sevdesk.test/api/v1",
                                     "requests_per_second": rate}
        pipelines.append(benchkit.pipeline(f"p{i}", f"shop-{i}", f"books-{i}"))
    raw = {"ledger": {"url": f"sqlite:///{workdir / 'ledger.db'}"}, "connections": connections, "pipelines": pipelines}
    plugins = plugin_manager()
    config = make_config(raw, workdir / "ledgerlink.toml", plugins)
    transport = sevdesk.transport()
    runtime = Runtime(config, plugins=plugins, transports={f"books-{i}": transport for i in range(count)})
    return runtime, sevdesk, config.pipelines


def timed_run(runtime: Any, pipelines: list[Any], jobs: int) -> tuple[float, list[Any], dict[str, float]]:
    from ledgerlink._pipelines import run_pipelines

    durations: dict[str, float] = {}

    def run(runner: Any) -> Any:
        started = time.perf_counter()
        try:
            return runner.run()
        finally:
            durations[runner.pipeline.name] = time.perf_counter() - started

    started = time.perf_counter()
    results = run_pipelines(runtime, pipelines, jobs=jobs, run=run)
    return time.perf_counter() - started, results, durations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=50)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0)
    args = parser.parse_args(argv)
    benchkit.header(f"many pipelines: {args.pipelines} pipelines x {args.docs} documents, "
                    f"each account limited to {args.rate:g} requests/s")

    singles = []
    for attempt in range(2):
        with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
            runtime, sevdesk, pipelines = setup(1, args.docs, args.rate, Path(tmp), offset=1000 + attempt)
            elapsed, results, _ = timed_run(runtime, pipelines, 1)
            if results[0].error:
                print(f"   the single run stopped: {results[0].error}")
                return 1
            singles.append(elapsed)
            requests = len(sevdesk.requests)
    single = max(singles)
    print(f"   one pipeline alone: {', '.join(f'{s:.1f} s' for s in singles)} ({requests} requests, "
          f"{requests / single:.2f}/s)")

    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        runtime, sevdesk, pipelines = setup(args.pipelines, args.docs, args.rate, Path(tmp))
        total, results, durations = timed_run(runtime, pipelines, args.pipelines)
    errors = [r for r in results if r.error]
    pushed = sum(r.counts().get("pushed", 0) for r in results)
    throttled = sum(1 for e in sevdesk.requests if e.get("status") == 429)
    slowest = max(durations.values())
    ratio = total / single
    print(f"   {args.pipelines} side by side: {total:.1f} s total, {pushed} documents pushed, "
          f"{len(sevdesk.requests)} requests, {throttled} answered 429, {len(errors)} pipelines stopped")
    print(f"   slowest pipeline inside that run: {slowest:.1f} s, fastest {min(durations.values()):.1f} s")
    print(f"   total / slowest single pipeline alone: {ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
