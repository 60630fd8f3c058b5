"""``ledgerlink new``: a new connector package from the templates in ``ledgerlink/scaffold/``.

A template folder per kind (``source``, ``target``, ``status-mapper``) holds the
package as it is generated, every file with a ``.tmpl`` suffix (so no tool reads the
templates as Python) and ``__package__`` where the import package's name goes. The
placeholders are ``{{name}}`` (the plugin name, ``acme``), ``{{package}}``
(``ledgerlink_acme``), ``{{dist}}`` (``ledgerlink-acme``), ``{{Class}}`` (``Acme``),
``{{ENV}}`` (``ACME``, for environment variables) and ``{{requires}}`` (the
compatible ``ledgerlink`` range, see :func:`compatible_range`).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ._errors import ConfigError
from ._version import __version__

KINDS = ("source", "target", "status-mapper")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PACKAGE_DIR = "__package__"
SUFFIX = ".tmpl"
PLACEHOLDER = re.compile(r"\{\{(name|package|dist|Class|ENV|requires)\}\}")


def compatible_range(version: str = __version__) -> str:
    """The ``ledgerlink`` requirement a plugin declares: the current minor release line
    (``>=0.1,<0.2`` for 0.1.x). Before 1.0 a minor release may change the plugin contract;
    from 1.0 on only a major one does (``>=1.2,<2``)."""
    parts = re.match(r"^(\d+)\.(\d+)", version)
    if parts is None:
        raise ValueError(f"{version!r} is not a release version")
    major, minor = int(parts.group(1)), int(parts.group(2))
    if major == 0:
        return f"ledgerlink>=0.{minor},<0.{minor + 1}"
    return f"ledgerlink>={major}.{minor},<{major + 1}"


def check_name(name: str) -> None:
    """Refuse a NAME that cannot be a plugin name and the end of a package name."""
    if not NAME.match(name) or name.endswith("_") or "__" in name:
        raise ConfigError(
            f"{name!r} is not a plugin name: use a lowercase identifier (a letter, then letters, digits "
            "or single underscores, at most 40), e.g. 'acme' or 'acme_shop'"
        )
    if keyword.iskeyword(name):
        raise ConfigError(f"{name!r} is a Python keyword; choose another plugin name")


def placeholders(name: str) -> dict[str, str]:
    return {
        "name": name,
        "package": f"ledgerlink_{name}",
        "dist": f"ledgerlink-{name}",
        "Class": "".join(part.capitalize() for part in name.split("_")),
        "ENV": name.upper(),
        "requires": compatible_range(),
    }


def render(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _walk(folder: Traversable, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _walk(entry, (*prefix, entry.name))
        elif entry.name.endswith(SUFFIX):
            yield (*prefix, entry.name[: -len(SUFFIX)]), entry


def templates(kind: str) -> list[tuple[tuple[str, ...], Traversable]]:
    """(relative path parts, template file) of every file a ``kind`` scaffold writes."""
    if kind not in KINDS:
        raise ConfigError(f"no scaffold for {kind!r} (kinds: {', '.join(KINDS)})")
    return list(_walk(resources.files("ledgerlink").joinpath("scaffold", kind)))


@dataclass
class Scaffold:
    """What ``ledgerlink new`` wrote."""

    kind: str
    name: str
    root: Path
    files: list[Path] = field(default_factory=list)

    def next_steps(self) -> list[str]:
        """The commands to run next, as ``ledgerlink new`` prints them and the generated
        README's "Install and test" gives them. ``'.[test]'``: the package's ``test``
        extra carries the test tools (pytest), so the steps work in a fresh venv."""
        return [
            f"cd {self.root}",
            "pip install -e '.[test]'",
            "pytest",
            *([f"ledgerlink sandbox serve {self.name} --demo"] if self.kind != "status-mapper" else []),
        ]


def create(kind: str, name: str, directory: Path | None = None) -> Scaffold:
    """Write the ``kind`` package for ``name`` into ``directory`` (default:
    ``./ledgerlink-NAME``), which must not exist yet."""
    check_name(name)
    values = placeholders(name)
    root = Path(directory) if directory is not None else Path(values["dist"])
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another --directory or remove it")
    files = templates(kind)
    scaffold = Scaffold(kind, name, root)
    for parts, template in files:
        target = root.joinpath(*(values["package"] if p == PACKAGE_DIR else p for p in parts))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        scaffold.files.append(target)
    return scaffold


__all__ = ["KINDS", "Scaffold", "check_name", "compatible_range", "create", "placeholders", "render", "templates"]
