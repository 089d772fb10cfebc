"""The core loop against a real scim2-server on 127.0.0.1: plan, apply, drift, removal, safety, targeting."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from reconciler.apply import apply_plan
from reconciler.cli import main
from reconciler.config.loader import load_config
from reconciler.errors import UnsafePlanError
from reconciler.plan.model import Action, Plan
from reconciler.providers import _http
from reconciler.providers.scim import ENTERPRISE
from reconciler.session import Session
from tests.servers import ScimServer, free_port, scim_server

pytestmark = pytest.mark.integration
WriteConfig = Callable[..., Path]


def plan_of(cfg: Path, **kw: Any) -> Plan:
    with Session(load_config(cfg)) as s:
        return s.plan(**kw)


def converge(cfg: Path, **kw: Any) -> Plan:
    with Session(load_config(cfg)) as s:
        plan = s.plan(**kw)
        result = apply_plan(s, plan)
        assert result.failures == {}
    return plan


def actions(plan: Plan) -> list[tuple[str, Action]]:
    return [(c.address, c.action) for c in plan.changes]


def users(scim: ScimServer) -> dict[str, dict[str, Any]]:
    with scim.client() as c:
        return {u["userName"]: u for u in c.get("Users", params={"count": "1000"}).json().get("Resources", [])}


def groups(scim: ScimServer) -> dict[str, dict[str, Any]]:
    with scim.client() as c:
        return {g["displayName"]: g for g in c.get("Groups", params={"count": "1000"}).json().get("Resources", [])}


def member_names(scim: ScimServer, team: str) -> set[str]:
    ids = {u["id"]: name for name, u in users(scim).items()}
    return {ids.get(m["value"], m["value"]) for m in groups(scim)[team].get("members") or []}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


PEOPLE: list[dict[str, Any]] = [
    {"email": "ceo@acme.io", "given_name": "Cleo", "family_name": "Ortiz", "title": "CEO", "roles": ["admin"],
     "department": "Board", "employee_number": "1", "cost_center": "CC-1", "organization": "Acme",
     "division": "HQ", "external_id": "HR-1"},
    {"email": "cto@acme.io", "given_name": "Tom", "manager": "ceo@acme.io", "roles": ["admin", "auditor"]},
    {"email": "lead@acme.io", "display_name": "Lee Lead", "manager": "cto@acme.io", "department": "AppSec"},
    {"email": "dev@acme.io", "manager": "lead@acme.io", "attributes": {"nickName": "dev", "userType": "Employee"}},
]


def test_plan_apply_plan_with_enterprise_attributes_roles_and_a_manager_chain(scim: ScimServer,
                                                                              write_config: WriteConfig) -> None:
    cfg = write_config(scim.base_url, members=PEOPLE,
                       teams=[{"name": "appsec", "members": ["lead@acme.io", "dev@acme.io"]}])
    first = converge(cfg)
    assert sorted(a for _, a in actions(first)) == [Action.CREATE] * 5
    assert plan_of(cfg).changes == []
    live = users(scim)
    ceo, cto, lead, dev = (live[p["email"]] for p in PEOPLE)
    assert ceo["externalId"] == "reconciler:HR-1" and ceo["title"] == "CEO"
    assert ceo[ENTERPRISE] == {"department": "Board", "employeeNumber": "1", "costCenter": "CC-1",
                               "organization": "Acme", "division": "HQ"}
    assert sorted(r["value"] for r in cto["roles"]) == ["admin", "auditor"]
    assert cto[ENTERPRISE]["manager"]["value"] == ceo["id"]
    assert lead[ENTERPRISE]["manager"]["value"] == cto["id"]
    assert dev[ENTERPRISE]["manager"]["value"] == lead["id"]
    assert dev["nickName"] == "dev" and dev["userType"] == "Employee"
    assert member_names(scim, "appsec") == {"lead@acme.io", "dev@acme.io"}


def test_drift_on_the_server_is_planned_back_and_fixed(scim: ScimServer, write_config: WriteConfig) -> None:
    cfg = write_config(scim.base_url, members=PEOPLE[:3], teams=[{"name": "leads", "members": ["cto@acme.io"]}])
    converge(cfg)
    live = users(scim)
    with scim.client() as c:
        ops = [{"op": "replace", "path": "title", "value": "Intern"},
               {"op": "replace", "path": "roles", "value": [{"value": "viewer"}]},
               {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Nowhere"},
               {"op": "replace", "path": "active", "value": False}]
        c.patch(f"Users/{live['ceo@acme.io']['id']}",
                json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}
                ).raise_for_status()
        c.patch(f"Users/{live['cto@acme.io']['id']}", json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": f"{ENTERPRISE}:manager"}]}).raise_for_status()
        group = groups(scim)["leads"]
        c.patch(f"Groups/{group['id']}", json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": live["lead@acme.io"]["id"]}]}]}
        ).raise_for_status()
    drift = plan_of(cfg)
    by_addr = {c.address: {d.path: (d.before, d.after) for d in c.diff} for c in drift.changes}
    assert by_addr['scim.platform.user["ceo@acme.io"]'] == {
        "active": (False, True), "title": ("Intern", "CEO"), "roles": (["viewer"], ["admin"]),
        "enterprise:department": ("Nowhere", "Board")}
    assert by_addr['scim.platform.user["cto@acme.io"]'] == {"enterprise:manager": (None, "ceo@acme.io")}
    assert by_addr['scim.platform.group["leads"]'] == {
        "members": (["cto@acme.io", "lead@acme.io"], ["cto@acme.io"])}
    converge(cfg)
    assert plan_of(cfg).changes == []
    assert member_names(scim, "leads") == {"cto@acme.io"}


def test_removed_member_is_deactivated_not_deleted(scim: ScimServer, write_config: WriteConfig) -> None:
    everyone = ["a@acme.io", "b@acme.io", "c@acme.io"]
    converge(write_config(scim.base_url, members=everyone, teams=[{"name": "t", "members": everyone}]))
    cfg = write_config(scim.base_url, members=everyone[:2], teams=[{"name": "t", "members": everyone[:2]}])
    plan = plan_of(cfg)
    assert actions(plan) == [('scim.platform.group["t"]', Action.UPDATE),
                             ('scim.platform.user["c@acme.io"]', Action.DEACTIVATE)]
    converge(cfg)
    live = users(scim)
    assert set(live) == set(everyone), "a removed member was deleted"
    assert live["c@acme.io"]["active"] is False
    assert member_names(scim, "t") == {"a@acme.io", "b@acme.io"}
    assert plan_of(cfg).changes == []


def test_removal_delete_when_configured(scim: ScimServer, write_config: WriteConfig) -> None:
    converge(write_config(scim.base_url, members=["a@acme.io", "b@acme.io"]))
    cfg = write_config(scim.base_url, members=["a@acme.io"], removal="delete")
    assert actions(converge(cfg)) == [('scim.platform.user["b@acme.io"]', Action.DELETE)]
    assert set(users(scim)) == {"a@acme.io"}


def test_hand_made_accounts_are_left_alone_unless_authoritative(scim: ScimServer,
                                                                write_config: WriteConfig) -> None:
    with scim.client() as c:
        c.post("Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                              "userName": "robot@acme.io"}).raise_for_status()
        c.post("Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                               "displayName": "hand-made"}).raise_for_status()
    cfg = write_config(scim.base_url, members=["a@acme.io"])
    converge(cfg)
    assert plan_of(cfg).changes == []
    assert users(scim)["robot@acme.io"].get("active", True) is True
    auth = write_config(scim.base_url, members=["a@acme.io"], authoritative=True, folder="auth")
    assert actions(converge(auth)) == [('scim.platform.group["hand-made"]', Action.DELETE),
                                       ('scim.platform.user["robot@acme.io"]', Action.DEACTIVATE)]
    assert users(scim)["robot@acme.io"]["active"] is False and "hand-made" not in groups(scim)


def test_membership_add_and_remove(scim: ScimServer, write_config: WriteConfig) -> None:
    people = ["a@acme.io", "b@acme.io", "c@acme.io"]
    converge(write_config(scim.base_url, members=people, teams=[{"name": "t", "members": people[:2]}]))
    cfg = write_config(scim.base_url, members=people, teams=[{"name": "t", "members": people[1:]}])
    plan = plan_of(cfg)
    assert [(d.before, d.after) for d in plan.changes[0].diff] == [(people[:2], people[1:])]
    converge(cfg)
    assert member_names(scim, "t") == set(people[1:])
    assert plan_of(cfg).changes == []


def test_adopted_hand_made_user_gets_the_mark(scim: ScimServer, write_config: WriteConfig) -> None:
    with scim.client() as c:
        c.post("Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                              "userName": "Alice@Acme.io", "name": {"givenName": "Al"}}).raise_for_status()
    cfg = write_config(scim.base_url, members=[{"email": "alice@acme.io", "given_name": "Alice"}])
    assert actions(converge(cfg)) == [('scim.platform.user["alice@acme.io"]', Action.UPDATE)]
    alice = users(scim)
    assert len(alice) == 1
    assert next(iter(alice.values()))["externalId"] == "reconciler:alice@acme.io"
    # now managed: removing it from the config deactivates it
    gone = write_config(scim.base_url, members=[], folder="gone")
    assert actions(plan_of(gone)) == [('scim.platform.user["alice@acme.io"]', Action.DEACTIVATE)]


# --- safety -----------------------------------------------------------------------------------------

def test_removal_threshold_refuses_with_numbers_and_allow_removals_proceeds(scim: ScimServer,
                                                                            write_config: WriteConfig) -> None:
    people = [f"p{i}@acme.io" for i in range(10)]
    converge(write_config(scim.base_url, members=people))
    cfg = write_config(scim.base_url, members=people[:3], folder="fewer")
    with pytest.raises(UnsafePlanError) as info:
        plan_of(cfg)
    assert str(info.value).splitlines()[0] == (
        "refusing to plan for provider 'platform': it would remove (deactivate or delete) 7 of 10 managed objects "
        "(70.0%), over the 20% threshold (max_removal_percent); pass --allow-removals=7 to proceed")
    refused = run("apply", str(cfg), "--auto-approve", "--audit-log", str(cfg.parent / "audit.jsonl"))
    assert refused.exit_code == 1 and "pass --allow-removals=7 to proceed" in refused.stderr
    assert all(u.get("active", True) for u in users(scim).values())
    too_few = run("apply", str(cfg), "--auto-approve", "--allow-removals=6", "--audit-log",
                  str(cfg.parent / "audit.jsonl"))
    assert too_few.exit_code == 1
    ok = run("apply", str(cfg), "--auto-approve", "--allow-removals=7", "--audit-log",
             str(cfg.parent / "audit.jsonl"))
    assert ok.exit_code == 0, ok.output
    assert "Apply complete: 0 created, 0 updated, 7 deactivated, 0 deleted." in ok.stdout
    assert sum(1 for u in users(scim).values() if u.get("active") is False) == 7


def test_absolute_threshold(scim: ScimServer, write_config: WriteConfig) -> None:
    converge(write_config(scim.base_url, members=["a@acme.io", "b@acme.io", "c@acme.io"]))
    cfg = write_config(scim.base_url, members=["a@acme.io"], max_removals=1, folder="fewer")
    with pytest.raises(UnsafePlanError, match=r"2 of 3 managed objects \(66.7%\), over the limit of 1 "
                                              r"\(max_removals\); pass --allow-removals=2"):
        plan_of(cfg)


def test_protect_blocks_removal(scim: ScimServer, write_config: WriteConfig) -> None:
    converge(write_config(scim.base_url, members=["a@acme.io", "keep@acme.io"]))
    cfg = write_config(scim.base_url, members=["a@acme.io"], protect=["keep@acme.io"], folder="p")
    plan = plan_of(cfg)
    assert plan.changes == [] and plan.protected == ['scim.platform.user["keep@acme.io"]']
    assert "is protected: not removed" in run("plan", str(cfg)).stdout


# --- targeting --------------------------------------------------------------------------------------

def test_target_creates_one_member_and_its_team_membership_only(scim: ScimServer,
                                                                 write_config: WriteConfig) -> None:
    converge(write_config(scim.base_url, members=["a@acme.io"], teams=[{"name": "t", "members": ["a@acme.io"]}]))
    cfg = write_config(scim.base_url, members=["a@acme.io", "b@acme.io", "c@acme.io"],
                       teams=[{"name": "t", "members": ["a@acme.io", "b@acme.io", "c@acme.io"]},
                              {"name": "other", "members": ["b@acme.io"]}], folder="more")
    target = 'scim.platform.user["b@acme.io"]'
    planned = plan_of(cfg, targets=[target])
    assert actions(planned) == [('scim.platform.group["other"]', Action.CREATE),
                                ('scim.platform.group["t"]', Action.UPDATE), (target, Action.CREATE)]
    result = run("apply", str(cfg), "--target", target, "--auto-approve", "--audit-log", str(cfg / "a.jsonl"))
    assert result.exit_code == 0, result.output
    assert set(users(scim)) == {"a@acme.io", "b@acme.io"}
    assert member_names(scim, "t") == {"a@acme.io", "b@acme.io"}
    assert member_names(scim, "other") == {"b@acme.io"}
    assert actions(plan_of(cfg)) == [('scim.platform.group["t"]', Action.UPDATE),
                                     ('scim.platform.user["c@acme.io"]', Action.CREATE)]


def test_target_that_is_not_an_address(scim: ScimServer, write_config: WriteConfig) -> None:
    cfg = write_config(scim.base_url, members=["a@acme.io"])
    result = run("plan", str(cfg), "--target", "alice")
    assert result.exit_code == 1 and "is not an address" in result.stderr
    result = run("plan", str(cfg), "--target", 'scim.platform.user["nobody@acme.io"]')
    assert result.exit_code == 1 and "no member 'nobody@acme.io' in the config" in result.stderr


# --- errors through the CLI -----------------------------------------------------------------------

@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries still happen (five attempts); only the waits between them are skipped."""
    monkeypatch.setattr(_http, "retry_delay", lambda *a, **k: 0.0)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_wrong_token(scim: ScimServer, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch,
                     command: str) -> None:
    cfg = write_config(scim.base_url, members=["a@acme.io"])
    monkeypatch.setenv("SCIM_TOKEN", "not-the-token")
    line = one_line_error(run(command, str(cfg), "--auto-approve") if command == "apply" else run(command, str(cfg)))
    assert line.startswith("error: authentication failed: the credentials were refused (GET ")
    assert "HTTP 401" in line and "not-the-token" not in line


def test_unreachable_url(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, no_backoff: None) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "t0ken-value")
    port = free_port()  # nothing listens there
    cfg = write_config(f"http://127.0.0.1:{port}/v2", members=["a@acme.io"])
    line = one_line_error(run("plan", str(cfg)))
    assert line == (f"error: cannot reach platform: connection refused (GET http://127.0.0.1:{port}/v2/"
                    "ServiceProviderConfig): after 5 attempts")


def test_server_error(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, no_backoff: None) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "t0ken-value")
    base = "http://127.0.0.1:9/v2"
    cfg = write_config(base, members=["a@acme.io"])
    with respx.mock(base_url=base, assert_all_called=True) as router:
        router.get("/ServiceProviderConfig").mock(return_value=httpx.Response(404))
        users_route = router.get("/Users").mock(return_value=httpx.Response(
            500, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "500",
                       "detail": "internal failure\nat line 3"}))
        line = one_line_error(run("plan", str(cfg)))
    # the first list call is answered without `count` after its 500 (a server that cannot take count),
    # and that one is retried: 1 + 5 calls
    assert users_route.call_count == 6
    assert users_route.calls[0].request.url.params.get("count") == "100"
    assert all("count" not in c.request.url.params for c in users_route.calls[1:])
    assert line == "error: cannot list Users (GET http://127.0.0.1:9/v2/Users -> HTTP 500): internal failure at line 3"


def test_missing_secret_names_the_field(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config("http://127.0.0.1:9/v2", members=["a@acme.io"])
    monkeypatch.delenv("SCIM_TOKEN", raising=False)
    assert one_line_error(run("plan", str(cfg))) == (  # line 7, column 12: the value of token:
        f"error: {cfg / 'providers.yaml'}:7:12: providers.platform.auth.token: "
        "environment variable SCIM_TOKEN is not set")


# --- team permissions through a SCIM extension ---------------------------------------------------

EXT = "urn:acme:params:scim:schemas:extension:platform:2.0:Group"


def _multi(name: str) -> dict[str, Any]:
    return {"name": name, "type": "complex", "multiValued": True, "required": False, "mutability": "readWrite",
            "returned": "default", "uniqueness": "none", "caseExact": False,
            "subAttributes": [{"name": "value", "type": "string", "multiValued": False, "required": False,
                               "caseExact": True, "mutability": "readWrite", "returned": "default",
                               "uniqueness": "none"}]}


@pytest.fixture(scope="module")
def scim_with_extension(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """scim2-server serving the RFC 7643 schemas plus a Group extension for description and permissions."""
    import scim2_server

    resources = Path(scim2_server.__file__).parent / "resources"
    tmp = tmp_path_factory.mktemp("scim-ext")
    schemas = json.loads((resources / "default-schemas.json").read_text())
    schemas.append({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": EXT, "name": "PlatformGroup",
                    "description": "Team permissions on the platform",
                    "attributes": [{"name": "description", "type": "string", "multiValued": False,
                                    "required": False, "caseExact": False, "mutability": "readWrite",
                                    "returned": "default", "uniqueness": "none"},
                                   _multi("roles"), _multi("collections")],
                    "meta": {"resourceType": "Schema", "location": f"/v2/Schemas/{EXT}"}})
    types = json.loads((resources / "default-resource-types.json").read_text())
    for t in types:
        if t["id"] == "Group":
            t["schemaExtensions"] = [{"schema": EXT, "required": False}]
    (tmp / "schemas.json").write_text(json.dumps(schemas))
    (tmp / "types.json").write_text(json.dumps(types))
    with scim_server(tmp, extra_args=["--schema", str(tmp / "schemas.json"),
                                      "--resource-type", str(tmp / "types.json")]) as server:
        yield server


def test_team_permissions_are_managed_where_the_provider_has_an_extension(
        scim_with_extension: ScimServer, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    server = scim_with_extension
    server.reset()
    monkeypatch.setenv("SCIM_TOKEN", server.token)
    team_schema = {"urn": EXT, "description": "description", "roles": "roles", "collections": "collections"}
    team = {"name": "appsec", "description": "Triage findings", "members": ["a@acme.io"],
            "permissions": {"roles": ["scan-manager"], "collections": ["prod", "staging"]}}
    cfg = write_config(server.base_url, members=["a@acme.io"], teams=[team], team_schema=team_schema)
    plan = converge(cfg)
    assert plan.notes == []
    live = groups(server)["appsec"]
    assert live[EXT]["description"] == "Triage findings"
    assert sorted(r["value"] for r in live[EXT]["roles"]) == ["scan-manager"]
    assert sorted(r["value"] for r in live[EXT]["collections"]) == ["prod", "staging"]
    assert plan_of(cfg).changes == []
    changed = write_config(server.base_url, members=["a@acme.io"], team_schema=team_schema, folder="changed",
                           teams=[{**team, "permissions": {"roles": ["viewer"], "collections": ["prod"]}}])
    diff = {d.path: (d.before, d.after) for d in plan_of(changed).changes[0].diff}
    assert diff == {"permissions.roles": (["scan-manager"], ["viewer"]),
                    "permissions.collections": (["prod", "staging"], ["prod"])}
    converge(changed)
    assert plan_of(changed).changes == []
    assert [r["value"] for r in groups(server)["appsec"][EXT]["roles"]] == ["viewer"]


def test_team_permissions_are_noted_where_the_provider_cannot_express_them(scim: ScimServer,
                                                                          write_config: WriteConfig) -> None:
    team = {"name": "appsec", "description": "d", "permissions": {"roles": ["scan-manager"]}}
    plain = write_config(scim.base_url, teams=[team])
    notes = plan_of(plain).notes
    assert any("team permissions (roles, collections) are not managed on this provider" in n for n in notes)
    declared = write_config(scim.base_url, teams=[team], folder="declared",
                            team_schema={"urn": EXT, "roles": "roles"})
    plan = converge(declared)
    assert any(f"team_schema {EXT} is not advertised by /Schemas" in n for n in plan.notes)
    assert plan_of(declared).changes == []
    assert "is not advertised by /Schemas" in run("plan", str(declared)).stdout
