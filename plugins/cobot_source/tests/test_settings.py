"""The settings: the shared vocabulary, units and defaults, and what reaches the HTTP client."""

from __future__ import annotations

from typing import Any

import pytest
from ledgerlink import ConnectorContext
from ledgerlink.testing import make_http_client
from ledgerlink_cobot.source import CobotSettings, CobotSource
from pydantic import ValidationError

REQUIRED = {"api_token": "tok-cobot-settings", "subdomain": "co-up", "start_date": "2024-01-01"}


def test_every_setting_is_described() -> None:
    for name, field in CobotSettings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_defaults_keep_cobots_limits_per_second() -> None:
    settings = CobotSettings(**REQUIRED)
    assert settings.requests_per_second == 1.0  # Cobot: 60 a minute
    assert settings.memberships_requests_per_second == 0.1  # Cobot: 6 a minute
    assert settings.timeout is None and settings.page_size == 200
    assert settings.base_url == "https://api.cobot.me" and settings.api1_url == "https://co-up.cobot.me/api"


@pytest.mark.parametrize("old", ["access_token", "base_url_v2", "requests_per_minute",
                                 "memberships_requests_per_minute", "seller_country"])
def test_old_names_are_refused(old: str) -> None:
    with pytest.raises(ValidationError, match=old):
        CobotSettings(**REQUIRED, **{old: "x"})


def test_timeout_and_rates_reach_the_http_clients() -> None:
    calls: list[dict[str, Any]] = []

    def factory(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return make_http_client(**kwargs)

    settings = CobotSettings(**REQUIRED, timeout=7.5, requests_per_second=2.5, base_url="http://v2.test")
    source = CobotSource(settings, ConnectorContext(connection="cobot-test", http_factory=factory))
    try:
        source._client(1)
        source._client(2)
        assert [c["timeout"] for c in calls] == [7.5, 7.5]
        assert [c["rate_limits"][0].rate for c in calls] == [2.5, 2.5]
        assert calls[1]["base_url"] == "http://v2.test/"
        assert source._memberships_limit()[0].rate == 0.1
    finally:
        source.close()


def test_without_a_timeout_the_http_clients_default_applies() -> None:
    calls: list[dict[str, Any]] = []

    def factory(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return make_http_client(**kwargs)

    source = CobotSource(CobotSettings(**REQUIRED), ConnectorContext(connection="cobot-test", http_factory=factory))
    try:
        source._client(1)
        source._client(2)
        assert [("timeout" in c) for c in calls] == [False, False]
    finally:
        source.close()
