"""Applying one Jira connection's changes in dependency order."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.errors import (
    ReconcilerError,
    StalePlanError,
)
from reconciler.execute import Outcome, run_changes
from reconciler.plan.model import Action, Change
from reconciler.providers.jira.client import JiraClient
from reconciler.providers.jira.common import (
    PROPERTY_PREFIX,
    TEST_ISSUE_PROPERTY_PREFIX,
    _digest,
    _live_webhook,
    _webhook_id,
    address,
)


class ConnectionApplier:
    """Applies one connection's changes: roles, then test issues, then settings properties, then webhooks.
    A removed integration's record goes after the role grants it lists (a failed revoke keeps the record, so
    a re-run finds what is left), and its webhook last: until then the webhook's name still leads to it."""

    def __init__(self, client: JiraClient, observer: Callable[[Any], None] | None) -> None:
        self.client = client
        self.observer = observer
        self.outcomes: list[Any] = []
        self.failed: set[str] = set()
        self.failed_changes: list[Change] = []
        self._lock = threading.Lock()

    def run(self, changes: list[Change]) -> list[Any]:
        def removal(c: Change) -> bool:
            return (c.kind == "integration" and c.action is Action.DELETE) or "integration" in c.refs
        phases = [[c for c in changes if c.kind == "project_role"], [c for c in changes if c.kind == "test_issue"],
                  [c for c in changes if c.kind == "integration" and not removal(c)],
                  [c for c in changes if c.kind == "webhook" and not removal(c)],
                  [c for c in changes if c.kind == "integration" and removal(c)],
                  [c for c in changes if c.kind == "webhook" and removal(c)]]
        fns = {"project_role": self._role, "test_issue": self._test_issue, "integration": self._property,
               "webhook": self._webhook}
        for mine in phases:
            run_changes(mine, functools.partial(self._step, fns=fns), workers=4, name="apply-jira",
                        on_done=self._done)
        return self.outcomes

    def _step(self, c: Change, *, fns: Mapping[str, Callable[[Change], None]]) -> None:
        if c.kind == "integration" and f"test_issue:{c.key}" in self.failed:
            raise ReconcilerError(f"skipped: depends on {address(c.provider, 'test_issue', c.key)}, which failed")
        gone = c.key if c.kind == "integration" and c.action is Action.DELETE else c.refs.get("integration")
        if gone:  # a removed integration: its record stays while a grant it lists is still there
            for f in self.failed_changes:
                if gone in f.refs.get("removed_integrations", "").split(",") or (f.kind, f.key) == ("integration",
                                                                                                  gone):
                    raise ReconcilerError(f"skipped: depends on {f.address}, which failed")
        elif c.kind == "integration":  # a declared one keeps the grants of a team that left a role recorded
            for f in self.failed_changes:  # until they are revoked
                if c.key in f.refs.get("revoked_for", "").split(","):
                    raise ReconcilerError(f"skipped: depends on {f.address}, which failed")
        fns[c.kind](c)

    def _done(self, o: Outcome) -> None:
        with self._lock:
            if not o.ok:
                self.failed.add(f"{o.change.kind}:{o.change.key}")
                self.failed_changes.append(o.change)
            self.outcomes.append(o)
        if self.observer is not None:
            self.observer(o)

    @staticmethod
    def _stale(c: Change, live: Any) -> None:
        if c.precondition is not None and c.precondition.digest is not None and _digest(live) != c.precondition.digest:
            raise StalePlanError(f"{c.address} changed in Jira since the plan was made; plan again")

    def _role(self, c: Change) -> None:
        assert c.before is not None and c.after is not None
        project, rid = str(c.refs["project"]), int(c.id or c.refs["role_id"])
        live = self.client.role_users(project, rid)
        self._stale(c, live)
        add = sorted(set(c.after["users"]) - set(live))
        remove = sorted(set(live) - set(c.after["users"]))
        if add:
            self.client.add_role_users(project, rid, add)
        for ident in remove:
            self.client.remove_role_user(project, rid, ident)

    def _test_issue(self, c: Change) -> None:
        project, label = str(c.refs["project"]), str(c.refs["label"])
        if c.action is Action.DELETE:
            self.client.delete_issue(str(c.id))
            return
        assert c.after is not None
        marker = TEST_ISSUE_PROPERTY_PREFIX + c.key
        if self.client.get_property(project, marker) is not None:
            return  # created by an earlier, interrupted apply
        issue = self.client.create_issue(project, str(c.refs["issue_type_id"]), str(c.after["summary"]), label,
                                         "Created by reconciler when the integration was first applied, to prove "
                                         "that the integration user can create issues here.")
        # recorded at once, by key: a search (eventually consistent) may not see the issue for a while
        self.client.put_property(project, marker, {"managedBy": "reconciler", "integration": c.key,
                                                   "issue": {"id": str(issue.get("id")), "key": issue.get("key")}})
        if c.after.get("delete_after_create"):
            self.client.delete_issue(str(issue.get("key") or issue.get("id")))

    def _property(self, c: Change) -> None:
        project, prop = str(c.refs["project"]), str(c.refs["property"])
        live = self.client.get_property(project, prop)
        if c.action is Action.DELETE:
            if live is not None:
                self._stale(c, live)
                self.client.delete_property(project, prop)
            if prop.startswith(PROPERTY_PREFIX):  # the record of its test issue goes with it (the issue stays)
                self.client.delete_property(project, TEST_ISSUE_PROPERTY_PREFIX + prop[len(PROPERTY_PREFIX):])
            return
        assert c.after is not None
        self._stale(c, live)
        self.client.put_property(project, prop, c.after)

    def _webhook(self, c: Change) -> None:
        live = {str(w.get("name")): w for w in self.client.webhooks()}.get(c.key)
        if c.action is Action.CREATE:
            assert c.after is not None
            if live is not None:
                raise StalePlanError(f"{c.address} was created in Jira since the plan was made; plan again")
            self.client.create_webhook(c.after)
        elif c.action is Action.UPDATE:
            assert c.after is not None
            if live is None:
                raise StalePlanError(f"{c.address} was deleted in Jira since the plan was made; plan again")
            self._stale(c, _live_webhook(live))
            self.client.update_webhook(_webhook_id(live), c.after)
        else:
            if live is not None:
                self.client.delete_webhook(_webhook_id(live))
