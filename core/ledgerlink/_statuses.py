"""Built-in status mappers, registered through ``ledgerlink_register_status_mappers``.

``identity`` understands the canonical names themselves (``paid``, ``reminder 2``)
and is used for targets that already report canonical statuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._connectors import MappedStatus, Status, StatusMapper
from ._hookspecs import hookimpl

_REMINDER = re.compile(r"^reminder[ _-]?(\d+)$")


class IdentityMapper(StatusMapper):
    name = "identity"

    def to_canonical(self, raw: str) -> MappedStatus:
        text = raw.strip().lower()
        match = _REMINDER.match(text)
        if match:
            return MappedStatus(Status.REMINDER, raw, int(match.group(1)))
        try:
            return MappedStatus(Status(text), raw)
        except ValueError:
            return MappedStatus(Status.UNKNOWN, raw)

    def from_canonical(self, status: MappedStatus) -> str:
        if status.status == Status.UNKNOWN:
            return status.raw
        return status.label()


@hookimpl
def ledgerlink_register_status_mappers(register: Callable[..., None]) -> None:
    register("identity", IdentityMapper)
