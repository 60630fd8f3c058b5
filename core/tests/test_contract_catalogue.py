"""The contract suites prove themselves (issue 17, item 3).

The suites run in full against the catalogue's correct connectors (they must pass),
and every broken connector of ``core/tests/broken`` is run through the suite test its
bug breaks, which must fail with the message that names the bug and the document.
A connector added to the catalogue without an entry here fails
``test_every_broken_connector_is_in_the_table``.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from ledgerlink.testing import SourceContract, StatusMapperContract, TargetContract

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broken import books, mappers, shop  # noqa: E402
from broken.plugin import catalogue_plugin  # noqa: E402


# -- the suites, wired to the catalogue's vendors ------------------------------------------------
class ShopSuite(SourceContract):
    plugin = "catalogue-shop"
    extra_plugins = (catalogue_plugin,)

    def make_sandbox(self) -> shop.ShopVendor:
        return shop.ShopVendor()

    def vendor_transport(self, vendor: shop.ShopVendor) -> httpx.BaseTransport:
        return httpx.MockTransport(vendor.router.handler)  # respx routes, no sandbox

    def connection_settings(self, vendor: shop.ShopVendor) -> tuple[dict[str, Any], dict[str, str]]:
        return {"api_token": "${CATALOGUE_SHOP_TOKEN}"}, {"CATALOGUE_SHOP_TOKEN": shop.TOKEN}

    def expected_refs(self, vendor: shop.ShopVendor) -> set[str]:
        return set(vendor.orders)

    def expected_skipped(self, vendor: shop.ShopVendor) -> set[str]:
        return {ref for ref, order in vendor.orders.items() if order["status"] == "pending"}

    def break_record(self, vendor: shop.ShopVendor) -> str:
        vendor.orders["1002"]["items"][0]["gross"] = "kaputt"
        return "1002"


class BooksSuite(TargetContract):
    plugin = "catalogue-books"
    extra_plugins = (catalogue_plugin,)
    rules: ClassVar[list[dict[str, Any]]] = [{"when": {}, "account": "8400"}]
    fault_timeout = 0.3  # in-memory routes answer at once

    def make_sandbox(self) -> books.BooksVendor:
        return books.BooksVendor()

    def vendor_transport(self, vendor: books.BooksVendor) -> httpx.BaseTransport:
        return httpx.MockTransport(vendor.router.handler)

    def connection_settings(self, vendor: books.BooksVendor) -> tuple[dict[str, Any], dict[str, str]]:
        return {"api_token": "${CATALOGUE_BOOKS_TOKEN}"}, {"CATALOGUE_BOOKS_TOKEN": books.TOKEN}

    def stored_refs(self, vendor: books.BooksVendor) -> list[str]:
        return [doc["ref"] for doc in vendor.documents.values() if doc["kind"] == "invoice"]

    def stored_payments(self, vendor: books.BooksVendor) -> list[Any]:
        return [(p["document"], p["amount"]) for p in vendor.payments]


class MapperSuite(StatusMapperContract):
    mapper = "catalogue-mapper"
    extra_plugins = (catalogue_plugin,)
    raw_statuses = mappers.RAW


class TestCatalogueShopContract(ShopSuite):
    """The correct source passes the whole source suite."""


class TestCatalogueBooksContract(BooksSuite):
    """The correct target passes the whole target suite."""


class TestCatalogueMapperContract(MapperSuite):
    """The correct mapper passes the whole status-mapper suite."""


class TestIdentityMapperContract(StatusMapperContract):
    """The built-in ``identity`` mapper."""

    mapper = "identity"
    raw_statuses = ("draft", "open", "sent", "due", "overdue", "reminder 1", "reminder_3", "partially_paid", "paid",
                    "cancelled", "collection")


# -- the catalogue ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    bug: str
    """The bug class (the issue's words)."""
    suite: type[Any]
    name: str
    """The broken connector's registered name."""
    test: str
    message: str
    """A regular expression the failure's message must match."""
    kwargs: dict[str, Any] = field(default_factory=dict)


def _suite(base: type[Any], name: str) -> type[Any]:
    attribute = "mapper" if issubclass(base, StatusMapperContract) else "plugin"
    return type(f"Broken_{name.replace('-', '_')}", (base,), {attribute: name})


CATALOGUE = [
    Entry("duplicates", ShopSuite, "catalogue-duplicating-source", "test_refs_are_unique_and_expected",
          r"yielded the same document more than once: '1001' 2 times"),
    Entry("unbalanced totals", ShopSuite, "catalogue-unbalanced-source", "test_every_document_is_consistent",
          r"1001 \(S-1001\): lines add up to 140\.40 EUR but the document's total is 150\.40 EUR"),
    Entry("rates as fractions", ShopSuite, "catalogue-fraction-rate-source", "test_tax_rates_are_percentages",
          r"1001 line 1 \('Article 1'\): tax_rate 0\.19 is a fraction; rates are percentages"),
    Entry("cursor ignored", ShopSuite, "catalogue-cursor-ignoring-source", "test_cursor_is_honoured_and_resumable",
          r"the cursor of 100\d, yielded again \['100\d'.*the cursor was ignored"),
    Entry("wrong auth error", ShopSuite, "catalogue-wrong-auth-error-source",
          "test_bad_credentials_raise_connection_error",
          r"check\(\) with wrong credentials raised DocumentError: .*must raise ledgerlink\.ConnectionError_"),
    Entry("Retry-After ignored", ShopSuite, "catalogue-impatient-source", "test_rate_limit_answer_is_waited_out",
          r"after a 429 with Retry-After: 0\.2 on GET /api/\w+ the source asked again after 0\.\d+ s"),
    Entry("paging ignored", ShopSuite, "catalogue-page-size-ignoring-source", "test_paging_walks_every_page",
          r"with page_size=1 the source read 2 times, with the default 1: it did not walk the 6 pages"),
    Entry("broken record raises", ShopSuite, "catalogue-raising-on-broken-source",
          "test_broken_record_is_a_broken_document",
          r"documents\(None\) raised DocumentError: order 1002: .* on the broken record 1002"),
    Entry("skipped record dropped", ShopSuite, "catalogue-skip-dropping-source",
          "test_skipped_records_are_full_documents_with_reason",
          r"the record 1004 that must not be transferred was left out"),
    Entry("double write after a lost answer", BooksSuite, "catalogue-double-writing-target",
          "test_lost_write_answer_is_adopted_once",
          r"after the answer to write 2 of 2 \(POST /v1/documents\) was lost \(drop\) and a re-run: the target "
          r"holds \{'order-1': 2\}", {"fault": "drop"}),
    Entry("double write after a cut answer", BooksSuite, "catalogue-double-writing-target",
          "test_lost_write_answer_is_adopted_once",
          r"was lost \(truncate\) and a re-run: the target holds \{'order-1': 2\}", {"fault": "truncate"}),
    Entry("contact key not stored", BooksSuite, "catalogue-key-forgetting-target", "test_find_contact_after_create",
          r"find_contact\('shop:cust-5'\) found nothing right after create_contact\(\) made k1"),
    Entry("payment booked twice", BooksSuite, "catalogue-double-booking-target", "test_book_payment_twice_equals_once",
          r"book_payment\(\) twice for order-1 stored 2 payments, once 1"),
    Entry("credit note not found", BooksSuite, "catalogue-invoice-only-finder-target",
          "test_find_document_for_every_kind",
          r"find_document\('order-1-credit', 'GS-1001'\) found nothing after the credit note was pushed"),
    Entry("mapper with gaps", MapperSuite, "catalogue-gap-mapper", "test_every_raw_status_maps_to_a_canonical_status",
          r"status mapper catalogue-gap-mapper: 'Storniert' maps to unknown"),
    Entry("mapper round trip", MapperSuite, "catalogue-one-way-mapper", "test_round_trip_holds",
          r"'Offen' -> open -> 'Open' -> unknown \(Open\)"),
]
ISSUE_BUGS = {"duplicates", "unbalanced totals", "rates as fractions", "cursor ignored",
              "double write after a lost answer", "wrong auth error", "mapper with gaps"}


def _run(entry: Entry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, suite: type[Any] | None = None) -> None:
    instance = (suite or _suite(entry.suite, entry.name))()
    method = getattr(instance, entry.test)
    kwargs = dict(entry.kwargs)
    parameters = inspect.signature(method).parameters
    if "tmp_path" in parameters:
        kwargs["tmp_path"] = tmp_path
    if "monkeypatch" in parameters:
        kwargs["monkeypatch"] = monkeypatch
    method(**kwargs)


@pytest.mark.parametrize("entry", CATALOGUE, ids=[f"{e.name}:{e.test}{e.kwargs or ''}" for e in CATALOGUE])
def test_the_suite_catches_the_bug(entry: Entry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssertionError, match=entry.message):
        _run(entry, tmp_path, monkeypatch)


@pytest.mark.parametrize("entry", CATALOGUE, ids=[f"{e.name}:{e.test}{e.kwargs or ''}" for e in CATALOGUE])
def test_the_same_check_passes_the_correct_connector(entry: Entry, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure above is the bug's: the same test, the correct connector, passes."""
    _run(entry, tmp_path, monkeypatch, suite=entry.suite)


def test_every_broken_connector_is_in_the_table() -> None:
    registered = {*shop.SOURCES, *books.TARGETS, *mappers.MAPPERS} - {
        "catalogue-shop", "catalogue-books", "catalogue-mapper"}
    assert registered == {entry.name for entry in CATALOGUE}


def test_the_catalogue_has_every_bug_class_of_the_issue() -> None:
    assert ISSUE_BUGS <= {entry.bug for entry in CATALOGUE}, ISSUE_BUGS - {entry.bug for entry in CATALOGUE}
