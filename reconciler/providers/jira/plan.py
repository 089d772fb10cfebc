"""Planning one Jira connection: every name an integration uses checked against the live Jira, then diffed."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from reconciler.errors import NotFoundError
from reconciler.integrations.models import Integration
from reconciler.plan.model import Action, Change, JiraProperty, JiraTestIssue, Precondition
from reconciler.providers.digest import digest
from reconciler.providers.jira.common import (
    ADMIN_GLOBAL,
    ADMIN_PROJECT,
    DELETE_PERMISSION,
    INTEGRATION_PERMISSIONS,
    MIN_DC_VERSION,
    PROPERTY_SCHEMA,
    TEST_ISSUE_FIELDS,
    TEST_ISSUE_PROPERTY_PREFIX,
    TEST_LABEL_PREFIX,
    JiraPlan,
    _by_name,
    _choices,
    _live_webhook,
    _renamed,
    _webhook_id,
    address,
    diff_values,
    integrations_on,
    link,
    webhook_body,
)
from reconciler.providers.jira.live import Unread
from reconciler.providers.jira.removed import RemovalPlanning
from reconciler.providers.jira.roles import RolePlanning
from reconciler.usermaps.resolve import fallback_users, identities_for, mapped_identities


class ConnectionPlanner(RolePlanning, RemovalPlanning):
    """Plans one Jira connection: reads what its integrations use, checks it, and diffs."""

    def plan(self) -> JiraPlan:
        """The connection's changes, from ``self.live`` alone; ``live.Unread`` when it needs reads not made
        yet (all those this run found missing: ``read.read_live`` makes them and runs it again)."""
        ints = integrations_on(self.config, self.conn.name)
        self.declared = {i.name for i in ints}
        self.attempt(partial(self._check_connection, ints))
        # every integration checked first (its problems kept aside), then each planned in order: the plan is
        # that of one integration after another
        checked = []
        for i in ints:
            n_problems = len(self.out.problems)
            state: list[tuple[Any, dict[str, Any], dict[str, int]] | None] = []
            if not self.attempt(partial(self._check_into, i, state)):
                self.incomplete.add(i.project)
            checked.append((i, state[0] if state else None, self.out.problems[n_problems:]))
            del self.out.problems[n_problems:]
        for i, found, problems in checked:
            self.out.problems += problems
            if found is not None and not problems and not self.attempt(partial(self._finish_integration, i, *found)):
                self.incomplete.add(i.project)
        if not self.out.problems:  # a problem found in a run still reading is found in the run that plans
            self.attempt(lambda: self._plan_removed(ints))
            self.attempt(self._plan_role_changes)
            self.attempt(self._plan_properties)
        if self.unread:
            raise Unread(self.unread | (set() if self.out.problems else self.hints))
        if not self.out.problems:
            self.out.changes = link(self.conn.name, self.out.changes, self.ends)
        return self.out

    def _check_into(self, i: Integration, into: list[tuple[Any, dict[str, Any], dict[str, int]] | None]) -> None:
        into.append(self._check_integration(i))

    def _check_connection(self, ints: list[Integration]) -> None:
        """The integration user, the Data Center version and every account the connection's config names
        (mapped identities, fallback users); the admin webhooks and resolutions are asked for in the same
        wave, as nothing else needs to be read first."""
        mapped = mapped_identities(self.config, self.conn.name)
        fallbacks = [fb for fb in fallback_users(self.config) if fb.system == self.conn.name]
        wanted = set(mapped)
        for fb in fallbacks:
            wanted.update(identities_for(self.config, fb.member, self.conn.name)[:1])
        idents = tuple(sorted(wanted))
        resolutions = any(i.resolutions for i in ints)
        self.live.need([("myself", ()), ("webhooks", ())] + ([("users", (idents,))] if idents else [])
                       + ([("resolutions", ())] if resolutions else [])
                       + ([] if self.live.cloud else [("server_info", ())]))
        me = self.live.myself()
        self.me = self.live.identity_of(me)
        self.users = self.live.users(idents)
        if resolutions:
            self.live.resolutions()  # an error listing them fails the plan, whatever the integrations hold
        if me.get("active") is False:
            self.out.problems.append(f"connection '{self.conn.name}': the integration user is deactivated in Jira")
        if not self.live.cloud:
            self._check_version(self.live.server_info())
        self._check_accounts(mapped, fallbacks)

    def _plan_properties(self) -> None:
        for i, recorded, settings in self.pending:
            settings["grants"] = self._grants(i, recorded)
            self._plan_property(i, recorded, settings)

    def _check_version(self, info: dict[str, Any]) -> None:
        numbers = info.get("versionNumbers")
        if not isinstance(numbers, list) or not all(isinstance(n, int) for n in numbers[:2]) or len(numbers) < 2:
            return  # a version it does not tell: nothing to compare
        if tuple(numbers[:2]) < MIN_DC_VERSION:
            need = ".".join(map(str, MIN_DC_VERSION))
            self.out.problems.append(f"connection '{self.conn.name}': Jira Data Center {info.get('version')} is "
                                     f"older than {need}, the oldest version reconciler supports")

    def _check_accounts(self, mapped: dict[str, str], fallbacks: list[Any]) -> None:
        members = {m.key: m for m in self.config.members}
        kind = "account ID" if self.live.cloud else "username"
        for ident, email in sorted(mapped.items()):
            u = self.users.get(ident)
            member = members.get(email.lower())
            if u is None:
                self.out.problems.append(f"user map of {email}: {self.conn.name} {kind} '{ident}' does not exist "
                                         "in Jira")
            elif u.get("active") is False:
                if member is not None and member.active:
                    self.out.problems.append(f"user map of {email}: {self.conn.name} {kind} '{ident}' is "
                                             "deactivated in Jira")
                else:
                    self.out.notes.append(f"{self.conn.name}: {kind} '{ident}' of inactive member {email} is "
                                          "deactivated in Jira")
        for fb in fallbacks:
            ids = identities_for(self.config, fb.member, self.conn.name)
            f, line, col = fb.where()
            if not ids:
                self.out.problems.append(f"{f}:{line}:{col}: {fb.describe()}: {fb.member} has no identity in "
                                         f"{self.conn.name}")
                continue
            u = self.users.get(ids[0])
            if u is None or u.get("active") is False:
                state = "does not exist" if u is None else "is deactivated"
                self.out.problems.append(f"{f}:{line}:{col}: {fb.describe()}: {kind} '{ids[0]}' of {fb.member} "
                                         f"{state} in Jira")

    def _project_missing(self, i: Integration) -> None:
        self.problem(i, "project", f"project '{i.project}' does not exist in {self.conn.name} or the integration "
                                   f"user cannot browse it; {_choices(self.live.project_keys())}")

    def _creates(self, i: Integration, rec: dict[str, Any]) -> bool:
        """Whether the activation test issue is still to be made."""
        return i.test_issue and not rec.get("testIssueCreated") \
            and TEST_ISSUE_PROPERTY_PREFIX + i.name not in (self.live.property_keys(i.project) or [])

    def _check_integration(self, i: Integration) -> tuple[Any, dict[str, Any], dict[str, int]] | None:
        """What an integration names checked against the live Jira (problems said); its recorded property,
        the settings it should record and its role ids, or None when its project is missing or moved."""
        self.live.need([("project", (i.project,)), ("property", (i.project, i.property_key)),
                        ("permissions", (i.project, tuple(k for k, _ in self._needs(i)))),
                        ("property_keys", (i.project,))] + ([("statuses", (i.project,))] if i.statuses else [])
                       + ([("role_ids", (i.project,))] if i.team_roles else []))
        project = self.live.project(i.project)
        if project is None:
            self._project_missing(i)
            return None
        if project.get("key") != i.project:
            self.problem(i, "project", f"project '{i.project}' has moved: Jira now calls it '{project.get('key')}' "
                                       f"(id {project.get('id')}); write project: {project.get('key')}")
            return None
        recorded = self.live.property(i.project, i.property_key)
        rec: dict[str, Any] = recorded if isinstance(recorded, dict) else {}

        settings: dict[str, Any] = {
            "schema": PROPERTY_SCHEMA, "managedBy": "reconciler", "integration": i.name, "program": i.program,
            "connection": self.conn.name, "project": {"id": str(project["id"]), "key": i.project},
        }
        # issue type, in this project
        types = [t for t in project.get("issueTypes") or [] if not t.get("subtask")]
        it = _by_name(types).get(i.issue_type)
        if it is None:
            self.problem(i, "issue_type", f"issue type '{i.issue_type}' is not available in project {i.project}; "
                                          f"{_choices(t['name'] for t in types)}"
                                          f"{_renamed(rec.get('issueType'), types)}")
        else:
            settings["issueType"] = {"id": str(it["id"]), "name": it["name"]}
        # priorities (of the project's priority scheme, read below with the create screen), resolutions
        # (global) and statuses (of this issue type's workflow in this project)
        settings["priorities"] = {}
        if i.statuses:
            per_type = {t["name"]: t.get("statuses") or [] for t in self.live.statuses(i.project)}
            statuses = per_type.get(i.issue_type) if it is not None else None
            if statuses is None:
                statuses = list({s["id"]: s for ss in per_type.values() for s in ss}.values())
            settings["statuses"] = self._map(i, "statuses", i.statuses, statuses,
                                             f"status of {i.issue_type} issues in {i.project}", rec.get("statuses"))
        else:
            settings["statuses"] = {}
        resolutions = self.live.resolutions() if i.resolutions else []
        settings["resolutions"] = self._map(i, "resolutions", i.resolutions, resolutions, "resolution",
                                            rec.get("resolutions"))
        settings.update({"trigger": i.trigger, "labels": list(i.labels), "template": list(i.template),
                         "comments": list(i.comments), "testIssue": i.test_issue,
                         "deleteTestIssue": i.delete_test_issue, "roleMembership": i.role_membership,
                         "webhook": i.webhook_name()})
        # roles
        role_ids: dict[str, int] = {}
        if i.team_roles:
            role_ids = self.live.role_ids(i.project)
            settings["teamRoles"] = {}
            for team, role in sorted(i.team_roles.items()):
                if role not in role_ids:
                    self.problem(i, f"team_roles.{team}", f"role '{role}' does not exist in project {i.project}; "
                                                         f"{_choices(role_ids)}")
                else:
                    settings["teamRoles"][team] = {"id": str(role_ids[role]), "name": role}
        else:
            settings["teamRoles"] = {}
        # the actors of its roles, and of those its record says it granted (and no team holds now), are read
        # once it checks out
        granted = rec.get("grants")
        held = set(i.team_roles.values())
        recorded_ids = {int(g["id"]) for r, g in (granted.items() if isinstance(granted, dict) else [])
                        if r not in held and isinstance(g, dict) and str(g.get("id", "")).isdecimal()}
        self.hint([("role_users", (i.project, rid))
                   for rid in sorted({role_ids[r] for r in held if r in role_ids} | recorded_ids)])
        # permissions, then what the create screen of the issue type offers (it needs Create issues)
        have = self._check_permissions(i)
        creates = self._creates(i, rec)
        if it is not None and have.get("CREATE_ISSUES") and (i.priorities or creates):
            self._check_create_screen(i, str(it["id"]), settings, rec, creates)
        return recorded, settings, role_ids

    def _finish_integration(self, i: Integration, recorded: Any, settings: dict[str, Any],
                            role_ids: dict[str, int]) -> None:
        """The changes of an integration that checks out: its test issue, roles, departures and webhook."""
        rec: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        test_changes, exists = self._plan_test_issue(i, settings, bool(rec.get("testIssueCreated")))
        settings["testIssueCreated"] = exists
        self.out.changes += test_changes
        if recorded is not None:
            self.out.managed += 1
        self.pending.append((i, recorded, settings))
        self._plan_roles(i, role_ids)
        self._plan_departures(i, rec)
        self._plan_webhook(i, rec)

    def _map(self, i: Integration, field: str, mapping: Mapping[Any, str], live: list[dict[str, Any]], what: str,
             recorded: Any, missing: str = "") -> dict[str, Any]:
        names = _by_name(live)
        out: dict[str, Any] = {}
        for k, name in sorted(mapping.items()):
            x = names.get(name)
            if x is None:
                rec = recorded.get(k) if isinstance(recorded, dict) else None
                self.problem(i, f"{field}.{k}", f"{what} '{name}' (for '{k}') "
                                               f"{missing or 'does not exist in ' + self.conn.name}; "
                                               f"{_choices(names)}{_renamed(rec, live)}")
            else:
                out[k] = {"id": str(x["id"]), "name": name}
        return out

    def _check_create_screen(self, i: Integration, type_id: str, settings: dict[str, Any], rec: dict[str, Any],
                             creates: bool) -> None:
        """Priorities against the priority field's allowed values on the create screen (what the project's
        priority scheme allows for the issue type), and, when the activation test issue is still to be made,
        the fields it sets against the screen and the screen's required fields against the fields it sets."""
        try:
            # integrations may share a screen: read once per plan
            fields = {str(f.get("fieldId")): f for f in self.live.create_fields(i.project, type_id)}
        except NotFoundError:
            self.problem(i, "issue_type", f"issue type '{i.issue_type}' cannot be created in {i.project}: Jira "
                                          "has no create screen for it")
            return
        where = f"{i.issue_type} issues in {i.project}"
        if i.priorities:
            pf = fields.get("priority")
            if pf is None:
                self.problem(i, "priorities", f"the priority field is not on the create screen of {where}, so "
                                              "no priority can be set")
            else:
                allowed = [v for v in pf.get("allowedValues") or [] if isinstance(v, dict) and "name" in v]
                settings["priorities"] = self._map(i, "priorities", i.priorities, allowed, "priority",
                                                   rec.get("priorities"), f"is not in the priority scheme of "
                                                   f"project {i.project} (for {i.issue_type} issues)")
        if not creates:
            return
        off = [f for f in TEST_ISSUE_FIELDS if f not in fields]
        if off:
            self.problem(i, "test_issue", f"the activation test issue cannot be created: {', '.join(off)} "
                                          f"{'is' if len(off) == 1 else 'are'} not on the create screen of {where}")
        needed = sorted(f"{f.get('name')} ({k})" for k, f in fields.items()
                        if f.get("required") and not f.get("hasDefaultValue") and k not in TEST_ISSUE_FIELDS
                        and k not in ("project", "issuetype"))
        if needed:
            self.problem(i, "test_issue", f"the activation test issue cannot be created: {where} require "
                                          f"{', '.join(needed)}, which it does not set; give the field a default "
                                          "value in Jira, or set test_issue: false")

    @staticmethod
    def _needs(i: Integration) -> list[tuple[str, str]]:
        needs = list(INTEGRATION_PERMISSIONS)
        if i.test_issue and i.delete_test_issue:
            needs.append(DELETE_PERMISSION)
        needs.append(ADMIN_PROJECT)
        if i.webhook is not None:
            needs.append(ADMIN_GLOBAL)
        return needs

    def _check_permissions(self, i: Integration) -> dict[str, bool]:
        needs = self._needs(i)
        have = self.live.permissions(i.project, tuple(k for k, _ in needs))
        missing = [f"{label} ({k})" for k, label in needs if not have.get(k)]
        if missing:
            self.problem(i, "project", f"the integration user lacks {len(missing)} permission(s) on project "
                                       f"{i.project}: {', '.join(missing)}")
        return have

    def _plan_property(self, i: Integration, recorded: Any, settings: dict[str, Any]) -> None:
        a = address(self.conn.name, "integration", i.name)
        refs = JiraProperty(project=i.project, property=i.property_key)
        if recorded is None:
            self.out.changes.append(Change(self.conn.name, "integration", i.name, Action.CREATE, a, after=settings,
                                           payload=refs, precondition=Precondition(digest=digest(None))))
            return
        diff = diff_values(recorded, settings)
        if diff:
            before = recorded if isinstance(recorded, dict) else {"value": recorded}
            self.out.changes.append(Change(self.conn.name, "integration", i.name, Action.UPDATE, a, before=before,
                                           after=settings, diff=diff, id=i.project, payload=refs,
                                           precondition=Precondition(digest=digest(recorded))))

    def _plan_test_issue(self, i: Integration, settings: dict[str, Any],
                         created: bool) -> tuple[list[Change], bool]:
        """The test issue's changes, and whether it exists or existed (so is never created again)."""
        if not i.test_issue:
            return [], created
        if created and not i.delete_test_issue:
            return [], True
        label = TEST_LABEL_PREFIX + i.name
        a = address(self.conn.name, "test_issue", i.name)
        refs = JiraTestIssue(project=i.project, label=label)
        # the issue it made is recorded, by key, in a project property written as soon as it was created
        prop = TEST_ISSUE_PROPERTY_PREFIX + i.name
        marker = self.live.property(i.project, prop) \
            if prop in (self.live.property_keys(i.project) or []) else None
        made = marker.get("issue") if isinstance(marker, dict) else None
        key = str(made.get("key") or "") if isinstance(made, dict) else ""
        if key:
            issue = self.live.issue(key) if i.delete_test_issue else None
            if issue is not None:
                before = {"key": issue.get("key"), "project": i.project, "label": label}
                return [Change(self.conn.name, "test_issue", i.name, Action.DELETE, a, before=before,
                               id=str(issue.get("key")), payload=refs)], True
            return [], True  # created once (and perhaps deleted since): never again
        # no key recorded (an issue made before keys were, or records lost): its label is all there is left
        found = self.live.labelled_issues(i.project, label)
        if found and i.delete_test_issue:
            issue = found[0]
            before = {"key": issue.get("key"), "project": i.project, "label": label}
            return [Change(self.conn.name, "test_issue", i.name, Action.DELETE, a, before=before,
                           id=str(issue.get("key")), payload=refs)], True
        if found or created:
            return [], True  # created once (and perhaps deleted since): never again
        after = {"project": i.project, "issue_type": i.issue_type, "label": label,
                 "summary": f"reconciler: activation test for integration {i.name}",
                 "delete_after_create": i.delete_test_issue}
        refs = refs.model_copy(update={"issue_type_id": str(settings.get("issueType", {}).get("id", ""))})
        return [Change(self.conn.name, "test_issue", i.name, Action.CREATE, a, after=after, payload=refs)], True

    def _plan_webhook(self, i: Integration, rec: dict[str, Any]) -> None:
        want = webhook_body(i)
        recorded_name = rec.get("webhook")
        if want is None and not recorded_name:
            return
        hooks = self.live.webhooks()
        if hooks is None:
            if want is not None:
                self.problem(i, "webhook", f"webhook '{want['name']}' cannot be checked: {self.webhook_trouble()}")
            else:
                self.out.notes.append(f"{address(self.conn.name, 'integration', i.name)}: its recorded webhook "
                                      f"'{recorded_name}' is no longer declared but cannot be checked, so it is "
                                      f"left: {self.webhook_trouble()}")
            return
        by_name = {str(w.get("name")): w for w in hooks}
        if want is None:
            old = by_name.get(str(recorded_name))
            if old is not None:
                before = _live_webhook(old)
                self.out.changes.append(Change(self.conn.name, "webhook", str(recorded_name), Action.DELETE,
                                               address(self.conn.name, "webhook", str(recorded_name)), before=before,
                                               id=_webhook_id(old), precondition=Precondition(digest=digest(before))))
            return
        name = str(want["name"])
        a = address(self.conn.name, "webhook", name)
        live = by_name.get(name)
        if live is None:
            self.out.changes.append(Change(self.conn.name, "webhook", name, Action.CREATE, a, after=want))
        else:
            before = _live_webhook(live)
            diff = diff_values(before, want)
            if diff:
                self.out.changes.append(Change(self.conn.name, "webhook", name, Action.UPDATE, a, before=before,
                                               after=want, diff=diff, id=_webhook_id(live),
                                               precondition=Precondition(digest=digest(before))))
        if recorded_name and recorded_name != name and str(recorded_name) in by_name:
            old = by_name[str(recorded_name)]
            before = _live_webhook(old)
            self.out.changes.append(Change(self.conn.name, "webhook", str(recorded_name), Action.DELETE,
                                           address(self.conn.name, "webhook", str(recorded_name)), before=before,
                                           id=_webhook_id(old), precondition=Precondition(digest=digest(before))))

