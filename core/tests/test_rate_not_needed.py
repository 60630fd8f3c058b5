"""A target that collects in the document's own currency and books nothing (a dunning
service: ``needs_exchange_rate = False``) gets foreign documents without a rate; any
other target still needs one (the source's, else the pipeline's ``exchange_rates``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ledgerlink._fakes import FakeTarget
from ledgerlink._hookspecs import hookimpl
from ledgerlink._plugins import PluginManager
from ledgerlink.testing import fake_plugin, fake_store, make_runtime, run_pipeline, sample_document


class CollectingTarget(FakeTarget):
    needs_exchange_rate: ClassVar[bool] = False


class _Plugin:
    distribution = "collecting-target (test)"

    @staticmethod
    @hookimpl
    def ledgerlink_register_targets(register: Callable[..., None]) -> None:
        register("collecting-target", CollectingTarget)


def config(target: str, **pipeline: Any) -> dict[str, Any]:
    return {
        "connections": {"shop": {"plugin": "fake-source", "store": "s"}, "books": {"plugin": target, "store": "t"}},
        "pipelines": [{"name": "p", "source": "shop", "target": "books",
                       "rules": [{"when": {}, "account": "8400"}], **pipeline}],
    }


@pytest.mark.parametrize(("target", "pipeline", "state"), [
    ("fake-target", {}, "quarantined"),  # books in EUR: a CHF document needs a rate
    ("fake-target", {"exchange_rates": {"CHF": "1.04"}}, "pushed"),
    ("collecting-target", {}, "pushed"),  # collects in CHF: no rate asked for
    ("collecting-target", {"book_currency": "EUR"}, "pushed"),
])
def test_a_rate_is_needed_only_where_something_is_booked_in_another_currency(
    tmp_path: Path, target: str, pipeline: dict[str, Any], state: str,
) -> None:
    fake_store("s")["documents"]["order-1"] = sample_document(1).model_copy(update={"currency": "CHF"})
    runtime = make_runtime(config(target, **pipeline), tmp_path,
                           plugins=PluginManager(extra_plugins=[fake_plugin, _Plugin()]))
    [outcome] = run_pipeline(runtime).outcomes
    assert outcome.state == state, outcome.reason
    if state == "quarantined":
        assert "neither the source nor the pipeline's exchange_rates states a rate for CHF" in (outcome.reason or "")
    pushed = fake_store("t")["pushed"].get("order-1")
    if state == "quarantined":
        assert pushed is None
    else:  # the rate the target was given: the pipeline's for a booking target, none for a collecting one
        assert pushed is not None and pushed["currency"] == "CHF"
        assert pushed["exchange_rate"] == ("1.04" if target == "fake-target" else None)
