"""Planning project role actors: who each integration's teams want in a role, who it recorded granting,
and what is revoked when a team leaves a role."""

from __future__ import annotations

from typing import Any

from reconciler.errors import (
    NotFoundError,
)
from reconciler.integrations.models import Integration
from reconciler.plan.model import Action, AttributeChange, Change, JiraRole, Precondition
from reconciler.providers.digest import digest
from reconciler.providers.jira.base import PlannerBase
from reconciler.providers.jira.common import (
    _idents,
    address,
)
from reconciler.usermaps.resolve import identities_for


class RolePlanning(PlannerBase):
    """The role steps of ``plan.ConnectionPlanner``."""

    def _plan_roles(self, i: Integration, role_ids: dict[str, int]) -> None:
        if not i.team_roles:
            return
        teams = {t.name: t for t in self.config.teams}
        members = {m.key: m for m in self.config.members}
        by_role: dict[str, dict[str, str]] = {}
        for team, role in i.team_roles.items():
            for email in teams[team].members:
                m = members.get(email.lower())
                if m is None or not m.active:
                    continue
                ids = identities_for(self.config, m.email, self.conn.name)
                if not ids:
                    self.out.notes.append(f"{self.conn.name}: {m.email} (team {team}) has no identity in "
                                          f"{self.conn.name}; not added to role '{role}' of {i.project}")
                    continue
                by_role.setdefault(role, {})[ids[0]] = m.email
                self.team_wanted.setdefault(i.name, {}).setdefault(role, {}).setdefault(team, set()).add(ids[0])
        for team, role in i.team_roles.items():  # a team with no member in the role still holds its place
            self.team_wanted.setdefault(i.name, {}).setdefault(role, {}).setdefault(team, set())
        for role in sorted(set(i.team_roles.values())):
            self._role_change(i, role, role_ids[role], by_role.get(role, {}))
            self.wanted_by.setdefault(i.name, {})[role] = (role_ids[role], set(by_role.get(role, {})))

    def _role_change(self, i: Integration, role: str, rid: int, wanted: dict[str, str]) -> None:
        """Remember who the integration wants in the role; several integrations may grant the same one."""
        slot = self.roles.setdefault((i.project, role), (rid, i.role_membership, {}))
        slot[2].update(wanted)

    def _plan_role_changes(self) -> None:
        slots = sorted(self.roles.keys() | self.retired.keys())
        if any(p in self.incomplete for p, r in slots if (p, r) not in self.roles):
            # a role only a record names, on a project whose integrations are still read: its id may yet be
            # a team role's; its actors are read once that is known
            slots = [(p, r) for p, r in slots if (p, r) in self.roles or p not in self.incomplete]
            self.live.need(("role_users", (p, self.roles[(p, r)][0] if (p, r) in self.roles else
                                           self.retired[(p, r)][0])) for p, r in slots)
            return
        self.live.need([("role_users", (project, (self.roles.get((project, role)) or
                                                  self.retired[(project, role)])[0])) for project, role in slots])
        for project, role in slots:
            rid, mode, wanted = self.roles.get((project, role)) or (self.retired[(project, role)][0], "additive", {})
            key = f"{project}/{role}"
            a = address(self.conn.name, "project_role", key)
            try:
                live = self.live.role_users(project, rid)
            except NotFoundError:
                if (project, role) in self.roles:
                    raise
                self.out.notes.append(f"{a}: role id {rid}, recorded by a removed integration, no longer exists")
                continue
            if mode == "authoritative":
                after = set(wanted)
                if self.me in live and self.me not in after:
                    after.add(self.me)  # never lock the integration user out of a role it holds
                    self.out.notes.append(f"{a}: the integration user keeps its place in the role")
            else:
                after = set(live) | set(wanted)
            # what removed integrations, and teams that left the role, were recorded granting, unless a declared
            # integration still wants it or still records it as its grant (never the integration user)
            granted_by = self.retired.get((project, role), (rid, {}))[1]
            kept = self.kept.get((project, role), set())
            revoke = {u for u in granted_by
                      if u in live and u not in wanted and u not in kept and u != self.me}
            after -= revoke
            self.role_state[(project, role)] = (set(live), set(after))
            before_l, after_l = sorted(live), sorted(after)
            if before_l == after_l:
                continue
            payload = JiraRole(project=project, role_id=str(rid), membership="authoritative"
                               if mode == "authoritative" else "additive", members=dict(wanted))
            ending = {n for u in revoke for n in granted_by[u]}
            if ending:  # their record is rewritten (or, removed, deleted) only once this revoke succeeded
                self.ends[a] = ending
            self.out.changes.append(Change(self.conn.name, "project_role", key, Action.UPDATE, a,
                                           before={"users": before_l}, after={"users": after_l},
                                           diff=[AttributeChange("users", before_l, after_l)], id=str(rid),
                                           payload=payload, precondition=Precondition(digest=digest(before_l))))

    def _grants(self, i: Integration, recorded: Any) -> dict[str, Any]:
        """Who this integration put in each role, and through which team, recorded in its property so that
        removing the integration, or a team leaving a role, removes exactly that. Authoritative: its teams'
        members. Additive: those it added (not there before), those recorded earlier that are still in the
        role, and those a team of it wants that it recorded granting before (through a team that has left
        the role, say); someone already in the role was not its grant."""
        rec = recorded.get("grants") if isinstance(recorded, dict) else None
        rec = rec if isinstance(rec, dict) else {}
        out: dict[str, Any] = {}
        for role, (rid, wanted) in sorted(self.wanted_by.get(i.name, {}).items()):
            before, after = self.role_state.get((i.project, role), (set(), set(wanted)))
            found = rec.get(role)
            old: dict[str, Any] = found if isinstance(found, dict) else {}
            had_any = _idents(old.get("users"))
            old_teams = old.get("teams") if isinstance(old.get("teams"), dict) else None
            teams: dict[str, list[str]] = {}
            for team, want in sorted(self.team_wanted.get(i.name, {}).get(role, {}).items()):
                if i.role_membership == "authoritative":
                    users = set(want)
                else:  # a record from before teams were recorded: each team may have granted any of them
                    had = _idents(old_teams.get(team)) if old_teams is not None else had_any
                    users = (had & after) | (want - before) | (want & had_any)
                users.discard(self.me)
                teams[team] = sorted(users)
            out[role] = {"id": str(rid), "users": sorted({u for us in teams.values() for u in us}), "teams": teams}
        return out

    def _plan_departures(self, i: Integration, rec: dict[str, Any]) -> None:
        """A declared integration's recorded grants for teams that no longer hold that role in it (the team
        moved to another role, or left the integration's team_roles): they are revoked as a removed
        integration's are, and the rewritten record no longer lists them (once the revoke succeeded)."""
        grants = rec.get("grants")
        if not isinstance(grants, dict):
            return
        now: dict[str, set[str]] = {}
        for team, r in i.team_roles.items():
            now.setdefault(r, set()).add(team)
        for role, g in sorted(grants.items()):
            if not isinstance(g, dict) or not str(g.get("id", "")).isdecimal():
                continue
            current = now.get(str(role), set())
            teams = g.get("teams")
            if isinstance(teams, dict):
                left = {u for t, us in teams.items() if t not in current for u in _idents(us)}
                stay = {u for t, us in teams.items() if t in current for u in _idents(us)}
            elif current:  # recorded before grants named their teams: the role is still granted, keep them
                left, stay = set(), _idents(g.get("users"))
            else:  # ... and the integration left the role altogether: all of them go
                left, stay = _idents(g.get("users")), set()
            self.kept.setdefault((i.project, str(role)), set()).update(stay)
            slot = self.retired.setdefault((i.project, str(role)), (int(g["id"]), {}))
            for ident in sorted(left - stay):
                slot[1].setdefault(ident, set()).add(i.name)

