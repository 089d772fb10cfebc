"""Every config problem is reported as file:line:col: message, with the valid choices or a did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import yamlpos
from reconciler.config.loader import load_config
from reconciler.errors import ConfigError, SecretError
from reconciler.providers.scim import connect

PROVIDER = """\
providers:
  - name: platform
    type: scim
    base_url: http://127.0.0.1:1/v2
    auth:
      type: bearer
      token: ${env:SCIM_TOKEN}
"""


def problems(tmp_path: Path, files: dict[str, str | bytes]) -> list[str]:
    """Load a config made of ``files``; return 'name:line:col: message' for each problem."""
    for name, text in files.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    return [f"{Path(d.file).name}:{d.line}:{d.column}: {d.message}" for d in info.value.diagnostics]


@pytest.mark.parametrize("text, expected", [
    pytest.param("members:\n  - email: a@acme.io\n    givn_name: A\n",
                 "m.yaml:3:5: unknown key 'givn_name' (did you mean 'given_name'?)", id="unknown key, did you mean"),
    pytest.param("members:\n  - email: a@acme.io\n    zzz: 1\n",
                 "m.yaml:3:5: unknown key 'zzz'; valid keys: email, given_name", id="unknown key, valid keys"),
    pytest.param("memebrs: []\n", "m.yaml:1:1: unknown key 'memebrs' (did you mean 'members'?)",
                 id="unknown kind"),
    pytest.param("members:\n  - email: a@acme.io\n    active: maybe\n",
                 "m.yaml:3:13: 'active': expected true/false, not text 'maybe'", id="wrong type"),
    pytest.param("members:\n  - email: a@acme.io\n    roles: admin\n",
                 "m.yaml:3:12: 'roles': expected a list, not text 'admin'", id="wrong type: list"),
    pytest.param("members:\n  - email: not-an-email\n",
                 "m.yaml:2:12: 'email': 'not-an-email' is not a valid email address", id="bad email"),
    pytest.param("members:\n  - given_name: A\n", "m.yaml:2:5: missing required key 'email'", id="missing key"),
    pytest.param("members:\n  - email: a@acme.io\n    title: ${env:TITLE}\n",
                 "m.yaml:3:12: secret references are allowed only in credential fields", id="env outside credential"),
    pytest.param("members: {email: a@acme.io}\n", "m.yaml:1:10: 'members': expected a list, not a mapping",
                 id="mapping for a list"),
    pytest.param("- a\n- b\n", "m.yaml:1:1: a config file must be a mapping of kinds", id="not a mapping"),
])
def test_member_errors(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": text})
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize("auth, expected", [
    pytest.param('{type: bearer, token: "abc123-literal"}',
                 "'token' must be a secret reference such as ${env:NAME} or ${file:PATH}; secrets never live in YAML",
                 id="literal secret"),
    pytest.param('{type: oauth2, token_url: "https://t.example/token", client_id: c, client_secret: hunter22}',
                 "'client_secret' must be a secret reference", id="literal client secret"),
    pytest.param("{type: kerberos}", "invalid value 'kerberos' for 'type'; valid choices: 'bearer', 'basic', "
                 "'oauth2'", id="unknown auth type"),
    pytest.param('{token: "${env:X}"}', "missing required key 'type'", id="auth without type"),
])
def test_credential_errors(tmp_path: Path, auth: str, expected: str) -> None:
    text = PROVIDER.replace("    auth:\n      type: bearer\n      token: ${env:SCIM_TOKEN}\n", f"    auth: {auth}\n")
    found = problems(tmp_path, {"p.yaml": text})
    assert any(p.startswith("p.yaml:5:") and expected in p for p in found), found
    assert not any("abc123-literal" in p or "hunter22" in p for p in found), "a secret was echoed"


@pytest.mark.parametrize("setting, expected", [
    ("removal: archive", "p.yaml:8:14: invalid value 'archive' for 'removal'; valid choices: 'deactivate' or 'delete'"),
    ("max_removal_percent: 120", "p.yaml:8:26: 'max_removal_percent': Input should be less than or equal to 100"),
    ("name_: x", "p.yaml:8:5: unknown key 'name_' (did you mean 'name'?)"),
])
def test_provider_errors(tmp_path: Path, setting: str, expected: str) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER + f"    {setting}\n"})
    assert any(p.startswith(expected) for p in found), found


def test_provider_name_pattern(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER.replace("name: platform", "name: Platform One")})
    assert found == ["p.yaml:2:11: 'name' must match ^[a-z0-9][a-z0-9_-]*$ (lower-case letters, digits, - and _)"]


def test_unknown_team_member_did_you_mean(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": "members:\n  - email: bob@acme.com\n",
                                "t.yaml": "teams:\n  - name: appsec\n    members:\n      - bob@acme.io\n"})
    assert found == ["t.yaml:4:9: team 'appsec' lists unknown member 'bob@acme.io' (did you mean 'bob@acme.com'?)"]


def test_duplicate_member_across_files_names_both_places(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER, "a.yaml": "members:\n  - email: alice@acme.io\n",
                                "b.yaml": "# more\nmembers:\n  - email: bob@acme.io\n  - email: Alice@acme.io\n"})
    assert len(found) == 1
    assert found[0].startswith("b.yaml:4:12: member 'alice@acme.io' is declared twice; first at ")
    assert found[0].endswith("a.yaml:2:12")


def test_unknown_manager_and_provider(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": (
        "members:\n  - email: alice@acme.io\n  - email: bob@acme.io\n    manager: alice@acme.com\n"
        "    providers: [platfrom]\n")})
    assert found == [
        "m.yaml:4:14: member 'bob@acme.io' names unknown manager 'alice@acme.com' (did you mean 'alice@acme.io'?)",
        "m.yaml:5:16: member 'bob@acme.io' names unknown provider 'platfrom' (did you mean 'platform'?)",
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER, "a.yaml": "members:\n  - email: x\n",
                                "b.yaml": "teams:\n  - name: t\n    color: red\n"})
    assert [p.split(":")[0] for p in found] == ["a.yaml", "b.yaml"]



# --- every phase in one run: cross-checks run on the items that parsed -------------------------------

def test_structural_and_cross_check_errors_in_one_run(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER,
                                "a.yaml": "members:\n  - email: alice@acme.io\n    givn_name: Alice\n"
                                          "  - email: bob@acme.io\n",
                                "b.yaml": "teams:\n  - name: appsec\n    members: [bob@acme.io, carol@acme.io]\n"})
    assert found == [
        "a.yaml:3:5: unknown key 'givn_name' (did you mean 'given_name'?)",
        "b.yaml:3:28: team 'appsec' lists unknown member 'carol@acme.io' (did you mean 'bob@acme.io'?)",
    ]


def test_a_dropped_member_is_not_reported_unknown_where_it_is_named(tmp_path: Path) -> None:
    """Alice's item fails validation: the team, the manager and the user map naming her say nothing more;
    the item after hers keeps its place (its manager typo is reported at its own line)."""
    found = problems(tmp_path, {"p.yaml": PROVIDER,
                                "m.yaml": "members:\n  - email: Alice@acme.io\n    active: maybe\n"
                                          "  - email: bob@acme.io\n    manager: alice@acme.io\n"
                                          "  - email: carol@acme.io\n    manager: bobb@acme.io\n",
                                "t.yaml": "teams:\n  - name: appsec\n    members: [alice@acme.io, bob@acme.io]\n",
                                "u.yaml": "user_maps:\n  - member: alice@acme.io\n    identities: {jenkins: alice}\n"
                                          "fallback_users:\n  - system: jenkins\n    member: alice@acme.io\n"})
    assert found == [
        "m.yaml:3:13: 'active': expected true/false, not text 'maybe'",
        "m.yaml:7:14: member 'carol@acme.io' names unknown manager 'bobb@acme.io' (did you mean 'bob@acme.io'?)",
    ]


def test_a_dropped_team_provider_or_connection_is_not_reported_unknown(tmp_path: Path) -> None:
    conn = ("connections:\n  - name: acme-cloud\n    type: jira-cloud\n    site_url: https://acme.atlassian.net\n"
            "    email: integration@acme.io\n    api_token: ${env:JIRA_TOKEN}\n    timeout: -1\n")
    integration = ("integrations:\n  - name: web\n    program: acme-web\n    connection: acme-cloud\n"
                   "    project: SEC\n    issue_type: Bug\n    team_roles: {appsec: Developers, qa: Developers}\n")
    found = problems(tmp_path, {"p.yaml": PROVIDER.replace("base_url: http://127.0.0.1:1/v2", "base_url: ftp://x"),
                                "m.yaml": "members:\n  - email: a@acme.io\n    providers: [platform]\n",
                                "t.yaml": "teams:\n  - name: appsec\n    colour: red\n",
                                "c.yaml": conn, "i.yaml": integration})
    assert [p.split(": ", 1)[0] for p in found] == ["c.yaml:7:14", "i.yaml:7:38", "p.yaml:4:15", "t.yaml:3:5"]
    assert "unknown team 'qa'" in found[1], found


def test_a_misspelt_kind_does_not_make_its_items_unknown(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": "memebrs:\n  - email: bob@acme.io\n",
                                "t.yaml": "teams:\n  - name: appsec\n    members: [bob@acme.io]\n"})
    assert found == ["m.yaml:1:1: unknown key 'memebrs' (did you mean 'members'?)"]


def test_a_file_that_is_not_yaml_stops_before_the_cross_checks(tmp_path: Path) -> None:
    """What a broken file declares is unknown: every team member would be 'unknown'."""
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": "members:\n  - email: [bob@acme.io\n",
                                "t.yaml": "teams:\n  - name: appsec\n    members: [bob@acme.io]\n"})
    assert found and all(p.startswith("m.yaml:") for p in found), found

# --- YAML itself --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    pytest.param(b"members:\n  - email: a@b.io\n   x: [\n",
                 "m.yaml:3:4: invalid YAML: did not find expected '-' indicator", id="bad yaml"),
    pytest.param(b"members: []\nmembers: []\n", 'm.yaml:2:1: invalid YAML: duplicate key "members"', id="dup key"),
    pytest.param(b"members:\n  - email: a@acme.io\n    attributes:\n      nickName: x\n      nickName: y\n",
                 'm.yaml:5:7: invalid YAML: duplicate key "nickName" (first at line 4)', id="dup key in an item"),
    pytest.param(b"members:\n  - email: a@acme.io\n  - email: b@acme.io\n    attributes:\n      nickName: [x]\n",
                 "m.yaml:5:17: ", id="a value deep in an item"),
    pytest.param(b"members:\n  - email: caf\xe9@x.io\n",
                 "m.yaml:2:15: byte 0xe9 is not valid UTF-8; config files must be UTF-8", id="non-utf8"),
    pytest.param(b"members: !!python/object:os.system {}\n",
                 "m.yaml:1:10: YAML tag !!python/object:os.system is not allowed in config files", id="python tag"),
    pytest.param(b"members:\n  - !!python/object/apply:os.system [ls]\n",
                 "m.yaml:2:5: YAML tag !!python/object/apply:os.system is not allowed", id="python apply tag"),
    pytest.param(b"members:\n  - email: !Ref x\n", "m.yaml:2:12: YAML tag !Ref is not allowed in config files",
                 id="local tag"),
    pytest.param(b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
                 "YAML aliases of mappings or lists are not allowed in config files", id="alias bomb"),
    pytest.param(b"members: " + b"[" * 100 + b"]" * 100 + b"\n", "m.yaml:1:74: nesting is deeper than 64 levels",
                 id="deep nesting"),
    pytest.param(b"members:\n  - email: a@acme.io\n    title: 2024-01-01\n",
                 "m.yaml:3:12: values of type date are not allowed here; quote it to make it text", id="timestamp"),
])
def test_yaml_errors(tmp_path: Path, raw: bytes, expected: str) -> None:
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": raw})
    assert any(expected in p for p in found), found
    assert all(p.startswith("m.yaml:") for p in found)


def test_explicit_core_tags_are_fine(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PROVIDER)
    (tmp_path / "m.yaml").write_text("members:\n  - email: a@acme.io\n    employee_number: !!str 1001\n")
    assert load_config(tmp_path).members[0].employee_number == "1001"


def test_oversize_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlpos, "MAX_FILE_BYTES", 1000)
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": "members: []\n" + "#" * 2000 + "\n"})
    assert found == ["m.yaml:1:1: file is 2,013 bytes; config files may be at most 1,000 bytes"]


def test_too_many_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlpos, "MAX_NODES", 50)
    found = problems(tmp_path, {"p.yaml": PROVIDER, "m.yaml": "members:\n" + "  - email: a@acme.io\n" * 60})
    assert any("m.yaml:" in p and "file has more than 50 values" in p for p in found), found


def test_empty_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no .yaml or .yml files in this directory"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="no such file or directory"):
        load_config(tmp_path / "nope")


# --- secrets --------------------------------------------------------------------------------------

def test_missing_env_var_names_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCIM_TOKEN", raising=False)
    (tmp_path / "p.yaml").write_text(PROVIDER)
    config = load_config(tmp_path)
    with pytest.raises(SecretError) as info:
        connect(config.providers[0])
    # the error starts at the reference itself: p.yaml line 7, column 14 (the value of token:)
    assert str(info.value) == (f"{tmp_path / 'p.yaml'}:7:14: providers.platform.auth.token: "
                               "environment variable SCIM_TOKEN is not set")


def test_empty_env_var_is_not_a_blank_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "")
    (tmp_path / "p.yaml").write_text(PROVIDER)
    with pytest.raises(SecretError, match="providers.platform.auth.token: environment variable SCIM_TOKEN is empty"):
        connect(load_config(tmp_path).providers[0])


def test_file_reference_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PROVIDER.replace("${env:SCIM_TOKEN}", "${file:token.txt}"))
    config = load_config(tmp_path)
    with pytest.raises(SecretError, match=r"providers.platform.auth.token: cannot read secret file .*token.txt"):
        connect(config.providers[0], base_dir=str(tmp_path))
    (tmp_path / "token.txt").write_text("file-token-123\n")
    client = connect(config.providers[0], base_dir=str(tmp_path))
    client.close()


def test_the_file_limit_holds_a_hundred_thousand_members(tmp_path: Path) -> None:
    """The size gate is for hostile files, not large orgs: 100,000 members with a name, a title and a
    department each (as bench/ writes them, about 11 MB in one file) pass it."""
    line = ("  - email: member-{i:06d}@acme.io\n    given_name: Given{i}\n    family_name: Family{i}\n"
            "    title: Senior Application Security Engineer\n    department: Product Security {d}\n")
    path = tmp_path / "members.yaml"
    with path.open("w") as fh:
        fh.write("members:\n")
        for i in range(100_000):
            fh.write(line.format(i=i, d=i % 50))
    assert path.stat().st_size > 10_000_000
    assert len(yamlpos.read(path, "members.yaml")) == path.stat().st_size


def test_members_declaring_the_same_fields_share_one_set_of_them(tmp_path: Path) -> None:
    """Loading shares one frozen set of declared fields between the items that declare the same; what the
    plan reads of it (which fields a member declares) is each member's own, and an item cannot gain a field."""
    (tmp_path / "c.yaml").write_text(PROVIDER + "members:\n  - email: a@acme.io\n    title: Eng\n"
                                     "  - email: b@acme.io\n    title: Ops\n  - email: c@acme.io\n")
    a, b, c = load_config(tmp_path).members
    assert a.model_fields_set is b.model_fields_set == {"email", "title"}
    assert c.model_fields_set == {"email"} and "title" not in c.model_fields_set
    with pytest.raises(AttributeError):
        a.model_fields_set.add("department")
    copied = a.model_copy(update={"department": "Sec"})  # a copy gets a set of its own
    assert copied.model_fields_set == {"email", "title", "department"} and a.model_fields_set == {"email", "title"}
    b.protect = True  # an assigned field is the item's own: b leaves the shared set, a keeps it
    assert b.protect and b.model_fields_set == {"email", "title", "protect"}
    assert a.model_fields_set == {"email", "title"}


def test_changes_share_their_fields_set_and_copy_apart() -> None:
    import copy

    from reconciler.plan.model import Action, Change

    c = Change("p", "user", "a", Action.CREATE, 'scim.p.user["a"]', after={"x": 1})
    d = Change("p", "user", "b", Action.CREATE, 'scim.p.user["b"]', after={"x": 2})
    assert c.model_fields_set is d.model_fields_set
    e = c.model_copy(update={"depends_on": ('scim.p.user["b"]',)})
    assert e.depends_on == ('scim.p.user["b"]',) and c.depends_on == () and copy.deepcopy(c) == c
