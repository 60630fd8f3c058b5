"""Puts the test helpers (billbee_testkit) on the import path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from billbee_testkit import demo_pair  # noqa: E402


@pytest.fixture
def demo():  # type: ignore[no-untyped-def]
    """(sandbox, source) with the demo data and the demo connection's settings."""
    return demo_pair()
