"""pyproject.toml's dependency lists stay honest: every runtime dependency is imported by reconciler,
and the dev linters are pinned to exact versions."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def dist_name(requirement: str) -> str:
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert m, requirement
    return m.group(0)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "reconciler").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_runtime_dependency_is_imported() -> None:
    # top-level import name -> the distributions that provide it, from the installed metadata
    providers = importlib.metadata.packages_distributions()
    used = {canonical(d) for name in imported_top_levels() for d in providers.get(name, [])}
    declared = {canonical(dist_name(r)) for r in PYPROJECT["project"]["dependencies"]}
    unused = sorted(declared - used)
    assert not unused, f"declared in [project] dependencies but never imported by reconciler/: {unused}"


def test_dev_linters_are_pinned_exactly() -> None:
    dev = {canonical(dist_name(r)): r for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    for tool in ("ruff", "mypy"):
        assert re.fullmatch(rf"{tool}==\d+(\.\d+)+", dev[tool]), f"{dev[tool]!r}: pin the linter to one version"


def test_mypy_is_strict_over_the_tests_and_bench_too() -> None:
    mypy = PYPROJECT["tool"]["mypy"]
    assert mypy["strict"] is True
    assert set(mypy.get("files", [])) >= {"reconciler", "tests", "bench"}, "CI's `mypy` checks what [tool.mypy] names"
