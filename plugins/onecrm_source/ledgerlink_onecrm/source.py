"""The 1CRM source: invoices from 1CRM's REST API, Bilendo's status written back.

1CRM has one PHP entry point per installation (``https://HOST[/path]/api.php``) with the
endpoint as path info: ``GET data/{Model}`` lists (``fields[]``, ``filters[...]``,
``order``, ``offset``/``limit`` up to 200; answer ``{records, total_results}``),
``GET data/{Model}/{id}`` reads one (``{record}``), ``GET data/{Model}/{id}/{link}``
lists related records, ``PATCH data/{Model}/{id}`` with ``{data}`` writes. Auth is HTTP
Basic (once an admin enables it) or OAuth 2 client credentials. Every value is a string.

See the plugin README for every setting, the mapping and each assumption.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx
from ledgerlink import (
    BasicAuth,
    BrokenDocument,
    ConfigError,
    ConnectionError_,
    DocumentError,
    HttpClient,
    MappedStatus,
    Offset,
    QuarantineError,
    RateLimit,
    Settings,
    Source,
    SourceItem,
    TransientError,
    VendorRejected,
    key_id,
)
from pydantic import Field, SecretStr, field_validator, model_validator

from .auth import OAuth2ClientCredentials
from .mapping import InvoiceBundle, Options, document_from_bundle

_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_LIMIT = 200
BASE_CURRENCY_ID = "-99"
"""1CRM's id of the system's default currency."""
CACHED_RECORDS = 1024
"""Accounts (and users) kept for a run's later invoices; the least recently used go first."""
STALLED_REPOSITIONS = 20
"""Times in a row the invoice walk may lose its place (records before it changed) without
handing out an invoice before it gives up for this run."""

INVOICE_FIELDS = (
    "id", "prefix", "invoice_number", "full_number", "name", "invoice_date", "due_date", "date_modified",
    "billing_account_id", "billing_account", "billing_contact", "billing_address_street", "billing_address_city",
    "billing_address_postalcode", "billing_address_country", "billing_address_countrycode", "billing_email",
    "billing_phone", "currency_id", "exchange_rate", "amount", "amount_due", "pretax", "cancelled",
    "shipping_stage", "assigned_user_id",
)
GROUP_FIELDS = ("id", "name", "position", "group_type", "subtotal", "total")
LINE_FIELDS = ("id", "line_group_id", "position", "name", "quantity", "unit_price", "ext_price", "mfr_part_no",
               "tax_class_id", "parent_id", "sum_of_components")
ADJUSTMENT_FIELDS = ("id", "line_group_id", "line_id", "position", "name", "type", "rate", "amount", "tax_class_id")
ACCOUNT_FIELDS = ("id", "name", "email1", "phone_office")
USER_FIELDS = ("id", "user_name", "full_name", "first_name", "last_name", "address_street", "address_city",
               "address_postalcode", "address_country")

Mode = Literal["automatic", "manual"]
Channel = Literal["email", "post", "email_and_post"]
DISPATCH_VALUES: dict[str, Mode] = {"automatic": "automatic", "automatisch": "automatic", "auto": "automatic",
                   "send": "automatic", "versenden": "automatic", "manual": "manual", "manuell": "manual",
                   "draft": "manual", "entwurf": "manual"}
LANGUAGE_VALUES = {"de": "de", "deutsch": "de", "german": "de", "en": "en", "englisch": "en", "english": "en"}
CHANNEL_VALUES: dict[str, Channel] = {"email": "email", "e-mail": "email", "post": "post", "brief": "post", "letter": "post",
                  "email_and_post": "email_and_post", "dual_shipping": "email_and_post",
                  "e-mail und post": "email_and_post"}


class OnecrmSettings(Settings):
    """Settings of a 1CRM connection (see the plugin README for each one)."""

    base_url: str = Field(description="the installation's API entry point up to and including api.php, e.g. "
                          "https://crm.example.com/api.php or https://host/1crm/api.php; https only, except on "
                          "loopback")
    username: str | None = Field(None, description="Basic auth: the 1CRM user (Basic auth must be enabled for the "
                                 "API in 1CRM's administration); leave out for OAuth 2")
    password: SecretStr | None = Field(None, description="Basic auth: the user's password (\"${ENV}\" or a file)")
    client_id: str | None = Field(None, description="OAuth 2: the private API client's id (client credentials "
                                  "grant enabled, acting as a user with read and write rights on invoices)")
    client_secret: SecretStr | None = Field(None, description="OAuth 2: the API client's secret (\"${ENV}\" or a "
                                            "file)")
    scope: str = Field("read write", description="OAuth 2 scopes asked for (default \"read write\": reading "
                       "invoices and writing the status back)")
    timeout: float | None = Field(None, gt=0, description="seconds to wait for one HTTP answer (default: the HTTP "
                                  "client's 30 s)")
    requests_per_second: float = Field(5.0, gt=0, description="client-side limit in requests per second "
                                       "(default 5; 1CRM documents no limit)")
    page_size: int = Field(MAX_LIMIT, ge=1, le=MAX_LIMIT, description="records per list call (limit), 1 to 200 "
                           "(1CRM's maximum); default 200")
    start_date: date | None = Field(None, description="invoices dated before this day are skipped (default: none)")
    shipping_stages: list[str] | None = Field(
        None, description="export only invoices in these shipping stages (e.g. [\"Shipped\", \"Delivered\"]); "
        "others are skipped with the reason; default: any stage")
    export_flag_field: str | None = Field(
        None, description="export only invoices a user marked for export: the Invoice field (a checkbox custom "
        "field, e.g. bilendo_export_c) that must be 1; default: none (every selected invoice)")
    status_field: str | None = Field(
        "bilendo_status_c", description="the Invoice field sync-status writes the target's status into (a text "
        "custom field the admin creates; default bilendo_status_c); none: no field is written")
    status_note: bool = Field(False, description="also attach a Note to the invoice for each status change "
                              "(default false)")
    dispatch: Literal["account", "automatic", "manual"] = Field(
        "account", description="account (default): each invoice is sent or kept a draft as its billing account's "
        "preset says (dispatch_field); automatic / manual: every invoice of this connection, whatever the preset")
    dispatch_field: str | None = Field("bilendo_dispatch_c", description="the Account field holding the dispatch "
                                       "preset (default bilendo_dispatch_c)")
    dispatch_values: dict[str, Literal["automatic", "manual"]] = Field(
        default_factory=lambda: dict(DISPATCH_VALUES), description="values of dispatch_field -> automatic or "
        "manual (case-insensitive; default: automatic/automatisch/manual/manuell/...)")
    default_dispatch: Literal["automatic", "manual"] | None = Field(
        None, description="for accounts without a preset (default: none, so the target's own setting)")
    language_field: str | None = Field("bilendo_language_c", description="the Account field holding the "
                                       "language of its invoices (default bilendo_language_c)")
    language_values: dict[str, str] = Field(
        default_factory=lambda: dict(LANGUAGE_VALUES), description="values of language_field -> ISO 639-1 "
        "codes (default: de/deutsch/german, en/englisch/english)")
    default_language: str | None = Field(None, description="for accounts without a language (default: none, so "
                                         "the target's own setting)")
    channel_field: str | None = Field(None, description="the Account field with the dispatch channel (e-mail, "
                                      "post or both); default: none (the target's setting)")
    channel_values: dict[str, Literal["email", "post", "email_and_post"]] = Field(
        default_factory=lambda: dict(CHANNEL_VALUES), description="values of channel_field -> email, post or "
        "email_and_post")
    sender_from_user: bool = Field(True, description="send the invoice's assigned user's address as the sender "
                                   "address (default true; a user without a street sends none)")
    sender_company: str | None = Field(None, description="the company name put before the user's name in the "
                                       "sender address (default: none)")
    vat_id_field: str | None = Field("tax_information", description="the Account field with the customer's VAT "
                                     "id (default tax_information)")
    customer_number_field: str | None = Field(None, description="the Account field with a customer number, if "
                                              "the installation keeps one (e.g. ticker_symbol); default none")
    base_currency: str = Field("EUR", min_length=3, max_length=3, description="ISO code of 1CRM's system "
                               "currency (currency id -99), default EUR")
    country_names: dict[str, str] = Field(default_factory=dict, description="more country names of the free-text "
                                          "address fields -> ISO codes, e.g. {\"Bayern\" = \"DE\"}")
    tax_classes: dict[str, Decimal] = Field(default_factory=dict, description="tax_class_id of a line -> VAT "
                                            "rate in percent, for groups that carry several rates")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url {value!r} is not an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError(f"base_url {value!r} must use https (1CRM refuses plain http by default)")
        if not parts.path.endswith("api.php"):
            raise ValueError(f"base_url {value!r} must end with the entry point api.php "
                             "(e.g. https://crm.example.com/api.php)")
        return value

    @field_validator("base_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return value.strip().upper()

    @model_validator(mode="after")
    def _one_auth(self) -> OnecrmSettings:
        basic = self.username is not None or self.password is not None
        oauth = self.client_id is not None or self.client_secret is not None
        if basic and oauth:
            raise ValueError("give either username/password (Basic) or client_id/client_secret (OAuth 2), not both")
        if basic and (not self.username or self.password is None):
            raise ValueError("Basic auth needs both username and password")
        if oauth and (not self.client_id or self.client_secret is None):
            raise ValueError("OAuth 2 needs both client_id and client_secret")
        if not basic and not oauth:
            raise ValueError("no credentials: give username and password (Basic) or client_id and client_secret "
                             "(OAuth 2 client credentials)")
        return self


def onecrm_error(response: httpx.Response) -> str:
    """1CRM's own words: ``{"message", "error", "hint"}`` (or what came instead)."""
    try:
        body = response.json()
    except ValueError:
        words = " ".join(response.text.split())
        return "an HTML page instead of an API answer" if words.startswith("<") else (words[:200] or "an empty answer")
    if isinstance(body, dict):
        parts = [str(body[k]).strip() for k in ("message", "error", "hint") if isinstance(body.get(k), str)
                 and str(body[k]).strip()]
        if parts:
            return "; ".join(dict.fromkeys(parts))[:300]
    return str(body)[:200]


class OnecrmSource(Source):
    """1CRM invoices (with their line groups, lines and adjustments) and the billing accounts."""

    Settings: ClassVar[type[OnecrmSettings]] = OnecrmSettings  # type: ignore[assignment]
    description: ClassVar[str] = "1CRM invoices (REST API), status written back to the invoice"
    supports_write_status: ClassVar[bool] = True
    sandbox: ClassVar[str | None] = "ledgerlink_onecrm.sandbox:OnecrmSandbox"

    settings: OnecrmSettings

    def __init__(self, settings: Any, context: Any) -> None:
        if isinstance(settings, dict):
            settings = OnecrmSettings(**settings)
        super().__init__(settings, context)
        self._http: HttpClient | None = None
        self._token_http: HttpClient | None = None
        self.oauth: OAuth2ClientCredentials | None = None
        self._accounts: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._users: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._currencies: dict[str, str] = {BASE_CURRENCY_ID: settings.base_currency}

    # -- HTTP -------------------------------------------------------------------------------------
    def _timeout(self) -> dict[str, float]:
        return {} if self.settings.timeout is None else {"timeout": self.settings.timeout}

    def _hint(self) -> str:
        if self.settings.client_id:
            return (f"check client_id and client_secret of connection {self.context.connection!r} (1CRM: "
                    "Administration > API clients; the client credentials grant enabled, scope read write)")
        return (f"check username and password of connection {self.context.connection!r}, and that Basic auth is "
                "enabled for the API in 1CRM's administration")

    def _key(self) -> str:
        who = self.settings.client_id or self.settings.username or ""
        return f"onecrm:{key_id(self.settings.base_url, who)}"

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            auth: httpx.Auth
            if self.settings.client_id and self.settings.client_secret is not None:
                secret = self.settings.client_secret.get_secret_value()
                self._token_http = self.context.http(
                    vendor="1CRM", base_url=self.settings.base_url + "/", secrets=[secret],
                    rate_limits=[RateLimit(self._key(), self.settings.requests_per_second)],
                    auth_hint=self._hint(), error_message=onecrm_error, **self._timeout(),
                )
                self.oauth = OAuth2ClientCredentials(
                    self._token_http, client_id=self.settings.client_id, client_secret=secret,
                    scope=self.settings.scope, connection=self.context.connection)
                auth = self.oauth
            else:
                assert self.settings.username and self.settings.password is not None
                auth = BasicAuth(self.settings.username, self.settings.password.get_secret_value())
            self._http = self.context.http(
                vendor="1CRM", base_url=self.settings.base_url + "/", auth=auth,
                rate_limits=[RateLimit(self._key(), self.settings.requests_per_second)],
                auth_hint=self._hint(), error_message=onecrm_error, **self._timeout(),
            )
        return self._http

    def _body(self, response: httpx.Response, key: str, what: str) -> Any:
        body = self.http.json(response)
        if not isinstance(body, dict) or key not in body:
            error = TransientError if response.request.method == "GET" else VendorRejected
            raise error(f"1CRM answered {what} without {key!r} (HTTP {response.status_code}): "
                        f"{str(body)[:120]}")
        return body[key]

    def _listing(self, path: str, fields: tuple[str, ...], what: str, *, params: dict[str, Any] | None = None,
                 ) -> Iterator[dict[str, Any]]:
        """Every record of a list call, page by page (offset += records received, up to
        total_results; visual4's total_count is read too)."""
        style = Offset(offset_param="offset", limit_param="limit", limit=self.settings.page_size,
                       items="records", total_items="total_results")
        query = {"fields[]": list(fields), **(params or {})}
        for record in self.http.paginate(path, style, params=query, parse=lambda r: self._list_body(r, what),
                                         dedupe=lambda r: r.get("id") if isinstance(r, dict) else None):
            if isinstance(record, dict):
                yield record

    def _list_body(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The body of a list call: an object with a records list (or null); visual4's
        ``total_count`` read as ``total_results``."""
        body = self.http.json(response)
        if not isinstance(body, dict) or not isinstance(body.get("records", []), list | None):
            raise TransientError(f"1CRM answered {what} without a records list (HTTP {response.status_code})")
        if "total_results" not in body and "total_count" in body:
            body["total_results"] = body["total_count"]
        return body

    def _record(self, model: str, ident: str, fields: tuple[str, ...] | None, what: str) -> dict[str, Any] | None:
        params = {"fields[]": list(fields)} if fields else None
        response = self.http.get(f"data/{model}/{quote(ident, safe='')}", params=params, ok=[404])
        if response.status_code == 404:
            return None
        record = self._body(response, "record", what)
        if not isinstance(record, dict):
            raise TransientError(f"1CRM answered {what} with a record that is not an object")
        return record

    # -- check ---------------------------------------------------------------------------------------
    def check(self) -> str:
        response = self.http.get("me")
        me = self.http.json(response)
        who = (me.get("name") or me.get("id") or "?") if isinstance(me, dict) else "?"
        said = [f"1CRM at {urlsplit(self.settings.base_url).netloc}: signed in as {who}"
                f" ({'OAuth 2 client ' + str(self.settings.client_id) if self.settings.client_id else 'Basic auth'})"]
        fields = self._meta_fields("Invoice")
        wanted = [f for f in (self.settings.status_field, self.settings.export_flag_field) if f]
        if fields is not None:
            missing = [f for f in wanted if f not in fields]
            if missing:
                raise ConnectionError_(
                    f"1CRM's Invoice has no field {', '.join(missing)}: create it (Studio / Module Designer, a text "
                    "field on Invoice, see the plugin README) or set status_field in connection "
                    f"{self.context.connection!r}", connection=self.context.connection)
            said.append(f"status written to Invoice.{self.settings.status_field}" if self.settings.status_field
                        else "no status field")
        return "; ".join(said)

    def _meta_fields(self, model: str) -> dict[str, Any] | None:
        response = self.http.get(f"meta/fields/{model}", ok=[404])
        if response.status_code == 404:
            return None
        body = self.http.json(response)
        fields = body.get("fields") if isinstance(body, dict) else None
        return fields if isinstance(fields, dict) else None

    # -- invoices --------------------------------------------------------------------------------------
    def _options(self) -> Options:
        s = self.settings
        return Options(
            base_currency=s.base_currency, start_date=s.start_date, shipping_stages=s.shipping_stages,
            export_flag_field=s.export_flag_field, vat_id_field=s.vat_id_field,
            customer_number_field=s.customer_number_field, dispatch=s.dispatch, dispatch_field=s.dispatch_field,
            dispatch_values=s.dispatch_values, default_dispatch=s.default_dispatch, language_field=s.language_field,
            language_values=s.language_values, default_language=s.default_language, channel_field=s.channel_field,
            channel_values=s.channel_values, sender_company=s.sender_company, country_names=s.country_names,
            tax_classes=s.tax_classes, status_field=s.status_field,
        )

    def _invoice_fields(self) -> tuple[str, ...]:
        extra = tuple(f for f in (self.settings.status_field, self.settings.export_flag_field) if f)
        return INVOICE_FIELDS + extra

    def _account(self, ident: str | None) -> dict[str, Any] | None:
        if not ident:
            return None
        if ident not in self._accounts:
            fields = ACCOUNT_FIELDS + tuple(f for f in (
                self.settings.vat_id_field, self.settings.customer_number_field, self.settings.dispatch_field,
                self.settings.language_field, self.settings.channel_field) if f)
            _keep(self._accounts, ident, self._record("Account", ident, fields, f"account {ident}"))
        self._accounts.move_to_end(ident)
        return self._accounts[ident]

    def _user(self, ident: str | None) -> dict[str, Any] | None:
        if not ident or not self.settings.sender_from_user:
            return None
        if ident not in self._users:
            _keep(self._users, ident, self._record("User", ident, USER_FIELDS, f"user {ident}"))
        self._users.move_to_end(ident)
        return self._users[ident]

    def _currency(self, ident: str | None) -> str | None:
        if not ident:
            return self.settings.base_currency
        if ident not in self._currencies:
            record = self._record("Currency", ident, ("id", "iso4217", "name"), f"currency {ident}")
            iso = str((record or {}).get("iso4217") or "").strip().upper()
            if not iso:
                return None
            self._currencies[ident] = iso
        return self._currencies[ident]

    def _bundle(self, invoice: dict[str, Any]) -> InvoiceBundle:
        ident = quote(str(invoice["id"]), safe="")
        base = f"data/Invoice/{ident}"
        return InvoiceBundle(
            invoice=invoice,
            groups=list(self._listing(f"{base}/line_groups_link", GROUP_FIELDS, "the invoice's line groups")),
            lines=list(self._listing(f"{base}/lines_link", LINE_FIELDS, "the invoice's lines")),
            adjustments=list(self._listing(f"{base}/adjustments_link", ADJUSTMENT_FIELDS, "the invoice's adjustments")),
            account=self._account(str(invoice.get("billing_account_id") or "") or None),
            user=self._user(str(invoice.get("assigned_user_id") or "") or None),
            currency=self._currency(str(invoice.get("currency_id") or "") or None),
        )

    def _map(self, invoice: dict[str, Any]) -> SourceItem:
        bundle = self._bundle(invoice)
        if bundle.currency is None:
            return BrokenDocument(str(invoice["id"]), f"1CRM invoice {invoice.get('full_number') or invoice['id']}: "
                                  f"currency {invoice.get('currency_id')!r} has no ISO code in 1CRM",
                                  cursor=None)
        return document_from_bundle(bundle, self._options())

    @staticmethod
    def _since(since: str | None) -> tuple[str, str] | None:
        if not since:
            return None
        stamp, _, ident = since.partition("|")
        if len(stamp) < 10 or not stamp[:4].isdigit():
            raise ConnectionError_(f"the stored 1CRM cursor {since[:40]!r} is not 'date_modified|id'; reset the "
                                   "pipeline's cursor")
        return stamp, ident

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        """Invoices modified after the cursor (``date_modified|id``), oldest change first,
        one list page held at a time (see :meth:`_changed`). ``filters[view_closed]=1``
        asks for paid and cancelled invoices too (1CRM's list view hides them by default).
        A record modified at the cursor's second with a greater id comes again; the
        cursor's own record not."""
        for invoice in self._changed(self._since(since)):
            yield self._map(invoice)

    def documents_between(self, start: date, end: date) -> Iterator[SourceItem]:
        """Backfill: invoices dated in [start, end], oldest change first. 1CRM documents no
        filter on ``invoice_date``, so every invoice is walked (one page held at a time) and
        the dates are compared here; an unreadable date is handed on (the mapping names it)."""
        if end < start:
            raise ValueError(f"backfill end {end} is before its start {start}")
        for invoice in self._changed(None):
            raw = str(invoice.get("invoice_date") or "")[:10]
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                yield self._map(invoice)
                continue
            if start <= day <= end:
                yield self._map(invoice)

    # -- the invoice walk ---------------------------------------------------------------------
    def _invoice_page(self, order: str, offset: int, limit: int, fields: tuple[str, ...] | None = None,
                      ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of ``data/Invoice`` (closed ones too) in ``date_modified`` order:
        (records, total_results or None)."""
        params = {"fields[]": list(fields or self._invoice_fields()), "order": f"date_modified {order}",
                  "filters[view_closed]": "1", "offset": offset, "limit": limit}
        body = self._list_body(self.http.get("data/Invoice", params=params), "the invoice list")
        records, total = body.get("records"), body.get("total_results")
        try:
            count = int(total) if total is not None else None
        except (TypeError, ValueError):
            count = None
        return [r for r in records or [] if isinstance(r, dict) and r.get("id") is not None], count

    def _key_at(self, offset: int) -> tuple[str, str] | None:
        """The (date_modified, id) of the invoice at ``offset`` of the oldest-first list; None
        past its end."""
        records, _ = self._invoice_page("ASC", offset, 1, ("id", "date_modified"))
        return _key(records[0]) if records else None

    def _first_after(self, mark: tuple[str, str], high: int) -> int:
        """The offset of the first invoice after ``mark`` in the oldest-first list, given that
        the one at ``high`` (or the end of the list there) is after it: galloping down from
        ``high`` (1, 2, 4, ... records) to one at or before ``mark``, then halving between.
        About 2 log2(distance) calls of one record each."""
        low, step = 0, 1
        while high > 0:
            probe = max(high - step, 0)
            key = self._key_at(probe)
            if key is not None and key <= mark:
                low = probe + 1
                break
            high = probe
            step *= 2
        while low < high:
            middle = (low + high) // 2
            key = self._key_at(middle)
            if key is not None and key <= mark:
                low = middle + 1
            else:
                high = middle
        return high

    def _changed(self, mark: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
        """The invoices after ``mark`` ((date_modified, id); None: all), oldest change first,
        with at most ``page_size`` of them held at a time.

        1CRM lists ``order=date_modified ASC`` as well as DESC but documents no filter on
        ``date_modified`` (NOTES open question 2), so the walk pages by offset:

        - The first call reads the newest ``page_size`` invoices (DESC). When they reach back
          to the cursor (or are the whole list), they are every change: sorted and handed
          out, one call as before. Their newest ``date_modified`` is the run's end: an invoice
          changed while the run reads is newer and is left for the next run (a cursor handed
          out now never passes its new time, and nothing comes twice).
        - Otherwise the oldest-first list is read from the first invoice after the cursor
          (found by :meth:`_first_after`), page by page. Each page starts one record early,
          at the last invoice handed out: when that is no longer there, invoices before it
          were changed or deleted (they moved to the end of the list, and everything after
          them moved up); the walk finds its place again instead of skipping the invoices that
          moved up. Within a page invoices are sorted by (date_modified, id), as the cursor."""
        size = self.settings.page_size
        top, total = self._invoice_page("DESC", 0, size)
        if not top:
            return
        newest = max(_key(r)[0] for r in top)
        whole = len(top) < size or (total is not None and len(top) >= total)
        if whole or (mark is not None and any(_key(r)[0] < mark[0] for r in top)):
            for invoice in sorted(top, key=_key):
                if mark is None or _key(invoice) > mark:
                    yield invoice
            return
        del top
        offset = 0 if mark is None else self._first_after(mark, total if total is not None else 0)
        stalled = 0
        while True:
            at = max(offset - 1, 0)
            page, total = self._invoice_page("ASC", at, size)
            if offset > 0:
                if mark is None or not page or _key(page[0]) > mark:
                    # The last invoice handed out moved up (or the list got shorter): find it again.
                    stalled += 1
                    if stalled > STALLED_REPOSITIONS:
                        raise TransientError(
                            f"1CRM's invoice list kept changing under the listing ({STALLED_REPOSITIONS} times in "
                            "a row before the next invoice); the next run goes on from the cursor")
                    offset = self._first_after(mark, offset - 1) if mark is not None else 0
                    continue
            read = len(page)
            if offset > 0:
                page = page[1:]
            for invoice in sorted(page, key=_key):
                key = _key(invoice)
                if mark is not None and key <= mark:
                    continue
                if key[0] > newest:
                    return  # changed since the run began: the next run's
                yield invoice
                mark, stalled = key, 0
            offset = at + read
            if read < size or (total is not None and offset >= total):
                return

    def document(self, source_ref: str) -> Any:
        invoice = self._record("Invoice", source_ref, self._invoice_fields(), f"invoice {source_ref}")
        if invoice is None:
            return None
        mapped = self._map(invoice)
        if isinstance(mapped, BrokenDocument):
            raise (QuarantineError if mapped.quarantine else DocumentError)(mapped.reason)
        return mapped

    # -- status back into 1CRM ---------------------------------------------------------------------
    def write_status(self, source_ref: str, status: MappedStatus, wording: str) -> None:
        """Write the target's status into the configured Invoice field (and a Note).

        The field is read first and written only when it differs, so a repeated write (a
        lost answer, a re-run) changes nothing in 1CRM."""
        field = self.settings.status_field
        if field is None and not self.settings.status_note:
            raise ConfigError(f"connection {self.context.connection!r} sets neither status_field nor status_note: "
                              "nothing to write the status into")
        ident = quote(source_ref, safe="")
        if field is not None:
            current = self._record("Invoice", source_ref, ("id", field), f"invoice {source_ref}")
            if current is None:
                raise VendorRejected(f"1CRM invoice {source_ref} is gone (404): its status {wording!r} was not "
                                     "written")
            if str(current.get(field) or "") != wording:
                response = self.http.patch(f"data/Invoice/{ident}", json={"data": {field: wording}})
                body = self.http.json(response)
                if isinstance(body, dict) and body.get("result") is False:
                    raise VendorRejected(f"1CRM refused the status {wording!r} for invoice {source_ref}: "
                                         f"{onecrm_error(response)}")
        if self.settings.status_note:
            note = {"name": f"Bilendo: {wording}", "description": f"Status in Bilendo: {wording} ({status.label()})",
                    "parent_type": "Invoice", "parent_id": source_ref}
            response = self.http.post("data/Note", json={"data": note})
            self._body(response, "id", f"the note on invoice {source_ref}")

    def close(self) -> None:
        for client in (self._http, self._token_http):
            if client is not None:
                client.close()
        self._http = self._token_http = None


def _key(invoice: dict[str, Any]) -> tuple[str, str]:
    """An invoice's place in the walk and the cursor: (date_modified, id)."""
    return str(invoice.get("date_modified") or ""), str(invoice.get("id"))


def _keep(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` in ``cache``, letting the least recently used go beyond CACHED_RECORDS."""
    cache[key] = value
    while len(cache) > CACHED_RECORDS:
        cache.popitem(last=False)


__all__ = ["OnecrmSettings", "OnecrmSource", "onecrm_error"]
