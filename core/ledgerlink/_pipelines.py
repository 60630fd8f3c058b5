"""Running several pipelines at once, and feeding a run chosen documents.

Pipelines with different target connections run side by side; those sharing one
run one after another in one worker (see :func:`run_pipelines`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from ._config import PipelineConfig
from ._connectors import BrokenDocument, Source, SourceItem
from ._errors import LedgerlinkError
from ._locks import PipelineBusy
from ._runner import PipelineRunner
from ._runtime import RunResult, Runtime


def run_pipelines(runtime: Runtime, pipelines: list[PipelineConfig], *, jobs: int = 4,
                  run: Callable[[PipelineRunner], RunResult] | None = None) -> list[RunResult]:
    """Run pipelines; those with different target connections side by side.

    Pipelines sharing a target connection run one after another in one worker, so
    they share its rate limit and its customer links without racing.
    """
    groups: dict[str, list[PipelineConfig]] = {}
    for pipeline in pipelines:
        groups.setdefault(pipeline.target, []).append(pipeline)

    def do(pipeline: PipelineConfig) -> RunResult:
        try:
            runner = PipelineRunner(runtime, pipeline)
        except LedgerlinkError as exc:
            return RunResult(pipeline.name, error=str(exc))
        try:
            return run(runner) if run else runner.run()
        except PipelineBusy as exc:
            return RunResult(pipeline.name, error=str(exc), busy=True)
        finally:
            runner.close()

    def do_group(group: list[PipelineConfig]) -> list[RunResult]:
        return [do(p) for p in group]

    results: list[RunResult] = []
    if jobs <= 1 or len(groups) == 1:
        for group in groups.values():
            results.extend(do_group(group))
        return results
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for group_results in pool.map(do_group, groups.values()):
            results.extend(group_results)
    return results


def iter_documents_by_ids(source: Source, ids: list[str]) -> Iterator[SourceItem]:
    for ref in ids:
        document = source.document(ref)
        if document is None:
            yield BrokenDocument(ref, f"the source has no document {ref!r}")
        else:
            yield document


__all__ = ["iter_documents_by_ids", "run_pipelines"]
