"""Connections and integrations in YAML: validation and cross-checks, each error located at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config.loader import load_config
from reconciler.errors import ConfigError
from tests.conftest import write_text

PROVIDERS = """
providers:
  - name: platform
    type: scim
    base_url: http://127.0.0.1:1/v2
    auth: {type: bearer, token: "${env:SCIM_TOKEN}"}
teams:
  - name: appsec
  - name: platform-eng
"""

CONNECTIONS = """
connections:
  - name: acme-cloud
    type: jira-cloud
    site_url: https://acme.atlassian.net
    email: integration@acme.io
    api_token: ${env:JIRA_CLOUD_TOKEN}
  - name: acme-dc
    type: jira-datacenter
    base_url: https://jira.acme.io
    token: ${env:JIRA_DC_TOKEN}
"""


def config(tmp_path: Path, integrations: str, connections: str = CONNECTIONS) -> Path:
    write_text(tmp_path / "c" / "providers.yaml", PROVIDERS)
    write_text(tmp_path / "c" / "connections.yaml", connections)
    write_text(tmp_path / "c" / "integrations.yaml", integrations)
    return tmp_path / "c"


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return [str(d) for d in exc.value.diagnostics]


def test_valid_config_loads(tmp_path: Path) -> None:
    c = load_config(config(tmp_path, """
        integrations:
          - name: web
            program: acme-web
            connection: acme-cloud
            project: SEC
            issue_type: Bug
            labels: [intigriti, bug-bounty]
            priorities: {critical: Highest, high: High}
            statuses: {accepted: In Progress}
            resolutions: {duplicate: Duplicate}
            team_roles: {appsec: Developers}
            webhook: {url: "https://platform.acme.io/hooks/jira"}
          - name: web-ops
            program: acme-web
            connection: acme-dc
            project: OPS
            issue_type: Task
    """))
    conns = c.connections
    ints = c.integrations
    assert [x.type for x in conns] == ["jira-cloud", "jira-datacenter"]
    assert [i.name for i in ints] == ["web", "web-ops"]
    assert ints[0].priorities == {"critical": "Highest", "high": "High"}
    assert ints[0].webhook_name() == "reconciler web"
    assert ints[1].role_membership == "additive" and ints[1].template == ["references", "information",
                                                                          "researcher", "report"]


def test_unknown_connection_and_team_are_located(tmp_path: Path) -> None:
    errs = errors(config(tmp_path, """
        integrations:
          - name: web
            program: acme-web
            connection: acme-clod
            project: SEC
            issue_type: Bug
            team_roles:
              appsek: Developers
    """))
    assert any(e.endswith("integrations.yaml:4:17: integration 'web' names unknown connection 'acme-clod' "
                          "(did you mean 'acme-cloud'?)") for e in errs), errs
    assert any(e.endswith("integrations.yaml:8:7: integration 'web' grants a role to unknown team 'appsek' "
                          "(did you mean 'appsec'?)") for e in errs), errs


def test_label_rules(tmp_path: Path) -> None:
    labels = ", ".join(f"l{n}" for n in range(10))
    errs = errors(config(tmp_path, f"""
        integrations:
          - name: web
            program: acme-web
            connection: acme-cloud
            project: SEC
            issue_type: Bug
            labels: [bug bounty, {labels}]
    """))
    assert any("integrations.yaml:7:13: integration 'web' has 11 labels; at most 10 are allowed" in e
               for e in errs), errs
    assert any("integrations.yaml:7:14: integration 'web': label 'bug bounty' contains a space; Jira labels "
               "cannot contain spaces (write 'bug-bounty')" in e for e in errs), errs


def test_bad_values_give_valid_choices(tmp_path: Path) -> None:
    errs = errors(config(tmp_path, """
        integrations:
          - name: web
            program: acme-web
            connection: acme-cloud
            project: sec
            issue_type: Bug
            trigger: sometimes
            comments: [researcher, robots]
            role_membership: exclusive
    """))
    text = "\n".join(errs)
    assert "integrations.yaml:5:14: 'project': 'sec' is not a Jira project key; a key is an upper-case " \
           "letter followed by upper-case letters, digits or _ (e.g. SEC)" in text
    assert "integrations.yaml:7:14: invalid value 'sometimes' for 'trigger'; valid choices: 'manual', " \
           "'submission-created', " \
           "'submission-triaged' or 'submission-accepted'" in text
    assert "integrations.yaml:8:28: invalid value 'robots' for 'comments[1]'; valid choices: 'researcher', 'triage', " \
           "'company' or 'events'" in text
    assert "integrations.yaml:9:22: invalid value 'exclusive' for 'role_membership'; valid choices: 'additive' or " \
           "'authoritative'" in text


def test_connection_validation(tmp_path: Path) -> None:
    errs = errors(config(tmp_path, "integrations: []\n", connections="""
        connections:
          - name: acme-cloud
            type: jira-cloud
            site_url: https://jira.acme.io
            email: integration@acme.io
            api_token: plain-text-token
          - name: acme-dc
            type: jira-server
            base_url: https://jira.acme.io
    """))
    text = "\n".join(errs)
    assert "connections.yaml:4:15: 'site_url': 'https://jira.acme.io' is not a Jira Cloud site URL; write " \
           "https://<site>.atlassian.net" in text
    assert "connections.yaml:6:16: 'api_token' must be a secret reference" in text
    assert "connections.yaml:8:11: invalid value 'jira-server' for 'type'" in text
    assert "valid choices: 'jira-cloud', 'jira-datacenter', 'redmine'" in text


def test_conflicting_role_membership_on_one_project(tmp_path: Path) -> None:
    errs = errors(config(tmp_path, """
        integrations:
          - name: web
            program: acme-web
            connection: acme-cloud
            project: SEC
            issue_type: Bug
            team_roles: {appsec: Developers}
            role_membership: authoritative
          - name: mobile
            program: acme-mobile
            connection: acme-cloud
            project: SEC
            issue_type: Bug
            team_roles: {platform-eng: Developers}
    """))
    assert any("integration 'mobile' manages role 'Developers' of project SEC as additive, but integration "
               "'web' manages it as authoritative" in e for e in errs), errs


def test_a_connection_cannot_take_a_providers_name(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "providers:\n  - name: acme\n    type: scim\n    base_url: https://scim.acme.io/v2\n"
        "    auth: {type: bearer, token: '${env:T}'}\n"
        "connections:\n  - name: acme\n    type: jira-datacenter\n    base_url: https://jira.acme.io\n"
        "    token: '${env:T}'\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:7:\d+: connection 'acme' has the name of the SCIM provider "
                                          r"declared at .*c\.yaml:2:\d+"):
        load_config(tmp_path)
