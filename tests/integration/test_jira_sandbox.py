"""Jira integrations against the stateful Jira sandbox (Cloud and Data Center), every call contract-checked:
plan -> apply -> plan, plan-time errors that list the valid values, drift, renames, moved projects,
missing permissions, role membership modes, the activation test issue, and faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.errors import PlanError
from reconciler.plan.model import Action, Plan
from reconciler.session import Session
from tests.contract.jira_spec import JiraRig, rig_fixture

BASE: dict[str, Any] = {"name": "web", "program": "acme-web", "project": "SEC", "issue_type": "Bug",
                        "priorities": {"critical": "Highest", "high": "High"},
                        "statuses": {"accepted": "In Progress", "closed": "Closed"},
                        "resolutions": {"duplicate": "Duplicate"}, "team_roles": {"appsec": "Developers"}}


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraRig]:
    yield from rig_fixture(request.param, tmp_path, monkeypatch)


def plan(rig: JiraRig, **kw: Any) -> Plan:
    with Session(load_config(rig.folder), transports=rig.transports(), **kw) as s:
        return s.plan()


def converge(rig: JiraRig) -> Plan:
    """plan, apply, and prove that a second plan is empty; returns the first plan."""
    config = load_config(rig.folder)
    with Session(config, transports=rig.transports()) as s:
        first = s.plan()
        result = apply_plan(s, first)
        assert not result.failures, result.failures
    assert not plan(rig).has_changes
    return first


def plan_error(rig: JiraRig) -> str:
    with pytest.raises(PlanError) as exc:
        plan(rig)
    return str(exc.value)


def test_round_trip_converges_and_stores_resolved_ids(jira: JiraRig) -> None:
    jira.write([BASE])
    first = converge(jira)
    addrs = {c.address: c.action for c in first.changes}
    conn = jira.conn
    assert addrs == {f'jira.{conn}.integration["web"]': Action.CREATE,
                     f'jira.{conn}.project_role["SEC/Developers"]': Action.UPDATE,
                     f'jira.{conn}.test_issue["web"]': Action.CREATE}
    prop = jira.state.project("SEC").properties["reconciler.integration.web"]
    assert prop["project"] == {"id": "10000", "key": "SEC"}
    assert prop["issueType"] == {"id": "10004", "name": "Bug"}
    assert prop["priorities"]["critical"] == {"id": "1", "name": "Highest"}
    assert prop["statuses"]["closed"] == {"id": "6", "name": "Closed"}
    assert prop["resolutions"]["duplicate"] == {"id": "10002", "name": "Duplicate"}
    assert prop["testIssueCreated"] is True
    role = jira.state.project("SEC").roles[jira.state.role_id("Developers")]
    assert role == {jira.ident("alice"), jira.ident("bob")}
    issues = list(jira.state.issues.values())
    assert len(issues) == 1 and issues[0]["labels"] == ["reconciler-test-web"]


def test_every_wrong_name_is_a_plan_error_with_the_valid_values(jira: JiraRig) -> None:
    jira.write([{**BASE, "issue_type": "Story", "priorities": {"critical": "Highst"},
                 "statuses": {"accepted": "Doing"}, "resolutions": {"spam": "Rubbish"},
                 "team_roles": {"appsec": "Devs"}},
                {**BASE, "name": "ops", "project": "OPZ"}])
    text = plan_error(jira)
    assert "integrations.yaml:" in text
    assert "integration 'web': issue type 'Story' is not available in project SEC; valid: 'Bug', " \
           "'Vulnerability'" in text
    assert "Highst" not in text  # priorities are those of the issue type's create screen: with no issue type,
    # none can be checked (test_priorities_are_those_of_the_projects_priority_scheme checks them)
    assert "resolution 'Rubbish' (for 'spam') does not exist" in text and "'Cannot Reproduce'" in text
    assert "role 'Devs' does not exist in project SEC; valid: 'Administrators', 'Developers', 'Security " \
           "Reviewers', 'Users'" in text
    assert "integration 'ops': project 'OPZ' does not exist in " + jira.conn + " or the integration user " \
           "cannot browse it; valid: 'OPS', 'SEC'" in text
    assert not jira.state.project("SEC").properties  # nothing was written


def test_status_must_belong_to_the_issue_types_workflow(jira: JiraRig) -> None:
    # 'To Do' exists in Jira (OPS workflow), not in SEC's Bug workflow
    jira.write([{**BASE, "statuses": {"triage": "To Do"}}])
    text = plan_error(jira)
    assert "status of Bug issues in SEC 'To Do' (for 'triage') does not exist" in text
    assert "valid: 'Closed', 'In Progress', 'In Review', 'Open', 'Resolved'" in text


def test_a_renamed_priority_is_caught_at_plan_time_with_a_hint(jira: JiraRig) -> None:
    jira.write([BASE])
    converge(jira)
    jira.state.rename("priority", "High", "Urgent")
    text = plan_error(jira)
    assert "priority 'High' (for 'high') is not in the priority scheme of project SEC (for Bug issues)" in text
    assert "id 2, recorded as 'High', is now called 'Urgent': renamed in Jira?" in text
    # following the rename in the config plans the property back in line
    jira.write([{**BASE, "priorities": {"critical": "Highest", "high": "Urgent"}}])
    again = plan(jira)
    (change,) = again.changes
    assert change.action is Action.UPDATE
    assert [(d.path, d.before, d.after) for d in change.diff] == [("priorities.high.name", "High", "Urgent")]


def test_a_moved_project_is_reported(jira: JiraRig) -> None:
    jira.write([BASE])
    converge(jira)
    jira.state.move("SEC", "APPSEC")
    text = plan_error(jira)
    assert "project 'SEC' has moved: Jira now calls it 'APPSEC' (id 10000); write project: APPSEC" in text


def test_missing_permissions_are_named(jira: JiraRig) -> None:
    jira.write([{**BASE, "delete_test_issue": True}])
    jira.state.revoke("SEC", "EDIT_ISSUES", "DELETE_ISSUES", "CREATE_ATTACHMENTS")
    text = plan_error(jira)
    assert "the integration user lacks 3 permission(s) on project SEC: Edit issues (EDIT_ISSUES), Create " \
           "attachments (CREATE_ATTACHMENTS), Delete issues (DELETE_ISSUES)" in text
    # delete is needed only when the test issue is deleted
    jira.state.project("SEC").permissions |= {"EDIT_ISSUES", "CREATE_ATTACHMENTS"}
    jira.write([BASE])
    assert plan(jira).has_changes


def test_a_webhook_needs_a_jira_administrator(jira: JiraRig) -> None:
    jira.write([{**BASE, "webhook": {"url": "https://platform.acme.io/hooks/jira"}}])
    jira.state.global_permissions.clear()
    assert "Jira administrator (global) (ADMINISTER)" in plan_error(jira)


def test_drift_in_the_property_and_the_webhook_is_planned_back(jira: JiraRig) -> None:
    jira.write([{**BASE, "webhook": {"url": "https://platform.acme.io/hooks/jira", "jql": "project = SEC"}}])
    converge(jira)
    prop = jira.state.project("SEC").properties["reconciler.integration.web"]
    prop["statuses"]["closed"]["id"] = "5"
    (hook,) = jira.state.webhooks.values()
    hook["enabled"] = False
    drift = plan(jira)
    paths = {c.address: [d.path for d in c.diff] for c in drift.changes}
    assert paths == {f'jira.{jira.conn}.integration["web"]': ["statuses.closed.id"],
                     f'jira.{jira.conn}.webhook["reconciler web"]': ["enabled"]}
    converge(jira)
    assert jira.state.project("SEC").properties["reconciler.integration.web"]["statuses"]["closed"]["id"] == "6"


def test_removing_the_webhook_from_the_config_deletes_it(jira: JiraRig) -> None:
    jira.write([{**BASE, "webhook": {"url": "https://platform.acme.io/hooks/jira"}}])
    converge(jira)
    assert len(jira.state.webhooks) == 1
    jira.write([BASE])
    first = converge(jira)
    assert {c.address: c.action for c in first.changes}[f'jira.{jira.conn}.webhook["reconciler web"]'] \
        is Action.DELETE
    assert not jira.state.webhooks


def test_additive_roles_keep_other_actors_authoritative_roles_remove_them(jira: JiraRig) -> None:
    dev = jira.state.role_id("Developers")
    sec = jira.state.project("SEC")
    sec.roles[dev] = {jira.ident("dave"), jira.state.me}
    jira.write([BASE])
    converge(jira)
    assert sec.roles[dev] == {jira.ident(p) for p in ("alice", "bob", "dave")} | {jira.state.me}
    jira.write([{**BASE, "role_membership": "authoritative"}])
    first = converge(jira)
    assert sec.roles[dev] == {jira.ident("alice"), jira.ident("bob"), jira.state.me}
    assert any("the integration user keeps its place in the role" in n for n in first.notes)
    assert sec.groups[jira.state.role_id("Users")] == {"jira-users"}  # group actors are never touched


def test_two_integrations_granting_one_role_merge_their_teams(jira: JiraRig) -> None:
    jira.write([BASE, {**BASE, "name": "mobile", "program": "acme-mobile", "team_roles": {"ops": "Developers"}}],
               teams={"appsec": ["alice"], "ops": ["carol"]})
    first = converge(jira)
    roles = [c for c in first.changes if c.kind == "project_role"]
    assert len(roles) == 1
    assert jira.state.project("SEC").roles[jira.state.role_id("Developers")] == {jira.ident("alice"),
                                                                                jira.ident("carol")}


def test_an_unmapped_member_is_noted_not_granted(jira: JiraRig) -> None:
    jira.write([BASE], mapped={"alice": jira.ident("alice")})
    first = plan(jira)
    assert any("bob@acme.io (team appsec) has no identity in" in n for n in first.notes)
    (role,) = [c for c in first.changes if c.kind == "project_role"]
    assert role.after == {"users": [jira.ident("alice")]}


def test_mapped_accounts_must_exist_and_be_active(jira: JiraRig) -> None:
    ghost = "5b10ac8d82e05b22cc7d4eff" if jira.flavour == "cloud" else "ghost"
    jira.write([BASE], mapped={"alice": jira.ident("alice"), "bob": jira.ident("bob"), "carol": ghost})
    jira.state.users[jira.ident("bob")].active = False
    text = plan_error(jira)
    assert f"user map of carol@acme.io: {jira.conn} {'account ID' if jira.flavour == 'cloud' else 'username'} " \
           f"'{ghost}' does not exist in Jira" in text
    assert f"user map of bob@acme.io: {jira.conn}" in text and "is deactivated in Jira" in text


def test_fallback_users_are_checked(jira: JiraRig) -> None:
    jira.write([BASE], fallback_users=[{"system": jira.conn, "member": "carol@acme.io", "project": "SEC"}])
    jira.state.users[jira.ident("carol")].active = False
    text = plan_error(jira)
    assert "usermaps.yaml:" in text
    assert f"fallback user for {jira.conn} (project=SEC): " in text and "is deactivated in Jira" in text


def test_the_test_issue_is_created_once_and_deleted_when_asked(jira: JiraRig) -> None:
    jira.write([BASE])
    converge(jira)
    assert len(jira.state.issues) == 1
    # the property is lost: the label still proves the issue was created, so no second one
    jira.state.project("SEC").properties.clear()
    again = plan(jira)
    assert [c.kind for c in again.changes] == ["integration"]
    converge(jira)
    assert len(jira.state.issues) == 1
    # asking for deletion deletes it; it is never created again afterwards
    jira.write([{**BASE, "delete_test_issue": True}])
    first = converge(jira)
    assert {c.kind: c.action for c in first.changes}["test_issue"] is Action.DELETE
    assert not jira.state.issues
    assert not plan(jira).has_changes


def test_delete_after_create_leaves_no_issue(jira: JiraRig) -> None:
    jira.write([{**BASE, "delete_test_issue": True}])
    converge(jira)
    assert not jira.state.issues
    assert jira.state.project("SEC").properties["reconciler.integration.web"]["testIssueCreated"] is True


def test_429_with_retry_after_is_honoured(jira: JiraRig) -> None:
    jira.write([BASE])
    jira.state.fail("GET", r"/project/SEC$", status=429, times=2, retry_after="7")
    sleeps: list[float] = []
    result = plan(jira, sleep=sleeps.append)
    assert result.has_changes
    assert sleeps == [7.0, 7.0]


def test_a_lost_create_answer_does_not_create_a_second_test_issue(jira: JiraRig) -> None:
    jira.write([BASE])
    jira.state.fail("POST", r"/issue$", status=503, times=1, retry_after="0", after=True)
    jira.state.fail("POST", r"/role/\d+$", status=502, times=1, retry_after="0", after=True)
    config = load_config(jira.folder)
    with Session(config, transports=jira.transports(), sleep=lambda s: None) as s:
        result = apply_plan(s, s.plan())
    assert not result.failures, result.failures
    assert len(jira.state.issues) == 1
    assert jira.state.project("SEC").roles[jira.state.role_id("Developers")] == {jira.ident("alice"),
                                                                                jira.ident("bob")}
    assert not plan(jira).has_changes


def test_a_stale_saved_plan_is_refused_per_change(jira: JiraRig) -> None:
    jira.write([BASE])
    config = load_config(jira.folder)
    with Session(config, transports=jira.transports()) as s:
        saved = s.plan()
        jira.state.project("SEC").roles[jira.state.role_id("Developers")].add(jira.ident("frank"))
        result = apply_plan(s, saved)
    failure = result.failures[f'jira.{jira.conn}.project_role["SEC/Developers"]']
    assert "changed in Jira since the plan was made; plan again" in failure


def test_wrong_credentials_are_a_clear_error(jira: JiraRig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_API_TOKEN", "wrong-token")
    monkeypatch.setenv("JIRA_TOKEN", "wrong-token")
    jira.write([BASE])
    text = plan_error(jira)
    assert f"cannot plan Jira connection '{jira.conn}': authentication failed" in text
    assert "wrong-token" not in text
