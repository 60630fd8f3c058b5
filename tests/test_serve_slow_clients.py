"""Slow and idle clients against the real `ledgerlink serve` processes (issue 16, item 6).

Both servers `serve` starts (the service, and `serve -p PIPELINE`'s webhook endpoint)
run uvicorn with ledgerlink's options: a client that sends its request head too slowly
gets 408 and is cut off within the head deadline, and an idle keep-alive connection is
closed. (core/tests/test_webhook_surface.py proves each option on its own, with short
times and the connection limit's 503.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")

from ledgerlink._secrets_store import new_key  # noqa: E402
from ledgerlink._webhooks import HEAD_SECONDS, KEEP_ALIVE_SECONDS  # noqa: E402

LEDGERLINK = str(Path(sys.executable).parent / "ledgerlink")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], tmp_path: Path, name: str, health: str) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "LEDGERLINK_ADMIN_TOKEN": "slow-clients-admin-0123456789",
           "LEDGERLINK_SECRET_KEYS": new_key(), "COBOT_TOKEN": "cobot-token"}
    env.pop("LEDGERLINK_CONFIG", None)
    log = tmp_path / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([LEDGERLINK, *args, "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[int]:
    yield from start(["serve", "--ledger", f"sqlite:///{tmp_path / 'service.db'}", "--workers", "1"], tmp_path,
                     "service", "/health")


@pytest.fixture
def webhook_endpoint(tmp_path: Path) -> Iterator[int]:
    config = tmp_path / "ledgerlink.toml"
    config.write_text(f'''
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"

[connections.cobot]
plugin = "cobot"
api_token = "${{COBOT_TOKEN}}"
subdomain = "co-up"
base_url_v1 = "http://127.0.0.1:9/api"
base_url = "http://127.0.0.1:9/v2"
start_date = 2024-01-01

[connections.books]
plugin = "sevdesk"
api_token = "${{COBOT_TOKEN}}"
base_url = "http://127.0.0.1:9/api/v1"

[[pipelines]]
name = "cowork"
source = "cobot"
target = "books"

[[pipelines.rules]]
when = {{}}
account = "8400"
''', encoding="utf-8")
    yield from start(["-c", str(config), "serve", "-p", "cowork", "--secret-file", str(tmp_path / "secret")],
                     tmp_path, "webhooks", "/health")


def check_slow_and_idle_clients(port: int) -> None:
    slow = socket.create_connection(("127.0.0.1", port), timeout=HEAD_SECONDS + 10)
    idle = socket.create_connection(("127.0.0.1", port), timeout=KEEP_ALIVE_SECONDS + 10)
    try:
        started = time.monotonic()
        slow.sendall(b"POST /webhooks/x HTTP/1.1\r\nHost: x\r\n")  # and never the rest of the head
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = b""
        while b"\r\n\r\n" not in answered:
            chunk = idle.recv(4096)
            assert chunk, answered
            answered += chunk
        assert answered.startswith(b"HTTP/1.1 200"), answered
        idle_since = time.monotonic()
        rest = b""
        while chunk := idle.recv(4096):  # the rest of the answer, then the server closes
            rest += chunk
        idle_for = time.monotonic() - idle_since
        assert b"connection: close" not in answered.lower()  # it was kept alive, then closed for idling
        assert idle_for < KEEP_ALIVE_SECONDS + 3, f"idle connection closed after {idle_for:.1f} s"
        received = b""
        while chunk := slow.recv(4096):
            received += chunk
        waited = time.monotonic() - started
        assert received.startswith(b"HTTP/1.1 408"), received
        assert HEAD_SECONDS - 1 < waited < HEAD_SECONDS + 5, f"cut off after {waited:.1f} s"
    finally:
        slow.close()
        idle.close()


def test_the_service_cuts_off_slow_and_idle_clients(service: int) -> None:
    check_slow_and_idle_clients(service)


def test_the_webhook_endpoint_of_serve_p_cuts_off_slow_and_idle_clients(webhook_endpoint: int) -> None:
    check_slow_and_idle_clients(webhook_endpoint)
