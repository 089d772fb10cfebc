"""The state one Jira connection's planner keeps between its steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.config.models import Config
from reconciler.errors import AuthError, ProviderError
from reconciler.integrations.models import Integration, JiraConnection
from reconciler.providers.jira.common import JiraPlan, _where
from reconciler.providers.jira.live import LiveState, Read, Unread
from reconciler.secrets import redact


class PlannerBase:
    """What one connection's planner holds while it plans (``plan.ConnectionPlanner``)."""

    def __init__(self, config: Config, conn: JiraConnection, live: LiveState) -> None:
        self.config, self.conn, self.live = config, conn, live
        self.out = JiraPlan()
        self.me = ""  # the integration user's identity
        self.users: dict[str, dict[str, Any]] = {}  # identity -> account, of the accounts the config names
        # (project, role) -> (role id, membership mode, wanted identity -> member email)
        self.roles: dict[tuple[str, str], tuple[int, str, dict[str, str]]] = {}
        # integration -> role -> (role id, identities its teams want there)
        self.wanted_by: dict[str, dict[str, tuple[int, set[str]]]] = {}
        # integration -> role -> team -> identities that team wants there
        self.team_wanted: dict[str, dict[str, dict[str, set[str]]]] = {}
        # (project, role) -> (role id, identity -> the integrations whose recorded grant of it ends: removed
        # ones, and declared ones whose team left the role)
        self.retired: dict[tuple[str, str], tuple[int, dict[str, set[str]]]] = {}
        # (project, role) -> identities declared integrations still record granting through a declared team
        self.kept: dict[tuple[str, str], set[str]] = {}
        self.declared: set[str] = set()
        # (project, role) -> (users before, users after) this plan
        self.role_state: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
        # properties are planned last: they record the role grants, known once the roles are planned
        self.pending: list[tuple[Integration, Any, dict[str, Any]]] = []
        # role change address -> the integrations whose recorded grant it revokes (they depend on it)
        self.ends: dict[str, set[str]] = {}
        # the reads this run needed and found missing (``live.Unread``): the run is then one wave of reads
        self.unread: set[Read] = set()
        # reads this run knows a later step will need: made with the wave, never a wave of their own
        self.hints: set[Read] = set()
        # projects of the integrations whose steps still miss reads: what their roles will be is not known yet
        self.incomplete: set[str] = set()

    def attempt(self, step: Callable[[], None]) -> bool:
        """Run one step of the plan; whether it ran to its end. A read it needs that is not made yet ends the
        step and is kept for this wave, and the next steps go on (each stands alone: an integration, the
        removal scan). Once a read is missing this run is not the plan but a search for reads, so an error
        of an answer is left to the run that uses it with every answer read."""
        try:
            step()
        except Unread as more:
            self.unread |= more.reads
            return False
        except ProviderError:
            if not self.unread:
                raise
            return False
        return True

    def hint(self, reads: list[Read]) -> None:
        """Reads a later step will ask for (once the steps before it have their answers): made in this
        run's wave if it has one, so that they do not wait for a wave of their own."""
        self.hints.update(r for r in reads if r not in self.live.answers)

    def problem(self, i: Integration | None, field: str | None, text: str) -> None:
        where = f"{_where(i, field)}: integration '{i.name}': " if i is not None else ""
        self.out.problems.append(f"{where}{text}")

    def webhook_trouble(self) -> str:
        exc = self.live.webhook_error()
        if isinstance(exc, AuthError):
            return "listing admin webhooks needs the Jira administrator permission"
        return f"listing admin webhooks failed ({redact(str(exc))})"
