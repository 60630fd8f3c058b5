"""Benchmark: match 20,000 source customers against 20,000 target contacts.

Run with ``.venv/bin/python bench/bench_matching.py`` (``--customers N``,
``--contacts N``, ``--seed N`` to vary). The data is generated deterministically
from a seeded random: German and Danish persons and companies, some written back
with the target's customer number, some found by e-mail (in other case, with
stray spaces), some only by name in another spelling (Mueller/Müller,
"Last, First", academic titles, decomposed umlauts, Danish ae/oe/aa), duplicate
contacts in the target (ambiguous), and new customers the target does not know.

Timed: building the index over all contacts and matching every customer with the
chain ["customer_number", "email", "name"] (name caches cleared first). Goal:
under 2 s. The planted answers are checked too: a known customer must come back
as its own contact (or as ambiguous between it and its duplicate), never as a
stranger.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import unicodedata
from collections import Counter

from ledgerlink._matching import (
    ContactIndex,
    CustomerNumberMatcher,
    EmailMatcher,
    NameMatcher,
    normalise_company,
    normalise_name,
)
from ledgerlink._records import Contact, Customer

GOAL_SECONDS = 2.0

DE_FIRST = (
    "Hans Jürgen Jörg Günther Björn Sören Uwe Klaus Peter Thomas Michael Andreas Stefan Frank "
    "Markus Matthias Wolfgang Dieter Horst Bernd Ralf Sven Jens Lars Tobias Florian Lukas Jonas "
    "Felix Maximilian Sebastian Christian Alexander Martin Karl Friedrich Heinz Helmut Rüdiger "
    "Anna Käthe Jürgen Lena Sophie Marie Hannah Lea Emma Mia Laura Julia Sarah Katharina Claudia "
    "Sabine Petra Monika Ursula Gisela Brigitte Renate Ingrid Bärbel Dörte Jutta Heike Anke Silke "
    "Susanne Stefanie Nicole Sandra Andrea Birgit Gabriele Christa Elfriede Hildegard Grete Änne "
    "Ömer Özlem Zoë René Chloé"
).split()
DE_LAST = (
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch "
    "Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann "
    "Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König "
    "Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel "
    "Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht "
    "Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto "
    "Sommer Groß Seidel Heinrich Brandt Haas Schreiber Graf Schulte Dietrich Ziegler Kuhn Kühn "
    "Pohl Engel Horn Busch Bergmann Thomas Voigt Sauer Arnold Wolff Pfeiffer Größer Lübke Jürgens "
    "Mößner Strauß Fröhlich Büttner Döring Gärtner Blümel Nöthe Rößler Süß Weißmann"
).split()
DK_FIRST = (
    "Søren Jørgen Mads Frederik Rasmus Anders Niels Henrik Kasper Mikkel Jens Poul Bjørn Ole "
    "Torben Morten Jesper Christian Mette Åse Lærke Sørine Maja Ida Freja Karen Kirsten Hanne "
    "Birgitte Dorthe Signe Astrid Helle Bodil Gitte Tove Ærtebølle Ditte Sofie Cecilie Nanna"
).split()
DK_LAST = (
    "Jørgensen Sørensen Nielsen Hansen Andersen Pedersen Møller Kjær Jensen Larsen Christensen "
    "Rasmussen Petersen Madsen Kristensen Olsen Thomsen Poulsen Johansen Knudsen Mortensen "
    "Højgaard Lærkegård Bækgaard Søndergaard Østergaard Nørgaard Vestergaard Kjærsgaard Ågaard "
    "Dalsgaard Holm Schmidt Frederiksen Henriksen Lund Clausen Iversen Jakobsen Mikkelsen Bach "
    "Skovgaard Brøndum Fønss Åkesson Bøgh Grønbæk Dahl Krogh Bjerre Friis Laursen Holst"
).split()
TRADES = (
    "Bau Holzbau Elektro Sanitär Heizungsbau Dachdeckerei Malerbetrieb Bäckerei Metzgerei "
    "Gartenbau Straßenbau Tischlerei Zimmerei Fliesen Autohaus Immobilien Steuerberatung "
    "Logistik Druckerei Brauerei Weinhandel Möbelhaus Optik Handel Software Consulting"
).split()
DK_TRADES = "Tømrer VVS Murer El Maler Bageri Byg Transport Rådgivning Køkken Søfart Gartneri".split()
DE_FORMS = ["GmbH", "GmbH", "GmbH", "AG", "GmbH & Co. KG", "UG (haftungsbeschränkt)", "e.K.", "OHG", "KG"]
DK_FORMS = ["ApS", "ApS", "A/S", "I/S", "IVS"]
TITLES = ["Dr.", "Prof.", "Dr. med.", "Prof. Dr.", "Dr.-Ing.", "Dr. rer. nat."]
DOMAINS = ["web.de", "gmx.de", "t-online.de", "gmail.com", "posteo.de", "mail.dk", "outlook.dk"]
SPELL_OUT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue",
     "æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"}
)  # fmt: skip


def ascii_local(text: str) -> str:
    text = text.translate(SPELL_OUT)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch == ".")


class World:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)

    def person(self) -> tuple[str, str]:
        rnd = self.rnd
        if rnd.random() < 0.7:
            first, last = rnd.choice(DE_FIRST), rnd.choice(DE_LAST)
            if rnd.random() < 0.15:
                first = f"{first}-{rnd.choice(DE_FIRST)}"
            if rnd.random() < 0.08:
                last = f"{last}-{rnd.choice(DE_LAST)}"
        else:
            first, last = rnd.choice(DK_FIRST), rnd.choice(DK_LAST)
            if rnd.random() < 0.15:
                last = f"{rnd.choice(DK_LAST)} {last}"
        return first, last

    def company(self) -> str:
        rnd = self.rnd
        if rnd.random() < 0.7:
            return f"{rnd.choice(DE_LAST)} {rnd.choice(TRADES)} {rnd.choice(DE_FORMS)}"
        return f"{rnd.choice(DK_LAST)} {rnd.choice(DK_TRADES)} {rnd.choice(DK_FORMS)}"

    def email(self, name: str, n: int) -> str:
        return f"{ascii_local(name.replace(' ', '.'))}{n}@{self.rnd.choice(DOMAINS)}"

    # -- variants: the same name as another system writes it ------------------
    def person_variant(self, first: str, last: str) -> tuple[str | None, str]:
        rnd = self.rnd
        kind = rnd.randrange(7)
        if kind == 0:
            return first.translate(SPELL_OUT), last.translate(SPELL_OUT)
        if kind == 1:
            return None, f"{last}, {first}"
        if kind == 2:
            return f"{rnd.choice(TITLES)} {first}", last
        if kind == 3:
            return unicodedata.normalize("NFD", first), unicodedata.normalize("NFD", last)
        if kind == 4:
            return f"  {first.upper()} ", f"{last.upper()}  "
        if kind == 5:
            return first.replace("-", " "), f" {last}"
        return first, last

    def company_variant(self, company: str) -> str:
        rnd = self.rnd
        kind = rnd.randrange(5)
        if kind == 0:
            return company.translate(SPELL_OUT)
        if kind == 1:
            return company.upper()
        if kind == 2:
            return company.replace("GmbH", "G.m.b.H.").replace("A/S", "A / S").replace(" & ", " u. ")
        if kind == 3:
            return "  " + company.replace(" ", "  ")
        return company


def generate(n_customers: int, n_contacts: int, seed: int):
    world = World(seed)
    rnd = world.rnd
    contacts: list[Contact] = []
    truth: dict[str, tuple[str, str | None]] = {}  # customer id -> (planted route, contact id)
    duplicate_of: dict[str, str] = {}
    for i in range(n_contacts):
        cid = f"C{i:06d}"
        number = str(10000 + i)
        if rnd.random() < 0.3:
            company = world.company()
            first, last = world.person() if rnd.random() < 0.5 else (None, None)
            email = world.email(company.split()[0], i) if rnd.random() < 0.8 else None
        else:
            company = None
            first, last = world.person()
            email = world.email(f"{first}.{last}", i) if rnd.random() < 0.8 else None
        contacts.append(
            Contact(target_id=cid, customer_number=number, first_name=first, last_name=last,
                    company=company, email=email)
        )  # fmt: skip
    # duplicate contacts in the target: the same customer entered twice
    for original in rnd.sample(contacts, k=n_contacts // 50):
        cid = f"D{len(duplicate_of):06d}"
        duplicate_of[cid] = original.target_id
        contacts.append(original.model_copy(update={"target_id": cid, "customer_number": None, "email": None}))
    originals = [c for c in contacts if c.target_id.startswith("C")]
    known = rnd.sample(originals, k=int(n_customers * 0.7))

    customers: list[Customer] = []
    for i in range(n_customers):
        sid = f"S{i:06d}"
        if i < len(known):
            c = known[i]
            route = ("customer_number", "email", "name")[i % 3]
            if route == "email" and not c.email:
                route = "name"
            number = f" {c.customer_number} " if route == "customer_number" else None
            if route == "email":
                email = rnd.choice([c.email.upper(), f"  {c.email}", c.email.title()])
            else:
                email = f"neu{i}@{rnd.choice(DOMAINS)}" if rnd.random() < 0.5 else None
            if c.company:
                company, first, last = world.company_variant(c.company), c.first_name, c.last_name
            else:
                company = None
                first, last = world.person_variant(c.first_name or "", c.last_name or "")
            truth[sid] = (route, c.target_id)
        else:
            number = None
            if rnd.random() < 0.25:
                company, first, last = world.company(), None, None
                email = world.email(company.split()[0], 100000 + i)
            else:
                company = None
                first, last = world.person()
                email = world.email(f"{first}.{last}", 100000 + i)
            truth[sid] = ("new", None)
        customers.append(
            Customer(source_id=sid, customer_number=number, first_name=first, last_name=last,
                     company=company, email=email)
        )  # fmt: skip
    rnd.shuffle(customers)
    return customers, contacts, truth, duplicate_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    customers, contacts, truth, duplicate_of = generate(args.customers, args.contacts, args.seed)
    generated = time.perf_counter() - t0

    normalise_name.cache_clear()
    normalise_company.cache_clear()
    start = time.perf_counter()
    index = ContactIndex([CustomerNumberMatcher(), EmailMatcher(), NameMatcher()], contacts)
    indexed = time.perf_counter()
    results = [(customer, index.match(customer)) for customer in customers]
    elapsed = time.perf_counter() - start

    unique: Counter[str] = Counter()
    ambiguous: Counter[str] = Counter()
    no_match = wrong = strangers = 0
    for customer, result in results:
        if result is None:
            no_match += 1
            continue
        if result.ambiguous:
            ambiguous[result.matcher] += 1
            continue
        unique[result.matcher] += 1
        route, expected = truth[customer.source_id]
        got = result.candidates[0].target_id
        if expected is None:
            strangers += 1  # a new customer sharing a known contact's name
        elif duplicate_of.get(got, got) != expected:
            wrong += 1
    planted_missed = sum(
        1
        for customer, result in results
        if truth[customer.source_id][1] is not None and result is None
    )

    print(f"customers {len(customers):,}, contacts {len(contacts):,} "
          f"(incl. {len(duplicate_of):,} duplicates); seed {args.seed}; data built in {generated:.2f} s")  # fmt: skip
    print(f"chain customer_number -> email -> name: {elapsed:.3f} s "
          f"(index {indexed - start:.3f} s, match {elapsed - (indexed - start):.3f} s), "
          f"{len(customers) / elapsed:,.0f} customers/s")  # fmt: skip
    for name in ("customer_number", "email", "name"):
        print(f"  unique by {name:<16} {unique[name]:>6,}")
    print(f"  ambiguous              {sum(ambiguous.values()):>6,}  "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(ambiguous.items())))  # fmt: skip
    print(f"  no match               {no_match:>6,}")
    print(f"  check: known customers missed {planted_missed:,}, matched to a wrong contact {wrong:,}; "
          f"new customers matched by name alone (same name as a contact) {strangers:,}")  # fmt: skip
    ok = elapsed < GOAL_SECONDS
    print(f"goal < {GOAL_SECONDS:.0f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
