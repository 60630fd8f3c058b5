"""Customer matching: normalisation rules, the matcher chain, ambiguity, indexing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest
from ledgerlink._matching import (
    ContactIndex,
    CustomerNumberMatcher,
    EmailMatcher,
    NameMatcher,
    ledgerlink_register_matchers,
    normalise_company,
    normalise_name,
)
from ledgerlink._records import Contact, Customer

CHAIN = [CustomerNumberMatcher(), EmailMatcher(), NameMatcher()]


def person(source_id: str = "S1", first: str | None = None, last: str | None = None, **kw) -> Customer:
    return Customer(source_id=source_id, first_name=first, last_name=last, **kw)


def contact(target_id: str, first: str | None = None, last: str | None = None, **kw) -> Contact:
    return Contact(target_id=target_id, first_name=first, last_name=last, **kw)


def match_ids(customer: Customer, contacts: list[Contact], matchers=None) -> tuple[str, list[str]] | None:
    result = ContactIndex(matchers or CHAIN, contacts).match(customer)
    if result is None:
        return None
    return result.matcher, [c.target_id for c in result.candidates]


# -- normalisation rules, one test each ----------------------------------------


def test_case_and_surrounding_and_repeated_white_space_are_ignored():
    assert normalise_name("  JÜRGEN   schäfer \t") == normalise_name("Jürgen Schäfer") == "juergen schaefer"


def test_nfkc_folds_full_width_letters_and_no_break_spaces():
    assert normalise_name("Ａｎｎａ\u00a0Schmidt") == normalise_name("Anna Schmidt") == "anna schmidt"


def test_decomposed_umlaut_equals_composed_umlaut():
    decomposed = "Ju\u0308rgen Mu\u0308ller"
    assert decomposed != "Jürgen Müller"
    assert normalise_name(decomposed) == normalise_name("Jürgen Müller") == "juergen mueller"


def test_german_umlauts_match_their_spelled_out_form_both_ways():
    assert normalise_name("Müller") == normalise_name("Mueller") == normalise_name("MÜLLER")
    assert normalise_name("Björn Köhler") == normalise_name("Bjoern Koehler")
    assert normalise_name("Käthe Schäfer") == normalise_name("KAETHE SCHAEFER")


def test_umlaut_is_not_the_plain_vowel():
    # "Muller" (umlaut dropped) is another name; spelled-out words stay as they are
    assert normalise_name("Müller") != normalise_name("Muller")
    assert normalise_name("Samuel Kuehn") == "samuel kuehn"


def test_sharp_s_matches_ss_both_ways():
    assert normalise_name("Thomas Weiß") == normalise_name("Thomas Weiss") == normalise_name("THOMAS WEISS")
    assert normalise_name("GROẞ") == normalise_name("Groß") == "gross"
    assert normalise_company("Straßenbau Groß GmbH") == normalise_company("Strassenbau Gross GmbH")


def test_danish_letters_match_their_spelled_out_form():
    assert normalise_name("Søren Jørgensen") == normalise_name("Soeren Joergensen")
    assert normalise_name("Åse Kjær") == normalise_name("Aase Kjaer")
    assert normalise_name("LÆRKE MØLLER") == normalise_name("Laerke Moeller")
    # decomposed a + ring above
    assert normalise_name("A\u030ase") == normalise_name("Åse")


def test_other_accents_are_dropped():
    assert normalise_name("René Lefèvre") == normalise_name("Rene Lefevre")


def test_hyphens_count_as_spaces():
    assert normalise_name("Hans-Peter Müller-Lüdenscheidt") == normalise_name("Hans Peter Müller Lüdenscheidt")


@pytest.mark.parametrize(
    "titled",
    [
        "Dr. Hans Müller",
        "Dr Hans Müller",
        "Prof. Hans Müller",
        "Dr. med. Hans Müller",
        "Prof. Dr. Hans Müller",
        "Prof. Dr. med. Hans Müller",
        "Dr.-Ing. Hans Müller",
        "Dr. rer. nat. Hans Müller",
        "Prof. Dr. Dr. h.c. mult. Hans Müller",
        "Dipl.-Ing. Hans Müller",
    ],
)
def test_academic_titles_are_removed(titled):
    assert normalise_name(titled) == "hans mueller"


def test_title_qualifiers_without_dot_are_names():
    # "Phil" is a first name; only "phil." is the title qualifier
    assert normalise_name("Dr. Phil Schmidt") == "phil schmidt"
    assert normalise_name("Dr. phil. Schmidt") == "schmidt"


def test_title_in_the_last_name_field_is_removed():
    customer = person(first="Hans", last="Dr. Müller")
    assert match_ids(customer, [contact("C1", "Hans", "Mueller")]) == ("name", ["C1"])


def test_last_comma_first_in_a_single_field():
    assert normalise_name("Müller, Hans") == normalise_name("Hans Müller")
    assert normalise_name("Jørgensen, Søren") == normalise_name("Søren Jørgensen")
    assert normalise_name("Müller, Prof. Dr. Hans") == "hans mueller"


def test_last_comma_first_in_the_last_name_field():
    customer = person(first=None, last="Schäfer, Käthe")
    assert match_ids(customer, [contact("C7", "Käthe", "Schäfer")]) == ("name", ["C7"])
    # and the other way round: the target keeps "Last, First" in its last-name field
    customer = person(first="Mette", last="Sørensen")
    assert match_ids(customer, [contact("C8", None, "Soerensen, Mette")]) == ("name", ["C8"])


def test_word_order_without_comma_counts():
    assert normalise_name("Martin Paul") != normalise_name("Paul Martin")


def test_legal_form_spellings_are_unified():
    assert (
        normalise_company("Müller GmbH")
        == normalise_company("Mueller G.m.b.H.")
        == normalise_company("MÜLLER Gesellschaft mit beschränkter Haftung")
    )
    assert normalise_company("Schäfer GmbH & Co. KG") == normalise_company("Schaefer GmbH u. Co. KG")
    assert normalise_company("Sørensen A/S") == normalise_company("Soerensen A / S")
    assert normalise_company("Nielsen Anpartsselskab") == normalise_company("Nielsen ApS")
    assert normalise_company("Weber und Söhne e.K.") == normalise_company("Weber & Soehne e. K.")


def test_legal_forms_are_kept_so_different_entities_stay_apart():
    keys = {
        normalise_company(name)
        for name in ("Müller GmbH", "Müller AG", "Müller", "Müller GmbH & Co. KG")
    }
    assert len(keys) == 4
    assert normalise_company("Hansen ApS") != normalise_company("Hansen A/S")
    customer = Customer(source_id="S1", company="Müller")
    assert match_ids(customer, [Contact(target_id="C1", company="Müller GmbH")]) is None


def test_company_names_keep_titles_and_word_order():
    assert normalise_company("Dr. Oetker") != normalise_company("Oetker")
    assert normalise_company("Meyer, Hansen & Co.") != normalise_company("Hansen & Co. Meyer")


# -- persons and companies stay apart -------------------------------------------


def test_person_does_not_match_company_of_the_same_name():
    customer = person(first="Anna", last="Schmidt")
    contacts = [
        Contact(target_id="C1", company="Anna Schmidt GmbH"),
        Contact(target_id="C2", company="Anna Schmidt"),  # sole trader, company field set
    ]
    assert match_ids(customer, contacts) is None


def test_company_does_not_match_person_of_the_same_name():
    customer = Customer(source_id="S1", company="Anna Schmidt", first_name="Anna", last_name="Schmidt")
    assert match_ids(customer, [contact("C1", "Anna", "Schmidt")]) is None
    assert match_ids(customer, [Contact(target_id="C2", company="Anna Schmidt")]) == ("name", ["C2"])


def test_private_customer_does_not_match_company_contact_person():
    customer = person(first="Anna", last="Schmidt")
    company = Contact(target_id="C1", company="Schmidt Bau GmbH", first_name="Anna", last_name="Schmidt")
    assert match_ids(customer, [company]) is None


def test_company_customer_matches_company_contact_despite_spelling():
    customer = Customer(source_id="S1", company="  Sørensen Tømrer A/S ", first_name="Mads")
    contacts = [Contact(target_id="C3", company="SOERENSEN TOEMRER A / S")]
    assert match_ids(customer, contacts) == ("name", ["C3"])


# -- e-mail and customer numbers -------------------------------------------------


def test_email_is_trimmed_and_case_insensitive():
    customer = person(first="Jörg", last="Krüger", email="  Joerg.Krueger@Example.DE \u00a0")
    assert match_ids(customer, [contact("C1", email="joerg.krueger@example.de")]) == ("email", ["C1"])


def test_email_with_zero_width_space_and_angle_brackets():
    customer = person(email="\u200b<mette.hansen@firma.dk>")
    assert match_ids(customer, [contact("C1", email="Mette.Hansen@firma.dk")]) == ("email", ["C1"])


def test_field_with_several_emails_gives_one_key_each():
    assert list(EmailMatcher().keys_for_contact(contact("C1", email="a@x.de; B@y.de"))) == ["a@x.de", "b@y.de"]


def test_value_without_at_sign_is_no_email_key():
    assert list(EmailMatcher().keys_for_customer(person(email="keine Angabe"))) == []


def test_customer_number_is_trimmed_and_case_insensitive():
    customer = person(first="Karl", last="Weber", customer_number=" k-10023 ")
    contacts = [contact("C1", "Anna", "Schmidt", customer_number="K-10023")]
    assert match_ids(customer, contacts) == ("customer_number", ["C1"])


def test_customer_number_is_not_stripped_of_leading_zeros():
    customer = person(customer_number="010023")
    assert match_ids(customer, [contact("C1", customer_number="10023")]) is None


def test_empty_values_give_no_keys():
    blank = person(first="  ", last=" ", email=" ", customer_number="  ")
    for matcher in CHAIN:
        assert list(matcher.keys_for_customer(blank)) == []
    titles_only = person(first="Dr.", last="Prof.")
    assert list(NameMatcher().keys_for_customer(titles_only)) == []


# -- the chain -------------------------------------------------------------------


def test_first_matcher_with_one_candidate_wins():
    customer = person(first="Hans", last="Müller", email="hans@mueller.de", customer_number="10001")
    contacts = [
        contact("C1", "Hans", "Mueller", customer_number="10001"),
        contact("C2", "Hans", "Müller", email="HANS@mueller.de"),
    ]
    assert match_ids(customer, contacts) == ("customer_number", ["C1"])
    assert match_ids(customer, contacts, [EmailMatcher(), NameMatcher()]) == ("email", ["C2"])


def test_chain_order_decides_between_matchers():
    customer = person(first="Søren", last="Jørgensen", email="soeren@firma.dk")
    contacts = [contact("C1", email="soeren@firma.dk"), contact("C2", "Soeren", "Joergensen")]
    assert match_ids(customer, contacts, [EmailMatcher(), NameMatcher()]) == ("email", ["C1"])
    assert match_ids(customer, contacts, [NameMatcher(), EmailMatcher()]) == ("name", ["C2"])


def test_matcher_without_candidates_hands_over_to_the_next():
    customer = person(first="Käthe", last="Schäfer", email="neu@example.de", customer_number="99999")
    contacts = [contact("C5", "Kaethe", "Schaefer", email="alt@example.de", customer_number="10005")]
    assert match_ids(customer, contacts) == ("name", ["C5"])


def test_no_candidate_anywhere_is_none():
    customer = person(first="Mads", last="Kjær", email="mads@kjaer.dk")
    assert match_ids(customer, [contact("C1", "Mads", "Nielsen", email="mads@nielsen.dk")]) is None


def test_two_muellers_are_ambiguous_with_both_candidates_never_the_first():
    customer = person(first="Hans", last="Müller")
    contacts = [contact("C2", "Hans", "Mueller"), contact("C1", "Dr. Hans", "Müller")]
    result = ContactIndex(CHAIN, contacts).match(customer)
    assert result is not None
    assert result.matcher == "name"
    assert result.ambiguous
    assert result.unique is None
    assert [c.target_id for c in result.candidates] == ["C1", "C2"]


def test_ambiguity_ends_the_chain():
    # a shared address: the name matcher after it is not asked to pick one
    customer = person(first="Anna", last="Schmidt", email="info@schmidt-familie.de")
    contacts = [
        contact("C1", "Anna", "Schmidt", email="info@schmidt-familie.de"),
        contact("C2", "Karl", "Schmidt", email="Info@Schmidt-Familie.de"),
    ]
    assert match_ids(customer, contacts) == ("email", ["C1", "C2"])


def test_add_indexes_a_new_contact_and_ignores_a_known_id():
    index = ContactIndex(CHAIN, [contact("C1", "Hans", "Müller")])
    customer = person(first="Jürgen", last="Weiß")
    assert index.match(customer) is None
    index.add(contact("C2", "Juergen", "Weiss"))
    index.add(contact("C2", "Juergen", "Weiss"))
    result = index.match(customer)
    assert result is not None and result.unique is not None and result.unique.target_id == "C2"


def test_builtin_matchers_are_registered():
    registered: dict[str, type] = {}
    ledgerlink_register_matchers(lambda name, factory: registered.__setitem__(name, factory))
    assert registered == {
        "customer_number": CustomerNumberMatcher,
        "email": EmailMatcher,
        "name": NameMatcher,
    }
    assert [registered[n].name for n in registered] == list(registered)


# -- indexing --------------------------------------------------------------------


class Counting:
    """Wraps a matcher and counts how often each contact's keys are computed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.contact_calls: Counter[str] = Counter()
        self.customer_calls = 0

    def keys_for_contact(self, c: Contact) -> Iterable[str]:
        self.contact_calls[c.target_id] += 1
        return self.inner.keys_for_contact(c)

    def keys_for_customer(self, c: Customer) -> Iterable[str]:
        self.customer_calls += 1
        return self.inner.keys_for_customer(c)


def test_2000_by_2000_computes_each_contacts_keys_once():
    n = 2000
    contacts = [
        contact(f"C{i}", f"Vorname{i}", f"Nachname{i}", email=f"kunde{i}@example.de", customer_number=f"K{i}")
        for i in range(n)
    ]
    customers = []
    for i in range(n):
        if i % 3 == 0:
            customers.append(person(f"S{i}", customer_number=f"k{i}"))
        elif i % 3 == 1:
            customers.append(person(f"S{i}", email=f" KUNDE{i}@example.de"))
        else:
            customers.append(person(f"S{i}", f"VORNAME{i}", f"nachname{i}"))
    matchers = [Counting(m) for m in (CustomerNumberMatcher(), EmailMatcher(), NameMatcher())]
    index = ContactIndex(matchers, contacts)
    results = [index.match(c) for c in customers]

    for matcher in matchers:
        assert len(matcher.contact_calls) == n
        assert max(matcher.contact_calls.values()) == 1
    assert matchers[0].customer_calls == n  # every customer asked the first matcher once
    assert all(r is not None and r.unique is not None for r in results)
    assert [r.unique.target_id for r in results if r and r.unique] == [f"C{i}" for i in range(n)]
    assert Counter(r.matcher for r in results if r) == {
        "customer_number": 667,
        "email": 667,
        "name": 666,
    }
