"""Shared helpers for the 1CRM tests: a source wired to an in-process sandbox or to respx."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ledgerlink import ConnectorContext
from ledgerlink.testing import closing_factory, make_http_client
from ledgerlink_onecrm.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, OnecrmSandbox
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


@pytest.fixture
def seed() -> dict[str, Any]:
    return copy.deepcopy(OnecrmSandbox.demo_seed())


@pytest.fixture
def sandbox(seed: dict[str, Any]) -> OnecrmSandbox:
    return OnecrmSandbox(seed=seed)


@pytest.fixture
def source() -> Iterator[Callable[..., OnecrmSource]]:
    """``source(transport, **settings)``: a source, closed after the test."""
    yield from closing_factory(make_source)
