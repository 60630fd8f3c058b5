"""``ledgerlink new``: the generated packages install and pass their own tests.

Each kind is generated into a temporary directory and "installed" the way
``pip install -e .`` installs it, without touching this venv: the package directory
goes on ``PYTHONPATH`` together with a ``*.dist-info`` holding the entry points read
from the generated ``pyproject.toml`` (that is what makes ``importlib.metadata``,
and so ledgerlink's plugin manager, find the plugin). Its tests then run in a
fresh ``python -m pytest`` process.
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


def install_on_path(package_dir: Path, site: Path) -> dict[str, str]:
    """What ``pip install -e`` gives the package: importable, its entry points registered.
    Returns the environment for a subprocess."""
    project = tomllib.loads((package_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    requires = "".join(f"Requires-Dist: {r}\n" for r in project["dependencies"])
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n{requires}", encoding="utf-8")
    groups = project.get("entry-points", {})
    (dist_info / "entry_points.txt").write_text(
        "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in groups.items()),
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LEDGERLINK_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(package_dir)])
    return env


@pytest.mark.parametrize("kind", KINDS)
def test_the_generated_package_passes_its_own_tests(kind: str, tmp_path: Path) -> None:
    package = new(kind, "acme", tmp_path / "plugins" / "ledgerlink-acme")
    env = install_on_path(package, tmp_path / "site")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], cwd=package,
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
    assert lines[-5:] == ["next:", "  cd ledgerlink-acme", "  pip install -e .", "  pytest",
                          "  ledgerlink sandbox serve acme"]
    written = sorted(p.relative_to(tmp_path / "ledgerlink-acme").as_posix()
                     for p in (tmp_path / "ledgerlink-acme").rglob("*") if p.is_file())
    assert written == sorted(line.strip() for line in lines[1:-5])


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
