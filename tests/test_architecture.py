"""The package's shape: no import cycle (lazy imports included), small modules with docstrings,
torch-free declarations, and lists that come from the registries."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fcnprobe"
MAX_LINES = 350  # the style guide's ceiling for a module


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Package modules imported anywhere in the file (inside functions too), as their dotted names.

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``.
    Relative imports are not used in the package.
    """
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            out |= {s for s in subs if s in MODULES} or {node.module}
    return {m for m in out if m in MODULES}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or None (iterative DFS with colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for start in graph:
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
            elif colour[nxt] == 1:
                path = [n for n, _ in stack]
                return path[path.index(nxt):] + [nxt]
            elif colour[nxt] == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
    return None


def test_import_graph_has_no_cycle():
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    assert sum(map(len, graph.values())) > 50  # the walk sees the package's imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small_and_documented(name):
    path = MODULES[name]
    lines = path.read_text().count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(ROOT)} has no module docstring"


def test_measure_library_knows_nothing_of_sweeps_or_records():
    banned = ("fcnprobe.sweep", "fcnprobe.results", "fcnprobe.probes", "fcnprobe.report", "fcnprobe.models")
    for name, path in MODULES.items():
        if name.startswith("fcnprobe.measure"):
            bad = [m for m in _imports(path) if m.startswith(banned)]
            assert not bad, f"{name} imports {bad}"


def test_probes_and_declarations_import_without_torch():
    code = ("import sys, fcnprobe.probes as p, fcnprobe.metrics, fcnprobe.utils, fcnprobe.device; "
            "assert p.PROBES.names(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_public_api_is_exported_from_the_measurement_library():
    import fcnprobe

    for name in ("effective_receptive_field", "theoretical_receptive_field", "count_flops", "latency",
                 "peak_memory"):
        assert getattr(fcnprobe, name).__module__.startswith("fcnprobe.measure"), name
