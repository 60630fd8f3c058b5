"""Benchmark 7: the load `ledgerlink serve` holds: documents accepted per second, POST to pushed.

Run: ``.venv/bin/python bench/bench_service.py`` (``--docs N``, default 500;
``--clients C`` posting at once, default 8; ``--workers W``, default 4).

The service (``Service`` + ``create_app``, the code behind ``ledgerlink serve``) runs
in this process on uvicorn on a loopback port, with a SQLite service database in a
temporary directory and the sevDesk sandbox behind one tenant's inbox pipeline
(in-process transport, rate limits off: sevDesk's ``requests_per_second`` setting
1,000,000, no sandbox faults). C client threads POST the N documents one per
request over real HTTP (``httpx``), each with its own id and one of N/4 customers.

``--rate R`` paces the POSTs at R per second in all (below what the service
transfers, the time to pushed is the engine's, not a queue's); without it they
come as a burst. Printed: documents accepted per second (202 answers, from the first request sent to
the last answer), and the time from sending a document's POST to its ``pushed_at``
in the ledger (same clock), at the 50th and 99th percentile and the maximum; the
run is over when every document is pushed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import benchkit

ADMIN = "bench-admin-token-0123456789abcdef"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.0, help="POSTs per second in all (0: as fast as the clients "
                        "go, a burst)")
    args = parser.parse_args(argv)

    import httpx
    import uvicorn
    from ledgerlink._secrets_store import SecretBox, new_key
    from ledgerlink._server import create_app
    from ledgerlink._service import Service
    from ledgerlink.testing import sample_document
    from ledgerlink_sevdesk.sandbox import SevdeskSandbox

    pace = f" at {args.rate:g}/s" if args.rate > 0 else " as a burst"
    benchkit.header(f"service: {args.docs} documents POSTed{pace} by {args.clients} clients to ledgerlink serve "
                    f"({args.workers} workers, SQLite) -> sevDesk sandbox")
    token = "bench-sevdesk-token-0123456789ab"
    sevdesk = SevdeskSandbox(seed={"tokens": [token]})
    documents = []
    for n in range(1, args.docs + 1):
        document = sample_document(n, customer=f"k{n % max(1, args.docs // 4)}")
        document.source_ref, document.number = f"inv-{n}", f"BS-{n}"
        documents.append(json.loads(document.model_dump_json(exclude={"cursor"})))
    tenant = {
        "connections": {"app": {"plugin": "inbox"},
                        "sevdesk": {"plugin": "sevdesk", "api_token": token, "base_url": "http://sevdesk.test/api/v1",
                                    "requests_per_second": 1_000_000}},
        "pipelines": [{"name": "invoices", "source": "app", "target": "sevdesk", "matchers": ["customer_number"],
                       "rules": [{"when": {"line": "goods"}, "account": "8400"},
                                 {"when": {"line": "shipping"}, "account": "8400"}]}],
    }
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        service = Service(f"sqlite:///{Path(tmp) / 'service.db'}", box=SecretBox([new_key()]), workers=args.workers,
                          transports={"sevdesk": sevdesk.transport()})
        asgi, _ = create_app(service, admin=ADMIN, rate=1_000_000.0, burst=1_000_000)
        server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning",
                                               access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        headers = {"Authorization": f"Bearer {ADMIN}"}
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                assert client.put("/v1/tenants/bench", json=tenant).status_code == 201
                assert service.workers.wait_idle(60)
            sent: dict[str, float] = {}
            failures: list[str] = []
            queue = list(reversed(list(enumerate(documents))))
            start = time.perf_counter() + 0.05
            guard = threading.Lock()

            def post() -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                    while True:
                        with guard:
                            if not queue:
                                return
                            index, document = queue.pop()
                        if args.rate > 0:  # paced: document i is due i / rate seconds after the start
                            time.sleep(max(0.0, start + index / args.rate - time.perf_counter()))
                        sent[document["source_ref"]] = time.time()
                        answer = client.post("/v1/tenants/bench/pipelines/invoices/documents", json=document)
                        if answer.status_code != 202:
                            failures.append(f"{answer.status_code} {answer.text[:200]}")

            posters = [threading.Thread(target=post) for _ in range(args.clients)]
            t0 = time.perf_counter()
            for poster in posters:
                poster.start()
            for poster in posters:
                poster.join()
            accepted_in = time.perf_counter() - t0
            while not service.workers.wait_idle(600):
                pass
            done_in = time.perf_counter() - t0
            rows = {r["source_ref"]: r for r in service.ledger.iter_table("documents")}
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            service.close()
    if failures:
        print(f"   {len(failures)} POSTs not accepted, first: {failures[0]}")
        return 1
    latencies = []
    states: dict[str, int] = {}
    for ref, at in sent.items():
        row = rows.get(ref)
        state = row["state"] if row else "missing"
        states[state] = states.get(state, 0) + 1
        if row and row.get("pushed_at"):
            pushed = row["pushed_at"]
            pushed = datetime.fromisoformat(pushed) if isinstance(pushed, str) else pushed
            if pushed.tzinfo is None:  # SQLite keeps UTC without the offset
                pushed = pushed.replace(tzinfo=UTC)
            latencies.append(pushed.timestamp() - at)
    print(f"   outcomes: {', '.join(f'{v} {k}' for k, v in sorted(states.items()))}; sevDesk requests: "
          f"{len(sevdesk.requests)}")
    print(f"   accepted: {args.docs} documents in {accepted_in:.2f} s = {args.docs / accepted_in:.0f} documents/s "
          f"(202 answers, {args.clients} clients)")
    print(f"   all pushed {done_in:.2f} s after the first POST = {args.docs / done_in:.1f} documents/s end to end")
    if latencies:
        print(f"   POST to pushed: p50 {percentile(latencies, 50):.2f} s, p99 {percentile(latencies, 99):.2f} s, "
              f"max {max(latencies):.2f} s")
    return 0 if states.get("pushed") == args.docs else 1


if __name__ == "__main__":
    sys.exit(main())
