"""The Cobot source: confirmed members (API 1) and invoices (API 2).

Cobot has two APIs that take the same OAuth bearer token:

- API 1 (``https://<subdomain>.cobot.me/api``, plain JSON): memberships with
  ``confirmed_at`` and ``customer_number``, the membership update used to write the
  target's customer number back, and webhook subscriptions.
- API 2 (``https://api.cobot.me``, JSON:API): invoices with net, gross and taxes per
  item as decimal strings, paged, filtered by invoice date.

See the plugin README for every setting and assumption.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from ledgerlink import (
    BearerToken,
    BrokenDocument,
    ConnectionError_,
    Customer,
    Document,
    DocumentError,
    LineKind,
    NotSupported,
    Page,
    PageNumber,
    QuarantineError,
    RateLimit,
    Settings,
    SourceItem,
    TransientError,
    VendorRejected,
    WebhookResource,
    WebhookSource,
    key_id,
)
from pydantic import Field, SecretStr, field_validator

from .mapping import (
    MappingError,
    as_object,
    customer_from_membership,
    document_from_invoice,
    invoice_date_of,
)

JSONAPI = "application/vnd.api+json"
SCOPES = (
    "read_user read_spaces read_memberships write_memberships read_invoices"
    " read_subscriptions write_subscriptions"
)
ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")

#: Webhook events (API 1), from Cobot's Zapier app and the docs' event catalogue.
EVENTS = frozenset({
    "created_membership", "confirmed_membership", "canceled_membership",
    "uncanceled_membership", "reactivated_membership", "deleted_membership",
    "membership_cancellation_date_reached", "changed_membership_plan",
    "membership_plan_change_date_reached", "updated_membership_details",
    "updated_payment_method", "connected_user",
    "created_invoice", "updated_invoice", "sent_invoice", "wrote_off_invoice",
    "deleted_invoice", "requested_e_invoice",
})
#: What a webhook URL's resource segment means to ledgerlink.
RESOURCES: dict[str, Literal["customer", "document"]] = {"memberships": "customer", "invoices": "document"}


class CobotSettings(Settings):
    """Settings of a Cobot connection (see the plugin README for each one).

    Cobot has two APIs on two hosts, so there are two bases: ``base_url`` for API 2
    (invoices, the user; JSON:API) and ``base_url_v1`` for API 1 (memberships,
    webhook subscriptions; per space). One token serves both.
    """

    api_token: SecretStr = Field(
        description="OAuth 2 bearer token of a space admin, sent on API 1 and API 2; scopes: " + SCOPES
    )
    subdomain: str = Field(description="the space's subdomain, e.g. 'co-up' for co-up.cobot.me "
                           "(a trailing '.cobot.me' is removed)")
    space_id: str | None = Field(None, description="API 2 space id; default (none): found from the subdomain "
                                 "with GET /user?include=adminOf; when given, check() verifies it")
    base_url: str = Field("https://api.cobot.me", description="API 2 base URL (invoices, user); default "
                          "https://api.cobot.me")
    base_url_v1: str | None = Field(None, description="API 1 base URL (memberships, webhook subscriptions); "
                                    "default (none): https://<subdomain>.cobot.me/api. Webhook URLs must be on it")
    timeout: float | None = Field(None, gt=0, description="seconds to wait for one HTTP answer from either API "
                                  "(default: not set, so the HTTP client's 30 s, or LEDGERLINK_HTTP_TIMEOUT when that "
                                  "is set)")
    start_date: date = Field(description="invoices dated before this day and members confirmed before it are "
                             "left out (except by backfill)")
    window_days: int = Field(31, ge=1, le=366, description="days of invoice dates per listing window at most, 1 to "
                             "366 (a window holding more than window_invoices is narrowed); default 31")
    window_invoices: int = Field(1000, ge=1, le=100_000, description="most invoices read (and held) at once: a "
                                 "window of invoice dates that holds more is narrowed (a single day that holds more "
                                 "is read page by page without holding it); default 1000")
    overlap_days: int = Field(3, ge=0, le=60, description="days re-read before the stored cursor (late or "
                              "back-dated invoices), 0 to 60; default 3")
    recheck_days: int = Field(92, ge=0, le=366, description="days before the stored cursor re-read on every run, "
                              "0 to 366, so that an invoice cancelled (or changed) in Cobot after its transfer is "
                              "noticed: Cobot has no 'changed since' filter; default 92 (a quarter)")
    page_size: int = Field(200, ge=1, le=200, description="invoices per API 2 page (page[size]), 1 to 200 "
                           "(Cobot's maximum); default 200")
    requests_per_second: float = Field(1.0, gt=0, description="requests per second per token, kept for API 2 "
                                       "and for API 1 (Cobot: 60 a minute); default 1.0")
    memberships_requests_per_second: float = Field(
        0.1, gt=0, description="requests per second for API 1 GET /api/memberships (Cobot: 6 a minute); "
        "default 0.1, i.e. one every 10 seconds"
    )
    line_kind: Literal["service", "goods"] = Field("service", description="kind of every invoice line "
                                                   "(coworking is a service); default service")

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str) -> str:
        value = value.strip().lower()
        if value.endswith(".cobot.me"):
            value = value[: -len(".cobot.me")]
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", value):
            raise ValueError(f"{value!r} is not a Cobot subdomain (the part before .cobot.me)")
        return value

    @field_validator("base_url_v1", "base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @property
    def api1_url(self) -> str:
        return self.base_url_v1 or f"https://{self.subdomain}.cobot.me/api"


def cobot_error_message(response: httpx.Response) -> str:
    """Cobot's own words: JSON:API ``errors[]`` (API 2), ``{"error": ...}`` or Rails-style
    ``{"errors": {"field": ["..."]}}`` (API 1)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        if text.startswith("<"):
            return "an HTML page instead of an API answer"
        return " ".join(text.split())[:300] or "an empty answer"
    return _errors_text(body) or json.dumps(body)[:300]


def _errors_text(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts = []
        for e in errors:
            if isinstance(e, dict):
                text = e.get("detail") or e.get("title") or json.dumps(e)
                pointer = (e.get("source") or {}).get("pointer") if isinstance(e.get("source"), dict) else None
                parts.append(f"{pointer}: {text}" if pointer else str(text))
            else:
                parts.append(str(e))
        return "; ".join(parts)[:300]
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in errors.items())[:300]
    for key in ("error_description", "error", "message"):
        if isinstance(body.get(key), str) and body[key].strip():
            return body[key].strip()[:300]
    return None


def _scope_from(response: httpx.Response) -> str | None:
    """The missing scope, from ``WWW-Authenticate: Bearer error="insufficient_scope",
    scope="..."`` (RFC 6750) or an error text mentioning a scope."""
    header = response.headers.get("www-authenticate", "")
    text = header + " " + response.text[:2000]
    if "insufficient_scope" not in text and "scope" not in text.lower():
        return None
    match = re.search(r'scope="([^"]+)"', header) or re.search(r"\b((?:read|write)_[a-z_]+)\b", text)
    return match.group(1) if match else "(not named by Cobot)"


class CobotSource(WebhookSource):
    """Cobot (coworking management): confirmed members and their invoices."""

    Settings: ClassVar[type[CobotSettings]] = CobotSettings
    description: ClassVar[str] = "Cobot coworking members (API 1) and invoices (API 2)"
    supports_write_customer_number: ClassVar[bool] = True
    sandbox: ClassVar[str] = "ledgerlink_cobot.sandbox:CobotSandbox"
    #: What ``ledgerlink webhooks subscribe`` subscribes to: new members, new invoices
    #: and changes to invoices (reported as "changed after transfer").
    webhook_events: ClassVar[tuple[str, ...]] = ("confirmed_membership", "created_invoice", "updated_invoice")

    settings: CobotSettings

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        self._v1: Any = None
        self._v2: Any = None
        self._space_id: str | None = settings.space_id
        self._space_name: str | None = None
        self._user_email: str | None = None

    # -- HTTP ------------------------------------------------------------------
    @property
    def _token(self) -> str:
        return self.settings.api_token.get_secret_value()

    def _timeout(self) -> dict[str, float]:
        """The connection's own timeout, if set (else the HTTP client's default)."""
        return {} if self.settings.timeout is None else {"timeout": self.settings.timeout}

    def _client(self, api: int) -> Any:
        if api == 1 and self._v1 is None:
            self._v1 = self.context.http(
                vendor="Cobot API 1", base_url=self.settings.api1_url + "/",
                headers={"Accept": "application/json"},
                auth=BearerToken(self._token),
                rate_limits=[RateLimit(f"cobot:v1:{key_id(self._token)}", self.settings.requests_per_second)],
                auth_hint=f"check api_token and its scopes ({SCOPES})",
                **self._timeout(),
                error_message=cobot_error_message,
            )
        if api == 2 and self._v2 is None:
            self._v2 = self.context.http(
                vendor="Cobot API 2", base_url=self.settings.base_url + "/",
                headers={"Accept": JSONAPI},
                auth=BearerToken(self._token),
                rate_limits=[RateLimit(f"cobot:v2:{key_id(self._token)}", self.settings.requests_per_second)],
                auth_hint=f"check api_token and its scopes ({SCOPES})",
                **self._timeout(),
                error_message=cobot_error_message,
            )
        return self._v1 if api == 1 else self._v2

    def _call(
        self, api: int, method: str, path: str, what: str, *, params: Any = None,
        json_body: Any = None, ok: tuple[int, ...] = (), extra_limits: Any = (),
    ) -> tuple[int, Any]:
        """One call; 401/403 become one clear line, JSON is checked. Returns (status, body)."""
        headers = {"Content-Type": JSONAPI} if api == 2 and json_body is not None else None
        response = self._client(api).request(
            method, path, params=params, json=json_body, headers=headers,
            ok=(401, 403, *ok), extra_limits=extra_limits,
        )
        return response.status_code, self._answer(response, api, what, ok)

    def _answer(self, response: httpx.Response, api: int, what: str, ok: tuple[int, ...] = ()) -> Any:
        """The body of an answer (None for ``ok`` statuses and empty answers); 401/403
        become one clear line, an error inside a 2xx answer is never read as data."""
        status = response.status_code
        if status in (401, 403):
            raise ConnectionError_(self._auth_line(response, api, what), connection=self.context.connection)
        if status in ok or status == 204 or not response.content:
            return None
        body = self._client(api).json(response)
        if isinstance(body, dict) and body.get("errors") and "data" not in body:
            raise TransientError(
                f"Cobot API {api} answered {what} with HTTP {status} but an error: {_errors_text(body)}"
            )
        return body

    def _auth_line(self, response: httpx.Response, api: int, what: str) -> str:
        url = str(response.request.url.copy_with(query=None))
        detail = cobot_error_message(response)
        if response.status_code == 401:
            return (
                f"Cobot API {api} rejected the access token (HTTP 401 for {what} at {url}): it is wrong,"
                f" expired or revoked; create a new token and set it in api_token ({detail})"
            )
        scope = _scope_from(response)
        if scope:
            return (
                f"the Cobot access token lacks the scope {scope!r} needed for {what} (API {api}, {url});"
                f" authorize the OAuth client again with the scopes: {SCOPES}"
            )
        who = f"the Cobot user {self._user_email}" if self._user_email else "the token's Cobot user"
        return (
            f"{who} is not an admin of the space {self.settings.subdomain!r}"
            f" (HTTP 403 for {what} at {url}: {detail}); use a token of a space admin"
        )

    # -- the space -------------------------------------------------------------
    def _load_user(self) -> dict[str, Any]:
        _, body = self._call(2, "GET", "user", "reading the user", params={"include": "adminOf"})
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise TransientError("Cobot API 2 GET /user sent no user object")
        self._user_email = ((body["data"].get("attributes") or {}).get("email")) or None
        spaces = [
            s for s in body.get("included") or []
            if isinstance(s, dict) and s.get("type") == "spaces"
        ]
        admin_ids = {
            str(s.get("id")) for s in ((body["data"].get("relationships") or {}).get("adminOf") or {}).get("data") or []
            if isinstance(s, dict)
        }
        match = [
            s for s in spaces
            if str((s.get("attributes") or {}).get("subdomain", "")).lower() == self.settings.subdomain
            and (not admin_ids or str(s.get("id")) in admin_ids)
        ]
        who = f"the Cobot user {self._user_email}" if self._user_email else "the token's Cobot user"
        if not match:
            names = ", ".join(
                repr((s.get("attributes") or {}).get("subdomain")) for s in spaces
            ) or "none"
            raise ConnectionError_(
                f"{who} is not an admin of the space {self.settings.subdomain!r} (admin of: {names});"
                " use a token of a space admin or correct subdomain",
                connection=self.context.connection,
            )
        space = match[0]
        found = str(space["id"])
        if self.settings.space_id and self.settings.space_id != found:
            raise ConnectionError_(
                f"space_id {self.settings.space_id!r} is not the space {self.settings.subdomain!r}"
                f" (Cobot says its id is {found!r}); remove space_id or correct it",
                connection=self.context.connection,
            )
        self._space_id = found
        self._space_name = (space.get("attributes") or {}).get("name")
        return body

    @property
    def space_id(self) -> str:
        if self._space_id is None:
            self._load_user()
        assert self._space_id is not None
        return self._space_id

    def check(self) -> str:
        self._load_user()
        today = datetime.now(UTC).date().isoformat()
        self._call(
            2, "GET", f"spaces/{self.space_id}/invoices", "listing invoices",
            params={"filter[from]": today, "filter[to]": today, "page[size]": 1},
        )
        _, subs = self._call(1, "GET", "subscriptions", "listing webhook subscriptions")
        count = len(subs) if isinstance(subs, list) else 0
        return (
            f"Cobot space {self._space_name or self.settings.subdomain!r} ({self.settings.subdomain},"
            f" id {self.space_id}), user {self._user_email or 'unknown'}; invoices readable;"
            f" {count} webhook subscription(s)"
        )

    # -- invoices --------------------------------------------------------------
    def _line_kind(self) -> LineKind:
        return LineKind(self.settings.line_kind)

    def _pages(self, start: date, end: date, size: int) -> Iterator[Page]:
        """The pages of the invoices dated in [start, end] (JSON:API paging: page[number] up
        to meta.totalPages, while links.next is set), one at a time."""
        style = PageNumber(page_param="page[number]", size_param="page[size]", size=size,
                           total_pages="meta.totalPages", next_link="links.next")
        return self._client(2).pages(  # type: ignore[no-any-return]
            f"spaces/{self.space_id}/invoices", style,
            params={"filter[from]": start.isoformat(), "filter[to]": end.isoformat()},
            parse=lambda response: self._answer(response, 2, "listing invoices"), ok=(401, 403),
        )

    def _window_invoices(self, start: date, end: date, size: int, most: int) -> list[bytes] | int:
        """Every invoice dated in [start, end] (all pages, duplicates of shifting pages
        dropped by id), sorted by date, number and id, each kept as its compact JSON (a
        third to a sixth of the parsed resource; parsed again when it is handed out); or,
        when the window holds more than ``most`` (the first page's ``meta.totalPages``
        times ``size`` says so, or the pages read do), that many or more, as a number,
        without reading on."""
        found: dict[str, tuple[tuple[str, str, str], bytes]] = {}
        for page in self._pages(start, end, size):
            meta = page.body.get("meta") if isinstance(page.body, dict) else None
            pages = meta.get("totalPages") if isinstance(meta, dict) else None
            if page.number == 1 and isinstance(pages, int) and not isinstance(pages, bool) and pages * size > most:
                return pages * size
            for r in page.items:
                if isinstance(r, dict) and str(r.get("id") or "") not in found:
                    day = invoice_date_of(r)
                    attrs = as_object(r.get("attributes"))
                    key = (day.isoformat() if day else "", str(attrs.get("number") or ""), str(r.get("id")))
                    found[str(r.get("id") or "")] = (key, json.dumps(r, separators=(",", ":")).encode())
            if len(found) > most:
                return len(found)
        return [packed for _, packed in sorted(found.values(), key=lambda kept: kept[0])]

    def _map(self, resource: dict[str, Any]) -> Document | BrokenDocument:
        return document_from_invoice(
            resource, line_kind=self._line_kind()
        )

    def _belongs_here(self, resource: dict[str, Any]) -> bool:
        space = (((resource.get("relationships") or {}).get("space") or {}).get("data")) or {}
        space_id = space.get("id") if isinstance(space, dict) else None
        return space_id is None or str(space_id) == self.space_id

    def _streamed(self, start: date, end: date, size: int, counted: list[int]) -> Iterator[dict[str, Any]]:
        """The invoices dated in [start, end] page by page, one page held at a time
        (``counted[0]``: how many so far); a repeat of a page that shifted while it was
        read is dropped (by the ids of this window only)."""
        seen: set[str] = set()
        for page in self._pages(start, end, size):
            for r in page.items:
                if isinstance(r, dict) and str(r.get("id") or "") not in seen:
                    seen.add(str(r.get("id") or ""))
                    counted[0] += 1
                    yield r

    def _scan(self, start: date, end: date) -> Iterator[Document | BrokenDocument]:
        """Invoices dated in [start, end], window by window, at most ``window_invoices`` of
        them held at a time.

        A window asks Cobot for [lo, hi] and hands out the invoices dated lo up to the day
        before hi (the last window: up to ``end``); the next window starts at hi. Each day
        is thus handed out by exactly one window whether Cobot's ``filter[to]`` is
        inclusive or not, and no invoice ids need keeping across windows. A window is read
        whole and sorted (date, number, id). One whose first page says it holds more than
        ``window_invoices`` is not read on: it is narrowed (to about three quarters of the
        bound by the count it reported, at least halved) and asked again; a window holding
        less than a quarter of the bound is followed by a wider one (up to ``window_days``).
        A window that hands out a single day is read page by page, each invoice handed out
        as it comes (they share their date, so their order does not matter to the cursor):
        a day holding more than the bound is never held."""
        most = self.settings.window_invoices
        size = min(self.settings.page_size, most)
        widest = self.settings.window_days
        width = widest
        odd: set[str] = set()  # invoices without a readable date (none in Cobot's own data): handed out once
        lo = start
        while lo <= end:
            hi = min(lo + timedelta(days=width), end)
            listed: list[bytes] | int
            if (hi - lo).days <= 1:
                # One day handed out: no order to keep (they share their date), nothing held.
                counted = [0]
                resources, upto = self._streamed(lo, hi, size, counted), lo
            else:
                listed = self._window_invoices(lo, hi, size, most)
                if isinstance(listed, int):  # too full: narrower (at least halved), asked again
                    span = (hi - lo).days  # the last window may be shorter than the width
                    width = max(1, min(span // 2, span * most * 3 // (4 * max(listed, 1))))
                    continue
                # Hand out up to the day before hi (Cobot's filter[to] may be exclusive); the last window
                # up to the end.
                counted = [len(listed)]
                resources, upto = _unpacked(listed), end if hi >= end else hi - timedelta(days=1)
                del listed
            for resource in resources:
                day = invoice_date_of(resource)
                inv_id = str(resource.get("id") or "")
                if day is None:
                    if inv_id in odd:
                        continue
                    odd.add(inv_id)
                elif not lo <= day <= upto:
                    continue  # the next window's day (or outside what was asked for)
                if not self._belongs_here(resource):
                    self.context.logger.warning("Cobot invoice %s belongs to another space; left out", inv_id)
                    continue
                yield self._map(resource)
            lo = upto + timedelta(days=1)
            if counted[0] * 4 < most:
                width = min(widest, width * 2)

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        """Invoices dated from the cursor (minus ``overlap_days`` or ``recheck_days``,
        whichever is longer) or ``start_date`` up to tomorrow (UTC; the space's day may
        be ahead). ``Document.cursor`` is the invoice date (ISO); a stored cursor re-reads
        that day, which is safe because the engine deduplicates by id. The re-read days
        are how a cancellation after transfer is noticed (``paidStatus`` canceled)."""
        start = self.settings.start_date
        if since:
            try:
                cursor = date.fromisoformat(since[:10])
            except ValueError:
                raise ConnectionError_(
                    f"the stored Cobot cursor {since[:40]!r} is not a date; reset the pipeline's cursor",
                    connection=self.context.connection,
                ) from None
            back = max(self.settings.overlap_days, self.settings.recheck_days)
            start = max(start, cursor - timedelta(days=back))
        end = datetime.now(UTC).date() + timedelta(days=1)
        yield from self._scan(start, end)

    def documents_between(self, start: date, end: date) -> Iterator[SourceItem]:
        """Backfill: invoices dated in [start, end], ignoring start_date and the cursor."""
        if end < start:
            raise ValueError(f"backfill end {end} is before its start {start}")
        yield from self._scan(start, end)

    def document(self, source_ref: str) -> Document | None:
        """One invoice by its Cobot id (API 2 ``GET /invoices/{id}``); None if it does
        not exist or belongs to another space. A record that cannot be mapped raises
        ``DocumentError`` (``QuarantineError`` when a person must look at it)."""
        if not ID.match(source_ref or ""):
            return None
        status, body = self._call(2, "GET", f"invoices/{source_ref}", f"reading invoice {source_ref}", ok=(404,))
        if status == 404:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise TransientError(f"Cobot API 2 sent no invoice for {source_ref}")
        resource = body["data"]
        if not self._belongs_here(resource):
            self.context.logger.warning("Cobot invoice %s belongs to another space; ignored", source_ref)
            return None
        mapped = self._map(resource)
        if isinstance(mapped, BrokenDocument):
            raise (QuarantineError if mapped.quarantine else DocumentError)(mapped.reason)
        return mapped

    # -- members ---------------------------------------------------------------
    def _memberships_limit(self) -> list[RateLimit]:
        return [RateLimit(f"cobot:v1:memberships:{key_id(self._token)}",
                          self.settings.memberships_requests_per_second)]

    def customers(self, include_before_start: bool = False) -> Iterator[Customer]:
        """Confirmed memberships (API 1 ``GET /api/memberships``), oldest confirmation
        first. Members confirmed before ``start_date`` only with ``include_before_start``.
        ``extra["confirmed_at"]`` is the confirmation time (ISO 8601, UTC)."""
        _, body = self._call(
            1, "GET", "memberships", "listing memberships", extra_limits=self._memberships_limit()
        )
        if not isinstance(body, list):
            raise TransientError("Cobot API 1 GET /api/memberships sent no list of memberships")
        out: list[Customer] = []
        for raw in body:
            try:
                customer = customer_from_membership(raw)
            except (MappingError, ValueError) as exc:
                ident = raw.get("id") if isinstance(raw, dict) else None
                self.context.logger.warning("Cobot membership %s left out: %s", ident, str(exc).splitlines()[0])
                continue
            confirmed = customer.extra.get("confirmed_at")
            if not confirmed:
                continue
            if not include_before_start and date.fromisoformat(confirmed[:10]) < self.settings.start_date:
                continue
            out.append(customer)
        out.sort(key=lambda c: (str(c.extra["confirmed_at"]), c.source_id))
        yield from out

    def customer(self, source_id: str) -> Customer | None:
        """One confirmed membership, fetched with our own token (webhooks). None when
        Cobot does not know it or it is not confirmed (not a customer to sync yet)."""
        customer = self.membership(source_id)
        if customer is None or not customer.extra.get("confirmed_at"):
            return None
        return customer

    def membership(self, membership_id: str) -> Customer | None:
        """One membership, fetched with our own token. None when Cobot does not know
        it. Unconfirmed ones come back with ``extra["confirmed_at"] = None``."""
        if not ID.match(membership_id or ""):
            raise ValueError(f"{membership_id[:60]!r} is not a Cobot membership id")
        status, body = self._call(
            1, "GET", f"memberships/{membership_id}", f"reading membership {membership_id}", ok=(404,)
        )
        if status == 404:
            return None
        try:
            return customer_from_membership(body)
        except (MappingError, ValueError) as exc:
            raise DocumentError(f"Cobot membership {membership_id}: {str(exc).splitlines()[0]}") from None

    def write_customer_number(self, customer: Customer, number: str) -> None:
        """Replace Cobot's customer number of the membership with the target's.

        ASSUMPTION (unverified, see README): API 1 ``PUT /api/memberships/<id>`` with
        ``{"customer_number": "..."}``, scope ``write_memberships``. Teams and contacts
        (invoice debitors that are not memberships) have no writable number."""
        debitor_type = customer.extra.get("debitor_type", "memberships")
        if debitor_type != "memberships":
            raise NotSupported(
                f"Cobot {debitor_type} {customer.source_id} is not a membership; Cobot offers no"
                " write of customer numbers for it"
            )
        if not ID.match(customer.source_id):
            raise VendorRejected(f"{customer.source_id[:60]!r} is not a Cobot membership id")
        if not number or not str(number).strip():
            raise VendorRejected("an empty customer number cannot be written to Cobot")
        number = str(number).strip()
        _, body = self._call(
            1, "PUT", f"memberships/{customer.source_id}",
            f"writing customer number {number} to membership {customer.source_id}",
            json_body={"customer_number": number},
        )
        if isinstance(body, dict) and "customer_number" in body and str(body["customer_number"]) != number:
            raise VendorRejected(
                f"Cobot accepted customer number {number} for membership {customer.source_id}"
                f" but still shows {body['customer_number']!r}"
            )

    # -- webhooks --------------------------------------------------------------
    def webhook_resource(self, payload: Any) -> WebhookResource | None:
        """A customer (membership) or a document (invoice) from a Cobot webhook payload
        (``{"url": "https://<subdomain>.cobot.me/api/memberships/<id>"}``).

        Raises ValueError with the reason when the payload is not a Cobot payload or
        the URL is not on the configured space. Returns None for other resources of
        the space (bookings, ...). Cobot signs nothing: re-fetch with ``customer()``
        / ``document()`` before trusting anything."""
        if not isinstance(payload, dict):
            raise ValueError("the webhook payload is not a JSON object")
        url = payload.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ValueError("the webhook payload has no resource 'url'")
        if len(url) > 2000:
            raise ValueError("the webhook payload's url is too long")
        expected = urlsplit(self.settings.api1_url)
        try:
            got = urlsplit(url.strip())
            got_port = got.port
            expected_port = expected.port
        except ValueError:
            raise ValueError(f"the webhook url {url[:100]!r} is not a valid URL") from None
        if got.scheme != expected.scheme:
            raise ValueError(f"the webhook url {url[:100]!r} does not use {expected.scheme}")
        if got.username or got.password:
            raise ValueError(f"the webhook url {url[:100]!r} carries credentials")
        if (got.hostname or "").lower() != (expected.hostname or "").lower() or got_port != expected_port:
            raise ValueError(
                f"the webhook url {url[:100]!r} is not on the configured Cobot space"
                f" {expected.netloc} (subdomain {self.settings.subdomain!r})"
            )
        if got.query or got.fragment:
            raise ValueError(f"the webhook url {url[:100]!r} has a query or fragment")
        base = expected.path.rstrip("/") + "/"
        if not got.path.startswith(base):
            raise ValueError(f"the webhook url {url[:100]!r} is not under {base}")
        parts = got.path[len(base):].split("/")
        if parts[0] not in RESOURCES:
            return None  # another resource of this space (bookings, ...): nothing for us
        if len(parts) != 2:
            raise ValueError(f"the webhook url {url[:100]!r} does not name one {parts[0][:-1]}")
        kind, ident = parts
        if not ID.match(ident):
            raise ValueError(f"the webhook url {url[:100]!r} has an invalid id")
        return WebhookResource(RESOURCES[kind], ident)

    def subscriptions(self) -> list[dict[str, Any]]:
        """The webhook subscriptions of this token's user and app (API 1)."""
        _, body = self._call(1, "GET", "subscriptions", "listing webhook subscriptions")
        if not isinstance(body, list):
            raise TransientError("Cobot API 1 GET /api/subscriptions sent no list")
        return [s for s in body if isinstance(s, dict)]

    def subscribe(self, callback_url: str, event: str) -> dict[str, Any]:
        """Subscribe ``callback_url`` to ``event``. An existing subscription (409) is
        fine: it is looked up and returned."""
        if event not in EVENTS:
            raise ValueError(f"{event!r} is not a Cobot webhook event (known: {', '.join(sorted(EVENTS))})")
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"callback url {callback_url[:100]!r} is not an http(s) URL")
        status, body = self._call(
            1, "POST", "subscriptions", f"subscribing to {event}",
            json_body={"event": event, "callback_url": callback_url}, ok=(409,),
        )
        if status == 409:
            for sub in self.subscriptions():
                if sub.get("event") == event and sub.get("callback_url") == callback_url:
                    return sub
            return {"event": event, "callback_url": callback_url, "active": True}
        if not isinstance(body, dict):
            raise TransientError("Cobot API 1 POST /api/subscriptions sent no subscription")
        return body

    def unsubscribe(self, callback_url: str, event: str | None = None) -> list[str]:
        """Delete the subscriptions of ``callback_url`` (for ``event``, or all); returns
        the deleted ids. Already gone (404) counts as deleted."""
        removed = []
        for sub in self.subscriptions():
            if sub.get("callback_url") != callback_url or (event and sub.get("event") != event):
                continue
            sub_id = str(sub.get("id") or "")
            if not ID.match(sub_id):
                continue
            self._call(1, "DELETE", f"subscriptions/{sub_id}", f"deleting subscription {sub_id}", ok=(404,))
            removed.append(sub_id)
        return removed

    def close(self) -> None:
        for client in (self._v1, self._v2):
            if client is not None:
                client.close()
        self._v1 = self._v2 = None


def _unpacked(packed: list[bytes]) -> Iterator[dict[str, Any]]:
    """The resources of a window, parsed one at a time; each let go of once handed out."""
    for index in range(len(packed)):
        raw, packed[index] = packed[index], b""
        yield json.loads(raw)


__all__ = ["EVENTS", "CobotSettings", "CobotSource", "cobot_error_message"]
