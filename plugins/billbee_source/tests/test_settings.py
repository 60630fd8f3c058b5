"""The settings: the shared vocabulary, units and defaults, and what reaches the HTTP client."""

from __future__ import annotations

from typing import Any

import pytest
from billbee_testkit import base_settings, fast_http
from ledgerlink import ConnectorContext
from ledgerlink_billbee.source import BillbeeSettings, BillbeeSource
from pydantic import ValidationError


def test_every_setting_is_described() -> None:
    for name, field in BillbeeSettings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_defaults() -> None:
    settings = BillbeeSettings.model_validate(base_settings())
    assert settings.timeout is None and settings.page_size == 250 and settings.overlap_minutes == 10


def test_seller_country_is_not_a_setting() -> None:
    with pytest.raises(ValidationError, match="seller_country"):
        BillbeeSettings.model_validate(base_settings(seller_country="DE"))


def test_timeout_reaches_the_http_client() -> None:
    calls: list[dict[str, Any]] = []

    def factory(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return fast_http(**kwargs)

    source = BillbeeSource(base_settings(timeout=7.5), ConnectorContext(connection="bb", http_factory=factory))
    try:
        assert source.client is not None
        assert calls[0]["timeout"] == 7.5
    finally:
        source.close()


def test_without_a_timeout_the_http_clients_default_applies() -> None:
    calls: list[dict[str, Any]] = []

    def factory(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return fast_http(**kwargs)

    source = BillbeeSource(base_settings(), ConnectorContext(connection="bb", http_factory=factory))
    try:
        assert source.client is not None
        assert "timeout" not in calls[0]  # the HTTP client's 30 s, or LEDGERLINK_HTTP_TIMEOUT
    finally:
        source.close()
