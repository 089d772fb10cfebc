"""Model-based lifecycle test of the Redmine side of convergence, against the REAL Redmine on 127.0.0.1.

REDMINE_URL / REDMINE_API_KEY come from scripts/test.sh (which starts Redmine), as for
tests/integration/test_redmine.py, whose rules this follows: a non-loopback URL is refused (every sequence
empties the Redmine: all projects, groups and users but the admin), and the same file lock keeps other
test runs off this Redmine while the machine runs. Each sequence starts from projects ``sec`` and ``ops``
(trackers Feature and Support), a hand-made user ``mallory`` with Reporter on sec and a hand-made group
``outsiders`` with Developer on ops.

The machine (``RedmineLifecycle``) edits the config model of tests/lifecycle/tracker_model.py, drifts
Redmine by hand through its REST API (a role added to or taken from a project membership, a user put in a
team's group, an integration's record page deleted) and, in its ``apply`` rule, runs plan + apply in
process (a fresh Session each), then checks, per docs/redmine.md:

- a fresh plan has no changes;
- each team's group holds exactly its mapped, active members (``membership: authoritative``);
- project memberships hold what the model says: every granted role on its team; a role an authoritative
  integration grants is held by exactly the teams granted it (users and other groups holding it directly
  lose it); every other role a principal holds stays, except roles a removed integration's record page
  lists under ``grants``, which leave unless a declared integration grants them;
- each declared integration's record page records the documented ``grants``; a removed integration leaves
  no record page; a moved one keeps its old page (documented) until it is removed.

A grant the config stops making while its integration stays declared (a team moved to another role, its
grant dropped) is not specified beyond "nothing leaks": the role may stay or go, but a team that keeps it
must still have it listed in the integration's record, so that removing the integration revokes it.

Budget: a fixed number of derandomized sequences in CI (``budget`` in tracker_model.py); a longer run:

    LIFECYCLE_EXAMPLES=200 LIFECYCLE_STEPS=30 bash scripts/test.sh tests/lifecycle/test_redmine_lifecycle.py

(random sequences, shrunk on failure; add ``--hypothesis-seed=N`` to repeat one).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from tests.integration.test_redmine import Redmine, _start, ids
from tests.lifecycle.tracker_model import INTEGRATIONS, LONG_RUN, TrackerMachine, budget

CI_EXAMPLES, CI_STEPS = 5, 10
PROJECTS = ("sec", "ops")
ROLES = ("Manager", "Developer", "Reporter")
TEAMS = ("appsec", "leads", "ops")
PRINCIPALS = TEAMS + ("outsiders", "user:mallory")
TITLE = "Reconciler-integration-{}"

SERVER: dict[str, Redmine] = {}


def reset(server: Redmine) -> None:
    """An empty Redmine but for the admin, projects sec and ops, mallory and outsiders."""
    with server.api() as c:
        me = c.get("users/current.json").json()["user"]["id"]
        for p in c.get("projects.json", params={"limit": "100"}).json()["projects"]:
            if p.get("parent") is None:
                assert c.delete(f"projects/{p['id']}.json").status_code in (204, 404)
        for g in c.get("groups.json").json()["groups"]:
            assert c.delete(f"groups/{g['id']}.json").status_code in (204, 404)
        while True:
            users = [u for u in c.get("users.json", params={"status": "", "limit": "100"}).json()["users"]
                     if u["id"] != me]
            if not users:
                break
            for u in users:
                assert c.delete(f"users/{u['id']}.json").status_code in (204, 404)
        trackers = ids(c, "trackers", "Feature", "Support")
        for ident, name in (("sec", "Security findings"), ("ops", "Operations")):
            r = c.post("projects.json", json={"project": {"name": name, "identifier": ident, "tracker_ids": trackers}})
            assert r.status_code == 201, r.text
        r = c.post("users.json", json={"user": {"login": "mallory", "firstname": "Mal", "lastname": "Lory",
                                                "mail": "mallory@evil.test", "generate_password": True}})
        assert r.status_code == 201, r.text
        mallory = r.json()["user"]["id"]
        r = c.post("groups.json", json={"group": {"name": "outsiders"}})
        assert r.status_code == 201, r.text
        outsiders = r.json()["group"]["id"]
        roles = dict(zip(ROLES, ids(c, "roles", *ROLES), strict=True))
        for project, principal, role in (("sec", mallory, "Reporter"), ("ops", outsiders, "Developer")):
            r = c.post(f"projects/{project}/memberships.json",
                       json={"membership": {"user_id": principal, "role_ids": [roles[role]]}})
            assert r.status_code == 201, r.text


class RedmineLifecycle(TrackerMachine):
    PROJECTS = PROJECTS
    ROLES = ROLES

    def __init__(self) -> None:
        super().__init__()
        self.server = SERVER["redmine"]
        reset(self.server)
        self.c = self.server.api()
        self.role_ids = dict(zip(ROLES, ids(self.c, "roles", *ROLES), strict=True))
        # the model of Redmine: project -> principal -> its own roles; (integration, project) -> grants
        self.members = self.live_memberships()
        self.records: dict[tuple[str, str], dict[str, set[str]]] = {}

    def teardown(self) -> None:
        self.c.close()
        super().teardown()

    def connection(self) -> dict[str, Any]:
        return {"name": "tracker", "type": "redmine", "base_url": self.server.url,
                "api_key": "${env:REDMINE_API_KEY}", "max_removal_percent": 100}

    def identity(self, email: str) -> str:
        return email.split("@")[0]

    # --- what Redmine holds --------------------------------------------------------

    def principal_ids(self) -> dict[str, int]:
        out = {str(g["name"]): int(g["id"]) for g in self.c.get("groups.json").json()["groups"]}
        for u in self.c.get("users.json", params={"limit": "100"}).json()["users"]:
            out["user:" + str(u["login"])] = int(u["id"])
        return out

    def live_memberships(self) -> dict[str, dict[str, set[str]]]:
        logins = {v: k for k, v in self.principal_ids().items() if k.startswith("user:")}
        out: dict[str, dict[str, set[str]]] = {}
        for p in PROJECTS:
            ms = self.c.get(f"projects/{p}/memberships.json", params={"limit": "100"}).json()["memberships"]
            out[p] = {}
            for m in ms:
                who = m["group"]["name"] if "group" in m else logins.get(m["user"]["id"], f"id:{m['user']['id']}")
                own = {r["name"] for r in m["roles"] if not r.get("inherited")}
                if own:
                    out[p][who] = own
        return out

    def membership(self, project: str, principal: str) -> dict[str, Any] | None:
        pid = self.principal_ids()[principal]
        for m in self.c.get(f"projects/{project}/memberships.json", params={"limit": "100"}).json()["memberships"]:
            if (m.get("group") or m.get("user") or {}).get("id") == pid:
                return dict(m)
        return None

    def live_records(self) -> dict[tuple[str, str], dict[str, Any]]:
        from reconciler.providers.redmine import parse_record  # (imported first, it would be a circular import)
        out = {}
        for name in INTEGRATIONS:
            for p in PROJECTS:
                r = self.c.get(f"projects/{p}/wiki/{TITLE.format(name)}.json")
                if r.status_code == 200:
                    out[(name, p)] = parse_record(r.json()["wiki_page"]) or {}
        return out

    def live_groups(self) -> dict[str, set[str]]:
        logins = {int(u["id"]): str(u["login"]) for u in
                  self.c.get("users.json", params={"limit": "100"}).json()["users"]}
        out = {}
        for g in self.c.get("groups.json").json()["groups"]:
            if g["name"] in TEAMS:
                users = self.c.get(f"groups/{g['id']}.json", params={"include": "users"}).json()["group"]["users"]
                out[str(g["name"])] = {logins.get(int(u["id"]), str(u["id"])) for u in users}
        return out

    # --- rules: drift made by hand in Redmine ------------------------------------------

    @rule(project=st.sampled_from(PROJECTS), principal=st.sampled_from(PRINCIPALS), role=st.sampled_from(ROLES))
    def hand_add_role(self, project: str, principal: str, role: str) -> None:
        own = self.members[project].get(principal, set())
        if role in own or principal not in self.principal_ids():
            return
        m = self.membership(project, principal)
        if m is None:
            r = self.c.post(f"projects/{project}/memberships.json", json={"membership": {
                "user_id": self.principal_ids()[principal], "role_ids": [self.role_ids[role]]}})
            assert r.status_code == 201, r.text
        else:
            r = self.c.put(f"memberships/{m['id']}.json", json={"membership": {
                "role_ids": sorted(self.role_ids[x] for x in own | {role})}})
            assert r.status_code == 204, r.text
        self.members[project][principal] = own | {role}
        self.log.append(f"drift: {principal} given {role} on {project} by hand")

    @precondition(lambda self: any(self.members[p] for p in PROJECTS))
    @rule(data=st.data())
    def hand_remove_role(self, data: st.DataObject) -> None:
        project, principal = data.draw(st.sampled_from(sorted((p, x) for p in PROJECTS for x in self.members[p])))
        own = self.members[project][principal]
        role = data.draw(st.sampled_from(sorted(own)))
        m = self.membership(project, principal)
        assert m is not None
        if own == {role}:
            r = self.c.delete(f"memberships/{m['id']}.json")
            del self.members[project][principal]
        else:
            r = self.c.put(f"memberships/{m['id']}.json", json={"membership": {
                "role_ids": sorted(self.role_ids[x] for x in own - {role})}})
            self.members[project][principal] = own - {role}
        assert r.status_code == 204, r.text
        self.log.append(f"drift: {role} taken from {principal} on {project} by hand")

    @rule(team=st.sampled_from(TEAMS))
    def hand_add_to_group(self, team: str) -> None:
        ps = self.principal_ids()
        if team not in ps:
            return
        r = self.c.post(f"groups/{ps[team]}/users.json", json={"user_id": ps["user:mallory"]})
        assert r.status_code in (204, 422), r.text
        self.log.append(f"drift: mallory put in group {team} by hand")

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def hand_delete_record(self, data: st.DataObject) -> None:
        name, project = data.draw(st.sampled_from(sorted(self.records)))
        r = self.c.delete(f"projects/{project}/wiki/{TITLE.format(name)}.json")
        assert r.status_code in (200, 204), r.text
        del self.records[(name, project)]
        self.log.append(f"drift: record page of {name} on {project} deleted by hand")

    # --- rule: plan + apply, and the invariants -------------------------------------------

    @rule()
    def apply(self) -> None:
        self.log.append("plan + apply")
        before = {p: {x: set(r) for x, r in ms.items()} for p, ms in self.members.items()}
        expected, ambiguous, records = self.expect()
        _, again = self.plan_and_apply()
        assert not again.has_changes, self.explain(
            "the plan after apply is not empty: " + "; ".join(f"{c.action.value} {c.address} {c.diff or ''}"
                                                             for c in again.changes))
        live = self.live_memberships()
        for p in PROJECTS:
            for x in set(expected[p]) | set(live[p]):
                got, want = live[p].get(x, set()), expected[p].get(x, set())
                loose = ambiguous.get((p, x), {})
                assert got - set(loose) == want - set(loose), self.explain(
                    f"{x} holds {sorted(got)} on {p}, the model (docs/redmine.md) says {sorted(want)} "
                    f"(before this apply: {sorted(before[p].get(x, set()))})")
        # groups: exactly the teams' mapped, active members
        groups = self.live_groups()
        for team in TEAMS:
            want = {self.identity(e) for e in self.cfg.wanted_members(team)}
            assert groups.get(team) == want, self.explain(f"group {team} holds {groups.get(team)}, not {want}")
        # record pages
        pages = self.live_records()
        assert set(pages) == set(records), self.explain(
            f"record pages {sorted(pages)}, the model says {sorted(records)}")
        for (name, p), grants in records.items():
            on_page = {t: set(r) for t, r in (pages[(name, p)].get("grants") or {}).items()}
            declared = self.cfg.integrations.get(name)
            if declared is not None and declared.project == p:
                for team, roles in grants.items():
                    open_ = {r for (q, x), cells in ambiguous.items() if q == p and x == team
                             for r, n in cells.items() if n == name}
                    assert on_page.get(team, set()) - open_ == roles - open_, self.explain(
                        f"record of {name} on {p}: grants[{team}] = {sorted(on_page.get(team, set()))}, the model "
                        f"says {sorted(roles)}")
                records[(name, p)] = {t: r for t, r in on_page.items() if r}
        # the leak check
        for (p, x), cells in ambiguous.items():
            for role, name in cells.items():
                if role in live[p].get(x, set()):
                    assert role in records.get((name, p), {}).get(x, set()), self.explain(
                        f"{x} still holds {role} on {p}, granted by integration {name}, which no longer grants it, "
                        "and its record page no longer lists it: nothing will ever revoke it")
        self.members, self.records = live, records

    def expect(self) -> tuple[dict[str, dict[str, set[str]]], dict[tuple[str, str], dict[str, str]],
                              dict[tuple[str, str], dict[str, set[str]]]]:
        cfg = self.cfg
        wanted: dict[str, dict[str, set[str]]] = {p: {} for p in PROJECTS}
        auth: dict[str, set[str]] = {p: set() for p in PROJECTS}
        for i in cfg.integrations.values():
            for team, role in i.team_roles.items():
                wanted[i.project].setdefault(team, set()).add(role)
                if i.mode == "authoritative":
                    auth[i.project].add(role)
        revoked: dict[str, dict[str, set[str]]] = {p: {} for p in PROJECTS}
        records: dict[tuple[str, str], dict[str, set[str]]] = {}
        dropped: dict[tuple[str, str], dict[str, str]] = {}
        for (name, p), grants in self.records.items():
            now = cfg.integrations.get(name)
            if now is None:  # removed: its grants go, its page too
                for team, roles in grants.items():
                    revoked[p].setdefault(team, set()).update(roles)
                continue
            if now.project != p:  # moved away: the old page stays (docs/redmine.md), inert
                records[(name, p)] = grants
                continue
            for team, roles in grants.items():
                for r in roles - ({now.team_roles[team]} if team in now.team_roles else set()):
                    dropped.setdefault((p, team), {})[r] = name
        expected: dict[str, dict[str, set[str]]] = {}
        for p in PROJECTS:
            expected[p] = {}
            for x in set(self.members[p]) | set(wanted[p]):
                own, want = self.members[p].get(x, set()), wanted[p].get(x, set())
                after = (own | want) - (auth[p] - want) - (revoked[p].get(x, set()) - want)
                if after:
                    expected[p][x] = after
        ambiguous: dict[tuple[str, str], dict[str, str]] = {}
        for (p, team), cells in dropped.items():
            for r, name in cells.items():
                if r in self.members[p].get(team, set()) and r not in wanted[p].get(team, set()) and r not in auth[p]:
                    ambiguous.setdefault((p, team), {})[r] = name
        for name, i in cfg.integrations.items():
            had = self.records.get((name, i.project), {})
            g: dict[str, set[str]] = {}
            for team, role in i.team_roles.items():
                own = self.members[i.project].get(team, set())
                if i.mode == "authoritative":
                    g[team] = {role}
                else:
                    g[team] = (had.get(team, set()) & (own | {role})) | ({role} - own)
            records[(name, i.project)] = g
        return expected, ambiguous, records


@pytest.fixture
def redmine_locked(monkeypatch: pytest.MonkeyPatch) -> Iterator[Redmine]:
    """The real Redmine, held under the lock tests/integration/test_redmine.py takes (these sequences empty
    it); a URL that is not loopback is refused by ``_start``."""
    server = _start()
    host = urlsplit(server.url).hostname
    assert host in ("127.0.0.1", "localhost", "::1"), server.url
    state = Path(os.environ.get("PEERS_HOME") or Path(tempfile.gettempdir()) / "reconciler-peers") / "redmine"
    state.mkdir(parents=True, exist_ok=True)
    port = urlsplit(server.url).port or 80
    monkeypatch.setenv("REDMINE_API_KEY", server.key)
    with open(state / f"tests-{port}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        SERVER["redmine"] = server
        try:
            yield server
        finally:
            SERVER.pop("redmine", None)
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.mark.timeout(0 if LONG_RUN else 300)
def test_redmine_lifecycle(redmine_locked: Redmine) -> None:
    run_state_machine_as_test(RedmineLifecycle, settings=budget(CI_EXAMPLES, CI_STEPS))
