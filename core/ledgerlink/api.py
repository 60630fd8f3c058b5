"""ledgerlink from Python, for host applications (instead of the CLI).

    from ledgerlink import api

    runtime = api.load("ledgerlink.toml")
    result = api.run(runtime, pipeline="shop-to-books")
    outcome = api.push(runtime, "shop-to-books", document)   # one finalized invoice, now

Everything goes through the same engine and ledger as the CLI: the same crash
protocol, the same exactly-once promise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._config import load_config
from ._pipelines import run_pipelines
from ._records import Document
from ._runner import PipelineRunner
from ._runtime import Outcome, Reporter, RunResult, Runtime


def load(config_path: str | Path | None = None, *, reporter: Reporter | None = None,
         transports: dict[str, Any] | None = None) -> Runtime:
    """Read and validate a config; raises ConfigError with one line."""
    return Runtime(load_config(config_path), reporter=reporter, transports=transports)


def run(runtime: Runtime, pipeline: str | None = None, *, dry_run: bool = False, jobs: int = 4) -> list[RunResult]:
    """Run one pipeline (or all enabled ones), like `ledgerlink run`."""
    pipelines = [runtime.config.pipeline(pipeline)] if pipeline else [p for p in runtime.config.pipelines if p.enabled]
    return run_pipelines(runtime, pipelines, jobs=jobs, run=lambda runner: runner.run(dry_run=dry_run))


def push(runtime: Runtime, pipeline: str, document: Document, *, dry_run: bool = False) -> Outcome | None:
    """Transfer one document now (e.g. the moment an invoice is finalized). Pushing it
    again later is harmless: the ledger knows it."""
    runner = PipelineRunner(runtime, runtime.config.pipeline(pipeline))
    try:
        result = runner.run(documents=[document], use_cursor=False, retry_failed=False, dry_run=dry_run,
                            command="api")
        if result.busy:
            from ._locks import PipelineBusy

            raise PipelineBusy(result.error or "busy", pipeline=pipeline)
    finally:
        runner.close()
    if result.error:
        from ._errors import LedgerlinkError

        raise LedgerlinkError(result.error)
    return result.outcomes[0] if result.outcomes else None
