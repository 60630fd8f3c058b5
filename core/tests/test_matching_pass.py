"""The matching pass and manual links, through the CLI, with realistic names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ledgerlink._records import Contact, Customer
from ledgerlink.testing import fake_store, invoke_cli, make_runtime, run_pipeline, sample_document

CONFIG = """
[ledger]
url = "sqlite:///ledger.db"

[connections.shop]
plugin = "fake-source"
store = "shop"

[connections.books]
plugin = "fake-target"
store = "books"

[[pipelines]]
name = "p"
source = "shop"
target = "books"
matchers = ["customer_number", "email", "name"]
"""


@pytest.fixture
def world(tmp_path: Path) -> Path:
    contacts = [
        Contact(target_id="c1", customer_number="1001", first_name="Jürgen", last_name="Müller", email="j.mueller@example.de"),
        Contact(target_id="c2", customer_number="1002", company="Bäckerei Groß GmbH"),
        Contact(target_id="c3", customer_number="1003", first_name="Anna", last_name="Schmidt"),
        Contact(target_id="c4", customer_number="1004", first_name="Anna", last_name="Schmidt"),
        Contact(target_id="c5", customer_number="1005", first_name="Søren", last_name="Kierkegaard"),
    ]
    for contact in contacts:
        fake_store("books")["contacts"][contact.target_id] = contact
    customers = [
        Customer(source_id="s1", first_name="Juergen", last_name="Mueller", email=" J.Mueller@Example.DE "),
        Customer(source_id="s2", company="Baeckerei Gross GmbH"),
        Customer(source_id="s3", first_name="Anna", last_name="Schmidt"),
        Customer(source_id="s4", first_name="Soeren", last_name="Kierkegaard"),
        Customer(source_id="s5", first_name="Max", last_name="Neumann"),
        Customer(source_id="s6", customer_number="1004", first_name="Anna", last_name="Schmidt"),
    ]
    for customer in customers:
        fake_store("shop")["customers"][customer.source_id] = customer
    (tmp_path / "ledgerlink.toml").write_text(CONFIG)
    return tmp_path / "ledgerlink.toml"


def outcomes(result_json: dict) -> dict[str, tuple[str, str | None]]:
    return {row["source_id"]: (row["outcome"], row["matcher"]) for row in result_json["p"]}


def test_matching_pass_links_unique_matches_and_reports_the_rest(world: Path) -> None:
    result = invoke_cli(["-c", str(world), "match-customers", "--json"])
    assert result.exit_code == 0, result.stderr
    assert outcomes(result.json) == {
        "s1": ("linked", "email"),
        "s2": ("linked", "name"),
        "s3": ("ambiguous", "name"),
        "s4": ("linked", "name"),
        "s5": ("no_match", None),
        "s6": ("linked", "customer_number"),
    }
    ambiguous = next(r for r in result.json["p"] if r["source_id"] == "s3")
    assert ambiguous["candidates"] == ["1003 Anna Schmidt", "1004 Anna Schmidt"]


def test_dry_run_stores_nothing_and_a_second_pass_links_only_new_customers(world: Path) -> None:
    dry = invoke_cli(["-c", str(world), "match-customers", "--dry-run", "--json"])
    assert outcomes(dry.json)["s1"] == ("linked", "email")
    first = invoke_cli(["-c", str(world), "match-customers", "--json"])
    assert outcomes(first.json)["s1"] == ("linked", "email")
    fake_store("shop")["customers"]["s7"] = Customer(source_id="s7", email="new@example.de")
    fake_store("books")["contacts"]["c7"] = Contact(target_id="c7", customer_number="1007", email="NEW@example.de")
    second = invoke_cli(["-c", str(world), "match-customers", "--json"])
    got = outcomes(second.json)
    assert got["s7"] == ("linked", "email")
    assert {k for k, (outcome, _) in got.items() if outcome == "linked"} == {"s7"}
    assert got["s1"][0] == got["s2"][0] == "already_linked"


def test_table_output_counts_each_outcome(world: Path) -> None:
    result = invoke_cli(["-c", str(world), "match-customers"])
    assert "p: 4 linked, 0 already linked, 1 ambiguous, 1 no match" in result.output


def test_manual_link_is_never_overwritten_by_a_later_pass(world: Path) -> None:
    linked = invoke_cli(["-c", str(world), "link-customer", "-p", "p", "s3", "1004"])
    assert linked.exit_code == 0 and "s3 -> 1004 (manual)" in linked.output
    result = invoke_cli(["-c", str(world), "match-customers", "--json"])
    row = next(r for r in result.json["p"] if r["source_id"] == "s3")
    assert (row["outcome"], row["matcher"], row["contact"]) == ("already_linked", "manual", "1004")
    unlinked = invoke_cli(["-c", str(world), "unlink-customer", "-p", "p", "s3"])
    assert "unlinked s3" in unlinked.output
    again = invoke_cli(["-c", str(world), "match-customers", "--json"])
    assert outcomes(again.json)["s3"] == ("ambiguous", "name")


def test_link_to_an_unknown_contact_is_a_clear_error(world: Path) -> None:
    result = invoke_cli(["-c", str(world), "link-customer", "-p", "p", "s3", "9999"])
    assert result.exit_code == 2
    assert "has no contact with id or customer number '9999'" in result.stderr


def _pipeline(**options: object) -> dict:
    return {
        "connections": {"shop": {"plugin": "fake-source", "store": "shop"},
                        "books": {"plugin": "fake-target", "store": "books"}},
        "pipelines": [{"name": "p", "source": "shop", "target": "books", **options}],
    }


def test_push_time_chain_reuses_matches_creates_or_tags_mismatch(tmp_path: Path) -> None:
    fake_store("books")["contacts"]["c1"] = Contact(target_id="c1", customer_number="1001", first_name="Erika",
                                                   last_name="Mustermann1", email="other@example.de")
    matched = sample_document(1, customer="cust-1")        # same name as c1 -> matched by name
    ambiguous_a = sample_document(2, customer="cust-2")
    fake_store("books")["contacts"]["c2"] = Contact(target_id="c2", customer_number="1002", email="cust-2@example.com")
    fake_store("books")["contacts"]["c3"] = Contact(target_id="c3", customer_number="1003", email="CUST-2@example.com")
    new = sample_document(3, customer="cust-3")
    for doc in (matched, ambiguous_a, new):
        fake_store("shop")["documents"][doc.source_ref] = doc
    runtime = make_runtime(_pipeline(create_contacts=False, matchers=["email", "name"]), tmp_path)
    run_pipeline(runtime)
    pushed = fake_store("books")["pushed"]
    assert pushed["order-1"]["contact"] == "c1" and pushed["order-1"]["tags"] == ["Import"]
    assert pushed["order-2"]["contact"] is None and pushed["order-2"]["tags"] == ["Import", "Mismatch"]
    assert pushed["order-3"]["contact"] is None and pushed["order-3"]["tags"] == ["Import", "Mismatch"]
    reasons = {row.source_ref: row.reason for row in runtime.ledger.documents("p")}
    assert reasons["order-1"] == "contact 1001 (matched by name)"
    assert reasons["order-2"].startswith("ambiguous by email: 1002")
    assert reasons["order-3"] == "no matching contact; contact creation is off"
    [link] = runtime.ledger.links("books")
    assert (link.source_customer_id, link.matched_by) == ("cust-1", "name")


def test_status_json_shows_the_contact_decision(world: Path, tmp_path: Path) -> None:
    doc = sample_document(1, customer="s1")
    doc.customer.email = "j.mueller@example.de"
    fake_store("shop")["documents"][doc.source_ref] = doc
    assert invoke_cli(["-c", str(world), "run"]).exit_code == 0
    rows = json.loads(invoke_cli(["-c", str(world), "status", "--json"]).output)
    assert rows[0]["reason"] == "contact 1001 (matched by email)"
