"""Integrations removed from the config, against the REAL Redmine of test_redmine.py: reconciler finds its
record pages (one paged search across projects) and removes exactly what they record: the page, the roles
it granted, the tracker it enabled; nothing it did not record."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import httpx
import pytest

from reconciler.errors import UnsafePlanError
from reconciler.plan.model import Action
from tests.integration import test_redmine as base
from tests.integration.test_redmine import INTEGRATION, Redmine, changes, converge, ids, memberships, plan, write

# the real Redmine, emptied before each test, and the lock that keeps one test run on it at a time
redmine_server, redmine_lock, redmine = base.redmine_server, base.redmine_lock, base.redmine

INTAKE = {"name": "sec-intake", "program": "acme-intake", "connection": "tracker", "project": "sec",
          "issue_type": "Feature", "team_roles": {"leads": "Manager"}, "role_membership": "authoritative",
          "test_issue": False}


def trackers(c: httpx.Client, project: str) -> list[str]:
    return sorted(t["name"] for t in c.get(f"projects/{project}.json", params={"include": "trackers"})
                  .json()["project"]["trackers"])


def pages(c: httpx.Client, project: str) -> list[str]:
    return sorted(p["title"] for p in c.get(f"projects/{project}/wiki/index.json").json()["wiki_pages"])


def test_a_removed_integration_loses_its_record_grants_and_tracker(redmine: Redmine, tmp_path: Path) -> None:
    cfg = write(tmp_path, redmine.url, integrations=[INTEGRATION, INTAKE])
    converge(cfg)
    with redmine.api() as c:
        # what reconciler did not make: a wiki page and a user's membership with a role nobody manages
        assert c.put("projects/sec/wiki/Notes.json", json={"wiki_page": {"text": "ours"}}).status_code == 201
        r = c.post("users.json", json={"user": {"login": "trent", "firstname": "Trent", "lastname": "T",
                                                "mail": "trent@acme.io", "generate_password": True}})
        member = {"membership": {"user_id": r.json()["user"]["id"], "role_ids": ids(c, "roles", "Reporter")}}
        assert c.post("projects/sec/memberships.json", json=member).status_code == 201
        assert trackers(c, "sec") == ["Bug", "Feature", "Support"]

    cfg = write(tmp_path, redmine.url, integrations=[INTAKE])
    first = converge(cfg)
    assert changes(first) == [('redmine.tracker.integration["sec-findings"]', Action.DELETE),
                              ('redmine.tracker.membership["sec/appsec"]', Action.DELETE)]
    gone = first.changes[0]
    assert gone.before is not None and gone.before["grants"] == {"appsec": ["Developer"], "leads": ["Manager"]}
    assert any("tracker Bug" in n for n in gone.notes) and any("activation test issue" in n for n in gone.notes)
    assert gone.depends_on == (first.changes[1].address,)  # the record goes once the revoke succeeded
    assert plan(cfg).changes == []
    with redmine.api() as c:
        # leads keeps Manager: sec-intake, still declared, grants it
        assert memberships(c) == {"leads": ["Manager"], "user:Trent T": ["Reporter"]}
        assert trackers(c, "sec") == ["Feature", "Support"]  # Bug was enabled by reconciler for it
        assert pages(c, "sec") == ["Notes", "Reconciler-integration-sec-intake"]
        issues = c.get("issues.json", params={"project_id": "sec", "status_id": "*"}).json()["issues"]
        assert [i["subject"] for i in issues] == ["reconciler activation test: sec-findings"]  # an issue: left


def test_found_in_a_project_nothing_names_and_additive_grants_are_only_what_it_added(
        redmine: Redmine, tmp_path: Path) -> None:
    with redmine.api() as c:
        r = c.post("projects.json", json={"project": {"name": "Web", "identifier": "web",
                                                      "tracker_ids": ids(c, "trackers", "Bug")}})
        assert r.status_code == 201, r.text
        r = c.post("groups.json", json={"group": {"name": "appsec"}})
        member = {"membership": {"user_id": r.json()["group"]["id"], "role_ids": ids(c, "roles", "Reporter")}}
        assert c.post("projects/web/memberships.json", json=member).status_code == 201
    web = {**copy.deepcopy(INTEGRATION), "name": "web-findings", "project": "web", "role_membership": "additive"}
    cfg = write(tmp_path, redmine.url, integrations=[INTEGRATION, web])
    converge(cfg)
    with redmine.api() as c:
        assert memberships(c, "web") == {"appsec": ["Developer", "Reporter"], "leads": ["Manager"]}
        text = c.get("projects/web/wiki/Reconciler-integration-web-findings.json").json()["wiki_page"]["text"]
        assert '"appsec": [\n      "Developer"\n    ]' in text  # Reporter was there before: not a grant

    cfg = write(tmp_path, redmine.url, integrations=[INTEGRATION])
    first = converge(cfg)
    assert changes(first) == [('redmine.tracker.integration["web-findings"]', Action.DELETE),
                              ('redmine.tracker.membership["web/appsec"]', Action.UPDATE),
                              ('redmine.tracker.membership["web/leads"]', Action.DELETE)]
    assert not any("tracker" in n for n in first.changes[0].notes)  # Bug was enabled before reconciler
    assert plan(cfg).changes == []
    with redmine.api() as c:
        assert memberships(c, "web") == {"appsec": ["Reporter"]}
        assert trackers(c, "web") == ["Bug"]
        assert pages(c, "web") == []
        assert memberships(c) == {"appsec": ["Developer"], "leads": ["Manager"]}  # sec is untouched


def test_the_removal_threshold_refuses_a_mass_removal_and_protect_keeps_one(
        redmine: Redmine, tmp_path: Path) -> None:
    many = [{**copy.deepcopy(INTEGRATION), "name": n, "team_roles": {}, "test_issue": False}
            for n in ["keep-0", *(f"old-{k}" for k in range(1, 7))]]
    cfg = write(tmp_path, redmine.url, integrations=many)
    converge(cfg)
    cfg = write(tmp_path, redmine.url, integrations=[], protect=["keep-0"])
    with pytest.raises(UnsafePlanError) as exc:
        plan(cfg)
    assert "would remove (deactivate or delete) 6 of 9 managed objects (66.7%)" in str(exc.value)
    assert "pass --allow-removals=6 to proceed" in str(exc.value)
    p = converge(cfg, allow_removals=6)
    assert sorted(c.key for c in p.changes) == [f"old-{k}" for k in range(1, 7)]
    assert p.protected == ['redmine.tracker.integration["keep-0"]']
    with redmine.api() as c:
        assert pages(c, "sec") == ["Reconciler-integration-keep-0"]
        assert trackers(c, "sec") == ["Bug", "Feature", "Support"]  # keep-0 still uses Bug


# --- a team leaving a role of a declared integration (issue 11, case 10) -------------------------------

def record_grants(c: httpx.Client, name: str = "sec-findings") -> dict[str, list[str]]:
    import json
    text = c.get(f"projects/sec/wiki/Reconciler-integration-{name}.json").json()["wiki_page"]["text"]
    found = re.search(r"\{.*\}", text, re.S)
    assert found is not None
    grants: dict[str, list[str]] = json.loads(found.group(0))["grants"]
    return grants


def test_additive_a_team_moved_to_another_role_leaves_the_old_one(redmine: Redmine, tmp_path: Path) -> None:
    """appsec: Developer -> Manager, then appsec out of team_roles: each time the role reconciler granted
    goes; Reporter, which the group held before reconciler, stays; each plan after an apply is empty."""
    with redmine.api() as c:
        r = c.post("groups.json", json={"group": {"name": "appsec"}})
        member = {"membership": {"user_id": r.json()["group"]["id"], "role_ids": ids(c, "roles", "Reporter")}}
        assert c.post("projects/sec/memberships.json", json=member).status_code == 201
    additive = {**copy.deepcopy(INTEGRATION), "role_membership": "additive", "test_issue": False}
    cfg = write(tmp_path, redmine.url, integrations=[additive])
    converge(cfg)
    with redmine.api() as c:
        assert memberships(c) == {"appsec": ["Developer", "Reporter"], "leads": ["Manager"]}

    cfg = write(tmp_path, redmine.url, integrations=[{**additive, "team_roles": {"appsec": "Manager",
                                                                                 "leads": "Manager"}}])
    first = converge(cfg)
    revokes = {ch.address for ch in first.changes if ch.kind == "membership"}
    assert any(ch.address == 'redmine.tracker.integration["sec-findings"]' and set(ch.depends_on) & revokes
               for ch in first.changes)  # its record is rewritten once the revoke succeeded
    assert plan(cfg).changes == []
    with redmine.api() as c:
        assert memberships(c) == {"appsec": ["Manager", "Reporter"], "leads": ["Manager"]}
        assert record_grants(c) == {"appsec": ["Manager"], "leads": ["Manager"]}

    cfg = write(tmp_path, redmine.url, integrations=[{**additive, "team_roles": {"leads": "Manager"}}])
    converge(cfg)
    assert plan(cfg).changes == []
    with redmine.api() as c:
        assert memberships(c) == {"appsec": ["Reporter"], "leads": ["Manager"]}
        assert record_grants(c) == {"leads": ["Manager"]}

    cfg = write(tmp_path, redmine.url, integrations=[])
    converge(cfg)
    with redmine.api() as c:
        assert memberships(c) == {"appsec": ["Reporter"]}


def test_authoritative_a_team_taken_out_of_team_roles_leaves_its_role(redmine: Redmine, tmp_path: Path) -> None:
    cfg = write(tmp_path, redmine.url, integrations=[{**INTEGRATION, "test_issue": False}])
    converge(cfg)
    cfg = write(tmp_path, redmine.url, integrations=[{**INTEGRATION, "test_issue": False,
                                                      "team_roles": {"leads": "Manager"}}])
    first = converge(cfg)
    assert ('redmine.tracker.membership["sec/appsec"]', Action.DELETE) in changes(first)
    assert plan(cfg).changes == []
    with redmine.api() as c:
        assert memberships(c) == {"leads": ["Manager"]}
        assert record_grants(c) == {"leads": ["Manager"]}
