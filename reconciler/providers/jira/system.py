"""Every Jira connection of a config as one live system of the contract (``reconciler.contract``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.config.models import Config
from reconciler.contract import Check, CheckResult
from reconciler.errors import (
    PlanError,
    ProviderError,
    ReconcilerError,
)
from reconciler.execute import Graph, Outcome
from reconciler.integrations.models import JiraConnection
from reconciler.plan.model import Change
from reconciler.plan.safety import check_removals
from reconciler.providers.jira.apply import ConnectionApplier
from reconciler.providers.jira.client import JiraClient, connect
from reconciler.providers.jira.common import (
    INTEGRATION_PERMISSIONS,
    PREFIX,
    JiraPlan,
    integrations_on,
    jira_connections,
)
from reconciler.providers.jira.live import LiveState
from reconciler.providers.jira.plan import ConnectionPlanner
from reconciler.providers.jira.read import read_live
from reconciler.providers.tracker import select_by_prefix, stale_by_replanning
from reconciler.secrets import redact
from reconciler.usermaps.resolve import mapped_identities


def plan_connection(config: Config, conn: JiraConnection, client: JiraClient) -> JiraPlan:
    """One connection's plan: everything it reads, read first (``read.read_live``), then planned from
    those answers alone."""
    def plan(live: LiveState) -> JiraPlan:
        return ConnectionPlanner(config, conn, live).plan()
    return plan(read_live(client, plan))


class JiraPlanner:
    """Every Jira connection of a config, as one live system (``reconciler.contract.LiveSystem``)."""

    prefix = PREFIX

    def _connect(self, session: Any, conn: JiraConnection) -> JiraClient:
        return connect(conn, transport=session.transports.get(conn.name), recorder=session.recorder,
                       base_dir=session.base_dir, sleep=session.sleep, attempts=session.attempts)

    def plan(self, session: Any) -> JiraPlan:
        total = JiraPlan()
        for conn in jira_connections(session.config):
            if not integrations_on(session.config, conn.name) and not _mapped(session.config, conn.name) \
                    and not conn.scan_projects:
                continue
            client = self._connect(session, conn)
            try:
                part = plan_connection(session.config, conn, client)
            except ProviderError as exc:
                raise PlanError(f"cannot plan Jira connection '{conn.name}': {exc}") from exc
            finally:
                client.close()
            if not session.targets and not part.problems:
                check_removals(conn.name, part.changes, part.managed, conn.max_removals, conn.max_removal_percent,
                               session.allow_removals)
            total.changes += part.changes
            total.notes += part.notes
            total.problems += part.problems
            total.protected += part.protected
        if total.problems:
            raise PlanError(f"{len(total.problems)} integration problem(s) found in the live Jira:", total.problems)
        return total

    def steps(self, session: Any, changes: list[Change], graph: Graph,
              report: Callable[[Outcome], None]) -> Callable[[], None] | None:
        conns = {c.name: c for c in jira_connections(session.config)}
        clients: list[JiraClient] = []
        try:
            for name in sorted({c.provider for c in changes}):
                conn = conns.get(name)
                mine = [c for c in changes if c.provider == name]
                if conn is None:
                    for c in mine:
                        report(Outcome(c, False, f"connection '{name}' is not in the config"))
                    continue
                client = self._connect(session, conn)
                clients.append(client)
                ConnectionApplier(client, report).steps(graph, graph.pool(f"{PREFIX}{name}", 4), mine)
        except BaseException:
            for client in clients:
                client.close()
            raise

        def close() -> None:
            for client in clients:
                client.close()
        return close

    def select(self, changes: list[Change], targets: list[str], config: Config) -> list[Change]:
        return select_by_prefix(changes, targets, config)

    def stale(self, session: Any, changes: list[Change], facts: dict[str, Any]) -> list[Check]:
        return stale_by_replanning(self, session, changes, PREFIX.rstrip("."))

    def check(self, session: Any) -> list[CheckResult]:
        results = []
        for conn in jira_connections(session.config):
            r = CheckResult(conn.name, True)
            try:
                client = self._connect(session, conn)
            except ReconcilerError as exc:  # a credential that cannot be resolved: report it, check the rest
                r.ok = False
                r.steps.append(("credentials", False, redact(str(exc))))
                results.append(r)
                continue
            try:
                me = client.myself()
                r.steps.append(("authenticate", True, f"as {me.get('displayName') or client.identity_of(me)}"))
                for i in integrations_on(session.config, conn.name):
                    needs = [k for k, _ in INTEGRATION_PERMISSIONS]
                    have = client.permissions(i.project, needs)
                    missing = [k for k in needs if not have.get(k)]
                    r.steps.append((f"permissions on {i.project} ({i.name})", not missing,
                                    "all granted" if not missing else "missing " + ", ".join(missing)))
            except ReconcilerError as exc:
                r.steps.append(("reach Jira", False, redact(str(exc))))
            finally:
                client.close()
            r.ok = all(ok for _, ok, _ in r.steps)
            results.append(r)
        return results


def _mapped(config: Config, conn: str) -> bool:
    return bool(mapped_identities(config, conn))


planner = JiraPlanner()
