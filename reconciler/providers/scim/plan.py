"""Planning for one SCIM provider: desired (config) + live (read) -> changes. Pure: no I/O.

What reconciler creates or adopts carries its mark in ``externalId`` (RFC 7643 §3.1: the provisioning
client's identifier), or in the provider's ``ownership_attribute`` where externalId cannot hold it:
``<ownership_prefix><external_id or email>``. That mark is how a member deleted from the YAML is
recognised as "was managed, now removed" without a state file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.config.base import lower
from reconciler.config.models import Config, Member, ScimProvider
from reconciler.errors import (
    PlanError,
)
from reconciler.plan.model import NO_PAYLOAD, Action, AttributeChange, Change, NoPayload, ScimIds
from reconciler.plan.safety import inactive
from reconciler.providers.scim.attributes import (
    address,
    attribute_diff,
    desired_group,
    desired_mark,
    desired_user,
    live_diff,
    live_group,
    live_user,
    live_values,
    mark_of,
    precondition,
)
from reconciler.providers.scim.client import Capabilities, LiveState
from reconciler.providers.scim.fit import UserFitter, fit_group, rename_refused

# --- planning -------------------------------------------------------------

@dataclass
class ProviderPlan:
    changes: list[Change]
    notes: list[str]
    protected: list[str]
    managed: int  # objects the provider holds that reconciler manages (the base of the removal percentage)


def plan_provider(config: Config, p: ScimProvider, live: LiveState, caps: Capabilities,
                  schemas: dict[str, set[str]] | None = None) -> ProviderPlan:
    """Pure: desired (config) + live (read) -> changes. No I/O."""
    notes: list[str] = []
    changes: list[Change] = []
    protected: list[str] = []
    prefix = p.ownership_prefix
    protect = {x.lower() for x in p.protect}

    # each live user's ownership mark and lower-case userName, read once (the names are the users' own
    # texts where already lower case, as is usual: 100,000 of them are not copied)
    marks = [mark_of(u, p) for u in live.users]
    names = [lower(str(u.get("userName", ""))) for u in live.users]
    by_name: dict[str, dict[str, Any]] = {}
    by_ext: dict[str, dict[str, Any]] = {}
    for u, name, mark in zip(live.users, names, marks, strict=True):
        by_name.setdefault(name, u)
        if mark:
            by_ext.setdefault(mark, u)

    members = config.members_for(p.name)
    keys = [m.key for m in members]
    # members a team on this provider may hold: provisioned here and existing (or about to)
    holdable = set(keys)
    matched: dict[str, Member] = {}  # provider user id -> the member that matched it
    found: list[tuple[Member, str, dict[str, Any] | None]] = []  # (member, its key, live or None)
    for m, key in zip(members, keys, strict=True):
        res = by_name.get(key) or by_ext.get(desired_mark(m, p))
        if res is not None and str(res.get("id")) in matched:
            # two members would update one account in turn, each undoing the other: refuse
            other = matched[str(res.get("id"))]
            how = "userName" if by_name.get(key) is res else f"{p.ownership_attribute} {desired_mark(m, p)}"
            raise PlanError(f"{m.locate('email')}: member {key} matches the provider's user "
                            f"{res.get('userName')} (id {res.get('id')}) by {how}, which member {other.key} "
                            f"({other.locate('email')}) already matches; give one of them another external_id "
                            "or remove it")
        if res is not None:
            matched[str(res.get("id"))] = m
        found.append((m, key, res))
    del by_name, by_ext

    # a live user is named by the member that matched it (so a member whose email changed, matched by
    # externalId, keeps their teams and reports under the new name), else by its own userName
    usernames = {str(u.get("id")): name for u, name in zip(live.users, names, strict=True)}
    usernames.update({uid: m.key for uid, m in matched.items()})
    ids = {name: uid for uid, name in usernames.items()}  # the live id behind each name the plan shows

    # each member's desired attributes made, fitted to the provider's /Schemas and diffed one at a time:
    # 100,000 of them are never held at once
    fitter = UserFitter(p, caps.schema)
    member_notes: list[str] = []
    refused: PlanError | None = None
    for m, key, res in found:
        want = desired_user(m, p, key)
        fitter.fit(m, want, res)
        if fitter.out.errors:
            continue  # the plan fails with every error found: no change is planned
        if res is None:
            addr = address(p.name, "user", key)
            if not m.active:
                # declared inactive and absent: creating a disabled account serves nobody
                member_notes.append(f"{addr}: declared inactive and not on the provider; not created")
                holdable.discard(key)
                continue
            changes.append(Change(p.name, "user", key, Action.CREATE, addr, after=want,
                                  payload=_refs_user(want, ids)))
            continue
        diff = live_diff(want, res, usernames)
        if not diff:
            continue
        addr = address(p.name, "user", key)
        have = live_values(res, usernames, want)
        # labelled by effect: whatever spells it, an active account left inactive is deactivated
        deactivates = inactive(want.get("active")) and not inactive(have.get("active"))
        action = Action.DEACTIVATE if deactivates else Action.UPDATE
        if action is Action.DEACTIVATE and m.protect:
            # raised once every member is fitted: an error of the config's against /Schemas comes first
            refused = refused or PlanError(f"{addr} is protected (protect: true) but the config deactivates "
                                           "it; remove protect first")
            continue
        changes.append(Change(p.name, "user", key, action, addr, before={k: have.get(k) for k in want},
                              after=want, diff=diff, id=str(res["id"]),
                              precondition=precondition(res, caps),
                              payload=_refs_user(want, ids)))
    fitted = fitter.done()
    if fitted.errors:
        raise PlanError(f"provider {p.name} cannot store the config as written (its /Schemas):", fitted.errors)
    if refused is not None:
        raise refused
    notes += fitted.notes
    if caps.schema_note:
        notes.append(f"scim.{p.name}: {caps.schema_note}: attributes are sent as declared, unchecked")
    notes += member_notes

    del found
    managed = sum(1 for mark in marks if mark.startswith(prefix)) if prefix else 0
    for u, name, ext in zip(live.users, names, marks, strict=True):
        uid = str(u.get("id"))
        if uid in matched:
            continue
        owned = bool(prefix) and ext.startswith(prefix)
        if not (owned or p.authoritative):
            continue
        addr = address(p.name, "user", name)
        have = live_user(u, usernames)
        if name in protect:
            protected.append(addr)
            continue
        if p.removal == "delete":
            changes.append(Change(p.name, "user", name, Action.DELETE, addr, before=have, id=uid,
                                  precondition=precondition(u, caps)))
        elif have.get("active"):
            after = dict(have, active=False)
            changes.append(Change(p.name, "user", name, Action.DEACTIVATE, addr, before=have, after=after,
                                  diff=[AttributeChange("active", True, False)], id=uid,
                                  precondition=precondition(u, caps)))

    # teams
    managed_ext: set[str] = set()
    ts = p.team_schema
    wants_perm = any(t.permissions is not None for t in config.teams_for(p.name))
    wants_desc = any("description" in t.model_fields_set for t in config.teams_for(p.name))
    if ts is not None and schemas is not None:
        attrs = schemas.get(ts.urn)
        if attrs is None:
            notes.append(f"scim.{p.name}: team_schema {ts.urn} is not advertised by /Schemas; "
                         "team description and permissions are not managed on this provider")
        else:
            for f in ("description", "roles", "collections"):
                a = getattr(ts, f)
                if a and a in attrs:
                    managed_ext.add(f)
                elif a:
                    notes.append(f"scim.{p.name}: attribute {a} is not in {ts.urn}; team {f} not managed")
    if ts is None and wants_perm:
        notes.append(f"scim.{p.name}: team permissions (roles, collections) are not managed on this provider: "
                     "core SCIM Groups cannot express them (declare team_schema where the provider has an "
                     "extension)")
    if wants_desc and "description" not in managed_ext and (ts is None or not ts.description):
        notes.append(f"scim.{p.name}: team descriptions are not managed on this provider: core SCIM Groups "
                     "have no description attribute")

    groups_by_name: dict[str, dict[str, Any]] = {}
    for g in live.groups:
        groups_by_name.setdefault(str(g.get("displayName")), g)
    matched_groups: set[str] = set()
    group_note = False
    teams = config.teams_for(p.name)
    current_names = {t.name for t in teams}
    for t in teams:
        want = desired_group(t, p, managed_ext)
        if fit_group(want, caps.schema) and not group_note:
            group_note = True
            notes.append(f"scim.{p.name}: externalId is read-only on this provider's Groups: teams are not "
                         "marked, so a team removed from the config is left on the provider (unless "
                         "authoritative: true)")
        res = groups_by_name.get(t.name)
        if res is None:
            # renamed (previously: [old]): the old group is renamed in place, keeping its id
            res = next((groups_by_name[o] for o in t.previously
                        if o in groups_by_name and o not in current_names
                        and str(groups_by_name[o].get("id")) not in matched_groups), None)
        addr = address(p.name, "group", t.name)
        left_out = [e for e in want["members"] if e not in holdable]
        if left_out:
            want["members"] = [e for e in want["members"] if e in holdable]
            notes.append(f"{addr}: {', '.join(left_out)} not added: not provisioned to this provider "
                         "(declared inactive and absent, or restricted to other providers)")
        if res is None:
            changes.append(Change(p.name, "group", t.name, Action.CREATE, addr, after=want,
                                  payload=scim_ids({e: ids[e] for e in want["members"] if e in ids})))
            continue
        matched_groups.add(str(res.get("id")))
        have = live_group(res, usernames, p)
        diff = attribute_diff(want, have)
        if diff:
            refs = {e: ids[e] for e in set(want["members"]) | set(have["members"]) if e in ids}
            refs.update({e: e[3:] for e in have["members"] if e.startswith("id:")})
            notes_here = [f"{e} is a member twice on the provider; the duplicate entry is removed"
                          for e in _twice(have["members"])]
            if have["displayName"] != t.name:
                why = rename_refused(caps.schema)
                if why:
                    raise PlanError(f"{t.locate('previously')}: team {t.name}: provider {p.name} cannot rename "
                                    f"its group {have['displayName']} ({why}); remove previously to make a new "
                                    "group (the old one is then removed where it is marked, or left alone)")
                notes_here.append(f"renamed from {have['displayName']} (previously), keeping id {res['id']}")
            changes.append(Change(p.name, "group", t.name, Action.UPDATE, addr,
                                  before={k: have.get(k) for k in want}, after=want, diff=diff,
                                  id=str(res["id"]), precondition=precondition(res, caps), payload=scim_ids(refs),
                                  notes=notes_here))
    managed += sum(1 for g in live.groups if prefix and str(g.get("externalId") or "").startswith(prefix))
    for g in live.groups:
        gid = str(g.get("id"))
        if gid in matched_groups:
            continue
        owned = bool(prefix) and str(g.get("externalId") or "").startswith(prefix)
        if not (owned or p.authoritative):
            continue
        name = str(g.get("displayName"))
        addr = address(p.name, "group", name)
        if name.lower() in protect:
            protected.append(addr)
            continue
        changes.append(Change(p.name, "group", name, Action.DELETE, addr, before=live_group(g, usernames, p),
                              id=gid, precondition=precondition(g, caps)))
    if p.authoritative:
        managed = len(live.users) + len(live.groups)
    _one_change_per_address(changes, live)
    return ProviderPlan(_after_managers(p.name, changes), notes, protected, managed)


def _after_managers(provider: str, changes: list[Change]) -> list[Change]:
    """A member whose manager this plan creates depends on that create: the report needs the manager's
    id (one whose update fails exists all the same, so only a create is a dependency)."""
    created = {c.key for c in changes if c.kind == "user" and c.action is Action.CREATE}
    out = []
    for c in changes:
        mgr = (c.after or {}).get("enterprise:manager") if c.kind == "user" else None
        if isinstance(mgr, str) and mgr in created and mgr != c.key:
            c = c.model_copy(update={"depends_on": (address(provider, "user", mgr),)})
        out.append(c)
    return out


def _one_change_per_address(changes: list[Change], live: LiveState) -> None:
    """Two live objects behind one address (a userName in two cases on a server that tells them apart,
    two groups of one name) would make two changes the summary and the audit log cannot tell apart:
    the plan is refused, naming both ids, until one is renamed or removed on the provider."""
    by_addr: dict[str, list[Change]] = {}
    for c in changes:
        by_addr.setdefault(c.address, []).append(c)
    twins = {a: cs for a, cs in by_addr.items() if len(cs) > 1}
    if not twins:
        return
    ids_of = {a: [c.id or "(new)" for c in cs] for a, cs in twins.items()}
    for a in twins:  # the object the plan matched has no change of its own when it is up to date
        kind = "group" if '.group["' in a else "user"
        name = a.split('["', 1)[1][:-2]
        for r in (live.groups if kind == "group" else live.users):
            rname = str(r.get("displayName") if kind == "group" else str(r.get("userName", "")).lower())
            if rname == name and str(r.get("id")) not in ids_of[a]:
                ids_of[a].append(str(r.get("id")))
    lines = [f"{a} is {len(ids)} objects on the provider (ids {', '.join(sorted(ids))})" for a, ids in ids_of.items()]
    raise PlanError("two live objects have one address; rename or remove one on the provider, then plan "
                    "again: " + "; ".join(sorted(lines)))


def _twice(names: list[str]) -> list[str]:
    """Names listed more than once (a group that holds one member twice), in order."""
    seen: set[str] = set()
    out: list[str] = []
    for n in names:
        if n in seen and n not in out:
            out.append(n)
        seen.add(n)
    return out


def scim_ids(ids: dict[str, str]) -> ScimIds | NoPayload:
    return ScimIds(ids=ids) if ids else NO_PAYLOAD


def _refs_user(want: dict[str, Any], ids: dict[str, str]) -> ScimIds | NoPayload:
    """The live id of the member's manager where the manager exists already (a new member under an
    existing, unchanged manager needs it: no other change of the plan carries it)."""
    mgr = want.get("enterprise:manager")
    if mgr and mgr in ids:
        return ScimIds(ids={mgr: ids[mgr]})
    return NO_PAYLOAD


