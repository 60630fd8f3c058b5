"""The CLI as an operator uses it: exit codes, one-line errors, JSON for scripts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from ledgerlink.testing import fake_store, invoke_cli, sample_document

CONFIG = """
[ledger]
url = "sqlite:///ledger.db"

[connections.shop]
plugin = "fake-source"
store = "shop"
token = "${SHOP_TOKEN}"

[connections.books]
plugin = "fake-target"
store = "books"

[[pipelines]]
name = "p"
source = "shop"
target = "books"
due_days = 14
"""


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SHOP_TOKEN", "tok-123456")
    (tmp_path / "ledgerlink.toml").write_text(CONFIG)
    return str(tmp_path / "ledgerlink.toml")


def test_run_exit_codes_and_json(cfg: str) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    broken = sample_document(2)
    broken.stated_total = broken.total_gross + 1
    fake_store("shop")["documents"]["order-2"] = broken
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1  # one quarantined
    [report] = result.json
    assert report["counts"] == {"pushed": 1, "quarantined": 1}
    states = {d["source_ref"]: d["state"] for d in report["documents"]}
    assert states == {"order-1": "pushed", "order-2": "quarantined"}
    broken.stated_total = None
    fake_store("shop")["documents"]["order-2"] = broken
    retried = invoke_cli(["-c", cfg, "retry", "--json"])
    assert retried.exit_code == 0 and retried.json[0]["counts"] == {"pushed": 1}


def test_dry_run_prints_the_plan_and_writes_nothing(cfg: str) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    result = invoke_cli(["-c", cfg, "run", "--dry-run"])
    assert result.exit_code == 0
    assert "RE-1001: planned 123.90 EUR" in result.output
    assert "date 2026-03-02, due 2026-03-16, tags Import" in result.output
    assert "net 100.00 tax 19.00 gross 119.00" in result.output
    assert fake_store("books")["pushed"] == {}
    assert invoke_cli(["-c", cfg, "status", "--json"]).json == []


def test_dry_run_names_each_treatment_why_and_the_vat_per_rate(cfg: str) -> None:
    """What a bookkeeper checks before the first real run: the treatment of every line,
    the facts it was chosen from, and the net/VAT/gross per rate that will land."""
    from decimal import Decimal

    from ledgerlink import Line, LineKind, TaxTreatment

    domestic = sample_document(1)
    domestic.lines.append(Line(description="Book", total=Decimal("10.70"), tax_rate=Decimal("7"),
                               kind=LineKind.GOODS))
    eu_business = sample_document(2, customer="cust-2", gross="100.00", rate="0", shipping=None, country="AT")
    eu_business.customer.vat_id = "ATU12345678"
    eu_business.treatment_hint = TaxTreatment.INTRA_EU_SUPPLY
    export = sample_document(3, customer="cust-3", gross="50.00", rate="0", shipping=None, country="CH")
    for doc in (domestic, eu_business, export):
        fake_store("shop")["documents"][doc.source_ref] = doc
    result = invoke_cli(["-c", cfg, "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "why: 19 % is standard rate in DE, the seller's country" in out
    assert "why: 7 % is a reduced rate in DE, the seller's country" in out
    assert "VAT standard 19 %: net 104.12, VAT 19.78, gross 123.90 EUR" in out
    assert "VAT reduced 7 %: net 10.00, VAT 0.70, gross 10.70 EUR" in out
    assert ("why: the source states it and the facts agree: goods to a business in AT (VAT id ATU12345678), "
            "another EU country: tax-free intra-EU supply (0 %)") in out
    assert "VAT intra_eu_supply 0 %: net 100.00, VAT 0.00, gross 100.00 EUR" in out
    assert "why: goods to a consumer in CH, outside the EU: tax-free export (0 %)" in out
    dry = invoke_cli(["-c", cfg, "run", "--dry-run", "--json"]).json[0]["documents"]
    [rates] = [d["plan"]["vat_by_rate"] for d in dry if d["source_ref"] == "order-1"]
    assert rates == [{"treatment": "standard", "tax_rate": "19", "net": "104.12", "tax": "19.78", "gross": "123.90"},
                     {"treatment": "reduced", "tax_rate": "7", "net": "10.00", "tax": "0.70", "gross": "10.70"}]
    assert fake_store("books")["pushed"] == {}


def test_status_and_audit_work_without_the_connections_secrets(cfg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    monkeypatch.delenv("SHOP_TOKEN")
    status = invoke_cli(["-c", cfg, "status", "--json"])
    assert status.exit_code == 0 and status.json[0]["state"] == "pushed"
    audit = invoke_cli(["-c", cfg, "audit"])
    assert audit.exit_code == 0 and ",push," in audit.output
    # commands that talk to the connections still need them, with a clear line
    run = invoke_cli(["-c", cfg, "run"])
    assert run.exit_code == 2 and "connections.shop.token: environment variable SHOP_TOKEN is not set" in run.stderr


def test_check_prints_one_line_per_connection_and_exit_2_for_a_rejected_token(cfg: str,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ok = invoke_cli(["-c", cfg, "check"])
    assert ok.exit_code == 0 and ok.output.count("\n") == 2 and "ok   shop (fake-source)" in ok.output
    monkeypatch.setenv("SHOP_TOKEN", "wrong")
    bad = invoke_cli(["-c", cfg, "check", "--json"])
    assert bad.exit_code == 2
    assert json.loads(bad.output)[0] == {"connection": "shop", "plugin": "fake-source", "ok": False,
                                         "detail": "the fake source rejected the token"}


def test_missing_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = invoke_cli(["-c", str(tmp_path / "nope.toml"), "run"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "config file not found" in result.stderr


def test_unknown_pipeline_is_a_usage_error(cfg: str) -> None:
    result = invoke_cli(["-c", cfg, "run", "-p", "nope"])
    assert result.exit_code == 2 and "no pipeline named 'nope'" in result.stderr


def test_help_lists_every_command() -> None:
    result = invoke_cli(["--help"])
    for command in ("plugins", "config", "check", "run", "backfill", "match-customers", "link-customer",
                    "status", "retry", "sync-status", "watch", "sandbox", "demo", "audit", "serve", "webhooks"):
        assert f"  {command}" in result.output


def test_backfill_by_id_leaves_the_cursor_alone(cfg: str, tmp_path: Path) -> None:
    old = sample_document(1)
    old.cursor = "2020-01-01T00:00:00"
    fake_store("shop")["documents"]["order-1"] = old
    result = invoke_cli(["-c", cfg, "backfill", "-p", "p", "--id", "order-1", "--id", "order-404", "--json"])
    assert result.exit_code == 1  # order-404 does not exist
    states = {d["source_ref"]: (d["state"], d["reason"]) for d in result.json[0]["documents"]}
    assert states["order-1"][0] == "pushed"
    assert states["order-404"] == ("failed", "the source has no document 'order-404'")
    from ledgerlink._ledger import Ledger

    assert Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").cursor("p") is None


def test_backfill_by_date_needs_a_source_that_can(cfg: str) -> None:
    result = invoke_cli(["-c", cfg, "backfill", "-p", "p", "--since", "2026-01-01"])
    assert result.exit_code == 1 and "cannot fetch documents by date" in result.stderr


def test_watch_runs_rounds_of_run_and_sync_status(cfg: str) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    result = invoke_cli(["-c", cfg, "watch", "--rounds", "1", "--interval", "0"])
    assert result.exit_code == 0
    assert "p: 1 pushed" in result.output and "p order-1: - -> open" in result.output


# -- global options (-c, -v, --log-file) before or after the command ------------------------------------------------
# a nested group command, too; the fake source offers no webhooks, which it can only say once the config is read
GLOBAL_OPTION_COMMANDS = [["run"], ["status"], ["check"], ["config", "validate"],
                          ["webhooks", "subscribe", "-p", "p", "--callback-url", "https://example.test/hook"]]


@pytest.fixture
def ledgerlink_logger() -> Iterator[logging.Logger]:
    """The ``ledgerlink`` logger, put back as it was (the CLI sets its level and handlers)."""
    logger = logging.getLogger("ledgerlink")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield logger
    for handler in logger.handlers:
        if handler not in handlers:
            handler.close()
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.mark.parametrize("command", GLOBAL_OPTION_COMMANDS, ids=" ".join)
def test_config_option_before_or_after_the_command(command: list[str], cfg: str, tmp_path: Path) -> None:
    before = invoke_cli(["-c", cfg, *command])
    assert before.exit_code in (0, 2)
    assert "config file not found" not in before.stderr
    after = invoke_cli([*command, "-c", cfg])
    assert (after.exit_code, after.output, after.stderr) == (before.exit_code, before.output, before.stderr)
    assert invoke_cli([*command, "--config", cfg]).exit_code == before.exit_code
    # a missing file after the command is the same one-line usage error as before it
    missing = str(tmp_path / "missing.toml")
    for args in (["-c", missing, *command], [*command, "-c", missing]):
        result = invoke_cli(args)
        assert result.exit_code == 2
        assert result.stderr.strip().count("\n") == 0
        assert f"{missing}: config file not found" in result.stderr


@pytest.mark.parametrize("command", GLOBAL_OPTION_COMMANDS, ids=" ".join)
def test_config_option_after_the_command_wins(command: list[str], cfg: str, tmp_path: Path) -> None:
    first, last = str(tmp_path / "first.toml"), str(tmp_path / "last.toml")
    both_missing = invoke_cli(["-c", first, *command, "-c", last])
    assert both_missing.exit_code == 2 and "last.toml: config file not found" in both_missing.stderr
    assert "first.toml" not in both_missing.stderr
    assert invoke_cli(["-c", cfg, *command, "-c", last]).exit_code == 2
    good_after = invoke_cli(["-c", first, *command, "-c", cfg])
    assert good_after.exit_code == invoke_cli(["-c", cfg, *command]).exit_code
    assert "config file not found" not in good_after.stderr


def test_config_option_after_the_command_wins_over_the_environment(cfg: str, tmp_path: Path) -> None:
    env = {"LEDGERLINK_CONFIG": str(tmp_path / "from-env.toml")}
    assert "from-env.toml: config file not found" in invoke_cli(["run"], env=env).stderr
    assert invoke_cli(["run", "-c", cfg], env=env).exit_code == 0
    assert invoke_cli(["-c", cfg, "run"], env=env).exit_code == 0


def test_config_option_between_a_group_and_its_command(cfg: str, tmp_path: Path) -> None:
    assert invoke_cli(["config", "-c", cfg, "validate"]).exit_code == 0
    nearest = invoke_cli(["-c", cfg, "config", "-c", str(tmp_path / "middle.toml"), "validate"])
    assert nearest.exit_code == 2 and "middle.toml: config file not found" in nearest.stderr
    assert invoke_cli(["config", "-c", str(tmp_path / "middle.toml"), "validate", "-c", cfg]).exit_code == 0


@pytest.mark.parametrize("command", GLOBAL_OPTION_COMMANDS, ids=" ".join)
def test_verbose_before_or_after_the_command(command: list[str], cfg: str,
                                             ledgerlink_logger: logging.Logger) -> None:
    def level(args: list[str]) -> int:
        invoke_cli(args)
        return ledgerlink_logger.level

    assert level(["-c", cfg, *command]) == logging.WARNING
    assert level(["-c", cfg, "-v", *command]) == logging.INFO
    assert level(["-c", cfg, *command, "-v"]) == logging.INFO
    assert level(["-vv", "-c", cfg, *command]) == logging.DEBUG
    assert level([*command, "-c", cfg, "-vv"]) == logging.DEBUG
    assert level([*command, "-c", cfg, "-v", "--verbose"]) == logging.DEBUG
    # given in both places, the count after the command wins
    assert level(["-vv", *command, "-c", cfg, "-v"]) == logging.INFO
    assert level(["-v", *command, "-c", cfg, "-vv"]) == logging.DEBUG


def test_verbose_after_run_shows_every_document(cfg: str, ledgerlink_logger: logging.Logger) -> None:
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    result = invoke_cli(["run", "-c", cfg, "-v"])
    assert result.exit_code == 0 and "pushed      p RE-1001" in result.output


def test_log_file_after_the_command(cfg: str, tmp_path: Path, ledgerlink_logger: logging.Logger) -> None:
    log_file = tmp_path / "ledgerlink.log"
    assert invoke_cli(["status", "-c", cfg, "--log-file", str(log_file)]).exit_code == 0
    assert log_file.exists()


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*prefix, name))


def test_help_of_every_command_shows_the_global_options() -> None:
    from ledgerlink._cli import main

    paths = [(), *_command_paths(main)]
    assert ("sandbox", "serve") in paths and ("webhooks", "subscribe") in paths
    for path in paths:
        result = invoke_cli([*path, "--help"])
        assert result.exit_code == 0, path
        assert "Global options (before or after the command; the one after wins):" in result.output, path
        for option in ("-c, --config FILE", "-v, --verbose", "--log-file FILE"):
            assert option in result.output, (path, option)


def test_a_document_cancelled_after_transfer_is_never_silent(cfg: str) -> None:
    """Pushed, then cancelled in the source: the next run says so, exits 1 (a person is
    needed), `status` shows it, nothing is pushed again; a third run stays quiet."""
    fake_store("shop")["documents"]["order-1"] = sample_document(1)
    assert invoke_cli(["-c", cfg, "run"]).exit_code == 0
    cancelled = sample_document(1).model_copy(update={"cancelled": True, "cursor": "2026-03-09T00:00:00"})
    fake_store("shop")["documents"]["order-1"] = cancelled
    dry = invoke_cli(["-c", cfg, "run", "--dry-run", "--json"])
    assert [d["state"] for d in dry.json[0]["documents"]] == ["planned"]
    assert dry.json[0]["documents"][0]["reason"].startswith("cancelled after transfer")
    result = invoke_cli(["-c", cfg, "run", "--json"])
    assert result.exit_code == 1
    [doc] = result.json[0]["documents"]
    assert doc["state"] == "cancelled"
    assert doc["reason"] == "cancelled after transfer: still booked in the target; a person must reverse it"
    status = invoke_cli(["-c", cfg, "status", "--json"]).json
    assert status[0]["state"] == "pushed" and status[0]["changed"].startswith("cancelled after transfer")
    assert [ref for action, ref, _ in fake_store("books")["writes"] if action == "push"] == ["order-1"]
    again = invoke_cli(["-c", cfg, "run", "--json"])
    assert again.exit_code == 0 and again.json[0]["documents"] == []
