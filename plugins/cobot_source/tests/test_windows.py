"""Invoice date windows adapt to the volume (issue 22, item 4): a window holding more than
``window_invoices`` is narrowed before it is read, a sparse one is followed by a wider one,
a single day holding more is read page by page; every day is handed out by one window
only, so no invoice ids are kept across the run."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from ledgerlink import Document
from ledgerlink_cobot.sandbox import CobotSandbox

HEAVY = date(2024, 1, 15)  # a billing day: 7 invoices


def dated() -> list[date]:
    """23 invoice dates from 2024-01-01: 7 on HEAVY, the others three days apart."""
    days = [date(2024, 1, 1) + timedelta(days=3 * i) for i in range(16)]
    return sorted(days + [HEAVY] * 7)


def sandbox() -> CobotSandbox:
    template = CobotSandbox.demo_seed()["invoices"][0]
    invoices = []
    for i, day in enumerate(dated()):
        inv = copy.deepcopy(template)
        inv["id"] = f"e{i:031d}"
        inv["attributes"].update(number=f"W-{i:02d}", invoiceDate=day.isoformat())
        invoices.append(inv)
    return CobotSandbox(seed={"invoices": invoices})


class Recording(httpx.BaseTransport):
    """The sandbox's transport, noting each invoice page: (from, to, page number, page
    size, totalPages, invoices answered)."""

    def __init__(self, box: CobotSandbox) -> None:
        self.inner = box.transport()
        self.pages: list[tuple[str, str, int, int, int, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/invoices"):
            response.read()
            body = json.loads(response.content)
            p = request.url.params
            self.pages.append((p["filter[from]"], p["filter[to]"], int(p["page[number]"]), int(p["page[size]"]),
                               body["meta"]["totalPages"], len(body["data"])))
        return response

    def windows(self) -> list[tuple[str, str]]:
        return [(lo, hi) for lo, hi, number, *_ in self.pages if number == 1]


def connected(box: CobotSandbox, cobot: Any, transport: httpx.BaseTransport, **overrides: Any) -> Any:
    settings, env = box.demo_connection("http://cobot.sandbox")
    return cobot(transport, **{**settings, "api_token": env["COBOT_API_TOKEN"], **overrides})


def width(lo: str, hi: str) -> int:
    return (date.fromisoformat(hi) - date.fromisoformat(lo)).days


def held(source: Any) -> list[int | str]:
    """Spy: what each window read returned: its number of invoices, or 'too full'."""
    sizes: list[int | str] = []
    original = source._window_invoices

    def spy(*args: Any) -> Any:
        listed = original(*args)
        sizes.append("too full" if isinstance(listed, int) else len(listed))
        return listed

    source._window_invoices = spy
    return sizes


def test_windows_hold_at_most_the_bound_and_hand_out_every_invoice_once_in_order(cobot: Any) -> None:
    box = sandbox()
    recording = Recording(box)
    source = connected(box, cobot, recording, window_invoices=5, window_days=31)
    sizes = held(source)
    docs = list(source.documents_between(date(2024, 1, 1), date(2024, 3, 31)))
    assert [d.number for d in docs] == [f"W-{i:02d}" for i in range(23)]
    assert all(isinstance(d, Document) for d in docs)
    assert [d.cursor for d in docs] == sorted(d.cursor for d in docs)
    assert all(size == "too full" or size <= 5 for size in sizes)
    # Pages are of the bound's size; a window is read past its first page only when the bound allows it.
    assert {size for *_, size, _, _ in recording.pages} == {5}
    # With a bound of one page, only windows handing out one day (read page by page, not held) have a
    # second page: the billing day's (its 7 invoices and the next day's one: 5 + 3).
    assert {width(lo, hi) for lo, hi, number, *_ in recording.pages if number > 1} == {1}
    assert [(number, answered) for lo, hi, number, _, _, answered in recording.pages
            if (lo, hi) == ("2024-01-15", "2024-01-16")] == [(1, 5), (2, 3)]
    # Each window starts at the day before the last one's, or where a too full one started.
    windows = recording.windows()
    assert windows[0][0] == "2024-01-01" and windows[-1][1] == "2024-03-31"
    assert all(b[0] in (a[0], a[1]) for a, b in zip(windows, windows[1:], strict=False))


def test_a_full_window_is_at_least_halved_and_a_sparse_one_widened_again(cobot: Any) -> None:
    box = sandbox()
    recording = Recording(box)
    source = connected(box, cobot, recording, window_invoices=5, window_days=31)
    list(source.documents_between(date(2024, 1, 1), date(2024, 6, 30)))
    windows = recording.windows()
    assert windows[0] == ("2024-01-01", "2024-02-01")  # window_days first: 4 pages, too full
    asked_again = [(width(*a), width(*b)) for a, b in zip(windows, windows[1:], strict=False) if a[0] == b[0]]
    assert len(asked_again) == 3 and all(b <= a // 2 for a, b in asked_again)
    assert width(*windows[-2]) == 31  # back to window_days once the invoices thin out
    assert windows[-1][1] == "2024-06-30"  # the last window ends at the end


@pytest.mark.parametrize("cut", [3, 8, 12, 18])  # 8: in the billing day
def test_the_cursor_resumes_mid_way(cobot: Any, cut: int) -> None:
    box = sandbox()
    settings = {"window_invoices": 5, "overlap_days": 0, "recheck_days": 0}
    docs = list(connected(box, cobot, box.transport(), **settings).documents(None))
    assert len(docs) == 23 and len({d.source_ref for d in docs}) == 23
    recording = Recording(box)
    source = connected(box, cobot, recording, **settings)
    sizes = held(source)
    resumed = list(source.documents(docs[cut].cursor))
    day = date.fromisoformat(docs[cut].cursor)
    # The cursor's day is read again (the engine knows those), nothing after it is lost.
    assert [d.source_ref for d in resumed] == [d.source_ref for d in docs if d.invoice_date >= day]
    assert recording.windows()[0][0] == day.isoformat()
    assert all(size == "too full" or size <= 5 for size in sizes)


def test_recheck_days_still_reread_a_quarter_before_the_cursor(cobot: Any) -> None:
    box = sandbox()
    recording = Recording(box)
    source = connected(box, cobot, recording, window_invoices=5, start_date="2023-06-01")
    docs = list(source.documents("2024-03-01"))
    assert recording.windows()[0][0] == "2023-11-30"  # 2024-03-01 minus recheck_days (92)
    assert [d.number for d in docs] == [f"W-{i:02d}" for i in range(23)]


def test_a_boundary_day_both_windows_list_is_handed_out_once(cobot: Any) -> None:
    box = sandbox()
    recording = Recording(box)
    source = connected(box, cobot, recording, window_days=3)
    docs = list(source.documents_between(date(2024, 1, 1), date(2024, 1, 31)))
    assert len(docs) == len({d.source_ref for d in docs}) == sum(1 for d in dated() if d <= date(2024, 1, 31))
    # Neighbouring windows share their boundary day (Cobot's filter[to] may be inclusive or not).
    windows = recording.windows()
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
