"""Pipelines on Celery workers: documents per second with 1, 2 and 4 worker processes (issue 21).

TENANTS tenants, each with its own sevDesk account (token) and an inbox pipeline
holding DOCS documents, against the sevDesk sandbox on loopback; it answers 429 above
each account's 10 requests per second (a sliding one-second window per token), the
rate every tenant's connection declares. The sandbox runs in processes of its own
(this script with ``--sandbox``; ``--sandboxes N`` of them, the tenants dealt out
among them), so the clock that stamps each request's arrival is not slowed by this
script's polling or by sharing an event loop with it. The 429s are counted from the
sandbox's own request log (the entries it answered 429 itself), read in its process
when the round ends. For each number of workers: a fresh PostgreSQL database and
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
LEDGER_TABLES = {"documents", "customer_links", "cursors", "runs", "target_accounts", "audit", "status_history",
                 "backoffs", "schema_version"}
"""The ledger's own tables (``_ledger.py``); the database also holds the service's
tenants and inbox, its events and the workers' delivery counts."""


def serve_sandbox(tokens_file: str, rate: float) -> None:
    """--sandbox FILE RATE: a sevDesk sandbox per token in FILE (one a line), all on one
    loopback port, each throttling its token at RATE requests per second; prints the
    URL; when stdin closes, prints what their request logs hold (one JSON line) and ends.

    One sandbox per token, as each tenant has its own sevDesk account: one sandbox for
    all would list every tenant's contacts to each tenant's contact index and scan
    every tenant's vouchers for each look-up (20,000 at the issue's size)."""
    import resource

    import httpx
    from ledgerlink import SandboxServer
    from ledgerlink_sevdesk.sandbox import SevdeskSandbox

    arrivals: dict[str, list[float]] = {}

    class Sandbox(SevdeskSandbox):
        def credential(self, request: Any) -> str:
            # Called once per API request, by the throttle, at the moment it stamps the
            # arrival: the same clock, kept per token for the report below.
            key = super().credential(request)
            arrivals.setdefault(key, []).append(time.monotonic())
            return key

    class Accounts:
        """The ASGI app in front: each request goes to the sandbox of its token."""

        name = "sevdesk"

        def __init__(self, tokens: list[str]) -> None:
            self.sandboxes = {token: Sandbox(seed={"tokens": [token]}) for token in tokens}
            for sandbox in self.sandboxes.values():
                sandbox.faults.requests_per_second = rate
            self.first = next(iter(self.sandboxes.values()))

        async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            token = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            await self.sandboxes.get(token, self.first).app(scope, receive, send)

    tokens = Path(tokens_file).read_text().split()
    accounts = Accounts(tokens)
    with SandboxServer(accounts) as server:  # type: ignore[arg-type]
        # A sevDesk sandbox builds its OpenAPI validator on its first API request (0.15 s
        # and more): done here, not while the first tasks' requests queue behind it.
        httpx.get(f"{server.url}/api/v1/Tools/bookkeepingSystemVersion", headers={"Authorization": tokens[0]})
        accounts.first.requests.clear()
        arrivals.clear()
        print(server.url, flush=True)
        sys.stdin.read()
        log = [r for sandbox in accounts.sandboxes.values() for r in sandbox.requests
               if r["path"].startswith("/api/")]
        throttled = [r for r in log if r["status"] == 429]
        # The densest second each token saw (arrivals as the throttle stamped them, 429s included).
        densest = 0
        for times in arrivals.values():
            start = 0
            for end, at in enumerate(times):
                while at - times[start] >= 1.0:
                    start += 1
                densest = max(densest, end - start + 1)

        def shape(r: dict[str, Any]) -> str:
            return f'{r["method"]} ' + "/".join("{id}" if part.isdigit() else part
                                                 for part in r["path"].split("/api/v1/")[-1].split("/"))

        vouchers = Counter(str(v.get("description")) for sandbox in accounts.sandboxes.values()
                           for v in sandbox.state["vouchers"].values())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"requests": len(log), "throttled": len(throttled),
                          "cpu_seconds": usage.ru_utime + usage.ru_stime, "max_rss_mib": usage.ru_maxrss / 1024,
                          "throttled_paths": dict(Counter(shape(r) for r in throttled)), "densest_second": densest,
                          "by_path": dict(Counter(shape(r) for r in log)), "vouchers": dict(vouchers)}), flush=True)


def profiled_worker(folder: str, argv: list[str]) -> None:
    """--worker-profile DIR ARGS: ``ledgerlink ARGS`` (a worker) with each task's work
    (``perform`` and the delivery count around it) under cProfile, on the CPU time of
    the thread that runs it; all tasks' profiles are written to DIR when it stops."""
    import atexit
    import cProfile
    import pstats
    import threading

    import ledgerlink._worker as worker

    profiles: list[cProfile.Profile] = []
    local = threading.local()
    lock = threading.Lock()

    def profiled(function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            profile = getattr(local, "profile", None)
            if profile is None:
                profile = local.profile = cProfile.Profile(time.thread_time)
                with lock:
                    profiles.append(profile)
            profile.enable()
            try:
                return function(*args, **kwargs)
            finally:
                profile.disable()
        return call

    worker.perform = profiled(worker.perform)  # type: ignore[assignment]
    worker.Deliveries.count = profiled(worker.Deliveries.count)  # type: ignore[method-assign]
    worker.Deliveries.done = profiled(worker.Deliveries.done)  # type: ignore[method-assign]

    def dump() -> None:
        with lock:
            if profiles:
                stats = pstats.Stats(profiles[0])
                for profile in profiles[1:]:
                    stats.add(profile)
                stats.dump_stats(str(Path(folder) / f"worker-{os.getpid()}.prof"))

    atexit.register(dump)
    from ledgerlink._cli import main as cli

    sys.argv = ["ledgerlink", *argv]
    cli()


def peak_rss_mib(pid: int) -> float:
    """The peak resident set of a live process (Linux /proc: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(workers: int, tenants: int, docs: int, tmp: Path, sandboxes: int = 1,
              profile: Path | None = None) -> dict[str, Any]:
    import psycopg
    from kombu import Connection
    from ledgerlink._secrets_store import SecretBox, new_key
    from ledgerlink._service import Service
    from ledgerlink._worker import make_app
    from ledgerlink.testing import sample_document

    database = f"ll_bench_{uuid.uuid4().hex[:8]}"
    queue = f"ledgerlink-bench-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    key = new_key()
    tokens = [f"bench-{n}-{secrets.token_hex(4)}" for n in range(tenants)]
    procs: list[subprocess.Popen[bytes]] = []
    children: list[subprocess.Popen[str]] = []
    try:
        urls = []
        for k in range(sandboxes):
            path = tmp / f"tokens-{workers}-{k}.txt"
            path.write_text("\n".join(tokens[k::sandboxes]))
            child = subprocess.Popen([sys.executable, str(Path(__file__)), "--sandbox", str(path), str(RATE)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            children.append(child)
            assert child.stdout is not None
            urls.append(child.stdout.readline().strip())
        service = Service(url, box=SecretBox([key]), workers=1, start=False)
        for n, token in enumerate(tokens):
            tenant = f"t{n:04d}"
            service.tenants.put(tenant, {
                "connections": {"app": {"plugin": "inbox"},
                                "books": {"plugin": "sevdesk", "api_token": token,
                                          "base_url": f"{urls[n % sandboxes]}/api/v1", "requests_per_second": RATE,
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
            command = [LEDGERLINK] if profile is None else [sys.executable, str(Path(__file__)), "--worker-profile",
                                                            str(profile)]
            procs.append(subprocess.Popen([*command, "-c", str(config), "worker", "--name", f"b{n}@bench"],
                                          env=env, stdout=log, stderr=subprocess.STDOUT))
        for n in range(workers):
            path = tmp / f"worker-{workers}-{n}.log"
            while f"b{n}@bench ready." not in path.read_text(errors="replace"):
                time.sleep(0.1)
        from ledgerlink._ledger import Ledger

        ledger = Ledger(url)
        app = make_app(RABBIT, queue=queue)
        cpu_before = sum(cpu_seconds(proc.pid) for proc in procs)
        started = time.monotonic()
        for n in range(tenants):
            app.send_task("ledgerlink.run_pipeline", args=(f"t{n:04d}", "invoices"), queue=queue)
        total = tenants * docs
        while ledger.counts().get("pushed", 0) < total:
            if time.monotonic() - started > 4 * 3600:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        worker_cpu = sum(cpu_seconds(proc.pid) for proc in procs) - cpu_before
        worker_rss = max(peak_rss_mib(proc.pid) for proc in procs)
        pushed = ledger.counts().get("pushed", 0)
        reports = []
        for child in children:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.close()
            reports.append(json.loads(child.stdout.readline()))
        vouchers: Counter[str] = Counter()
        for report in reports:
            vouchers.update(report["vouchers"])
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}") as conn:
            # Each table with its indexes and TOAST, as the files are (dead rows of updates included).
            tables: dict[str, int] = dict(conn.execute("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN "
                                       "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND "
                                       "c.relkind = 'r'").fetchall())
        size = sum(tables.values())
        ledger_size = sum(v for k, v in tables.items() if k in LEDGER_TABLES)
        ledger.engine.dispose()
        return {"workers": workers, "documents": total, "pushed": pushed, "seconds": elapsed,
                "per_second": pushed / elapsed if elapsed else 0.0,
                "throttled": sum(r["throttled"] for r in reports),
                "requests": sum(r["requests"] for r in reports),
                "throttled_paths": sum((Counter(r["throttled_paths"]) for r in reports), Counter()),
                "densest_second": max(r["densest_second"] for r in reports),
                "by_path": sum((Counter(r["by_path"]) for r in reports), Counter()),
                "worker_cpu": worker_cpu, "sandbox_cpu": sum(r["cpu_seconds"] for r in reports),
                "worker_rss_mib": worker_rss, "sandbox_rss_mib": max(r["max_rss_mib"] for r in reports),
                "doubles": sum(n - 1 for n in vouchers.values() if n > 1),
                "losses": total - len(vouchers), "ledger_bytes_per_1000": int(ledger_size) * 1000 // max(1, pushed),
                "database_bytes_per_1000": int(size) * 1000 // max(1, pushed),
                "tables": {k: v for k, v in sorted(tables.items(), key=lambda kv: -kv[1])}}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for child in children:
            if child.stdin is not None and not child.stdin.closed:
                child.stdin.close()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        from ledgerlink._inbox import engine_for

        engine_for(url).dispose()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        with Connection(RABBIT) as conn:
            conn.default_channel.queue_delete(queue)


def print_profile(folder: Path, documents: int, top: int = 30) -> None:
    """The workers' task profiles together: the functions with the most CPU time
    (their own and below them) per document."""
    import pstats

    files = sorted(folder.glob("*.prof"))
    if not files:
        print("     (no profile written)")
        return
    stats = pstats.Stats(*[str(f) for f in files])
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((cumulative, own, calls, f"{Path(filename).name}:{line}({name})"))
    total = sum(own for _, own, _, _ in rows)
    print(f"     task CPU (profiled threads): {1000 * total / max(1, documents):.2f} ms per document; "
          "top by cumulative, ms per document (own ms), calls per document:")
    for cumulative, own, calls, where in sorted(rows, reverse=True)[:top]:
        print(f"       {1000 * cumulative / documents:7.2f} ({1000 * own / documents:6.2f}) "
              f"{calls / documents:7.2f}  {where}")


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--sandbox"]:
        serve_sandbox(args_in[1], float(args_in[2]))
        return 0
    if args_in[:1] == ["--worker-profile"]:
        profiled_worker(args_in[1], args_in[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=20, help="documents per tenant")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to compare")
    parser.add_argument("--sandboxes", type=int, default=1, help="sevDesk sandbox processes (tenants dealt out)")
    parser.add_argument("--profile", metavar="DIR",
                        help="profile the workers' tasks (cProfile on thread CPU time), print the top functions and "
                             "keep the profiles in DIR (worker-PID.prof per worker process, a folder per round)")
    args = parser.parse_args(args_in)
    print(benchkit.machine())
    print(f"{args.tenants} tenants x {args.docs} documents, sevDesk sandbox at {RATE:g} requests/s per account, "
          "4 runs at once per worker process, vendor budgets shared in Redis")
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in [int(w) for w in args.workers.split(",")]:
            profile = None
            if args.profile:
                profile = Path(args.profile).resolve() / f"{workers}-workers"
                profile.mkdir(parents=True, exist_ok=True)
            row = one_round(workers, args.tenants, args.docs, Path(folder), args.sandboxes, profile)
            rows.append(row)
            print(f"  {workers} worker(s): {row['pushed']}/{row['documents']} pushed in {row['seconds']:.1f} s = "
                  f"{row['per_second']:.1f} documents/s; 429s {row['throttled']}, doubles {row['doubles']}, "
                  f"losses {row['losses']}", flush=True)
            print(f"     PostgreSQL per 1,000 documents: the ledger's tables {row['ledger_bytes_per_1000'] / 2**20:.2f} "
                  f"MiB, the whole database (tenants, inbox, ...) {row['database_bytes_per_1000'] / 2**20:.2f} MiB; "
                  "by table (KiB): " + ", ".join(f"{k} {v / 1024:.0f}" for k, v in row["tables"].items()), flush=True)
            print(f"     {row['requests']} requests to the sandbox ({row['requests'] / max(1, row['pushed']):.2f} "
                  f"per document); densest second of one account: {row['densest_second']} requests"
                  + (f"; 429s on {dict(row['throttled_paths'])}" if row["throttled"] else ""), flush=True)
            print(f"     CPU per document: workers {1000 * row['worker_cpu'] / max(1, row['pushed']):.1f} ms, "
                  f"sandbox {1000 * row['sandbox_cpu'] / max(1, row['pushed']):.1f} ms; peak RSS of a worker "
                  f"{row['worker_rss_mib']:.0f} MiB, of a sandbox process {row['sandbox_rss_mib']:.0f} MiB", flush=True)
            if profile is not None:
                print_profile(profile, row["pushed"])
            print("     requests per document: " + ", ".join(f"{k} {v / max(1, row['pushed']):.2f}"
                                                    for k, v in row["by_path"].most_common()), flush=True)
    if rows:
        first = min(rows, key=lambda r: r["workers"])
        if first["per_second"]:
            print(f"scaling against {first['workers']} worker(s): " + ", ".join(
                f"{r['workers']} -> x{r['per_second'] / first['per_second']:.2f}"
                for r in sorted(rows, key=lambda r: r["workers"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
