"""The project's import graph: no circles, and the stages' command-line drivers are leaves.

Every `import` and `from ... import` counts, those inside functions too: an import deferred to call time
still ties the two modules together, and a circle of them breaks as soon as the call order changes.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("stages", "ensemble", "submissions")
# The library every stage reads; its main() only prints a loaded config (python -m stages.config show).
LIBRARY_WITH_MAIN = {"stages.config"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(encoding="utf-8"), str(path))
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
    }


def imported(name: str, tree: ast.Module, modules: set[str], is_package: bool) -> set[str]:
    """The project modules `name` imports anywhere in its source (a name imported from a package counts as
    its submodule when there is one)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
                out.update(next(([p] for p in prefixes if p in modules), []))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    out.add(f"{base}.{alias.name}")
                elif base in modules:
                    out.add(base)
    out.discard(name)
    return out


def import_graph() -> tuple[dict[str, set[str]], dict[str, ast.Module]]:
    trees = project_modules()
    names = set(trees)
    packages = {module_name(p) for pkg in PACKAGES for p in (REPO / pkg).rglob("__init__.py")}
    return {name: imported(name, tree, names, name in packages) for name, tree in trees.items()}, trees


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], path[len(path) :] = "open", [node]
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def drivers(trees: dict[str, ast.Module]) -> set[str]:
    """Modules with a top-level main(), run as `python -m <package>.<name>`."""
    return {
        name
        for name, tree in trees.items()
        if name not in LIBRARY_WITH_MAIN
        and any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)
    }


def test_the_graph_is_the_whole_project():
    graph, trees = import_graph()
    assert {"stages.training.bi", "stages.retrieval.dense", "ensemble.fusion", "submissions.package"} <= set(graph)
    assert "stages.training.bi" in graph["stages.train_bi"]  # imports are seen, inside functions too
    assert "stages.training.bi" in graph["stages.training.curve"]
    assert {"stages.bm25", "stages.train_bi", "stages.evaluate", "stages.benchmarks.rerank"} <= drivers(trees)
    assert {"ensemble.tune", "ensemble.fusion", "submissions.validate", "submissions.package"} <= drivers(trees)


def test_no_module_imports_itself_back_through_others():
    graph, _ = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_names_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_stage_drivers_are_leaves_no_stage_module_imports_one():
    graph, trees = import_graph()
    leaves = drivers(trees)
    wrong = sorted(f"{importer} imports {driver}" for importer, targets in graph.items() for driver in targets & leaves)
    assert not wrong, (
        "a driver's code is library code: move it to stages.models/retrieval/data/losses/caches/training, "
        "ensemble.methods/params or submissions.rules\n" + "\n".join(wrong)
    )
