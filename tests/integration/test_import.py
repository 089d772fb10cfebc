"""reconciler import against a real scim2-server: import, then plan shows no changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.config import load_config
from tests.servers import ScimServer

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def post(c: httpx.Client, resource: str, body: dict[str, Any]) -> str:
    r = c.post(resource, json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def seed(scim: ScimServer) -> None:
    """A directory typed by hand in the platform's UI, before reconciler."""
    with scim.client() as c:
        carol = post(c, "Users", {"schemas": [USER, ENT], "userName": "carol@acme.io", "externalId": "hr-0042",
                                  "name": {"givenName": "Carol", "familyName": "Chen"}, "displayName": "Carol Chen",
                                  "title": "CISO", "emails": [{"value": "carol@acme.io", "primary": True}],
                                  "roles": [{"value": "admin"}, {"value": "auditor"}],
                                  ENT: {"department": "Security", "employeeNumber": "42", "costCenter": "CC-7",
                                        "organization": "Acme", "division": "Platform"}})
        alice = post(c, "Users", {"schemas": [USER, ENT], "userName": "Alice@acme.io",
                                  "name": {"givenName": "Alice"},
                                  "emails": [{"value": "Alice@acme.io", "primary": True}],
                                  ENT: {"department": "AppSec", "manager": {"value": carol}}})
        bob = post(c, "Users", {"schemas": [USER], "userName": "bob@acme.io", "active": False,
                                "emails": [{"value": "bob@acme.io", "primary": True}]})
        post(c, "Users", {"schemas": [USER], "userName": "svc-scanner"})  # not a person: not importable
        post(c, "Groups", {"schemas": [GROUP], "displayName": "appsec",
                           "members": [{"value": alice}, {"value": carol}]})
        post(c, "Groups", {"schemas": [GROUP], "displayName": "leavers", "members": [{"value": bob}]})
        post(c, "Groups", {"schemas": [GROUP], "displayName": "empty"})


@pytest.fixture
def provider_only(scim: ScimServer, write_config: Callable[..., Path], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    cfg = write_config(scim.base_url)
    (cfg / "members.yaml").unlink()
    (cfg / "teams.yaml").unlink()
    return cfg


def test_import_then_adopt_then_plan_shows_no_changes(scim: ScimServer, provider_only: Path) -> None:
    seed(scim)
    res = run("import", "config", "--provider", "platform")
    assert res.exit_code == 0, res.output
    assert "Imported 3 member(s) and 3 team(s) from platform." in res.output
    assert "note: user 'svc-scanner'" in res.output and "not an email" in res.output
    # every remaining difference is the ownership mark, nothing the config failed to express
    assert "6 object(s) are not yet marked as managed" in res.output
    assert "cannot express" not in res.output
    plan = run("plan", "config")
    assert "Plan: 0 to create, 6 to update" in plan.output
    assert plan.output.count("~ externalId:") == 6
    assert '~ externalId: "hr-0042" -> "reconciler:hr-0042"' in plan.output  # the HR id is kept

    res = run("import", "config", "--provider", "platform", "--adopt", "--force", "--audit-log", "audit.jsonl")
    assert res.exit_code == 0, res.output
    assert "Adopted 6 object(s)" in res.output
    again = run("plan", "config", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.output
    assert Path("audit.jsonl").read_text().count('"event": "change"') == 6


def test_imported_yaml_is_readable_stable_and_valid(scim: ScimServer, provider_only: Path) -> None:
    seed(scim)
    assert run("import", "config", "--provider", "platform", "--out", "imported").exit_code == 0
    members = Path("imported/members.yaml").read_text()
    teams = Path("imported/teams.yaml").read_text()
    assert members.splitlines()[0] == ("# yaml-language-server: "
                                       "$schema=https://reconciler.dev/schemas/config.schema.json")
    emails = [line.split(": ")[1] for line in members.splitlines() if line.startswith("  - email: ")]
    assert emails == ["Alice@acme.io", "bob@acme.io", "carol@acme.io"]
    assert teams.index("name: appsec") < teams.index("name: empty") < teams.index("name: leavers")
    assert "    manager: carol@acme.io\n" in members and "    department: AppSec\n" in members
    assert "    active: false\n" in members and "    external_id: hr-0042\n" in members
    assert "    roles:\n      - admin\n      - auditor\n" in members
    assert "    employee_number: '42'\n" in members
    assert "svc-scanner" not in members
    # the imported files load as a config next to the provider declaration
    Path("imported/providers.yaml").write_text(Path("config/providers.yaml").read_text())
    cfg = load_config("imported")
    assert [m.email for m in cfg.members] == ["Alice@acme.io", "bob@acme.io", "carol@acme.io"]
    assert [t.name for t in cfg.teams] == ["appsec", "empty", "leavers"]
    # a second import writes the same bytes
    assert run("import", "config", "--provider", "platform", "--out", "imported", "--force").exit_code == 0
    assert Path("imported/members.yaml").read_text() == members
    assert Path("imported/teams.yaml").read_text() == teams


def test_import_of_objects_reconciler_already_manages_plans_empty(scim: ScimServer, provider_only: Path,
                                                                 write_config: Callable[..., Path]) -> None:
    src = write_config(scim.base_url, folder="original",
                       members=[{"email": "dan@acme.io", "external_id": "E-1", "department": "Ops"},
                                {"email": "eve@acme.io", "manager": "dan@acme.io"}],
                       teams=[{"name": "ops", "members": ["dan@acme.io", "eve@acme.io"]}])
    assert run("apply", str(src), "--auto-approve").exit_code == 0
    res = run("import", "config", "--provider", "platform")
    assert res.exit_code == 0 and "not yet marked" not in res.output, res.output
    assert run("plan", "config", "--detailed-exitcode").exit_code == 0


def test_import_refuses_to_overwrite_and_names_unknown_providers(scim: ScimServer, provider_only: Path) -> None:
    assert run("import", "config", "--provider", "platform").exit_code == 0
    res = run("import", "config", "--provider", "platform")
    assert res.exit_code == 1 and "already exist(s); pass --force" in res.stderr
    res = run("import", "config", "--provider", "nope", "--force")
    assert res.exit_code == 1
    assert "error: --provider nope: no such provider in the config; valid: platform" in res.stderr


def test_what_the_config_cannot_express_is_reported(scim: ScimServer, provider_only: Path) -> None:
    with scim.client() as c:
        svc = post(c, "Users", {"schemas": [USER], "userName": "svc-bot"})
        fred = post(c, "Users", {"schemas": [USER], "userName": "fred@acme.io",
                                 "emails": [{"value": "fred@home.example", "primary": True}]})
        post(c, "Groups", {"schemas": [GROUP], "displayName": "bots", "members": [{"value": svc}, {"value": fred}]})
    res = run("import", "config", "--provider", "platform", "--adopt")
    assert res.exit_code == 0, res.output
    assert "fred@acme.io: primary email fred@home.example differs from userName" in res.output
    assert "team bots: member svc-bot is not an importable member" in res.output
    assert "2 change(s) remain that the config cannot express" in res.output
    assert '~ scim.platform.user["fred@acme.io"]: emails' in res.output
    assert '~ scim.platform.group["bots"]: externalId, members' in res.output


def test_adopt_with_out_is_refused_before_anything_is_written(scim: ScimServer, provider_only: Path) -> None:
    """It used to write the files, print 'Imported N member(s)', then refuse."""
    res = run("import", "config", "--provider", "platform", "--adopt", "--out", "elsewhere")
    assert res.exit_code == 1 and "--adopt needs the imported files in the config itself" in res.output
    assert "Imported" not in res.output and "wrote" not in res.output
    assert not Path("elsewhere").exists()
