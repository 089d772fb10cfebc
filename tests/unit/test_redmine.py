"""The Redmine provider without a server: the wire protocol over respx, the differ over hand-made live state,
and the config rules. End-to-end behaviour is in tests/integration/test_redmine.py (a real Redmine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from reconciler.config.loader import load_config
from reconciler.config.models import Config
from reconciler.errors import AuthError, ConfigError, ConflictError, PlanError, ServerError
from reconciler.plan.model import Action, RedmineGroup
from reconciler.providers._http import Http, build_client
from reconciler.providers.redmine import (
    LiveState,
    RedmineApiKey,
    RedmineClient,
    parse_record,
    plan_connection,
    read_live,
    record_text,
    redmine_connections,
)
from tests.conftest import dump_yaml

BASE = "http://127.0.0.1:3999"


def client(page_size: int = 100) -> RedmineClient:
    http = Http(build_client(BASE, auth=RedmineApiKey("k" * 40), timeout=5), "redmine.t", attempts=3,
                sleep=lambda s: None)
    return RedmineClient(http, "t", page_size)


# --- the wire protocol --------------------------------------------------------------

@respx.mock(assert_all_called=True)
def test_paged_reads_follow_total_count_with_the_key_header(respx_mock: respx.MockRouter) -> None:
    users = [{"id": i, "login": f"u{i}"} for i in range(1, 251)]

    def page(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Redmine-API-Key"] == "k" * 40
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        assert limit == 100 and request.url.params["status"] == ""
        return httpx.Response(200, json={"users": users[offset:offset + limit], "total_count": 250,
                                         "offset": offset, "limit": limit})

    route = respx_mock.get(f"{BASE}/users.json").mock(side_effect=page)
    c = client()
    assert [u["id"] for u in c.users()] == list(range(1, 251))
    assert [call.request.url.params["offset"] for call in route.calls] == ["0", "100", "200"]


@respx.mock(assert_all_called=True)
def test_an_unpaged_list_is_read_in_one_call(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{BASE}/groups.json").respond(json={"groups": [{"id": 5, "name": "a"},
                                                                           {"id": 6, "name": "b"}]})
    assert [g["name"] for g in client().groups()] == ["a", "b"]
    assert route.call_count == 1


@respx.mock(assert_all_called=False)
def test_create_looks_up_first_and_adopts_what_exists(respx_mock: respx.MockRouter) -> None:
    post = respx_mock.post(f"{BASE}/users.json").respond(201, json={"user": {"id": 8}})
    found = client().create("users.json", {"user": {"login": "alice"}}, lambda: {"id": 7, "login": "alice"},
                            "cannot create user alice")
    assert found == {"id": 7, "login": "alice"}
    assert not post.called


@respx.mock(assert_all_called=True)
def test_a_duplicate_login_422_is_answered_by_a_second_lookup(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{BASE}/users.json").respond(422, json={"errors": ["Login has already been taken"]})
    answers: list[dict[str, Any] | None] = [None, {"id": 9, "login": "bob"}]
    got = client().create("users.json", {"user": {"login": "bob"}}, lambda: answers.pop(0), "cannot create user")
    assert got == {"id": 9, "login": "bob"}


@respx.mock(assert_all_called=True)
def test_a_422_that_is_not_a_duplicate_names_redmine_s_reasons(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{BASE}/users.json").respond(422, json={"errors": ["Email is invalid", "Lastname cannot be "
                                                                       "blank"]})
    with pytest.raises(ServerError) as exc:
        client().create("users.json", {"user": {"login": "x"}}, lambda: None, "cannot create user x")
    assert str(exc.value) == ("cannot create user x (POST http://127.0.0.1:3999/users.json -> HTTP 422): "
                              "Email is invalid; Lastname cannot be blank")
    respx_mock.put(f"{BASE}/groups/1.json").respond(422, json={"errors": ["Name has already been taken"]})
    with pytest.raises(ConflictError):
        client().write("PUT", "groups/1.json", {"group": {"name": "a"}}, "cannot rename group")


@respx.mock(assert_all_called=True)
def test_a_retried_create_never_duplicates(respx_mock: respx.MockRouter) -> None:
    """The first POST is lost (503); before retrying, the lookup finds what it created."""
    post = respx_mock.post(f"{BASE}/groups.json").respond(503)
    answers: list[dict[str, Any] | None] = [None, {"id": 3, "name": "appsec"}]
    got = client().create("groups.json", {"group": {"name": "appsec"}}, lambda: answers.pop(0), "cannot create")
    assert got == {"id": 3, "name": "appsec"}
    assert post.call_count == 1


@pytest.mark.parametrize(("status", "expected"), [
    (401, "redmine connection 't': the API key was refused; check api_key, and that the REST API is enabled"),
    (403, "redmine connection 't': the REST API refused the request; enable it"),
])
@respx.mock(assert_all_called=True)
def test_refused_credentials_say_what_to_fix(respx_mock: respx.MockRouter, status: int, expected: str) -> None:
    respx_mock.get(f"{BASE}/users/current.json").respond(status)
    with pytest.raises(AuthError) as exc:
        client().current_user()
    assert str(exc.value).startswith(expected)
    assert "k" * 40 not in str(exc.value)


@respx.mock(assert_all_called=True)
def test_a_key_that_is_not_an_administrator_s(respx_mock: respx.MockRouter, tmp_path: Path) -> None:
    respx_mock.get(f"{BASE}/users/current.json").respond(json={"user": {"id": 4, "login": "jdoe"}})
    respx_mock.get(f"{BASE}/users.json").respond(403)
    config = load(tmp_path)
    with pytest.raises(AuthError) as exc:
        read_live(client(), config, redmine_connections(config)[0])
    assert "needs an administrator's API key (the key belongs to 'jdoe')" in str(exc.value)


# --- the differ --------------------------------------------------------------------------

def load(tmp_path: Path, teams: list[dict[str, Any]] | None = None, integrations: list[dict[str, Any]] | None = None,
         **conn: Any) -> Config:
    d = tmp_path / "c"
    d.mkdir(exist_ok=True)
    doc = {
        "connections": [{"name": "t", "type": "redmine", "base_url": BASE, "api_key": "${env:RM_KEY}", **conn}],
        "members": [{"email": "alice@acme.io", "given_name": "Alice"}, {"email": "bob@acme.io"},
                    {"email": "dan@acme.io"}],
        "teams": teams if teams is not None else [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io",
                                                                                  "dan@acme.io"]}],
        "user_maps": [{"member": "alice@acme.io", "identities": {"t": "alice"}},
                      {"member": "bob@acme.io", "identities": {"t": "bob"}}],
    }
    if integrations:
        doc["integrations"] = integrations
    (d / "config.yaml").write_text(dump_yaml(doc))
    return load_config(d)


def live(**kw: Any) -> LiveState:
    base: dict[str, Any] = dict(
        me={"id": 1, "login": "admin", "admin": True},
        users=[{"id": 1, "login": "admin"}, {"id": 2, "login": "alice", "firstname": "Alice", "lastname": "-",
                                              "mail": "alice@acme.io"},
               {"id": 3, "login": "bob", "firstname": "bob", "lastname": "-", "mail": "bob@acme.io"},
               {"id": 4, "login": "zed", "firstname": "Zed", "lastname": "Z", "mail": "zed@acme.io"}],
        groups=[{"id": 10, "name": "appsec"}], group_users={10: [2, 4]},
        trackers=[{"id": 1, "name": "Bug"}], statuses=[{"id": 1, "name": "New"}],
        priorities=[{"id": 2, "name": "Normal"}],
        roles=[{"id": 3, "name": "Manager"}, {"id": 4, "name": "Developer"}],
        projects={}, memberships={}, records={})
    base.update(kw)
    return LiveState(**base)


def test_authoritative_members_remove_strays_and_additive_keep_them(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    p = plan_connection(cfg, redmine_connections(cfg)[0], live())
    assert [(c.address, c.action) for c in p.changes] == [('redmine.t.group["appsec"]', Action.UPDATE)]
    assert [(d.before, d.after) for d in p.changes[0].diff] == [(["alice", "zed"], ["alice", "bob"])]
    assert p.changes[0].payload == RedmineGroup(users={"alice": "2", "bob": "3", "zed": "4"})
    assert p.notes == ['redmine.t.group["appsec"]: 1 member(s) have no \'t\' login in user_maps and are left out '
                       'of the group: dan@acme.io']

    cfg = load(tmp_path, membership="additive")
    p = plan_connection(cfg, redmine_connections(cfg)[0], live())
    assert [(d.before, d.after) for d in p.changes[0].diff] == [(["alice", "zed"], ["alice", "bob", "zed"])]


def test_missing_users_are_created_unless_create_users_is_off(tmp_path: Path) -> None:
    users = [{"id": 1, "login": "admin"}]
    cfg = load(tmp_path)
    p = plan_connection(cfg, redmine_connections(cfg)[0], live(users=users, groups=[], group_users={}))
    assert sorted((c.address, c.action) for c in p.changes) == [
        ('redmine.t.group["appsec"]', Action.CREATE), ('redmine.t.user["alice"]', Action.CREATE),
        ('redmine.t.user["bob"]', Action.CREATE)]
    bob = next(c for c in p.changes if c.key == "bob")
    assert bob.after == {"login": "bob", "firstname": "bob", "lastname": "-", "mail": "bob@acme.io"}

    cfg = load(tmp_path, create_users=False)
    with pytest.raises(PlanError) as exc:
        plan_connection(cfg, redmine_connections(cfg)[0], live(users=users))
    assert "member alice@acme.io is mapped to Redmine login 'alice', which does not exist; create it in " \
           "Redmine or set create_users: true on connection 't'" in str(exc.value)


def test_a_mail_held_by_another_login_is_a_plan_error(tmp_path: Path) -> None:
    users = [{"id": 2, "login": "alice"}, {"id": 5, "login": "robert", "mail": "Bob@acme.io"}]
    cfg = load(tmp_path)
    with pytest.raises(PlanError) as exc:
        plan_connection(cfg, redmine_connections(cfg)[0], live(users=users))
    assert "Redmine user 'robert' already has that email; map bob@acme.io to 'robert' in user_maps" \
        in str(exc.value)


def test_inherited_roles_are_not_a_membership_s_own(tmp_path: Path) -> None:
    integ = [{"name": "sec", "program": "p", "connection": "t", "project": "sec", "issue_type": "bug",
              "team_roles": {"appsec": "developer"}, "role_membership": "authoritative", "test_issue": False}]
    cfg = load(tmp_path, integrations=integ)
    record = {"text": record_text("sec", {"program": "p", "project": "sec", "tracker": "Bug", "trigger": "manual",
                                          "priorities": {}, "statuses": {}, "comments": [],
                                          "template": ["references", "information", "researcher", "report"],
                                          "test_issue": False, "delete_test_issue": False,
                                          "grants": {"appsec": ["Developer"]}}, {})}
    memberships = [
        {"id": 1, "group": {"id": 10, "name": "appsec"}, "roles": [{"id": 4, "name": "Developer"}]},
        # alice's Developer comes through the group: not hers to remove
        {"id": 2, "user": {"id": 2, "name": "Alice"}, "roles": [{"id": 4, "name": "Developer", "inherited": True}]},
        {"id": 3, "user": {"id": 4, "name": "Zed Z"}, "roles": [{"id": 4, "name": "Developer"},
                                                                 {"id": 3, "name": "Manager"}]},
    ]
    state = live(group_users={10: [2, 3]}, projects={"sec": {"id": 1, "trackers": [{"id": 1, "name": "Bug"}]}},
                 memberships={"sec": memberships}, records={"sec": record})
    p = plan_connection(cfg, redmine_connections(cfg)[0], state)
    assert [(c.address, c.action, [(d.before, d.after) for d in c.diff]) for c in p.changes] == [
        ('redmine.t.membership["sec/user:zed"]', Action.UPDATE, [(["Developer", "Manager"], ["Manager"])])]


def test_record_pages_round_trip_and_tolerate_edits() -> None:
    text = record_text("x", {"tracker": "Bug"}, {"test_issue": 4})
    assert parse_record({"text": text}) == {"tracker": "Bug", "activation": {"test_issue": 4}}
    assert parse_record({"text": "someone rewrote the page"}) == {}
    assert parse_record({"text": text.replace("}", "")}) == {}
    assert parse_record(None) is None
    assert json.loads(text.split("<pre>")[1].split("</pre>")[0]) == {"tracker": "Bug", "activation": {"test_issue": 4}}


# --- config ---------------------------------------------------------------------------------

def config_errors(tmp_path: Path, conn: dict[str, Any], integration: dict[str, Any]) -> str:
    d = tmp_path / "e"
    d.mkdir(exist_ok=True)
    (d / "connections.yaml").write_text(dump_yaml({"connections": [conn]}))
    (d / "teams.yaml").write_text(dump_yaml({"teams": [{"name": "appsec"}]}))
    (d / "integrations.yaml").write_text(dump_yaml({"integrations": [integration]}))
    with pytest.raises(ConfigError) as exc:
        load_config(d)
    return str(exc.value)


REDMINE = {"name": "t", "type": "redmine", "base_url": BASE, "api_key": "${env:RM_KEY}"}
INTEGRATION = {"name": "sec", "program": "p", "connection": "t", "project": "sec", "issue_type": "Bug"}


def test_project_spelling_follows_the_connection_type(tmp_path: Path) -> None:
    text = config_errors(tmp_path, REDMINE, dict(INTEGRATION, project="SEC"))
    assert "integrations.yaml:5:12: 'project': 'SEC' is not a Redmine project identifier; an identifier is a " \
           "lower-case letter followed by lower-case letters, digits, - or _ (e.g. appsec-findings)" in text
    jira = {"name": "t", "type": "jira-datacenter", "base_url": "https://jira.acme.io", "token": "${env:T}"}
    assert "'sec' is not a Jira project key" in config_errors(tmp_path, jira, INTEGRATION)


def test_settings_redmine_has_no_place_for_are_located_errors(tmp_path: Path) -> None:
    text = config_errors(tmp_path, dict(REDMINE, teams=["appsek"]),
                         dict(INTEGRATION, resolutions={"duplicate": "Duplicate"},
                              webhook={"url": "https://platform.acme.io/hook"}))
    assert "connections.yaml:7:5: connection 't' lists unknown team 'appsek' (did you mean 'appsec'?)" in text
    assert "integration 'sec': Redmine has no resolutions; map closed reasons to statuses" in text
    assert "integration 'sec': Redmine has no webhooks" in text


def test_the_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "examples" / "redmine")
    (conn,) = redmine_connections(cfg)
    assert (conn.name, conn.membership, conn.authoritative) == ("tracker", "authoritative", False)
    assert [i.project for i in cfg.integrations] == ["appsec-findings"]
