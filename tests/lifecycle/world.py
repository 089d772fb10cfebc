"""The lifecycle model: a desired config, what the live SCIM server must hold, and the steps between.

A ``World`` is both the model and its driver. Config edits change the model and the YAML it writes
(``members.yaml``, ``teams.yaml``, ``providers.yaml``); drifts change the live server directly, over
raw HTTP, the way a person in the platform's UI or another tool would; ``apply`` runs plan and apply
in-process (a fresh ``Session`` each time, as a CLI run would) and ``check`` asserts that the live
server is what the model says, and that a fresh plan has nothing left to do.

The semantics the model follows are the documented ones (docs/configuration.md):

- a member removed from the config is deactivated (``removal: deactivate``, the default) or deleted
  (``removal: delete``); a team removed from the config is deleted;
- only the attributes a member declares are managed (``null`` clears one);
- what reconciler owns carries ``externalId: reconciler:<external_id or email>`` (teams: the name);
  a hand-made account (no mark) is left alone, unless its userName is a member's email, in any case:
  then it is adopted;
- a member declared ``active: false`` that is not on the provider is not created, and is left out of
  its teams;
- membership is compared as a set.

The lifecycle state machine (test_lifecycle.py) and the regression tests (test_regressions.py)
drive the same ``World``, so a shrunk failure reads as the same calls.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reconciler.apply import ApplyResult, apply_plan
from reconciler.config.loader import load_config
from reconciler.errors import ConfigError
from reconciler.plan.model import Plan
from reconciler.session import Session
from tests.conftest import dump_yaml
from tests.servers import ScimServer

PREFIX = "reconciler:"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# member attribute -> where it lives on a SCIM User (a dotted path; enterprise ones under ENTERPRISE)
ATTRIBUTES: dict[str, str] = {"given_name": "name.givenName", "family_name": "name.familyName",
                              "department": f"{ENTERPRISE}.department"}

# Failures one of two applies running at once may report: it found an object the other had just
# written (ETag mismatch, or the digest check where the provider has no ETags) and wrote nothing.
CONCURRENT_REFUSALS = ("HTTP 412", "changed on the provider since the plan was made")


@dataclass
class Member:
    email: str
    external_id: str | None = None
    attrs: dict[str, str | None] = field(default_factory=dict)  # the declared ones only
    manager: str | None = None  # an email, when manager_declared
    manager_declared: bool = False
    active: bool = True

    @property
    def mark(self) -> str:
        return PREFIX + (self.external_id or self.email)

    def yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"email": self.email}
        if self.external_id is not None:
            out["external_id"] = self.external_id
        out.update(self.attrs)
        if self.manager_declared:
            out["manager"] = self.manager
        if not self.active:
            out["active"] = False
        return out


@dataclass
class Team:
    name: str
    members: list[str] = field(default_factory=list)
    previously: list[str] = field(default_factory=list)

    def yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "members": list(self.members)}
        if self.previously:
            out["previously"] = list(self.previously)
        return out


class World:
    """The model of one organisation's config and of the live server it is converged into."""

    def __init__(self, server: ScimServer, root: Path, *, team_previously: bool = False) -> None:
        self.server = server
        self.root = root
        self.team_previously = team_previously  # teams take `previously: [old-name]` (a rename keeps the group)
        self.members: dict[str, Member] = {}
        self.teams: dict[str, Team] = {}
        self.removal = "deactivate"
        # the live accounts that are reconciler's (or a member's, made by hand, to adopt): userName in
        # lower case -> externalId (None: made by hand). Matched to members when an apply runs.
        self.accounts: dict[str, str | None] = {}
        # made by hand with a member's email: adopted if the member is still declared when apply runs
        self.to_adopt: dict[str, dict[str, Any]] = {}
        # what is on the provider that reconciler does not own: id -> the resource as it was made
        self.handmade_users: dict[str, dict[str, Any]] = {}
        self.handmade_groups: dict[str, dict[str, Any]] = {}
        # team name -> the id of its group after the last apply (a rename with `previously` keeps it)
        self.group_ids: dict[str, str] = {}
        self.log: list[str] = []  # the steps, as calls, for failure messages
        self._http: httpx.Client | None = None
        server.reset()
        self.write()

    # --- the config ------------------------------------------------------------------------------

    def write(self) -> Path:
        d = self.root
        d.mkdir(parents=True, exist_ok=True)
        provider = {"name": "platform", "type": "scim", "base_url": self.server.base_url,
                    "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}, "removal": self.removal,
                    # safety thresholds are not what this test is about: a reorganisation may remove a lot
                    "max_removal_percent": 100}
        (d / "providers.yaml").write_text(dump_yaml({"providers": [provider]}))
        ms = [m.yaml() for m in self.members.values()]
        (d / "members.yaml").write_text(dump_yaml({"members": ms}) if ms else "# no members\n")
        ts = [t.yaml() for t in self.teams.values()]
        (d / "teams.yaml").write_text(dump_yaml({"teams": ts}) if ts else "# no teams\n")
        return d

    def step(self, text: str) -> None:
        self.log.append(text)

    @property
    def present(self) -> set[str]:
        """Members with an account (as of the last apply, when the config has not changed since)."""
        return {e for e in self.members if e in self.accounts}

    @property
    def retired(self) -> dict[str, str]:
        """Accounts reconciler owns whose member left the config (deactivated): userName -> mark."""
        return {n: mark for n, mark in self.accounts.items() if n not in self.members and mark is not None}

    def match(self, email: str) -> str | None:
        """The live account a member is matched to (docs/configuration.md, Ownership): by userName in any
        case, else by its mark (a renamed member with the same external_id)."""
        m = self.members[email]
        if email in self.accounts:
            return email
        hits = [n for n, mark in self.accounts.items() if mark == m.mark]
        assert len(hits) <= 1, f"the model has two accounts marked {m.mark}: {hits}"
        return hits[0] if hits else None

    def pending(self) -> list[str]:
        """Members the next apply creates (active, no account to match)."""
        return [e for e, m in self.members.items() if m.active and self.match(e) is None]

    def will_exist(self, email: str) -> bool:
        """The member has an account after the next apply (so it can be someone's manager)."""
        m = self.members.get(email)
        return m is not None and (m.active or self.match(email) is not None)

    def mark_is_free(self, email: str, external_id: str | None) -> bool:
        """No account but the member's own carries the mark this external_id gives (one account a mark)."""
        mark = PREFIX + (external_id or email)
        own = self.match(email)
        return all(mark != m or n == own for n, m in self.accounts.items())

    def reports_of(self, email: str) -> list[str]:
        return [e for e, m in self.members.items() if m.manager_declared and m.manager == email]

    def chain_above(self, email: str) -> list[str]:
        """The managers above a member, nearest first (stops at a cycle)."""
        out: list[str] = []
        cur = self.members[email]
        while cur.manager_declared and cur.manager is not None and cur.manager not in out \
                and cur.manager != email:
            out.append(cur.manager)
            cur = self.members[cur.manager]
        return out

    def add_member(self, email: str, *, external_id: str | None = None, manager: str | None = None,
                   active: bool = True, **attrs: str | None) -> None:
        self.step(f"add_member({email!r}, external_id={external_id!r}, manager={manager!r}, active={active!r}"
                  + "".join(f", {k}={v!r}" for k, v in attrs.items()) + ")")
        assert email not in self.members
        assert manager is None or manager in self.members
        self.members[email] = Member(email, external_id, dict(attrs), manager, manager is not None, active)

    def remove_member(self, email: str) -> None:
        """Take a member out of the config: out of its teams too, and its reports move to its manager."""
        self.step(f"remove_member({email!r})")
        m = self.members.pop(email)
        for t in self.teams.values():
            if email in t.members:
                t.members.remove(email)
        up = m.manager if m.manager_declared else None
        for r in self.reports_of(email):
            self.members[r].manager = up if up != r else None

    def rename(self, email: str, new: str) -> None:
        """A person's email changes; the external_id keeps the account."""
        self.step(f"rename({email!r}, {new!r})")
        m = self.members.pop(email)
        assert m.external_id is not None, "a rename keeps the account only with an external_id"
        m.email = new
        self.members[new] = m
        for t in self.teams.values():
            t.members = [new if e == email else e for e in t.members]
        for r in self.reports_of(email):
            self.members[r].manager = new

    def set_external_id(self, email: str, external_id: str | None) -> None:
        self.step(f"set_external_id({email!r}, {external_id!r})")
        self.members[email].external_id = external_id

    def set_attribute(self, email: str, attr: str, value: str | None) -> None:
        """Declare an attribute (None declares it null: cleared on the provider)."""
        self.step(f"set_attribute({email!r}, {attr!r}, {value!r})")
        self.members[email].attrs[attr] = value

    def forget_attribute(self, email: str, attr: str) -> None:
        """Stop declaring an attribute: the provider's value is left alone from now on."""
        self.step(f"forget_attribute({email!r}, {attr!r})")
        self.members[email].attrs.pop(attr, None)

    def set_active(self, email: str, active: bool) -> None:
        self.step(f"set_active({email!r}, {active!r})")
        self.members[email].active = active

    def set_manager(self, email: str, manager: str | None) -> None:
        """Declare a member's manager (None: declared null, cleared on the provider)."""
        self.step(f"set_manager({email!r}, {manager!r})")
        assert manager is None or manager in self.members
        m = self.members[email]
        m.manager, m.manager_declared = manager, True

    def add_team(self, name: str, members: list[str]) -> None:
        self.step(f"add_team({name!r}, {members!r})")
        assert name not in self.teams
        self.teams[name] = Team(name, list(members))

    def remove_team(self, name: str) -> None:
        self.step(f"remove_team({name!r})")
        del self.teams[name]
        self.group_ids.pop(name, None)

    def rename_team(self, name: str, new: str, keep: bool | None = None) -> None:
        """With ``keep`` (default: ``team_previously``) the team says ``previously: [old]`` and keeps its
        group; without, the old group is deleted and a new one made."""
        keep = self.team_previously if keep is None else keep
        self.step(f"rename_team({name!r}, {new!r}, keep={keep!r})")
        t = self.teams.pop(name)
        t.name = new
        if keep:
            t.previously.append(name)
            if name in self.group_ids:
                self.group_ids[new] = self.group_ids.pop(name)
        else:
            self.group_ids.pop(name, None)
        self.teams[new] = t

    def set_team_members(self, name: str, members: list[str]) -> None:
        self.step(f"set_team_members({name!r}, {members!r})")
        self.teams[name].members = list(members)

    def set_removal(self, removal: str) -> None:
        self.step(f"set_removal({removal!r})")
        self.removal = removal

    # --- plan and apply, in-process ----------------------------------------------------------------

    def plan(self) -> Plan:
        with Session(load_config(self.write())) as s:
            return s.plan()

    def apply(self) -> ApplyResult:
        """plan then apply, as `reconciler apply --auto-approve` does; every change must succeed."""
        self.step("apply()")
        with Session(load_config(self.write())) as s:
            plan = s.plan()
            result = apply_plan(s, plan)
        assert result.failures == {}, f"apply failed: {result.failures}\n{self.history()}"
        self.applied()
        return result

    def apply_concurrently(self) -> list[ApplyResult]:
        """Two applies of the same config at once, each its own Session (two pipelines started by one
        merge): both plan, then both apply."""
        self.step("apply_concurrently()")
        self.write()
        results: list[ApplyResult | BaseException] = []
        lock = threading.Lock()
        start = threading.Barrier(2)

        def one() -> None:
            try:
                with Session(load_config(self.root)) as s:
                    plan = s.plan()
                    start.wait(30)  # both have planned from the same live state: now both apply
                    r: ApplyResult | BaseException = apply_plan(s, plan)
            except BaseException as exc:  # reported below, in the test's thread
                r = exc
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one, name=f"apply-{i}") for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        out: list[ApplyResult] = []
        for r in results:
            if isinstance(r, BaseException):
                raise AssertionError(f"a concurrent apply raised {r!r}\n{self.history()}") from r
            bad = {a: e for a, e in r.failures.items() if not any(x in e for x in CONCURRENT_REFUSALS)}
            assert bad == {}, f"a concurrent apply failed: {bad}\n{self.history()}"
            out.append(r)
        assert len(out) == 2
        self.applied()
        return out

    def apply_saved_plan_after_handmade(self, email: str, user_name: str) -> ApplyResult:
        """A plan is made (saved, for review); before it is applied, someone makes the account of a
        member it creates by hand (``user_name``: the member's email in any case). Apply adopts it."""
        self.step(f"apply_saved_plan_after_handmade({email!r}, {user_name!r})")
        assert email in self.pending() and user_name.lower() == email
        with Session(load_config(self.write())) as s:
            plan = s.plan()
            self.accounts[email] = None
            self.to_adopt[email] = self._post_user(user_name)
            result = apply_plan(s, plan)
        assert result.failures == {}, f"apply failed: {result.failures}\n{self.history()}"
        self.applied()
        return result

    def applied(self) -> None:
        """What an apply that succeeded leaves behind, in the model: each member matched to its account
        (renamed, marked, adopted) or given a new one (if active); accounts no member matches are
        deactivated (kept) or, with removal: delete, deleted; hand-made ones no member matches are left."""
        accounts: dict[str, str | None] = {}
        matched: set[str] = set()
        for email, m in self.members.items():
            n = self.match(email)
            if n is not None:
                matched.add(n)
            if n is not None or m.active:
                accounts[email] = m.mark
        for n, mark in self.accounts.items():
            if n in matched:
                continue
            if mark is None:  # made by hand for a member that left the config before the apply
                made = self.to_adopt[n]
                self.handmade_users[str(made["id"])] = made
            elif self.removal == "deactivate":
                accounts[n] = mark
        self.accounts = accounts
        self.to_adopt.clear()
        live = {g["displayName"]: g["id"] for g in self.live_groups()}
        for name in self.teams:
            if name in live:
                self.group_ids.setdefault(name, str(live[name]))

    def history(self) -> str:
        return "steps:\n" + "\n".join(f"  {s}" for s in self.log)

    # --- drift: the live server changed behind reconciler's back -----------------------------------

    @contextmanager
    def http(self) -> Iterator[httpx.Client]:
        """The raw client (one per World: making an httpx client costs a TLS context)."""
        if self._http is None:
            self._http = self.server.client()
        yield self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _patch(self, c: httpx.Client, path: str, ops: list[dict[str, Any]]) -> None:
        r = c.patch(path, json={"schemas": [PATCH_OP], "Operations": ops})
        assert r.status_code in (200, 204), f"PATCH {path}: {r.status_code} {r.text}"

    def _post_user(self, user_name: str, given_name: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [USER], "userName": user_name,
                                "emails": [{"value": user_name, "type": "work", "primary": True}]}
        if given_name:
            body["name"] = {"givenName": given_name}
        with self.http() as c:
            r = c.post("Users", json=body)
            assert r.status_code == 201, f"POST Users {user_name}: {r.status_code} {r.text}"
            return dict(r.json())

    def account(self, email: str) -> dict[str, Any]:
        """The live user of a member or retired account (by userName, in any case)."""
        for u in self.live_users():
            if str(u.get("userName", "")).lower() == email:
                return u
        raise AssertionError(f"no live user {email}")

    def group(self, name: str) -> dict[str, Any]:
        found = [g for g in self.live_groups() if g.get("displayName") == name]
        assert found, f"no live group {name}"
        return found[0]

    def drift_attribute(self, email: str, attr: str, value: str | None) -> None:
        """Someone edits an account in the platform's UI: an attribute (a member attribute's name)."""
        self.step(f"drift_attribute({email!r}, {attr!r}, {value!r})")
        path = ATTRIBUTES[attr]
        if path.startswith(ENTERPRISE):
            path = f"{ENTERPRISE}:{path[len(ENTERPRISE) + 1:]}"
        uid = self.account(email)["id"]
        op = {"op": "remove", "path": path} if value is None else {"op": "replace", "path": path, "value": value}
        with self.http() as c:
            self._patch(c, f"Users/{uid}", [op])

    def drift_active(self, email: str, active: bool) -> None:
        self.step(f"drift_active({email!r}, {active!r})")
        uid = self.account(email)["id"]
        with self.http() as c:
            self._patch(c, f"Users/{uid}", [{"op": "replace", "path": "active", "value": active}])

    def drift_manager(self, email: str, manager: str | None) -> None:
        """Someone sets (or removes) an account's manager by hand; ``manager`` is any account's email."""
        self.step(f"drift_manager({email!r}, {manager!r})")
        uid = self.account(email)["id"]
        path = f"{ENTERPRISE}:manager"
        op = ({"op": "remove", "path": path} if manager is None else
              {"op": "replace", "path": path, "value": {"value": self.account(manager)["id"]}})
        with self.http() as c:
            self._patch(c, f"Users/{uid}", [op])

    def drift_group_add(self, team: str, user_name: str) -> None:
        """Someone adds an account (a member's, or a hand-made one) to a managed group."""
        self.step(f"drift_group_add({team!r}, {user_name!r})")
        gid, uid = self.group(team)["id"], self.account(user_name.lower())["id"]
        with self.http() as c:
            self._patch(c, f"Groups/{gid}", [{"op": "add", "path": "members", "value": [{"value": uid}]}])

    def drift_group_remove(self, team: str, email: str) -> None:
        self.step(f"drift_group_remove({team!r}, {email!r})")
        gid, uid = self.group(team)["id"], self.account(email)["id"]
        with self.http() as c:
            self._patch(c, f"Groups/{gid}", [{"op": "remove", "path": f'members[value eq "{uid}"]'}])

    def drift_duplicate_member(self, team: str, email: str) -> None:
        """Another client PUTs the group back with one of its members listed twice."""
        self.step(f"drift_duplicate_member({team!r}, {email!r})")
        g = self.group(team)
        uid = self.account(email)["id"]
        members = [{"value": m["value"]} for m in g.get("members") or []] + [{"value": uid}]
        body = {"schemas": [GROUP], "displayName": g["displayName"], "externalId": g.get("externalId"),
                "members": members}
        with self.http() as c:
            r = c.put(f"Groups/{g['id']}", json=body)
            assert r.status_code == 200, f"PUT Groups/{g['id']}: {r.status_code} {r.text}"

    def drift_handmade_user(self, user_name: str, given_name: str | None = None) -> None:
        """Someone makes an account by hand (no mark). Its userName may be a member's email in another
        case: then it is that member's account, adopted by the next apply."""
        self.step(f"drift_handmade_user({user_name!r}, {given_name!r})")
        email = user_name.lower()
        assert email not in self.accounts
        made = self._post_user(user_name, given_name)
        if email in self.members:
            self.accounts[email] = None
            self.to_adopt[email] = made
        else:
            self.handmade_users[str(made["id"])] = made

    def drift_handmade_group(self, name: str, user_names: list[str]) -> None:
        """Someone makes a group by hand (no mark) holding hand-made accounts."""
        self.step(f"drift_handmade_group({name!r}, {user_names!r})")
        ids = [self.account(u.lower())["id"] for u in user_names]
        with self.http() as c:
            r = c.post("Groups", json={"schemas": [GROUP], "displayName": name,
                                       "members": [{"value": i} for i in ids]})
            assert r.status_code == 201, f"POST Groups {name}: {r.status_code} {r.text}"
            made = r.json()
        self.handmade_groups[str(made["id"])] = made

    def drift_delete_user(self, email: str) -> None:
        """Someone deletes an account reconciler manages (a member's, or a retired one)."""
        self.step(f"drift_delete_user({email!r})")
        uid = self.account(email)["id"]
        with self.http() as c:
            r = c.delete(f"Users/{uid}")
            assert r.status_code == 204, f"DELETE Users/{uid}: {r.status_code} {r.text}"
        del self.accounts[email]

    # --- invariants ----------------------------------------------------------------------------------

    def live_users(self) -> list[dict[str, Any]]:
        return self._list("Users")

    def live_groups(self) -> list[dict[str, Any]]:
        return self._list("Groups")

    def _list(self, resource: str) -> list[dict[str, Any]]:
        with self.http() as c:
            r = c.get(resource, params={"count": "1000"})
            assert r.status_code == 200, f"GET {resource}: {r.status_code} {r.text}"
            return list(r.json().get("Resources") or [])

    def check(self) -> None:
        """Every invariant of a converged world."""
        self.check_plan_is_empty()
        self.check_users()
        self.check_groups()

    def check_plan_is_empty(self) -> None:
        plan = self.plan()
        lines = [f"  {c.action.value} {c.address}: "
                 + ", ".join(f"{d.path}: {d.before!r} -> {d.after!r}" for d in c.diff) for c in plan.changes]
        assert not plan.has_changes, "a fresh plan after apply has changes:\n" + "\n".join(lines) + \
            "\n" + self.history()

    def check_users(self) -> None:
        users = self.live_users()
        by_name: dict[str, dict[str, Any]] = {}
        for u in users:
            name = str(u.get("userName", "")).lower()
            assert name not in by_name, f"two live users {name}\n{self.history()}"
            by_name[name] = u
        ids = {str(u["id"]): name for name, u in by_name.items()}
        where = self.history()

        owned = {n for n, u in by_name.items() if str(u.get("externalId") or "").startswith(PREFIX)}
        expected = set(self.accounts)
        assert owned == expected, f"owned live users {sorted(owned)}, expected {sorted(expected)}\n{where}"
        for email in self.members:
            m = self.members[email]
            if email not in self.present:
                assert email not in by_name, f"{email} is declared inactive and absent, but exists\n{where}"
                continue
            u = by_name[email]
            assert u.get("externalId") == m.mark, f"{email}: externalId {u.get('externalId')!r} != {m.mark!r}\n{where}"
            assert bool(u.get("active", True)) is m.active, f"{email}: active {u.get('active')!r}\n{where}"
            primary = [e["value"].lower() for e in u.get("emails") or [] if e.get("primary")]
            assert primary == [email], f"{email}: primary emails {primary}\n{where}"
            for attr, value in m.attrs.items():
                have = _get(u, ATTRIBUTES[attr])
                assert have == value, f"{email}: {attr} is {have!r}, the config says {value!r}\n{where}"
            if m.manager_declared:
                mgr = (u.get(ENTERPRISE) or {}).get("manager") or {}
                have_mgr = ids.get(str(mgr.get("value")), f"id:{mgr.get('value')}") if mgr.get("value") else None
                assert have_mgr == m.manager, \
                    f"{email}: manager is {have_mgr!r}, the config says {m.manager!r}\n{where}"
        for email, mark in self.retired.items():
            u = by_name[email]
            assert u.get("externalId") == mark and u.get("active") is False, \
                f"retired {email}: externalId {u.get('externalId')!r}, active {u.get('active')!r}\n{where}"
        unowned = {str(u["id"]): u for n, u in by_name.items() if n not in owned}
        assert set(unowned) == set(self.handmade_users), \
            f"unowned live users {sorted(ids[i] for i in unowned)}\n{where}"
        for uid, made in self.handmade_users.items():
            assert _strip(unowned[uid]) == _strip(made), f"a hand-made account was touched: {unowned[uid]}\n{where}"

    def check_groups(self) -> None:
        groups = self.live_groups()
        users = {str(u["id"]): str(u.get("userName", "")).lower() for u in self.live_users()}
        where = self.history()
        names = [str(g.get("displayName")) for g in groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        assert not dupes, f"duplicate groups {dupes}\n{where}"
        by_name = {str(g.get("displayName")): g for g in groups}
        owned = {n for n, g in by_name.items() if str(g.get("externalId") or "").startswith(PREFIX)}
        assert owned == set(self.teams), f"owned live groups {sorted(owned)}, teams {sorted(self.teams)}\n{where}"
        for name, t in self.teams.items():
            g = by_name[name]
            assert g.get("externalId") == PREFIX + name, f"group {name}: externalId {g.get('externalId')!r}\n{where}"
            have = {users.get(str(m.get("value")), f"id:{m.get('value')}") for m in g.get("members") or []}
            want = {e for e in t.members if e in self.present}
            assert have == want, f"group {name}: members {sorted(have)}, expected {sorted(want)}\n{where}"
            if name in self.group_ids:
                assert str(g["id"]) == self.group_ids[name], f"group {name} has a new id\n{where}"
        unowned = {str(g["id"]): g for n, g in by_name.items() if n not in owned}
        assert set(unowned) == set(self.handmade_groups), f"unowned live groups {sorted(unowned)}\n{where}"
        for gid, made in self.handmade_groups.items():
            assert _strip(unowned[gid]) == _strip(made), f"a hand-made group was touched: {unowned[gid]}\n{where}"

    def manager_cycle_is_accepted(self) -> bool:
        """A config whose managers form a cycle is either refused at load time, naming a manager (False:
        the caller takes the edit back), or accepted, and then it must converge like any other (True)."""
        try:
            load_config(self.write())
        except ConfigError as exc:
            assert "manager" in str(exc), f"a manager cycle was refused for another reason: {exc}"
            self.step("# refused at load time, taken back")
            return False
        return True

    def checkpoint(self) -> tuple[Any, ...]:
        """The model's config (to take an edit back with ``rollback``)."""
        return copy.deepcopy((self.members, self.teams))

    def rollback(self, saved: tuple[Any, ...]) -> None:
        self.members, self.teams = copy.deepcopy(saved)
        self.write()


def _get(res: dict[str, Any], dotted: str) -> Any:
    if dotted.startswith(ENTERPRISE):
        cur: Any = res.get(ENTERPRISE) or {}
        dotted = dotted[len(ENTERPRISE) + 1:]
    else:
        cur = res
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "meta"}
