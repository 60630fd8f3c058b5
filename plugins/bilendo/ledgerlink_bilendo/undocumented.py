"""Everything about Bilendo's API that is NOT in its public v2 reference.

Bilendo documents customers (debtors), contacts and addresses
(https://bilendo.github.io/api-documentation-v2, copied in ``spec/``). Invoices,
PDFs, invoice statuses, reminders, payments, the error format, paging and rate
limits are not publicly documented. This module holds every path, field name and
value ledgerlink *assumes* for them, designed in the style of the documented
part (``/api/v2/<plural>``, ``/find/<your-id>``, ``external_id``, form fields,
JSON:API answers). The target, the mapping, the status mapper and the sandbox read
them from here only, so they can be corrected against the real API in this one
place. Each assumption is listed in the plugin's README ("Assumptions").

Its place in the plugin's shape: :mod:`.mapping` translates records into Bilendo's
payloads and back, as every plugin's ``mapping.py`` does; for the undocumented half
it takes every name from here. This module holds names and values only (and
:func:`raw_status`, which reads the assumed status attributes), no translation.
"""

from __future__ import annotations

import re
from typing import Any

# -- paths (relative to <base_url>/api/v2) -------------------------------------
INVOICES = "/invoices"
"""POST: create an invoice (form fields, multipart when a PDF is attached)."""
INVOICE = "/invoices/{id}"
"""GET: one invoice by Bilendo id (its ``status`` is read for status sync)."""
INVOICE_FIND = "/invoices/find/{external_id}"
"""GET: one invoice by our ``external_id`` (ledgerlink's source_ref); 404 when absent."""

FIND_MISS_STATUS = 404
"""A ``/find/<your-id>`` that finds nothing answers 404 (documented endpoints too:
the docs do not say what a miss returns)."""

# -- paging and limits of list endpoints ---------------------------------------
PAGE_NUMBER_PARAM = "page[number]"
PAGE_SIZE_PARAM = "page[size]"
PAGE_SIZE = 100
"""JSON:API style paging for ``GET /customers``: ``page[number]`` counts up while a
page is full or carries ``links.next`` (the link is taken to name the next page
number, as JSON:API ``page[number]`` links do; it is not fetched itself). If the API
ignores the parameters (one full list), the connector stops at the first page that
brings no new ids. The default of the ``page_size`` setting."""
REQUESTS_PER_SECOND = 5.0
"""No rate limit is published; a conservative client-side limit. The default of the
``requests_per_second`` setting."""

# -- invoice create: request fields ---------------------------------------------
F_EXTERNAL_ID = "external_id"  # our source_ref (the idempotency key)
F_INVOICE_NUMBER = "invoice_number"
F_INVOICE_DATE = "invoice_date"  # ISO date
F_DUE_DATE = "due_date"  # ISO date
F_CURRENCY = "currency"  # ISO 4217
F_AMOUNT = "amount"  # gross total, decimal string "119.00"
F_NET_AMOUNT = "net_amount"
F_TAX_AMOUNT = "tax_amount"
F_CUSTOMER_ID = "customer_id"  # Bilendo id of the debtor
F_CUSTOMER_EXTERNAL_ID = "customer_external_id"
F_DISPATCH = "dispatch"  # "automatic" | "manual"
F_LANGUAGE = "language"  # "de" | "en"
F_SHIPPING_MODE = "shipping_mode"  # documented values of the customer field
F_SENDER = "sender"  # sender[line1] ... sender[country_code], like an address
F_ITEMS = "invoice_items"  # invoice_items[0][description] ...
F_PDF = "file"  # multipart part with the invoice PDF
ITEM_FIELDS = ("description", "quantity", "unit_price", "net_amount", "tax_rate", "tax_amount", "amount")
SENDER_FIELDS = ("line1", "line2", "line3", "line4", "zip", "city", "country_code")
DISPATCH_VALUES = ("automatic", "manual")
LANGUAGE_VALUES = ("de", "en")

# -- invoice object: answer attributes ---------------------------------------------
INVOICE_TYPE = "invoice"  # JSON:API "type"
A_STATUS = "status"
A_REMINDER_STAGE = "reminder_stage"  # like the customer's documented current_reminder_stage
A_OPEN_AMOUNT = "open_amount"
A_PAID_AMOUNT = "paid_amount"
A_SENT_AT = "sent_at"
A_PAID_AT = "paid_at"

# -- invoice status values ---------------------------------------------------------
# Designed after the statuses the 1CRM help page shows (Entwurf, Versendet, Fällig,
# Bezahlt, "Reminder n versendet") and Bilendo's FAQ (dunning, collection).
STATUS_DRAFT = "draft"  # Entwurf: created, not dispatched (manual dispatch)
STATUS_OPEN = "open"  # Offen: in receivables management, dispatch outside Bilendo
STATUS_SENT = "sent"  # Versendet
STATUS_DUE = "due"  # Fällig: due today
STATUS_OVERDUE = "overdue"  # Überfällig: past due, no reminder yet
STATUS_REMINDER = "reminder_{n}"  # "Reminder n versendet": reminder n was sent
STATUS_PARTIALLY_PAID = "partially_paid"
STATUS_PAID = "paid"  # Bezahlt
STATUS_CANCELLED = "cancelled"  # Storniert
STATUS_COLLECTION = "collection"  # Inkasso: handed to a collection agency
STATUS_DELETED = "deleted"
"""Not a Bilendo value: what ``statuses()`` reports when the invoice's GET answers
404 (deleted in Bilendo). Kept as an unknown status, never dropped."""

REMINDER_RE = re.compile(r"^reminder[ _-]?(\d+)(?:[ _-]?sent)?$", re.IGNORECASE)


def reminder_status(level: int) -> str:
    return STATUS_REMINDER.format(n=level)


def raw_status(attributes: dict[str, Any]) -> str:
    """The raw status string of an invoice object.

    The value of ``status`` verbatim; if Bilendo turns out to report reminders as a
    bare ``"reminder"`` plus a stage attribute, the stage is appended
    (``reminder_2``) so the level is not lost."""
    status = attributes.get(A_STATUS)
    raw = "" if status is None else str(status)
    stage = attributes.get(A_REMINDER_STAGE)
    if raw.lower() in ("reminder", "reminder_sent", "dunning") and stage:
        return reminder_status(int(stage))
    return raw


# -- errors ------------------------------------------------------------------------
# The docs include an "errors" page that is not public. Assumed: JSON:API error
# objects, {"errors": [{"status": "422", "title": ..., "detail": ...,
# "source": {"pointer": "/data/attributes/<field>"}}]}, with the usual HTTP codes
# (401 bad token, 404 not found, 422 validation, 429 with Retry-After, 5xx).
ERRORS_KEY = "errors"
