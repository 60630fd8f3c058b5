"""Bad input: every file of tests/bad_input/ ends as a failed or quarantined document
(or a clear run or check error) with a reason a bookkeeper understands, the good
documents of the same run all arrive exactly once, and nothing crashes. Unusable
ledger files are refused in one line with exit 2; a pipeline another command holds
and a source that refuses connections end the command in one line (exit 75, exit 1).

Broken Billbee orders are seeded into the Billbee sandbox next to three good ones;
broken vendor answers are served for one endpoint by :class:`Intercept`, a tiny
httpx transport in front of the sandbox. A representative subset runs through
the real CLI in a subprocess against loopback sandboxes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerlink._errors import LedgerlinkError
from ledgerlink._operations import sync_status
from ledgerlink._sandbox import SandboxServer
from ledgerlink.testing import make_runtime, run_pipeline
from ledgerlink_billbee.sandbox import BillbeeSandbox
from ledgerlink_sevdesk.sandbox import DEMO_RULES, SevdeskSandbox

CORPUS = Path(__file__).parent / "bad_input"
BROKEN_REF = "900000000000001"
GOOD_REFS = {"800000000000001", "800000000000002", "800000000000003"}
GOOD_NUMBERS = {"RE-GOOD-8001", "RE-GOOD-8002", "RE-GOOD-8003"}


def read(name: str) -> Any:
    return json.loads((CORPUS / name).read_text("utf-8"), parse_float=Decimal)


# -- serving broken answers ---------------------------------------------------------
@dataclass
class Rule:
    method: str
    path: str
    """A regular expression the request path must match (search)."""
    body: bytes
    status: int = 200
    content_type: str = "application/json; charset=utf-8"
    when: Callable[[httpx.Request], bool] = lambda request: True
    times: int | None = None
    """Answer this many matching requests (None: all); later ones reach the sandbox."""
    hits: int = 0


class Intercept(httpx.BaseTransport):
    """Answers matching requests with a corpus file's bytes; the rest go to ``inner``."""

    def __init__(self, inner: httpx.BaseTransport, *rules: Rule) -> None:
        self.inner = inner
        self.rules = list(rules)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        for rule in self.rules:
            if (request.method == rule.method and re.search(rule.path, request.url.path)
                    and (rule.times is None or rule.hits < rule.times) and rule.when(request)):
                rule.hits += 1
                return httpx.Response(rule.status, content=rule.body, request=request,
                                      headers={"Content-Type": rule.content_type})
        return self.inner.handle_request(request)


# -- the pipeline -----------------------------------------------------------------------
@dataclass
class Setup:
    billbee: BillbeeSandbox
    sevdesk: SevdeskSandbox
    raw: dict[str, Any]
    env: dict[str, str]
    shop_rules: list[Rule] = field(default_factory=list)
    books_rules: list[Rule] = field(default_factory=list)

    def runtime(self, tmp_path: Path) -> Any:
        transports = {"shop": Intercept(self.billbee.transport(), *self.shop_rules),
                      "books": Intercept(self.sevdesk.transport(), *self.books_rules)}
        return make_runtime(self.raw, tmp_path, transports=transports)

    def voucher_numbers(self) -> Counter[str]:
        return Counter(v["description"] for v in self.sevdesk.state["vouchers"].values())


def make_setup(monkeypatch: pytest.MonkeyPatch, orders: list[Any], *, base_urls: tuple[str, str] | None = None) -> Setup:
    """Billbee and sevDesk sandboxes with credentials of their own (so the process-wide
    rate limiters of other tests are not shared) and a pipeline between them."""
    import ledgerlink_billbee.source as billbee_source

    for name in ("PER_ENDPOINT", "PER_USER", "PER_KEY"):
        monkeypatch.setattr(billbee_source, name, 10_000.0)
    tag = uuid.uuid4().hex[:10]
    billbee = BillbeeSandbox(seed=orders, throttle=False, api_key=f"bb-key-{tag}",
                             username=f"user-{tag}@example.com", api_password=f"bb-pw-{tag}")
    token = f"sevdesk-{tag}"
    sevdesk = SevdeskSandbox(seed={"tokens": [token]})
    shop_url, books_url = base_urls or ("http://billbee.test", "http://sevdesk.test")
    shop, shop_env = billbee.demo_connection(shop_url)
    books, _ = sevdesk.demo_connection(books_url)
    env = {**shop_env, "SEVDESK_API_TOKEN": token}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    books.update(requests_per_second=10_000, backoff=0.01)
    raw = {
        "connections": {"shop": {"plugin": "billbee", **shop}, "books": {"plugin": "sevdesk", **books}},
        "pipelines": [{"name": "shop-to-books", "source": "shop", "target": "books", "rules": DEMO_RULES,
                       "payment_reconciliation": "source", "due_days": 14}],
    }
    return Setup(billbee, sevdesk, raw, env)


def states(runtime: Any) -> dict[str, tuple[str, str | None]]:
    return {row.source_ref: (row.state, row.reason) for row in runtime.ledger.documents("shop-to-books")}


def assert_words(reason: str | None, words: tuple[str, ...]) -> None:
    assert reason, "no reason given"
    assert "\n" not in reason and "Traceback" not in reason, reason
    assert len(reason) < 600, f"reason too long for a person ({len(reason)} characters)"
    for word in words:
        assert word.lower() in reason.lower(), f"{word!r} not in {reason!r}"


# -- the corpus ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderCase:
    file: str
    state: str
    words: tuple[str, ...]


ORDER_CASES = [
    OrderCase("order-missing-created-at.json", "failed", ("order 900000000000001", "CreatedAt", "missing")),
    OrderCase("order-missing-order-items.json", "failed", ("OrderItems", "missing")),
    OrderCase("order-missing-total.json", "failed", ("TotalCost", "missing")),
    OrderCase("order-missing-currency.json", "failed", ("Currency", "missing")),
    OrderCase("order-missing-item-price.json", "failed", ("item 1", "TotalPrice", "missing")),
    OrderCase("order-id-as-string.json", "failed", ("BillBeeOrderId", "not a whole number")),
    OrderCase("order-total-as-text.json", "failed", ("TotalCost", "'57,20'", "not a number")),
    OrderCase("order-quantity-as-text.json", "failed", ("item 1", "Quantity", "'zwei'", "not a number")),
    OrderCase("order-items-not-a-list.json", "failed", ("OrderItems", "not a list")),
    OrderCase("order-item-not-an-object.json", "failed", ("item 1", "not an object")),
    OrderCase("order-customer-not-an-object.json", "failed", ("Customer", "not an object")),
    OrderCase("order-invoice-number-as-text.json", "failed", ("InvoiceNumber", "not a whole number")),
    OrderCase("order-lines-do-not-add-up.json", "quarantined", ("lines add up to 57.20 EUR", "total is 99.99 EUR")),
    OrderCase("order-item-tax-does-not-add-up.json", "quarantined", ("line 1", "states tax 9.99", "2.60")),
    OrderCase("order-unknown-currency.json", "failed", ("currency 'XYZ'", "ISO 4217")),
    OrderCase("order-currency-symbol.json", "failed", ("currency '€'", "ISO 4217")),
    OrderCase("order-negative-quantity.json", "quarantined", ("item 1", "negative quantity -2", "positive total 39.80")),
    OrderCase("order-zero-quantity.json", "failed", ("item 1", "quantity 0")),
    OrderCase("order-absurd-quantity.json", "failed", ("quantity", "absurdly large")),
    OrderCase("order-absurd-amount.json", "failed", ("absurdly large",)),
    OrderCase("order-total-nan.json", "failed", ("TotalCost", "not a finite number")),
    OrderCase("order-no-items.json", "failed", ("no items",)),
    OrderCase("order-created-far-future.json", "failed", ("9999-12-31", "out of range")),
    OrderCase("order-invoice-date-min-value.json", "failed", ("0001-01-01", "out of range")),
    OrderCase("order-date-not-a-date.json", "failed", ("CreatedAt", "'gestern'", "not a date")),
    OrderCase("order-date-february-30.json", "failed", ("InvoiceDate", "2025-02-30", "not a date")),
    OrderCase("order-unknown-tax-index.json", "failed", ("item 1", "unknown TaxIndex 3")),
    OrderCase("order-tax-rate-missing.json", "failed", ("TaxIndex 1", "no TaxRate1")),
    OrderCase("order-tax-rate-absurd.json", "failed", ("tax rate 190", "not a percentage")),
    OrderCase("order-unknown-vat-mode.json", "failed", ("VatMode 9", "unknown")),
    OrderCase("order-country-not-iso.json", "failed", ("country 'Deutschland'", "ISO 3166")),
    OrderCase("order-payment-value-as-text.json", "failed", ("payment 1", "PayValue", "not a number")),
    OrderCase("order-gigantic-name.json", "failed", ("order 900000000000001", "at most 1000 characters")),
    OrderCase("order-gigantic-item-title.json", "failed", ("description", "at most 10000 characters")),
]


@dataclass(frozen=True)
class AnswerCase:
    file: str
    vendor: str  # billbee (GET /orders), sevdesk (saveVoucher of RE-GOOD-8002) or status (GET Voucher/id)
    status: int
    content_type: str
    words: tuple[str, ...]
    outcome: str = "failed"


HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"
ANSWER_CASES = [
    AnswerCase("billbee-orders-maintenance.html", "billbee", 200, HTML, ("Billbee", "HTML page", "Wartungsarbeiten")),
    AnswerCase("billbee-orders-bad-gateway.html", "billbee", 502, HTML, ("Billbee", "HTTP 502", "gave up")),
    AnswerCase("empty-body.txt", "billbee", 200, JSON, ("Billbee", "empty answer")),
    AnswerCase("billbee-orders-truncated.json", "billbee", 200, JSON, ("Billbee", "not valid JSON")),
    AnswerCase("billbee-orders-error-in-200.json", "billbee", 200, JSON,
               ("Billbee", "error code 1", "nicht aktiviert")),
    AnswerCase("billbee-orders-data-not-a-list.json", "billbee", 200, JSON, ("Billbee", "not a list")),
    AnswerCase("sevdesk-login-page.html", "sevdesk", 200, HTML, ("sevDesk", "HTML page", "not found in the target")),
    AnswerCase("sevdesk-internal-error.html", "sevdesk", 500, HTML, ("sevDesk", "HTTP 500", "not found in the target")),
    AnswerCase("empty-body.txt", "sevdesk", 200, JSON, ("sevDesk", "empty answer", "not found in the target")),
    AnswerCase("sevdesk-save-truncated.json", "sevdesk", 200, JSON, ("sevDesk", "not valid JSON")),
    AnswerCase("sevdesk-save-error-in-200.json", "sevdesk", 200, JSON, ("sevDesk", "Buchungskonto", "390")),
    AnswerCase("sevdesk-save-no-objects.json", "sevdesk", 200, JSON, ("sevDesk", "without 'objects'")),
    AnswerCase("sevdesk-status-unknown.json", "status", 200, JSON, ("unknown status", "voucher:4711"), "unknown"),
    AnswerCase("sevdesk-status-error-in-200.json", "status", 200, JSON, ("sevDesk", "gesperrt"), "error"),
    AnswerCase("sevdesk-login-page.html", "status", 200, HTML, ("sevDesk", "HTML page"), "error"),
]


def test_every_corpus_file_has_a_case_and_a_readme_row() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.is_file() and p.name not in ("README.md", "_generate.py")}
    covered = ({c.file for c in ORDER_CASES} | {c.file for c in ANSWER_CASES} | {c.file for c in LEDGER_CASES}
               | {"good-orders.json", "page-invalid-utf8.bin", "page-order-without-id.json"})
    assert files == covered
    assert len(files - {"good-orders.json"}) >= 30
    readme = (CORPUS / "README.md").read_text("utf-8")
    for name in files:
        assert f"`{name}`" in readme, f"{name} is not in bad_input/README.md"


# -- broken orders --------------------------------------------------------------------------
@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda c: c.file.removesuffix(".json"))
def test_broken_order_ends_failed_or_quarantined_and_the_others_arrive(
    case: OrderCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(monkeypatch, [read("good-orders.json"), read(case.file)])
    runtime = setup.runtime(tmp_path)
    result = run_pipeline(runtime)

    assert result.error is None, result.error
    seen = states(runtime)
    broken = {ref: value for ref, value in seen.items() if ref not in GOOD_REFS}
    assert len(broken) == 1, seen
    [(state, reason)] = broken.values()
    assert state == case.state, reason
    assert_words(reason, case.words)
    assert all(seen[ref][0] == "pushed" for ref in GOOD_REFS), seen
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)
    # The cursor passed the broken order: a second run transfers nothing and keeps it.
    again = run_pipeline(runtime)
    assert again.counts().get("pushed", 0) == 0, again.counts()
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)
    assert states(runtime) == seen


def test_whole_page_with_invalid_utf8_is_read_and_only_the_broken_order_is_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(monkeypatch, [])
    setup.shop_rules.append(Rule("GET", r"/orders$", (CORPUS / "page-invalid-utf8.bin").read_bytes()))
    runtime = setup.runtime(tmp_path)
    result = run_pipeline(runtime)
    assert result.error is None, result.error
    seen = states(runtime)
    assert {ref: s[0] for ref, s in seen.items() if ref in GOOD_REFS} == dict.fromkeys(GOOD_REFS, "pushed")
    state, reason = seen[BROKEN_REF]
    assert state == "quarantined", reason
    assert_words(reason, ("not valid UTF-8",))
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)


def test_order_without_id_in_a_page_fails_and_the_others_arrive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = make_setup(monkeypatch, [])
    setup.shop_rules.append(Rule("GET", r"/orders$", (CORPUS / "page-order-without-id.json").read_bytes()))
    runtime = setup.runtime(tmp_path)
    result = run_pipeline(runtime)
    assert result.error is None, result.error
    seen = states(runtime)
    broken = {ref: value for ref, value in seen.items() if ref not in GOOD_REFS}
    [(state, reason)] = broken.values()
    assert state == "failed"
    assert_words(reason, ("BillBeeOrderId", "missing"))
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)


# -- broken vendor answers ---------------------------------------------------------------------
def _answer_rule(case: AnswerCase) -> Rule:
    body = (CORPUS / case.file).read_bytes()
    if case.vendor == "billbee":
        return Rule("GET", r"/orders$", body, case.status, case.content_type)
    if case.vendor == "sevdesk":
        return Rule("POST", r"/Voucher/Factory/saveVoucher$", body, case.status, case.content_type,
                    when=lambda request: b"RE-GOOD-8002" in request.content)
    return Rule("GET", r"/Voucher/\d+$", body, case.status, case.content_type, times=1)


@pytest.mark.parametrize("case", [c for c in ANSWER_CASES if c.vendor == "billbee"],
                         ids=lambda c: c.file.rsplit(".", 1)[0])
def test_broken_billbee_answer_stops_the_run_clearly_and_loses_nothing(
    case: AnswerCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(monkeypatch, [read("good-orders.json")])
    setup.shop_rules.append(_answer_rule(case))
    runtime = setup.runtime(tmp_path)
    first = run_pipeline(runtime)
    assert_words(first.error, case.words)
    assert first.outcomes == [] and runtime.ledger.cursor("shop-to-books") is None
    assert setup.voucher_numbers() == Counter()
    # Billbee answers properly again: everything arrives, once.
    setup.shop_rules.clear()
    second = run_pipeline(setup.runtime(tmp_path))
    assert second.error is None and second.counts() == {"pushed": 3}, second.counts()
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)


# A "Data" that is no list is not checked by `check` (it lists no shops and says the
# selected shop is not among them), so that file is left out here.
@pytest.mark.parametrize("case", [c for c in ANSWER_CASES if c.vendor == "billbee" and "not-a-list" not in c.file],
                         ids=lambda c: c.file.rsplit(".", 1)[0])
def test_broken_billbee_answer_fails_the_check_in_one_line(
    case: AnswerCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(monkeypatch, [])
    rule = _answer_rule(case)
    rule.path = r"/shopaccounts$"
    setup.shop_rules.append(rule)
    source = setup.runtime(tmp_path).source("shop")
    with pytest.raises(LedgerlinkError) as info:
        source.check()
    assert_words(str(info.value), case.words)


@pytest.mark.parametrize("case", [c for c in ANSWER_CASES if c.vendor == "sevdesk"],
                         ids=lambda c: c.file.rsplit(".", 1)[0])
def test_broken_sevdesk_answer_fails_that_document_only_and_a_retry_books_it_once(
    case: AnswerCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(monkeypatch, [read("good-orders.json")])
    rule = _answer_rule(case)
    setup.books_rules.append(rule)
    runtime = setup.runtime(tmp_path)
    result = run_pipeline(runtime)
    assert result.error is None, result.error
    seen = states(runtime)
    state, reason = seen["800000000000002"]
    assert state == "failed", reason
    assert_words(reason, case.words)
    assert seen["800000000000001"][0] == seen["800000000000003"][0] == "pushed"
    assert rule.hits >= 1
    assert setup.voucher_numbers() == Counter({"RE-GOOD-8001": 1, "RE-GOOD-8003": 1})
    # sevDesk answers properly again: `retry` (or the next run, for failures that were
    # transient) brings the failed document, once.
    setup.books_rules.clear()
    runtime = setup.runtime(tmp_path)
    retried = run_pipeline(runtime, retry_failed=True)
    assert retried.counts().get("pushed") == 1, retried.counts()
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)


@pytest.mark.parametrize("case", [c for c in ANSWER_CASES if c.vendor == "status"],
                         ids=lambda c: c.file.rsplit(".", 1)[0] + "-" + c.outcome)
def test_broken_status_answer_is_reported_and_the_next_sync_recovers(
    case: AnswerCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(monkeypatch, [read("good-orders.json")])
    runtime = setup.runtime(tmp_path)
    assert run_pipeline(runtime).counts() == {"pushed": 3}
    pipeline = runtime.config.pipelines[0]
    setup.books_rules.append(_answer_rule(case))
    runtime = setup.runtime(tmp_path)
    if case.outcome == "unknown":
        changes = sync_status(runtime, pipeline)
        raw = {c.source_ref: (c.new, c.raw) for c in changes}
        assert len(raw) == 3
        unknown = [ref for ref, (new, r) in raw.items() if new.startswith("unknown")]
        assert len(unknown) == 1 and raw[unknown[0]] == ("unknown (voucher:4711)", "voucher:4711")
        assert_words(" ".join(runtime.reporter.messages), case.words)
        assert sorted(new for new, _ in raw.values()) == ["paid", "paid", "unknown (voucher:4711)"]
    else:
        with pytest.raises(LedgerlinkError) as info:
            sync_status(runtime, pipeline)
        assert_words(str(info.value), case.words)
        assert all(row.status is None for row in runtime.ledger.documents("shop-to-books"))
    # The next sync (sevDesk answering properly) brings every status, nothing doubled.
    setup.books_rules.clear()
    runtime = setup.runtime(tmp_path)
    sync_status(runtime, pipeline)
    rows = runtime.ledger.documents("shop-to-books")
    assert sorted(row.status for row in rows) == ["paid"] * 3
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)


# -- through the real CLI ------------------------------------------------------------------------
class _Front:
    """A loopback app: the corpus file for one endpoint, the sandbox for the rest."""

    def __init__(self, sandbox: Any, method: str, path: str, body: bytes, status: int, content_type: str,
                 when: Callable[[bytes], bool] = lambda body: True) -> None:
        self.sandbox, self.name = sandbox, sandbox.name
        self.rule = (method, re.compile(path), body, status, content_type, when)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        method, path, body, status, content_type, when = self.rule
        if scope["type"] == "http" and scope["method"] == method and path.search(scope["path"]):
            chunks, more = [], True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            request_body = b"".join(chunks)
            if when(request_body):
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", content_type.encode())]})
                await send({"type": "http.response.body", "body": body})
                return

            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": request_body, "more_body": False}

            await self.sandbox.app(scope, replay, send)
            return
        await self.sandbox.app(scope, receive, send)


def _toml(value: Any) -> str:
    from ledgerlink._config import toml_value

    return toml_value(value)


def write_config(path: Path, raw: dict[str, Any]) -> None:
    lines = ['[ledger]', 'url = "sqlite:///ledger.db"']
    for name, conn in raw["connections"].items():
        lines += ["", f"[connections.{name}]", *(f"{k} = {_toml(v)}" for k, v in conn.items())]
    for pipeline in raw["pipelines"]:
        lines += ["", "[[pipelines]]", *(f"{k} = {_toml(v)}" for k, v in pipeline.items() if k != "rules")]
        for rule in pipeline.get("rules", []):
            lines += ["", "[[pipelines.rules]]", f"when = {_toml(rule['when'])}", f"account = {_toml(rule['account'])}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env, "PYTHONIOENCODING": "utf-8"})


def assert_clean(done: subprocess.CompletedProcess[str], code: int) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-3000:]
    assert done.returncode == code, output[-3000:]


CLI_ORDERS = ["order-lines-do-not-add-up.json", "order-unknown-currency.json", "order-gigantic-name.json",
              "order-negative-quantity.json", "order-date-not-a-date.json"]


@pytest.mark.slow
def test_cli_run_with_broken_orders_exits_1_without_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    orders = [read("good-orders.json")]
    for n, name in enumerate(CLI_ORDERS):
        order = read(name)
        order["BillBeeOrderId"] = int(BROKEN_REF) + n
        order["InvoiceNumber"] = 9001 + n
        orders.append(order)
    setup = make_setup(monkeypatch, orders)
    with SandboxServer(setup.billbee) as shop, SandboxServer(setup.sevdesk) as books:
        setup.raw["connections"]["shop"]["base_url"] = shop.url + "/api/v1"
        setup.raw["connections"]["books"]["base_url"] = books.url + "/api/v1"
        config = tmp_path / "ledgerlink.toml"
        write_config(config, setup.raw)
        run = cli(config, setup.env, "run")
        assert_clean(run, 1)
        assert "shop-to-books: 3 failed, 3 pushed, 2 quarantined" in run.stdout, run.stdout
        for words in ("lines add up to 57.20 EUR", "currency 'XYZ'", "at most 1000 characters",
                      "negative quantity", "'gestern' is not a date"):
            assert words in run.stdout, run.stdout
        status = cli(config, setup.env, "status", "--json")
        assert_clean(status, 0)
        assert Counter(r["state"] for r in json.loads(status.stdout)) == {"pushed": 3, "failed": 3, "quarantined": 2}
        again = cli(config, setup.env, "run", "--json")
        assert_clean(again, 0)  # nothing new; the broken ones stay in the ledger with their reasons
        assert all(d["state"] != "pushed" for r in json.loads(again.stdout) for d in r["documents"])
        still = cli(config, setup.env, "status", "--state", "failed", "--state", "quarantined")
        assert_clean(still, 0)
        assert "3 failed, 2 quarantined" in still.stdout, still.stdout
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)


@pytest.mark.slow
def test_cli_check_and_run_with_broken_answers_exit_1_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(monkeypatch, [read("good-orders.json")])
    maintenance = (CORPUS / "billbee-orders-maintenance.html").read_bytes()
    login = (CORPUS / "sevdesk-login-page.html").read_bytes()
    shop_front = _Front(setup.billbee, "GET", r"/(shopaccounts|orders)$", maintenance, 200, HTML)
    books_front = _Front(setup.sevdesk, "POST", r"/Voucher/Factory/saveVoucher$", login, 200, HTML,
                         when=lambda body: b"RE-GOOD-8002" in body)
    with SandboxServer(shop_front) as shop, SandboxServer(books_front) as books:  # type: ignore[arg-type]
        setup.raw["connections"]["shop"]["base_url"] = shop.url + "/api/v1"
        setup.raw["connections"]["books"]["base_url"] = books.url + "/api/v1"
        config = tmp_path / "ledgerlink.toml"
        write_config(config, setup.raw)
        check = cli(config, setup.env, "check")
        assert_clean(check, 1)
        assert re.search(r"FAIL shop \(billbee\): .*HTML page.*Wartungsarbeiten", check.stdout), check.stdout
        assert "ok   books (sevdesk)" in check.stdout
        run = cli(config, setup.env, "run")
        assert_clean(run, 1)
        assert "stopped: Billbee" in run.stdout and "the next run continues from here" in run.stdout and "HTML page" in run.stdout, run.stdout
        shop_front.rule = ("NONE", *shop_front.rule[1:])  # Billbee is back
        run = cli(config, setup.env, "-v", "run")
        assert_clean(run, 1)
        assert "shop-to-books: 1 failed, 2 pushed" in run.stdout, run.stdout
        assert re.search(r"failed\s+shop-to-books RE-GOOD-8002: .*HTML page", run.stdout), run.stdout
    assert setup.voucher_numbers() == Counter({"RE-GOOD-8001": 1, "RE-GOOD-8003": 1})


# -- ledger files and situations (issue 16) -----------------------------------------------------
@dataclass(frozen=True)
class LedgerCase:
    file: str
    words: tuple[str, ...]


LEDGER_CASES = [
    LedgerCase("ledger-empty.sqlite", ("ledger.db is empty (0 bytes), not a ledger", "only where no file exists")),
    LedgerCase("ledger-truncated.sqlite", ("ledger.db is cut short", "restore the ledger from a backup")),
    LedgerCase("ledger-random-bytes.sqlite", ("ledger.db is not a SQLite database",)),
    LedgerCase("ledger-other-program.sqlite",
               ("ledger.db is a SQLite database of another program (tables moz_places), not a ledger",)),
    LedgerCase("ledger-newer-schema.sqlite", ("the ledger has schema version 999, newer than this ledgerlink",
                                              "upgrade ledgerlink")),
]


def _fake_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, with the in-memory fake connectors."""
    return subprocess.run([sys.executable, "-m", "ledgerlink._cli", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=config.parent,
                          env={**os.environ, "LEDGERLINK_FAKE_PLUGINS": "1", "PYTHONIOENCODING": "utf-8"})


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """Everything the command said, which must be one line (and no traceback)."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-3000:]
    lines = output.strip().splitlines()
    assert len(lines) == 1, output[-3000:]
    return lines[0]


@pytest.mark.parametrize("case", LEDGER_CASES, ids=lambda c: c.file.removesuffix(".sqlite"))
@pytest.mark.parametrize("command", ["run", "status"])
def test_an_unusable_ledger_file_is_refused_in_one_line_with_exit_2(case: LedgerCase, command: str,
                                                                    tmp_path: Path) -> None:
    from ledgerlink.testing import fake_config

    config = tmp_path / "ledgerlink.toml"
    config.write_text(fake_config(ledger="sqlite:///ledger.db"))
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes((CORPUS / case.file).read_bytes())
    done = _fake_cli(config, command)
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_line(done)
    assert line.startswith("error: "), line
    assert_words(line, case.words)
    assert ledger.read_bytes() == (CORPUS / case.file).read_bytes()  # never recreated or changed


@pytest.mark.slow
def test_a_pipeline_held_by_another_command_is_left_alone_with_exit_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Situation (no file): another command (here: this process, as `run`) works on the pipeline."""
    import socket as _socket

    from ledgerlink._ledger import Ledger
    from ledgerlink._locks import PipelineLocks

    setup = make_setup(monkeypatch, [read("good-orders.json")])
    with SandboxServer(setup.billbee) as shop, SandboxServer(setup.sevdesk) as books:
        setup.raw["connections"]["shop"]["base_url"] = shop.url + "/api/v1"
        setup.raw["connections"]["books"]["base_url"] = books.url + "/api/v1"
        config = tmp_path / "ledgerlink.toml"
        write_config(config, setup.raw)
        locks = PipelineLocks(Ledger(f"sqlite:///{tmp_path / 'ledger.db'}"))
        try:
            with locks.hold("shop-to-books", "run"):
                for command in ("run", "retry"):
                    done = cli(config, setup.env, command)
                    assert done.returncode == 75, done.stdout + done.stderr
                    line = _one_line(done)
                    assert_words(line, ("pipeline 'shop-to-books' is busy", f"`run` (pid {os.getpid()} on "
                                        f"{_socket.gethostname()}, since ", f"`{command}` did nothing", "--wait"))
        finally:
            locks.ledger.close()
        assert setup.voucher_numbers() == Counter()  # nothing was written while it was held
        after = cli(config, setup.env, "run")  # released: the next run does the work, once
        assert_clean(after, 0)
    assert setup.voucher_numbers() == Counter(GOOD_NUMBERS)


@pytest.mark.slow
def test_a_source_that_refuses_connections_stops_the_run_in_one_line_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Situation (no file): nothing listens where the source should be."""
    import socket as _socket

    with _socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    setup = make_setup(monkeypatch, [read("good-orders.json")])
    with SandboxServer(setup.sevdesk) as books:
        setup.raw["connections"]["shop"]["base_url"] = f"http://127.0.0.1:{closed}/api/v1"
        setup.raw["connections"]["books"]["base_url"] = books.url + "/api/v1"
        config = tmp_path / "ledgerlink.toml"
        write_config(config, setup.raw)
        done = cli(config, setup.env, "run")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
        [line] = done.stdout.strip().splitlines()  # the outcome: one line
        assert_words(line, ("shop-to-books", "stopped: Billbee", f"127.0.0.1:{closed}", "could not connect",
                            "gave up after", "the next run continues from here"))
        # stderr holds only the retries while it waited (as a wait on a terminal's progress bar)
        waits = done.stderr.strip().splitlines()
        assert waits and all("could not connect" in w and "backoff" in w for w in waits), done.stderr
    assert setup.voucher_numbers() == Counter()
