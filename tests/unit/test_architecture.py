"""The shape of the code: no import cycle, every module importable on its own, one contract for every
live system (see docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from reconciler.contract import LiveSystem
from reconciler.providers.registry import SYSTEMS, system_for

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reconciler"
# Modules still over the size every module is held to; each is to be split, and the list only shrinks.
STILL_TOO_LARGE: set[str] = set()
MAX_LINES = 500


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def runtime_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module this one imports when it runs (top level and inside functions), with the packages
    that importing it initialises; imports under ``if TYPE_CHECKING:`` are for the type checker only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(x) for b in node.body for x in ast.walk(b))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            targets.add(node.module)
            targets.update(f"{node.module}.{a.name}" for a in node.names)
    out: set[str] = set()
    for t in targets:
        parts = t.split(".")
        for i in range(1, len(parts) + 1):
            m = ".".join(parts[:i])
            # a module's own packages are initialised before it runs: not an edge
            if m in known and m != name and not name.startswith(m + "."):
                out.add(m)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycle_anywhere() -> None:
    mods = modules()
    graph = {name: runtime_imports(path, name, set(mods)) for name, path in mods.items()}
    assert graph["reconciler.session"], "the import graph is empty: the parser found no imports"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


FIRST_IMPORT = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for m in [m for m in sys.modules if m == "reconciler" or m.startswith("reconciler.")]:
        del sys.modules[m]  # third-party modules stay loaded: only reconciler's import order matters here
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first() -> None:
    """Each module, imported first (no other reconciler module loaded), loads: no cycle hides behind the
    order in which modules happen to be imported."""
    names = [n for n in modules() if n != "reconciler.__main__"]
    r = subprocess.run([sys.executable, "-c", FIRST_IMPORT, *names], capture_output=True, text=True, timeout=300,
                       cwd=ROOT, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_modules_stay_small() -> None:
    big = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
           if len(p.read_text(encoding="utf-8").splitlines()) > MAX_LINES}
    assert big <= STILL_TOO_LARGE, f"over {MAX_LINES} lines: {sorted(big - STILL_TOO_LARGE)}"


def test_every_system_implements_the_contract_and_owns_its_prefix() -> None:
    methods = [m for m in dir(LiveSystem) if not m.startswith("_")] + list(LiveSystem.__annotations__)
    assert set(methods) >= {"plan", "steps", "check", "select", "stale", "prefix"}
    for system in SYSTEMS:
        missing = [m for m in methods if not hasattr(system, m)]
        assert not missing, (type(system).__name__, missing)
    prefixes = [s.prefix for s in SYSTEMS]
    assert len(set(prefixes)) == len(prefixes)
    assert all(system_for(p + 'x["y"]') is s for p, s in zip(prefixes, SYSTEMS, strict=True))
    assert system_for("ldap.x") is None


def test_jira_s_planner_reaches_no_client() -> None:
    """Jira's planner is given what was read (``jira.live.LiveState``), never a client: nothing it imports,
    directly or through other modules, makes a request (see tests/unit/test_jira_plan.py)."""
    mods = modules()
    graph = {name: runtime_imports(path, name, set(mods)) for name, path in mods.items()}
    reached, todo = set(), ["reconciler.providers.jira.plan"]
    while todo:
        m = todo.pop()
        if m not in reached:
            reached.add(m)
            todo += sorted(graph[m])
    assert {"reconciler.providers.jira.roles", "reconciler.providers.jira.live"} <= reached
    assert not reached & {"reconciler.providers.jira.client", "reconciler.providers.jira.read",
                          "reconciler.providers._http"}, sorted(reached)
