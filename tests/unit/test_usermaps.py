"""User maps and fallback users: loading, uniqueness and shape checks, fallback precedence, the lookup API."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.config.loader import load_config
from reconciler.config.models import Config
from reconciler.errors import ConfigError
from reconciler.usermaps import identities_for, mapped_identities, matching_fallback, resolve_identity
from tests.conftest import write_text

BASE = """
providers:
  - name: platform
    type: scim
    base_url: http://127.0.0.1:1/v2
    auth: {type: bearer, token: "${env:SCIM_TOKEN}"}
members:
  - email: alice@acme.io
  - email: bob@acme.io
  - email: carol@acme.io
  - email: triage@acme.io
  - email: old@acme.io
    active: false
connections:
  - name: cloud
    type: jira-cloud
    site_url: https://acme.atlassian.net
    email: integration@acme.io
    api_token: ${env:JIRA_CLOUD_TOKEN}
  - name: dc
    type: jira-datacenter
    base_url: https://jira.acme.io
    token: ${env:JIRA_DC_TOKEN}
  - name: tracker
    type: redmine
    base_url: https://redmine.acme.io
    api_key: ${env:REDMINE_KEY}
"""

MAPS = """
user_maps:
  - member: alice@acme.io
    identities:
      cloud: 5b10ac8d82e05b22cc7d4ef5
      dc: alice
      jenkins: [alice, asmith]
  - member: triage@acme.io
    identities:
      cloud: "712020:2c5a8a9e-1b6f-4d1c-9a57-0d8f5c0e1a22"
      dc: triage
      tracker: triage
  - member: bob@acme.io
    identities:
      cloud: 5b10ac8d82e05b22cc7d4ef6
      dc: bob
  - member: old@acme.io
    identities:
      dc: old
"""


def write(tmp_path: Path, usermaps: str, base: str = BASE) -> Path:
    write_text(tmp_path / "c" / "base.yaml", base)
    write_text(tmp_path / "c" / "usermaps.yaml", textwrap.dedent(usermaps))
    return tmp_path / "c"


def load(tmp_path: Path, usermaps: str) -> Config:
    return load_config(write(tmp_path, usermaps))


def errors(tmp_path: Path, usermaps: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, usermaps))
    return [str(d) for d in exc.value.diagnostics]


def test_user_maps_load_with_origins(tmp_path: Path) -> None:
    c = load(tmp_path, MAPS)
    assert identities_for(c, "alice@acme.io", "jenkins") == ["alice", "asmith"]
    assert identities_for(c, "ALICE@acme.io", "dc") == ["alice"]
    assert identities_for(c, "carol@acme.io", "dc") == []
    assert identities_for(c, "alice@acme.io", "octane") == []
    assert mapped_identities(c, "dc") == {"alice": "alice@acme.io", "triage": "triage@acme.io",
                                          "bob": "bob@acme.io", "old": "old@acme.io"}
    assert mapped_identities(c, "jenkins") == {"alice": "alice@acme.io", "asmith": "alice@acme.io"}
    r = resolve_identity(c, "alice@acme.io", "jenkins")
    assert (r.identity, r.source, r.member_active) == ("alice", "mapped", True)
    # the rule names the exact place of the identity in the YAML
    assert "usermaps.yaml:6:17" in r.rule and "alice@acme.io" in r.rule


def test_deactivated_member_keeps_map_and_is_flagged(tmp_path: Path) -> None:
    c = load(tmp_path, MAPS)
    r = resolve_identity(c, "old@acme.io", "dc")
    assert (r.identity, r.source, r.member_active) == ("old", "mapped", False)


# --- uniqueness and shape: (yaml, expected message fragments with positions) ---------------------------------

BAD = [
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {dc: shared}
          - member: bob@acme.io
            identities: {dc: Shared}
        """,
        ["{tmp}/c/usermaps.yaml:5:22: dc identity 'Shared' is claimed by 'bob@acme.io' here and by 'alice@acme.io' at "
         "{tmp}/c/usermaps.yaml:3:22;"],
        id="same-identity-two-members-case-insensitive"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities:
              jenkins: [alice, alice]
        """,
        ["{tmp}/c/usermaps.yaml:4:24: 'alice@acme.io' lists jenkins identity 'alice' twice; first at "
         "{tmp}/c/usermaps.yaml:4:17"],
        id="same-identity-twice-in-one-map"),
    pytest.param(
        """
        user_maps:
          - member: dave@acme.io
            identities: {dc: dave}
        """,
        ["usermaps.yaml:2:13: user map names unknown member 'dave@acme.io' (did you mean 'alice@acme.io'?)"],
        id="unknown-member"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {dc: a}
          - member: Alice@acme.io
            identities: {jenkins: a}
        """,
        ["usermaps.yaml:4:13: member 'Alice@acme.io' has a second user map; the first is at "],
        id="second-map-for-member"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {cloud: alice@acme.io}
        """,
        ["usermaps.yaml:3:25: jira-cloud identity 'alice@acme.io' of 'alice@acme.io' is an email address; "
         "Jira Cloud identifies people by account ID"],
        id="jira-cloud-email"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {cloud: "Alice Smith"}
        """,
        ["is not a Jira Cloud account ID"],
        id="jira-cloud-display-name"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {tracker: "alice smith"}
        """,
        ["redmine identity 'alice smith' of 'alice@acme.io' is not a Redmine login"],
        id="redmine-login-with-space"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {jenkins: []}
        """,
        ["system 'jenkins' lists no identity"],
        id="empty-list"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {"Jira DataSource": alice}
        """,
        ["usermaps.yaml:3:", "'Jira DataSource' must match"],
        id="system-name-not-a-name"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {}
        """,
        ["usermaps.yaml:3:17: 'identities': lists no system; give at least one identity"],
        id="no-identities"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities: {clod: 5b10ac8d82e05b22cc7d4ef5}
        """,
        ["usermaps.yaml:3:18: system 'clod' is not a connection; did you mean 'cloud'?"],
        id="misspelt-connection-dropped-letter"),
    pytest.param(
        """
        user_maps:
          - member: alice@acme.io
            identities:
              trakcer: alice
        """,
        ["usermaps.yaml:4:7: system 'trakcer' is not a connection; did you mean 'tracker'?"],
        id="misspelt-connection-swapped-letters"),
]


@pytest.mark.parametrize(("yaml", "expected"), BAD)
def test_invalid_user_maps(tmp_path: Path, yaml: str, expected: list[str]) -> None:
    found = errors(tmp_path, yaml)
    for e in expected:
        e = e.replace("{tmp}", str(tmp_path))  # the test's own directory, wherever TMPDIR puts it
        assert any(e in f for f in found), f"{e!r} not in {found}"


GOOD = [
    pytest.param("cloud", "5b10ac8d82e05b22cc7d4ef5", id="cloud-legacy-hex"),
    pytest.param("cloud", "712020:2c5a8a9e-1b6f-4d1c-9a57-0d8f5c0e1a22", id="cloud-prefixed-uuid"),
    pytest.param("cloud", "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077", id="cloud-557058"),
    pytest.param("dc", "alice@acme.io", id="dc-username-may-be-an-email"),
    pytest.param("dc", "Alice Smith", id="dc-username-with-space"),
    pytest.param("tracker", "alice.smith@acme-io", id="redmine-login"),
    pytest.param("azure-devops", "Alice Smith <alice@acme.io>", id="free-form"),
    # free-form names near a connection's but not a typo of it: 3 letters from 'cloud', 2 from 'dc'
    pytest.param("crowd", "alice", id="free-form-not-a-typo"),
    pytest.param("ci", "alice", id="free-form-short"),
]


@pytest.mark.parametrize(("system", "identity"), GOOD)
def test_valid_identity_shapes(tmp_path: Path, system: str, identity: str) -> None:
    c = load(tmp_path, f"""
        user_maps:
          - member: alice@acme.io
            identities: {{{system}: "{identity}"}}
        """)
    assert identities_for(c, "alice@acme.io", system) == [identity]


# --- fallback users ---------------------------------------------------------------------------------------

FALLBACKS = MAPS + """
fallback_users:
  - {system: dc, member: triage@acme.io}
  - {system: dc, member: bob@acme.io, project: SEC}
  - {system: dc, member: alice@acme.io, project: SEC, issue_type: Bug}
  - {system: dc, member: old@acme.io, issue_type: Bug}
  - {system: dc, member: alice@acme.io, field: reporter}
  - {system: dc, member: bob@acme.io, project: SEC, field: reporter}
  - {system: cloud, member: bob@acme.io, project: WEB}
"""

# old@acme.io is deactivated, so it cannot be a fallback user; the precedence table uses this instead:
PRECEDENCE = MAPS + """
fallback_users:
  - {system: dc, member: triage@acme.io}
  - {system: dc, member: bob@acme.io, project: SEC}
  - {system: dc, member: alice@acme.io, project: SEC, issue_type: Bug}
  - {system: dc, member: triage@acme.io, issue_type: Task}
  - {system: dc, member: alice@acme.io, field: reporter}
  - {system: dc, member: bob@acme.io, project: SEC, field: reporter}
  - {system: cloud, member: bob@acme.io, project: WEB}
"""


@pytest.mark.parametrize(("system", "project", "issue_type", "field", "identity", "rule"), [
    ("dc", None, None, None, "triage", "(general)"),
    ("dc", "WEB", "Bug", "assignee", "triage", "(general)"),
    ("dc", "SEC", None, None, "bob", "(project=SEC)"),
    ("dc", "sec", "Story", "assignee", "bob", "(project=SEC)"),
    ("dc", "SEC", "Bug", None, "alice", "(project=SEC, issue_type=Bug)"),
    ("dc", "SEC", "bug", "assignee", "alice", "(project=SEC, issue_type=Bug)"),
    # an issue-type rule beats a project rule, even without a project
    ("dc", "SEC", "Task", None, "triage", "(issue_type=Task)"),
    ("dc", "WEB", "Task", None, "triage", "(issue_type=Task)"),
    # a field rule beats an issue-type or project rule; of two field rules the one also naming a project wins
    ("dc", "SEC", "Bug", "reporter", "bob", "(project=SEC, field=reporter)"),
    ("dc", "WEB", "Bug", "reporter", "alice", "(field=reporter)"),
    ("dc", None, "Task", "reporter", "alice", "(field=reporter)"),
    ("cloud", "WEB", None, None, "5b10ac8d82e05b22cc7d4ef6", "(project=WEB)"),
    ("cloud", "SEC", None, None, None, None),
    ("jenkins", None, None, None, None, None),
])
def test_fallback_precedence(tmp_path: Path, system: str, project: str | None, issue_type: str | None,
                             field: str | None, identity: str | None, rule: str | None) -> None:
    c = load(tmp_path, PRECEDENCE)
    r = resolve_identity(c, "carol@acme.io", system, project=project, issue_type=issue_type, field=field)
    assert r.identity == identity
    assert r.member_active is True
    if rule is None:
        assert r.source is None
        assert "no fallback user matches" in r.rule
    else:
        assert r.source == "fallback"
        assert f"fallback user for {system} {rule}" in r.rule
        assert "carol@acme.io has no identity in" in r.rule


def test_mapped_identity_beats_every_fallback(tmp_path: Path) -> None:
    c = load(tmp_path, PRECEDENCE)
    r = resolve_identity(c, "bob@acme.io", "dc", project="SEC", issue_type="Bug", field="reporter")
    assert (r.identity, r.source) == ("bob", "mapped")


def test_unknown_member_falls_back_and_is_not_active(tmp_path: Path) -> None:
    c = load(tmp_path, PRECEDENCE)
    r = resolve_identity(c, "stranger@else.io", "dc")
    assert (r.identity, r.source, r.member_active) == ("triage", "fallback", False)
    assert r.rule.startswith("not a declared member")


def test_matching_fallback_returns_the_rule(tmp_path: Path) -> None:
    c = load(tmp_path, PRECEDENCE)
    fb = matching_fallback(c, "dc", project="SEC", issue_type="Bug")
    assert fb is not None and fb.member == "alice@acme.io"
    assert fb.where()[0].endswith("usermaps.yaml")


BAD_FALLBACKS = [
    pytest.param("- {system: dc, member: carol@acme.io}",
                 "fallback user 'carol@acme.io' has no identity in dc; a fallback user must itself be mapped there; "
                 "'carol@acme.io' has no user map", id="fallback-unmapped"),
    pytest.param("- {system: tracker, member: alice@acme.io}",
                 "fallback user 'alice@acme.io' has no identity in tracker; a fallback user must itself be mapped "
                 "there; 'alice@acme.io' is mapped in: cloud, dc, jenkins", id="fallback-unmapped-in-system"),
    pytest.param("- {system: dc, member: zed@acme.io}", "fallback user names unknown member 'zed@acme.io'",
                 id="fallback-unknown-member"),
    pytest.param("- {system: dc, member: old@acme.io}", "fallback user 'old@acme.io' is deactivated",
                 id="fallback-deactivated"),
    pytest.param("- {system: dc, member: triage@acme.io, project: SEC}\n"
                 "  - {system: dc, member: bob@acme.io, project: sec}",
                 "fallback user for dc (project=sec) is declared twice; first at /",
                 id="same-scope-twice"),
    pytest.param("- {system: dc, member: triage@acme.io}\n  - {system: dc, member: bob@acme.io}",
                 "fallback user for dc (general) is declared twice", id="two-general"),
    pytest.param("- {system: dc, member: triage@acme.io, colour: red}", "unknown key 'colour'",
                 id="unknown-key"),
    pytest.param("- {system: trackers, member: triage@acme.io}",
                 "system 'trackers' is not a connection; did you mean 'tracker'?", id="fallback-misspelt-system"),
]


@pytest.mark.parametrize(("rules", "expected"), BAD_FALLBACKS)
def test_invalid_fallback_users(tmp_path: Path, rules: str, expected: str) -> None:
    found = errors(tmp_path, MAPS + "fallback_users:\n  " + rules + "\n")
    assert any(expected in f and "usermaps.yaml:" in f for f in found), f"{expected!r} not in {found}"


def test_no_user_maps_declared(tmp_path: Path) -> None:
    c = load(tmp_path, "# nothing here\n")
    r = resolve_identity(c, "alice@acme.io", "dc")
    assert (r.identity, r.source, r.member_active) == (None, None, True)
    assert mapped_identities(c, "dc") == {}
