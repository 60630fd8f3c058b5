"""The ``onecrm-bilendo`` demo story (seed 004, 1CRM's Bilendo plugin), on two loopback sandboxes.

1. Export: every selected 1CRM invoice goes to Bilendo; each account's dispatch preset
   decides whether Bilendo sends it at once or keeps it a draft.
2. ``sync-status`` writes Bilendo's status into 1CRM's ``bilendo_status_c`` in the
   German wording of 1CRM's overview: "Versendet" or "Entwurf".
3. Bilendo moves three invoices on (due, reminder 1, paid; a draft is sent first), and
   after each round ``sync-status`` writes each change into 1CRM.
4. A second run and a second sync write nothing (counted from the 1CRM sandbox's log).

Repeated without ``--fresh`` the story only runs and syncs: nothing is new.
"""

from __future__ import annotations

from typing import Any

FIELD = "bilendo_status_c"
#: (1CRM invoice number, the Bilendo steps of each round)
ROUNDS: list[list[tuple[str, str]]] = [
    [("RE-2026-001", "due"), ("RE-2026-002", "sent"), ("RE-2026-003", "paid")],
    [("RE-2026-001", "reminder_1"), ("RE-2026-002", "due")],
    [("RE-2026-001", "paid"), ("RE-2026-002", "reminder_1")],
]


def _writes(story: Any) -> int:
    return sum(1 for r in story.source.requests if r["method"] in ("PATCH", "POST") and "/data/" in r["path"])


def _status_of(story: Any, numbers: list[str]) -> list[str]:
    invoices = story.state("source")["models"]["Invoice"].values()
    by_number = {inv.get("full_number"): inv for inv in invoices}
    return [f"{n}: {by_number[n].get(FIELD) or '-'}" for n in numbers if n in by_number]


def story(story: Any) -> int:
    story.pipeline()["status_wording"] = "bilendo_de"
    story.connections["books"]["requests_per_second"] = 50  # Bilendo's sandbox on loopback, not the real API
    numbers = sorted({n for round_ in ROUNDS for n, _ in round_})
    if not story.first_run:
        story.echo(f"Repeated run of pipeline shop-to-books ({story.config_file}): nothing new is exported or written")
        [result] = story.run()
        changes = story.sync_status()
        return 0 if result.error is None and not changes else 1

    story.echo("1. Export from 1CRM to Bilendo (each account's dispatch preset: send at once, or keep a draft)")
    [result] = story.run()
    if result.error is not None:
        return 1
    story.echo("")
    story.echo("2. sync-status: Bilendo's status into 1CRM (field bilendo_status_c, wording bilendo_de)")
    story.sync_status()
    for index, round_ in enumerate(ROUNDS, start=1):
        invoices = {inv.get("full_number"): inv["id"]
                    for inv in story.state("source")["models"]["Invoice"].values()}
        story.echo("")
        steps = ", ".join(f"{number} -> {step}" for number, step in round_)
        story.echo(f"{index + 2}. Bilendo moves on: {steps}; then sync-status")
        for number, step in round_:
            story.control("target", "advance", {"invoice": invoices[number], "to": step})
        story.sync_status()
    story.echo("")
    story.echo("In 1CRM now: " + "; ".join(_status_of(story, numbers)))
    before = _writes(story)
    story.echo("")
    story.echo("6. Again: run and sync-status")
    [again] = story.run(summary=False)
    changes = story.sync_status()
    written = _writes(story) - before
    pushed = sum(1 for o in again.outcomes if o.state == "pushed")
    story.echo(f"  second run: {pushed} exported; 1CRM writes: {written}")
    story.echo("")
    story.echo(f"See every invoice with: .venv/bin/ledgerlink -c {story.config_file} status")
    return 0 if again.error is None and not changes and not written and not pushed else 1
