"""The package's layers: no import cycles (module-level or lazy), and no upward imports between layers."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "evalkit"

# Lower layers never import higher ones (lazy imports inside functions included).
# results → stats → report | gate (siblings); the CLI and the API sit on top of everything.
FORBIDDEN = {
    "evalkit.results": ("evalkit.stats", "evalkit.report", "evalkit.gate", "evalkit.commands", "evalkit.api", "evalkit.execution"),
    "evalkit.stats": ("evalkit.report", "evalkit.gate", "evalkit.commands", "evalkit.api", "evalkit.adapters", "evalkit.execution"),
    "evalkit.gate": ("evalkit.report", "evalkit.commands", "evalkit.api"),
    "evalkit.report": ("evalkit.gate", "evalkit.commands", "evalkit.api", "evalkit.execution"),
    "evalkit.schemas": ("evalkit.commands", "evalkit.api", "evalkit.report", "evalkit.gate", "evalkit.execution"),
    "evalkit.encoders": ("evalkit.commands", "evalkit.api", "evalkit.report", "evalkit.gate", "evalkit.adapters", "evalkit.execution"),
    "evalkit.adapters": ("evalkit.commands", "evalkit.api", "evalkit.report", "evalkit.gate", "evalkit.execution"),
    "evalkit.execution": ("evalkit.commands", "evalkit.api", "evalkit.report", "evalkit.gate"),
    # the bottom: files written and read, nothing of evalkit's above it
    "evalkit.io": tuple(f"evalkit.{p.stem}" for p in PACKAGE.iterdir() if p.stem not in {"io", "__init__", "__pycache__"}),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    """Every evalkit module → the evalkit modules it imports anywhere (TYPE_CHECKING-only imports excluded)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(child)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body
            for child in ast.walk(stmt)
        }
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between modules, ignoring a package's own __init__ re-exports of its submodules."""
    return {m: {t for t in targets if not m.startswith(t + ".") and not t.startswith(m + ".")} for m, targets in graph.items()}


def test_no_import_cycles() -> None:
    cycles = strongly_connected(_package_edges(imports()))
    assert not cycles, "import cycles: " + "; ".join(" ⇄ ".join(c) for c in cycles)


def test_no_upward_imports() -> None:
    bad = []
    for module, targets in imports().items():
        for layer, forbidden in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                bad += [f"{module} → {t}" for t in targets if any(t == f or t.startswith(f + ".") for f in forbidden)]
    assert not bad, "upward imports: " + ", ".join(sorted(bad))


def test_every_module_is_in_the_architecture_map() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [m for m in imports() if f"`{m.replace('.', '/')}" not in text and f"`{m}`" not in text]
    assert not missing, "docs/ARCHITECTURE.md does not mention: " + ", ".join(sorted(missing))
