"""Shared helpers for the Shipmondo tests: a source wired to an in-process sandbox."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # shipmondo_testkit

from ledgerlink import ConnectorContext
from ledgerlink.testing import closing_factory, make_http_client
from ledgerlink_shipmondo.sandbox import DEMO_KEY, DEMO_USER, ShipmondoSandbox
from ledgerlink_shipmondo.source import ShipmondoSettings, ShipmondoSource

BASE_URL = "http://shipmondo.sandbox/api/public/v3"


def fast_http(**kwargs: Any) -> Any:
    """The engine's HTTP client with short waits between retries."""
    return make_http_client(**{**kwargs, "backoff": 0.01, "max_wait": 0.05})


def make_source(sandbox: ShipmondoSandbox, **overrides: Any) -> ShipmondoSource:
    settings = {"api_user": DEMO_USER, "api_key": DEMO_KEY, "base_url": BASE_URL, "requests_per_second": 1000,
                **overrides}
    context = ConnectorContext(connection="shipmondo-test", http_factory=fast_http, transport=sandbox.transport())
    return ShipmondoSource(ShipmondoSettings(**settings), context)


@pytest.fixture
def sandbox() -> ShipmondoSandbox:
    return ShipmondoSandbox(seed=ShipmondoSandbox.demo_seed())


@pytest.fixture
def source() -> Iterator[Callable[..., ShipmondoSource]]:
    """``source(sandbox, **settings)``: a source on that sandbox, closed after the test."""
    yield from closing_factory(make_source)
