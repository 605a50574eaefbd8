"""The arrows of the map (DESIGN.md) point one way: read from the code's own imports, every one of them,
those inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows_app", "orchestrator", "plugins_app")
VOCABULARY = {"flows_app.engine.vocabulary"}  # all of flows_app a plugin may import
SENDS = {"apply_async", "delay", "send_task", "signature", "si"}  # how a Celery message is sent
CANVAS = {"chord", "group", "chain", "signature"}  # celery's ways of sending several


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Every module `name` imports, as absolute names (`from . import x` gives `package.x` when x is one)."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return {f for f in found if f}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {i for i in imports_of(name, path) if i in known} for name, path in known.items()}


def test_services_import_neither_celery_nor_dispatch():
    for name, path in modules().items():
        if name.startswith("flows_app.services"):
            forbidden = {
                i
                for i in imports_of(name, path)
                if i.split(".")[0] == "celery" or i in ("orchestrator.celery", "flows_app.dispatch", "flows_app.tasks")
            }
            assert not forbidden, f"{name} imports {sorted(forbidden)}"


def test_plugins_import_only_the_engines_vocabulary_of_flows_app():
    for name, path in modules().items():
        if name.startswith("plugins_app"):
            reached = {i for i in imports_of(name, path) if i.split(".")[0] == "flows_app"} - VOCABULARY
            assert not reached, f"{name} imports {sorted(reached)}"


def test_the_vocabulary_stays_pure():
    for name in VOCABULARY:
        reached = imports_of(name, modules()[name])
        assert all(i.startswith(("flows_app.engine", "flows_app.spec", "__future__", "typing")) for i in reached), (
            reached
        )


def test_no_service_imports_a_concrete_plugin():
    for name, path in modules().items():
        if name.startswith("flows_app"):
            concrete = {i for i in imports_of(name, path) if i.startswith("plugins_app.core")}
            assert not concrete, f"{name} imports {sorted(concrete)}"


def test_there_is_no_import_cycle_among_flows_app_modules():
    edges = {
        n: {i for i in targets if i.startswith("flows_app")}
        for n, targets in graph().items()
        if n.startswith("flows_app")
    }
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_only_dispatch_sends_celery_messages():
    for name, path in modules().items():
        if name == "flows_app.dispatch":
            continue
        tree = ast.parse(path.read_text())
        calls = {
            node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SENDS
        }
        canvas = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("celery")
            for alias in node.names
            if alias.name in CANVAS
        }
        assert not calls and not canvas, f"{name} sends with {sorted(calls | canvas)}"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
