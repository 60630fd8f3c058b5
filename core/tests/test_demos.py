"""Demos are declared by plugins (``ledgerlink_register_demos``); the core picks one by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ledgerlink import ConfigError, Demo, hookimpl
from ledgerlink._demo import choose_demo, default_pipeline, write_config
from ledgerlink.testing import PluginManager


class _Demos:
    distribution = "ledgerlink-demo-test"

    @staticmethod
    @hookimpl
    def ledgerlink_register_demos(register: Callable[..., None]) -> None:
        register("zeta", Demo(source="fake-source", target="fake-target", description="second"))
        register("alpha", Demo(source="fake-source", target="fake-target", description="first"))


def test_ledgerlink_register_demos_fills_the_registry_and_a_demo_is_chosen_by_name() -> None:
    registry = PluginManager(extra_plugins=[_Demos()], autoload=False).registry
    assert registry.names("demo") == ["alpha", "zeta"]
    assert registry.get("demo", "zeta").distribution == "ledgerlink-demo-test"
    assert choose_demo(registry, "zeta") == ("zeta", Demo("fake-source", "fake-target", "second"))
    name, demo = choose_demo(registry, None)
    assert name == "alpha" and demo.description == "first"


def test_an_unknown_demo_names_the_available_ones() -> None:
    registry = PluginManager(extra_plugins=[_Demos()], autoload=False).registry
    with pytest.raises(ConfigError, match=r"no demo named 'beta' \(available: alpha, zeta\)"):
        choose_demo(registry, "beta")


def test_without_demo_plugins_the_demo_says_what_to_install() -> None:
    registry = PluginManager(autoload=False).registry
    with pytest.raises(ConfigError, match="no installed plugin offers a demo"):
        choose_demo(registry, None)


def test_the_demo_config_takes_the_target_sandbox_rules_and_a_storys_second_pipeline(tmp_path) -> None:
    path = tmp_path / "ledgerlink.toml"
    first = {**default_pipeline(), "rules": [{"when": {"tax_rate": 7}, "account": "8300"},
                                             {"when": {}, "account": "8400"}]}
    second = {**first, "name": "outlet-to-books", "source": "outlet", "customer_scope": "shops", "rules": []}
    write_config(path, "test", {"shop": {"plugin": "fake-source", "store": "s"},
                                "outlet": {"plugin": "fake-source", "secret": {"file": "secrets/x"}},
                                "books": {"plugin": "fake-target", "store": "t"}}, [first, second])
    text = path.read_text()
    assert 'plugin = "fake-source"' in text and 'plugin = "fake-target"' in text
    assert text.count("[[pipelines.rules]]") == 2 and text.count("[[pipelines]]") == 2
    assert 'when = { tax_rate = 7 }\naccount = "8300"' in text
    assert 'secret = { file = "secrets/x" }' in text
    import tomllib

    data = tomllib.loads(text)
    assert [p["name"] for p in data["pipelines"]] == ["shop-to-books", "outlet-to-books"]
    assert data["pipelines"][1]["customer_scope"] == "shops" and "rules" not in data["pipelines"][1]
