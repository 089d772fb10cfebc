"""Integrations removed from the config, against the Jira sandbox (Cloud and Data Center), every call
contract-checked: reconciler finds what it recorded (the settings property, its webhooks, the role actors it
granted) and plans exactly that for deletion; what it did not record is never touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.errors import UnsafePlanError
from reconciler.plan.model import Action, Plan
from reconciler.session import Session
from tests.contract.jira_spec import JiraRig, rig_fixture

HOOK = {"url": "https://platform.acme.io/hooks/jira"}
WEB: dict[str, Any] = {"name": "web", "program": "acme-web", "project": "SEC", "issue_type": "Bug",
                       "priorities": {"high": "High"}, "team_roles": {"appsec": "Developers"}, "webhook": HOOK}
OPS: dict[str, Any] = {"name": "ops", "program": "acme-ops", "project": "OPS", "issue_type": "Task",
                       "team_roles": {"ops": "Developers"}}
TEAMS = {"appsec": ["alice", "bob"], "ops": ["carol"]}


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraRig]:
    yield from rig_fixture(request.param, tmp_path, monkeypatch)


def plan(rig: JiraRig, **kw: Any) -> Plan:
    with Session(load_config(rig.folder), transports=rig.transports()) as s:
        return s.plan(**kw)


def converge(rig: JiraRig, **kw: Any) -> Plan:
    """plan, apply, and prove that a second plan is empty; returns the first plan."""
    with Session(load_config(rig.folder), transports=rig.transports()) as s:
        first = s.plan(**kw)
        result = apply_plan(s, first)
        assert not result.failures, result.failures
    assert not plan(rig).has_changes, [c.address for c in plan(rig).changes]
    return first


def actions(p: Plan) -> dict[str, Action]:
    return {c.address: c.action for c in p.changes}


def developers(rig: JiraRig, project: str = "SEC") -> set[str]:
    return rig.state.project(project).roles[rig.state.role_id("Developers")]


def foreign_things(rig: JiraRig) -> None:
    """What reconciler did not make: a property of another app, a look-alike property another tool wrote,
    a hand-made webhook, a hand-added role actor and a group actor."""
    sec = rig.state.project("SEC")
    sec.properties["other.app.settings"] = {"x": 1}
    sec.properties["reconciler.integration.legacy"] = {"managedBy": "someone-else", "webhook": "ci hook"}
    rig.state.webhooks[1] = {"name": "ci hook", "url": "https://ci.acme.io/jira", "events": ["jira:issue_created"],
                             "filters": {"issue-related-events-section": "project = SEC"}, "excludeBody": False,
                             "enabled": True}
    developers(rig).add(rig.ident("dave"))
    sec.groups[rig.state.role_id("Developers")] = {"jira-developers"}


def test_a_removed_integration_loses_its_property_webhook_and_role_grants(jira: JiraRig) -> None:
    foreign_things(jira)
    other = {**WEB, "name": "mobile", "program": "acme-mobile", "team_roles": {"ops": "Developers"}, "webhook": None}
    jira.write([WEB, other, OPS], teams=TEAMS)
    converge(jira)
    sec = jira.state.project("SEC")
    assert sec.properties["reconciler.integration.web"]["grants"] == {
        "Developers": {"id": str(jira.state.role_id("Developers")),
                       "users": sorted([jira.ident("alice"), jira.ident("bob")]),
                       "teams": {"appsec": sorted([jira.ident("alice"), jira.ident("bob")])}}}
    assert developers(jira) == {jira.ident(p) for p in ("alice", "bob", "carol", "dave")}
    assert len(jira.state.webhooks) == 2

    jira.write([other, OPS], teams=TEAMS)
    first = converge(jira)
    conn = jira.conn
    assert actions(first) == {f'jira.{conn}.integration["web"]': Action.DELETE,
                              f'jira.{conn}.webhook["reconciler web"]': Action.DELETE,
                              f'jira.{conn}.project_role["SEC/Developers"]': Action.UPDATE}
    by = {c.address: c for c in first.changes}
    gone = by[f'jira.{conn}.integration["web"]']
    assert gone.before is not None and gone.before["managedBy"] == "reconciler" and gone.id == "SEC"
    assert any("activation test issue" in n for n in gone.notes)
    role = by[f'jira.{conn}.project_role["SEC/Developers"]']
    assert role.after == {"users": sorted([jira.ident("carol"), jira.ident("dave")])}
    assert role.refs["removed_integrations"] == "web"
    assert "Plan: 0 to create, 1 to update, 0 to deactivate, 2 to delete." == first.summary()
    # what was not reconciler's is untouched; the other integrations keep theirs
    assert developers(jira) == {jira.ident("carol"), jira.ident("dave")}
    assert sec.groups[jira.state.role_id("Developers")] == {"jira-developers"}
    # the removed integration's record of its test issue goes with its record; the declared one keeps its own
    assert sorted(sec.properties) == ["other.app.settings", "reconciler.integration.legacy",
                                      "reconciler.integration.mobile", "reconciler.test-issue.mobile"]
    assert [w["name"] for w in jira.state.webhooks.values()] == ["ci hook"]
    assert len(jira.state.issues) == 3  # activation test issues are issues: left
    assert "reconciler.integration.ops" in jira.state.project("OPS").properties


def test_found_through_its_webhook_when_no_declared_integration_names_the_project(jira: JiraRig) -> None:
    jira.write([WEB, OPS], teams=TEAMS)
    converge(jira)
    jira.write([OPS], teams=TEAMS)
    first = converge(jira)
    assert set(actions(first)) == {f'jira.{jira.conn}.integration["web"]',
                                   f'jira.{jira.conn}.webhook["reconciler web"]',
                                   f'jira.{jira.conn}.project_role["SEC/Developers"]'}
    assert not jira.state.project("SEC").properties and not jira.state.webhooks
    assert developers(jira) == set()
    assert developers(jira, "OPS") == {jira.ident("carol")}


def test_scan_projects_finds_a_removed_integration_without_a_webhook(jira: JiraRig) -> None:
    quiet = {**WEB, "webhook": None}
    jira.write([quiet, OPS], teams=TEAMS)
    converge(jira)
    jira.write([OPS], teams=TEAMS)
    # nothing names SEC any more: reconciler does not look there (a list of every project would cost a
    # call per project on every plan)
    assert not plan(jira).has_changes
    conn = {**jira.connection(), "scan_projects": ["SEC"]}
    jira.write([OPS], teams=TEAMS, extra={"connections.yaml": {"connections": [conn]}})
    first = converge(jira)
    assert actions(first) == {f'jira.{jira.conn}.integration["web"]': Action.DELETE,
                              f'jira.{jira.conn}.project_role["SEC/Developers"]': Action.UPDATE}
    assert developers(jira) == set()


def test_the_last_integration_of_a_connection_is_removed_too(jira: JiraRig) -> None:
    jira.write([WEB], teams=TEAMS)
    converge(jira)
    jira.write([], teams=TEAMS)  # members stay mapped to the connection: it is still planned
    first = converge(jira)
    assert {c.kind for c in first.changes} == {"integration", "webhook", "project_role"}
    assert not jira.state.project("SEC").properties and not jira.state.webhooks


def test_additive_grants_remove_only_what_reconciler_added(jira: JiraRig) -> None:
    developers(jira).add(jira.ident("bob"))  # bob held the role before reconciler came
    jira.write([{**WEB, "webhook": None}], teams=TEAMS)
    converge(jira)
    grants = jira.state.project("SEC").properties["reconciler.integration.web"]["grants"]
    assert grants["Developers"]["users"] == [jira.ident("alice")]
    conn = {**jira.connection(), "scan_projects": ["SEC"]}
    jira.write([], teams=TEAMS, extra={"connections.yaml": {"connections": [conn]}})
    converge(jira)
    assert developers(jira) == {jira.ident("bob")}


def test_authoritative_grants_are_removed_whole_but_never_the_integration_user(jira: JiraRig) -> None:
    developers(jira).update({jira.ident("bob"), jira.state.me})
    jira.write([{**WEB, "webhook": None, "role_membership": "authoritative"}], teams=TEAMS)
    converge(jira)
    assert developers(jira) == {jira.ident("alice"), jira.ident("bob"), jira.state.me}
    # someone adds frank by hand after the last apply: not reconciler's grant
    developers(jira).add(jira.ident("frank"))
    conn = {**jira.connection(), "scan_projects": ["SEC"]}
    jira.write([], teams=TEAMS, extra={"connections.yaml": {"connections": [conn]}})
    converge(jira)
    assert developers(jira) == {jira.ident("frank"), jira.state.me}


def test_a_role_still_granted_by_a_declared_integration_keeps_its_members(jira: JiraRig) -> None:
    mobile = {**WEB, "name": "mobile", "program": "acme-mobile", "webhook": None}
    jira.write([WEB, mobile], teams=TEAMS)
    converge(jira)
    jira.write([mobile], teams=TEAMS)
    first = converge(jira)
    assert {c.kind for c in first.changes} == {"integration", "webhook"}
    assert developers(jira) == {jira.ident("alice"), jira.ident("bob")}


def test_a_record_without_grants_removes_no_role_actors(jira: JiraRig) -> None:
    jira.write([WEB, OPS], teams=TEAMS)
    converge(jira)
    del jira.state.project("SEC").properties["reconciler.integration.web"]["grants"]  # written before grants
    jira.write([OPS], teams=TEAMS)
    first = converge(jira)
    assert {c.kind for c in first.changes} == {"integration", "webhook"}
    assert developers(jira) == {jira.ident("alice"), jira.ident("bob")}


def test_a_webhook_with_reconcilers_name_and_no_record_is_removed(jira: JiraRig) -> None:
    jira.write([WEB, OPS], teams=TEAMS)
    converge(jira)
    jira.state.project("SEC").properties.clear()  # the record is lost; the webhook's name still marks it
    jira.state.webhooks[1] = {"name": "ci hook", "url": "https://ci.acme.io/jira", "events": [],
                              "filters": {"issue-related-events-section": ""}, "excludeBody": False,
                              "enabled": True}
    jira.write([OPS], teams=TEAMS)
    first = converge(jira)
    assert actions(first) == {f'jira.{jira.conn}.webhook["reconciler web"]': Action.DELETE}
    assert [w["name"] for w in jira.state.webhooks.values()] == ["ci hook"]
    assert developers(jira) == {jira.ident("alice"), jira.ident("bob")}  # nothing recorded them


def test_protect_keeps_a_removed_integration(jira: JiraRig) -> None:
    jira.write([WEB, OPS], teams=TEAMS)
    converge(jira)
    conn = {**jira.connection(), "protect": ["web"]}
    jira.write([OPS], teams=TEAMS, extra={"connections.yaml": {"connections": [conn]}})
    p = plan(jira)
    assert not p.has_changes
    assert p.protected == [f'jira.{jira.conn}.integration["web"]']
    assert "reconciler.integration.web" in jira.state.project("SEC").properties and jira.state.webhooks


def test_records_of_another_connection_are_left_to_it(jira: JiraRig) -> None:
    jira.write([WEB, OPS], teams=TEAMS)
    converge(jira)
    jira.state.project("SEC").properties["reconciler.integration.web"]["connection"] = "acme-other"
    other = {"name": "acme-other", "type": "jira-datacenter", "base_url": "https://jira.other.example",
             "token": "${env:JIRA_TOKEN}"}
    jira.write([OPS], teams=TEAMS, extra={"connections.yaml": {"connections": [jira.connection(), other]}})
    p = plan(jira)
    assert [c.address for c in p.changes] == []
    assert "reconciler.integration.web" in jira.state.project("SEC").properties


def test_the_removal_threshold_refuses_a_mass_removal(jira: JiraRig) -> None:
    many = [{**WEB, "name": f"web-{n}", "team_roles": {}} for n in range(4)]
    jira.write([*many, OPS], teams=TEAMS)
    converge(jira)
    jira.write([OPS], teams=TEAMS)
    with pytest.raises(UnsafePlanError) as exc:
        plan(jira)
    text = str(exc.value)
    assert f"refusing to plan for provider '{jira.conn}': it would remove (deactivate or delete) 8 of 9 managed " \
           "objects (88.9%), over the 20% threshold (max_removal_percent); pass --allow-removals=8" in text
    assert len(jira.state.webhooks) == 4
    converge(jira, allow_removals=8)
    assert not jira.state.webhooks and list(jira.state.project("SEC").properties) == []


def test_a_failed_revoke_keeps_the_record_so_a_rerun_finishes(jira: JiraRig) -> None:
    jira.write([WEB, OPS], teams=TEAMS)
    converge(jira)
    jira.write([OPS], teams=TEAMS)
    jira.state.fail("DELETE", r"/role/\d+$", status=500, times=1, retry_after="0")
    with Session(load_config(jira.folder), transports=jira.transports(), attempts=1, sleep=lambda s: None) as s:
        result = apply_plan(s, s.plan())
    assert set(result.failures) == {f'jira.{jira.conn}.project_role["SEC/Developers"]',
                                    f'jira.{jira.conn}.integration["web"]',
                                    f'jira.{jira.conn}.webhook["reconciler web"]'}
    assert "skipped: depends on" in result.failures[f'jira.{jira.conn}.integration["web"]']
    # the record and the webhook that leads to it are kept, so the next run finds what is left
    assert "reconciler.integration.web" in jira.state.project("SEC").properties and jira.state.webhooks
    converge(jira)
    assert developers(jira) == set() and not jira.state.project("SEC").properties


def test_a_saved_removal_is_refused_when_the_record_changed(jira: JiraRig) -> None:
    jira.write([WEB, OPS], teams=TEAMS)
    converge(jira)
    jira.write([OPS], teams=TEAMS)
    with Session(load_config(jira.folder), transports=jira.transports()) as s:
        saved = s.plan()
        jira.state.project("SEC").properties["reconciler.integration.web"]["program"] = "edited"
        result = apply_plan(s, saved)
    assert "changed in Jira since the plan was made" in result.failures[f'jira.{jira.conn}.integration["web"]']
    assert "reconciler.integration.web" in jira.state.project("SEC").properties


def test_a_saved_mass_removal_that_was_allowed_applies(jira: JiraRig) -> None:
    from reconciler.providers.jira import planner as jira_system
    many = [{**WEB, "name": f"web-{n}", "team_roles": {}} for n in range(4)]
    jira.write([*many, OPS], teams=TEAMS)
    converge(jira)
    jira.write([OPS], teams=TEAMS)
    saved = plan(jira, allow_removals=8)
    # applying the saved plan checks it by planning again: the reviewed removals are not refused again
    with Session(load_config(jira.folder), transports=jira.transports()) as s:
        (check,) = jira_system.stale(s, [c for c in saved.changes if c.address.startswith(jira_system.prefix)], {})
        assert check.stale == []


def test_an_integration_moved_to_another_project_leaves_nothing_behind(jira: JiraRig) -> None:
    """project: SEC -> OPS. The plan that makes it on OPS also removes its record and the role grants it
    recorded on SEC (found through its own webhook's JQL, which still names SEC); the webhook follows it."""
    jira.write([WEB], teams=TEAMS)
    converge(jira)
    assert developers(jira) == {jira.ident("alice"), jira.ident("bob")}
    moved = {**WEB, "project": "OPS", "issue_type": "Task"}
    jira.write([moved], teams=TEAMS)
    first = converge(jira)
    conn = jira.conn
    got = actions(first)
    assert got[f'jira.{conn}.integration["web@SEC"]'] is Action.DELETE
    assert got[f'jira.{conn}.project_role["SEC/Developers"]'] is Action.UPDATE
    assert got[f'jira.{conn}.project_role["OPS/Developers"]'] is Action.UPDATE
    assert got[f'jira.{conn}.integration["web"]'] in (Action.CREATE, Action.UPDATE)
    assert f'jira.{conn}.webhook["reconciler web"]' in got and got[f'jira.{conn}.webhook["reconciler web"]'] \
        is not Action.DELETE
    old = {c.address: c for c in first.changes}[f'jira.{conn}.integration["web@SEC"]']
    assert old.id == "SEC" and any("moved from SEC to OPS" in n for n in old.notes)
    assert "reconciler.integration.web" not in jira.state.project("SEC").properties
    assert "reconciler.integration.web" in jira.state.project("OPS").properties
    assert developers(jira) == set()
    assert developers(jira, "OPS") == {jira.ident("alice"), jira.ident("bob")}
    (hook,) = jira.state.webhooks.values()
    assert hook["name"] == "reconciler web" and "OPS" in hook["filters"]["issue-related-events-section"]


# --- a team leaving a role of a declared integration (issue 11, case 10) -------------------------------

def role(rig: JiraRig, name: str, project: str = "SEC") -> set[str]:
    return rig.state.project(project).roles[rig.state.role_id(name)]


def recorded(rig: JiraRig, name: str = "web") -> dict[str, Any]:
    grants: dict[str, Any] = rig.state.project("SEC").properties[f"reconciler.integration.{name}"]["grants"]
    return grants


def test_a_team_moved_to_another_role_leaves_the_old_one(jira: JiraRig) -> None:
    """team_roles {appsec: Developers} -> {appsec: Administrators}: alice and bob leave Developers (dave, put
    there by hand, stays), the record names only Administrators, and removing the integration afterwards
    revokes Administrators too: the last plan is empty and nobody keeps a role reconciler granted."""
    developers(jira).add(jira.ident("dave"))
    quiet = {**WEB, "webhook": None}
    jira.write([quiet], teams=TEAMS)
    converge(jira)
    assert developers(jira) == {jira.ident(p) for p in ("alice", "bob", "dave")}

    jira.write([{**quiet, "team_roles": {"appsec": "Administrators"}}], teams=TEAMS)
    first = converge(jira)
    conn = jira.conn
    by = {c.address: c for c in first.changes}
    revoke = by[f'jira.{conn}.project_role["SEC/Developers"]']
    assert revoke.after == {"users": [jira.ident("dave")]}
    assert revoke.refs["revoked_for"] == "web" and "removed_integrations" not in revoke.refs
    assert developers(jira) == {jira.ident("dave")}
    assert role(jira, "Administrators") == {jira.ident("alice"), jira.ident("bob")}
    assert set(recorded(jira)) == {"Administrators"}

    conn_scan = {**jira.connection(), "scan_projects": ["SEC"]}
    jira.write([], teams=TEAMS, extra={"connections.yaml": {"connections": [conn_scan]}})
    converge(jira)
    assert role(jira, "Administrators") == set() and developers(jira) == {jira.ident("dave")}
    assert not jira.state.project("SEC").properties


def test_additive_a_team_leaving_a_role_revokes_only_what_it_was_recorded_granting(jira: JiraRig) -> None:
    """Two teams grant Developers; ops moves to Users. carol (ops, added by reconciler) leaves Developers;
    dave (ops too, but in Developers before reconciler) stays: not reconciler's grant. appsec keeps its
    members there."""
    developers(jira).add(jira.ident("dave"))
    teams = {"appsec": ["alice", "bob"], "ops": ["carol", "dave"]}
    two = {**WEB, "webhook": None, "team_roles": {"appsec": "Developers", "ops": "Developers"}}
    jira.write([two], members=["alice", "bob", "carol", "dave"], teams=teams)
    converge(jira)
    assert developers(jira) == {jira.ident(p) for p in ("alice", "bob", "carol", "dave")}
    assert recorded(jira)["Developers"]["teams"] == {"appsec": sorted([jira.ident("alice"), jira.ident("bob")]),
                                                     "ops": [jira.ident("carol")]}

    jira.write([{**two, "team_roles": {"appsec": "Developers", "ops": "Users"}}],
               members=["alice", "bob", "carol", "dave"], teams=teams)
    converge(jira)
    assert developers(jira) == {jira.ident(p) for p in ("alice", "bob", "dave")}
    assert role(jira, "Users") == {jira.ident("carol"), jira.ident("dave")}
    assert recorded(jira)["Developers"]["teams"] == {"appsec": sorted([jira.ident("alice"), jira.ident("bob")])}

    # a team dropped from the integration altogether: the same
    jira.write([{**two, "team_roles": {"appsec": "Developers"}}], members=["alice", "bob", "carol", "dave"],
               teams=teams)
    converge(jira)
    assert role(jira, "Users") == set()  # reconciler added both carol and dave there
    assert set(recorded(jira)) == {"Developers"}


def test_authoritative_a_team_moved_to_another_role_leaves_it_but_the_integration_user_stays(
        jira: JiraRig) -> None:
    developers(jira).add(jira.state.me)
    auth = {**WEB, "webhook": None, "role_membership": "authoritative"}
    jira.write([auth], teams=TEAMS)
    converge(jira)
    jira.write([{**auth, "team_roles": {"appsec": "Users"}}], teams=TEAMS)
    converge(jira)
    assert developers(jira) == {jira.state.me}
    assert role(jira, "Users") == {jira.ident("alice"), jira.ident("bob")}
    assert set(recorded(jira)) == {"Users"}


def test_a_failed_revoke_of_a_moved_team_keeps_its_grant_recorded(jira: JiraRig) -> None:
    quiet = {**WEB, "webhook": None}
    jira.write([quiet], teams=TEAMS)
    converge(jira)
    jira.write([{**quiet, "team_roles": {"appsec": "Administrators"}}], teams=TEAMS)
    jira.state.fail("DELETE", r"/role/\d+$", status=500, times=1, retry_after="0")
    with Session(load_config(jira.folder), transports=jira.transports(), attempts=1, sleep=lambda s: None) as s:
        result = apply_plan(s, s.plan())
    assert set(result.failures) == {f'jira.{jira.conn}.project_role["SEC/Developers"]',
                                    f'jira.{jira.conn}.integration["web"]'}
    assert "skipped: depends on" in result.failures[f'jira.{jira.conn}.integration["web"]']
    assert "Developers" in recorded(jira)  # so the next run still knows what to revoke
    converge(jira)
    assert developers(jira) == set() and set(recorded(jira)) == {"Administrators"}


def test_a_record_from_before_teams_were_recorded_still_leads_a_left_role_back(jira: JiraRig) -> None:
    """Grants recorded per role only (before this version): a role the integration no longer grants at all
    is revoked whole; the next record names the teams."""
    quiet = {**WEB, "webhook": None}
    jira.write([quiet], teams=TEAMS)
    converge(jira)
    for g in recorded(jira).values():
        del g["teams"]
    jira.write([{**quiet, "team_roles": {"appsec": "Administrators"}}], teams=TEAMS)
    converge(jira)
    assert developers(jira) == set()
    assert recorded(jira) == {"Administrators": {
        "id": str(jira.state.role_id("Administrators")), "users": sorted([jira.ident("alice"), jira.ident("bob")]),
        "teams": {"appsec": sorted([jira.ident("alice"), jira.ident("bob")])}}}
