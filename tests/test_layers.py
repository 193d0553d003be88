"""The layer rules of ARCHITECTURE.md, checked on the import graph (read with ``ast``, nothing run).

Layers, top to bottom: ``flows/`` (wiring) -> ``tasks/`` (Prefect) -> ``blocks/`` (typed config)
-> ``gpuflows/`` (Prefect-free: ``pipelines/<name>/`` over ``models/`` over ``core/``).

Each rule is a function of a set of ``(module, imported)`` edges returning one message per
broken edge, so the tests below can plant a violation and see it named. An edge's ``imported``
is the module the statement loads: ``from a.b import c`` is ``a.b.c`` when that is a module,
else ``a.b``. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit
edges are left out (Python runs a parent before its child, which is never a circle).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gpuflows", "tasks", "flows", "blocks")
FIRST_PARTY = frozenset({"gpuflows", "tasks", "flows", "blocks", "deployments", "bench", "tests"})
ORCHESTRATION = frozenset({"prefect", "tasks", "flows", "blocks", "deployments"})

Edge = tuple[str, str]


# --- reading the graph ---------------------------------------------------------------------------


def module_names(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted name -> file of every module under ``root/<package>`` (``__init__`` is the package)."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, top_level: bool) -> Iterable[ast.Import | ast.ImportFrom]:
    """Import statements; ``top_level``: only those run when the module is imported (not in a
    function body, not under ``if TYPE_CHECKING:``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            elif top_level and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            elif top_level and isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def import_edges(root: Path = ROOT, *, top_level: bool = False) -> set[Edge]:
    """``(module, imported)`` for every import statement of every module under ``root``."""
    modules = module_names(root)
    edges: set[Edge] = set()
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree, top_level=top_level):
            if isinstance(node, ast.Import):
                edges.update((mod, a.name) for a in node.names)
                continue
            target = _resolve(mod, path.name == "__init__.py", node)
            for a in node.names:
                sub = f"{target}.{a.name}"
                edges.add((mod, sub if sub in modules else target))
    return edges


def _top(name: str) -> str:
    return name.split(".")[0]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# --- the rules -----------------------------------------------------------------------------------


def check_gpuflows_free_of_orchestration(edges: Iterable[Edge]) -> list[str]:
    """``gpuflows`` never imports prefect, tasks, flows, blocks or deployments (even lazily)."""
    return sorted(
        f"{m} imports {i}: gpuflows/ is Prefect-free and below tasks/, flows/, blocks/ and "
        "deployments/; move that code to tasks/ (or pass the value in as an argument)"
        for m, i in edges
        if _under(m, "gpuflows") and _top(i) in ORCHESTRATION
    )


def check_core_below_models_and_pipelines(edges: Iterable[Edge]) -> list[str]:
    """``gpuflows.core`` never imports ``gpuflows.models`` or ``gpuflows.pipelines``."""
    return sorted(
        f"{m} imports {i}: the core is shared by every pipeline and may not depend on a model or "
        "a pipeline; move what both need into gpuflows/core, or pass it in"
        for m, i in edges
        if _under(m, "gpuflows.core")
        and (_under(i, "gpuflows.models") or _under(i, "gpuflows.pipelines"))
    )


def _pipeline(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["gpuflows", "pipelines"] else None


def check_pipelines_independent(edges: Iterable[Edge]) -> list[str]:
    """No pipeline imports another pipeline."""
    return sorted(
        f"{m} imports {i}: a pipeline never imports another pipeline; move what both need to "
        "gpuflows/core or gpuflows/models"
        for m, i in edges
        if (p := _pipeline(m)) and (q := _pipeline(i)) and p != q
    )


def check_flows_wiring_only(edges: Iterable[Edge]) -> list[str]:
    """``flows.<name>`` imports only tasks, Prefect, stdlib / third-party packages and its own
    pipeline's public surface, the package ``gpuflows.pipelines.<name>`` itself."""
    bad = []
    for m, i in edges:
        if not _under(m, "flows") or m == "flows":
            continue
        own = f"gpuflows.pipelines.{m.split('.')[1]}"
        if _top(i) not in FIRST_PARTY or _top(i) == "tasks" or i == own:
            continue
        bad.append(
            f"{m} imports {i}: a flow wires tasks together and imports only tasks/, Prefect and "
            f"its pipeline's public surface ({own}); export what it needs from {own} "
            "(its __init__) or reach it through a task"
        )
    return sorted(bad)


def find_cycles(edges: Iterable[Edge], *, within: str = "gpuflows") -> list[list[str]]:
    """Import circles among the modules under ``within``: each strongly connected component of
    more than one module (or a module importing itself), sorted (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for m, i in edges:
        if _under(m, within) and _under(i, within):
            graph.setdefault(m, set()).add(i)
            graph.setdefault(i, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def check_no_cycles(edges: Iterable[Edge]) -> list[str]:
    """Messages for :func:`find_cycles` (module-level imports only)."""
    return [
        f"import circle among {', '.join(c)}: move the shared names into one module both import, "
        "or make one of them import lazily"
        for c in find_cycles(edges)
    ]


# --- the rules on this tree ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> set[Edge]:
    return import_edges(ROOT)


@pytest.fixture(scope="module")
def top_edges() -> set[Edge]:
    return import_edges(ROOT, top_level=True)


def test_the_walk_sees_every_package(edges):
    mods = {m for m, _ in edges}
    for pkg in ("gpuflows.core.memory.budget", "tasks.vram", "blocks.gpu_pool", "flows.rqa_sweep"):
        assert pkg in mods
    assert ("blocks.gpu_pool", "gpuflows.core.memory.budget") in edges


def test_gpuflows_never_imports_orchestration(edges):
    assert check_gpuflows_free_of_orchestration(edges) == []


def test_core_never_imports_models_or_pipelines(edges):
    assert check_core_below_models_and_pipelines(edges) == []


def test_no_pipeline_imports_another(edges):
    assert check_pipelines_independent(edges) == []


def test_flows_import_only_tasks_prefect_and_their_pipeline(edges):
    assert check_flows_wiring_only(edges) == []


def test_no_import_circles_in_gpuflows(top_edges):
    assert check_no_cycles(top_edges) == []


# --- each rule fails on a planted violation ------------------------------------------------------


def test_planted_prefect_import_in_a_temporary_module_is_named(tmp_path):
    core = tmp_path / "gpuflows" / "core"
    core.mkdir(parents=True)
    for d in (tmp_path / "gpuflows", core):
        (d / "__init__.py").write_text('"""pkg."""\n')
    (core / "bad.py").write_text("def f():\n    from prefect import flow\n    return flow\n")
    (core / "fine.py").write_text("import json\nfrom gpuflows.core import bad\n")
    found = import_edges(tmp_path)
    assert ("gpuflows.core.bad", "prefect") in found
    assert ("gpuflows.core.fine", "gpuflows.core.bad") in found  # `from pkg import module`
    msgs = check_gpuflows_free_of_orchestration(found)
    assert len(msgs) == 1
    assert msgs[0].startswith("gpuflows.core.bad imports prefect: gpuflows/ is Prefect-free")
    # lazy (in a function): not a module-level edge, so no circle can come from it
    assert ("gpuflows.core.bad", "prefect") not in import_edges(tmp_path, top_level=True)


def test_planted_circle_in_temporary_modules_is_found(tmp_path):
    pkg = tmp_path / "gpuflows"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from gpuflows.b import y\nx = 1\n")
    (pkg / "b.py").write_text("from . import a\ny = 2\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gpuflows import a\n"
    )
    msgs = check_no_cycles(import_edges(tmp_path, top_level=True))
    assert msgs == [
        "import circle among gpuflows.a, gpuflows.b: move the shared names into one module both "
        "import, or make one of them import lazily"
    ]


@pytest.mark.parametrize(
    ("check", "edge", "words"),
    [
        (check_gpuflows_free_of_orchestration, ("gpuflows.models.x", "tasks.vram"), "Prefect-free"),
        (check_gpuflows_free_of_orchestration, ("gpuflows.core.y", "blocks"), "Prefect-free"),
        (check_gpuflows_free_of_orchestration, ("gpuflows", "deployments.setup"), "Prefect-free"),
        (
            check_core_below_models_and_pipelines,
            ("gpuflows.core.memory.budget", "gpuflows.models.tiny"),
            "shared by every pipeline",
        ),
        (
            check_core_below_models_and_pipelines,
            ("gpuflows.core.slo", "gpuflows.pipelines.rqa_sweep.stats"),
            "shared by every pipeline",
        ),
        (
            check_pipelines_independent,
            ("gpuflows.pipelines.rqa_sweep.stats", "gpuflows.pipelines.two_stage_eval"),
            "never imports another pipeline",
        ),
        (
            check_flows_wiring_only,
            ("flows.rqa_sweep", "gpuflows.core.memory.budget"),
            "gpuflows.pipelines.rqa_sweep",
        ),
        (
            check_flows_wiring_only,
            ("flows.rqa_sweep", "gpuflows.pipelines.rqa_sweep.params"),
            "its __init__",
        ),
        (check_flows_wiring_only, ("flows.gpu_baseline", "gpuflows.models"), "public surface"),
        (check_flows_wiring_only, ("flows.gpu_baseline", "blocks"), "reach it through a task"),
        (
            check_flows_wiring_only,
            ("flows.two_stage_eval", "gpuflows.pipelines.rqa_sweep"),
            "gpuflows.pipelines.two_stage_eval",
        ),
    ],
)
def test_each_rule_names_a_planted_edge(check, edge, words):
    msgs = check({edge})
    assert len(msgs) == 1
    assert msgs[0].startswith(f"{edge[0]} imports {edge[1]}: ")
    assert words in msgs[0]


@pytest.mark.parametrize(
    ("check", "edge"),
    [
        (check_gpuflows_free_of_orchestration, ("gpuflows.core.x", "pydantic")),
        (check_gpuflows_free_of_orchestration, ("tasks.vram", "prefect")),
        (check_core_below_models_and_pipelines, ("gpuflows.models.tiny", "gpuflows.core.memory")),
        (check_pipelines_independent, ("gpuflows.pipelines.a.x", "gpuflows.pipelines.a.y")),
        (check_pipelines_independent, ("gpuflows.pipelines.a.x", "gpuflows.models.tiny")),
        (check_flows_wiring_only, ("flows.rqa_sweep", "gpuflows.pipelines.rqa_sweep")),
        (check_flows_wiring_only, ("flows.rqa_sweep", "tasks.rqa")),
        (check_flows_wiring_only, ("flows.rqa_sweep", "prefect")),
        (check_flows_wiring_only, ("flows.rqa_sweep", "argparse")),
        (check_flows_wiring_only, ("flows.rqa_sweep", "pydantic")),
    ],
)
def test_allowed_edges_pass(check, edge):
    assert check({edge}) == []


def test_find_cycles_on_synthetic_edges():
    edges = {
        ("gpuflows.a", "gpuflows.b"),
        ("gpuflows.b", "gpuflows.c"),
        ("gpuflows.c", "gpuflows.a"),
    }
    edges |= {("gpuflows.d", "gpuflows.d"), ("gpuflows.e", "gpuflows.a"), ("tasks.x", "tasks.x")}
    assert find_cycles(edges) == [["gpuflows.a", "gpuflows.b", "gpuflows.c"], ["gpuflows.d"]]
    assert find_cycles({("gpuflows.a", "gpuflows.b"), ("gpuflows.b", "numpy")}) == []


# --- the core's public surfaces ------------------------------------------------------------------

CORE_SUBPACKAGES = ("hardware", "memory", "evidence", "slo", "store")


def test_importing_the_core_loads_neither_torch_nor_prefect():
    code = (
        "import sys, gpuflows.core\n"
        "core = sorted(m for m in sys.modules if m.startswith('gpuflows'))\n"
        + "".join(f"import gpuflows.core.{s}\n" for s in CORE_SUBPACKAGES)
        + "heavy = sorted({'torch', 'prefect', 'cupy', 'matplotlib'} & set(sys.modules))\n"
        "print(core, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['gpuflows', 'gpuflows.core'] []"


@pytest.mark.parametrize("sub", CORE_SUBPACKAGES)
def test_core_subpackage_lists_its_public_names(sub):
    import importlib
    import pkgutil

    pkg = importlib.import_module(f"gpuflows.core.{sub}")
    assert pkg.__doc__ and len(pkg.__doc__.splitlines()) > 2, "say what the subpackage holds"
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        assert name not in submodules, f"{sub}.{name} would hide the submodule of that name"
        assert not callable(obj) or obj.__module__.startswith(f"gpuflows.core.{sub}.")
