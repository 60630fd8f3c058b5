"""The Shipmondo sandbox on its own: auth, paging, filters, errors, control endpoints,
seed checks, request validation, persistence, the CLI, and the demo data's sums
(checked here with Decimal, independently of the generator)."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from ledgerlink import Faults
from ledgerlink_shipmondo.sandbox import (
    DEMO_KEY,
    DEMO_USER,
    KEY_ENV,
    SPEC_PATH,
    USER_ENV,
    ShipmondoSandbox,
)

API = "http://shipmondo.sandbox/api/public/v3"
ROOT = "http://shipmondo.sandbox"
CPH = ZoneInfo("Europe/Copenhagen")
PLUGIN = Path(__file__).resolve().parent.parent
UNAUTHORIZED = {"error": "Invalid API User or API Key"}
NOT_FOUND = {"error": "Invalid or not found parameter(s)"}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0[12]:00$")


def client(sandbox: ShipmondoSandbox, auth: Any = (DEMO_USER, DEMO_KEY)) -> httpx.Client:
    return httpx.Client(transport=sandbox.transport(), base_url=API, auth=auth)


def control(sandbox: ShipmondoSandbox) -> httpx.Client:
    return httpx.Client(transport=sandbox.transport(), base_url=ROOT)


def order(id_: int, created: str, updated: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "order_id": f"T-{id_}", "archived": False, "created_at": created,
            "updated_at": updated or created, "payment_details": {"currency_code": "DKK", "vat_amount": "0.0"},
            "order_lines": [], "tags": [], **fields}


@pytest.fixture(scope="module")
def demo() -> list[dict[str, Any]]:
    return ShipmondoSandbox.demo_seed()


@pytest.fixture
def sandbox() -> ShipmondoSandbox:
    return ShipmondoSandbox(demo=True)


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [o["id"] for o in response.json()]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- auth ------------------------------------------------------------------------------
def test_basic_auth_none_wrong_and_right(sandbox):
    for auth in (None, (DEMO_USER, "wrong-key"), ("someone-else", DEMO_KEY), ("", "")):
        response = client(sandbox, auth).get("/sales_orders")
        assert response.status_code == 401 and response.json() == UNAUTHORIZED
    for header in ("Bearer " + DEMO_KEY, "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode()):
        response = client(sandbox, None).get("/sales_orders", headers={"Authorization": header})
        assert response.status_code == 401 and response.json() == UNAUTHORIZED
    assert client(sandbox, None).get("/sales_orders/1").status_code == 401  # before the 404
    assert client(sandbox).get("/sales_orders").status_code == 200
    # A seed may add credentials; the demo pair stays.
    sandbox.load_seed({"credentials": {"other-user": "other-key"}, "sales_orders": []})
    assert client(sandbox, ("other-user", "other-key")).get("/sales_orders").status_code == 200
    assert client(sandbox).get("/sales_orders").status_code == 200


# -- listing and paging ------------------------------------------------------------------
def test_default_page_headers_and_newest_id_first(sandbox, demo):
    response = client(sandbox).get("/sales_orders")
    assert response.status_code == 200
    assert response.headers["X-Per-Page"] == "10" and response.headers["X-Current-Page"] == "1"
    assert response.headers["X-Total-Count"] == str(len(demo))
    assert response.headers["X-Total-Pages"] == str(-(-len(demo) // 10))
    every = sorted((o["id"] for o in demo), reverse=True)
    assert ids(response) == every[:10]


def test_pages_cover_everything_once_and_past_the_end_is_empty(sandbox, demo):
    c = client(sandbox)
    seen: list[int] = []
    for page in (1, 2, 3):
        response = c.get("/sales_orders", params={"per_page": 17, "page": page})
        assert response.headers["X-Current-Page"] == str(page)
        assert response.headers["X-Total-Pages"] == "3" and response.headers["X-Total-Count"] == str(len(demo))
        seen += ids(response)
    assert seen == sorted((o["id"] for o in demo), reverse=True)
    past = c.get("/sales_orders", params={"per_page": 17, "page": 4})
    assert past.status_code == 200 and past.json() == []
    assert past.headers["X-Current-Page"] == "4" and past.headers["X-Total-Pages"] == "3"
    assert past.headers["X-Total-Count"] == str(len(demo)) and past.headers["X-Per-Page"] == "17"
    full = c.get("/sales_orders", params={"per_page": 25})
    assert len(full.json()) == 25 and full.headers["X-Total-Pages"] == "2"
    # Nothing matches: no pages.
    none = c.get("/sales_orders", params={"order_id": "nope"})
    assert none.json() == [] and none.headers["X-Total-Pages"] == "0" and none.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("params", [
    {"per_page": 0}, {"per_page": 26}, {"per_page": -1}, {"per_page": "ten"}, {"page": 0}, {"page": "x"},
    {"id": "abc"}, {"archived": "yes"}, {"created_at_min": "yesterday"}, {"updated_at_max": "2026-13-01"},
    {"created_at_min": "2026-06-18T11:18:02.982 02:00"},   # a "+" that was not URL-encoded
])
def test_bad_query_values_answer_422_in_the_error_shape(sandbox, params):
    response = client(sandbox).get("/sales_orders", params=params)
    assert response.status_code == 422
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]


def test_per_page_bounds_one_and_25_are_fine(sandbox):
    c = client(sandbox)
    assert len(ids(c.get("/sales_orders", params={"per_page": 1}))) == 1
    assert len(ids(c.get("/sales_orders", params={"per_page": 25}))) == 25


# -- filters -------------------------------------------------------------------------------
def test_filter_by_id_order_id_and_archived(sandbox, demo):
    c = client(sandbox)
    some = demo[7]
    assert ids(c.get("/sales_orders", params={"id": some["id"]})) == [some["id"]]
    assert ids(c.get("/sales_orders", params={"order_id": some["order_id"]})) == [some["id"]]
    assert ids(c.get("/sales_orders", params={"id": 1})) == []
    archived = {o["id"] for o in demo if o["archived"]}
    assert archived and set(ids(c.get("/sales_orders", params={"archived": "true", "per_page": 25}))) == archived
    live = c.get("/sales_orders", params={"archived": "false", "per_page": 25})
    assert live.headers["X-Total-Count"] == str(len(demo) - len(archived))
    assert not set(ids(live)) & archived


def test_time_filters_are_inclusive_instants():
    sandbox = ShipmondoSandbox(seed=[
        order(1, "2026-03-01T10:00:00.000+01:00", "2026-03-05T12:00:00.000+01:00"),
        order(2, "2026-03-02T10:00:00.000+01:00", "2026-03-02T10:00:00.500+01:00"),
        order(3, "2026-03-03T10:00:00.000+01:00", "2026-03-04T09:00:00.000+01:00"),
    ])
    c = client(sandbox)
    get = lambda **params: ids(c.get("/sales_orders", params=params))  # noqa: E731
    assert get(created_at_min="2026-03-02T10:00:00.000+01:00") == [3, 2]          # inclusive
    assert get(created_at_max="2026-03-02T10:00:00.000+01:00") == [2, 1]          # inclusive
    assert get(created_at_min="2026-03-02T10:00:00.001+01:00") == [3]
    # The same instants written in UTC, or with another offset: compared as instants, not strings.
    assert get(created_at_min="2026-03-02T09:00:00Z", created_at_max="2026-03-02T09:00:00.000Z") == [2]
    assert get(created_at_min="2026-03-02T11:00:00+02:00", created_at_max="2026-03-02T05:00:00-04:00") == [2]
    # No offset: Copenhagen time.
    assert get(created_at_min="2026-03-03T10:00:00") == [3]
    assert get(updated_at_min="2026-03-04T09:00:00.000+01:00") == [3, 1]
    assert get(updated_at_max="2026-03-02T10:00:00.500+01:00") == [2]
    assert get(updated_at_min="2026-03-03", updated_at_max="2026-03-05T12:00:00+01:00") == [3, 1]
    assert get(created_at_min="2026-03-02", created_at_max="2026-03-05", updated_at_max="2026-03-04") == [2]


def test_date_only_filters_mean_that_day_at_midnight_in_copenhagen():
    # 2026-03-02 00:00 Copenhagen is 2026-03-01 23:00 UTC; in summer 22:00 UTC.
    sandbox = ShipmondoSandbox(seed=[
        order(1, "2026-03-01T22:59:59.999Z"),
        order(2, "2026-03-01T23:00:00.000Z"),
        order(3, "2026-03-02T23:59:59.999+01:00"),
        order(4, "2026-07-01T00:00:00.000+02:00"),
        order(5, "2026-06-30T21:59:59.999Z"),
    ])
    c = client(sandbox)
    get = lambda **params: ids(c.get("/sales_orders", params=params))  # noqa: E731
    assert get(created_at_min="2026-03-02", created_at_max="2026-03-03") == [3, 2]
    assert get(created_at_max="2026-03-02") == [2, 1]          # the max date is that day 00:00 too (as the spec says)
    assert get(created_at_min="2026-07-01") == [4]
    assert get(created_at_max="2026-07-01") == [5, 4, 3, 2, 1]
    assert get(updated_at_min="2026-03-02", updated_at_max="2026-03-02") == [2]


# -- one order -------------------------------------------------------------------------------
def test_get_one_order_and_the_404_shape(sandbox, demo):
    c = client(sandbox)
    some = demo[3]
    assert c.get(f"/sales_orders/{some['id']}").json() == some
    for missing in ("1", "abc", str(some["id"] + 1)):
        response = c.get(f"/sales_orders/{missing}")
        assert response.status_code == 404 and response.json() == NOT_FOUND


def test_other_paths_answer_in_the_error_shape(sandbox):
    c = client(sandbox)
    response = c.get("/orders")
    assert response.status_code == 404 and response.json() == NOT_FOUND
    response = c.post("/sales_orders/1/capture")
    assert response.status_code == 501 and list(response.json()) == ["error"]


def test_the_recorded_answer_loads_and_comes_back_as_recorded():
    recorded = json.loads(resources.files("ledgerlink_shipmondo").joinpath("data/recorded_sales_order.json")
                          .read_text("utf-8"))
    sandbox = ShipmondoSandbox(seed=[recorded])
    c = client(sandbox)
    assert c.get(f"/sales_orders/{recorded['id']}").json() == recorded
    assert c.get("/sales_orders").json() == [recorded]


# -- control endpoints --------------------------------------------------------------------
def test_control_update_deep_merges_and_bumps_updated_at(sandbox, demo):
    target = next(o for o in demo if o["order_status"] == "open" and o["payment_status"] == "authorized")
    key = target["id"]
    gross = target["payment_details"]["amount_including_vat"]
    response = control(sandbox).post(f"/__sandbox__/sales_orders/{key}", json={
        "order_status": "sent", "fulfillment_status": "fulfilled", "payment_status": "captured",
        "payment_details": {"captured_amount": gross}, "tags": ["handled"],
        "order_fulfillments": [{"code": f"{target['order_id']}-1", "shipment_id": 1,
                                "created_at": "2026-07-01T09:00:00.000+02:00",
                                "updated_at": "2026-07-01T09:00:00.000+02:00"}],
    })
    assert response.status_code == 200
    updated = response.json()
    assert updated["order_status"] == "sent" and updated["payment_details"]["captured_amount"] == gross
    # merged, not replaced: the other payment details are still there
    assert {k: v for k, v in updated["payment_details"].items() if k != "captured_amount"} == {
        k: v for k, v in target["payment_details"].items() if k != "captured_amount"}
    assert updated["tags"] == ["handled"] and len(updated["order_fulfillments"]) == 1
    assert updated["bill_to"] == target["bill_to"] and updated["order_lines"] == target["order_lines"]
    assert STAMP.match(updated["updated_at"])
    latest = max(instant(o["updated_at"]) for o in demo)
    assert instant(updated["updated_at"]) > latest
    assert instant(updated["updated_at"]) >= datetime.now(UTC) - timedelta(seconds=5)
    c = client(sandbox)
    assert c.get(f"/sales_orders/{key}").json() == updated
    assert ids(c.get("/sales_orders", params={"updated_at_min": updated["updated_at"]})) == [key]
    # A second update moves updated_at on again; a stated updated_at is kept.
    again = control(sandbox).post(f"/__sandbox__/sales_orders/{key}", json={"archived": True}).json()
    assert instant(again["updated_at"]) > instant(updated["updated_at"])
    stated = control(sandbox).post(f"/__sandbox__/sales_orders/{key}",
                                   json={"updated_at": "2026-08-01T10:00:00.000+02:00"}).json()
    assert stated["updated_at"] == "2026-08-01T10:00:00.000+02:00"


def test_control_update_refuses(sandbox, demo):
    c = control(sandbox)
    response = c.post("/__sandbox__/sales_orders/1", json={"order_status": "sent"})
    assert response.status_code == 404 and "1" in response.json()["error"]
    key = demo[0]["id"]
    assert c.post(f"/__sandbox__/sales_orders/{key}", json=["x"]).status_code == 400
    assert c.post(f"/__sandbox__/sales_orders/{key}", json={"id": 5}).status_code == 400
    bad = c.post(f"/__sandbox__/sales_orders/{key}", json={"updated_at": "soon"})
    assert bad.status_code == 400 and "updated_at" in bad.json()["error"]
    assert sandbox.state["sales_orders"][str(key)] == demo[0]


def test_control_add_adds_and_replaces(sandbox, demo):
    c = control(sandbox)
    replaced = copy.deepcopy(demo[0])
    replaced["order_note"] = "changed"
    response = c.post("/__sandbox__/sales_orders", json=[order(7, "2026-07-01T10:00:00.000+02:00"), replaced])
    assert response.status_code == 200 and response.json() == {"ok": True, "ids": [7, replaced["id"]]}
    assert len(sandbox.state["sales_orders"]) == len(demo) + 1
    assert client(sandbox).get(f"/sales_orders/{replaced['id']}").json()["order_note"] == "changed"
    bad = c.post("/__sandbox__/sales_orders", json=[order(8, "2026-07-01T10:00:00+02:00"), {"order_id": "X"}])
    assert bad.status_code == 400 and bad.json()["error"] == "sales order 2 in the request (order_id 'X') has no id"
    assert "8" not in sandbox.state["sales_orders"]     # all or nothing
    assert c.post("/__sandbox__/sales_orders", json={"id": 9}).status_code == 400


# -- seed checks ---------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "message"), [
    ([order(1, "2026-01-01T10:00:00+01:00"), {"order_id": "NW-3"}, {"id": 3}],
     "sales order 2 in the seed (order_id 'NW-3') has no id"),
    ([{"id": "12", "created_at": "2026-01-01T10:00:00+01:00"}], "sales order 1 in the seed has id '12', not an integer"),
    ([order(1, "2026-01-01T10:00:00+01:00"), order(1, "2026-01-02T10:00:00+01:00")],
     "sales order 2 in the seed (order_id 'T-1') repeats id 1 (sales order 1)"),
    ([{"id": 4, "created_at": "2026-01-01T10:00:00+01:00"}],
     "sales order 1 in the seed has no updated_at timestamp with offset (got None)"),
    ([{"id": 4, "created_at": "2026-01-01", "updated_at": "2026-01-01T10:00:00+01:00"}],
     "sales order 1 in the seed has no created_at timestamp with offset (got '2026-01-01')"),
    ([{**order(5, "2026-01-01T10:00:00+01:00"), "order_lines": {}}],
     "sales order 1 in the seed (order_id 'T-5'): order_lines must be a list"),
    ([{**order(5, "2026-01-01T10:00:00+01:00"), "archived": "no"}],
     "sales order 1 in the seed (order_id 'T-5'): archived must be true or false"),
    ([17], "sales order 1 in the seed is not a JSON object"),
    ({"orders": []}, "unknown keys in the Shipmondo seed: ['orders'] (known: ['credentials', 'sales_orders'])"),
    ({"sales_orders": {"id": 1}}, "the sales orders in the seed must be a JSON list (an object given)"),
    ({"credentials": {"user": ""}}, "the seed's credentials must be an object of API user to API key "
                                     "(non-empty strings)"),
    ("orders.json", 'the Shipmondo seed is a JSON list of sales orders or {"credentials": {...}, '
                    '"sales_orders": [...]}'),
])
def test_a_malformed_seed_is_refused_in_one_line_and_loads_nothing(seed, message):
    with pytest.raises(ValueError) as caught:
        ShipmondoSandbox(seed=seed)
    assert str(caught.value) == message and "\n" not in message
    sandbox = ShipmondoSandbox()
    with pytest.raises(ValueError):
        sandbox.load_seed(seed)
    assert sandbox.state == sandbox.initial_state()


def test_seed_over_http_and_reset(sandbox, demo):
    c = control(sandbox)
    assert c.post("/__sandbox__/reset").json() == {"ok": True}
    assert sandbox.state["sales_orders"] == {} and sandbox.state["credentials"] == {DEMO_USER: DEMO_KEY}
    bad = c.post("/__sandbox__/seed", json=[{"order_id": "NW-1"}])
    assert bad.status_code == 400 and "sales order 1 in the seed (order_id 'NW-1') has no id" in bad.json()["error"]
    assert c.post("/__sandbox__/seed", json={"credentials": {"u2": "k2"}, "sales_orders": demo[:3]}).json() == {"ok": True}
    assert ids(client(sandbox, ("u2", "k2")).get("/sales_orders")) == [o["id"] for o in demo[:3]]


# -- request validation against the spec ---------------------------------------------------
def test_requests_are_validated_against_the_spec(sandbox, demo):
    c = client(sandbox)
    c.get("/sales_orders", params={"per_page": 25, "page": 2, "updated_at_min": "2026-01-01",
                                   "created_at_max": "2026-06-18T11:18:02.982+02:00", "archived": "false"})
    c.get(f"/sales_orders/{demo[0]['id']}")
    assert not [r for r in sandbox.requests if r.get("validation_errors")]   # what the source sends is fine
    c.get("/sales_orders", params={"since": "2026-01-01", "page": "first"})
    c.post("/sales_orders", json={"order_id": 27000, "order_lines": "none"})
    c.get("/orders")
    logged = [r["validation_errors"] for r in sandbox.requests if r.get("validation_errors")]
    assert logged == [
        ["query parameter 'since' is not in the API description", "query parameter 'page': 'first' is not an integer"],
        ["order_id: 27000 is not of type 'string'", "order_lines: 'none' is not of type 'array'"],
        ["GET /api/public/v3/orders is not in the API description"],
    ]
    assert [r["status"] for r in sandbox.requests[-3:]] == [422, 501, 404]
    assert sandbox.openapi_file == SPEC_PATH and SPEC_PATH.exists()


def test_the_kits_faults_answer_in_the_error_shape():
    sandbox = ShipmondoSandbox(demo=True, faults=Faults(rate_429=1.0, retry_after=2))
    response = client(sandbox).get("/sales_orders")
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert list(response.json()) == ["error"]
    assert sandbox.requests[-1]["fault"] == "429"


# -- persistence and the CLI -------------------------------------------------------------------
def test_state_survives_a_restart(tmp_path, demo):
    state = tmp_path / "state.json"
    first = ShipmondoSandbox(demo=True, state_path=state)
    key = demo[0]["id"]
    control(first).post(f"/__sandbox__/sales_orders/{key}", json={"order_note": "kept"})
    control(first).post("/__sandbox__/sales_orders", json=[order(7, "2026-07-01T10:00:00.000+02:00")])
    again = ShipmondoSandbox(seed=[], state_path=state)          # the state file wins over a seed
    assert again.state == first.state
    assert client(again).get(f"/sales_orders/{key}").json()["order_note"] == "kept"
    assert client(again).get("/sales_orders").headers["X-Total-Count"] == str(len(demo) + 1)


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ledgerlink._cli", "sandbox", "serve", "shipmondo", "--port", "0",
                             *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if found:
            # the rest of the paste block
            while not any(seen.startswith(f"  export {KEY_ENV}=") for seen in lines):
                lines.append(proc.stderr.readline())
            return proc, found.group(1) + "\n" + "".join(lines)
    proc.kill()
    raise AssertionError("sandbox serve did not start: " + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_sandbox_serve_with_seed_and_state_across_a_restart(tmp_path, demo):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(demo[:5]), encoding="utf-8")
    state = tmp_path / "state.json"
    proc, out = _serve("--seed", str(seed), "--state", str(state))
    try:
        url, printed = out.split("\n", 1)
        assert f'base_url = "{url}/api/public/v3"' in printed
        assert f"export {USER_ENV}={DEMO_USER}" in printed and f"export {KEY_ENV}={DEMO_KEY}" in printed
        api = httpx.Client(base_url=url + "/api/public/v3", auth=(DEMO_USER, DEMO_KEY), timeout=5)
        assert ids(api.get("/sales_orders")) == [o["id"] for o in demo[:5]]
        key = demo[4]["id"]
        assert httpx.post(f"{url}/__sandbox__/sales_orders/{key}", json={"archived": True}).status_code == 200
    finally:
        _stop(proc)
    proc, out = _serve("--state", str(state))
    try:
        url = out.split("\n", 1)[0]
        api = httpx.Client(base_url=url + "/api/public/v3", auth=(DEMO_USER, DEMO_KEY), timeout=5)
        assert ids(api.get("/sales_orders", params={"archived": "true"})) == [key]
        assert api.get("/sales_orders").headers["X-Total-Count"] == "5"
    finally:
        _stop(proc)


def test_demo_connection_and_describe(sandbox, demo):
    settings, env = sandbox.demo_connection("http://127.0.0.1:8801/")
    assert settings == {"api_user": "${SHIPMONDO_API_USER}", "api_key": "${SHIPMONDO_API_KEY}",
                        "base_url": "http://127.0.0.1:8801/api/public/v3"}
    assert env == {USER_ENV: DEMO_USER, KEY_ENV: DEMO_KEY}
    fulfilled = sum(1 for o in demo if o["fulfillment_status"] == "fulfilled")
    text = sandbox.describe()
    assert text.startswith(f"Shipmondo sandbox holds {len(demo)} sales orders ({fulfilled} fulfilled, ")
    assert "Nordlys Outlet, Nordlys Webshop" in text and "\n" not in text
    assert ShipmondoSandbox().describe() == "Shipmondo sandbox holds 0 sales orders"


# -- the demo data -----------------------------------------------------------------------------
def _money(text: Any) -> Decimal:
    assert isinstance(text, str), text
    return Decimal(text)


def _problems(o: dict[str, Any]) -> list[str]:
    """Where an order does not add up to the øre (empty: consistent)."""
    cent = Decimal("0.01")
    found = []
    pd = o["payment_details"]
    net = vat = Decimal(0)
    for line in o["order_lines"]:
        qty, unit = _money(line["quantity"]), _money(line["unit_price_excluding_vat"])
        discount, amount = _money(line["discount_amount_excluding_vat"]), _money(line["amount_excluding_vat"])
        rate, line_vat = _money(line["vat_percent"]), _money(line["vat_amount"])
        if amount != qty * unit - discount:
            found.append(f"line {line['id']}: {qty} x {unit} - {discount} != {amount}")
        if line_vat != (amount * rate).quantize(cent, rounding=ROUND_HALF_UP):
            found.append(f"line {line['id']}: VAT {line_vat} is not {rate} of {amount}")
        if _money(line["amount_including_vat"]) != amount + line_vat:
            found.append(f"line {line['id']}: gross")
        if line["currency_code"] != pd["currency_code"]:
            found.append(f"line {line['id']}: currency")
        net, vat = net + amount, vat + line_vat
    if _money(pd["amount_excluding_vat"]) != net or _money(pd["vat_amount"]) != vat:
        found.append(f"summary {pd['amount_excluding_vat']}/{pd['vat_amount']} != lines {net}/{vat}")
    if _money(pd["amount_including_vat"]) != net + vat:
        found.append("summary gross")
    rates = {line["vat_percent"] for line in o["order_lines"]}
    if pd["vat_percent"] != (rates.pop() if len(rates) == 1 else None):
        found.append("summary vat_percent")
    return found


def test_every_demo_order_adds_up_to_the_ore_but_one(demo):
    broken = {o["order_id"]: _problems(o) for o in demo if _problems(o)}
    assert len(broken) == 1, broken
    (problems,) = broken.values()
    assert problems and all(p.startswith("summary") for p in problems)   # the lines agree, the summary does not
    odd = next(o for o in demo if o["order_id"] in broken)
    assert {line["vat_percent"] for line in odd["order_lines"]} == {"0.0"}
    assert odd["payment_details"]["vat_percent"] is None
    assert odd["fulfillment_status"] == "fulfilled" and odd["payment_status"] == "captured"   # the demo picks it up
    # payments agree with the totals
    for o in demo:
        pd = o["payment_details"]
        if pd["captured_amount"] is not None:
            assert pd["captured_amount"] == pd["amount_including_vat"]
        if o["payment_status"] in (None, "authorized"):
            assert pd["captured_amount"] is None and pd["refunded_amount"] is None
        if o["payment_status"] == "refunded":
            assert pd["refunded_amount"] == pd["amount_including_vat"]
        if o["payment_status"] == "partially_refunded":
            assert Decimal(0) < _money(pd["refunded_amount"]) < _money(pd["amount_including_vat"])


def test_demo_orders_have_the_recorded_shape(demo):
    recorded = json.loads(resources.files("ledgerlink_shipmondo").joinpath("data/recorded_sales_order.json")
                          .read_text("utf-8"))
    assert 35 <= len(demo) <= 45 and len({o["id"] for o in demo}) == len(demo)
    assert len({o["order_id"] for o in demo}) == len(demo)
    line_ids = [line["id"] for o in demo for line in o["order_lines"]]
    assert len(set(line_ids)) == len(line_ids)
    for o in demo:
        assert list(o) == list(recorded), o["order_id"]
        assert list(o["bill_to"]) == list(recorded["bill_to"]) and list(o["ship_to"]) == list(recorded["ship_to"])
        assert list(o["payment_details"]) == list(recorded["payment_details"])
        assert all(list(line) == list(recorded["order_lines"][0]) for line in o["order_lines"])
        assert isinstance(o["id"], int) and o["order_id"] == o["reference"]
        assert o["order_id"].startswith({"Nordlys Webshop": "NW-", "Nordlys Outlet": "NO-"}[o["source_name"]])
        for stamp in [o["created_at"], o["updated_at"], o["ordered_at"]] + [
                f[k] for f in o["order_fulfillments"] for k in ("created_at", "updated_at")]:
            assert STAMP.match(stamp), stamp
            moment = instant(stamp)
            assert moment.year == 2026 and moment.utcoffset() == moment.astimezone(CPH).utcoffset(), stamp
        assert instant(o["ordered_at"]) <= instant(o["created_at"]) <= instant(o["updated_at"])
        if o["fulfillment_status"] == "fulfilled":
            assert o["order_status"] in ("sent", "packed") and len(o["order_fulfillments"]) == 1
            assert instant(o["order_fulfillments"][0]["created_at"]) <= instant(o["updated_at"])
        else:
            assert o["order_status"] in ("open", "cancelled") and o["order_fulfillments"] == []
        for email in (o["bill_to"]["email"], o["ship_to"]["email"]):
            assert re.search(r"[@.]example\.(com|net|org)$", email), email   # invented, reserved domains
    # the demo validates like any seed
    ShipmondoSandbox(seed=demo)


def test_demo_mix(demo):
    kinds = Counter()
    for o in demo:
        bill, ship, pd = o["bill_to"], o["ship_to"], o["payment_details"]
        rates = {line["vat_percent"] for line in o["order_lines"]}
        types = {line["line_type"] for line in o["order_lines"]}
        kinds["webshop" if o["source_name"] == "Nordlys Webshop" else "outlet"] += 1
        if ship["country_code"] == "DK":
            kinds["domestic"] += 1
        elif ship["country_code"] == "NO":
            kinds["norway"] += 1
            assert rates == {"0.0"} and o["enable_customs"]
        elif bill["vat_no"]:
            kinds["eu_business"] += 1
            assert rates == {"0.0"} and bill["country_code"] == ship["country_code"] != "DK"
            assert re.match(r"^[A-Z]{2}[0-9A-Z]+$", bill["vat_no"])
        else:
            kinds["eu_consumer"] += 1
            assert rates == {"0.25"} and ship["country_code"] in ("DE", "SE")
        kinds["eur"] += pd["currency_code"] == "EUR"
        kinds["shipping"] += "shipping" in types
        kinds["payment_fee"] += "payment_fee" in types
        kinds["discount_line"] += "discount" in types
        kinds["item_discount"] += any(_money(line["discount_amount_excluding_vat"]) > 0 for line in o["order_lines"])
        kinds["mixed_rates"] += len(rates) > 1
        kinds[f"payment {o['payment_status']}"] += 1
        kinds[f"order {o['order_status']}"] += 1
        kinds["archived"] += o["archived"]
        for line in o["order_lines"]:
            if line["line_type"] == "discount":
                assert _money(line["amount_excluding_vat"]) < 0 and _money(line["vat_amount"]) <= 0
    assert kinds["webshop"] >= 20 and kinds["outlet"] >= 10
    assert kinds["domestic"] >= 20 and kinds["eu_consumer"] >= 3 and kinds["eu_business"] >= 3
    assert kinds["norway"] >= 2 and kinds["eur"] == 1 and kinds["shipping"] == len(demo)
    assert kinds["payment_fee"] >= 1 and kinds["discount_line"] >= 1 and kinds["item_discount"] >= 3
    assert kinds["payment authorized"] >= 3 and kinds["payment None"] >= 3
    assert kinds["payment partially_refunded"] >= 1 and kinds["payment refunded"] >= 1
    assert kinds["order cancelled"] == 1 and kinds["order open"] >= 3 and kinds["order packed"] >= 1
    assert kinds["archived"] >= 1 and kinds["mixed_rates"] == 1
    # two orders handled at the same instant (a cursor on updated_at must not lose one)
    assert max(Counter(o["updated_at"] for o in demo).values()) == 2


def test_customers_who_buy_in_both_shops(demo):
    def who(o: dict[str, Any]) -> tuple[Any, ...]:
        bill = o["bill_to"]
        return bill["name"], bill["email"], bill["address1"], bill["zipcode"], bill["city"], bill["country_code"]

    shops: dict[tuple[Any, ...], set[str]] = {}
    by_email: dict[str, set[tuple[Any, ...]]] = {}
    for o in demo:
        shops.setdefault(who(o), set()).add(o["source_name"])
        by_email.setdefault(o["bill_to"]["email"], set()).add(who(o))
    assert {s for shop in shops.values() for s in shop} == {"Nordlys Webshop", "Nordlys Outlet"}
    assert len([k for k, v in shops.items() if len(v) == 2]) >= 4
    assert all(len(v) == 1 for v in by_email.values())   # one e-mail, one identical bill_to


def test_the_generator_writes_the_shipped_demo_data():
    spec = importlib.util.spec_from_file_location("make_demo_orders", PLUGIN / "scripts" / "make_demo_orders.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = resources.files("ledgerlink_shipmondo").joinpath("data/demo_seed.json").read_text("utf-8")
    assert module.render() == shipped == module.render()
