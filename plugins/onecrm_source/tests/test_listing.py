"""The invoice list is walked oldest change first, one page (``page_size``) held at a
time, so what a first run over a large installation holds does not grow with it (issue 22,
item 4): every invoice once and in cursor order, a run resumable from any cursor, invoices
changed or deleted while the walk reads neither lost nor handed out twice."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from ledgerlink import Document
from ledgerlink_onecrm import source as source_module
from ledgerlink_onecrm.sandbox import OnecrmSandbox
from ledgerlink_onecrm.source import OnecrmSource

START = datetime(2024, 3, 1, 8, 0, 0)
TIED = (3, 4, 5)  # modified in the same second: the first page ends between them


def seed(n: int = 23) -> dict[str, Any]:
    """The demo's accounts and user with ``n`` plain invoices (19 %), invoice ``i`` modified
    ``i`` minutes after START (the TIED ones in one second) and dated a day apart."""
    demo = OnecrmSandbox.demo_seed()
    data: dict[str, Any] = {k: copy.deepcopy(demo[k]) for k in ("Account", "User", "Currency", "_sandbox")
                            if k in demo}
    data.update(Invoice=[], InvoiceLineGroup=[], InvoiceLine=[], InvoiceAdjustment=[])
    accounts = [a["id"] for a in data["Account"]]
    for i in range(n):
        inv, group = f"inv-{i:02d}", f"grp-{i:02d}"
        modified = START + timedelta(minutes=TIED[0] if i in TIED else i)
        data["Invoice"].append({
            "id": inv, "prefix": "RE-", "invoice_number": f"{i + 1:03d}", "name": f"Leistungen {i}",
            "invoice_date": (date(2026, 1, 1) + timedelta(days=i)).isoformat(), "due_date": "2026-03-31",
            "billing_account_id": accounts[i % len(accounts)], "billing_address_country": "Germany",
            "currency_id": "-99", "exchange_rate": "1", "amount": "119.00", "amount_due": "119.00",
            "pretax": "100.00", "cancelled": "0", "shipping_stage": "Pending", "assigned_user_id": "1",
            "date_modified": modified.strftime("%Y-%m-%d %H:%M:%S")})
        data["InvoiceLineGroup"].append({"id": group, "parent_id": inv, "name": "Leistungen", "position": "1",
                                         "group_type": "service"})
        data["InvoiceLine"].append({"id": f"ln-{i:02d}", "invoice_id": inv, "line_group_id": group,
                                    "position": "1", "name": "Beratung", "quantity": "1", "unit_price": "100.00",
                                    "ext_price": "100.00", "tax_class_id": "tc-standard", "parent_id": None})
        data["InvoiceAdjustment"].append({"id": f"tax-{i:02d}", "invoice_id": inv, "line_group_id": group,
                                          "line_id": None, "position": "2", "name": "MwSt. 19%", "rate": "19",
                                          "type": "StandardTax", "amount": "19.00"})
    return data


class Recording(httpx.BaseTransport):
    """The sandbox's transport, noting each call of the invoice list: (order, offset,
    limit, records answered)."""

    def __init__(self, sandbox: OnecrmSandbox) -> None:
        self.sandbox = sandbox
        self.inner = sandbox.transport()
        self.calls: list[tuple[str, int, int, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/data/Invoice"):
            response.read()
            params = request.url.params
            self.calls.append((params["order"].split()[1], int(params["offset"]), int(params["limit"]),
                               len(response.json()["records"])))
        return response

    def pages(self) -> list[tuple[str, int, int, int]]:
        """The calls that read invoices (not the one-record probes)."""
        return [c for c in self.calls if c[2] > 1]


@pytest.fixture
def sandbox() -> OnecrmSandbox:
    return OnecrmSandbox(seed=seed())


@pytest.fixture
def walk(sandbox: OnecrmSandbox, source: Callable[..., OnecrmSource]) -> Callable[..., tuple[Any, Recording]]:
    """``walk(**settings)``: (a source on the sandbox with page_size 5, its recording transport)."""

    def make(**settings: Any) -> tuple[Any, Recording]:
        recording = Recording(sandbox)
        return source(recording, **{"page_size": 5, "start_date": None, **settings}), recording

    return make


def ordered(sandbox: OnecrmSandbox) -> list[str]:
    invoices = sandbox.state["models"]["Invoice"].values()
    return [i["id"] for i in sorted(invoices, key=lambda i: (i["date_modified"], i["id"]))]


def test_a_first_run_holds_one_page_and_hands_out_every_invoice_once_in_order(
        sandbox: OnecrmSandbox, walk: Callable[..., tuple[Any, Recording]]) -> None:
    src, recording = walk()
    listing = src.documents(None)
    first = next(listing)
    calls_before_first = len(recording.calls)
    docs = [first, *listing]
    assert [d.source_ref for d in docs] == ordered(sandbox)  # 23, each once, oldest change first
    assert all(isinstance(d, Document) for d in docs)
    cursors = [d.cursor for d in docs]
    assert cursors == sorted(cursors) and len(set(cursors)) == 23
    # Streaming: the first invoice came after the newest page and one oldest-first page, not the whole list.
    assert calls_before_first == 2
    assert all(limit <= 5 and answered <= 5 for _, _, limit, answered in recording.calls)
    # Newest page (DESC), then 0-4, and every later page starts at the last invoice handed out.
    assert [(order, offset) for order, offset, _, _ in recording.pages()] == [
        ("DESC", 0), ("ASC", 0), ("ASC", 4), ("ASC", 8), ("ASC", 12), ("ASC", 16), ("ASC", 20)]


def test_the_cursor_resumes_mid_way(sandbox: OnecrmSandbox, walk: Callable[..., tuple[Any, Recording]]) -> None:
    src, _ = walk()
    docs = list(src.documents(None))
    for cut in (4, 10, 16):  # 4: inside the invoices of one second
        again, recording = walk()
        resumed = list(again.documents(docs[cut].cursor))
        assert [d.source_ref for d in resumed] == [d.source_ref for d in docs[cut + 1:]]
        assert all(limit <= 5 and answered <= 5 for _, _, limit, answered in recording.calls)
        probes = [c for c in recording.calls if c[2] == 1]
        assert 0 < len(probes) <= 10  # found by galloping and halving, not by reading the list
        start = next(offset for order, offset, _, _ in recording.pages() if order == "ASC")
        assert start in (cut, cut + 1)  # the page starts at the cursor's invoice or right after it


def test_a_few_changes_are_one_call(sandbox: OnecrmSandbox, walk: Callable[..., tuple[Any, Recording]]) -> None:
    src, _ = walk()
    docs = list(src.documents(None))
    again, recording = walk()
    assert [d.source_ref for d in again.documents(docs[19].cursor)] == [d.source_ref for d in docs[20:]]
    assert recording.calls == [("DESC", 0, 5, 5)]
    assert list(walk()[0].documents(docs[-1].cursor)) == []


def test_invoices_changed_or_deleted_during_the_walk_are_neither_lost_nor_doubled(
        sandbox: OnecrmSandbox, walk: Callable[..., tuple[Any, Recording]]) -> None:
    before = ordered(sandbox)
    invoices = sandbox.state["models"]["Invoice"]
    src, recording = walk()
    listing = src.documents(None)
    docs = [next(listing) for _ in range(7)]
    # Behind the walk: one invoice changed (it moves to the end of the list), one deleted;
    # ahead of it: one changed. Every invoice after them moved up by two places.
    sandbox._touch("Invoice", invoices[before[1]])
    del invoices[before[2]]
    sandbox._touch("Invoice", invoices[before[15]])
    docs += list(listing)
    refs = [d.source_ref for d in docs]
    assert len(refs) == len(set(refs))
    assert refs == [r for r in before if r != before[15]]  # nothing skipped by the shift
    assert any(limit == 1 for _, _, limit, _ in recording.calls)  # it found its place again
    # The two changed ones are newer than the run's end: the next run from the last cursor takes them.
    assert [d.source_ref for d in walk()[0].documents(docs[-1].cursor)] == [before[1], before[15]]


class Meddling(Recording):
    """Someone edits the invoice at the start of each page just before the walk reads it,
    so that page never starts with the invoice handed out last."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if request.url.path.endswith("/data/Invoice") and params["order"].endswith("ASC") \
                and int(params["limit"]) > 1 and int(params["offset"]) > 0:
            invoices = self.sandbox.state["models"]["Invoice"]
            at = ordered(self.sandbox)[int(params["offset"])]
            self.sandbox._touch("Invoice", invoices[at])
        return super().handle_request(request)


def test_a_walk_that_keeps_losing_its_place_stops_with_a_transient_error(
        sandbox: OnecrmSandbox, source: Callable[..., OnecrmSource], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "STALLED_REPOSITIONS", 3)
    meddling = Meddling(sandbox)
    listing = source(meddling, page_size=5, start_date=None).documents(None)
    assert len([next(listing) for _ in range(5)]) == 5
    with pytest.raises(source_module.TransientError, match="kept changing under the listing .3 times in a row"):
        next(listing)
    assert len([c for c in meddling.calls if c[2] == 5 and c[0] == "ASC"]) == 1 + 4  # the first page, 4 tries


def test_backfill_walks_the_same_way_and_keeps_the_dates_asked_for(
        sandbox: OnecrmSandbox, walk: Callable[..., tuple[Any, Recording]]) -> None:
    src, recording = walk()
    docs = list(src.documents_between(date(2026, 1, 5), date(2026, 1, 15)))
    assert [d.invoice_date for d in docs] == [date(2026, 1, 1) + timedelta(days=i) for i in range(4, 15)]
    assert all(limit <= 5 and answered <= 5 for _, _, limit, answered in recording.calls)
    with pytest.raises(ValueError, match="before its start"):
        list(src.documents_between(date(2026, 1, 5), date(2026, 1, 1)))


def test_accounts_kept_for_later_invoices_are_bounded(
        sandbox: OnecrmSandbox, walk: Callable[..., tuple[Any, Recording]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "CACHED_RECORDS", 3)
    src, _ = walk()
    assert len(list(src.documents(None))) == 23
    assert len(src._accounts) == 3
    assert len(src._users) == 1
