"""Declarative pagination: say how a vendor pages, get its items one by one.

A *style* (:class:`PageNumber`, :class:`Offset`, :class:`Cursor`, :class:`NextLink`) describes the
query parameters of a page, where the items are in an answer and how the last
page shows. :meth:`ledgerlink.HttpClient.paginate` (items) and
:meth:`~ledgerlink.HttpClient.pages` (whole pages, for totals a source checks
itself) run the loop::

    for order in client.paginate("orders", PageNumber(size_param="pageSize", size=250, items="Data",
                                                      total_pages="Paging.TotalPages")):
        ...

The loop is a generator: one page is held at a time, the next is asked for only
when the caller has taken every item of the one before. It stops at the first
empty page, at a stated total (header or body field), at a missing next cursor,
and raises :class:`TransientError` when a vendor keeps sending pages (``max_pages``)
or repeats a cursor, instead of looping for ever.

Styles are frozen dataclasses without state: where a walk is, is the query of the
page just read (``Page.params``), so one style can serve every call of a source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import TransientError

Fetch = Callable[[dict[str, Any]], tuple[Any, Mapping[str, str]]]
"""Reads one page: the query parameters in, the parsed body and the headers out."""


@dataclass(frozen=True)
class Page:
    """One page as the loop read it."""

    number: int
    """1 for the first page read, 2 for the next, ... (whatever the vendor counts)."""
    params: dict[str, Any]
    """The query parameters the page was asked with (the caller's and the style's)."""
    items: list[Any]
    """The page's items (``[]`` when the answer had ``null`` there)."""
    body: Any
    """The parsed answer, for fields the style does not read (e.g. a total to compare)."""
    headers: Mapping[str, str]


def field(body: Any, path: str | None) -> Any:
    """The value at a dotted ``path`` ("Paging.TotalPages") of a JSON body; None when
    any step is missing or not an object. An empty path or None is the body itself."""
    if not path:
        return body
    value = body
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _count(value: Any) -> int | None:
    """A whole number from a body field or header ("12", 12, 12.0); None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _header(headers: Mapping[str, str], name: str | None) -> int | None:
    return _count(headers.get(name)) if name else None


@dataclass(frozen=True)
class Pagination:
    """What every style shares: where the items are, and the safety cap."""

    items: str | None = "data"
    """Dotted path of the item list in the body (``"Data"``, ``"meta.rows"``); None: the
    body itself is the list. A missing path or a value that is not a list is an error;
    ``null`` is an empty page."""
    max_pages: int = 10_000
    """More pages than this in one walk is a vendor's loop: TransientError."""

    def start(self) -> dict[str, Any]:
        """The query parameters of the first page."""
        raise NotImplementedError

    def after(self, page: Page) -> dict[str, Any] | None:
        """The query parameters of the page after ``page``; None: it was the last."""
        raise NotImplementedError

    def items_of(self, body: Any, *, what: str, number: int) -> list[Any]:
        """The item list of one page's body."""
        if self.items is not None and not _has(body, self.items):
            raise TransientError(f"{what}: page {number} has no {self.items!r} (not a paged answer)")
        found = field(body, self.items)
        if found is None:
            return []
        if not isinstance(found, list):
            where = repr(self.items) if self.items else "the answer"
            raise TransientError(f"{what}: page {number}: {where} is not a list")
        return found


def _has(body: Any, path: str) -> bool:
    """The dotted ``path`` exists in ``body`` (its value may be null)."""
    *parents, last = path.split(".")
    holder = field(body, ".".join(parents)) if parents else body
    return isinstance(holder, Mapping) and last in holder


@dataclass(frozen=True)
class PageNumber(Pagination):
    """Pages by number: ``?page=1&per_page=25``, then 2, 3, ...

    The last page is the first one that is empty, or the one that reaches a stated
    total: pages (``total_pages`` body field or ``total_pages_header``) or items
    (``total_items`` / ``total_items_header``, with ``size``), or one whose
    ``next_link`` field is null. ``short_page_ends``: a page with fewer than
    ``size`` items is the last (only for vendors that never send fewer than asked;
    many cap the size and would be cut short)."""

    page_param: str = "page"
    size_param: str | None = "per_page"
    size: int | None = None
    first_page: int = 1
    total_pages: str | None = None
    total_pages_header: str | None = None
    total_items: str | None = None
    total_items_header: str | None = None
    next_link: str | None = None
    short_page_ends: bool = False

    def start(self) -> dict[str, Any]:
        params: dict[str, Any] = {self.page_param: self.first_page}
        if self.size_param and self.size is not None:
            params[self.size_param] = self.size
        return params

    def after(self, page: Page) -> dict[str, Any] | None:
        if not page.items:
            return None
        number = int(page.params[self.page_param])
        pages = _count(field(page.body, self.total_pages)) if self.total_pages else None
        pages = pages if pages is not None else _header(page.headers, self.total_pages_header)
        if pages is not None and number - self.first_page + 1 >= pages:
            return None
        total = _count(field(page.body, self.total_items)) if self.total_items else None
        total = total if total is not None else _header(page.headers, self.total_items_header)
        if total is not None and self.size and (number - self.first_page + 1) * self.size >= total:
            return None
        if self.next_link and not field(page.body, self.next_link):
            return None
        if self.short_page_ends and self.size and len(page.items) < self.size:
            return None
        return {**page.params, self.page_param: number + 1}


@dataclass(frozen=True)
class Offset(Pagination):
    """Pages by item offset: ``?offset=0&limit=100``, then ``offset=100``, ...

    The next offset is this one plus the items received (a vendor that caps ``limit``
    loses nothing). The last page is the first empty one, or the one that reaches
    ``total_items`` (body field) / ``total_items_header``. ``short_page_ends``: a page
    with fewer than ``limit`` items is the last (only for vendors that never send
    fewer than asked, such as sevDesk; many cap the limit and would be cut short)."""

    offset_param: str = "offset"
    limit_param: str | None = "limit"
    limit: int | None = None
    total_items: str | None = None
    total_items_header: str | None = None
    short_page_ends: bool = False

    def start(self) -> dict[str, Any]:
        params: dict[str, Any] = {self.offset_param: 0}
        if self.limit_param and self.limit is not None:
            params[self.limit_param] = self.limit
        return params

    def after(self, page: Page) -> dict[str, Any] | None:
        if not page.items:
            return None
        offset = int(page.params[self.offset_param]) + len(page.items)
        total = _count(field(page.body, self.total_items)) if self.total_items else None
        total = total if total is not None else _header(page.headers, self.total_items_header)
        if total is not None and offset >= total:
            return None
        if self.short_page_ends and self.limit and len(page.items) < self.limit:
            return None
        return {**page.params, self.offset_param: offset}


@dataclass(frozen=True)
class Cursor(Pagination):
    """Pages by an opaque cursor the vendor hands out: ``?cursor=<next_cursor of the
    page before>``. The cursor is read from the body field ``next_cursor`` or the
    header ``next_cursor_header``; none (or an empty one) ends the walk. The first
    page is asked without a cursor. A cursor the vendor repeats is an error (the
    walk would never end)."""

    cursor_param: str = "cursor"
    next_cursor: str | None = "next_cursor"
    next_cursor_header: str | None = None
    size_param: str | None = None
    size: int | None = None

    def start(self) -> dict[str, Any]:
        return {self.size_param: self.size} if self.size_param and self.size is not None else {}

    def after(self, page: Page) -> dict[str, Any] | None:
        cursor = field(page.body, self.next_cursor) if self.next_cursor else None
        if cursor in (None, "") and self.next_cursor_header:
            cursor = page.headers.get(self.next_cursor_header)
        if cursor in (None, "") or not page.items:
            return None
        if isinstance(cursor, bool) or not isinstance(cursor, str | int):
            raise TransientError(f"page {page.number}: the next cursor {cursor!r} is not a string")
        if str(cursor) == str(page.params.get(self.cursor_param)):
            raise TransientError(f"page {page.number} hands out the cursor it was asked with ({str(cursor)[:40]!r})")
        return {**page.params, self.cursor_param: cursor}


NEXT_URL = "__next_url__"
"""The query key by which :class:`NextLink` hands the fetch the URL of the next page
(the fetch requests that URL as it is, with no other parameters)."""

_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,]+)*)')


def link_header_next(value: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` header (GitHub's style); None."""
    for match in _LINK.finditer(value or ""):
        for parameter in match.group(2).split(";"):
            name, _, rel = parameter.partition("=")
            if name.strip().lower() == "rel" and "next" in rel.strip().strip('"').lower().split():
                return match.group(1).strip()
    return None


@dataclass(frozen=True)
class NextLink(Pagination):
    """Follows the URL of the next page that each page hands out: the body field
    ``next_field`` (dotted path; ``"links.next"``, ``"next"``) or the ``Link`` header's
    ``rel="next"`` (RFC 8288). The first page is the URL asked with the caller's
    parameters; each next one is exactly the URL given (absolute, or relative to the
    page that named it), its own query included. None or empty ends the walk, as does
    an empty page; a link repeated is an error (the walk would never end), and
    :meth:`ledgerlink.HttpClient.pages` refuses a link to another host (the
    connection's credentials go to the vendor only)."""

    next_field: str | None = "next"
    link_header: bool = True

    def start(self) -> dict[str, Any]:
        return {}

    def after(self, page: Page) -> dict[str, Any] | None:
        link = field(page.body, self.next_field) if self.next_field else None
        if link in (None, "") and self.link_header:
            link = link_header_next(page.headers.get("link"))
        if link in (None, "") or not page.items:
            return None
        if not isinstance(link, str):
            raise TransientError(f"page {page.number}: the next page's link {link!r} is not a string")
        if link == page.params.get(NEXT_URL):
            raise TransientError(f"page {page.number} links to itself as the next page ({link[:80]!r})")
        return {NEXT_URL: link}


def walk(fetch: Fetch, style: Pagination, params: Mapping[str, Any] | None = None, *,
         what: str = "the API") -> Iterator[Page]:
    """Read page after page with ``fetch`` (see :data:`Fetch`) as ``style`` says;
    ``what`` names the listing in errors ("Acme GET https://.../items")."""
    query: dict[str, Any] | None = {**(params or {}), **style.start()}
    number = 0
    while query is not None:
        number += 1
        if number > style.max_pages:
            raise TransientError(f"{what}: the vendor keeps sending pages (over {style.max_pages}); stopping")
        body, headers = fetch(query)
        page = Page(number, query, style.items_of(body, what=what, number=number), body, headers)
        yield page
        try:
            query = style.after(page)
        except TransientError as exc:
            raise TransientError(f"{what}: {exc}") from None


def items(pages: Iterable[Page], *, dedupe: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """The items of ``pages`` in order. ``dedupe``: a key function; an item whose key
    came before (a vendor's page shifted while it was read) is dropped. An item without
    a key (None, or a broken one that cannot be hashed) is kept: the caller reports it.
    Only the keys are kept in memory, never the items."""
    seen: set[Hashable] = set()
    for page in pages:
        for item in page.items:
            key = dedupe(item) if dedupe is not None else None
            if key is not None and isinstance(key, Hashable):
                try:
                    if key in seen:
                        continue
                    seen.add(key)
                except TypeError:  # a tuple holding a list, say
                    pass
            yield item


__all__ = ["NEXT_URL", "Cursor", "Fetch", "NextLink", "Offset", "Page", "PageNumber", "Pagination", "field", "items",
           "link_header_next", "walk"]
