"""A clone with nothing beside it runs the tests that need files from outside the code: Atlassian's
OpenAPI descriptions (the contract tests) and the README's quickstart checks. The clone is made from
this checkout's last commit into an empty directory, so nothing a sibling folder holds can help."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ["tests/contract", "tests/unit/test_usermaps_resolve.py", "tests/unit/test_readme_quickstart.py"]


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="not a git checkout")
def test_the_contract_tests_pass_in_a_clone_with_nothing_beside_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    clone = empty / "reconciler"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True, timeout=120)
    assert sorted(p.name for p in empty.iterdir()) == ["reconciler"]  # nothing beside the clone
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_OPENAPI")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=clone,
                       env={**env, "PYTHONPATH": str(clone)}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "error" not in r.stdout.splitlines()[-1], r.stdout[-500:]
