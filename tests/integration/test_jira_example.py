"""examples/full: two integrations (Jira Cloud and Jira Data Center) plan, apply and re-plan clean against
the Jira sandboxes (every call contract-checked), with the platform on an embedded scim2-server."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.sandbox import scim as scim_sandbox
from reconciler.sandbox.jira import CLOUD_TOKEN, DC_TOKEN, new_state, transport
from reconciler.session import Session
from tests.contract.jira_spec import ContractTransport, load_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "full"


def test_full_example_converges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "example-token")
    monkeypatch.setenv("JIRA_CLOUD_TOKEN", CLOUD_TOKEN)
    monkeypatch.setenv("JIRA_DC_TOKEN", DC_TOKEN)
    load_spec("cloud")
    load_spec("datacenter")
    cloud, dc = new_state("cloud"), new_state("datacenter")
    cloud_t = ContractTransport(transport(cloud), "cloud")
    dc_t = ContractTransport(transport(dc), "datacenter")
    scim_t, _ = scim_sandbox.transport("example-token")
    config = load_config(EXAMPLE)
    transports = {"platform": scim_t, "acme-cloud": cloud_t, "acme-dc": dc_t}
    with Session(config, transports=transports) as s:
        plan = s.plan()
        jira = sorted(c.address for c in plan.changes if c.address.startswith("jira."))
        assert jira == [
            'jira.acme-cloud.integration["web-findings"]',
            'jira.acme-cloud.project_role["SEC/Developers"]',
            'jira.acme-cloud.test_issue["web-findings"]',
            'jira.acme-cloud.webhook["reconciler web-findings"]',
            'jira.acme-dc.integration["platform-ops"]',
            'jira.acme-dc.project_role["OPS/Developers"]',
            'jira.acme-dc.project_role["OPS/Security Reviewers"]',
            'jira.acme-dc.test_issue["platform-ops"]',
        ]
        result = apply_plan(s, plan)
        assert not result.failures, result.failures
    with Session(config, transports=transports) as s:
        again = s.plan()
        assert not again.has_changes, [c.address for c in again.changes]
    assert cloud.project("SEC").roles[cloud.role_id("Developers")] == {"5b10ac8d82e05b22cc7d4e00",
                                                                       "5b10ac8d82e05b22cc7d4e01"}
    assert dc.project("OPS").roles[dc.role_id("Developers")] == {"carol", "dave"}
    assert dc.project("OPS").roles[dc.role_id("Security Reviewers")] == {"alice", "bob"}
    assert not cloud.issues and len(dc.issues) == 1  # Cloud's test issue deleted as configured
    assert not cloud_t.violations and not dc_t.violations


def test_target_selects_tracker_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """--target takes tracker addresses: one object exactly, or everything under a connection."""
    from reconciler.errors import PlanError

    monkeypatch.setenv("SCIM_TOKEN", "example-token")
    monkeypatch.setenv("JIRA_CLOUD_TOKEN", CLOUD_TOKEN)
    monkeypatch.setenv("JIRA_DC_TOKEN", DC_TOKEN)
    scim_t, _ = scim_sandbox.transport("example-token")
    config = load_config(EXAMPLE)
    transports = {"platform": scim_t, "acme-cloud": transport(new_state("cloud")),
                  "acme-dc": transport(new_state("datacenter"))}
    with Session(config, transports=transports) as s:
        one = s.plan(targets=['jira.acme-dc.project_role["OPS/Developers"]'])
        assert [c.address for c in one.changes] == ['jira.acme-dc.project_role["OPS/Developers"]']
        cloud = s.plan(targets=["jira.acme-cloud"])
        assert {c.address.split("[")[0] for c in cloud.changes} == {
            "jira.acme-cloud.integration", "jira.acme-cloud.project_role", "jira.acme-cloud.test_issue",
            "jira.acme-cloud.webhook"}
        with pytest.raises(PlanError, match="unknown connection 'acme-clod' \\(did you mean 'acme-cloud'\\?\\)"):
            s.plan(targets=["jira.acme-clod"])


def test_saved_plan_with_tracker_changes_is_refused_when_jira_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A saved plan's tracker changes are checked like SCIM ones: Jira planned again, digests compared."""
    from reconciler.providers.jira import planner as jira

    monkeypatch.setenv("SCIM_TOKEN", "example-token")
    monkeypatch.setenv("JIRA_CLOUD_TOKEN", CLOUD_TOKEN)
    monkeypatch.setenv("JIRA_DC_TOKEN", DC_TOKEN)
    scim_t, _ = scim_sandbox.transport("example-token")
    cloud, dc = new_state("cloud"), new_state("datacenter")
    config = load_config(EXAMPLE)
    transports = {"platform": scim_t, "acme-cloud": transport(cloud), "acme-dc": transport(dc)}
    with Session(config, transports=transports) as s:
        plan = s.plan()
        mine = [c for c in plan.changes if c.address.startswith(jira.prefix)]
        assert [st for c in jira.stale(s, mine, {}) for st in c.stale] == []
        dc.project("OPS").roles[dc.role_id("Developers")].add("erin")  # someone edits the role in Jira
        stale = [st for c in jira.stale(s, mine, {}) for st in c.stale]
    assert stale == [('jira.acme-dc.project_role["OPS/Developers"]', "changed since the plan was made")]
