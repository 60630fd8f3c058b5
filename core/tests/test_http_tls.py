"""Every HttpClient of a process shares one TLS context (made once, not per client).

Making a context loads the CA bundle (~30 ms of CPU). A run makes a client per
connection, and a worker running thousands of tenant pipelines one per run; the
workers benchmark showed it as ~2 ms per document at 20 documents a run.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest
from ledgerlink import _http
from ledgerlink._http import HttpClient, shared_ssl_context


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    _http._ssl_context_for.cache_clear()
    yield
    _http._ssl_context_for.cache_clear()


def test_clients_share_one_context_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    clients = [HttpClient(vendor="Acme", base_url="https://acme.test", connection=f"c{n}") for n in range(10)]
    try:
        assert len(made) == 1, f"{len(made)} TLS contexts made for 10 clients"
        assert made[0] == {"cafile": certifi.where()}  # what httpx.Client() itself would load
    finally:
        for client in clients:
            client.close()


def test_the_operators_ca_bundle_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    default = shared_ssl_context()
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    assert default.cert_store_stats()["x509_ca"] > 50  # certifi's bundle
    one = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                    Path(certifi.where()).read_text(), re.S)
    assert one is not None
    bundle = tmp_path / "company-ca.pem"
    bundle.write_text(one.group(0) + "\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # a company proxy's CA, say
    own = shared_ssl_context()
    assert own is not default
    assert own.cert_store_stats()["x509_ca"] == 1
    assert shared_ssl_context() is own  # made once for this bundle too
