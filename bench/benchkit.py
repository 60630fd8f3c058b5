"""Shared helpers of the benchmarks: machine facts, generated Billbee orders, a
Billbee -> sevDesk pipeline config, and the rate-limit override.

Not a benchmark itself; the ``bench_*.py`` scripts import it (they run from any
directory: Python puts ``bench/`` on ``sys.path`` for a script in it).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"

# The demo's revenue accounts (as ledgerlink._demo.DEMO_RULES).
RULES: list[dict[str, Any]] = [
    {"when": {"treatment": "intra_eu_supply"}, "account": "8125"},
    {"when": {"treatment": "export"}, "account": "8120"},
    {"when": {"tax_rate": 7}, "account": "8300"},
    {"when": {"tax_rate": 0}, "account": "8200"},
    {"when": {}, "account": "8400"},
]


COUNTRY_IDS = {"DE": 1, "AT": 2, "CH": 3, "FR": 4, "NL": 5, "NO": 6, "US": 7}


# -- the machine ---------------------------------------------------------------------
def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, Python {platform.python_version()}"


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   machine: {machine()}")


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- generated Billbee orders ----------------------------------------------------------
def _letters(k: int) -> str:
    out = ""
    k += 26
    while k:
        k, r = divmod(k, 26)
        out = string.ascii_lowercase[r] + out
    return out


def _demo_orders() -> list[dict[str, Any]]:
    from ledgerlink_billbee.sandbox import BillbeeSandbox

    return list(BillbeeSandbox.demo_seed()["Data"])


def iter_orders(n: int, *, customers: int | None = None) -> Iterator[dict[str, Any]]:
    """``n`` Billbee orders made from the ~50 demo orders (the same mix: domestic,
    EU, export, B2B, discounts, coupons, open and paid, ~8 % not transferred), each
    with its own order id, invoice number and modification time, spread over
    ``customers`` distinct customers (default n // 4) with unique names and e-mails."""
    templates = _demo_orders()
    pool = customers or max(1, n // 4)
    base = datetime(2025, 3, 1, 8, 0, 0)
    for i in range(n):
        order = copy.deepcopy(templates[i % len(templates)])
        k = i % pool
        oid = 400000000000000 + i
        order["BillBeeOrderId"] = oid
        order["Id"] = order["OrderNumber"] = f"BN{100000 + i}"
        if order.get("InvoiceNumber"):
            order["InvoiceNumber"] = 100000 + i
        modified = base + timedelta(seconds=i, milliseconds=(i * 7) % 1000)
        order["LastModifiedAt"] = modified.isoformat(timespec="milliseconds")
        suffix = _letters(k)
        customer = order["Customer"]
        cid = 200000000000000 + k
        email = f"kunde.{suffix}@example.de"
        customer["Id"] = cid
        customer["Number"] = 10000 + k
        order["CustomerNumber"] = str(10000 + k)
        customer["Email"] = email
        for meta in [customer.get("DefaultMailAddress"), *(customer.get("MetaData") or [])]:
            if isinstance(meta, dict):
                meta["Value"] = email
        for key in ("InvoiceAddress", "ShippingAddress"):
            address = order.get(key)
            if isinstance(address, dict):
                address["LastName"] = f"{address.get('LastName') or 'Kunde'}{suffix}"
                if address.get("Company"):
                    address["Company"] = f"{address['Company']} {suffix.upper()}"
                address["Email"] = email
        customer["Name"] = order["InvoiceAddress"].get("Company") or (
            f"{order['InvoiceAddress'].get('FirstName')} {order['InvoiceAddress'].get('LastName')}"
        )
        for j, payment in enumerate(order.get("Payments") or []):
            payment["BillbeeId"] = 500000000000000 + i * 10 + j
            payment["TransactionId"] = f"PAY-{oid}"
        for j, item in enumerate(order.get("OrderItems") or []):
            item["BillbeeId"] = oid * 10 + j
        yield order


def orders(n: int, *, customers: int | None = None) -> list[dict[str, Any]]:
    return list(iter_orders(n, customers=customers))


def dumps(value: Any) -> str:
    """JSON with exact decimals (Billbee's number format)."""
    from ledgerlink_billbee.sandbox import dumps as billbee_dumps

    return billbee_dumps(value)


def write_orders_file(path: Path, n: int, *, customers: int | None = None) -> None:
    """A ``GET /orders``-shaped seed file, written order by order."""
    with path.open("w", encoding="utf-8") as out:
        out.write('{"Data": [')
        for i, order in enumerate(iter_orders(n, customers=customers)):
            out.write(("," if i else "") + dumps(order))
        out.write("]}")


# -- configs ---------------------------------------------------------------------------
def pipeline(name: str = "shop-to-books", source: str = "shop", target: str = "books") -> dict[str, Any]:
    return {
        "name": name, "source": source, "target": target,
        "matchers": ["customer_number", "email", "name"],
        "create_contacts": True, "payment_reconciliation": "source",
        "document_date": "invoice", "due_days": 14, "tags": ["Import"],
        "rules": copy.deepcopy(RULES),
    }


def billbee_sevdesk_config(billbee: Any, sevdesk: Any, *, shop_url: str = "http://billbee.test",
                           books_url: str = "http://sevdesk.test", ledger: str,
                           sevdesk_rps: float = 1_000_000.0) -> dict[str, Any]:
    """A raw config (dict) for the two sandboxes; secrets go into os.environ."""
    shop, shop_env = billbee.demo_connection(shop_url)
    books, books_env = sevdesk.demo_connection(books_url)
    os.environ.update(shop_env)
    os.environ.update(books_env)
    books["requests_per_second"] = sevdesk_rps
    # StaticCountry ids besides Germany's are not public; the sandbox takes any id.
    # With them every new contact gets its address (as in production), and the log
    # is not filled with "gets no address" warnings.
    books["country_ids"] = COUNTRY_IDS
    return {
        "ledger": {"url": ledger},
        "connections": {"shop": {"plugin": "billbee", **shop}, "books": {"plugin": "sevdesk", **books}},
        "pipelines": [pipeline()],
    }


def run_billbee_sevdesk(billbee: Any, sevdesk: Any, workdir: Path, *, sevdesk_rps: float = 1_000_000.0,
                        profiler: Any = None) -> tuple[float, float, Any]:
    """Run the Billbee -> sevDesk pipeline once, in-process against the two sandboxes,
    with a SQLite ledger in ``workdir``: (seconds, CPU seconds, RunResult). Only the
    run itself is timed (and profiled, with a ``cProfile.Profile``)."""
    import time

    from ledgerlink._config import parse_config
    from ledgerlink._plugins import get_plugin_manager
    from ledgerlink._runner import PipelineRunner, Runtime

    raw = billbee_sevdesk_config(billbee, sevdesk, ledger=f"sqlite:///{workdir / 'ledger.db'}",
                                 sevdesk_rps=sevdesk_rps)
    plugins = get_plugin_manager()
    config = parse_config(raw, workdir / "ledgerlink.toml", registry=plugins.registry)
    runtime = Runtime(config, plugins=plugins,
                      transports={"shop": billbee.transport(), "books": sevdesk.transport()})
    started, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    runner = PipelineRunner(runtime, config.pipelines[0])
    try:
        result = runner.run()
    finally:
        runner.close()
        if profiler is not None:
            profiler.disable()
    return time.perf_counter() - started, time.process_time() - cpu, result


def raise_billbee_client_limits(rate: float = 1_000_000.0) -> None:
    """The Billbee plugin has no setting for its client-side limits (Billbee's own
    fixed limits: 2/s per endpoint, 10/s per user, 50/s per key); for the
    benchmarks they are raised by overriding the module constants."""
    import ledgerlink_billbee.source as billbee_source

    billbee_source.PER_KEY = billbee_source.PER_USER = billbee_source.PER_ENDPOINT = rate


def to_toml(raw: dict[str, Any]) -> str:
    """Enough TOML for the configs above."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float, Decimal)):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))

    lines = ["[ledger]", f"url = {value(raw['ledger']['url'])}", ""]
    for name, conn in raw["connections"].items():
        lines.append(f"[connections.{name}]")
        lines += [f"{k} = {value(v)}" for k, v in conn.items()]
        lines.append("")
    for p in raw["pipelines"]:
        lines.append("[[pipelines]]")
        rules = p.get("rules", [])
        lines += [f"{k} = {value(v)}" for k, v in p.items() if k != "rules"]
        for rule in rules:
            lines += ["", "[[pipelines.rules]]"] + [f"{k} = {value(v)}" for k, v in rule.items()]
        lines.append("")
    return "\n".join(lines)


def python() -> str:
    exe = VENV_BIN / "python"
    return str(exe) if exe.exists() else sys.executable


@contextmanager
def sandbox_process(*argv: str) -> Iterator[subprocess.Popen[str]]:
    """A sandbox in a process of its own: ``python ARGV`` (a bench script in its sandbox
    mode), its stdin and stdout as text pipes. The script prints where it listens, then
    waits for its stdin to close and prints what it counted as one last line (read it
    with :func:`sandbox_report`). On leaving, it is given 120 s to end, then killed."""
    proc = subprocess.Popen([python(), *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sandbox_report(proc: subprocess.Popen[str]) -> str:
    """Close the sandbox's stdin (it stops serving) and return its last line."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    return proc.stdout.readline().strip()


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run ``python ARGV`` to its end: (its peak RSS in MiB, seconds, exit code, its output
    with stderr, stripped). Peak RSS from ``wait4``: the child's own, not this process's."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([python(), *argv], stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode("utf-8", "replace").strip()
    return usage.ru_maxrss / 1024, elapsed, os.waitstatus_to_exitcode(status), text
