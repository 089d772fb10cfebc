"""Jira's planner from tables: a ``LiveState`` of answers in, changes (or the reads it still needs) out.

The planner is given no client: what it reads is what the table answers, and a read the table lacks is
asked for (``Unread``), never made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.config.loader import load_config
from reconciler.config.models import Config
from reconciler.errors import ServerError
from reconciler.plan.model import Action
from reconciler.providers.jira import INTEGRATION_PERMISSIONS, ConnectionPlanner, jira_connections
from reconciler.providers.jira.common import ADMIN_PROJECT
from reconciler.providers.jira.live import LiveState, Read, Unread
from tests.conftest import dump_yaml

PERMS = tuple(k for k, _ in INTEGRATION_PERMISSIONS) + (ADMIN_PROJECT[0],)
PROP = "reconciler.integration.web"


def load(tmp_path: Path, conn: dict[str, Any] | None = None, **integration: Any) -> Config:
    d = tmp_path / "c"
    d.mkdir(exist_ok=True)
    doc = {
        "connections": [{"name": "dc", "type": "jira-datacenter", "base_url": "https://jira.acme.io",
                         "token": "${env:JIRA_DC_TOKEN}", **(conn or {})}],
        "members": [{"email": "alice@acme.io"}, {"email": "bob@acme.io"}],
        "teams": [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io"]}],
        "user_maps": [{"member": "alice@acme.io", "identities": {"dc": "alice"}},
                      {"member": "bob@acme.io", "identities": {"dc": "bob"}}],
        "integrations": [{"name": "web", "program": "acme-web", "connection": "dc", "project": "SEC",
                          "issue_type": "Bug", "test_issue": False, "team_roles": {"appsec": "Developers"},
                          **integration}],
    }
    (d / "config.yaml").write_text(dump_yaml(doc))
    return load_config(d)


FIRST_WAVE: dict[Read, Any] = {
    ("myself", ()): {"name": "svc", "active": True},
    ("server_info", ()): {"version": "9.12.2", "versionNumbers": [9, 12, 2]},
    ("users", (("alice", "bob"),)): {"alice": {"name": "alice", "active": True},
                                     "bob": {"name": "bob", "active": True}},
    ("webhooks", ()): [],
    ("project", ("SEC",)): {"id": "10000", "key": "SEC", "issueTypes": [{"id": "1", "name": "Bug"}]},
    ("property", ("SEC", PROP)): None,
    ("permissions", ("SEC", PERMS)): dict.fromkeys(PERMS, True),
    ("property_keys", ("SEC",)): [],
    ("role_ids", ("SEC",)): {"Developers": 10001, "Users": 10002},
}


def state(answers: dict[Read, Any], **errors: Exception) -> LiveState:
    live = LiveState(cloud=False, answers={k: (v, None) for k, v in answers.items()})
    for what, exc in errors.items():
        key = next(k for k in live.answers if k[0] == what)
        live.answers[key] = (None, exc)  # type: ignore[assignment]
    return live


def plan(cfg: Config, live: LiveState) -> Any:
    return ConnectionPlanner(cfg, jira_connections(cfg)[0], live).plan()


def test_nothing_read_asks_for_every_read_that_depends_on_nothing_at_once(tmp_path: Path) -> None:
    with pytest.raises(Unread) as asked:
        plan(load(tmp_path), LiveState(cloud=False))
    assert asked.value.reads == set(FIRST_WAVE)


def test_the_next_wave_is_what_the_first_answers_name(tmp_path: Path) -> None:
    with pytest.raises(Unread) as asked:
        plan(load(tmp_path), state(FIRST_WAVE))
    assert asked.value.reads == {("role_users", ("SEC", 10001))}


def test_a_full_table_plans_the_role_and_the_record(tmp_path: Path) -> None:
    p = plan(load(tmp_path), state({**FIRST_WAVE, ("role_users", ("SEC", 10001)): ["bob", "zed"]}))
    assert p.problems == []
    by = {c.address: c for c in p.changes}
    role = by['jira.dc.project_role["SEC/Developers"]']
    assert role.action is Action.UPDATE and role.after == {"users": ["alice", "bob", "zed"]}
    record = by['jira.dc.integration["web"]']
    assert record.action is Action.CREATE
    # the record says whom it granted: alice (added), not bob (already there)
    assert record.after["grants"]["Developers"]["users"] == ["alice"]
    assert record.after["teamRoles"] == {"appsec": {"id": "10001", "name": "Developers"}}


def test_what_the_table_answers_wrong_is_a_located_problem_with_the_choices(tmp_path: Path) -> None:
    cfg = load(tmp_path, issue_type="Task", team_roles={"appsec": "Admins"})
    answers = {**FIRST_WAVE, ("users", (("alice", "bob"),)): {"alice": {"name": "alice", "active": True}}}
    p = plan(cfg, state(answers))
    assert p.changes == []
    text = "\n".join(p.problems)
    assert "user map of bob@acme.io: dc username 'bob' does not exist in Jira" in text
    assert "issue type 'Task' is not available in project SEC; valid: 'Bug'" in text
    assert "role 'Admins' does not exist in project SEC; valid: 'Developers', 'Users'" in text


def test_an_error_answered_is_raised_where_the_planner_uses_it(tmp_path: Path) -> None:
    with pytest.raises(ServerError):
        plan(load(tmp_path), state(FIRST_WAVE, project=ServerError("cannot read project SEC", "GET", "u")))


def test_a_read_missing_elsewhere_defers_an_answered_error(tmp_path: Path) -> None:
    """While a read is missing, the run is a search for reads: an error met meanwhile is not raised (the run
    with every answer raises it), and the missing read is still asked for."""
    answers = dict(FIRST_WAVE)
    del answers[("myself", ())]
    with pytest.raises(Unread) as asked:
        plan(load(tmp_path), state(answers, project=ServerError("cannot read project SEC", "GET", "u")))
    assert ("myself", ()) in asked.value.reads


def test_reads_a_later_step_will_need_go_with_a_wave(tmp_path: Path) -> None:
    """The role's actors are known to be needed once the roles are read: they are read with the create
    screen's wave rather than in a wave of their own after it."""
    with pytest.raises(Unread) as asked:
        plan(load(tmp_path, test_issue=True), state(FIRST_WAVE))
    assert asked.value.reads == {("create_fields", ("SEC", "1")), ("role_users", ("SEC", 10001))}


def test_a_read_only_foreseen_never_makes_a_wave(tmp_path: Path) -> None:
    """An integration with a problem plans no roles: the actors foreseen for it are not read."""
    p = plan(load(tmp_path, issue_type="Task"), state(FIRST_WAVE))
    assert p.changes == [] and len(p.problems) == 1


def test_an_error_listing_resolutions_fails_the_plan_whatever_the_integrations_hold(tmp_path: Path) -> None:
    cfg = load(tmp_path, resolutions={"duplicate": "Duplicate"})
    answers = {**FIRST_WAVE, ("resolutions", ()): None, ("project", ("SEC",)): None, ("project_keys", ()): []}
    with pytest.raises(ServerError, match="cannot list resolutions"):
        plan(cfg, state(answers, resolutions=ServerError("cannot list resolutions", "GET", "u")))


def test_a_plan_with_problems_reads_nothing_for_removals_or_roles(tmp_path: Path) -> None:
    """Integrations with problems fail the plan: the removal scan (scan_projects) and the roles are not
    read for it, in this run or in any wave before it."""
    answers = dict(FIRST_WAVE)
    del answers[("webhooks", ())]
    with pytest.raises(Unread) as asked:
        plan(load(tmp_path, {"scan_projects": ["OLD"]}, issue_type="Task"), state(answers))
    assert asked.value.reads == {("webhooks", ())}
    p = plan(load(tmp_path, {"scan_projects": ["OLD"]}, issue_type="Task"), state(FIRST_WAVE))
    assert len(p.problems) == 1 and p.changes == []


def test_a_recorded_grant_of_a_role_a_team_holds_is_read_by_the_role_s_id(tmp_path: Path) -> None:
    """The record says it granted Developers as id 9999; the project's Developers is 10001 now: the
    actors of 10001 are read, never those of the stale id."""
    record = {"managedBy": "reconciler", "grants": {"Developers": {"id": "9999", "users": ["alice"]}}}
    answers = {**FIRST_WAVE, ("property", ("SEC", PROP)): record}
    with pytest.raises(Unread) as asked:
        plan(load(tmp_path, test_issue=True), state(answers))
    assert ("role_users", ("SEC", 9999)) not in asked.value.reads
    assert ("role_users", ("SEC", 10001)) in asked.value.reads
