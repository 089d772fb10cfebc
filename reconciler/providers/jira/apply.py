"""Applying one Jira connection's changes in dependency order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from reconciler.errors import (
    ReconcilerError,
    StalePlanError,
)
from reconciler.execute import Graph, Outcome, Step
from reconciler.plan.model import Action, Change, JiraProperty, JiraRole, JiraTestIssue, JiraWebhook
from reconciler.providers.digest import digest
from reconciler.providers.jira.client import JiraClient
from reconciler.providers.jira.common import (
    PROPERTY_PREFIX,
    TEST_ISSUE_PROPERTY_PREFIX,
    _live_webhook,
    _webhook_id,
)

P = TypeVar("P", JiraRole, JiraTestIssue, JiraProperty)


def _payload(c: Change, kind: type[P]) -> P:
    """The change's payload as its kind carries it; a plan without one cannot be applied."""
    if not isinstance(c.payload, kind):
        raise ReconcilerError(f"{c.address}: the plan does not carry what this change needs; plan again")
    return c.payload


class ConnectionApplier:
    """Applies one connection's changes. A project's test issues and records go after the changes to its
    roles (the grants they prove and record); declared webhooks after the records of declared integrations;
    removals after everything that is kept. A removed integration's record goes after the role revokes it
    lists (a failed revoke keeps the record, so a re-run finds what is left), and its webhook last: until
    then the webhook's name still leads to it (both ``depends_on``). Anything else runs at once."""

    def __init__(self, client: JiraClient, report: Callable[[Outcome], None]) -> None:
        self.client = client
        self.report = report

    def steps(self, graph: Graph, pool: str, changes: list[Change]) -> None:
        """The connection's changes as steps of ``graph``: one per change, each after the steps it needs
        to follow (``Graph.wait``); what must succeed first is each change's ``depends_on``, which the
        executor's ledger checks."""
        def removal(c: Change) -> bool:
            return (c.kind == "integration" and c.action is Action.DELETE) or (
                isinstance(c.payload, JiraWebhook) and c.payload.integration is not None)
        fns: dict[str, Callable[[Change], None]] = {"project_role": self._role, "test_issue": self._test_issue,
                                                   "integration": self._property, "webhook": self._webhook}
        made = {c.address: s for c in changes if c.kind in fns
                for s in graph.each(pool, [c], fns[c.kind], self.report)}
        kept = [c for c in changes if c.address in made and not removal(c)]
        roles: dict[str, list[Step]] = {}
        for c in kept:
            if isinstance(c.payload, JiraRole):
                roles.setdefault(c.payload.project, []).append(made[c.address])
        for c in kept:
            if isinstance(c.payload, (JiraTestIssue, JiraProperty)):
                graph.wait(made[c.address], roles.get(c.payload.project, []))
        records = [made[c.address] for c in kept if c.kind == "integration"]
        for c in kept:
            if c.kind == "webhook":
                graph.wait(made[c.address], records)
        keeping = graph.gate([made[c.address] for c in kept])
        for c in changes:
            if c.address in made and removal(c):
                graph.wait(made[c.address], [keeping])

    @staticmethod
    def _stale(c: Change, live: Any) -> None:
        if c.precondition is not None and c.precondition.digest is not None and digest(live) != c.precondition.digest:
            raise StalePlanError(f"{c.address} changed in Jira since the plan was made; plan again")

    def _role(self, c: Change) -> None:
        assert c.before is not None and c.after is not None
        role = _payload(c, JiraRole)
        project, rid = role.project, int(c.id or role.role_id)
        live = self.client.role_users(project, rid)
        self._stale(c, live)
        add = sorted(set(c.after["users"]) - set(live))
        remove = sorted(set(live) - set(c.after["users"]))
        if add:
            self.client.add_role_users(project, rid, add)
        for ident in remove:
            self.client.remove_role_user(project, rid, ident)

    def _test_issue(self, c: Change) -> None:
        issue_of = _payload(c, JiraTestIssue)
        project, label = issue_of.project, issue_of.label
        if c.action is Action.DELETE:
            self.client.delete_issue(str(c.id))
            return
        assert c.after is not None
        marker = TEST_ISSUE_PROPERTY_PREFIX + c.key
        if self.client.get_property(project, marker) is not None:
            return  # created by an earlier, interrupted apply
        issue = self.client.create_issue(project, str(issue_of.issue_type_id), str(c.after["summary"]), label,
                                         "Created by reconciler when the integration was first applied, to prove "
                                         "that the integration user can create issues here.")
        # recorded at once, by key: a search (eventually consistent) may not see the issue for a while
        self.client.put_property(project, marker, {"managedBy": "reconciler", "integration": c.key,
                                                   "issue": {"id": str(issue.get("id")), "key": issue.get("key")}})
        if c.after.get("delete_after_create"):
            self.client.delete_issue(str(issue.get("key") or issue.get("id")))

    def _property(self, c: Change) -> None:
        record = _payload(c, JiraProperty)
        project, prop = record.project, record.property
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
