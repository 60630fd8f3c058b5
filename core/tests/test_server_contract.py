"""The API contract: schemathesis against the live OpenAPI document, the fake target behind it.

Every operation is called with generated requests (the admin token, a tenant with an
inbox pipeline in place): no answer is a 500, and each answer matches the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")
schemathesis = pytest.importorskip("schemathesis", reason="the contract test needs ledgerlink[server-tests]")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from .test_server_api import ADMIN, World, doc, tenant_body  # noqa: E402


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(Path(tmp_path_factory.mktemp("contract")))
    w.client.put("/v1/tenants/acme", json=tenant_body("acme"), headers=w.admin())
    w.client.post("/v1/tenants/acme/pipelines/invoices/documents", json=doc(1), headers=w.admin())
    yield w
    w.service.close()


def check_case(case: Any) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN}"}
    if "tenant" in (case.path_parameters or {}):
        case.path_parameters["tenant"] = "acme"
        if case.path.endswith("/tenants/{tenant}") and case.method.upper() in ("PUT", "DELETE"):
            case.path_parameters["tenant"] = "scratch"
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text)
    case.validate_response(response, checks=[schemathesis.checks.response_schema_conformance])


def test_no_500_and_answers_match_the_schema(live: World) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", live.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  phases=[Phase.explicit, Phase.generate])
        def run(case: Any) -> None:
            check_case(case)

        run()
