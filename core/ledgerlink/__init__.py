"""ledgerlink: connect the systems where sales happen to the systems where money is booked.

The public API for plugin authors and host applications. Everything a plugin may
import is exported here (and in ``ledgerlink.testing`` for tests); other modules
are the implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._connectors import (  # noqa: E402
    BrokenDocument,
    ConnectorContext,
    Demo,
    MappedStatus,
    Matcher,
    MatchResult,
    Plan,
    PlannedLine,
    Settings,
    Source,
    SourceItem,
    Status,
    StatusMapper,
    Target,
    WebhookResource,
    WebhookSource,
)
from ._errors import (  # noqa: E402
    ConfigError,
    ConnectionError_,
    DocumentError,
    LedgerlinkError,
    NotSupported,
    OutcomeUnknown,
    QuarantineError,
    TransientError,
    VendorRejected,
)
from ._hookspecs import hookimpl  # noqa: E402
from ._http import (  # noqa: E402
    BasicAuth,
    BearerToken,
    HeaderToken,
    HttpClient,
    RateBudget,
    RateLimit,
    default_error_message,
    key_id,
    redact,
)
from ._paging import Cursor, NextLink, Offset, Page, PageNumber, Pagination  # noqa: E402
from ._records import (  # noqa: E402
    REVERSAL_SUFFIX,
    Address,
    Contact,
    Customer,
    Dispatch,
    Document,
    DocumentKind,
    Line,
    LineKind,
    Payment,
    TargetRef,
    TaxRegion,
    TaxTreatment,
    money,
    parse_decimal,
)
from ._states import DocumentState, LinkState, OutcomeState, PaymentState, WritebackState  # noqa: E402
from ._version import __version__

if TYPE_CHECKING:  # imported on first use, by __getattr__ below
    from ._demo import DemoStory
    from ._sandbox import SANDBOX_PREFIX, Faults, OpenAPIValidator, Sandbox, SandboxServer


def __getattr__(name: str) -> object:
    # The sandbox kit pulls in starlette; load it only when asked (fast start-up).
    if name in ("Faults", "OpenAPIValidator", "Sandbox", "SandboxServer", "SANDBOX_PREFIX"):
        from . import _sandbox

        return getattr(_sandbox, name)
    if name == "DemoStory":
        from . import _demo

        return _demo.DemoStory
    raise AttributeError(f"module 'ledgerlink' has no attribute {name!r}")

__all__ = [
    "RateBudget",
    "Pagination",
    "PageNumber",
    "Page",
    "Offset",
    "NextLink",
    "HeaderToken",
    "Cursor",
    "BearerToken",
    "BasicAuth",
    "REVERSAL_SUFFIX",
    "SANDBOX_PREFIX",
    "Address",
    "BrokenDocument",
    "Demo",
    "DemoStory",
    "DocumentState",
    "LinkState",
    "OutcomeState",
    "PaymentState",
    "SourceItem",
    "WebhookResource",
    "WebhookSource",
    "WritebackState",
    "default_error_message",
    "ConfigError",
    "ConnectionError_",
    "ConnectorContext",
    "Contact",
    "Customer",
    "Dispatch",
    "Document",
    "DocumentError",
    "DocumentKind",
    "Faults",
    "HttpClient",
    "LedgerlinkError",
    "Line",
    "LineKind",
    "MappedStatus",
    "MatchResult",
    "Matcher",
    "NotSupported",
    "OpenAPIValidator",
    "OutcomeUnknown",
    "Payment",
    "Plan",
    "PlannedLine",
    "QuarantineError",
    "RateLimit",
    "Sandbox",
    "SandboxServer",
    "Settings",
    "Source",
    "Status",
    "StatusMapper",
    "Target",
    "TargetRef",
    "TaxRegion",
    "TaxTreatment",
    "TransientError",
    "VendorRejected",
    "__version__",
    "hookimpl",
    "key_id",
    "money",
    "parse_decimal",
    "redact",
]
