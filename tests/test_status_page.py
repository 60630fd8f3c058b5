"""The status page in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

The service runs in this process on a loopback port (uvicorn), with the fake target
behind a tenant's inbox pipeline. A tenant's operator signs in with the tenant's
token, finds the invoice at 7 % quarantined with its reason (no rule books 7 %),
the admin adds the rule, the operator presses Retry and sees it pushed. The page is
saved as docs/status-page.png (the README's screenshot) when LEDGERLINK_UPDATE_SCREENSHOT=1.

Runs whenever CI=true (a missing browser is a failure there: `.ci/run` installs it);
elsewhere it skips with one line when Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs ledgerlink[server]")

CHROMIUM = os.environ.get("LEDGERLINK_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "status-page.png"
ADMIN = "status-page-admin-0123456789abcdef"


def _browser_or_skip() -> Any:
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the python package playwright (ledgerlink[server-tests])"
    if missing is None and not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        missing = f"Chromium at {CHROMIUM} (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {missing} for the browser test; .ci/run installs it")
        pytest.skip(f"no browser test: {missing} is not installed")
    return sync_playwright


class Live:
    """The service's ASGI app on a loopback port."""

    def __init__(self, asgi: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False, timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(1000):
            if self.server.started:
                port = self.server.servers[0].sockets[0].getsockname()[1]
                return f"http://127.0.0.1:{port}"
            time.sleep(0.01)
        raise AssertionError("the service did not start")

    def __exit__(self, *_: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def school(store: str, rates: tuple[str, ...]) -> dict[str, Any]:
    return {
        "connections": {"app": {"plugin": "inbox"}, "books": {"plugin": "fake-target", "store": store,
                                                              "token": "books-secret-7d1f"}},
        "pipelines": [{"name": "invoices", "source": "app", "target": "books", "matchers": ["name"],
                       "rules": [{"when": {"tax_rate": rate}, "account": "8400" if rate == "19" else "8300"}
                                 for rate in rates]}],
    }


def invoice(n: int, **kwargs: Any) -> dict[str, Any]:
    from ledgerlink.testing import sample_document

    document = sample_document(n, customer=f"k{n % 4}", **kwargs)
    document.source_ref, document.number = f"inv-{n}", f"HS-{n}"
    data: dict[str, Any] = json.loads(document.model_dump_json(exclude={"cursor"}))
    return data


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Any]:
    from ledgerlink._plugins import PluginManager
    from ledgerlink._secrets_store import SecretBox, new_key
    from ledgerlink._service import Service
    from ledgerlink.testing import fake_plugin, reset_fake_stores

    reset_fake_stores()
    svc = Service(f"sqlite:///{tmp_path / 'service.db'}", box=SecretBox([new_key()]),
                  plugins=PluginManager([fake_plugin]), workers=2)
    yield svc
    svc.close()


def test_sign_in_see_the_quarantined_invoice_fix_the_rule_retry_see_it_pushed(service: Any, tmp_path: Path) -> None:
    sync_playwright = _browser_or_skip()
    from fastapi.testclient import TestClient
    from ledgerlink._server import create_app
    from ledgerlink.testing import fake_store
    from sqlalchemy import text

    asgi, _ = create_app(service, admin=ADMIN)
    api = TestClient(asgi)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    base = "/v1/tenants/pfotenglueck"
    assert api.put(base, json=school("pfoten", ("19",)), headers=admin).status_code == 201
    assert api.put("/v1/tenants/wuffhausen", json=school("wuff", ("19",)), headers=admin).status_code == 201
    token = api.post(f"{base}/tokens", json={"label": "operator"}, headers=admin).json()["token"]
    posted = [invoice(n) for n in range(1, 9)] + [invoice(9, rate="7")]
    assert api.post(f"{base}/pipelines/invoices/backfill", json=posted, headers=admin).status_code == 202
    assert api.post("/v1/tenants/wuffhausen/pipelines/invoices/documents", json=invoice(1),
                    headers=admin).status_code == 202
    assert service.workers.wait_idle(60)
    # inv-1 changed after transfer (a new total under the same id): listed, never sent again
    api.post(f"{base}/pipelines/invoices/documents", json=invoice(1, gross="129.00"), headers=admin)
    assert service.workers.wait_idle(60)
    # History for the chart: the ledger's pushed_at of five invoices set back one to five days
    # (all were transferred just now); the page must count them on those days.
    today = datetime.now(UTC).date()
    with service.ledger.engine.begin() as db:
        for n in range(2, 7):
            db.execute(text("UPDATE documents SET pushed_at = :at WHERE pipeline = :p AND source_ref = :ref"),
                       {"at": datetime.now(UTC) - timedelta(days=n - 1), "p": "tenant:pfotenglueck:invoices",
                        "ref": f"inv-{n}"})

    with Live(asgi) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/")
            assert page.url == url + "/login"
            page.get_by_label("Token").fill("llk_0000000000000000_wrong")
            page.get_by_role("button", name="Sign in").click()
            assert "unknown or revoked" in page.get_by_role("alert").inner_text()
            page.get_by_label("Token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            assert page.url == url + "/"
            cookie = next(c for c in page.context.cookies() if c["name"] == "ledgerlink_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]
            assert "Signed in for tenant pfotenglueck" in page.locator("header").inner_text()
            assert "wuffhausen" not in page.content()  # the tenant's view holds no other tenant
            # the quarantined invoice and its reason, through the state filter
            page.get_by_label("State").select_option("quarantined")
            page.get_by_role("button", name="Filter").click()
            rows = page.locator("#documents tbody tr")
            assert rows.count() == 1
            row = rows.first
            assert row.get_attribute("data-document") == "inv-9"
            assert row.locator(".state").inner_text() == "quarantined"
            assert "no rule of pipeline 'invoices' books line 1" in row.inner_text() and "7%" in row.inner_text()
            # changed after transfer, listed with what changed
            changed = page.locator("section", has=page.get_by_role("heading", name="Changed after transfer"))
            assert "inv-1" in changed.inner_text() and "changed after transfer" in changed.inner_text()
            # the README's screenshot: every state, the quarantined invoice with its Retry button
            page.get_by_label("State").select_option("")
            page.get_by_role("button", name="Filter").click()
            assert page.locator("#documents tbody tr").count() == 9
            assert "books-secret-7d1f" not in page.content()
            # Saved beside the test's files; LEDGERLINK_UPDATE_SCREENSHOT=1 refreshes the
            # README's copy (a test run leaves the work tree as it found it).
            shot = SCREENSHOT if os.environ.get("LEDGERLINK_UPDATE_SCREENSHOT") == "1" else \
                tmp_path / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            # the cause fixed (a rule for 7 %), then Retry in the browser
            row = page.locator("#documents tbody tr[data-document='inv-9']")
            assert api.put(base, json=school("pfoten", ("19", "7")), headers=admin).status_code == 200
            row.get_by_role("button", name="Retry inv-9").click()
            assert "inv-9: retry queued." in page.get_by_role("status").inner_text()
            assert service.workers.wait_idle(60)
            page.reload()
            row = page.locator("#documents tbody tr[data-document='inv-9']")
            assert row.locator(".state").inner_text() == "pushed"
            assert "HS-9" in row.inner_text()
            assert [w[1] for w in fake_store("pfoten")["writes"]].count("inv-9") == 1
            # the chart counts per day (its table): today 4 (inv-1, 7, 8, 9), one on each of 5 days before
            figures = {r.locator("td").first.text_content(): r.locator("td").last.text_content()
                       for r in page.locator("details table tbody tr").all()}
            assert figures[today.isoformat()] == "4"
            assert [figures[(today - timedelta(days=d)).isoformat()] for d in range(1, 6)] == ["1"] * 5
            # signing out ends the session: the page asks to sign in again
            page.get_by_role("button", name="Sign out").click()
            assert page.url == url + "/login"
            page.goto(url + "/")
            assert page.url == url + "/login"
        finally:
            browser.close()
