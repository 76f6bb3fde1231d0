"""The package's import graph has no cycles, between modules or between its sub-packages.

Every ``import`` counts, including those inside functions (a lazy import hides a cycle from
Python, not from a reader). The sub-package layering this enforces, bottom to top: errors,
config, core -> models -> data -> importance, allocation -> updates -> planning, pruning -> eval,
recovery, search, report -> commands, cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "adapruner"


def module_graph() -> dict[str, set[str]]:
    """``module -> modules it imports`` for every module of the package (adapruner.* only)."""
    files = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = f
    graph = {}
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for a in node.names:
                    deps.add(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_import_cycles():
    assert cycles(module_graph()) == []


def test_no_subpackage_import_cycles():
    packages: dict[str, set[str]] = {}
    for module, deps in module_graph().items():
        top = ".".join(module.split(".")[:2])
        for d in deps:
            other = ".".join(d.split(".")[:2])
            if other != top:
                packages.setdefault(top, set()).add(other)
    assert cycles(packages) == []


def test_nothing_below_the_commands_imports_the_package_root():
    """``import adapruner`` registers model types and is for users; inner modules import what they use."""
    offenders = [m for m, deps in module_graph().items()
                 if "adapruner" in deps and not m.startswith(("adapruner.commands", "adapruner.cli"))]
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
