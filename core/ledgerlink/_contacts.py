"""Customers to contacts, for one pipeline: match, create, link, write the number back.

The step between filter and plan. A customer already linked reuses its contact;
otherwise the pipeline's matcher chain looks for exactly one contact (several are
ambiguous and never guessed); no match creates one when the pipeline allows it.
A creation follows the crash-safety protocol: the link is committed ``pending``
with the key the target stores, then the target is called, then the link is
committed ``linked``; an unknown outcome is settled with ``find_contact(key)``.
The target's customer number is written back to the source where it can store it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._config import PipelineConfig
from ._connectors import Source, Target
from ._errors import (
    ConnectionError_,
    DocumentError,
    LedgerlinkError,
    NotSupported,
    OutcomeUnknown,
    TransientError,
)
from ._http import redact
from ._ledger import CustomerLink
from ._records import Contact, Customer
from ._runtime import Runtime
from ._states import LinkState, WritebackState

WOULD_CREATE = "(would be created)"
"""The target id of the contact a dry run's plan carries where one would be created."""


class Contacts:
    """The contact decisions of one pipeline runner."""

    def __init__(self, runtime: Runtime, pipeline: PipelineConfig, source: Source, target: Target,
                 audit: Any, *, trouble: Callable[[TransientError], None] = lambda error: None,
                 count: Callable[..., None] = lambda *args, **kwargs: None) -> None:
        self.rt = runtime
        self.pipeline = pipeline
        self.ledger = runtime.ledger
        self.source = source
        self.target = target
        self._audit = audit
        self._trouble = trouble
        self._count = count
        """The run's circuit breaker: told of a member whose contact failed for the vendor's
        reasons, and counting after each member (raises when the vendor is down)."""
        """``audit(action, source_ref, target_ref, payload, outcome) -> AuditRow`` of the runner."""

    def resolve(self, customer: Customer, *, dry_run: bool) -> tuple[Contact | None, str]:
        """The customer's contact (or None) and the decision in words, for the plan and the ledger."""
        target_conn, source_conn = self.pipeline.target, self.pipeline.links_scope
        with self.rt.target_lock(target_conn):
            linked = self.ledger.linked_contact(target_conn, source_conn, customer.source_id)
            if linked is not None:
                contact_id, number, matched_by = linked
                return (Contact(target_id=contact_id, customer_number=number),
                        f"contact {number or contact_id} (linked by {matched_by})")
            link = self.ledger.link(target_conn, source_conn, customer.source_id)
            index = self.rt.contact_index(target_conn, self.pipeline.matchers, self.target)
            match = index.match(customer)
            if match is not None and match.unique is not None:
                contact = match.unique
                if not dry_run:
                    link = self.ledger.mark_linked(link, target_conn, source_conn, customer.source_id, contact,
                                                   match.matcher)
                    self.write_back(link, customer)
                return contact, f"contact {contact.customer_number or contact.target_id} (matched by {match.matcher})"
            if match is not None and match.ambiguous:
                names = ", ".join(f"{c.customer_number or c.target_id} {c.display_name}" for c in match.candidates)
                return None, f"ambiguous by {match.matcher}: {names}; left unlinked for a person to decide"
            if not self.pipeline.create_contacts:
                return None, "no matching contact; contact creation is off"
            if dry_run:
                # The plan a target checks is the one it would get: with the contact that
                # would be created (no id yet), so a dry run does not quarantine for want of it.
                return Contact(target_id=WOULD_CREATE, first_name=customer.first_name, last_name=customer.last_name,
                               company=customer.company, email=customer.email), \
                    f"contact would be created for {customer.display_name}"
            return self._create(customer, link)

    def _create(self, customer: Customer, link: CustomerLink | None) -> tuple[Contact | None, str]:
        key = f"{self.pipeline.links_scope}:{customer.source_id}"
        link = self.ledger.mark_link_pending(link, self.pipeline.target, self.pipeline.links_scope, customer.source_id,
                                             key)
        self.rt.checkpoint("after_contact_pending")
        try:
            contact = self.target.create_contact(customer, key)
        except OutcomeUnknown:
            found = self.target.find_contact(key)
            if found is None:
                self.ledger.delete_link(link)
                raise
            contact = found
        except (DocumentError, TransientError):
            self.ledger.delete_link(link)
            raise
        self.rt.checkpoint("after_contact_create")
        self._complete(link, contact, "created")
        return contact, f"contact {contact.customer_number or contact.target_id} (created)"

    def _complete(self, link: CustomerLink, contact: Contact, how: str) -> None:
        writes_back = self.source.supports_write_customer_number and bool(contact.customer_number)
        link = self.ledger.mark_linked(
            link, link.target_connection, link.source_connection, link.source_customer_id, contact, how,
            keep_matched_by=True, writeback=WritebackState.PENDING.value if writes_back else None,
            audit=self._audit("create_contact", None, contact.target_id, {"key": link.key}, f"ok ({how})"),
        )
        self.rt.add_contact(self.pipeline.target, contact)
        self.write_back(link, Customer(source_id=link.source_customer_id))

    def write_back(self, link: CustomerLink, customer: Customer) -> None:
        """Store the target's customer number on the source customer (retried each run on failure)."""
        if not self.source.supports_write_customer_number or not link.target_customer_number:
            return
        if customer.customer_number == link.target_customer_number or link.writeback == WritebackState.DONE:
            return
        try:
            self.source.write_customer_number(customer, link.target_customer_number)
            link.writeback = WritebackState.DONE.value
        except (LedgerlinkError, ConnectionError_) as exc:
            link.writeback = f"error: {redact(str(exc))}"
            self.rt.reporter.message(
                f"could not write customer number {link.target_customer_number} back to "
                f"{customer.source_id}: {redact(str(exc))} (will retry)"
            )
        self.ledger.save_link(link)

    # -- at the start of a run ---------------------------------------------------------
    def settle(self) -> None:
        """Settle contact creations a crash left ``pending``: adopt what the target has, else forget."""
        for link in self.ledger.links(self.pipeline.target, state=LinkState.PENDING):
            if link.source_connection != self.pipeline.links_scope or not link.key:
                continue
            contact = self.target.find_contact(link.key)
            if contact is None:
                self.ledger.delete_link(link)
            else:
                self._complete(link, contact, "created (settled after an interruption)")

    def retry_write_backs(self) -> None:
        if not self.source.supports_write_customer_number:
            return
        for link in self.ledger.links(self.pipeline.target):
            if (link.source_connection == self.pipeline.links_scope and link.state == LinkState.LINKED
                    and link.writeback and link.writeback != WritebackState.DONE and link.target_customer_number):
                self.write_back(link, Customer(source_id=link.source_customer_id))

    def sync_members(self) -> int:
        """Create (or link) contacts for source customers without waiting for a document;
        returns how many were created."""
        try:
            customers = list(self.source.customers())
        except NotSupported:
            return 0
        created = 0
        for customer in customers:
            link = self.ledger.link(self.pipeline.target, self.pipeline.links_scope, customer.source_id)
            if link is not None and link.state == LinkState.LINKED:
                continue
            try:
                contact, decision = self.resolve(customer, dry_run=False)
            except (DocumentError, TransientError) as exc:
                self.rt.reporter.message(f"member {customer.display_name}: contact not created: {exc}")
                if isinstance(exc, TransientError):
                    self._trouble(exc)
                self._count()
                continue
            if contact is not None and "created" in decision:
                created += 1
            self.rt.reporter.message(f"member {customer.display_name}: {decision}")
            self._count(answered=True)
        return created


__all__ = ["Contacts"]
