"""ledgerlink's target contract, run against the sevDesk sandbox."""

from __future__ import annotations

from typing import Any, ClassVar

from ledgerlink.testing import StatusMapperContract, TargetContract
from ledgerlink_sevdesk.sandbox import DEMO_TOKEN, SevdeskSandbox


class TestSevdeskVoucherContract(TargetContract):
    plugin = "sevdesk"
    rules: ClassVar[list[dict[str, Any]]] = [
        {"when": {"tax_rate": 7}, "account": "8300"},
        {"when": {}, "account": "8400"},
    ]
    pipeline_options: ClassVar[dict[str, Any]] = {"payment_reconciliation": "source", "due_days": 14}

    def make_sandbox(self) -> SevdeskSandbox:
        return SevdeskSandbox()

    def connection_settings(self, sandbox: SevdeskSandbox) -> tuple[dict[str, Any], dict[str, str]]:
        settings, env = sandbox.demo_connection("http://sevdesk.test")
        settings.update(backoff=0.01, requests_per_second=10_000)
        return settings, {**env, "SEVDESK_API_TOKEN": DEMO_TOKEN}

    def stored_refs(self, sandbox: SevdeskSandbox) -> list[str]:
        # The contract's documents are numbered RE-1000+n for order-n; the voucher shows the number.
        return [f"order-{int(v['description'].removeprefix('RE-')) - 1000}"
                for v in sandbox.state["vouchers"].values()]

    def stored_payments(self, sandbox: SevdeskSandbox) -> list[Any]:
        return [(t.get("voucher") or t.get("invoice") or {}).get("id") for t in sandbox.state["transactions"].values()]

    def test_every_request_validates_against_the_spec(self, tmp_path, monkeypatch) -> None:
        from ledgerlink.testing import run_pipeline

        sandbox = self.make_sandbox()
        runtime = self._runtime(sandbox, tmp_path, monkeypatch, self._docs())
        result = run_pipeline(runtime)
        assert result.counts() == {"pushed": 3}, [o.reason for o in result.outcomes]
        assert [e for e in sandbox.requests if e.get("validation_errors")] == []
        assert {t["name"] for t in sandbox.state["tags"].values()} == {"Import"}
        assert sorted(c["customerNumber"] for c in sandbox.state["contacts"].values()) == ["1001", "1002"]


class TestSevdeskInvoiceContract(TestSevdeskVoucherContract):
    def connection_settings(self, sandbox: SevdeskSandbox) -> tuple[dict[str, Any], dict[str, str]]:
        settings, env = super().connection_settings(sandbox)
        settings.update(document_type="invoice", contact_person=1551095)
        return settings, env

    def stored_refs(self, sandbox: SevdeskSandbox) -> list[str]:
        return [f"order-{int(i['customerInternalNote'].removeprefix('RE-')) - 1000}"
                for i in sandbox.state["invoices"].values()]


class TestSevdeskStatusMapperContract(StatusMapperContract):
    mapper = "sevdesk"
    # what SevdeskTarget.statuses() reports for existing documents: "<kind>:<status>"
    raw_statuses = ("voucher:50", "voucher:100", "voucher:150", "voucher:750", "voucher:1000",
                    "invoice:50", "invoice:100", "invoice:200", "invoice:750", "invoice:1000")

