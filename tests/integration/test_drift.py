"""The scheduled drift check: plan --drift-base REF --detailed-exitcode, against a real scim2-server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.conftest import dump_yaml
from tests.servers import ScimServer


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=ci@acme.io", "-c", "user.name=CI",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


@pytest.fixture
def repo(scim: ScimServer, write_config: Callable[..., Path], tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose committed config is applied to the server."""
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    cfg = write_config(scim.base_url, folder="org/config", members=[{"email": "alice@acme.io", "title": "Eng"}])
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "config")
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0
    return cfg


def someone_edits_alice(scim: ScimServer) -> None:
    with scim.client() as c:
        alice = c.get("Users").json()["Resources"][0]
        r = c.patch(f"Users/{alice['id']}", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                  "Operations": [{"op": "replace", "path": "title",
                                                                  "value": "Boss"}]})
        assert r.status_code in (200, 204)


def test_drift_is_named_when_only_the_live_system_changed(scim: ScimServer, repo: Path) -> None:
    quiet = run("plan", str(repo), "--drift-base", "HEAD", "--detailed-exitcode", "--format", "markdown")
    assert quiet.exit_code == 0 and "No drift" in quiet.output
    someone_edits_alice(scim)
    res = run("plan", str(repo), "--drift-base", "HEAD", "--detailed-exitcode", "--format", "markdown")
    assert res.exit_code == 2
    assert res.output.startswith("## reconciler plan — drift detected")
    assert '- title: "Boss"\n+ title: "Eng"' in res.output
    text = run("plan", str(repo), "--drift-base", "HEAD")
    assert text.output.startswith("Drift: the configuration is the same as at --drift-base")


def test_a_config_change_is_not_drift(scim: ScimServer, repo: Path, tmp_path: Path) -> None:
    (repo / "members.yaml").write_text(dump_yaml({"members": [{"email": "alice@acme.io", "title": "Lead"}]}))
    res = run("plan", str(repo), "--drift-base", "HEAD", "--format", "markdown")  # an uncommitted edit
    assert "Plan: 0 to create, 1 to update" in res.output and "drift" not in res.output.lower()
    git(tmp_path, "commit", "-qam", "promote alice")
    # a pull request compares with its base branch: the config differs there, so not drift
    assert "drift" not in run("plan", str(repo), "--drift-base", "HEAD~1", "--format", "markdown").output.lower()
    assert "drift detected" in run("plan", str(repo), "--drift-base", "HEAD", "--format", "markdown").output


def test_a_bad_drift_base_is_a_clear_error(scim: ScimServer, repo: Path) -> None:
    res = run("plan", str(repo), "--drift-base", "no-such-branch")
    assert res.exit_code == 1
    assert "error: --drift-base no-such-branch: not a git revision in this repository" in res.stderr
