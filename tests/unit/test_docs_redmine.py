"""docs/redmine.md's line that starts Redmine fails loudly where it cannot work (no sudo, not root),
instead of returning 0 with REDMINE_URL unset."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


def documented_line() -> str:
    doc = (ROOT / "docs" / "redmine.md").read_text()
    m = re.search(r"^(lines=\$\(sudo bash scripts/redmine-up\.sh\) && eval \"\$lines\")", doc, re.M)
    assert m, "docs/redmine.md no longer shows the start line this test runs"
    return m.group(1)


def run_without_sudo(line: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``line`` in bash, with a PATH that has bash and the usual tools but no sudo."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "id", "mkdir", "env", "date", "dpkg-query", "grep"):
        exe = shutil.which(tool)
        if exe and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(exe)
    script = f'unset REDMINE_URL REDMINE_API_KEY\n{line}\nrc=$?\necho "rc=$rc url=${{REDMINE_URL:-unset}}"\n'
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run([str(bin_dir / "bash"), "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_documented_line_fails_without_sudo(tmp_path: Path) -> None:
    res = run_without_sudo(documented_line(), tmp_path)
    assert "url=unset" in res.stdout
    assert "rc=0 " not in res.stdout, res.stdout  # the failure is the line's exit status
    assert "sudo" in res.stderr  # and says why (bash: sudo: command not found)


def test_the_form_it_replaces_returned_0_with_nothing_set(tmp_path: Path) -> None:
    res = run_without_sudo('eval "$(sudo bash scripts/redmine-up.sh)"', tmp_path)
    assert "rc=0 url=unset" in res.stdout, res.stdout


def test_the_script_refuses_a_non_root_user_with_a_reason() -> None:
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser, to run the script as another user")
    res = subprocess.run(["runuser", "-u", "nobody", "--", "bash", "-c",
                          'lines=$(bash scripts/redmine-up.sh) && eval "$lines"; echo "rc=$?"'],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "rc=1" in res.stdout and "needs root" in res.stderr, res.stdout + res.stderr
