"""Shared helpers for the Cobot tests."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
from ledgerlink import ConnectorContext
from ledgerlink.testing import make_http_client
from ledgerlink_cobot.source import CobotSettings, CobotSource

SPACE = "99da6cb66b5e6b39007690854fd66df9"
TOKEN = "tok-cobot-secret-1234"


def fast_http(**kwargs: Any) -> Any:
    return make_http_client(**{**kwargs, "backoff": 0.01, "max_wait": 0.05, "retries": 3})


def make_source(transport: Any = None, **overrides: Any) -> CobotSource:
    settings = {
        "api_token": TOKEN, "subdomain": "co-up", "start_date": "2024-01-01",
        "requests_per_second": 1000, "memberships_requests_per_second": 1000,
        **overrides,
    }
    context = ConnectorContext(connection="cobot-test", http_factory=fast_http, transport=transport)
    return CobotSource(CobotSettings(**settings), context)


def demo_seed() -> dict[str, Any]:
    return json.loads(resources.files("ledgerlink_cobot").joinpath("data/demo_seed.json").read_text())


@pytest.fixture
def seed() -> dict[str, Any]:
    return copy.deepcopy(demo_seed())


@pytest.fixture
def cobot() -> Any:
    """A factory: ``cobot(transport, **settings)`` builds a CobotSource for tests."""
    return make_source
