"""Generate ``docs/records.md``: the canonical records, from the models themselves.

Every pydantic model and every ``StrEnum`` that ``ledgerlink`` exports (found by
walking ``ledgerlink.__all__``; models without fields, such as the ``Settings``
base class, are left out) gets a section: the class docstring, then

- for a model: a table ``field | type | required / default | description`` (the
  description is the field's ``Field(description=...)``, else the attribute
  docstring or trailing comment in the source), and its properties under
  "Derived" with the first line of their docstrings;
- for an enum: a table ``value | meaning`` (the member's attribute docstring or
  trailing comment in the source).

Usage::

    python -m ledgerlink._records_doc                 # print the page
    python -m ledgerlink._records_doc --write PATH    # write it
    python -m ledgerlink._records_doc --check PATH    # exit 1 if PATH differs

The output depends only on the code, so it is the same on every machine.
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REGENERATE = ".venv/bin/python -m ledgerlink._records_doc --write docs/records.md"


# --------------------------------------------------------------------------- discovery


def exported_records() -> tuple[list[type[BaseModel]], list[type[enum.StrEnum]]]:
    """The models (with fields) and the StrEnums exported by ``ledgerlink``.

    Models come container first (a model before the models its fields hold, roots
    in name order); enums in name order.
    """
    import ledgerlink

    models: dict[str, type[BaseModel]] = {}
    enums: dict[str, type[enum.StrEnum]] = {}
    for name in sorted(ledgerlink.__all__):
        obj = getattr(ledgerlink, name, None)
        if not isinstance(obj, type):
            continue
        if issubclass(obj, BaseModel) and obj.model_fields:
            models[name] = obj
        elif issubclass(obj, enum.StrEnum):
            enums[name] = obj
    return _container_first(models), [enums[n] for n in sorted(enums)]


def _container_first(models: dict[str, type[BaseModel]]) -> list[type[BaseModel]]:
    by_class = {cls: name for name, cls in models.items()}
    held: dict[str, list[str]] = {}
    for name, cls in models.items():
        inner: list[str] = []
        for info in cls.model_fields.values():
            for t in _walk_types(info.annotation):
                if t in by_class and by_class[t] not in inner and by_class[t] != name:
                    inner.append(by_class[t])
        held[name] = inner
    referenced = {n for inner in held.values() for n in inner}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        order.append(name)
        for inner in held[name]:
            visit(inner)

    def reach(name: str, seen: set[str]) -> set[str]:
        for inner in held[name]:
            if inner not in seen:
                seen.add(inner)
                reach(inner, seen)
        return seen

    # The model holding the most others first (the document), then by name.
    roots = sorted(
        (n for n in models if n not in referenced), key=lambda n: (-len(reach(n, set())), n)
    )
    for name in roots:
        visit(name)
    for name in sorted(models):  # models only reachable through a cycle
        visit(name)
    return [models[n] for n in order]


def _walk_types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _walk_types(arg)


# --------------------------------------------------------------------------- source notes


def _member_notes(cls: type) -> dict[str, str]:
    """Per-attribute notes from the class source: the string statement right after
    an assignment (attribute docstring), else the assignment's trailing comment."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    tree = ast.parse(source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    notes: dict[str, str] = {}
    for stmt, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
        elif isinstance(stmt, ast.AnnAssign):
            target = stmt.target
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            notes[target.id] = " ".join(inspect.cleandoc(following.value.value).split())
        elif stmt.end_lineno in comments:
            notes[target.id] = comments[stmt.end_lineno]
    return notes


def _doc(obj: Any) -> str:
    """The object's own docstring (not an inherited one), cleaned."""
    raw = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(raw) if raw else ""


# --------------------------------------------------------------------------- formatting


def _type_name(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(_type_name(a) for a in args)}]" if args else base
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _value(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`" if not hasattr(value, "as_tuple") else f"`{value}`"


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        factory = typing.cast(Callable[[], Any], info.default_factory)
        return f"default {_value(factory())}"
    if info.default is PydanticUndefined:
        return "optional"
    return f"default {_value(info.default)}"


def _constraints(info: FieldInfo) -> str:
    unit = (
        "items" if typing.get_origin(info.annotation) in (list, tuple, set, dict) else "characters"
    )
    parts = []
    for item in info.metadata:
        for attr, words in (
            ("min_length", "at least {} " + unit),
            ("max_length", "at most {} " + unit),
            ("ge", "at least {}"),
            ("gt", "more than {}"),
            ("le", "at most {}"),
            ("lt", "less than {}"),
        ):
            bound = getattr(item, attr, None)
            if attr == "min_length" and bound == 1:
                parts.append("not empty")
            elif bound is not None:
                parts.append(words.format(bound))
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _first_line(text: str) -> str:
    return text.strip().split("\n\n")[0].replace("\n", " ") if text else ""


def _model_section(cls: type[BaseModel]) -> list[str]:
    out = [f"## {cls.__name__}", ""]
    if _doc(cls):
        out += [_doc(cls), ""]
    notes = {}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, BaseModel) and klass is not BaseModel:
            notes.update(_member_notes(klass))
    out += ["| field | type | required / default | description |", "|---|---|---|---|"]
    for name, info in cls.model_fields.items():
        description = info.description or notes.get(name, "")
        limits = _constraints(info)
        if limits:
            description = f"{description} ({limits})" if description else limits
        out.append(
            f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {_cell(description)} |"
        )
    derived: list[tuple[str, property]] = []
    for klass in reversed(cls.__mro__):
        if klass is BaseModel or not (isinstance(klass, type) and issubclass(klass, BaseModel)):
            continue
        for name, member in vars(klass).items():
            if isinstance(member, property) and not name.startswith("_"):
                derived = [d for d in derived if d[0] != name] + [(name, member)]
    if derived:
        out += ["", "Derived (read-only properties):", ""]
        for name, member in sorted(derived):
            returns = getattr(member.fget, "__annotations__", {}).get("return", "")
            returns = returns if isinstance(returns, str) else _type_name(returns)
            line = _first_line(_doc(member.fget))
            out.append(f"- `{name}` ({returns}){': ' + line if line else ''}")
    return [*out, ""]


def _enum_section(cls: type[enum.StrEnum]) -> list[str]:
    out = [f"## {cls.__name__}", ""]
    if _doc(cls):
        out += [_doc(cls), ""]
    notes = _member_notes(cls)
    out += ["| value | meaning |", "|---|---|"]
    for member in cls:
        out.append(f"| `{member.value}` | {_cell(notes.get(member.name, ''))} |")
    return [*out, ""]


def render() -> str:
    """The whole page."""
    models, enums = exported_records()
    lines = [
        "# Records",
        "",
        "> Generated from the models exported by `ledgerlink` (do not edit by hand)."
        f" Regenerate: `{REGENERATE}`",
        "",
        "The canonical records every source produces and every target consumes, and the"
        " enumerations they use. Import them from `ledgerlink`.",
        "",
        "**Units.** Money amounts (line totals, unit prices, tax amounts, payments, stated"
        " totals) are `Decimal` in the **major unit** of the document's `currency`:"
        " `Decimal(\"12.50\")` in EUR means twelve euros fifty, never 1250 cents; a source"
        " whose API gives minor units divides by 100 (or the currency's factor) itself."
        " Tax rates are in **percent**: `19` means 19 %, never `0.19`.",
        "",
        "- Models: " + ", ".join(f"[{m.__name__}](#{m.__name__.lower()})" for m in models),
        "- Enumerations: " + ", ".join(f"[{e.__name__}](#{e.__name__.lower()})" for e in enums),
        "",
    ]
    for model in models:
        lines += _model_section(model)
    for enum_cls in enums:
        lines += _enum_section(enum_cls)
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledgerlink._records_doc", description="Generate docs/records.md."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", type=Path, help="write the page to PATH")
    group.add_argument("--check", metavar="PATH", type=Path, help="exit 1 if PATH differs")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else None
        if current != text:
            print(f"{args.check} is out of date; regenerate it: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
