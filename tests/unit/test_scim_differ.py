"""Table-driven tests of the SCIM differ (``plan_provider``): config + live state -> changes. No HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reconciler.config.models import Config, Member, ScimProvider, Team
from reconciler.errors import PlanError
from reconciler.plan.model import Action, Plan
from reconciler.providers.scim import ENTERPRISE, GROUP, USER, Capabilities, LiveState, plan_provider
from reconciler.render import RENDERERS

EXT = "urn:acme:params:scim:schemas:extension:platform:2.0:Group"


def provider(**kw: Any) -> ScimProvider:
    return ScimProvider.model_validate({"name": "platform", "type": "scim", "base_url": "http://127.0.0.1:1/v2",
                                        "auth": {"type": "bearer", "token": "${env:T}"}, **kw})


def config(members: list[dict[str, Any]] = (), teams: list[dict[str, Any]] = (),  # type: ignore[assignment]
           **provider_kw: Any) -> Config:
    p = provider(**provider_kw)
    return Config("<test>", [], [p], [Member.model_validate(m) for m in members],
                  [Team.model_validate(t) for t in teams], "digest")


def attrs(d: dict[str, Any]) -> dict[str, Any]:
    """Extra attributes for user() or group() under a schema URN key (typed loosely, as **kwargs are)."""
    return d


def user(uid: str, email: str, *, ext: str | None = "mark", active: bool = True, **attrs: Any) -> dict[str, Any]:
    """A live SCIM user. ext='mark' gives reconciler's ownership mark, None no externalId."""
    u: dict[str, Any] = {"schemas": [USER], "id": uid, "userName": email, "active": active,
                         "emails": [{"value": email, "type": "work", "primary": True}],
                         "meta": {"resourceType": "User", "version": f'W/"{uid}"'}}
    if ext == "mark":
        u["externalId"] = "reconciler:" + email.lower()
    elif ext is not None:
        u["externalId"] = ext
    u.update(attrs)
    return u


def group(gid: str, name: str, members: list[str] = (), *, ext: str | None = "mark",  # type: ignore[assignment]
          **attrs: Any) -> dict[str, Any]:
    g: dict[str, Any] = {"schemas": [GROUP], "id": gid, "displayName": name,
                         "members": [{"value": m} for m in members], "meta": {"resourceType": "Group"}}
    if ext == "mark":
        g["externalId"] = "reconciler:" + name
    elif ext is not None:
        g["externalId"] = ext
    g.update(attrs)
    return g


@dataclass
class Case:
    id: str
    config: Config
    live: LiveState
    expect: list[tuple[str, Action]]
    diff: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)  # address -> path -> (before, after)
    notes: list[str] = field(default_factory=list)  # substrings each expected in some note
    protected: list[str] = field(default_factory=list)
    schemas: dict[str, set[str]] | None = None


def U(email: str) -> str:
    return f'scim.platform.user["{email}"]'


def G(name: str) -> str:
    return f'scim.platform.group["{name}"]'


ALICE = {"email": "alice@acme.io"}
CASES = [
    Case("create user", config([ALICE]), LiveState(), [(U("alice@acme.io"), Action.CREATE)]),
    Case("in sync: no change", config([ALICE]), LiveState([user("1", "alice@acme.io")]), []),
    Case("userName matched case-insensitively", config([{"email": "Alice@Acme.io"}]),
         LiveState([user("1", "alice@acme.io")]), []),
    Case("update a core attribute", config([{**ALICE, "given_name": "Alice"}]),
         LiveState([user("1", "alice@acme.io", name={"givenName": "Al"})]),
         [(U("alice@acme.io"), Action.UPDATE)], {U("alice@acme.io"): {"name.givenName": ("Al", "Alice")}}),
    Case("update displayName and title", config([{**ALICE, "display_name": "Alice A", "title": "Lead"}]),
         LiveState([user("1", "alice@acme.io", displayName="A")]),
         [(U("alice@acme.io"), Action.UPDATE)],
         {U("alice@acme.io"): {"displayName": ("A", "Alice A"), "title": (None, "Lead")}}),
    Case("update an enterprise attribute", config([{**ALICE, "department": "AppSec", "employee_number": "7"}]),
         LiveState([user("1", "alice@acme.io", **attrs({ENTERPRISE: {"department": "Ops", "employeeNumber": "7"}}))]),
         [(U("alice@acme.io"), Action.UPDATE)], {U("alice@acme.io"): {"enterprise:department": ("Ops", "AppSec")}}),
    Case("update roles (order does not matter)", config([{**ALICE, "roles": ["b", "a", "c"]}]),
         LiveState([user("1", "alice@acme.io", roles=[{"value": "a"}, {"value": "b"}])]),
         [(U("alice@acme.io"), Action.UPDATE)], {U("alice@acme.io"): {"roles": (["a", "b"], ["a", "b", "c"])}}),
    Case("roles in another order: no change", config([{**ALICE, "roles": ["b", "a"]}]),
         LiveState([user("1", "alice@acme.io", roles=[{"value": "a"}, {"value": "b"}])]), []),
    Case("manager by member reference", config([ALICE, {"email": "bob@acme.io", "manager": "alice@acme.io"}]),
         LiveState([user("1", "alice@acme.io"), user("2", "bob@acme.io")]),
         [(U("bob@acme.io"), Action.UPDATE)], {U("bob@acme.io"): {"enterprise:manager": (None, "alice@acme.io")}}),
    Case("manager already set: no change", config([ALICE, {"email": "bob@acme.io", "manager": "alice@acme.io"}]),
         LiveState([user("1", "alice@acme.io"),
                    user("2", "bob@acme.io", **attrs({ENTERPRISE: {"manager": {"value": "1"}}}))]),
         []),
    Case("extra attribute by name", config([{**ALICE, "attributes": {"nickName": "ali", "locale": "en"}}]),
         LiveState([user("1", "alice@acme.io", nickName="al", locale="en")]),
         [(U("alice@acme.io"), Action.UPDATE)], {U("alice@acme.io"): {"nickName": ("al", "ali")}}),
    Case("extra attribute in sync: no change", config([{**ALICE, "attributes": {"nickName": "ali"}}]),
         LiveState([user("1", "alice@acme.io", nickName="ali")]), []),
    Case("extra attribute by URN path",
         config([{**ALICE, "attributes": {f"{ENTERPRISE}:costCenter": "42"}}]),
         LiveState([user("1", "alice@acme.io", **attrs({ENTERPRISE: {"costCenter": "41"}}))]),
         [(U("alice@acme.io"), Action.UPDATE)], {U("alice@acme.io"): {f"{ENTERPRISE}:costCenter": ("41", "42")}}),
    Case("adopt a hand-made user: set the mark", config([{**ALICE, "given_name": "Alice"}]),
         LiveState([user("1", "alice@acme.io", ext=None, name={"givenName": "Alice"})]),
         [(U("alice@acme.io"), Action.UPDATE)],
         {U("alice@acme.io"): {"externalId": (None, "reconciler:alice@acme.io")}}),
    Case("external_id goes after the prefix", config([{**ALICE, "external_id": "HR-1"}]),
         LiveState([user("1", "alice@acme.io", ext="reconciler:HR-1")]), []),
    Case("renamed person matched by external id", config([{"email": "alice.archer@acme.io", "external_id": "HR-1"}]),
         LiveState([user("1", "alice@acme.io", ext="reconciler:HR-1")]),
         [(U("alice.archer@acme.io"), Action.UPDATE)],
         {U("alice.archer@acme.io"): {"userName": ("alice@acme.io", "alice.archer@acme.io")}}),
    Case("unset is not empty", config([ALICE]),
         LiveState([user("1", "alice@acme.io", name={"givenName": "Al"}, title="CTO", roles=[{"value": "x"}],
                         **attrs({ENTERPRISE: {"department": "Ops", "manager": {"value": "9"}}}))]), []),
    Case("explicit null clears an attribute", config([{**ALICE, "title": None}]),
         LiveState([user("1", "alice@acme.io", title="CTO")]),
         [(U("alice@acme.io"), Action.UPDATE)], {U("alice@acme.io"): {"title": ("CTO", None)}}),
    Case("declared inactive: deactivate", config([{**ALICE, "active": False}]),
         LiveState([user("1", "alice@acme.io")]),
         [(U("alice@acme.io"), Action.DEACTIVATE)], {U("alice@acme.io"): {"active": (True, False)}}),
    Case("inactive and absent: not created", config([{**ALICE, "active": False}]), LiveState(), [],
         notes=["declared inactive and not on the provider; not created"]),
    Case("reactivate", config([ALICE]), LiveState([user("1", "alice@acme.io", active=False)]),
         [(U("alice@acme.io"), Action.UPDATE)], {U("alice@acme.io"): {"active": (False, True)}}),
    Case("removed managed member: deactivated", config([]), LiveState([user("1", "gone@acme.io")]),
         [(U("gone@acme.io"), Action.DEACTIVATE)], {U("gone@acme.io"): {"active": (True, False)}}),
    Case("removed and already inactive: nothing", config([]),
         LiveState([user("1", "gone@acme.io", active=False)]), []),
    Case("hand-made unmanaged user left alone", config([]), LiveState([user("1", "ops@acme.io", ext=None)]), []),
    Case("foreign externalId left alone", config([]), LiveState([user("1", "ops@acme.io", ext="okta:123")]), []),
    Case("authoritative removes unmanaged", config([], authoritative=True),
         LiveState([user("1", "ops@acme.io", ext=None)]), [(U("ops@acme.io"), Action.DEACTIVATE)]),
    Case("removal: delete", config([], removal="delete"), LiveState([user("1", "gone@acme.io", active=False)]),
         [(U("gone@acme.io"), Action.DELETE)]),
    Case("provider protect list", config([], protect=["Gone@acme.io"]), LiveState([user("1", "gone@acme.io")]),
         [], protected=[U("gone@acme.io")]),
    Case("custom ownership prefix", config([], ownership_prefix="iac/"),
         LiveState([user("1", "a@acme.io", ext="iac/a@acme.io"), user("2", "b@acme.io")]),
         [(U("a@acme.io"), Action.DEACTIVATE)]),
    # teams
    Case("create a team with existing members", config([ALICE], [{"name": "appsec", "members": ["alice@acme.io"]}]),
         LiveState([user("1", "alice@acme.io")]), [(G("appsec"), Action.CREATE)]),
    Case("group: add a member", config([ALICE, {"email": "bob@acme.io"}],
                                       [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io"]}]),
         LiveState([user("1", "alice@acme.io"), user("2", "bob@acme.io")], [group("g", "appsec", ["1"])]),
         [(G("appsec"), Action.UPDATE)],
         {G("appsec"): {"members": (["alice@acme.io"], ["alice@acme.io", "bob@acme.io"])}}),
    Case("group: remove a member", config([ALICE, {"email": "bob@acme.io"}],
                                          [{"name": "appsec", "members": ["alice@acme.io"]}]),
         LiveState([user("1", "alice@acme.io"), user("2", "bob@acme.io")], [group("g", "appsec", ["1", "2"])]),
         [(G("appsec"), Action.UPDATE)],
         {G("appsec"): {"members": (["alice@acme.io", "bob@acme.io"], ["alice@acme.io"])}}),
    Case("group: unknown member id removed", config([ALICE], [{"name": "appsec", "members": ["alice@acme.io"]}]),
         LiveState([user("1", "alice@acme.io")], [group("g", "appsec", ["1", "zz"])]),
         [(G("appsec"), Action.UPDATE)], {G("appsec"): {"members": (["alice@acme.io", "id:zz"], ["alice@acme.io"])}}),
    Case("group in sync", config([ALICE], [{"name": "appsec", "members": ["Alice@acme.io"]}]),
         LiveState([user("1", "alice@acme.io")], [group("g", "appsec", ["1"])]), []),
    Case("removed managed team deleted", config([]), LiveState([], [group("g", "old")]), [(G("old"), Action.DELETE)]),
    Case("hand-made team left alone", config([]), LiveState([], [group("g", "mine", ext=None)]), []),
    Case("protected team kept", config([], protect=["old"]), LiveState([], [group("g", "old")]), [],
         protected=[G("old")]),
    Case("team member declared inactive and absent is not added",
         config([ALICE, {"email": "bob@acme.io", "active": False}],
                [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io"]}]),
         LiveState([user("1", "alice@acme.io")], [group("g", "appsec", ["1"])]), [],
         notes=["declared inactive and not on the provider; not created"]),
    Case("permissions without team_schema: noted, not managed",
         config([], [{"name": "appsec", "description": "d", "permissions": {"roles": ["r"]}}]),
         LiveState([], [group("g", "appsec")]), [],
         notes=["team permissions (roles, collections) are not managed", "team descriptions are not managed"]),
    Case("team_schema advertised: permissions managed",
         config([], [{"name": "appsec", "description": "Triage", "permissions": {"roles": ["r1"],
                                                                                  "collections": ["c"]}}],
                team_schema={"urn": EXT, "description": "description", "roles": "roles",
                             "collections": "collections"}),
         LiveState([], [group("g", "appsec",
                              **attrs({EXT: {"roles": [{"value": "r0"}], "collections": [{"value": "c"}]}}))]),
         [(G("appsec"), Action.UPDATE)],
         {G("appsec"): {"permissions.roles": (["r0"], ["r1"]), "description": (None, "Triage")}},
         schemas={EXT: {"description", "roles", "collections"}}),
    Case("team_schema not advertised: noted",
         config([], [{"name": "appsec", "permissions": {"roles": ["r1"]}}], team_schema={"urn": EXT, "roles": "roles"}),
         LiveState([], [group("g", "appsec")]), [], notes=[f"team_schema {EXT} is not advertised by /Schemas"],
         schemas={}),
    Case("team_schema attribute missing from the schema: noted",
         config([], [{"name": "appsec", "permissions": {"roles": ["r1"]}}],
                team_schema={"urn": EXT, "roles": "roles"}),
         LiveState([], [group("g", "appsec")]), [], notes=[f"attribute roles is not in {EXT}; team roles not managed"],
         schemas={EXT: {"description"}}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_differ(case: Case) -> None:
    p = case.config.providers[0]
    pp = plan_provider(case.config, p, case.live, Capabilities(etag=True), case.schemas)
    got = sorted((c.address, c.action) for c in pp.changes)
    assert got == sorted(case.expect)
    for addr, paths in case.diff.items():
        change = next(c for c in pp.changes if c.address == addr)
        diff = {d.path: (d.before, d.after) for d in change.diff}
        for path, (before, after) in paths.items():
            assert diff.get(path) == (before, after), (path, diff)
    for note in case.notes:
        assert any(note in n for n in pp.notes), (note, pp.notes)
    if not case.notes:
        assert not [n for n in pp.notes if "not created" in n]
    assert sorted(pp.protected) == sorted(case.protected)


def test_member_protect_refuses_deactivation() -> None:
    cfg = config([{**ALICE, "active": False, "protect": True}])
    with pytest.raises(PlanError, match=r'user\["alice@acme.io"\] is protected'):
        plan_provider(cfg, cfg.providers[0], LiveState([user("1", "alice@acme.io")]), Capabilities())


def test_removal_counts_only_managed_objects() -> None:
    cfg = config([])
    live = LiveState([user("1", "a@acme.io"), user("2", "b@acme.io", ext=None)], [group("g", "t")])
    assert plan_provider(cfg, cfg.providers[0], live, Capabilities()).managed == 2
    cfg = config([], authoritative=True)
    assert plan_provider(cfg, cfg.providers[0], live, Capabilities()).managed == 3


def test_precondition_uses_etag_only_when_the_provider_supports_it() -> None:
    cfg = config([{**ALICE, "title": "x"}])
    live = LiveState([user("1", "alice@acme.io")])
    with_etag = plan_provider(cfg, cfg.providers[0], live, Capabilities(etag=True)).changes[0]
    without = plan_provider(cfg, cfg.providers[0], live, Capabilities(etag=False)).changes[0]
    assert with_etag.precondition and with_etag.precondition.etag == 'W/"1"'
    assert without.precondition and without.precondition.etag is None and without.precondition.digest


def _render_all(live: LiveState) -> list[str]:
    cfg = config([ALICE, {"email": "bob@acme.io", "given_name": "Bob", "manager": "alice@acme.io"},
                  {"email": "carol@acme.io", "roles": ["x"]}],
                 [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io"]}, {"name": "ops"}])
    pp = plan_provider(cfg, cfg.providers[0], live, Capabilities(etag=True))
    plan = Plan(changes=pp.changes, notes=pp.notes, config_digest=cfg.digest, protected=pp.protected)
    return [RENDERERS[f]().render(plan) for f in sorted(RENDERERS)]


def test_same_inputs_give_byte_identical_plans() -> None:
    def live(order: int) -> LiveState:
        users = [user("1", "alice@acme.io"), user("2", "bob@acme.io", name={"givenName": "Rob"}),
                 user("3", "gone@acme.io"), user("4", "zed@acme.io")]
        groups = [group("g1", "appsec", ["2"]), group("g2", "old")]
        return LiveState(users[::order], groups[::order])

    first = _render_all(live(1))
    assert first == _render_all(live(1))
    assert first == _render_all(live(-1))  # the order the server lists objects in does not matter
    assert "Plan: 2 to create, 2 to update, 2 to deactivate, 1 to delete." in first[2]


def test_two_members_matching_one_account_is_refused_with_both_places(tmp_path: Any) -> None:
    """alice by userName, and a second member whose external_id is the one alice's account carries:
    applying both would update one account twice, each change undoing the other."""
    from reconciler.config.loader import load_config

    (tmp_path / "c.yaml").write_text(
        "providers:\n  - name: platform\n    type: scim\n    base_url: http://127.0.0.1:1/v2\n"
        "    auth: {type: bearer, token: '${env:T}'}\n"
        "members:\n  - email: alice@acme.io\n  - email: alice.archer@acme.io\n    external_id: alice@acme.io\n")
    cfg = load_config(tmp_path / "c.yaml")
    live = LiveState(users=[user("u1", "alice@acme.io")])
    with pytest.raises(PlanError) as info:
        plan_provider(cfg, cfg.providers[0], live, Capabilities())
    f = tmp_path / "c.yaml"
    assert str(info.value) == (
        f"{f}:8:12: member alice.archer@acme.io matches the provider's user alice@acme.io (id u1) by externalId "
        f"reconciler:alice@acme.io, which member alice@acme.io ({f}:7:12) already matches; give one of them "
        "another external_id or remove it")
    # apart, each is planned as before
    one = config([{"email": "alice.archer@acme.io", "external_id": "alice@acme.io"}])
    changes = plan_provider(one, one.providers[0], live, Capabilities()).changes
    assert [(c.address, c.action) for c in changes] == [(U("alice.archer@acme.io"), Action.UPDATE)]


_values = st.one_of(st.none(), st.booleans(), st.sampled_from(["a", "A", "b", "Ann@Example.com", "ann@example.com"]),
                    st.lists(st.sampled_from(["x", "y"]), max_size=2))
_keys = st.sampled_from(["userName", "emails", "active", "externalId", "name.givenName", "displayName", "title",
                         "enterprise:department", "enterprise:manager", "roles", "nickName",
                         f"{ENTERPRISE}:costCenter"])


@given(want=st.dictionaries(_keys, _values, max_size=8),
       res=st.fixed_dictionaries({}, optional={
           "userName": _values, "active": _values, "externalId": _values, "displayName": _values,
           "title": _values, "nickName": _values, "name": st.dictionaries(st.just("givenName"), _values),
           "emails": st.lists(st.fixed_dictionaries({"value": _values}, optional={"primary": st.booleans()}),
                              max_size=2),
           ENTERPRISE: st.dictionaries(st.sampled_from(["department", "costCenter"]), _values)}))
@example(want={"userName": "Ann@Example.com", "emails": "ann@example.com"},
         res={"userName": "ann@example.com", "emails": [{"value": "Ann@Example.com"}]})
def test_the_one_pass_diff_is_the_diff_of_the_live_values(want: dict[str, Any], res: dict[str, Any]) -> None:
    """plan_provider compares a member in one pass (live_diff) and makes the live values only for a member
    that changes: the same changes as the diff of the whole live values."""
    from reconciler.providers.scim.attributes import attribute_diff, live_diff, live_values

    names = {"m1": "boss@example.com"}
    assert live_diff(want, res, names) == attribute_diff(want, live_values(res, names, want))
