"""``ledgerlink new``: the generated packages install and pass their own tests.

Each kind is generated into a temporary directory and installed for real, without
touching this venv or the network: ``pip install --no-deps --no-build-isolation
--no-index --target SITE PACKAGE_DIR`` builds it with the generated ``pyproject.toml``
(its build backend, setuptools>=77, comes from requirements-dev.txt) and writes the
package, its data files and its ``*.dist-info`` (entry points included, which is what
makes ledgerlink's plugin manager find the plugin) into ``SITE``. Its tests then run
in a fresh ``python -P -m pytest`` process with ``PYTHONPATH=SITE`` (``-P``: the
package directory is not on ``sys.path``, so the installed copy is the one tested).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from ledgerlink import __version__
from ledgerlink._scaffold import KINDS, compatible_range, render, templates
from ledgerlink.testing import invoke_cli

REPO = Path(__file__).resolve().parents[2]
CORE_PACKAGE = REPO / "core" / "ledgerlink"
#: at least this many tests each generated package runs and passes: its own tests plus the
#: contract suite's (a template that loses its tests, or a suite that is skipped, fails here)
MIN_TESTS = {"source": 20, "target": 20, "status-mapper": 5}


def architecture() -> ModuleType:
    """The import-rule and vendor-name checkers of test_architecture.py."""
    path = Path(__file__).with_name("test_architecture.py")
    spec = importlib.util.spec_from_file_location("_architecture_checks", path)
    assert spec and spec.loader
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return module


def new(kind: str, name: str, directory: Path) -> Path:
    result = invoke_cli(["new", kind, name, "--directory", str(directory)], fakes=False)
    assert result.exit_code == 0, result.stderr
    return directory


def install(package_dir: Path, site: Path) -> dict[str, str]:
    """Install the package into ``site`` with pip (no dependencies, no index, this venv's
    setuptools as the build backend). Returns the environment for a subprocess that
    sees it: ``PYTHONPATH=site`` and nothing of the calling pytest."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--no-input", "--quiet", "--target", str(site), str(package_dir)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip install of {package_dir.name} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "LEDGERLINK_", "PIP_")) and k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    env["PYTHONPATH"] = str(site)
    return env


@pytest.mark.parametrize("kind", KINDS)
def test_the_generated_package_passes_its_own_tests(kind: str, tmp_path: Path) -> None:
    package = new(kind, "acme", tmp_path / "plugins" / "ledgerlink-acme")
    site = tmp_path / "site"
    env = install(package, site)
    # Installed, not borrowed from the source tree: the module, its entry point and its
    # data files come from SITE.
    probe = subprocess.run(
        [sys.executable, "-P", "-c",
         "import importlib.metadata as m, ledgerlink_acme as p; print(p.__file__); "
         "print(*sorted(f'{e.name}={e.value}' for e in m.entry_points(group='ledgerlink')), sep='\\n')"],
        cwd=package, env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr[-2000:]
    module_file, *entry_points = probe.stdout.splitlines()
    assert Path(module_file).is_relative_to(site), module_file
    assert "acme=ledgerlink_acme.plugin" in entry_points, entry_points
    if kind == "source":
        assert (site / "ledgerlink_acme" / "data" / "demo_seed.json").is_file()
    proc = subprocess.run([sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider"], cwd=package,
                          env=env, capture_output=True, text=True, timeout=300)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = re.match(r"^(\d+) passed in ", summary)  # nothing skipped, failed or in error
    assert passed and int(passed.group(1)) >= MIN_TESTS[kind], summary


@pytest.mark.parametrize("kind", KINDS)
def test_the_generated_package_follows_the_import_rule_lints_clean_and_names_no_vendor(kind: str, tmp_path: Path) -> None:
    checks = architecture()
    new(kind, "acme", tmp_path / "plugins" / "ledgerlink-acme")
    violations = checks.plugin_import_violations(tmp_path / "plugins", CORE_PACKAGE)
    assert not violations, checks.plugin_import_report(violations, tmp_path)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--config", str(REPO / "pyproject.toml"),
                           str(tmp_path / "plugins")], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-1000:]
    texts = [template.read_text(encoding="utf-8").lower() for _, template in templates(kind)]
    named = sorted({v for v in checks.VENDORS for text in texts if v in text})
    assert not named, f"the {kind} templates name bundled vendors: {named}"


@pytest.mark.parametrize("kind", KINDS)
def test_pyproject_declares_the_entry_point_and_the_compatible_range(kind: str, tmp_path: Path) -> None:
    package = new(kind, "acme_shop", tmp_path / "out")
    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "ledgerlink-acme_shop"
    assert project["dependencies"] == [compatible_range(__version__)]
    assert project["entry-points"]["ledgerlink"] == {"acme_shop": "ledgerlink_acme_shop.plugin"}
    assert (package / "ledgerlink_acme_shop" / "plugin.py").is_file()
    assert "| setting |" in (package / "README.md").read_text(encoding="utf-8") or kind == "status-mapper"
    leftover = [p for p in package.rglob("*") if p.is_file() and re.search(r"\{\{\w+\}\}", p.read_text("utf-8"))]
    assert not leftover, f"placeholders left in {leftover}"


def test_compatible_range_is_the_current_minor_release_line() -> None:
    assert compatible_range("0.1.0") == "ledgerlink>=0.1,<0.2"
    assert compatible_range("0.12.3") == "ledgerlink>=0.12,<0.13"
    assert compatible_range("1.2.0") == "ledgerlink>=1.2,<2"
    with pytest.raises(ValueError):
        compatible_range("main")


def test_render_fills_only_known_placeholders() -> None:
    values = {"name": "acme", "package": "ledgerlink_acme", "dist": "ledgerlink-acme", "Class": "Acme",
              "ENV": "ACME", "requires": "ledgerlink>=0.1,<0.2"}
    assert render('f"{{Class}} {x}" "${{{ENV}}_TOKEN}" {{other}}', values) == 'f"Acme {x}" "${ACME_TOKEN}" {{other}}'


def test_it_prints_what_it_created_and_the_next_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke_cli(["new", "source", "acme"], fakes=False)
    assert result.exit_code == 0, result.stderr
    lines = result.output.splitlines()
    assert lines[0] == "created the source package ledgerlink-acme in ledgerlink-acme:"
    assert "  ledgerlink_acme/source.py" in lines and "  tests/test_contract.py" in lines
    assert lines[-5:] == ["next:", "  cd ledgerlink-acme", "  pip install -e '.[test]'", "  pytest",
                          "  ledgerlink sandbox serve acme --demo"]
    written = sorted(p.relative_to(tmp_path / "ledgerlink-acme").as_posix()
                     for p in (tmp_path / "ledgerlink-acme").rglob("*") if p.is_file())
    assert written == sorted(line.strip() for line in lines[1:-5])


@pytest.mark.parametrize("kind", KINDS)
def test_the_printed_next_steps_are_the_readmes_install_and_test(kind: str, tmp_path: Path) -> None:
    """A new author copies either; both install the test extra (pytest is not a runtime
    dependency, so a plain ``pip install -e .`` in a fresh venv leaves ``pytest`` missing)."""
    result = invoke_cli(["new", kind, "acme", "--directory", str(tmp_path / "out")], fakes=False)
    assert result.exit_code == 0, result.stderr
    printed = result.output.splitlines()
    steps = [line.strip() for line in printed[printed.index("next:") + 1:]]
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Install and test\n\n```sh\n(.*?)```", readme, re.S)
    assert block, "the README has no 'Install and test' block"
    assert block.group(1).splitlines() == steps[1:3] == ["pip install -e '.[test]'", "pytest"]
    project = tomllib.loads((tmp_path / "out" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(r.startswith("pytest") for r in project["optional-dependencies"]["test"])
    assert not any(r.startswith("pytest") for r in project["dependencies"])
    # what the generated tests import from outside the package, ledgerlink and the standard library
    # is in the test extra
    third_party = set()
    for test_file in (tmp_path / "out" / "tests").glob("*.py"):
        for m in re.finditer(r"^(?:from|import) (\w+)", test_file.read_text(encoding="utf-8"), re.M):
            if m.group(1) not in sys.stdlib_module_names and m.group(1) not in ("ledgerlink", "ledgerlink_acme"):
                third_party.add(m.group(1))
    extra = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in project["optional-dependencies"]["test"]}
    assert third_party <= extra, f"the tests import {sorted(third_party - extra)}, not in the test extra"


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme-shop", "acme_", "a__b", "class", "", "x" * 41])
def test_a_bad_name_is_refused_in_one_line(name: str, tmp_path: Path) -> None:
    result = invoke_cli(["new", "source", name, "--directory", str(tmp_path / "out")], fakes=False)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_an_existing_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    existing = tmp_path / "ledgerlink-acme"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep", encoding="utf-8")
    result = invoke_cli(["new", "target", "acme", "--directory", str(existing)], fakes=False)
    assert result.exit_code == 2
    assert result.stderr == f"error: {existing} already exists; choose another --directory or remove it\n"
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]


def test_an_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke_cli(["new", "matcher", "acme", "--directory", str(tmp_path / "x")], fakes=False)
    assert result.exit_code == 2 and "'matcher' is not one of" in result.stderr
