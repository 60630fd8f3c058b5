import os

import pytest

os.environ.setdefault("LEDGERLINK_FAKE_PLUGINS", "1")


@pytest.fixture(autouse=True)
def _fresh_fake_stores():
    from ledgerlink.testing import reset_fake_stores

    reset_fake_stores()
    yield
    reset_fake_stores()
