"""Finding integrations reconciler recorded that the config no longer declares, and planning their removal."""

from __future__ import annotations

import re
from typing import Any

from reconciler.errors import (
    AuthError,
)
from reconciler.integrations.models import Integration
from reconciler.plan.model import Action, Change, JiraProperty, JiraWebhook, Precondition
from reconciler.providers.digest import digest
from reconciler.providers.jira.base import PlannerBase
from reconciler.providers.jira.common import (
    _CONVENTION,
    _JQL_PROJECT,
    PROPERTY_PREFIX,
    TEST_LABEL_PREFIX,
    _idents,
    _live_webhook,
    _webhook_id,
    address,
    jira_connections,
)


class RemovalPlanning(PlannerBase):
    """The removal steps of ``plan.ConnectionPlanner``."""

    def _plan_removed(self, ints: list[Integration]) -> None:
        """Integrations reconciler recorded on this connection that the config no longer declares.

        Jira has no call that lists a property across projects by key prefix (Cloud's project search takes
        property keys, not a prefix, and Data Center has no property search), so the projects searched are
        those this connection's integrations name, ``scan_projects``, and the projects named by the JQL of
        webhooks that carry reconciler's default name ('reconciler <integration>') for an undeclared
        integration: one property-key list per project, bounded by the config, not by the size of Jira.
        """
        declared = {i.name: i.project for i in ints}
        site = {c.name for c in jira_connections(self.config) if c.url == self.conn.url}
        declared_hooks = {str(i.webhook_name()) for i in self.config.integrations
                          if i.connection in site and i.webhook is not None}
        others = {c.name for c in self.config.connections} - {self.conn.name}
        projects = set(declared.values()) | set(self.conn.scan_projects)
        hooks = self._webhooks_if_allowed()
        by_convention: dict[str, dict[str, Any]] = {}
        for w in hooks or []:
            m = _CONVENTION.match(str(w.get("name")))
            if m is None:
                continue
            # a declared integration's webhook still names the project it is moving away from
            if m.group("name") not in declared and str(w.get("name")) not in declared_hooks:
                by_convention[m.group("name")] = w
            jql = str((w.get("filters") or {}).get("issue-related-events-section") or "")
            for hit in _JQL_PROJECT.finditer(jql):
                keys = [hit.group("one")] if hit.group("one") else re.split(r"[\s,\"]+", hit.group("many") or "")
                projects.update(k.upper() for k in keys if k)
        self.out.managed += sum(1 for w in hooks or [] if str(w.get("name")) in declared_hooks)
        seen: set[str] = set()
        self.live.need(("property_keys", (project,)) for project in projects)
        found = [(project, key, key[len(PROPERTY_PREFIX):]) for project in sorted(projects)
                 for key in sorted(self.live.property_keys(project) or []) if key.startswith(PROPERTY_PREFIX)]
        found = [(project, key, name) for project, key, name in found
                 if name and not (name in declared and declared[name] == project)]
        self.live.need(("property", (project, key)) for project, key, _ in found)
        for project, key, name in found:
            rec = self.live.property(project, key)
            if not isinstance(rec, dict) or rec.get("managedBy") != "reconciler":
                continue
            if name in declared:
                # moved to another project: its record and role grants here go; its webhook is declared
                # and follows it; on its new project it is created as any new integration is
                if rec.get("connection") not in others:
                    self._remove(project, name, key, rec, declared_hooks, hooks, moved_to=declared[name])
                continue
            if name in seen:
                continue
            seen.add(name)  # its webhook goes with its record (or stays with it)
            if rec.get("connection") not in others:  # else another connection of this config owns it
                self._remove(project, name, key, rec, declared_hooks, hooks)
        for name, w in sorted(by_convention.items()):
            if name in seen or name in self.conn.protect:
                continue
            self._delete_webhook(w, name)

    def _webhooks_if_allowed(self) -> list[dict[str, Any]] | None:
        """The admin webhooks, or None when they cannot be listed. A refusal (401/403) means the integration
        user may not list them: then it cannot have created any either (webhooks need a Jira administrator),
        so there is nothing of reconciler's to find. Any other failure is said in a note: the webhooks'
        projects are not searched."""
        hooks = self.live.webhooks()
        if hooks is None and not isinstance(self.live.webhook_error(), AuthError):
            self.out.notes.append(f"connection '{self.conn.name}': integrations removed from the config are looked "
                                  "for only in the projects that integrations and scan_projects name, not through "
                                  f"webhooks: {self.webhook_trouble()}")
        return hooks

    def _remove(self, project: str, name: str, key: str, rec: dict[str, Any], declared_hooks: set[str],
                hooks: list[dict[str, Any]] | None, moved_to: str | None = None) -> None:
        # a moved integration's old record has an address of its own: "web@SEC" beside the declared "web"
        gone = f"{name}@{project}" if moved_to else name
        a = address(self.conn.name, "integration", gone)
        self.out.managed += 1
        if name in self.conn.protect:
            self.out.protected.append(a)
            return
        notes = []
        if moved_to:
            notes.append(f"integration '{name}' moved from {project} to {moved_to}: its record and role grants "
                         f"on {project} are removed")
        if rec.get("testIssueCreated") and not rec.get("deleteTestIssue"):
            notes.append(f"its activation test issue (label {TEST_LABEL_PREFIX}{name}) is an issue and is left")
        self.out.changes.append(Change(self.conn.name, "integration", gone, Action.DELETE, a, before=rec, id=project,
                                       payload=JiraProperty(project=project, property=key), notes=notes,
                                       precondition=Precondition(digest=digest(rec))))
        hook = rec.get("webhook")
        if hook and str(hook) not in declared_hooks:
            live = {str(w.get("name")): w for w in hooks or []}.get(str(hook))
            if hooks is None:
                self.out.notes.append(f"{a}: its webhook '{hook}' cannot be removed: {self.webhook_trouble()}")
            elif live is not None:
                self._delete_webhook(live, name)
        grants = rec.get("grants")
        for role, g in sorted(grants.items() if isinstance(grants, dict) else []):
            if not isinstance(g, dict) or not str(g.get("id", "")).isdecimal():
                continue
            slot = self.retired.setdefault((project, str(role)), (int(g["id"]), {}))
            for ident in _idents(g.get("users")):
                slot[1].setdefault(ident, set()).add(gone)

    def _delete_webhook(self, w: dict[str, Any], integration: str) -> None:
        name = str(w.get("name"))
        a = address(self.conn.name, "webhook", name)
        if any(c.address == a for c in self.out.changes):
            return
        self.out.managed += 1
        before = _live_webhook(w)
        self.out.changes.append(Change(self.conn.name, "webhook", name, Action.DELETE, a, before=before,
                                       id=_webhook_id(w), payload=JiraWebhook(integration=integration),
                                       precondition=Precondition(digest=digest(before))))

