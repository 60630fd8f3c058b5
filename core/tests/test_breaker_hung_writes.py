"""The circuit breaker counts writes that hang (issue 16, left open there).

A write whose answer did not come in time (a timeout: the vendor may still be
finishing it) is kept pending and looked up after the settle delay. It used to count
for nothing, so a vendor whose writes all hang cost one full timeout per document:
a run over 500 documents with a 30 s timeout held the pipeline for four hours. Now
such writes count like any other failure for the vendor's reasons: three in a row
stop the run; the ones already sent are still looked up after the settle delay,
adopted when they arrived, and otherwise left for the next run without a write to
a vendor that is down.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ledgerlink import OutcomeUnknown
from ledgerlink._fakes import FakeTarget, FakeTargetSettings
from ledgerlink._hookspecs import hookimpl
from ledgerlink._plugins import PluginManager
from ledgerlink.testing import fake_plugin, fake_store, make_runtime, run_pipeline, sample_document

TIMEOUT = 0.05  # the settle delay is twice this


class TimedSettings(FakeTargetSettings):
    timeout: float = TIMEOUT


class TimedTarget(FakeTarget):
    """The fake target with an HTTP timeout: its lost answers are looked up after a delay."""

    Settings = TimedSettings


class _Plugin:
    distribution = "timed-target (test)"

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register: Callable[..., None]) -> None:
        register("timed-target", TimedTarget)


def config() -> dict[str, Any]:
    return {
        "connections": {
            "shop": {"plugin": "fake-source", "store": "s"},
            "books": {"plugin": "timed-target", "store": "t"},
        },
        "pipelines": [{"name": "p", "source": "shop", "target": "books",
                       "rules": [{"when": {}, "account": "8400"}]}],
    }


def hung() -> OutcomeUnknown:
    return OutcomeUnknown("Acme POST https://acme.test/v1/vouchers: no answer within 30 s (ReadTimeout)",
                          in_flight=True)


@pytest.fixture
def orders() -> list[str]:
    refs = [f"order-{n:02}" for n in range(1, 31)]
    for n, ref in enumerate(refs, 1):
        fake_store("s")["documents"][ref] = sample_document(n).model_copy(update={"source_ref": ref,
                                                                                  "cursor": f"c{n:02}"})
    return refs


def pushes() -> list[str]:
    return [ref for action, ref, _ in fake_store("t")["writes"] if action == "push"]


def run(tmp_path: Path) -> Any:
    runtime = make_runtime(config(), tmp_path, plugins=PluginManager(extra_plugins=[fake_plugin, _Plugin()]))
    return run_pipeline(runtime), runtime


def test_writes_that_hang_stop_the_run_after_three_and_nothing_is_written_twice(
    tmp_path: Path, orders: list[str],
) -> None:
    fake_store("t")["fail"] = [hung() for _ in range(100)]  # nothing arrives
    result, runtime = run(tmp_path)
    assert len(fake_store("t")["fail"]) == 97, "the target was sent more than three writes"
    assert result.error is not None
    assert "no answer within 30 s" in result.error
    assert "stopped after 3 failures in a row" in result.error
    assert "27 documents not tried" in result.error
    assert "3 whose answer was lost are looked up after the settle delay" in result.error
    assert result.counts() == {"failed": 3}
    for ref in orders[:3]:  # looked up, not there, and not written again by this run
        row = runtime.ledger.document("p", ref)
        assert row is not None and row.state == "failed" and row.retryable
        assert "the run was stopped" in (row.reason or "")
    for ref in orders[3:]:
        assert runtime.ledger.document("p", ref) is None  # never tried: no record

    fake_store("t")["fail"] = []  # the vendor answers again
    again, _ = run(tmp_path)
    assert again.error is None
    assert again.counts() == {"pushed": 30}
    assert sorted(pushes()) == orders  # each exactly once


def test_hung_writes_that_arrived_are_adopted_after_the_stop(tmp_path: Path, orders: list[str]) -> None:
    fake_store("t")["fail"] = [("after", hung()) for _ in range(100)]  # each lands, its answer is lost
    result, runtime = run(tmp_path)
    assert "stopped after 3 failures in a row" in (result.error or "")
    assert result.counts() == {"pushed": 3}  # found in the target after the delay
    assert pushes() == orders[:3]
    fake_store("t")["fail"] = []
    again, _ = run(tmp_path)
    assert again.counts() == {"pushed": 27}
    assert sorted(pushes()) == orders


def test_one_slow_write_among_answered_ones_does_not_stop_the_run(tmp_path: Path, orders: list[str]) -> None:
    fake_store("t")["fail"] = [hung(), hung()]  # two in a row, then the vendor answers
    result, _ = run(tmp_path)
    assert result.error is None
    assert result.counts() == {"pushed": 30}  # the two looked up, not there, sent again in the same run
    assert sorted(pushes()) == orders  # each exactly once
