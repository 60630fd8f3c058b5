"""The run's record of the refs it took (``SeenRefs``): exact like a set, a fraction of its memory,
and a source repeating a document in a long listing still gets it processed once (issue 22, item 4)."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

from ledgerlink._runner import SeenRefs
from ledgerlink.testing import fake_store, make_runtime, run_pipeline, sample_document


def test_it_answers_exactly_as_a_set_across_folds_and_merges() -> None:
    rng = random.Random(22)
    refs = [str(n) for n in range(1, 30_000)] + ["", "é-1", "order-\U0001f600", "a\x00b", "10", "x" * 300]
    rng.shuffle(refs)
    seen, plain = SeenRefs(), set()
    for n, ref in enumerate(refs):
        assert (ref in seen) == (ref in plain)
        if ref not in seen:  # as the runner adds: only what it has not seen ("10" comes twice)
            seen.add(ref)
        plain.add(ref)
        if n % 997 == 0:  # refs taken earlier, now in folded and merged runs, are still found
            probe = refs[rng.randrange(n + 1)]
            assert probe in seen
    assert len(seen) == len(plain)
    assert seen._runs and len(seen._runs) <= 4  # folded (30k / 4096) and merged
    for absent in ["0", "30000", "1 ", "é", "order-", "x" * 299, "a\x00"]:
        assert absent not in seen
    assert all(ref in seen for ref in refs)


def test_it_holds_a_fraction_of_what_a_set_holds() -> None:
    refs = [f"{300000180000000 + n}" for n in range(50_000)]
    seen = SeenRefs()
    for ref in refs:
        seen.add(ref)
    compact = sum(sys.getsizeof(blob) + sys.getsizeof(offsets) for blob, offsets in seen._runs)
    compact += sys.getsizeof(seen._recent) + sum(sys.getsizeof(r) for r in seen._recent)
    as_set = sys.getsizeof(set(refs)) + sum(sys.getsizeof(r) for r in refs)
    assert compact * 3 < as_set, (compact, as_set)


def test_a_document_the_source_repeats_far_apart_is_processed_once(tmp_path: Path) -> None:
    class Repeating:
        """Yields 10,000 documents, then the first one again."""

        def __init__(self, docs: list) -> None:
            self.docs = docs

        def __iter__(self) -> Iterator:
            yield from self.docs
            yield self.docs[0]

    docs = [sample_document(n, customer=f"cust-{n % 7}") for n in range(1, 10_001)]
    fake_store("seen-refs")
    raw = {"connections": {"shop": {"plugin": "fake-source", "store": "seen-refs"},
                           "books": {"plugin": "fake-target", "store": "seen-refs-books"}},
           "pipelines": [{"name": "p", "source": "shop", "target": "books",
                          "rules": [{"when": {}, "account": "8400"}]}]}
    runtime = make_runtime(raw, tmp_path)
    result = run_pipeline(runtime, documents=Repeating(docs))
    assert result.counts() == {"pushed": 10_000}
    assert len([w for w in fake_store("seen-refs-books")["writes"] if w[0] == "push"]) == 10_000
