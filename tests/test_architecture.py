"""Imports between the library's rooms only go down: no two rooms import each other, directly or
round a longer cycle.

A room is a subpackage of perfrepro (`perfrepro/generation/`) or a top-level module
(`perfrepro/records.py`). Every import counts, lazy ones inside functions too: an import that runs
only on one path still ties the two rooms together.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "perfrepro"


def room_of(module: str) -> str | None:
    """The room of a dotted module name under perfrepro (`perfrepro.timing.wall` -> `timing`)."""
    parts = module.split(".")
    if parts[0] != "perfrepro" or len(parts) < 2:
        return None
    return parts[1]


def module_name(path: Path, package: Path) -> str:
    relative = path.relative_to(package.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, package: Path) -> set[str]:
    """Every module `path` imports, absolute or relative, at any depth of its code."""
    name = module_name(path, package)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # `from .x import y` inside a package's __init__ is relative to the package itself
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from perfrepro import report` imports the room `report`, not the package root
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def room_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{room: the other rooms it imports} over every module of `package`."""
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        room = room_of(module_name(path, package))
        if room is None:  # perfrepro/__init__.py
            continue
        targets = graph.setdefault(room, set())
        for module in imported_modules(path, package):
            target = room_of(module)
            if target in (None, room):
                continue
            if (package / target).is_dir() or (package / f"{target}.py").exists():
                targets.add(target)
    return graph


def layer_order(graph: dict[str, set[str]]) -> list[str]:
    """The rooms, each after every room it imports; raises CycleError naming a cycle."""
    return list(TopologicalSorter(graph).static_order())


def test_rooms_import_without_cycles():
    graph = room_graph()
    try:
        order = layer_order(graph)
    except CycleError as error:
        pytest.fail(f"import cycle between rooms: {' imports '.join(reversed(error.args[1]))}")
    print("rooms, lowest first:", " < ".join(order))
    assert set(order) == set(graph)


def test_a_cycle_is_found(tmp_path):
    # a package whose two rooms import each other, one of them lazily inside a function
    package = tmp_path / "perfrepro"
    (package / "alpha").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "alpha" / "__init__.py").write_text("from .core import x\n")
    (package / "alpha" / "core.py").write_text("def x():\n    from perfrepro.beta import y\n")
    (package / "beta.py").write_text("from perfrepro.alpha.core import x\ny = 1\n")
    (package / "gamma.py").write_text("from perfrepro import beta\n")
    graph = room_graph(package)
    assert graph == {"alpha": {"beta"}, "beta": {"alpha"}, "gamma": {"beta"}}
    with pytest.raises(CycleError):
        layer_order(graph)
