"""Pipelines on Celery workers: documents per second with 1, 2 and 4 worker processes (issue 21).

TENANTS tenants, each with its own sevDesk account (token) and an inbox pipeline
holding DOCS documents, against the sevDesk sandbox (in this process, on loopback;
it answers 429 above each account's 10 requests per second, the limit every tenant's
connection keeps). For each number of workers: a fresh PostgreSQL database and
broker queue, `ledgerlink worker` processes (the real CLI, 4 runs at once each,
vendor budgets shared in Redis), one run_pipeline task per tenant, the time until
every document is pushed. Printed, not asserted: documents per second and how they
scale, the 429s the sandbox answered (should be 0), doubles and losses (must be 0),
and the ledger's size in PostgreSQL per 1,000 documents.

Needs PostgreSQL, RabbitMQ and Redis on 127.0.0.1 (the machine's). The issue's size
is 1,000 tenants x 20 documents (the default; about an hour for the three runs on 2
cores); `--tenants 100 --docs 5` takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchkit  # noqa: E402

PG = "host=127.0.0.1 port=5432 user=postgres dbname=test"
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/0"
LEDGERLINK = str(Path(sys.executable).parent / "ledgerlink")
RATE = 10.0


def one_round(workers: int, tenants: int, docs: int, tmp: Path) -> dict[str, Any]:
    import psycopg
    from kombu import Connection
    from ledgerlink import SandboxServer
    from ledgerlink._secrets_store import SecretBox, new_key
    from ledgerlink._service import Service
    from ledgerlink._worker import make_app
    from ledgerlink.testing import sample_document
    from ledgerlink_sevdesk.sandbox import SevdeskSandbox

    database = f"ll_bench_{uuid.uuid4().hex[:8]}"
    queue = f"ledgerlink-bench-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    key = new_key()
    tokens = [f"bench-{n}-{secrets.token_hex(4)}" for n in range(tenants)]
    sandbox = SevdeskSandbox(seed={"tokens": tokens})
    sandbox.faults.requests_per_second = RATE
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with SandboxServer(sandbox) as server:
            service = Service(url, box=SecretBox([key]), workers=1, start=False)
            for n, token in enumerate(tokens):
                tenant = f"t{n:04d}"
                service.tenants.put(tenant, {
                    "connections": {"app": {"plugin": "inbox"},
                                    "books": {"plugin": "sevdesk", "api_token": token,
                                              "base_url": f"{server.url}/api/v1", "requests_per_second": RATE,
                                              "timeout": 5}},
                    "pipelines": [{"name": "invoices", "source": "app", "target": "books", "matchers": ["email"],
                                   "rules": [{"when": {}, "account": "8400"}]}]})
                runtime, pipeline = service.pipeline(tenant, "invoices")
                inbox = service.inbox_of(runtime, pipeline)
                for d in range(docs):
                    document = sample_document(d, customer=f"{tenant}-c{d % 3}")
                    document.source_ref, document.number = f"{tenant}-{d}", f"{tenant}-{d}"
                    inbox.put(document.source_ref, json.loads(document.model_dump_json(exclude={"cursor"})))
            service.close()
            config = tmp / f"bench-{workers}.toml"
            config.write_text(f'[ledger]\nurl = "{url}"\n\n[workers]\nbroker_url = "{RABBIT}"\nqueue = "{queue}"\n'
                              'concurrency = 4\n')
            env = {**os.environ, "LEDGERLINK_SECRET_KEYS": key, "LEDGERLINK_REDIS_URL": REDIS}
            for n in range(workers):
                log = open(tmp / f"worker-{workers}-{n}.log", "wb")  # noqa: SIM115
                procs.append(subprocess.Popen([LEDGERLINK, "-c", str(config), "worker", "--name", f"b{n}@bench"],
                                              env=env, stdout=log, stderr=subprocess.STDOUT))
            for n in range(workers):
                path = tmp / f"worker-{workers}-{n}.log"
                while f"b{n}@bench ready." not in path.read_text(errors="replace"):
                    time.sleep(0.1)
            from ledgerlink._ledger import Ledger

            ledger = Ledger(url)
            app = make_app(RABBIT, queue=queue)
            started = time.monotonic()
            for n in range(tenants):
                app.send_task("ledgerlink.run_pipeline", args=(f"t{n:04d}", "invoices"), queue=queue)
            total = tenants * docs
            while ledger.counts().get("pushed", 0) < total:
                if time.monotonic() - started > 4 * 3600:
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            pushed = ledger.counts().get("pushed", 0)
            vouchers = Counter(str(v.get("description")) for v in sandbox.snapshot()["vouchers"].values())
            with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}") as conn:
                size = conn.execute("SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                                    "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
                                    ).fetchone()[0]
            ledger.engine.dispose()
            return {"workers": workers, "documents": total, "pushed": pushed, "seconds": elapsed,
                    "per_second": pushed / elapsed if elapsed else 0.0, "throttled": sandbox.stats["throttled"],
                    "doubles": sum(n - 1 for n in vouchers.values() if n > 1),
                    "losses": total - len(vouchers), "ledger_bytes_per_1000": int(size) * 1000 // max(1, pushed)}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        from ledgerlink._inbox import engine_for

        engine_for(url).dispose()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        with Connection(RABBIT) as conn:
            conn.default_channel.queue_delete(queue)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=20, help="documents per tenant")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to compare")
    args = parser.parse_args(argv)
    print(benchkit.machine())
    print(f"{args.tenants} tenants x {args.docs} documents, sevDesk sandbox at {RATE:g} requests/s per account, "
          "4 runs at once per worker process, vendor budgets shared in Redis")
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in [int(w) for w in args.workers.split(",")]:
            row = one_round(workers, args.tenants, args.docs, Path(folder))
            rows.append(row)
            print(f"  {workers} worker(s): {row['pushed']}/{row['documents']} pushed in {row['seconds']:.1f} s = "
                  f"{row['per_second']:.1f} documents/s; 429s {row['throttled']}, doubles {row['doubles']}, "
                  f"losses {row['losses']}; ledger {row['ledger_bytes_per_1000'] / 1024:.0f} KiB per 1,000 "
                  "documents", flush=True)
    if rows and rows[0]["per_second"]:
        base = rows[0]["per_second"]
        print("scaling: " + ", ".join(f"{r['workers']} -> x{r['per_second'] / base:.2f}" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
