"""The package's shape: no import cycles (imports inside functions count), small modules.

The import graph is read from the source (``ast``), with every ``import`` wherever it stands,
but for those under ``if TYPE_CHECKING:`` (never run). The one exception is an explicit plugin
registry: a module that imports its plugins inside a function to register them, which import it
back for the ``register`` decorator. Those lazy imports are left out for the modules named in
``PLUGIN_REGISTRIES``; every other cycle fails the test with the modules it goes through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import defectscope

PACKAGE = Path(defectscope.__file__).parent
PLUGIN_REGISTRIES = {"defectscope.models.registry", "defectscope.preprocess.steps"}
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("defectscope",) + path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    """The module ``target`` names, or that a name in it lives in (its longest known prefix)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for guard in ast.walk(tree):
            if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test):
                guard.body = []
        top_level = set(map(id, tree.body))
        for node in ast.walk(tree):
            if name in PLUGIN_REGISTRIES and id(node) not in top_level and isinstance(
                    node, (ast.Import, ast.ImportFrom)):
                continue  # the registry loading its plugins
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                module = _resolve(target, known)
                if module is not None and module != name:
                    graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_and_ignores_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # defectscope.line.sources loads the optional GenICam source inside parse_source.
    assert "defectscope.line.genicam" in graph["defectscope.line.sources"]


def test_no_import_cycles_but_the_plugin_registries():
    assert cycles(import_graph()) == []


def test_no_module_is_over_500_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long
