"""Every redmine connection of a config as one live system of the contract (``reconciler.contract.LiveSystem``).

Plan: all reads (``read_live``), then the pure planner per connection, and the removal thresholds. Apply:
one RedmineApplier per connection. Check: the "Test connection" steps. Stale and targets: what the
trackers share (``providers/tracker.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.config.models import Config
from reconciler.contract import Check, CheckResult
from reconciler.errors import ReconcilerError
from reconciler.execute import Graph, Outcome
from reconciler.plan.model import Change
from reconciler.plan.safety import check_removals
from reconciler.providers._http import check_url
from reconciler.providers.redmine.apply import RedmineApplier
from reconciler.providers.redmine.client import PREFIX, RedmineClient, connect
from reconciler.providers.redmine.live import read_live, redmine_connections
from reconciler.providers.redmine.plan import ProviderPlan, plan_connection
from reconciler.providers.tracker import select_by_prefix, stale_by_replanning

if TYPE_CHECKING:
    from reconciler.integrations.models import RedmineConnection
    from reconciler.session import Session


class RedminePlanner:
    """Every redmine connection of a config, as one live system (``reconciler.contract.LiveSystem``)."""

    prefix = PREFIX

    def client(self, session: Session, conn: RedmineConnection) -> RedmineClient:
        key = f"{PREFIX}{conn.name}"
        client: RedmineClient = session.connection(key, lambda: connect(
            conn, transport=session.transports.get(key), recorder=session.recorder, base_dir=session.base_dir,
            sleep=session.sleep, attempts=session.attempts))
        return client

    def plan(self, session: Session) -> ProviderPlan:
        out = ProviderPlan([], [], [], 0)
        for conn in redmine_connections(session.config):
            live = read_live(self.client(session, conn), session.config, conn)
            pp = plan_connection(session.config, conn, live)
            if not session.targets:
                check_removals(f"{PREFIX}{conn.name}", pp.changes, pp.managed, conn.max_removals,
                               conn.max_removal_percent, session.allow_removals)
            out.changes += pp.changes
            out.notes += pp.notes
            out.protected += pp.protected
            out.managed += pp.managed
        return out

    def steps(self, session: Session, changes: list[Change], graph: Graph,
              report: Callable[[Outcome], None]) -> Callable[[], None] | None:
        for conn in redmine_connections(session.config):
            mine = [ch for ch in changes if ch.provider == f"{PREFIX}{conn.name}"]
            if mine:
                pool = graph.pool(f"{PREFIX}{conn.name}", conn.concurrency)
                RedmineApplier(self.client(session, conn), conn, report).steps(graph, pool, mine)
        return None

    def select(self, changes: list[Change], targets: list[str], config: Config) -> list[Change]:
        return select_by_prefix(changes, targets, config)

    def stale(self, session: Session, changes: list[Change], facts: dict[str, Any]) -> list[Check]:
        return stale_by_replanning(self, session, changes, PREFIX.rstrip("."))

    def check(self, session: Session) -> list[CheckResult]:
        out = []
        for conn in redmine_connections(session.config):
            res = CheckResult(f"{PREFIX}{conn.name}", ok=False)
            out.append(res)
            key = f"{PREFIX}{conn.name}"
            if key not in session.transports:
                try:
                    check_url(conn.base_url)
                except ReconcilerError as exc:
                    res.steps.append(("url", False, str(exc)))
                    continue
            try:
                client = self.client(session, conn)
                me = client.current_user()
            except ReconcilerError as exc:
                res.steps.append(("authentication", False, str(exc)))
                continue
            res.steps.append(("authentication", True, f"API key accepted (user '{me.get('login')}')"))
            if not me.get("admin"):
                res.steps.append(("administrator", False, f"'{me.get('login')}' is not an administrator; "
                                  "users and groups need an administrator's API key"))
                continue
            try:
                n = client.get("users.json", {"limit": "1", "status": ""}).get("total_count")
            except ReconcilerError as exc:
                res.steps.append(("users", False, str(exc)))
                continue
            res.steps.append(("administrator", True, f"can list users ({n} users)"))
            res.ok = True
        return out


planner = RedminePlanner()
