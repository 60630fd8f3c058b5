"""The error tree, drawn by what the caller should do.

    LedgerlinkError
    ├── ConfigError             the operator must fix the config; exit code 2
    ├── ConnectionError_        a connection cannot be used (bad token, missing scope);
    │                           stops the pipeline that uses it, with a clear line
    ├── DocumentError           this document failed; the others go on (state `failed`)
    │   ├── QuarantineError     this document needs a person (state `quarantined`):
    │   │                       amounts that do not add up, an unmapped account, ...
    │   └── VendorRejected      the vendor refused the write (other 4xx) with its message
    ├── TransientError          retry later with backoff (429, 5xx, timeouts before send)
    │   └── OutcomeUnknown      a write was sent and its answer lost: never re-sent
    │                           blindly, settled with the target's find_document
    └── NotSupported            the connector does not offer this optional feature

Every message is one line a bookkeeper can act on and never contains a secret
(the HTTP layer redacts them before an error is built).
"""

from __future__ import annotations


class LedgerlinkError(Exception):
    """Base of every error ledgerlink raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(LedgerlinkError):
    """The configuration is wrong. ``location`` is "file: key.path" when known."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.detail = message


class ConnectionError_(LedgerlinkError):
    """A connection cannot be used at all (401/403, wrong account, missing scope)."""

    def __init__(self, message: str, *, connection: str | None = None) -> None:
        super().__init__(message)
        self.connection = connection


class DocumentError(LedgerlinkError):
    """One document cannot be transferred; recorded as `failed`."""


class QuarantineError(DocumentError):
    """One document needs a person's decision; recorded as `quarantined`."""


class VendorRejected(DocumentError):
    """The vendor refused a write with a 4xx other than 401/403/408/429."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TransientError(LedgerlinkError):
    """Worth retrying later: rate limited, server error, connection failed before sending.

    ``vendor_down``: whether the vendor itself is in trouble (could not connect, server
    errors or timeouts past the retry budget), which is the same for every document, so
    the run's circuit breaker counts it. False: the vendor answered and the reason is
    this document's own for now (an invoice still a draft, a record not found again
    yet); the breaker leaves it alone. None (not said): counted, as the HTTP client's
    errors are."""

    def __init__(self, message: str, *, retry_after: float | None = None, vendor_down: bool | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.vendor_down = vendor_down


class OutcomeUnknown(TransientError):
    """A write was sent but its answer was lost (timeout, dropped connection, 5xx).

    The caller must not send it again before asking the target whether it
    arrived (``Target.find_document`` for documents).

    ``in_flight``: the vendor may still be working on it (a timeout, a dropped
    connection, a gateway's 502/504): the engine asks only after a settle delay. False:
    the vendor answered, if unreadably, so it has finished; it may be asked at once.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, in_flight: bool = False,
                 vendor_down: bool | None = None) -> None:
        super().__init__(message, retry_after=retry_after, vendor_down=vendor_down)
        self.in_flight = in_flight


class NotSupported(LedgerlinkError):
    """An optional connector feature that this connector does not offer."""


__all__ = [
    "ConfigError",
    "ConnectionError_",
    "DocumentError",
    "LedgerlinkError",
    "NotSupported",
    "OutcomeUnknown",
    "QuarantineError",
    "TransientError",
    "VendorRejected",
]
