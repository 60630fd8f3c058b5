from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bilendo_helpers import make_target  # noqa: E402
from ledgerlink_bilendo.sandbox import BilendoSandbox  # noqa: E402
from ledgerlink_bilendo.target import BilendoTarget  # noqa: E402


@pytest.fixture
def sandbox() -> BilendoSandbox:
    return BilendoSandbox()


@pytest.fixture
def target_for(sandbox: BilendoSandbox) -> Iterator[Callable[..., BilendoTarget]]:
    made: list[BilendoTarget] = []

    def build(**settings: Any) -> BilendoTarget:
        target = make_target(sandbox.transport(), **settings)
        made.append(target)
        return target

    yield build
    for target in made:
        target.close()

