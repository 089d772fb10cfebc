"""Jira as it really is, over a real socket (the sandbox served on 127.0.0.1, every call contract-checked):
failing webhook lists, project priority schemes, create screens and their required fields, Data Center
versions and user lookups, role actors by user key, an eventually consistent search, small pages, 429s."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.errors import PlanError
from reconciler.plan.model import Action, Plan
from reconciler.sandbox.jira import CLOUD_TOKEN, DC_TOKEN, JiraSandbox, new_state
from reconciler.session import Session
from tests.contract.jira_spec import ContractTransport, JiraRig, load_spec
from tests.integration.test_jira_served import serve

WEB: dict[str, Any] = {"name": "web", "program": "acme-web", "project": "SEC", "issue_type": "Bug",
                       "priorities": {"critical": "Highest", "high": "High"}, "team_roles": {"appsec": "Developers"}}


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (wsgiref's name)
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@dataclass
class ServedRig(JiraRig):
    """A JiraRig whose sandbox listens on 127.0.0.1 and is reached over the socket."""

    url: str = ""

    def connection(self) -> dict[str, Any]:
        conn = super().connection()
        conn["site_url" if self.flavour == "cloud" else "base_url"] = self.url
        return conn


def served_rig(flavour: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedRig]:
    load_spec(flavour)
    monkeypatch.setenv("JIRA_API_TOKEN", CLOUD_TOKEN)
    monkeypatch.setenv("JIRA_TOKEN", DC_TOKEN)
    state = new_state(flavour)  # pages of 2: every list crosses the socket in several pages
    server = make_server("127.0.0.1", 0, JiraSandbox(state), server_class=_Threading, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rig = ServedRig(flavour, state, ContractTransport(httpx.HTTPTransport(), flavour), tmp_path / "config",
                    url=f"http://127.0.0.1:{server.server_port}")
    try:
        yield rig
        assert not rig.transport.violations, rig.transport.violations
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedRig]:
    yield from served_rig(request.param, tmp_path, monkeypatch)


@pytest.fixture
def dc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedRig]:
    yield from served_rig("datacenter", tmp_path, monkeypatch)


def session_kw(rig: JiraRig) -> dict[str, Any]:
    return {"transports": rig.transports(), "sleep": rig.sleeps.append}


def plan(rig: JiraRig) -> Plan:
    with Session(load_config(rig.folder), **session_kw(rig)) as s:
        return s.plan()


def plan_error(rig: JiraRig) -> str:
    with pytest.raises(PlanError) as exc:
        plan(rig)
    return str(exc.value)


def converge(rig: JiraRig) -> Plan:
    with Session(load_config(rig.folder), **session_kw(rig)) as s:
        first = s.plan()
        result = apply_plan(s, first)
        assert not result.failures, result.failures
    again = plan(rig)
    assert not again.has_changes, [c.address for c in again.changes]
    return first


# --- admin webhooks that cannot be listed ------------------------------------------------

@pytest.mark.parametrize("status", [404, 503])
def test_a_failing_webhook_list_fails_no_plan_without_a_webhook(jira: ServedRig, status: int) -> None:
    jira.state.fail("GET", r"^/rest/webhooks/1\.0/webhook$", status, times=100)
    jira.write([WEB])
    first = converge(jira)
    assert any("not through webhooks: listing admin webhooks failed" in n for n in first.notes), first.notes


def test_a_declared_webhook_that_cannot_be_checked_says_so(jira: ServedRig) -> None:
    jira.state.fail("GET", r"^/rest/webhooks/1\.0/webhook$", 503, times=100)
    jira.write([{**WEB, "webhook": {"url": "https://platform.acme.io/hooks/jira"}}])
    text = plan_error(jira)
    assert "integration 'web': webhook 'reconciler web' cannot be checked: listing admin webhooks failed" in text
    assert "503" in text


def test_a_recorded_webhook_that_cannot_be_checked_is_a_note(jira: ServedRig) -> None:
    jira.write([{**WEB, "webhook": {"url": "https://platform.acme.io/hooks/jira"}}])
    converge(jira)
    jira.state.fail("GET", r"^/rest/webhooks/1\.0/webhook$", 503, times=100)
    jira.write([WEB])  # the webhook is no longer declared, and cannot be read
    p = plan(jira)
    assert any("its recorded webhook 'reconciler web' is no longer declared but cannot be checked" in n
               for n in p.notes), p.notes
    assert len(jira.state.webhooks) == 1


# --- priorities of the project's scheme, the create screen -------------------------------

def test_priorities_are_those_of_the_projects_priority_scheme(jira: ServedRig) -> None:
    jira.state.project("SEC").priority_ids = ["1", "2", "3"]  # Highest, High, Medium: no Low
    jira.write([{**WEB, "priorities": {"critical": "Highest", "low": "Low"}}])
    text = plan_error(jira)
    assert "priority 'Low' (for 'low') is not in the priority scheme of project SEC (for Bug issues); " \
           "valid: 'High', 'Highest', 'Medium'" in text
    jira.write([{**WEB, "priorities": {"critical": "Highest", "medium": "Medium"}}])
    converge(jira)


def test_priorities_need_the_priority_field_on_the_create_screen(jira: ServedRig) -> None:
    jira.state.project("SEC").off_screen.add("priority")
    jira.write([WEB])
    assert "the priority field is not on the create screen of Bug issues in SEC" in plan_error(jira)


def test_required_fields_the_test_issue_does_not_set_fail_the_plan_not_the_apply(jira: ServedRig) -> None:
    jira.state.project("SEC").extra_fields["10004"] = [
        {"fieldId": "components", "key": "components", "name": "Component/s", "required": True,
         "hasDefaultValue": False, "operations": ["set", "add"], "schema": {"type": "array", "items": "component",
                                                                             "system": "components"}},
        {"fieldId": "customfield_10100", "key": "customfield_10100", "name": "Severity", "required": True,
         "hasDefaultValue": True, "operations": ["set"], "schema": {"type": "option", "custom": "select"}},
    ]
    jira.write([WEB])
    text = plan_error(jira)
    assert "integration 'web': the activation test issue cannot be created: Bug issues in SEC require " \
           "Component/s (components), which it does not set" in text
    assert "Severity" not in text  # it has a default
    assert not jira.state.issues and not jira.state.project("SEC").properties
    jira.write([{**WEB, "test_issue": False}])
    converge(jira)


def test_fields_the_test_issue_sets_must_be_on_the_create_screen(jira: ServedRig) -> None:
    jira.state.project("SEC").off_screen.add("labels")
    jira.write([WEB])
    assert "the activation test issue cannot be created: labels is not on the create screen of Bug issues " \
           "in SEC" in plan_error(jira)


# --- the test issue, found by its key ----------------------------------------------------

def test_the_test_issue_is_found_by_its_key_while_search_lags(jira: ServedRig) -> None:
    """The search index has not seen the new issue yet (as Cloud's /search/jql may not, for a while), and
    the apply that made it could not write the integration's record: a second plan must not make another."""
    jira.state.lagging_search = True
    jira.state.fail("PUT", r"/properties/reconciler\.integration\.web$", 500, times=5)
    jira.write([WEB])
    with Session(load_config(jira.folder), **session_kw(jira)) as s:
        result = apply_plan(s, s.plan())
    assert list(result.failures) == [f'jira.{jira.conn}.integration["web"]']
    assert len(jira.state.issues) == 1
    again = plan(jira)
    assert "test_issue" not in {c.kind for c in again.changes}
    converge(jira)
    assert len(jira.state.issues) == 1
    # deletion finds it by its key too, index or not
    jira.write([{**WEB, "delete_test_issue": True}])
    first = converge(jira)
    assert {c.kind: c.action for c in first.changes}["test_issue"] is Action.DELETE
    assert not jira.state.issues


# --- Data Center: versions, user lookups, role actors -------------------------------------

@pytest.mark.parametrize("version", ["10.0.1", "10.2.1", "10.3.4"])
def test_datacenter_plans_user_maps_on_every_supported_version(dc: ServedRig, version: str) -> None:
    dc.state.version = version  # /user/list exists only from 10.3
    dc.write([WEB])
    converge(dc)
    paths = [p for _, p in dc.transport.requests]
    assert "/rest/api/2/user/list" not in paths
    assert "/rest/api/2/serverInfo" in paths


def test_datacenter_lookups_do_not_grow_with_the_instance(dc: ServedRig) -> None:
    def user_requests() -> int:
        dc.transport.requests.clear()
        plan(dc)
        return sum(1 for _, p in dc.transport.requests if p.startswith("/rest/api/2/user"))
    dc.write([WEB])
    small = user_requests()
    for n in range(200):
        dc.state.add_user(f"user{n:03d}", f"User {n}", f"user{n:03d}@acme.io")
    assert user_requests() == small == 3  # alice, bob, carol: one lookup each


def test_datacenter_older_than_the_minimum_is_refused(dc: ServedRig) -> None:
    dc.state.version = "9.4.0"
    dc.write([WEB])
    assert "Jira Data Center 9.4.0 is older than 9.12, the oldest version reconciler supports" in plan_error(dc)


def test_datacenter_role_actors_named_by_user_key_match_usernames(dc: ServedRig) -> None:
    dc.state.role_actor_name = "key"  # JIRAUSERnnnnn, not the username
    dc.state.project("SEC").roles[dc.state.role_id("Developers")].add("frank")  # not mapped: looked up by key
    dc.write([{**WEB, "role_membership": "authoritative"}])
    first = converge(dc)
    role = next(c for c in first.changes if c.kind == "project_role")
    assert role.before == {"users": ["frank"]} and role.after == {"users": ["alice", "bob"]}
    assert dc.state.project("SEC").roles[dc.state.role_id("Developers")] == {"alice", "bob"}


# --- the sandbox as Jira enforces it -----------------------------------------------------

def test_role_reads_need_administer_projects_and_permission_keys_are_checked(jira: ServedRig) -> None:
    s = jira.state
    auth: dict[str, Any] = ({"auth": (s.users[s.me].email, s.secret)} if s.cloud
                            else {"headers": {"Authorization": f"Bearer {s.secret}"}})
    api = f"{jira.url}/rest/api/{'3' if s.cloud else '2'}"
    rid = s.role_id("Developers")
    assert httpx.get(f"{api}/project/SEC/role/{rid}", **auth).status_code == 200
    s.revoke("SEC", "ADMINISTER_PROJECTS")
    s.global_permissions.clear()
    assert httpx.get(f"{api}/project/SEC/role/{rid}", **auth).status_code == 404
    assert httpx.get(f"{api}/project/SEC/role", **auth).status_code == 200  # listing needs Browse only
    if s.cloud:
        r = httpx.get(f"{api}/mypermissions", params={"projectKey": "SEC", "permissions": "BROWSE_PROJECTS,NOPE"},
                      **auth)
        assert r.status_code == 400 and "NOPE" in r.text


def _dc_served(*extra: str) -> Iterator[dict[str, str]]:
    yield from serve([sys.executable, "-m", "reconciler.sandbox.jira", "--flavour", "datacenter", "--port", "0",
                      *extra])


def test_served_with_small_pages_and_a_429_paging_crosses_the_socket(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for info in _dc_served("--page-size", "1", "--fail", "GET", "/rest/api/2/myself$", "429", "1"):
        url = info["JIRA_BASE_URL"]
        monkeypatch.setenv("JIRA_TOKEN", info["JIRA_TOKEN"])
        checked = ContractTransport(httpx.HTTPTransport(), "datacenter")
        rig = ServedRig("datacenter", new_state("datacenter"), checked, tmp_path / "c", url=url)
        rig.write([{**WEB, "resolutions": {"duplicate": "Duplicate", "resolved": "Fixed"}}])
        converge(rig)
        assert rig.sleeps and rig.sleeps[0] == 1.0  # the 429's Retry-After, over the socket
        starts = [p for m, p in checked.requests if p == "/rest/api/2/resolution/page"]
        assert len(starts) >= 5  # five resolutions, one a page
        assert not checked.violations


def test_served_datacenter_property_put_answers_empty_json(tmp_path: Path) -> None:
    """Data Center answers a property PUT with 201/200, no body, and Content-Type: application/json."""
    for info in _dc_served():
        api = f"{info['JIRA_BASE_URL']}/rest/api/2"
        h = {"Authorization": f"Bearer {info['JIRA_TOKEN']}"}
        for status in (201, 200):
            r = httpx.put(f"{api}/project/SEC/properties/x.y", headers=h, content=json.dumps({"a": 1}), timeout=10)
            assert r.status_code == status and r.content == b""
            assert r.headers["Content-Type"].startswith("application/json")


def test_the_served_sandbox_describes_its_options() -> None:
    out = subprocess.run([sys.executable, "-m", "reconciler.sandbox.jira", "--help"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "--page-size" in out and "--fail" in out and "--dc-version" in out
