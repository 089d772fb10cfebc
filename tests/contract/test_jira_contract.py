"""Every request the Jira provider sends, and every answer the sandbox gives, against Atlassian's OpenAPI files."""

from __future__ import annotations

import httpx
import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.session import Session
from tests.contract.jira_spec import JiraRig, validate_request

FULL = {
    "name": "web", "program": "acme-web", "project": "SEC", "issue_type": "Bug", "labels": ["intigriti"],
    "priorities": {"critical": "Highest", "high": "High", "low": "Low"},
    "statuses": {"accepted": "In Progress", "closed": "Closed"},
    "resolutions": {"duplicate": "Duplicate", "resolved": "Fixed"},
    "comments": ["researcher", "triage"], "team_roles": {"appsec": "Developers"},
    "delete_test_issue": True, "webhook": {"url": "https://platform.acme.io/hooks/jira"},
}


def plan_apply_plan(rig: JiraRig) -> None:
    config = load_config(rig.folder)
    with Session(config, transports=rig.transports()) as s:
        plan = s.plan()
        assert plan.has_changes
        result = apply_plan(s, plan)
        assert not result.failures, result.failures
    with Session(config, transports=rig.transports()) as s:
        assert not s.plan().has_changes


def test_every_call_of_a_full_round_trip_conforms(jira: JiraRig) -> None:
    jira.write([FULL, {**FULL, "name": "web-ops", "project": "OPS", "issue_type": "Task",
                       "statuses": {"accepted": "In Progress"}, "role_membership": "additive",
                       "delete_test_issue": False, "webhook": None}])
    plan_apply_plan(jira)
    # then drift in every managed object, planned back and applied, all through the validator
    sec = jira.state.project("SEC")
    sec.properties["reconciler.integration.web"]["labels"] = ["tampered"]
    next(iter(jira.state.webhooks.values()))["url"] = "https://elsewhere.example/hook"
    sec.roles[jira.state.role_id("Developers")].discard(jira.ident("alice"))
    plan_apply_plan(jira)
    methods = {m for m, _ in jira.transport.requests}
    assert methods == {"GET", "POST", "PUT", "DELETE"}
    assert len(jira.transport.requests) > 30


def _request(method: str, url: str, flavour: str, **kw: object) -> httpx.Request:
    auth = {"Authorization": "Basic eDp5"} if flavour == "cloud" else {"Authorization": "Bearer pat"}
    return httpx.Request(method, url, headers=auth, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("flavour,base", [("cloud", "https://acme.atlassian.net/rest/api/3"),
                                          ("datacenter", "https://jira.acme.io/rest/api/2")])
def test_the_validator_rejects_what_the_description_forbids(flavour: str, base: str) -> None:
    ok = _request("POST", f"{base}/project/SEC/role/10000", flavour, json={"user": ["x"]})
    assert validate_request(flavour, ok) is None
    bad_id = _request("POST", f"{base}/project/SEC/role/developers", flavour, json={"user": ["x"]})
    assert validate_request(flavour, bad_id) is not None
    unknown = _request("GET", f"{base}/no/such/endpoint", flavour)
    assert validate_request(flavour, unknown) is not None
    hook = _request("POST", "https://jira.acme.io/rest/webhooks/1.0/webhook", flavour,
                    json={"name": "x", "url": "https://h", "events": [], "filter": "wrong key"})
    assert "filter" in (validate_request(flavour, hook) or "")


def test_cloud_rejects_a_bad_body_and_dc_rejects_basic_auth() -> None:
    body = _request("POST", "https://acme.atlassian.net/rest/api/3/project/SEC/role/10000", "cloud",
                    json={"users": ["x"]})
    assert validate_request("cloud", body) is not None  # ActorsMap has no 'users'
    basic = httpx.Request("GET", "https://jira.acme.io/rest/api/2/myself", headers={"Authorization": "Basic eDp5"})
    assert "bearer" in (validate_request("datacenter", basic) or "")
