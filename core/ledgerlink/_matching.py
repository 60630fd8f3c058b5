"""Customer matching: built-in matchers and the matching pass.

A matcher turns target contacts and source customers into normalised keys.
:class:`ContactIndex` computes every contact's keys once and files the contact
under them (a dict per matcher), so each customer is a constant-time look-up
and matching 20,000 customers against 20,000 contacts is linear, never
quadratic.

The chain
---------
A pipeline names its matchers in order (e.g. ``["customer_number", "email",
"name"]``). :meth:`ContactIndex.match` asks them in that order:

* the first matcher that finds exactly one contact wins;
* a matcher that finds several contacts ends the chain with an *ambiguous*
  result listing all of them (sorted by target id). Nothing is guessed: not the
  first candidate, and not a later matcher's answer that might contradict it;
* a matcher that finds nothing hands over to the next one; ``None`` means no
  matcher found anything.

Built-in matchers
-----------------
``customer_number``
    The target's customer number stored on the source customer, compared with
    surrounding white space removed and case folded (``" k-10023 "`` =
    ``"K-10023"``). No other change: leading zeros and inner characters count.
``email``
    Trimmed (including no-break and zero-width spaces) and case folded. A field
    holding several addresses separated by ``,`` or ``;`` gives one key each.
    Values without ``@`` are ignored.
``name``
    Persons by first + last name, companies by company name. Keys carry a
    ``p:`` or ``c:`` prefix so a person never matches a company: the private
    customer "Anna Schmidt" matches neither the company "Anna Schmidt GmbH" nor
    a company whose contact person is Anna Schmidt, nor a sole trader whose
    company field reads "Anna Schmidt". A customer or contact with a non-empty
    company field is a company; otherwise a person.

Name normalisation (both persons and companies)
-----------------------------------------------
1. Unicode NFKC (full-width letters, ligatures, no-break spaces; decomposed
   ``u`` + combining diaeresis becomes ``ü``), then case folding (``MÜLLER`` =
   ``müller``, capital ``ẞ`` = ``ss``); invisible format characters (zero-width
   space, soft hyphen, BOM) are removed; typographic apostrophes become ``'``.
2. German and Danish letters are spelt out: ``ä ö ü ß`` -> ``ae oe ue ss`` and
   ``æ ø å`` -> ``ae oe aa`` (also ``œ`` -> ``oe``), so Müller = Mueller and
   Straße = Strasse, Søren = Soeren, Åse = Aase. Spelled-out forms are left as
   they are (``Samuel`` stays ``samuel``); ``Muller`` (umlaut dropped) is *not*
   Müller.
3. Other accents are dropped (René = Rene, Lefèvre = Lefevre), since source
   systems often lose them.
4. Hyphens count as spaces (Hans-Peter = Hans Peter), white space is collapsed
   and trimmed.

Persons only:

5. Academic titles are removed wherever they stand: ``Dr`` and ``Prof`` with or
   without a dot, and, only when written with a dot (so the first name "Phil"
   survives), the qualifiers ``med. dent. vet. rer. nat. phil. jur. oec. pol.
   soc. habil. Dipl. Ing. Kfm. Mag. univ. mult.`` and ``h.c.``: "Prof. Dr. med. Hans
   Müller" = "Dr.-Ing. Hans Müller" = "Hans Müller".
6. "Last, First" order is turned round: "Müller, Hans" (in one field, or in the
   last-name field with the first-name field empty) = "Hans Müller"; a title
   after the comma goes too ("Müller, Dr. Hans"). Otherwise word order counts:
   "Martin Paul" is not "Paul Martin".
7. A trailing dot of an initial is dropped ("J. Müller" = "J Müller").

Companies only (no title removal, no reordering: "Dr. Oetker" is not
"Oetker", and a comma is just removed):

8. Dots, commas and brackets are removed, ``und``/``and``/``+`` become ``&``.
9. **Legal forms are kept, in one canonical spelling.** G.m.b.H. /
   "Gesellschaft mit beschränkter Haftung" -> gmbh, Aktiengesellschaft -> ag,
   Kommanditgesellschaft -> kg, "GmbH u. Co. KG" -> "gmbh & co kg", e.K. -> ek,
   e.V. -> ev, Aktieselskab / "A / S" -> a/s, Anpartsselskab / "Ap/S" -> aps,
   Limited -> ltd, Incorporated -> inc. They are *not* ignored: "Müller GmbH",
   "Müller AG" and the sole trader "Müller" are different legal persons with
   their own VAT ids and debts, as are "Hansen ApS" and "Hansen A/S". Booking an
   invoice on the wrong debtor is silent and costly; a missing legal form in
   the source leads to no match (a new contact or a review), which is visible.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from ._connectors import Matcher, MatchResult
from ._hookspecs import hookimpl
from ._records import Contact, Customer

_SPACE = re.compile(r"\s+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})
_LETTERS = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
        "æ": "ae",
        "ø": "oe",
        "å": "aa",
        "œ": "oe",
        "ł": "l",
        "đ": "d",
        "ı": "i",
    }
)
_HYPHENS = re.compile(r"[\-\u2010\u2011\u2012\u2013\u2014\u2212]")

# Titles (persons). "dr" and "prof" go with or without a dot; the qualifiers
# only with one, because some are also first names (Phil, Mag).
_HONORIS_CAUSA = re.compile(r"\bh\s*\.\s*c\s*\.")
_TITLES = {"dr", "dr.", "prof", "prof.", "dres."}
_DOTTED_TITLES = {
    f"{word}."
    for word in (
        "med",
        "dent",
        "vet",
        "rer",
        "nat",
        "phil",
        "jur",
        "oec",
        "pol",
        "soc",
        "habil",
        "dipl",
        "ing",
        "kfm",
        "mag",
        "univ",
        "mult",
    )
}

# Legal forms (companies): canonical spellings, applied after the common steps
# (lower case, umlauts spelt out), before dots are removed.
_LEGAL_FORMS = [
    (re.compile(r"\bgesellschaft mit beschraenkter haftung\b"), " gmbh "),
    (re.compile(r"\bg\s*\.\s*m\s*\.\s*b\s*\.\s*h\b\.?"), " gmbh "),
    (re.compile(r"\baktiengesellschaft\b"), " ag "),
    (re.compile(r"\bkommanditgesellschaft\b"), " kg "),
    (re.compile(r"\boffene handelsgesellschaft\b"), " ohg "),
    (re.compile(r"\beingetragener kaufmann\b|\be\s*\.\s*k(?:fm)?\b\.?"), " ek "),
    (re.compile(r"\beingetragener verein\b|\be\s*\.\s*v\b\.?"), " ev "),
    (re.compile(r"\baktieselskab\b"), " a/s "),
    (re.compile(r"\banpartsselskab\b|\bap\s*/\s*s\b"), " aps "),
    (re.compile(r"\b([aikp])\s*/\s*s\b"), r" \1/s "),
    (re.compile(r"\blimited\b"), " ltd "),
    (re.compile(r"\bincorporated\b"), " inc "),
    (re.compile(r"(?:\bund\b|\bu\s*\.|\+|&)\s*co\b\.?"), " & co "),
]
_AND = re.compile(r"\b(?:und|and)\b|\+")
_COMPANY_PUNCTUATION = re.compile(r"[.,;:()\[\]\"]")
_EMAIL_SPLIT = re.compile(r"[,;\s]+")


def normalise_text(value: str | None) -> str:
    """The steps shared by persons and companies (rules 1-4 of the module doc)."""
    if not value:
        return ""
    text = unicodedata.normalize("NFKC", value.translate(_APOSTROPHES)).casefold()
    text = text.translate(_LETTERS)
    if not text.isascii():
        # drop remaining accents and invisible format characters
        text = "".join(
            ch
            for ch in unicodedata.normalize("NFKD", text)
            if unicodedata.category(ch) not in ("Mn", "Cf")
        )
    text = _HYPHENS.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def _strip_titles(text: str) -> str:
    text = _HONORIS_CAUSA.sub(" ", text)
    # "dr.med." -> "dr. med." so each part is a token
    text = text.replace(".", ". ")
    words = [w for w in text.split() if w not in _TITLES and w not in _DOTTED_TITLES]
    return " ".join(w.rstrip(".") for w in words if w.rstrip("."))


@lru_cache(maxsize=4096)
def normalise_name(value: str | None) -> str:
    """A person's name in one field ("Dr. Hans Müller", "Müller, Hans") as a key."""
    text = normalise_text(value)
    if "," in text:
        last, *rest = (part.strip() for part in text.split(","))
        text = " ".join([*rest, last])
    return _strip_titles(text)


@lru_cache(maxsize=4096)
def normalise_company(value: str | None) -> str:
    """A company name as a key: legal forms in one spelling, never removed."""
    text = normalise_text(value)
    for pattern, replacement in _LEGAL_FORMS:
        text = pattern.sub(replacement, text)
    text = _AND.sub(" & ", text)
    text = _COMPANY_PUNCTUATION.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def person_key(first: str | None, last: str | None) -> str:
    """First + last name as one key; "Last, First" in the last-name field is understood."""
    first = first.strip() if first else ""
    last = last.strip() if last else ""
    if not first:
        return normalise_name(last)
    if "," in last:
        last = last.replace(",", " ")
    return normalise_name(f"{first} {last}")


def _is_company(company: str | None) -> bool:
    return bool(company and company.strip())


def _simple_key(value: str | None) -> str:
    if not value:
        return ""
    return value.replace("\u200b", "").replace("\ufeff", "").strip().casefold()


def _emails(value: str | None) -> Iterator[str]:
    if not value:
        return
    for part in _EMAIL_SPLIT.split(_simple_key(value)):
        part = part.strip("<>")
        if "@" in part.strip("@"):
            yield part


class CustomerNumberMatcher(Matcher):
    """The target's customer number stored on the source customer."""

    name = "customer_number"

    def keys_for_contact(self, contact: Contact) -> Iterable[str]:
        key = _simple_key(contact.customer_number)
        return (key,) if key else ()

    def keys_for_customer(self, customer: Customer) -> Iterable[str]:
        key = _simple_key(customer.customer_number)
        return (key,) if key else ()


class EmailMatcher(Matcher):
    """E-mail address, trimmed and case-insensitive."""

    name = "email"

    def keys_for_contact(self, contact: Contact) -> Iterable[str]:
        return _emails(contact.email)

    def keys_for_customer(self, customer: Customer) -> Iterable[str]:
        return _emails(customer.email)


class NameMatcher(Matcher):
    """Company name for companies, first + last name for persons (never mixed)."""

    name = "name"

    @staticmethod
    def _key(company: str | None, first: str | None, last: str | None) -> str:
        if _is_company(company):
            key = normalise_company(company)
            return "c:" + key if key else ""
        key = person_key(first, last)
        return "p:" + key if key else ""

    def keys_for_contact(self, contact: Contact) -> Iterable[str]:
        key = self._key(contact.company, contact.first_name, contact.last_name)
        return (key,) if key else ()

    def keys_for_customer(self, customer: Customer) -> Iterable[str]:
        key = self._key(customer.company, customer.first_name, customer.last_name)
        return (key,) if key else ()


_SEP = "\x1f"
"""Between the fields of a contact the index keeps as one string (a unit separator, which
no name, number or address holds)."""


class ContactIndex:
    """Contacts indexed by every matcher's keys, holding only what a match returns.

    Each contact's keys are computed once, when it is added; a contact whose
    ``target_id`` is already indexed is ignored. A run adds every contact it
    creates, so the index grows with the target's contacts: per contact it keeps
    its keys (each filed under the target id, a tuple of ids only where a key is
    shared) and one string of the contact's own fields (its ``extra`` only when it has
    one), never the record object. A match rebuilds the :class:`Contact` it returns.
    """

    def __init__(self, matchers: Sequence[Matcher], contacts: Iterable[Contact]) -> None:
        self.matchers = list(matchers)
        self._contacts: dict[str, str] = {}
        self._extra: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, dict[str, str | tuple[str, ...]]] = {m.name: {} for m in self.matchers}
        for contact in contacts:
            self.add(contact)

    def __len__(self) -> int:
        return len(self._contacts)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._contacts

    def add(self, contact: Contact) -> None:
        target_id = contact.target_id
        if target_id in self._contacts:
            return
        fields = (contact.customer_number, contact.first_name, contact.last_name, contact.company, contact.email)
        self._contacts[target_id] = _SEP.join((value or "").replace(_SEP, " ") for value in fields)
        if contact.extra:
            self._extra[target_id] = dict(contact.extra)
        for matcher in self.matchers:
            bucket = self._keys[matcher.name]
            for key in set(matcher.keys_for_contact(contact)):
                held = bucket.get(key)
                if held is None:
                    bucket[key] = target_id
                elif isinstance(held, str):
                    bucket[key] = (held, target_id)
                else:
                    bucket[key] = (*held, target_id)

    def contact(self, target_id: str) -> Contact:
        """The indexed contact with this id (KeyError when it is not indexed)."""
        number, first, last, company, email = (value or None for value in self._contacts[target_id].split(_SEP))
        return Contact(target_id=target_id, customer_number=number, first_name=first, last_name=last,
                       company=company, email=email, extra=dict(self._extra.get(target_id, {})))

    def match(self, customer: Customer) -> MatchResult | None:
        """The first matcher with exactly one candidate wins; several is ambiguous.

        An ambiguous result lists every candidate (sorted by target id) and ends
        the chain; ``None`` when no matcher found a candidate.
        """
        for matcher in self.matchers:
            bucket = self._keys[matcher.name]
            found: set[str] = set()
            for key in matcher.keys_for_customer(customer):
                held = bucket.get(key)
                if isinstance(held, str):
                    found.add(held)
                elif held:
                    found.update(held)
            if found:
                return MatchResult(matcher.name, [self.contact(target_id) for target_id in sorted(found)])
        return None




@hookimpl
def ledgerlink_register_matchers(register: Callable[..., None]) -> None:
    register("customer_number", CustomerNumberMatcher)
    register("email", EmailMatcher)
    register("name", NameMatcher)
