"""Shared helpers of the 1CRM tests (imported by name; conftest puts this folder on sys.path)."""

from __future__ import annotations

from typing import Any

from ledgerlink import ConnectorContext
from ledgerlink.testing import make_http_client
from ledgerlink_onecrm.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from ledgerlink_onecrm.source import OnecrmSettings, OnecrmSource

BASE = "https://crm.test/api.php"


def fast_http(**kwargs: Any) -> Any:
    """The engine's HTTP client with short waits between retries."""
    return make_http_client(**{**kwargs, "backoff": 0.01, "max_wait": 0.05, "retries": 3})


def make_source(transport: Any = None, **overrides: Any) -> OnecrmSource:
    settings: dict[str, Any] = {"base_url": BASE, "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET,
                                "requests_per_second": 1000, "start_date": "2026-01-01", **overrides}
    if "username" in overrides:
        settings.pop("client_id")
        settings.pop("client_secret")
    context = ConnectorContext(connection="onecrm-test", http_factory=fast_http, transport=transport)
    return OnecrmSource(OnecrmSettings(**settings), context)

