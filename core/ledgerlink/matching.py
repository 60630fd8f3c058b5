"""Customer matching: built-in matchers and the matching pass.

Matchers turn contacts and customers into normalised keys; the contacts are
indexed once per key, so each customer is looked up in constant time.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from .connectors import Matcher, MatchResult
from .plugins import hookimpl
from .records import Contact, Customer

_SPACE = re.compile(r"\s+")
_TITLES = re.compile(r"\b(dr|prof|dipl|ing|med|rer|nat|phil|jur|mag|msc|bsc|mba)\.?(?=\s|$)")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa"})


def normalise_text(value: str | None) -> str:
    if not value:
        return ""
    text = unicodedata.normalize("NFKC", value).casefold()
    text = text.translate(_UMLAUTS)
    text = _SPACE.sub(" ", text).strip()
    return text


def normalise_name(value: str | None) -> str:
    text = normalise_text(value)
    if "," in text:
        last, _, first = text.partition(",")
        text = f"{first.strip()} {last.strip()}"
    text = _TITLES.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def person_key(first: str | None, last: str | None) -> str:
    if not (first or last):
        return ""
    if not first and last and "," in last:
        return normalise_name(last)
    return normalise_name(f"{first or ''} {last or ''}")


class CustomerNumberMatcher(Matcher):
    name = "customer_number"

    def keys_for_contact(self, contact: Contact) -> Iterable[str]:
        if contact.customer_number and contact.customer_number.strip():
            yield contact.customer_number.strip().casefold()

    def keys_for_customer(self, customer: Customer) -> Iterable[str]:
        if customer.customer_number and customer.customer_number.strip():
            yield customer.customer_number.strip().casefold()


class EmailMatcher(Matcher):
    name = "email"

    def keys_for_contact(self, contact: Contact) -> Iterable[str]:
        if contact.email and "@" in contact.email:
            yield contact.email.strip().casefold()

    def keys_for_customer(self, customer: Customer) -> Iterable[str]:
        if customer.email and "@" in customer.email:
            yield customer.email.strip().casefold()


class NameMatcher(Matcher):
    name = "name"

    def keys_for_contact(self, contact: Contact) -> Iterable[str]:
        if contact.company:
            yield "c:" + normalise_name(contact.company)
        key = person_key(contact.first_name, contact.last_name)
        if key:
            yield "p:" + key

    def keys_for_customer(self, customer: Customer) -> Iterable[str]:
        if customer.is_company:
            yield "c:" + normalise_name(customer.company)
            return
        key = person_key(customer.first_name, customer.last_name)
        if key:
            yield "p:" + key


class ContactIndex:
    """Contacts indexed by every matcher's keys."""

    def __init__(self, matchers: Sequence[Matcher], contacts: Iterable[Contact]) -> None:
        self.matchers = list(matchers)
        self.by_id: dict[str, Contact] = {}
        self.index: dict[str, dict[str, list[Contact]]] = {m.name: defaultdict(list) for m in self.matchers}
        for contact in contacts:
            self.add(contact)

    def add(self, contact: Contact) -> None:
        if contact.target_id in self.by_id:
            return
        self.by_id[contact.target_id] = contact
        for matcher in self.matchers:
            for key in set(matcher.keys_for_contact(contact)):
                self.index[matcher.name][key].append(contact)

    def match(self, customer: Customer) -> MatchResult | None:
        """The first matcher with exactly one candidate wins; several is ambiguous."""
        for matcher in self.matchers:
            found: dict[str, Contact] = {}
            for key in matcher.keys_for_customer(customer):
                for contact in self.index[matcher.name].get(key, ()):
                    found[contact.target_id] = contact
            if len(found) == 1:
                return MatchResult(matcher.name, list(found.values()))
            if len(found) > 1:
                return MatchResult(matcher.name, sorted(found.values(), key=lambda c: c.target_id))
        return None


@hookimpl
def ledgerlink_register_matchers(register: Callable[..., None]) -> None:
    register("customer_number", CustomerNumberMatcher)
    register("email", EmailMatcher)
    register("name", NameMatcher)
