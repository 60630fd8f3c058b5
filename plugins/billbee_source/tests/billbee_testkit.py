"""Test helpers for the Billbee plugin (imported by the tests; conftest puts this folder on sys.path)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledgerlink import ConnectorContext
from ledgerlink.testing import make_http_client
from ledgerlink_billbee.sandbox import DEMO_API_KEY, DEMO_API_PASSWORD, BillbeeSandbox
from ledgerlink_billbee.source import BillbeeSource

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    """An SDK fixture, unchanged, with amounts read as exact decimals."""
    return json.loads((FIXTURES / name).read_text("utf-8"), parse_float=Decimal)


def fast_http(**kwargs: Any) -> Any:
    kwargs.setdefault("backoff", 0.01)
    return make_http_client(**kwargs)


def make_source(settings: dict[str, Any], transport: Any = None) -> BillbeeSource:
    context = ConnectorContext(connection="billbee-test", http_factory=fast_http, transport=transport)
    return BillbeeSource(settings, context)


def base_settings(**overrides: Any) -> dict[str, Any]:
    settings = {
        "api_key": DEMO_API_KEY,
        # A fresh user per test: the rate limiter is process-wide per key and user.
        "username": f"user-{uuid.uuid4().hex[:8]}@example.com",
        "api_password": DEMO_API_PASSWORD,
        "base_url": "http://billbee.test/api/v1",
        "shops": [100000000012001],
        "order_states": ["paid", "shipped", "closed"],
        "start_date": "2025-01-01",
    }
    settings.update(overrides)
    return settings


def demo_pair() -> tuple[BillbeeSandbox, BillbeeSource]:
    """The demo data in a sandbox, and a source with the demo connection's settings."""
    username = f"user-{uuid.uuid4().hex[:8]}@example.com"
    sandbox = BillbeeSandbox(seed=BillbeeSandbox.demo_seed(), username=username)
    sandbox.faults.retry_after = 0.1
    settings, env = sandbox.demo_connection("http://billbee.test")
    settings["api_key"] = env["BILLBEE_API_KEY"]
    settings["api_password"] = env["BILLBEE_API_PASSWORD"]
    return sandbox, make_source(settings, sandbox.transport())
