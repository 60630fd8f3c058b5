"""Pipelines on Celery workers against the machine's RabbitMQ, Redis and PostgreSQL (issue 21).

- two workers and 50 tenants: every document in sevDesk exactly once;
- SIGKILL of a worker mid-run: the task is redelivered to the other worker, which
  settles what the dead one left pending; nothing lost or doubled;
- a cron `ledgerlink run` overlapping a worker on one pipeline: never both at once
  (the worker's task ends as "already running");
- two workers on one vendor account with the shared budget in Redis: the sandbox's
  own throttle answers 0 x 429;
- a poison task ends in the ledger with its reason after a bounded number of tries;
- the scheduler's moments: each pipeline at its own offset, once per interval.

Every worker is the real CLI (`ledgerlink worker`) as a subprocess; each test has a
PostgreSQL database of its own. Skipped with a reason when a service is absent, never
when CI=true.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

celery = pytest.importorskip("celery", reason="workers need ledgerlink[celery]")
pytest.importorskip("fastapi", reason="tenants need ledgerlink[server]")

from ledgerlink import SandboxServer  # noqa: E402
from ledgerlink._secrets_store import new_key  # noqa: E402
from ledgerlink._worker import due, make_app, offset  # noqa: E402
from ledgerlink.testing import sample_document  # noqa: E402
from ledgerlink_sevdesk.sandbox import SevdeskSandbox  # noqa: E402

PG = "host=127.0.0.1 port=5432 user=postgres dbname=test"
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/0"
LEDGERLINK = str(Path(sys.executable).parent / "ledgerlink")


def _need(what: str, check: Any) -> None:
    try:
        check()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no {what} on 127.0.0.1 ({type(exc).__name__}: {exc})")


def _services() -> None:
    import psycopg
    import redis
    from kombu import Connection

    _need("PostgreSQL", lambda: psycopg.connect(PG, connect_timeout=3).close())
    _need("Redis", lambda: redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping())
    _need("RabbitMQ", lambda: Connection(RABBIT, connect_timeout=3).ensure_connection(max_retries=1))


@dataclass
class World:
    tmp: Path
    url: str
    key: str
    queue_name: str
    sevdesk: Any
    sevdesk_url: str
    token: str
    config: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    services: list[Any] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("LEDGERLINK_REDIS_URL", "LEDGERLINK_CRASH_AT")}
        env.update({"LEDGERLINK_SECRET_KEYS": self.key, "LEDGERLINK_HTTP_TIMEOUT": "5", **extra})
        return env

    def start_worker(self, name: str, *, redis: bool = True, wait: bool = True, **env: str) -> subprocess.Popen[bytes]:
        """`ledgerlink worker` as a subprocess; ``wait``: until it consumes the queue."""
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115
        extra = {"LEDGERLINK_REDIS_URL": REDIS} if redis else {}
        proc = subprocess.Popen([LEDGERLINK, "-c", str(self.config), "worker", "--concurrency", "2", "--name",
                                 f"{name}@test"], env=self.env(**extra, **env), stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.tmp)
        self.workers.append(proc)
        if wait:
            deadline = time.monotonic() + 60
            while f"{name}@test ready." not in self.log(name):
                assert proc.poll() is None, self.log(name)[-3000:]
                assert time.monotonic() < deadline, f"worker {name} did not start: {self.log(name)[-3000:]}"
                time.sleep(0.1)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def service(self) -> Any:
        """The tenant store and inboxes of the service, in this process (nothing runs here)."""
        from ledgerlink._secrets_store import SecretBox
        from ledgerlink._service import Service

        service = Service(self.url, box=SecretBox([self.key]), workers=1, start=False)
        self.services.append(service)
        return service

    def tenant(self, service: Any, name: str, *, rps: float = 1000) -> None:
        service.tenants.put(name, {
            "connections": {"app": {"plugin": "inbox"},
                            "books": {"plugin": "sevdesk", "api_token": self.token, "base_url": self.sevdesk_url,
                                      "backoff": 0.05, "requests_per_second": rps,
                                      # loopback: a young pending write is settled after 2 x 2 s
                                      "timeout": 2}},
            "pipelines": [{"name": "invoices", "source": "app", "target": "books", "matchers": ["email"],
                           "rules": [{"when": {"line": "goods"}, "account": "8400"},
                                     {"when": {"line": "shipping"}, "account": "8400"}]}],
        })

    def post(self, service: Any, tenant: str, n: int) -> str:
        runtime, pipeline = service.pipeline(tenant, "invoices")
        document = sample_document(n, customer=f"{tenant}-c{n % 3}")
        document.source_ref, document.number = f"{tenant}-inv-{n}", f"{tenant.upper()}-{n}"
        service.inbox_of(runtime, pipeline).put(document.source_ref, json.loads(document.model_dump_json(
            exclude={"cursor"})))
        return document.number or ""

    def queue(self, tenant: str, pipeline: str = "invoices") -> None:
        app = make_app(RABBIT, queue=self.queue_name)
        app.send_task("ledgerlink.run_pipeline", args=(tenant, pipeline), queue=self.queue_name)

    def pushed(self) -> int:
        from ledgerlink._ledger import Ledger

        return Ledger(self.url).counts().get("pushed", 0)

    def wait_pushed(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pushed() >= count:
                return
            for proc in self.workers:
                assert proc.poll() is None or proc.returncode in (0, -9, -15), "a worker died"
            time.sleep(0.25)
        raise AssertionError(f"{self.pushed()} of {count} documents pushed after {timeout} s")

    def vouchers(self) -> Counter[str]:
        return Counter(str(v.get("description") or v.get("voucherNumber")) for v in
                       self.sevdesk.snapshot()["vouchers"].values())

    def stop(self) -> None:
        for service in self.services:
            service.close()
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    _services()
    import psycopg
    from kombu import Connection

    database = f"ll_workers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    queue = f"ledgerlink-test-{uuid.uuid4().hex[:8]}"  # a queue of its own: nothing left from another test
    token = f"workers-{secrets.token_hex(6)}"
    sandbox = SevdeskSandbox(seed={"tokens": [token]})
    with SandboxServer(sandbox) as server:
        config = tmp_path / "ledgerlink.toml"
        config.write_text(f'[ledger]\nurl = "{url}"\n\n[workers]\nbroker_url = "{RABBIT}"\nmax_deliveries = 3\n'
                          f'queue = "{queue}"\n')
        world = World(tmp_path, url, new_key(), queue, sandbox, f"{server.url}/api/v1", token, config)
        try:
            yield world
        finally:
            world.stop()
            from ledgerlink._inbox import engine_for

            engine_for(url).dispose()
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            with Connection(RABBIT) as conn:
                conn.default_channel.queue_delete(queue)


def test_two_workers_and_fifty_tenants_transfer_everything_once(world: World) -> None:
    service = world.service()
    tenants = [f"school-{i:02d}" for i in range(50)]
    numbers = []
    for tenant in tenants:
        world.tenant(service, tenant)
        numbers += [world.post(service, tenant, n) for n in (1, 2)]
    world.start_worker("w1")
    world.start_worker("w2")
    for tenant in tenants:
        world.queue(tenant)
        world.queue(tenant)  # queued twice: the second finds nothing new, or the pipeline busy
    world.wait_pushed(len(numbers), timeout=240)
    time.sleep(1)  # late duplicates would show now
    vouchers = world.vouchers()
    assert sum(vouchers.values()) == len(numbers) and set(vouchers.values()) == {1}, vouchers.most_common(3)
    both = world.log("w1") + world.log("w2")
    assert "ledgerlink.run_pipeline" in world.log("w1") and "ledgerlink.run_pipeline" in world.log("w2"), both[-2000:]
    assert "Traceback" not in both, both[-3000:]
    status = subprocess.run([LEDGERLINK, "-c", str(world.config), "status", "--tenants", "--json"],
                            capture_output=True, text=True, env=world.env(), timeout=60)
    assert status.returncode == 0, status.stderr
    rows = {r["tenant"]: r for r in json.loads(status.stdout)}
    assert set(tenants) <= set(rows)
    assert all(rows[t]["counts"] == {"pushed": 2} and rows[t]["last_run"] for t in tenants)


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(world: World) -> None:
    service = world.service()
    tenants = [f"shop-{i}" for i in range(3)]
    numbers = []
    for tenant in tenants:
        world.tenant(service, tenant, rps=4)  # slow enough to be killed in the middle
        numbers += [world.post(service, tenant, n) for n in range(1, 5)]
    first = world.start_worker("first")
    for tenant in tenants:
        world.queue(tenant)
    deadline = time.monotonic() + 120
    while world.pushed() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert world.pushed() >= 3
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = world.pushed()
    assert killed_at < len(numbers), "the run ended before the kill: nothing was interrupted"
    world.start_worker("second")  # takes the redelivered tasks (acks_late)
    world.wait_pushed(len(numbers), timeout=240)
    time.sleep(1)
    vouchers = world.vouchers()
    assert sum(vouchers.values()) == len(numbers) and set(vouchers.values()) == {1}, vouchers.most_common(3)
    assert "ledgerlink.run_pipeline" in world.log("second")


def test_a_cron_run_and_a_worker_never_work_on_one_pipeline_at_once(world: World) -> None:
    # The config file's own pipeline (the default tenant) read by cron and by a worker.
    source_file = world.tmp / "orders.json"
    orders = [json.loads(sample_document(n, customer=f"c{n % 2}").model_dump_json()) for n in range(1, 9)]
    source_file.write_text(json.dumps({"documents": orders}))
    text = world.config.read_text() + (
        f'\n[connections.shop]\nplugin = "fake-source"\nfile = "{source_file}"\n\n'
        f'[connections.books]\nplugin = "sevdesk"\napi_token = "${{SEVDESK_TOKEN}}"\nbase_url = "{world.sevdesk_url}"\n'
        'requests_per_second = 3\n\n'  # a slow run: the worker's task comes while it holds the lock
        '[[pipelines]]\nname = "orders"\nsource = "shop"\ntarget = "books"\nmatchers = ["email"]\n'
        'rules = [{ when = {}, account = "8400" }]\n')
    world.config.write_text(text)
    env = world.env(LEDGERLINK_FAKE_PLUGINS="1", SEVDESK_TOKEN=world.token)
    cron = subprocess.Popen([LEDGERLINK, "-c", str(world.config), "run", "-p", "orders"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=world.tmp)
    time.sleep(1.5)  # the cron run holds the pipeline's lock now
    world.start_worker("worker", LEDGERLINK_FAKE_PLUGINS="1", SEVDESK_TOKEN=world.token)
    world.queue("", "orders")
    out, err = cron.communicate(timeout=120)
    assert cron.returncode == 0, err.decode()
    from ledgerlink._ledger import Ledger

    deadline = time.monotonic() + 60
    skipped: list[Any] = []
    while not skipped and time.monotonic() < deadline:
        skipped = [r for r in Ledger(world.url).runs("orders") if (r.outcome or "").startswith("skipped: already")]
        time.sleep(0.2)
    assert skipped and skipped[0].command == "worker run_pipeline", world.log("worker")[-2000:]
    assert "'state': 'busy'" in world.log("worker")
    cron_runs = [r for r in Ledger(world.url).runs("orders") if r.command == "run"]
    # the worker's task came and went while the cron run held the pipeline
    assert cron_runs and cron_runs[0].started_at <= skipped[0].started_at <= cron_runs[0].finished_at
    vouchers = world.vouchers()
    assert sum(vouchers.values()) == len(orders) and set(vouchers.values()) == {1}


def test_two_workers_on_one_vendor_account_stay_under_its_limit(world: World) -> None:
    world.sevdesk.faults.requests_per_second = 6.0  # sevDesk's own throttle for the test: 429 above 6/s
    service = world.service()
    tenants = [f"firm-{i}" for i in range(4)]
    numbers = []
    for tenant in tenants:
        # One account: every tenant uses the same sevDesk token, each connection keeps 4/s
        # (headroom under the vendor's 6, as an operator sets it). Two workers each keeping
        # 4/s alone would send 8/s; only a shared budget keeps them under 6.
        world.tenant(service, tenant, rps=4)
        numbers += [world.post(service, tenant, n) for n in (1, 2)]
    world.start_worker("a")
    world.start_worker("b")
    for tenant in tenants:
        world.queue(tenant)
    world.wait_pushed(len(numbers), timeout=240)
    assert world.sevdesk.stats["throttled"] == 0, "the shared budget let the workers exceed the vendor's limit"
    assert "ledgerlink.run_pipeline" in world.log("a") and "ledgerlink.run_pipeline" in world.log("b")


def test_a_poison_task_ends_in_the_ledger_with_its_reason(world: World) -> None:
    service = world.service()
    world.tenant(service, "broken")
    world.post(service, "broken", 1)
    # Every run crashes its worker after the document was marked pending (the process
    # dies there, as on SIGKILL); the task is redelivered to the next worker started.
    world.queue("broken")
    from ledgerlink._ledger import Ledger

    deadline = time.monotonic() + 240
    runs: list[Any] = []
    starts = 0
    while time.monotonic() < deadline and not runs:
        proc = world.start_worker(f"w{starts}", wait=False, LEDGERLINK_CRASH_AT="after_pending")
        starts += 1
        while proc.poll() is None and time.monotonic() < deadline:
            runs = [r for r in Ledger(world.url).runs() if (r.outcome or "").startswith("error: gave up")]
            if runs:
                break
            time.sleep(0.3)
    assert starts == 4, f"{starts} workers started"  # three died with the task, the fourth gave it up
    assert runs, world.log(f"w{starts - 1}")[-3000:]
    assert "gave up after 3 deliveries of the run_pipeline task" in runs[0].outcome
    assert runs[0].pipeline == "tenant:broken:invoices"


def test_each_pipeline_runs_once_per_interval_at_its_own_moment() -> None:
    names = [f"tenant:t{i}:invoices" for i in range(1000)]
    offsets = [offset(name, 300) for name in names]
    assert all(0 <= o < 300 for o in offsets) and offset(names[0], 300) == offsets[0]
    # spread: no minute of the interval holds more than a few times its share
    per_minute = Counter(int(o // 60) for o in offsets)
    assert len(per_minute) == 5 and max(per_minute.values()) < 260
    # in any stretch of dispatches, each pipeline is due exactly once per interval
    start = 1_800_000_000.0
    ticks = [start + 15 * k for k in range(21)]  # 300 s in 15 s ticks
    counts = Counter(name for name in names for a, b in zip(ticks, ticks[1:], strict=False) if due(name, 300, a, b))
    assert set(counts.values()) == {1} and len(counts) == len(names)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_hands_its_work_to_the_workers_and_both_serve_metrics(world: World) -> None:
    import httpx

    admin = f"admin-{secrets.token_hex(8)}"
    serve_port, metrics_port = _free_port(), _free_port()
    env = world.env(LEDGERLINK_ADMIN_TOKEN=admin, LEDGERLINK_BROKER_URL=RABBIT)
    log = open(world.tmp / "serve.log", "wb")  # noqa: SIM115
    # The service's queue is the default one unless a config file says otherwise: the
    # worker here reads its queue from the config, so the service gets the same config.
    serve = subprocess.Popen([LEDGERLINK, "-c", str(world.config), "serve", "--port", str(serve_port)], env=env,
                             stdout=log, stderr=subprocess.STDOUT, cwd=world.tmp)
    world.workers.append(serve)
    proc = subprocess.Popen([LEDGERLINK, "-c", str(world.config), "worker", "--name", "m@test", "--metrics-port",
                             str(metrics_port)], env=world.env(LEDGERLINK_REDIS_URL=REDIS),
                            stdout=open(world.tmp / "m.log", "wb"), stderr=subprocess.STDOUT, cwd=world.tmp)  # noqa: SIM115
    world.workers.append(proc)
    client = httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=30,
                          headers={"Authorization": f"Bearer {admin}"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get("/health").status_code == 200 and "m@test ready." in world.log("m"):
                break
        except httpx.TransportError:
            pass
        assert serve.poll() is None, (world.tmp / "serve.log").read_text()
        time.sleep(0.2)
    assert "work goes to Celery workers via amqp://guest:***@" in (world.tmp / "serve.log").read_text()
    body = {"connections": {"app": {"plugin": "inbox"},
                            "books": {"plugin": "sevdesk", "api_token": world.token, "base_url": world.sevdesk_url,
                                      "requests_per_second": 1000, "timeout": 2}},
            "pipelines": [{"name": "invoices", "source": "app", "target": "books", "matchers": ["email"],
                           "rules": [{"when": {}, "account": "8400"}]}]}
    assert client.put("/v1/tenants/acme", json=body).status_code == 201
    document = json.loads(sample_document(7, customer="acme-c").model_dump_json(exclude={"cursor"}))
    posted = client.post("/v1/tenants/acme/pipelines/invoices/documents", json=document)
    assert posted.status_code == 202, posted.text
    url = posted.json()["documents"][0]["url"]
    deadline = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline:
        state = client.get(url).json().get("state")
        if state == "pushed":
            break
        time.sleep(0.3)
    assert state == "pushed", world.log("m")[-2000:]
    assert "ledgerlink.run_pipeline" in world.log("m")  # the worker did it, not the service
    assert client.get("/health").json()["busy"] == 0
    worker_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert 'ledgerlink_documents_total{outcome="pushed"} 1.0' in worker_metrics
    assert 'ledgerlink_vendor_requests_total{status="200",vendor="sevDesk"}' in worker_metrics
    assert 'ledgerlink_tasks_total{kind="run_pipeline",state="done"}' in worker_metrics
    assert "ledgerlink_queue_depth" in worker_metrics and world.token not in worker_metrics
    service_metrics = client.get("/metrics")
    assert service_metrics.status_code == 200 and "ledgerlink_vendor_requests_total" in service_metrics.text
    client.close()


def test_workers_on_a_redis_broker_transfer_everything_once(world: World) -> None:
    redis_broker = "redis://127.0.0.1:6379/1"
    world.config.write_text(world.config.read_text().replace(f'broker_url = "{RABBIT}"',
                                                             f'broker_url = "{redis_broker}"'))
    service = world.service()
    tenants = [f"club-{i}" for i in range(6)]
    numbers = []
    for tenant in tenants:
        world.tenant(service, tenant)
        numbers += [world.post(service, tenant, n) for n in (1, 2)]
    world.start_worker("r1")
    world.start_worker("r2")
    app = make_app(redis_broker, queue=world.queue_name)
    for tenant in tenants:
        app.send_task("ledgerlink.run_pipeline", args=(tenant, "invoices"), queue=world.queue_name)
    world.wait_pushed(len(numbers), timeout=120)
    vouchers = world.vouchers()
    assert sum(vouchers.values()) == len(numbers) and set(vouchers.values()) == {1}
    assert "Connected to redis://:**@127.0.0.1:6379/1" in world.log("r1")
    import redis

    redis.Redis.from_url(redis_broker).delete(world.queue_name)
