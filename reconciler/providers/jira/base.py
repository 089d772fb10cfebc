"""The state one Jira connection's planner keeps between its steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from reconciler.config.models import Config
from reconciler.errors import AuthError, ProviderError
from reconciler.integrations.models import Integration, JiraConnection
from reconciler.providers.jira.client import JiraClient, concurrently
from reconciler.providers.jira.common import (
    JiraPlan,
    _Live,
    _where,
)
from reconciler.secrets import redact

_R = TypeVar("_R")


class PlannerBase:
    """What one connection's planner holds while it plans (``plan.ConnectionPlanner``)."""

    def __init__(self, config: Config, conn: JiraConnection, client: JiraClient) -> None:
        self.config, self.conn, self.client = config, conn, client
        self.out = JiraPlan()
        self.live = _Live()
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
        # (read, arguments) -> (answer, error): the reads made once per plan (``read``)
        self.memo: dict[tuple[str, tuple[Any, ...]], tuple[Any, ProviderError | None]] = {}

    def problem(self, i: Integration | None, field: str | None, text: str) -> None:
        where = f"{_where(i, field)}: integration '{i.name}': " if i is not None else ""
        self.out.problems.append(f"{where}{text}")

    def webhook_list(self) -> list[dict[str, Any]] | None:
        """The admin webhooks, read once per plan; None when Jira would not list them (``webhook_trouble``
        says why): that fails no plan by itself."""
        if self.live.webhooks is None and self.live.webhook_error is None:
            try:
                self.live.webhooks = self.client.webhooks()
            except ProviderError as exc:
                self.live.webhook_error = exc
        return self.live.webhooks

    def webhook_trouble(self) -> str:
        exc = self.live.webhook_error
        if isinstance(exc, AuthError):
            return "listing admin webhooks needs the Jira administrator permission"
        return f"listing admin webhooks failed ({redact(str(exc))})"

    def property_keys_of(self, project: str) -> list[str] | None:
        """The keys of a project's properties, listed once per plan (None: the project is gone)."""
        if project not in self.live.property_keys:
            self.live.property_keys[project] = self.client.property_keys(project)
        return self.live.property_keys[project]

    def read(self, fn: Callable[..., _R], *args: Any) -> _R:
        """``fn(*args)``, a read of the client, made once per plan: what ``prefetch`` read at once is
        answered from memory (an error it met is raised here, where the planner uses the answer)."""
        key = (getattr(fn, "__name__", repr(fn)), args)
        if key not in self.memo:
            try:
                self.memo[key] = (fn(*args), None)
            except ProviderError as exc:
                self.memo[key] = (None, exc)
        value, error = self.memo[key]
        if error is not None:
            raise error
        return value  # type: ignore[no-any-return]

    def prefetch(self, reads: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        """Make reads that do not depend on each other at once (each once), for ``read`` to answer."""
        todo = list({(getattr(fn, "__name__", repr(fn)), args): (fn, args) for fn, args in reads}.values())

        def one(item: tuple[Callable[..., Any], tuple[Any, ...]]) -> None:
            try:
                self.read(item[0], *item[1])
            except ProviderError:
                pass  # memorised: raised when the planner uses it
        concurrently(one, todo)
