"""The user workflows in examples/github-actions/, the composite action.yml and this repository's own CI
(.github/workflows/), checked by actionlint and zizmor.

actionlint sees the workflows as they would run in a repository that holds the action (``uses: ./``),
so it also checks every ``with:`` against the inputs action.yml declares.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.conftest import ROOT

EXAMPLES = ROOT / "examples" / "github-actions"
WORKFLOWS = sorted(EXAMPLES.glob("reconciler-*.yml"))
PLACEHOLDER = "acme/reconciler@v1"
CI_WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# owner/repo[/path]@<full commit SHA> # v<major>.<minor>.<patch>: the SHA is what runs, the comment says which tag
PINNED = re.compile(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40} # v\d+\.\d+\.\d+")


def tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    assert exe, f"{name} is not installed: pip install -e '.[test]' installs it"
    return exe


def repo_with(tmp: Path, *, local_action: bool, edit: dict[str, tuple[str, str]] | None = None) -> Path:
    """A repository holding action.yml and the example workflows (optionally edited: name -> (old, new))."""
    (tmp / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "action.yml", tmp / "action.yml")
    for wf in WORKFLOWS:
        text = wf.read_text()
        if local_action:
            text = text.replace(PLACEHOLDER, "./")
        if edit and wf.name in edit:
            old, new = edit[wf.name]
            assert old in text
            text = text.replace(old, new)
        (tmp / ".github" / "workflows" / wf.name).write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    return tmp


def actionlint(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("actionlint"), "-no-color"], cwd=repo, capture_output=True, text=True, timeout=120)


def zizmor(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic",
                           "--config", str(EXAMPLES / "zizmor.yml"), "."],
                          cwd=repo, capture_output=True, text=True, timeout=120)


def test_there_are_plan_apply_and_drift_workflows() -> None:
    assert [w.name for w in WORKFLOWS] == ["reconciler-apply.yml", "reconciler-drift.yml", "reconciler-plan.yml"]


def test_actionlint_passes(tmp_path: Path) -> None:
    res = actionlint(repo_with(tmp_path, local_action=True))
    assert res.returncode == 0, res.stdout + res.stderr


def test_zizmor_passes_pedantic(tmp_path: Path) -> None:
    res = zizmor(repo_with(tmp_path, local_action=False))
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_linters_catch_mistakes(tmp_path: Path) -> None:
    bad_input = repo_with(tmp_path / "a", local_action=True,
                          edit={"reconciler-plan.yml": ("command: plan", "commnd: plan")})
    res = actionlint(bad_input)
    assert res.returncode != 0 and 'input "commnd" is not defined' in res.stdout, res.stdout
    injection = repo_with(tmp_path / "b", local_action=False, edit={"reconciler-drift.yml": (
        'echo "::error::drift: the live systems', 'echo "${{ github.event.head_commit.message }} the live systems')})
    res = zizmor(injection)
    assert res.returncode != 0 and "template-injection" in res.stdout, res.stdout


def ci_repo(tmp: Path, edit: tuple[str, str] | None = None) -> Path:
    """A repository holding this repository's own workflows (optionally with one text edit in each)."""
    (tmp / ".github" / "workflows").mkdir(parents=True)
    for wf in CI_WORKFLOWS:
        text = wf.read_text()
        if edit:
            assert edit[0] in text
            text = text.replace(*edit)
        (tmp / ".github" / "workflows" / wf.name).write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    return tmp


def zizmor_default(repo: Path) -> subprocess.CompletedProcess[str]:
    """zizmor pedantic with its default policy: every action hash-pinned."""
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic", "."],
                          cwd=repo, capture_output=True, text=True, timeout=120)


def test_ci_workflows_pass_actionlint_and_zizmor(tmp_path: Path) -> None:
    assert [w.name for w in CI_WORKFLOWS] == ["ci.yml"]
    repo = ci_repo(tmp_path)
    res = actionlint(repo)
    assert res.returncode == 0, res.stdout + res.stderr
    res = zizmor_default(repo)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_linters_catch_an_old_or_unpinned_action_in_ci(tmp_path: Path) -> None:
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    sha = re.search(r"actions/checkout@([0-9a-f]{40}) # v[\d.]+", ci)
    assert sha, "ci.yml checks out with a pinned actions/checkout"
    node20 = ci_repo(tmp_path / "a", edit=(sha.group(0), "actions/checkout@v4"))
    res = actionlint(node20)
    assert res.returncode != 0 and 'runtime "node20" is deprecated' in res.stdout, res.stdout
    by_tag = ci_repo(tmp_path / "b", edit=(sha.group(0), "actions/checkout@v5"))
    res = zizmor_default(by_tag)
    assert res.returncode != 0 and "unpinned-uses" in res.stdout, res.stdout


def uses_lines(path: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s*(?:-\s+)?uses:\s*(.+?)\s*$", path.read_text(), re.M)]


@pytest.mark.parametrize("path", [*CI_WORKFLOWS, *WORKFLOWS, ROOT / "action.yml"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_action_is_pinned_by_full_sha_with_its_tag(path: Path) -> None:
    uses = uses_lines(path)
    assert uses, f"no uses: lines found in {path}"
    for u in uses:
        if u == PLACEHOLDER or u.startswith("./"):
            continue  # the user's own copy of this action (see zizmor.yml), or the repository's own
        assert PINNED.fullmatch(u), f"{path.name}: {u!r} is not pinned as owner/repo@<40-hex SHA> # vX.Y.Z"


def test_the_pin_format_check_refuses_tags_and_short_shas() -> None:
    for bad in ("actions/checkout@v5", "actions/checkout@v5.1.0", "actions/checkout@fbc6f39 # v5.1.0",
                "actions/checkout@fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09",
                "actions/checkout@fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09 # v5"):
        assert not PINNED.fullmatch(bad), bad
    assert PINNED.fullmatch("actions/checkout@fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09 # v5.1.0")


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@pytest.mark.parametrize("wf", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_no_secret_in_a_script(wf: Path) -> None:
    doc = load(wf)
    assert doc["permissions"] == {}, "permissions are granted per job"
    for job in doc["jobs"].values():
        assert "write-all" not in str(job.get("permissions"))
        assert set(job["permissions"]) <= {"contents", "pull-requests", "actions", "issues"}
        for step in job["steps"]:
            assert "secrets." not in step.get("run", ""), step  # secrets reach steps as env, never in a script
            assert "secrets." not in str(step.get("with", {})), step


def test_applies_never_overlap_and_apply_the_saved_plan() -> None:
    apply = load(EXAMPLES / "reconciler-apply.yml")
    assert apply["concurrency"] == {"group": "reconciler-apply", "cancel-in-progress": False}
    steps = apply["jobs"]["apply"]["steps"]
    assert any(s.get("uses", "").startswith("actions/download-artifact@") for s in steps)
    assert any(s.get("with", {}).get("command") == "apply" for s in steps)
    plan = load(EXAMPLES / "reconciler-plan.yml")
    assert any(s.get("with", {}).get("comment") == "true" for s in plan["jobs"]["plan"]["steps"])
    uploads = [s for s in plan["jobs"]["plan"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["name"] == "reconciler-plan"
    action = load(ROOT / "action.yml")
    assert action["runs"]["using"] == "composite" and "command" in action["inputs"]
