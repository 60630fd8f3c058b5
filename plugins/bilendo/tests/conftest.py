from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ledgerlink.testing import closing_factory

sys.path.insert(0, str(Path(__file__).parent))

from bilendo_helpers import make_target  # noqa: E402
from ledgerlink_bilendo.sandbox import BilendoSandbox  # noqa: E402
from ledgerlink_bilendo.target import BilendoTarget  # noqa: E402


@pytest.fixture
def sandbox() -> BilendoSandbox:
    return BilendoSandbox()


@pytest.fixture
def target_for(sandbox: BilendoSandbox) -> Iterator[Callable[..., BilendoTarget]]:
    yield from closing_factory(lambda **settings: make_target(sandbox.transport(), **settings))
