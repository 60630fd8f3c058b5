"""Meta-tests: the architecture rules, checked on the source with ``ast``.

The one import rule (docs/architecture.md):

    A plugin, its sandbox and its tests import only ``ledgerlink`` and
    ``ledgerlink.testing``; never another plugin; never a ``ledgerlink._`` module.
    The core never imports a plugin.

Checked here:

a. plugins import only ``ledgerlink`` / ``ledgerlink.testing`` and their own package;
b. the core's import graph has no cycle (``if TYPE_CHECKING:`` imports do not count),
   only ``testing.py`` imports pytest at module level, ``_plugins.py`` does not
   import the test kit;
c. no bundled vendor's name appears in core code (docstrings may name them);
d. ``docs/records.md`` is what ``ledgerlink._records_doc`` generates.

Each checker is a pure function of a directory, so the self-tests below can feed
it a synthetic tree with a known violation. Modules and plugins are discovered by
listing directories; nothing here names a module of the core or a plugin.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE_PACKAGE = REPO / "core" / "ledgerlink"
PLUGINS = REPO / "plugins"
RECORDS_DOC = REPO / "docs" / "records.md"

IMPORT_RULE = (
    "A plugin, its sandbox and its tests import only `ledgerlink` and `ledgerlink.testing`;"
    " never another plugin; never a `ledgerlink._` module. The core never imports a plugin."
)
SKIP_DIRS = {"build", "dist", ".venv", "venv", "__pycache__", ".git", "node_modules"}


# --------------------------------------------------------------------------- helpers


def python_files(root: Path) -> Iterator[Path]:
    """Every .py file under ``root``, skipping build output, venvs and *.egg-info."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if any(p in SKIP_DIRS or p.endswith(".egg-info") or p.startswith(".") for p in parts):
            continue
        yield path


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


@dataclass(frozen=True)
class ImportSite:
    """One import statement (or ``importlib.import_module("...")`` call)."""

    lineno: int
    module: str  # absolute module for ``import x`` / ``from x import``; "" for a pure relative
    names: tuple[str, ...]  # the names of ``from x import a, b`` (empty for ``import x``)
    level: int  # relative-import level (0: absolute)
    in_function: bool  # inside a function body (imported when called, not at import time)
    text: str  # the statement as written, for messages


def import_sites(tree: ast.Module, *, skip_type_checking: bool = True) -> list[ImportSite]:
    """Every import in a module, with whether it sits in a function.

    Imports under ``if TYPE_CHECKING:`` are left out (they never run) unless
    ``skip_type_checking`` is false; the ``else:`` branch of such an ``if`` counts.
    """
    sites: list[ImportSite] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and skip_type_checking and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                sites.append(
                    ImportSite(node.lineno, alias.name, (), 0, in_function, f"import {alias.name}")
                )
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            dots = "." * node.level
            sites.append(
                ImportSite(
                    node.lineno,
                    node.module or "",
                    names,
                    node.level,
                    in_function,
                    f"from {dots}{node.module or ''} import {', '.join(names)}",
                )
            )
        elif isinstance(node, ast.Call) and _is_import_module_call(node):
            target = node.args[0].value  # type: ignore[attr-defined]
            sites.append(
                ImportSite(node.lineno, target, (), 0, in_function, f"import_module({target!r})")
            )
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return sites


def _is_import_module_call(node: ast.Call) -> bool:
    """``importlib.import_module("x")`` / ``import_module("x")`` / ``__import__("x")``
    with a literal absolute module name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return False
    first = node.args[0]
    return (
        isinstance(first, ast.Constant)
        and isinstance(first.value, str)
        and not first.value.startswith(".")
    )


# --------------------------------------------------------------------------- a. plugin imports


@dataclass(frozen=True)
class Violation:
    path: Path
    lineno: int
    text: str
    why: str

    def show(self, root: Path) -> str:
        try:
            where = self.path.relative_to(root)
        except ValueError:
            where = self.path
        return f"{where}:{self.lineno}: {self.text}  ({self.why})"


def own_packages(plugin_dir: Path) -> set[str]:
    """The import packages a plugin distribution ships: its directories with an
    ``__init__.py`` (directly under the plugin, or under ``src/``)."""
    found = set()
    for base in (plugin_dir, plugin_dir / "src"):
        if base.is_dir():
            for child in base.iterdir():
                if child.is_dir() and (child / "__init__.py").is_file():
                    found.add(child.name)
    return found


def core_submodules(core_package: Path) -> set[str]:
    """The names of the core package's submodules (``api``, ``testing``, ``_http``, ...)."""
    names = {p.stem for p in core_package.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in core_package.iterdir() if (p / "__init__.py").is_file()}
    return names


ALLOWED_CORE = {"ledgerlink", "ledgerlink.testing"}


def _core_violation(site: ImportSite, submodules: set[str]) -> str | None:
    """Why this import of the core breaks the rule (None when it is allowed)."""
    top = site.module.split(".")[0]
    if site.level or top != "ledgerlink":
        return None
    if site.module not in ALLOWED_CORE:
        return f"{site.module} is not public: use `ledgerlink` or `ledgerlink.testing`"
    if site.module == "ledgerlink":
        for name in site.names:
            private = name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
            if private or (name in submodules and f"ledgerlink.{name}" not in ALLOWED_CORE):
                return f"ledgerlink.{name} is not public: use `ledgerlink` or `ledgerlink.testing`"
    return None


def plugin_import_violations(
    plugins_dir: Path, core_package: Path | None = None
) -> list[Violation]:
    """Imports in ``plugins_dir/*/**.py`` that break the rule: a core module other
    than ``ledgerlink`` and ``ledgerlink.testing``, or another plugin's package
    (any ``ledgerlink_*`` package the plugin does not ship itself)."""
    submodules = core_submodules(core_package) if core_package else set()
    violations: list[Violation] = []
    for plugin_dir in sorted(p for p in plugins_dir.iterdir() if p.is_dir()):
        if plugin_dir.name in SKIP_DIRS or plugin_dir.name.startswith("."):
            continue
        mine = own_packages(plugin_dir)
        for path in python_files(plugin_dir):
            for site in import_sites(parse(path), skip_type_checking=False):
                why = _core_violation(site, submodules)
                top = site.module.split(".")[0]
                if (
                    why is None
                    and not site.level
                    and top.startswith("ledgerlink_")
                    and top not in mine
                ):
                    why = f"{top} is another plugin's package"
                if why:
                    violations.append(Violation(path, site.lineno, site.text, why))
    return violations


def plugin_import_report(violations: list[Violation], root: Path) -> str:
    """The failure message: the rule in one line, then every offending import."""
    return f"{len(violations)} import(s) break the rule. {IMPORT_RULE}\n" + "\n".join(
        v.show(root) for v in violations
    )


def test_plugins_import_only_the_public_face():
    violations = plugin_import_violations(PLUGINS, CORE_PACKAGE)
    assert not violations, plugin_import_report(violations, REPO)


def core_plugin_imports(package_dir: Path) -> list[str]:
    """Imports of a plugin package (any ``ledgerlink_*``) in the core: it finds
    plugins only through entry points and the registry."""
    found = []
    for path in python_files(package_dir):
        for site in import_sites(parse(path), skip_type_checking=False):
            if not site.level and site.module.split(".")[0].startswith("ledgerlink_"):
                found.append(f"{path.relative_to(package_dir.parent)}:{site.lineno}: {site.text}")
    return found


def test_core_imports_no_plugin():
    found = core_plugin_imports(CORE_PACKAGE)
    assert not found, f"{IMPORT_RULE}\n" + "\n".join(found)


# --------------------------------------------------------------------------- b. core import graph


def module_name(package_dir: Path, path: Path, package: str) -> str:
    rel = path.relative_to(package_dir).with_suffix("").parts
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join((package, *rel))


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    lineno: int
    text: str
    in_function: bool


def core_modules(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module of the package, by dotted name (the package itself for __init__)."""
    return {module_name(package_dir, p, package): p for p in python_files(package_dir)}


def import_edges(package_dir: Path, package: str = "ledgerlink") -> list[Edge]:
    """The package's internal import graph, module- and function-level imports alike,
    without ``if TYPE_CHECKING:`` imports.

    ``from . import x`` is an edge to the submodule ``x`` when there is one, else to
    the package ``__init__`` (``x`` is then a name it exports). ``from .x import y``
    is an edge to ``x`` (and to ``x.y`` when that is a submodule).
    """
    modules = core_modules(package_dir, package)
    edges: list[Edge] = []
    for source, path in modules.items():
        is_package = path.name == "__init__.py"
        for site in import_sites(parse(path)):
            if site.level:
                parts = source.split(".") if is_package else source.split(".")[:-1]
                drop = site.level - 1
                base = parts[: len(parts) - drop] if drop else parts
                target = ".".join([*base, site.module] if site.module else base)
            else:
                target = site.module
            if target not in modules:
                # ``import ledgerlink.x.y`` or a name inside a module: walk up to a module.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if not target:
                    continue
            targets = []
            for name in site.names:
                sub = f"{target}.{name}"
                if sub in modules:
                    targets.append(sub)
                elif target not in targets:
                    targets.append(target)
            if not site.names:
                targets.append(target)
            for t in targets:
                edges.append(Edge(source, t, site.lineno, site.text, site.in_function))
                # Importing ``pkg.sub.x`` first runs ``pkg/sub/__init__.py``: an edge to
                # every package above the target that the importer is not itself inside
                # (those are already being imported when the importer runs).
                parts = t.split(".")
                for depth in range(1, len(parts)):
                    parent = ".".join(parts[:depth])
                    inside = source == parent or source.startswith(parent + ".")
                    if parent in modules and parent != t and not inside:
                        edges.append(Edge(source, parent, site.lineno, site.text, site.in_function))
    return edges


def strongly_connected(nodes: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Tarjan's strongly connected components (each sorted; the list sorted)."""
    graph: dict[str, set[str]] = {n: set() for n in nodes}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(out)


def _cycle_through(start: str, members: set[str], edges: list[Edge]) -> list[Edge]:
    """The shortest cycle from ``start`` back to itself inside one component."""
    out: dict[str, list[Edge]] = {}
    for e in edges:
        if e.source in members and e.target in members:
            out.setdefault(e.source, []).append(e)
    paths: dict[str, list[Edge]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for e in sorted(out.get(node, []), key=lambda e: (e.target, e.lineno)):
            if e.target == start:
                return [*paths[node], e]
            if e.target not in paths:
                paths[e.target] = [*paths[node], e]
                queue.append(e.target)
    return []


def import_cycles(package_dir: Path, package: str = "ledgerlink") -> list[str]:
    """Each import cycle as ``a (line N: import ...) -> b (...) -> a``."""
    edges = import_edges(package_dir, package)
    cycles = []
    for component in strongly_connected(core_modules(package_dir, package), edges):
        members = set(component)
        self_loop = len(component) == 1 and any(e.source == e.target == component[0] for e in edges)
        if len(component) < 2 and not self_loop:
            continue
        chain = _cycle_through(component[0], members, edges)
        text = component[0] + "".join(
            f" (line {e.lineno}: {e.text}{', in a function' if e.in_function else ''}) -> {e.target}"
            for e in chain
        )
        if len(component) > 2:
            text += f"   [component: {', '.join(component)}]"
        cycles.append(text)
    return cycles


def module_level_imports_of(
    package_dir: Path, module: str, package: str = "ledgerlink"
) -> list[str]:
    """Modules of the package that import ``module`` outside functions."""
    found = []
    for name, path in sorted(core_modules(package_dir, package).items()):
        for site in import_sites(parse(path)):
            if not site.in_function and not site.level and site.module.split(".")[0] == module:
                found.append(f"{name}:{site.lineno}: {site.text}")
    return found


def imports_of(
    package_dir: Path, source: str, target: str, package: str = "ledgerlink"
) -> list[Edge]:
    """Edges (any level) from module ``source`` to module ``target``."""
    return [
        e for e in import_edges(package_dir, package) if e.source == source and e.target == target
    ]


def test_core_has_no_import_cycle():
    cycles = import_cycles(CORE_PACKAGE)
    assert not cycles, (
        f"{len(cycles)} import cycle(s) in the core. The package __init__ re-exports the"
        " implementation, so an implementation module must never import it (`from . import"
        " Name`, `import ledgerlink`); move the shared code down a layer or import under"
        " `if TYPE_CHECKING:`.\n" + "\n".join(cycles)
    )


def test_only_the_test_kit_imports_pytest_at_module_level():
    found = [
        line
        for line in module_level_imports_of(CORE_PACKAGE, "pytest")
        if not line.startswith("ledgerlink.testing:")
    ]
    assert not found, (
        "Only ledgerlink/testing.py may import pytest at module level (the CLI and the"
        " engine must start without it):\n" + "\n".join(found)
    )


def test_plugin_manager_does_not_import_the_test_kit():
    edges = imports_of(CORE_PACKAGE, "ledgerlink._plugins", "ledgerlink.testing")
    assert not edges, (
        "ledgerlink/_plugins.py imports the test kit (ledgerlink.testing imports pytest and"
        " the plugin manager): " + "; ".join(f"line {e.lineno}: {e.text}" for e in edges)
    )


# --------------------------------------------------------------------------- c. vendor names

# The bundled vendors. Plain substring match on the lowercased identifier or string:
# none of these occurs inside an ordinary English or Python word, so no word
# boundaries are needed (an identifier like ``billy_template`` must match too).
VENDORS = ("billbee", "sevdesk", "billy", "bilendo", "cobot", "shipmondo", "onecrm", "1crm")


def _docstring_nodes(tree: ast.Module) -> set[int]:
    """ids of the Constant nodes that are documentation: the docstring of the module
    and of every class and function, and bare string statements (attribute
    docstrings such as ``x: int = 0`` followed by ``\"\"\"what x is\"\"\"``), which have
    no effect at run time either."""
    docs: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                docs.add(id(stmt.value))
    return docs


def _texts(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) for every identifier and every non-docstring string constant."""
    docs = _docstring_nodes(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.arg):
            yield line, node.arg
        elif isinstance(node, ast.keyword) and node.arg:
            yield line, node.arg
        elif isinstance(node, ast.alias):
            yield line, node.name
            if node.asname:
                yield line, node.asname
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, node.module
        elif isinstance(node, ast.Global | ast.Nonlocal):
            for name in node.names:
                yield line, name
        elif isinstance(node, ast.ExceptHandler) and node.name:
            yield line, node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docs:
                yield line, node.value


def vendor_names(package_dir: Path, vendors: Iterable[str] = VENDORS) -> list[str]:
    """``file:line: vendor in 'text'`` for every vendor named in code (not docstrings)."""
    vendors = tuple(v.lower() for v in vendors)
    found = []
    for path in python_files(package_dir):
        seen = set()
        for line, text in _texts(parse(path)):
            lowered = text.lower()
            for vendor in vendors:
                if vendor in lowered and (line, text) not in seen:
                    seen.add((line, text))
                    at = lowered.index(vendor)
                    start, end = max(0, at - 30), at + len(vendor) + 30
                    shown = text[start:end]
                    shown = ("..." if start else "") + shown + ("..." if end < len(text) else "")
                    rel = path.relative_to(package_dir.parent)
                    found.append(f"{rel}:{line}: {vendor} in {shown!r}")
    return sorted(found, key=_line_order)


def _line_order(entry: str) -> tuple[str, int, str]:
    path, line, rest = entry.split(":", 2)
    return path, int(line), rest


def test_core_code_names_no_vendor():
    found = vendor_names(CORE_PACKAGE)
    assert not found, (
        f"{len(found)} vendor name(s) in core code. The core knows no vendor: a vendor's"
        " name, wording or quirk belongs in its plugin (docstrings may mention examples).\n"
        + "\n".join(found)
    )


# --------------------------------------------------------------------------- d. docs/records.md


def test_records_page_is_up_to_date():
    from ledgerlink._records_doc import render

    expected = render()
    actual = RECORDS_DOC.read_text(encoding="utf-8") if RECORDS_DOC.exists() else ""
    assert actual == expected, (
        "docs/records.md is out of date; regenerate it with"
        " `.venv/bin/python -m ledgerlink._records_doc --write docs/records.md`"
    )


# --------------------------------------------------------------------------- self-tests


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _fake_core(root: Path) -> Path:
    core = root / "core" / "ledgerlink"
    _write(
        core,
        {
            "__init__.py": "from ._http import HttpClient\n",
            "_http.py": "class HttpClient: ...\n",
            "api.py": "",
            "testing.py": "",
        },
    )
    return core


def test_self_plugin_importing_a_private_core_module_is_caught(tmp_path):
    core = _fake_core(tmp_path)
    _write(
        tmp_path / "plugins" / "acme",
        {
            "ledgerlink_acme/__init__.py": "",
            "ledgerlink_acme/target.py": (
                "from ledgerlink import Target, hookimpl\n"
                "from ledgerlink.testing import FakeSource\n"
                "import ledgerlink\n"
                "import ledgerlink.testing\n"
                "from ledgerlink_acme.mapping import x\n"
                "from .mapping import y\n"
                'sandbox = "ledgerlink_acme.sandbox:AcmeSandbox"\n'
            ),
            "ledgerlink_acme/sandbox.py": "from ledgerlink._http import make_http_client\n",
            "tests/test_x.py": (
                "def test():\n"
                "    import ledgerlink._sandbox\n"
                "    from ledgerlink.api import load\n"
                "    from ledgerlink import api, _sandbox\n"
            ),
            "tools/gen.py": 'import importlib\nimportlib.import_module("ledgerlink._records")\n',
            "ledgerlink_acme.egg-info/bad.py": "import ledgerlink._http\n",
            "build/lib/bad.py": "import ledgerlink._http\n",
        },
    )
    found = plugin_import_violations(tmp_path / "plugins", core)
    shown = sorted(v.show(tmp_path / "plugins") for v in found)
    assert [s.split("  (")[0] for s in shown] == [
        "acme/ledgerlink_acme/sandbox.py:1: from ledgerlink._http import make_http_client",
        "acme/tests/test_x.py:2: import ledgerlink._sandbox",
        "acme/tests/test_x.py:3: from ledgerlink.api import load",
        "acme/tests/test_x.py:4: from ledgerlink import api, _sandbox",
        "acme/tools/gen.py:2: import_module('ledgerlink._records')",
    ]


def test_self_plugin_importing_another_plugin_is_caught(tmp_path):
    _write(
        tmp_path / "plugins",
        {
            "acme/ledgerlink_acme/__init__.py": "",
            "acme/ledgerlink_acme/plugin.py": "from ledgerlink_acme import target\n",
            "acme/tests/conftest.py": "from ledgerlink_other.sandbox import OtherSandbox\n",
            "other/ledgerlink_other/__init__.py": "import ledgerlink_acme.plugin\n",
        },
    )
    found = plugin_import_violations(tmp_path / "plugins")
    assert [(v.path.name, v.lineno, v.why) for v in found] == [
        ("conftest.py", 1, "ledgerlink_other is another plugin's package"),
        ("__init__.py", 1, "ledgerlink_acme is another plugin's package"),
    ]


def test_self_failure_message_states_the_rule_and_every_site(tmp_path):
    _write(tmp_path / "plugins", {"acme/x.py": "import ledgerlink._a\nimport ledgerlink._b\n"})
    message = plugin_import_report(plugin_import_violations(tmp_path / "plugins"), tmp_path)
    lines = message.splitlines()
    assert lines[0] == f"2 import(s) break the rule. {IMPORT_RULE}"
    assert lines[1].startswith("plugins/acme/x.py:1: import ledgerlink._a  (")
    assert lines[2].startswith("plugins/acme/x.py:2: import ledgerlink._b  (")


def test_self_core_importing_a_plugin_is_caught(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(
        pkg,
        {
            "__init__.py": "",
            "_demo.py": "def run():\n    from ledgerlink_acme.sandbox import AcmeSandbox\n",
            "_ok.py": "import ledgerlink\nfrom ._demo import run\n",
        },
    )
    assert core_plugin_imports(pkg) == [
        "ledgerlink/_demo.py:2: from ledgerlink_acme.sandbox import AcmeSandbox"
    ]


def test_self_two_module_cycle_is_caught(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(
        pkg,
        {
            "__init__.py": "from ._a import A\n",
            "_a.py": "from ._b import B\nclass A: ...\n",
            "_b.py": "def f():\n    from ._a import A\nclass B: ...\n",
            "_c.py": "from . import _a\n",
        },
    )
    cycles = import_cycles(pkg)
    assert len(cycles) == 1
    assert cycles[0].startswith("ledgerlink._a (line 1: from ._b import B) -> ledgerlink._b")
    assert cycles[0].endswith("-> ledgerlink._a")


def test_self_importing_the_package_init_is_a_cycle(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(
        pkg,
        {
            "__init__.py": "from ._a import A\nfrom ._b import B\n",
            "_a.py": "class A: ...\n",
            "_b.py": "from . import A\nclass B: ...\n",  # A is a name, not a module
            "_c.py": "import ledgerlink\n",  # nothing imports _c: no cycle
        },
    )
    edges = {(e.source, e.target) for e in import_edges(pkg)}
    assert ("ledgerlink._b", "ledgerlink") in edges
    assert ("ledgerlink._c", "ledgerlink") in edges
    assert import_cycles(pkg) == [
        "ledgerlink (line 2: from ._b import B) -> ledgerlink._b"
        " (line 1: from . import A) -> ledgerlink"
    ]


def test_self_subpackage_init_counts_when_importing_its_module(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(
        pkg,
        {
            "__init__.py": "",
            "_d.py": "from .sub import x\n",  # runs sub/__init__.py first
            "sub/__init__.py": "from .. import _d\nfrom . import x\n",
            "sub/x.py": "from . import y\n",  # inside sub: no edge to sub/__init__
            "sub/y.py": "",
        },
    )
    edges = {(e.source, e.target) for e in import_edges(pkg)}
    assert {("ledgerlink._d", "ledgerlink.sub.x"), ("ledgerlink._d", "ledgerlink.sub")} <= edges
    assert ("ledgerlink.sub.x", "ledgerlink.sub") not in edges
    assert import_cycles(pkg) == [
        "ledgerlink._d (line 1: from .sub import x) -> ledgerlink.sub"
        " (line 1: from .. import _d) -> ledgerlink._d"
    ]


def test_self_self_import_is_a_cycle(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(pkg, {"__init__.py": "", "_a.py": "from . import _a\n"})
    assert import_cycles(pkg) == ["ledgerlink._a (line 1: from . import _a) -> ledgerlink._a"]


def test_self_type_checking_import_does_not_count(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(
        pkg,
        {
            "__init__.py": "",
            "_a.py": "from ._b import B\n",
            "_b.py": (
                "import typing\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from ._a import A\n"
                "if typing.TYPE_CHECKING:\n"
                "    from . import _a\n"
                "class B: ...\n"
            ),
        },
    )
    assert import_cycles(pkg) == []
    # The same import outside the guard is a cycle.
    (pkg / "_b.py").write_text("from ._a import A\n", encoding="utf-8")
    assert len(import_cycles(pkg)) == 1


def test_self_pytest_and_test_kit_rules(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(
        pkg,
        {
            "__init__.py": "",
            "testing.py": "import pytest\n",
            "_runner.py": "def f():\n    import pytest\n",
            "_cli.py": "from pytest import fixture\n",
            "_plugins.py": "def fakes():\n    from .testing import fake_plugin\n",
        },
    )
    assert module_level_imports_of(pkg, "pytest") == [
        "ledgerlink._cli:1: from pytest import fixture",
        "ledgerlink.testing:1: import pytest",
    ]
    assert [e.lineno for e in imports_of(pkg, "ledgerlink._plugins", "ledgerlink.testing")] == [2]


def test_self_vendor_name_in_code_is_caught_but_not_in_docstrings(tmp_path):
    pkg = tmp_path / "ledgerlink"
    _write(
        pkg,
        {
            "__init__.py": '"""Works with sevDesk, Billy and Billbee."""\n',
            "_clean.py": (
                '"""The demo: Billbee into sevDesk."""\n'
                "class Target:\n"
                '    """A target such as SevDesk."""\n'
                "    locks: bool = False\n"
                '    """True for Bilendo."""\n'
                "    def push(self):\n"
                '        """Push (as in sevdesk)."""\n'
                '        return "ok"\n'
            ),
            "_demo.py": (
                '"""Docstring naming sevdesk is fine."""\n'
                'TARGET = "sevdesk"\n'
                "def run(billbee_key):\n"
                "    return f'{billbee_key} for Cobot'\n"
                "from x import ShipmondoClient as onecrm\n"
            ),
        },
    )
    found = vendor_names(pkg)
    assert found == [
        "ledgerlink/_demo.py:2: sevdesk in 'sevdesk'",
        "ledgerlink/_demo.py:3: billbee in 'billbee_key'",
        "ledgerlink/_demo.py:4: billbee in 'billbee_key'",
        "ledgerlink/_demo.py:4: cobot in ' for Cobot'",
        "ledgerlink/_demo.py:5: onecrm in 'onecrm'",
        "ledgerlink/_demo.py:5: shipmondo in 'ShipmondoClient'",
    ]


if __name__ == "__main__":
    # `.venv/bin/python core/tests/test_architecture.py`: the core's import graph,
    # one line per module (`*`: imported inside a function, when first needed).
    targets: dict[str, set[str]] = {
        name: set() for name in core_modules(CORE_PACKAGE, "ledgerlink")
    }
    for edge in import_edges(CORE_PACKAGE):
        targets[edge.source].add(edge.target + ("*" if edge.in_function else ""))
    for name in sorted(targets):
        print(f"{name} -> {' '.join(sorted(targets[name])) or '(nothing)'}")
