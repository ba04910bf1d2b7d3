"""The shape of the tree: no import cycles among `mailer` modules (function-local
imports included), and entry points that use each domain only through its package.

The layer and forbidden-import rules themselves are import-linter contracts in
pyproject.toml, run by `lint-imports` in CI; this file checks what they cannot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("common", "mail", "readers", "segments", "content", "editions", "delivery", "automations",
           "webhooks", "alerts", "console")
ENTRY_POINTS = [ROOT / "mailer" / "web", ROOT / "mailer" / "cli", ROOT / "workers"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("mailer", include_external_packages=False)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
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
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    class Two:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(module: str) -> set[str]:
            return {"a": {"b"}, "b": {"a"}, "c": {"a"}}[module]

    assert _cycles(Two()) == [["a", "b"]]  # type: ignore[arg-type]


def _domain_submodule_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "mailer":
                names += [f"mailer.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if len(parts) > 2 and parts[0] == "mailer" and parts[1] in DOMAINS:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return bad


def test_views_cli_and_tasks_use_domains_only_through_their_packages() -> None:
    offenders = [line for folder in ENTRY_POINTS for path in sorted(folder.rglob("*.py"))
                 for line in _domain_submodule_imports(path)]
    assert offenders == []


def test_every_domain_package_names_its_public_surface() -> None:
    for name in DOMAINS:
        package = __import__(f"mailer.{name}", fromlist=["__all__"])
        exported = getattr(package, "__all__", None)
        assert exported, f"mailer.{name} has no __all__"
        missing = [n for n in exported if not hasattr(package, n)]
        assert missing == [], f"mailer.{name}.__all__ names what it does not define: {missing}"
