"""No import cycles between astra's subpackages, counting imports made inside functions.

Every ``import`` / ``from ... import`` anywhere in a module (top level, function bodies,
``TYPE_CHECKING`` blocks) is an edge from the module's unit to the imported one; a unit is
a subpackage (``astra.graph``) or a top-level module (``astra.cli``). A cycle among units
is a strongly connected component of more than one unit.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src" / "astra"

#: Cycles that exist and are accepted for now, as frozensets of units (none today).
EXPECTED: set[frozenset[str]] = set()


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def unit_imports(root: Path) -> dict[tuple[str, str], set[str]]:
    """``(unit, imported unit) -> {"module -> imported", ...}`` for every import under ``root``
    (a package directory) of another unit of the same package."""
    top = root.name
    units = {p.name for p in root.iterdir() if (p / "__init__.py").exists()} | {
        p.stem for p in root.glob("*.py") if p.name != "__init__.py"}
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        module = _module(path, root)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        src = _unit(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # ``from astra import graph`` imports the unit graph
                targets = [mod] if mod != top else [f"{top}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != top:
                    continue
                dst = _unit(target)
                if src is not None and dst in units and dst != src:
                    edges[(src, dst)].add(f"{module} -> {target}")
    return edges


def cycles(edges: dict[tuple[str, str], set[str]]) -> list[frozenset[str]]:
    graph = nx.DiGraph(list(edges))
    return [frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


def _explain(cycle: frozenset[str], edges: dict[tuple[str, str], set[str]]) -> str:
    lines = [f"cycle among {', '.join(sorted(cycle))}:"]
    for (a, b), why in sorted(edges.items()):
        if a in cycle and b in cycle:
            lines.append(f"  {a} -> {b}: " + "; ".join(sorted(why)[:3]))
    return "\n".join(lines)


def test_no_new_import_cycle_between_subpackages():
    edges = unit_imports(SRC)
    assert edges, "no imports found: the walk is broken"
    found = cycles(edges)
    new = [c for c in found if c not in EXPECTED]
    assert not new, "\n".join(_explain(c, edges) for c in new)
    stale = [sorted(c) for c in EXPECTED if c not in found]
    assert not stale, f"expected cycles that are gone (drop them from EXPECTED): {stale}"


def test_the_walk_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / "pkg"
    for d in ("a", "b", "c"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from pkg.b import thing\n")
    (pkg / "b" / "y.py").write_text("def f():\n    from ..c import z\n    return z\n")
    (pkg / "c" / "z.py").write_text("import os\n\n\ndef g():\n    import pkg.a.x\n")
    (pkg / "tool.py").write_text("from pkg import a\n")
    edges = unit_imports(pkg)
    assert set(edges) == {("a", "b"), ("b", "c"), ("c", "a"), ("tool", "a")}
    assert edges[("b", "c")] == {"pkg.b.y -> pkg.c"}
    assert cycles(edges) == [frozenset({"a", "b", "c"})]
    (pkg / "c" / "z.py").write_text("import os\n")
    assert cycles(unit_imports(pkg)) == []
