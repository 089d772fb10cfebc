"""Planning for one Redmine connection: desired (config) + live (read) -> changes. Pure: no I/O.

Members become users through user maps, teams groups, an integration's team_roles project memberships,
and an integration its record page; an integration the config no longer declares is found by its record
page, which lists exactly the roles it granted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.config.models import Config, Member
from reconciler.errors import PlanError
from reconciler.plan.model import (
    NO_PAYLOAD,
    Action,
    AttributeChange,
    Change,
    NoPayload,
    Precondition,
    RedmineGroup,
    RedmineIntegration,
    RedmineMembership,
)
from reconciler.providers.digest import digest
from reconciler.providers.redmine.client import PREFIX
from reconciler.providers.redmine.live import (
    LiveState,
    address,
    integrations_on,
    parse_record,
    record_title,
    synced_teams,
)
from reconciler.usermaps import identities_for

if TYPE_CHECKING:
    from reconciler.integrations.models import Integration, RedmineConnection


@dataclass
class ProviderPlan:
    changes: list[Change]
    notes: list[str]
    protected: list[str]
    managed: int


def _canon(value: str, items: list[dict[str, Any]]) -> str | None:
    """The live spelling of a name (Redmine compares names case-insensitively)."""
    for x in items:
        if str(x.get("name", "")).casefold() == value.casefold():
            return str(x["name"])
    return None


def _valid(items: list[dict[str, Any]]) -> str:
    return ", ".join(sorted(str(x.get("name")) for x in items)) or "(none)"


def plan_connection(config: Config, conn: RedmineConnection, live: LiveState) -> ProviderPlan:
    """Pure: desired (config) + live (read) -> changes. Every name an integration uses is checked here,
    and all problems are reported at once with the valid values."""

    c = conn.name
    provider = f"{PREFIX}{c}"
    changes: list[Change] = []
    notes: list[str] = []
    problems: list[str] = []
    protected: list[str] = []

    users_by_login = {str(u.get("login", "")).casefold(): u for u in live.users}
    login_by_id = {int(u["id"]): str(u.get("login")) for u in live.users}
    users_by_mail = {str(u.get("mail", "")).casefold(): u for u in live.users if u.get("mail")}
    members = {m.key: m for m in config.members}

    # users: every active member mapped to a login on this connection
    logins: dict[str, str] = {}  # member key -> login
    for m in config.members:
        ids = identities_for(config, m.email, c)
        if not ids or not m.active:
            continue
        login = ids[0]
        logins[m.key] = login
        addr = address(c, "user", login)
        have = users_by_login.get(login.casefold())
        if have is None:
            other = users_by_mail.get(m.key)
            if other is not None:
                problems.append(f"member {m.email} is mapped to Redmine login '{login}', but Redmine user "
                                f"'{other.get('login')}' already has that email; map {m.email} to "
                                f"'{other.get('login')}' in user_maps")
            elif not conn.create_users:
                problems.append(f"member {m.email} is mapped to Redmine login '{login}', which does not exist; "
                                f"create it in Redmine or set create_users: true on connection '{c}'")
            else:
                changes.append(Change(provider, "user", login, Action.CREATE, addr, after=desired_user(m, login)))
            continue
        want = desired_user(m, login)
        cur = {k: have.get(k) for k in want}
        diff = [AttributeChange(k, cur[k], v) for k, v in want.items()
                if k in _managed_user_fields(m) and cur[k] != v]
        if diff:
            after = dict(cur, **{d.path: d.after for d in diff})
            changes.append(Change(provider, "user", login, Action.UPDATE, addr, before=cur, after=after, diff=diff,
                                  id=str(have["id"]), precondition=Precondition(digest=digest(have))))

    def user_ref(login: str) -> dict[str, str]:  # login -> live id, where the user exists
        u = users_by_login.get(login.casefold())
        return {login: str(u["id"])} if u is not None else {}

    # groups
    groups_by_name = {str(g.get("name")): g for g in live.groups}
    declared_groups: set[str] = set()
    for t in synced_teams(config, conn):
        declared_groups.add(t.name)
        addr = address(c, "group", t.name)
        want_users: set[str] = set()
        unmapped: list[str] = []
        for e in t.members:
            tm = members.get(e.lower())
            if tm is None or not tm.active:
                continue
            if tm.key in logins:
                want_users.add(logins[tm.key])
            else:
                unmapped.append(tm.email)
        if unmapped:
            msg = (f"{addr}: {len(unmapped)} member(s) have no '{c}' login in user_maps and are left out of the "
                   f"group: {', '.join(sorted(unmapped))}")
            if conn.unmapped_members == "error":
                problems.append(msg + f" (unmapped_members: error on connection '{c}')")
            else:
                notes.append(msg)
        g = groups_by_name.get(t.name)
        refs: dict[str, str] = {}
        for login in want_users:
            refs.update(user_ref(login))
        if g is None:
            changes.append(Change(provider, "group", t.name, Action.CREATE, addr,
                                  after={"name": t.name, "users": sorted(want_users, key=str.casefold)},
                                  payload=_users(refs)))
            continue
        have_users = sorted((login_by_id.get(i, f"id:{i}") for i in live.group_users.get(int(g["id"]), [])),
                            key=str.casefold)
        have_cf = {x.casefold() for x in have_users}
        if conn.membership == "additive":
            after_users = sorted(set(have_users) | {u for u in want_users if u.casefold() not in have_cf},
                                 key=str.casefold)
        else:
            after_users = sorted(want_users, key=str.casefold)
        if [x.casefold() for x in after_users] != [x.casefold() for x in have_users]:
            for x in have_users:
                refs.update(user_ref(x) if not x.startswith("id:") else {x: x[3:]})
            changes.append(Change(provider, "group", t.name, Action.UPDATE, addr,
                                  before={"name": t.name, "users": have_users},
                                  after={"name": t.name, "users": after_users},
                                  diff=[AttributeChange("users", have_users, after_users)], id=str(g["id"]),
                                  precondition=Precondition(digest=digest(have_users)), payload=_users(refs)))
    managed = len([g for g in live.groups if g.get("name") in declared_groups])
    if conn.authoritative:
        protect = set(conn.protect)
        for g in live.groups:
            name = str(g.get("name"))
            if name in declared_groups:
                continue
            addr = address(c, "group", name)
            if name in protect:
                protected.append(addr)
                continue
            changes.append(Change(provider, "group", name, Action.DELETE, addr, before={"name": name},
                                  id=str(g["id"]), precondition=Precondition(digest=digest(g))))
        managed = len(live.groups)

    # integrations: names checked against the live Redmine, then memberships and records
    integ = integrations_on(config, c)
    roles_wanted: dict[str, dict[str, set[str]]] = {}  # project -> group -> role names
    authoritative_projects: set[str] = set()
    for i in integ:
        def where(field: str, i: Integration = i) -> str:
            """file:line:col of the offending value first, as every config error is reported."""
            return f"{i.locate(field)}: integration '{i.name}'"
        project = live.projects.get(i.project)
        if project is None:
            choices = sorted(str(p.get("identifier")) for p in live.all_projects)
            problems.append(f"{where('project')}: project '{i.project}' does not exist on Redmine '{c}' (or the "
                            f"API key cannot see it); valid projects: {', '.join(choices) or '(none)'}")
            continue
        tracker = _canon(i.issue_type, live.trackers)
        if tracker is None:
            problems.append(f"{where('issue_type')}: issue_type '{i.issue_type}' is not a Redmine tracker; "
                            f"valid trackers: {_valid(live.trackers)}")
        for sev, name in sorted(i.priorities.items()):
            if _canon(name, live.priorities) is None:
                problems.append(f"{where(f'priorities.{sev}')}: priorities.{sev} '{name}' is not an active "
                                f"Redmine priority; valid priorities: {_valid(live.priorities)}")
        for st, name in sorted(i.statuses.items()):
            if _canon(name, live.statuses) is None:
                problems.append(f"{where(f'statuses.{st}')}: statuses.{st} '{name}' is not a Redmine issue "
                                f"status; valid statuses: {_valid(live.statuses)}")
        for team, role in sorted(i.team_roles.items()):
            canon = _canon(role, live.roles)
            if canon is None:
                problems.append(f"{where(f'team_roles.{team}')}: team_roles.{team} '{role}' is not a Redmine "
                                f"role; valid roles: {_valid(live.roles)}")
                continue
            roles_wanted.setdefault(i.project, {}).setdefault(team, set()).add(canon)
        if i.role_membership == "authoritative":
            authoritative_projects.add(i.project)
        if i.labels:
            notes.append(f"{address(c, 'integration', i.name)}: Redmine has no labels; labels are not managed "
                         "on this connection")
        if tracker is None:
            continue
        changes += _integration_change(provider, c, i, tracker, project, live)

    managed += sum(1 for r in live.records.values() if r is not None)
    revoked, removed_changes, removed_protected = _plan_removed(provider, c, conn, integ, live)
    _plan_departures(integ, live, revoked)
    changes += removed_changes
    protected += removed_protected
    managed += len(live.removed)
    for name, ident in live.moved:
        notes.append(f"{address(c, 'integration', name)}: moved from project {ident}; its record page there is "
                     "left")
    ends: dict[str, set[str]] = {}  # membership address -> integrations whose recorded grant it revokes
    for ident in sorted(roles_wanted.keys() | authoritative_projects | revoked.keys()):
        if live.projects.get(ident) is None:
            continue
        ch, n, ended = _membership_changes(provider, c, ident, roles_wanted.get(ident, {}),
                                    ident in authoritative_projects, live, groups_by_name, login_by_id,
                                    revoked.get(ident), {i.name for i in integ})
        changes += ch
        ends.update(ended)
        managed += n
    if problems:
        raise PlanError(f"cannot plan Redmine connection '{c}':", problems)
    return ProviderPlan(_link(changes, ends, c), notes, protected, managed)


def _users(ids: dict[str, str]) -> RedmineGroup | NoPayload:
    return RedmineGroup(users=ids) if ids else NO_PAYLOAD


def _plan_removed(provider: str, c: str, conn: RedmineConnection, integ: list[Integration], live: LiveState) \
        -> tuple[dict[str, dict[str, dict[str, set[str]]]], list[Change], list[str]]:
    """Integrations whose record page is still in Redmine but which the config no longer declares: the
    record page goes, the tracker too when reconciler enabled it and no declared integration of the
    project uses it, and the roles the record lists as granted (returned as project -> group -> role ->
    integrations, for the membership planning)."""
    revoked: dict[str, dict[str, dict[str, set[str]]]] = {}
    changes: list[Change] = []
    protected: list[str] = []
    kept = [parse_record(page) or {} for name, (_, page) in live.removed.items() if name in conn.protect]
    for name, (ident, page) in sorted(live.removed.items()):
        addr = address(c, "integration", name)
        if name in conn.protect:
            protected.append(addr)
            continue
        record = parse_record(page) or {}
        project = live.projects.get(ident)
        disable: str | None = None
        notes = []
        found = record.get("activation")
        activation: dict[str, Any] = found if isinstance(found, dict) else {}
        tracker = record.get("tracker")
        in_use = {_canon(i.issue_type, live.trackers) for i in integ if i.project == ident} | \
            {r.get("tracker") for r in kept if r.get("project") == ident}
        enabled = {str(t.get("name")) for t in (project or {}).get("trackers", [])}
        if activation.get("enabled_tracker") and tracker in enabled and tracker not in in_use:
            disable = str(tracker)
            notes.append(f"tracker {tracker}, enabled on {ident} for this integration, is disabled (its issues "
                         "stay)")
        if activation.get("test_issue") and not activation.get("deleted"):
            notes.append(f"its activation test issue #{activation['test_issue']} is an issue and is left")
        changes.append(Change(provider, "integration", name, Action.DELETE, addr, before=record,
                              id=str((project or {}).get("id") or ident), notes=notes,
                              payload=RedmineIntegration(project=ident, title=record_title(name),
                                                         disable_tracker=disable),
                              precondition=Precondition(digest=digest(record))))
        grants = record.get("grants")
        for group, roles in sorted(grants.items() if isinstance(grants, dict) else []):
            for role in roles if isinstance(roles, list) else []:
                revoked.setdefault(ident, {}).setdefault(str(group), {}).setdefault(str(role), set()).add(name)
    return revoked, changes, protected


def _plan_departures(integ: list[Integration], live: LiveState,
                     revoked: dict[str, dict[str, dict[str, set[str]]]]) -> None:
    """Roles a declared integration's record lists as granted to a group that it no longer gives that group
    (the team's role changed, or the team left its team_roles): they go as a removed integration's grants
    do, and the rewritten record no longer lists them (once the revoke succeeded)."""
    for i in integ:
        if live.projects.get(i.project) is None:
            continue
        record = parse_record(live.records.get(i.name)) or {}
        grants = record.get("grants")
        for group, roles in sorted(grants.items() if isinstance(grants, dict) else []):
            role = i.team_roles.get(str(group))
            now = _canon(role, live.roles) if role is not None else None
            for r in roles if isinstance(roles, list) else []:
                if str(r) != now:
                    revoked.setdefault(i.project, {}).setdefault(str(group), {}).setdefault(str(r), set()).add(
                        i.name)


def _managed_user_fields(m: Member) -> set[str]:
    """Unset is not empty: a name is managed only when the member declares it."""
    out = set()
    if "given_name" in m.model_fields_set or "display_name" in m.model_fields_set:
        out.add("firstname")
    if "family_name" in m.model_fields_set:
        out.add("lastname")
    return out


def desired_user(m: Member, login: str) -> dict[str, Any]:
    # Redmine requires a first and last name; without them the email's local part stands in.
    first = m.given_name or m.display_name or m.email.split("@", 1)[0]
    last = m.family_name or "-"
    return {"login": login, "firstname": first, "lastname": last, "mail": m.email}


def _integration_change(provider: str, c: str, i: Integration, tracker: str, project: dict[str, Any],
                        live: LiveState) -> list[Change]:
    addr = address(c, "integration", i.name)
    want: dict[str, Any] = {
        "program": i.program,
        "project": i.project,
        "tracker": tracker,
        "tracker_enabled": True,
        "trigger": i.trigger,
        "priorities": {k: _canon(v, live.priorities) for k, v in sorted(i.priorities.items())},
        "statuses": {k: _canon(v, live.statuses) for k, v in sorted(i.statuses.items())},
        "template": list(i.template),
        "comments": sorted(i.comments),
        "test_issue": i.test_issue,
        "delete_test_issue": i.delete_test_issue,
    }
    enabled = tracker in {str(t.get("name")) for t in project.get("trackers", [])}

    record = parse_record(live.records.get(i.name))
    want["grants"] = _grants(i, record, live)
    if record is None:
        return [Change(provider, "integration", i.name, Action.CREATE, addr, after=want,
                       payload=RedmineIntegration(project_id=str(project["id"])))]
    activation = record.get("activation")
    done = activation if isinstance(activation, dict) else {}
    test_issue = done.get("test_issue")
    payload = RedmineIntegration(project_id=str(project["id"]),
                                 test_issue=int(test_issue) if isinstance(test_issue, int | str) and
                                 str(test_issue).isdigit() else None,
                                 enabled_tracker=bool(done.get("enabled_tracker")))
    have = {k: record.get(k) for k in want}
    have["tracker_enabled"] = enabled
    diff = [AttributeChange(k, have[k], v) for k, v in want.items() if have[k] != v]
    if not diff:
        return []
    return [Change(provider, "integration", i.name, Action.UPDATE, addr, before=have, after=want, diff=diff,
                   id=str(project["id"]), precondition=Precondition(digest=digest(record)), payload=payload)]


def _own_roles(m: dict[str, Any] | None) -> set[str]:
    """A membership's own roles (not those a user only inherits through a group)."""
    return {str(r["name"]) for r in (m or {}).get("roles", []) if not r.get("inherited")}


def _group_membership(live: LiveState, ident: str, group: str) -> dict[str, Any] | None:
    return next((m for m in live.memberships.get(ident, []) if (m.get("group") or {}).get("name") == group), None)


def _grants(i: Integration, record: dict[str, Any] | None, live: LiveState) -> dict[str, list[str]]:
    """The roles this integration gives each group in its project, recorded on its page so that removing the
    integration removes exactly those. Authoritative: every role it declares. Additive: the roles it adds
    (not held before) and those recorded earlier that the group still holds; a role the group already
    held was not its grant."""
    old = (record or {}).get("grants")
    old = old if isinstance(old, dict) else {}
    out: dict[str, list[str]] = {}
    for team, role in sorted(i.team_roles.items()):
        canon = _canon(role, live.roles)
        if canon is None:
            continue
        own = _own_roles(_group_membership(live, i.project, team))
        if i.role_membership == "authoritative":
            mine = {canon}
        else:  # only the role it gives the team now: one it gave before and took back is revoked
            had = {str(r) for r in old.get(team) or []} if isinstance(old.get(team), list) else set()
            mine = ({canon} & had) | ({canon} - own)
        out[team] = sorted(set(out.get(team, [])) | mine)
    return out


def _membership_changes(provider: str, c: str, ident: str, wanted: dict[str, set[str]], authoritative: bool,
                        live: LiveState, groups_by_name: dict[str, dict[str, Any]],
                        login_by_id: dict[int, str],
                        revoked: dict[str, dict[str, set[str]]] | None = None,
                        declared: set[str] | None = None) -> tuple[list[Change], int, dict[str, set[str]]]:
    """Project memberships of the granted groups. Roles a membership only inherits (a user's roles through
    a group) are not the membership's own and are left alone. ``revoked``: group -> role -> the integrations
    whose recorded grant of it ends (removed ones, and ``declared`` ones that no longer give the group that
    role); those roles go unless a declared integration grants them."""
    revoked = revoked or {}
    declared = declared or set()

    def ending(addr: str, gone: dict[str, set[str]]) -> None:
        """The integrations whose recorded grant this change revokes: a removed one's record goes, and a
        declared one's record is rewritten, only once the revoke succeeded (they depend on it)."""
        names = set().union(*gone.values()) if gone else set()
        if names:
            ends[addr] = names

    out: list[Change] = []
    ends: dict[str, set[str]] = {}
    managed_roles = {r for roles in wanted.values() for r in roles}
    live_by_principal: dict[str, dict[str, Any]] = {}
    for lm in live.memberships.get(ident, []):
        if "group" in lm:
            principal = str(lm["group"].get("name"))
        elif "user" in lm:
            uid = int(lm["user"]["id"])
            principal = "user:" + login_by_id.get(uid, f"id:{uid}")
        else:
            continue
        live_by_principal[principal] = lm
    for group, roles in sorted(wanted.items()):
        key = f"{ident}/{group}"
        addr = address(c, "membership", key)
        g = groups_by_name.get(group)
        payload = RedmineMembership(project=ident, group_id=str(g["id"]) if g else None)
        m = live_by_principal.get(group)
        if m is None:
            out.append(Change(provider, "membership", key, Action.CREATE, addr,
                              after={"project": ident, "group": group, "roles": sorted(roles)}, payload=payload))
            continue
        own = sorted(_own_roles(m))
        gone = {r: n for r, n in revoked.get(group, {}).items() if r in own and r not in roles}
        after = sorted(roles) if authoritative else sorted((set(own) | roles) - set(gone))
        if after != own:
            ending(addr, gone)
            out.append(Change(provider, "membership", key, Action.UPDATE, addr,
                              before={"project": ident, "group": group, "roles": own},
                              after={"project": ident, "group": group, "roles": after},
                              diff=[AttributeChange("roles", own, after)], id=str(m["id"]), payload=payload,
                              precondition=Precondition(digest=digest(m))))
    managed = len(live.memberships.get(ident, []))
    # principals the config does not grant: authoritative takes the managed roles away from them, and
    # roles a removed integration recorded granting them go in any mode
    for principal, m in sorted(live_by_principal.items()):
        if principal in wanted:
            continue
        own = sorted(_own_roles(m))
        gone = {r: n for r, n in revoked.get(principal, {}).items() if r in own}
        keep = sorted(set(own) - (managed_roles if authoritative else set()) - set(gone))
        if not own or keep == own:
            continue
        key = f"{ident}/{principal}"
        addr = address(c, "membership", key)
        who = {"group": principal} if not principal.startswith("user:") else {"user": principal[5:]}
        before = {"project": ident, **who, "roles": own}
        ending(addr, gone)
        if keep:
            out.append(Change(provider, "membership", key, Action.UPDATE, addr, before=before,
                              after={**before, "roles": keep}, diff=[AttributeChange("roles", own, keep)],
                              id=str(m["id"]), precondition=Precondition(digest=digest(m))))
        else:
            out.append(Change(provider, "membership", key, Action.DELETE, addr, before=before, id=str(m["id"]),
                              precondition=Precondition(digest=digest(m))))
    return out, managed, ends


def _link(changes: list[Change], ends: dict[str, set[str]], c: str) -> list[Change]:
    """Each integration change depends on the membership changes that revoke the grants its record lists:
    the record is rewritten (or, for a removed one, deleted) only once they succeeded, so a failed revoke
    leaves a record that still names the grant, and the next apply finds what is left."""
    waits: dict[str, set[str]] = {}
    for m_addr, names in ends.items():
        for name in names:
            waits.setdefault(address(c, "integration", name), set()).add(m_addr)
    # a membership of a group this plan creates needs the group
    new_groups = {ch.address for ch in changes if ch.kind == "group" and ch.action is Action.CREATE}
    for ch in changes:
        if ch.kind == "membership" and ch.action is Action.CREATE and ch.after is not None:
            group = address(c, "group", str(ch.after.get("group")))
            if group in new_groups:
                waits.setdefault(ch.address, set()).add(group)
    return [ch.model_copy(update={"depends_on": tuple(sorted(waits[ch.address]))}) if ch.address in waits else ch
            for ch in changes]
