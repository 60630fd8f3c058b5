"""Fixtures of the 1CRM tests; helpers live in onecrm_helpers.py."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ledgerlink.testing import closing_factory

sys.path.insert(0, str(Path(__file__).parent))

from ledgerlink_onecrm.sandbox import OnecrmSandbox  # noqa: E402
from ledgerlink_onecrm.source import OnecrmSource  # noqa: E402
from onecrm_helpers import make_source  # noqa: E402


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
