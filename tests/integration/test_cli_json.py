"""--json for validate, check and apply: one JSON document on stdout, nothing else there."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.servers import SCIM_TOKEN, ScimServer

pytestmark = pytest.mark.integration
WriteConfig = Callable[..., Path]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def doc(result: Result) -> Any:
    parsed = json.loads(result.stdout)  # the whole of stdout is the document
    assert parsed["format_version"] == "1.0"
    return parsed


@pytest.fixture
def cfg(scim: ScimServer, write_config: WriteConfig) -> Path:
    return write_config(scim.base_url, members=["alice@acme.io", "bob@acme.io"],
                        teams=[{"name": "appsec", "members": ["alice@acme.io"]}])


def test_validate(cfg: Path) -> None:
    ok = run("validate", str(cfg), "--json")
    assert ok.exit_code == 0
    assert doc(ok) == {"format_version": "1.0", "valid": True, "files": 3, "providers": 1, "members": 2,
                       "teams": 1}
    (cfg / "members.yaml").write_text("members:\n  - email: alice@acme.io\n    givn_name: A\n  - email: nope\n")
    bad = run("validate", str(cfg), "--json")
    assert bad.exit_code == 1 and bad.stderr == ""
    problems = doc(bad)["problems"]
    assert doc(bad)["valid"] is False and [(p["line"], p["column"]) for p in problems] == [(3, 5), (4, 12)]
    assert problems[0]["file"].endswith("members.yaml") and "givn_name" in problems[0]["message"]


def test_check(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = run("check", str(cfg), "--json")
    assert ok.exit_code == 0, ok.output
    d = doc(ok)
    assert d["ok"] is True and [s["name"] for s in d["systems"]] == ["platform"]
    assert {s["step"] for s in d["systems"][0]["steps"]} >= {"reachable", "authentication"}
    monkeypatch.setenv("SCIM_TOKEN", "wrong-token")
    bad = run("check", str(cfg), "--json")
    assert bad.exit_code == 1
    failed = doc(bad)
    assert failed["ok"] is False and not all(s["ok"] for s in failed["systems"][0]["steps"])
    assert "wrong-token" not in bad.output and SCIM_TOKEN not in bad.output


def test_apply(cfg: Path, tmp_path: Path) -> None:
    audit = str(tmp_path / "audit.jsonl")
    result = run("apply", str(cfg), "--auto-approve", "--json", "--audit-log", audit)
    assert result.exit_code == 0, result.output
    d = doc(result)
    assert d["ok"] is True and d["summary"] == "Apply complete: 3 created, 0 updated, 0 deactivated, 0 deleted."
    # outcomes in the plan's order, whatever order the workers finished in
    assert [o["address"] for o in d["outcomes"]] == [c["address"] for c in d["plan"]["changes"]]
    assert all(o["ok"] and o["error"] is None for o in d["outcomes"])
    again = doc(run("apply", str(cfg), "--auto-approve", "--json", "--audit-log", audit))
    assert again["outcomes"] == [] and again["plan"]["has_changes"] is False


def test_apply_json_asks_nothing(cfg: Path) -> None:
    result = run("apply", str(cfg), "--json")
    assert result.exit_code == 1 and "--json needs --auto-approve" in result.output


def test_apply_of_a_saved_plan(cfg: Path, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    assert run("plan", str(cfg), "--out", str(saved)).exit_code == 0
    result = run("apply", str(saved), "--json", "--audit-log", str(tmp_path / "audit.jsonl"))
    assert result.exit_code == 0, result.output
    assert len(doc(result)["outcomes"]) == 3
