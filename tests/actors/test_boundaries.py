"""``actors/`` imports only trio and the standard library."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import actors

ALLOWED = set(sys.stdlib_module_names) | {"trio", "actors", "__future__"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_actors_imports_only_trio_and_stdlib() -> None:
    package = Path(actors.__file__).parent
    files = sorted(package.glob("*.py"))
    assert len(files) >= 8

    for path in files:
        assert imported_roots(path) <= ALLOWED, path.name


def test_actors_public_names_documented() -> None:
    for name in actors.__all__:
        value = getattr(actors, name)
        if callable(value) and not isinstance(value, type(actors.FIRE_LATE)):
            assert value.__doc__, name


def test_actors_public_methods_documented() -> None:
    undocumented = []
    for name in actors.__all__:
        value = getattr(actors, name)
        if not inspect.isclass(value) or issubclass(value, BaseException):
            continue
        for attribute, member in vars(value).items():
            if attribute.startswith("_") or not callable(member):
                continue
            if not inspect.getdoc(member):
                undocumented.append(f"{name}.{attribute}")

    assert undocumented == []
