"""Every core command through click's CliRunner: validate, plan, apply, check, demo (exit codes and output)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.servers import ScimServer

pytestmark = pytest.mark.integration
WriteConfig = Callable[..., Path]


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def cfg(scim: ScimServer, write_config: WriteConfig) -> Path:
    return write_config(scim.base_url, members=[{"email": "alice@acme.io", "given_name": "Alice"}, "bob@acme.io"],
                        teams=[{"name": "appsec", "members": ["alice@acme.io"]}])


def applied(cfg: Path) -> Result:
    result = run("apply", str(cfg), "--auto-approve", "--no-color", "--audit-log", str(cfg.parent / "audit.jsonl"))
    assert result.exit_code == 0, result.output
    return result


# --- validate ------------------------------------------------------------------------------------

def test_validate_ok(cfg: Path) -> None:
    result = run("validate", str(cfg))
    assert result.exit_code == 0
    assert result.stdout == "Configuration is valid: 3 file(s), 1 provider(s), 2 member(s), 1 team(s).\n"


def test_validate_reports_every_problem_and_exits_1(cfg: Path) -> None:
    (cfg / "members.yaml").write_text("members:\n  - email: alice@acme.io\n    givn_name: A\n  - email: nope\n")
    result = run("validate", str(cfg))
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].endswith("members.yaml:3:5: unknown key 'givn_name' (did you mean 'given_name'?)")
    assert lines[1].endswith("members.yaml:4:12: 'email': 'nope' is not a valid email address")
    assert lines[2] == "2 problem(s) found in the configuration."
    assert "Traceback" not in result.output


def test_validate_needs_no_server(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCIM_TOKEN", raising=False)
    cfg = write_config("https://scim.invalid/v2", members=["a@acme.io"])
    assert run("validate", str(cfg)).exit_code == 0


# --- plan ----------------------------------------------------------------------------------------

def test_plan_text(cfg: Path) -> None:
    result = run("plan", str(cfg), "--no-color")
    assert result.exit_code == 0
    out = result.stdout
    assert '  + scim.platform.user["alice@acme.io"]' in out
    assert '      + name.givenName: "Alice"' in out
    assert "\x1b[" not in out  # no colour off a TTY
    assert out.rstrip().endswith("Plan: 3 to create, 0 to update, 0 to deactivate, 0 to delete.")


def test_plan_json(cfg: Path) -> None:
    result = run("plan", str(cfg), "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["format_version"].startswith("2.")  # 2.0: typed payloads and depends_on
    assert doc["summary"] == {"create": 3, "update": 0, "replace": 0, "deactivate": 0, "delete": 0}
    assert [c["address"] for c in doc["changes"]] == ['scim.platform.group["appsec"]',
                                                      'scim.platform.user["alice@acme.io"]',
                                                      'scim.platform.user["bob@acme.io"]']
    assert "scim-test-token" not in result.stdout


def test_plan_markdown(cfg: Path) -> None:
    result = run("plan", str(cfg), "--format", "markdown")
    assert result.exit_code == 0
    assert result.stdout.startswith("## reconciler plan")
    assert "**Plan: 3 to create, 0 to update, 0 to deactivate, 0 to delete.**" in result.stdout
    assert "<code>+ scim.platform.user[\"bob@acme.io\"]</code>" in result.stdout


def test_plan_is_byte_identical_for_the_same_inputs(cfg: Path) -> None:
    first, second = (run("plan", str(cfg), "--format", "json") for _ in range(2))
    # two failed runs print the same nothing: each must be a successful plan with the changes in it
    for result in (first, second):
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["summary"]["create"] == 3
    assert first.stdout == second.stdout


def test_detailed_exitcode(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("plan", str(cfg), "--detailed-exitcode").exit_code == 2
    assert run("plan", str(cfg)).exit_code == 0
    applied(cfg)
    result = run("plan", str(cfg), "--detailed-exitcode")
    assert result.exit_code == 0 and "No changes." in result.stdout
    monkeypatch.setenv("SCIM_TOKEN", "wrong-token")
    assert run("plan", str(cfg), "--detailed-exitcode").exit_code == 1


def test_usage_errors_exit_1_not_2(cfg: Path) -> None:
    """2 means "changes" to a CI script using --detailed-exitcode; a typo must not look like that."""
    assert run("plan", str(cfg), "--format", "yaml", "--detailed-exitcode").exit_code == 1
    assert run("plann", str(cfg)).exit_code == 1


# --- apply ---------------------------------------------------------------------------------------

def test_apply_auto_approve_then_nothing_to_do(cfg: Path, scim: ScimServer) -> None:
    result = applied(cfg)
    assert 'scim.platform.user["alice@acme.io"]: create done' in result.stdout
    assert result.stdout.rstrip().endswith("Apply complete: 3 created, 0 updated, 0 deactivated, 0 deleted.")
    lines = [json.loads(x) for x in (cfg.parent / "audit.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines if x["event"] != "call"][:1] == ["apply-start"]
    assert not any("scim-test-token" in json.dumps(x) for x in lines)
    again = run("apply", str(cfg))  # nothing to do: no confirmation needed
    assert again.exit_code == 0 and "No changes." in again.stdout


def test_apply_without_auto_approve_refuses_off_a_terminal(cfg: Path, scim: ScimServer) -> None:
    result = run("apply", str(cfg), input="yes\n")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: refusing to apply without confirmation: stdin is not a terminal; "
                                     "pass --auto-approve")
    with scim.client() as c:
        assert c.get("Users").json()["totalResults"] == 0


def test_apply_failure_names_it_and_exits_1(scim: ScimServer, write_config: WriteConfig) -> None:
    cfg = write_config(scim.base_url, members=["ok@acme.io", {"email": "bad@acme.io",
                                                              "attributes": {"noSuchAttribute": "x"}}])
    result = run("apply", str(cfg), "--auto-approve", "--no-color", "--audit-log", str(cfg.parent / "a.jsonl"))
    assert result.exit_code == 1
    assert 'scim.platform.user["ok@acme.io"]: create done' in result.stdout
    assert "Apply complete: 1 created, 0 updated, 0 deactivated, 0 deleted; 1 failed." in result.stdout
    assert result.stderr.startswith('error: 1 change(s) failed:\n  scim.platform.user["bad@acme.io"]: cannot create')
    assert "Traceback" not in result.output


def test_apply_after_a_hand_deletion_converges(cfg: Path, scim: ScimServer) -> None:
    applied(cfg)
    with scim.client() as c:  # someone deletes alice by hand, so the team update cannot add her
        alice = c.get("Users", params={"filter": 'userName eq "alice@acme.io"'}).json()["Resources"][0]
        c.delete(f"Users/{alice['id']}").raise_for_status()
    result = run("apply", str(cfg), "--auto-approve", "--audit-log", str(cfg.parent / "audit.jsonl"))
    assert result.exit_code == 0, result.output  # re-created, and the team converges
    assert run("plan", str(cfg), "--detailed-exitcode").exit_code == 0


# --- check ---------------------------------------------------------------------------------------

def test_check_ok(cfg: Path, scim: ScimServer) -> None:
    result = run("check", str(cfg))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["reachable", "authentication", "discovery"]
    assert all(line.split()[2] == "ok" for line in lines)
    assert "bearer credentials accepted" in lines[1]
    assert "patch=yes" in lines[2] and "filter=yes" in lines[2]


def test_check_failing_provider(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "wrong-token")
    result = run("check", str(cfg))
    assert result.exit_code == 1
    auth = [line for line in result.stdout.splitlines() if " authentication " in line]
    assert len(auth) == 1 and "FAIL" in auth[0] and "HTTP 401" in auth[0]
    assert "wrong-token" not in result.output


def test_check_rejects_plain_http_off_loopback(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "t0ken-value")
    cfg = write_config("http://scim.example.com/v2")
    result = run("check", str(cfg))
    # refused when the config is loaded, at the line of base_url, before anything is contacted
    assert result.exit_code == 1 and "uses plain http; only https is allowed except to loopback" in result.stderr
    assert "providers.yaml:" in result.stderr and "'base_url'" in result.stderr


# --- demo ----------------------------------------------------------------------------------------

def test_demo() -> None:
    result = run("demo", "--no-color")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.count("$ reconciler plan examples/quickstart") == 2
    first, second = out.split("$ reconciler apply", 1)
    assert "Plan: " in first and "to create" in first
    assert "to deactivate" in first and 'scim.platform.user["erin@acme.io"]' in first
    plan1 = first.split("$ reconciler plan examples/quickstart", 1)[1]  # (the header explains ops-robot)
    assert "ops-robot@acme.io" not in plan1.split("Notes:")[0]  # never managed: left alone
    assert out.rstrip().endswith("No changes. The live systems match the configuration.")
