"""Model-based lifecycle test of the Jira side of convergence (Cloud and Data Center), on a real socket.

The Jira sandbox (reconciler.sandbox.jira) is served on 127.0.0.1 by a threaded WSGI server in this
process, so that each sequence starts from a fresh Jira state and the test can read what Jira holds;
reconciler reaches it over HTTP like any Jira, and the hand-made drift goes through Jira's REST API.

The machine (``JiraLifecycle``) edits a config model (tests/lifecycle/tracker_model.py: team members,
user maps, active flags, integrations added / removed / moved between SEC and OPS, team -> role grants
added / moved / dropped, role_membership) and drifts Jira by hand (role actors added and removed, the
recorded property deleted). Its ``apply`` rule runs plan + apply in process (a fresh Session each) and
checks, per docs/jira.md:

- a fresh plan has no changes;
- every project role holds what the model says: the granted teams' active, mapped members;
  authoritative roles exactly that (plus the integration user where it was); additive roles also keep
  every other actor; the users a removed or moved integration recorded under ``grants`` leave, unless a
  declared integration still grants them; the integration user never leaves;
- each declared integration's property records its settings and the documented ``grants``; removed
  and moved integrations leave no property behind; webhooks follow their integrations;
- what reconciler does not own is untouched (another role, group actors, other properties, another
  tool's look-alike property, a hand-made webhook).

A grant the config stops making while its integration stays declared (a team moved to another role,
its grant dropped) is not specified by the docs beyond "nothing leaks": the machine accepts either the
user leaving the role, or the user keeping it and still being listed in the integration's ``grants`` (so
that removing the integration revokes it); it fails when a user keeps the role with no record of it.

Budget: in CI each flavour runs a fixed number of derandomized sequences (see ``budget`` in
tracker_model.py). A longer run:

    LIFECYCLE_EXAMPLES=200 LIFECYCLE_STEPS=30 bash scripts/test.sh tests/lifecycle/test_jira_lifecycle.py

(a longer run draws random sequences, not the CI ones; add ``--hypothesis-seed=N`` to repeat one).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from reconciler.sandbox.jira import JiraSandbox, JiraState, new_state
from tests.lifecycle.tracker_model import LONG_RUN, TrackerMachine, budget

CI_EXAMPLES, CI_STEPS = 12, 14
ROLE_IDS = {"Developers": 10000, "Users": 10001, "Security Reviewers": 10003, "Administrators": 10002}
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")
HAND_WEBHOOK = {"name": "ci notifications", "url": "https://ci.acme.io/hook", "events": ["jira:issue_created"],
                "filters": {"issue-related-events-section": "project = SEC"}, "excludeBody": False, "enabled": True}


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (wsgiref's name)
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Served:
    """One sandbox app on 127.0.0.1; ``reset`` gives it a fresh Jira."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.app = JiraSandbox(new_state(flavour, page_size=50))
        self.server = make_server("127.0.0.1", 0, self.app, server_class=_Threading, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"jira-{flavour}", daemon=True)
        self.thread.start()

    @property
    def state(self) -> JiraState:
        return self.app.state

    def reset(self) -> JiraState:
        s = new_state(self.flavour, page_size=50)
        with self.app.lock:
            self.app.state = s
        return s

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def http(self) -> httpx.Client:
        s = self.state
        if s.cloud:
            return httpx.Client(base_url=self.url, auth=(s.users[s.me].email, s.secret), timeout=30)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {s.secret}"}, timeout=30)


SERVED: dict[str, Served] = {}


class JiraLifecycle(TrackerMachine):
    FLAVOUR = "cloud"
    PROJECTS = ("SEC", "OPS")
    ROLES = ("Developers", "Users", "Security Reviewers")

    def __init__(self) -> None:
        super().__init__()
        self.jira = SERVED[self.FLAVOUR]
        s = self.jira.reset()
        self.cloud = s.cloud
        self.api = "/rest/api/3" if s.cloud else "/rest/api/2"
        self.me = s.me
        self.ids = {p: (f"5b10ac8d82e05b22cc7d4e{n:02d}" if s.cloud else p) for n, p in enumerate(PEOPLE)}
        self.names = {v: k for k, v in self.ids.items()} | {s.me: "<integration user>"}
        self.client = self.jira.http()
        # what reconciler does not own, made by hand before the first apply
        frank = self.ids["frank"]
        s.projects["SEC"].roles[ROLE_IDS["Administrators"]].add(frank)
        s.projects["SEC"].properties["other.app.settings"] = {"colour": "blue"}
        s.projects["OPS"].properties["reconciler.integration.legacy"] = {"managedBy": "another-tool"}
        s.webhooks[s.next_id()] = dict(HAND_WEBHOOK)
        self.untouched = self.snapshot_foreign()
        # the model of Jira: (project, role) -> user actors; integration -> (project, recorded grants)
        self.actors: dict[tuple[str, str], set[str]] = {
            (p, r): set(s.projects[p].roles[rid]) for p in self.PROJECTS for r, rid in ROLE_IDS.items()}
        self.records: dict[str, tuple[str, dict[str, set[str]]]] = {}

    def teardown(self) -> None:
        self.client.close()
        super().teardown()

    # --- the config ---------------------------------------------------------------

    def connection(self) -> dict[str, Any]:
        s = self.jira.state
        base: dict[str, Any] = {"name": "tracker", "scan_projects": list(self.PROJECTS), "max_removal_percent": 100}
        if self.cloud:
            return {**base, "type": "jira-cloud", "site_url": self.jira.url, "email": s.users[s.me].email,
                    "api_token": "${env:LIFECYCLE_JIRA_SECRET}"}
        return {**base, "type": "jira-datacenter", "base_url": self.jira.url, "token": "${env:LIFECYCLE_JIRA_SECRET}"}

    def identity(self, email: str) -> str:
        return self.ids[email.split("@")[0]]

    def webhooks(self) -> bool:
        return True

    def who(self, users: set[str]) -> str:
        return "{" + ", ".join(sorted(self.names.get(u, u) for u in users)) + "}"

    # --- what Jira holds ------------------------------------------------------------

    def live_actors(self) -> dict[tuple[str, str], set[str]]:
        s = self.jira.state
        return {(p, r): set(s.projects[p].roles[rid]) for p in self.PROJECTS for r, rid in ROLE_IDS.items()}

    def snapshot_foreign(self) -> dict[str, Any]:
        s = self.jira.state
        return {
            "groups": {p: {r: sorted(g) for r, g in s.projects[p].groups.items()} for p in self.PROJECTS},
            "properties": {p: {k: v for k, v in s.projects[p].properties.items()
                               if k == "other.app.settings" or k == "reconciler.integration.legacy"}
                           for p in self.PROJECTS},
            "webhooks": [w for w in s.webhooks.values() if w["name"] == HAND_WEBHOOK["name"]],
        }

    # --- rules: drift made by hand in Jira, through its REST API ----------------------

    @rule(project=st.sampled_from(PROJECTS), role=st.sampled_from(ROLES), person=st.sampled_from(PEOPLE + ("me",)))
    def hand_add_actor(self, project: str, role: str, person: str) -> None:
        ident = self.me if person == "me" else self.ids[person]
        if ident in self.actors[(project, role)]:
            return
        r = self.client.post(f"{self.api}/project/{project}/role/{ROLE_IDS[role]}", json={"user": [ident]})
        assert r.status_code == 200, r.text
        self.actors[(project, role)].add(ident)
        self.log.append(f"drift: {person} added to {project}/{role} by hand")

    @precondition(lambda self: any(self.actors[(p, r)] for p in self.PROJECTS for r in self.ROLES))
    @rule(data=st.data())
    def hand_remove_actor(self, data: st.DataObject) -> None:
        project, role = data.draw(st.sampled_from([(p, r) for p in self.PROJECTS for r in self.ROLES
                                                   if self.actors[(p, r)]]))
        ident = data.draw(st.sampled_from(sorted(self.actors[(project, role)])))
        r = self.client.delete(f"{self.api}/project/{project}/role/{ROLE_IDS[role]}", params={"user": ident})
        assert r.status_code == 204, r.text
        self.actors[(project, role)].discard(ident)
        self.log.append(f"drift: {self.names.get(ident, ident)} removed from {project}/{role} by hand")

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def hand_delete_property(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.records)))
        project = self.records[name][0]
        r = self.client.delete(f"{self.api}/project/{project}/properties/reconciler.integration.{name}")
        assert r.status_code == 204, r.text
        del self.records[name]
        self.log.append(f"drift: property reconciler.integration.{name} deleted on {project} by hand")

    # --- rule: plan + apply, and the invariants ---------------------------------------

    @rule()
    def apply(self) -> None:
        self.log.append("plan + apply")
        before = {k: set(v) for k, v in self.actors.items()}
        expected, ambiguous = self.expect()
        _, again = self.plan_and_apply()
        assert not again.has_changes, self.explain(
            "the plan after apply is not empty: " + "; ".join(f"{c.action.value} {c.address} {c.diff or ''}"
                                                             for c in again.changes))
        live = self.live_actors()
        s = self.jira.state
        # role actors
        for key, want in expected.items():
            got = live[key]
            loose = ambiguous.get(key, {})
            exact_got, exact_want = got - set(loose), want - set(loose)
            assert exact_got == exact_want, self.explain(
                f"{key[0]}/{key[1]} holds {self.who(got)}, the model says {self.who(want)} "
                f"(before this apply: {self.who(before[key])})")
        # integration records
        grants = self.expected_grants(before, live)
        for name, i in self.cfg.integrations.items():
            prop = s.projects[i.project].properties.get(f"reconciler.integration.{name}")
            assert isinstance(prop, dict), self.explain(f"no property for integration {name} on {i.project}")
            assert prop.get("managedBy") == "reconciler" and prop.get("roleMembership") == i.mode
            assert {t: v["name"] for t, v in prop.get("teamRoles", {}).items()} == i.team_roles, self.explain(
                f"{name}: property teamRoles {prop.get('teamRoles')}")
            live_grants = {r: set(g.get("users") or []) for r, g in (prop.get("grants") or {}).items()}
            for role, users in grants[name].items():
                assert live_grants.get(role, set()) == users, self.explain(
                    f"{name} on {i.project}: grants[{role}] records {self.who(live_grants.get(role, set()))}, "
                    f"the model (docs/jira.md) says {self.who(users)}")
            recorded = {r: u for r, u in live_grants.items() if u and r not in grants[name]}
            self.records[name] = (i.project, {**{r: set(u) for r, u in grants[name].items()}, **recorded})
            for other in self.PROJECTS:
                if other != i.project:
                    assert f"reconciler.integration.{name}" not in s.projects[other].properties, self.explain(
                        f"integration {name} moved to {i.project}: its property on {other} is still there")
        for name in set(self.records) - set(self.cfg.integrations):
            del self.records[name]
        for name in set(("web", "api", "mobile")) - set(self.cfg.integrations):
            for p in self.PROJECTS:
                assert f"reconciler.integration.{name}" not in s.projects[p].properties, self.explain(
                    f"removed integration {name} left its property on {p}")
        # the leak check: a grant the config stopped making either left the role or is still recorded
        for key, cells in ambiguous.items():
            for ident, name in cells.items():
                if ident in live[key]:
                    held = self.records.get(name, ("", {}))[1].get(key[1], set())
                    assert ident in held, self.explain(
                        f"{self.names.get(ident, ident)} still holds {key[0]}/{key[1]}, granted by integration "
                        f"{name}, which no longer grants that role, and no record lists the grant any more: "
                        "nothing will ever revoke it")
        # webhooks follow their integrations
        hooks = {w["name"]: w for w in s.webhooks.values()}
        for name in ("web", "api", "mobile"):
            declared = self.cfg.integrations.get(name)
            hook = hooks.get(f"reconciler {name}")
            if declared is not None and declared.webhook:
                assert hook is not None, self.explain(f"no webhook for integration {name}")
                assert hook["filters"]["issue-related-events-section"] == f"project = {declared.project}"
            else:
                assert hook is None, self.explain(f"webhook 'reconciler {name}' is still there")
        # what reconciler does not own
        assert self.snapshot_foreign() == self.untouched, self.explain("something reconciler does not own changed")
        for p in self.PROJECTS:
            assert live[(p, "Administrators")] == before[(p, "Administrators")]
        self.actors = live

    def expect(self) -> tuple[dict[tuple[str, str], set[str]], dict[tuple[str, str], dict[str, str]]]:
        """What the next apply must leave, per docs/jira.md: role actors, and the cells the docs leave open
        ((project, role) -> user -> the integration whose dropped grant it was)."""
        cfg, me = self.cfg, self.me
        wanted: dict[tuple[str, str], set[str]] = {}
        mode: dict[tuple[str, str], str] = {}
        wanted_by: dict[str, dict[str, set[str]]] = {}
        for name, i in cfg.integrations.items():
            wanted_by[name] = {}
            for team, role in i.team_roles.items():
                users = {self.identity(e) for e in cfg.wanted_members(team)}
                wanted.setdefault((i.project, role), set()).update(users)
                wanted_by[name].setdefault(role, set()).update(users)
                mode[(i.project, role)] = i.mode
        retired: dict[tuple[str, str], set[str]] = {}
        dropped: dict[tuple[str, str], dict[str, str]] = {}
        for name, (project, rec) in self.records.items():
            now = cfg.integrations.get(name)
            if now is None or now.project != project:  # removed, or moved away: its grants here go
                for role, users in rec.items():
                    retired.setdefault((project, role), set()).update(users)
            else:
                for role, users in rec.items():
                    if role not in wanted_by[name]:
                        for u in users:
                            dropped.setdefault((project, role), {})[u] = name
        expected = {k: set(v) for k, v in self.actors.items()}
        for key in wanted.keys() | retired.keys() | dropped.keys():
            live, want = self.actors[key], wanted.get(key, set())
            if key in wanted:
                after = (want | (live & {me})) if mode[key] == "authoritative" else (live | want)
            else:
                after = set(live)
            after -= {u for u in retired.get(key, set()) if u in live and u not in want and u != me}
            expected[key] = after
        ambiguous: dict[tuple[str, str], dict[str, str]] = {}
        for key, cells in dropped.items():
            for u, name in cells.items():
                if u in self.actors[key] and u not in wanted.get(key, set()) and u != me and \
                        mode.get(key) != "authoritative":
                    ambiguous.setdefault(key, {})[u] = name
        return expected, ambiguous

    def expected_grants(self, before: dict[tuple[str, str], set[str]],
                        after: dict[tuple[str, str], set[str]]) -> dict[str, dict[str, set[str]]]:
        """Each declared integration's ``grants`` for the roles it grants, per docs/jira.md: authoritative,
        all its teams' members; additive, those it added (not in the role before) and those recorded earlier
        that still hold the role. Never the integration user."""
        cfg = self.cfg
        out: dict[str, dict[str, set[str]]] = {}
        for name, i in cfg.integrations.items():
            project, rec = self.records.get(name, (i.project, {}))
            had_all = rec if project == i.project else {}
            out[name] = {}
            for team, role in i.team_roles.items():
                users = {self.identity(e) for e in cfg.wanted_members(team)}
                out[name].setdefault(role, set()).update(users)
            for role, users in out[name].items():
                key = (i.project, role)
                if i.mode == "additive":
                    users = (had_all.get(role, set()) & after[key]) | (users - before[key])
                out[name][role] = users - {self.me}
        return out


class CloudLifecycle(JiraLifecycle):
    FLAVOUR = "cloud"


class DataCenterLifecycle(JiraLifecycle):
    FLAVOUR = "datacenter"


@pytest.fixture
def served(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    flavour = request.param
    jira = Served(flavour)
    SERVED[flavour] = jira
    monkeypatch.setenv("LIFECYCLE_JIRA_SECRET", jira.state.secret)
    try:
        yield jira
    finally:
        SERVED.pop(flavour, None)
        jira.close()


@pytest.mark.parametrize("served", ["cloud", "datacenter"], indirect=True)
@pytest.mark.timeout(0 if LONG_RUN else 300)
def test_jira_lifecycle(served: Served) -> None:
    machine = CloudLifecycle if served.flavour == "cloud" else DataCenterLifecycle
    run_state_machine_as_test(machine, settings=budget(CI_EXAMPLES, CI_STEPS))
