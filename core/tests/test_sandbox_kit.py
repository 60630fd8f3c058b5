"""The sandbox kit (ledgerlink._sandbox), through a tiny shop sandbox defined here:
request log, state, fault injection in-process and over loopback, per-credential
rate limit, --state persistence, seeds, and the OpenAPI / Swagger 2 validator."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerlink._errors import OutcomeUnknown
from ledgerlink._http import HttpClient
from ledgerlink._sandbox import Faults, OpenAPIValidator, Sandbox, SandboxServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

OPENAPI3 = """\
openapi: 3.0.3
info: {title: Shop, version: "1"}
paths:
  /items:
    get:
      parameters:
        - {name: limit, in: query, required: false, schema: {type: integer}}
      responses: {"200": {description: ok}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Item"}
      responses: {"201": {description: created}}
  /items/{itemId}:
    get:
      responses: {"200": {description: ok}}
  /items/search:
    get:
      parameters:
        - {name: q, in: query, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
components:
  schemas:
    Item:
      type: object
      required: [id, name, price]
      properties:
        id: {type: integer, readOnly: true}
        name: {type: string}
        price: {type: string}
        note: {type: string, nullable: true}
        kind: {type: string, enum: [a, b], nullable: true}
"""

SWAGGER2 = {
    "swagger": "2.0",
    "info": {"title": "Old shop", "version": "1"},
    "basePath": "/v2",
    "paths": {
        "/orders": {
            "post": {
                "parameters": [
                    {"name": "body", "in": "body", "required": True,
                     "schema": {"$ref": "#/definitions/Order"}},
                ],
                "responses": {"200": {"description": "ok"}},
            },
        },
    },
    "definitions": {
        "Order": {
            "type": "object",
            "required": ["number", "total"],
            "properties": {
                "number": {"type": "string"},
                "total": {"type": "number"},
                "comment": {"type": "string", "x-nullable": True},
                "lines": {"type": "array", "items": {"$ref": "#/definitions/Line"}},
            },
        },
        "Line": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}},
    },
}


class ShopSandbox(Sandbox):
    name = "shop"
    vendor = "Shop"
    base_path = "/api"

    def initial_state(self) -> dict[str, Any]:
        return {"items": {}}

    def routes(self) -> list[Any]:
        return [
            Route("/api/items", self.list_items, methods=["GET"]),
            Route("/api/items", self.create_item, methods=["POST"]),
        ]

    def load_seed(self, data: Any) -> None:
        for item in data["items"]:
            self.state["items"][str(item["id"])] = item

    async def list_items(self, request: Request) -> Response:
        self.validate(request, None)
        return JSONResponse({"items": list(self.state["items"].values())})

    async def create_item(self, request: Request) -> Response:
        body = await self.body(request)
        errors = self.validate(request, body)
        if errors:
            return self.error_response(422, "; ".join(errors))
        item = {"id": self.next_id("item"), **body}
        self.state["items"][str(item["id"])] = item
        return JSONResponse(item, status_code=201)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "openapi.yaml"
    path.write_text(OPENAPI3, encoding="utf-8")
    return path


@pytest.fixture
def shop_cls(spec: Path) -> type[ShopSandbox]:
    return type("Shop", (ShopSandbox,), {"openapi_file": spec})


@pytest.fixture
def sandbox(shop_cls: type[ShopSandbox]) -> ShopSandbox:
    return shop_cls()


def client_for(sandbox: Sandbox, **kwargs: Any) -> httpx.Client:
    return httpx.Client(transport=sandbox.transport(), base_url="http://shop.test", **kwargs)


def set_faults(client: httpx.Client, **faults: Any) -> httpx.Response:
    return client.post("/__sandbox__/faults", json=faults)


ITEM = {"name": "Mug", "price": "12.50"}


# -- request log and state ----------------------------------------------------
def test_request_log_records_method_path_query_json_status(sandbox: ShopSandbox) -> None:
    with client_for(sandbox) as client:
        assert client.get("/api/items", params={"limit": 5}).status_code == 200
        created = client.post("/api/items", json=ITEM)
        assert created.status_code == 201
        rejected = client.post("/api/items", json={"name": 7})
        assert rejected.status_code == 422
        log = client.get("/__sandbox__/requests").json()
    assert [(e["method"], e["path"], e["query"], e["json"], e["status"]) for e in log] == [
        ("GET", "/api/items", "limit=5", None, 200),
        ("POST", "/api/items", "", ITEM, 201),
        ("POST", "/api/items", "", {"name": 7}, 422),
    ]
    assert "validation_errors" not in log[1]
    problems = log[2]["validation_errors"]
    assert any("price" in p and "required" in p for p in problems), problems
    assert any(p.startswith("name:") and "string" in p for p in problems), problems
    assert sandbox.requests == log


def test_state_endpoint_returns_the_stored_objects(sandbox: ShopSandbox) -> None:
    with client_for(sandbox) as client:
        item = client.post("/api/items", json=ITEM).json()
        state = client.get("/__sandbox__/state").json()
    assert state["items"] == {str(item["id"]): {"id": item["id"], **ITEM}}
    assert state == sandbox.snapshot()


def test_reset_empties_state_and_log(sandbox: ShopSandbox) -> None:
    with client_for(sandbox) as client:
        client.post("/api/items", json=ITEM)
        assert client.post("/__sandbox__/reset").json() == {"ok": True}
        assert client.get("/__sandbox__/state").json() == {"items": {}}
        assert client.get("/__sandbox__/requests").json() == []


# -- fault settings -------------------------------------------------------------
def test_faults_endpoint_sets_and_rejects_unknown_keys(sandbox: ShopSandbox) -> None:
    with client_for(sandbox) as client:
        answer = set_faults(client, rate_500=0.25, retry_after=0.5)
        assert answer.status_code == 200
        assert answer.json()["rate_500"] == 0.25 and answer.json()["retry_after"] == 0.5
        assert sandbox.faults.rate_500 == 0.25
        assert client.get("/__sandbox__/faults").json()["rate_500"] == 0.25

        unknown = set_faults(client, rate_404=1)
        assert unknown.status_code == 400 and "rate_404" in unknown.json()["error"]
        wrong_type = set_faults(client, rate_500="often")
        assert wrong_type.status_code == 400 and "rate_500" in wrong_type.json()["error"]
        not_an_object = client.post("/__sandbox__/faults", json=[1, 2])
        assert not_an_object.status_code == 400
        not_json = client.post("/__sandbox__/faults", content=b"{rate")
        assert not_json.status_code == 400
    assert sandbox.faults.rate_500 == 0.25  # the refused settings changed nothing


@pytest.mark.parametrize("status", [429, 503])
def test_injected_429_and_503_carry_retry_after(sandbox: ShopSandbox, status: int) -> None:
    with client_for(sandbox) as client:
        set_faults(client, **{f"rate_{status}": 1, "retry_after": 2.5})
        answer = client.post("/api/items", json=ITEM)
    assert answer.status_code == status
    assert answer.headers["Retry-After"] == "2.5"
    assert answer.json() == {"error": {"message": "injected fault", "code": status}}
    assert sandbox.state["items"] == {}  # not processed
    assert sandbox.requests[-1]["status"] == status and sandbox.requests[-1]["fault"] == str(status)


def test_injected_500_has_no_retry_after_and_is_not_processed(sandbox: ShopSandbox) -> None:
    with client_for(sandbox) as client:
        set_faults(client, rate_500=1)
        answer = client.post("/api/items", json=ITEM)
    assert answer.status_code == 500 and "Retry-After" not in answer.headers
    assert sandbox.state["items"] == {}
    assert sandbox.stats["faults"] == 1


def test_fault_shares_are_reproducible_with_a_seed(shop_cls: type[ShopSandbox]) -> None:
    def statuses() -> list[int]:
        sandbox = shop_cls(faults=Faults(rate_500=0.5, seed=7))
        with client_for(sandbox) as client:
            return [client.get("/api/items").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert 500 in first and 200 in first


# -- lost answers: drop, truncate, slow -----------------------------------------------
@pytest.mark.parametrize("fault", ["drop", "truncate"])
def test_drop_and_truncate_in_process(sandbox: ShopSandbox, fault: str) -> None:
    with client_for(sandbox) as client:
        assert set_faults(client, **{f"rate_{fault}": 1}).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/api/items", json=ITEM)
    [item] = sandbox.state["items"].values()
    assert item["name"] == "Mug"
    assert sandbox.requests[-1]["fault"] == fault and sandbox.requests[-1]["status"] == 201


@pytest.mark.parametrize("fault", ["drop", "truncate"])
def test_drop_and_truncate_over_loopback(sandbox: ShopSandbox, fault: str) -> None:
    with SandboxServer(sandbox) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        assert set_faults(client, **{f"rate_{fault}": 1}).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/api/items", json=ITEM)
        state = client.get("/__sandbox__/state").json()
        set_faults(client, **{f"rate_{fault}": 0})
        assert client.get("/api/items").status_code == 200  # the server lives on
    [item] = state["items"].values()
    assert item["name"] == "Mug"


def test_dropped_write_is_outcome_unknown_for_the_http_client(sandbox: ShopSandbox) -> None:
    sandbox.faults = Faults(rate_drop=1)
    client = HttpClient(vendor="Shop", base_url="http://shop.test", transport=sandbox.transport(),
                        retries=2, backoff=0.001)
    with client, pytest.raises(OutcomeUnknown, match="after the request was sent"):
        client.post("/api/items", json=ITEM)
    assert len(sandbox.requests) == 1  # never re-sent
    assert len(sandbox.state["items"]) == 1


def test_slow_answer_times_out_in_process_but_the_write_is_processed(sandbox: ShopSandbox) -> None:
    sandbox.faults = Faults(rate_slow=1, slow_seconds=0.4)
    with client_for(sandbox, timeout=0.1) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.post("/api/items", json=ITEM)
        assert time.monotonic() - started < 0.35
    assert [i["name"] for i in sandbox.state["items"].values()] == ["Mug"]


def test_slow_answer_times_out_over_loopback_but_the_write_is_processed(sandbox: ShopSandbox) -> None:
    sandbox.faults = Faults(rate_slow=1, slow_seconds=0.4)
    with SandboxServer(sandbox) as server:
        with httpx.Client(base_url=server.url, timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
            client.post("/api/items", json=ITEM)
        state = httpx.get(f"{server.url}/__sandbox__/state", timeout=5).json()
    assert [i["name"] for i in state["items"].values()] == ["Mug"]


# -- rate limit per credential ---------------------------------------------------------
def test_requests_per_second_limit_is_per_credential(sandbox: ShopSandbox) -> None:
    sandbox.faults = Faults(requests_per_second=3, retry_after=0.5)
    with client_for(sandbox) as client:
        alice = [client.get("/api/items", headers={"Authorization": "Bearer alice"}).status_code
                 for _ in range(5)]
        bob = client.get("/api/items", headers={"Authorization": "Bearer bob"})
        limited = client.get("/api/items", headers={"Authorization": "Bearer alice"})
    assert alice == [200, 200, 200, 429, 429]
    assert bob.status_code == 200
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "0.5"
    assert sandbox.stats["throttled"] == 3
    assert sandbox.requests[-1]["fault"] == "rate_limit"


def test_http_client_waits_out_the_sandbox_rate_limit(sandbox: ShopSandbox) -> None:
    sandbox.faults = Faults(requests_per_second=2, retry_after=0.05)
    waits: list[str] = []
    client = HttpClient(vendor="Shop", base_url="http://shop.test", transport=sandbox.transport(),
                        headers={"Authorization": "Bearer carol"}, retries=40, on_wait=waits.append)
    with client:
        for _ in range(3):
            assert client.get("/api/items").status_code == 200
    assert waits and all("HTTP 429" in w and "Retry-After" in w for w in waits)
    assert client.stats["rate_limited"] == len(waits)


# -- persistence and seeds ---------------------------------------------------------
def test_state_file_is_shared_by_a_second_instance(shop_cls: type[ShopSandbox], tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = shop_cls(state_path=path)
    with client_for(first) as client:
        created = client.post("/api/items", json=ITEM).json()
    assert json.loads(path.read_text())["items"][str(created["id"])]["name"] == "Mug"

    second = shop_cls(state_path=path)
    assert second.state["items"] == {str(created["id"]): created}
    with client_for(second) as client:
        again = client.post("/api/items", json={"name": "Cup", "price": "3.00"}).json()
    assert again["id"] == created["id"] + 1  # counters are persisted too
    assert not list(tmp_path.glob("*.tmp"))


def test_seed_loading(shop_cls: type[ShopSandbox], tmp_path: Path) -> None:
    seed = {"items": [{"id": 1, "name": "Seeded", "price": "1.00"}]}
    path = tmp_path / "state.json"
    sandbox = shop_cls(seed=seed, state_path=path)
    assert sandbox.state["items"]["1"]["name"] == "Seeded"
    assert json.loads(path.read_text())["items"]["1"]["name"] == "Seeded"
    # A restart with a state file keeps the state instead of seeding again.
    path.write_text(json.dumps({"items": {}}))
    assert shop_cls(seed=seed, state_path=path).state == {"items": {}}

    with client_for(sandbox) as client:
        loaded = client.post("/__sandbox__/seed", json={"items": [{"id": 2, "name": "Later", "price": "2"}]})
        assert loaded.json() == {"ok": True}
        names = sorted(i["name"] for i in client.get("/api/items").json()["items"])
    assert names == ["Later", "Seeded"]
    assert json.loads(path.read_text())["items"]["2"]["name"] == "Later"
    with client_for(sandbox) as client:  # a seed it cannot read: 400 with the reason, state unchanged
        refused = client.post("/__sandbox__/seed", json={"things": []})
    assert refused.status_code == 400
    assert refused.json() == {"error": "the seed cannot be loaded: KeyError: 'items'"}
    assert sorted(sandbox.state["items"]) == ["1", "2"]


# -- the validator -----------------------------------------------------------------
def test_openapi3_validator(spec: Path) -> None:
    validator = OpenAPIValidator(spec, base_path="/api")
    assert validator.validate("POST", "/api/items", {}, {"name": "Mug", "price": "1", "note": None}) == []
    # required readOnly properties are for answers only
    assert validator.validate("POST", "/api/items", {}, {"name": "Mug", "price": "1", "kind": None}) == []

    missing = validator.validate("POST", "/api/items", {}, {"name": "Mug"})
    assert len(missing) == 1 and "'price' is a required property" in missing[0]
    wrong = validator.validate("POST", "/api/items", {}, {"name": "Mug", "price": 12.5})
    assert len(wrong) == 1 and wrong[0].startswith("price:") and "'string'" in wrong[0]
    bad_enum = validator.validate("POST", "/api/items", {}, {"name": "M", "price": "1", "kind": "c"})
    assert len(bad_enum) == 1 and bad_enum[0].startswith("kind:")

    assert validator.validate("POST", "/api/items", {}, None) == ["a request body is required"]
    assert validator.validate("DELETE", "/api/items", {}, None) == [
        "DELETE /api/items is not in the API description"
    ]
    assert validator.validate("GET", "/api/nothing", {}, None) == [
        "GET /api/nothing is not in the API description"
    ]
    assert validator.validate("GET", "/api/items/17", {}, None) == []
    # the literal path wins over the template
    assert validator.validate("GET", "/api/items/search", {}, None) == ["query parameter 'q' is required"]
    assert validator.validate("GET", "/api/items/search", {"q": "mug"}, None) == []


def test_invalid_json_body_is_reported(sandbox: ShopSandbox) -> None:
    with client_for(sandbox) as client:
        answer = client.post("/api/items", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert sandbox.requests[-1]["validation_errors"] == ["the request body is not valid JSON"]
    assert sandbox.requests[-1]["json"] is None and sandbox.requests[-1]["body"] == '{"name": '


def test_swagger2_body_parameter(tmp_path: Path) -> None:
    path = tmp_path / "swagger.json"
    path.write_text(json.dumps(SWAGGER2), encoding="utf-8")
    validator = OpenAPIValidator(path, base_path="/v2")
    good = {"number": "A-1", "total": 12.5, "comment": None, "lines": [{"sku": "X"}]}
    assert validator.validate("POST", "/v2/orders", {}, good) == []
    missing = validator.validate("POST", "/v2/orders", {}, {"total": 1})
    assert len(missing) == 1 and "'number' is a required property" in missing[0]
    wrong = validator.validate("POST", "/v2/orders", {}, {"number": "A", "total": "12.50"})
    assert len(wrong) == 1 and wrong[0].startswith("total:") and "'number'" in wrong[0]
    nested = validator.validate("POST", "/v2/orders", {}, {"number": "A", "total": 1, "lines": [{}]})
    assert len(nested) == 1 and nested[0].startswith("lines/0:") and "sku" in nested[0]
    assert validator.validate("POST", "/v2/orders", {}, None) == ["a request body is required"]
    assert validator.validate("GET", "/v2/orders", {}, None) == ["GET /v2/orders is not in the API description"]


def test_sandbox_without_spec_does_not_validate(tmp_path: Path) -> None:
    sandbox = ShopSandbox()
    with client_for(sandbox) as client:
        assert client.post("/api/items", json={"anything": True}).status_code == 201
    assert "validation_errors" not in sandbox.requests[-1]


def test_transports_of_one_sandbox_share_one_event_loop(sandbox: ShopSandbox) -> None:
    first, second = sandbox.transport(), sandbox.transport()
    assert first._loop is second._loop  # type: ignore[attr-defined]
    with httpx.Client(transport=first, base_url="http://shop.test") as a:
        a.post("/api/items", json=ITEM)
    # closing one client does not break the other transport
    with httpx.Client(transport=second, base_url="http://shop.test") as b:
        assert len(b.get("/api/items").json()["items"]) == 1


def test_faults_from_mapping() -> None:
    base = Faults(rate_429=0.5)
    faults = Faults.from_mapping({"rate_500": 0.1, "seed": 3}, base=base)
    assert (faults.rate_429, faults.rate_500, faults.seed) == (0.5, 0.1, 3)
    for bad in ({"rate_42": 1}, {"rate_500": -1}, {"rate_500": True}, {"seed": 1.5}, [("rate_500", 1)]):
        with pytest.raises(ValueError):
            Faults.from_mapping(bad)


def test_a_failing_handler_is_logged_on_its_entry() -> None:
    sandbox = ShopSandbox()  # no spec: nothing stops the list before the handler
    with client_for(sandbox) as client, pytest.raises(TypeError):
        client.post("/api/items", json=["not", "an", "object"])  # the handler's own bug: **list
    entry = sandbox.requests[-1]
    assert entry["status"] == 500 and entry["error"].startswith("TypeError")
