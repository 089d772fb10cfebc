"""The order of a tracker connection's apply steps: what must follow what does, and nothing else waits.

Each test makes one step wait (with a timeout) for a step that an order by kind ("all roles, then all
test issues ...") would run after it: under such phases the run cannot finish and the test fails; under
the per-object order the two are independent and both run. The orders that matter are checked on the
sequence the steps ran in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reconciler.execute import Graph, Outcome
from reconciler.plan.model import (
    NO_PAYLOAD,
    Action,
    AttributeChange,
    Change,
    JiraProperty,
    JiraRole,
    JiraTestIssue,
    JiraWebhook,
    RedmineIntegration,
    RedmineMembership,
)
from reconciler.providers.jira.apply import ConnectionApplier
from reconciler.providers.redmine.apply import RedmineApplier

WAIT = 20.0  # seconds a step waits for another before it fails the test


class Run:
    """Records the order steps ran in; ``hold(a, b)``: a's step waits until b's has run."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.done: dict[str, threading.Event] = {}
        self.holds: dict[str, str] = {}

    def event(self, key: str) -> threading.Event:
        with self.lock:
            return self.done.setdefault(key, threading.Event())

    def step(self, c: Change) -> None:
        other = self.holds.get(c.key)
        if other is not None and not self.event(other).wait(WAIT):
            raise AssertionError(f"{c.key} waited for {other}, which never ran: it was ordered after {c.key}")
        with self.lock:
            self.order.append(c.key)
        self.event(c.key).set()

    def before(self, a: str, b: str) -> bool:
        return self.order.index(a) < self.order.index(b)


def _run(steps: Callable[[Graph, str], None]) -> None:
    g = Graph()
    steps(g, g.pool("tracker", 8))
    g.run()


def _update(kind: str, key: str, payload: Any, system: str = "jira.c") -> Change:
    return Change("c", kind, key, Action.UPDATE, f'{system}.{kind}["{key}"]', before={"v": 1}, after={"v": 2},
                  diff=[AttributeChange("v", 1, 2)], id="1", payload=payload)


def _create(kind: str, key: str, payload: Any, after: dict[str, Any] | None = None, system: str = "jira.c",
            depends_on: tuple[str, ...] = ()) -> Change:
    return Change("c", kind, key, Action.CREATE, f'{system}.{kind}["{key}"]', after=after or {},
                  payload=payload if payload is not None else NO_PAYLOAD, depends_on=depends_on)


def test_jira_a_projects_test_issue_waits_for_its_roles_only() -> None:
    changes = [
        _update("project_role", "SEC/Developers", JiraRole(project="SEC", role_id="1", membership="additive")),
        _update("project_role", "OPS/Developers", JiraRole(project="OPS", role_id="2", membership="additive")),
        _create("test_issue", "t-sec", JiraTestIssue(project="SEC", label="l")),
        _create("test_issue", "t-ops", JiraTestIssue(project="OPS", label="l")),
        _create("integration", "sec", JiraProperty(project="SEC", property="p"),
                depends_on=('jira.c.test_issue["t-sec"]',)),
        _create("integration", "ops", JiraProperty(project="OPS", property="p"),
                depends_on=('jira.c.test_issue["t-ops"]',)),
        _create("webhook", "reconciler sec", JiraWebhook()),
        Change("c", "integration", "gone", Action.DELETE, 'jira.c.integration["gone"]', before={"v": 1},
               payload=JiraProperty(project="SEC", property="p")),
        Change("c", "webhook", "reconciler gone", Action.DELETE, 'jira.c.webhook["reconciler gone"]',
               before={"v": 1}, payload=JiraWebhook(integration="gone"),
               depends_on=('jira.c.integration["gone"]',)),
    ]
    run = Run()
    run.holds["SEC/Developers"] = "t-ops"  # OPS's test issue does not wait for SEC's roles
    applier = ConnectionApplier(client=None, report=lambda o: None)  # type: ignore[arg-type]
    for name in ("_role", "_test_issue", "_property", "_webhook"):
        setattr(applier, name, run.step)
    _run(lambda g, pool: applier.steps(g, pool, changes))
    assert sorted(run.order) == sorted(c.key for c in changes)
    assert run.before("SEC/Developers", "t-sec") and run.before("OPS/Developers", "t-ops")
    assert run.before("t-sec", "sec") and run.before("t-ops", "ops")
    assert run.before("sec", "reconciler sec") and run.before("ops", "reconciler sec")
    kept = ["SEC/Developers", "OPS/Developers", "t-sec", "t-ops", "sec", "ops", "reconciler sec"]
    assert all(run.before(k, "gone") for k in kept) and run.before("gone", "reconciler gone")


def test_redmine_a_group_waits_for_its_users_and_a_grant_for_its_projects_record() -> None:
    def user(login: str) -> Change:
        return _create("user", login, None, {"login": login}, system="redmine.c")

    def membership(project: str, group: str, action: Action = Action.CREATE) -> Change:
        key = f"{project}/{group}"
        body = {"project": project, "group": group, "roles": ["Developer"]}
        if action is Action.DELETE:
            return Change("redmine.c", "membership", key, action, f'redmine.c.membership["{key}"]', before=body,
                          id="9", payload=RedmineMembership(project=project, group_id="7"))
        return _create("membership", key, RedmineMembership(project=project, group_id="7"), body,
                       system="redmine.c")

    changes = [
        user("u1"), user("u2"),
        _create("group", "g1", None, {"users": ["u1"]}, system="redmine.c"),
        _create("group", "g2", None, {"users": ["u2"]}, system="redmine.c"),
        _create("integration", "a", RedmineIntegration(), {"project": "A", "tracker": "Bug"}, system="redmine.c"),
        _create("integration", "b", RedmineIntegration(), {"project": "B", "tracker": "Bug"}, system="redmine.c"),
        membership("A", "g1"), membership("B", "g1"),
        membership("A", "old", Action.DELETE),
        Change("redmine.c", "group", "old", Action.DELETE, 'redmine.c.group["old"]', before={"users": []}, id="3"),
        Change("redmine.c", "integration", "gone", Action.DELETE, 'redmine.c.integration["gone"]',
               before={"project": "A"}, payload=RedmineIntegration(project="A", title="t")),
    ]
    run = Run()
    run.holds["u1"] = "g2"   # g2 does not wait for u1, only g1 does
    run.holds["b"] = "A/g1"  # a grant in project A does not wait for B's record
    applier = RedmineApplier(client=None, conn=None, report=lambda o: None)  # type: ignore[arg-type]
    applier.conn = type("Conn", (), {"name": "c"})()
    for name in ("_user", "_group", "_delete", "_membership", "_integration", "_remove_integration"):
        setattr(applier, name, run.step)
    outcomes: list[Outcome] = []
    applier.report = outcomes.append
    _run(lambda g, pool: applier.steps(g, pool, changes))
    assert [o.error for o in outcomes if not o.ok] == []
    assert sorted(run.order) == sorted(c.key for c in changes)
    assert run.before("u1", "g1") and run.before("u2", "g2")
    assert run.before("a", "A/g1") and run.before("b", "B/g1")
    assert run.before("A/g1", "A/old")  # a project's removed grant after the ones kept
    assert all(run.before(k, "old") for k in ("A/g1", "B/g1", "A/old"))  # groups deleted after memberships
    assert run.order[-1] == "gone"
