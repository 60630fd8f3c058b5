"""What counts as a document's content, and how a change after transfer is told.

The ledger keeps a hash of every document's content (``fingerprint``). A document
that comes back from the source with another hash after it was pushed is never
written again silently: the runner records "changed after transfer" with what
changed (``describe_changes``), for a person to decide. Payments, the source's
status word, the cursor, the dispatch choices and plugin-private ``extra`` data are
not content.
"""

from __future__ import annotations

from typing import Any

from ._records import Document

# ``dispatch`` (send or draft, channel, language, sender) is how the document travels,
# not what it says: a choice changed after transfer is no change of the document (and
# ledgers written before the field existed keep their hashes).
NOT_CONTENT = {"payments", "source_status", "extra", "payment_date", "cursor", "skip_reason", "dispatch"}


def fingerprint(document: Document) -> dict[str, Any]:
    """What counts as the document's content for 'changed after transfer'."""
    data = document.model_dump(mode="json", exclude=NOT_CONTENT)
    data["total_gross"] = str(document.total_gross)
    return data


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The differences between two fingerprints, in a bookkeeper's words."""
    changes = []
    old_total = old.get("total_gross")
    new_total = new.get("total_gross")
    if old_total != new_total:
        changes.append(f"total {old_total} -> {new_total}")
    for key in sorted(set(old) | set(new)):
        if key in ("lines", "customer", "cancelled", "total_gross"):
            continue
        if old.get(key) != new.get(key):
            changes.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    if old.get("lines") != new.get("lines") and old_total == new_total:
        changes.append("lines changed")
    if old.get("customer") != new.get("customer"):
        changes.append("customer changed")
    if new.get("cancelled") and not old.get("cancelled"):
        changes.append("cancelled in the source")
    return "; ".join(changes) or "content changed"


__all__ = ["NOT_CONTENT", "describe_changes", "fingerprint"]
