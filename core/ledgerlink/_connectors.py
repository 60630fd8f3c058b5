"""What a connector is: the base classes plugins subclass.

A **source** is where sales happen (Billbee, Cobot, a CRM); a **target** is where
money is booked or collected (sevDesk, Billy, Bilendo). Plugins register their
classes by name through ``ledgerlink_register_sources`` / ``_targets``; the
engine builds one instance per configured connection, with the plugin's
validated ``Settings`` and a :class:`ConnectorContext`.

Connectors are synchronous and talk HTTP only through ``context.http(...)``,
which gives them timeouts, retries, the per-key rate limiter, redaction of
secrets and the answer-to-action table (see ``ledgerlink._http``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from ._errors import NotSupported
from ._records import DEFAULT_BOOK_CURRENCY, Contact, Customer, Document, Line, TargetRef

if TYPE_CHECKING:
    from ._http import HttpClient


class Settings(BaseModel):
    """Base for a plugin's settings. Unknown keys are errors.

    Declare secrets as ``pydantic.SecretStr``: the config loader then accepts only
    ``"${ENV}"`` or ``{ file = "..." }`` for them and redacts them everywhere.
    """

    model_config = ConfigDict(extra="forbid")


@dataclass
class ConnectorContext:
    """What the engine hands a connector."""

    connection: str
    """The connection's name in the config (``[connections.NAME]``)."""
    http_factory: Callable[..., HttpClient]
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("ledgerlink"))
    transport: Any = None
    """An httpx transport to use instead of the network (tests, in-process sandboxes)."""
    write_timeout: float = 0.0
    """The longest timeout of the HTTP clients the connector makes or will make (s); 0: it
    talks no HTTP. Known from the connector's construction on (see :meth:`expect_http`),
    so a connector that makes its client lazily, on its first request, has it too: the
    runner's settle delay for a young pending write is twice this, from a run's start."""

    def http(self, **kwargs: Any) -> HttpClient:
        """A configured HTTP client; see :func:`ledgerlink._http.HttpClient` for arguments."""
        kwargs.setdefault("transport", self.transport)
        kwargs.setdefault("connection", self.connection)
        client = self.http_factory(**kwargs)
        self.write_timeout = max(self.write_timeout, float(getattr(client, "timeout", 0.0) or 0.0))
        return client

    def expect_http(self, timeout: float | None = None) -> None:
        """Note, before any client is made, the timeout the connector's HTTP client will
        use: ``timeout`` (the connection's own setting) or, when None, the default of
        :attr:`http_factory` (``LEDGERLINK_HTTP_TIMEOUT`` or ``HttpClient``'s 30 s)."""
        expected = float(timeout) if timeout is not None and timeout > 0 else self.default_timeout()
        self.write_timeout = max(self.write_timeout, expected)

    def default_timeout(self) -> float:
        """The timeout (s) a client of :attr:`http_factory` gets when the connector names none."""
        factory: Any = self.http_factory
        while isinstance(factory, partial):  # the outermost partial's keywords win
            value = factory.keywords.get("timeout")
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return float(value)
            factory = factory.func
        for candidate in (factory, _http_client_class()):
            try:
                parameter = inspect.signature(candidate).parameters.get("timeout")
            except (TypeError, ValueError):
                continue
            default = parameter.default if parameter is not None else None
            if isinstance(default, int | float) and not isinstance(default, bool) and default > 0:
                return float(default)
        return 0.0


def _http_client_class() -> type[HttpClient]:
    from ._http import HttpClient  # here: _http is heavy, and connectors are imported first

    return HttpClient


class Connector:
    """What sources and targets share: settings, a context, a sandbox, a status mapper."""

    Settings: ClassVar[type[Settings]] = Settings
    """The pydantic model a ``[connections.NAME]`` table is validated against."""
    description: ClassVar[str] = ""
    """One line for ``ledgerlink plugins``."""
    status_mapper: ClassVar[str | None] = None
    """Name of the status mapper that speaks this system's status words, if any."""
    sandbox: ClassVar[str | None] = None
    """``"module:Class"`` of the vendor's :class:`ledgerlink.Sandbox` (imported only when
    ``ledgerlink sandbox`` or a demo asks for it, so start-up stays fast)."""
    talks_http: ClassVar[bool | None] = None
    """Whether the connector makes HTTP requests through ``context.http``. None: guessed,
    True for a connector with a :attr:`sandbox` or a ``timeout`` setting. Its client's
    timeout is then known from the start (``context.write_timeout``), even when the
    client is made only on the first request."""

    def __init__(self, settings: Any, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        if isinstance(context, ConnectorContext) and self._talks_http():
            own: Any = getattr(settings, "timeout", None)
            numeric = isinstance(own, int | float) and not isinstance(own, bool)
            context.expect_http(float(own) if numeric and own > 0 else None)

    @classmethod
    def _talks_http(cls) -> bool:
        if cls.talks_http is not None:
            return cls.talks_http
        fields = getattr(cls.Settings, "model_fields", {})
        return cls.sandbox is not None or "timeout" in fields

    def close(self) -> None:
        """Release connections."""


class Source(Connector):
    """A system where sales happen. Subclass it and set ``Settings``."""

    supports_write_customer_number: ClassVar[bool] = False
    """True when ``write_customer_number`` stores the target's number on the source customer."""
    supports_write_status: ClassVar[bool] = False
    """True when ``write_status`` shows the target's status on the source document."""

    def check(self) -> str:
        """Make one cheap authenticated call; return a one-line description
        (e.g. "shop 'Demo GmbH', 2 shops"). Raise ``ConnectionError_`` with a clear
        line when the credentials or permissions are wrong."""
        raise NotImplementedError

    def documents(self, since: str | None) -> Iterator[SourceItem]:
        """Documents changed since the cursor ``since`` (None: from the start date).

        Each yielded document carries ``Document.cursor``: the cursor value that is
        safe to store once this document and every one before it are settled (the
        runner stores it only then). Never yield the same document twice in one listing
        (``SourceContract`` fails on it, naming the ref; the paging helpers' ``dedupe``
        drops a record a vendor's shifting pages repeat). A record the source must not transfer is
        still a full :class:`Document`, with ``skip_reason`` set. A record the source
        cannot map raises nothing here: yield :class:`BrokenDocument` so the runner
        records it as failed (or quarantined) and goes on.
        """
        raise NotImplementedError

    def document(self, source_ref: str) -> Document | None:
        """One document by its reference (backfill by id, webhooks). Optional."""
        raise NotSupported(f"{type(self).__name__} cannot fetch a single document")

    def documents_between(self, start: date, end: date) -> Iterator[SourceItem]:
        """Documents dated in [start, end] regardless of the cursor (backfill). Optional."""
        raise NotSupported(f"{type(self).__name__} cannot fetch documents by date")

    def customers(self) -> Iterator[Customer]:
        """Every customer, for the matching pass."""
        raise NotSupported(f"{type(self).__name__} cannot list customers")

    def write_customer_number(self, customer: Customer, number: str) -> None:
        """Store the target's customer number on the source customer. Optional."""
        raise NotSupported(f"{type(self).__name__} cannot store customer numbers")

    def write_status(self, source_ref: str, status: MappedStatus, wording: str) -> None:
        """Show the target's status on the source document. Optional."""
        raise NotSupported(f"{type(self).__name__} cannot store statuses")


@dataclass
class BrokenDocument:
    """A source record that could not be mapped; recorded as failed (or quarantined)."""

    source_ref: str
    """The record's id in the source (as ``Document.source_ref`` would be)."""
    reason: str
    """Why it could not be mapped, naming the field and the value."""
    quarantine: bool = False
    """True when a person must look at the record (it is not a passing problem)."""
    number: str | None = None
    """The document number, if it could be read."""
    cursor: str | None = None
    """As ``Document.cursor``."""


SourceItem = Document | BrokenDocument
"""What ``Source.documents`` yields."""


@dataclass(frozen=True)
class WebhookResource:
    """What a webhook points at, as :meth:`WebhookSource.webhook_resource` reads it."""

    kind: Literal["document", "customer"]
    id: str
    """The document's ``source_ref`` or the customer's ``source_id``."""


class WebhookSource(Source):
    """A source whose vendor calls back when something changes (``ledgerlink serve``).

    A webhook is only a pointer: the runner fetches what it points at with the
    connection's own credentials (``document(id)`` or ``customer(id)``) and handles
    it like ``run`` does, so a forged payload can transfer nothing that is not in the
    configured account.
    """

    webhook_events: ClassVar[tuple[str, ...]] = ()
    """The vendor's event names ``ledgerlink webhooks subscribe`` subscribes to."""

    def webhook_resource(self, payload: Any) -> WebhookResource | None:
        """Read a webhook's JSON body. None: an event to ignore. Raise ``ValueError``
        (answered 400) when it points outside the configured account or is malformed."""
        raise NotImplementedError

    def customer(self, source_id: str) -> Customer | None:
        """One customer by id, for a customer webhook. None: not a customer to sync
        (e.g. not confirmed yet)."""
        raise NotImplementedError

    def subscribe(self, callback_url: str, event: str) -> dict[str, Any]:
        """Subscribe ``callback_url`` to ``event``; return the vendor's subscription.
        Subscribing twice is not an error."""
        raise NotImplementedError

    def unsubscribe(self, callback_url: str, event: str | None = None) -> list[str]:
        """Remove the subscriptions of ``callback_url`` (of one event, or all);
        return the events removed."""
        raise NotImplementedError


@dataclass
class PlannedLine:
    """A document line with where it is booked."""

    line: Line
    account: str | None = None
    tax_rule: str | None = None
    treatment: str | None = None
    cost_centre: str | None = None
    why: str = ""
    """Why the treatment was chosen, in a bookkeeper's words (shown by --dry-run)."""

    @property
    def net(self) -> Decimal:
        return self.line.net

    @property
    def tax(self) -> Decimal:
        return self.line.tax

    @property
    def gross(self) -> Decimal:
        return self.line.gross


@dataclass
class Plan:
    """Everything the target needs to write one document, decided by the engine."""

    pipeline: str
    contact: Contact | None
    lines: list[PlannedLine]
    document_date: date
    due_date: date | None
    tags: list[str] = field(default_factory=list)
    cost_centre: str | None = None
    mark_paid: bool = False
    """Book the document's payments in the target (payment_reconciliation = "source")."""
    mismatch: bool = False
    """No contact could be matched or created; the mismatch tag is in ``tags``."""
    contact_decision: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    book_currency: str = DEFAULT_BOOK_CURRENCY
    """The currency the target books in (the pipeline's ``book_currency``)."""
    exchange_rate: Decimal | None = None
    """For a document in a foreign currency: units of ``book_currency`` for one unit of
    the document's currency (the source's rate, else the pipeline's). None: the document
    is in the book currency. A target sends it the way the vendor expects, and never
    books a foreign payment as the same number in the book currency."""

    reverses: TargetRef | None = None
    """For a credit note that cancels an earlier document: that document in the target.
    The target writes its credit note or reversing document referencing it."""
    voucher_account: str | None = None
    """The pipeline's clearing account for gift vouchers; payments of kind voucher are
    booked from it (the core quarantines a voucher payment when it is unset)."""

    def vat_by_rate(self) -> list[dict[str, str]]:
        """Net, VAT and gross per treatment and rate: what lands in the target's VAT
        figures (in the document's currency; the target must match them to the cent)."""
        sums: dict[tuple[str, Decimal], list[Decimal]] = {}
        for pl in self.lines:
            entry = sums.setdefault((pl.treatment or "", pl.line.tax_rate), [Decimal("0.00")] * 3)
            entry[0] += pl.net
            entry[1] += pl.tax
            entry[2] += pl.gross
        return [{"treatment": treatment, "tax_rate": f"{rate.normalize():f}", "net": str(net), "tax": str(tax),
                 "gross": str(gross)}
                for (treatment, rate), (net, tax, gross) in sorted(sums.items(), key=lambda kv: (-kv[0][1], kv[0][0]))]

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly picture of the plan (for --dry-run)."""
        return {
            "pipeline": self.pipeline,
            "contact": None
            if self.contact is None
            else {
                "id": self.contact.target_id,
                "number": self.contact.customer_number,
                "name": self.contact.display_name,
            },
            "contact_decision": self.contact_decision,
            "document_date": self.document_date.isoformat(),
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "tags": list(self.tags),
            "cost_centre": self.cost_centre,
            "mark_paid": self.mark_paid,
            "book_currency": self.book_currency,
            "exchange_rate": None if self.exchange_rate is None else str(self.exchange_rate),
            "reverses": None if self.reverses is None else (self.reverses.number or self.reverses.target_id),
            "voucher_account": self.voucher_account,
            "vat_by_rate": self.vat_by_rate(),
            "lines": [
                {
                    "description": pl.line.description,
                    "kind": str(pl.line.kind),
                    "account": pl.account,
                    "tax_rule": pl.tax_rule,
                    "treatment": pl.treatment,
                    "why": pl.why,
                    "tax_rate": str(pl.line.tax_rate),
                    "net": str(pl.net),
                    "tax": str(pl.tax),
                    "gross": str(pl.gross),
                }
                for pl in self.lines
            ],
        }


class Target(Connector):
    """A system where documents are booked or collected. Subclass it and set ``Settings``."""

    locks_exported: ClassVar[bool] = False
    """True when an exported document belongs to the target from then on (Bilendo sends
    and dunns it): a later change in the source shows as "changed after export"."""
    reverses_documents: ClassVar[bool] = False
    """True when ``push`` can write a credit note or reversing document for a plan with
    ``reverses`` set (a cancellation). False: such documents are quarantined, and with
    on_cancel = "reverse" a cancelled document stays flagged for a person."""
    books_vouchers: ClassVar[bool] = True
    """False when the target cannot take a payment by gift voucher at all (a dunning
    service): the pipeline's voucher_account does not help, so ``validate`` decides."""
    needs_exchange_rate: ClassVar[bool] = True
    """False when the target takes a document in its own currency and books nothing in
    another (a dunning service collects the receivable in the invoice's currency): a
    foreign-currency document is then planned without a rate and never quarantined for
    lacking one. True: a rate into the book currency is required (the source's, else the
    pipeline's ``exchange_rates``)."""
    books_without_rules: ClassVar[bool] = False
    """True when the target's own settings book every line (e.g. per-region templates), so
    a pipeline's rules are optional overrides and unmatched lines are not quarantined."""

    def check(self) -> str:
        """Verify the credentials; return a one-line description of the account."""
        raise NotImplementedError

    def prepare(self, pipeline_options: dict[str, Any]) -> None:
        """Called once per run before the first push (load accounts, tax rules, tags)."""

    def account_id(self) -> str | None:
        """A stable id of the account the credentials open (sevDesk's client, Billy's
        organisation), called once per run. The ledger records it: a ledger that wrote for
        a pipeline to one account refuses to run it against another. None: unknown."""
        return None

    def book_currency(self) -> str | None:
        """The currency the account books in, if the target knows it (called after
        ``prepare``); None: the pipeline's ``book_currency`` (default EUR) applies."""
        return None

    def contacts(self) -> Iterator[Contact]:
        """Every contact, with paging."""
        raise NotImplementedError

    def find_contact(self, key: str) -> Contact | None:
        """The contact created with ``create_contact(..., key=key)``, if it exists.

        Used to settle a contact creation whose outcome is unknown (crash, timeout)."""
        raise NotImplementedError

    def create_contact(self, customer: Customer, key: str) -> Contact:
        """Create a contact. ``key`` (stable per source customer) must be stored where
        ``find_contact(key)`` finds it again."""
        raise NotImplementedError

    def find_document(self, source_ref: str, number: str | None = None) -> TargetRef | None:
        """The document pushed for ``source_ref``, if it is in the target (idempotency)."""
        raise NotImplementedError

    def validate(self, document: Document, plan: Plan) -> None:
        """Refuse a plan the vendor would refuse, before anything is sent.

        Raise ``QuarantineError`` naming what is wrong (account, tax rule, rate)."""

    def push(self, document: Document, plan: Plan) -> TargetRef:
        """Write the document. Must store ``document.source_ref`` where
        ``find_document`` searches. Raises ``QuarantineError`` / ``VendorRejected``
        for this document, ``OutcomeUnknown`` when the answer was lost."""
        raise NotImplementedError

    def complete(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """Finish a document that ``find_document`` found after a lost answer. Optional.

        ``push`` may have created the document and then lost its answer, or failed
        in a step after the create (tags, say). The engine adopts what it found and
        calls this with the plan of that push: do the steps after the create that
        are missing, and nothing twice. Payments are not part of it (the engine
        calls ``book_payment`` for them)."""

    def book_payment(self, ref: TargetRef, document: Document, plan: Plan) -> None:
        """Book the document's payments on an already pushed document. Optional."""
        raise NotSupported(f"{type(self).__name__} cannot book payments")

    def statuses(self, refs: Iterable[TargetRef]) -> Iterator[tuple[TargetRef, str]]:
        """Raw statuses of pushed documents, for status sync. Optional."""
        raise NotSupported(f"{type(self).__name__} cannot report statuses")



class Status(StrEnum):
    """Canonical document statuses after transfer."""

    DRAFT = "draft"
    OPEN = "open"
    SENT = "sent"
    DUE = "due"
    OVERDUE = "overdue"
    REMINDER = "reminder"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    CANCELLED = "cancelled"
    COLLECTION = "collection"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MappedStatus:
    """A canonical status with its detail (reminder level) and the raw value."""

    status: Status
    raw: str
    level: int | None = None

    def label(self) -> str:
        if self.status == Status.REMINDER and self.level:
            return f"reminder {self.level}"
        if self.status == Status.UNKNOWN:
            return f"unknown ({self.raw})"
        return str(self.status)


class StatusMapper:
    """Maps one system's raw status strings to canonical statuses and back."""

    name: ClassVar[str] = ""

    def to_canonical(self, raw: str) -> MappedStatus:
        """Unknown raw values must come back as ``Status.UNKNOWN`` with ``raw`` kept."""
        raise NotImplementedError

    def from_canonical(self, status: MappedStatus) -> str:
        """The system's own wording for a canonical status (e.g. "Reminder 1 sent")."""
        raise NotImplementedError


@dataclass
class MatchResult:
    """What a matcher found for one customer."""

    matcher: str
    candidates: list[Contact]

    @property
    def unique(self) -> Contact | None:
        return self.candidates[0] if len(self.candidates) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1


class Matcher:
    """Finds target contacts for a source customer by one key.

    Matchers index the contacts once (``index``) and then look up each customer in
    constant time, so matching 20,000 against 20,000 is not quadratic.
    """

    name: ClassVar[str] = ""

    def keys_for_contact(self, contact: Contact) -> Iterable[str]:
        """The normalised keys under which a contact is found."""
        raise NotImplementedError

    def keys_for_customer(self, customer: Customer) -> Iterable[str]:
        """The normalised keys to look a customer up by."""
        raise NotImplementedError


@dataclass(frozen=True)
class Demo:
    """A demo a plugin offers (``ledgerlink demo NAME``): a source and a target plugin,
    both with sandboxes. The source's sandbox gives the seed (``demo_seed``), the
    target's sandbox the pipeline's rules (``demo_rules``); both give their
    connection settings (``demo_connection``)."""

    source: str
    """The registered source plugin's name."""
    target: str
    """The registered target plugin's name."""
    description: str = ""
    story: str = ""
    """``"module:function"``: a demo that is more than one run (drafts first, then
    approval; a second shop; statuses moving in the target's sandbox). The function is
    called with a :class:`ledgerlink.DemoStory` (the two sandboxes on loopback, the
    config it writes, ``run`` and ``sync_status``) and returns the exit code. Empty:
    one run of the pipeline."""


@dataclass
class Registration:
    """One registered factory, with the plugin that registered it."""

    kind: str
    name: str
    factory: Any
    distribution: str
    version: str


__all__ = [
    "BrokenDocument",
    "Connector",
    "Demo",
    "SourceItem",
    "WebhookResource",
    "WebhookSource",
    "ConnectorContext",
    "MappedStatus",
    "MatchResult",
    "Matcher",
    "Plan",
    "PlannedLine",
    "Registration",
    "Settings",
    "Source",
    "Status",
    "StatusMapper",
    "Target",
]
