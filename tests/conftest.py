"""This repository's cross-package tests use the fake connectors (``fake-source``,
``fake-target``) beside the real plugins, also in the CLI they run in process: they
switch them on for their own process here. (The installed test kit sets nothing.)"""

import os

os.environ.setdefault("LEDGERLINK_FAKE_PLUGINS", "1")
