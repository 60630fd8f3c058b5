"""Issue 16, item 3 with a target that makes its HTTP client lazily (as Bilendo does).

The runner waits twice the target's write timeout before it asks the target about a
young pending write. The timeout used to be known only once the connector had made
its client, so at the start of a run (settling what the last one left pending) the
delay was 0 for a lazy target and the write was looked up at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ledgerlink._fakes import FakeTarget, FakeTargetSettings
from ledgerlink._hookspecs import hookimpl
from ledgerlink._http import HttpClient
from ledgerlink._plugins import PluginManager
from ledgerlink._records import TargetRef
from ledgerlink._runner import PipelineRunner, Runtime, SimulatedCrash
from ledgerlink.testing import (
    CollectingReporter,
    fake_plugin,
    fake_store,
    make_runtime,
    run_pipeline,
    sample_document,
)

TIMEOUT = 0.6


class LazySettings(FakeTargetSettings):
    timeout: float | None = None


class LazyHttpTarget(FakeTarget):
    """The fake target, with an HTTP client made only on the first use (never, here)."""

    Settings = LazySettings
    made: ClassVar[list[HttpClient]] = []
    looked_up: ClassVar[list[float]] = []

    @property
    def http(self) -> HttpClient:
        client = self.context.http(vendor="Lazy", base_url="http://127.0.0.1:9",
                                   **({} if self.settings.timeout is None else {"timeout": self.settings.timeout}))
        self.made.append(client)
        return client

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        self.looked_up.append(time.time())
        return super().find_document(source_ref, number)


class _LazyPlugin:
    distribution = "lazy-target (test)"

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register: Callable[..., None]) -> None:
        register("lazy-target", LazyHttpTarget)


def plugins() -> PluginManager:
    return PluginManager(extra_plugins=[fake_plugin, _LazyPlugin()])


def config(**target: Any) -> dict[str, Any]:
    return {
        "connections": {
            "shop": {"plugin": "fake-source", "store": "s"},
            "books": {"plugin": "lazy-target", "store": "t", **target},
        },
        "pipelines": [{"name": "p", "source": "shop", "target": "books",
                       "rules": [{"when": {}, "account": "8400"}]}],
    }


@pytest.fixture(autouse=True)
def _clear() -> None:
    LazyHttpTarget.made.clear()
    LazyHttpTarget.looked_up.clear()


def test_a_lazy_targets_write_timeout_is_known_before_its_client_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEDGERLINK_HTTP_TIMEOUT", raising=False)
    cases: list[tuple[dict[str, Any], dict[str, str], float]] = [
        ({"timeout": 2.5}, {}, 2.5),  # the connection's own setting
        ({}, {}, 30.0),  # HttpClient's default
        ({}, {"LEDGERLINK_HTTP_TIMEOUT": "4"}, 4.0),  # the operator's default
        ({"timeout": 2.5}, {"LEDGERLINK_HTTP_TIMEOUT": "4"}, 2.5),  # the connection's own wins
    ]
    for n, (settings, env, expected) in enumerate(cases):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        folder = tmp_path / str(n)
        folder.mkdir()
        runtime = make_runtime(config(**settings), folder, plugins=plugins(), http_options={})
        runner = PipelineRunner(runtime, runtime.config.pipelines[0])
        try:
            assert LazyHttpTarget.made == []
            assert runner.target.context.write_timeout == expected, (settings, env)
            assert runner._settle_delay() == 2 * expected
            client = runner.target.http  # once made, the client has the timeout announced
            assert client.timeout == expected
            assert runner.target.context.write_timeout == expected
            client.close()
        finally:
            runner.close()
            runtime.ledger.close()
        for key in env:
            monkeypatch.delenv(key)
        LazyHttpTarget.made.clear()


def test_a_young_pending_write_of_a_lazy_target_is_looked_up_only_after_the_settle_delay(tmp_path: Path) -> None:
    fake_store("s")["documents"]["order-1"] = sample_document(1)
    runtime = make_runtime(config(timeout=TIMEOUT), tmp_path, plugins=plugins(), crash_points=["after_push"])
    with pytest.raises(SimulatedCrash):
        run_pipeline(runtime)  # the write reached the target; the run died before its answer was recorded
    row = runtime.ledger.document("p", "order-1")
    assert row is not None and row.state == "pending" and row.updated_at is not None
    written = (row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)).timestamp()
    fresh = Runtime(runtime.config, plugins=runtime.plugins, reporter=CollectingReporter())
    LazyHttpTarget.looked_up.clear()  # the first run looked up before its push (a new ledger)
    result = run_pipeline(fresh)  # the next run starts at once
    assert [o.state for o in result.outcomes] == ["pushed"]
    assert LazyHttpTarget.made == []  # the target never made its client
    assert LazyHttpTarget.looked_up, "the pending write was never looked up"
    waited = LazyHttpTarget.looked_up[0] - written
    assert waited >= 2 * TIMEOUT - 0.05, f"looked up {waited:.2f} s after the write, before the settle delay"
    messages = fresh.reporter.messages  # type: ignore[attr-defined]
    assert any("may still be arriving" in line for line in messages), messages
    assert [ref for action, ref, _ in fake_store("t")["writes"] if action == "push"] == ["order-1"]
    assert datetime.now(UTC).timestamp() - written < 30
